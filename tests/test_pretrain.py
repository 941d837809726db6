"""The tiny base: Wan's I2V objective from scratch, and the shipped model folder it produced.

Spec: specs/pretraining.md
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from nanofourdnex.autoencoder import build_autoencoder, first_frame_video
from nanofourdnex.conditioning import build_encoders
from nanofourdnex.config import PRESET_DIR, load_config
from nanofourdnex.model import build_transformer
from nanofourdnex.pretrain import SyntheticVideos, check_manifest, export_pretrained, i2v_loss, pretrain
from nanofourdnex.synthetic import CAMERA_TURNS, clip_seed, make_scene

SHIPPED = PRESET_DIR.parent / "pretrained" / "tiny-wan-i2v"


def micro(tmp_path: Path, *extra: str):
    overrides = [
        "model.num_layers=1", "data.num_frames=5", "data.synthetic_train=16", "data.synthetic_val=4",
        "train.steps=30", "train.batch_size=4", "train.micro_batch_size=4", "train.warmup_steps=3",
        "train.val_every=30", "train.save_every=15", "train.log_every=5", f'train.out="{tmp_path}/pre"', *extra,
    ]  # fmt: skip
    return load_config("pretrain", overrides)


class RecordingDiT(torch.nn.Module):
    """A stand-in for WanTransformer3DModel's call: records the input and returns a fixed function of it."""

    def __init__(self, z: int):
        super().__init__()
        self.patch_embedding = torch.nn.Conv3d(1, 1, 1)  # wan_velocity reads its dtype
        self.z, self.calls = z, []

    def forward(self, hidden, timestep, encoder_hidden_states, encoder_hidden_states_image, return_dict):
        self.calls.append((hidden, timestep, encoder_hidden_states, encoder_hidden_states_image))
        return (0.25 * hidden[:, : self.z],)


def test_the_pretraining_loss_is_wans_i2v_objective_in_paper_time():
    config = load_config("pretrain", ["data.num_frames=5"])
    autoencoder, encoders = build_autoencoder(config), build_encoders(config)
    data = SyntheticVideos(config, autoencoder, encoders, seed=5, count=2)
    batch = data.batch([0, 1])
    scene = make_scene(clip_seed(5, 1), 5, config.data.height, config.data.width)
    video = torch.from_numpy(scene.rgb).permute(3, 0, 1, 2).float() / 127.5 - 1  # (3, T, H, W)
    torch.testing.assert_close(batch["rgb"][1], autoencoder.base.encode(video[None])[0])  # x1: no Eq. 8
    torch.testing.assert_close(
        batch["cond"][1], autoencoder.base.encode(first_frame_video(video[None, :, 0], 5))[0]
    )
    torch.testing.assert_close(
        batch["text"][1], encoders.encode_text([scene.caption])[0], atol=1e-3, rtol=1e-3
    )
    assert data.captions[1] == scene.caption and len(data.captions) == 2
    z = batch["rgb"].shape[1]
    stub, t = RecordingDiT(z), torch.tensor([0.2, 0.9])
    noise = torch.randn_like(batch["rgb"])
    loss = i2v_loss(stub, batch, noise, t)
    ((hidden, timestep, text, image),) = stub.calls
    x_t = (1 - t.view(-1, 1, 1, 1, 1)) * noise + t.view(-1, 1, 1, 1, 1) * batch["rgb"]
    mask = torch.zeros(2, 4, *batch["rgb"].shape[2:])
    mask[:, :, 0] = 1.0  # Wan I2V: the first frame (four copies in latent frame 0) is known
    torch.testing.assert_close(hidden, torch.cat([x_t, mask, batch["cond"]], dim=1))
    torch.testing.assert_close(timestep, 1000 * (1 - t))
    assert torch.equal(text, batch["text"]) and torch.equal(image, batch["image"])
    u = -0.25 * x_t  # the stub's v_σ, turned into paper time
    torch.testing.assert_close(loss, ((u - (batch["rgb"] - noise)) ** 2).mean())


def test_a_pool_with_a_fixed_camera_turn_is_the_same_scenes_with_every_orbit_one_way():
    config = load_config("pretrain", ["data.num_frames=5"])
    autoencoder, encoders = build_autoencoder(config), build_encoders(config)
    drawn = SyntheticVideos(config, autoencoder, encoders, seed=5, count=4)
    pools = {turn: SyntheticVideos(config, autoencoder, encoders, 5, 4, camera_turn=turn) for turn in (-1, 1)}
    for turn, pool in pools.items():
        direction = CAMERA_TURNS[(turn + 1) // 2]
        assert all(direction in caption for caption in pool.captions)
        for i in (0, 3):
            scene = make_scene(clip_seed(5, i), 5, config.data.height, config.data.width, camera_turn=turn)
            assert torch.equal(pool.videos[i], torch.from_numpy(scene.rgb))
    assert torch.equal(pools[-1].videos[:, 0], pools[1].videos[:, 0])  # twins: the same first frames
    assert not torch.equal(pools[-1].videos[:, 1:], pools[1].videos[:, 1:])
    for i, caption in enumerate(drawn.captions):  # the drawn pool is one of the two, scene by scene
        turn = 1 if CAMERA_TURNS[1] in caption else -1
        assert torch.equal(drawn.videos[i], pools[turn].videos[i]) and caption == pools[turn].captions[i]


def test_a_few_pretraining_steps_from_scratch_lower_the_held_out_loss_and_resume_exactly(tmp_path):
    straight = pretrain(micro(tmp_path), progress=False)
    assert straight.final_val_loss < 0.8 * straight.initial_val_loss
    killed = micro(tmp_path, f'train.out="{tmp_path}/killed"')
    pretrain(killed, progress=False, stop_after=15)
    resumed = pretrain(killed, resume=True, progress=False)
    assert resumed.final_val_loss == straight.final_val_loss
    folder = export_pretrained(straight.out, tmp_path / "model", "a test")
    manifest = check_manifest(folder)
    assert manifest["steps"] == 30 and manifest["command"] == "a test"
    (folder / "transformer" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="does not match its manifest"):
        check_manifest(folder)


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="the shipped tiny base is not in this checkout")
def test_the_shipped_base_matches_its_manifest_and_the_tiny_preset_and_loads_like_the_14b_model():
    manifest = check_manifest(SHIPPED)
    assert (
        manifest["bytes"] <= 10_000_000
        and manifest["commit"]
        and manifest["command"].startswith("nano4d pretrain")
    )
    tiny = load_config("tiny")
    assert Path(tiny.model.model_dir) == SHIPPED.resolve()  # `train --tiny` loads this folder ...
    transformer = build_transformer(
        tiny.model, build_autoencoder(tiny).latent_channels
    )  # ... by from_pretrained
    config = json.loads((SHIPPED / "transformer" / "config.json").read_text())
    assert config["_class_name"] == "WanTransformer3DModel" and config["num_layers"] == tiny.model.num_layers
    encoders = build_encoders(tiny)  # tokenizer/, text_encoder/, image_encoder/, image_processor/
    assert encoders.encode_text(["a red ball"]).shape == (1, 512, tiny.model.text_dim)
    assert not any(p.requires_grad for p in encoders.text_encoder.parameters())
    assert sum(p.numel() for p in transformer.parameters()) == manifest["parameters"]


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="the shipped tiny base is not in this checkout")
def test_train_tiny_is_the_papers_recipe_on_the_shipped_base():
    """Base frozen and loaded unchanged; only LoRA on the attention projections and the domain embeddings train."""
    from safetensors.torch import load_file

    from nanofourdnex.model import build_model

    tiny = load_config("tiny")
    assert tiny.lora.train_base == () and not tiny.lora.ffn
    model = build_model(tiny, build_autoencoder(tiny).latent_channels)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    lora = re.compile(r"\.attn[12]\.(to_q|to_k|to_v|to_out\.0)\.lora_[AB]\.default\.weight$")
    assert trainable and all(lora.search(name) or "domain_embedding" in name for name in trainable)
    assert any("attn1" in name for name in trainable) and any("attn2" in name for name in trainable)
    shipped = load_file(str(SHIPPED / "transformer" / "diffusion_pytorch_model.safetensors"))
    base = {
        name.replace("transformer.", "", 1).replace(".base_layer", ""): p
        for name, p in model.named_parameters()
        if not p.requires_grad
    }
    assert set(shipped) <= set(base)  # every pretrained weight is in the model, frozen ...
    assert all(torch.equal(base[name], value) for name, value in shipped.items())  # ... and unchanged


def test_a_resumed_pretraining_replaces_its_own_model_folder_and_no_other(tmp_path):
    from typer.testing import CliRunner

    from nanofourdnex.cli import app

    small = ["data.synthetic_train=4", "data.synthetic_val=1", "data.num_frames=5", "model.num_layers=1"]
    args = ["pretrain", "--tiny", "--out", str(tmp_path / "pre"), *(a for o in small for a in ("--set", o))]
    run = CliRunner().invoke
    assert run(app, [*args, "--steps", "2"]).exit_code == 0
    assert check_manifest(tmp_path / "pre" / "model")["steps"] == 2
    result = run(app, [*args, "--steps", "3", "--resume"])  # OUT/model is the run's own: replaced
    assert result.exit_code == 0, result.output
    assert check_manifest(tmp_path / "pre" / "model")["steps"] == 3
    elsewhere = tmp_path / "exported"
    export_pretrained(tmp_path / "pre", elsewhere, "mine")
    result = run(app, [*args, "--steps", "4", "--resume", "--export", str(elsewhere)])
    assert result.exit_code == 2 and "choose another --export folder" in result.output
    assert check_manifest(elsewhere)["command"] == "mine"
    # a pretraining run is an RGB base, not a 6D model: generate says so (it named a missing file)
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "frame.png", make_scene(3, num_frames=1, height=16, width=24).rgb[0])
    result = run(
        app,
        [
            "generate",
            str(tmp_path / "frame.png"),
            "--checkpoint",
            str(tmp_path / "pre"),
            "--out",
            str(tmp_path / "g"),
        ],
    )
    assert result.exit_code == 2 and "is a pretraining checkpoint" in result.output, result.output
