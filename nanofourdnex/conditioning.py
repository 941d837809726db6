"""Text and image conditions c_txt, c_img of Eq. 6, computed as Wan2.1 I2V computes them.

* c_txt: UMT5 encoder `last_hidden_state` of the prompt, cut at the prompt's length and
  zero-padded to exactly 512 tokens. The length is not a free choice: diffusers'
  `WanTransformer3DModel` with `added_kv_proj_dim` splits the cross-attention context into
  image and text tokens with a hard-coded 512, so any other length is silently wrong.
* c_img: CLIP ViT-H vision tower, **penultimate** hidden state (257 × 1280 for 224² input),
  of the first frame.

The full preset loads both from the local Wan2.1-I2V folder (`text_encoder/`, `tokenizer/`,
`image_encoder/`). The tiny preset builds the same transformers classes with tiny random
configs (seeded, offline) and a byte-level tokenizer, so the code path is identical.
Embeddings depend only on the clip, so `train` computes them once per clip and caches them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

from .config import Config

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP preprocessing
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ByteTokenizer:
    """UTF-8 bytes as token ids (pad 0, eos 1, bytes 2..257): the tiny preset's offline tokenizer."""

    vocab_size = 258

    def __call__(self, prompts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.zeros(len(prompts), max_length, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            tokens = [b + 2 for b in prompt.encode("utf-8")][: max_length - 1] + [1]
            ids[row, : len(tokens)] = torch.tensor(tokens)
        return ids, (ids > 0).long()


@dataclass
class Encoders:
    tokenizer: object
    text_encoder: UMT5EncoderModel
    image_encoder: CLIPVisionModel
    text_len: int
    prompt_suffix: str
    device: torch.device = torch.device("cpu")  # where inputs go (the encoders' execution device)

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """(B, 512, text_dim): UMT5 states of each prompt (+ suffix), zero beyond its length."""
        prompts = [p + self.prompt_suffix for p in prompts]
        if isinstance(self.tokenizer, ByteTokenizer):
            ids, mask = self.tokenizer(prompts, self.text_len)
        else:
            tokens = self.tokenizer(
                prompts, padding="max_length", max_length=self.text_len, truncation=True, return_tensors="pt"
            )
            ids, mask = tokens.input_ids, tokens.attention_mask
        ids, mask = ids.to(self.device), mask.to(self.device)
        states = self.text_encoder(ids, attention_mask=mask).last_hidden_state
        return states * mask[..., None].to(states.dtype)  # Wan keeps the first len tokens, pads with 0

    @torch.no_grad()
    def encode_image(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, tokens, image_dim): CLIP penultimate hidden state of frames (B, 3, H, W) in [−1, 1]."""
        size = self.image_encoder.config.image_size
        frames = frames.to(self.device).float()
        x = F.interpolate((frames + 1) / 2, size=(size, size), mode="bicubic", align_corners=False)
        mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)
        x = ((x.clamp(0, 1) - mean) / std).to(self.image_encoder.dtype)
        return self.image_encoder(pixel_values=x, output_hidden_states=True).hidden_states[-2]


def build_encoders(config: Config, seed: int = 0) -> Encoders:
    """The real encoders from `model.model_dir`, or tiny random ones (seeded) when it is empty."""
    model_dir, cond = config.model.model_dir, config.conditioning
    if model_dir:
        from transformers import AutoTokenizer

        root = Path(model_dir)
        for sub in ("text_encoder", "tokenizer", "image_encoder"):
            if not (root / sub).is_dir():
                raise ValueError(
                    f"model dir {root} has no {sub}/ folder (expected a diffusers Wan2.1-I2V layout)"
                )
        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
        text = UMT5EncoderModel.from_pretrained(root / "text_encoder", local_files_only=True)
        image = CLIPVisionModel.from_pretrained(root / "image_encoder", local_files_only=True)
    else:
        torch.manual_seed(seed)
        tokenizer = ByteTokenizer()
        dim = config.model.text_dim
        text = UMT5EncoderModel(
            UMT5Config(
                vocab_size=ByteTokenizer.vocab_size, d_model=dim, d_kv=dim // 2, d_ff=2 * dim,
                num_layers=cond.tiny_text_layers, num_heads=2, dropout_rate=0.0,
            )
        )  # fmt: skip
        image = CLIPVisionModel(
            CLIPVisionConfig(
                hidden_size=config.model.image_dim, intermediate_size=2 * config.model.image_dim,
                num_hidden_layers=cond.tiny_image_layers, num_attention_heads=2,
                image_size=cond.tiny_image_size, patch_size=cond.tiny_image_patch,
            )
        )  # fmt: skip
    text.eval().requires_grad_(False)
    image.eval().requires_grad_(False)
    return Encoders(tokenizer, text, image, cond.text_len, cond.prompt_suffix)
