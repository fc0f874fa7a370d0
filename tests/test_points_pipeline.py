"""Point refinement modes plug into the pipeline's refinement registry; configs parse."""

from pathlib import Path

import numpy as np
import pytest
import torch

from stsam_refiner.points.build import build_point_refiner
from stsam_refiner.points.config import PointsConfig, PromptingConfig, TargetConfig
from text4seg.app.refiners import (
    POINT_MODES,
    REFINERS,
    PointsRefiner,
    RefineRequest,
    RefinerParts,
    build_refiner,
)
from text4seg.core.query import interpret_query

torch.set_num_threads(1)
CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "points").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_points_yaml_parses(path):
    from stsam_refiner.points.train_sam import PointSamTrainConfig

    cls = PointSamTrainConfig if path.name.startswith("train_sam") else PointsConfig
    cfg = cls.from_yaml(path)
    if isinstance(cfg, PointsConfig):
        assert PointsConfig.from_dict(cfg.to_dict()) == cfg
        assert cfg.targets.grid_size == 32 and cfg.targets.g_p == 5 and cfg.targets.m_p == 10
        assert cfg.aggregation.alpha == 0.5 and cfg.prompter.lambda_mse == 0.5
    else:
        assert cfg.image_size % 16 == 0


def test_configs_exist_and_reject_unknown_keys():
    assert {p.name for p in CONFIGS} >= {"tspp.yaml", "train_sam_tiny.yaml"}
    with pytest.raises(ValueError, match="unknown key 'aggregation.beta'"):
        PointsConfig.from_dict({"aggregation": {"beta": 1}})
    with pytest.raises(ValueError, match="points.mode 'dense'"):
        PointsConfig(mode="dense")


def test_point_modes_resolve_through_the_refiner_registry():
    from stsam_refiner.sam_backbone import SAM_ARCHS, sam_from_arch
    from text4seg.app import pipeline as pl

    assert set(POINT_MODES) <= set(REFINERS)
    assert pl.PipelineConfig(refine_mode="tspp").refine_mode == "tspp"

    torch.manual_seed(0)
    sam = sam_from_arch(SAM_ARCHS["tiny"], 64).eval()
    cfg = PointsConfig(
        prompting=PromptingConfig(pred_iou_thresh=0.0, stability_score_thresh=0.0),
        targets=TargetConfig(grid_size=4),
    )
    grids = {"text": np.zeros((8, 8), bool), "text 1": np.zeros((8, 8), bool)}
    grids["text"][2:5, 2:6] = True
    grids["text 1"][2:5, 2:4] = True
    request = RefineRequest(image=np.zeros((64, 64, 3), np.uint8), grids=grids, query=interpret_query("text"))
    with pytest.raises(ValueError, match="needs a point refiner"):
        build_refiner("grid", RefinerParts())
    refiner = build_refiner("grid", RefinerParts(points=build_point_refiner(cfg, sam=sam)))
    assert isinstance(refiner, PointsRefiner) and refiner.mode == "grid"
    out = refiner.refine(request)
    assert set(out) == {"text", "text 1"}
    assert all(m.shape == (64, 64) and m.dtype == bool for m in out.values())
    # The class grid is the union of its instances' grids, so a SAM mask that joins "text 1" joins "text".
    detail = refiner.points.refine(request.image, np.stack([grids["text"], grids["text 1"]]), mode="grid")
    matched = detail.aggregated.matched
    assert len(matched) > 0 and np.all(matched[:, 1] <= matched[:, 0])
