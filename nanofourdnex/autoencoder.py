"""Autoencoders for 6D videos: the Wan2.1 VAE and an exact parameter-free stand-in (§4.1, §4.3).

    x1 = E(V),  V = {RGB_t, XYZ_t}                                               (§4.1)
    x̂_XYZ = (x_XYZ − μ) / σ  before the DiT,  x_XYZ = x̂_XYZ·σ + μ  before D    (Eq. 8-9)

Both autoencoders map a video (B, 3, T, H, W) in [−1, 1] with T = 4k + 1 frames to a
latent (B, z, (T − 1)/4 + 1, H/s, W/s) and back. `SixDAutoencoder` applies them to each
modality and adds the XYZ latent normalisation of Eq. 8-9 to the XYZ half only.

* `WanAutoencoder` wraps diffusers' `AutoencoderKLWan` exactly as the Wan I2V pipeline
  uses it: the encoder's mode (argmax) latent, then the per-channel standardisation with
  the checkpoint's `latents_mean` / `latents_std`; decoding undoes both.
* `PixelShuffleAutoencoder` is the tiny preset's stand-in: exact and parameter-free, with
  Wan's layout. Space is folded s×s into channels (pixel-unshuffle); time is folded like
  Wan's causal VAE: the first frame gets a latent frame of its own (repeated 4× to fill
  the channels, as Wan's mask packing does), then every 4 frames share one. So z = 4·3·s²
  and decode(encode(V)) = V exactly; a tiny DiT can therefore learn the data itself.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .config import Config
from .paper.mask import TEMPORAL_COMPRESSION
from .paper.normalization import XYZ_LATENT_MEAN, XYZ_LATENT_STD, denormalize_xyz_latent, normalize_xyz_latent

TEMPORAL = (
    TEMPORAL_COMPRESSION  # frames per latent frame after the first (Wan2.1 VAE), as the mask packs them
)


def check_video(video: torch.Tensor) -> None:
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"video must be (B, 3, T, H, W), got {tuple(video.shape)}")
    if (video.shape[2] - 1) % TEMPORAL:
        raise ValueError(f"video must have 4k + 1 frames, got {video.shape[2]}")


class PixelShuffleAutoencoder(nn.Module):
    """Exact stand-in: (B, 3, T, H, W) ↔ (B, 12·s², (T − 1)/4 + 1, H/s, W/s), no parameters."""

    def __init__(self, spatial: int = 2):
        super().__init__()
        if spatial < 1:
            raise ValueError(f"spatial factor must be >= 1, got {spatial}")
        self.spatial = spatial
        self.latent_channels = TEMPORAL * 3 * spatial**2
        self.spatial_compression = spatial

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        check_video(video)
        b, _, _, h, w = video.shape
        s = self.spatial
        if h % s or w % s:
            raise ValueError(f"frame size {(h, w)} must be divisible by the spatial factor {s}")
        frames = torch.cat(
            [video[:, :, :1].expand(-1, -1, TEMPORAL, -1, -1), video[:, :, 1:]], dim=2
        )  # (B, 3, T+3, H, W)
        f = frames.shape[2] // TEMPORAL
        x = frames.reshape(b, 3, f, TEMPORAL, h // s, s, w // s, s)  # (B, c, f, τ, h, sy, w, sx)
        x = x.permute(0, 3, 1, 5, 7, 2, 4, 6)  # (B, τ, c, sy, sx, f, h, w)
        return x.reshape(b, self.latent_channels, f, h // s, w // s)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.ndim != 5 or latent.shape[1] != self.latent_channels:
            raise ValueError(
                f"latent must be (B, {self.latent_channels}, f, h, w), got {tuple(latent.shape)}"
            )
        b, _, f, h, w = latent.shape
        s = self.spatial
        x = latent.reshape(b, TEMPORAL, 3, s, s, f, h, w).permute(
            0, 2, 5, 1, 6, 3, 7, 4
        )  # (B, c, f, τ, h, sy, w, sx)
        frames = x.reshape(b, 3, f * TEMPORAL, h * s, w * s)
        first = frames[:, :, :TEMPORAL].mean(dim=2, keepdim=True)  # the 4 copies of frame 0
        return torch.cat([first, frames[:, :, TEMPORAL:]], dim=2)


def wan_spatial_compression(dim_mult: list[int]) -> int:
    """Pixels per latent pixel of an `AutoencoderKLWan`: one halving per level after the first (8 for Wan2.1)."""
    return 2 ** (len(dim_mult) - 1)


class WanAutoencoder(nn.Module):
    """diffusers' `AutoencoderKLWan` with the Wan I2V pipeline's latent standardisation."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae
        config = vae.config
        self.latent_channels = config.z_dim
        self.spatial_compression = wan_spatial_compression(config.dim_mult)
        self.register_buffer("mean", torch.tensor(config.latents_mean).view(1, -1, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.latents_std).view(1, -1, 1, 1, 1), persistent=False)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        check_video(video)
        latent = self.vae.encode(video.to(self.vae.dtype)).latent_dist.mode()  # "argmax", as the pipeline
        return (latent.float() - self.mean) / self.std

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        latent = latent * self.std + self.mean
        return self.vae.decode(latent.to(self.vae.dtype)).sample.float().clamp(-1, 1)


class SixDAutoencoder(nn.Module):
    """Encodes and decodes both modalities; the XYZ latent is normalised with Eq. 8-9."""

    def __init__(self, base: nn.Module, xyz_mean: float = XYZ_LATENT_MEAN, xyz_std: float = XYZ_LATENT_STD):
        super().__init__()
        self.base = base
        self.xyz_mean = xyz_mean
        self.xyz_std = xyz_std

    @property
    def latent_channels(self) -> int:
        return self.base.latent_channels

    @property
    def spatial_compression(self) -> int:
        return self.base.spatial_compression

    def encode_rgb(self, video: torch.Tensor) -> torch.Tensor:
        return self.base.encode(video)

    def encode_xyz(self, video: torch.Tensor) -> torch.Tensor:
        return normalize_xyz_latent(self.base.encode(video), self.xyz_mean, self.xyz_std)  # Eq. 8

    def decode_rgb(self, latent: torch.Tensor) -> torch.Tensor:
        return self.base.decode(latent)

    def decode_xyz(self, latent: torch.Tensor) -> torch.Tensor:
        return self.base.decode(denormalize_xyz_latent(latent, self.xyz_mean, self.xyz_std))  # Eq. 9


def first_frame_video(frame: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Wan I2V conditioning video: the frame (B, 3, H, W) followed by num_frames − 1 zero frames."""
    if frame.ndim != 4 or frame.shape[1] != 3:
        raise ValueError(f"frame must be (B, 3, H, W), got {tuple(frame.shape)}")
    video = frame.new_zeros(frame.shape[0], 3, num_frames, *frame.shape[2:])
    video[:, :, 0] = frame
    return video


def build_autoencoder(config: Config) -> SixDAutoencoder:
    """The configured autoencoder: the exact pixel stand-in, or the Wan VAE from model_dir, with Eq. 8-9."""
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
