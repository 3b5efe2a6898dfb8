"""The hot paths of ``make reproduce`` outside training, each against the straightforward way of
doing the same, as ratios measured in one run, with the results compared.

    python benchmarks/hot_paths.py --run runs/default [--profile default] [--clips 30]
                                   [--out docs/results/hot_paths.json]

``--run``: a run whose notebooks 04 and 06 trained fold 0 of the paper protocol on both inputs
(``make reproduce`` leaves ``runs/default``).

1. **pool4 features** of one trained stream (our input, DTSCNN128, fold 0) on ``--clips`` of the
   fold's training clips, coded as training coded them: the model called eagerly on clips loaded
   one after another (how :func:`mexpr.evaluate.stream_features` did it before) against
   :func:`mexpr.evaluate._extract` (one compiled function, clips coded two at a time in threads
   ahead of it).  Must give the same features, bit for bit.
2. **A learned Munsell scale** (our input's, DTSCNN128) for folds 0, 1, 2 in turn: each clip's peak
   measured again for every fold (before) against :func:`mexpr.flow.learn_scale`, which keeps each
   clip's peak for the process's life.  The same scales.
3. **FDM's principal directions** on ``--clips`` clips' TIM128 flow: the iteration over the whole
   sequence (:func:`mexpr.baselines.fdm._iterate`, before) against the one over the cuboids still
   moving (:func:`~mexpr.baselines.fdm._iterate_by_cuboid`).  Bit for bit the same.

Prints a table and writes ``--out`` (JSON).  Not a test: a few minutes on 2 cores.
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
sys.path.insert(0, str(ROOT))


def features(run, n: int) -> dict:
    from mexpr import evaluate, models, train

    cfg = run.config(protocol="paper", input="mexpr")
    out = train.stream_dir(run, cfg, 128, 0)
    model = models.load(out / "model.keras")
    trainset, _ = train.fold_split(run, cfg, 0)
    fcfg = evaluate.stream_flow(run, cfg, 128, 0)
    rows = [r for _, r in trainset.head(n).iterrows()]
    load = lambda r: train.clip_munsell(run, r, 128, fcfg)  # noqa: E731
    forward = evaluate._forward(model)
    forward(np.stack([load(rows[0])]))  # both sides start with TensorFlow warm
    import keras

    both = keras.Model(model.inputs[0], [model.get_layer("pool4_flat").output, model.outputs[0]])
    t0 = time.perf_counter()
    before = []
    for i in range(0, len(rows), 20):
        f, _ = both(np.stack([load(r) for r in rows[i : i + 20]]), training=False)
        before.append(np.asarray(f, np.float32))
    t_before = time.perf_counter() - t0
    t0 = time.perf_counter()
    after, _ = evaluate._extract(forward, load, rows, 20, False, "")
    t_after = time.perf_counter() - t0
    return {"what": f"pool4 features, our input, DTSCNN128, {len(rows)} training clips of fold 0", "before_s": t_before, "after_s": t_after,
            "same": bool(np.array_equal(np.concatenate(before), after))}  # fmt: skip


def learned_scale(run) -> dict:
    from mexpr import flow, train

    cfg = run.config(protocol="paper", input="mexpr")
    caches = [train.fold_split(run, cfg, k)[0]["flow_cache"] for k in (0, 1, 2)]

    def peak(path) -> float:
        with np.load(Path(run) / path) as z:
            return float(flow.robust_peak(flow.remove_global(z["flow128"])).max())

    def again(c):  # every clip's peak measured anew, one clip after another
        return float(np.percentile([peak(p) for p in c], 95))

    t0 = time.perf_counter()
    before = [again(c) for c in caches]
    t_before = time.perf_counter() - t0
    flow._clip_peak.cache_clear()
    t0 = time.perf_counter()
    after = [flow.learn_scale(run, c, 128, global_motion="affine") for c in caches]
    t_after = time.perf_counter() - t0
    return {
        "what": "learned Munsell scale, our input, DTSCNN128, folds 0-2 in turn",
        "before_s": t_before,
        "after_s": t_after,
        "same": before == after,
    }


def fdm_directions(run, n: int) -> dict:
    from mexpr import augment, flow, preprocess, train
    from mexpr.baselines import fdm

    cfg = augment.flow_config(run)
    clips = train.clips_table(run)
    flows = [flow.compute(preprocess.load_clip(run, r, 129), cfg["method"], **cfg["params"]).astype(np.float64) for _, r in clips.head(n).iterrows()]
    t_before = t_after = 0.0
    same = True
    for f in flows:
        grid = fdm.grid_shape(f.shape[:3])
        edges = [fdm._edges(size, k) for size, k in zip(f.shape[:3], grid)]
        sizes = [np.diff(e) for e in edges]
        start = fdm._cuboid_sum(f, edges)
        start = start / np.maximum(np.linalg.norm(start, axis=-1, keepdims=True), 1e-12)
        t0 = time.perf_counter()
        a = fdm._iterate(f, start, edges, sizes, 1e-12, fdm.DEFAULT_ITERATIONS)
        t_before += time.perf_counter() - t0
        t0 = time.perf_counter()
        b = fdm._iterate_by_cuboid(f, start, grid, [int(s[0]) for s in sizes], 1e-12, fdm.DEFAULT_ITERATIONS)
        t_after += time.perf_counter() - t0
        same &= bool(np.array_equal(a, b))
    return {"what": f"FDM principal directions, {len(flows)} clips' TIM128 flow", "before_s": t_before, "after_s": t_after, "same": same}


def main(argv=None) -> int:
    from mexpr.run import Run

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--profile", default="default", choices=["quick", "default", "paper"])
    ap.add_argument("--clips", type=int, default=30)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "hot_paths.json"))
    args = ap.parse_args(argv)
    run = Run.open(args.run, args.profile, 0)
    rows = [features(run, args.clips), learned_scale(run), fdm_directions(run, args.clips)]
    for r in rows:
        r["ratio"] = round(r["before_s"] / r["after_s"], 2)
        r["before_s"], r["after_s"] = round(r["before_s"], 2), round(r["after_s"], 2)
        print(f"{r['what']:<66} {r['before_s']:8.2f} s -> {r['after_s']:7.2f} s  x{r['ratio']:<5} same: {r['same']}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    record = {"command": "python benchmarks/hot_paths.py " + " ".join(argv if argv is not None else sys.argv[1:]), "commit": commit,
              "date": time.strftime("%Y-%m-%d"), "rows": rows}  # fmt: skip
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print("->", args.out)
    return 0 if all(r["same"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
