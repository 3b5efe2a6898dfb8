"""Optical flow and its Munsell colour coding (the paper's *Optical Flow Estimation* section).

* :func:`compute` estimates dense flow between consecutive frames with one of :data:`METHODS`
  (OpenCV's Dual TV-L1, DIS, Farneback, DeepFlow); u = x, v = y, pixels per frame.
* :func:`to_munsell` codes a flow field as colour with the Middlebury flow colour wheel (Baker et
  al. 2007, the ``flowToColor``/``computeColor`` reference code), which the paper calls the
  Munsell colour system: hue = direction, saturation = magnitude, white = no motion.
* :func:`from_munsell` decodes colours back to (normalised) flow; :func:`colour_key` draws the
  wheel.
* :func:`run` computes the flow and its colour coding for every pre-processed clip of a run, at
  both temporal lengths (65 frames -> 64 fields, 129 -> 128), in parallel, cached and resumable.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from mexpr import preprocess, settings

# --------------------------------------------------------------------------------------------
# estimators

#: Each method's tunable parameters and their defaults, tuned for sub-pixel facial motion on
#: 96 x 112 crops: ``benchmarks/flow.py`` scores a grid of settings per method against the
#: synthetic ground truth (peak motions 0.25-2 px, on clips kept out of the evaluation); the
#: defaults below are each method's most accurate setting, except DIS, whose default is the point
#: of its error/time trade-off chosen in docs/benchmarks.md.
METHODS: dict[str, dict] = {
    # Zach et al. 2007 (OpenCV optflow.DualTVL1OpticalFlow).  Tuned: one warp per level (OpenCV's
    # default, 5, adds interpolation noise to motions this small); 3 pyramid levels suffice for
    # motions under ~2 px.
    "tvl1": {"tau": 0.25, "lambda_": 0.15, "theta": 0.3, "nscales": 3, "warps": 1, "epsilon": 0.01, "scale_step": 0.5, "median_filtering": 5},
    # Kroeger et al. 2016 (cv2.DISOpticalFlow): dense inverse search, coarse to fine down to full
    # resolution (finest_scale 0), then variational refinement.
    "dis": {
        "finest_scale": 0,
        "patch_size": 8,
        "patch_stride": 6,
        "grad_descent_iterations": 12,
        "variational_iterations": 1,
        "alpha": 20.0,
        "delta": 5.0,
        "gamma": 10.0,
    },
    # Farneback 2003 (cv2.calcOpticalFlowFarneback): polynomial expansion.  Tuned: a single
    # level (levels=0; the pyramid only adds error at these amplitudes), one iteration.
    "farneback": {"pyr_scale": 0.5, "levels": 0, "winsize": 9, "iterations": 1, "poly_n": 5, "poly_sigma": 0.9},
    # Weinzaepfel et al. 2013 (OpenCV optflow DeepFlow): variational, guided by matching; OpenCV
    # exposes no parameters.
    "deepflow": {},
}
DEFAULT_METHOD = "dis"

#: What each flow field is measured against (docs/DESIGN.md §3, "Flow reference"):
#: ``"consecutive"`` is the paper's (field t: frame t -> t+1 of the interpolated clip, so a
#: micro-expression spread over 64 steps moves a few hundredths of a pixel per field);
#: ``"onset"`` is ours (field t: frame 0 -> t+1, the displacement since onset, as onset-to-apex
#: methods use; the apex field holds the whole expression).
REFERENCES = ("consecutive", "onset")

#: Munsell scalings by name (a positive number is a fixed scale in px): ``"frame"`` (the
#: reference ``flowToColor``, each field by its own peak), ``"clip"`` (one scale per clip),
#: ``"learned"`` (one scale in px learned from a fold's training clips, :func:`learn_scale`).
SCALINGS = ("frame", "clip", "learned")

#: What is done with the motion the whole face shares (docs/DESIGN.md §3, "Global motion"):
#: ``"keep"`` (the paper's: the flow as estimated) or ``"affine"`` (ours, :func:`remove_global`:
#: each field's least-squares affine motion, what the head's residual drift and the alignment's
#: jitter add, is subtracted, so that what is left, and what the Munsell colours show, is the
#: face's local motion).
GLOBAL_MOTION = ("keep", "affine")


class FlowError(ValueError):
    """Bad input to the flow estimators or the colour coding."""


def method_params(method: str, overrides: dict) -> dict:
    """``method``'s parameters (:data:`METHODS`) with ``overrides``; :class:`FlowError` for an
    unknown method or parameter."""
    if method not in METHODS:
        raise FlowError(f"unknown flow method {method!r}; valid: {', '.join(METHODS)}")
    unknown = set(overrides) - set(METHODS[method])
    if unknown:
        raise FlowError(f"{method} has no parameter(s) {sorted(unknown)}; valid: {sorted(METHODS[method])}")
    return {**METHODS[method], **overrides}


def _estimator(method: str, p: dict):
    """An OpenCV estimator object, or a function ``(a, b) -> flow``."""
    import cv2

    if method == "tvl1":
        e = cv2.optflow.DualTVL1OpticalFlow_create()
        e.setTau(p["tau"])
        e.setLambda(p["lambda_"])
        e.setTheta(p["theta"])
        e.setScalesNumber(int(p["nscales"]))
        e.setWarpingsNumber(int(p["warps"]))
        e.setEpsilon(p["epsilon"])
        e.setScaleStep(p["scale_step"])
        e.setMedianFiltering(int(p["median_filtering"]))
        return e.calc
    if method == "dis":
        e = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        e.setFinestScale(int(p["finest_scale"]))
        e.setPatchSize(int(p["patch_size"]))
        e.setPatchStride(int(p["patch_stride"]))
        e.setGradientDescentIterations(int(p["grad_descent_iterations"]))
        e.setVariationalRefinementIterations(int(p["variational_iterations"]))
        e.setVariationalRefinementAlpha(p["alpha"])
        e.setVariationalRefinementDelta(p["delta"])
        e.setVariationalRefinementGamma(p["gamma"])
        e.setUseMeanNormalization(True)
        e.setUseSpatialPropagation(True)
        return e.calc
    if method == "farneback":
        args = (p["pyr_scale"], int(p["levels"]), int(p["winsize"]), int(p["iterations"]), int(p["poly_n"]), p["poly_sigma"], 0)
        return lambda a, b, _none: cv2.calcOpticalFlowFarneback(a, b, None, *args)
    e = cv2.optflow.createOptFlow_DeepFlow()
    return e.calc


def estimator(method: str = "dis", params: dict | None = None):
    """A pairwise flow function ``calc(a, b, None) -> (H, W, 2) float32`` for grey uint8 frames,
    by ``method`` with its (tuned) parameters (:func:`method_params`): what the spotting pass calls
    frame pair by frame pair (:mod:`mexpr.spot`)."""
    return _estimator(method, method_params(method, params or {}))


def _as_grey_frames(frames) -> np.ndarray:
    import cv2

    if isinstance(frames, (list, tuple)):
        shapes = {np.shape(f) for f in frames}
        if len(shapes) > 1:
            raise FlowError(f"frames of different shapes: {sorted(shapes)}")
        frames = np.stack(frames) if frames else np.empty((0,))
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        nan = " (with NaN)" if frames.dtype.kind == "f" and np.isnan(frames).any() else ""
        raise FlowError(f"frames must be uint8, got {frames.dtype}{nan}")
    if frames.ndim == 4 and frames.shape[-1] == 3:
        return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    if frames.ndim == 3:
        return frames
    raise FlowError(f"frames must be (T, H, W, 3) RGB or (T, H, W) grey, got shape {frames.shape}")


def check_reference(reference: str) -> str:
    """``reference`` if it is one of :data:`REFERENCES`, else :class:`FlowError` naming them."""
    if reference not in REFERENCES:
        raise FlowError(f"unknown flow reference {reference!r}; valid: {', '.join(REFERENCES)}")
    return reference


def check_scaling(scale) -> str | float:
    """A Munsell scaling as :func:`to_munsell` and the training take it: one of :data:`SCALINGS`,
    or a fixed scale in px (a finite number > 0; a numeric string is read as one).  Anything else
    is a :class:`FlowError` naming what is valid."""
    if isinstance(scale, str) and scale not in SCALINGS:
        try:
            scale = float(scale)
        except ValueError:
            raise FlowError(f"unknown Munsell scaling {scale!r}; valid: {', '.join(SCALINGS)} or a fixed scale in px (> 0)") from None
    if isinstance(scale, str):
        return scale
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating, np.integer)) or not np.isfinite(scale) or scale <= 0:
        raise FlowError(f"a fixed Munsell scale must be a finite number of px > 0, not {scale!r}")
    return float(scale)


def check_global_motion(global_motion: str) -> str:
    """``global_motion`` if it is one of :data:`GLOBAL_MOTION`, else :class:`FlowError` naming them."""
    if global_motion not in GLOBAL_MOTION:
        raise FlowError(f"unknown global-motion handling {global_motion!r}; valid: {', '.join(GLOBAL_MOTION)}")
    return global_motion


@functools.lru_cache(maxsize=4)
def _affine_projector(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The affine basis ``(h*w, 3)`` (1, x, y) of an ``h x w`` field and its pseudo-inverse."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    basis = np.stack([np.ones(h * w), xx.ravel() / w, yy.ravel() / h], 1)
    return basis.astype(np.float32), np.linalg.pinv(basis).astype(np.float32)


def remove_global(fl: np.ndarray) -> np.ndarray:
    """Flow fields ``(T, H, W, 2)`` less each field's least-squares affine motion (u and v each
    fitted as a + b x + c y over the whole field), ours: a translation, rotation, zoom or shear the
    whole crop shares is head motion or alignment error, not an expression, yet on the synthetic
    clips it is about four fifths of the flow's mean magnitude and sets the Munsell scale
    (docs/benchmarks.md).  Local motion (a brow raised, a lip corner pulled) is left."""
    fl = np.asarray(fl, np.float32)
    if fl.ndim != 4 or fl.shape[-1] != 2:
        raise FlowError(f"flow must be (T, H, W, 2) to remove its global motion, got shape {fl.shape}")
    t, h, w, _ = fl.shape
    basis, pinv = _affine_projector(h, w)
    f = fl.reshape(t, h * w, 2)
    # two batched matrix products (BLAS): the (T, 3, 2) affine coefficients, then their fields; 25x
    # faster than the same sums through np.einsum, which does not call BLAS
    return (f - basis @ (pinv @ f)).reshape(fl.shape)


def check_smooth(smooth) -> float:
    """A flow smoothing (Gaussian sigma in px, 0 = none) as a float, or :class:`FlowError`."""
    if isinstance(smooth, bool) or not isinstance(smooth, (int, float, np.floating, np.integer)) or not np.isfinite(smooth) or smooth < 0:
        raise FlowError(f"flow smoothing must be a finite sigma in px >= 0 (0: none), not {smooth!r}")
    return float(smooth)


def smooth_time(fl: np.ndarray, sigma: float) -> np.ndarray:
    """Flow fields ``(T, H, W, 2)`` smoothed along time with a Gaussian of ``sigma`` fields (edges:
    nearest), ours: the displacement since onset changes slowly, while each field's estimation
    noise is new in every field, so averaging neighbouring fields keeps the first and shrinks the
    second.  ``sigma=0`` returns the fields unchanged."""
    sigma = check_smooth(sigma)
    if sigma == 0 or len(fl) < 2:
        return fl
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.asarray(fl, np.float32), sigma, axis=0, mode="nearest")


def code(fl: np.ndarray, spec: dict, mirrored: bool = False) -> np.ndarray:
    """Raw flow ``(T, H, W, 2)`` as a stream's input: its global motion removed
    (``spec["global_motion"]``, :func:`remove_global`; absent: kept), smoothed along time
    (``spec["tsmooth"]``, :func:`smooth_time`; absent: none), mirrored if asked (:func:`mirror`),
    and Munsell-coded with ``spec["normalize"]`` (:func:`to_munsell`): ``uint8 (T, H, W, 3)``."""
    if check_global_motion(spec.get("global_motion", "keep")) == "affine":
        fl = remove_global(fl)
    fl = smooth_time(fl, spec.get("tsmooth", 0.0))
    return to_munsell(mirror(fl) if mirrored else fl, spec["normalize"])


def compute(frames, method: str = DEFAULT_METHOD, reference: str = "consecutive", smooth: float = 0.0, **params) -> np.ndarray:
    """Dense optical flow of a clip: ``float32 (T-1, H, W, 2)``, (u, v) in pixels, u along x
    (right), v along y (down).

    ``frames``: ``uint8 (T, H, W, 3)`` RGB or ``(T, H, W)`` grey, T >= 2.  ``method``: one of
    :data:`METHODS`; keyword arguments override that method's parameters.  ``reference``:
    ``"consecutive"`` (field t from frame t to t+1, the paper's) or ``"onset"`` (field t from
    frame 0 to frame t+1: the displacement since onset; ours, see :data:`REFERENCES`).  ``smooth``:
    a Gaussian blur of every field, sigma in px (0, the paper's: none; ours: keeps the motion of
    face regions and drops the pixel-level noise a network would otherwise learn by heart).
    """
    p = method_params(method, params)
    check_reference(reference)
    smooth = check_smooth(smooth)
    grey = _as_grey_frames(frames)
    if len(grey) < 2:
        raise FlowError(f"{reference} flow needs at least 2 frames, got {len(grey)}")
    calc = _estimator(method, p)
    out = np.empty(grey.shape + (2,), np.float32)[:-1]
    for t in range(len(grey) - 1):
        out[t] = calc(grey[0 if reference == "onset" else t], grey[t + 1], None)
        if smooth:
            import cv2

            out[t] = cv2.GaussianBlur(out[t], (0, 0), smooth, borderType=cv2.BORDER_REPLICATE)
    if not np.isfinite(out).all():
        raise FlowError(f"{method} returned non-finite flow")
    return out


def compute_as(frames, spec: dict) -> np.ndarray:
    """:func:`compute` with the settings of a flow ``spec`` (``{"method", "params"[, "reference",
    "smooth"]}``, as :func:`mexpr.augment.flow_config` and :func:`mexpr.train.fold_flow` give it;
    a missing reference or smoothing is the paper's)."""
    return compute(frames, spec["method"], spec.get("reference", "consecutive"), spec.get("smooth", 0.0), **spec["params"])


# --------------------------------------------------------------------------------------------
# Munsell (Middlebury) colour coding


#: The wheel's segments, R->Y->G->C->B->M->R: (colours, channel at 255, ramping channel, rising).
_WHEEL_SEGMENTS = [(15, 0, 1, True), (6, 1, 0, False), (4, 1, 2, True), (11, 2, 1, False), (13, 2, 0, True), (6, 0, 2, False)]


@functools.lru_cache(maxsize=1)
def colour_wheel() -> np.ndarray:
    """The Middlebury colour wheel, ``(55, 3)`` float32 RGB 0..255: RY 15, YG 6, GC 4, CB 11,
    BM 13, MR 6 hues (``makeColorwheel`` of Baker et al.'s reference code)."""
    wheel = []
    for n, full, ramp, up in _WHEEL_SEGMENTS:
        block = np.zeros((n, 3))
        block[:, full] = 255
        r = np.floor(255 * np.arange(n) / n)
        block[:, ramp] = r if up else 255 - r
        wheel.append(block)
    return np.vstack(wheel).astype(np.float32)


def _check_flow(flow: np.ndarray) -> np.ndarray:
    flow = np.asarray(flow)
    if flow.shape[-1:] != (2,):
        raise FlowError(f"flow must end in 2 channels (u, v), got shape {flow.shape}")
    if not np.isfinite(flow).all():
        bad = np.argwhere(~np.isfinite(flow).all(-1))[0].tolist()
        raise FlowError(f"flow has NaN/inf values (first at index {bad}); a flow field with holes cannot be colour-coded")
    return flow.astype(np.float32, copy=False)


@functools.lru_cache(maxsize=1)
def _deficit_tables():
    """Per channel: ``255 - wheel[k]`` and its step to the next entry (wrapping), float32."""
    deficit = 255.0 - colour_wheel().astype(np.float64)
    step = np.roll(deficit, -1, axis=0) - deficit
    return [np.ascontiguousarray(deficit[:, c], np.float32) for c in range(3)], [np.ascontiguousarray(step[:, c], np.float32) for c in range(3)]


def to_munsell(flow: np.ndarray, normalize: str | float = "frame") -> np.ndarray:
    """Colour-code flow ``(T, H, W, 2)`` or ``(H, W, 2)`` as ``uint8`` RGB of the same shape
    with 3 channels: the Middlebury ``computeColor`` (hue from the direction, interpolated
    between the 55 wheel colours; white at zero motion, full colour at the normalisation
    scale; ``floor(255 * colour)``), vectorised.

    ``normalize``: ``"frame"`` (default; the reference ``flowToColor``: each field divided by
    its own largest magnitude), ``"clip"`` (one scale for the whole array), or a number (a fixed
    scale in px; beyond it colours are darkened to 75 %, as the reference does).  NaN/inf flow
    raises :class:`FlowError` (the reference paints unknown flow black; here it is an error).
    """
    import cv2

    flow = _check_flow(flow)
    single = flow.ndim == 3
    if single:
        flow = flow[None]
    if flow.ndim != 4:
        raise FlowError(f"flow must be (H, W, 2) or (T, H, W, 2), got shape {flow.shape}")
    T, H, W, _ = flow.shape
    if normalize == "learned":
        raise FlowError("'learned' is a training option: learn the scale from a fold's training clips (learn_scale) and pass it in px")
    normalize = check_scaling(normalize)
    fixed = None
    if normalize == "clip":
        fixed = float(cv2.magnitude(*cv2.split(np.ascontiguousarray(flow).reshape(T * H, W, 2))).max()) if flow.size else 0.0
    elif normalize != "frame":
        fixed = float(normalize)
    d0, d1 = _deficit_tables()
    k = np.float32((len(colour_wheel()) - 1) / (2 * np.pi))
    out = np.empty((T, H, W, 3), np.uint8)
    chunk = 16
    for s0 in range(0, T, chunk):
        fl = np.ascontiguousarray(flow[s0 : s0 + chunk])
        m = len(fl)
        u, v = cv2.split(fl.reshape(m * H, W, 2))
        # cv2's angle of (u, v) in [0, 2pi) equals the reference's atan2(-v, -u) + pi
        mag, ang = cv2.cartToPolar(u, v)
        if fixed is None:
            scale = mag.reshape(m, H * W).max(1).astype(np.float64)
        else:
            scale = np.full(m, fixed)
        inv = (1.0 / (scale + 2.2e-16)).astype(np.float32)
        mag *= np.repeat(inv, H)[:, None]
        beyond = (mag > 1) if normalize != "frame" else None
        if beyond is not None and not beyond.any():
            beyond = None
        ang *= k
        k0 = ang.astype(np.intp)
        ang -= k0  # the fraction between wheel entries k0 and k0 + 1
        chans = []
        for c in range(3):
            d = np.take(d1[c], k0)
            d *= ang
            d += np.take(d0[c], k0)  # 255 - colour at full saturation
            if beyond is not None:  # outside the wheel: 0.75 x the full colour (255 - d = 0.75 (255 - D))
                d = np.where(beyond, np.float32(63.75) + np.float32(0.75) * d, d * mag)
            else:
                d *= mag
            np.subtract(np.float32(255), d, out=d)
            chans.append(d)
        out[s0 : s0 + chunk] = cv2.merge(chans).astype(np.uint8).reshape(m, H, W, 3)
    return out[0] if single else out


def from_munsell(rgb: np.ndarray) -> np.ndarray:
    """Decode Munsell colours ``uint8 (..., 3)`` back to flow ``float32 (..., 2)`` in units of
    the normalisation scale (magnitude 1 = the scale), for colours inside the wheel.

    Inverts :func:`to_munsell` analytically: every wheel colour has one channel at 255 and one
    at 0, so the saturation ``max(1 - c/255)`` is the magnitude; the channel at 255, the channel
    at 0 and the level of the third give the wheel segment and the position in it, hence the
    direction.  Exact up to the colours' 8-bit quantisation (so poor at magnitudes near 0)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.shape[-1:] != (3,):
        raise FlowError(f"colours must be uint8 (..., 3), got {rgb.dtype} {rgb.shape}")
    d = 1.0 - rgb.reshape(-1, 3).astype(np.float64) / 255.0
    rad = d.max(-1)
    w = 1.0 - d / np.maximum(rad, 1e-9)[:, None]  # the full-saturation wheel colour, 0..1
    full = np.argmax(w, -1)
    zero = np.argmin(w, -1)
    ramp = 3 - full - zero
    level = w[np.arange(len(w)), ramp]
    # (channel at 255, ramping channel) -> the wheel segment, its start and length
    fk = np.zeros(len(w))
    start = 0
    for n, fc, rc, up in _WHEEL_SEGMENTS:
        sel = (full == fc) & (ramp == rc)
        fk[sel] = start + (level[sel] if up else 1.0 - level[sel]) * n
        start += n
    theta = fk / (len(colour_wheel()) - 1) * 2 * np.pi - np.pi  # = atan2(-v, -u)
    flow = np.stack([-np.cos(theta), -np.sin(theta)], -1) * rad[:, None]
    return flow.reshape(rgb.shape[:-1] + (2,)).astype(np.float32)


def colour_key(size: int = 151) -> np.ndarray:
    """The colour wheel as an image ``uint8 (size, size, 3)``: the colour of each flow vector
    from the centre (magnitude 1 at the rim; white outside)."""
    c = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    flow = np.stack([(xx - c) / c, (yy - c) / c], -1)
    img = to_munsell(flow, normalize=1.0)
    img[np.hypot(flow[..., 0], flow[..., 1]) > 1] = 255
    return img


# --------------------------------------------------------------------------------------------
# batch runner over a run's pre-processed clips

FLOW_VERSION = 2


def _flow_key(method: str, params: dict, reference: str, normalize, lengths, raw: bool, smooth: float = 0.0) -> str:
    d = {
        "method": method,
        "params": params,
        "reference": reference,
        "normalize": normalize,
        "lengths": list(lengths),
        "raw": raw,
        "version": FLOW_VERSION,
    }
    if smooth:
        d["smooth"] = smooth
    return hashlib.blake2b(json.dumps(d, sort_keys=True).encode(), digest_size=8).hexdigest()


def robust_peak(fl: np.ndarray, q: float = 99.0) -> np.ndarray:
    """Each field's ``q``-th percentile flow magnitude (px), ``float32 (T,)``: its peak without
    the few pixels that edges, blinks and noise throw far (what :func:`learn_scale` reads)."""
    mag = np.sqrt((np.asarray(fl, np.float32) ** 2).sum(-1)).reshape(len(fl), -1)
    return np.percentile(mag, q, axis=1).astype(np.float32)


def _flow_clip(
    run_dir: str, row: dict, method: str, params: dict, reference: str, normalize, lengths, raw: bool, target: str, smooth: float = 0.0
) -> dict:
    import cv2

    from mexpr import _io

    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    arrays = {}
    for L in lengths:
        frames = preprocess.load_clip(run_dir, row, L)
        fl = compute(frames, method, reference, smooth, **params)
        if normalize != "learned":  # a learned scale is the fold's: coded when a fold loads the clip
            arrays[f"munsell{L - 1}"] = to_munsell(fl, normalize)
        if raw:
            arrays[f"flow{L - 1}"] = fl.astype(np.float16)
        arrays[f"magnitude{L - 1}"] = np.sqrt((fl**2).sum(-1)).max(axis=(1, 2)).astype(np.float32)
        arrays[f"robust{L - 1}"] = robust_peak(fl)
    _io.save_npz(target, level=1, **arrays)
    return {"seconds": time.perf_counter() - t0}


def folder(
    run_dir: str | os.PathLike,
    method: str = DEFAULT_METHOD,
    reference: str = "consecutive",
    normalize: str | float = "frame",
    lengths: tuple[int, ...] | None = None,
    raw: bool = False,
    smooth: float = 0.0,
    **params,
) -> Path:
    """The cache folder of one flow setting: ``<run_dir>/cache/flow/<method>[-onset]-<key>``."""
    run_dir = Path(run_dir)
    p = method_params(method, params)
    check_reference(reference)
    normalize = check_scaling(normalize)
    raw = raw or normalize == "learned"
    lengths = _lengths(run_dir, lengths)
    key = _flow_key(method, p, reference, normalize, lengths, raw, check_smooth(smooth))
    return run_dir / "cache" / "flow" / (f"{method}-{key}" if reference == "consecutive" else f"{method}-{reference}-{key}")


def _lengths(run_dir: Path, lengths) -> tuple[int, ...]:
    if lengths is None:
        lengths = preprocess.load_config(run_dir).lengths if (run_dir / "preprocess.json").is_file() else settings.LENGTHS
    return tuple(int(x) for x in lengths)


def run(
    run_dir: str | os.PathLike,
    method: str = DEFAULT_METHOD,
    lengths: tuple[int, ...] | None = None,
    normalize: str | float = "frame",
    raw: bool = False,
    jobs: int | None = None,
    progress: bool = True,
    force: bool = False,
    reference: str = "consecutive",
    primary: bool = True,
    smooth: float = 0.0,
    **params,
):
    """Flow and Munsell coding of every pre-processed clip of ``run_dir`` at each temporal
    length (default: the pre-processing's, 65 and 129 frames -> 64 and 128 fields).

    ``reference``: ``"consecutive"`` (the paper's) or ``"onset"`` (ours; :data:`REFERENCES`);
    ``smooth``: a Gaussian blur of every field, sigma in px (:func:`compute`).
    ``normalize``: the Munsell scaling, ``"frame"``, ``"clip"``, a fixed scale in px, or
    ``"learned"`` (then the raw flow is stored and each fold codes it with the scale it learned
    from its training clips: :func:`learn_scale`, :func:`load_munsell`).

    Each clip's result is cached in :func:`folder` (``munsell64``, ``munsell128`` uint8 and, with
    ``raw=True``, ``flow64``/``flow128`` float16; ``magnitude*``: each field's peak magnitude in
    px, the scale that per-frame coding divides by; ``robust*``: its 99th percentile) under the
    pre-processed clip's content hash, so a re-run skips finished clips and an interrupted run
    resumes; another setting is another folder, never mixed with this one.  Writes
    ``manifest.csv`` and ``flow.json`` into that folder and, with ``primary=True`` (the flow
    stage of notebook 02), also as the run's ``flow_manifest.csv`` and ``flow.json``.
    """
    import pandas as pd
    from joblib import delayed

    from mexpr import _io

    run_dir = Path(run_dir)
    manifest = preprocess.load_manifest(run_dir)
    p = method_params(method, params)
    normalize = check_scaling(normalize)
    raw = raw or normalize == "learned"
    lengths = _lengths(run_dir, lengths)
    smooth = check_smooth(smooth)
    out_dir = folder(run_dir, method, reference, normalize, lengths, raw, smooth, **params)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, todo = [], []
    for rec in manifest.to_dict("records"):
        row = {k: rec[k] for k in ("subject_id", "clip", "dataset", "label")}
        if rec["status"] != "processed":
            row.update(status="skipped", reason=f"preprocessing skipped: {rec['reason']}", cache="", cached=False)
        else:
            name = Path(rec["cache"]).name
            target = out_dir / name
            row.update(status="processed", reason="", cache=str(target.relative_to(run_dir)), cached=target.is_file() and not force)
            if not row["cached"]:
                todo.append((len(rows), rec, str(target)))
        rows.append(row)
    t0 = time.perf_counter()
    tasks = [delayed(_flow_clip)(str(run_dir), rec, method, p, reference, normalize, lengths, raw, target, smooth) for _, rec, target in todo]
    label = f"flow ({method}{', onset' if reference == 'onset' else ''})"
    for (i, _, _), res in zip(todo, _io.parallel(tasks, jobs, label, progress and bool(tasks))):
        rows[i]["seconds"] = round(res["seconds"], 3)
    out = pd.DataFrame(rows)
    summary = {
        "method": method,
        "params": p,
        "reference": reference,
        "smooth": smooth,
        "normalize": normalize,
        "lengths": list(lengths),
        "fields": [L - 1 for L in lengths],
        "raw": raw,
        "folder": str(out_dir.relative_to(run_dir)),
        "clips": len(out),
        "processed": int((out["status"] == "processed").sum()),
        "computed": len(todo),
        "skipped": int((out["status"] == "skipped").sum()),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    targets = [(out_dir / "manifest.csv", out_dir / "flow.json")]
    if primary:
        targets.append((run_dir / "flow_manifest.csv", run_dir / "flow.json"))
    for csv, js in targets:
        if not todo and js.is_file() and _same_clips(csv, out):
            continue  # nothing computed and the same clips: a cached call leaves the records as they are (readers never race a writer)
        _io.atomic_write_text(csv, out.to_csv(index=False))
        _io.atomic_write_text(js, json.dumps(summary, indent=2) + "\n")
    out.attrs["summary"] = summary
    return out


def _same_clips(csv: Path, out) -> bool:
    """Whether the manifest ``csv`` already lists ``out``'s clips with the same status and cache files."""
    import pandas as pd

    if not csv.is_file():
        return False
    old = pd.read_csv(csv, keep_default_na=False, dtype=str)
    cols = ["subject_id", "clip", "status", "cache"]
    return list(old.columns[: len(out.columns)]) == list(out.columns) and old[cols].equals(out[cols].astype(str))


def load_flow(run_dir: str | os.PathLike, row, fields: int = 64, kind: str = "munsell") -> np.ndarray:
    """One clip's cached Munsell images ``uint8 (fields, 112, 96, 3)`` (``kind="munsell"``) or
    raw flow ``float16 (fields, 112, 96, 2)`` (``kind="flow"``, if the run stored it)."""
    run_dir = Path(run_dir)
    if row["status"] != "processed":
        raise FlowError(f"{row['subject_id']}/{row['clip']} has no flow: {row['reason']}")
    with np.load(run_dir / row["cache"]) as z:
        name = f"{kind}{fields}"
        if name not in z.files:
            raise FlowError(f"{run_dir / row['cache']} has no {name!r} (has {sorted(z.files)}); run `python -m mexpr flow` with matching options")
        return z[name]


_STORED: dict[str, str | float] = {}


def _stored_normalize(folder: str):
    """The Munsell scaling a flow cache folder's files were coded with (its ``flow.json``; None
    while it has none).  Part of the folder's key, so it never changes for a folder: read once."""
    if folder not in _STORED:
        js = Path(folder) / "flow.json"
        if not js.is_file():
            return None
        _STORED[folder] = json.loads(js.read_text()).get("normalize")
    return _STORED[folder]


def mirror(flow: np.ndarray) -> np.ndarray:
    """The flow of the horizontally mirrored clip: ``(..., H, W, 2)`` flipped left-right with its
    horizontal component negated (a face's left-right mirror image: the flip augmentation of our
    ``mexpr`` input, applied to the flow field so that it needs no second flow computation)."""
    out = np.array(flow[..., ::-1, :], copy=True)
    out[..., 0] *= -1
    return out


def load_munsell(
    run_dir: str | os.PathLike,
    cache: str,
    fields: int,
    normalize: str | float,
    mirrored: bool = False,
    tsmooth: float = 0.0,
    global_motion: str = "keep",
) -> np.ndarray:
    """One clip's Munsell images ``uint8 (fields, 112, 96, 3)`` coded with ``normalize``
    (``"frame"``, ``"clip"`` or px): the stored images when the flow stage coded them that way,
    else coded now from the stored raw flow (a :class:`FlowError` if it kept none).
    ``mirrored``: of the mirrored clip (:func:`mirror`); ``tsmooth``: smoothed along time first
    (:func:`smooth_time`); ``global_motion="affine"``: its global motion removed first
    (:func:`remove_global`); these need the raw flow."""
    run_dir = Path(run_dir)
    normalize = check_scaling(normalize)
    tsmooth = check_smooth(tsmooth)
    global_motion = check_global_motion(global_motion)
    path = run_dir / cache
    stored = _stored_normalize(str(path.parent))
    recode = mirrored or tsmooth or global_motion != "keep"
    with np.load(path) as z:
        if stored == normalize and f"munsell{fields}" in z.files and not recode:
            return z[f"munsell{fields}"]
        if f"flow{fields}" not in z.files:
            asked = (
                [f"coded with {normalize!r}"]
                + (["mirrored"] if mirrored else [])
                + ([f"smoothed over {tsmooth:g} fields"] if tsmooth else [])
                + ([f"rid of its {global_motion} global motion"] if global_motion != "keep" else [])
            )
            raise FlowError(
                f"{path} holds Munsell images coded with {stored!r} and no raw flow, so it cannot be {' or '.join(asked)}; "
                "run the flow stage with raw=True (CLI: --raw) or with this scaling"
            )
        fl = z[f"flow{fields}"].astype(np.float32)
    return code(fl, {"normalize": normalize, "tsmooth": tsmooth, "global_motion": global_motion}, mirrored)


def load_coded(run_dir: str | os.PathLike, cache: str, fields: int, spec: dict, mirrored: bool = False) -> np.ndarray:
    """One clip's Munsell images coded as a stream's flow spec says (``spec``: its ``normalize`` and,
    when set, ``tsmooth`` and ``global_motion``, as :func:`mexpr.train.fold_flow` gives it):
    :func:`load_munsell` with the spec's settings, so training samples and test clips are coded by one call."""
    return load_munsell(
        run_dir,
        cache,
        fields,
        spec["normalize"],
        mirrored=mirrored,
        tsmooth=spec.get("tsmooth", 0.0),
        global_motion=spec.get("global_motion", "keep"),
    )


@functools.cache
def _clip_peak(path: str, version: tuple, fields: int, global_motion: str) -> float:
    """One clip's largest :func:`robust_peak` (px), what :func:`learn_scale` takes a percentile of:
    read from the flow file's statistics, or measured on its raw flow without its global motion.
    Kept for the process's life per file version (``version``: its mtime and size), since every
    fold's scale reads most of the same clips again (the same numbers, a fraction of the time)."""
    with np.load(path) as z:
        if global_motion != "keep":
            if f"flow{fields}" not in z.files:
                raise FlowError(f"{path} keeps no raw flow, so the peaks of its local motion cannot be measured; run the flow stage with raw=True")
            return float(robust_peak(remove_global(z[f"flow{fields}"])).max())
        if f"robust{fields}" not in z.files:
            raise FlowError(f"{path} has no 'robust{fields}' statistics (made by an older flow stage); recompute it with force=True")
        return float(z[f"robust{fields}"].max())


def learn_scale(run_dir: str | os.PathLike, caches, fields: int, q: float = 95.0, global_motion: str = "keep") -> float:
    """The Munsell scale (px) learned from training clips (``caches``: their flow files): the
    ``q``-th percentile over the clips of each clip's largest :func:`robust_peak`.  Colours then
    keep each clip's amplitude (a faint expression stays pale, a strong one saturates) instead of
    stretching every field to full colour; only a fold's training clips may be passed.
    ``global_motion="affine"``: the peaks of the flow without its global motion
    (:func:`remove_global`, read from the raw flow), the flow the colours will show."""
    run_dir = Path(run_dir)
    global_motion = check_global_motion(global_motion)

    def peak(c) -> float:
        path = run_dir / c
        st = path.stat()
        return _clip_peak(str(path), (st.st_mtime_ns, st.st_size), int(fields), global_motion)

    from mexpr import _io

    peaks = _io.thread_map(peak, caches)
    if not peaks:
        raise FlowError("a Munsell scale cannot be learned from no training clip")
    scale = float(np.percentile(peaks, q))
    if not np.isfinite(scale) or scale <= 0:
        raise FlowError(f"the training clips' flow has no motion to learn a Munsell scale from (peak {scale!r} px)")
    return scale


def load_manifest(run_dir: str | os.PathLike):
    """``<run_dir>/flow_manifest.csv`` (a clear error if the flow stage has not run)."""
    import pandas as pd

    path = Path(run_dir) / "flow_manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m mexpr flow --run {run_dir}` first")
    return pd.read_csv(path, keep_default_na=False)
