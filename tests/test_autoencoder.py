"""Autoencoders: the exact stand-in, the Wan VAE wrapper's contract, and Eq. 8-9 on the XYZ half.

Spec: specs/model.md
"""

import pytest
import torch
from diffusers import AutoencoderKLWan
from hypothesis import given
from hypothesis import strategies as st

from nanofourdnex.autoencoder import (
    PixelShuffleAutoencoder,
    SixDAutoencoder,
    WanAutoencoder,
    first_frame_video,
)
from nanofourdnex.paper.mask import guided_mask
from tests.strategies import pixel_frames, randn, seeds


def tiny_wan_vae(z: int = 4) -> AutoencoderKLWan:
    torch.manual_seed(0)
    return AutoencoderKLWan(
        base_dim=8, z_dim=z, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True],
        latents_mean=[0.1 * i for i in range(z)], latents_std=[1.0 + 0.5 * i for i in range(z)],
    ).eval()  # fmt: skip


@given(pixel_frames.filter(lambda t: t <= 13), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), seeds)
def test_pixel_stand_in_is_exact(frames, s, h, w, seed):
    ae = PixelShuffleAutoencoder(s)
    video = randn((2, 3, frames, h * s, w * s), seed)
    latent = ae.encode(video)
    assert latent.shape == (2, 12 * s * s, (frames - 1) // 4 + 1, h, w)
    assert torch.equal(ae.decode(latent), video)


@given(pixel_frames.filter(lambda t: 1 < t <= 13), seeds)
def test_pixel_stand_in_packs_time_like_wans_causal_vae(frames, seed):
    """Latent frame 0 sees only frame 0; latent frame k sees frames 4k−3 … 4k (like the mask packing)."""
    ae = PixelShuffleAutoencoder(1)
    video = randn((1, 3, frames, 2, 2), seed)
    changed = video.clone()
    changed[:, :, 1:5] += 1  # touch frames 1-4 only
    diff = (ae.encode(changed) - ae.encode(video)).abs().amax(dim=(0, 1, 3, 4))
    assert diff[0] == 0 and diff[1] > 0 and (diff[2:] == 0).all()


def test_pixel_stand_in_channel_layout_follows_the_mask_packing():
    """Channel block τ of latent frame k holds pixel frame 4(k−1)+τ+1, like `mask.pack_temporal`."""
    ae = PixelShuffleAutoencoder(1)
    frames = torch.arange(9.0).view(1, 1, 9, 1, 1).expand(1, 3, 9, 1, 1)
    latent = ae.encode(frames).view(4, 3, 3)  # (τ, colour, latent frame)
    mask = guided_mask(9, 1, 1, "width", packed=True)[0, :, :, 0, 0]  # (4, 3): 1 on latent frame 0
    assert (latent[:, :, 0] == 0).all() and (mask[:, 0] == 1).all()
    assert latent[:, 0, 1].tolist() == [1, 2, 3, 4] and latent[:, 0, 2].tolist() == [5, 6, 7, 8]


def test_wan_wrapper_shape_contract_and_standardisation():
    vae = tiny_wan_vae()
    ae = WanAutoencoder(vae)
    video = randn((1, 3, 9, 16, 24), 0).clamp(-1, 1)
    latent = ae.encode(video)
    assert latent.shape == (1, 4, 3, 2, 3)  # latent frames (F − 1)//4 + 1, spatial / 8
    raw = vae.encode(video).latent_dist.mode()
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(latent, (raw - mean) / std)  # Wan I2V pipeline's normalisation
    with torch.no_grad():
        decoded = ae.decode(latent)
        torch.testing.assert_close(decoded, vae.decode(raw).sample.clamp(-1, 1))
    assert decoded.shape == video.shape


@given(seeds)
def test_xyz_half_is_normalised_with_eq8_and_decoded_with_eq9(seed):
    six = SixDAutoencoder(PixelShuffleAutoencoder(1), xyz_mean=-0.13, xyz_std=1.70)
    video = randn((1, 3, 5, 2, 2), seed)
    torch.testing.assert_close(six.encode_xyz(video), (six.encode_rgb(video) + 0.13) / 1.70)
    torch.testing.assert_close(six.decode_xyz(six.encode_xyz(video)), video)


def test_first_frame_video_is_the_frame_then_zeros():
    frame = randn((2, 3, 4, 4), 1)
    video = first_frame_video(frame, 5)
    assert video.shape == (2, 3, 5, 4, 4)
    assert torch.equal(video[:, :, 0], frame) and (video[:, :, 1:] == 0).all()


def test_bad_shapes_are_rejected():
    ae = PixelShuffleAutoencoder(2)
    with pytest.raises(ValueError, match="4k \\+ 1 frames"):
        ae.encode(torch.zeros(1, 3, 4, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        ae.encode(torch.zeros(1, 4, 5, 4, 4))
    with pytest.raises(ValueError, match="divisible by the spatial factor"):
        ae.encode(torch.zeros(1, 3, 5, 3, 4))
    with pytest.raises(ValueError, match="latent must be"):
        ae.decode(torch.zeros(1, 5, 2, 2, 2))
