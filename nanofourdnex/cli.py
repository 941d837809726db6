"""`nano4d`: the command-line face of nanofourdnex.

Commands are thin: parse arguments, call one library function, print or save. Every
failure a user can cause (bad file, bad option) is reported as one line on stderr with a
non-zero exit code, never as a traceback.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    name="nano4d",
    help="4DNeX in miniature: image -> 6D video (RGB + XYZ point maps) with Wan2.1 + LoRA.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 2) -> None:
    """Print one clear error line and exit non-zero (no traceback)."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _not_implemented(command: str, issue: int) -> None:
    fail(f"`nano4d {command}` is not implemented yet (tracked in issue {issue})")


def resolve_config(tiny: bool, full: bool, config: Path | None, overrides: list[str]):
    """Defaults (the paper's full run) ← --tiny preset or --config FILE ← --set overrides."""
    from .config import load_config

    if sum([tiny, full, config is not None]) != 1:
        fail("choose exactly one of --tiny, --full or --config FILE")
    try:
        return load_config("tiny" if tiny else config, overrides)
    except ValueError as error:
        fail(str(error))


@app.command()
def train(
    tiny: bool = typer.Option(
        False, "--tiny", help="CPU preset tiny_configs/tiny.toml: about 5 minutes on 2 cores."
    ),
    full: bool = typer.Option(
        False, "--full", help="The paper's run (§5.1); needs --set model.model_dir=DIR and GPUs."
    ),
    config: Path | None = typer.Option(None, "--config", help="A TOML preset layered over the defaults."),
    steps: int | None = typer.Option(None, "--steps", help="Number of optimizer steps (train.steps)."),
    out: Path | None = typer.Option(
        None, "--out", help="Run folder (train.out): checkpoints, metrics.csv, loss.png."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run folder's latest checkpoint."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override one field, e.g. --set train.lr=1e-3 (repeatable)."
    ),
) -> None:
    """Fine-tune Wan DiT + LoRA on 6D videos (--tiny on a CPU, --full on GPUs).

    The tiny run writes its synthetic 4D scenes on first use, caches their latents,
    trains, and reports the held-out validation loss before and after.
    """
    extra = [f"train.steps={steps}"] * (steps is not None) + [f'train.out="{out}"'] * (out is not None)
    cfg = resolve_config(tiny, full, config, [*overrides, *extra])
    from .train import train as run_training

    try:
        result = run_training(cfg, resume=resume)
    except (ValueError, FileNotFoundError, FloatingPointError) as error:
        fail(str(error))
    typer.echo(
        f"trained {result.steps} steps in {result.seconds:.0f} s; held-out validation loss "
        f"{result.initial_val_loss:.4f} -> {result.final_val_loss:.4f} "
        f"({result.final_val_loss / result.initial_val_loss:.2f}x); run folder {result.out}"
    )


@app.command()
def generate() -> None:
    """One image -> 6D video -> cameras, depth, point clouds and a novel-view video."""
    _not_implemented("generate", 5)


@app.command()
def recover() -> None:
    """Recover cameras (R, t, K) and depth from an XYZ video (Eq. 12-13)."""
    _not_implemented("recover", 3)


@app.command()
def curate() -> None:
    """Filter clips by luminance, confidence (MCV, HCPR) and camera smoothness (Eq. 1)."""
    _not_implemented("curate", 7)


@app.command()
def stats() -> None:
    """Trace the XYZ latent mean and std over a data set (the paper's mu, sigma of Eq. 8)."""
    _not_implemented("stats", 7)


@app.command()
def plan() -> None:
    """Parameters, FLOPs, memory and time of a configuration, computed on the meta device."""
    _not_implemented("plan", 6)


@app.command()
def ablate() -> None:
    """Train and compare the five fusion strategies of section 4.2 in miniature."""
    _not_implemented("ablate", 8)


def main() -> None:  # pragma: no cover - entry point for `python -m nanofourdnex.cli`
    app()


if __name__ == "__main__":
    main()
