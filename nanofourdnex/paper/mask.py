"""The guided mask M (§4.3, Eq. 10), in Wan's image-to-video layout.

    M ∈ [0, 1]^{T×H×W};  M_{t,i,j} = 1: known pixel, 0: to be generated;
    M^{XYZ}_{0,i,j} = 0.5  ∀ i, j                                                     (10)

The first RGB frame is the input image (known, 1). The first XYZ frame is only the
sloped-plane guess X^init (Eq. 7), so it is "half known" (0.5): the model may refine it.
Every later frame of both modalities is 0.

Wan I2V feeds the mask at latent *spatial* size but pixel *temporal* rate, then packs it
to latent rate: frame 0 is repeated 4× (the causal VAE gives the first frame a latent
frame of its own) and the T + 3 frames are viewed as 4 channels per latent frame:

    (T, h, w) → (T + 3, h, w) → (4, (T − 1)/4 + 1, h, w)

`pack_temporal` does exactly that. For a fused layout each modality's mask is packed on
its own and then fused with the same `fusion.fuse` as the latents, so mask and latents
always line up (for frame-wise fusion the XYZ half starts a new latent frame).

Spec: specs/eq10_guided_mask.md · Tests: tests/test_eq10_mask.py (-m eq10)
"""

from __future__ import annotations

import torch

from .fusion import fuse

RGB_FIRST_FRAME = 1.0
XYZ_FIRST_FRAME = 0.5  # Eq. 10
TEMPORAL_COMPRESSION = 4  # Wan VAE: 4 frames per latent frame after the first


def modality_mask(num_frames: int, height: int, width: int, first_frame_value: float) -> torch.Tensor:
    """(T, H, W) mask of one modality: `first_frame_value` on frame 0, 0 elsewhere."""
    if num_frames < 1 or (num_frames - 1) % TEMPORAL_COMPRESSION:
        raise ValueError(f"num_frames must be 4k + 1 (Wan's causal VAE), got {num_frames}")
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got ({height}, {width})")
    if not 0.0 <= first_frame_value <= 1.0:
        raise ValueError(f"mask values lie in [0, 1], got {first_frame_value}")
    mask = torch.zeros(num_frames, height, width)
    mask[0] = first_frame_value
    return mask


def pack_temporal(mask: torch.Tensor) -> torch.Tensor:
    """Wan I2V packing: (T, h, w) pixel-rate mask → (4, (T − 1)/4 + 1, h, w) latent-rate mask."""
    if mask.ndim != 3:
        raise ValueError(f"mask must be (T, h, w), got shape {tuple(mask.shape)}")
    num_frames, h, w = mask.shape
    if (num_frames - 1) % TEMPORAL_COMPRESSION:
        raise ValueError(f"mask must have 4k + 1 frames, got {num_frames}")
    first = mask[:1].repeat_interleave(TEMPORAL_COMPRESSION, dim=0)  # frame 0 repeated 4×
    stacked = torch.cat([first, mask[1:]], dim=0)  # (T + 3, h, w)
    return stacked.view(-1, TEMPORAL_COMPRESSION, h, w).transpose(0, 1)  # (4, f, h, w)


def guided_mask(
    num_frames: int,
    height: int,
    width: int,
    strategy: str = "width",
    xyz_first_frame: float = XYZ_FIRST_FRAME,
    packed: bool = True,
) -> torch.Tensor:
    """Eq. 10 for the fused layout, batch of one.

    `height`, `width` are one modality's latent spatial size. Returns the fused
    latent-rate mask (1, 4, f, h, w)-shaped before fusion (`packed=True`, what the DiT
    sees), or the fused pixel-rate mask (1, 1, T, h, w)-shaped before fusion.
    """
    rgb = modality_mask(num_frames, height, width, RGB_FIRST_FRAME)
    xyz = modality_mask(num_frames, height, width, xyz_first_frame)
    if packed:
        rgb, xyz = pack_temporal(rgb), pack_temporal(xyz)
    else:
        rgb, xyz = rgb[None], xyz[None]
    return fuse(rgb[None], xyz[None], strategy)
