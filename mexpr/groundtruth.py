"""Scoring against known motion: how well the alignment and the optical flow recover the motion
that the synthetic generator (or a known warp of a photograph) put into the frames.

Real-data code never imports this module: it reads :mod:`mexpr.synth`'s ground truth
(``motion.npz``), which CASME does not have.

- :func:`alignment_error` / :func:`compare_alignments`: residual motion of aligned crops (notebook 01);
- :func:`synthetic_pairs` / :func:`photo_pairs`: frame pairs with exactly known flow, and
  :func:`score` / :func:`flow_errors`: end-point and angular error of each flow method (notebook 02).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mexpr import datasets, flow, preprocess, synth
from mexpr.align import ALIGN_MODES, alignment_maps, apply_affine, frame_to_crop, map_jacobian, pixel_grid, smooth_tracks, warp
from mexpr.run import Run
from mexpr.settings import CROP_H, CROP_W

# --------------------------------------------------------------------------------------------
# alignment against the synthetic ground truth


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
    r = apply_affine(A0i, q0.reshape(-1, 2)).reshape(q0.shape)
    _, mask = motion.upsampled()
    face = _sample(mask, r) > 0.99
    crop_xy = pixel_grid(CROP_H, CROP_W).reshape(CROP_H, CROP_W, 2)

    def head(t: int) -> np.ndarray:
        return apply_affine(motion.rigid[idx[t]], r.reshape(-1, 2)).reshape(r.shape)

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
            d = frame_to_crop(J, apply_affine(A_a, (r + E_r).reshape(-1, 2)).reshape(r.shape) - maps[t]) - rigid
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


def compare_alignments(clips, modes: Sequence[str] = tuple(ALIGN_MODES), config: preprocess.Config | None = None, progress: bool = False):
    """:func:`alignment_error` of every alignment mode on synthetic clips (rows of a
    :func:`mexpr.datasets.load` table): landmarks are tracked once per clip, then each mode's
    maps are scored, on the raw landmark tracks (``smooth`` 0) and, for the modes that register
    every frame, also on tracks smoothed with ``config.smooth``.  One row per (clip, mode,
    smooth); ``variant`` names the pair."""
    import cv2
    import pandas as pd
    from tqdm.auto import tqdm

    config = config or preprocess.Config()
    rows = []
    for _, row in tqdm(list(clips.iterrows()), desc="alignment modes", unit="clip", disable=not progress):
        motion = synth.Motion.load(row["clip_dir"])
        imgs, times, names = preprocess.read_frames(row["frames"], None, "skip", [])
        lms, _ = preprocess.track_landmarks([cv2.cvtColor(im, cv2.COLOR_BGR2GRAY) for im in imgs], config, names)
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


# --------------------------------------------------------------------------------------------
# optical flow against known motion


def _apex_in_crop(run_dir: Path, pre: dict, row, info: dict) -> dict:
    """One pre-processed synthetic clip's true apex expression, as its crop sees it: the clip's
    first full-size frame (``frame0``, BGR), its alignment map (``maps``), the expression field in
    frame coordinates (``D``, frame px) and in the crop (``crop_flow``, ``(112, 96, 2)``, crop px:
    ``J^-1 D(q0(p))`` at each crop pixel), its magnitude (``mag``) and largest value on the face
    (``peak``, 0 if none), and the face there (``face``, the ground truth's head mask)."""
    import cv2

    motion = synth.Motion.load(info["clip_dir"])
    with np.load(run_dir / row["cache"]) as z:
        lms = z["landmarks"]
    maps = alignment_maps(lms[:1], pre["align"], pre["lwm_n"], pre["lwm_fallback"], pre["lwm_anchors"])[0]
    frame0 = cv2.imread(str(info["frames"][0]))
    idx0 = datasets.frame_number(info["frames"][0]) - int(motion.frame_numbers[0])
    A = motion.rigid[idx0]
    Ainv = np.linalg.inv(np.vstack([A, [0, 0, 1]]))[:2]
    E = motion.expression(int(motion.apex_index))  # reference coords, frame px
    h, w = frame0.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ref = np.stack([xx, yy], -1) @ Ainv[:, :2].T.astype(np.float32) + Ainv[:, 2].astype(np.float32)
    D = cv2.remap(E, ref[..., 0], ref[..., 1], cv2.INTER_LINEAR) @ A[:, :2].T.astype(np.float32)  # frame coords
    Dq = cv2.remap(D, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR)
    crop_flow = frame_to_crop(map_jacobian(maps), Dq).astype(np.float32)
    _, mask = motion.upsampled()
    face = cv2.remap(mask, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR) > 0.99
    mag = np.hypot(crop_flow[..., 0], crop_flow[..., 1])
    peak = float(mag[face].max()) if face.any() else 0.0
    return {"frame0": frame0, "maps": maps, "D": D, "crop_flow": crop_flow, "face": face, "mag": mag, "peak": peak}


def _clip_table(run_dir: Path, table) -> dict:
    """``subject_id/clip`` -> the clip's row of the dataset table (default: the run's dataset)."""
    if table is None:
        table = Run(run_dir).dataset(errors="raise")
    return {f"{r['subject_id']}/{r['clip']}": r for r in table.to_dict("records")}


def au_regions(run_dir: str | os.PathLike, clips, threshold: float = 0.25, table=None) -> dict[str, np.ndarray]:
    """Where each synthetic clip's Action Units moved, in its crop: ``subject_id/clip`` -> bool
    ``(112, 96)``, the face pixels whose true apex expression (every AU of the clip but blinks,
    :meth:`mexpr.synth.Motion.expression`) reaches ``threshold`` of its peak (the same definition
    as :func:`synthetic_pairs`' ``au`` regions).  ``clips``: rows of the pre-processing manifest
    (or of :func:`mexpr.train.clips_table`).  A clip whose expression is nowhere on the face gets an
    empty region.  Notebook 09 measures DTSCNN's Grad-CAM against these (:func:`mexpr.explain.mass_inside`)."""
    run_dir = Path(run_dir)
    pre = json.loads((run_dir / "preprocess.json").read_text())["config"]
    lookup = _clip_table(run_dir, table)
    out = {}
    for _, row in clips.iterrows():
        key = f"{row['subject_id']}/{row['clip']}"
        crop = _apex_in_crop(run_dir, pre, row, lookup[key])
        peak = crop["peak"]
        out[key] = crop["face"] & (crop["mag"] >= threshold * peak) if peak > 0 else np.zeros(crop["face"].shape, bool)
    return out


def synthetic_pairs(run_dir: str | os.PathLike, clips, amplitudes=(0.1, 0.25, 0.5, 1.0, 2.0), noise: float = 1.5, seed: int = 0, table=None):
    """Frame pairs with exactly known flow, at chosen micro-motion amplitudes, from a run's
    pre-processed synthetic clips.

    For each clip (rows of the pre-processing manifest) and amplitude ``a``: the clip's true
    apex expression field (from ``motion.npz``), scaled so that its peak is ``a`` px at the crop
    scale, is applied to the clip's first full-size frame; both frames get independent sensor
    noise (``noise`` grey levels at 640 x 480) and go through the same crop as the clip (its
    first frame's alignment map).  The true flow in crop px is the field mapped through that
    crop.  Yields dicts: ``frames (2, 112, 96, 3) uint8``, ``flow (112, 96, 2) float32``,
    ``face``/``au`` masks, ``amplitude``, ``clip``.  ``table``: the clips' dataset table
    (default: loaded from the roots in ``<run_dir>/dataset.json``).
    """
    import cv2

    run_dir = Path(run_dir)
    rng = np.random.default_rng(seed)
    pre = json.loads((run_dir / "preprocess.json").read_text())["config"]
    clip_table = _clip_table(run_dir, table)
    for _, row in clips.iterrows():
        crop = _apex_in_crop(run_dir, pre, row, clip_table[f"{row['subject_id']}/{row['clip']}"])
        frame0, maps, D, crop_flow, face = crop["frame0"], crop["maps"], crop["D"], crop["crop_flow"], crop["face"]
        mag, peak = crop["mag"], crop["peak"]
        if peak <= 0:
            continue
        for a in amplitudes:
            k = a / peak
            Dk = D * np.float32(k)
            inv = synth.inverse_map(Dk)
            frame1 = cv2.remap(frame0, inv[..., 0], inv[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            pair = []
            for f in (frame0, frame1):
                noisy = np.clip(f.astype(np.float32) + rng.normal(0, noise, f.shape).astype(np.float32), 0, 255).astype(np.uint8)
                pair.append(warp(noisy, maps)[..., ::-1])
            gt = crop_flow * np.float32(k)
            yield {
                "clip": f"{row['subject_id']}/{row['clip']}",
                "amplitude": a,
                "frames": np.stack(pair),
                "flow": gt,
                "face": face,
                "au": face & (mag * k >= 0.25 * a),
            }


def flow_errors(est: np.ndarray, gt: np.ndarray, region: np.ndarray) -> dict:
    """End-point error (px) and angular error (degrees; Barron et al.'s, between (u, v, 1)
    vectors) of ``est`` against ``gt`` over ``region``."""
    e, g = est[region].astype(np.float64), gt[region].astype(np.float64)
    epe = np.hypot(*(e - g).T)
    num = (e * g).sum(1) + 1.0
    den = np.sqrt(((e**2).sum(1) + 1.0) * ((g**2).sum(1) + 1.0))
    ae = np.degrees(np.arccos(np.clip(num / den, -1.0, 1.0)))
    return {"epe": float(epe.mean()), "ae": float(ae.mean())}


def score(pairs, methods: dict[str, dict] | None = None, progress: bool = False):
    """EPE and angular error (over the face and inside the AU regions) and milliseconds per
    pair of each method (``{name: {"method": ..., **params}}``; default: every method with its
    defaults) on :func:`synthetic_pairs`.  One row per (pair, method)."""
    import pandas as pd
    from tqdm.auto import tqdm

    methods = methods or {m: {"method": m} for m in flow.METHODS}
    rows = []
    pairs = list(pairs)
    for pair in tqdm(pairs, desc="flow vs ground truth", unit="pair", disable=not progress):
        for name, spec in methods.items():
            spec = dict(spec)
            m = spec.pop("method", name)
            t0 = time.perf_counter()
            est = flow.compute(pair["frames"], m, **spec)[0]
            ms = (time.perf_counter() - t0) * 1e3
            face = flow_errors(est, pair["flow"], pair["face"])
            au = flow_errors(est, pair["flow"], pair["au"])
            zero = flow_errors(np.zeros_like(est), pair["flow"], pair["au"])
            rows.append(
                {
                    "clip": pair["clip"],
                    "amplitude": pair["amplitude"],
                    "method": name,
                    "ms": ms,
                    "epe_face": face["epe"],
                    "ae_face": face["ae"],
                    "epe_au": au["epe"],
                    "ae_au": au["ae"],
                    "epe_au_zero_flow": zero["epe"],
                }
            )
    return pd.DataFrame(rows)


#: scikit-image's bundled photographs used for :func:`photo_pairs` (real textures, not our faces).
PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "immunohistochemistry", "brick", "coins")


def photo_pairs(
    amplitudes=(0.25, 0.5, 1.0),
    per_photo: int = 4,
    drift: float = 0.3,
    noise: float = 1.5,
    seed: int = 0,
    size: tuple[int, int] = (CROP_W, CROP_H),
    photos=PHOTOS,
):
    """Frame pairs with exactly known flow made from real photographs (scikit-image's bundled ones),
    not from our synthetic faces: a ``size`` (w, h) crop of each photo, moved by a smooth random
    local field (Gaussian-filtered noise, its peak scaled to each amplitude in px) plus a global
    drift (a random translation up to ``drift`` px), both frames with independent sensor noise.
    Used to choose a flow method on images the generator did not make (``benchmarks/flow_photos.py``).
    Yields dicts like :func:`synthetic_pairs`: ``frames (2, h, w, 3) uint8``, ``flow (h, w, 2)``,
    ``face`` (the whole image but a 6-px border), ``au`` (where the local field exceeds a quarter of
    its peak), ``amplitude``, ``clip`` (the photo and draw)."""
    import cv2
    from skimage import data

    rng = np.random.default_rng(seed)
    w, h = size
    for name in photos:
        img = getattr(data, name)()
        img = np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img[..., :3]
        for k in range(per_photo):
            H, W = img.shape[:2]
            side = int(min(H, W * h / w) * rng.uniform(0.35, 0.6))
            y0, x0 = rng.integers(0, H - side + 1), rng.integers(0, W - int(side * w / h) + 1)
            crop = cv2.resize(img[y0 : y0 + side, x0 : x0 + int(side * w / h)], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
            local = np.stack([cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 10) for _ in range(2)], -1)
            shift = rng.uniform(-drift, drift, 2).astype(np.float32)
            inner = np.zeros((h, w), bool)
            inner[6:-6, 6:-6] = True
            for a in amplitudes:
                loc = local * np.float32(a / max(float(np.hypot(local[..., 0], local[..., 1]).max()), 1e-9))
                gt = loc + shift
                yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
                # frame 1 (x) = frame 0 (x - flow(x)), with the flow given at frame 0's pixels: invert it by fixed-point steps
                back = gt.copy()
                for _ in range(5):
                    back = cv2.remap(gt, xx - back[..., 0], yy - back[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                second = cv2.remap(crop, xx - back[..., 0], yy - back[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
                pair = [np.clip(f + rng.normal(0, noise, f.shape), 0, 255).astype(np.uint8) for f in (crop, second)]
                yield {
                    "clip": f"{name}#{k}",
                    "amplitude": a,
                    "frames": np.stack(pair),
                    "flow": gt,
                    "face": inner,
                    "au": inner & (np.hypot(loc[..., 0], loc[..., 1]) >= 0.25 * a),
                }
