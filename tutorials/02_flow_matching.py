# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Flow matching (Eq. 5-6) and the sampler
#
# 4DNeX keeps Wan2.1's training objective unchanged (§4.1). The 6D video is encoded, $x_1 = \mathcal{E}(V)$,
# and joined to noise by a straight line:
#
# $$x_t = (1-t)\,x_0 + t\,x_1,\qquad x_0 \sim \mathcal{N}(0, I),\quad t \sim \mathcal{U}(0,1) \qquad (5)$$
#
# $$\mathcal{L}_{FM} = \mathbb{E}\left[\left\|u(x_t, c_{img}, c_{txt}, t) - (x_1 - x_0)\right\|^2\right] \qquad (6)$$
#
# The network $u$ learns the velocity of the straight path; averaged over all pairs $(x_0, x_1)$ that pass
# through $x_t$ it becomes a velocity *field* whose flow carries the noise distribution onto the data
# distribution. Generation integrates $dx/dt = u(x, t)$ from $t = 0$ (noise) to $t = 1$ (data).
#
# This notebook trains Eq. 6 on a 2-D toy, samples it with the project's sampler (diffusers' schedulers),
# then applies the same functions to a real 6D latent, and untangles the two time conventions.

# %%
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from IPython import get_ipython
from IPython.display import Image, display
from torch import nn

from nanofourdnex.autoencoder import build_autoencoder
from nanofourdnex.config import load_config
from nanofourdnex.data import RawClip, clip_sample
from nanofourdnex.outputs import xyz_colors
from nanofourdnex.paper.flow_matching import (
    euler_step,
    flow_matching_loss,
    interpolate,
    make_scheduler,
    sample_flow,
    sample_time,
    sigma_from_time,
    velocity_from_wan,
    velocity_target,
    wan_timestep,
)
from nanofourdnex.paper.fusion import fuse, split
from nanofourdnex.synthetic import make_scene
from nanofourdnex.viz import figure

QUICK = os.environ.get("NANO4D_TUTORIAL_QUICK") == "1"  # small settings (the test suite sets it)
OUT = Path(tempfile.mkdtemp(prefix="nano4d_02_"))  # every file this notebook writes goes here
TRAIN_STEPS = 1000 if QUICK else 4000
torch.manual_seed(0)


def show(path: Path) -> None:
    """Show a figure in a notebook; run as a plain script, say where it was written."""
    if get_ipython() is None:
        print("figure written to", path)
    else:
        display(Image(filename=str(path)))


# %% [markdown]
# ## A 2-D toy: eight Gaussians on a ring
#
# Data $x_1$: points near the vertices of an octagon. Noise $x_0$: a standard 2-D Gaussian. The velocity
# network is a small MLP fed $(x_t, t)$.


# %%
def sample_data(count: int, generator: torch.Generator) -> torch.Tensor:
    """x1: eight Gaussians (σ = 0.2) on a ring of radius 2."""
    angle = torch.randint(8, (count,), generator=generator) * (2 * torch.pi / 8)
    centres = 2 * torch.stack([angle.cos(), angle.sin()], dim=1)
    return centres + 0.2 * torch.randn(count, 2, generator=generator)


class Velocity(nn.Module):
    """u(x, t) for 2-D points x (B, 2) and times t (B,)."""

    def __init__(self, width: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(3, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, 2),
        )  # fmt: skip

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t.view(-1, 1).to(x.dtype)], dim=1))


# %% [markdown]
# Training is Eq. 5-6 verbatim: `sample_time` draws $t \sim \mathcal{U}(0,1)$, `interpolate` builds $x_t$,
# `flow_matching_loss` is the mean squared error against `velocity_target` $= x_1 - x_0$.

# %%
model = Velocity()
optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, TRAIN_STEPS)
generator = torch.Generator().manual_seed(0)
losses, clock = [], time.perf_counter()
for _ in range(TRAIN_STEPS):
    x1 = sample_data(512, generator)
    x0 = torch.randn(x1.shape, generator=generator)
    t = sample_time(len(x1), generator)
    loss = flow_matching_loss(model(interpolate(x0, x1, t), t), x0, x1)  # Eq. 5, Eq. 6
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    schedule.step()
    losses.append(loss.item())
print(
    f"{TRAIN_STEPS} steps in {time.perf_counter() - clock:.1f} s; loss {np.mean(losses[:20]):.2f} → "
    f"{np.mean(losses[-20:]):.2f}"
)

# %% [markdown]
# The loss does not go to zero, and should not: many straight lines cross each $x_t$, so the best $u$
# is their *average* direction, $\mathbb{E}[x_1 - x_0 \mid x_t]$, and the remaining variance is the floor.
#
# ## Sampling: integrate the learned field
#
# `generate.sample_flow(velocity, noise, scheduler, steps)` runs one of diffusers' flow-matching
# schedulers (`make_scheduler("euler" | "unipc", shift)`) with a velocity given in paper time. We record
# the states it visits to draw the paths.


# %%
def sample(kind: str, steps: int, shift: float = 1.0, count: int = 2000) -> tuple[torch.Tensor, list]:
    """Samples and the list of states x at each velocity evaluation (the path)."""
    path = []

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        path.append(x.clone())
        return model(x, t)

    noise = torch.randn(count, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x = sample_flow(velocity, noise, make_scheduler(kind, shift), steps)
    return x, [*path, x]


data = sample_data(2000, torch.Generator().manual_seed(2))
runs = {f"Euler, {n} steps": sample("euler", n) for n in (2, 8, 32)}
runs["UniPC, 8 steps"] = sample("unipc", 8)

with figure(OUT / "toy.png", (9, 4.4)) as fig:
    axes = fig.subplots(2, 3).flat
    axes[0].scatter(*data.T, s=1, c="k")
    axes[0].set_title("data $x_1$")
    _, path = runs["Euler, 32 steps"]
    for k in range(60):  # a few paths
        points = torch.stack([state[k] for state in path])
        axes[1].plot(*points.T, color="0.7", linewidth=0.5)
    axes[1].scatter(*path[0][:60].T, s=4, c="tab:blue", label="noise $x_0$")
    axes[1].scatter(*path[-1][:60].T, s=4, c="tab:red", label="sample")
    axes[1].set_title("paths, Euler 32 steps")
    axes[1].legend(frameon=False, fontsize=6)
    for ax, (name, (samples, _)) in zip(list(axes)[2:], runs.items(), strict=True):
        ax.scatter(*samples.T, s=1, c="tab:red")
        ax.set_title(name)
    for ax in fig.axes:
        ax.set(xlim=(-3.2, 3.2), ylim=(-3.2, 3.2), aspect="equal", xticks=[], yticks=[])
show(OUT / "toy.png")

# %% [markdown]
# A learned flow is nearly straight, so 8 steps already land on the ring. Two Euler steps fail for an
# instructive reason: diffusers' Euler grid for 2 steps is σ = 1 → 0.001 → 0, so the first step jumps from
# t = 0 to t = 0.999 with the velocity at pure noise — the *average* direction $\mathbb{E}[x_1] - x_0
# \approx -x_0$ — and everything collapses towards the centre. How far the samples are from the eight
# centres, in numbers:


# %%
def ring_error(samples: torch.Tensor) -> float:
    """Mean distance from each sample to the nearest of the eight centres."""
    angle = torch.arange(8) * (2 * torch.pi / 8)
    centres = 2 * torch.stack([angle.cos(), angle.sin()], dim=1)
    return torch.cdist(samples, centres).min(dim=1).values.mean().item()


print(f"{'data itself':>16}: {ring_error(data):.3f}")
for name, (samples, _) in runs.items():
    print(f"{name:>16}: {ring_error(samples):.3f}")
print(f"{'noise':>16}: {ring_error(runs['Euler, 2 steps'][1][0]):.3f}")
assert ring_error(runs["Euler, 32 steps"][0]) < 0.5 * ring_error(runs["Euler, 2 steps"][1][0])

# %% [markdown]
# ## Two clocks: paper time $t$ and diffusers' $\sigma$
#
# The paper's $t$ runs from noise (0) to data (1). Wan and diffusers run the other way: $\sigma = 1$ is
# noise, $x_\sigma = \sigma\,\text{noise} + (1-\sigma)\,\text{data}$, the network sees
# `timestep` $= 1000\,\sigma$ and predicts $v_\sigma = \text{noise} - \text{data}$. The same path:
#
# $$\sigma = 1 - t,\qquad v_\sigma = -u,\qquad \text{timestep} = 1000\,(1 - t)$$
#
# `flow_matching.sigma_from_time`, `wan_timestep` and `velocity_from_wan` are these three conversions; the
# model wrapper (notebook 05) feeds Wan `wan_timestep(t)` and returns `velocity_from_wan(output)`, so
# everything above it speaks paper time.

# %%
for t in (0.0, 0.25, 1.0):
    print(
        f"t = {t:.2f}  →  σ = {sigma_from_time(t).item():.2f}, Wan timestep = {wan_timestep(t).item():6.1f}"
    )
v_sigma = torch.tensor([0.5, -1.0])
print("Wan output v_σ", v_sigma.tolist(), "→ paper velocity u", velocity_from_wan(v_sigma).tolist())

# %% [markdown]
# A scheduler step $x \leftarrow x + (\sigma' - \sigma)\,v_\sigma$ is exactly a paper-time Euler step
# $x \leftarrow x + (t' - t)\,u$ (`flow_matching.euler_step`) — which is why `sample_flow` hands the
# scheduler $-u$:

# %%
scheduler = make_scheduler("euler", shift=3.0)
scheduler.set_timesteps(4)
x, u = torch.randn(2, 5, generator=torch.Generator().manual_seed(3))
by_scheduler = scheduler.step(-u, scheduler.timesteps[0], x, return_dict=False)[0]
t, t_next = 1 - scheduler.sigmas[0].item(), 1 - scheduler.sigmas[1].item()
by_paper = euler_step(x, u, t, t_next)
print(f"max difference {torch.abs(by_scheduler - by_paper).max().item():.1e}")
assert torch.allclose(by_scheduler, by_paper, atol=1e-6)

# %% [markdown]
# The `shift` of Wan's schedulers bends the time grid: $\sigma \to s\sigma / (1 + (s-1)\sigma)$ spends more of
# the steps near the noise end, where the coarse layout of the video is decided. Wan2.1-I2V-480P ships
# shift 3.

# %%
with figure(OUT / "time_grids.png", (4.5, 2.8)) as fig:
    ax = fig.add_subplot()
    for kind, shift, style in (("euler", 1.0, "o-"), ("euler", 3.0, "s-"), ("unipc", 3.0, "^-")):
        grid = make_scheduler(kind, shift)
        grid.set_timesteps(10)
        ax.plot(1 - grid.sigmas.numpy(), style, markersize=3, label=f"{kind}, shift {shift:g}")
    ax.set(xlabel="step", ylabel="paper time t = 1 − σ", title="where 10 steps are spent")
    ax.legend(frameon=False)
show(OUT / "time_grids.png")

# %% [markdown]
# ## The same equations on a 6D latent
#
# Nothing above was specific to 2-D. Here is Eq. 5 on the latent of a real 6D video: a synthetic clip,
# encoded with the tiny preset's autoencoder (an exact pixel-unshuffle stand-in for the Wan VAE), the XYZ
# half normalised by Eq. 8, the two fused side by side (notebook 03). Decoding $x_t$ shows what the network
# sees at each $t$.

# %%
config = load_config("tiny")
frames, height, width = config.data.num_frames, 32, 48
autoencoder = build_autoencoder(config)
scene = make_scene(seed=3, num_frames=frames, height=height, width=width)
raw = RawClip(scene.rgb, scene.depth, scene.K, scene.c2w, scene.xyz, scene.caption, path=OUT / "scene")
clip = clip_sample(raw, frames, height, width)
x1 = fuse(autoencoder.encode_rgb(clip.rgb[None]), autoencoder.encode_xyz(clip.xyz[None]))  # width-wise
x0 = torch.randn(x1.shape, generator=torch.Generator().manual_seed(4))
print("video", tuple(clip.rgb.shape), "×2  →  fused latent x1", tuple(x1.shape))


def decode_frame0(latent: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Frame 0 of the RGB and XYZ halves of a fused latent, as uint8 images."""
    rgb_latent, xyz_latent = split(latent)
    rgb = autoencoder.decode_rgb(rgb_latent)[0, :, 0].permute(1, 2, 0).clamp(-1, 1)
    xyz = autoencoder.decode_xyz(xyz_latent)[0, :, :1].permute(1, 2, 3, 0)  # Eq. 9 inside decode_xyz
    return ((rgb + 1) * 127.5).round().byte().numpy(), xyz_colors(xyz.clamp(-1, 1).numpy())[0]


times = (0.0, 0.25, 0.5, 0.75, 1.0)
with figure(OUT / "latent_path.png", (9, 2.6)) as fig:
    axes = fig.subplots(2, len(times))
    for column, t in enumerate(times):
        rgb, xyz = decode_frame0(interpolate(x0, x1, t))
        axes[0, column].imshow(rgb)
        axes[1, column].imshow(xyz)
        axes[0, column].set_title(f"t = {t:g}")
    axes[0, 0].set_ylabel("RGB")
    axes[1, 0].set_ylabel("XYZ")
    for ax in axes.flat:
        ax.set(xticks=[], yticks=[])
        ax.grid(False)
show(OUT / "latent_path.png")

# %% [markdown]
# If the data distribution were this one clip, the ideal velocity would be known in closed form: every path
# ends at $x_1$, so $u(x, t) = (x_1 - x)/(1 - t)$. Integrating it with the same sampler lands on $x_1$
# from any noise — a check of the sampler, and of Eq. 5's direction of time, on a real latent:


# %%
def point_mass_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return (x1 - x) / (1 - t).clamp_min(1e-6).view(-1, 1, 1, 1, 1)


landed = sample_flow(point_mass_velocity, x0, make_scheduler("euler", shift=3.0), steps=8)
print(f"max |sampled − x1| = {torch.abs(landed - x1).max().item():.1e}")
assert torch.allclose(landed, x1, atol=1e-4)
assert flow_matching_loss(velocity_target(x0, x1), x0, x1).item() == 0.0  # Eq. 6 at its optimum for one pair

# %% [markdown]
# A trained 4DNeX replaces `point_mass_velocity` with the LoRA-tuned Wan DiT conditioned on the image and
# text (notebook 05); the rest of generation is this loop.

# %%
print("figures in", OUT)
