"""Data-parallel training over many processes: torchrun + FSDP2 (§5.1: "The training is distributed on 32
NVIDIA A100 GPUs", batch 32).

Launch. `nano4d train … --nproc N` starts N processes on this machine through torchrun; every process
runs the same `nano4d train` command, finds the torchrun environment and joins one process group
(nccl on CUDA, one GPU per process; gloo on CPU, one thread per process). Several machines: run the
same line on each node, e.g. the paper's 32 GPUs as 4 nodes × 8:

    torchrun --nnodes 4 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        --rdzv-id 4dnex -m nanofourdnex.cli train --full \\
        --set model.model_dir=/ckpt/Wan2.1-I2V-14B-480P-Diffusers \\
        --set data.cache=/data/cache/train --set data.val_cache=/data/cache/val

(HOST: a machine every node reaches, e.g. node 0; one node × 8 GPUs: `--nnodes 1 --standalone`.)

Sharding plan (FSDP2, `fully_shard`): one group per DiT block (its frozen linears and their LoRA
matrices), then the root FourDNeX (patch embedding, condition embedders, output head and e_RGB, e_XYZ).
Every parameter is split in dim 0 over the N ranks; a group is all-gathered just before its
forward (and again for its backward) and freed after, so a GPU holds 1/N of the DiT plus about two
blocks. With `train.bf16` the frozen base is stored in bf16, the trainable LoRA and domain
embeddings in fp32; groups are gathered in bf16 and gradients reduced in fp32.

Init sequence (the 14B model never exists whole on any GPU):

    1. build FourDNeX on the meta device: Wan DiT, shared RoPE, domain embedding, LoRA injected by
       peft under the same device context: shapes only, nothing allocated;
    2. fully_shard per block and the root: shards of meta tensors;
    3. to_empty(device): allocate this rank's shards (uninitialised) and the buffers;
    4. rank 0 builds the single-process model on its CPU (pretrained base from model_dir or the
       seeded random one, LoRA init, zero domain embeddings) and `set_model_state_dict(full_state_dict,
       broadcast_from_rank0)` sends every tensor to all ranks, each keeping its shard;
    5. recompute the RoPE tables: non-persistent buffers, in no state dict, so step 4 does not carry
       them and step 3 left garbage — forgetting this gives silently wrong outputs.

Rank 0 keeps that CPU model (its frozen base dropped when it came from model_dir) as the host of
the gathered adapters: checkpoints are written from it in the single-process format.

Gradient maths. training_step gives rank r the samples r, r + N, … of the global batch B (all of
step k's random draws are made for the whole batch) and weights micro-batch m's loss by |m|/B, so
rank r accumulates g_r = Σ_{i ∈ r} ∇ℓ_i / B. FSDP's reduction is set to a plain sum (divide factor
1 instead of its default mean over ranks), so every shard receives Σ_r g_r = (1/B) Σ_i ∇ℓ_i: the
global-batch mean gradient, at any N that divides B and any micro-batch size.

Checkpoints. All ranks gather the trainable parameters and the AdamW state to rank 0 (full tensors,
3 × 4 B × 210 M ≈ 2.5 GB for the paper's LoRA), which writes exactly the single-process folder
(`checkpoint.save_checkpoint`: diffusers LoRA file, domain embeddings, optimizer, state.json). Resuming
reads it on rank 0 and broadcasts it back into the shards, so a run may resume at another world
size, or in one process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from .config import Config
from .model import FourDNeX, build_model
from .paper.token_encoding import SharedRoPE

ROPE_BUFFERS = {"transformer.rope.freqs_cos", "transformer.rope.freqs_sin"}


@dataclass(frozen=True)
class World:
    """This process's place in the job: rank of size, and its device."""

    rank: int
    size: int
    device: torch.device
    distributed: bool  # a process group is up (FSDP path), even at size 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ


def current_world() -> World:
    """The process group's rank and size, or a lone process (rank 0 of 1)."""
    cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        return World(0, 1, torch.device("cuda" if cuda else "cpu"), distributed=False)
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    return World(dist.get_rank(), dist.get_world_size(), device, distributed=True)


@contextmanager
def process_group() -> Iterator[World]:
    """Join the torchrun job for the duration (nccl on CUDA, gloo on CPU); outside torchrun, a lone process."""
    if not launched_by_torchrun() or dist.is_initialized():
        yield current_world()
        return
    if torch.cuda.is_available():
        local = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    else:
        torch.set_num_threads(1)  # N processes share the cores; more threads each only contend
        dist.init_process_group("gloo")
    try:
        yield current_world()
        dist.barrier()  # no process leaves while another still talks to it
    finally:
        dist.destroy_process_group()


def torchrun_command(nproc: int, args: list[str]) -> list[str]:
    """`python -m torch.distributed.run` on this machine, N processes, each running `nano4d ARGS`."""
    if nproc < 1:
        raise ValueError(f"--nproc must be at least 1, got {nproc}")
    runner = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    return [*runner, "-m", "nanofourdnex.cli", *args]


def build_meta_model(config: Config, latent_channels: int) -> FourDNeX:
    """FourDNeX with every parameter on the meta device (step 1); frozen ones in bf16 when training in bf16."""
    model = build_model(config, latent_channels, meta=True)
    if config.train.bf16:
        for parameter in model.parameters():
            if not parameter.requires_grad:
                parameter.data = parameter.data.to(torch.bfloat16)
    return model


def shard(model: FourDNeX, bf16: bool) -> None:
    """fully_shard every DiT block, then the root (step 2); gradient reduction is a sum over ranks."""
    policy = MixedPrecisionPolicy(
        param_dtype=torch.bfloat16 if bf16 else None,
        reduce_dtype=torch.float32 if bf16 else None,
        cast_forward_inputs=False,  # t, latents and embeddings stay fp32; autocast picks per op, as in one process
    )
    for block in model.transformer.blocks:
        fully_shard(block, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)  # Σ_r g_r: training_step's |m|/B weights make it the mean
            module.set_force_sum_reduction_for_comms(True)  # a plain SUM collective (gloo has no PREMUL_SUM)


def recompute_rope(model: nn.Module) -> None:
    """Refill the shared-RoPE tables (step 5), computed on the CPU exactly as in one process."""
    persistent = set(model.state_dict())
    lost = {name for name, _ in model.named_buffers()} - persistent
    if lost != ROPE_BUFFERS:
        raise ValueError(f"non-persistent buffers {sorted(lost)} differ from the RoPE tables this refills")
    rope = model.transformer.rope
    fresh = SharedRoPE(rope.attention_head_dim, rope.patch_size, rope.max_seq_len, strategy=rope.strategy)
    with torch.no_grad():
        rope.freqs_cos.copy_(fresh.freqs_cos)
        rope.freqs_sin.copy_(fresh.freqs_sin)


def broadcast_model_state(model: FourDNeX, host: FourDNeX | None, trainable_only: bool = False) -> None:
    """Rank 0's host values → every rank's shards (collective; `host` is None on the other ranks)."""
    state = {}
    if host is not None:
        state = host.state_dict()
        if trainable_only:
            state = {name: state[name] for name in trainable_names(host)}
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=not trainable_only)
    set_model_state_dict(model, state, options=options)


@dataclass
class ShardedModel:
    """The model each process trains, and rank 0's CPU host of the full adapters (None on other ranks).

    In one process there is one shard: `model` is the whole model and is its own host.
    """

    model: FourDNeX
    host: FourDNeX | None


def build_sharded_model(
    config: Config, latent_channels: int, world: World, host: FourDNeX | None
) -> ShardedModel:
    """Steps 1-5 of the init sequence; the result computes exactly what the single-process model does.

    `host` is rank 0's single-process model (`model.build_model`, its base loaded), None on the other ranks.
    """
    if not world.distributed:
        if config.train.bf16:  # the frozen base in bf16, as the sharded path stores it; adapters stay fp32
            for parameter in host.parameters():
                if not parameter.requires_grad:
                    parameter.data = parameter.data.to(torch.bfloat16)
        return ShardedModel(host.to(world.device), host)
    model = build_meta_model(config, latent_channels)
    shard(model, config.train.bf16)
    model.to_empty(device=world.device)
    broadcast_model_state(model, host)
    recompute_rope(model)
    if host is not None and config.model.model_dir:  # the pretrained base is never written: free its RAM
        for parameter in host.parameters():  # (one zero broadcast to the shape; a meta tensor cannot be set)
            if not parameter.requires_grad:
                parameter.data = torch.zeros((), dtype=parameter.dtype).expand(parameter.shape)
    return ShardedModel(model, host)


def trainable_names(model: nn.Module) -> list[str]:
    """Names of the trainable parameters in `parameters()` order: index i of a single-process AdamW state."""
    return [name for name, parameter in model.named_parameters() if parameter.requires_grad]


def gather_to_host(sharded: ShardedModel, optimizer: torch.optim.Optimizer) -> dict | None:
    """Collective: full trainable parameters into rank 0's host; return its AdamW state in the single-process layout."""
    if sharded.model is sharded.host:  # one process: the model is its own host
        return optimizer.state_dict()
    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
    trainable = get_model_state_dict(sharded.model, options=options)
    state = get_optimizer_state_dict(sharded.model, optimizer, options=options)
    if sharded.host is None:
        return None
    sharded.host.load_state_dict(trainable, strict=False)
    index = {name: i for i, name in enumerate(trainable_names(sharded.host))}
    groups = [
        {**group, "params": [index[name] for name in group["params"]]} for group in state["param_groups"]
    ]
    return {"state": {index[name]: s for name, s in state["state"].items()}, "param_groups": groups}


def scatter_from_host(
    sharded: ShardedModel, optimizer: torch.optim.Optimizer, optimizer_state: dict | None
) -> None:
    """Collective inverse of `gather_to_host`: rank 0's host adapters and AdamW state → every rank's shards."""
    if sharded.model is sharded.host:  # one process: the adapters are already in place
        optimizer.load_state_dict(optimizer_state)
        return
    broadcast_model_state(sharded.model, sharded.host, trainable_only=True)
    full = {}
    if sharded.host is not None:
        names = trainable_names(sharded.host)
        groups = [{**g, "params": [names[i] for i in g["params"]]} for g in optimizer_state["param_groups"]]
        full = {"state": {names[i]: s for i, s in optimizer_state["state"].items()}, "param_groups": groups}
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_optimizer_state_dict(sharded.model, optimizer, full, options=options)


def broadcast_object(value):
    """Rank 0's value on every rank (a no-op in one process)."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """Σ over ranks of a small tensor (a logged loss); itself in one process."""
    if not dist.is_initialized():
        return value
    total = value.detach().clone().to(current_world().device)
    dist.all_reduce(total)
    return total.cpu()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
