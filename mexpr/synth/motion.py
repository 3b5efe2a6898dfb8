"""The motion of a synthetic clip, known exactly: Action-Unit displacement fields anchored on the
68 landmarks, weighted by an onset → apex → offset profile, plus the head's rigid drift; saved
beside the frames as ``motion.npz`` (:class:`Motion`) and expanded to dense ground-truth flow
(:func:`ground_truth_flow`)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mexpr import _io
from mexpr.synth.identity import FRAME_H, FRAME_W, Identity
from mexpr.synth.plans import ClipPlan, Difficulty, au_sides

#: Motion fields are stored at this stride (the fields are smooth; rendering uses the same
#: upsampled fields, so the stored ground truth is exactly the motion that was rendered).
FIELD_STRIDE = 2

# Action Units.  Each AU is a set of Gaussian blobs anchored on landmarks (iBUG 68-point indices).
# A blob: (anchor landmark indices, anchor offset (lateral, down) in IOD units,
#          direction (lateral = away from the face midline, down), sigma in IOD units, weight).

_Blob = tuple[tuple[int, ...], tuple[float, float], tuple[float, float], float, float]
_R, _L, _M = "R", "L", "M"  # the subject's right (image left), left (image right), midline

_AU_BLOBS: dict[str, list[tuple[str, _Blob]]] = {
    "1": [(_R, ((20, 21), (0, 0), (0.0, -1.0), 0.2, 1.0)), (_L, ((22, 23), (0, 0), (0.0, -1.0), 0.2, 1.0))],
    "2": [(_R, ((17, 18), (0, 0), (0.15, -1.0), 0.2, 1.0)), (_L, ((25, 26), (0, 0), (0.15, -1.0), 0.2, 1.0))],
    "4": [
        (_R, ((19, 20, 21), (0, 0), (-0.6, 0.8), 0.22, 1.0)),
        (_L, ((22, 23, 24), (0, 0), (-0.6, 0.8), 0.22, 1.0)),
    ],
    "5": [(_R, ((37, 38), (0, 0), (0.0, -1.0), 0.1, 1.0)), (_L, ((43, 44), (0, 0), (0.0, -1.0), 0.1, 1.0))],
    "6": [
        (_R, ((40, 41), (0, 0.35), (0.15, -1.0), 0.28, 1.0)),
        (_L, ((46, 47), (0, 0.35), (0.15, -1.0), 0.28, 1.0)),
        (_R, ((40, 41), (0, 0), (0.0, -1.0), 0.1, 0.5)),
        (_L, ((46, 47), (0, 0), (0.0, -1.0), 0.1, 0.5)),
    ],
    "7": [
        (_R, ((40, 41), (0, 0), (0.0, -1.0), 0.1, 1.0)),
        (_L, ((46, 47), (0, 0), (0.0, -1.0), 0.1, 1.0)),
        (_R, ((37, 38), (0, 0), (0.0, 1.0), 0.1, 0.3)),
        (_L, ((43, 44), (0, 0), (0.0, 1.0), 0.1, 0.3)),
    ],
    "9": [
        (_R, ((31,), (0, 0), (0.2, -1.0), 0.18, 1.0)),
        (_L, ((35,), (0, 0), (0.2, -1.0), 0.18, 1.0)),
        (_M, ((28, 29), (0, 0), (0.0, -1.0), 0.15, 0.5)),
        (_R, ((21,), (0, 0), (-0.3, 1.0), 0.15, 0.4)),
        (_L, ((22,), (0, 0), (-0.3, 1.0), 0.15, 0.4)),
    ],
    "10": [
        (_R, ((50,), (0, 0), (0.0, -1.0), 0.16, 1.0)),
        (_L, ((52,), (0, 0), (0.0, -1.0), 0.16, 1.0)),
        (_M, ((51,), (0, 0), (0.0, -1.0), 0.14, 0.6)),
    ],
    "12": [(_R, ((48,), (0, 0), (0.6, -0.8), 0.2, 1.0)), (_L, ((54,), (0, 0), (0.6, -0.8), 0.2, 1.0))],
    "14": [(_R, ((48,), (0, 0), (0.9, 0.1), 0.15, 1.0)), (_L, ((54,), (0, 0), (0.9, 0.1), 0.15, 1.0))],
    "15": [(_R, ((48,), (0, 0), (0.1, 1.0), 0.2, 1.0)), (_L, ((54,), (0, 0), (0.1, 1.0), 0.2, 1.0))],
    "17": [(_M, ((57, 8), (0, 0), (0.0, -1.0), 0.28, 1.0)), (_M, ((56, 57, 58), (0, 0), (0.0, -1.0), 0.15, 0.6))],
    "20": [(_R, ((48,), (0, 0), (1.0, 0.25), 0.2, 1.0)), (_L, ((54,), (0, 0), (1.0, 0.25), 0.2, 1.0))],
    "23": [
        (_R, ((48,), (0, 0), (-1.0, 0.0), 0.13, 1.0)),
        (_L, ((54,), (0, 0), (-1.0, 0.0), 0.13, 1.0)),
        (_M, ((51,), (0, 0), (0.0, 1.0), 0.12, 0.4)),
        (_M, ((57,), (0, 0), (0.0, -1.0), 0.12, 0.4)),
    ],
    "24": [(_M, ((51, 62), (0, 0), (0.0, 1.0), 0.14, 1.0)), (_M, ((57, 66), (0, 0), (0.0, -1.0), 0.14, 1.0))],
    "45": [(_R, ((37, 38), (0, 0), (0.0, 1.0), 0.1, 1.0)), (_L, ((43, 44), (0, 0), (0.0, 1.0), 0.1, 1.0))],  # blink
    # talking (the long videos' distractor, mexpr.synth.longvideo): lips part, jaw drops
    "25": [(_M, ((51, 62), (0, 0), (0.0, -1.0), 0.12, 0.4)), (_M, ((57, 66), (0, 0), (0.0, 1.0), 0.13, 1.0))],
    "26": [
        (_M, ((57, 66), (0, 0), (0.0, 1.0), 0.2, 1.0)),
        (_M, ((8,), (0, 0), (0.0, 1.0), 0.35, 0.9)),
        (_R, ((5, 6), (0, 0), (0.0, 1.0), 0.25, 0.5)),
        (_L, ((10, 11), (0, 0), (0.0, 1.0), 0.25, 0.5)),
    ],
}


def _half_grid(h: int, w: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution coordinates of the centres of a stride-``stride`` grid (cv2.resize convention)."""
    ys = (np.arange(h // stride) + 0.5) * stride - 0.5
    xs = (np.arange(w // stride) + 0.5) * stride - 0.5
    return np.meshgrid(xs, ys)


def au_field(au: str, landmarks: np.ndarray, face_scale: float, stride: int = FIELD_STRIDE) -> np.ndarray:
    """Displacement field of one AU at unit intensity: ``(H/stride, W/stride, 2) float32``, frame px,
    peak magnitude = 1 crop px × ``face_scale``."""
    name, sides = au_sides(au)
    if name not in _AU_BLOBS:
        raise ValueError(f"unknown AU {au!r}; known: {sorted(_AU_BLOBS, key=int)}")
    pts = landmarks.astype(np.float64)
    le, re_ = pts[36:42].mean(0), pts[42:48].mean(0)
    iod = float(np.linalg.norm(re_ - le))
    u = (re_ - le) / iod  # along the eye line, towards the subject's left (image right)
    d = np.array([-u[1], u[0]])  # down the face
    mid = (le + re_) / 2
    gx, gy = _half_grid(FRAME_H, FRAME_W, stride)
    field = np.zeros(gx.shape + (2,), np.float64)
    for side, (idx, (off_lat, off_down), (lat, down), sigma, weight) in _AU_BLOBS[name]:
        if side != _M and side not in sides:
            continue  # unilateral AU: the other side's blobs
        anchor = pts[list(idx)].mean(0)
        side_sign = 1.0 if float((anchor - mid) @ u) >= 0 else -1.0  # lateral = away from midline
        anchor = anchor + (off_lat * side_sign * u + off_down * d) * iod
        vec = lat * side_sign * u + down * d
        vec = vec / max(np.linalg.norm(vec), 1e-9)
        sig = sigma * iod
        g = np.exp(-((gx - anchor[0]) ** 2 + (gy - anchor[1]) ** 2) / (2 * sig * sig))
        g[g < 1e-3] = 0.0
        field += weight * g[..., None] * vec
    peak = np.sqrt((field**2).sum(-1)).max()
    if peak > 0:
        field *= face_scale / peak
    return field.astype(np.float32)


def profile(t: np.ndarray, on: float, apex: float, off: float) -> np.ndarray:
    """An Action Unit's intensity over time: a raised cosine from 0 at ``on`` to 1 at ``apex`` and
    back to 0 at ``off`` (``t`` and the three times in frames, any float array; 0 outside
    [on, off]).  The clips' shape, shared with the long videos (:mod:`mexpr.synth.longvideo`)."""
    return _profile(np.asarray(t, dtype=np.float64), float(on), float(apex), float(off))


def _profile(t: np.ndarray, on: float, apex: float, off: float) -> np.ndarray:
    """Raised-cosine onset -> apex -> offset profile, 0 outside [on, off], 1 at apex."""
    out = np.zeros_like(t, dtype=np.float64)
    rise = (t >= on) & (t <= apex)
    fall = (t > apex) & (t <= off)
    out[rise] = 0.5 - 0.5 * np.cos(np.pi * (t[rise] - on) / max(apex - on, 1e-9))
    out[fall] = 0.5 + 0.5 * np.cos(np.pi * (t[fall] - apex) / max(off - apex, 1e-9))
    return out


@dataclass
class Motion:
    """The exact motion of a synthetic clip (what ``motion.npz`` holds).

    A reference point ``p`` of the identity image is at ``phi_t(p) = p + D_t(p)`` in frame ``t``:
    ``D_t(p) = mask(p) * (A_t @ [p + E_t(p), 1] - p)`` with ``E_t = sum_k a[t, k] * F_k``
    (AU fields, frame px) and ``A_t`` the head's rigid pose (2×3).  Fields are stored at
    ``stride`` and upsampled bilinearly, exactly as for rendering.
    """

    frame_numbers: np.ndarray  # (T,) int
    rigid: np.ndarray  # (T, 2, 3) float64
    au_names: np.ndarray  # (K,) str
    au_fields: np.ndarray  # (K, h, w, 2) float16
    au_intensity: np.ndarray  # (T, K) float32, crop px
    mask: np.ndarray  # (h, w) float16
    landmarks: np.ndarray  # (68, 2) float32 reference landmarks (frame px)
    face_scale: float
    onset_index: int
    apex_index: int
    offset_index: int
    stride: int = FIELD_STRIDE

    def save(self, path: str | os.PathLike) -> None:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        _io.save_npz(path, **{k: np.asarray(v) for k, v in d.items()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> Motion:
        path = Path(path)
        if path.is_dir():
            path = path / "motion.npz"
        with np.load(path, allow_pickle=False) as z:
            kw = {}
            for f in dataclasses.fields(cls):
                v = z[f.name]
                kw[f.name] = v.item() if v.ndim == 0 else v
        return cls(**kw)

    def landmarks_at(self, frame_number: int) -> np.ndarray:
        """Ground-truth landmarks ``(68, 2)`` in the frame with this file number (head pose applied)."""
        A = self.rigid[int(frame_number) - int(self.frame_numbers[0])]
        return self.landmarks @ A[:, :2].T + A[:, 2]

    # -- dense fields ------------------------------------------------------------------------
    def upsampled(self):
        """The AU basis fields and the head mask at full frame size (stored at ``stride``)."""
        import cv2

        size = (self.mask.shape[1] * self.stride, self.mask.shape[0] * self.stride)
        fields = [cv2.resize(f.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) for f in self.au_fields]
        mask = cv2.resize(self.mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
        return fields, mask

    def displacements(self):
        """Yield ``D_t`` ``(H, W, 2) float32`` for every frame (reference -> frame t)."""
        fields, mask = self.upsampled()
        h, w = mask.shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        for t in range(len(self.frame_numbers)):
            ex = np.zeros((h, w), np.float32)
            ey = np.zeros((h, w), np.float32)
            for k, f in enumerate(fields):
                a = float(self.au_intensity[t, k])
                if a:
                    ex += a * f[..., 0]
                    ey += a * f[..., 1]
            A = self.rigid[t].astype(np.float32)
            px, py = xx + ex, yy + ey
            dx = (A[0, 0] * px + A[0, 1] * py + A[0, 2] - xx) * mask
            dy = (A[1, 0] * px + A[1, 1] * py + A[1, 2] - yy) * mask
            yield np.stack([dx, dy], -1)

    def expression(self, t: int, blink: bool = False) -> np.ndarray:
        """The expression part ``E_t`` alone (no head motion; blinks only if ``blink``),
        ``(H, W, 2) float32``, frame px, in reference coordinates."""
        fields, _ = self.upsampled()
        out = np.zeros(fields[0].shape if fields else (FRAME_H, FRAME_W, 2), np.float32)
        for k, f in enumerate(fields):
            if blink or str(self.au_names[k]) != "45":
                out += float(self.au_intensity[t, k]) * f
        return out


def inverse_map(D: np.ndarray, iterations: int = 4) -> np.ndarray:
    """For each frame pixel x, the reference point p with p + D(p) = x (fixed-point iteration)."""
    import cv2

    h, w = D.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grid = np.stack([xx, yy], -1)
    p = grid - D
    for _ in range(iterations):
        Dp = cv2.remap(D, p[..., 0], p[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        p = grid - Dp
    return p


def ground_truth_flow(clip: str | os.PathLike | Motion, pairs: Sequence[int] | None = None) -> np.ndarray:
    """Dense ground-truth optical flow of a synthetic clip.

    For frame pair ``(t, t+1)``: the displacement of every pixel of frame ``t`` to frame ``t+1``,
    ``(len(pairs), H, W, 2) float32`` in frame px (u = x, v = y), for all pairs by default.
    ``clip`` is a clip folder (holding ``motion.npz``) or a :class:`Motion`.
    """
    import cv2

    motion = clip if isinstance(clip, Motion) else Motion.load(clip)
    n = len(motion.frame_numbers)
    wanted = list(range(n - 1)) if pairs is None else list(pairs)
    for t in wanted:
        if not 0 <= t < n - 1:
            raise IndexError(f"frame pair {t} out of range 0..{n - 2}")
    need = set(wanted) | {t + 1 for t in wanted}
    out = []
    prev = None
    for t, D in enumerate(motion.displacements()):
        if t - 1 in wanted and prev is not None:
            q = inverse_map(prev)
            diff = D - prev
            out.append(cv2.remap(diff, q[..., 0], q[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        prev = D if t in need else None
        if t >= max(need):
            break
    return np.stack(out)


def make_motion(plan: ClipPlan, ident: Identity, difficulty: Difficulty, fps: int, rng: np.random.Generator) -> Motion:
    n = plan.n_frames
    t = np.arange(n, dtype=np.float64)
    span = plan.offset_index - plan.onset_index
    names: list[str] = []
    fields: list[np.ndarray] = []
    intensity_cols: list[np.ndarray] = []
    lo, hi = difficulty.intensity_range
    clip_intensity = float(np.clip(rng.lognormal(math.log(difficulty.intensity_median), difficulty.intensity_sigma), lo, hi))
    for au in plan.aus:
        names.append(au)
        fields.append(au_field(au, ident.landmarks, ident.face_scale))
        on = plan.onset_index + rng.uniform(0, 0.15) * span
        off = plan.offset_index - rng.uniform(0, 0.15) * span
        apex = float(np.clip(plan.apex_index + rng.normal(0, 0.05) * span, on + 1, off - 1))
        intensity_cols.append(clip_intensity * rng.uniform(0.5, 1.0) * _profile(t, on, apex, off))
    if intensity_cols:
        # AUs that overlap add up: keep the clip's peak expression displacement within range
        apex_e = sum(c[plan.apex_index] * f.astype(np.float32) for c, f in zip(intensity_cols, fields))
        peak = float(np.sqrt((apex_e**2).sum(-1)).max()) / ident.face_scale
        if peak > hi:
            intensity_cols = [c * (hi / peak) for c in intensity_cols]
    if rng.random() < difficulty.blink_prob:
        names.append("45")
        fields.append(au_field("45", ident.landmarks, ident.face_scale))
        dur = 0.15 * fps  # a blink lasts ~150 ms
        start = rng.uniform(-dur / 2, n - dur / 2)
        intensity_cols.append(rng.uniform(2.5, 4.0) * _profile(t, start, start + dur * 0.4, start + dur))

    # head drift: smooth random walks of translation, rotation and scale
    def walk(amp):
        steps = rng.standard_normal(n + 20)
        path = np.convolve(np.cumsum(steps), np.ones(9) / 9, mode="valid")[:n]
        path = path - path[0]
        peak = np.abs(path).max()
        return path / peak * amp * rng.uniform(0.3, 1.0) if peak > 0 else path

    tx = walk(difficulty.head_drift * ident.face_scale)
    ty = walk(difficulty.head_drift * ident.face_scale)
    rot = np.radians(walk(difficulty.head_rotation_deg))
    sc = 1 + walk(difficulty.head_scale)
    c = ident.landmarks.mean(0).astype(np.float64)
    rigid = np.zeros((n, 2, 3))
    for i in range(n):
        R = sc[i] * np.array([[math.cos(rot[i]), -math.sin(rot[i])], [math.sin(rot[i]), math.cos(rot[i])]])
        rigid[i, :, :2] = R
        rigid[i, :, 2] = c + np.array([tx[i], ty[i]]) - R @ c
    import cv2

    stride = FIELD_STRIDE
    mask_small = cv2.resize(ident.mask, (FRAME_W // stride, FRAME_H // stride), interpolation=cv2.INTER_AREA)
    return Motion(
        frame_numbers=plan.first_number + np.arange(n),
        rigid=rigid,
        au_names=np.array(names, dtype="<U4"),
        au_fields=np.stack(fields).astype(np.float16) if fields else np.zeros((0, FRAME_H // stride, FRAME_W // stride, 2), np.float16),
        au_intensity=np.stack(intensity_cols, 1).astype(np.float32) if intensity_cols else np.zeros((n, 0), np.float32),
        mask=mask_small.astype(np.float16),
        landmarks=ident.landmarks,
        face_scale=float(ident.face_scale),
        onset_index=plan.onset_index,
        apex_index=plan.apex_index,
        offset_index=plan.offset_index,
    )
