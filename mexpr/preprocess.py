"""Pre-processing (the paper's Pre-Processing section; docs/DESIGN.md §2–3).

One clip goes through five steps:

1. **Face and landmarks.**  dlib's HOG frontal detector runs once per clip, on the first frame;
   dlib's 68-point shape predictor (iBUG 300-W layout; the paper used an Active Shape Model) then
   places the landmarks on every frame, reusing the first frame's face box.
2. **Template normalisation.**  The first frame's landmarks are mapped onto :data:`TEMPLATE`, a
   68-point frontal face laid out in the 96 × 112 crop (see :func:`build_template`).
3. **Alignment** of the later frames (``align=``, see :data:`ALIGN_MODES`): the paper's Local
   Weighted Mean transform (Goshtasby 1988) in its two readings, a similarity registration, or
   none.
4. **Crop** to 96 (w) × 112 (h): the backward maps of steps 2–3 are sampled on the crop's pixel
   grid, with area pre-filtering so that the ~3× downsampling does not alias.
5. **Temporal interpolation** of the onset…offset frames to 65 and 129 frames (linear, over the
   frames' time stamps, :func:`interpolate`).

:func:`preprocess_clip` runs the steps on one clip; :func:`run` runs them over a whole clip table
in parallel, cached by content and resumable, writing ``<run>/manifest.csv``.

Several faces: the detector (with ``adjust_threshold=0``) also returns weak false faces, so
detections scoring below ``min_score`` are ignored; of the faces left, the largest box is taken
(``several="largest"``, the default), or the best-scoring one (``"best"``), or the clip is refused
(``"error"``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mexpr._template import TEMPLATE_68

CROP_W, CROP_H = 96, 112
PIPELINE_VERSION = 1

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

#: The 68-point template in crop pixels (x, y), pixel centres at integers: see build_template().
TEMPLATE = TEMPLATE_68


# --------------------------------------------------------------------------------------------
# errors


class PreprocessError(ValueError):
    """A clip cannot be pre-processed; the message names the file and the problem."""


class FaceNotFoundError(PreprocessError):
    """No face was detected in an image."""


class MultipleFacesError(PreprocessError):
    """Several faces were found and ``several="error"`` was asked for."""


class FrameError(PreprocessError):
    """A frame is unreadable, corrupt, or of another size than the clip's first frame."""


class AlignmentError(PreprocessError):
    """The alignment transform cannot be fitted (degenerate landmarks)."""


# --------------------------------------------------------------------------------------------
# dlib: detector and shape predictor


def predictor_path() -> Path:
    """Path of dlib's 68-point landmark model shipped by ``face-recognition-models``.

    Located through the package's files rather than its ``pose_predictor_model_location()``
    helper, which imports ``pkg_resources`` (gone from recent setuptools).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the 'face-recognition-models' package is not installed; it ships dlib's 68-point model (pip install face-recognition-models)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise FileNotFoundError(f"dlib's 68-point model is missing from {path.parent}")
    return path


@functools.lru_cache(maxsize=1)
def _detector():
    import dlib

    return dlib.get_frontal_face_detector()


@functools.lru_cache(maxsize=4)
def _predictor(path: str):
    import dlib

    if not os.path.isfile(path):
        raise FileNotFoundError(f"landmark model not found: {path}")
    return dlib.shape_predictor(path)


def _grey(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        return np.ascontiguousarray(image)
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def detect_faces(image: np.ndarray, upsample: int = 1) -> list[tuple[tuple[int, int, int, int], float]]:
    """All faces in ``image`` (uint8 RGB or grey) as ``((left, top, right, bottom), score)``,
    highest score first (dlib's detector with ``adjust_threshold=0``)."""
    boxes, scores, _ = _detector().run(_grey(image), upsample, 0.0)
    found = [((b.left(), b.top(), b.right(), b.bottom()), float(s)) for b, s in zip(boxes, scores)]
    return sorted(found, key=lambda f: -f[1])


def _area(box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def find_face(
    image: np.ndarray,
    upsample: int | str = "auto",
    several: str = "largest",
    min_score: float = 0.3,
    source: str = "image",
) -> tuple[int, int, int, int]:
    """The face box ``(left, top, right, bottom)`` of ``image``, by the module's several-faces rule.

    ``upsample="auto"`` tries, until a face scores ``min_score``: a half-size copy (fast, finds
    faces over ~160 px; only for ``several="largest"``), the image itself, then the image
    upsampled once (faces down to ~40 px).
    Raises :class:`FaceNotFoundError` or, with ``several="error"``, :class:`MultipleFacesError`.
    """
    import cv2

    if several not in ("largest", "best", "error"):
        raise ValueError(f"several must be 'largest', 'best' or 'error', not {several!r}")
    grey = _grey(image)
    if upsample == "auto":
        h, w = grey.shape
        attempts = [(grey, 0, 1.0), (grey, 1, 1.0)]
        if several == "largest":  # a face found at half size is larger than any it misses
            attempts.insert(0, (cv2.resize(grey, (w // 2, h // 2), interpolation=cv2.INTER_AREA), 0, 2.0))
    else:
        attempts = [(grey, int(upsample), 1.0)]
    best_seen = None
    faces: list = []
    for img, up, factor in attempts:
        found = detect_faces(img, up)
        if found:
            best_seen = max(best_seen or -np.inf, found[0][1])
        faces = [(tuple(int(round(c * factor)) for c in b), s) for b, s in found if s >= min_score]
        if faces:
            break
    if not faces:
        extra = f" (best detection score {best_seen:.2f} < min_score {min_score})" if best_seen is not None else ""
        raise FaceNotFoundError(f"{source}: no face found by dlib's frontal detector{extra}")
    if len(faces) > 1 and several == "error":
        listed = ", ".join(f"{b} score {s:.2f}" for b, s in faces)
        raise MultipleFacesError(f"{source}: {len(faces)} faces found ({listed}); pass several='largest' or 'best'")
    if several == "largest":
        return max(faces, key=lambda f: (_area(f[0]), f[1]))[0]
    return faces[0][0]


def detect_face(image: np.ndarray, upsample: int = 1, source: str = "image") -> tuple[int, int, int, int]:
    """The face box of the highest-scoring detection; :class:`FaceNotFoundError` if none."""
    found = detect_faces(image, upsample)
    if not found:
        raise FaceNotFoundError(f"{source}: no face found by dlib's frontal detector (upsample={upsample})")
    return found[0][0]


def landmarks(
    image: np.ndarray,
    box: tuple[int, int, int, int] | None = None,
    model: str | os.PathLike | None = None,
    upsample: int = 1,
    source: str = "image",
) -> np.ndarray:
    """68 landmarks ``(68, 2) float32`` (x, y in pixels) of the face in ``box`` (detected if None).

    The predictor is run on the grey image (dlib converts colour images itself, ten times slower).
    """
    import dlib

    if box is None:
        box = detect_face(image, upsample, source)
    rect = dlib.rectangle(int(box[0]), int(box[1]), int(box[2]), int(box[3]))
    shape = _predictor(str(model or predictor_path()))(_grey(image), rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


# --------------------------------------------------------------------------------------------
# the template


def build_template(size: tuple[int, int] = (CROP_W, CROP_H), jaw_width: float = 80.0, eye_y: float = 38.0) -> np.ndarray:
    """Rebuild :data:`TEMPLATE`: the 68-point frontal face of the 96 × 112 crop.

    How: dlib's 68 landmarks on the two face photographs bundled with the dependencies
    (scikit-image's astronaut, matplotlib's Grace Hopper) and on their mirror images, each
    normalised by a similarity (eye centres' midpoint at the origin, eye line horizontal, jaw
    width 1), averaged (the mirrors make the mean exactly left-right symmetric), then scaled to a
    jaw width of ``jaw_width`` px (points 0–16; 8 px margins in a 96 px crop) and placed with the
    eyes' midpoint at ``(47.5, eye_y)``: brows at y ≈ 25 leave 25 px of forehead for the brow
    actions (AU1/2/4), the chin lands at y ≈ 103.  The paper's template (Yan et al. 2014) is not
    published; any frontal mean shape plays its role.
    """
    from mexpr import synth

    shapes = []
    for face in synth._base_faces(None):
        pts = face.landmarks.astype(np.float64)
        mirrored = pts[synth._MIRROR_68].copy()
        mirrored[:, 0] = -mirrored[:, 0]
        shapes += [synth._normalise_shape(pts), synth._normalise_shape(mirrored)]
    mean = np.mean(shapes, axis=0)
    return (mean * jaw_width + np.array([(size[0] - 1) / 2.0, eye_y])).astype(np.float32)


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


def _apply(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ M[:, :2].T + M[:, 2]


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> np.ndarray:
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
    return anchored_lwm_operator(TEMPLATE, _grid(CROP_H, CROP_W), ANCHORS if anchored else None, n, fallback)


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
    grid = _grid(CROP_H, CROP_W)
    tpl = TEMPLATE if template is None else np.asarray(template, np.float64)
    L0 = lms[0]
    if to_template == "lwm":
        if template is None:
            K0 = _template_operator(n, fallback, anchors)
        else:
            K0 = anchored_lwm_operator(tpl, grid, ANCHORS if anchors else None, n, fallback)
        q0 = K0 @ L0
    else:
        q0 = _apply(similarity(tpl, L0), grid)
    if register is None:
        maps = np.broadcast_to(q0, (T,) + q0.shape)
    elif register == "lwm":
        ring = _apply(similarity(tpl, L0), ANCHORS) if anchors else None
        K = anchored_lwm_operator(L0, q0, ring, n, fallback)
        maps = (K @ lms.transpose(1, 0, 2).reshape(68, 2 * T)).reshape(-1, T, 2).transpose(1, 0, 2)
    else:
        maps = np.stack([_apply(similarity(L0, lms[t]), q0) for t in range(T)])
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


def interpolate(frames: np.ndarray, length: int, times: Sequence[float] | None = None) -> np.ndarray:
    """Linear temporal interpolation of ``frames (T, ...)`` to ``length`` frames.

    ``times`` are the frames' time stamps (file frame numbers; default ``0..T-1``), so a missing
    frame in the middle of a clip is bridged at its true time.  Output frames are evenly spaced
    from the first to the last time stamp; same dtype as the input (uint8 is rounded).
    """
    frames = np.asarray(frames)
    T = len(frames)
    if T < 2:
        raise ValueError(f"temporal interpolation needs at least 2 frames, got {T}")
    if length < 2:
        raise ValueError(f"length must be >= 2, got {length}")
    t = np.arange(T, dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    if t.shape != (T,) or np.any(np.diff(t) <= 0):
        raise ValueError("times must be one strictly increasing stamp per frame")
    target = np.linspace(t[0], t[-1], length)
    i = np.clip(np.searchsorted(t, target, side="right") - 1, 0, T - 2)
    a = ((target - t[i]) / (t[i + 1] - t[i])).astype(np.float32)
    a = a.reshape((-1,) + (1,) * (frames.ndim - 1))
    out = frames[i].astype(np.float32) * (1 - a) + frames[i + 1].astype(np.float32) * a
    if frames.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(frames.dtype)


# --------------------------------------------------------------------------------------------
# one clip


@dataclass(frozen=True)
class Config:
    """Every parameter of the pre-processing; part of each clip's cache key."""

    align: str = DEFAULT_ALIGN
    lwm_n: int = 12  # points per local polynomial (MATLAB's N; minimum 6)
    lwm_fallback: float = 0.01  # weight of the affine fallback outside the landmarks' support
    lwm_anchors: bool = True  # virtual affine control points around the crop (our addition)
    lengths: tuple[int, ...] = (65, 129)  # the paper's two temporal lengths
    upsample: int | str = "auto"
    several: str = "largest"
    min_score: float = 0.3
    recenter: float = 0.05  # re-centre the reused face box when the face drifts by more than this x box width
    smooth: float = 2.0  # temporal Gaussian smoothing of the landmark tracks before registration (sigma, frames)
    model: str | None = None  # another 68-point dlib model file; default: face-recognition-models'
    bad_frames: str = "skip"  # a corrupt frame skips the clip ("skip") or is dropped and bridged ("drop")

    def __post_init__(self):
        if self.align not in ALIGN_MODES:
            raise ValueError(f"unknown align {self.align!r}; valid: {', '.join(ALIGN_MODES)}")
        if self.bad_frames not in ("skip", "drop"):
            raise ValueError(f"bad_frames must be 'skip' or 'drop', not {self.bad_frames!r}")
        object.__setattr__(self, "lengths", tuple(int(x) for x in self.lengths))

    def key_dict(self) -> dict:
        """The parameters that change a clip's cached frames (not ``lengths``: the cache holds
        the clip at its native length and :func:`load_clip` interpolates)."""
        d = dataclasses.asdict(self)
        d.pop("lengths")
        model = Path(self.model) if self.model else predictor_path()
        d["model"] = f"{model.name}:{model.stat().st_size if model.exists() else 'missing'}"
        d["version"] = PIPELINE_VERSION
        return d


@dataclass
class Clip:
    """One pre-processed clip: aligned, cropped frames at their native length."""

    frames: np.ndarray  # (T, 112, 96, 3) uint8 RGB
    times: np.ndarray  # (T,) frame numbers
    landmarks: np.ndarray  # (T, 68, 2) float32, frame px
    box: tuple[int, int, int, int]
    notes: list[str] = field(default_factory=list)
    maps: np.ndarray | None = None  # (T, 112, 96, 2) backward maps, when asked for

    def resample(self, length: int) -> np.ndarray:
        """The clip interpolated to ``length`` frames, ``(length, 112, 96, 3) uint8``."""
        return interpolate(self.frames, length, self.times)


def _read_frame(path: str | os.PathLike, data: bytes | None = None) -> np.ndarray:
    """Decode one frame file to BGR uint8; :class:`FrameError` names the file if it is corrupt."""
    import cv2

    from mexpr.datasets import signature_problem

    p = Path(path)
    if data is None:
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise FrameError(f"{p}: cannot read frame ({exc.strerror})") from exc
    why = signature_problem(data[:8], data[-64:], p.suffix)
    if why:
        raise FrameError(f"{p}: corrupt frame: {why}")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise FrameError(f"{p}: corrupt frame: cannot be decoded")
    return img


def _frames_from(frames, times, bad_frames: str, notes: list[str], blobs: Sequence[bytes] | None = None):
    """Decode/validate the clip's frames -> (list of BGR arrays, times, names)."""
    from mexpr.datasets import frame_number

    if isinstance(frames, np.ndarray) and frames.dtype != object:
        arr = frames
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise FrameError(f"frames must be (T, H, W, 3) uint8 RGB, got {arr.shape} {arr.dtype}")
        imgs = [np.ascontiguousarray(f[..., ::-1]) for f in arr]
        names = [f"frame {i}" for i in range(len(arr))]
        t = np.arange(len(arr)) if times is None else np.asarray(times)
    else:
        paths = [Path(p) for p in frames]
        names = [str(p) for p in paths]
        t = np.array([frame_number(p) for p in paths]) if times is None else np.asarray(times)
        imgs = []
        keep = []
        for i, p in enumerate(paths):
            try:
                imgs.append(_read_frame(p, None if blobs is None else blobs[i]))
                keep.append(i)
            except FrameError as exc:
                if bad_frames == "skip":
                    raise
                notes.append(f"dropped {exc}")
        t = t[keep]
        names = [names[i] for i in keep]
    if len(imgs) < 2:
        raise FrameError(f"{names[0] if names else 'clip'}: a clip needs at least 2 frames, got {len(imgs)}")
    shape = imgs[0].shape
    for img, name in zip(imgs, names):
        if img.shape != shape:
            raise FrameError(f"{name}: frame size {img.shape[1]}x{img.shape[0]} differs from the clip's first frame ({shape[1]}x{shape[0]})")
    return imgs, t, names


def track_landmarks(greys: Sequence[np.ndarray], config: Config | None = None, names: Sequence[str] | None = None):
    """68 landmarks on every frame of a clip (grey uint8 frames): dlib's detector once, on the
    first frame, then the shape predictor on every frame in the first frame's box, re-centred on
    the face when it drifts by more than ``config.recenter`` box widths.  Returns
    ``(landmarks (T, 68, 2) float32, box)``; :class:`AlignmentError` if a frame's landmarks
    collapse (no usable face)."""
    config = config or Config()
    names = list(names) if names is not None else [f"frame {i}" for i in range(len(greys))]
    box = find_face(greys[0], config.upsample, config.several, config.min_score, source=names[0])
    model = str(config.model or predictor_path())
    lms = np.empty((len(greys), 68, 2), np.float32)
    lms[0] = landmarks(greys[0], box, model)
    c0 = lms[0].mean(0)
    bw = box[2] - box[0]
    cur = box
    for i in range(1, len(greys)):
        drift = lms[i - 1].mean(0) - c0
        if np.hypot(*drift) > config.recenter * bw:
            dx, dy = (int(round(v)) for v in drift)
            cur = (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)
        lms[i] = landmarks(greys[i], cur, model)
    spread = lms.std(1).min(1)
    if (spread < 2.0).any():
        i = int(np.argmin(spread))
        raise AlignmentError(f"{names[i]}: landmarks collapsed (spread {spread[i]:.2f} px); no usable face")
    return lms, box


def preprocess_clip(
    frames: Sequence[str | os.PathLike] | np.ndarray,
    config: Config | None = None,
    times: Sequence[float] | None = None,
    return_maps: bool = False,
    _blobs: Sequence[bytes] | None = None,
) -> Clip:
    """Pre-process one clip: ``frames`` are its onset…offset frame files (or a ``(T, H, W, 3)``
    uint8 RGB array).  Returns a :class:`Clip` at native length; ``clip.resample(65)`` gives the
    paper's TIM65 input.  Raises a :class:`PreprocessError` subclass naming the file on bad input.
    """
    config = config or Config()
    notes: list[str] = []
    imgs, t, names = _frames_from(frames, times, config.bad_frames, notes, _blobs)
    import cv2

    greys = [cv2.cvtColor(im, cv2.COLOR_BGR2GRAY) for im in imgs]
    lms, box = track_landmarks(greys, config, names)
    try:
        maps = alignment_maps(smooth_tracks(lms, config.smooth), config.align, config.lwm_n, config.lwm_fallback, config.lwm_anchors)
    except AlignmentError as exc:
        raise AlignmentError(f"{names[0]}: {exc}") from exc
    out = np.empty((len(imgs), CROP_H, CROP_W, 3), np.uint8)
    for i, im in enumerate(imgs):
        out[i] = warp(im, maps[i])[..., ::-1]
    return Clip(out, np.asarray(t), lms, tuple(int(v) for v in box), notes, maps if return_maps else None)


# --------------------------------------------------------------------------------------------
# batch runner


def _hash_inputs(paths: Sequence[Path], config_key: str) -> tuple[str, list[bytes]]:
    h = hashlib.blake2b(config_key.encode(), digest_size=16)
    blobs = []
    for p in paths:
        data = p.read_bytes()
        blobs.append(data)
        h.update(p.name.encode() + b"\0" + len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest(), blobs


def _safe_name(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)


def _process_row(rec: dict, config: Config, config_key: str, cache_dir: str, force: bool) -> dict:
    import cv2

    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    out = {"status": "skipped", "reason": "", "cache": "", "cached": False, "n_used": 0, "notes": ""}
    paths = [Path(p) for p in rec["frames"]]
    try:
        key, blobs = _hash_inputs(paths, config_key)
    except OSError as exc:
        out["reason"] = f"{getattr(exc, 'filename', '')}: cannot read frame ({exc.strerror})"
        return out
    name = f"{_safe_name(rec['subject_id'])}__{_safe_name(rec['clip'])}__{key[:16]}.npz"
    target = Path(cache_dir) / name
    out["cache"] = f"cache/preprocess/{name}"
    if target.exists() and not force:
        with np.load(target) as z:
            out.update(status="processed", cached=True, n_used=int(len(z["times"])), notes=str(z["notes"]))
        return out
    try:
        clip = preprocess_clip(paths, config, _blobs=blobs)
    except PreprocessError as exc:
        out["reason"] = str(exc)
        out["cache"] = ""
        return out
    from mexpr import _io

    notes = "; ".join(clip.notes)
    _io.save_npz(target, frames=clip.frames, times=clip.times, landmarks=clip.landmarks, box=np.array(clip.box), notes=np.array(notes))
    out.update(status="processed", n_used=len(clip.frames), notes=notes, seconds=round(time.perf_counter() - t0, 3))
    return out


MANIFEST_COLUMNS = [
    "subject_id",
    "clip",
    "dataset",
    "subject",
    "emotion",
    "label",
    "onset",
    "apex",
    "offset",
    "n_frames",
    "status",
    "reason",
    "n_used",
    "cache",
    "cached",
    "notes",
]


def run(
    clips,
    run_dir: str | os.PathLike,
    config: Config | None = None,
    jobs: int | None = None,
    progress: bool = True,
    force: bool = False,
):
    """Pre-process every clip of ``clips`` (a :func:`mexpr.datasets.load` table) in parallel.

    Each clip is cached in ``<run_dir>/cache/preprocess/`` under a content hash of its frame
    files and of ``config``: a re-run (or a run after an interrupt) skips finished clips.  Clips
    that fail are recorded with the reason and the batch goes on.  Writes
    ``<run_dir>/manifest.csv`` (one row per clip) and ``<run_dir>/preprocess.json``; returns the
    manifest as a DataFrame.
    """
    import pandas as pd
    from joblib import delayed

    from mexpr import _io

    config = config or Config()
    run_dir = Path(run_dir)
    cache_dir = run_dir / "cache" / "preprocess"
    cache_dir.mkdir(parents=True, exist_ok=True)
    config_key = json.dumps(config.key_dict(), sort_keys=True)
    recs = clips.to_dict("records")
    t0 = time.perf_counter()
    tasks = [delayed(_process_row)(r, config, config_key, str(cache_dir), force) for r in recs]
    skipped = lambda rs: {"skipped": sum(r["status"] == "skipped" for r in rs)}  # noqa: E731
    results = list(_io.parallel(tasks, jobs, "preprocess", progress, postfix=skipped))
    rows = []
    for rec, res in zip(recs, results):
        row = {c: rec.get(c, "") for c in MANIFEST_COLUMNS if c in rec}
        row.update({k: v for k, v in res.items() if k != "seconds"})
        rows.append(row)
    manifest = pd.DataFrame(rows)[MANIFEST_COLUMNS]
    manifest.to_csv(run_dir / "manifest.csv", index=False)
    summary = {
        "config": config.key_dict() | {"lengths": list(config.lengths)},
        "clips": len(manifest),
        "processed": int((manifest["status"] == "processed").sum()),
        "skipped": int((manifest["status"] == "skipped").sum()),
        "from_cache": int(manifest["cached"].sum()),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    (run_dir / "preprocess.json").write_text(json.dumps(summary, indent=2) + "\n")
    manifest.attrs["summary"] = summary
    return manifest


def load_manifest(run_dir: str | os.PathLike):
    """``<run_dir>/manifest.csv`` as a DataFrame (a clear error if preprocessing has not run)."""
    import pandas as pd

    path = Path(run_dir) / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m mexpr preprocess --run {run_dir}` first")
    return pd.read_csv(path, keep_default_na=False, dtype={"subject": str})


def load_clip(run_dir: str | os.PathLike, row, length: int | None = None) -> np.ndarray:
    """The cached pre-processed frames of one manifest ``row`` (a Series/dict, or the
    ``subject_id/clip`` key), interpolated to ``length`` frames when given."""
    run_dir = Path(run_dir)
    if isinstance(row, str):
        m = load_manifest(run_dir)
        sid, _, clip = row.rpartition("/")
        hit = m[(m["subject_id"] == sid) & (m["clip"] == clip)]
        if hit.empty:
            raise KeyError(f"{row!r} is not in {run_dir / 'manifest.csv'}")
        row = hit.iloc[0]
    if row["status"] != "processed":
        raise PreprocessError(f"{row['subject_id']}/{row['clip']} was skipped: {row['reason']}")
    frames, times = read_cache(run_dir, row["cache"])
    return frames if length is None else interpolate(frames, length, times)


def read_cache(run_dir: str | os.PathLike, cache: str) -> tuple[np.ndarray, np.ndarray]:
    """A cached pre-processed clip's native-length frames ``uint8 (T, 112, 96, 3)`` and their
    time stamps ``(T,)`` (``cache``: the manifest's path, relative to ``run_dir``)."""
    with np.load(Path(run_dir) / cache) as z:
        return z["frames"], z["times"]


# --------------------------------------------------------------------------------------------
# accuracy against the synthetic ground truth


def _sample(field: np.ndarray, pts: np.ndarray) -> np.ndarray:
    import cv2

    m = pts.astype(np.float32)
    return cv2.remap(field.astype(np.float32), m[..., 0], m[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _rigid_part(e: np.ndarray, xy: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """Least-squares (linearised) similarity motion field fitted to the field ``e`` on ``sel``."""
    x, y = xy[..., 0][sel], xy[..., 1][sel]
    x0, y0 = x.mean(), y.mean()
    x, y = x - x0, y - y0
    one, zero = np.ones_like(x), np.zeros_like(x)
    A = np.concatenate([np.stack([x, -y, one, zero], 1), np.stack([y, x, zero, one], 1)])
    b = np.concatenate([e[..., 0][sel], e[..., 1][sel]])
    a, bb, tx, ty = np.linalg.lstsq(A, b, rcond=None)[0]
    X, Y = xy[..., 0] - x0, xy[..., 1] - y0
    return np.stack([a * X - bb * Y + tx, bb * X + a * Y + ty], -1)


def map_jacobian(backward: np.ndarray) -> np.ndarray:
    """Jacobian ``(h, w, 2, 2)`` of a backward map ``(h, w, 2)``: ``J[..., c, k]`` is
    d map_c / d (x, y)_k, frame px per crop px (central differences)."""
    gy, gx = np.gradient(np.asarray(backward, np.float64), axis=(0, 1))
    return np.stack([gx, gy], -1)


def frame_to_crop(J: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """Vectors ``(h, w, 2)`` in frame px at each crop pixel, expressed in crop px through the
    map's Jacobian ``J`` (:func:`map_jacobian`)."""
    return np.linalg.solve(J, np.asarray(vec, np.float64)[..., None])[..., 0]


def alignment_error(maps: np.ndarray, times: Sequence[int], motion, apex: int | None = None) -> dict:
    """How well the backward ``maps`` of one clip align it, against its synthetic ground truth.

    In crop pixels (96 × 112 scale), over the face (the ground truth's head mask):

    - ``head_rms``: the head motion of the ground truth, unaligned (what ``align="none"`` keeps);
    - ``residual_head_rms``: the rigid (similarity) part of the head motion left after alignment,
      RMS over pixels and over frames 1..T-1;
    - ``jitter_rms``: the frame-to-frame part of that residual (the rigid motion between
      consecutive aligned frames that the head did not make), RMS over pixels and frame pairs —
      what optical flow between consecutive frames sees on top of the expression;
    - ``noise_rms``: the non-rigid motion that alignment adds away from the expression (landmark
      jitter warped into the image), RMS over pixels outside the AU regions and frames;
    - ``expression_kept``: the share of the apex frame's expression motion that survives, in the AU
      regions (projection of the aligned non-rigid motion onto the true one; 1 = all kept);
    - ``magnitude_ratio``: mean aligned / mean true expression magnitude in the AU regions.

    ``motion`` is the clip's :class:`mexpr.synth.Motion`; ``times`` the frame numbers of the maps.
    """
    maps = np.asarray(maps, np.float64)
    T = len(maps)
    idx = np.asarray(times, int) - int(motion.frame_numbers[0])
    A0 = motion.rigid[idx[0]]
    A0i = np.linalg.inv(np.vstack([A0, [0, 0, 1]]))[:2]
    q0 = maps[0]
    r = _apply(A0i, q0.reshape(-1, 2)).reshape(q0.shape)
    _, mask = motion._upsampled()
    face = _sample(mask, r) > 0.99
    crop_xy = _grid(CROP_H, CROP_W).reshape(CROP_H, CROP_W, 2)

    def head(t: int) -> np.ndarray:
        return _apply(motion.rigid[idx[t]], r.reshape(-1, 2)).reshape(r.shape)

    head_sq, res_sq, noise_sq, jit_sq = [], [], [], []
    prev_rigid = np.zeros(crop_xy.shape)
    apex_t = int(np.argmin(np.abs(np.asarray(times) - (apex if apex is not None else motion.frame_numbers[motion.apex_index]))))
    Ea = motion.expression(int(idx[apex_t]))
    E_r = _sample(Ea, r)
    A_a = motion.rigid[idx[apex_t]]
    true_expr = frame_to_crop(map_jacobian(maps[apex_t]), E_r @ A_a[:, :2].T)
    mag = np.hypot(true_expr[..., 0], true_expr[..., 1])
    au = face & (mag >= 0.25 * mag[face].max()) if mag[face].max() > 0 else np.zeros_like(face)
    quiet = face & (mag < 0.05 * max(mag[face].max(), 1e-9))
    out = {}
    for t in range(1, T):
        h_t = head(t)
        J = map_jacobian(maps[t])
        drift = frame_to_crop(J, h_t - q0)
        head_sq.append((drift[face] ** 2).sum(-1).mean())
        e = frame_to_crop(J, h_t - maps[t])
        rigid = _rigid_part(e, crop_xy, face)
        res_sq.append((rigid[face] ** 2).sum(-1).mean())
        jit_sq.append(((rigid - prev_rigid)[face] ** 2).sum(-1).mean())
        prev_rigid = rigid
        if quiet.any():
            noise_sq.append(((e - rigid)[quiet] ** 2).sum(-1).mean())
        if t == apex_t and au.any():
            d = frame_to_crop(J, _apply(A_a, (r + E_r).reshape(-1, 2)).reshape(r.shape) - maps[t]) - rigid
            ts = true_expr[au]
            out["expression_kept"] = float((d[au] * ts).sum() / (ts**2).sum())
            out["magnitude_ratio"] = float(np.hypot(*d[au].T).mean() / np.hypot(*ts.T).mean())
            out["expression_px"] = float(np.hypot(*ts.T).mean())
    out.update(
        head_rms=float(np.sqrt(np.mean(head_sq))),
        residual_head_rms=float(np.sqrt(np.mean(res_sq))),
        jitter_rms=float(np.sqrt(np.mean(jit_sq))),
        noise_rms=float(np.sqrt(np.mean(noise_sq))) if noise_sq else float("nan"),
    )
    return out


def compare_alignments(clips, modes: Sequence[str] = tuple(ALIGN_MODES), config: Config | None = None, progress: bool = False):
    """:func:`alignment_error` of every alignment mode on synthetic clips (rows of a
    :func:`mexpr.datasets.load` table): landmarks are tracked once per clip, then each mode's
    maps are scored, on the raw landmark tracks (``smooth`` 0) and, for the modes that register
    every frame, also on tracks smoothed with ``config.smooth``.  One row per (clip, mode,
    smooth); ``variant`` names the pair."""
    import cv2
    import pandas as pd
    from tqdm.auto import tqdm

    from mexpr import synth

    config = config or Config()
    rows = []
    for _, row in tqdm(list(clips.iterrows()), desc="alignment modes", unit="clip", disable=not progress):
        motion = synth.Motion.load(row["clip_dir"])
        imgs, times, names = _frames_from(row["frames"], None, "skip", [])
        lms, _ = track_landmarks([cv2.cvtColor(im, cv2.COLOR_BGR2GRAY) for im in imgs], config, names)
        for mode in modes:
            sigmas = [0.0] + ([config.smooth] if ALIGN_MODES[mode][1] and config.smooth > 0 else [])
            for sigma in sigmas:
                maps = alignment_maps(smooth_tracks(lms, sigma), mode, config.lwm_n, config.lwm_fallback, config.lwm_anchors)
                err = alignment_error(maps, times, motion, row["apex"])
                variant = mode + (f", smooth {sigma:g}" if sigma else "")
                rows.append(
                    {
                        "subject_id": row["subject_id"],
                        "clip": row["clip"],
                        "label": row["label"],
                        "align": mode,
                        "smooth": sigma,
                        "variant": variant,
                        **err,
                    }
                )
    return pd.DataFrame(rows)
