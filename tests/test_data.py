"""The 4DNeX-10M clip layout, its reader, point-map normalisation, the synthetic scenes and the Dataset.

Spec: specs/data_format.md
"""

import csv
import shutil
import warnings

import imageio.v3 as iio
import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from scipy.spatial.transform import Rotation

from nanofourdnex.data import (
    ClipDataset,
    ClipError,
    caption_for,
    clip_sample,
    normalize_pointmaps,
    read_captions,
    read_clip,
    scan_dataset,
    to_first_camera,
    unproject,
)
from nanofourdnex.synthetic import (
    AMBIENT,
    CAMERA_TURNS,
    FLOORS,
    LIGHT,
    TARGET,
    WALL_Y,
    _dolly,
    _redraw,
    clip_seed,
    flip_camera_turn,
    make_scene,
    write_clip,
    write_dataset,
)

from .strategies import seeds

SMALL = {"num_frames": 5, "height": 16, "width": 24}


@pytest.fixture(scope="module")
def scene():
    return make_scene(7)


@pytest.fixture(scope="module")
def clip_dir(scene, tmp_path_factory):
    return write_clip(scene, tmp_path_factory.mktemp("clip") / "clip_00007")


@pytest.fixture
def fresh_clip(clip_dir, tmp_path):
    """A private copy of the written clip that a test may damage."""
    return shutil.copytree(clip_dir, tmp_path / clip_dir.name)


def pixel_grid(height: int, width: int) -> np.ndarray:
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([u, v], -1)  # (h, w, 2) as (u, v) = (column, row)


def project(xyz: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference pinhole projection written out by hand: world (T, h, w, 3) → pixels (T, h, w, 2), depth."""
    w2c = np.linalg.inv(c2w)
    cam = np.einsum("tij,thwj->thwi", w2c[:, :3, :3], xyz) + w2c[:, None, None, :3, 3]
    z = cam[..., 2]
    u = K[:, None, None, 0, 0] * cam[..., 0] / z + K[:, None, None, 0, 2]
    v = K[:, None, None, 1, 1] * cam[..., 1] / z + K[:, None, None, 1, 2]
    return np.stack([u, v], -1), z


def random_camera(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    c2w[:, :3, :3] = Rotation.random(num_frames, random_state=rng).as_matrix()
    c2w[:, :3, 3] = rng.normal(0, 10, (num_frames, 3))
    return c2w


def rotation_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Degrees between rotations a and b: arccos((tr(aᵀb) − 1)/2)."""
    return float(np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1))))


# ---------------------------------------------------------------- synthetic scenes


def test_scene_has_documented_shapes_and_dtypes(scene):
    assert scene.rgb.shape == (17, 64, 96, 3) and scene.rgb.dtype == np.uint8
    assert scene.depth.shape == (17, 64, 96) and scene.depth.dtype == np.float32
    assert scene.K.shape == (17, 3, 3) and scene.c2w.shape == (17, 4, 4) and scene.c2w.dtype == np.float64
    assert scene.xyz.shape == (17, 64, 96, 3) and scene.xyz.dtype == np.float64
    np.testing.assert_allclose(scene.K[:, :2, 2], np.tile([47.5, 31.5], (17, 1)))  # ((W−1)/2, (H−1)/2)


def test_scenes_are_deterministic_per_seed():
    a, b = make_scene(3, **SMALL), make_scene(3, **SMALL)
    assert a.caption == b.caption
    for field in ("rgb", "depth", "K", "c2w", "xyz"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


def camera_azimuth(scene) -> np.ndarray:
    """(T,) the camera's azimuth φ about the target, eye = target + (r·sin φ, −r·cos φ, ·)."""
    offset = scene.c2w[:, :3, 3] - TARGET
    return np.arctan2(offset[:, 0], -offset[:, 1])


@given(seeds)
def test_the_caption_says_which_way_the_camera_orbits(seed):
    """The caption says right when the camera's azimuth φ about the target grows."""
    scene = make_scene(seed, num_frames=5, height=4, width=6, supersample=1)
    azimuth = camera_azimuth(scene)
    turn = CAMERA_TURNS[int(azimuth[-1] > azimuth[0])]
    assert turn in scene.caption and CAMERA_TURNS[int(azimuth[-1] < azimuth[0])] not in scene.caption


@given(seeds)
def test_a_scenes_twin_differs_only_in_the_way_its_camera_turns(seed):
    """camera_turn=±1 flips the orbit's sign and nothing else: same frame 0, radius, height and caption words."""
    small = dict(num_frames=5, height=4, width=6, supersample=1)
    scene = make_scene(seed, **small)
    azimuth = camera_azimuth(scene)
    drawn = 1 if azimuth[-1] > azimuth[0] else -1
    same, twin = make_scene(seed, **small, camera_turn=drawn), make_scene(seed, **small, camera_turn=-drawn)
    assert same.caption == scene.caption and np.array_equal(same.rgb, scene.rgb)
    assert twin.caption == flip_camera_turn(scene.caption) and flip_camera_turn(twin.caption) == scene.caption
    assert np.array_equal(twin.rgb[0], scene.rgb[0]) and np.array_equal(twin.xyz[0], scene.xyz[0])
    distance = [np.linalg.norm(s.c2w[:, :3, 3] - TARGET, axis=1) for s in (twin, scene)]  # radius and height
    np.testing.assert_allclose(*distance)
    twin_azimuth = camera_azimuth(twin)
    np.testing.assert_allclose(twin_azimuth - twin_azimuth[0], -(azimuth - azimuth[0]), atol=1e-12)
    assert not np.array_equal(twin.rgb[-1], scene.rgb[-1])


@given(seeds, seeds)
def test_a_motion_redraw_keeps_what_the_model_sees_and_redraws_the_rest(seed, motion_seed):
    """motion_seed keeps frame 0, K and the caption (hence the orbit's direction) and redraws the motion."""
    small = dict(num_frames=5, height=4, width=6, supersample=1)
    scene, redraw = make_scene(seed, **small), make_scene(seed, **small, motion_seed=motion_seed)
    assert redraw.caption == scene.caption and np.array_equal(redraw.K, scene.K)
    for field in ("rgb", "depth", "xyz", "c2w"):
        assert np.array_equal(getattr(redraw, field)[0], getattr(scene, field)[0]), field
    turn = np.diff(camera_azimuth(redraw)[[0, -1]])[0]  # the whole orbit: the ease reaches 1 at the end
    assert np.sign(turn) == np.sign(np.diff(camera_azimuth(scene)[[0, -1]])[0])
    assert np.radians(6) - 1e-9 <= abs(turn) <= np.radians(18) + 1e-9
    assert not np.array_equal(redraw.c2w[-1], scene.c2w[-1])
    again = make_scene(seed, **small, motion_seed=motion_seed)
    assert np.array_equal(again.rgb, redraw.rgb)


def test_motion_redraws_follow_the_datas_distribution_given_the_caption():
    """The orbit angle is U(6°, 18°) whatever the scene drew; a dolly is uniform within its caption words."""
    small = dict(num_frames=2, height=2, width=2, supersample=1)
    turns = [np.diff(camera_azimuth(make_scene(11, **small, motion_seed=k)))[0] for k in range(300)]
    assert len(set(np.sign(turns))) == 1
    assert scipy.stats.kstest(np.degrees(np.abs(turns)), "uniform", args=(6, 12)).pvalue > 1e-3
    rng = np.random.default_rng(0)
    closer = [_redraw(rng, -1.5, 0.5, _dolly, -1.0) for _ in range(300)]  # "while moving closer": dr < −0.5
    assert scipy.stats.kstest(closer, "uniform", args=(-1.5, 1.0)).pvalue > 1e-3


def test_camera_turn_must_be_a_sign_and_a_flip_needs_a_direction():
    with pytest.raises(ValueError, match="camera_turn"):
        make_scene(0, num_frames=2, height=4, width=6, camera_turn=2)
    with pytest.raises(ValueError, match="no camera direction"):
        flip_camera_turn("a red box slides to the left; the camera is still.")


def test_scenes_and_captions_differ_across_seeds():
    scenes = [make_scene(seed, **SMALL) for seed in range(8)]
    assert len({s.caption for s in scenes}) == 8
    assert all(not np.array_equal(scenes[0].rgb, s.rgb) for s in scenes[1:])


def test_caption_names_two_to_four_objects_the_floor_the_wall_and_the_camera():
    for seed in range(10):
        caption = make_scene(seed, **SMALL).caption
        assert 2 <= caption.count(" sphere ") + caption.count(" box ") <= 4, caption
        assert "checkered floor" in caption and " wall" in caption and "camera" in caption


@given(seeds, st.integers(1, 4), st.integers(2, 24), st.integers(2, 24))
def test_every_pixel_hits_a_surface_at_finite_positive_depth(seed, num_frames, height, width):
    scene = make_scene(seed, num_frames, height, width)
    assert np.isfinite(scene.depth).all() and (scene.depth > 0).all()
    assert np.isfinite(scene.xyz).all()


def test_scene_points_project_to_their_pixels_at_their_depth(scene):
    pixels, z = project(scene.xyz, scene.K, scene.c2w)
    np.testing.assert_allclose(pixels, np.broadcast_to(pixel_grid(64, 96), pixels.shape), atol=1e-8)
    np.testing.assert_allclose(z, scene.depth, rtol=1e-6)  # depth is camera z, stored as float32


@given(seeds, st.sampled_from([3, 5]))
def test_a_pixel_colour_is_the_mean_of_its_sub_pixel_rays_and_its_point_the_centre_ray(seed, s):
    """Supersampling S: the colour of pixel (u, v) is the mean over rays through (u + a, v + b) with
    a, b ∈ {(j − (S−1)/2)/S}, which are the pixel centres of the S×-finer image whose K has focal S·f and
    principal point S·c + (S−1)/2 (the scene's own K at S·W × S·H); depth and XYZ are the centre ray's."""
    coarse = make_scene(seed, 2, 4, 6, supersample=s)
    fine = make_scene(seed, 2, 4 * s, 6 * s, supersample=1)
    blocks = fine.rgb.reshape(2, 4, s, 6, s, 3).astype(np.float64).mean((2, 4))
    assert np.mean(np.abs(blocks - coarse.rgb) <= 1) > 0.99  # each fine sample was rounded to 8 bits alone
    single = make_scene(seed, 2, 4, 6, supersample=1)
    assert np.array_equal(coarse.xyz, single.xyz) and np.array_equal(coarse.depth, single.depth)
    np.testing.assert_allclose(coarse.xyz, fine.xyz[:, s // 2 :: s, s // 2 :: s], atol=1e-9)


def test_a_floor_pixel_is_lit_or_in_the_shadow_of_an_object():
    """Shading (module docstring): a floor point (normal +z) has colour albedo·(ambient + (1 − ambient)·l_z)
    where the light reaches it and albedo·ambient where any object blocks the light, its albedo one of the
    captioned floor's two colours; and the objects do cast shadows onto the floor in view."""
    lit = AMBIENT + (1 - AMBIENT) * LIGHT[2]
    shadowed = 0
    for seed in range(6):
        scene = make_scene(seed, 1, 48, 72, supersample=1)  # one ray per pixel: no edge is blended
        name = next(name for name in FLOORS if f"a {name} checkered floor" in scene.caption)
        floor = (np.abs(scene.xyz[..., 2]) < 1e-9) & (scene.xyz[..., 1] < WALL_Y - 1e-6)
        colours = [np.array(albedo) * light for light in (lit, AMBIENT) for albedo in FLOORS[name]]
        levels = np.clip(np.array(colours) * 255 + 0.5, 0, 255).astype(np.uint8).astype(int)  # (4, 3)
        distance = np.abs(scene.rgb[floor].astype(int)[:, None] - levels).max(-1)  # (N, 4)
        assert np.all(distance.min(1) == 0)
        shadowed += int(np.sum(distance[:, 2:].min(1) == 0))
    assert shadowed > 50


@pytest.mark.parametrize("supersample", [0, 2, -1])
def test_supersampling_needs_an_odd_count_so_a_ray_goes_through_the_centre(supersample):
    with pytest.raises(ValueError, match="odd"):
        make_scene(0, 1, 4, 6, supersample=supersample)


@pytest.mark.parametrize("seed", range(10))
def test_camera_moves_smoothly_and_turns_a_few_to_twenty_five_degrees(seed):
    c2w = make_scene(seed, **SMALL | {"num_frames": 17}).c2w
    rotations = c2w[:, :3, :3]
    np.testing.assert_allclose(
        rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (17, 3, 3)), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(rotations), 1, atol=1e-12)
    steps = [rotation_angle(a, b) for a, b in zip(rotations[:-1], rotations[1:], strict=True)]
    assert max(steps) < 3.0
    assert 3.0 < rotation_angle(rotations[0], rotations[-1]) < 25.0
    moves = np.linalg.norm(np.diff(c2w[:, :3, 3], axis=0), axis=1)
    assert moves.max() < 0.25 and np.abs(np.diff(moves)).max() < 0.05  # small steps, no jerks


# ---------------------------------------------------------------- the folder layout


def test_pred_traj_rows_are_index_translation_and_scalar_first_quaternion(scene, clip_dir):
    rows = [line.split() for line in (clip_dir / "pred_traj.txt").read_text().splitlines()]
    assert len(rows) == 17 and all(len(row) == 8 for row in rows)
    for t, row in enumerate(rows):
        index, tx, ty, tz, w, x, y, z = map(float, row)
        assert index == t
        np.testing.assert_allclose([tx, ty, tz], scene.c2w[t, :3, 3], rtol=0, atol=0)
        # Hand-written rotation of the scalar-first unit quaternion (w, x, y, z).
        R = [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
        np.testing.assert_allclose(R, scene.c2w[t, :3, :3], atol=1e-12)
    intrinsics = np.loadtxt(clip_dir / "pred_intrinsics.txt")
    assert intrinsics.shape == (17, 9)
    assert np.array_equal(intrinsics.reshape(17, 3, 3), scene.K)
    assert sorted(p.name for p in clip_dir.glob("frame_*.npy"))[-1] == "frame_0016.npy"
    assert np.load(clip_dir / "frame_0004.npy").dtype == np.float32


def test_folder_round_trip_returns_rgb_cameras_and_points_exactly(scene, clip_dir):
    clip = read_clip(clip_dir)
    assert np.array_equal(clip.rgb, scene.rgb)  # PNG is lossless
    assert np.array_equal(clip.depth, scene.depth)
    assert np.array_equal(clip.K, scene.K)
    np.testing.assert_allclose(clip.c2w, scene.c2w, rtol=0, atol=1e-15)
    # Points are rebuilt from float32 depth: exact up to its rounding, |Δd|/d ≤ 2⁻²⁴.
    ray_length = np.linalg.norm(scene.xyz - scene.c2w[:, None, None, :3, 3], axis=-1)
    assert (np.linalg.norm(clip.xyz - scene.xyz, axis=-1) <= 2.0**-23 * ray_length + 1e-12).all()
    assert clip.caption == "" and clip.path == clip_dir and clip.num_frames == 17


@given(seeds, st.integers(1, 3), st.integers(2, 12), st.integers(2, 12))
def test_projecting_unprojected_depth_gives_back_the_pixel_grid_and_depth(seed, num_frames, height, width):
    rng = np.random.default_rng(seed)
    c2w = random_camera(rng, num_frames)
    focal = rng.uniform(10, 1000, num_frames)
    K = np.tile(np.eye(3), (num_frames, 1, 1))
    K[:, 0, 0], K[:, 1, 1] = focal, focal
    K[:, 0, 2], K[:, 1, 2] = (width - 1) / 2, (height - 1) / 2
    depth = rng.uniform(0.1, 100, (num_frames, height, width))
    pixels, z = project(unproject(depth, K, c2w), K, c2w)
    np.testing.assert_allclose(pixels, np.broadcast_to(pixel_grid(height, width), pixels.shape), atol=1e-6)
    np.testing.assert_allclose(z, depth, rtol=1e-9)


def test_unproject_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="K must be"):
        unproject(np.ones((2, 4, 4)), np.tile(np.eye(3), (3, 1, 1)), np.tile(np.eye(4), (2, 1, 1)))


def test_video_file_is_read_when_the_png_frames_are_absent(scene, fresh_clip):
    for file in fresh_clip.glob("rgb_*.png"):
        file.unlink()
    iio.imwrite(fresh_clip / "video.mp4", scene.rgb, fps=8)
    clip = read_clip(fresh_clip)
    assert clip.rgb.shape == scene.rgb.shape and clip.rgb.dtype == np.uint8
    assert np.abs(clip.rgb.astype(float) - scene.rgb).mean() < 8  # lossy codec, same pictures


# ---------------------------------------------------------------- the .npz variants


def test_npz_variants_read_the_same_scene_as_the_folder(scene, clip_dir, tmp_path):
    folder = read_clip(clip_dir)
    dynamic = tmp_path / "dynamic.npz"
    np.savez(
        dynamic,
        images=scene.rgb,
        depths=scene.depth,
        intrinsic=scene.K[0],
        cam_c2w=scene.c2w,
        caption="a scene",
    )
    static = tmp_path / "static.npz"
    np.savez(static, images=scene.rgb, pts3d=scene.xyz, poses=scene.c2w)
    for path in (dynamic, static):
        clip = read_clip(path)
        assert np.array_equal(clip.rgb, folder.rgb)
        np.testing.assert_allclose(clip.c2w, folder.c2w, atol=1e-15)
        np.testing.assert_allclose(clip.xyz, folder.xyz, atol=1e-12 if path == dynamic else 1e-5)
        np.testing.assert_allclose(clip.K, folder.K, rtol=1e-9)  # static: K fitted to the points
    assert read_clip(dynamic).caption == "a scene" and read_clip(dynamic, caption="given").caption == "given"
    assert read_clip(static).depth is None and read_clip(static).caption == ""


# ---------------------------------------------------------------- malformed clips


def _rewrite_line(file, line_index, new_line):
    lines = file.read_text().splitlines()
    lines[line_index] = new_line
    file.write_text("\n".join(lines) + "\n")


def _drop_last_line(file):
    file.write_text("\n".join(file.read_text().splitlines()[:-1]) + "\n")


def _scale_quaternion(file):
    values = file.read_text().splitlines()[4].split()
    _rewrite_line(file, 4, " ".join(values[:4] + [str(1.1 * float(q)) for q in values[4:]]))


MALFORMED = {
    "no trajectory": (lambda c: (c / "pred_traj.txt").unlink(), ["pred_traj.txt", "missing"]),
    "no intrinsics": (lambda c: (c / "pred_intrinsics.txt").unlink(), ["pred_intrinsics.txt", "missing"]),
    "gap in depth frames": (lambda c: (c / "frame_0003.npy").unlink(), ["frame_0003.npy", "missing"]),
    "no depth frames": (lambda c: [f.unlink() for f in c.glob("frame_*.npy")], ["frame_0000.npy", "missing"]),
    "no rgb": (lambda c: [f.unlink() for f in c.glob("rgb_*.png")], ["rgb_0000.png", "missing"]),
    "nan depth": (
        lambda c: np.save(c / "frame_0002.npy", np.where(np.eye(64, 96) > 0, np.nan, 1).astype(np.float32)),
        ["frame_0002.npy", "non-finite"],
    ),
    "depth shape": (
        lambda c: np.save(c / "frame_0001.npy", np.ones((10, 10), np.float32)),
        ["frame_0001.npy"],
    ),
    "unreadable depth": (lambda c: (c / "frame_0005.npy").write_bytes(b"not numpy"), ["frame_0005.npy"]),
    "rgb frame shape": (
        lambda c: iio.imwrite(c / "rgb_0004.png", np.zeros((8, 8, 3), np.uint8)),
        ["rgb_0004.png"],
    ),
    "rgb aspect": (
        lambda c: [iio.imwrite(f, np.zeros((64, 64, 3), np.uint8)) for f in c.glob("rgb_*.png")],
        ["rgb_XXXX.png", "frame_XXXX.npy", "aspect"],
    ),
    "fewer poses": (lambda c: _drop_last_line(c / "pred_traj.txt"), ["pred_traj.txt: 16"]),
    "fewer intrinsics": (lambda c: _drop_last_line(c / "pred_intrinsics.txt"), ["pred_intrinsics.txt: 16"]),
    "extra depth frame": (
        lambda c: shutil.copy(c / "frame_0000.npy", c / "frame_0017.npy"),
        ["frame_XXXX.npy: 18"],
    ),
    "unparsable pose": (
        lambda c: _rewrite_line(c / "pred_traj.txt", 2, "2 a b c d e f g"),
        ["pred_traj.txt", "line 3"],
    ),
    "short pose": (
        lambda c: _rewrite_line(c / "pred_traj.txt", 0, "0 1 2 3 1 0 0"),
        ["pred_traj.txt", "line 1"],
    ),
    "out-of-order pose": (
        lambda c: _rewrite_line(c / "pred_traj.txt", 1, "5 0 0 0 1 0 0 0"),
        ["pred_traj.txt", "line 2"],
    ),
    "non-unit quaternion": (
        lambda c: _scale_quaternion(c / "pred_traj.txt"),
        ["pred_traj.txt", "line 5", "quaternion"],
    ),
    "short intrinsics": (
        lambda c: _rewrite_line(c / "pred_intrinsics.txt", 3, "1 0 0 0 1 0 0 0"),
        ["pred_intrinsics.txt", "line 4"],
    ),
    "intrinsics not a pinhole": (
        lambda c: _rewrite_line(c / "pred_intrinsics.txt", 0, "50 0 47 0 50 31 0 1 1"),
        ["pred_intrinsics.txt", "fx, fy > 0"],
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_folder_clip_raises_clip_error_naming_the_file(fresh_clip, case):
    damage, expected = MALFORMED[case]
    damage(fresh_clip)
    with pytest.raises(ClipError) as info:
        read_clip(fresh_clip)
    assert isinstance(info.value, ValueError)
    for text in expected:
        assert text in str(info.value), (text, str(info.value))


def _npz_cases(scene):
    good = {"images": scene.rgb, "depths": scene.depth, "intrinsic": scene.K, "cam_c2w": scene.c2w}
    nan_depth = scene.depth.copy()
    nan_depth[3, 5, 5] = np.nan
    stretched = scene.c2w.copy()
    stretched[:, :3, :3] *= 2
    nan_points = scene.xyz.copy()
    nan_points[0, 0, 0] = np.nan
    return {
        "missing key": ({k: v for k, v in good.items() if k != "cam_c2w"}, ["'cam_c2w'"]),
        "nan depth": (good | {"depths": nan_depth}, ["'depths'", "non-finite"]),
        "count mismatch": (good | {"cam_c2w": scene.c2w[:-1]}, ["cam_c2w: 16"]),
        "not rigid": (good | {"cam_c2w": stretched}, ["rigid"]),
        "bad intrinsic shape": (good | {"intrinsic": scene.K[:3]}, ["'intrinsic'"]),
        "nan points": ({"images": scene.rgb, "pts3d": nan_points, "poses": scene.c2w}, ["'pts3d'"]),
    }


def test_malformed_npz_raises_clip_error_naming_the_file_and_key(scene, tmp_path):
    for case, (arrays, expected) in _npz_cases(scene).items():
        path = tmp_path / f"{case.replace(' ', '_')}.npz"
        np.savez(path, **arrays)
        with pytest.raises(ClipError) as info:
            read_clip(path)
        for text in [path.name, *expected]:
            assert text in str(info.value), (case, text, str(info.value))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(ClipError, match="garbage.npz: unreadable"):
        read_clip(garbage)


# ---------------------------------------------------------------- first camera and normalisation


def test_first_camera_frame_makes_camera_zero_the_identity(scene):
    points = to_first_camera(scene.xyz, scene.c2w)
    np.testing.assert_allclose(points[0, ..., 2], scene.depth[0], rtol=1e-6)  # z of frame 0 = its depth
    rays = np.concatenate([pixel_grid(64, 96), np.ones((64, 96, 1))], -1) @ np.linalg.inv(scene.K[0]).T
    np.testing.assert_allclose(points[0], scene.depth[0, ..., None] * rays, rtol=1e-6, atol=1e-6)


@given(seeds)
def test_first_camera_points_do_not_depend_on_the_world_frame(seed):
    rng = np.random.default_rng(seed)
    c2w = random_camera(rng, 3)
    xyz = rng.normal(0, 5, (3, 4, 5, 3))
    motion = random_camera(rng, 1)[0]  # a rigid change of world frame G
    moved_xyz = xyz @ motion[:3, :3].T + motion[:3, 3]
    np.testing.assert_allclose(to_first_camera(moved_xyz, motion @ c2w), to_first_camera(xyz, c2w), atol=1e-9)


def test_normalization_matches_hand_values():
    # One frame of 101 points: x = 0..100, y = 0, z = 2x. P2/P98: x ∈ [2, 98], z ∈ [4, 196], y constant.
    x = np.arange(101.0)
    xyz = np.stack([x, np.zeros_like(x), 2 * x], -1)[None, None]  # (1, 1, 101, 3)
    normalised, center, scale = normalize_pointmaps(xyz)
    np.testing.assert_allclose(center, [50, 0, 100])
    assert scale == pytest.approx(96)  # the largest half-extent, z: (196 − 4)/2
    np.testing.assert_allclose(normalised[0, 0, 0], [(2 - 50) / 96, 0, -1])  # x clipped to 2, z to 4
    np.testing.assert_allclose(normalised[0, 0, 50], [0, 0, 0])
    np.testing.assert_allclose(normalised[0, 0, 100], [(98 - 50) / 96, 0, 1])


points_clouds = st.tuples(seeds, st.integers(1, 3), st.integers(1, 6), st.integers(2, 6))


@given(points_clouds, st.floats(0, 20), st.floats(80, 100))
def test_normalized_points_fill_the_unit_cube_along_their_widest_axis(cloud, low, high):
    seed, num_frames, height, width = cloud
    rng = np.random.default_rng(seed)
    xyz = rng.normal(rng.normal(0, 100, 3), rng.uniform(0.01, 50, 3), (num_frames, height, width, 3))
    normalised, _, _ = normalize_pointmaps(xyz, low, high)
    assert normalised.shape == xyz.shape
    assert np.abs(normalised).max() <= 1
    extent = normalised.max(axis=(0, 1, 2)) - normalised.min(axis=(0, 1, 2))
    assert extent.max() == pytest.approx(2)


@given(points_clouds)
def test_normalization_without_clipping_is_a_similarity(cloud):
    seed, num_frames, height, width = cloud
    rng = np.random.default_rng(seed)
    xyz = rng.normal(rng.normal(0, 100, 3), rng.uniform(0.01, 50, 3), (num_frames, height, width, 3))
    normalised, center, scale = normalize_pointmaps(xyz, low=0, high=100)
    np.testing.assert_allclose(scale * normalised + center, xyz, rtol=1e-9, atol=1e-9 * scale)
    points, mapped = xyz.reshape(-1, 3), normalised.reshape(-1, 3)
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.testing.assert_allclose(
        np.linalg.norm(mapped[:, None] - mapped[None], axis=-1) * scale, distances, atol=1e-9 * scale
    )


def test_percentile_clipping_keeps_an_outlier_from_setting_the_scale():
    rng = np.random.default_rng(0)
    xyz = rng.uniform(0, 1, (2, 10, 10, 3))
    xyz[1, 3, 3] = 1e6
    normalised, _, scale = normalize_pointmaps(xyz)
    assert scale < 0.5 and np.allclose(normalised[1, 3, 3], normalised[1].max(axis=(0, 1)))


def test_normalization_rejects_a_clip_without_extent():
    with pytest.raises(ValueError, match="single point"):
        normalize_pointmaps(np.ones((2, 3, 3, 3)))


# ---------------------------------------------------------------- captions, scanning, the Dataset


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_dataset(root, 3, seed=5, **SMALL)
    return root


def test_write_dataset_names_clips_and_writes_their_captions(small_root):
    assert sorted(p.name for p in small_root.iterdir()) == [
        "captions.csv",
        "clip_00000",
        "clip_00001",
        "clip_00002",
    ]
    with open(small_root / "captions.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["number"] for row in rows] == ["0", "1", "2"]
    for index, row in enumerate(rows):
        scene = make_scene(clip_seed(5, index), **SMALL)
        assert row["caption"] == scene.caption
        assert np.array_equal(read_clip(small_root / f"clip_{index:05d}").rgb, scene.rgb)
    assert clip_seed(5, 1) not in {clip_seed(6, i) for i in range(100)}  # other seeds draw other scenes


def test_captions_match_by_number_or_by_name(tmp_path):
    (tmp_path / "captions.csv").write_text('number, caption\n7, "seven, with a comma"\nclip_x, named\n')
    captions = read_captions(tmp_path)
    assert caption_for("clip_00007", captions) == "seven, with a comma"
    assert caption_for("00007", captions) == "seven, with a comma"
    assert caption_for("clip_x", captions) == "named"
    assert caption_for("clip_00008", captions) is None
    assert read_captions(tmp_path / "nowhere") == {}


def test_dataset_captions_come_from_csv_else_npz_else_empty(scene, clip_dir, tmp_path):
    shutil.copytree(clip_dir, tmp_path / "clip_00000")
    shutil.copytree(clip_dir, tmp_path / "clip_00001")
    np.savez(
        tmp_path / "clip_00002.npz",
        images=scene.rgb,
        depths=scene.depth,
        intrinsic=scene.K,
        cam_c2w=scene.c2w,
        caption="from npz",
    )
    np.savez(
        tmp_path / "clip_00003.npz",
        images=scene.rgb,
        depths=scene.depth,
        intrinsic=scene.K,
        cam_c2w=scene.c2w,
        caption="from npz",
    )
    (tmp_path / "captions.csv").write_text("number,caption\n0,from csv\n3,csv wins\n")
    dataset = ClipDataset(tmp_path, 2, 8, 12)
    assert dataset.names == ["clip_00000", "clip_00001", "clip_00002", "clip_00003"]
    assert [dataset[i].caption for i in range(4)] == ["from csv", "", "from npz", "csv wins"]


def test_scan_dataset_reports_bad_clips_and_keeps_good_ones(tmp_path):
    write_dataset(tmp_path, 4, seed=1, **SMALL)
    (tmp_path / "clip_00001" / "pred_intrinsics.txt").unlink()
    np.save(tmp_path / "clip_00003" / "frame_0002.npy", np.full((16, 24), np.nan, np.float32))
    (tmp_path / "notes.txt").write_text("not a clip")
    good, bad = scan_dataset(tmp_path)
    assert [p.name for p in good] == ["clip_00000", "clip_00002"]
    assert [p.name for p, _ in bad] == ["clip_00001", "clip_00003"]
    assert "pred_intrinsics.txt" in bad[0][1] and "frame_0002.npy" in bad[1][1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = ClipDataset(tmp_path, 5, 16, 24)
    assert len(caught) == 1 and "2 of 4 clips" in str(caught[0].message)
    assert len(dataset) == 2 and dataset.names == ["clip_00000", "clip_00002"]
    assert dataset[1].caption == read_captions(tmp_path)["2"]


def test_dataset_items_have_documented_shapes_and_ranges(small_root):
    dataset = ClipDataset(small_root, 4, 8, 12)
    assert len(dataset) == 3
    item = dataset[1]
    assert item.rgb.shape == (3, 4, 8, 12) and item.rgb.dtype == torch.float32
    assert item.xyz.shape == (3, 4, 8, 12) and item.xyz.dtype == torch.float32
    assert item.first_frame.shape == (3, 8, 12) and torch.equal(item.first_frame, item.rgb[:, 0])
    assert item.rgb.min() >= -1 and item.rgb.max() <= 1
    assert item.xyz.abs().max() == 1  # the widest axis touches ±1
    assert item.name == "clip_00001" and item.caption == read_captions(small_root)["1"]


def test_dataset_at_the_clip_size_returns_the_clip_unresampled(small_root):
    item = ClipDataset(small_root, 5, 16, 24)[0]
    clip = read_clip(small_root / "clip_00000")
    expected_rgb = torch.from_numpy(clip.rgb).permute(3, 0, 1, 2).float() / 127.5 - 1
    assert torch.equal(item.rgb, expected_rgb)
    expected_xyz, _, _ = normalize_pointmaps(to_first_camera(clip.xyz, clip.c2w))
    assert torch.equal(item.xyz, torch.from_numpy(expected_xyz).float().permute(3, 0, 1, 2))


def test_xyz_is_centre_cropped_and_resized_by_nearest_neighbour_only(small_root):
    # 16×24 → 8×8: crop the central 16×16 (columns 4..19), then keep every other pixel centre (1, 3, …).
    clip = read_clip(small_root / "clip_00002")
    item = clip_sample(clip, 3, 8, 8)
    first_camera = to_first_camera(clip.xyz[:3], clip.c2w[:3])[:, 1::2, 4:20][:, :, 1::2]
    expected, _, _ = normalize_pointmaps(first_camera)
    assert torch.equal(item.xyz, torch.from_numpy(expected).float().permute(3, 0, 1, 2))
    # RGB: antialiased bilinear, as Pillow's BILINEAR filter resizes (the trusted reference).
    for t in range(3):
        reference = np.asarray(
            Image.fromarray(clip.rgb[t, :, 4:20]).resize((8, 8), Image.Resampling.BILINEAR)
        )
        ours = (item.rgb[:, t].permute(1, 2, 0).numpy() + 1) * 127.5
        assert np.abs(ours - reference).max() <= 1  # Pillow rounds to uint8


def test_too_few_frames_is_an_error(small_root):
    with pytest.raises(ClipError, match="5 frames, fewer than the 6 requested"):
        clip_sample(read_clip(small_root / "clip_00000"), 6, 8, 8)
    with pytest.warns(UserWarning, match="3 of 3 clips"), pytest.raises(ValueError, match="no usable clips"):
        ClipDataset(small_root, 6, 8, 8)
