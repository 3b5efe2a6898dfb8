"""CASME I / CASME II loaders and the paper's four-class map (Peng et al. 2017, Table 3).

:func:`load` reads the coding sheet(s) of one or more dataset roots, matches every row to its
frame folder and returns one row per clip.  Real data (as distributed by its authors) and the
synthetic data of :mod:`mexpr.synth` go through the same code.

The real sheets have quirks (docs/DESIGN.md §4); each is absorbed and written to the clip's ``notes``
column, never fatal:

- CASME II ``Subject`` is an integer (folder ``sub01``); blank-header columns (``Unnamed: N``);
  ``ApexFrame`` is ``/`` for some clips (the apex is then estimated as the middle frame and
  ``apex_estimated`` is True); a few rows' onset/offset disagree with the folder (the frames present
  inside the range are used and the mismatch is noted).
- CASME I names its columns ``OnsetF``, ``ApexF1``, ``ApexF2``, ``OffsetF``, ``Emotion``; the data
  comes as Section A and Section B folders, possibly merged under one root.
- Frame files are numbered by video frame index: frames are ordered by the last integer in the file
  stem, never as strings.

Rows that cannot be used (missing folder, corrupt frame, unknown emotion, bad onset/apex/offset,
a cell that would escape the dataset root) are collected and reported together in one
:class:`DatasetError`, or skipped and recorded in ``df.attrs["skipped"]`` with ``errors="skip"``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mexpr.clips import (  # noqa: F401  (re-exported: datasets.DatasetError, datasets.frame_number, ...)
    IMAGE_SUFFIXES,
    VERIFY,
    DatasetError,
    clip_record,
    frame_number,
    is_blank,
    normalise_label,
    safe_component,
    signature_problem,
    to_int,
)
from mexpr.corpora import CLASS_MAPS, CLASS_SETS, CORPORA, scaled_counts  # noqa: F401  (re-exported: datasets.scaled_counts)

#: The four classes of the paper, in the order of Table 4 / Figure 7 (N, O, P, S).
CLASSES: tuple[str, ...] = CLASS_SETS["paper"]

#: Table 3: emotion label (as written in the coding sheets, normalised) -> class (CASME I and II;
#: every corpus' maps are :data:`mexpr.corpora.CLASS_MAPS`).
EMOTION_TO_CLASS: dict[str, str] = CLASS_MAPS["casme1"]["paper"] | CLASS_MAPS["casme2"]["paper"]

#: Table 3 per-emotion clip counts (the synthetic data follows these, times ``scale``).
TABLE3: dict[str, dict[str, int]] = {d: dict(CORPORA[d].emotions) for d in ("casme1", "casme2")}

#: Frame rates (Table 1; the other corpora's from :data:`mexpr.corpora.CORPORA`).
FPS: dict[str, int] = {name: c.fps for name, c in CORPORA.items()}

# canonical field -> accepted header spellings (normalised: lower case, no spaces/_/-)
_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "subject": ("subject",),
    "filename": ("filename",),
    "onset": ("onsetframe", "onsetf", "onset"),
    "apex": ("apexframe", "apexf1", "apexf", "apex"),
    "offset": ("offsetframe", "offsetf", "offset"),
    "action_units": ("actionunits", "aus", "au"),
    "emotion": ("estimatedemotion", "emotion"),
}
_REQUIRED = ("subject", "filename", "onset", "apex", "offset", "emotion")
# header names that show whoever wrote the sheet, in the paper's datasets' spelling
_CASME2_MARKERS = {"onsetframe", "offsetframe", "estimatedemotion", "apexframe"}
_CASME1_MARKERS = {"onsetf", "offsetf", "apexf1", "apexf2"}

OUTPUT_COLUMNS = [
    "dataset",
    "subject",
    "clip",
    "fps",
    "onset",
    "apex",
    "offset",
    "action_units",
    "emotion",
    "label",
    "frames",
    "n_frames",
    "apex_estimated",
    "subject_id",
    "clip_dir",
    "sheet",
    "sheet_row",
    "notes",
]


# --------------------------------------------------------------------------------------------
# small helpers


def _norm_header(name: object) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def _map_columns(columns: Iterable) -> dict[str, str]:
    """canonical field -> actual column name in the sheet."""
    by_norm: dict[str, str] = {}
    for c in columns:
        by_norm.setdefault(_norm_header(c), c)
    out = {}
    for field, aliases in _COLUMN_ALIASES.items():
        for a in aliases:
            if a in by_norm:
                out[field] = by_norm[a]
                break
    return out


# --------------------------------------------------------------------------------------------
# sheet discovery


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            return pd.read_csv(path, dtype=object)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path}: not a readable .csv coding sheet ({type(exc).__name__}: {exc})") from exc
    if suffix == ".xls":
        try:
            import xlrd  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise DatasetError(f"{path}: reading legacy .xls sheets needs the 'xlrd' package (pip install xlrd), or save the sheet as .xlsx") from exc
    try:
        return pd.read_excel(path, dtype=object)
    except Exception as exc:  # a corrupt file, or another format behind the .xlsx name: pandas' message names neither
        raise DatasetError(f"{path}: not a readable {suffix} coding sheet ({type(exc).__name__}: {exc})") from exc


def find_sheets(root: str | os.PathLike) -> list[Path]:
    """Coding sheets under ``root`` (the root and two levels below), sorted by path.

    A spreadsheet counts as a coding sheet when its name contains 'coding' or its header has at
    least two of the onset/apex/offset columns; such a sheet missing a required column is an error.
    """
    root = Path(root)
    candidates = []
    for depth_glob in ("*", "*/*", "*/*/*"):
        for p in root.glob(depth_glob):
            if p.is_file() and p.suffix.lower() in (".xlsx", ".xls", ".csv") and not any(part.startswith(".") for part in p.relative_to(root).parts):
                candidates.append(p)
    sheets = []
    for p in sorted(candidates):
        if "coding" in p.name.lower():
            sheets.append(p)
            continue
        try:
            header = _read_table(p).columns
        except Exception:
            continue
        if len({"onset", "apex", "offset"} & set(_map_columns(header))) >= 2:
            sheets.append(p)
    return sheets


def _detect_dataset(columns: Iterable, sheet: Path) -> str:
    norm = {_norm_header(c) for c in columns}
    if norm & _CASME1_MARKERS:
        return "casme1"
    if norm & _CASME2_MARKERS:
        return "casme2"
    name = sheet.name.lower().replace("_", "").replace("-", "")
    if "casme2" in name or "casmeii" in name:
        return "casme2"
    return "casme1" if "casme" in name else "casme2"


# --------------------------------------------------------------------------------------------
# folder index


@dataclass
class _SubjectIndex:
    root: Path
    dirs: dict[int, list[Path]]

    @classmethod
    def build(cls, root: Path, variant: str) -> _SubjectIndex:
        found: dict[int, list[Path]] = {}
        for depth_glob in ("*", "*/*", "*/*/*"):
            for p in sorted(root.glob(depth_glob)):
                m = re.fullmatch(r"sub(\d+)", p.name, flags=re.IGNORECASE)
                if m and p.is_dir():
                    found.setdefault(int(m.group(1)), []).append(p)
        chosen: dict[int, list[Path]] = {}
        for num, dirs in found.items():
            cropped = [d for d in dirs if "crop" in str(d.relative_to(root)).lower()]
            raw = [d for d in dirs if d not in cropped]
            if variant == "cropped":
                pick = cropped
            elif variant == "raw":
                pick = raw
            else:
                pick = raw or cropped
            if pick:
                chosen[num] = pick
        return cls(root, chosen)


def _parse_subject(cell) -> tuple[int | None, str | None]:
    """Subject cell -> (number, error).  Accepts 1, 1.0, '1', '01', 'sub01'."""
    s = str(cell).strip()
    if isinstance(cell, float) and not math.isnan(cell) and cell == int(cell):
        s = str(int(cell))
    m = re.fullmatch(r"(?:sub)?0*(\d+)(?:\.0+)?", s, flags=re.IGNORECASE)
    if m:
        return int(m.group(1)), None
    if "/" in s or "\\" in s or ".." in s or os.path.isabs(s):
        return None, f"Subject {s!r} would escape the dataset root"
    return None, f"Subject {s!r} is not a subject number"


# --------------------------------------------------------------------------------------------
# the loader


def load(
    roots: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    dataset: str | None = None,
    variant: str = "auto",
    unknown: str | Mapping[str, str] = "error",
    errors: str = "raise",
    verify: str = "header",
    classes: str = "paper",
) -> pd.DataFrame:
    """Load one or more dataset roots (real or synthetic) into a clip table: CASME I / CASME II,
    and the corpora of :mod:`mexpr.corpora` (SAMM, SMIC-HS, CAS(ME)³ part A), each recognised by
    its sheet or folder layout.

    Parameters
    ----------
    roots
        A dataset root, or several (e.g. CASME II and CASME I, merged into the paper's set).
    dataset
        ``"casme1"``, ``"casme2"``, ``"samm"``, ``"smic"`` or ``"casme3a"``; by default detected
        (CASME I / II from the sheet's column names, the others by :func:`mexpr.corpora.detect`).
    variant
        ``"raw"``, ``"cropped"`` (the ``Cropped/`` faces) or ``"auto"`` (raw when present).
    unknown
        What to do with emotion labels that are not in :data:`EMOTION_TO_CLASS`:
        ``"error"`` (listed in the error), ``"skip"`` (rows skipped and recorded) or a mapping
        ``{label: class}`` that extends the class map.
    classes
        The class set of ``label``: ``"paper"`` (Table 3's four classes) or ``"megc3"`` (the MEGC
        2019 composite's Negative / Positive / Surprise).  Clips whose emotion has no class in the
        set (SAMM's anger in the paper's set, CASME II's others in the composite) are skipped and
        recorded in ``df.attrs["skipped"]``, never an error (:data:`mexpr.corpora.CLASS_MAPS`).
    errors
        ``"raise"``: unusable rows are reported together in one :class:`DatasetError`;
        ``"skip"``: they are dropped and recorded in ``df.attrs["skipped"]`` (a list of dicts).
    verify
        Frame integrity check: ``"header"`` (start/end markers, fast), ``"decode"`` (decode
        every frame) or ``"none"``.

    Returns
    -------
    pandas.DataFrame
        One row per clip with columns :data:`OUTPUT_COLUMNS`; ``frames`` is the tuple of frame
        paths from onset to offset in temporal order, ``label`` the class in ``classes``.
        ``df.attrs["quirks"]`` counts the clips whose known quirks were absorbed (per corpus and
        quirk; :data:`mexpr.corpora.QUIRKS`).
    """
    from mexpr import corpora

    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    roots = [Path(r) for r in roots]
    if not roots:
        raise DatasetError("no dataset root given")
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}")
    if verify not in VERIFY:
        raise ValueError(f"verify must be one of {', '.join(VERIFY)}, not {verify!r}")
    if variant not in ("auto", "raw", "cropped"):
        raise ValueError(f"variant must be 'auto', 'raw' or 'cropped', not {variant!r}")
    if classes not in corpora.CLASS_SETS:
        raise ValueError(f"classes must be one of {sorted(corpora.CLASS_SETS)}, not {classes!r}")
    class_maps = {ds: corpora.class_map(ds, classes) for ds in corpora.CLASS_MAPS}
    # a CASME sheet may use the other CASME's labels (the paper merges them): one map for both
    casme = (EMOTION_TO_CLASS if classes == "paper" else class_maps["casme1"] | class_maps["casme2"]) | {}
    class_maps["casme1"] = class_maps["casme2"] = dict(casme)
    if isinstance(unknown, Mapping):
        valid = corpora.CLASS_SETS[classes]
        bad = {k: v for k, v in unknown.items() if v not in valid}
        if bad:
            raise ValueError(f"unknown= maps to classes not in {valid}: {bad}")
        for m in class_maps.values():
            m.update({normalise_label(k): v for k, v in unknown.items()})
    elif unknown not in ("error", "skip"):
        raise ValueError(f"unknown must be 'error', 'skip' or a mapping, not {unknown!r}")

    records: list[dict] = []
    problems: list[dict] = []
    for root in roots:
        recs, probs = _load_root(root, dataset, variant, class_maps, verify)
        records.extend(recs)
        problems.extend(probs)

    fatal = [p for p in problems if not (unknown == "skip" and p.get("label")) and not p.get("dropped")]
    if fatal and errors == "raise":
        problems = fatal
        unknown_labels = sorted({p["label"] for p in problems if p.get("label")})
        head = f"{len(problems)} unusable row(s) in {', '.join(str(r) for r in roots)}"
        if unknown_labels:
            head += (
                f"; unknown emotion label(s) {unknown_labels} (known: {sorted({e for m in class_maps.values() for e in m})};"
                " pass unknown={label: class} to map them or unknown='skip' to skip them)"
            )
        head += "; to skip unusable rows and record them, pass errors='skip' (on the command line: mexpr info --skip)"
        raise DatasetError(head, problems)
    if not records:
        raise DatasetError(
            f"no usable clips in {', '.join(str(r) for r in roots)}" + (f" ({len(problems)} row(s) skipped)" if problems else ""),
            problems,
        )
    df = pd.DataFrame.from_records(records, columns=OUTPUT_COLUMNS)
    df = df.sort_values(["dataset", "subject", "clip"], kind="stable").reset_index(drop=True)
    df.attrs["skipped"] = problems
    df.attrs["roots"] = [str(r) for r in roots]
    df.attrs["classes"] = classes
    df.attrs["quirks"] = _quirk_counts(df)
    return df


def _quirk_counts(df: pd.DataFrame) -> list[dict]:
    """``[{corpus, quirk, clips, absorbed}]``: how many clips' notes name each known quirk."""
    from mexpr import corpora

    out = []
    for q in corpora.QUIRKS:
        n = int(((df["dataset"] == q.corpus) & df["notes"].str.contains(f"quirk {q.name}", regex=False)).sum())
        if n:
            out.append({"corpus": q.corpus, "quirk": q.name, "clips": n, "absorbed": q.absorbed})
    return out


def _load_root(root, dataset, variant, class_maps, verify):
    from mexpr import corpora

    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root does not exist or is not a folder")
    if dataset not in ("casme1", "casme2"):
        found = corpora.detect(root)
        if dataset is not None and (found is None or found[0] != dataset):
            if dataset not in FPS:
                raise ValueError(f"dataset must be one of {sorted(FPS)}, not {dataset!r}")
            raise DatasetError(
                f"{root}: not a {dataset} root in its distributed layout (docs/corpora.md; found {found[0] if found else 'no such corpus'})"
            )
        if found is not None:
            return corpora.load_root(root, found[0], found[1], variant, class_maps, verify)
    sheets = find_sheets(root)
    if not sheets:
        raise DatasetError(
            f"{root}: no coding sheet found (looked for .xlsx/.xls/.csv files with columns "
            "Subject, Filename, OnsetFrame/OnsetF, ApexFrame/ApexF1, OffsetFrame/OffsetF, "
            "Estimated Emotion/Emotion), nor the layout of SAMM (SAMM_Micro_FACS_Codes_v2.xlsx beside the SAMM/ folders), "
            "SMIC-HS (s<n>/micro/<emotion>/<clip>/ folders) or CAS(ME)³ part A (its label sheet beside the spNO.<n>/ folders); "
            "give the folder that holds both the sheet and the frame folders (docs/corpora.md)"
        )
    index = _SubjectIndex.build(root, variant)
    records: list[dict] = []
    problems: list[dict] = []
    seen: dict[tuple, int] = {}
    for sheet in sheets:
        table = _read_table(sheet)
        cols = _map_columns(table.columns)
        missing = [f for f in _REQUIRED if f not in cols]
        if missing:
            wanted = {f: "/".join(_COLUMN_ALIASES[f]) for f in missing}
            raise DatasetError(
                f"{sheet}: coding sheet is missing column(s) {missing} (accepted headers: {wanted}); found columns: {[str(c) for c in table.columns]}"
            )
        ds = dataset or _detect_dataset(table.columns, sheet)
        if ds not in FPS:
            raise ValueError(f"dataset must be one of {sorted(FPS)}, not {ds!r}")
        for i, row in enumerate(table.to_dict("records")):
            excel_row = i + 2  # header is row 1
            if all(is_blank(row.get(cols[f])) for f in ("subject", "filename")):
                continue  # trailing blank rows are common in hand-edited sheets
            rec, prob = _load_row(root, index, sheet, excel_row, row, cols, ds, class_maps[ds], verify)
            if prob:
                problems.append(prob)
                continue
            key = (rec["dataset"], rec["subject"], rec["clip"])
            if key in seen:
                prev = records[seen[key]]
                rec["notes"] = "; ".join(x for x in (rec["notes"], f"also in {Path(prev['sheet']).name}; the row of {sheet.name} is used") if x)
                records[seen[key]] = rec
            else:
                seen[key] = len(records)
                records.append(rec)
    return records, problems


def _load_row(root, index, sheet, excel_row, row, cols, ds, class_map, verify):
    from mexpr.corpora import emotion_class

    subject_cell = row.get(cols["subject"])
    filename = "" if is_blank(row.get(cols["filename"])) else str(row.get(cols["filename"])).strip()
    prob = {"sheet": str(sheet), "row": excel_row, "subject": str(subject_cell), "clip": filename}

    def fail(reason, **extra):
        return None, {**prob, "reason": reason, **extra}

    number, err = _parse_subject(subject_cell)
    if err:
        return fail(err)
    subject = f"sub{number:02d}"
    prob["subject"] = subject
    err = safe_component(filename)
    if err:
        return fail(err)

    raw_label = row.get(cols["emotion"])
    emotion = normalise_label(raw_label) if not is_blank(raw_label) else ""
    label, why = emotion_class(emotion, raw_label, class_map, ds)
    if why:
        return fail(**why)

    onset, offset = to_int(row.get(cols["onset"])), to_int(row.get(cols["offset"]))
    if onset is None or offset is None:
        return fail(f"onset/offset must be frame numbers, got {row.get(cols['onset'])!r}/{row.get(cols['offset'])!r}")
    if onset >= offset:
        return fail(f"onset {onset} is not before offset {offset}")
    apex_cell = row.get(cols["apex"])
    apex = to_int(apex_cell)
    if apex is not None and not onset <= apex <= offset:
        return fail(f"apex {apex} is outside onset..offset {onset}..{offset}")

    subject_dirs = index.dirs.get(number)
    if not subject_dirs:
        return fail(f"no folder {subject} under {root}")
    clip_dir = None
    for sd in subject_dirs:
        cand = sd / filename
        if cand.is_dir():
            clip_dir = cand
            break
        matches = [p for p in sd.iterdir() if p.is_dir() and p.name.lower() == filename.lower()]
        if matches:
            clip_dir = matches[0]
            break
    if clip_dir is None:
        return fail(f"folder {subject}/{filename} not found under {root}")
    try:
        clip_dir.resolve().relative_to(root.resolve())
    except ValueError:
        return fail(f"folder {clip_dir} resolves outside the dataset root {root}")

    return clip_record(
        root,
        ds,
        FPS[ds],
        subject,
        clip_dir.name,
        clip_dir,
        onset,
        apex,
        offset,
        _cell(row, cols, "action_units"),
        emotion,
        label,
        sheet,
        excel_row,
        str(apex_cell).strip(),
        [],
        verify,
        prob,
    )


def _cell(row, cols, field) -> str:
    value = row.get(cols[field]) if field in cols else None
    return "" if is_blank(value) else str(value).strip()


# --------------------------------------------------------------------------------------------
# summaries


def synth_info(root: str | os.PathLike) -> dict | None:
    """The generation record (``synth.json``) of a synthetic root, or None for real data."""
    p = Path(root) / "synth.json"
    return json.loads(p.read_text()) if p.is_file() else None


def clip_keys(df: pd.DataFrame) -> pd.Series:
    """Each clip's ``"subject_id/clip"`` key (e.g. ``"casme2/sub01/EP02_01f"``), aligned with ``df``."""
    return df["subject_id"].astype(str) + "/" + df["clip"].astype(str)


def counts_table(df: pd.DataFrame, scale: float | None = None) -> pd.DataFrame:
    """Per-dataset, per-emotion clip counts of CASME I / II beside Table 3 (and Table 3 × ``scale``);
    the other corpora's are :func:`mexpr.corpora.emotion_table`'s."""
    df = df[df["dataset"].isin(list(TABLE3))]
    rows = []
    present = sorted(set(df["dataset"]) & set(TABLE3)) or sorted(TABLE3)
    for ds in present:
        expected = scaled_counts(ds, scale) if scale is not None else None
        for emotion, paper in TABLE3[ds].items():
            n = int(((df["dataset"] == ds) & (df["emotion"] == emotion)).sum())
            row = {"dataset": ds, "emotion": emotion, "class": EMOTION_TO_CLASS[emotion], "clips": n, "table3": paper}
            if expected is not None:
                row[f"table3 x {scale:g}"] = expected[emotion]
            rows.append(row)
    extra = df[~df["emotion"].isin([e for d in TABLE3.values() for e in d])]
    for (ds, emotion), g in extra.groupby(["dataset", "emotion"]):
        rows.append({"dataset": ds, "emotion": emotion, "class": g["label"].iloc[0], "clips": len(g), "table3": 0})
    return pd.DataFrame(rows)


def class_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per-class clip counts of CASME I / II per dataset and in total, beside Table 3's class totals."""
    df = df[df["dataset"].isin(list(TABLE3))]
    rows = []
    for cls in CLASSES:
        row = {"class": cls}
        for ds in sorted(TABLE3):
            row[ds] = int(((df["dataset"] == ds) & (df["label"] == cls)).sum())
        row["total"] = int((df["label"] == cls).sum())
        row["table3"] = sum(n for d in TABLE3.values() for e, n in d.items() if EMOTION_TO_CLASS[e] == cls)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# evaluation splits (docs/DESIGN.md §3, §7)

PROTOCOLS = ("paper", "subject3", "loso", "megc3")


def protocol_classes(protocol: str) -> list[int]:
    """The class indices (into :data:`CLASSES`) a protocol predicts: all four, or for ``"megc3"``
    the MEGC 2019 composite's Negative, Positive and Surprise."""
    from mexpr.corpora import COMPOSITE_CLASSES

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    return [CLASSES.index(c) for c in COMPOSITE_CLASSES] if protocol == "megc3" else list(range(len(CLASSES)))


def protocol_table(df: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """The clips a protocol evaluates, labelled in its classes: ``df`` itself, or for ``"megc3"``
    the SMIC, CASME II and SAMM clips whose emotion has a composite class, relabelled
    (:func:`mexpr.corpora.relabel`; CASME I, CAS(ME)³ and e.g. CASME II's others are left out)."""
    from mexpr.corpora import relabel

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    return relabel(df, "megc3") if protocol == "megc3" else df


def check_folds(folds, n_folds: int, protocol: str, error: type[ValueError] | type[RuntimeError] = ValueError) -> list[int]:
    """``folds`` (None: all ``n_folds`` of ``protocol``) as a list of fold indices, or ``error``
    naming those that do not exist."""
    folds = list(range(n_folds)) if folds is None else [int(k) for k in folds]
    bad = [k for k in folds if not 0 <= k < n_folds]
    if bad:
        raise error(f"fold(s) {bad} do not exist: protocol {protocol!r} has {n_folds} fold(s) (0..{n_folds - 1})")
    return folds


def splits(df: pd.DataFrame, protocol: str = "paper", seed: int = 0, folds: int = 3, test_fraction: float = 0.25) -> list[dict]:
    """Train/test folds of the clip table ``df`` (one row per clip; needs ``label`` and, for the
    subject-independent protocols, ``subject_id``).  Returns one ``{"fold", "train", "test"}`` per
    fold, ``train``/``test`` being positional index arrays into ``df``.

    - ``"paper"``: what Table 4 and Figure 7 imply (docs/DESIGN.md §3): ``folds`` stratified random
      splits, each test set holding ``floor(test_fraction * n)`` (at least 1) clips of every class,
      the test sets disjoint.  For the paper's counts this gives N31 O58 P10 S11 = 110 clips per
      test set, as its accuracies (k/110) and Figure 7 (k/93, k/30, k/33) require.  Subjects are not
      kept apart, as in the paper.
    - ``"subject3"``: subject-grouped ``folds``-fold; no subject is in both sets.  Subjects are
      shuffled by ``seed`` and dealt to the fold with the fewest clips so far.
    - ``"loso"``: leave one subject out, one fold per subject (sorted by subject).
    - ``"megc3"``: the MEGC 2019 composite (See et al. 2019): leave one subject out over the union
      of the subjects of SMIC, CASME II and SAMM (``subject_id`` keeps the corpora apart), three
      classes.  ``df`` must be the composite's table (:func:`protocol_table`), so that no clip the
      composite leaves out, nor a four-class label, enters a fold.

    The same ``seed`` gives the same folds.
    """
    import numpy as np

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    n = len(df)
    if n == 0:
        raise ValueError("no clips to split")
    labels = df["label"].to_numpy()
    if protocol == "megc3":
        from mexpr.corpora import COMPOSITE_CLASSES, COMPOSITE_CORPORA

        bad = sorted(set(map(str, labels)) - set(COMPOSITE_CLASSES))
        if "dataset" in df.columns:
            bad += [f"corpus {d}" for d in sorted(set(df["dataset"]) - set(COMPOSITE_CORPORA))]
        if bad:
            raise ValueError(
                f"protocol 'megc3' splits the composite's clips only (SMIC, CASME II, SAMM; {', '.join(COMPOSITE_CLASSES)}), "
                f"found {bad}; pass datasets.protocol_table(df, 'megc3')"
            )
    rng = np.random.default_rng([int(seed), PROTOCOLS.index(protocol)])
    tests: list[np.ndarray] = []
    if protocol == "paper":
        if not 0 < test_fraction * folds <= 1:
            raise ValueError(f"{folds} disjoint test sets of {test_fraction:.0%} each do not fit in the data")
        parts: list[list[int]] = [[] for _ in range(folds)]
        for cls in CLASSES:
            idx = np.flatnonzero(labels == cls)
            if len(idx) == 0:
                continue
            q = max(1, int(math.floor(test_fraction * len(idx))))
            if q * folds > len(idx):
                raise ValueError(f"class {cls!r} has {len(idx)} clip(s): too few for {folds} disjoint test sets")
            idx = rng.permutation(idx)
            for k in range(folds):
                parts[k].extend(idx[k * q : (k + 1) * q].tolist())
        tests = [np.sort(np.array(p, dtype=int)) for p in parts]
    else:
        if "subject_id" not in df.columns:
            raise ValueError(f"protocol {protocol!r} needs a subject_id column")
        subjects = df["subject_id"].astype(str).to_numpy()
        uniq = sorted(set(subjects))
        if protocol in ("loso", "megc3"):
            tests = [np.flatnonzero(subjects == s) for s in uniq]
        else:
            if len(uniq) < folds:
                raise ValueError(f"{len(uniq)} subject(s): too few for {folds} subject-grouped folds")
            sizes = {s: int((subjects == s).sum()) for s in uniq}
            groups: list[list[str]] = [[] for _ in range(folds)]
            load = [0] * folds
            for s in rng.permutation(uniq):
                k = int(np.argmin(load))
                groups[k].append(str(s))
                load[k] += sizes[s]
            tests = [np.flatnonzero(np.isin(subjects, g)) for g in groups]
    out = []
    for k, test in enumerate(tests):
        mask = np.ones(n, bool)
        mask[test] = False
        out.append({"fold": k, "train": np.flatnonzero(mask), "test": np.asarray(test, dtype=int)})
    return out
