"""Sampling the 6D video: flow integration against diffusers' schedulers, sizes, determinism.

Spec: specs/generation.md
"""

import dataclasses
import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from diffusers.loaders import WanLoraLoaderMixin
from hypothesis import given
from hypothesis import strategies as st
from plyfile import PlyData
from typer.testing import CliRunner

from nanofourdnex.autoencoder import PixelShuffleAutoencoder, SixDAutoencoder
from nanofourdnex.cli import app
from nanofourdnex.conditioning import build_encoders, condition_latents
from nanofourdnex.config import SamplingConfig
from nanofourdnex.generate import (
    OFFLOAD_MODES,
    check_inputs,
    generate_6d,
    load_inference,
    output_size,
    place,
    resize_image,
    run_generation,
)
from nanofourdnex.model import LORA_FILE, RELEASE_DOMAIN_FILE, build_model
from nanofourdnex.paper.flow_matching import euler_step, make_scheduler, sample_flow
from nanofourdnex.paper.fusion import fuse, split
from nanofourdnex.paper.mask import guided_mask
from nanofourdnex.reading import load_image
from nanofourdnex.synthetic import clip_seed, make_scene
from nanofourdnex.train import train
from tests.strategies import randn, seeds, tiny_config


@given(seeds, st.integers(1, 12))
def test_euler_sampling_is_paper_time_euler_integration(seed, steps):
    """The scheduler loop equals x ← x + (t' − t)·u with the scheduler's own time grid."""
    weights = randn((4, 4), seed) * 0.3

    def velocity(x, t):
        return x @ weights + t.view(-1, 1)

    noise = randn((2, 4), seed + 1)
    sampled = sample_flow(velocity, noise, make_scheduler("euler", shift=1.0), steps)
    scheduler = make_scheduler("euler", shift=1.0)
    scheduler.set_timesteps(steps)
    times = (1 - scheduler.sigmas).tolist()  # paper time grid, ends at t = 1
    x = noise
    for t, t_next in zip(times[:-1], times[1:], strict=True):
        x = euler_step(x, velocity(x, torch.full((2,), t)), t, t_next)
    torch.testing.assert_close(sampled, x, rtol=1e-5, atol=1e-5)


@given(seeds, st.sampled_from([1.0, 3.0]))
def test_sampling_the_exact_flow_of_a_point_mass_lands_on_the_point(seed, shift):
    """For data x1 = c the Eq. 5 flow is u(x, t) = (c − x)/(1 − t); its paths are straight lines."""
    c = randn((1, 3, 2, 2), seed)

    def velocity(x, t):
        return (c - x) / (1 - t).clamp_min(1e-6).view(-1, 1, 1, 1)

    euler = sample_flow(velocity, randn((1, 3, 2, 2), seed + 1), make_scheduler("euler", shift), 10)
    torch.testing.assert_close(euler, c, rtol=1e-4, atol=1e-4)
    # UniPC (Wan's default) feeds the network integer timesteps (999 for σ = 1), as the Wan pipeline does,
    # so the velocity is evaluated at a time up to 1/1000 off its σ grid: close, not exact.
    unipc = sample_flow(velocity, randn((1, 3, 2, 2), seed + 1), make_scheduler("unipc", shift), 10)
    torch.testing.assert_close(unipc, c, rtol=0, atol=1e-2)


def test_release_size_rule_keeps_480x720_for_a_2_to_3_image():
    assert output_size(1080, 1620) == (480, 720)
    assert output_size(720, 480) == (720, 480)


@given(st.integers(16, 4000), st.integers(16, 4000))
def test_output_size_is_a_multiple_of_16_within_the_area_and_keeps_the_aspect(h, w):
    ideal_h, ideal_w = (480 * 720 * h / w) ** 0.5, (480 * 720 * w / h) ** 0.5
    if min(ideal_h, ideal_w) < 16:
        with pytest.raises(ValueError, match="too extreme"):
            output_size(h, w)
        return
    oh, ow = output_size(h, w)
    assert oh % 16 == 0 and ow % 16 == 0 and oh * ow <= 480 * 720
    if min(ideal_h, ideal_w) >= 64:  # 16-pixel rounding distorts the aspect of very thin images
        assert abs(oh / ow - h / w) / (h / w) < 0.5


def test_unknown_scheduler_and_zero_steps_are_rejected():
    with pytest.raises(ValueError, match="unknown scheduler"):
        make_scheduler("ddim")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        sample_flow(lambda x, t: x, torch.zeros(1, 2), make_scheduler("euler"), 0)


# --- What is sampled: a stub velocity field whose answer depends on the text it is given ---


class PromptStub(torch.nn.Module):
    """FourDNeX's call signature with a known answer: u = (target − x)/(1 − t), the exact flow to a point mass,
    where the target is picked by the text embedding (the triggered prompt or the negative prompt, nothing
    else). Every call is recorded."""

    strategy = "width"

    def __init__(self, texts: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # a device for generate_6d
        self.texts, self.targets, self.calls = texts, targets, []

    def forward(self, x, t, mask, condition, text, image):
        names = [name for name, embedding in self.texts.items() if torch.equal(text, embedding)]
        assert names, "the text is neither the prompt with its trigger words nor the negative prompt as given"
        self.calls.append({"text": names[0], "mask": mask, "condition": condition, "image": image})
        return (self.targets[names[0]] - x) / (1 - t).clamp_min(1e-6).view(-1, 1, 1, 1, 1)


FRAMES, HEIGHT, WIDTH = 5, 8, 12  # a non-square image; the pixel stand-in keeps the latent at pixel size


@pytest.fixture(scope="module")
def stub_world():
    """Encoders, an autoencoder with non-trivial Eq. 8 statistics, the image, and two known 6D videos."""
    encoders = build_encoders(tiny_config())
    autoencoder = SixDAutoencoder(PixelShuffleAutoencoder(1), xyz_mean=0.2, xyz_std=1.5)
    g = torch.Generator().manual_seed(11)
    image = torch.rand(3, HEIGHT, WIDTH, generator=g) * 2 - 1
    videos = {
        name: [torch.rand(1, 3, FRAMES, HEIGHT, WIDTH, generator=g) - 0.5 for _ in "rx"]
        for name in ("prompt", "negative")
    }
    return encoders, autoencoder, image, videos


def stub_for(stub_world, prompt: str, negative: str) -> PromptStub:
    encoders, autoencoder, _, videos = stub_world
    texts = {
        "prompt": encoders.encode_text([encoders.triggered(prompt)]),
        "negative": encoders.encode_text([negative]),
    }
    targets = {
        name: fuse(autoencoder.encode_rgb(rgb), autoencoder.encode_xyz(xyz), "width")
        for name, (rgb, xyz) in videos.items()
    }
    return PromptStub(texts, targets)


def sample_with_stub(stub_world, stub, guidance):
    encoders, autoencoder, image, _ = stub_world
    sampling = SamplingConfig(
        FRAMES, steps=8, guidance=guidance, scheduler="euler", shift=1.0, negative_prompt="blurry, static"
    )
    return generate_6d(stub, autoencoder, encoders, image, "a red ball rolls left", sampling, device="cpu")


@pytest.mark.parametrize("guidance", [1.0, 2.5, 5.0])
def test_guidance_extrapolates_from_the_negative_prompt_to_the_prompt_with_rgb_and_xyz_on_their_sides(
    stub_world, guidance
):
    """u = u_∅ + g·(u_c − u_∅): the flow lands on v_∅ + g·(v_c − v_∅), decoded RGB from the left half, XYZ
    (Eq. 9) from the right half."""
    _, autoencoder, _, videos = stub_world
    stub = stub_for(stub_world, "a red ball rolls left", "blurry, static")
    six = sample_with_stub(stub_world, stub, guidance)
    (rgb_c, xyz_c), (rgb_n, xyz_n) = videos["prompt"], videos["negative"]
    expected_xyz = (xyz_n + guidance * (xyz_c - xyz_n))[0].permute(1, 2, 3, 0)
    expected_rgb = (((rgb_n + guidance * (rgb_c - rgb_n)).clamp(-1, 1) + 1) * 127.5)[0].permute(1, 2, 3, 0)
    torch.testing.assert_close(six.xyz, expected_xyz, rtol=0, atol=1e-4)
    assert (six.rgb.float() - expected_rgb).abs().max() <= 0.51  # rounding to 8 bits only
    assert {call["text"] for call in stub.calls} == (
        {"prompt"} if guidance == 1.0 else {"prompt", "negative"}
    )


def test_the_model_sees_the_image_and_plane_condition_the_guided_mask_and_clip_of_the_image(stub_world):
    encoders, autoencoder, image, _ = stub_world
    stub = stub_for(stub_world, "a red ball rolls left", "blurry, static")
    sample_with_stub(stub_world, stub, 5.0)
    from tests.test_conditioning import sloped_plane_by_hand

    panel = torch.cat([image, sloped_plane_by_hand(HEIGHT, WIDTH)], dim=2)  # [I_0 | X^init] (3, H, 2W)
    video = torch.cat([panel[None, :, None], torch.zeros(1, 3, FRAMES - 1, HEIGHT, 2 * WIDTH)], dim=2)
    condition = autoencoder.base.encode(video)  # one encode, no Eq. 8
    mask = torch.zeros(1, 4, 2, HEIGHT, 2 * WIDTH)
    mask[:, :, 0, :, :WIDTH], mask[:, :, 0, :, WIDTH:] = (
        1.0,
        0.5,
    )  # latent frame 0 holds pixel frame 0 four times
    clip = encoders.encode_image(image[None])
    assert len(stub.calls) == 16  # 8 steps × (prompt, negative)
    for call in stub.calls:
        torch.testing.assert_close(call["condition"], condition, rtol=0, atol=1e-6)
        assert torch.equal(call["mask"], mask) and torch.equal(call["image"], clip)


def test_guidance_one_and_five_give_different_videos(stub_world):
    one = sample_with_stub(stub_world, stub_for(stub_world, "a red ball rolls left", "blurry, static"), 1.0)
    five = sample_with_stub(stub_world, stub_for(stub_world, "a red ball rolls left", "blurry, static"), 5.0)
    assert (one.xyz - five.xyz).abs().max() > 0.1


class StillStub(torch.nn.Module):
    """FourDNeX's signature with u = 0, for any fusion: the sampled latent is the seed's noise. Records its calls."""

    def __init__(self, strategy: str):
        super().__init__()
        self.strategy, self.anchor, self.calls = strategy, torch.nn.Parameter(torch.zeros(())), []

    def forward(self, x, t, mask, condition, text, image):
        self.calls.append({"t": t, "mask": mask, "condition": condition})
        return torch.zeros_like(x)


STILL = SamplingConfig(FRAMES, steps=3, guidance=1.0, seed=5, scheduler="euler", shift=2.0)


def test_generation_follows_the_models_strategy_the_seed_and_the_schedule(stub_world, capsys):
    encoders, autoencoder, image, _ = stub_world
    stub = StillStub("height")
    six = generate_6d(stub, autoencoder, encoders, image, "a red ball", STILL)  # on the model's device
    assert capsys.readouterr().err == ""  # no progress bar unless asked
    condition = condition_latents(autoencoder, image[None], FRAMES, "height")
    noise = torch.randn(condition.shape, generator=torch.Generator().manual_seed(5))
    rgb_latent, xyz_latent = split(noise, "height")  # u = 0: the latent is the noise
    assert six.rgb.dtype == torch.uint8 and six.rgb.shape == (FRAMES, HEIGHT, WIDTH, 3)
    torch.testing.assert_close(six.xyz, autoencoder.decode_xyz(xyz_latent)[0].permute(1, 2, 3, 0))
    expected_rgb = ((autoencoder.decode_rgb(rgb_latent)[0].clamp(-1, 1) + 1) * 127.5).round()
    assert torch.equal(six.rgb, expected_rgb.to(torch.uint8).permute(1, 2, 3, 0))
    scheduler = make_scheduler("euler", 2.0)
    scheduler.set_timesteps(3)
    assert [call["t"].item() for call in stub.calls] == pytest.approx(
        (1 - scheduler.timesteps / 1000).tolist()
    )
    for call in stub.calls:
        torch.testing.assert_close(call["condition"], condition, rtol=0, atol=0)
        assert torch.equal(call["mask"], guided_mask(FRAMES, HEIGHT, WIDTH, "height"))


def test_model_offloading_and_the_progress_bar_change_nothing_else(stub_world, capsys):
    encoders, autoencoder, image, _ = stub_world
    plain = generate_6d(StillStub("width"), autoencoder, encoders, image, "a red ball", STILL, device="cpu")
    offloaded = generate_6d(
        StillStub("width"), autoencoder, encoders, image, "a red ball", STILL, offload="model", progress=True
    )
    assert "sampling" in capsys.readouterr().err
    assert torch.equal(plain.rgb, offloaded.rgb) and torch.equal(plain.xyz, offloaded.xyz)
    other_seed = dataclasses.replace(STILL, seed=6)
    assert not torch.equal(
        plain.xyz, generate_6d(StillStub("width"), autoencoder, encoders, image, "", other_seed).xyz
    )


def test_generation_refuses_a_malformed_image_or_frame_count_and_makes_a_single_frame(stub_world):
    encoders, autoencoder, image, _ = stub_world
    with pytest.raises(ValueError, match=r"^image must be \(3, H, W\), got \(4, 8, 12\)$"):
        generate_6d(StillStub("width"), autoencoder, encoders, torch.zeros(4, HEIGHT, WIDTH), "", STILL)
    with pytest.raises(ValueError, match="^sampling.frames must be a frame count, got 0$"):
        generate_6d(
            StillStub("width"), autoencoder, encoders, image, "", dataclasses.replace(STILL, frames=0)
        )
    one = generate_6d(
        StillStub("width"), autoencoder, encoders, image, "", dataclasses.replace(STILL, frames=1)
    )
    assert one.rgb.shape == (1, HEIGHT, WIDTH, 3)


# --- End to end: a briefly trained micro model, a held-out synthetic first frame, every output file ---

HELD_OUT = 777  # a data-set seed no training or validation clip of the tests uses


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint of the tiny preset (1 layer, 5 frames) after a few steps, and a held-out first frame."""
    root = tmp_path_factory.mktemp("generate")
    overrides = [
        f'data.root="{root}/data/train"', f'data.val_root="{root}/data/val"', "data.synthetic_train=4",
        "data.synthetic_val=1", "data.num_frames=5", "model.num_layers=1", f'train.out="{root}/run"',
        "train.steps=3", "train.batch_size=2", "train.micro_batch_size=2", "train.warmup_steps=1",
        "train.val_every=3", "train.save_every=3", "lora.train_base=[]",  # adapters only, as the release
    ]  # fmt: skip
    config = tiny_config(*overrides)
    train(config, progress=False)
    scene = make_scene(clip_seed(HELD_OUT, 0), num_frames=5, height=32, width=48)
    image = root / "first_frame.png"
    iio.imwrite(image, scene.rgb[0])
    return root / "run", image, scene


def generate_into(trained, out, **sampling):
    run, image, _ = trained
    inference = load_inference(run)
    settings = dataclasses.replace(
        inference.config.sampling, **({"steps": 4, "guidance": 5.0, "seed": 42} | sampling)
    )
    inputs = check_inputs(inference.config, image, out, sampling=settings, overwrite=True)
    return run_generation(inference, inputs, progress=False)


def test_generation_writes_every_output_with_its_documented_shapes(trained, tmp_path):
    report = generate_into(trained, tmp_path)
    names = {str(p.relative_to(tmp_path)) for p in report.files}
    expected = {"rgb.mp4", "xyz.mp4", "sixd.npz", "cameras.json", "depth.npz", "recovery.png"}
    expected |= {"novel_view.mp4", "novel_cameras.json", "preview.png", "scene.rrd"}
    expected |= {f"points/frame_{k:04d}.ply" for k in range(5)}
    assert names == expected and all((tmp_path / n).stat().st_size > 0 for n in names)
    six = np.load(tmp_path / "sixd.npz")
    assert six["rgb"].dtype == np.uint8 and six["rgb"].shape == (5, 16, 24, 3)  # the tiny preset's area
    assert six["xyz"].dtype == np.float32 and six["xyz"].shape == (5, 16, 24, 3)
    cameras = json.loads((tmp_path / "cameras.json").read_text())
    assert len(cameras["frames"]) == 5 and np.asarray(cameras["K"]).shape == (3, 3)
    assert np.load(tmp_path / "depth.npz")["depth"].shape == (5, 16, 24)
    assert iio.imread(tmp_path / "novel_view.mp4").shape[0] == 5
    assert "resized to 16×24" in " ".join(report.notes)


def test_same_seed_gives_identical_outputs_and_another_seed_does_not(trained, tmp_path):
    generate_into(trained, tmp_path / "a")
    generate_into(trained, tmp_path / "b")
    generate_into(trained, tmp_path / "c", seed=7)
    a, b, c = (np.load(tmp_path / k / "sixd.npz") for k in "abc")
    assert np.array_equal(a["xyz"], b["xyz"]) and np.array_equal(a["rgb"], b["rgb"])
    assert not np.array_equal(a["xyz"], c["xyz"])
    assert (tmp_path / "a" / "cameras.json").read_text() == (tmp_path / "b" / "cameras.json").read_text()


def test_point_clouds_read_back_with_plyfile_give_the_generated_points_and_colours(trained, tmp_path):
    generate_into(trained, tmp_path)
    six = np.load(tmp_path / "sixd.npz")
    for k in range(5):
        vertex = PlyData.read(str(tmp_path / "points" / f"frame_{k:04d}.ply"))["vertex"]
        points = np.stack([vertex["x"], vertex["y"], vertex["z"]], -1)
        colours = np.stack([vertex["red"], vertex["green"], vertex["blue"]], -1)
        finite = np.isfinite(six["xyz"][k]).all(-1)
        assert np.array_equal(points, six["xyz"][k][finite]) and np.array_equal(
            colours, six["rgb"][k][finite]
        )


def test_memory_modes_give_the_same_video(trained, tmp_path):
    """Model offloading and diffusers' group offloading (on the CPU here) change where weights live, not results."""
    run, image, scene = trained
    videos = {}
    for mode in OFFLOAD_MODES:
        inference = place(load_inference(run), "cpu", mode)
        videos[mode] = generate_6d(
            inference.model, inference.autoencoder, inference.encoders, resize_image(load_image(image)[0], 16, 24),
            "", SamplingConfig(frames=5, steps=2), offload=mode,
        )  # fmt: skip
    for mode in OFFLOAD_MODES[1:]:
        torch.testing.assert_close(videos[mode].xyz, videos["none"].xyz, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown offload mode"):
        place(load_inference(run), "cpu", "disk")


def test_the_release_layout_loads_the_same_adapters(trained, tmp_path):
    """The 4DNeX release folder: the diffusers LoRA file without metadata + a pickled (2, D) tensor."""
    run, _, _ = trained
    ours = load_inference(run)
    lora, domain = ours.model.adapter_state()
    WanLoraLoaderMixin.save_lora_weights(tmp_path, transformer_lora_layers=lora)
    torch.save(domain, tmp_path / RELEASE_DOMAIN_FILE)
    fresh = load_inference(run).model
    with torch.no_grad():  # forget the trained adapters: the outputs change ...
        for name, parameter in fresh.named_parameters():
            if "lora_B" in name or "domain_embedding" in name:
                parameter.zero_()
    inputs = micro_inputs(ours)
    assert not torch.equal(fresh(*inputs), ours.model(*inputs))
    fresh.load_adapters(tmp_path)  # ... and come back exactly from the release layout
    assert torch.equal(fresh(*inputs), ours.model(*inputs))
    torch.save({"transformer.learnable_domain_embeddings": domain}, tmp_path / RELEASE_DOMAIN_FILE)
    fresh.load_adapters(tmp_path)  # the dict form of the file loads too
    with pytest.raises(ValueError, match="without a config"):
        load_inference(tmp_path)


def test_a_hand_written_release_folder_loads_with_the_releases_scale(tmp_path):
    """The release's files written by hand, not by our own saver: a diffusers LoRA file with peft names and no
    alpha metadata (the public trainer's `save_lora_weights`), and `learnable_domain_embeddings.pt` as a raw
    pickled (2, D) tensor (what its inference `torch.load`s). Trained with r = 64, alpha = 32 and fused with
    `lora_scale=0.5`, each adapted linear computes W·x + 0.5·B·A·x."""
    from safetensors.torch import save_file

    config = tiny_config(
        "model.num_layers=1", "lora.rank=64", "lora.alpha=32", "lora.ffn=false", "lora.train_base=[]"
    )
    model = build_model(config, latent_channels=12)
    dim, rank, g = model.transformer.config.num_attention_heads * 32, 64, torch.Generator().manual_seed(0)
    lora = {}
    for attention in ("attn1", "attn2"):
        for projection in ("to_q", "to_k", "to_v", "to_out.0"):
            key = f"transformer.blocks.0.{attention}.{projection}"
            lora[f"{key}.lora_A.weight"] = torch.randn(rank, dim, generator=g) * 0.1
            lora[f"{key}.lora_B.weight"] = torch.randn(dim, rank, generator=g) * 0.1
    save_file(lora, str(tmp_path / LORA_FILE))
    domain = torch.randn(2, dim, generator=g)
    torch.save(domain, tmp_path / RELEASE_DOMAIN_FILE)
    model.load_adapters(tmp_path)
    assert torch.equal(model.transformer.domain_embedding.weight, domain)
    linear = model.transformer.blocks[0].attn2.to_v
    x = torch.randn(3, dim, generator=g)
    A, B = (
        lora["transformer.blocks.0.attn2.to_v.lora_A.weight"],
        lora["transformer.blocks.0.attn2.to_v.lora_B.weight"],
    )
    with torch.no_grad():
        torch.testing.assert_close(
            linear(x), linear.base_layer(x) + 0.5 * x @ A.T @ B.T, rtol=1e-5, atol=1e-5
        )
    del lora["transformer.blocks.0.attn1.to_k.lora_B.weight"]
    save_file(lora, str(tmp_path / LORA_FILE))
    with pytest.raises(ValueError, match="lacks LoRA weights this model has"):
        model.load_adapters(tmp_path)


def micro_inputs(inference):
    """Model inputs of a checkpoint's shapes, through its own autoencoder and encoders."""
    g = torch.Generator().manual_seed(0)
    video = torch.rand(1, 3, 5, 16, 24, generator=g) * 2 - 1
    rgb, xyz = inference.autoencoder.encode_rgb(video), inference.autoencoder.encode_xyz(video)
    latent = fuse(rgb, xyz, "width")
    mask = guided_mask(5, *rgb.shape[-2:], "width")
    text = inference.encoders.encode_text(["a red ball"])
    image = inference.encoders.encode_image(video[:, :, 0])
    return torch.randn(latent.shape, generator=g), torch.tensor([0.3]), mask, latent, text, image


# --- Bad input through the CLI: one line, non-zero exit, no traceback ---


def cli(*args):
    result = CliRunner().invoke(app, ["generate", *map(str, args)])
    return result.exit_code, result.output  # stdout and stderr together


def image_file(path, array):
    iio.imwrite(path, array)
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no image file"),
        ("garbage", "cannot read"),
        ("tiny", "at least 16 pixels"),
        ("other config", "another config: model.num_layers"),
        ("missing model dir", "does not exist"),
        ("offload", "unknown offload mode"),
        ("device", "unknown device"),
    ],
)
def test_each_bad_input_gives_its_one_line_message(trained, tmp_path, case, message):
    run, image, _ = trained
    args = [image, "--checkpoint", run, "--out", tmp_path / "out", "--steps", "1", "--device", "cpu"]
    if case == "missing":
        args[0] = tmp_path / "nothing.png"
    elif case == "garbage":
        args[0] = tmp_path / "garbage.png"
        args[0].write_bytes(b"not an image at all")
    elif case == "tiny":
        args[0] = image_file(tmp_path / "tiny.png", np.zeros((8, 8, 3), np.uint8))
    elif case == "other config":
        args += ["--config", "tiny"]  # the preset has 4 layers, the checkpoint 1
    elif case == "missing model dir":
        args += ["--model-dir", tmp_path / "no_such_wan"]
    elif case == "offload":
        args += ["--offload", "disk"]
    elif case == "device":
        args += ["--device", "toaster"]
    code, output = cli(*args)
    assert code != 0 and message in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1


def test_an_image_over_the_pixel_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("nanofourdnex.reading.MAX_IMAGE_PIXELS", 1000)
    path = image_file(tmp_path / "big.png", np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(ValueError, match="at most 1,000 pixels"):
        load_image(path)


@pytest.mark.parametrize(
    ("kind", "note"),
    [("rgba", "RGBA composited over white"), ("grey", "greyscale image"), ("16-bit", "16-bit image")],
)
def test_rgba_greyscale_and_16_bit_images_are_converted_with_a_note(trained, tmp_path, kind, note):
    run, _, scene = trained
    rgb = scene.rgb[0]
    array = {
        "rgba": np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], -1),
        "grey": rgb.mean(-1).astype(np.uint8),
        "16-bit": rgb.astype(np.uint16) * 257,
    }[kind]
    path = image_file(
        tmp_path / f"{kind}.{'tif' if kind == '16-bit' else 'png'}", array
    )  # PNG writers stop at 8-bit RGB
    code, output = cli(
        path, "--checkpoint", run, "--out", tmp_path / "out", "--steps", "1", "--device", "cpu"
    )
    assert code == 0 and f"note: {note}" in output, output
    converted, _ = load_image(path)
    expected = np.repeat(array[..., None], 3, -1) if kind == "grey" else rgb
    torch.testing.assert_close(converted, torch.from_numpy(expected / 255.0).float().permute(2, 0, 1) * 2 - 1)
