"""The fusion variants of Fig. 4 (and stock-RoPE controls) on one Wan DiT, behind one interface (§4.2, App. B.1).

Every variant wraps the same diffusers `WanTransformer3DModel` (frozen but for the same peft LoRA and
`lora.train_base` layers as `model.FourDNeX`) and answers the same call:

    (u_RGB, u_XYZ) = variant(x_t^RGB, x_t^XYZ, t, c^RGB, c^XYZ, c_txt, c_img)          (Eq. 6)

with latents (B, z, f, h, w) per modality, paper time t (B,) and velocities in paper time, so one
training loop and one sampler serve all of them. Each builds the guided mask of Eq. 10 itself.

    variant             Fig. 4   what reaches the DiT                                new modules
    channel-linear      (a.i)    per pixel: Linear(4z + 8 → 2z + 4) of [x ; M ; c]   adapter in, adapter out
                                 of both modalities; output Linear(z → 2z)
    channel-switcher    (a.ii)   the same input adapter, run twice: the switcher     adapter in, switcher
                                 s_RGB or s_XYZ picks the modality of the z outputs
    batch-switcher      (b.i)    RGB and XYZ as two samples (2B, 2z + 4, …);         switcher
                                 switcher on each
    batch-cdsa-full     (b.ii)   b.i + Cross-Domain Self-Attention between self-     switcher, CDSA per block
                                 and cross-attention: dense over both modalities
    batch-cdsa-sparse   (b.ii)   b.i + CDSA restricted to each token and its twin    switcher, CDSA per block
    frame / height / width (c-e) one fused sequence: `model.FourDNeX` (shared RoPE,   domain embeddings
                                 domain embeddings, Eq. 11)
    …-stock-rope        (c′-e′)  the same with diffusers' stock RoPE: the XYZ half     domain embeddings
                                 at new positions (x = w … 2w − 1 for width-wise)

With the shared RoPE of Eq. 11 the fused sequences of (c), (d) and (e) hold the same tokens at the
same rotary positions, only in another order; self-attention, cross-attention and the FFN do not
see token order, so the three are one function (a test checks it). Fig. 5's interaction distance
only matters where positions follow the sequence: the stock-RoPE variants (c′-e′).

Channel-wise fusion has to squeeze 2·(2z + 4) input channels into the pretrained 2z + 4 (and
z output channels into 2z): the format mismatch of §4.2 in its literal form. Both adapters start
as the pretrained RGB model (identity on the RGB channels, zero elsewhere).

Modality switcher (Wonder3D, GeoWizard): a learnable vector per output modality, zero-initialised,
added to the time embedding (`condition_embedder.time_embedder`'s output) of the samples that
produce that modality, so it steers every block's adaLN modulation and the output norm.

CDSA (App. B.1, Fig. B): a `diffusers` `WanAttention` (q/k/v/out, RMS q/k norm), pre-norm, added
as a residual between a block's self-attention and cross-attention; its output projection is
zero-initialised so a fresh b.ii equals b.i. Queries are the tokens of both modalities; keys:

    full:    every token of both modalities, RGB then XYZ, both halves at the RGB positions
             of the backbone's RoPE (twins share a position, as in Eq. 11);
    sparse:  the token itself and its twin (the XYZ token of the same (f, h, w) position, or
             vice versa) — a softmax over two keys, O(L) instead of O(L²). RoPE is left out:
             both keys sit at the query's own position, where the rotation cancels in q·k.

`CDSABlock` inserts the layer by restating the Wan block's forward around its own submodules
(diffusers offers no hook between the two attentions); a test pins it to the stock block.
"""

from __future__ import annotations

import math

import torch
from diffusers import WanTransformer3DModel
from diffusers.models.transformers.transformer_wan import WanAttention, WanAttnProcessor, WanRotaryPosEmbed
from torch import nn

from ..config import Config, LoraConfig
from ..model import MASK_CHANNELS, FourDNeX, add_lora, build_transformer, model_width, trains_in_full
from ..paper.flow_matching import velocity_from_wan, wan_timestep
from ..paper.fusion import IN_SEQUENCE, fuse, interaction_distance, split
from ..paper.mask import RGB_FIRST_FRAME, TEMPORAL_COMPRESSION, XYZ_FIRST_FRAME, modality_mask, pack_temporal

Pair = tuple[torch.Tensor, torch.Tensor]  # (RGB, XYZ)

# name → (Fig. 4 label, fusion axis of `fusion.py`)
VARIANTS = {
    "channel-linear": ("a.i", "channel"),
    "channel-switcher": ("a.ii", "channel"),
    "batch-switcher": ("b.i", "batch"),
    "batch-cdsa-full": ("b.ii", "batch"),
    "batch-cdsa-sparse": ("b.ii", "batch"),
    "frame": ("c", "frame"),
    "height": ("d", "height"),
    "width": ("e", "width"),
    "frame-stock-rope": ("c′", "frame"),
    "height-stock-rope": ("d′", "height"),
    "width-stock-rope": ("e′", "width"),
}


def modality_masks(
    latent_frames: int, height: int, width: int, batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 10 per modality, packed to latent rate: (M_RGB, M_XYZ), each (B, 4, f, h, w)."""
    num_frames = TEMPORAL_COMPRESSION * (latent_frames - 1) + 1  # pixel frames of an f-frame latent
    masks = (
        pack_temporal(modality_mask(num_frames, height, width, value))
        for value in (RGB_FIRST_FRAME, XYZ_FIRST_FRAME)
    )
    rgb, xyz = (m[None].expand(batch, -1, -1, -1, -1) for m in masks)
    return rgb, xyz


def channel_linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """A Linear over the channels of (B, C, f, h, w), i.e. a 1×1×1 convolution."""
    return layer(x.movedim(1, -1)).movedim(-1, 1)


class ModalitySwitcher(nn.Module):
    """s_RGB, s_XYZ added to the time embedding; the batch holds the RGB samples, then the XYZ ones."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2, dim))  # rows: s_RGB, s_XYZ

    def forward(self, temb: torch.Tensor) -> torch.Tensor:
        """temb (2B, D) → first half + s_RGB, second half + s_XYZ."""
        rgb, xyz = temb.chunk(2)
        return torch.cat([rgb + self.weight[0].to(temb.dtype), xyz + self.weight[1].to(temb.dtype)])

    def attach(self, transformer: WanTransformer3DModel) -> None:
        """Register as `transformer.modality_switcher`, applied to the time embedder's output."""
        transformer.modality_switcher = self
        transformer.condition_embedder.time_embedder.register_forward_hook(lambda _m, _a, out: self(out))


class CrossDomainAttention(nn.Module):
    """CDSA (App. B.1): tokens of each modality attend to the other's, full or sparse (twins only)."""

    def __init__(self, dim: int, heads: int, eps: float = 1e-6, sparse: bool = False):
        super().__init__()
        self.sparse = sparse
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.attention = WanAttention(
            dim=dim, heads=heads, dim_head=dim // heads, eps=eps, processor=WanAttnProcessor()
        )
        nn.init.zeros_(self.attention.to_out[0].weight)  # a fresh CDSA adds nothing: b.ii starts as b.i
        nn.init.zeros_(self.attention.to_out[0].bias)

    def forward(
        self, hidden: torch.Tensor, rotary_emb: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        """hidden (2B, L, D), RGB samples then XYZ samples → the update to add to it, (2B, L, D)."""
        x = self.norm(hidden.float()).type_as(hidden)
        if self.sparse:
            return self.pair_attention(x)
        rgb, xyz = x.chunk(2)
        joint = torch.cat([rgb, xyz], dim=1)  # (B, 2L, D): both modalities in one attention
        rope = None if rotary_emb is None else tuple(torch.cat([r, r], dim=1) for r in rotary_emb)
        out_rgb, out_xyz = self.attention(joint, None, None, rope).chunk(2, dim=1)
        return torch.cat([out_rgb, out_xyz])

    def pair_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Each token attends to itself and its twin only: softmax over two keys."""
        attn = self.attention
        q = attn.norm_q(attn.to_q(x)).unflatten(-1, (attn.heads, -1))  # (2B, L, H, d)
        k = attn.norm_k(attn.to_k(x)).unflatten(-1, (attn.heads, -1))
        v = attn.to_v(x).unflatten(-1, (attn.heads, -1))

        def twin(a: torch.Tensor) -> torch.Tensor:  # the other modality's token at the same position
            rgb, xyz = a.chunk(2)
            return torch.cat([xyz, rgb])

        scale = 1 / math.sqrt(q.shape[-1])
        logits = torch.stack([(q * k).sum(-1), (q * twin(k)).sum(-1)], dim=-1) * scale  # (2B, L, H, 2)
        weights = logits.softmax(dim=-1)
        out = weights[..., :1] * v + weights[..., 1:] * twin(v)  # (2B, L, H, d)
        return attn.to_out[0](out.flatten(2))


class CDSABlock(nn.Module):
    """A `WanTransformerBlock` with CDSA between self-attention and cross-attention (Fig. B, left)."""

    def __init__(self, block: nn.Module, cdsa: CrossDomainAttention):
        super().__init__()
        self.block = block
        self.cdsa = cdsa

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """The Wan2.1 block (diffusers `WanTransformerBlock.forward`, temb (B, 6, D)) + the CDSA residual."""
        b, h = self.block, hidden_states
        if temb.ndim != 3:
            raise ValueError(
                f"CDSA supports Wan2.1's per-sample modulation (B, 6, D), got temb {tuple(temb.shape)}"
            )
        shift, scale, gate, c_shift, c_scale, c_gate = (b.scale_shift_table + temb.float()).chunk(6, dim=1)
        # 1. self-attention
        norm = (b.norm1(h.float()) * (1 + scale) + shift).type_as(h)
        h = (h.float() + b.attn1(norm, None, None, rotary_emb) * gate).type_as(h)
        # 1b. cross-domain self-attention (App. B.1)
        h = h + self.cdsa(h, rotary_emb)
        # 2. cross-attention to text and image
        h = h + b.attn2(b.norm2(h.float()).type_as(h), encoder_hidden_states, None, None)
        # 3. feed-forward
        norm = (b.norm3(h.float()) * (1 + c_scale) + c_shift).type_as(h)
        return (h.float() + b.ffn(norm).float() * c_gate).type_as(h)


class FusionVariant(nn.Module):
    """Base of the variants: the backbone, its trainable set and the common call."""

    def __init__(self, name: str, transformer: WanTransformer3DModel, lora: LoraConfig):
        super().__init__()
        if name not in VARIANTS:
            raise ValueError(f"unknown fusion variant {name!r}; expected one of {', '.join(VARIANTS)}")
        self.name = name
        self.figure_label, self.fusion = VARIANTS[name]
        self.transformer = transformer
        self.lora = lora

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def added_parameters(self) -> int:
        """Trainable parameters of the modules this variant adds: adapters, switchers, CDSA, domain embeddings.

        Not counted: the LoRA and the base parameters of `lora.train_base`, which every variant trains.
        """
        shared = {
            id(p)
            for n, p in self.transformer.named_parameters()
            if "lora_" in n or trains_in_full(n, self.lora.train_base)
        }
        return sum(p.numel() for p in self.trainable_parameters() if id(p) not in shared)

    def wan(
        self, hidden: torch.Tensor, t: torch.Tensor, text: torch.Tensor, image: torch.Tensor | None
    ) -> torch.Tensor:
        """The backbone in paper time: (B, 2z + 4, f, h, w) → u (B, z, f, h, w)."""
        v_sigma = self.transformer(
            hidden,
            timestep=wan_timestep(t).to(hidden.device),
            encoder_hidden_states=text,
            encoder_hidden_states_image=image,
            return_dict=False,
        )[0]
        return velocity_from_wan(v_sigma.float())

    def forward(
        self,
        x_rgb: torch.Tensor,
        x_xyz: torch.Tensor,
        t: torch.Tensor,
        cond_rgb: torch.Tensor,
        cond_xyz: torch.Tensor,
        text: torch.Tensor,
        image: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Paper velocities (u_RGB, u_XYZ), each (B, z, f, h, w), for noisy latents and conditions."""
        if x_rgb.shape != x_xyz.shape or x_rgb.ndim != 5:
            raise ValueError(
                f"x_rgb and x_xyz must be equal (B, z, f, h, w), got {tuple(x_rgb.shape)}, {tuple(x_xyz.shape)}"
            )
        b, _, f, h, w = x_rgb.shape
        mask_rgb, mask_xyz = (m.to(x_rgb) for m in modality_masks(f, h, w, b))
        return self.velocities((x_rgb, x_xyz), (mask_rgb, mask_xyz), (cond_rgb, cond_xyz), t, text, image)

    def velocities(
        self, x: Pair, mask: Pair, cond: Pair, t: torch.Tensor, text: torch.Tensor, image: torch.Tensor | None
    ) -> Pair:
        """(u_RGB, u_XYZ) from (RGB, XYZ) pairs of noisy latents, masks and conditions: the variant's layout."""
        raise NotImplementedError


class SequenceFusion(FusionVariant):
    """(c-e) frame-, height- or width-wise fusion: `model.FourDNeX` on the fused sequence.

    The `-stock-rope` variants (c′-e′) put diffusers' stock RoPE back, so the XYZ half sits at
    new positions (x = w … 2w − 1 for width-wise) instead of its RGB twin's.
    """

    def __init__(self, name: str, transformer: WanTransformer3DModel, lora: LoraConfig):
        super().__init__(name, transformer, lora)
        self.model = FourDNeX(transformer, self.fusion, lora)
        if name.endswith("-stock-rope"):
            rope = transformer.rope
            with torch.device(rope.freqs_cos.device):
                transformer.rope = WanRotaryPosEmbed(
                    rope.attention_head_dim, rope.patch_size, rope.max_seq_len
                )

    def velocities(
        self, x: Pair, mask: Pair, cond: Pair, t: torch.Tensor, text: torch.Tensor, image: torch.Tensor | None
    ) -> Pair:
        s = self.fusion
        u = self.model(fuse(*x, s), t, fuse(*mask, s), fuse(*cond, s), text, image)
        return split(u, s)


class ChannelFusion(FusionVariant):
    """(a.i) channel-wise with linear in/out adapters, or (a.ii) with an input adapter and a switcher."""

    def __init__(self, name: str, transformer: WanTransformer3DModel, lora: LoraConfig):
        super().__init__(name, transformer, lora)
        add_lora(transformer, lora)  # modules added afterwards train in full
        z = transformer.config.out_channels
        # [x_RGB, x_XYZ | M_RGB, M_XYZ | c_RGB, c_XYZ] → the pretrained [x | M | c]
        self.adapter_in = nn.Linear(2 * (2 * z + MASK_CHANNELS), 2 * z + MASK_CHANNELS)
        with torch.no_grad():
            self.adapter_in.weight.zero_()
            self.adapter_in.bias.zero_()
            rgb_inputs = (0, 2 * z, 2 * z + 2 * MASK_CHANNELS)  # where x_RGB, M_RGB, c_RGB start
            outputs = (0, z, z + MASK_CHANNELS)  # where x, M, c start
            for start_in, start_out, size in zip(rgb_inputs, outputs, (z, MASK_CHANNELS, z), strict=True):
                identity = torch.eye(size)
                self.adapter_in.weight[start_out : start_out + size, start_in : start_in + size] = identity
        if name == "channel-linear":
            self.adapter_out = nn.Linear(z, 2 * z)  # u → [u_RGB, u_XYZ]
            with torch.no_grad():
                self.adapter_out.weight.zero_()
                self.adapter_out.bias.zero_()
                self.adapter_out.weight[:z] = torch.eye(z)
        else:
            dim = model_width(transformer)
            ModalitySwitcher(dim).attach(transformer)

    def velocities(
        self, x: Pair, mask: Pair, cond: Pair, t: torch.Tensor, text: torch.Tensor, image: torch.Tensor | None
    ) -> Pair:
        hidden = torch.cat([fuse(*x, "channel"), fuse(*mask, "channel"), fuse(*cond, "channel")], dim=1)
        hidden = channel_linear(self.adapter_in, hidden)  # (B, 2z + 4, f, h, w)
        if self.name == "channel-linear":
            return split(channel_linear(self.adapter_out, self.wan(hidden, t, text, image)), "channel")
        twice = (hidden.repeat(2, 1, 1, 1, 1), t.repeat(2), text.repeat(2, 1, 1))
        u = self.wan(*twice, None if image is None else image.repeat(2, 1, 1))  # switcher: RGB, then XYZ
        return split(u, "batch")


class BatchFusion(FusionVariant):
    """(b.i) RGB and XYZ as two samples with a switcher; (b.ii) plus CDSA in every block."""

    def __init__(self, name: str, transformer: WanTransformer3DModel, lora: LoraConfig):
        super().__init__(name, transformer, lora)
        add_lora(transformer, lora)  # modules added afterwards train in full
        config = transformer.config
        dim = model_width(transformer)
        ModalitySwitcher(dim).attach(transformer)
        if name != "batch-switcher":
            sparse = name == "batch-cdsa-sparse"
            for index, block in enumerate(transformer.blocks):
                cdsa = CrossDomainAttention(dim, config.num_attention_heads, config.eps, sparse)
                transformer.blocks[index] = CDSABlock(block, cdsa)

    def velocities(
        self, x: Pair, mask: Pair, cond: Pair, t: torch.Tensor, text: torch.Tensor, image: torch.Tensor | None
    ) -> Pair:
        hidden = torch.cat([fuse(*x, "batch"), fuse(*mask, "batch"), fuse(*cond, "batch")], dim=1)
        u = self.wan(
            hidden, t.repeat(2), text.repeat(2, 1, 1), None if image is None else image.repeat(2, 1, 1)
        )
        return split(u, "batch")


def build_variant(name: str, config: Config, latent_channels: int, seed: int = 0) -> FusionVariant:
    """The base DiT of `config.model` (random init from `seed`, or pretrained) adapted as variant `name`.

    New modules (adapters, switchers, CDSA) train in full beside the LoRA and `lora.train_base`; the
    rest of the base stays frozen.
    """
    if name not in VARIANTS:
        raise ValueError(f"unknown fusion variant {name!r}; expected one of {', '.join(VARIANTS)}")
    transformer = build_transformer(config.model, latent_channels, seed)
    fusion = VARIANTS[name][1]
    if fusion in IN_SEQUENCE:
        return SequenceFusion(name, transformer, config.lora)
    return (ChannelFusion if fusion == "channel" else BatchFusion)(name, transformer, config.lora)


def variant_interaction_distance(
    name: str, latent_shape: tuple[int, int, int, int], patch_size: tuple[int, int, int] = (1, 2, 2)
) -> float:
    """Fig. 5's sequence distance between twin tokens in the backbone's self-attention (inf: never).

    CDSA variants keep the batch layout's ∞ in the backbone; their CDSA layers join twins directly.
    """
    if name not in VARIANTS:
        raise ValueError(f"unknown fusion variant {name!r}; expected one of {', '.join(VARIANTS)}")
    return interaction_distance(latent_shape, VARIANTS[name][1], patch_size)
