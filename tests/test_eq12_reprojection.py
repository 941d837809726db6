"""Eq. 12-13, camera and depth recovery from XYZ maps (post-optimisation). Spec: specs/eq12_post_optimization.md

Test scenes are exact: a depth map d per frame and cameras (K, R, t), back-projected by Eq. 13 to
the world points X = Rᵀ(d·K⁻¹[u, v, 1]ᵀ − t) of every pixel, in float64. Recovery must give the
cameras and depth back; noisy variants add Gaussian noise and outliers to X.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass

import matplotlib.image
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from nanofourdnex.outputs import load_trajectory_json, load_xyz, save_recovery
from nanofourdnex.paper import reprojection, reprojection_start
from nanofourdnex.paper.reprojection import (
    MAX_ITERATIONS,
    CameraRecovery,
    _damped_step,
    _RayFit,
    _refine,
    backproject,
    camera_to_world,
    depth_from_xyz,
    intrinsics,
    recover_cameras,
    rotation_angle,
)
from nanofourdnex.paper.reprojection_start import (
    HYPOTHESES,
    RAYLEIGH_MEDIAN,
    ROBUST_C,
    TEST_POINTS,
    _hartley,
    _in_front,
    _least_quantile_weights,
    _transfer_error,
    initialise,
    residual_scale,
    robust_loss,
)
from tests.strategies import seeds

pytestmark = pytest.mark.eq12


@dataclass
class Scene:
    xyz: np.ndarray  # (T, H, W, 3) world points
    depth: np.ndarray  # (T, H, W)
    K: np.ndarray  # (3, 3), or (T, 3, 3) with a focal per frame
    R: np.ndarray  # (T, 3, 3) world-to-camera
    t: np.ndarray  # (T, 3)


def make_scene(
    seed: int, frames: int = 3, height: int = 12, width: int = 16, zoom: bool = False, plane: bool = False
) -> Scene:
    """Random cameras anywhere in the world, each looking at a bumpy surface 2-6 units away.

    zoom gives each frame its own focal length; plane makes frame 0 a tilted plane n·X_cam = 1.
    """
    rng = np.random.default_rng(seed)
    focal = rng.uniform(0.6, 2.0, frames if zoom else ()) * max(height, width)
    K = intrinsics(focal, height, width)
    R = Rotation.random(frames, random_state=rng).as_matrix()
    t = -np.einsum("tij,tj->ti", R, rng.normal(0, 3, (frames, 3)))  # centres C ~ N(0, 3²): t = −R·C
    v, u = np.mgrid[0:height, 0:width] / np.array([height - 1, width - 1])[:, None, None]
    depth = np.empty((frames, height, width))
    for k in range(frames):
        waves = rng.uniform(2, 6, (2, 2)), rng.uniform(0, 2 * np.pi, 2)
        bumps = sum(np.cos(a * u + b * v + phase) for (a, b), phase in zip(waves[0], waves[1], strict=True))
        bumps -= bumps.mean()
        depth[k] = rng.uniform(2, 6) * (1 + 0.35 * bumps / np.abs(bumps).max())  # relief ±35 %
    if plane:
        Kk = K[0] if zoom else K
        rays = np.linalg.inv(Kk) @ np.stack([u * (width - 1), v * (height - 1), np.ones_like(u)]).reshape(
            3, -1
        )
        normal = np.array([0.2, -0.3, 1.0]) / rng.uniform(2, 6)  # plane n·X_cam = 1, tilted
        depth[0] = (1 / (normal @ rays)).reshape(height, width)
    return Scene(backproject(depth, K, R, t), depth, K, R, t)


def rotation_error(R1: np.ndarray, R2: np.ndarray) -> np.ndarray:
    """Angle (radians) of R1·R2ᵀ per frame."""
    return np.radians(rotation_angle(R1, R2))


@given(st.floats(-179.0, 179.0), st.integers(0, 2), seeds)
def test_rotation_angle_is_the_angle_of_the_relative_rotation(degrees, axis, seed):
    """Hand value: R = reference·(rotation by θ about a coordinate axis) is θ away, exactly near θ = 0."""
    reference = Rotation.random(random_state=seed).as_matrix()
    turn = Rotation.from_rotvec(np.radians(degrees) * np.eye(3)[axis]).as_matrix()
    angle = rotation_angle(reference @ turn, reference)
    assert angle == pytest.approx(abs(degrees), rel=1e-9, abs=1e-12)
    tiny = Rotation.from_rotvec(1e-10 * np.eye(3)[axis]).as_matrix()  # 5.7e-9 degrees
    assert rotation_angle(tiny, np.eye(3)) == pytest.approx(np.degrees(1e-10), rel=1e-6)


def test_half_turns_about_any_axis_measure_180_degrees_one_per_pair():
    # ‖R − I‖_F = 2√2 exactly for a half turn; rounding pushes it past that for some axes (clipped, not NaN).
    axes = np.random.default_rng(0).normal(size=(200, 3))
    half_turns = Rotation.from_rotvec(np.pi * axes / np.linalg.norm(axes, axis=1, keepdims=True)).as_matrix()
    angles = rotation_angle(half_turns, np.eye(3))
    assert angles.shape == (200,)
    np.testing.assert_allclose(angles, 180.0, rtol=1e-6)


def test_camera_to_world_inverts_the_cameras_in_float64():
    R = Rotation.random(4, random_state=1).as_matrix().astype(np.float32)
    t = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    pose = camera_to_world(R, t)
    assert pose.shape == (4, 4, 4) and pose.dtype == np.float64
    np.testing.assert_array_equal(pose[:, 3], np.tile([0.0, 0, 0, 1], (4, 1)))
    R64, t64 = R.astype(np.float64), t.astype(np.float64)
    np.testing.assert_array_equal(pose[:, :3, :3], R64.transpose(0, 2, 1))
    np.testing.assert_allclose(pose[:, :3, 3], -np.einsum("tji,tj->ti", R64, t64), rtol=1e-15, atol=1e-15)


def test_robust_losses_match_their_formulas_by_hand():
    # u = ‖e‖/(c·σ) = 0, 1, 2 for σ = 1: u² = 0, 1, 4.
    error, sigma, c2 = np.array([[0.0, ROBUST_C, 2 * ROBUST_C]]), np.array([1.0]), ROBUST_C**2
    rho, w = robust_loss(error, sigma, "geman-mcclure")
    np.testing.assert_allclose(rho, [[0, c2 / 2 * 1 / 2, c2 / 2 * 4 / 5]], rtol=1e-14)
    np.testing.assert_allclose(w, [[1, 1 / 4, 1 / 25]], rtol=1e-14)
    rho, w = robust_loss(error, sigma, "cauchy")
    np.testing.assert_allclose(rho, [[0, c2 / 2 * np.log(2), c2 / 2 * np.log(5)]], rtol=1e-14)
    np.testing.assert_allclose(w, [[1, 1 / 2, 1 / 5]], rtol=1e-14)
    rho, w = robust_loss(error, sigma, "squared")
    np.testing.assert_allclose(rho, [[0, c2 / 2, 2 * c2]], rtol=1e-14)
    np.testing.assert_array_equal(w, [[1, 1, 1]])


@given(st.floats(0.01, 10), st.floats(0.1, 10), st.sampled_from(["geman-mcclure", "cauchy", "squared"]))
def test_robust_weight_is_the_loss_slope_over_the_error(e, sigma, loss):
    """IRLS: w = ρ'(‖e‖)/‖e‖, checked by a central difference."""
    step = 1e-6 * e
    rho, w = robust_loss(np.array([[e - step, e, e + step]]), np.array([sigma]), loss)
    assert (rho[0, 2] - rho[0, 0]) / (2 * step) / e == pytest.approx(w[0, 1], rel=1e-6)


def test_residual_scale_is_the_lower_median_of_the_valid_errors_over_the_rayleigh_median():
    assert RAYLEIGH_MEDIAN == pytest.approx(np.sqrt(2 * np.log(2)), abs=1e-4)
    error = np.array([[3.0, 1.0, 2.0, 100.0], [4.0, 1.0, 3.0, 2.0]])
    valid = np.array([[True, True, True, False], [True, True, True, True]])
    # frame 0: median of (1, 2, 3) = 2; frame 1: the lower median of (1, 2, 3, 4) = 2.
    np.testing.assert_allclose(
        residual_scale(error, valid), [2 / RAYLEIGH_MEDIAN, 2 / RAYLEIGH_MEDIAN], rtol=1e-15
    )


def test_residual_scale_of_gaussian_residuals_is_their_sigma():
    e = np.random.default_rng(0).normal(0, 0.3, (2, 2, 100_001))  # e ⟂ the ray is 2-D
    assert residual_scale(np.linalg.norm(e, axis=0), np.ones((2, 100_001), bool)) == pytest.approx(
        0.3, rel=0.01
    )


@given(seeds, st.integers(2, 3))
def test_hartley_normalisation_centres_each_frame_at_mean_distance_root_d(seed, dim):
    rng = np.random.default_rng(seed)
    spread = np.array([0.3, 3.0])[:, None, None]  # frames smaller and larger than 1
    points = rng.normal(0, 1, (2, dim, 20)) * spread + rng.normal(0, 5, (2, dim, 1))
    weight = rng.uniform(0.5, 2, (2, 20))
    normalised, similarity = _hartley(points, weight)
    offsets, total = normalised[:, :dim], weight.sum(1)
    np.testing.assert_allclose((offsets * weight[:, None]).sum(-1) / total[:, None], 0, atol=1e-12)
    mean_distance = (weight * np.linalg.norm(offsets, axis=1)).sum(1) / total
    np.testing.assert_allclose(mean_distance, np.sqrt(dim), rtol=1e-12)
    np.testing.assert_array_equal(normalised[:, dim], 1.0)
    homogeneous = np.concatenate([points, np.ones((2, 1, 20))], axis=1)
    np.testing.assert_allclose(similarity @ homogeneous, normalised, atol=1e-12)


def test_hartley_normalisation_of_coincident_points_is_finite():
    # No distance to scale by: the points move to the origin and the scale stays finite.
    points = np.tile([[[2.0], [-1.0], [5.0]]], (1, 1, 4))
    normalised, similarity = _hartley(points, np.ones((1, 4)))
    np.testing.assert_array_equal(normalised, np.tile([[[0.0], [0.0], [0.0], [1.0]]], (1, 1, 4)))
    assert np.isfinite(similarity).all()


@given(seeds)
def test_the_ray_fit_residual_is_the_offset_of_each_point_from_its_pixels_ray(seed):
    """Step 3's residual: d* = rᵀP/‖r‖² and ‖e‖ = ‖P − d*·r‖, with e in a basis (a₁, a₂) orthonormal and ⟂ r."""
    rng = np.random.default_rng(seed)
    points, pixels = rng.normal(0, 1, (2, 3, 7)), rng.normal(0, 40, (2, 7))
    R, t, focal = (
        Rotation.random(2, random_state=seed).as_matrix(),
        rng.normal(0, 1, (2, 3)),
        rng.uniform(20, 80, 2),
    )
    fit = _RayFit.of(points, pixels, R, t, focal)
    P = R @ points + t[:, :, None]  # (T, 3, N) camera coordinates
    r = np.concatenate([pixels[None] / focal[:, None, None], np.ones((2, 1, 7))], axis=1)  # K⁻¹[u, v, 1]ᵀ
    depth = (r * P).sum(1) / (r * r).sum(1)
    np.testing.assert_allclose(fit.depth, depth, rtol=1e-12)
    np.testing.assert_allclose(
        fit.error, np.linalg.norm(P - depth[:, None] * r, axis=1), rtol=1e-10, atol=1e-12
    )
    a1, a2 = (np.stack(np.broadcast_arrays(*axis)) for axis in fit.axes)  # (3, T, N) each
    for a, b in ((a1, a1), (a2, a2), (a1, a2)):
        np.testing.assert_allclose((a * b).sum(0), 1.0 if a is b else 0.0, atol=1e-12)
    for a in (a1, a2):
        np.testing.assert_allclose((a * r.transpose(1, 0, 2)).sum(0), 0, atol=1e-12)


def test_transfer_error_is_the_pixel_distance_to_the_projection():
    M = np.eye(3, 4)[None, None]  # one frame, one hypothesis: [u, v, 1] ∝ (X, Y, Z)
    X = np.array([[[8.0, 1.0], [10.0, 1.0], [2.0, 0.0], [1.0, 1.0]]])  # (8, 10, 2) and (1, 1, 0)
    x = np.array([[[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]]])  # pixels (1, 1) and (0, 0)
    # (8, 10, 2) projects to (4, 5): (3, 4) from (1, 1), 5 pixels; a point at depth 0 has no projection.
    np.testing.assert_array_equal(_transfer_error(M, x, X), [[[5.0, np.inf]]])


def test_in_front_is_the_sign_of_the_weighted_majority_of_depths():
    # Depth z = row·[X, 1] with row = (0, 0, 1, 0): z is the points' third coordinate. The last point
    # of frames 1 and 2 has weight 0.
    depths = np.array([[2.0, -1, -1, 0], [1, 1, -1, 7], [1, 1, -1, 7]])
    points = np.stack([np.zeros_like(depths), np.zeros_like(depths), depths], axis=1)  # (T, 3, N)
    weight = np.array([[1.0, 1, 1, 5], [0.5, 0.5, 1, 0], [1, 1, 3, 0]])
    row = np.tile([0.0, 0, 1, 0], (3, 1))
    # Frame 0: votes +1 − 1 − 1, and a point at depth 0 votes for neither side: −1.
    # Frame 1: 0.5 + 0.5 − 1 = 0, no majority: the sign is kept (+1). Frame 2: 1 + 1 − 3 < 0: −1.
    np.testing.assert_array_equal(_in_front(row, points, weight), [-1.0, 1.0, -1.0])


def frame_arrays(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 1's layout: points (T, 3, N) and pixels (2, N) relative to the principal point."""
    frames, height, width, _ = xyz.shape
    points = np.ascontiguousarray(np.moveaxis(xyz, -1, 1)).reshape(frames, 3, -1)
    v, u = np.mgrid[0:height, 0:width]
    pixels = np.stack([u - (width - 1) / 2, v - (height - 1) / 2]).reshape(2, -1).astype(np.float64)
    return points, pixels


def with_invalid_points(seed: int, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points, pixels and weights (0.5-2) of xyz, with about 20 % of the pixels at weight 0 holding far
    away garbage points, and the mask of the kept pixels."""
    points, pixels = frame_arrays(xyz)
    rng = np.random.default_rng(seed)
    gone = rng.random(points.shape[-1]) < 0.2
    weight = np.where(gone, 0.0, rng.uniform(0.5, 2.0, (len(points), points.shape[-1])))
    points[:, :, gone] = rng.normal(0, 30, (len(points), 3, gone.sum()))
    return points, pixels, weight, ~gone


@given(seeds)
def test_the_robust_start_weighs_by_the_chosen_loss_and_ignores_zero_weight_points(seed):
    """Frame 0 is exact: its plain DLT explains it, it keeps weight 1. Frame 1 has noise and 30 %
    outliers: its weights are the chosen loss's IRLS weights of one least-quantile hypothesis, so
    Geman-McClure's 1/(1 + u²)² is the square of Cauchy's 1/(1 + u²); outliers get almost none.
    Points of weight 0 (garbage here) change nothing: the result is that of the others alone."""
    scene = make_scene(seed, frames=2, height=16, width=20)
    noisy, wrong = corrupt(scene, seed, noise=0.01, outliers=0.3)
    points, pixels, weight, keep = with_invalid_points(seed, np.stack([scene.xyz[0], noisy[1]]))
    gm = _least_quantile_weights(pixels, points, weight, "geman-mcclure", exact=1e-9)
    cauchy = _least_quantile_weights(pixels, points, weight, "cauchy", exact=1e-9)
    alone = _least_quantile_weights(
        pixels[:, keep], points[..., keep], weight[:, keep], "geman-mcclure", 1e-9
    )
    np.testing.assert_array_equal(gm[0], 1.0)
    np.testing.assert_allclose(gm[1, keep], cauchy[1, keep] ** 2, rtol=1e-12, atol=1e-15)
    outlier = wrong[1].ravel()[keep]
    assert gm[1, keep][outlier].mean() < 0.1 < 0.5 < gm[1, keep][~outlier].mean()
    np.testing.assert_allclose(gm[:, keep], alone, rtol=0, atol=1e-8)


@pytest.mark.parametrize("plane", [False, True])
def test_the_robust_start_scores_256_minimal_dlts_per_frame_on_64_points(plane, monkeypatch):
    """Spec: 256 random 6-point DLTs (4-point homographies for a planar frame) per frame, scored by
    their transfer error on 64 more points."""
    calls = []

    def spy(x, X, weight):
        calls.append(x.shape)
        return solve(x, X, weight)

    solve = reprojection_start._solve_dlt
    monkeypatch.setattr(reprojection_start, "_solve_dlt", spy)
    recover_cameras(make_scene(1, frames=2, plane=plane).xyz)  # frame 0 is the planar one
    hypotheses = {(shape[0], shape[2]) for shape in calls if shape[0] > 2}  # (sets solved, points per set)
    assert hypotheses == ({(HYPOTHESES, 6), (HYPOTHESES, 4)} if plane else {(2 * HYPOTHESES, 6)})
    assert TEST_POINTS == 64 and HYPOTHESES == 256


def test_the_damped_step_adds_marquardts_diagonal_and_a_floor_of_1e_9_of_the_mean_diagonal():
    # trace 7·10⁹: the floor is 10⁻⁹·trace/7 = 1; with μ = 0.5 each unit diagonal entry becomes
    # 1 + 0.5·(1 + 1) = 2, so δ = −gradient/2, and δs (entry 6) too (c = 0: nothing to eliminate).
    normal = np.diag([7e9 - 6, 1, 1, 1, 1, 1, 1])[None]
    gradient = np.array([[0.0, 2, 4, 6, 8, 10, 12]])
    for shared in (True, False):
        delta, delta_s = _damped_step(normal, gradient, 0.5, shared)
        np.testing.assert_allclose(delta, [[0, -1, -2, -3, -4, -5]], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(delta_s, [-6.0], rtol=1e-12)


@given(seeds, st.booleans())
def test_the_damped_step_solves_the_whole_system_with_the_focal_shared_or_per_frame(seed, shared):
    """The Schur elimination of δs gives the solution of the full damped system: one 7×7 system
    per frame, or, with a shared focal, one (6T + 1)-system whose last unknown couples all frames."""
    rng = np.random.default_rng(seed)
    frames, damping = 3, 10 ** rng.uniform(-4, 1)
    J = rng.normal(0, 1, (frames, 7, 20)) * rng.uniform(0.1, 10, (frames, 7, 1))
    normal, gradient = J @ J.transpose(0, 2, 1), rng.normal(0, 1, (frames, 7))
    floor = 1e-9 * np.trace(normal, axis1=1, axis2=2) / 7
    damped = normal + damping * (np.einsum("tii->ti", normal) + floor[:, None])[:, :, None] * np.eye(7)
    if shared:
        system, rhs = np.zeros((6 * frames + 1, 6 * frames + 1)), np.zeros(6 * frames + 1)
        for k in range(frames):
            rows = slice(6 * k, 6 * k + 6)
            system[rows, rows] = damped[k, :6, :6]
            system[rows, -1], system[-1, rows] = damped[k, :6, 6], damped[k, 6, :6]
            system[-1, -1] += damped[k, 6, 6]
            rhs[rows], rhs[-1] = -gradient[k, :6], rhs[-1] - gradient[k, 6]
        solution = np.linalg.solve(system, rhs)
        expected, expected_s = solution[:-1].reshape(frames, 6), np.full(frames, solution[-1])
    else:
        solution = np.linalg.solve(damped, -gradient[..., None])[..., 0]
        expected, expected_s = solution[:, :6], solution[:, 6]
    delta, delta_s = _damped_step(normal, gradient, damping, shared)
    np.testing.assert_allclose(delta, expected, rtol=1e-8, atol=1e-10 * np.abs(expected).max())
    np.testing.assert_allclose(delta_s, expected_s, rtol=1e-8, atol=1e-10 * np.abs(expected_s).max())


@given(seeds)
def test_refinement_converges_quadratically_from_a_close_start_on_exact_maps(seed):
    """Zero residual and the squared loss: Gauss-Newton (μ starts at 1e-4, almost undamped) squares
    the error per step, 1e-3 → 1e-6 → 1e-12, and a last step below the tolerance confirms it."""
    scene = make_scene(seed, frames=2)
    points, pixels = frame_arrays(scene.xyz)
    rng = np.random.default_rng(seed)
    R = Rotation.from_rotvec(rng.normal(0, 1e-3, (2, 3))).as_matrix() @ scene.R
    t, focal = scene.t + rng.normal(0, 1e-3, (2, 3)), np.full(2, scene.K[0, 0] * 1.001)
    R, t, focal, iterations, converged = _refine(
        points, pixels, np.ones((2, points.shape[-1])), R, t, focal, True, "squared", 1e-10
    )
    assert converged and iterations <= 5
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    assert rotation_error(R, scene.R).max() < 1e-9
    np.testing.assert_allclose(focal, scene.K[0, 0], rtol=1e-9)


def overshooting_steps(monkeypatch, below: float) -> list[float]:
    """Make every step taken with μ < `below` overshoot by 10⁶ (translation off by millions, focal by
    exp(10⁶·δs) = inf): the cost it would give is worse, so it must be rejected. Returns the μ of each step."""
    dampings = []

    def step(normal, gradient, damping, shared_focal):
        dampings.append(damping)
        delta, delta_s = _damped_step(normal, gradient, damping, shared_focal)
        scale = 1e6 if damping < below else 1.0
        return delta * scale, delta_s * scale

    monkeypatch.setattr(reprojection, "_damped_step", step)
    return dampings


def close_start(scene, seed: int, focal_factor: float = 1.01):
    rng = np.random.default_rng(seed)
    R = Rotation.from_rotvec(rng.normal(0, 1e-2, (2, 3))).as_matrix() @ scene.R
    return R, scene.t + rng.normal(0, 1e-2, (2, 3)), np.full(2, scene.K[0, 0] * focal_factor)


@pytest.mark.parametrize("focal_factor", [1.01, 0.99])  # a wild step's focal: exp(−10⁴) = 0, exp(10⁴) = inf
def test_marquardt_damping_grows_tenfold_on_a_rejected_step_and_shrinks_tenfold_on_an_accepted_one(
    monkeypatch, focal_factor
):
    """μ starts at 1e-4; steps with μ < 5e-4 overshoot: rejected at 1e-4, accepted at 1e-3, then 1e-4
    (rejected), 1e-3 (accepted), … until a step below the tolerance. Overflow, invalid values or division
    by zero in a wild step raise no warning (it is rejected, not reported)."""
    scene = make_scene(2, frames=2)
    points, pixels = frame_arrays(scene.xyz)
    dampings = overshooting_steps(monkeypatch, below=5e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        R, t, focal, iterations, converged = reprojection._refine(
            points,
            pixels,
            np.ones((2, points.shape[-1])),
            *close_start(scene, 2, focal_factor),
            True,
            "squared",
            1e-10,
        )
    assert converged and iterations == len(dampings) and rotation_error(R, scene.R).max() < 1e-9
    np.testing.assert_allclose(focal, scene.K[0, 0], rtol=1e-9)
    assert len(dampings) >= 6 and len(dampings) % 2 == 0
    np.testing.assert_allclose(dampings, [1e-4, 1e-3] * (len(dampings) // 2), rtol=1e-12)


def test_a_fit_whose_every_step_is_rejected_stops_after_max_iterations_where_it_started(monkeypatch):
    """Every step a 1000-unit jump (never small enough to be taken unchecked): μ grows tenfold 40 times."""
    scene = make_scene(3, frames=2)
    points, pixels = frame_arrays(scene.xyz)
    dampings = []

    def wild_step(normal, gradient, damping, shared_focal):
        dampings.append(damping)
        return np.full((2, 6), 1e3), np.zeros(2)

    monkeypatch.setattr(reprojection, "_damped_step", wild_step)
    start = close_start(scene, 3)
    R, t, focal, iterations, converged = reprojection._refine(
        points, pixels, np.ones((2, points.shape[-1])), *start, True, "squared", 1e-10
    )
    assert not converged and iterations == len(dampings) == MAX_ITERATIONS
    np.testing.assert_allclose(dampings, 1e-4 * 10.0 ** np.arange(MAX_ITERATIONS), rtol=1e-12)
    for got, want in zip((R, t, focal), start, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("loss", ["squared", "geman-mcclure"])
def test_refinement_goes_downhill_from_a_far_start_to_the_exact_cameras(loss):
    """Every accepted step lowers the robust cost: from 0.3 rad, 1 unit and 30 % of focal off, exact
    maps lead to the exact cameras."""
    for seed in range(4):
        scene = make_scene(seed, frames=2)
        points, pixels = frame_arrays(scene.xyz)
        rng = np.random.default_rng(seed)
        R = Rotation.from_rotvec(rng.normal(0, 0.3, (2, 3))).as_matrix() @ scene.R
        t, focal = scene.t + rng.normal(0, 1, (2, 3)), np.full(2, scene.K[0, 0] * 1.3)
        R, t, focal, _, converged = _refine(
            points, pixels, np.ones((2, points.shape[-1])), R, t, focal, True, loss, 1e-10
        )
        assert converged and rotation_error(R, scene.R).max() < 1e-9
        np.testing.assert_allclose(focal, scene.K[0, 0], rtol=1e-9)


@given(seeds)
def test_refinement_ignores_zero_weight_points(seed):
    """Points of weight 0 enter neither the cost nor the noise scale σ: the refinement of the others alone."""
    scene = make_scene(seed, frames=2, height=16, width=20)
    noisy, _ = corrupt(scene, seed, noise=0.01, outliers=0.3)
    points, pixels, weight, keep = with_invalid_points(seed, noisy)
    start = (scene.R, scene.t, np.full(2, scene.K[0, 0]))
    for shared in (True, False):
        every = _refine(points, pixels, weight, *start, shared, "geman-mcclure", 1e-10)
        alone = _refine(
            points[..., keep], pixels[:, keep], weight[:, keep], *start, shared, "geman-mcclure", 1e-10
        )
        assert every[3] == alone[3]
        for a, b in zip(every[:3], alone[:3], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_transfer_error_without_a_projection_is_inf_and_warns_about_nothing():
    """Random minimal sets give hypotheses that put points at depth 0 or overflow: their error is inf,
    and the robust start, which scores 12,544 of them for 49 frames, stays silent."""
    M = np.eye(3, 4)[None, None]
    X = np.array([[[0.0, 1.0, 1e200], [0.0, 1.0, 1e200], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]])
    x = np.array([[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0/0, 1/0 and (10²⁰⁰)² would each warn
        np.testing.assert_array_equal(_transfer_error(M, x, X), [[[np.inf, np.inf, np.inf]]])


@pytest.mark.parametrize("loss", ["geman-mcclure", "cauchy", "squared"])
def test_the_least_quantile_search_runs_with_a_robust_loss_only_and_weighs_by_it(loss, monkeypatch):
    """Spec: with a robust loss the search weights the DLT, with that loss's weights (the robust
    statistics are shared with step 3); plain least squares has no outliers to fear and no search."""
    losses = []

    def spy(pixels, points, weight, loss, exact):
        losses.append(loss)
        return search(pixels, points, weight, loss, exact)

    search = reprojection_start._least_quantile_weights
    monkeypatch.setattr(reprojection_start, "_least_quantile_weights", spy)
    recover_cameras(make_scene(2, frames=2, plane=True).xyz, loss=loss)  # a solid and a planar frame
    assert losses == ([] if loss == "squared" else [loss, loss])


@given(seeds)
def test_the_start_is_exact_with_missing_pixels_and_confidence_weights(seed):
    """Non-finite and zero-confidence pixels stay out of the start, and weights of any size keep it exact."""
    scene = make_scene(seed, frames=3, plane=True)
    rng = np.random.default_rng(seed)
    xyz, confidence = scene.xyz.copy(), rng.uniform(0.5, 2.0, scene.depth.shape)
    xyz[rng.random(scene.depth.shape) < 0.1] = np.nan
    confidence[rng.random(scene.depth.shape) < 0.1] = 0.0
    result = recover_cameras(xyz, confidence)
    assert result.iterations <= 2
    assert rotation_error(result.R, scene.R).max() < 1e-9
    np.testing.assert_allclose(result.K, scene.K, rtol=1e-9)


@given(seeds)
def test_a_frame_shrunk_with_its_camera_is_recovered_exactly(seed):
    """X → s·X and t → s·t leave a frame's pixels unchanged: collinearity and flatness are matters of
    shape, not size, so a frame 10⁴ times smaller than the others is as good as they are."""
    scene = make_scene(seed, frames=2)
    xyz = scene.xyz.copy()
    xyz[1] *= 1e-4
    result = recover_cameras(xyz)
    assert rotation_error(result.R, scene.R).max() < 1e-9
    np.testing.assert_allclose(result.K, scene.K, rtol=1e-9)
    np.testing.assert_allclose(result.t, scene.t * [[1.0], [1e-4]], rtol=0, atol=1e-8)


def test_the_start_focal_is_the_mean_of_the_two_row_norms_over_the_third():
    """f = (‖m₁‖ + ‖m₂‖)/(2‖m₃‖): pixels from f_x = 100 and f_y = 120 (non-square, outside the model),
    which the DLT fits exactly, start at f = 110."""
    rng = np.random.default_rng(0)
    points = rng.normal(0, 1, (1, 3, 50))
    camera = Rotation.random(random_state=1).as_matrix() @ points[0] + np.array([[0.1], [-0.2], [5.0]])
    pixels = np.array([[100.0], [120.0]]) * camera[:2] / camera[2]
    _, _, focal = initialise(points, pixels, np.ones((1, 50)), True, "squared", exact=1e-9)
    np.testing.assert_allclose(focal, [110.0], rtol=1e-9)


@given(seeds)
def test_the_start_of_a_planar_frame_leaves_out_its_outliers(seed):
    """Frame 0 is a plane with 0.2 % noise, and a quarter of its points are swapped among themselves:
    outliers that stay in the plane, so it is still solved by a homography. The least-quantile weights
    leave them out of it: the start is within a few degrees."""
    scene = make_scene(seed, frames=3, plane=True)
    rng = np.random.default_rng(seed)
    xyz = scene.xyz + 0.002 * scene.depth[..., None] * rng.standard_normal(scene.xyz.shape)
    swapped = np.flatnonzero(rng.random(scene.depth[0].size) < 0.25)
    plane = xyz[0].reshape(-1, 3)
    plane[swapped] = plane[rng.permutation(swapped)]
    points, pixels = frame_arrays(xyz)
    R, _, focal = initialise(points, pixels, np.ones(points[:, 0].shape), True, "geman-mcclure", exact=1e-9)
    assert np.degrees(rotation_error(R, scene.R)).max() < 5.0
    assert abs(focal[0] / scene.K[0, 0] - 1) < 0.05


def test_a_frame_with_exactly_six_valid_pixels_is_enough():
    """Six points give the DLT's 11 unknowns 12 equations: such a frame is recovered, not refused."""
    scene = make_scene(0, frames=2)
    xyz = scene.xyz.copy()
    six = np.zeros((12, 16), bool)
    six[[1, 3, 5, 7, 9, 11], [2, 13, 5, 9, 1, 14]] = True
    xyz[1][~six] = np.nan
    result = recover_cameras(xyz)
    assert rotation_error(result.R, scene.R).max() < 1e-9
    np.testing.assert_allclose(result.K, scene.K, rtol=1e-9)


@pytest.mark.parametrize(("height", "width", "stride", "step"), [(80, 100, None, 2), (12, 16, 4, 4)])
def test_the_pose_fit_reads_every_s_th_pixel_from_s_over_2(height, width, stride, step):
    """Spec: every s-th row and column, s = ⌈√(H·W/5000)⌉ unless given (2 for 80×100), from s//2. Only
    those pixels are exact here, the rest garbage: plain least squares, which no outlier escapes, still
    gives the cameras to rounding."""
    scene = make_scene(9, frames=2, height=height, width=width)
    xyz = np.random.default_rng(9).uniform(-10, 10, scene.xyz.shape)
    xyz[:, step // 2 :: step, step // 2 :: step] = scene.xyz[:, step // 2 :: step, step // 2 :: step]
    result = recover_cameras(xyz, loss="squared", stride=stride)
    assert rotation_error(result.R, scene.R).max() < 1e-9
    np.testing.assert_allclose(result.K, scene.K, rtol=1e-9)


def test_a_stride_of_one_reads_every_pixel():
    scene = make_scene(9, frames=2)  # 12×16: the automatic stride is 1 too
    xyz, _ = corrupt(scene, 9, noise=0.01, outliers=0.2)
    expected, result = recover_cameras(xyz), recover_cameras(xyz, stride=1)
    for name in ("R", "t", "K", "depth"):
        np.testing.assert_array_equal(getattr(result, name), getattr(expected, name))


def corrupt(scene: Scene, seed: int, noise: float, outliers: float) -> tuple[np.ndarray, np.ndarray]:
    """XYZ with Gaussian noise of σ = noise·depth per point and a fraction of uniform outliers in the scene's box."""
    rng = np.random.default_rng(seed)
    xyz = scene.xyz + noise * scene.depth[..., None] * rng.standard_normal(scene.xyz.shape)
    wrong = rng.random(scene.depth.shape) < outliers
    box = scene.xyz.reshape(-1, 3)
    xyz[wrong] = rng.uniform(box.min(0), box.max(0), (wrong.sum(), 3))
    return xyz, wrong


# Eq. 13 and the closed-form depth.


def test_backproject_matches_hand_computed_eq13():
    # f = 2, (c_x, c_y) = (1, 0.5) for H = 2, W = 3; R = 90° about z; t = (1, 2, 3).
    K = intrinsics(2.0, 2, 3)
    R = np.array([[[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]])
    t = np.array([[1.0, 2, 3]])
    depth = np.full((1, 2, 3), 2.0)
    depth[0, 1, 2] = 4.0
    X = backproject(depth, K, R, t)
    # (u, v) = (2, 1), d = 4: K⁻¹[u, v, 1] = (0.5, 0.25, 1); ×4 − t = (1, −1, 1); Rᵀ(1, −1, 1) = (−1, −1, 1).
    np.testing.assert_allclose(X[0, 1, 2], [-1.0, -1.0, 1.0], atol=1e-15)
    # (u, v) = (0, 0), d = 2: (−0.5, −0.25, 1)·2 − t = (−2, −2.5, −1); Rᵀ(...) = (−2.5, 2, −1).
    np.testing.assert_allclose(X[0, 0, 0], [-2.5, 2.0, -1.0], atol=1e-15)


@given(seeds)
def test_depth_is_the_camera_z_and_inverts_backprojection(seed):
    scene = make_scene(seed)
    camera = np.einsum("tij,thwj->thwi", scene.R, scene.xyz) + scene.t[:, None, None]  # R·X + t
    depth, residual = depth_from_xyz(scene.xyz, scene.K, scene.R, scene.t)
    np.testing.assert_allclose(camera[..., 2], scene.depth, rtol=1e-12)
    np.testing.assert_allclose(depth, scene.depth, rtol=1e-12)
    assert residual.max() < 1e-12 * scene.depth.max()


@given(seeds)
def test_closed_form_depth_minimises_eq12_for_each_pixel(seed):
    scene = make_scene(seed, frames=1)
    xyz, _ = corrupt(scene, seed, noise=0.05, outliers=0.2)

    def error(depth: np.ndarray) -> np.ndarray:  # ‖q̃ − q̂‖ per pixel
        return np.linalg.norm(backproject(depth, scene.K, scene.R, scene.t) - xyz, axis=-1)

    depth, residual = depth_from_xyz(xyz, scene.K, scene.R, scene.t)
    np.testing.assert_allclose(residual, error(depth), rtol=1e-9, atol=1e-12)
    for step in (-1e-3, 1e-3):
        assert (error(depth + step) > residual).all()


# Recovery: exact on noise-free data.


@given(seeds, st.integers(1, 3))
def test_random_cameras_and_scenes_are_recovered_exactly(seed, frames):
    scene = make_scene(seed, frames)
    result = recover_cameras(scene.xyz)
    assert result.converged and result.K.shape == (3, 3)
    assert rotation_error(result.R, scene.R).max() < 1e-9
    np.testing.assert_allclose(result.K, scene.K, rtol=1e-9)
    np.testing.assert_allclose(result.t, scene.t, rtol=0, atol=1e-8)
    np.testing.assert_allclose(result.depth, scene.depth, rtol=1e-9)
    assert result.residual.max() < 1e-9


@given(
    seeds,
    st.booleans(),
    st.sampled_from(["geman-mcclure", "cauchy", "squared"]),
    st.booleans(),
    st.booleans(),
)
def test_the_start_is_exact_on_exact_maps_so_refinement_takes_at_most_two_steps(
    seed, zoom, loss, single, plane
):
    """Step 2 alone solves noise-free input (Gauss-Newton only confirms it), for every loss, focal model,
    float width and a planar frame, here and on the rendered synthetic scenes whose wall and floor are planes."""
    scene = make_scene(seed, frames=3, zoom=zoom, plane=plane and not zoom)
    xyz = scene.xyz.astype(np.float32) if single else scene.xyz
    assert recover_cameras(xyz, shared_focal=not zoom, loss=loss).iterations <= 2
    from nanofourdnex.synthetic import make_scene as render_scene

    rendered = render_scene(seed % 1000, num_frames=5, height=24, width=36).xyz
    assert recover_cameras(rendered.astype(xyz.dtype), shared_focal=not zoom, loss=loss).iterations <= 2


@given(seeds)
def test_backproject_of_the_recovery_reproduces_xyz(seed):
    scene = make_scene(seed)
    result = recover_cameras(scene.xyz)
    np.testing.assert_array_equal(result.camera_to_world(), camera_to_world(result.R, result.t))
    np.testing.assert_allclose(result.centers, result.camera_to_world()[:, :3, 3], rtol=1e-15)
    np.testing.assert_allclose(np.einsum("tij,tj->ti", result.R, result.centers) + result.t, 0, atol=1e-12)
    np.testing.assert_allclose(backproject(result.depth, result.K, result.R, result.t), scene.xyz, atol=1e-9)


@given(seeds)
def test_a_focal_per_frame_is_recovered_exactly(seed):
    scene = make_scene(seed, frames=3, zoom=True)
    result = recover_cameras(scene.xyz, shared_focal=False)
    assert result.K.shape == (3, 3, 3)
    np.testing.assert_allclose(result.K, scene.K, rtol=1e-9)
    assert rotation_error(result.R, scene.R).max() < 1e-9


@given(seeds)
def test_a_planar_frame_is_recovered_exactly_with_a_shared_focal(seed):
    scene = make_scene(seed, frames=3, plane=True)
    result = recover_cameras(scene.xyz)
    assert rotation_error(result.R, scene.R).max() < 1e-9
    np.testing.assert_allclose(result.K, scene.K, rtol=1e-9)
    np.testing.assert_allclose(result.depth, scene.depth, rtol=1e-9)


def test_float32_input_gives_float32_depth_accurate_to_its_precision():
    scene = make_scene(3, frames=2, height=24, width=32)
    result = recover_cameras(scene.xyz.astype(np.float32))
    assert result.depth.dtype == np.float32 and result.residual.dtype == np.float32
    assert result.R.dtype == np.float64
    assert rotation_error(result.R, scene.R).max() < 1e-5
    np.testing.assert_allclose(result.K, scene.K, rtol=1e-5)
    np.testing.assert_allclose(result.depth, scene.depth, rtol=1e-4)


@given(seeds)
def test_torch_input_gives_the_numpy_result(seed):
    scene = make_scene(seed, frames=2)
    confidence = np.random.default_rng(seed).uniform(0.5, 2.0, scene.depth.shape)
    expected = recover_cameras(scene.xyz, confidence)
    result = recover_cameras(torch.from_numpy(scene.xyz), torch.from_numpy(confidence))
    for name in ("R", "t", "K", "depth", "residual"):
        np.testing.assert_array_equal(getattr(result, name), getattr(expected, name))


def test_integer_and_torch_float32_input_are_read_as_float32():
    xyz = np.round(1000 * make_scene(8, frames=2).xyz)  # millimetres
    as_float32 = recover_cameras(xyz.astype(np.float32))
    assert as_float32.depth.dtype == np.float32
    for result in (recover_cameras(xyz.astype(np.int64)), recover_cameras(torch.from_numpy(xyz).float())):
        for name in ("R", "t", "K", "depth", "residual"):
            np.testing.assert_array_equal(getattr(result, name), getattr(as_float32, name))
            assert getattr(result, name).dtype == getattr(as_float32, name).dtype


def test_depth_of_frames_larger_than_a_block_is_their_camera_z():
    """Frames of 2¹⁷ pixels are one block each: every frame of the clip still gets its depth."""
    scene = make_scene(0, frames=3, height=256, width=512)
    depth, residual = depth_from_xyz(scene.xyz, scene.K, scene.R, scene.t)
    np.testing.assert_allclose(depth, scene.depth, rtol=1e-12)
    assert residual.max() < 1e-12 * scene.depth.max()


# Recovery: invariances.


@given(seeds, st.floats(0.1, 10), seeds)
def test_cameras_move_with_a_similarity_of_the_world(seed, scale, motion_seed):
    # X' = s·Q·X + b  ⇒  R' = R·Qᵀ, t' = s·t − R'·b, K' = K, d' = s·d.
    scene = make_scene(seed)
    xyz, _ = corrupt(scene, seed, noise=0.01, outliers=0.2)  # noisy, so the fit itself must be covariant
    rng = np.random.default_rng(motion_seed)
    Q, b = Rotation.random(random_state=rng).as_matrix(), rng.normal(0, 10, 3)
    before = recover_cameras(xyz)
    after = recover_cameras(scale * xyz @ Q.T + b)
    # Rounding differs between the two runs, and a noisy fit stops once its steps fall below 1/1000
    # of the noise, so the two agree to about 1e-6 of the scene, not to rounding.
    size = scale * np.abs(before.depth).max()
    assert rotation_error(after.R, before.R @ Q.T).max() < 1e-6
    np.testing.assert_allclose(after.t, scale * before.t - after.R @ b, atol=1e-6 * size)
    np.testing.assert_allclose(after.K, before.K, rtol=1e-6)
    np.testing.assert_allclose(after.depth, scale * before.depth, atol=1e-6 * size)


def outcome(xyz: np.ndarray, confidence: np.ndarray) -> CameraRecovery | str:
    """The recovery, or the message of the ValueError that refused it."""
    try:
        return recover_cameras(xyz, confidence)
    except ValueError as error:
        return str(error)


@given(seeds, st.floats(0.05, 0.6))
def test_zero_confidence_is_the_same_as_removing_the_pixel(seed, removed):
    scene = make_scene(seed, frames=2, height=16, width=20)
    xyz, _ = corrupt(scene, seed, noise=0.01, outliers=0.2)
    rng = np.random.default_rng(seed + 1)
    gone = rng.random(scene.depth.shape) < removed
    confidence = rng.uniform(0.5, 2.0, scene.depth.shape)
    confidence[gone] = 0.0
    missing = xyz.copy()
    missing[gone] = np.nan
    weighted = outcome(xyz, confidence)
    removed_ = outcome(missing, np.where(gone, 1.0, confidence))
    if isinstance(weighted, str) or isinstance(removed_, str):  # a fit too spoilt to converge: same refusal
        assert weighted == removed_
        return
    for name in ("R", "t", "K"):
        np.testing.assert_allclose(getattr(weighted, name), getattr(removed_, name), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(weighted.depth[~gone], removed_.depth[~gone], rtol=1e-12)
    assert np.isnan(removed_.depth[gone]).all() and np.isnan(removed_.residual[gone]).all()


# Recovery: robust to noise and outliers; the residual is an inlier map.


def test_a_noisy_recovery_counts_the_steps_it_takes_to_converge():
    """Noise moves the optimum off the exact start, and the IRLS weights change with every step, so the
    steps shrink by a factor per step, not quadratically: reaching 1/1000 of σ takes several (11 here)."""
    scene = make_scene(6)
    xyz, _ = corrupt(scene, 6, noise=0.01, outliers=0.0)
    result = recover_cameras(xyz)
    assert result.converged and 5 <= result.iterations < MAX_ITERATIONS


def test_a_uniform_confidence_weighs_like_no_confidence():
    scene = make_scene(4)
    xyz, _ = corrupt(scene, 4, noise=0.01, outliers=0.1)
    plain = recover_cameras(xyz)
    faint = recover_cameras(xyz, confidence=np.full(scene.depth.shape, 1e-3))  # weights sum to less than 1
    np.testing.assert_allclose(faint.R, plain.R, atol=1e-9)
    np.testing.assert_allclose(faint.t, plain.t, atol=1e-9)
    np.testing.assert_allclose(faint.K, plain.K, rtol=1e-9)


def test_robust_loss_survives_outliers_that_break_least_squares():
    scene = make_scene(7, frames=4, height=48, width=64)
    xyz, _ = corrupt(scene, 8, noise=0.01, outliers=0.4)
    robust = recover_cameras(xyz)
    plain = recover_cameras(xyz, loss="squared")
    assert robust.converged
    assert np.degrees(rotation_error(robust.R, scene.R)).max() < 1.0
    assert abs(robust.focal / scene.K[0, 0] - 1) < 0.02
    assert (
        np.degrees(rotation_error(plain.R, scene.R)).max()
        > 10 * np.degrees(rotation_error(robust.R, scene.R)).max()
    )


@given(seeds, st.sampled_from([0.0, 0.05, 0.2, 0.4]))
def test_robust_recovery_is_accurate_for_any_share_of_outliers(seed, outliers):
    """With 0.5 % noise the default stays within 1° and 3 % focal from no outliers up to 40 %
    (measured over 200 such scenes: at most 0.21° and 0.5 %; a failed start is off by tens of degrees)."""
    scene = make_scene(seed, frames=3, height=48, width=64)
    xyz, _ = corrupt(scene, seed, noise=0.005, outliers=outliers)
    result = recover_cameras(xyz)
    assert np.degrees(rotation_error(result.R, scene.R)).max() < 1.0
    assert abs(result.focal / scene.K[0, 0] - 1) < 0.03


def test_residual_separates_outliers_from_exact_points():
    scene = make_scene(11, frames=3, height=32, width=40)
    xyz, wrong = corrupt(scene, 12, noise=0.0, outliers=0.3)
    result = recover_cameras(xyz)
    assert result.residual[~wrong].max() < 1e-8
    assert result.residual[wrong].min() > 1e-6
    np.testing.assert_allclose(result.depth[~wrong], scene.depth[~wrong], rtol=1e-8)


# Degenerate input is refused with the reason.


def degenerate_inputs() -> list[tuple[str, dict, str]]:
    scene = make_scene(5, frames=2)
    few = scene.xyz.copy()
    few[1, 1:] = np.nan
    few[1, 0, 4:] = np.nan  # 4 pixels left in frame 1
    collinear = scene.xyz.copy()
    collinear[1] = np.linspace(0, 1, 12 * 16)[:, None].reshape(12, 16, 1) * np.array([1.0, 2, 3])
    planar = make_scene(5, frames=2, zoom=True, plane=True).xyz
    one_point = scene.xyz.copy()
    one_point[1] = scene.xyz[1, 3, 4]
    # Frame 0 of integer points that sum to 0 and frame 1 all at 0: the world's centroid, exactly, so
    # frame 1's scatter is exactly 0 (0/0 on the way to the refusal).
    half = np.random.default_rng(5).integers(-5, 6, (12, 8, 3)).astype(np.float64)
    at_centroid = np.zeros_like(scene.xyz)
    at_centroid[0] = np.concatenate([half, -half], axis=1)
    return [
        ("wrong shape", {"xyz": scene.xyz[0]}, r"xyz must be \(T, H, W, 3\)"),
        ("four channels", {"xyz": np.ones((2, 12, 16, 4))}, r"xyz must be \(T, H, W, 3\) with H, W >= 2"),
        ("one row", {"xyz": scene.xyz[:, :1]}, r"xyz must be \(T, H, W, 3\) with H, W >= 2"),
        (
            "all equal",
            {"xyz": np.ones_like(scene.xyz)},
            "^all valid xyz points are equal; cameras are not determined$",
        ),
        (
            "all nan",
            {"xyz": np.full_like(scene.xyz, np.nan)},
            "^xyz has no finite pixel with positive confidence$",
        ),
        (
            "too few pixels",
            {"xyz": few},
            "^frame 1 has 4 valid sampled pixels, at least 6 are needed; use a smaller stride or fewer invalid pixels$",
        ),
        ("collinear frame", {"xyz": collinear}, "frame 1 are collinear"),
        (
            "frame of one point",
            {"xyz": one_point},
            "frame 1 are collinear or all equal; its camera is not determined$",
        ),
        (
            "frame of one point at the centroid",
            {"xyz": at_centroid},
            "frame 1 are collinear or all equal; its camera is not determined$",
        ),
        (
            "planar, focal per frame",
            {"xyz": planar, "shared_focal": False},
            r"frame\(s\) \[0\] lie on a plane .*; use shared_focal=True$",
        ),
        ("only planar frames", {"xyz": planar[:1]}, "; at least one frame needs depth variation$"),
        (
            "bad confidence",
            {"xyz": scene.xyz, "confidence": -np.ones(scene.depth.shape)},
            "^confidence must be finite and >= 0$",
        ),
        (
            "confidence shape",
            {"xyz": scene.xyz, "confidence": np.ones((2, 12))},
            r"confidence must be \(T, H, W\)",
        ),
        ("unknown loss", {"xyz": scene.xyz, "loss": "huber"}, "loss must be one of"),
        ("zero stride", {"xyz": scene.xyz, "stride": 0}, "stride must be >= 1"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [pytest.param(kwargs, message, id=case) for case, kwargs, message in degenerate_inputs()],
)  # ids are the case names: a regex in a test id does not survive being passed back to pytest by mutmut
def test_degenerate_input_raises_with_the_reason(kwargs, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the reason, not a numpy warning on the way (0/0 for equal points)
        with pytest.raises(ValueError, match=message):
            recover_cameras(**kwargs)


RUNAWAY = {  # a refinement that ran away, for the 12×16 scenes: focal bounds 16/1000 and 16·1000 px
    "focal below size/1000": (lambda R, t, f: (R, t, np.full_like(f, 16 / 1000.2)), True),
    "focal just above size/1000": (lambda R, t, f: (R, t, np.full_like(f, 16 / 999.8)), False),
    "focal above 1000 size": (lambda R, t, f: (R, t, np.full_like(f, 16 * 1000.2)), True),
    "focal just below 1000 size": (lambda R, t, f: (R, t, np.full_like(f, 16 * 999.8)), False),
    "R not finite": (lambda R, t, f: (np.where(np.eye(3) > 0, np.nan, R), t, f), True),
    "t not finite": (lambda R, t, f: (R, np.full_like(t, np.inf), f), True),
}


@pytest.mark.parametrize("case", RUNAWAY)
def test_a_fit_that_ran_away_is_refused_with_the_reason(case, monkeypatch):
    """A focal outside [size/1000, 1000·size] or non-finite cameras are a fit that ran away: refused."""
    spoil, refused = RUNAWAY[case]

    def runaway(*args):
        R, t, focal, iterations, converged = refine(*args)
        return (*spoil(R, t, focal), iterations, converged)

    refine = reprojection._refine
    monkeypatch.setattr(reprojection, "_refine", runaway)
    xyz = make_scene(0, frames=2).xyz
    if refused:
        message = (
            r"^the camera fit diverged \(focal .* px for a 12×16 image, loss 'cauchy'\); the valid pixels"
        )
        with pytest.raises(ValueError, match=message):
            recover_cameras(xyz, loss="cauchy")
    else:
        assert recover_cameras(xyz, loss="cauchy").focal == spoil(None, None, np.ones(1))[2][0]


@pytest.mark.parametrize(("dtype", "tolerance"), [(np.float64, 1e-10), (np.float32, 1.2e-6)])
def test_the_refinement_stops_below_1e_10_or_1_2e_6_for_float32_input(dtype, tolerance, monkeypatch):
    """Spec: steps below 1e-10 (1.2e-6 for float32 input, which carries about 7 digits) end the fit."""
    tolerances = []

    def spy(*args):
        tolerances.append(args[-1])
        return refine(*args)

    refine = reprojection._refine
    monkeypatch.setattr(reprojection, "_refine", spy)
    recover_cameras(make_scene(0, frames=2).xyz.astype(dtype))
    assert tolerances == [pytest.approx(tolerance, rel=0.01)]


def test_a_fit_that_does_not_converge_stops_after_max_iterations_and_says_so():
    xyz = np.random.default_rng(0).uniform(-1, 1, (2, 12, 16, 3))  # no camera explains random points
    result = recover_cameras(xyz)
    assert result.iterations == MAX_ITERATIONS and not result.converged


def test_two_rows_and_columns_are_a_valid_shape():
    scene = make_scene(0, frames=2, height=2, width=16)
    assert recover_cameras(scene.xyz).depth.shape == (2, 2, 16)
    assert recover_cameras(make_scene(0, frames=2, height=16, width=2).xyz).depth.shape == (2, 16, 2)


def test_cameras_and_depth_of_the_wrong_shape_are_refused():
    scene = make_scene(0, frames=2)
    message = r"^cameras must be K \(3, 3\) or \(T, 3, 3\), R \(T, 3, 3\), t \(T, 3\) with T = 2, got K "
    for K, R, t in (
        (scene.K[:2], scene.R, scene.t),
        (scene.K, scene.R[:1], scene.t),
        (scene.K, scene.R, scene.t[:1]),
    ):
        with pytest.raises(ValueError, match=message):
            depth_from_xyz(scene.xyz, K, R, t)
    with pytest.raises(ValueError, match=r"^depth must be \(T, H, W\), got \(12, 16\)$"):
        backproject(scene.depth[0], scene.K, scene.R, scene.t)


# Files: load_xyz, save_recovery.


def test_saved_recovery_round_trips_and_the_renderer_reads_its_cameras(tmp_path):
    scene = make_scene(2, frames=3, height=20, width=24)
    np.savez(tmp_path / "clip.npz", xyz=scene.xyz)
    result = recover_cameras(load_xyz(tmp_path / "clip.npz"))
    paths = save_recovery(result, tmp_path / "out")
    assert [p.name for p in paths] == ["cameras.json", "depth.npz", "recovery.png"]
    cameras = json.loads(paths[0].read_text())
    assert "world-to-camera" in cameras["convention"]
    np.testing.assert_array_equal(cameras["K"], result.K)
    for k, frame in enumerate(cameras["frames"]):
        np.testing.assert_array_equal(frame["R"], result.R[k])
        np.testing.assert_array_equal(frame["t"], result.t[k])
        to_world = np.array(frame["camera_to_world"])  # inverse of [R | t]
        np.testing.assert_allclose(to_world[:3, :3] @ result.R[k], np.eye(3), atol=1e-12)
        np.testing.assert_allclose(to_world[:3, :3] @ result.t[k] + to_world[:3, 3], 0, atol=1e-12)
        np.testing.assert_array_equal(to_world[3], [0, 0, 0, 1])
    with np.load(paths[1]) as saved:
        np.testing.assert_array_equal(saved["depth"], result.depth)
        np.testing.assert_array_equal(saved["residual"], result.residual)
    image = matplotlib.image.imread(paths[2])
    assert image.ndim == 3 and image[..., :3].std() > 0.05  # a real picture, not a blank canvas
    K, R, t = load_trajectory_json(paths[0])
    np.testing.assert_array_equal(K.numpy(), result.K)
    np.testing.assert_array_equal(R.numpy(), result.R)
    np.testing.assert_array_equal(t.numpy(), result.t)


def test_saved_cameras_with_a_focal_per_frame_carry_one_k_per_frame(tmp_path):
    scene = make_scene(4, frames=2, zoom=True)
    result = recover_cameras(scene.xyz, shared_focal=False)
    save_recovery(result, tmp_path)
    cameras = json.loads((tmp_path / "cameras.json").read_text())
    assert cameras["K"] is None
    np.testing.assert_array_equal([frame["K"] for frame in cameras["frames"]], result.K)


def bad_files(tmp_path) -> list[tuple[object, str]]:
    np.savez(tmp_path / "nokey.npz", points=np.zeros((1, 2, 2, 3)))
    np.savez(tmp_path / "shape.npz", xyz=np.zeros((2, 2, 3)))
    np.savez(tmp_path / "nan.npz", xyz=np.full((1, 2, 2, 3), np.nan))
    np.save(tmp_path / "plain.npy", np.zeros((1, 2, 2, 3)))
    (tmp_path / "text.npz").write_text("not an archive")
    return [
        (tmp_path / "missing.npz", "no file at .*missing.npz"),
        (tmp_path / "nokey.npz", r"has keys \['points'\], not \['xyz'\]"),
        (tmp_path / "shape.npz", r"must be \(T, H, W, 3\), got \(2, 2, 3\)"),
        (tmp_path / "nan.npz", "has no finite value"),
        (tmp_path / "plain.npy", "not an .npz archive"),
        (tmp_path / "text.npz", "is not readable as an .npz archive"),
    ]


def test_load_xyz_explains_every_bad_file(tmp_path):
    for path, message in bad_files(tmp_path):
        with pytest.raises(ValueError, match=message):
            load_xyz(path)
