"""Quality filters of 4DNeX-10M's curation: luminance, MCV and HCPR (§3.1-3.3).

§3.1: "brightness filtering is applied based on average luminance (0.299R + 0.587G + 0.114B) to
discard videos with extreme illumination conditions."

§3.2: "we define two metrics using the confidence maps from DUSt3R: 1) the Mean Confidence Value
(MCV), averaging pixel-wise confidence scores over all frames, and 2) the High-Confidence Pixel
Ratio (HCPR), representing the proportion of pixels exceeding a threshold τ. We select the top-r%
of clips for each metric". §3.3 applies "the same MCV and HCPR" to the dynamic clips.

    Y    = 0.299·R + 0.587·G + 0.114·B                    per pixel, R, G, B ∈ [0, 1]
    MCV  = (1 / (T·H·W)) Σ_{t,i,j} C_t(i, j)
    HCPR = (1 / (T·H·W)) #{(t, i, j) : C_t(i, j) > τ}

Conventions:
* RGB is (..., 3), channels last in R, G, B order; uint8 is scaled by 1/255, float is taken to be
  in [0, 1] already. Confidence maps are (T, H, W), one per frame, any real values (DUSt3R's
  are ≥ 1).
* Luminance range check and thresholds are inclusive: low ≤ Y ≤ high. HCPR counts C > τ strictly.
* Top-r %: of N clips the k = ⌈r·N/100⌉ highest scores are kept (so at least one clip for any
  r > 0); r is read as the decimal it prints as, so r = 0.1 of 1000 clips is exactly 1 clip. Ties
  at the boundary go to the clip that comes first (a stable sort), so exactly k clips are kept.
* "The top-r% of clips for each metric" is read as an intersection: a clip is kept when it is in
  the top r % by MCV and in the top r % by HCPR, each ranked over all N clips.

Spec: specs/quality_filters.md · Tests: tests/test_quality.py (-m quality)
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])  # §3.1, the ITU-R BT.601 luma weights


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel luminance Y (...) in [0, 1] of RGB (..., 3); float32 for uint8 input, else rgb's dtype."""
    rgb = _rgb(rgb)
    if rgb.dtype == np.uint8:
        return rgb @ (LUMA_WEIGHTS / 255).astype(np.float32)
    return rgb @ LUMA_WEIGHTS.astype(rgb.dtype)


def mean_luminance(video: np.ndarray) -> float:
    """Average luminance of a video (T, H, W, 3) (or any (..., 3) pixels) over all its pixels."""
    video = _rgb(video)
    if video.size == 0:
        raise ValueError(f"video must have at least one pixel, got shape {video.shape}")
    # Y is linear, so mean(Y) = Σ_c w_c · mean(channel c): no per-pixel float copy of the video.
    channel_means = video.reshape(-1, 3).mean(axis=0, dtype=np.float64)
    scale = 1 / 255 if video.dtype == np.uint8 else 1.0
    return float(channel_means @ LUMA_WEIGHTS * scale)


def luminance_ok(value: float | np.ndarray, low: float, high: float) -> bool | np.ndarray:
    """§3.1's brightness filter: low ≤ mean luminance ≤ high (False for extreme illumination)."""
    if not low <= high:
        raise ValueError(f"luminance range needs low <= high, got low={low}, high={high}")
    if np.isnan(value).any():
        raise ValueError("mean luminance is NaN")
    return (low <= value) & (value <= high)


def mean_confidence(conf: np.ndarray) -> float:
    """MCV: pixel-wise confidence averaged over all frames of a clip, conf (T, H, W)."""
    return float(_confidence(conf).mean(dtype=np.float64))


def high_confidence_ratio(conf: np.ndarray, tau: float) -> float:
    """HCPR: the fraction of pixels of all frames with confidence strictly above τ, conf (T, H, W)."""
    if math.isnan(tau):
        raise ValueError("tau must be a number, got NaN")
    conf = _confidence(conf)
    return float(np.count_nonzero(conf > tau) / conf.size)


def top_fraction(scores: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask (N,) keeping the ⌈r·N/100⌉ highest of scores (N,); ties go to the earlier clip."""
    scores = np.asarray(scores)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(f"scores must be a non-empty (N,) array, got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if not 0 < r <= 100:
        raise ValueError(f"r must be a percentage in (0, 100], got {r}")
    keep = math.ceil(Fraction(str(float(r))) * len(scores) / 100)  # exact: 10 % of 30 is 3, not 4
    order = np.argsort(-scores.astype(np.float64), kind="stable")  # highest first, ties by index
    mask = np.zeros(len(scores), dtype=bool)
    mask[order[:keep]] = True
    return mask


def select_by_confidence(mcv: np.ndarray, hcpr: np.ndarray, r: float) -> np.ndarray:
    """§3.2: keep clips in the top r % by MCV and in the top r % by HCPR, mcv and hcpr (N,) → mask (N,).

    The N clips are the ones to rank: in the dynamic pipeline the survivors of the earlier filters, since
    §3.3 applies "three sequential filtering strategies" with MCV / HCPR third.
    """
    mcv, hcpr = np.asarray(mcv), np.asarray(hcpr)
    if mcv.shape != hcpr.shape:
        raise ValueError(f"mcv and hcpr must have the same (N,) shape, got {mcv.shape} and {hcpr.shape}")
    return top_fraction(mcv, r) & top_fraction(hcpr, r)


def _rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must be (..., 3) with channels last, got shape {rgb.shape}")
    if rgb.dtype != np.uint8 and not np.issubdtype(rgb.dtype, np.floating):
        raise ValueError(f"rgb must be uint8 (0-255) or float (0-1), got dtype {rgb.dtype}")
    return rgb


def _confidence(conf: np.ndarray) -> np.ndarray:
    conf = np.asarray(conf)
    if conf.ndim != 3 or conf.size == 0:
        raise ValueError(f"conf must be a non-empty (T, H, W) confidence map, got shape {conf.shape}")
    if np.isnan(conf).any():
        raise ValueError("conf contains NaN")
    return conf
