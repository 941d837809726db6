"""Camera smoothness of a clip: velocity, acceleration and the curvature of Eq. 1 (§3.3).

"Second, we assess camera smoothness (CS) by computing frame-wise velocity and acceleration from
camera translations, and estimate local trajectory curvature as:

    κ_i = ‖v_{i+1} − v_i‖ / (‖v_{i+1}‖² + ‖v_i‖² + ε),   ε > 0.                         (1)

Clips with low average velocity, acceleration, and curvature are retained."

With camera centres c_0 … c_{T−1} (world coordinates, one per frame):

    v_i = c_{i+1} − c_i            velocity,      i = 0 … T−2   (per frame, no division by a frame rate)
    a_i = v_{i+1} − v_i            acceleration,  i = 0 … T−3
    κ_i = ‖a_i‖ / (‖v_{i+1}‖² + ‖v_i‖² + ε)                    i = 0 … T−3

Conventions:
* Centres are (..., T, 3): any leading batch dimensions, T ≥ 3 frames, so many clips are
  measured in one vectorised call. Results drop the last two axes to (..., T−2) for κ and to
  (...) for the per-clip means.
* numpy in → numpy out; torch in → torch out (same dtype, same device); integer input is
  converted to float64.
* "Camera translations" are read as the camera *centres* in world coordinates: the translation
  column of camera-to-world matrices (`camera_centers_from_c2w`), or c = −Rᵀt for world-to-camera
  [R | t] (`camera_centers_from_w2c`). The translation t of a world-to-camera matrix is not the
  camera's position and turns with the camera, so it is not used directly.
* ε > 0 keeps a standing camera (v_i = v_{i+1} = 0) at κ = 0 instead of 0/0.
* Units: speed and acceleration are scene units per frame (per frame²); κ has units of 1/length
  and scales as 1/s when the trajectory is scaled by s. Thresholds therefore only mean something
  for trajectories on a common scale.
* Eq. 1 is not the geometric curvature: for uniform steps along a circle of radius ρ it equals
  1/(2ρ) (ε → 0), and it is non-zero on a straight line whose speed changes.

Spec: specs/eq01_camera_smoothness.md · Tests: tests/test_eq01_curvature.py (-m eq01)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


@dataclass
class CameraSmoothness:
    """Per-clip means of Eq. 1's quantities; floats for one clip (T, 3), arrays (...) for a batch."""

    mean_speed: float | np.ndarray | torch.Tensor  # mean_i ‖v_i‖
    mean_acceleration: float | np.ndarray | torch.Tensor  # mean_i ‖v_{i+1} − v_i‖
    mean_curvature: float | np.ndarray | torch.Tensor  # mean_i κ_i


def curvature(centers: Array, eps: float = 1e-8) -> Array:
    """Eq. 1: κ_i for camera centres (..., T, 3) → (..., T−2)."""
    return _kinematics(centers, eps)[2]


def camera_smoothness(centers: Array, eps: float = 1e-8) -> CameraSmoothness:
    """Mean speed, acceleration and curvature (Eq. 1) of each clip of centres (..., T, 3)."""
    speed, acceleration, kappa = _kinematics(centers, eps)
    means = (speed.mean(-1), acceleration.mean(-1), kappa.mean(-1))
    if speed.ndim == 1:  # one clip: plain floats
        means = tuple(float(m) for m in means)
    return CameraSmoothness(*means)


def smoothness_checks(
    smoothness: CameraSmoothness, max_speed: float, max_acceleration: float, max_curvature: float
) -> dict[str, bool | np.ndarray | torch.Tensor]:
    """§3.3's three criteria, each "mean at most its threshold" (inclusive): speed, acceleration, curvature.

    A threshold of ∞ switches that criterion off. Values are bools for one clip, boolean arrays (...)
    for a batch.
    """
    thresholds = {"speed": max_speed, "acceleration": max_acceleration, "curvature": max_curvature}
    for name, value in thresholds.items():
        if not value >= 0:  # also catches NaN
            raise ValueError(f"max_{name} must be a non-negative number (or inf), got {value}")
    return {
        "speed": smoothness.mean_speed <= max_speed,
        "acceleration": smoothness.mean_acceleration <= max_acceleration,
        "curvature": smoothness.mean_curvature <= max_curvature,
    }


def is_smooth(
    smoothness: CameraSmoothness, max_speed: float, max_acceleration: float, max_curvature: float
) -> bool | np.ndarray | torch.Tensor:
    """§3.3's keep rule: "Clips with low average velocity, acceleration, and curvature are retained"."""
    checks = smoothness_checks(smoothness, max_speed, max_acceleration, max_curvature)
    return checks["speed"] & checks["acceleration"] & checks["curvature"]


def camera_centers_from_c2w(c2w: Array) -> Array:
    """Camera centres (..., T, 3): the translation column of camera-to-world matrices (..., T, 4, 4)."""
    if c2w.ndim < 3 or tuple(c2w.shape[-2:]) != (4, 4):
        raise ValueError(f"c2w must be (..., T, 4, 4), got {tuple(c2w.shape)}")
    return c2w[..., :3, 3]


def camera_centers_from_w2c(R: Array, t: Array) -> Array:
    """Camera centres c = −Rᵀt (..., T, 3) of world-to-camera poses x_cam = R·x_world + t."""
    if R.ndim < 3 or tuple(R.shape[-2:]) != (3, 3) or tuple(t.shape) != tuple(R.shape[:-1]):
        raise ValueError(
            f"R must be (..., T, 3, 3) and t (..., T, 3), got {tuple(R.shape)}, {tuple(t.shape)}"
        )
    return -(R * t[..., :, None]).sum(-2)  # (Rᵀt)_k = Σ_j R_jk t_j


def _kinematics(centers: Array, eps: float) -> tuple[Array, Array, Array]:
    """(‖v_i‖ (..., T−1), ‖a_i‖ (..., T−2), κ_i (..., T−2)) for centres (..., T, 3)."""
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite positive number (Eq. 1 needs ε > 0), got {eps}")
    centers = _as_float(centers)
    if centers.ndim < 2 or centers.shape[-1] != 3:
        raise ValueError(f"camera centres must be (..., T, 3), got {tuple(centers.shape)}")
    if centers.shape[-2] < 3:
        raise ValueError(f"curvature needs T >= 3 camera centres (two velocities), got T={centers.shape[-2]}")
    finite = (
        torch.isfinite(centers).all() if isinstance(centers, torch.Tensor) else np.isfinite(centers).all()
    )
    if not finite:
        raise ValueError("camera centres contain NaN or inf")
    v = centers[..., 1:, :] - centers[..., :-1, :]  # v_i = c_{i+1} − c_i, (..., T−1, 3)
    a = v[..., 1:, :] - v[..., :-1, :]  # a_i = v_{i+1} − v_i, (..., T−2, 3)
    speed_sq = (v * v).sum(-1)  # ‖v_i‖², (..., T−1)
    acceleration = (a * a).sum(-1) ** 0.5  # ‖a_i‖, (..., T−2)
    kappa = acceleration / (speed_sq[..., 1:] + speed_sq[..., :-1] + eps)  # Eq. 1
    return speed_sq**0.5, acceleration, kappa


def _as_float(centers: Array) -> Array:
    if isinstance(centers, torch.Tensor):
        return centers if centers.is_floating_point() else centers.double()
    centers = np.asarray(centers)
    return centers if np.issubdtype(centers.dtype, np.floating) else centers.astype(np.float64)
