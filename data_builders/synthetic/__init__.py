"""Synthetic scene text: words drawn on photos and textures with exact stroke masks."""

from data_builders.synthetic.config import SyntheticConfig
from data_builders.synthetic.scene import Instance, SyntheticScene, compose_scene, scene_rng


def load_synthetic(path):
    """The `datasets.Dataset` written by `python -m data_builders.synthetic --out path` (Arrow layout)."""
    import datasets

    return datasets.load_from_disk(str(path))


__all__ = ["Instance", "SyntheticConfig", "SyntheticScene", "compose_scene", "load_synthetic", "scene_rng"]
