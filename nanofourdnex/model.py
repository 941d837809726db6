"""The 4DNeX network: Wan2.1 DiT (diffusers) + shared RoPE + domain embeddings + LoRA (peft) (§4.3, Fig. 6).

    u = −WanDiT( [x_t ; M ; c] , 1000·(1 − t), c_txt, c_img )                   (Eq. 6, Fig. 6)

* x_t: noisy fused RGB|XYZ latent (B, z, f, h, 2w) for width-wise fusion (Eq. 5);
* M: the guided mask packed to 4 channels per latent frame (Eq. 10);
* c: the conditioning latent: first frame I_0 and the sloped plane X^init (Eq. 7), each
  encoded as a video [frame, 0, …, 0] and fused like x_t;
* the three are concatenated along channels — Wan I2V's 16 + 4 + 16 = 36 input channels;
* the DiT's stock RoPE is replaced by `SharedRoPE` and the domain embeddings e_RGB, e_XYZ
  are added after patch embedding (Eq. 11);
* Wan predicts v_σ = noise − data at timestep 1000·σ; the paper's velocity is u = −v_σ
  at t = 1 − σ (see `flow_matching`).

Only the LoRA matrices and the domain embeddings train; the base DiT is frozen. Checkpoints
store the LoRA in diffusers' LoRA format (`pytorch_lora_weights.safetensors`, the keys
`load_lora_weights` reads) and the domain embeddings beside it in safetensors. The public 4DNeX
release's folder (the same LoRA file + `learnable_domain_embeddings.pt`) loads too.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel
from diffusers.loaders import WanLoraLoaderMixin
from peft import LoraConfig as PeftLoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import save_file
from torch import nn

from .config import Config, LoraConfig, ModelConfig
from .paper.flow_matching import velocity_from_wan, wan_timestep
from .paper.fusion import IN_SEQUENCE
from .paper.token_encoding import DomainEmbedding, SharedRoPE
from .reading import read_json, read_pickled_tensor, read_safetensors

LORA_FILE = "pytorch_lora_weights.safetensors"
DOMAIN_FILE = "domain_embeddings.safetensors"
RELEASE_DOMAIN_FILE = "learnable_domain_embeddings.pt"  # the public 4DNeX release's name
TRAINED_BASE_FILE = "trained_base.safetensors"  # base parameters trained in full (lora.train_base)
FFN_TARGETS = ("ffn.net.0.proj", "ffn.net.2")
MASK_CHANNELS = 4


def transformer_kwargs(model: ModelConfig, latent_channels: int) -> dict:
    """WanTransformer3DModel arguments: input = noise z + mask 4 + condition z channels, output z."""
    return dict(
        patch_size=tuple(model.patch_size),
        num_attention_heads=model.num_attention_heads,
        attention_head_dim=model.attention_head_dim,
        in_channels=2 * latent_channels + MASK_CHANNELS,
        out_channels=latent_channels,
        text_dim=model.text_dim,
        freq_dim=model.freq_dim,
        ffn_dim=model.ffn_dim,
        num_layers=model.num_layers,
        cross_attn_norm=model.cross_attn_norm,
        qk_norm=model.qk_norm,
        eps=model.eps,
        image_dim=model.image_dim,
        added_kv_proj_dim=model.added_kv_proj_dim,
        rope_max_seq_len=model.rope_max_seq_len,
    )


def check_base_config(model: ModelConfig, latent_channels: int | None = None) -> None:
    """ValueError unless model_dir's transformer/config.json has the configured architecture.

    Reads the JSON only, so a run can check its base before any expensive work; the channel counts are
    compared when latent_channels is given (they depend on the autoencoder).
    """
    path = Path(model.model_dir) / "transformer"
    if not path.is_dir():
        raise ValueError(
            f"model dir {model.model_dir} has no transformer/ folder (diffusers Wan2.1-I2V layout)"
        )
    if not (path / "config.json").is_file():
        raise ValueError(
            f"model dir {model.model_dir} has no transformer/config.json (diffusers Wan2.1-I2V layout)"
        )
    stored = read_json(path / "config.json")
    expected = transformer_kwargs(model, latent_channels or 0)
    if latent_channels is None:
        del expected["in_channels"], expected["out_channels"]
    defaults = inspect.signature(WanTransformer3DModel.__init__).parameters  # what from_pretrained fills in
    differing = [
        k for k, v in expected.items() if tuple_or(stored.get(k, defaults[k].default)) != tuple_or(v)
    ]
    if differing:
        raise ValueError(f"checkpoint in {path} differs from the config in: {', '.join(differing)}")


def build_transformer(model: ModelConfig, latent_channels: int, seed: int = 0) -> WanTransformer3DModel:
    """The base DiT: pretrained from `model_dir`, else random init (seeded) from the config.

    Either way the global random state is left seeded from `seed`, so what is drawn next (LoRA, domain
    embeddings, a fusion variant's new modules) follows the seed alone, also on a pretrained base.
    """
    if model.model_dir:
        check_base_config(model, latent_channels)  # from config.json, before the weights load
        path = Path(model.model_dir) / "transformer"
        transformer = WanTransformer3DModel.from_pretrained(path, local_files_only=True)
        torch.manual_seed(seed)  # after loading, whose own random draws are the library's business
        return transformer
    torch.manual_seed(seed)
    return WanTransformer3DModel(**transformer_kwargs(model, latent_channels))


def wan_velocity(
    transformer: WanTransformer3DModel,
    x_t: torch.Tensor,
    t: torch.Tensor,
    mask: torch.Tensor,
    condition: torch.Tensor,
    text: torch.Tensor,
    image: torch.Tensor | None,
) -> torch.Tensor:
    """The paper's velocity u of a Wan I2V DiT: u = −WanDiT([x_t ; M ; c], 1000·(1 − t), c_txt, c_img)."""
    dtype = transformer.patch_embedding.weight.dtype  # bf16 weights take bf16 inputs
    hidden = torch.cat([x_t, mask.to(x_t.dtype), condition], dim=1).to(dtype)  # (B, 2z + 4, f, h, w')
    v_sigma = transformer(
        hidden,
        timestep=wan_timestep(t).to(x_t.device),
        encoder_hidden_states=text.to(dtype),
        encoder_hidden_states_image=None if image is None else image.to(dtype),
        return_dict=False,
    )[0]
    return velocity_from_wan(v_sigma.float())


def model_width(transformer: WanTransformer3DModel) -> int:
    """D, the width of a Wan DiT's token embeddings: its patch embedding's output channels."""
    return transformer.patch_embedding.out_channels


def tuple_or(value):
    return tuple(value) if isinstance(value, list) else value


def trains_in_full(name: str, train_base: tuple[str, ...]) -> bool:
    """Whether base parameter `name` is one of `lora.train_base` (equal, under it, or ending in it)."""
    return "lora_" not in name and any(
        name == m or name.startswith(m + ".") or name.endswith("." + m) for m in train_base
    )


def add_lora(transformer: WanTransformer3DModel, lora: LoraConfig) -> None:
    """Inject peft LoRA; the LoRA and `lora.train_base` train, every other parameter present is frozen."""
    transformer.add_adapter(peft_config(lora))
    for name, parameter in transformer.named_parameters():
        parameter.requires_grad_("lora_" in name or trains_in_full(name, lora.train_base))


def peft_config(lora: LoraConfig) -> PeftLoraConfig:
    targets = list(lora.targets) + (list(FFN_TARGETS) if lora.ffn else [])
    return PeftLoraConfig(r=lora.rank, lora_alpha=lora.alpha, target_modules=targets, init_lora_weights=True)


class FourDNeX(nn.Module):
    """Wan DiT adapted to 6D video: shared RoPE, domain embeddings and LoRA, in paper time."""

    def __init__(self, transformer: WanTransformer3DModel, strategy: str, lora: LoraConfig):
        super().__init__()
        if strategy not in IN_SEQUENCE:  # channel and batch fusion need the ablation's adapters
            raise ValueError(
                f"FourDNeX fuses RGB and XYZ in one sequence: {', '.join(IN_SEQUENCE)}; got {strategy!r}"
            )
        self.transformer = transformer
        self.strategy = strategy
        self.lora = lora
        transformer.rope = SharedRoPE.like(transformer.rope, strategy)  # both halves share positions (Eq. 11)
        dim = model_width(transformer)
        DomainEmbedding(dim, strategy).attach(transformer)
        add_lora(transformer, lora)
        transformer.domain_embedding.weight.requires_grad_(True)

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        mask: torch.Tensor,
        condition: torch.Tensor,
        text: torch.Tensor,
        image: torch.Tensor | None,
    ) -> torch.Tensor:
        """Paper velocity u (B, z, f, h, w') for fused x_t, mask (B, 4, …) and condition latents."""
        return wan_velocity(self.transformer, x_t, t, mask, condition, text, image)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def adapter_state(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(LoRA state dict in peft names, e.g. `blocks.0.attn1.to_q.lora_A.weight`; domain embeddings (2, D))."""
        lora = get_peft_model_state_dict(self.transformer)
        lora = {k: v.detach().contiguous() for k, v in lora.items()}
        return lora, self.transformer.domain_embedding.weight.detach().clone()

    def save_adapters(self, directory: Path) -> None:
        """LoRA in diffusers' format (keys prefixed `transformer.`, peft config as metadata) + domain embeddings."""
        lora, domain = self.adapter_state()
        metadata = peft_config(self.lora).to_dict()
        metadata = json.loads(
            json.dumps(metadata, default=lambda v: sorted(v) if isinstance(v, set) else str(v))
        )
        WanLoraLoaderMixin.save_lora_weights(
            directory, transformer_lora_layers=lora, transformer_lora_adapter_metadata=metadata
        )
        save_file({"weight": domain}, str(Path(directory) / DOMAIN_FILE))
        if self.lora.train_base:
            save_file(self.trained_base_state(), str(Path(directory) / TRAINED_BASE_FILE))

    def trained_base_state(self) -> dict[str, torch.Tensor]:
        """The base parameters trained in full (`lora.train_base`), by their transformer names."""
        return {
            name: parameter.detach().contiguous()
            for name, parameter in self.transformer.named_parameters()
            if trains_in_full(name, self.lora.train_base)
        }

    def load_adapters(self, directory: Path) -> None:
        """Inverse of `save_adapters`; also reads the public 4DNeX release's folder.

        The release stores the same diffusers-format LoRA file (no alpha inside: peft scales by
        the configured lora.alpha / lora.rank, 32 / 64 for the release) and the domain embeddings
        as a pickled tensor `learnable_domain_embeddings.pt`, read with `weights_only=True`.
        """
        directory = Path(directory)
        lora = read_safetensors(directory / LORA_FILE)
        prefix = "transformer."
        stripped = {k.removeprefix(prefix): v for k, v in lora.items() if "lora_A" in k or "lora_B" in k}
        ranks = {v.shape[0] for k, v in stripped.items() if "lora_A" in k}
        if ranks != {self.lora.rank}:
            raise ValueError(
                f"{directory / LORA_FILE} has LoRA rank {sorted(ranks)}, the config says {self.lora.rank} "
                f"(set lora.rank and lora.alpha to the checkpoint's)"
            )
        result = set_peft_model_state_dict(self.transformer, stripped)
        if getattr(result, "unexpected_keys", None):
            raise ValueError(
                f"{directory / LORA_FILE} has keys this model lacks: {result.unexpected_keys[:3]} ..."
            )
        missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
        if missing:  # e.g. a shallower run's file: those layers would silently stay unadapted
            raise ValueError(
                f"{directory / LORA_FILE} lacks LoRA weights this model has: {missing[:3]} ... ({len(missing)} missing)"
            )
        if (directory / DOMAIN_FILE).exists():
            domain = read_safetensors(directory / DOMAIN_FILE)["weight"]
        elif (directory / RELEASE_DOMAIN_FILE).exists():
            domain = read_release_domain_embeddings(directory / RELEASE_DOMAIN_FILE)
        else:
            raise ValueError(f"{directory} has neither {DOMAIN_FILE} nor {RELEASE_DOMAIN_FILE}")
        expected = tuple(self.transformer.domain_embedding.weight.shape)
        if tuple(domain.shape) != expected:
            raise ValueError(
                f"domain embeddings in {directory} are {tuple(domain.shape)}, expected {expected}"
            )
        with torch.no_grad():
            self.transformer.domain_embedding.weight.copy_(domain)
        if self.lora.train_base:
            trained = read_safetensors(directory / TRAINED_BASE_FILE)
            expected = self.trained_base_state()
            if set(trained) != set(expected):
                raise ValueError(
                    f"{directory / TRAINED_BASE_FILE} holds {sorted(set(trained) ^ set(expected))[:3]} ... "
                    f"which lora.train_base = {list(self.lora.train_base)} does not (or the reverse)"
                )
            self.transformer.load_state_dict(trained, strict=False)


def read_release_domain_embeddings(path: Path) -> torch.Tensor:
    """The release's (2, D) e_RGB, e_XYZ: a raw tensor or a dict holding one, loaded without running pickle code."""
    loaded = read_pickled_tensor(path)
    if isinstance(loaded, dict):
        found = [v for k, v in loaded.items() if "learnable_domain_embeddings" in k]
        if len(found) != 1:
            raise ValueError(f"{path} holds no single `learnable_domain_embeddings` entry: {sorted(loaded)}")
        loaded = found[0]
    if not isinstance(loaded, torch.Tensor):
        raise ValueError(f"{path} holds a {type(loaded).__name__}, not a tensor")
    return loaded.float()


def build_model(config: Config, latent_channels: int, seed: int = 0, meta: bool = False) -> FourDNeX:
    """Base DiT (pretrained or random) → shared RoPE + domain embeddings → LoRA; base frozen.

    meta=True builds the shapes only, on the meta device (no weights read, nothing allocated), and
    leaves the global random state as it was.
    """
    if meta:
        shapes_only = dataclasses.replace(config, model=dataclasses.replace(config.model, model_dir=""))
        with (
            torch.random.fork_rng(devices=[]),
            torch.device("meta"),
        ):  # build_transformer seeds the global RNG
            return build_model(shapes_only, latent_channels, seed)
    transformer = build_transformer(config.model, latent_channels, seed)
    if config.model.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    return FourDNeX(transformer, config.model.fusion, config.lora)
