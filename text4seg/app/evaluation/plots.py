"""Evaluation plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_iou_histogram(coarse: Sequence[float], refined: Sequence[float], path: Path) -> Path:
    """Per-image IoU histogram of coarse and refined masks on shared [0, 1] bins."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    bins = [i / 20 for i in range(21)]
    ax.hist(coarse, bins=bins, alpha=0.6, label=f"coarse (n={len(coarse)})")
    ax.hist(refined, bins=bins, alpha=0.6, label=f"refined (n={len(refined)})")
    ax.set_xlabel("per-image IoU")
    ax.set_ylabel("images")
    ax.set_xlim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_iou_scatter(coarse: Sequence[float], refined: Sequence[float], path: Path) -> Path:
    """Refined vs coarse IoU per image; points above the diagonal are images the refiner improved."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1, linestyle="--")
    ax.scatter(coarse, refined, s=12, alpha=0.7)
    better = sum(r > c for c, r in zip(coarse, refined, strict=True))
    ax.set_title(f"refiner improved {better} of {len(coarse)} images")
    ax.set_xlabel("coarse IoU")
    ax.set_ylabel("refined IoU")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
