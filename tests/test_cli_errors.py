"""Nothing lost, nothing silent: every bad input to every command is one line on stderr and exit code 2.

Spec: specs/training.md, specs/generation.md (the error cases of every command: specs/README.md)

Each case of the table runs the real command (typer's CliRunner) and asserts: exit code 2, exactly one
line on stderr naming the problem, no traceback, and that nothing a user made was deleted or left
half-written. Data-loss cases (training twice into one folder, a killed data write, resuming with
another config) and the image formats cameras and editors write have tests of their own below.
"""

from __future__ import annotations

import errno
import hashlib
import json
import pickle
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from nanofourdnex.checkpoint import RANDOM_INIT_FILE
from nanofourdnex.cli import app, path_override
from nanofourdnex.config import load_config
from nanofourdnex.model import LORA_FILE, RELEASE_DOMAIN_FILE
from nanofourdnex.reading import load_image
from nanofourdnex.synthetic import clip_seed, ensure_synthetic_data, make_scene
from nanofourdnex.train import train

MICRO = [
    'model.model_dir=""', "data.synthetic_train=4", "data.synthetic_val=1", "data.num_frames=5", "model.num_layers=1",
    "train.steps=2", "train.batch_size=2", "train.micro_batch_size=2", "train.warmup_steps=1",
    "train.val_every=2", "train.save_every=2", "lora.train_base=[]",
]  # fmt: skip


def micro(root: Path, run: str = "run", *extra: str) -> list[str]:
    data = [f'data.root="{root}/data/train"', f'data.val_root="{root}/data/val"', f'train.out="{root}/{run}"']
    return [*data, *MICRO, *extra]


def sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A two-step micro run, a held-out 32×48 first frame, and the data the run was trained on."""
    root = tmp_path_factory.mktemp("errors")
    train(load_config("tiny", micro(root)), progress=False)
    image = root / "first_frame.png"
    iio.imwrite(image, make_scene(clip_seed(777, 0), num_frames=5, height=32, width=48).rgb[0])
    return root, root / "run", image


def invoke(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stderr, result.output


def assert_one_line(code: int, stderr: str, output: str, message: str) -> None:
    assert code == 2, f"exit code {code}: {output[-500:]}"
    assert "Traceback" not in output
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"stderr is not one error line: {stderr!r}"
    assert message in lines[0], f"{message!r} not in {lines[0]!r}"


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under a folder with its content hash: to prove nothing was deleted or changed."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


# --- Settings out of range: refused when the config loads, with the range in the message ---


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.steps=-5", "train.steps must be at least 1, got -5"),
        ("train.steps=0", "train.steps must be at least 1, got 0"),
        ("train.batch_size=0", "train.batch_size must be at least 1, got 0"),
        ("train.micro_batch_size=0", "train.micro_batch_size must be at least 1, got 0"),
        ("train.save_every=0", "train.save_every must be at least 1, got 0"),
        ("train.log_every=0", "train.log_every must be at least 1, got 0"),
        ("train.lr=-1e-3", "train.lr must be a number > 0, got -0.001"),
        ("train.betas=[0.9, 1.5]", "train.betas must be two numbers in [0, 1)"),
        ("train.batch_size=3", "train.batch_size 3 must be a multiple of train.micro_batch_size 2"),
        ("data.num_frames=6", "data.num_frames must be 4k + 1"),
        ("sampling.guidance=-1", "sampling.guidance must be at least 0, got -1.0"),
        ("model.num_layers=0", "model.num_layers must be at least 1, got 0"),
        ("train.nonsense=1", "unknown config key train.nonsense"),
    ],
)
def test_train_refuses_a_setting_out_of_range_before_doing_anything(tmp_path, override, message):
    code, stderr, output = invoke("train", "--tiny", *sets([*micro(tmp_path), override]))
    assert_one_line(code, stderr, output, message)
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


def test_train_refuses_a_base_folder_that_cannot_serve_before_doing_anything(tmp_path):
    """A base of another architecture (transformer/config.json) or without its encoders fails before the data."""
    base = tmp_path / "base"
    (base / "transformer").mkdir(parents=True)
    stored = {
        "_class_name": "WanTransformer3DModel",
        "num_layers": 2,
        "ffn_dim": 256,
    }  # the rest: diffusers' defaults
    (base / "transformer" / "config.json").write_text(json.dumps(stored))
    overrides = [*micro(tmp_path), f'model.model_dir="{base}"', "model.num_layers=2"]
    code, stderr, output = invoke("train", "--tiny", *sets(overrides))
    assert_one_line(
        code, stderr, output, "differs from the config in: num_attention_heads, attention_head_dim"
    )
    tiny = load_config("tiny").model  # the same architecture, but no encoder folders
    stored = {k: getattr(tiny, k) for k in ("num_attention_heads", "attention_head_dim", "text_dim", "freq_dim",
                                            "image_dim", "added_kv_proj_dim", "rope_max_seq_len")}  # fmt: skip
    (base / "transformer" / "config.json").write_text(json.dumps({"num_layers": 2, "ffn_dim": 256, **stored}))
    code, stderr, output = invoke("train", "--tiny", *sets(overrides))
    assert_one_line(code, stderr, output, "has no text_encoder/ folder")
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


# --- Files that are not what they should be, locations that cannot be written ---


def corrupt(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])  # a truncated copy


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("truncated LoRA", "is not a readable safetensors file"),
        ("truncated random init", "is not a readable safetensors file"),
        ("empty latest", "is empty: the run wrote no complete checkpoint"),
        ("dangling latest", "names step_0000099, but"),
        ("frames 0", "--frames must be 4k + 1"),
        ("frames -3", "--frames must be 4k + 1"),
        ("frames 6", "frames must be 4k + 1"),
        (
            "frames 257",
            "257 frames are 65 latent frames; the model's positions (RoPE) reach 64, so at most 253",
        ),
        ("seed -1", "seed must lie in [0, 2^63), got -1"),
        ("seed 99999999999999999999", "seed must lie in [0, 2^63), got 99999999999999999999"),
        ("out is a file", "is a file, not a folder"),
        ("out not empty", "is not empty; pass --overwrite"),
        ("unknown trajectory", "--trajectory must be one of"),
        ("trajectory of other length", "holds 3 cameras, but 5 frames are generated"),
        ("disk full", "No space left on device"),
    ],
)
def test_generate_refuses_bad_input_in_one_line_before_any_network_loads(
    trained, tmp_path, monkeypatch, case, message
):
    _, run, image = trained
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    for file in (run / "checkpoints" / "step_0000002").iterdir():
        (checkpoint / file.name).write_bytes(file.read_bytes())
    out = tmp_path / "out"
    args = ["generate", image, "--checkpoint", checkpoint, "--out", out, "--steps", "1", "--device", "cpu"]
    if case == "truncated LoRA":
        corrupt(checkpoint / LORA_FILE)
    elif case == "truncated random init":
        corrupt(checkpoint / RANDOM_INIT_FILE)
    elif case in ("empty latest", "dangling latest"):
        (tmp_path / "latest").write_text("" if case == "empty latest" else "step_0000099\n")
        args[3] = tmp_path
    elif case.startswith(("frames", "seed")):
        args += [f"--{case.split()[0]}", case.split()[1]]
    elif case == "out is a file":
        out.write_text("mine")
    elif case == "out not empty":
        out.mkdir()
        (out / "mine.txt").write_text("mine")
    elif case == "unknown trajectory":
        args += ["--trajectory", "spiral"]
    elif case == "trajectory of other length":
        from nanofourdnex.outputs import write_cameras_json

        write_cameras_json(tmp_path / "path.json", np.eye(3), np.tile(np.eye(3), (3, 1, 1)), np.zeros((3, 3)))
        args += ["--trajectory", tmp_path / "path.json"]
    elif case == "disk full":

        def full(self, *args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))

        monkeypatch.setattr(Path, "touch", full)
    # Every input is checked before the network is built: building it here would be a failure.
    if case not in (
        "truncated LoRA",
        "truncated random init",
        "empty latest",
        "dangling latest",
        "unsafe pickle",
    ):
        monkeypatch.setattr(
            "nanofourdnex.generate.load_inference", lambda *a, **k: pytest.fail("model loaded")
        )
    before = fingerprint(tmp_path)
    assert_one_line(*invoke(*args), message)
    assert fingerprint(tmp_path) == before, "a failed generation changed or left files"
    assert not list(tmp_path.glob(".*.partial"))


def test_a_release_domain_file_that_needs_code_to_unpickle_is_refused(trained, tmp_path):
    from nanofourdnex.model import read_release_domain_embeddings

    path = tmp_path / RELEASE_DOMAIN_FILE
    path.write_bytes(pickle.dumps(Path("x")))
    with pytest.raises(ValueError, match="safe loader"):
        read_release_domain_embeddings(path)
    torch.save({"learnable_domain_embeddings": torch.ones(2, 4)}, path)
    assert read_release_domain_embeddings(path).shape == (2, 4)


def test_a_failure_while_sampling_leaves_no_partial_folder_and_the_old_output_intact(
    trained, tmp_path, monkeypatch
):
    _, run, image = trained
    out = tmp_path / "out"
    out.mkdir()
    (out / "sixd.npz").write_text("an earlier generation")

    def broken(*args, **kwargs):
        raise ValueError("the sampler broke")

    monkeypatch.setattr("nanofourdnex.generate.generate_6d", broken)
    code, stderr, output = invoke(
        "generate", image, "--checkpoint", run, "--out", out, "--overwrite", "--device", "cpu"
    )
    assert_one_line(code, stderr, output, "the sampler broke")
    assert (out / "sixd.npz").read_text() == "an earlier generation" and len(list(out.iterdir())) == 1
    assert not list(tmp_path.glob(".*.partial"))


@pytest.mark.parametrize("where", ["the checkpoint", "a folder of the user's", "the input image's folder"])
def test_overwrite_replaces_only_an_earlier_generation_never_its_inputs_or_the_users_files(
    trained, tmp_path, where
):
    _, run, image = trained
    if where == "the checkpoint":
        out = run / "checkpoints" / (run / "latest").read_text().strip()
        message = "is not an earlier generate output"
    elif where == "a folder of the user's":
        out = tmp_path / "mine"
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        message = "is not an earlier generate output"
    else:  # even one that looks like an earlier output
        out = tmp_path / "photos"
        out.mkdir()
        (out / "sixd.npz").write_text("an earlier generation")
        (out / "photo.png").write_bytes(image.read_bytes())
        image, message = out / "photo.png", "holds the input image"
    before = fingerprint(out)
    code, stderr, output = invoke(
        "generate", image, "--checkpoint", run, "--out", out, "--overwrite", "--device", "cpu"
    )
    assert_one_line(code, stderr, output, message)
    assert fingerprint(out) == before


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("stats samples", "--samples must be at least 1, got -3"),
        ("stats no clips", "is not a directory"),
        ("stats out in no folder", "name a file in an existing folder"),
        ("recover truncated npz", "is not readable"),
        ("recover out is a file", "Not a directory"),
        ("recover into a generate output", "holds files a recovery does not write (rgb.mp4, sixd.npz)"),
        ("recover over an earlier one", "holds an earlier recovery; pass --overwrite"),
        ("cache out is a file", "Not a directory"),
        ("cache no shards", "--num-shards must be at least 1, got 0"),
        ("pretrain steps 0", "train.steps must be at least 1, got 0"),
        ("pretrain export not empty", "is not empty; pass --overwrite to replace the model folder"),
        ("pretrain export is a file", "is a file, not a folder"),
        ("pretrain export in the run", "overlaps the run folder"),
        (
            "pretrain export over the user's",
            "holds files a model folder does not write (notes.txt); choose another --export",
        ),
        ("view missing", "does not exist"),
    ],
)
def test_every_other_command_fails_in_one_line(trained, tmp_path, command, message):
    root, _, _ = trained
    data = root / "data" / "train"
    if command == "stats samples":
        args = ["stats", data, "--samples", "-3"]
    elif command == "stats out in no folder":
        args = ["stats", data, "--out", tmp_path / "nowhere" / "stats.toml"]
    elif command == "stats no clips":
        args = ["stats", tmp_path / "nothing"]
    elif command == "recover truncated npz":
        np.savez(tmp_path / "sixd.npz", xyz=np.zeros((2, 4, 4, 3)))
        corrupt(tmp_path / "sixd.npz")
        args = ["recover", tmp_path / "sixd.npz", "--out", tmp_path / "recovery"]
    elif command == "recover out is a file":
        rng = np.random.default_rng(0)
        np.savez(
            tmp_path / "sixd.npz", xyz=make_scene(3, num_frames=2, height=12, width=16).xyz + 0 * rng.random()
        )
        (tmp_path / "file").write_text("mine")
        args = ["recover", tmp_path / "sixd.npz", "--out", tmp_path / "file" / "recovery"]
    elif command in ("recover into a generate output", "recover over an earlier one"):
        np.savez(tmp_path / "sixd.npz", xyz=make_scene(3, num_frames=2, height=12, width=16).xyz)
        earlier = tmp_path / "earlier"
        earlier.mkdir()
        names = ["cameras.json"] + (["sixd.npz", "rgb.mp4"] if command.endswith("output") else [])
        for name in names:
            (earlier / name).write_text("earlier")
        args = ["recover", tmp_path / "sixd.npz", "--out", earlier]
    elif command == "cache no shards":
        args = ["cache", data, "--tiny", "--out", tmp_path / "cache", "--num-shards", "0"]
    elif command == "cache out is a file":
        (tmp_path / "file").write_text("mine")
        args = ["cache", data, "--tiny", "--out", tmp_path / "file" / "cache", *sets(["data.num_frames=5"])]
    elif command == "pretrain steps 0":
        args = ["pretrain", "--tiny", "--steps", "0", "--out", tmp_path / "pre"]
    elif command.startswith("pretrain export"):  # refused before any training: no run folder
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "notes.txt").write_text("mine")
        export = tmp_path / "mine" / ("notes.txt" if command.endswith("file") else "")
        export = tmp_path / "pre" / "checkpoints" if command.endswith("run") else export
        if command.endswith("not empty"):  # an earlier model folder: replaced only with --overwrite
            export = tmp_path / "earlier"
            export.mkdir()
            (export / "manifest.json").write_text("{}")
        small = ["data.synthetic_train=4", "data.synthetic_val=1", "data.num_frames=5", "model.num_layers=1"]
        args = [
            "pretrain",
            "--tiny",
            "--steps",
            "1",
            "--out",
            tmp_path / "pre",
            "--export",
            export,
            *sets(small),
            *["--overwrite"] * command.endswith("user's"),  # even so
        ]
    else:
        args = ["view", tmp_path / "nowhere", "--save", tmp_path / "x.rrd"]
    assert_one_line(*invoke(*args), message)
    if command.startswith("pretrain"):
        assert not (tmp_path / "pre").exists()  # refused before the run folder is made
    if command.startswith("pretrain export"):
        assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    if command in ("recover into a generate output", "recover over an earlier one"):
        assert all(p.read_text() == "earlier" for p in (tmp_path / "earlier").iterdir())


def test_caching_into_a_folder_of_clips_encoded_otherwise_is_refused_before_any_encoding(trained, tmp_path):
    root, _, _ = trained
    data, cache = root / "data" / "train", tmp_path / "cache"
    first = ["data.num_frames=5"]
    code, _, output = invoke("cache", data, "--tiny", "--out", cache, *sets(first))
    assert code == 0 and "0 already cached" in output
    before = fingerprint(cache)
    # the same config resumes (nothing to encode); another normalisation would relabel the cached clips
    code, _, output = invoke("cache", data, "--tiny", "--out", cache, *sets(first))
    assert code == 0 and " 0 encoded now" in output
    other = [*first, "autoencoder.xyz_std=1.0"]
    assert_one_line(
        *invoke("cache", data, "--tiny", "--out", cache, *sets(other)), "encoded with another config"
    )
    assert fingerprint(cache) == before  # config.json still says how the clips were encoded
    (cache / "config.json").unlink()
    unknown = fingerprint(cache)
    assert_one_line(*invoke("cache", data, "--tiny", "--out", cache, *sets(first)), "but no config.json")
    assert fingerprint(cache) == unknown


@pytest.mark.parametrize("name", ["runs\\test", 'a "quoted" run', "ünïcode 🙂", "tab\there"])
def test_a_path_option_reaches_the_config_exactly_as_typed(name):
    config = load_config("tiny", [path_override("train.out", Path(name))])  # --out of train and pretrain
    assert config.train.out == name


def test_a_dry_run_of_a_bad_config_fails_in_one_line():
    assert_one_line(
        *invoke("train", "--tiny", "--dry-run", "--set", "model.fusion=bogus"), "model.fusion must be"
    )


def test_stats_finds_its_preset_from_any_folder(tmp_path, monkeypatch):
    from nanofourdnex.synthetic import write_dataset

    tiny = load_config("tiny").data
    write_dataset(tmp_path / "clips", 2, num_frames=tiny.num_frames, height=tiny.height, width=tiny.width)
    monkeypatch.chdir(tmp_path)  # no tiny_configs/ here
    code, _, output = invoke("stats", tmp_path / "clips", "--samples", "2")
    assert code == 0 and "xyz_mean" in output


# --- A finished run is never destroyed ---


def test_training_twice_into_one_folder_refuses_and_keeps_the_first_run(trained):
    root, run, _ = trained
    before = fingerprint(run)
    code, stderr, output = invoke("train", "--tiny", *sets(micro(root)))
    assert_one_line(
        code, stderr, output, "already holds a training run; pass --resume to continue it or --overwrite"
    )
    assert fingerprint(run) == before
    assert_one_line(*invoke("train", "--tiny", "--resume", "--overwrite", *sets(micro(root))), "not both")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.fusion=bogus", "model.fusion must be one of"),
        ("sampling.scheduler=bogus", "sampling.scheduler must be one of"),
        (
            'autoencoder.kind="wan"',
            "needs model.model_dir, a local Wan2.1-I2V folder",
        ),  # as --full without one
    ],
)
def test_train_refuses_an_unknown_choice_before_any_data_work(trained, tmp_path, override, message):
    root, _, _ = trained
    out = tmp_path / "run"
    assert_one_line(*invoke("train", "--tiny", *sets([*micro(root), override]), "--out", out), message)
    assert not out.exists()


@pytest.mark.parametrize("held", ["notes.txt", "config.json"])
def test_training_into_a_folder_of_the_users_is_refused_and_changes_nothing(trained, tmp_path, held):
    root, _, _ = trained
    (tmp_path / held).write_text("mine")
    before = fingerprint(tmp_path)
    code, stderr, output = invoke("train", "--tiny", *sets(micro(root)), "--out", tmp_path)
    assert_one_line(code, stderr, output, "not a run" if held == "notes.txt" else "not a run's")
    assert fingerprint(tmp_path) == before


def test_resuming_with_another_network_or_data_is_refused(trained):
    root, run, _ = trained
    before = fingerprint(run)
    for override, message in (
        ("train.seed=1", "train.seed (42 != 1)"),
        ("data.num_frames=9", "data.num_frames (5 != 9)"),
        ("train.lr=0.5", "train.lr (0.002 != 0.5)"),  # the optimiser's saved state would keep the run's
        ("train.steps=1", "is at step 2, past train.steps = 1; ask for more steps"),
    ):
        code, stderr, output = invoke("train", "--tiny", "--resume", *sets([*micro(root), override]))
        assert_one_line(code, stderr, output, message)
    assert fingerprint(run) == before


def test_resuming_where_there_is_no_run_is_refused(trained, tmp_path):
    root, _, _ = trained
    for where in ("nothing", "started"):  # no folder; a start that failed before step 0 (config.json only)
        out = tmp_path / where
        if where == "started":
            out.mkdir()
            (out / "config.json").write_text("{}")
        args = ["train", "--tiny", "--resume", *sets(micro(root)), "--out", out]
        assert_one_line(*invoke(*args), f"there is no run in {out} to resume")
        assert not out.exists() if where == "nothing" else (out / "config.json").read_text() == "{}"


def test_resuming_trains_on_the_saved_base_not_one_rebuilt_from_the_seed(trained, tmp_path, monkeypatch):
    """The frozen random base comes from the checkpoint: a different seed-built base must not be used."""
    root, run, _ = trained
    copy = tmp_path / "run"
    for file in run.rglob("*"):
        if file.is_file():
            (copy / file.relative_to(run)).parent.mkdir(parents=True, exist_ok=True)
            (copy / file.relative_to(run)).write_bytes(file.read_bytes())
    import nanofourdnex.model as model

    build = model.build_transformer
    monkeypatch.setattr(
        model, "build_transformer", lambda m, z, seed=0: build(m, z, seed + 1)
    )  # another base
    config = load_config("tiny", micro(root, "unused", f'train.out="{copy}"', "train.steps=3"))
    train(config, resume=True, progress=False)
    from safetensors.torch import load_file

    saved = load_file(str(run / "checkpoints" / "step_0000002" / RANDOM_INIT_FILE))
    resumed = load_file(str(copy / "checkpoints" / "step_0000003" / RANDOM_INIT_FILE))
    assert saved.keys() == resumed.keys() and all(torch.equal(saved[k], resumed[k]) for k in saved)


def test_an_interrupted_synthetic_data_write_leaves_no_partial_data_set(tmp_path, monkeypatch):
    import nanofourdnex.synthetic as synthetic

    config = load_config("tiny", micro(tmp_path))
    written = []

    def killed_after_two(scene, folder):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(folder)
        return original(scene, folder)

    original = synthetic.write_clip
    monkeypatch.setattr(synthetic, "write_clip", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic_data(config, progress=False)
    assert not (tmp_path / "data" / "train").exists()  # the partial write stays in a hidden folder
    monkeypatch.setattr(synthetic, "write_clip", original)
    ensure_synthetic_data(config, progress=False)  # the next run writes the whole set
    assert len(list((tmp_path / "data" / "train").glob("clip_*"))) == 4
    (tmp_path / "data" / "train" / "clip_00003" / "pred_traj.txt").unlink()
    with pytest.raises(ValueError, match="holds 3 synthetic clips, not the 4"):
        ensure_synthetic_data(config, progress=False)


# --- Images as cameras and editors write them ---


def test_images_come_out_as_an_image_viewer_shows_them(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": how phones store portrait photos
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif, quality=100, subsampling=0)
    image, notes = load_image(tmp_path / "phone.jpg")
    assert image.shape == (3, 30, 20) and "EXIF orientation" in " ".join(notes)  # portrait, as displayed
    Image.fromarray(pixels).quantize(16).save(tmp_path / "palette.png")
    palette, notes = load_image(tmp_path / "palette.png")
    expected = np.asarray(Image.open(tmp_path / "palette.png").convert("RGB")) / 255 * 2 - 1
    np.testing.assert_allclose(palette.permute(1, 2, 0).numpy(), expected, atol=1e-6)
    Image.fromarray(pixels).convert("CMYK").save(tmp_path / "print.jpg")
    assert load_image(tmp_path / "print.jpg")[0].shape == (3, 20, 30)
    Image.fromarray(pixels[..., 0]).convert("LA").save(tmp_path / "grey_alpha.png")
    assert load_image(tmp_path / "grey_alpha.png")[0].shape == (3, 20, 30)
    iio.imwrite(tmp_path / "hdr.tif", (rng.random((20, 30, 3)) * 3 - 1).astype(np.float32))
    image, notes = load_image(tmp_path / "hdr.tif")
    assert image.min() >= -1 and image.max() <= 1 and "clipped to [0, 1]" in " ".join(notes)
    frames = [Image.fromarray(pixels), Image.fromarray(255 - pixels)]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:])
    image, notes = load_image(tmp_path / "clip.gif")
    first = np.asarray(Image.open(tmp_path / "clip.gif").convert("RGB")) / 255 * 2 - 1
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), first, atol=1e-6)
    assert "animated image of 2 frames: its first frame is used" in notes
