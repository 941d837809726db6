"""Shared hypothesis strategies: well-formed shapes and tensors every property test draws from."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from nanofourdnex.paper.fusion import STRATEGIES

strategies_ = st.sampled_from(STRATEGIES)
sequence_strategies = st.sampled_from(("frame", "height", "width"))
seeds = st.integers(0, 2**31 - 1)


@st.composite
def latent_shapes(draw, max_side: int = 6, even_spatial: bool = False) -> tuple[int, int, int, int, int]:
    """(B, C, F, H, W) with small sides; H, W even when a (1, 2, 2) patch must divide them."""
    step = 2 if even_spatial else 1
    b = draw(st.integers(1, 2))
    c = draw(st.integers(1, 4))
    f = draw(st.integers(1, 4))
    h = step * draw(st.integers(1, max_side))
    w = step * draw(st.integers(1, max_side))
    return b, c, f, h, w


def randn(shape, seed: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


pixel_frames = st.integers(0, 6).map(lambda k: 4 * k + 1)  # Wan's 4k + 1 frame counts


def tiny_config(*overrides: str):
    """The tiny preset on a random base built from its seed (no model folder read): the tests' own networks.

    The preset itself loads the shipped pretrained base; tests that shrink the network (one layer, five
    frames) need a base of their own shape, and a random one is the honest choice for wiring tests.
    """
    from nanofourdnex.config import load_config

    return load_config("tiny", ['model.model_dir=""', *overrides])
