"""A synthetic subject: a face made from real photographs (two of them warped onto a common
landmark shape and cross-dissolved), perturbed, recoloured, relit and composited on a plain lab
backdrop on the 640 × 480 canvas."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from mexpr.face import MIRROR_68, base_faces, normalise_shape
from mexpr.synth.plans import Difficulty

FRAME_W, FRAME_H = 640, 480
#: Jaw width (landmark 0 to 16) of a face in the 96×112 crop, px.  Used to express synthetic
#: motion amplitudes "at crop scale": frame px = crop px × (jaw width in frame / CROP_JAW_WIDTH).
CROP_JAW_WIDTH = 80.0


def _tps_map(dst_pts: np.ndarray, src_pts: np.ndarray, shape: tuple[int, int], stride: int = 8) -> np.ndarray:
    """Thin-plate spline backward map: for every pixel of an ``shape`` canvas, the source position.

    Fitted so that ``dst_pts`` (canvas) map to ``src_pts`` (source image).  Evaluated on a coarse
    grid and upsampled (the map is smooth).  Returns ``(H, W, 2) float32``.
    """
    import cv2

    n = len(dst_pts)
    d2 = ((dst_pts[:, None, :] - dst_pts[None, :, :]) ** 2).sum(-1)
    K = np.where(d2 > 0, d2 * np.log(d2 + 1e-12), 0.0)
    P = np.hstack([np.ones((n, 1)), dst_pts])
    L = np.zeros((n + 3, n + 3))
    L[:n, :n] = K + 1e-3 * np.eye(n)
    L[:n, n:] = P
    L[n:, :n] = P.T
    rhs = np.zeros((n + 3, 2))
    rhs[:n] = src_pts
    coef = np.linalg.solve(L, rhs)
    h, w = shape
    gy, gx = np.mgrid[0 : h + stride : stride, 0 : w + stride : stride].astype(np.float64)
    g = np.stack([gx.ravel(), gy.ravel()], 1)
    gd2 = ((g[:, None, :] - dst_pts[None, :, :]) ** 2).sum(-1)
    U = np.where(gd2 > 0, gd2 * np.log(gd2 + 1e-12), 0.0)
    mapped = U @ coef[:n] + np.hstack([np.ones((len(g), 1)), g]) @ coef[n:]
    coarse = mapped.reshape(gy.shape + (2,)).astype(np.float32)
    # coarse[i, j] is the map at pixel (j*stride, i*stride): resize with corner alignment
    full = cv2.resize(coarse, (coarse.shape[1] * stride, coarse.shape[0] * stride), interpolation=cv2.INTER_LINEAR)
    # cv2.resize aligns pixel centres; shift so that full[y, x] ~ map at (x, y)
    off = (stride - 1) / 2.0
    M = np.float32([[1, 0, -off], [0, 1, -off]])
    full = cv2.warpAffine(full, M, (full.shape[1], full.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(full[:h, :w])


@dataclass
class Identity:
    """A synthetic subject: reference image on the 640×480 canvas and its geometry."""

    image: np.ndarray  # (H, W, 3) float32 RGB 0..255
    landmarks: np.ndarray  # (68, 2) float32, frame px
    mask: np.ndarray  # (H, W) float32, 1 on the head (moves with it), 0 on the backdrop
    face_scale: float  # frame px per crop px
    jpeg_quality: int
    sources: tuple[str, ...]


def make_identity(seed: int, faces: str | os.PathLike | None = None, difficulty: Difficulty | None = None) -> Identity:
    """Build one synthetic subject from the bundled (and user) face photos, seeded."""
    import cv2

    difficulty = difficulty or Difficulty()
    bases = base_faces(str(faces) if faces else None)
    rng = np.random.default_rng([seed, 7])
    i, j = rng.choice(len(bases), size=2, replace=len(bases) < 2)
    alpha = float(rng.uniform(0.2, 0.8)) if i != j else 0.0
    flips = rng.random(2) < 0.5
    chosen = []
    for b, flip in ((bases[i], flips[0]), (bases[j], flips[1])):
        img, pts = b.image, b.landmarks
        if flip:
            img = img[:, ::-1]
            pts = pts.copy()
            pts[:, 0] = img.shape[1] - 1 - pts[:, 0]
            pts = pts[MIRROR_68]
        chosen.append((np.ascontiguousarray(img), pts.astype(np.float64), b.name + (" (mirrored)" if flip else "")))

    shape = (1 - alpha) * normalise_shape(chosen[0][1]) + alpha * normalise_shape(chosen[1][1])
    shape = shape.copy()
    # identity shape modes (units: jaw width)
    shape[:, 1] *= 1 + rng.uniform(-0.06, 0.06)  # face height
    eyes = np.r_[17:27, 36:48]
    shape[eyes, 0] *= 1 + rng.uniform(-0.06, 0.06)  # eye spacing
    nose = np.r_[31:36]
    shape[nose, 1] += rng.uniform(-0.03, 0.03)  # nose length
    mouth = np.r_[48:68]
    mc = shape[mouth].mean(0)
    shape[mouth, 0] = mc[0] + (shape[mouth, 0] - mc[0]) * (1 + rng.uniform(-0.1, 0.1))  # mouth width
    shape[mouth, 1] += rng.uniform(-0.025, 0.025)
    shape[0:17, 0] *= 1 + rng.uniform(-0.05, 0.05)  # jaw width
    jaw_px = float(rng.uniform(215, 265))
    roll = math.radians(rng.uniform(-3, 3))
    c, s = math.cos(roll), math.sin(roll)
    centre = np.array([FRAME_W / 2 + rng.uniform(-25, 25), 190 + rng.uniform(-12, 12)])
    target = (shape * jaw_px) @ np.array([[c, s], [-s, c]]) + centre

    # anchors far from the face keep the warp a similarity transform out there
    ring = np.array([[math.cos(a), math.sin(a)] for a in np.linspace(0, 2 * math.pi, 16, endpoint=False)])
    layers = []
    for img, pts, _ in chosen:
        M, _ = cv2.estimateAffinePartial2D(target.astype(np.float32), pts.astype(np.float32))
        anchors_dst = centre + ring * jaw_px * 1.6
        anchors_src = anchors_dst @ M[:, :2].T + M[:, 2]
        mp = _tps_map(np.vstack([target, anchors_dst]), np.vstack([pts, anchors_src]), (FRAME_H, FRAME_W))
        layers.append(cv2.remap(img, mp[..., 0], mp[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101))
    face = (1 - alpha) * layers[0] + alpha * layers[1]

    # recolour in CIELAB and relight with a linear light gradient
    lab = cv2.cvtColor(np.clip(face / 255.0, 0, 1).astype(np.float32), cv2.COLOR_RGB2Lab)
    lab[..., 0] = lab[..., 0] * rng.uniform(0.85, 1.1) + rng.uniform(-4, 4)
    lab[..., 1] += rng.uniform(-4, 6)
    lab[..., 2] += rng.uniform(-5, 8)
    face = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB) * 255.0
    yy, xx = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    light = 1 + rng.uniform(0.0, 0.25) * ((xx - centre[0]) * math.cos(ang) + (yy - centre[1]) * math.sin(ang)) / jaw_px
    face = face * light[..., None]

    # head + neck mask, feathered
    mask = np.zeros((FRAME_H, FRAME_W), np.float32)
    brow_y = target[17:27, 1].min()
    chin = target[8]
    cx = target[0:17, 0].mean()
    cy = (brow_y + chin[1]) / 2 - 0.12 * jaw_px
    axes = (int(0.62 * jaw_px), int((chin[1] - brow_y) * 0.5 + 0.38 * jaw_px))
    cv2.ellipse(mask, (int(cx), int(cy)), axes, math.degrees(roll), 0, 360, 1.0, -1)
    neck_w = int(0.32 * jaw_px)
    cv2.rectangle(mask, (int(chin[0]) - neck_w, int(chin[1] - 0.2 * jaw_px)), (int(chin[0]) + neck_w, FRAME_H), 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 0.04 * jaw_px)

    # lab backdrop: a plain light wall with a gentle gradient and faint texture
    base = rng.uniform(150, 215) + rng.uniform(-12, 12, size=3)
    grad = 1 + rng.uniform(-0.12, 0.12) * (yy - FRAME_H / 2) / FRAME_H
    texture = cv2.GaussianBlur(rng.standard_normal((FRAME_H, FRAME_W)).astype(np.float32), (0, 0), 6) * 12
    backdrop = base[None, None, :] * grad[..., None] + texture[..., None]
    image = mask[..., None] * face + (1 - mask[..., None]) * backdrop
    lo, hi = difficulty.jpeg_quality
    return Identity(
        image=np.clip(image, 0, 255).astype(np.float32),
        landmarks=target.astype(np.float32),
        mask=mask,
        face_scale=jaw_px / CROP_JAW_WIDTH,
        jpeg_quality=int(rng.integers(lo, hi + 1)),
        sources=tuple(c[2] for c in chosen),
    )
