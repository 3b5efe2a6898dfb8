"""What a synthetic dataset holds: its format (folder layout and coding sheet, as the real
CASME I / CASME II, and on request SAMM, SMIC-HS and CAS(ME)³ part A), the difficulty knobs, the emotion → Action Unit recipes, and the seeded plan
of its clips (subjects, names, emotions, AUs, onset/apex/offset) before any frame is drawn."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mexpr.datasets import FPS, scaled_counts

# --------------------------------------------------------------------------------------------
# dataset formats


@dataclass(frozen=True)
class Format:
    name: str
    n_subjects: int
    sheet_header: tuple[str, ...]
    fields: tuple[str | None, ...]  # which value goes in each column (None: blank)
    preamble: tuple[tuple[str, ...], ...] = ()  # rows above the header (SAMM's title block)


FORMATS = {
    "casme2": Format(
        "casme2",
        26,
        ("Subject", "Filename", "", "OnsetFrame", "ApexFrame", "OffsetFrame", "", "Action Units", "Estimated Emotion"),
        ("subject", "filename", None, "onset", "apex", "offset", None, "aus", "emotion"),
    ),
    "casme1": Format(
        "casme1",
        19,
        ("Subject", "Filename", "", "OnsetF", "ApexF1", "ApexF2", "OffsetF", "", "AU", "Emotion"),
        ("subject", "filename", None, "onset", "apex", "apex2", "offset", None, "aus", "emotion"),
    ),
    # SAMM: the header under a 13-row title block (docs/corpora.md)
    "samm": Format(
        "samm",
        32,
        (
            "Subject",
            "Filename",
            "Inducement Code",
            "Onset Frame",
            "Apex Frame",
            "Offset Frame",
            "Duration",
            "Type",
            "Action Units",
            "Notes",
            "Estimated Emotion",
            "Objective Classes",
        ),
        ("subject", "filename", "inducement", "onset", "apex", "offset", "duration", "type", "aus", "notes", "emotion", "objective"),
        (("SAMM Micro-Movement FACS Codes (synthetic, written by mexpr.synth)",),)
        + ((),) * 3
        + (("Onset, apex and offset are frame numbers of the clip folder",), ("Apex -1: not coded",))
        + ((),) * 7,
    ),
    # SMIC-HS: no sheet, the emotion is the folder
    "smic": Format("smic", 16, (), ()),
    "casme3a": Format(
        "casme3a",
        100,
        ("Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"),
        ("subject", "filename", "onset", "apex", "offset", "aus", "objective", "emotion"),
    ),
}
#: The datasets the generator writes, in their real formats (the first two by default, the
#: others when asked: ``mexpr synth --dataset samm``).
DATASETS = tuple(FORMATS)
#: The field's other corpora (:mod:`mexpr.corpora`), written only on request.
OTHER_CORPORA = ("samm", "smic", "casme3a")

# --------------------------------------------------------------------------------------------
# difficulty


@dataclass(frozen=True)
class Difficulty:
    """The knobs that make the synthetic task easy or hard (all amplitudes in px at crop scale).

    The default is calibrated so that a simple hand-crafted check (per-region mean optical flow +
    linear SVM, subject-independent folds; ``benchmarks/synth_difficulty.py``) lands near the
    50–60 % that hand-crafted features reach on CASME I/II (the paper's Table 4).
    """

    intensity_median: float = 0.35  # per-clip AU peak displacement, median (lognormal)
    intensity_sigma: float = 0.5  # lognormal sigma
    intensity_range: tuple[float, float] = (0.1, 1.3)
    au_dropout: float = 1.4  # multiplies the chance of dropping each AU of the recipe
    other_au_prob: float = 0.4  # chance of one extra AU from outside the recipe
    head_drift: float = 1.0  # largest head translation over a clip
    head_rotation_deg: float = 0.5
    head_scale: float = 0.004
    blink_prob: float = 0.25
    noise_sigma: tuple[float, float] = (1.0, 2.5)  # grey levels
    flicker: float = 0.012  # relative brightness amplitude
    jpeg_quality: tuple[int, int] = (82, 95)


DIFFICULTIES = {
    "easy": Difficulty(intensity_median=1.0, intensity_range=(0.5, 2.0), au_dropout=0.2, other_au_prob=0.0, head_drift=0.3, blink_prob=0.0),
    "default": Difficulty(),
    # the first default, before calibration (simple check: 69.5 % accuracy, too easy; docs/benchmarks.md)
    "moderate": Difficulty(intensity_median=0.45, au_dropout=1.0, other_au_prob=0.25, head_drift=0.8),
    "hard": Difficulty(intensity_median=0.25, au_dropout=1.8, other_au_prob=0.5, head_drift=1.4),
}

# --------------------------------------------------------------------------------------------
# emotions and Action Units

#: Emotion -> [(AU, probability)].  FACS-style prototypes (docs/DESIGN.md §4) with partial sets: each
#: AU of the recipe appears with its probability, so e.g. a disgust clip may show AU4 alone and
#: look like "others" or "tense".  ``"L14"``: unilateral (subject's left).
EMOTION_AUS: dict[str, list[tuple[str, float]]] = {
    "anger": [("4", 0.7), ("7", 0.5), ("23", 0.4), ("24", 0.3), ("5", 0.2)],
    "happiness": [("12", 0.9), ("6", 0.5), ("7", 0.15)],
    "surprise": [("1", 0.8), ("2", 0.8), ("5", 0.3)],
    "disgust": [("4", 0.55), ("9", 0.45), ("10", 0.35), ("7", 0.2)],
    "sadness": [("1", 0.55), ("4", 0.55), ("15", 0.55), ("17", 0.3)],
    "fear": [("1", 0.6), ("2", 0.45), ("4", 0.55), ("20", 0.45), ("5", 0.3)],
    "repression": [("14", 0.45), ("17", 0.5), ("24", 0.45), ("15", 0.15)],
    "tense": [("4", 0.55), ("7", 0.45), ("23", 0.35), ("24", 0.2)],
    "contempt": [("L14", 0.8), ("R12", 0.35)],
    "others": [("4", 0.3), ("7", 0.2), ("17", 0.2), ("1", 0.15), ("14", 0.15), ("24", 0.15), ("12", 0.1)],
}
# the other corpora's labels for the same emotions
EMOTION_AUS |= {
    "other": EMOTION_AUS["others"],
    "happy": EMOTION_AUS["happiness"],
    "sad": EMOTION_AUS["sadness"],
    "positive": EMOTION_AUS["happiness"],
    "negative": [("4", 0.55), ("9", 0.3), ("15", 0.3), ("17", 0.3), ("7", 0.25), ("14", 0.15)],
}
_EXTRA_AUS = ("1", "2", "4", "7", "10", "12", "14", "15", "17", "24")


def claim_folder(out, text: str) -> bool:
    """Make the folder ``out`` ready for the synthetic set whose record (its ``synth.json``) is
    ``text``: True where that very set is already complete there (nothing to do); a
    FileExistsError where ``out`` holds another set, a set interrupted under other arguments
    (resuming it would mix two sets) or other files; else ``.synth-partial`` holds ``text`` (an
    interrupted run resumes from it) and False."""
    from pathlib import Path

    out = Path(out)
    info_path, partial = out / "synth.json", out / ".synth-partial"
    if info_path.is_file():
        if info_path.read_text() == text:
            return True
        raise FileExistsError(f"{out} already holds a different synthetic dataset ({info_path}); use another folder")
    if partial.is_file():
        if partial.read_text() != text:
            raise FileExistsError(
                f"{out} holds an interrupted synthetic dataset of other arguments ({partial}); resume it with those, or use another folder"
            )
    elif out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    partial.write_text(text)
    return False


def resolve_difficulty(difficulty: str | Difficulty) -> tuple[str, Difficulty]:
    """``(name, Difficulty)`` of a name in :data:`DIFFICULTIES` or a :class:`Difficulty` (named
    ``"custom"``); a ValueError listing the names for an unknown one."""
    if isinstance(difficulty, str):
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {sorted(DIFFICULTIES)} or a Difficulty, not {difficulty!r}")
        return difficulty, DIFFICULTIES[difficulty]
    return "custom", difficulty


def au_sides(au: str) -> tuple[str, set[str]]:
    """'L14' -> ('14', {'L'}); '12' -> ('12', {'L', 'R'})."""
    if au[0] in "LR":
        return au[1:], {au[0]}
    return au, {"L", "R"}


# --------------------------------------------------------------------------------------------
# counts and plan


@dataclass
class ClipPlan:
    index: int
    subject: int
    section: str  # folder path from the root to the subject folders ('' or 'CASME_A/Section A')
    filename: str
    emotion: str
    aus: list[str]
    n_frames: int  # frames in the folder
    first_number: int  # frame number of the folder's first frame
    onset_index: int  # positions in the folder
    apex_index: int
    offset_index: int
    apex_in_sheet: bool
    seed: int

    @property
    def onset(self) -> int:
        return self.first_number + self.onset_index

    @property
    def apex(self) -> int:
        return self.first_number + self.apex_index

    @property
    def offset(self) -> int:
        return self.first_number + self.offset_index

    def frame_name(self, dataset: str, number: int) -> str:
        if dataset == "casme1":
            pad = 3 if self.section.endswith("B") else 1
            return f"{self.filename}-{number:0{pad}d}.jpg"
        if dataset == "samm":
            return f"{self.subject_folder(dataset)}_{number:05d}.jpg"
        if dataset == "smic":
            return f"image{number:06d}.bmp"
        if dataset == "casme3a":
            return f"{number}.jpg"
        return f"img{number}.jpg"

    def subject_folder(self, dataset: str) -> str:
        return {"samm": f"{self.subject + SAMM_FIRST - 1:03d}", "smic": f"s{self.subject}", "casme3a": f"spNO.{self.subject}"}.get(
            dataset, f"sub{self.subject:02d}"
        )

    def clip_dir(self, dataset: str) -> str:
        """The folder of the clip's frames, relative to the root, as the corpus lays it out."""
        subject = self.subject_folder(dataset)
        if dataset == "smic":
            return f"{self.section}/{subject}/micro/{self.emotion}/{self.filename}"
        if dataset == "casme3a":
            return f"{self.section}/{subject}/{self.filename}/color"
        return f"{self.section}/{subject}/{self.filename}"

    def clip_name(self, dataset: str) -> str:
        """The clip's name as the loader gives it (CAS(ME)³: ``<video>-<onset>``, the quirk shared_video)."""
        return f"{self.filename}-{self.onset}" if dataset == "casme3a" else self.filename

    def motion_name(self, dataset: str) -> str:
        """``motion.npz``; CAS(ME)³ keeps several clips in one video folder, so there it is
        ``motion-<onset>.npz``."""
        return f"motion-{self.onset}.npz" if dataset == "casme3a" else "motion.npz"

    def au_code(self) -> str:
        return "+".join(self.aus)


def plan_clips(dataset: str, scale: float, seed: int, difficulty: Difficulty) -> list[ClipPlan]:
    fmt = FORMATS[dataset]
    fps = FPS[dataset]
    counts = scaled_counts(dataset, scale)
    rng = np.random.default_rng([seed, DATASET_CODE[dataset], 0])
    emotions = [e for e, n in counts.items() for _ in range(n)]
    total = len(emotions)
    n_subj = min(fmt.n_subjects, max(4, math.ceil(total / 10)))
    order = rng.permutation(total)
    weights = rng.dirichlet(np.full(n_subj, 2.0))
    subjects = np.empty(total, dtype=int)
    subjects[order[:n_subj]] = np.arange(n_subj)  # every subject has at least one clip
    subjects[order[n_subj:]] = rng.choice(n_subj, size=total - n_subj, p=weights)
    n_section_a = max(1, round(n_subj * 7 / 19))
    plans = []
    used: set[tuple[int, str]] = set()
    for i, emotion in enumerate(emotions):
        subject = int(subjects[i]) + 1
        section = {"casme2": "CASME2_RAW_selected", "samm": "SAMM", "smic": "HS", "casme3a": "part_A"}.get(dataset, "")
        if dataset == "casme1":
            section = "CASME_A/Section A" if subject <= n_section_a else "CASME_B/Section B"
        if dataset in OTHER_CORPORA:
            name = _other_name(dataset, subject, emotion, rng, used)
        while dataset not in OTHER_CORPORA:
            ep = int(rng.integers(1, 20))
            k = int(rng.integers(1, 10 if dataset == "casme1" else 20))
            if dataset == "casme2":
                name = f"EP{ep:02d}_{k:02d}" + ("f" if rng.random() < 0.15 else "")
            else:
                name = f"EP{ep:02d}_{k}"
            if (subject, name.rstrip("f")) not in used:
                used.add((subject, name.rstrip("f")))
                break
        aus = _draw_aus(rng, emotion, difficulty)
        duration = float(np.clip(rng.lognormal(math.log(_MEDIAN_DURATION_S[dataset]), 0.3), 0.12, 0.5))
        span = max(4, int(round(duration * fps)))  # onset..offset frames - 1
        pre = int(rng.integers(1, 4)) if rng.random() < 0.3 and dataset != "smic" else 0  # a SMIC folder is onset..offset
        post = int(rng.integers(1, 4)) if rng.random() < 0.3 and dataset != "smic" else 0
        onset_index = pre
        offset_index = pre + span
        apex_index = onset_index + int(round(span * rng.uniform(0.3, 0.6)))
        plans.append(
            ClipPlan(
                index=i,
                subject=subject,
                section=section,
                filename=name,
                emotion=emotion,
                aus=aus,
                n_frames=offset_index + post + 1,
                first_number=_first_number(dataset, (subject, name), rng, used),
                onset_index=onset_index,
                apex_index=apex_index,
                offset_index=offset_index,
                apex_in_sheet=not (dataset in ("casme2", "samm") and rng.random() < 0.08) and dataset != "smic",
                seed=int(rng.integers(2**31)),
            )
        )
    plans.sort(key=lambda p: (p.subject, p.filename))
    for i, p in enumerate(plans):
        p.index = i
    if dataset in ("samm", "casme3a"):  # the quirk apex_missing, present in every set however small
        plans[min(2, len(plans) - 1)].apex_in_sheet = False
    return plans


def _other_name(dataset: str, subject: int, emotion: str, rng: np.random.Generator, used: set) -> str:
    """A clip (SAMM, SMIC) or video (CAS(ME)³) name in the corpus' style, unique per subject
    except CAS(ME)³'s videos, which hold several clips (the quirk ``shared_video``)."""
    if dataset == "casme3a":
        return "abcdefghijklm"[int(rng.integers(0, 4))]  # few videos per subject: some hold several clips
    while True:
        if dataset == "samm":
            name = f"{subject + SAMM_FIRST - 1:03d}_{int(rng.integers(1, 8))}_{int(rng.integers(1, 10))}"
        else:
            name = f"s{subject}_{ {'negative': 'ne', 'positive': 'po', 'surprise': 'sur'}.get(emotion, 'ne') }_{int(rng.integers(1, 30)):02d}"
        if (subject, name) not in used:
            used.add((subject, name))
            return name


def _first_number(dataset: str, video: tuple[int, str], rng: np.random.Generator, used: set) -> int:
    """The frame number of the clip folder's first frame; CAS(ME)³ clips of one video (subject,
    name) get disjoint ranges (40-frame slots of the whole task video, frames from 0)."""
    if dataset == "casme3a":
        while True:
            slot = int(rng.integers(0, 60))
            if (*video, slot) not in used:
                used.add((*video, slot))
                return slot * 40
    if dataset == "samm":
        return int(rng.integers(1000, 6000))
    return int(rng.integers(1, 300))


SAMM_FIRST = 6  # SAMM's subjects are numbered 006 to 037

DATASET_CODE = {"casme1": 1, "casme2": 2, "samm": 3, "smic": 4, "casme3a": 5}
#: Median onset..offset duration; reported means are 66.8 frames at 200 fps for CASME II and
#: 22.05 frames at 60 fps for CASME I (as computed in the MEB toolbox, tvaranka/meb).
_MEDIAN_DURATION_S = {"casme2": 0.30, "casme1": 0.34, "samm": 0.33, "smic": 0.30, "casme3a": 0.40}


def _draw_aus(rng: np.random.Generator, emotion: str, difficulty: Difficulty) -> list[str]:
    recipe = EMOTION_AUS[emotion]
    chosen = []
    for au, p in recipe:
        keep = 1.0 - (1.0 - p) * difficulty.au_dropout
        if rng.random() < min(1.0, max(0.0, keep)):
            chosen.append(au)
    if not chosen:
        probs = np.array([p for _, p in recipe])
        chosen.append(recipe[int(rng.choice(len(recipe), p=probs / probs.sum()))][0])
    if rng.random() < difficulty.other_au_prob:
        extra = str(rng.choice(_EXTRA_AUS))
        if all(au_sides(a)[0] != extra for a in chosen):
            chosen.append(extra)
    return sorted(chosen, key=lambda a: (int(au_sides(a)[0]), a))
