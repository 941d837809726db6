"""Synthetic dynamic 4D scenes with exact cameras, depth and point maps (stand-in for 4DNeX-10M, §3).

The paper trains on pseudo-annotated video: "we provide precise 4D pointmaps and camera
trajectories" (§3). Here the annotation is exact instead of pseudo: each scene is ray cast
analytically, so every pixel's depth and world point is known in closed form. A scene is

    a checkered ground plane z = 0, a textured backdrop wall y = 8 (both infinite, so
    every ray hits something and depth is finite everywhere), 2-4 moving objects
    (spheres that glide or bounce, boxes that slide and spin about the vertical), and a
    camera that orbits, dollies and rises smoothly while looking at the scene centre,
    turning by about 5-25° over the clip,

shaded with one directional light (ambient + Lambertian, with cast shadows of the objects).
A pixel's colour is the mean of S × S rays spread evenly over its square (S = `supersample`, 3 by
default): anti-aliased, as a camera's pixel integrates light, so a 16 × 24 frame shows a blurred
checkerboard, not a moiré of single samples. Depth and the point map are exact at pixel centres (the
middle ray, S odd). Everything follows from the seed (numpy's PCG64): a scene is reproducible bit for bit.

Conventions (the whole project's):
* World frame: z up, the ground at z = 0, the camera looking towards +y.
* Camera frame OpenCV: x right, y down, z forward; depth d = z-coordinate in the camera
  frame (not the ray length).
* Pixel (u, v) = (column j, row i), pixel centres at integers; K = [[f, 0, cx], [0, f, cy],
  [0, 0, 1]] with (cx, cy) = ((W−1)/2, (H−1)/2).
* Unprojection X_world = c2w · [d·K⁻¹[u, v, 1]ᵀ; 1]. Rays are cast along R·K⁻¹[u, v, 1]ᵀ,
  whose camera-frame z is 1, so the ray parameter at the hit *is* the depth d.
* Arrays: rgb (T, H, W, 3) uint8, depth (T, H, W) float32, K (T, 3, 3), c2w (T, 4, 4), xyz (T, H, W, 3) float64.
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from .config import Config

WALL_Y = 8.0  # the backdrop plane y = WALL_Y, facing the camera
TARGET = np.array([0.0, 3.0, 0.6])  # the point the camera looks at
LANES = (1.5, 3.0, 4.5, 6.0)  # objects move along x at distinct y, 1.5 apart > the widest pair
LIGHT = np.array([-0.5, -0.8, 1.2]) / np.linalg.norm([-0.5, -0.8, 1.2])  # towards the light
AMBIENT = 0.35
EPS = 1e-6

OBJECT_COLOURS = {
    "red": (0.85, 0.15, 0.12),
    "blue": (0.15, 0.3, 0.85),
    "yellow": (0.95, 0.8, 0.1),
    "green": (0.2, 0.7, 0.25),
    "orange": (0.95, 0.5, 0.1),
    "purple": (0.55, 0.25, 0.75),
    "cyan": (0.1, 0.75, 0.8),
    "pink": (0.95, 0.45, 0.65),
}
FLOORS = {
    "grey and white": ((0.55, 0.55, 0.55), (0.92, 0.92, 0.92)),
    "black and white": ((0.12, 0.12, 0.12), (0.9, 0.9, 0.9)),
    "brown and beige": ((0.45, 0.3, 0.18), (0.85, 0.75, 0.6)),
    "dark green and white": ((0.15, 0.35, 0.2), (0.88, 0.9, 0.85)),
}
WALLS = {
    "pale blue": ((0.55, 0.7, 0.85), (0.75, 0.85, 0.95)),
    "sand": ((0.75, 0.65, 0.45), (0.9, 0.82, 0.65)),
    "lavender": ((0.6, 0.55, 0.75), (0.8, 0.75, 0.9)),
    "terracotta": ((0.7, 0.35, 0.25), (0.85, 0.55, 0.4)),
}
WALL_PATTERNS = ("striped", "brick", "polka-dot")
# The caption's camera direction: the azimuth φ about TARGET decreasing, increasing.
CAMERA_TURNS = ("orbits to the left", "orbits to the right")


def flip_camera_turn(caption: str) -> str:
    """A synthetic caption with the camera's orbit direction swapped (the caption of the scene's twin)."""
    left, right = CAMERA_TURNS
    flipped = caption.replace(left, "\0").replace(right, left).replace("\0", right)
    if flipped == caption:
        raise ValueError(f"no camera direction in the caption {caption!r}")
    return flipped


@dataclass
class Scene:
    """One rendered clip: exact RGB, depth, cameras and world point maps."""

    rgb: np.ndarray  # (T, H, W, 3) uint8
    depth: np.ndarray  # (T, H, W) float32, camera-frame z
    K: np.ndarray  # (T, 3, 3) float64
    c2w: np.ndarray  # (T, 4, 4) float64 camera-to-world
    xyz: np.ndarray  # (T, H, W, 3) float64 world points
    caption: str


def _rot_z(angle: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations about the world z axis by angle (T,)."""
    c, s = np.cos(angle), np.sin(angle)
    zero, one = np.zeros_like(angle), np.ones_like(angle)
    return np.stack(
        [np.stack([c, -s, zero], -1), np.stack([s, c, zero], -1), np.stack([zero, zero, one], -1)], -2
    )


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]  # 3× faster than .sum(-1)


@dataclass
class _Plane:
    """The plane n·X = offset, seen from the side its normal points to."""

    normal: np.ndarray  # (3,)
    offset: float
    dark: np.ndarray  # (3,) the two texture colours
    light: np.ndarray
    pattern: str  # "checkered" (the floor) or one of WALL_PATTERNS
    cell: float  # texture period in world units

    def hit(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            t = (self.offset - _dot(o, self.normal)) / _dot(d, self.normal)
        return np.where(t > EPS, t, np.inf)

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Outward normal and albedo at points p (T, N, 3)."""
        normal = np.broadcast_to(self.normal, p.shape)
        if self.pattern == "checkered":  # floor: (x, y) cells
            a, b = p[..., 0] / self.cell, p[..., 1] / self.cell
            light = (np.floor(a) + np.floor(b)) % 2 == 0
        else:  # wall: (x, z) in the wall plane
            a, b = p[..., 0] / self.cell, p[..., 2] / self.cell
            if self.pattern == "striped":
                light = np.floor(a) % 2 == 0
            elif self.pattern == "brick":  # rows of bricks 2 cells wide, every other row offset by one
                row = np.floor(b)
                col = (a + row) / 2
                light = ((b - row) > 0.12) & ((col - np.floor(col)) > 0.06)
            else:  # polka-dot: a disc of radius 0.3 cells in every cell
                light = (a - np.floor(a) - 0.5) ** 2 + (b - np.floor(b) - 0.5) ** 2 > 0.09
        return normal, np.where(light[..., None], self.light, self.dark)


@dataclass
class _Sphere:
    center: np.ndarray  # (T, 1, 3) per frame
    radius: float
    colour: np.ndarray  # (3,)

    def hit(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        oc = o - self.center
        a, b, c = _dot(d, d), 2 * _dot(oc, d), _dot(oc, oc) - self.radius**2
        disc = b * b - 4 * a * c
        t = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)  # nearer root: rays start outside the sphere
        return np.where((disc >= 0) & (t > EPS), t, np.inf)

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        normal = (p - self.center) / self.radius
        band = np.floor(2.5 * normal[..., 2]) % 2 == 0  # latitude bands
        return normal, np.where(band[..., None], self.colour, 0.7 * self.colour)


@dataclass
class _Box:
    center: np.ndarray  # (T, 1, 3)
    yaw: np.ndarray  # (T,) rotation about the vertical
    half: np.ndarray  # (3,) half extents in the box frame
    colour: np.ndarray

    def _local(self, v: np.ndarray) -> np.ndarray:
        """World vectors (T, N, 3) in the box frame: Rz(−yaw)·v."""
        return v @ _rot_z(self.yaw)  # row vectors: vᵀR = (Rᵀv)ᵀ

    def hit(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        o_l, d_l = self._local(o - self.center), self._local(d)
        d_l = np.where(np.abs(d_l) < 1e-12, 1e-12, d_l)  # slabs parallel to the ray never bound it
        t1, t2 = (-self.half - o_l) / d_l, (self.half - o_l) / d_l
        low, high = np.minimum(t1, t2), np.maximum(t1, t2)  # entry and exit of each slab
        near = np.maximum(np.maximum(low[..., 0], low[..., 1]), low[..., 2])
        far = np.minimum(np.minimum(high[..., 0], high[..., 1]), high[..., 2])
        return np.where((near <= far) & (near > EPS), near, np.inf)

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p_l = self._local(p - self.center)
        axis = np.argmax(np.abs(p_l) / self.half, axis=-1)  # the face the point lies on
        normal_l = np.eye(3)[axis] * np.sign(np.take_along_axis(p_l, axis[..., None], -1))
        normal = normal_l @ _rot_z(self.yaw).transpose(0, 2, 1)  # Rz(yaw)·n
        cells = np.floor(p_l / self.half + 0.5).sum(-1) % 2 == 0  # 3 × 3 checks per face
        return normal, np.where(cells[..., None], self.colour, 0.75 * self.colour)


def _look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(T, 4, 4) OpenCV camera-to-world with z towards target, x right, y down, no roll."""
    forward = target - eye
    forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(forward, right)
    c2w = np.tile(np.eye(4), (len(eye), 1, 1))
    c2w[:, :3, :3] = np.stack([right, down, forward], axis=-1)  # columns: camera axes in the world
    c2w[:, :3, 3] = eye
    return c2w


def _direction(dx: float) -> str:
    return "to the right" if dx > 0 else "to the left"


def _dolly(dr: float) -> str:
    """The caption's words for a change dr of the camera's distance to the target."""
    return " while moving closer" if dr < -0.5 else (" while pulling back" if dr > 0.2 else "")


def _bounces(hop: float) -> bool:
    """Whether the caption says a sphere that hops `hop` high bounces (else it moves)."""
    return hop > 0.25


def _spins(spin: float) -> bool:
    """Whether the caption says a box that turns by `spin` radians spins (else it slides)."""
    return abs(spin) > np.radians(40)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _redraw(rng: np.random.Generator, low: float, high: float, words, drawn: float) -> float:
    """A uniform draw on [low, high) given the caption's words for it, words(value) == words(drawn) (by rejection)."""
    while words(value := rng.uniform(low, high)) != words(drawn):
        pass
    return value


def make_scene(
    seed: int, num_frames: int = 17, height: int = 64, width: int = 96, supersample: int = 3,
    camera_turn: int | None = None, motion_seed: int | None = None,
) -> Scene:  # fmt: skip
    """Render the scene drawn from `seed`: T = num_frames frames of H × W pixels, S × S rays per pixel colour.

    camera_turn = −1 or +1 sets the sign of the camera's orbit (the azimuth φ's change: left, right)
    instead of its drawn one; every other draw stays the same, so the scene's twin keeps frame 0, the
    objects and their motion, and only its camera turns the other way (and its caption says so).

    motion_seed redraws, from its own generator, what frame 0 and the caption leave open, from its
    distribution given them: the orbit's angle (direction kept), dolly (within the caption's words), rise,
    each object's travel (direction and frame-0 position kept), hop, bounces and spin (within the words).
    Frame 0 and the caption stay the scene's: a perfect image-to-video model's samples (motion_ceiling.py).
    """
    if num_frames < 1 or height < 2 or width < 2:
        raise ValueError(
            f"need num_frames >= 1 and height, width >= 2, got ({num_frames}, {height}, {width})"
        )
    if camera_turn not in (None, -1, 1):
        raise ValueError(f"camera_turn must be -1, +1 or None (drawn), got {camera_turn!r}")
    if supersample < 1 or supersample % 2 == 0:
        raise ValueError(f"supersample must be odd and >= 1 (a ray through the centre), got {supersample}")
    rng = np.random.default_rng(seed)
    s = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)  # clip time in [0, 1]
    ease = (1 - np.cos(np.pi * s)) / 2  # smooth start and stop

    # Camera: orbit angle φ, radius r and height h around TARGET, eased from start to end.
    phi0, dphi = np.radians(rng.uniform(-8, 8)), np.radians(rng.uniform(6, 18)) * rng.choice([-1, 1])
    if camera_turn is not None:
        dphi = abs(dphi) * camera_turn
    r0, dr = rng.uniform(6.0, 7.5), rng.uniform(-1.5, 0.5)
    h0, dh = rng.uniform(1.6, 2.6), rng.uniform(-0.4, 0.4)
    redraw = np.random.default_rng(motion_seed) if motion_seed is not None else None
    if redraw is not None:  # frame 0 holds φ0, r0, h0; the caption the orbit's sign and the dolly's words
        dphi = np.radians(redraw.uniform(6, 18)) * np.sign(dphi)
        dr = _redraw(redraw, -1.5, 0.5, _dolly, dr)
        dh = redraw.uniform(-0.4, 0.4)
    phi, radius, rise = phi0 + dphi * ease, r0 + dr * ease, h0 + dh * ease
    eye = TARGET + np.stack([radius * np.sin(phi), -radius * np.cos(phi), rise - TARGET[2]], -1)
    c2w = _look_at(eye, TARGET)
    focal = (width / 2) / np.tan(np.radians(rng.uniform(50, 65)) / 2)
    K = np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1.0]])

    # Background: checkered floor and a patterned wall.
    floor_name = list(FLOORS)[rng.integers(len(FLOORS))]
    wall_name = list(WALLS)[rng.integers(len(WALLS))]
    pattern = WALL_PATTERNS[rng.integers(len(WALL_PATTERNS))]
    floor = _Plane(
        np.array([0.0, 0, 1]), 0.0, *map(np.array, FLOORS[floor_name]), "checkered", rng.uniform(0.6, 1.2)
    )
    wall = _Plane(
        np.array([0.0, -1, 0]), -WALL_Y, *map(np.array, WALLS[wall_name]), pattern, rng.uniform(0.5, 0.9)
    )

    # Objects: one per lane, each moving along x by 1-2.5 units over the clip.
    count = int(rng.integers(2, 5))
    lanes = np.sort(rng.choice(LANES, size=count, replace=False))
    colours = rng.choice(list(OBJECT_COLOURS), size=count, replace=False)
    objects, phrases = [], []
    for lane, colour_name in zip(lanes, colours, strict=True):
        colour = np.array(OBJECT_COLOURS[colour_name])
        dx = rng.uniform(1.0, 2.5) * rng.choice([-1, 1])
        x = rng.uniform(-1.5, 1.5) + dx * (s - 0.5)
        if redraw is not None:  # the same direction and x[0]: a travel that keeps x at s = 1/2 within ±1.5
            sign = np.sign(dx)
            dx = sign * redraw.uniform(max(1.0, -3 - 2 * sign * x[0]), min(2.5, 3 - 2 * sign * x[0]))
            x = x[0] + dx * s
        if rng.random() < 0.5:
            r = rng.uniform(0.4, 0.65)
            hop, bounces = rng.uniform(0.0, 0.8), rng.integers(1, 3)
            if redraw is not None:
                hop, bounces = _redraw(redraw, 0.0, 0.8, _bounces, hop), redraw.integers(1, 3)
            z = r + hop * (1 - np.cos(2 * np.pi * bounces * s)) / 2  # smooth bounces
            center = np.stack([x, np.full_like(s, lane), z], -1)[:, None]
            objects.append(_Sphere(center, r, colour))
            verb = "bounces" if _bounces(hop) else "moves"
            phrases.append(f"{_article(colour_name)} {colour_name} sphere {verb} {_direction(dx)}")
        else:
            half = np.array([rng.uniform(0.3, 0.5), rng.uniform(0.3, 0.5), rng.uniform(0.3, 0.6)])
            spin = np.radians(rng.uniform(-120, 120))
            if redraw is not None:
                spin = _redraw(redraw, np.radians(-120), np.radians(120), _spins, spin)
            center = np.stack([x, np.full_like(s, lane), np.full_like(s, half[2])], -1)[:, None]
            objects.append(_Box(center, rng.uniform(0, np.pi / 2) + spin * s, half, colour))
            verb = "spins" if _spins(spin) else "slides"
            phrases.append(f"{_article(colour_name)} {colour_name} box {verb} {_direction(dx)}")

    # Rays: origin o = camera centre, direction d = R·K⁻¹[u, v, 1]ᵀ (camera z = 1, so t = depth), S² per
    # pixel at offsets (j − (S − 1)/2)/S, pixel after pixel; the middle one, offset 0, is the pixel centre.
    offsets = (np.arange(supersample) - (supersample - 1) / 2) / supersample
    dv, du = (a.ravel() for a in np.meshgrid(offsets, offsets, indexing="ij"))
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = (u.reshape(-1, 1) + du).ravel(), (v.reshape(-1, 1) + dv).ravel()  # (N·S²,)
    pixels = np.stack([u, v, np.ones(u.size)], -1)
    rays_cam = pixels @ np.linalg.inv(K).T  # (N, 3)
    d = rays_cam @ c2w[:, :3, :3].transpose(0, 2, 1)  # R·K⁻¹[u, v, 1]ᵀ as rows (T, N, 3)
    o = c2w[:, None, :3, 3]  # (T, 1, 3)

    surfaces = [floor, wall, *objects]
    hits = np.stack([surface.hit(o, d) for surface in surfaces], -1)  # (T, N, S)
    which = np.argmin(hits, -1)
    depth = np.take_along_axis(hits, which[..., None], -1)[..., 0]  # (T, N), finite: see the module docstring
    xyz = o + depth[..., None] * d  # X = o + d·t, the exact world point

    normal, albedo = np.zeros_like(xyz), np.zeros_like(xyz)
    for k, surface in enumerate(surfaces):
        n_k, a_k = surface.surface(xyz)
        mine = (which == k)[..., None]
        normal, albedo = np.where(mine, n_k, normal), np.where(mine, a_k, albedo)

    # Shading: ambient + Lambert n·l, the diffuse term removed where an object blocks the light.
    start = xyz + 1e-4 * normal
    light_dir = np.broadcast_to(LIGHT, xyz.shape)
    shadow = np.any([np.isfinite(obj.hit(start, light_dir)) for obj in objects], axis=0)  # (T, N·S²)
    lambert = np.clip(_dot(normal, LIGHT), 0, None) * ~shadow
    colour = albedo * (AMBIENT + (1 - AMBIENT) * lambert)[..., None]  # (T, N·S², 3) in [0, 1]
    samples = supersample**2
    colour = colour.reshape(num_frames, -1, samples, 3).mean(2)  # the pixel's mean over its rays
    rgb = np.clip(colour * 255 + 0.5, 0, 255).astype(np.uint8)
    centre = samples // 2  # the ray through the pixel centre
    depth = depth.reshape(num_frames, -1, samples)[:, :, centre]
    xyz = xyz.reshape(num_frames, -1, samples, 3)[:, :, centre]

    movers = ", ".join(phrases[:-1]) + f" and {phrases[-1]}"
    caption = (
        f"{movers} across a {floor_name} checkered floor in front of a {wall_name} {pattern} wall; "
        f"the camera slowly {CAMERA_TURNS[int(dphi > 0)]}{_dolly(dr)}."
    )
    shape = (num_frames, height, width)
    rgb, depth, xyz = rgb.reshape(*shape, 3), depth.reshape(shape).astype(np.float32), xyz.reshape(*shape, 3)
    return Scene(rgb=rgb, depth=depth, K=np.tile(K, (num_frames, 1, 1)), c2w=c2w, xyz=xyz, caption=caption)


def write_clip(scene: Scene, clip_dir: Path) -> Path:
    """Write `scene` in the 4DNeX-10M dynamic-clip layout (see specs/data_format.md)."""
    clip_dir = Path(clip_dir)
    clip_dir.mkdir(parents=True, exist_ok=True)
    # pred_traj.txt: idx tx ty tz qw qx qy qz (camera-to-world, scalar-first), repr() round-trips exactly.
    quats = Rotation.from_matrix(scene.c2w[:, :3, :3]).as_quat()[:, [3, 0, 1, 2]]
    rows = [[*c2w[:3, 3], *q] for c2w, q in zip(scene.c2w, quats, strict=True)]
    (clip_dir / "pred_traj.txt").write_text(
        "".join(f"{i} " + " ".join(repr(float(x)) for x in row) + "\n" for i, row in enumerate(rows))
    )
    (clip_dir / "pred_intrinsics.txt").write_text(
        "".join(" ".join(repr(float(x)) for x in K.ravel()) + "\n" for K in scene.K)
    )
    for i, (rgb, depth) in enumerate(zip(scene.rgb, scene.depth, strict=True)):
        np.save(clip_dir / f"frame_{i:04d}.npy", depth.astype(np.float32))
        iio.imwrite(clip_dir / f"rgb_{i:04d}.png", rgb)  # PNG: lossless
    return clip_dir


def clip_seed(seed: int, index: int) -> int:
    """The scene seed of clip `index` in a data set drawn with `seed`: data sets of different seeds share no clip."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def write_dataset(
    root: Path, num_clips: int, seed: int = 0, progress: bool = True, **scene_kwargs
) -> list[Path]:
    """Write clips root/clip_00000 … with make_scene(clip_seed(seed, i), **scene_kwargs) and root/captions.csv.

    Atomic: the clips are written into a hidden sibling folder that is renamed to `root` when complete,
    so an interrupted run leaves no partial data set behind (a leftover partial folder is replaced).
    `root` must not exist yet, or be an empty folder.
    """
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ValueError(f"{root} already exists and is not empty; the synthetic data set needs a new folder")
    partial = root.with_name(f".{root.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    captions = []
    for index in tqdm(range(num_clips), desc=f"synthetic clips → {root}", unit="clip", disable=not progress):
        scene = make_scene(clip_seed(seed, index), **scene_kwargs)
        write_clip(scene, partial / f"clip_{index:05d}")
        captions.append((index, scene.caption))
    with open(partial / "captions.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["number", "caption"])
        writer.writerows(captions)
    os.replace(partial, root)
    return [root / f"clip_{index:05d}" for index in range(num_clips)]


def ensure_synthetic_data(config: Config, progress: bool = True) -> None:
    """Write the synthetic training / validation clips of a tiny preset on first use.

    A folder that already exists must hold exactly the clips the preset would write (checked by
    name); anything else is reported, never overwritten.
    """
    data = config.data
    splits = (
        (data.root, data.synthetic_train, data.synthetic_seed),
        (data.val_root, data.synthetic_val, data.synthetic_seed + 100_000),
    )
    for root, count, seed in splits:
        if not root or count <= 0:
            continue
        root = Path(root)
        if not root.exists() or (root.is_dir() and not any(root.iterdir())):
            size = {"num_frames": data.num_frames, "height": data.height, "width": data.width}
            write_dataset(root, count, seed=seed, progress=progress, **size)
            continue
        expected = {f"clip_{index:05d}" for index in range(count)}
        present = {clip.name for clip in root.glob("clip_*") if (clip / "pred_traj.txt").is_file()}
        if present != expected:
            raise ValueError(
                f"{root} holds {len(present)} synthetic clips, not the {count} this preset writes there "
                f"(an interrupted earlier version of the project?); move it away to have it written anew"
            )
