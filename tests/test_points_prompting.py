"""Point sources, SAM prompting through segment-anything's generator, and the refiner's modes."""

import numpy as np
import pytest
import torch
from segment_anything.utils.amg import build_point_grid

from stsam_refiner.points.config import PointsConfig, PromptingConfig, SamplingConfig, TargetConfig
from stsam_refiner.points.prompting import (
    POINT_SOURCES,
    PointRequest,
    masks_from_points,
    normalized_points,
    sample_from_prob,
)
from stsam_refiner.points.refiner import PointRefiner, coarse_to_image

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_sam():
    from stsam_refiner.sam_backbone import SAM_ARCHS, sam_from_arch

    torch.manual_seed(0)
    return sam_from_arch(SAM_ARCHS["tiny"], 64).eval()


def open_cfg(**kw) -> PointsConfig:
    # A random SAM's masks fail SAM's quality filters; open them so every mask is counted.
    return PointsConfig(prompting=PromptingConfig(pred_iou_thresh=0.0, stability_score_thresh=0.0, **kw))


def test_samplers():
    prob = np.zeros((8, 8))
    prob[2, 3], prob[5, 5], prob[1, 1] = 0.9, 0.6, 0.4  # Σ = 1.9 → 2 points
    top = sample_from_prob(prob, SamplingConfig(sampler="top"), np.random.default_rng(0))
    assert top.tolist() == [[2, 3], [5, 5]]
    multi = sample_from_prob(prob, SamplingConfig(sampler="multinomial"), np.random.default_rng(0))
    assert len(multi) == 2 and all(prob[r, c] > 0 for r, c in multi)
    counts = [
        len(
            sample_from_prob(
                prob, SamplingConfig(sampler="bernoulli", min_points=0), np.random.default_rng(s)
            )
        )
        for s in range(400)
    ]
    assert np.mean(counts) == pytest.approx(1.9, abs=0.1)  # E[N_p] = Σ p (SAM-MI Eq. 2)
    empty = sample_from_prob(np.zeros((8, 8)), SamplingConfig(min_points=1), np.random.default_rng(0))
    assert len(empty) == 1
    capped = sample_from_prob(np.ones((8, 8)), SamplingConfig(max_points=5), np.random.default_rng(0))
    assert len(capped) == 5


def test_spread_draws_keep_their_distance_until_no_point_is_left():
    prob = np.full((8, 8), 0.25)  # Σ = 16 points
    for seed in range(20):
        pts = sample_from_prob(
            prob, SamplingConfig(sampler="multinomial", spread_radius=2), np.random.default_rng(seed)
        )
        assert len(pts) == 16 and len({tuple(p) for p in pts.tolist()}) == 16
        # three 5×5 exclusion blocks cannot cover 8×8, so the first four points are always > 2 apart
        first = pts[:4]
        for i in range(len(first)):
            for j in range(i):
                assert np.abs(first[i] - first[j]).max() > 2
    # a cluster of high probability beside a low one: spreading moves the second point away
    peaked = np.zeros((8, 8))
    peaked[0:2, 0:2] = 1.0
    peaked[6, 6] = 0.01
    plain = [
        sample_from_prob(peaked * 0.5, SamplingConfig(sampler="multinomial"), np.random.default_rng(s))
        for s in range(50)
    ]
    spread = [
        sample_from_prob(
            peaked * 0.5, SamplingConfig(sampler="multinomial", spread_radius=2), np.random.default_rng(s)
        )
        for s in range(50)
    ]
    assert all(len(p) == 2 for p in plain + spread)
    assert sum([6, 6] in p.tolist() for p in spread) == 50  # the only point not ruled out
    assert sum([6, 6] in p.tolist() for p in plain) < 5
    with pytest.raises(ValueError, match="spread_radius"):
        SamplingConfig(sampler="multinomial", spread_radius=-1)
    with pytest.raises(ValueError, match="spread_radius needs sampler multinomial"):
        SamplingConfig(sampler="bernoulli", spread_radius=2)


def test_budget_scale_multiplies_the_expected_points(tiny_sam):
    from stsam_refiner.points.config import PrompterConfig
    from stsam_refiner.points.prompter import SparsePointPrompter, predict_prob

    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    coarse = np.zeros((1, 8, 8), dtype=bool)
    coarse[0, 2:6, 2:6] = True
    torch.manual_seed(0)
    prompter = SparsePointPrompter(cfg=PrompterConfig(), grid_size=16).eval()
    expected = predict_prob(prompter, coarse.astype(np.float32), image).sum()
    counts = {}
    for scale in (1.0, 3.0):
        cfg = open_cfg().with_overrides(
            {"targets.grid_size": 16, "sampling": {"sampler": "multinomial", "budget_scale": scale}}
        )
        out = PointRefiner(sam=tiny_sam, cfg=cfg, prompter=prompter).refine(image, coarse, mode="tspp")
        counts[scale] = out.num_points
        assert out.num_points == max(1, min(round(scale * expected), 256))
    assert counts[3.0] > counts[1.0]
    with pytest.raises(ValueError, match="budget_scale"):
        SamplingConfig(budget_scale=0)


def test_grid_source_is_sams_point_grid_and_random_is_a_subset():
    req = PointRequest(grid_size=32, rng=np.random.default_rng(0), budget=41)
    grid = normalized_points(POINT_SOURCES["grid"](req), 32)
    np.testing.assert_allclose(grid, build_point_grid(32))
    rand = POINT_SOURCES["random"](req)
    assert len(rand) == 41 and len({tuple(p) for p in rand.tolist()}) == 41
    pts = normalized_points(rand, 32)
    assert all(any(np.allclose(p, g) for g in grid) for p in pts[:5])
    with pytest.raises(ValueError, match="budget"):
        POINT_SOURCES["random"](PointRequest(grid_size=32, rng=np.random.default_rng(0)))


def test_masks_from_points_uses_the_given_points(tiny_sam):
    image = np.random.default_rng(0).integers(0, 255, size=(64, 48, 3), dtype=np.uint8)
    pts = np.array([[0.25, 0.25], [0.75, 0.5]])
    out = masks_from_points(tiny_sam, image, pts, open_cfg().prompting)
    assert out.masks.shape[1:] == (64, 48) and out.masks.dtype == bool
    assert 1 <= len(out.masks) <= 6  # three outputs per point, before NMS
    np.testing.assert_allclose(out.points, [[12, 16], [36, 32]])
    none = masks_from_points(tiny_sam, image, np.zeros((0, 2)), open_cfg().prompting)
    assert none.masks.shape == (0, 64, 48)


def test_sparse_modes_take_their_own_filters(tiny_sam):
    cfg = PromptingConfig(pred_iou_thresh=0.3, box_nms_thresh=0.7, sparse_pred_iou_thresh=0.1)
    for mode in ("tspp", "random"):
        sparse = cfg.for_mode(mode)
        assert (sparse.pred_iou_thresh, sparse.box_nms_thresh) == (0.1, 0.7)  # unset override: grid's
    for mode in ("grid", "text4seg"):
        assert cfg.for_mode(mode) is cfg
    with pytest.raises(ValueError, match="sparse_box_nms_thresh 1.5"):
        PromptingConfig(sparse_box_nms_thresh=1.5)
    # The refiner prompts SAM with them: a strict grid filter drops every random-SAM mask, while the
    # open sparse filter keeps the random mode's masks.
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    coarse = np.zeros((1, 8, 8), dtype=bool)
    coarse[0, 2:6, 2:6] = True
    points = PointsConfig(
        prompting=PromptingConfig(
            pred_iou_thresh=1.0, stability_score_thresh=0.0, sparse_pred_iou_thresh=0.0, random_points=6
        ),
        targets=TargetConfig(grid_size=8),
    )
    refiner = PointRefiner(sam=tiny_sam, cfg=points)
    assert len(refiner.refine(image, coarse, mode="grid").proposals.masks) == 0
    assert len(refiner.refine(image, coarse, mode="random").proposals.masks) > 0


def test_refiner_modes_return_one_mask_per_class(tiny_sam):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    coarse = np.zeros((2, 8, 8), dtype=bool)
    coarse[0, 1:4, 1:4] = True
    coarse[1, 5:7, 4:8] = True
    cfg = open_cfg(random_points=7).with_overrides({"targets.grid_size": 8})
    refiner = PointRefiner(sam=tiny_sam, cfg=cfg)
    grid = refiner.refine(image, coarse, mode="grid")
    rand = refiner.refine(image, coarse, mode="random")
    assert grid.num_points == 64 and rand.num_points == 7
    for out in (grid, rand):
        assert out.class_masks.shape == (2, 64, 64)
        assert out.aggregated.scores.shape == (len(out.proposals.masks), 2)
    t4s = refiner.refine(image, np.concatenate([coarse, np.zeros((1, 8, 8), bool)]), mode="text4seg")
    assert t4s.class_masks.shape == (3, 64, 64) and not t4s.class_masks[2].any()
    assert t4s.num_points == 2 * 2 * cfg.text4seg.num_points
    with pytest.raises(ValueError, match="trained prompter"):
        refiner.refine(image, coarse, mode="tspp")


def test_coarse_to_image_thresholds_soft_maps():
    soft = np.array([[[0.2, 0.9], [0.6, 0.4]]])
    up = coarse_to_image(soft, (4, 4))
    assert up[0].tolist() == [[False, False, True, True]] * 2 + [[True, True, False, False]] * 2
