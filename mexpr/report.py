"""Reporting: Table 4 beside the paper's numbers, its markdown, the labelled rows of ours, several
evaluations combined into one table (Peng et al. 2017, Table 4; docs/DESIGN.md §7), and the
facts of a run that bear on its results (notebook 06).

Nothing here computes a prediction: it reads :class:`mexpr.evaluate.Evaluation` objects.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mexpr import train
from mexpr.datasets import CLASSES
from mexpr.evaluate import EXTENSIONS, METHODS, PAPER_METHODS, Evaluation

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


def seeds_table(evaluations: dict[int, Evaluation], methods=None) -> pd.DataFrame:
    """Mean ± standard deviation over seeds (``evaluations``: seed -> one protocol's combined
    :class:`Evaluation`, e.g. DTSCNN and the baselines) of each method's Table 4 average accuracy
    (the mean over folds), pooled UF1 and pooled UAR, in %: one row per method (default:
    :func:`table_rows` of the first seed's, those evaluated), columns ``accuracy``, ``UF1``,
    ``UAR`` (``"mean ± std"``, the sample standard deviation; ``± –`` with one seed), the numeric
    ``*_mean``/``*_std``, ``seeds``, and each seed's average accuracy (``s<seed>``).  One seed's
    test folds hold few clips of the small classes, so one seed's number is noisy; this is the
    table to compare methods by."""
    if not evaluations:
        raise ValueError("no evaluations to summarise over seeds")
    first = next(iter(evaluations.values()))
    rows = []
    for m in list(methods or table_rows(first)):
        per = {}
        for seed, ev in evaluations.items():
            f = ev.folds[ev.folds["method"] == m]
            s = ev.summary[ev.summary["method"] == m]
            if len(f) and len(s):
                per[seed] = {"accuracy": 100 * f["accuracy"].mean(), "UF1": 100 * s["pooled_uf1"].iloc[0], "UAR": 100 * s["pooled_uar"].iloc[0]}
        if not per:
            continue
        d = pd.DataFrame(per).T
        row = {"method": m}
        for k in ("accuracy", "UF1", "UAR"):
            mean, std = d[k].mean(), d[k].std() if len(d) > 1 else np.nan
            row[k] = f"{mean:.2f} ± {'–' if np.isnan(std) else f'{std:.2f}'}"
            row[f"{k}_mean"], row[f"{k}_std"] = round(mean, 2), round(std, 2)
        row["seeds"] = len(d)
        row |= {f"s{seed}": round(v, 2) for seed, v in d["accuracy"].items()}
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def write_seeds(evaluations: dict[int, Evaluation], run_dir, protocol: str) -> pd.DataFrame:
    """Each seed's Table 4 as ``tables/seeds/table4_<protocol>_s<seed>.csv|.md`` (kept), and
    :func:`seeds_table` as ``tables/table4_<protocol>_seeds.csv|.md``; returns the latter."""
    out = Path(run_dir) / "tables"
    (out / "seeds").mkdir(parents=True, exist_ok=True)
    for seed, ev in evaluations.items():
        write_table4(ev, run_dir, name=f"seeds/table4_{protocol}_s{seed}")
    t = seeds_table(evaluations)
    t.to_csv(out / f"table4_{protocol}_seeds.csv")
    shown = t[["accuracy", "UF1", "UAR", "seeds"] + [c for c in t.columns if c.startswith("s") and c[1:].isdigit()]]
    (out / f"table4_{protocol}_seeds.md").write_text(
        f"Protocol {protocol}: mean ± std over {len(evaluations)} seed(s) ({', '.join(map(str, evaluations))}); accuracy is Table 4's "
        "average over folds, UF1 and UAR are pooled over folds; s<seed>: that seed's average accuracy.\n\n" + table_markdown(shown)
    )
    return t
