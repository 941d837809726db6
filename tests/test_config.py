"""Config layering: paper defaults, presets, overrides, errors. Spec: specs/model.md"""

import json

import pytest

from nanofourdnex.config import load_config


def test_defaults_are_the_papers_full_run():
    c = load_config()
    assert (c.train.batch_size, c.train.lr, c.train.steps) == (32, 1e-4, 5000)
    assert (c.lora.rank, c.lora.alpha) == (64, 32)
    assert c.lora.targets == ("to_q", "to_k", "to_v", "to_out.0")
    assert (c.data.num_frames, c.data.height, c.data.width) == (49, 480, 720)
    assert (c.autoencoder.xyz_mean, c.autoencoder.xyz_std) == (-0.13, 1.70)
    assert c.model.fusion == "width" and c.conditioning.text_len == 512


def test_preset_then_overrides_win_in_order(tmp_path):
    c = load_config("tiny", ["train.steps=7", "model.fusion=height", "lora.targets=['to_q']"])
    assert c.train.steps == 7 and c.model.fusion == "height" and c.lora.targets == ("to_q",)
    assert c.autoencoder.kind == "pixel"  # from the preset
    c.save(tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text())["train"]["steps"] == 7


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.stpes=3", "unknown config key train.stpes"),
        ("trian.steps=3", "unknown config section"),
        ("train.steps=three", "train.steps must be int"),
        ("train.bf16=1", "train.bf16 must be bool"),
        ("train.steps=true", "train.steps must be int"),
        ("train.lr=false", "train.lr must be float"),
        ("steps=3", "section.key=value"),
    ],
)
def test_unknown_keys_and_wrong_types_are_errors(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_missing_or_malformed_preset_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps = 1")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_config(bad)


def test_presets_that_extend_each_other_in_a_circle_are_an_error(tmp_path):
    (tmp_path / "loop.toml").write_text('extends = "loop.toml"\n[train]\nsteps = 3\n')
    with pytest.raises(ValueError, match="in a circle"):
        load_config(tmp_path / "loop.toml")
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    with pytest.raises(ValueError, match=r"circle \(a.toml → b.toml → a.toml\)"):
        load_config(tmp_path / "a.toml")
    (tmp_path / "c.toml").write_text('extends = "tiny"\n[train]\nsteps = 3\n')  # a chain, not a circle
    (tmp_path / "d.toml").write_text('extends = "c.toml"\n[train]\nlr = 0.5\n')
    config = load_config(tmp_path / "d.toml")
    assert (config.train.steps, config.train.lr, config.autoencoder.kind) == (3, 0.5, "pixel")
