"""An explorer for JupyterLab (ipywidgets): choose a clip, scrub through its time with a slider and see
side by side the pre-processed frame, the same frame motion-magnified (:mod:`mexpr.magnify`), the
Munsell-coded flow the stream reads (:mod:`mexpr.flow`) and where the stream looks (Grad-CAM,
:mod:`mexpr.explain`), with the clip's label, both streams' SVM probabilities and Eq. 11's decision.

::

    views = {key: explorer.clip_view(run_dir, config, fold, key, models, probs) for key in keys}
    ex = explorer.Explorer(views)      # or {key: lambda: explorer.clip_view(...)}: computed when chosen
    display(ex)                         # the live widget (JupyterLab, a running kernel)
    ex.strip()                          # the same clip as a strip of frames: what a static notebook shows

A notebook executed by papermill has no live kernel to move the slider, so :meth:`Explorer.strip`
draws the fallback: evenly spaced fields of the chosen clip and stream, one row per panel.
Each picture is composed in numpy and sent as one PNG (no matplotlib per slider step), so scrubbing
stays fast; :meth:`Explorer.picture` returns it as an array.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mexpr.datasets import CLASSES
from mexpr.fusion import decision_fusion, first_decides
from mexpr.viz import relevance_overlay, strip_rows

#: The four panels of the explorer, left to right.
PANELS = ("frame", "magnified", "Munsell flow", "Grad-CAM")


@dataclass
class ClipView:
    """What the explorer shows of one clip.

    ``streams`` maps a stream (64, 128) to its arrays: ``frames`` and ``magnified`` uint8
    ``(fields + 1, 112, 96, 3)``, ``munsell`` uint8 ``(fields, 112, 96, 3)`` and ``relevance``
    float ``(fields, 112, 96)``; ``probs`` maps each stream to its SVM probabilities ``(4,)``;
    ``apex``: the apex's place in the clip, 0 (onset) to 1 (offset); ``explained``: the class the
    Grad-CAM maps explain, per stream."""

    key: str
    label: str
    streams: dict
    probs: dict
    apex: float | None = None
    aus: str = ""
    alpha: float = 0.0
    explained: dict = field(default_factory=dict)


def clip_view(
    run_dir: str | os.PathLike,
    config,
    fold: int,
    key: str,
    models: dict,
    probs: dict,
    alpha: float = 10.0,
    band: tuple[float, float] = (0.5, 8.0),
    lambda_c: float = 16.0,
    layer: str | None = None,
    target: str = "predicted",
    aus: str = "",
) -> ClipView:
    """A :class:`ClipView` of one of the run's clips (``subject_id/clip``) for fold ``fold``'s trained
    streams (``models``: ``{64: model, 128: model}``) of ``config``: its pre-processed frames, magnified
    ``alpha`` times (``band``, ``lambda_c``: :func:`mexpr.magnify.magnify`), the flow coded as each
    stream was trained, and each stream's Grad-CAM at ``layer`` (default
    :data:`mexpr.explain.TIME_LAYER`, conv3: where *and* when, so it changes as the slider moves) for
    ``target``: ``"predicted"`` (the class the stream's SVM answered, ``probs``) or ``"true"`` (the
    clip's class).  ``probs``: the streams' SVM probabilities, ``{64: (4,), 128: (4,)}``; ``aus``: the
    clip's Action Units, for the caption."""
    from mexpr import evaluate, explain, magnify, preprocess, train
    from mexpr.datasets import clip_keys

    if target not in ("true", "predicted"):
        raise ValueError(f"target must be 'true' or 'predicted', not {target!r}")
    clips = train.clips_table(run_dir, config)
    hit = clips[clip_keys(clips) == key]
    if hit.empty:
        raise KeyError(f"{key!r} is not a processed clip with flow in {run_dir}")
    row = hit.iloc[0]
    streams, explained = {}, {}
    for f, model in models.items():
        munsell = train.clip_munsell(run_dir, row, f, evaluate.stream_flow(run_dir, config, f, fold))
        frames = preprocess.load_clip(run_dir, row, f + 1)
        cls = CLASSES.index(row["label"]) if target == "true" else int(np.argmax(probs[f]))
        streams[f] = {
            "frames": frames,
            "magnified": magnify.magnify(frames, alpha=alpha, band=band, lambda_c=lambda_c),
            "munsell": munsell,
            "relevance": explain.grad_cam(model, munsell, layer or explain.TIME_LAYER, cls),
        }
        explained[f] = CLASSES[cls]
    apex = float(explain.apex_position(row["onset"], row["apex"], row["offset"], 1))
    return ClipView(str(key), str(row["label"]), streams, {f: np.asarray(p, float) for f, p in probs.items()}, apex, aus, alpha, explained)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    """``img`` with a white band above it holding ``text``."""
    import cv2

    band = np.full((18, img.shape[1], 3), 255, np.uint8)
    cv2.putText(band, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, img])


def _curve(relevance: np.ndarray, t: int, apex: float | None, width: int, height: int = 54) -> np.ndarray:
    """The relevance's time curve (each field's share) as a small plot, the current field in red and the apex in blue."""
    import cv2

    img = np.full((height, width, 3), 255, np.uint8)
    c = relevance.sum((1, 2))
    c = c / max(float(c.max()), 1e-12)
    n = len(c)
    xs = 6 + np.arange(n) * (width - 12) / max(n - 1, 1)
    ys = height - 6 - c * (height - 18)
    cv2.polylines(img, [np.stack([xs, ys], 1).round().astype(np.int32)], False, (60, 60, 60), 1, cv2.LINE_AA)
    if apex is not None:
        xa = int(round(6 + (apex * n - 1) * (width - 12) / max(n - 1, 1)))
        cv2.line(img, (xa, 12), (xa, height - 4), (30, 90, 220), 1)
    xt = int(round(xs[t]))
    cv2.line(img, (xt, 12), (xt, height - 4), (220, 30, 30), 2)
    cv2.putText(img, "Grad-CAM per field (red: now, blue: apex)", (6, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
    return img


class Explorer:
    """The widget (module text).  ``views`` maps a clip's name to its :class:`ClipView`, or to a
    function making it (called the first time the clip is chosen).  ``scale``: the panels' zoom.

    The widgets are attributes (``clip``, ``stream``, ``slider``, ``image``, ``info``) and
    ``widget`` holds them all; ``t`` is the current field.  Builds and updates without a display."""

    def __init__(self, views: dict[str, ClipView | Callable[[], ClipView]], scale: int = 2):
        import ipywidgets as w

        if not views:
            raise ValueError("the explorer needs at least one clip view")
        self._views = {str(k): v for k, v in views.items()}
        self.scale = int(scale)
        first = self.view_of(next(iter(self._views)))
        streams = sorted(first.streams)
        self.clip = w.Dropdown(options=[str(k) for k in self._views], description="clip")
        self.stream = w.ToggleButtons(options=[(f"DTSCNN{f}", f) for f in streams], value=streams[0], description="stream")
        self.slider = w.IntSlider(value=0, min=0, max=len(first.streams[streams[0]]["munsell"]) - 1, description="field", continuous_update=True)
        self.image = w.Image(format="png")
        self.info = w.HTML()
        self.widget = w.VBox([w.HBox([self.clip, self.stream]), self.slider, self.image, self.info])
        self.clip.observe(self._changed, names="value")
        self.stream.observe(self._rescaled, names="value")
        self.slider.observe(self._changed, names="value")
        self._changed()

    # -- state ----------------------------------------------------------------------------------
    def view_of(self, key: str) -> ClipView:
        v = self._views[key]
        if not isinstance(v, ClipView):
            v = self._views[key] = v()
        return v

    @property
    def view(self) -> ClipView:
        return self.view_of(self.clip.value)

    @property
    def t(self) -> int:
        return int(self.slider.value)

    def _rescaled(self, change=None) -> None:
        """A new stream: the field that ends at the same moment of the clip (field t of n ends at t + 1 / n of it)."""
        n = len(self.view.streams[self.stream.value]["munsell"])
        t = int(np.clip(round((self.slider.value + 1) * n / (self.slider.max + 1)) - 1, 0, n - 1))
        with self.slider.hold_trait_notifications():
            self.slider.max = n - 1
            self.slider.value = t
        self._changed()

    def _changed(self, change=None) -> None:
        import cv2

        if change is not None and change.get("owner") is self.clip:
            n = len(self.view.streams[self.stream.value]["munsell"])
            self.slider.max = n - 1
        ok, png = cv2.imencode(".png", self.picture()[..., ::-1])
        self.image.value = png.tobytes()
        self.info.value = self.caption()

    # -- what is shown --------------------------------------------------------------------------
    def panels(self, t: int | None = None) -> dict[str, np.ndarray]:
        """The four panels (:data:`PANELS`) at field ``t`` (default: the slider's): frame ``t + 1``
        (where field ``t`` ends), the same magnified, the flow field ``t`` and its Grad-CAM."""
        s = self.view.streams[self.stream.value]
        t = self.t if t is None else int(t)
        rel = s["relevance"]
        return {
            "frame": s["frames"][t + 1],
            "magnified": s["magnified"][t + 1],
            "Munsell flow": s["munsell"][t],
            "Grad-CAM": relevance_overlay(s["frames"][t + 1], rel[t], vmax=float(rel.max())),
        }

    def picture(self) -> np.ndarray:
        """The picture the widget shows now: the four panels, labelled, above the time curve (uint8 RGB)."""
        import cv2

        v, f, t = self.view, self.stream.value, self.t
        names = {"magnified": f"magnified x{v.alpha:g}", "Grad-CAM": f"Grad-CAM ({v.explained.get(f, '?')})"}
        tiles = []
        for name, img in self.panels().items():
            big = cv2.resize(img, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_NEAREST)
            tiles.append(_label(big, names.get(name, name) + (f" {t + 1}" if name == "frame" else f" {t}" if name == "Munsell flow" else "")))
            tiles.append(np.full((tiles[-1].shape[0], 6, 3), 255, np.uint8))
        top = np.concatenate(tiles[:-1], 1)
        return np.concatenate([top, _curve(v.streams[f]["relevance"], t, v.apex, top.shape[1])])

    def decision(self) -> dict:
        """Eq. 11 on this clip: each stream's class and top probability, which one decides, the fused class."""
        p = {f: np.asarray(self.view.probs[f], float)[None] for f in (64, 128)}
        return {
            "C1": CLASSES[int(p[64].argmax())],
            "P1": float(p[64].max()),
            "C2": CLASSES[int(p[128].argmax())],
            "P2": float(p[128].max()),
            "first_decides": bool(first_decides(p[64], p[128])[0]),
            "C": CLASSES[int(decision_fusion(p[64], p[128])[0])],
        }

    def caption(self) -> str:
        """The text under the picture (HTML): the clip, its label, both streams' probabilities, Eq. 11."""
        v = self.view
        d = self.decision()
        cells = "".join(f"<th style='padding:0 6px'>{c}</th>" for c in CLASSES)
        rows = "".join(
            f"<tr><td>DTSCNN{f}</td>" + "".join(f"<td style='padding:0 6px'>{p:.2f}</td>" for p in np.asarray(v.probs[f], float)) + "</tr>"
            for f in (64, 128)
        )
        rule = "P1 &ge; P2" if d["first_decides"] else "P1 &lt; P2"
        mark = "right" if d["C"] == v.label else "wrong"
        return (
            f"<b>{v.key}</b>: true class <b>{v.label}</b>{f' (AU {v.aus})' if v.aus else ''}<br>"
            f"<table><tr><td></td>{cells}</tr>{rows}</table>"
            f"Eq. 11: C1 = {d['C1']} (P1 = {d['P1']:.2f}), C2 = {d['C2']} (P2 = {d['P2']:.2f}): {rule} &rarr; "
            f"<b>C = {d['C']}</b> ({mark})"
        )

    def strip(self, n: int = 8, run_dir=None, name: str | None = None, readme: bool = False):
        """The static fallback: ``n`` evenly spaced fields of the current clip and stream, one row per
        panel (a matplotlib figure, saved with :func:`mexpr.viz.save_fig` when ``run_dir`` is given)."""
        v, f = self.view, self.stream.value
        s = v.streams[f]
        rel = s["relevance"]
        rows = {
            "frame": s["frames"][1:],
            f"magnified x{v.alpha:g}": s["magnified"][1:],
            "Munsell flow": s["munsell"],
            f"Grad-CAM\n({v.explained.get(f, '?')})": relevance_overlay(s["frames"][1:], rel, vmax=float(rel.max())),
        }
        d = self.decision()
        title = (
            f"{v.key}, true class {v.label}: DTSCNN{f}'s fields (columns)  |  Eq. 11: C1 = {d['C1']} ({d['P1']:.2f}), "
            f"C2 = {d['C2']} ({d['P2']:.2f}) -> C = {d['C']}"
        )
        return strip_rows(rows, n=n, title=title, run_dir=run_dir, name=name, readme=readme)

    # -- display --------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


# --------------------------------------------------------------------------------------------
# a long video's timeline (mexpr.timeline, notebook 11)


def interval_view(recogniser, source, row, fps: float | None = None, first_number: int = 0, truth: str = "", alpha: float = 10.0,
                  band: tuple[float, float] = (0.5, 8.0), lambda_c: float = 16.0) -> ClipView:  # fmt: skip
    """A :class:`ClipView` of one spotted interval of a video (``row``: a timeline row, frame numbers
    counted from ``first_number``): its frames through ``recogniser``'s pre-processing and flow
    (:class:`mexpr.predict.Recogniser`), magnified ``alpha`` times, the coded flow, each stream's
    Grad-CAM for the class it answered and both streams' SVM probabilities.  ``truth``: the
    interval's class where known (a synthetic video), else the caption says it is unknown."""
    from mexpr import explain, magnify
    from mexpr.timeline import interval_frames

    window = (int(row.start_frame) - first_number, int(row.end_frame) - first_number)
    _, frames, times = next(interval_frames(source, [window], fps=fps))
    r = recogniser.classify(frames, times=times, return_clip=True, name=f"{row.video} frames {row.start_frame}-{row.end_frame}")
    streams = {}
    for f in (64, 128):
        fr = r["clip"].resample(f + 1)
        streams[f] = {
            "frames": fr,
            "magnified": magnify.magnify(fr, alpha=alpha, band=band, lambda_c=lambda_c),
            "munsell": r["inputs"][f],
            "relevance": explain.grad_cam(recogniser.models[f], r["inputs"][f], explain.TIME_LAYER, CLASSES.index(r[f"DTSCNN{f}"])),
        }
    apex = (float(row.apex_s) - float(row.start_s)) / max(float(row.end_s) - float(row.start_s), 1e-9)
    return ClipView(interval_key(row), truth or "unknown", streams, {64: r["p64"], 128: r["p128"]}, apex, "", alpha,
                    {f: r[f"DTSCNN{f}"] for f in (64, 128)})  # fmt: skip


def interval_key(row) -> str:
    """How the timeline explorer names an interval: ``"12.30 s micro (Negative)"``."""
    return f"{float(row.start_s):.2f} s {row.type} ({row.label})"


class TimelineExplorer(Explorer):
    """The explorer over a long video (:mod:`mexpr.timeline`): a ``scrub`` slider over the whole
    video shows its frame with the timeline drawn along the top (:func:`mexpr.timeline.draw_timeline`);
    the ``clip`` menu lists the classified micro-expressions, and choosing one jumps the video to its
    apex (scrubbing into one chooses it); below, as in :class:`Explorer`, that interval's frames,
    magnified motion, Munsell flow, Grad-CAM and both streams' answers.  ``truth``: the video's
    ground truth (``start_frame``, ``label``; optional) for the captions.  Interval views are
    computed when first chosen."""

    def __init__(self, tl, video: str, recogniser, truth=None, scale: int = 2, fps: float | None = None, **view_kw):
        import functools

        import ipywidgets as w

        from mexpr import spot, timeline
        from mexpr.video import open_video

        rec = next((v for v in tl.videos if v.get("video") == video and v["status"] == "analysed"), None)
        if rec is None:
            raise ValueError(f"{video!r} is not an analysed video of this timeline ({', '.join(v.get('video', '?') for v in tl.videos)})")
        rows = tl.table[(tl.table["video"] == video) & (tl.table["status"] == "classified")]
        if rows.empty:
            raise ValueError(
                f"{video}: no classified micro-expression to explore (the timeline has {len(tl.table[tl.table['video'] == video])} interval(s))"
            )
        self.record, self.rows = rec, rows
        first = int(rec.get("first_number", 0))
        fps = fps or (float(rec["fps"]) if Path(rec["source"]).is_dir() else None)
        views = {}
        for r in rows.itertuples():
            label = ""
            if truth is not None:  # the ground truth it matches (IoU >= 0.5), as spotting is scored
                best = max(
                    (
                        (spot.iou((r.start_frame, r.end_frame), (s, e)), lab)
                        for s, e, lab in zip(truth["start_frame"], truth["end_frame"], truth["label"])
                    ),
                    default=(0.0, ""),
                )
                label = best[1] if best[0] >= spot.IOU_THRESHOLD else "none (a false positive)"
            views[interval_key(r)] = functools.partial(interval_view, recogniser, rec["source"], r, fps, first, label, **view_kw)
        self._video = open_video(rec["source"], fps=fps)
        self._spans = timeline.spans(tl, rec)
        self._apex = {interval_key(r): int(r.apex_frame) - first for r in rows.itertuples()}
        self._where = {interval_key(r): (int(r.start_frame) - first, int(r.end_frame) - first) for r in rows.itertuples()}
        super().__init__(views, scale)
        self.scrub = w.IntSlider(
            value=self._apex[self.clip.value], min=0, max=int(rec["frames"]) - 1, description="video frame", continuous_update=False
        )
        self.frame_image = w.Image(format="png")
        self.widget = w.VBox([self.scrub, self.frame_image, self.widget])
        self.scrub.observe(self._scrubbed, names="value")
        self.clip.observe(self._jump, names="value")
        self._scrubbed()

    def video_picture(self, index: int | None = None) -> np.ndarray:
        """Video frame ``index`` (default: the scrubber's) with the timeline on it, RGB at most 640 px wide."""
        import cv2

        from mexpr.timeline import draw_timeline

        i = self.scrub.value if index is None else int(index)
        img = draw_timeline(self._video.frame(i), self._spans, i, int(self.record["frames"]), i / float(self.record["fps"]))
        if img.shape[1] > 640:
            img = cv2.resize(img, (640, round(img.shape[0] * 640 / img.shape[1])), interpolation=cv2.INTER_AREA)
        return img[..., ::-1]

    def _jump(self, change=None) -> None:
        s, e = self._where[self.clip.value]
        if not s <= self.scrub.value <= e:
            self.scrub.value = self._apex[self.clip.value]

    def _scrubbed(self, change=None) -> None:
        import cv2

        ok, png = cv2.imencode(".png", self.video_picture()[..., ::-1])
        self.frame_image.value = png.tobytes()
        inside = next((k for k, (s, e) in self._where.items() if s <= self.scrub.value <= e), None)
        if inside is not None and inside != self.clip.value:
            self.clip.value = inside

    def caption(self) -> str:
        text = super().caption()
        if self.view.label == "unknown":  # a user's video: no truth to be right or wrong against
            text = text.replace("true class <b>unknown</b>", "true class not known").replace(" (wrong)", "")
        return text
