"""Camera and depth recovery from XYZ maps: the post-optimisation of §4.3, Eq. 12-13.

    min_{R,t,K,d}  Σ_{i,j} ‖q̃_{i,j} − q̂_{i,j}‖²                                         (12)
    q̃_{i,j} = [R | t]⁻¹ K⁻¹ (d_{i,j} · [u, v, 1]ᵀ)                                       (13)

q̂ is the generated XYZ map (world coordinates) and q̃ the back-projection of the depth d.

Why it is cheap. Write P = R·q̂ + t (the generated point in camera coordinates) and
r = K⁻¹[u, v, 1]ᵀ (the pixel's ray, r_z = 1). A rotation keeps lengths, so each term of
Eq. 12 equals ‖d·r − P‖²: a 1-D least-squares problem in d with the closed form

    d* = rᵀP / ‖r‖²,        e = P − d*·r     (P's offset from the pixel ray, the object-space error).

Eliminating d leaves 6 pose unknowns per frame and one focal length for the clip:

1. sample: drop non-finite and zero-confidence pixels, keep every s-th row and column;
2. initialise: a normalised DLT (Hartley) per frame gives a projection matrix λ·K·[R | t], hence
   f from its row norms (median over frames when shared) and the nearest rotation with the
   points in front; a frame whose points lie on a plane gets its pose from a homography instead.
   With a robust loss the DLT is weighted by a least-quantile-of-squares search over random
   minimal samples first, so that outliers do not steer the start;
3. refine: damped Gauss-Newton (Levenberg-Marquardt) on Σ w·‖e‖² over (rotation, translation)
   per frame and log f, with IRLS weights w (Geman-McClure by default, Cauchy or none on request)
   from a per-frame robust scale; the shared focal is eliminated with a Schur complement, so a
   step solves T systems of size 6 and one scalar equation;
4. dense: d* and ‖e‖ for every pixel in one pass; ‖e‖ is the pixel's Eq. 12 residual and
   doubles as an inlier map.

Conventions (stated here once for the whole project):
- xyz is (T, H, W, 3), world coordinates. Pixel (u, v) = (column j, row i) at integer indices;
  the paper's [i, j, 1] is read as this usual homogeneous pixel [u, v, 1], column first.
- Camera frame as in OpenCV: x right, y down, z forward; depth is z (> 0 in front).
- R, t are world-to-camera, X_cam = R·X + t; Eq. 13 inverts them; the camera centre is −Rᵀt.
- K = [[f, 0, c_x], [0, f, c_y], [0, 0, 1]]: square pixels and the principal point at the
  grid centre (c_x, c_y) = ((W − 1)/2, (H − 1)/2).
- Non-finite xyz pixels are ignored by the fit; their depth and residual are not finite either.

Spec: specs/eq12_post_optimization.md · Tests: tests/test_eq12_reprojection.py (-m eq12)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .reprojection_start import LOSSES, initialise, lengths, residual_scale, robust_loss

MIN_POINTS = 6  # the DLT has 11 unknowns and each point gives 2 equations
SAMPLES_PER_FRAME = 5000  # automatic stride: at most about this many sampled pixels per frame
DENSE_BLOCK = 1 << 17  # pixels per block of the dense depth pass (its float32 temporaries fit in cache)
MAX_ITERATIONS = 40
TOLERANCE = 1e-10  # stop when no update moves by more (radians, normalised world units, log f)


@dataclass(frozen=True)
class CameraRecovery:
    """Cameras and depth recovered from a (T, H, W, 3) XYZ video (float64 cameras)."""

    R: np.ndarray  # (T, 3, 3) world-to-camera rotations
    t: np.ndarray  # (T, 3) world-to-camera translations: X_cam = R·X + t
    K: np.ndarray  # (3, 3) shared intrinsics, or (T, 3, 3) with a focal per frame
    depth: np.ndarray  # (T, H, W) z-depth d*, the input's float dtype
    residual: np.ndarray  # (T, H, W) object-space error ‖q̃ − q̂‖ per pixel (Eq. 12)
    iterations: int  # Gauss-Newton steps taken (rejected damped steps included)
    converged: bool  # False: MAX_ITERATIONS ran out first, the cameras may be off

    @property
    def focal(self) -> np.ndarray:
        """f in pixels: a scalar array when shared, (T,) otherwise."""
        return self.K[..., 0, 0]

    @property
    def centers(self) -> np.ndarray:
        """(T, 3) camera centres in world coordinates, C = −Rᵀt."""
        return -np.einsum("tji,tj->ti", self.R, self.t)

    def camera_to_world(self) -> np.ndarray:
        """(T, 4, 4) camera-to-world matrices [Rᵀ | −Rᵀt; 0 0 0 1]."""
        return camera_to_world(self.R, self.t)


def recover_cameras(
    xyz: np.ndarray | torch.Tensor,
    confidence: np.ndarray | torch.Tensor | None = None,
    *,
    shared_focal: bool = True,
    loss: str = "geman-mcclure",
    stride: int | None = None,
) -> CameraRecovery:
    """Eq. 12-13: cameras (R, t, K) and depth d that best explain an XYZ video.

    xyz: (T, H, W, 3) world points, numpy or torch; non-finite pixels are ignored.
    confidence: optional (T, H, W) non-negative weights; a zero weight removes the pixel.
    shared_focal: one focal for the clip (the paper's single K) or one per frame.
    loss: "geman-mcclure" (default) or "cauchy" for IRLS robust weights, "squared" for plain least squares.
    stride: pixel sampling step of the pose fit; None keeps at most about 5000 pixels per frame.
    Raises ValueError for input that does not determine the cameras.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if stride is not None and stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    xyz = _as_float_array(xyz)
    frames, height, width, _ = xyz.shape
    step = stride or int(np.ceil(np.sqrt(height * width / SAMPLES_PER_FRAME)))
    sample = (slice(None), slice(step // 2, None, step), slice(step // 2, None, step))
    # Step 1: sampled points X (T, 3, N), their pixels x (2, N) relative to the principal point, weights
    # w (T, N). Coordinates come first so that every array operation runs along the N points.
    points = np.ascontiguousarray(np.moveaxis(xyz[sample], -1, 1), dtype=np.float64).reshape(frames, 3, -1)
    weight = np.isfinite(points).all(1).astype(np.float64)
    if confidence is not None:
        confidence = _as_float_array(confidence, expected=(frames, height, width))
        if not (np.isfinite(confidence).all() and (confidence >= 0).all()):
            raise ValueError("confidence must be finite and >= 0")
        weight *= confidence[sample].reshape(frames, -1)
    unused = np.broadcast_to(weight[:, None] == 0, points.shape)
    points[unused] = 0.0
    v, u = np.mgrid[0:height, 0:width][(slice(None), *sample[1:])]
    pixels = np.stack([u - (width - 1) / 2, v - (height - 1) / 2]).reshape(2, -1).astype(np.float64)
    _check_support(weight)
    # Normalise the world once (centroid, mean distance 1) so tolerances mean the same for any scene.
    # (In place: at the sizes where the whole fit takes milliseconds, fresh memory is much of the cost.)
    center = (points @ weight[..., None]).sum(0)[:, 0] / weight.sum()
    points -= center[:, None]
    spread = (weight * lengths(points)).sum() / weight.sum()
    if spread == 0:
        raise ValueError("all valid xyz points are equal; cameras are not determined")
    points /= spread
    points[unused] = 0.0
    # Steps 2-3. float32 input carries about 7 digits: smaller steps would only chase its rounding.
    tolerance = max(TOLERANCE, 10 * float(np.finfo(xyz.dtype).eps))
    R, t, focal = initialise(points, pixels, weight, shared_focal, loss, exact=10 * tolerance)
    R, t, focal, iterations, converged = _refine(
        points, pixels, weight, R, t, focal, shared_focal, loss, tolerance
    )
    # A focal outside [size/1000, 1000·size], size = max(H, W) (a field of view above 179.7° or below
    # 0.06°), is a fit that ran away, e.g. from a start spoilt by too few or too many bad pixels.
    size = max(height, width)
    if not (
        np.isfinite(R).all() and np.isfinite(t).all() and ((focal > size / 1e3) & (focal < size * 1e3)).all()
    ):
        raise ValueError(
            f"the camera fit diverged (focal {focal.min():.3g}-{focal.max():.3g} px for a {height}×{width} "
            f"image, loss {loss!r}); the valid pixels are too few or too contaminated to fix the cameras"
        )
    t = spread * t - R @ center  # back to world units: X_cam = R·X + t
    K = intrinsics(focal[0] if shared_focal else focal, height, width)
    # Step 4.
    depth, residual = depth_from_xyz(xyz, K, R, t)
    return CameraRecovery(
        R=R, t=t, K=K, depth=depth, residual=residual, iterations=iterations, converged=bool(converged)
    )


# --- Step 3: refine the cameras on the Eq. 12 residual of the ray fit ---


@dataclass(frozen=True)
class _RayFit:
    """The Eq. 12 residual of the sampled points (T, N) for one camera guess, in the ray's own basis.

    With r = (r_x, r_y, 1) and an orthonormal basis (a₁, a₂) of the plane ⟂ r,
        a₁ = (1, 0, −r_x)/√(1 + r_x²),   a₂ = r × a₁/‖r‖ = (−r_x r_y, 1 + r_x², −r_y)/√((1 + r_x²)‖r‖²),
    the residual is e = (a₁ᵀP, a₂ᵀP), so ‖e‖ = ‖P − d*·r‖.
    """

    P: np.ndarray  # (3, T, N) camera coordinates R·X + t
    depth: np.ndarray  # (T, N) d* = rᵀP/‖r‖²
    axes: tuple[tuple[np.ndarray | float, ...], ...]  # (a₁, a₂), each three (T, N) or (1, N) components
    e: np.ndarray  # (T, 2, N)
    error: np.ndarray  # (T, N) ‖e‖

    @staticmethod
    def of(
        points: np.ndarray, pixels: np.ndarray, R: np.ndarray, t: np.ndarray, focal: np.ndarray
    ) -> _RayFit:
        """Points (T, 3, N), pixels (2, N), cameras R (T, 3, 3), t (T, 3), and focal (T,), or (1,) when
        every frame shares it: then the rays and their bases are computed once for all frames."""
        px, py, pz = P = (R @ points + t[:, :, None]).transpose(1, 0, 2)
        rx, ry = pixels[:, None, :] / focal[:, None]  # r = K⁻¹[u, v, 1]ᵀ
        q = rx * rx + ry * ry + 1  # ‖r‖²
        n1, n2 = np.sqrt(1 + rx * rx), np.sqrt((1 + rx * rx) * q)
        a1 = (1 / n1, 0.0, -rx / n1)
        a2 = (-rx * ry / n2, (1 + rx * rx) / n2, -ry / n2)
        e = np.stack([a1[0] * px + a1[2] * pz, a2[0] * px + a2[1] * py + a2[2] * pz], axis=1)
        return _RayFit(P, (rx * px + ry * py + pz) / q, (a1, a2), e, lengths(e))

    def normal_equations(self, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """JᵀWJ (T, 7, 7) and JᵀWe (T, 7) for IRLS weights W = diag(root²), root (T, N).

        Residual component e_k has the row [(P × a_k)ᵀ, a_kᵀ, −d*·a_k,z] for δ = (ω, τ, s = log f),
        with R ← exp([ω]ₓ)·R, t ← exp([ω]ₓ)·t + τ, f ← f·e^δs. The last entry is ∂e_k/∂s without the
        term that turns a_k against e itself: like Gauss-Newton's dropped second derivatives it
        vanishes at zero residual, and its share of the gradient is exactly 0. Each component adds
        its own (T, 7, N) block of rows, so J is never held whole.
        """
        px, py, pz = self.P
        normal, gradient = 0.0, 0.0
        for k, axis in enumerate(self.axes):
            ax, ay, az = (root * component for component in axis)  # rows are linear in a_k: √w·a_k
            J = np.stack(
                [py * az - pz * ay, pz * ax - px * az, px * ay - py * ax, ax, ay, az, -self.depth * az], 1
            )
            normal = normal + J @ J.transpose(0, 2, 1)
            gradient = gradient + (J @ (root * self.e[:, k])[..., None])[..., 0]
        return normal, gradient


def _rodrigues(omega: np.ndarray) -> np.ndarray:
    """exp([ω]ₓ) for (T, 3) rotation vectors: I + sin θ·[k]ₓ + (1 − cos θ)·[k]ₓ²."""
    theta = np.linalg.norm(omega, axis=-1)[:, None, None]
    k = omega / np.maximum(theta[:, :, 0], 1e-300)
    cross = np.zeros((len(omega), 3, 3))
    cross[:, 0, 1], cross[:, 0, 2], cross[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    cross -= cross.transpose(0, 2, 1)
    return np.eye(3) + np.sin(theta) * cross + (1 - np.cos(theta)) * cross @ cross


def _damped_step(
    normal: np.ndarray, gradient: np.ndarray, damping: float, shared_focal: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Solve (JᵀWJ + μ·diag JᵀWJ)·δ = −JᵀWe for (ω, τ) (T, 6) and δs (T,), eliminating δs by Schur.

    Per frame JᵀWJ = [[A, c], [cᵀ, g]] and JᵀWe = [b; h]: (g − cᵀA⁻¹c)·δs = −(h − cᵀA⁻¹b), summed
    over the frames when f is shared, then δ = −A⁻¹(b + c·δs).
    """
    # Marquardt's diagonal plus a 1e-9 floor keeps the damped matrix positive definite.
    floor = 1e-9 * np.trace(normal, axis1=1, axis2=2)[:, None, None] / 7
    damped = normal + damping * (normal + floor) * np.eye(7)
    A, c, g = damped[:, :6, :6], damped[:, :6, 6], damped[:, 6, 6]
    b, h = gradient[:, :6], gradient[:, 6]
    solved = np.linalg.solve(A, np.stack([b, c], axis=-1))  # A⁻¹b, A⁻¹c
    schur = g - (c * solved[..., 1]).sum(-1)
    rhs = -(h - (c * solved[..., 0]).sum(-1))
    delta_s = np.full(len(normal), rhs.sum() / schur.sum()) if shared_focal else rhs / schur
    return -(solved[..., 0] + solved[..., 1] * delta_s[:, None]), delta_s


def _refine(
    points: np.ndarray,
    pixels: np.ndarray,
    weight: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    focal: np.ndarray,
    shared_focal: bool,
    loss: str,
    tolerance: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, bool]:
    """Step 3: Gauss-Newton with IRLS weights on Σ w·ρ(‖e‖) over (rotation, translation) per frame and log f.

    Each step re-estimates σ and the weights, then solves the normal equations with Marquardt's
    damping μ (μ = 0 is Gauss-Newton): μ grows tenfold while a step would raise the robust cost and
    shrinks tenfold when one lowers it, so every accepted step goes downhill. Converged when a step
    moves the points by less than the tolerance or 1/1000 of the noise scale σ.
    """
    valid = weight > 0
    damping = 1e-4
    rays = slice(1) if shared_focal else slice(None)  # a shared focal: one set of rays for every frame
    fit = _RayFit.of(points, pixels, R, t, focal[rays])
    iterations = 0
    while iterations < MAX_ITERATIONS:
        # On exact maps the residuals are rounding, not noise: σ stays at the tolerance.
        sigma = np.maximum(residual_scale(fit.error, valid), tolerance)
        rho, w = robust_loss(fit.error, sigma, loss)
        cost = (weight * rho).sum()
        normal, gradient = fit.normal_equations(np.sqrt(weight * w))
        while iterations < MAX_ITERATIONS:
            iterations += 1
            delta, delta_s = _damped_step(normal, gradient, damping, shared_focal)
            moved = max(np.abs(delta).max(), np.abs(delta_s).max())
            converged = moved < tolerance + 1e-3 * sigma.min()
            rotation = _rodrigues(delta[:, :3])
            # A wild step (an overflowing or vanishing focal) is simply rejected, without a warning.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                candidate = (
                    rotation @ R,
                    np.einsum("tij,tj->ti", rotation, t) + delta[:, 3:],
                    focal * np.exp(delta_s),
                )
                if converged:  # a step this small is taken without checking the cost
                    R, t, focal = candidate
                    break
                trial = _RayFit.of(points, pixels, *candidate[:2], candidate[2][rays])
                trial_cost = (weight * robust_loss(trial.error, sigma, loss)[0]).sum()
            if trial_cost <= cost:
                R, t, focal = candidate
                fit, damping = trial, damping / 10
                break
            damping *= 10
        if converged:
            break
    return R, t, focal, iterations, converged


# --- Step 4 and Eq. 13: dense depth from the cameras, and back ---


def depth_from_xyz(
    xyz: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Step 4: the Eq. 12 minimiser d* = rᵀP/‖r‖² and the residual ‖P − d*·r‖ for every pixel.

    xyz (T, H, W, 3); returns depth and residual, both (T, H, W) in xyz's float dtype.
    """
    xyz = _as_float_array(xyz)
    frames, height, width, _ = xyz.shape
    K, R, t = _check_cameras(K, R, t, frames)
    R, t = R.astype(xyz.dtype), t.astype(xyz.dtype)
    depth = np.empty(xyz.shape[:3], dtype=xyz.dtype)
    residual = np.empty_like(depth)
    # Frames in blocks of about DENSE_BLOCK pixels: each temporary stays in cache, and a small clip
    # still takes a few whole-array operations rather than a few per frame.
    size = max(1, DENSE_BLOCK // (height * width))
    for block in (slice(k, k + size) for k in range(0, frames, size)):
        f, cx, cy = (K[block, i, j][:, None, None] for i, j in ((0, 0), (0, 2), (1, 2)))  # (B, 1, 1)
        rx = ((np.arange(width) - cx) / f).astype(xyz.dtype)  # (B, 1, W) ray r = (r_x, r_y, 1)
        ry = ((np.arange(height)[:, None] - cy) / f).astype(xyz.dtype)  # (B, H, 1)
        inv_q = 1 / (rx * rx + ry * ry + 1)  # 1/‖r‖²
        px, py, pz = (  # P = R·q̂ + t, one component at a time: rows of xyz times the row R_i
            (xyz[block] @ R[block, None, i, :, None])[..., 0] + t[block, i, None, None] for i in range(3)
        )
        d = (rx * px + ry * py + pz) * inv_q  # d* = rᵀP / ‖r‖²
        depth[block] = d
        residual[block] = np.sqrt((px - d * rx) ** 2 + (py - d * ry) ** 2 + (pz - d) ** 2)  # ‖P − d*·r‖
    return depth, residual


def backproject(depth: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Eq. 13: q̃ = Rᵀ(d·K⁻¹[u, v, 1]ᵀ − t) for depth (T, H, W); returns (T, H, W, 3) world points (float64)."""
    depth = np.asarray(depth)
    if depth.ndim != 3:
        raise ValueError(f"depth must be (T, H, W), got {depth.shape}")
    frames, height, width = depth.shape
    K, R, t = _check_cameras(K, R, t, frames)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    pixels = np.stack([u, v, np.ones_like(u)], axis=-1)  # (H, W, 3) = [u, v, 1]
    # Points are row vectors here, so M·x is written x @ Mᵀ (matmuls: several times faster than einsum).
    rays = pixels @ np.linalg.inv(K)[:, None].swapaxes(-1, -2)  # K⁻¹[u, v, 1]ᵀ, camera z = 1 (T, H, W, 3)
    camera = depth[..., None].astype(np.float64) * rays - t[:, None, None, :]  # d·K⁻¹[u, v, 1]ᵀ − t
    return camera @ R[:, None]  # Rᵀ(...): as rows, x @ R


# --- Helpers ---


def camera_to_world(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(T, 4, 4) [Rᵀ | −Rᵀt; 0 0 0 1] from world-to-camera R (T, 3, 3) and t (T, 3)."""
    R, t = np.asarray(R, dtype=np.float64), np.asarray(t, dtype=np.float64)
    pose = np.tile(np.eye(4), (len(R), 1, 1))
    pose[:, :3, :3] = R.transpose(0, 2, 1)  # R_c2w = Rᵀ
    pose[:, :3, 3] = -np.einsum("tji,tj->ti", R, t)  # C = −Rᵀt
    return pose


def rotation_angle(R: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Degrees of R·referenceᵀ for rotations (..., 3, 3), the camera error of Eq. 13's R.

    From the chord ‖R − reference‖_F = 2√2·sin(θ/2), which stays exact near θ = 0 where
    arccos((tr − 1)/2) loses half its digits.
    """
    chord = np.linalg.norm(np.asarray(R) - np.asarray(reference), axis=(-2, -1))
    return np.degrees(2 * np.arcsin(np.clip(chord / (2 * np.sqrt(2)), 0, 1)))


def intrinsics(focal: float | np.ndarray, height: int, width: int) -> np.ndarray:
    """K with square pixels and the principal point at the grid centre: (3, 3), or (T, 3, 3) for (T,) focals."""
    focal = np.asarray(focal, dtype=np.float64)
    K = np.zeros((*focal.shape, 3, 3))
    K[..., 0, 0] = K[..., 1, 1] = focal
    K[..., 0, 2] = (width - 1) / 2
    K[..., 1, 2] = (height - 1) / 2
    K[..., 2, 2] = 1.0
    return K


def _as_float_array(array: np.ndarray | torch.Tensor, expected: tuple[int, ...] | None = None) -> np.ndarray:
    """numpy float32/float64 view of a numpy or torch array, checked to be (T, H, W, 3) or `expected`."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        array = array.double() if array.dtype == torch.float64 else array.float()
        array = array.numpy()
    array = np.asarray(array)
    array = array if array.dtype in (np.float32, np.float64) else array.astype(np.float32)
    if expected is None:
        if array.ndim != 4 or array.shape[-1] != 3 or min(array.shape[1:3]) < 2:
            raise ValueError(f"xyz must be (T, H, W, 3) with H, W >= 2, got {array.shape}")
    elif array.shape != expected:
        raise ValueError(f"confidence must be (T, H, W) = {expected}, got {array.shape}")
    return array


def _check_cameras(
    K: np.ndarray, R: np.ndarray, t: np.ndarray, frames: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cameras as float64 (T, 3, 3), (T, 3, 3), (T, 3); a single K is shared by all frames."""
    K, R, t = (np.asarray(a, dtype=np.float64) for a in (K, R, t))
    if K.shape == (3, 3):
        K = np.broadcast_to(K, (frames, 3, 3))
    if K.shape != (frames, 3, 3) or R.shape != (frames, 3, 3) or t.shape != (frames, 3):
        raise ValueError(
            f"cameras must be K (3, 3) or (T, 3, 3), R (T, 3, 3), t (T, 3) with T = {frames}, "
            f"got K {K.shape}, R {R.shape}, t {t.shape}"
        )
    return K, R, t


def _check_support(weight: np.ndarray) -> None:
    """Every frame needs MIN_POINTS sampled pixels with positive weight."""
    counts = (weight > 0).sum(1)
    if counts.sum() == 0:
        raise ValueError("xyz has no finite pixel with positive confidence")
    short = np.flatnonzero(counts < MIN_POINTS)
    if len(short):
        raise ValueError(
            f"frame {short[0]} has {counts[short[0]]} valid sampled pixels, at least {MIN_POINTS} are "
            "needed; use a smaller stride or fewer invalid pixels"
        )
