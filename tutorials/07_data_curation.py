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
# # 07 · Data curation (§3): brightness, confidence, camera smoothness
#
# 4DNeX-10M is built from monocular videos annotated by reconstruction models (DUSt3R, MonST3R, MegaSaM).
# Pseudo-annotations are only as good as the clip, so §3 filters in stages before keeping about 110 K
# dynamic clips. Three of its filters are formulas, and each is one function of `nanofourdnex.paper.quality` or
# `nanofourdnex.paper.curvature`:
#
# 1. **brightness** (§3.1): average luminance $0.299R + 0.587G + 0.114B$, drop extreme illumination;
# 2. **annotation confidence** (§3.2-3.3): MCV and HCPR of the reconstruction's confidence maps, keep the top
#    r % by each;
# 3. **camera smoothness** (§3.3, Eq. 1): velocity, acceleration and curvature of the camera path, keep the
#    calm ones.
#
# The paper gives no thresholds, so the ones below are illustrations.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np
from IPython import get_ipython
from IPython.display import Image, display

from nanofourdnex.paper.curvature import camera_centers_from_c2w, camera_smoothness, curvature, is_smooth
from nanofourdnex.paper.quality import (
    high_confidence_ratio,
    luminance,
    luminance_ok,
    mean_confidence,
    mean_luminance,
    select_by_confidence,
    top_fraction,
)
from nanofourdnex.synthetic import make_scene
from nanofourdnex.viz import figure

QUICK = os.environ.get("NANO4D_TUTORIAL_QUICK") == "1"  # small settings (the test suite sets it)
OUT = Path(tempfile.mkdtemp(prefix="nano4d_07_"))  # every file this notebook writes goes here
CLIPS = 12 if QUICK else 40  # clips per experiment
rng = np.random.default_rng(0)


def show(path: Path) -> None:
    """Show a figure in a notebook; run as a plain script, say where it was written."""
    if get_ipython() is None:
        print("figure written to", path)
    else:
        display(Image(filename=str(path)))


# %% [markdown]
# ## 1. Brightness (§3.1)
#
# > "brightness filtering is applied based on average luminance (0.299R + 0.587G + 0.114B) to discard
# > videos with extreme illumination conditions."
#
# `luminance` gives the per-pixel Y (uint8 is scaled to [0, 1]), `mean_luminance` its average over a clip,
# `luminance_ok(value, low, high)` the keep rule. One scene, exposed three ways:

# %%
scene = make_scene(seed=2, num_frames=5, height=48, width=72)
exposures = {
    "as rendered": scene.rgb,
    "underexposed": (scene.rgb * 0.12).astype(np.uint8),
    "overexposed": np.clip(scene.rgb.astype(int) * 4, 0, 255).astype(np.uint8),
}
LOW, HIGH = 0.15, 0.85
with figure(OUT / "luminance.png", (8, 2.2)) as fig:
    axes = fig.subplots(1, 3)
    for ax, (name, video) in zip(axes, exposures.items(), strict=True):
        value = mean_luminance(video)
        keep = luminance_ok(value, LOW, HIGH)
        ax.imshow(luminance(video[0]), cmap="gray", vmin=0, vmax=1)
        ax.set(title=f"{name}: Ȳ = {value:.2f}, {'keep' if keep else 'drop'}", xticks=[], yticks=[])
        ax.grid(False)
show(OUT / "luminance.png")
assert [bool(luminance_ok(mean_luminance(v), LOW, HIGH)) for v in exposures.values()] == [True, False, False]

# %% [markdown]
# ## 2. Annotation confidence: MCV and HCPR (§3.2)
#
# > "we define two metrics using the confidence maps from DUSt3R: 1) the Mean Confidence Value (MCV),
# > averaging pixel-wise confidence scores over all frames, and 2) the High-Confidence Pixel Ratio (HCPR),
# > representing the proportion of pixels exceeding a threshold τ. We select the top-r% of clips for each
# > metric"
#
# $$\mathrm{MCV} = \frac{1}{THW}\sum_{t,i,j} C_t(i,j),\qquad
# \mathrm{HCPR} = \frac{1}{THW}\,\#\{(t,i,j) : C_t(i,j) > \tau\}$$
#
# DUSt3R does not run here, so we draw **stand-in confidence maps** with its range (≥ 1): per clip, the
# nearest fraction $p$ of the pixels is reconstructed reliably, at a clip-specific confidence level $s$, the
# rest barely above 1. MCV rewards a few very confident pixels; HCPR counts how many pixels are good at all.


# %%
def stand_in_confidence(depth: np.ndarray, reliable: float, level: float) -> np.ndarray:
    """(T, H, W) confidence ≥ 1: high (≈ 1 + level·Gamma(2)) on the nearest `reliable` fraction of pixels."""
    near = depth <= np.quantile(depth, reliable)
    noise = rng.gamma(2.0, 1.0, depth.shape)
    return 1 + np.where(near, level * noise, 0.15 * noise)


confidences = []
for k in range(CLIPS):
    clip = make_scene(seed=100 + k, num_frames=5, height=24, width=36)
    confidences.append(stand_in_confidence(clip.depth, rng.uniform(0.1, 0.9), rng.uniform(1.0, 12.0)))
TAU, R = 3.0, 50
mcv = np.array([mean_confidence(c) for c in confidences])
hcpr = np.array([high_confidence_ratio(c, TAU) for c in confidences])
keep = select_by_confidence(mcv, hcpr, R)
print(f"top {R} % by MCV and top {R} % by HCPR: {keep.sum()} of {CLIPS} clips kept")

# %%
mcv_only = top_fraction(mcv, R) & ~keep  # in the top r % by MCV, yet dropped for its HCPR
assert mcv_only.any()
by_mcv_only = int(np.argmax(np.where(mcv_only, mcv, -np.inf)))
kept_best = int(np.argmax(np.where(keep, hcpr, -np.inf)))
with figure(OUT / "confidence.png", (8, 2.6)) as fig:
    grid = fig.add_gridspec(1, 3, width_ratios=[1.3, 1, 1])
    ax = fig.add_subplot(grid[0, 0])
    ax.scatter(mcv[~keep], hcpr[~keep], c="tab:red", s=12, label="dropped")
    ax.scatter(mcv[keep], hcpr[keep], c="tab:green", s=12, label="kept")
    ax.set(xlabel="MCV", ylabel=f"HCPR (τ = {TAU:g})", title=f"top {R} % by both")
    ax.legend(frameon=False)
    for column, (index, name) in enumerate(((kept_best, "kept"), (by_mcv_only, "top MCV, dropped"))):
        ax = fig.add_subplot(grid[0, column + 1])
        image = ax.imshow(confidences[index][0], cmap="viridis", vmin=1, vmax=15)
        ax.set(title=f"{name}\nMCV {mcv[index]:.1f}, HCPR {hcpr[index]:.2f}", xticks=[], yticks=[])
        ax.grid(False)
    fig.colorbar(image, ax=fig.axes[1:], shrink=0.8, label="confidence C")
show(OUT / "confidence.png")
assert keep.sum() <= np.ceil(R * CLIPS / 100)

# %% [markdown]
# The intersection needs a clip to be good on *both* counts: the right-hand clip has one of the highest MCVs,
# earned by a small, very confident region, and fails on HCPR. `top_fraction` keeps exactly
# $\lceil rN/100 \rceil$ clips per metric, ties going to the earlier clip.
#
# ## 3. Camera smoothness (§3.3, Eq. 1)
#
# > "we assess camera smoothness (CS) by computing frame-wise velocity and acceleration from camera
# > translations, and estimate local trajectory curvature as:"
#
# $$\kappa_i = \frac{\|\mathbf{v}_{i+1} - \mathbf{v}_i\|}{\|\mathbf{v}_{i+1}\|^2 + \|\mathbf{v}_i\|^2 + \epsilon},
# \quad \epsilon > 0 \qquad (1)$$
#
# > "Clips with low average velocity, acceleration, and curvature are retained."
#
# With camera centres $c_i$: $v_i = c_{i+1} - c_i$ per frame. The synthetic cameras glide on eased orbits
# (smooth); we make jittery twins by adding hand-held shake of 2 cm per frame to the same paths, 49 frames
# as in the paper's clips.

# %%
FRAMES = 49
smooth = np.stack(
    [
        camera_centers_from_c2w(make_scene(seed=200 + k, num_frames=FRAMES, height=4, width=6).c2w)
        for k in range(CLIPS)
    ]
)  # (N, T, 3) camera centres
jittery = smooth + rng.normal(0.0, 0.02, smooth.shape)

with figure(OUT / "trajectories.png", (8, 2.6)) as fig:
    top, kappa_ax = fig.subplots(1, 2, width_ratios=[1, 1.6])
    for centres, name, colour in ((smooth[0], "smooth", "tab:green"), (jittery[0], "jittery", "tab:red")):
        top.plot(centres[:, 0], centres[:, 1], "-o", markersize=1.5, color=colour, label=name)
        kappa_ax.plot(np.arange(1, FRAMES - 1), curvature(centres), color=colour, label=name)
    top.set(xlabel="x", ylabel="y", title="camera path, seen from above", aspect="equal")
    top.legend(frameon=False)
    kappa_ax.set(xlabel="frame i", ylabel="κ_i (Eq. 1)", yscale="log", title="curvature along the clip")
show(OUT / "trajectories.png")

# %% [markdown]
# Look at the ends of the *smooth* path: the camera eases in and out, $\|v\| \to 0$, and $\kappa$ — an
# acceleration over a squared speed — explodes to values the shaky camera never reaches. Averaged over the
# clip, curvature barely separates the two kinds here; acceleration does, by an order of magnitude.
#
# `camera_smoothness` takes any batch of trajectories (…, T, 3) at once and returns the per-clip means;
# `is_smooth` applies the keep rule with one threshold per quantity (here: twice the largest value among the
# smooth clips, for illustration).

# %%
both = np.concatenate([smooth, jittery])  # (2N, T, 3)
stats = camera_smoothness(both)
limits = [
    2 * np.max(getattr(stats, name)[:CLIPS]) for name in ("mean_speed", "mean_acceleration", "mean_curvature")
]
kept = is_smooth(stats, *limits)
print(f"kept {kept[:CLIPS].sum()} of {CLIPS} smooth clips and {kept[CLIPS:].sum()} of {CLIPS} jittery ones")
with figure(OUT / "smoothness.png", (4.5, 3)) as fig:
    ax = fig.add_subplot()
    for part, name, colour in (
        (slice(0, CLIPS), "smooth", "tab:green"),
        (slice(CLIPS, None), "jittery", "tab:red"),
    ):
        ax.scatter(stats.mean_acceleration[part], stats.mean_curvature[part], s=10, c=colour, label=name)
    ax.axvline(limits[1], color="k", linestyle="--", linewidth=0.8)
    ax.axhline(limits[2], color="k", linestyle="--", linewidth=0.8)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="mean acceleration",
        ylabel="mean curvature κ",
        title="keep: lower left",
    )
    ax.legend(frameon=False)
show(OUT / "smoothness.png")
assert kept[:CLIPS].all() and not kept[CLIPS:].any()

# %% [markdown]
# Two properties of Eq. 1 worth knowing (both tested in `tests/test_eq01_curvature.py`): it is *not* the
# geometric curvature — on a circle of radius ρ walked at constant speed it equals $1/(2\rho)$, and on a
# straight line it is non-zero whenever the speed changes — and it scales as 1/length, so thresholds only
# mean something for trajectories on a common scale (e.g. after the point-map normalisation of notebook 01).

# %%
print("figures in", OUT)
