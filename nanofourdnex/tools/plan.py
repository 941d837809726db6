"""The paper's full run on paper: parameters, tokens, FLOPs, time and memory of a configuration (§5.1).

§5.1: "we train a LoRA with a rank of 64 … with a batch size of 32 using an AdamW optimizer. The
learning rate is set to 1×10⁻⁴ … The training is distributed on 32 NVIDIA A100 GPUs with 5k
iterations at a spatial resolution of 480×720 for each modality."

Parameters are counted exactly: the DiT is built on the meta device (no memory, ~0.1 s) and
the LoRA injected there with peft. Everything else is arithmetic on the config.

Tokens. A clip of T = 4k + 1 frames, H × W per modality, is one modality latent
(z, (T − 1)/4 + 1, H/s, W/s): the Wan VAE has z = 16, s = 8; the pixel stand-in z = 12·s².
The (1, 2, 2) patch gives a token grid (f, h, w) per modality; in-sequence fusion (width,
height, frame) makes ONE sequence of L = 2·f·h·w tokens, batch fusion TWO sequences of
L = f·h·w. Paper: (16, 13, 60, 90) per modality → fused (16, 13, 60, 180) → grid 13 × 30 × 90,
L = 35,100 (not 70,200: that is 13 × 60 × 90, one modality's latent positions before the 2 × 2
patch). Cross-attention reads C = 512 text tokens and I = 257 CLIP tokens ((224/14)² + 1).

FLOPs (one multiply-add = 2 FLOPs; only matrix products are counted, the elementwise norms,
RoPE, GELU and modulation are O(L·d) each, < 1 %). Per sequence, with width d = heads × head_dim,
FFN width F, N blocks, image-key width a = added_kv_proj_dim, LoRA rank r, patch volume
p = p_t·p_h·p_w, latent channels z, text_dim t, image_dim i, freq_dim φ:

    frozen linears on the sequence, per block   2·L·(4d² + 2d² + 2·d·F)    attn1 q,k,v,o; attn2 q,o; FFN
    frozen linears on the context, per block    2·C·2d² + 2·I·2·a·d         attn2 k,v (text); add_k,add_v (image)
    LoRA on a linear d_in → d_out, n tokens     2·n·r·(d_in + d_out)         paper: q,k,v,o of both attentions
    attention, per block                        4·L²·d + 4·L·(C + I)·d       QKᵀ and AV, self and cross
    outside the blocks                          patch conv 2·L·(2z + 4)·p·d, proj_out 2·L·d·z·p,
                                                text 2·C·(t·d + d²), image 2·I·(i² + i·d), time 2·(φ·d + 7d²)

Backward. A product y = x·W costs one forward-equivalent for ∂x when x needs a gradient and one
for ∂W when W trains. Only LoRA (and the domain embeddings) train, but every block input depends
on e_RGB / e_XYZ, so activation gradients flow through the whole frozen DiT:

    frozen linear on the sequence   1×  (∂x only; the frozen ∂W is skipped)
    frozen linear on the context    0×  (text/image tokens come from frozen embedders: no gradient)
    LoRA on the sequence            2×  (∂x and ∂W of A and of B)
    LoRA on the context             1.5× (∂W of A; ∂x and ∂W of B)
    attention                       2.5× (flash attention recomputes QKᵀ, then 4 products; torch's count)
    outside: proj_out 1×, the embedders 0×
    gradient checkpointing          + one more forward of every block (recomputed in the backward)

At the paper's shape attention is 55 % of the forward, so a step costs 3.8 forwards (2.8 without
checkpointing): frozen weights save the ∂W products, but attention's backward costs 2.5×.

    step FLOPs = batch × S × (forward + backward + recompute)            (S = sequences per sample)
    run time   = steps × step FLOPs / (gpus × peak bf16 FLOP/s × mfu)

`mfu` is the fraction of the dense bf16 peak the GPUs sustain on the FLOPs executed (recompute
included; strictly a hardware-FLOP utilisation). Communication is assumed hidden.

Training memory per GPU, FSDP full sharding over G GPUs (GB = 10⁹ bytes):

    base weights       2 B × P_base / G                      frozen DiT stored in bf16
    gathered           2 B × (2·P_block + P_root)            this block and the prefetched next, unsharded;
                                                             the non-block (root) parameters for the whole
                                                             pass; 0 on one GPU (nothing is sharded)
    adapter            16 B × P_train / G                    fp32 LoRA + gradient + AdamW m, v
    activations        m × S × [N·A_block + A_out]            without checkpointing
                       m × S × [N·a + A_block + A_out]        with: the saved block inputs + one recomputed block
    a = 2·L·d B (one bf16 copy of the residual stream), A_block = 2·L·(c·d + k·F) B, A_out = 3·a,
    m = samples per forward (micro-batch).

c and k were measured with `torch.autograd.graph.saved_tensors_hooks` on diffusers 0.42.1 (bf16
weights, flash attention): a block saves ≈ 22 bf16-sized copies of the (L, d) stream (c = 22:
the residual and norm outputs in fp32, q, k, v, roped q, k, attention outputs, LoRA inputs) and
the GELU input (k = 1); LoRA on the FFN adds its input and the GELU output (c = 23, k = 2). Frozen linears save no input (autograd keeps x only for ∂W). Flash attention keeps O(L):
q, k, v, output and the log-sum-exp, no L² term. Plain attention would store heads × L² scores
per block (98.6 GB at the paper's shape): flash attention is not optional here. Left out: the
512 + 257 context tokens' activations (≈ 31 MB per block at the paper's shape) and the activation
gradients in flight during the backward (a few a).

Inference memory (bf16 weights, batch 1, cond and uncond passes run one after the other):

    none          DiT + UMT5-XXL + CLIP ViT-H + VAE + W           all resident
    model         max(DiT + W, UMT5, CLIP, VAE)                   diffusers' model CPU offload
    sequential    max(2 B × P_block + W, UMT5 embedding)          one block resident (accelerate's
                                                                  leaf-by-leaf hooks hold less)
    W = 2·L·max(10·d, 3·d + 2·F) B: the working set of one block without autograd (residual stream
    in bf16 and fp32, q, k, v, roped q, k, two attention outputs; or the FFN hidden and its GELU).
    An estimate (no GPU to measure on); VAE decoding activations are not modelled. While the DiT
    denoises, the peak is the first term of each line (`InferenceMemory.denoising`); the encoders'
    turn before it (model offload) or the UMT5 embedding (sequential) can set the overall peak.

Generation time per sampling step (one GPU, batch 1; `Sampling`):

    passes        2 with classifier-free guidance (conditional, then unconditional), 1 at guidance 1
    step FLOPs  = passes × S × forward                                  (unfused LoRA included)
    step time   = step FLOPs / (peak × mfu) + host traffic / HOST_LINK_GBPS
    host traffic: none, model 0 per step (model offload moves the DiT once per video); sequential
                  2 × DiT bytes per pass: diffusers' group offloading without streams copies every
                  block in before it runs and back out after it (`generate.place`).

`benchmarks/gpu_check.py` measures these predictions on one GPU, setting by setting (specs/plan.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers import WanTransformer3DModel
from peft import inject_adapter_in_model

from ..autoencoder import TEMPORAL
from ..config import Config
from ..model import FFN_TARGETS, MASK_CHANNELS, build_model, peft_config, trains_in_full, transformer_kwargs
from ..paper.fusion import IN_SEQUENCE, fuse, token_grid
from ..paper.mask import guided_mask
from ..paper.token_encoding import DomainEmbedding

GB = 1e9
BF16 = 2  # bytes per frozen weight and per activation element
ADAMW_BYTES = 16  # fp32 trainable weight + gradient + AdamW m + v

# Wan2.1 VAE: 16 latent channels, 8× spatial compression (AutoencoderKLWan defaults).
WAN_LATENT_CHANNELS = 16
WAN_SPATIAL = 8
# The encoders of Wan2.1-I2V, counted by building their configurations on the meta device
# (tests/test_plan.py checks each): UMT5-XXL encoder (d_model 4096, 24 layers, d_ff 10240,
# 64 heads, vocab 256,384), its token embedding alone, CLIP ViT-H/14 vision tower (1280 wide,
# 32 layers, 224² input), and the Wan2.1 VAE (`AutoencoderKLWan()`).
UMT5_XXL_WIDTH = 4096
CLIP_VIT_H_WIDTH = 1280
UMT5_XXL_ENCODER_PARAMS = 5_680_910_336
UMT5_XXL_EMBEDDING_PARAMS = 1_050_148_864  # 256,384 × 4,096
CLIP_VIT_H_VISION_PARAMS = 630_766_080
CLIP_VIT_H_TOKENS = (224 // 14) ** 2 + 1  # 256 patches + class token
WAN_VAE_PARAMS = 126_892_531

# Saved activations per block per token, in bf16 copies of d-wide and F-wide rows (measured,
# see the module docstring): (c, k) for LoRA on attention only and with the FFN adapted too.
BLOCK_ACTIVATIONS = {False: (22, 1), True: (23, 2)}
OUTSIDE_ACTIVATIONS = 3  # bf16 copies of the (L, d) stream saved outside the blocks
INFERENCE_ATTENTION_ROWS = 10  # d-wide bf16 rows live in one block's attention without autograd
INFERENCE_FFN_ROWS = 3  # d-wide bf16 rows live beside the 2 F-wide FFN rows

# Host ↔ GPU copy rate of pageable memory, each direction (GB/s): an assumption, not a data-sheet
# figure (PCIe 4.0/5.0 × 16 carries 25-50 GB/s from pinned memory; pageable copies go through a staging
# buffer). benchmarks/gpu_check.py measures it.
HOST_LINK_GBPS = 16.0

# Backward cost per forward FLOP (see the module docstring).
ATTENTION_BACKWARD = 2.5
LORA_SEQUENCE_BACKWARD = 2.0
LORA_CONTEXT_BACKWARD = 1.5


@dataclass(frozen=True)
class Gpu:
    """Dense bf16 tensor-core peak (TFLOP/s) and memory (GB) of one GPU."""

    name: str
    peak_tflops: float
    memory_gb: float


# Vendor data sheets, dense (no sparsity) bf16 with fp32 accumulation; the RTX 4090 figure is
# approximate (GeForce cards halve the rate with fp32 accumulation).
GPUS = {
    "a100-80g": Gpu("a100-80g", 312, 80),
    "a100-40g": Gpu("a100-40g", 312, 40),
    "h100-80g": Gpu("h100-80g", 989, 80),
    "h200": Gpu("h200", 989, 141),
    "l40s": Gpu("l40s", 362, 48),
    "rtx4090": Gpu("rtx4090", 165, 24),
}


@dataclass(frozen=True)
class ParameterCount:
    base: int  # the frozen DiT
    block: int  # one transformer block of it
    num_blocks: int
    lora: int
    lora_modules: int
    domain: int  # e_RGB, e_XYZ (Eq. 11)
    trained_base: int = 0  # base parameters trained in full (lora.train_base; 0 for the paper)

    @property
    def root(self) -> int:
        """Parameters outside the blocks (patch embedding, condition embedders, output head)."""
        return self.base - self.block * self.num_blocks

    @property
    def trainable(self) -> int:
        return self.lora + self.domain + self.trained_base


@dataclass(frozen=True)
class TokenCount:
    latent: tuple[int, int, int, int]  # one modality (z, f, h, w)
    fused: tuple[int, ...]  # (S, z, f, h', w') as the DiT sees it, one sample
    grid: tuple[int, int, int]  # token grid of one modality
    sequences: int  # S: 1 for in-sequence fusion, 2 for batch fusion
    length: int  # L: tokens per sequence
    text: int  # C
    image: int  # I


@dataclass(frozen=True)
class Flops:
    """Forward FLOPs of ONE sequence by kind; `forward`, `backward`, `recompute` combine them."""

    sequence_linear: float  # frozen block linears applied to the L tokens
    context_linear: float  # frozen block linears applied to the C + I context tokens
    lora_sequence: float
    lora_context: float
    attention: float
    proj_out: float
    embedders: float  # patch conv, text, image and time embedders
    checkpointing: bool

    @property
    def blocks(self) -> float:
        return (
            self.sequence_linear
            + self.context_linear
            + self.lora_sequence
            + self.lora_context
            + self.attention
        )

    @property
    def forward(self) -> float:
        return self.blocks + self.proj_out + self.embedders

    @property
    def backward(self) -> float:
        return (
            self.sequence_linear
            + LORA_SEQUENCE_BACKWARD * self.lora_sequence
            + LORA_CONTEXT_BACKWARD * self.lora_context
            + ATTENTION_BACKWARD * self.attention
            + self.proj_out
        )

    @property
    def recompute(self) -> float:
        return self.blocks if self.checkpointing else 0.0

    @property
    def train(self) -> float:
        return self.forward + self.backward + self.recompute


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes per GPU."""

    base_weights: float
    gathered: float
    adapter: float
    activations: float
    checkpointing: bool

    @property
    def total(self) -> float:
        return self.base_weights + self.gathered + self.adapter + self.activations


@dataclass(frozen=True)
class InferenceMemory:
    """Bytes on the GPU: component weights, the DiT working set W, and the peak per offload mode."""

    components: dict[str, float]
    working_set: float
    modes: dict[str, float]  # the peak of the whole generation
    denoising: dict[str, float]  # the peak while the DiT denoises


@dataclass(frozen=True)
class Sampling:
    """One sampling step of generation on one GPU, batch 1: DiT passes, FLOPs, host traffic, time per offload mode."""

    passes: int  # DiT forwards per step: 2 with classifier-free guidance, 1 without
    step_flops: float
    transfer_bytes: dict[str, float]  # host ↔ GPU bytes per step
    step_seconds: dict[str, float]


@dataclass(frozen=True)
class Plan:
    gpus: int
    gpu: Gpu
    mfu: float
    steps: int
    batch_size: int
    samples_per_gpu: int  # per step
    micro_batch: int  # samples per forward pass
    parameters: ParameterCount
    tokens: TokenCount
    flops: Flops  # one sequence
    memory_with_checkpointing: TrainingMemory
    memory_without_checkpointing: TrainingMemory
    inference: InferenceMemory
    sampling: Sampling

    @property
    def sample_flops(self) -> float:
        return self.tokens.sequences * self.flops.train

    @property
    def step_flops(self) -> float:
        return self.batch_size * self.sample_flops

    @property
    def run_flops(self) -> float:
        return self.steps * self.step_flops

    @property
    def step_seconds(self) -> float:
        return self.step_flops / (self.gpus * self.gpu.peak_tflops * 1e12 * self.mfu)

    @property
    def run_seconds(self) -> float:
        return self.steps * self.step_seconds

    @property
    def memory(self) -> TrainingMemory:
        """The training memory of the configured checkpointing setting."""
        if self.flops.checkpointing:
            return self.memory_with_checkpointing
        return self.memory_without_checkpointing


def latent_size(config: Config) -> tuple[int, int]:
    """(z, s): latent channels and spatial compression of the configured autoencoder."""
    kind = config.autoencoder.kind
    if kind == "wan":
        return WAN_LATENT_CHANNELS, WAN_SPATIAL
    if kind == "pixel":
        s = config.autoencoder.spatial
        return TEMPORAL * 3 * s * s, s
    raise ValueError(f"autoencoder.kind must be 'wan' or 'pixel', got {kind!r}")


def uses_wan_encoders(config: Config) -> bool:
    """True when the DiT reads UMT5-XXL text and CLIP ViT-H image states (Wan2.1-I2V); else tiny encoders."""
    return config.model.text_dim == UMT5_XXL_WIDTH and config.model.image_dim == CLIP_VIT_H_WIDTH


def count_tokens(config: Config) -> TokenCount:
    """Latent, fused and token shapes of one training sample (see the module docstring)."""
    data, strategy = config.data, config.model.fusion
    if strategy not in (*IN_SEQUENCE, "batch"):
        raise ValueError(
            f"model.fusion must be one of {(*IN_SEQUENCE, 'batch')} to be planned, got {strategy!r}"
        )
    if data.num_frames < 1 or (data.num_frames - 1) % TEMPORAL:
        raise ValueError(f"data.num_frames must be 4k + 1, got {data.num_frames}")
    z, s = latent_size(config)
    if data.height % s or data.width % s:
        raise ValueError(f"frame size {(data.height, data.width)} must be divisible by the VAE's {s}")
    latent = (z, (data.num_frames - 1) // TEMPORAL + 1, data.height // s, data.width // s)
    grid = token_grid(latent, tuple(config.model.patch_size))
    one = torch.empty((1, *latent), device="meta")
    fused = tuple(fuse(one, one, strategy).shape)
    sequences = 2 if strategy == "batch" else 1  # batch fusion: RGB and XYZ are two sequences
    length = math.prod(grid) * (2 if sequences == 1 else 1)
    if uses_wan_encoders(config):
        image = CLIP_VIT_H_TOKENS
    else:
        cond = config.conditioning
        image = (cond.tiny_image_size // cond.tiny_image_patch) ** 2 + 1
    return TokenCount(latent, fused, grid, sequences, length, config.conditioning.text_len, image)


def count_parameters(config: Config) -> ParameterCount:
    """Exact counts from the DiT built on the meta device with the LoRA injected by peft."""
    z, _ = latent_size(config)
    with torch.device("meta"):
        transformer = WanTransformer3DModel(**transformer_kwargs(config.model, z))
        domain = DomainEmbedding(config.model.dim)
    base = sum(p.numel() for p in transformer.parameters())
    block = sum(p.numel() for p in transformer.blocks[0].parameters())
    inject_adapter_in_model(peft_config(config.lora), transformer, low_cpu_mem_usage=True)
    lora = sum(p.numel() for name, p in transformer.named_parameters() if "lora_" in name)
    modules = sum(1 for name, _ in transformer.named_modules() if name.endswith(".lora_A"))
    trained_base = sum(
        p.numel()
        for name, p in transformer.named_parameters()
        if trains_in_full(name, config.lora.train_base)
    )
    return ParameterCount(
        base, block, config.model.num_layers, lora, modules, domain.weight.numel(), trained_base
    )


@dataclass(frozen=True)
class BlockLinear:
    """One nn.Linear of a Wan block, named as in diffusers, and the rows it is applied to."""

    name: str
    d_in: int
    d_out: int
    tokens: int
    stream: str  # "sequence": the L latent tokens; "context": the text or image tokens


def block_linears(config: Config, tokens: TokenCount) -> list[BlockLinear]:
    """Every linear of one block, with the number of tokens it sees per sequence."""
    model = config.model
    d, ffn, a = model.dim, model.ffn_dim, model.added_kv_proj_dim
    L, C, I = tokens.length, tokens.text, tokens.image  # noqa: E741
    return [
        *[BlockLinear(f"attn1.{n}", d, d, L, "sequence") for n in ("to_q", "to_k", "to_v", "to_out.0")],
        BlockLinear("attn2.to_q", d, d, L, "sequence"),
        BlockLinear("attn2.to_k", d, d, C, "context"),  # text keys and values
        BlockLinear("attn2.to_v", d, d, C, "context"),
        BlockLinear("attn2.add_k_proj", a, d, I, "context"),  # image keys and values
        BlockLinear("attn2.add_v_proj", a, d, I, "context"),
        BlockLinear("attn2.to_out.0", d, d, L, "sequence"),
        BlockLinear("ffn.net.0.proj", d, ffn, L, "sequence"),
        BlockLinear("ffn.net.2", ffn, d, L, "sequence"),
    ]


def adapted(name: str, config: Config) -> bool:
    """peft's rule: a target matches a module whose name is it or ends with "." + it."""
    targets = list(config.lora.targets) + (list(FFN_TARGETS) if config.lora.ffn else [])
    return any(name == t or name.endswith("." + t) for t in targets)


def count_flops(config: Config, tokens: TokenCount) -> Flops:
    """Forward FLOPs of one sequence by kind (formulas in the module docstring)."""
    model, r = config.model, config.lora.rank
    d, N = model.dim, model.num_layers
    L, C, I = tokens.length, tokens.text, tokens.image  # noqa: E741
    sums = {"sequence": 0.0, "context": 0.0, "lora sequence": 0.0, "lora context": 0.0}
    for linear in block_linears(config, tokens):
        sums[linear.stream] += 2 * linear.tokens * linear.d_in * linear.d_out
        if adapted(linear.name, config):  # x·A (d_in → r), then ·B (r → d_out)
            sums[f"lora {linear.stream}"] += 2 * linear.tokens * r * (linear.d_in + linear.d_out)
    attention = 4 * L * L * d + 4 * L * (C + I) * d  # QKᵀ and AV: self, then cross over text and image
    z = tokens.latent[0]
    patch = math.prod(model.patch_size)
    in_channels = 2 * z + MASK_CHANNELS
    proj_out = 2 * L * d * z * patch
    embedders = (
        2 * L * in_channels * patch * d  # patch embedding (Conv3d with stride = kernel)
        + 2 * C * (model.text_dim * d + d * d)  # text projection: linear, GELU, linear
        + 2 * I * (model.image_dim**2 + model.image_dim * d)  # image: FeedForward(mult=1)
        + 2 * (model.freq_dim * d + d * d + d * 6 * d)  # time embedding and its 6-way projection
    )
    return Flops(
        sequence_linear=N * sums["sequence"],
        context_linear=N * sums["context"],
        lora_sequence=N * sums["lora sequence"],
        lora_context=N * sums["lora context"],
        attention=N * attention,
        proj_out=proj_out,
        embedders=embedders,
        checkpointing=model.gradient_checkpointing,
    )


def block_activation_bytes(config: Config, tokens: TokenCount) -> float:
    """A_block = 2·L·(c·d + k·F) bytes: what autograd saves in one block for one sequence."""
    model = config.model
    c, k = BLOCK_ACTIVATIONS[config.lora.ffn]
    d = model.dim
    return BF16 * tokens.length * (c * d + k * model.ffn_dim)


def training_memory(
    config: Config,
    parameters: ParameterCount,
    tokens: TokenCount,
    gpus: int,
    micro_batch: int,
    checkpointing: bool,
) -> TrainingMemory:
    """Bytes per GPU under FSDP full sharding over `gpus` (see the module docstring)."""
    model = config.model
    d = model.dim
    stream = BF16 * tokens.length * d  # a: one bf16 copy of the residual stream
    block = block_activation_bytes(config, tokens)
    saved = model.num_layers * stream + block if checkpointing else model.num_layers * block
    in_flight = min(2, parameters.num_blocks) * parameters.block + parameters.root  # unsharded by FSDP
    return TrainingMemory(
        base_weights=BF16 * parameters.base / gpus,
        gathered=0.0 if gpus == 1 else BF16 * in_flight,
        adapter=ADAMW_BYTES * parameters.trainable / gpus,
        activations=micro_batch * tokens.sequences * (saved + OUTSIDE_ACTIVATIONS * stream),
        checkpointing=checkpointing,
    )


def encoder_parameters(config: Config) -> dict[str, int]:
    """Parameters of the text and image encoders and the VAE the configuration runs with."""
    vae = WAN_VAE_PARAMS if config.autoencoder.kind == "wan" else 0
    if uses_wan_encoders(config):
        return {
            "text encoder": UMT5_XXL_ENCODER_PARAMS,
            "image encoder": CLIP_VIT_H_VISION_PARAMS,
            "vae": vae,
        }
    from ..conditioning import build_encoders  # imports transformers (seconds): only tiny encoders need it

    encoders = build_encoders(config, meta=True)
    return {
        "text encoder": sum(p.numel() for p in encoders.text_encoder.parameters()),
        "image encoder": sum(p.numel() for p in encoders.image_encoder.parameters()),
        "vae": vae,
    }


def inference_memory(config: Config, parameters: ParameterCount, tokens: TokenCount) -> InferenceMemory:
    """GPU bytes for generation per offload mode (bf16 weights; formulas in the module docstring)."""
    model = config.model
    d = model.dim
    rows = max(INFERENCE_ATTENTION_ROWS * d, INFERENCE_FFN_ROWS * d + 2 * model.ffn_dim)
    working = BF16 * tokens.sequences * tokens.length * rows
    encoders = encoder_parameters(config)
    components = {"transformer": BF16 * (parameters.base + parameters.domain)}
    components |= {name: BF16 * n for name, n in encoders.items()}
    largest_text_piece = UMT5_XXL_EMBEDDING_PARAMS if uses_wan_encoders(config) else encoders["text encoder"]
    denoising = {
        "none": sum(components.values()) + working,
        "model": components["transformer"] + working,
        "sequential": BF16 * parameters.block + working,
    }
    modes = {
        "none": denoising["none"],
        "model": max(denoising["model"], *components.values()),
        "sequential": max(denoising["sequential"], BF16 * largest_text_piece),
    }
    return InferenceMemory(components, working, modes, denoising)


def sampling_time(
    config: Config, tokens: TokenCount, flops: Flops, inference: InferenceMemory, gpu: Gpu, mfu: float
) -> Sampling:
    """FLOPs, host traffic and seconds of one sampling step per offload mode (formulas in the module docstring)."""
    passes = 1 if config.sampling.guidance == 1.0 else 2  # generate_6d skips the unconditional pass at g = 1
    step_flops = passes * tokens.sequences * flops.forward
    dit = inference.components["transformer"]
    transfer = {"none": 0.0, "model": 0.0, "sequential": passes * 2 * dit}  # each block in, then out
    compute = step_flops / (gpu.peak_tflops * 1e12 * mfu)
    seconds = {mode: compute + moved / (HOST_LINK_GBPS * GB) for mode, moved in transfer.items()}
    return Sampling(passes, step_flops, transfer, seconds)


def plan(config: Config, *, gpus: int = 32, gpu: str | Gpu = "a100-80g", mfu: float = 0.35) -> Plan:
    """Parameters, tokens, FLOPs, run time and memory of `config` trained on `gpus` × `gpu`.

    `gpu` names a row of GPUS or is a `Gpu` of its own (a device measured by benchmarks/gpu_check.py).
    One measured setting is a config: `data.num_frames`, `data.height`, `data.width`,
    `model.gradient_checkpointing`, `train.batch_size = 1` on `gpus = 1` predict one step on one GPU.
    """
    if isinstance(gpu, str):
        if gpu not in GPUS:
            raise ValueError(f"unknown gpu {gpu!r}; expected one of {', '.join(GPUS)}")
        gpu = GPUS[gpu]
    if gpus < 1:
        raise ValueError(f"gpus must be >= 1, got {gpus}")
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu must lie in (0, 1], got {mfu}")
    train = config.train
    if train.batch_size % gpus:
        raise ValueError(
            f"train.batch_size {train.batch_size} must be a multiple of gpus {gpus} (data parallel, "
            "whole samples per GPU)"
        )
    samples_per_gpu = train.batch_size // gpus
    micro_batch = min(train.micro_batch_size, samples_per_gpu)
    if samples_per_gpu % micro_batch:
        raise ValueError(
            f"samples per GPU ({samples_per_gpu}) must be a multiple of train.micro_batch_size {micro_batch}"
        )
    tokens = count_tokens(config)
    parameters = count_parameters(config)
    flops = count_flops(config, tokens)
    inference = inference_memory(config, parameters, tokens)
    return Plan(
        gpus=gpus,
        gpu=gpu,
        mfu=mfu,
        steps=train.steps,
        batch_size=train.batch_size,
        samples_per_gpu=samples_per_gpu,
        micro_batch=micro_batch,
        parameters=parameters,
        tokens=tokens,
        flops=flops,
        memory_with_checkpointing=training_memory(config, parameters, tokens, gpus, micro_batch, True),
        memory_without_checkpointing=training_memory(config, parameters, tokens, gpus, micro_batch, False),
        inference=inference,
        sampling=sampling_time(config, tokens, flops, inference, gpu, mfu),
    )


def _si(value: float, unit: str) -> tuple[str, str]:
    """(number, unit) with an SI prefix that keeps the number in [1, 1000), three significant digits."""
    prefixes = ["", "k", "M", "G", "T", "P", "E", "Z"]
    power = 0 if value < 1000 else min(int(math.log10(value) // 3), len(prefixes) - 1)
    return f"{value / 10 ** (3 * power):.3g}", prefixes[power] + unit


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.3g} s"


def format_plan(p: Plan) -> str:
    """A readable table: quantity, value, unit; sections for model, tokens, FLOPs, time, memory."""
    n, t, f = p.parameters, p.tokens, p.flops
    S = t.sequences
    rows: list[tuple[str, str, str] | str] = [
        f"{p.gpus} × {p.gpu.name} ({p.gpu.peak_tflops:g} TFLOP/s dense bf16, {p.gpu.memory_gb:g} GB), "
        f"MFU {p.mfu:g}; {p.steps:,} steps × batch {p.batch_size} "
        f"({p.samples_per_gpu} per GPU, micro-batch {p.micro_batch})",
        "parameters",
        ("DiT (frozen)", f"{n.base:,}", ""),
        ("  one block", f"{n.block:,}", ""),
        (f"LoRA ({n.lora_modules} modules)", f"{n.lora:,}", ""),
        ("domain embeddings e_RGB, e_XYZ", f"{n.domain:,}", ""),
        *[("base trained in full (lora.train_base)", f"{n.trained_base:,}", "")] * (n.trained_base > 0),
        ("trainable", f"{n.trainable:,}", f"({100 * n.trainable / n.base:.2f} % of the DiT)"),
        "tokens per sample",
        ("latent per modality (z, f, h, w)", str(t.latent), ""),
        ("fused latent (B, z, f, h, w)", str(t.fused), ""),
        ("token grid per modality", " × ".join(map(str, t.grid)), ""),
        ("tokens per sequence L", f"{t.length:,}", f"(× {S} sequence{'s' * (S > 1)})"),
        ("cross-attention context", f"{t.text} + {t.image}", "(text + image tokens)"),
        "FLOPs per sample",
        ("forward", *_si(S * f.forward, "FLOP")),
        ("  frozen linears on the sequence", *_si(S * f.sequence_linear, "FLOP")),
        ("  attention, self + cross", *_si(S * f.attention, "FLOP")),
        ("  LoRA", *_si(S * (f.lora_sequence + f.lora_context), "FLOP")),
        (
            "  context linears, embedders, head",
            *_si(S * (f.context_linear + f.embedders + f.proj_out), "FLOP"),
        ),
        ("backward", *_si(S * f.backward, "FLOP")),
        ("recompute (gradient checkpointing)", *_si(S * f.recompute, "FLOP")),
        ("training", *_si(p.sample_flops, f"FLOP (= {f.train / f.forward:.2f} × forward)")),
        "run",
        ("FLOPs per step (global batch)", *_si(p.step_flops, "FLOP")),
        ("FLOPs of the run", *_si(p.run_flops, "FLOP")),
        ("time per step", f"{p.step_seconds:.3g}", "s"),
        ("run time", _duration(p.run_seconds), f"({_number(p.gpus * p.run_seconds / 3600)} GPU-hours)"),
    ]
    for memory in (p.memory_with_checkpointing, p.memory_without_checkpointing):
        label = "with" if memory.checkpointing else "without"
        used = " (configured)" if memory.checkpointing == f.checkpointing else ""
        fits = "fits" if memory.total <= p.gpu.memory_gb * GB else "does NOT fit"
        rows += [
            f"training memory per GPU, FSDP full shard, {label} gradient checkpointing{used}",
            ("bf16 base weights, sharded", *_si(memory.base_weights, "B")),
            ("gathered blocks + root", *_si(memory.gathered, "B")),
            ("LoRA fp32 + grads + AdamW, sharded", *_si(memory.adapter, "B")),
            ("activations", *_si(memory.activations, "B")),
            ("total", *_si(memory.total, f"B ({fits} in {p.gpu.memory_gb:g} GB)")),
        ]
    rows.append("inference memory (bf16 weights, batch 1)")
    rows += [(name, *_si(size, "B")) for name, size in p.inference.components.items()]
    rows.append(("DiT working set", *_si(p.inference.working_set, "B (estimate)")))
    rows += [(f"peak, offload={mode}", *_si(size, "B")) for mode, size in p.inference.modes.items()]
    s = p.sampling
    rows.append(f"generation time per sampling step, one {p.gpu.name} (batch 1, {s.passes} DiT passes)")
    rows.append(("FLOPs", *_si(s.step_flops, "FLOP")))
    for mode, seconds in s.step_seconds.items():
        traffic = " ".join(_si(s.transfer_bytes[mode], "B"))
        unit = f"s (+ {traffic} host traffic at {HOST_LINK_GBPS:g} GB/s)" if s.transfer_bytes[mode] else "s"
        rows.append((f"offload={mode}", f"{seconds:.3g}", unit))
    width = max(len(r[0]) for r in rows if isinstance(r, tuple))
    value_width = max(len(r[1]) for r in rows if isinstance(r, tuple))
    lines = []
    for row in rows:
        if isinstance(row, str):
            lines.append(row)
        else:
            label, value, unit = row
            lines.append(f"  {label:<{width}}  {value:>{value_width}}  {unit}".rstrip())
    return "\n".join(lines)


@dataclass(frozen=True)
class DryRun:
    output_shape: tuple[int, ...]
    expected_shape: tuple[int, ...]  # the fused x_t
    trainable_parameters: int
    parameters_with_gradient: int  # trainable tensors that received a gradient of their own shape
    trainable_tensors: int


def dry_run(config: Config) -> DryRun:
    """One forward and backward of the configured FourDNeX at full size on the meta device (shapes only).

    Built by `model.build_model(..., meta=True)` (pretrained weights are not loaded: model_dir is
    ignored). The shared-RoPE tables are computed on the CPU and moved to
    meta, the frozen weights cast to bf16, the trainable ones kept in fp32, as the plan assumes.
    Inputs: x_t and the condition like the fused latent, the guided mask (Eq. 10), 512 text and
    I image tokens, one t per sequence.
    """
    tokens = count_tokens(config)
    z = tokens.latent[0]
    model = build_model(config, z, meta=True)
    model.to("meta")
    for parameter in model.parameters():
        parameter.data = parameter.data.to(torch.float32 if parameter.requires_grad else torch.bfloat16)
    model.train()
    data, strategy = config.data, config.model.fusion
    S = tokens.sequences

    def meta(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        return torch.empty(shape, device="meta", dtype=dtype)

    mask_shape = guided_mask(data.num_frames, tokens.latent[2], tokens.latent[3], strategy).shape
    x_t = meta(*tokens.fused)
    u = model(
        x_t,
        meta(S, dtype=torch.float32),
        meta(*mask_shape),
        meta(*tokens.fused),
        meta(S, tokens.text, config.model.text_dim),
        meta(S, tokens.image, config.model.image_dim),
    )
    u.float().pow(2).mean().backward()
    trainable = model.trainable_parameters()
    return DryRun(
        output_shape=tuple(u.shape),
        expected_shape=tuple(x_t.shape),
        trainable_parameters=sum(p.numel() for p in trainable),
        parameters_with_gradient=sum(p.grad is not None and p.grad.shape == p.shape for p in trainable),
        trainable_tensors=len(trainable),
    )
