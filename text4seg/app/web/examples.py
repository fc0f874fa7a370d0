"""Example uploads offered under the upload box, so a first visitor can try the demo in one click."""

from __future__ import annotations

from pathlib import Path

from data_builders.synthetic.config import SyntheticConfig
from data_builders.synthetic.scene import compose_scene, scene_rng

# Not a seed of the default model's synthetic training (100) or validation (4242) sets (scripts/build_default_model.sh),
# so the example is an image the model has not seen.
EXAMPLE_SEED = 90_210


def builtin_examples(folder: str | Path) -> dict[str, str]:
    """Write the built-in example images into ``folder``; returns {caption: PNG path}.

    One synthetic scene of the kind the default model was trained on, and scikit-image's real photo
    of handwriting on a board (a kind of image the default model has never seen).
    """
    from PIL import Image
    from skimage import data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scene = compose_scene(SyntheticConfig(), scene_rng(EXAMPLE_SEED, 0))
    paths = {
        "synthetic scene text": folder / "synthetic_scene.png",
        "photo of handwriting": folder / "handwriting.png",
    }
    Image.fromarray(scene.image).save(paths["synthetic scene text"])
    Image.fromarray(data.text()).save(paths["photo of handwriting"])
    return {caption: str(path) for caption, path in paths.items()}
