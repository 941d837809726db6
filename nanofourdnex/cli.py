"""`nano4d`: the command-line face of nanofourdnex.

Commands are thin: parse arguments, call one library function, print or save. Every
failure a user can cause (bad file, bad option) is reported as one line on stderr with a
non-zero exit code, never as a traceback.
"""

from __future__ import annotations

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


@app.command()
def train() -> None:
    """Fine-tune Wan DiT + LoRA on 6D videos (--tiny on a CPU, --full on GPUs)."""
    _not_implemented("train", 4)


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
