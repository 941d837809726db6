"""The files of a generated 6D video, written and read in one place.

    out/rgb.mp4, xyz.mp4           the RGB video and the XYZ video as colours (each axis min-max scaled)
    out/sixd.npz                   rgb (T, H, W, 3) uint8, xyz (T, H, W, 3) float32: the 6D video itself
    out/cameras.json               K and per frame R, t (world-to-camera) and camera_to_world (Eq. 12-13)
    out/depth.npz                  depth (T, H, W) z-depth, residual (T, H, W) Eq. 12 error per pixel
    out/points/frame_XXXX.ply      one coloured point cloud per frame (float32 x, y, z; uint8 r, g, b)

The XYZ of sixd.npz is in the training data's frame: the first camera's coordinates (OpenCV: x right,
y down, z forward), shifted and scaled so that the clip spans [−1, 1] on its widest axis — normalised,
not metric. Every reader names the file and what it expected when a file is not what it should be.
"""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch
from plyfile import PlyData, PlyElement, PlyParseError

from .paper.reprojection import CameraRecovery, camera_to_world
from .reading import read_npz


def checked_tensor(array: np.ndarray | torch.Tensor, name: str, shape: tuple[int | str, ...]) -> torch.Tensor:
    """array as a torch tensor with the given shape (a letter = any size), or a ValueError naming both."""
    if not isinstance(array, torch.Tensor):
        array = torch.from_numpy(np.array(array))  # a copy: read-only numpy arrays are fine too
    if array.ndim != len(shape) or any(
        isinstance(want, int) and got != want for got, want in zip(array.shape, shape, strict=True)
    ):
        expected = "(" + ", ".join(map(str, shape)) + ")"
        raise ValueError(f"{name} must be {expected}, got {tuple(array.shape)}")
    return array


PLY_VERTEX = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]


def write_video(path: str | Path, frames: np.ndarray | torch.Tensor, fps: int = 16) -> Path:
    """Write (T, H, W, 3) uint8 frames as an H.264 yuv420p mp4 (Wan's 16 fps by default).

    yuv420p needs even sides, so an odd height or width gets one black row or column at the
    bottom or right.
    """
    frames = checked_tensor(frames, "frames", ("T", "H", "W", 3)).cpu().numpy()
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    _, height, width, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(
        path, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=1
    ) as writer:
        for frame in frames:
            writer.append_data(frame)
    return path


def write_ply(path: str | Path, points: np.ndarray | torch.Tensor, colors: np.ndarray | torch.Tensor) -> Path:
    """Binary little-endian PLY of points (N, 3) (x, y, z float32) and uint8 colours (N, 3) (red, green, blue).

    Points with a non-finite coordinate are left out, with their colours.
    """
    points = checked_tensor(points, "points", ("N", 3)).cpu().numpy()
    colors = checked_tensor(colors, "colors", (len(points), 3)).cpu().numpy()
    if colors.dtype != np.uint8:
        raise ValueError(f"colors must be uint8, got {colors.dtype}")
    finite = np.isfinite(points).all(1)
    vertex = np.empty(int(finite.sum()), dtype=PLY_VERTEX)
    for k, name in enumerate("xyz"):
        vertex[name] = points[finite, k]
    for k, name in enumerate(("red", "green", "blue")):
        vertex[name] = colors[finite, k]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(vertex, "vertex")], byte_order="<").write(str(path))
    return path


def read_ply(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read points (N, 3) float32 and colours (N, 3) uint8 from a PLY with vertex x/y/z and red/green/blue."""
    path = Path(path)
    try:
        ply = PlyData.read(str(path))
    except (OSError, PlyParseError) as error:
        raise ValueError(f"{path} is not a readable PLY file: {error}") from error
    names = [element.name for element in ply.elements]
    if "vertex" not in names:
        raise ValueError(f"{path} has elements {names}, expected 'vertex'")
    vertex = ply["vertex"].data
    missing = [name for name, _ in PLY_VERTEX if name not in (vertex.dtype.names or ())]
    if missing:
        raise ValueError(f"{path}: vertex lacks {missing}; expected x, y, z, red, green, blue")
    points = np.stack([vertex[name] for name in "xyz"], axis=1).astype(np.float32)
    colors = np.stack([vertex[name] for name in ("red", "green", "blue")], axis=1).astype(np.uint8)
    return torch.from_numpy(points), torch.from_numpy(colors)


def write_point_clouds(
    out_dir: str | Path, xyz: np.ndarray | torch.Tensor, rgb: np.ndarray | torch.Tensor
) -> list[Path]:
    """Write out_dir/points/frame_XXXX.ply for every frame of xyz (T, H, W, 3) and rgb (T, H, W, 3) uint8."""
    xyz = checked_tensor(xyz, "xyz", ("T", "H", "W", 3))
    rgb = checked_tensor(rgb, "rgb", tuple(xyz.shape))
    folder = Path(out_dir) / "points"
    return [
        write_ply(folder / f"frame_{k:04d}.ply", xyz[k].reshape(-1, 3), rgb[k].reshape(-1, 3))
        for k in range(len(xyz))
    ]


def load_trajectory_json(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Read K, R (T, 3, 3) and t (T, 3) (float64) from a cameras.json as reprojection.save_recovery writes it.

    Only `K` (3×3) and `frames` (a list of {`R`: 3×3, `t`: 3}, world-to-camera) are read. Where the
    top-level `K` is null, every frame must carry its own `K` and K is returned as (T, 3, 3).
    """
    path = Path(path)
    try:
        cameras = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a readable JSON file: {error}") from error
    frames = cameras.get("frames") if isinstance(cameras, dict) else None
    if not isinstance(frames, list) or not frames or not all(isinstance(f, dict) for f in frames):
        raise ValueError(f"{path} needs 'frames': a non-empty list of {{'R': 3x3, 't': 3}} objects")

    def field(value: object, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: {name} must be a numeric {shape} list: {error}") from error
        if array.shape != shape or not np.isfinite(array).all():
            raise ValueError(f"{path}: {name} must be a finite {shape} list, got shape {array.shape}")
        return torch.from_numpy(array)

    R = torch.stack([field(f.get("R"), f"frames[{k}].R", (3, 3)) for k, f in enumerate(frames)])
    t = torch.stack([field(f.get("t"), f"frames[{k}].t", (3,)) for k, f in enumerate(frames)])
    if cameras.get("K") is not None:
        K = field(cameras["K"], "K", (3, 3))
    else:
        K = torch.stack(
            [field(f.get("K"), f"K (null) so frames[{k}].K", (3, 3)) for k, f in enumerate(frames)]
        )
    return K, R, t


def load_xyz(path: str | Path) -> np.ndarray:
    """Read a (T, H, W, 3) XYZ video from the key `xyz` of an .npz file (e.g. a generated sixd.npz)."""
    expected = "an .npz archive with key 'xyz' of shape (T, H, W, 3)"
    xyz = read_npz(path, ("xyz",), expected)["xyz"]
    if xyz.ndim != 4 or xyz.shape[-1] != 3:
        raise ValueError(f"xyz in {path} must be (T, H, W, 3), got {xyz.shape}")
    if not np.issubdtype(xyz.dtype, np.floating) or not np.isfinite(xyz).any():
        raise ValueError(f"xyz in {path} has no finite value (dtype {xyz.dtype})")
    return xyz


def write_cameras_json(
    path: str | Path, K: np.ndarray, R: np.ndarray, t: np.ndarray, **extra: object
) -> Path:
    """A cameras.json: K (3, 3) shared, or (T, 3, 3) one per frame; world-to-camera R (T, 3, 3), t (T, 3).

    `load_trajectory_json` reads it back; `extra` top-level fields (image size, fit statistics) are kept.
    """
    K, R, t = (np.asarray(a, dtype=np.float64) for a in (K, R, t))
    shared = K.ndim == 2
    cameras = {
        "convention": (
            "OpenCV camera (x right, y down, z forward, depth = z); R, t world-to-camera: "
            "X_cam = R @ X_world + t; camera_to_world = [R^T | -R^T t; 0 0 0 1]; pixel (u, v) = "
            "(column, row); K = [[f, 0, cx], [0, f, cy], [0, 0, 1]]"
        ),
        **extra,
        "K": K.tolist() if shared else None,
        "frames": [
            {
                "index": k,
                "R": R[k].tolist(),
                "t": t[k].tolist(),
                "camera_to_world": pose.tolist(),
                **({} if shared else {"K": K[k].tolist()}),
            }
            for k, pose in enumerate(camera_to_world(R, t))
        ],
    }
    Path(path).write_text(json.dumps(cameras, indent=1))
    return Path(path)


RECOVERY_FILES = ("cameras.json", "depth.npz", "recovery.png")  # what save_recovery writes


def check_output_folder(
    out: Path, own: tuple[str, ...], what: str, overwrite: bool, option: str = "--out"
) -> None:
    """ValueError unless `out` can take a command's output: new, empty, or an earlier `what` (names in `own`
    only), replaced with `overwrite`. A folder holding anything else is never written into."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option} {out} is a file, not a folder")
    held = {path.name for path in out.iterdir()} if out.is_dir() else set()
    article = "an" if what[0] in "aeiou" else "a"
    if held - set(own):
        others = ", ".join(sorted(held - set(own)))
        raise ValueError(
            f"{out} holds files {article} {what} does not write ({others}); choose another {option}"
        )
    if held and not overwrite:
        raise ValueError(
            f"{out} holds an earlier {what}; pass --overwrite to replace it, or choose another --out"
        )


def check_generation_folder(out: Path, image: Path, overwrite: bool) -> Path:
    """`out` as an absolute path ("." has no name to stage beside) if `generate` may write it: new or empty,
    or, with `overwrite`, an earlier generation (it has sixd.npz) that does not hold the input image."""
    out = out.absolute()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"{out} is not empty; pass --overwrite to replace it, or choose another --out")
        if not (out / "sixd.npz").is_file():  # never a folder of the user's, a checkpoint included
            raise ValueError(
                f"{out} is not an earlier generate output (it has no sixd.npz), so --overwrite will not "
                "replace it; choose another --out"
            )
        if out.resolve() in image.resolve().parents:
            raise ValueError(f"{out} holds the input image, so --overwrite will not replace it")
    return out


def save_recovery(result: CameraRecovery, out_dir: str | Path) -> list[Path]:
    """Write cameras.json, depth.npz (depth, residual) and the figure recovery.png into out_dir."""
    from .viz import plot_recovery  # matplotlib is imported only when a figure is written

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = {"height": result.depth.shape[1], "width": result.depth.shape[2]}
    paths = [out_dir / name for name in RECOVERY_FILES]
    write_cameras_json(
        paths[0], result.K, result.R, result.t, image_size=size, iterations=result.iterations,
        converged=result.converged,
    )  # fmt: skip
    np.savez_compressed(paths[1], depth=result.depth, residual=result.residual)
    plot_recovery(result, paths[2])
    return paths


def xyz_colors(xyz: np.ndarray) -> np.ndarray:
    """XYZ maps (T, H, W, 3) as uint8 colours for looking: each axis min-max scaled over the clip."""
    finite = np.isfinite(xyz).all(-1)
    low = np.nanmin(np.where(finite[..., None], xyz, np.nan), axis=(0, 1, 2))
    high = np.nanmax(np.where(finite[..., None], xyz, np.nan), axis=(0, 1, 2))
    scaled = (xyz - low) / np.maximum(high - low, 1e-12)
    return (np.nan_to_num(np.clip(scaled, 0, 1)) * 255).round().astype(np.uint8)
