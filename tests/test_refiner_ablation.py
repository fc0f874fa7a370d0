"""Each ST-SAM component switch changes the parameter counts by exactly that component's size."""

import pytest
import torch
from refiner_support import small_refiner_config, text_encoder

from stsam_refiner.build import build_refiner
from stsam_refiner.model import count_parameters

torch.set_num_threads(1)

VIT_DIM, DEPTH, DECODER_DIM, HR_CH = 32, 2, 32, 8


def _linear(n_in, n_out):
    return n_in * n_out + n_out


def _counts(**sections):
    model, _ = build_refiner(small_refiner_config(**sections), text_encoder=text_encoder())
    return count_parameters(model)


@pytest.fixture(scope="module")
def full():
    return _counts()


def test_adapters_add_two_bottlenecks_per_block(full):
    hidden = VIT_DIM // 4
    per_adapter = _linear(VIT_DIM, hidden) + _linear(hidden, VIT_DIM)
    off = _counts(adapter={"enabled": False})
    assert full[0] - off[0] == full[1] - off[1] == DEPTH * 2 * per_adapter


def test_parallel_text_adds_a_text_projection_per_block(full):
    ptx = _counts(adapter={"parallel_text": True})
    assert ptx[0] - full[0] == DEPTH * _linear(text_encoder().dim, VIT_DIM // 4)


def test_hr_head_size(full):
    off = _counts(hr_head={"enabled": False})
    in_ch = DECODER_DIM // 8 + 48  # decoder features + the 4×4 pixel-unshuffled RGB image
    expected = (
        in_ch * HR_CH * 4 + HR_CH + 2 * HR_CH  # ConvTranspose 2×2 + LayerNorm2d
        + HR_CH * HR_CH * 4 + HR_CH  # ConvTranspose 2×2
        + 4 * (HR_CH * HR_CH * 9 + HR_CH)  # four 3×3 convs
        + 2 * _linear(DECODER_DIM, DECODER_DIM) + _linear(DECODER_DIM, HR_CH)  # hypernetwork MLP
    )  # fmt: skip
    assert full[0] - off[0] == full[1] - off[1] == expected
    no_image = _counts(hr_head={"use_image": False})
    assert full[0] - no_image[0] == 48 * HR_CH * 4


def test_text_prompt_queries_and_affine(full):
    dim = text_encoder().dim
    no_text = _counts(text_prompt={"enabled": False}, alignment={"enabled": False})
    no_align = _counts(alignment={"enabled": False})
    text_size = 1 * dim + dim + _linear(dim, DECODER_DIM)  # L1 queries, no-description slot, TextAffine
    assert no_align[0] - no_text[0] == text_size
    more_queries = _counts(text_prompt={"num_queries": 4})
    assert more_queries[0] - full[0] == 3 * dim


def test_alignment_is_three_layers(full):
    off = _counts(alignment={"enabled": False})
    layer = 4 * _linear(DECODER_DIM, DECODER_DIM) + 2 * 2 * DECODER_DIM  # attention, two LayerNorms
    layer += _linear(DECODER_DIM, 64) + _linear(64, DECODER_DIM)  # MLP (mlp_dim 64)
    assert full[0] - off[0] == 3 * layer + _linear(DECODER_DIM, DECODER_DIM)


def test_dense_prompt_frozen_encoder_is_not_trainable(full):
    off = _counts(dense_prompt={"enabled": False})
    frozen = _counts(dense_prompt={"freeze_encoder": True})
    added = full[0] - off[0]
    assert added > 0 and frozen[0] == full[0]
    model, _ = build_refiner(small_refiner_config(), text_encoder=text_encoder())
    segformer = sum(p.numel() for p in model.dense_prompt.segformer.parameters())
    assert full[1] - frozen[1] == segformer  # freezing removes exactly the SegFormer encoder
    assert 0 < segformer < added


def test_frozen_sam_trains_only_additions_and_decoder():
    model, _ = build_refiner(small_refiner_config(sam={"freeze": True}), text_encoder=text_encoder())
    trainable = {
        n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad and n.startswith("sam.")
    }
    assert trainable == {"image_encoder", "mask_decoder"}
    encoder_trainable = [n for n, p in model.sam.image_encoder.named_parameters() if p.requires_grad]
    assert encoder_trainable and all("adapter" in n for n in encoder_trainable)
    assert not any(p.requires_grad for p in model.sam.prompt_encoder.parameters())
