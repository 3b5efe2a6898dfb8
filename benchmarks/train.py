"""Training throughput and memory: the real input pipeline against pre-made tensors, peak RSS at
100 and 500 augmented clips per class, and the paper profile's time estimated on this machine.

    python benchmarks/train.py --run runs/default [--clips 200] [--rounds 3] [--per-class 100 500]

``--run`` is a run with pre-processing and flow done (``make reproduce`` leaves ``runs/default``).

1. Throughput, per stream, measured in one process and interleaved (A, B, A, B, ...) so that a busy
   machine slows both alike: (A) ``model.fit`` on ``--clips`` augmented clips held in memory as one
   uint8 array; (B) the same model and clips read batch by batch from the augmentation cache by
   :func:`mexpr.train.stream_dataset` (what training uses).  Ratio B / A, median over rounds.
2. Peak RSS of a whole ``train_stream`` (one epoch, test-fold monitor on) in a fresh process at each
   ``--per-class``; the augmentation is built first, in the same child, so the peak is training's
   (plus the parent's bookkeeping), not the augmentation workers'.
3. The paper profile (500 per class, 30 epochs, 3 folds, both streams) estimated from the rates
   measured here.

Writes ``docs/results/train_benchmark.json``.  Not a test: it takes minutes and ~13 GB of disk.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

CHILD = r"""
import json, sys, time
from dataclasses import replace
from mexpr import augment, train

def hwm_gb():
    # VmHWM: this process's peak RSS.  (getrusage's ru_maxrss survives execve on Linux, so a child
    # started by a big parent would report the parent's RSS.)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20

run, fields, per_class = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cfg = replace(train.config_for("default"), per_class=per_class, epochs=1, tag=f"bench{per_class}")
_, _, plan = train.fold_plan(run, cfg, 0)
t = time.perf_counter(); augment.build(run, plan, fields, progress=False); t_aug = time.perf_counter() - t
# augmentation cost per sample on one core, measured afresh (the cache may already hold the plan)
rows = plan.head(8).to_dict("records"); cfg_flow = augment.flow_config(run)
t = time.perf_counter(); [augment.sample_munsell(run, r, fields, cfg_flow) for r in rows]; per_sample = (time.perf_counter() - t) / len(rows)
before = hwm_gb()
r = train.train_stream(run, fields, 0, cfg, verbose=0, force=True)
print(json.dumps({"fields": fields, "per_class": per_class, "clips": r["train_clips"], "augment_s": t_aug,
                  "augment_s_per_sample_one_core": per_sample,
                  "train_s": r["seconds"], "clips_per_s_with_monitor": r["train_clips_per_s"],
                  "peak_rss_gb": hwm_gb(), "rss_before_training_gb": before}))
"""


def throughput(run: str, fields: int, clips: int, rounds: int) -> dict:
    import tensorflow as tf

    from mexpr import augment, train

    cfg = train.config_for("default")
    _, _, plan = train.fold_plan(run, cfg, 0, per_class=max(1, -(-clips // 4)))
    paths = augment.build(run, plan, fields, progress=True)[:clips]
    labels = np.array([train.CLASSES.index(c) for c in plan["label"]][:clips], np.int32)
    x = np.stack([np.load(p) for p in paths])
    steps = len(paths) // cfg.batch_size
    n = steps * cfg.batch_size
    train.set_determinism(0)
    model = train.build(fields, cfg, steps, 0)
    tensors = tf.data.Dataset.from_tensor_slices((x[:n], labels[:n])).batch(cfg.batch_size).prefetch(2)

    def timed(kind):
        if kind == "tensors":
            data, k = tensors, steps
        else:
            data, k = train.stream_dataset(paths[:n], labels[:n], fields, cfg.batch_size, 0, 0, 1)
        t = time.perf_counter()
        model.fit(data, epochs=1, steps_per_epoch=k, verbose=0, shuffle=False)
        return n / (time.perf_counter() - t)

    timed("tensors"), timed("stream")  # warm-up: tracing, caches
    rates = {"tensors": [], "stream": []}
    for _ in range(rounds):
        for kind in ("tensors", "stream"):
            rates[kind].append(timed(kind))
    ratio = [s / t for s, t in zip(rates["stream"], rates["tensors"])]
    # The machine flips between speed states mid-run, so a round's A/B ratio can straddle a flip;
    # the ratio of medians and the ratio of the best rounds (timeit's rule) are the robust reads.
    return {
        "fields": fields,
        "clips": n,
        "tensors_clips_per_s": rates["tensors"],
        "stream_clips_per_s": rates["stream"],
        "ratio_median": float(np.median(ratio)),
        "ratio_of_medians": float(np.median(rates["stream"]) / np.median(rates["tensors"])),
        "ratio_of_best": float(max(rates["stream"]) / max(rates["tensors"])),
        "ratios": ratio,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/default")
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-class", type=int, nargs="+", default=[100, 500])
    ap.add_argument("--streams", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()

    from _util import du

    path = ROOT / "docs" / "results" / "train_benchmark.json"
    out = {"run": args.run, "throughput": [], "rss": []}
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    if args.skip_throughput:  # keep the earlier throughput rows
        out["throughput"] = earlier.get("throughput", [])
    if args.skip_rss:  # keep the earlier memory rows and estimate
        out |= {k: v for k, v in earlier.items() if k in ("rss", "rss_note", "augment_cache_gb", "paper_profile_estimate_h")}
    if not args.skip_rss:  # first, while this process is small (children are separate processes anyway)
        for f in args.streams:
            for pc in args.per_class:
                res = subprocess.run([sys.executable, "-c", CHILD, args.run, str(f), str(pc)], capture_output=True, text=True, cwd=ROOT)
                if res.returncode:
                    print(res.stderr[-3000:], file=sys.stderr)
                    return 1
                r = json.loads(res.stdout.strip().splitlines()[-1])
                out["rss"].append(r)
                print(
                    f"DTSCNN{f} at {pc} per class ({r['clips']} clips): peak RSS {r['peak_rss_gb']:.2f} GB; augmentation "
                    f"{r['augment_s']:.0f} s; one epoch {r['train_s']:.0f} s ({r['clips_per_s_with_monitor']:.1f} clips/s with the test-fold monitor)",
                    flush=True,
                )
        out["augment_cache_gb"] = du(Path(args.run) / "cache" / "augment") / 1e9
        out["rss_note"] = "peak RSS = VmHWM of a fresh child process running one epoch of train_stream (augmentation already cached)"
        # the paper profile: 500 per class, 30 epochs, 3 folds, both streams, on this machine
        est = 0.0
        for f in args.streams:
            big = max((r for r in out["rss"] if r["fields"] == f), key=lambda r: r["clips"])
            per_sample = big["augment_s_per_sample_one_core"] / 2  # two workers on 2 cores
            est += 3 * (2000 * per_sample + 30 * 2000 / big["clips_per_s_with_monitor"])
        out["paper_profile_estimate_h"] = est / 3600
        print(
            f"paper profile (500 per class, 30 epochs, 3 folds, both streams) estimated on this machine: {est / 3600:.1f} h; "
            f"augmentation cache now {out['augment_cache_gb']:.1f} GB"
        )
    if not args.skip_throughput:
        for f in args.streams:
            r = throughput(args.run, f, args.clips, args.rounds)
            out["throughput"].append(r)
            print(
                f"DTSCNN{f}: pre-made tensors {np.median(r['tensors_clips_per_s']):.1f} clips/s, stream from disk "
                f"{np.median(r['stream_clips_per_s']):.1f} clips/s; ratio of medians {r['ratio_of_medians']:.3f}, of best rounds "
                f"{r['ratio_of_best']:.3f}, per round {', '.join(f'{x:.3f}' for x in r['ratios'])}",
                flush=True,
            )
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
