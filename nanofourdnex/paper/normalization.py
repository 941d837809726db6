"""Modality-aware XYZ latent normalisation (§4.3, Eq. 8-9; statistics from §5.1).

    x̂ = (x − μ) / σ        (8)   applied to the XYZ latent after the VAE encoder
    x = x̂ · σ + μ          (9)   applied before the VAE decoder

The paper traces μ and σ "of XYZ domain in the latent space over 5K random samples from
the training dataset" and finds μ = −0.13, σ = 1.70 for the Wan2.1 VAE. They are scalars
(one value for all channels). For any other autoencoder `LatentStatistics` traces them
the same way, with a numerically stable streaming (Chan et al.) update, so that they can
be computed over data sets that do not fit in memory.

Spec: specs/eq08_xyz_normalization.md · Tests: tests/test_eq08_normalization.py (-m eq08)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

XYZ_LATENT_MEAN = -0.13
XYZ_LATENT_STD = 1.70


def _check_std(std: float) -> None:
    if not math.isfinite(std) or std <= 0:
        raise ValueError(f"std must be a positive finite number, got {std}")


def normalize_xyz_latent(
    x: torch.Tensor, mean: float = XYZ_LATENT_MEAN, std: float = XYZ_LATENT_STD
) -> torch.Tensor:
    """Eq. 8: x̂ = (x − μ) / σ."""
    _check_std(std)
    return (x - mean) / std


def denormalize_xyz_latent(
    x_hat: torch.Tensor, mean: float = XYZ_LATENT_MEAN, std: float = XYZ_LATENT_STD
) -> torch.Tensor:
    """Eq. 9: x = x̂ · σ + μ, the exact inverse of Eq. 8."""
    _check_std(std)
    return x_hat * std + mean


@dataclass
class LatentStatistics:
    """Running scalar mean and standard deviation over every element of many latents.

    `update` merges a batch's (count, mean, M2) into the running totals (Chan et al.'s
    parallel variance formula), so the result equals the statistics of all elements
    concatenated, in float64, whatever the batching.
    """

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0  # Σ (x − mean)²

    def update(self, latents: torch.Tensor) -> None:
        x = latents.detach().double().flatten()
        if not torch.isfinite(x).all():
            raise ValueError("latents contain NaN or inf; cannot trace statistics")
        n = x.numel()
        if n == 0:
            return
        batch_mean = x.mean().item()
        batch_m2 = ((x - batch_mean) ** 2).sum().item()
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta**2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        """Population standard deviation σ of all elements seen so far."""
        if self.count == 0:
            raise ValueError("no latents seen yet")
        return math.sqrt(self.m2 / self.count)


def trace_xyz_statistics(xyz_videos, encode, samples: int) -> LatentStatistics:
    """The paper's procedure for μ, σ: statistics of encoded XYZ latents over `samples` clips.

    `xyz_videos` yields XYZ videos (B, 3, T, H, W) in [−1, 1] (e.g. random clips of the training
    set); `encode` is the autoencoder's encoder *without* Eq. 8 (the quantity being traced).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    stats = LatentStatistics()
    for seen, video in enumerate(xyz_videos):
        if seen == samples:
            break
        with torch.no_grad():
            stats.update(encode(video))
    if stats.count == 0:
        raise ValueError("no XYZ videos to trace statistics over")
    return stats
