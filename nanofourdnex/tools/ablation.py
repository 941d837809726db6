"""The fusion-strategy ablation in miniature: §5.3 and Fig. 10 on synthetic 4D scenes (§4.2, Fig. 4-5, App. B.1).

The paper's claim: width-wise fusion beats channel-, batch-, frame- and height-wise fusion because it
puts corresponding RGB and XYZ tokens closest in the sequence (Fig. 5). `run_ablation` trains every
variant of `fusion_variants` on the same cached synthetic clips with the same budget, the same seeds
and the same random draws, samples the same held-out scenes from the same noise, and reports:

* validation loss — Eq. 6 on the held-out clips at the fixed t grid, fixed noise per clip;
* point error — mean ‖s·R·X̂ + c − X‖ over every pixel and frame of a sample after one similarity
  alignment per clip, as a fraction of the true points' bounding-box diagonal (`scores.point_error`:
  the clip's scale and centre are unknowable from the first frame);
* RGB-XYZ alignment — the share of the generated RGB's change that the generated geometry explains.
  With camera 0 (R₀, t₀, K) recovered from the generated XYZ (Eq. 12-13), each pixel p of frame k ≥ 1
  is sent to frame 0 through its own generated point, p′ = π₀(X_k(p)), and

      alignment = 1 − E_warp / E_still,   E_warp = mean |RGB_k(p) − RGB_0(p′)|,  E_still = mean |RGB_k(p) − RGB_0(p)|

  over the pixels that land inside frame 0 in front of the camera. 1: the geometry predicts every
  colour change; 0: no better than assuming nothing moved (e.g. static XYZ); < 0: worse (geometry
  unrelated to the image). Moving objects, shadows and the 16×24 resolution keep ground truth well
  below 1: the table carries its value as the reference;
* camera error — cameras recovered from the generated XYZ against those recovered from the ground-truth
  XYZ: mean geodesic angle between the relative rotations R_k R₀ᵀ (frames k ≥ 1) and |f/f_gt − 1|
  (`scores.rotation_error`, `scores.focal_error`);
  a fit that diverges counts as a failure and is left out of the camera and alignment numbers;
* RGB PSNR — frames 1..T of the sample against the true frames: how much of the base's video prior
  the variant kept. With a pretrained base the table carries, as the reference, the base alone
  generating RGB videos of the same scenes (`pretrain.sample_i2v`, same steps, no guidance);
* interaction distance (Fig. 5) at this run's latent shape and at the paper's (16, 13, 60, 90);
* cost — trainable parameters, those of the modules a variant adds (adapters, switchers, CDSA,
  domain embeddings), and the median wall time of a training step.

Each number is averaged over the held-out scenes per seed (camera errors: the median, since a poor
fit's focal is unbounded), then reported as mean ± sample standard deviation over seeds. A seed fixes the base DiT's random init, the LoRA and new-module init, every
training draw (clips, x0, t) and the sampling noise; the cached data and the text/image encoders
are shared. Samples are drawn without guidance (the runs train without prompt dropout).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import viz
from ..autoencoder import build_autoencoder
from ..cache import LatentCache, clip_dataset, prepare_cache
from ..conditioning import build_encoders
from ..config import Config, load_config
from ..outputs import check_output_folder
from ..paper.flow_matching import flow_matching_loss, interpolate, make_scheduler, sample_flow
from ..paper.fusion import fuse, split
from ..paper.reprojection import CameraRecovery, recover_cameras
from ..synthetic import ensure_synthetic_data
from ..train import make_optimizer, training_step, validation_loss
from .fusion_variants import VARIANTS, FusionVariant, build_variant, variant_interaction_distance
from .scores import focal_error, point_error, psnr, rotation_error

PAPER_LATENT = (16, 13, 60, 90)  # 49 frames of 480×720 through the Wan VAE
SAMPLE_SEED = 1_000_000  # noise generator of sample i of a seed
METRICS = ("val_loss", "point_error", "alignment", "rotation_error", "focal_error", "rgb_psnr")
LABELS = {
    "val_loss": "val loss ↓",
    "point_error": "point error ↓",
    "alignment": "RGB-XYZ alignment ↑",
    "rotation_error": "rotation error (°) ↓",
    "focal_error": "focal error (%) ↓",
    "rgb_psnr": "RGB PSNR (dB) ↑",
}
LOWER_IS_BETTER = {
    "val_loss": True,
    "point_error": True,
    "alignment": False,
    "rotation_error": True,
    "focal_error": True,
    "rgb_psnr": False,
}


@dataclass(frozen=True)
class Budget:
    """How much of everything one ablation spends (per strategy and seed: `steps` optimizer steps)."""

    steps: int
    seeds: int
    train_clips: int
    val_clips: int
    sample_steps: int
    num_frames: int = 9  # 4k + 1 → (k + 1) latent frames; 9: the clips the shipped base was pretrained on
    num_layers: int = (
        0  # 0: the tiny preset's pretrained base; n > 0: a random base of n blocks (quick tests)
    )

    def __post_init__(self):
        for name in ("steps", "seeds", "train_clips", "val_clips", "sample_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


DEFAULT_BUDGET = Budget(steps=120, seeds=3, train_clips=64, val_clips=8, sample_steps=20)
QUICK_BUDGET = Budget(
    steps=2, seeds=1, train_clips=4, val_clips=2, sample_steps=2, num_frames=5, num_layers=1
)


def parse_strategies(text: str) -> list[str]:
    """Variant names from `all` or a comma-separated list of `fusion_variants.VARIANTS` names, in table order."""
    if text.strip() == "all":
        return list(VARIANTS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or not names:
        raise ValueError(f"unknown strategies {unknown or text!r}; choose from all, {', '.join(VARIANTS)}")
    return [name for name in VARIANTS if name in names]


def ablation_config(out: Path, budget: Budget) -> Config:
    """The tiny preset with this budget's data, frames, steps and depth; scenes under out/scenes."""
    overrides = [
        f'data.root="{out}/scenes/train"', f'data.val_root="{out}/scenes/val"',
        f"data.synthetic_train={budget.train_clips}", f"data.synthetic_val={budget.val_clips}",
        f"data.num_frames={budget.num_frames}", f"train.steps={budget.steps}",
        f"train.warmup_steps={max(1, budget.steps // 10)}", f'train.out="{out}"',
    ]  # fmt: skip
    if budget.num_layers:  # a random base of its own depth instead of the shipped one
        overrides += [f"model.num_layers={budget.num_layers}", 'model.model_dir=""']
    return load_config("tiny", [*overrides, 'model.fusion="width"', 'autoencoder.kind="pixel"'])


def with_seed(config: Config, seed: int) -> Config:
    return dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))


def condition_halves(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(c_RGB, c_XYZ): the cached width-fused condition split in two. The ablation's autoencoder is the
    pixel stand-in, which encodes every pixel on its own, so these halves are exactly each panel encoded
    alone, the condition of every strategy (tests/test_conditioning.py)."""
    return split(batch["cond"], "width")


def variant_loss(
    variant: FusionVariant, batch: dict[str, torch.Tensor], noise: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Eq. 5-6 on both modalities for noise x0 fused channel-wise: the mean over every RGB and XYZ element.

    The `train.Loss` interface, so the ablation trains and validates with `train.training_step` and
    `train.validation_loss`; every variant draws its noise in the channel layout, hence the same numbers.
    """
    noise_rgb, noise_xyz = split(noise, "channel")
    x_rgb, x_xyz = interpolate(noise_rgb, batch["rgb"], t), interpolate(noise_xyz, batch["xyz"], t)
    u_rgb, u_xyz = variant(x_rgb, x_xyz, t, *condition_halves(batch), batch["text"], batch["image"])
    rgb_loss = flow_matching_loss(u_rgb, noise_rgb, batch["rgb"])
    return (rgb_loss + flow_matching_loss(u_xyz, noise_xyz, batch["xyz"])) / 2  # equal-sized halves


def train_variant(
    variant: FusionVariant, data: LatentCache, config: Config, progress: bool = False, desc: str = "train"
) -> list[float]:
    """`train.train`'s optimiser and step on step_draws(seed, step); returns each step's seconds."""
    parameters = variant.trainable_parameters()
    optimizer, scheduler = make_optimizer(parameters, config.train)
    loss = functools.partial(variant_loss, variant)
    seconds = []
    variant.train()
    for step in tqdm(range(1, config.train.steps + 1), desc=desc, disable=not progress, leave=False):
        clock = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        value = training_step(
            loss, "channel", data, config, step, torch.device("cpu")
        )  # the same draws for all
        torch.nn.utils.clip_grad_norm_(parameters, config.train.grad_clip)
        optimizer.step()
        scheduler.step()
        if not math.isfinite(value.item()):
            raise FloatingPointError(f"{variant.name}: loss became {value.item()} at step {step}")
        seconds.append(time.perf_counter() - clock)
    variant.eval()
    return seconds


def clip_noise(data: LatentCache, indices: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise (x0_RGB, x0_XYZ) per clip from generator seed + index: the same for every variant."""
    shape = fuse(data[0]["rgb"][None], data[0]["xyz"][None], "channel").shape[1:]
    noise = torch.stack(
        [torch.randn(shape, generator=torch.Generator().manual_seed(seed + i)) for i in indices]
    )
    return split(noise, "channel")


def variant_validation_loss(variant: FusionVariant, data: LatentCache, config: Config) -> float:
    """`train.validation_loss` of the variant: Eq. 6 over the held-out clips × the fixed t grid."""
    return validation_loss(
        functools.partial(variant_loss, variant), "channel", data, config, torch.device("cpu")
    )


@torch.no_grad()
def sample_latents(
    variant: FusionVariant,
    batch: dict[str, torch.Tensor],
    noise: tuple[torch.Tensor, torch.Tensor],
    steps: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate the flow from noise with Wan's UniPC (shift 3) for a batch of conditions: (RGB, XYZ) latents."""

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x_rgb, x_xyz = split(x, "channel")  # the channel axis only carries both modalities here
        u = variant(x_rgb, x_xyz, t, *condition_halves(batch), batch["text"], batch["image"])
        return fuse(*u, "channel")

    x = sample_flow(velocity, fuse(*noise, "channel"), make_scheduler("unipc", 3.0), steps)
    return split(x, "channel")


def decode(autoencoder, rgb_latent: torch.Tensor, xyz_latent: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Latents (B, z, f, h, w) → RGB in [0, 1] and XYZ, each (B, T, H, W, 3) float64."""
    rgb = (autoencoder.decode_rgb(rgb_latent).clamp(-1, 1) + 1) / 2
    xyz = autoencoder.decode_xyz(xyz_latent)
    return tuple(v.permute(0, 2, 3, 4, 1).double().numpy() for v in (rgb, xyz))


def explained_rgb_change(rgb: np.ndarray, xyz: np.ndarray, recovery: CameraRecovery) -> float:
    """1 − E_warp / E_still for rgb (T, H, W, 3) in [0, 1], xyz (T, H, W, 3) and its recovered cameras."""
    frames, height, width, _ = xyz.shape
    K = recovery.K if recovery.K.ndim == 2 else recovery.K[0]
    camera = xyz[1:] @ recovery.R[0].T + recovery.t[0]  # frames k ≥ 1 in camera 0: R₀X + t₀
    depth = camera[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * camera[..., 0] / depth + K[0, 2]  # p′ = π₀(X_k(p))
        v = K[1, 1] * camera[..., 1] / depth + K[1, 2]
    inside = (depth > 0) & (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    if not inside.any():
        return math.nan
    grid = np.stack([2 * u / (width - 1) - 1, 2 * v / (height - 1) - 1], axis=-1)  # grid_sample's [−1, 1]
    grid = torch.from_numpy(np.where(inside[..., None], grid, 0.0)).float()
    first = torch.from_numpy(rgb[0]).permute(2, 0, 1).float()[None].expand(frames - 1, -1, -1, -1)
    warped = F.grid_sample(first, grid, align_corners=True).permute(0, 2, 3, 1).double().numpy()
    e_warp = np.abs(rgb[1:] - warped).mean(-1)[inside].mean()
    e_still = np.abs(rgb[1:] - rgb[:1]).mean(-1)[inside].mean()
    return float(1 - e_warp / e_still) if e_still > 0 else math.nan


@dataclass
class SceneScore:
    point_error: float
    alignment: float  # nan when the camera fit failed
    rotation_error: float
    focal_error: float
    fit_failed: bool
    rgb_psnr: float


def score_sample(
    rgb: np.ndarray, xyz: np.ndarray, gt_rgb: np.ndarray, gt_xyz: np.ndarray, gt_recovery: CameraRecovery
) -> SceneScore:
    """All per-scene metrics of one generated 6D video (T, H, W, 3) against its ground truth."""
    error, rgb_psnr = point_error(xyz, gt_xyz), psnr(rgb[1:], gt_rgb[1:])
    try:
        recovery = recover_cameras(xyz)
    except ValueError:  # a diverged fit: no cameras for this sample
        return SceneScore(error, math.nan, math.nan, math.nan, fit_failed=True, rgb_psnr=rgb_psnr)
    return SceneScore(
        point_error=error,
        alignment=explained_rgb_change(rgb, xyz, recovery),
        rotation_error=rotation_error(recovery, gt_recovery),
        focal_error=100 * focal_error(recovery, gt_recovery),  # in percent
        fit_failed=False,
        rgb_psnr=rgb_psnr,
    )


@dataclass
class RunResult:
    """One strategy × seed: its metrics (means over the held-out scenes) and costs."""

    strategy: str
    seed: int
    val_loss: float
    point_error: float
    alignment: float
    rotation_error: float
    focal_error: float
    rgb_psnr: float
    fit_failures: int
    trainable_parameters: int
    added_parameters: int
    step_seconds: float


@dataclass
class AblationResult:
    strategies: list[str]
    budget: Budget
    runs: list[RunResult]
    reference_alignment: list[float]  # ground truth, per held-out scene
    base_rgb_psnr: list[float]  # the pretrained base alone, per held-out scene; [] for a random base
    latent_shape: tuple[int, int, int, int]  # (z, f, h, w) of one modality
    seconds: float
    samples: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # seed 0, scene 0


def nanmean(values) -> float:
    values = [v for v in values if math.isfinite(v)]
    return float(np.mean(values)) if values else math.nan


def nanmedian(values) -> float:
    values = [v for v in values if math.isfinite(v)]
    return float(np.median(values)) if values else math.nan


@dataclass
class RunTask:
    """Everything one strategy × seed run needs; picklable, so a worker process can take it."""

    strategy: str
    seed: int
    config: Config
    cache: Path  # out/cache, with train/ and val/ latents
    sample_steps: int
    gt_rgb: np.ndarray  # (N, T, H, W, 3) held-out ground truth in [0, 1]
    gt_xyz: np.ndarray
    gt_recoveries: list[CameraRecovery]
    progress: bool = False


def open_cache(folder: Path) -> LatentCache:
    return LatentCache(sorted(Path(folder).glob("*.safetensors")))


def run_one(task: RunTask) -> tuple[RunResult, tuple[np.ndarray, np.ndarray]]:
    """Train, validate, sample and score one strategy with one seed; also return its first sample."""
    torch.set_num_threads(1)
    train_data, val_data = open_cache(task.cache / "train"), open_cache(task.cache / "val")
    config = with_seed(task.config, task.seed)
    variant = build_variant(task.strategy, config, train_data[0]["rgb"].shape[0], seed=task.seed)
    seconds = train_variant(
        variant, train_data, config, task.progress, desc=f"{task.strategy} seed {task.seed}"
    )
    scenes = list(range(len(val_data)))
    noise = clip_noise(val_data, scenes, SAMPLE_SEED + 1_000 * task.seed)
    latents = sample_latents(variant, val_data.batch(scenes), noise, task.sample_steps)
    rgb, xyz = decode(build_autoencoder(config), *latents)
    truths = zip(rgb, xyz, task.gt_rgb, task.gt_xyz, task.gt_recoveries, strict=True)
    scores = [score_sample(*truth) for truth in truths]
    result = RunResult(
        strategy=task.strategy,
        seed=task.seed,
        val_loss=variant_validation_loss(variant, val_data, config),
        point_error=nanmean(s.point_error for s in scores),
        alignment=nanmean(s.alignment for s in scores),
        rotation_error=nanmedian(s.rotation_error for s in scores),  # medians: a bad fit's focal is unbounded
        focal_error=nanmedian(s.focal_error for s in scores),
        rgb_psnr=nanmean(s.rgb_psnr for s in scores),
        fit_failures=sum(s.fit_failed for s in scores),
        trainable_parameters=sum(p.numel() for p in variant.trainable_parameters()),
        added_parameters=variant.added_parameters(),
        step_seconds=float(np.median(seconds)),
    )
    return result, (rgb[0], xyz[0])


ABLATION_FILES = ("scenes", "cache", "ablation.md", "ablation.json", "ablation.png")  # all it writes


def run_ablation(
    strategies: list[str],
    budget: Budget,
    out: Path,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> AblationResult:
    """Train, sample and score every strategy for every seed; write ablation.md, .json and .png to out.

    `workers` > 1 runs that many single-threaded processes side by side (the results do not depend
    on it: every run draws from its own seeded generators). out/scenes (synthetic clips) and
    out/cache (their latents) are rewritten from scratch: `out` must be new or empty, or hold an earlier
    ablation and nothing else, replaced only with `overwrite`.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    clock = time.perf_counter()
    out = Path(out)
    check_output_folder(out, ABLATION_FILES, "ablation", overwrite)
    out.mkdir(parents=True, exist_ok=True)
    for folder in ("scenes", "cache"):
        shutil.rmtree(out / folder, ignore_errors=True)
    config = ablation_config(out, budget)
    ensure_synthetic_data(config, progress)
    encoders = build_encoders(config, seed=config.train.seed)  # fixed "pretrained" encoders for every run
    train_data = prepare_cache(config, config.data.root, out / "cache" / "train", encoders, progress)
    val_data = prepare_cache(config, config.data.val_root, out / "cache" / "val", encoders, progress)
    val_batch = val_data.batch(list(range(len(val_data))))
    gt_rgb, gt_xyz = decode(build_autoencoder(config), val_batch["rgb"], val_batch["xyz"])
    gt_recoveries = [recover_cameras(x) for x in gt_xyz]
    reference = [explained_rgb_change(r, x, c) for r, x, c in zip(gt_rgb, gt_xyz, gt_recoveries, strict=True)]
    base = base_rgb_psnr(config, encoders, gt_rgb, budget.sample_steps) if config.model.model_dir else []
    result = AblationResult(strategies, budget, [], reference, base, tuple(train_data[0]["rgb"].shape), 0.0)
    result.samples["ground truth"] = (gt_rgb[0], gt_xyz[0])

    tasks = [
        RunTask(
            name,
            seed,
            config,
            out / "cache",
            budget.sample_steps,
            gt_rgb,
            gt_xyz,
            gt_recoveries,
            progress and workers == 1,
        )
        for seed in range(budget.seeds)
        for name in strategies
    ]
    bar = tqdm(total=len(tasks), desc="ablation", unit="run", disable=not progress)
    if workers == 1:
        outcomes = []
        for task in tasks:
            outcomes.append(run_one(task))
            bar.update()
    else:
        context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(run_one, task) for task in tasks]
            for _ in as_completed(futures):
                bar.update()
            outcomes = [future.result() for future in futures]
    bar.close()
    for task, (run, sample) in zip(tasks, outcomes, strict=True):
        result.runs.append(run)
        if task.seed == 0:
            result.samples[task.strategy] = sample
    result.seconds = time.perf_counter() - clock
    write_report(result, out)
    plot_ablation(result, out / "ablation.png")
    return result


def base_rgb_psnr(config: Config, encoders, gt_rgb: np.ndarray, steps: int) -> list[float]:
    """Frames 1..T PSNR per held-out scene of the pretrained base alone, sampling RGB videos from each
    scene's first frame and caption: what a variant's RGB would score had 6D training cost it nothing."""
    from ..model import build_transformer
    from ..pretrain import sample_i2v

    autoencoder = build_autoencoder(config)
    base = build_transformer(config.model, autoencoder.latent_channels).eval()
    sampling = dataclasses.replace(config.sampling, guidance=1.0, steps=steps, frames=config.data.num_frames)
    clips = clip_dataset(config, config.data.val_root)  # the order of the validation cache
    scores = []
    for index, truth in enumerate(gt_rgb):
        clip = clips[index]
        video = sample_i2v(base, autoencoder, encoders, clip.first_frame, clip.caption, sampling).numpy()
        scores.append(psnr(video[1:] / 255.0, truth[1:]))
    return scores


def spread(values: list[float]) -> tuple[float, float]:
    """(mean, sample standard deviation; 0 for one value) of the finite values; nan if none."""
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarize(result: AblationResult) -> dict[str, dict[str, tuple[float, float]]]:
    """strategy → metric → (mean, std over seeds), for METRICS and step_seconds."""
    return {
        name: {
            key: spread([getattr(r, key) for r in result.runs if r.strategy == name])
            for key in (*METRICS, "step_seconds")
        }
        for name in result.strategies
    }


def format_distance(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:,.0f}"


def format_cell(mean: float, std: float, digits: int) -> str:
    return "—" if not math.isfinite(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


DIGITS = {
    "val_loss": 4,
    "point_error": 3,
    "alignment": 3,
    "rotation_error": 2,
    "focal_error": 1,
    "rgb_psnr": 2,
}


def table(result: AblationResult) -> str:
    """The markdown table: one row per strategy, then the ground-truth reference."""
    summary = summarize(result)
    header = ["strategy", "Fig. 4", *(LABELS[k] for k in METRICS), "camera fits failed",
              "twin distance here / paper", "trainable params", "added params", "step (s)"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in result.strategies:
        runs = [r for r in result.runs if r.strategy == name]
        cells = [format_cell(*summary[name][k], DIGITS[k]) for k in METRICS]
        here = variant_interaction_distance(name, result.latent_shape)
        paper = variant_interaction_distance(name, PAPER_LATENT)
        note = " (+CDSA)" if "cdsa" in name else ""
        step = summary[name]["step_seconds"]
        lines.append(
            f"| {name} | {VARIANTS[name][0]} | " + " | ".join(cells)
            + f" | {sum(r.fit_failures for r in runs)}/{len(runs) * result.budget.val_clips}"
            + f" | {format_distance(here)} / {format_distance(paper)}{note}"
            + f" | {runs[0].trainable_parameters:,} | {runs[0].added_parameters:,} | {step[0]:.3f} |"
        )  # fmt: skip
    truth = {"val_loss": "—", "point_error": "0", "rotation_error": "0", "focal_error": "0", "rgb_psnr": "∞",
             "alignment": format_cell(*spread(result.reference_alignment), 3) + " (over scenes)"}  # fmt: skip
    references = [("ground truth", truth)]
    if result.base_rgb_psnr:
        base = format_cell(*spread(result.base_rgb_psnr), DIGITS["rgb_psnr"]) + " (over scenes)"
        references.append(("pretrained base alone, RGB only", {"rgb_psnr": base}))
    for name, cells in references:
        row = [cells.get(key, "—") for key in METRICS]
        lines.append(f"| {name} | — | " + " | ".join(row) + " | — | — | — | — | — |")
    return "\n".join(lines)


def verdict(result: AblationResult) -> list[str]:
    """Per metric: where width-wise fusion ranks and whether its gap to the best other exceeds the seed spread."""
    if "width" not in result.strategies or len(result.strategies) < 2:
        return []
    summary = summarize(result)
    lines = []
    for key in METRICS:
        sign = 1 if LOWER_IS_BETTER[key] else -1
        finite = [n for n in result.strategies if math.isfinite(summary[n][key][0])]
        if "width" not in finite or len(finite) < 2:
            continue
        order = sorted(finite, key=lambda n: sign * summary[n][key][0])
        best_other = next(n for n in order if n != "width")
        (w, w_std), (o, o_std) = summary["width"][key], summary[best_other][key]
        gap = sign * (o - w)  # > 0: width is better
        noise = max(w_std, o_std)
        if result.budget.seeds > 1:
            judged = "beyond" if abs(gap) > noise else "within"
            spread_note = f"{judged} the larger seed spread ({noise:.{DIGITS[key] + 1}f})"
        else:
            spread_note = "one seed: no spread to judge the gap by"
        lines.append(
            f"- {LABELS[key]}: width ranks {order.index('width') + 1}/{len(order)}; "
            f"{'ahead of' if gap > 0 else 'behind'} the best other ({best_other}) by {abs(gap):.{DIGITS[key] + 1}f}, "
            f"{spread_note}."
        )  # fmt: skip
    return lines


def notes(result: AblationResult) -> list[str]:
    """Facts a reader needs to read the table right."""
    lines = []
    if {"frame", "height", "width"} <= set(result.strategies):
        lines.append(
            "- frame, height and width give twin tokens one RoPE position (Eq. 11); attention does not see "
            "token order, so the three are one function and differ only by floating-point rounding. The "
            "-stock-rope rows (c′-e′) place the XYZ half at new positions, where Fig. 5's distance applies."
        )
    if any("cdsa" in name for name in result.strategies):
        lines.append(
            "- CDSA adds fully trained attention layers: b.ii's gains mix cross-modal attention and capacity."
        )
    return lines


def write_report(result: AblationResult, out: Path) -> tuple[Path, Path]:
    """ablation.md (budget, table, verdict) and ablation.json (every run's raw numbers)."""
    budget = result.budget
    z, f, h, w = result.latent_shape
    text = [
        "# Fusion-strategy ablation in miniature (§4.2, §5.3, Fig. 4-5, Fig. 10)",
        "",
        f"{len(result.strategies)} strategies × {budget.seeds} seed(s), each trained {budget.steps} steps "
        f"on {budget.train_clips} synthetic clips ({budget.num_frames} frames, latent {z}×{f}×{h}×{w} per "
        f"modality), scored on {budget.val_clips} held-out scenes sampled with {budget.sample_steps} "
        f"UniPC steps; wall time {result.seconds / 60:.1f} min. Mean ± standard deviation over seeds "
        "(specs/ablation.md defines every column).",
        "",
        table(result),
        "",
        *verdict(result),
        *notes(result),
        "",
    ]
    markdown = out / "ablation.md"
    markdown.write_text("\n".join(text))
    data = {
        "budget": dataclasses.asdict(budget),
        "latent_shape": list(result.latent_shape),
        "seconds": result.seconds,
        "reference_alignment": result.reference_alignment,
        "base_rgb_psnr": result.base_rgb_psnr,
        "runs": [dataclasses.asdict(r) for r in result.runs],
    }
    raw = out / "ablation.json"
    raw.write_text(json.dumps(data, indent=1, allow_nan=True) + "\n")
    return markdown, raw


def plot_ablation(result: AblationResult, path: Path) -> Path:
    """Bars (mean ± std over seeds) per metric, then a Fig. 10-style grid: RGB and XYZ frames per strategy."""
    summary = summarize(result)
    samples = {
        (name if name == "ground truth" else f"({VARIANTS[name][0]}) {name}"): result.samples[name]
        for name in ["ground truth", *(n for n in result.strategies if n in result.samples)]
    }
    references = {"alignment": spread(result.reference_alignment)[0]}
    if result.base_rgb_psnr:
        references["rgb_psnr"] = spread(result.base_rgb_psnr)[0]
    ordered = {name: summary[name] for name in result.strategies}
    return viz.plot_ablation(ordered, {k: LABELS[k] for k in METRICS}, references, "width", samples, path)
