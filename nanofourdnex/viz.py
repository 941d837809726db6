"""Figures: one look for the CLI, the tutorials and the README.

Every figure is drawn on a plain matplotlib `Figure` with the Agg canvas (no pyplot, so no global
figure state and no display needed) inside `figure()`, which applies the project style and
writes the PNG. A new figure helper is a function `plot_x(..., path) -> Path` built on it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the "3d" projection)

if TYPE_CHECKING:
    from .paper.reprojection import CameraRecovery

STYLE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.2,
    "figure.facecolor": "white",
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
}
TIME_COLORS = "viridis"  # anything ordered in time: frames, training steps
DEPTH_COLORS = "magma_r"  # depth: near is bright
DEPTH_FRAMES = 4  # frames in the depth strip of plot_recovery
TRAJECTORY_ARROWS = 12  # viewing directions drawn along the trajectory
PREVIEW_FRAMES = 5  # frames per row of plot_preview
UPRIGHT = np.array(
    [[1, 0, 0], [0, 0, 1], [0, -1, 0]]
)  # world (x, y, z) → plot (x, z, −y): OpenCV y-down reads upright


@contextmanager
def figure(path: str | Path, size: tuple[float, float]) -> Iterator[Figure]:
    """A figure of `size` inches in the project style; saved as a PNG at `path` when the block ends."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=size, layout="constrained")
        FigureCanvasAgg(fig)
        yield fig
        fig.savefig(path)


def evenly_spaced(count: int, most: int) -> np.ndarray:
    """At most `most` distinct frame indices spread evenly over 0 … count − 1, first and last included."""
    return np.unique(np.linspace(0, count - 1, min(most, count)).round().astype(int))


def depth_range(depth: np.ndarray) -> tuple[float, float]:
    """The 2nd and 98th percentiles of the finite depths: one colour scale for every depth panel."""
    finite = depth[np.isfinite(depth)]
    return tuple(np.percentile(finite, [2, 98])) if finite.size else (0.0, 1.0)


def plot_recovery(result: CameraRecovery, path: str | Path) -> Path:
    """Camera trajectory (centres and viewing directions) beside a depth strip of a few frames.

    The trajectory is drawn with the world's OpenCV axes turned for reading: x to the right, z
    (forward) into the page and −y up, so a camera looking along +z with y down appears upright.
    """
    path = Path(path)
    count = len(result.R)
    shown, arrows = evenly_spaced(count, DEPTH_FRAMES), evenly_spaced(count, TRAJECTORY_ARROWS)
    centers = result.centers @ UPRIGHT.T
    forward = result.R[:, 2] @ UPRIGHT.T  # the camera's z axis in world coordinates (third row of R)
    near, far = depth_range(result.depth)
    finite = result.depth[np.isfinite(result.depth)]
    # Arrows a tenth of the path's extent or of the typical depth, whichever is longer.
    typical_depth = float(np.median(np.abs(finite))) if finite.size else 1.0
    arrow = 0.1 * max(np.ptp(centers, axis=0).max(), typical_depth)
    with figure(path, (2.8 + 2.0 * len(shown), 2.6)) as fig:
        grid = fig.add_gridspec(1, 1 + len(shown), width_ratios=[1.4] + [1] * len(shown))
        ax = fig.add_subplot(grid[0, 0], projection="3d")
        colors = matplotlib.colormaps[TIME_COLORS](np.linspace(0, 1, count))
        ax.plot(*centers.T, color="0.6", linewidth=0.8)
        ax.scatter(*centers.T, c=colors, s=6, depthshade=False)
        ax.quiver(
            *centers[arrows].T, *(arrow * forward[arrows]).T, colors=colors[arrows], arrow_length_ratio=0.25
        )
        ax.set(xlabel="x", ylabel="z", zlabel="−y", title=f"cameras, frames 0-{count - 1}")
        ax.set_aspect("equal", adjustable="datalim")
        for column, k in enumerate(shown, start=1):
            image = fig.add_subplot(grid[0, column])
            shading = image.imshow(result.depth[k], cmap=DEPTH_COLORS, vmin=near, vmax=far)
            image.set(title=f"depth, frame {k}", xticks=[], yticks=[])
            image.grid(False)
        fig.colorbar(shading, ax=fig.axes[1:], shrink=0.6, label="depth z")
    return path


def plot_loss_curve(rows: list[dict], path: str | Path) -> Path:
    """Training and validation loss against step (log scale), from metrics.csv rows.

    `rows` are dicts with "step", "train_loss" and "val_loss" (numbers or the strings csv reads;
    an empty string means "not measured at this step").
    """
    path = Path(path)

    def series(key: str) -> tuple[np.ndarray, np.ndarray]:
        kept = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in ("", None)]
        return np.array(kept, dtype=float).reshape(-1, 2).T

    with figure(path, (4.5, 2.8)) as fig:
        ax = fig.add_subplot()
        for key, label, style in (("train_loss", "train", "-"), ("val_loss", "validation", "o-")):
            steps, loss = series(key)
            if len(steps):
                ax.plot(steps, loss, style, label=label, markersize=3)
        ax.set(xlabel="step", ylabel="flow-matching loss (Eq. 6)", yscale="log", title="training")
        ax.legend(frameon=False)
    return path


def plot_preview(
    rgb: np.ndarray, xyz_rgb: np.ndarray, result: CameraRecovery, novel: np.ndarray, path: str | Path
) -> Path:
    """One look at a generated 6D video: rows of RGB, XYZ-as-colour, depth and novel-view frames, and the cameras.

    rgb, xyz_rgb and novel are (T, H, W, 3) uint8 videos (novel may differ in T); result is the
    recovery from the XYZ video. A few evenly spaced frames are shown per row.
    """
    path = Path(path)
    shown, shown_novel = evenly_spaced(len(rgb), PREVIEW_FRAMES), evenly_spaced(len(novel), PREVIEW_FRAMES)
    near, far = depth_range(result.depth)
    aspect = rgb.shape[1] / rgb.shape[2]
    columns = len(shown)
    with figure(path, (1.7 * columns + 3.2, 4 * 1.7 * aspect + 0.8)) as fig:
        grid = fig.add_gridspec(4, columns + 1, width_ratios=[1] * columns + [1.9])
        rows = (
            ("RGB", rgb, shown),
            ("XYZ", xyz_rgb, shown),
            ("depth", result.depth, shown),
            ("novel view", novel, shown_novel),
        )
        for r, (name, video, frames) in enumerate(rows):
            for c, k in enumerate(frames):
                ax = fig.add_subplot(grid[r, c])
                if name == "depth":
                    ax.imshow(video[k], cmap=DEPTH_COLORS, vmin=near, vmax=far)
                else:
                    ax.imshow(video[k])
                ax.set(xticks=[], yticks=[])
                ax.grid(False)
                if r == 0 or name == "novel view":
                    ax.set_title(f"frame {k}", fontsize=7)
                if c == 0:
                    ax.set_ylabel(name)
        centers = result.centers @ UPRIGHT.T
        ax = fig.add_subplot(grid[:, columns], projection="3d")
        ax.plot(*centers.T, color="0.6", linewidth=0.8)
        ax.scatter(*centers.T, c=np.arange(len(centers)), cmap=TIME_COLORS, s=8, depthshade=False)
        ax.set(
            xlabel="x",
            ylabel="z",
            zlabel="−y",
            title=f"recovered cameras (f = {float(np.mean(result.focal)):.1f} px)",
        )
    return path


@dataclass
class Histogram:
    """One panel of `plot_filter_histograms`: a metric's values per clip and the clips kept."""

    label: str
    values: np.ndarray  # (N,) float, clips that provide the metric
    kept: np.ndarray  # (N,) bool
    thresholds: tuple[float | None, ...]  # vertical lines; None or inf: not drawn
    logarithmic: bool  # four decades below the largest value; smaller values fall into the first bin


def plot_filter_histograms(
    panels: list[Histogram], outcomes: dict[str, int], total: int, path: str | Path
) -> Path:
    """Curation: a histogram per metric (kept and rejected stacked) with its thresholds, and outcomes per reason."""
    path = Path(path)
    with figure(path, (11, 4.8)) as fig:
        axes = fig.subplots(2, 4).ravel()
        for ax, panel in zip(axes, panels, strict=False):
            ax.set(xlabel=panel.label, ylabel="clips")
            if not len(panel.values):
                ax.text(0.5, 0.5, "no clip provides it", ha="center", va="center", transform=ax.transAxes)
                continue
            values, bins = panel.values, 30
            if panel.logarithmic and values.max() > 0:
                floor = max(values[values > 0].min(), values.max() * 1e-4)
                values = np.maximum(values, floor)
                bins = np.geomspace(floor, values.max(), 30) if values.max() > floor else 30
                ax.set_xscale("log")
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.hist(
                [values[panel.kept], values[~panel.kept]], bins=bins, stacked=True,
                color=["tab:green", "0.6"], label=["kept", "rejected"],
            )  # fmt: skip
            for line in panel.thresholds:
                if line is not None and math.isfinite(line):
                    ax.axvline(line, color="tab:red", linestyle="--", linewidth=1)
        axes[0].legend(frameon=False)
        ax = axes[-1]
        ax.barh(
            list(outcomes)[::-1],
            list(outcomes.values())[::-1],
            color=["0.6"] * (len(outcomes) - 1) + ["tab:green"],
        )
        ax.set(xlabel="clips (one per failed filter)", title=f"{total} clips")
    return path


def plot_ablation(
    summary: dict[str, dict[str, tuple[float, float]]],
    labels: dict[str, str],
    references: dict[str, float],
    highlight: str,
    samples: dict[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
) -> Path:
    """Bars (mean ± std over seeds) per metric and strategy, then a Fig. 10-style grid of samples.

    summary: strategy → metric → (mean, std); labels: metric → axis title; references: metric → a
    dashed reference line; highlight: the strategy drawn in red; samples: row label → (RGB in [0, 1],
    XYZ in [−1, 1]) videos (T, H, W, 3), the first row the ground truth.
    """
    path = Path(path)
    names, metrics = list(summary), list(labels)
    rows = list(samples)
    frames = len(next(iter(samples.values()))[0])
    shown = sorted({0, frames // 2, frames - 1})
    colors = ["tab:red" if n == highlight else "0.55" for n in names]
    with figure(path, (11, 2.6 + 0.75 * len(rows))) as fig:
        outer = fig.add_gridspec(2, 1, height_ratios=[2.4, 0.75 * len(rows)])
        bars = outer[0].subgridspec(1, len(metrics))
        for column, key in enumerate(metrics):
            ax = fig.add_subplot(bars[0, column])
            means = [summary[n][key][0] for n in names]
            stds = [summary[n][key][1] for n in names]
            ax.bar(range(len(names)), means, yerr=stds, color=colors, capsize=2)
            if key in references:
                ax.axhline(references[key], color="k", linestyle="--", linewidth=0.8)
            ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
            ax.set_title(labels[key])
        grid = outer[1].subgridspec(len(rows), 2 * len(shown))
        for r, name in enumerate(rows):
            rgb, xyz = samples[name]
            images = [rgb[k] for k in shown] + [np.clip((xyz[k] + 1) / 2, 0, 1) for k in shown]
            for c, image in enumerate(images):
                ax = fig.add_subplot(grid[r, c])
                ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
                ax.set(xticks=[], yticks=[])
                ax.grid(False)
                if r == 0:
                    ax.set_title(
                        f"{'RGB' if c < len(shown) else 'XYZ'} frame {shown[c % len(shown)]}", fontsize=7
                    )
                if c == 0:
                    ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
    return path
