"""Pretraining the tiny base: an ordinary RGB image-to-video Wan DiT, the miniature's stand-in for Wan2.1.

4DNeX adapts a *pretrained* image-to-video model (Wan2.1-I2V-14B) to 6D videos with LoRA and two domain
embeddings. No pretrained tiny Wan exists, so `nano4d pretrain --tiny` trains one, with the same
`WanTransformer3DModel` class at the tiny preset's size and Wan's own I2V objective:

    x1 = E(V)                                      the RGB video's latent (the exact pixel stand-in)
    c = E([I_0, 0, …, 0]),  M = 1 on frame 0        Wan I2V's first-frame condition and mask
    x_t = (1 − t)·x0 + t·x1                         (Eq. 5, paper time)
    u = −WanDiT([x_t ; M ; c], 1000·(1 − t), c_txt, c_img),   L = ‖u − (x1 − x0)‖²   (Eq. 6)

with c_txt the scene's caption (no trigger words: they belong to the 6D fine-tuning) and c_img CLIP's
view of I_0. Stock RoPE, no XYZ, no LoRA, no domain embeddings; every DiT parameter trains, the tiny
text and image encoders stay frozen (as Wan's do). The data are `data.synthetic_train` synthetic
scenes, `make_scene(clip_seed(data.synthetic_seed, i))`, drawn per step from (seed, step) like every
training draw, so a resumed run replays the same steps; the validation scenes use another seed. Checkpoints and the metrics log are `train`'s.

The result is exported as a diffusers-format folder in the layout of Wan2.1-I2V-14B-480P-Diffusers —
`transformer/`, `text_encoder/`, `tokenizer/`, `image_encoder/`, `image_processor/` (the pixel stand-in
replaces `vae/`) — with `manifest.json` (command, seed, commit, library versions, SHA-256 of every file).
`train --tiny` loads it through `model.model_dir`, the same `from_pretrained` path as the 14B model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import diffusers
import numpy as np
import torch
import transformers
from diffusers import WanTransformer3DModel
from safetensors.torch import save_file
from tqdm import tqdm

from .autoencoder import SixDAutoencoder, build_autoencoder, first_frame_video
from .checkpoint import (
    TRANSFORMER_FILE,
    latest_checkpoint,
    load_scheduler,
    prepare_run_folder,
    read_training_state,
    write_checkpoint,
)
from .conditioning import ENCODER_FOLDERS, Encoders, build_encoders
from .config import Config, SamplingConfig
from .model import build_transformer, wan_velocity
from .outputs import check_output_folder
from .paper.flow_matching import flow_matching_loss, interpolate, make_scheduler, sample_flow
from .paper.mask import RGB_FIRST_FRAME, TEMPORAL_COMPRESSION, modality_mask, pack_temporal
from .reading import read_safetensors
from .synthetic import clip_seed, make_scene
from .train import MetricsLog, make_optimizer, training_step, validation_loss

MODEL_FOLDER_FILES = ("transformer", *ENCODER_FOLDERS, "manifest.json")  # what export_pretrained writes
VALIDATION_OFFSET = 1_000_000  # the validation scenes' seed: data.synthetic_seed + this


class SyntheticVideos:
    """A pool of synthetic scenes in the latent cache's layout: clip i → rgb, cond (z, f, h, w), text, image.

    Scene i is `make_scene(clip_seed(seed, i))` at the configured size. The pool keeps each scene's 8-bit
    video, its caption (`captions`) with its embedding (float16) and its image embedding, and encodes videos
    per batch: cheap for the pixel stand-in, the only autoencoder a tiny pretraining uses. camera_turn
    (−1 left, +1 right) fixes every camera's orbit direction, all other draws unchanged (pilots only).
    """

    def __init__(
        self, config: Config, autoencoder: SixDAutoencoder, encoders: Encoders, seed: int, count: int,
        progress: bool = False, camera_turn: int | None = None,
    ):  # fmt: skip
        data = config.data
        self.num_frames, self.encode = data.num_frames, autoencoder.base.encode  # RGB only: no Eq. 8
        videos, texts, images, self.captions = [], [], [], []
        chunks = range(0, count, 64)
        for start in tqdm(chunks, desc=f"scenes (seed {seed})", unit="×64", disable=not progress):
            indices = range(start, min(count, start + 64))
            size = (data.num_frames, data.height, data.width)
            scenes = [make_scene(clip_seed(seed, i), *size, camera_turn=camera_turn) for i in indices]
            video = torch.from_numpy(np.stack([scene.rgb for scene in scenes]))  # (B, T, H, W, 3) uint8
            videos.append(video)
            self.captions += [scene.caption for scene in scenes]
            texts.append(encoders.encode_text([scene.caption for scene in scenes]).half())  # c_txt as is
            images.append(encoders.encode_image(video[:, 0].permute(0, 3, 1, 2).float() / 127.5 - 1))  # c_img
        self.videos, self.texts, self.images = torch.cat(videos), torch.cat(texts), torch.cat(images)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value[0] for key, value in self.batch([index]).items()}

    @torch.no_grad()
    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        video = self.videos[indices].permute(0, 4, 1, 2, 3).float() / 127.5 - 1  # (B, 3, T, H, W) in [−1, 1]
        return {
            "rgb": self.encode(video),  # x1
            "cond": self.encode(first_frame_video(video[:, :, 0], self.num_frames)),  # c = E([I_0, 0, …, 0])
            "text": self.texts[indices].float(),
            "image": self.images[indices],
        }


def i2v_velocity(
    transformer: WanTransformer3DModel, batch: dict[str, torch.Tensor], x_t: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """The base's velocity u at x_t (B, z, f, h, w) as a Wan I2V model: mask 1 on the first frame, c, c_txt, c_img."""
    frames, h, w = x_t.shape[-3:]
    num_frames = TEMPORAL_COMPRESSION * (frames - 1) + 1
    mask = pack_temporal(modality_mask(num_frames, h, w, RGB_FIRST_FRAME))  # (4, f, h, w)
    mask = mask[None].expand(x_t.shape[0], -1, -1, -1, -1).to(x_t.device)
    return wan_velocity(transformer, x_t, t, mask, batch["cond"], batch["text"], batch["image"])


def i2v_loss(
    transformer: WanTransformer3DModel, batch: dict[str, torch.Tensor], noise: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Wan I2V flow matching on RGB latents (B, z, f, h, w): mask 1 on the first frame, Eq. 5-6 in paper time."""
    x1 = batch["rgb"]
    u = i2v_velocity(transformer, batch, interpolate(noise, x1, t), t)  # at x_t of Eq. 5
    return flow_matching_loss(u, noise, x1)  # Eq. 6


@torch.no_grad()
def sample_i2v(
    transformer: WanTransformer3DModel,
    autoencoder: SixDAutoencoder,
    encoders: Encoders,
    image: torch.Tensor,
    prompt: str,
    sampling: SamplingConfig,
) -> torch.Tensor:
    """The base model alone, as an RGB image-to-video model: (T, H, W, 3) uint8 for an image (3, H, W) in [−1, 1].

    Wan I2V sampling with classifier-free guidance on the prompt (no trigger words) and the negative prompt.
    """
    first = image[None]  # I_0 (1, 3, H, W)
    condition = autoencoder.base.encode(first_frame_video(first, sampling.frames))  # (1, z, f, h, w)
    h, w = condition.shape[-2:]
    mask = pack_temporal(modality_mask(sampling.frames, h, w, RGB_FIRST_FRAME))[None]  # (1, 4, f, h, w)
    texts = encoders.encode_text([prompt, sampling.negative_prompt])
    clip = encoders.encode_image(first)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        u_cond = wan_velocity(transformer, x, t, mask, condition, texts[:1], clip)
        if sampling.guidance == 1.0:
            return u_cond
        u_uncond = wan_velocity(transformer, x, t, mask, condition, texts[1:], clip)
        return u_uncond + sampling.guidance * (u_cond - u_uncond)

    noise = torch.randn(condition.shape, generator=torch.Generator().manual_seed(sampling.seed))
    latent = sample_flow(velocity, noise, make_scheduler(sampling.scheduler, sampling.shift), sampling.steps)
    rgb = autoencoder.base.decode(latent)[0]  # (3, T, H, W) in [−1, 1]
    return ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0)


@dataclass
class PretrainResult:
    out: Path
    steps: int
    initial_val_loss: float
    final_val_loss: float
    seconds: float


def pretrain(
    config: Config,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> PretrainResult:
    """Train the base DiT from its random init as an RGB I2V model; checkpoints, metrics.csv and loss.png in train.out."""
    from .viz import plot_loss_curve

    cfg, device = config.train, torch.device("cpu")
    if config.model.model_dir:
        raise ValueError(
            'pretraining starts from a random base: set model.model_dir to "" (the pretrain preset does)'
        )
    out = Path(cfg.out)
    resuming = prepare_run_folder(out, config, resume, overwrite)
    autoencoder = build_autoencoder(config)
    encoders = build_encoders(config, seed=cfg.seed)
    data = config.data
    train_data = SyntheticVideos(
        config, autoencoder, encoders, data.synthetic_seed, data.synthetic_train, progress
    )
    val_seed = data.synthetic_seed + VALIDATION_OFFSET
    val_data = SyntheticVideos(config, autoencoder, encoders, val_seed, data.synthetic_val, progress)
    transformer = build_transformer(config.model, autoencoder.latent_channels, seed=cfg.seed).train()
    optimizer, scheduler = make_optimizer(list(transformer.parameters()), cfg)
    loss = functools.partial(i2v_loss, transformer)
    start = 0
    if resuming:
        checkpoint = latest_checkpoint(out)
        transformer.load_state_dict(read_safetensors(checkpoint / TRANSFORMER_FILE))
        meta, optimizer_state = read_training_state(checkpoint)
        optimizer.load_state_dict(optimizer_state)
        load_scheduler(scheduler, meta)
        start = meta["step"]
    log = MetricsLog(out, write=True, resume_at=start if resuming else None)

    def save(step: int) -> None:
        state = {k: v.detach().contiguous() for k, v in transformer.state_dict().items()}
        write_checkpoint(
            out, step, lambda folder: save_file(state, str(folder / TRANSFORMER_FILE)), optimizer.state_dict(),
            scheduler, config,
        )  # fmt: skip

    clock, elapsed_before = time.perf_counter(), (log.column("seconds") or [0.0])[-1]
    if start == 0 and len(val_data):
        log(step=0, val_loss=validation_loss(loss, None, val_data, config, device), lr=0.0, seconds=0.0)
    end = min(cfg.steps, stop_after) if stop_after is not None else cfg.steps
    bar = tqdm(
        range(start + 1, end + 1), initial=start, total=cfg.steps, desc="pretrain", disable=not progress
    )
    for step in bar:
        optimizer.zero_grad(set_to_none=True)
        value = training_step(loss, None, train_data, config, step, device)
        torch.nn.utils.clip_grad_norm_(transformer.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        if not math.isfinite(value.item()):
            raise FloatingPointError(f"loss became {value.item()} at step {step}; lower train.lr")
        row = {"step": step, "train_loss": value.item(), "lr": scheduler.get_last_lr()[0]}
        if len(val_data) and (step % cfg.val_every == 0 or step == cfg.steps):
            transformer.eval()
            row["val_loss"] = validation_loss(loss, None, val_data, config, device)
            transformer.train()
        if step % cfg.log_every == 0 or "val_loss" in row or step == end:
            log(**row, seconds=elapsed_before + time.perf_counter() - clock)
        bar.set_postfix(loss=f"{value.item():.4f}")
        if step % cfg.save_every == 0 or step == end:
            save(step)
    bar.close()
    plot_loss_curve(log.rows, out / "loss.png")
    val = log.column("val_loss")
    return PretrainResult(out, end, val[0] if val else math.nan, val[-1] if val else math.nan,
                          (log.column("seconds") or [0.0])[-1])  # fmt: skip


def check_export_folder(
    folder: Path,
    overwrite: bool,
    remedy: str = "pass --overwrite to replace the model folder",
    run: Path | None = None,
) -> None:
    """ValueError unless `folder` can take an exported model: absent, empty, or to be replaced (overwrite).

    Beside a run folder it may be the run's own `model/` or lie outside the run, never hold the run or
    lie elsewhere in it (replacing it would delete the run's checkpoints). A folder holding anything but
    what an export writes is never replaced.
    """
    if run is not None:
        here, there = Path(folder).resolve(), Path(run).resolve()
        if here != there / "model" and (here == there or there in here.parents or here in there.parents):
            raise ValueError(f"--export {folder} overlaps the run folder {run}; choose a folder outside it")
    # a folder holding anything but a model folder's files is never replaced, --overwrite or not
    check_output_folder(folder, MODEL_FOLDER_FILES, "model folder", overwrite=True, option="--export")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise ValueError(f"{folder} is not empty; {remedy}")


def export_pretrained(run: Path, folder: Path, command: str, overwrite: bool = False) -> Path:
    """Write the run's latest DiT and its tiny encoders as a diffusers-format model folder with a manifest."""
    checkpoint = latest_checkpoint(run)
    from .config import config_from_dict
    from .reading import read_json

    config = config_from_dict(read_json(checkpoint / "config.json"))
    meta = read_json(checkpoint / "state.json")
    folder = Path(folder)
    check_export_folder(folder, overwrite)
    staging = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    transformer = build_transformer(
        config.model, build_autoencoder(config).latent_channels, seed=config.train.seed
    )
    transformer.load_state_dict(read_safetensors(checkpoint / TRANSFORMER_FILE))
    transformer.save_pretrained(staging / "transformer", safe_serialization=True)
    encoders = build_encoders(config, seed=config.train.seed)
    for name in ENCODER_FOLDERS:
        getattr(encoders, name).save_pretrained(staging / name)
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    manifest = {
        "what": "the tiny base of nanofourdnex: WanTransformer3DModel pretrained as an RGB image-to-video model "
        "on synthetic scenes (nanofourdnex/pretrain.py), with the frozen random tiny UMT5 and CLIP encoders",
        "command": command,
        "seed": config.train.seed,
        "scene_seed": config.data.synthetic_seed,
        "steps": meta["step"],
        "parameters": sum(p.numel() for p in transformer.parameters()),
        "commit": _git_commit(),
        "versions": {
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },  # fmt: skip
        "bytes": sum(p.stat().st_size for p in files),
        "sha256": {p.relative_to(staging).as_posix(): _sha256(p) for p in files},
        "trained_with": config.to_dict(),  # the run's resolved config: the preset and every override
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    return folder


def check_manifest(folder: Path) -> dict:
    """The manifest of a model folder, after checking every file it lists against its SHA-256 (ValueError if not)."""
    from .reading import read_json

    manifest = read_json(Path(folder) / "manifest.json")
    for name, digest in manifest["sha256"].items():
        path = Path(folder) / name
        if not path.is_file() or _sha256(path) != digest:
            raise ValueError(f"{path} does not match its manifest (missing or changed)")
    return manifest


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
