"""The latent cache: every clip encoded once, training reads tensors (§4.1's x1 = E(V), Fig. 6's conditions).

For each clip the cache stores, in one safetensors file named after the clip:

    rgb, xyz   (z, f, h, w)    x1 per modality: E(RGB), (E(XYZ) − μ)/σ  (Eq. 8)
    cond       (z, f, h, 2w)   c = E([I_0 | X^init, 0, …, 0]) for width-wise fusion (Eq. 7; no Eq. 8)
    text       (512, D_txt)    c_txt of the caption with the trigger words
    image      (N, D_img)      c_img (CLIP penultimate state of I_0)

The targets are stored per modality, unfused; the condition is already fused (it is one encode of
both panels, see `conditioning.condition_latents`), so a cache belongs to one fusion strategy.
VAE encoding dominates the cost of a training step otherwise. Files are written atomically
(temporary name + rename), so an interrupted run resumes by skipping finished clips, and
`--num-shards / --shard-index` split the work across machines.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.utils.data import Dataset
from tqdm import tqdm

from .autoencoder import SixDAutoencoder, build_autoencoder
from .conditioning import Encoders, build_encoders, condition_latents
from .config import Config, config_from_dict, differing_fields
from .data import ClipDataset
from .distributed import World, barrier, current_world
from .reading import read_json, read_safetensors

KEYS = ("rgb", "xyz", "cond", "text", "image")


@torch.no_grad()
def encode_sample(
    rgb: torch.Tensor,
    xyz: torch.Tensor,
    caption: str,
    autoencoder: SixDAutoencoder,
    encoders: Encoders,
    strategy: str,
) -> dict[str, torch.Tensor]:
    """One clip's cache entry from rgb, xyz videos (3, T, H, W) in [−1, 1] and its caption."""
    first = rgb[:, 0][None]  # I_0 (1, 3, H, W)
    entry = {
        "rgb": autoencoder.encode_rgb(rgb[None])[0],
        "xyz": autoencoder.encode_xyz(xyz[None])[0],
        "cond": condition_latents(autoencoder, first, rgb.shape[1], strategy)[0],
        "text": encoders.encode_text([encoders.triggered(caption)])[0],
        "image": encoders.encode_image(first)[0],
    }
    return {k: v.float().contiguous() for k, v in entry.items()}


def build_cache(
    dataset: Dataset,
    autoencoder: SixDAutoencoder,
    encoders: Encoders,
    strategy: str,
    cache_dir: Path,
    num_shards: int = 1,
    shard_index: int = 0,
    progress: bool = True,
) -> list[Path]:
    """Encode every clip of this shard that is not cached yet; return this shard's files."""
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard index {shard_index} must lie in [0, {num_shards})")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    files = []
    indices = range(shard_index, len(dataset), num_shards)
    for index in tqdm(indices, desc=f"caching {cache_dir.name}", disable=not progress, unit="clip"):
        name = dataset.names[index]
        path = cache_dir / f"{name}.safetensors"
        files.append(path)
        if path.exists():
            continue  # resumable: finished clips are skipped
        item = dataset[index]
        entry = encode_sample(item.rgb, item.xyz, item.caption, autoencoder, encoders, strategy)
        temporary = path.with_suffix(".tmp")
        save_file(entry, str(temporary))
        os.replace(temporary, path)
    return files


class LatentCache(Dataset):
    """Cached clips as dicts of tensors; `batch(indices)` stacks several into (B, ...) tensors."""

    def __init__(self, files: list[Path], in_memory: bool = True):
        if not files:
            raise ValueError("the latent cache is empty")
        self.files = sorted(Path(f) for f in files)
        self._entries = [read_safetensors(f) for f in self.files] if in_memory else None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self._entries is not None:
            return self._entries[index]
        return read_safetensors(self.files[index])

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        entries = [self[i] for i in indices]
        return {k: torch.stack([e[k] for e in entries]) for k in KEYS}


CACHE_CONFIG_FILE = "config.json"  # in a cache folder: the config its clips were encoded with


def clip_dataset(config: Config, root: str | Path) -> ClipDataset:
    """The clips under `root` at the configured size."""
    if not Path(root).is_dir():
        raise ValueError(f"data folder {root} does not exist")
    return ClipDataset(root, config.data.num_frames, config.data.height, config.data.width)


def claim_cache_folder(config: Config, cache_dir: Path, shard_index: int = 0) -> None:
    """Record the config a cache folder's clips are encoded with, before encoding any; refuse a folder of
    clips encoded with another config (they would be skipped as cached and read as this config's).

    Written atomically: shards may start at once.
    """
    folder = Path(cache_dir)
    recorded = folder / CACHE_CONFIG_FILE
    if recorded.is_file():
        differing = cache_mismatch(config, config_from_dict(read_json(recorded)))
        if differing:
            raise ValueError(
                f"cache folder {folder} holds clips encoded with another config ({'; '.join(differing)}); "
                "choose another folder, or delete this one to re-encode"
            )
    elif any(folder.glob("*.safetensors")):
        raise ValueError(
            f"cache folder {folder} holds cached clips but no {CACHE_CONFIG_FILE} saying how they were "
            "encoded; choose another folder, or delete this one to re-encode"
        )
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".config.{shard_index}.tmp"
    config.save(temporary)
    os.replace(temporary, recorded)


def encode_clips(
    config: Config,
    root: str | Path,
    cache_dir: Path,
    num_shards: int = 1,
    shard_index: int = 0,
    progress: bool = True,
) -> list[Path]:
    """`nano4d cache`: encode one shard of the clips under `root` into `cache_dir`, skipping cached ones."""
    if num_shards < 1:
        raise ValueError(f"--num-shards must be at least 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard index {shard_index} must lie in [0, {num_shards})")
    dataset = clip_dataset(config, root)
    claim_cache_folder(config, cache_dir, shard_index)  # a bad or foreign output fails before any model loads
    encoders = build_encoders(config, seed=config.train.seed)
    autoencoder, strategy = build_autoencoder(config), config.model.fusion
    return build_cache(dataset, autoencoder, encoders, strategy, cache_dir, num_shards, shard_index, progress)


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
    if world.is_main:
        claim_cache_folder(config, cache_dir)
    barrier()
    build_cache(dataset, autoencoder, encoders, strategy, cache_dir, world.size, world.rank, progress)
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
    differing = cache_mismatch(config, config_from_dict(read_json(recorded)))
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
