"""Benchmark: camera-smoothness metrics (Eq. 1) for a curation-sized set of clips, batched against a loop.

Run from the repository root:

    OMP_NUM_THREADS=1 python benchmarks/curate.py                 # 110,000 clips (§3.3's final count), about 7 s
    OMP_NUM_THREADS=1 python benchmarks/curate.py --clips 10000   # quicker

It draws N synthetic 49-frame camera trajectories at once (float64): a random start, a random
initial velocity and per-frame accelerations with a per-clip σ drawn log-uniformly over three
decades, so the set runs from near-constant-velocity dollies to shaky hand-held paths. It then
computes mean speed, acceleration and curvature per clip

- with one vectorised `camera_smoothness` call on the (N, 49, 3) array, numpy and torch;
- with a Python loop calling `camera_smoothness` on each (49, 3) clip, over all N clips;

checks that all of them agree (relative 1e-12) and prints one markdown table: time, clips per
second, and the speed-up over the loop. The first numpy call is listed separately: it pays the page
faults of its freshly allocated arrays; the other vectorised rows are the best of --repeats calls.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from nanofourdnex.paper.curvature import CameraSmoothness, camera_smoothness, is_smooth

FRAMES = 49


def trajectories(clips: int, seed: int = 0) -> np.ndarray:
    """(N, 49, 3) camera centres: c_0 + Σ v, v = v_0 + Σ a, a ~ N(0, σ²) per frame, σ ∈ [1e-4, 1e-1] per clip."""
    rng = np.random.default_rng(seed)
    sigma = 10 ** rng.uniform(-4, -1, (clips, 1, 1))  # per-clip shakiness
    acceleration = sigma * rng.standard_normal((clips, FRAMES - 2, 3))
    v0 = 0.05 * rng.standard_normal((clips, 1, 3))
    velocity = np.concatenate([v0, v0 + np.cumsum(acceleration, axis=1)], axis=1)  # (N, 48, 3)
    start = rng.uniform(-1, 1, (clips, 1, 3))
    return np.concatenate([start, start + np.cumsum(velocity, axis=1)], axis=1)  # (N, 49, 3)


def timed(function: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Best wall time of `repeats` calls, and the last result."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def loop(centers: np.ndarray) -> CameraSmoothness:
    """The per-clip baseline: one `camera_smoothness` call per (49, 3) clip."""
    per_clip = [camera_smoothness(clip) for clip in centers]
    return CameraSmoothness(
        np.array([s.mean_speed for s in per_clip]),
        np.array([s.mean_acceleration for s in per_clip]),
        np.array([s.mean_curvature for s in per_clip]),
    )


def assert_agree(ours: CameraSmoothness, reference: CameraSmoothness, what: str) -> None:
    for field in ("mean_speed", "mean_acceleration", "mean_curvature"):
        np.testing.assert_allclose(
            np.asarray(getattr(ours, field)),
            getattr(reference, field),
            rtol=1e-12,
            err_msg=f"{what}: {field}",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=110_000, help="number of 49-frame trajectories")
    parser.add_argument("--repeats", type=int, default=3, help="vectorised calls timed (best is reported)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    centers = trajectories(args.clips)
    cold, batched = timed(lambda: camera_smoothness(centers), 1)
    warm, batched = timed(lambda: camera_smoothness(centers), args.repeats)
    as_torch = torch.from_numpy(centers)
    torch_seconds, batched_torch = timed(lambda: camera_smoothness(as_torch), args.repeats)
    loop_seconds, looped = timed(lambda: loop(centers), 1)
    assert_agree(batched, looped, "vectorised numpy vs loop")
    assert_agree(batched_torch, looped, "vectorised torch vs loop")

    n = args.clips
    rows = [
        ("vectorised numpy, `camera_smoothness(centers)` first call", cold),
        (f"vectorised numpy, best of {args.repeats}", warm),
        (f"vectorised torch (1 thread), best of {args.repeats}", torch_seconds),
        ("Python loop, `camera_smoothness(clip)` per clip (all clips timed)", loop_seconds),
    ]
    lines = ["| method | clips | seconds | clips/s | speed ratio vs loop |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {n:,} | {s:.3f} | {n / s:,.0f} | {loop_seconds / s:.1f}× |" for name, s in rows]
    medians = [
        float(np.median(getattr(batched, f))) for f in ("mean_speed", "mean_acceleration", "mean_curvature")
    ]
    kept = int(is_smooth(batched, *medians).sum())
    lines.append("")
    lines.append(
        f"All methods agree to 1e-12. Thresholds at the medians (speed {medians[0]:.3g}, acceleration "
        f"{medians[1]:.3g}, curvature {medians[2]:.3g}) keep {kept:,} of {n:,} clips ({kept / n:.1%})."
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
