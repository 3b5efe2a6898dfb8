"""The baselines' features for every clip of a run, cached (Peng et al. 2017, *Experimental
Results*, STCLQP / MDMO / FDM; Table 4).

:func:`features` computes one descriptor at one temporal length for the clips of a run:

* ``"mdmo"`` and ``"fdm"``: the clip interpolated to ``fields + 1`` frames (TIM64: 65, TIM128:
  129; :func:`mexpr.preprocess.load_clip`), its optical flow with **the run's flow settings**
  (``flow.json``: method and parameters, :func:`mexpr.augment.flow_config`; recomputed here in
  float32, since the flow stage keeps only the Munsell images), then :func:`mexpr.baselines.mdmo.
  features` (72 values) or :func:`mexpr.baselines.fdm.features` (:func:`~mexpr.baselines.fdm.
  feature_length`: 2688 for 64 fields, 5376 for 128, with the defaults).
  MDMO's 36 ROIs are drawn on the **pre-processing template** (:data:`mexpr.face.TEMPLATE`),
  not on landmarks found in each clip: pre-processing warps every clip's first frame onto that
  template (LWM, docs/DESIGN.md sec. 2), so the template *is* the first frame's landmark positions in
  every pre-processed clip (Peng et al. locate the ROIs on the first frame with an ASM).
* ``"stclqp"``: the clip interpolated to ``fields + 1`` frames and its
  :func:`~mexpr.baselines.stclqp.raw_histograms` (``3 x 3 x blocks x 256`` raw-pattern counts,
  36,864 values with 4 x 4 blocks), flattened.  STCLQP's codebooks must be learned on each fold's
  training clips only; the raw histograms do not depend on them, so they are computed once per
  clip, and :func:`stclqp_fold_features` fits a fold's codebooks on its training rows and turns
  every row into the STCLQP feature, exactly as :meth:`~mexpr.baselines.stclqp.STCLQP.transform`
  would on the clips themselves.

Cache layout (resumable, like the flow stage)::

    <run_dir>/cache/baselines/<method>-<key>/params.json        what <key> stands for
    <run_dir>/cache/baselines/<method>-<key>/f<fields>/<clip file>.npz   one clip: array "x"
    <run_dir>/cache/baselines/<method>-<key>/f<fields>/manifest.csv     every clip seen so far

``<key>`` hashes the method's parameters, the run's flow method and parameters (MDMO and FDM
only: STCLQP reads no flow; the Munsell coding's normalisation plays no part) and
:data:`EXTRACT_VERSION`; ``<clip file>`` is the pre-processed clip's cache
name, which holds a hash of its frames and of the pre-processing settings.  So a re-run skips
every finished clip, an interrupted run resumes where it stopped, and changing a parameter, the
flow or the pre-processing computes afresh in another file.

A clip whose features cannot be computed (an unreadable cache file, NaN flow, an ROI outside the
crop, non-finite features, ...) is recorded with ``status="skipped"`` and the reason, its row of
``X`` is NaN, and the other clips carry on.  Failures are not cached: the next call tries again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mexpr.datasets import clip_keys

#: Bumped whenever a descriptor's output changes for the same parameters (invalidates the cache).
EXTRACT_VERSION = 1

METHODS = ("mdmo", "fdm", "stclqp")
#: The descriptors computed from the clip's optical flow (the same flow: :func:`features`' ``together``).
FLOW_METHODS = ("mdmo", "fdm")
FIELDS = (64, 128)

#: Each method's extraction parameters and their defaults (see each descriptor's module).
DEFAULTS: dict[str, dict] = {
    "mdmo": {"n_bins": 8, "normalize": True, "reference": "consecutive"},
    "fdm": {"block": 8, "frames": 8, "weighting": "magnitude", "iterations": 20},
    # raw-pattern histograms: what does not depend on the codebook
    "stclqp": {"radius": 1, "temporal_radius": 1, "n_orientations": 8, "blocks": [4, 4]},
}

#: STCLQP's codebook parameters (:func:`stclqp_fold_features`): learned per fold, not cached.
STCLQP_CODEBOOK = {"n_codewords": 32, "codebook": "kmeans", "seed": 0}

#: What a failing clip may raise and still be recorded as skipped (anything else is a bug and
#: stops the run): bad values (NaN flow, ROI errors, descriptor checks; PreprocessError and
#: FlowError are ValueErrors), missing or unreadable files, a truncated or foreign cache file.
_FAILURES = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile)

#: The clip table columns :func:`features` needs.
_NEEDED = ("subject_id", "clip", "label", "cache")


class ExtractError(ValueError):
    """Bad arguments to :func:`features` or :func:`stclqp_fold_features`."""


def params_for(method: str, **params) -> dict:
    """``method``'s extraction parameters: :data:`DEFAULTS` updated with ``params``
    (:class:`ExtractError` for an unknown method or parameter)."""
    if method not in METHODS:
        raise ExtractError(f"unknown baseline {method!r}; valid: {', '.join(METHODS)}")
    unknown = set(params) - set(DEFAULTS[method])
    if unknown:
        hint = " (codebook parameters go to stclqp_fold_features)" if method == "stclqp" and unknown & set(STCLQP_CODEBOOK) else ""
        raise ExtractError(f"{method} has no extraction parameter(s) {sorted(unknown)}; valid: {sorted(DEFAULTS[method])}{hint}")
    p = {**DEFAULTS[method], **params}
    if method == "stclqp":
        p["blocks"] = [int(b) for b in p["blocks"]]  # tuple or list: one key
    return p


def feature_length(method: str, fields: int, **params) -> int:
    """Length ``D`` of one clip's features: 72 (MDMO); ``2 n_t n_y n_x`` (FDM, 2688 for 64 fields
    and 5376 for 128 with the defaults); ``3 x 3 x rows x cols x 256`` raw-pattern counts
    (STCLQP, 36,864 with 4 x 4 blocks)."""
    from mexpr.baselines import fdm, mdmo, stclqp
    from mexpr.settings import CROP_H, CROP_W

    p = params_for(method, **params)
    _check_fields(fields)
    if method == "mdmo":
        return 2 * mdmo.N_ROIS
    if method == "fdm":
        return fdm.feature_length((int(fields), CROP_H, CROP_W), p["block"], p["frames"])
    return len(stclqp.PLANES) * len(stclqp.COMPONENTS) * p["blocks"][0] * p["blocks"][1] * 256


def _check_fields(fields: int) -> None:
    if fields not in FIELDS:
        raise ExtractError(f"fields must be one of {FIELDS} (TIM64 / TIM128 flow fields; clips of fields + 1 frames), got {fields!r}")


def _key(method: str, params: dict, flow_cfg: dict | None) -> dict:
    return {"method": method, "params": params, "flow": flow_cfg, "version": EXTRACT_VERSION}


def _flow_settings(run_dir: str | os.PathLike, method: str) -> dict | None:
    """The run's flow method and parameters (what the flow fields depend on), None for STCLQP."""
    from mexpr import augment

    if method == "stclqp":
        return None
    cfg = augment.flow_config(run_dir)
    return {"method": cfg["method"], "params": cfg["params"]}


def method_dir(run_dir: str | os.PathLike, method: str, **params) -> Path:
    """``<run_dir>/cache/baselines/<method>-<key>``: where ``method`` with ``params`` (and, for
    MDMO and FDM, the run's flow method and parameters) is cached."""
    p = params_for(method, **params)
    flow_cfg = _flow_settings(run_dir, method)
    key = hashlib.blake2b(json.dumps(_key(method, p, flow_cfg), sort_keys=True).encode(), digest_size=8).hexdigest()
    return Path(run_dir) / "cache" / "baselines" / f"{method}-{key}"


# --------------------------------------------------------------------------------------------
# one clip (runs in a worker)


@functools.lru_cache(maxsize=4)
def _template_masks(h: int, w: int) -> np.ndarray:
    from mexpr.baselines import mdmo

    return mdmo.roi_masks(None, (h, w))  # the pre-processing template: every clip's first frame


def clip_features(run_dir: str | os.PathLike, row, method: str, fields: int, flow_cfg: dict | None = None, **params) -> np.ndarray:
    """One clip's features, uncached: ``float32 (D,)`` for MDMO/FDM, ``int32 (D,)`` raw-pattern
    counts for STCLQP.  ``row``: a :func:`mexpr.train.clips_table` row; ``flow_cfg``: the run's
    flow ``{"method", "params"}`` (read from ``run_dir`` when None; unused by STCLQP)."""
    from mexpr import preprocess
    from mexpr.baselines import stclqp

    p = params_for(method, **params)
    _check_fields(fields)
    frames = preprocess.load_clip(run_dir, row, int(fields) + 1)
    if method == "stclqp":
        x = stclqp.raw_histograms(frames, p["radius"], p["temporal_radius"], p["n_orientations"], tuple(p["blocks"]))
        return x.reshape(-1)
    return _describe(method, _clip_flow(run_dir, row, fields, flow_cfg or _flow_settings(run_dir, method), frames), p)


def _clip_flow(run_dir, row, fields: int, flow_cfg: dict, frames: np.ndarray | None = None) -> np.ndarray:
    """One clip's flow as MDMO and FDM read it: its ``fields + 1`` frames (``frames``, if loaded)
    through the run's flow method and parameters (``flow_cfg``)."""
    from mexpr import flow, preprocess

    if frames is None:
        frames = preprocess.load_clip(run_dir, row, int(fields) + 1)
    return flow.compute(frames, flow_cfg["method"], **flow_cfg["params"])


def _describe(method: str, fl: np.ndarray, p: dict) -> np.ndarray:
    """A flow descriptor (MDMO or FDM, parameters ``p``) of one clip's flow ``fl``."""
    from mexpr.baselines import fdm, mdmo

    x = mdmo.features(fl, masks=_template_masks(*fl.shape[1:3]), **p) if method == "mdmo" else fdm.features(fl, **p)
    if not np.isfinite(x).all():
        raise ValueError(f"{int((~np.isfinite(x)).sum())} non-finite feature values")
    return x


def _extract_clip(run_dir: str, row: dict, method: str, fields: int, params: dict, flow_cfg: dict | None, target: str, together: tuple = ()) -> dict:
    """One clip's features into ``target``; ``together``: ``(method, params, target)`` of other flow
    descriptors computed from the same flow into their own caches (one that fails writes nothing:
    its own :func:`features` call records why)."""
    import cv2

    from mexpr import _io

    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    try:
        if together:
            fl = _clip_flow(run_dir, row, fields, flow_cfg)
            x = _describe(method, fl, params)
        else:
            x = clip_features(run_dir, row, method, fields, flow_cfg, **params)
    except _FAILURES as e:
        Path(target).unlink(missing_ok=True)  # a forced recompute that fails leaves no stale file
        return {"status": "skipped", "reason": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - t0}
    _io.save_npz(target, level=1, x=x)  # atomic: an interrupt never leaves half a file
    seconds = time.perf_counter() - t0
    for other, p, path in together:
        try:
            _io.save_npz(path, level=1, x=_describe(other, fl, p))
        except _FAILURES:
            pass
    return {"status": "processed", "reason": "", "seconds": seconds}


# --------------------------------------------------------------------------------------------
# a run


def _clip_rows(run_dir: Path, clips):
    """The clip table to extract: all of the run's clips, a table, or ``subject_id/clip`` keys."""
    import pandas as pd

    from mexpr import train

    if clips is None:
        return train.clips_table(run_dir)
    if isinstance(clips, pd.DataFrame):
        missing = [c for c in _NEEDED if c not in clips.columns]
        if missing:
            raise ExtractError(f"the clip table lacks column(s) {missing}; pass rows of mexpr.train.clips_table(run_dir)")
        return clips.reset_index(drop=True)
    if isinstance(clips, str) or not isinstance(clips, Sequence):
        raise ExtractError(f"clips must be None, a clip table (DataFrame) or a list of 'subject_id/clip' keys, got {type(clips).__name__}")
    table = train.clips_table(run_dir)
    index = {k: i for i, k in enumerate(clip_keys(table))}
    unknown = [k for k in clips if k not in index]
    if unknown:
        raise ExtractError(f"{len(unknown)} clip(s) not among the run's usable clips, e.g. {unknown[:3]}")
    return table.iloc[[index[k] for k in clips]].reset_index(drop=True)


def _write_manifest(path: Path, table) -> None:
    """Merge this call's rows into the folder's manifest (one row per clip, the latest outcome)."""
    import pandas as pd

    cols = ["subject_id", "clip", "label", "status", "reason", "file", "seconds"]
    new = table[cols]
    if path.is_file():
        old = pd.read_csv(path, keep_default_na=False)
        if list(old.columns) == cols:
            seen = set(zip(new["subject_id"], new["clip"]))
            old = old[[(s, c) not in seen for s, c in zip(old["subject_id"], old["clip"])]]
            new = pd.concat([old, new], ignore_index=True)
    new = new.sort_values(["subject_id", "clip"], kind="stable")
    from mexpr import _io

    _io.atomic_write_text(path, new.to_csv(index=False))


def _folder(run_dir: Path, method: str, p: dict, flow_cfg: dict | None, fields: int) -> Path:
    """``method``'s cache folder for ``fields`` (:func:`method_dir`), made with its ``params.json``."""
    from mexpr import _io

    top = method_dir(run_dir, method, **p)
    (top / f"f{int(fields)}").mkdir(parents=True, exist_ok=True)
    if not (top / "params.json").is_file():
        _io.atomic_write_text(top / "params.json", json.dumps(_key(method, p, flow_cfg), indent=2, sort_keys=True) + "\n")
    return top / f"f{int(fields)}"


def features(
    run_dir: str | os.PathLike,
    method: str,
    fields: int,
    clips=None,
    jobs: int | None = None,
    progress: bool = True,
    force: bool = False,
    together: Sequence[str] = (),
    **params,
):
    """One baseline's features for the clips of a run at one temporal length, cached.

    ``method``: ``"mdmo"``, ``"fdm"`` or ``"stclqp"``; ``fields``: 64 (TIM64) or 128 (TIM128);
    ``clips``: None (every clip of :func:`mexpr.train.clips_table`), a table of such rows, or a
    list of ``"subject_id/clip"`` keys; ``jobs`` worker processes (default all cores);
    ``force`` recomputes cached clips; ``params``: the method's extraction parameters
    (:data:`DEFAULTS`).  ``together``: other flow descriptors (:data:`FLOW_METHODS`, their default
    parameters) to compute from the same flow of each clip computed here, into their own caches, so
    that their own call finds them there: MDMO and FDM read the same flow, computed once.

    Returns ``(X, table)``: ``X`` ``float32 (N, D)`` one row per clip of ``table``, in its order
    (D: :func:`feature_length`; STCLQP: flattened raw-pattern counts, see
    :func:`stclqp_fold_features`), NaN where a clip was skipped; ``table`` with ``subject_id``,
    ``clip``, ``label``, ``status`` (``"processed"``/``"skipped"``), ``reason``, ``cached``
    (read from the cache), ``seconds`` (computing it, 0 when cached) and ``file`` (the cache file,
    relative to ``run_dir``).  ``table.attrs["summary"]``: counts and timings of this call.
    """
    import pandas as pd
    from joblib import delayed

    from mexpr import _io

    run_dir = Path(run_dir)
    p = params_for(method, **params)
    _check_fields(fields)
    dim = feature_length(method, fields, **p)
    table = _clip_rows(run_dir, clips)
    flow_cfg = _flow_settings(run_dir, method)
    folder = _folder(run_dir, method, p, flow_cfg, fields)

    others = [m for m in dict.fromkeys(together) if m != method]
    if others and (method not in FLOW_METHODS or set(others) - set(FLOW_METHODS)):
        raise ExtractError(f"together: only flow descriptors ({', '.join(FLOW_METHODS)}) share a clip's flow, not {method!r} with {others}")
    companions = [(m, params_for(m), _folder(run_dir, m, params_for(m), flow_cfg, fields)) for m in others]

    rows, todo = [], []
    for rec in table.to_dict("records"):
        row = {k: rec.get(k, "") for k in ("subject_id", "clip", "dataset", "label")}
        if rec.get("status", "processed") != "processed":
            row.update(status="skipped", reason=f"preprocessing skipped: {rec.get('reason', '')}", file="", cached=False, seconds=0.0)
        else:
            target = folder / Path(rec["cache"]).name
            cached = target.is_file() and not force
            row.update(status="processed", reason="", file=str(target.relative_to(run_dir)), cached=cached, seconds=0.0)
            if not cached:
                todo.append((len(rows), {**rec, "status": "processed"}, str(target)))
        rows.append(row)

    t0 = time.perf_counter()

    def along(rec) -> tuple:  # the companions' files this clip still lacks
        name = Path(rec["cache"]).name
        return tuple((m, cp, str(folder / name)) for m, cp, folder in companions if force or not (folder / name).is_file())

    tasks = [delayed(_extract_clip)(str(run_dir), rec, method, int(fields), p, flow_cfg, target, along(rec)) for _, rec, target in todo]
    skipped = lambda rs: {"skipped": sum(r["status"] == "skipped" for r in rs)}  # noqa: E731
    for (i, _, _), res in zip(todo, _io.parallel(tasks, jobs, f"{method} f{fields}", progress and bool(tasks), postfix=skipped)):
        rows[i].update(status=res["status"], reason=res["reason"], seconds=round(res["seconds"], 3))
        if res["status"] != "processed":
            rows[i]["file"] = ""
    seconds = time.perf_counter() - t0

    X = np.full((len(rows), dim), np.nan, np.float32)
    for i, row in enumerate(rows):
        if row["status"] != "processed":
            continue
        try:
            with np.load(run_dir / row["file"]) as z:
                x = z["x"].reshape(-1)
            if len(x) != dim:
                raise ValueError(f"{len(x)} values, expected {dim}")
            X[i] = x
        except _FAILURES as e:
            row.update(
                status="skipped", reason=f"cached file {row['file']} unreadable ({type(e).__name__}: {e}); delete it or pass force=True", file=""
            )
    out = pd.DataFrame(rows)
    _write_manifest(folder / "manifest.csv", out)
    computed = [i for i, _, _ in todo]
    out.attrs["summary"] = {
        "method": method,
        "fields": int(fields),
        "params": p,
        "folder": str(folder.relative_to(run_dir)),
        "clips": len(out),
        "processed": int((out["status"] == "processed").sum()),
        "computed": len(computed),
        "skipped": int((out["status"] == "skipped").sum()),
        "seconds": round(seconds, 2),
    }
    return X, out


# --------------------------------------------------------------------------------------------
# STCLQP per fold


def stclqp_fold_features(raw, train_idx, blocks=(4, 4), **codebook) -> np.ndarray:
    """STCLQP features of every row of ``raw`` with codebooks learned on the ``train_idx`` rows only.

    ``raw``: ``(N, D)`` flattened raw-pattern histograms (:func:`features` with ``"stclqp"``;
    NaN rows, i.e. skipped clips, give NaN rows and may not be training rows); ``train_idx``:
    indices (or a boolean mask) of the fold's training clips; ``blocks``: as extracted;
    ``codebook``: :data:`STCLQP_CODEBOOK` overrides (``n_codewords``, ``codebook``, ``seed``).
    Returns ``float32 (N, 9 x rows x cols x n_codewords)`` (4608 with the defaults), equal to
    ``STCLQP(...).fit(train clips).transform_many(all clips)``.
    """
    from mexpr.baselines import stclqp

    unknown = set(codebook) - set(STCLQP_CODEBOOK)
    if unknown:
        raise ExtractError(f"stclqp_fold_features has no parameter(s) {sorted(unknown)}; valid: blocks, {', '.join(STCLQP_CODEBOOK)}")
    desc = stclqp.STCLQP(blocks=tuple(blocks), **{**STCLQP_CODEBOOK, **codebook})
    raw = np.asarray(raw)
    if raw.ndim != 2 or raw.shape[1] != desc.raw_length:
        raise ExtractError(f"raw must be (N, {desc.raw_length}) flattened raw-pattern histograms for blocks {tuple(blocks)}, got shape {raw.shape}")
    idx = np.asarray(train_idx)
    idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.intp)
    if len(idx) == 0:
        raise ExtractError("no training rows given: the codebooks are learned on the fold's training clips")
    ok = np.isfinite(raw).all(axis=1)
    if not ok[idx].all():
        bad = idx[~ok[idx]]
        raise ExtractError(
            f"{len(bad)} training row(s) have no STCLQP histograms (first: row {int(bad[0])}); leave out the clips that extraction skipped"
        )
    desc.fit_histograms(raw[idx])
    out = np.full((len(raw), desc.n_features), np.nan, np.float32)
    if ok.any():
        out[ok] = desc.transform_histograms(raw[ok])
    return out
