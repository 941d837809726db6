"""Eq. 1, camera smoothness: velocity, acceleration, curvature and the keep rule. Spec: specs/eq01_camera_smoothness.md"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.transform import Rotation

from nanofourdnex.paper.curvature import (
    CameraSmoothness,
    camera_centers_from_c2w,
    camera_centers_from_w2c,
    camera_smoothness,
    curvature,
    is_smooth,
)

pytestmark = pytest.mark.eq01

frame_counts = st.integers(3, 12)
rotvecs = arrays(np.float64, 3, elements=st.floats(-math.pi, math.pi))
points = arrays(np.float64, 3, elements=st.floats(-10, 10))


@st.composite
def trajectories(draw, frames: int | None = None) -> np.ndarray:
    """Centres (T, 3) whose steps have lengths in [0.1, 2]: no near-standing frames, so κ is well conditioned."""
    frames = frames or draw(frame_counts)
    polar = arrays(np.float64, (frames - 1, 3), elements=st.floats(0, 1))
    length, theta, phi = draw(polar).T
    length, theta, phi = 0.1 + 1.9 * length, math.pi * theta, 2 * math.pi * phi
    steps = length[:, None] * np.stack(
        [np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1
    )
    return draw(points) + np.concatenate([np.zeros((1, 3)), np.cumsum(steps, axis=0)])


def test_right_angle_turn_with_unit_steps_matches_hand_value():
    # v_0 = (1, 0, 0), v_1 = (0, 1, 0): ‖v_1 − v_0‖ = √2, ‖v_1‖² + ‖v_0‖² = 2.
    centers = np.array([[0.0, 0, 0], [1, 0, 0], [1, 1, 0]])
    eps = 1e-3
    np.testing.assert_allclose(curvature(centers, eps=eps), [math.sqrt(2) / (2 + eps)], rtol=1e-15)
    smooth = camera_smoothness(centers, eps=eps)
    assert smooth.mean_speed == pytest.approx(1.0, rel=1e-15)
    assert smooth.mean_acceleration == pytest.approx(math.sqrt(2), rel=1e-15)
    assert smooth.mean_curvature == pytest.approx(math.sqrt(2) / (2 + eps), rel=1e-15)
    default = math.sqrt(2) / (2 + 1e-8)  # both functions default to ε = 1e-8
    assert (
        curvature(centers)[0]
        == camera_smoothness(centers).mean_curvature
        == pytest.approx(default, rel=1e-15)
    )


def test_speeding_up_on_a_straight_line_has_nonzero_curvature():
    # v_0 = (1, 0, 0), v_1 = (3, 0, 0): κ = 2 / (9 + 1 + ε). Eq. 1 also penalises changes of speed.
    centers = np.array([[0.0, 0, 0], [1, 0, 0], [4, 0, 0]])
    np.testing.assert_allclose(curvature(centers, eps=1e-8), [2 / (10 + 1e-8)], rtol=1e-15)


@given(
    radius=st.floats(0.1, 100),
    step=st.floats(0.05, 3.0),
    start=st.floats(0, 2 * math.pi),
    rotvec=rotvecs,
    frames=frame_counts,
)
def test_uniform_circle_has_closed_form_curvature(radius, step, start, rotvec, frames):
    # c_k = ρ(cos(φ + kθ), sin(φ + kθ), 0): ‖v‖ = 2ρ sin(θ/2), consecutive v turn by θ, so
    # ‖v_{k+1} − v_k‖ = 2‖v‖ sin(θ/2) = 4ρ sin²(θ/2) and κ = 4ρ sin²(θ/2) / (8ρ² sin²(θ/2) + ε) → 1/(2ρ).
    angles = start + step * np.arange(frames)
    circle = radius * np.stack([np.cos(angles), np.sin(angles), np.zeros(frames)], axis=-1)
    centers = Rotation.from_rotvec(rotvec).apply(circle)  # the circle in any plane through the origin
    eps = 1e-6
    s2 = math.sin(step / 2) ** 2
    expected = 4 * radius * s2 / (8 * radius**2 * s2 + eps)
    np.testing.assert_allclose(curvature(centers, eps=eps), np.full(frames - 2, expected), rtol=1e-9)
    np.testing.assert_allclose(curvature(centers, eps=1e-300), 1 / (2 * radius), rtol=1e-9)


@given(trajectories(frames=2), frame_counts)
def test_constant_velocity_straight_path_has_zero_curvature(first_step, frames):
    start, velocity = first_step[0], first_step[1] - first_step[0]
    centers = start + np.arange(frames)[:, None] * velocity
    kappa = curvature(centers)
    assert kappa.shape == (frames - 2,)
    assert np.all(kappa <= 1e-9)
    smooth = camera_smoothness(centers)
    assert smooth.mean_speed == pytest.approx(np.linalg.norm(velocity), rel=1e-9, abs=1e-12)
    assert smooth.mean_acceleration <= 1e-12


@given(trajectories(), rotvecs, points)
def test_curvature_is_rigid_motion_invariant(centers, rotvec, translation):
    moved = Rotation.from_rotvec(rotvec).apply(centers) + translation
    np.testing.assert_allclose(curvature(moved), curvature(centers), rtol=1e-9, atol=1e-10)
    before, after = camera_smoothness(centers), camera_smoothness(moved)
    assert after.mean_speed == pytest.approx(before.mean_speed, rel=1e-9)
    assert after.mean_acceleration == pytest.approx(before.mean_acceleration, rel=1e-9, abs=1e-10)


@given(trajectories(), st.floats(0.1, 10), st.sampled_from([1e-8, 1e-3, 1.0]))
def test_curvature_scales_inversely_with_trajectory_scale(centers, scale, eps):
    # Exactly: κ_ε(s·c) = κ_{ε/s²}(c) / s; with ε negligible against ‖v‖² ≥ 0.01 this is κ(c) / s.
    scaled = curvature(scale * centers, eps=eps)
    np.testing.assert_allclose(scaled, curvature(centers, eps=eps / scale**2) / scale, rtol=1e-9, atol=1e-11)
    scaled = curvature(scale * centers, eps=1e-14)
    np.testing.assert_allclose(scaled, curvature(centers, eps=1e-14) / scale, rtol=1e-9, atol=1e-11)


@given(trajectories())
def test_reversing_time_reverses_the_curvature_sequence(centers):
    # Reversed: v'_i = −v_{T−2−i}, so v'_{i+1} − v'_i = v_{T−2−i} − v_{T−3−i} and κ'_i = κ_{T−3−i}.
    np.testing.assert_allclose(curvature(centers[::-1]), curvature(centers)[::-1], rtol=1e-12, atol=0)


@given(points, frame_counts, st.sampled_from([1e-12, 1e-8, 1.0]))
def test_standing_camera_has_zero_speed_and_curvature(position, frames, eps):
    centers = np.tile(position, (frames, 1))
    np.testing.assert_array_equal(curvature(centers, eps=eps), np.zeros(frames - 2))
    smooth = camera_smoothness(centers, eps=eps)
    assert (smooth.mean_speed, smooth.mean_acceleration, smooth.mean_curvature) == (0.0, 0.0, 0.0)


def test_pauses_inside_a_trajectory_stay_finite():
    # c_1 = c_2 = c_3: v_1 = v_2 = 0, the 0/0 that ε exists for.
    centers = np.array([[0.0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 2, 0]])
    kappa = curvature(centers)
    assert np.isfinite(kappa).all()
    np.testing.assert_allclose(kappa, [1 / (1 + 1e-8), 0.0, 2 / (4 + 1e-8)], rtol=1e-15)


@given(trajectories())
def test_numpy_and_torch_agree(centers):
    as_torch = torch.from_numpy(centers)
    kappa = curvature(as_torch)
    assert isinstance(kappa, torch.Tensor) and kappa.dtype == torch.float64
    np.testing.assert_allclose(kappa.numpy(), curvature(centers), rtol=1e-12, atol=1e-15)
    ours, theirs = camera_smoothness(as_torch), camera_smoothness(centers)
    assert ours.mean_curvature == pytest.approx(theirs.mean_curvature, rel=1e-12)
    assert ours.mean_speed == pytest.approx(theirs.mean_speed, rel=1e-12)


def test_dtypes_follow_the_input():
    centers = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0]])
    assert curvature(centers).dtype == np.float64  # integers become float64
    assert curvature(centers.astype(np.float32)).dtype == np.float32
    assert curvature(torch.tensor(centers, dtype=torch.float32)).dtype == torch.float32
    assert curvature(torch.tensor(centers)).dtype == torch.float64  # integer tensors too


def test_unsigned_centres_are_converted_before_they_are_differenced():
    # Moving backwards in uint8: differenced as uint8, 40 − 60 would wrap around to 236 (and 236² to 144).
    centers = np.array([[60, 0, 0], [40, 0, 0], [0, 0, 0]], dtype=np.uint8)  # v = −20, −40
    smooth = camera_smoothness(centers)
    assert (smooth.mean_speed, smooth.mean_acceleration) == (30.0, 20.0)
    assert smooth.mean_curvature == pytest.approx(20 / (400 + 1600 + 1e-8), rel=1e-15)


def test_torch_centres_that_require_grad_stay_differentiable():
    centers = torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0]], dtype=torch.float64, requires_grad=True)
    curvature(centers).sum().backward()
    assert centers.grad is not None and torch.isfinite(centers.grad).all() and centers.grad.abs().sum() > 0


@given(st.lists(trajectories(frames=7), min_size=1, max_size=6), st.booleans())
def test_batched_equals_looping(clips, two_batch_axes):
    batch = np.stack(clips)  # (B, T, 3)
    if two_batch_axes:
        batch = np.stack([batch, batch[::-1]])  # (2, B, T, 3)
    flat = batch.reshape(-1, 7, 3)
    kappa = curvature(batch)
    assert kappa.shape == (*batch.shape[:-2], 5)
    smooth = camera_smoothness(batch)
    assert smooth.mean_curvature.shape == batch.shape[:-2]
    for index, clip in enumerate(flat):
        np.testing.assert_allclose(kappa.reshape(-1, 5)[index], curvature(clip), rtol=1e-12)
        single = camera_smoothness(clip)
        assert smooth.mean_speed.reshape(-1)[index] == pytest.approx(single.mean_speed, rel=1e-12)
        assert smooth.mean_acceleration.reshape(-1)[index] == pytest.approx(
            single.mean_acceleration, rel=1e-12
        )
        assert smooth.mean_curvature.reshape(-1)[index] == pytest.approx(single.mean_curvature, rel=1e-12)


def test_smoothness_of_one_clip_is_floats_and_of_a_batch_is_arrays():
    centers = np.array([[0.0, 0, 0], [1, 0, 0], [1, 1, 0]])
    single = camera_smoothness(centers)
    assert all(type(x) is float for x in vars(single).values())
    batch = camera_smoothness(torch.from_numpy(np.stack([centers, centers])))
    assert all(isinstance(x, torch.Tensor) and x.shape == (2,) for x in vars(batch).values())


def test_keep_rule_compares_each_mean_with_its_threshold():
    # The right-angle clip: mean speed 1, acceleration √2, curvature √2/2 ≈ 0.7071.
    smooth = camera_smoothness(np.array([[0.0, 0, 0], [1, 0, 0], [1, 1, 0]]), eps=1e-12)
    assert is_smooth(smooth, max_speed=1.0, max_acceleration=1.5, max_curvature=0.71) is True
    assert is_smooth(smooth, max_speed=0.9, max_acceleration=1.5, max_curvature=0.71) is False
    assert is_smooth(smooth, max_speed=1.0, max_acceleration=1.4, max_curvature=0.71) is False
    assert is_smooth(smooth, max_speed=1.0, max_acceleration=1.5, max_curvature=0.70) is False
    assert is_smooth(smooth, max_speed=math.inf, max_acceleration=math.inf, max_curvature=0.71) is True


@given(
    st.lists(trajectories(frames=6), min_size=1, max_size=8),
    arrays(np.float64, 3, elements=st.floats(0, 3)),
    arrays(np.float64, 3, elements=st.floats(0, 1)),
)
def test_keep_rule_is_elementwise_and_monotone_in_thresholds(clips, thresholds, increase):
    smooth = camera_smoothness(np.stack(clips))
    kept = is_smooth(smooth, *thresholds)
    assert kept.dtype == bool and kept.shape == (len(clips),)
    expected = [
        s <= thresholds[0] and a <= thresholds[1] and k <= thresholds[2]
        for s, a, k in zip(smooth.mean_speed, smooth.mean_acceleration, smooth.mean_curvature, strict=True)
    ]
    np.testing.assert_array_equal(kept, expected)
    assert np.all(is_smooth(smooth, *(thresholds + increase))[kept])  # looser thresholds never reject


@given(points, frame_counts)
def test_standing_camera_passes_any_thresholds(position, frames):
    smooth = camera_smoothness(np.tile(position, (frames, 1)))
    assert is_smooth(smooth, 0.0, 0.0, 0.0) is True


@pytest.mark.parametrize("bad", [-1.0, math.nan])
@pytest.mark.parametrize("name", ["speed", "acceleration", "curvature"])
def test_keep_rule_rejects_negative_or_nan_thresholds(bad, name):
    thresholds = {"max_speed": 1.0, "max_acceleration": 1.0, "max_curvature": 1.0, f"max_{name}": bad}
    with pytest.raises(ValueError, match=f"^max_{name} must be a non-negative number"):
        is_smooth(CameraSmoothness(1.0, 1.0, 1.0), **thresholds)


@given(st.lists(st.tuples(rotvecs, points), min_size=3, max_size=6), st.booleans())
def test_centres_from_c2w_and_w2c_agree_and_map_to_the_camera_origin(poses, use_torch):
    R_c2w = Rotation.from_rotvec([rotvec for rotvec, _ in poses]).as_matrix()  # (T, 3, 3)
    centers = np.array([center for _, center in poses])  # (T, 3)
    c2w = np.tile(np.eye(4), (len(poses), 1, 1))
    c2w[:, :3, :3], c2w[:, :3, 3] = R_c2w, centers
    R = R_c2w.transpose(0, 2, 1)  # world-to-camera: R = R_c2wᵀ, t = −R·c
    t = -np.einsum("tij,tj->ti", R, centers)
    if use_torch:
        c2w, R, t = torch.from_numpy(c2w), torch.from_numpy(R), torch.from_numpy(t)
    from_c2w, from_w2c = camera_centers_from_c2w(c2w), camera_centers_from_w2c(R, t)
    np.testing.assert_allclose(np.asarray(from_c2w), centers, rtol=0, atol=0)
    np.testing.assert_allclose(np.asarray(from_w2c), centers, rtol=1e-12, atol=1e-12)
    camera_origin = np.einsum("tij,tj->ti", np.asarray(R), np.asarray(from_w2c)) + np.asarray(t)  # R·c + t
    np.testing.assert_allclose(camera_origin, 0, atol=1e-12)


def test_centres_keep_batch_dimensions():
    c2w = np.tile(np.eye(4), (2, 5, 7, 1, 1))
    assert camera_centers_from_c2w(c2w).shape == (2, 5, 7, 3)
    R, t = np.tile(np.eye(3), (2, 7, 1, 1)), np.ones((2, 7, 3))
    np.testing.assert_array_equal(camera_centers_from_w2c(R, t), -np.ones((2, 7, 3)))


@pytest.mark.parametrize(
    ("centers", "message"),
    [
        (np.zeros(3), r"must be \(\.\.\., T, 3\), got \(3,\)"),
        (np.zeros((5, 2)), r"must be \(\.\.\., T, 3\), got \(5, 2\)"),
        (np.zeros((4, 2, 3)), r"needs T >= 3 camera centres \(two velocities\), got T=2$"),
        (np.array([[0, 0, 0], [1, np.nan, 0], [2, 0, 0]]), "^camera centres contain NaN or inf$"),
        (torch.tensor([[0, 0, 0], [1, math.inf, 0], [2, 0, 0]]), "^camera centres contain NaN or inf$"),
    ],
)
def test_malformed_centres_are_rejected(centers, message):
    with pytest.raises(ValueError, match=message):
        curvature(centers)
    with pytest.raises(ValueError, match=message):
        camera_smoothness(centers)


@pytest.mark.parametrize("eps", [0.0, -1e-8, math.nan, math.inf])
def test_eps_must_be_positive(eps):
    with pytest.raises(ValueError, match="eps must be a finite positive number"):
        curvature(np.zeros((3, 3)), eps=eps)


def test_malformed_poses_are_rejected():
    with pytest.raises(ValueError, match=r"c2w must be \(\.\.\., T, 4, 4\), got \(5, 3, 4\)"):
        camera_centers_from_c2w(np.zeros((5, 3, 4)))
    with pytest.raises(ValueError, match=r"R must be \(\.\.\., T, 3, 3\) and t \(\.\.\., T, 3\)"):
        camera_centers_from_w2c(np.zeros((5, 3, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"R must be \(\.\.\., T, 3, 3\)"):  # one pose needs its T axis
        camera_centers_from_w2c(np.eye(3), np.zeros(3))
