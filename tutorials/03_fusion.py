# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Fusing RGB and XYZ: strategies, token distance, shared RoPE, the guided mask
#
# A pretrained video DiT takes *one* video. 4DNeX must feed it two — RGB and XYZ — without breaking what it
# learned. §4.2 compares five ways of concatenating the two latents (Fig. 4) and picks **width-wise**
# fusion by the *token interaction distance* (Fig. 5):
#
# > "Intuitively, shorter interaction distance between corresponding tokens makes it easier for the model to
# > learn cross-modal alignment. As shown in Fig. 5, width-wise fusion yields the shortest interaction
# > distance".
#
# Then §4.3 adapts the network's inputs to the fused layout: a shared RoPE and domain embeddings (Eq. 11)
# and a guided mask (Eq. 10). Each piece is one function of the library; this notebook looks at each.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed
from IPython import get_ipython
from IPython.display import Image, display

from nanofourdnex.data import RawClip, clip_sample
from nanofourdnex.outputs import xyz_colors
from nanofourdnex.paper.fusion import STRATEGIES, fuse, interaction_distance, split, token_grid
from nanofourdnex.paper.mask import guided_mask
from nanofourdnex.paper.token_encoding import DomainEmbedding, SharedRoPE
from nanofourdnex.synthetic import make_scene
from nanofourdnex.viz import figure

QUICK = os.environ.get("NANO4D_TUTORIAL_QUICK") == "1"  # small settings (the test suite sets it)
OUT = Path(tempfile.mkdtemp(prefix="nano4d_03_"))  # every file this notebook writes goes here
FRAMES = 5 if QUICK else 9
HEIGHT, WIDTH = 32, 48


def show(path: Path) -> None:
    """Show a figure in a notebook; run as a plain script, say where it was written."""
    if get_ipython() is None:
        print("figure written to", path)
    else:
        display(Image(filename=str(path)))


# %% [markdown]
# ## Five strategies (Fig. 4)
#
# Both latents are (B, C, F, H, W). `fusion.fuse(rgb, xyz, strategy)` concatenates them along one axis;
# `fusion.split` is its exact inverse. To *see* the layouts we fuse the pixel videos themselves (fusion
# does not care what the five axes hold):

# %%
scene = make_scene(seed=11, num_frames=FRAMES, height=HEIGHT, width=WIDTH)
raw = RawClip(scene.rgb, scene.depth, scene.K, scene.c2w, scene.xyz, scene.caption, path=OUT / "scene")
clip = clip_sample(raw, FRAMES, HEIGHT, WIDTH)
xyz_video = torch.from_numpy(xyz_colors(clip.xyz.permute(1, 2, 3, 0).numpy())).permute(3, 0, 1, 2)
rgb = ((clip.rgb + 1) * 127.5).round().byte()[None]  # (1, 3, T, H, W) uint8
xyz = xyz_video[None]

for strategy in STRATEGIES:
    fused = fuse(rgb, xyz, strategy)
    back_rgb, back_xyz = split(fused, strategy)
    assert torch.equal(back_rgb, rgb) and torch.equal(back_xyz, xyz)
    print(f"{strategy:>8}: {tuple(rgb.shape)} ×2 → {tuple(fused.shape)}")

# %%
with figure(OUT / "layouts.png", (9, 3.2)) as fig:
    grid = fig.add_gridspec(2, 3, width_ratios=[2, 1, 2.2])
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(fuse(rgb, xyz, "width")[0, :, 0].permute(1, 2, 0))
    ax.set_title("width (e): one frame of 2W")
    ax = fig.add_subplot(grid[:, 1])
    ax.imshow(fuse(rgb, xyz, "height")[0, :, 0].permute(1, 2, 0))
    ax.set_title("height (d): 2H")
    ax = fig.add_subplot(grid[:, 2])
    strip = fuse(rgb, xyz, "frame")[0].permute(1, 2, 3, 0)  # (2T, H, W, 3)
    ax.imshow(torch.cat(list(strip[[0, FRAMES - 1, FRAMES, 2 * FRAMES - 1]]), dim=1))
    ax.set_title(f"frame (c): frames 0, {FRAMES - 1} | {FRAMES}, {2 * FRAMES - 1} of 2T = {2 * FRAMES}")
    ax = fig.add_subplot(grid[1, 0])
    ax.axis("off")
    ax.text(
        0,
        0.5,
        "channel (a): one video of 2C channels\nbatch (b): two samples, never attending",
        va="center",
        fontsize=8,
    )
    for ax in fig.axes:
        ax.set(xticks=[], yticks=[])
        ax.grid(False)
show(OUT / "layouts.png")

# %% [markdown]
# Channel-wise fusion changes the number of input channels, so the pretrained patch embedding no longer
# fits ("disrupts the input and output distributions"); batch-wise fusion keeps both videos intact but
# they never attend to each other. Frame-, height- and width-wise fusion keep one ordinary video — only
# longer in one direction — so the pretrained DiT applies unchanged. `model.FourDNeX` accepts exactly these
# three.
#
# ## Token interaction distance (Fig. 5)
#
# The DiT cuts the fused latent into (1, 2, 2) patches and flattens the token grid frame by frame, row by
# row. The distance between the RGB token of a pixel and its XYZ twin in that sequence is:
#
# | strategy | distance | |
# |---|---|---|
# | width | $w$ | one panel width along the same row |
# | height | $h \cdot w$ | one panel further down |
# | frame | $f \cdot h \cdot w$ | one whole clip later |
#
# We can check this *with the fusion code itself*: fill a token grid with token ids, fuse the ids exactly as
# the latents are fused, flatten in the DiT's order, and measure where each twin landed.

# %%
f, h, w = 3, 4, 6  # a token grid (patch (1, 1, 1) so one latent position = one token)
ids = torch.arange(f * h * w, dtype=torch.float64).view(1, 1, f, h, w)
for strategy in ("width", "height", "frame"):
    sequence = fuse(ids, ids + f * h * w, strategy).flatten()  # XYZ token k carries id k + f·h·w
    position = torch.empty_like(sequence, dtype=torch.long)
    position[sequence.long()] = torch.arange(len(sequence))
    distance = position[f * h * w :] - position[: f * h * w]  # where each twin landed, minus its RGB token
    expected = interaction_distance((1, f, h, w), strategy, patch_size=(1, 1, 1))
    assert (distance == expected).all()
    print(f"{strategy:>6}: every twin is {int(expected)} tokens away")

# %% [markdown]
# At the paper's size — 49 frames of 480×720 per modality, a Wan latent (16, 13, 60, 90) — the twin is 45
# tokens away under width fusion and 17,550 under frame fusion:

# %%
paper = (16, 13, 60, 90)
print("token grid per modality (f, h, w) =", token_grid(paper))
distances = {s: interaction_distance(paper, s) for s in STRATEGIES}
for strategy, distance in distances.items():
    print(f"{strategy:>8}: {distance:>8,.0f}" if np.isfinite(distance) else f"{strategy:>8}: ∞ (never)")
with figure(OUT / "distance.png", (4.2, 2.2)) as fig:
    ax = fig.add_subplot()
    shown = ["width", "height", "frame"]
    ax.barh(shown, [distances[s] for s in shown], color=["tab:green", "tab:orange", "tab:red"])
    ax.set(xscale="log", xlabel="tokens between an RGB token and its XYZ twin", title="paper size")
show(OUT / "distance.png")

# %% [markdown]
# ## Shared RoPE (Eq. 11)
#
# > "we adopt a shared rotary positional encoding (RoPE) for RGB and XYZ tokens"
#
# $$x^{RGB} \leftarrow \mathrm{RoPE}(x^{RGB}) + e_{RGB},\qquad x^{XYZ} \leftarrow \mathrm{RoPE}(x^{XYZ}) + e_{XYZ} \qquad (11)$$
#
# Wan's stock 3-D RoPE (`WanRotaryPosEmbed`) would give the XYZ half of a width-fused latent the columns
# $w \ldots 2w-1$: to the network the twin looks $w$ columns away. `token_encoding.SharedRoPE` hands every
# XYZ token exactly its RGB twin's $(t, y, x)$ position. RoPE makes attention depend on the difference of
# positions through $\cos(\theta_i - \theta_j)$ per frequency; averaging that over the frequencies gives a
# "same position" score, 1 only for equal positions. Along one fused row, over the x-axis frequencies (the t
# and y positions are equal here):

# %%
head_dim = 128  # Wan2.1's
latent = torch.zeros(1, 1, 1, 2, 32)  # fused (B, C, F, H, 2W): 1 frame, 1 row of 2×2 patches, w = 8 per panel
stock = WanRotaryPosEmbed(head_dim, (1, 2, 2), max_seq_len=64)
shared = SharedRoPE(head_dim, (1, 2, 2), max_seq_len=64, strategy="width")


def same_position(rope: WanRotaryPosEmbed) -> torch.Tensor:
    """(L, L) mean of cos(θ_i − θ_j) over the x-axis frequencies between the tokens of the fused latent."""
    cos, sin = (table[0, :, 0, -rope.w_dim :] for table in rope(latent))  # (L, w_dim) each
    return (cos @ cos.T + sin @ sin.T) / rope.w_dim


with figure(OUT / "rope.png", (6, 2.6)) as fig:
    for column, (name, rope) in enumerate((("stock Wan RoPE", stock), ("SharedRoPE", shared))):
        ax = fig.add_subplot(1, 2, column + 1)
        ax.imshow(same_position(rope), cmap="viridis", vmin=-0.2, vmax=1)
        ax.set(title=name, xlabel="token (RGB 0-7 | XYZ 8-15)", ylabel="token")
        ax.grid(False)
show(OUT / "rope.png")
assert abs(same_position(shared)[0, 8].item() - 1) < 1e-6  # RGB token 0 and its XYZ twin: the same place
assert same_position(stock)[0, 8].item() < 0.9  # stock RoPE: eight columns apart

# %% [markdown]
# The off-diagonal bright lines on the right: RGB token $k$ and XYZ token $k + w$ are "at the same
# place". Position alone can no longer tell the two apart — that is the job of the domain embeddings.
#
# ## Domain embeddings (Eq. 11)
#
# $e_{RGB}, e_{XYZ} \in \mathbb{R}^{1\times D}$ are learnable and "broadcasted across the sequence".
# `DomainEmbedding` holds them as one (2, D) parameter, zero-initialised (so a new adapter starts as the
# pretrained model), and adds them right after the patch embedding, to each half of the fused token grid:

# %%
domain = DomainEmbedding(dim=4, strategy="width")
with torch.no_grad():
    domain.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]]))  # pretend-trained e_RGB, e_XYZ
tokens = domain(torch.zeros(1, 4, 2, 3, 8))  # patch-embedded latent (B, D, f, h, 2w)
print("channel 0 of one frame:\n", tokens[0, 0, 0])
assert (tokens[0, 0, :, :, :4] == 1).all() and (tokens[0, 0, :, :, 4:] == -1).all()

# %% [markdown]
# ## The guided mask (Eq. 10)
#
# Wan's image-to-video model is told which pixels are known with a mask $M \in [0,1]^{T\times H\times W}$:
# 1 known, 0 to generate. 4DNeX knows the first RGB frame exactly but the first XYZ frame only as the
# sloped-plane guess $X^{init}$, so:
#
# $$M^{XYZ}_{0,i,j} = 0.5 \quad \forall i, j \qquad (10)$$
#
# > "which encourages the model to refine the initial geometry during generation."
#
# `mask.guided_mask(T, h, w, strategy)` builds it for the fused layout, at latent spatial size:

# %%
h_latent, w_latent = 4, 6
pixel_rate = guided_mask(FRAMES, h_latent, w_latent, "width", packed=False)  # (1, 1, T, h, 2w)
print("pixel-rate mask", tuple(pixel_rate.shape))
with figure(OUT / "mask.png", (8, 1.5)) as fig:
    axes = fig.subplots(1, FRAMES)
    for k, ax in enumerate(axes):
        ax.imshow(pixel_rate[0, 0, k], cmap="gray", vmin=0, vmax=1)
        ax.set(title=f"frame {k}", xticks=[], yticks=[])
        ax.grid(False)
show(OUT / "mask.png")

# %% [markdown]
# Frame 0: white RGB half (known), grey XYZ half (0.5), every later frame black. Wan's causal VAE gives
# frame 0 a latent frame of its own and packs the following frames 4 to a latent frame, so the DiT sees the
# mask *packed*: frame 0 repeated 4×, then 4 channels per latent frame (`mask.pack_temporal`):

# %%
packed = guided_mask(FRAMES, h_latent, w_latent, "width")  # (1, 4, f, h, 2w)
print("packed mask", tuple(packed.shape), "= 4 channels ×", packed.shape[2], "latent frames")
print("latent frame 0, channel 0, one row:", packed[0, 0, 0, 0].tolist())
assert packed[0, :, 0, :, :w_latent].eq(1).all() and packed[0, :, 0, :, w_latent:].eq(0.5).all()
assert packed[0, :, 1:].eq(0).all()

# %% [markdown]
# The DiT's input is then the channel stack $[x_t ; M ; c]$ — noise latent, this mask, and the fused
# condition $c = $ fuse($\mathcal{E}[I_0, 0, \ldots]$, $\mathcal{E}[X^{init}, 0, \ldots]$) — Wan I2V's
# 16 + 4 + 16 = 36 channels. Notebook 05 trains it.

# %%
print("figures in", OUT)
