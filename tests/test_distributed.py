"""Distributed training (torchrun + FSDP2) reproduces the single-process run; the latent cache command.

Spec: specs/distributed.md

Two 2-process torchrun jobs run on the CPU (gloo): `nano4d train --nproc 2` from scratch, and this
file as a script (`worker`), which checks the meta-device init sequence, records the gathered
gradients of one step and trains the same run killed after step 2 and resumed. The tests compare
what the jobs wrote with a single-process run of the same global batch.
"""

import csv
import dataclasses
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from nanofourdnex.autoencoder import build_autoencoder
from nanofourdnex.cache import CACHE_CONFIG_FILE, clip_dataset, encode_sample, open_prebuilt_cache
from nanofourdnex.cli import app
from nanofourdnex.conditioning import build_encoders
from nanofourdnex.config import config_from_dict, load_config
from nanofourdnex.distributed import (
    broadcast_model_state,
    build_meta_model,
    build_sharded_model,
    process_group,
    shard,
)
from nanofourdnex.generate import load_inference
from nanofourdnex.model import build_model
from nanofourdnex.paper.flow_matching import interpolate
from nanofourdnex.paper.fusion import fuse
from nanofourdnex.paper.mask import guided_mask
from nanofourdnex.synthetic import ensure_synthetic_data
from nanofourdnex.train import batch_loss, train, training_step

ROOT = Path(__file__).resolve().parents[1]
STEPS = 4


def micro_overrides(workdir: Path) -> list[str]:
    """The tiny preset, smaller still; global batch 4 in micro-batches of 1 (2 per process at 2 processes)."""
    return [
        'model.model_dir=""', f'data.root="{workdir}/data/train"', f'data.val_root="{workdir}/data/val"',
        "data.synthetic_train=6",
        "data.synthetic_val=2", "data.num_frames=5", "model.num_layers=1", "train.batch_size=4",
        "train.micro_batch_size=1", "train.warmup_steps=2", "train.log_every=1", f"train.steps={STEPS}",
        "train.val_every=2", "train.save_every=2", "train.grad_clip=0.05",  # clipping active: the global norm counts
    ]  # fmt: skip


def velocity(model, data, config) -> torch.Tensor:
    """u of the model on two cached clips at fixed noise and t (the network's whole input path)."""
    batch = data.batch([0, 1])
    x1 = fuse(batch["rgb"], batch["xyz"], model.strategy)
    condition = batch["cond"]
    mask = guided_mask(config.data.num_frames, *batch["rgb"].shape[-2:], model.strategy).expand(
        2, -1, -1, -1, -1
    )
    noise = torch.randn(x1.shape, generator=torch.Generator().manual_seed(7))
    t = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        return model(interpolate(noise, x1, t), t, mask, condition, batch["text"], batch["image"])


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def worker(workdir: Path) -> None:
    """The body of the torchrun job `python -m tests.test_distributed WORKDIR` (every process runs it)."""
    with process_group() as world:
        config = config_from_dict(json.loads((workdir / "worker_config.json").read_text()))
        data = open_prebuilt_cache(config, config.data.cache)
        channels = data[0]["rgb"].shape[0]
        found = {"world": world.size}

        host = build_model(config, channels, seed=config.train.seed) if world.is_main else None
        sharded = build_sharded_model(
            config, channels, world, host
        )  # meta → shard → to_empty → broadcast → RoPE
        u = velocity(sharded.model, data, config)
        expected = velocity(sharded.host, data, config) if world.is_main else None
        found["init_difference"] = max_difference(u, expected) if world.is_main else None

        broken = build_meta_model(config, channels)
        shard(broken, config.train.bf16)
        broken.to_empty(device=world.device)
        broadcast_model_state(broken, sharded.host)
        with torch.no_grad():  # to_empty leaves arbitrary memory; zeros make the mistake deterministic
            broken.transformer.rope.freqs_cos.zero_()
            broken.transformer.rope.freqs_sin.zero_()
        u = velocity(broken, data, config)
        found["no_rope_difference"] = max_difference(u, expected) if world.is_main else None

        training_step(
            partial(batch_loss, sharded.model),
            sharded.model.strategy,
            data,
            config,
            1,
            world.device,
            world.rank,
            world.size,
        )
        gradients = {n: p.grad.full_tensor() for n, p in sharded.model.named_parameters() if p.requires_grad}

        try:
            train(dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=3)))
        except ValueError as error:
            found["uneven_batch_error"] = str(error)

        train(config, progress=False, stop_after=2)  # "killed" after step 2 ...
        train(config, resume=True, progress=False)  # ... and resumed
        if world.is_main:
            save_file(
                {n: g.contiguous() for n, g in gradients.items()}, str(workdir / "gradients.safetensors")
            )
            (workdir / "worker.json").write_text(json.dumps(found))


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def metrics(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run / "metrics.csv").open()))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Synthetic data, a prebuilt cache, one single-process run and the two 2-process jobs."""
    workdir = tmp_path_factory.mktemp("distributed")
    overrides = micro_overrides(workdir)
    config = load_config("tiny", [*overrides, f'train.out="{workdir}/single"'])
    ensure_synthetic_data(config, progress=False)
    for split in ("train", "val"):
        sets = [a for o in overrides for a in ("--set", o)]
        result = invoke(
            "cache", workdir / "data" / split, "--tiny", *sets, "--out", workdir / "cache" / split
        )
        assert result.exit_code == 0, result.output
    train(config, progress=False)

    worker_config = load_config("tiny", overrides)
    worker_config.data.cache, worker_config.data.val_cache = f"{workdir}/cache/train", f"{workdir}/cache/val"
    worker_config.train.out = f"{workdir}/resumed"
    worker_config.save(workdir / "worker_config.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sets = [a for o in overrides for a in ("--set", o)]
    launches = {
        "cli": [sys.executable, "-m", "nanofourdnex.cli", "train", "--tiny", *sets, "--out", workdir / "cli",
                "--nproc", "2"],
        "worker": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
                   "tests.test_distributed", workdir],
    }  # fmt: skip
    outputs = {}
    for name, command in launches.items():
        done = subprocess.run(
            [str(c) for c in command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        outputs[name] = done.stdout
    return workdir, config, outputs


def test_nproc_launches_torchrun_and_only_rank_0_reports(runs):
    workdir, _, outputs = runs
    lines = [line for line in outputs["cli"].splitlines() if line.startswith("trained")]
    assert len(lines) == 1 and "on 2 processes" in lines[0]
    assert (workdir / "cli" / "loss.png").stat().st_size > 0


@pytest.mark.parametrize("run", ["cli", "resumed"])
def test_two_process_losses_match_one_process_with_the_same_global_batch(runs, run):
    """`cli`: from scratch; `resumed`: killed after step 2 and resumed from its gathered checkpoint."""
    workdir = runs[0]
    single, sharded = metrics(workdir / "single"), metrics(workdir / run)
    assert [r["step"] for r in sharded] == [r["step"] for r in single] == [str(s) for s in range(STEPS + 1)]
    for a, b in zip(single, sharded, strict=True):
        for key in ("train_loss", "val_loss"):
            assert (a[key] == "") == (b[key] == "")
            if a[key]:
                assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-5), (a["step"], key)


def test_fsdp_sum_of_the_rank_shares_is_the_global_batch_gradient(runs):
    """g = (1/B) Σ_i ∇ℓ_i: FSDP's reduction must be a sum, not its default mean over ranks."""
    workdir, config = runs[0], runs[1]
    sharded = load_file(str(workdir / "gradients.safetensors"))
    data = open_prebuilt_cache(config, f"{workdir}/cache/train")
    model = build_model(config, data[0]["rgb"].shape[0], seed=config.train.seed)
    training_step(partial(batch_loss, model), model.strategy, data, config, 1, torch.device("cpu"))
    single = {n: p.grad for n, p in model.transformer.named_parameters() if p.requires_grad}
    assert set(sharded) == {f"transformer.{n}" for n in single}
    nonzero = 0
    for name, gradient in single.items():
        torch.testing.assert_close(sharded[f"transformer.{name}"], gradient, rtol=1e-5, atol=1e-9)
        nonzero += bool(gradient.abs().sum() > 0)
    assert nonzero > len(single) // 3  # LoRA B and the domain embeddings: a scale error would show


def test_meta_init_shard_broadcast_and_rope_recompute_reproduce_the_unsharded_model(runs):
    found = json.loads((runs[0] / "worker.json").read_text())
    assert found["world"] == 2 and found["init_difference"] == 0.0


def test_without_the_rope_recompute_the_sharded_model_is_wrong(runs):
    found = json.loads((runs[0] / "worker.json").read_text())
    assert not found["no_rope_difference"] < 1e-3  # NaN counts as wrong too


def test_global_batch_must_split_evenly_over_the_processes(runs):
    found = json.loads((runs[0] / "worker.json").read_text())
    assert found["uneven_batch_error"] == "train.batch_size 3 must be a multiple of the 2 processes"


def test_gathered_checkpoint_has_the_single_process_format_and_reproduces_its_outputs(runs):
    workdir, config = runs[0], runs[1]
    folders = {
        run: workdir / run / "checkpoints" / f"step_{STEPS:07d}" for run in ("single", "cli", "resumed")
    }
    names = {run: sorted(p.name for p in folder.iterdir()) for run, folder in folders.items()}
    assert names["cli"] == names["resumed"] == names["single"]
    data = open_prebuilt_cache(config, f"{workdir}/cache/train")
    expected = velocity(load_inference(workdir / "single").model, data, config)
    for run in ("cli", "resumed"):
        assert json.loads((folders[run] / "state.json").read_text())["step"] == STEPS
        u = velocity(load_inference(workdir / run).model, data, config)
        torch.testing.assert_close(u, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def test_meta_build_of_the_full_preset_allocates_nothing():
    config = load_config()  # the paper's run: Wan2.1-I2V-14B + LoRA r = 64, bf16
    model = build_meta_model(config, 16)
    parameters = list(model.parameters())
    assert all(p.is_meta for p in parameters)
    frozen = [p for p in parameters if not p.requires_grad]
    trainable = [p for p in parameters if p.requires_grad]
    assert sum(p.numel() for p in frozen) == 16_394_878_784
    assert sum(p.numel() for p in trainable) == 209_715_200 + 2 * 5120  # LoRA + e_RGB, e_XYZ
    assert {p.dtype for p in frozen} == {torch.bfloat16} and {p.dtype for p in trainable} == {torch.float32}


def test_cache_built_twice_or_in_two_shards_or_while_training_holds_the_same_latents(runs, tmp_path):
    workdir, config = runs[0], runs[1]
    whole = workdir / "cache" / "train"
    args = ["--tiny", *[a for o in micro_overrides(workdir) for a in ("--set", o)]]
    again = invoke("cache", workdir / "data" / "train", *args, "--out", whole)
    assert again.exit_code == 0 and "0 encoded now, 6 already cached" in again.output  # resumable
    for index in (1, 0):
        result = invoke("cache", workdir / "data" / "train", *args, "--out", tmp_path, "--num-shards", 2,
                        "--shard-index", index)  # fmt: skip
        assert result.exit_code == 0 and "3 clips, 3 encoded now" in result.output
    on_the_fly = workdir / "single" / "cache" / "train"
    files = sorted(p.name for p in whole.glob("*.safetensors"))
    assert len(files) == 6
    for folder in (tmp_path, on_the_fly, workdir / "cli" / "cache" / "train"):
        assert sorted(p.name for p in folder.glob("*.safetensors")) == files
        for name in files:
            a, b = load_file(str(whole / name)), load_file(str(folder / name))
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    dataset = clip_dataset(config, config.data.root)
    item = dataset[2]
    direct = encode_sample(item.rgb, item.xyz, item.caption, build_autoencoder(config),
                           build_encoders(config, seed=config.train.seed), config.model.fusion)  # fmt: skip
    cached = load_file(str(whole / f"{dataset.names[2]}.safetensors"))
    assert all(torch.equal(direct[k], cached[k]) for k in direct)


@pytest.mark.parametrize(
    "setup, message",
    [
        ("missing", "data folder {data} does not exist"),
        ("empty", "no usable clips under {data}"),
        ("shard", "shard index 2 must lie in [0, 2)"),
    ],
)
def test_cache_command_errors_are_one_line(tmp_path, setup, message):
    data = tmp_path / "clips"
    if setup != "missing":
        data.mkdir()
    extra = ["--num-shards", 2, "--shard-index", 2] if setup == "shard" else []
    if setup == "shard":
        ensure_synthetic_data(load_config("tiny", ['model.model_dir=""', f'data.root="{data}"', "data.synthetic_train=1",
                                                   'data.val_root=""']))  # fmt: skip
    result = invoke("cache", data, "--tiny", "--out", tmp_path / "cache", *extra)
    assert result.exit_code != 0
    assert result.output.strip() == f"error: {message.format(data=data)}"


def test_training_rejects_a_missing_or_mismatched_cache(runs, tmp_path):
    workdir, config = runs[0], runs[1]
    run = [f'train.out="{tmp_path}/run"']
    missing = load_config("tiny", [*micro_overrides(workdir), *run, f'data.cache="{tmp_path}/none"'])
    with pytest.raises(ValueError, match="cache folder .*none does not exist"):
        train(missing, progress=False)
    other = load_config("tiny", [*micro_overrides(workdir), *run, f'data.cache="{workdir}/cache/train"',
                                 "autoencoder.xyz_mean=0.5"])  # fmt: skip
    with pytest.raises(ValueError, match=r"another config: autoencoder.xyz_mean \(0.5 != 0.0578\)"):
        train(other, progress=False)
    recorded = config_from_dict(json.loads((workdir / "cache" / "train" / CACHE_CONFIG_FILE).read_text()))
    assert recorded.data.num_frames == config.data.num_frames


def test_full_preset_dry_run_passes_from_the_command_line():
    result = invoke("train", "--full", "--dry-run")
    assert result.exit_code == 0 and result.output.startswith("dry run passed: output (1, 16, 13, 60, 180)")


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
