"""§4.2 fusion strategies and Fig. 5's token interaction distance. Spec: specs/fusion_strategies.md"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nanofourdnex.paper.fusion import AXIS, STRATEGIES, fuse, interaction_distance, split, token_grid
from tests.strategies import latent_shapes, randn, seeds, strategies_

pytestmark = pytest.mark.fusion


@given(latent_shapes(), strategies_, seeds)
def test_split_inverts_fuse_for_every_strategy(shape, strategy, seed):
    rgb, xyz = randn(shape, seed), randn(shape, seed + 1)
    back_rgb, back_xyz = split(fuse(rgb, xyz, strategy), strategy)
    assert torch.equal(back_rgb, rgb) and torch.equal(back_xyz, xyz)


@given(latent_shapes(), strategies_, seeds)
def test_fuse_inverts_split(shape, strategy, seed):
    fused = fuse(randn(shape, seed), randn(shape, seed + 1), strategy)
    assert torch.equal(fuse(*split(fused, strategy), strategy), fused)


@given(latent_shapes(), strategies_)
def test_fused_shape_doubles_exactly_the_strategy_axis(shape, strategy):
    fused = fuse(torch.zeros(shape), torch.ones(shape), strategy)
    expected = list(shape)
    expected[AXIS[strategy]] *= 2
    assert tuple(fused.shape) == tuple(expected)


@given(latent_shapes())
def test_width_fusion_puts_rgb_left_and_xyz_right(shape):
    fused = fuse(torch.zeros(shape), torch.ones(shape), "width")
    w = shape[-1]
    assert (fused[..., :w] == 0).all() and (fused[..., w:] == 1).all()


@given(latent_shapes(max_side=5, even_spatial=True), st.integers(1, 3))
def test_interaction_distance_is_the_real_sequence_distance_of_twins(shape, frames):
    """Build the token sequence as the DiT does (flatten f, h, w) and measure twin distances."""
    _, _, _, h, w = shape
    latent = (1, frames, h, w)
    for strategy in ("frame", "height", "width"):
        f_t, h_t, w_t = token_grid(latent)
        ids = torch.arange(f_t * h_t * w_t, dtype=torch.float64).view(1, 1, f_t, h_t, w_t)
        fused = fuse(ids, -1 - ids, strategy)  # RGB token k ↔ XYZ token −1−k
        sequence = fused.flatten()  # frame-major, row-major: the DiT's token order
        pos = {v.item(): i for i, v in enumerate(sequence)}
        distances = {pos[-1 - k] - pos[k] for k in range(f_t * h_t * w_t)}
        assert distances == {interaction_distance(latent, strategy)}


@given(latent_shapes(), seeds)
def test_width_is_the_default_strategy_of_fuse_and_split(shape, seed):
    rgb, xyz = randn(shape, seed), randn(shape, seed + 1)
    assert torch.equal(fuse(rgb, xyz), fuse(rgb, xyz, "width"))
    assert all(map(torch.equal, split(fuse(rgb, xyz)), (rgb, xyz)))


def test_interaction_distance_counts_tokens_of_the_given_patch():
    latent = (16, 13, 60, 90)  # patch (1, 1, 1): one token per latent pixel
    distances = {
        s: interaction_distance(latent, s, patch_size=(1, 1, 1)) for s in ("frame", "height", "width")
    }
    assert distances == {"frame": 13 * 60 * 90, "height": 60 * 90, "width": 90}


def test_interaction_distances_for_the_paper_shapes_follow_fig5_ordering():
    # 49 frames of 480×720 → Wan latent (16, 13, 60, 90) per modality, patch (1, 2, 2): grid 13×30×45.
    latent = (16, 13, 60, 90)
    assert token_grid(latent) == (13, 30, 45)
    d = {s: interaction_distance(latent, s) for s in STRATEGIES}
    assert d == {"channel": 0, "batch": math.inf, "frame": 13 * 30 * 45, "height": 30 * 45, "width": 45}
    assert d["channel"] < d["width"] < d["height"] < d["frame"] < d["batch"]


def test_unknown_strategy_and_bad_shapes_are_rejected():
    x = torch.zeros(1, 2, 3, 4, 4)
    with pytest.raises(ValueError, match="unknown fusion strategy 'diagonal'"):
        fuse(x, x, "diagonal")
    with pytest.raises(ValueError, match=r"must be \(B, C, F, H, W\)"):
        fuse(x[0], x[0])
    with pytest.raises(ValueError, match="same shape"):
        fuse(x, x[..., :2])
    with pytest.raises(ValueError, match="must be even"):
        split(torch.zeros(1, 2, 3, 4, 5), "width")
    with pytest.raises(
        ValueError, match=r"^fused latent must be \(B, C, F, H, W\), got shape \(2, 3, 4, 4\)$"
    ):
        split(x[0])
    with pytest.raises(ValueError, match="not divisible by patch"):
        token_grid((16, 13, 61, 90))
    with pytest.raises(ValueError, match=r"^latent_shape must be \(C, F, H, W\), got \(16, 13, 60\)$"):
        token_grid((16, 13, 60))
