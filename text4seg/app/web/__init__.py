"""The web demo behind ``text4seg serve``: a Gradio page around ``Text4SegPipeline``."""

from text4seg.app.web.app import build_app, launch
from text4seg.app.web.config import ServeConfig
from text4seg.app.web.service import RequestError, SegmentService, WebAnswer

__all__ = ["RequestError", "SegmentService", "ServeConfig", "WebAnswer", "build_app", "launch"]
