"""Beyond one machine, measured: training and a baseline on 1 vs 2 local Dask workers, one stream on
1 vs 2 logical devices, as ratios measured in one run, and the time projected on N workers.

    python benchmarks/scale.py --run runs/default [--profile default] [--protocol subject3] [--folds 0 1 2]
                               [--workers 2] [--baseline mdmo] [--tf-threads default 1] [--epochs N] [--per-class N]
                               [--out docs/results/scale_benchmark.json]

``--run`` is a run with pre-processing and flow done (``make reproduce`` leaves ``runs/default``).

1. **Fold-parallel training** (:func:`mexpr.train.train_many`): every (fold, stream) task of the
   protocol's ``--folds`` trained with ``force=True`` under ``mexpr.scale.scheduler("local:1")`` and
   ``"local:W"`` (W = ``--workers``), each into its own tag.  The augmentation is built before (the
   cache is shared, so neither side pays it) and every worker imports TensorFlow before the clock
   starts.  Ratio: wall time with 1 worker / with W; the weights of both are compared (the same
   seed gives the same weights on any number of workers).  ``--tf-threads``: TensorFlow's intra-op
   threads per worker, for both sides (``default``: all cores, as a serial run; ``1``: one core per
   worker, no over-subscription, other weights than a default serial run); each setting is measured.
2. **A baseline** (``--baseline``): its features at TIM64 and TIM128 recomputed (``force=True``:
   joblib's Dask backend) and its SVMs fitted per fold (Dask tasks) on 1 and W workers.
3. **Several devices**: DTSCNN64 on fold ``--folds[0]`` in a fresh process with the CPU as 1 and as
   2 logical devices (``--devices 2``; TF_ENABLE_ONEDNN_OPTS=0 for both, which the split needs): the
   training clips per second of each.  Two logical CPU devices share the same cores, so this
   measures what the mirrored path costs, not a speed-up; on GPUs (not measured here) each replica
   has its own device.
4. **Projection**: the per-task durations measured on 1 worker, scheduled longest first on N
   workers (the makespan; Dask's scheduler does about as well on equal-size tasks), for N up to the
   number of tasks, beside the ideal sum / N.  Each worker should have the cores a serial run has.

Prints a table and writes ``--out`` (JSON).  Not a test: at ``--profile default`` it trains every
stream twice (minutes to hours); ``--profile quick --folds 0`` is the smoke test.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEVICES_CHILD = r"""
import json, sys
import tensorflow as tf
run, fold, devices, profile, per_class, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
if devices > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
from mexpr import train
cfg = train.config_for(profile, protocol=sys.argv[7], per_class=per_class, epochs=epochs, devices=devices, tag=f"scale-dev{devices}")
r = train.train_stream(run, 64, fold, cfg, jobs=1, verbose=0, force=True)
print(json.dumps({"devices": devices, "replicas": r.get("replicas", 1), "global_batch": r.get("global_batch", cfg.batch_size),
                  "train_s": r["seconds"], "clips_per_s": r["train_clips_per_s"]}))
"""


def makespan(durations: list[float], n: int) -> float:
    """The wall time of ``durations`` on ``n`` workers, longest task first (LPT list scheduling)."""
    loads = [0.0] * n
    for d in sorted(durations, reverse=True):
        heapq.heapreplace(loads, loads[0] + d)
    return max(loads)


def warm(client) -> None:
    """Every worker imports TensorFlow and mexpr's training before the clock starts."""

    def imports():
        import tensorflow  # noqa: F401

        from mexpr import train  # noqa: F401

        return True

    client.run(imports)


def weights_equal(a: str, b: str) -> bool:
    import numpy as np

    from mexpr import models

    return all(np.array_equal(x, y) for x, y in zip(models.load(a).get_weights(), models.load(b).get_weights()))


def tf_threads(threads: str) -> None:
    """Set the TensorFlow thread count the workers started next inherit (``default``: TensorFlow's)."""
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        if threads == "default":
            os.environ.pop(var, None)
        else:
            os.environ[var] = str(int(threads))


def bench_training(run: str, cfg, folds: list[int], workers: int, threads: str = "default") -> dict:
    from mexpr import scale, train

    pairs = [(k, f) for k in folds for f in (64, 128)]
    for k, f in pairs:  # the augmentation, built once for both sides
        trainset, _, samples = train.fold_plan(run, cfg, k)
        train.build_samples(run, trainset, samples, f, k, train.fold_flow(run, cfg, k, f, trainset), progress=False)
    tf_threads(threads)
    out = {}
    for w in (1, workers):
        c = replace(cfg, tag=f"scale-w{w}-threads{threads}")
        with scale.scheduler(f"local:{w}") as client:
            warm(client)
            t0 = time.perf_counter()
            res = train.train_many(run, c, pairs, force=True, verbose=0)
            wall = time.perf_counter() - t0
        out[w] = {
            "wall_s": round(wall, 2),
            "tasks_s": [round(r["seconds"] + r["augment_seconds"], 2) for r in res],
            "models": [r["model"] for r in res],
        }
    same = all(weights_equal(a, b) for a, b in zip(out[1]["models"], out[workers]["models"]))
    tf_threads("default")
    return {
        "tf_threads": threads,
        "tasks": [f"fold{k} DTSCNN{f}" for k, f in pairs],
        "wall_s": {str(w): v["wall_s"] for w, v in out.items()},
        "task_s_one_worker": out[1]["tasks_s"],
        f"task_s_{workers}_workers": out[workers]["tasks_s"],
        "speedup": round(out[1]["wall_s"] / out[workers]["wall_s"], 3),
        "same_weights": same,
    }


def bench_baseline(run: str, method: str, protocol: str, seed: int, folds: list[int], workers: int) -> dict:
    from mexpr import evaluate, scale
    from mexpr.baselines import extract

    out = {}
    for w in (1, workers):
        with scale.scheduler(f"local:{w}") as client:
            client.run(lambda: __import__("mexpr.baselines.extract"))
            t0 = time.perf_counter()
            for f in (64, 128):
                extract.features(run, method, f, force=True, progress=False)
            t1 = time.perf_counter()
            ev = evaluate.evaluate_baseline(run, method, protocol, seed, folds=folds, progress=False)
            t2 = time.perf_counter()
        out[w] = {"features_s": round(t1 - t0, 2), "svm_s": round(t2 - t1, 2), "predictions": ev.predictions.to_csv(index=False)}
    return {
        "method": method,
        "features_s": {str(w): v["features_s"] for w, v in out.items()},
        "svm_s": {str(w): v["svm_s"] for w, v in out.items()},
        "speedup_features": round(out[1]["features_s"] / out[workers]["features_s"], 3),
        "speedup_svm": round(out[1]["svm_s"] / max(out[workers]["svm_s"], 1e-9), 3),
        "same_predictions": out[1]["predictions"] == out[workers]["predictions"],
    }


def bench_devices(run: str, cfg, fold: int, profile: str) -> dict:
    env = os.environ | {
        "TF_ENABLE_ONEDNN_OPTS": "0",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    rows = {}
    for d in (1, 2):
        args = [run, str(fold), str(d), profile, str(cfg.per_class), str(cfg.epochs), cfg.protocol]
        out = subprocess.run([sys.executable, "-c", DEVICES_CHILD, *args], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise RuntimeError(f"the {d}-device run failed:\n{out.stderr[-3000:]}")
        rows[d] = json.loads(out.stdout.strip().splitlines()[-1])
    return {"runs": rows, "ratio_clips_per_s": round(rows[2]["clips_per_s"] / rows[1]["clips_per_s"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a run with pre-processing and flow done")
    ap.add_argument("--profile", default="default", choices=["quick", "default", "paper"])
    ap.add_argument("--protocol", default="subject3", choices=["paper", "subject3", "loso"])
    ap.add_argument("--folds", nargs="+", type=int, default=None, help="default: every fold of the protocol")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--baseline", default="mdmo", choices=["mdmo", "fdm", "stclqp", "none"])
    ap.add_argument("--epochs", type=int, default=None, help="override the profile's epochs (e.g. 1 for a smoke test)")
    ap.add_argument("--per-class", type=int, default=None, help="override the profile's augmented clips per class (the size of each task)")
    ap.add_argument("--tf-threads", nargs="+", default=["default"], help="TensorFlow intra-op threads per worker: default and/or a number")
    ap.add_argument("--skip-devices", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "scale_benchmark.json"))
    args = ap.parse_args()

    from mexpr import train

    cfg = train.config_for(args.profile, protocol=args.protocol, seed=args.seed, epochs=args.epochs, per_class=args.per_class)
    folds = args.folds if args.folds is not None else list(range(train.fold_count(args.run, cfg)))
    t_start = time.time()
    result = {
        "profile": args.profile,
        "protocol": args.protocol,
        "folds": folds,
        "workers": args.workers,
        "cores": os.cpu_count(),
        "per_class": cfg.per_class,
        "epochs": cfg.epochs,
        "command": "python benchmarks/scale.py " + " ".join(sys.argv[1:]),
    }
    result["training"] = []
    for threads in args.tf_threads:
        print(f"training {len(folds)} fold(s) x 2 streams on 1 and {args.workers} local Dask workers (TensorFlow threads: {threads}) ...", flush=True)
        result["training"].append(bench_training(args.run, cfg, folds, args.workers, threads))
    tr = result["training"][0]
    if args.baseline != "none":
        print(f"{args.baseline}: features and SVMs on 1 and {args.workers} workers ...", flush=True)
        result["baseline"] = bench_baseline(args.run, args.baseline, args.protocol, args.seed, folds, args.workers)
    if not args.skip_devices:
        print("DTSCNN64 on 1 and 2 logical CPU devices ...", flush=True)
        result["devices"] = bench_devices(args.run, cfg, folds[0], args.profile)
    durations = tr["task_s_one_worker"]
    ns = sorted({1, 2, 4, 8, 16, 45, 90, len(durations)} & set(range(1, len(durations) + 1)))
    result["projection"] = [{"workers": n, "makespan_s": round(makespan(durations, n), 1), "ideal_s": round(sum(durations) / n, 1)} for n in ns]
    result["seconds"] = round(time.time() - t_start, 1)

    print(f"\n{'measured in one run':<58}{'1 worker':>12}{f'{args.workers} workers':>12}{'ratio':>8}")
    w = str(args.workers)
    for t in result["training"]:
        label = f"training, {len(durations)} streams, TF threads {t['tf_threads']} (wall s)"
        print(f"{label:<58}{t['wall_s']['1']:>12.1f}{t['wall_s'][w]:>12.1f}{t['speedup']:>8.2f}")
    if "baseline" in result:
        b = result["baseline"]
        print(f"{b['method'] + ' features (s)':<58}{b['features_s']['1']:>12.1f}{b['features_s'][w]:>12.1f}{b['speedup_features']:>8.2f}")
        print(f"{b['method'] + ' SVMs per fold (s)':<58}{b['svm_s']['1']:>12.1f}{b['svm_s'][w]:>12.1f}{b['speedup_svm']:>8.2f}")
    if "devices" in result:
        d = result["devices"]
        print(
            f"{'DTSCNN64 clips/s, 1 vs 2 logical CPU devices':<58}{d['runs'][1]['clips_per_s']:>12.1f}{d['runs'][2]['clips_per_s']:>12.1f}"
            f"{d['ratio_clips_per_s']:>8.2f}"
        )
    print(f"same weights on 1 and {args.workers} workers: {all(t['same_weights'] for t in result['training'])}")
    if "baseline" in result:
        print(f"same {result['baseline']['method']} predictions on 1 and {args.workers} workers: {result['baseline']['same_predictions']}")
    print(f"\nprojected training time on N workers (per-task times of the 1-worker run, TF threads {tr['tf_threads']}, longest first):")
    for p in result["projection"]:
        print(f"  N = {p['workers']:>3}: {p['makespan_s']:>9.1f} s  (ideal {p['ideal_s']:.1f} s)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":  # the local clusters' worker processes re-import this file
    main()
