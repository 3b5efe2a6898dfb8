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

# --------------------------------------------------------------------------------------------
# estimators

#: Each method's tunable parameters and their defaults, tuned for sub-pixel facial motion on
#: 96 x 112 crops (benchmarks/flow.py; docs/benchmarks.md has the search and its numbers).
METHODS: dict[str, dict] = {
    # Zach et al. 2007 / Wedel et al. 2009 (OpenCV optflow.DualTVL1OpticalFlow).  Motion is
    # below ~2 px, so 3 pyramid levels are enough (OpenCV's default is 5).
    "tvl1": {"tau": 0.25, "lambda_": 0.15, "theta": 0.3, "nscales": 3, "warps": 5, "epsilon": 0.01, "scale_step": 0.5, "median_filtering": 5},
    # Kroeger et al. 2016 (cv2.DISOpticalFlow): dense inverse search + variational refinement.
    "dis": {"finest_scale": 0, "patch_size": 8, "patch_stride": 3, "grad_descent_iterations": 25, "variational_iterations": 5, "alpha": 20.0, "delta": 5.0, "gamma": 10.0},
    # Farneback 2003 (cv2.calcOpticalFlowFarneback): polynomial expansion.
    "farneback": {"pyr_scale": 0.5, "levels": 2, "winsize": 9, "iterations": 3, "poly_n": 5, "poly_sigma": 1.1},
    # Weinzaepfel et al. 2013 (OpenCV optflow DeepFlow): variational with deep matching; OpenCV
    # exposes no parameters.
    "deepflow": {},
}
DEFAULT_METHOD = "dis"


class FlowError(ValueError):
    """Bad input to the flow estimators or the colour coding."""


def _params(method: str, overrides: dict) -> dict:
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


def compute(frames, method: str = DEFAULT_METHOD, **params) -> np.ndarray:
    """Dense optical flow between consecutive frames: ``float32 (T-1, H, W, 2)``, (u, v) in
    pixels per frame, u along x (right), v along y (down).

    ``frames``: ``uint8 (T, H, W, 3)`` RGB or ``(T, H, W)`` grey, T >= 2.  ``method``: one of
    :data:`METHODS`; keyword arguments override that method's parameters.
    """
    p = _params(method, params)
    grey = _as_grey_frames(frames)
    if len(grey) < 2:
        raise FlowError(f"flow needs at least 2 frames, got {len(grey)}")
    calc = _estimator(method, p)
    out = np.empty(grey.shape + (2,), np.float32)[:-1]
    for t in range(len(grey) - 1):
        out[t] = calc(grey[t], grey[t + 1], None)
    if not np.isfinite(out).all():
        raise FlowError(f"{method} returned non-finite flow")
    return out


# --------------------------------------------------------------------------------------------
# Munsell (Middlebury) colour coding


@functools.lru_cache(maxsize=1)
def colour_wheel() -> np.ndarray:
    """The Middlebury colour wheel, ``(55, 3)`` float32 RGB 0..255: RY 15, YG 6, GC 4, CB 11,
    BM 13, MR 6 hues (``makeColorwheel`` of Baker et al.'s reference code)."""
    segments = [(15, (0, 1)), (6, (1, 0)), (4, (1, 2)), (11, (2, 1)), (13, (2, 0)), (6, (0, 2))]
    # (n, (full channel, ramping channel)); the ramp rises when the ramping channel comes next in
    # R->Y->G->C->B->M->R, and falls otherwise.
    wheel = []
    rising = [True, False, True, False, True, False]
    for (n, (full, ramp)), up in zip(segments, rising):
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
    return [np.ascontiguousarray(deficit[:, c], np.float32) for c in range(3)], [
        np.ascontiguousarray(step[:, c], np.float32) for c in range(3)
    ]


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
    fixed = None
    if normalize == "clip":
        fixed = float(cv2.magnitude(*cv2.split(np.ascontiguousarray(flow).reshape(T * H, W, 2))).max()) if flow.size else 0.0
    elif isinstance(normalize, (int, float)) and not isinstance(normalize, bool) and normalize > 0:
        fixed = float(normalize)
    elif normalize != "frame":
        raise FlowError(f"normalize must be 'frame', 'clip' or a positive number of px, not {normalize!r}")
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
    # (full, ramp) -> (segment start, length, rising)
    starts = np.cumsum([0, 15, 6, 4, 11, 13])
    table = {(0, 1): (0, True), (1, 0): (1, False), (1, 2): (2, True), (2, 1): (3, False), (2, 0): (4, True), (0, 2): (5, False)}
    lengths = np.array([15, 6, 4, 11, 13, 6])
    seg = np.zeros(len(w), int)
    rising = np.zeros(len(w), bool)
    for (fc, rc), (sg, up) in table.items():
        sel = (full == fc) & (ramp == rc)
        seg[sel], rising[sel] = sg, up
    pos = np.where(rising, level, 1.0 - level) * lengths[seg]
    fk = starts[seg] + pos
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
