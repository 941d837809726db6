"""Training: Eq. 5-6 on cached 6D latents, exact kill-and-resume, atomic safetensors checkpoints.

Spec: specs/training.md
"""

import csv
import json
import math
from functools import partial

import pytest
import torch
from safetensors.torch import load_file, save_file

from nanofourdnex.cache import LatentCache
from nanofourdnex.checkpoint import OPTIMIZER_FILE, RANDOM_INIT_FILE, STATE_FILE
from nanofourdnex.generate import load_inference
from nanofourdnex.model import DOMAIN_FILE, LORA_FILE, TRAINED_BASE_FILE, build_model
from nanofourdnex.paper.mask import guided_mask
from nanofourdnex.train import (
    VALIDATION_SEED,
    batch_loss,
    make_optimizer,
    noise_shape,
    step_draws,
    step_generator,
    train,
    training_step,
    validation_loss,
)
from tests.strategies import tiny_config


def micro_config(tmp_path, run: str, **train):
    """The tiny preset, smaller still: a few seconds per run."""
    overrides = [
        f'data.root="{tmp_path}/data/train"', f'data.val_root="{tmp_path}/data/val"', "data.synthetic_train=6",
        "data.synthetic_val=2", "data.num_frames=5", "model.num_layers=1", f'train.out="{tmp_path}/{run}"',
        "train.batch_size=2", "train.micro_batch_size=1", "train.warmup_steps=2", "train.log_every=1",
    ]  # fmt: skip
    overrides += [f"train.{k}={v}" for k, v in train.items()]
    return tiny_config(*overrides)


def rows(run_dir):
    return list(csv.DictReader((run_dir / "metrics.csv").open()))


def test_killed_and_resumed_run_reproduces_the_uninterrupted_losses_exactly(tmp_path):
    straight = train(micro_config(tmp_path, "straight", steps=6, val_every=2, save_every=2), progress=False)
    config = micro_config(tmp_path, "resumed", steps=6, val_every=2, save_every=2)
    train(config, progress=False, stop_after=3)  # "killed" after step 3 (checkpoint at 3)
    resumed = train(config, resume=True, progress=False)
    for a, b in zip(rows(straight.out), rows(resumed.out), strict=True):
        assert (a["step"], a["train_loss"], a["val_loss"], a["lr"]) == (
            b["step"],
            b["train_loss"],
            b["val_loss"],
            b["lr"],
        )
    assert resumed.final_val_loss == straight.final_val_loss


def test_checkpoints_are_safetensors_and_json_written_atomically(tmp_path):
    config = micro_config(tmp_path, "run", steps=4, val_every=4, save_every=1)
    config.lora.train_base = ("proj_out",)  # a random base (no model_dir) with part of it trained in full
    result = train(config, progress=False)
    checkpoints = sorted((result.out / "checkpoints").iterdir())
    assert [c.name for c in checkpoints] == ["step_0000003", "step_0000004"]  # the last two are kept
    assert (result.out / "latest").read_text().strip() == "step_0000004"
    files = {p.name for p in checkpoints[-1].iterdir()}
    weights = {LORA_FILE, DOMAIN_FILE, TRAINED_BASE_FILE, OPTIMIZER_FILE, RANDOM_INIT_FILE}
    assert files == weights | {STATE_FILE, "config.json"}
    for name in weights:
        assert load_file(str(checkpoints[-1] / name))  # loads without pickle
    assert json.loads((checkpoints[-1] / STATE_FILE).read_text())["step"] == 4
    assert not list(result.out.rglob("*.tmp"))
    assert (result.out / "loss.png").stat().st_size > 0


def test_a_checkpoint_rebuilds_the_trained_network_for_inference(tmp_path):
    result = train(micro_config(tmp_path, "run", steps=3, val_every=3, save_every=3), progress=False)
    inference = load_inference(result.out)
    lora = load_file(str(result.out / "checkpoints" / "step_0000003" / LORA_FILE))
    state = {
        f"transformer.{k}": v for k, v in inference.model.transformer.state_dict().items() if "lora_" in k
    }
    renamed = {k.replace(".default", ""): v for k, v in state.items()}
    assert set(renamed) == set(lora) and all(torch.equal(renamed[k], lora[k]) for k in lora)
    assert inference.model.transformer.domain_embedding.weight.abs().sum() > 0  # trained, not re-initialised


def test_training_lowers_the_held_out_loss(tmp_path):
    result = train(micro_config(tmp_path, "run", steps=40, val_every=40, save_every=40), progress=False)
    assert result.final_val_loss < 0.9 * result.initial_val_loss


def test_every_random_draw_of_a_step_is_a_function_of_seed_and_step():
    a, b = step_generator(1, 5), step_generator(1, 5)
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    assert not torch.equal(
        torch.rand(4, generator=step_generator(1, 6)), torch.rand(4, generator=step_generator(1, 5))
    )


def test_batch_must_divide_into_micro_batches(tmp_path):
    with pytest.raises(ValueError, match="multiple of train.micro_batch_size"):
        train(micro_config(tmp_path, "run", batch_size=3, micro_batch_size=2), progress=False)


# --- The wiring of one step: Eq. 5-6 built by hand around a recording stub ---


class RecordingVelocity(torch.nn.Module):
    """FourDNeX's call signature: records its inputs and answers a fixed function of x_t and t."""

    strategy = "width"

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x_t, t, mask, condition, text, image):
        self.calls.append(
            {"x_t": x_t, "t": t, "mask": mask, "condition": condition, "text": text, "image": image}
        )
        return 0.5 * x_t + t.view(-1, 1, 1, 1, 1)


def random_batch(
    batch: int, seed: int, z: int = 12, f: int = 2, h: int = 4, w: int = 6
) -> dict[str, torch.Tensor]:
    """Cache-shaped tensors: targets per modality, the width-fused condition, text and image states."""
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "rgb": (z, f, h, w),
        "xyz": (z, f, h, w),
        "cond": (z, f, h, 2 * w),
        "text": (512, 32),
        "image": (17, 32),
    }
    return {key: torch.randn(batch, *shape, generator=g) for key, shape in shapes.items()}


def test_batch_loss_is_eq5_and_eq6_with_condition_mask_and_embeddings_in_their_places():
    batch, stub = random_batch(2, 0), RecordingVelocity()
    noise = torch.randn(2, 12, 2, 4, 12, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0.25, 0.8])
    loss = batch_loss(stub, batch, noise, t)
    x1 = torch.cat([batch["rgb"], batch["xyz"]], dim=-1)  # RGB | XYZ along the width
    x_t = (1 - t.view(-1, 1, 1, 1, 1)) * noise + t.view(-1, 1, 1, 1, 1) * x1  # Eq. 5, noise at t = 0
    u = 0.5 * x_t + t.view(-1, 1, 1, 1, 1)
    mask = torch.zeros(2, 4, 2, 4, 12)
    mask[:, :, 0, :, :6], mask[:, :, 0, :, 6:] = 1.0, 0.5  # Eq. 10: known RGB frame 0, half-known XYZ frame 0
    (call,) = stub.calls
    torch.testing.assert_close(call["x_t"], x_t)
    assert torch.equal(call["t"], t) and torch.equal(call["mask"], mask)
    assert torch.equal(call["condition"], batch["cond"])
    assert torch.equal(call["text"], batch["text"]) and torch.equal(call["image"], batch["image"])
    torch.testing.assert_close(loss, ((u - (x1 - noise)) ** 2).mean())  # Eq. 6: target x1 − x0


def write_cache(folder, clips: int) -> LatentCache:
    folder.mkdir()
    for index in range(clips):
        save_file(
            {k: v[0] for k, v in random_batch(1, 100 + index).items()},
            str(folder / f"clip_{index:05d}.safetensors"),
        )
    return LatentCache(sorted(folder.glob("*.safetensors")))


def step_gradients(model, data, config) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = training_step(
        partial(batch_loss, model), model.strategy, data, config, step=3, device=torch.device("cpu")
    )
    return loss, [p.grad.clone() for p in model.trainable_parameters()]


def test_the_step_gives_the_global_batch_mean_loss_and_gradient_for_every_micro_batch_size(tmp_path):
    config = tiny_config("model.num_layers=1", "train.batch_size=4", "data.num_frames=5")
    data = write_cache(tmp_path / "cache", 5)
    model = build_model(config, latent_channels=12, seed=0)
    with torch.no_grad():  # trained-looking adapters: every trainable tensor gets a gradient
        for name, parameter in model.named_parameters():
            if "lora_B" in name or "domain_embedding" in name:
                parameter.normal_(0, 0.02, generator=torch.Generator().manual_seed(len(name)))
    indices, noise, t = step_draws(data, config, 3, "width")
    with torch.no_grad():
        whole = batch_loss(model, data.batch(indices.tolist()), noise, t)  # one pass over the global batch
    losses, gradients = {}, {}
    for micro in (1, 2, 4):
        config.train.micro_batch_size = micro
        losses[micro], gradients[micro] = step_gradients(model, data, config)
    for micro in (1, 2):
        torch.testing.assert_close(losses[micro], losses[4], rtol=1e-5, atol=1e-6)
        for a, b in zip(gradients[micro], gradients[4], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(losses[4], whole, rtol=1e-5, atol=1e-6)
    assert all(g.abs().sum() > 0 for g in gradients[1])


@pytest.mark.parametrize(("strategy", "width"), [("width", 12), (None, 6)])  # None: RGB alone (pretraining)
def test_validation_loss_averages_every_held_out_clip_at_the_fixed_times_with_fixed_noise(
    tmp_path, strategy, width
):
    config = tiny_config("train.val_times=[0.25, 0.75]", "train.bf16=false")
    data = write_cache(tmp_path / "cache", 3)
    calls = []

    def loss(batch, noise, t):  # a matmul: autocast would run it in bf16, which train.bf16=false forbids
        calls.append((batch, noise, t))
        return (noise.flatten(1) @ noise.flatten(1).T).mean() + t.sum()

    value = validation_loss(loss, strategy, data, config, torch.device("cpu"))
    expected = []
    for index in range(3):
        generator = torch.Generator().manual_seed(VALIDATION_SEED + index)  # clip i's own fixed noise
        noise = torch.randn((1, 12, 2, 4, width), generator=generator)
        for t, (batch, seen_noise, seen_t) in zip(
            (0.25, 0.75), calls[2 * index : 2 * index + 2], strict=True
        ):
            assert torch.equal(batch["rgb"], data.batch([index])["rgb"]) and torch.equal(seen_noise, noise)
            assert torch.equal(seen_t, torch.tensor([t]))
            expected.append(((noise.flatten(1) @ noise.flatten(1).T).mean() + t).item())
    assert len(calls) == 6 and type(value) is float
    assert value == pytest.approx(sum(expected) / 6, rel=1e-12)


def test_batch_loss_fuses_target_and_mask_with_the_models_strategy():
    stub, g = RecordingVelocity(), torch.Generator().manual_seed(0)
    stub.strategy = "height"
    batch = random_batch(2, 0)
    batch["cond"] = torch.randn(2, 12, 2, 8, 6, generator=g)  # height-fused condition (z, f, 2h, w)
    assert noise_shape({k: v[0] for k, v in batch.items()}, "height") == (12, 2, 8, 6)
    batch_loss(stub, batch, torch.randn(2, 12, 2, 8, 6, generator=g), torch.tensor([0.25, 0.8]))
    (call,) = stub.calls
    assert call["x_t"].shape == (2, 12, 2, 8, 6)
    assert torch.equal(call["mask"], guided_mask(5, 4, 6, "height").expand(2, -1, -1, -1, -1))


def test_the_shares_of_every_process_add_up_to_the_global_step(tmp_path):
    """Under torchrun rank r of a world of 2 takes samples r, r + 2, …: the two shares sum to one process's step."""
    config = tiny_config(
        "model.num_layers=1", "train.batch_size=4", "train.micro_batch_size=1", "data.num_frames=5"
    )
    data = write_cache(tmp_path / "cache", 5)
    model = build_model(config, latent_channels=12, seed=0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name or "domain_embedding" in name:
                parameter.normal_(0, 0.02, generator=torch.Generator().manual_seed(len(name)))
    whole, whole_gradients = step_gradients(model, data, config)
    shares = []
    for rank in (0, 1):
        model.zero_grad(set_to_none=True)
        loss = training_step(
            partial(batch_loss, model), "width", data, config, 3, torch.device("cpu"), rank, 2
        )
        shares.append((loss, [p.grad.clone() for p in model.trainable_parameters()]))
    torch.testing.assert_close(shares[0][0] + shares[1][0], whole, rtol=1e-5, atol=1e-6)
    for a, b, c in zip(shares[0][1], shares[1][1], whole_gradients, strict=True):
        torch.testing.assert_close(a + b, c, rtol=1e-4, atol=1e-7)
    assert not torch.equal(shares[0][0], shares[1][0])  # different samples


def test_the_optimizer_is_adamw_with_a_linear_warmup_and_a_cosine_decay():
    settings = tiny_config(
        "train.lr=0.01",
        "train.warmup_steps=2",
        "train.steps=6",
        "train.weight_decay=0.1",
        "train.betas=[0.8, 0.9]",
    ).train
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer, schedule = make_optimizer([parameter], settings)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]["params"] == [parameter]
    assert (
        tuple(optimizer.param_groups[0]["betas"]) == (0.8, 0.9)
        and optimizer.param_groups[0]["weight_decay"] == 0.1
    )
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    # warm-up 0 → 0.01 over 2 steps, then a half cosine from 0.01 to 0 over the other 4
    expected = [0.0, 0.005] + [0.01 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(4)]
    assert rates == pytest.approx(expected, abs=1e-15)


def test_a_cached_clip_holds_its_targets_condition_and_triggered_caption_embeddings():
    from nanofourdnex.autoencoder import PixelShuffleAutoencoder, SixDAutoencoder
    from nanofourdnex.cache import encode_sample
    from nanofourdnex.conditioning import build_encoders
    from tests.test_conditioning import sloped_plane_by_hand

    g = torch.Generator().manual_seed(3)
    rgb, xyz = torch.rand(3, 5, 8, 12, generator=g) * 2 - 1, torch.rand(3, 5, 8, 12, generator=g) * 2 - 1
    autoencoder = SixDAutoencoder(PixelShuffleAutoencoder(2), xyz_mean=0.3, xyz_std=2.0)
    encoders = build_encoders(tiny_config())
    entry = encode_sample(rgb, xyz, "a blue box slides left", autoencoder, encoders, "width")
    encode = autoencoder.base.encode
    torch.testing.assert_close(entry["rgb"], encode(rgb[None])[0])
    torch.testing.assert_close(entry["xyz"], (encode(xyz[None])[0] - 0.3) / 2.0)  # Eq. 8 on the target only
    panel = torch.cat([rgb[:, 0], sloped_plane_by_hand(8, 12)], dim=2)  # [I_0 | X^init]
    video = torch.cat([panel[:, None], torch.zeros(3, 4, 8, 24)], dim=1)
    torch.testing.assert_close(entry["cond"], encode(video[None])[0])
    torch.testing.assert_close(
        entry["text"], encoders.encode_text(["a blue box slides left POINTMAP_STYLE."])[0]
    )
    torch.testing.assert_close(entry["image"], encoders.encode_image(rgb[None, :, 0])[0])
