"""Subcommands of the ``text4seg`` CLI, one module each, plus the argument types they share."""

import argparse


def grid_size(text: str) -> tuple[int, int]:
    """argparse type: "16" or "16x24" → (16, 16) / (16, 24)."""
    h, _, w = text.lower().partition("x")
    try:
        size = (int(h), int(w or h))
    except ValueError:
        raise argparse.ArgumentTypeError(f"grid size must look like 16 or 16x24, got {text!r}") from None
    if min(size) < 1:
        raise argparse.ArgumentTypeError(f"grid size must be positive, got {text!r}")
    return size
