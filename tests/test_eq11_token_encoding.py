"""Eq. 11: shared RoPE across the RGB and XYZ halves, and the domain embeddings. Spec: specs/eq11_token_encoding.md"""

import pytest
import torch
from diffusers import WanTransformer3DModel
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed
from hypothesis import given
from hypothesis import strategies as st

from nanofourdnex.paper.fusion import fuse, split
from nanofourdnex.paper.token_encoding import DomainEmbedding, SharedRoPE
from tests.strategies import randn, seeds, sequence_strategies

pytestmark = pytest.mark.eq11
HEAD_DIM = 24  # split t/h/w = 8/8/8
AXIS = {"frame": 2, "height": 3, "width": 4}


def panel_latent(f: int, h: int, w: int) -> torch.Tensor:
    return torch.zeros(1, 4, f, 2 * h, 2 * w)  # one modality; patch (1, 2, 2) → grid (f, h, w)


grids = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4))


def tiny_wan(seed: int = 0) -> WanTransformer3DModel:
    torch.manual_seed(seed)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=HEAD_DIM, in_channels=4,
        out_channels=4, text_dim=16, freq_dim=16, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=32,
    )  # fmt: skip


@given(grids, sequence_strategies)
def test_shared_rope_gives_both_halves_the_stock_positions_of_one_panel(grid, strategy):
    stock = WanRotaryPosEmbed(HEAD_DIM, (1, 2, 2), 32)
    shared = SharedRoPE(HEAD_DIM, (1, 2, 2), 32, strategy=strategy)
    panel = panel_latent(*grid)
    fused = fuse(panel, panel, strategy)
    f, h, w = grid
    for shared_table, stock_table in zip(shared(fused), stock(panel), strict=True):
        table = shared_table.reshape(
            *(2 * n if a == AXIS[strategy] else n for a, n in ((2, f), (3, h), (4, w))), -1
        )
        rgb, xyz = table.chunk(2, dim=AXIS[strategy] - 2)
        assert torch.equal(rgb, xyz)  # the XYZ twin sits at exactly the RGB position
        assert torch.equal(rgb.reshape(stock_table.shape), stock_table)  # and that is the stock table


def test_shared_tables_have_the_stock_layout_and_theta():
    stock = WanRotaryPosEmbed(HEAD_DIM, (1, 2, 2), 32, theta=100.0)
    shared = SharedRoPE(HEAD_DIM, (1, 2, 2), 32, theta=100.0)
    panel = panel_latent(2, 2, 3)
    for table, stock_table in zip(shared(fuse(panel, panel, "width")), stock(panel), strict=True):
        assert table.shape == (1, 2 * stock_table.shape[1], 1, stock_table.shape[-1])  # (1, L_fused, 1, D)
        rgb, xyz = table.reshape(2, 2, 6, -1).chunk(2, dim=2)
        assert torch.equal(rgb, xyz) and torch.equal(rgb.reshape(stock_table.shape), stock_table)


def test_a_shared_rope_made_like_a_meta_rope_has_real_tables():
    """`build_model(meta=True)` builds the stock rope on the meta device; the shared tables are computed."""
    with torch.device("meta"):
        rope = WanRotaryPosEmbed(HEAD_DIM, (1, 2, 2), 32)
    shared = SharedRoPE.like(rope)
    assert shared.freqs_cos.device.type == "cpu"
    assert torch.equal(shared.freqs_cos, WanRotaryPosEmbed(HEAD_DIM, (1, 2, 2), 32).freqs_cos)


def test_width_is_the_default_fusion_of_both_encodings():
    stock = WanRotaryPosEmbed(HEAD_DIM, (1, 2, 2), 32)
    assert SharedRoPE(HEAD_DIM, (1, 2, 2), 32).strategy == SharedRoPE.like(stock).strategy == "width"
    assert DomainEmbedding(8).strategy == "width"


@given(grids)
def test_stock_rope_on_a_width_fused_latent_would_shift_the_xyz_positions(grid):
    f, h, w = grid
    fused = fuse(panel_latent(*grid), panel_latent(*grid), "width")
    cos, _ = WanRotaryPosEmbed(HEAD_DIM, (1, 2, 2), 32)(fused)
    rgb, xyz = cos.reshape(f, h, 2 * w, -1).chunk(2, dim=2)
    assert not torch.equal(rgb, xyz)


def test_shared_rope_is_a_drop_in_with_non_persistent_tables():
    model = tiny_wan()
    keys = set(model.state_dict())
    model.rope = SharedRoPE.like(model.rope, "width")
    assert set(model.state_dict()) == keys  # swapping the rope adds no checkpoint keys
    assert isinstance(model.rope, WanRotaryPosEmbed)


@given(seeds, sequence_strategies)
def test_twin_halves_give_twin_outputs_only_with_shared_rope(seed, strategy):
    """Identical content in both halves + zero domain embeddings → identical output halves (Eq. 11)."""
    model = tiny_wan(seed % 7)
    half = randn((1, 4, 2, 4, 4), seed)
    fused = fuse(half, half, strategy)
    text, timestep = randn((1, 3, 16), seed + 1), torch.tensor([500])
    with torch.no_grad():
        stock_out = model(fused, timestep, text, return_dict=False)[0]
        model.rope = SharedRoPE.like(model.rope, strategy)
        DomainEmbedding(model.config.num_attention_heads * HEAD_DIM, strategy).attach(model)
        shared_out = model(fused, timestep, text, return_dict=False)[0]
    rgb, xyz = split(shared_out, strategy)
    torch.testing.assert_close(rgb, xyz, rtol=0, atol=1e-6)
    stock_rgb, stock_xyz = split(stock_out, strategy)
    assert (stock_rgb - stock_xyz).abs().max() > 1e-4


@given(seeds, st.sampled_from(("frame", "height", "width", "batch")))
def test_domain_embedding_adds_e_rgb_and_e_xyz_to_their_halves(seed, strategy):
    dim = 6
    embedding = DomainEmbedding(dim, strategy)
    assert torch.equal(embedding.weight, torch.zeros(2, dim))  # starts as the pretrained model
    patches = randn((2, dim, 2, 4, 6), seed)
    assert torch.equal(embedding(patches), patches)
    with torch.no_grad():
        embedding.weight.copy_(randn((2, dim), seed + 1))
    axis = 0 if strategy == "batch" else AXIS[strategy]
    out_rgb, out_xyz = embedding(patches).chunk(2, dim=axis)
    in_rgb, in_xyz = patches.chunk(2, dim=axis)
    torch.testing.assert_close(out_rgb - in_rgb, embedding.weight[0].view(1, -1, 1, 1, 1).expand_as(in_rgb))
    torch.testing.assert_close(out_xyz - in_xyz, embedding.weight[1].view(1, -1, 1, 1, 1).expand_as(in_xyz))


def test_domain_embedding_keeps_the_dtype_of_the_patches():
    embedding = DomainEmbedding(6, "width")
    assert embedding(torch.zeros(1, 6, 1, 2, 4, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_attached_domain_embedding_acts_after_patch_embedding_and_keeps_pretrained_keys():
    model = tiny_wan()
    keys = set(model.state_dict())
    embedding = DomainEmbedding(48, "width")
    embedding.attach(model)
    assert set(model.state_dict()) == keys | {"domain_embedding.weight"}
    x = randn((1, 4, 1, 4, 8), 3)
    with torch.no_grad():
        embedding.weight.copy_(torch.stack([torch.ones(48), -torch.ones(48)]))
        patches = model.patch_embedding(x)
        plain = torch.nn.functional.conv3d(
            x, model.patch_embedding.weight, model.patch_embedding.bias, stride=(1, 2, 2)
        )
    torch.testing.assert_close(patches[..., :2], plain[..., :2] + 1)
    torch.testing.assert_close(patches[..., 2:], plain[..., 2:] - 1)


def test_channel_fusion_has_no_halves_to_share():
    with pytest.raises(ValueError, match="in-sequence fusion"):
        SharedRoPE(HEAD_DIM, (1, 2, 2), 32, strategy="channel")
    with pytest.raises(ValueError, match="need frame/height/width/batch"):
        DomainEmbedding(8, "channel")
    with pytest.raises(ValueError, match="odd size"):
        SharedRoPE(HEAD_DIM, (1, 2, 2), 32, strategy="width")(torch.zeros(1, 4, 1, 2, 5))
    with pytest.raises(ValueError, match=r"panel \(F, H, W\) = \(1, 2, 3\) is not divisible by the patch"):
        SharedRoPE(HEAD_DIM, (1, 2, 2), 32, strategy="width")(torch.zeros(1, 4, 1, 2, 6))
