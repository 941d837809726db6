"""Modality-aware token encoding: shared RoPE and domain embeddings (§4.3, Eq. 11).

    x^RGB ← RoPE(x^RGB) + e_RGB,     x^XYZ ← RoPE(x^XYZ) + e_XYZ                     (11)

"RoPE(·) denotes the shared rotary positional encoding, and e_RGB, e_XYZ ∈ R^{1×D} are
learnable domain embeddings broadcasted across the sequence."

Shared RoPE. diffusers' `WanRotaryPosEmbed` gives every token of the latent grid
(f, h, w) its own (t, y, x) rotary position. On a fused latent that would place the XYZ
half at new positions (x = w … 2w−1 for width-wise fusion). `SharedRoPE` instead gives the
XYZ token of each pixel exactly the position of its RGB twin: it computes the stock
table for one modality's panel and repeats it along the fused axis. Drop-in: it is a
`WanRotaryPosEmbed` with the same constructor and `forward(hidden_states)`, so it can be
assigned to `transformer.rope`. Its tables are non-persistent buffers, like the stock ones.

Domain embeddings. `DomainEmbedding` holds the (2, D) parameter [e_RGB; e_XYZ],
zero-initialised so that a freshly adapted model starts as the pretrained one. It is
attached to the transformer with a forward hook on `patch_embedding`, adding e_RGB to the
RGB half and e_XYZ to the XYZ half of the patch-embedded latent (B, D, f, h, w) right after
patch embedding, as in the public release. The hook leaves every pretrained key unchanged.

Spec: specs/eq11_token_encoding.md · Tests: tests/test_eq11_token_encoding.py (-m eq11)
"""

from __future__ import annotations

import torch
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed
from torch import nn

from .fusion import AXIS, IN_SEQUENCE


class SharedRoPE(WanRotaryPosEmbed):
    """Wan's 3-D RoPE where both halves of a fused latent share one set of positions."""

    def __init__(
        self,
        attention_head_dim: int,
        patch_size: tuple[int, int, int],
        max_seq_len: int,
        theta: float = 10000.0,
        strategy: str = "width",
    ):
        super().__init__(attention_head_dim, patch_size, max_seq_len, theta)
        if strategy not in IN_SEQUENCE:
            raise ValueError(f"shared RoPE needs an in-sequence fusion {IN_SEQUENCE}, got {strategy!r}")
        self.strategy = strategy

    @classmethod
    def like(cls, rope: WanRotaryPosEmbed, strategy: str = "width") -> SharedRoPE:
        """A shared RoPE with the same settings as an existing (stock) rope module."""
        device = rope.freqs_cos.device
        if device.type == "meta":
            device = torch.device("cpu")
        with torch.device(device):
            return cls(rope.attention_head_dim, rope.patch_size, rope.max_seq_len, strategy=strategy)

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        axis = AXIS[self.strategy]  # of the fused latent (B, C, F, H, W)
        size = hidden_states.shape[axis]
        if size % 2:
            raise ValueError(f"fused latent has odd size {size} along the {self.strategy} axis")
        panel = hidden_states.narrow(axis, 0, size // 2)  # one modality, a view: no copy
        if any(n % p for n, p in zip(panel.shape[2:], self.patch_size, strict=True)):
            raise ValueError(
                f"panel (F, H, W) = {tuple(panel.shape[2:])} is not divisible by the patch {self.patch_size}"
            )
        grid = tuple(n // p for n, p in zip(panel.shape[2:], self.patch_size, strict=True))  # (f, h, w)
        cos, sin = super().forward(panel)  # (1, f·h·w, 1, D): stock positions of the panel
        grid_axis = axis - 2  # the same axis of the token grid (f, h, w)

        def repeat_halves(table: torch.Tensor) -> torch.Tensor:
            table = table.reshape(*grid, -1)  # (f, h, w, D)
            table = torch.cat([table, table], dim=grid_axis)  # XYZ twin gets the same position
            return table.reshape(1, -1, 1, table.shape[-1])  # (1, L_fused, 1, D)

        return repeat_halves(cos), repeat_halves(sin)


class DomainEmbedding(nn.Module):
    """Learnable e_RGB, e_XYZ (Eq. 11), added to the two halves of the patch-embedded latent."""

    def __init__(self, dim: int, strategy: str = "width"):
        super().__init__()
        if strategy not in (*IN_SEQUENCE, "batch"):
            raise ValueError(f"domain embeddings need frame/height/width/batch fusion, got {strategy!r}")
        self.strategy = strategy
        self.weight = nn.Parameter(torch.zeros(2, dim))  # rows: e_RGB, e_XYZ

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """patches (B, D, f, h, w) → the same with e_RGB / e_XYZ added to the two halves."""
        axis = AXIS[self.strategy]  # of the patch-embedded latent (B, D, f, h, w)
        rgb, xyz = patches.chunk(2, dim=axis)
        e_rgb, e_xyz = (e.to(patches.dtype).view(1, -1, 1, 1, 1) for e in self.weight)
        return torch.cat([rgb + e_rgb, xyz + e_xyz], dim=axis)

    def attach(self, transformer: nn.Module) -> None:
        """Register as `transformer.domain_embedding` and apply after `transformer.patch_embedding`."""
        transformer.domain_embedding = self
        transformer.patch_embedding.register_forward_hook(lambda _module, _args, out: self(out))
