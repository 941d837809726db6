"""The 4D viewer's recording, read back with Rerun's own reader: entities, timeline, points, colours, cameras.

Spec: specs/viewer.md

Scenes are synthetic (`make_scene`, 5 frames of 16 × 24), written in the `nano4d generate` output
layout with numpy and json, recorded with `record_scene`, and read back through
`rerun.chunk.RrdReader` and its DataFusion dataframe (`ChunkStore.reader`). Nothing here opens a viewer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rerun.chunk import RrdReader  # its dataframe reader (ChunkStore.reader) needs datafusion

from nanofourdnex.data import to_first_camera
from nanofourdnex.outputs import xyz_colors
from nanofourdnex.paper.reprojection import camera_to_world
from nanofourdnex.synthetic import make_scene, write_clip
from nanofourdnex.viewer import (
    DEFAULT_MAX_POINTS,
    FRUSTUM_FRACTION,
    Scene4D,
    View,
    read_output_folder,
    read_training_clip,
    record_scene,
    run_view,
    subsample_stride,
)

FRAMES, HEIGHT, WIDTH = 5, 16, 24
PER_FRAME = (
    "/world/points",
    "/world/camera",
    "/world/camera/image",
    "/world/novel_camera",
    "/views/depth",
    "/views/xyz",
)
STATIC = ("/world", "/world/trajectory", "/world/novel_trajectory")


def write_output_folder(folder: Path, seed: int = 0, shared_K: bool = True) -> dict:
    """A synthetic scene in the layout `nano4d generate` writes; returns its arrays and cameras."""
    scene = make_scene(seed, num_frames=FRAMES, height=HEIGHT, width=WIDTH)
    first = np.linalg.inv(scene.c2w[0])
    c2w = first @ scene.c2w  # generated XYZ lives in the first camera's frame
    xyz = to_first_camera(scene.xyz, scene.c2w).astype(np.float32)
    w2c = np.linalg.inv(c2w)
    novel_w2c = w2c.copy()
    novel_w2c[:, 0, 3] -= np.linspace(0, 0.5, FRAMES)  # a pan to the right

    def cameras(world_to_camera: np.ndarray) -> dict:
        frames = [{"R": w[:3, :3].tolist(), "t": w[:3, 3].tolist()} for w in world_to_camera]
        if not shared_K:
            for frame, K in zip(frames, scene.K, strict=True):
                frame["K"] = K.tolist()
        return {"K": scene.K[0].tolist() if shared_K else None, "frames": frames}

    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / "sixd.npz", rgb=scene.rgb, xyz=xyz)
    np.savez_compressed(folder / "depth.npz", depth=scene.depth, residual=np.zeros_like(scene.depth))
    (folder / "cameras.json").write_text(json.dumps(cameras(w2c)))
    (folder / "novel_cameras.json").write_text(json.dumps(cameras(novel_w2c)))
    return {
        "rgb": scene.rgb,
        "xyz": xyz,
        "depth": scene.depth,
        "K": scene.K,
        "w2c": w2c,
        "novel_w2c": novel_w2c,
    }


def read_back(path: Path) -> dict[str, dict]:
    """Per entity: its frame indices and component values as Python lists, from Rerun's dataframe reader."""
    store = RrdReader(path).stream().collect()
    entities = {}
    for index, paths in (("frame", PER_FRAME), (None, STATIC)):
        for entity in paths:
            table = store.reader(index, contents=entity).to_arrow_table()
            if table.num_rows:
                entities[entity] = {
                    name.split(":", 1)[-1]: table.column(name).to_pylist() for name in table.column_names
                }
    return entities


def matrix(column_major: list[float]) -> np.ndarray:
    """Rerun stores 3×3 matrices column-major."""
    return np.asarray(column_major, dtype=np.float64).reshape(3, 3).T


def rgba(packed: list[int]) -> np.ndarray:
    """Rerun's colours are 0xRRGGBBAA integers → (N, 4) uint8."""
    return np.asarray(packed, dtype=">u4").view(np.uint8).reshape(-1, 4)


def image(buffer: list[int], fmt: dict, dtype: type, channels: int) -> np.ndarray:
    return (
        np.frombuffer(bytes(buffer), dtype=dtype)
        .reshape(fmt["height"], fmt["width"], channels)
        .squeeze(-1 if channels == 1 else ())
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[dict, dict, object]:
    """One output folder, recorded at stride 2 (96 of 384 points a frame), and read back."""
    folder = tmp_path_factory.mktemp("out")
    truth = write_output_folder(folder)
    info = record_scene(read_output_folder(folder), folder / "scene.rrd", max_points=100)
    return truth, read_back(folder / "scene.rrd"), info


def test_recording_holds_every_entity_on_one_frame_timeline_of_T_steps(recorded):
    _, entities, info = recorded
    assert set(entities) == set(PER_FRAME) | set(STATIC)
    for entity in PER_FRAME:
        assert entities[entity]["frame"] == list(range(FRAMES)), entity
    schema = RrdReader(info.path).stream().collect().schema()
    assert [index.name for index in schema.index_columns()] == ["frame"]  # no log_time, no log_tick
    assert entities["/world"]["ViewCoordinates:xyz"][0] == [[3, 2, 5]]  # ViewDir Right, Down, Forward: OpenCV


def test_points_are_the_subsampled_xyz_coloured_by_their_rgb(recorded):
    truth, entities, info = recorded
    assert (info.stride, info.points_per_frame, info.pixels_per_frame) == (2, 96, 384)
    points = entities["/world/points"]
    for k in range(FRAMES):
        positions = np.asarray(points["Points3D:positions"][k], dtype=np.float32)
        assert positions.shape == (96, 3)
        np.testing.assert_array_equal(positions, truth["xyz"][k, ::2, ::2].reshape(-1, 3))
        colours = rgba(points["Points3D:colors"][k])
        np.testing.assert_array_equal(colours[:, :3], truth["rgb"][k, ::2, ::2].reshape(-1, 3))
        assert (colours[:, 3] == 255).all()


def test_camera_poses_and_intrinsics_equal_cameras_json(recorded):
    truth, entities, _ = recorded
    for entity, w2c in (("/world/camera", truth["w2c"]), ("/world/novel_camera", truth["novel_w2c"])):
        camera = entities[entity]
        for k in range(FRAMES):
            R, t = w2c[k, :3, :3], w2c[k, :3, 3]
            np.testing.assert_allclose(matrix(camera["Transform3D:mat3x3"][k][0]), R.T, atol=1e-6)
            np.testing.assert_allclose(camera["Transform3D:translation"][k][0], -R.T @ t, atol=1e-5)
            expected_K = truth["K"][k].copy()
            expected_K[:2, 2] += 0.5  # Rerun's pixel centres sit at +½
            np.testing.assert_allclose(
                matrix(camera["Pinhole:image_from_camera"][k][0]), expected_K, rtol=1e-6
            )
            assert camera["Pinhole:resolution"][k][0] == [WIDTH, HEIGHT]
            frustum = FRUSTUM_FRACTION * np.median(truth["depth"][0])  # frame 0's depth in camera 0
            assert camera["Pinhole:image_plane_distance"][k][0] == pytest.approx(frustum, rel=1e-6)
    trajectory = np.asarray(entities["/world/trajectory"]["LineStrips3D:strips"][0][0])
    centres = -np.einsum("tji,tj->ti", truth["w2c"][:, :3, :3], truth["w2c"][:, :3, 3])  # C = −Rᵀt
    np.testing.assert_allclose(trajectory, centres, atol=1e-5)
    np.testing.assert_allclose(trajectory[0], 0, atol=1e-6)  # the world is the first camera's frame


def test_rgb_depth_and_xyz_colour_images_are_the_full_frames(recorded):
    truth, entities, _ = recorded
    colours = xyz_colors(truth["xyz"])
    for k in range(FRAMES):
        rgb = entities["/world/camera/image"]
        np.testing.assert_array_equal(
            image(rgb["Image:buffer"][k][0], rgb["Image:format"][k][0], np.uint8, 3), truth["rgb"][k]
        )
        xyz = entities["/views/xyz"]
        np.testing.assert_array_equal(
            image(xyz["Image:buffer"][k][0], xyz["Image:format"][k][0], np.uint8, 3), colours[k]
        )
        depth = entities["/views/depth"]
        logged = image(depth["DepthImage:buffer"][k][0], depth["DepthImage:format"][k][0], np.float32, 1)
        np.testing.assert_array_equal(logged, truth["depth"][k])
        assert depth["DepthImage:meter"][k] == [1.0]


def test_blueprint_puts_a_large_3d_view_beside_small_rgb_depth_and_xyz_views(recorded):
    _, _, info = recorded
    reader = RrdReader(info.path)
    (blueprint,) = reader.blueprints()
    table = reader.stream(store=blueprint).collect().reader("blueprint").to_arrow_table()
    views = {}
    for name in table.column_names:
        if name.endswith(":ViewBlueprint:space_origin"):
            view = name.split(":")[0]
            (origin,) = [v for v in table.column(name).to_pylist() if v][0]
            (title,) = [v for v in table.column(f"{view}:ViewBlueprint:display_name").to_pylist() if v][0]
            (kind,) = [v for v in table.column(f"{view}:ViewBlueprint:class_identifier").to_pylist() if v][0]
            views[origin] = (kind, title)
    assert views == {
        "/world": ("3D", "3D: 96 of 384 points per frame (one per 2×2 pixels)"),
        "/world/camera/image": ("2D", "RGB"),
        "/views/depth": ("2D", "depth"),
        "/views/xyz": ("2D", "XYZ as colour"),
    }
    (shares,) = [
        v
        for name in table.column_names
        if name.endswith(":col_shares")
        for v in table.column(name).to_pylist()
        if v
    ]
    assert shares == [3.0, 1.0]


@given(st.integers(1, 500), st.integers(1, 800), st.integers(0, 400_000))
def test_subsampling_stride_is_the_smallest_that_fits_max_points(height, width, max_points):
    stride = subsample_stride(height, width, max_points)

    def count(s: int) -> int:
        return -(-height // s) * -(-width // s)

    if max_points == 0:
        assert stride == 1
    else:
        assert count(stride) <= max_points
        assert stride == 1 or count(stride - 1) > max_points


def test_default_subsampling_keeps_a_quarter_of_a_480_by_720_frame():
    assert DEFAULT_MAX_POINTS == 100_000
    assert subsample_stride(480, 720, DEFAULT_MAX_POINTS) == 2  # 240 × 360 = 86,400 points a frame


def test_max_points_zero_keeps_every_point_and_non_finite_points_are_left_out(tmp_path):
    truth = write_output_folder(tmp_path)
    scene = read_output_folder(tmp_path)
    scene.xyz = scene.xyz.copy()
    scene.xyz[1, 0, :3] = [np.nan, np.inf, 0]
    info = record_scene(scene, tmp_path / "all.rrd", max_points=0)
    assert (info.stride, info.describe()) == (1, "all 384 points per frame")
    points = read_back(tmp_path / "all.rrd")["/world/points"]
    counts = [len(p) for p in points["Points3D:positions"]]
    assert counts == [384, 381, 384, 384, 384]
    np.testing.assert_array_equal(
        np.asarray(points["Points3D:positions"][1], np.float32), truth["xyz"][1].reshape(-1, 3)[3:]
    )


def test_per_frame_intrinsics_are_logged_per_frame(tmp_path):
    truth = write_output_folder(tmp_path, shared_K=False)
    scene = read_output_folder(tmp_path)
    assert scene.K.shape == (FRAMES, 3, 3)
    record_scene(scene, tmp_path / "scene.rrd")
    logged = read_back(tmp_path / "scene.rrd")["/world/camera"]["Pinhole:image_from_camera"]
    np.testing.assert_allclose([matrix(K[0])[0, 0] for K in logged], truth["K"][:, 0, 0], rtol=1e-6)


def test_a_training_clip_is_shown_in_its_first_camera_frame(tmp_path):
    scene = make_scene(3, num_frames=FRAMES, height=HEIGHT, width=WIDTH)
    clip = read_training_clip(write_clip(scene, tmp_path / "clip_00003"))
    np.testing.assert_allclose(clip.camera_to_world[0], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(clip.xyz, to_first_camera(scene.xyz, scene.c2w), atol=1e-6)  # float32 depth
    np.testing.assert_array_equal(clip.rgb, scene.rgb)
    assert clip.title == "clip_00003 (ground truth)"
    # Camera t maps its own pixels' depth to the clip's points: the poses moved with the points.
    R, C = clip.camera_to_world[2, :3, :3], clip.camera_to_world[2, :3, 3]
    np.testing.assert_allclose(((clip.xyz[2] - C) @ R)[..., 2], scene.depth[2], rtol=1e-5)


def test_a_clip_with_larger_rgb_takes_the_colour_of_the_pixel_under_each_point(tmp_path):
    scene = make_scene(4, num_frames=FRAMES, height=HEIGHT, width=WIDTH)
    big = scene.rgb.repeat(2, axis=1).repeat(2, axis=2)  # (T, 2H, 2W, 3)
    big[:, ::2] = 0  # rows 2i are black, rows 2i + 1 carry the colours: ⌊(i + ½)·2⌋ = 2i + 1
    np.savez(tmp_path / "clip.npz", images=big, depths=scene.depth, intrinsic=scene.K[0], cam_c2w=scene.c2w)
    clip = read_training_clip(tmp_path / "clip.npz")
    assert clip.rgb.shape == (FRAMES, HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(clip.rgb, scene.rgb)


def test_run_view_save_writes_the_recording_and_reuses_only_the_folders_own_while_fresh(tmp_path):
    write_output_folder(tmp_path / "out")
    own = tmp_path / "out" / "scene.rrd"
    first = run_view(tmp_path / "out", save=own)
    assert first.built is not None and first.process is None and own.is_file()
    assert first.lines() == [f"wrote {own}: 5 frames, all 384 points per frame"]
    again = run_view(tmp_path / "out" / "sixd.npz", save=own)
    assert again.built is None and again.lines() == [f"opening {own}"]
    rebuilt = run_view(tmp_path / "out", save=own, max_points=100)
    assert rebuilt.built.stride == 2
    # another file, however new, may be another scene's: it is always written
    elsewhere = tmp_path / "view.rrd"
    elsewhere.write_bytes(b"another scene's recording")
    written = run_view(tmp_path / "out", save=elsewhere)
    assert written.built is not None and written.lines()[0].startswith(f"wrote {elsewhere}")
    assert read_back(elsewhere).keys() == read_back(own).keys()


def test_camera_to_world_inverts_world_to_camera():
    rng = np.random.default_rng(0)
    R = np.linalg.qr(rng.normal(size=(4, 3, 3)))[0]
    t = rng.normal(size=(4, 3))
    w2c = np.tile(np.eye(4), (4, 1, 1))
    w2c[:, :3, :3], w2c[:, :3, 3] = R, t
    np.testing.assert_allclose(camera_to_world(R, t) @ w2c, np.tile(np.eye(4), (4, 1, 1)), atol=1e-12)


def test_native_viewer_without_a_display_is_a_one_line_error(tmp_path, monkeypatch):
    write_output_folder(tmp_path)
    record_scene(read_output_folder(tmp_path), tmp_path / "scene.rrd")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    with pytest.raises(
        ValueError, match=r"^no display for the native viewer .*use --web, or --save FILE\.rrd$"
    ):
        run_view(tmp_path / "scene.rrd")


def break_cameras(folder: Path) -> None:
    cameras = json.loads((folder / "cameras.json").read_text())
    cameras["frames"] = cameras["frames"][:3]
    (folder / "cameras.json").write_text(json.dumps(cameras))


def break_depth(folder: Path) -> None:
    np.savez(folder / "depth.npz", depth=np.ones((FRAMES, HEIGHT, WIDTH + 1), np.float32))


def break_xyz(folder: Path) -> None:
    with np.load(folder / "sixd.npz") as sixd:
        np.savez(folder / "sixd.npz", rgb=sixd["rgb"], xyz=sixd["xyz"][:, :, :-1])


def drop_xyz(folder: Path) -> None:
    with np.load(folder / "sixd.npz") as sixd:
        np.savez(folder / "sixd.npz", rgb=sixd["rgb"])


def break_novel(folder: Path) -> None:
    (folder / "novel_cameras.json").write_text(json.dumps({"K": None, "frames": []}))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda f: (f / "cameras.json").unlink(),
            r"has no cameras\.json; an output folder of `nano4d generate` has sixd\.npz, cameras\.json, depth\.npz$",
        ),
        (lambda f: (f / "depth.npz").unlink(), r"has no depth\.npz; "),
        (break_cameras, r"cameras\.json: 3 cameras, expected one per frame of sixd\.npz \(5\)$"),
        (
            break_depth,
            r"depth\.npz: depth is \(5, 16, 25\), expected \(T, H, W\) = \(5, 16, 24\) as in sixd\.npz$",
        ),
        (
            break_xyz,
            r"sixd\.npz: xyz must be \(T, H, W, 3\) = \(5, 16, 24, 3\) float like rgb, got \(5, 16, 23, 3\) float32$",
        ),
        (drop_xyz, r"sixd\.npz: it has keys \['rgb'\], not \['xyz'\]; expected the 6D video: "),
        (
            lambda f: (f / "sixd.npz").write_bytes(b"not a zip"),
            r"sixd\.npz is not readable as the 6D video: ",
        ),
        (break_novel, r"novel_cameras\.json needs 'frames'"),
    ],
    ids=[
        "no-cameras",
        "no-depth",
        "camera-count",
        "depth-shape",
        "xyz-shape",
        "no-xyz-key",
        "not-npz",
        "bad-novel",
    ],
)
def test_a_damaged_output_folder_is_a_one_line_value_error(tmp_path, damage, message):
    write_output_folder(tmp_path)
    damage(tmp_path)
    with pytest.raises(ValueError, match=message) as error:
        run_view(tmp_path, save=tmp_path / "scene.rrd")
    assert "\n" not in str(error.value)


def test_missing_targets_and_misused_options_are_one_line_value_errors(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"nowhere does not exist; expected an output folder, a sixd\.npz, a training clip or an \.rrd$",
    ):
        run_view(tmp_path / "nowhere")
    with pytest.raises(
        ValueError, match=r"is not a folder; expected the output folder of `nano4d generate`$"
    ):
        read_output_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        ValueError, match=r"empty has no sixd\.npz, so it was read as a training clip: .*pred_traj\.txt"
    ):
        run_view(tmp_path / "empty", save=tmp_path / "x.rrd")
    (tmp_path / "photo.png").write_bytes(b"a photo")
    (tmp_path / "folder.rrd").mkdir()
    for save in (tmp_path / "photo.png", tmp_path / "folder.rrd"):  # never replaced, never written into
        with pytest.raises(ValueError, match=r"name the \.rrd file to write the recording to$"):
            run_view(tmp_path / "empty", save=save)
    assert (tmp_path / "photo.png").read_bytes() == b"a photo" and not any(
        (tmp_path / "folder.rrd").iterdir()
    )
    with pytest.raises(ValueError, match=r"--port must lie in 0\.\.65535"):
        run_view(tmp_path / "empty", web=True, port=70000)
    (tmp_path / "a.rrd").write_bytes(b"")
    with pytest.raises(
        ValueError,
        match=r"a\.rrd is already a recording; --save and --max-points need the files it was built from$",
    ):
        run_view(tmp_path / "a.rrd", max_points=10)


def test_scene4d_rejects_mismatched_arrays_naming_what_was_expected():
    rgb = np.zeros((2, 4, 6, 3), np.uint8)
    xyz = np.zeros((2, 4, 6, 3), np.float32)
    c2w = np.tile(np.eye(4), (2, 1, 1))
    cases = [
        (dict(rgb=rgb.astype(np.float32)), r"^rgb must be \(T, H, W, 3\) uint8, got \(2, 4, 6, 3\) float32$"),
        (
            dict(xyz=xyz[:1]),
            r"^xyz must be \(T, H, W, 3\) = \(2, 4, 6, 3\) float like rgb, got \(1, 4, 6, 3\) float32$",
        ),
        (dict(K=np.eye(4)), r"^K must be \(3, 3\) or \(T, 3, 3\) with T = 2, got \(4, 4\)$"),
        (dict(camera_to_world=c2w[:1]), r"^camera_to_world must be \(T, 4, 4\) with T = 2, got \(1, 4, 4\)$"),
        (dict(depth=np.zeros((2, 4, 5))), r"^depth must be \(T, H, W\) = \(2, 4, 6\), got \(2, 4, 5\)$"),
        (dict(novel_K=np.eye(3)), r"^novel_K and novel_camera_to_world go together: give both or neither$"),
        (
            dict(novel_K=np.eye(3), novel_camera_to_world=c2w[:1]),
            r"^novel_camera_to_world must be \(T, 4, 4\) with T = 2",
        ),
    ]
    for change, message in cases:
        arguments = dict(rgb=rgb, xyz=xyz, K=np.eye(3), camera_to_world=c2w) | change
        with pytest.raises(ValueError, match=message):
            Scene4D(**arguments)


def test_a_terminated_viewer_command_stops_its_server_too(tmp_path):
    """`nano4d view --web` waits on its server; SIGTERM (timeout, a scheduler) must not leave it running."""
    reached_the_test = []
    guard = signal.signal(signal.SIGTERM, lambda *_: reached_the_test.append(True))  # never kill pytest
    ours = signal.getsignal(signal.SIGTERM)
    server = subprocess.Popen(["sleep", "5"], start_new_session=True)  # a stand-in server process
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        View(tmp_path / "scene.rrd", None, process=server).wait()
        handler_after = signal.getsignal(signal.SIGTERM)
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, guard)
    assert server.returncode == -signal.SIGTERM and not reached_the_test  # View stopped it, at once
    assert handler_after is ours  # ... and put the handler it found back
