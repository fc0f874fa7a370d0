"""Metrics against numbers computed by hand, and the streaming/merge/resume contract."""

import json

import numpy as np
import pytest

from text4seg.core.metrics import RecMeter, ReferringMeter, SceneTextMeter, SemanticMeter, box_iou, mask_box


def _mask(h, w, *cells):
    m = np.zeros((h, w), dtype=bool)
    for r, c in cells:
        m[r, c] = True
    return m


# Image A: pred 4 px, gt 2 px, 2 shared -> I=2, U=4, P=0.5, R=1.
A = (_mask(2, 4, (0, 0), (0, 1), (1, 0), (1, 1)), _mask(2, 4, (0, 0), (0, 1)))
# Image B: pred 1 px, gt 3 px, 1 shared -> I=1, U=3, P=1, R=1/3.
B = (_mask(2, 4, (0, 3)), _mask(2, 4, (0, 3), (1, 3), (1, 2)))
# Image C: empty pred, gt 2 px -> I=0, U=2, P=0 (|P|=0), R=0.
C = (_mask(2, 4), _mask(2, 4, (0, 0), (1, 1)))


def test_scene_text_fgiou_is_accumulated_and_f_uses_mean_p_and_r():
    meter = SceneTextMeter()
    for pred, gt in (A, B, C):
        meter.update(pred, gt)
    out = meter.result()
    assert out["fgIoU"] == pytest.approx(3 / 9)  # (2+1+0)/(4+3+2), not the mean of 1/2, 1/3, 0
    p, r = (0.5 + 1 + 0) / 3, (1 + 1 / 3 + 0) / 3
    assert out["P"] == pytest.approx(p) and out["R"] == pytest.approx(r)
    assert out["F"] == pytest.approx(2 * p * r / (p + r))  # = 0.5 * (4/9) * 2 / (17/18)
    assert out["F"] == pytest.approx(16 / 34)
    assert out["n"] == 3


def test_ignore_pixels_count_as_background_in_both():
    pred, gt = _mask(1, 4, (0, 0), (0, 1)), _mask(1, 4, (0, 1), (0, 2))
    ignore = _mask(1, 4, (0, 2))
    meter = SceneTextMeter()
    per_image = meter.update(pred, gt, ignore=ignore)
    assert per_image["IoU"] == pytest.approx(1 / 2)  # gt pixel 2 ignored: I=1, U=2
    assert meter.result()["fgIoU"] == pytest.approx(1 / 2)


def test_referring_ciou_and_giou_with_empty_union_scoring_one():
    meter = ReferringMeter()
    meter.update(*A)  # 2/4
    meter.update(*B)  # 1/3
    meter.update(_mask(2, 4), _mask(2, 4))  # no target, nothing predicted: IoU 1
    out = meter.result()
    assert out["cIoU"] == pytest.approx(3 / 7)
    assert out["gIoU"] == pytest.approx((0.5 + 1 / 3 + 1) / 3)


def test_rec_accuracy_from_mask_boxes():
    gt = np.zeros((10, 10), dtype=bool)
    gt[0:4, 0:4] = True
    near = np.zeros_like(gt)
    near[0:4, 0:3] = True  # box IoU 12/16 = 0.75 -> hit
    far = np.zeros_like(gt)
    far[0:4, 2:6] = True  # box IoU 8/24 -> miss
    assert mask_box(near) == (0, 0, 3, 4)
    assert box_iou(mask_box(far), mask_box(gt)) == pytest.approx(8 / 24)
    meter = RecMeter()
    assert meter.update(near, gt) and not meter.update(far, gt) and not meter.update(np.zeros_like(gt), gt)
    assert meter.result()["Acc@0.5"] == pytest.approx(1 / 3)


def test_semantic_miou_counts_only_present_classes_and_states_background_rule():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 255]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 2, 2]])
    with_bg = SemanticMeter(num_classes=4)
    with_bg.update(pred, gt)
    # class 0: I=3, U=4; class 1: I=2, U=4 (pixel (1,3) ignored); class 2: I=0, U=1; class 3 absent.
    out = with_bg.result()
    assert out["per_class_IoU"] == [0.75, 0.5, 0.0, None]
    assert out["mIoU"] == pytest.approx((0.75 + 0.5 + 0.0) / 3) and out["classes_counted"] == 3
    no_bg = SemanticMeter(num_classes=4, include_background=False)
    no_bg.update(pred, gt)
    assert no_bg.result()["mIoU"] == pytest.approx(0.25) and not no_bg.result()["background_included"]


def test_shards_merge_to_the_single_process_result_and_state_survives_json():
    whole, left, right = SceneTextMeter(), SceneTextMeter(), SceneTextMeter()
    for i, (pred, gt) in enumerate((A, B, C)):
        whole.update(pred, gt)
        (left if i < 2 else right).update(pred, gt)
    resumed = SceneTextMeter()
    resumed.load_state_dict(json.loads(json.dumps(left.state_dict())))
    resumed.merge(right)
    assert resumed.result() == whole.result()
    sem, sem2 = SemanticMeter(num_classes=3), SemanticMeter(num_classes=3)
    sem.update(np.array([[0, 1]]), np.array([[0, 2]]))
    sem2.load_state_dict(json.loads(json.dumps(sem.state_dict())))
    assert sem2.result() == sem.result()


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"prediction shape \(2, 4\) != ground-truth shape \(4, 2\)"):
        SceneTextMeter().update(np.zeros((2, 4)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="cannot merge"):
        SceneTextMeter().merge(ReferringMeter())
