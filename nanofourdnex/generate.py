"""Generation: one image → 6D video (RGB + XYZ) → cameras, depth, point clouds, novel views (§4.3, §5.2).

Sampling integrates the flow of Eq. 5-6 from noise (t = 0) to data (t = 1) with one of
diffusers' flow-matching schedulers (`paper.flow_matching.sample_flow`), conditioned exactly as
in training:

    c = E([I_0 | X^init, 0, …, 0])                            image and sloped plane, one encode (Eq. 7)
    M = guided mask, 0.5 on the first XYZ frame               (Eq. 10)
    u = u(x, c_∅) + g·(u(x, c_txt) − u(x, c_∅))               classifier-free guidance on the prompt

c_txt is the prompt with the release's trigger words, c_∅ the negative prompt as given. The final
latent is split into its RGB and XYZ halves; the XYZ half is de-normalised (Eq. 9) and both are
decoded. Sampling settings come from the run's `sampling` section (`config.SamplingConfig`; the
full preset's are the public release's: 49 frames, 50 steps, guidance 5.0, seed 42, UniPC with flow
shift 3.0); the output keeps the image's aspect ratio at the training area, both sides multiples of
one token.

`run_generation` reads as the pipeline's outline, after `check_inputs` has checked every input and
the output location before any network is built: 1. sample the 6D video, 2. recover cameras and
depth, 3. point clouds, novel views and figures, 4. the 4D recording, all in a staging folder, then
5. move it into place.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .autoencoder import SixDAutoencoder, build_autoencoder, wan_spatial_compression
from .checkpoint import RANDOM_INIT_FILE, TRANSFORMER_FILE, latest_checkpoint, load_random_init
from .conditioning import Encoders, build_encoders, condition_latents
from .config import Config, SamplingConfig, config_from_dict, differing_fields, load_config
from .data import center_crop_box
from .model import FourDNeX, build_model
from .paper.flow_matching import SCHEDULERS, make_scheduler, sample_flow
from .paper.fusion import split
from .paper.mask import guided_mask
from .reading import load_image, read_json

OFFLOAD_MODES = ("none", "model", "sequential")
TRAJECTORIES = ("orbit", "dolly", "pan")


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
    sampling: SamplingConfig,
    *,
    progress: bool = False,
    device: torch.device | str | None = None,
    offload: str = "none",
) -> SixDVideo:
    """Sample one 6D video of `sampling.frames` frames for an image (3, H, W) in [−1, 1].

    `device` is where the networks run (default: where the model's weights are); with
    offload="model" each network is moved there only while it runs (see `place`).
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3, H, W), got {tuple(image.shape)}")
    if sampling.frames < 1:
        raise ValueError(f"sampling.frames must be a frame count, got {sampling.frames}")
    device = torch.device(device) if device is not None else next(model.parameters()).device

    def running(module: torch.nn.Module):
        return resident(module, device) if offload == "model" else nullcontext()

    strategy, frames, guidance = model.strategy, sampling.frames, sampling.guidance
    first = image[None].to(device)  # I_0 (1, 3, H, W)
    with running(autoencoder):
        condition = condition_latents(autoencoder, first, frames, strategy)  # c (1, z, f, h, 2w)
    s = autoencoder.spatial_compression
    mask = guided_mask(frames, image.shape[1] // s, image.shape[2] // s, strategy).to(device)  # Eq. 10
    with running(encoders.text_encoder):
        texts = encoders.encode_text([encoders.triggered(prompt), sampling.negative_prompt]).to(device)
    with running(encoders.image_encoder):
        image_embeds = encoders.encode_image(first).to(device)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # The two passes run one after the other, as the Wan pipeline does: half the activation memory.
        u_cond = model(x, t, mask, condition, texts[:1], image_embeds)
        if guidance == 1.0:
            return u_cond
        u_uncond = model(x, t, mask, condition, texts[1:], image_embeds)
        return u_uncond + guidance * (u_cond - u_uncond)

    generator = torch.Generator().manual_seed(sampling.seed)
    noise = torch.randn(condition.shape, generator=generator).to(device)
    with running(model):
        scheduler = make_scheduler(sampling.scheduler, sampling.shift)
        latent = sample_flow(velocity, noise, scheduler, sampling.steps, progress)
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


# --- The network, rebuilt from a checkpoint ---


@dataclass
class Inference:
    """Everything `generate_6d` needs, rebuilt from a training checkpoint."""

    config: Config
    model: FourDNeX
    autoencoder: SixDAutoencoder
    encoders: Encoders
    device: torch.device = torch.device("cpu")
    offload: str = "none"


def checkpoint_config(
    checkpoint: str | Path, config_file: str | Path | None = None, model_dir: str | Path | None = None
) -> tuple[Path, Config]:
    """(checkpoint folder, the config of its network), read without building anything.

    `config_file`, if given, must describe the same network as the checkpoint (else a ValueError
    lists the differing fields); `model_dir` points the base weights at a local Wan folder. The
    public 4DNeX release's folder holds only the adapters: its network is `config_file` (default:
    the full preset, whose LoRA rank 64 and alpha 32 are the release's) on the base in `model_dir`.
    """
    folder = latest_checkpoint(Path(checkpoint))
    if (folder / TRANSFORMER_FILE).is_file():
        raise ValueError(
            f"{folder} is a pretraining checkpoint (an RGB base, no 6D adapters): fine-tune it with "
            "`nano4d train` on its exported model folder, then generate from that run"
        )
    if not (folder / "config.json").exists():  # the public release's layout
        if model_dir is None:
            raise ValueError(
                f"{folder} holds adapters without a config (the 4DNeX release layout): "
                "pass --model-dir with the Wan2.1-I2V-14B-480P base it was trained on"
            )
        config = load_config(config_file)  # None: the full preset
    else:
        config = config_from_dict(read_json(folder / "config.json"))
        if config_file is not None:
            differing = differing_fields(config, load_config(config_file), ("model", "lora", "autoencoder"))
            differing = [d for d in differing if not d.startswith("model.model_dir")]
            if differing:
                raise ValueError(
                    f"checkpoint {folder} was trained with another config: " + "; ".join(differing)
                )
    if model_dir is not None:
        if not Path(model_dir).is_dir():
            raise ValueError(f"model dir {model_dir} does not exist")
        config.model.model_dir = str(model_dir)
    config.model.gradient_checkpointing = False
    return folder, config


def load_inference(
    checkpoint: str | Path, *, config_file: str | Path | None = None, model_dir: str | Path | None = None
) -> Inference:
    """Rebuild the trained network from a run or checkpoint folder written by `train`, or the release's."""
    folder, config = checkpoint_config(checkpoint, config_file, model_dir)
    autoencoder = build_autoencoder(config)
    encoders = build_encoders(config, seed=config.train.seed)
    model = build_model(config, autoencoder.latent_channels, seed=config.train.seed)
    if not config.model.model_dir:
        load_random_init(folder / RANDOM_INIT_FILE, model, encoders)
    model.load_adapters(folder)
    return Inference(config, model.eval(), autoencoder, encoders)


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
    for module in networks:
        module.to(device if offload == "none" else "cpu")
    if offload == "sequential":
        from diffusers.hooks import apply_group_offloading

        apply_group_offloading(
            inference.model.transformer,
            onload_device=device,
            offload_type="block_level",
            num_blocks_per_group=1,
        )
        # The autoencoder's wrapper holds the latent standardisation as buffers and is never called itself
        # (encode/decode are): its buffers go to the device whole, the offloading hooks go on the VAE inside.
        autoencoder = inference.autoencoder
        autoencoder.to(device)
        vae = getattr(autoencoder.base, "vae", None)
        for module in (vae, inference.encoders.text_encoder, inference.encoders.image_encoder):
            if module is not None:
                module.to("cpu")
                apply_group_offloading(module, onload_device=device, offload_type="leaf_level")
    inference.encoders.device = device
    inference.device, inference.offload = device, offload
    return inference


# --- Inputs: the image, the sampling settings, the novel-view path and the output folder ---


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


def resize_image(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centre-crop (3, H, W) to the target aspect ratio, then resize (antialiased bilinear)."""
    rows, cols = center_crop_box(*image.shape[1:], height, width)
    resized = F.interpolate(
        image[None, :, rows, cols], size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
    return resized[0].clamp(-1, 1)


@dataclass
class GenerationInputs:
    """A checked request: everything `run_generation` needs besides the network."""

    image: torch.Tensor  # (3, H, W) in [−1, 1], at the output size
    prompt: str
    sampling: SamplingConfig  # frames resolved
    trajectory: (
        str | tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    )  # a kind, or (K, R, t) from a cameras.json
    out: Path
    notes: list[str]


def check_inputs(
    config: Config,
    image_path: str | Path,
    out: str | Path,
    *,
    prompt: str = "",
    sampling: SamplingConfig | None = None,
    trajectory: str = "orbit",
    overwrite: bool = False,
) -> GenerationInputs:
    """Every input of a generation checked against the run's config before any network is built.

    `sampling` defaults to the run's own (`config.sampling`, stored by `train`); frames 0 means the
    training clip length. The output folder must not exist, or be replaced with `overwrite`.
    """
    from .outputs import check_generation_folder, load_trajectory_json

    sampling = dataclasses.replace(sampling or config.sampling)
    sampling.frames = sampling.frames or config.data.num_frames
    if sampling.frames < 1 or (sampling.frames - 1) % 4:
        raise ValueError(f"frames must be 4k + 1 (1, 5, 9, …, 49), got {sampling.frames}")
    latent_frames, positions = (sampling.frames - 1) // 4 + 1, config.model.rope_max_seq_len
    if latent_frames > positions:
        raise ValueError(
            f"{sampling.frames} frames are {latent_frames} latent frames; the model's positions (RoPE) reach "
            f"{positions}, so at most {4 * (positions - 1) + 1}"
        )
    if not 0 <= sampling.seed < 2**63:
        raise ValueError(f"seed must lie in [0, 2^63), got {sampling.seed}")
    if sampling.steps < 1:
        raise ValueError(f"steps must be at least 1, got {sampling.steps}")
    if not math.isfinite(sampling.guidance) or sampling.guidance < 0:
        raise ValueError(f"guidance must be a finite number >= 0, got {sampling.guidance}")
    if sampling.scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {sampling.scheduler!r}; expected one of {SCHEDULERS}")
    if not math.isfinite(sampling.shift) or sampling.shift <= 0:
        raise ValueError(f"shift must be a finite number > 0, got {sampling.shift}")
    if trajectory not in TRAJECTORIES:
        if not Path(trajectory).is_file():
            raise ValueError(
                f"--trajectory must be one of {TRAJECTORIES} or a cameras.json file, got {trajectory!r}"
            )
        cameras = load_trajectory_json(trajectory)
        if len(cameras[1]) != sampling.frames:
            raise ValueError(
                f"{trajectory} holds {len(cameras[1])} cameras, but {sampling.frames} frames are generated"
            )
        trajectory = cameras
    out = check_generation_folder(Path(out), Path(image_path), overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.parent / f".{out.name}.probe"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise ValueError(f"cannot write into {out.parent}: {error.strerror or error}") from None
    image, notes = load_image(image_path)
    # One token is (VAE compression × patch) pixels on a side: 8 × 2 = 16 for Wan, 1 × 2 for the tiny preset.
    token = _token_pixels(config)
    height, width = output_size(
        *image.shape[1:], max_area=config.data.height * config.data.width, multiple=token
    )
    if (height, width) != tuple(image.shape[1:]):
        notes.append(f"image {image.shape[1]}×{image.shape[2]} resized to {height}×{width}")
    return GenerationInputs(resize_image(image, height, width), prompt, sampling, trajectory, out, notes)


def _token_pixels(config: Config) -> int:
    """Pixels on a side of one DiT token: the autoencoder's spatial compression × the patch size.

    Read from the config (and the Wan VAE's own config.json), so it is known before the networks load.
    """
    if config.autoencoder.kind == "pixel":
        compression = config.autoencoder.spatial
    else:
        vae = read_json(Path(config.model.model_dir) / "vae" / "config.json")
        compression = wan_spatial_compression(
            vae.get("dim_mult", [1, 2, 4, 4])
        )  # diffusers' default: Wan2.1's
    return compression * config.model.patch_size[1]


@dataclass
class GenerationReport:
    out: Path
    files: list[Path]
    notes: list[str]
    seconds: float


def run_generation(inference: Inference, inputs: GenerationInputs, progress: bool = True) -> GenerationReport:
    """Checked inputs → 6D video → every output file in `inputs.out` (see the CLI's help for the list).

    The files are written into a hidden staging folder beside `inputs.out`, which replaces it only when
    every file is written; on any failure the staging folder is removed and `inputs.out` is untouched.
    """
    clock = time.perf_counter()
    out = inputs.out
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        files = write_outputs(inference, inputs, staging, progress)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # nothing half-written stays behind
        raise
    # 5. Into place: the old folder (if --overwrite) goes only now, the new one is renamed in whole.
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    files = [out / f.relative_to(staging) for f in files]
    return GenerationReport(out, files, inputs.notes, time.perf_counter() - clock)


def write_outputs(
    inference: Inference, inputs: GenerationInputs, staging: Path, progress: bool
) -> list[Path]:
    """Steps 1-4 of `run_generation`, every file into `staging`; returns the files written."""
    from .outputs import save_recovery, write_cameras_json, write_point_clouds, write_video, xyz_colors
    from .paper.reprojection import camera_to_world, recover_cameras
    from .render import novel_trajectory, render_video
    from .viewer import Scene4D, record_scene
    from .viz import plot_preview

    # 1. The 6D video.
    six = generate_6d(
        inference.model, inference.autoencoder, inference.encoders, inputs.image, inputs.prompt, inputs.sampling,
        progress=progress, device=inference.device, offload=inference.offload,
    )  # fmt: skip
    rgb, xyz = six.rgb.numpy(), six.xyz.numpy()
    files = [write_video(staging / "rgb.mp4", rgb), write_video(staging / "xyz.mp4", xyz_colors(xyz))]
    np.savez_compressed(staging / "sixd.npz", rgb=rgb, xyz=xyz.astype(np.float32))
    files.append(staging / "sixd.npz")

    # 2. Cameras and depth from the XYZ video (Eq. 12-13), and the point clouds.
    recovery = recover_cameras(xyz)
    files += save_recovery(recovery, staging)
    files += write_point_clouds(staging, xyz, rgb)

    # 3. Novel views along the requested path, and the preview figure.
    if isinstance(inputs.trajectory, str):
        R, t = novel_trajectory(inputs.trajectory, recovery.R[0], recovery.t[0], len(xyz), center=xyz[0])
        K = recovery.K
    else:
        K, R, t = inputs.trajectory
    novel = render_video(xyz, rgb, K, R, t)
    files.append(write_video(staging / "novel_view.mp4", novel.frames))
    files.append(write_cameras_json(staging / "novel_cameras.json", K, R, t))
    files.append(plot_preview(rgb, xyz_colors(xyz), recovery, novel.frames.numpy(), staging / "preview.png"))

    # 4. The 4D recording: points, cameras, RGB, depth over time (`nano4d view OUT`).
    scene = Scene4D(
        rgb, xyz, recovery.K, recovery.camera_to_world(), recovery.depth,
        novel_K=K, novel_camera_to_world=camera_to_world(R, t), title=inputs.out.name,
    )  # fmt: skip
    files.append(record_scene(scene, staging / "scene.rrd").path)
    return files
