"""The common Record checks its invariants and names the numbers when they fail."""

import numpy as np
import pytest

from data_builders.records import Record, records_to_dataset


def make(**kw):
    base = {
        "image": np.zeros((4, 6, 3), np.uint8), "mask": np.zeros((4, 6), bool), "text": "text",
        "task": "scene_text", "split": "train", "source_id": "x/train/1",
    }  # fmt: skip
    return Record(**{**base, **kw})


def test_valid_record_and_its_size():
    assert make().size == (4, 6)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"image": np.zeros((4, 6), np.uint8)}, r"HxWx3 uint8, got \(4, 6\)"),
        ({"mask": np.zeros((5, 6), bool)}, r"mask must be bool \(4, 6\)"),
        ({"mask": np.zeros((4, 6), np.uint8)}, "mask must be bool"),
        ({"task": "detect"}, "task 'detect'"),
        ({"ignore": np.zeros((4, 7), bool)}, r"ignore mask shape \(4, 7\) != image \(4, 6\)"),
        ({"task": "semantic", "mask": None}, "semantic label_map shape None"),
    ],
)
def test_invalid_records_raise_value_error(kw, message):
    with pytest.raises(ValueError, match=message):
        make(**kw)


def test_records_to_dataset_stores_masks_as_0_255():
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:5] = True
    data = records_to_dataset([make(mask=mask)])
    stored = np.asarray(data[0]["mask"])
    assert set(np.unique(stored)) == {0, 255} and np.array_equal(stored > 127, mask)
