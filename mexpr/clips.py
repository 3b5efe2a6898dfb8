"""A clip folder and its frames, the part every corpus' loader shares (:mod:`mexpr.datasets` for
CASME I / II, :mod:`mexpr.corpora` for SAMM, SMIC-HS and CAS(ME)³): frame files ordered by the
number in their name, the frames inside onset..offset, integrity checks, a missing apex estimated
and flagged, the record of one clip, and :class:`DatasetError`, the one error of a dataset that
cannot be used.  (Its names are re-exported by :mod:`mexpr.datasets`.)"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


#: How :func:`load` checks the frame files: their image header, a full decode, or not at all.
VERIFY = ("header", "decode", "none")


class DatasetError(ValueError):
    """A dataset root or coding sheet cannot be used.

    ``problems`` lists every unusable row (one dict per row: sheet, row, subject, clip, reason),
    so that all of them are reported at once, not one error at a time.
    """

    def __init__(self, message: str, problems: list[dict] | None = None):
        self.problems = problems or []
        if self.problems:
            lines = [message]
            for p in self.problems[:50]:
                where = f"{Path(p['sheet']).name} row {p['row']}" if p.get("sheet") else "?"
                who = "/".join(str(x) for x in (p.get("subject"), p.get("clip")) if x)
                lines.append(f"  - {where} ({who}): {p['reason']}")
            if len(self.problems) > 50:
                lines.append(f"  ... and {len(self.problems) - 50} more")
            message = "\n".join(lines)
        super().__init__(message)


def normalise_label(label: object) -> str:
    """Emotion labels are matched case- and space-insensitively: ``' Happiness '`` -> ``happiness``."""
    return re.sub(r"[\s_]+", " ", str(label)).strip().lower()


def frame_number(path: str | os.PathLike) -> int | None:
    """The frame index of a frame file: the last integer in its stem (``img46.jpg`` -> 46).

    Frames must be ordered by this number, never as strings (``img10`` sorts before ``img9``).
    """
    found = re.findall(r"\d+", Path(path).stem)
    return int(found[-1]) if found else None


def to_int(value) -> int | None:
    """Parse a frame number cell: 46, 46.0, '46' -> 46; '/', '', NaN -> None."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value) or value != int(value):
            return None
        return int(value)
    if isinstance(value, int):
        return value
    s = str(value).strip()
    if re.fullmatch(r"\d+(\.0+)?", s):
        return int(float(s))
    return None


def is_blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def safe_component(name: str) -> str | None:
    """Reason why ``name`` is not a plain folder name inside the root, or None when it is."""
    if name in ("", ".", "..") or "/" in name or "\\" in name or os.path.isabs(name) or ".." in name:
        return f"Filename {name!r} would escape the dataset root"
    return None


def _jpeg_ok(path: Path) -> str | None:
    """Cheap integrity check of a frame file: non-empty, right magic bytes, JPEG end marker."""
    try:
        size = path.stat().st_size
        if size == 0:
            return "empty file"
        with open(path, "rb") as fh:
            head = fh.read(8)
            fh.seek(max(0, size - 64))
            tail = fh.read()
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return signature_problem(head, tail, path.suffix)


def signature_problem(head: bytes, tail: bytes, suffix: str) -> str | None:
    """Why a frame file whose first bytes are ``head`` and last bytes ``tail`` is not a complete
    JPEG/PNG (judged by ``suffix``), or None when it looks whole."""
    if not head:
        return "empty file"
    suffix = suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        if head[:2] != b"\xff\xd8":
            return "not a JPEG (bad start marker)"
        if b"\xff\xd9" not in tail[-64:]:
            return "truncated JPEG (no end marker)"
    elif suffix == ".png" and head[:8] != b"\x89PNG\r\n\x1a\n":
        return "not a PNG (bad signature)"
    return None


def _decode_ok(path: Path) -> str | None:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if img is not None and img.size else "cannot be decoded"


def clip_record(root, ds, fps, subject, clip, clip_dir, onset, apex, offset, aus, emotion, label, sheet, excel_row, apex_cell, notes, verify, prob):
    """One clip's record (:data:`OUTPUT_COLUMNS`) from its folder and onset/apex/offset, or
    ``(None, problem)``: the frames present inside onset..offset in frame-number order (range
    mismatches and gaps noted), checked by ``verify``; a missing apex (``apex`` None, the sheet's
    cell ``apex_cell``) is estimated as the middle frame and flagged.  Shared by every corpus'
    loader (CASME I / II in :mod:`mexpr.datasets`, the others in :mod:`mexpr.corpora`)."""

    def fail(reason, **extra):
        return None, {**prob, "reason": reason, **extra}

    notes = list(notes)
    numbered = []
    for p in clip_dir.iterdir():
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            n = frame_number(p)
            if n is not None:
                numbered.append((n, p))
    numbered.sort()
    dup = sorted({n for (n, _), (m, _) in zip(numbered, numbered[1:]) if n == m})
    if dup:
        return fail(f"several frame files share frame number(s) {dup[:5]} in {clip_dir}")
    if not numbered:
        return fail(f"no frame images in {clip_dir}")
    present = [n for n, _ in numbered]
    inside = [(n, p) for n, p in numbered if onset <= n <= offset]
    if present[0] > onset or present[-1] < offset:
        notes.append(f"sheet range {onset}-{offset} differs from folder frames {present[0]}-{present[-1]}")
    gaps = sorted(set(range(onset, offset + 1)) - set(present) & set(range(present[0], present[-1] + 1)))
    if gaps:
        notes.append(f"{len(gaps)} frame(s) missing inside the range: {_ranges(gaps)}")
    if len(inside) < 2:
        return fail(f"fewer than 2 frames inside onset..offset {onset}..{offset} in {clip_dir} (folder has frames {present[0]}..{present[-1]})")
    if verify != "none":
        check = _jpeg_ok if verify == "header" else _decode_ok
        for _, p in inside:
            why = check(p)
            if why:
                return fail(f"corrupt frame {p}: {why}")

    apex_estimated = apex is None
    if apex_estimated:
        apex = inside[len(inside) // 2][0]
        notes.append(f"apex not given ({apex_cell!r}); estimated as the middle frame {apex}")
    rec = {
        "dataset": ds,
        "subject": subject,
        "clip": clip,
        "fps": fps,
        "onset": onset,
        "apex": apex,
        "offset": offset,
        "action_units": aus,
        "emotion": emotion,
        "label": label,
        "frames": tuple(str(p) for _, p in inside),
        "n_frames": len(inside),
        "apex_estimated": apex_estimated,
        "subject_id": f"{ds}/{subject}",
        "clip_dir": str(clip_dir),
        "sheet": str(sheet) if sheet else "",
        "sheet_row": excel_row,
        "notes": "; ".join(notes),
    }
    return rec, None


def _ranges(nums: list[int]) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'"""
    out, start, prev = [], nums[0], nums[0]
    for n in nums[1:] + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(f"{start}-{prev}" if prev > start else f"{start}")
        if n is not None:
            start = prev = n
    return ", ".join(out)
