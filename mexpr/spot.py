"""Spotting: where in a long video the micro- and macro-expressions are (MEGC 2019-2023; docs/DESIGN.md §10).

A long video holds a few expressions among blinks, talking and head turns; spotting returns their
intervals (onset, apex, offset, type, score).  MEGC scores it leave-one-subject-out: a spotted
interval is a true positive when its IoU with a ground-truth interval of the same type is >= 0.5
(:func:`iou`, :func:`score`), precision, recall and F1 counted over the whole corpus.

Everything starts from one streamed pass over the video (:func:`signals`): the face is tracked
and aligned (:mod:`mexpr.track`), and for every frame ``CF`` the optical flow from the head frame
``HF = CF - k`` to ``CF`` and to the tail frame ``TF = CF + k`` is reduced to a 6 x 6 grid of
face blocks, for the micro ``k`` and the macro ``k``.  Nothing but these per-frame numbers is
kept, so memory does not grow with the video's length.

Two spotters read them:

- ``"mdmd"``: the MEGC 2020 baseline (He, Wang, Li & Yap, FG 2020, after Wang et al. 2017's
  main directional maximal difference): in each block the flow vectors of the main of four
  directions, their magnitude HF -> CF less HF -> TF, the top third of vectors and of blocks
  averaged; the contrast ``C(i) = F(i) - (F(i-m) + F(i+m)) / 2`` (m = k - 1) thresholded at
  ``mean + p (max - mean)``; runs of frames above it are intervals, kept when their length suits
  the type (at 30 fps: micro 7-16 frames, macro over 16; :data:`BASELINE`).  Departures: the
  flow is DIS on our aligned crops (theirs: RLOF on one crop per video), directions are the true
  polar quadrants (their code takes ``atan(u / v)``, which fills only two), and ``p`` is chosen on
  the training subjects, where the baseline reported the best ``p`` on the test data.
- ``"learned"`` (ours, after SOFTNet, Liong et al. 2021): a shallow temporal CNN regresses, for
  every frame, "inside a macro-expression" from the blocks' flow (global motion removed) and the
  head's motion; runs of frames above a threshold are the intervals.  Micro-expressions, whose
  motion at 30 fps is as small as the flow's noise, come from a second, linear detector
  (:class:`MicroDetector`): it scores every frame as an apex from the magnitude of each block's
  *mean* flow vector (in which the noise cancels) and returns a fixed-length interval around
  each peak of that score.  Both are trained, and their thresholds chosen, on the training
  subjects only (a validation split of them picks the network's thresholds and the last epoch is
  kept; leave one training subject out picks the detector's).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mexpr import _io

#: Expression types, as MEGC names them.
TYPES = ("micro", "macro")
#: The spotters (module text).
METHODS = ("mdmd", "learned")
#: The MEGC 2020 baseline's settings, in seconds so that any frame rate gets them: its k (12 and 39
#: frames at CAS(ME)²'s 30 fps; 80 and 260 at SAMM's 200 fps: the same 0.4 s and 1.3 s) and its
#: interval lengths (micro 7-16 frames at 30 fps, 47-105 at 200 fps; macro longer).
BASELINE = {"micro": {"k_s": 0.4, "min_s": 0.23, "max_s": 0.53}, "macro": {"k_s": 1.3, "min_s": 0.53, "max_s": None}}
#: The MEGC IoU threshold of a true positive.
IOU_THRESHOLD = 0.5
#: The grid of face blocks (the baseline's 6 x 6).
BLOCKS = 6
#: The columns of ``intervals.csv``.
INTERVAL_COLUMNS = ["video", "start_frame", "apex_frame", "end_frame", "start_s", "apex_s", "end_s", "type", "score"]

_INTERVAL_DTYPES = {"video": str, "start_frame": int, "apex_frame": int, "end_frame": int, "start_s": float, "apex_s": float, "end_s": float}
_INTERVAL_DTYPES |= {"type": str, "score": float}

SIGNALS_VERSION = 2

#: What :class:`Signals` keeps per type and frame (MDMD's value first, then the block arrays).
_PER_TYPE = ("mdmd", "blocks", "local", "vector", "vector_tail")


class SpotError(ValueError):
    """Bad input to spotting; the message names the file or the setting."""


def frames_for(seconds: float | None, fps: float) -> int | None:
    """``seconds`` of video at ``fps``, in whole frames (at least 1); None stays None."""
    return None if seconds is None else max(1, int(round(seconds * fps)))


def ks_for(fps: float) -> dict[str, int]:
    """The baseline's ``k`` of each type at ``fps`` (frames)."""
    return {t: max(1, frames_for(BASELINE[t]["k_s"], fps)) for t in TYPES}


# --------------------------------------------------------------------------------------------
# the MEGC metric


def iou(a: Sequence[int], b: Sequence[int]) -> float:
    """IoU of two inclusive frame intervals ``(start, end)``: shared frames / frames of either."""
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if inter <= 0:
        return 0.0
    return inter / ((a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter)


def match(spotted: Sequence[Sequence[int]], truth: Sequence[Sequence[int]], threshold: float = IOU_THRESHOLD) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(spotted index, truth index, IoU)`` with IoU >= ``threshold``, highest
    IoU first: a ground-truth interval found twice is one true positive and one false positive."""
    pairs = sorted(
        ((iou(s, t), i, j) for i, s in enumerate(spotted) for j, t in enumerate(truth) if iou(s, t) >= threshold),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    used_s, used_t, out = set(), set(), []
    for v, i, j in pairs:
        if i not in used_s and j not in used_t:
            used_s.add(i)
            used_t.add(j)
            out.append((i, j, v))
    return out


def prf(tp: int, n_spotted: int, n_truth: int) -> tuple[float, float, float]:
    """Precision, recall and F1 of ``tp`` true positives among ``n_spotted`` spotted and ``n_truth`` true intervals (0 where undefined)."""
    p = tp / n_spotted if n_spotted else 0.0
    r = tp / n_truth if n_truth else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _intervals_by_video(df: pd.DataFrame, typ: str) -> dict[str, list]:
    """``{video: [(start, end), ...]}`` of one type's rows."""
    d = df[df["type"] == typ]
    return {v: g[["start_frame", "end_frame"]].to_numpy().tolist() for v, g in d.groupby("video", sort=False)}


def _tally(spotted: dict[str, list], truth: dict[str, list], threshold: float = IOU_THRESHOLD) -> tuple[int, int, int]:
    """``(true positives, spotted, ground truth)`` over every video of the two ``{video: intervals}``."""
    tp = sum(len(match(spotted.get(v, []), truth.get(v, []), threshold)) for v in set(spotted) | set(truth))
    return tp, sum(map(len, spotted.values())), sum(map(len, truth.values()))


def _f1(spotted: dict[str, list], truth: dict[str, list]) -> float:
    return prf(*_tally(spotted, truth))[2]


def score(spotted: pd.DataFrame, truth: pd.DataFrame, threshold: float = IOU_THRESHOLD) -> pd.DataFrame:
    """The MEGC spotting scores: per type and overall, the true positives, false positives, false
    negatives, precision, recall and F1, counted over every video of the two tables (columns
    ``video, start_frame, end_frame, type``).  Overall pools the two types' counts."""
    rows = []
    for typ in TYPES:
        tp, n_s, n_t = _tally(_intervals_by_video(spotted, typ), _intervals_by_video(truth, typ), threshold)
        rows.append({"type": typ, "n_truth": n_t, "n_spotted": n_s, "tp": tp})
    rows.append({"type": "overall", **{k: sum(r[k] for r in rows) for k in ("n_truth", "n_spotted", "tp")}})
    out = pd.DataFrame(rows)
    out["fp"] = out["n_spotted"] - out["tp"]
    out["fn"] = out["n_truth"] - out["tp"]
    out["precision"], out["recall"], out["f1"] = zip(*[prf(r.tp, r.n_spotted, r.n_truth) for r in out.itertuples()])
    return out


# --------------------------------------------------------------------------------------------
# flow reduced to the face's blocks


def _estimator():
    from mexpr import flow

    return flow.estimator("dis")


def _block_slices(h: int, w: int, n: int = BLOCKS) -> list[tuple[slice, slice]]:
    hs, ws = h // n, w // n
    return [(slice(r * hs, (r + 1) * hs), slice(c * ws, (c + 1) * ws)) for r in range(n) for c in range(n)]


def mdmd_blocks(hc: np.ndarray, ht: np.ndarray, n: int = BLOCKS) -> np.ndarray:
    """MDMD's value of each of ``n x n`` blocks, ``(n*n,) float32``, from the flows head -> current
    ``hc`` and head -> tail ``ht`` (``(H, W, 2)``, px): in the block, the vectors of ``hc``'s main
    direction (the quadrant of the polar angle holding the most vectors), their magnitude in ``hc``
    less that in ``ht``, the top third averaged (Wang et al. 2017; He et al. 2020)."""
    h, w = hc.shape[:2]
    ang = np.arctan2(hc[..., 1], hc[..., 0])
    quad = np.minimum(((ang + np.pi) / (np.pi / 2)).astype(np.int8), 3)
    diff = np.hypot(hc[..., 0], hc[..., 1]) - np.hypot(ht[..., 0], ht[..., 1])
    out = np.empty(n * n, np.float32)
    for b, (ys, xs) in enumerate(_block_slices(h, w, n)):
        q = quad[ys, xs].ravel()
        main = np.bincount(q, minlength=4).argmax()
        d = np.sort(diff[ys, xs].ravel()[q == main])[::-1]
        out[b] = d[: max(1, int(round(len(d) / 3)))].mean()
    return out


def mdmd_value(blocks: np.ndarray) -> float:
    """A frame's MDMD value: the mean of the top third of its blocks' values."""
    b = np.sort(np.asarray(blocks, np.float64))[::-1]
    return float(b[: max(1, int(round(len(b) / 3)))].mean())


def _block_means(a: np.ndarray, n: int = BLOCKS) -> np.ndarray:
    """``(H, W, ...)`` averaged over each of ``n x n`` blocks: ``(n*n, ...)``."""
    h, w = a.shape[:2]
    hs, ws = h // n, w // n
    return a[: hs * n, : ws * n].reshape(n, hs, n, ws, *a.shape[2:]).mean((1, 3)).reshape(n * n, *a.shape[2:])


def block_magnitude(fl: np.ndarray, n: int = BLOCKS, local: bool = False) -> np.ndarray:
    """Mean flow magnitude of each of ``n x n`` blocks, ``(n*n,) float32``, after the field's
    affine (global) motion is removed (:func:`mexpr.flow.remove_global`; ``local=True``: ``fl``
    is already without it)."""
    from mexpr import flow

    if not local:
        fl = flow.remove_global(fl[None])[0]
    return _block_means(np.hypot(fl[..., 0], fl[..., 1]), n).astype(np.float32)


def block_vector(local: np.ndarray, n: int = BLOCKS) -> np.ndarray:
    """The magnitude of each block's *mean* flow vector, ``(n*n,) float32``, from a field without
    its global motion ``(H, W, 2)``.  Ours: the flow's estimation noise points every way and
    cancels in the mean, a muscle's pull moves the block's pixels one way and stays; the mean
    magnitude (:func:`block_magnitude`) adds the noise up instead.  At 30 fps a micro-expression
    moves the aligned crop by about 0.1 px, as much as the noise; the micro detector reads this
    form (docs/benchmarks.md, "The micro-expressions' signal")."""
    v = _block_means(np.asarray(local, np.float32), n)
    return np.hypot(v[:, 0], v[:, 1]).astype(np.float32)


# --------------------------------------------------------------------------------------------
# one pass over a video: the signals every spotter reads


@dataclass
class Signals:
    """What one pass over a video keeps (:func:`signals`), per delivered frame ``i`` (0-based):

    - ``found`` ``(N,) bool`` face tracked; ``pose`` ``(N, 4)`` head [tx px, ty px, rotation deg, scale];
    - ``mdmd[type]`` ``(N,)`` the MDMD value with CF = i (NaN where HF, CF or TF has no face or lies
      outside the video); ``blocks[type]`` ``(N, 36)`` MDMD's block values and ``local[type]``
      ``(N, 36)`` the blocks' local flow magnitude HF -> CF, px at crop scale;
    - ``vector[type]`` and ``vector_tail[type]`` ``(N, 36)`` the magnitude of each block's mean
      local flow vector HF -> CF and HF -> TF (:func:`block_vector`), px at crop scale.
    """

    video: str
    fps: float
    n_frames: int
    first_number: int
    ks: dict
    found: np.ndarray
    pose: np.ndarray
    mdmd: dict
    blocks: dict
    local: dict
    vector: dict
    vector_tail: dict
    gaps: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def times(self) -> np.ndarray:
        return np.arange(self.n_frames) / self.fps

    def save(self, path: str | os.PathLike) -> None:
        arrays = {"found": self.found, "pose": self.pose}
        for t in TYPES:
            arrays |= {f"mdmd_{t}": self.mdmd[t], f"blocks_{t}": self.blocks[t], f"local_{t}": self.local[t]}
            arrays |= {f"vector_{t}": self.vector[t], f"vector_tail_{t}": self.vector_tail[t]}
        meta = {"video": self.video, "fps": self.fps, "n_frames": self.n_frames, "first_number": self.first_number, "ks": self.ks}
        meta |= {"gaps": self.gaps, "notes": self.notes, "version": SIGNALS_VERSION}
        _io.save_npz(path, meta=np.array(json.dumps(meta)), **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Signals:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("version") != SIGNALS_VERSION:
                raise SpotError(f"{path}: signals of another version ({meta.get('version')}); delete it to recompute")
            per = {k: {t: z[f"{k}_{t}"] for t in TYPES} for k in _PER_TYPE}
            return cls(meta["video"], meta["fps"], meta["n_frames"], meta["first_number"], meta["ks"], z["found"], z["pose"], **per,
                       gaps=meta["gaps"], notes=meta["notes"])  # fmt: skip

    def head_motion(self, typ: str) -> np.ndarray:
        """``(N, 4)`` how far the head moved over the ``k`` frames before each frame (absolute pose
        change, :attr:`pose`'s units; NaN for the first ``k``), for the type's ``k``."""
        k = int(self.ks[typ])
        d = np.full_like(self.pose, np.nan)
        d[k:] = self.pose[k:] - self.pose[:-k]
        return np.abs(d)

    def features(self) -> np.ndarray:
        """The learned spotter's per-frame input ``(N, F) float32`` (NaN where undefined): for each
        type's k, the blocks' MDMD and local magnitudes and the head's motion over the k frames."""
        cols = []
        for t in TYPES:
            cols += [self.blocks[t], self.local[t], self.head_motion(t)]
        return np.concatenate(cols, 1).astype(np.float32)


def signals(
    source, fps: float | None = None, name: str | None = None, first_number: int | None = None, progress: bool = False, **track_kw
) -> Signals:
    """One streamed pass over ``source`` (a video file or a frame folder, :mod:`mexpr.video`): the
    face tracked and aligned per frame (:func:`mexpr.track.follow`), and for every frame the
    blocks' flow for each type's k (:class:`Signals`).  Keeps only the last ``2 k + 1`` crops.

    ``first_number``: the number the sheets give the video's first frame (default: a frame
    folder's first file number, 0 for a video file).  Frames without a face are gaps
    (``Signals.gaps``); a video with no face in any frame is a :class:`SpotError` naming it."""
    from mexpr import flow, track

    est = _estimator()
    stream = track.follow(source, fps=fps, progress=progress, **track_kw)
    info = stream.info  # open_video's: the file's rate, or the fps given for a frame folder
    if not info.fps:
        raise SpotError(f"{source}: no frame rate known (a folder of frames); pass fps=")
    rate = float(info.fps)
    ks = ks_for(rate)
    kmax = max(ks.values())
    per = {t: {k: [] for k in _PER_TYPE} for t in TYPES}
    found, pose, crops = [], [], deque()
    for fr in stream:
        found.append(bool(fr.found))
        pose.append(np.asarray(fr.pose, np.float32) if fr.pose is not None else np.full(4, np.nan, np.float32))
        crops.append(fr.crop if fr.found else None)
        if len(crops) > 2 * kmax + 1:
            crops.popleft()
        j = len(found) - 1  # the newest frame: the tail TF = CF + k of each type
        for t, k in ks.items():
            cf = j - k
            if cf < 0:
                continue
            hf = cf - k
            ok = hf >= 0 and found[hf] and found[cf] and found[j]
            if ok:
                a, c, e = crops[hf - j - 1], crops[cf - j - 1], crops[-1]
                hc = est(a, c, None)
                ht = est(a, e, None)
                b = mdmd_blocks(hc, ht)
                lc, lt = flow.remove_global(np.stack([hc, ht]))
                per[t]["blocks"].append(b)
                per[t]["mdmd"].append(mdmd_value(b))
                per[t]["local"].append(block_magnitude(lc, local=True))
                per[t]["vector"].append(block_vector(lc))
                per[t]["vector_tail"].append(block_vector(lt))
            else:
                for key in _PER_TYPE:
                    per[t][key].append(np.nan if key == "mdmd" else np.full(BLOCKS * BLOCKS, np.nan, np.float32))
    n = len(found)
    if n == 0:
        raise SpotError(f"{source}: no frames")
    if not any(found):
        raise SpotError(f"{source}: no face found in any of its {n} frames (dlib's frontal detector; a face must be seen from the front)")
    for t in ks:  # the last k frames have no tail
        for key in _PER_TYPE[1:]:
            per[t][key] += [np.full(BLOCKS * BLOCKS, np.nan, np.float32)] * (n - len(per[t][key]))
        per[t]["mdmd"] += [np.nan] * (n - len(per[t]["mdmd"]))
    gaps = list(stream.gaps)
    notes = list(info.notes) + [f"frame {s['number']} ({s['file']}): {s['reason']}; the frame before it repeated" for s in stream.video.skipped]
    if first_number is None:
        first_number = info.first_number
    return Signals(
        video=name or Path(str(source)).stem,
        fps=rate,
        n_frames=n,
        first_number=int(first_number),
        ks={t: int(k) for t, k in ks.items()},
        found=np.array(found),
        pose=np.stack(pose),
        mdmd={t: np.array(per[t]["mdmd"], np.float32) for t in TYPES},
        blocks={t: np.stack(per[t]["blocks"]) for t in TYPES},
        local={t: np.stack(per[t]["local"]) for t in TYPES},
        vector={t: np.stack(per[t]["vector"]) for t in TYPES},
        vector_tail={t: np.stack(per[t]["vector_tail"]) for t in TYPES},
        gaps=gaps,
        notes=notes,
    )


def _source_key(source) -> str:
    p = Path(source)
    h = hashlib.sha256(str(p.resolve()).encode())
    if p.is_file():
        st = p.stat()
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    elif p.is_dir():
        for f in sorted(p.iterdir()):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def cached_signals(
    source, cache_dir: str | os.PathLike, fps: float | None = None, name: str | None = None, first_number: int | None = None, **kw
) -> Signals:
    """:func:`signals`, cached in ``cache_dir`` by the source's path, sizes and times (a rerun, or a
    resumed one, reads what is done)."""
    name = name or Path(str(source)).stem
    path = Path(cache_dir) / f"{_safe(name)}-{_source_key(source)}.npz"
    if path.is_file():
        try:
            return Signals.load(path)
        except (SpotError, OSError, KeyError, ValueError):
            pass  # another version, or a torn file: computed again
    s = signals(source, fps=fps, name=name, first_number=first_number, **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    s.save(path)
    return s


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# --------------------------------------------------------------------------------------------
# from a per-frame score to intervals


def runs_above(score: np.ndarray, threshold: float, bridge: int = 0) -> list[tuple[int, int]]:
    """Inclusive runs ``(start, end)`` of frames where ``score > threshold`` (NaN is below), runs
    separated by at most ``bridge`` frames merged."""
    above = np.nan_to_num(np.asarray(score, np.float64), nan=-np.inf) > threshold
    runs = []
    i, n = 0, len(above)
    while i < n:
        if above[i]:
            j = i
            while j + 1 < n and above[j + 1]:
                j += 1
            if runs and i - runs[-1][1] - 1 <= bridge:
                runs[-1] = (runs[-1][0], j)
            else:
                runs.append((i, j))
            i = j + 1
        else:
            i += 1
    return runs


def _length_ok(start: int, end: int, typ: str, fps: float, slack: float = 1.0) -> bool:
    n = end - start + 1
    lo, hi = frames_for(BASELINE[typ]["min_s"], fps), frames_for(BASELINE[typ]["max_s"], fps)
    return n >= lo / slack and (hi is None or n <= hi * slack)


def _interval_rows(sig: Signals, typ: str, runs, value: np.ndarray, apex_signal: np.ndarray) -> list[dict]:
    rows = []
    for s, e in runs:
        seg = np.nan_to_num(apex_signal[s : e + 1], nan=-np.inf)
        a = s + int(np.argmax(seg))
        v = value[s : e + 1]
        rows.append(
            {
                "video": sig.video,
                "start_frame": int(s + sig.first_number),
                "apex_frame": int(a + sig.first_number),
                "end_frame": int(e + sig.first_number),
                "start_s": s / sig.fps,
                "apex_s": a / sig.fps,
                "end_s": e / sig.fps,
                "type": typ,
                "score": float(np.nanmean(v)) if np.isfinite(v).any() else float("nan"),
            }
        )
    return rows


def intervals_table(rows: Iterable[dict]) -> pd.DataFrame:
    """Rows as an ``intervals.csv`` table (:data:`INTERVAL_COLUMNS`), sorted by video and start."""
    df = pd.DataFrame(list(rows), columns=INTERVAL_COLUMNS).astype(_INTERVAL_DTYPES)
    return df.sort_values(["video", "start_frame", "type"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# MDMD


def mdmd_contrast(sig: Signals, typ: str) -> np.ndarray:
    """The baseline's contrast ``C(i) = F(i) - (F(i - m) + F(i + m)) / 2``, m = k - 1, ``(N,)``
    (NaN where a term is missing)."""
    f = sig.mdmd[typ].astype(np.float64)
    m = max(1, int(sig.ks[typ]) - 1)
    c = np.full_like(f, np.nan)
    if len(f) > 2 * m:
        c[m:-m] = f[m:-m] - (f[: -2 * m] + f[2 * m :]) / 2
    return c


def mdmd_threshold(c: np.ndarray, p: float) -> float:
    """``mean + p (max - mean)`` of the contrast (the baseline's threshold)."""
    if not np.isfinite(c).any():
        return np.inf
    mean, mx = np.nanmean(c), np.nanmax(c)
    return float(mean + p * (mx - mean))


#: The ``p`` values MDMD chooses from on the training subjects (the baseline's 0.01 ... 0.99).
MDMD_PS = tuple(round(0.01 * i, 2) for i in range(1, 100, 2))


def mdmd_spot(sig: Signals, p: dict[str, float] | float = 0.01) -> pd.DataFrame:
    """MDMD's intervals in one video (module text); ``p`` per type (the baseline's 0.01 by default)."""
    rows = []
    for typ in TYPES:
        pt = p[typ] if isinstance(p, dict) else p
        c = mdmd_contrast(sig, typ)
        runs = [r for r in runs_above(c, mdmd_threshold(c, pt)) if _length_ok(*r, typ, sig.fps)]
        rows += _interval_rows(sig, typ, runs, c, sig.mdmd[typ])
    return intervals_table(rows)


def _truth_of(truth: pd.DataFrame, sigs: Sequence[Signals]) -> pd.DataFrame:
    names = {s.video for s in sigs}
    return truth[truth["video"].isin(names)]


def fit_mdmd(sigs: Sequence[Signals], truth: pd.DataFrame) -> dict[str, float]:
    """Each type's ``p`` (:data:`MDMD_PS`) with the best F1 on these (training) videos."""
    truth = _truth_of(truth, sigs)
    best = {}
    for typ in TYPES:
        cs = [(s, mdmd_contrast(s, typ)) for s in sigs]
        want = _intervals_by_video(truth, typ)
        scored = []
        for p in MDMD_PS:
            found = {}
            for s, c in cs:
                runs = [r for r in runs_above(c, mdmd_threshold(c, p)) if _length_ok(*r, typ, s.fps)]
                found[s.video] = [(a + s.first_number, b + s.first_number) for a, b in runs]
            scored.append((_f1(found, want), -p, p))
        best[typ] = max(scored)[2]
    return best


# --------------------------------------------------------------------------------------------
# the learned spotter (ours, after SOFTNet)


def frame_labels(sig: Signals, truth: pd.DataFrame) -> np.ndarray:
    """``(N, 2) float32``: 1 where frame i lies inside a ground-truth interval of each type."""
    y = np.zeros((sig.n_frames, len(TYPES)), np.float32)
    rows = truth[truth["video"] == sig.video]
    for r in rows.itertuples():
        s = max(0, int(r.start_frame) - sig.first_number)
        e = min(sig.n_frames - 1, int(r.end_frame) - sig.first_number)
        if e >= s:
            y[s : e + 1, TYPES.index(r.type)] = 1.0
    return y


def _robust(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame features ``(N, F)`` robustly standardised over the video (median, interquartile
    range), clipped to +-20, NaN as 0; and where they were all defined ``(N,) bool``."""
    valid = np.isfinite(x).all(1)
    if valid.any():
        med = np.nanmedian(x[valid], 0)
        q75, q25 = np.nanpercentile(x[valid], [75, 25], 0)
        x = (x - med) / (q75 - q25 + 1e-3)
    return np.nan_to_num(np.clip(x, -20, 20), nan=0.0).astype(np.float32), valid


def normalised_features(sig: Signals) -> np.ndarray:
    """:meth:`Signals.features` per video robustly standardised (median, interquartile range), NaN
    as 0, with a last column saying whether the frame's features are defined ``(N, F + 1)``."""
    x, valid = _robust(sig.features())
    return np.concatenate([x, valid[:, None].astype(np.float32)], 1).astype(np.float32)


def build_spotter(n_features: int, width: int = 32, seed: int = 0):
    """The learned spotter: a shallow, fully convolutional temporal CNN ``(None, n_features) ->
    (None, 2)`` sigmoid scores (micro, macro) per frame; dilated 1-D convolutions see about
    +-2 s at 30 fps."""
    import keras
    from keras import layers

    init = lambda i: keras.initializers.GlorotUniform(seed=seed * 100 + i)  # noqa: E731
    inp = keras.Input((None, n_features), name="features")
    x = layers.Conv1D(width, 1, activation="relu", kernel_initializer=init(0), name="embed")(inp)
    x = layers.Dropout(0.2, seed=seed, name="dropout")(x)
    for i, d in enumerate((1, 2, 4, 8, 16), start=1):
        x = layers.Conv1D(width, 5, dilation_rate=d, padding="same", activation="relu", kernel_initializer=init(i), name=f"tconv{i}")(x)
    out = layers.Conv1D(len(TYPES), 1, activation="sigmoid", dtype="float32", kernel_initializer=init(9), name="inside")(x)
    return keras.Model(inp, out, name="spotter")


def _weighted_bce(pos_weight: np.ndarray):
    from keras import ops

    w = np.asarray(pos_weight, np.float32)

    def loss(y, p):
        p = ops.clip(p, 1e-6, 1 - 1e-6)
        return -ops.mean(w * y * ops.log(p) + (1 - y) * ops.log(1 - p), axis=-1)

    return loss


def _windows(xs: list[np.ndarray], ys: list[np.ndarray], length: int, rng: np.random.Generator, n: int):
    xb, yb = [], []
    for _ in range(n):
        v = int(rng.integers(len(xs)))
        x, y = xs[v], ys[v]
        if len(x) <= length:
            pad = length - len(x)
            xb.append(np.pad(x, ((0, pad), (0, 0))))
            yb.append(np.pad(y, ((0, pad), (0, 0))))
            continue
        s = int(rng.integers(len(x) - length + 1))
        xb.append(x[s : s + length])
        yb.append(y[s : s + length])
    return np.stack(xb), np.stack(yb)


# --------------------------------------------------------------------------------------------
# the learned spotter's micro-expressions: a linear detector of the apex, its peaks the intervals

#: The detector's regularisation strengths (scikit-learn's ``C``) and log-odds thresholds, chosen
#: together by leave-one-subject-out F1 over the training subjects (:func:`fit_micro`).
MICRO_CS = (0.01, 0.1, 1.0)
MICRO_THRESHOLDS = tuple(round(-1.0 + 0.25 * i, 2) for i in range(29))

#: The per-frame score's Gaussian smoothing (sigma, s) and the window within which a peak is the
#: highest score (s): one frame and nine frames at 30 fps.
MICRO_SMOOTH_S = 1 / 30
MICRO_PEAK_S = 0.3


def micro_features(sig: Signals) -> tuple[np.ndarray, np.ndarray]:
    """The micro detector's input per frame, robustly standardised over the video, and where it is
    defined: ``(N, 112) float32, (N,) bool``.  For frame ``i`` as the apex: each block's mean
    local flow vector's magnitude from ``i - k`` (micro ``k``) to ``i``, the same less its value
    to ``i + k`` (a micro-expression returns, a drift or a new pose stays), the macro ``k``'s to
    ``i``, and the head's motion over the micro ``k``."""
    v, vt = sig.vector["micro"], sig.vector_tail["micro"]
    return _robust(np.concatenate([v, v - vt, sig.vector["macro"], sig.head_motion("micro")], 1).astype(np.float32))


def _apexes(rows: pd.DataFrame) -> np.ndarray:
    """The rows' apex frames (the middle frame where a table has no ``apex_frame``)."""
    if "apex_frame" in rows:
        return rows["apex_frame"].to_numpy(np.int64)
    return ((rows["start_frame"] + rows["end_frame"]) // 2).to_numpy(np.int64)


def micro_targets(sig: Signals, truth: pd.DataFrame) -> np.ndarray:
    """``(N,) int8``: 1 at a micro-expression's apex and the frame either side of it (at 30 fps;
    ``fps / 30`` frames), -1 at its other frames (not used in training: the motion since ``i - k``
    rises and falls through them), 0 elsewhere."""
    y = np.zeros(sig.n_frames, np.int8)
    rows = truth[(truth["video"] == sig.video) & (truth["type"] == "micro")]
    half = max(1, int(round(sig.fps / 30)))
    for r in rows.itertuples():
        s, e = max(0, int(r.start_frame) - sig.first_number), min(sig.n_frames - 1, int(r.end_frame) - sig.first_number)
        y[s : e + 1] = np.where(y[s : e + 1] == 1, 1, -1)
    for apex in _apexes(rows):
        a = int(apex) - sig.first_number
        if 0 <= a < sig.n_frames:
            y[max(0, a - half) : a + half + 1] = 1
    return y


@dataclass
class MicroDetector:
    """The learned spotter's micro-expressions (ours, after SOFTNet's apex-centred scores and
    fixed-length intervals): a logistic regression scores every frame as an apex from
    :func:`micro_features`; the score, lightly smoothed, peaks above ``threshold`` (log-odds) are
    apexes, each the centre of an interval ``before_s`` before and ``after_s`` after it (the
    training intervals' medians).  A micro-expression's motion at 30 fps is about as large as the
    flow's noise, too faint to hold a score up from onset to offset: the runs of frames the temporal
    CNN returned matched 0 to 5 of 57 per seed.  What tells it apart is where and how it moves at the
    apex: a few blocks pulled one way, gone again ``k`` frames later (docs/benchmarks.md, "The
    micro-expressions' signal": without either, the mean vector or its return, F1 falls by half or more)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float
    before_s: float
    after_s: float
    C: float = 0.1
    info: dict = field(default_factory=dict)

    def decision(self, sig: Signals) -> np.ndarray:
        """``(N,)`` smoothed log-odds that frame ``i`` is an apex; NaN where undefined."""
        from scipy.ndimage import gaussian_filter1d

        x, valid = micro_features(sig)
        d = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        d = np.where(valid, d, -20.0)
        d = gaussian_filter1d(d.astype(np.float64), max(MICRO_SMOOTH_S * sig.fps, 1e-3), mode="nearest")
        d[~valid] = np.nan
        return d

    def intervals(self, sig: Signals, threshold: float | None = None, decision: np.ndarray | None = None) -> list[tuple[int, int, int]]:
        """``(start, end, apex)`` frame indices of the spotted micro-expressions in ``sig``."""
        d = self.decision(sig) if decision is None else decision
        th = self.threshold if threshold is None else threshold
        return _peak_intervals(d, th, sig.fps, self.before_s, self.after_s)

    def to_json(self) -> dict:
        out = {k: getattr(self, k) for k in ("intercept", "threshold", "before_s", "after_s", "C", "info")}
        return out | {k: np.asarray(getattr(self, k), np.float64).tolist() for k in ("mean", "scale", "coef")}

    @classmethod
    def from_json(cls, d: dict) -> MicroDetector:
        arrays = {k: np.asarray(d[k], np.float32) for k in ("mean", "scale", "coef")}
        return cls(**arrays, **{k: d[k] for k in ("intercept", "threshold", "before_s", "after_s", "C")}, info=d.get("info", {}))


def _peak_intervals(d: np.ndarray, threshold: float, fps: float, before_s: float, after_s: float) -> list[tuple[int, int, int]]:
    """The peaks of ``d`` above ``threshold``, strongest first, each the highest within
    :data:`MICRO_PEAK_S` of every stronger one kept, as ``(start, end, apex)`` sorted by start."""
    d = np.nan_to_num(np.asarray(d, np.float64), nan=-np.inf)
    n = len(d)
    gap = max(1, int(round(MICRO_PEAK_S * fps / 2)))
    b, a = int(round(before_s * fps)), int(round(after_s * fps))
    kept: list[int] = []
    for i in np.argsort(-d, kind="stable"):
        if d[i] <= threshold:
            break
        lo, hi = max(0, i - gap), min(n, i + gap + 1)
        if d[i] < d[lo:hi].max() or any(abs(int(i) - j) <= gap for j in kept):
            continue
        kept.append(int(i))
    return sorted((max(0, j - b), min(n - 1, j + a), j) for j in kept)


def _fit_linear(xs: list[np.ndarray], ys: list[np.ndarray], C: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A class-balanced logistic regression of ``ys`` (0/1; -1 left out) on ``xs``: ``(mean, scale,
    coef, intercept)`` of ``((x - mean) / scale) @ coef + intercept``."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([a[b >= 0] for a, b in zip(xs, ys)]).astype(np.float64)
    y = np.concatenate([b[b >= 0] for b in ys])
    if len(np.unique(y)) < 2:
        raise SpotError("the micro-expression detector needs training videos with micro-expressions and frames without")
    mean, scale = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit((x - mean) / scale, y)
    return mean.astype(np.float32), scale.astype(np.float32), clf.coef_[0].astype(np.float32), float(clf.intercept_[0])


def fit_micro(sigs_by_subject: dict[str, list[Signals]], truth: pd.DataFrame) -> MicroDetector:
    """Train the micro-expression detector on these (training) subjects' videos: ``C``
    (:data:`MICRO_CS`) and the threshold (:data:`MICRO_THRESHOLDS`) with the best F1 when each
    subject in turn is scored by a detector fitted on the others (every subject's own, where there
    is one only), then the detector fitted on all of them.  Deterministic: no seed."""
    subs = sorted(sigs_by_subject)
    sigs = [s for k in subs for s in sigs_by_subject[k]]
    feats = {s.video: micro_features(s) for s in sigs}
    xs = {v: f[0] for v, f in feats.items()}
    ys = {s.video: np.where(feats[s.video][1], micro_targets(s, truth), -1).astype(np.int8) for s in sigs}
    t = truth[truth["video"].isin(xs) & (truth["type"] == "micro")]
    fps = t["video"].map({s.video: s.fps for s in sigs}).to_numpy(np.float64)
    apex = _apexes(t)
    before = float(np.median((apex - t["start_frame"].to_numpy()) / fps)) if len(t) else 0.15
    after = float(np.median((t["end_frame"].to_numpy() - apex) / fps)) if len(t) else 0.2

    def fit(videos, C):
        m, sc, w, b = _fit_linear([xs[v] for v in videos], [ys[v] for v in videos], C)
        return MicroDetector(m, sc, w, b, 0.0, before, after, C)

    folds = [(sorted(s.video for k2 in subs if k2 != k for s in sigs_by_subject[k2]), sigs_by_subject[k]) for k in subs] if len(subs) > 1 else [
        ([s.video for s in sigs], sigs)]  # fmt: skip
    want = _intervals_by_video(t, "micro")
    best = None
    for C in MICRO_CS:
        tally = np.zeros((len(MICRO_THRESHOLDS), 3), np.int64)
        for train_videos, held in folds:
            try:
                det = fit(train_videos, C)
            except SpotError:  # these subjects' videos hold no micro-expression with flow at its apex
                continue
            ds = [(s, det.decision(s)) for s in held]
            for j, th in enumerate(MICRO_THRESHOLDS):
                found = {s.video: [(a + s.first_number, b + s.first_number) for a, b, _ in det.intervals(s, th, d)] for s, d in ds}
                tally[j] += _tally(found, {s.video: want.get(s.video, []) for s, _ in ds})
        for j, th in enumerate(MICRO_THRESHOLDS):
            f1 = prf(*tally[j])[2]
            key = (f1, -abs(np.log10(C) + 1), th)  # ties: C nearer 0.1, then the higher threshold
            if best is None or key > best[0]:
                best = (key, C, th, f1)
    _, C, th, f1 = best
    det = fit([s.video for s in sigs], C)
    det.threshold = float(th)
    det.info = {"fit_subjects": subs, "inner_f1": round(float(f1), 4), "chosen_by": "leave one training subject out"}
    return det


def _try_fit_micro(sigs_by_subject: dict[str, list[Signals]], truth: pd.DataFrame) -> MicroDetector | None:
    """:func:`fit_micro`, or None where these videos hold no micro-expression to learn from (the
    network then spots both types)."""
    try:
        return fit_micro(sigs_by_subject, truth)
    except SpotError:
        return None


@dataclass
class LearnedSpotter:
    """A trained spotter: the network and each type's threshold (chosen on validation subjects),
    and the micro-expression detector (:class:`MicroDetector`) where it has one: then the
    micro-expressions are its peaks, and the network's micro score is not used (a spotter saved
    before it existed spots both types with the network)."""

    model: object
    thresholds: dict
    info: dict = field(default_factory=dict)
    micro: MicroDetector | None = None

    def scores(self, sig: Signals) -> np.ndarray:
        """``(N, 2)`` per-frame scores (micro, macro) in 0..1; NaN where the frame has no flow at all
        (the video's first and last ``k`` frames, face gaps), so nothing is spotted there.  With a
        micro detector, the micro column is its probability that the frame is an apex."""
        return self._scores(sig)[0]

    def _scores(self, sig: Signals) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`scores`, and the micro detector's log-odds (None without one)."""
        x = normalised_features(sig)[None]
        sc = np.array(self.model(x, training=False))[0]
        sc[~np.isfinite(sig.features()).any(1)] = np.nan
        d = None
        if self.micro is not None:
            d = self.micro.decision(sig)
            sc[:, 0] = 1 / (1 + np.exp(-d))
        return sc, d

    def spot(self, sig: Signals, thresholds: dict | None = None) -> pd.DataFrame:
        th = thresholds or self.thresholds
        sc, d = self._scores(sig)
        rows = []
        for i, typ in enumerate(TYPES):
            if typ == "micro" and self.micro is not None:
                found = self.micro.intervals(sig, decision=d)
                rows += _interval_rows(sig, typ, [(s, e) for s, e, _ in found], sc[:, i], sc[:, i])
                continue
            runs = [r for r in runs_above(sc[:, i], th[typ], bridge=1) if _length_ok(*r, typ, sig.fps, slack=1.5)]
            rows += _interval_rows(sig, typ, runs, sc[:, i], sc[:, i])
        return intervals_table(rows)

    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(folder / "spotter.keras")
        meta = {"thresholds": self.thresholds, "info": self.info} | ({"micro": self.micro.to_json()} if self.micro is not None else {})
        _io.atomic_write_text(folder / "spotter.json", json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> LearnedSpotter:
        import keras

        folder = Path(folder)
        if not (folder / "spotter.keras").is_file():
            raise SpotError(
                f"{folder}: no trained spotter (spotter.keras); train one with `mexpr spot CORPUS_ROOT --run RUN` (CAS(ME)², SAMM Long Videos or a synthetic one)"
            )
        meta = json.loads((folder / "spotter.json").read_text())
        micro = MicroDetector.from_json(meta["micro"]) if "micro" in meta else None
        return cls(keras.models.load_model(folder / "spotter.keras", compile=False), meta["thresholds"], meta.get("info", {}), micro)


#: The thresholds the learned spotter chooses from.
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))


def _subjects(sigs_by_subject: dict, seed: int, val_fraction: float) -> tuple[list, list]:
    subs = sorted(sigs_by_subject)
    rng = np.random.default_rng([seed, 7])
    order = [subs[i] for i in rng.permutation(len(subs))]
    n_val = max(1, int(round(len(subs) * val_fraction))) if len(subs) > 1 else 0
    return sorted(order[n_val:]), sorted(order[:n_val])


def fit_learned(
    sigs_by_subject: dict[str, list[Signals]],
    truth: pd.DataFrame,
    seed: int = 0,
    epochs: int = 40,
    steps: int = 20,
    window: float = 8.0,
    batch: int = 8,
    val_fraction: float = 0.25,
    verbose: int = 0,
    micro: MicroDetector | None | str = "fit",
) -> LearnedSpotter:
    """Train the learned spotter on these (training) subjects' videos: a validation split of the
    subjects (``val_fraction``, seeded) chooses each type's threshold by F1, the rest trains the
    network (``epochs`` x ``steps`` batches of ``batch`` windows of ``window`` seconds); and the
    micro-expression detector on all of them (:func:`fit_micro`), where their videos hold
    micro-expressions.  ``micro``: ``"fit"`` (fit it here), or what fitting it on the same
    subjects already gave (a :class:`MicroDetector`, or None: none to learn from)."""
    import keras

    fit_subs, val_subs = _subjects(sigs_by_subject, seed, val_fraction)
    fit = [s for k in fit_subs for s in sigs_by_subject[k]]
    val = [s for k in val_subs for s in sigs_by_subject[k]] or fit
    xs = [normalised_features(s) for s in fit]
    ys = [frame_labels(s, truth) for s in fit]
    pos = np.concatenate(ys).mean(0)
    pos_weight = np.clip((1 - pos) / np.maximum(pos, 1e-4), 1.0, 50.0) ** 0.5
    keras.utils.set_random_seed(seed)
    model = build_spotter(xs[0].shape[1], seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=_weighted_bce(pos_weight))
    rng = np.random.default_rng([seed, 3])
    length = max(16, frames_for(window, fit[0].fps))

    class Windows(keras.utils.PyDataset):  # epochs x steps batches, each epoch's windows drawn as it starts (one fit call)
        def __init__(self):
            super().__init__()
            self.epoch, self.xb, self.yb = -1, None, None

        def __len__(self):
            return epochs * steps

        def __getitem__(self, i):
            e, j = divmod(int(i), steps)
            while self.epoch < e:  # batches come in order (no workers, no shuffling)
                self.xb, self.yb = _windows(xs, ys, length, rng, steps * batch)
                self.epoch += 1
            return self.xb[j * batch : (j + 1) * batch], self.yb[j * batch : (j + 1) * batch]

    model.fit(Windows(), epochs=1, verbose=verbose, shuffle=False)
    spotter = LearnedSpotter(model, {t: 0.5 for t in TYPES}, {"fit_subjects": fit_subs, "val_subjects": val_subs, "seed": seed})
    vt = _truth_of(truth, val)
    scores = [(s, spotter.scores(s)) for s in val]
    for i, typ in enumerate(TYPES):
        want = _intervals_by_video(vt, typ)
        best = []
        for th in THRESHOLDS:
            found = {}
            for s, sc in scores:
                runs = [r for r in runs_above(sc[:, i], th, bridge=1) if _length_ok(*r, typ, s.fps, slack=1.5)]
                found[s.video] = [(a + s.first_number, b + s.first_number) for a, b in runs]
            best.append((_f1(found, want), -abs(th - 0.5), th))
        spotter.thresholds[typ] = max(best)[2]
    spotter.micro = _try_fit_micro(sigs_by_subject, truth) if micro == "fit" else micro
    return spotter


# --------------------------------------------------------------------------------------------
# the MEGC protocol: leave one subject out


def truth_table(intervals: pd.DataFrame) -> pd.DataFrame:
    """A long-video loader's table (:func:`mexpr.longvideo.load`) as ground truth for :func:`score`:
    ``video, start_frame, apex_frame, end_frame, type``, frames as the sheet numbers them."""
    return pd.DataFrame(
        {
            "video": intervals["video_key"] if "video_key" in intervals else intervals["video"],
            "subject_id": intervals["subject_id"],
            "start_frame": intervals["onset"].astype(int),
            "apex_frame": intervals["apex"].astype(int),
            "end_frame": intervals["offset"].astype(int),
            "type": intervals["type"],
        }
    )


def loso(
    sigs: Sequence[Signals],
    subjects: Sequence[str],
    truth: pd.DataFrame,
    methods: Sequence[str] = METHODS,
    seeds: Sequence[int] = (0,),
    progress: bool = False,
    held_out: Sequence[str] | None = None,
    **learned_kw,
) -> dict:
    """Leave-one-subject-out spotting of every video: for each held-out subject, MDMD's ``p`` and
    the learned spotter (network and thresholds) come from the other subjects only.  Returns
    ``{"intervals": DataFrame (method, seed, subject_id + intervals.csv's columns), "scores":
    DataFrame (method, seed + :func:`score`'s columns), "fits": [{method, seed, test_subject,
    fit_subjects, ...}], "spotters": {(seed, test subject): the fold's LearnedSpotter}}``.  ``held_out``: only these subjects' folds (default: every subject's);
    the scores then count those subjects' videos only."""
    from tqdm.auto import tqdm

    for m in methods:
        if m not in METHODS:
            raise SpotError(f"unknown spotting method {m!r}; valid: {', '.join(METHODS)}")
    by_subject: dict[str, list[Signals]] = {}
    for s, sub in zip(sigs, subjects):
        by_subject.setdefault(sub, []).append(s)
    if len(by_subject) < 2:
        raise SpotError(f"leave-one-subject-out needs at least 2 subjects, got {len(by_subject)}")
    spotted, fits, spotters, micros = [], [], {}, {}
    tests = sorted(by_subject) if held_out is None else sorted(held_out)
    unknown = set(tests) - set(by_subject)
    if unknown:
        raise SpotError(f"held_out names subjects without videos: {sorted(unknown)}")
    plan = [(m, seed, test) for m in methods for seed in (seeds if m == "learned" else seeds[:1]) for test in tests]
    for m, seed, test in tqdm(plan, desc="spotting folds", unit="fold", disable=not progress):
        train = {k: v for k, v in by_subject.items() if k != test}
        train_truth = truth[truth["video"].isin({s.video for v in train.values() for s in v})]
        if m == "mdmd":
            p = fit_mdmd([s for v in train.values() for s in v], train_truth)
            found = [mdmd_spot(s, p) for s in by_subject[test]]
            fits.append({"method": m, "seed": seed, "test_subject": test, "fit_subjects": sorted(train), "p": p})
        else:
            if test not in micros:  # deterministic: one per fold, whatever the seed
                micros[test] = _try_fit_micro(train, train_truth)
            sp = fit_learned(train, train_truth, seed=seed, micro=micros[test], **learned_kw)
            spotters[(seed, test)] = sp
            found = [sp.spot(s) for s in by_subject[test]]
            fits.append({"method": m, "seed": seed, "test_subject": test, "thresholds": dict(sp.thresholds), **sp.info})
            if sp.micro is not None:
                fits[-1]["micro"] = {"C": sp.micro.C, "threshold": sp.micro.threshold, "before_s": sp.micro.before_s, "after_s": sp.micro.after_s,
                                     **sp.micro.info}  # fmt: skip
        for df in found:
            spotted.append(df.assign(method=m, seed=seed, subject_id=test))
    intervals = pd.concat(spotted, ignore_index=True) if spotted else pd.DataFrame(columns=[*INTERVAL_COLUMNS, "method", "seed", "subject_id"])
    scores = []
    scored_truth = truth if held_out is None else truth[truth["video"].isin({s.video for t in tests for s in by_subject[t]})]
    for (m, seed), df in intervals.groupby(["method", "seed"], sort=False):
        scores.append(score(df, scored_truth).assign(method=m, seed=seed))
    for m in methods:  # a method that spotted nothing at all still gets its (zero) row
        if not any((sc["method"] == m).any() for sc in scores):
            scores.append(score(intervals.iloc[:0], scored_truth).assign(method=m, seed=seeds[0]))
    return {"intervals": intervals, "scores": pd.concat(scores, ignore_index=True), "fits": fits, "spotters": spotters}


def summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds of each method's F1 (and precision, recall) per type."""
    g = scores.groupby(["method", "type"], sort=False)
    out = g[["f1", "precision", "recall"]].agg(["mean", "std"]).fillna(0.0)
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out["seeds"] = g.size()
    return out.reset_index()


# --------------------------------------------------------------------------------------------
# the apex of a clip


def apex_signal(frames: np.ndarray) -> np.ndarray:
    """How far frame ``t`` is from *both* ends of the clip, per frame ``(T,)``: the smaller of the
    face's motion since the first frame and its motion still to come before the last (each the
    mean of the top third of the blocks' local flow magnitude, global motion removed).  An
    expression's apex is far from its onset and its offset; a slow drift or a lighting change grows
    towards one end only, and the two-sided form cancels it (chosen on the quick run's clips, seed 0,
    over the one-sided motion since onset: notebook 10, docs/benchmarks.md).  ``frames``: aligned
    crops ``(T, H, W)`` grey or ``(T, H, W, 3)`` RGB uint8."""
    import cv2

    frames = np.asarray(frames)
    if frames.ndim == 4:
        frames = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    if frames.ndim != 3 or len(frames) < 2:
        raise SpotError(f"apex estimation needs (T, H, W) frames with T >= 2, got shape {frames.shape}")
    est = _estimator()
    since = np.zeros(len(frames), np.float32)
    until = np.zeros(len(frames), np.float32)
    for t in range(1, len(frames)):
        since[t] = mdmd_value(block_magnitude(est(frames[0], frames[t], None)))
    for t in range(len(frames) - 1):
        until[t] = mdmd_value(block_magnitude(est(frames[-1], frames[t], None)))
    return np.minimum(since, until)


def estimate_apex(frames: np.ndarray, smooth: float = 1.0) -> tuple[int, np.ndarray]:
    """The apex of a clip (onset..offset aligned crops): the frame of peak :func:`apex_signal`
    (lightly smoothed, ``smooth`` frames' Gaussian sigma), where a sheet gives none (SMIC; SAMM's
    and CAS(ME)³'s -1; CASME II's ``/``).  Returns ``(index into frames, signal)``."""
    from scipy.ndimage import gaussian_filter1d

    sig = apex_signal(frames)
    sm = gaussian_filter1d(sig.astype(np.float64), smooth) if smooth > 0 else sig
    return int(np.argmax(sm)), sig


# --------------------------------------------------------------------------------------------
# a corpus, and a user's videos: what `mexpr spot` runs


def corpus_signals(roots, cache_dir: str | os.PathLike, progress: bool = True, jobs: int = 1) -> dict:
    """Every long video of the corpora at ``roots`` (:func:`mexpr.longvideo.load` / ``videos``) as
    :class:`Signals`, cached in ``cache_dir`` (an interrupted run resumes).  A video that cannot
    be read, or shows no face, is skipped and recorded; the run carries on.  Returns
    ``{"signals": [...], "subjects": [...], "truth": DataFrame (:func:`truth_table`),
    "videos": DataFrame, "skipped": [{video, reason}], "quirks": [...]}``."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    from mexpr import longvideo
    from mexpr.video import VideoError

    intervals = longvideo.load(roots, errors="skip")
    vids = longvideo.videos(roots, intervals)

    def one(row):
        try:
            return cached_signals(
                row["video_path"], cache_dir, fps=float(row["fps"]), name=row["video_key"], first_number=int(row["first_frame"])
            ), None
        except (SpotError, VideoError, OSError) as e:
            return None, str(e)

    rows = [r for _, r in vids.iterrows()]
    bar = tqdm(total=len(rows), desc="spotting signals", unit="video", disable=not progress)
    sigs, subjects, skipped = [], [], []
    with bar:
        for row, (sig, why) in zip(rows, Parallel(n_jobs=jobs, return_as="generator")(delayed(one)(r) for r in rows)):
            bar.update()
            if sig is None:
                skipped.append({"video": row["video_key"], "reason": why})
                continue
            sigs.append(sig)
            subjects.append(row["subject_id"])
    skipped += [{"video": f"{s.get('sheet', '')} row {s.get('row', '')}", "reason": s.get("reason", "")} for s in intervals.attrs.get("skipped", [])]
    return {
        "signals": sigs,
        "subjects": subjects,
        "truth": truth_table(intervals),
        "videos": vids,
        "skipped": skipped,
        "quirks": intervals.attrs.get("quirks", []),
    }


def spot_videos(sources: Sequence, method: str = "mdmd", spotter: LearnedSpotter | None = None, p: dict | float | None = None,
                fps: float | None = None, progress: bool = True) -> tuple[pd.DataFrame, list[dict]]:  # fmt: skip
    """Spot every video in ``sources`` (files or frame folders) with ``method``: ``"mdmd"`` with
    ``p`` (the baseline's 0.01 where None), or ``"learned"`` with a trained ``spotter``.  Returns
    ``(intervals.csv's table, one record per video: frames, fps, gaps, notes, or the error that
    skipped it)``; a video that cannot be read or shows no face is recorded and the rest go on."""
    from mexpr.video import VideoError

    if method not in METHODS:
        raise SpotError(f"unknown spotting method {method!r}; valid: {', '.join(METHODS)}")
    if method == "learned" and spotter is None:
        raise SpotError("the learned spotter needs a trained spotter (LearnedSpotter.load(folder))")
    tables, records = [], []
    for src in sources:
        try:
            sig = signals(src, fps=fps, progress=progress)
        except (SpotError, VideoError) as e:
            records.append({"video": str(src), "status": "skipped", "reason": str(e)})
            continue
        found = mdmd_spot(sig, 0.01 if p is None else p) if method == "mdmd" else spotter.spot(sig)
        tables.append(found)
        records.append({"video": str(src), "status": "spotted", "frames": sig.n_frames, "fps": sig.fps, "intervals": len(found),
                        "face_frames": int(sig.found.sum()), "gaps": sig.gaps, "notes": sig.notes})  # fmt: skip
    table = pd.concat(tables, ignore_index=True) if tables else intervals_table([])
    return table, records


def evaluate_corpus(
    roots,
    cache_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    seeds: Sequence[int] = (0,),
    methods: Sequence[str] = METHODS,
    epochs: int | None = None,
    jobs: int = 1,
    progress: bool = True,
    spotter_dir: str | os.PathLike | None = None,
) -> dict:
    """The MEGC protocol on the long-video corpora at ``roots`` (:func:`corpus_signals`, :func:`loso`),
    written to ``out_dir``: ``intervals.csv`` (every held-out video's spotted intervals, with
    method, seed and subject), ``scores.csv`` (per method, seed and type), ``summary.csv`` (mean ±
    std over seeds), ``manifest.json`` (videos, what was skipped and why, each fold's fit).  With
    ``spotter_dir`` it also trains the learned spotter on every subject (the first seed) and saves
    it there, with MDMD's ``p`` fitted on every subject beside it (``mdmd.json``): what
    ``mexpr spot VIDEO --run RUN`` uses on new videos."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = corpus_signals(roots, cache_dir, progress=progress, jobs=jobs)
    if not data["signals"]:
        raise SpotError(f"{', '.join(map(str, roots))}: no video could be read (" + "; ".join(s["reason"] for s in data["skipped"][:3]) + ")")
    kw = {} if epochs is None else {"epochs": int(epochs)}
    res = loso(data["signals"], data["subjects"], data["truth"], methods=methods, seeds=tuple(seeds), progress=progress, **kw)
    summ = summary(res["scores"])
    _io.atomic_write_text(out / "intervals.csv", res["intervals"].to_csv(index=False))
    _io.atomic_write_text(out / "scores.csv", res["scores"].to_csv(index=False))
    _io.atomic_write_text(out / "summary.csv", summ.to_csv(index=False))
    result = {"summary": summ, "scores": res["scores"], "intervals": res["intervals"], "fits": res["fits"], "spotters": res["spotters"], "skipped": data["skipped"],
              "n_videos": len(data["signals"]), "n_subjects": len(set(data["subjects"])), "truth": data["truth"], "signals": data["signals"],
              "subjects": data["subjects"]}  # fmt: skip
    if spotter_dir is not None:
        by_subject: dict[str, list[Signals]] = {}
        for s, sub in zip(data["signals"], data["subjects"]):
            by_subject.setdefault(sub, []).append(s)
        if "learned" in methods:
            sp = fit_learned(by_subject, data["truth"], seed=int(seeds[0]), **kw)
            sp.save(spotter_dir)
            result["spotter_dir"] = str(spotter_dir)
        p = fit_mdmd(data["signals"], data["truth"])
        Path(spotter_dir).parent.mkdir(parents=True, exist_ok=True)
        _io.atomic_write_text(Path(spotter_dir).parent / "mdmd.json", json.dumps({"p": p, "fit_subjects": sorted(by_subject)}, indent=2) + "\n")
    manifest = {
        "roots": [str(r) for r in roots],
        "videos": len(data["signals"]),
        "subjects": sorted(set(data["subjects"])),
        "seeds": list(seeds),
        "methods": list(methods),
        "skipped": data["skipped"],
        "quirks": data["quirks"],
        "fits": res["fits"],
    }
    _io.atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")
    return result


# --------------------------------------------------------------------------------------------
# what the false positives were


#: Distractor events a synthetic long video's ``groundtruth.json`` lists (:mod:`mexpr.synth.longvideo`).
DISTRACTORS = ("blink", "head_turn", "talk", "light")


def video_events(folder: str | os.PathLike) -> list[dict]:
    """The events of a synthetic long video (``groundtruth.json`` beside its frames: intervals and
    distractors, ``type``, ``start``, ``end`` in frame numbers); ``[]`` for a real video."""
    path = Path(folder) / "groundtruth.json"
    if not path.is_file():
        return []
    d = json.loads(path.read_text())
    out = [{"type": e["type"], "start": int(e["start"]), "end": int(e["end"])} for e in d.get("events", [])]
    return out + [{"type": e["type"], "start": int(e["onset"]), "end": int(e["offset"])} for e in d.get("intervals", []) if "onset" in e]


def false_positives(spotted: pd.DataFrame, truth: pd.DataFrame, events: dict[str, list[dict]] | None = None,
                    threshold: float = IOU_THRESHOLD) -> pd.DataFrame:  # fmt: skip
    """Every spotted interval that is not a true positive, with what it overlapped most (``cause``):
    ``"macro as micro"`` / ``"micro as macro"`` (a ground-truth interval of the other type at IoU >=
    ``threshold``), ``"misplaced"`` (the right type, IoU too low), a distractor of ``events``
    (per video, :func:`video_events`: blink, head_turn, talk, light) or ``"nothing"``."""
    events = events or {}
    rows = []
    for (video, typ), sp in spotted.groupby(["video", "type"], sort=False):
        tv = truth[truth["video"] == video]
        same = tv[tv["type"] == typ]
        pairs = match(sp[["start_frame", "end_frame"]].to_numpy().tolist(), same[["start_frame", "end_frame"]].to_numpy().tolist(), threshold)
        hit = {i for i, _, _ in pairs}
        for i, r in enumerate(sp.itertuples()):
            if i in hit:
                continue
            a = (int(r.start_frame), int(r.end_frame))
            other = tv[tv["type"] != typ]
            best_other = max((iou(a, (s, e)) for s, e in zip(other["start_frame"], other["end_frame"])), default=0.0)
            best_same = max((iou(a, (s, e)) for s, e in zip(same["start_frame"], same["end_frame"])), default=0.0)
            if best_other >= threshold:
                cause = f"{'macro' if typ == 'micro' else 'micro'} as {typ}"
            elif best_same > 0:
                cause = "misplaced"
            else:
                overlaps = [(min(a[1], e["end"]) - max(a[0], e["start"]) + 1, e["type"]) for e in events.get(video, []) if e["type"] in DISTRACTORS]
                overlaps = [o for o in overlaps if o[0] > 0]
                cause = max(overlaps)[1] if overlaps else ("overlaps an expression" if best_other > 0 else "nothing")
            rows.append({"video": video, "type": typ, "start_frame": a[0], "end_frame": a[1], "cause": cause})
    return pd.DataFrame(rows, columns=["video", "type", "start_frame", "end_frame", "cause"])
