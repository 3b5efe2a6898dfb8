"""Pre-processing speed and alignment accuracy on the synthetic CASME II + CASME I set.

    python benchmarks/preprocess.py ROOT [ROOT ...] [--jobs 2] [--sample 40] [--align-clips 120]

1. stages, one core, in this process, on ``--sample`` clips: frames/s per core of decoding,
   detection (once per clip, amortised over its frames), landmarks, alignment maps (each mode),
   warping/cropping, interpolation to 65 + 129 frames, and :func:`preprocess_clip` end to end;
2. the whole set through :func:`mexpr.preprocess.run` on ``--jobs`` cores, from an empty cache:
   wall time, frames/s, peak RSS (process + workers); then the cached re-run's time;
3. alignment accuracy of every mode on ``--align-clips`` clips (:func:`compare_alignments`).

Writes ``<out>/benchmark.json`` and ``<out>/alignment_modes.csv`` and prints markdown tables.
Not a test: it takes minutes.
"""

from __future__ import annotations

import argparse
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

from mexpr import align, datasets, face, groundtruth, preprocess  # noqa: E402


def stage_rates(df: pd.DataFrame) -> dict:
    cv2.setNumThreads(1)
    t = dict.fromkeys(["decode", "grey", "detect", "landmarks", "warp", "interpolate", "end_to_end"], 0.0)
    t.update({f"maps[{m}]": 0.0 for m in align.ALIGN_MODES})
    frames = 0
    config = preprocess.Config()
    model = str(face.predictor_path())
    preprocess.preprocess_clip(df.iloc[0]["frames"])  # warm-up: model load, template operator
    for _, row in df.iterrows():
        paths = row["frames"]
        frames += len(paths)
        s = time.perf_counter()
        imgs = [preprocess._read_frame(p) for p in paths]
        t["decode"] += time.perf_counter() - s
        s = time.perf_counter()
        greys = [cv2.cvtColor(im, cv2.COLOR_BGR2GRAY) for im in imgs]
        t["grey"] += time.perf_counter() - s
        s = time.perf_counter()
        box = face.find_face(greys[0])
        t["detect"] += time.perf_counter() - s
        s = time.perf_counter()
        lms = np.stack([face.landmarks(g, box, model) for g in greys])
        t["landmarks"] += time.perf_counter() - s
        maps = None
        for m in align.ALIGN_MODES:
            s = time.perf_counter()
            out = align.alignment_maps(lms, m)
            t[f"maps[{m}]"] += time.perf_counter() - s
            if m == config.align:
                maps = out
        s = time.perf_counter()
        crops = np.stack([align.warp(im, mp) for im, mp in zip(imgs, maps)])
        t["warp"] += time.perf_counter() - s
        s = time.perf_counter()
        preprocess.interpolate(crops, 65)
        preprocess.interpolate(crops, 129)
        t["interpolate"] += time.perf_counter() - s
        s = time.perf_counter()
        preprocess.preprocess_clip(paths, config)
        t["end_to_end"] += time.perf_counter() - s
    return {"frames": frames, "clips": len(df), "frames_per_s": {k: round(frames / v, 1) for k, v in t.items()}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+")
    ap.add_argument("--out", default="runs/bench-preprocess")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sample", type=int, default=40, help="clips for the per-stage rates")
    ap.add_argument("--align-clips", type=int, default=120, help="clips for the alignment accuracy")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    df = datasets.load(args.roots)
    res = {"clips": len(df), "frames": int(df["n_frames"].sum()), "jobs": args.jobs}

    res["stages_one_core"] = stage_rates(df.sample(min(args.sample, len(df)), random_state=args.seed))

    with PeakRSS() as rss:
        t0 = time.perf_counter()
        manifest = preprocess.run(df, out / "run", jobs=args.jobs)
        res["full_set_s"] = round(time.perf_counter() - t0, 1)
    res["full_set_frames_per_s"] = round(res["frames"] / res["full_set_s"], 1)
    res["full_set_peak_rss_gb"] = round(rss.peak / 2**30, 2)
    res["processed"] = int((manifest["status"] == "processed").sum())
    res["skipped"] = manifest.loc[manifest["status"] == "skipped", ["subject_id", "clip", "reason"]].to_dict("records")
    res["cache_mb"] = round(du(out / "run" / "cache") / 2**20, 1)
    t0 = time.perf_counter()
    preprocess.run(df, out / "run", jobs=args.jobs, progress=False)
    res["cached_rerun_s"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    acc = groundtruth.compare_alignments(df.sample(min(args.align_clips, len(df)), random_state=args.seed), progress=True)
    res["alignment_s"] = round(time.perf_counter() - t0, 1)
    acc.to_csv(out / "alignment_modes.csv", index=False)
    cols = ["head_rms", "residual_head_rms", "jitter_rms", "expression_kept", "magnitude_ratio", "noise_rms"]
    summary = acc.groupby("variant", sort=False)[cols].median().round(3)
    res["alignment_median"] = summary.to_dict("index")
    (out / "benchmark.json").write_text(json.dumps(res, indent=2) + "\n")

    print("\n| stage (1 core) | frames/s |\n|---|---|")
    for k, v in res["stages_one_core"]["frames_per_s"].items():
        print(f"| {k} | {v:,.0f} |")
    print(
        f"\nfull set: {res['clips']} clips / {res['frames']} frames on {args.jobs} cores in {res['full_set_s']} s "
        f"({res['full_set_frames_per_s']} frames/s), peak RSS {res['full_set_peak_rss_gb']} GB, "
        f"cache {res['cache_mb']} MB; cached re-run {res['cached_rerun_s']} s; skipped {len(res['skipped'])}"
    )
    print(f"\nalignment accuracy, median over {acc.groupby(['subject_id', 'clip']).ngroups} clips:\n")
    print(summary.to_string())


if __name__ == "__main__":
    main()
