"""Speed of the baselines (Peng et al. 2017, Table 4): feature extraction per method and length,
STCLQP's per-fold codebooks, and the SVMs' grid search + calibration.

    python benchmarks/baselines.py --run runs/default [--clips 40] [--jobs 2] [--svm-samples 340]

``--run`` is a run with pre-processing and flow done (``make reproduce`` leaves ``runs/default``).

1. **Extraction**: :func:`mexpr.baselines.extract.features` on the first ``--clips`` clips of the
   run, for every method (MDMO, FDM, STCLQP) and length (64, 128 fields), on ``--jobs`` workers,
   recomputed (``force=True``: the run's baseline cache is overwritten with identical files).
   Reported: clips/s of the whole call (wall clock, including the workers' start), and each clip's
   median seconds inside its worker (one core: load + interpolate, flow for MDMO/FDM, descriptor).
2. **STCLQP per fold**: :func:`mexpr.baselines.extract.stclqp_fold_features` (k-means codebooks on
   two thirds of the rows, then every row's feature) on ``--svm-samples`` rows, the extracted raw
   histograms repeated to that many.
3. **SVMs**: :func:`mexpr.baselines.classify.fit` (grid search, then calibration) on
   ``--svm-samples`` rows of each method's features (the extracted rows repeated, with 1 % noise so
   that no two rows are equal, labels drawn in the run's class proportions): a timing only, the
   labels mean nothing.  The default, 340 rows, is more than a training fold of the default run
   holds (about two thirds of its 452 clips).

Writes ``docs/results/baselines_benchmark.json``.  Timings depend on how busy the machine is:
``load_average`` records it at the start and at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mexpr import train  # noqa: E402
from mexpr.baselines import classify, extract  # noqa: E402
from mexpr.datasets import CLASSES  # noqa: E402


def _tile(X: np.ndarray, n: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    rows = X[np.arange(n) % len(X)].astype(np.float64)
    if noise:
        rows += noise * (X.std(axis=0) + 1e-6) * rng.standard_normal(rows.shape)
    return rows.astype(np.float32)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/default")
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--methods", nargs="+", default=list(extract.METHODS), choices=extract.METHODS)
    ap.add_argument("--fields", type=int, nargs="+", default=list(extract.FIELDS), choices=extract.FIELDS)
    ap.add_argument("--svm-samples", type=int, default=340)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "baselines_benchmark.json"))
    args = ap.parse_args(argv)

    table = train.clips_table(args.run)
    clips = table.head(args.clips)
    rng = np.random.default_rng(0)
    share = table["label"].value_counts(normalize=True).reindex(CLASSES, fill_value=0).to_numpy()
    labels = rng.choice(len(CLASSES), size=args.svm_samples, p=share)
    labels[: len(CLASSES)] = np.arange(len(CLASSES))  # every class present
    out = {
        "run": args.run,
        "clips": len(clips),
        "jobs": args.jobs,
        "cpu_count": os.cpu_count(),
        "load_average_start": [round(v, 2) for v in os.getloadavg()],
        "extraction": [],
        "stclqp_fold": [],
        "svm": [],
    }
    for method in args.methods:
        for fields in args.fields:
            t0 = time.perf_counter()
            X, tab = extract.features(args.run, method, fields, clips=clips, jobs=args.jobs, progress=False, force=True)
            wall = time.perf_counter() - t0
            ok = tab["status"] == "processed"
            row = {
                "method": method,
                "fields": fields,
                "clips": len(tab),
                "skipped": int((~ok).sum()),
                "features": int(X.shape[1]),
                "wall_s": round(wall, 2),
                "clips_per_s": round(len(tab) / wall, 2),
                "median_clip_s_in_worker": round(float(tab.loc[ok, "seconds"].median()), 3) if ok.any() else None,
            }
            out["extraction"].append(row)
            print(json.dumps(row), flush=True)
            if not ok.any():
                continue
            X = X[ok.to_numpy()]
            if method == "stclqp":
                raw = _tile(X, args.svm_samples, rng, 0.0)  # counts: repeated, not perturbed
                train_idx = np.arange(args.svm_samples) % 3 != 0
                t0 = time.perf_counter()
                X = extract.stclqp_fold_features(raw, train_idx)
                fold = {
                    "fields": fields,
                    "rows": args.svm_samples,
                    "train_rows": int(train_idx.sum()),
                    "features": int(X.shape[1]),
                    "seconds": round(time.perf_counter() - t0, 2),
                }
                out["stclqp_fold"].append(fold)
                print(json.dumps({"stclqp_fold": fold}), flush=True)
                X = X[: int(ok.sum())]  # the extracted clips' own rows (the rest repeat them)
            feats = _tile(X, args.svm_samples, rng, 0.01)
            t0 = time.perf_counter()
            est = classify.fit(method, feats, labels, seed=0)
            fit = {
                "method": method,
                "fields": fields,
                "samples": args.svm_samples,
                "features": int(feats.shape[1]),
                "settings_searched": len(est.cv_results_),
                "fit_s": round(time.perf_counter() - t0, 2),
                "best_params": est.best_params_,
            }
            out["svm"].append(fit)
            print(json.dumps(fit), flush=True)
    out["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
