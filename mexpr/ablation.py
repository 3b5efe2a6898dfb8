"""What each of the paper's input choices costs: the ablation of notebook 08 and
``benchmarks/ablation.py``.

From the paper's input (:data:`mexpr.train.INPUTS` ``"paper"``: flow between neighbouring frames,
each field coloured by its own peak, a new 2-px crop for every frame) one factor is changed at a
time (:data:`STEPS`), then all of them together (our ``"mexpr"`` input).  Every step trains both
streams on every fold of each protocol with each seed (:func:`mexpr.evaluate.evaluate`, which
reuses finished streams and cached features, so an interrupted ablation resumes), and records the
accuracy, UF1 and UAR of DTSCNN64, DTSCNN128 and their Eq. 11 fusion, and how far the test clips'
pool4 features lie from the augmented training clips' (:func:`feature_shift`).

Nothing is chosen on a test fold: every step trains for the profile's fixed number of epochs and
keeps the last epoch's weights (the test fold is a monitor only), the SVMs' C is fixed, and the
learned Munsell scale comes from the fold's training clips (:func:`mexpr.train.fold_flow`).
Results are the mean +- standard deviation over seeds of each seed's mean over folds.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mexpr import evaluate, settings, train

#: Each setting in which our input differs from the paper's, as the ablation names it.
FACTORS = {k: words[0] for k, words in train.SETTING_WORDS.items()}
_OURS = {k: v for k, v in train.INPUTS["mexpr"].items() if v != train.INPUTS["paper"].get(k)}

#: The ablation's steps: a name, and the input settings that differ from the paper's: the paper's
#: input, then each of our changes alone (and no crop at all, the third crop mode), then all of
#: them together (the ``mexpr`` input).
STEPS: dict[str, dict] = (
    {"paper input": {}}
    | {FACTORS[k]: {k: v} for k, v in _OURS.items()}
    | {"one crop per clip": {"mode": "clip"}, "mexpr input (all, ours)": dict(_OURS)}
)
MEXPR_STEP = "mexpr input (all, ours)"

#: The rows reported per step.
METHODS = ("DTSCNN64", "DTSCNN128", "DTSCNN (fusion)")
METRICS = ("uar", "uf1", "accuracy")


class AblationError(ValueError):
    """An ablation that cannot run as asked (e.g. an unknown step)."""


def configs(profile: str = "default", protocol: str = "paper", seed: int = 0, steps=None, **overrides) -> dict[str, train.Config]:
    """The training config of each step (default: all of :data:`STEPS`) for one protocol and
    seed; ``overrides`` (e.g. ``epochs``, ``per_class``) apply to every step alike."""
    steps = list(steps or STEPS)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise AblationError(f"unknown ablation step(s) {unknown}; valid: {list(STEPS)}")
    out = {}
    base = train.config_for(profile)
    for s in steps:
        cfg = train.config_for(profile, protocol=protocol, seed=seed, **(overrides | STEPS[s]))
        if (cfg.per_class, cfg.epochs) != (base.per_class, base.epochs) and not cfg.tag:
            # another budget than the profile's: its own experiment folder, never the notebooks' trained streams
            cfg = replace(cfg, tag=f"budget{cfg.per_class}x{cfg.epochs}")
        out[s] = cfg
    return out


def feature_shift(feats: dict) -> dict:
    """How far (mean |z|, in units of the augmented training features' per-feature spread) the
    original training clips and the test clips lie from the augmented training clips in pool4
    space (``feats``: :func:`mexpr.evaluate.stream_features`).  Near the augmented clips' own
    value (about 0.8) means the network was trained on the kind of input it is tested on."""
    mu, sd = feats["augmented"].mean(0), feats["augmented"].std(0) + 1e-6
    return {part: float(np.abs((feats[part] - mu) / sd).mean()) for part in ("augmented", "original", "test")}


def run(
    run_dir,
    profile: str = "default",
    protocols=("paper", "subject3"),
    seeds=(0, 1, 2),
    steps=None,
    folds=None,
    jobs: int | None = None,
    progress: bool = True,
    out: str | os.PathLike | None = None,
    **overrides,
) -> pd.DataFrame:
    """Run the ablation (see the module text) on ``run_dir``; one row per (step, protocol, seed,
    method) with the mean over folds of each metric, the pooled UAR, the feature shift of each
    stream, and the step's settings.  Written to ``<run_dir>/tables/ablation_runs.csv`` (or
    ``out``) after every step, so a long ablation can be read while it runs."""
    rows = []
    out = Path(out) if out else Path(run_dir) / "tables" / "ablation_runs.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    for protocol in protocols:
        for seed in seeds:
            for step, cfg in configs(profile, protocol, seed, steps, **overrides).items():
                t0 = time.perf_counter()
                ev = evaluate.evaluate(run_dir, cfg, folds=folds, jobs=jobs, verbose=0, progress=progress)
                shift = {}
                for fields in (64, 128):
                    per_fold = [feature_shift(evaluate.stream_features(run_dir, cfg, fields, k)) for k in ev.info["folds"]]
                    shift[fields] = {p: float(np.mean([s[p] for s in per_fold])) for p in ("augmented", "test")}
                s = ev.summary.set_index("method")
                for m in METHODS:
                    rows.append(
                        {
                            "step": step,
                            "protocol": protocol,
                            "seed": seed,
                            "method": m,
                            **{k: float(s.loc[m, k]) for k in METRICS},
                            "pooled_uar": float(s.loc[m, "pooled_uar"]),
                            "folds": len(ev.info["folds"]),
                            "shift_test_64": round(shift[64]["test"], 3),
                            "shift_test_128": round(shift[128]["test"], 3),
                            "shift_augmented_64": round(shift[64]["augmented"], 3),
                            "input": cfg.input,
                            "reference": cfg.reference,
                            "munsell": str(cfg.munsell),
                            "mode": cfg.mode,
                            "flow_method": cfg.flow_method,
                            "epochs": cfg.epochs,
                            "per_class": cfg.per_class,
                            "seconds": round(time.perf_counter() - t0, 1),
                        }
                    )
                pd.DataFrame(rows).to_csv(out, index=False)
    return pd.DataFrame(rows)


def summary(runs: pd.DataFrame, metrics=METRICS) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each metric, one row per (protocol, step,
    method), steps in :data:`STEPS` order; ``seeds`` counts them."""
    order = {s: i for i, s in enumerate(STEPS)}
    g = runs.groupby(["protocol", "step", "method"], sort=False)
    out = g[list(metrics)].agg(["mean", "std"])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    out["seeds"] = g.size()
    out = out.reset_index()
    out["_o"] = out["step"].map(order).fillna(len(order))
    return out.sort_values(["protocol", "_o", "method"]).drop(columns="_o").reset_index(drop=True)


def table(runs: pd.DataFrame, method: str = "DTSCNN (fusion)", metrics=METRICS) -> pd.DataFrame:
    """The table a student reads: one row per step, per protocol ``mean ± std`` (over seeds) of
    each metric in %, for ``method``; the change in UAR against the paper's input in points."""
    s = summary(runs, metrics)
    s = s[s["method"] == method]
    cols = {}
    for protocol, g in s.groupby("protocol", sort=False):
        g = g.set_index("step")
        for m in metrics:
            cols[(protocol, m.upper())] = [f"{100 * a:.1f} ± {100 * (0 if np.isnan(b) else b):.1f}" for a, b in zip(g[f"{m}_mean"], g[f"{m}_std"])]
        base = g["uar_mean"].get("paper input", np.nan)
        cols[(protocol, "ΔUAR vs paper (points)")] = [f"{100 * (v - base):+.1f}" for v in g["uar_mean"]]
        index = g.index
    out = pd.DataFrame(cols, index=index)
    out.index.name = f"{method}: step"
    return out


#: Where ``benchmarks/ablation.py --record`` keeps an ablation's table in the repository, for
#: notebook 08 to show beside the steps its own plan ran (``ablation_<profile>_runs.csv``, and
#: ``ablation_<profile>.json``: the command, commit, date and wall time that produced it).
RECORD_DIR = Path(__file__).resolve().parent.parent / "docs" / "results"


def _record_paths(profile: str, folder) -> tuple[Path, Path]:
    folder = Path(folder) if folder is not None else RECORD_DIR
    return folder / f"ablation_{profile}_runs.csv", folder / f"ablation_{profile}.json"


def record(runs: pd.DataFrame, info: dict, profile: str = "default", folder=None) -> Path:
    """Keep ``runs`` (:func:`run`'s table) and ``info`` (how it was made) as the recorded ablation
    of ``profile`` in ``folder`` (default :data:`RECORD_DIR`); returns the table's path."""
    import json

    from mexpr import _io

    csv, meta = _record_paths(profile, folder)
    csv.parent.mkdir(parents=True, exist_ok=True)
    _io.atomic_write_text(csv, runs.to_csv(index=False))
    _io.atomic_write_text(meta, json.dumps(info, indent=2, sort_keys=True) + "\n")
    return csv


def recorded(profile: str = "default", folder=None) -> tuple[pd.DataFrame, dict] | None:
    """The ablation recorded for ``profile`` (:func:`record`): ``(runs, info)``, or None where this
    checkout has none.  A table without the columns :func:`table` reads, or with steps this
    version does not know, is an :class:`AblationError` naming the file."""
    import json

    csv, meta = _record_paths(profile, folder)
    if not csv.is_file():
        return None
    runs = pd.read_csv(csv)
    missing = {"step", "protocol", "seed", "method", "folds", *METRICS} - set(runs.columns)
    if missing:
        raise AblationError(f"{csv}: not an ablation table (no column(s) {sorted(missing)}); re-record it with benchmarks/ablation.py --record")
    unknown = sorted(set(runs["step"]) - set(STEPS))
    if unknown:
        raise AblationError(
            f"{csv}: step(s) {unknown} are not steps of this version ({list(STEPS)}); re-record it with benchmarks/ablation.py --record"
        )
    return runs, (json.loads(meta.read_text()) if meta.is_file() else {})


def input_settings(cfg: train.Config) -> dict:
    """A config's input settings and budget, for the notebook's prose."""
    d = asdict(cfg)
    return {k: d[k] for k in ("reference", "munsell", "mode", "flow_method", "per_class", "epochs", "schedule")}


def plan_for(profile: str, **overrides) -> dict:
    """The notebook's ablation plan for ``profile`` (the ``"ablation"`` entry of
    :data:`mexpr.settings.PROFILES`: protocols, seeds, folds and the training budget of every
    step), with overrides (``None`` keeps the profile's; ``steps="all"``: every step of :data:`STEPS`)."""
    if profile not in settings.PROFILES:
        raise AblationError(f"profile must be one of {', '.join(settings.PROFILES)}, not {profile!r}")
    plan = settings.PROFILES[profile]["ablation"] | {k: v for k, v in overrides.items() if v is not None}
    if isinstance(plan["steps"], str):  # "all": every step of STEPS; one step's name alone is a list of one
        plan["steps"] = list(STEPS) if plan["steps"] == "all" else [plan["steps"]]
    return plan


def signal_curves(run_dir, examples, configs: dict, fields: int = 64) -> dict:
    """Per example clip (rows of :func:`mexpr.train.clips_table`, with ``label``) and config
    (label -> :class:`~mexpr.train.Config`): each field's 99th-percentile flow magnitude (px),
    as that config's flow stage measured it: ``{"<class>: <config label>": (fields,)}``."""
    from mexpr import flow

    out = {}
    for _, ex in examples.iterrows():
        for name, cfg in configs.items():
            table = train.clips_table(run_dir, cfg)
            row = table[(table["subject_id"] == ex["subject_id"]) & (table["clip"] == ex["clip"])].iloc[0]
            with np.load(Path(run_dir) / row["flow_cache"]) as z:
                if f"robust{fields}" not in z.files:
                    raise flow.FlowError(f"{row['flow_cache']} has no robust{fields}: recompute its flow (force=True)")
                out[f"{ex['label']}: {name}"] = z[f"robust{fields}"]
    return out


def global_motion_curves(run_dir, clips, fields: int = 64) -> dict:
    """How much of the flow the whole face shares, field by field: over ``clips`` (rows of
    :func:`mexpr.train.clips_table` of a config that keeps the raw flow, e.g. our input's), the mean
    |flow| per field (px) as estimated, of its least-squares affine part and of what is left
    (:func:`mexpr.flow.remove_global`): ``{label: (fields,)}``."""
    from mexpr import flow

    total, shared, local = [], [], []
    for cache in clips["flow_cache"]:
        fl = flow.load_flow(run_dir, {"status": "processed", "cache": cache}, fields, kind="flow").astype(np.float32)
        rest = flow.remove_global(fl)
        total.append(np.abs(fl).mean((1, 2, 3)))
        shared.append(np.abs(fl - rest).mean((1, 2, 3)))
        local.append(np.abs(rest).mean((1, 2, 3)))
    return {
        "as estimated": np.mean(total, 0),
        "its affine part (head drift, alignment)": np.mean(shared, 0),
        "left when that is removed (local motion)": np.mean(local, 0),
    }


def crop_jitter(run_dir, configs: dict, fold: int = 0, samples: int = 4, fields: int = 64) -> pd.DataFrame:
    """How much motion each crop mode adds (:func:`mexpr.augment.jitter_energy`): for each config
    (label -> :class:`~mexpr.train.Config`; its ``mode`` and flow reference), the mean flow per
    field of ``samples`` planned training samples of ``fold`` and of their source clips uncropped."""
    from mexpr import augment, datasets

    rows = []
    stage = train.clips_table(run_dir)  # the run's clips with flow: a plan needs the clips, not the whole flow stage of each input
    for name, cfg in configs.items():
        clips = datasets.protocol_table(stage, cfg.protocol)
        trainset, _, plan = train.fold_plan(run_dir, cfg, fold, per_class=max(1, samples // 4 + (samples % 4 > 0)), clips=clips)
        fcfg = train.fold_flow(run_dir, replace(cfg, munsell="frame"), fold, fields, trainset)  # how it computes flow; magnitudes need no scale
        for rec in plan.head(samples).to_dict("records"):
            rows.append({"input": name} | augment.jitter_energy(run_dir, rec, fields, fcfg))
    df = pd.DataFrame(rows)
    out = df.groupby("input", sort=False)[["plain_px", "augmented_px"]].mean()
    out["added by the crops (x)"] = out["augmented_px"] / out["plain_px"]
    return out.round(4)


def best_baseline(run_dir, protocol: str = "paper", seed: int = 0) -> tuple[str, float] | None:
    """The best UAR (mean over folds) among the baselines' rows evaluated in ``run_dir`` under
    ``protocol`` and ``seed`` (notebook 07), as ``(method, uar)``; None if none was evaluated."""
    best = None
    for path in sorted((Path(run_dir) / "baselines").glob(f"*-{protocol}-s{int(seed)}/summary.csv")):
        s = pd.read_csv(path)
        r = s.loc[s["uar"].idxmax()]
        if best is None or r["uar"] > best[1]:
            best = (str(r["method"]), float(r["uar"]))
    return best
