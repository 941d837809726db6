"""Step 2 of the Eq. 12-13 camera recovery: a start that is exact on exact maps and robust to outliers.

    λ·K·[R | t] = M,   [u, v, 1]ᵀ ∝ M·[X, 1]ᵀ                     (the projection the DLT estimates)

Per frame, a normalised DLT (Hartley) gives the projection matrix M; f comes from its row norms
(‖m₁‖ = ‖m₂‖ = f·‖m₃‖; the median over frames when the focal is shared) and (R, t) from the nearest
rotation with the points in front. A frame whose points lie on a plane has no depth parallax: its
pose comes from the plane's homography at the shared focal instead. With a robust loss the DLT is
weighted first by a least-quantile-of-squares search over random minimal samples, so that outliers
do not steer the start; a frame that its plain DLT already explains to rounding holds no outlier
and keeps its plain weights. The robust statistics (σ, ρ, w) are shared with step 3.

Spec: specs/eq12_post_optimization.md · Tests: tests/test_eq12_reprojection.py (-m eq12)
"""

from __future__ import annotations

import numpy as np

LOSSES = ("geman-mcclure", "cauchy", "squared")
ROBUST_C = 2.3849  # scale c of the robust losses in units of σ (Cauchy's 95 % efficiency constant)
RAYLEIGH_MEDIAN = 1.1774  # median of ‖e‖/σ when e is 2-D Gaussian (√(2 ln 2)); e ⟂ the ray is 2-D
COLLINEAR = 1e-6  # √(λ_mid/λ_max) below which a frame's points lie on a line
PLANAR = 0.03  # √(λ_min/λ_max) of a frame's point scatter below which it counts as a plane
HYPOTHESES = 256  # robust start: P(no outlier-free 6-point set | 40 % outliers) = (1 − 0.6⁶)²⁵⁶ < 1e-5
TEST_POINTS = 64  # points that score each hypothesis
QUANTILE = 1 / 3  # the score is this quantile of the pixel errors: safe up to 2/3 outliers


def initialise(
    points: np.ndarray, pixels: np.ndarray, weight: np.ndarray, shared_focal: bool, loss: str, exact: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 2: (R, t, f) per frame from a DLT, or from a homography for frames whose points are planar."""
    frames = len(points)
    centroid, scatter = _weighted_frame(points, weight)
    variance, axes = np.linalg.eigh(scatter)  # ascending; axes[..., 0] is the best plane's normal
    with np.errstate(divide="ignore", invalid="ignore"):
        collinear = ~(np.sqrt(np.maximum(variance[:, 1], 0) / variance[:, 2]) >= COLLINEAR)  # NaN: all equal
    if collinear.any():
        raise ValueError(
            f"the valid points of frame {np.flatnonzero(collinear)[0]} are collinear or all equal; "
            "its camera is not determined"
        )
    planar = np.sqrt(np.maximum(variance[:, 0], 0) / variance[:, 2]) < PLANAR
    if planar.all() or (planar.any() and not shared_focal):
        raise ValueError(
            f"the points of frame(s) {np.flatnonzero(planar).tolist()} lie on a plane (thickness < "
            f"{PLANAR} of their extent): without depth parallax the DLT cannot fix a focal length; "
            + ("use shared_focal=True" if not planar.all() else "at least one frame needs depth variation")
        )
    solid = ~planar
    basis = axes[:, :, ::-1].copy()  # columns e₁, e₂ (in the plane), n
    basis[:, :, 2] = np.cross(basis[:, :, 0], basis[:, :, 1])  # right-handed, so B is a rotation
    plane = (basis[planar].transpose(0, 2, 1) @ (points[planar] - centroid[planar, :, None]))[
        :, :2
    ]  # Bᵀ(X − c)
    if loss != "squared":
        weight = weight.copy()
        weight[solid] *= _least_quantile_weights(pixels, points[solid], weight[solid], loss, exact)
        if planar.any():
            weight[planar] *= _least_quantile_weights(pixels, plane, weight[planar], loss, exact)
    camera = _dlt(pixels, points[solid], weight[solid])  # λ·diag(f, f, 1)·[R | t]
    rows = np.linalg.norm(camera[:, :, :3], axis=-1)
    focal = (rows[:, 0] + rows[:, 1]) / (2 * rows[:, 2])  # ‖m₁‖ = ‖m₂‖ = f·‖m₃‖
    focal = np.full(frames, np.median(focal)) if shared_focal else focal
    R, t = np.empty((frames, 3, 3)), np.empty((frames, 3))
    R[solid], t[solid] = _camera_pose(camera, focal[solid], points[solid], weight[solid])
    if planar.any():
        homography = _dlt(pixels, plane, weight[planar])  # λ·diag(f, f, 1)·[r₁ r₂ t']
        R_plane, t_plane = _homography_pose(homography, focal[planar], plane, weight[planar])
        R[planar] = R_plane @ basis[planar].transpose(0, 2, 1)  # X_cam = R_plane·Bᵀ(X − c) + t'
        t[planar] = t_plane - np.einsum("tij,tj->ti", R[planar], centroid[planar])
    return R, t, focal


def _centroid(points: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per-frame weighted centroid (T, D) of points (T, D, N)."""
    return (points @ weight[..., None])[..., 0] / weight.sum(1)[:, None]


def _weighted_frame(points: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame weighted centroid (T, D) and scatter matrix (T, D, D) of points (T, D, N)."""
    centroid = _centroid(points, weight)
    offsets = points - centroid[..., None]
    scatter = (offsets * weight[:, None]) @ offsets.transpose(0, 2, 1) / weight.sum(1)[:, None, None]
    return centroid, scatter


def _hartley(points: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hartley normalisation per frame of points (T, D, N): the homogeneous points moved to centroid 0
    and mean distance √D, (T, D+1, N), and that similarity as a (T, D+1, D+1) matrix."""
    frames, dim, count = points.shape
    centroid = _centroid(points, weight)
    normalised = np.ones((frames, dim + 1, count))
    offsets = np.subtract(points, centroid[..., None], out=normalised[:, :dim])
    mean_distance = (weight * lengths(offsets)).sum(1) / weight.sum(1)
    scale = np.sqrt(dim) / np.where(mean_distance > 0, mean_distance, 1.0)  # 1: coincident points
    offsets *= scale[:, None, None]
    similarity = np.zeros((frames, dim + 1, dim + 1))
    similarity[:, :dim, :dim] = scale[:, None, None] * np.eye(dim)
    similarity[:, :dim, dim] = -scale[:, None] * centroid
    similarity[:, dim, dim] = 1.0
    return normalised, similarity


def lengths(vectors: np.ndarray) -> np.ndarray:
    """(T, N) Euclidean lengths of the vectors (T, D, N)."""
    return np.sqrt(np.einsum("tdn,tdn->tn", vectors, vectors))


def _normalise(
    pixels: np.ndarray, points: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hartley-normalised homogeneous pixels x̃ (T, 3, N) and points X̃ (T, D+1, N), and both similarities."""
    x, norm_x = _hartley(np.broadcast_to(pixels, (len(points), *pixels.shape)), weight)
    X, norm_X = _hartley(points, weight)
    return x, X, norm_x, norm_X


def _solve_dlt(x: np.ndarray, X: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """DLT in normalised coordinates: the (S, 3, D+1) matrix m with x̃ ∝ m·X̃ for S point sets (S, ·, N).

    Each point adds the rows m₁·X̃ − a·(m₃·X̃) = 0 and m₂·X̃ − b·(m₃·X̃) = 0, x̃ = (a, b, 1), so
        AᵀWA = [[G, 0, −G_a], [0, G, −G_b], [−G_a, −G_b, G_{a²+b²}]],   G_s = Σ w·s·X̃X̃ᵀ.
    The first two block rows give m₁ = G⁻¹G_a·m₃ and m₂ = G⁻¹G_b·m₃; put into the third, they
    leave the Schur complement S·m₃ = 0 with S = G_{a²+b²} − G_a·G⁻¹G_a − G_b·G⁻¹G_b. The last
    entry of m₃ is fixed to 1 (it is λ times the depth of the points' centroid, never 0 for points
    in front) and the rest of m₃ solves S's first D rows.
    """
    cols = X.shape[1]
    a, b = x[:, :1], x[:, 1:2]  # (S, 1, N)
    weighted, transposed = X * weight[:, None], X.transpose(0, 2, 1)
    G, Ga, Gb, Gq = ((weighted * s) @ transposed for s in (1.0, a, b, a * a + b * b))  # G_s, (S, D+1, D+1)
    # A 1e-12 ridge keeps a degenerate random sample (coplanar or repeated points) solvable; it moves
    # a real solution by about 1e-12, which Gauss-Newton removes.
    eye = np.eye(cols)
    G = G + 1e-12 * np.trace(G, axis1=1, axis2=2)[:, None, None] * eye
    Ma, Mb = np.split(np.linalg.solve(G, np.concatenate([Ga, Gb], axis=-1)), 2, axis=-1)  # G⁻¹G_a, G⁻¹G_b
    S = Gq - Ga @ Ma - Gb @ Mb
    S = S + 1e-12 * np.trace(S, axis1=1, axis2=2)[:, None, None] * eye
    m3 = np.concatenate([np.linalg.solve(S[:, :-1, :-1], -S[:, :-1, -1:]), np.ones((len(S), 1, 1))], axis=1)
    return np.concatenate([Ma @ m3, Mb @ m3, m3], axis=-1).transpose(0, 2, 1)  # rows m₁, m₂, m₃


def _dlt(pixels: np.ndarray, points: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Normalised DLT per frame: the (T, 3, D+1) matrix M with [x, y, 1] ∝ M·[X, 1] for D-dim points.

    D = 3 gives a camera's projection matrix, D = 2 a plane's homography.
    """
    x, X, norm_x, norm_X = _normalise(pixels, points, weight)
    return np.linalg.inv(norm_x) @ _solve_dlt(x, X, weight) @ norm_X  # undo the normalisation


def _nearest_rotation(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotation nearest to each (T, 3, 3) matrix (SVD, det +1) and its mean singular value."""
    U, S, Vt = np.linalg.svd(matrix)
    flip = np.ones((len(matrix), 3))
    flip[:, 2] = np.sign(np.linalg.det(U @ Vt))
    return (U * flip[:, None, :]) @ Vt, S.mean(-1)


def _in_front(row: np.ndarray, points: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(T,) sign ±1 that makes most weighted points' depth row·[X, 1] positive (points (T, D, N))."""
    z = (row[:, None, :-1] @ points)[:, 0] + row[:, -1:]  # (T, N)
    return np.where((weight * np.sign(z)).sum(1) >= 0, 1.0, -1.0)


def _camera_pose(
    camera: np.ndarray, focal: np.ndarray, points: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) from projection matrices λ·diag(f, f, 1)·[R | t]: the nearest rotation, points in front."""
    scaled = camera / np.stack([focal, focal, np.ones_like(focal)], -1)[..., None]  # λ·[R | t]
    scaled *= _in_front(scaled[:, 2], points, weight)[:, None, None]
    R, scale = _nearest_rotation(scaled[:, :, :3])
    return R, scaled[:, :, 3] / scale[:, None]


def _homography_pose(
    homography: np.ndarray, focal: np.ndarray, plane: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(R', t') of the plane's frame from homographies λ·diag(f, f, 1)·[r₁ r₂ t'], with r₃ = r₁ × r₂."""
    scaled = homography / np.stack([focal, focal, np.ones_like(focal)], -1)[..., None]  # λ·[r₁ r₂ t']
    scaled *= _in_front(scaled[:, 2], plane, weight)[:, None, None]
    scale = np.linalg.norm(scaled[:, :, :2], axis=1).mean(-1)  # λ = mean(‖λr₁‖, ‖λr₂‖)
    r3 = np.cross(scaled[:, :, 0], scaled[:, :, 1]) / scale[:, None]
    R, _ = _nearest_rotation(np.stack([scaled[:, :, 0], scaled[:, :, 1], r3], axis=-1))
    return R, scaled[:, :, 2] / scale[:, None]


def _transfer_error(matrix: np.ndarray, x: np.ndarray, X: np.ndarray) -> np.ndarray:
    """‖x − π(M·X)‖ for hypotheses M (T, H, 3, D+1) and homogeneous x (T, 3, N), X (T, D+1, N); (T, H, N)."""
    frames, count, rows, cols = matrix.shape
    projected = (matrix.reshape(frames, count * rows, cols) @ X).reshape(
        frames, count, rows, -1
    )  # (T, H, 3, N)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inverse_z = 1 / projected[:, :, 2]
        du = projected[:, :, 0] * inverse_z - x[:, None, 0]
        dv = projected[:, :, 1] * inverse_z - x[:, None, 1]
        error = np.sqrt(du * du + dv * dv)
    return np.where(np.isfinite(error), error, np.inf)


def _least_quantile_weights(
    pixels: np.ndarray, points: np.ndarray, weight: np.ndarray, loss: str, exact: float
) -> np.ndarray:
    """Robust weights (T, N) of every point under each frame's least-quantile-of-squares DLT.

    HYPOTHESES random minimal sets per frame (6 points for a camera, 4 for a homography) each give a
    DLT; the one with the smallest QUANTILE-th transfer error on TEST_POINTS random points wins. All
    of it runs in each frame's Hartley coordinates, which only rescale the errors. A fixed seed keeps
    the recovery a deterministic function of its input. A frame whose plain DLT already explains every
    point to within `exact` (rounding) holds no outlier and keeps weight 1: there a minimal set from
    one dominant plane could fit a third of the points as well and win.
    """
    frames, dim, count = points.shape
    minimal = -(-(3 * (dim + 1) - 1) // 2)  # unknowns of M up to scale, 2 equations per point
    x, X, _, _ = _normalise(pixels, points, weight)
    plain = _transfer_error(_solve_dlt(x, X, weight)[:, None], x, X)[:, 0]  # (T, N)
    exact_frames = np.where(weight > 0, plain, 0).max(1) <= exact
    rng = np.random.default_rng(0)
    order = np.argsort(weight <= 0, axis=1, kind="stable")  # valid points first
    draws = rng.random((frames, HYPOTHESES * minimal + TEST_POINTS)) * (weight > 0).sum(1, keepdims=True)
    chosen = np.take_along_axis(order, draws.astype(int), axis=1)[:, None]  # (T, 1, draws)

    def minimal_sets(array: np.ndarray) -> np.ndarray:  # (T, C, N) -> (T·HYPOTHESES, C, minimal)
        picked = np.take_along_axis(array, chosen[..., : HYPOTHESES * minimal], axis=2)
        rows = array.shape[1]
        return picked.reshape(frames, rows, HYPOTHESES, minimal).swapaxes(1, 2).reshape(-1, rows, minimal)

    hypotheses = _solve_dlt(
        minimal_sets(x), minimal_sets(X), np.ones((frames * HYPOTHESES, minimal))
    ).reshape(frames, HYPOTHESES, 3, dim + 1)
    test = chosen[..., HYPOTHESES * minimal :]
    error = _transfer_error(hypotheses, np.take_along_axis(x, test, 2), np.take_along_axis(X, test, 2))
    rank = int(QUANTILE * TEST_POINTS)
    best = np.partition(error, rank, axis=-1)[..., rank].argmin(1)
    error = _transfer_error(hypotheses[np.arange(frames), best][:, None], x, X)[:, 0]
    weights = robust_loss(error, residual_scale(error, weight > 0), loss)[1]
    return np.where(exact_frames[:, None], 1.0, weights)


def residual_scale(error: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Robust noise scale σ (T,) per frame: median ‖e‖ / 1.1774 over its valid points (e is 2-D)."""
    middle = (valid.sum(1) - 1) // 2
    ordered = np.partition(np.where(valid, error, np.inf), np.unique(middle), axis=1)
    return np.take_along_axis(ordered, middle[:, None], axis=1)[:, 0] / RAYLEIGH_MEDIAN


def robust_loss(error: np.ndarray, sigma: np.ndarray, loss: str) -> tuple[np.ndarray, np.ndarray]:
    """ρ(‖e‖) and its IRLS weight w = ρ'(‖e‖)/‖e‖, with u = ‖e‖/(c·σ) and c = ROBUST_C:

        Geman-McClure  ρ = (cσ)²/2 · u²/(1 + u²),   w = 1/(1 + u²)²
        Cauchy         ρ = (cσ)²/2 · log(1 + u²),   w = 1/(1 + u²)
        squared        ρ = ‖e‖²/2,                  w = 1

    An outlier's pull w·‖e‖ falls off as 1/‖e‖³ under Geman-McClure but only as 1/‖e‖ under
    Cauchy, which is why the former is the default: outliers scattered through the scene are not
    symmetric about a ray, and their leftover Cauchy pull biases the focal length.
    """
    if loss == "squared":
        return error**2 / 2, np.ones_like(error)
    scale = ROBUST_C * np.maximum(sigma, 1e-15)[:, None]  # floor: noise-free data keeps w finite
    u2 = (error / scale) ** 2
    if loss == "geman-mcclure":
        return scale**2 / 2 * u2 / (1 + u2), 1 / (1 + u2) ** 2
    return scale**2 / 2 * np.log1p(u2), 1 / (1 + u2)
