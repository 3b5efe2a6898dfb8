"""``make reproduce DATA=...``, the real-data path of the series, in a file of its own so that pytest-xdist
runs it beside the quick series (tests/test_notebooks.py), not after it."""

from __future__ import annotations

import json

import pytest

from mexpr import series
from mexpr.run import Run


@pytest.mark.notebook
def test_real_data_path_runs_without_ground_truth(casme2_root, tmp_path, seed_caches):
    """``make reproduce DATA=...``: the roots given are used as they are (here the tiny synthetic sets,
    treated as real data; one root, the series' own run covers two), and the steps that need ground truth
    say so instead of running."""
    from mexpr import flow, preprocess

    run = tmp_path / "casme-quick"
    seed_caches(run)  # the session's pre-processing and flow of these clips (conftest)
    roots = [str(casme2_root)]
    series.run_series(run, profile="quick", data_dirs=roots, jobs=2, notebooks=series.SERIES[:3], log=lambda *a, **k: None)
    info = Run(run).info
    assert info["synthetic"] is False and info["roots"] == [str(casme2_root.resolve())]
    assert (preprocess.load_manifest(run)["status"] == "processed").sum() == 14
    assert (flow.load_manifest(run)["status"] == "processed").sum() == 14
    for table in ("synthetic_motion_summary", "preprocess_alignment_modes", "flow_accuracy_live"):  # ground truth only
        assert not (run / "tables" / f"{table}.csv").exists()
    assert (run / "tables" / "dataset_counts.csv").is_file() and (run / "figures" / "flow_figure2.png").is_file()
    rows = [json.loads(r) for r in (run / "logs" / "reproduce.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ran"] * 3
