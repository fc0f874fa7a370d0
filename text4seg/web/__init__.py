"""The web demo behind ``text4seg serve``: a Gradio page around ``Text4SegPipeline``."""

from text4seg.web.app import build_app, launch
from text4seg.web.config import ServeConfig
from text4seg.web.service import RequestError, SegmentService, WebAnswer

__all__ = ["RequestError", "SegmentService", "ServeConfig", "WebAnswer", "build_app", "launch"]
