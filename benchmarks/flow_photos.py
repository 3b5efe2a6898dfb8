"""Flow methods on real photographs (issue "DTSCNN that learns", flow method): end-point and
angular error of every method, with its default parameters, on pairs made from scikit-image's
bundled photographs moved by smooth local fields plus a global drift (:func:`mexpr.groundtruth.photo_pairs`),
not on the synthetic generator's own faces and AU fields, where the defaults were tuned.

    python benchmarks/flow_photos.py [--per-photo 4] [--amplitudes 0.25 0.5 1.0] [--drift 0.3]

Prints and writes ``docs/results/flow_photos.csv`` (mean per method and amplitude) with each
method's error as a multiple of TV-L1's.  Single-threaded timings.  Not a test: about a minute.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from mexpr import groundtruth, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-photo", type=int, default=4)
    ap.add_argument("--amplitudes", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--drift", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs" / "results" / "flow_photos.csv"))
    args = ap.parse_args()
    cv2.setNumThreads(1)
    pairs = list(groundtruth.photo_pairs(tuple(args.amplitudes), args.per_photo, args.drift, seed=args.seed))
    res = groundtruth.score(pairs, progress=True)
    out = res.groupby(["method", "amplitude"])[["epe_au", "epe_face", "ae_face", "ms"]].mean()
    tv = out.xs("tvl1", level="method")
    out["epe_face / tvl1"] = out["epe_face"] / out.index.get_level_values("amplitude").map(tv["epe_face"]).to_numpy()
    overall = res.groupby("method")[["epe_face", "ms"]].mean()
    overall["epe_face / tvl1"] = overall["epe_face"] / overall.loc["tvl1", "epe_face"]
    out.round(4).to_csv(args.out)
    print(f"{len(pairs)} pairs from {len(groundtruth.PHOTOS)} photographs\n")
    print(report.table_markdown(out.round(3).reset_index().set_index("method"), ".3f"))
    print(report.table_markdown(overall.round(3), ".3f"))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
