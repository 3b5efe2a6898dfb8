"""Synthetic long videos for spotting, in the layouts of CAS(ME)² and SAMM Long Videos (docs/DESIGN.md
§10, docs/corpora.md "Long videos"), read by the same loader as the real corpora (:mod:`mexpr.longvideo`).

Each subject (a face of :func:`~mexpr.synth.identity.make_identity`) gets several long videos, and
each video a few macro- and micro-expressions at known intervals among the distractors that make
spotting hard:

- **micro-expressions** drawn exactly as the clips of the CASME II stand-in (SAMM's for SAMM Long
  Videos): emotion, AU recipe and subset, duration in seconds and apex position from
  :func:`~mexpr.synth.plans.plan_clips`, intensity and timing from :func:`~mexpr.synth.motion.make_motion`
  with the same :class:`~mexpr.synth.plans.Difficulty`;
- **macro-expressions**: fuller AU sets (the ``"easy"`` difficulty's dropout), :attr:`Schedule.macro_gain`
  times the micro-expressions' amplitude, 0.5-4 s long, the apex anywhere from 20 to 70 % of the way;
- **blinks** (AU45, 150 ms, every 2-6 s), **head turns** (a few degrees and several px over 0.5-1.5 s,
  held or returned, on top of a slow drift like the clips'), **talking** (AU25 + AU26, the jaw
  opening and closing at 3-6 Hz for 1-3 s), **lighting** (the clips' flicker plus steps of 3-8 % in
  brightness), sensor noise and compression (JPEG frames; CAS(ME)² also an AVI of the same frames).

Expressions, head turns and talking never overlap one another (blinks and lighting changes fall
anywhere); every fifth video or so has no expression at all, only distractors (spotting counts its
false positives there).  The real corpora have about 3 macro- and 0.6 micro-expressions per
CAS(ME)² video (1 minute or more); ours are shorter and denser in micro-expressions
(:class:`Schedule`), so that a spotting F1 can be measured on a few minutes of video.

Beside each video's frames: ``groundtruth.json`` (every interval and distractor event, in frame
numbers, with its parameters), ``groundtruth.csv`` (per frame: the head's pose, the expression's,
blink's and talking's peak displacement in px at crop scale, the brightness gain, the interval
type) and ``motion.npz`` (the exact motion, :class:`~mexpr.synth.motion.Motion`, whose
:func:`~mexpr.synth.motion.ground_truth_flow` gives the dense flow of any frame pair).  The sheets
are written as the real ones, quirks included (:data:`mexpr.corpora.QUIRKS`).

Frames are rendered one at a time and written as they come (a video is never held in memory); a
finished video (its ``motion.npz``) is not rendered again, so an interrupted run resumes; the same
seed writes byte-identical files.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mexpr import _io
from mexpr.corpora import CORPORA, LONG_CORPORA
from mexpr.synth.identity import FRAME_H, FRAME_W, Identity, make_identity
from mexpr.synth.motion import FIELD_STRIDE, Motion, au_field, make_motion, profile
from mexpr.synth.plans import DIFFICULTIES, SAMM_FIRST, ClipPlan, Difficulty, claim_folder, plan_clips, resolve_difficulty

GENERATOR_VERSION = 1
#: The long-video corpora the generator writes.
LONG_DATASETS: tuple[str, ...] = tuple(LONG_CORPORA)


@dataclass(frozen=True)
class LongFormat:
    """How a synthetic long-video corpus is written: its frame rate (the real one), the size and
    colour of its frames, the clips' corpus its micro-expressions follow, and the defaults of
    :func:`generate` (``scale``: of the published subjects and videos; ``seconds``: per video)."""

    fps: int
    frame_size: tuple[int, int]
    color: bool
    micro_like: str
    scale: float
    seconds: float


#: CAS(ME)² as distributed (30 fps, 640×480 colour).  SAMM Long Videos keeps its 200 fps but is
#: written at half its 2040×1088 (grey) and with short videos, so that the default renders in
#: minutes on two cores (docs/corpora.md).
FORMATS: dict[str, LongFormat] = {
    "casme2lv": LongFormat(30, (640, 480), True, "casme2", 0.3, 20.0),
    "sammlv": LongFormat(200, (1020, 544), False, "samm", 0.05, 6.0),
}

#: CAS(ME)²'s nine elicitation videos: code, title (as in the folder names, typo included),
#: expression name (the sheet's ``naming rule2``), the emotion the video was chosen to elicit.
CASME2LV_VIDEOS: tuple[tuple[str, str, str, str], ...] = (
    ("0101", "disgustingteeth", "disgust1", "disgust"),
    ("0102", "eatingworms", "disgust2", "disgust"),
    ("0401", "girlcrashing", "anger1", "anger"),
    ("0402", "beatingpregnantwoman", "anger2", "anger"),
    ("0502", "funnyerrors", "happy1", "happiness"),
    ("0503", "unnyfarting", "happy2", "happiness"),
    ("0505", "funnyinnovations", "happy3", "happiness"),
    ("0507", "climbingthewall", "happy4", "happiness"),
    ("0508", "funnydunkey", "happy5", "happiness"),
)
#: CAS(ME)²'s subject folders, participant 1 to 22 (the sheet's ``naming rule1``).
CASME2LV_SUBJECTS: tuple[str, ...] = tuple(f"s{n}" for n in (15, 16, 19, 20, 21, 22, 23, 24, 25, 26, 27, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 40))
SAMMLV_VIDEOS_PER_SUBJECT = 7  # SAMM's inducement videos 1..7
_DATASET_CODE = {"casme2lv": 21, "sammlv": 22}
_VALENCE = {"happiness": "positive", "surprise": "surprise", "others": "others", "other": "others"}


@dataclass(frozen=True)
class Schedule:
    """How often and how strongly each event happens (seconds; displacements in px at crop scale,
    as the clips' :class:`~mexpr.synth.plans.Difficulty`)."""

    macro_every_s: float = 7.0  # one macro-expression per this many seconds of video (at least one)
    micro_every_s: float = 8.0  # the real CAS(ME)² has one per ~100 s: ours are ~12x denser
    macro_seconds: tuple[float, float] = (0.5, 4.0)  # log-uniform
    macro_gain: float = 3.0  # macro amplitude = the Difficulty's micro intensity distribution x this
    macro_apex: tuple[float, float] = (0.2, 0.7)  # where the apex lies, as a fraction of onset..offset
    blink_every_s: tuple[float, float] = (2.0, 6.0)
    blink_seconds: float = 0.15
    blink_px: tuple[float, float] = (2.5, 4.0)  # as the clips' blinks
    turn_every_s: float = 10.0
    turn_seconds: tuple[float, float] = (0.5, 1.5)
    turn_deg: tuple[float, float] = (1.5, 4.0)
    turn_px: tuple[float, float] = (3.0, 8.0)
    turn_scale: float = 0.015
    talk_every_s: float = 12.0
    talk_seconds: tuple[float, float] = (1.0, 3.0)
    talk_hz: tuple[float, float] = (3.0, 6.0)
    talk_px: tuple[float, float] = (1.5, 3.5)
    light_every_s: float = 15.0
    light_step: tuple[float, float] = (0.03, 0.08)
    light_seconds: tuple[float, float] = (0.05, 0.3)
    drift_scale: float = 2.0  # the slow drift: the clips' head drift x this, over the whole video
    margin_s: float = 0.5  # no expression, turn or talk this close to either end
    gap_s: float = 0.3  # at least this between expressions, turns and talking
    empty_every: int = 5  # about one video in this many has no expression


SCHEDULE = Schedule()

# --------------------------------------------------------------------------------------------
# the plan: videos and their events, before any frame is drawn


@dataclass
class Event:
    """One event of a video: ``kind`` micro / macro (an interval of the ground truth) or blink /
    head_turn / talk / light (a distractor); ``start``, ``apex``, ``end`` are 0-based frame
    indices (inclusive); ``params`` what it does (JSON-able)."""

    kind: str
    start: int
    apex: int
    end: int
    emotion: str = ""
    aus: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)


@dataclass
class VideoPlan:
    """One long video: who, where, how long, and its events (:class:`Event`)."""

    dataset: str
    index: int
    subject: int  # 1-based, in the synthetic set
    subject_folder: str  # s15 / 006
    video: str  # the folder name: 15_0101disgustingteeth / 006_1
    code: str  # CAS(ME)² video code 0101 / SAMM inducement code 1
    expression: str  # CAS(ME)²'s naming-rule name (disgust1); SAMM: the video name
    n_frames: int
    pad: int  # digits of the frame numbers in the file names
    seed: int
    events: list[Event] = field(default_factory=list)
    quirks: dict[str, int] = field(default_factory=dict)  # sheet quirk -> index into events

    first_number = 1  # both corpora number frames from 1

    @property
    def frame_dir(self) -> str:
        """The folder of the frames, relative to the root."""
        if self.dataset == "casme2lv":
            return f"rawpic/{self.subject_folder}/{self.video}"
        return f"SAMM_longvideos/{self.video}"

    @property
    def video_file(self) -> str | None:
        """CAS(ME)²'s AVI of the same frames, relative to the root."""
        return f"rawvideo/{self.subject_folder}/{self.video}.avi" if self.dataset == "casme2lv" else None

    def frame_name(self, number: int) -> str:
        if self.dataset == "casme2lv":
            return f"img{number:0{self.pad}d}.jpg"
        return f"{self.video}_{number:0{self.pad}d}.jpg"

    @property
    def intervals(self) -> list[Event]:
        return sorted((e for e in self.events if e.kind in ("micro", "macro")), key=lambda e: e.start)


def _counts(dataset: str, scale: float) -> tuple[int, int]:
    """(subjects, videos) of a set at ``scale`` of the published corpus."""
    pub = LONG_CORPORA[dataset]
    n_v = max(2, round(pub.videos * scale))
    per = len(CASME2LV_VIDEOS) if dataset == "casme2lv" else SAMMLV_VIDEOS_PER_SUBJECT
    n_s = min(pub.subjects, max(2, round(pub.subjects * scale), math.ceil(n_v / per)))
    return n_s, min(n_v, n_s * per)


def _pool(dataset: str, n: int, seed: int, difficulty: Difficulty, stream: int) -> list[ClipPlan]:
    """At least ``n`` clip plans of the clips' stand-in whose micro-expressions ``dataset`` follows,
    in a seeded order (what each expression's emotion, AUs, duration and apex are drawn from)."""
    corpus = FORMATS[dataset].micro_like
    scale = max(0.02, n / sum(CORPORA[corpus].emotions.values()))
    while True:
        plans = plan_clips(corpus, scale, seed * 7919 + stream, difficulty)
        if len(plans) >= n:
            break
        scale *= 1.5
    rng = np.random.default_rng([seed, _DATASET_CODE[dataset], stream])
    return [plans[i] for i in rng.permutation(len(plans))]


def _fit(rng: np.random.Generator, items: list[dict], avail: int, gap: int) -> list[dict]:
    """Lay ``items`` (each ``{"kind", "len", "min"}``, frames) one after another in ``avail`` frames
    with at least ``gap`` between them: shrink the flexible ones toward their ``min``, then drop
    distractors (talk, turns) and extra expressions until they fit.  Sets each item's ``at``."""
    items = list(items)

    def need():
        return sum(i["len"] for i in items) + gap * max(0, len(items) - 1)

    excess = need() - avail
    flex = sum(i["len"] - i["min"] for i in items)
    if excess > 0 and flex > 0:
        f = min(1.0, excess / flex)
        for i in items:
            i["len"] -= math.ceil((i["len"] - i["min"]) * f)
    for kind in ("talk", "head_turn", "macro", "micro"):
        while need() > avail and sum(i["kind"] == kind for i in items) > (1 if kind in ("macro", "micro") else 0):
            items.remove(next(i for i in reversed(items) if i["kind"] == kind))
    if need() > avail:
        raise ValueError(f"a video of {avail} usable frames is too short for one macro- and one micro-expression; give longer videos (seconds)")
    spare = avail - need()
    extra = np.floor(rng.dirichlet(np.ones(len(items) + 1)) * spare).astype(int)
    at = int(extra[0])
    for k, i in enumerate(items):
        i["at"] = at
        at += i["len"] + gap + int(extra[k + 1])
    return items


#: The longest micro-expression :func:`~mexpr.synth.plans.plan_clips` draws (its durations are clipped to 0.5 s).
_LONGEST_MICRO_S = 0.5
#: SAMM Long Videos' last video with expressions ends in a macro-expression cut off after this many
#: seconds (the quirk ``interval_clipped``: the sheet's offset runs past the last frame).
_CLIPPED_TAIL_S = 1.0


def min_seconds(dataset: str, schedule: Schedule = SCHEDULE) -> float:
    """The shortest mean video length (``seconds``) of :func:`plan_videos`: every video, however
    short its draw (``seconds`` x 0.8), holds one macro- (at its shortest) and one micro-expression
    (at its longest) between the margins, SAMM Long Videos' last also its clipped interval."""
    if dataset not in FORMATS:
        raise ValueError(f"dataset must be one of {', '.join(FORMATS)}, not {dataset!r}")
    fps, sch = FORMATS[dataset].fps, schedule
    frames = (
        2 * round(sch.margin_s * fps)
        + (round(_CLIPPED_TAIL_S * fps) if dataset == "sammlv" else 0)
        + round(sch.macro_seconds[0] * fps)
        + 1
        + round(sch.gap_s * fps)
        + round(_LONGEST_MICRO_S * fps)
        + 1
    )
    return math.ceil(frames / (0.8 * fps) * 10) / 10


def plan_videos(dataset: str, scale: float, seed: int, seconds: float, difficulty: Difficulty, schedule: Schedule = SCHEDULE) -> list[VideoPlan]:
    """Every video of a synthetic long-video set and its events, seeded (nothing is rendered).

    ``scale`` multiplies the published subjects and videos (:data:`mexpr.corpora.LONG_CORPORA`; at
    least 2 each); each video lasts ``seconds`` × U(0.8, 1.2), ``seconds`` at least
    :func:`min_seconds` (3 s for CAS(ME)², 4.2 s for SAMM Long Videos).  The sheets' quirks are
    planted in every set, however small, on videos with expressions (:attr:`VideoPlan.quirks`)."""
    if dataset not in FORMATS:
        raise ValueError(f"dataset must be one of {', '.join(FORMATS)}, not {dataset!r}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, not {scale!r}")
    fmt, sch = FORMATS[dataset], schedule
    shortest = min_seconds(dataset, sch)
    if not seconds >= shortest:
        raise ValueError(
            f"seconds must be >= {shortest:g} for {dataset} (one macro- and one micro-expression between the margins"
            + (", and the clipped interval at the end" if dataset == "sammlv" else "")
            + f"), not {seconds!r}"
        )
    fps = fmt.fps
    rng = np.random.default_rng([seed, _DATASET_CODE[dataset], 0])
    n_s, n_v = _counts(dataset, scale)
    per_subject = [n_v // n_s + (1 if s < n_v % n_s else 0) for s in range(n_s)]
    videos: list[VideoPlan] = []
    for s, k in enumerate(per_subject):
        if dataset == "casme2lv":
            folder = CASME2LV_SUBJECTS[s]
            chosen = sorted(rng.choice(len(CASME2LV_VIDEOS), size=k, replace=False))
            for j in chosen:
                code, title, expr, _ = CASME2LV_VIDEOS[j]
                videos.append(VideoPlan(dataset, 0, s + 1, folder, f"{folder[1:]}_{code}{title}", code, expr, 0, 3, 0))
        else:
            folder = f"{s + SAMM_FIRST:03d}"
            for j in sorted(rng.choice(SAMMLV_VIDEOS_PER_SUBJECT, size=k, replace=False)):
                name = f"{folder}_{j + 1}"
                videos.append(VideoPlan(dataset, 0, s + 1, folder, name, str(j + 1), name, 0, 4, 0))
    # about one in `empty_every` videos has no expression: the last of a subject that has several
    last = [max(i for i, v in enumerate(videos) if v.subject == s + 1) for s in range(n_s) if per_subject[s] > 1]
    n_empty = min(len(last), max(1, round(n_v / sch.empty_every))) if last else 0
    empty = {last[int(i)] for i in np.linspace(0, len(last) - 1, n_empty).round()} if n_empty else set()
    full = [i for i in range(len(videos)) if i not in empty]
    n_f = [int(round(seconds * rng.uniform(0.8, 1.2) * fps)) for _ in videos]
    n_macro = [0 if i in empty else max(1, round(n / fps / sch.macro_every_s)) for i, n in enumerate(n_f)]
    n_micro = [0 if i in empty else max(1, round(n / fps / sch.micro_every_s)) for i, n in enumerate(n_f)]
    micro_pool = _pool(dataset, sum(n_micro), seed, difficulty, 1)
    macro_pool = _pool(dataset, sum(n_macro) + 1, seed, DIFFICULTIES["easy"], 2)
    clip_fps = CORPORA[fmt.micro_like].fps
    for i, v in enumerate(videos):
        v.index, v.n_frames, v.seed = i, n_f[i], int(rng.integers(2**31))
        vr = np.random.default_rng([v.seed, 1])
        T, S = v.n_frames, v.n_frames / fps
        margin, gap = round(sch.margin_s * fps), round(sch.gap_s * fps)
        tail = round(_CLIPPED_TAIL_S * fps) if dataset == "sammlv" and i == full[-1] else 0  # the quirk interval_clipped
        items = []
        for _ in range(n_macro[i]):
            p = macro_pool.pop(0)
            d = math.exp(vr.uniform(*np.log(sch.macro_seconds)))
            items.append(
                {
                    "kind": "macro",
                    "len": round(d * fps) + 1,
                    "min": round(sch.macro_seconds[0] * fps) + 1,
                    "plan": p,
                    "apex": vr.uniform(*sch.macro_apex),
                }
            )
        for _ in range(n_micro[i]):
            p = micro_pool.pop(0)
            span = p.offset_index - p.onset_index
            n = max(2, round(span / clip_fps * fps)) + 1
            items.append({"kind": "micro", "len": n, "min": n, "plan": p, "apex": (p.apex_index - p.onset_index) / span})
        for _ in range(max(1, round(S / sch.turn_every_s))):
            items.append({"kind": "head_turn", "len": round(vr.uniform(*sch.turn_seconds) * fps) + 1, "min": round(sch.turn_seconds[0] * fps) + 1})
        for _ in range(max(1, round(S / sch.talk_every_s))):
            items.append({"kind": "talk", "len": round(vr.uniform(*sch.talk_seconds) * fps) + 1, "min": round(sch.talk_seconds[0] * fps) + 1})
        order = vr.permutation(len(items))
        placed = _fit(vr, [items[j] for j in order], T - 2 * margin - tail, gap)
        for it in placed:
            start, n = margin + it["at"], it["len"]
            end = start + n - 1
            if it["kind"] in ("macro", "micro"):
                p = it["plan"]
                apex = start + int(np.clip(round(it["apex"] * (n - 1)), 1, n - 2))
                v.events.append(Event(it["kind"], start, apex, end, p.emotion, tuple(p.aus), {"seed": int(p.seed)}))
            elif it["kind"] == "head_turn":
                params = {
                    "rotation_deg": float(vr.uniform(*sch.turn_deg) * vr.choice([-1, 1])),
                    "shift_px": [
                        float(vr.uniform(*sch.turn_px) * vr.choice([-1, 1])),
                        float(vr.uniform(0.3, 1.0) * vr.uniform(*sch.turn_px) * vr.choice([-1, 1])),
                    ],
                    "scale": float(vr.uniform(-1, 1) * sch.turn_scale),
                    "returns": bool(vr.random() < 0.5),
                }
                v.events.append(Event("head_turn", start, (start + end) // 2, end, params=params))
            else:
                params = {"hz": float(vr.uniform(*sch.talk_hz)), "jaw_px": float(vr.uniform(*sch.talk_px))}
                v.events.append(Event("talk", start, start, end, params=params))
        clipped = None
        if tail:  # a macro-expression cut off by the end of the video; the sheet's offset runs past it
            p = macro_pool.pop(0)
            n_full = round(1.5 * fps) + 1
            start = T - tail
            clipped = Event(
                "macro",
                start,
                start + round(0.4 * (n_full - 1)),
                T - 1,
                p.emotion,
                tuple(p.aus),
                {"seed": int(p.seed), "true_end": start + n_full - 1},
            )
            v.events.append(clipped)
        t = vr.uniform(0.2, sch.blink_every_s[1] / 2)
        while t + sch.blink_seconds < S:
            b = t * fps
            d = sch.blink_seconds * fps
            v.events.append(
                Event(
                    "blink",
                    int(b),
                    int(round(b + 0.4 * d)),
                    min(T - 1, int(math.ceil(b + d))),
                    params={"at": b, "px": float(vr.uniform(*sch.blink_px))},
                )
            )
            t += vr.uniform(*sch.blink_every_s)
        for _ in range(max(1, round(S / sch.light_every_s))):
            d = vr.uniform(*sch.light_seconds) * fps
            b = vr.uniform(margin, T - margin - d)
            step = float(vr.uniform(*sch.light_step) * vr.choice([-1, 1]))
            v.events.append(Event("light", int(b), int(b), int(math.ceil(b + d)), params={"at": b, "frames": d, "step": step}))
        v.events.sort(key=lambda e: (e.start, e.kind))
        if clipped is not None:  # its index once the events are in order
            v.quirks["interval_clipped"] = _position(v, clipped)
        _steer(v)
    # the sheets' quirks, in every set however small
    first = videos[full[0]]
    macro = next(e for e in first.intervals if e.kind == "macro" and "true_end" not in e.params)
    if (macro.end - macro.start) % 2:  # an even span: its offset, left out of the sheet, is then exactly apex + (apex - onset)
        shortest = round(schedule.macro_seconds[0] * fps)
        macro.end += 1 if macro.end - macro.start <= shortest else -1  # never under the shortest macro (into the gap after it)
    macro.apex = (macro.start + macro.end) // 2
    first.quirks["offset_zero"] = _position(first, macro)
    if dataset == "sammlv":
        micro = next(e for v in videos for e in v.intervals if e.kind == "micro")
        owner = next(v for v in videos if micro in v.events)
        owner.quirks["apex_missing"] = _position(owner, micro)
        # the quirk frame_padding, on a video with intervals (each subject's first video has some)
        next(videos[i] for i in full if i > 0).pad = 5
    elif n_s > 1:  # the quirk folder_prefix: a video folder (with intervals) named with another participant's number
        v = [videos[i] for i in full if videos[i].subject == 2][-1]
        v.video = f"{videos[0].subject_folder[1:]}_{v.video.split('_', 1)[1]}"
        v.quirks["folder_prefix"] = -1
    return videos


def _position(v: VideoPlan, e: Event) -> int:
    """The index of the event ``e`` itself in ``v.events`` (not of an equal one)."""
    return next(k for k, x in enumerate(v.events) if x is e)


def _steer(v: VideoPlan) -> None:
    """Keep a video's held head turns and light steps near where they started: once the head (the
    light) has moved one way, the next held turn (step) goes back the other."""
    held = np.zeros(3)
    for e in (e for e in v.events if e.kind == "head_turn"):
        p = e.params
        delta = np.array([p["shift_px"][0], p["shift_px"][1], p["rotation_deg"]])
        delta = np.where((held != 0) & (np.abs(held + delta) > np.abs(held)), -delta, delta)
        p["shift_px"], p["rotation_deg"] = [float(delta[0]), float(delta[1])], float(delta[2])
        if not p["returns"]:
            held += delta
    level = 0.0
    for e in (e for e in v.events if e.kind == "light"):
        if level and abs(level + e.params["step"]) > abs(level):
            e.params["step"] = -e.params["step"]
        level += e.params["step"]


# --------------------------------------------------------------------------------------------
# the motion of a video


@functools.lru_cache(maxsize=4)
def _identity(seed: int, faces: str | None, difficulty: Difficulty) -> Identity:
    return make_identity(seed, faces, difficulty)


def subject_seed(seed: int, dataset: str, subject: int) -> int:
    """The identity seed of subject ``subject`` (1-based) of a set."""
    return int(np.random.default_rng([seed, _DATASET_CODE[dataset], 1000 + subject]).integers(2**31))


def _expression(e: Event, v: VideoPlan, ident: Identity, difficulty: Difficulty, sch: Schedule) -> tuple[list[str], np.ndarray, int]:
    """An expression's AU intensities ``(names, (L, K) crop px, first index)`` from the clips'
    :func:`make_motion` (a macro-expression with its Difficulty's intensities x ``macro_gain``)."""
    fps = FORMATS[v.dataset].fps
    end = e.params.get("true_end", e.end)
    n = end - e.start + 1
    diff = difficulty
    if e.kind == "macro":
        lo, hi = difficulty.intensity_range
        g = sch.macro_gain
        diff = dataclasses.replace(difficulty, intensity_median=difficulty.intensity_median * g, intensity_range=(lo * g, hi * g))
    cp = ClipPlan(0, v.subject, "", v.video, e.emotion, list(e.aus), n, 0, 0, e.apex - e.start, n - 1, True, e.params["seed"])
    m = make_motion(cp, ident, diff, fps, np.random.default_rng([v.seed, 100 + e.start]))
    keep = [k for k, name in enumerate(m.au_names) if str(name) != "45"]  # the clip's own blink: ours are events
    return [str(m.au_names[k]) for k in keep], m.au_intensity[:, keep], e.start


def _smooth_step(t: np.ndarray, a: float, b: float) -> np.ndarray:
    x = np.clip((t - a) / max(b - a, 1e-9), 0, 1)
    return 0.5 - 0.5 * np.cos(np.pi * x)


def build_video(v: VideoPlan, ident: Identity, difficulty: Difficulty, schedule: Schedule = SCHEDULE) -> tuple[Motion, np.ndarray, dict]:
    """The exact motion of a planned video (nothing rendered): ``(motion, gain, truth)``.

    ``motion`` (:class:`~mexpr.synth.motion.Motion` over the whole video, 640×480 render
    coordinates): the head's pose per frame and every AU's intensity per frame (crop px);
    ``gain`` ``(T,)`` the brightness factor per frame; ``truth`` the per-frame table
    (:func:`frame_table`'s columns) and the noise, flicker and JPEG settings."""
    sch, fps, T = schedule, FORMATS[v.dataset].fps, v.n_frames
    rng = np.random.default_rng([v.seed, 2])
    t = np.arange(T, dtype=np.float64)
    columns: dict[str, np.ndarray] = {}

    def add(name: str, values: np.ndarray, at: int = 0):
        col = columns.setdefault(name, np.zeros(T, np.float64))
        stop = min(T, at + len(values))
        col[at:stop] += values[: stop - at]

    for e in v.events:
        if e.kind in ("micro", "macro"):
            names, inten, at = _expression(e, v, ident, difficulty, sch)
            for k, name in enumerate(names):
                add(name, inten[:, k].astype(np.float64), at)
        elif e.kind == "blink":
            b, d = e.params["at"], sch.blink_seconds * fps
            add("45", e.params["px"] * profile(t, b, b + 0.4 * d, b + d))
        elif e.kind == "talk":
            a, b = e.start, e.end
            ramp = 0.15 * fps
            env = _smooth_step(t, a, a + ramp) * (1 - _smooth_step(t, b - ramp, b))
            osc = 0.5 - 0.5 * np.cos(2 * np.pi * e.params["hz"] * (t - a) / fps)  # the mouth closed at the start
            add("26", e.params["jaw_px"] * env * osc)
            add("25", 0.6 * e.params["jaw_px"] * env * np.sqrt(osc))
    names = sorted(columns, key=lambda n: (int("".join(c for c in n if c.isdigit())), n))
    fields = np.stack([au_field(n, ident.landmarks, ident.face_scale) for n in names]).astype(np.float16)
    intensity = np.stack([columns[n] for n in names], 1).astype(np.float32)

    # the head: a slow drift (the clips' random walk, smoothed over a second) plus the turns
    def walk(amp):
        steps = rng.standard_normal(T + fps)
        path = np.convolve(np.cumsum(steps), np.ones(fps) / fps, mode="valid")[:T]
        path = path - path[0]
        peak = np.abs(path).max()
        return path / peak * amp * rng.uniform(0.3, 1.0) if peak > 0 else path

    tx = walk(difficulty.head_drift * sch.drift_scale * ident.face_scale)
    ty = walk(difficulty.head_drift * sch.drift_scale * ident.face_scale)
    rot = walk(difficulty.head_rotation_deg * sch.drift_scale)
    sc = walk(difficulty.head_scale * sch.drift_scale)
    for e in (e for e in v.events if e.kind == "head_turn"):  # held (a step) or returned (there and back)
        p = e.params
        delta = np.array([p["shift_px"][0] * ident.face_scale, p["shift_px"][1] * ident.face_scale, p["rotation_deg"], p["scale"]])
        shape = profile(t, e.start, e.apex, e.end) if p["returns"] else _smooth_step(t, e.start, e.end)
        tx, ty, rot, sc = tx + delta[0] * shape, ty + delta[1] * shape, rot + delta[2] * shape, sc + delta[3] * shape
    c = ident.landmarks.mean(0).astype(np.float64)
    r = np.radians(rot)
    rigid = np.zeros((T, 2, 3))
    rigid[:, 0, 0], rigid[:, 0, 1] = (1 + sc) * np.cos(r), -(1 + sc) * np.sin(r)
    rigid[:, 1, 0], rigid[:, 1, 1] = (1 + sc) * np.sin(r), (1 + sc) * np.cos(r)
    rigid[:, :, 2] = c + np.stack([tx, ty], 1) - np.einsum("tij,j->ti", rigid[:, :, :2], c)

    # the light: the clips' flicker and jitter, plus steps
    f_hz, phase = rng.uniform(1.0, 8.0), rng.uniform(0, 2 * math.pi)
    gain = 1 + difficulty.flicker * np.sin(2 * np.pi * f_hz * t / fps + phase) + rng.normal(0, difficulty.flicker / 3, T)
    for e in (e for e in v.events if e.kind == "light"):
        gain = gain + e.params["step"] * _smooth_step(t, e.params["at"], e.params["at"] + e.params["frames"])
    import cv2

    mask_small = cv2.resize(ident.mask, (FRAME_W // FIELD_STRIDE, FRAME_H // FIELD_STRIDE), interpolation=cv2.INTER_AREA)
    expr_peak = _peak_series(names, fields, intensity, ident.face_scale)
    motion = Motion(
        frame_numbers=v.first_number + np.arange(T),
        rigid=rigid,
        au_names=np.array(names, dtype="<U4"),
        au_fields=fields,
        au_intensity=intensity,
        mask=mask_small.astype(np.float16),
        landmarks=ident.landmarks,
        face_scale=float(ident.face_scale),
        onset_index=0,
        apex_index=int(np.argmax(expr_peak["expression_px"])),
        offset_index=T - 1,
    )
    kind = np.array([""] * T, dtype=object)
    for e in v.intervals:
        kind[e.start : e.end + 1] = e.kind
    pose = {
        "tx_px": rigid[:, 0, :2] @ c + rigid[:, 0, 2] - c[0],
        "ty_px": rigid[:, 1, :2] @ c + rigid[:, 1, 2] - c[1],
        "rotation_deg": rot,
        "scale": 1 + sc,
    }
    truth = {
        "table": {"frame": motion.frame_numbers, "time_s": t / fps, "interval": kind, **pose, **expr_peak, "gain": gain},
        "noise_sigma": float(rng.uniform(*difficulty.noise_sigma)),
        "flicker": {"hz": float(f_hz), "amplitude": float(difficulty.flicker)},
        "jpeg_quality": int(ident.jpeg_quality),
        "noise_seed": int(rng.integers(2**31)),
    }
    return motion, gain.astype(np.float32), truth


def _peak_series(names: list[str], fields: np.ndarray, intensity: np.ndarray, face_scale: float) -> dict[str, np.ndarray]:
    """Per frame, the peak displacement (px at crop scale) of the expression's AUs, the blink's and
    the talking's, each combined over its AUs on the stored fields."""
    groups = {"blink_px": {"45"}, "talk_px": {"25", "26"}}
    groups["expression_px"] = set(names) - groups["blink_px"] - groups["talk_px"]
    f32 = fields.astype(np.float32)
    out = {}
    for key in ("expression_px", "blink_px", "talk_px"):
        ks = [k for k, n in enumerate(names) if n in groups[key]]
        series = np.zeros(len(intensity), np.float64)
        if ks:
            active = np.flatnonzero((intensity[:, ks] != 0).any(1))
            for i in active:
                e = np.tensordot(intensity[i, ks], f32[ks], axes=1)
                series[i] = float(np.sqrt((e**2).sum(-1)).max()) / face_scale
        out[key] = series
    return out


# --------------------------------------------------------------------------------------------
# rendering


def _frames(ident: Identity, motion: Motion, gain: np.ndarray, truth: dict, color: bool):
    """Yield the video's frames (``(480, 640, 3)`` BGR or ``(480, 640)`` grey uint8), one at a time:
    the identity warped by the motion (the clips' model, :meth:`~mexpr.synth.motion.Motion.displacements`
    and :func:`~mexpr.synth.motion.inverse_map`, computed on the head's bounding box only, where the
    motion is not zero), brightness ``gain`` and sensor noise."""
    import cv2

    fields, mask = motion.upsampled()
    h, w = mask.shape
    ys, xs = np.nonzero(mask > 0)
    y0, y1 = max(0, int(ys.min()) - 2), min(h, int(ys.max()) + 3)
    x0, x1 = max(0, int(xs.min()) - 2), min(w, int(xs.max()) + 3)
    m = np.ascontiguousarray(mask[y0:y1, x0:x1])
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    local = np.dstack([xx - x0, yy - y0])
    full = np.dstack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
    fx = [np.ascontiguousarray(f[y0:y1, x0:x1, 0]) for f in fields]
    fy = [np.ascontiguousarray(f[y0:y1, x0:x1, 1]) for f in fields]
    image = np.ascontiguousarray(ident.image[..., ::-1]) if color else cv2.cvtColor(ident.image, cv2.COLOR_RGB2GRAY)
    rng = np.random.default_rng(truth["noise_seed"])
    pad = 32
    bank = rng.standard_normal((8, h + pad, w + pad) + ((3,) if color else ()), dtype=np.float32)
    sigma = truth["noise_sigma"]
    ex, ey = np.empty_like(m), np.empty_like(m)
    q = full.copy()  # the backward map of the frame: outside the box, where nothing moves, the identity
    box = q[y0:y1, x0:x1]
    origin = np.float32([x0, y0])
    for t in range(len(motion.frame_numbers)):
        (a00, a01, a02), (a10, a11, a12) = motion.rigid[t]
        # D = mask * (A [p + E(p), 1] - p), E the AUs' sum: Motion.displacements' formula, term by term
        dx = cv2.addWeighted(xx, a00 - 1, yy, a01, a02)
        dy = cv2.addWeighted(xx, a10, yy, a11 - 1, a12)
        active = [(k, float(a)) for k, a in enumerate(motion.au_intensity[t]) if a]
        if active:
            ex.fill(0)
            ey.fill(0)
            for k, a in active:
                cv2.scaleAdd(fx[k], a, ex, dst=ex)
                cv2.scaleAdd(fy[k], a, ey, dst=ey)
            dx = cv2.add(dx, cv2.addWeighted(ex, a00, ey, a01, 0.0))
            dy = cv2.add(dy, cv2.addWeighted(ex, a10, ey, a11, 0.0))
        D = cv2.merge([cv2.multiply(dx, m), cv2.multiply(dy, m)])
        p = cv2.subtract(local, D)
        for _ in range(4):  # inverse_map's fixed point, on the box
            p = cv2.subtract(local, cv2.remap(D, p, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        np.add(p, origin, out=box)
        frame = cv2.remap(image, q, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        b, oy, ox = rng.integers(8), rng.integers(pad), rng.integers(pad)
        yield cv2.addWeighted(frame, float(gain[t]), bank[b, oy : oy + h, ox : ox + w], sigma, 0.0, dtype=cv2.CV_8U)


def frame_transform(dataset: str) -> dict:
    """How a 640×480 render is placed in the written frame: scaled to its height and centred, the
    sides filled by replicating the border (SAMM Long Videos; CAS(ME)² is written as rendered).
    The ground truth stays in render coordinates: multiply it by ``scale``."""
    w, h = FORMATS[dataset].frame_size
    scale = h / FRAME_H
    return {"size": [w, h], "scale": scale, "offset_x": (w - round(FRAME_W * scale)) // 2, "color": FORMATS[dataset].color}


def _encode(frame: np.ndarray, dataset: str, quality: int) -> bytes:
    import cv2

    tf = frame_transform(dataset)
    if tf["size"] != [FRAME_W, FRAME_H]:
        w, h = tf["size"]
        sw = round(FRAME_W * tf["scale"])
        frame = cv2.resize(frame, (sw, h), interpolation=cv2.INTER_LINEAR)
        frame = cv2.copyMakeBorder(frame, 0, 0, tf["offset_x"], w - sw - tf["offset_x"], cv2.BORDER_REPLICATE)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


@functools.lru_cache(maxsize=4)
def _grey_frame(dataset: str) -> bytes:
    shape = (FRAME_H, FRAME_W, 3) if FORMATS[dataset].color else (FRAME_H, FRAME_W)
    return _encode(np.full(shape, 128, np.uint8), dataset, 90)


def frame_table(truth: dict) -> str:
    """The per-frame table of a video (``groundtruth.csv``): frame number, time (s), the interval
    type (micro / macro / empty), the head's translation at the face centre (render px), rotation
    (degrees) and scale, the expression's, blink's and talking's peak displacement (px at crop
    scale), the brightness gain."""
    tab = truth["table"]
    cols = list(tab)
    lines = [",".join(cols)]
    for i in range(len(tab["frame"])):
        cells = []
        for c in cols:
            x = tab[c][i]
            cells.append(str(x) if c in ("frame", "interval") else f"{float(x):.4f}")
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _event_json(v: VideoPlan, e: Event) -> dict:
    out = {"type": e.kind, "start": v.first_number + e.start, "end": v.first_number + e.end}
    if e.kind in ("micro", "macro"):
        out = {
            "type": e.kind,
            "onset": out["start"],
            "apex": v.first_number + e.apex,
            "offset": out["end"],
            "emotion": e.emotion,
            "aus": "+".join(e.aus),
        }
        out["duration_s"] = round((e.end - e.start) / FORMATS[v.dataset].fps, 4)
    params = {k: (round(x, 4) if isinstance(x, float) else x) for k, x in e.params.items() if k != "seed"}
    if "true_end" in params:
        params["true_end"] = v.first_number + params["true_end"]
    if "at" in params:
        params["at"] = round(params["at"] + v.first_number, 3)
    return out | params


def _video_truth(v: VideoPlan, truth: dict | None) -> dict:
    fmt = FORMATS[v.dataset]
    intervals = [_event_json(v, e) for e in v.intervals]
    for iv, e in zip(intervals, v.intervals):
        quirk = next((q for q, k in v.quirks.items() if k >= 0 and v.events[k] is e), None)
        if quirk:
            iv["sheet_quirk"] = quirk
        if truth is not None:
            peak = truth["table"]["expression_px"][e.start : e.end + 1]
            iv["peak_px"] = round(float(peak.max()), 4)
    out = {
        "generator": "mexpr.synth.longvideo",
        "version": GENERATOR_VERSION,
        "dataset": v.dataset,
        "subject": v.subject_folder,
        "video": v.video,
        "fps": fmt.fps,
        "first_frame": v.first_number,
        "last_frame": v.first_number + v.n_frames - 1,
        "n_frames": v.n_frames,
        "seconds": round(v.n_frames / fmt.fps, 4),
        "frame_size": list(fmt.frame_size),
        "render_size": [FRAME_W, FRAME_H],
        "frame_transform": frame_transform(v.dataset),
        "intervals": intervals,
        "events": [_event_json(v, e) for e in v.events if e.kind not in ("micro", "macro")],
    }
    if truth is not None:
        out |= {k: truth[k] for k in ("noise_sigma", "flicker", "jpeg_quality")}
    return out


def _stats(v: VideoPlan) -> dict:
    kinds = [e.kind for e in v.events]
    return {
        "subject": v.subject_folder,
        "video": v.video,
        "n_frames": v.n_frames,
        "seconds": round(v.n_frames / FORMATS[v.dataset].fps, 3),
        **{k: kinds.count(k) for k in ("macro", "micro", "blink", "head_turn", "talk", "light")},
    }


def render_video(
    root: str | os.PathLike, v: VideoPlan, seed: int, faces: str | None = None, difficulty: Difficulty | None = None, render: bool = True
) -> dict:
    """Write one planned video under ``root``: its frames (streamed: rendered, encoded and written
    one at a time), CAS(ME)²'s AVI of them, and beside the frames ``groundtruth.json``,
    ``groundtruth.csv`` and last ``motion.npz`` (whose presence marks the video finished: it is not
    rendered again).  ``render=False``: the layout only (every frame one grey image, the events in
    ``groundtruth.json``, no motion).  Returns the video's counts of events."""
    import cv2

    difficulty = difficulty or DIFFICULTIES["default"]
    d = Path(root) / v.frame_dir
    done = d / ("motion.npz" if render else "groundtruth.json")
    if done.is_file():
        return _stats(v)
    d.mkdir(parents=True, exist_ok=True)
    numbers = range(v.first_number, v.first_number + v.n_frames)
    if not render:
        for n in numbers:
            _io.atomic_write_bytes(d / v.frame_name(n), _grey_frame(v.dataset))
        _io.atomic_write_text(done, json.dumps(_video_truth(v, None), indent=1) + "\n")
        return _stats(v)
    ident = _identity(subject_seed(seed, v.dataset, v.subject), faces, difficulty)
    motion, gain, truth = build_video(v, ident, difficulty)
    fmt = FORMATS[v.dataset]
    writer = tmp = None
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # the videos run in parallel processes: one thread each
    try:
        if v.video_file:
            out = Path(root) / v.video_file
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.stem}.partial.avi")
            writer = cv2.VideoWriter(str(tmp), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"XVID"), fmt.fps, (FRAME_W, FRAME_H))
            if not writer.isOpened():
                raise RuntimeError(f"{tmp}: OpenCV cannot write an XVID .avi here (its FFmpeg backend is missing)")
        for n, frame in zip(numbers, _frames(ident, motion, gain, truth, fmt.color)):
            _io.atomic_write_bytes(d / v.frame_name(n), _encode(frame, v.dataset, truth["jpeg_quality"]))
            if writer is not None:
                writer.write(frame)
    finally:
        cv2.setNumThreads(threads)
        if writer is not None:
            writer.release()
    if tmp is not None:
        os.replace(tmp, Path(root) / v.video_file)
    _io.atomic_write_text(d / "groundtruth.csv", frame_table(truth))
    _io.atomic_write_text(d / "groundtruth.json", json.dumps(_video_truth(v, truth), indent=1) + "\n")
    motion.save(done)  # written last: its presence marks the video as complete
    return _stats(v)


# --------------------------------------------------------------------------------------------
# the sheets


def _save_book(sheets: dict[str, list[list]], path: Path) -> None:
    """Several sheets, no header, into one ``.xlsx``, deterministically (fixed zip and document
    dates, as :func:`mexpr._io.save_xlsx`)."""
    import re

    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append([None if (isinstance(x, str) and x == "") else (x.item() if isinstance(x, np.generic) else x) for x in row])
    raw = io.BytesIO()
    wb.save(raw)
    raw.seek(0)
    out = io.BytesIO()
    dates = re.compile(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)")
    with zipfile.ZipFile(raw) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in sorted(zin.namelist()):
            data = zin.read(name)
            if name == "docProps/core.xml":
                data = dates.sub(rb"\g<1>2000-01-01T00:00:00Z\g<3>", data)
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zout.writestr(info, data)
    _io.atomic_write_bytes(path, out.getvalue())


#: The sheets' file names, as distributed.
SHEET_NAMES = {"casme2lv": "CAS(ME)^2code_final.xlsx", "sammlv": "SAMM_LongVideos_V3_Release.xlsx"}
SAMMLV_HEADER = ("Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type", "Action Units", "Notes")
_SAMMLV_TITLE = (
    ("SAMM Long Videos - FACS coded movements (synthetic, written by mexpr.synth.longvideo)",),
    (),
    ("Onset, Apex and Offset are frame numbers of the video SAMM_longvideos/<Subject>_<video> (the Filename's first two parts)",),
    ("Apex -1: not coded",),
    ("Type: Macro, or Micro - 1/2 (under half a second)",),
    (),
    (),
    (),
    (),
)


def _sheet_rows(v: VideoPlan) -> list[tuple[Event, str | None, int, int | str, int]]:
    """``(event, quirk, onset, apex, offset)`` of every interval of a video as its sheet writes it."""
    out = []
    for e in v.intervals:
        q = next((name for name, k in v.quirks.items() if k >= 0 and v.events[k] is e), None)
        onset, apex, offset = v.first_number + e.start, v.first_number + e.apex, v.first_number + e.end
        if q == "offset_zero":
            offset = 0
        elif q == "apex_missing":
            apex = -1
        elif q == "interval_clipped":
            offset = v.first_number + e.params["true_end"]
        out.append((e, q, onset, apex, offset))
    return out


def write_sheets(out: Path, dataset: str, plans: list[VideoPlan]) -> Path:
    """The coding sheet of the set, in the real format (:data:`SHEET_NAMES`)."""
    path = Path(out) / SHEET_NAMES[dataset]
    if dataset == "casme2lv":
        rows = []
        for v in plans:
            for k, (e, _, onset, apex, offset) in enumerate(_sheet_rows(v), 1):
                kind = f"{e.kind}-expression"
                rows.append(
                    [v.subject, f"{v.expression}_{k}", onset, apex, offset, "+".join(e.aus), _VALENCE.get(e.emotion, "negative"), kind, e.emotion]
                )
        rule1 = [[int(f[1:]), f, i + 1] for i, f in enumerate(CASME2LV_SUBJECTS)]
        rule2 = [[code, name] for code, _, name, _ in CASME2LV_VIDEOS]
        _save_book({"CASFEcode_final": rows, "naming rule1": rule1, "naming rule2": rule2}, path)
    else:
        rows = []
        for v in plans:
            for k, (e, _, onset, apex, offset) in enumerate(_sheet_rows(v), 1):
                kind = "Macro" if e.kind == "macro" else "Micro - 1/2"
                rows.append(
                    [int(v.subject_folder), f"{v.video}_{k}", int(v.code), onset, apex, offset, offset - onset + 1, kind, "+".join(e.aus), ""]
                )
        _io.save_xlsx(list(SAMMLV_HEADER), rows, path, sheet_name="FACS_Movement_Only", preamble=[list(r) for r in _SAMMLV_TITLE])
    return path


# --------------------------------------------------------------------------------------------
# the set


def generate(
    out_dir: str | os.PathLike,
    dataset: str = "casme2lv",
    scale: float | None = None,
    seed: int = 0,
    seconds: float | None = None,
    faces: str | os.PathLike | None = None,
    difficulty: str | Difficulty = "default",
    jobs: int | None = None,
    progress: bool = True,
    render: bool = True,
) -> Path:
    """Write a synthetic CAS(ME)² (``"casme2lv"``) or SAMM Long Videos (``"sammlv"``) set to
    ``out_dir``, in the real layout (module text; docs/corpora.md).

    ``scale`` multiplies the published subjects and videos (default :attr:`LongFormat.scale`:
    CAS(ME)² 0.3, 29 videos of 7 subjects, notebook 10's default; SAMM Long Videos 0.05, 7 videos of 2 subjects);
    ``seconds`` is each video's mean length (default 20 s at 30 fps, 6 s at 200 fps); ``difficulty``
    the clips' :class:`~mexpr.synth.plans.Difficulty` (micro-expression intensities, noise, drift);
    ``jobs`` parallel workers, one video each (default: all cores).  ``render=False`` writes the
    layout only (grey frames, the events in ``groundtruth.json``): enough to test a loader.

    Deterministic: the same arguments write byte-identical files.  An interrupted run resumes
    (finished videos are kept).  Returns ``out_dir``.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    from mexpr import scale as cluster

    if dataset not in FORMATS:
        raise ValueError(f"dataset must be one of {', '.join(FORMATS)}, not {dataset!r}")
    fmt = FORMATS[dataset]
    scale = fmt.scale if scale is None else float(scale)
    seconds = fmt.seconds if seconds is None else float(seconds)
    difficulty_name, difficulty = resolve_difficulty(difficulty)
    out = Path(out_dir)
    faces_s = str(Path(faces).resolve()) if faces else None
    plans = plan_videos(dataset, scale, seed, seconds, difficulty)
    n_s, n_v = _counts(dataset, scale)
    record = {
        "generator": "mexpr.synth.longvideo",
        "version": GENERATOR_VERSION,
        "dataset": dataset,
        "scale": scale,
        "seed": seed,
        "seconds": seconds,
        "fps": fmt.fps,
        "frame_size": list(fmt.frame_size),
        "frame_transform": frame_transform(dataset),
        "faces": ["skimage:astronaut", "matplotlib:grace_hopper"] + ([faces_s] if faces_s else []),
        "difficulty": difficulty_name,
        "difficulty_parameters": dataclasses.asdict(difficulty),
        "schedule": dataclasses.asdict(SCHEDULE),
        "counts": {
            "subjects": n_s,
            "videos": n_v,
            "macro": sum(e.kind == "macro" for v in plans for e in v.events),
            "micro": sum(e.kind == "micro" for v in plans for e in v.events),
            "frames": sum(v.n_frames for v in plans),
        },
    }
    if not render:
        record["render"] = False
    info_path = out / "synth.json"
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    if claim_folder(out, text):
        return out  # already complete
    partial = out / ".synth-partial"
    jobs = jobs or os.cpu_count() or 1
    tasks = [delayed(render_video)(str(out), v, seed, faces_s, difficulty, render) for v in plans]
    stats = []
    with tqdm(total=len(plans), desc=f"synth {dataset}", unit="video", disable=not progress) as bar:
        if jobs == 1 and cluster.current() is None:
            for fn, args, kw in tasks:
                stats.append(fn(*args, **kw))
                bar.update()
        else:  # inside mexpr.scale.scheduler: the same tasks on its Dask cluster
            with cluster.joblib_backend():
                for s in Parallel(n_jobs=min(jobs, len(tasks)), return_as="generator")(tasks):
                    stats.append(s)
                    bar.update()
    write_sheets(out, dataset, plans)
    cols = list(stats[0])
    _io.atomic_write_text(out / "videos.csv", "\n".join([",".join(cols)] + [",".join(str(s[c]) for c in cols) for s in stats]) + "\n")
    (out / "README.txt").write_text(_README.format(title=LONG_CORPORA[dataset].title, scale=scale, seed=seed, n=len(plans), seconds=seconds))
    info_path.write_text(text)
    partial.unlink()
    return out


_README = """Synthetic {title} long videos written by mexpr.synth.longvideo (scale={scale}, seed={seed}, {n} videos, ~{seconds} s each).

This is NOT real data: faces are morphs of photographs bundled with scikit-image and matplotlib,
the expressions are synthetic Action-Unit displacement fields, among synthetic blinks, head turns,
talking and lighting changes.  Spotting results on it show that a pipeline works, not what the
real corpus would give.

The layout and the coding sheet follow the real distribution (docs/corpora.md); beside each video's
frames, groundtruth.json lists every interval and distractor event (frame numbers), groundtruth.csv
the head pose and the expression's displacement (px at crop scale) per frame, and motion.npz the exact
motion (mexpr.synth.ground_truth_flow(folder, pairs) gives the dense flow of frame pairs, in 640x480
render coordinates; see frame_transform in synth.json).  videos.csv counts each video's events.
"""
