"""Generation: one image → 6D video (RGB + XYZ) → cameras, depth, point clouds, novel views (§4.3, §5.2).

Sampling integrates the flow of Eq. 5-6 from noise (t = 0) to data (t = 1) with one of
diffusers' flow-matching schedulers, conditioned exactly as in training:

    c = E([I_0 | X^init, 0, …, 0])                            image and sloped plane, one encode (Eq. 7)
    M = guided mask, 0.5 on the first XYZ frame               (Eq. 10)
    u = u(x, c_∅) + g·(u(x, c_txt) − u(x, c_∅))               classifier-free guidance on the prompt

c_txt is the prompt with the release's trigger words, c_∅ the negative prompt as given.
Schedulers run diffusers' time (σ = 1 − t, velocity noise − data), so the model's paper
velocity u is handed over as −u. The final latent is split into its RGB and XYZ halves; the
XYZ half is de-normalised (Eq. 9) and both are decoded.

Defaults follow the public release: 49 frames, 50 steps, guidance 5.0, seed 42, UniPC with
flow shift 3.0 (Wan2.1-I2V-480P's scheduler), size from the image's aspect ratio at a
maximum area of 480×720 with both sides multiples of 16.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as imageio
import numpy as np
import torch
import torch.nn.functional as F
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
from tqdm import tqdm

from .autoencoder import SixDAutoencoder
from .conditioning import Encoders, build_encoders, condition_latents
from .config import Config, config_from_dict, differing_fields, load_config
from .fusion import split
from .mask import guided_mask
from .model import FourDNeX, build_model

SCHEDULERS = ("unipc", "euler")
OFFLOAD_MODES = ("none", "model", "sequential")
MIN_IMAGE_SIDE = 16  # pixels
MAX_IMAGE_PIXELS = 64_000_000  # larger files are refused before they fill the memory


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
    """The release's rule: keep the aspect ratio, area at most max_area, both sides multiples of `multiple` (16)."""
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
    device: torch.device | str | None = None,
    offload: str = "none",
) -> SixDVideo:
    """Sample one 6D video for an image (3, H, W) in [−1, 1].

    `device` is where the networks run (default: where the model's weights are); with
    offload="model" each network is moved there only while it runs (see `place`).
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3, H, W), got {tuple(image.shape)}")
    device = torch.device(device) if device is not None else next(model.parameters()).device

    def running(module: torch.nn.Module):
        return resident(module, device) if offload == "model" else nullcontext()

    strategy = model.strategy
    first = image[None].to(device)  # I_0 (1, 3, H, W)
    with running(autoencoder):
        condition = condition_latents(autoencoder, first, num_frames, strategy)  # c (1, z, f, h, 2w)
    s = autoencoder.spatial_compression
    mask = guided_mask(num_frames, image.shape[1] // s, image.shape[2] // s, strategy).to(device)  # Eq. 10
    with running(encoders.text_encoder):
        texts = encoders.encode_text([encoders.triggered(prompt), negative_prompt]).to(device)
    with running(encoders.image_encoder):
        image_embeds = encoders.encode_image(first).to(device)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # The two passes run one after the other, as the Wan pipeline does: half the activation memory.
        u_cond = model(x, t, mask, condition, texts[:1], image_embeds)
        if guidance == 1.0:
            return u_cond
        u_uncond = model(x, t, mask, condition, texts[1:], image_embeds)
        return u_uncond + guidance * (u_cond - u_uncond)

    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(condition.shape, generator=generator).to(device)
    with running(model):
        latent = sample_flow(velocity, noise, make_scheduler(scheduler, shift), steps, progress)
    rgb_latent, xyz_latent = split(latent, strategy)
    with running(autoencoder):
        rgb = autoencoder.decode_rgb(rgb_latent)[0]  # (3, T, H, W) in [−1, 1]
        xyz = autoencoder.decode_xyz(xyz_latent)[0]  # Eq. 9 inside decode_xyz
    rgb_uint8 = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu()
    return SixDVideo(rgb=rgb_uint8, xyz=xyz.float().permute(1, 2, 3, 0).cpu())


@contextmanager
def resident(module: torch.nn.Module, device: torch.device) -> Iterator[None]:
    """`module` on `device` for the block, back on the CPU after it (model offloading)."""
    module.to(device)
    try:
        yield
    finally:
        module.to("cpu")


@dataclass
class Inference:
    """Everything `generate_6d` needs, rebuilt from a training checkpoint."""

    config: Config
    model: FourDNeX
    autoencoder: SixDAutoencoder
    encoders: Encoders
    device: torch.device = torch.device("cpu")
    offload: str = "none"


def place(inference: Inference, device: str | torch.device = "cpu", offload: str = "none") -> Inference:
    """Put the networks where generation runs, in one of the memory modes `nano4d plan` sizes.

    none: every network on `device`. model: all stay on the CPU and each moves to `device` only
    while it runs (encoders, then the DiT, then the decoder), as diffusers' model CPU offload
    does. sequential: diffusers' group offloading streams the DiT one transformer block at a time
    and the other networks layer by layer: the least GPU memory, the slowest. On CUDA the DiT
    and the text and image encoders are cast to bf16 (the VAE stays float32).
    """
    if offload not in OFFLOAD_MODES:
        raise ValueError(f"unknown offload mode {offload!r}; expected one of {OFFLOAD_MODES}")
    device = torch.device(device)
    if device.type == "cuda":
        for module in (inference.model, inference.encoders.text_encoder, inference.encoders.image_encoder):
            module.to(dtype=torch.bfloat16)
    networks = (
        inference.model,
        inference.autoencoder,
        inference.encoders.text_encoder,
        inference.encoders.image_encoder,
    )
    if offload == "none":
        for module in networks:
            module.to(device)
    else:
        for module in networks:
            module.to("cpu")
    if offload == "sequential":
        from diffusers.hooks import apply_group_offloading

        apply_group_offloading(
            inference.model.transformer,
            onload_device=device,
            offload_type="block_level",
            num_blocks_per_group=1,
        )
        for module in networks[1:]:
            if any(True for _ in module.parameters()):
                apply_group_offloading(module, onload_device=device, offload_type="leaf_level")
    inference.encoders.device = device
    inference.device, inference.offload = device, offload
    return inference


def load_inference(
    checkpoint: str | Path, *, config_file: str | Path | None = None, model_dir: str | Path | None = None
) -> Inference:
    """Rebuild the trained network from a run or checkpoint folder written by `train`, or the release's.

    `config_file`, if given, must describe the same network as the checkpoint (else a ValueError
    lists the differing fields); `model_dir` points the base weights at a local Wan folder. The
    public 4DNeX release's folder holds only the adapters: its network is `config_file` (default:
    the full preset, whose LoRA rank 64 and alpha 32 are the release's) on the base in `model_dir`.
    """
    from .train import RANDOM_INIT_FILE, build_autoencoder, latest_checkpoint, load_random_init

    folder = latest_checkpoint(Path(checkpoint))
    if not (folder / "config.json").exists():  # the public release's layout
        if model_dir is None:
            raise ValueError(
                f"{folder} holds adapters without a config (the 4DNeX release layout): "
                "pass --model-dir with the Wan2.1-I2V-14B-480P base it was trained on"
            )
        config = load_config(config_file)  # None: the full preset
    else:
        config = config_from_dict(json.loads((folder / "config.json").read_text()))
    if config_file is not None and (folder / "config.json").exists():
        differing = differing_fields(config, load_config(config_file), ("model", "lora", "autoencoder"))
        differing = [d for d in differing if not d.startswith("model.model_dir")]
        if differing:
            raise ValueError(f"checkpoint {folder} was trained with another config: " + "; ".join(differing))
    if model_dir is not None:
        if not Path(model_dir).is_dir():
            raise ValueError(f"model dir {model_dir} does not exist")
        config.model.model_dir = str(model_dir)
    config.model.gradient_checkpointing = False
    autoencoder = build_autoencoder(config)
    encoders = build_encoders(config, seed=config.train.seed)
    model = build_model(config, autoencoder.latent_channels, seed=config.train.seed)
    if not config.model.model_dir:
        load_random_init(folder / RANDOM_INIT_FILE, model, encoders)
    model.load_adapters(folder)
    return Inference(config, model.eval(), autoencoder, encoders)


def load_image(path: str | Path) -> tuple[torch.Tensor, list[str]]:
    """An image file as (3, H, W) float in [−1, 1], plus notes on any conversion made."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no image file at {path}")
    try:
        array = np.asarray(imageio.imread(path))
    except Exception as error:  # imageio raises many types for unreadable files
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"cannot read {path} as an image: {reason}") from None
    notes = []
    if array.dtype == np.uint16:
        array, notes = (array / 65535.0), [*notes, "16-bit image scaled to [0, 1]"]
    elif array.dtype == np.uint8:
        array = array / 255.0
    elif np.issubdtype(array.dtype, np.floating):
        array = np.clip(array, 0, 1)
    else:
        raise ValueError(f"{path}: unsupported pixel type {array.dtype}")
    if array.ndim == 2:
        array, notes = np.repeat(array[..., None], 3, axis=-1), [*notes, "greyscale image repeated to RGB"]
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"{path}: expected an RGB image, got an array of shape {array.shape}")
    if array.shape[-1] == 4:
        alpha = array[..., 3:]
        array, notes = array[..., :3] * alpha + (1 - alpha), [*notes, "RGBA composited over white"]
    if min(array.shape[:2]) < MIN_IMAGE_SIDE:
        raise ValueError(
            f"{path}: image is {array.shape[0]}×{array.shape[1]}; both sides must be at least {MIN_IMAGE_SIDE} pixels"
        )
    if array.shape[0] * array.shape[1] > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{path}: image is {array.shape[0]}×{array.shape[1]}; at most {MAX_IMAGE_PIXELS:,} pixels are accepted"
        )
    image = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(2, 0, 1) * 2 - 1
    return image, notes


def resize_image(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centre-crop (3, H, W) to the target aspect ratio, then resize (antialiased bilinear)."""
    _, h, w = image.shape
    if h * width > w * height:  # too tall: crop rows
        keep = round(w * height / width)
        image = image[:, (h - keep) // 2 : (h - keep) // 2 + keep]
    else:
        keep = round(h * width / height)
        image = image[:, :, (w - keep) // 2 : (w - keep) // 2 + keep]
    resized = F.interpolate(
        image[None], size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
    return resized[0].clamp(-1, 1)


def xyz_colors(xyz: np.ndarray) -> np.ndarray:
    """XYZ maps (T, H, W, 3) as uint8 colours for looking: each axis min-max scaled over the clip."""
    finite = np.isfinite(xyz).all(-1)
    low = np.nanmin(np.where(finite[..., None], xyz, np.nan), axis=(0, 1, 2))
    high = np.nanmax(np.where(finite[..., None], xyz, np.nan), axis=(0, 1, 2))
    scaled = (xyz - low) / np.maximum(high - low, 1e-12)
    return (np.nan_to_num(np.clip(scaled, 0, 1)) * 255).round().astype(np.uint8)


@dataclass
class GenerationReport:
    out: Path
    files: list[Path]
    notes: list[str]
    seconds: float


def run_generation(
    inference: Inference,
    image_path: str | Path,
    out: str | Path,
    *,
    prompt: str = "",
    num_frames: int | None = None,
    steps: int = 50,
    guidance: float = 5.0,
    seed: int = 42,
    scheduler: str = "unipc",
    shift: float = 3.0,
    trajectory: str = "orbit",
    progress: bool = True,
) -> GenerationReport:
    """Image → 6D video → every output file in `out` (see the CLI's help for the list)."""
    from .render import load_trajectory_json, novel_trajectory, render_video, write_point_clouds, write_video
    from .reprojection import recover_cameras, save_recovery
    from .viz import plot_preview

    clock = time.perf_counter()
    data = inference.config.data
    num_frames = num_frames or data.num_frames
    image, notes = load_image(image_path)
    # One token is (VAE compression × patch) pixels on a side: 8 × 2 = 16 for Wan, 1 × 2 for the tiny preset.
    token = inference.autoencoder.spatial_compression * inference.config.model.patch_size[1]
    height, width = output_size(*image.shape[1:], max_area=data.height * data.width, multiple=token)
    if (height, width) != tuple(image.shape[1:]):
        notes.append(f"image {image.shape[1]}×{image.shape[2]} resized to {height}×{width}")
    image = resize_image(image, height, width)
    six = generate_6d(
        inference.model, inference.autoencoder, inference.encoders, image, prompt,
        num_frames=num_frames, steps=steps, guidance=guidance, seed=seed, scheduler=scheduler, shift=shift,
        progress=progress, device=inference.device, offload=inference.offload,
    )  # fmt: skip
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rgb, xyz = six.rgb.numpy(), six.xyz.numpy()
    files = [write_video(out / "rgb.mp4", rgb), write_video(out / "xyz.mp4", xyz_colors(xyz))]
    np.savez_compressed(out / "sixd.npz", rgb=rgb, xyz=xyz.astype(np.float32))
    files.append(out / "sixd.npz")
    recovery = recover_cameras(xyz)
    files += save_recovery(recovery, out)
    files += write_point_clouds(out, xyz, rgb)
    if trajectory in ("orbit", "dolly", "pan"):
        R, t = novel_trajectory(trajectory, recovery.R[0], recovery.t[0], num_frames, center=xyz[0])
        K = recovery.K
    else:
        K, R, t = load_trajectory_json(trajectory)
    novel = render_video(xyz, rgb, K, R, t)
    files.append(write_video(out / "novel_view.mp4", novel.frames))
    files.append(plot_preview(rgb, xyz_colors(xyz), recovery, novel.frames.numpy(), out / "preview.png"))
    return GenerationReport(out, files, notes, time.perf_counter() - clock)
