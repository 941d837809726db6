"""Eq. 8-9, XYZ latent normalisation, and tracing its statistics. Spec: specs/eq08_xyz_normalization.md"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nanofourdnex.paper.normalization import (
    XYZ_LATENT_MEAN,
    XYZ_LATENT_STD,
    LatentStatistics,
    denormalize_xyz_latent,
    normalize_xyz_latent,
    trace_xyz_statistics,
)
from tests.strategies import randn, seeds

pytestmark = pytest.mark.eq08
means = st.floats(-10, 10)
stds = st.floats(0.01, 10)


def test_paper_constants():
    assert XYZ_LATENT_MEAN == -0.13 and XYZ_LATENT_STD == 1.70


def test_hand_values_with_the_paper_statistics():
    x = torch.tensor([-0.13, 1.57, -1.83], dtype=torch.float64)
    torch.testing.assert_close(normalize_xyz_latent(x), torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64))


@given(seeds, means, stds)
def test_denormalize_inverts_normalize(seed, mean, std):
    x = randn((2, 3, 4), seed, torch.float64) * 5
    torch.testing.assert_close(denormalize_xyz_latent(normalize_xyz_latent(x, mean, std), mean, std), x)
    torch.testing.assert_close(normalize_xyz_latent(denormalize_xyz_latent(x, mean, std), mean, std), x)


@given(seeds, means, stds)
def test_normalising_with_traced_statistics_gives_zero_mean_unit_std(seed, mean, std):
    x = randn((4, 500), seed, torch.float64) * std + mean
    stats = LatentStatistics()
    stats.update(x)
    x_hat = normalize_xyz_latent(x, stats.mean, stats.std)
    assert abs(x_hat.mean().item()) < 1e-9
    assert abs(x_hat.std(unbiased=False).item() - 1) < 1e-9


@given(seeds, st.lists(st.integers(1, 50), min_size=1, max_size=6))
def test_streaming_statistics_equal_the_statistics_of_everything(seed, sizes):
    chunks = [randn((n,), seed + i, torch.float64) * (i + 1) + i for i, n in enumerate(sizes)]
    stats = LatentStatistics()
    for chunk in chunks:
        stats.update(chunk)
    everything = torch.cat(chunks)
    assert stats.count == everything.numel()
    assert math.isclose(stats.mean, everything.mean().item(), rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(stats.std, everything.std(unbiased=False).item(), rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("std", [0.0, -1.0, float("nan"), float("inf")])
def test_non_positive_std_is_rejected(std):
    with pytest.raises(ValueError, match="std must be a positive finite number"):
        normalize_xyz_latent(torch.zeros(2), 0.0, std)
    with pytest.raises(ValueError, match="std must be a positive finite number"):
        denormalize_xyz_latent(torch.zeros(2), 0.0, std)


def test_statistics_reject_nan_and_empty_state():
    with pytest.raises(ValueError, match="^no latents seen yet$"):
        _ = LatentStatistics().std
    with pytest.raises(ValueError, match="^latents contain NaN or inf; cannot trace statistics$"):
        LatentStatistics().update(torch.tensor([1.0, float("nan")]))


def test_tracing_encodes_the_first_samples_clips_and_no_more():
    clips = [torch.full((1, 3, 1, 2, 2), float(i)) for i in range(5)]  # clip i is all i: 12 elements
    stats = trace_xyz_statistics(iter(clips), encode=lambda video: 2 * video, samples=3)
    # encoded clips 0, 2, 4: mean 2, population variance (4 + 0 + 4) / 3
    assert (stats.count, stats.mean, stats.std) == (36, 2.0, pytest.approx(math.sqrt(8 / 3), rel=1e-15))
    one = trace_xyz_statistics(iter(clips), encode=lambda video: 2 * video, samples=1)
    assert (one.count, one.mean, one.std) == (12, 0.0, 0.0)
    everything = trace_xyz_statistics(iter(clips), encode=lambda video: video, samples=100)
    assert (everything.count, everything.mean) == (60, 2.0)  # fewer clips than samples: all of them


def test_tracing_needs_at_least_one_clip():
    with pytest.raises(ValueError, match="^samples must be >= 1, got 0$"):
        trace_xyz_statistics(iter([torch.zeros(1)]), encode=lambda video: video, samples=0)
    with pytest.raises(ValueError, match="^no XYZ videos to trace statistics over$"):
        trace_xyz_statistics(iter([]), encode=lambda video: video, samples=3)
