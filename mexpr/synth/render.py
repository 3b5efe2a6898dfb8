"""Writing a synthetic dataset: each clip's frames rendered from its identity and motion (with
flicker, sensor noise and JPEG compression), the coding sheet(s) in the real format, and
:func:`generate`, which does it all in parallel, seeded and resumable."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from pathlib import Path

import numpy as np

from mexpr import _io
from mexpr import scale as cluster  # (the synthetic set's "scale" is its size)
from mexpr.datasets import FPS, scaled_counts
from mexpr.synth.identity import FRAME_H, FRAME_W, Identity, make_identity
from mexpr.synth.motion import Motion, inverse_map, make_motion
from mexpr.synth.plans import DATASET_CODE, FORMATS, OTHER_CORPORA, ClipPlan, Difficulty, au_sides, claim_folder, plan_clips, resolve_difficulty

GENERATOR_VERSION = 1

# --------------------------------------------------------------------------------------------
# rendering


@functools.lru_cache(maxsize=8)
def _identity_cached(seed: int, faces: str | None, difficulty: Difficulty) -> Identity:
    return make_identity(seed, faces, difficulty)


def _subject_seed(seed: int, dataset: str, subject: int) -> int:
    return int(np.random.default_rng([seed, DATASET_CODE[dataset], 1000 + subject]).integers(2**31))


def frame_transform(dataset: str) -> dict:
    """How a frame rendered at 640×480 is placed in the corpus' frame size (SAMM 2040×1088,
    CAS(ME)³ 1280×720): scaled by ``scale`` to the frame's height and centred (``offset_x`` px,
    the sides filled by replicating the border).  The ground truth (``motion.npz``) stays in
    640×480 render coordinates: multiply it by ``scale``."""
    from mexpr.corpora import CORPORA

    w, h = CORPORA[dataset].frame_size
    scale = h / FRAME_H
    return {"size": [w, h], "scale": scale, "offset_x": (w - round(FRAME_W * scale)) // 2, "color": CORPORA[dataset].color}


def _encode(frame: np.ndarray, dataset: str, quality: int) -> bytes:
    """One RGB frame ``(480, 640, 3) uint8`` in the corpus' size, colour and file format."""
    import cv2

    tf = frame_transform(dataset)
    bgr = frame[..., ::-1]
    if tf["scale"] != 1 or tf["size"] != [FRAME_W, FRAME_H]:
        w, h = tf["size"]
        sw = round(FRAME_W * tf["scale"])
        scaled = cv2.resize(bgr, (sw, h), interpolation=cv2.INTER_LINEAR)
        bgr = cv2.copyMakeBorder(scaled, 0, 0, tf["offset_x"], w - sw - tf["offset_x"], cv2.BORDER_REPLICATE)
    if not tf["color"]:
        bgr = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    ext = ".bmp" if dataset == "smic" else ".jpg"
    ok, buf = cv2.imencode(ext, bgr, [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" else [])
    if not ok:  # pragma: no cover
        raise RuntimeError(f"{ext} encoding failed")
    return buf.tobytes()


@functools.lru_cache(maxsize=8)
def _blank_frame(dataset: str) -> bytes:
    return _encode(np.full((FRAME_H, FRAME_W, 3), 128, np.uint8), dataset, 90)


def _render_clip(root: str, dataset: str, plan: ClipPlan, seed: int, faces: str | None, difficulty: Difficulty, render: bool = True) -> dict:
    clip_dir = Path(root) / plan.clip_dir(dataset)
    if not render:  # layout only: the real folders, file names and sheet, every frame one grey image
        clip_dir.mkdir(parents=True, exist_ok=True)
        for n in range(plan.first_number, plan.first_number + plan.n_frames):
            _io.atomic_write_bytes(clip_dir / plan.frame_name(dataset, n), _blank_frame(dataset))
        return _clip_stats(plan, None, dataset)
    done = clip_dir / plan.motion_name(dataset)
    if done.is_file():  # finished by an earlier (interrupted) run: resume
        m = Motion.load(done)
        return _clip_stats(plan, m, dataset)
    clip_dir.mkdir(parents=True, exist_ok=True)
    ident = _identity_cached(_subject_seed(seed, dataset, plan.subject), faces, difficulty)
    rng = np.random.default_rng([plan.seed, 11])
    motion = make_motion(plan, ident, difficulty, FPS[dataset], rng)
    for t, frame in enumerate(render_frames(ident, motion, difficulty, FPS[dataset], rng)):
        _io.atomic_write_bytes(clip_dir / plan.frame_name(dataset, int(motion.frame_numbers[t])), _encode(frame, dataset, ident.jpeg_quality))
    motion.save(done)  # written last: its presence marks the clip as complete
    return _clip_stats(plan, motion, dataset)


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


def _clip_stats(plan: ClipPlan, motion: Motion | None, dataset: str = "casme2") -> dict:
    if motion is None:
        mag = np.array([np.nan])
    else:
        E = motion.expression(motion.apex_index)
        mag = np.sqrt((E**2).sum(-1)) / motion.face_scale
    return {
        "subject": plan.subject,
        "clip": plan.clip_name(dataset),
        "emotion": plan.emotion,
        "aus": plan.au_code(),
        "n_frames": int(plan.offset_index - plan.onset_index + 1),
        "apex_displacement_px": float(mag.max()),
    }


# --------------------------------------------------------------------------------------------
# the dataset


def generate(
    out_dir: str | os.PathLike,
    dataset: str = "casme2",
    scale: float = 1.0,
    seed: int = 0,
    faces: str | os.PathLike | None = None,
    difficulty: str | Difficulty = "default",
    jobs: int | None = None,
    progress: bool = True,
    render: bool = True,
) -> Path:
    """Write a synthetic CASME II (``"casme2"``) or CASME I (``"casme1"``) dataset to ``out_dir``,
    or on request one of the field's other corpora: SAMM (``"samm"``), SMIC-HS (``"smic"``) or
    CAS(ME)³ part A (``"casme3a"``).

    Per-emotion counts are Table 3's (the other corpora: the published ones,
    :data:`mexpr.corpora.CORPORA`) × ``scale`` (at least 2 each); frames are 640×480 JPEGs at
    200 fps (CASME II) or 60 fps (CASME I) in the real folder layout, with the coding sheet
    (``.xlsx``, real column names and quirks) and each clip's ground-truth motion
    (``motion.npz``, see :func:`ground_truth_flow`).  The other corpora have their own frame rate,
    frame size, colour and file format (SAMM 200 fps 2040×1088 grey JPEG, SMIC-HS 100 fps 640×480
    BMP, CAS(ME)³ 30 fps 1280×720 JPEG; :func:`frame_transform`), layout and sheet with their
    known quirks (:data:`mexpr.corpora.QUIRKS`).  ``faces``: an optional folder of frontal face
    photos added to the bundled ones.  ``jobs``: parallel workers (default: all cores).
    ``render=False`` writes the layout only (folders, frame file names, sheets; every frame one
    grey image, no ground truth): enough to test a loader, in a fraction of the time.

    Deterministic: the same arguments write byte-identical files.  An interrupted run resumes
    (finished clips are kept).  Returns ``out_dir``.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    if dataset not in FORMATS:
        raise ValueError(f"dataset must be one of {sorted(FORMATS)}, not {dataset!r}")
    difficulty_name, difficulty = resolve_difficulty(difficulty)
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
    if dataset in OTHER_CORPORA:
        record["frame_transform"] = frame_transform(dataset)
    if not render:
        record["render"] = False
    info_path = out / "synth.json"
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    if claim_folder(out, text):
        return out  # already complete

    plans = plan_clips(dataset, scale, seed, difficulty)
    jobs = jobs or os.cpu_count() or 1
    tasks = (delayed(_render_clip)(str(out), dataset, p, seed, faces_s, difficulty, render) for p in plans)
    stats = []
    bar = tqdm(total=len(plans), desc=f"synth {dataset}", unit="clip", disable=not progress)
    if jobs == 1 and cluster.current() is None:
        for task in tasks:
            fn, args, kw = task
            stats.append(fn(*args, **kw))
            bar.update()
    else:  # inside mexpr.scale.scheduler: the same tasks on its Dask cluster (joblib's Dask backend)
        with cluster.joblib_backend():
            for s in Parallel(n_jobs=jobs, return_as="generator_unordered")(tasks):
                stats.append(s)
                bar.update()
    bar.close()

    _write_sheet(out, dataset, plans)
    _write_extras(out, dataset, plans)
    stats.sort(key=lambda s: (s["subject"], s["clip"]))
    _write_csv(out / "clips.csv", stats)
    (out / "README.txt").write_text(_README.format(dataset=dataset, scale=scale, seed=seed, n=len(plans)))
    (out / ".synth-partial").unlink()
    info_path.write_text(text)
    return out


_SHEET_NAMES = {
    "casme2": "CASME2-coding-synthetic.xlsx",
    "samm": "SAMM_Micro_FACS_Codes_v2.xlsx",
    "casme3a": "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
}
_OBJECTIVE = {"happiness": 1, "surprise": 2, "anger": 3, "disgust": 4, "fear": 5, "sadness": 6, "contempt": 7, "other": 7}


def _write_sheet(out: Path, dataset: str, plans: list[ClipPlan]) -> None:
    fmt = FORMATS[dataset]
    if not fmt.sheet_header:  # SMIC: the emotion is the folder
        return
    rows_by_sheet: dict[Path, list[list]] = {}
    for p in plans:
        au = p.au_code()
        if dataset == "samm" and p.index % 11 == 1:  # the quirk au_or: alternatives, in every set however small
            first = au_sides(p.aus[0])[0]
            au = f"{p.aus[0]} or {p.aus[1] if len(p.aus) > 1 else 'R' + first}"
        values = {
            "subject": f"spNO.{p.subject}" if dataset == "casme3a" else int(p.subject_folder(dataset)) if dataset == "samm" else p.subject,
            "filename": p.filename,
            "onset": p.onset,
            "apex": p.apex if p.apex_in_sheet else (-1 if dataset == "samm" else "/"),
            "apex2": "",
            "offset": p.offset,
            "aus": au,
            "emotion": p.emotion.capitalize() if dataset == "samm" else p.emotion,
            "inducement": 1 + p.index % 7,
            "duration": p.offset - p.onset + 1,
            "type": "Micro - 1/2",
            "notes": "",
            "objective": _OBJECTIVE.get(p.emotion, 7),
        }
        row = ["" if f is None else values[f] for f in fmt.fields]
        if dataset in _SHEET_NAMES:
            sheet = out / _SHEET_NAMES[dataset]
        else:
            sheet = out / p.section / f"{Path(p.section).name}.xlsx"
        rows_by_sheet.setdefault(sheet, []).append(row)
    for sheet, rows in rows_by_sheet.items():
        sheet.parent.mkdir(parents=True, exist_ok=True)
        _io.save_xlsx(list(fmt.sheet_header), rows, sheet, preamble=[list(r) for r in fmt.preamble])


def _write_extras(out: Path, dataset: str, plans: list[ClipPlan]) -> None:
    """The folders beside the clips that the real distributions have: SMIC's ``non_micro/``
    (other movements, two frames each, which the loader must ignore) and CAS(ME)³'s ``depth/``."""
    if dataset == "smic":
        for p in plans:
            d = out / p.section / p.subject_folder(dataset) / "non_micro" / f"{p.subject_folder(dataset)}_non_01"
            d.mkdir(parents=True, exist_ok=True)
            for n in (1, 2):
                _io.atomic_write_bytes(d / p.frame_name(dataset, n), _blank_frame(dataset))
    elif dataset == "casme3a":
        for p in plans:
            (out / Path(p.clip_dir(dataset)).parent / "depth").mkdir(parents=True, exist_ok=True)


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

This is NOT real data: faces are morphs of photographs bundled with scikit-image and matplotlib,
and the micro-expressions are synthetic Action-Unit displacement fields.  Results on it show that a
pipeline works, not what the real corpus would give.

Layout follows the real distribution; each clip folder also holds motion.npz (CAS(ME)3:
motion-<onset>.npz), the exact ground-truth motion (mexpr.synth.ground_truth_flow(clip_dir) expands
it to dense flow; for SAMM and CAS(ME)3 in 640x480 render coordinates, see frame_transform in
synth.json).  A layout-only set (render=False) has grey frames and no ground truth.
clips.csv lists each clip's AUs, length and apex displacement (px at 96x112 crop scale).
"""
