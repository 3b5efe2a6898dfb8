"""The notebook series: committed clean, parameterised, and executed end to end in quick mode."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from mexpr import series
from mexpr.run import Run

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.name for p in series.notebook_dir().glob("*.ipynb"))


def test_every_notebook_is_in_the_series():
    assert NOTEBOOKS == sorted(series.SERIES)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_clean_with_a_parameters_cell(name):
    nb = nbformat.read(series.notebook_dir() / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for key in ("run_dir", "profile", "seed"):
        assert f"{key} =" in tagged[0].source
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    # the setup is one line after the imports: Run.open makes the repository root the working directory
    # (JupyterLab starts kernels in notebooks/), creates tables/ and figures/ and checks the profile
    setup = [line for line in code[1].source.splitlines() if line and not line.startswith(("import ", "from ", "    "))]
    assert setup[0].startswith(("run_dir = Run.open(run_dir, profile, seed)", "run_dir = Run.open(run_dir, profile, seed, scheduler=scheduler)")), (
        setup[0]
    )
    assert any(c.cell_type == "markdown" and c.source.startswith("## Try this") or "\n## Try this" in c.source for c in nb.cells)


def quick_params(run, casme2_root) -> dict:
    """The quick series' parameters: notebook 00 finds the session's tiny datasets made (the same
    arguments: conftest.shared_synth)."""
    return {"run_dir": str(run), "profile": "quick", "seed": 0, "data_dirs": [], "jobs": 2, "synth_root": str(casme2_root.parent)}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, casme2_root, casme1_root, seed_caches):
    """The whole series in quick mode, in order, into one run directory (each reads the last's output).
    The session's tiny datasets (notebook 00) and their pre-processing and flow caches (notebooks 01-02:
    conftest's seed_caches) are made once for every test that needs them."""
    run = tmp_path_factory.mktemp("run")
    seed_caches(run)
    params = quick_params(run, casme2_root)
    executed = [series.run_notebook(name, run, params) for name in series.SERIES]
    # what `make book` shows after `make test` (tools/book.py: runs/quick, else runs/test-quick)
    keep = ROOT / "runs" / "test-quick"
    shutil.rmtree(keep, ignore_errors=True)
    for part in ("notebooks", "figures", "tables"):
        shutil.copytree(run / part, keep / part)
    return run, executed


@pytest.mark.notebook
def test_series_runs_in_quick_mode(quick_run):
    run, executed = quick_run
    for path in executed:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        # every cell ran, in order (papermill stops at a failing cell, so a cell left unrun means the
        # notebook did not finish), and no cell printed a traceback it caught
        assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), f"{path.name}: not every cell ran"
        assert nb.metadata["papermill"]["exception"] in (None, False), path.name
        shown = [
            o
            for c in code
            for o in c.get("outputs", [])
            if o.get("output_type") == "error" or "Traceback (most recent call last)" in o.get("text", "")
        ]
        assert not shown, f"{path.name}: {shown[0]}"


@pytest.mark.notebook
def test_dataset_notebook_hands_off_to_the_next(quick_run):
    run, _ = quick_run
    info = Run(run).info
    assert info["synthetic"] and len(info["roots"]) == 2
    clips = pd.read_csv(run / "clips.csv")
    assert set(clips["dataset"]) == {"casme1", "casme2"}
    assert len(clips) == 30  # 7 + 8 emotions x 2 clips
    for fig in ("dataset_onset_apex_offset", "dataset_motion_amplified", "dataset_class_balance"):
        assert (run / "figures" / f"{fig}.png").stat().st_size > 10_000
    counts = pd.read_csv(run / "tables" / "dataset_counts.csv")
    assert (counts["clips"] == counts["table3 x 0.02"]).all()


@pytest.mark.notebook
def test_preprocessing_notebook_hands_off_to_the_next(quick_run):
    from mexpr import align, preprocess

    run, _ = quick_run
    manifest = preprocess.load_manifest(run)
    assert len(manifest) == 30 and (manifest["status"] == "processed").all()
    x = preprocess.load_clip(run, manifest.iloc[0], 129)
    assert x.shape == (129, 112, 96, 3) and x.dtype == "uint8"
    modes = pd.read_csv(run / "tables" / "preprocess_alignment_modes.csv", index_col="variant")
    assert set(modes["align"]) == set(align.ALIGN_MODES)
    assert modes.loc["lwm-similarity, smooth 2", "residual_head_rms"] < modes.loc["none", "residual_head_rms"]
    for fig in ("preprocess_landmarks", "preprocess_template", "preprocess_alignment_modes", "preprocess_strip_129"):
        assert (run / "figures" / f"{fig}.png").stat().st_size > 10_000


@pytest.mark.notebook
def test_flow_notebook_hands_off_to_the_next(quick_run):
    from mexpr import flow

    run, _ = quick_run
    fm = flow.load_manifest(run)
    assert len(fm) == 30 and (fm["status"] == "processed").all()
    info = json.loads((run / "flow.json").read_text())
    assert info["fields"] == [64, 128] and info["method"] == flow.DEFAULT_METHOD
    assert flow.load_flow(run, fm.iloc[0], 128).shape == (128, 112, 96, 3)
    live = pd.read_csv(run / "tables" / "flow_accuracy_live.csv")
    assert set(live["method"]) == set(flow.METHODS)
    for fig in ("flow_colour_key", "flow_figure2", "flow_benchmark"):
        assert (run / "figures" / f"{fig}.png").stat().st_size > 10_000


@pytest.mark.notebook
def test_model_and_training_notebooks_hand_off_to_the_next(quick_run):
    from mexpr import models, train

    run, _ = quick_run
    layers = pd.read_csv(run / "tables" / "model_layers_dtscnn128.csv")
    assert layers["params"].sum() == 375_796
    config = train.config_for("quick")
    exp = train.experiment_dir(run, config)
    streams = json.loads((exp / "train.json").read_text())["streams"]
    assert {(s["fold"], s["stream"]) for s in streams} == {(0, "DTSCNN64"), (0, "DTSCNN128")}
    for fields in (64, 128):
        m = models.load(train.stream_dir(run, config, fields, 0) / "model.keras")
        assert models.fields_of(m) == fields
        assert len(train.history(run, config, fields, 0)) == config.epochs
    # the comparisons: the paper's schedule and one crop per clip, DTSCNN64 fold 0
    from dataclasses import replace

    assert (train.stream_dir(run, replace(config, schedule="paper"), 64, 0) / "model.keras").is_file()
    assert (train.stream_dir(run, replace(config, mode="clip"), 64, 0) / "model.keras").is_file()
    jitter = pd.read_csv(run / "tables" / "augment_jitter.csv")
    med = jitter.groupby("mode")["ratio"].median()
    assert med["frame"] > 2 and med["clip"] < 1.5
    for fig in ("model_figure5_conv1_time", "augment_nine_crops", "augment_flow_strips", "training_curves", "training_paper_vs_tuned_lr"):
        assert (run / "figures" / f"{fig}.png").stat().st_size > 10_000


@pytest.mark.notebook
def test_fusion_and_evaluation_notebooks_hand_off(quick_run):
    from mexpr import evaluate, predict, report, train

    run, _ = quick_run
    config = train.config_for("quick")
    for fields in (64, 128):  # notebook 05's cached features, keyed by the trained model
        assert (train.stream_dir(run, config, fields, 0) / "features.npz").is_file()
    changes = pd.read_csv(run / "tables" / "fusion_changes.csv").iloc[0]
    assert changes["Eq. 11 took DTSCNN128's answer"] <= changes["streams disagree"] <= changes["test clips"]
    ev = evaluate.load(run, config)  # notebook 06's evaluation, read back as a user would
    _, test = train.fold_split(run, config, 0)
    assert len(ev.predictions) == len(test) and set(ev.folds["method"]) == set(evaluate.METHODS)
    t4 = pd.read_csv(run / "tables" / "table4_paper.csv", index_col="method")
    assert list(t4.index) == list(report.PAPER_TABLE4.index) and t4.loc["DTSCNN (fusion)", "paper Average"] == 66.67
    assert t4.loc["DTSCNN64", "Fold1"] == pytest.approx(100 * ev.folds.query("method == 'DTSCNN64'")["accuracy"].iloc[0], abs=0.01)
    assert (run / "tables" / "table4_paper.md").read_text().startswith("| method | Fold1 |")
    assert (run / "figures" / "readme" / "pipeline.png").stat().st_size > 30_000  # notebook 05's one clip, the whole way
    key = ev.predictions["subject_id"].iloc[0] + "/" + ev.predictions["clip"].iloc[0]
    stages = predict.clip_stages(run, key)
    assert stages["crop"].shape == (129, 112, 96, 3) and stages["munsell"][128].shape == (128, 112, 96, 3)
    with pytest.raises(KeyError, match="not a processed clip"):
        predict.clip_stages(run, "casme2/sub99/EP00")
    for ext in ("png", "svg"):
        assert (run / "figures" / f"figure7_paper.{ext}").stat().st_size > 10_000
        assert (run / "figures" / "readme" / f"figure7_paper.{ext}").is_file()
    # the protocols table (its "Try this" adds others with extra_protocols: each trains its own folds, the same
    # code as the paper protocol's above, so the quick series leaves them out)
    protocols = pd.read_csv(run / "tables" / "evaluate_protocols.csv")
    assert list(protocols["protocol"]) == ["paper"] * 3 and (protocols["folds"] == 1).all()


@pytest.mark.notebook
def test_baselines_notebook_builds_one_table4_and_figure7(quick_run):
    from mexpr import evaluate, report

    run, _ = quick_run
    t4 = pd.read_csv(run / "tables" / "table4_all_paper.csv", index_col="method")
    assert list(t4.index)[:12] == list(report.PAPER_TABLE4.index) and t4["Fold1"].notna().all()  # every row of the paper filled
    ours = list(t4.index)[12:]  # then our labelled rows: DTSCNN on the mexpr input, the baselines with balanced SVMs
    assert "DTSCNN (fusion) (mexpr input, ours)" in ours and "STCLQP (fusion, balanced, ours)" in ours and len(ours) == 3 + 9
    assert t4.loc[ours, "paper Average"].isna().all()  # no paper number beside a row of ours
    both = pd.read_csv(run / "tables" / "table4_inputs_paper.csv", index_col="method")  # notebook 06: the paper's input and ours
    assert {"DTSCNN (fusion)", "DTSCNN (fusion) (mexpr input, ours)"} <= set(both.dropna(subset=["Fold1"]).index)
    for m in evaluate.BASELINES:
        folds = pd.read_csv(evaluate.baseline_dir(run, m, "paper", 0) / "folds.csv")
        assert set(folds["method"]) == set(evaluate.baseline_methods(m)) and list(folds["fold"].unique()) == [0]
    timing = pd.read_csv(run / "tables" / "baselines_timing.csv")
    assert (timing["clips skipped"] == 0).all()
    for fig in ("baselines_mdmo", "baselines_fdm", "baselines_stclqp_patterns", "figure7_all_paper"):
        assert (run / "figures" / f"{fig}.png").stat().st_size > 10_000
    assert (run / "figures" / "readme" / "figure7_all_paper.svg").is_file()


@pytest.mark.notebook
def test_ablation_notebook_measures_every_step(quick_run):
    from mexpr import ablation, train

    run, _ = quick_run
    runs = pd.read_csv(run / "tables" / "ablation_runs.csv")
    steps = ablation.plan_for("quick")["steps"]  # quick mode: the two ends (the paper's input, ours); the others are the same loop
    assert steps == ablation.plan_for("default")["steps"] == ["paper input", ablation.MEXPR_STEP]  # make reproduce: the ends too (reused)
    assert ablation.plan_for("default", steps="all")["steps"] == list(ablation.STEPS) and ablation.plan_for("paper")["steps"] is None
    assert list(dict.fromkeys(runs["step"])) == steps
    assert set(runs["method"]) == set(ablation.METHODS) and set(runs["protocol"]) == {"paper"}
    assert runs[["uar", "uf1", "accuracy"]].apply(lambda c: c.between(0, 1)).all().all()
    ours = runs[runs["step"] == ablation.MEXPR_STEP]
    assert set(ours["input"]) == {"mexpr"} and set(ours["reference"]) == {"onset"}
    # every step trained both streams of fold 0 with the same budget, in its own experiment folder
    for step, cfg in ablation.configs("quick", "paper", 0, steps).items():  # the streams of notebooks 04 and 06, reused
        assert (train.stream_dir(run, cfg, 128, 0) / "done.json").is_file(), step
    jitter = pd.read_csv(run / "tables" / "ablation_crop_jitter.csv", index_col="input")
    assert (
        jitter.loc["consecutive, crop per frame", "added by the crops (x)"] > 2 > jitter.loc["consecutive, crop per clip", "added by the crops (x)"]
    )
    summary = pd.read_csv(run / "tables" / "ablation_summary.csv")
    assert len(summary) == len(steps) * len(ablation.METHODS) and (summary["seeds"] == 1).all()
    for fig in ("ablation", "ablation_flow_signal", "ablation_munsell_codings"):
        assert (run / "figures" / f"{fig}.png").stat().st_size > 10_000


@pytest.mark.notebook
def test_inside_notebook_explains_magnifies_and_explores(quick_run):
    run, _ = quick_run
    overlap = pd.read_csv(run / "tables" / "inside_gradcam_overlap.csv")  # Grad-CAM against the moved Action Units
    assert set(overlap["stream"]) == {"DTSCNN64", "DTSCNN128"} and set(overlap["layer"]) == {"conv4", "conv3"}
    assert set(overlap["variant"]) == {"grad-cam", "hirescam"}
    assert set(overlap["label"]) == {"Negative", "Others", "Positive", "Surprise", "all"}
    every = overlap[overlap["label"] == "all"]
    assert (every["clips"] > 0).all() and every["inside"].between(0, 1).all() and every["chance"].between(0.01, 0.6).all()
    ig = pd.read_csv(run / "tables" / "inside_ig_overlap.csv")
    assert set(ig["method"]) == {"integrated gradients", "Grad-CAM conv4", "HiResCAM conv4"} and (ig["clips"] == 2).all()
    known = pd.read_csv(run / "tables" / "inside_magnify_known_answer.csv").set_index("lambda_c (px)")
    assert known.loc[1.0, "measured gain"] == pytest.approx(known.loc[1.0, "expected gain 1 + alpha"], rel=0.03)
    assert pd.read_csv(run / "tables" / "inside_apex_share.csv")["chance %"].between(5, 30).all()
    for fig in (
        "inside_gradcam_clip",
        "inside_gradcam_classes",
        "inside_gradcam_overlap",
        "inside_gradcam_time",
        "inside_integrated_gradients",
        "inside_magnify_known_answer",
        "inside_magnification",
        "inside_explorer_strip",
    ):
        assert (run / "figures" / f"{fig}.png").stat().st_size > 10_000, fig
    for fig in ("inside_gradcam_classes", "inside_magnification", "inside_explorer_strip"):
        assert (run / "figures" / "readme" / f"{fig}.png").is_file()
    # the explorer's cell shows the widget (for a live kernel) and the static strip of frames below it
    nb = nbformat.read(run / "notebooks" / "09_inside_dtscnn.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "explorer.Explorer(" in c.source)
    kinds = [set(o.get("data", {})) for o in cell.outputs]
    assert any("application/vnd.jupyter.widget-view+json" in k for k in kinds) and any("image/png" in k for k in kinds)


@pytest.mark.notebook
def test_timeline_notebook_spots_recognises_and_scores(quick_run):
    run, _ = quick_run
    from mexpr import timeline

    tl = pd.read_csv(run / "analyze" / "timeline.csv")  # notebook 11's one video, end to end
    assert list(tl.columns[:9]) == ["video", "start_frame", "apex_frame", "end_frame", "start_s", "apex_s", "end_s", "type", "label"]
    assert set(tl["status"]) <= set(timeline.STATUSES)
    meta = json.loads((run / "analyze" / "timeline.json").read_text())
    assert meta["settings"]["spotter"]["method"] == "learned" and meta["videos"][0]["status"] == "analysed"
    assert list((run / "analyze").glob("*_annotated.mp4"))
    scores = pd.read_csv(run / "tables" / "analyze_scores.csv").set_index("intervals")
    assert scores["UAR"].dropna().between(0, 1).all() and len(scores) == 3
    rates = pd.read_csv(run / "tables" / "analyze_frame_rates.csv").set_index("fps")
    assert list(rates.index) == [200, 60, 30] and (rates["clips"] == rates["clips"].iloc[0]).all()
    assert rates.loc[30, "median frames"] < rates.loc[60, "median frames"] < rates.loc[200, "median frames"]
    assert rates.loc[200, "same answer as at 200 fps (%)"] == 100
    for fig in ("analyze_timeline", "analyze_frame_rates", "analyze_explorer_strip"):
        assert (run / "figures" / f"{fig}.png").stat().st_size > 10_000, fig
    assert (run / "figures" / "readme" / "analyze_timeline.png").is_file()
    # notebook 10 left the run a spotter for the user's own videos: mexpr analyze VIDEO --run RUN uses it
    assert timeline.run_spotter(run).method == "learned"
    nb = nbformat.read(run / "notebooks" / "11_from_video_to_timeline.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "explorer.TimelineExplorer(" in c.source)
    kinds = [set(o.get("data", {})) for o in cell.outputs]
    assert any("application/vnd.jupyter.widget-view+json" in k for k in kinds) and any("image/png" in k for k in kinds)


@pytest.mark.notebook
def test_series_resumes_without_rerunning(quick_run, casme2_root):
    run, _ = quick_run
    params = json.loads(json.dumps(quick_params(run, casme2_root)))
    lines = []
    series.run_notebook(series.SERIES[0], run, params, log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("00_dataset.ipynb") and "skipped: finished earlier" in lines[0]
