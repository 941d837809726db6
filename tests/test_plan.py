"""The full run on paper: exact parameter counts, token counts, FLOPs against torch's counter, memory, time.

Spec: specs/plan.md
"""

from __future__ import annotations

import dataclasses
import re
from functools import cache

import pytest
import torch
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed
from hypothesis import given
from hypothesis import strategies as st
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count
from typer.testing import CliRunner

from nanofourdnex.autoencoder import build_autoencoder
from nanofourdnex.cli import app
from nanofourdnex.conditioning import build_encoders
from nanofourdnex.config import SamplingConfig, load_config
from nanofourdnex.generate import generate_6d
from nanofourdnex.model import build_model
from nanofourdnex.paper.mask import guided_mask
from nanofourdnex.tools.plan import (
    ATTENTION_BACKWARD,
    BLOCK_ACTIVATIONS,
    CLIP_VIT_H_VISION_PARAMS,
    GB,
    GPUS,
    HOST_LINK_GBPS,
    UMT5_XXL_EMBEDDING_PARAMS,
    UMT5_XXL_ENCODER_PARAMS,
    WAN_VAE_PARAMS,
    Gpu,
    block_linears,
    count_flops,
    count_parameters,
    count_tokens,
    dry_run,
    format_plan,
    plan,
    training_memory,
)

aten = torch.ops.aten
D, FFN, N, L_PAPER = 5120, 13824, 40, 35_100  # Wan2.1-I2V-14B width, FFN width, blocks; paper tokens


@cache
def full_plan(gpus: int = 32, gpu: str = "a100-80g"):
    return plan(load_config(), gpus=gpus, gpu=gpu)


def small_config(*overrides: str):
    """A DiT small enough to run on the CPU in milliseconds, with the paper's structure."""
    return load_config(None, [
        "model.num_layers=2", "model.num_attention_heads=2", "model.attention_head_dim=12", "model.ffn_dim=40",
        "model.text_dim=16", "model.image_dim=20", "model.added_kv_proj_dim=24", "model.freq_dim=16",
        "model.rope_max_seq_len=32", "model.gradient_checkpointing=false", "lora.rank=4",
        'autoencoder.kind="pixel"', "autoencoder.spatial=1", "data.num_frames=5", "data.height=4",
        "data.width=6", "conditioning.tiny_image_size=16", "conditioning.tiny_image_patch=8", *overrides,
    ])  # fmt: skip


def model_inputs(config, dtype=torch.float32):
    """Random (x_t, t, mask, condition, text, image) of the config's fused shapes."""
    tokens = count_tokens(config)
    S, model = tokens.sequences, config.model
    generator = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(shape, generator=generator).to(dtype)

    mask = guided_mask(config.data.num_frames, tokens.latent[2], tokens.latent[3], model.fusion).to(dtype)
    return (
        randn(*tokens.fused),
        torch.rand(S, generator=generator),
        mask,
        randn(*tokens.fused),
        randn(S, tokens.text, model.text_dim),
        randn(S, tokens.image, model.image_dim),
    )


# Parameters.


def test_parameter_counts_of_wan21_i2v_14b_with_the_paper_lora():
    counts = full_plan().parameters
    assert counts.base == 16_394_878_784
    assert counts.lora_modules == 320  # q, k, v, out of both attentions × 40 blocks
    assert counts.lora == 209_715_200 == 320 * 64 * (D + D)
    assert counts.domain == 2 * D
    assert counts.trainable == 209_715_200 + 10_240


def test_lora_on_the_ffn_adds_the_two_ffn_linears():
    counts = count_parameters(load_config(None, ["lora.ffn=true"]))
    assert counts.lora == 306_708_480 == 209_715_200 + N * 64 * 2 * (D + FFN)
    assert counts.lora_modules == 400


@given(rank=st.integers(1, 8), ffn=st.booleans(), targets=st.sampled_from([
    ("to_q", "to_k", "to_v", "to_out.0"), ("to_q", "to_v"), ("to_out.0",), ("add_k_proj", "to_k")]))  # fmt: skip
def test_lora_count_of_the_linear_table_equals_peft_injection(rank, ffn, targets):
    """`block_linears` and peft's target rule reproduce the adapter peft actually builds."""
    target_list = ", ".join(f'"{t}"' for t in targets)
    config = small_config(
        f"lora.rank={rank}", f"lora.ffn={str(ffn).lower()}", f"lora.targets=[{target_list}]"
    )
    wanted = set(targets) | ({"ffn.net.0.proj", "ffn.net.2"} if ffn else set())
    by_hand = config.model.num_layers * sum(
        rank * (linear.d_in + linear.d_out)
        for linear in block_linears(config, count_tokens(config))
        if any(linear.name == t or linear.name.endswith("." + t) for t in wanted)
    )
    assert count_parameters(config).lora == by_hand


def test_block_and_root_parameters_add_up_to_the_dit():
    counts = full_plan().parameters
    assert counts.block * counts.num_blocks + counts.root == counts.base
    assert 0 < counts.root < counts.block  # embedders and head: smaller than one block


def test_encoder_constants_match_their_architectures_built_on_meta():
    from diffusers import AutoencoderKLWan
    from transformers import CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    with torch.device("meta"):
        umt5 = UMT5EncoderModel(UMT5Config(vocab_size=256_384, d_model=4096, d_kv=64, d_ff=10_240, num_layers=24,
                                           num_heads=64, feed_forward_proj="gated-gelu"))  # fmt: skip
        clip = CLIPVisionModel(CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                                                num_attention_heads=16, image_size=224, patch_size=14))  # fmt: skip
        vae = AutoencoderKLWan()
    assert sum(p.numel() for p in umt5.parameters()) == UMT5_XXL_ENCODER_PARAMS
    assert umt5.shared.weight.numel() == UMT5_XXL_EMBEDDING_PARAMS
    assert sum(p.numel() for p in clip.parameters()) == CLIP_VIT_H_VISION_PARAMS
    assert sum(p.numel() for p in vae.parameters()) == WAN_VAE_PARAMS


# Tokens.


def test_paper_tokens_are_35100_per_width_fused_sample_not_70200():
    tokens = full_plan().tokens
    assert tokens.latent == (16, 13, 60, 90)  # 49 frames → 13, 480×720 / 8
    assert tokens.fused == (1, 16, 13, 60, 180)
    assert tokens.grid == (13, 30, 45)
    assert tokens.length == 13 * 30 * 90 == 35_100
    assert 70_200 == 13 * 60 * 90  # the number: one modality's latent positions, before the 2×2 patch
    assert (tokens.text, tokens.image) == (512, 257)


@pytest.mark.parametrize(
    "strategy, fused, sequences, length",
    [
        ("width", (1, 16, 13, 60, 180), 1, 35_100),
        ("height", (1, 16, 13, 120, 90), 1, 35_100),
        ("frame", (1, 16, 26, 60, 90), 1, 35_100),
        ("batch", (2, 16, 13, 60, 90), 2, 17_550),
    ],
)
def test_paper_tokens_for_each_fusion_strategy(strategy, fused, sequences, length):
    tokens = count_tokens(load_config(None, [f'model.fusion="{strategy}"']))
    assert (tokens.fused, tokens.sequences, tokens.length) == (fused, sequences, length)


@given(
    frames=st.integers(0, 4).map(lambda k: 4 * k + 1),
    height=st.integers(1, 4),
    width=st.integers(1, 4),
    strategy=st.sampled_from(["width", "height", "frame", "batch"]),
)
def test_token_count_is_what_the_patch_embedding_produces(frames, height, width, strategy):
    config = small_config(
        f"data.num_frames={frames}", f"data.height={2 * height}", f"data.width={2 * width}",
        f'model.fusion="{strategy}"',
    )  # fmt: skip
    tokens = count_tokens(config)
    with torch.device("meta"):
        patch = torch.nn.Conv3d(2 * tokens.latent[0] + 4, 8, kernel_size=(1, 2, 2), stride=(1, 2, 2))
        sequence = patch(torch.empty(tokens.fused[0], 2 * tokens.latent[0] + 4, *tokens.fused[2:])).flatten(2)
    assert (sequence.shape[0], sequence.shape[-1]) == (tokens.sequences, tokens.length)


def test_tiny_preset_tokens_use_the_pixel_stand_in():
    tokens = count_tokens(load_config("tiny"))
    assert tokens.latent == (12, 3, 16, 24)  # 12·1² channels, 9 frames → 3, 16×24 / 1
    assert tokens.length == 3 * 8 * 24 == 576
    assert tokens.image == (32 // 8) ** 2 + 1


# FLOPs.


def test_paper_forward_flops_by_hand():
    flops = full_plan().flops
    assert flops.sequence_linear == N * 2 * L_PAPER * (6 * D * D + 2 * D * FFN)
    assert flops.context_linear == N * (2 * 512 * 2 * D * D + 2 * 257 * 2 * D * D)
    assert flops.lora_sequence == N * 6 * 2 * L_PAPER * 64 * 2 * D  # q, k, v, o of attn1; q, o of attn2
    assert flops.lora_context == N * 2 * 2 * 512 * 64 * 2 * D  # k, v of attn2 on the text
    assert flops.attention == N * (4 * L_PAPER**2 * D + 4 * L_PAPER * (512 + 257) * D)
    assert flops.attention / flops.forward == pytest.approx(0.547, abs=0.001)


def _matmul_flops(counts: dict) -> int:
    return sum(counts.get(op, 0) for op in (aten.mm, aten.addmm, aten.convolution, aten.convolution_backward))


@pytest.mark.parametrize("strategy", ["width", "height", "frame"])
@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("ffn", [False, True])
def test_flop_formulas_equal_torch_flop_counter_on_a_small_dit(strategy, checkpointing, ffn):
    """Forward linears and attention, and backward linears (1×, 2×, 1.5×, 0×, recompute), exactly."""
    config = small_config(f'model.fusion="{strategy}"', f"model.gradient_checkpointing={str(checkpointing).lower()}",
                          f"lora.ffn={str(ffn).lower()}")  # fmt: skip
    flops = count_flops(config, count_tokens(config))
    model = build_model(config, count_tokens(config).latent[0]).train()
    with sdpa_kernel(SDPBackend.MATH):  # attention as two bmm, visible to the counter on the CPU
        with FlopCounterMode(display=False) as forward:
            u = model(*model_inputs(config))
        with FlopCounterMode(display=False) as backward:
            u.pow(2).mean().backward()
    forward, backward = forward.get_flop_counts()["Global"], backward.get_flop_counts()["Global"]
    assert _matmul_flops(forward) == flops.forward - flops.attention
    assert forward[aten.bmm] == flops.attention
    backward_linear = flops.backward - ATTENTION_BACKWARD * flops.attention
    recompute_linear = flops.recompute - (flops.attention if checkpointing else 0)
    assert _matmul_flops(backward) == backward_linear + recompute_linear


def test_batch_fusion_flops_equal_torch_flop_counter_for_two_sequences():
    """Batch fusion runs the RGB and XYZ latents as two sequences through the same DiT (with LoRA)."""
    config = small_config('model.fusion="batch"')
    tokens = count_tokens(config)
    flops = count_flops(config, tokens)
    transformer = build_model(small_config('model.fusion="width"'), tokens.latent[0]).transformer.train()
    transformer.rope = WanRotaryPosEmbed(
        config.model.attention_head_dim, (1, 2, 2), config.model.rope_max_seq_len
    )
    x_t, t, mask, condition, text, image = model_inputs(config)
    hidden = torch.cat([x_t, mask, condition], dim=1)  # (2, 2z + 4, f, h, w): two sequences
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as forward:
        transformer(hidden, 1000 * t, text, encoder_hidden_states_image=image)
    assert tokens.sequences == 2
    assert forward.get_total_flops() == tokens.sequences * flops.forward


@given(heads=st.integers(1, 40), q=st.integers(1, 4096), k=st.integers(1, 4096), head_dim=st.integers(1, 256))
def test_attention_backward_factor_is_torchs_flash_attention_count(heads, q, k, head_dim):
    shapes = (1, heads, q, head_dim), (1, heads, k, head_dim), (1, heads, k, head_dim)
    assert ATTENTION_BACKWARD * sdpa_flop_count(*shapes) == sdpa_backward_flop_count(shapes[0], *shapes)


def test_gradient_checkpointing_adds_one_forward_of_the_blocks():
    with_ = count_flops(load_config(), full_plan().tokens)
    without = count_flops(load_config(None, ["model.gradient_checkpointing=false"]), full_plan().tokens)
    assert with_.train - without.train == with_.blocks
    assert with_.train / with_.forward == pytest.approx(3.82, abs=0.01)


# Time.


@given(
    gpus=st.sampled_from([1, 2, 4, 8, 16, 32]), mfu=st.floats(0.05, 1.0), gpu=st.sampled_from(sorted(GPUS))
)
def test_run_time_is_run_flops_over_cluster_throughput(gpus, mfu, gpu):
    p = dataclasses.replace(full_plan(), gpus=gpus, mfu=mfu, gpu=GPUS[gpu])
    assert p.run_seconds == pytest.approx(5000 * p.step_flops / (gpus * GPUS[gpu].peak_tflops * 1e12 * mfu))
    reference = full_plan()
    assert p.run_seconds * gpus * mfu * GPUS[gpu].peak_tflops == pytest.approx(
        reference.run_seconds * 32 * 0.35 * 312
    )  # ∝ 1 / (gpus · mfu · peak)


def test_step_flops_are_batch_times_sample_flops():
    p = full_plan()
    assert p.step_flops == 32 * p.flops.train
    assert p.run_flops == 5000 * p.step_flops


# Memory.


@given(few=st.sampled_from([1, 2, 4, 8, 16]), checkpointing=st.booleans())
def test_training_memory_decreases_with_more_gpus(few, checkpointing):
    p = full_plan()
    fewer = training_memory(load_config(), p.parameters, p.tokens, few, 1, checkpointing)
    more = training_memory(load_config(), p.parameters, p.tokens, 2 * few, 1, checkpointing)
    assert more.base_weights < fewer.base_weights and more.adapter < fewer.adapter
    assert more.total < fewer.total


def test_checkpointing_cuts_activations_to_block_inputs_plus_one_block():
    p = full_plan()
    stream = 2 * L_PAPER * D  # one bf16 copy of the residual stream
    block = 2 * L_PAPER * (22 * D + FFN)
    assert p.memory_with_checkpointing.activations == N * stream + block + 3 * stream
    assert p.memory_without_checkpointing.activations == N * block + 3 * stream
    assert p.memory_with_checkpointing.total < p.memory_without_checkpointing.total
    assert p.memory is p.memory_with_checkpointing  # the preset checkpoints


def test_paper_run_fits_32_a100_80g_and_8_h100_only_with_checkpointing():
    for p in (full_plan(), full_plan(8, "h100-80g")):
        assert p.memory_with_checkpointing.total < 80 * GB < p.memory_without_checkpointing.total
    assert full_plan().memory_with_checkpointing.base_weights == 2 * 16_394_878_784 / 32


def _saved_bytes(config) -> int:
    """Bytes autograd saves in a forward (parameters excluded, shared storages counted once)."""
    model = build_model(config, count_tokens(config).latent[0]).to(torch.bfloat16).train()
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(*model_inputs(config, torch.bfloat16))
    return sum(saved.values())


@pytest.mark.parametrize("ffn", [False, True])
def test_block_activation_constant_matches_autograd_saved_tensors(ffn):
    """Per block and per token, autograd saves 2·(c·d + k·F) bytes (within 5 %)."""
    c, k = BLOCK_ACTIVATIONS[ffn]
    d, ffn_dim = 128, 256
    sizes = {
        64: ("data.height=8", "data.width=8"),
        256: ("data.height=16", "data.width=16"),
    }  # L → frame size

    def per_block(height_width):
        common = ("model.attention_head_dim=64", f"model.ffn_dim={ffn_dim}", f"model.added_kv_proj_dim={d}",
                  f"lora.ffn={str(ffn).lower()}", *height_width)  # fmt: skip
        return _saved_bytes(small_config("model.num_layers=2", *common)) - _saved_bytes(
            small_config("model.num_layers=1", *common)
        )

    per_token = (per_block(sizes[256]) - per_block(sizes[64])) / (256 - 64)
    assert per_token == pytest.approx(2 * (c * d + k * ffn_dim), rel=0.05)


def test_checkpointed_block_saves_only_its_bf16_input():
    def saved(layers):
        return _saved_bytes(small_config(f"model.num_layers={layers}", "model.gradient_checkpointing=true",
                                         "data.height=16", "data.width=16"))  # fmt: skip

    tokens = count_tokens(small_config("data.height=16", "data.width=16"))
    assert saved(3) - saved(2) == saved(2) - saved(1) == 2 * tokens.length * 24  # 2 B × L × d


def test_inference_memory_per_offload_mode():
    inference = full_plan().inference
    dit = 2 * (16_394_878_784 + 2 * D)
    assert inference.components == {
        "transformer": dit,
        "text encoder": 2 * UMT5_XXL_ENCODER_PARAMS,
        "image encoder": 2 * CLIP_VIT_H_VISION_PARAMS,
        "vae": 2 * WAN_VAE_PARAMS,
    }
    assert inference.working_set == 2 * L_PAPER * 10 * D
    assert inference.modes["none"] == sum(inference.components.values()) + inference.working_set
    assert inference.modes["model"] == dit + inference.working_set
    assert inference.modes["none"] > inference.modes["model"] > inference.modes["sequential"]
    assert inference.modes["sequential"] < 24 * GB < inference.modes["model"]


# The dry run and the presets.


def test_full_preset_dry_run_on_meta_returns_the_fused_shape_and_all_adapter_gradients():
    result = dry_run(load_config())
    assert result.output_shape == result.expected_shape == (1, 16, 13, 60, 180)
    assert result.trainable_parameters == full_plan().parameters.trainable
    assert result.parameters_with_gradient == result.trainable_tensors == 2 * 320 + 1


def test_tiny_preset_plan_and_dry_run():
    config = load_config("tiny")
    p = plan(config, gpus=1, gpu="rtx4090")
    result = dry_run(config)
    assert result.output_shape == p.tokens.fused == (1, 12, 3, 16, 48)
    assert result.trainable_parameters == p.parameters.trainable
    assert p.samples_per_gpu == p.micro_batch == 4
    assert p.memory.gathered == 0  # one GPU: nothing sharded, nothing gathered
    assert p.inference.components["vae"] == 0  # the pixel stand-in has no weights


def test_table_shows_the_paper_numbers_with_units():
    table = format_plan(full_plan())
    for text in (
        "16,394,878,784",
        "209,725,440",
        "35,100",
        "512 + 257",
        "PFLOP",
        "GB",
        "3.8 d",
        "fits in 80 GB",
    ):
        assert text in table
    assert "does NOT fit in 80 GB" in table  # without checkpointing


@pytest.mark.parametrize(
    "override, kwargs, message",
    [
        ((), {"gpu": "tpu"}, "unknown gpu"),
        ((), {"gpus": 0}, "gpus must be"),
        ((), {"mfu": 0.0}, "mfu must"),
        ((), {"gpus": 64}, "multiple of gpus"),
        (("data.num_frames=48",), {}, "4k + 1"),
        (("data.height=484",), {}, "divisible"),
        (('model.fusion="channel"',), {}, "model.fusion"),
        (('autoencoder.kind="dc"',), {}, "autoencoder.kind"),
    ],
)
def test_plan_rejects_impossible_settings(override, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        plan(load_config(None, list(override)), **kwargs)


# One measured setting on one GPU (benchmarks/gpu_check.py compares each with the device).


def test_plan_takes_a_measured_gpu_as_well_as_a_table_row():
    config = load_config()
    named, measured = full_plan(), plan(config, gpu=Gpu("measured", 500.0, 100.0))
    assert named.gpu is GPUS["a100-80g"] and measured.gpu.peak_tflops == 500.0
    assert measured.step_seconds == pytest.approx(named.step_flops / (32 * 500e12 * 0.35))
    assert measured.sampling.step_seconds["none"] == pytest.approx(
        measured.sampling.step_flops / (500e12 * 0.35)
    )


@pytest.mark.parametrize(
    "frames, checkpointing", [(5, False), (9, False), (5, True), (49, True), (49, False)]
)
def test_one_gpu_setting_predicts_one_step_of_that_clip(frames, checkpointing):
    """The check's settings: clip length and checkpointing set in the config, batch 1 on one GPU."""
    config = load_config(None, [f"data.num_frames={frames}", f"model.gradient_checkpointing={str(checkpointing).lower()}",
                                "train.batch_size=1", "train.micro_batch_size=1"])  # fmt: skip
    p = plan(config, gpus=1, gpu="h200")
    L = ((frames - 1) // 4 + 1) * 30 * 90  # 480 × 720 → 30 × 90 tokens per latent frame, both halves
    assert p.tokens.length == L
    stream, block = 2 * L * D, 2 * L * (22 * D + FFN)
    m = p.memory
    assert (m.base_weights, m.gathered, m.adapter) == (2 * p.parameters.base, 0, 16 * p.parameters.trainable)
    assert m.activations == (N * stream + block if checkpointing else N * block) + 3 * stream
    assert p.step_flops == p.flops.train == count_flops(config, p.tokens).train
    assert p.step_seconds == pytest.approx(p.step_flops / (989e12 * 0.35))


@pytest.mark.parametrize("guidance, passes", [(5.0, 2), (1.0, 1)])
def test_sampling_step_is_one_forward_per_dit_pass(guidance, passes):
    p = plan(load_config(None, [f"sampling.guidance={guidance}"]), gpus=1, gpu="h200")
    assert p.sampling.passes == passes
    assert p.sampling.step_flops == passes * p.flops.forward
    assert p.sampling.step_seconds["none"] == p.sampling.step_seconds["model"]


@pytest.mark.parametrize("guidance", [5.0, 1.0])
def test_sampling_step_flops_equal_torch_flop_counter_over_generate_6d(guidance):
    """One more sampling step of `generate_6d` costs exactly the plan's step FLOPs (encoders cancel out)."""
    config = small_config(f"sampling.guidance={guidance}")
    p = plan(config, gpus=1, gpu="h200")
    model = build_model(config, count_tokens(config).latent[0]).eval()
    autoencoder, encoders = build_autoencoder(config), build_encoders(config)
    image = torch.rand(3, config.data.height, config.data.width) * 2 - 1

    def flops(steps: int) -> int:
        sampling = SamplingConfig(
            frames=config.data.num_frames, steps=steps, guidance=guidance, scheduler="euler"
        )
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            generate_6d(model, autoencoder, encoders, image, "a prompt", sampling)
        return counter.get_total_flops()

    assert flops(3) - flops(2) == p.sampling.step_flops


def test_sequential_offload_moves_the_dit_in_and_out_on_every_pass():
    s, dit = full_plan().sampling, full_plan().inference.components["transformer"]
    assert s.transfer_bytes == {"none": 0, "model": 0, "sequential": 2 * 2 * dit}  # 2 passes × (in + out)
    compute = s.step_flops / (312e12 * 0.35)
    assert s.step_seconds["none"] == pytest.approx(compute)
    assert s.step_seconds["sequential"] == pytest.approx(compute + 4 * dit / (HOST_LINK_GBPS * GB))


def test_denoising_peak_is_the_dit_phase_of_each_offload_modes_peak():
    inference, counts = full_plan().inference, full_plan().parameters
    W = inference.working_set
    assert inference.denoising == {
        "none": sum(inference.components.values()) + W,
        "model": inference.components["transformer"] + W,
        "sequential": 2 * counts.block + W,
    }
    assert all(inference.denoising[mode] <= inference.modes[mode] for mode in inference.modes)


def test_table_shows_generation_time_per_sampling_step():
    table = format_plan(full_plan())
    assert "generation time per sampling step, one a100-80g (batch 1, 2 DiT passes)" in table
    assert "offload=sequential" in table and "host traffic" in table


def test_the_plan_command_assumes_the_papers_32_gpus_for_its_run_and_one_for_the_tiny_preset():
    for arguments, first in ((["plan"], "32 × a100-80g"), (["plan", "--tiny"], "1 × a100-80g")):
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == 0 and result.output.startswith(first), result.output
    result = CliRunner().invoke(app, ["plan", "--tiny", "--gpus", "4"])
    assert result.exit_code == 0 and result.output.startswith("4 × a100-80g")
