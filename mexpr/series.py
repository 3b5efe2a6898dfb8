"""Run the notebook series with papermill (``make reproduce``, ``python -m mexpr reproduce``).

Each notebook of ``notebooks/`` is executed in order into ``runs/<name>/notebooks/`` with the
run's parameters injected into its ``parameters`` cell; its kernel's own messages go to
``runs/<name>/logs/<notebook>.log``.  A notebook that already ran to the end with the same cell
sources and parameters, after the same notebook before it, is not run again, so an interrupted
reproduction resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from mexpr import settings

#: The series, in order.  Later issues add their notebooks here.
SERIES = [
    "00_dataset.ipynb",
    "01_preprocessing.ipynb",
    "02_munsell_flow.ipynb",
    "03_model_build.ipynb",
    "04_training.ipynb",
    "05_fusion.ipynb",
    "06_confusion_matrices.ipynb",
    "07_baselines.ipynb",
    "08_what_makes_dtscnn_learn.ipynb",
    "09_inside_dtscnn.ipynb",
    "10_spotting.ipynb",
    "11_from_video_to_timeline.ipynb",
]


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def notebook_dir() -> Path:
    return repo_root() / "notebooks"


def _digest(path: Path, params: dict, upstream: str = "") -> str:
    """What a finished execution is keyed by: the notebook's cell sources (not its outputs or
    metadata), the parameters it was given, and the digest of the notebook before it in the series
    (so re-running one notebook re-runs the ones that read its output; their own caches make that
    cheap)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    h = hashlib.sha256()
    for cell in nb.cells:
        h.update(cell.cell_type.encode() + b"\0" + cell.source.encode() + b"\0")
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(upstream.encode())
    return h.hexdigest()[:16]


def _say(text: str, end: str = "\n") -> None:
    print(text, end=end, flush=True)


def finished_digest(run_dir: str | os.PathLike, name: str) -> str:
    """The digest of ``name``'s last finished execution in ``run_dir`` ("" if none)."""
    out_dir = Path(run_dir) / "notebooks"
    marker = out_dir / (name + ".done")
    if (out_dir / name).is_file() and marker.is_file():
        return marker.read_text().strip()
    return ""


@contextlib.contextmanager
def _output_to(path: Path):
    """Send this process's and its children's (the kernel's) stdout and stderr to ``path`` (appended),
    at the file-descriptor level, so that library warnings printed by the kernel process land in the
    run's log instead of breaking the one-line progress."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "ab") as f:
        f.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
        f.flush()
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


#: Parameters that say where a notebook runs, not what it computes (left out of its digest).
_WHERE_NOT_WHAT = ("scheduler",)


def run_notebook(
    name: str,
    run_dir: str | os.PathLike,
    parameters: dict,
    force: bool = False,
    log=_say,
    upstream: str = "",
    label: str = "",
    src_dir: str | os.PathLike | None = None,
) -> Path:
    """Execute ``notebooks/<name>`` with papermill into ``<run_dir>/notebooks/<name>``.

    Only the ``parameters`` the notebook declares in its ``parameters`` cell are passed.
    Skipped when a previous execution with the same cell sources, parameters and ``upstream``
    digest finished.  Prints one progress line: ``label name ... done in N s`` (or ``skipped``).
    Raises papermill's ``PapermillExecutionError`` (naming the failing cell) on error; the
    partly executed notebook is kept at the output path to read.
    """
    import papermill as pm

    src = Path(src_dir or notebook_dir()) / name
    if not src.is_file():
        raise FileNotFoundError(f"notebook not found: {src}")
    run_dir = Path(run_dir)
    out_dir = run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / name
    marker = out_dir / (name + ".done")
    declared = set(pm.inspect_notebook(str(src)))
    parameters = {k: v for k, v in parameters.items() if k in declared}  # each notebook takes what it declares
    # where a notebook runs (its Dask scheduler) changes none of its results: not part of its digest
    digest = _digest(src, {k: v for k, v in parameters.items() if k not in _WHERE_NOT_WHAT}, upstream)
    head = f"{label} {name:<28}".lstrip()
    if not force and finished_digest(run_dir, name) == digest:
        log(f"{head} skipped: finished earlier with these parameters")
        return out
    marker.unlink(missing_ok=True)
    t0 = time.time()
    log(f"{head} running ...", end="")
    try:
        with _output_to(run_dir / "logs" / f"{Path(name).stem}.log"):  # the kernel's own messages, not the progress line
            pm.execute_notebook(
                str(src),
                str(out),
                parameters=parameters,
                cwd=str(repo_root()),
                kernel_name="python3",
                progress_bar=False,
                log_output=False,
            )
    except Exception:
        log(f" FAILED after {time.time() - t0:.0f} s")
        raise
    marker.write_text(digest + "\n")
    log(f" done in {time.time() - t0:.0f} s")
    return out


def run_series(
    run_dir: str | os.PathLike,
    profile: str = "default",
    seed: int = 0,
    data_dirs: list[str] | None = None,
    jobs: int | None = None,
    notebooks: list[str] | None = None,
    force: bool = False,
    log=_say,
    src_dir: str | os.PathLike | None = None,
    protocol: str | None = None,
    scheduler: str | None = None,
) -> list[Path]:
    """Run the notebook series (or ``notebooks``, in series order) into ``run_dir``, one progress
    line per notebook; returns the executed paths.  ``protocol`` (None: each notebook's own,
    ``"paper"``) is passed to the notebooks that take one; ``"megc3"`` also makes notebook 00 write
    (synthetic) or label (real) the MEGC composite: SMIC-HS, CASME II and SAMM, three classes.

    ``scheduler``: the notebooks' batch stages run on a Dask cluster (``docs/scale.md``): an
    existing one (``"tcp://host:8786"``) or, for ``"local:N"``, a ``LocalCluster`` started here for
    the whole series; each notebook that declares a ``scheduler`` parameter connects to it.  It is
    not part of a notebook's digest: a series run on a cluster resumes one run here, and back.

    Every notebook's run (ran or skipped, seconds, digest) is appended to
    ``<run_dir>/logs/reproduce.jsonl``.  A failing notebook raises ``RuntimeError`` naming it, the
    failing cell and the executed copy to read; what finished before it stays finished, so the
    same command resumes.
    """

    settings.profile(profile)  # a ValueError naming the valid ones
    run_dir = Path(run_dir).resolve()
    params = {
        "run_dir": str(run_dir),
        "profile": profile,
        "seed": int(seed),
        "data_dirs": [str(Path(d).resolve()) for d in (data_dirs or [])],
        "jobs": int(jobs or os.cpu_count() or 1),
    }
    if protocol is not None:
        from mexpr.corpora import COMPOSITE_CORPORA
        from mexpr.datasets import PROTOCOLS

        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
        params["protocol"] = protocol
        if protocol == "megc3":
            params |= {"corpora": list(COMPOSITE_CORPORA), "classes": "megc3"}
    names = list(notebooks or SERIES)
    unknown = [n for n in names if n not in SERIES]
    if unknown:
        raise ValueError(f"not in the series: {unknown}; the series is {SERIES}")
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        params["scheduler"] = _series_scheduler(scheduler, stack)
        return _run_each(run_dir, names, params, force, log, src_dir, logs)


def _series_scheduler(scheduler: str | None, stack: contextlib.ExitStack) -> str | None:
    """The scheduler address the notebooks connect to: ``None``, the address given, or that of a
    ``LocalCluster`` started for ``"local:N"`` (closed by ``stack``)."""
    from mexpr import scale

    spec = scale.parse(scheduler)
    if spec is None or spec[0] == "address":
        return spec and spec[1]
    cluster = stack.enter_context(scale.local_cluster(spec[1]))
    return cluster.scheduler_address


def _run_each(run_dir: Path, names: list[str], params: dict, force: bool, log, src_dir, logs: Path) -> list[Path]:
    from papermill.exceptions import PapermillExecutionError

    done, upstream = [], ""
    for i, name in enumerate(SERIES, 1):
        if name not in names:  # not asked for: chain on what finished earlier
            upstream = finished_digest(run_dir, name) or upstream
            continue
        t0 = time.time()
        before = finished_digest(run_dir, name)
        try:
            path = run_notebook(name, run_dir, params, force, log, upstream, f"[{i}/{len(SERIES)}]", src_dir)
        except PapermillExecutionError as exc:
            _record(logs, name, "failed", t0, "")
            raise RuntimeError(
                f"notebook {name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
                f"  read {run_dir / 'notebooks' / name} for the traceback; fix it and run the same command "
                f"again: the {i - 1} notebook(s) before it are not re-run"
            ) from None
        upstream = finished_digest(run_dir, name)
        _record(logs, name, "skipped" if before == upstream and not force else "ran", t0, upstream)
        done.append(path)
    return done


def evaluate_seeds(run_dir, profile: str, seeds, protocol: str = "paper", jobs: int | None = None, baselines: bool = True, log=_say):
    """The series' evaluation over several ``seeds`` on one run's data (pre-processing and flow
    are the run's, done once): per seed, DTSCNN on the paper's input and on ours and (with
    ``baselines``) the paper's three baselines on the profile's folds of ``protocol``, as notebooks
    06 and 07 evaluate them (a seed the series ran is read from its caches); each seed's Table 4 is
    kept in ``tables/seeds/`` and the mean ± std over seeds goes to
    ``tables/table4_<protocol>_seeds.md`` (:func:`mexpr.report.write_seeds`).  Returns that table."""
    from mexpr import evaluate, report, train

    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no seeds given")
    evaluations = {}
    for seed in seeds:
        t0 = time.time()
        cfg = train.config_for(profile, seed=seed, protocol=protocol)  # what Run(run_dir, profile, seed).config(...) gives
        folds = train.folds_of(run_dir, cfg, settings.profile(profile)["folds"])
        parts = [evaluate.evaluate(run_dir, cfg, folds=folds, jobs=jobs, verbose=0, progress=False)]
        ours = train.config_for(profile, input="mexpr", seed=seed, protocol=protocol)
        parts.append(report.relabel(evaluate.evaluate(run_dir, ours, folds=folds, jobs=jobs, verbose=0, progress=False), ours.label))
        if baselines:
            parts += [evaluate.evaluate_baseline(run_dir, m, protocol, seed, folds=folds, jobs=jobs, progress=False) for m in evaluate.BASELINES]
        evaluations[seed] = report.combine(parts)
        log(f"seed {seed}: {protocol}, {len(folds)} fold(s), evaluated in {time.time() - t0:.0f} s")
    return report.write_seeds(evaluations, run_dir, protocol)


def _record(logs: Path, name: str, status: str, t0: float, digest: str) -> None:
    row = {
        "notebook": name,
        "status": status,
        "seconds": round(time.time() - t0, 1),
        "digest": digest,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    with open(logs / "reproduce.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def enter_project() -> Path:
    """Make the repository root the working directory (JupyterLab starts a notebook's kernel in
    ``notebooks/``; papermill and ``make reproduce`` already start it at the root), so the relative
    paths of the ``parameters`` cell (``runs/...``, ``data/...``) mean the same thing everywhere.
    Walks up from the working directory to the folder holding mexpr's ``pyproject.toml``; if there
    is none (mexpr installed elsewhere), the working directory is left as it is.  Returns it."""
    here = Path.cwd()
    for d in (here, *here.parents):
        toml = d / "pyproject.toml"
        if toml.is_file() and (d / "notebooks").is_dir() and 'name = "mexpr"' in toml.read_text():
            os.chdir(d)
            return d
    return here


def publish_figures(run_dir: str | os.PathLike) -> list[Path]:
    """Copy the run's README figures (``<run_dir>/figures/readme/*``) into the repository's
    ``figures/`` folder."""
    import shutil

    src = Path(run_dir) / "figures" / "readme"
    dst = repo_root() / "figures"
    dst.mkdir(exist_ok=True)
    copied = []
    for f in sorted(src.glob("*")) if src.is_dir() else []:
        shutil.copy2(f, dst / f.name)
        copied.append(dst / f.name)
    return copied
