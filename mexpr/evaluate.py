"""Evaluation: protocols, pool4 features, SVMs and fusion per fold, metrics, Table 4 and Figure 7
(Peng et al. 2017, "Experimental Results"; docs/DESIGN.md §3 and §7).

``evaluate(run_dir, config)`` does, for every fold of the config's protocol:

1. makes sure both streams are trained on the fold (:func:`mexpr.train.train_stream`, which
   reuses a finished stream; with ``train=False`` a missing one is an :class:`EvaluateError`
   naming the command that trains it),
2. extracts the 1152-d pool4 features of the fold's augmented training clips, its original
   training clips and its test clips with each stream (cached beside the model, in batches: the
   augmented clips are never all in memory),
3. fits one linear SVM per stream on the training features (:mod:`mexpr.fusion`; which training
   clips: ``svm_train``), predicts the test clips' class probabilities, and fuses them with Eq. 11,
4. records every test clip's probabilities and predictions and the fold's accuracy, UF1 and UAR.

It writes ``<experiment>/evaluate-<svm_train>/`` (``predictions.csv``, ``folds.csv``,
``summary.csv``, ``evaluate.json`` with timings) and returns an :class:`Evaluation`.

Metrics: accuracy; UF1, the unweighted mean over the four classes of each class's F1; UAR, the
unweighted mean of the per-class recalls (classes absent from a test set are left out of UAR and
count F1 = 0 only if predicted).  Averages are the mean over folds (as Table 4's "Average");
"pooled" computes the metric once over every fold's test clips together (the LOSO convention).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mexpr import fusion, train
from mexpr.datasets import CLASSES, PROTOCOLS, clip_keys  # noqa: F401  (re-exported: evaluate.PROTOCOLS)

SHORT = [c[0] for c in CLASSES]  # N, O, P, S: Figure 7's order

#: The paper's three DTSCNN rows, in Table 4's order.
PAPER_METHODS = ["DTSCNN64", "DTSCNN128", "DTSCNN (fusion)"]
#: Our labelled extensions, computed beside them.
EXTENSIONS = ["DTSCNN (probability average, ours)", "DTSCNN (feature concatenation, ours)", "DTSCNN64 softmax (ours)", "DTSCNN128 softmax (ours)"]
METHODS = PAPER_METHODS + EXTENSIONS

#: Table 4 of the paper (accuracy %, CASME I/II, "3-fold cross-validation").
PAPER_TABLE4 = pd.DataFrame(
    [
        ("DTSCNN64", 65.45, 65.45, 65.45, 65.45),
        ("DTSCNN128", 65.45, 66.36, 65.45, 65.75),
        ("DTSCNN (fusion)", 67.27, 67.27, 65.45, 66.67),
        ("STCLQP TIM64", 56.36, 55.45, 52.73, 54.85),
        ("STCLQP TIM128", 57.27, 53.64, 53.64, 54.85),
        ("STCLQP (fusion)", 58.18, 56.36, 54.55, 56.36),
        ("MDMO TIM64", 54.54, 52.73, 52.73, 53.33),
        ("MDMO TIM128", 54.54, 54.54, 53.63, 54.24),
        ("MDMO (fusion)", 57.27, 55.45, 53.63, 55.45),
        ("FDM TIM64", 53.64, 53.64, 54.55, 53.94),
        ("FDM TIM128", 53.64, 53.64, 55.45, 54.24),
        ("FDM (fusion)", 57.27, 57.27, 56.36, 56.97),
    ],
    columns=["method", "Fold1", "Fold2", "Fold3", "Average"],
).set_index("method")

#: Figure 7's diagonal values the paper's text quotes (% of the class's test clips).
PAPER_FIGURE7_QUOTED = {
    "DTSCNN (fusion)": {"Negative": 50.54, "Positive": 13.33},
    "STCLQP (fusion)": {"Negative": 26.88},
    "MDMO (fusion)": {"Negative": 21.51},
    "FDM (fusion)": {"Negative": 23.66, "Surprise": 60.61},
}


FEATURES_VERSION = 2  # part of the feature cache's key


class EvaluateError(RuntimeError):
    """An evaluation cannot run as asked (e.g. a stream or fold is not trained)."""


def splits(df: pd.DataFrame, protocol: str = "paper", seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(train_indices, test_indices), ...]``: positional index arrays into the clip table
    ``df``, one pair per fold (:func:`mexpr.datasets.splits` documents the three protocols)."""
    from mexpr import datasets

    return [(f["train"], f["test"]) for f in datasets.splits(df, protocol, seed)]


# --------------------------------------------------------------------------------------------
# metrics


def confusion(y_true, y_pred) -> np.ndarray:
    """Counts ``(4, 4)``: rows the true class, columns the predicted one, N/O/P/S order."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    k = len(CLASSES)
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def metrics(y_true, y_pred) -> dict:
    """``{"accuracy", "uf1", "uar", "n"}`` (fractions) of class-index predictions."""
    cm = confusion(y_true, y_pred).astype(float)
    n = cm.sum()
    if n == 0:
        raise ValueError("no predictions to score")
    tp = np.diag(cm)
    support, predicted = cm.sum(1), cm.sum(0)
    present = support > 0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=(support + predicted) > 0)
    scored = present | (predicted > 0)  # a class neither present nor predicted is left out
    recall = tp[present] / support[present]
    return {"accuracy": float(tp.sum() / n), "uf1": float(f1[scored].mean()), "uar": float(recall.mean()), "n": int(n)}


# --------------------------------------------------------------------------------------------
# features


def train_command(run_dir, config: train.Config, fields: int | str, fold: int | str) -> str:
    """The CLI line that trains ``fields`` on ``fold`` with ``config``."""
    base = train.Config()
    opts = [
        f"--run {run_dir}",
        f"--stream {fields}",
        f"--fold {fold}",
        f"--protocol {config.protocol}",
        f"--seed {config.seed}",
        f"--epochs {config.epochs}",
        f"--per-class {config.per_class}",
        f"--schedule {config.schedule}",
    ]
    if config.mode != base.mode:
        opts.append(f"--mode {config.mode}")
    if config.tag:
        opts.append(f"--tag {config.tag}")
    if config.mixed_precision:
        opts.append("--mixed-precision")
    if config.jit_compile:
        opts.append("--xla")
    return "python -m mexpr train " + " ".join(opts)


def _batches(loader, items, batch: int):
    for i in range(0, len(items), batch):
        yield np.stack([loader(x) for x in items[i : i + batch]])


def _extract(model, loader, items, batch: int, progress, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """pool4 features and softmax of ``items`` (loaded ``batch`` at a time)."""
    import keras
    from tqdm.auto import tqdm

    both = keras.Model(model.inputs[0], [model.get_layer("pool4_flat").output, model.outputs[0]])
    feats, probs = [], []
    with tqdm(total=len(items), desc=desc, unit="clip", disable=not progress, leave=False) as bar:
        for x in _batches(loader, items, batch):
            f, p = both(x, training=False)
            feats.append(np.asarray(f, np.float32))
            probs.append(np.asarray(p, np.float32))
            bar.update(len(x))
    if not feats:
        return np.zeros((0, 1152), np.float32), np.zeros((0, len(CLASSES)), np.float32)
    return np.concatenate(feats), np.concatenate(probs)


def stream_features(run_dir, config: train.Config, fields: int, fold: int, batch: int = 20, progress: bool = False) -> dict:
    """pool4 features of one trained stream on one fold: ``{"augmented", "augmented_y",
    "augmented_sources", "original", "original_y", "original_clips", "test", "test_y",
    "test_softmax", "test_clips"}`` (``*_clips``/``*_sources``: ``subject_id/clip`` names).

    Cached as ``features.npz`` beside the model, keyed by the model's ``done.json``: retraining
    the stream recomputes them.  Only the fold's training side is ever augmented (the plan is
    :func:`mexpr.train.fold_plan`'s, which refuses test clips)."""
    from mexpr import models

    out = train.stream_dir(run_dir, config, fields, fold)
    done = out / "done.json"
    if not done.is_file():
        raise EvaluateError(f"DTSCNN{fields} fold {fold} is not trained ({out}); run: {train_command(run_dir, config, fields, fold)}")
    key = hashlib.blake2b(done.read_bytes() + FEATURES_VERSION.to_bytes(2, "little"), digest_size=8).hexdigest()
    cache = out / "features.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return {k: z[k] for k in z.files if k != "key"}
    trainset, test, samples = train.fold_plan(run_dir, config, fold)
    fcfg = stream_flow(run_dir, config, fields, fold)
    paths = train.build_samples(run_dir, trainset, samples, fields, fold, fcfg, progress=progress)
    model = models.load(out / "model.keras")
    res = {}
    # a sample drawn twice is one file (plain oversampling): its features are computed once
    unique, again = np.unique(np.asarray(paths, dtype=str), return_inverse=True)
    f, _ = _extract(model, lambda p: np.load(p), list(unique), batch, progress, f"features fold {fold} f{fields} augmented")
    f = f[again]
    res["augmented"], res["augmented_y"] = f, np.array([CLASSES.index(c) for c in samples["label"]], np.int64)
    res["augmented_sources"] = samples["source"].to_numpy(dtype=str)  # the clip each sample was made from
    rows = [r for _, r in trainset.iterrows()]
    load = lambda r: train.clip_munsell(run_dir, r, fields, fcfg["normalize"])  # noqa: E731
    f, _ = _extract(model, load, rows, batch, progress, f"features fold {fold} f{fields} original")
    res["original"], res["original_y"] = f, np.array([CLASSES.index(c) for c in trainset["label"]], np.int64)
    res["original_clips"] = clip_keys(trainset).to_numpy(dtype=str)
    rows = [r for _, r in test.iterrows()]
    f, p = _extract(model, load, rows, batch, progress, f"features fold {fold} f{fields} test")
    res["test"], res["test_softmax"], res["test_y"] = f, p, np.array([CLASSES.index(c) for c in test["label"]], np.int64)
    res["test_clips"] = clip_keys(test).to_numpy(dtype=str)
    tmp = out / "features.tmp.npz"
    np.savez(tmp, key=np.array(key), **res)
    os.replace(tmp, cache)
    return res


def stream_flow(run_dir, config: train.Config, fields: int, fold: int) -> dict:
    """How a trained stream's clips are computed and coded (its ``done.json``: method, reference
    and the Munsell scale, the fold's learned one included), so features and predictions code
    every clip exactly as training did."""
    done = train.stream_dir(run_dir, config, fields, fold) / "done.json"
    info = json.loads(done.read_text()) if done.is_file() else {}
    return info.get("flow") or train.fold_flow(run_dir, config, fold, fields)


def svm_training_set(feats: dict, svm_train: str) -> tuple[np.ndarray, np.ndarray]:
    """The SVM's training features and labels: ``"augmented"``, ``"original"`` or ``"both"``."""
    if svm_train not in fusion.SVM_TRAIN:
        raise ValueError(f"svm_train must be one of {fusion.SVM_TRAIN}, not {svm_train!r}")
    parts = ["augmented", "original"] if svm_train == "both" else [svm_train]
    return np.concatenate([feats[p] for p in parts]), np.concatenate([feats[p + "_y"] for p in parts])


# --------------------------------------------------------------------------------------------
# one fold, all folds


def fuse_fold(f64: dict, f128: dict, svm_train: str = "augmented", C: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """SVMs and fusion on one fold's cached features (:func:`stream_features` of both streams):
    one row per test clip with both streams' probabilities and every method's prediction."""
    if len(f64["test"]) != len(f128["test"]) or not np.array_equal(f64["test_y"], f128["test_y"]):
        raise EvaluateError("the two streams' features describe different test clips; re-extract them")
    (X64, y64), (X128, y128) = svm_training_set(f64, svm_train), svm_training_set(f128, svm_train)
    probs = {}
    for name, f, X, y in (("64", f64, X64, y64), ("128", f128, X128, y128)):
        svm = fusion.fit_svm(X, y, C=C, seed=seed, name=f"DTSCNN{name} {svm_train} training features")
        probs[name] = fusion.proba(svm, f["test"], name=f"DTSCNN{name} test features")
    if not np.array_equal(y64, y128):
        raise EvaluateError("the two streams were trained on different labels; concatenation needs the same samples")
    concat = fusion.proba(
        fusion.fit_svm(np.hstack([X64, X128]), y64, C=C, seed=seed, name="concatenated features"), np.hstack([f64["test"], f128["test"]])
    )
    p64, p128 = probs["64"], probs["128"]
    subject, clip = zip(*(s.rsplit("/", 1) for s in f64["test_clips"])) if len(f64["test_clips"]) else ((), ())
    preds = {
        "DTSCNN64": p64.argmax(1),
        "DTSCNN128": p128.argmax(1),
        "DTSCNN (fusion)": fusion.decision_fusion(p64, p128),
        "DTSCNN (probability average, ours)": fusion.average_fusion(p64, p128),
        "DTSCNN (feature concatenation, ours)": concat.argmax(1),
        "DTSCNN64 softmax (ours)": f64["test_softmax"].argmax(1),
        "DTSCNN128 softmax (ours)": f128["test_softmax"].argmax(1),
    }
    return _prediction_table(subject, clip, f64["test_y"], p64, p128, preds, ("DTSCNN64", "DTSCNN128"))


def _prediction_table(subject, clip, y, p64, p128, preds: dict, streams: tuple[str, str]) -> pd.DataFrame:
    """One row per test clip: its labels, both streams' probabilities (``p64_N`` ... ``p128_S``),
    each method's predicted class (``preds``: method -> class indices) and which of the two
    ``streams`` Eq. 11 took."""
    df = pd.DataFrame({"subject_id": subject, "clip": clip, "label": [CLASSES[i] for i in y], "y": y})
    for name, p in (("p64", p64), ("p128", p128)):
        for k, s in enumerate(SHORT):
            df[f"{name}_{s}"] = np.round(p[:, k], 5)
    for m, p in preds.items():
        df[m] = [CLASSES[i] for i in p]
    df["fusion_took"] = np.where(fusion.first_decides(p64, p128), *streams)
    return df


def _check_folds(folds, n_folds: int, protocol: str) -> list[int]:
    """``folds`` (None: all ``n_folds``) as a list, or :class:`EvaluateError` naming those that do not exist."""
    folds = list(range(n_folds)) if folds is None else [int(k) for k in folds]
    bad = [k for k in folds if not 0 <= k < n_folds]
    if bad:
        raise EvaluateError(f"fold(s) {bad} do not exist: protocol {protocol!r} has {n_folds} fold(s) (0..{n_folds - 1})")
    return folds


def _save(out: Path, pred: pd.DataFrame, fold_table: pd.DataFrame, summary: pd.DataFrame, info: dict) -> Evaluation:
    """Write an evaluation's files (``predictions.csv``, ``folds.csv``, ``summary.csv``,
    ``evaluate.json``) into ``out``; returns it as an :class:`Evaluation` (the folder in ``info["dir"]``)."""
    out.mkdir(parents=True, exist_ok=True)
    pred.to_csv(out / "predictions.csv", index=False)
    fold_table.to_csv(out / "folds.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    info = info | {"dir": str(out)}
    (out / "evaluate.json").write_text(json.dumps(info, indent=2) + "\n")
    return Evaluation(pred, fold_table, summary, info)


@dataclass
class Evaluation:
    """The result of :func:`evaluate` (or :func:`load`)."""

    predictions: pd.DataFrame  # one row per test clip and fold
    folds: pd.DataFrame  # method, fold, accuracy, uf1, uar, n
    summary: pd.DataFrame  # method x (mean over folds, pooled) of each metric
    info: dict = field(default_factory=dict)  # protocol, config, timings, folder

    def confusions(self, methods=None) -> dict[str, np.ndarray]:
        """Pooled confusion counts of each method over all folds (default: the paper's rows this
        evaluation holds)."""
        y = self.predictions["y"].to_numpy()
        methods = methods or self.info.get("methods") or PAPER_METHODS
        return {m: confusion(y, self.predictions[m].map(CLASSES.index).to_numpy()) for m in methods}


def evaluate_dir(run_dir, config: train.Config, svm_train: str = "augmented") -> Path:
    return train.experiment_dir(run_dir, config) / f"evaluate-{svm_train}"


def _score(pred: pd.DataFrame, methods=METHODS) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for fold, g in pred.groupby("fold", sort=True):
        for m in methods:
            rows.append({"method": m, "fold": int(fold)} | metrics(g["y"], g[m].map(CLASSES.index)))
    folds = pd.DataFrame(rows)
    summ = []
    for m in methods:
        mean = folds[folds["method"] == m][["accuracy", "uf1", "uar"]].mean()
        pooled = metrics(pred["y"], pred[m].map(CLASSES.index))
        summ.append(
            {
                "method": m,
                "accuracy": mean["accuracy"],
                "uf1": mean["uf1"],
                "uar": mean["uar"],
                "pooled_accuracy": pooled["accuracy"],
                "pooled_uf1": pooled["uf1"],
                "pooled_uar": pooled["uar"],
                "folds": folds["fold"].nunique(),
            }
        )
    return folds, pd.DataFrame(summ)


def evaluate(
    run_dir,
    config: train.Config,
    folds=None,
    train_missing: bool = True,
    svm_train: str = "augmented",
    C: float = 1.0,
    jobs: int | None = None,
    verbose: int | str = "auto",
    progress: bool = True,
) -> Evaluation:
    """Evaluate DTSCNN64, DTSCNN128 and their fusion on ``folds`` (default: all of the config's
    protocol); see the module text.  ``train_missing=False`` refuses to train."""
    if svm_train not in fusion.SVM_TRAIN:
        raise ValueError(f"svm_train must be one of {fusion.SVM_TRAIN}, not {svm_train!r}")
    folds = _check_folds(folds, train.fold_count(run_dir, config), config.protocol)
    if not train_missing:
        missing = [(f, k) for k in folds for f in (64, 128) if train.finished(run_dir, f, k, config) is None]
        if missing:
            what = ", ".join(f"DTSCNN{f} fold {k}" for f, k in missing)
            stream = "both" if len({f for f, _ in missing}) > 1 else missing[0][0]
            fold = "all" if len({k for _, k in missing}) > 1 else missing[0][1]
            raise EvaluateError(
                f"not trained in {train.experiment_dir(run_dir, config)}: {what}; run: {train_command(run_dir, config, stream, fold)}"
            )
    timings = {"train_s": 0.0, "features_s": 0.0, "fusion_s": 0.0}
    parts = []
    for k in folds:
        feats = {}
        for fields in (64, 128):
            t0 = time.perf_counter()
            if train.finished(run_dir, fields, k, config) is None:
                train.train_stream(run_dir, fields, k, config, jobs=jobs, verbose=verbose)
            t1 = time.perf_counter()
            feats[fields] = stream_features(run_dir, config, fields, k, progress=progress)
            timings["train_s"] += t1 - t0
            timings["features_s"] += time.perf_counter() - t1
        t0 = time.perf_counter()
        df = fuse_fold(feats[64], feats[128], svm_train, C, seed=config.seed)
        timings["fusion_s"] += time.perf_counter() - t0
        df.insert(0, "fold", k)
        parts.append(df)
    pred = pd.concat(parts, ignore_index=True)
    t0 = time.perf_counter()
    fold_table, summary = _score(pred)
    timings["metrics_s"] = time.perf_counter() - t0
    from dataclasses import asdict

    info = {
        "protocol": config.protocol,
        "svm_train": svm_train,
        "C": C,
        "folds": folds,
        "config": asdict(config),
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }
    return _save(evaluate_dir(run_dir, config, svm_train), pred, fold_table, summary, info)


def load(run_dir, config: train.Config, svm_train: str = "augmented") -> Evaluation:
    """A finished evaluation, read back from its folder (what notebook 06 does)."""
    out = evaluate_dir(run_dir, config, svm_train)
    if not (out / "evaluate.json").is_file():
        raise EvaluateError(f"no evaluation in {out}; run: python -m mexpr evaluate --run {run_dir} --protocol {config.protocol}")
    return Evaluation(
        pd.read_csv(out / "predictions.csv"),
        pd.read_csv(out / "folds.csv"),
        pd.read_csv(out / "summary.csv"),
        json.loads((out / "evaluate.json").read_text()),
    )


# --------------------------------------------------------------------------------------------
# Table 4


def table4(ev: Evaluation, methods=None, paper: bool = True, max_fold_columns: int = 5) -> pd.DataFrame:
    """Table 4's layout: accuracy (%) per fold and the average over folds, one row per method;
    with ``paper=True`` the paper's numbers beside ours (``paper Fold1`` ... ``paper Average``).
    Protocols with more than ``max_fold_columns`` folds (LOSO) show the average and pooled only."""
    methods = list(methods or PAPER_METHODS)
    f = ev.folds[ev.folds["method"].isin(methods)]
    wide = f.pivot(index="method", columns="fold", values="accuracy").reindex(methods) * 100
    n = wide.shape[1]
    wide.columns = [f"Fold{int(k) + 1}" for k in wide.columns]  # the fold's own number, also when only some ran
    out = wide if n <= max_fold_columns else pd.DataFrame(index=wide.index)
    out = out.assign(Average=wide.mean(axis=1))
    pooled = ev.summary.set_index("method")["pooled_accuracy"].reindex(methods) * 100
    if n > max_fold_columns:
        out["Pooled"] = pooled
    out = out.round(2)
    if paper:
        ref = PAPER_TABLE4.reindex(methods).add_prefix("paper ")
        out = out.join(ref)
    out.index.name = "method"
    return out


def table_markdown(df: pd.DataFrame, floatfmt: str = ".2f") -> str:
    """A DataFrame as a GitHub markdown table (no tabulate dependency); NaN shows as an en dash."""
    cols = [df.index.name or ""] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for idx, row in df.iterrows():
        cells = [str(idx)] + ["–" if isinstance(v, float) and np.isnan(v) else (format(v, floatfmt) if isinstance(v, float) else str(v)) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_rows(ev: Evaluation) -> list[str]:
    """Table 4's rows for ``ev``: all of the paper's, in its order (blank where not evaluated), then
    the labelled rows of ours that ``ev`` holds (e.g. DTSCNN on the ``mexpr`` input, baselines with
    balanced SVMs), leaving out the fusion extensions (:data:`EXTENSIONS`)."""
    paper = list(PAPER_TABLE4.index)
    ours = [m for m in dict.fromkeys(ev.folds["method"]) if m not in paper and m not in EXTENSIONS and not any(m.startswith(e) for e in EXTENSIONS)]
    return paper + ours


def relabel(ev: Evaluation, label: str, methods=PAPER_METHODS) -> Evaluation:
    """``ev`` with its ``methods`` renamed ``<method><label>`` (e.g. ``"DTSCNN (fusion) (mexpr input,
    ours)"``) and only those kept, so that DTSCNN on two inputs can sit in one Table 4 and Figure 7
    (:func:`combine`)."""
    names = {m: m + label for m in methods}
    keys = ["fold", "subject_id", "clip", "label", "y"]
    pred = ev.predictions[keys + list(methods)].rename(columns=names)
    folds = ev.folds[ev.folds["method"].isin(methods)].replace({"method": names})
    summary = ev.summary[ev.summary["method"].isin(methods)].replace({"method": names})
    return Evaluation(pred, folds.reset_index(drop=True), summary.reset_index(drop=True), ev.info | {"methods": list(names.values())})


def write_table4(ev: Evaluation, run_dir, name: str = "table4", methods=None) -> pd.DataFrame:
    """Table 4 as ``<run_dir>/tables/<name>.csv`` and ``.md``: by default all of the paper's rows, ours
    beside them (rows we have not evaluated, e.g. the baselines before notebook 07, are blank), then
    our labelled rows (:func:`table_rows`); returns it."""
    t = table4(ev, methods or table_rows(ev))
    out = Path(run_dir) / "tables"
    out.mkdir(parents=True, exist_ok=True)
    t.to_csv(out / f"{name}.csv")
    (out / f"{name}.md").write_text(table_markdown(t))
    return t


# --------------------------------------------------------------------------------------------
# prediction on new clips


def fold_svms(run_dir, config: train.Config, fold: int = 0, svm_train: str = "augmented", C: float = 1.0) -> dict:
    """Both streams' SVMs of ``fold``, refitted from the cached features (deterministic, a second
    or two; no pickles are stored): ``{64: svm, 128: svm}``."""
    return {
        f: fusion.fit_svm(
            *svm_training_set(stream_features(run_dir, config, f, fold), svm_train),
            C=C,
            seed=config.seed,
            name=f"DTSCNN{f} {svm_train} training features",
        )
        for f in (64, 128)
    }


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """A clip folder's image files in frame order (by the last number in the name, not as text)."""
    from mexpr.datasets import IMAGE_SUFFIXES, frame_number

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of frames")
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    if len(files) < 2:
        raise ValueError(f"{folder}: {len(files)} image frame(s) ({', '.join(IMAGE_SUFFIXES)}); a clip needs at least 2")
    return sorted(files, key=lambda p: (frame_number(p) is None, frame_number(p) or 0, p.name))


def run_preprocess_config(run_dir):
    """The run's pre-processing :class:`~mexpr.preprocess.Config` (``preprocess.json``)."""
    import dataclasses

    from mexpr import preprocess

    path = Path(run_dir) / "preprocess.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} has no pre-processing")
    saved = json.loads(path.read_text())["config"]
    names = {f.name for f in dataclasses.fields(preprocess.Config)} - {"model"}  # the model is recorded as name:size
    return preprocess.Config(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items() if k in names})


def clip_inputs(run_dir, folder, flows: dict | None = None) -> dict:
    """A raw frame folder through the run's own pre-processing, flow and Munsell coding:
    ``{64: uint8 (64, 112, 96, 3), 128: uint8 (128, 112, 96, 3)}``.  ``flows``: per stream, how
    to compute and code the flow (:func:`stream_flow`; default: the run's flow stage).  Raises the
    pre-processing's errors (e.g. :class:`~mexpr.preprocess.FaceNotFoundError` naming the frame)
    on bad input."""
    from mexpr import augment, flow, preprocess

    flows = flows or {f: augment.flow_config(run_dir) for f in (64, 128)}
    clip = preprocess.preprocess_clip(frame_files(folder), run_preprocess_config(run_dir))
    return {f: flow.to_munsell(flow.compute_as(clip.resample(f + 1), cfg), cfg["normalize"]) for f, cfg in flows.items()}


def run_facts(run_dir, config: train.Config, ev: Evaluation) -> pd.Series:
    """The measurements of a run that bear on its results, gathered from what the notebooks wrote
    (notebook 06's "reading the gap"): the fused predictions per class against the test clips per
    class, each stream's final training accuracy (``train.json``), the flow magnitude before and
    after the crops (notebook 04's ``augment_jitter.csv``) and how far the test clips' pool4
    features lie from the augmented training clips' (notebook 05's ``fusion_feature_shift.csv``).
    A table a notebook did not write is left out."""
    run_dir = Path(run_dir)
    facts = {}
    share = lambda s: ", ".join(f"{c[0]} {100 * v:.0f}" for c, v in s.value_counts(normalize=True).reindex(CLASSES, fill_value=0).items())  # noqa: E731
    facts["fused predictions per class (%)"] = share(ev.predictions["DTSCNN (fusion)"])
    facts["test clips per class (%)"] = share(ev.predictions["label"])
    tj = train.experiment_dir(run_dir, config) / "train.json"
    if tj.is_file():
        streams = json.loads(tj.read_text())["streams"]
        facts["networks' final training accuracy (augmented clips)"] = ", ".join(
            f"{r['stream']} fold {r['fold']}: {r['accuracy']:.2f}" for r in streams
        )
    jitter = run_dir / "tables" / "augment_jitter.csv"
    if jitter.is_file():
        for m, g in pd.read_csv(jitter).groupby("mode"):
            facts[f"mean flow per field, crops per {m} (px, notebook 04)"] = (
                f"{g['plain_px'].mean():.3f} before augmentation, {g['augmented_px'].mean():.3f} after"
            )
    shift = run_dir / "tables" / "fusion_feature_shift.csv"
    if shift.is_file():
        for r in pd.read_csv(shift).itertuples():
            facts[f"{r.stream} features, mean |z| vs the augmented training clips (notebook 05)"] = (
                f"augmented {r.augmented}, original {r.original}, test {r.test}"
            )
    return pd.Series(facts, name="this run")


def clip_stages(run_dir, key: str, config: train.Config | None = None, fold: int = 0) -> dict:
    """What the pipeline made of one of the run's clips (``subject_id/clip``), for pictures:
    ``clip`` (its :func:`mexpr.datasets.load` row: frame files, onset, apex, offset, label),
    ``crop`` (the pre-processed frames interpolated to 129, ``uint8 (129, 112, 96, 3)``) and
    ``munsell`` (``{64: ..., 128: ...}``, the coded flow each stream reads: the run's flow stage,
    or ``config``'s input as fold ``fold`` codes it).  ``KeyError`` names a clip the run does not
    have (or skipped)."""
    from mexpr import datasets, preprocess

    info = json.loads((Path(run_dir) / "dataset.json").read_text())
    df = datasets.load(info["roots"], errors="skip")
    clips = train.clips_table(run_dir, config)
    hit, row = df[clip_keys(df) == key], clips[clip_keys(clips) == key]
    if hit.empty or row.empty:
        raise KeyError(f"{key!r} is not a processed clip with flow in {run_dir} (see its manifest.csv and flow_manifest.csv)")
    row = row.iloc[0]
    scale = {f: None if config is None else stream_flow(run_dir, config, f, fold)["normalize"] for f in (64, 128)}
    return {
        "clip": hit.iloc[0],
        "crop": preprocess.load_clip(run_dir, row, 129),
        "munsell": {f: train.clip_munsell(run_dir, row, f, scale[f]) for f in (64, 128)},
    }


def predict_clips(
    run_dir, config: train.Config, folders, fold: int = 0, svm_train: str = "augmented", C: float = 1.0, progress: bool = True
) -> pd.DataFrame:
    """Classify new clips (raw frame folders) with fold ``fold``'s trained streams, their SVMs and
    Eq. 11.  One row per folder: ``status`` ("ok" or "error" with the ``reason``), the fused
    ``prediction``, which stream it came from, and both streams' probabilities.  A folder that
    fails (no face, corrupt frame...) is reported and the others carry on."""
    from tqdm.auto import tqdm

    from mexpr import models, preprocess

    svms = fold_svms(run_dir, config, fold, svm_train, C)
    flows = {f: stream_flow(run_dir, config, f, fold) for f in (64, 128)}
    extractors = {f: models.pool4_features(models.load(train.stream_dir(run_dir, config, f, fold) / "model.keras")) for f in (64, 128)}
    rows = []
    for folder in tqdm(list(folders), desc="predict", unit="clip", disable=not progress):
        row = {"clip_dir": str(folder), "status": "ok", "reason": ""}
        try:
            x = clip_inputs(run_dir, folder, flows)
        except (preprocess.PreprocessError, ValueError, FileNotFoundError) as exc:
            rows.append(row | {"status": "error", "reason": str(exc)})
            continue
        p = {}
        for f in (64, 128):
            feats = extractors[f].predict(models.check_clips(x[f], f, name=str(folder)), verbose=0)
            p[f] = fusion.proba(svms[f], feats)
        fused = int(fusion.decision_fusion(p[64], p[128])[0])
        row |= {
            "prediction": CLASSES[fused],
            "from": "DTSCNN64" if fusion.first_decides(p[64], p[128])[0] else "DTSCNN128",
            "DTSCNN64": CLASSES[int(p[64].argmax())],
            "DTSCNN128": CLASSES[int(p[128].argmax())],
        }
        for f in (64, 128):
            row |= {f"p{f}_{s}": round(float(v), 4) for s, v in zip(SHORT, p[f][0])}
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# the baselines (Table 4's other rows)

#: The paper's baselines and their Table 4 names.
BASELINES = {"stclqp": "STCLQP", "mdmo": "MDMO", "fdm": "FDM"}


def baseline_methods(method: str, balanced: bool = False) -> list[str]:
    """Table 4's three rows of a baseline: TIM64, TIM128 and their Eq. 11 fusion; with ``balanced``
    (ours: class-weighted SVMs) labelled as such, e.g. ``"STCLQP (fusion, balanced, ours)"``, so
    that both can sit in one table (:func:`combine`); the paper has no value for those rows."""
    name = BASELINES[method]
    if balanced:
        return [f"{name} TIM64 (balanced, ours)", f"{name} TIM128 (balanced, ours)", f"{name} (fusion, balanced, ours)"]
    return [f"{name} TIM64", f"{name} TIM128", f"{name} (fusion)"]


def baseline_dir(run_dir, method: str, protocol: str, seed: int, balanced: bool = False) -> Path:
    return Path(run_dir) / "baselines" / f"{method}{'-balanced' if balanced else ''}-{protocol}-s{int(seed)}"


def evaluate_baseline(
    run_dir,
    method: str,
    protocol: str = "paper",
    seed: int = 0,
    folds=None,
    jobs: int | None = None,
    progress: bool = True,
    inner_folds: int = 3,
    balanced: bool = False,
) -> Evaluation:
    """A baseline (``"stclqp"``, ``"mdmo"``, ``"fdm"``) through the same folds, metrics and Eq. 11 as
    DTSCNN: its descriptor on every clip's TIM64 and TIM128 input (:mod:`mexpr.baselines.extract`,
    cached), per fold the paper's SVM fitted on the training clips only (STCLQP's codebooks too),
    class probabilities for the test clips, and their fusion.  Clips the extraction skipped (the
    reason is in ``info["skipped"]``) are left out of every fold.  Writes
    ``<run_dir>/baselines/<method>-<protocol>-s<seed>/`` like :func:`evaluate`.

    ``balanced=True`` (ours, not the paper's): the SVMs get balanced class weights, their grid
    search scores balanced accuracy and their probabilities are prior-corrected
    (:func:`mexpr.baselines.classify.fit`), so that they do not answer Others for every clip; the
    rows are named :func:`baseline_methods` ``(..., balanced=True)`` and the folder is
    ``<method>-balanced-<protocol>-s<seed>``."""
    from mexpr import datasets
    from mexpr.baselines import classify, extract

    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; valid: {', '.join(BASELINES)}")
    df = train.clips_table(run_dir)
    all_folds = datasets.splits(df, protocol, seed)
    folds = _check_folds(folds, len(all_folds), protocol)
    names = baseline_methods(method, balanced)
    timings = {"extract_s": 0.0, "svm_s": 0.0}
    t0 = time.perf_counter()
    X, tables = {}, {}
    for f in (64, 128):
        X[f], tables[f] = extract.features(run_dir, method, f, clips=df, jobs=jobs, progress=progress)
    timings["extract_s"] = time.perf_counter() - t0
    ok = np.ones(len(df), bool)
    skipped = []
    for f, t in tables.items():
        miss = (t["status"] != "processed").to_numpy()
        skipped += [f"TIM{f} {r.subject_id}/{r.clip}: {r.reason}" for r in t[miss].itertuples()]
        ok &= ~miss
    y = np.array([CLASSES.index(c) for c in df["label"]], np.int64)
    parts, chosen = [], []
    for k in folds:
        tr = np.array([i for i in all_folds[k]["train"] if ok[i]], int)
        te = np.array([i for i in all_folds[k]["test"] if ok[i]], int)
        t1 = time.perf_counter()
        p = {}
        for f in (64, 128):
            Xf = extract.stclqp_fold_features(X[f], tr, seed=seed) if method == "stclqp" else X[f]
            est = classify.fit(method, Xf[tr], y[tr], seed=seed, inner_folds=inner_folds, balanced=balanced)
            p[f] = classify.proba(est, Xf[te])
            chosen.append({"fold": k, "fields": f, **est.best_params_, "inner_cv_score": round(float(est.best_score_), 4)})
        timings["svm_s"] += time.perf_counter() - t1
        preds = dict(zip(names, (p[64].argmax(1), p[128].argmax(1), fusion.decision_fusion(p[64], p[128]))))
        d = _prediction_table(df["subject_id"].to_numpy()[te], df["clip"].to_numpy()[te], y[te], p[64], p[128], preds, (names[0], names[1]))
        d.insert(0, "fold", k)
        parts.append(d)
    pred = pd.concat(parts, ignore_index=True)
    fold_table, summary = _score(pred, names)
    out = baseline_dir(run_dir, method, protocol, seed, balanced)
    info = {
        "method": method,
        "methods": names,
        "protocol": protocol,
        "seed": seed,
        "balanced": bool(balanced),
        "folds": folds,
        "skipped": skipped,
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }
    ev = _save(out, pred, fold_table, summary, info)
    pd.DataFrame(chosen).to_csv(out / "svm_parameters.csv", index=False)
    return ev


def combine(evaluations) -> Evaluation:
    """Several evaluations of one protocol (DTSCNN and baselines) as one, for a single Table 4
    and Figure 7: folds and summaries stacked, predictions joined clip by clip (probability
    columns dropped)."""
    evaluations = list(evaluations)
    keys = ["fold", "subject_id", "clip", "label", "y"]
    pred = None
    methods = []
    for ev in evaluations:
        ms = ev.info.get("methods") or METHODS
        methods += ms
        part = ev.predictions[keys + [m for m in ms if m in ev.predictions]]
        pred = part if pred is None else pred.merge(part, on=keys, how="inner")
    folds = pd.concat([ev.folds for ev in evaluations], ignore_index=True)
    summary = pd.concat([ev.summary for ev in evaluations], ignore_index=True)
    return Evaluation(pred, folds, summary, {"methods": methods, "parts": [ev.info.get("dir") for ev in evaluations]})
