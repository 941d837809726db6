"""4DNeX-10M clips: reading, point maps, normalisation and the training Dataset (§3, §4.1).

The paper's 6D video pairs each RGB frame with "a pixel-aligned point map representation, XYZ,
where each frame X_t^XYZ ∈ ℝ^{H×W×3} encodes the 3D coordinates of each pixel in the global
coordinates" (§4.1, Eq. 3). 4DNeX-10M ships depth and cameras rather than point maps for its
dynamic clips, so the point maps are built here by unprojection:

    X_t(u, v) = c2w_t · [d_t(u, v) · K_t⁻¹ [u, v, 1]ᵀ; 1]

and then prepared as the public release's training cache does:

    1. first camera frame   X ← R_0ᵀ (X − t_0)                         (camera 0 becomes the identity)
    2. per-frame clipping   X_t,k ← clip(X_t,k, P_low(X_t,k), P_high(X_t,k))   per frame t, per axis k
    3. one shift, one scale c_k = (min_k + max_k)/2 over the whole clip, s = max_k (max_k − min_k)/2
                            X̂ = (X − c)/s ∈ [−1, 1]³

One isotropic s per clip keeps the normalisation a similarity (shapes and distance ratios are
preserved); the widest axis spans exactly [−1, 1].

On-disk layouts (specs/data_format.md has the full table):
* folder (dynamic clips): pred_traj.txt (`idx tx ty tz qw qx qy qz` per frame, camera-to-world,
  quaternion scalar-first), pred_intrinsics.txt (row-major 3×3 per frame, 9 numbers a row),
  frame_XXXX.npy depth (T frames numbered 0..T−1), RGB as rgb_XXXX.png frames or one
  rgb.mp4 / video.mp4. Depth may be smaller than RGB if the aspect ratio agrees (within 1 %).
* dynamic .npz: images (T, H, W, 3) uint8, depths (T, h, w), intrinsic (3, 3) or (T, 3, 3),
  cam_c2w (T, 4, 4), optional caption.
* static .npz: images, pts3d (T, h, w, 3) world points, poses (T, 4, 4) camera-to-world, optional
  intrinsic (else K is fitted to the points by least squares), optional caption.
* captions.csv at the data root: columns `number, caption`; number is the clip's name or the
  integer its name ends with (clip_00012 ↔ 12).

Conventions (the whole project's):
* Camera frame OpenCV: x right, y down, z forward; depth = z-coordinate in the camera frame.
* Pixel (u, v) = (column j, row i), pixel centres at integers; K = [[f, 0, cx], [0, f, cy], [0, 0, 1]].
* Arrays: rgb (T, H, W, 3) uint8, depth (T, h, w), K (T, 3, 3) and c2w (T, 4, 4) float64, xyz
  (T, h, w, 3) float64. Dataset items are channel-first videos (3, T, H, W) float32 in [−1, 1].

Resizing: RGB is resampled with antialiased bilinear filtering; XYZ with nearest neighbour
(pixel-centre aligned), because averaging point maps across a depth edge creates "flying"
points floating between foreground and background that exist nowhere in the scene.
"""

from __future__ import annotations

import csv
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation
from torch.utils.data import Dataset
from tqdm import tqdm

from .paper.reprojection import backproject

QUATERNION_TOLERANCE = 1e-3  # |‖q‖ − 1| allowed in pred_traj.txt (then q is normalised)
ROTATION_TOLERANCE = 1e-3  # ‖RᵀR − I‖ allowed for npz camera-to-world matrices
ASPECT_TOLERANCE = 0.01  # relative disagreement allowed between the RGB and depth aspect ratios
VIDEO_NAMES = ("rgb.mp4", "video.mp4")


class ClipError(ValueError):
    """A malformed clip; the message starts with the offending file (or the clip and the files that disagree)."""


@dataclass
class RawClip:
    """One clip as stored: world point maps on the depth grid (h, w), RGB at its own size."""

    rgb: np.ndarray  # (T, H, W, 3) uint8
    depth: np.ndarray | None  # (T, h, w) float32; None for static clips that store points
    K: np.ndarray  # (T, 3, 3) float64, for the (h, w) grid
    c2w: np.ndarray  # (T, 4, 4) float64 camera-to-world
    xyz: np.ndarray  # (T, h, w, 3) float64 world points
    caption: str
    path: Path

    @property
    def num_frames(self) -> int:
        return len(self.c2w)


@dataclass
class ClipSample:
    """One training item: a 6D video (RGB + normalised first-camera XYZ) and its caption."""

    rgb: torch.Tensor  # (3, T, H, W) float32 in [−1, 1]
    xyz: torch.Tensor  # (3, T, H, W) float32 in [−1, 1]
    first_frame: torch.Tensor  # (3, H, W) float32 in [−1, 1], the condition image I_0
    caption: str
    name: str


def unproject(depth: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """World points (T, h, w, 3): X = c2w · [d·K⁻¹[u, v, 1]ᵀ; 1] for depth (T, h, w): Eq. 13 with c2w."""
    if depth.ndim != 3:
        raise ValueError(f"depth must be (T, h, w), got {depth.shape}")
    num_frames = len(depth)
    if K.shape != (num_frames, 3, 3) or c2w.shape != (num_frames, 4, 4):
        raise ValueError(
            f"K must be ({num_frames}, 3, 3) and c2w ({num_frames}, 4, 4), got {K.shape}, {c2w.shape}"
        )
    R = c2w[:, :3, :3].swapaxes(-1, -2)  # world-to-camera rotation Rᵀ_c2w
    t = -(R @ c2w[:, :3, 3:])[..., 0]  # and translation −Rᵀ_c2w·c
    return backproject(depth, K, R, t)


def to_first_camera(xyz: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """Points (T, h, w, 3) in camera 0's frame: X ← R_0ᵀ (X − t_0), with c2w_0 = [R_0 | t_0]."""
    if xyz.ndim != 4 or xyz.shape[-1] != 3 or c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
        raise ValueError(f"xyz must be (T, h, w, 3) and c2w (T, 4, 4), got {xyz.shape}, {c2w.shape}")
    rotation, translation = c2w[0, :3, :3], c2w[0, :3, 3]
    return (xyz - translation) @ rotation  # row vectors: R_0ᵀ(X − t_0) is (X − t_0) @ R_0


def normalize_pointmaps(
    xyz: np.ndarray, low: float = 2.0, high: float = 98.0
) -> tuple[np.ndarray, np.ndarray, float]:
    """Clip each frame's axes at their low/high percentiles, then (X − c)/s with one c (3,), one s per clip.

    Returns (X̂ (T, h, w, 3) in [−1, 1], c, s), where c is the centre of the clipped clip's
    bounding box and s its largest half-extent, so X = s·X̂ + c on unclipped points.
    """
    if xyz.ndim != 4 or xyz.shape[-1] != 3:
        raise ValueError(f"xyz must be (T, h, w, 3), got {xyz.shape}")
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got ({low}, {high})")
    lower = np.percentile(xyz, low, axis=(1, 2), keepdims=True)  # P_low per frame and axis (T, 1, 1, 3)
    upper = np.percentile(xyz, high, axis=(1, 2), keepdims=True)
    clipped = np.clip(xyz, lower, upper)
    smallest, largest = clipped.min(axis=(0, 1, 2)), clipped.max(axis=(0, 1, 2))
    center = (smallest + largest) / 2  # c
    scale = float((largest - smallest).max() / 2)  # s
    if not scale > 0:
        raise ValueError("the point maps collapse to a single point; there is no scale to normalise")
    return np.clip((clipped - center) / scale, -1.0, 1.0), center, scale  # clip: rounding only


def _check_depth(where: str, depth: np.ndarray) -> None:
    bad = ~(np.isfinite(depth) & (depth > 0))
    if bad.any():
        raise ClipError(f"{where}: {int(bad.sum())} depth values are non-finite or not positive")


def _check_intrinsics(where: str, K: np.ndarray) -> None:
    if not np.isfinite(K).all():
        raise ClipError(f"{where}: intrinsics are not finite")
    if (
        not np.allclose(K[..., 2, :], [0, 0, 1])
        or not (K[..., 0, 0] > 0).all()
        or not (K[..., 1, 1] > 0).all()
    ):
        raise ClipError(f"{where}: intrinsics must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0")


def _check_c2w(where: str, c2w: np.ndarray) -> None:
    if not np.isfinite(c2w).all():
        raise ClipError(f"{where}: camera matrices are not finite")
    rotation = c2w[:, :3, :3]
    gram_error = np.abs(np.einsum("tki,tkj->tij", rotation, rotation) - np.eye(3)).max()
    if not np.allclose(c2w[:, 3], [0, 0, 0, 1]) or gram_error > ROTATION_TOLERANCE:
        raise ClipError(
            f"{where}: camera-to-world matrices must be rigid [[R, t], [0, 0, 0, 1]] with RᵀR = I"
        )


def _check_rgb(where: str, rgb: np.ndarray) -> None:
    if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ClipError(f"{where}: RGB must be (T, H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")


def _check_aspect(where: str, rgb_name: str, rgb: np.ndarray, grid_name: str, grid: tuple[int, int]) -> None:
    """RGB (H, W) and the depth/point grid (h, w) must show the same field of view."""
    height, width = rgb.shape[1:3]
    if abs(height / width - grid[0] / grid[1]) > ASPECT_TOLERANCE * grid[0] / grid[1]:
        raise ClipError(
            f"{where}: {rgb_name} is {height}×{width} but {grid_name} is {grid[0]}×{grid[1]}: the aspect ratios differ"
        )


def _check_counts(where: str, counts: dict[str, int]) -> None:
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{name}: {count}" for name, count in counts.items())
        raise ClipError(f"{where}: frame counts disagree ({listed})")


def _require(file: Path) -> Path:
    if not file.is_file():
        raise ClipError(f"{file}: missing")
    return file


def _numbered_files(folder: Path, prefix: str, suffix: str) -> list[Path]:
    """Files prefix_XXXX.suffix, which must be numbered 0..T−1 without gaps, in frame order."""
    pattern = re.compile(rf"{prefix}_(\d{{4,}}){re.escape(suffix)}")
    numbered = {int(m[1]): f for f in folder.iterdir() if (m := pattern.fullmatch(f.name))}
    for index in range(len(numbered)):
        if index not in numbered:
            raise ClipError(
                f"{folder / f'{prefix}_{index:04d}{suffix}'}: missing (frames must be numbered 0..T−1)"
            )
    return [numbered[i] for i in range(len(numbered))]


def _read_numbers(file: Path, count: int, layout: str) -> list[tuple[int, np.ndarray]]:
    """(line number, values) for each non-empty line of a whitespace-separated table of `count` columns."""
    rows = []
    for line_number, line in enumerate(_require(file).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = np.array([float(x) for x in line.split()])
        except ValueError:
            values = np.array([])
        if len(values) != count or not np.isfinite(values).all():
            raise ClipError(
                f"{file}: line {line_number}: expected {count} finite numbers '{layout}', got {line!r}"
            )
        rows.append((line_number, values))
    if not rows:
        raise ClipError(f"{file}: empty")
    return rows


def _read_trajectory(file: Path) -> np.ndarray:
    """pred_traj.txt → c2w (T, 4, 4)."""
    rows = _read_numbers(file, 8, "idx tx ty tz qw qx qy qz")
    for frame, (line_number, values) in enumerate(rows):
        if values[0] != frame:
            raise ClipError(f"{file}: line {line_number}: frame index {values[0]:g}, expected {frame}")
        norm = np.linalg.norm(values[4:])
        if abs(norm - 1) > QUATERNION_TOLERANCE:
            raise ClipError(
                f"{file}: line {line_number}: quaternion (qw, qx, qy, qz) has norm {norm:.6g}, "
                f"expected 1 within {QUATERNION_TOLERANCE}"
            )
    table = np.stack([values for _, values in rows])
    c2w = np.tile(np.eye(4), (len(table), 1, 1))
    c2w[:, :3, :3] = Rotation.from_quat(table[:, [5, 6, 7, 4]]).as_matrix()  # scipy wants scalar-last
    c2w[:, :3, 3] = table[:, 1:4]
    return c2w


def _read_intrinsics(file: Path) -> np.ndarray:
    """pred_intrinsics.txt → K (T, 3, 3)."""
    rows = _read_numbers(file, 9, "K row-major: fx 0 cx 0 fy cy 0 0 1")
    K = np.stack([values.reshape(3, 3) for _, values in rows])
    _check_intrinsics(str(file), K)
    return K


def _load_npy(file: Path) -> np.ndarray:
    try:
        return np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ClipError(f"{file}: unreadable ({error})") from error


def _read_depth_frames(folder: Path) -> np.ndarray:
    """frame_XXXX.npy → depth (T, h, w) float32."""
    files = _numbered_files(folder, "frame", ".npy")
    if not files:
        raise ClipError(f"{folder / 'frame_0000.npy'}: missing (no depth frames)")
    frames = []
    for file in files:
        depth = _load_npy(file)
        expected = frames[0].shape if frames else depth.shape
        if depth.ndim != 2 or depth.shape != expected:
            raise ClipError(
                f"{file}: depth must be a 2-D map of the clip's shape {expected}, got {depth.shape}"
            )
        _check_depth(str(file), depth)
        frames.append(depth.astype(np.float32))
    return np.stack(frames)


def _read_image(file: Path) -> np.ndarray:
    try:
        return iio.imread(file)
    except (OSError, ValueError, RuntimeError, SyntaxError) as error:  # PIL: SyntaxError on a truncated PNG
        raise ClipError(f"{file}: unreadable ({error})") from error


def _read_rgb(folder: Path) -> tuple[np.ndarray, str]:
    """RGB (T, H, W, 3) uint8 from rgb_XXXX.png frames, else from rgb.mp4 / video.mp4; and its file name."""
    files = _numbered_files(folder, "rgb", ".png")
    if files:
        frames = []
        for file in files:
            frame = _read_image(file)
            expected = frames[0].shape if frames else (*frame.shape[:2], 3)
            if frame.dtype != np.uint8 or frame.shape != expected:
                raise ClipError(
                    f"{file}: RGB frame must be {expected} uint8, got {frame.shape} {frame.dtype}"
                )
            frames.append(frame)
        return np.stack(frames), "rgb_XXXX.png"
    for name in VIDEO_NAMES:
        if (folder / name).is_file():
            video = _read_image(folder / name)
            _check_rgb(str(folder / name), video)
            return video, name
    raise ClipError(
        f"{folder / 'rgb_0000.png'}: missing (no rgb_XXXX.png frames, no {' or '.join(VIDEO_NAMES)})"
    )


def _read_folder(folder: Path, caption: str | None) -> RawClip:
    c2w = _read_trajectory(folder / "pred_traj.txt")
    K = _read_intrinsics(folder / "pred_intrinsics.txt")
    depth = _read_depth_frames(folder)
    rgb, rgb_name = _read_rgb(folder)
    counts = {
        rgb_name: len(rgb),
        "frame_XXXX.npy": len(depth),
        "pred_traj.txt": len(c2w),
        "pred_intrinsics.txt": len(K),
    }
    _check_counts(str(folder), counts)
    _check_aspect(str(folder), rgb_name, rgb, "frame_XXXX.npy", depth.shape[1:])
    return RawClip(rgb, depth, K, c2w, unproject(depth, K, c2w), caption or "", folder)


def _fit_intrinsics(xyz: np.ndarray, c2w: np.ndarray, where: str) -> np.ndarray:
    """K (T, 3, 3) from world points: least squares of u = f·x/z + cx, v = f·y/z + cy per frame."""
    world_to_cam = np.linalg.inv(c2w)
    points = np.einsum("tij,thwj->thwi", world_to_cam[:, :3, :3], xyz) + world_to_cam[:, None, None, :3, 3]
    if not (points[..., 2] > 0).all():
        raise ClipError(f"{where}: some points lie behind their camera; cannot fit intrinsics")
    v, u = np.mgrid[0 : xyz.shape[1], 0 : xyz.shape[2]].astype(np.float64)
    K = np.tile(np.eye(3), (len(xyz), 1, 1))
    for t, frame in enumerate(points):
        a, b = (frame[..., 0] / frame[..., 2]).ravel(), (frame[..., 1] / frame[..., 2]).ravel()
        ones, zeros = np.ones_like(a), np.zeros_like(a)
        design = np.concatenate([np.stack([a, ones, zeros], -1), np.stack([b, zeros, ones], -1)])
        (f, cx, cy), *_ = np.linalg.lstsq(design, np.concatenate([u.ravel(), v.ravel()]), rcond=None)
        K[t, 0, 0], K[t, 1, 1], K[t, 0, 2], K[t, 1, 2] = f, f, cx, cy
    return K


def _read_npz(file: Path, caption: str | None) -> RawClip:
    try:
        with np.load(file, allow_pickle=False) as archive:
            data = dict(archive)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ClipError(f"{file}: unreadable ({error})") from error
    kind = "static" if "pts3d" in data else "dynamic"
    required = (
        ("images", "pts3d", "poses") if kind == "static" else ("images", "depths", "intrinsic", "cam_c2w")
    )
    for key in required:
        if key not in data:
            raise ClipError(f"{file}: missing key {key!r} (a {kind} .npz holds {', '.join(required)})")
    rgb = data["images"]
    _check_rgb(f"{file} key 'images'", rgb)
    if kind == "static":
        xyz, c2w, depth = data["pts3d"].astype(np.float64), data["poses"].astype(np.float64), None
        if xyz.ndim != 4 or xyz.shape[-1] != 3 or not np.isfinite(xyz).all():
            raise ClipError(f"{file}: key 'pts3d' must be finite (T, h, w, 3), got {xyz.shape}")
        counts = {"images": len(rgb), "pts3d": len(xyz), "poses": len(c2w)}
    else:
        depth, c2w = data["depths"].astype(np.float32), data["cam_c2w"].astype(np.float64)
        if depth.ndim != 3:
            raise ClipError(f"{file}: key 'depths' must be (T, h, w), got {depth.shape}")
        _check_depth(f"{file} key 'depths'", depth)
        counts = {"images": len(rgb), "depths": len(depth), "cam_c2w": len(c2w)}
    _check_counts(str(file), counts)
    if c2w.shape != (len(rgb), 4, 4):
        raise ClipError(f"{file}: camera-to-world matrices must be ({len(rgb)}, 4, 4), got {c2w.shape}")
    _check_c2w(str(file), c2w)
    if "intrinsic" in data:
        if data["intrinsic"].shape not in ((3, 3), (len(rgb), 3, 3)):
            raise ClipError(
                f"{file}: key 'intrinsic' must be (3, 3) or ({len(rgb)}, 3, 3), got {data['intrinsic'].shape}"
            )
        K = np.broadcast_to(data["intrinsic"].astype(np.float64), (len(rgb), 3, 3)).copy()
        _check_intrinsics(f"{file} key 'intrinsic'", K)
    else:
        K = _fit_intrinsics(xyz, c2w, str(file))
    if depth is None:
        _check_aspect(str(file), "images", rgb, "pts3d", xyz.shape[1:3])
    else:
        _check_aspect(str(file), "images", rgb, "depths", depth.shape[1:])
    if depth is not None:
        xyz = unproject(depth, K, c2w)
    if caption is None and "caption" in data:
        caption = str(data["caption"])
    return RawClip(rgb, depth, K, c2w, xyz, caption or "", file)


def read_clip(path: Path, caption: str | None = None) -> RawClip:
    """Read a clip folder or .npz; `caption` overrides the one stored in an npz. Raises ClipError if malformed."""
    path = Path(path)
    if path.is_dir():
        return _read_folder(path, caption)
    if path.suffix == ".npz" and path.is_file():
        return _read_npz(path, caption)
    raise ClipError(f"{path}: not a clip folder or .npz file")


def clip_name(path: Path) -> str:
    """A clip's name: its folder name, or the npz file name without suffix."""
    path = Path(path)
    return path.stem if path.suffix == ".npz" else path.name


def read_captions(root: Path) -> dict[str, str]:
    """root/captions.csv as {number: caption}; numeric numbers without leading zeros. {} if absent."""
    file = Path(root) / "captions.csv"
    if not file.is_file():
        return {}
    with open(file, newline="") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        if reader.fieldnames is None or {"number", "caption"} - {name.strip() for name in reader.fieldnames}:
            raise ValueError(f"{file}: expected columns 'number, caption', got {reader.fieldnames}")
        rows = [{key.strip(): value for key, value in row.items()} for row in reader]
    return {str(int(n)) if (n := row["number"].strip()).isdigit() else n: row["caption"] for row in rows}


def caption_for(name: str, captions: dict[str, str]) -> str | None:
    """The caption of clip `name`: by name, else by the integer its name ends with; None if neither."""
    if name in captions:
        return captions[name]
    digits = re.search(r"(\d+)$", name)
    return captions.get(str(int(digits[1]))) if digits else None


def scan_dataset(root: Path, min_frames: int = 1) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Read every clip under root (sub-folders and .npz files); (good paths, [(bad path, reason)])."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data root {root} is not a directory")
    candidates = sorted(
        p for p in root.iterdir() if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".npz")
    )
    good, bad = [], []
    for path in tqdm(candidates, desc=f"checking {root}", unit="clip", disable=None):
        try:
            clip = read_clip(path)
        except ClipError as error:
            bad.append((path, str(error)))
            continue
        if clip.num_frames < min_frames:
            bad.append((path, f"{path}: {clip.num_frames} frames, fewer than the {min_frames} needed"))
        else:
            good.append(path)
    return good, bad


def center_crop_box(height: int, width: int, target_height: int, target_width: int) -> tuple[slice, slice]:
    """(rows, columns) of the central window of a height × width image with the target's aspect ratio."""
    if height * target_width > width * target_height:  # too tall: crop rows
        rows = round(width * target_height / target_width)
        return slice((height - rows) // 2, (height - rows) // 2 + rows), slice(0, width)
    cols = round(height * target_width / target_height)
    return slice(0, height), slice((width - cols) // 2, (width - cols) // 2 + cols)


def _center_crop(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """The central window of frames (T, h, w, C) with the aspect ratio height : width."""
    rows, cols = center_crop_box(*frames.shape[1:3], height, width)
    return frames[:, rows, cols]


def _resize(frames: np.ndarray, height: int, width: int, mode: str) -> torch.Tensor:
    """(T, h, w, C) array → (T, C, H, W) tensor, resampled with `mode` ("bilinear" antialiased, or "nearest-exact")."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (T, C, h, w)
    if video.shape[-2:] == (height, width):
        return video
    if mode == "bilinear":
        return F.interpolate(
            video.float(), size=(height, width), mode="bilinear", antialias=True, align_corners=False
        )
    return F.interpolate(video, size=(height, width), mode="nearest-exact")


def clip_sample(clip: RawClip, num_frames: int, height: int, width: int) -> ClipSample:
    """The first num_frames frames, centre-cropped to height : width, resized, normalised to [−1, 1]."""
    if clip.num_frames < num_frames:
        raise ClipError(f"{clip.path}: {clip.num_frames} frames, fewer than the {num_frames} requested")
    rgb = _resize(_center_crop(clip.rgb[:num_frames], height, width), height, width, "bilinear")
    rgb = (rgb.float() / 127.5 - 1).clamp(-1, 1).permute(1, 0, 2, 3)  # (3, T, H, W); clamp: rounding only
    xyz = to_first_camera(clip.xyz[:num_frames], clip.c2w[:num_frames])
    xyz = _resize(_center_crop(xyz, height, width), height, width, "nearest-exact")  # (T, 3, H, W)
    xyz, _, _ = normalize_pointmaps(xyz.permute(0, 2, 3, 1).numpy())
    xyz = torch.from_numpy(xyz).float().permute(3, 0, 1, 2)  # (3, T, H, W)
    return ClipSample(
        rgb=rgb, xyz=xyz, first_frame=rgb[:, 0], caption=clip.caption, name=clip_name(clip.path)
    )


class ClipDataset(Dataset):
    """Clips under root as ClipSamples of num_frames × height × width; malformed clips skipped with one warning.

    Attributes: paths and names of the usable clips (index order), bad = [(path, reason)].
    """

    def __init__(self, root: Path, num_frames: int, height: int, width: int):
        self.root = Path(root)
        self.num_frames, self.height, self.width = num_frames, height, width
        self.paths, self.bad = scan_dataset(self.root, min_frames=num_frames)
        if self.bad:
            warnings.warn(
                f"{len(self.bad)} of {len(self.bad) + len(self.paths)} clips under {self.root} are malformed "
                f"and skipped; first: {self.bad[0][1]}",
                stacklevel=2,
            )
        if not self.paths:
            raise ValueError(f"no usable clips under {self.root}")
        self.names = [clip_name(p) for p in self.paths]
        captions = read_captions(self.root)
        self._captions = [caption_for(name, captions) for name in self.names]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> ClipSample:
        clip = read_clip(self.paths[index], caption=self._captions[index])
        return clip_sample(clip, self.num_frames, self.height, self.width)
