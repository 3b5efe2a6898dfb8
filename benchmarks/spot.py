"""Tracking + spotting speed and memory on a long video (the spotting issue's bar: a 60-s 30-fps
640x480 video in <= 60 s on 2 cores, memory flat in the video's length).

    python benchmarks/spot.py [--seconds 60] [--out runs/bench-spot] [--spotter RUN/spot/learned]

1. renders one synthetic CAS(ME)² long video of ``--seconds`` (:mod:`mexpr.synth.longvideo`; kept in
   ``--out`` and reused) and writes its frames as an MP4 (mp4v, what a user brings);
2. in a fresh process per length, times ``spot.signals`` (read, track, align, flow) plus MDMD (and
   the learned spotter, given ``--spotter``) on the first 1/3, 2/3 and all of the video, and reads
   each process' peak resident memory: flat in the length means the pass is streamed.

Writes ``<out>/benchmark.json`` and prints a markdown table.  Not a test: it takes minutes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mexpr import spot, video  # noqa: E402


def _video(out: Path, seconds: float) -> Path:
    """A ``seconds``-long 30-fps 640x480 MP4 of a synthetic face among distractors."""
    from mexpr.synth import longvideo

    mp4 = out / f"long_{seconds:g}s.mp4"
    if mp4.is_file():
        return mp4
    root = longvideo.generate(out / "casme2lv", "casme2lv", scale=0.02, seconds=seconds, seed=0, jobs=2, progress=True)
    folder = max((p for p in (root / "rawpic").glob("*/*") if p.is_dir()), key=lambda p: len(list(p.iterdir())))
    v = video.open_video(folder, fps=30)
    video.write_video(mp4, (f.image for f in v), 30)
    return mp4


def _one(path: str, frames: int, spotter: str | None) -> dict:
    """In this process: the pass over the first ``frames`` frames, timed, and the peak RSS."""
    import cv2

    src = video.open_video(path)
    part = Path(path).with_name(f"part_{frames}.mp4")
    if not part.is_file():
        video.write_video(part, (f.image for f in src if f.index < frames), src.info.fps)
    learned = spot.LearnedSpotter.load(spotter) if spotter else None
    cv2.setNumThreads(2)
    t0 = time.perf_counter()
    sig = spot.signals(part)
    t1 = time.perf_counter()
    n_mdmd = len(spot.mdmd_spot(sig))
    t2 = time.perf_counter()
    n_learned = len(learned.spot(sig)) if learned else None
    t3 = time.perf_counter()
    return {
        "frames": sig.n_frames,
        "seconds_of_video": sig.n_frames / sig.fps,
        "signals_s": round(t1 - t0, 2),
        "mdmd_s": round(t2 - t1, 3),
        "learned_s": round(t3 - t2, 3) if learned else None,
        "total_s": round(t3 - t0, 2),
        "x_real_time": round((sig.n_frames / sig.fps) / (t3 - t0), 2),
        "face_frames": int(sig.found.sum()),
        "intervals_mdmd": n_mdmd,
        "intervals_learned": n_learned,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", default="runs/bench-spot")
    ap.add_argument("--spotter", default=None, help="a trained spotter folder (RUN/spot/learned) to time as well")
    ap.add_argument("--_one", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._one:
        print(json.dumps(_one(args._one[0], int(args._one[1]), args.spotter)))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mp4 = _video(out, args.seconds)
    n = video.open_video(mp4).info.n_frames
    rows = []
    for frames in (n // 3, 2 * n // 3, n):
        cmd = [sys.executable, __file__, "--_one", str(mp4), str(frames)] + (["--spotter", args.spotter] if args.spotter else [])
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    rss = np.array([r["peak_rss_mib"] for r in rows])
    record = {
        "command": " ".join(sys.argv),
        "video": str(mp4),
        "size": list(video.open_video(mp4).info.size),
        "fps": video.open_video(mp4).info.fps,
        "runs": rows,
        "peak_rss_growth_mib_per_minute": round(float(np.polyfit([r["seconds_of_video"] / 60 for r in rows], rss, 1)[0]), 1),
    }
    (out / "benchmark.json").write_text(json.dumps(record, indent=2) + "\n")
    print("\n| video | frames | track + flow (s) | MDMD (s) | learned (s) | total (s) | × real time | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['seconds_of_video']:.0f} s | {r['frames']} | {r['signals_s']} | {r['mdmd_s']} | {r['learned_s'] if r['learned_s'] is not None else '-'} "
            f"| {r['total_s']} | {r['x_real_time']} | {r['peak_rss_mib']} |"
        )
    print(f"\npeak RSS growth: {record['peak_rss_growth_mib_per_minute']} MiB per minute of video")


if __name__ == "__main__":
    main()
