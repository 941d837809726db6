"""Scores of a generated 6D video against the truth: what a person sees, as numbers (§5.2 in miniature).

    PSNR(a, b)      = 10·log10(1 / mean((a − b)²))                      images in [0, 1]
    point error     = mean_p ‖s·R·X̂_p + c − X_p‖ / extent               after one similarity (s, R, c) per
                      extent = the diagonal of the true points' box      clip (Umeyama), as a fraction
    rotation error  = mean_{k ≥ 1} ∠(R̂_k R̂_0ᵀ, R_k R_0ᵀ)                 camera motion relative to frame 0
    focal error     = |f̂ / f − 1|

The generated XYZ lives in the frame the model learned (the first camera's, normalised like the
training data); the similarity removes what no model can know from one image — the clip's scale and
centre — and any residual rotation, so the point error measures shape and motion. The rotation error
compares camera *motion*, so a constant offset of the first camera does not count. The benchmark,
the ablation and the tests all score with these functions.
"""

from __future__ import annotations

import numpy as np

from ..paper.reprojection import CameraRecovery, rotation_angle


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two images (or videos) in [0, 1]; inf when they are equal."""
    error = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mse = float(np.mean(np.ascontiguousarray(error) ** 2))  # summed in one order whatever the memory layout
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def similarity_alignment(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R, c) minimising Σ ‖s·R·p + c − q‖² over point pairs (N, 3) (Umeyama 1991; R a rotation, s ≥ 0)."""
    p, q = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    p_mean, q_mean = p.mean(0), q.mean(0)
    p_c, q_c = p - p_mean, q - q_mean
    U, S, Vt = np.linalg.svd(q_c.T @ p_c / len(p))  # the cross-covariance Σ_qp
    flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt)) or 1.0])  # a rotation, never a reflection
    R = U @ flip @ Vt
    variance = (p_c**2).sum() / len(p)
    s = float(np.trace(np.diag(S) @ flip) / variance) if variance > 0 else 0.0
    return s, R, q_mean - s * R @ p_mean


def point_error(xyz: np.ndarray, truth: np.ndarray) -> float:
    """Mean distance of xyz (…, 3) to the truth after one similarity alignment, over the truth's box diagonal."""
    p, q = (
        np.asarray(xyz, dtype=np.float64).reshape(-1, 3),
        np.asarray(truth, dtype=np.float64).reshape(-1, 3),
    )
    finite = np.isfinite(p).all(1) & np.isfinite(q).all(1)
    p, q = p[finite], q[finite]
    s, R, c = similarity_alignment(p, q)
    extent = float(np.linalg.norm(q.max(0) - q.min(0)))
    return float(np.linalg.norm(s * p @ R.T + c - q, axis=-1).mean() / extent)


def rotation_error(recovery: CameraRecovery | np.ndarray, reference: CameraRecovery | np.ndarray) -> float:
    """Mean angle (degrees) between the relative rotations R_k R₀ᵀ of two camera paths, frames k ≥ 1."""
    R = recovery.R if isinstance(recovery, CameraRecovery) else np.asarray(recovery)
    R_ref = reference.R if isinstance(reference, CameraRecovery) else np.asarray(reference)
    return float(rotation_angle(R[1:] @ R[0].T, R_ref[1:] @ R_ref[0].T).mean())


def focal_error(recovery: CameraRecovery, reference: CameraRecovery) -> float:
    """|f̂ / f − 1| of the (mean) focal lengths."""
    return float(abs(np.mean(recovery.focal) / np.mean(reference.focal) - 1))
