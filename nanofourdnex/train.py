"""Training: flow matching (Eq. 5-6) of the LoRA-adapted Wan DiT on fused 6D latents (§4, §5.1).

One step, for a batch of cached clips (see `cache`):

    x1 = fuse(E(RGB), (E(XYZ) − μ)/σ)          data latent, width-wise by default (§4.2, Eq. 8)
    x0 ~ N(0, I),  t ~ U(0, 1)                  noise and time (Eq. 5)
    x_t = (1 − t)·x0 + t·x1                     (Eq. 5)
    u = model(x_t, t, M, c, c_txt, c_img)       guided mask M (Eq. 10), condition c (Eq. 7)
    L = ‖u − (x1 − x0)‖²                        (Eq. 6)

AdamW with a cosine schedule and linear warm-up, gradient clipping, optional bf16 autocast
and gradient checkpointing, gradient accumulation from micro-batches to the global batch.

Determinism: every random draw of step k (which clips, x0, t) comes from a generator seeded
with (seed, k) alone, so a run resumed from a checkpoint at step k replays exactly the
steps an uninterrupted run would have taken. The validation loss uses fixed noise per
held-out clip and a fixed grid of t. Checkpoints are written atomically (temporary folder +
rename; the `latest` pointer by temporary file + rename) in safetensors and JSON only.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers.optimization import get_cosine_schedule_with_warmup
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from .autoencoder import PixelShuffleAutoencoder, SixDAutoencoder, WanAutoencoder
from .cache import LatentCache, build_cache
from .conditioning import Encoders, build_encoders
from .config import Config
from .flow_matching import flow_matching_loss, interpolate, sample_time
from .fusion import fuse
from .mask import guided_mask
from .model import FourDNeX, build_model

METRICS_FIELDS = ("step", "train_loss", "val_loss", "lr", "seconds")
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
RANDOM_INIT_FILE = "random_init.safetensors"


def step_generator(seed: int, step: int) -> torch.Generator:
    """The only source of randomness of one training step: a function of (seed, step)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def build_autoencoder(config: Config) -> SixDAutoencoder:
    ae = config.autoencoder
    if ae.kind == "pixel":
        base = PixelShuffleAutoencoder(ae.spatial)
    elif ae.kind == "wan":
        if not config.model.model_dir:
            raise ValueError("autoencoder.kind = 'wan' needs model.model_dir (a local Wan2.1-I2V folder)")
        from diffusers import AutoencoderKLWan

        vae_dir = Path(config.model.model_dir) / "vae"
        if not vae_dir.is_dir():
            raise ValueError(f"model dir {config.model.model_dir} has no vae/ folder")
        base = WanAutoencoder(AutoencoderKLWan.from_pretrained(vae_dir, local_files_only=True).eval())
    else:
        raise ValueError(f"unknown autoencoder kind {ae.kind!r}; expected 'pixel' or 'wan'")
    return SixDAutoencoder(base, ae.xyz_mean, ae.xyz_std)


def ensure_synthetic_data(config: Config, progress: bool = True) -> None:
    """Write the synthetic training / validation clips on first use (tiny presets)."""
    from .synthetic import write_dataset

    data = config.data
    splits = (
        (data.root, data.synthetic_train, data.synthetic_seed),
        (data.val_root, data.synthetic_val, data.synthetic_seed + 100_000),
    )
    for root, count, seed in splits:
        if root and count > 0 and not any(Path(root).glob("*/pred_traj.txt")):
            write_dataset(
                Path(root), count, seed=seed, num_frames=data.num_frames, height=data.height, width=data.width
            )


def prepare_cache(
    config: Config, root: str, cache_dir: Path, encoders: Encoders, progress: bool = True
) -> LatentCache:
    """Encode the clips under `root` into `cache_dir` (skipping cached ones) and open the cache."""
    from .data import ClipDataset

    dataset = ClipDataset(root, config.data.num_frames, config.data.height, config.data.width)
    files = build_cache(dataset, build_autoencoder(config), encoders, cache_dir, progress=progress)
    return LatentCache(files)


def random_init_state(model: FourDNeX, encoders: Encoders) -> dict[str, torch.Tensor]:
    """The randomly initialised (frozen) base DiT and tiny encoders of a run without `model_dir`.

    Saved with each checkpoint so that generation rebuilds exactly the network that was trained,
    independent of the torch version's random number streams.
    """
    state = {
        f"transformer.{k}": v
        for k, v in model.transformer.state_dict().items()
        if "lora_" not in k and k != "domain_embedding.weight"
    }
    state |= {f"text_encoder.{k}": v for k, v in encoders.text_encoder.state_dict().items()}
    state |= {f"image_encoder.{k}": v for k, v in encoders.image_encoder.state_dict().items()}
    return {k: v.detach().contiguous() for k, v in state.items()}


def load_random_init(path: Path, model: FourDNeX, encoders: Encoders) -> None:
    """Inverse of `random_init_state`: load the saved base DiT and tiny encoders in place."""
    parts: dict[str, dict[str, torch.Tensor]] = {"transformer": {}, "text_encoder": {}, "image_encoder": {}}
    for key, value in load_file(str(path)).items():
        part, name = key.split(".", 1)
        parts[part][name] = value
    missing = model.transformer.load_state_dict(parts["transformer"], strict=False).missing_keys
    missing = [k for k in missing if "lora_" not in k and k != "domain_embedding.weight"]
    if missing:
        raise ValueError(f"{path} lacks base weights such as {missing[:3]}")
    encoders.text_encoder.load_state_dict(parts["text_encoder"])
    encoders.image_encoder.load_state_dict(parts["image_encoder"])


def batch_loss(
    model: FourDNeX, batch: dict[str, torch.Tensor], num_frames: int, noise: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Eq. 5-6 on one batch with given noise x0 and times t."""
    strategy = model.strategy
    x1 = fuse(batch["rgb"], batch["xyz"], strategy)  # (B, z, f, h, 2w) for width-wise
    condition = fuse(batch["cond_rgb"], batch["cond_xyz"], strategy)
    h, w = batch["rgb"].shape[-2:]
    mask = guided_mask(num_frames, h, w, strategy).to(x1.device)  # (1, 4, f, h, 2w), Eq. 10
    mask = mask.expand(x1.shape[0], -1, -1, -1, -1)
    x_t = interpolate(noise, x1, t)
    u = model(x_t, t, mask, condition, batch["text"], batch["image"])
    return flow_matching_loss(u, noise, x1)


def step_draws(data: LatentCache, config: Config, step: int, strategy: str):
    """Step k's random draws for the whole global batch: clip indices, noise x0, times t.

    Drawn for the global batch at once, so they do not depend on how the batch is split into
    micro-batches or across processes.
    """
    generator = step_generator(config.train.seed, step)
    batch_size = config.train.batch_size
    indices = torch.randint(len(data), (batch_size,), generator=generator)
    one = data.batch([0])
    sample_shape = fuse(one["rgb"], one["xyz"], strategy).shape[1:]  # (z, f, h, w') of one fused sample
    noise = torch.randn((batch_size, *sample_shape), generator=generator)
    t = sample_time(batch_size, generator)
    return indices, noise, t


def training_step(
    model: FourDNeX,
    data: LatentCache,
    config: Config,
    step: int,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
) -> torch.Tensor:
    """Accumulate gradients of this process's share of one global batch; return its loss share.

    Samples rank, rank + world, … of the global batch are this process's; each micro-batch's
    loss is weighted by its share of the global batch, so summing the gradients (and returned
    losses) over processes gives exactly the global-batch mean.
    """
    train = config.train
    indices, noise, t = step_draws(data, config, step, model.strategy)
    mine = list(range(rank, train.batch_size, world))
    total = torch.zeros(())
    for start in range(0, len(mine), train.micro_batch_size):
        chunk = mine[start : start + train.micro_batch_size]
        batch = {k: v.to(device) for k, v in data.batch(indices[chunk].tolist()).items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=train.bf16):
            loss = batch_loss(
                model, batch, config.data.num_frames, noise[chunk].to(device), t[chunk].to(device)
            )
        share = len(chunk) / train.batch_size
        (loss * share).backward()
        total += loss.detach().cpu() * share
    return total


@torch.no_grad()
def validation_loss(model: FourDNeX, data: LatentCache, config: Config, device: torch.device) -> float:
    """Mean Eq. 6 loss over held-out clips × the fixed t grid, with fixed noise per clip."""
    train = config.train
    losses = []
    for index in range(len(data)):
        batch = {k: v.to(device) for k, v in data.batch([index]).items()}
        shape = fuse(batch["rgb"], batch["xyz"], model.strategy).shape
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(10_000 + index)).to(device)
        for t in train.val_times:
            times = torch.full((shape[0],), t, device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=train.bf16):
                losses.append(batch_loss(model, batch, config.data.num_frames, noise, times).item())
    return sum(losses) / len(losses)


def save_checkpoint(
    out: Path,
    step: int,
    model: FourDNeX,
    optimizer,
    scheduler,
    config: Config,
    encoders: Encoders,
    keep: int = 2,
) -> Path:
    """Adapters (diffusers LoRA format + domain embeddings), optimizer, scheduler, step: atomically.

    Runs without a pretrained `model_dir` also store their random-init base (`RANDOM_INIT_FILE`).
    """
    checkpoints = out / "checkpoints"
    final = checkpoints / f"step_{step:07d}"
    temporary = checkpoints / f".step_{step:07d}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    model.save_adapters(temporary)
    config.save(temporary / "config.json")
    if not config.model.model_dir:
        save_file(random_init_state(model, encoders), str(temporary / RANDOM_INIT_FILE))
    state = optimizer.state_dict()
    tensors = {f"state.{i}.{k}": v for i, s in state["state"].items() for k, v in s.items()}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(temporary / OPTIMIZER_FILE))
    scheduler_state = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    meta = {"step": step, "param_groups": state["param_groups"], "scheduler": scheduler_state}
    (temporary / STATE_FILE).write_text(json.dumps(meta, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(temporary, final)
    pointer = out / ".latest.tmp"
    pointer.write_text(final.name + "\n")
    os.replace(pointer, out / "latest")
    for old in sorted(checkpoints.glob("step_*"))[:-keep]:
        shutil.rmtree(old)
    return final


def latest_checkpoint(run_or_checkpoint: Path) -> Path:
    """A checkpoint folder, or the one a run folder's `latest` pointer names."""
    path = Path(run_or_checkpoint)
    if (path / "latest").exists():
        return path / "checkpoints" / (path / "latest").read_text().strip()
    if (path / "pytorch_lora_weights.safetensors").exists():
        return path
    raise ValueError(f"{path} is neither a run folder with a `latest` checkpoint nor a checkpoint folder")


def load_checkpoint(checkpoint: Path, model: FourDNeX, optimizer, scheduler) -> int:
    """Restore adapters, optimizer and scheduler; return the step to continue from."""
    model.load_adapters(checkpoint)
    meta = json.loads((checkpoint / STATE_FILE).read_text())
    tensors = load_file(str(checkpoint / OPTIMIZER_FILE))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(
        {**meta["scheduler"], "lr_lambdas": [None] * len(meta["scheduler"]["base_lrs"])}
    )
    return meta["step"]


@dataclass
class TrainResult:
    out: Path
    steps: int
    initial_val_loss: float
    final_val_loss: float
    seconds: float


def read_metrics(out: Path) -> list[dict[str, str]]:
    path = out / "metrics.csv"
    return list(csv.DictReader(path.open())) if path.exists() else []


def train(
    config: Config, resume: bool = False, progress: bool = True, stop_after: int | None = None
) -> TrainResult:
    """Run (or resume) training as configured; writes checkpoints, metrics.csv and loss.png to train.out.

    `stop_after` ends the run early after that step (as a kill would), for resume tests.
    """
    from .viz import plot_loss_curve

    train_cfg = config.train
    if train_cfg.batch_size % train_cfg.micro_batch_size:
        raise ValueError(
            f"batch_size {train_cfg.batch_size} must be a multiple of micro_batch_size {train_cfg.micro_batch_size}"
        )
    out = Path(train_cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.json")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    if not resume:  # a fresh run re-encodes: the cache depends on the config's encoders
        shutil.rmtree(out / "cache", ignore_errors=True)
    ensure_synthetic_data(config, progress)
    encoders = build_encoders(config, seed=train_cfg.seed)
    train_data = prepare_cache(config, config.data.root, out / "cache" / "train", encoders, progress)
    val_data = (
        prepare_cache(config, config.data.val_root, out / "cache" / "val", encoders, progress)
        if config.data.val_root
        else None
    )

    latent_channels = train_data[0]["rgb"].shape[0]
    model = build_model(config, latent_channels, seed=train_cfg.seed).to(device)
    optimizer = torch.optim.AdamW(
        model.trainable_parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay
    )
    scheduler = get_cosine_schedule_with_warmup(optimizer, train_cfg.warmup_steps, train_cfg.steps)

    start, rows = 0, []
    if resume and (out / "latest").exists():
        start = load_checkpoint(latest_checkpoint(out), model, optimizer, scheduler)
        rows = [r for r in read_metrics(out) if int(r["step"]) <= start]
    elif not resume:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        (out / "latest").unlink(missing_ok=True)

    def log(row: dict) -> None:
        rows.append({k: row.get(k, "") for k in METRICS_FIELDS})
        temporary = out / ".metrics.tmp"
        with temporary.open("w", newline="") as f:
            writer = csv.DictWriter(f, METRICS_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(temporary, out / "metrics.csv")

    clock = time.perf_counter()
    elapsed_before = float(rows[-1]["seconds"]) if rows else 0.0
    if start == 0 and val_data is not None:
        log(
            {
                "step": 0,
                "val_loss": validation_loss(model, val_data, config, device),
                "lr": scheduler.get_last_lr()[0],
                "seconds": 0.0,
            }
        )
    end = min(train_cfg.steps, stop_after) if stop_after is not None else train_cfg.steps
    bar = tqdm(
        range(start + 1, end + 1), initial=start, total=train_cfg.steps, desc="train", disable=not progress
    )
    model.train()
    for step in bar:
        optimizer.zero_grad(set_to_none=True)
        loss = training_step(model, train_data, config, step, device)
        torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), train_cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(
                f"loss became {loss.item()} at step {step}; lower train.lr or check the data"
            )
        row = {"step": step, "train_loss": loss.item(), "lr": scheduler.get_last_lr()[0]}
        if val_data is not None and (step % train_cfg.val_every == 0 or step == train_cfg.steps):
            model.eval()
            row["val_loss"] = validation_loss(model, val_data, config, device)
            model.train()
        if step % train_cfg.log_every == 0 or "val_loss" in row or step == end:
            row["seconds"] = elapsed_before + time.perf_counter() - clock
            log(row)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % train_cfg.save_every == 0 or step == train_cfg.steps:
            save_checkpoint(out, step, model, optimizer, scheduler, config, encoders)
    bar.close()
    if end < train_cfg.steps:
        save_checkpoint(out, end, model, optimizer, scheduler, config, encoders)
    plot_loss_curve(rows, out / "loss.png")
    val = [float(r["val_loss"]) for r in rows if r["val_loss"] not in ("", None)]
    return TrainResult(
        out=out,
        steps=end,
        initial_val_loss=val[0] if val else math.nan,
        final_val_loss=val[-1] if val else math.nan,
        seconds=float(rows[-1]["seconds"] or 0.0) if rows else 0.0,
    )
