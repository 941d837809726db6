"""Training: Eq. 5-6 on cached 6D latents, exact kill-and-resume, atomic safetensors checkpoints.

Spec: specs/training.md
"""

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from nanofourdnex.config import load_config
from nanofourdnex.generate import load_inference
from nanofourdnex.model import DOMAIN_FILE, LORA_FILE, TRAINED_BASE_FILE
from nanofourdnex.train import OPTIMIZER_FILE, RANDOM_INIT_FILE, STATE_FILE, step_generator, train


def micro_config(tmp_path, run: str, **train):
    """The tiny preset, smaller still: a few seconds per run."""
    overrides = [
        f'data.root="{tmp_path}/data/train"', f'data.val_root="{tmp_path}/data/val"', "data.synthetic_train=6",
        "data.synthetic_val=2", "data.num_frames=5", "model.num_layers=1", f'train.out="{tmp_path}/{run}"',
        "train.batch_size=2", "train.micro_batch_size=1", "train.warmup_steps=2", "train.log_every=1",
    ]  # fmt: skip
    overrides += [f"train.{k}={v}" for k, v in train.items()]
    return load_config("tiny", overrides)


def rows(run_dir):
    return list(csv.DictReader((run_dir / "metrics.csv").open()))


def test_killed_and_resumed_run_reproduces_the_uninterrupted_losses_exactly(tmp_path):
    straight = train(micro_config(tmp_path, "straight", steps=6, val_every=2, save_every=2), progress=False)
    config = micro_config(tmp_path, "resumed", steps=6, val_every=2, save_every=2)
    train(config, progress=False, stop_after=3)  # "killed" after step 3 (checkpoint at 3)
    resumed = train(config, resume=True, progress=False)
    for a, b in zip(rows(straight.out), rows(resumed.out), strict=True):
        assert (a["step"], a["train_loss"], a["val_loss"], a["lr"]) == (
            b["step"],
            b["train_loss"],
            b["val_loss"],
            b["lr"],
        )
    assert resumed.final_val_loss == straight.final_val_loss


def test_checkpoints_are_safetensors_and_json_written_atomically(tmp_path):
    result = train(micro_config(tmp_path, "run", steps=4, val_every=4, save_every=1), progress=False)
    checkpoints = sorted((result.out / "checkpoints").iterdir())
    assert [c.name for c in checkpoints] == ["step_0000003", "step_0000004"]  # the last two are kept
    assert (result.out / "latest").read_text().strip() == "step_0000004"
    files = {p.name for p in checkpoints[-1].iterdir()}
    weights = {LORA_FILE, DOMAIN_FILE, TRAINED_BASE_FILE, OPTIMIZER_FILE, RANDOM_INIT_FILE}
    assert files == weights | {STATE_FILE, "config.json"}  # the tiny preset trains part of its base
    for name in weights:
        assert load_file(str(checkpoints[-1] / name))  # loads without pickle
    assert json.loads((checkpoints[-1] / STATE_FILE).read_text())["step"] == 4
    assert not list(result.out.rglob("*.tmp"))
    assert (result.out / "loss.png").stat().st_size > 0


def test_a_checkpoint_rebuilds_the_trained_network_for_inference(tmp_path):
    result = train(micro_config(tmp_path, "run", steps=3, val_every=3, save_every=3), progress=False)
    inference = load_inference(result.out)
    lora = load_file(str(result.out / "checkpoints" / "step_0000003" / LORA_FILE))
    state = {
        f"transformer.{k}": v for k, v in inference.model.transformer.state_dict().items() if "lora_" in k
    }
    renamed = {k.replace(".default", ""): v for k, v in state.items()}
    assert set(renamed) == set(lora) and all(torch.equal(renamed[k], lora[k]) for k in lora)
    assert inference.model.transformer.domain_embedding.weight.abs().sum() > 0  # trained, not re-initialised


def test_training_lowers_the_held_out_loss(tmp_path):
    result = train(micro_config(tmp_path, "run", steps=40, val_every=40, save_every=40), progress=False)
    assert result.final_val_loss < 0.9 * result.initial_val_loss


def test_every_random_draw_of_a_step_is_a_function_of_seed_and_step():
    a, b = step_generator(1, 5), step_generator(1, 5)
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    assert not torch.equal(
        torch.rand(4, generator=step_generator(1, 6)), torch.rand(4, generator=step_generator(1, 5))
    )


def test_batch_must_divide_into_micro_batches(tmp_path):
    with pytest.raises(ValueError, match="multiple of micro_batch_size"):
        train(micro_config(tmp_path, "run", batch_size=3, micro_batch_size=2), progress=False)
