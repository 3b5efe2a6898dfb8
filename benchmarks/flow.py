"""Optical flow against the synthetic ground truth: accuracy (EPE, angular error) and speed of
every method at several micro-motion amplitudes; parameter tuning; Munsell coding speed; the
flow stage over a whole pre-processed run.

    python benchmarks/flow.py --run runs/bench-preprocess/run ROOT [ROOT ...] [--clips 30] [--tune-clips 10]

``--run`` is a pre-processed run of the synthetic roots (``benchmarks/preprocess.py`` leaves one in
``runs/bench-preprocess/run``).  Writes ``<out>/pairs.csv``, ``<out>/tuning.csv``,
``<out>/benchmark.json`` and the summary table ``docs/results/flow_benchmark.csv`` that notebook
02 plots.  Timings are single-threaded (``cv2.setNumThreads(1)``).  Not a test: it takes minutes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import PeakRSS, du  # noqa: E402

from mexpr import datasets, flow, groundtruth, preprocess  # noqa: E402

GRIDS = {
    "tvl1": {"lambda_": [0.15, 0.3, 0.6, 1.0], "warps": [1, 3], "median_filtering": [1, 5]},
    "dis": {"patch_size": [8], "patch_stride": [3, 4, 6], "variational_iterations": [0, 1, 2, 5], "grad_descent_iterations": [12, 25]},
    "farneback": {"winsize": [7, 9, 11], "levels": [0, 1, 2], "iterations": [1, 3], "poly_sigma": [0.9, 1.1]},
    "deepflow": {},
}
TUNE_AMPLITUDES = (0.25, 0.5, 1.0, 2.0)


def grid(method):
    keys = list(GRIDS[method])
    for values in itertools.product(*(GRIDS[method][k] for k in keys)):
        yield dict(zip(keys, values))


def summarise(res: pd.DataFrame) -> pd.DataFrame:
    g = res.groupby(["method", "amplitude"])
    out = g[["epe_au", "ae_au", "epe_face", "ae_face", "epe_au_zero_flow", "ms"]].mean()
    out["ms"] = g["ms"].median()
    return out.reset_index()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+")
    ap.add_argument("--run", default="runs/bench-preprocess/run")
    ap.add_argument("--out", default="runs/bench-flow")
    ap.add_argument("--clips", type=int, default=30)
    ap.add_argument("--tune-clips", type=int, default=10)
    ap.add_argument("--amplitudes", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0, 2.0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-batch", action="store_true", help="skip the whole-run flow stage")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = Path(args.run)
    table = datasets.load(args.roots)
    man = preprocess.load_manifest(run)
    man = man[man["status"] == "processed"].sample(frac=1.0, random_state=args.seed)
    tune_rows, eval_rows = man.iloc[: args.tune_clips], man.iloc[args.tune_clips : args.tune_clips + args.clips]
    res = {}

    # 1. tuning on clips not used for the evaluation
    tune_pairs = list(groundtruth.synthetic_pairs(run, tune_rows, amplitudes=TUNE_AMPLITUDES, seed=args.seed, table=table))
    specs = {}
    for m in flow.METHODS:
        for i, p in enumerate(grid(m)):
            specs[f"{m}#{i}"] = {"method": m, **p}
        if not GRIDS[m]:
            specs[f"{m}#0"] = {"method": m}
    tuning = groundtruth.score(tune_pairs, specs, progress=True)
    tuning["method_name"] = tuning["method"].str.split("#").str[0]
    t = tuning.groupby("method")[["epe_au", "ae_au"]].mean()
    t["ms"] = tuning.groupby("method")["ms"].median()
    t["params"] = [json.dumps({k: v for k, v in specs[n].items() if k != "method"}) for n in t.index]
    # the Pareto front of error against time: no other setting is both faster and more accurate
    t["pareto"] = [not ((t["ms"] < r.ms) & (t["epe_au"] <= r.epe_au) | (t["ms"] <= r.ms) & (t["epe_au"] < r.epe_au)).any() for r in t.itertuples()]
    t.to_csv(out / "tuning.csv")
    Path("docs/results").mkdir(parents=True, exist_ok=True)
    t.round(4).to_csv("docs/results/flow_tuning.csv")
    print(f"\ntuning (amplitudes {TUNE_AMPLITUDES}, mean over", len(tune_pairs), "pairs):\n", t.sort_values("epe_au").to_string())
    print("\nPareto front:\n", t[t["pareto"]].sort_values("ms").to_string())
    # each method's most accurate setting (ties: the faster); compared with mexpr.flow.METHODS
    t["family"] = [n.split("#")[0] for n in t.index]
    best = t.sort_values(["epe_au", "ms"]).groupby("family").head(1)
    tuned = {}
    for name, r in best.iterrows():
        m = r["family"]
        tuned[m] = {"method": m, **{k: v for k, v in specs[name].items() if k != "method"}}
        current = {k: flow.METHODS[m][k] for k in tuned[m] if k != "method"}
        same = all(np.isclose(current[k], tuned[m][k]) for k in current)
        print(f"tuned {m}: {json.dumps({k: v for k, v in tuned[m].items() if k != 'method'})}" + ("" if same else f"  (METHODS has {current})"))
    res["tuned"] = tuned

    # 2. evaluation of the defaults at every amplitude
    pairs = list(groundtruth.synthetic_pairs(run, eval_rows, amplitudes=tuple(args.amplitudes), seed=args.seed + 1, table=table))
    ev = groundtruth.score(pairs, progress=True)  # each method with its defaults (mexpr.flow.METHODS)
    ev.to_csv(out / "pairs.csv", index=False)
    summary = summarise(ev)
    overall = ev.groupby("method")[["epe_au", "ae_au", "epe_face", "ms"]].mean()
    overall["ms"] = ev.groupby("method")["ms"].median()
    # speed inside a clip (64 pairs per call, as the batch runs it), 5 clips, one core
    clips = [preprocess.load_clip(run, r, 65) for _, r in eval_rows.iloc[:6].iterrows()]
    spent = dict.fromkeys(flow.METHODS, 0.0)
    for m in flow.METHODS:
        flow.compute(clips[0][:3], m)
    for c in clips:  # methods interleaved, so that machine noise falls on all of them
        for m in flow.METHODS:
            t0 = time.perf_counter()
            flow.compute(c, m)
            spent[m] += time.perf_counter() - t0
    for m, sec in spent.items():
        overall.loc[m, "ms_in_clip"] = sec / (64 * len(clips)) * 1e3
    summary["ms_in_clip"] = summary["method"].map(overall["ms_in_clip"])
    summary.round(4).to_csv("docs/results/flow_benchmark.csv", index=False)
    overall["epe_vs_tvl1"] = overall["epe_au"] / overall.loc["tvl1", "epe_au"]
    overall["speed_vs_tvl1"] = overall.loc["tvl1", "ms_in_clip"] / overall["ms_in_clip"]
    res["overall"] = overall.round(4).to_dict("index")
    res["pairs"] = len(pairs)
    print("\nper method and amplitude:\n", summary.round(3).to_string(index=False))
    print("\noverall:\n", overall.round(3).to_string())

    # 3. Munsell coding speed, one core
    f = ev_flow = flow.compute(pairs[0]["frames"], "dis")
    f = np.repeat(ev_flow, 128, axis=0)
    flow.to_munsell(f)
    t0 = time.perf_counter()
    for _ in range(10):
        flow.to_munsell(f)
    res["munsell_frames_per_s"] = round(1280 / (time.perf_counter() - t0), 1)
    print(f"\nMunsell coding: {res['munsell_frames_per_s']:,.0f} frames/s of 96x112 on one core")

    # 4. the flow stage over the whole run (default method), from an empty cache
    if not args.skip_batch:
        shutil.rmtree(run / "cache" / "flow", ignore_errors=True)
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            fm = flow.run(run, jobs=args.jobs)
            res["batch_s"] = round(time.perf_counter() - t0, 1)
        res["batch_peak_rss_gb"] = round(rss.peak / 2**30, 2)
        res["batch_clips"] = int((fm["status"] == "processed").sum())
        res["batch_cache_mb"] = round(du(run / "cache" / "flow") / 2**20, 1)
        t0 = time.perf_counter()
        flow.run(run, jobs=args.jobs, progress=False)
        res["batch_cached_rerun_s"] = round(time.perf_counter() - t0, 2)
        print(
            f"\nflow stage ({flow.DEFAULT_METHOD}): {res['batch_clips']} clips in {res['batch_s']} s on {args.jobs} cores, "
            f"peak RSS {res['batch_peak_rss_gb']} GB, cache {res['batch_cache_mb']} MB, cached re-run {res['batch_cached_rerun_s']} s"
        )
    (out / "benchmark.json").write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
