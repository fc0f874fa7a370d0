"""TSPP probability targets against SAM-MI's Eq. 3–5, computed by hand on hand-made grid masks."""

import math

import numpy as np
import pytest

from stsam_refiner.points.config import TargetConfig
from stsam_refiner.points.targets import expected_points, point_mask, tspp_target

D = 32


def rect(r0, r1, c0, c1, size=D):
    m = np.zeros((size, size), dtype=bool)
    m[r0:r1, c0:c1] = True
    return m


def bar_by_hand(r0, r1, c0, c1, skel_row, skel_c0, skel_c1, p_k):
    """Eq. 3 for a rectangle whose skeleton is the segment row skel_row, columns [skel_c0, skel_c1]:
    the distance to a horizontal segment is sqrt(dr² + dc²), dc the column gap to the segment."""
    d2 = {}
    for r in range(r0, r1):
        for c in range(c0, c1):
            dc = max(skel_c0 - c, 0, c - skel_c1)
            d2[r, c] = (r - skel_row) ** 2 + dc**2
    sigma = math.sqrt(max(d2.values())) / 3
    g = {k: (math.exp(-v / (2 * sigma**2)) if sigma > 0 else 1.0) for k, v in d2.items()}
    total = sum(g.values())
    expected = np.zeros((D, D))
    for (r, c), v in g.items():
        expected[r, c] = p_k * v / total
    return expected, sigma


def test_expected_points_formula():
    assert [expected_points(a, g_p=5, m_p=10) for a in (0, 1, 5, 6, 15, 49, 50, 51, 400)] == [
        0,
        1,
        1,
        2,
        3,
        10,
        10,
        10,
        10,
    ]


def test_one_blob_matches_hand_computation():
    # 3×5 bar: skeleton = its middle row; top/bottom rows are 1 step away, so σ = 1/3 and
    # P = ceil(15 / 5) = 3.
    target = tspp_target([rect(10, 13, 4, 9)])
    (m,) = target.masks
    assert m.area == 15 and m.expected == 3
    assert m.sigma == pytest.approx(1 / 3)
    assert np.array_equal(m.skeleton, rect(11, 12, 4, 9))
    e = math.exp(-4.5)
    mid, edge = 3 / (5 + 10 * e), 3 * e / (5 + 10 * e)
    assert target.prob[11, 4:9] == pytest.approx([mid] * 5)
    assert target.prob[10, 4:9] == pytest.approx([edge] * 5)
    assert target.prob[12, 4:9] == pytest.approx([edge] * 5)
    assert target.expected_points == pytest.approx(3.0)
    assert target.prob[rect(10, 13, 4, 9) == 0].sum() == 0


def test_two_blobs_of_different_sizes_as_two_masks():
    small, large = rect(2, 5, 2, 7), rect(14, 19, 10, 19)  # 3×5 (15 points), 5×9 (45 points)
    target = tspp_target([small, large])
    assert [m.expected for m in target.masks] == [3, 9]
    # 5×9: Lee's skeleton is the middle row without its end points (columns 11..17).
    assert np.array_equal(target.masks[1].skeleton, rect(16, 17, 11, 18))
    hand_small, _ = bar_by_hand(2, 5, 2, 7, 3, 2, 6, 3)
    hand_large, sigma = bar_by_hand(14, 19, 10, 19, 16, 11, 17, 9)
    assert target.masks[1].sigma == pytest.approx(sigma) == pytest.approx(math.sqrt(5) / 3)
    np.testing.assert_allclose(target.prob, hand_small + hand_large, rtol=1e-12, atol=1e-15)
    assert target.expected_points == pytest.approx(12.0)
    # Per point, the small blob is sampled more densely than the large one (SAM-MI's Fig. 9).
    assert target.prob[small].mean() > target.prob[large].mean()


def test_two_blobs_in_one_class_mask_share_one_budget_unless_split():
    small, large = rect(2, 5, 2, 7), rect(14, 19, 10, 19)
    joint = tspp_target([small | large])
    assert len(joint.masks) == 1 and joint.masks[0].area == 60
    assert joint.expected_points == pytest.approx(min(math.ceil(60 / 5), 10))
    split = tspp_target([small | large], TargetConfig(split_components=True))
    assert [m.area for m in split.masks] == [45, 15]
    np.testing.assert_allclose(split.prob, tspp_target([large, small]).prob)


def test_thin_stroke_spreads_its_budget_evenly():
    # A one-point-wide stroke is its own skeleton: d = 0 everywhere, σ = 0, p = P / area.
    stroke = rect(20, 21, 3, 15)  # 12 points
    target = tspp_target([stroke])
    (m,) = target.masks
    assert m.sigma == 0.0 and m.expected == 3
    assert target.prob[20, 3:15] == pytest.approx([3 / 12] * 12)
    # Two points wide: Lee keeps the lower row, the upper row is 1 step away.
    wide = tspp_target([rect(20, 22, 3, 15)])
    e = math.exp(-4.5)
    assert wide.masks[0].expected == 5
    assert wide.prob[21, 3:15] == pytest.approx([5 / (12 + 12 * e)] * 12)
    assert wide.prob[20, 3:15] == pytest.approx([5 * e / (12 + 12 * e)] * 12)


def test_cap_and_empty_masks():
    target = tspp_target([rect(0, 20, 0, 20), np.zeros((D, D), bool)])
    assert [m.expected for m in target.masks] == [10, 0]
    assert target.expected_points == pytest.approx(10.0)


def test_full_resolution_mask_uses_sams_grid_points():
    # Pixel mask at 256×256: grid point i sits at pixel (i + ½)·8 = 8i + 4.
    full = np.zeros((256, 256), dtype=bool)
    full[80:104, 32:72] = True  # rows 80..103 hold points 10, 11, 12; cols 32..71 hold points 4..8
    assert np.array_equal(point_mask(full, D), rect(10, 13, 4, 9))
    np.testing.assert_allclose(tspp_target([full]).prob, tspp_target([rect(10, 13, 4, 9)]).prob)
    # A mask that misses every grid point is empty on the grid.
    speck = np.zeros((256, 256), dtype=bool)
    speck[0:3, 0:3] = True
    assert tspp_target([speck]).masks[0].area == 0


def test_config_rejects_bad_numbers():
    with pytest.raises(ValueError, match="g_p 0"):
        TargetConfig(g_p=0)
    with pytest.raises(ValueError, match="skeleton 'medial'"):
        TargetConfig(skeleton="medial")
