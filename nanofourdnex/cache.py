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
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset
from tqdm import tqdm

from .autoencoder import SixDAutoencoder
from .conditioning import Encoders, condition_latents

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
        self._entries = [load_file(str(f)) for f in self.files] if in_memory else None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self._entries is not None:
            return self._entries[index]
        return load_file(str(self.files[index]))

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        entries = [self[i] for i in indices]
        return {k: torch.stack([e[k] for e in entries]) for k in KEYS}
