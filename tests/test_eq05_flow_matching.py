"""Eq. 5-6, flow matching, and its mapping to diffusers' time convention. Spec: specs/eq05_flow_matching.md"""

import re

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
from hypothesis import assume, given
from hypothesis import strategies as st

from nanofourdnex.paper.flow_matching import (
    SCHEDULERS,
    euler_step,
    flow_matching_loss,
    interpolate,
    make_scheduler,
    sample_flow,
    sample_time,
    sigma_from_time,
    time_from_wan_timestep,
    velocity_from_wan,
    velocity_target,
    wan_timestep,
)
from tests.strategies import randn, seeds

pytestmark = pytest.mark.eq05
times = st.floats(0, 1)


@given(seeds)
def test_path_starts_at_noise_and_ends_at_data(seed):
    x0, x1 = randn((2, 3, 4), seed), randn((2, 3, 4), seed + 1)
    assert torch.equal(interpolate(x0, x1, 0.0), x0)
    assert torch.equal(interpolate(x0, x1, 1.0), x1)


def test_hand_value_of_eq5_and_eq6():
    x0, x1 = torch.tensor([2.0, -1.0]), torch.tensor([4.0, 3.0])
    assert interpolate(x0, x1, 0.25).tolist() == [2.5, 0.0]  # 0.75·x0 + 0.25·x1
    assert velocity_target(x0, x1).tolist() == [2.0, 4.0]
    assert flow_matching_loss(torch.tensor([1.0, 4.0]), x0, x1).item() == 0.5  # ((1−2)² + 0²) / 2


@given(seeds, times, times)
def test_velocity_target_is_the_time_derivative_of_the_path(seed, t, s):
    x0, x1 = randn((3, 5), seed, torch.float64), randn((3, 5), seed + 1, torch.float64)
    assume(abs(t - s) > 1e-3)  # a finite difference over a tiny step only measures rounding
    slope = (interpolate(x0, x1, s) - interpolate(x0, x1, t)) / (s - t)
    torch.testing.assert_close(slope, velocity_target(x0, x1))


@given(seeds, times, times)
def test_euler_with_the_true_velocity_moves_exactly_along_the_path(seed, t, s):
    x0, x1 = randn((4,), seed, torch.float64), randn((4,), seed + 1, torch.float64)
    moved = euler_step(interpolate(x0, x1, t), velocity_target(x0, x1), t, s)
    torch.testing.assert_close(moved, interpolate(x0, x1, s))


@given(seeds)
def test_per_sample_times_broadcast_over_the_batch(seed):
    x0, x1 = randn((3, 2, 4), seed), randn((3, 2, 4), seed + 1)
    t = torch.tensor([0.0, 0.5, 1.0])
    xt = interpolate(x0, x1, t)
    for i in range(3):
        torch.testing.assert_close(xt[i], interpolate(x0[i], x1[i], t[i].item()))


@given(seeds, times)
def test_loss_is_zero_only_at_the_target_and_symmetric_under_wan_sign(seed, t):
    x0, x1 = randn((2, 6), seed), randn((2, 6), seed + 1)
    assert flow_matching_loss(velocity_target(x0, x1), x0, x1).item() == 0
    u = randn((2, 6), seed + 2)
    # Wan's objective ‖v_σ − (noise − data)‖² with v_σ = −u is the same number.
    wan_loss = torch.mean((-u - (x0 - x1)) ** 2)
    torch.testing.assert_close(flow_matching_loss(u, x0, x1), wan_loss)


@given(seeds, st.integers(2, 30), st.data())
def test_one_paper_euler_step_equals_the_diffusers_scheduler_step(seed, steps, data):
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    scheduler.set_timesteps(steps)
    i = data.draw(st.integers(0, steps - 1))
    sigma, sigma_next = scheduler.sigmas[i].item(), scheduler.sigmas[i + 1].item()
    x, v_sigma = randn((1, 2, 3, 4), seed), randn((1, 2, 3, 4), seed + 1)
    scheduler._step_index = i  # jump straight to step i
    expected = scheduler.step(v_sigma, scheduler.timesteps[i], x, return_dict=False)[0]
    t, t_next = 1 - sigma, 1 - sigma_next
    ours = euler_step(x, velocity_from_wan(v_sigma), t, t_next)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    assert wan_timestep(t).item() == pytest.approx(scheduler.timesteps[i].item(), abs=1e-3)


@given(seeds, times)
def test_paper_interpolation_equals_the_scheduler_noising_at_sigma_one_minus_t(seed, t):
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    noise, data = randn((1, 4), seed), randn((1, 4), seed + 1)
    sigma = sigma_from_time(t).item()
    # diffusers' flow-matching noising: x_σ = σ·noise + (1 − σ)·data
    expected = sigma * noise + (1 - sigma) * data
    torch.testing.assert_close(interpolate(noise, data, t), expected)
    assert scheduler.config.num_train_timesteps * sigma == pytest.approx(wan_timestep(t).item())


@given(times)
def test_time_from_wan_timestep_inverts_wan_timestep(t):
    assert time_from_wan_timestep(wan_timestep(t)).item() == pytest.approx(t, abs=1e-6)


def test_wan_timesteps_map_to_paper_time_by_hand():
    assert time_from_wan_timestep(torch.tensor([1000, 750, 0])).tolist() == [0.0, 0.25, 1.0]


def test_the_schedulers_are_wans_flow_matching_ones_with_its_shift():
    unipc = make_scheduler()  # the release's default: UniPC, flow prediction, shift 3
    assert isinstance(unipc, UniPCMultistepScheduler)
    assert unipc.config.prediction_type == "flow_prediction" and unipc.config.use_flow_sigmas is True
    assert (unipc.config.flow_shift, unipc.config.num_train_timesteps) == (3.0, 1000)
    euler = make_scheduler("euler", shift=5.0)
    assert isinstance(euler, FlowMatchEulerDiscreteScheduler)
    assert (euler.config.shift, euler.config.num_train_timesteps) == (5.0, 1000)
    with pytest.raises(ValueError, match=r"^unknown scheduler 'ddim'; expected one of \('unipc', 'euler'\)$"):
        make_scheduler("ddim")


@pytest.mark.parametrize("kind", SCHEDULERS)
@pytest.mark.parametrize("steps", [1, 4])
def test_sampling_the_flow_to_one_point_lands_on_that_point(kind, steps):
    """The velocity x1 − x0 of Eq. 6 carries x0 along the straight path of Eq. 5: the sampler ends at x1."""
    noise, x1 = randn((2, 3), 0, torch.float64), randn((2, 3), 1, torch.float64)
    times = []

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        times.append(t)
        return velocity_target(noise, x1)

    sampled = sample_flow(velocity, noise, make_scheduler(kind), steps)
    torch.testing.assert_close(sampled, x1, rtol=1e-5, atol=1e-5)  # diffusers keeps its σ grid in float32
    assert len(times) == steps and all(t.shape == (2,) for t in times)  # one call per step, t per sample
    assert times[0].tolist() == pytest.approx([0.0, 0.0], abs=1e-3)  # from pure noise (UniPC: timestep 999)
    assert all(a[0] < b[0] < 1 for a, b in zip(times[:-1], times[1:], strict=True))  # time runs towards data


def test_the_sampler_shows_a_sampling_progress_bar_only_when_asked(capsys):
    def still(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)

    sample_flow(still, torch.zeros(1, 2), make_scheduler("euler"), 2)
    assert capsys.readouterr().err == ""
    sample_flow(still, torch.zeros(1, 2), make_scheduler("euler"), 2, progress=True)
    assert re.search(r"(^|\r)sampling: ", capsys.readouterr().err)  # tqdm's bar, labelled "sampling"
    with pytest.raises(ValueError, match="^steps must be >= 1, got 0$"):
        sample_flow(still, torch.zeros(1, 2), make_scheduler("euler"), 0)


def test_sampled_times_follow_the_generator():
    assert torch.equal(
        sample_time(5, torch.Generator().manual_seed(3)),
        torch.rand(5, generator=torch.Generator().manual_seed(3)),
    )


def test_time_sampling_is_uniform_on_the_unit_interval():
    t = sample_time(20000, torch.Generator().manual_seed(0))
    assert t.min() >= 0 and t.max() < 1
    assert abs(t.mean().item() - 0.5) < 0.01 and abs(t.var().item() - 1 / 12) < 0.003


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="same shape"):
        interpolate(torch.zeros(2), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match=r"^t must lie in \[0, 1\]$"):
        interpolate(torch.zeros(2), torch.zeros(2), 1.5)
    with pytest.raises(ValueError, match=r"shaped \(B,\) with B = 2, got \(3,\)$"):
        interpolate(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="differ in shape"):
        flow_matching_loss(torch.zeros(3), torch.zeros(2), torch.zeros(2))
