"""SMAgg: over-segmented parts merge into their class, distractors stay apart."""

import numpy as np
import pytest

from stsam_refiner.points.aggregation import aggregate, match_scores
from stsam_refiner.points.config import AggregationConfig

H = W = 40


def box(r0, r1, c0, c1):
    m = np.zeros((H, W), dtype=bool)
    m[r0:r1, c0:c1] = True
    return m


def test_match_score_is_the_fraction_of_the_sam_mask_inside_the_class():
    sam = np.stack([box(0, 10, 0, 10), box(0, 10, 0, 20)])  # 100 px fully inside; 200 px half inside
    text = np.stack([box(0, 10, 0, 10)])
    assert match_scores(sam, text)[:, 0] == pytest.approx([1.0, 0.5], abs=1e-6)


def test_over_segmented_object_merges_and_distractor_is_kept_apart():
    # Coarse "person" covers rows 5..25, cols 5..20 (blocky, larger than the object); "car" on the right.
    person_coarse, car_coarse = box(4, 28, 4, 20), box(8, 20, 26, 38)
    head, torso, legs = box(5, 10, 9, 15), box(10, 18, 7, 17), box(18, 26, 8, 16)  # person in 3 parts
    car = box(10, 18, 27, 37)
    straddler = box(0, 4, 0, 40)  # a strip above both: 0 % inside any class
    half_out = box(24, 34, 10, 18)  # 4 of 10 rows inside person: O = 0.4 <= 0.5
    sam = np.stack([head, torso, legs, car, straddler, half_out])
    out = aggregate(sam, np.stack([person_coarse, car_coarse]))
    assert out.matched.tolist() == [
        [True, False],
        [True, False],
        [True, False],
        [False, True],
        [False, False],
        [False, False],
    ]
    assert np.array_equal(out.class_masks[0], head | torso | legs)
    assert np.array_equal(out.class_masks[1], car)
    assert len(out.unmatched) == 2
    assert np.array_equal(out.unmatched[0], straddler) and np.array_equal(out.unmatched[1], half_out)
    assert not out.from_coarse.any()
    # The refined person is the parts' union, not the blocky coarse mask.
    assert out.class_masks[0].sum() < person_coarse.sum()


def test_alpha_controls_merging():
    person_coarse = box(4, 28, 4, 20)
    half_out = box(24, 34, 10, 18)  # O = 0.4
    loose = aggregate(half_out[None], person_coarse[None], AggregationConfig(alpha=0.3))
    strict = aggregate(half_out[None], person_coarse[None], AggregationConfig(alpha=0.5))
    assert loose.matched[0, 0] and not strict.matched[0, 0]


def test_unmatched_class_keeps_its_coarse_mask_or_comes_out_empty():
    coarse = np.stack([box(0, 10, 0, 10), box(20, 30, 20, 30)])
    sam = box(1, 9, 1, 9)[None]
    kept = aggregate(sam, coarse)
    assert kept.from_coarse.tolist() == [False, True]
    assert np.array_equal(kept.class_masks[1], coarse[1])
    empty = aggregate(sam, coarse, AggregationConfig(keep_coarse_when_unmatched=False))
    assert not empty.class_masks[1].any() and not empty.from_coarse.any()
    none = aggregate(np.zeros((0, H, W), bool), coarse)
    assert none.from_coarse.all() and none.scores.shape == (0, 2)


def test_label_map_keeps_small_objects_on_top():
    big, small = box(0, 30, 0, 30), box(10, 15, 10, 15)
    out = aggregate(np.stack([big, small]), np.stack([box(0, 30, 0, 30) & ~small, box(9, 16, 9, 16)]))
    labels = out.label_map()
    assert labels[12, 12] == 2 and labels[2, 2] == 1 and labels[35, 35] == 0


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="differ in size"):
        match_scores(np.zeros((1, 4, 4), bool), np.zeros((1, 5, 5), bool))
    with pytest.raises(ValueError, match="alpha 1.0"):
        AggregationConfig(alpha=1.0)
