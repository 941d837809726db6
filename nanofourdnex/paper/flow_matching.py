"""Flow matching: interpolation, velocity target and loss (§4.1, Eq. 5-6).

    x_t = (1 − t)·x0 + t·x1,   x0 ~ N(0, I),  x1 = E(V),  t ~ U(0, 1)                 (5)
    L_FM = E ‖u(x_t, c_img, c_txt, t) − (x1 − x0)‖²                                     (6)

Convention (stated once, used everywhere in this project): **paper time**. t = 0 is pure
noise, t = 1 is data, and the velocity u points from noise to data.

diffusers' Wan models and `FlowMatchEulerDiscreteScheduler` run time the other way:
σ = 1 is noise, x_σ = σ·noise + (1 − σ)·x0_data, the network is fed timestep = 1000·σ and
predicts v_σ = noise − data. The two are the same path with

    σ = 1 − t,   v_σ = −u,   timestep = 1000·(1 − t),

so a pretrained Wan network's output is turned into the paper's u by a sign flip, and
the loss is unchanged: ‖u − (x1 − x0)‖² = ‖v_σ − (x0 − x1)‖². One Euler step in paper
time, x ← x + (t' − t)·u, equals the scheduler's step x ← x + (σ' − σ)·v_σ (tested).

The sampler lives here too: `sample_flow` integrates dx/dt = u from noise (t = 0) to data (t = 1)
with diffusers' flow-matching schedulers as Wan ships them (`make_scheduler`: UniPC or Euler with a
shifted σ grid). `wan_timestep` and `time_from_wan_timestep` are the only conversions between paper
time and Wan's timestep in the project.

Spec: specs/eq05_flow_matching.md · Tests: tests/test_eq05_flow_matching.py (-m eq05)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
from tqdm import tqdm

NUM_TRAIN_TIMESTEPS = 1000  # Wan's timestep scale: timestep = 1000·σ


def _broadcast(t: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """Per-sample times (B,) (or a scalar) shaped to broadcast over a (B, ...) tensor."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        return t
    if t.ndim != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(f"t must be a scalar or shaped (B,) with B = {like.shape[0]}, got {tuple(t.shape)}")
    return t.view(-1, *([1] * (like.ndim - 1)))


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Eq. 5: x_t = (1 − t)·x0 + t·x1 (x0 noise, x1 data)."""
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    t = _broadcast(t, x1)
    if ((t < 0) | (t > 1)).any():
        raise ValueError("t must lie in [0, 1]")
    return (1 - t) * x0 + t * x1


def velocity_target(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Eq. 6's regression target: the constant velocity x1 − x0 of the straight path."""
    return x1 - x0


def flow_matching_loss(u: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Eq. 6: mean over all elements of (u − (x1 − x0))²."""
    target = velocity_target(x0, x1)
    if u.shape != target.shape:
        raise ValueError(f"prediction {tuple(u.shape)} and target {tuple(target.shape)} differ in shape")
    return torch.mean((u.float() - target.float()) ** 2)


def sample_time(batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """t ~ U(0, 1) per sample (Eq. 5)."""
    return torch.rand(batch_size, generator=generator)


def sigma_from_time(t: torch.Tensor | float) -> torch.Tensor:
    """diffusers' σ for paper time t: σ = 1 − t."""
    return 1 - torch.as_tensor(t)


def wan_timestep(t: torch.Tensor | float) -> torch.Tensor:
    """The timestep a Wan network is fed at paper time t: 1000·σ = 1000·(1 − t)."""
    return NUM_TRAIN_TIMESTEPS * sigma_from_time(t)


def time_from_wan_timestep(timestep: torch.Tensor) -> torch.Tensor:
    """Paper time t of a Wan / diffusers timestep 1000·σ: t = 1 − timestep/1000 (inverse of `wan_timestep`)."""
    return 1 - timestep.float() / NUM_TRAIN_TIMESTEPS


def velocity_from_wan(v_sigma: torch.Tensor) -> torch.Tensor:
    """Paper velocity u = −v_σ from a Wan network's output v_σ = noise − data."""
    return -v_sigma


def euler_step(x: torch.Tensor, u: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    """One explicit Euler step of dx/dt = u in paper time: x + (t_next − t)·u."""
    return x + (t_next - t) * u


SCHEDULERS = ("unipc", "euler")


def make_scheduler(kind: str = "unipc", shift: float = 3.0):
    """diffusers' flow-matching schedulers as Wan ships them (UniPC, flow prediction, shifted sigmas)."""
    if kind == "unipc":
        return UniPCMultistepScheduler(
            prediction_type="flow_prediction",
            use_flow_sigmas=True,
            num_train_timesteps=NUM_TRAIN_TIMESTEPS,
            flow_shift=shift,
        )
    if kind == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=shift)
    raise ValueError(f"unknown scheduler {kind!r}; expected one of {SCHEDULERS}")


def sample_flow(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    noise: torch.Tensor,
    scheduler,
    steps: int,
    progress: bool = False,
) -> torch.Tensor:
    """Integrate dx/dt = u(x, t) from x(0) = noise to t = 1 with a diffusers scheduler.

    `velocity(x, t)` is in paper time; the scheduler gets v_σ = −u at its own timestep 1000·σ.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    scheduler.set_timesteps(steps, device=noise.device)
    x = noise
    for timestep in tqdm(scheduler.timesteps, desc="sampling", disable=not progress):
        t = time_from_wan_timestep(timestep)
        u = velocity(x, t.expand(x.shape[0]))
        x = scheduler.step(-u, timestep, x, return_dict=False)[0]  # the scheduler integrates v_σ = −u
    return x
