"""The paper's balanced data augmentation (Peng et al. 2017, Figure 6) and its disk cache.

Steps 1-3: from every frame, nine new frames are made by cutting a 2-px slice at the top, the
bottom, the left, the right, the centre or a corner, and resizing the rest back to 96 x 112.  We
read "a slice 2 pixels in width or height" literally: ``up`` removes the top two rows (the frame
is stretched vertically only), ``left`` the two left columns, a corner both, and ``centre`` one
pixel on every side (:data:`CROPS`).

Steps 4-8: per class, pick a random training clip, replace each of its frames by a random one
of its nine crops, interpolate to 65/129 frames, then compute the flow and its Munsell coding
exactly as the flow stage does for real clips, until the class has ``per_class`` clips (paper:
500).  ``mode="clip"`` is the variant of docs/DESIGN.md §3 that draws one crop per clip (no crop
jitter between frames); ``mode="none"`` repeats clips without cropping (plain oversampling).
``plan(flip=True)`` (ours, part of the ``mexpr`` input) also mirrors half the samples left-right:
the flow of the sample is flipped and its horizontal component negated (:func:`mexpr.flow.mirror`).

A sample is planned (:func:`plan`) as a source clip plus one crop index per native frame, so a
plan is a small table and both streams' inputs (64 and 128 fields) come from the same sample.
:func:`build` computes the samples in parallel into
``<run_dir>/cache/augment/<flow>-<mode>/f<fields>/<hash>.npy`` (uint8, uncompressed so that
training reads them at disk speed without decoding), keyed by content: an interrupted build
resumes, and a sample is never computed twice.  Only training clips may be planned:
:func:`plan` refuses any clip of the test fold (:class:`LeakError`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from mexpr.datasets import CLASSES, clip_keys
from mexpr.settings import LENGTHS

SLICE = 2

#: The nine crops of Figure 6: pixels removed at (top, bottom, left, right).
CROPS: dict[str, tuple[int, int, int, int]] = {
    "centre": (1, 1, 1, 1),
    "up": (2, 0, 0, 0),
    "down": (0, 2, 0, 0),
    "left": (0, 0, 2, 0),
    "right": (0, 0, 0, 2),
    "upper-left": (2, 0, 2, 0),
    "upper-right": (2, 0, 0, 2),
    "lower-left": (0, 2, 2, 0),
    "lower-right": (0, 2, 0, 2),
}
CROP_NAMES = tuple(CROPS)
MODES = ("frame", "clip", "none")
AUGMENT_VERSION = 1


class AugmentError(ValueError):
    """A training set that cannot be augmented (e.g. a class without any training clip)."""


class LeakError(AugmentError):
    """A test clip was about to reach the augmentation."""


def crop(frame: np.ndarray, which: int | str) -> np.ndarray:
    """One of the nine crops of ``frame`` (``(112, 96, ...)``), resized back to 96 x 112."""
    import cv2

    top, bot, left, right = CROPS[which] if isinstance(which, str) else CROPS[CROP_NAMES[which]]
    h, w = frame.shape[:2]
    roi = frame[top : h - bot, left : w - right]
    return cv2.resize(roi, (w, h), interpolation=cv2.INTER_LINEAR)


def nine_crops(frame: np.ndarray) -> np.ndarray:
    """The nine crops of one frame, ``(9, H, W, C)`` in :data:`CROP_NAMES` order (Figure 6, steps 1-2)."""
    return np.stack([crop(frame, i) for i in range(len(CROPS))])


# --------------------------------------------------------------------------------------------
# planning


def plan(train, per_class: int = 500, seed: int = 0, mode: str = "frame", test=None, classes=CLASSES, flip: bool = False) -> pd.DataFrame:  # noqa: F821
    """Figure 6, steps 4-8, as a table: ``per_class`` samples for each class, each a random
    training clip of that class (``source``: its ``subject_id/clip``) and one crop index per
    native frame (``crops``, a string of digits 0-8).  ``flip`` (ours, not the paper's): each
    sample is mirrored left-right with probability 1/2 (column ``flip``; :func:`mexpr.flow.mirror`),
    drawn apart from the rest so that the clips and crops are those of the plan without it.

    ``train`` is the fold's training part of the pre-processing manifest (rows with
    ``status == "processed"`` are used).  ``test``, if given, is the fold's test part: any
    overlap raises :class:`LeakError`.  A class without training clips raises
    :class:`AugmentError`.  The same arguments give the same plan.
    """
    import pandas as pd

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    train = train[train["status"] == "processed"] if "status" in train.columns else train
    keys = clip_keys(train)
    if test is not None:
        tkeys = set(clip_keys(test))
        leak = sorted(set(keys) & tkeys)
        if leak:
            raise LeakError(f"{len(leak)} clip(s) are in both the training and the test set, e.g. {leak[:3]}")
    rows = []
    for ci, cls in enumerate(classes):
        idx = np.flatnonzero(train["label"].to_numpy() == cls)
        if len(idx) == 0:
            raise AugmentError(
                f"class {cls!r} has no training clip in this fold, so it cannot be augmented; "
                "use a protocol whose folds keep every class in training (protocol='paper' or 'subject3'), or more data"
            )
        crng = np.random.default_rng([int(seed), MODES.index(mode), AUGMENT_VERSION, ci])
        for k in range(per_class):
            j = int(idx[crng.integers(len(idx))])
            rec = train.iloc[j]
            n = int(rec["n_used"]) if "n_used" in rec and str(rec["n_used"]) not in ("", "nan") else int(rec["n_frames"])
            if mode == "frame":
                crops = crng.integers(0, len(CROPS), n)
            elif mode == "clip":
                crops = np.full(n, crng.integers(0, len(CROPS)))
            else:
                crops = np.full(n, CROP_NAMES.index("centre"))
            rows.append({"label": cls, "k": k, "source": keys.iloc[j], "cache": rec["cache"], "crops": "".join(map(str, crops)), "mode": mode})
    out = pd.DataFrame(rows)
    out["flip"] = False
    if flip:
        for ci, cls in enumerate(classes):
            at = np.flatnonzero(out["label"].to_numpy() == cls)
            out.loc[at, "flip"] = np.random.default_rng([int(seed), MODES.index(mode), AUGMENT_VERSION, ci, 2]).random(len(at)) < 0.5
    return out


# --------------------------------------------------------------------------------------------
# one sample


def augmented_frames(frames: np.ndarray, crops, times=None, length: int = LENGTHS[0]) -> np.ndarray:
    """Steps 5-6 for one clip: each native frame replaced by its crop ``crops[i]`` (an index into
    :data:`CROP_NAMES`), then linear interpolation to ``length`` frames over the frames' time
    stamps.  (:func:`sample_munsell` skips this for ``mode="none"`` samples.)"""
    from mexpr import preprocess

    crops = list(crops)
    if len(crops) != len(frames):
        raise AugmentError(f"{len(crops)} crop choices for {len(frames)} frames")
    out = np.stack([crop(f, int(c)) for f, c in zip(frames, crops)])
    return preprocess.interpolate(out, length, times)


def flow_config(run_dir: str | os.PathLike) -> dict:
    """The flow stage's method, parameters and coding (``<run_dir>/flow.json``): augmented clips
    are coded exactly like the real ones."""
    path = Path(run_dir) / "flow.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m mexpr flow --run {run_dir}` first")
    cfg = json.loads(path.read_text())
    return {
        "method": cfg["method"],
        "params": cfg["params"],
        "normalize": cfg["normalize"],
        "reference": cfg.get("reference", "consecutive"),
        "smooth": cfg.get("smooth", 0.0),
    }


def sample_munsell(run_dir: str | os.PathLike, row, fields: int, flow_cfg: dict | None = None) -> np.ndarray:
    """Steps 5-6 and the flow stage for one planned sample: uint8 ``(fields, 112, 96, 3)``.

    ``flow_cfg``: ``{"method", "params", "reference", "normalize"[, "tsmooth", "global_motion"]}`` (default: the run's
    flow stage, :func:`flow_config`); a learned scale must be given in px (the fold's)."""
    from mexpr import flow, preprocess

    cfg = flow_cfg or flow_config(run_dir)
    frames, times = preprocess.read_cache(run_dir, row["cache"])
    if row.get("mode") == "none":
        clip = preprocess.interpolate(frames, fields + 1, times)
    else:
        clip = augmented_frames(frames, [int(c) for c in row["crops"]], times, fields + 1)
    return flow.code(flow.compute_as(clip, cfg), cfg, flipped(row))


def flipped(row) -> bool:
    """Whether a planned sample (a :func:`plan` row) is mirrored (its ``flip``, read back from a CSV too)."""
    f = row.get("flip", False)
    return bool(f) and str(f) not in ("False", "nan", "0")


def _sample_key(row, fields: int, cfg: dict) -> str:
    d = {"cache": Path(row["cache"]).name, "crops": row["crops"], "mode": row["mode"], "fields": int(fields), "flow": cfg, "v": AUGMENT_VERSION}
    if flipped(row):
        d["flip"] = True
    return hashlib.blake2b(json.dumps(d, sort_keys=True).encode(), digest_size=10).hexdigest()


def _folder(run_dir: Path, cfg: dict, mode: str, fields: int) -> Path:
    key = hashlib.blake2b(json.dumps(cfg, sort_keys=True).encode(), digest_size=6).hexdigest()
    return run_dir / "cache" / "augment" / f"{cfg['method']}-{key}-{mode}" / f"f{int(fields)}"


def _build_one(run_dir: str, row: dict, fields: int, cfg: dict, target: str, flow_file: str | None = None) -> str:
    import cv2

    from mexpr import flow

    cv2.setNumThreads(1)
    x, mirrored = None, flipped(row)
    if flow_file:  # mode "none": the sample is the clip itself (or its mirror image), as the flow stage computed it
        try:
            x = flow.load_coded(run_dir, flow_file, fields, cfg, mirrored=mirrored)
        except flow.FlowError:
            if not mirrored:  # an unmirrored clip the flow file cannot give is an error, as before
                raise
            x = None  # a flow stage that kept no raw flow cannot mirror: compute the mirrored sample
    if x is None:
        x = sample_munsell(run_dir, row, fields, cfg)
    from mexpr import _io

    with _io.replacing(target, suffix=".npy") as tmp:  # a unique name: two tasks building one sample never share it
        np.save(tmp, x)
    return target


def build(
    run_dir: str | os.PathLike,
    samples,
    fields: int,
    jobs: int | None = None,
    progress: bool = True,
    desc: str | None = None,
    flow_cfg: dict | None = None,
    flow_files: dict | None = None,
) -> list[str]:
    """Compute (or find in the cache) every sample of the plan ``samples`` for the ``fields``
    stream; returns the ``.npy`` paths, one per row, in order.  Parallel over ``jobs`` processes,
    with a progress bar; finished samples are kept, so an interrupted build resumes.
    ``flow_cfg``: how to compute and code the flow (default: the run's flow stage); it is part of
    the cache key, so samples of other settings are never mixed in.  ``flow_files``: pre-processed
    cache -> flow file of the same flow setting; a ``mode="none"`` sample (an uncropped copy) is
    then read from there instead of computing the same flow again."""
    from joblib import delayed

    from mexpr import _io

    run_dir = Path(run_dir)
    cfg = dict(flow_cfg or flow_config(run_dir))
    cfg.setdefault("reference", "consecutive")
    cfg.setdefault("smooth", 0.0)
    paths, todo = [], {}
    for rec in samples.to_dict("records"):
        folder = _folder(run_dir, cfg, rec["mode"], fields)
        target = folder / f"{_sample_key(rec, fields, cfg)}.npy"
        paths.append(str(target))
        if not target.is_file() and str(target) not in todo:
            folder.mkdir(parents=True, exist_ok=True)
            todo[str(target)] = rec
    files = flow_files or {}
    tasks = [
        delayed(_build_one)(str(run_dir), rec, fields, cfg, t, files.get(rec["cache"]) if rec["mode"] == "none" else None) for t, rec in todo.items()
    ]
    list(_io.parallel(tasks, jobs, desc or f"augment f{fields}", progress and bool(tasks)))
    return paths


def jitter_energy(run_dir: str | os.PathLike, row, fields: int = 64, flow_cfg: dict | None = None) -> dict:
    """Mean flow magnitude (px) of one planned sample and of its source clip without crops: how
    much motion the crops add (the crop-jitter comparison of docs/DESIGN.md §3)."""
    from mexpr import flow, preprocess

    cfg = flow_cfg or flow_config(run_dir)
    frames, times = preprocess.read_cache(run_dir, row["cache"])
    plain = flow.compute_as(preprocess.interpolate(frames, fields + 1, times), cfg)
    aug = flow.compute_as(augmented_frames(frames, [int(c) for c in row["crops"]], times, fields + 1), cfg)
    mag = lambda f: float(np.sqrt((f.astype(np.float64) ** 2).sum(-1)).mean())  # noqa: E731
    return {"source": row["source"], "mode": row["mode"], "plain_px": mag(plain), "augmented_px": mag(aug)}
