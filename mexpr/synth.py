"""Synthetic CASME I / CASME II datasets with known ground-truth motion (docs/DESIGN.md §4).

A fresh machine has no CASME data (it is licensed by its authors), so this module writes stand-in
datasets *in the real formats* (frame folders of 640×480 JPEGs and the coding sheet as ``.xlsx``
with the real column names and quirks), so that the same loader, preprocessing and training code
runs on both.  Results on synthetic data show that the pipeline works, not what CASME gives.

How a clip is made
------------------
1. **Identity.** Each subject is a distinct face made from real photographs that ship inside
   installed packages (scikit-image's *astronaut*, matplotlib's *Grace Hopper*; plus an optional
   folder of the user's photos): two photos, possibly mirrored, are warped onto a common
   landmark shape with a thin-plate spline and cross-dissolved, the shape is perturbed (face height,
   eye spacing, nose length, mouth width, jaw), recoloured (CIELAB), relit (a light gradient),
   rescaled and composited onto a plain lab backdrop.
2. **Micro-expression.** Action-Unit-like displacement fields anchored on the 68 landmarks
   (brows, lids, cheeks, nose, lips, chin) are weighted by an onset → apex → offset profile.
   Emotion → AU recipes follow FACS practice with per-clip partial AU sets, shared AUs and
   near-threshold intensities, so classes overlap as in real data.  Peak displacements are about
   a pixel or less at the 96×112 crop scale.
3. **Nuisances.** Head drift (translation, rotation, scale), blinks, flicker, sensor noise and JPEG
   compression; clip lengths near the real ones (CASME II mean 66.8 frames at 200 fps, CASME I
   22 frames at 60 fps).
4. **Ground truth.** Every frame is rendered by warping one reference image, so the dense motion
   between any two frames is known exactly.  It is saved beside the frames, factorised, in
   ``motion.npz`` (rigid head pose per frame, AU basis fields, AU intensities per frame);
   :func:`ground_truth_flow` expands it to the dense ``(T-1, H, W, 2)`` flow of every frame pair.

Everything is seeded: the same seed writes byte-identical files.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mexpr import _io
from mexpr.datasets import FPS, scaled_counts
from mexpr.face import MIRROR_68, base_faces, normalise_shape

FRAME_W, FRAME_H = 640, 480
#: Jaw width (landmark 0 to 16) of a face in the 96×112 crop, px.  Used to express synthetic
#: motion amplitudes "at crop scale": frame px = crop px × (jaw width in frame / CROP_JAW_WIDTH).
CROP_JAW_WIDTH = 80.0
#: Motion fields are stored at this stride (the fields are smooth; rendering uses the same
#: upsampled fields, so the stored ground truth is exactly the motion that was rendered).
FIELD_STRIDE = 2
GENERATOR_VERSION = 1

# --------------------------------------------------------------------------------------------
# dataset formats


@dataclass(frozen=True)
class _Format:
    name: str
    n_subjects: int
    sheet_header: tuple[str, ...]
    fields: tuple[str | None, ...]  # which value goes in each column (None: blank)


_FORMATS = {
    "casme2": _Format(
        "casme2",
        26,
        ("Subject", "Filename", "", "OnsetFrame", "ApexFrame", "OffsetFrame", "", "Action Units", "Estimated Emotion"),
        ("subject", "filename", None, "onset", "apex", "offset", None, "aus", "emotion"),
    ),
    "casme1": _Format(
        "casme1",
        19,
        ("Subject", "Filename", "", "OnsetF", "ApexF1", "ApexF2", "OffsetF", "", "AU", "Emotion"),
        ("subject", "filename", None, "onset", "apex", "apex2", "offset", None, "aus", "emotion"),
    ),
}
#: The datasets the generator writes, in their real formats.
DATASETS = tuple(_FORMATS)

# --------------------------------------------------------------------------------------------
# difficulty


@dataclass(frozen=True)
class Difficulty:
    """The knobs that make the synthetic task easy or hard (all amplitudes in px at crop scale).

    The default is calibrated so that a simple hand-crafted check (per-region mean optical flow +
    linear SVM, subject-independent folds; ``benchmarks/synth_difficulty.py``) lands near the
    50–60 % that hand-crafted features reach on CASME I/II (the paper's Table 4).
    """

    intensity_median: float = 0.35  # per-clip AU peak displacement, median (lognormal)
    intensity_sigma: float = 0.5  # lognormal sigma
    intensity_range: tuple[float, float] = (0.1, 1.3)
    au_dropout: float = 1.4  # multiplies the chance of dropping each AU of the recipe
    other_au_prob: float = 0.4  # chance of one extra AU from outside the recipe
    head_drift: float = 1.0  # largest head translation over a clip
    head_rotation_deg: float = 0.5
    head_scale: float = 0.004
    blink_prob: float = 0.25
    noise_sigma: tuple[float, float] = (1.0, 2.5)  # grey levels
    flicker: float = 0.012  # relative brightness amplitude
    jpeg_quality: tuple[int, int] = (82, 95)


DIFFICULTIES = {
    "easy": Difficulty(intensity_median=1.0, intensity_range=(0.5, 2.0), au_dropout=0.2, other_au_prob=0.0, head_drift=0.3, blink_prob=0.0),
    "default": Difficulty(),
    # the first default, before calibration (simple check: 69.5 % accuracy, too easy; docs/benchmarks.md)
    "moderate": Difficulty(intensity_median=0.45, au_dropout=1.0, other_au_prob=0.25, head_drift=0.8),
    "hard": Difficulty(intensity_median=0.25, au_dropout=1.8, other_au_prob=0.5, head_drift=1.4),
}

# --------------------------------------------------------------------------------------------
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
}

#: Emotion -> [(AU, probability)].  FACS-style prototypes (docs/DESIGN.md §4) with partial sets: each
#: AU of the recipe appears with its probability, so e.g. a disgust clip may show AU4 alone and
#: look like "others" or "tense".  ``"L14"``: unilateral (subject's left).
EMOTION_AUS: dict[str, list[tuple[str, float]]] = {
    "happiness": [("12", 0.9), ("6", 0.5), ("7", 0.15)],
    "surprise": [("1", 0.8), ("2", 0.8), ("5", 0.3)],
    "disgust": [("4", 0.55), ("9", 0.45), ("10", 0.35), ("7", 0.2)],
    "sadness": [("1", 0.55), ("4", 0.55), ("15", 0.55), ("17", 0.3)],
    "fear": [("1", 0.6), ("2", 0.45), ("4", 0.55), ("20", 0.45), ("5", 0.3)],
    "repression": [("14", 0.45), ("17", 0.5), ("24", 0.45), ("15", 0.15)],
    "tense": [("4", 0.55), ("7", 0.45), ("23", 0.35), ("24", 0.2)],
    "contempt": [("L14", 0.8), ("R12", 0.35)],
    "others": [("4", 0.3), ("7", 0.2), ("17", 0.2), ("1", 0.15), ("14", 0.15), ("24", 0.15), ("12", 0.1)],
}
_EXTRA_AUS = ("1", "2", "4", "7", "10", "12", "14", "15", "17", "24")


def _au_sides(au: str) -> tuple[str, set[str]]:
    """'L14' -> ('14', {'L'}); '12' -> ('12', {'L', 'R'})."""
    if au[0] in "LR":
        return au[1:], {au[0]}
    return au, {_L, _R}


# --------------------------------------------------------------------------------------------
# counts and plan


@dataclass
class _ClipPlan:
    index: int
    subject: int
    section: str  # folder path from the root to the subject folders ('' or 'CASME_A/Section A')
    filename: str
    emotion: str
    aus: list[str]
    n_frames: int  # frames in the folder
    first_number: int  # frame number of the folder's first frame
    onset_index: int  # positions in the folder
    apex_index: int
    offset_index: int
    apex_in_sheet: bool
    seed: int

    @property
    def onset(self) -> int:
        return self.first_number + self.onset_index

    @property
    def apex(self) -> int:
        return self.first_number + self.apex_index

    @property
    def offset(self) -> int:
        return self.first_number + self.offset_index

    def frame_name(self, dataset: str, number: int) -> str:
        if dataset == "casme1":
            pad = 3 if self.section.endswith("B") else 1
            return f"{self.filename}-{number:0{pad}d}.jpg"
        return f"img{number}.jpg"

    def au_code(self) -> str:
        return "+".join(self.aus)


def _plan(dataset: str, scale: float, seed: int, difficulty: Difficulty) -> list[_ClipPlan]:
    fmt = _FORMATS[dataset]
    fps = FPS[dataset]
    counts = scaled_counts(dataset, scale)
    rng = np.random.default_rng([seed, _DATASET_CODE[dataset], 0])
    emotions = [e for e, n in counts.items() for _ in range(n)]
    total = len(emotions)
    n_subj = min(fmt.n_subjects, max(4, math.ceil(total / 10)))
    order = rng.permutation(total)
    weights = rng.dirichlet(np.full(n_subj, 2.0))
    subjects = np.empty(total, dtype=int)
    subjects[order[:n_subj]] = np.arange(n_subj)  # every subject has at least one clip
    subjects[order[n_subj:]] = rng.choice(n_subj, size=total - n_subj, p=weights)
    n_section_a = max(1, round(n_subj * 7 / 19))
    plans = []
    used: set[tuple[int, str]] = set()
    for i, emotion in enumerate(emotions):
        subject = int(subjects[i]) + 1
        section = "CASME2_RAW_selected"
        if dataset == "casme1":
            section = "CASME_A/Section A" if subject <= n_section_a else "CASME_B/Section B"
        while True:
            ep = int(rng.integers(1, 20))
            k = int(rng.integers(1, 10 if dataset == "casme1" else 20))
            if dataset == "casme2":
                name = f"EP{ep:02d}_{k:02d}" + ("f" if rng.random() < 0.15 else "")
            else:
                name = f"EP{ep:02d}_{k}"
            if (subject, name.rstrip("f")) not in used:
                used.add((subject, name.rstrip("f")))
                break
        aus = _draw_aus(rng, emotion, difficulty)
        duration = float(np.clip(rng.lognormal(math.log(_MEDIAN_DURATION_S[dataset]), 0.3), 0.12, 0.5))
        span = max(4, int(round(duration * fps)))  # onset..offset frames - 1
        pre = int(rng.integers(1, 4)) if rng.random() < 0.3 else 0
        post = int(rng.integers(1, 4)) if rng.random() < 0.3 else 0
        onset_index = pre
        offset_index = pre + span
        apex_index = onset_index + int(round(span * rng.uniform(0.3, 0.6)))
        plans.append(
            _ClipPlan(
                index=i,
                subject=subject,
                section=section,
                filename=name,
                emotion=emotion,
                aus=aus,
                n_frames=offset_index + post + 1,
                first_number=int(rng.integers(1, 300)),
                onset_index=onset_index,
                apex_index=apex_index,
                offset_index=offset_index,
                apex_in_sheet=not (dataset == "casme2" and rng.random() < 0.08),
                seed=int(rng.integers(2**31)),
            )
        )
    plans.sort(key=lambda p: (p.subject, p.filename))
    for i, p in enumerate(plans):
        p.index = i
    return plans


_DATASET_CODE = {"casme1": 1, "casme2": 2}
#: Median onset..offset duration; reported means are 66.8 frames at 200 fps for CASME II and
#: 22.05 frames at 60 fps for CASME I (as computed in the MEB toolbox, tvaranka/meb).
_MEDIAN_DURATION_S = {"casme2": 0.30, "casme1": 0.34}


def _draw_aus(rng: np.random.Generator, emotion: str, difficulty: Difficulty) -> list[str]:
    recipe = EMOTION_AUS[emotion]
    chosen = []
    for au, p in recipe:
        keep = 1.0 - (1.0 - p) * difficulty.au_dropout
        if rng.random() < min(1.0, max(0.0, keep)):
            chosen.append(au)
    if not chosen:
        probs = np.array([p for _, p in recipe])
        chosen.append(recipe[int(rng.choice(len(recipe), p=probs / probs.sum()))][0])
    if rng.random() < difficulty.other_au_prob:
        extra = str(rng.choice(_EXTRA_AUS))
        if all(_au_sides(a)[0] != extra for a in chosen):
            chosen.append(extra)
    return sorted(chosen, key=lambda a: (int(_au_sides(a)[0]), a))


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


# --------------------------------------------------------------------------------------------
# motion model


def _half_grid(h: int, w: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution coordinates of the centres of a stride-``stride`` grid (cv2.resize convention)."""
    ys = (np.arange(h // stride) + 0.5) * stride - 0.5
    xs = (np.arange(w // stride) + 0.5) * stride - 0.5
    return np.meshgrid(xs, ys)


def au_field(au: str, landmarks: np.ndarray, face_scale: float, stride: int = FIELD_STRIDE) -> np.ndarray:
    """Displacement field of one AU at unit intensity: ``(H/stride, W/stride, 2) float32``, frame px,
    peak magnitude = 1 crop px × ``face_scale``."""
    name, sides = _au_sides(au)
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


def _make_motion(plan: _ClipPlan, ident: Identity, difficulty: Difficulty, fps: int, rng: np.random.Generator) -> Motion:
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


# --------------------------------------------------------------------------------------------
# rendering


@functools.lru_cache(maxsize=8)
def _identity_cached(seed: int, faces: str | None, difficulty: Difficulty) -> Identity:
    return make_identity(seed, faces, difficulty)


def _subject_seed(seed: int, dataset: str, subject: int) -> int:
    return int(np.random.default_rng([seed, _DATASET_CODE[dataset], 1000 + subject]).integers(2**31))


def _render_clip(root: str, dataset: str, plan: _ClipPlan, seed: int, faces: str | None, difficulty: Difficulty) -> dict:
    import cv2

    clip_dir = Path(root) / plan.section / f"sub{plan.subject:02d}" / plan.filename
    done = clip_dir / "motion.npz"
    if done.is_file():  # finished by an earlier (interrupted) run: resume
        m = Motion.load(done)
        return _clip_stats(plan, m)
    clip_dir.mkdir(parents=True, exist_ok=True)
    ident = _identity_cached(_subject_seed(seed, dataset, plan.subject), faces, difficulty)
    rng = np.random.default_rng([plan.seed, 11])
    motion = _make_motion(plan, ident, difficulty, FPS[dataset], rng)
    for t, frame in enumerate(render_frames(ident, motion, difficulty, FPS[dataset], rng)):
        ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, ident.jpeg_quality])
        if not ok:  # pragma: no cover
            raise RuntimeError(f"JPEG encoding failed for {clip_dir}")
        _io.atomic_write_bytes(clip_dir / plan.frame_name(dataset, int(motion.frame_numbers[t])), buf.tobytes())
    motion.save(done)  # written last: its presence marks the clip as complete
    return _clip_stats(plan, motion)


def render_frames(ident: Identity, motion: Motion, difficulty: Difficulty, fps: float, rng: np.random.Generator | None = None):
    """Yield the clip's frames, ``(H, W, 3) uint8`` RGB: the identity image warped by the motion,
    with flicker and sensor noise (none when ``rng`` is None)."""
    import cv2

    if rng is not None:
        noise_sigma = rng.uniform(*difficulty.noise_sigma)
        f_hz = rng.uniform(1.0, 8.0)
        phase = rng.uniform(0, 2 * math.pi)
    for t, D in enumerate(motion.displacements()):
        q = inverse_map(D)
        frame = cv2.remap(ident.image, q[..., 0], q[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        if rng is not None:
            gain = 1 + difficulty.flicker * math.sin(2 * math.pi * f_hz * t / fps + phase) + rng.normal(0, difficulty.flicker / 3)
            frame = frame * gain + rng.standard_normal(frame.shape, dtype=np.float32) * noise_sigma
        yield np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def _clip_stats(plan: _ClipPlan, motion: Motion) -> dict:
    E = motion.expression(motion.apex_index)
    mag = np.sqrt((E**2).sum(-1)) / motion.face_scale
    return {
        "subject": plan.subject,
        "clip": plan.filename,
        "emotion": plan.emotion,
        "aus": plan.au_code(),
        "n_frames": int(plan.offset_index - plan.onset_index + 1),
        "apex_displacement_px": float(mag.max()),
    }


# --------------------------------------------------------------------------------------------
# public API


def generate(
    out_dir: str | os.PathLike,
    dataset: str = "casme2",
    scale: float = 1.0,
    seed: int = 0,
    faces: str | os.PathLike | None = None,
    difficulty: str | Difficulty = "default",
    jobs: int | None = None,
    progress: bool = True,
) -> Path:
    """Write a synthetic CASME II (``"casme2"``) or CASME I (``"casme1"``) dataset to ``out_dir``.

    Per-emotion counts are Table 3's × ``scale`` (at least 2 each); frames are 640×480 JPEGs at
    200 fps (CASME II) or 60 fps (CASME I) in the real folder layout, with the coding sheet
    (``.xlsx``, real column names and quirks) and each clip's ground-truth motion
    (``motion.npz``, see :func:`ground_truth_flow`).  ``faces``: an optional folder of frontal
    face photos added to the bundled ones.  ``jobs``: parallel workers (default: all cores).

    Deterministic: the same arguments write byte-identical files.  An interrupted run resumes
    (finished clips are kept).  Returns ``out_dir``.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    if dataset not in _FORMATS:
        raise ValueError(f"dataset must be one of {sorted(_FORMATS)}, not {dataset!r}")
    if isinstance(difficulty, str):
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {sorted(DIFFICULTIES)} or a Difficulty, not {difficulty!r}")
        difficulty_name, difficulty = difficulty, DIFFICULTIES[difficulty]
    else:
        difficulty_name = "custom"
    out = Path(out_dir)
    faces_s = str(Path(faces).resolve()) if faces else None
    record = {
        "generator": "mexpr.synth",
        "version": GENERATOR_VERSION,
        "dataset": dataset,
        "scale": scale,
        "seed": seed,
        "fps": FPS[dataset],
        "faces": ["skimage:astronaut", "matplotlib:grace_hopper"] + ([faces_s] if faces_s else []),
        "difficulty": difficulty_name,
        "difficulty_parameters": dataclasses.asdict(difficulty),
        "counts": scaled_counts(dataset, scale),
    }
    info_path = out / "synth.json"
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    if info_path.is_file():
        if info_path.read_text() == text:
            return out  # already complete
        raise FileExistsError(f"{out} already holds a different synthetic dataset ({info_path}); use another folder")
    if out.exists() and any(out.iterdir()) and not (out / ".synth-partial").is_file():
        raise FileExistsError(f"{out} exists and is not empty; give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / ".synth-partial").write_text(text)

    plans = _plan(dataset, scale, seed, difficulty)
    jobs = jobs or os.cpu_count() or 1
    tasks = (delayed(_render_clip)(str(out), dataset, p, seed, faces_s, difficulty) for p in plans)
    stats = []
    bar = tqdm(total=len(plans), desc=f"synth {dataset}", unit="clip", disable=not progress)
    if jobs == 1:
        for task in tasks:
            fn, args, kw = task
            stats.append(fn(*args, **kw))
            bar.update()
    else:
        for s in Parallel(n_jobs=jobs, return_as="generator_unordered")(tasks):
            stats.append(s)
            bar.update()
    bar.close()

    _write_sheet(out, dataset, plans)
    stats.sort(key=lambda s: (s["subject"], s["clip"]))
    _write_csv(out / "clips.csv", stats)
    (out / "README.txt").write_text(_README.format(dataset=dataset, scale=scale, seed=seed, n=len(plans)))
    (out / ".synth-partial").unlink()
    info_path.write_text(text)
    return out


def _write_sheet(out: Path, dataset: str, plans: list[_ClipPlan]) -> None:
    fmt = _FORMATS[dataset]
    rows_by_sheet: dict[Path, list[list]] = {}
    for p in plans:
        values = {
            "subject": p.subject,
            "filename": p.filename,
            "onset": p.onset,
            "apex": p.apex if p.apex_in_sheet else "/",
            "apex2": "",
            "offset": p.offset,
            "aus": p.au_code(),
            "emotion": p.emotion,
        }
        row = ["" if f is None else values[f] for f in fmt.fields]
        if dataset == "casme2":
            sheet = out / "CASME2-coding-synthetic.xlsx"
        else:
            sheet = out / p.section / f"{Path(p.section).name}.xlsx"
        rows_by_sheet.setdefault(sheet, []).append(row)
    for sheet, rows in rows_by_sheet.items():
        sheet.parent.mkdir(parents=True, exist_ok=True)
        _io.save_xlsx(list(fmt.sheet_header), rows, sheet)


def _write_csv(path: Path, rows: list[dict]) -> None:
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    path.write_text(buf.getvalue())


_README = """Synthetic {dataset} dataset written by mexpr.synth (scale={scale}, seed={seed}, {n} clips).

This is NOT CASME data: faces are morphs of photographs bundled with scikit-image and matplotlib,
and the micro-expressions are synthetic Action-Unit displacement fields.  Results on it show that a
pipeline works, not what CASME I/II would give.

Layout follows the real distribution; each clip folder also holds motion.npz, the exact
ground-truth motion (mexpr.synth.ground_truth_flow(clip_dir) expands it to dense flow).
clips.csv lists each clip's AUs, length and apex displacement (px at 96x112 crop scale).
"""
