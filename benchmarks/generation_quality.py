"""Benchmark: does the trained model generate better geometry than its starting guess? (§5.2 in miniature)

Run from the repository root after `nano4d train --tiny`:

    OMP_NUM_THREADS=1 python benchmarks/generation_quality.py                  # runs/tiny, 8 held-out scenes
    OMP_NUM_THREADS=1 python benchmarks/generation_quality.py --scenes 4 --steps 20

For each held-out synthetic scene (drawn with a seed no training or validation clip uses) the first
RGB frame is the input. The model generates a 6D video; its XYZ half is compared with the scene's
ground-truth XYZ, prepared exactly as training data is (first camera frame, one shift and one
isotropic scale per clip, see specs/data_format.md), so no alignment is needed or applied:

- point error: mean over pixels and frames of ‖X_generated − X_true‖ (the clip spans [−1, 1] on its widest axis);
- camera rotation error: mean over frames of the angle of R_generated,t · R_true,tᵀ, both recovered with
  `recover_cameras` (Eq. 12-13) from the generated and the true XYZ (the true XYZ's recovery is exact);
- focal error: |f_generated − f_true| / f_true of the shared focal;
- self-render coverage: the generated point clouds splatted from their own recovered cameras; the
  fraction of pixels that get back exactly the generated colour (holes and occlusion errors lose it).

The baseline is the sloped plane X^init of Eq. 7 (the model's own first-frame condition) repeated over
time: a model that learned nothing about geometry cannot beat it. A plane has no depth parallax, so no
camera can be recovered from it; its cameras are taken as static (the identity: no motion), and it has
no focal or self-render score. The table reports mean ± standard
deviation over scenes and the ratio model / baseline per metric.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nanofourdnex.config import SamplingConfig
from nanofourdnex.data import ClipDataset
from nanofourdnex.generate import generate_6d, load_inference
from nanofourdnex.paper.reprojection import recover_cameras, rotation_angle
from nanofourdnex.paper.xyz_init import sloped_plane
from nanofourdnex.render import render_video
from nanofourdnex.synthetic import write_dataset

HELD_OUT_SEED = 777  # the tiny preset's clips use seeds 0 (train) and 100,000 (validation)


def scores(xyz: np.ndarray, rgb: np.ndarray, truth: np.ndarray, true_cameras) -> tuple[float, ...]:
    """Point error, rotation error (degrees), relative focal error and self-render coverage of a 6D video.

    Self-render coverage: the fraction of pixels that the video's own point clouds, splatted from
    its own recovered cameras, paint with exactly its RGB (1 for geometry a camera can explain).
    """
    point = float(np.linalg.norm(xyz - truth, axis=-1).mean())
    cameras = recover_cameras(xyz)
    rotation = float(rotation_angle(cameras.R, true_cameras.R).mean())
    focal = float(abs(cameras.focal - true_cameras.focal) / true_cameras.focal)
    video = render_video(xyz, rgb, cameras.K, cameras.R, cameras.t)
    same = (video.frames.numpy() == rgb).all(-1) & video.masks.numpy()
    return point, rotation, focal, float(same.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/tiny"), help="run or checkpoint folder")
    parser.add_argument("--scenes", type=int, default=8, help="held-out scenes")
    parser.add_argument("--steps", type=int, default=50, help="sampling steps")
    parser.add_argument("--seed", type=int, default=42, help="sampling seed")
    args = parser.parse_args()
    torch.set_num_threads(1)

    inference = load_inference(args.run)
    data = inference.config.data
    names = ("point error", "rotation error (°)", "focal error (rel.)", "self-render coverage")
    model_scores, plane_scores, seconds = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        write_dataset(
            Path(folder), args.scenes, seed=HELD_OUT_SEED,
            num_frames=data.num_frames, height=data.height, width=data.width,
        )  # fmt: skip
        clips = ClipDataset(Path(folder), data.num_frames, data.height, data.width)
        plane = sloped_plane(data.height, data.width).numpy()
        for index in range(len(clips)):
            sample = clips[index]
            truth = sample.xyz.permute(1, 2, 3, 0).numpy().astype(np.float64)  # (T, H, W, 3)
            true_cameras = recover_cameras(truth)
            clock = time.perf_counter()
            sampling = SamplingConfig(frames=data.num_frames, steps=args.steps, seed=args.seed)
            six = generate_6d(
                inference.model,
                inference.autoencoder,
                inference.encoders,
                sample.first_frame,
                sample.caption,
                sampling,
            )
            seconds.append(time.perf_counter() - clock)
            rgb = six.rgb.numpy()
            model_scores.append(scores(six.xyz.numpy().astype(np.float64), rgb, truth, true_cameras))
            # The plane has no depth parallax, so no camera can be recovered from it: its cameras are
            # the static identity (no motion) and it has no focal or self-render score.
            point = float(np.linalg.norm(plane[None] - truth, axis=-1).mean())
            static = np.broadcast_to(np.eye(3), true_cameras.R.shape)
            plane_scores.append((point, float(rotation_angle(static, true_cameras.R).mean()), np.nan, np.nan))

    model, plane = np.array(model_scores), np.array(plane_scores)
    print(
        f"{len(model)} held-out scenes, {data.num_frames} frames at {data.height}×{data.width}, "
        f"{args.steps} steps, {np.mean(seconds):.2f} s per 6D video; checkpoint {args.run}\n"
    )
    print("| metric | model | sloped plane (Eq. 7) repeated, static camera | model / plane |")
    print("|---|---|---|---|")
    for k, name in enumerate(names):
        baseline = (
            "—" if np.isnan(plane[:, k]).all() else f"{plane[:, k].mean():.3f} ± {plane[:, k].std():.3f}"
        )
        ratio = "—" if baseline == "—" else f"{model[:, k].mean() / plane[:, k].mean():.2f}"
        print(f"| {name} | {model[:, k].mean():.3f} ± {model[:, k].std():.3f} | {baseline} | {ratio} |")


if __name__ == "__main__":
    main()
