"""From a video to a timeline of recognised micro-expressions: spot, then recognise (``mexpr analyze``,
``mexpr.analyze(video, run)``, notebook 11).

A user's video goes through three streamed passes, so memory does not grow with its length:

1. **Spotting** (:mod:`mexpr.spot`): the face tracked and aligned frame by frame, the blocks' flow,
   and the run's spotter: the learned one where ``mexpr spot CORPUS --run RUN`` trained it, else
   MDMD with the ``p`` fitted there, else MDMD with the baseline's ``p``.
2. **Recognition** (:class:`~mexpr.predict.Recogniser`): the frames of every spotted
   micro-expression, onset to offset, through the run's own pre-processing, flow and Munsell
   coding, both DTSCNN streams, their SVMs and Eq. 11 -- exactly what ``mexpr predict`` does to a
   clip a coder cut by hand.  Only the frames of the intervals being read are held.
3. With ``video_out``: the video again, annotated (the timeline along the top, each interval's
   class and probability beside the face while it lasts).

**Consumer frame rates.**  The streams take 65 and 129 frames (the paper's TIM, §2.1); at a phone's
24-30 fps a micro-expression spans 5-15 frames.  The pipeline does what it does for CASME I's 60 fps:
the clip's frames are interpolated linearly along time, at their true time stamps
(:func:`mexpr.preprocess.interpolate`), to the streams' lengths.  Interpolation adds no motion that
was not filmed: a movement shorter than a frame interval is lost, and the flow between interpolated
frames is the filmed motion spread evenly.  What this costs is measured by :func:`frame_rate_study`
(the same synthetic expressions at 200, 60 and 30 fps, same subjects and folds; notebook 11,
docs/benchmarks.md).

**Spot then recognise, scored** (:func:`score`): spotting's F1 over the micro-expressions
(IoU >= 0.5, :mod:`mexpr.spot`), recognition's UAR and UF1 over the true-positive intervals (each
matched to one ground-truth interval, whose label it is scored against), and their product, the
spot-then-recognise score ``STRS = F1_spot x F1_recognition`` of Liong et al.'s MEAN (2023), the
analysis metric MEGC 2023-2025 use for the spot-then-recognise task (we take UF1, the unweighted
mean of per-class F1, as the recognition F1).

Outputs (:func:`write`): ``timeline.csv`` (:func:`columns`), ``timeline.json`` (the settings, the
run, the models and spotter used, per video its frame rate, face gaps, notes and every interval that
could not be classified with the reason), a figure per video (:func:`mexpr.viz.timeline`) and with
``video_out`` an annotated MP4 per video.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mexpr import _io
from mexpr.spot import INTERVAL_COLUMNS


class AnalyzeError(ValueError):
    """``mexpr analyze`` cannot start: a run without trained streams, an output folder that holds a timeline."""


#: What a row's ``status`` says: classified, or not (a macro-expression is not classified: the
#: streams are trained on micro-expressions; a micro one whose frames failed says why).
STATUSES = ("classified", "not classified", "error")


def columns(classes: Sequence[str]) -> list[str]:
    """``timeline.csv``'s columns: spotting's (:data:`mexpr.spot.INTERVAL_COLUMNS` less the score),
    the fused ``label``, one probability column per class of the run's protocol (``p_<class>``, Eq.
    11's: the deciding stream's), each stream's answer, which stream decided, the spotting
    ``score``, ``status`` and ``reason``."""
    return [*INTERVAL_COLUMNS[:-1], "label", *[f"p_{c}" for c in classes], "DTSCNN64", "DTSCNN128", "from", "score", "status", "reason"]


# --------------------------------------------------------------------------------------------
# the run's models


def trained_experiments(run_dir) -> list[str]:
    """The run's experiments with both streams of a fold trained, as ``"<experiment> fold <k>"``."""
    found = []
    for d in sorted(Path(run_dir, "train").glob("*/fold*")):
        if all((d / f"dtscnn{f}" / "done.json").is_file() for f in (64, 128)):
            found.append(f"{d.parent.name} {d.name.replace('fold', 'fold ')}")
    return found


def load_recogniser(run, profile: str = "default", seed: int = 0, input: str | None = None, fold: int = 0, **overrides):
    """The :class:`~mexpr.predict.Recogniser` of ``run``'s fold ``fold``: the training config of
    ``profile``, ``seed``, ``input`` and ``overrides`` (e.g. ``protocol``).  ``input=None`` takes our
    input where the run trained it, else the paper's.  A run without both streams of that fold is
    an :class:`AnalyzeError` that lists the experiments it does have (another protocol, seed or
    input: choose them with the options) or says which command trains them."""
    from mexpr import train
    from mexpr.predict import Recogniser
    from mexpr.run import Run

    r = run if isinstance(run, Run) else Run(Path(run), profile, int(seed))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for inp in [input] if input else ["mexpr", "paper"]:
        cfg = r.config(input=inp, **overrides)
        if all((train.stream_dir(r.dir, cfg, f, fold) / "done.json").is_file() for f in (64, 128)):
            return Recogniser(r.dir, cfg, fold)
    cfg = r.config(input=input or "mexpr", **overrides)
    wanted = f"{train.experiment_dir(r.dir, cfg).name} fold {fold}" + (
        "" if input else f" (nor {train.experiment_dir(r.dir, r.config(input='paper', **overrides)).name})"
    )
    have = trained_experiments(r.dir)
    opts = f"--profile {r.profile} --seed {r.seed}" + (f" --protocol {cfg.protocol}" if cfg.protocol != "paper" else "") + f" --input {cfg.input}"
    opts += f" --tag {cfg.tag}" if cfg.tag else ""
    how = f"train them with `python -m mexpr train --run {r.dir} {opts} --fold {fold}` (or `make reproduce`)"
    if have:
        raise AnalyzeError(
            f"{r.dir}: no trained DTSCNN64 and DTSCNN128 for {wanted}; the run has {', '.join(have)}: "
            f"choose one with --protocol, --seed, --input, --fold and --profile, or {how}"
        )
    raise AnalyzeError(f"{r.dir}: no trained streams (looked for {wanted}); {how}")


@dataclass
class Spotter:
    """The spotter a run offers new videos: ``method`` (``"learned"`` or ``"mdmd"``), the trained
    network or MDMD's ``p``, and where it came from (``source``)."""

    method: str
    learned: object = None
    p: dict | float | None = None
    source: str = ""

    def spot(self, sig) -> pd.DataFrame:
        from mexpr import spot

        return self.learned.spot(sig) if self.method == "learned" else spot.mdmd_spot(sig, 0.01 if self.p is None else self.p)

    def signal(self, sig) -> np.ndarray:
        """The per-frame signal it thresholds ``(N, 2)`` (micro, macro): the learned scores, or MDMD's values."""
        from mexpr import spot

        if self.method == "learned":
            return self.learned.scores(sig)
        return np.stack([sig.mdmd[t] for t in spot.TYPES], 1)


def run_spotter(run_dir, method: str | None = None) -> Spotter:
    """The spotter of ``run_dir`` (module text): ``method=None`` takes the learned one where the run
    has it, else MDMD; ``"learned"`` without one is a :class:`~mexpr.spot.SpotError` saying how to
    train it."""
    from mexpr import spot

    if method not in (None, *spot.METHODS):
        raise spot.SpotError(f"unknown spotting method {method!r}; valid: {', '.join(spot.METHODS)}")
    learned_dir = Path(run_dir) / "spot" / "learned"
    if method == "learned" or (method is None and (learned_dir / "spotter.keras").is_file()):
        return Spotter("learned", learned=spot.LearnedSpotter.load(learned_dir), source=str(learned_dir))
    fitted = Path(run_dir) / "spot" / "mdmd.json"
    if fitted.is_file():
        return Spotter("mdmd", p=json.loads(fitted.read_text())["p"], source=str(fitted))
    return Spotter("mdmd", p=0.01, source="the MEGC 2020 baseline's p = 0.01 (no spotter trained in this run)")


# --------------------------------------------------------------------------------------------
# the frames of the intervals


def interval_frames(source, windows: Sequence[tuple[int, int]], fps: float | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """One pass over ``source`` (:func:`mexpr.video.open_video`) yielding, for each window
    ``(first, last)`` of frame indices (0-based, inclusive), ``(its position in windows, frames
    uint8 (T, H, W, 3) RGB, times in s)`` as soon as its last frame is read.  Only the frames of
    windows still open are held; reading stops after the last window."""
    from mexpr.video import open_video

    if not windows:
        return
    v = open_video(source, fps=fps)
    held: dict[int, list] = {}
    last = max(e for _, e in windows)
    for fr in v:
        i = fr.index
        for k, (s, e) in enumerate(windows):
            if s <= i <= e:
                held.setdefault(k, []).append((fr.image[..., ::-1], fr.time))
        for k, (_, e) in enumerate(windows):
            if e == i and k in held:
                got = held.pop(k)
                yield k, np.stack([g[0] for g in got]), np.array([g[1] for g in got])
        if i >= last:
            break
    for k in sorted(held):  # a video that ended early (truncated): what was read
        got = held.pop(k)
        yield k, np.stack([g[0] for g in got]), np.array([g[1] for g in got])


def recognise_intervals(recogniser, source, intervals: pd.DataFrame, first_number: int = 0, fps: float | None = None,
                        progress: bool = False, thumbnails: dict | None = None) -> pd.DataFrame:  # fmt: skip
    """Classify every micro-expression interval of ``intervals`` (one video's rows of a spotting
    table, frame numbers counted from ``first_number``) with ``recogniser``: the table with
    :func:`columns` (macro rows ``"not classified"``; a micro row whose frames fail, e.g. no face
    found, ``"error"`` with the reason; the rest carry on).  ``thumbnails``: filled with each
    classified row's aligned apex crop ``(112, 96, 3)`` by row position."""
    from tqdm.auto import tqdm

    from mexpr import preprocess
    from mexpr.datasets import CLASSES

    names = recogniser.class_names
    out = intervals.reset_index(drop=True).copy()
    for c in [*columns(names)]:
        if c not in out:
            out[c] = np.nan if c.startswith("p_") else ""
    out["status"] = np.where(out["type"] == "micro", "error", "not classified")
    out.loc[out["type"] != "micro", "reason"] = "a macro-expression: the streams classify micro-expressions"
    micro = [i for i in range(len(out)) if out.at[i, "type"] == "micro"]
    windows = [(int(out.at[i, "start_frame"]) - first_number, int(out.at[i, "end_frame"]) - first_number) for i in micro]
    done = set()
    bar = tqdm(total=len(micro), desc="recognise", unit="interval", disable=not progress or not micro)
    for k, frames, times in interval_frames(source, windows, fps=fps):
        i = micro[k]
        done.add(i)
        bar.update()
        label = f"{out.at[i, 'video']} frames {out.at[i, 'start_frame']}-{out.at[i, 'end_frame']}"
        try:
            r = recogniser.classify(frames, times=times, name=label, return_clip=True)
        except (preprocess.PreprocessError, ValueError) as exc:
            out.at[i, "reason"] = f"{label}: {exc}"
            continue
        fused = r["p64"] if r["from"] == "DTSCNN64" else r["p128"]
        out.at[i, "label"], out.at[i, "from"] = r["prediction"], r["from"]
        out.at[i, "DTSCNN64"], out.at[i, "DTSCNN128"] = r["DTSCNN64"], r["DTSCNN128"]
        for c in names:
            out.at[i, f"p_{c}"] = round(float(fused[CLASSES.index(c)]), 4)
        out.at[i, "status"], out.at[i, "reason"] = "classified", ""
        if thumbnails is not None:
            clip = r["clip"]
            apex_t = float(out.at[i, "apex_s"]) - float(out.at[i, "start_s"]) + float(clip.times[0])
            thumbnails[i] = clip.frames[int(np.argmin(np.abs(clip.times - apex_t)))]
    bar.close()
    for i in set(micro) - done:
        out.at[i, "reason"] = "its frames could not be read (the video ended before them)"
    return out[columns(names)]


# --------------------------------------------------------------------------------------------
# one video, several videos


@dataclass
class Timeline:
    """What :func:`analyze` found: ``table`` (:func:`columns`), ``videos`` (one record per video:
    frames, fps, gaps, notes, or why it was skipped), ``settings`` (run, models, spotter), and per
    video the spotter's signal and times (``signals``) and the apex crops (``thumbnails``) the
    figure draws."""

    table: pd.DataFrame
    videos: list[dict]
    settings: dict
    signals: dict = field(default_factory=dict)
    thumbnails: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)

    def summary(self) -> str:
        """A few lines a user reads at the end of ``mexpr analyze``."""
        lines = []
        for v in self.videos:
            if v["status"] != "analysed":
                lines.append(f"{v['source']}: skipped: {v['reason']}")
                continue
            rows = self.table[self.table["video"] == v["video"]]
            micro = rows[rows["type"] == "micro"]
            ok = micro[micro["status"] == "classified"]
            counts = ok["label"].value_counts()
            labels = ", ".join(f"{c} x{n}" for c, n in counts.items())
            gaps = sum(g["end_s"] - g["start_s"] for g in v["gaps"]) if v["gaps"] else 0.0
            line = f"{v['source']}: {v['seconds']:.1f} s, {v['frames']} frames at {v['fps']:.3g} fps; "
            line += f"{len(micro)} micro-expression(s)" + (f" ({labels})" if labels else "")
            line += f", {int((rows['type'] == 'macro').sum())} macro-expression(s)"
            if len(micro) > len(ok):
                line += f"; {len(micro) - len(ok)} micro interval(s) not classified (see reason)"
            if v["gaps"]:
                line += f"; {len(v['gaps'])} face gap(s), {gaps:.1f} s"
            if rows.empty:
                line += " -- nothing spotted" + (" (the video is shorter than the spotter's window)" if v.get("too_short") else "")
            lines.append(line)
        return "\n".join(lines)


def analyze(
    videos,
    run,
    out: str | os.PathLike | None = None,
    profile: str = "default",
    seed: int = 0,
    input: str | None = None,
    fold: int = 0,
    protocol: str | None = None,
    tag: str | None = None,
    method: str | None = None,
    spotter: Spotter | None = None,
    fps: float | None = None,
    video_out: bool = False,
    force: bool = False,
    progress: bool = True,
    recogniser=None,
) -> Timeline:
    """A video (or several: files or frame folders) in, a timeline of recognised micro-expressions
    out (module text).  ``run``: a run folder with trained streams (:func:`load_recogniser` picks
    them from ``profile``, ``seed``, ``input``, ``fold``, ``protocol`` and ``tag``; or pass a loaded
    ``recogniser``); ``method``: the run's spotter (:func:`run_spotter`), or pass a :class:`Spotter`; ``out``: where :func:`write` puts the timeline (None: nothing written).
    A video that cannot be read or shows no face is recorded and the others go on."""
    from mexpr import spot
    from mexpr.video import VideoError

    videos = [videos] if isinstance(videos, str | os.PathLike) else list(videos)
    if out is not None:
        target = Path(out) / "timeline.csv"
        if target.exists() and not force:
            raise AnalyzeError(f"{target} exists; pass --force (force=True) to overwrite it, or another output folder")
    rec = recogniser or load_recogniser(run, profile, seed, input, fold, protocol=protocol, tag=tag)
    spotter = spotter or run_spotter(rec.run_dir, method)
    from mexpr import train

    settings = {
        "run": str(rec.run_dir),
        "experiment": train.experiment_dir(rec.run_dir, rec.config).name,
        "input": rec.config.input,
        "protocol": rec.config.protocol,
        "classes": rec.class_names,
        "fold": rec.fold,
        "seed": rec.config.seed,
        "models": {f"DTSCNN{f}": str(train.stream_dir(rec.run_dir, rec.config, f, rec.fold) / "model.keras") for f in (64, 128)},
        "spotter": {"method": spotter.method, "source": spotter.source},
        "frame_rate": "frames interpolated along time to 65 and 129 at their time stamps (mexpr.timeline)",
    }
    tables, records, signals, thumbs = [], [], {}, {}
    for src in videos:
        try:
            sig = spot.signals(src, fps=fps, progress=progress)
        except (spot.SpotError, VideoError) as e:
            records.append({"source": str(src), "video": Path(str(src)).stem, "status": "skipped", "reason": str(e)})
            continue
        found = spotter.spot(sig)
        th: dict = {}
        table = recognise_intervals(rec, src, found, first_number=sig.first_number, fps=fps, progress=progress, thumbnails=th)
        base = len(pd.concat(tables)) if tables else 0
        thumbs |= {base + i: t for i, t in th.items()}
        tables.append(table)
        signals[sig.video] = {"times": sig.times, "signal": spotter.signal(sig), "found": sig.found}
        records.append({"source": str(src), "video": sig.video, "status": "analysed", "frames": sig.n_frames, "fps": sig.fps,
                        "seconds": sig.n_frames / sig.fps, "first_number": sig.first_number, "gaps": sig.gaps,
                        "notes": sig.notes, "intervals": len(table), "too_short": sig.n_frames <= 2 * max(sig.ks.values()),
                        "not_classified": table.loc[table["status"] == "error", ["start_frame", "end_frame", "reason"]].to_dict("records")})  # fmt: skip
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns(rec.class_names))
    tl = Timeline(table, records, settings, signals, thumbs)
    if out is not None:
        write(tl, out, video_out=video_out, progress=progress)
    return tl


def write(tl: Timeline, out: str | os.PathLike, video_out: bool = False, progress: bool = False) -> dict:
    """``timeline.csv``, ``timeline.json``, ``timeline_<video>.png`` per video and with ``video_out``
    ``<video>_annotated.mp4``, into ``out``; returns (and keeps in ``tl.paths``) what was written."""
    from mexpr import viz

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "timeline.csv", "json": out / "timeline.json", "figures": {}, "videos": {}}
    _io.atomic_write_text(paths["csv"], tl.table.to_csv(index=False))
    for v in tl.videos:
        if v["status"] != "analysed":
            continue
        fig = viz.timeline(tl, v["video"])
        p = out / f"timeline_{_safe(v['video'])}.png"
        fig.savefig(p, dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
        paths["figures"][v["video"]] = p
        if video_out:
            paths["videos"][v["video"]] = annotate_video(tl, v, out / f"{_safe(v['video'])}_annotated.mp4")
    meta = {"settings": tl.settings, "videos": tl.videos, "columns": list(tl.table.columns)}
    meta["written"] = {"figures": {k: str(p) for k, p in paths["figures"].items()}, "videos": {k: str(p) for k, p in paths["videos"].items()}}
    _io.atomic_write_text(paths["json"], json.dumps(meta, indent=2, default=str) + "\n")
    tl.paths = paths
    return paths


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def spans(tl: Timeline, record: dict) -> list[tuple[int, int, tuple[int, int, int], str]]:
    """The intervals of ``record``'s video as drawn on its frames: ``(first, last frame index, BGR
    colour, text)``, micro-expressions in their class' colour, macro ones sand."""
    from mexpr.viz import CLASS_COLOURS, MACRO_COLOUR

    first = int(record.get("first_number", 0))
    out = []
    for r in tl.table[tl.table["video"] == record["video"]].itertuples():
        colour = CLASS_COLOURS.get(str(r.label), (0.6, 0.6, 0.6)) if r.type == "micro" else MACRO_COLOUR
        text = f"micro: {r.label} {getattr(r, 'p_' + str(r.label), float('nan')):.2f}" if r.status == "classified" else f"{r.type}-expression"
        out.append((int(r.start_frame) - first, int(r.end_frame) - first, tuple(int(255 * c) for c in colour[::-1]), text))
    return out


def draw_timeline(img: np.ndarray, spans_: list, index: int, n: int, time: float) -> np.ndarray:
    """``img`` (BGR, a frame of the video) with the whole timeline along its top: ``spans_``
    (:func:`spans`) as coloured bars, a cursor at frame ``index`` of ``n``, the time, and the class
    and probability of an interval ``index`` falls in.  Returns a new image."""
    import cv2

    img = img.copy()
    h, w = img.shape[:2]
    bar = max(8, h // 40)
    cv2.rectangle(img, (0, 0), (w - 1, bar), (40, 40, 40), -1)
    for s, e, bgr, text in spans_:
        x0 = int(w * s / n)
        cv2.rectangle(img, (x0, 0), (max(x0 + 1, int(w * (e + 1) / n)), bar), bgr, -1)
        if s <= index <= e:
            cv2.putText(img, text, (10, bar + 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, bgr, 2, cv2.LINE_AA)
    x = int(w * index / n)
    cv2.line(img, (x, 0), (x, bar), (255, 255, 255), 2)
    cv2.putText(img, f"{time:6.2f} s", (w - 120, bar + 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def annotate_video(tl: Timeline, record: dict, path: str | os.PathLike) -> Path:
    """The video of ``record`` again, each frame with the whole timeline along the top
    (:func:`draw_timeline`) and, while an interval lasts, its class and probability written on the
    frame.  Streamed: one frame at a time."""
    from mexpr.video import open_video, write_video

    n, fps = int(record["frames"]), float(record["fps"])
    marks = spans(tl, record)
    src = open_video(record["source"], fps=fps if Path(record["source"]).is_dir() else None)
    return write_video(path, (draw_timeline(fr.image, marks, fr.index, n, fr.time) for fr in src), fps)


# --------------------------------------------------------------------------------------------
# scoring: spot then recognise


def truth_label(emotion: str, protocol: str = "paper") -> str | None:
    """A ground-truth interval's class in the protocol's classes: the sheet's emotion as a class
    name (CAS(ME)²'s estimated emotion is negative / positive / surprise / others), or a CASME II
    emotion through Table 3's map; None where it has no class (e.g. ``others`` under megc3)."""
    from mexpr.corpora import CLASS_MAPS, CLASS_SETS

    classes = CLASS_SETS["megc3" if protocol == "megc3" else "paper"]
    e = str(emotion or "").strip().lower()
    for c in classes:
        if e == c.lower():
            return c
    return CLASS_MAPS["casme2"]["megc3" if protocol == "megc3" else "paper"].get(e)


def score(timeline: pd.DataFrame, truth: pd.DataFrame, classes: Sequence[str]) -> dict:
    """Spot then recognise, scored (module text).  ``timeline``: :func:`columns` rows (their
    micro-expressions); ``truth``: the ground-truth micro-expressions (``video``, ``start_frame``,
    ``end_frame``, ``label``; a label outside ``classes`` is left out of recognition, not of
    spotting).  Returns spotting's ``tp``, ``n_spotted``, ``n_truth``, ``precision``, ``recall``,
    ``f1``; recognition on the true positives (``n_tp_labelled``, ``uar``, ``uf1``, ``accuracy``);
    ``strs`` = f1 x uf1; and ``pairs`` (one row per true positive: truth label, predicted label)."""
    from mexpr import spot

    sp = timeline[timeline["type"] == "micro"]
    tp, pairs = 0, []
    for video in sorted(set(sp["video"]) | set(truth["video"])):
        s = sp[sp["video"] == video].reset_index(drop=True)
        t = truth[truth["video"] == video].reset_index(drop=True)
        m = spot.match(s[["start_frame", "end_frame"]].to_numpy().tolist(), t[["start_frame", "end_frame"]].to_numpy().tolist())
        tp += len(m)
        for i, j, o in m:
            pairs.append({"video": video, "start_frame": int(s.at[i, "start_frame"]), "end_frame": int(s.at[i, "end_frame"]),
                          "truth": t.at[j, "label"], "predicted": s.at[i, "label"], "status": s.at[i, "status"], "iou": o})  # fmt: skip
    pairs = pd.DataFrame(pairs, columns=["video", "start_frame", "end_frame", "truth", "predicted", "status", "iou"])
    p, r, f1 = spot.prf(tp, len(sp), len(truth))
    res = {"tp": tp, "n_spotted": len(sp), "n_truth": len(truth), "precision": p, "recall": r, "f1": f1, "pairs": pairs}
    res |= recognition(pairs, classes)
    res["strs"] = f1 * res["uf1"] if np.isfinite(res["uf1"]) else float("nan")
    return res


def recognition(pairs: pd.DataFrame, classes: Sequence[str]) -> dict:
    """UAR, UF1 and accuracy of ``pairs`` (``truth``, ``predicted``; rows whose truth is outside
    ``classes`` left out, an unclassified one counted wrong); NaN when none is left."""
    ok = pairs[pairs["truth"].isin(list(classes))]
    if ok.empty:
        return {"n_tp_labelled": 0, "uar": float("nan"), "uf1": float("nan"), "accuracy": float("nan")}
    m = class_metrics(ok["truth"], ok["predicted"], classes)
    return {"n_tp_labelled": len(ok), "uar": m["uar"], "uf1": m["uf1"], "accuracy": m["accuracy"]}


def corpus_truth(roots, protocol: str = "paper") -> pd.DataFrame:
    """A long-video corpus' micro-expressions (:func:`mexpr.longvideo.load`) as recognition's ground
    truth: :func:`mexpr.spot.truth_table`'s columns and ``label`` (:func:`truth_label` of the
    emotion; a synthetic video's ``groundtruth.json`` records the emotion the expression was drawn
    from, which is used where present; the sheet's otherwise)."""
    from mexpr import longvideo, spot

    roots = [roots] if isinstance(roots, str | os.PathLike) else list(roots)
    iv = longvideo.load(roots, errors="skip")
    iv = iv[iv["type"] == "micro"].reset_index(drop=True)
    paths = longvideo.videos(roots, iv).set_index("video_key")["video_path"]
    drawn: dict[tuple[str, int], str] = {}
    for key in set(iv["video_key"]):
        gt = Path(paths[key]) / "groundtruth.json"
        if gt.is_file():
            drawn |= {
                (key, int(e["onset"])): e["emotion"] for e in json.loads(gt.read_text()).get("intervals", []) if "onset" in e and e.get("emotion")
            }
    t = spot.truth_table(iv)
    t["label"] = [truth_label(drawn.get((k, int(o)), e), protocol) for k, o, e in zip(iv["video_key"], iv["onset"], iv["emotion"])]
    return t


def recognise_corpus(recogniser, roots, table: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
    """:func:`recognise_intervals` over a long-video corpus: ``table``'s micro-expression rows
    (``video`` = the corpus' video key, ``start_frame``, ``end_frame`` as its sheet numbers them;
    e.g. :func:`corpus_truth`, or the held-out intervals of ``mexpr spot ROOT``'s
    ``intervals.csv``), each classified from its video's frames.  One pass per video."""
    from tqdm.auto import tqdm

    from mexpr import longvideo

    roots = [roots] if isinstance(roots, str | os.PathLike) else list(roots)
    vids = longvideo.videos(roots).set_index("video_key")
    micro = table[table["type"] == "micro"] if "type" in table else table.assign(type="micro")
    parts = []
    for key, rows in tqdm(list(micro.groupby("video", sort=True)), desc="recognise", unit="video", disable=not progress):
        v = vids.loc[key]
        fps, first = float(v["fps"]), int(v["first_frame"])
        rows = rows.assign(apex_frame=rows["apex_frame"] if "apex_frame" in rows else (rows["start_frame"] + rows["end_frame"]) // 2,
                           score=rows["score"] if "score" in rows else np.nan)  # fmt: skip
        for c in ("start", "apex", "end"):
            rows[f"{c}_s"] = (rows[f"{c}_frame"] - first) / fps
        parts.append(recognise_intervals(recogniser, v["video_path"], rows[INTERVAL_COLUMNS], first_number=first, fps=fps))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns(recogniser.class_names))


def class_metrics(truth: Sequence[str], predicted: Sequence[str], classes: Sequence[str]) -> dict:
    """:func:`mexpr.metrics.metrics` (accuracy, UF1, UAR, n) of class names; a prediction outside
    ``classes`` (or none) counts as wrong."""
    from mexpr import metrics

    idx = {c: k for k, c in enumerate(classes)}
    return metrics.metrics([idx[c] for c in truth], [idx.get(c, -1) for c in predicted])


def clip_uar(recogniser) -> float:
    """The recogniser's streams' Eq. 11 UAR on their own fold's test clips (coded by hand, at the
    corpus' frame rate; :func:`mexpr.evaluate.fuse_fold` on the cached features): what spotting's
    intervals are compared with."""
    from mexpr import evaluate

    run_dir, cfg, fold = recogniser.run_dir, recogniser.config, recogniser.fold
    f = {k: evaluate.stream_features(run_dir, cfg, k, fold) for k in (64, 128)}
    pred = evaluate.fuse_fold(f[64], f[128], seed=cfg.seed, classes=recogniser.classes)
    return class_metrics(pred["label"], pred["DTSCNN (fusion)"], recogniser.class_names)["uar"]


# --------------------------------------------------------------------------------------------
# what a consumer frame rate costs


def subsample(times: np.ndarray, rate: float) -> np.ndarray:
    """Which of a clip's frames (``times`` in s, a high frame rate) a camera at ``rate`` fps would
    have taken: for each instant ``t0 + k / rate`` within the clip, the nearest frame (distinct, in
    order; at least the first and last)."""
    times = np.asarray(times, float)
    want = times[0] + np.arange(int(np.floor((times[-1] - times[0]) * rate + 1e-9)) + 1) / rate
    idx = np.unique(np.abs(times[None, :] - want[:, None]).argmin(1))
    if len(idx) < 2:
        idx = np.array([0, len(times) - 1])
    return idx


def frame_rate_study(recogniser, rates: Sequence[float] = (200, 60, 30), limit: int | None = None, progress: bool = False) -> pd.DataFrame:
    """Recognition of the recogniser's own test clips (its fold, coded by hand, filmed at 200 fps)
    as cameras at each of ``rates`` would have filmed them (:func:`subsample`, then the usual
    interpolation to 65 / 129 frames): one row per clip and rate with the truth, the prediction and
    the number of frames the clip had.  The same clips, subjects and fold at every rate.  ``limit``:
    at most this many clips, taken class by class in turn (a quick look; None: all)."""
    from tqdm.auto import tqdm

    from mexpr import preprocess, train
    from mexpr.datasets import clip_keys, frame_number
    from mexpr.run import Run

    run_dir, cfg = recogniser.run_dir, recogniser.config
    _, test = train.fold_split(run_dir, cfg, recogniser.fold)
    if limit is not None:  # round-robin over the classes: every class is seen even in a quick look
        test = test.assign(_k=test.groupby("label").cumcount()).sort_values(["_k", "label"], kind="stable").head(int(limit))
    df = Run(run_dir).dataset(errors="skip")
    by_key = {k: (list(f), float(r)) for k, f, r in zip(clip_keys(df), df["frames"], df["fps"])}
    rows = []
    for key, label in tqdm(list(zip(clip_keys(test), test["label"])), desc="frame rates", unit="clip", disable=not progress):
        files, native = by_key[key]
        times = np.array([frame_number(f) for f in files], float) / native
        for rate in rates:
            idx = subsample(times, min(float(rate), native))
            row = {"clip": key, "truth": label, "rate": float(rate), "frames": len(idx)}
            try:
                r = recogniser.classify([files[i] for i in idx], times=times[idx], name=key)
                row |= {"predicted": r["prediction"], "DTSCNN64": r["DTSCNN64"], "DTSCNN128": r["DTSCNN128"], "reason": ""}
            except (preprocess.PreprocessError, ValueError) as exc:
                row |= {"predicted": "", "DTSCNN64": "", "DTSCNN128": "", "reason": str(exc)}
            rows.append(row)
    return pd.DataFrame(rows)
