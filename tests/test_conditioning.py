"""Text and image conditions as Wan I2V computes them. Spec: specs/model.md"""

import torch
from transformers import UMT5EncoderModel

from nanofourdnex.conditioning import ByteTokenizer, build_encoders
from nanofourdnex.config import load_config
from tests.strategies import randn


def encoders():
    return build_encoders(load_config("tiny"))


def test_text_is_exactly_512_tokens_and_zero_after_the_prompt():
    enc = encoders()
    text = enc.encode_text(["a red sphere", "a much longer caption about a blue box on a floor"])
    assert text.shape == (2, 512, 32)
    lengths = [
        len(("a red sphere" + enc.prompt_suffix).encode()) + 1,
        len(("a much longer caption about a blue box on a floor" + enc.prompt_suffix).encode()) + 1,
    ]
    for row, n in enumerate(lengths):
        assert (text[row, :n].abs().sum(-1) > 0).all()
        assert (text[row, n:] == 0).all()


def test_text_states_are_the_umt5_encoder_states():
    enc = encoders()
    ids, mask = ByteTokenizer()(["hello" + enc.prompt_suffix], 512)
    assert isinstance(enc.text_encoder, UMT5EncoderModel)
    expected = enc.text_encoder(ids, attention_mask=mask).last_hidden_state
    n = int(mask.sum())
    torch.testing.assert_close(enc.encode_text(["hello"])[0, :n], expected[0, :n])


def test_image_embedding_is_the_penultimate_clip_state():
    enc = encoders()
    frames = randn((2, 3, 32, 48), 0).clamp(-1, 1)
    states = enc.encode_image(frames)
    config = enc.image_encoder.config
    tokens = (
        config.image_size // config.patch_size
    ) ** 2 + 1  # patches + class token (257 for ViT-H/14 at 224)
    assert states.shape == (2, tokens, config.hidden_size)
    last = enc.image_encoder(pixel_values=torch.zeros(1, 3, 32, 32), output_hidden_states=True)
    assert not torch.equal(last.hidden_states[-1], last.hidden_states[-2])
    one = enc.encode_image(frames[:1])
    torch.testing.assert_close(one[0], states[0], rtol=1e-5, atol=1e-5)


def test_tiny_encoders_are_deterministic_from_the_seed():
    a, b = encoders(), encoders()
    torch.testing.assert_close(a.encode_text(["x"]), b.encode_text(["x"]))
