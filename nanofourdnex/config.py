"""One set of defaults — the paper's full run (§5.1) — and small TOML presets that override it.

The defaults reproduce 4DNeX: Wan2.1-I2V-14B-480P, LoRA rank 64 (alpha 32 as in the public
release), batch 32, AdamW at 1e-4 with cosine schedule and warm-up, 5k iterations, 49
frames at 480×720 per modality, width-wise fusion, μ = −0.13, σ = 1.70. A preset such as
`tiny_configs/tiny.toml` overrides a handful of fields; `--set section.key=value` overrides
one more. Unknown keys and wrong types are errors. Every run writes its resolved config.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

PRESET_DIR = Path(__file__).resolve().parent.parent / "tiny_configs"


@dataclass
class ModelConfig:
    """WanTransformer3DModel hyper-parameters (defaults: Wan2.1-I2V-14B-480P) and the 4DNeX adaptations."""

    num_layers: int = 40
    num_attention_heads: int = 40
    attention_head_dim: int = 128
    ffn_dim: int = 13824
    text_dim: int = 4096
    image_dim: int = 1280
    added_kv_proj_dim: int = 5120
    freq_dim: int = 256
    patch_size: tuple[int, int, int] = (1, 2, 2)
    cross_attn_norm: bool = True
    qk_norm: str = "rms_norm_across_heads"
    eps: float = 1e-6
    rope_max_seq_len: int = 1024
    model_dir: str = ""  # local diffusers-format Wan2.1-I2V-14B-480P folder; "" = random init
    fusion: str = "width"  # §4.2: channel | batch | frame | height | width
    gradient_checkpointing: bool = True

    @property
    def dim(self) -> int:
        """The DiT's width D = heads × head dim (5120 for Wan2.1-14B)."""
        return self.num_attention_heads * self.attention_head_dim


@dataclass
class LoraConfig:
    """peft LoRA on the DiT (public release: r = 64, alpha = 32, attention q/k/v/out)."""

    rank: int = 64
    alpha: int = 32
    targets: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")
    ffn: bool = False  # also adapt ffn.net.0.proj and ffn.net.2
    # Base parameters trained in full beside the LoRA: a name matches a parameter equal to it, under it
    # ("patch_embedding" → patch_embedding.weight) or ending in it ("scale_shift_table" → every block's).
    # Empty for the paper (a pretrained base); the tiny preset's base is random and needs its embedders,
    # modulation tables and output head trained (see tiny_configs/tiny.toml).
    train_base: tuple[str, ...] = ()


@dataclass
class AutoencoderConfig:
    kind: str = "wan"  # "wan": AutoencoderKLWan from model_dir; "pixel": the exact stand-in
    spatial: int = 2  # pixel stand-in only: s×s pixel-unshuffle
    xyz_mean: float = -0.13  # Eq. 8 μ
    xyz_std: float = 1.70  # Eq. 8 σ


@dataclass
class ConditioningConfig:
    """UMT5 text and CLIP ViT-H image encoders (tiny random configs when model_dir is empty)."""

    text_len: int = 512  # diffusers splits image/text tokens with a hard-coded 512
    prompt_suffix: str = " POINTMAP_STYLE."  # the public release's trigger words
    tiny_text_layers: int = 1
    tiny_image_size: int = 32
    tiny_image_patch: int = 8
    tiny_image_layers: int = 2


@dataclass
class DataConfig:
    root: str = "data/4dnex10m"
    val_root: str = ""
    num_frames: int = 49
    height: int = 480
    width: int = 720
    synthetic_train: int = 0  # > 0: generate this many synthetic training clips if root is empty
    synthetic_val: int = 0
    synthetic_seed: int = 0
    cache: str = ""  # a folder written by `nano4d cache`: read instead of encoding root
    val_cache: str = ""  # the same for val_root


@dataclass
class TrainConfig:
    steps: int = 5000
    batch_size: int = 32  # global batch (§5.1)
    micro_batch_size: int = 1  # per process and forward pass; gradients accumulate up to batch_size
    lr: float = 1e-4
    warmup_steps: int = 100  # the paper says "cosine learning rate warmup" without a length
    weight_decay: float = 0.01
    betas: tuple[float, ...] = (0.9, 0.999)  # AdamW (β1, β2); the paper gives none: torch's defaults
    grad_clip: float = 1.0
    bf16: bool = True
    seed: int = 42
    val_every: int = 250
    save_every: int = 500
    log_every: int = 10
    val_times: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)  # fixed t grid of the validation loss
    out: str = "runs/full"


@dataclass
class SamplingConfig:
    """How `nano4d generate` samples (defaults: the public release's inference.py), stored with every run."""

    frames: int = 0  # frames T (4k + 1); 0: the clip length the model was trained on (data.num_frames)
    steps: int = 50
    guidance: float = 5.0  # classifier-free guidance scale g on the prompt
    seed: int = 42
    scheduler: str = "unipc"  # unipc (Wan's) or euler
    shift: float = 3.0  # flow shift of the sampling schedule (Wan2.1-I2V-480P: 3.0)
    negative_prompt: str = ""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    conditioning: ConditioningConfig = field(default_factory=ConditioningConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


@dataclass(frozen=True)
class Thresholds:
    """The keep rules of `nano4d curate` (§3.3). The paper gives no values; the defaults are justified
    in specs/curation.md. They live here, beside the other defaults, so that the CLI can show them
    in its help without loading the curation code (and torch)."""

    min_luminance: float = 0.1  # Ȳ below: a near-black video (mean 8-bit level < 26)
    max_luminance: float = 0.9  # Ȳ above: a washed-out video (mean 8-bit level > 230)
    max_alignment_loss: float = math.inf  # off: the loss's scale depends on the reconstruction method
    max_speed: float = 0.05  # scene depths per frame: 2.4 depths over 49 frames
    max_acceleration: float = 0.005  # scene depths per frame²
    max_curvature: float = 300.0  # 1 / scene depth (Eq. 1 with ε = 1e-8)
    top_r: float = 80.0  # % kept per confidence metric
    tau: float = 3.0  # HCPR counts C > τ; DUSt3R's demo default confidence threshold

    def __post_init__(self):
        if not 0 <= self.min_luminance <= self.max_luminance <= 1:
            raise ValueError(
                f"luminance bounds need 0 <= min <= max <= 1, got min {self.min_luminance}, max {self.max_luminance}"
            )
        for name in ("max_alignment_loss", "max_speed", "max_acceleration", "max_curvature"):
            value = getattr(self, name)
            if not value >= 0:  # also catches NaN
                raise ValueError(
                    f"{name} must be a non-negative number (or inf to switch it off), got {value}"
                )
        if not 0 < self.top_r <= 100:
            raise ValueError(f"top_r must be a percentage in (0, 100], got {self.top_r}")
        if not math.isfinite(self.tau):
            raise ValueError(f"tau must be a finite confidence value, got {self.tau}")


def _coerce(value, annotation, where: str):
    """Check `value` against a field's type; tuples accept TOML arrays."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where} must be a list, got {value!r}")
        item = typing.get_args(annotation)[0]
        return tuple(_coerce(v, item, where) for v in value)
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported annotation at {where}")
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    wrong_bool = isinstance(value, bool) != (annotation is bool)  # True is an int to Python, not here
    if wrong_bool or not isinstance(value, annotation):
        raise ValueError(f"{where} must be {annotation.__name__}, got {value!r}")
    return value


def _apply(config: Config, section: str, key: str, value) -> None:
    if section not in {f.name for f in dataclasses.fields(Config)}:
        raise ValueError(f"unknown config section [{section}]")
    part = getattr(config, section)
    hints = typing.get_type_hints(type(part))
    if key not in hints:
        raise ValueError(f"unknown config key {section}.{key}; known: {', '.join(hints)}")
    setattr(part, key, _coerce(value, hints[key], f"{section}.{key}"))


def config_from_dict(data: dict, validate: bool = True) -> Config:
    """A Config from `Config.to_dict()` output (e.g. a checkpoint's config.json), validated like a preset."""
    config = Config()
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ValueError(f"config section {section!r} must be a mapping")
        for key, value in values.items():
            _apply(config, section, key, value)
    if validate:
        validate_config(config)
    return config


# The allowed range of every numeric setting, checked when a config is loaded: (low, high, what it is).
AT_LEAST_1, AT_LEAST_0 = (1, math.inf, "at least 1"), (0, math.inf, "at least 0")
POSITIVE = (0, math.inf, "a number > 0")
RANGES = {
    **{f"model.{k}": AT_LEAST_1 for k in ("num_layers", "num_attention_heads", "attention_head_dim", "ffn_dim",
                                          "text_dim", "image_dim", "added_kv_proj_dim", "freq_dim", "rope_max_seq_len")},
    "model.eps": POSITIVE,
    "lora.rank": AT_LEAST_1,
    "lora.alpha": POSITIVE,
    "autoencoder.spatial": AT_LEAST_1,
    "autoencoder.xyz_std": POSITIVE,
    "conditioning.text_len": AT_LEAST_1,
    **{f"conditioning.{k}": AT_LEAST_1 for k in ("tiny_text_layers", "tiny_image_size", "tiny_image_patch",
                                                 "tiny_image_layers")},
    "data.num_frames": AT_LEAST_1,
    "data.height": (2, math.inf, "at least 2"),
    "data.width": (2, math.inf, "at least 2"),
    "data.synthetic_train": AT_LEAST_0,
    "data.synthetic_val": AT_LEAST_0,
    "data.synthetic_seed": AT_LEAST_0,
    **{f"train.{k}": AT_LEAST_1 for k in ("steps", "batch_size", "micro_batch_size", "val_every", "save_every",
                                          "log_every")},
    "train.lr": POSITIVE,
    "train.warmup_steps": AT_LEAST_0,
    "train.weight_decay": AT_LEAST_0,
    "train.grad_clip": POSITIVE,
    "train.seed": AT_LEAST_0,
    "sampling.frames": AT_LEAST_0,
    "sampling.steps": AT_LEAST_1,
    "sampling.guidance": AT_LEAST_0,
    "sampling.seed": AT_LEAST_0,
    "sampling.shift": POSITIVE,
}  # fmt: skip


def validate_config(config: Config) -> None:
    """Every numeric setting within its range, and the rules that tie settings together; else a ValueError."""
    for name, (low, high, what) in RANGES.items():
        section, key = name.split(".")
        value = getattr(getattr(config, section), key)
        exclusive = what == POSITIVE[2]
        if not (math.isfinite(value) and (value > low if exclusive else value >= low) and value <= high):
            raise ValueError(f"{name} must be {what}, got {value!r}")
    for name in ("model.patch_size",):
        if len(config.model.patch_size) != 3 or min(config.model.patch_size) < 1:
            raise ValueError(f"{name} must be three sizes of at least 1, got {config.model.patch_size!r}")
    betas = config.train.betas
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ValueError(f"train.betas must be two numbers in [0, 1), got {betas!r}")
    if not config.train.val_times or not all(0 <= t <= 1 for t in config.train.val_times):
        raise ValueError(f"train.val_times must be times in [0, 1], got {config.train.val_times!r}")
    train, data = config.train, config.data
    if train.batch_size % train.micro_batch_size:
        raise ValueError(
            f"train.batch_size {train.batch_size} must be a multiple of train.micro_batch_size {train.micro_batch_size}"
        )
    if (data.num_frames - 1) % 4:
        raise ValueError(f"data.num_frames must be 4k + 1 (1, 5, 9, …, 49), got {data.num_frames}")
    if config.sampling.frames and (config.sampling.frames - 1) % 4:
        raise ValueError(f"sampling.frames must be 0 (the data's) or 4k + 1, got {config.sampling.frames}")
    if not math.isfinite(config.autoencoder.xyz_mean):
        raise ValueError(f"autoencoder.xyz_mean must be a finite number, got {config.autoencoder.xyz_mean!r}")


def differing_fields(a: Config, b: Config, sections: typing.Iterable[str]) -> list[str]:
    """`section.key (a != b)` for every field of the given sections where the two configs differ."""
    left, right = a.to_dict(), b.to_dict()
    return [
        f"{section}.{key} ({left[section][key]!r} != {right[section][key]!r})"
        for section in sections
        for key in left[section]
        if left[section][key] != right[section][key]
    ]


def read_preset(preset: str | Path, _extended_by: tuple[Path, ...] = ()) -> dict:
    """A preset TOML (a path, or a name in tiny_configs/) as nested dicts, after the preset it `extends`.

    A preset may begin with `extends = "name"` to layer over another preset. A relative
    `model.model_dir` in a preset file is relative to that file, so presets work from any folder.
    """
    path = Path(preset)
    if not path.exists() and (PRESET_DIR / f"{preset}.toml").exists():
        path = PRESET_DIR / f"{preset}.toml"
    if not path.is_file():
        raise ValueError(f"config file {preset} not found")
    if path.resolve() in _extended_by:
        cycle = " → ".join(p.name for p in (*_extended_by, path.resolve()))
        raise ValueError(f"{path}: the presets extend each other in a circle ({cycle})")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: invalid TOML: {error}") from None
    model_dir = data.get("model", {}).get("model_dir") if isinstance(data.get("model"), dict) else None
    if isinstance(model_dir, str) and model_dir and not Path(model_dir).is_absolute():
        data["model"]["model_dir"] = str((path.parent / model_dir).resolve())
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ValueError(f"{path}: extends must name a preset, got {parent!r}")
    parent = parent if (PRESET_DIR / f"{parent}.toml").exists() else path.parent / parent
    merged = read_preset(parent, (*_extended_by, path.resolve()))
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ValueError(f"{path}: config section {section!r} must be a table")
        merged.setdefault(section, {}).update(values)
    return merged


def load_config(preset: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Defaults ← preset TOML (a path, or a name in tiny_configs/) ← `section.key=value` overrides."""
    config = Config()
    if preset is not None:
        try:
            config = config_from_dict(read_preset(preset), validate=False)
        except ValueError as error:
            message = str(error)
            raise ValueError(
                message if message.startswith(("config file", str(preset))) else f"{preset}: {message}"
            ) from None
    for item in overrides:
        name, sep, raw = item.partition("=")
        section, dot, key = name.strip().partition(".")
        if not sep or not dot:
            raise ValueError(f"override {item!r} must look like section.key=value")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word is a string
        _apply(config, section, key, value)
    validate_config(config)
    return config
