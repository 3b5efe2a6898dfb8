"""Spot then recognise, measured (the bars of issue "`mexpr analyze`").

    python benchmarks/analyze.py bar   --run RUN --corpus LV_ROOT [--seeds 0 1 2] [--input mexpr]
    python benchmarks/analyze.py rates --run RUN [--seeds 0 1 2] [--rates 200 60 30]
    python benchmarks/analyze.py speed --run RUN --corpus LV_ROOT [--seconds 20]

- ``bar``: for each seed, the run's streams of fold 0 (``mexpr evaluate --run RUN --input mexpr
  --seed S --fold 0`` trains them) recognise, in the synthetic long videos of ``LV_ROOT``, (a) every
  ground-truth micro-expression (the intervals a coder cut by hand) and (b) every micro-expression
  the learned spotter found there when its subject was held out (``RUN/spot/intervals.csv``, written
  by ``mexpr spot LV_ROOT --run RUN --seeds ...``: leave one subject out), and (c) every
  ground-truth micro-expression with its boundaries moved at random as far as MEGC still counts a
  spotted interval as found (IoU >= 0.5): what imprecise boundaries cost on their own.  Prints spotting's F1,
  recognition's UAR and UF1 on the true positives, STRS, the same streams' UAR on their own test
  fold's clips (200 fps, coded by hand), and the ratios the bar asks for (the true positives' with a
  95 % bootstrap interval over them).  The long videos' subjects
  are other faces than the clips' (:func:`mexpr.synth.longvideo.subject_seed`): every stream meets
  them for the first time.
- ``rates``: :func:`mexpr.timeline.frame_rate_study`, the same test clips as cameras at 200, 60 and
  30 fps would have filmed them.
- ``speed``: ``mexpr analyze`` (the command, in a fresh process: Python, TensorFlow and the models'
  start included) on the first half and all of a ``--seconds``-long 30-fps 640 x 360 MP4 cut from
  the videos of ``LV_ROOT``; wall time and peak memory of each.

Each writes ``<run>/tables/analyze_<what>.csv`` / ``.json`` and prints a markdown table.  Not a
test: ``bar`` and ``rates`` take minutes per seed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import PeakRSS  # noqa: E402


def _clip_uar(run, cfg) -> float:
    """The streams' fused UAR on their own fold-0 test clips (mexpr evaluate's result)."""
    from mexpr import evaluate

    ev = evaluate.load(run, cfg)
    f = ev.folds
    return float(f[(f["method"] == "DTSCNN (fusion)") & (f["fold"] == 0)]["uar"].iloc[0])


def _moved(truth: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Every ground-truth interval with its start and end moved at random (uniform shifts of up to half
    its length, seeded), kept where the IoU with the truth stays >= 0.5: intervals a spotter could have
    returned and been counted right (MEGC).  Recognising them measures what imprecise boundaries cost,
    apart from how many micro-expressions the spotter finds."""
    from mexpr import spot

    rng = np.random.default_rng(seed)
    out = truth.copy()
    for i, (s, e) in enumerate(zip(truth["start_frame"], truth["end_frame"])):
        half = (int(e) - int(s) + 1) // 2
        while True:
            a, b = int(s) + int(rng.integers(-half, half + 1)), int(e) + int(rng.integers(-half, half + 1))
            if b - a >= 2 and spot.iou((a, b), (int(s), int(e))) >= spot.IOU_THRESHOLD:
                break
        out.iloc[i, out.columns.get_loc("start_frame")], out.iloc[i, out.columns.get_loc("end_frame")] = a, b
    out["apex_frame"] = (out["start_frame"] + out["end_frame"]) // 2
    return out


def _bootstrap(pairs: pd.DataFrame, classes, clip: float, seed: int, n: int = 2000) -> tuple[float, float]:
    """The 95 % percentile interval of (UAR on the true positives) / ``clip`` over ``n`` resamples of
    the true positives with replacement, each scored as the bar scores them
    (:func:`mexpr.timeline.recognition`): how far a ratio on a dozen intervals can be trusted."""
    from mexpr import timeline

    d = pairs[pairs["truth"].isin(list(classes))].reset_index(drop=True)
    if d.empty or not clip:
        return float("nan"), float("nan")
    rng = np.random.default_rng([seed, 11])
    ratios = [timeline.recognition(d.iloc[rng.integers(0, len(d), len(d))], classes)["uar"] / clip for _ in range(n)]
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return float(lo), float(hi)


def bar(args) -> None:
    from mexpr import timeline, train

    truth = timeline.corpus_truth(args.corpus)
    spotted_all = pd.read_csv(Path(args.run) / "spot" / "intervals.csv")
    rows, pairs = [], []
    for seed in args.seeds:
        rec = timeline.load_recogniser(args.run, args.profile, seed, args.input, 0)
        classes = rec.class_names
        hand = timeline.recognise_corpus(rec, args.corpus, truth, args.progress)
        # the hand-cut intervals, scored against their own labels (spotting is perfect by construction)
        hand_s = timeline.score(hand, truth, classes)
        # the same intervals with a spotter's imprecision: boundaries anywhere MEGC still counts as found
        moved = timeline.score(timeline.recognise_corpus(rec, args.corpus, _moved(truth, seed), args.progress), truth, classes)
        sp = spotted_all[(spotted_all["method"] == "learned") & (spotted_all["seed"] == seed) & (spotted_all["type"] == "micro")]
        found = timeline.recognise_corpus(rec, args.corpus, sp, args.progress)
        s = timeline.score(found, truth, classes)
        clip = _clip_uar(args.run, rec.config)
        row = {"seed": seed, "experiment": train.experiment_dir(rec.run_dir, rec.config).name,
               "clip_uar": clip, "hand_uar": hand_s["uar"], "hand_uf1": hand_s["uf1"], "hand_n": hand_s["n_tp_labelled"],
               "moved_uar": moved["uar"], "moved_uf1": moved["uf1"], "moved_iou": float(moved["pairs"]["iou"].median()),
               "spot_f1": s["f1"], "spot_tp": s["tp"], "n_spotted": s["n_spotted"], "n_truth": s["n_truth"],
               "tp_uar": s["uar"], "tp_uf1": s["uf1"], "tp_n": s["n_tp_labelled"], "strs": s["strs"]}  # fmt: skip
        row["tp_over_clip"] = row["tp_uar"] / clip if clip else float("nan")
        row["tp_over_clip_lo"], row["tp_over_clip_hi"] = _bootstrap(s["pairs"], classes, clip, seed)
        row["tp_over_hand"] = row["tp_uar"] / row["hand_uar"] if row["hand_uar"] else float("nan")
        row["moved_over_clip"] = row["moved_uar"] / clip if clip else float("nan")
        row["moved_over_hand"] = row["moved_uar"] / row["hand_uar"] if row["hand_uar"] else float("nan")
        rows.append(row)
        pairs.append(s["pairs"].assign(seed=seed))
        print(row, flush=True)
    df = pd.DataFrame(rows)
    out = Path(args.run) / "tables"
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "analyze_bar.csv", index=False)
    pd.concat(pairs).to_csv(out / "analyze_bar_pairs.csv", index=False)
    cols = ["clip_uar", "hand_uar", "moved_uar", "moved_iou", "moved_over_clip", "moved_over_hand",
            "spot_f1", "tp_n", "tp_uar", "tp_uf1", "strs", "tp_over_clip", "tp_over_clip_lo", "tp_over_clip_hi", "tp_over_hand"]  # fmt: skip
    print("\n| seed | " + " | ".join(cols) + " |\n|" + "---|" * (len(cols) + 1))
    for r in rows:
        print(f"| {r['seed']} | " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    print("| mean ± std | " + " | ".join(f"{df[c].mean():.3f} ± {df[c].std(ddof=0):.3f}" for c in cols) + " |")


def rates(args) -> None:
    from mexpr import metrics, timeline

    rows = []
    for seed in args.seeds:
        rec = timeline.load_recogniser(args.run, args.profile, seed, args.input, 0)
        study = timeline.frame_rate_study(rec, args.rates, progress=args.progress)
        for rate, g in study.groupby("rate", sort=False):
            idx = {c: k for k, c in enumerate(rec.class_names)}
            m = metrics.metrics([idx[c] for c in g["truth"]], [idx.get(c, -1) for c in g["predicted"]])
            rows.append({"seed": seed, "rate": rate, "clips": len(g), "median_frames": float(g["frames"].median()), "uar": m["uar"], "uf1": m["uf1"],
                         "failed": int((g["predicted"] == "").sum())})  # fmt: skip
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    out = Path(args.run) / "tables"
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "analyze_rates.csv", index=False)
    print("\n| fps | clips | median frames per clip | fused UAR (mean ± std over seeds) | UF1 |\n|---|---|---|---|---|")
    for rate, g in df.groupby("rate", sort=False):
        print(f"| {rate:g} | {g['clips'].iloc[0]} | {g['median_frames'].median():g} | {g['uar'].mean():.3f} ± {g['uar'].std(ddof=0):.3f} | "
              f"{g['uf1'].mean():.3f} ± {g['uf1'].std(ddof=0):.3f} |")  # fmt: skip


def _user_video(root: Path, out: Path, seconds: float) -> Path:
    """A ``seconds``-long 30-fps 640 x 360 MP4 (the middle 360 rows) of the corpus' videos, longest
    first, one after another until it is long enough (a cut between people, as a user's edit has)."""
    from mexpr import longvideo, video

    mp4 = out / f"user_{seconds:g}s_640x360.mp4"
    if mp4.is_file():
        return mp4
    vids = longvideo.videos([root]).sort_values(["n_frames", "video_key"], ascending=[False, True])
    n = int(round(seconds * 30))

    def frames():
        k = 0
        for _, v in vids.iterrows():
            for f in video.open_video(v["video_path"], fps=float(v["fps"])):
                if k == n:
                    return
                k += 1
                yield f.image[60:420]

    video.write_video(mp4, frames(), 30.0)
    return mp4


def speed(args) -> None:
    from mexpr import video

    out = Path(args.run) / "bench-analyze"
    out.mkdir(parents=True, exist_ok=True)
    mp4 = _user_video(Path(args.corpus), out, args.seconds)
    n = video.open_video(mp4).info.n_frames
    rows = []
    for frames in (n // 2, n):
        part = out / f"part_{frames}.mp4"
        if not part.is_file():
            video.write_video(part, (f.image for f in video.open_video(mp4) if f.index < frames), 30)
        cmd = [sys.executable, "-m", "mexpr", "analyze", str(part), "--run", args.run, "--profile", args.profile, "--seed", str(args.seeds[0]),
               "--out", str(out / f"out_{frames}"), "--force", "--quiet"] + (["--input", args.input] if args.input else [])  # fmt: skip
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
        if res.returncode:
            raise SystemExit(res.stderr[-3000:])
        rows.append({"frames": frames, "seconds_of_video": frames / 30, "wall_s": round(wall, 1), "peak_rss_mib": round(rss.peak / 2**20, 1),
                     "summary": res.stdout.strip().splitlines()[-2] if res.stdout else ""})  # fmt: skip
        print(rows[-1], flush=True)
    (Path(args.run) / "tables" / f"analyze_speed_{args.seconds:g}s.json").write_text(
        json.dumps({"command": " ".join(sys.argv), "video": str(mp4), "runs": rows}, indent=2)
    )
    print("\n| video | frames | wall (s), the whole command | peak RSS (MiB) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['seconds_of_video']:.0f} s 640x360 30 fps | {r['frames']} | {r['wall_s']} | {r['peak_rss_mib']} |")
    print(f"\n{np.round(rows[-1]['wall_s'] / rows[-1]['seconds_of_video'], 2)} s per second of video")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["bar", "rates", "speed"])
    ap.add_argument("--run", required=True)
    ap.add_argument("--corpus", default=None, help="a long-video root (synthetic CAS(ME)²: mexpr synth --dataset casme2lv)")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--input", default="mexpr")
    ap.add_argument("--rates", nargs="+", type=float, default=[200, 60, 30])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--quiet", dest="progress", action="store_false")
    args = ap.parse_args()
    {"bar": bar, "rates": rates, "speed": speed}[args.what](args)


if __name__ == "__main__":
    main()
