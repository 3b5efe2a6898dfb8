"""The field's other corpora (docs/DESIGN.md §9, docs/corpora.md): SAMM, SMIC-HS and CAS(ME)³
part A, their class maps to the MEGC 2019 composite's three classes and to the paper's four, their
published counts, and the table of each corpus' known quirks that the loaders read.

:func:`mexpr.datasets.load` is the one entry point: it recognises a root of these corpora
(:func:`detect`) and hands it to :func:`load_root`, which returns clip records in the same columns
and reports unusable rows the same way as the CASME I / II loader.

Layouts as distributed (and as :mod:`mexpr.synth` writes them with ``dataset="samm"`` etc.):

- **SAMM** (Davison et al. 2018; 200 fps, 2040×1088 grey): ``SAMM/<subject>/<Filename>/<subject>_<frame>.jpg``
  (subject ``006``, clip ``006_1_2``, frame ``006_05562.jpg``) and ``SAMM_Micro_FACS_Codes_v2.xlsx``
  whose column header sits below a title block (row 14), columns ``Subject, Filename, Inducement
  Code, Onset Frame, Apex Frame, Offset Frame, Duration, Type, Action Units, Notes, Estimated
  Emotion, Objective Classes``.
- **SMIC-HS** (Li et al. 2013; 100 fps, 640×480): no coding sheet; the emotion is the folder,
  ``HS/s<n>/micro/<negative|positive|surprise>/<clip>/image<frame>.bmp``, every frame of a clip
  folder lies between onset and offset, and no apex is given.
- **CAS(ME)³ part A** (Li et al. 2022; 30 fps, 1280×720): ``part_A/<subject>/<video>/color/<frame>.jpg``
  (subject ``spNO.1``, video ``a``, frames from ``0.jpg``; ``depth/`` beside ``color/``) and
  ``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`` with ``Subject, Filename, Onset, Apex, Offset, AU,
  Objective class, emotion``; a micro-expression is a frame range inside a whole task video, so
  one video folder holds several clips.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mexpr import clips

#: The MEGC 2019 composite's classes (See et al. 2019), and its corpora.
COMPOSITE_CLASSES: tuple[str, ...] = ("Negative", "Positive", "Surprise")
COMPOSITE_CORPORA: tuple[str, ...] = ("smic", "casme2", "samm")
#: The class sets a clip table can be labelled with: the paper's four (Table 3) or the composite's three.
CLASS_SETS: dict[str, tuple[str, ...]] = {"paper": ("Negative", "Others", "Positive", "Surprise"), "megc3": COMPOSITE_CLASSES}

# --------------------------------------------------------------------------------------------
# class maps: emotion (normalised, as each corpus writes it) -> class; None: the emotion is known
# but has no class in that set (its clips are skipped and recorded, never an error)

_N, _O, _P, _S = "Negative", "Others", "Positive", "Surprise"

#: corpus -> class set -> emotion -> class (or None: known, no class in this set).
CLASS_MAPS: dict[str, dict[str, dict[str, str | None]]] = {
    "casme1": {
        "paper": {"disgust": _N, "sadness": _N, "fear": _N, "tense": _O, "repression": _O, "contempt": _O, "happiness": _P, "surprise": _S},
        # CASME I is not part of the composite (MEGC 2019 uses SMIC, CASME II and SAMM)
        "megc3": dict.fromkeys(("disgust", "sadness", "fear", "tense", "repression", "contempt", "happiness", "surprise")),
    },
    "casme2": {
        "paper": {"disgust": _N, "sadness": _N, "fear": _N, "repression": _O, "others": _O, "happiness": _P, "surprise": _S},
        # MEGC 2019: disgust and repression are Negative; sadness, fear and others are left out
        "megc3": {"disgust": _N, "repression": _N, "happiness": _P, "surprise": _S, "sadness": None, "fear": None, "others": None},
    },
    "samm": {
        # Table 3 defines no class for anger; contempt is Others there (CASME I)
        "paper": {
            "disgust": _N,
            "sadness": _N,
            "fear": _N,
            "contempt": _O,
            "other": _O,
            "happiness": _P,
            "surprise": _S,
            "anger": None,
        },
        "megc3": {"anger": _N, "contempt": _N, "disgust": _N, "fear": _N, "sadness": _N, "happiness": _P, "surprise": _S, "other": None},
    },
    "smic": {
        "paper": {"negative": _N, "positive": _P, "surprise": _S},
        "megc3": {"negative": _N, "positive": _P, "surprise": _S},
    },
    "casme3a": {
        "paper": {"disgust": _N, "sad": _N, "fear": _N, "others": _O, "happy": _P, "surprise": _S, "anger": None},
        # the three classes as for SAMM; CAS(ME)³ is not in the MEGC 2019 composite, the megc3 protocol leaves it out
        "megc3": {"anger": _N, "disgust": _N, "fear": _N, "sad": _N, "happy": _P, "surprise": _S, "others": None},
    },
}


def class_map(corpus: str, classes: str = "paper") -> dict[str, str | None]:
    """``emotion -> class`` of ``corpus`` in the class set ``classes`` (:data:`CLASS_SETS`)."""
    if classes not in CLASS_SETS:
        raise ValueError(f"classes must be one of {sorted(CLASS_SETS)}, not {classes!r}")
    if corpus not in CLASS_MAPS:
        raise ValueError(f"unknown corpus {corpus!r}; known: {', '.join(CLASS_MAPS)}")
    return dict(CLASS_MAPS[corpus][classes])


def composite_class(corpus: str, emotion: str) -> str | None:
    """The composite class of one clip, or None when the composite leaves it out (its corpus or
    its emotion)."""
    if corpus not in COMPOSITE_CORPORA:
        return None
    return CLASS_MAPS[corpus]["megc3"].get(emotion)


# --------------------------------------------------------------------------------------------
# what each corpus is, and what was published about it


@dataclass(frozen=True)
class Corpus:
    """One corpus: frame rate, frame size (w, h), colour, and its published counts."""

    name: str
    title: str
    fps: int
    frame_size: tuple[int, int]
    color: bool
    clips: int  # published micro-expression clips
    subjects: int  # published subjects with at least one clip
    emotions: dict[str, int] = field(default_factory=dict)  # published per-emotion counts (normalised labels)
    source: str = ""


CORPORA: dict[str, Corpus] = {
    "casme1": Corpus(
        "casme1",
        "CASME I",
        60,
        (640, 480),
        True,
        197,
        19,
        {"disgust": 44, "sadness": 6, "fear": 2, "tense": 69, "repression": 38, "contempt": 9, "happiness": 9, "surprise": 20},
        "Peng et al. 2017, Table 3 (Table 1 says 195 clips)",
    ),
    "casme2": Corpus(
        "casme2",
        "CASME II",
        200,
        (640, 480),
        True,
        255,
        26,
        {"disgust": 63, "sadness": 7, "fear": 2, "repression": 27, "others": 99, "happiness": 32, "surprise": 25},
        "Peng et al. 2017, Table 3 (Table 1 says 247 clips)",
    ),
    "samm": Corpus(
        "samm",
        "SAMM",
        200,
        (2040, 1088),
        False,
        159,
        32,
        {"anger": 57, "contempt": 12, "disgust": 9, "fear": 8, "happiness": 26, "sadness": 6, "surprise": 15, "other": 26},
        "Davison et al. 2018 (IEEE TAC 9(1)); per-emotion counts of the Estimated Emotion column as used by MEGC 2019",
    ),
    "smic": Corpus(
        "smic",
        "SMIC-HS",
        100,
        (640, 480),
        True,
        164,
        16,
        {"negative": 70, "positive": 51, "surprise": 43},
        "Li et al. 2013 (FG): 164 clips from 16 participants",
    ),
    "casme3a": Corpus(
        "casme3a",
        "CAS(ME)³ part A",
        30,
        (1280, 720),
        True,
        860,
        100,
        {"anger": 64, "disgust": 250, "fear": 86, "happy": 64, "sad": 57, "surprise": 187, "others": 152},
        "Li et al. 2022 (IEEE TPAMI): part A, 100 subjects; 860 labelled micro-expressions in the v2 label sheet "
        "(the per-emotion split is as reported by later work, not checked against the sheet here)",
    ),
}


def scaled_counts(dataset: str, scale: float | None) -> dict[str, int]:
    """Per-emotion counts × ``scale``, rounded half up, at least 2 each (for splits): Table 3's for
    CASME I / II, the published ones for the other corpora (:data:`CORPORA`)."""
    if dataset not in CORPORA:
        raise ValueError(f"dataset must be one of {sorted(CORPORA)}, not {dataset!r}")
    counts = CORPORA[dataset].emotions
    if scale is None:
        return dict(counts)
    if not scale > 0:
        raise ValueError(f"scale must be > 0, not {scale!r}")
    return {e: max(2, int(math.floor(n * scale + 0.5))) for e, n in counts.items()}


#: The MEGC 2019 composite (See et al. 2019): clips and subjects per corpus and per class.
COMPOSITE_PUBLISHED: dict[str, dict[str, int]] = {
    "smic": {"clips": 164, "subjects": 16, "Negative": 70, "Positive": 51, "Surprise": 43},
    "casme2": {"clips": 145, "subjects": 24, "Negative": 88, "Positive": 32, "Surprise": 25},
    "samm": {"clips": 133, "subjects": 28, "Negative": 92, "Positive": 26, "Surprise": 15},
    "composite": {"clips": 442, "subjects": 68, "Negative": 250, "Positive": 109, "Surprise": 83},
}
COMPOSITE_SOURCE = "See et al. 2019, MEGC 2019 (FG 2019): 442 clips, 68 subjects"


@dataclass(frozen=True)
class LongCorpus:
    """A long-video corpus for spotting (:mod:`mexpr.longvideo`): frame rate, frame size (w, h),
    colour, and its published counts of subjects, long videos and ground-truth intervals."""

    name: str
    title: str
    fps: int
    frame_size: tuple[int, int]
    color: bool
    subjects: int
    videos: int
    macro: int
    micro: int
    source: str = ""


#: The long-video corpora MEGC 2019-2023 score spotting on (docs/DESIGN.md §10, docs/corpora.md).
LONG_CORPORA: dict[str, LongCorpus] = {
    "casme2lv": LongCorpus(
        "casme2lv",
        "CAS(ME)²",
        30,
        (640, 480),
        True,
        22,
        98,
        300,
        57,
        "Qu et al. 2018 (IEEE TAC 9(4)): 300 macro- and 57 micro-expressions from 22 participants; 98 long videos as MEGC 2020-2021 "
        "and Liong et al. 2021 (SOFTNet) count them (the database paper's part A describes 87)",
    ),
    "sammlv": LongCorpus(
        "sammlv",
        "SAMM Long Videos",
        200,
        (2040, 1088),
        False,
        32,
        147,
        343,
        159,
        "Yap, Kendrick & Yap 2020 (FG): 147 long videos with 343 macro- and 159 micro-expressions, the 32 participants of SAMM",
    ),
}

# --------------------------------------------------------------------------------------------
# the table of quirks (data, not code: the loaders read their parameters from here)


@dataclass(frozen=True)
class Quirk:
    """A known quirk of a corpus as distributed, and how the loader absorbs it.

    ``values`` are the quirk's parameters, read by the loader (e.g. the cells that mean "no apex")."""

    corpus: str
    name: str
    what: str
    absorbed: str
    values: tuple = ()


QUIRKS: tuple[Quirk, ...] = (
    Quirk(
        "samm",
        "header_row",
        "the sheet opens with a title block; its column header is on a later row (row 14)",
        "the header is the first of the sheet's first rows that names Subject, Filename and an onset column",
        (30,),
    ),
    Quirk(
        "samm",
        "apex_missing",
        "a few clips have no apex (Apex Frame -1)",
        "the apex is the middle frame of onset..offset, flagged apex_estimated",
        ("-1", "/", ""),
    ),
    Quirk(
        "samm",
        "au_or",
        "some Action Units cells give alternatives ('R12 or R15')",
        "the cell is kept as written and the clip noted (which AU is right is not known)",
        (" or ",),
    ),
    Quirk(
        "samm",
        "subject_digits",
        "Subject is written 6 or '006'; the folders are three digits ('006')",
        "subjects are zero-padded to three digits",
        (3,),
    ),
    Quirk(
        "smic",
        "no_sheet",
        "there is no coding sheet: the emotion is the folder (micro/negative|positive|surprise) and a clip folder holds onset..offset",
        "onset and offset are the folder's first and last frames; the emotion is the folder's name",
        ("micro",),
    ),
    Quirk(
        "smic",
        "no_apex",
        "no apex is given",
        "the apex is the middle frame, flagged apex_estimated",
    ),
    Quirk(
        "smic",
        "non_micro",
        "each subject also has non_micro/ folders (other movements)",
        "only micro/ is read",
    ),
    Quirk(
        "casme3a",
        "shared_video",
        "several micro-expressions lie in one task video (same Subject and Filename, different ranges)",
        "each clip is named <Filename>-<Onset>",
        ("{filename}-{onset}",),
    ),
    Quirk(
        "casme3a",
        "color_folder",
        "a video folder holds color/ and depth/ frames",
        "the color/ frames are used",
        ("color",),
    ),
    Quirk(
        "casme3a",
        "apex_missing",
        "a few apexes are blank or outside onset..offset",
        "the apex is the middle frame, flagged apex_estimated",
        ("", "/", "-1"),
    ),
    # the long-video corpora (mexpr.longvideo; docs/corpora.md, "Long videos")
    Quirk(
        "casme2lv",
        "no_header",
        "the coding sheet (the first of CAS(ME)^2code_final.xlsx, named CASFEcode_final or CASMEcode_final) has no header row",
        "its columns are read by position, in this order",
        ("participant", "expression", "onset", "apex", "offset", "aus", "emotion", "type", "self_report"),
    ),
    Quirk(
        "casme2lv",
        "naming_rules",
        "rows name participants 1-22 and expressions 'disgust1_1'; the sheets 'naming rule1' (15, s15, 1) and 'naming rule2' "
        "(0101, disgust1) map them to the subject folder s15 and the video code 0101 of rawpic/s15/15_0101disgustingteeth",
        "rows are joined to the folders through the two naming sheets",
        ("naming rule1", "naming rule2"),
    ),
    Quirk(
        "casme2lv",
        "offset_zero",
        "a few rows have offset 0 (not coded)",
        "the offset is apex + (apex - onset), the MEGC 2020 baseline's rule (SOFTNet takes the apex), and noted",
        (0,),
    ),
    Quirk(
        "casme2lv",
        "folder_prefix",
        "a video folder may carry another participant's number (rawpic/s19/23_0502funnyerrors, as users report)",
        "videos are matched by their subject folder and 4-digit video code; the prefix is ignored and noted",
    ),
    Quirk(
        "sammlv",
        "header_row",
        "the sheet (FACS_Movement_Only of SAMM_LongVideos_V*_Release.xlsx) opens with a title block; its header is on row 10",
        "the header is the first of the sheet's first rows that names Subject, Filename and Onset",
        (30,),
    ),
    Quirk(
        "sammlv",
        "subject_digits",
        "Subject is written 6; the videos are SAMM_longvideos/006_1",
        "subjects are zero-padded to three digits",
        (3,),
    ),
    Quirk(
        "sammlv",
        "apex_missing",
        "a few intervals have no apex (Apex -1)",
        "the apex is the middle frame of onset..offset, flagged apex_estimated",
        ("-1", "", "/"),
    ),
    Quirk(
        "sammlv",
        "offset_zero",
        "a few rows have offset 0 (not coded)",
        "the offset is apex + (apex - onset), as for CAS(ME)², and noted",
        (0,),
    ),
    Quirk(
        "sammlv",
        "interval_clipped",
        "a few intervals end after the video's last frame (020_6_5 at 5476, frames to 5001; 036_7_4 at 8298, frames to 8201)",
        "the interval is clipped to the video's frames and noted; one wholly outside its video is skipped",
    ),
    Quirk(
        "sammlv",
        "frame_padding",
        "frame numbers are zero-padded to 4 or 5 digits depending on the video (006_1_0001.jpg in one, five digits in another)",
        "frames are ordered by their number, never as text",
    ),
    Quirk(
        "sammlv",
        "no_emotion",
        "the long-video sheet has no emotion column (SAMM_Micro_FACS_Codes_v2.xlsx has the micro-expressions' emotions)",
        "emotion is left empty",
    ),
)


def quirk(corpus: str, name: str) -> Quirk:
    """The quirk ``name`` of ``corpus`` from :data:`QUIRKS`."""
    for q in QUIRKS:
        if q.corpus == corpus and q.name == name:
            return q
    raise KeyError(f"no quirk {name!r} of {corpus!r} in corpora.QUIRKS")


def quirks_table(corpus: str | None = None) -> pd.DataFrame:
    """:data:`QUIRKS` as a table (of one corpus, or all)."""
    rows = [{"corpus": q.corpus, "quirk": q.name, "what": q.what, "absorbed": q.absorbed} for q in QUIRKS if corpus in (None, q.corpus)]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# sheet formats: canonical field -> accepted header spellings (normalised)

_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "samm": {
        "subject": ("subject",),
        "filename": ("filename",),
        "onset": ("onsetframe", "onset"),
        "apex": ("apexframe", "apex"),
        "offset": ("offsetframe", "offset"),
        "action_units": ("actionunits", "aus", "au"),
        "emotion": ("estimatedemotion", "emotion"),
    },
    "casme3a": {
        "subject": ("subject",),
        "filename": ("filename",),
        "onset": ("onset", "onsetframe"),
        "apex": ("apex", "apexframe"),
        "offset": ("offset", "offsetframe"),
        "action_units": ("au", "aus", "actionunits"),
        "emotion": ("emotion", "estimatedemotion"),
    },
}
_REQUIRED = ("subject", "filename", "onset", "offset", "emotion")
_SHEET_SUFFIXES = (".xlsx", ".xls", ".csv")


def _norm(name: object) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def _header_at(raw: pd.DataFrame, corpus: str, rows: int) -> int | None:
    """The index of the header row among the first ``rows`` rows of a headerless sheet."""
    onset = set(_COLUMNS[corpus]["onset"])
    for i in range(min(rows, len(raw))):
        cells = {_norm(c) for c in raw.iloc[i].tolist() if isinstance(c, str)}
        if {"subject", "filename"} <= cells and cells & onset:
            return i
    return None


def _read_raw(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, header=None, dtype=object)
        return pd.read_excel(path, header=None, dtype=object)
    except Exception as exc:
        raise clips.DatasetError(f"{path}: not a readable {path.suffix} coding sheet ({type(exc).__name__}: {exc})") from exc


def _sheets(root: Path) -> list[Path]:
    out = []
    for pattern in ("*", "*/*", "*/*/*"):
        for p in root.glob(pattern):
            if p.is_file() and p.suffix.lower() in _SHEET_SUFFIXES and not any(s.startswith(".") for s in p.relative_to(root).parts):
                out.append(p)
    return sorted(out)


def _smic_clip_dirs(root: Path) -> list[Path]:
    """``s<n>/micro/<emotion>/<clip>`` folders under ``root`` (at most two levels above ``s<n>``)."""
    micro = quirk("smic", "no_sheet").values[0]
    found = []
    for pattern in ("s*", "*/s*", "*/*/s*"):
        for subj in sorted(root.glob(pattern)):
            if subj.is_dir() and re.fullmatch(r"s\d+", subj.name, flags=re.IGNORECASE) and (subj / micro).is_dir():
                found += [c for e in sorted((subj / micro).iterdir()) if e.is_dir() for c in sorted(e.iterdir()) if c.is_dir()]
    return found


def detect(root: str | os.PathLike) -> tuple[str, Path | None] | None:
    """``(corpus, sheet)`` when ``root`` holds SAMM, SMIC-HS or CAS(ME)³ part A (the sheet is None for
    SMIC), else None (CASME I / II, read by :mod:`mexpr.datasets`)."""
    root = Path(root)
    for sheet in _sheets(root):
        name = sheet.name.lower()
        if "samm" in name:
            return "samm", sheet
        if "cas(me)3" in name or "casme3" in name or "cas(me)^3" in name:
            return "casme3a", sheet
        if "coding" in name:
            continue  # CASME's own sheets
        try:
            raw = _read_raw(sheet)
        except Exception:
            continue
        head = _header_at(raw, "samm", quirk("samm", "header_row").values[0])
        if head is None:
            continue
        cells = {_norm(c) for c in raw.iloc[head].tolist() if isinstance(c, str)}
        if "inducementcode" in cells or "objectiveclasses" in cells:
            return "samm", sheet
        if "objectiveclass" in cells:
            return "casme3a", sheet
    if _smic_clip_dirs(root):
        return "smic", None
    return None


# --------------------------------------------------------------------------------------------
# the loader


def _subject_dirs(root: Path, pattern: str, variant: str) -> dict[str, list[Path]]:
    """Subject folder name (lower case) -> folders, raw before cropped as :mod:`mexpr.datasets` does."""
    found: dict[str, list[Path]] = {}
    for depth in ("*", "*/*", "*/*/*"):
        for p in sorted(root.glob(depth)):
            if p.is_dir() and re.fullmatch(pattern, p.name, flags=re.IGNORECASE):
                found.setdefault(p.name.lower(), []).append(p)
    out = {}
    for name, dirs in found.items():
        cropped = [d for d in dirs if "crop" in str(d.relative_to(root)).lower()]
        raw = [d for d in dirs if d not in cropped]
        pick = cropped if variant == "cropped" else raw if variant == "raw" else (raw or cropped)
        if pick:
            out[name] = pick
    return out


def load_root(root: Path, corpus: str, sheet: Path | None, variant: str, class_maps: dict, verify: str) -> tuple[list[dict], list[dict]]:
    """Clip records and problems of one SAMM / SMIC-HS / CAS(ME)³ root (what
    :func:`mexpr.datasets.load` calls; ``class_maps``: corpus -> emotion -> class or None)."""
    if corpus == "smic":
        return _load_smic(root, variant, class_maps["smic"], verify)
    return _load_sheet(root, corpus, sheet, variant, class_maps[corpus], verify)


def emotion_class(emotion: str, raw, cmap: dict, corpus: str) -> tuple[str | None, dict | None]:
    """``(class, None)``, or ``(None, problem fields)`` for an emotion label (normalised ``emotion``, as
    written ``raw``) that is empty, unknown to ``cmap`` (``label``: an error unless mapped or
    skipped) or known without a class in this set (``dropped``: skipped and recorded, never an error)."""
    if emotion == "":
        return None, {"reason": "emotion cell is empty"}
    if emotion not in cmap:
        return None, {"reason": f"unknown emotion label {str(raw)!r}", "label": emotion}
    if cmap[emotion] is None:
        return None, {"reason": f"emotion {emotion!r} of {corpus} has no class in this class set (see mexpr.corpora.CLASS_MAPS)", "dropped": True}
    return cmap[emotion], None


def _load_sheet(root, corpus, sheet, variant, cmap, verify):
    raw = _read_raw(sheet)
    rows = quirk("samm", "header_row").values[0]
    head = _header_at(raw, corpus, rows)
    if head is None:
        raise clips.DatasetError(
            f"{sheet}: no header row naming Subject, Filename and an onset column ({'/'.join(_COLUMNS[corpus]['onset'])}) in its first {rows} rows"
        )
    header = [str(c) if not clips.is_blank(c) else f"Unnamed: {i}" for i, c in enumerate(raw.iloc[head].tolist())]
    table = raw.iloc[head + 1 :].reset_index(drop=True)
    table.columns = header
    by_norm = {}
    for c in header:
        by_norm.setdefault(_norm(c), c)
    cols = {}
    for f, aliases in _COLUMNS[corpus].items():
        for a in aliases:
            if a in by_norm:
                cols[f] = by_norm[a]
                break
    missing = [f for f in _REQUIRED if f not in cols]
    if missing:
        raise clips.DatasetError(f"{sheet}: {corpus} coding sheet is missing column(s) {missing}; header (row {head + 1}): {header}")
    quirked = head > 0
    subject_pattern = r"\d+" if corpus == "samm" else r"spno\.?\d+|sp\d+"
    index = _subject_dirs(root, subject_pattern, variant)
    records, problems = [], []
    apex_missing = {str(v) for v in quirk(corpus, "apex_missing").values}
    for i, row in enumerate(table.to_dict("records")):
        excel_row = head + i + 2
        if clips.is_blank(row.get(cols["subject"])) and clips.is_blank(row.get(cols["filename"])):
            continue
        rec, prob = _sheet_row(root, corpus, sheet, excel_row, row, cols, cmap, index, apex_missing, verify)
        if prob:
            problems.append(prob)
        else:
            if quirked:
                rec["notes"] = "; ".join(x for x in (f"quirk header_row: header on row {head + 1}", rec["notes"]) if x)
            records.append(rec)
    if corpus == "casme3a":  # several clips of one video: each is named <video>-<onset> (quirk shared_video)
        videos = pd.Series([(r["subject"], r["clip_dir"]) for r in records]).value_counts()
        for r in records:
            extra = [f"quirk color_folder: frames of {Path(r['clip_dir']).parent.name}/{Path(r['clip_dir']).name}"]
            n = int(videos[(r["subject"], r["clip_dir"])])
            if n > 1:
                extra.append(f"quirk shared_video: one of {n} clips in video {r['subject']}/{Path(r['clip_dir']).parent.name}")
            r["notes"] = "; ".join([*extra, r["notes"]] if r["notes"] else extra)
    return records, problems


def _subject_name(corpus: str, cell) -> str | None:
    s = str(cell).strip()
    if isinstance(cell, float) and not math.isnan(cell) and cell == int(cell):
        s = str(int(cell))
    if corpus == "samm":
        m = re.fullmatch(r"0*(\d+)(?:\.0+)?", s)
        return f"{int(m.group(1)):0{quirk('samm', 'subject_digits').values[0]}d}" if m else None
    m = re.fullmatch(r"(?:spno\.?|sp)?\s*0*(\d+)(?:\.0+)?", s, flags=re.IGNORECASE)
    return f"spNO.{int(m.group(1))}" if m else None


def _sheet_row(root, corpus, sheet, excel_row, row, cols, cmap, index, apex_missing, verify):
    subject_cell = row.get(cols["subject"])
    filename = "" if clips.is_blank(row.get(cols["filename"])) else str(row.get(cols["filename"])).strip()
    prob = {"sheet": str(sheet), "row": excel_row, "subject": str(subject_cell), "clip": filename}

    def fail(reason, **extra):
        return None, {**prob, "reason": reason, **extra}

    subject = _subject_name(corpus, subject_cell)
    if subject is None:
        return fail(f"Subject {str(subject_cell)!r} is not a {corpus} subject")
    prob["subject"] = subject
    err = clips.safe_component(filename)
    if err:
        return fail(err)
    raw_label = row.get(cols["emotion"])
    emotion = "" if clips.is_blank(raw_label) else clips.normalise_label(raw_label)
    label, why = emotion_class(emotion, raw_label, cmap, corpus)
    if why:
        return fail(**why)
    onset, offset = clips.to_int(row.get(cols["onset"])), clips.to_int(row.get(cols["offset"]))
    if onset is None or offset is None:
        return fail(f"onset/offset must be frame numbers, got {row.get(cols['onset'])!r}/{row.get(cols['offset'])!r}")
    if onset >= offset:
        return fail(f"onset {onset} is not before offset {offset}")
    notes = []
    apex_cell = row.get(cols["apex"]) if "apex" in cols else None
    apex_text = "" if clips.is_blank(apex_cell) else str(apex_cell).strip()
    if apex_text.endswith(".0"):
        apex_text = apex_text[:-2]
    apex = clips.to_int(apex_cell)
    if apex is None or not onset <= apex <= offset:
        if apex is None and apex_text not in apex_missing:
            return fail(f"apex {apex_cell!r} is not a frame number")
        notes.append(f"quirk apex_missing: apex {apex_text or 'blank'!r} outside or not given")
        apex = None
    aus = "" if "action_units" not in cols or clips.is_blank(row.get(cols["action_units"])) else str(row.get(cols["action_units"])).strip()
    if corpus == "samm" and any(w in aus.lower() for w in quirk("samm", "au_or").values):
        notes.append(f"quirk au_or: Action Units {aus!r} give alternatives")
    dirs = index.get(subject.lower())
    if not dirs:
        return fail(f"no folder {subject} under {root}")
    video = next((d / filename for d in dirs if (d / filename).is_dir()), None)
    if video is None:
        video = next((p for d in dirs for p in d.iterdir() if p.is_dir() and p.name.lower() == filename.lower()), None)
    if video is None:
        return fail(f"folder {subject}/{filename} not found under {root}")
    clip_dir, clip = video, video.name
    if corpus == "casme3a":
        sub = quirk("casme3a", "color_folder").values[0]
        if (video / sub).is_dir():
            clip_dir = video / sub
        clip = quirk("casme3a", "shared_video").values[0].format(filename=video.name, onset=onset)
    try:
        clip_dir.resolve().relative_to(root.resolve())
    except ValueError:
        return fail(f"folder {clip_dir} resolves outside the dataset root {root}")
    return clips.clip_record(
        root,
        corpus,
        CORPORA[corpus].fps,
        subject,
        clip,
        clip_dir,
        onset,
        apex,
        offset,
        aus,
        emotion,
        label,
        sheet,
        excel_row,
        apex_text,
        notes,
        verify,
        prob,
    )


def _load_smic(root, variant, cmap, verify):
    records, problems = [], []
    dirs = _smic_clip_dirs(root)
    by_key: dict[tuple[str, str], Path] = {}
    for d in dirs:
        cropped = "crop" in str(d.relative_to(root)).lower()
        if (variant == "raw" and cropped) or (variant == "cropped" and not cropped):
            continue
        key = (d.parents[2].name.lower(), d.name)
        if key not in by_key or ("crop" in str(by_key[key].relative_to(root)).lower() and not cropped):
            by_key[key] = d
    for (_, clip), d in sorted(by_key.items()):
        subject = d.parents[2].name.lower()
        folder_label = d.parent.name
        prob = {"sheet": str(d), "row": 0, "subject": subject, "clip": clip}
        emotion = clips.normalise_label(folder_label)
        label, why = emotion_class(emotion, folder_label, cmap, "smic")
        if why:
            problems.append({**prob, **why})
            continue
        numbers = sorted(n for p in d.iterdir() if p.suffix.lower() in clips.IMAGE_SUFFIXES and (n := clips.frame_number(p)) is not None)
        if len(numbers) < 2:
            problems.append({**prob, "reason": f"fewer than 2 frames in {d}"})
            continue
        notes = ["quirk no_sheet: emotion from the folder, onset/offset the folder's first/last frame", "quirk no_apex"]
        rec, p = clips.clip_record(
            root,
            "smic",
            CORPORA["smic"].fps,
            subject,
            clip,
            d,
            numbers[0],
            None,
            numbers[-1],
            "",
            emotion,
            label,
            None,
            0,
            "SMIC gives none",
            notes,
            verify,
            prob,
        )
        if p:
            problems.append(p)
        else:
            records.append(rec)
    if not by_key:
        raise clips.DatasetError(f"{root}: no SMIC clip folders s<n>/micro/<emotion>/<clip> found")
    return records, problems


# --------------------------------------------------------------------------------------------
# relabelling for the composite, and counts beside the published ones


def relabel(df: pd.DataFrame, classes: str) -> pd.DataFrame:
    """``df`` (a clip table) with ``label`` in the class set ``classes``: the rows whose corpus and
    emotion have a class there, relabelled (``"megc3"``: only SMIC, CASME II and SAMM clips).
    ``df.attrs["dropped"]`` counts the clips left out, per corpus."""
    if classes not in CLASS_SETS:
        raise ValueError(f"classes must be one of {sorted(CLASS_SETS)}, not {classes!r}")
    if classes == "megc3":
        lab = [composite_class(d, e) for d, e in zip(df["dataset"], df["emotion"])]
    else:
        lab = [CLASS_MAPS.get(d, {}).get("paper", {}).get(e) for d, e in zip(df["dataset"], df["emotion"])]
    keep = pd.Series([x is not None for x in lab], index=df.index)
    out = df[keep].copy()
    out["label"] = [x for x in lab if x is not None]
    out = out.reset_index(drop=True)
    out.attrs = dict(df.attrs)
    out.attrs["dropped"] = df[~keep].groupby("dataset").size().to_dict()
    return out


def summary_table(df: pd.DataFrame, scale: float | None = None) -> pd.DataFrame:
    """Per corpus: clips and subjects beside the published counts (× ``scale`` for synthetic sets),
    and the clips and subjects that enter the MEGC composite beside its published ones."""
    rows = []
    comp = relabel(df, "megc3")
    for ds in sorted(set(df["dataset"])):
        c = CORPORA[ds]
        g = df[df["dataset"] == ds]
        row = {
            "corpus": c.title,
            "clips": len(g),
            "published clips": c.clips,
            "subjects": g["subject_id"].nunique(),
            "published subjects": c.subjects,
        }
        if scale is not None:
            row[f"published x {scale:g}"] = sum(scaled_counts(ds, scale).values())
        cg = comp[comp["dataset"] == ds]
        pub = COMPOSITE_PUBLISHED.get(ds)
        row |= {
            "composite clips": len(cg) if pub else None,
            "published composite clips": pub["clips"] if pub else None,
            "composite subjects": cg["subject_id"].nunique() if pub else None,
            "published composite subjects": pub["subjects"] if pub else None,
        }
        rows.append(row)
    pub = COMPOSITE_PUBLISHED["composite"]
    rows.append(
        {
            "corpus": "MEGC 2019 composite",
            "clips": None,
            "published clips": None,
            "subjects": None,
            "published subjects": None,
            "composite clips": len(comp),
            "published composite clips": pub["clips"],
            "composite subjects": comp["subject_id"].nunique(),
            "published composite subjects": pub["subjects"],
        }
    )
    return pd.DataFrame(rows).astype({c: "Int64" for c in rows[0] if c != "corpus"})


def emotion_table(df: pd.DataFrame, scale: float | None = None) -> pd.DataFrame:
    """Per corpus (not CASME I/II, whose Table 3 is :func:`mexpr.datasets.counts_table`'s) and
    emotion: clips beside the published count, the paper's class and the composite's class."""
    rows = []
    for ds in sorted(set(df["dataset"]) - {"casme1", "casme2"}):
        c = CORPORA[ds]
        expected = scaled_counts(ds, scale) if scale is not None else None
        for emotion, n in c.emotions.items():
            row = {
                "corpus": ds,
                "emotion": emotion,
                "paper class": CLASS_MAPS[ds]["paper"].get(emotion) or "-",
                "composite class": CLASS_MAPS[ds]["megc3"].get(emotion) or "-",
                "clips": int(((df["dataset"] == ds) & (df["emotion"] == emotion)).sum()),
                "published": n,
            }
            if expected is not None:
                row[f"published x {scale:g}"] = expected[emotion]
            rows.append(row)
    return pd.DataFrame(rows)
