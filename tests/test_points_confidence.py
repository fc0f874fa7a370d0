"""Per-cell confidence from the MLLM's token probabilities (softens the TSPP head's class maps)."""

import numpy as np
import torch

from stsam_refiner.points.confidence import cell_confidence, descriptor_confidence, label_spans

torch.set_num_threads(1)
ANSWER = "Sure.\n<seg>others *2| dog *2\n dog *4\n</seg>"


def test_label_spans_point_at_the_labels():
    spans = label_spans(ANSWER, height=2, width=4)
    assert [(r, c, n) for r, c, n, _, _ in spans] == [(0, 0, 2), (0, 2, 2), (1, 0, 4)]
    assert [ANSWER[lo:hi] for *_, lo, hi in spans] == ["others", "dog", "dog"]
    assert label_spans(ANSWER, height=3, width=4) is None  # wrong row count
    assert label_spans(ANSWER, height=2, width=5) is None  # runs do not fill the width
    assert label_spans("no block", height=2, width=4) is None


def test_cell_confidence_takes_the_weakest_label_token():
    # Tokens: each label in two pieces (first letter, rest), everything else one per character.
    starts = {lo: hi for *_, lo, hi in label_spans(ANSWER, height=2, width=4)}
    offsets, i = [], 0
    while i < len(ANSWER):
        if i in starts:
            offsets += [(i, i + 1), (i + 1, starts[i])]
            i = starts[i]
        else:
            offsets.append((i, i + 1))
            i += 1
    probs = np.full(len(offsets), 0.99)
    others_lo, second_dog_lo = sorted(starts)[0], sorted(starts)[2]
    probs[offsets.index((others_lo, others_lo + 1))] = 0.7  # "o" of "others"
    probs[offsets.index((second_dog_lo + 1, second_dog_lo + 3))] = 0.4  # "og" of the second "dog"
    conf = cell_confidence(ANSWER, offsets, probs, height=2, width=4)
    np.testing.assert_allclose(conf, [[0.7, 0.7, 0.99, 0.99], [0.4, 0.4, 0.4, 0.4]], rtol=1e-6)


def test_descriptor_confidence_with_a_tiny_llava(tmp_path):
    from text4seg.core.templates import get_template_set
    from text4seg.mllm.generate import segment
    from text4seg.mllm.loading import load_mllm
    from text4seg.mllm.tiny import build_tiny_llava

    loaded = load_mllm(build_tiny_llava(tmp_path / "m"))
    image = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    result = segment(loaded.model, loaded.processor, image, "text", grid=(4, 4))
    question = get_template_set("fixed").question("scene_text", "text")
    conf = descriptor_confidence(
        loaded.model, loaded.processor, image, question, result.text, height=4, width=4
    )
    assert conf is not None and conf.shape == (4, 4)
    assert ((conf > 0) & (conf <= 1)).all()
