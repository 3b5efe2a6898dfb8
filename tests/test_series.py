"""``make reproduce``'s runner: one line per notebook, resume, re-running what depends on a change,
a clear error naming the failing notebook, the log, and the notebooks' working directory.

papermill itself is exercised by test_notebooks.py's quick run of the real series; here a stand-in
executor records what would run, so every case takes milliseconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from papermill.exceptions import PapermillExecutionError

from mexpr import series


def _tiny_series(folder):
    folder.mkdir()
    for name in series.SERIES:
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        params = nbformat.v4.new_code_cell('run_dir = "runs/x"\nprofile = "quick"\nseed = 0')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}"), params, nbformat.v4.new_code_cell("x = 1")]
        nbformat.write(nb, folder / name)
    return folder


@pytest.fixture
def executor(monkeypatch):
    """Records (notebook, parameters) per execution; ``fail`` names notebooks that raise."""
    import papermill

    calls, fail = [], set()

    def execute(src, out, parameters, **kw):
        name = os.path.basename(src)
        calls.append((name, parameters))
        os.write(2, f"[IPKernelApp] WARNING | from the kernel of {name}\n".encode())  # what a kernel prints itself
        if name in fail:
            raise PapermillExecutionError(2, 3, "x = 1", "ValueError", "no face found in sub01/EP02", [])
        nbformat.write(nbformat.read(src, as_version=4), out)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return calls, fail


def test_series_runs_in_order_one_line_each_then_resumes(tmp_path, executor, capfd):
    calls, _ = executor
    src, run, lines = _tiny_series(tmp_path / "nb"), tmp_path / "run", []

    def log(text, end="\n"):
        lines.append(text + end)

    paths = series.run_series(run, profile="quick", seed=3, src_dir=src, log=log)
    assert [c[0] for c in calls] == series.SERIES
    assert calls[0][1] == {"run_dir": str(run.resolve()), "profile": "quick", "seed": 3}  # only what it declares
    text = "".join(lines).splitlines()
    assert len(text) == len(series.SERIES)  # one progress line per notebook
    assert text[4].startswith(f"[5/{len(series.SERIES)}] 04_training.ipynb") and "done in" in text[4]
    assert all(p.is_file() for p in paths)
    assert "from the kernel of 04_training.ipynb" in (run / "logs" / "04_training.log").read_text()
    assert "WARNING" not in capfd.readouterr().err  # the kernel's messages went to the log, not the terminal

    calls.clear(), lines.clear()
    series.run_series(run, profile="quick", seed=3, src_dir=src, log=log)
    assert calls == []  # a second run redoes nothing
    assert all("skipped" in line for line in "".join(lines).splitlines())
    log_rows = [json.loads(r) for r in (run / "logs" / "reproduce.jsonl").read_text().splitlines()]
    assert [r["status"] for r in log_rows] == ["ran"] * len(series.SERIES) + ["skipped"] * len(series.SERIES)

    series.run_series(run, profile="quick", seed=4, src_dir=src, log=log)  # another seed: everything again
    assert len(calls) == len(series.SERIES)


def test_a_scheduler_reaches_the_notebooks_that_declare_it_and_is_not_part_of_their_digest(tmp_path, executor):
    calls, _ = executor
    src, run, quiet = _tiny_series(tmp_path / "nb"), tmp_path / "run", lambda *a, **k: None
    nb = nbformat.read(src / "04_training.ipynb", as_version=4)
    nb.cells[1].source += "\nscheduler = None"
    nbformat.write(nb, src / "04_training.ipynb")
    series.run_series(run, profile="quick", src_dir=src, log=quiet, scheduler="tcp://head:8786")
    given = dict(calls)
    assert given["04_training.ipynb"]["scheduler"] == "tcp://head:8786" and "scheduler" not in given["03_model_build.ipynb"]
    calls.clear()
    series.run_series(run, profile="quick", src_dir=src, log=quiet)  # where it ran is not what it computed: nothing to redo
    assert calls == []
    with pytest.raises(ValueError, match="did you mean tcp://head:8786"):
        series.run_series(run, profile="quick", src_dir=src, log=quiet, scheduler="head:8786")


def test_a_changed_notebook_reruns_itself_and_what_follows(tmp_path, executor):
    calls, _ = executor
    src, run = _tiny_series(tmp_path / "nb"), tmp_path / "run"
    series.run_series(run, profile="quick", src_dir=src, log=lambda *a, **k: None)
    nb = nbformat.read(src / "05_fusion.ipynb", as_version=4)
    nb.metadata["kernelspec"]["display_name"] = "Python (other)"  # metadata alone is not a change
    nbformat.write(nb, src / "05_fusion.ipynb")
    calls.clear()
    series.run_series(run, profile="quick", src_dir=src, log=lambda *a, **k: None)
    assert calls == []
    nb.cells[2].source = "x = 2"
    nbformat.write(nb, src / "05_fusion.ipynb")
    series.run_series(run, profile="quick", src_dir=src, log=lambda *a, **k: None)
    assert [c[0] for c in calls] == series.SERIES[5:]


def test_a_failing_notebook_is_named_and_the_rest_resumes(tmp_path, executor):
    calls, fail = executor
    src, run = _tiny_series(tmp_path / "nb"), tmp_path / "run"
    fail.add("02_munsell_flow.ipynb")
    with pytest.raises(RuntimeError, match=r"02_munsell_flow.ipynb failed in cell 3: ValueError: no face found") as e:
        series.run_series(run, profile="quick", src_dir=src, log=lambda *a, **k: None)
    assert str(run.resolve() / "notebooks" / "02_munsell_flow.ipynb") in str(e.value)
    assert [c[0] for c in calls] == series.SERIES[:3]  # stopped there
    fail.clear(), calls.clear()
    series.run_series(run, profile="quick", src_dir=src, log=lambda *a, **k: None)
    assert [c[0] for c in calls] == series.SERIES[2:]  # resumed at the failed one
    statuses = [json.loads(r)["status"] for r in (run / "logs" / "reproduce.jsonl").read_text().splitlines()]
    assert statuses[:3] == ["ran", "ran", "failed"]


def test_bad_profile_and_unknown_notebook_are_refused(tmp_path):
    with pytest.raises(ValueError, match="profile must be one of"):
        series.run_series(tmp_path, profile="huge")
    with pytest.raises(ValueError, match="not in the series"):
        series.run_series(tmp_path, notebooks=["99_extra.ipynb"])


def test_notebooks_find_the_repository_root_from_jupyterlab(tmp_path, monkeypatch):
    monkeypatch.chdir(series.notebook_dir())  # where JupyterLab starts a notebook's kernel
    assert series.enter_project() == series.repo_root() and os.getcwd() == str(series.repo_root())
    monkeypatch.chdir(tmp_path)  # mexpr used outside its repository: the working directory stays
    assert series.enter_project() == tmp_path and os.getcwd() == str(tmp_path)


def test_the_project_kernel_runs_a_notebook_from_jupyterlab():
    """``make lab``: the notebooks ask for the 'mexpr' kernel (installed into .venv by make); started
    as JupyterLab starts it, in notebooks/, it imports this mexpr and finds the repository root."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import start_new_kernel

    for name in series.SERIES:
        assert nbformat.read(series.notebook_dir() / name, as_version=4).metadata["kernelspec"]["name"] == "mexpr"
    specs = KernelSpecManager().find_kernel_specs()
    assert "mexpr" in specs, "the 'mexpr' kernel is not installed: run `make venv` (it runs ipykernel install)"
    km, kc = start_new_kernel(kernel_name="mexpr", cwd=str(series.notebook_dir()))
    try:
        out = []
        code = "import mexpr, sys; from mexpr.series import enter_project; print(enter_project(), sys.prefix, mexpr.__file__)"
        kc.execute_interactive(code, timeout=60, output_hook=lambda m: out.append(m["content"].get("text", "")))
        root, prefix, module = "".join(out).split()
        assert root == str(series.repo_root()) and module.startswith(str(series.repo_root()))
        assert os.path.realpath(prefix) == os.path.realpath(__import__("sys").prefix)  # the project's environment
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_import_mexpr_exposes_every_stage():
    code = (
        "import mexpr, pkgutil\n"
        "stages = sorted(m.name for m in pkgutil.iter_modules(mexpr.__path__) if not m.name.startswith('_'))\n"
        "missing = [s for s in stages if not hasattr(mexpr, s)]\n"
        "assert not missing, missing\n"
        "assert set(stages) <= set(dir(mexpr))\n"
        "print(len(stages))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip()) >= 14


def test_the_composite_protocol_reaches_the_notebooks_that_declare_it(tmp_path, executor):
    calls, _ = executor
    src = _tiny_series(tmp_path / "nb")
    for name in series.SERIES:  # each stand-in declares what its real notebook declares
        nb = nbformat.read(src / name, as_version=4)
        nb.cells[1].source += '\nprotocol = "paper"\ncorpora = ["casme2", "casme1"]\nclasses = "paper"'
        nbformat.write(nb, src / name)
    series.run_series(tmp_path / "run", profile="quick", src_dir=src, log=lambda *a, **k: None, protocol="megc3")
    assert all(p["protocol"] == "megc3" and p["corpora"] == ["smic", "casme2", "samm"] and p["classes"] == "megc3" for _, p in calls)
    with pytest.raises(ValueError, match="protocol must be one of"):
        series.run_series(tmp_path / "run2", profile="quick", src_dir=src, protocol="lofo")
    real = Path(series.__file__).resolve().parents[1] / "notebooks"
    declared = {n: nbformat.read(real / n, as_version=4) for n in ("00_dataset.ipynb", "04_training.ipynb", "06_confusion_matrices.ipynb")}
    params = {n: next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", [])) for n, nb in declared.items()}
    assert "corpora =" in params["00_dataset.ipynb"] and "classes =" in params["00_dataset.ipynb"]
    assert all("megc3" in params[n] for n in ("04_training.ipynb", "06_confusion_matrices.ipynb"))
    recognition = [n for n in series.SERIES[4:] if n != "10_spotting.ipynb"]  # 10 spots long videos: no recognition protocol
    for name in recognition:  # every notebook that trains, evaluates or explains takes the series' protocol
        nb = nbformat.read(real / name, as_version=4)
        assert "\nprotocol = " in "\n" + next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", [])), name


def _fake_evaluation(methods, accuracy: float, seed: int):
    from mexpr.evaluate import Evaluation

    pred = pd.DataFrame({"fold": [0, 1], "subject_id": ["a/s1", "a/s2"], "clip": ["c1", "c2"], "label": ["Negative"] * 2, "y": [0, 0]})
    for m in methods:
        pred[m] = "Negative"
    folds = pd.DataFrame([{"method": m, "fold": k, "accuracy": accuracy + 0.1 * k, "uf1": 0.5, "uar": 0.5, "n": 1} for m in methods for k in (0, 1)])
    summary = pd.DataFrame(
        [
            {"method": m, "accuracy": accuracy + 0.05, "pooled_accuracy": accuracy, "pooled_uf1": accuracy, "pooled_uar": 0.25 + seed / 10}
            for m in methods
        ]
    )
    return Evaluation(pred, folds, summary, {"methods": list(methods), "seed": seed})


def test_the_evaluation_over_seeds_keeps_each_seed_and_reports_mean_and_std(tmp_path, monkeypatch):
    from mexpr import evaluate, report, train

    calls = []

    def fake_evaluate(run, cfg, folds=None, **kw):
        calls.append(("dtscnn", cfg.seed, cfg.input, cfg.protocol, tuple(folds)))
        return _fake_evaluation(evaluate.PAPER_METHODS, 0.4 + 0.1 * cfg.seed, cfg.seed)

    def fake_baseline(run, method, protocol, seed, folds=None, **kw):
        calls.append((method, seed, protocol))
        return _fake_evaluation(evaluate.baseline_methods(method), 0.3, seed)

    monkeypatch.setattr(evaluate, "evaluate", fake_evaluate)
    monkeypatch.setattr(evaluate, "evaluate_baseline", fake_baseline)
    monkeypatch.setattr(train, "folds_of", lambda run, cfg, folds=None: [0, 1])
    t = series.evaluate_seeds(tmp_path, "quick", [0, 1, 2], "megc3", log=lambda *a, **k: None)
    assert {c[1] for c in calls} == {0, 1, 2} and all(c[3] == "megc3" for c in calls if c[0] == "dtscnn")
    assert sorted({c[2] for c in calls if c[0] == "dtscnn"}) == ["mexpr", "paper"] and {c[0] for c in calls} >= set(evaluate.BASELINES)
    fused = t.loc["DTSCNN (fusion)"]
    # per seed: the mean over its two folds, 100 * (0.4 + 0.1 s + 0.05); over seeds 45, 55, 65: mean 55, std 10
    assert (fused["s0"], fused["s1"], fused["s2"]) == (45.0, 55.0, 65.0) and fused["accuracy"] == "55.00 ± 10.00" and fused["seeds"] == 3
    assert t.loc["FDM (fusion)", "accuracy"] == "35.00 ± 0.00" and t.loc["FDM (fusion)", "UAR"] == "35.00 ± 10.00"
    tables = tmp_path / "tables"
    assert sorted(p.name for p in (tables / "seeds").glob("*.md")) == [f"table4_megc3_s{s}.md" for s in (0, 1, 2)]
    assert "55.00 ± 10.00" in (tables / "table4_megc3_seeds.md").read_text()
    one = report.seeds_table({0: _fake_evaluation(["DTSCNN (fusion)"], 0.5, 0)})
    assert one.loc["DTSCNN (fusion)", "accuracy"] == "55.00 ± –"


def test_cli_reproduce_runs_the_evaluation_over_the_given_seeds(tmp_path, monkeypatch, capsys):
    from mexpr.cli import main

    got = {}
    monkeypatch.setattr(series, "run_series", lambda run, **kw: got.setdefault("series", kw) and [])
    monkeypatch.setattr(
        series,
        "evaluate_seeds",
        lambda run, profile, seeds, protocol, jobs=None: got.setdefault("seeds", (profile, seeds, protocol)) and _seed_table(),
    )
    assert main(["reproduce", "--run", str(tmp_path / "r"), "--profile", "quick", "--seeds", "0", "1", "2", "--protocol", "megc3"]) == 0
    assert got["series"]["seed"] == 0 and got["series"]["protocol"] == "megc3" and got["seeds"] == ("quick", [0, 1, 2], "megc3")
    assert "55.00 ± 10.00" in capsys.readouterr().out


def _seed_table():
    return pd.DataFrame({"accuracy": ["55.00 ± 10.00"], "UF1": ["1 ± 0"], "UAR": ["1 ± 0"], "seeds": [3]}, index=["DTSCNN (fusion)"])
