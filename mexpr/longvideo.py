"""Long videos for spotting: the loaders of CAS(ME)² and SAMM Long Videos (docs/DESIGN.md §10,
docs/corpora.md "Long videos").

Spotting finds the intervals of macro- and micro-expressions in long videos; MEGC 2019-2023 score it
on two corpora, read here as distributed (and as :mod:`mexpr.synth.longvideo` writes its stand-ins):

- **CAS(ME)²** (Qu et al. 2018; 30 fps, 640×480): ``CASME_sq/rawpic/s15/15_0101disgustingteeth/img001.jpg``
  (frames numbered from 1, zero-padded to three digits: ``img1000.jpg`` follows ``img999.jpg``), the
  same videos as ``rawvideo/s15/15_0101disgustingteeth.avi``, and ``CAS(ME)^2code_final.xlsx``
  (or ``...(Updated).xlsx``): a first sheet without header (participant, expression ``disgust1_1``,
  onset, apex, offset, AUs, estimated emotion, ``macro-expression`` / ``micro-expression``,
  self-reported emotion) and the sheets ``naming rule1`` (participant -> folder ``s15``) and
  ``naming rule2`` (expression ``disgust1`` -> video code ``0101``).
- **SAMM Long Videos** (Yap et al. 2020; 200 fps, 2040×1088 grey): ``SAMM_longvideos/006_1/006_1_0001.jpg``
  and ``SAMM_LongVideos_V3_Release.xlsx`` (sheet ``FACS_Movement_Only``; V1, V2 the same), its header
  (``Subject, Filename, Inducement Code, Onset, Apex, Offset, Duration, Type, Action Units, Notes``)
  below a title block, ``Filename`` ``006_1_1`` = video ``006_1``, expression 1, ``Type`` ``Macro`` or
  ``Micro - 1/2``.

:func:`load` gives one row per ground-truth interval (:data:`INTERVAL_COLUMNS`), with onset, apex
and offset as the sheet numbers the frames (file numbers, not positions); :func:`videos` one row per
long video on disk (:data:`VIDEO_COLUMNS`), those without any interval included (every interval a
spotter finds there is a false positive); :func:`detect` tells a long-video root from the others.

The sheets' known quirks (:data:`mexpr.corpora.QUIRKS`, corpora ``casme2lv`` and ``sammlv``) are
absorbed and counted in ``df.attrs["quirks"]``; rows that cannot be used (no video, an unknown type,
onset after offset, an interval wholly outside its video, a folder outside the root) are reported
together in one :class:`~mexpr.clips.DatasetError`, or with ``errors="skip"`` skipped and recorded in
``df.attrs["skipped"]`` (sheet, row, reason), never dropped silently.  An interval that runs past its
video's frames is clipped to them and noted; overlapping intervals are kept and noted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mexpr import clips
from mexpr.corpora import LONG_CORPORA, QUIRKS, quirk

#: The long-video corpora (:data:`mexpr.corpora.LONG_CORPORA`).
DATASETS: tuple[str, ...] = tuple(LONG_CORPORA)
#: Interval types, as MEGC names them.
TYPES: tuple[str, ...] = ("micro", "macro")
#: The sheets' type cells (normalised: lower case, single spaces) -> type.
TYPE_NAMES: dict[str, str] = {
    "micro-expression": "micro",
    "macro-expression": "macro",
    "micro - 1/2": "micro",
    "micro": "micro",
    "macro": "macro",
}
#: Video files read where a video has no frame folder (CAS(ME)²'s ``rawvideo/``).
VIDEO_SUFFIXES: tuple[str, ...] = (".avi", ".mp4", ".mov", ".mkv")

#: The folders of each corpus' layout (relative to its root).
LAYOUT: dict[str, dict[str, str]] = {
    "casme2lv": {"frames": "rawpic", "videos": "rawvideo"},
    "sammlv": {"frames": "SAMM_longvideos"},
}
# a sheet's file name (lower case) -> corpus
_SHEET_NAMES = {
    "casme2lv": re.compile(r"cas\(?me\)?\^?2.*code.*\.(xlsx|xls)$"),
    "sammlv": re.compile(r"samm_?long_?videos.*\.(xlsx|xls|csv)$"),
}
_CASME_VIDEO = re.compile(r"(\d+)_(\d{4})(.*)")  # 15_0101disgustingteeth
_SAMM_VIDEO = re.compile(r"(\d+)_(\d+)")  # 006_1

INTERVAL_COLUMNS = [
    "dataset",
    "subject",
    "subject_id",
    "video",
    "video_key",
    "video_path",
    "fps",
    "first_frame",
    "last_frame",
    "onset",
    "apex",
    "offset",
    "type",
    "aus",
    "emotion",
    "apex_estimated",
    "notes",
    "sheet",
    "excel_row",
]
VIDEO_COLUMNS = INTERVAL_COLUMNS[: INTERVAL_COLUMNS.index("last_frame") + 1] + [
    "n_frames",
    "n_micro",
    "n_macro",
    "notes",
]  # a video: the first columns of its intervals


# --------------------------------------------------------------------------------------------
# finding the corpus, its sheet and its videos


def _child(root: Path, name: str) -> Path | None:
    """The folder ``name`` directly under ``root`` (case-insensitive), if any."""
    exact = root / name
    if exact.is_dir():
        return exact
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if p.is_dir() and p.name.lower() == name.lower():
                return p
    return None


def find_sheets(root: str | os.PathLike, dataset: str) -> list[Path]:
    """The coding sheets of ``dataset`` under ``root`` (the root and one level below), by file name:
    ``CAS(ME)^2code_final*.xlsx`` / ``SAMM_LongVideos_V*_Release.xlsx``."""
    root = Path(root)
    out = []
    for pattern in ("*", "*/*"):
        for p in sorted(root.glob(pattern)):
            if p.is_file() and _SHEET_NAMES[dataset].search(p.name.lower()) and not p.name.startswith((".", "~$")):
                out.append(p)
    return out


def detect(root: str | os.PathLike) -> str | None:
    """``"casme2lv"`` or ``"sammlv"`` when ``root`` holds CAS(ME)² or SAMM Long Videos in their
    distributed layout (its frame or video folder, or its sheet), else None (e.g. a CASME II root)."""
    root = Path(root)
    if not root.is_dir():
        return None
    for ds, folders in LAYOUT.items():
        if any(_child(root, f) for f in folders.values()) or find_sheets(root, ds):
            return ds
    return None


@dataclass
class _Video:
    dataset: str
    subject: str
    name: str
    key: str  # how the sheet names it: casme2lv (subject, code), sammlv the folder name
    path: Path
    frames: list[int]  # frame numbers present (sorted); a video file: 1..count
    notes: list[str] = field(default_factory=list)

    @property
    def subject_id(self) -> str:
        return f"{self.dataset}/{self.subject}"

    @property
    def video_key(self) -> str:
        return f"{self.subject_id}/{self.name}"


def _note(dataset: str, name: str, text: str) -> str:
    """``text``, prefixed ``quirk <name>:`` when it is a known quirk of ``dataset`` (:data:`mexpr.corpora.QUIRKS`)."""
    known = any(q.corpus == dataset and q.name == name for q in QUIRKS)
    return f"quirk {name}: {text}" if known else text


def _values(dataset: str, name: str) -> tuple:
    """The parameters of a known quirk of ``dataset`` (none when it has no such quirk)."""
    return next((tuple(str(v) for v in q.values) for q in QUIRKS if q.corpus == dataset and q.name == name), ())


def _frame_numbers(folder: Path) -> tuple[list[int], str | None, list[str]]:
    """(sorted frame numbers, problem or None, the numbers' zero-padding widths as written)."""
    numbered = []
    widths = set()
    with os.scandir(folder) as it:
        for e in it:
            if e.is_file() and os.path.splitext(e.name)[1].lower() in clips.IMAGE_SUFFIXES:
                n = clips.frame_number(e.name)
                if n is not None:
                    numbered.append(n)
                    digits = re.findall(r"\d+", os.path.splitext(e.name)[0])[-1]
                    if digits.startswith("0"):
                        widths.add(len(digits))
    numbered.sort()
    dup = sorted({a for a, b in zip(numbered, numbered[1:]) if a == b})
    if dup:
        return [], f"several frame files share frame number(s) {dup[:5]} in {folder}", []
    if not numbered:
        return [], f"no frame images in {folder}", []
    return numbered, None, sorted(map(str, widths))


def _video_file_frames(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _index(root: Path, ds: str) -> tuple[dict, list[_Video], list[dict]]:
    """The videos of a root: ``(by the sheet's key, all in order, problems)``; a problem is a folder
    or file that cannot be a video (outside the root, no frames, ...), with ``key`` when known."""
    found: list[_Video] = []
    problems: list[dict] = []
    refused: dict = {}

    def refuse(where: Path, subject: str, name: str, key, reason: str):
        problems.append({"sheet": str(where), "row": 0, "subject": subject, "clip": name, "reason": reason})
        if key is not None:
            refused[key] = reason

    frames_dir = _child(root, LAYOUT[ds]["frames"])
    if ds == "casme2lv":
        have = set()
        for source in ("frames", "videos"):
            base = _child(root, LAYOUT[ds][source])
            if base is None:
                continue
            for sdir in sorted(p for p in base.iterdir() if p.is_dir()):
                if not re.fullmatch(r"s\d+", sdir.name, flags=re.IGNORECASE):
                    refuse(sdir, sdir.name, "", None, f"{sdir} is not a subject folder s<nn> of CAS(ME)²'s {base.name}/")
                    continue
                subject = sdir.name.lower()
                for v in sorted(sdir.iterdir()):
                    is_video = (source == "frames" and v.is_dir()) or (source == "videos" and v.is_file() and v.suffix.lower() in VIDEO_SUFFIXES)
                    if not is_video:
                        continue
                    name = v.name if source == "frames" else v.stem
                    m = _CASME_VIDEO.fullmatch(name)
                    if not m:
                        refuse(v, subject, name, None, f"{v}: not a CAS(ME)² video name <nn>_<code><title> (e.g. 15_0101disgustingteeth)")
                        continue
                    key = (subject, m.group(2))
                    if key in have:
                        continue  # rawpic/ before rawvideo/
                    if not _inside(v, root):
                        refuse(v, subject, name, key, f"{v} resolves outside the dataset root {root}")
                        continue
                    notes = []
                    if int(m.group(1)) != int(subject[1:]):
                        notes.append(_note(ds, "folder_prefix", f"video {name} lies in {subject}; read as {subject}'s video {m.group(2)}"))
                    if source == "frames":
                        numbers, why, _ = _frame_numbers(v)
                    else:
                        n = _video_file_frames(v)
                        numbers, why = list(range(1, n + 1)), None if n else f"{v}: cannot read the video file's frames"
                        notes.append(f"frames from the video file {v.name} (no frame folder in {LAYOUT[ds]['frames']}/)")
                    if why:
                        refuse(v, subject, name, key, why)
                        continue
                    have.add(key)
                    found.append(_Video(ds, subject, name, key, v, numbers, notes))
    else:
        if frames_dir is not None:
            for v in sorted(p for p in frames_dir.iterdir() if p.is_dir()):
                m = _SAMM_VIDEO.fullmatch(v.name)
                if not m:
                    refuse(v, "", v.name, None, f"{v}: not a SAMM Long Videos folder <subject>_<video> (e.g. 006_1)")
                    continue
                subject = m.group(1)
                if not _inside(v, root):
                    refuse(v, subject, v.name, v.name, f"{v} resolves outside the dataset root {root}")
                    continue
                numbers, why, widths = _frame_numbers(v)
                if why:
                    refuse(v, subject, v.name, v.name, why)
                    continue
                notes = [_note(ds, "frame_padding", f"frame numbers zero-padded to {'/'.join(widths)} digits")] if widths and widths != ["4"] else []
                found.append(_Video(ds, subject, v.name, v.name, v, numbers, notes))
    for v in found:
        gaps = v.frames[-1] - v.frames[0] + 1 - len(v.frames)
        if gaps:
            v.notes.append(f"{gaps} frame(s) missing between frames {v.frames[0]} and {v.frames[-1]}")
    by_key = {v.key: v for v in found}
    by_key.update({k: reason for k, reason in refused.items() if k not in by_key})
    return by_key, found, problems


# --------------------------------------------------------------------------------------------
# reading the sheets


def _read_book(path: Path) -> dict[str, pd.DataFrame]:
    """Every sheet of a workbook (a ``.csv`` is one sheet), cells as objects, no header."""
    try:
        if path.suffix.lower() == ".csv":
            return {path.stem: pd.read_csv(path, header=None, dtype=object)}
        return pd.read_excel(path, sheet_name=None, header=None, dtype=object)
    except Exception as exc:  # a corrupt file, or another format behind the name: pandas' message names neither
        raise clips.DatasetError(f"{path}: not a readable {path.suffix} coding sheet ({type(exc).__name__}: {exc})") from exc


def _norm(name: object) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def _cell(value) -> str:
    return "" if clips.is_blank(value) else str(value).strip()


def _int_text(value) -> str:
    """A cell as written, ``6.0`` -> ``6``."""
    s = _cell(value)
    return s[:-2] if re.fullmatch(r"-?\d+\.0", s) else s


@dataclass
class _Row:
    """One sheet row before it meets its video: where it is, and what it says."""

    sheet: Path
    excel_row: int
    subject: str  # the subject folder, or the sheet's cell when it names none
    video_key: object  # how _index keys its video
    video_label: str  # for messages
    type_cell: object
    onset: object
    apex: object
    offset: object
    aus: str = ""
    emotion: str = ""
    notes: list[str] = field(default_factory=list)
    quirks: set[str] = field(default_factory=set)  # the sheet's known quirks this row shows (counted when it loads)
    problem: str | None = None


def _casme2lv_rows(sheet: Path) -> list[_Row]:
    book = _read_book(sheet)
    names = list(book)
    rule_names = quirk("casme2lv", "naming_rules").values
    rules = {}
    for wanted in rule_names:
        match = next((n for n in names[1:] if _norm(n) == _norm(wanted)), None)
        if match is None:
            raise clips.DatasetError(
                f"{sheet}: no sheet {wanted!r}; CAS(ME)^2code_final.xlsx maps participants and expressions to the folders "
                f"through the sheets {' and '.join(map(repr, rule_names))} (its sheets: {names})"
            )
        rules[wanted] = book[match]
    participants: dict[int, str] = {}
    for row in rules[rule_names[0]].itertuples(index=False):
        cells = list(row) + [None] * 3
        who = clips.to_int(cells[2])
        folder = _cell(cells[1]).lower()
        if not re.fullmatch(r"s\d+", folder) and clips.to_int(cells[0]) is not None:
            folder = f"s{clips.to_int(cells[0])}"
        if who is not None and re.fullmatch(r"s\d+", folder):
            participants[who] = folder
    codes: dict[str, str] = {}
    for row in rules[rule_names[1]].itertuples(index=False):
        cells = list(row) + [None] * 2
        code, expr = _int_text(cells[0]), _cell(cells[1]).lower()
        if re.fullmatch(r"\d{1,4}", code) and expr:
            codes[expr] = f"{int(code):04d}"
    table = book[names[0]]
    columns = quirk("casme2lv", "no_header").values
    if table.shape[1] < 5:
        raise clips.DatasetError(f"{sheet}: its first sheet {names[0]!r} has {table.shape[1]} column(s); CAS(ME)²'s has {len(columns)}: {columns}")
    rows = []
    header = 0
    if len(table) and clips.to_int(table.iat[0, 2]) is None and "onset" in _norm(table.iat[0, 2]):
        header = 1  # a copy saved with a header row: read the rows below it
    for i in range(header, len(table)):
        cells = dict(zip(columns, list(table.iloc[i]) + [None] * len(columns)))
        if clips.is_blank(cells["participant"]) and clips.is_blank(cells["expression"]):
            continue
        excel_row = i + 1
        expression = _cell(cells["expression"])
        r = _Row(sheet, excel_row, _cell(cells["participant"]), None, expression, cells["type"], cells["onset"], cells["apex"], cells["offset"])
        r.aus, r.emotion = _cell(cells["aus"]), _cell(cells["emotion"])
        r.quirks = {"naming_rules"} | (set() if header else {"no_header"})
        who = clips.to_int(cells["participant"])
        base = expression.rsplit("_", 1)[0] if re.fullmatch(r".+_\d+", expression) else expression
        if who is None or who not in participants:
            r.problem = f"participant {_cell(cells['participant'])!r} is not in the sheet {rule_names[0]!r}"
        elif not expression or base.lower() not in codes:
            r.subject = participants[who]
            r.problem = f"expression {expression!r} ({base!r}) is not in the sheet {rule_names[1]!r}"
        else:
            r.subject = participants[who]
            r.video_key = (r.subject, codes[base.lower()])
            r.video_label = f"{r.subject} video {codes[base.lower()]} ({expression})"
        rows.append(r)
    return rows


def _sammlv_rows(sheet: Path) -> list[_Row]:
    book = _read_book(sheet)
    raw = next(iter(book.values()))
    limit = quirk("sammlv", "header_row").values[0]
    head = None
    for i in range(min(limit, len(raw))):
        cells = {_norm(c) for c in raw.iloc[i].tolist() if isinstance(c, str)}
        if {"subject", "filename"} <= cells and any(c.startswith("onset") for c in cells):
            head = i
            break
    if head is None:
        raise clips.DatasetError(
            f"{sheet}: no header row naming Subject, Filename and Onset in its first {limit} rows (SAMM Long Videos' is on row 10)"
        )
    header = [_norm(c) for c in raw.iloc[head].tolist()]
    want = {
        "subject": ("subject",),
        "filename": ("filename",),
        "onset": ("onset", "onsetframe"),
        "apex": ("apex", "apexframe"),
        "offset": ("offset", "offsetframe"),
        "type": ("type",),
        "aus": ("actionunits", "aus", "au"),
        "emotion": ("estimatedemotion", "emotion"),
    }
    cols = {}
    for f, aliases in want.items():
        for a in aliases:
            if a in header:
                cols[f] = header.index(a)
                break
    missing = [f for f in ("subject", "filename", "onset", "offset", "type") if f not in cols]
    if missing:
        raise clips.DatasetError(
            f"{sheet}: SAMM Long Videos sheet is missing column(s) {missing}; header (row {head + 1}): {raw.iloc[head].tolist()}"
        )
    digits = quirk("sammlv", "subject_digits").values[0]
    rows = []
    for i in range(head + 1, len(raw)):
        line = raw.iloc[i].tolist()

        def get(f, line=line):
            return line[cols[f]] if f in cols and cols[f] < len(line) else None

        if clips.is_blank(get("subject")) and clips.is_blank(get("filename")):
            continue
        excel_row = i + 1
        filename = _int_text(get("filename"))
        subject_cell = _int_text(get("subject"))
        r = _Row(sheet, excel_row, subject_cell, None, filename, get("type"), get("onset"), get("apex"), get("offset"))
        r.aus, r.emotion = _cell(get("aus")), _cell(get("emotion"))
        r.quirks = ({"header_row"} if head > 0 else set()) | (set() if "emotion" in cols else {"no_emotion"})
        m = _SAMM_VIDEO.match(filename)
        err = clips.safe_component(filename)
        if not re.fullmatch(r"\d+", subject_cell):
            r.problem = f"Subject {subject_cell!r} is not a SAMM subject number"
        elif err:
            r.problem = err
        elif not (m and re.fullmatch(r"\d+_\d+_\d+", filename)):
            r.problem = f"Filename {filename!r} is not <subject>_<video>_<expression> (e.g. 006_1_1)"
        else:
            r.subject = f"{int(subject_cell):0{digits}d}"
            video = f"{int(m.group(1)):0{digits}d}_{m.group(2)}"
            if int(m.group(1)) != int(subject_cell):
                r.problem = f"Filename {filename!r} is not a video of subject {r.subject}"
            r.video_key, r.video_label = video, f"video {video} ({filename})"
            if subject_cell != r.subject:
                r.quirks.add("subject_digits")
        rows.append(r)
    return rows


# --------------------------------------------------------------------------------------------
# rows meet their videos


def _interval(ds: str, r: _Row, video) -> tuple[dict | None, str | None]:
    """The record of one row (:data:`INTERVAL_COLUMNS`), or ``(None, reason)``."""
    if r.problem:
        return None, r.problem
    if video is None:
        where = (
            f"{LAYOUT[ds]['frames']}/{r.video_key[0]}/<nn>_{r.video_key[1]}*/ (nor {LAYOUT[ds]['videos']}/{r.video_key[0]}/<nn>_{r.video_key[1]}*.avi)"
            if ds == "casme2lv"
            else f"{LAYOUT[ds]['frames']}/{r.video_key}/"
        )
        return None, f"no video folder for {r.video_label}: looked for {where}"
    if isinstance(video, str):
        return None, f"the video of {r.video_label} cannot be used: {video}"
    kind = re.sub(r"\s+", " ", _cell(r.type_cell).lower())
    if kind not in TYPE_NAMES:
        return None, f"unknown type {_cell(r.type_cell)!r} (known: {', '.join(sorted({k for k in TYPE_NAMES if ' ' in k or '-' in k}))})"
    onset, apex, offset = clips.to_int(r.onset), clips.to_int(r.apex), clips.to_int(r.offset)
    if onset is None or offset is None:
        return None, f"onset/offset must be frame numbers, got {r.onset!r}/{r.offset!r}"
    notes = list(r.notes)
    zero = {int(v) for v in _values(ds, "offset_zero")}
    if offset in zero and onset not in zero:
        if apex is None or apex <= onset:
            return None, f"offset {offset} (not coded) and no apex after onset {onset} to estimate it from"
        offset = 2 * apex - onset
        notes.append(_note(ds, "offset_zero", f"offset not coded; estimated as apex + (apex - onset) = {offset}"))
    if onset > offset:
        return None, f"onset {onset} is after offset {offset}"
    if onset == offset:
        return None, f"onset {onset} equals offset {offset}: an interval needs at least two frames"
    first, last = video.frames[0], video.frames[-1]
    if offset < first or onset > last:
        return None, f"interval {onset}..{offset} lies outside its video's frames {first}..{last} ({video.path})"
    if onset < first or offset > last:
        notes.append(_note(ds, "interval_clipped", f"sheet range {onset}..{offset} clipped to the video's frames {first}..{last}"))
        onset, offset = max(onset, first), min(offset, last)
    apex_text = _int_text(r.apex)
    not_given = apex is None or apex_text in _values(ds, "apex_missing")
    apex_estimated = not_given or not onset <= apex <= offset
    if apex_estimated:
        why = f"apex {apex_text or 'blank'!r} " + ("not given" if not_given else f"outside {onset}..{offset}")
        apex = (onset + offset) // 2
        text = f"{why}; estimated as the middle frame {apex}"
        # only a missing apex is the sheet's known quirk; one given outside the interval is a plain note
        notes.append(_note(ds, "apex_missing", text) if not_given else text)
    notes += video.notes
    return {
        "dataset": ds,
        "subject": video.subject,
        "subject_id": video.subject_id,
        "video": video.name,
        "video_key": video.video_key,
        "video_path": str(video.path),
        "fps": LONG_CORPORA[ds].fps,
        "first_frame": first,
        "last_frame": last,
        "onset": onset,
        "apex": apex,
        "offset": offset,
        "type": TYPE_NAMES[kind],
        "aus": r.aus,
        "emotion": r.emotion,
        "apex_estimated": apex_estimated,
        "notes": notes,
        "sheet": str(r.sheet),
        "excel_row": r.excel_row,
    }, None


def _flag_overlaps(records: list[dict]) -> None:
    """Note, on both, every pair of intervals of one video that share frames (both are kept)."""
    by_video: dict[str, list[dict]] = {}
    for rec in records:
        by_video.setdefault(rec["video_key"], []).append(rec)
    for recs in by_video.values():
        recs.sort(key=lambda r: (r["onset"], r["offset"]))
        for i, a in enumerate(recs):
            for b in recs[i + 1 :]:
                if b["onset"] > a["offset"]:
                    break
                a["notes"].append(f"overlaps the {b['type']} interval {b['onset']}..{b['offset']} (row {b['excel_row']})")
                b["notes"].append(f"overlaps the {a['type']} interval {a['onset']}..{a['offset']} (row {a['excel_row']})")


def _roots(roots) -> list[Path]:
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    roots = [Path(r) for r in roots]
    if not roots:
        raise clips.DatasetError("no long-video root given")
    return roots


def _sheet_rank(path: Path) -> tuple:
    """Newer releases rank higher: ``V3`` over ``V2``, ``(Updated)`` over the plain name, then the later file."""
    name = path.name.lower()
    version = re.search(r"_v(\d+)", name)
    return (int(version.group(1)) if version else 0, "updat" in name, path.stat().st_mtime_ns)


def _load_root(root: Path) -> tuple[str, list[dict], list[dict], list[_Video], list[dict], dict, list[Path]]:
    if not root.is_dir():
        raise clips.DatasetError(f"{root}: long-video root does not exist or is not a folder")
    ds = detect(root)
    if ds is None:
        raise clips.DatasetError(
            f"{root}: neither CAS(ME)² (rawpic/ or rawvideo/ and CAS(ME)^2code_final.xlsx) nor SAMM Long Videos "
            "(SAMM_longvideos/ and SAMM_LongVideos_V*_Release.xlsx); give the folder that holds both (docs/corpora.md)"
        )
    by_key, found, video_problems = _index(root, ds)
    sheets = find_sheets(root, ds)
    if not sheets:
        name = "CAS(ME)^2code_final.xlsx" if ds == "casme2lv" else "SAMM_LongVideos_V3_Release.xlsx"
        raise clips.DatasetError(f"{root}: no coding sheet of {LONG_CORPORA[ds].title} found (looked for {name} in the root and one level below)")
    if len(sheets) > 1:  # one corpus, several releases of its sheet (V2 and V3; "(Updated)"): the newest, the others noted
        newest = max(sheets, key=_sheet_rank)
        video_problems = list(video_problems) + [
            {"sheet": str(p), "row": "", "subject": "", "clip": "", "reason": f"another release of the sheet; {newest.name} is read instead"}
            for p in sheets
            if p != newest
        ]
        sheets = [newest]
    records, problems, counts = [], [], {}
    for sheet in sheets:
        for r in _casme2lv_rows(sheet) if ds == "casme2lv" else _sammlv_rows(sheet):
            rec, why = _interval(ds, r, by_key.get(r.video_key))
            if why:
                problems.append({"sheet": str(r.sheet), "row": r.excel_row, "subject": r.subject, "clip": r.video_label, "reason": why})
            else:
                records.append(rec)
                for k in r.quirks:  # the sheet's quirks count the rows that load
                    counts[k] = counts.get(k, 0) + 1
    return ds, records, problems, found, video_problems, counts, sheets


def _quirk_counts(records: list[dict], sheet_counts: dict[str, dict[str, int]]) -> list[dict]:
    """``[{corpus, quirk, rows, absorbed}]``: the intervals each known quirk touched."""
    out = []
    for q in QUIRKS:
        if q.corpus not in LONG_CORPORA:
            continue
        n = sum(1 for r in records if r["dataset"] == q.corpus and any(x.startswith(f"quirk {q.name}:") for x in r["notes"]))
        n += sheet_counts.get(q.corpus, {}).get(q.name, 0)
        if n:
            out.append({"corpus": q.corpus, "quirk": q.name, "rows": n, "absorbed": q.absorbed})
    return out


def load(roots: str | os.PathLike | Iterable[str | os.PathLike], errors: str = "raise") -> pd.DataFrame:
    """The ground-truth intervals of one or more long-video roots (CAS(ME)², SAMM Long Videos; real or
    synthetic, each recognised by :func:`detect`).

    Returns one row per interval (:data:`INTERVAL_COLUMNS`): ``onset``, ``apex``, ``offset`` are frame
    file numbers as the sheet gives them (``img046.jpg`` is 46; clipped to the video's
    ``first_frame..last_frame`` where the sheet runs past them), ``type`` is ``"micro"`` or
    ``"macro"``, ``video_path`` the frame folder (or the video file where only that exists), ``fps``
    the corpus' frame rate, ``apex_estimated`` True where the sheet gives no apex (SAMM's -1): the
    middle frame, which a spotter may re-estimate.  ``video_key`` (``"casme2lv/s15/15_0101disgustingteeth"``)
    is unique over corpora and subjects; ``notes`` lists what was absorbed (a known quirk as
    ``quirk <name>: ...``; an overlap with another interval, which is kept).

    ``errors="raise"``: unusable rows are reported together in one :class:`~mexpr.clips.DatasetError`;
    ``"skip"``: they are left out and listed in ``df.attrs["skipped"]`` (sheet, row, subject, clip,
    reason).  ``df.attrs["quirks"]`` counts the intervals each known quirk touched
    (:data:`mexpr.corpora.QUIRKS`); a missing or unreadable sheet is always an error.  A root holding
    several releases of its sheet (SAMM's V2 and V3, CAS(ME)²'s ``(Updated)``) is read from the newest
    only, the others listed in ``df.attrs["sheets_ignored"]``.
    """
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}")
    roots = _roots(roots)
    records, problems, sheets, ignored = [], [], [], []
    sheet_counts: dict[str, dict[str, int]] = {}
    for root in roots:
        ds, recs, probs, _, vprobs, counts, sh = _load_root(root)
        ignored += [f"{v['sheet']}: {v['reason']}" for v in vprobs if v.get("reason", "").startswith("another release")]
        records += recs
        problems += probs
        sheets += [str(s) for s in sh]
        for k, n in counts.items():
            sheet_counts.setdefault(ds, {})[k] = sheet_counts.get(ds, {}).get(k, 0) + n
    if problems and errors == "raise":
        raise clips.DatasetError(
            f"{len(problems)} unusable row(s) in {', '.join(map(str, roots))}; to skip them and record them, pass errors='skip' "
            "(on the command line: mexpr info --skip)",
            problems,
        )
    _flag_overlaps(records)
    quirks = _quirk_counts(records, sheet_counts)
    for r in records:
        r["notes"] = "; ".join(r["notes"])
    df = pd.DataFrame.from_records(records, columns=INTERVAL_COLUMNS)
    df = df.sort_values(["dataset", "subject", "video", "onset", "offset"], kind="stable").reset_index(drop=True)
    for c in ("fps", "first_frame", "last_frame", "onset", "apex", "offset", "excel_row"):
        df[c] = df[c].astype(int)
    df["apex_estimated"] = df["apex_estimated"].astype(bool)
    df.attrs["skipped"] = problems
    df.attrs["quirks"] = quirks
    df.attrs["roots"] = [str(r) for r in roots]
    df.attrs["sheets"] = sheets
    df.attrs["sheets_ignored"] = ignored
    return df


def videos(roots: str | os.PathLike | Iterable[str | os.PathLike], intervals: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every long video found on disk under ``roots`` (:data:`VIDEO_COLUMNS`), those without any
    interval included: ``first_frame``/``last_frame`` the numbers of its first and last frame files
    (a video file: 1 and its frame count), ``n_frames`` the frames present, ``n_micro``/``n_macro``
    its intervals in ``intervals`` (by default ``load(roots, errors="skip")``).
    ``df.attrs["skipped"]`` lists the folders and files that cannot be a video, and why."""
    roots = _roots(roots)
    if intervals is None:
        intervals = load(roots, errors="skip")
    counts = intervals.groupby(["video_key", "type"]).size() if len(intervals) else pd.Series(dtype=int)
    rows, problems = [], []
    for root in roots:
        if not root.is_dir() or detect(root) is None:
            raise clips.DatasetError(f"{root}: not a CAS(ME)² or SAMM Long Videos root (docs/corpora.md)")
        ds = detect(root)
        _, found, probs = _index(root, ds)
        problems += probs
        for v in found:
            rows.append(
                {
                    "dataset": ds,
                    "subject": v.subject,
                    "subject_id": v.subject_id,
                    "video": v.name,
                    "video_key": v.video_key,
                    "video_path": str(v.path),
                    "fps": LONG_CORPORA[ds].fps,
                    "first_frame": v.frames[0],
                    "last_frame": v.frames[-1],
                    "n_frames": len(v.frames),
                    "n_micro": int(counts.get((v.video_key, "micro"), 0)),
                    "n_macro": int(counts.get((v.video_key, "macro"), 0)),
                    "notes": "; ".join(v.notes),
                }
            )
    df = pd.DataFrame.from_records(rows, columns=VIDEO_COLUMNS)
    df = df.sort_values(["dataset", "subject", "video"], kind="stable").reset_index(drop=True)
    df.attrs["skipped"] = problems
    df.attrs["roots"] = [str(r) for r in roots]
    return df


# --------------------------------------------------------------------------------------------
# counts beside the published ones


def counts_table(intervals: pd.DataFrame, vids: pd.DataFrame, scale: float | None = None) -> pd.DataFrame:
    """Per corpus: subjects, videos (and those without intervals), macro- and micro-expressions and
    their rates per video, beside the published counts (:data:`mexpr.corpora.LONG_CORPORA`) and, for
    a synthetic set, the published subjects and videos × ``scale`` (its intervals per video are ours,
    docs/corpora.md)."""
    rows = []
    for ds in sorted(set(vids["dataset"]) | set(intervals["dataset"])):
        c = LONG_CORPORA[ds]
        v, iv = vids[vids["dataset"] == ds], intervals[intervals["dataset"] == ds]
        n_v = len(v)
        macro, micro = int((iv["type"] == "macro").sum()), int((iv["type"] == "micro").sum())
        items = [
            ("subjects", v["subject_id"].nunique(), c.subjects, True),
            ("videos", n_v, c.videos, True),
            ("videos without intervals", int(((v["n_micro"] + v["n_macro"]) == 0).sum()), None, False),
            ("macro-expressions", macro, c.macro, False),
            ("micro-expressions", micro, c.micro, False),
            ("macro per video", round(macro / n_v, 2) if n_v else None, round(c.macro / c.videos, 2), False),
            ("micro per video", round(micro / n_v, 2) if n_v else None, round(c.micro / c.videos, 2), False),
        ]
        for what, here, pub, scales in items:
            row = {"corpus": c.title, "quantity": what, "here": here, "published": pub}
            if scale is not None:
                row[f"published x {scale:g}"] = round(pub * scale, 2) if scales and pub is not None else None
            rows.append(row)
    return pd.DataFrame(rows, dtype=object)  # counts stay integers beside the rates


def durations_table(intervals: pd.DataFrame, vids: pd.DataFrame) -> pd.DataFrame:
    """Per corpus: the videos' lengths and the intervals' lengths per type, in frames and seconds
    (count, mean, min, max)."""
    rows = []
    for ds in sorted(set(vids["dataset"]) | set(intervals["dataset"])):
        fps = LONG_CORPORA[ds].fps
        v = vids[vids["dataset"] == ds]
        parts = [("videos", (v["last_frame"] - v["first_frame"] + 1).to_numpy())]
        iv = intervals[intervals["dataset"] == ds]
        parts += [(f"{t} intervals", (g["offset"] - g["onset"] + 1).to_numpy()) for t in TYPES if len(g := iv[iv["type"] == t])]
        for what, frames in parts:
            if len(frames) == 0:
                continue
            rows.append(
                {
                    "corpus": LONG_CORPORA[ds].title,
                    "what": what,
                    "n": len(frames),
                    "frames total": int(frames.sum()),
                    "mean s": round(float(frames.mean()) / fps, 3),
                    "min s": round(float(frames.min()) / fps, 3),
                    "max s": round(float(frames.max()) / fps, 3),
                }
            )
    return pd.DataFrame(rows)
