"""GPU check: the full-size path measured against `nano4d plan`, in one short run on one GPU (§5.1).

Run from the repository root (`make gpu-check` runs the first line):

    python benchmarks/gpu_check.py                                         # one CUDA GPU: about 4 min on an H200
    OMP_NUM_THREADS=1 python benchmarks/gpu_check.py --device cpu --tiny   # the same code at CPU size: seconds

Where the project is not installed, `PYTHONPATH=.` makes `nanofourdnex` importable; the script needs the
project's torch, diffusers, peft and transformers, nothing else (no weights, no data).

Every full-scale figure in the README is the plan's (`nanofourdnex/tools/plan.py`). This script measures
the settings below on one device and prints each beside the plan's prediction for exactly that setting:
the same config goes through `plan(config, gpus=1, gpu=...)`.

1. throughput: a bf16 matrix product (the attainable ceiling), pageable host ↔ device copies (the plan's
   HOST_LINK_GBPS), and the attention kernel SDPA runs;
2. train: one step of `nano4d train` (`train.training_step`, gradient clipping, AdamW) of the preset's
   DiT + LoRA on one device, batch 1: short clips (5 and 9 frames) without gradient checkpointing, 5
   frames with it, the whole clip (49 × 480 × 720, L = 35,100) with it, and without it if memory allows;
   peak memory and step time;
3. generate: `generate_6d` at the release size (49 × 480 × 720) for a few sampling steps under each of
   --offload none, model, sequential (`generate.place`): peak memory, the peak while the DiT denoises,
   and time per sampling step.

Weights. Nothing is downloaded: each network is built on the meta device with its real shapes (the DiT
with its LoRA, UMT5-XXL, CLIP ViT-H/14, the Wan VAE), allocated on the device directly in the dtypes the
code uses (training: frozen DiT bf16, adapters fp32, as FSDP stores them; generation: DiT and encoders
bf16, VAE fp32, as `place` casts them) and filled with N(0, 0.02²). Values do not matter for memory or
time, but every loss and video must come out finite. The prompt is tokenised byte-wise (ByT5), as the
UMT5 vocabulary file is not here.

Measuring. Peak memory is `torch.cuda.max_memory_allocated` over the timed step, reset just before it;
the first setting takes one untimed warm-up step, so AdamW's state exists as in a real run, and the
first of each mode's sampling steps is not timed. On the CPU, `LiveBytes` counts the bytes of live tensor
storages instead. Time is wall time between device synchronisations.
A setting the plan says needs more than 90 % of the device's memory is skipped with a note, and so is
one not started before --deadline-s; an out-of-memory error is recorded as a result; any other error
is a failure: the other settings still run, and the script exits with 1.

Output: a markdown table (part | setting | quantity | measured | plan | measured/plan), the attention
kernels, the matmul ceiling and host link, the MFU of every timed setting, the time each part took;
and the same as JSON (--out; its keys are listed in specs/plan.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import json
import math
import os
import platform
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn.attention import SDPBackend
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from nanofourdnex.autoencoder import SixDAutoencoder, WanAutoencoder, build_autoencoder
from nanofourdnex.conditioning import Encoders, build_encoders, tiny_image_processor
from nanofourdnex.config import Config, SamplingConfig, load_config
from nanofourdnex.distributed import build_meta_model, recompute_rope
from nanofourdnex.generate import OFFLOAD_MODES, Inference, generate_6d, place
from nanofourdnex.model import FourDNeX, build_model
from nanofourdnex.tools.plan import (
    GB,
    GPUS,
    HOST_LINK_GBPS,
    Gpu,
    count_tokens,
    latent_size,
    plan,
    uses_wan_encoders,
)
from nanofourdnex.train import batch_loss, make_optimizer, training_step

FIT = 0.9  # a setting runs when the plan needs at most this fraction of the device's memory
INIT_STD = 0.02  # random weights: N(0, 0.02²); values do not matter for memory and time
PROMPT = "a dancer turns on a wooden stage"
PARTS = ("train", "generate")


# --- Measuring: peak memory and synchronised time on one device ---


class LiveBytes(TorchDispatchMode):
    """The CPU's stand-in for CUDA's allocator statistics: bytes of live tensor storages on one device, and their peak.

    Every storage an aten op returns is counted once (views share it) until Python frees it.
    """

    def __init__(self, device: torch.device):
        super().__init__()
        self.device = device
        self.sizes: dict[int, int] = {}
        self.allocated = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and tensor.device == self.device:
                self._count(tensor.untyped_storage())
        return out

    def _count(self, storage: torch.UntypedStorage) -> None:
        key = id(storage)  # torch keeps one Python object per live storage
        if key in self.sizes:
            return
        self.sizes[key] = storage.nbytes()
        self.allocated += self.sizes[key]
        self.peak = max(self.peak, self.allocated)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.allocated -= self.sizes.pop(key)


class Meter:
    """Peak memory, capacity and synchronised wall time on one device (CUDA's allocator, or `LiveBytes` on the CPU)."""

    def __init__(self, device: torch.device, memory_limit: float | None = None):
        self.device = device
        self.cuda = device.type == "cuda"
        self.live = None if self.cuda else LiveBytes(device)
        self.memory_limit = memory_limit

    def __enter__(self) -> Meter:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def reset_peak(self) -> None:
        self.sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.live.peak = self.live.allocated

    def peak(self) -> float:
        self.sync()
        return float(torch.cuda.max_memory_allocated(self.device) if self.cuda else self.live.peak)

    def capacity(self) -> float:
        """Bytes this process could hold on the device: what it holds now plus what is free (or --memory-limit-gb)."""
        if self.memory_limit is not None:
            return self.memory_limit
        if self.cuda:
            free, _ = torch.cuda.mem_get_info(self.device)
            return float(free + torch.cuda.memory_reserved(self.device))
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") + self.live.allocated)

    def free_cache(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()


class AttentionKernels(TorchDispatchMode):
    """The fused attention kernels aten runs inside the block; none seen means SDPA's math fallback."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if "scaled_dot_product" in name:
            self.seen.add(name)
        return func(*args, **(kwargs or {}))


def backend_of(kernels: set[str]) -> str:
    """SDPA's backend from the aten ops it ran (`_scaled_dot_product_flash_attention`, …); none: the math path."""
    markers = (
        ("cudnn", "CUDNN_ATTENTION"),
        ("efficient", "EFFICIENT_ATTENTION"),
        ("flash", "FLASH_ATTENTION"),
    )
    for marker, backend in markers:
        if any(marker in kernel for kernel in kernels):
            return backend
    return "MATH"


def sdpa_choice(config: Config, length: int, device: torch.device, requires_grad: bool) -> str:
    """The backend SDPA dispatches to for the DiT's self-attention, (1, heads, L, head_dim) in bf16."""
    model = config.model
    shape = (1, model.num_attention_heads, length, model.attention_head_dim)
    q = torch.empty(shape, device=device, dtype=torch.bfloat16, requires_grad=requires_grad)
    return SDPBackend(torch._fused_sdp_choice(q, q, q)).name


# --- The report: each measured quantity beside the plan's, the MFU, the table and the JSON ---


@dataclass
class Setting:
    """One thing measured: its part, a label, what the plan says it needs on the device, and its predictions."""

    part: str  # "train" or "generate"
    label: str
    needs: float  # bytes, the plan's peak
    planned: dict[str, tuple[str, float]]  # quantity → (unit, the plan's figure)
    flops: float  # per timed unit (a training step, a sampling step), the plan's exact count


@dataclass
class Row:
    """One quantity of one setting: measured beside the plan's prediction for the same setting."""

    part: str
    setting: str
    quantity: str  # "peak memory", "peak while the DiT denoises", "step time", "time per sampling step"
    unit: str  # "GB" or "s"
    measured: float | None
    plan: float
    status: str = "measured"  # or "skipped", "out of memory"
    note: str = ""
    detail: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return None if self.measured is None or not self.plan else self.measured / self.plan


@dataclass
class Report:
    device: dict
    preset: str
    mfu: float
    rows: list[Row] = field(default_factory=list)
    throughput: dict = field(default_factory=dict)
    attention: dict = field(default_factory=dict)
    mfu_rows: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def say(self, text: str) -> None:
        print(f"[{self.elapsed():5.0f} s] {text}", flush=True)

    def record(self, setting: Setting, measured: dict[str, float], detail: dict) -> None:
        """The setting's rows, and the achieved TFLOP/s of its timed quantity (the plan's FLOPs over the time)."""
        for quantity, (unit, predicted) in setting.planned.items():
            self.rows.append(Row(setting.part, setting.label, quantity, unit, measured[quantity], predicted,
                                 detail=detail))  # fmt: skip
        seconds = next(measured[q] for q, (unit, _) in setting.planned.items() if unit == "s")
        tflops = setting.flops / seconds / 1e12
        ceiling = self.throughput["matmul_tflops"]
        self.mfu_rows.append({
            "part": setting.part, "setting": setting.label, "flops": setting.flops, "seconds": seconds,
            "tflops": tflops, "mfu": tflops / self.device["peak_tflops"], "fraction_of_matmul": tflops / ceiling,
        })  # fmt: skip
        self.say(f"{setting.label}: " + ", ".join(f"{q} {v:.3g} {setting.planned[q][0]} (plan "
                                                   f"{setting.planned[q][1]:.3g})" for q, v in measured.items()))  # fmt: skip

    def skip(self, setting: Setting, status: str, note: str) -> None:
        for quantity, (unit, predicted) in setting.planned.items():
            self.rows.append(Row(setting.part, setting.label, quantity, unit, None, predicted, status, note))
        self.say(f"{setting.label}: {status}: {note}")

    def fail(self, part: str, label: str, error: str) -> None:
        self.failures.append({"part": part, "setting": label, "error": error})
        self.say(f"{label}: FAILED\n{error}")

    def to_json(self) -> dict:
        return {
            "device": self.device, "preset": self.preset, "versions": versions(), "plan_mfu": self.mfu,
            "plan_host_link_gbps": HOST_LINK_GBPS, "rows": [{**dataclasses.asdict(r), "ratio": r.ratio} for r in self.rows],
            "throughput": self.throughput, "attention": self.attention, "mfu": self.mfu_rows, "seconds": self.seconds,
            "failures": self.failures,
        }  # fmt: skip


def versions() -> dict[str, str]:
    import diffusers
    import peft
    import transformers

    return {
        "python": platform.python_version(), "torch": torch.__version__, "cuda": str(torch.version.cuda),
        "diffusers": diffusers.__version__, "peft": peft.__version__, "transformers": transformers.__version__,
    }  # fmt: skip


def measure_setting(report: Report, meter: Meter, setting: Setting, deadline: float,
                    measure: Callable[[], tuple[dict[str, float], dict]]) -> None:  # fmt: skip
    """Run `measure` unless time is up or the plan needs more than FIT of the memory.

    Out of memory is a result (a row saying so); any other error a failure, and the run goes on.
    """
    if report.elapsed() > deadline:
        return report.skip(setting, "skipped", f"not started: past --deadline-s {deadline:g}")
    capacity = meter.capacity()
    if setting.needs > FIT * capacity:
        note = f"plan needs {setting.needs / GB:.3g} GB > {FIT:.0%} of {capacity / GB:.3g} GB"
        return report.skip(setting, "skipped", note)
    out_of_memory = None
    try:
        report.record(setting, *measure())
    except torch.OutOfMemoryError as error:
        out_of_memory = str(error).splitlines()[0]
    except Exception:
        report.fail(setting.part, setting.label, traceback.format_exc())
    meter.free_cache()  # the failed step's tensors went with the exception
    if out_of_memory is not None:
        report.skip(setting, "out of memory", out_of_memory)


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def format_report(report: Report) -> str:
    """The markdown tables and summary lines the script prints (the JSON holds the same)."""
    d, t, a = report.device, report.throughput, report.attention
    lines = [
        f"GPU check on {d['name']} ({report.preset} preset); the plan for one {d['plan_gpu']}: peak "
        f"{d['peak_tflops']:.4g} TFLOP/s ({d['peak_source']}), MFU {report.mfu:g}, host link {HOST_LINK_GBPS:g} GB/s",
        "",
        "| part | setting | quantity | measured | plan | measured/plan |",
        "|---|---|---|---|---|---|",
    ]
    for r in report.rows:
        measured = _number(r.measured) if r.measured is not None else f"{r.status}: {r.note}"
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "—"
        lines.append(
            f"| {r.part} | {r.setting} | {r.quantity} ({r.unit}) | {measured} | {_number(r.plan)} | {ratio} |"
        )
    lines += ["", "| part | setting | FLOP | time (s) | TFLOP/s | MFU | of the matmul ceiling |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for m in report.mfu_rows:
        lines.append(f"| {m['part']} | {m['setting']} | {m['flops']:.3g} | {m['seconds']:.3g} | {m['tflops']:.3g} | "
                     f"{m['mfu']:.2f} | {m['fraction_of_matmul']:.2f} |")  # fmt: skip
    lines.append("")
    if "backend_seen" in a:
        kernels = ", ".join(a["kernels_seen"]) or "no fused kernel"
        lines.append(f"attention in the training step: {a['backend_seen']} ({kernels})")
    lines.append(f"SDPA's choice at L = {a['length']:,}: training {a['choice_training']}, "
                 f"generation {a['choice_generation']}")  # fmt: skip
    lines.append(f"matmul: {t['matmul_tflops']:.4g} TFLOP/s bf16 ({t['matmul_n']}³), "
                 f"{t['matmul_tflops'] / d['peak_tflops']:.0%} of the plan's peak")  # fmt: skip
    if t["host_to_device_gbps"] is not None:
        lines.append(f"host link (pageable, 1 GB): {t['host_to_device_gbps']:.3g} GB/s to the device, "
                     f"{t['device_to_host_gbps']:.3g} GB/s back; the plan assumes {HOST_LINK_GBPS:g}")  # fmt: skip
    lines.append("part times: " + ", ".join(f"{part} {s:.1f} s" for part, s in report.seconds.items()))
    lines += [
        f"FAILED {f['part']} {f['setting']}: {f['error'].strip().splitlines()[-1]}" for f in report.failures
    ]
    return "\n".join(lines)


# --- Building the real shapes with random values, directly on the device ---


@torch.no_grad()
def materialise(module: nn.Module, device: torch.device, dtype: torch.dtype | None = None) -> None:
    """Allocate a meta-built module on `device` (cast to `dtype` first, still on meta) and fill it with N(0, 0.02²).

    Buffers are left uninitialised: the caller refills the non-persistent ones (the DiT's RoPE tables,
    CLIP's position ids), which no state dict carries.
    """
    if dtype is not None:
        module.to(dtype=dtype)
    module.to_empty(device=device)
    for parameter in module.parameters():
        parameter.normal_(0.0, INIT_STD)


def training_model(config: Config, device: torch.device) -> FourDNeX:
    """The preset's FourDNeX as FSDP stores it (frozen base bf16, LoRA and e_RGB, e_XYZ fp32), random, on `device`."""
    model = build_meta_model(config, latent_size(config)[0])
    materialise(model, device)
    recompute_rope(model)
    return model.train()


def wan_encoders_on_meta() -> tuple[nn.Module, nn.Module]:
    """UMT5-XXL's encoder and CLIP ViT-H/14's vision tower, Wan2.1-I2V's text and image encoders, on meta."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    with torch.device("meta"):
        text = UMT5EncoderModel(UMT5Config(vocab_size=256_384, d_model=4096, d_kv=64, d_ff=10_240, num_layers=24,
                                           num_heads=64, feed_forward_proj="gated-gelu"))  # fmt: skip
        image = CLIPVisionModel(CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                                                 num_attention_heads=16, image_size=224, patch_size=14))  # fmt: skip
    return text.eval().requires_grad_(False), image.eval().requires_grad_(False)


def generation_encoders(config: Config, device: torch.device) -> Encoders:
    """The configured text and image encoders, random, bf16 on `device`; for UMT5-XXL a byte-level tokenizer."""
    from transformers import ByT5Tokenizer

    cond = config.conditioning
    if uses_wan_encoders(config):
        text, image = wan_encoders_on_meta()
        encoders = Encoders(ByT5Tokenizer(extra_ids=0), text, image, tiny_image_processor(224), cond.text_len,
                            cond.prompt_suffix)  # fmt: skip
    else:
        encoders = build_encoders(config, meta=True)
    materialise(encoders.text_encoder, device, torch.bfloat16)
    materialise(encoders.image_encoder, device, torch.bfloat16)
    for name, positions in encoders.image_encoder.named_buffers():  # non-persistent: lost by to_empty
        if name.endswith("position_ids"):
            positions.copy_(torch.arange(positions.shape[-1], device=device).expand_as(positions))
    return encoders


def generation_autoencoder(config: Config, device: torch.device) -> SixDAutoencoder:
    """The Wan2.1 VAE (`AutoencoderKLWan()`'s defaults are its configuration), random, fp32 on `device`; or the stand-in."""
    ae = config.autoencoder
    if ae.kind != "wan":
        return build_autoencoder(config)  # the parameter-free pixel stand-in
    from diffusers import AutoencoderKLWan

    with torch.device("meta"):
        vae = AutoencoderKLWan()
    materialise(vae.eval().requires_grad_(False), device)
    return SixDAutoencoder(WanAutoencoder(vae), ae.xyz_mean, ae.xyz_std)


def generation_networks(config: Config, device: torch.device) -> Inference:
    """Everything `generate_6d` needs, at the config's full shapes with random weights, on `device`."""
    model = build_model(config, latent_size(config)[0], meta=True)
    materialise(model, device, torch.bfloat16)  # as `place` casts it on a GPU
    recompute_rope(model)
    autoencoder = generation_autoencoder(config, device)
    return Inference(config, model.eval(), autoencoder, generation_encoders(config, device), device)


# --- Part 1: throughput ---


def measure_throughput(report: Report, meter: Meter, config: Config) -> None:
    """bf16 matmul ceiling, pageable host ↔ device copy rates, and SDPA's backend choice at the clip's length."""
    device = meter.device
    n, repeats = (8192 if meter.cuda else 256), 10
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    meter.sync()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    meter.sync()
    seconds = (time.perf_counter() - start) / repeats
    report.throughput = {"matmul_n": n, "matmul_tflops": 2 * n**3 / seconds / 1e12,
                         "host_to_device_gbps": None, "device_to_host_gbps": None}  # fmt: skip
    if meter.cuda:
        host = torch.ones(int(GB), dtype=torch.uint8)  # 1 GB, pageable: as `place` and group offloading copy
        to_device, to_host = [], []
        for _ in range(3):
            meter.sync()
            start = time.perf_counter()
            on = host.to(device)
            meter.sync()
            to_device.append(1 / (time.perf_counter() - start))
            start = time.perf_counter()
            on.to("cpu")
            meter.sync()
            to_host.append(1 / (time.perf_counter() - start))
        report.throughput |= {"host_to_device_gbps": max(to_device), "device_to_host_gbps": max(to_host)}
    length = count_tokens(config).length
    report.attention |= {
        "length": length,
        "choice_training": sdpa_choice(config, length, device, requires_grad=True),
        "choice_generation": sdpa_choice(config, length, device, requires_grad=False),
    }


def gpu_row(name: str, memory_gb: float) -> str | None:
    """The plan.GPUS row of a CUDA device by its name (`torch.cuda.get_device_name`); None if the plan has none."""
    a100 = "a100-80g" if memory_gb > 50 else "a100-40g"
    rows = (("h200", "h200"), ("h100", "h100-80g"), ("a100", a100), ("l40s", "l40s"), ("4090", "rtx4090"))
    return next((key for marker, key in rows if marker in name.lower()), None)


def plan_gpu(meter: Meter, name: str, row: str | None, matmul_tflops: float) -> tuple[Gpu, str]:
    """The plan's GPU for this device: its plan.GPUS row (--gpu, or by name), else one with the measured matmul peak."""
    if row is None and meter.cuda:
        row = gpu_row(name, torch.cuda.get_device_properties(meter.device).total_memory / GB)
    if row is not None:
        return GPUS[row], f"plan.GPUS[{row!r}]: dense bf16, data sheet"
    return Gpu(name, matmul_tflops, meter.capacity() / GB), "the measured bf16 matmul: no plan.GPUS row"


# --- Part 2: training steps ---


def training_settings(frames: int) -> list[tuple[int, bool]]:
    """(frames, gradient checkpointing) in the order they run: short clips first, the whole clip last."""
    wanted = [(5, False), (9, False), (5, True), (frames, True), (frames, False)]
    return list(dict.fromkeys((f, c) for f, c in wanted if f <= frames))


def setting_config(preset: str | None, frames: int, checkpointing: bool) -> Config:
    """The preset at `frames` per clip, one sample per step, bf16 autocast: one measured setting, as the plan reads it."""
    return load_config(preset, ['model.model_dir=""',
        f"data.num_frames={frames}", f"model.gradient_checkpointing={str(checkpointing).lower()}",
        "train.batch_size=1", "train.micro_batch_size=1", "train.bf16=true",
    ])  # fmt: skip


class OneClip:
    """A latent cache of one random clip at the setting's shapes (those `cache.encode_sample` writes)."""

    def __init__(self, config: Config):
        tokens, model = count_tokens(config), config.model
        generator = torch.Generator().manual_seed(0)

        def randn(*shape: int) -> torch.Tensor:
            return torch.randn(shape, generator=generator)

        self.entry = {
            "rgb": randn(*tokens.latent),  # (z, f, h, w)
            "xyz": randn(*tokens.latent),
            "cond": randn(*tokens.fused[1:]),  # (z, f, h, 2w) for width fusion
            "text": randn(tokens.text, model.text_dim),
            "image": randn(tokens.image, model.image_dim),
        }

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.entry

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        return {k: torch.stack([v] * len(indices)) for k, v in self.entry.items()}


def train_step(model: FourDNeX, optimizer, scheduler, data: OneClip, config: Config, step: int) -> float:
    """The body of `train.train`'s loop: one global batch, clipping, AdamW, schedule; the loss must be finite."""
    optimizer.zero_grad(set_to_none=True)
    device = next(model.parameters()).device
    loss = training_step(
        functools.partial(batch_loss, model), model.strategy, data, config, step, device
    ).item()
    torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), config.train.grad_clip)
    optimizer.step()
    scheduler.step()
    if not math.isfinite(loss):
        raise FloatingPointError(f"training step {step} gave loss {loss}")
    return loss


def measure_training(report: Report, meter: Meter, preset: str | None, gpu: Gpu, repeats: int,
                     deadline: float) -> None:  # fmt: skip
    """`repeats` timed steps per setting, each beside the plan of that setting on one GPU.

    The first setting that runs takes one untimed step before (CUDA's kernels and handles, AdamW's state);
    the later ones reuse the same model and optimiser, so their first step is already a steady one.
    """
    clip_frames = load_config(preset, ['model.model_dir=""']).data.num_frames
    base = setting_config(preset, clip_frames, True)
    model = training_model(base, meter.device)
    optimizer, scheduler = make_optimizer(model.trainable_parameters(), base.train)
    kernels, cold = AttentionKernels(), True
    for frames, checkpointing in training_settings(clip_frames):
        config = setting_config(preset, frames, checkpointing)
        p = plan(config, gpus=1, gpu=gpu, mfu=report.mfu)
        data = config.data
        label = (f"{frames} × {data.height} × {data.width} (L {p.tokens.length:,}), "
                 f"{'' if checkpointing else 'no '}checkpointing")  # fmt: skip
        planned = {"peak memory": ("GB", p.memory.total / GB), "step time": ("s", p.step_seconds)}
        setting = Setting("train", label, p.memory.total, planned, p.step_flops)

        def measure(config=config, checkpointing=checkpointing, p=p) -> tuple[dict[str, float], dict]:
            nonlocal cold
            if checkpointing:
                model.transformer.enable_gradient_checkpointing()
            else:
                model.transformer.disable_gradient_checkpointing()
            clip = OneClip(config)
            if cold:
                with kernels:  # the attention kernels SDPA runs, seen in the untimed step
                    train_step(model, optimizer, scheduler, clip, config, 0)
                cold = False
            meter.reset_peak()
            start = time.perf_counter()
            losses = [train_step(model, optimizer, scheduler, clip, config, k + 1) for k in range(repeats)]
            meter.sync()
            seconds = (time.perf_counter() - start) / repeats
            m = p.memory
            detail = {"tokens": p.tokens.length, "frames": config.data.num_frames, "checkpointing": checkpointing,
                      "plan_base_weights_gb": m.base_weights / GB, "plan_adapter_gb": m.adapter / GB,
                      "plan_activations_gb": m.activations / GB, "losses": losses}  # fmt: skip
            return {"peak memory": meter.peak() / GB, "step time": seconds}, detail

        measure_setting(report, meter, setting, deadline, measure)
    report.attention |= {"kernels_seen": sorted(kernels.seen), "backend_seen": backend_of(kernels.seen)}


# --- Part 3: generation ---


class PassClock:
    """Hooks on the DiT: the wall time of every pass, and the memory peaks before, during and after the passes."""

    def __init__(self, model: nn.Module, meter: Meter, passes: int):
        self.meter, self.passes = meter, passes
        self.times: list[float] = []
        self.peaks: dict[str, float] = {}
        self.handles = [model.register_forward_pre_hook(self.before), model.register_forward_hook(self.after)]

    def before(self, module, args) -> None:
        if not self.times:
            self.peaks["before the DiT"] = self.meter.peak()  # encoders, VAE encode, model offload's move
            self.meter.reset_peak()
        self.meter.sync()
        self.start = time.perf_counter()

    def after(self, module, args, output) -> None:
        self.meter.sync()
        self.times.append(time.perf_counter() - self.start)
        if len(self.times) == self.passes:
            self.peaks["denoising"] = self.meter.peak()
            self.meter.reset_peak()

    def close(self) -> None:
        self.peaks["after the DiT"] = self.meter.peak()  # the VAE decodes
        for handle in self.handles:
            handle.remove()


def measure_generation(report: Report, meter: Meter, preset: str | None, gpu: Gpu, steps: int,
                       deadline: float) -> None:  # fmt: skip
    """`generate_6d` at the release size under each offload mode, beside the plan's peaks and step time."""
    # The release's guidance (two DiT passes per step) at every size: the tiny preset samples with 1.
    guidance = f"sampling.guidance={SamplingConfig().guidance}"
    config = load_config(preset, ['model.model_dir=""', "model.gradient_checkpointing=false", guidance])
    p = plan(config, gpus=1, gpu=gpu, mfu=report.mfu)
    per_step = p.sampling.passes
    sampling = dataclasses.replace(config.sampling, frames=config.data.num_frames, steps=steps)
    data = config.data
    home = meter.device if p.inference.modes["none"] <= FIT * meter.capacity() else torch.device("cpu")
    inference = generation_networks(config, home)
    image = torch.rand(3, data.height, data.width) * 2 - 1  # I_0 in [−1, 1]
    for mode in OFFLOAD_MODES:
        label = f"{data.num_frames} × {data.height} × {data.width}, offload={mode}, {steps} steps"
        planned = {
            "peak memory": ("GB", p.inference.modes[mode] / GB),
            "peak while the DiT denoises": ("GB", p.inference.denoising[mode] / GB),
            "time per sampling step": ("s", p.sampling.step_seconds[mode]),
        }
        setting = Setting("generate", label, p.inference.modes[mode], planned, p.sampling.step_flops)

        def measure(mode=mode) -> tuple[dict[str, float], dict]:
            place(inference, meter.device, mode)
            clock = PassClock(inference.model, meter, steps * per_step)
            meter.reset_peak()
            start = time.perf_counter()
            try:
                video = generate_6d(inference.model, inference.autoencoder, inference.encoders, image, PROMPT,
                                    sampling, device=inference.device, offload=mode)  # fmt: skip
                meter.sync()
            finally:
                clock.close()
            wall = time.perf_counter() - start
            if not (torch.isfinite(video.xyz).all() and len(video.rgb) == data.num_frames):
                raise FloatingPointError(f"offload={mode} gave a non-finite or short video")
            step_seconds = [sum(clock.times[i : i + per_step]) for i in range(0, len(clock.times), per_step)]
            timed = step_seconds[1:] or step_seconds  # the first step pays the warm-up
            measured = {
                "peak memory": max(clock.peaks.values()) / GB,
                "peak while the DiT denoises": clock.peaks["denoising"] / GB,
                "time per sampling step": sum(timed) / len(timed),
            }
            detail = {"phase_peaks_gb": {k: v / GB for k, v in clock.peaks.items()}, "pass_seconds": clock.times,
                      "step_seconds": step_seconds, "wall_seconds": wall, "passes_per_step": per_step}  # fmt: skip
            return measured, detail

        measure_setting(report, meter, setting, deadline, measure)


# --- The run ---


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (one GPU) or cpu (with --tiny)")
    parser.add_argument("--tiny", action="store_true", help="the tiny preset instead of the full one")
    parser.add_argument("--out", default="runs/gpu_check.json", help="where the JSON results go")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated: train, generate")
    parser.add_argument(
        "--sampling-steps", type=int, default=2, help="per offload mode; the first is not timed"
    )
    parser.add_argument("--repeats", type=int, default=1, help="timed training steps per setting")
    parser.add_argument(
        "--mfu", type=float, default=0.35, help="the plan's assumed MFU (nano4d plan's default)"
    )
    parser.add_argument(
        "--gpu", choices=sorted(GPUS), help="the plan's GPU row (default: by the device's name)"
    )
    parser.add_argument("--memory-limit-gb", type=float, help="treat the device as holding this much memory")
    parser.add_argument(
        "--deadline-s", type=float, default=420, help="start no setting after this many seconds"
    )
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := sorted(set(parts) - set(PARTS)):
        parser.error(f"unknown parts {unknown}; expected some of {', '.join(PARTS)}")
    if args.sampling_steps < 1 or args.repeats < 1:
        parser.error("--sampling-steps and --repeats must be at least 1")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here (on a CPU: --device cpu --tiny)")
    preset = "tiny" if args.tiny else None
    limit = args.memory_limit_gb * GB if args.memory_limit_gb is not None else None

    torch.manual_seed(0)  # the random weights and inputs
    with Meter(device, limit) as meter:
        name = torch.cuda.get_device_name(device) if meter.cuda else f"CPU ({platform.machine()})"
        report = Report({"type": device.type, "name": name, "memory_gb": meter.capacity() / GB},
                        preset or "full", args.mfu)  # fmt: skip
        report.say(f"throughput on {name}")
        measure_throughput(report, meter, load_config(preset, ['model.model_dir=""']))
        gpu, source = plan_gpu(meter, name, args.gpu, report.throughput["matmul_tflops"])
        report.device |= {"plan_gpu": gpu.name, "peak_tflops": gpu.peak_tflops, "peak_source": source}
        report.seconds["throughput"] = report.elapsed()
        measures = {
            "train": (measure_training, args.repeats),
            "generate": (measure_generation, args.sampling_steps),
        }
        for part in parts:
            start = time.perf_counter()
            report.say(part)
            measure, count = measures[part]
            try:
                measure(report, meter, preset, gpu, count, args.deadline_s)
            except Exception:  # building the networks failed: none of the part's settings can run
                report.fail(part, "", traceback.format_exc())
            meter.free_cache()
            report.seconds[part] = time.perf_counter() - start
        report.seconds["total"] = report.elapsed()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    print(format_report(report))
    print(f"results: {args.out}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
