"""The 4D viewer: a Rerun recording (.rrd) of a 6D video, to scrub through time and orbit the point clouds.

A 6D video is RGB frames plus pixel-aligned XYZ point maps (§4.1): a 4D object. The paper shows no
viewer; the public code's `rerun_vis.py` logs one coloured point cloud per frame and the camera poses
to a `.rrd` opened with `rerun file.rrd --web-viewer`. This module does the same for what
`nano4d generate` writes and for training clips, with rerun-sdk 0.41.

What is logged where (timeline `frame` = 0 … T−1; everything under /world is in world coordinates):

    /world                   static  ViewCoordinates RDF: the world is an OpenCV camera frame
    /world/points            frame   Points3D: frame t's XYZ map, subsampled, coloured by its RGB
    /world/camera            frame   Transform3D = camera-to-world [R_c2w | C] and Pinhole (K, W × H)
    /world/camera/image      frame   Image: the RGB frame, drawn on the frustum's image plane
    /world/trajectory        static  LineStrips3D: the camera centres C_0 … C_{T−1}
    /world/novel_camera      frame   Transform3D and Pinhole of the novel-view path (when there is one)
    /world/novel_trajectory  static  LineStrips3D: its camera centres
    /views/depth             frame   DepthImage: the depth map (outside /world: not unprojected again)
    /views/xyz               frame   Image: XYZ as colour, each axis min-max scaled over the clip

Conventions:
* Cameras are OpenCV (x right, y down, z forward; depth = z). The world of a generated scene is the
  normalised first-camera frame of its XYZ, and a training clip is moved into its first camera's
  frame (metric, not normalised), so in both the world is camera 0's frame: world up = −y of the
  first camera, which `ViewCoordinates RDF` on /world tells the 3D view.
* Pixels: this project puts pixel centres at integers, Rerun puts pixel (i, j) on [j, j + 1] × [i, i + 1]
  (centre j + ½). The logged K is K with its principal point moved by (+½, +½), which puts each RGB
  pixel exactly where its ray crosses the frustum's image plane.
* Subsampling: the points of a frame are every s-th row and column of its XYZ map from pixel (0, 0),
  with the smallest stride s ≥ 1 for which ⌈H/s⌉·⌈W/s⌉ ≤ max_points (`max_points` = 0 keeps all);
  points with a non-finite coordinate are left out. The default 100,000 gives s = 2 on 480 × 720:
  86,400 points a frame, 4.2 M for 49 frames. Images are logged at full size. The 3D view's title
  says the stride.
* Frustums are drawn at FRUSTUM_FRACTION of the median depth of frame 0's points.

Layout (the recording's default blueprint): the 3D view of /world takes three quarters of the width;
RGB, depth and XYZ-as-colour are stacked small on the right; the side panels start collapsed and
the `frame` timeline plays in a loop at 16 fps (scrub or pause it in the time bar).

Files: `nano4d generate` writes OUT/scene.rrd; `nano4d view` rebuilds it when it is missing or older
than its inputs, writes a training clip's recording to the temporary folder, and opens a recording
with the `rerun` binary that rerun-sdk ships (native window, or `--web`: its web viewer on localhost,
served offline).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rerun as rr
import rerun.blueprint as rrb

from .data import read_clip, to_first_camera
from .outputs import load_trajectory_json, xyz_colors
from .paper.reprojection import camera_to_world
from .reading import read_npz

DEFAULT_MAX_POINTS = 100_000  # points per frame; 480 × 720 → stride 2, 86,400 points
FRUSTUM_FRACTION = 0.2  # image-plane distance of the drawn frustums / median depth of frame 0
FPS = 16  # playback rate of the `frame` timeline: Wan's video rate, as the mp4s
WEB_PORT = 9090  # Rerun's own default for its web viewer
SERVER_START_SECONDS = 60.0  # how long a web viewer server may take to listen
OUTPUT_FILES = ("sixd.npz", "cameras.json", "depth.npz")  # what `nano4d generate` writes and is read here
RECORDING = "scene.rrd"  # the recording's name inside an output folder
CAMERA_COLOR = (80, 160, 255)
NOVEL_COLOR = (255, 140, 0)


@dataclass
class Scene4D:
    """A 6D video and its cameras in one world frame, camera 0's (up = −y). Anything np.asarray takes is accepted."""

    rgb: np.ndarray  # (T, H, W, 3) uint8
    xyz: np.ndarray  # (T, H, W, 3) float world points
    K: np.ndarray  # (3, 3) shared or (T, 3, 3), for the H × W grid, pixel centres at integers
    camera_to_world: np.ndarray  # (T, 4, 4)
    depth: np.ndarray | None = None  # (T, H, W); None: no depth view
    novel_K: np.ndarray | None = None  # (3, 3) or (T, 3, 3), with novel_camera_to_world
    novel_camera_to_world: np.ndarray | None = None  # (T, 4, 4): novel-view camera i films frame i
    title: str = "scene"

    def __post_init__(self) -> None:
        self.rgb, self.xyz = _check_frames(np.asarray(self.rgb), np.asarray(self.xyz))
        frames, height, width = self.rgb.shape[:3]
        self.K, self.camera_to_world = _check_cameras(self.K, self.camera_to_world, frames, "")
        if self.depth is not None:
            self.depth = np.asarray(self.depth)
            if self.depth.shape != (frames, height, width):
                raise ValueError(
                    f"depth must be (T, H, W) = {(frames, height, width)}, got {self.depth.shape}"
                )
        if (self.novel_K is None) != (self.novel_camera_to_world is None):
            raise ValueError("novel_K and novel_camera_to_world go together: give both or neither")
        if self.novel_K is not None:
            self.novel_K, self.novel_camera_to_world = _check_cameras(
                self.novel_K, self.novel_camera_to_world, frames, "novel_"
            )


@dataclass
class SceneRecording:
    """What `record_scene` wrote: the file and how the points were subsampled."""

    path: Path
    num_frames: int
    stride: int  # every stride-th row and column of the XYZ map became a point
    points_per_frame: int  # ⌈H/stride⌉·⌈W/stride⌉ (non-finite points are then left out)
    pixels_per_frame: int  # H·W

    def describe(self) -> str:
        if self.stride == 1:
            return f"all {self.pixels_per_frame:,} points per frame"
        return (
            f"{self.points_per_frame:,} of {self.pixels_per_frame:,} points per frame "
            f"(one per {self.stride}×{self.stride} pixels)"
        )


@dataclass
class View:
    """What `run_view` did: the recording, whether it was built, and the viewer process it started."""

    recording: Path
    built: SceneRecording | None  # None: an existing recording was opened as is
    url: str | None = None  # the web viewer's address
    process: subprocess.Popen | None = None  # the native viewer or the web server (its own session)

    def lines(self) -> list[str]:
        """What the CLI prints."""
        if self.built is None:
            lines = [f"opening {self.recording}"]
        else:
            lines = [f"wrote {self.recording}: {self.built.num_frames} frames, {self.built.describe()}"]
        if self.url is not None:
            lines.append(f"web viewer: {self.url}  (Ctrl-C stops it)")
        elif self.process is not None:
            lines.append("native viewer started")
        return lines

    def wait(self) -> None:
        """Block until the viewer process ends; Ctrl-C or SIGTERM (e.g. `timeout`, a job scheduler) stops it."""

        def interrupt(signum, frame):
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, interrupt)
        try:
            self.process.wait()
        except KeyboardInterrupt:
            self.close()
        finally:
            signal.signal(signal.SIGTERM, previous)

    def close(self) -> None:
        """Stop the viewer process and its children (it runs in a session of its own)."""
        if self.process is not None:
            _stop(self.process)


def subsample_stride(height: int, width: int, max_points: int) -> int:
    """The smallest s ≥ 1 with ⌈H/s⌉·⌈W/s⌉ ≤ max_points (0: no limit, s = 1)."""
    if max_points < 0:
        raise ValueError(f"max_points must be >= 0 (0 keeps every point), got {max_points}")
    stride = 1
    while max_points and -(-height // stride) * -(-width // stride) > max_points:
        stride += 1
    return stride


def record_scene(scene: Scene4D, path: str | Path, max_points: int = DEFAULT_MAX_POINTS) -> SceneRecording:
    """Write `scene` as a Rerun recording at `path` (see the module docstring for what goes where)."""
    path = Path(path)
    frames, height, width = scene.rgb.shape[:3]
    stride = subsample_stride(height, width, max_points)
    result = SceneRecording(path, frames, stride, -(-height // stride) * -(-width // stride), height * width)
    path.parent.mkdir(parents=True, exist_ok=True)

    # 1. A recording with `frame` as its only timeline, streamed to the file with its blueprint.
    rec = rr.RecordingStream("nanofourdnex")
    rec.set_log_time_enabled(False)
    rec.set_log_tick_enabled(False)
    rec.save(path, default_blueprint=_blueprint(scene, f"3D: {result.describe()}"))
    rec.send_recording_name(scene.title)

    # 2. Static: the world's axes, the camera paths.
    rec.log("world", rr.ViewCoordinates.RDF, static=True)
    centers = scene.camera_to_world[:, :3, 3]  # C_t (T, 3)
    rec.log("world/trajectory", rr.LineStrips3D([centers], colors=CAMERA_COLOR), static=True)
    if scene.novel_camera_to_world is not None:
        novel_centers = scene.novel_camera_to_world[:, :3, 3]
        rec.log("world/novel_trajectory", rr.LineStrips3D([novel_centers], colors=NOVEL_COLOR), static=True)

    # 3. Per frame: points, cameras, images.
    frustum = FRUSTUM_FRACTION * _median_depth(scene.xyz[0], scene.camera_to_world[0])
    colours = xyz_colors(scene.xyz)  # (T, H, W, 3)
    for k in range(frames):
        rec.set_time("frame", sequence=k)
        points = scene.xyz[k, ::stride, ::stride].reshape(-1, 3)  # (N, 3)
        finite = np.isfinite(points).all(-1)
        colors = scene.rgb[k, ::stride, ::stride].reshape(-1, 3)[finite]
        rec.log("world/points", rr.Points3D(points[finite].astype(np.float32), colors=colors))
        rec.log(
            "world/camera",
            *_camera(scene.K[k], scene.camera_to_world[k], width, height, frustum, CAMERA_COLOR),
        )
        rec.log("world/camera/image", rr.Image(scene.rgb[k]))
        if scene.novel_camera_to_world is not None:
            rec.log(
                "world/novel_camera",
                *_camera(
                    scene.novel_K[k], scene.novel_camera_to_world[k], width, height, frustum, NOVEL_COLOR
                ),
            )
        if scene.depth is not None:
            rec.log("views/depth", rr.DepthImage(scene.depth[k].astype(np.float32), meter=1.0))
        rec.log("views/xyz", rr.Image(colours[k]))
    rec.flush()
    rec.disconnect()
    return result


def read_output_folder(folder: str | Path) -> Scene4D:
    """The Scene4D of a `nano4d generate` output folder: sixd.npz, cameras.json, depth.npz, novel_cameras.json."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; expected the output folder of `nano4d generate`")
    for name in OUTPUT_FILES:
        if not (folder / name).is_file():
            raise ValueError(
                f"{folder} has no {name}; an output folder of `nano4d generate` has {', '.join(OUTPUT_FILES)}"
            )

    sixd = folder / "sixd.npz"
    six = read_npz(sixd, ("rgb", "xyz"), "the 6D video: rgb (T, H, W, 3) uint8 and xyz (T, H, W, 3)")
    rgb, xyz = six["rgb"], six["xyz"]
    try:
        rgb, xyz = _check_frames(rgb, xyz)
    except ValueError as error:
        raise ValueError(f"{sixd}: {error}") from None
    frames, height, width = rgb.shape[:3]

    def cameras(name: str) -> tuple[np.ndarray, np.ndarray]:
        K, R, t = load_trajectory_json(folder / name)
        if len(R) != frames:
            raise ValueError(
                f"{folder / name}: {len(R)} cameras, expected one per frame of sixd.npz ({frames})"
            )
        return K.numpy(), camera_to_world(R.numpy(), t.numpy())

    K, c2w = cameras("cameras.json")
    depth = read_npz(folder / "depth.npz", ("depth",), "depth (T, H, W) from the camera recovery")["depth"]
    if depth.shape != (frames, height, width):
        raise ValueError(
            f"{folder / 'depth.npz'}: depth is {depth.shape}, expected (T, H, W) = {(frames, height, width)} as in sixd.npz"
        )
    novel_K, novel_c2w = (
        cameras("novel_cameras.json") if (folder / "novel_cameras.json").is_file() else (None, None)
    )
    return Scene4D(rgb, xyz, K, c2w, depth, novel_K, novel_c2w, title=folder.resolve().name)


def read_training_clip(path: str | Path) -> Scene4D:
    """The ground-truth Scene4D of a data-set clip (folder or .npz), moved into its first camera's frame.

    The point maps' grid (h, w) is the scene's grid: K and depth belong to it, and RGB (T, H, W) is
    brought to it by pixel-centre nearest sampling (row i takes RGB row ⌊(i + ½)·H/h⌋, likewise
    columns), so every point keeps the colour of a real pixel.
    """
    clip = read_clip(Path(path))
    frames, height, width = clip.xyz.shape[:3]
    rows = ((np.arange(height) + 0.5) * clip.rgb.shape[1] / height).astype(int)
    cols = ((np.arange(width) + 0.5) * clip.rgb.shape[2] / width).astype(int)
    rgb = clip.rgb[:, rows][:, :, cols]  # (T, h, w, 3)
    first = np.linalg.inv(clip.c2w[0])  # world → camera 0
    return Scene4D(
        rgb=rgb,
        xyz=to_first_camera(clip.xyz, clip.c2w),
        K=clip.K,
        camera_to_world=first @ clip.c2w,  # camera t → camera 0
        depth=clip.depth,
        title=f"{clip.path.name} (ground truth)",
    )


def run_view(
    target: str | Path,
    *,
    web: bool = False,
    save: str | Path | None = None,
    max_points: int | None = None,
    port: int = WEB_PORT,
) -> View:
    """Build the recording of `target` if needed, then open it (native viewer, or web viewer with `web`).

    target: a `nano4d generate` output folder (or its sixd.npz), a training clip (folder or .npz) or
    an .rrd. An output folder's scene.rrd is reused when it is newer than the files it is made from
    and `max_points` is None; otherwise it is rebuilt with `max_points` (None: DEFAULT_MAX_POINTS).
    A training clip's recording goes to the temporary folder. `save` (an .rrd path) writes the recording
    there instead, replacing any file of that name, and opens nothing. `port` is the web viewer's (0: any free port).
    """
    # 1. Check the request before anything is read or written.
    target = Path(target)
    if not target.exists():
        raise ValueError(
            f"{target} does not exist; expected an output folder, a sixd.npz, a training clip or an .rrd"
        )
    if target.suffix == ".rrd" and (save is not None or max_points is not None):
        raise ValueError(
            f"{target} is already a recording; --save and --max-points need the files it was built from"
        )
    if save is not None and (Path(save).suffix != ".rrd" or Path(save).is_dir()):
        raise ValueError(f"--save {save}: name the .rrd file to write the recording to")
    if not 0 <= port <= 65535:
        raise ValueError(f"--port must lie in 0..65535 (0: any free port), got {port}")
    native = save is None and not web
    if native and sys.platform.startswith("linux") and not _has_display():
        raise ValueError(
            "no display for the native viewer ($DISPLAY is unset); use --web, or --save FILE.rrd"
        )

    # 2. Read the scene, unless the recording exists and is up to date.
    output_folder = target.parent if target.name == "sixd.npz" else target
    if target.suffix == ".rrd":
        recording, scene = target, None
    elif (output_folder / "sixd.npz").is_file():
        own = output_folder / RECORDING  # only the folder's own recording is reused, never another file
        recording = Path(save) if save is not None else own
        fresh = max_points is None and recording.resolve() == own.resolve() and _is_newer(own, output_folder)
        scene = None if fresh else read_output_folder(output_folder)
    else:
        name = target.stem if target.is_file() else target.name
        recording = (
            Path(save) if save is not None else Path(tempfile.gettempdir()) / "nano4d_view" / f"{name}.rrd"
        )
        try:
            scene = read_training_clip(target)
        except ValueError as error:
            raise ValueError(
                f"{target} has no sixd.npz, so it was read as a training clip: {error}"
            ) from None

    # 3. Record it.
    built = None
    if scene is not None:
        built = record_scene(scene, recording, DEFAULT_MAX_POINTS if max_points is None else max_points)

    # 4. Open it.
    if save is not None:
        return View(recording, built)
    if web:
        process, url = serve_web(recording, port=port)
        return View(recording, built, url, process)
    return View(recording, built, process=_start_rerun([str(recording)]))


def serve_web(recording: str | Path, *, port: int = WEB_PORT) -> tuple[subprocess.Popen, str]:
    """Serve `recording` with Rerun's bundled web viewer on 127.0.0.1; return the server and its URL.

    The viewer's files come from rerun-sdk itself (no network needed); the recording is streamed to
    the page by a gRPC server on a free port, named in the URL. `port` 0 picks a free web port.
    """
    recording = Path(recording)
    if not recording.is_file():
        raise ValueError(f"{recording} does not exist; expected an .rrd recording")
    port = port or _free_port()
    grpc = _free_port()
    # The server keeps every message for late viewers: give it room for the whole file.
    memory = f"{max(1, 2 * recording.stat().st_size // 2**30 + 1)}GiB"
    process = _start_rerun(
        [str(recording), "--serve-web", "--bind", "127.0.0.1", "--web-viewer-port", str(port),
         "--port", str(grpc), "--server-memory-limit", memory],
    )  # fmt: skip
    deadline = time.monotonic() + SERVER_START_SECONDS
    while not (_listening(port) and _listening(grpc)):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            raise ValueError(f"the Rerun web viewer did not start on ports {port} and {grpc}")
        time.sleep(0.1)
    return process, f"http://127.0.0.1:{port}/?url=rerun%2Bhttp%3A%2F%2F127.0.0.1%3A{grpc}%2Fproxy"


def _start_rerun(arguments: list[str]) -> subprocess.Popen:
    """The `rerun` CLI bundled with rerun-sdk, in a session of its own (so `View.close` stops all of it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "rerun_cli", *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen) -> None:
    """End a process started by `_start_rerun`, with everything in its session."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _is_newer(recording: Path, folder: Path) -> bool:
    """Whether `recording` exists and is newer than every file of the output folder it is built from."""
    inputs = [folder / name for name in (*OUTPUT_FILES, "novel_cameras.json") if (folder / name).is_file()]
    return recording.is_file() and all(recording.stat().st_mtime >= file.stat().st_mtime for file in inputs)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _check_frames(rgb: np.ndarray, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (T, H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    if xyz.shape != rgb.shape or not np.issubdtype(xyz.dtype, np.floating):
        raise ValueError(
            f"xyz must be (T, H, W, 3) = {rgb.shape} float like rgb, got {xyz.shape} {xyz.dtype}"
        )
    return rgb, xyz


def _check_cameras(K: np.ndarray, c2w: np.ndarray, frames: int, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """K broadcast to (T, 3, 3) and camera-to-world (T, 4, 4), float64."""
    K, c2w = np.asarray(K, dtype=np.float64), np.asarray(c2w, dtype=np.float64)
    if K.shape not in ((3, 3), (frames, 3, 3)):
        raise ValueError(f"{prefix}K must be (3, 3) or (T, 3, 3) with T = {frames}, got {K.shape}")
    if c2w.shape != (frames, 4, 4):
        raise ValueError(f"{prefix}camera_to_world must be (T, 4, 4) with T = {frames}, got {c2w.shape}")
    return np.broadcast_to(K, (frames, 3, 3)), c2w


def _median_depth(xyz: np.ndarray, c2w: np.ndarray) -> float:
    """Median z of the points (H, W, 3) in the camera c2w (4, 4); 1 when there is none in front."""
    z = (xyz.reshape(-1, 3) - c2w[:3, 3]) @ c2w[:3, 2]  # z = third row of R_w2c = third column of R_c2w
    z = z[np.isfinite(z) & (z > 0)]
    return float(np.median(z)) if z.size else 1.0


def _camera(K: np.ndarray, c2w: np.ndarray, width: int, height: int, frustum: float, color: tuple) -> list:
    """Transform3D and Pinhole of one camera; the principal point moves by +½ to Rerun's pixel corners."""
    image_from_camera = K.copy()
    image_from_camera[:2, 2] += 0.5
    return [
        rr.Transform3D(translation=c2w[:3, 3], mat3x3=c2w[:3, :3]),
        rr.Pinhole(
            image_from_camera=image_from_camera,
            resolution=[width, height],
            image_plane_distance=frustum,
            color=color,
        ),
    ]


def _blueprint(scene: Scene4D, title: str) -> rrb.Blueprint:
    """3D view large on the left; RGB, depth and XYZ-as-colour small on the right."""
    small = [rrb.Spatial2DView(origin="/world/camera/image", name="RGB")]
    if scene.depth is not None:
        small.append(rrb.Spatial2DView(origin="/views/depth", name="depth"))
    small.append(rrb.Spatial2DView(origin="/views/xyz", name="XYZ as colour"))
    return rrb.Blueprint(
        rrb.Horizontal(
            rrb.Spatial3DView(origin="/world", name=title), rrb.Vertical(*small), column_shares=[3, 1]
        ),
        rrb.BlueprintPanel(state="collapsed"),
        rrb.SelectionPanel(state="collapsed"),
        rrb.TimePanel(state="collapsed", timeline="frame", fps=FPS, play_state="playing", loop_mode="all"),
    )
