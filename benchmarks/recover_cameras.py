"""Benchmark: cameras and depth from XYZ maps (Eq. 12-13), closed form + Gauss-Newton against Adam.

Run from the repository root:

    OMP_NUM_THREADS=1 python benchmarks/recover_cameras.py           # full sizes, about a minute
    OMP_NUM_THREADS=1 python benchmarks/recover_cameras.py --quick   # small sizes, about 10 seconds

It prints one table. The clip is synthetic and exact: 49 frames of 480×720, a camera that turns
by up to 30° and moves, a surface with relief and an object that moves across it; the world is
the first camera's frame. Rows:

- noise-free float64: `recover_cameras` must be exact (rotation < 1e-6°, focal < 1e-8 relative,
  depth < 1e-6 relative);
- 1 % noise (σ = 1 % of each point's depth) plus 40 % outliers (uniform in the clip's bounding
  box), float32: the robust losses against plain least squares (depth error: median over the
  inlier pixels, where the input noise alone accounts for most of it);
- time for the float32 clip (median of 7 runs) with 1 and 2 BLAS threads, each in a fresh process;
- the reference code's optimiser: Adam (lr 5e-3, 1500 iterations) over per-pixel depth, 6-D
  rotations, translations and a shared K (f_x, f_y, c_x, c_y), initialised as the public 4DNeX code
  does, with torch autograd on one thread, at 49×60×90 where it finishes; beside it this module at
  the same size, and the time one Adam iteration takes at full size, times 1500. loss="squared"
  minimises what Adam minimises; the robust default also draws 256 random DLTs per frame for its
  start. Both are timed in this process (warm, median of 7) and in a fresh one (one warm-up call,
  median of 7): a fresh process has not yet freed a large array, so glibc hands freed memory back
  to the system after every call, and the page faults of taking it again cost about as much as the
  arithmetic at this size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from nanofourdnex.paper.reprojection import (
    backproject,
    depth_from_xyz,
    intrinsics,
    recover_cameras,
    rotation_angle,
)

ADAM_ITERATIONS = 1500
ADAM_LR = 5e-3


@dataclass
class Clip:
    xyz: np.ndarray  # (T, H, W, 3) float64 world points
    depth: np.ndarray  # (T, H, W)
    K: np.ndarray  # (3, 3)
    R: np.ndarray  # (T, 3, 3) world-to-camera
    t: np.ndarray  # (T, 3)


def synthetic_clip(frames: int, height: int, width: int, max_angle: float = 30.0) -> Clip:
    """A camera turning by up to max_angle degrees over a surface 4-7 units away with a moving object."""
    s = np.linspace(0, 1, frames)
    angle = np.radians(max_angle)
    R = Rotation.from_rotvec(
        np.stack([0.3 * angle * np.sin(2 * np.pi * s), angle * s, 0.2 * angle * s], -1)
    ).as_matrix()
    centers = np.stack([3 * np.sin(angle * s), 0.3 * s, s], axis=-1)
    t = -np.einsum("tij,tj->ti", R, centers)  # t = −R·C
    v, u = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    depth = np.empty((frames, height, width))
    for k in range(frames):
        ground = 4 + 3 * v + 0.5 * np.sin(6 * u) * np.cos(4 * v)
        centre_u, centre_v = 0.2 + 0.6 * s[k], 0.5 + 0.2 * np.sin(3 * s[k])
        depth[k] = ground - 2 * np.exp(-((u - centre_u) ** 2 + (v - centre_v) ** 2) / 0.01)  # the object
    K = intrinsics(0.85 * width, height, width)
    return Clip(backproject(depth, K, R, t), depth, K, R, t)


def corrupt(clip: Clip, noise: float, outliers: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian noise of σ = noise·depth per point and a fraction of uniform outliers in the bounding box."""
    rng = np.random.default_rng(seed)
    xyz = clip.xyz + noise * clip.depth[..., None] * rng.standard_normal(clip.xyz.shape)
    wrong = rng.random(clip.depth.shape) < outliers
    box = clip.xyz.reshape(-1, 3)
    xyz[wrong] = rng.uniform(box.min(0), box.max(0), (int(wrong.sum()), 3))
    return xyz, wrong


def rotation_error(R: np.ndarray, truth: np.ndarray) -> float:
    """Largest angle (degrees) of R·truthᵀ over the frames."""
    return float(rotation_angle(R, truth).max())


def rot6d(a: torch.Tensor) -> torch.Tensor:
    """Zhou et al.'s 6-D rotation: Gram-Schmidt on two 3-vectors, columns (b₁, b₂, b₁ × b₂)."""
    b1 = torch.nn.functional.normalize(a[:, :3], dim=-1)
    b2 = torch.nn.functional.normalize(a[:, 3:] - (b1 * a[:, 3:]).sum(-1, keepdim=True) * b1, dim=-1)
    return torch.stack([b1, b2, torch.cross(b1, b2, dim=-1)], dim=-1)


def adam_baseline(xyz: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Eq. 12 by Adam as the public 4DNeX code runs it: returns (R, t) world-to-camera, focal (f_x, f_y), depth.

    Parameters: depth per pixel (initialised to ‖X‖), f_x = 1.2·W, f_y = 1.2·H, c = (W/2, H/2), a 6-D
    rotation (identity) and translation (0) per frame for camera-to-world; loss mean ‖q̃ − q̂‖².
    """
    frames, height, width, _ = xyz.shape
    target = torch.from_numpy(xyz.astype(np.float32))
    depth = torch.nn.Parameter(target.norm(dim=-1))
    fx, fy = torch.nn.Parameter(torch.tensor(1.2 * width)), torch.nn.Parameter(torch.tensor(1.2 * height))
    cx, cy = torch.nn.Parameter(torch.tensor(width / 2)), torch.nn.Parameter(torch.tensor(height / 2))
    rotation = torch.nn.Parameter(torch.tensor([1.0, 0, 0, 0, 1, 0]).repeat(frames, 1))
    translation = torch.nn.Parameter(torch.zeros(frames, 3))
    optimiser = torch.optim.Adam([depth, fx, fy, cx, cy, rotation, translation], lr=ADAM_LR)
    v, u = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    for _ in range(iterations):
        optimiser.zero_grad()
        d = depth.clamp(min=1e-4)
        camera = torch.stack([(u - cx) / fx * d, (v - cy) / fy * d, d], dim=-1)  # d·K⁻¹[u, v, 1]ᵀ
        world = torch.einsum("tij,thwj->thwi", rot6d(rotation), camera) + translation[:, None, None]
        loss = ((world - target) ** 2).mean()
        loss.backward()
        optimiser.step()
    to_world = rot6d(rotation).detach().double().numpy()
    R = to_world.transpose(0, 2, 1)
    t = -np.einsum("tij,tj->ti", R, translation.detach().double().numpy())
    focal = np.array([fx.item(), fy.item()])
    return R, t, focal, depth.detach().clamp(min=1e-4).double().numpy()


def timed(function, repeats: int) -> tuple[float, object]:
    """Median wall time of `repeats` calls and the last result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def child_timing(frames: int, height: int, width: int) -> None:
    """Run in a fresh process whose thread count the parent set: print the timings as JSON."""
    clip = synthetic_clip(frames, height, width)
    xyz = clip.xyz.astype(np.float32)
    # Each loss: one warm-up call (first-call allocations), then the median of 7; squared first, so
    # that its figure is not helped by the larger arrays the robust start allocates and frees.
    recover_cameras(xyz, loss="squared")
    squared, _ = timed(lambda: recover_cameras(xyz, loss="squared"), 7)
    recover_cameras(xyz)
    total, result = timed(lambda: recover_cameras(xyz), 7)
    dense, _ = timed(lambda: depth_from_xyz(xyz, result.K, result.R, result.t), 7)
    print(json.dumps({"total": total, "squared": squared, "dense": dense, "iterations": result.iterations}))


def threaded_timing(frames: int, height: int, width: int, threads: int) -> dict:
    env = {
        **os.environ,
        **{name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    command = [sys.executable, __file__, "--child-timing", str(frames), str(height), str(width)]
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def row(
    case: str, method: str, seconds: float, rotation: float, focal: float, depth: float, note: str
) -> str:
    return f"| {case} | {method} | {seconds:.3f} | {rotation:.2e} | {focal:.2e} | {depth:.2e} | {note} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: 9×96×144 and Adam at 9×30×45")
    parser.add_argument("--child-timing", nargs=3, type=int, metavar=("T", "H", "W"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_timing:
        child_timing(*args.child_timing)
        return
    torch.set_num_threads(1)
    full = (9, 96, 144) if args.quick else (49, 480, 720)
    small = (9, 30, 45) if args.quick else (49, 60, 90)
    size = "×".join(map(str, full))
    lines = [
        "| case | method | time (s) | max rotation error (°) | focal relative error | depth relative error | note |",
        "|---|---|---|---|---|---|---|",
    ]

    clip = synthetic_clip(*full)
    seconds, result = timed(lambda: recover_cameras(clip.xyz), 1)
    lines.append(
        row(
            f"noise-free float64 {size}",
            "recover_cameras",
            seconds,
            rotation_error(result.R, clip.R),
            abs(result.focal / clip.K[0, 0] - 1),
            np.abs(result.depth / clip.depth - 1).max(),
            f"max depth error; {result.iterations} Gauss-Newton step(s)",
        )
    )

    noisy, wrong = corrupt(clip, noise=0.01, outliers=0.4)
    noisy = noisy.astype(np.float32)
    for loss in ("geman-mcclure", "cauchy", "squared"):
        seconds, result = timed(lambda loss=loss: recover_cameras(noisy, loss=loss), 1)
        error = np.abs(result.depth / clip.depth - 1)[~wrong]
        lines.append(
            row(
                f"1 % noise + 40 % outliers float32 {size}",
                f"loss={loss}",
                seconds,
                rotation_error(result.R, clip.R),
                abs(result.focal / clip.K[0, 0] - 1),
                float(np.median(error)),
                f"median depth error on inliers; {result.iterations} steps",
            )
        )

    timings = {threads: threaded_timing(*full, threads) for threads in (1, 2)}
    for threads, timing in timings.items():
        lines.append(
            f"| time, noise-free float32 {size} | recover_cameras, {threads} thread(s) | {timing['total']:.3f} "
            f"| | | | median of 7; dense depth alone {timing['dense']:.3f} s |"
        )

    tiny = synthetic_clip(*small)
    tiny_size = "×".join(map(str, small))
    xyz = tiny.xyz.astype(np.float32)
    adam_seconds, (R, t, focal, depth) = timed(lambda: adam_baseline(xyz, ADAM_ITERATIONS), 1)
    lines.append(
        row(
            f"noise-free float32 {tiny_size}",
            f"Adam, {ADAM_ITERATIONS} iterations",
            adam_seconds,
            rotation_error(R, tiny.R),
            float(np.abs(focal / tiny.K[0, 0] - 1).max()),
            float(np.abs(depth / tiny.depth - 1).max()),
            f"f_x, f_y = {focal[0]:.1f}, {focal[1]:.1f} (true {tiny.K[0, 0]:.1f})",
        )
    )
    recover_cameras(xyz)  # warm-up
    fresh = threaded_timing(*small, 1)
    for loss, key in (("geman-mcclure", "total"), ("squared", "squared")):
        seconds, result = timed(lambda loss=loss: recover_cameras(xyz, loss=loss), 7)
        lines.append(
            row(
                f"noise-free float32 {tiny_size}",
                f"recover_cameras, loss={loss}",
                seconds,
                rotation_error(result.R, tiny.R),
                abs(result.focal / tiny.K[0, 0] - 1),
                np.abs(result.depth / tiny.depth - 1).max(),
                f"{adam_seconds / seconds:.0f}× faster than Adam; in a fresh process {fresh[key]:.3f} s, "
                f"{adam_seconds / fresh[key]:.0f}×",
            )
        )

    # One Adam iteration at full size: the time of 4 iterations minus that of 1 (which holds the set-up), over 3.
    xyz = clip.xyz.astype(np.float32)
    one, _ = timed(lambda: adam_baseline(xyz, 1), 1)
    four, _ = timed(lambda: adam_baseline(xyz, 4), 1)
    projected = (four - one) / 3 * ADAM_ITERATIONS
    lines.append(
        f"| noise-free float32 {size} | Adam, {ADAM_ITERATIONS} iterations (projected) | {projected:.0f} | | | | "
        f"3 iterations timed, × {ADAM_ITERATIONS // 3}; {projected / timings[1]['total']:.0f}× the 1-thread recover_cameras |"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
