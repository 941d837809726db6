"""The DiT's three conditions (Fig. 6, Eq. 6), computed as the public 4DNeX code computes them.

* c, the condition latent: the input image I_0 and the sloped plane X^init (Eq. 7) side by side in
  **pixel space**, [I_0 | X^init] of width 2W, as the first frame of a video whose other frames are
  zero, encoded **once** by the base autoencoder with Wan's per-channel standardisation and without
  Eq. 8 (μ, σ normalise the XYZ *target* latent only). This is the public code's construction
  (`WanSameRopeWBWImageToVideoPipeline.prepare_latents` and its trainer's `compute_loss`). The Wan
  VAE's mid-block attention is global within a frame, so encoding [I_0 | X^init] is not the same
  function as encoding each panel and concatenating latents: it is what the released weights saw.
  Height-wise fusion stacks the panels the same way along the height. Frame-, channel- and batch-wise
  fusion cannot share one frame, so each panel is encoded as its own first-frame video (still
  without Eq. 8) and the latents are fused with `fusion.fuse`.
* c_txt: UMT5 encoder `last_hidden_state` of the prompt, cut at the prompt's length and zero-padded
  to exactly 512 tokens. The length is not a free choice: diffusers' `WanTransformer3DModel` with
  `added_kv_proj_dim` splits the cross-attention context into image and text tokens with a
  hard-coded 512, so any other length is silently wrong. The trigger words " POINTMAP_STYLE." go on
  the training captions and on the positive prompt only (`Encoders.triggered`); the negative prompt
  is encoded as given, as in the public inference.
* c_img: CLIP ViT-H vision tower, **penultimate** hidden state (257 × 1280 for 224² input) of I_0,
  preprocessed by transformers' `CLIPImageProcessor` (shortest-edge bicubic resize, centre crop,
  CLIP mean/std) as the Wan I2V pipeline does: the model folder's `image_processor/` for the full
  model, one built for the tiny encoder's input size otherwise.

The full preset loads the encoders from the local Wan2.1-I2V folder (`text_encoder/`, `tokenizer/`,
`image_encoder/`, `image_processor/`). The tiny preset builds the same transformers classes with tiny
random configs (seeded, offline) and transformers' byte-level `ByT5Tokenizer`, so the code path is
identical, and `save_pretrained` writes them in the same folder layout.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import (
    ByT5Tokenizer,
    CLIPVisionConfig,
    CLIPVisionModel,
    PreTrainedTokenizerBase,
    UMT5Config,
    UMT5EncoderModel,
)

from .autoencoder import SixDAutoencoder, first_frame_video
from .config import Config
from .paper.fusion import fuse
from .paper.xyz_init import sloped_plane

try:  # transformers 5 names the PIL backend; its default backend needs torchvision
    from transformers import CLIPImageProcessorPil as CLIPImageProcessor
except ImportError:  # transformers 4: the PIL backend is the default
    from transformers import CLIPImageProcessor

PIXEL_FUSED = ("height", "width")  # strategies whose condition panels share one frame in pixel space
# The encoders' folders of a diffusers Wan2.1-I2V model folder (its `vae/` is the autoencoder's)
ENCODER_FOLDERS = ("text_encoder", "tokenizer", "image_encoder", "image_processor")


def condition_latents(
    autoencoder: SixDAutoencoder, image: torch.Tensor, num_frames: int, strategy: str = "width"
) -> torch.Tensor:
    """c: image I_0 (B, 3, H, W) in [−1, 1] and X^init → the fused condition latent (B, z, f, h, 2w) for width.

    [I_0 | X^init] in pixel space, [frame, 0, …, 0] in time, one encode, Wan standardisation only.
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
    batch, _, height, width = image.shape
    plane = sloped_plane(height, width).permute(2, 0, 1).to(image)  # X^init (3, H, W), Eq. 7
    plane = plane.expand(batch, -1, -1, -1)
    rgb_video = first_frame_video(image, num_frames)  # (B, 3, T, H, W): [I_0, 0, …, 0]
    xyz_video = first_frame_video(plane, num_frames)  # [X^init, 0, …, 0]
    encode = autoencoder.base.encode  # no Eq. 8: X^init is a condition, not an XYZ target
    if strategy in PIXEL_FUSED:
        return encode(fuse(rgb_video, xyz_video, strategy))  # [I_0 | X^init]: one frame, one encode
    return fuse(encode(rgb_video), encode(xyz_video), strategy)


def tiny_image_processor(size: int) -> CLIPImageProcessor:
    """CLIP's preprocessing (bicubic shortest-edge resize, centre crop, OpenAI mean/std) at `size` pixels."""
    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


@dataclass
class Encoders:
    tokenizer: PreTrainedTokenizerBase
    text_encoder: UMT5EncoderModel
    image_encoder: CLIPVisionModel
    image_processor: CLIPImageProcessor
    text_len: int
    prompt_suffix: str
    device: torch.device = torch.device("cpu")  # where inputs go (the encoders' execution device)

    def triggered(self, prompt: str) -> str:
        """The prompt with the release's trigger words: for captions and positive prompts only."""
        return prompt + self.prompt_suffix

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """(B, 512, text_dim): UMT5 states of each prompt as given, zero beyond its length."""
        tokens = self.tokenizer(
            prompts, padding="max_length", max_length=self.text_len, truncation=True, return_tensors="pt"
        )
        ids, mask = tokens.input_ids.to(self.device), tokens.attention_mask.to(self.device)
        states = self.text_encoder(ids, attention_mask=mask).last_hidden_state
        return states * mask[..., None].to(states.dtype)  # Wan keeps the first len tokens, pads with 0

    def clip_pixels(self, frames: torch.Tensor) -> torch.Tensor:
        """CLIP input (B, 3, S, S) for frames (B, 3, H, W) in [−1, 1]: 8-bit images through the processor."""
        images = ((frames.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        arrays = [np.ascontiguousarray(image.permute(1, 2, 0).numpy()) for image in images]  # (H, W, 3) each
        return self.image_processor(images=arrays, return_tensors="pt").pixel_values

    @torch.no_grad()
    def encode_image(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, tokens, image_dim): CLIP penultimate hidden state of frames (B, 3, H, W) in [−1, 1]."""
        pixels = self.clip_pixels(frames).to(self.device, self.image_encoder.dtype)
        return self.image_encoder(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]


def check_encoder_folders(model_dir: Path) -> None:
    """ValueError unless model_dir has the encoders' folders of the diffusers Wan2.1-I2V layout."""
    for sub in ENCODER_FOLDERS:
        if not (Path(model_dir) / sub).is_dir():
            raise ValueError(
                f"model dir {model_dir} has no {sub}/ folder (expected a diffusers Wan2.1-I2V layout)"
            )


def build_encoders(config: Config, seed: int = 0, meta: bool = False) -> Encoders:
    """The real encoders from `model.model_dir`, or tiny random ones (seeded) when it is empty.

    meta=True builds the tiny configuration's shapes only, on the meta device, and leaves the global
    random state as it was.
    """
    if meta:
        shapes_only = dataclasses.replace(config, model=dataclasses.replace(config.model, model_dir=""))
        with torch.random.fork_rng(devices=[]), torch.device("meta"):  # the tiny encoders seed the global RNG
            return build_encoders(shapes_only, seed)
    model_dir, cond = config.model.model_dir, config.conditioning
    if model_dir:
        from transformers import AutoTokenizer

        root = Path(model_dir)
        check_encoder_folders(root)
        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
        text = UMT5EncoderModel.from_pretrained(root / "text_encoder", local_files_only=True)
        image = CLIPVisionModel.from_pretrained(root / "image_encoder", local_files_only=True)
        processor = CLIPImageProcessor.from_pretrained(root / "image_processor", local_files_only=True)
    else:
        torch.manual_seed(seed)
        tokenizer = ByT5Tokenizer(extra_ids=0)  # UTF-8 bytes as tokens: needs no vocabulary file
        dim = config.model.text_dim
        text = UMT5EncoderModel(
            UMT5Config(
                vocab_size=len(tokenizer), d_model=dim, d_kv=dim // 2, d_ff=2 * dim,
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
        processor = tiny_image_processor(cond.tiny_image_size)
    text.eval().requires_grad_(False)
    image.eval().requires_grad_(False)
    return Encoders(tokenizer, text, image, processor, cond.text_len, cond.prompt_suffix)
