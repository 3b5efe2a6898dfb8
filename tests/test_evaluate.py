"""Evaluation: protocols, metrics against known answers, the whole fold loop on a tiny run
(features, SVMs, Eq. 11, Table 4, Figure 7), the CLI, prediction on raw folders, bad input."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mexpr import datasets, evaluate, metrics, report, train
from mexpr.evaluate import EvaluateError

QUICK = train.config_for("quick", per_class=3, epochs=1, tag="eval")


def table3_clips():
    """A clip table with Table 3's per-emotion counts (4 classes) and 45 subjects."""
    counts = {"Negative": 124, "Others": 242, "Positive": 41, "Surprise": 45}
    labels = [c for c, n in counts.items() for _ in range(n)]
    rng = np.random.default_rng(0)
    return pd.DataFrame({"label": labels, "subject_id": [f"s{k:02d}" for k in rng.integers(0, 45, len(labels))]})


def test_splits_per_protocol():
    df = table3_clips()
    for protocol in [p for p in evaluate.PROTOCOLS if p != "megc3"]:  # megc3 splits the composite's table: its own test below
        folds = evaluate.splits(df, protocol, seed=3)
        again = evaluate.splits(df, protocol, seed=3)  # seeded
        assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
        for tr, te in folds:
            assert not set(tr) & set(te) and len(tr) + len(te) == len(df)
            if protocol != "paper":
                assert not set(df["subject_id"].iloc[tr]) & set(df["subject_id"].iloc[te])
    paper = evaluate.splits(df, "paper", seed=3)
    assert len(paper) == 3
    for _, te in paper:  # a quarter of every class: N31 O60 P10 S11 (paper: O58, from its 234 Others)
        assert df["label"].iloc[te].value_counts().to_dict() == {"Negative": 31, "Others": 60, "Positive": 10, "Surprise": 11}
    assert len(evaluate.splits(df, "loso")) == df["subject_id"].nunique()
    with pytest.raises(ValueError, match="protocol must be one of"):
        evaluate.splits(df, "lofo")


def test_metrics_known_answer():
    from sklearn.metrics import confusion_matrix, f1_score, recall_score

    y = np.array([0, 0, 0, 1, 1, 1, 1, 2, 3, 3])
    p = np.array([0, 1, 1, 1, 1, 1, 0, 1, 3, 0])
    m = metrics.metrics(y, p)
    assert m["accuracy"] == pytest.approx(0.5) and m["n"] == 10
    # per class F1 = 2 TP / (support + predicted): N 2/(3+3), O 6/(4+6), P 0, S 2/(2+1)
    assert m["uf1"] == pytest.approx((1 / 3 + 0.6 + 0 + 2 / 3) / 4)
    assert m["uar"] == pytest.approx((1 / 3 + 3 / 4 + 0 + 1 / 2) / 4)
    assert m["uf1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert m["uar"] == pytest.approx(recall_score(y, p, average="macro"))
    assert np.array_equal(metrics.confusion(y, p), confusion_matrix(y, p, labels=range(4)))
    # a class absent from a test set and never predicted is left out of both averages
    assert metrics.metrics([0, 1], [0, 1]) == {"accuracy": 1.0, "uf1": 1.0, "uar": 1.0, "n": 2}
    with pytest.raises(ValueError, match="3 true labels but 2 predictions"):
        metrics.metrics([0, 1, 2], [0, 1])


def test_evaluate_a_fold_end_to_end(flowrun, monkeypatch):
    with pytest.raises(EvaluateError, match=r"DTSCNN64 fold 0, DTSCNN128 fold 0.*python -m mexpr train .*--stream both --fold 0"):
        evaluate.evaluate(flowrun, QUICK, folds=[0], train_missing=False, progress=False)
    ev = evaluate.evaluate(flowrun, QUICK, folds=[0], jobs=1, verbose=0, progress=False)
    _, test = train.fold_split(flowrun, QUICK, 0)
    pred = ev.predictions
    assert len(pred) == len(test) and set(pred["subject_id"] + "/" + pred["clip"]) == set(test["subject_id"] + "/" + test["clip"])
    # Eq. 11 re-derived from the saved probabilities
    p64 = pred[[f"p64_{s}" for s in metrics.SHORT]].to_numpy()
    p128 = pred[[f"p128_{s}" for s in metrics.SHORT]].to_numpy()
    want = np.where(p64.max(1) >= p128.max(1), p64.argmax(1), p128.argmax(1))
    assert pred["DTSCNN (fusion)"].tolist() == [datasets.CLASSES[k] for k in want]
    assert set(ev.folds["method"]) == set(evaluate.METHODS) and ev.folds["accuracy"].between(0, 1).all()
    for fields in (64, 128):  # no test clip, nor an augmented crop of one, reaches an SVM
        f = evaluate.stream_features(flowrun, QUICK, fields, 0)
        assert len(f["augmented"]) == 4 * QUICK.per_class and len(f["original"]) + len(f["test"]) == len(train.clips_table(flowrun))
        assert not (set(f["augmented_sources"]) | set(f["original_clips"])) & set(f["test_clips"])
    t4 = report.table4(ev)
    assert list(t4.index) == evaluate.PAPER_METHODS and list(t4.columns) == [
        "Fold1",
        "Average",
        "paper Fold1",
        "paper Fold2",
        "paper Fold3",
        "paper Average",
    ]
    assert t4.loc["DTSCNN (fusion)", "paper Average"] == 66.67
    cms = ev.confusions()
    assert all(cm.sum() == len(test) for cm in cms.values())
    back = evaluate.load(flowrun, QUICK)
    pd.testing.assert_frame_equal(back.folds, ev.folds)
    # a second evaluation trains nothing and reuses the cached features
    monkeypatch.setattr(train, "train_stream", lambda *a, **k: pytest.fail("trained again"))
    monkeypatch.setattr(evaluate, "_extract", lambda *a, **k: pytest.fail("features extracted again"))
    again = evaluate.evaluate(flowrun, QUICK, folds=[0], progress=False)
    pd.testing.assert_frame_equal(again.predictions, ev.predictions)


def test_missing_fold_and_mismatched_features(flowrun):
    with pytest.raises(EvaluateError, match=r"fold\(s\) \[5\] do not exist"):
        evaluate.evaluate(flowrun, QUICK, folds=[5], progress=False)
    cfg = replace(QUICK, tag="eval-missing")
    with pytest.raises(EvaluateError, match="DTSCNN128 fold 1 is not trained.*--stream 128 --fold 1"):
        evaluate.stream_features(flowrun, cfg, 128, 1)
    f = {"test": np.zeros((3, 8)), "test_y": np.array([0, 1, 2])}
    g = {"test": np.zeros((2, 8)), "test_y": np.array([0, 1])}
    with pytest.raises(EvaluateError, match="different test clips"):
        evaluate.fuse_fold(f, g)


def test_cli_evaluate_and_predict(flowrun, casme2_root, tmp_path):
    import cv2

    base = ["--run", str(flowrun), "--profile", "quick", "--per-class", "3", "--epochs", "1", "--tag", "eval"]
    out = subprocess.run([sys.executable, "-m", "mexpr", "evaluate", *base, "--fold", "0", "--quiet"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "DTSCNN (fusion)" in out.stdout and "66.67" in out.stdout  # ours beside the paper's
    assert (flowrun / "tables" / "table4_paper.md").is_file()
    assert (flowrun / "figures" / "figure7_paper.png").is_file() and (flowrun / "figures" / "figure7_paper.svg").is_file()
    bad = subprocess.run([sys.executable, "-m", "mexpr", "evaluate", *base, "--protocol", "kfold"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice: 'kfold'" in bad.stderr

    clip = sorted(p for p in (casme2_root / "CASME2_RAW_selected").glob("sub*/EP*") if p.is_dir())[0]
    noface = tmp_path / "noface"
    noface.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(noface / f"img{i + 1}.jpg"), rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
    from mexpr import predict, video

    clip_mp4 = video.write_video(tmp_path / "clip.avi", (cv2.imread(str(f)) for f in predict.frame_files(clip)), 200)  # the same clip as a video file
    csv = tmp_path / "pred.csv"
    out = subprocess.run(
        [sys.executable, "-m", "mexpr", "predict", *base, str(clip), str(noface), str(clip_mp4), "--out", str(csv), "--quiet"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1, out.stderr[-2000:]  # one folder failed, the others were classified
    df = pd.read_csv(csv)
    ok, err, from_video = df.iloc[0], df.iloc[1], df.iloc[2]
    assert from_video["status"] == "ok" and from_video["prediction"] in datasets.CLASSES
    assert ok["status"] == "ok" and ok["prediction"] in datasets.CLASSES
    assert np.isclose(sum(ok[f"p64_{s}"] for s in metrics.SHORT), 1, atol=1e-3)
    assert err["status"] == "error" and "img1.jpg" in err["reason"] and "face" in err["reason"].lower()
    assert f"{noface}: error:" in out.stdout


def test_a_baseline_through_the_same_folds_and_fusion(flowrun):
    ev = evaluate.evaluate_baseline(flowrun, "mdmo", "paper", seed=0, folds=[0], jobs=1, progress=False)
    _, test = train.fold_split(flowrun, QUICK, 0)  # the same split as DTSCNN's
    pred = ev.predictions
    assert set(pred["subject_id"] + "/" + pred["clip"]) == set(test["subject_id"] + "/" + test["clip"]) and not ev.info["skipped"]
    p64 = pred[[f"p64_{s}" for s in metrics.SHORT]].to_numpy()
    p128 = pred[[f"p128_{s}" for s in metrics.SHORT]].to_numpy()
    want = np.where(p64.max(1) >= p128.max(1), p64.argmax(1), p128.argmax(1))
    assert pred["MDMO (fusion)"].tolist() == [datasets.CLASSES[k] for k in want]
    assert ev.info["methods"] == ["MDMO TIM64", "MDMO TIM128", "MDMO (fusion)"]
    params = pd.read_csv(evaluate.baseline_dir(flowrun, "mdmo", "paper", 0) / "svm_parameters.csv")
    assert set(params["fields"]) == {64, 128} and (params["kernel"] == "rbf").all()  # the paper's Gaussian SVM
    dt = evaluate.evaluate(flowrun, QUICK, folds=[0], progress=False, verbose=0)
    both = report.combine([dt, ev])
    t4 = report.table4(both, methods=list(report.PAPER_TABLE4.index))
    assert t4.loc["MDMO (fusion)", "Fold1"] == pytest.approx(100 * (pred["MDMO (fusion)"] == pred["label"]).mean(), abs=0.01)
    assert np.isnan(t4.loc["FDM (fusion)", "Fold1"]) and t4.loc["FDM (fusion)", "paper Average"] == 56.97
    assert set(both.confusions(["DTSCNN (fusion)", "MDMO (fusion)"])) == {"DTSCNN (fusion)", "MDMO (fusion)"}
    with pytest.raises(ValueError, match="unknown baseline 'lbp'"):
        evaluate.evaluate_baseline(flowrun, "lbp")


def test_table4_names_the_folds_that_ran():
    folds = pd.DataFrame(
        [{"method": m, "fold": k, "accuracy": 0.5 + 0.1 * k, "uf1": 0.3, "uar": 0.3, "n": 10} for m in evaluate.PAPER_METHODS for k in (1, 2)]
    )
    summary = pd.DataFrame(
        [
            {"method": m, "accuracy": 0.65, "uf1": 0.3, "uar": 0.3, "pooled_accuracy": 0.65, "pooled_uf1": 0.3, "pooled_uar": 0.3, "folds": 2}
            for m in evaluate.PAPER_METHODS
        ]
    )
    t4 = report.table4(evaluate.Evaluation(pd.DataFrame(), folds, summary), paper=False)
    assert list(t4.columns) == ["Fold2", "Fold3", "Average"]
    assert t4.loc["DTSCNN64"].tolist() == pytest.approx([60.0, 70.0, 65.0])


def test_each_sample_has_its_features_computed_once_and_an_uncropped_one_is_its_clip(flowrun, monkeypatch):
    from mexpr import augment, models

    cfg = replace(train.config_for("quick", input="mexpr"), per_class=4, epochs=1)  # the stream test_train trains too: trained once
    train.train_stream(flowrun, 64, 0, cfg, jobs=1, verbose=0)
    trainset, _, samples = train.fold_plan(flowrun, cfg, 0)
    fcfg = evaluate.stream_flow(flowrun, cfg, 64, 0)
    paths = augment.build(flowrun, samples, 64, flow_cfg=fcfg, progress=False)
    assert len(set(paths)) < len(paths)  # oversampled: some samples repeat
    mirrored = np.array([augment.flipped(r) for r in samples.to_dict("records")])
    assert mirrored.any() and not mirrored.all() and (samples["mode"] == "none").all()  # our input: uncropped clips and mirror images
    sizes = []
    real = evaluate._extract
    monkeypatch.setattr(evaluate, "_extract", lambda m, ld, items, *a: sizes.append(len(items)) or real(m, ld, items, *a))
    (train.stream_dir(flowrun, cfg, 64, 0) / "features.npz").unlink(missing_ok=True)
    f = evaluate.stream_features(flowrun, cfg, 64, 0)
    # the training clips, then only the mirror images (each file once), then the test clips
    assert sizes[:2] == [len(trainset), len({p for p, m in zip(paths, mirrored) if m})]
    assert len(f["augmented"]) == len(paths)
    for p in set(paths):  # every copy of a sample has that sample's features
        rows = [i for i, q in enumerate(paths) if q == p]
        assert all(np.array_equal(f["augmented"][rows[0]], f["augmented"][i]) for i in rows)
    at = {k: i for i, k in enumerate(f["original_clips"])}
    plain = np.flatnonzero(~mirrored)
    assert all(np.array_equal(f["augmented"][i], f["original"][at[samples["source"].iloc[i]]]) for i in plain)
    # ... which is exact: the uncropped sample's file is its clip, and the network gives it the same features
    forward = evaluate._forward(models.load(train.stream_dir(flowrun, cfg, 64, 0) / "model.keras"))
    i = int(plain[0])
    x = np.load(paths[i])[None]
    clip = trainset.iloc[at[samples["source"].iloc[i]]]
    assert np.array_equal(x[0], train.clip_munsell(flowrun, clip, 64, fcfg))
    np.testing.assert_allclose(np.asarray(forward(x)[0])[0], f["augmented"][i], rtol=1e-5, atol=1e-6)


def composite_clips():
    """A composite clip table: SMIC, CASME II and SAMM subjects (CASME II and SAMM share subject numbers)."""
    rows = []
    for corpus, subjects in (("smic", ["s1", "s2"]), ("casme2", ["sub01", "sub06"]), ("samm", ["006", "sub01"])):
        for s in subjects:
            for label in ("Negative", "Positive", "Surprise", "Negative"):
                rows.append({"dataset": corpus, "subject_id": f"{corpus}/{s}", "label": label})
    return pd.DataFrame(rows)


def test_megc3_is_loso_over_the_union_of_the_composites_subjects():
    df = composite_clips()
    folds = datasets.splits(df, "megc3", seed=0)
    assert len(folds) == 6 == df["subject_id"].nunique()  # casme2/sub01 and samm/sub01 are two subjects
    for f in folds:
        assert df["subject_id"].iloc[f["test"]].nunique() == 1 and not set(df["subject_id"].iloc[f["train"]]) & set(df["subject_id"].iloc[f["test"]])
    assert sorted(np.concatenate([f["test"] for f in folds]).tolist()) == list(range(len(df)))
    bad = df.assign(label=df["label"].replace({"Positive": "Others"}))
    with pytest.raises(ValueError, match="protocol_table"):
        datasets.splits(bad, "megc3")
    with pytest.raises(ValueError, match="corpus casme1"):
        datasets.splits(pd.concat([df, df.iloc[:1].assign(dataset="casme1")]), "megc3")
    assert datasets.protocol_classes("megc3") == [0, 2, 3] and datasets.protocol_classes("loso") == [0, 1, 2, 3]
    # MEGC 2019: UF1 and UAR over the three classes of the pooled confusion matrix
    y, p = np.array([0, 0, 2, 3, 3]), np.array([0, 2, 2, 3, 0])
    m = metrics.metrics(y, p, classes=[0, 2, 3])
    # F1: N 2*1/(2+2), P 2*1/(1+2), S 2*1/(2+1); recall: N 1/2, P 1, S 1/2
    assert m["uf1"] == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3) and m["uar"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    with pytest.raises(ValueError, match="outside the protocol's classes"):
        metrics.metrics([1, 0], [0, 0], classes=[0, 2, 3])


def test_megc3_quick_fold_sees_nothing_of_its_test_subject(flowrun, monkeypatch):
    """One composite fold end to end (quick), with every function that receives training data
    instrumented: the augmentation plan and samples, the learned flow scale, the training call
    (no callback selects on the test fold), the SVMs and their calibration (DTSCNN's and a
    baseline's): none gets a clip of the test subject."""
    import keras

    from mexpr import augment, fusion
    from mexpr.baselines import classify

    cfg = replace(QUICK, protocol="megc3", tag="megc3", per_class=2)  # 2 per class: the least the SVMs calibrate on
    clips = train.clips_table(flowrun, cfg)
    assert set(clips["dataset"]) == {"casme2"} and set(clips["label"]) == {"Negative", "Positive", "Surprise"}  # CASME I left out
    assert len(clips) < len(train.clips_table(flowrun)) and "others" not in set(clips["emotion"])
    folds = datasets.splits(clips, "megc3", cfg.seed)
    # a fold whose training side has 2 clips of every class (the baselines' SVMs calibrate on the original clips)
    k = next(
        f["fold"] for f in folds if clips["label"].iloc[f["train"]].value_counts().reindex(["Negative", "Positive", "Surprise"]).fillna(0).min() >= 2
    )
    test_subject = set(clips["subject_id"].iloc[folds[k]["test"]])
    seen: dict[str, set] = {"plan": set(), "samples": set(), "flow": set()}
    fitted = []

    def spy(mod, name, record):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, **kw: (record(*a, **kw), real(*a, **kw))[1])

    spy(augment, "plan", lambda train_, *a, **kw: seen["plan"].update(train_["subject_id"]))
    spy(augment, "sample_munsell", lambda run, row, *a, **kw: seen["samples"].add(row["source"].rsplit("/", 1)[0]))
    spy(train, "fold_flow", lambda run, c, fold, fields, train_=None: seen["flow"].update([] if train_ is None else train_["subject_id"]))
    spy(fusion, "calibrated_svm", lambda svm, X, y, *a, **kw: fitted.append((np.asarray(X), np.asarray(y))))

    def no_selection(self, *a, **kw):
        for cb in kw.get("callbacks") or []:
            assert not str(getattr(cb, "monitor", "")).startswith("val_"), f"{type(cb).__name__} selects on the test fold"
        return real_fit(self, *a, **kw)

    real_fit = keras.Model.fit
    monkeypatch.setattr(keras.Model, "fit", no_selection)
    ev = evaluate.evaluate(flowrun, cfg, folds=[k], jobs=1, verbose=0, progress=False)
    assert seen["plan"] and seen["samples"] and not (seen["plan"] | seen["samples"] | seen["flow"]) & test_subject
    tests = [evaluate.stream_features(flowrun, cfg, f, k)["test"] for f in (64, 128)]
    test_rows = {r.tobytes() for t in tests for r in np.asarray(t, np.float32)}
    assert fitted and all(not {r.tobytes() for r in X.astype(np.float32)} & test_rows for X, _ in fitted if X.shape[1] == tests[0].shape[1])
    assert all(set(np.unique(y)) == {0, 2, 3} for _, y in fitted)  # three classes, Others never
    pred = ev.predictions
    assert set(pred["subject_id"]) == test_subject and all(set(pred[m]) <= {"Negative", "Positive", "Surprise"} for m in evaluate.METHODS)
    by = pd.read_csv(Path(ev.info["dir"]) / "by_corpus.csv")
    assert set(by["corpus"]) == {"casme2", "composite"} and by["uf1"].between(0, 1).all()
    # a baseline through the same composite fold: its SVMs (grid search and calibration) see training clips only
    seen_fit = []
    spy(classify, "fit", lambda method, X, y, *a, **kw: seen_fit.append(len(y)))
    bl = evaluate.evaluate_baseline(flowrun, "fdm", "megc3", seed=0, folds=[k], jobs=1, progress=False)
    assert set(bl.predictions["subject_id"]) == test_subject and seen_fit == [len(folds[k]["train"])] * 2


def test_figure7_shows_the_protocols_classes_only(tmp_path):
    """Figure 7 under megc3: Others has no clip and no prediction, so its row and column are left
    out (three classes, N/P/S); the four-class protocols keep all four, an empty class included
    when some matrix predicts it."""
    import matplotlib

    matplotlib.use("Agg")
    from mexpr import viz

    three = np.array([[5, 0, 1, 0], [0, 0, 0, 0], [1, 0, 4, 0], [0, 0, 2, 3]])
    fig = viz.confusion_matrices({"DTSCNN (fusion)": three, "FDM (fusion)": three.T.copy()}, tmp_path, name="f7")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["N", "P", "S"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["N (6)", "P (5)", "S (5)"]
    assert ax.collections[0].get_array().size == 9 and (tmp_path / "figures" / "f7.png").is_file()
    predicted_only = three.copy()
    predicted_only[0, 1] = 1  # one Negative clip called Others: the Others column (and row) stay
    fig = viz.confusion_matrices({"m": predicted_only})
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["N", "O", "P", "S"]
