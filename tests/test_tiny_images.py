"""Images a few pixels high go through the pipeline as H×W×C: transformers is told the channel
layout instead of guessing it from the shape (issue 17: a 1×1 image printed "channel dimension is
ambiguous", and a 3×W image was read channels-first)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from pipeline_support import random_image, tiny_pipeline

from text4seg.core.templates import build_inputs

torch.set_num_threads(1)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def transformers_log():
    """Everything transformers logs during the test (its loggers may not propagate to the root)."""
    handler, logger = _Records(), logging.getLogger("transformers")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (1, 7)])
def test_tiny_image_segments_without_a_channel_guess(size, transformers_log):
    image = random_image(*size)
    result = tiny_pipeline()(image, "segment the text in this image")
    assert result.mask().shape == size
    assert not [m for m in transformers_log if "channel dimension is ambiguous" in m]


def test_three_pixel_high_image_is_read_channels_last():
    processor = tiny_pipeline().mllm.processor
    image = random_image(3, 5)
    pixels = build_inputs(processor, image, "<image>\nhi")["pixel_values"]
    # The same image as 6×10 (each pixel doubled) is unambiguous; nearest-resized, they match.
    bigger = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    reference = build_inputs(processor, bigger, "<image>\nhi")["pixel_values"]
    assert pixels.shape == reference.shape
    assert torch.allclose(pixels.mean(dim=(2, 3)), reference.mean(dim=(2, 3)), atol=0.05)
