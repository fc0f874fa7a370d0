"""What one web request does, independent of Gradio: check the upload, load it safely, run the
pipeline, and turn its result into what the page shows.

Kept free of Gradio imports so it can be tested directly and reused by other front ends.
"""

from __future__ import annotations

import html
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from text4seg.app.web.config import ServeConfig
from text4seg.core.codec import encode_rrle
from text4seg.core.io import ImageLoadError, load_image
from text4seg.core.visualize import PALETTE

# Characters that would turn user or model text (queries, labels) into Markdown formatting.
MARKDOWN_MARKUP = set("\\`*_[]#|~!")


class RequestError(ValueError):
    """A request the demo refuses; the message is meant for the user and is shown in the page."""


@dataclass(frozen=True)
class WebAnswer:
    """Everything the page shows for one request."""

    refined_overlay: np.ndarray
    """H'×W'×3 uint8 RGB: the image with the refined masks drawn on it, downscaled so its longer
    side is at most ``ServeConfig.display_max_side``."""
    coarse_overlay: np.ndarray
    """H'×W'×3 uint8 RGB: the same with the coarse (grid) masks."""
    answer: str
    """The model's raw answer text."""
    summary: str
    """Markdown: labels found, boxes, mask areas, repairs and per-stage timings."""
    details: dict
    """``SegmentationResult.to_json()`` (JSON-serializable)."""


@dataclass(frozen=True)
class RowsSoFar:
    """Descriptor rows streamed by the MLLM before its answer is complete."""

    rows: list[list[str]]
    """The rows received so far, each W labels."""
    total: int
    """Rows the grid has."""

    @property
    def text(self) -> str:
        """The rows as R-RLE lines, as they will appear inside the answer's ``<seg>`` block."""
        return encode_rrle(self.rows) if self.rows else ""


def upload_path(upload) -> tuple[Path, str]:
    """The stored file of an upload and the name the user gave it.

    ``upload`` is Gradio's file payload (a dict with ``path`` and ``orig_name``), a path, or None.
    """
    if upload is None:
        raise RequestError("Upload an image first.")
    if isinstance(upload, Mapping):
        path = upload.get("path")
        name = upload.get("orig_name") or (Path(path).name if path else "upload")
    elif isinstance(upload, str | Path):
        path, name = upload, Path(upload).name
    else:
        raise RequestError(f"Unexpected upload of type {type(upload).__name__}.")
    if not path:
        raise RequestError("The upload did not arrive; try again.")
    return Path(path), str(name)


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink an H×W×3 uint8 image so its longer side is at most ``max_side`` (never enlarges)."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    from PIL import Image

    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


class SegmentService:
    """Runs the pipeline for web requests.

    ``pipeline`` is anything with the ``Text4SegPipeline.__call__`` signature returning a
    ``SegmentationResult``. Calls into it take turns under a lock: the refiner's high-resolution
    head reads the mask decoder's features through forward hooks registered on the shared decoder
    module (``stsam_refiner.hr_head.capture_decoder_features``), so two concurrent forwards could
    read each other's features; and torch already spreads one image over the cores. Concurrent
    requests still overlap their upload checks, image decoding and overlay drawing, and the
    Gradio queue answers every user's request in turn.
    """

    def __init__(self, *, pipeline: Callable, config: ServeConfig) -> None:
        self.pipeline = pipeline
        self.config = config
        self._model_lock = threading.Lock()

    def load(self, upload) -> np.ndarray:
        """Check the upload's size and pixel count, then decode it as H×W×3 uint8 RGB."""
        path, name = upload_path(upload)
        try:
            size = path.stat().st_size
        except OSError:
            raise RequestError(f"{name}: the uploaded file is gone; upload it again.") from None
        if size > self.config.max_upload_bytes:
            raise RequestError(
                f"{name}: {size / 2**20:.1f} MB is larger than the {self.config.max_upload_mb:g} MB upload limit."
            )
        try:
            return load_image(path, max_pixels=self.config.max_pixels)
        except ImageLoadError as err:
            # The stored temp path means nothing to the user; name the file they picked.
            raise RequestError(str(err).replace(str(path), name)) from None

    def check_query(self, query: str | None) -> str:
        query = (query or "").strip()
        if not query:
            raise RequestError("Type a query, e.g. “segment the text in this image”.")
        if len(query) > self.config.max_query_chars:
            raise RequestError(
                f"The query has {len(query)} characters; the limit is {self.config.max_query_chars}."
            )
        return query

    def __call__(self, upload, query: str | None, refine: bool = True) -> WebAnswer:
        """Check, load and segment in one go (no streaming)."""
        query = self.check_query(query)
        image = self.load(upload)
        with self._model_lock:
            result = self.pipeline(image, query, refine=bool(refine), **self._call_options())
        return self.answer(image, result)

    def stream(self, upload, query: str | None, refine: bool = True) -> Iterator[RowsSoFar | WebAnswer]:
        """Like calling the service, but yields a ``RowsSoFar`` as each descriptor row is generated
        and the ``WebAnswer`` last. Refusals raise before anything is yielded."""
        query = self.check_query(query)
        image = self.load(upload)
        updates: queue.Queue = queue.Queue()
        outcome: dict = {}

        def work() -> None:
            try:
                with self._model_lock:
                    outcome["result"] = self.pipeline(
                        image, query, refine=bool(refine), on_row=updates.put, **self._call_options()
                    )
            except Exception as err:  # noqa: BLE001 - re-raised in the caller's thread below
                outcome["error"] = err
            finally:
                updates.put(None)

        worker = threading.Thread(target=work, name="text4seg-web-segment", daemon=True)
        worker.start()
        rows: list[list[str]] = []
        while (update := updates.get()) is not None:
            rows.append(list(update.labels))
            yield RowsSoFar(rows=list(rows), total=self.config.grid[0])
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        yield self.answer(image, outcome["result"])

    def _call_options(self) -> dict:
        """Pipeline keyword arguments fixed by the server's settings."""
        cfg = self.config
        return {"grid": cfg.grid, "constrained": cfg.constrained, "task": cfg.task}

    def answer(self, image: np.ndarray, result) -> WebAnswer:
        """What the page shows for a finished ``SegmentationResult`` of ``image``."""
        side = self.config.display_max_side
        return WebAnswer(
            refined_overlay=downscale(result.overlay(image, refined=True), side),
            coarse_overlay=downscale(result.overlay(image, refined=False), side),
            answer=result.answer,
            summary=summarize(result, image.shape[:2]),
            details=result.to_json(),
        )


def summarize(result, image_size: tuple[int, int]) -> str:
    """A short Markdown report of a ``SegmentationResult``; each label carries a swatch of the
    colour its mask has in the overlays."""

    height, width = image_size
    lines = [f"**Image** {width}×{height} · **query** “{_plain(result.query)}”"]
    if getattr(result, "parse_failed", False):
        lines.append("**Parse failed:** the answer held no readable descriptor, so the mask is empty")
    elif not result.labels:
        lines.append("**Found:** nothing (the answer is all background)")
    colour_order = list(result.refined_masks)  # overlay_masks colours masks by insertion order
    for label in result.labels:
        refined, coarse = result.refined_masks.get(label), result.coarse_masks.get(label)
        box = result.boxes.get(label)
        area = "no mask"
        if refined is not None and coarse is not None:
            area = f"coarse {_percent(coarse)}, refined {_percent(refined)} of the image"
        box_text = "no box" if box is None else "box (x0, y0, x1, y1) = " + str(tuple(box))
        swatch = ""
        if label in colour_order:
            r, g, b = (int(v) for v in PALETTE[colour_order.index(label) % len(PALETTE)])
            swatch = f'<span style="color: rgb({r}, {g}, {b})">■</span> '
        lines.append(f"{swatch}**{_plain(label)}:** {area}; {box_text}")
    if result.instances:
        lines.append(f"**Instances:** {_plain(', '.join(result.instances))}")
    kinds = [getattr(r, "kind", str(r)) for r in result.repairs]
    lines.append(f"**Repairs:** {len(kinds)}" + (f" ({', '.join(sorted(set(kinds)))})" if kinds else ""))
    stages = ("load_image", "mllm", "parse", "refine", "total")
    timing = " · ".join(f"{s} {result.timings[s]:.2f} s" for s in stages if s in result.timings)
    lines.append(f"**Timings:** {timing}")
    return "\n\n".join(lines)


def _plain(text: str) -> str:
    """User or model text made inert in Markdown: HTML escaped, Markdown markup backslashed."""
    text = html.escape(text, quote=False)
    return "".join("\\" + c if c in MARKDOWN_MARKUP else c for c in text)


def _percent(mask: np.ndarray) -> str:
    return f"{100.0 * float(np.mean(mask)):.1f}%"
