"""A registry detector run as its ONNX graph with onnxruntime, with the input convention its weights expect.

One implementation of the zero-shot detector's preprocessing, shared by the word reader
(``text4seg.backbone.reader``) and the real-photo benchmark (``benchmarks/real_photos.py``): H×W×3 uint8
RGB → channel order of the spec (BGR for PaddleOCR), long side scaled to ``side`` and both sides rounded
to multiples of the stride, /255, then the spec's mean/std per channel (PaddleOCR's ``NormalizeImage``,
quirk included: see ``registry``). With ``min_side`` the long side is only brought into
[``min_side``, ``side``]: PaddleOCR's ``DetResizeForTest`` with ``limit_type: max`` shrinks a large image
and keeps a small one as it is; ours also grows one smaller than ``min_side`` up to it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from text4seg.backbone.registry import detector_spec, locate_onnx


def check_rgb(image: np.ndarray) -> None:
    """``ValueError`` naming the shape and dtype unless ``image`` is H×W×3 uint8."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape, dtype = getattr(image, "shape", None), getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"expected an H×W×3 uint8 RGB image, got shape {shape} dtype {dtype}")


@functools.cache
def onnx_session(path: Path, *, threads: int):
    """A CPU onnxruntime session on ``path`` using ``threads`` intra-op threads (one inter-op).

    One session per (file, threads) in the process: the reader's detector views (512 px, 960 px, the
    image's own size) and a pipeline's text gate share it, where a session each held the graph and its
    buffers three times (peak RSS of ``benchmarks/pipeline.py`` 1.75 GB → 1.43 GB with the gate on).
    No memory arena: inputs of many sizes would otherwise each grow one that is never given back.
    ``run`` may be called from several threads at once (onnxruntime's sessions allow it).
    """
    # lazy: onnxruntime is only needed by the ONNX paths, not by the torch backbone
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def detector_input_size(
    height: int, width: int, *, side: int, stride: int = 32, min_side: int | None = None
) -> tuple[int, int]:
    """(H', W'): long side scaled to ``side`` (with ``min_side``: into [``min_side``, ``side``], kept when
    it lies there), each side rounded to a multiple of ``stride`` (≥ stride)."""
    long = max(height, width)
    target = side if min_side is None else min(side, max(long, min_side))
    ratio = target / long
    return tuple(max(stride, int(round(int(v * ratio) / stride)) * stride) for v in (height, width))


class OnnxDetector:
    """A registry detector's ONNX graph: H×W×3 uint8 RGB → text probability map.

    The session is created on the first call. ``network_probability`` returns the map at the network's
    input size (H'×W', what DB post-processing works on); calling the detector returns it resized back
    bilinearly to the image's H×W.
    """

    def __init__(
        self,
        *,
        detector: str = "ppocrv5",
        side: int = 960,
        min_side: int | None = None,
        threads: int = 1,
        onnx_path: str | None = None,
    ) -> None:
        if side < 32:
            raise ValueError(f"side must be at least 32, got {side}")
        if min_side is not None and not 32 <= min_side <= side:
            raise ValueError(f"min_side must lie in [32, side={side}], got {min_side}")
        if threads < 1:
            raise ValueError(f"threads must be positive, got {threads}")
        self.spec = detector_spec(detector)
        self.detector = detector
        self.side = side
        self.min_side = min_side
        self.threads = threads
        self.onnx_path = onnx_path
        self.mean = np.array(self.spec.mean, np.float32)
        self.std = np.array(self.spec.std, np.float32)
        self._session = None

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """(H', W') the network sees for an H×W image."""
        return detector_input_size(
            height, width, side=self.side, stride=self.spec.stride, min_side=self.min_side
        )

    def network_input(self, rgb: np.ndarray) -> np.ndarray:
        """1×3×H'×W' float32: the resized, reordered and normalised image."""
        check_rgb(rgb)
        th, tw = self.input_size(*rgb.shape[:2])
        resized = np.asarray(Image.fromarray(rgb).resize((tw, th), Image.BILINEAR), np.float32)
        channels = resized[..., ::-1] if self.spec.bgr else resized
        x = ((channels / 255.0 - self.mean) / self.std).transpose(2, 0, 1)[None]
        return x.astype(np.float32)

    def network_probability(self, rgb: np.ndarray) -> np.ndarray:
        """H'×W' float32 in [0, 1]: the DB probability map at the network's input size."""
        if self._session is None:
            path = locate_onnx(self.detector, override=self.onnx_path)
            self._session = onnx_session(path, threads=self.threads)
        name = self._session.get_inputs()[0].name
        return self._session.run(None, {name: self.network_input(rgb)})[0][0, 0]

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """H×W float32: the probability map resized back bilinearly to the image's size."""
        prob = self.network_probability(rgb)
        h, w = rgb.shape[:2]
        return np.asarray(Image.fromarray(prob.astype(np.float32)).resize((w, h), Image.BILINEAR))
