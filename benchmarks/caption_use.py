"""Benchmark: does the pretrained base read its captions, and what would reading them be worth?

Run from the repository root (about a minute on one core, no training run needed):

    OMP_NUM_THREADS=1 python benchmarks/caption_use.py                      # the shipped tiny base
    OMP_NUM_THREADS=1 python benchmarks/caption_use.py --model-dir runs/x   # another exported base

A synthetic scene's first frame fixes its appearance; its caption alone says which way the camera
orbits and the objects move. An image-to-video model that reads its caption therefore predicts the
video better with the scene's own caption than with the camera's direction flipped in it, or with
another scene's caption. Part 1 measures that on held-out scenes: the base's I2V loss (Wan's objective,
`pretrain.i2v_loss`) with the same noise and times under four captions — as given, camera direction
flipped, the next scene's caption, empty — per time t and averaged. Equal losses for the first three
mean the caption's content is not used (the empty caption is out of distribution, so it may differ
without any reading).

Part 2 prices the camera's direction in the issue's own measure: each scene's twin, rendered with the
same draws but the camera turning the other way (`make_scene(..., camera_turn=…)`), scored by RGB PSNR
of frames 1..T against the true frames, beside repeating the input image. A model that guesses the
direction is right half the time and, when wrong, is about as far from the truth as the twin. At t → 0
the I2V loss is the squared error of the predicted x1, so ¼·mean (x1 − x1 of the twin)², the cost of
predicting the pair's mean, is what reading the direction is worth to a model that knows everything else.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from nanofourdnex.autoencoder import build_autoencoder
from nanofourdnex.conditioning import build_encoders
from nanofourdnex.config import load_config
from nanofourdnex.model import build_transformer
from nanofourdnex.pretrain import SyntheticVideos, i2v_loss
from nanofourdnex.synthetic import CAMERA_TURNS, clip_seed, flip_camera_turn, make_scene
from nanofourdnex.tools.scores import psnr

HELD_OUT_SEED = 777  # as benchmarks/generation_quality.py: no preset trains or validates on it
TIMES = (0.02, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9)  # paper time: 0 is pure noise, 1 the data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="pretrained base folder [default: the tiny preset's]")
    parser.add_argument("--scenes", type=int, default=32, help="held-out scenes")
    parser.add_argument(
        "--seed", type=int, default=HELD_OUT_SEED, help="data-set seed of the held-out scenes"
    )
    args = parser.parse_args()
    if args.scenes < 2:
        parser.error("--scenes must be at least 2 (one scene's caption is lent to another)")
    torch.set_num_threads(1)

    config = load_config("tiny")
    if args.model_dir is not None:
        config = dataclasses.replace(
            config, model=dataclasses.replace(config.model, model_dir=str(args.model_dir))
        )
    if not Path(config.model.model_dir).is_dir():
        parser.error(f"no model folder at {config.model.model_dir}")
    autoencoder, encoders = build_autoencoder(config), build_encoders(config)
    base = build_transformer(config.model, autoencoder.latent_channels).eval()
    scenes = SyntheticVideos(config, autoencoder, encoders, args.seed, args.scenes)
    captions = {
        "as given": scenes.captions,
        "camera direction flipped": [flip_camera_turn(c) for c in scenes.captions],
        "the next scene's caption": scenes.captions[1:] + scenes.captions[:1],
        "empty": [""] * args.scenes,
    }
    batch = scenes.batch(list(range(args.scenes)))
    noise = torch.randn(batch["rgb"].shape, generator=torch.Generator().manual_seed(args.seed))
    losses = {}  # caption → (len(TIMES),) mean loss over scenes
    with torch.no_grad():
        for name, texts in captions.items():
            given = dict(batch, text=encoders.encode_text(texts))
            losses[name] = [i2v_loss(base, given, noise, torch.full((args.scenes,), t)).item() for t in TIMES]

    print(
        f"base: {config.model.model_dir}; {args.scenes} held-out scenes (seed {args.seed}), same noise per caption\n"
    )
    print("| caption | " + " | ".join(f"t = {t}" for t in TIMES) + " | mean | mean − as given |")
    print("|---|" + "---|" * (len(TIMES) + 2))
    reference = np.mean(losses["as given"])
    for name, values in losses.items():
        cells = " | ".join(f"{v:.4f}" for v in values)
        print(f"| {name} | {cells} | {np.mean(values):.4f} | {np.mean(values) - reference:+.4f} |")

    twin, repeat, worth, data = [], [], [], config.data
    for index in range(args.scenes):  # the truth is the pool's scene; only its twin is rendered here
        truth = scenes.videos[index].numpy()  # (T, H, W, 3) uint8
        turn = 1 if CAMERA_TURNS[1] in scenes.captions[index] else -1
        other = make_scene(
            clip_seed(args.seed, index), data.num_frames, data.height, data.width, camera_turn=-turn
        ).rgb
        twin.append(psnr(other[1:] / 255, truth[1:] / 255))
        repeat.append(psnr(np.repeat(truth[:1], len(truth) - 1, 0) / 255, truth[1:] / 255))
        other_x1 = autoencoder.base.encode(
            torch.from_numpy(other).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
        )
        worth.append((batch["rgb"][index] - other_x1[0]).pow(2).mean().item() / 4)  # x1 as the base sees it
    print("\n| frames 1..T PSNR against the truth (dB) | mean ± sd |\n|---|---|")
    print(f"| repeat the input image | {np.mean(repeat):.2f} ± {np.std(repeat):.2f} |")
    print(
        f"| the twin: every draw the same, camera turning the other way | {np.mean(twin):.2f} ± {np.std(twin):.2f} |"
    )
    print(
        f"\nknowing the camera's direction is worth {np.mean(worth):.4f} of loss at t → 0 to a model that knows "
        "everything else: ¼·mean (x1 − x1 of the twin)², what predicting the pair's mean costs"
    )


if __name__ == "__main__":
    main()
