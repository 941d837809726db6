"""Sampling the 6D video: flow integration against diffusers' schedulers, sizes, determinism.

Spec: specs/generation.md
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nanofourdnex.flow_matching import euler_step
from nanofourdnex.generate import make_scheduler, output_size, sample_flow
from tests.strategies import randn, seeds


@given(seeds, st.integers(1, 12))
def test_euler_sampling_is_paper_time_euler_integration(seed, steps):
    """The scheduler loop equals x ← x + (t' − t)·u with the scheduler's own time grid."""
    weights = randn((4, 4), seed) * 0.3

    def velocity(x, t):
        return x @ weights + t.view(-1, 1)

    noise = randn((2, 4), seed + 1)
    sampled = sample_flow(velocity, noise, make_scheduler("euler", shift=1.0), steps)
    scheduler = make_scheduler("euler", shift=1.0)
    scheduler.set_timesteps(steps)
    times = (1 - scheduler.sigmas).tolist()  # paper time grid, ends at t = 1
    x = noise
    for t, t_next in zip(times[:-1], times[1:], strict=True):
        x = euler_step(x, velocity(x, torch.full((2,), t)), t, t_next)
    torch.testing.assert_close(sampled, x, rtol=1e-5, atol=1e-5)


@given(seeds, st.sampled_from([1.0, 3.0]))
def test_sampling_the_exact_flow_of_a_point_mass_lands_on_the_point(seed, shift):
    """For data x1 = c the Eq. 5 flow is u(x, t) = (c − x)/(1 − t); its paths are straight lines."""
    c = randn((1, 3, 2, 2), seed)

    def velocity(x, t):
        return (c - x) / (1 - t).clamp_min(1e-6).view(-1, 1, 1, 1)

    euler = sample_flow(velocity, randn((1, 3, 2, 2), seed + 1), make_scheduler("euler", shift), 10)
    torch.testing.assert_close(euler, c, rtol=1e-4, atol=1e-4)
    # UniPC (Wan's default) feeds the network integer timesteps (999 for σ = 1), as the Wan pipeline does,
    # so the velocity is evaluated at a time up to 1/1000 off its σ grid: close, not exact.
    unipc = sample_flow(velocity, randn((1, 3, 2, 2), seed + 1), make_scheduler("unipc", shift), 10)
    torch.testing.assert_close(unipc, c, rtol=0, atol=1e-2)


def test_release_size_rule_keeps_480x720_for_a_2_to_3_image():
    assert output_size(1080, 1620) == (480, 720)
    assert output_size(720, 480) == (720, 480)


@given(st.integers(16, 4000), st.integers(16, 4000))
def test_output_size_is_a_multiple_of_16_within_the_area_and_keeps_the_aspect(h, w):
    ideal_h, ideal_w = (480 * 720 * h / w) ** 0.5, (480 * 720 * w / h) ** 0.5
    if min(ideal_h, ideal_w) < 16:
        with pytest.raises(ValueError, match="too extreme"):
            output_size(h, w)
        return
    oh, ow = output_size(h, w)
    assert oh % 16 == 0 and ow % 16 == 0 and oh * ow <= 480 * 720
    if min(ideal_h, ideal_w) >= 64:  # 16-pixel rounding distorts the aspect of very thin images
        assert abs(oh / ow - h / w) / (h / w) < 0.5


def test_unknown_scheduler_and_zero_steps_are_rejected():
    with pytest.raises(ValueError, match="unknown scheduler"):
        make_scheduler("ddim")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        sample_flow(lambda x, t: x, torch.zeros(1, 2), make_scheduler("euler"), 0)
