"""mexpr.run.Run: the one owner of a run folder (what every notebook's setup line is)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mexpr import settings, train
from mexpr.run import Run, RunError


def test_open_makes_the_folders_and_is_path_like(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the repository: the working directory is left as it is
    run = Run.open(tmp_path / "r", "quick", seed=3)
    assert run.tables.is_dir() and run.figures.is_dir()
    assert os.fspath(run) == str(tmp_path / "r") and Path(run) == tmp_path / "r" and run / "x.csv" == tmp_path / "r" / "x.csv"
    assert run.settings is settings.PROFILES["quick"]
    with pytest.raises(ValueError, match="profile must be one of quick, default, paper"):
        Run(tmp_path / "r", "fast")


def test_missing_or_broken_records_name_the_file_and_the_step(tmp_path):
    run = Run(tmp_path)
    with pytest.raises(RunError, match=r"dataset.json not found: notebook 00"):
        _ = run.info
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(RunError, match=r"dataset.json is not valid JSON"):
        _ = Run(tmp_path).info
    with pytest.raises(FileNotFoundError, match=r"preprocess.json not found"):
        run.preprocess_config()


def test_a_run_knows_its_dataset_clips_configs_and_folds(flowrun, casme2_root, casme1_root):
    run = Run(flowrun, "quick", seed=1)
    assert run.roots == [str(casme2_root), str(casme1_root)] and run.synthetic and run.data_kind == "synthetic data"
    assert len(run.dataset()) == len(run.manifest()) == len(run.clips())
    assert run.preprocess_config().lengths == settings.LENGTHS
    config = run.config(input="mexpr", epochs=None)  # None keeps the profile's
    assert config == train.config_for("quick", input="mexpr", seed=1)
    assert run.folds(config) == [0]  # the quick profile's folds
    assert Run(flowrun, "default").folds(config) == [0, 1, 2]  # default: every fold of the protocol
    with pytest.raises(ValueError, match=r"fold\(s\) \[7\] do not exist"):
        run.folds(config, [7])
