"""Benchmark: what a person sees in the 6D videos of scenes the model never saw (§5.2 in miniature).

Run from the repository root after `nano4d train --tiny`:

    OMP_NUM_THREADS=1 python benchmarks/generation_quality.py                     # runs/tiny, 8 held-out scenes
    OMP_NUM_THREADS=1 python benchmarks/generation_quality.py --scenes 4 --guidance 1 --steps 20

For each held-out synthetic scene (drawn with a data-set seed that no preset uses) the first RGB frame
and the caption are the input, and the run's own sampling settings (its `sampling` section, or the
flags) generate the 6D video. Scored against the scene's truth, prepared as training data is:

- RGB frame 0 PSNR against the input image (the condition the model must keep);
- RGB frames 1..T PSNR against the true frames, beside the baseline "repeat the input image";
- XYZ point error after one similarity alignment per clip, as a fraction of the true points' extent
  (`tools.scores.point_error`), beside the sloped plane X^init of Eq. 7 repeated over time;
- camera rotation error: cameras recovered from the generated XYZ (Eq. 12-13) against those recovered
  from the true XYZ, relative to frame 0 (`tools.scores.rotation_error`), beside a static camera;
- focal error of the recovered focal.

When the run's base is a pretrained model folder, the base alone generates RGB videos of the same
scenes (`pretrain.sample_i2v`, same settings), and its RGB scores are printed beside the 6D model's:
how much of the video prior the 6D adaptation kept. `--caption-check` also generates each scene with
the camera's direction swapped in its caption ("orbits to the left" ↔ "to the right") and prints how
much the video changes, beside how much the true video moves: a model that reads the camera motion
from its caption changes as much as the scene moves. Every table is mean ± standard deviation over
scenes; `--json` writes the per-scene numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nanofourdnex.data import ClipDataset
from nanofourdnex.generate import generate_6d, load_inference
from nanofourdnex.paper.reprojection import recover_cameras
from nanofourdnex.paper.xyz_init import sloped_plane
from nanofourdnex.synthetic import flip_camera_turn, write_dataset
from nanofourdnex.tools.scores import focal_error, point_error, psnr, rotation_error

HELD_OUT_SEED = 777  # the tiny preset's clips use seeds 0 (train), 100,000 (validation); pretraining 2026


def rgb_scores(rgb: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Frame-0 PSNR against the input, frames 1..T PSNR against the truth; rgb, truth (T, H, W, 3) uint8."""
    video, true = rgb / 255.0, truth / 255.0
    return {"frame 0 PSNR (dB)": psnr(video[0], true[0]), "frames 1..T PSNR (dB)": psnr(video[1:], true[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/tiny"), help="run or checkpoint folder")
    parser.add_argument("--scenes", type=int, default=8, help="held-out scenes")
    parser.add_argument(
        "--seed", type=int, default=HELD_OUT_SEED, help="data-set seed of the held-out scenes"
    )
    parser.add_argument("--steps", type=int, help="sampling steps [default: the run's]")
    parser.add_argument("--guidance", type=float, help="guidance scale [default: the run's]")
    parser.add_argument("--no-base", action="store_true", help="skip the pretrained base's RGB-only videos")
    parser.add_argument("--json", type=Path, help="write the per-scene scores here")
    parser.add_argument(
        "--caption-check", action="store_true", help="also generate with the camera direction flipped"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    inference = load_inference(args.run)
    config, data = inference.config, inference.config.data
    given = {"steps": args.steps, "guidance": args.guidance}
    sampling = dataclasses.replace(config.sampling, **{k: v for k, v in given.items() if v is not None})
    sampling.frames = sampling.frames or data.num_frames
    base = None
    if config.model.model_dir and not args.no_base:
        from nanofourdnex.model import build_transformer
        from nanofourdnex.pretrain import sample_i2v

        base = build_transformer(config.model, inference.autoencoder.latent_channels).eval()
    rows, seconds = [], []
    with tempfile.TemporaryDirectory() as folder:
        write_dataset(
            Path(folder) / "scenes", args.scenes, seed=args.seed, progress=False,
            num_frames=data.num_frames, height=data.height, width=data.width,
        )  # fmt: skip
        clips = ClipDataset(Path(folder) / "scenes", data.num_frames, data.height, data.width)
        plane = sloped_plane(data.height, data.width).numpy()
        for index in range(len(clips)):
            sample = clips[index]
            true_rgb = ((sample.rgb.permute(1, 2, 3, 0) + 1) * 127.5).round().byte().numpy()  # (T, H, W, 3)
            true_xyz = sample.xyz.permute(1, 2, 3, 0).numpy().astype(np.float64)
            true_cameras = recover_cameras(true_xyz)
            clock = time.perf_counter()
            six = generate_6d(
                inference.model,
                inference.autoencoder,
                inference.encoders,
                sample.first_frame,
                sample.caption,
                sampling,
            )
            seconds.append(time.perf_counter() - clock)
            rgb, xyz = six.rgb.numpy(), six.xyz.numpy().astype(np.float64)
            cameras = recover_cameras(xyz)
            repeat = np.repeat(true_rgb[:1], len(true_rgb), axis=0)
            row = {
                **rgb_scores(rgb, true_rgb),
                "repeat-input frames 1..T PSNR (dB)": rgb_scores(repeat, true_rgb)["frames 1..T PSNR (dB)"],
                "point error / extent": point_error(xyz, true_xyz),
                "plane point error / extent": point_error(np.repeat(plane[None], len(true_xyz), 0), true_xyz),
                "rotation error (°)": rotation_error(cameras, true_cameras),
                "static rotation error (°)": rotation_error(
                    np.tile(np.eye(3), (len(xyz), 1, 1)), true_cameras
                ),
                "focal error (rel.)": focal_error(cameras, true_cameras),
            }
            if base is not None:
                video = sample_i2v(
                    base,
                    inference.autoencoder,
                    inference.encoders,
                    sample.first_frame,
                    sample.caption,
                    sampling,
                ).numpy()
                row |= {f"base {k}": v for k, v in rgb_scores(video, true_rgb).items()}
            if args.caption_check:
                flipped = generate_6d(
                    inference.model,
                    inference.autoencoder,
                    inference.encoders,
                    sample.first_frame,
                    flip_camera_turn(sample.caption),
                    sampling,
                ).rgb.numpy()
                row |= {
                    "flipped-caption frames 1..T PSNR (dB)": rgb_scores(flipped, true_rgb)[
                        "frames 1..T PSNR (dB)"
                    ],
                    "mean |video − flipped-caption video| (levels)": np.abs(
                        rgb[1:].astype(float) - flipped[1:]
                    ).mean(),
                    "mean |true frame t − frame 0| (levels)": np.abs(
                        true_rgb[1:].astype(float) - true_rgb[:1]
                    ).mean(),
                }
            rows.append(row)

    def cell(key: str) -> str:
        values = np.array([r[key] for r in rows])
        return (
            f"{values.mean():.3f} ± {values.std():.3f}"
            if "PSNR" not in key
            else f"{values.mean():.1f} ± {values.std():.1f}"
        )

    print(
        f"{len(rows)} held-out scenes (seed {args.seed}), {sampling.frames} frames at {data.height}×{data.width}, "
        f"{sampling.steps} {sampling.scheduler} steps, guidance {sampling.guidance:g}, {np.mean(seconds):.2f} s per "
        f"6D video; checkpoint {args.run}\n"
    )
    print("| measure | 6D model | baseline | model / baseline |")
    print("|---|---|---|---|")
    pairs = (
        ("frame 0 PSNR (dB)", None),
        ("frames 1..T PSNR (dB)", "repeat-input frames 1..T PSNR (dB)"),
        ("point error / extent", "plane point error / extent"),
        ("rotation error (°)", "static rotation error (°)"),
        ("focal error (rel.)", None),
    )
    for key, baseline in pairs:
        ratio = np.mean([r[key] for r in rows]) / np.mean([r[baseline] for r in rows]) if baseline else None
        print(
            f"| {key} | {cell(key)} | {cell(baseline) if baseline else '—'} | {f'{ratio:.2f}' if ratio else '—'} |"
        )
    if base is not None:
        print("\n| RGB measure | 6D model | the pretrained base alone (RGB only) |\n|---|---|---|")
        for key in ("frame 0 PSNR (dB)", "frames 1..T PSNR (dB)"):
            print(f"| {key} | {cell(key)} | {cell('base ' + key)} |")
    if args.caption_check:
        print("\n| caption check (6D model) | caption as given | camera direction flipped |\n|---|---|---|")
        print(
            f"| frames 1..T PSNR (dB) | {cell('frames 1..T PSNR (dB)')} | {cell('flipped-caption frames 1..T PSNR (dB)')} |"
        )
        print(
            f"\nthe video changes by {cell('mean |video − flipped-caption video| (levels)')} of 255 levels when the "
            f"caption's camera direction flips; the true video moves by {cell('mean |true frame t − frame 0| (levels)')}"
        )
    if args.json:
        args.json.write_text(json.dumps({"sampling": dataclasses.asdict(sampling), "scenes": rows}, indent=1))


if __name__ == "__main__":
    main()
