"""The DiT's conditions c, c_txt, c_img as the public 4DNeX code computes them. Spec: specs/model.md"""

import numpy as np
import pytest
import torch
from diffusers import WanImageToVideoPipeline
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from transformers import UMT5EncoderModel

from nanofourdnex.autoencoder import PixelShuffleAutoencoder, SixDAutoencoder, WanAutoencoder
from nanofourdnex.conditioning import build_encoders, condition_latents
from nanofourdnex.config import load_config
from nanofourdnex.paper.fusion import split
from tests.strategies import randn, seeds, tiny_config
from tests.test_autoencoder import tiny_wan_vae

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])  # OpenAI CLIP, as every CLIP checkpoint ships it
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711])


def encoders():
    return build_encoders(tiny_config())


def sloped_plane_by_hand(height: int, width: int) -> torch.Tensor:
    """X^init (3, H, W) written out: x = 2j/(W−1) − 1, y = 2i/(H−1) − 1, z = 1 − 2i/(H−1)."""
    plane = torch.zeros(3, height, width)
    for i in range(height):
        for j in range(width):
            plane[:, i, j] = torch.tensor(
                [2 * j / (width - 1) - 1, 2 * i / (height - 1) - 1, 1 - 2 * i / (height - 1)]
            )
    return plane


# --- c: [I_0 | X^init] in pixel space, one encode, Wan standardisation only ---


def test_condition_is_what_diffusers_wan_pipeline_encodes_for_the_image_and_plane_side_by_side():
    """The public pipeline feeds Wan's own prepare_latents a 2W-wide first frame [I_0 | X^init]."""
    vae = tiny_wan_vae()
    height, width, frames = 16, 24, 5  # a non-square image
    image = randn((1, 3, height, width), 3).clamp(-1, 1)
    panel = torch.cat([image, sloped_plane_by_hand(height, width)[None]], dim=3)  # (1, 3, H, 2W)
    pipe = WanImageToVideoPipeline(
        tokenizer=None, text_encoder=None, image_encoder=None, image_processor=None, transformer=None,
        vae=vae, scheduler=None,
    )  # fmt: skip
    with torch.no_grad():
        _, stacked = pipe.prepare_latents(panel, 1, 4, height, 2 * width, frames, torch.float32, "cpu")
        ours = condition_latents(SixDAutoencoder(WanAutoencoder(vae)), image, frames, "width")
    torch.testing.assert_close(ours, stacked[:, 4:], rtol=1e-5, atol=1e-6)  # channels 0-3 are the mask


def test_condition_carries_no_eq8_and_pixel_fusion_is_not_latent_fusion():
    vae = tiny_wan_vae()
    image = randn((1, 3, 16, 24), 4).clamp(-1, 1)
    plain = SixDAutoencoder(WanAutoencoder(vae), xyz_mean=0.0, xyz_std=1.0)
    paper = SixDAutoencoder(WanAutoencoder(vae), xyz_mean=-0.13, xyz_std=1.70)
    with torch.no_grad():
        c = condition_latents(paper, image, 5, "width")
        torch.testing.assert_close(c, condition_latents(plain, image, 5, "width"))  # μ, σ do not touch c
        latent_fused = condition_latents(paper, image, 5, "frame")  # each panel encoded alone
    rgb_alone, _ = split(latent_fused, "frame")
    rgb_half, _ = split(c, "width")
    # The Wan VAE's mid-block attention spans the whole frame: the RGB half changes everywhere, not at the seam only.
    assert (rgb_half - rgb_alone)[
        ..., 0, :, 0
    ].abs().max() > 1e-4  # frame 0, the column farthest from the seam


@given(seeds, st.sampled_from(["frame", "height", "width"]))
def test_for_the_pixel_stand_in_every_strategy_sees_the_same_condition_halves(seed, strategy):
    """The ablation's premise: the stand-in encodes each pixel alone, so pixel and latent fusion agree."""
    ae = SixDAutoencoder(PixelShuffleAutoencoder(2), xyz_mean=0.5, xyz_std=2.0)
    image = randn((2, 3, 8, 12), seed).clamp(-1, 1)
    reference = split(condition_latents(ae, image, 5, "width"), "width")
    for half, expected in zip(
        split(condition_latents(ae, image, 5, strategy), strategy), reference, strict=True
    ):
        torch.testing.assert_close(half, expected)
    rgb_half = reference[0]
    torch.testing.assert_close(
        rgb_half, ae.base.encode(torch.cat([image[:, :, None], torch.zeros(2, 3, 4, 8, 12)], 2))
    )


def test_the_condition_is_width_fused_by_default_and_keeps_the_images_dtype():
    ae = SixDAutoencoder(PixelShuffleAutoencoder(2))
    image = randn((1, 3, 8, 12), 0) * 0.5
    assert torch.equal(condition_latents(ae, image, 5), condition_latents(ae, image, 5, "width"))
    assert condition_latents(ae, image.bfloat16(), 5).dtype == torch.bfloat16  # X^init follows the image


def test_condition_rejects_a_batch_of_videos():
    with pytest.raises(ValueError, match=r"image must be \(B, 3, H, W\)"):
        condition_latents(SixDAutoencoder(PixelShuffleAutoencoder(1)), torch.zeros(1, 3, 5, 4, 4), 5)


# --- c_txt: exactly 512 tokens, trigger words on the positive prompt only ---


def test_text_is_exactly_512_tokens_and_zero_after_the_prompt():
    enc = encoders()
    prompts = ["a red sphere", "a much longer caption about a blue box on a floor"]
    text = enc.encode_text(prompts)
    assert text.shape == (2, 512, 32)
    for row, prompt in enumerate(prompts):
        n = len(prompt.encode()) + 1  # bytes + end of sequence
        assert (text[row, :n].abs().sum(-1) > 0).all()
        assert (text[row, n:] == 0).all()


def test_text_states_are_the_umt5_encoder_states():
    enc = encoders()
    tokens = enc.tokenizer(["hello"], padding="max_length", max_length=512, return_tensors="pt")
    ids, mask = tokens.input_ids, tokens.attention_mask
    assert ids[0, :6].tolist() == [b + 3 for b in b"hello"] + [1]  # ByT5: bytes + 3, then end of sequence
    assert isinstance(enc.text_encoder, UMT5EncoderModel)
    expected = enc.text_encoder(ids, attention_mask=mask).last_hidden_state
    n = int(mask.sum())
    torch.testing.assert_close(enc.encode_text(["hello"])[0, :n], expected[0, :n])


def test_trigger_words_are_the_releases_suffix_and_encode_text_adds_nothing():
    enc = encoders()
    assert enc.triggered("a red ball") == "a red ball POINTMAP_STYLE."  # inference.py: prompt + ' ' + suffix
    assert enc.triggered("") == " POINTMAP_STYLE."
    assert not torch.equal(enc.encode_text(["a red ball"]), enc.encode_text([enc.triggered("a red ball")]))


# --- c_img: CLIPImageProcessor, then the penultimate hidden state ---


def clip_input_by_hand(image: np.ndarray, size: int) -> np.ndarray:
    """CLIP preprocessing of one uint8 (H, W, 3) image written out with PIL: bicubic resize of the shortest
    edge to `size`, central size × size crop, /255, OpenAI mean and std; (3, size, size)."""
    height, width = image.shape[:2]
    scale = size / min(height, width)
    resized = Image.fromarray(image).resize((round(width * scale), round(height * scale)), Image.BICUBIC)
    top, left = (resized.height - size) // 2, (resized.width - size) // 2
    cropped = np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.float64) / 255
    return ((cropped - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1)


def test_clip_input_is_the_processors_shortest_edge_resize_and_centre_crop():
    enc = encoders()
    size = enc.image_encoder.config.image_size
    frames = randn((2, 3, 16, 40), 0).clamp(-1, 1)  # 2 : 5, wider than the crop
    pixels = enc.clip_pixels(frames)
    assert pixels.shape == (2, 3, size, size)
    for frame, got in zip(frames, pixels, strict=True):
        image = ((frame + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        np.testing.assert_allclose(got.numpy(), clip_input_by_hand(image, size), atol=1e-5)


def test_image_embedding_is_the_penultimate_state_of_a_direct_clip_call():
    enc = encoders()
    frames = randn((2, 3, 32, 48), 0).clamp(-1, 1)
    states = enc.encode_image(frames)
    config = enc.image_encoder.config
    assert states.shape == (2, (config.image_size // config.patch_size) ** 2 + 1, config.hidden_size)
    direct = enc.image_encoder(pixel_values=enc.clip_pixels(frames), output_hidden_states=True)
    torch.testing.assert_close(states, direct.hidden_states[-2])
    assert not torch.allclose(states, direct.hidden_states[-1])
    torch.testing.assert_close(enc.encode_image(frames[:1])[0], states[0], rtol=1e-5, atol=1e-5)


def test_encoders_saved_in_the_wan_folder_layout_load_back_and_use_its_image_processor(tmp_path):
    """tokenizer/, text_encoder/, image_encoder/, image_processor/: the diffusers Wan2.1-I2V layout."""
    enc = encoders()
    for sub in ("tokenizer", "text_encoder", "image_encoder", "image_processor"):
        getattr(enc, sub).save_pretrained(tmp_path / sub)
    config = load_config("tiny", [f'model.model_dir="{tmp_path}"'])
    loaded = build_encoders(config)
    frames = randn((1, 3, 16, 24), 1).clamp(-1, 1)
    torch.testing.assert_close(loaded.encode_text(["a red ball"]), enc.encode_text(["a red ball"]))
    torch.testing.assert_close(loaded.encode_image(frames), enc.encode_image(frames))
    wide = (
        {"shortest_edge": 16},
        {"height": 16, "width": 16},
    )  # a processor that disagrees with the encoder ...
    enc.image_processor.size, enc.image_processor.crop_size = wide
    enc.image_processor.save_pretrained(tmp_path / "image_processor")
    assert build_encoders(config).clip_pixels(frames).shape[-1] == 16  # ... decides CLIP's input size
    (tmp_path / "image_processor" / "preprocessor_config.json").unlink()
    (tmp_path / "image_processor").rmdir()
    with pytest.raises(ValueError, match="no image_processor/ folder"):
        build_encoders(config)


def test_tiny_encoders_are_deterministic_from_the_seed():
    a, b = encoders(), encoders()
    torch.testing.assert_close(a.encode_text(["x"]), b.encode_text(["x"]))
