# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Scaling to 14B: the plan, FSDP, and what `--full` changes
#
# The paper's run (§5.1):
#
# > "We opt for the vanilla Wan2.1 image-to-video model as our final base model with a total of 14B
# > parameters … we train a LoRA with a rank of 64 … with a batch size of 32 using an AdamW optimizer. The
# > learning rate is set to 1×10⁻⁴ with a cosine learning rate warmup. The training is distributed on 32
# > NVIDIA A100 GPUs with 5k iterations at a spatial resolution of 480×720 for each modality."
#
# This machine cannot run that. It can do the next best thing: count it exactly. `nanofourdnex.tools.plan` builds
# the real network on PyTorch's **meta device** (shapes, no memory), injects the real LoRA with peft, and
# derives tokens, FLOPs, time and memory per GPU from the config. Then we look at FSDP2, which makes the
# memory fit, and at the handful of config fields that separate `--tiny` from `--full`.

# %%
import os
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
from IPython import get_ipython
from IPython.display import Image, display

from nanofourdnex.config import Config, differing_fields, load_config
from nanofourdnex.distributed import build_sharded_model, current_world, torchrun_command
from nanofourdnex.model import build_model
from nanofourdnex.paper.mask import guided_mask
from nanofourdnex.tools.plan import GB, dry_run, format_plan, plan
from nanofourdnex.viz import figure

QUICK = os.environ.get("NANO4D_TUTORIAL_QUICK") == "1"  # small settings (the test suite sets it)
OUT = Path(tempfile.mkdtemp(prefix="nano4d_06_"))  # every file this notebook writes goes here
GPU_COUNTS = (1, 4, 32) if QUICK else (1, 2, 4, 8, 16, 32)


def show(path: Path) -> None:
    """Show a figure in a notebook; run as a plain script, say where it was written."""
    if get_ipython() is None:
        print("figure written to", path)
    else:
        display(Image(filename=str(path)))


# %% [markdown]
# ## The full run on paper
#
# `plan(config, gpus=32, gpu="a100-80g", mfu=0.35)` for the defaults — the defaults *are* the paper's run
# (`config.py`); `format_plan` prints it. The same table comes from `nano4d plan`.

# %%
full, tiny = load_config(), load_config("tiny")
full_plan = plan(full)
print(format_plan(full_plan))

# %% [markdown]
# Things to read off the table:
#
# * **Parameters.** The DiT has 16.4 B parameters: Wan's 14B text-to-video design (14.3 B) plus the 2.1 B of
#   image cross-attention projections (`add_k_proj`, `add_v_proj`) of the I2V variant. LoRA rank 64 on q, k,
#   v, o of both attentions adds 210 M trainable ones, 1.3 %; e_RGB, e_XYZ add 10,240.
# * **Tokens.** 49 frames of 480×720 per modality → a Wan latent (16, 13, 60, 90) → width fusion
#   (16, 13, 60, 180) → (1, 2, 2) patches: a 13 × 30 × 90 grid, **L = 35,100 tokens** in one sequence.
# * **FLOPs.** At that length attention is more than half of the forward pass. Only the LoRA trains, but the
#   gradient must still flow back through every frozen block to reach the early LoRA matrices and the domain
#   embeddings, so a step costs ~3.8 forwards with gradient checkpointing.
# * **Memory.** Without checkpointing the activations alone are hundreds of GB per sample; with it, the
#   block inputs and one recomputed block fit.
#
# The same numbers for the tiny preset, on one GPU:

# %%
tiny_plan = plan(tiny, gpus=1)
rows = {
    "DiT parameters": lambda p: f"{p.parameters.base:,}",
    "trainable (LoRA + e_RGB, e_XYZ)": lambda p: f"{p.parameters.trainable:,}",
    "latent per modality (z, f, h, w)": lambda p: str(p.tokens.latent),
    "tokens per sequence L": lambda p: f"{p.tokens.length:,}",
    "training FLOPs per sample": lambda p: f"{p.sample_flops:.3g}",
    "memory per GPU (GB)": lambda p: f"{p.memory.total / GB:.3g}",
}
print(f"{'':34} {'tiny':>20} {'full':>22}")
for name, value in rows.items():
    print(f"{name:34} {value(tiny_plan):>20} {value(full_plan):>22}")

# %% [markdown]
# ## FSDP2: what fits where
#
# Memory per GPU with fully sharded data parallelism over $G$ GPUs (formulas in `plan.py`):
#
# $$\underbrace{2\,\mathrm{B}\cdot P_{base}/G}_{\text{frozen bf16 shard}} +
# \underbrace{2\,\mathrm{B}\cdot(2 P_{block} + P_{root})}_{\text{gathered now}} +
# \underbrace{16\,\mathrm{B}\cdot P_{train}/G}_{\text{LoRA + grad + AdamW}} + \text{activations}$$
#
# Every parameter is split in dim 0 over the $G$ ranks; a block's shards are all-gathered just before its
# forward (and again for its backward) and freed after. So a GPU holds $1/G$ of the DiT plus about two whole
# blocks — the weights stop mattering quickly, and the activations of one sample decide what fits. The run
# time is the other side of the same plan (`Plan.run_seconds`, at 35 % of the bf16 peak):

# %%
plans = {g: plan(full, gpus=g) for g in GPU_COUNTS}
parts = {
    "bf16 base shard": lambda m: m.base_weights,
    "gathered blocks + root": lambda m: m.gathered,
    "LoRA + AdamW shard": lambda m: m.adapter,
    "activations": lambda m: m.activations,
}
with figure(OUT / "memory.png", (8, 3)) as fig:
    ax, time_ax = fig.subplots(1, 2)
    labels = [str(g) for g in GPU_COUNTS]
    bottom = torch.zeros(len(GPU_COUNTS))
    for name, part in parts.items():
        values = torch.tensor([part(plans[g].memory) / GB for g in GPU_COUNTS])
        ax.bar(labels, values, bottom=bottom, label=name)
        bottom += values
    ax.axhline(80, color="k", linestyle="--", linewidth=0.8, label="A100 80 GB")
    ax.axhline(40, color="k", linestyle=":", linewidth=0.8, label="A100 40 GB")
    ax.set(xlabel="A100s", ylabel="GB per GPU", ylim=(0, 115), title="training memory, checkpointing on")
    ax.legend(frameon=False, fontsize=6, ncol=2, loc="upper right")
    time_ax.bar(labels, [plans[g].run_seconds / 86400 for g in GPU_COUNTS], color="tab:gray")
    time_ax.set(xlabel="A100s", ylabel="days", yscale="log", title="5k steps × batch 32")
show(OUT / "memory.png")
assert plans[4].memory.total < 40 * GB < plans[1].memory.total < 80 * GB

# %% [markdown]
# With gradient checkpointing the LoRA training of the 16 B model fits on one 80 GB GPU (about 60 GB, most
# of it the bf16 base); a 40 or 48 GB card needs the base sharded over a few GPUs. The paper's 32 GPUs buy
# *time*: about 4 days instead of 4 months.
#
# `distributed.build_sharded_model` is the real thing, and it runs on a CPU with the gloo backend. The 14B
# model must never exist whole on one GPU, so the init sequence is: build on the meta device → `fully_shard`
# each block, then the root → `to_empty` (allocate this rank's shards) → rank 0 broadcasts the full state
# dict, each rank keeping its shard → recompute the RoPE tables (non-persistent buffers, which no state dict
# carries; forgetting this gives silently wrong outputs). Here with a process group of one, on the tiny
# preset — every parameter becomes a `DTensor` sharded in dim 0, and the sharded model computes exactly
# what the plain one does:

# %%
dist.init_process_group("gloo", init_method=f"file://{OUT / 'rendezvous'}", rank=0, world_size=1)
world = current_world()
latent_channels = 12  # the tiny preset's pixel autoencoder: 4 × 3 × 1²
host = build_model(
    tiny, latent_channels, seed=tiny.train.seed
)  # rank 0's whole model, the source of the shards
sharded = build_sharded_model(tiny, latent_channels, world, host)
for name, parameter in list(sharded.model.named_parameters())[:2]:
    shard = tuple(parameter.to_local().shape)
    print(f"{name}: {type(parameter).__name__} {parameter.placements}, local shard {shard}")

plain = build_model(tiny, latent_channels, seed=tiny.train.seed)
h, w = tiny.data.height, tiny.data.width  # pixel autoencoder with spatial 1: latent size = image size
x_t = torch.randn(1, latent_channels, 3, h, 2 * w)  # (B, z, f, h, 2w)
inputs = (
    x_t,
    torch.tensor([0.3]),
    guided_mask(tiny.data.num_frames, h, w),
    torch.randn_like(x_t),
    torch.randn(1, 512, tiny.model.text_dim),
    torch.randn(1, 17, tiny.model.image_dim),
)
with torch.no_grad():
    difference = (sharded.model(*inputs) - plain(*inputs)).abs().max().item()
print(f"max |sharded − plain| = {difference:.1e}")
assert difference < 1e-5
dist.destroy_process_group()

# %% [markdown]
# On $N$ processes the only differences are the shard sizes ($1/N$ of dim 0 each) and the all-gathers.
# Gradients: each rank accumulates its share of the global batch, weighted by $|m|/B$ per micro-batch, and
# FSDP's reduction is set to a plain sum, so every shard receives exactly the global-batch mean gradient
# at any $N$ that divides the batch. `nano4d train --nproc N` launches that through torchrun:

# %%
print(" ".join(torchrun_command(2, ["train", "--tiny"])))

# %% [markdown]
# and the test suite checks that a 2-process run reproduces the 1-process losses
# (`tests/test_distributed.py`).
#
# Before renting 32 GPUs, `nano4d train --full --dry-run` runs one full-size forward and backward of the 14B
# network on the meta device — every shape, the LoRA wiring and the gradient flow, in seconds:

# %%
result = dry_run(full)
print(result)
assert result.output_shape == result.expected_shape
assert result.parameters_with_gradient == result.trainable_tensors

# %% [markdown]
# ## `--tiny` versus `--full`
#
# Both presets run the same code. `config.differing_fields` lists every field where they differ:

# %%
sections = [field.name for field in Config.__dataclass_fields__.values()]
differences = differing_fields(full, tiny, sections)
for line in differences:
    print(line.replace(" != ", "  →  "))

# %% [markdown]
# Read as "full → tiny": the network shrinks (40 → 4 blocks, width 5120 → 128) but keeps its structure; the
# Wan VAE becomes the exact pixel stand-in, with its own traced Eq. 8 statistics; 49 frames of 480×720
# become 9 of 16×24; the base is the shipped pretrained miniature (`pretrained/tiny-wan-i2v`, made by
# `nano4d pretrain --tiny`) instead of Wan2.1, adapted with rank 32 and a higher learning rate; bf16 and gradient
# checkpointing are GPU economies switched off on the CPU. Everything else — fusion, RoPE, the mask, the loss,
# the sampler, the checkpoint format — is shared, which is why the tiny run tests the full one.

# %%
print("figures in", OUT)
