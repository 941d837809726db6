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
`distributed`): each process takes its share of the global batch, rank 0 logs and writes.

Data: the clips under data.root are encoded once into a latent cache (`cache`) in the run
folder, or, when data.cache is set, read from a cache written beforehand by `nano4d cache`.

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
from .config import Config, config_from_dict, differing_fields
from .distributed import (
    ShardedModel,
    World,
    barrier,
    broadcast_object,
    build_sharded_model,
    current_world,
    gather_to_host,
    scatter_from_host,
    sum_over_ranks,
)
from .flow_matching import flow_matching_loss, interpolate, sample_time
from .fusion import fuse
from .mask import guided_mask
from .model import FourDNeX, build_model

METRICS_FIELDS = ("step", "train_loss", "val_loss", "lr", "seconds")
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
RANDOM_INIT_FILE = "random_init.safetensors"
CACHE_CONFIG_FILE = "config.json"  # in a cache folder: the config its clips were encoded with


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


def clip_dataset(config: Config, root: str | Path):
    """The clips under `root` at the configured size (a `data.ClipDataset`)."""
    from .data import ClipDataset

    if not Path(root).is_dir():
        raise ValueError(f"data folder {root} does not exist")
    return ClipDataset(root, config.data.num_frames, config.data.height, config.data.width)


def record_cache_config(config: Config, cache_dir: Path, shard_index: int = 0) -> None:
    """Write the config a cache folder's clips were encoded with (atomically: shards may finish at once)."""
    temporary = Path(cache_dir) / f".config.{shard_index}.tmp"
    config.save(temporary)
    os.replace(temporary, Path(cache_dir) / CACHE_CONFIG_FILE)


def encode_clips(
    config: Config,
    root: str | Path,
    cache_dir: Path,
    num_shards: int = 1,
    shard_index: int = 0,
    progress: bool = True,
) -> list[Path]:
    """`nano4d cache`: encode one shard of the clips under `root` into `cache_dir`, skipping cached ones."""
    dataset = clip_dataset(config, root)
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard index {shard_index} must lie in [0, {num_shards})")
    encoders = build_encoders(config, seed=config.train.seed)
    autoencoder, strategy = build_autoencoder(config), config.model.fusion
    files = build_cache(
        dataset, autoencoder, encoders, strategy, cache_dir, num_shards, shard_index, progress
    )
    record_cache_config(config, cache_dir, shard_index)
    return files


def prepare_cache(
    config: Config,
    root: str,
    cache_dir: Path,
    encoders: Encoders,
    progress: bool = True,
    world: World | None = None,
) -> LatentCache:
    """Encode the clips under `root` into `cache_dir` (skipping cached ones; each process its share) and open it."""
    world = world or current_world()
    dataset, autoencoder = clip_dataset(config, root), build_autoencoder(config)
    strategy = config.model.fusion
    build_cache(dataset, autoencoder, encoders, strategy, cache_dir, world.size, world.rank, progress)
    if world.is_main:
        record_cache_config(config, cache_dir)
    barrier()
    # every clip is cached now, so this only lists the files
    return LatentCache(build_cache(dataset, autoencoder, encoders, strategy, cache_dir, progress=False))


def cache_mismatch(config: Config, cached: Config) -> list[str]:
    """Fields that decide a clip's cached tensors and differ between a run's config and its cache's."""
    differing = differing_fields(config, cached, ("autoencoder", "conditioning"))
    keys = [("data", "num_frames"), ("data", "height"), ("data", "width"), ("model", "fusion")]
    # random tiny encoders (no model_dir) on either side: equal only with equal seed and sizes
    if not (config.model.model_dir and cached.model.model_dir):
        keys += [("model", "model_dir"), ("model", "text_dim"), ("model", "image_dim"), ("train", "seed")]
    for section, key in keys:
        a, b = getattr(getattr(config, section), key), getattr(getattr(cached, section), key)
        if a != b:
            differing.append(f"{section}.{key} ({a!r} != {b!r})")
    return differing


def open_prebuilt_cache(config: Config, cache_dir: str) -> LatentCache:
    """A cache folder written by `nano4d cache`, checked against the run's config; read from disk per batch."""
    folder = Path(cache_dir)
    if not folder.is_dir():
        raise ValueError(
            f"cache folder {folder} does not exist; write it with `nano4d cache DATA_DIR --out {folder}`"
        )
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ValueError(f"cache folder {folder} holds no cached clips (*.safetensors)")
    recorded = folder / CACHE_CONFIG_FILE
    if not recorded.exists():
        raise ValueError(
            f"cache folder {folder} lacks {CACHE_CONFIG_FILE}, the config its clips were encoded with"
        )
    differing = cache_mismatch(config, config_from_dict(json.loads(recorded.read_text())))
    if differing:
        raise ValueError(f"cache {folder} was encoded with another config: " + "; ".join(differing))
    return LatentCache(files, in_memory=False)


def open_data(
    config: Config, out: Path, encoders: Encoders | None, world: World, progress: bool
) -> tuple[LatentCache, LatentCache | None]:
    """Training and validation latents: a prebuilt cache where configured, else encoded into out/cache."""
    data = config.data

    def split(prebuilt: str, root: str, name: str) -> LatentCache | None:
        if prebuilt:
            return open_prebuilt_cache(config, prebuilt)
        return prepare_cache(config, root, out / "cache" / name, encoders, progress, world) if root else None

    train_data = split(data.cache, data.root, "train")
    if train_data is None:
        raise ValueError("set data.root (clips to encode) or data.cache (a folder written by `nano4d cache`)")
    return train_data, split(data.val_cache, data.val_root, "val")


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
    return {k: v.detach().clone() for k, v in state.items()}  # clone: UMT5 ties two of its weights


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
    condition = batch["cond"]  # c, fused when cached (conditioning.condition_latents)
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
    encoders: Encoders | None,
    keep: int = 2,
) -> Path:
    """Adapters (diffusers LoRA format + domain embeddings), optimizer, scheduler, step: atomically.

    Runs without a pretrained `model_dir` also store their random-init base (`RANDOM_INIT_FILE`).
    """
    return write_checkpoint(out, step, model, optimizer.state_dict(), scheduler, config, encoders, keep)


def write_checkpoint(
    out: Path,
    step: int,
    model: FourDNeX,
    optimizer_state: dict,
    scheduler,
    config: Config,
    encoders: Encoders | None,
    keep: int = 2,
) -> Path:
    """`save_checkpoint` with the AdamW state given as a single-process `optimizer.state_dict()`."""
    checkpoints = out / "checkpoints"
    final = checkpoints / f"step_{step:07d}"
    temporary = checkpoints / f".step_{step:07d}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    model.save_adapters(temporary)
    config.save(temporary / "config.json")
    if not config.model.model_dir:
        save_file(random_init_state(model, encoders), str(temporary / RANDOM_INIT_FILE))
    tensors = {f"state.{i}.{k}": v for i, s in optimizer_state["state"].items() for k, v in s.items()}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(temporary / OPTIMIZER_FILE))
    scheduler_state = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    meta = {"step": step, "param_groups": optimizer_state["param_groups"], "scheduler": scheduler_state}
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


def read_training_state(checkpoint: Path) -> tuple[dict, dict]:
    """(state.json: step, param groups, scheduler; the AdamW state as a single-process `optimizer.state_dict()`)."""
    meta = json.loads((checkpoint / STATE_FILE).read_text())
    tensors = load_file(str(checkpoint / OPTIMIZER_FILE))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    return meta, {"state": state, "param_groups": meta["param_groups"]}


def load_scheduler(scheduler, meta: dict) -> None:
    scheduler.load_state_dict(
        {**meta["scheduler"], "lr_lambdas": [None] * len(meta["scheduler"]["base_lrs"])}
    )


def load_checkpoint(checkpoint: Path, model: FourDNeX, optimizer, scheduler) -> int:
    """Restore adapters, optimizer and scheduler; return the step to continue from."""
    model.load_adapters(checkpoint)
    meta, optimizer_state = read_training_state(checkpoint)
    optimizer.load_state_dict(optimizer_state)
    load_scheduler(scheduler, meta)
    return meta["step"]


def save_sharded_checkpoint(
    out: Path,
    step: int,
    sharded: ShardedModel,
    optimizer,
    scheduler,
    config: Config,
    encoders: Encoders | None,
) -> None:
    """Collective: gather adapters and AdamW state to rank 0, which writes the single-process checkpoint."""
    optimizer_state = gather_to_host(sharded, optimizer)
    if sharded.host is not None:
        write_checkpoint(out, step, sharded.host, optimizer_state, scheduler, config, encoders)


def load_sharded_checkpoint(checkpoint: Path | None, sharded: ShardedModel, optimizer, scheduler) -> int:
    """Collective inverse: rank 0 reads a (single-process format) checkpoint, every rank gets its shards."""
    meta, optimizer_state = None, None
    if sharded.host is not None:
        sharded.host.load_adapters(checkpoint)
        meta, optimizer_state = read_training_state(checkpoint)
    scatter_from_host(sharded, optimizer, optimizer_state)
    meta = broadcast_object(meta)
    load_scheduler(scheduler, meta)
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

    `stop_after` ends the run early after that step (as a kill would), for resume tests. Under
    torchrun every process calls this; rank 0 alone writes and shows progress.
    """
    from .viz import plot_loss_curve

    train_cfg = config.train
    world = current_world()
    if train_cfg.batch_size % train_cfg.micro_batch_size:
        raise ValueError(
            f"batch_size {train_cfg.batch_size} must be a multiple of micro_batch_size {train_cfg.micro_batch_size}"
        )
    if train_cfg.batch_size % world.size:
        raise ValueError(
            f"batch_size {train_cfg.batch_size} must be a multiple of the {world.size} processes"
        )
    out = Path(train_cfg.out)
    main, device = world.is_main, world.device
    progress = progress and main
    if main:
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / "config.json")
        if not resume:  # a fresh run re-encodes: the cache depends on the config's encoders
            shutil.rmtree(out / "cache", ignore_errors=True)
        ensure_synthetic_data(config, progress)
    barrier()
    data = config.data
    encoded_here = not data.cache or bool(data.val_root and not data.val_cache)
    # encoders: to encode clips here, and saved as part of the random init of runs without model_dir
    encoders = (
        build_encoders(config, seed=train_cfg.seed) if encoded_here or not config.model.model_dir else None
    )
    train_data, val_data = open_data(config, out, encoders, world, progress)

    latent_channels = train_data[0]["rgb"].shape[0]
    sharded = build_sharded_model(config, latent_channels, world) if world.distributed else None
    if sharded is not None:
        model = sharded.model
    else:
        model = build_model(config, latent_channels, seed=train_cfg.seed).to(device)
    optimizer = torch.optim.AdamW(
        model.trainable_parameters(),
        lr=train_cfg.lr,
        betas=train_cfg.betas,
        weight_decay=train_cfg.weight_decay,
    )
    scheduler = get_cosine_schedule_with_warmup(optimizer, train_cfg.warmup_steps, train_cfg.steps)

    def save(step: int) -> None:
        if sharded is None:
            save_checkpoint(out, step, model, optimizer, scheduler, config, encoders)
        else:
            save_sharded_checkpoint(out, step, sharded, optimizer, scheduler, config, encoders)

    start, rows = 0, []
    if broadcast_object(resume and (out / "latest").exists()):
        checkpoint = latest_checkpoint(out) if main else None
        if sharded is None:
            start = load_checkpoint(checkpoint, model, optimizer, scheduler)
        else:
            start = load_sharded_checkpoint(checkpoint, sharded, optimizer, scheduler)
        rows = [r for r in read_metrics(out) if int(r["step"]) <= start] if main else []
    elif not resume and main:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        (out / "latest").unlink(missing_ok=True)

    def log(row: dict) -> None:
        rows.append({k: row.get(k, "") for k in METRICS_FIELDS})
        if not main:
            return
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
        # this process's share of the global-batch mean; summed over processes: the mean itself
        loss = sum_over_ranks(training_step(model, train_data, config, step, device, world.rank, world.size))
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
            save(step)
    bar.close()
    if end < train_cfg.steps:
        save(end)
    if main:
        plot_loss_curve(rows, out / "loss.png")
    val = [float(r["val_loss"]) for r in rows if r["val_loss"] not in ("", None)]
    return TrainResult(
        out=out,
        steps=end,
        initial_val_loss=val[0] if val else math.nan,
        final_val_loss=val[-1] if val else math.nan,
        seconds=float(rows[-1]["seconds"] or 0.0) if rows else 0.0,
    )
