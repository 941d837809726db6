"""Training: flow matching (Eq. 5-6) of the LoRA-adapted Wan DiT on fused 6D latents (§4, §5.1).

One step, for a batch of cached clips (see `cache`):

    x1 = fuse(E(RGB), (E(XYZ) − μ)/σ)          data latent, width-wise by default (§4.2, Eq. 8)
    x0 ~ N(0, I),  t ~ U(0, 1)                  noise and time (Eq. 5)
    x_t = (1 − t)·x0 + t·x1                     (Eq. 5)
    u = model(x_t, t, M, c, c_txt, c_img)       guided mask M (Eq. 10), condition c (Eq. 7)
    L = ‖u − (x1 − x0)‖²                        (Eq. 6)

AdamW with a cosine schedule and linear warm-up, gradient clipping, optional bf16 autocast
and gradient checkpointing, gradient accumulation from micro-batches to the global batch.
Under torchrun the same loop runs on every process with the model sharded by FSDP2 (see
`distributed`); one process is the one-shard case of the same code. Each process takes its share
of the global batch; rank 0 logs and writes.

Data: the clips under data.root are encoded once into a latent cache (`cache`) in the run
folder, or, when data.cache is set, read from a cache written beforehand by `nano4d cache`.

Determinism: every random draw of step k (which clips, x0, t) comes from a generator seeded
with (seed, k) alone, so a run resumed from a checkpoint at step k replays exactly the
steps an uninterrupted run would have taken. The validation loss uses fixed noise per
held-out clip and a fixed grid of t. Checkpoints: `checkpoint`.
"""

from __future__ import annotations

import csv
import functools
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers.optimization import get_cosine_schedule_with_warmup
from tqdm import tqdm

from .cache import LatentCache, open_data
from .checkpoint import (
    RANDOM_INIT_FILE,
    latest_checkpoint,
    load_checkpoint,
    load_random_init,
    prepare_run_folder,
    save_checkpoint,
)
from .conditioning import build_encoders, check_encoder_folders
from .config import Config, TrainConfig
from .distributed import barrier, broadcast_object, build_sharded_model, current_world, sum_over_ranks
from .model import FourDNeX, build_model, check_base_config
from .paper.flow_matching import SCHEDULERS, flow_matching_loss, interpolate, sample_time
from .paper.fusion import STRATEGIES, fuse
from .paper.mask import TEMPORAL_COMPRESSION, guided_mask
from .synthetic import ensure_synthetic_data

METRICS_FIELDS = ("step", "train_loss", "val_loss", "lr", "seconds")
VALIDATION_SEED = 10_000  # the held-out clip i is noised with the generator seeded VALIDATION_SEED + i
Loss = Callable[[dict[str, torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor]  # (batch, x0, t) → L


def batch_loss(
    model: FourDNeX, batch: dict[str, torch.Tensor], noise: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Eq. 5-6 on one batch of cached clips with given noise x0 (fused like x1) and times t (B,)."""
    strategy = model.strategy
    x1 = fuse(batch["rgb"], batch["xyz"], strategy)  # (B, z, f, h, 2w) for width-wise
    frames, h, w = batch["rgb"].shape[-3:]
    num_frames = TEMPORAL_COMPRESSION * (frames - 1) + 1  # pixel frames T of f latent frames
    mask = guided_mask(num_frames, h, w, strategy).to(x1.device)  # (1, 4, f, h, 2w), Eq. 10
    mask = mask.expand(x1.shape[0], -1, -1, -1, -1)
    x_t = interpolate(noise, x1, t)  # Eq. 5
    u = model(x_t, t, mask, batch["cond"], batch["text"], batch["image"])  # c: fused when cached
    return flow_matching_loss(u, noise, x1)  # Eq. 6


def step_generator(seed: int, step: int) -> torch.Generator:
    """The only source of randomness of one training step: a function of (seed, step)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def noise_shape(sample: dict[str, torch.Tensor], strategy: str | None) -> tuple[int, ...]:
    """(z, f, h, w') of one sample's x1: RGB and XYZ fused by `strategy`, or RGB alone (None: pretraining)."""
    rgb = sample["rgb"][None]
    return tuple((rgb if strategy is None else fuse(rgb, sample["xyz"][None], strategy)).shape[1:])


def step_draws(data: LatentCache, config: Config, step: int, strategy: str | None):
    """Step k's random draws for the whole global batch: clip indices, noise x0 (fused by `strategy`), times t.

    Drawn for the global batch at once, so they do not depend on how the batch is split into
    micro-batches or across processes.
    """
    generator = step_generator(config.train.seed, step)
    batch_size = config.train.batch_size
    indices = torch.randint(len(data), (batch_size,), generator=generator)
    noise = torch.randn((batch_size, *noise_shape(data[0], strategy)), generator=generator)
    t = sample_time(batch_size, generator)
    return indices, noise, t


def training_step(
    loss: Loss, strategy: str | None, data: LatentCache, config: Config, step: int, device: torch.device,
    rank: int = 0, world: int = 1,
) -> torch.Tensor:  # fmt: skip
    """Accumulate gradients of this process's share of one global batch; return its loss share.

    Samples rank, rank + world, … of the global batch are this process's; each micro-batch's
    loss is weighted by its share of the global batch, so summing the gradients (and returned
    losses) over processes gives exactly the global-batch mean.
    """
    train = config.train
    indices, noise, t = step_draws(data, config, step, strategy)
    mine = list(range(rank, train.batch_size, world))
    total = torch.zeros(())
    for start in range(0, len(mine), train.micro_batch_size):
        chunk = mine[start : start + train.micro_batch_size]
        batch = {k: v.to(device) for k, v in data.batch(indices[chunk].tolist()).items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=train.bf16):
            value = loss(batch, noise[chunk].to(device), t[chunk].to(device))
        share = len(chunk) / train.batch_size
        (value * share).backward()
        total += value.detach().cpu() * share
    return total


@torch.no_grad()
def validation_loss(
    loss: Loss, strategy: str | None, data: LatentCache, config: Config, device: torch.device
) -> float:
    """Mean Eq. 6 loss over held-out clips × the fixed t grid, with fixed noise per clip."""
    losses = []
    for index in range(len(data)):
        batch = {k: v.to(device) for k, v in data.batch([index]).items()}
        shape = (1, *noise_shape(data[index], strategy))
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(VALIDATION_SEED + index)).to(
            device
        )
        for t in config.train.val_times:
            times = torch.full((shape[0],), t, device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.train.bf16):
                losses.append(loss(batch, noise, times).item())
    return sum(losses) / len(losses)


def make_optimizer(parameters: list[torch.nn.Parameter], train: TrainConfig):
    """AdamW and its cosine schedule with linear warm-up (§5.1)."""
    optimizer = torch.optim.AdamW(parameters, lr=train.lr, betas=train.betas, weight_decay=train.weight_decay)
    return optimizer, get_cosine_schedule_with_warmup(optimizer, train.warmup_steps, train.steps)


@dataclass
class TrainResult:
    out: Path
    steps: int
    initial_val_loss: float
    final_val_loss: float
    seconds: float


class MetricsLog:
    """metrics.csv rows, rewritten atomically after each row (rank 0 writes; other ranks only count)."""

    def __init__(self, out: Path, write: bool, resume_at: int | None = None):
        self.path, self.write = out / "metrics.csv", write
        rows = list(csv.DictReader(self.path.open())) if resume_at is not None and self.path.exists() else []
        self.rows = [r for r in rows if int(r["step"]) <= (resume_at or 0)]

    def __call__(self, **row) -> None:
        self.rows.append({k: row.get(k, "") for k in METRICS_FIELDS})
        if self.write:
            temporary = self.path.with_name(".metrics.tmp")
            with temporary.open("w", newline="") as f:
                writer = csv.DictWriter(f, METRICS_FIELDS)
                writer.writeheader()
                writer.writerows(self.rows)
            os.replace(temporary, self.path)

    def column(self, key: str) -> list[float]:
        return [float(r[key]) for r in self.rows if r[key] not in ("", None)]


def train(
    config: Config,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Run (or resume) training as configured; writes checkpoints, metrics.csv and loss.png to train.out.

    A folder that already holds a run is resumed (`resume`), replaced (`overwrite`) or refused.
    `stop_after` ends the run early after that step (as a kill would), for resume tests. Under
    torchrun every process calls this; rank 0 alone writes and shows progress.
    """
    from .viz import plot_loss_curve

    cfg, world = config.train, current_world()
    if cfg.batch_size % world.size:
        raise ValueError(
            f"train.batch_size {cfg.batch_size} must be a multiple of the {world.size} processes"
        )
    if config.autoencoder.kind == "wan" and not config.model.model_dir:
        raise ValueError(
            "the Wan VAE (autoencoder.kind = 'wan') needs model.model_dir, a local Wan2.1-I2V folder: "
            "pass --set model.model_dir=DIR"
        )
    if config.model.fusion not in STRATEGIES:
        raise ValueError(f"model.fusion must be one of {STRATEGIES}, got {config.model.fusion!r}")
    if config.sampling.scheduler not in SCHEDULERS:  # stored with the run: generate's default
        raise ValueError(f"sampling.scheduler must be one of {SCHEDULERS}, got {config.sampling.scheduler!r}")
    data = config.data
    encodes_here = not data.cache or bool(data.val_root and not data.val_cache)
    if config.model.model_dir:  # a base folder that cannot serve fails here, not after the data
        check_base_config(config.model)
        if encodes_here:
            check_encoder_folders(Path(config.model.model_dir))
    out, device, main = Path(cfg.out), world.device, world.is_main
    progress = progress and main

    # 1. The run folder and the data: synthetic clips written on first use, encoded once into the cache.
    resuming = prepare_run_folder(out, config, resume, overwrite) if main else None
    if main:
        ensure_synthetic_data(config, progress)
    resuming = broadcast_object(resuming)
    barrier()
    checkpoint = latest_checkpoint(out) if resuming and main else None
    base = checkpoint / RANDOM_INIT_FILE if checkpoint is not None and not config.model.model_dir else None
    # encoders: to encode clips here, and part of the random base of a run without model_dir
    encoders = build_encoders(config, seed=cfg.seed) if encodes_here or not config.model.model_dir else None
    if base is not None:
        load_random_init(base, encoders=encoders)  # the encoders the run started with
    train_data, val_data = open_data(config, out, encoders, world, progress)

    # 2. The model, sharded over the processes (one process: one shard), and its optimiser.
    channels = train_data[0]["rgb"].shape[0]
    host = build_model(config, channels, seed=cfg.seed) if main else None  # rank 0's whole model
    if host is not None and base is not None:
        load_random_init(
            base, model=host
        )  # the frozen base the run trained on, not one rebuilt from the seed
    sharded = build_sharded_model(config, channels, world, host)
    model = sharded.model
    optimizer, scheduler = make_optimizer(model.trainable_parameters(), cfg)
    loss = functools.partial(batch_loss, model)
    start = load_checkpoint(checkpoint, sharded, optimizer, scheduler) if resuming else 0
    log = MetricsLog(out, write=main, resume_at=start if resuming else None)

    # 3. The loop.
    clock, elapsed_before = time.perf_counter(), (log.column("seconds") or [0.0])[-1]
    if start == 0 and val_data is not None:
        log(
            step=0,
            val_loss=validation_loss(loss, model.strategy, val_data, config, device),
            lr=scheduler.get_last_lr()[0],
            seconds=0.0,
        )
    end = min(cfg.steps, stop_after) if stop_after is not None else cfg.steps
    bar = tqdm(range(start + 1, end + 1), initial=start, total=cfg.steps, desc="train", disable=not progress)
    model.train()
    for step in bar:
        optimizer.zero_grad(set_to_none=True)
        # this process's share of the global-batch mean; summed over processes: the mean itself
        value = sum_over_ranks(
            training_step(loss, model.strategy, train_data, config, step, device, world.rank, world.size)
        )
        torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        if not math.isfinite(value.item()):
            raise FloatingPointError(
                f"loss became {value.item()} at step {step}; lower train.lr or check the data"
            )
        row = {"step": step, "train_loss": value.item(), "lr": scheduler.get_last_lr()[0]}
        if val_data is not None and (step % cfg.val_every == 0 or step == cfg.steps):
            model.eval()
            row["val_loss"] = validation_loss(loss, model.strategy, val_data, config, device)
            model.train()
        if step % cfg.log_every == 0 or "val_loss" in row or step == end:
            log(**row, seconds=elapsed_before + time.perf_counter() - clock)
        bar.set_postfix(loss=f"{value.item():.4f}")
        if step % cfg.save_every == 0 or step == end:
            save_checkpoint(out, step, sharded, optimizer, scheduler, config, encoders)
    bar.close()
    if main:
        plot_loss_curve(log.rows, out / "loss.png")
    val = log.column("val_loss")
    return TrainResult(
        out=out,
        steps=end,
        initial_val_loss=val[0] if val else math.nan,
        final_val_loss=val[-1] if val else math.nan,
        seconds=(log.column("seconds") or [0.0])[-1],
    )
