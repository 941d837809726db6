"""Novel-view splatting, trajectories, videos and PLY point clouds. Spec: specs/novel_views.md

Test scenes are built here: a depth map d and a camera (K, R, t), back-projected to the world
points X = Rᵀ(d·K⁻¹[u, v, 1]ᵀ − t) of every pixel (u = column, v = row), in float64.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from plyfile import PlyData

from nanofourdnex.outputs import load_trajectory_json, read_ply, write_ply, write_point_clouds, write_video
from nanofourdnex.render import TRAJECTORIES, novel_trajectory, render_video, splat
from tests.strategies import seeds

F64 = torch.float64


@dataclass
class Scene:
    points: torch.Tensor  # (H, W, 3) world points, float64
    colors: torch.Tensor  # (H, W, 3) uint8
    depth: torch.Tensor  # (H, W) float64
    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor


def rotation(generator: torch.Generator) -> torch.Tensor:
    """A random rotation matrix from a random unit quaternion (w, x, y, z)."""
    w, x, y, z = torch.nn.functional.normalize(torch.randn(4, generator=generator, dtype=F64), dim=0)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)]),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)]),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]),
        ]
    )


def intrinsics(focal: float, height: int, width: int) -> torch.Tensor:
    return torch.tensor([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]], dtype=F64)


def backproject(depth: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """X = Rᵀ(d·K⁻¹[u, v, 1]ᵀ − t) for every pixel of depth (H, W)."""
    height, width = depth.shape
    v, u = torch.meshgrid(torch.arange(height, dtype=F64), torch.arange(width, dtype=F64), indexing="ij")
    rays = torch.stack([u, v, torch.ones_like(u)], dim=-1) @ torch.linalg.inv(K).T
    return (depth[..., None] * rays - t) @ R  # row vectors: (Rᵀy)ᵀ = yᵀR


def random_scene(seed: int, height: int, width: int, depth: torch.Tensor | None = None) -> Scene:
    """Smooth random depth in [2, 4] (bilinear up-sampling of a 4×5 grid) unless depth is given."""
    gen = torch.Generator().manual_seed(seed)
    if depth is None:
        coarse = 2 + 2 * torch.rand(1, 1, 4, 5, generator=gen, dtype=F64)
        depth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")[0, 0]
    focal = width * (0.8 + 0.7 * torch.rand((), generator=gen).item())
    K, R, t = intrinsics(focal, height, width), rotation(gen), torch.randn(3, generator=gen, dtype=F64)
    colors = torch.randint(0, 256, (height, width, 3), generator=gen, dtype=torch.uint8)
    return Scene(backproject(depth, K, R, t), colors, depth, K, R, t)


def splat_scene(scene: Scene, R: torch.Tensor, t: torch.Tensor, point_radius: int = 0):
    height, width = scene.depth.shape
    return splat(
        scene.points.reshape(-1, 3),
        scene.colors.reshape(-1, 3),
        scene.K,
        R,
        t,
        height,
        width,
        point_radius=point_radius,
    )


def centres(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Camera centres C = −Rᵀt, (T, 3)."""
    return -torch.einsum("tji,tj->ti", R, t)


# Splatting.


@given(seeds, st.integers(2, 24), st.integers(2, 32))
def test_source_camera_reproduces_image_and_depth_exactly(seed, height, width):
    scene = random_scene(seed, height, width)
    view = splat_scene(scene, scene.R, scene.t)
    assert view.image.shape == (height, width, 3) and view.image.dtype == torch.float32
    assert view.mask.all(), "every pixel's own point lands back on it"
    assert torch.equal(view.image, scene.colors.float())
    torch.testing.assert_close(view.depth, scene.depth.float(), rtol=1e-6, atol=0)


def test_source_camera_reproduces_a_full_size_frame_from_numpy_float32_points():
    # 480×720, the paper's resolution; float32 points as a generated XYZ map would hold them.
    scene = random_scene(0, 480, 720)
    view = splat(
        scene.points.reshape(-1, 3).float().numpy(),
        scene.colors.reshape(-1, 3).numpy(),
        scene.K.numpy(),
        scene.R.numpy(),
        scene.t.numpy(),
        480,
        720,
    )
    assert view.mask.all()
    assert torch.equal(view.image, scene.colors.float())


def layered_scene(seed: int) -> tuple[Scene, tuple[int, int, int, int]]:
    """48×64, f = 48: a background plane at depth 4 and a foreground rectangle at depth 2."""
    depth = torch.full((48, 64), 4.0, dtype=F64)
    rows, cols = (16, 32), (20, 44)
    depth[rows[0] : rows[1], cols[0] : cols[1]] = 2.0
    scene = random_scene(seed, 48, 64, depth)
    scene.K = intrinsics(48.0, 48, 64)
    scene.points = backproject(depth, scene.K, scene.R, scene.t)
    return scene, (*rows, *cols)


@given(seeds)
def test_pan_leaves_the_hand_counted_disocclusion_holes_black(seed):
    # Pan right by b = 0.0625·4 = 0.25: the background (z = 4) shifts f·b/z = 3 px left, the
    # foreground (z = 2) 6 px. Holes: the 3 right-most columns, and the 3 columns of background
    # that the foreground hid, just right of the foreground's new position. Nothing is inpainted.
    scene, (r0, r1, c0, c1) = layered_scene(seed)
    center = scene.R.T @ (torch.tensor([0.0, 0.0, 4.0], dtype=F64) - scene.t)  # on the axis at depth 4
    R, t = novel_trajectory("pan", scene.R, scene.t, 2, center=center, magnitude=0.0625)
    xyz, rgb = scene.points.expand(2, -1, -1, -1), scene.colors.expand(2, -1, -1, -1)
    video = render_video(xyz, rgb, scene.K, R, t)
    holes = torch.zeros(48, 64, dtype=torch.bool)
    holes[:, 64 - 3 :] = True
    holes[r0:r1, c1 - 6 : c1 - 3] = True
    assert video.masks[0].all()
    assert torch.equal(~video.masks[1], holes)
    assert (video.frames[1][holes] == 0).all()
    assert video.hole_fraction.tolist() == [0.0, 192 / (48 * 64)]
    # The foreground (6 px) hides the background (3 px) it slides over: nearer wins.
    assert torch.equal(video.frames[1][r0:r1, c0 - 6 : c1 - 6], scene.colors[r0:r1, c0:c1])


@given(seeds, st.sampled_from(TRAJECTORIES), st.integers(0, 2))
def test_empty_pixels_are_black_with_infinite_depth_and_a_larger_footprint_only_fills(seed, kind, radius):
    scene = random_scene(seed, 20, 28)
    R, t = novel_trajectory(kind, scene.R, scene.t, 3, center=scene.points, magnitude=0.2)
    small = splat_scene(scene, R[1], t[1], point_radius=radius)
    large = splat_scene(scene, R[1], t[1], point_radius=radius + 1)
    for view in (small, large):
        assert (view.image[~view.mask] == 0).all()
        assert torch.isinf(view.depth[~view.mask]).all() and torch.isfinite(view.depth[view.mask]).all()
    assert (large.mask | ~small.mask).all(), "a larger footprint covers every pixel a smaller one covers"
    assert (large.depth <= small.depth).all(), "more candidates per pixel can only bring it nearer"


@given(st.permutations(range(5)), st.lists(st.floats(-0.45, 0.45), min_size=10, max_size=10))
def test_nearest_point_wins_regardless_of_order(order, jitter):
    # Five points on pixel (row 3, column 5), each off the pixel centre by < ½ px, at depths 1..5.
    K = intrinsics(20.0, 8, 12)
    depths = torch.arange(1, 6, dtype=F64)
    offsets = torch.tensor(jitter, dtype=F64).reshape(5, 2)
    pixels = torch.cat([torch.tensor([5.0, 3.0], dtype=F64) + offsets, torch.ones(5, 1, dtype=F64)], dim=1)
    points = depths[:, None] * (pixels @ torch.linalg.inv(K).T)  # identity camera: X = X_cam
    colors = torch.tensor([[10 * k, 0, 255 - 10 * k] for k in range(1, 6)], dtype=torch.uint8)
    view = splat(points[list(order)], colors[list(order)], K, torch.eye(3), torch.zeros(3), 8, 12)
    assert view.mask.sum() == 1 and view.mask[3, 5]
    assert view.image[3, 5].tolist() == [10, 0, 245]
    assert view.depth[3, 5] == 1


def test_equal_depths_go_to_the_lowest_point_index():
    K = intrinsics(10.0, 5, 5)  # principal point (2, 2)
    points = torch.tensor([[0.0, 0.0, 1.0], [0.01, 0.0, 1.0], [0.0, 0.0, 1.0]])
    colors = torch.tensor([[1, 1, 1], [2, 2, 2], [3, 3, 3]], dtype=torch.uint8)
    for order, expected in (([0, 1, 2], 1), ([2, 1, 0], 3), ([1, 2, 0], 2)):
        view = splat(points[order], colors[order], K, torch.eye(3), torch.zeros(3), 5, 5)
        assert view.image[2, 2].tolist() == [expected] * 3


@given(st.lists(st.floats(-1.0, 0.0), min_size=1, max_size=8), seeds)
def test_points_behind_or_on_the_camera_plane_are_dropped(depths, seed):
    # X_cam = z·K⁻¹[u, v, 1]ᵀ with z ≤ 0: divided by z they would land on (u, v) inside the image.
    K = intrinsics(30.0, 16, 20)
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.cat(
        [torch.rand(len(depths), 2, generator=gen, dtype=F64) * 10 + 3, torch.ones(len(depths), 1)], 1
    )
    behind = torch.tensor(depths, dtype=F64)[:, None] * (pixels @ torch.linalg.inv(K).T)
    front = torch.tensor([[0.0, 0.0, 2.0]], dtype=F64)  # lands on the principal point's pixel
    colors = torch.full((len(depths) + 1, 3), 200, dtype=torch.uint8)
    view = splat(torch.cat([behind, front]), colors, K, torch.eye(3), torch.zeros(3), 16, 20)
    assert view.mask.sum() == 1 and view.mask[8, 10]  # (7.5, 9.5) rounds up to row 8, column 10


def test_hand_computed_projection_lands_on_column_u_and_row_v():
    # R = 90° about z, t = (0, 0, 2), f = 100, H × W = 48 × 64, (c_x, c_y) = (31.5, 23.5).
    # X = (−0.17, −0.41, 0): X_cam = R·X + t = (0.41, −0.17, 2),
    # u = 100·0.41/2 + 31.5 = 52 (column), v = 100·(−0.17)/2 + 23.5 = 15 (row); 52 ≥ H, so a
    # swapped (row, column) would fall outside the image.
    K = intrinsics(100.0, 48, 64)
    R = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    t = torch.tensor([0.0, 0.0, 2.0])
    view = splat(
        torch.tensor([[-0.17, -0.41, 0.0]]), torch.tensor([[7, 8, 9]], dtype=torch.uint8), K, R, t, 48, 64
    )
    assert view.mask.nonzero().tolist() == [[15, 52]]
    assert view.image[15, 52].tolist() == [7, 8, 9]
    assert view.depth[15, 52] == 2


@pytest.mark.parametrize(("u", "column"), [(52.5, 53), (52.49, 52), (-0.5, 0), (63.49, 63)])
def test_pixels_round_to_the_nearest_centre_with_halves_up(u, column):
    K = intrinsics(1.0, 4, 64)  # f = 1: X_cam = (u − c_x, 0, 1) projects to column u
    point = torch.tensor([[u - K[0, 2].item(), 0.0, 1.0]], dtype=F64)
    view = splat(point, torch.tensor([[1, 2, 3]], dtype=torch.uint8), K, torch.eye(3), torch.zeros(3), 4, 64)
    assert view.mask.nonzero().tolist() == [[2, column]]  # v = 1.5 rounds up to row 2


def test_point_radius_splats_a_clipped_square_footprint_at_the_points_depth():
    # Point on pixel (row 10, column 20) and one on the corner pixel (0, 0), radius 2.
    K = intrinsics(10.0, 16, 24)  # principal point (11.5, 7.5)
    points = torch.tensor([[(20 - 11.5) / 10, (10 - 7.5) / 10, 1.0], [-11.5 / 5, -7.5 / 5, 2.0]], dtype=F64)
    colors = torch.tensor([[255, 0, 0], [0, 255, 0]], dtype=torch.uint8)
    view = splat(points, colors, K, torch.eye(3), torch.zeros(3), 16, 24, point_radius=2)
    expected = torch.zeros(16, 24, dtype=torch.bool)
    expected[8:13, 18:23] = True
    expected[0:3, 0:3] = True  # the corner's 5×5 square clipped to 3×3
    assert torch.equal(view.mask, expected)
    assert (view.depth[8:13, 18:23] == 1).all() and (view.depth[0:3, 0:3] == 2).all()
    assert (view.image[8:13, 18:23] == torch.tensor([255.0, 0, 0])).all()


def test_a_point_off_the_image_still_paints_the_part_of_its_footprint_inside():
    K = intrinsics(10.0, 8, 8)  # principal point (3.5, 3.5)
    point = torch.tensor([[(-1 - 3.5) / 10, 0.05, 1.0]], dtype=F64)  # column −1, row 4
    colors = torch.tensor([[9, 9, 9]], dtype=torch.uint8)
    assert not splat(point, colors, K, torch.eye(3), torch.zeros(3), 8, 8).mask.any()
    view = splat(point, colors, K, torch.eye(3), torch.zeros(3), 8, 8, point_radius=1)
    assert view.mask.nonzero().tolist() == [[3, 0], [4, 0], [5, 0]]


# Trajectories.

magnitudes = st.floats(-0.9, 0.9).filter(lambda m: abs(m) > 1e-3)


@st.composite
def cameras(draw):
    """(R0, t0, centre): a random camera and a look-at centre 1-5 units in front of it."""
    gen = torch.Generator().manual_seed(draw(seeds))
    R0, t0 = rotation(gen), torch.randn(3, generator=gen, dtype=F64)
    in_camera = torch.randn(3, generator=gen, dtype=F64) * 0.3 + torch.tensor(
        [0, 0, 1 + 4 * draw(st.floats(0, 1))]
    )
    return R0, t0, R0.T @ (in_camera - t0)


@given(cameras(), st.sampled_from(TRAJECTORIES), st.integers(1, 12), magnitudes)
def test_trajectories_start_exactly_at_the_source_camera_and_stay_rotations(camera, kind, frames, magnitude):
    R0, t0, center = camera
    magnitude = 40 * magnitude if kind == "orbit" else magnitude
    R, t = novel_trajectory(kind, R0, t0, frames, center=center, magnitude=magnitude)
    assert R.shape == (frames, 3, 3) and t.shape == (frames, 3) and R.dtype == t.dtype == F64
    assert torch.equal(R[0], R0) and torch.equal(t[0], t0)
    eye = torch.eye(3, dtype=F64).expand(frames, 3, 3)
    torch.testing.assert_close(R.transpose(1, 2) @ R, eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(frames, dtype=F64), atol=1e-12, rtol=0)


@given(cameras(), st.integers(2, 12), st.floats(-60, 60))
def test_orbit_keeps_the_centre_on_its_pixel_at_a_constant_distance(camera, frames, degrees):
    R0, t0, center = camera
    R, t = novel_trajectory("orbit", R0, t0, frames, center=center, magnitude=degrees)
    distance = (centres(R, t) - center).norm(dim=1)
    torch.testing.assert_close(distance, distance[:1].expand(frames), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(R @ center + t, (R0 @ center + t0).expand(frames, 3), atol=1e-12, rtol=1e-12)


@given(cameras(), st.floats(0.05, 0.95))
def test_a_cloud_pivots_on_the_median_of_its_points_in_front_of_the_camera(camera, share_behind):
    """Generated XYZ can be poor: points behind camera 0 are left out, so the pivot is always in front."""
    R0, t0, _ = camera
    gen = torch.Generator().manual_seed(int(share_behind * 1e6))
    in_camera = torch.randn(200, 3, generator=gen, dtype=F64) + torch.tensor([0, 0, 3.0], dtype=F64)
    behind = torch.arange(200) < int(200 * share_behind)
    in_camera[behind, 2] = -in_camera[behind, 2].abs() - 1  # behind camera 0, far off to one side
    in_camera[behind, 0] += 50
    cloud = (in_camera - t0) @ R0  # world points: R0ᵀ(X_cam − t0) as rows
    R, t = novel_trajectory("orbit", R0, t0, 3, center=cloud.reshape(10, 20, 3), magnitude=10.0)
    pivot = in_camera[~behind].median(dim=0).values  # the lower median per axis, in camera 0's frame
    torch.testing.assert_close(R @ (R0.T @ (pivot - t0)) + t, pivot.expand(3, 3), atol=1e-9, rtol=0)


@given(cameras(), st.floats(1, 60))
def test_orbit_turns_right_about_the_up_axis_by_the_magnitude(camera, degrees):
    # T = 5: θ = m·sin(2πi/4) = (0, m, 0, −m, 0).
    R0, t0, center = camera
    R, t = novel_trajectory("orbit", R0, t0, 5, center=center, magnitude=degrees)
    C = centres(R, t)
    up, right = -R0[1], R0[0]
    torch.testing.assert_close((C - C[0]) @ up, torch.zeros(5, dtype=F64), atol=1e-12, rtol=0)
    arm0, arm1 = C[0] - center, C[1] - center
    arm0, arm1 = arm0 - (arm0 @ up) * up, arm1 - (arm1 @ up) * up  # the parts turning about the axis
    angle = torch.rad2deg(torch.atan2(torch.linalg.cross(arm0, arm1) @ up, arm0 @ arm1))
    assert angle.item() == pytest.approx(degrees, abs=1e-9)
    assert (C[1] - C[0]) @ right > 0 and (C[3] - C[0]) @ right < 0
    torch.testing.assert_close(C[2], C[0], atol=1e-12, rtol=0)


@given(cameras(), st.integers(2, 12), magnitudes)
def test_dolly_moves_along_the_optical_axis_by_a_fraction_of_the_centre_depth(camera, frames, fraction):
    R0, t0, center = camera
    R, t = novel_trajectory("dolly", R0, t0, frames, center=center, magnitude=fraction)
    depth = (R0 @ center + t0)[2]
    travel = fraction * depth * torch.linspace(0, 1, frames, dtype=F64)
    assert torch.equal(R, R0.expand(frames, 3, 3))
    torch.testing.assert_close(
        centres(R, t) - centres(R0[None], t0[None]), travel[:, None] * R0[2], atol=1e-12, rtol=0
    )
    torch.testing.assert_close((R[-1] @ center + t[-1])[2], (1 - fraction) * depth, atol=1e-12, rtol=0)


@given(cameras(), st.integers(2, 12), magnitudes)
def test_pan_moves_sideways_and_keeps_the_centre_depth(camera, frames, fraction):
    R0, t0, center = camera
    R, t = novel_trajectory("pan", R0, t0, frames, center=center, magnitude=fraction)
    depth = (R0 @ center + t0)[2]
    travel = fraction * depth * torch.linspace(0, 1, frames, dtype=F64)
    assert torch.equal(R, R0.expand(frames, 3, 3))
    torch.testing.assert_close(
        centres(R, t) - centres(R0[None], t0[None]), travel[:, None] * R0[0], atol=1e-12, rtol=0
    )
    torch.testing.assert_close((R @ center + t)[:, 2], depth.expand(frames), atol=1e-12, rtol=0)


def test_a_point_cloud_centre_is_its_per_axis_median_finite_point():
    cloud = np.array([[0, 0, 1], [1, 5, 2], [2, -1, 9], [np.nan, 0, 0], [np.inf, 1, 1]], dtype=np.float32)
    R0, t0 = np.eye(3), np.zeros(3)
    from_cloud = novel_trajectory("orbit", R0, t0, 4, center=cloud.reshape(1, 5, 3))
    from_point = novel_trajectory("orbit", R0, t0, 4, center=np.array([1.0, 0.0, 2.0]))
    for a, b in zip(from_cloud, from_point, strict=True):
        assert torch.equal(a, b)


# Cameras files and videos.


def cameras_json(K, R, t, per_frame_K: bool = False) -> dict:
    """A cameras.json as the camera-recovery module writes it, extra fields included."""
    return {
        "convention": "OpenCV camera; R, t world-to-camera",
        "image_size": {"height": 20, "width": 28},
        "K": None if per_frame_K else K.tolist(),
        "frames": [
            {"index": k, "R": R[k].tolist(), "t": t[k].tolist(), "camera_to_world": np.eye(4).tolist()}
            | ({"K": K.tolist()} if per_frame_K else {})
            for k in range(len(R))
        ],
    }


@pytest.mark.parametrize("per_frame_K", [False, True])
def test_cameras_json_round_trips_a_trajectory_into_the_same_video(tmp_path, per_frame_K):
    scene = random_scene(3, 20, 28)
    R, t = novel_trajectory("orbit", scene.R, scene.t, 3, center=scene.points, magnitude=5)
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps(cameras_json(scene.K, R, t, per_frame_K)))
    K, R_read, t_read = load_trajectory_json(path)
    assert torch.equal(R_read, R) and torch.equal(t_read, t)
    assert torch.equal(K, scene.K.expand(3, 3, 3) if per_frame_K else scene.K)
    xyz, rgb = scene.points.expand(3, -1, -1, -1), scene.colors.expand(3, -1, -1, -1)
    assert torch.equal(
        render_video(xyz, rgb, K, R_read, t_read).frames, render_video(xyz, rgb, scene.K, R, t).frames
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a readable JSON"),
        (json.dumps({"K": np.eye(3).tolist()}), "needs 'frames'"),
        (json.dumps({"K": np.eye(3).tolist(), "frames": []}), "needs 'frames'"),
        (
            json.dumps({"K": np.eye(3).tolist(), "frames": [{"R": np.eye(2).tolist(), "t": [0, 0, 0]}]}),
            r"frames\[0\].R",
        ),
        (
            json.dumps({"K": np.eye(3).tolist(), "frames": [{"R": np.eye(3).tolist(), "t": [0, 0]}]}),
            r"frames\[0\].t",
        ),
        (
            json.dumps({"K": [[1, 0], [0, 1]], "frames": [{"R": np.eye(3).tolist(), "t": [0, 0, 0]}]}),
            "K must be",
        ),
        (json.dumps({"K": None, "frames": [{"R": np.eye(3).tolist(), "t": [0, 0, 0]}]}), r"frames\[0\].K"),
        (json.dumps({"K": np.eye(3).tolist(), "frames": [{"R": "eye", "t": [0, 0, 0]}]}), r"frames\[0\].R"),
    ],
)
def test_malformed_cameras_json_is_rejected(tmp_path, content, message):
    path = tmp_path / "cameras.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_trajectory_json(path)


@given(seeds)
def test_each_frame_splats_its_own_point_cloud_and_skips_non_finite_points(seed):
    # Three frames with their own depth, colours and source cameras: rendering each from its own
    # camera gives its own image back, except the non-finite points, which leave black holes.
    scenes = [random_scene(seed + k, 12, 16) for k in range(3)]
    xyz = torch.stack([s.points for s in scenes]).float()
    rgb = torch.stack([s.colors for s in scenes])
    xyz[1, 2, 3, 0] = math.nan
    xyz[2, 5, 7] = math.inf
    K = torch.stack([s.K for s in scenes])
    video = render_video(
        xyz.numpy(), rgb.numpy(), K, torch.stack([s.R for s in scenes]), torch.stack([s.t for s in scenes])
    )
    assert video.frames.dtype == torch.uint8 and video.masks.dtype == torch.bool
    expected = torch.ones(3, 12, 16, dtype=torch.bool)
    expected[1, 2, 3] = expected[2, 5, 7] = False
    assert torch.equal(video.masks, expected)
    assert torch.equal(video.frames, torch.where(expected[..., None], rgb, 0))


def test_write_video_pads_odd_sizes_to_an_h264_yuv420p_mp4(tmp_path):
    frames = np.zeros((4, 17, 23, 3), dtype=np.uint8)
    frames[:, :, :, 0] = np.array([40, 120, 200, 250])[:, None, None]  # a red ramp over time
    path = write_video(tmp_path / "novel.mp4", torch.from_numpy(frames), fps=8)
    reader = imageio.get_reader(path)
    meta = reader.get_meta_data()
    read = np.stack(list(reader.iter_data()))  # len(reader) is inf for mp4
    reader.close()
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p") and meta["fps"] == 8
    assert read.shape == (4, 18, 24, 3)
    red = read[:, :16, :22, 0].reshape(4, -1).mean(1)  # inside the frame, away from the padded edge
    np.testing.assert_allclose(red, [40, 120, 200, 250], atol=8)


# Point clouds.

finite_points = st.integers(0, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(-1e6, 1e6, width=32), min_size=3 * n, max_size=3 * n),
        st.lists(st.integers(0, 255), min_size=3 * n, max_size=3 * n),
    )
)


@given(finite_points)
def test_ply_round_trip_gives_back_the_points_and_colours(tmp_path_factory, data):
    coordinates, channels = data
    points = np.array(coordinates, dtype=np.float32).reshape(-1, 3)
    colors = np.array(channels, dtype=np.uint8).reshape(-1, 3)
    path = write_ply(tmp_path_factory.mktemp("ply") / "cloud.ply", points, colors)
    ply = PlyData.read(str(path))  # plyfile itself: the on-disk layout
    assert not ply.text and ply.byte_order == "<"
    vertex = ply["vertex"]
    assert [(p.name, p.val_dtype) for p in vertex.properties] == [
        ("x", "f4"),
        ("y", "f4"),
        ("z", "f4"),
        ("red", "u1"),
        ("green", "u1"),
        ("blue", "u1"),
    ]
    np.testing.assert_array_equal(np.stack([vertex[a] for a in "xyz"], 1), points)
    np.testing.assert_array_equal(np.stack([vertex[a] for a in ("red", "green", "blue")], 1), colors)
    read_points, read_colors = read_ply(path)
    assert read_points.dtype == torch.float32 and read_colors.dtype == torch.uint8
    assert torch.equal(read_points, torch.from_numpy(points)) and torch.equal(
        read_colors, torch.from_numpy(colors)
    )


def test_non_finite_points_are_left_out_of_the_ply_with_their_colours(tmp_path):
    points = np.array([[0, 1, 2], [np.nan, 0, 0], [3, 4, 5], [0, -np.inf, 0], [6, 7, 8]], dtype=np.float64)
    colors = np.arange(15, dtype=np.uint8).reshape(5, 3)
    read_points, read_colors = read_ply(write_ply(tmp_path / "cloud.ply", points, colors))
    assert read_points.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert read_colors.tolist() == [[0, 1, 2], [6, 7, 8], [12, 13, 14]]


def test_write_point_clouds_writes_one_ply_per_frame(tmp_path):
    scene = random_scene(5, 6, 7)
    xyz = torch.stack([scene.points, scene.points + 1]).float()
    xyz[1, 0, 0] = math.nan
    rgb = torch.stack([scene.colors, 255 - scene.colors])
    paths = write_point_clouds(tmp_path, xyz, rgb)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "points/frame_0000.ply",
        "points/frame_0001.ply",
    ]
    for k, path in enumerate(paths):
        keep = torch.isfinite(xyz[k]).all(-1)
        points, colors = read_ply(path)
        assert torch.equal(points, xyz[k][keep]) and torch.equal(colors, rgb[k][keep])
    assert len(read_ply(paths[1])[0]) == 6 * 7 - 1


def test_read_ply_rejects_files_without_coloured_vertices(tmp_path):
    (tmp_path / "face.ply").write_text(
        "ply\nformat ascii 1.0\nelement face 0\nproperty uchar a\nend_header\n"
    )
    (tmp_path / "grey.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n"
    )
    (tmp_path / "junk.ply").write_text("not a ply")
    with pytest.raises(ValueError, match="expected 'vertex'"):
        read_ply(tmp_path / "face.ply")
    with pytest.raises(ValueError, match=r"lacks \['red', 'green', 'blue'\]"):
        read_ply(tmp_path / "grey.ply")
    for name in ("junk.ply", "missing.ply"):
        with pytest.raises(ValueError, match="not a readable PLY"):
            read_ply(tmp_path / name)


# Shapes and arguments.

POINTS, COLORS = np.zeros((4, 3)), np.zeros((4, 3), dtype=np.uint8)
EYE, ZERO = np.eye(3), np.zeros(3)
XYZ, RGB = np.zeros((2, 3, 4, 3), dtype=np.float32), np.zeros((2, 3, 4, 3), dtype=np.uint8)
CAMERAS = np.tile(np.eye(3), (2, 1, 1)), np.zeros((2, 3))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: splat(np.zeros((4, 2)), COLORS, EYE, EYE, ZERO, 3, 4),
            r"points must be \(N, 3\), got \(4, 2\)",
        ),
        (lambda: splat(POINTS, COLORS[:3], EYE, EYE, ZERO, 3, 4), r"colors must be \(4, 3\) like points"),
        (lambda: splat(POINTS, COLORS, np.eye(4), EYE, ZERO, 3, 4), r"K must be \(3, 3\), got \(4, 4\)"),
        (lambda: splat(POINTS, COLORS, EYE, EYE[:2], ZERO, 3, 4), r"R must be \(3, 3\)"),
        (lambda: splat(POINTS, COLORS, EYE, EYE, np.zeros(4), 3, 4), r"t must be \(3\), got \(4,\)"),
        (lambda: splat(POINTS, COLORS, EYE, EYE, ZERO, 0, 4), "height and width must be >= 1"),
        (lambda: splat(POINTS, COLORS, EYE, EYE, ZERO, 3, 4, point_radius=-1), "point_radius must be >= 0"),
        (lambda: render_video(XYZ[0], RGB, EYE, *CAMERAS), r"xyz must be \(T, H, W, 3\), got \(3, 4, 3\)"),
        (
            lambda: render_video(XYZ, RGB[:1], EYE, *CAMERAS),
            r"rgb must be \(2, 3, 4, 3\), got \(1, 3, 4, 3\)",
        ),
        (lambda: render_video(XYZ, RGB.astype(np.float32), EYE, *CAMERAS), "rgb must be uint8"),
        (lambda: render_video(XYZ, RGB, np.zeros((3, 3, 3)), *CAMERAS), r"K must be \(2, 3, 3\)"),
        (lambda: render_video(XYZ, RGB, EYE, EYE, CAMERAS[1]), r"R must be \(2, 3, 3\), got \(3, 3\)"),
        (lambda: render_video(XYZ, RGB, EYE, CAMERAS[0], ZERO), r"t must be \(2, 3\), got \(3,\)"),
        (
            lambda: novel_trajectory("spiral", EYE, ZERO, 3, center=[0, 0, 1]),
            "unknown trajectory kind 'spiral'",
        ),
        (lambda: novel_trajectory("orbit", EYE, ZERO, 0, center=[0, 0, 1]), "num_frames must be >= 1"),
        (lambda: novel_trajectory("orbit", EYE[:2], ZERO, 3, center=[0, 0, 1]), r"R0 must be \(3, 3\)"),
        (lambda: novel_trajectory("orbit", EYE, ZERO, 3, center=[0, 0, -1]), "center must lie in front"),
        (lambda: novel_trajectory("orbit", EYE, ZERO, 3, center=[0, 1]), r"center must be a point \(3,\)"),
        (lambda: novel_trajectory("pan", EYE, ZERO, 3, center=[[np.nan] * 3]), "no finite point in front"),
        (
            lambda: novel_trajectory("pan", EYE, ZERO, 3, center=[[0, 0, -1.0]] * 3),
            "no finite point in front",
        ),
        (
            lambda: novel_trajectory("dolly", EYE, ZERO, 3, center=[0, 0, 1], magnitude=1.0),
            "dolly magnitude must be < 1",
        ),
        (lambda: write_video("x.mp4", RGB[0]), r"frames must be \(T, H, W, 3\)"),
        (lambda: write_video("x.mp4", XYZ), "frames must be uint8"),
        (lambda: write_ply("x.ply", POINTS, COLORS.astype(np.int64)), "colors must be uint8"),
        (lambda: write_ply("x.ply", POINTS, COLORS[:2]), r"colors must be \(4, 3\), got \(2, 3\)"),
        (lambda: write_point_clouds("out", XYZ, RGB[..., :2]), r"rgb must be \(2, 3, 4, 3\)"),
    ],
)
def test_bad_shapes_and_arguments_raise_value_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_recovered_cameras_render_a_synthetic_clip_back_exactly():
    """Eq. 12-13 then splatting: each frame's point cloud seen from its recovered camera is that frame.

    The XYZ maps are float32, as generated ones are stored; the synthetic scene is exact, so there are
    no discretisation holes to allow for (the README reports the holes on generated XYZ).
    """
    from nanofourdnex.paper.reprojection import recover_cameras
    from nanofourdnex.synthetic import make_scene

    scene = make_scene(5, num_frames=5, height=48, width=72)
    xyz = scene.xyz.astype(np.float32)
    cameras = recover_cameras(xyz)
    video = render_video(xyz, scene.rgb, cameras.K, cameras.R, cameras.t)
    assert video.masks.all(), f"{(~video.masks).float().mean():.2%} of the pixels are holes"
    assert torch.equal(video.frames, torch.from_numpy(scene.rgb))
