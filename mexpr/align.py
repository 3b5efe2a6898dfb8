"""Alignment: the paper's Local Weighted Mean transform (Goshtasby 1988), similarity
registration, the backward maps from a clip's landmarks to its 96 × 112 crop, and warping
(the paper's Pre-Processing section; docs/DESIGN.md §2, steps 2–4).

:data:`ALIGN_MODES` names how the first frame is normalised to the template
(:data:`mexpr.face.TEMPLATE`) and how each later frame is registered to the first;
:func:`alignment_maps` turns landmark tracks into backward maps and :func:`warp` samples a frame
at them.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from mexpr.face import TEMPLATE, PreprocessError
from mexpr.settings import CROP_H, CROP_W

#: ``align`` name -> (how the first frame is normalised to the template,
#: how each later frame is registered to the first).
ALIGN_MODES = {
    "lwm-first": ("lwm", None),  # (a) one LWM transform, first frame -> template, for every frame
    "lwm-per-frame": ("lwm", "lwm"),  # (b) every frame registered to the first by its own LWM
    "lwm-similarity": ("lwm", "similarity"),  # LWM template, rigid (similarity) registration
    "similarity": ("similarity", "similarity"),  # similarity template and registration
    "none": ("similarity", None),  # crop only: similarity template, no registration
}
DEFAULT_ALIGN = "lwm-similarity"


class AlignmentError(PreprocessError):
    """The alignment transform cannot be fitted (degenerate landmarks)."""


# --------------------------------------------------------------------------------------------
# Local Weighted Mean (Goshtasby 1988), as MATLAB's fitgeotrans(..., 'lwm', N)


def _poly2(z: np.ndarray) -> np.ndarray:
    x, y = z[..., 0], z[..., 1]
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], -1)


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def _check_points(pts: np.ndarray, name: str) -> np.ndarray:
    pts = np.asarray(pts, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{name} must be (N, 2) points, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise AlignmentError(f"{name}: non-finite control points")
    return pts


def lwm_operator(fixed: np.ndarray, query: np.ndarray, n: int = 12, fallback: float = 0.01, rcond: float = 1e-7) -> np.ndarray:
    """The Local Weighted Mean transform as a linear operator ``K (Q, P)``.

    Goshtasby's LWM, as MATLAB's ``fitgeotrans(moving, fixed, 'lwm', n)`` defines it: for every
    control point ``i`` of ``fixed``, a second-degree polynomial ``P_i`` is fitted (least
    squares) from its ``n`` nearest control points (itself included) to their ``moving``
    partners; its radius of influence ``R_i`` is the distance to the farthest of those ``n``.
    At a point ``q``, the transform is ``sum_i W_i P_i(q) / sum_i W_i`` with
    ``W_i = w(|q - c_i| / R_i)``, ``w(r) = 1 - 3 r^2 + 2 r^3`` for ``r < 1``, else 0.

    For fixed control points and query points, the result is *linear* in the moving points, so
    the transform of ``query`` is ``K @ moving`` (``moving``: ``(P, 2)`` or ``(P, 2 × T)``); one
    operator serves every frame of a clip.

    Outside the control points' support (``sum_i W_i = 0``; MATLAB gives NaN there, and for
    ``fallback=0`` so do we) the transform falls back to the least-squares affine map of all
    control points, blended in as one more polynomial of constant weight ``fallback``: inside
    the support it moves the result by a fraction ``fallback / sum W`` towards the affine map;
    across the support's border it makes the transition continuous.

    Raises :class:`AlignmentError` where a local fit is degenerate (for example coincident or
    collinear control points).  Polynomials are fitted in coordinates centred on each control
    point and scaled by its radius, for conditioning.
    """
    fixed = _check_points(fixed, "fixed")
    query = np.asarray(query, dtype=np.float64)
    P = len(fixed)
    if n < 6:
        raise ValueError(f"LWM needs n >= 6 points per second-degree polynomial, got n={n}")
    if P < n:
        raise AlignmentError(f"LWM with n={n} needs at least {n} control points, got {P}")
    d = _pairwise(fixed, fixed)
    order = np.argsort(d, axis=1, kind="stable")[:, :n]
    R = d[np.arange(P), order[:, -1]]
    if (R <= 1e-9).any():
        bad = np.flatnonzero(R <= 1e-9).tolist()
        raise AlignmentError(f"degenerate LWM system: control point(s) {bad} coincide with their {n - 1} neighbours")
    A = _poly2((fixed[order] - fixed[:, None, :]) / R[:, None, None])  # (P, n, 6)
    U, S, Vt = np.linalg.svd(A, full_matrices=False)
    bad = np.flatnonzero(S[:, -1] < rcond * S[:, 0])
    if len(bad):
        raise AlignmentError(
            f"degenerate LWM system: the {n} points around control point(s) {bad.tolist()} do not "
            f"determine a second-degree polynomial (collinear or coincident landmarks)"
        )
    pinv = np.einsum("pkj,pij->pki", Vt.transpose(0, 2, 1) / S[:, None, :], U)  # (P, 6, n)
    r = _pairwise(query, fixed) / R  # (Q, P)
    W = np.where(r < 1.0, 1.0 - 3.0 * r**2 + 2.0 * r**3, 0.0)
    qi, pi = np.nonzero(W)
    basis = _poly2((query[qi] - fixed[pi]) / R[pi, None])  # (m, 6)
    rows = np.einsum("mk,mkn->mn", basis, pinv[pi]) * W[qi, pi][:, None]  # (m, n)
    Q = len(query)
    K = np.bincount((qi[:, None] * P + order[pi]).ravel(), weights=rows.ravel(), minlength=Q * P).reshape(Q, P)
    wsum = W.sum(1)
    if fallback > 0:
        Fh = np.hstack([fixed, np.ones((P, 1))])
        G = np.hstack([query, np.ones((Q, 1))]) @ np.linalg.pinv(Fh)
        return (K + fallback * G) / (wsum + fallback)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(wsum[:, None] > 0, K / wsum[:, None], np.nan)


class LWM:
    """A fitted Local Weighted Mean transform, mapping ``fixed`` points onto ``moving`` points
    (MATLAB: ``tform = fitgeotrans(moving, fixed, 'lwm', n)``; ``tform(q)`` here is MATLAB's
    ``transformPointsInverse(tform, q)``, the backward map that image warping uses)."""

    def __init__(self, fixed: np.ndarray, moving: np.ndarray, n: int = 12, fallback: float = 0.01):
        self.fixed = _check_points(fixed, "fixed")
        self.moving = _check_points(moving, "moving")
        if self.moving.shape != self.fixed.shape:
            raise ValueError(f"fixed and moving must have the same shape, got {self.fixed.shape} and {self.moving.shape}")
        self.n, self.fallback = n, fallback
        lwm_operator(self.fixed, self.fixed[:1], n, fallback)  # validates the system now

    def __call__(self, points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, dtype=np.float64)
        flat = pts.reshape(-1, 2)
        return (lwm_operator(self.fixed, flat, self.n, self.fallback) @ self.moving).reshape(pts.shape)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity ``(2, 3)`` mapping ``src`` points onto ``dst`` (Umeyama 1991)."""
    src = _check_points(src, "src")
    dst = _check_points(dst, "dst")
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    var = (a**2).sum()
    if var < 1e-9:
        raise AlignmentError("degenerate similarity fit: all source points coincide")
    cov = b.T @ a / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.diag([1.0, np.sign(np.linalg.det(U @ Vt)) or 1.0])
    Rm = U @ D @ Vt
    scale = (S * np.diag(D)).sum() / (var / len(src))
    M = np.empty((2, 3))
    M[:, :2] = scale * Rm
    M[:, 2] = md - M[:, :2] @ ms
    return M


def apply_affine(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points ``(..., 2)`` mapped by the affine ``M (2, 3)``."""
    return pts @ M[:, :2].T + M[:, 2]


@functools.lru_cache(maxsize=8)
def pixel_grid(h: int, w: int) -> np.ndarray:
    """The ``(h * w, 2)`` pixel centres (x, y) of an ``h × w`` image, row by row."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([xx.ravel(), yy.ravel()], 1)


def _ring(x0: float, y0: float, x1: float, y1: float, step: float) -> np.ndarray:
    nx, ny = max(1, round((x1 - x0) / step)), max(1, round((y1 - y0) / step))
    xs, ys = np.linspace(x0, x1, nx + 1), np.linspace(y0, y1, ny + 1)
    top = np.stack([xs, np.full_like(xs, y0)], 1)
    bottom = np.stack([xs, np.full_like(xs, y1)], 1)
    left = np.stack([np.full(ny - 1, x0), ys[1:-1]], 1)
    right = np.stack([np.full(ny - 1, x1), ys[1:-1]], 1)
    return np.vstack([top, bottom, left, right])


#: Virtual control points (crop px) that anchor LWM outside the landmarks' support: a ring 8 px
#: outside the crop, every ~16 px, and a forehead row at y = 8 (see :func:`anchored_lwm_operator`).
ANCHORS = np.vstack([_ring(-8.0, -8.0, CROP_W + 7.0, CROP_H + 7.0, 16.0), np.stack([np.linspace(8.0, 87.0, 6), np.full(6, 8.0)], 1)])


def anchored_lwm_operator(fixed: np.ndarray, query: np.ndarray, anchors: np.ndarray | None, n: int = 12, fallback: float = 0.01) -> np.ndarray:
    """LWM operator ``K (Q, P)`` of ``fixed`` control points plus virtual ``anchors``.

    The 68 landmarks cover the face from the brows down; the forehead and the crop's corners lie
    outside their support, where LWM's quadratics extrapolate (on synthetic clips they folded the
    image over at the top of the crop).  Our addition, not the paper's: virtual control points
    (``anchors``, in the ``fixed`` frame) whose partners follow the least-squares affine map of
    the landmarks.  LWM itself is unchanged (MATLAB's definition on the augmented point set);
    since the anchors' partners are linear in the landmarks, the result is still one operator on
    the 68 moving landmarks.  ``anchors=None`` gives the landmark-only LWM.
    """
    if anchors is None or not len(anchors):
        return lwm_operator(fixed, query, n, fallback)
    fixed = _check_points(fixed, "fixed")
    anchors = np.asarray(anchors, np.float64)
    P = len(fixed)
    K = lwm_operator(np.vstack([fixed, anchors]), query, n, fallback)
    G = np.hstack([anchors, np.ones((len(anchors), 1))]) @ np.linalg.pinv(np.hstack([fixed, np.ones((P, 1))]))
    return K[:, :P] + K[:, P:] @ G


@functools.lru_cache(maxsize=8)
def _template_operator(n: int, fallback: float, anchored: bool) -> np.ndarray:
    return anchored_lwm_operator(TEMPLATE, pixel_grid(CROP_H, CROP_W), ANCHORS if anchored else None, n, fallback)


def smooth_tracks(lms: np.ndarray, sigma: float) -> np.ndarray:
    """Landmark tracks ``(T, 68, 2)`` smoothed over time with a Gaussian of ``sigma`` frames
    (edges: nearest).  The predictor's frame-to-frame jitter is independent from frame to frame;
    head motion and expressions are smooth over tens of milliseconds, so smoothing removes the
    first and keeps the second.  ``sigma=0`` returns the tracks unchanged."""
    if sigma <= 0 or len(lms) < 2:
        return lms
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.asarray(lms, np.float64), sigma, axis=0, mode="nearest").astype(np.float32)


def alignment_maps(
    lms: np.ndarray,
    align: str = DEFAULT_ALIGN,
    n: int = 12,
    fallback: float = 0.01,
    anchors: bool = True,
    template: np.ndarray | None = None,
) -> np.ndarray:
    """Backward maps ``(T, 112, 96, 2) float32``: for each crop pixel of each frame, the frame
    position (x, y) it samples, from the clip's landmarks ``lms (T, 68, 2)``.

    The first frame is normalised to the template (LWM or similarity, template -> frame 0); then
    each frame ``t`` is registered to the first (``ALIGN_MODES``): the crop pixel ``p`` samples
    frame ``t`` at ``M_t(M_0(p))`` where ``M_t`` maps frame 0 onto frame ``t``.  ``anchors``
    adds the virtual control points :data:`ANCHORS` to every LWM fit.
    """
    if align not in ALIGN_MODES:
        raise ValueError(f"unknown align {align!r}; valid: {', '.join(ALIGN_MODES)}")
    lms = np.asarray(lms, dtype=np.float64)
    if lms.ndim != 3 or lms.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be (T, 68, 2), got {lms.shape}")
    if not np.isfinite(lms).all():
        raise AlignmentError("non-finite landmarks")
    to_template, register = ALIGN_MODES[align]
    T = len(lms)
    grid = pixel_grid(CROP_H, CROP_W)
    tpl = TEMPLATE if template is None else np.asarray(template, np.float64)
    L0 = lms[0]
    if to_template == "lwm":
        if template is None:
            K0 = _template_operator(n, fallback, anchors)
        else:
            K0 = anchored_lwm_operator(tpl, grid, ANCHORS if anchors else None, n, fallback)
        q0 = K0 @ L0
    else:
        q0 = apply_affine(similarity(tpl, L0), grid)
    if register is None:
        maps = np.broadcast_to(q0, (T,) + q0.shape)
    elif register == "lwm":
        ring = apply_affine(similarity(tpl, L0), ANCHORS) if anchors else None
        K = anchored_lwm_operator(L0, q0, ring, n, fallback)
        maps = (K @ lms.transpose(1, 0, 2).reshape(68, 2 * T)).reshape(-1, T, 2).transpose(1, 0, 2)
    else:
        maps = np.stack([apply_affine(similarity(L0, lms[t]), q0) for t in range(T)])
    return np.ascontiguousarray(maps.reshape(T, CROP_H, CROP_W, 2), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# warping and temporal interpolation


def warp(frame: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Sample ``frame`` (H, W[, C]) at the backward map ``(h, w, 2)``: bilinear, after an area
    pre-filter when the map shrinks the image (about 3× for a 640 × 480 CASME II face), so the
    crop does not alias."""
    import cv2

    m = backward.astype(np.float32)
    sx = float(np.median(np.hypot(*np.moveaxis(np.diff(m, axis=1), -1, 0))))
    sy = float(np.median(np.hypot(*np.moveaxis(np.diff(m, axis=0), -1, 0))))
    scale = math.sqrt(max(sx, 1e-6) * max(sy, 1e-6))
    src = frame
    if scale > 1.25:
        H, W = frame.shape[:2]
        x0 = int(max(0, math.floor(np.nanmin(m[..., 0])) - 2))
        y0 = int(max(0, math.floor(np.nanmin(m[..., 1])) - 2))
        x1 = int(min(W, math.ceil(np.nanmax(m[..., 0])) + 3))
        y1 = int(min(H, math.ceil(np.nanmax(m[..., 1])) + 3))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            roi = frame[y0:y1, x0:x1]
            nw, nh = max(1, round((x1 - x0) / scale)), max(1, round((y1 - y0) / scale))
            src = cv2.resize(roi, (nw, nh), interpolation=cv2.INTER_AREA)
            kx, ky = (x1 - x0) / nw, (y1 - y0) / nh
            m = np.stack([(m[..., 0] - x0 + 0.5) / kx - 0.5, (m[..., 1] - y0 + 0.5) / ky - 0.5], -1)
    return cv2.remap(src, m[..., 0], m[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def map_jacobian(backward: np.ndarray) -> np.ndarray:
    """Jacobian ``(h, w, 2, 2)`` of a backward map ``(h, w, 2)``: ``J[..., c, k]`` is
    d map_c / d (x, y)_k, frame px per crop px (central differences)."""
    gy, gx = np.gradient(np.asarray(backward, np.float64), axis=(0, 1))
    return np.stack([gx, gy], -1)


def frame_to_crop(J: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """Vectors ``(h, w, 2)`` in frame px at each crop pixel, expressed in crop px through the
    map's Jacobian ``J`` (:func:`map_jacobian`)."""
    return np.linalg.solve(J, np.asarray(vec, np.float64)[..., None])[..., 0]
