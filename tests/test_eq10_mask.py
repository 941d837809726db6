"""Eq. 10, the guided mask in Wan's I2V packing. Spec: specs/eq10_guided_mask.md"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nanofourdnex.paper.fusion import split
from nanofourdnex.paper.mask import guided_mask, modality_mask, pack_temporal
from tests.strategies import pixel_frames, sequence_strategies, strategies_

pytestmark = pytest.mark.eq10
sides = st.integers(1, 5)


def wan_pipeline_mask(num_frames: int, h: int, w: int) -> torch.Tensor:
    """The mask exactly as diffusers' WanImageToVideoPipeline.prepare_latents builds it (batch 1)."""
    mask = torch.ones(1, num_frames, h, w)
    mask[:, 1:] = 0
    first = torch.repeat_interleave(mask[:, 0:1], dim=1, repeats=4)
    mask = torch.concat([first, mask[:, 1:]], dim=1)
    mask = mask.view(1, -1, 4, h, w)
    return mask.transpose(1, 2)  # (1, 4, f, h, w)


@given(pixel_frames, sides, sides)
def test_rgb_half_is_packed_exactly_like_the_wan_i2v_pipeline(num_frames, h, w):
    packed = pack_temporal(modality_mask(num_frames, h, w, 1.0))
    assert torch.equal(packed[None], wan_pipeline_mask(num_frames, h, w))


@given(pixel_frames, sides, sides, strategies_)
def test_rgb_first_frame_is_one_xyz_first_frame_is_half_rest_zero(num_frames, h, w, strategy):
    rgb, xyz = split(guided_mask(num_frames, h, w, strategy), strategy)
    f = (num_frames - 1) // 4 + 1
    assert rgb.shape == xyz.shape == (1, 4, f, h, w)
    assert (rgb[:, :, 0] == 1).all() and (xyz[:, :, 0] == 0.5).all()
    assert (rgb[:, :, 1:] == 0).all() and (xyz[:, :, 1:] == 0).all()


@given(pixel_frames, sides, sides, sequence_strategies)
def test_pixel_rate_mask_has_eq10_values(num_frames, h, w, strategy):
    mask = guided_mask(num_frames, h, w, strategy, packed=False)
    rgb, xyz = split(mask, strategy)
    assert rgb.shape == (1, 1, num_frames, h, w)
    assert (rgb[:, :, 0] == 1).all() and (xyz[:, :, 0] == 0.5).all()
    assert mask.sum() == 1.5 * h * w  # nothing else is known


@given(pixel_frames, sides, sides)
def test_width_fused_mask_halves_sit_side_by_side(num_frames, h, w):
    mask = guided_mask(num_frames, h, w, "width")
    assert mask.shape == (1, 4, (num_frames - 1) // 4 + 1, h, 2 * w)
    assert (mask[..., 0, :, :w] == 1).all() and (mask[..., 0, :, w:] == 0.5).all()


@given(pixel_frames, sides, sides, st.floats(0, 1))
def test_packing_preserves_every_pixel_frame_value(num_frames, h, w, value):
    pixel = modality_mask(num_frames, h, w, value)
    pixel[1:] = torch.rand(num_frames - 1, h, w)
    packed = pack_temporal(pixel)
    # latent frame k ≥ 1, channel c holds pixel frame 4(k − 1) + c + 1; latent frame 0 repeats frame 0.
    for k in range(1, packed.shape[1]):
        for c in range(4):
            assert torch.equal(packed[c, k], pixel[4 * (k - 1) + c + 1])
    assert all(torch.equal(packed[c, 0], pixel[0]) for c in range(4))


@pytest.mark.parametrize("frames", [0, 2, 8, 48])
def test_frame_counts_other_than_4k_plus_1_are_rejected(frames):
    with pytest.raises(ValueError, match="4k \\+ 1"):
        modality_mask(frames, 2, 2, 1.0)


@given(pixel_frames, sides, sides)
def test_width_is_the_default_fusion_of_the_mask(num_frames, h, w):
    assert torch.equal(guided_mask(num_frames, h, w), guided_mask(num_frames, h, w, "width"))


def test_bad_values_and_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        modality_mask(5, 2, 2, 1.5)
    for height, width in ((0, 3), (3, 0)):
        with pytest.raises(
            ValueError, match=rf"^height and width must be positive, got \({height}, {width}\)$"
        ):
            modality_mask(5, height, width, 1.0)
    with pytest.raises(ValueError, match=r"must be \(T, h, w\)"):
        pack_temporal(torch.zeros(5, 2))
    with pytest.raises(ValueError, match=r"^mask must have 4k \+ 1 frames, got 6$"):
        pack_temporal(torch.zeros(6, 2, 2))
    with pytest.raises(ValueError, match="unknown fusion strategy"):
        guided_mask(5, 2, 2, "diagonal")
