"""Checkpoints of a training run: written atomically, in safetensors and JSON only, resumable exactly.

A run folder holds

    config.json, metrics.csv, loss.png
    latest                          the name of the newest complete checkpoint
    checkpoints/step_XXXXXXX/       one checkpoint:
        pytorch_lora_weights.safetensors, domain_embeddings.safetensors   the adapters (model.save_adapters)
        trained_base.safetensors    base parameters trained in full (lora.train_base), if any
        random_init.safetensors     the frozen random base and tiny encoders of a run without model_dir,
                                    under the stock diffusers / transformers parameter names
        optimizer.safetensors       AdamW state; state.json: step, parameter groups, scheduler
        config.json

A checkpoint is written into a temporary folder and renamed into place, then `latest` is replaced by
rename, so a kill at any moment leaves the previous checkpoint intact. The single-process layout is
the only one: under FSDP every rank gathers the adapters and AdamW state to rank 0, which writes it;
resuming reads it on rank 0 and scatters it back into the shards (`distributed.gather_to_host`,
`scatter_from_host`), so a run may resume at another world size. In one process the same calls
reduce to the model's and the optimizer's own state dicts.

A run folder is never emptied without being asked: `prepare_run_folder` refuses a folder that holds
a run unless the caller resumes it (with a config that defines the same network and data) or asks
for it to be overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file

from .conditioning import Encoders
from .config import Config, config_from_dict, differing_fields
from .distributed import ShardedModel, broadcast_object, gather_to_host, scatter_from_host
from .model import LORA_FILE, FourDNeX
from .reading import read_json, read_safetensors

OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
RANDOM_INIT_FILE = "random_init.safetensors"
TRANSFORMER_FILE = "transformer.safetensors"  # the whole DiT in a pretraining checkpoint (pretrain.py)
KEEP = 2  # checkpoints kept in a run folder
# Everything that defines the network and its data: a resumed run must agree on all of it.
DEFINING = ("model", "lora", "autoencoder", "conditioning", "data")
# ... except these, which only say where things are or how they are computed.
NOT_DEFINING = ("model.gradient_checkpointing", "data.cache", "data.val_cache")


# --- The random base of runs without model_dir ---


def _stock_name(name: str) -> str:
    """A transformer parameter's name without peft's wrapper: `...to_q.base_layer.weight` → `...to_q.weight`."""
    return name.replace(".base_layer.", ".")


def random_init_state(model: FourDNeX, encoders: Encoders) -> dict[str, torch.Tensor]:
    """The randomly initialised (frozen) base DiT and tiny encoders of a run without `model_dir`.

    Saved with each checkpoint so that generation and resumption rebuild exactly the network that was
    trained, independent of the torch version's random number streams. The transformer's keys are the
    stock `WanTransformer3DModel` names, so the file also loads into a model without adapters.
    """
    state = {
        f"transformer.{_stock_name(k)}": v
        for k, v in model.transformer.state_dict().items()
        if "lora_" not in k and k != "domain_embedding.weight"
    }
    state |= {f"text_encoder.{k}": v for k, v in encoders.text_encoder.state_dict().items()}
    state |= {f"image_encoder.{k}": v for k, v in encoders.image_encoder.state_dict().items()}
    return {k: v.detach().clone() for k, v in state.items()}  # clone: UMT5 ties two of its weights


def load_random_init(path: Path, model: FourDNeX | None = None, encoders: Encoders | None = None) -> None:
    """Inverse of `random_init_state`: load the saved base DiT and/or the tiny encoders in place."""
    parts: dict[str, dict[str, torch.Tensor]] = {"transformer": {}, "text_encoder": {}, "image_encoder": {}}
    for key, value in read_safetensors(path).items():
        part, name = key.split(".", 1)
        if part not in parts:
            raise ValueError(f"{path} holds {key!r}, not a transformer or encoder weight")
        parts[part][name] = value
    if model is not None:
        ours = {
            _stock_name(k): k
            for k in model.transformer.state_dict()
            if "lora_" not in k and k != "domain_embedding.weight"
        }
        missing = sorted(set(ours) - set(parts["transformer"]))
        unexpected = sorted(set(parts["transformer"]) - set(ours))
        if missing or unexpected:
            raise ValueError(
                f"{path} does not match this network: it lacks {missing[:3]} and has extra {unexpected[:3]}"
            )
        model.transformer.load_state_dict({ours[k]: v for k, v in parts["transformer"].items()}, strict=False)
    if encoders is not None:
        try:
            encoders.text_encoder.load_state_dict(parts["text_encoder"])
            encoders.image_encoder.load_state_dict(parts["image_encoder"])
        except RuntimeError as error:
            reason = str(error).splitlines()[0]
            raise ValueError(f"{path}: its encoders do not match this config ({reason})") from None


# --- Run folders ---


def latest_checkpoint(run_or_checkpoint: Path) -> Path:
    """A checkpoint folder, or the one a run folder's `latest` pointer names."""
    path = Path(run_or_checkpoint)
    if not path.is_dir():
        raise ValueError(f"{path} is not a folder (expected a run folder or a checkpoint folder)")
    pointer = path / "latest"
    if pointer.exists():
        name = pointer.read_text().strip()
        if not name:
            raise ValueError(f"{pointer} is empty: the run wrote no complete checkpoint")
        folder = path / "checkpoints" / name
        if not (folder / STATE_FILE).is_file():
            raise ValueError(f"{pointer} names {name}, but {folder} holds no checkpoint")
        return folder
    if (path / STATE_FILE).exists() or (path / LORA_FILE).exists():  # ours, or the release's adapters alone
        return path
    raise ValueError(f"{path} is neither a run folder with a `latest` checkpoint nor a checkpoint folder")


def holds_a_run(out: Path) -> bool:
    """Whether `out` holds a run that trained (a config.json alone is a start that failed before step 0)."""
    return any((out / name).exists() for name in ("latest", "checkpoints", "metrics.csv"))


# Training settings a resumed run cannot change: the draws (seed) and what the optimiser's and the
# schedule's saved states fix (a new value would be recorded but not used).
KEPT_ON_RESUME = ("train.seed ", "train.lr ", "train.warmup_steps ", "train.weight_decay ", "train.betas ")


def definition_mismatch(config: Config, recorded: Config) -> list[str]:
    """`section.key (a != b)` for every field that defines the network, the data or the optimiser and differs."""
    return [
        line for line in differing_fields(config, recorded, DEFINING) if not line.startswith(NOT_DEFINING)
    ] + [line for line in differing_fields(config, recorded, ("train",)) if line.startswith(KEPT_ON_RESUME)]


# Everything a run writes into its folder (model/: pretrain's export).
RUN_FILES = ("checkpoints", "latest", "metrics.csv", "config.json", "loss.png", "cache", "model")


def check_only_run_files(out: Path) -> None:
    """ValueError if a folder without a run holds anything a run does not write (it would be mixed in or replaced)."""
    others = sorted(p.name for p in out.iterdir() if p.name not in RUN_FILES and not p.name.startswith("."))
    if others:
        raise ValueError(
            f"{out} is not a run folder (it holds {', '.join(others[:3])}{', …' * (len(others) > 3)}); "
            "choose a new or empty --out"
        )
    if (out / "config.json").is_file():  # a start that failed before step 0, or a file of the user's?
        try:
            config_from_dict(read_json(out / "config.json"), validate=False)
        except ValueError:
            raise ValueError(
                f"{out} holds a config.json that is not a run's; choose a new or empty --out"
            ) from None


def prepare_run_folder(out: Path, config: Config, resume: bool, overwrite: bool) -> bool:
    """Make `out` ready for this run; True when there is a checkpoint to resume from.

    A folder that holds a run is resumed (resume=True: its config must define the same network, data
    and optimiser, and ask for at least the steps done), replaced (overwrite=True) or refused; nothing
    is deleted otherwise. A folder without a run may hold only what a run writes.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    has_run = out.is_dir() and holds_a_run(out)
    if resume and not has_run:
        raise ValueError(f"there is no run in {out} to resume; leave out --resume to start one")
    if out.is_dir() and not has_run:
        check_only_run_files(out)
    if has_run:
        if resume and overwrite:
            raise ValueError("choose --resume or --overwrite, not both")
        if overwrite:
            for name in ("checkpoints", "cache"):
                shutil.rmtree(out / name, ignore_errors=True)
            for name in ("latest", "metrics.csv", "config.json", "loss.png"):
                (out / name).unlink(missing_ok=True)
        elif not resume:
            raise ValueError(
                f"{out} already holds a training run; pass --resume to continue it or --overwrite to replace it"
            )
        elif (out / "config.json").exists():
            differing = definition_mismatch(config_from_dict(read_json(out / "config.json")), config)
            if differing:
                raise ValueError(
                    f"cannot resume {out} with another network, data or optimiser (the run's != this command's): "
                    + "; ".join(differing)
                )
        if resume and (out / "latest").exists():
            step = read_json(latest_checkpoint(out) / STATE_FILE).get("step", 0)
            if step > config.train.steps:
                raise ValueError(
                    f"{out} is at step {step}, past train.steps = {config.train.steps}; ask for more steps"
                )
    try:
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / "config.json")
    except OSError as error:
        raise ValueError(f"cannot write the run folder {out}: {error.strerror or error}") from None
    return resume and (out / "latest").exists()


# --- Writing and reading checkpoints ---


def write_checkpoint(
    out: Path,
    step: int,
    save_weights: Callable[[Path], None],
    optimizer_state: dict,
    scheduler,
    config: Config,
) -> Path:
    """One checkpoint, atomically: `save_weights(folder)` writes the weights, then the optimizer (a
    single-process `optimizer.state_dict()`), the schedule, the step and the config; `latest` names it."""
    checkpoints = out / "checkpoints"
    final = checkpoints / f"step_{step:07d}"
    temporary = checkpoints / f".step_{step:07d}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    save_weights(temporary)
    config.save(temporary / "config.json")
    tensors = {f"state.{i}.{k}": v for i, s in optimizer_state["state"].items() for k, v in s.items()}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(temporary / OPTIMIZER_FILE))
    scheduler_state = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    meta = {"step": step, "param_groups": optimizer_state["param_groups"], "scheduler": scheduler_state}
    (temporary / STATE_FILE).write_text(json.dumps(meta, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(temporary, final)
    pointer = out / ".latest.tmp"
    pointer.write_text(final.name + "\n")
    os.replace(pointer, out / "latest")
    for old in sorted(checkpoints.glob("step_*"))[:-KEEP]:
        shutil.rmtree(old)
    return final


def save_checkpoint(
    out: Path,
    step: int,
    sharded: ShardedModel,
    optimizer,
    scheduler,
    config: Config,
    encoders: Encoders | None,
) -> None:
    """Collective: gather adapters and AdamW state to rank 0 (in one process: itself), which writes them.

    The weights are the adapters (`FourDNeX.save_adapters`) and, for a run without model_dir, the
    random base and tiny encoders it trains on (`random_init.safetensors`).
    """
    optimizer_state = gather_to_host(sharded, optimizer)
    if sharded.host is None:
        return
    host = sharded.host

    def save_weights(folder: Path) -> None:
        host.save_adapters(folder)
        if not config.model.model_dir:
            save_file(random_init_state(host, encoders), str(folder / RANDOM_INIT_FILE))

    write_checkpoint(out, step, save_weights, optimizer_state, scheduler, config)


def read_training_state(checkpoint: Path) -> tuple[dict, dict]:
    """(state.json: step, param groups, scheduler; the AdamW state as a single-process `optimizer.state_dict()`)."""
    meta = read_json(checkpoint / STATE_FILE)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in read_safetensors(checkpoint / OPTIMIZER_FILE).items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    return meta, {"state": state, "param_groups": meta["param_groups"]}


def load_checkpoint(checkpoint: Path | None, sharded: ShardedModel, optimizer, scheduler) -> int:
    """Collective inverse of `save_checkpoint`: rank 0 reads the checkpoint, every rank gets its shards.

    Restores the adapters, the AdamW state and the schedule; returns the step to continue from. (The
    random base of a run without model_dir is loaded into the model before it is sharded: `train.train`.)
    """
    meta, optimizer_state = None, None
    if sharded.host is not None:
        sharded.host.load_adapters(checkpoint)
        meta, optimizer_state = read_training_state(checkpoint)
    scatter_from_host(sharded, optimizer, optimizer_state)
    meta = broadcast_object(meta)
    load_scheduler(scheduler, meta)
    return meta["step"]


def load_scheduler(scheduler, meta: dict) -> None:
    """The learning-rate schedule's state from a checkpoint's state.json (its lambdas are rebuilt, not stored)."""
    scheduler.load_state_dict(
        {**meta["scheduler"], "lr_lambdas": [None] * len(meta["scheduler"]["base_lrs"])}
    )
