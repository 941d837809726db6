"""Generation: one image → 6D video (RGB + XYZ) → cameras, depth, point clouds, novel views (§4.3, §5.2).

Sampling integrates the flow of Eq. 5-6 from noise (t = 0) to data (t = 1) with one of
diffusers' flow-matching schedulers, conditioned exactly as in training:

    c = fuse(E([I_0, 0, …]), (E([X^init, 0, …]) − μ)/σ)     first frame + sloped plane (Eq. 7-8)
    M = guided mask, 0.5 on the first XYZ frame               (Eq. 10)
    u = u(x, ∅) + g·(u(x, c_txt) − u(x, ∅))                   classifier-free guidance on the prompt

Schedulers run diffusers' time (σ = 1 − t, velocity noise − data), so the model's paper
velocity u is handed over as −u. The final latent is split into its RGB and XYZ halves; the
XYZ half is de-normalised (Eq. 9) and both are decoded.

Defaults follow the public release: 49 frames, 50 steps, guidance 5.0, seed 42, UniPC with
flow shift 3.0 (Wan2.1-I2V-480P's scheduler), size from the image's aspect ratio at a
maximum area of 480×720 with both sides multiples of 16.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
from tqdm import tqdm

from .autoencoder import SixDAutoencoder, first_frame_video
from .conditioning import Encoders
from .fusion import fuse, split
from .mask import guided_mask
from .model import FourDNeX
from .xyz_init import sloped_plane

SCHEDULERS = ("unipc", "euler")


def make_scheduler(kind: str = "unipc", shift: float = 3.0):
    """diffusers' flow-matching schedulers as Wan ships them (UniPC, flow prediction, shifted sigmas)."""
    if kind == "unipc":
        return UniPCMultistepScheduler(
            prediction_type="flow_prediction",
            use_flow_sigmas=True,
            num_train_timesteps=1000,
            flow_shift=shift,
        )
    if kind == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
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
        t = 1 - timestep.float() / scheduler.config.num_train_timesteps  # paper time
        u = velocity(x, t.expand(x.shape[0]))
        x = scheduler.step(-u, timestep, x, return_dict=False)[0]
    return x


def output_size(height: int, width: int, max_area: int = 480 * 720, multiple: int = 16) -> tuple[int, int]:
    """The release's rule: keep the aspect ratio, area at most max_area, both sides multiples of 16."""
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}×{width}")
    aspect = height / width
    h = round(math.sqrt(max_area * aspect)) // multiple * multiple
    w = round(math.sqrt(max_area / aspect)) // multiple * multiple
    if h < multiple or w < multiple:
        raise ValueError(
            f"aspect ratio of a {height}×{width} image is too extreme for a {max_area}-pixel output"
        )
    return h, w


@dataclass
class SixDVideo:
    rgb: torch.Tensor  # (T, H, W, 3) uint8
    xyz: torch.Tensor  # (T, H, W, 3) float32, the generated world coordinates (normalised frame)


@torch.no_grad()
def generate_6d(
    model: FourDNeX,
    autoencoder: SixDAutoencoder,
    encoders: Encoders,
    image: torch.Tensor,
    prompt: str,
    *,
    num_frames: int = 49,
    steps: int = 50,
    guidance: float = 5.0,
    seed: int = 42,
    scheduler: str = "unipc",
    shift: float = 3.0,
    negative_prompt: str = "",
    progress: bool = False,
) -> SixDVideo:
    """Sample one 6D video for an image (3, H, W) in [−1, 1]."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3, H, W), got {tuple(image.shape)}")
    device = next(model.parameters()).device
    strategy = model.strategy
    height, width = image.shape[1:]
    first = image[None].to(device)
    plane = sloped_plane(height, width).permute(2, 0, 1)[None].to(device)  # X^init, Eq. 7
    cond_rgb = autoencoder.encode_rgb(first_frame_video(first, num_frames))
    cond_xyz = autoencoder.encode_xyz(first_frame_video(plane, num_frames))  # Eq. 8
    condition = fuse(cond_rgb, cond_xyz, strategy)
    mask = guided_mask(num_frames, *cond_rgb.shape[-2:], strategy).to(device)  # Eq. 10
    texts = encoders.encode_text([prompt, negative_prompt]).to(device)
    image_embeds = encoders.encode_image(first).to(device)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if guidance == 1.0:
            return model(x, t, mask, condition, texts[:1], image_embeds)
        both = model(  # conditional and unconditional in one batch of two
            x.repeat(2, 1, 1, 1, 1), t.repeat(2), mask.expand(2, -1, -1, -1, -1),
            condition.repeat(2, 1, 1, 1, 1), texts, image_embeds.repeat(2, 1, 1),
        )  # fmt: skip
        u_cond, u_uncond = both.chunk(2)
        return u_uncond + guidance * (u_cond - u_uncond)

    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(condition.shape, generator=generator).to(device)
    latent = sample_flow(velocity, noise, make_scheduler(scheduler, shift), steps, progress)
    rgb_latent, xyz_latent = split(latent, strategy)
    rgb = autoencoder.decode_rgb(rgb_latent)[0]  # (3, T, H, W) in [−1, 1]
    xyz = autoencoder.decode_xyz(xyz_latent)[0]  # Eq. 9 inside decode_xyz
    rgb_uint8 = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu()
    return SixDVideo(rgb=rgb_uint8, xyz=xyz.float().permute(1, 2, 3, 0).cpu())
