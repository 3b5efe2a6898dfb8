"""Full-scale synthetic CASME II + CASME I generation: time, peak RSS, disk; dlib landmark rate on
every first frame; micro-motion amplitudes and clip lengths beside reported CASME figures.

    python benchmarks/synth.py --out data/bench-synth --jobs 2 [--scale 1.0]

Writes ``<out>/benchmark.json`` and prints a table.  Not a test: it takes minutes.
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

from mexpr import datasets, synth  # noqa: E402
from mexpr.face import detect_faces, landmarks  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/bench-synth")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="reuse an existing output (skip timing)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.keep:
        shutil.rmtree(out)
    res = {"scale": args.scale, "jobs": args.jobs}
    roots = []
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        for ds in ("casme2", "casme1"):
            roots.append(synth.generate(out / ds, ds, scale=args.scale, seed=args.seed, jobs=args.jobs))
        res["generation_s"] = round(time.perf_counter() - t0, 1)
    res["peak_rss_gb"] = round(rss.peak / 2**30, 2)
    res["disk_gb"] = round(du(out) / 2**30, 2)
    df = datasets.load(roots)
    res["clips"] = len(df)
    res["frames_written"] = int(sum(len(list(Path(d).glob("*.jpg"))) for d in df["clip_dir"]))

    found, errs = 0, []
    t0 = time.perf_counter()
    for _, row in df.iterrows():
        img = cv2.imread(row["frames"][0])[..., ::-1]
        faces = detect_faces(img, upsample=0)
        if faces:
            found += 1
            m = synth.Motion.load(row["clip_dir"])
            truth = m.landmarks_at(row["onset"])
            errs.append(float(np.linalg.norm(landmarks(img, faces[0][0]) - truth, axis=1).mean() / m.face_scale))
    res["landmark_rate"] = round(found / len(df), 4)
    res["landmark_error_px_at_crop_median"] = round(float(np.median(errs)), 2)
    res["landmark_s"] = round(time.perf_counter() - t0, 1)

    stats = pd.concat([pd.read_csv(r / "clips.csv").assign(dataset=datasets.synth_info(r)["dataset"]) for r in roots])
    for ds, g in stats.groupby("dataset"):
        res[f"{ds}_frames_mean"] = round(float(g["n_frames"].mean()), 1)
        res[f"{ds}_frames_min_max"] = [int(g["n_frames"].min()), int(g["n_frames"].max())]
    px = stats["apex_displacement_px"]
    res["apex_px_median"] = round(float(px.median()), 3)
    res["apex_px_p95"] = round(float(px.quantile(0.95)), 3)
    res["reported"] = {"casme2_frames_mean": 66.8, "casme1_frames_mean": 22.05}
    (out / "benchmark.json").write_text(json.dumps(res, indent=2))
    for k, v in res.items():
        print(f"{k:>36}: {v}")


if __name__ == "__main__":
    main()
