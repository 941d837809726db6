"""`nano4d`: the command-line face of nanofourdnex.

Commands are thin: parse arguments, call one library function, print or save. Every
failure a user can cause (bad file, bad option) is reported as one line on stderr with a
non-zero exit code, never as a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from .config import Thresholds

app = typer.Typer(
    name="nano4d",
    help="4DNeX in miniature: image -> 6D video (RGB + XYZ point maps) with Wan2.1 + LoRA.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: no type column (`--tiny <bool>`)
)


def describe(error: Exception) -> str:
    """One line for an error a user can cause: a ValueError's message, or the file and reason of an OSError."""
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def fail(message: str, code: int = 2) -> None:
    """Print one clear error line and exit non-zero (no traceback)."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def path_override(field: str, path: Path) -> str:
    """`--set field="path"` for a path given as an option: quoted as a TOML string, so `\\` and `"` stay as typed."""
    return f"{field}={json.dumps(str(path), ensure_ascii=False)}"  # a JSON string is a TOML basic string


def run_overrides(steps: int | None, out: Path | None) -> list[str]:
    """--steps and --out as the overrides train.steps and train.out (train and pretrain)."""
    steps_override = [f"train.steps={steps}"] if steps is not None else []
    return steps_override + ([path_override("train.out", out)] if out is not None else [])


def resolve_config(tiny: bool, full: bool, config: Path | None, overrides: list[str]):
    """Defaults (the paper's full run) ← --tiny preset or --config FILE ← --set overrides."""
    from .config import load_config

    if sum([tiny, full, config is not None]) != 1:
        fail("choose exactly one of --tiny, --full or --config FILE")
    try:
        return load_config("tiny" if tiny else config, overrides)
    except (ValueError, OSError) as error:
        fail(describe(error))


@app.command()
def train(
    tiny: bool = typer.Option(
        False, "--tiny", help="CPU preset tiny_configs/tiny.toml (times: README, 'Results')."
    ),
    full: bool = typer.Option(
        False, "--full", help="The paper's run (§5.1); needs --set model.model_dir=DIR and GPUs."
    ),
    config: Path | None = typer.Option(None, "--config", help="A TOML preset layered over the defaults."),
    steps: int | None = typer.Option(None, "--steps", help="Number of optimizer steps (train.steps)."),
    out: Path | None = typer.Option(
        None, "--out", help="Run folder (train.out): checkpoints, metrics.csv, loss.png."
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the run in --out from its latest checkpoint (same network and data).",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace the run in --out (its checkpoints, metrics and cache are deleted).",
    ),
    overrides: list[str] = typer.Option(
        [],
        "--set",
        metavar="SECTION.KEY=VALUE",
        help="Override one field, e.g. --set train.lr=1e-3 (repeatable).",
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="One full-size forward + backward on the meta device (shapes only), then exit.",
    ),
    nproc: int | None = typer.Option(
        None,
        "--nproc",
        help="Launch this many processes here with torchrun (one per GPU; on a CPU, one thread each), "
        "FSDP2-sharded. Several nodes: run `torchrun ... -m nanofourdnex.cli train ...` on each.",
    ),
) -> None:
    """Fine-tune Wan DiT + LoRA on 6D videos (--tiny on a CPU, --full on GPUs).

    The tiny run writes its synthetic 4D scenes on first use, caches their latents,
    trains, and reports the held-out validation loss before and after. Under torchrun
    every process runs this command; rank 0 writes the run folder.
    """
    extra = run_overrides(steps, out)
    cfg = resolve_config(tiny, full, config, [*overrides, *extra])
    if dry_run:
        from .tools.plan import dry_run as run_dry

        try:
            result = run_dry(cfg)
        except (ValueError, OSError) as error:
            fail(describe(error))
        ok = result.output_shape == result.expected_shape
        typer.echo(
            f"dry run {'passed' if ok else 'FAILED'}: output {result.output_shape} for x_t {result.expected_shape}; "
            f"{result.trainable_parameters:,} trainable parameters; {result.parameters_with_gradient} of {result.trainable_tensors} trainable tensors received gradients"
        )
        raise typer.Exit(0 if ok else 1)
    from .distributed import launched_by_torchrun, process_group, torchrun_command

    if nproc is not None and not launched_by_torchrun():
        import os
        import subprocess

        preset = ["--tiny"] * tiny + ["--full"] * full + ["--config", str(config)] * (config is not None)
        args = ["train", *preset, *[a for o in [*overrides, *extra] for a in ("--set", o)]]
        try:
            command = torchrun_command(nproc, args + ["--resume"] * resume + ["--overwrite"] * overwrite)
        except (ValueError, OSError) as error:
            fail(describe(error))
        raise typer.Exit(subprocess.call(command, env={**os.environ, "OMP_NUM_THREADS": "1"}))
    from .train import train as run_training

    with process_group() as world:
        try:
            result = run_training(cfg, resume=resume, overwrite=overwrite)
        except (ValueError, OSError, FloatingPointError) as error:
            fail(f"rank {world.rank}: {describe(error)}" if world.distributed else describe(error))
    if world.is_main:
        where = f" on {world.size} processes" if world.distributed else ""
        typer.echo(
            f"trained {result.steps} steps in {result.seconds:.0f} s{where}; held-out validation loss "
            f"{result.initial_val_loss:.4f} -> {result.final_val_loss:.4f} "
            f"({result.final_val_loss / result.initial_val_loss:.2f}x); run folder {result.out}"
        )


@app.command()
def pretrain(
    tiny: bool = typer.Option(
        False, "--tiny", help="The preset tiny_configs/pretrain.toml (the shipped base's)."
    ),
    config: Path | None = typer.Option(None, "--config", help="A TOML preset layered over the defaults."),
    steps: int | None = typer.Option(None, "--steps", help="Number of optimizer steps (train.steps)."),
    out: Path | None = typer.Option(
        None, "--out", help="Run folder (train.out): checkpoints, metrics.csv, loss.png."
    ),
    export: Path | None = typer.Option(
        None,
        "--export",
        help="Model folder to write when done [default: OUT/model]; the tiny preset ships "
        "pretrained/tiny-wan-i2v (replacing it needs --overwrite).",
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from its latest checkpoint."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the run in --out and the --export folder."
    ),
    overrides: list[str] = typer.Option(
        [], "--set", metavar="SECTION.KEY=VALUE", help="Override one field (repeatable)."
    ),
) -> None:
    """Pretrain the tiny base: an RGB image-to-video Wan DiT on synthetic scenes (Wan's I2V objective).

    The stand-in for Wan2.1's pretraining that the paper starts from. Writes the run folder, then a
    diffusers-format model folder (transformer/, text_encoder/, tokenizer/, image_encoder/,
    image_processor/, manifest.json) that `train --tiny` loads through model.model_dir.
    """
    import shlex
    import sys

    from .pretrain import check_export_folder, export_pretrained
    from .pretrain import pretrain as run_pretraining

    if sum([tiny, config is not None]) != 1:
        fail("choose exactly one of --tiny or --config FILE")
    extra = run_overrides(steps, out)
    cfg = resolve_config(False, False, config, [*overrides, *extra]) if config else None
    if tiny:
        from .config import load_config

        try:
            cfg = load_config("pretrain", [*overrides, *extra])
        except (ValueError, OSError) as error:
            fail(describe(error))
    target = export or Path(cfg.train.out) / "model"
    # A resumed run replaces its own model folder (OUT/model), as it does its loss figure; any other
    # model folder that holds files is replaced only with --overwrite. Checked before training, not after.
    replace = overwrite or (resume and export is None)
    try:
        run = Path(cfg.train.out)
        if resume:  # --overwrite would replace the run as well: refused beside --resume
            check_export_folder(target, replace, remedy="choose another --export folder", run=run)
        else:
            check_export_folder(target, replace, run=run)
        result = run_pretraining(cfg, resume=resume, overwrite=overwrite)
        folder = export_pretrained(
            result.out, target, "nano4d " + shlex.join(sys.argv[1:]), overwrite=replace
        )
    except (ValueError, OSError, FloatingPointError) as error:
        fail(describe(error))
    typer.echo(
        f"pretrained {result.steps} steps in {result.seconds:.0f} s; held-out loss {result.initial_val_loss:.4f} -> "
        f"{result.final_val_loss:.4f}; run folder {result.out}; model folder {folder}"
    )


@app.command()
def cache(
    data_dir: Path = typer.Argument(..., help="A folder of clips in the 4DNeX-10M layout."),
    out: Path = typer.Option(..., "--out", help="Cache folder: one .safetensors per clip, plus config.json."),
    tiny: bool = typer.Option(False, "--tiny", help="Encode as the tiny preset does."),
    full: bool = typer.Option(
        False, "--full", help="Encode with the paper's Wan VAE, UMT5 and CLIP (--model-dir)."
    ),
    config: Path | None = typer.Option(None, "--config", help="A TOML preset layered over the defaults."),
    model_dir: Path | None = typer.Option(
        None, "--model-dir", help="Local diffusers Wan2.1-I2V folder (model.model_dir)."
    ),
    overrides: list[str] = typer.Option([], "--set", help="Override one field (repeatable)."),
    num_shards: int = typer.Option(1, "--num-shards", help="Split the clips into this many shards ..."),
    shard_index: int = typer.Option(0, "--shard-index", help="... and encode this one (0-based)."),
) -> None:
    """Encode every clip once into a latent cache that training reads (set data.cache to --out).

    Resumable: clips already in the cache are skipped. Shards split the work across machines;
    all shards may write into the same folder.
    """
    import time

    from .cache import encode_clips

    extra = [path_override("model.model_dir", model_dir)] * (model_dir is not None)
    cfg = resolve_config(tiny, full, config, [*overrides, *extra])
    cached_before = {p.name for p in out.glob("*.safetensors")}
    clock = time.perf_counter()
    try:
        files = encode_clips(cfg, data_dir, out, num_shards, shard_index)
    except (ValueError, OSError) as error:
        fail(describe(error))
    encoded = sum(f.name not in cached_before for f in files)
    typer.echo(
        f"shard {shard_index + 1}/{num_shards}: {len(files)} clips, {encoded} encoded now, "
        f"{len(files) - encoded} already cached, in {time.perf_counter() - clock:.1f} s; wrote {out}"
    )


@app.command()
def generate(
    image: Path = typer.Argument(
        ...,
        help="The input image (PNG/JPEG/TIFF; EXIF rotation, alpha, palette, greyscale and 16-bit handled).",
    ),
    checkpoint: Path = typer.Option(
        ...,
        "--checkpoint",
        help="A run folder or checkpoint folder written by `train`, or the release's LoRA folder.",
    ),
    out: Path = typer.Option(
        Path("out"), "--out", help="Output folder; must not exist yet (or see --overwrite)."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace --out, an earlier generate output (it has sixd.npz), once all is done.",
    ),
    prompt: str = typer.Option(
        "", "--prompt", help="Text prompt (the release's trigger words are appended)."
    ),
    negative_prompt: str | None = typer.Option(
        None, "--negative-prompt", help="Negative prompt, used as given [default: the run's: empty]."
    ),
    frames: int | None = typer.Option(
        None, "--frames", help="Frames, 4k + 1 [default: the run's training length]."
    ),
    steps: int | None = typer.Option(
        None, "--steps", help="Sampling steps [default: the run's; the release: 50]."
    ),
    guidance: float | None = typer.Option(
        None,
        "--guidance",
        help="Classifier-free guidance scale on the prompt [default: the run's; the release: 5].",
    ),
    seed: int | None = typer.Option(None, "--seed", help="Noise seed [default: the run's; the release: 42]."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="unipc (Wan's) or euler [default: the run's]."
    ),
    shift: float | None = typer.Option(
        None, "--shift", help="Flow shift of the schedule [default: the run's: 3]."
    ),
    trajectory: str = typer.Option(
        "orbit",
        "--trajectory",
        help="Novel-view path: orbit, dolly, pan or a cameras.json with one camera per frame.",
    ),
    config: Path | None = typer.Option(None, "--config", help="Check the checkpoint against this config."),
    model_dir: Path | None = typer.Option(
        None, "--model-dir", help="Local diffusers Wan2.1-I2V folder (the full model's base)."
    ),
    device: str = typer.Option(
        "auto", "--device", help="cpu, cuda, cuda:1, ...; auto: cuda when available, else cpu."
    ),
    offload: str = typer.Option(
        "none",
        "--offload",
        help="GPU memory mode: none (fastest), model (one network on the GPU at a time) or "
        "sequential (one transformer block at a time; the least memory). `nano4d plan` sizes each.",
    ),
) -> None:
    """One image -> 6D video -> cameras, depth, point clouds and a novel-view video.

    Writes rgb.mp4, xyz.mp4, sixd.npz, cameras.json, depth.npz, recovery.png, points/frame_XXXX.ply,
    novel_view.mp4, novel_cameras.json, preview.png and scene.rrd (open it with `nano4d view OUT`) into --out. Every input is checked before the model loads; the
    files are written into a hidden staging folder that becomes --out only when all are done.
    Sampling settings default to those stored with the run.
    """
    import dataclasses

    import torch

    from .generate import (
        OFFLOAD_MODES,
        check_inputs,
        checkpoint_config,
        load_inference,
        place,
        run_generation,
    )

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        target = torch.device(device)
    except RuntimeError:
        fail(f"unknown device {device!r}")
    if target.type == "cuda" and not torch.cuda.is_available():
        fail(f"device {device} asked for, but torch sees no CUDA GPU")
    if offload not in OFFLOAD_MODES:
        fail(f"unknown offload mode {offload!r}; expected one of {OFFLOAD_MODES}")
    if frames is not None and frames < 1:
        fail(f"--frames must be 4k + 1 (1, 5, 9, …, 49), got {frames}")
    given = {
        "frames": frames, "steps": steps, "guidance": guidance, "seed": seed, "scheduler": scheduler,
        "shift": shift, "negative_prompt": negative_prompt,
    }  # fmt: skip
    try:
        folder, cfg = checkpoint_config(checkpoint, config, model_dir)
        sampling = dataclasses.replace(cfg.sampling, **{k: v for k, v in given.items() if v is not None})
        inputs = check_inputs(
            cfg, image, out, prompt=prompt, sampling=sampling, trajectory=trajectory, overwrite=overwrite
        )
        inference = place(load_inference(folder, config_file=config, model_dir=model_dir), target, offload)
        report = run_generation(inference, inputs)
    except (ValueError, OSError) as error:
        fail(describe(error))
    for note in inputs.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {len(report.files)} files to {report.out} in {report.seconds:.1f} s")


@app.command()
def view(
    target: Path = typer.Argument(
        ..., help="A `generate` output folder, its sixd.npz, a training clip (folder or .npz) or an .rrd."
    ),
    web: bool = typer.Option(False, "--web", help="Serve the web viewer on localhost and print its address."),
    save: Path | None = typer.Option(None, "--save", help="Only write the recording to this .rrd."),
    max_points: int | None = typer.Option(
        None,
        "--max-points",
        help="Points per frame, subsampled on a regular pixel grid [default: 100000; 0: all].",
    ),
    port: int = typer.Option(9090, "--port", help="Web viewer port (0: any free port)."),
) -> None:
    """Scrub through a 6D video in 3-D: a Rerun recording of points, cameras, RGB, depth and XYZ over time.

    Over SSH: `nano4d view OUT --web`, then forward the printed port (ssh -L 9090:localhost:9090 HOST)
    and open the address in a local browser.
    """
    from .viewer import run_view

    try:
        shown = run_view(target, web=web, save=save, max_points=max_points, port=port)
    except (ValueError, OSError) as error:
        fail(describe(error))
    for line in shown.lines():
        typer.echo(line)
    if web:
        shown.wait()


@app.command()
def recover(
    xyz_file: Path = typer.Argument(
        ..., help="An .npz with key `xyz` (T, H, W, 3), e.g. a generated sixd.npz."
    ),
    out: Path = typer.Option(
        Path("recovery"), "--out", help="Output folder; new or empty (or see --overwrite)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an earlier recovery in --out (a folder of its three files only)."
    ),
    per_frame_focal: bool = typer.Option(
        False, "--per-frame-focal", help="One focal per frame instead of one K."
    ),
    loss: str = typer.Option(
        "geman-mcclure", "--loss", help="Robust loss: geman-mcclure, cauchy or squared."
    ),
) -> None:
    """Recover cameras (R, t, K) and depth from an XYZ video (Eq. 12-13).

    Writes cameras.json (K; per frame world-to-camera R, t and camera-to-world 4x4),
    depth.npz (depth, residual) and recovery.png.
    """
    import time

    from .outputs import RECOVERY_FILES, check_output_folder, load_xyz, save_recovery
    from .paper.reprojection import recover_cameras

    try:
        check_output_folder(out, RECOVERY_FILES, "recovery", overwrite)
        xyz = load_xyz(xyz_file)
        clock = time.perf_counter()
        result = recover_cameras(xyz, shared_focal=not per_frame_focal, loss=loss)
        seconds = time.perf_counter() - clock
        save_recovery(result, out)
    except (ValueError, OSError) as error:
        fail(describe(error))
    focal = result.K[..., 0, 0]
    typer.echo(
        f"{xyz.shape[0]} cameras recovered in {seconds:.2f} s; focal {float(focal.mean()):.2f} px; "
        f"median residual {float(np.nanmedian(result.residual)):.3g}; wrote {out}"
    )


@app.command()
def curate(
    data_dir: Path = typer.Argument(..., help="A folder of clips in the 4DNeX-10M layout."),
    out: Path = typer.Option(
        ..., "--out", help="Manifest: one JSON line per clip; curation.png is written beside it."
    ),
    workers: int = typer.Option(1, "--workers", help="Processes measuring clips in parallel."),
    min_luminance: float | None = typer.Option(
        None,
        "--min-luminance",
        help=f"Reject darker clips: mean luminance below this (default {Thresholds.min_luminance:g}).",
    ),
    max_luminance: float | None = typer.Option(
        None,
        "--max-luminance",
        help=f"Reject brighter clips: mean luminance above this (default {Thresholds.max_luminance:g}).",
    ),
    max_alignment_loss: float | None = typer.Option(
        None,
        "--max-alignment-loss",
        help=f"Reject clips whose alignment loss exceeds this (default {Thresholds.max_alignment_loss:g}).",
    ),
    max_speed: float | None = typer.Option(
        None,
        "--max-speed",
        help=f"Mean camera speed, scene depths per frame (default {Thresholds.max_speed:g}).",
    ),
    max_acceleration: float | None = typer.Option(
        None,
        "--max-acceleration",
        help=f"Mean camera acceleration, depths per frame² (default {Thresholds.max_acceleration:g}).",
    ),
    max_curvature: float | None = typer.Option(
        None,
        "--max-curvature",
        help=f"Mean curvature of Eq. 1, 1/scene depth (default {Thresholds.max_curvature:g}).",
    ),
    top_r: float | None = typer.Option(
        None, "--top-r", help=f"Percentage kept by MCV and by HCPR, each (default {Thresholds.top_r:g})."
    ),
    tau: float | None = typer.Option(
        None, "--tau", help=f"HCPR counts confidence above tau (default {Thresholds.tau:g})."
    ),
) -> None:
    """Filter clips by luminance, confidence (MCV, HCPR) and camera smoothness (Eq. 1).

    Resumable: clips already measured in --out (at the same --tau) are not read again, so a
    killed run continues where it stopped and new thresholds only re-decide. Rules and the
    manifest format: specs/curation.md.
    """
    from concurrent.futures.process import BrokenProcessPool

    from .tools.curate import curate as run_curation
    from .tools.curate import summary_table

    given = {
        "min_luminance": min_luminance,
        "max_luminance": max_luminance,
        "max_alignment_loss": max_alignment_loss,
        "max_speed": max_speed,
        "max_acceleration": max_acceleration,
        "max_curvature": max_curvature,
        "top_r": top_r,
        "tau": tau,
    }
    try:
        thresholds = Thresholds(**{name: value for name, value in given.items() if value is not None})
        result = run_curation(data_dir, out, thresholds, workers=workers)
    except (ValueError, OSError) as error:
        fail(describe(error))
    except BrokenProcessPool as error:
        fail(f"a worker process died ({error}); run the same command again to resume")
    typer.echo(summary_table(result.curation, thresholds))
    typer.echo(
        f"measured {len(result.measured)} clips, reused {len(result.reused)} from the manifest, in "
        f"{result.seconds:.1f} s with {workers} worker(s); wrote {result.manifest} and {result.figure}"
    )


@app.command()
def stats(
    data_dir: Path = typer.Argument(..., help="A folder of clips in the 4DNeX-10M layout."),
    samples: int = typer.Option(5000, "--samples", help="Random clips to trace (the paper uses 5K)."),
    config: str = typer.Option(
        "tiny", "--config", help="A preset name (tiny) or TOML file: the autoencoder and sizes to use."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write a TOML snippet [autoencoder] xyz_mean/xyz_std here."
    ),
    seed: int = typer.Option(0, "--seed", help="Which random clips."),
) -> None:
    """Trace the XYZ latent mean and std over a data set (the paper's mu, sigma of Eq. 8)."""
    from .autoencoder import build_autoencoder
    from .config import load_config
    from .data import ClipDataset
    from .paper.normalization import trace_xyz_statistics

    if samples < 1:
        fail(f"--samples must be at least 1, got {samples}")
    if out is not None and (out.is_dir() or not out.parent.is_dir()):  # known before the tracing, not after
        fail(f"--out {out}: name a file in an existing folder")
    try:
        cfg = load_config(config)
        dataset = ClipDataset(data_dir, cfg.data.num_frames, cfg.data.height, cfg.data.width)
        encode = build_autoencoder(cfg).base.encode
        order = np.random.default_rng(seed).permutation(len(dataset))[:samples]
        result = trace_xyz_statistics((dataset[int(i)].xyz[None] for i in order), encode, len(order))
    except (ValueError, OSError) as error:
        fail(describe(error))
    snippet = f"[autoencoder]\nxyz_mean = {result.mean:.4f}\nxyz_std = {result.std:.4f}\n"
    typer.echo(
        f"XYZ latent statistics over {len(order)} clips ({result.count:,} values):\n{snippet}", nl=False
    )
    if out is not None:
        try:
            out.write_text(f"# traced by `nano4d stats {data_dir} --samples {samples}`\n{snippet}")
        except OSError as error:
            fail(describe(error))


@app.command()
def plan(
    full: bool = typer.Option(
        True, "--full/--tiny", help="Plan the paper's run (default) or the tiny preset."
    ),
    config: Path | None = typer.Option(None, "--config", help="Plan this TOML preset instead."),
    gpus: int | None = typer.Option(
        None, "--gpus", help="Number of GPUs [default: the paper's 32; 1 with --tiny or --config]."
    ),
    gpu: str = typer.Option("a100-80g", "--gpu", help="a100-80g, a100-40g, h100-80g, h200, l40s or rtx4090."),
    mfu: float = typer.Option(0.35, "--mfu", help="Model FLOP utilisation assumed for the time estimate."),
) -> None:
    """Parameters, FLOPs, memory and time of a configuration, computed on the meta device."""
    from .config import load_config
    from .tools.plan import format_plan
    from .tools.plan import plan as make_plan

    try:
        cfg = load_config(config if config is not None else (None if full else "tiny"))
        gpus = gpus if gpus is not None else 32 if full and config is None else 1
        typer.echo(format_plan(make_plan(cfg, gpus=gpus, gpu=gpu, mfu=mfu)))
    except (ValueError, OSError) as error:
        fail(describe(error))


@app.command()
def ablate(
    strategies: str = typer.Option(
        "all",
        "--strategies",
        help="Comma-separated: channel-linear, channel-switcher, batch-switcher, batch-cdsa-full, "
        "batch-cdsa-sparse, frame, height, width, frame-stock-rope, height-stock-rope, "
        "width-stock-rope; or all.",
    ),
    steps: int | None = typer.Option(
        None, "--steps", help="Training steps per strategy and seed [default: 120; --quick: 2]."
    ),
    seeds: int | None = typer.Option(None, "--seeds", help="Seeds per strategy [default: 3; --quick: 1]."),
    out: Path = typer.Option(
        Path("runs/ablation"),
        "--out",
        help="Writes ablation.md, ablation.json, ablation.png, scenes/ and cache/; new or empty (or see --overwrite).",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an earlier ablation in --out (a folder of its files only)."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="A seconds-long budget for tests: 1-layer backbone, 2 steps, 4 + 2 clips."
    ),
    workers: int = typer.Option(
        2, "--workers", help="Single-threaded runs side by side (one per core); results do not depend on it."
    ),
) -> None:
    """Train and compare the fusion strategies of section 4.2 (Fig. 4, App. B.1) in miniature.

    Every strategy trains on the same synthetic clips with the same budget, seeds and random
    draws, then samples the same held-out scenes. The default budget (11 strategies x 3 seeds x
    120 steps, on the shipped pretrained base) took 22 minutes on 2 cores with OMP_NUM_THREADS=1.
    """
    import dataclasses

    from .tools.ablation import DEFAULT_BUDGET, QUICK_BUDGET, parse_strategies, run_ablation

    given = {"steps": steps, "seeds": seeds}
    try:
        names = parse_strategies(strategies)
        budget = dataclasses.replace(
            QUICK_BUDGET if quick else DEFAULT_BUDGET, **{k: v for k, v in given.items() if v is not None}
        )
        result = run_ablation(names, budget, out, workers, overwrite=overwrite)
    except (ValueError, OSError, FloatingPointError) as error:
        fail(describe(error))
    typer.echo((out / "ablation.md").read_text())
    typer.echo(
        f"wrote {out / 'ablation.md'}, ablation.json and ablation.png in {result.seconds / 60:.1f} min"
    )


def main() -> None:  # pragma: no cover - entry point for `python -m nanofourdnex.cli`
    app()


if __name__ == "__main__":
    main()
