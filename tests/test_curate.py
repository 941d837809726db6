"""§3.1-3.3 data curation: filters, reasons, manifest, resume, workers, CLI. Spec: specs/curation.md

The data set is written by the tests in the 4DNeX-10M layout: synthetic scenes (49 frames, the
paper's clip length, at 12 × 16 pixels) made smooth, jittery, dark, bright, low-confidence,
misaligned or corrupted on disk, so every filter and the reader run for real.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation
from typer.testing import CliRunner

import nanofourdnex.tools.curate as curate_module
from nanofourdnex.cli import app
from nanofourdnex.paper.curvature import camera_smoothness, is_smooth
from nanofourdnex.paper.quality import select_by_confidence
from nanofourdnex.synthetic import Scene, make_scene, write_clip
from nanofourdnex.tools.curate import (
    FIGURE_NAME,
    REASONS,
    ClipRecord,
    Thresholds,
    curate,
    decide,
    measure_clip,
    read_manifest,
)

ROOT = Path(__file__).resolve().parents[1]
FRAMES, HEIGHT, WIDTH = 49, 12, 16
THRESHOLDS = Thresholds(max_alignment_loss=0.1)  # the defaults, with the alignment filter switched on

# clip → the reasons curate must give (empty: kept).
EXPECTED = {
    "good_0": [],  # confidence maps conf_<i>.npy unpadded, as MonST3R writes them; alignment loss 0.02
    "good_1": [],  # conf_XXXX.npy
    "good_2": [],
    "good_3": [],
    "good_dynamic.npz": [],  # key conf
    "good_static.npz": [],  # pts3d + poses, key conf
    "good_unrated": [],  # no confidence maps: not ranked, not rejected by MCV / HCPR
    "low_confidence": ["low_mcv", "low_hcpr"],
    "dark": ["dark"],
    "bright": ["bright"],
    "misaligned": ["high_alignment_loss"],
    "jittery": ["high_acceleration"],  # noisy camera path, σ = 0.01 scene depths per frame
    "shaky_standing": ["high_curvature"],  # a standing camera with 5e-4 depths of noise
    "fast": ["high_speed"],  # a straight, uniform dolly of 0.1 depths per frame
    "dark_jittery": ["dark", "high_acceleration"],
    "broken_depth": ["unreadable"],
    "broken_png": ["unreadable"],
    "broken_trajectory": ["unreadable"],
    "broken_confidence": ["unreadable"],
    "broken_loss": ["unreadable"],
    "garbage.npz": ["unreadable"],
}
ERROR_NAMES = {  # the file an unreadable clip's error must name
    "broken_depth": "frame_0003.npy",
    "broken_png": "rgb_0000.png",  # the reader names the cut frame (PIL raises SyntaxError for it)
    "broken_trajectory": "pred_traj.txt",
    "broken_confidence": "conf",
    "broken_loss": "alignment_loss.txt",
    "garbage.npz": "garbage.npz",
}


# --- the synthetic data set ------------------------------------------------------------------------


def scene(seed: int, frames: int = FRAMES, height: int = HEIGHT, width: int = WIDTH) -> Scene:
    return make_scene(seed, frames, height, width)


def confidence(seed: int, low: float, high: float, shape=(FRAMES, HEIGHT, WIDTH)) -> np.ndarray:
    """DUSt3R-like confidence (≥ 1) drawn uniformly in [low, high]."""
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def scale_of(s: Scene) -> float:
    return float(np.median(s.depth.astype(np.float64)))


def with_centers(s: Scene, centers: np.ndarray) -> Scene:
    c2w = s.c2w.copy()
    c2w[:, :3, 3] = centers
    return replace(s, c2w=c2w)


def write_folder(s: Scene, root: Path, name: str, conf=None, padded=False, loss=None) -> Path:
    clip = write_clip(s, root / name)
    for i, c in enumerate([] if conf is None else conf):
        np.save(clip / (f"conf_{i:04d}.npy" if padded else f"conf_{i}.npy"), c)
    if loss is not None:
        (clip / "alignment_loss.txt").write_text(f"{loss}\n")
    return clip


def write_dynamic_npz(s: Scene, file: Path, **extra) -> Path:
    np.savez(file, images=s.rgb, depths=s.depth, intrinsic=s.K[0], cam_c2w=s.c2w, **extra)
    return file


def build_dataset(root: Path) -> Path:
    root.mkdir(parents=True)
    high = lambda seed: confidence(seed, 1.5, 12.0)  # noqa: E731  (MCV ≈ 6.75, HCPR ≈ 0.86 at τ = 3)
    write_folder(scene(0), root, "good_0", high(0), loss=0.02)
    write_folder(scene(1), root, "good_1", high(1), padded=True)
    for k in (2, 3):
        write_folder(scene(k), root, f"good_{k}", high(k))
    write_dynamic_npz(scene(4), root / "good_dynamic.npz", conf=high(4))
    s = scene(5)
    np.savez(root / "good_static.npz", images=s.rgb, pts3d=s.xyz, poses=s.c2w, intrinsic=s.K[0], conf=high(5))
    write_folder(scene(6), root, "good_unrated")
    write_folder(scene(7), root, "low_confidence", confidence(7, 1.0, 4.0))  # MCV ≈ 2.5, HCPR ≈ 1/3

    s = scene(8)
    write_folder(replace(s, rgb=(s.rgb * 0.1).astype(np.uint8)), root, "dark", high(8))
    s = scene(9)
    write_folder(replace(s, rgb=255 - (255 - s.rgb) // 10), root, "bright", high(9))
    write_folder(scene(10), root, "misaligned", high(10), loss=0.5)

    rng = np.random.default_rng(11)
    s = scene(11)
    jitter = s.c2w[:, :3, 3] + 0.01 * scale_of(s) * rng.standard_normal((FRAMES, 3))
    write_folder(with_centers(s, jitter), root, "jittery", high(11))
    s = scene(12)
    standing = s.c2w[:1, :3, 3] + 5e-4 * scale_of(s) * rng.standard_normal((FRAMES, 3))
    write_folder(with_centers(s, standing), root, "shaky_standing", high(12))
    s = scene(13)
    direction = np.array([2.0, -1.0, 2.0]) / 3
    dolly = s.c2w[0, :3, 3] + 0.1 * scale_of(s) * np.arange(FRAMES)[:, None] * direction
    write_folder(with_centers(s, dolly), root, "fast", high(13))
    s = scene(14)
    jitter = s.c2w[:, :3, 3] + 0.01 * scale_of(s) * rng.standard_normal((FRAMES, 3))
    write_folder(replace(with_centers(s, jitter), rgb=(s.rgb * 0.1).astype(np.uint8)), root, "dark_jittery")

    (write_folder(scene(15), root, "broken_depth") / "frame_0003.npy").write_bytes(b"not a numpy file")
    png = write_folder(scene(16), root, "broken_png") / "rgb_0000.png"
    png.write_bytes(png.read_bytes()[:40])
    traj = write_folder(scene(17), root, "broken_trajectory") / "pred_traj.txt"
    traj.write_text(traj.read_text().replace("\n", "\n3 nan\n", 1))
    write_folder(scene(18), root, "broken_confidence", confidence(18, 1, 9, (FRAMES, 5, 5)))
    write_folder(scene(19), root, "broken_loss", loss="n/a")
    (root / "garbage.npz").write_bytes(b"\x00 not a zip archive " * 20)
    (root / "captions.csv").write_text("number,caption\n")  # other files are not clips
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("curate") / "data")


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory):
    """One complete run with one worker: (result, manifest text)."""
    out = tmp_path_factory.mktemp("reference") / "manifest.jsonl"
    result = curate(dataset, out, THRESHOLDS, workers=1, plot=False)
    return result, out.read_text()


def by_clip(records: list[ClipRecord]) -> dict[str, ClipRecord]:
    return {r.clip: r for r in records}


# --- the filters -----------------------------------------------------------------------------------


def test_curate_keeps_exactly_the_good_clips_and_names_each_rejection(reference):
    result, _ = reference
    records = by_clip(result.curation.records)
    assert sorted(records) == sorted(EXPECTED)
    assert {name: r.reasons for name, r in records.items()} == EXPECTED
    assert {name for name, r in records.items() if r.kept} == {
        n for n, reasons in EXPECTED.items() if not reasons
    }
    for name, file in ERROR_NAMES.items():
        assert file in records[name].error, (name, records[name].error)
    assert all(r.error is None for name, r in records.items() if name not in ERROR_NAMES)


def test_manifest_lines_carry_every_metric_and_match_hand_values(reference, dataset):
    result, text = reference
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["clip"] for line in lines] == sorted(EXPECTED)  # one line per clip, in name order
    records = by_clip(read_manifest(result.manifest))
    metrics = ("luminance", "mean_speed", "mean_acceleration", "mean_curvature", "scale", "frames")
    for name, record in records.items():
        assert record.kept is (not EXPECTED[name])
        if record.error is None:
            assert all(getattr(record, m) is not None for m in metrics), name
            assert record.tau == THRESHOLDS.tau and len(record.camera_centers) == FRAMES
    assert records["good_unrated"].mcv is None and records["good_unrated"].hcpr is None
    assert records["good_0"].alignment_loss == 0.02 and records["good_1"].alignment_loss is None

    # The uniform dolly moves 0.1 scene depths per frame in a straight line: ‖v‖ = 0.1, a = κ = 0.
    fast = records["fast"]
    assert fast.mean_speed == pytest.approx(0.1, rel=1e-9)
    assert fast.mean_acceleration == pytest.approx(0, abs=1e-12)
    assert fast.mean_curvature == pytest.approx(0, abs=1e-9)
    # Ȳ of the dark clip is a tenth of its source scene's (up to uint8 rounding), s its median depth.
    s = scene(8)
    assert records["dark"].luminance == pytest.approx(
        float(((s.rgb * 0.1).astype(np.uint8) @ [0.299, 0.587, 0.114]).mean() / 255), rel=1e-12
    )
    assert records["dark"].scale == pytest.approx(scale_of(s), rel=1e-6)
    # MCV and HCPR are the plain mean and the fraction above τ of the stored maps.
    conf = np.stack([np.load(dataset / "good_0" / f"conf_{i}.npy") for i in range(FRAMES)]).astype(np.float64)
    assert records["good_0"].mcv == pytest.approx(conf.mean(), rel=1e-12)
    assert records["good_0"].hcpr == (conf > THRESHOLDS.tau).mean()


def test_top_r_ranks_only_the_survivors_that_have_confidence_maps(reference):
    result = reference[0]
    records = result.curation.records
    ranked = [
        r for r in records if r.mcv is not None and (r.kept or set(r.reasons) <= {"low_mcv", "low_hcpr"})
    ]
    assert sorted(r.clip for r in ranked) == sorted(
        ["good_0", "good_1", "good_2", "good_3", "good_dynamic.npz", "good_static.npz", "low_confidence"]
    )  # the dark, bright, jittery … clips have high confidence but take no place in the ranking
    mcv, hcpr = np.array([r.mcv for r in ranked]), np.array([r.hcpr for r in ranked])
    np.testing.assert_array_equal([r.kept for r in ranked], select_by_confidence(mcv, hcpr, THRESHOLDS.top_r))
    assert result.curation.mcv_cutoff == min(r.mcv for r in ranked if r.kept)
    assert result.curation.hcpr_cutoff == min(r.hcpr for r in ranked if r.kept)


def test_a_clip_with_fewer_than_three_frames_gets_its_own_reason():
    centers = [[0.0, 0, 0], [1, 0, 0]]
    record = ClipRecord("short", frames=2, luminance=0.5, scale=1.0, camera_centers=centers, tau=3.0)
    (decided,) = decide([record], Thresholds()).records
    assert decided.reasons == ["too_few_frames"] and decided.kept is False
    assert decided.mean_speed is None


# --- invariances (hypothesis) ----------------------------------------------------------------------

quaternions = st.tuples(*[st.floats(-1, 1)] * 4).filter(lambda q: np.linalg.norm(q) > 0.1)
shifts = st.tuples(*[st.floats(-1000, 1000)] * 3)
seeds = st.integers(0, 2**31 - 1)


def random_records(seed: int, clips: int = 6, frames: int = 12) -> list[ClipRecord]:
    """Random-walk trajectories with per-clip shakiness over two decades, at random scales."""
    rng = np.random.default_rng(seed)
    sigma = 10 ** rng.uniform(-3, -1, (clips, 1, 1))
    velocity = 0.02 * rng.standard_normal((clips, 1, 3)) + np.cumsum(
        sigma * rng.standard_normal((clips, frames - 1, 3)), axis=1
    )
    centers = np.concatenate([np.zeros((clips, 1, 3)), np.cumsum(velocity, axis=1)], axis=1)
    scales = rng.uniform(0.5, 5, clips)
    return [
        ClipRecord(
            f"c{k}", frames=frames, luminance=0.5, scale=float(s), camera_centers=(c * s).tolist(), tau=3.0
        )
        for k, (c, s) in enumerate(zip(centers, scales, strict=True))
    ]


def split_thresholds(records: list[ClipRecord]) -> Thresholds:
    """Thresholds halfway between the 3rd and 4th smallest value of each smoothness mean."""
    measured = decide(records, Thresholds()).records
    values = {}
    for name in ("mean_speed", "mean_acceleration", "mean_curvature"):
        v = np.sort([getattr(r, name) for r in measured])
        assume(v[3] - v[2] > 1e-6 * v[3])  # far enough apart for rounding not to decide
        values[name.replace("mean", "max")] = float((v[2] + v[3]) / 2)
    return Thresholds(**values)


def moved(
    records: list[ClipRecord], rotation: np.ndarray, shift: np.ndarray, scale: float = 1.0
) -> list[ClipRecord]:
    return [
        replace(
            r,
            camera_centers=(scale * np.array(r.camera_centers) @ rotation.T + shift).tolist(),
            scale=scale * r.scale,
        )
        for r in records
    ]


def assert_same_verdicts(a: list[ClipRecord], b: list[ClipRecord], rtol: float) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.reasons == y.reasons, (x.clip, x.reasons, y.reasons)
        for name in ("mean_speed", "mean_acceleration", "mean_curvature"):
            assert getattr(y, name) == pytest.approx(getattr(x, name), rel=rtol, abs=1e-12), name


@given(seeds, quaternions, shifts)
def test_smoothness_verdicts_do_not_depend_on_where_the_trajectory_sits(seed, q, shift):
    records = random_records(seed)
    thresholds = split_thresholds(records)
    rotation = Rotation.from_quat(q).as_matrix()
    before = decide(records, thresholds).records
    after = decide(moved(records, rotation, np.array(shift)), thresholds).records
    assert_same_verdicts(before, after, rtol=1e-6)
    assert sum(bool(r.reasons) for r in before) >= 3  # each threshold splits the clips: something is judged


@given(seeds, st.floats(1e-3, 1e3))
def test_scaling_the_world_leaves_speed_and_acceleration_and_curvature_unchanged(seed, factor):
    records = random_records(seed)
    thresholds = split_thresholds(records)
    before = decide(records, thresholds).records
    after = decide(moved(records, np.eye(3), np.zeros(3), factor), thresholds).records
    assert_same_verdicts(before, after, rtol=1e-6)  # s scales with the world, so c_t / s does not change


@given(seeds)
def test_smoothness_verdict_is_the_keep_rule_of_eq1(seed):
    records = random_records(seed)
    thresholds = split_thresholds(records)
    decided = decide(records, thresholds).records
    centers = (
        np.array([r.camera_centers for r in records]) / np.array([r.scale for r in records])[:, None, None]
    )
    expected = is_smooth(
        camera_smoothness(centers),
        thresholds.max_speed,
        thresholds.max_acceleration,
        thresholds.max_curvature,
    )
    np.testing.assert_array_equal([r.kept for r in decided], expected)


@cache
def small_scene() -> Scene:
    return scene(21, frames=9, height=6, width=8)


@settings(max_examples=10)
@given(quaternions, shifts)
def test_curating_a_clip_does_not_depend_on_where_the_world_sits(tmp_path_factory, q, shift):
    """The whole clip (cameras and points) moved rigidly: every metric and the verdict stay."""
    folder = tmp_path_factory.mktemp("moved")
    s = small_scene()
    motion = np.eye(4)
    motion[:3, :3], motion[:3, 3] = Rotation.from_quat(q).as_matrix(), shift
    conf = confidence(0, 1, 9, s.depth.shape)
    here = measure_clip(write_dynamic_npz(s, folder / "here.npz", conf=conf), tau=3.0)
    there = measure_clip(
        write_dynamic_npz(replace(s, c2w=motion @ s.c2w), folder / "there.npz", conf=conf), 3.0
    )
    assert here.error is None and there.error is None
    assert (here.luminance, here.mcv, here.hcpr) == (there.luminance, there.mcv, there.hcpr)
    assert there.scale == pytest.approx(here.scale, rel=1e-9)
    (a,), (b,) = (
        decide([here], Thresholds()).records,
        decide([replace(there, clip=here.clip)], Thresholds()).records,
    )
    assert_same_verdicts([a], [b], rtol=1e-7)


@settings(max_examples=15)
@given(st.tuples(*[st.integers(0, 255)] * 3))
def test_luminance_of_a_constant_clip_is_the_formula_value(tmp_path_factory, colour):
    r, g, b = colour
    s = small_scene()
    rgb = np.broadcast_to(np.array(colour, dtype=np.uint8), s.rgb.shape).copy()
    file = write_dynamic_npz(replace(s, rgb=rgb), tmp_path_factory.mktemp("constant") / "clip.npz")
    record = measure_clip(file, tau=3.0)
    assert record.luminance == pytest.approx((0.299 * r + 0.587 * g + 0.114 * b) / 255, rel=1e-12, abs=1e-15)


# --- manifest, resume, workers ---------------------------------------------------------------------


def test_two_workers_write_the_same_manifest_as_one(reference, dataset, tmp_path):
    out = tmp_path / "manifest.jsonl"
    result = curate(dataset, out, THRESHOLDS, workers=2, plot=False)
    assert out.read_text() == reference[1]
    assert result.measured == sorted(EXPECTED) and result.reused == []


def test_resume_reuses_finished_lines_without_measuring_them_again(reference, dataset, tmp_path, monkeypatch):
    out = tmp_path / "manifest.jsonl"
    lines = reference[1].splitlines(keepends=True)
    first = json.loads(lines[0])
    first["luminance"] += 1e-6  # measuring the clip again would give back the measured value exactly
    out.write_text(json.dumps(first) + "\n" + "".join(lines[1:5]))
    counted = []
    monkeypatch.setattr(
        curate_module, "measure_clip", lambda path, tau: counted.append(path.name) or measure_clip(path, tau)
    )

    result = curate(dataset, out, THRESHOLDS, workers=1, plot=False)
    names = sorted(EXPECTED)
    assert sorted(counted) == result.measured == names[5:] and result.reused == names[:5]
    records = read_manifest(out)
    assert records[0].luminance == first["luminance"]  # reused, not measured
    assert [replace(r, luminance=None) for r in records] == [
        replace(r, luminance=None) for r in reference[0].curation.records
    ]

    counted.clear()  # new thresholds: a finished manifest is only decided again
    strict = replace(THRESHOLDS, max_speed=5e-4)
    result = curate(dataset, out, strict, workers=1, plot=False)
    assert counted == [] and result.measured == [] and len(result.reused) == len(EXPECTED)
    assert all("high_speed" in r.reasons for r in result.curation.records if r.error is None)
    result = curate(dataset, out, replace(strict, tau=5.0), workers=1, plot=False)
    assert sorted(counted) == names  # HCPR depends on τ: another τ measures again


KILLED_RUN = """
import os, signal, sys
from pathlib import Path
import nanofourdnex.tools.curate as c
measure, calls = c.measure_clip, []
def dying(path, tau):
    calls.append(path)
    if len(calls) == int(sys.argv[3]) + 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return measure(path, tau)
c.measure_clip = dying
c.curate(Path(sys.argv[1]), Path(sys.argv[2]), c.Thresholds(max_alignment_loss=0.1), plot=False)
"""


def run_killed(dataset: Path, out: Path, measured: int) -> None:
    """curate in a fresh process that SIGKILLs itself once `measured` clips are measured."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, dataset, out, str(measured)],
        cwd=ROOT,
        env=environment,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL


def test_a_killed_run_resumes_from_its_manifest(reference, dataset, tmp_path, monkeypatch):
    out = tmp_path / "manifest.jsonl"
    names = sorted(EXPECTED)
    run_killed(dataset, out, measured=3)
    survivors = read_manifest(out)
    assert [r.clip for r in survivors] == names[:3]  # fsynced before the kill, not yet decided
    assert all(r.kept is None for r in survivors)

    with open(out, "a") as handle:  # and a line torn in the middle of its write
        handle.write('{"clip": "good_3", "kept": null, "lumin')
    run_killed(dataset, out, measured=2)  # killed again: the torn line must not corrupt what follows
    survivors = read_manifest(out)
    assert [r.clip for r in survivors] == names[:5] and all(r.kept is None for r in survivors)

    counted = []
    monkeypatch.setattr(
        curate_module, "measure_clip", lambda path, tau: counted.append(path.name) or measure_clip(path, tau)
    )
    result = curate(dataset, out, THRESHOLDS, workers=1, plot=False)
    assert sorted(counted) == result.measured == names[5:]
    assert out.read_text() == reference[1]
    assert not out.with_name(out.name + ".tmp").exists()


def test_read_manifest_drops_a_torn_last_line_and_rejects_foreign_lines(tmp_path):
    file = tmp_path / "manifest.jsonl"
    file.write_text('{"clip": "a", "luminance": 0.5}\n{"clip": "b", "lumi')
    assert [r.clip for r in read_manifest(file)] == ["a"]
    file.write_text('{"clip": "a"}\nnot json\n{"clip": "b"}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_manifest(file)
    file.write_text('{"clip": "a", "colour": "red"}\n')
    with pytest.raises(ValueError, match="line 1"):
        read_manifest(file)


# --- CLI -------------------------------------------------------------------------------------------


def invoke(*args):
    return CliRunner().invoke(app, ["curate", *[str(a) for a in args]])


def test_cli_curates_prints_the_summary_and_draws_the_figure(reference, dataset, tmp_path):
    out = tmp_path / "run" / "manifest.jsonl"
    result = invoke(dataset, "--out", out, "--max-alignment-loss", 0.1, "--workers", 2)
    assert result.exit_code == 0, result.output
    assert out.read_text() == reference[1]
    kept = sum(not reasons for reasons in EXPECTED.values())
    assert f"{len(EXPECTED)} clips: {kept} kept, {len(EXPECTED) - kept} rejected" in result.output
    for reason in REASONS:
        count = sum(reason in reasons for reasons in EXPECTED.values())
        assert (f"| {reason} | {count} |" in result.output) == (count > 0), reason
    assert (out.parent / FIGURE_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_options_name_the_library_defaults():
    """The CLI leaves unset thresholds to Thresholds(); its help must quote Thresholds()'s values."""
    output = CliRunner().invoke(app, ["curate", "--help"], terminal_width=200).output
    options = " ".join(output.split("Options", 1)[1].split())  # the option table, past the docstring
    for name, value in vars(Thresholds()).items():
        shown = "inf" if math.isinf(value) else f"{value:g}"
        assert f"(default {shown})" in options.split(f"--{name.replace('_', '-')} ")[1].split("--")[0], name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--min-luminance", 0.9, "--max-luminance", 0.1), "luminance bounds"),
        (("--top-r", 0), "top_r must be a percentage"),
        (("--max-speed", -1), "max_speed must be a non-negative number"),
        (("--tau", "nan"), "tau must be a finite"),
        (("--workers", 0), "workers must be at least 1"),
    ],
)
def test_cli_reports_bad_thresholds_in_one_line(dataset, tmp_path, args, message):
    result = invoke(dataset, "--out", tmp_path / "m.jsonl", *args)
    assert result.exit_code == 2
    assert message in result.output and result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "m.jsonl").exists()


def test_cli_reports_a_missing_data_directory_in_one_line(tmp_path):
    result = invoke(tmp_path / "nowhere", "--out", tmp_path / "m.jsonl")
    assert result.exit_code == 2
    assert result.output.startswith("error: data directory") and result.output.count("\n") == 1


def test_cli_reports_a_data_directory_without_clips_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke(tmp_path / "empty", "--out", tmp_path / "m.jsonl")
    assert result.exit_code == 2 and result.output.startswith("error: no clips under")
    assert result.output.count("\n") == 1 and not (tmp_path / "m.jsonl").exists()
