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
# # 05 · Train the tiny 4DNeX, generate a 4D scene, render a novel view
#
# Everything so far, in one run. The tiny preset (`tiny_configs/tiny.toml`) is the paper's training set-up at
# CPU size: the same diffusers `WanTransformer3DModel` class (4 layers, width 128), loaded with
# `from_pretrained` from the shipped tiny image-to-video base (`pretrained/tiny-wan-i2v`, the stand-in for
# Wan2.1, made by `nano4d pretrain --tiny`) and kept frozen; a peft LoRA on its attention, width-wise fusion,
# shared RoPE and domain embeddings, the guided mask, Eq. 5-6 — on synthetic 6D videos of 9 frames × 16×24
# pixels, with an exact pixel-unshuffle autoencoder instead of the Wan VAE.
#
# Then generation (§4.3, Fig. 6): image → 6D video → cameras and depth (Eq. 12-13) → point clouds → a
# novel-view video, rendered by splatting the points (the paper hands them to TrajectoryCrafter, which also
# inpaints the holes; we stop before that, so holes stay black).
#
# Set `NANO4D_TUTORIAL_QUICK=1` for a few training steps only (the results are then noise-like); without it
# the notebook trains the full preset, about 6 minutes on one core.

# %%
import dataclasses
import os
import tempfile
from pathlib import Path

import numpy as np
from IPython import get_ipython
from IPython.display import Image, display

from nanofourdnex.config import load_config
from nanofourdnex.data import ClipDataset
from nanofourdnex.generate import check_inputs, generate_6d, load_inference, run_generation
from nanofourdnex.outputs import write_point_clouds, write_video, xyz_colors
from nanofourdnex.paper.reprojection import recover_cameras
from nanofourdnex.paper.xyz_init import sloped_plane
from nanofourdnex.render import novel_trajectory, render_video
from nanofourdnex.train import train
from nanofourdnex.viz import figure, plot_recovery

QUICK = os.environ.get("NANO4D_TUTORIAL_QUICK") == "1"  # small settings (the test suite sets it)
OUT = Path(tempfile.mkdtemp(prefix="nano4d_05_"))  # data, run folder and outputs all go here


def show(path: Path) -> None:
    """Show a figure in a notebook; run as a plain script, say where it was written."""
    if get_ipython() is None:
        print("figure written to", path)
    else:
        display(Image(filename=str(path)))


# %% [markdown]
# ## Train
#
# `load_config("tiny", overrides)` layers the preset over the paper's defaults (config.py) and applies
# `section.key=value` overrides — here only the folders, and in quick mode fewer clips and steps.
# `train.train(config)` writes the synthetic clips on first use, encodes them once into a latent cache, and
# runs AdamW on the trainable parameters (`FourDNeX.trainable_parameters()`: the LoRA and the domain
# embeddings; the base stays frozen, as in the paper); it is exactly what `nano4d train --tiny` runs.

# %%
overrides = [
    f'data.root="{OUT / "data" / "train"}"',
    f'data.val_root="{OUT / "data" / "val"}"',
    f'train.out="{OUT / "run"}"',
]
if QUICK:
    overrides += [
        "data.synthetic_train=8", "data.synthetic_val=2", "train.steps=6", "train.warmup_steps=2",
        "train.val_every=6", "train.save_every=6", "train.log_every=1",
    ]  # fmt: skip
config = load_config("tiny", overrides)
print(
    f"{config.train.steps} steps × batch {config.train.batch_size} on {config.data.synthetic_train} clips of "
    f"{config.data.num_frames} × {config.data.height}×{config.data.width}, LoRA rank {config.lora.rank}"
)

result = train(config)
print(f"held-out loss {result.initial_val_loss:.3f} → {result.final_val_loss:.3f} in {result.seconds:.0f} s")
assert result.final_val_loss < result.initial_val_loss
show(result.out / "loss.png")

# %% [markdown]
# The validation loss is Eq. 6 on held-out clips with fixed noise and a fixed grid of $t$, so it is
# comparable from step to step. A checkpoint folder holds the LoRA in diffusers' format, the domain
# embeddings and the optimizer state; the frozen base is read again from the preset's `model.model_dir`.
#
# ## Generate a 6D video from a held-out image
#
# `generate.load_inference` rebuilds the trained network from the run folder. `generate_6d` conditions on
# the image and the sloped plane $X^{init}$ side by side, encoded once (Eq. 7), the guided mask (Eq. 10) and
# the caption (guided by classifier-free guidance when `sampling.guidance` > 1; the tiny preset samples with
# 1, which measured best for a model trained without prompt dropout), and integrates the flow from noise
# (notebook 02) with UniPC, in the run's 2 steps: the tiny model's estimate of the mean video, blurred where
# the motion is uncertain, which scored best on held-out scenes (README); `steps=30` in the `replace`
# below draws a sample instead.

# %%
inference = load_inference(result.out)
held_out = ClipDataset(config.data.val_root, config.data.num_frames, config.data.height, config.data.width)[0]
print("caption:", held_out.caption)
sampling = dataclasses.replace(
    inference.config.sampling,
    frames=config.data.num_frames,
)
six = generate_6d(
    inference.model,
    inference.autoencoder,
    inference.encoders,
    held_out.first_frame,
    held_out.caption,
    sampling,
)
rgb, xyz = six.rgb.numpy(), six.xyz.numpy()  # (T, H, W, 3) uint8 and float32
true_rgb = ((held_out.rgb.permute(1, 2, 3, 0) + 1) * 127.5).round().byte().numpy()
true_xyz = held_out.xyz.permute(1, 2, 3, 0).numpy()
print("generated", rgb.shape, xyz.shape)

# %%
shown = [0, len(rgb) // 2, len(rgb) - 1]
with figure(OUT / "generated.png", (5.2, 4.2)) as fig:
    axes = fig.subplots(4, len(shown))
    rows = (
        ("RGB", rgb),
        ("true RGB", true_rgb),
        ("XYZ", xyz_colors(xyz)),
        ("true XYZ", xyz_colors(true_xyz)),
    )
    for row, (name, video) in enumerate(rows):
        for column, k in enumerate(shown):
            axes[row, column].imshow(video[k])
            axes[row, column].set(xticks=[], yticks=[])
            axes[row, column].grid(False)
            if row == 0:
                axes[row, column].set_title(f"frame {k}")
        axes[row, 0].set_ylabel(name)
show(OUT / "generated.png")

# %% [markdown]
# In quick mode all of this is noise. After the full preset, judge the geometry first: it is what the project
# measures (below, and over several scenes in `benchmarks/generation_quality.py`). The RGB comes from a
# 1 M-parameter base pretrained for 50 CPU-minutes on synthetic scenes: it keeps the first frame and moves
# little after it, so do not expect the motion the pretrained 14B model makes.
#
# How good is the geometry? Both the generated and the true XYZ live in the normalised first-camera frame
# ([−1, 1], notebook 01), so they compare directly. The baseline is the condition itself: the sloped plane
# $X^{init}$ held for every frame.

# %%
plane = sloped_plane(config.data.height, config.data.width).numpy()
generated_error = np.abs(xyz - true_xyz).mean(axis=(1, 2, 3))  # per frame
plane_error = np.abs(plane[None] - true_xyz).mean(axis=(1, 2, 3))
print("mean |XYZ − truth| per frame, generated:", generated_error.round(3))
print("                       sloped plane X^init:", plane_error.round(3))
if not QUICK:  # a few steps of training do not beat the plane; the full preset does
    assert generated_error.mean() < plane_error.mean()

# %% [markdown]
# ## Cameras, depth and point clouds
#
# `recover_cameras` (notebook 04) turns the generated XYZ video into cameras and depth. Each frame is also a
# coloured point cloud; `render.write_point_clouds` writes them as PLY files (open them in MeshLab, Blender
# or Open3D).

# %%
recovery = recover_cameras(xyz)
focal = float(recovery.focal)
print(f"focal {focal:.1f} px, {recovery.iterations} Gauss-Newton steps, converged: {recovery.converged}")
show(plot_recovery(recovery, OUT / "recovery.png"))
plys = write_point_clouds(OUT, xyz, rgb)  # OUT/points/frame_XXXX.ply
print(len(plys), "PLY files, e.g.", plys[0])

with figure(OUT / "point_cloud.png", (4, 3.4)) as fig:
    ax = fig.add_subplot(projection="3d")
    x, y, z = xyz[0].reshape(-1, 3).T  # camera 0's frame: x right, y down, z forward
    ax.scatter(x, z, -y, c=rgb[0].reshape(-1, 3) / 255, s=6, depthshade=False)  # drawn with −y up
    ax.set(xlabel="x", ylabel="z (depth)", zlabel="−y", title="generated frame 0 as points")
show(OUT / "point_cloud.png")

# %% [markdown]
# ## A novel-view video
#
# `render.novel_trajectory("orbit", …)` swings the first recovered camera about its up axis through the
# scene centre ($\pm 15°$); `render_video` splats frame $t$'s point cloud into camera $t$ of the new path
# with a z-buffer. Pixels no point lands on stay black: those are the holes TrajectoryCrafter would inpaint.

# %%
R, t = novel_trajectory("orbit", recovery.R[0], recovery.t[0], len(xyz), center=xyz[0])
novel = render_video(xyz, rgb, recovery.K, R, t)
write_video(OUT / "novel_view.mp4", novel.frames)
print("holes per frame:", [f"{h:.0%}" for h in novel.hole_fraction.tolist()])
with figure(OUT / "novel_view.png", (8, 1.4)) as fig:
    axes = fig.subplots(1, len(novel.frames))
    for k, ax in enumerate(axes):
        ax.imshow(novel.frames[k])
        ax.set(title=f"{k}", xticks=[], yticks=[])
        ax.grid(False)
show(OUT / "novel_view.png")

# %% [markdown]
# ## All of it in one call
#
# `nano4d generate IMAGE --checkpoint RUN_DIR` runs two calls: `generate.check_inputs` reads the image file,
# sizes it by the public release's rule (keep the aspect ratio, at most the training area, both sides
# multiples of one token: 16 pixels for the Wan VAE, 2 for the tiny preset) and checks the output folder
# before any network is built; `generate.run_generation` then writes every output above into that folder,
# with a preview figure and a 4D recording (`nano4d view`). The notes say what it changed about the input
# (nothing here: the image already has the training size).

# %%
image_path = Path(config.data.val_root) / "clip_00000" / "rgb_0000.png"
inputs = check_inputs(inference.config, image_path, OUT / "generated", sampling=sampling, overwrite=True)
report = run_generation(inference, inputs, progress=False)
print("notes:", report.notes)
print(sorted(str(path.relative_to(report.out)) for path in report.files if path.parent == report.out))
show(report.out / "preview.png")
print("all outputs under", OUT)
