"""Fusion strategies for joint RGB and XYZ modelling (§4.2, Fig. 4-5).

Both modalities are latents shaped (B, C, F, H, W). Fusion is plain concatenation:

    strategy   axis   fused shape          Fig. 4
    channel    1      (B, 2C, F, H, W)     (a)  needs an input/output adapter
    batch      0      (2B, C, F, H, W)     (b)  two samples, no cross-modal attention
    frame      2      (B, C, 2F, H, W)     (c)
    height     3      (B, C, F, 2H, W)     (d)
    width      4      (B, C, F, H, 2W)     (e)  the paper's choice

`split` is the exact inverse of `fuse`: the first half along the axis is RGB, the second XYZ.

Token interaction distance (Fig. 5). The DiT patchifies the fused latent with patch size
(p_t, p_h, p_w) into a token grid (f, h, w) and flattens it frame-major, then row-major:
index = (k·h + r)·w + c. The interaction distance is how far apart in that sequence the
RGB token and the XYZ token of the same pixel position sit:

    width:   w         (same row, shifted by one panel width)
    height:  h·w       (same column, one panel height further down)
    frame:   f·h·w     (same position, one clip length later)
    channel: 0         (both modalities live in the same token)
    batch:   ∞         (different samples never attend to each other)

so width < height < frame for any grid with f, h ≥ 2 — the ordering behind the paper's choice.

Spec: specs/fusion_strategies.md · Tests: tests/test_fusion.py (-m fusion)
"""

from __future__ import annotations

import math

import torch

STRATEGIES = ("channel", "batch", "frame", "height", "width")
AXIS = {
    "channel": 1,
    "batch": 0,
    "frame": 2,
    "height": 3,
    "width": 4,
}  # the one axis table: of (B, C, F, H, W)
IN_SEQUENCE = (
    "frame",
    "height",
    "width",
)  # both modalities in one token sequence (token grid axis = AXIS − 2)


def _axis(strategy: str) -> int:
    if strategy not in AXIS:
        raise ValueError(f"unknown fusion strategy {strategy!r}; expected one of {STRATEGIES}")
    return AXIS[strategy]


def fuse(rgb: torch.Tensor, xyz: torch.Tensor, strategy: str = "width") -> torch.Tensor:
    """Concatenate RGB and XYZ latents (B, C, F, H, W) along the strategy's axis."""
    axis = _axis(strategy)
    if rgb.ndim != 5:
        raise ValueError(f"latents must be (B, C, F, H, W), got shape {tuple(rgb.shape)}")
    if rgb.shape != xyz.shape:
        raise ValueError(
            f"rgb and xyz latents must have the same shape, got {tuple(rgb.shape)} and {tuple(xyz.shape)}"
        )
    return torch.cat([rgb, xyz], dim=axis)


def split(fused: torch.Tensor, strategy: str = "width") -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of `fuse`: (RGB, XYZ) halves of a fused (B, C, F, H, W) latent."""
    axis = _axis(strategy)
    if fused.ndim != 5:
        raise ValueError(f"fused latent must be (B, C, F, H, W), got shape {tuple(fused.shape)}")
    size = fused.shape[axis]
    if size % 2:
        raise ValueError(f"fused size along the {strategy} axis must be even, got {size}")
    rgb, xyz = fused.split(size // 2, dim=axis)
    return rgb, xyz


def token_grid(
    latent_shape: tuple[int, int, int, int], patch_size: tuple[int, int, int] = (1, 2, 2)
) -> tuple[int, int, int]:
    """Token grid (f, h, w) of ONE modality's latent (C, F, H, W) under a (p_t, p_h, p_w) patch."""
    if len(latent_shape) != 4:
        raise ValueError(f"latent_shape must be (C, F, H, W), got {tuple(latent_shape)}")
    _, frames, height, width = latent_shape
    p_t, p_h, p_w = patch_size
    if frames % p_t or height % p_h or width % p_w:
        raise ValueError(
            f"latent (F, H, W) = {(frames, height, width)} is not divisible by patch {patch_size}"
        )
    return frames // p_t, height // p_h, width // p_w


def interaction_distance(
    latent_shape: tuple[int, int, int, int], strategy: str, patch_size: tuple[int, int, int] = (1, 2, 2)
) -> float:
    """Fig. 5: sequence distance between corresponding RGB and XYZ tokens under `strategy`."""
    _axis(strategy)
    f, h, w = token_grid(latent_shape, patch_size)
    return {"channel": 0, "batch": math.inf, "frame": f * h * w, "height": h * w, "width": w}[strategy]
