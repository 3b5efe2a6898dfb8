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

Metrics (:mod:`mexpr.metrics`): accuracy, UF1 and UAR.  Averages are the mean over folds (as
Table 4's "Average"); "pooled" computes the metric once over every fold's test clips together (the
LOSO convention).  Table 4 and the combined tables are :mod:`mexpr.report`'s; classifying new clips
is :mod:`mexpr.predict`'s.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mexpr import fusion, train
from mexpr.datasets import CLASSES, PROTOCOLS, clip_keys  # noqa: F401  (re-exported: evaluate.PROTOCOLS)
from mexpr.metrics import SHORT, confusion, metrics
from mexpr.settings import POOL4_FEATURES

#: The paper's three DTSCNN rows, in Table 4's order.
PAPER_METHODS = ["DTSCNN64", "DTSCNN128", "DTSCNN (fusion)"]
#: Our labelled extensions, computed beside them.
EXTENSIONS = ["DTSCNN (probability average, ours)", "DTSCNN (feature concatenation, ours)", "DTSCNN64 softmax (ours)", "DTSCNN128 softmax (ours)"]
METHODS = PAPER_METHODS + EXTENSIONS

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
    if config.devices != 1:
        opts.append(f"--devices {config.devices}")
    return "python -m mexpr train " + " ".join(opts)


def _batches(loader, items, batch: int):
    """``items`` loaded ``batch`` at a time (``np.stack`` of ``loader(item)``, two items at a time:
    :func:`mexpr._io.thread_map`), the next batch loaded in a thread while the caller works on this
    one (reading and coding a clip is mostly NumPy and zlib, which let TensorFlow's threads run meanwhile)."""
    from concurrent.futures import ThreadPoolExecutor

    from mexpr import _io

    chunks = [items[i : i + batch] for i in range(0, len(items), batch)]
    if not chunks:
        return
    with ThreadPoolExecutor(1) as pool:
        load = lambda chunk: np.stack(_io.thread_map(loader, chunk))  # noqa: E731
        ahead = pool.submit(load, chunks[0])
        for nxt in chunks[1:] + [None]:
            x = ahead.result()
            if nxt is not None:
                ahead = pool.submit(load, nxt)
            yield x


def _forward(model):
    """A trained stream's pool4 features and softmax for a batch, as one compiled TensorFlow
    function: on CPU about twice as fast as calling the Keras model eagerly, with the same numbers."""
    import keras
    import tensorflow as tf

    both = keras.Model(model.inputs[0], [model.get_layer("pool4_flat").output, model.outputs[0]])
    return tf.function(lambda x: both(x, training=False), reduce_retracing=True)


def _extract(forward, loader, items, batch: int, progress, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """pool4 features and softmax of ``items`` (loaded ``batch`` at a time; ``forward``: :func:`_forward`)."""
    from tqdm.auto import tqdm

    feats, probs = [], []
    with tqdm(total=len(items), desc=desc, unit="clip", disable=not progress, leave=False) as bar:
        for x in _batches(loader, items, batch):
            f, p = forward(x)
            feats.append(np.asarray(f, np.float32))
            probs.append(np.asarray(p, np.float32))
            bar.update(len(x))
    if not feats:
        return np.zeros((0, POOL4_FEATURES), np.float32), np.zeros((0, len(CLASSES)), np.float32)
    return np.concatenate(feats), np.concatenate(probs)


def stream_features(run_dir, config: train.Config, fields: int, fold: int, batch: int = 20, progress: bool = False) -> dict:
    """pool4 features of one trained stream on one fold: ``{"augmented", "augmented_y",
    "augmented_sources", "original", "original_y", "original_clips", "test", "test_y",
    "test_softmax", "test_clips"}`` (``*_clips``/``*_sources``: ``subject_id/clip`` names).

    Cached as ``features.npz`` beside the model, keyed by the model's ``done.json``: retraining
    the stream recomputes them.  Only the fold's training side is ever augmented (the plan is
    :func:`mexpr.train.fold_plan`'s, which refuses test clips)."""
    from mexpr import augment, models

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
    forward = _forward(models.load(out / "model.keras"))
    res = {}
    load = lambda r: train.clip_munsell(run_dir, r, fields, fcfg)  # noqa: E731
    rows = [r for _, r in trainset.iterrows()]
    f, _ = _extract(forward, load, rows, batch, progress, f"features fold {fold} f{fields} original")
    res["original"], res["original_y"] = f, np.array([CLASSES.index(c) for c in trainset["label"]], np.int64)
    res["original_clips"] = clip_keys(trainset).to_numpy(dtype=str)
    # a sample drawn twice is one file (plain oversampling): its features are computed once; an
    # uncropped, unmirrored sample (mode "none") is its training clip exactly, whose features are above
    unique, first, again = np.unique(np.asarray(paths, dtype=str), return_index=True, return_inverse=True)
    same = np.array([r["mode"] == "none" and not augment.flipped(r) for r in samples.to_dict("records")], bool)
    at = {k: i for i, k in enumerate(res["original_clips"])}
    source = samples["source"].to_numpy(dtype=str)
    f = np.zeros((len(unique), POOL4_FEATURES), np.float32)
    known = same[first]
    f[known] = res["original"][[at[source[j]] for j in first[known]]]
    todo = np.flatnonzero(~known)
    f[todo], _ = _extract(forward, lambda p: np.load(p), list(unique[todo]), batch, progress, f"features fold {fold} f{fields} augmented")
    res["augmented"] = f[again]
    res["augmented_y"] = np.array([CLASSES.index(c) for c in samples["label"]], np.int64)
    res["augmented_sources"] = source  # the clip each sample was made from
    rows = [r for _, r in test.iterrows()]
    f, p = _extract(forward, load, rows, batch, progress, f"features fold {fold} f{fields} test")
    res["test"], res["test_softmax"], res["test_y"] = f, p, np.array([CLASSES.index(c) for c in test["label"]], np.int64)
    res["test_clips"] = clip_keys(test).to_numpy(dtype=str)
    from mexpr import _io

    with _io.replacing(cache, suffix=".npz") as tmp:  # a unique name: two writers of one stream never share it
        np.savez(tmp, key=np.array(key), **res)
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


def fuse_fold(f64: dict, f128: dict, svm_train: str = "augmented", C: float = 1.0, seed: int = 0, classes=None) -> pd.DataFrame:
    """SVMs and fusion on one fold's cached features (:func:`stream_features` of both streams):
    one row per test clip with both streams' probabilities and every method's prediction.
    ``classes``: the protocol's class indices (None: all four; ``megc3``: three, and no method
    predicts a class outside them)."""
    if len(f64["test"]) != len(f128["test"]) or not np.array_equal(f64["test_y"], f128["test_y"]):
        raise EvaluateError("the two streams' features describe different test clips; re-extract them")
    (X64, y64), (X128, y128) = svm_training_set(f64, svm_train), svm_training_set(f128, svm_train)
    probs = {}
    for name, f, X, y in (("64", f64, X64, y64), ("128", f128, X128, y128)):
        svm = fusion.fit_svm(X, y, C=C, seed=seed, name=f"DTSCNN{name} {svm_train} training features", classes=classes)
        probs[name] = fusion.proba(svm, f["test"], name=f"DTSCNN{name} test features", classes=classes)
    if not np.array_equal(y64, y128):
        raise EvaluateError("the two streams were trained on different labels; concatenation needs the same samples")
    concat = fusion.proba(
        fusion.fit_svm(np.hstack([X64, X128]), y64, C=C, seed=seed, name="concatenated features", classes=classes),
        np.hstack([f64["test"], f128["test"]]),
        classes=classes,
    )
    allowed = np.zeros(len(CLASSES), bool)
    allowed[list(range(len(CLASSES)) if classes is None else classes)] = True
    softmax = lambda p: np.where(allowed, p, -np.inf).argmax(1)  # noqa: E731  (the network's four outputs, the protocol's classes)
    p64, p128 = probs["64"], probs["128"]
    subject, clip = zip(*(s.rsplit("/", 1) for s in f64["test_clips"])) if len(f64["test_clips"]) else ((), ())
    preds = {
        "DTSCNN64": p64.argmax(1),
        "DTSCNN128": p128.argmax(1),
        "DTSCNN (fusion)": fusion.decision_fusion(p64, p128),
        "DTSCNN (probability average, ours)": fusion.average_fusion(p64, p128),
        "DTSCNN (feature concatenation, ours)": concat.argmax(1),
        "DTSCNN64 softmax (ours)": softmax(f64["test_softmax"]),
        "DTSCNN128 softmax (ours)": softmax(f128["test_softmax"]),
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
    from mexpr.datasets import check_folds

    return check_folds(folds, n_folds, protocol, EvaluateError)


def _save(out: Path, pred: pd.DataFrame, fold_table: pd.DataFrame, summary: pd.DataFrame, info: dict) -> Evaluation:
    """Write an evaluation's files (``predictions.csv``, ``folds.csv``, ``summary.csv``,
    ``evaluate.json``) into ``out``; returns it as an :class:`Evaluation` (the folder in ``info["dir"]``)."""
    from mexpr import _io

    out.mkdir(parents=True, exist_ok=True)
    _io.atomic_write_text(out / "predictions.csv", pred.to_csv(index=False))
    if info.get("protocol") == "megc3":  # MEGC 2019 reports each corpus beside the composite
        from mexpr.datasets import protocol_classes

        _io.atomic_write_text(out / "by_corpus.csv", by_corpus(pred, info.get("methods"), protocol_classes("megc3")).to_csv(index=False))
    _io.atomic_write_text(out / "folds.csv", fold_table.to_csv(index=False))
    _io.atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    info = info | {"dir": str(out)}
    _io.atomic_write_text(out / "evaluate.json", json.dumps(info, indent=2) + "\n")
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


def _score(pred: pd.DataFrame, methods=METHODS, classes=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for fold, g in pred.groupby("fold", sort=True):
        for m in methods:
            rows.append({"method": m, "fold": int(fold)} | metrics(g["y"], g[m].map(CLASSES.index)))
    folds = pd.DataFrame(rows)
    summ = []
    for m in methods:
        mean = folds[folds["method"] == m][["accuracy", "uf1", "uar"]].mean()
        pooled = metrics(pred["y"], pred[m].map(CLASSES.index), classes)
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


def by_corpus(pred: pd.DataFrame, methods=None, classes=None) -> pd.DataFrame:
    """UF1 and UAR of each method pooled over all folds, per corpus (the part of
    ``subject_id`` before ``/``) and over all of them ("composite"), as MEGC 2019 reports them:
    each from the confusion matrix of the pooled predictions (:func:`mexpr.metrics.metrics` with
    the protocol's ``classes``).  One row per (method, corpus) with ``uf1``, ``uar``, ``accuracy``
    and ``n``."""
    methods = methods or [m for m in METHODS if m in pred.columns]
    corpus = pred["subject_id"].astype(str).str.split("/").str[0]
    rows = []
    for m in methods:
        for name, g in [*sorted(pred.groupby(corpus)), ("composite", pred)]:
            rows.append({"method": m, "corpus": name} | metrics(g["y"], g[m].map(CLASSES.index), classes))
    return pd.DataFrame(rows)


def _stream_task(run_dir: str, config: train.Config, fields: int, fold: int) -> tuple[dict, float, float]:
    """One (protocol, fold, stream, seed) task of an evaluation on a Dask worker: train the stream
    (unless it finished earlier) and extract its features; returns them with both durations."""
    t0 = time.perf_counter()
    train.train_stream(run_dir, fields, fold, config, jobs=1, verbose=0)  # a finished stream is read back, not trained
    t1 = time.perf_counter()
    feats = stream_features(run_dir, config, fields, fold)
    return feats, t1 - t0, time.perf_counter() - t1


def _stream_tasks(run_dir, config: train.Config, folds: list[int], timings: dict, progress: bool) -> dict | None:
    """Inside :func:`mexpr.scale.scheduler`: every stream of every fold trained and its features
    extracted as one Dask task each, ``{(fold, fields): features}`` (the task durations added to
    ``timings``); without a scheduler ``None`` (the folds then run here, one after another)."""
    from mexpr import scale

    if scale.current() is None:
        return None
    pairs = [(k, fields) for k in folds for fields in (64, 128)]
    calls = [(str(run_dir), config, fields, k) for k, fields in pairs]
    keys = [train.task_key(run_dir, config, fields, k, kind="evaluate") for k, fields in pairs]
    costs = [fields for _, fields in pairs]  # DTSCNN128 first: about twice DTSCNN64's time
    out = scale.run_tasks(_stream_task, calls, keys, desc=f"train + features ({len(pairs)} streams)", progress=progress, costs=costs)
    for _, t_train, t_feat in out:
        timings["train_s"] += t_train
        timings["features_s"] += t_feat
    return {pair: feats for pair, (feats, _, _) in zip(pairs, out)}


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
    from mexpr.datasets import protocol_classes

    classes = protocol_classes(config.protocol)
    timings = {"train_s": 0.0, "features_s": 0.0, "fusion_s": 0.0}
    parts = []
    tasks = _stream_tasks(run_dir, config, folds, timings, progress)  # inside mexpr.scale.scheduler: every stream of every fold, as Dask tasks
    for k in folds:
        feats = {}
        for fields in (64, 128):
            if tasks is not None:
                feats[fields] = tasks[(k, fields)]
                continue
            t0 = time.perf_counter()
            if train.finished(run_dir, fields, k, config) is None:
                train.train_stream(run_dir, fields, k, config, jobs=jobs, verbose=verbose)
            t1 = time.perf_counter()
            feats[fields] = stream_features(run_dir, config, fields, k, progress=progress)
            timings["train_s"] += t1 - t0
            timings["features_s"] += time.perf_counter() - t1
        t0 = time.perf_counter()
        df = fuse_fold(feats[64], feats[128], svm_train, C, seed=config.seed, classes=classes)
        timings["fusion_s"] += time.perf_counter() - t0
        df.insert(0, "fold", k)
        parts.append(df)
    pred = pd.concat(parts, ignore_index=True)
    t0 = time.perf_counter()
    fold_table, summary = _score(pred, classes=classes)
    timings["metrics_s"] = time.perf_counter() - t0
    from dataclasses import asdict

    from mexpr import scale

    info = {
        "protocol": config.protocol,
        "svm_train": svm_train,
        "C": C,
        "folds": folds,
        "config": asdict(config),
        "timings": {k: round(v, 2) for k, v in timings.items()},  # on a cluster: the tasks' seconds, added up
        **scale.describe(),  # on a Dask cluster: its address and workers
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


def _baseline_fit(
    method: str, X: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray, seed: int, inner_folds: int, balanced: bool, classes=None
):
    """One baseline SVM of one fold and TIM length (a Dask task inside :func:`mexpr.scale.scheduler`):
    fitted on the training rows ``tr`` of ``X`` (STCLQP's codebooks too), the test rows' class
    probabilities, the parameters its grid search chose, and the seconds it took."""
    from mexpr.baselines import classify, extract

    t0 = time.perf_counter()
    Xf = extract.stclqp_fold_features(X, tr, seed=seed) if method == "stclqp" else X
    est = classify.fit(method, Xf[tr], y[tr], seed=seed, inner_folds=inner_folds, balanced=balanced, classes=classes)
    params = {**est.best_params_, "inner_cv_score": round(float(est.best_score_), 4)}
    return classify.proba(est, Xf[te], classes), params, time.perf_counter() - t0


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
    together=(),
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
    ``<method>-balanced-<protocol>-s<seed>``.  ``together``: the other baselines about to be
    evaluated; the flow descriptors among them (MDMO, FDM) are extracted from the same flow as
    this one's (:func:`mexpr.baselines.extract.features`), which is then computed once."""
    from mexpr import _io, datasets, scale
    from mexpr.baselines import extract

    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; valid: {', '.join(BASELINES)}")
    df = datasets.protocol_table(train.clips_table(run_dir), protocol)
    classes = datasets.protocol_classes(protocol)
    all_folds = datasets.splits(df, protocol, seed)
    folds = _check_folds(folds, len(all_folds), protocol)
    names = baseline_methods(method, balanced)
    timings = {"extract_s": 0.0, "svm_s": 0.0}
    t0 = time.perf_counter()
    X, tables = {}, {}
    share = [m for m in together if m in extract.FLOW_METHODS] if method in extract.FLOW_METHODS else []
    for f in (64, 128):
        X[f], tables[f] = extract.features(run_dir, method, f, clips=df, jobs=jobs, progress=progress, together=share)
    timings["extract_s"] = time.perf_counter() - t0
    ok = np.ones(len(df), bool)
    skipped = []
    for f, t in tables.items():
        miss = (t["status"] != "processed").to_numpy()
        skipped += [f"TIM{f} {r.subject_id}/{r.clip}: {r.reason}" for r in t[miss].itertuples()]
        ok &= ~miss
    y = np.array([CLASSES.index(c) for c in df["label"]], np.int64)
    parts, chosen = [], []
    split = {
        k: (np.array([i for i in all_folds[k]["train"] if ok[i]], int), np.array([i for i in all_folds[k]["test"] if ok[i]], int)) for k in folds
    }
    # one SVM fit per (fold, TIM length): here one after another, or inside mexpr.scale.scheduler as Dask tasks
    shared = scale.share(X)  # on a cluster: the feature matrices sent to the workers once, not with every task
    pairs = [(k, f) for k in folds for f in (64, 128)]
    calls = [(method, shared[f], y, *split[k], seed, inner_folds, balanced, classes) for k, f in pairs]
    keys = [scale.task_key("baseline", method, protocol, f"s{seed}", f"fold{k}", f"tim{f}", str(run_dir), balanced) for k, f in pairs]
    fits = dict(zip(pairs, scale.run_tasks(_baseline_fit, calls, keys, desc=f"{method} SVMs", progress=progress)))
    for k in folds:
        te = split[k][1]
        p = {}
        for f in (64, 128):
            p[f], params, seconds = fits[(k, f)]
            chosen.append({"fold": k, "fields": f, **params})
            timings["svm_s"] += seconds
        preds = dict(zip(names, (p[64].argmax(1), p[128].argmax(1), fusion.decision_fusion(p[64], p[128]))))
        d = _prediction_table(df["subject_id"].to_numpy()[te], df["clip"].to_numpy()[te], y[te], p[64], p[128], preds, (names[0], names[1]))
        d.insert(0, "fold", k)
        parts.append(d)
    pred = pd.concat(parts, ignore_index=True)
    fold_table, summary = _score(pred, names, classes)
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
        **scale.describe(),
    }
    ev = _save(out, pred, fold_table, summary, info)
    _io.atomic_write_text(out / "svm_parameters.csv", pd.DataFrame(chosen).to_csv(index=False))
    return ev
