"""The adapted Wan DiT: input layout, shared RoPE in the model, LoRA-only training, checkpoints.

Spec: specs/model.md
"""

import json
from functools import partial

import pytest
import torch
from diffusers import WanTransformer3DModel
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from nanofourdnex.config import load_config
from nanofourdnex.model import (
    DOMAIN_FILE,
    LORA_FILE,
    RELEASE_DOMAIN_FILE,
    FourDNeX,
    build_model,
    build_transformer,
    peft_config,
    trains_in_full,
    transformer_kwargs,
)
from nanofourdnex.paper.fusion import fuse, split
from nanofourdnex.paper.mask import guided_mask
from nanofourdnex.paper.token_encoding import DomainEmbedding, SharedRoPE
from nanofourdnex.tools.fusion_variants import build_variant
from tests.strategies import randn

Z = 8  # latent channels of these tests' models
FRAMES = 5  # → 2 latent frames


def tiny_config(strategy: str = "width", **lora):
    overrides = [f'model.fusion="{strategy}"', "model.num_layers=2", "model.num_attention_heads=2",
                 "model.attention_head_dim=12", "model.ffn_dim=32", "model.text_dim=16", "model.image_dim=16",
                 "model.added_kv_proj_dim=24", "model.freq_dim=16", "model.rope_max_seq_len=32",
                 "model.gradient_checkpointing=false", "lora.rank=4", "lora.alpha=8"]  # fmt: skip
    overrides += [f"lora.{k}={v}" for k, v in lora.items()]
    return load_config(None, overrides)


def inputs(strategy: str, seed: int = 0, batch: int = 2, h: int = 4, w: int = 6):
    rgb, xyz = randn((batch, Z, 2, h, w), seed), randn((batch, Z, 2, h, w), seed + 1)
    x_t = fuse(rgb, xyz, strategy)
    condition = fuse(randn((batch, Z, 2, h, w), seed + 2), randn((batch, Z, 2, h, w), seed + 3), strategy)
    mask = guided_mask(FRAMES, h, w, strategy).expand(batch, -1, -1, -1, -1)
    text, image = randn((batch, 512, 16), seed + 4), randn((batch, 5, 16), seed + 5)
    return x_t, torch.rand(batch), mask, condition, text, image


def perturb_adapters(model, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))


@pytest.mark.parametrize("strategy", ["width", "height", "frame"])
def test_output_has_the_fused_latent_shape_for_each_in_sequence_strategy(strategy):
    model = build_model(tiny_config(strategy), Z)
    args = inputs(strategy)
    with torch.no_grad():
        u = model(*args)
    assert u.shape == args[0].shape
    assert model.transformer.config.in_channels == 2 * Z + 4  # noise z + mask 4 + condition z (Wan I2V)


def test_full_preset_matches_wan21_i2v_14b():
    kwargs = transformer_kwargs(load_config().model, 16)
    assert kwargs["in_channels"] == 36 and kwargs["out_channels"] == 16
    assert kwargs["num_layers"] == 40 and kwargs["num_attention_heads"] * kwargs["attention_head_dim"] == 5120
    with torch.device("meta"):
        model = WanTransformer3DModel(**kwargs)
    assert sum(p.numel() for p in model.parameters()) == 16_394_878_784


def test_fresh_adapters_leave_the_pretrained_function_unchanged():
    """LoRA B = 0 and zero domain embeddings: the adapted model is the base model (stock RoPE aside)."""
    config = tiny_config("width")
    base = build_transformer(config.model, Z, seed=0)
    base.rope = SharedRoPE.like(base.rope, "width")
    model = build_model(config, Z, seed=0)
    x_t, t, mask, condition, text, image = inputs("width")
    hidden = torch.cat([x_t, mask, condition], dim=1)
    with torch.no_grad():
        expected = -base(
            hidden, timestep=1000 * (1 - t), encoder_hidden_states=text, encoder_hidden_states_image=image
        )[0]
        torch.testing.assert_close(model(x_t, t, mask, condition, text, image), expected)


@given(st.integers(0, 1000), st.sampled_from(["width", "height", "frame"]))
@settings(max_examples=6)
def test_twin_halves_give_twin_outputs_in_the_adapted_model(seed, strategy):
    model = build_model(tiny_config(strategy), Z, seed=seed % 5)
    half = randn((1, Z, 2, 4, 6), seed)
    x_t, cond = fuse(half, half, strategy), fuse(half * 0.5, half * 0.5, strategy)
    mask = fuse(torch.zeros(1, 4, 2, 4, 6), torch.zeros(1, 4, 2, 4, 6), strategy)
    with torch.no_grad():
        u = model(x_t, torch.tensor([0.3]), mask, cond, randn((1, 512, 16), seed), randn((1, 5, 16), seed))
    rgb, xyz = split(u, strategy)
    torch.testing.assert_close(rgb, xyz, rtol=0, atol=1e-5)


def test_only_lora_and_domain_embeddings_receive_gradients():
    model = build_model(tiny_config("width"), Z)
    perturb_adapters(model, 0)  # B ≠ 0 so that A gets gradients too
    model(*inputs("width")).pow(2).mean().backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    frozen_with_grad = {n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None}
    assert not frozen_with_grad
    assert trained and all("lora_" in n or n.endswith("domain_embedding.weight") for n in trained)
    assert any("domain_embedding" in n for n in trained)
    lora_modules = {n.rsplit(".lora_", 1)[0] for n in trained if "lora_" in n}
    assert len(lora_modules) == 2 * 2 * 4  # 2 blocks × (attn1, attn2) × (q, k, v, out)


def test_ffn_targets_are_selectable():
    model = build_model(tiny_config("width", ffn="true"), Z)
    names = {n for n, _ in model.named_parameters() if "lora_A" in n}
    assert any("ffn.net.0.proj" in n for n in names) and any("ffn.net.2" in n for n in names)


def test_save_then_load_reproduces_outputs_exactly(tmp_path):
    config = tiny_config("width")
    model = build_model(config, Z, seed=0)
    perturb_adapters(model, 1)
    model.save_adapters(tmp_path)
    restored = build_model(config, Z, seed=0)
    args = inputs("width", seed=7)
    with torch.no_grad():
        before = restored(*args)
        restored.load_adapters(tmp_path)
        assert not torch.equal(before, restored(*args))
        assert torch.equal(restored(*args), model(*args))


TINY_TRAIN_BASE = '["patch_embedding", "condition_embedder", "proj_out", "scale_shift_table"]'


def test_train_base_trains_exactly_the_named_base_parameters_and_checkpoints_them(tmp_path):
    """The tiny preset's random base trains its embedders, modulation tables and head beside the LoRA."""
    config = tiny_config("width", train_base=TINY_TRAIN_BASE)
    model = build_model(config, Z, seed=0)
    perturb_adapters(model, 0)
    model(*inputs("width")).pow(2).mean().backward()
    trained = {n.removeprefix("transformer.") for n, p in model.named_parameters() if p.grad is not None}
    base = {n for n in trained if "lora_" not in n and n != "domain_embedding.weight"}
    roots = {n.split(".")[0] for n in base if not n.startswith("blocks.")}
    assert roots == {"patch_embedding", "condition_embedder", "proj_out", "scale_shift_table"}
    assert {n for n in base if n.startswith("blocks.")} == {f"blocks.{i}.scale_shift_table" for i in range(2)}
    with torch.no_grad():
        for name, parameter in model.transformer.named_parameters():
            if name in base:
                parameter.add_(0.1)
    model.save_adapters(tmp_path)
    restored = build_model(config, Z, seed=0)
    restored.load_adapters(tmp_path)
    args = inputs("width", seed=3)
    with torch.no_grad():
        assert torch.equal(restored(*args), model(*args))


def test_saved_lora_loads_with_diffusers_own_loader(tmp_path):
    """The file is in diffusers' LoRA format: `load_lora_adapter` reads it and gives the same model."""
    config = tiny_config("width")
    model = build_model(config, Z, seed=0)
    perturb_adapters(model, 2)
    model.save_adapters(tmp_path)
    plain = build_transformer(config.model, Z, seed=0)
    plain.rope = SharedRoPE.like(plain.rope, "width")
    DomainEmbedding(24, "width").attach(plain)
    plain.domain_embedding.weight.data.copy_(model.transformer.domain_embedding.weight)
    plain.load_lora_adapter(str(tmp_path), weight_name=LORA_FILE, prefix="transformer")
    x_t, t, mask, condition, text, image = inputs("width", seed=3)
    hidden = torch.cat([x_t, mask, condition], dim=1)
    with torch.no_grad():
        theirs = -plain(
            hidden, timestep=1000 * (1 - t), encoder_hidden_states=text, encoder_hidden_states_image=image
        )[0]
        torch.testing.assert_close(model(x_t, t, mask, condition, text, image), theirs, rtol=1e-5, atol=1e-6)


def test_a_base_saved_in_the_diffusers_layout_is_loaded_and_checked_against_the_config(tmp_path):
    config = tiny_config("width")
    base = build_transformer(config.model, Z)  # seed 0 by default
    assert all(map(torch.equal, base.parameters(), build_transformer(config.model, Z, seed=0).parameters()))
    base.save_pretrained(tmp_path / "transformer")
    config.model.model_dir = str(tmp_path)
    loaded = build_transformer(config.model, Z, seed=1)  # the seed plays no part in a pretrained base
    assert all(map(torch.equal, loaded.parameters(), base.parameters()))
    with pytest.raises(
        ValueError,
        match=r"^checkpoint in .*transformer differs from the config in: in_channels, out_channels$",
    ):
        build_transformer(config.model, Z + 1)
    config.model.model_dir = str(tmp_path / "transformer")
    with pytest.raises(
        ValueError,
        match=r"^model dir .*transformer has no transformer/ folder \(diffusers Wan2.1-I2V layout\)$",
    ):
        build_transformer(config.model, Z)


def test_on_a_pretrained_base_the_adapters_start_from_the_seed_alone(tmp_path):
    """A loaded base draws nothing, so the LoRA and domain-embedding init must still follow `seed` — not
    whatever the global random state was (training in another process, or after other work, would differ)."""
    config = tiny_config("width")
    build_transformer(config.model, Z, seed=7).save_pretrained(tmp_path / "transformer")
    config.model.model_dir = str(tmp_path)

    def adapters(build, seed: int, disturb: int) -> list[torch.Tensor]:
        torch.manual_seed(disturb)  # the global state a caller happens to leave
        torch.rand(disturb % 97)
        return [p.detach().clone() for p in build(seed=seed).trainable_parameters()]

    the_6d_model, an_ablation_variant = (
        partial(build_model, config, Z),
        partial(build_variant, "batch-cdsa-full", config, Z),
    )
    for build in (the_6d_model, an_ablation_variant):
        first, again = adapters(build, 3, disturb=11), adapters(build, 3, disturb=12345)
        other = adapters(build, 4, disturb=11)
        assert any(p.abs().sum() > 0 for p in first)  # LoRA A is drawn, so the seed has something to fix
        assert all(map(torch.equal, first, again))
        assert not all(map(torch.equal, first, other))


def test_a_bf16_model_takes_float32_inputs_and_gives_float32_velocities():
    model = build_model(tiny_config("width"), Z).to(torch.bfloat16)
    with torch.no_grad():
        u = model(*inputs("width"))
    assert u.dtype == torch.float32 and torch.isfinite(u).all()


def test_the_image_condition_is_optional():
    model = build_model(tiny_config("width"), Z)
    perturb_adapters(model, 0)
    x_t, t, mask, condition, text, image = inputs("width")
    with torch.no_grad():
        without = model(x_t, t, mask, condition, text, None)
        assert without.shape == x_t.shape and not torch.equal(
            without, model(x_t, t, mask, condition, text, image)
        )


def test_the_model_keeps_its_strategy_and_gives_it_to_its_domain_embeddings():
    model = build_model(tiny_config("height"), Z)
    assert model.strategy == model.transformer.domain_embedding.strategy == "height"
    with pytest.raises(
        ValueError, match=r"^FourDNeX fuses RGB and XYZ in one sequence: frame, height, width; got 'channel'$"
    ):
        FourDNeX(model.transformer, "channel", model.lora)


def test_train_base_names_never_claim_lora_parameters():
    base = ("blocks.0.attn1.to_q",)
    assert trains_in_full("blocks.0.attn1.to_q.base_layer.weight", base)
    assert not trains_in_full("blocks.0.attn1.to_q.lora_A.default.weight", base)


def test_the_saved_lora_carries_its_peft_config(tmp_path):
    model = build_model(tiny_config("width", alpha=16), Z)
    assert peft_config(model.lora).lora_alpha == 16 and peft_config(model.lora).init_lora_weights is True
    model.save_adapters(tmp_path)
    with safe_open(str(tmp_path / LORA_FILE), "pt") as saved:
        metadata = json.loads(saved.metadata()["lora_adapter_metadata"])
    assert metadata["transformer.r"] == 4 and metadata["transformer.lora_alpha"] == 16
    assert metadata["transformer.target_modules"] == ["to_k", "to_out.0", "to_q", "to_v"]  # a set, sorted


def saved_adapters(tmp_path, **lora):
    """The adapters of a tiny width-fused model saved to tmp_path; returns the model."""
    model = build_model(tiny_config("width", **lora), Z)
    perturb_adapters(model, 0)
    model.save_adapters(tmp_path)
    return model


def test_adapters_of_another_rank_or_layout_are_refused_with_the_reason(tmp_path):
    saved_adapters(tmp_path, ffn="true")
    with pytest.raises(
        ValueError, match=r"has LoRA rank \[4\], the config says 8 \(set lora.rank and lora.alpha"
    ):
        build_model(tiny_config("width", rank=8, ffn="true"), Z).load_adapters(tmp_path)
    # 2 blocks × 2 FFN layers × (A, B) = 8 keys the plain model lacks; the message lists the first 3.
    with pytest.raises(
        ValueError,
        match=r"pytorch_lora_weights.safetensors has keys this model lacks: \[('[^']+', ){2}'[^']+'\] \.\.\.$",
    ):
        build_model(tiny_config("width"), Z).load_adapters(tmp_path)
    saved_adapters(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"pytorch_lora_weights.safetensors lacks LoRA weights this model has: \[('[^']+', ){2}'[^']+'\] \.\.\. \(8 missing\)$",
    ):
        build_model(tiny_config("width", ffn="true"), Z).load_adapters(tmp_path)


def test_domain_embeddings_are_read_from_either_file_and_checked(tmp_path):
    model = saved_adapters(tmp_path)
    domain = model.transformer.domain_embedding.weight.detach().clone()
    (tmp_path / DOMAIN_FILE).unlink()
    with pytest.raises(ValueError, match=f"has neither {DOMAIN_FILE} nor {RELEASE_DOMAIN_FILE}$"):
        build_model(tiny_config("width"), Z).load_adapters(tmp_path)
    for release in (
        domain.bfloat16(),
        {"module.learnable_domain_embeddings": domain},
    ):  # a raw tensor or a dict
        torch.save(release, tmp_path / RELEASE_DOMAIN_FILE)
        fresh = build_model(tiny_config("width"), Z)
        fresh.load_adapters(tmp_path)
        loaded = fresh.transformer.domain_embedding.weight
        assert loaded.dtype == torch.float32 and torch.equal(
            loaded, domain.bfloat16().float() if isinstance(release, torch.Tensor) else domain
        )
    for release, message in (
        ({"a": domain}, r"holds no single `learnable_domain_embeddings` entry: \['a'\]$"),
        ({"learnable_domain_embeddings": [1.0]}, "holds a list, not a tensor$"),
    ):
        torch.save(release, tmp_path / RELEASE_DOMAIN_FILE)
        with pytest.raises(ValueError, match=message):
            build_model(tiny_config("width"), Z).load_adapters(tmp_path)
    save_file({"weight": torch.zeros(2, 7)}, str(tmp_path / DOMAIN_FILE))
    with pytest.raises(ValueError, match=r"^domain embeddings in .* are \(2, 7\), expected \(2, 24\)$"):
        build_model(tiny_config("width"), Z).load_adapters(tmp_path)


def test_trained_base_parameters_must_be_the_ones_the_config_names(tmp_path):
    saved_adapters(tmp_path, train_base=TINY_TRAIN_BASE)
    other = build_model(tiny_config("width", train_base='["proj_out"]'), Z)
    with pytest.raises(
        ValueError,
        match=r"trained_base.safetensors holds \[('[^']+', ){2}'[^']+'\] \.\.\. which lora.train_base = \['proj_out'\] does not",
    ):
        other.load_adapters(tmp_path)


def test_a_meta_build_reads_no_weights_and_leaves_the_random_state():
    config = tiny_config("width")
    config.model.model_dir = "/nowhere/Wan2.1-I2V-14B-480P"  # never read: only the shapes are built
    state = torch.random.get_rng_state()
    model = build_model(config, Z, meta=True)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(p.device.type == "meta" for p in model.parameters())
    real = build_model(tiny_config("width"), Z)  # seed 0 by default
    assert {n: p.shape for n, p in model.named_parameters()} == {
        n: p.shape for n, p in real.named_parameters()
    }
    assert all(map(torch.equal, real.parameters(), build_model(tiny_config("width"), Z, seed=0).parameters()))
    other = build_model(tiny_config("width"), Z, seed=1)  # the seed draws the random base
    assert not torch.equal(other.transformer.patch_embedding.weight, real.transformer.patch_embedding.weight)


def test_the_dit_gets_every_field_of_the_model_config():
    model = tiny_config("width").model
    assert transformer_kwargs(model, Z) == {
        "patch_size": (1, 2, 2), "num_attention_heads": 2, "attention_head_dim": 12, "in_channels": 2 * Z + 4,
        "out_channels": Z, "text_dim": 16, "freq_dim": 16, "ffn_dim": 32, "num_layers": 2, "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "image_dim": 16, "added_kv_proj_dim": 24,
        "rope_max_seq_len": 32,
    }  # fmt: skip
