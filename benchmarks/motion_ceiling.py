"""Benchmark: how well could any image-to-video model do on frames 1..T, and how far is the tiny base?

Run from the repository root (about two minutes on one core, no training run needed):

    OMP_NUM_THREADS=1 python benchmarks/motion_ceiling.py                      # the shipped tiny base
    OMP_NUM_THREADS=1 python benchmarks/motion_ceiling.py --model-dir runs/x   # another exported base

The issue's target "frames 1..T PSNR above repeating the input image" is scored on *sampled* videos. A
synthetic scene's first frame and caption do not fix its motion: how far the camera orbits, its rise,
how far each object travels, how high it hops are drawn anew. `make_scene(..., motion_seed=k)` redraws
exactly those from their distribution given frame 0 and the caption, so each redraw is what a perfect
model of these data could sample. On held-out scenes at the tiny clip size this prints frames 1..T RGB
PSNR against the true frames of:

- repeating the input image (the baseline of the target);
- a perfect sampler: one redraw (mean PSNR over `--draws` redraws);
- a perfect sampler that ignores the camera's direction in the caption (each redraw's orbit turns a
  random way): what a model that did not read it could at best reach;
- the mean of the redraws, an estimate of the posterior mean E[video | frame 0, caption], the best a
  blurry predictor could score (its PSNR is a slight underestimate: the mean of K draws keeps 1/K of
  the spread);
- the base's own estimate of that mean: its prediction of x1 from pure noise, x̂1 = x_t + (1 − t)·u at t = 0,
  one network evaluation;
- the base's sampled video (`pretrain.sample_i2v`, guidance 1, `--steps` UniPC steps, 30 by default:
  a sample; the tiny preset generates with 2, nearer the mean).

A sampler's error is about the posterior mean's plus the spread of the motion, so the sampled rows sit
below the mean rows; the gap between the base's rows and the perfect ones is what the base has not learnt.

A second table scores cameras as `generation_quality.py` does (recovered from the XYZ by Eq. 12-13,
rotation error relative to frame 0 against the cameras recovered from the true XYZ) for a static camera,
the perfect sampler and the direction-blind one: how low a model that does not read the camera's
direction from the caption could bring the rotation error.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nanofourdnex.autoencoder import build_autoencoder
from nanofourdnex.conditioning import build_encoders
from nanofourdnex.config import load_config
from nanofourdnex.model import build_transformer
from nanofourdnex.paper.reprojection import recover_cameras
from nanofourdnex.pretrain import SyntheticVideos, i2v_velocity, sample_i2v
from nanofourdnex.synthetic import clip_seed, make_scene
from nanofourdnex.tools.scores import psnr, rotation_error

HELD_OUT_SEED = 777  # as benchmarks/generation_quality.py: no preset trains or validates on it


def later_frames_psnr(video: np.ndarray, truth: np.ndarray) -> float:
    """RGB PSNR of frames 1..T; video (T, H, W, 3) in [0, 1] or uint8 (scaled alike), truth (T, H, W, 3) uint8."""
    scale = 255.0 if video.dtype == np.uint8 else 1.0
    return psnr(video[1:] / scale, truth[1:] / 255.0)


def print_table(title: str, rows: dict[str, list[float]]) -> None:
    """A markdown table of each row's mean ± standard deviation over scenes."""
    print(f"| {title} | mean ± sd over scenes |\n|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {np.mean(values):.2f} ± {np.std(values):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="pretrained base folder [default: the tiny preset's]")
    parser.add_argument("--scenes", type=int, default=32, help="held-out scenes")
    parser.add_argument("--draws", type=int, default=8, help="motion redraws per scene")
    parser.add_argument(
        "--seed", type=int, default=HELD_OUT_SEED, help="data-set seed of the held-out scenes"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=30,
        help="sampling steps of the base's sample (many: a sample, not a mean)",
    )
    args = parser.parse_args()
    if args.scenes < 1 or args.draws < 2 or args.steps < 1:
        parser.error("need --scenes >= 1, --draws >= 2 (a mean of one draw is a draw) and --steps >= 1")
    torch.set_num_threads(1)

    config = load_config("tiny")
    if args.model_dir is not None:
        config = dataclasses.replace(
            config, model=dataclasses.replace(config.model, model_dir=str(args.model_dir))
        )
    if not Path(config.model.model_dir).is_dir():
        parser.error(f"no model folder at {config.model.model_dir}")
    data = config.data
    sampling = dataclasses.replace(config.sampling, frames=data.num_frames, steps=args.steps)
    autoencoder, encoders = build_autoencoder(config), build_encoders(config)
    base = build_transformer(config.model, autoencoder.latent_channels).eval()
    scenes = SyntheticVideos(config, autoencoder, encoders, args.seed, args.scenes)

    rows: dict[str, list[float]] = {}
    rotation_rows: dict[str, list[float]] = {}
    for index in tqdm(range(args.scenes), desc="scenes", unit="scene"):
        truth = scenes.videos[index].numpy()  # (T, H, W, 3) uint8
        seed, size = clip_seed(args.seed, index), (data.num_frames, data.height, data.width)
        redraws = [make_scene(seed, *size, motion_seed=k) for k in range(args.draws)]
        turns = np.random.default_rng(index).choice([-1, 1], args.draws)  # a blind guess per redraw
        blind_redraws = [
            make_scene(seed, *size, camera_turn=int(turn), motion_seed=k) for k, turn in enumerate(turns)
        ]
        true_cameras = recover_cameras(make_scene(seed, *size).xyz)  # as generation_quality: from the XYZ
        rotations = {
            "a static camera": rotation_error(np.tile(np.eye(3), (data.num_frames, 1, 1)), true_cameras),
            "a perfect sampler: one redraw of the motion": np.mean(
                [rotation_error(recover_cameras(d.xyz), true_cameras) for d in redraws]
            ),
            "a perfect sampler blind to the camera's direction": np.mean(
                [rotation_error(recover_cameras(d.xyz), true_cameras) for d in blind_redraws]
            ),
        }
        for name, value in rotations.items():
            rotation_rows.setdefault(name, []).append(float(value))
        batch = scenes.batch([index])
        noise = torch.randn(batch["rgb"].shape, generator=torch.Generator().manual_seed(index))
        with torch.no_grad():
            x1 = noise + i2v_velocity(base, batch, noise, torch.zeros(1))  # x̂1 = x_t + (1 − t)·u at t = 0
        mean = autoencoder.base.decode(x1)[0].clamp(-1, 1).permute(1, 2, 3, 0).numpy() / 2 + 0.5
        image = scenes.videos[index, 0].permute(2, 0, 1).float() / 127.5 - 1
        sample = sample_i2v(base, autoencoder, encoders, image, scenes.captions[index], sampling).numpy()
        scores = {
            "repeat the input image": later_frames_psnr(truth[[0] * len(truth)], truth),
            "a perfect sampler: one redraw of the motion": np.mean(
                [later_frames_psnr(d.rgb, truth) for d in redraws]
            ),
            "a perfect sampler blind to the camera's direction": np.mean(
                [later_frames_psnr(d.rgb, truth) for d in blind_redraws]
            ),
            f"the posterior mean (mean of {args.draws} redraws)": later_frames_psnr(
                np.mean([d.rgb for d in redraws], 0) / 255, truth
            ),
            "the base's estimate of the posterior mean (x̂1 at t = 0)": later_frames_psnr(mean, truth),
            f"the base's sample (guidance {sampling.guidance:g}, {sampling.steps} steps)": later_frames_psnr(
                sample, truth
            ),
        }
        for name, value in scores.items():
            rows.setdefault(name, []).append(float(value))

    print(
        f"\nbase: {config.model.model_dir}; {args.scenes} held-out scenes (seed {args.seed}), {args.draws} redraws each\n"
    )
    print_table("frames 1..T RGB PSNR against the truth (dB)", rows)
    print()
    print_table("camera rotation error relative to frame 0 (°)", rotation_rows)


if __name__ == "__main__":
    main()
