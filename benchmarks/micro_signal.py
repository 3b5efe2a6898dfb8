"""Where a micro-expression's signal is at 30 fps: the two block reductions of the spotting pass,
frame by frame, on a synthetic long-video corpus whose ``groundtruth.json`` knows every event.

    python benchmarks/micro_signal.py --corpus data/lv --cache runs/az/cache/spot

For every frame ``i`` of every video (``spot.corpus_signals``, cached), the flow from ``i - k`` to
``i`` (micro ``k``, global motion removed) reduced over the 6 x 6 blocks in two ways: the mean of
the vectors' magnitudes (``Signals.local``) and the magnitude of the mean vector
(``Signals.vector``), each as the top third of the blocks averaged.  Prints, per kind of frame (a
micro-expression's apex and the frame either side, its other frames, quiet frames, each
distractor, macro-expressions), the median of each, and the frame-level ROC AUC of "apex" against
"quiet" and against every frame outside a micro-expression.  Writes ``<cache>/../micro_signal.csv``.

With ``--detector``, also the micro detector (:func:`mexpr.spot.fit_micro`) leave one subject out on
four inputs: ours (each block's mean vector to ``i`` and its return by ``i + k``, the macro ``k``'s,
the head's motion); the same with MDMD's block values (the vectors' magnitudes to ``i`` less to
``i + k``, main direction, top third) for the mean vector and its return; the same without the
return; and that from the blocks' mean magnitudes: micro-expression F1 at IoU >= 0.5 over the corpus.  Not a test: it reads a
corpus (minutes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    from sklearn.metrics import roc_auc_score

    from mexpr import spot

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True, help="a synthetic long-video root (mexpr synth --dataset casme2lv)")
    ap.add_argument("--cache", required=True, help="the spotting signals' cache (RUN/cache/spot)")
    ap.add_argument("--detector", action="store_true", help="also the micro detector's F1 on three inputs (leave one subject out)")
    args = ap.parse_args()
    data = spot.corpus_signals([args.corpus], args.cache, progress=True, jobs=2)
    vids = data["videos"].set_index("video_key")
    rows = []
    for s in data["signals"]:
        kind = np.array(["quiet"] * s.n_frames, dtype=object)
        for e in spot.video_events(vids.loc[s.video, "video_path"]):
            a, b = max(0, e["start"] - s.first_number), min(s.n_frames - 1, e["end"] - s.first_number)
            kind[a : b + 1] = e["type"]
        y = spot.micro_targets(s, data["truth"])
        kind[y == 1] = "micro apex"
        top = {name: np.sort(arr["micro"], 1)[:, -12:].mean(1) for name, arr in (("mean magnitude", s.local), ("mean vector", s.vector))}
        rows.append(pd.DataFrame({"video": s.video, "kind": kind, **top}))
    df = pd.concat(rows, ignore_index=True).dropna()
    out = Path(args.cache).parent / "micro_signal.csv"
    df.to_csv(out, index=False)
    cols = ["mean magnitude", "mean vector"]
    print("\n| frames | n | " + " | ".join(f"median, {c} (px)" for c in cols) + " |\n|---|---|---|---|")
    for kind, g in df.groupby("kind"):
        print(f"| {kind} | {len(g)} | " + " | ".join(f"{g[c].median():.3f}" for c in cols) + " |")
    apex = df["kind"] == "micro apex"
    for name, neg in (("quiet", df["kind"] == "quiet"), ("every frame outside a micro-expression", ~df["kind"].isin(["micro", "micro apex"]))):
        sel = apex | neg
        print(f"\nROC AUC, apex vs {name}: " + ", ".join(f"{c} {roc_auc_score(apex[sel], df.loc[sel, c]):.3f}" for c in cols))
    print(f"\nwrote {out}")
    if args.detector:
        detector(data)


def detector(data) -> None:
    from mexpr import spot

    ours = spot.micro_features

    def reduced(block):  # the input without the return (HF -> TF), from ``block`` (vector or local)
        def feats(sig):
            arr = getattr(sig, block)
            return spot._robust(np.concatenate([arr["micro"], arr["macro"], sig.head_motion("micro")], 1).astype(np.float32))

        return feats

    by_subject: dict = {}
    for s, sub in zip(data["signals"], data["subjects"]):
        by_subject.setdefault(sub, []).append(s)
    truth = data["truth"]
    print("\n| detector input | micro TP | spotted | F1 |\n|---|---|---|---|")
    variants = (("mean vectors, with their return (ours)", ours), ("MDMD's block values (magnitudes, with their return)", reduced("blocks")),
                ("mean vectors, without their return", reduced("vector")), ("mean magnitudes, without their return", reduced("local")))  # fmt: skip
    for name, fn in variants:
        spot.micro_features = fn
        tally = np.zeros(3, np.int64)
        for test in sorted(by_subject):
            train = {k: v for k, v in by_subject.items() if k != test}
            det = spot.fit_micro(train, truth)
            found = {s.video: [(a + s.first_number, b + s.first_number) for a, b, _ in det.intervals(s)] for s in by_subject[test]}
            want = spot._intervals_by_video(truth[truth["video"].isin(found)], "micro")
            tally += spot._tally(found, {v: want.get(v, []) for v in found})
        print(f"| {name} | {tally[0]} of {tally[2]} | {tally[1]} | {spot.prf(*tally)[2]:.3f} |", flush=True)
    spot.micro_features = ours


if __name__ == "__main__":
    main()
