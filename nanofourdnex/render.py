"""Novel-view videos from the generated dynamic point cloud (§5.1-5.2, Fig. 1 and 8).

"To generate novel-view videos, we first produce a 4D point cloud representation of the scene
using our feed-forward model, and then render the results using [TrajectoryCrafter]." The
generated 6D video gives, per frame t, a point cloud P_t = {(X_t[i, j], RGB_t[i, j])}; this
module re-renders P_t from camera t of a new trajectory. TrajectoryCrafter then inpaints the
holes with a video diffusion model; we stop before that step, so holes stay visible (black).

Splatting a world point X with colour c into a camera (K, R, t):

    X_cam = R·X + t,     z = X_cam_z                         (camera coordinates, depth z)
    (u, v) = (f_x·x/z + c_x,  f_y·y/z + c_y)                   (pinhole projection through K)
    pixel  = (row ⌊v + ½⌋, column ⌊u + ½⌋)                    (nearest pixel, halves round up)
    image[pixel] = c of argmin_z over the points on that pixel (z-buffer; equal z: lowest index)

Points with z ≤ NEAR or a non-finite coordinate are dropped, as are pixels outside the image.
With point_radius r every point covers the (2r + 1)² square of pixels centred on its own pixel,
all at its depth z, and the z-buffer runs over those footprint pixels.

Conventions (the project's, see reprojection.py):
- Camera frame as in OpenCV: x right, y down, z forward; depth is z.
- R, t are world-to-camera: X_cam = R·X + t; the camera centre is C = −Rᵀt.
- Pixel (u, v) = (column j, row i) at integer indices (pixel centres at integers); K is any
  upper-triangular intrinsics with last row (0, 0, 1), normally [[f, 0, (W − 1)/2], [0, f, (H − 1)/2], [0, 0, 1]].
- Videos are (T, H, W, 3): xyz float world coordinates, rgb uint8.
- Inputs may be numpy arrays or torch tensors; every result is a torch tensor (cameras float64,
  images float32 or uint8, masks bool).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .outputs import checked_tensor

NEAR = 1e-6  # points with depth z ≤ NEAR are behind (or in) the camera and dropped
TRAJECTORIES = ("orbit", "dolly", "pan")
# Default magnitude per trajectory kind: orbit in degrees, dolly and pan as a fraction of the
# depth of the look-at centre.
MAGNITUDES = {"orbit": 15.0, "dolly": 0.3, "pan": 0.2}


@dataclass(frozen=True)
class Splat:
    """One splatted view: colours, z-buffer depth and coverage, each (H, W) per pixel."""

    image: torch.Tensor  # (H, W, 3) float32 winning colours, in the colours' own range; 0 where empty
    depth: torch.Tensor  # (H, W) float32 depth z of the winning point; +inf where empty
    mask: torch.Tensor  # (H, W) bool, True where some point landed


@dataclass(frozen=True)
class NovelVideo:
    """A re-rendered point-cloud video: frames with their holes, and where the holes are."""

    frames: torch.Tensor  # (T, H, W, 3) uint8; holes are black
    masks: torch.Tensor  # (T, H, W) bool, True where some point landed

    @property
    def hole_fraction(self) -> torch.Tensor:
        """(T,) float64 fraction of pixels no point landed on, per frame."""
        return 1 - self.masks.flatten(1).double().mean(1)


def splat(
    points: np.ndarray | torch.Tensor,
    colors: np.ndarray | torch.Tensor,
    K: np.ndarray | torch.Tensor,
    R: np.ndarray | torch.Tensor,
    t: np.ndarray | torch.Tensor,
    height: int,
    width: int,
    *,
    point_radius: int = 0,
) -> Splat:
    """Z-buffered splat of world points (N, 3) with colours (N, 3) into camera (K, R, t) at H × W.

    Projection and depth are computed in float64. Each point lands on its nearest pixel (or the
    (2r + 1)² square around it for point_radius r); per pixel the nearest point wins, equal depths
    going to the lowest point index, so the result does not depend on anything but the inputs.
    """
    points = checked_tensor(points, "points", ("N", 3)).double()
    colors = checked_tensor(colors, "colors", ("N", 3))
    if len(colors) != len(points):
        raise ValueError(f"colors must be ({len(points)}, 3) like points, got {tuple(colors.shape)}")
    K = checked_tensor(K, "K", (3, 3)).double()
    R = checked_tensor(R, "R", (3, 3)).double()
    t = checked_tensor(t, "t", (3,)).double()
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got ({height}, {width})")
    if point_radius < 0:
        raise ValueError(f"point_radius must be >= 0, got {point_radius}")
    device = points.device

    camera = points @ R.T + t  # X_cam = R·X + t, (N, 3)
    z = camera[:, 2]
    projected = camera @ K.T  # z·[u, v, 1], (N, 3)
    u = torch.floor(projected[:, 0] / z + 0.5)  # nearest column
    v = torch.floor(projected[:, 1] / z + 0.5)  # nearest row
    r = point_radius
    # Keep points in front whose footprint can touch the image (the bounds also keep u, v in int64 range).
    keep = torch.isfinite(camera).all(1) & (z > NEAR)
    keep &= (u >= -r) & (u <= width - 1 + r) & (v >= -r) & (v <= height - 1 + r)
    index = torch.nonzero(keep).squeeze(1)  # (M,) original point indices, increasing
    u, v, z = u[index].long(), v[index].long(), z[index]

    # Footprint: the (2r + 1)² pixel offsets around each point's own pixel, all at the point's depth.
    offsets = torch.arange(-r, r + 1, device=device)
    dv, du = torch.meshgrid(offsets, offsets, indexing="ij")
    rows = v[:, None] + dv.reshape(1, -1)  # (M, (2r+1)²)
    cols = u[:, None] + du.reshape(1, -1)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    pixel = (rows * width + cols)[inside]  # linearised pixel index i·W + j, (F,)
    depth = z[:, None].expand_as(rows)[inside]  # (F,)
    owner = index[:, None].expand_as(rows)[inside]  # (F,) point index of each footprint pixel

    # Z-buffer: per pixel the minimum depth, then among the points at that depth the lowest index.
    zbuffer = torch.full((height * width,), math.inf, dtype=torch.float64, device=device)
    zbuffer.scatter_reduce_(0, pixel, depth, reduce="amin")
    nearest = depth == zbuffer[pixel]
    winner = torch.full((height * width,), len(points), dtype=torch.long, device=device)
    winner.scatter_reduce_(0, pixel[nearest], owner[nearest], reduce="amin")

    mask = winner < len(points)
    image = torch.zeros(height * width, 3, dtype=torch.float32, device=device)
    image[mask] = colors[winner[mask]].to(device=device, dtype=torch.float32)
    return Splat(
        image=image.reshape(height, width, 3),
        depth=zbuffer.float().reshape(height, width),
        mask=mask.reshape(height, width),
    )


def _look_at_center(center: np.ndarray | torch.Tensor, R0: torch.Tensor, t0: torch.Tensor) -> torch.Tensor:
    """A (3,) point as given; for a (..., 3) cloud, the per-axis median of its finite points in front of
    camera 0, taken in camera 0's coordinates (so it lies in front too) and mapped back to the world."""
    center = center if isinstance(center, torch.Tensor) else torch.from_numpy(np.array(center))
    if center.ndim == 0 or center.shape[-1] != 3:
        raise ValueError(f"center must be a point (3,) or points (..., 3), got {tuple(center.shape)}")
    if center.ndim == 1:
        return center.double()
    points = center.reshape(-1, 3).double() @ R0.T + t0  # camera 0's coordinates X_cam = R0·X + t0
    points = points[torch.isfinite(points).all(1) & (points[:, 2] > NEAR)]
    if len(points) == 0:
        raise ValueError("center has no finite point in front of camera 0")
    median = points.median(dim=0).values  # the lower median per axis: an input value, no averaging
    return R0.T @ (median - t0)


def novel_trajectory(
    kind: str,
    R0: np.ndarray | torch.Tensor,
    t0: np.ndarray | torch.Tensor,
    num_frames: int,
    *,
    center: np.ndarray | torch.Tensor,
    magnitude: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """World-to-camera (R (T, 3, 3), t (T, 3)) float64 of a novel trajectory; frame 0 is exactly (R0, t0).

    center is the look-at point c: a point (3,), or a point cloud (..., 3) such as the first XYZ
    frame, whose points in front of camera 0 give c as their per-axis median in that camera's
    coordinates. It must lie in front of camera 0; z_c is its depth there. With s = i/(T − 1) running from 0 to 1:

    - orbit: rotate the camera about the camera's up axis (−y) through c by θ = m·sin(2πs)
      degrees (0 → +m → 0 → −m → 0; positive θ moves the camera to its right); c keeps its
      camera coordinates, so it stays on the same pixel and at the same distance.
    - dolly: move forward along the optical axis by m·s·z_c (m < 1, so c stays in front).
    - pan: move right along the camera's x axis by m·s·z_c.

    magnitude m defaults to MAGNITUDES[kind]; negative values reverse the direction.
    """
    if kind not in TRAJECTORIES:
        raise ValueError(f"unknown trajectory kind {kind!r}; expected one of {TRAJECTORIES}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    R0 = checked_tensor(R0, "R0", (3, 3)).double()
    t0 = checked_tensor(t0, "t0", (3,)).double()
    c = _look_at_center(center, R0, t0)
    m = MAGNITUDES[kind] if magnitude is None else float(magnitude)
    depth = (R0 @ c + t0)[2]  # z_c, the centre's depth in camera 0
    if not depth > NEAR:
        raise ValueError(f"center must lie in front of camera 0, its depth there is {depth.item():.4g}")
    s = torch.arange(num_frames, dtype=torch.float64) / max(num_frames - 1, 1)  # (T,) 0 → 1
    R = R0.expand(num_frames, 3, 3).clone()
    t = t0.expand(num_frames, 3).clone()

    if kind == "orbit":
        theta = torch.deg2rad(m * torch.sin(2 * math.pi * s))  # (T,)
        axis = -R0[1]  # camera up (−y) in world coordinates, a unit vector
        cross = torch.tensor(
            [[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]],
            dtype=torch.float64,
        )  # [a]×
        # Rodrigues: Q = I + sin θ [a]× + (1 − cos θ) [a]×², exactly I at θ = 0.
        Q = (
            torch.eye(3, dtype=torch.float64)
            + torch.sin(theta)[:, None, None] * cross
            + (1 - torch.cos(theta))[:, None, None] * (cross @ cross)
        )
        # Camera-to-world rotation Rᵀ becomes Q·R0ᵀ and the centre C becomes c + Q(C0 − c), so
        # R = R0·Qᵀ and t = −R·C = t0 + R0·(I − Qᵀ)·c (exactly t0 at θ = 0).
        R = R0 @ Q.transpose(1, 2)
        t = t0 + ((torch.eye(3, dtype=torch.float64) - Q.transpose(1, 2)) @ c) @ R0.T
    elif kind == "dolly":
        if not m < 1:
            raise ValueError(f"a dolly magnitude must be < 1 (a fraction of the centre's depth), got {m}")
        t[:, 2] -= m * s * depth  # C moves by +m·s·z_c along the optical axis, so t_z drops by as much
    else:
        t[:, 0] -= m * s * depth  # C moves by +m·s·z_c along the camera's x axis
    return R, t


def render_video(
    xyz: np.ndarray | torch.Tensor,
    rgb: np.ndarray | torch.Tensor,
    K: np.ndarray | torch.Tensor,
    R: np.ndarray | torch.Tensor,
    t: np.ndarray | torch.Tensor,
    *,
    point_radius: int = 0,
) -> NovelVideo:
    """Frame i = the point cloud (xyz[i], rgb[i]) splatted into camera (K, R[i], t[i]), at the input's H × W.

    xyz (T, H, W, 3) float world points (non-finite ones are skipped), rgb (T, H, W, 3) uint8,
    K (3, 3) shared or (T, 3, 3), R (T, 3, 3), t (T, 3). Pixels no point lands on stay black.
    """
    xyz = checked_tensor(xyz, "xyz", ("T", "H", "W", 3))
    frames, height, width, _ = xyz.shape
    rgb = checked_tensor(rgb, "rgb", (frames, height, width, 3))
    if rgb.dtype != torch.uint8:
        raise ValueError(f"rgb must be uint8, got {rgb.dtype}")
    K = (
        checked_tensor(K, "K", (3, 3)).expand(frames, 3, 3)
        if np.ndim(K) == 2
        else checked_tensor(K, "K", (frames, 3, 3))
    )
    R = checked_tensor(R, "R", (frames, 3, 3))
    t = checked_tensor(t, "t", (frames, 3))
    images, masks = [], []
    for k in range(frames):
        view = splat(
            xyz[k].reshape(-1, 3),
            rgb[k].reshape(-1, 3),
            K[k],
            R[k],
            t[k],
            height,
            width,
            point_radius=point_radius,
        )
        images.append(view.image.to(torch.uint8))  # uint8 values carried exactly through float32
        masks.append(view.mask)
    return NovelVideo(frames=torch.stack(images), masks=torch.stack(masks))
