"""Run the notebook series with papermill (``make reproduce``, ``python -m mexpr reproduce``).

Each notebook of ``notebooks/`` is executed in order into ``runs/<name>/notebooks/`` with the
run's parameters injected into its ``parameters`` cell.  A notebook that already ran to the end
with the same parameters and the same source is not run again, so an interrupted reproduction
resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

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
]

#: Profiles: what ``make reproduce PROFILE=...`` means for each stage.
PROFILES = {
    # synth_scale: Table 3 counts x scale; align_clips: clips scored per alignment mode (notebook 01);
    # flow_bench_clips: clips for the live flow accuracy check (notebook 02)
    "quick": {"synth_scale": 0.02, "align_clips": 4, "flow_bench_clips": 2},  # tests: 2 clips per emotion
    "default": {"synth_scale": 1.0, "align_clips": 40, "flow_bench_clips": 10},  # make reproduce on 2 cores
    "paper": {"synth_scale": 1.0, "align_clips": 120, "flow_bench_clips": 30},  # full scale (GPU for training)
}


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def notebook_dir() -> Path:
    return repo_root() / "notebooks"


def _digest(path: Path, params: dict) -> str:
    h = hashlib.sha256(path.read_bytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()[:16]


def run_notebook(name: str, run_dir: str | os.PathLike, parameters: dict, force: bool = False, log=print) -> Path:
    """Execute ``notebooks/<name>`` with papermill into ``<run_dir>/notebooks/<name>``.

    Only the ``parameters`` the notebook declares in its ``parameters`` cell are passed.
    Skipped when a previous execution with the same source and parameters finished.
    Raises papermill's ``PapermillExecutionError`` (naming the failing cell) on error.
    """
    import papermill as pm

    src = notebook_dir() / name
    if not src.is_file():
        raise FileNotFoundError(f"notebook not found: {src}")
    run_dir = Path(run_dir)
    out_dir = run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / name
    marker = out_dir / (name + ".done")
    declared = set(pm.inspect_notebook(str(src)))
    parameters = {k: v for k, v in parameters.items() if k in declared}  # each notebook takes what it declares
    digest = _digest(src, parameters)
    if not force and out.is_file() and marker.is_file() and marker.read_text().strip() == digest:
        log(f"[skip] {name}: already executed with these parameters ({out})")
        return out
    marker.unlink(missing_ok=True)
    t0 = time.time()
    log(f"[run ] {name} ...")
    pm.execute_notebook(
        str(src),
        str(out),
        parameters=parameters,
        cwd=str(repo_root()),
        kernel_name="python3",
        progress_bar=False,
        log_output=False,
    )
    marker.write_text(digest + "\n")
    log(f"[done] {name} in {time.time() - t0:.0f} s -> {out}")
    return out


def run_series(
    run_dir: str | os.PathLike,
    profile: str = "default",
    seed: int = 0,
    data_dirs: list[str] | None = None,
    jobs: int | None = None,
    notebooks: list[str] | None = None,
    force: bool = False,
    log=print,
) -> list[Path]:
    """Run the notebook series (or ``notebooks``) into ``run_dir``; returns the executed paths."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, not {profile!r}")
    run_dir = Path(run_dir).resolve()
    params = {
        "run_dir": str(run_dir),
        "profile": profile,
        "seed": int(seed),
        "data_dirs": [str(Path(d).resolve()) for d in (data_dirs or [])],
        "jobs": int(jobs or os.cpu_count() or 1),
    }
    done = []
    for name in notebooks or SERIES:
        done.append(run_notebook(name, run_dir, params, force=force, log=log))
    return done


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
