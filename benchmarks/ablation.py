"""What each of the paper's input choices costs (issue "DTSCNN that learns"): the ablation of
notebook 08 over protocols and seeds.

    python benchmarks/ablation.py --run runs/default [--protocols paper subject3] [--seeds 0 1 2]
        [--steps "paper input" "flow since onset" ...] [--epochs N] [--per-class N] [--folds 0 1 2] [--record]
        [--scheduler tcp://host:8786 | local:N]

``--run`` is a run with pre-processing and flow done (``make reproduce`` leaves ``runs/default``).
From the paper's input, one factor at a time, then all together (:data:`mexpr.ablation.STEPS`);
both streams and Eq. 11 on every fold; the profile's budget unless ``--epochs``/``--per-class``
say otherwise (every step gets the same).  Finished streams and features are reused, so an
interrupted ablation resumes.  Writes ``<run>/tables/ablation_runs.csv`` (one row per step,
protocol, seed and method), ``ablation_summary.csv``, ``ablation_<protocol>.md`` tables and
``<run>/figures/ablation.png``, and prints the fused rows; ``--record`` also keeps the table and
how it was made in ``docs/results/ablation_<profile>_runs.csv`` / ``.json``, which notebook 08
shows beside the steps its own plan runs.  Not a test: the default profile's full
ablation trains 12 steps x 2 protocols x 3 seeds x 3 folds x 2 streams (about a day on 2 cores):
``--scheduler`` runs each step's folds and streams as tasks of a Dask cluster (docs/scale.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import add_plan_args  # noqa: E402


def main() -> None:
    from mexpr import ablation, report, viz

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_plan_args(ap)
    ap.add_argument("--steps", nargs="+", default=None, help=f"default: all of {list(ablation.STEPS)}")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--per-class", type=int, default=None)
    ap.add_argument("--folds", nargs="+", type=int, default=None, help="default: every fold of each protocol")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--scheduler", default=None, help='a Dask cluster: "tcp://host:8786" or "local:N" (docs/scale.md); default: here')
    ap.add_argument(
        "--record", action="store_true", help="also keep the table in docs/results/ (ablation_<profile>_runs.csv), which notebook 08 shows"
    )
    args = ap.parse_args()

    from mexpr import scale

    t0 = time.perf_counter()
    with scale.scheduler(args.scheduler):  # None: here, as always
        runs = ablation.run(
            args.run,
            args.profile,
            args.protocols,
            args.seeds,
            args.steps,
            args.folds,
            jobs=args.jobs,
            progress=False,
            epochs=args.epochs,
            per_class=args.per_class,
        )
    summ = ablation.summary(runs)
    tables = Path(args.run) / "tables"
    summ.to_csv(tables / "ablation_summary.csv", index=False)
    for m in ablation.METHODS:
        t = ablation.table(runs, m)
        name = {"DTSCNN (fusion)": "fusion"}.get(m, m.lower())
        (tables / f"ablation_{name}.md").write_text(report.table_markdown(t))
        print(f"\n{m}\n" + report.table_markdown(t))
    viz.ablation_plot(summ, run_dir=args.run, name="ablation")
    info = {"args": vars(args), "seconds": round(time.perf_counter() - t0, 1), "rows": len(runs)}
    (tables / "ablation.json").write_text(json.dumps(info, indent=2) + "\n")
    if args.record:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        command = "python benchmarks/ablation.py " + " ".join(shlex.quote(a) for a in sys.argv[1:] if a != "--record")
        info |= {"command": command, "commit": commit or None, "date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count()}
        print("recorded:", ablation.record(runs, info, args.profile))
    print(f"{len(runs)} rows in {info['seconds']:.0f} s -> {tables}/ablation_*.csv|md, {args.run}/figures/ablation.png")


if __name__ == "__main__":
    main()
