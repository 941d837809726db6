"""Scores of generated 6D videos: PSNR, similarity-aligned point error, relative camera rotation, focal.

Spec: specs/generation.md (the benchmark), specs/ablation.md
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from nanofourdnex.paper.reprojection import CameraRecovery, intrinsics
from nanofourdnex.tools.scores import focal_error, point_error, psnr, rotation_error, similarity_alignment
from tests.strategies import seeds


def test_psnr_hand_values():
    a = np.zeros((4, 4, 3))
    assert psnr(a, a + 0.1) == pytest.approx(20.0)  # 10·log10(1 / 0.01)
    assert psnr(a, a + 0.01) == pytest.approx(40.0)
    assert psnr(a, a) == float("inf")


@given(seeds, st.floats(0.1, 10), st.floats(-5, 5))
def test_similarity_alignment_recovers_a_similarity_exactly(seed, scale, shift):
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(50, 3))
    R = Rotation.random(random_state=rng).as_matrix()
    moved = scale * points @ R.T + shift
    s, R_found, c = similarity_alignment(points, moved)
    assert s == pytest.approx(scale) and np.allclose(R_found, R, atol=1e-9) and np.allclose(c, shift)
    assert np.linalg.det(R_found) == pytest.approx(1.0)


@given(seeds, st.floats(0.1, 10))
def test_point_error_ignores_a_similarity_and_is_a_fraction_of_the_extent(seed, scale):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(2, 4, 5, 3))
    R = Rotation.random(random_state=rng).as_matrix()
    assert point_error(scale * truth @ R.T + 3.0, truth) < 1e-9
    # An error of 0.1 on every point along a fixed direction that the alignment cannot remove ...
    offset = truth.copy()
    offset[..., 0] += np.where(np.arange(5) % 2 == 0, 0.1, -0.1)  # alternating: not a shift, not a scale
    extent = np.linalg.norm(truth.reshape(-1, 3).max(0) - truth.reshape(-1, 3).min(0))
    assert 0 < point_error(offset, truth) <= 0.1 / extent + 1e-12  # ... is at most 0.1 / extent


def test_a_constant_or_mirrored_prediction_is_not_matched():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(3, 4, 5, 3))
    flat = truth.reshape(-1, 3)
    spread = np.linalg.norm(flat - flat.mean(0), axis=-1).mean() / np.linalg.norm(flat.max(0) - flat.min(0))
    assert point_error(np.zeros_like(truth), truth) == pytest.approx(spread)
    mirrored = truth * np.array([-1.0, 1.0, 1.0])  # a reflection: no rotation reproduces it
    assert point_error(mirrored, truth) > 0.3 * spread


def cameras(R: np.ndarray, focal: float = 20.0, height: int = 8, width: int = 12) -> CameraRecovery:
    frames = len(R)
    empty = np.zeros((frames, height, width))
    return CameraRecovery(R, np.zeros((frames, 3)), intrinsics(focal, height, width), empty, empty, 0, True)


def rotations_about_z(degrees: np.ndarray) -> np.ndarray:
    return Rotation.from_euler("z", np.asarray(degrees)[:, None], degrees=True).as_matrix()


def test_rotation_error_hand_values_and_world_frame_invariance():
    k = np.arange(5)
    reference = cameras(rotations_about_z(10.0 * k))
    assert rotation_error(cameras(rotations_about_z(12.0 * k)), reference) == pytest.approx(
        5.0
    )  # (2+4+6+8)/4
    world = rotations_about_z(np.array([33.0]))[0].T @ rotations_about_z(np.array([-71.0]))[0]
    assert rotation_error(cameras(reference.R @ world), reference) == pytest.approx(0.0, abs=1e-6)
    static = np.tile(np.eye(3), (5, 1, 1))
    assert rotation_error(static, reference) == pytest.approx(25.0)  # (10+20+30+40)/4: no motion


def test_focal_error_is_relative():
    assert focal_error(
        cameras(rotations_about_z(np.zeros(2)), 30.0), cameras(rotations_about_z(np.zeros(2)), 20.0)
    ) == pytest.approx(0.5)
