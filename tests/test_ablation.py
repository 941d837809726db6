"""The fusion variants of Fig. 4 and the miniature ablation of §5.3: shapes, CDSA, distances, metrics, CLI.

Spec: specs/ablation.md
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest
import torch
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from nanofourdnex.cli import app
from nanofourdnex.config import load_config
from nanofourdnex.data import normalize_pointmaps, to_first_camera
from nanofourdnex.model import trains_in_full
from nanofourdnex.outputs import check_output_folder
from nanofourdnex.paper.fusion import fuse
from nanofourdnex.paper.reprojection import CameraRecovery, intrinsics, recover_cameras
from nanofourdnex.synthetic import make_scene
from nanofourdnex.tools.ablation import (
    ABLATION_FILES,
    QUICK_BUDGET,
    AblationResult,
    RunResult,
    condition_halves,
    explained_rgb_change,
    run_ablation,
    table,
    variant_loss,
)
from nanofourdnex.tools.fusion_variants import (
    VARIANTS,
    CDSABlock,
    CrossDomainAttention,
    build_variant,
    variant_interaction_distance,
)
from nanofourdnex.train import batch_loss

from .strategies import randn, seeds, tiny_config

Z, FRAMES, H, W = 12, 2, 8, 8  # one modality's latent (z, f, h, w): 5 pixel frames
PAPER_LATENT = (16, 13, 60, 90)  # 49 frames of 480×720: token grid (13, 30, 45)


TRAIN_BASE = load_config("tiny").lora.train_base


def one_layer():
    return tiny_config("model.num_layers=1")


def inputs(batch: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random latents, conditions and embeddings shaped as the tiny preset's cache entries."""
    shapes = {"rgb": (Z, FRAMES, H, W), "xyz": (Z, FRAMES, H, W), "cond": (Z, FRAMES, H, 2 * W)}
    shapes |= {"text": (512, 32), "image": (17, 32)}
    return {k: randn((batch, *s), seed + i) for i, (k, s) in enumerate(shapes.items())}


def call(variant, x: dict[str, torch.Tensor], t: torch.Tensor):
    return variant(x["rgb"], x["xyz"], t, *condition_halves(x), x["text"], x["image"])


def randomize_trainable(variant, seed: int = 1) -> None:
    """Non-zero LoRA B, switchers, CDSA outputs: a variant as after some training."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in variant.trainable_parameters():
            parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_maps_both_latents_to_velocities_of_the_same_shape(name):
    variant = build_variant(name, one_layer(), Z)
    randomize_trainable(variant)  # a fresh switcher is zero: both modalities would coincide
    x = inputs(batch=2)
    u_rgb, u_xyz = call(variant, x, torch.tensor([0.3, 0.8]))
    assert u_rgb.shape == u_xyz.shape == (2, Z, FRAMES, H, W)
    assert torch.isfinite(u_rgb).all() and torch.isfinite(u_xyz).all()
    assert not torch.allclose(u_rgb, u_xyz)  # the two modalities get their own velocities


@pytest.mark.parametrize("name", list(VARIANTS))
def test_gradients_reach_exactly_the_trainable_parameters(name):
    variant = build_variant(name, one_layer(), Z)
    randomize_trainable(variant)
    u_rgb, u_xyz = call(variant, inputs(), torch.tensor([0.5]))
    (u_rgb.square().mean() + u_xyz.square().mean()).backward()
    with_grad = {n for n, p in variant.named_parameters() if p.grad is not None}
    trainable = {n for n, p in variant.named_parameters() if p.requires_grad}
    assert with_grad == trainable
    assert all(variant.get_parameter(n).grad.abs().sum() > 0 for n in trainable)
    base = {f"transformer.{n}" for n, _ in variant.transformer.named_parameters()}
    shared = {
        n for n in trainable if "lora_" in n or trains_in_full(n.removeprefix("transformer."), TRAIN_BASE)
    }
    assert shared & base == shared  # the LoRA and the base layers every variant trains
    extra = trainable - shared
    switcher = "transformer.modality_switcher.weight"
    expected = {
        "channel-linear": {"adapter_in.weight", "adapter_in.bias", "adapter_out.weight", "adapter_out.bias"},
        "channel-switcher": {"adapter_in.weight", "adapter_in.bias", switcher},
        "batch-switcher": {switcher},
    }.get(name)
    if expected is not None:
        assert extra == expected
    elif "cdsa" in name:
        assert switcher in extra and all(".cdsa." in n for n in extra - {switcher}) and len(extra) > 1
    else:
        assert extra == {"transformer.domain_embedding.weight"}
    assert variant.added_parameters() == sum(variant.get_parameter(n).numel() for n in extra)


def test_fresh_channel_adapters_start_as_the_rgb_model():
    """a.i at init: u_RGB ignores every XYZ input and u_XYZ = 0 (identity on RGB channels, zero elsewhere)."""
    variant = build_variant("channel-linear", one_layer(), Z)
    x, t = inputs(), torch.tensor([0.4])
    u_rgb, u_xyz = call(variant, x, t)
    cond_rgb, cond_xyz = condition_halves(x)
    other = dict(x, xyz=x["xyz"] + 1.0, cond=fuse(cond_rgb, -cond_xyz, "width"))
    u_rgb_other, _ = call(variant, other, t)
    assert torch.equal(u_rgb, u_rgb_other)
    assert torch.count_nonzero(u_xyz) == 0


def test_a_fresh_cdsa_block_is_the_stock_wan_block():
    variant = build_variant("batch-cdsa-full", one_layer(), Z)
    block = variant.transformer.blocks[0]
    assert isinstance(block, CDSABlock)
    hidden, text = randn((2, 32, 128), 0), randn((2, 529, 128), 1)
    temb = randn((2, 6, 128), 2)
    rope = WanRotaryPosEmbed(32, (1, 2, 2), 64)(torch.zeros(1, 1, 2, 8, 8))  # 32 tokens
    assert torch.equal(block(hidden, text, temb, rope), block.block(hidden, text, temb, rope))


def cdsa(sparse: bool, seed: int) -> CrossDomainAttention:
    torch.manual_seed(seed)
    module = CrossDomainAttention(dim=32, heads=2, sparse=sparse)
    torch.nn.init.normal_(module.attention.to_out[0].weight)  # trained: no longer the zero init
    return module


@given(seed=seeds, position=st.integers(0, 11))
def test_sparse_cdsa_lets_a_token_see_only_its_twin(seed, position):
    """Perturbing the XYZ token at one position changes the outputs of that position's two tokens only."""
    module = cdsa(sparse=True, seed=seed % 1000)
    hidden = randn((2, 12, 32), seed)  # one RGB sample, then its XYZ sample: 12 tokens each
    perturbed = hidden.clone()
    perturbed[1, position] += randn((32,), seed + 1)  # not a constant: the pre-norm would remove it
    changed = (module(perturbed, None) - module(hidden, None)).abs().amax(-1) > 1e-6  # (2, 12)
    expected = torch.zeros(2, 12, dtype=torch.bool)
    expected[:, position] = True  # the RGB twin sees it, and the XYZ token itself
    assert torch.equal(changed, expected)


def test_full_cdsa_lets_every_token_see_every_other():
    module = cdsa(sparse=False, seed=0)
    hidden = randn((2, 12, 32), 0)
    rope = WanRotaryPosEmbed(16, (1, 2, 2), 64)(torch.zeros(1, 1, 1, 6, 8))  # 12 positions
    perturbed = hidden.clone()
    perturbed[1, 5] += randn((32,), 1)
    changed = (module(perturbed, rope) - module(hidden, rope)).abs().amax(-1) > 1e-6
    assert changed.all()


@given(seed=seeds)
def test_sparse_cdsa_equals_dense_attention_restricted_to_twin_pairs(seed):
    """The O(L) pair softmax = diffusers' WanAttention over [RGB; XYZ] with RoPE and a self-or-twin mask."""
    module = cdsa(sparse=True, seed=seed % 1000)
    hidden = randn((4, 12, 32), seed)  # two RGB samples, then their two XYZ samples
    rope = WanRotaryPosEmbed(16, (1, 2, 2), 64)(torch.zeros(1, 1, 1, 6, 8))
    x = module.norm(hidden)
    joint = torch.cat(x.chunk(2), dim=1)  # (2, 24, 32)
    position = torch.arange(24) % 12
    twins = position[:, None] == position[None, :]  # self or twin
    both = tuple(torch.cat([r, r], dim=1) for r in rope)
    dense = module.attention(joint, None, twins, both)
    reference = torch.cat(dense.chunk(2, dim=1))
    torch.testing.assert_close(module(hidden, rope), reference, atol=1e-5, rtol=1e-5)


def test_interaction_distances_follow_fig5_for_the_paper_shapes():
    """Token grid (13, 30, 45): width 45 < height 30·45 < frame 13·30·45; channel 0, batch never."""
    distance = {name: variant_interaction_distance(name, PAPER_LATENT) for name in VARIANTS}
    assert (distance["width"], distance["height"], distance["frame"]) == (45, 1_350, 17_550)
    assert distance["width"] < distance["height"] < distance["frame"]
    assert distance["channel-linear"] == distance["channel-switcher"] == 0
    assert all(math.isinf(distance[n]) for n in ("batch-switcher", "batch-cdsa-full", "batch-cdsa-sparse"))
    assert all(distance[f"{n}-stock-rope"] == distance[n] for n in ("frame", "height", "width"))


def test_shared_rope_makes_frame_height_and_width_fusion_one_function():
    """Attention is permutation-equivariant: with twins at one RoPE position, the token order is invisible."""
    x, t = inputs(seed=3), torch.tensor([0.6])
    outputs = {}
    for name in ("frame", "height", "width", "frame-stock-rope", "width-stock-rope"):
        variant = build_variant(name, one_layer(), Z)
        randomize_trainable(variant)
        outputs[name] = torch.cat(call(variant, x, t))
    torch.testing.assert_close(outputs["frame"], outputs["width"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outputs["height"], outputs["width"], atol=1e-5, rtol=1e-5)
    assert (outputs["frame-stock-rope"] - outputs["width-stock-rope"]).abs().max() > 1e-3  # 100× the above
    assert (outputs["width-stock-rope"] - outputs["width"]).abs().max() > 1e-3


def test_variant_loss_is_the_training_loss_for_in_sequence_fusion():
    variant = build_variant("width", one_layer(), Z)
    randomize_trainable(variant)
    batch, t = inputs(batch=2, seed=5), torch.tensor([0.2, 0.7])
    noise_rgb, noise_xyz = randn((2, Z, FRAMES, H, W), 7), randn((2, Z, FRAMES, H, W), 8)
    expected = batch_loss(variant.model, batch, fuse(noise_rgb, noise_xyz, "width"), t)
    torch.testing.assert_close(
        variant_loss(variant, batch, fuse(noise_rgb, noise_xyz, "channel"), t), expected
    )


def recovery(R: np.ndarray, focal: float = 20.0, height: int = 8, width: int = 12) -> CameraRecovery:
    frames = len(R)
    empty = np.zeros((frames, height, width))
    return CameraRecovery(R, np.zeros((frames, 3)), intrinsics(focal, height, width), empty, empty, 0, True)


def test_alignment_is_one_when_the_geometry_predicts_every_colour_and_zero_for_static_geometry():
    """A fronto-parallel textured plane seen by a camera sliding one pixel per frame (camera 0 = identity)."""
    frames, height, width, depth = 4, 8, 12, 5.0
    camera = recovery(np.tile(np.eye(3), (frames, 1, 1)))
    f, cx, cy = camera.K[0, 0], camera.K[0, 2], camera.K[1, 2]
    canvas = np.random.default_rng(0).uniform(size=(height, width + frames, 3))
    rgb = np.stack([canvas[:, k : k + width] for k in range(frames)])  # frame k shows columns k … k + W − 1
    v, u = np.mgrid[0:height, 0:width].astype(float)
    xyz = np.stack(
        [
            np.stack([(u + k - cx) * depth / f, (v - cy) * depth / f, np.full_like(u, depth)], -1)
            for k in range(frames)
        ]
    )  # the plane point seen at (u, v) in frame k sits at column u + k in frame 0
    assert explained_rgb_change(rgb, xyz, camera) == pytest.approx(1.0, abs=1e-6)
    assert explained_rgb_change(rgb, np.repeat(xyz[:1], frames, 0), camera) == pytest.approx(0.0, abs=1e-6)


def test_ground_truth_geometry_explains_more_of_the_rgb_change_than_static_geometry():
    scores = []
    for seed in range(3):
        scene = make_scene(seed, 5, 16, 24)
        xyz, _, _ = normalize_pointmaps(to_first_camera(scene.xyz, scene.c2w))
        scores.append(explained_rgb_change(scene.rgb / 255, xyz, recover_cameras(xyz)))
    static = make_scene(0, 5, 16, 24)
    xyz, _, _ = normalize_pointmaps(to_first_camera(static.xyz, static.c2w))
    still = np.repeat(xyz[:1], 5, 0)
    assert np.mean(scores) > 0.05
    assert explained_rgb_change(static.rgb / 255, still, recover_cameras(still)) == pytest.approx(
        0.0, abs=1e-3
    )


def test_quick_ablation_writes_a_table_row_with_finite_numbers_per_strategy(tmp_path):
    result = CliRunner().invoke(app, ["ablate", "--quick", "--workers", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = {line.split("|")[1].strip(): line for line in (tmp_path / "ablation.md").read_text().splitlines()
            if line.startswith("| ")}  # fmt: skip
    for name in VARIANTS:
        cells = rows[name].split("|")[3:9]  # val loss, point error, alignment, rotation, focal, RGB PSNR
        numbers = [float(m) for cell in cells for m in re.findall(r"-?\d+\.\d+", cell)]
        assert len(numbers) == 12 and all(math.isfinite(n) for n in numbers), rows[name]
    assert not any("base alone" in row for row in rows)  # --quick's base is random: no prior to keep
    runs = json.loads((tmp_path / "ablation.json").read_text())["runs"]
    assert sorted(r["strategy"] for r in runs) == sorted(VARIANTS)
    assert all(r["step_seconds"] > 0 and r["trainable_parameters"] > 0 for r in runs)
    assert (tmp_path / "ablation.png").stat().st_size > 0


def test_the_table_carries_the_base_alone_as_the_rgb_reference_and_seed_spreads_per_strategy():
    """The base-alone row holds the mean ± sample std of its per-scene PSNRs in the RGB column only;
    a strategy's cells are mean ± sample std over its seeds."""
    runs = [
        RunResult("width", seed, 0.5, 0.1, 0.2, 3.0, 4.0, psnr, 0, 10, 2, 0.1)
        for seed, psnr in enumerate([20.0, 24.0])
    ]
    result = AblationResult(["width"], QUICK_BUDGET, runs, [0.3, 0.5], [21.0, 23.0], (12, 2, 16, 24), 1.0)
    rows = {line.split("|")[1].strip(): line.split("|")[3:9] for line in table(result).splitlines()}
    assert rows["width"][5].strip() == f"22.00 ± {np.std([20.0, 24.0], ddof=1):.2f}"
    base = rows["pretrained base alone, RGB only"]
    assert base[5].strip() == f"22.00 ± {np.std([21.0, 23.0], ddof=1):.2f} (over scenes)"
    assert [cell.strip() for cell in base[:5]] == ["—"] * 5
    assert rows["ground truth"][5].strip() == "∞"
    empty = dataclasses.replace(result, base_rgb_psnr=[])
    assert "base alone" not in table(empty)


def test_worker_processes_reproduce_the_in_process_numbers(tmp_path):
    """Every run draws from its own seeded generators: side-by-side processes change nothing but time."""
    strategies = ["channel-switcher", "width"]
    alone = run_ablation(strategies, QUICK_BUDGET, tmp_path / "one", workers=1, progress=False)
    pooled = run_ablation(strategies, QUICK_BUDGET, tmp_path / "two", workers=2, progress=False)
    for a, b in zip(alone.runs, pooled.runs, strict=True):
        assert dataclasses.replace(a, step_seconds=0.0) == dataclasses.replace(b, step_seconds=0.0)


@pytest.mark.parametrize("arguments", [["--strategies", "diagonal"], ["--steps", "0"], ["--seeds", "0"]])
def test_bad_ablate_options_fail_with_one_line(tmp_path, arguments):
    result = CliRunner().invoke(app, ["ablate", "--quick", "--out", str(tmp_path), *arguments])
    assert result.exit_code != 0
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "ablation.md").exists()


def test_ablate_replaces_only_an_earlier_ablation_and_only_with_overwrite(tmp_path):
    mine, earlier = tmp_path / "mine", tmp_path / "earlier"
    for folder in (mine / "cache", mine / "scenes", earlier / "cache"):
        folder.mkdir(parents=True)
    (mine / "cache" / "mine.txt").write_text("mine")
    (mine / "notes.txt").write_text("mine")
    (earlier / "ablation.md").write_text("an earlier table")
    for out, extra, message in (
        (mine, ["--overwrite"], "holds files an ablation does not write (notes.txt)"),
        (earlier, [], "holds an earlier ablation; pass --overwrite"),
        (tmp_path / "mine" / "notes.txt", [], "is a file, not a folder"),
    ):
        result = CliRunner().invoke(app, ["ablate", "--quick", "--out", str(out), *extra])
        assert result.exit_code != 0 and message in result.output, result.output
    assert (mine / "cache" / "mine.txt").read_text() == "mine" and (mine / "notes.txt").read_text() == "mine"
    assert (earlier / "ablation.md").read_text() == "an earlier table"
    check_output_folder(earlier, ABLATION_FILES, "ablation", overwrite=True)  # accepted: replaced by the run
    check_output_folder(tmp_path / "new", ABLATION_FILES, "ablation", overwrite=False)
