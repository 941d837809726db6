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
# # 01 · The 6D video: RGB + pixel-aligned XYZ
#
# 4DNeX turns one image into a dynamic point cloud. Point clouds are unstructured, so the paper
# predicts **images of points** instead (§4.1):
#
# > "we adopt a pixel-aligned point map representation, XYZ, where each frame
# > $X_t^{XYZ} \in \mathbb{R}^{H\times W\times 3}$ encodes the 3D coordinates of each pixel in the global
# > coordinates" … "a 4D scene can be effectively represented using a 6D video composed of paired RGB and
# > XYZ sequences."
#
# $$p(\{X_t^{RGB}, X_t^{XYZ}\}_{t=0}^{T-1} \mid I_0) \qquad (3)$$
#
# Three channels of colour plus three of position per pixel: a "6D" video that a video diffusion model can
# learn like any other video. This notebook builds one from a synthetic scene with exact geometry
# (`nanofourdnex.synthetic`, the stand-in for 4DNeX-10M), looks at it as images and as a point cloud, and
# introduces the sloped-plane guess $X^{init}$ of Eq. 7 that conditions the first XYZ frame.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np
from IPython import get_ipython
from IPython.display import Image, display

from nanofourdnex.data import RawClip, clip_sample, normalize_pointmaps, to_first_camera, unproject
from nanofourdnex.outputs import xyz_colors
from nanofourdnex.paper.xyz_init import sloped_plane
from nanofourdnex.synthetic import make_scene
from nanofourdnex.viz import DEPTH_COLORS, figure

QUICK = os.environ.get("NANO4D_TUTORIAL_QUICK") == "1"  # small settings (the test suite sets it)
OUT = Path(tempfile.mkdtemp(prefix="nano4d_01_"))  # every file this notebook writes goes here
FRAMES = 9 if QUICK else 17
HEIGHT, WIDTH = 48, 72


def show(path: Path) -> None:
    """Show a figure in a notebook; run as a plain script, say where it was written."""
    if get_ipython() is None:
        print("figure written to", path)
    else:
        display(Image(filename=str(path)))


# %% [markdown]
# ## A scene with exact geometry
#
# `make_scene(seed)` ray-casts a checkered floor, a patterned wall and a few moving objects seen by a
# smoothly moving camera. Because it is ray cast, every pixel's depth and world point are known exactly:
# `Scene.rgb` (T, H, W, 3), `Scene.depth` (T, H, W), cameras `K` and `c2w`, and `Scene.xyz` (T, H, W, 3).

# %%
scene = make_scene(seed=7, num_frames=FRAMES, height=HEIGHT, width=WIDTH)
print(scene.caption)
print({name: getattr(scene, name).shape for name in ("rgb", "depth", "K", "c2w", "xyz")})

# %%
shown = np.linspace(0, FRAMES - 1, 4).round().astype(int)
colours = xyz_colors(scene.xyz)  # each axis min-max scaled over the clip, as uint8 colours
with figure(OUT / "six_d.png", (8, 4.2)) as fig:
    axes = fig.subplots(3, len(shown))
    for column, k in enumerate(shown):
        axes[0, column].imshow(scene.rgb[k])
        axes[0, column].set_title(f"frame {k}")
        axes[1, column].imshow(colours[k])
        axes[2, column].imshow(scene.depth[k], cmap=DEPTH_COLORS)
    for row, name in enumerate(("RGB", "XYZ as colour", "depth")):
        axes[row, 0].set_ylabel(name)
    for ax in axes.flat:
        ax.set(xticks=[], yticks=[])
        ax.grid(False)
show(OUT / "six_d.png")

# %% [markdown]
# The XYZ row *is* the geometry: red = world x, green = world y, blue = world z. The floor and wall
# change colour smoothly because their coordinates change smoothly; a moving object carries its own
# coordinates with it, and the static background keeps its colours even though the camera moves — these
# are **world** coordinates, not camera ones.
#
# A point map is depth plus cameras. With pixel $(u, v)$ = (column, row) and OpenCV cameras,
# $X_t(u, v) = \mathrm{c2w}_t\,[\,d_t(u, v)\,K_t^{-1}[u, v, 1]^\top; 1\,]$ — exactly what
# `data.unproject` computes from the depth files of a 4DNeX-10M clip:

# %%
rebuilt = unproject(scene.depth.astype(np.float64), scene.K, scene.c2w)
error = np.abs(rebuilt - scene.xyz).max()
print(f"max |unproject(depth, K, c2w) − xyz| = {error:.2e}")
assert error < 1e-3  # depth is stored as float32

# %% [markdown]
# ## Pixel-aligned means: one point per pixel
#
# Every pixel $(i, j)$ of frame $t$ is a coloured 3-D point $(X_t[i, j], RGB_t[i, j])$. Scatter them and
# the image becomes a point cloud $P_t$ of Eq. 2 — the quantity 4DNeX is really after.

# %%
with figure(OUT / "point_cloud.png", (8, 3.6)) as fig:
    for column, k in enumerate((0, FRAMES - 1)):
        ax = fig.add_subplot(1, 2, column + 1, projection="3d")
        points = scene.xyz[k].reshape(-1, 3)
        ax.scatter(*points.T, c=scene.rgb[k].reshape(-1, 3) / 255, s=1.5, depthshade=False)
        camera = scene.c2w[k, :3, 3]
        ax.scatter(*camera, c="k", marker="^", s=30, label="camera")
        ax.set(xlabel="x", ylabel="y", zlabel="z", title=f"frame {k} as a point cloud")
        ax.view_init(elev=25, azim=-70)
        ax.set_aspect("equal")
        ax.legend(frameon=False, loc="upper left")
show(OUT / "point_cloud.png")

# %% [markdown]
# ## The training form: first camera, normalised to [−1, 1]
#
# The model is not trained on raw world coordinates. As in the public release, each clip's point maps are
# moved into the **first camera's frame** (x right, y down, z forward: z is depth), clipped per frame at the
# 2nd/98th percentiles and scaled with one shift and one scale per clip into $[-1, 1]^3$
# (`data.to_first_camera`, `data.normalize_pointmaps`). `data.clip_sample` does all of it — the same call
# the training `Dataset` makes — and returns channel-first videos in [−1, 1].

# %%
raw = RawClip(scene.rgb, scene.depth, scene.K, scene.c2w, scene.xyz, scene.caption, path=OUT / "scene")
sample = clip_sample(raw, FRAMES, HEIGHT, WIDTH)
print("rgb", tuple(sample.rgb.shape), "xyz", tuple(sample.xyz.shape))
xyz = sample.xyz.permute(1, 2, 3, 0).numpy()  # (T, H, W, 3) in [−1, 1]
print("range per axis:", xyz.reshape(-1, 3).min(0).round(2), xyz.reshape(-1, 3).max(0).round(2))
assert np.abs(xyz).max() <= 1.0

_, center, scale = normalize_pointmaps(to_first_camera(scene.xyz, scene.c2w))
print(
    f"one shift c = {center.round(2)} and one scale s = {scale:.2f} per clip: a similarity, shapes are kept"
)

# %% [markdown]
# ## The sloped plane $X^{init}$ (Eq. 7)
#
# At generation time only the image $I_0$ is known, not its geometry. 4DNeX conditions the first XYZ
# frame on a fixed guess (§4.3):
#
# $$X^{init}_{i,j} = \left(\tfrac{2j}{W-1} - 1,\ \tfrac{2i}{H-1} - 1,\ \tfrac{2i}{H-1} - 1\right) \qquad (7)$$
#
# > "This results in a sloped plane where depth values gradually increase from the bottom to the top of
# > the image … Such initialization provides a stable starting point for geometry learning."
#
# The formula and the sentence disagree: with row 0 at the top, the formula's z grows *down* the image.
# The public 4DNeX code builds the sentence's plane, $z = 1 - 2i/(H-1)$, and its weights were trained on
# it, so this project does too (`specs/eq07_xyz_init.md`): x runs left to right, y top to bottom, z from
# +1 (far) on the top row to −1 (near) on the bottom row, all in [−1, 1] — the range of the normalised
# data. `xyz_init.sloped_plane(H, W)` returns it as (H, W, 3).

# %%
plane = sloped_plane(HEIGHT, WIDTH).numpy()
with figure(OUT / "sloped_plane.png", (8, 2.6)) as fig:
    axes = fig.subplots(1, 4, width_ratios=[1, 1, 1, 1.3])
    for c, name in enumerate("xyz"):
        image = axes[c].imshow(plane[..., c], cmap="coolwarm", vmin=-1, vmax=1)
        axes[c].set(title=f"$X^{{init}}$ channel {name}", xticks=[], yticks=[])
        axes[c].grid(False)
    fig.colorbar(image, ax=axes[:3], shrink=0.7)
    rows = np.arange(HEIGHT)
    axes[3].plot(rows, plane[:, :, 2].mean(1), label="$X^{init}$ z")
    axes[3].plot(rows, xyz[0, :, :, 2].mean(1), label="data z, frame 0")
    axes[3].set(xlabel="row i (0 = top)", ylabel="mean z over the row", title="depth along the rows")
    axes[3].legend(frameon=False)
show(OUT / "sloped_plane.png")
assert np.all(np.diff(plane[:, 0, 2]) < 0)  # z falls with the row index: the far end is at the top

# %% [markdown]
# Note the right panel: the plane slopes the way the data does — in real (and these synthetic) scenes the
# floor at the bottom is nearer than the wall at the top. The guess is only a condition with a soft mask of
# 0.5 (Eq. 10, notebook 03), and the model learns to replace it.
#
# The model's view of a 6D video is these two videos side by side (width-wise fusion, notebook 03). Both
# XYZ maps below use one colour scale, [−1, 1] → [0, 255] per axis, so they can be compared:


# %%
def unit_colours(points: np.ndarray) -> np.ndarray:
    """Points in [−1, 1]³ as uint8 colours, the same scale for every map."""
    return ((points + 1) / 2 * 255).clip(0, 255).astype(np.uint8)


with figure(OUT / "side_by_side.png", (7, 2.2)) as fig:
    axes = fig.subplots(1, 2)
    axes[0].imshow(np.concatenate([scene.rgb[0], unit_colours(xyz[0])], axis=1))
    axes[0].set_title("target frame 0: RGB | XYZ")
    axes[1].imshow(np.concatenate([scene.rgb[0], unit_colours(plane)], axis=1))
    axes[1].set_title("condition: $I_0$ | $X^{init}$")
    for ax in axes:
        ax.set(xticks=[], yticks=[])
        ax.grid(False)
show(OUT / "side_by_side.png")
print("figures in", OUT)
