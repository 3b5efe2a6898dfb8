"""Does DTSCNN on our input beat the baselines? The bar of issue "DTSCNN that learns", measured.

    python benchmarks/bar.py --run runs/default [--protocols paper subject3] [--seeds 0 1 2] [--inputs mexpr paper]

For each protocol and seed, on the same folds: DTSCNN64, DTSCNN128 and their Eq. 11 fusion on each
input (:func:`mexpr.evaluate.evaluate`: trains what is missing, reuses finished streams and features)
and every baseline with the paper's SVM scoring and with balanced SVMs
(:func:`mexpr.evaluate.evaluate_baseline`).  Prints, per protocol, the mean +- std over seeds of each
seed's mean over folds (UAR, UF1, accuracy), the best baseline row, and the bar: fused UAR >= 0.60
(paper protocol) / 0.55 (subject3), >= 10 points above the best baseline, each stream above it.
Writes ``<run>/tables/bar_runs.csv`` (one row per protocol, seed, input and method).  Not a test: with
the default profile one protocol and seed trains six streams (about a quarter of an hour on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import add_plan_args  # noqa: E402

BAR = {"paper": 0.60, "subject3": 0.55}
MARGIN = 0.10


def main() -> None:
    import pandas as pd

    from mexpr import evaluate, train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_plan_args(ap)
    ap.add_argument("--inputs", nargs="+", default=["mexpr"], choices=list(train.INPUTS))
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()

    rows = []
    out = Path(args.run) / "tables" / "bar_runs.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    for protocol in args.protocols:
        for seed in args.seeds:
            for inp in args.inputs:
                cfg = train.config_for(args.profile, protocol=protocol, seed=seed, input=inp)
                t0 = time.perf_counter()
                ev = evaluate.evaluate(args.run, cfg, jobs=args.jobs, verbose=0, progress=False)
                for r in ev.summary.to_dict("records"):
                    if r["method"] in evaluate.PAPER_METHODS:
                        rows.append(
                            {"protocol": protocol, "seed": seed, "input": inp, "kind": "DTSCNN", **r, "seconds": round(time.perf_counter() - t0)}
                        )
            for balanced in (False, True):
                for m in ("stclqp", "mdmo", "fdm"):
                    ev = evaluate.evaluate_baseline(args.run, m, protocol, seed, jobs=args.jobs, progress=False, balanced=balanced)
                    for r in ev.summary.to_dict("records"):
                        rows.append(
                            {"protocol": protocol, "seed": seed, "input": "balanced SVM" if balanced else "paper's SVM", "kind": "baseline", **r}
                        )
            pd.DataFrame(rows).to_csv(out, index=False)
    df = pd.DataFrame(rows)
    for protocol, d in df.groupby("protocol", sort=False):
        per_seed = d.groupby(["kind", "input", "method"], sort=False)[["uar", "uf1", "accuracy"]]
        table = per_seed.mean().join(per_seed.std(), rsuffix="_std").join(per_seed.size().rename("seeds"))
        print(f"\n## protocol {protocol}: mean ± std over seeds {sorted(int(x) for x in d['seed'].unique())}\n")
        print("| method | input | UAR | UF1 | accuracy |\n|---|---|---|---|---|")
        for (_kind, inp, method), r in table.iterrows():
            cells = [f"{100 * r[m]:.1f} ± {100 * r[m + '_std']:.1f}" for m in ("uar", "uf1", "accuracy")]
            print(f"| {method} | {inp} | " + " | ".join(cells) + " |")
        # the best baseline: the row (method, scoring) with the highest mean UAR over seeds
        base = table.loc["baseline"]["uar"]
        (b_inp, b_method), b_uar = base.idxmax(), float(base.max())
        print(f"\nbest baseline: {b_method} ({b_inp}), UAR {100 * b_uar:.1f}")
        for inp in args.inputs:
            dt = table.loc[("DTSCNN", inp)]["uar"]
            fused, s64, s128 = (float(dt[m]) for m in ("DTSCNN (fusion)", "DTSCNN64", "DTSCNN128"))
            checks = {
                f"fused UAR >= {BAR.get(protocol, 0.6):.2f}": fused >= BAR.get(protocol, 0.6),
                f"fused >= best baseline + {100 * MARGIN:.0f} points": fused >= b_uar + MARGIN,
                "each stream above the best baseline": min(s64, s128) > b_uar,
            }
            print(
                f"{inp} input: fused {100 * fused:.1f}, DTSCNN64 {100 * s64:.1f}, DTSCNN128 {100 * s128:.1f} -> "
                + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items())
            )
    print(f"\nrows: {out}")


if __name__ == "__main__":
    main()
