"""Settings of the web demo (``text4seg serve``)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from text4seg.core.config import Config
from text4seg.core.inference import InferenceSettings
from text4seg.core.io import MAX_PIXELS

LOOPBACK_NAMES = ("localhost",)
TASKS = (None, "scene_text", "referring", "semantic")


@dataclass(frozen=True, kw_only=True)
class ServeConfig(Config):
    """How the demo listens, what it accepts and how many requests it works on at once."""

    host: str = "127.0.0.1"
    """Interface to bind. Loopback by default: the demo has no authentication, so exposing it on
    a network interface is a deliberate choice (``--host 0.0.0.0``)."""
    port: int = 7860
    """TCP port (0 is not accepted: Gradio needs a concrete port to print its URL)."""
    max_upload_mb: float = 20.0
    """Largest accepted upload in MiB; Gradio's upload route refuses bigger files before they are stored."""
    max_pixels: int = MAX_PIXELS
    """Largest accepted image (width × height); a small file that decodes to more pixels is refused
    as a decompression bomb before it is decoded."""
    concurrency: int = 2
    """Requests processed at the same time (Gradio queue workers for the segment event)."""
    max_queue: int = 32
    """Requests allowed to wait in the queue; further users are told the demo is busy."""
    grid: tuple[int, int] = InferenceSettings().grid
    """Descriptor grid (rows, columns) the model is asked for; ``text4seg serve`` sets it to the
    loaded model's own (its ``inference.json``) unless ``--grid`` is given."""
    constrained: bool = True
    """Decode under the R-RLE grammar (False: free decoding, answers may need parser repairs)."""
    task: str | None = None
    """Force every query to one task (scene_text, referring, semantic); None reads it from the query."""
    max_query_chars: int = 300
    """Longest query accepted (the tiny models have short contexts)."""
    display_max_side: int = 1600
    """Overlays are downscaled so their longer side is at most this many pixels before being sent
    to the browser; masks are computed at full resolution."""
    keep_files_minutes: int = 60
    """Uploads and drawn overlays are deleted from Gradio's file cache once they are this old
    (checked as often), so a long-running demo does not fill the disk."""
    default_query: str = "segment the text in this image"
    """Query pre-filled in the text box."""
    examples: list[str] = field(default_factory=list)
    """Example image files shown under the upload box (may be empty)."""
    builtin_examples: bool = True
    """Also offer a synthetic scene and a real photo of handwriting as examples."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", tuple(int(v) for v in self.grid))
        if len(self.grid) != 2 or min(self.grid) < 1:
            raise ValueError(f"grid must be two positive sizes (rows, columns), got {self.grid}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        if not 0 < self.max_upload_mb <= 1024:
            raise ValueError(f"max_upload_mb must be in (0, 1024], got {self.max_upload_mb}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be positive, got {self.max_pixels}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.max_queue < self.concurrency:
            raise ValueError(f"max_queue {self.max_queue} is smaller than concurrency {self.concurrency}")
        if self.task not in TASKS:
            raise ValueError(f"task {self.task!r} not in {TASKS}")
        if self.max_query_chars < 1:
            raise ValueError(f"max_query_chars must be positive, got {self.max_query_chars}")
        if self.display_max_side < 64:
            raise ValueError(f"display_max_side must be at least 64 pixels, got {self.display_max_side}")
        if self.keep_files_minutes < 1:
            raise ValueError(f"keep_files_minutes must be at least 1, got {self.keep_files_minutes}")
        for path in self.examples:
            if not Path(path).is_file():
                raise ValueError(f"example image {path} does not exist")

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def is_loopback(self) -> bool:
        """Whether ``host`` only accepts connections from this machine."""
        if self.host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False
