"""Benchmark (a pilot): does a short pretraining of the tiny base learn to read the camera's direction?

Run from the repository root (15–20 minutes on one core for the default 1,800 steps; 8 layers or width 256, 2–3×):

    OMP_NUM_THREADS=1 python benchmarks/direction_pilots.py                       # the preset's recipe
    OMP_NUM_THREADS=1 python benchmarks/direction_pilots.py --curriculum 600      # every camera right first
    OMP_NUM_THREADS=1 python benchmarks/direction_pilots.py --twins               # scene + twin per pair
    OMP_NUM_THREADS=1 python benchmarks/direction_pilots.py --set model.num_layers=8
    OMP_NUM_THREADS=1 python benchmarks/direction_pilots.py --set model.attention_head_dim=64 \\
        --set model.ffn_dim=512 --set model.added_kv_proj_dim=256                 # width 256

A synthetic scene's first frame leaves its camera's orbit direction open; only the caption says it
(`benchmarks/caption_use.py`). This trains the tiny base from its random init with the pretrain preset
(`nano4d pretrain --tiny`'s objective, optimiser and time sampling; `--scenes` scenes, `--steps` steps, no
checkpoints) and every `--every` steps scores it on 32 held-out scenes (seed 777, as the other benchmarks)
with the same noise under two captions, each scene's own and its camera direction flipped: the I2V loss
averaged over t = 0.02 and 0.1 (paper time, near the noise, where the caption matters most) and the gap,
flipped − own. A base that reads the direction has a positive gap; `caption_use.py` prices a perfect
reading at about 0.018 of loss at t → 0.

Two ways to make the direction easier to learn:

- `--curriculum N`: the first N steps on the same scenes with every camera orbiting to the right
  (`make_scene(..., camera_turn=1)`: nothing to read, one motion to learn), then the drawn directions.
- `--twins`: each batch of 8 is 4 scenes and their twins (every draw the same, the camera turning the
  other way) with the same noise and time, so within a pair only the caption's direction and the motion
  differ; the direction-blind part of the gradient cancels between them.
"""

from __future__ import annotations

import argparse
import functools
import time

import torch

from nanofourdnex.autoencoder import build_autoencoder
from nanofourdnex.conditioning import build_encoders
from nanofourdnex.config import load_config
from nanofourdnex.model import build_transformer
from nanofourdnex.paper.flow_matching import sample_time
from nanofourdnex.pretrain import SyntheticVideos, i2v_loss
from nanofourdnex.synthetic import flip_camera_turn
from nanofourdnex.train import make_optimizer, step_generator, training_step

HELD_OUT_SEED = 777  # as the other benchmarks: no preset trains or validates on it
HELD_OUT_SCENES = 32
TIMES = (0.02, 0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1800, help="pretraining steps")
    parser.add_argument("--scenes", type=int, default=3000, help="training scenes in the pool")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (the preset's)")
    parser.add_argument("--every", type=int, default=200, help="score every this many steps")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--curriculum", type=int, default=0, metavar="N", help="first N steps: cameras right")
    group.add_argument("--twins", action="store_true", help="batches of scene + twin, same noise and time")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args()
    if min(args.steps, args.every, args.scenes) < 1 or args.curriculum < 0:
        parser.error("--steps, --every and --scenes must be positive, --curriculum not negative")
    torch.set_num_threads(1)

    overrides = [f"train.steps={args.steps}", f"train.lr={args.lr}", f"data.synthetic_train={args.scenes}"]
    config = load_config("pretrain", overrides + args.set)
    autoencoder, encoders = build_autoencoder(config), build_encoders(config, seed=config.train.seed)
    pool = functools.partial(SyntheticVideos, config, autoencoder, encoders, config.data.synthetic_seed)
    held_out = SyntheticVideos(config, autoencoder, encoders, HELD_OUT_SEED, HELD_OUT_SCENES)
    if args.twins:
        left, right = pool(args.scenes // 2, camera_turn=-1), pool(args.scenes // 2, camera_turn=1)
    else:
        drawn = pool(args.scenes)
        first = pool(args.scenes, camera_turn=1) if args.curriculum else drawn
    transformer = build_transformer(config.model, autoencoder.latent_channels, seed=config.train.seed).train()
    optimizer, scheduler = make_optimizer(list(transformer.parameters()), config.train)
    loss = functools.partial(i2v_loss, transformer)

    batch = held_out.batch(list(range(HELD_OUT_SCENES)))
    noise = torch.randn(batch["rgb"].shape, generator=torch.Generator().manual_seed(HELD_OUT_SEED))
    texts = {
        "own": encoders.encode_text(held_out.captions),
        "flipped": encoders.encode_text([flip_camera_turn(c) for c in held_out.captions]),
    }

    @torch.no_grad()
    def score() -> dict[str, float]:
        transformer.eval()
        losses = {
            name: sum(
                loss(dict(batch, text=text), noise, torch.full((HELD_OUT_SCENES,), t)).item() for t in TIMES
            ) / len(TIMES)
            for name, text in texts.items()
        }  # fmt: skip
        transformer.train()
        return losses

    recipe = f"curriculum {args.curriculum}" if args.curriculum else "drawn directions"
    recipe = "twins" if args.twins else recipe
    print(f"{recipe}; {args.scenes} scenes, lr {args.lr}, overrides {args.set or 'none'}\n")
    print("| step | held-out loss, own caption | gap: flipped − own | seconds |\n|---|---|---|---|")
    clock = time.perf_counter()
    for step in range(1, args.steps + 1):
        optimizer.zero_grad(set_to_none=True)
        if args.twins:
            draws = step_generator(config.train.seed, step)
            pairs = torch.randint(args.scenes // 2, (config.train.batch_size // 2,), generator=draws).tolist()
            a, b = left.batch(pairs), right.batch(pairs)
            twin_batch = {key: torch.cat([a[key], b[key]]) for key in a}
            x0 = torch.randn((len(pairs), *a["rgb"].shape[1:]), generator=draws).repeat(2, 1, 1, 1, 1)
            loss(twin_batch, x0, sample_time(len(pairs), draws).repeat(2)).backward()
        else:
            data = first if step <= args.curriculum else drawn
            training_step(loss, None, data, config, step, torch.device("cpu"))
        torch.nn.utils.clip_grad_norm_(transformer.parameters(), config.train.grad_clip)
        optimizer.step()
        scheduler.step()
        if step % args.every == 0 or step == args.steps:
            losses = score()
            gap = losses["flipped"] - losses["own"]
            seconds = time.perf_counter() - clock
            print(f"| {step} | {losses['own']:.4f} | {gap:+.1e} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
