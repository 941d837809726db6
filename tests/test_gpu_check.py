"""The GPU check (benchmarks/gpu_check.py) runs its whole code path at tiny size on the CPU, so it is known to run
before a GPU sees it; its results stand beside the plan's prediction for the very same setting.

Spec: specs/plan.md
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from functools import cache
from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend

from nanofourdnex.config import SamplingConfig, load_config
from nanofourdnex.generate import OFFLOAD_MODES
from nanofourdnex.tools.plan import (
    CLIP_VIT_H_VISION_PARAMS,
    GB,
    UMT5_XXL_ENCODER_PARAMS,
    WAN_VAE_PARAMS,
    Gpu,
    count_parameters,
    count_tokens,
    plan,
)

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
TOP_KEYS = {"device", "preset", "versions", "plan_mfu", "plan_host_link_gbps", "rows", "throughput", "attention",
            "mfu", "seconds", "failures"}  # fmt: skip
ROW_KEYS = {"part", "setting", "quantity", "unit", "measured", "plan", "ratio", "status", "note", "detail"}
MFU_KEYS = {"part", "setting", "flops", "seconds", "tflops", "mfu", "fraction_of_matmul"}


@cache
def gpu_check():
    """The script as a module (benchmarks/ is no package)."""
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def run(tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "results.json"
    code = gpu_check().main(["--device", "cpu", "--tiny", "--out", str(out), *args])
    return code, json.loads(out.read_text())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    code, results = run(tmp_path_factory.mktemp("gpu_check"))
    assert code == 0, results["failures"]
    return results


def rows(results: dict, part: str, quantity: str) -> list[dict]:
    return [r for r in results["rows"] if r["part"] == part and r["quantity"] == quantity]


def test_tiny_run_measures_every_setting_beside_a_finite_plan(tiny):
    assert set(tiny) == TOP_KEYS and tiny["failures"] == [] and tiny["preset"] == "tiny"
    settings = gpu_check().training_settings(load_config("tiny").data.num_frames)
    assert len(rows(tiny, "train", "step time")) == len(settings) == 4
    assert len(rows(tiny, "generate", "time per sampling step")) == len(OFFLOAD_MODES)
    for row in tiny["rows"]:
        assert set(row) == ROW_KEYS and row["status"] == "measured"
        assert row["measured"] > 0 and row["plan"] > 0 and row["unit"] in ("GB", "s")
        assert math.isfinite(row["ratio"]) and row["ratio"] == pytest.approx(row["measured"] / row["plan"])


def test_every_plan_figure_is_the_plan_of_the_measured_setting(tiny):
    """Like for like: a training row's plan is `plan()` of that clip, batch 1, on one GPU of the measured peak."""
    device = tiny["device"]
    gpu = Gpu(device["plan_gpu"], device["peak_tflops"], device["memory_gb"])
    for memory, time in zip(
        rows(tiny, "train", "peak memory"), rows(tiny, "train", "step time"), strict=True
    ):
        detail = memory["detail"]
        config = gpu_check().setting_config("tiny", detail["frames"], detail["checkpointing"])
        p = plan(config, gpus=1, gpu=gpu, mfu=tiny["plan_mfu"])
        assert detail["tokens"] == count_tokens(config).length
        assert memory["plan"] == pytest.approx(p.memory.total / GB)
        assert p.memory.gathered == 0  # one GPU: nothing sharded
        assert time["plan"] == pytest.approx(p.step_seconds)
    release_guidance = f"sampling.guidance={SamplingConfig().guidance}"  # generation is measured at it
    p = plan(load_config("tiny", [release_guidance]), gpus=1, gpu=gpu, mfu=tiny["plan_mfu"])
    for mode in OFFLOAD_MODES:
        (row,) = [
            r for r in rows(tiny, "generate", "time per sampling step") if f"offload={mode}" in r["setting"]
        ]
        assert row["plan"] == pytest.approx(p.sampling.step_seconds[mode])


def test_gradient_checkpointing_lowers_the_measured_peak_as_the_plan_says(tiny):
    peaks = {
        (r["detail"]["frames"], r["detail"]["checkpointing"]): r for r in rows(tiny, "train", "peak memory")
    }
    for frames in (5, 9):
        with_, without = peaks[frames, True], peaks[frames, False]
        assert with_["measured"] < without["measured"] and with_["plan"] < without["plan"]
    assert peaks[9, False]["measured"] > peaks[5, False]["measured"]  # more tokens, more activations


def test_tiny_training_memory_is_within_a_factor_two_of_the_plan(tiny):
    """The plan's activation constants hold at tiny size too (bf16 storage, counted by LiveBytes)."""
    for row in rows(tiny, "train", "peak memory"):
        assert 0.5 < row["ratio"] < 2, row


def test_generation_peaks_and_passes(tiny):
    for row in rows(tiny, "generate", "peak memory"):
        phases = row["detail"]["phase_peaks_gb"]
        assert set(phases) == {"before the DiT", "denoising", "after the DiT"}
        assert row["measured"] == pytest.approx(max(phases.values()))
        assert len(row["detail"]["pass_seconds"]) == 2 * 2  # 2 steps × (conditional, unconditional)
    denoising = rows(tiny, "generate", "peak while the DiT denoises")
    assert all(
        r["measured"] <= p["measured"]
        for r, p in zip(denoising, rows(tiny, "generate", "peak memory"), strict=True)
    )


def test_mfu_attention_and_throughput_are_reported(tiny):
    assert len(tiny["mfu"]) == 4 + len(OFFLOAD_MODES)  # every timed setting
    for m in tiny["mfu"]:
        assert set(m) == MFU_KEYS
        assert m["tflops"] == pytest.approx(m["flops"] / m["seconds"] / 1e12)
        assert 0 < m["mfu"] and math.isfinite(m["fraction_of_matmul"])
    attention = tiny["attention"]
    assert attention["backend_seen"] == "FLASH_ATTENTION"  # torch's CPU flash kernel
    assert any("scaled_dot_product" in k for k in attention["kernels_seen"])
    assert {attention["choice_training"], attention["choice_generation"]} <= set(SDPBackend.__members__) - {
        "ERROR"
    }
    assert tiny["throughput"]["matmul_tflops"] > 0 and tiny["throughput"]["host_to_device_gbps"] is None
    assert tiny["device"]["peak_tflops"] == tiny["throughput"]["matmul_tflops"]  # a CPU has no plan.GPUS row
    assert set(tiny["seconds"]) == {"throughput", "train", "generate", "total"}


def test_the_output_table_lists_every_row_with_its_ratio(tmp_path, capsys):
    run(tmp_path, "--parts", "train", "--memory-limit-gb", "1e-9")  # every setting skipped: a quick run
    printed = capsys.readouterr().out
    assert "| part | setting | quantity | measured | plan | measured/plan |" in printed
    assert printed.count("| train |") == 2 * 4 and "skipped: plan needs" in printed


def test_a_setting_the_plan_says_cannot_fit_is_skipped_with_a_note(tmp_path):
    config = gpu_check().setting_config
    needs = sorted(
        plan(config("tiny", f, c), gpus=1, gpu="h200").memory.total for f, c in [(5, False), (9, False)]
    )
    limit = (needs[0] + needs[1]) / 2 / gpu_check().FIT  # 5 frames fit, 9 frames do not
    code, results = run(tmp_path, "--parts", "train", "--memory-limit-gb", str(limit / GB))
    assert code == 0 and results["failures"] == []
    skipped = [r for r in results["rows"] if r["status"] == "skipped"]
    assert {r["setting"] for r in skipped} == {"9 × 16 × 24 (L 576), no checkpointing"}
    assert all(r["measured"] is None and r["plan"] > 0 and "plan needs" in r["note"] for r in skipped)
    assert any(r["status"] == "measured" for r in results["rows"])


def test_out_of_memory_is_a_result_and_any_other_error_a_failure(tmp_path, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(gpu_check(), "train_step", out_of_memory)
    code, results = run(tmp_path, "--parts", "train")
    assert code == 0 and {r["status"] for r in results["rows"]} == {"out of memory"}
    assert all("Tried to allocate" in r["note"] for r in results["rows"])

    def broken(*args, **kwargs):
        raise RuntimeError("a real bug")

    monkeypatch.setattr(gpu_check(), "train_step", broken)
    code, results = run(tmp_path, "--parts", "train")
    assert code == 1 and len(results["failures"]) == 4  # each setting failed, and each was still tried
    assert all("a real bug" in f["error"] and f["part"] == "train" for f in results["failures"])


def test_full_size_networks_build_with_the_real_shapes_in_the_pipelines_dtypes():
    """On meta: the same builders that allocate on the GPU; sizes are the plan's counts."""
    check, meta = gpu_check(), torch.device("meta")
    config = check.setting_config(None, 49, True)
    model = check.training_model(config, meta)
    counts = count_parameters(config)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert {p.dtype for p in frozen} == {torch.bfloat16} and sum(p.numel() for p in frozen) == counts.base
    assert {p.dtype for p in model.trainable_parameters()} == {torch.float32}
    assert sum(p.numel() for p in model.trainable_parameters()) == counts.trainable
    inference = check.generation_networks(load_config(None, ["model.gradient_checkpointing=false"]), meta)
    assert {p.dtype for p in inference.model.parameters()} == {torch.bfloat16}
    encoders = inference.encoders
    for network, params in ((encoders.text_encoder, UMT5_XXL_ENCODER_PARAMS),
                            (encoders.image_encoder, CLIP_VIT_H_VISION_PARAMS)):  # fmt: skip
        assert {p.dtype for p in network.parameters()} == {torch.bfloat16}
        assert sum(p.numel() for p in network.parameters()) == params
    assert {p.dtype for p in inference.autoencoder.parameters()} == {
        torch.float32
    }  # `place` keeps the VAE fp32
    assert sum(p.numel() for p in inference.autoencoder.parameters()) == WAN_VAE_PARAMS


def test_the_random_wan_vae_encodes_and_decodes_finitely():
    """to_empty leaves no garbage the VAE reads: a random Wan VAE maps a video to finite latents and back."""
    torch.manual_seed(0)
    autoencoder = gpu_check().generation_autoencoder(load_config(), torch.device("cpu"))
    with torch.no_grad():
        latent = autoencoder.encode_rgb(torch.rand(1, 3, 5, 32, 32) * 2 - 1)
        video = autoencoder.decode_xyz(latent)
    assert latent.shape == (1, 16, 2, 4, 4) and video.shape == (1, 3, 5, 32, 32)
    assert torch.isfinite(latent).all() and torch.isfinite(video).all()


def test_live_bytes_counts_each_storage_once_until_it_is_freed():
    with gpu_check().LiveBytes(torch.device("cpu")) as live:
        a = torch.zeros(1000)  # 4,000 bytes
        view = a[:10].view(2, 5)  # shares a's storage
        b = a + 1
        assert live.allocated == 8000
        del a, view, b
        assert live.allocated == 0 and live.peak == 8000
        torch.zeros(10, device="meta")  # another device: not counted
        assert live.peak == 8000


def test_training_settings_run_short_clips_first_and_the_whole_clip_last():
    settings = gpu_check().training_settings
    assert settings(49) == [(5, False), (9, False), (5, True), (49, True), (49, False)]
    assert settings(9) == [(5, False), (9, False), (5, True), (9, True)]


@pytest.mark.parametrize(
    "name, memory_gb, row",
    [
        ("NVIDIA H200", 150.7, "h200"),
        ("NVIDIA H100 80GB HBM3", 85.0, "h100-80g"),
        ("NVIDIA A100-SXM4-40GB", 42.4, "a100-40g"),
        ("NVIDIA A100-SXM4-80GB", 85.1, "a100-80g"),
        ("NVIDIA L40S", 48.3, "l40s"),
        ("NVIDIA GeForce RTX 4090", 25.4, "rtx4090"),
        ("NVIDIA B200", 191.5, None),  # no row: the check uses its measured matmul rate as the peak
    ],
)
def test_gpu_names_map_to_the_plans_rows(name, memory_gb, row):
    assert gpu_check().gpu_row(name, memory_gb) == row
