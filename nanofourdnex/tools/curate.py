"""Data curation of 4DNeX-10M (§3.1-3.3): brightness, reconstruction quality and camera smoothness (Eq. 1).

§3.1: "brightness filtering is applied based on average luminance (0.299R + 0.587G + 0.114B) to
discard videos with extreme illumination conditions." §3.2: MCV and HCPR from the confidence maps,
"We select the top-r% of clips for each metric". §3.3: "we apply three sequential filtering
strategies": the final alignment loss of the global fusion, camera smoothness (Eq. 1,
"Clips with low average velocity, acceleration, and curvature are retained"), then "the same MCV
and HCPR used in the static pipeline".

A run over a data root has two passes (specs/curation.md has the full rules):

    pass 1, per clip (a process pool):  read the clip → Ȳ, MCV, HCPR, alignment loss,
            camera centres c_t and scale s = median depth; one JSON line appended to the
            manifest, flushed and fsynced, so a killed run loses nothing measured
    pass 2, over the data set:  speed, acceleration, κ (Eq. 1) of the centres c_t / s, in one
            vectorised call per frame count; the per-clip thresholds; then the top-r % by MCV and
            by HCPR among the clips that passed everything else; the manifest is replaced
            through a temporary file and os.replace

    keep ⇔  low ≤ Ȳ ≤ high,  loss ≤ L,  mean ‖v‖ ≤ S,  mean ‖a‖ ≤ A,  mean κ ≤ K   (inclusive)
            and, when the clip has confidence maps, it is in the top r % by MCV and by HCPR

Conventions:
* Files read beyond `read_clip`'s: confidence maps `conf_<i>.npy` (i = 0 … T−1, any zero padding;
  MonST3R's `save_conf_maps` writes `conf_0.npy` …) in a clip folder, key `conf` (T, h, w) in an
  .npz; the alignment loss as one number in `alignment_loss.txt` or key `alignment_loss`. Both are
  optional; a clip without them is not judged by those filters. Confidence maps lie on the depth grid.
* Scale: reconstructions have arbitrary scale, so the centres are divided by the clip's median
  depth s (camera-frame z of every point of every frame). Speed and acceleration are then in scene
  depths per frame (per frame²) and κ in 1/scene depth: thresholds hold across reconstructions.
  Velocities are per frame, so thresholds depend on the frame count; the defaults are for the
  paper's 49-frame clips.
* Top-r %: ranked among the clips that passed every other filter and have confidence maps (the
  paper's filters are sequential, the confidence filter last), with quality.top_fraction's rule
  (k = ⌈r·N/100⌉, ties to the earlier clip name); a clip outside a metric's top r % gets that
  metric's reason.
* Records are kept in clip-name order, so the manifest does not depend on the number of workers.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..config import Thresholds
from ..data import ClipError, read_clip
from ..paper.curvature import camera_centers_from_c2w, camera_smoothness, smoothness_checks
from ..paper.quality import (
    high_confidence_ratio,
    luminance_ok,
    mean_confidence,
    mean_luminance,
    top_fraction,
)
from ..viz import Histogram, plot_filter_histograms

FIGURE_NAME = "curation.png"  # written beside the manifest
ALIGNMENT_FILE = "alignment_loss.txt"
CONFIDENCE_FILE = re.compile(r"conf_(\d+)\.npy")
MIN_FRAMES = 3  # Eq. 1 needs two velocities

# Reason codes, in the order the filters run; a rejected clip lists every filter it fails.
REASONS = {
    "unreadable": "the clip, its confidence maps or its alignment loss could not be read",
    "dark": "mean luminance below min_luminance",
    "bright": "mean luminance above max_luminance",
    "high_alignment_loss": "alignment loss above max_alignment_loss",
    "too_few_frames": f"fewer than {MIN_FRAMES} frames: Eq. 1 is undefined",
    "high_speed": "mean speed above max_speed",
    "high_acceleration": "mean acceleration above max_acceleration",
    "high_curvature": "mean curvature (Eq. 1) above max_curvature",
    "low_mcv": "not in the top r % by MCV",
    "low_hcpr": "not in the top r % by HCPR",
}


@dataclass
class ClipRecord:
    """One manifest line. Pass 1 fills the measurements; pass 2 the smoothness means and the decision."""

    clip: str  # the entry's name under the data root: a folder name or `name.npz`
    kept: bool | None = None  # None until pass 2 has run
    reasons: list[str] = field(default_factory=list)  # reason codes of REASONS, in filter order
    error: str | None = None  # why the clip is unreadable
    frames: int | None = None
    luminance: float | None = None  # Ȳ, §3.1
    alignment_loss: float | None = None  # None: the clip provides none
    mean_speed: float | None = None  # mean ‖v_i‖ of c_t / s
    mean_acceleration: float | None = None  # mean ‖a_i‖ of c_t / s
    mean_curvature: float | None = None  # mean κ_i of c_t / s, Eq. 1
    mcv: float | None = None  # None: the clip has no confidence maps
    hcpr: float | None = None
    tau: float | None = None  # τ of hcpr; a manifest measured at another τ is measured again
    scale: float | None = None  # s, the median depth
    camera_centers: list[list[float]] | None = None  # c_t (T, 3), world coordinates


@dataclass
class Curation:
    """The decided records (clip-name order) and the lowest MCV / HCPR inside the top r % (None: none ranked)."""

    records: list[ClipRecord]
    mcv_cutoff: float | None
    hcpr_cutoff: float | None


@dataclass
class CurationResult:
    """What a `curate` run did: the decisions, which clips it measured or reused, what it wrote."""

    curation: Curation
    measured: list[str]  # clips measured in this run
    reused: list[str]  # clips whose measurements came from the existing manifest
    manifest: Path
    figure: Path | None
    seconds: float


def read_confidence(path: Path, grid: tuple[int, int, int]) -> np.ndarray | None:
    """Confidence maps (T, h, w) of the clip at `path` with point grid `grid` = (T, h, w); None if it has none."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if "conf" not in archive:
                return None
            conf = archive["conf"]
        where = f"{path} key 'conf'"
    else:
        numbered = [(int(m[1]), f) for f in path.iterdir() if (m := CONFIDENCE_FILE.fullmatch(f.name))]
        if not numbered:
            return None
        indices = sorted(index for index, _ in numbered)
        if indices != list(range(grid[0])):
            raise ClipError(
                f"{path}: confidence maps conf_<i>.npy must be numbered 0..{grid[0] - 1} once each, "
                f"found {indices[:8]}{' …' if len(indices) > 8 else ''}"
            )
        try:
            conf = np.stack([np.load(f, allow_pickle=False) for _, f in sorted(numbered)])
        except (OSError, ValueError, EOFError) as error:
            raise ClipError(f"{path}: confidence maps unreadable ({error})") from error
        where = f"{path} conf_<i>.npy"
    if conf.shape != grid or not np.isfinite(conf).all():
        raise ClipError(f"{where}: confidence must be finite {grid} (the depth grid), got {conf.shape}")
    return conf


def read_alignment_loss(path: Path) -> float | None:
    """The clip's final global-alignment loss (§3.3), or None when it provides none."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if "alignment_loss" not in archive:
                return None
            values = archive["alignment_loss"]
        where = f"{path} key 'alignment_loss'"
    else:
        file = path / ALIGNMENT_FILE
        if not file.is_file():
            return None
        try:
            values = np.array([float(x) for x in file.read_text().split()])
        except ValueError:
            values = np.array([])
        where = str(file)
    if values.size != 1 or not np.isfinite(values).all():
        raise ClipError(f"{where}: expected one finite number, got {values.ravel()[:4].tolist()}")
    return float(values.ravel()[0])


def median_depth(xyz: np.ndarray, c2w: np.ndarray) -> float:
    """s: the median camera-frame depth z = (X − c_t)·z_t over all points (T, h, w, 3) of all frames."""
    centers, forward = c2w[:, :3, 3], c2w[:, :3, 2]  # c_t and the camera's z axis in the world
    depth = np.einsum("thwk,tk->thw", xyz - centers[:, None, None], forward)
    scale = float(np.median(depth))
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"median depth {scale} is not positive: the points lie behind their cameras")
    return scale


def measure_clip(path: Path, tau: float) -> ClipRecord:
    """Pass 1 for one clip: its measurements, or an `unreadable` record with the error. Never raises."""
    record = ClipRecord(clip=path.name, tau=tau)
    try:
        clip = read_clip(path)
        conf = read_confidence(path, clip.xyz.shape[:3])
        record.alignment_loss = read_alignment_loss(path)
        record.frames = clip.num_frames
        record.luminance = mean_luminance(clip.rgb)  # Ȳ, §3.1
        if conf is not None:
            record.mcv, record.hcpr = mean_confidence(conf), high_confidence_ratio(conf, tau)  # §3.2
        record.scale = median_depth(clip.xyz, clip.c2w)
        record.camera_centers = camera_centers_from_c2w(clip.c2w).tolist()
    except Exception as error:  # one bad clip is that clip's verdict, never the run's
        message = str(error) if isinstance(error, ClipError) else f"{path}: {type(error).__name__}: {error}"
        return ClipRecord(clip=path.name, tau=tau, error=message)
    return record


def decide(records: list[ClipRecord], thresholds: Thresholds) -> Curation:
    """Pass 2: smoothness means (Eq. 1, vectorised), every filter's verdict, the top-r % ranking."""
    records = sorted((replace(r, kept=None, reasons=[]) for r in records), key=lambda r: r.clip)
    readable = [r for r in records if r.error is None]
    for record in records:
        if record.error is not None:
            record.reasons.append("unreadable")

    t = thresholds
    # Eq. 1 on c_t / s: one call per frame count (N, T, 3) → (N,), then §3.3's criteria per clip.
    smooth: dict[str, dict[str, bool]] = {}
    by_length: dict[int, list[ClipRecord]] = {}
    for record in readable:
        if record.frames >= MIN_FRAMES:
            by_length.setdefault(record.frames, []).append(record)
    for group in by_length.values():
        centers = (
            np.array([r.camera_centers for r in group]) / np.array([r.scale for r in group])[:, None, None]
        )
        smoothness = camera_smoothness(centers)
        checks = smoothness_checks(smoothness, t.max_speed, t.max_acceleration, t.max_curvature)
        for k, record in enumerate(group):
            record.mean_speed = float(smoothness.mean_speed[k])
            record.mean_acceleration = float(smoothness.mean_acceleration[k])
            record.mean_curvature = float(smoothness.mean_curvature[k])
            smooth[record.clip] = {name: bool(passed[k]) for name, passed in checks.items()}

    for record in readable:
        if not luminance_ok(record.luminance, t.min_luminance, t.max_luminance):  # §3.1
            record.reasons.append("dark" if record.luminance < t.min_luminance else "bright")
        if record.alignment_loss is not None and record.alignment_loss > t.max_alignment_loss:  # §3.3, first
            record.reasons.append("high_alignment_loss")
        if record.frames < MIN_FRAMES:  # §3.3, second: Eq. 1 needs three frames
            record.reasons.append("too_few_frames")
        else:  # `is_smooth`'s criteria, one reason each
            record.reasons += [f"high_{name}" for name, passed in smooth[record.clip].items() if not passed]

    # §3.2 / §3.3, third: top r % by MCV and by HCPR among the survivors with confidence maps (the clips
    # `select_by_confidence` ranks; each metric's half of it gives that metric's reason).
    ranked = [r for r in readable if not r.reasons and r.mcv is not None]
    cutoffs: dict[str, float | None] = {"mcv": None, "hcpr": None}
    for metric in cutoffs:
        if not ranked:
            break
        scores = np.array([getattr(r, metric) for r in ranked])
        top = top_fraction(scores, t.top_r)
        cutoffs[metric] = float(scores[top].min())
        for record, in_top in zip(ranked, top, strict=True):
            if not in_top:
                record.reasons.append(f"low_{metric}")
    for record in records:
        record.kept = not record.reasons
    return Curation(records, cutoffs["mcv"], cutoffs["hcpr"])


def clip_paths(data_dir: Path) -> list[Path]:
    """The clips under a data root: sub-folders and .npz files, hidden names skipped, sorted by name."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(f"data directory {data_dir} does not exist or is not a directory")
    return sorted(
        (p for p in data_dir.iterdir() if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".npz")),
        key=lambda p: p.name,
    )


def read_manifest(path: Path) -> list[ClipRecord]:
    """The records of a manifest; an unterminated last line (a write cut short by a kill) is dropped."""
    lines = Path(path).read_text().split("\n")
    names = {f.name for f in fields(ClipRecord)}
    records = []
    for number, line in enumerate(lines[:-1], start=1):  # lines[-1] is "" or the unterminated tail
        try:
            values = json.loads(line)
            if not isinstance(values, dict) or "clip" not in values or not set(values) <= names:
                raise ValueError("not a clip record")
        except ValueError as error:
            raise ValueError(
                f"{path}: line {number} is not a curate manifest record ({error}); delete the file to start over"
            ) from error
        records.append(ClipRecord(**values))
    return records


def write_manifest(path: Path, records: list[ClipRecord]) -> None:
    """Replace the manifest atomically: write a temporary file, fsync it, os.replace it over `path`."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as handle:
        handle.writelines(_line(record) for record in records)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_directory(path.parent)


def curate(
    data_dir: Path,
    out: Path,
    thresholds: Thresholds = Thresholds(),
    workers: int = 1,
    plot: bool = True,
) -> CurationResult:
    """Curate every clip under data_dir into the manifest `out` (and curation.png beside it); resumable.

    Clips already measured in `out` at the same τ are not measured again; clips no longer under
    data_dir are dropped from it.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    clock = time.perf_counter()
    out = Path(out)
    paths = clip_paths(data_dir)
    if not paths:
        raise ValueError(f"no clips under {data_dir} (sub-folders or .npz files in the 4DNeX-10M layout)")
    previous = {r.clip: r for r in read_manifest(out)} if out.is_file() else {}
    reusable = {p.name for p in paths if p.name in previous and previous[p.name].tau == thresholds.tau}
    reused = [replace(previous[p.name], kept=None, reasons=[]) for p in paths if p.name in reusable]
    todo = [p for p in paths if p.name not in reusable]

    out.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(out, reused)  # no stale decisions, no torn last line, no vanished clips
    measured = []
    with open(out, "a") as handle:
        for record in tqdm(
            _measure(todo, thresholds.tau, workers), total=len(todo), desc="curate", unit="clip", disable=None
        ):
            handle.write(_line(record))
            handle.flush()
            os.fsync(handle.fileno())
            measured.append(record)

    curation = decide(reused + measured, thresholds)
    write_manifest(out, curation.records)
    picture = plot_curation(curation, thresholds, out.parent / FIGURE_NAME) if plot else None
    return CurationResult(
        curation,
        measured=sorted(r.clip for r in measured),
        reused=[r.clip for r in reused],
        manifest=out,
        figure=picture,
        seconds=time.perf_counter() - clock,
    )


def summary_table(curation: Curation, thresholds: Thresholds) -> str:
    """Markdown table: kept, rejected, and the clips per reason (a clip counts once per failed filter)."""
    records = curation.records
    kept = sum(r.kept for r in records)
    per_reason = Counter(reason for r in records for reason in r.reasons)
    lines = [
        f"{len(records)} clips: {kept} kept, {len(records) - kept} rejected",
        "",
        "| outcome | clips | rule |",
        "|---|---|---|",
        f"| kept | {kept} | passed every filter |",
    ]
    lines += [
        f"| {reason} | {per_reason[reason]} | {_rule(reason, thresholds)} |"
        for reason in REASONS
        if per_reason[reason]
    ]
    return "\n".join(lines)


def plot_curation(curation: Curation, thresholds: Thresholds, path: Path) -> Path:
    """Histograms of every metric (kept and rejected clips) with the threshold lines; outcomes per reason."""
    t = thresholds
    panels = (
        ("luminance", "mean luminance Ȳ (§3.1)", (t.min_luminance, t.max_luminance), False),
        ("alignment_loss", "alignment loss (§3.3)", (t.max_alignment_loss,), False),
        ("mean_speed", "mean speed, depths/frame", (t.max_speed,), True),
        ("mean_acceleration", "mean acceleration, depths/frame²", (t.max_acceleration,), True),
        ("mean_curvature", "mean curvature κ (Eq. 1), 1/depth", (t.max_curvature,), True),
        ("mcv", f"MCV (top {t.top_r:g} % kept)", (curation.mcv_cutoff,), False),
        ("hcpr", f"HCPR, C > τ = {t.tau:g} (top {t.top_r:g} %)", (curation.hcpr_cutoff,), False),
    )
    histograms = []
    for name, label, lines, logarithmic in panels:
        measured = [r for r in curation.records if getattr(r, name) is not None]
        values = np.array([getattr(r, name) for r in measured], dtype=np.float64)
        kept = np.array([r.kept for r in measured], dtype=bool)
        histograms.append(Histogram(label, values, kept, lines, logarithmic))
    counts = Counter(reason for r in curation.records for reason in r.reasons)
    outcomes = {"kept": sum(r.kept for r in curation.records)} | {r: counts[r] for r in REASONS if counts[r]}
    return plot_filter_histograms(histograms, outcomes, len(curation.records), path)


def _rule(reason: str, t: Thresholds) -> str:
    rules = {
        "dark": f"Ȳ < {t.min_luminance:g}",
        "bright": f"Ȳ > {t.max_luminance:g}",
        "high_alignment_loss": f"loss > {t.max_alignment_loss:g}",
        "high_speed": f"mean speed > {t.max_speed:g} depths/frame",
        "high_acceleration": f"mean acceleration > {t.max_acceleration:g} depths/frame²",
        "high_curvature": f"mean κ > {t.max_curvature:g}",
        "low_mcv": f"not in the top {t.top_r:g} % by MCV",
        "low_hcpr": f"not in the top {t.top_r:g} % by HCPR (τ = {t.tau:g})",
    }
    return rules.get(reason, REASONS[reason])


def _line(record: ClipRecord) -> str:
    return json.dumps(asdict(record)) + "\n"


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _single_thread() -> None:
    """Pool initializer: workers share the cores, so each runs torch on one thread.

    numpy's share of measure_clip (means, medians, einsum) calls BLAS only on 3 × 3 matrices and
    3-vectors, which BLAS libraries do not split across threads.
    """
    torch.set_num_threads(1)


def _measure(paths: list[Path], tau: float, workers: int) -> Iterator[ClipRecord]:
    """measure_clip over paths: in this process, or in a pool of `workers` processes (completion order)."""
    if workers == 1:
        for path in paths:
            yield measure_clip(path, tau)
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_single_thread)
    try:
        for future in as_completed([pool.submit(measure_clip, path, tau) for path in paths]):
            yield future.result()
    finally:  # on an interrupt, drop the clips not started instead of measuring them all first
        pool.shutdown(cancel_futures=True)
