"""Small file-writing helpers whose output is byte-identical for identical content, and the
parallel loop with a progress bar that the batch stages share.

``zipfile`` stamps every entry with the current time, so ``np.savez`` and openpyxl's ``.xlsx``
files differ from run to run.  These helpers fix the stamps so that the same seed writes the same
bytes (a requirement of :mod:`mexpr.synth`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np

_EPOCH = (1980, 1, 1, 0, 0, 0)


def _zip_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file of its own (:func:`replacing`), so a
    crash never leaves half a file and two writers never share a temporary file."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: The process' umask, read once at import: the files :func:`replacing` renames into place get the
#: mode an ordinary ``open(path, "w")`` would give them (others on a shared filesystem can read them).
_UMASK = _umask()


@contextlib.contextmanager
def replacing(path: str | os.PathLike, suffix: str = ".part"):
    """Yield a new temporary path beside ``path`` (a unique name in the same folder, ending in
    ``suffix``: some writers, e.g. Keras' ``save_weights``, insist on an extension); when the block
    ends without an error the file written there replaces ``path`` in one step (``os.replace``), on an
    error it is removed.  A writer killed half-way (a lost Dask worker, a power cut) so never leaves
    half a file under ``path``, and two writers of the same file never share a temporary one."""
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's file is private (0600): give it an ordinary new file's mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8 (JSON records, CSV tables)."""
    atomic_write_bytes(path, text.encode())


def save_npz(path: str | os.PathLike, level: int = 6, **arrays) -> None:
    """Like ``np.savez_compressed`` but deterministic (fixed zip timestamps, sorted entries);
    ``level`` is the deflate level (1 fast … 9 small)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for key in sorted(arrays):
            arr = np.asarray(arrays[key])
            if arr.dtype == object:
                raise TypeError(f"save_npz: array {key!r} has dtype object; convert it first")
            member = io.BytesIO()
            np.lib.format.write_array(member, arr, allow_pickle=False)
            zf.writestr(_zip_entry(key + ".npy"), member.getvalue(), compresslevel=level)
    atomic_write_bytes(path, buf.getvalue())


_CORE_DATES = re.compile(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)")


def save_xlsx(header: list[str], rows: list[list], path: str | os.PathLike, sheet_name: str = "Sheet1", preamble: list[list] = ()) -> None:
    """Write a table to ``.xlsx`` deterministically.

    Header names that are ``""`` are written as blank header cells, as in the real CASME II sheet
    (pandas reads them back as ``Unnamed: N``).  openpyxl stamps the document with the current
    time and zipfile stamps every entry; both are replaced by a fixed date.  ``preamble``: rows
    written above the header (SAMM's sheet opens with a title block).
    """
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = sheet_name
    for row in preamble:
        ws.append([_plain(v) for v in row] or [None])
    ws.append([None if c == "" else str(c) for c in header])
    for row in rows:
        ws.append([None if (isinstance(v, str) and v == "") else _plain(v) for v in row])
    raw = io.BytesIO()
    wb.save(raw)
    raw.seek(0)
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in sorted(zin.namelist()):
            data = zin.read(name)
            if name == "docProps/core.xml":
                data = _CORE_DATES.sub(rb"\g<1>2000-01-01T00:00:00Z\g<3>", data)
            zout.writestr(_zip_entry(name), data)
    atomic_write_bytes(path, out.getvalue())


def _plain(v):
    """numpy scalars -> Python scalars (openpyxl rejects numpy types)."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def thread_map(fn, items, threads: int = 2) -> list:
    """``[fn(x) for x in items]`` in ``threads`` threads, in order: for reading and coding clips,
    which is mostly zlib and NumPy and so runs in parallel threads (no process start, nothing pickled)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


def parallel(tasks, jobs: int | None = None, desc: str = "", progress: bool = True, unit: str = "clip", postfix=None):
    """Run joblib ``delayed`` ``tasks`` in ``jobs`` processes (default: all cores), yielding their
    results in order while a tqdm bar counts them; ``postfix(results so far)`` returns a dict
    shown beside the bar.

    Inside :func:`mexpr.scale.scheduler` the same tasks go to its Dask cluster instead, through
    joblib's own Dask backend (``jobs`` is then the cluster's: every worker takes tasks); without
    it this is plain joblib on this machine, as it always was."""
    from joblib import Parallel
    from tqdm.auto import tqdm

    from mexpr import scale

    tasks = list(tasks)
    jobs = jobs or os.cpu_count() or 1
    done: list = []
    with tqdm(total=len(tasks), desc=desc, unit=unit, disable=not progress) as bar, scale.joblib_backend():
        for res in Parallel(n_jobs=min(jobs, max(1, len(tasks))), return_as="generator")(tasks):
            bar.update(1)
            if postfix is not None:
                done.append(res)
                bar.set_postfix(postfix(done), refresh=False)
            yield res
