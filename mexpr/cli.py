"""Command line: ``python -m mexpr <command>`` (or the ``mexpr`` script).

Commands
--------
synth      write a synthetic dataset: CASME II / CASME I clips, other corpora, or long videos (casme2lv, sammlv)
info       clip counts of one or more dataset roots beside the paper's Table 3
preprocess detect, align, crop and interpolate every clip into runs/<name>/ (cached, resumable)
flow       optical flow + Munsell colour coding of every pre-processed clip of a run (cached)
train      train DTSCNN64/128 on the augmented clips of one fold (checkpointed, resumable)
evaluate   SVMs, Eq. 11 fusion, metrics, Table 4 and Figure 7 over a protocol's folds (DTSCNN or the baselines)
predict    classify raw clip folders (or clips cut as video files) with a run's trained streams, SVMs and Eq. 11
spot       spot micro- and macro-expressions in long videos; on CAS(ME)² / SAMM-LV roots, the MEGC protocol
analyze    a video in, a timeline of recognised micro-expressions out (spot, then recognise with a trained run)
reproduce  run the notebook series with papermill into runs/<name>/

Every choice and default is read from the module that defines it (e.g. ``--profile`` from
:data:`mexpr.settings.PROFILES`, ``--flow-method`` from :data:`mexpr.flow.METHODS`).
"""

from __future__ import annotations

import argparse
import os
import sys


def _cmd_synth(args) -> int:
    import json
    from pathlib import Path

    from mexpr import synth
    from mexpr.synth import longvideo

    # --corpora samm smic casme3a: each into OUT/<corpus>; else --dataset into OUT
    targets = [(c, Path(args.out) / c) for c in args.corpora] if args.corpora else [(args.dataset, Path(args.out))]
    kw = {
        "seed": args.seed,
        "faces": args.faces,
        "difficulty": args.difficulty,
        "jobs": args.jobs,
        "progress": not args.quiet,
        "render": not args.layout_only,
    }
    for dataset, out in targets:
        if dataset in longvideo.LONG_DATASETS:  # long videos for spotting (CAS(ME)², SAMM Long Videos)
            longvideo.generate(out, dataset=dataset, scale=args.scale, seconds=args.seconds, **kw)
            info = json.loads((out / "synth.json").read_text())
            c = info["counts"]
            print(
                f"wrote {dataset} (scale {info['scale']:g}, seed {args.seed}): {c['videos']} long videos of {c['subjects']} subjects, "
                f"{c['macro']} macro- and {c['micro']} micro-expressions, {c['frames']} frames, to {out}"
            )
            continue
        args.scale = 1.0 if args.scale is None else args.scale
        synth.generate(out, dataset=dataset, scale=args.scale, **kw)
        print(f"wrote {dataset} (scale {args.scale:g}, seed {args.seed}{', layout only' if args.layout_only else ''}) to {out}")
    return 0


def _info_long(roots) -> int:
    """``mexpr info`` of long-video roots: counts beside the published ones, lengths, quirks."""
    import pandas as pd

    from mexpr import datasets, longvideo

    intervals = longvideo.load(roots, errors="skip")
    vids = longvideo.videos(roots, intervals)
    scales = {(datasets.synth_info(r) or {}).get("scale") for r in roots}
    scale = scales.pop() if len(scales) == 1 else None
    with pd.option_context("display.width", 200, "display.max_rows", 200, "display.max_columns", 20):
        print(f"{len(vids)} long videos, {vids['subject_id'].nunique()} subjects, {len(intervals)} intervals, from {', '.join(map(str, roots))}\n")
        print("Per corpus, beside the published counts" + (f" (subjects and videos x {scale:g} for this synthetic set)" if scale else "") + ":")
        print(longvideo.counts_table(intervals, vids, scale).fillna("-").to_string(index=False))
        print(f"(sources: {'; '.join(f'{c.title}: {c.source}' for k, c in longvideo.LONG_CORPORA.items() if k in set(vids['dataset']))})")
        print("\nLengths:")
        print(longvideo.durations_table(intervals, vids).to_string(index=False))
        if intervals.attrs.get("quirks"):
            print("\nKnown quirks absorbed (mexpr.corpora.QUIRKS):")
            print(pd.DataFrame(intervals.attrs["quirks"]).to_string(index=False))
        if intervals.attrs.get("skipped"):
            print("\nSkipped rows:")
            print(pd.DataFrame(intervals.attrs["skipped"]).to_string(index=False))
    return 0


def _cmd_info(args) -> int:
    import pandas as pd

    from mexpr import corpora, datasets, longvideo

    long_roots = [r for r in args.data if longvideo.detect(r)]
    if long_roots:
        if len(long_roots) != len(args.data):
            raise ValueError(f"give long-video roots ({', '.join(long_roots)}) and clip roots to separate `mexpr info` calls")
        return _info_long(long_roots)

    df = datasets.load(args.data, errors="skip" if args.skip else "raise", verify=args.verify, classes=args.classes)
    scales = {(datasets.synth_info(r) or {}).get("scale") for r in args.data}
    scale = scales.pop() if len(scales) == 1 else None
    with pd.option_context("display.width", 200, "display.max_rows", 200, "display.max_columns", 20):
        print(f"{len(df)} clips, {df['subject_id'].nunique()} subjects ({args.classes} classes), from {', '.join(args.data)}\n")
        print(
            "Per corpus, beside the published counts"
            + (f" (x {scale:g} for this synthetic set)" if scale else "")
            + ", and in the MEGC 2019 composite:"
        )
        print(corpora.summary_table(df, scale).to_string(index=False))
        print(
            f"(sources: {'; '.join(f'{corpora.CORPORA[d].title}: {corpora.CORPORA[d].source}' for d in sorted(set(df['dataset'])))}; composite: {corpora.COMPOSITE_SOURCE})"
        )
        if df["dataset"].isin(["casme1", "casme2"]).any():
            print("\nPer emotion (Table 3" + (f"; Table 3 x {scale:g} for this synthetic set" if scale else "") + "):")
            print(datasets.counts_table(df, scale).to_string(index=False))
            print("\nPer class:")
            print(datasets.class_table(df).to_string(index=False))
        others = corpora.emotion_table(df, scale)
        if len(others):
            print("\nPer emotion of the other corpora (published counts; their class in the paper's four and in the composite):")
            print(others.to_string(index=False))
        if df.attrs.get("quirks"):
            print("\nKnown quirks absorbed (mexpr.corpora.QUIRKS):")
            print(pd.DataFrame(df.attrs["quirks"]).to_string(index=False))
        frames = df.groupby("dataset")["n_frames"].describe()[["mean", "min", "50%", "max"]]
        print("\nFrames per clip (onset..offset):")
        print(frames.round(1).to_string())
        est = int(df["apex_estimated"].sum())
        noted = int((df["notes"] != "").sum())
        print(f"\n{est} clip(s) with an estimated apex; {noted} clip(s) with notes")
        skipped = df.attrs.get("skipped", [])
        if skipped:
            print(f"\n{len(skipped)} row(s) skipped:")
            for p in skipped:
                print(f"  - {p['sheet']} row {p['row']} ({p['subject']}/{p['clip']}): {p['reason']}")
    return 0


def _cmd_preprocess(args) -> int:
    from pathlib import Path

    from mexpr import datasets, preprocess
    from mexpr.run import Run

    df = datasets.load(args.data, errors="skip", verify=args.verify)
    for p in df.attrs.get("skipped", []):
        print(f"skipped sheet row: {p['sheet']} row {p['row']} ({p['subject']}/{p['clip']}): {p['reason']}", file=sys.stderr)
    config = preprocess.Config(
        align=args.align, smooth=args.smooth, lengths=tuple(args.lengths), several=args.several, model=args.model, bad_frames=args.bad_frames
    )
    manifest = preprocess.run(df, args.run, config, jobs=args.jobs, progress=not args.quiet, force=args.force)
    run = Run(args.run)
    if not (run.dir / "dataset.json").is_file():  # what notebook 00 records: the roots the later stages read clips from
        infos = [datasets.synth_info(r) for r in args.data]
        run.write_dataset(args.data, synthetic=all(infos), scale=(infos[0] or {}).get("scale"), seed=(infos[0] or {}).get("seed"))
    s = manifest.attrs["summary"]
    print(
        f"{s['processed']} clip(s) processed ({s['from_cache']} from cache), {s['skipped']} skipped, "
        f"in {s['seconds']:.1f} s; manifest: {Path(args.run) / 'manifest.csv'}"
    )
    for _, row in manifest[manifest["status"] == "skipped"].iterrows():
        print(f"  skipped {row['subject_id']}/{row['clip']}: {row['reason']}")
    return 0


def _cmd_flow(args) -> int:
    from mexpr import flow

    params = {}
    for item in args.param or []:
        k, _, v = item.partition("=")
        params[k] = float(v) if any(c in v for c in ".e") else int(v)
    normalize = flow.check_scaling(args.normalize)
    out = flow.run(
        args.run,
        args.method,
        normalize=normalize,
        raw=args.raw,
        jobs=args.jobs,
        progress=not args.quiet,
        force=args.force,
        reference=args.reference,
        smooth=args.smooth,
        **params,
    )
    s = out.attrs["summary"]
    print(
        f"{s['processed']} clip(s) with flow ({s['computed']} computed, {s['processed'] - s['computed']} from cache), "
        f"{s['skipped']} skipped, {s['fields']} fields each, in {s['seconds']:.1f} s; method {s['method']}"
    )
    return 0


def _precision(args) -> str | None:
    """``--precision``, or float16 for the older ``--mixed-precision`` (None: the default, float32)."""
    if args.mixed_precision and args.precision not in (None, "float16"):
        raise ValueError(f"--mixed-precision means --precision float16, not {args.precision}: give one of them")
    return "float16" if args.mixed_precision else args.precision


def _train_config(args):
    """The training :class:`~mexpr.train.Config` named by the shared options (train, evaluate, predict)."""
    from mexpr.run import Run

    return Run(args.run, args.profile, args.seed).config(  # an option left out (None) keeps the profile's value
        protocol=args.protocol,
        precision=_precision(args),
        jit_compile=args.xla,
        tag=args.tag,
        epochs=args.epochs,
        per_class=args.per_class,
        schedule=args.schedule,
        mode=args.mode,
        input=args.input,
        reference=args.reference,
        munsell=args.munsell,
        flow_method=args.flow_method,
        smooth=args.smooth,
        tsmooth=args.tsmooth,
        global_motion=args.global_motion,
        input_scale=args.input_scale,
        flip=args.flip,
        ema=args.ema,
        devices=args.devices,
    )


def _cmd_train(args) -> int:
    from mexpr import models, scale, train
    from mexpr.run import Run

    config = _train_config(args)
    if args.fold == "all":
        folds = train.folds_of(args.run, config)
    elif args.fold == "profile":
        folds = Run(args.run, args.profile, args.seed).folds(config)
    else:
        folds = [int(args.fold)]
    streams = (64, 128) if args.stream == "both" else (int(args.stream),)
    pairs = [(fold, fields) for fold in folds for fields in streams]
    verbose = 0 if args.quiet else "auto"
    precision, why = models.resolve_precision(config.precision)
    print(f"precision: {precision} ({why})", flush=True)
    if scale.current() is None:  # one stream after another, each reported as it finishes
        results = (train.train_stream(args.run, fields, fold, config, jobs=args.jobs, verbose=verbose, force=args.force) for fold, fields in pairs)
    else:  # --scheduler: every stream a Dask task (mexpr.train.train_many)
        results = train.train_many(args.run, config, pairs, jobs=args.jobs, verbose=verbose, force=args.force)
    for (fold, fields), r in zip(pairs, results):
        f = r["final"]
        how = "from an earlier run" if r["cached"] else f"in {r['seconds']:.0f} s (+{r['augment_seconds']:.0f} s augmentation)"
        print(
            f"DTSCNN{fields} fold {fold}: {r['train_clips']} augmented training clips, {config.epochs} epochs {how}; "
            f"train acc {f.get('accuracy', float('nan')):.3f}, test-fold acc {f.get('val_accuracy', float('nan')):.3f} -> {r['model']}"
        )
    return 0


def _cmd_evaluate(args) -> int:
    from mexpr import evaluate, report, viz

    config = _train_config(args)
    folds = None if args.fold == "all" else [int(args.fold)]
    methods = ["dtscnn", *evaluate.BASELINES] if args.method == "all" else [args.method]
    evs = []
    for m in methods:
        if m == "dtscnn":
            ev = evaluate.evaluate(
                args.run,
                config,
                folds=folds,
                train_missing=not args.no_train,
                svm_train=args.svm_train,
                C=args.C,
                jobs=args.jobs,
                verbose=0 if args.quiet else "auto",
                progress=not args.quiet,
            )
            if config.input != "paper":  # our input's rows are labelled as ours, e.g. "DTSCNN (fusion) (mexpr input, ours)"
                ev = report.relabel(ev, config.label)
        else:
            ev = evaluate.evaluate_baseline(
                args.run, m, config.protocol, config.seed, folds=folds, jobs=args.jobs, progress=not args.quiet, balanced=args.balanced
            )
            for line in ev.info["skipped"]:
                print(f"skipped {line}")
        t = ev.info["timings"]
        print(f"{m}: " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in t.items()) + f" -> {ev.info['dir']}")
        evs.append(ev)
    ev = evs[0] if len(evs) == 1 else report.combine(evs)
    name = (
        (f"{config.protocol}" + (f"_{args.svm_train}" if args.svm_train != "augmented" else ""))
        if args.method == "dtscnn"
        else f"{config.protocol}_{args.method}"
    )
    name += ("_" + config.input if config.input != "paper" else "") + ("_balanced" if args.balanced and args.method != "dtscnn" else "")
    t4 = report.write_table4(ev, args.run, name=f"table4_{name}")
    fused = [m for m in (ev.info.get("methods") or evaluate.PAPER_METHODS) if "(fusion" in m]
    panels = fused if args.method == "all" else (ev.info.get("methods") or evaluate.PAPER_METHODS)
    viz.confusion_matrices(
        ev.confusions(panels),
        args.run,
        name=f"figure7_{name}",
        ncols=4 if args.method == "all" else 3,
        title=f"protocol {config.protocol}: pooled over {len(ev.folds['fold'].unique())} fold(s)",
    )
    print(f"\nTable 4 ({config.protocol} protocol), accuracy %:\n")
    print(report.table_markdown(t4.loc[[m for m in t4.index if m in set(ev.folds["method"])]]))  # rows not evaluated are blank
    s = ev.summary.set_index("method")[["accuracy", "uf1", "uar", "pooled_accuracy", "pooled_uf1", "pooled_uar"]] * 100
    print(report.table_markdown(s.round(2)))
    print(f"tables/table4_{name}.csv|md and figures/figure7_{name}.png|svg -> {args.run}")
    return 0


def _cmd_predict(args) -> int:
    from mexpr import metrics, predict

    config = _train_config(args)
    df = predict.predict_clips(args.run, config, args.clips, fold=args.fold, svm_train=args.svm_train, progress=not args.quiet)
    for r in df.to_dict("records"):
        if r["status"] != "ok":
            print(f"{r['clip_dir']}: error: {r['reason']}")
            continue
        p64, p128 = (" ".join(f"{s} {r[k]:.2f}" for s, k in zip(metrics.SHORT, [f"p{f}_{s}" for s in metrics.SHORT])) for f in (64, 128))
        print(f"{r['clip_dir']}: {r['prediction']} (Eq. 11 took {r['from']}) | DTSCNN64 {r['DTSCNN64']}: {p64} | DTSCNN128 {r['DTSCNN128']}: {p128}")
    if args.out:
        df.to_csv(args.out, index=False)
        print(f"-> {args.out}")
    return 0 if (df["status"] == "ok").all() else 1


def _cmd_spot(args) -> int:
    import json
    from pathlib import Path

    import pandas as pd

    from mexpr import _io, longvideo, spot

    roots = [s for s in args.sources if longvideo.detect(s)]
    if roots and len(roots) != len(args.sources):
        raise ValueError("give corpus roots or videos to `mexpr spot`, not both in one call")
    # default: a corpus into RUN/spot, videos into RUN/spot/videos (never over the corpus' evaluation), or here
    out = Path(args.out) if args.out else (Path(args.run) / "spot" / ("" if roots else "videos") if args.run else Path("."))
    target = out / "intervals.csv"
    if target.exists() and not args.force:
        raise FileExistsError(f"{target} exists; pass --force to overwrite it, or --out another folder")
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.quiet
    if roots:  # a corpus: leave one subject out (MEGC), then a spotter trained on every subject for the user's videos
        cache = (Path(args.run) if args.run else out) / "cache" / "spot"
        res = spot.evaluate_corpus(roots, cache, out, seeds=args.seeds, methods=(args.method,) if args.method else spot.METHODS,
                                   epochs=args.epochs, jobs=args.jobs, progress=progress, spotter_dir=Path(args.run) / "spot" / "learned" if args.run else None)  # fmt: skip
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(
                f"{res['n_videos']} videos of {res['n_subjects']} subjects, leave one subject out; F1 at IoU >= {spot.IOU_THRESHOLD} (mean ± std over seeds):"
            )
            print(res["summary"].round(3).to_string(index=False))
        if res["skipped"]:
            print(f"skipped {len(res['skipped'])}: " + "; ".join(f"{s['video']}: {s['reason']}" for s in res["skipped"]))
        print(
            f"wrote {target}, {out / 'scores.csv'}, {out / 'summary.csv'}"
            + (f"; the spotter for new videos: {res['spotter_dir']}" if res.get("spotter_dir") else "")
        )
        return 0
    method = args.method
    spotter = None
    learned_dir = Path(args.run) / "spot" / "learned" if args.run else None
    if method == "learned" or (method is None and learned_dir is not None and (learned_dir / "spotter.keras").is_file()):
        if learned_dir is None:
            raise ValueError("--method learned needs --run RUN with a trained spotter (`mexpr spot CORPUS_ROOT --run RUN` trains one)")
        spotter = spot.LearnedSpotter.load(learned_dir)
        method = "learned"
    method = method or "mdmd"
    p = None
    fitted = Path(args.run) / "spot" / "mdmd.json" if args.run else None
    if method == "mdmd" and fitted is not None and fitted.is_file():
        p = json.loads(fitted.read_text())["p"]
    table, records = spot.spot_videos(args.sources, method, spotter=spotter, p=p, fps=args.fps, progress=progress)
    _io.atomic_write_text(target, table.to_csv(index=False))
    _io.atomic_write_text(out / "videos.json", json.dumps({"method": method, "videos": records}, indent=2, default=str) + "\n")
    for r in records:
        if r["status"] == "skipped":
            print(f"skipped {r['video']}: {r['reason']}")
            continue
        gaps = f", {len(r['gaps'])} face gap(s)" if r["gaps"] else ""
        print(f"{r['video']}: {r['frames']} frames at {r['fps']:.3g} fps{gaps}; {r['intervals']} interval(s) ({method})")
        for n in r["notes"]:
            print(f"  note: {n}")
    print(f"wrote {target}")
    return 0 if any(r["status"] == "spotted" for r in records) else 2


def _cmd_analyze(args) -> int:
    from pathlib import Path

    from mexpr import timeline

    out = Path(args.out) if args.out else Path(args.run) / "analyze"
    tl = timeline.analyze(
        args.videos,
        args.run,
        out=out,
        profile=args.profile,
        seed=args.seed,
        input=args.input,
        fold=args.fold,
        protocol=args.protocol,
        tag=args.tag,
        method=args.method,
        fps=args.fps,
        video_out=args.video_out,
        force=args.force,
        progress=not args.quiet,
    )
    s = tl.settings
    print(f"recognised with {s['experiment']} fold {s['fold']} ({'our' if s['input'] == 'mexpr' else 'the paper' + chr(39) + 's'} input, "
          f"classes {', '.join(s['classes'])}); spotter: {s['spotter']['method']} ({s['spotter']['source']})")  # fmt: skip
    print(tl.summary())
    written = [tl.paths["csv"], tl.paths["json"], *tl.paths["figures"].values(), *tl.paths["videos"].values()]
    print("wrote " + ", ".join(map(str, written)))
    return 0 if any(v["status"] == "analysed" for v in tl.videos) else 2


def _cmd_reproduce(args) -> int:
    import time

    from mexpr import series
    from mexpr.run import Run

    t0 = time.time()
    run = Run(args.run, args.profile, args.seed)
    print(
        f"mexpr reproduce: {len(series.SERIES)} notebooks into {run}/ (profile {args.profile}, seed {args.seed}, "
        f"{'data ' + ', '.join(args.data) if args.data else 'synthetic data'})",
        flush=True,
    )
    paths = series.run_series(
        run,
        profile=args.profile,
        seed=args.seed,
        data_dirs=args.data,
        jobs=args.jobs,
        force=args.force,
        protocol=args.protocol,
        scheduler=args.scheduler,
    )
    if not args.data and args.profile == "default":
        copied = series.publish_figures(run)
        print(f"refreshed {len(copied)} README figure(s) in figures/")
    print(f"\n{len(paths)} notebook(s) in {run}/notebooks ({time.time() - t0:.0f} s); per-notebook times in {run}/logs/reproduce.jsonl")
    if args.seeds:
        protocol = args.protocol or "paper"
        print(f"\nthe evaluation over seeds {' '.join(map(str, args.seeds))} (protocol {protocol}):", flush=True)
        t = series.evaluate_seeds(run, args.profile, args.seeds, protocol, jobs=args.jobs)
        print(t[["accuracy", "UF1", "UAR", "seeds"]].to_string())
    for what, pattern in (("Table 4", "tables/table4_*.md"), ("Figure 7", "figures/figure7_*.png")):
        found = sorted(str(p) for p in run.dir.glob(pattern))
        print(f"{what}: {', '.join(found) if found else 'not written'}")
    return 0


def _config_options(p) -> None:
    """The options that name a training experiment (shared by train, evaluate and predict); their
    choices come from the modules that define them."""
    from mexpr import augment, flow, models, settings, train
    from mexpr.datasets import PROTOCOLS

    p.add_argument("--profile", default="default", choices=list(settings.PROFILES), help="samples per class, epochs and folds")
    p.add_argument(
        "--protocol",
        default="paper",
        choices=list(PROTOCOLS),
        help="paper (3 stratified 75/25 splits), subject3, loso, megc3 (MEGC 2019 composite: LOSO over SMIC + CASME II + SAMM, 3 classes)",
    )
    p.add_argument("--seed", type=int, default=0, help="one seed for the split, augmentation, initialisation and batch order")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--per-class", type=int, default=None, help="augmented clips per class (paper: 500)")
    p.add_argument(
        "--schedule", default=None, choices=list(train.SCHEDULES), help="learning rate: the paper's 1e-4 SGD, our tuned SGD, or Adam (ours)"
    )
    p.add_argument(
        "--input",
        default=None,
        choices=list(train.INPUTS),
        help="input representation: the paper's (default), or ours (flow since onset, learned Munsell scale, no crop, mirrored copies; notebook 08)",
    )
    p.add_argument("--mode", default=None, choices=list(augment.MODES), help="crop per frame (paper), one crop per clip, no crop")
    p.add_argument("--reference", default=None, choices=list(flow.REFERENCES), help="flow between neighbouring frames (paper) or since onset (ours)")
    p.add_argument("--munsell", default=None, help="Munsell scaling: frame (paper), clip, learned (from the fold's training clips), or px")
    p.add_argument("--flow-method", default=None, choices=list(flow.METHODS), help=f"flow method (default {flow.DEFAULT_METHOD})")
    p.add_argument("--smooth", type=float, default=None, help="Gaussian blur of every flow field, sigma in px (0: none, the paper's)")
    p.add_argument("--tsmooth", type=float, default=None, help="Gaussian along time over the flow fields, sigma in fields (ours; 0: none)")
    p.add_argument(
        "--global-motion",
        default=None,
        choices=list(flow.GLOBAL_MOTION),
        help="keep the flow's global motion (paper) or remove each field's affine motion (ours)",
    )
    p.add_argument("--input-scale", default=None, choices=list(models.INPUT_SCALES), help="first layer: [-1, 1] or zero for no motion (ours)")
    p.add_argument("--flip", default=None, action=argparse.BooleanOptionalAction, help="mirror half the training samples left-right (ours)")
    p.add_argument("--ema", type=float, default=None, help="end on a moving average of the weights with this momentum, e.g. 0.99 (ours; 0: none)")
    p.add_argument(
        "--precision",
        default=None,
        choices=list(models.PRECISIONS),
        help="compute precision (default float32); auto: bfloat16 on a CPU with AMX/AVX512-BF16, float16 on a GPU, else float32",
    )
    p.add_argument("--mixed-precision", action="store_true", help="the same as --precision float16 (kept for older commands)")
    p.add_argument("--xla", action="store_true", help="compile the training step with XLA")
    p.add_argument(
        "--devices",
        default=None,
        help="train one stream across several local devices: 'all' (GPUs, or logical CPUs) or a count; the batch is per device (default: one device)",
    )
    p.add_argument("--tag", default="", help="suffix of the experiment folder")


def _scheduler_option(p) -> None:
    """``--scheduler``: the stage's parallel work on a Dask cluster (:func:`mexpr.scale.scheduler`)."""
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the parallel work on a Dask cluster: tcp://host:8786 (an existing scheduler) or local:N (N worker processes here); docs/scale.md",
    )


def build_parser() -> argparse.ArgumentParser:
    from mexpr import align, datasets, evaluate, face, flow, fusion, preprocess, settings, spot, synth, train
    from mexpr.synth.longvideo import LONG_DATASETS

    p = argparse.ArgumentParser(prog="mexpr", description="DTSCNN micro-expression recognition (Peng et al. 2017)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write a synthetic dataset: clips (CASME II, CASME I, ...) or long videos (casme2lv, sammlv)")
    s.add_argument("--dataset", choices=list(synth.DATASETS) + list(LONG_DATASETS), default=synth.DATASETS[0])
    s.add_argument(
        "--corpora", nargs="+", choices=list(synth.DATASETS), default=None, help="write each of these into OUT/<corpus> (e.g. samm smic casme3a)"
    )
    s.add_argument("--layout-only", action="store_true", help="folders, file names and sheets only; every frame one grey image (loader tests)")
    s.add_argument(
        "--scale",
        type=float,
        default=None,
        help="published counts x scale (clips: default 1, >= 2 clips per emotion; long videos: their own default)",
    )
    s.add_argument("--seconds", type=float, default=None, help="long videos: each video's mean length (default: 20 s for casme2lv, 6 s for sammlv)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output folder (new or empty; an interrupted run resumes)")
    s.add_argument("--faces", default=None, help="optional folder of extra frontal face photos")
    s.add_argument("--difficulty", default="default", choices=list(synth.DIFFICULTIES))
    s.add_argument("--jobs", type=int, default=None, help="parallel workers (default: all cores)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    _scheduler_option(s)
    s.set_defaults(func=_cmd_synth)

    i = sub.add_parser(
        "info", help="clip counts of dataset roots beside Table 3 (long-video roots: videos and intervals beside the published counts)"
    )
    i.add_argument(
        "data", nargs="+", help="dataset root(s): CASME II, CASME I, SAMM, SMIC-HS, CAS(ME)³ part A; or CAS(ME)², SAMM Long Videos; real or synthetic"
    )
    i.add_argument("--skip", action="store_true", help="skip unusable rows (listed) instead of failing")
    i.add_argument("--verify", choices=list(datasets.VERIFY), default=datasets.VERIFY[0])
    i.add_argument("--classes", choices=["paper", "megc3"], default="paper", help="label with the paper's four classes or the composite's three")
    i.set_defaults(func=_cmd_info)

    pre = sub.add_parser("preprocess", help="detect, align, crop and interpolate every clip (cached, resumable)")
    pre.add_argument("--data", action="append", required=True, help="dataset root (repeatable): CASME II / CASME I, real or synthetic")
    pre.add_argument("--run", required=True, help="run folder, e.g. runs/NAME")
    pre.add_argument("--align", default=align.DEFAULT_ALIGN, choices=list(align.ALIGN_MODES))
    pre.add_argument(
        "--smooth", type=float, default=preprocess.Config.smooth, help="temporal smoothing of the landmark tracks (sigma, frames; 0: none)"
    )
    pre.add_argument(
        "--lengths", type=int, nargs="+", default=list(settings.LENGTHS), help=f"temporal lengths (default: {' '.join(map(str, settings.LENGTHS))})"
    )
    pre.add_argument("--several", default=face.SEVERAL[0], choices=list(face.SEVERAL), help="rule when several faces are found")
    pre.add_argument("--model", default=None, help="another dlib 68-point model file")
    pre.add_argument(
        "--bad-frames", default=preprocess.BAD_FRAMES[0], choices=list(preprocess.BAD_FRAMES), help="a corrupt frame skips its clip, or is dropped"
    )
    pre.add_argument("--verify", choices=list(datasets.VERIFY), default=datasets.VERIFY[0])
    pre.add_argument("--jobs", type=int, default=None, help="parallel workers (default: all cores)")
    pre.add_argument("--force", action="store_true", help="recompute clips found in the cache")
    pre.add_argument("--quiet", action="store_true", help="no progress bar")
    _scheduler_option(pre)
    pre.set_defaults(func=_cmd_preprocess)

    fl = sub.add_parser("flow", help="optical flow + Munsell coding of a run's pre-processed clips (cached, resumable)")
    fl.add_argument("--run", required=True, help="run folder holding a pre-processing manifest")
    fl.add_argument("--method", default=flow.DEFAULT_METHOD, choices=list(flow.METHODS))
    fl.add_argument("--param", action="append", metavar="NAME=VALUE", help="override a method parameter (repeatable)")
    fl.add_argument("--normalize", default="frame", help="frame (default), clip, learned (raw flow kept, coded per fold), or a fixed scale in px")
    fl.add_argument(
        "--reference",
        default=flow.REFERENCES[0],
        choices=list(flow.REFERENCES),
        help="flow between neighbouring frames (paper) or since onset (ours)",
    )
    fl.add_argument("--smooth", type=float, default=0.0, help="Gaussian blur of every field, sigma in px (0: none)")
    fl.add_argument("--raw", action="store_true", help="also store the raw flow (float16)")
    fl.add_argument("--jobs", type=int, default=None)
    fl.add_argument("--force", action="store_true")
    fl.add_argument("--quiet", action="store_true")
    _scheduler_option(fl)
    fl.set_defaults(func=_cmd_flow)

    t = sub.add_parser("train", help="train DTSCNN64/128 on one fold's augmented clips (checkpointed, resumable)")
    t.add_argument("--run", required=True, help="run folder with pre-processing and flow done")
    t.add_argument("--stream", default="both", choices=["64", "128", "both"], help="which stream (default: both, one after the other)")
    t.add_argument("--fold", default="profile", help="fold index, 'all', or 'profile' (the profile's folds; default)")
    _config_options(t)
    t.add_argument("--jobs", type=int, default=None, help="processes for the augmentation")
    t.add_argument("--force", action="store_true", help="start afresh (discard checkpoints and results)")
    t.add_argument("--quiet", action="store_true")
    _scheduler_option(t)
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("evaluate", help="SVMs on pool4 features, Eq. 11 fusion, metrics, Table 4 and Figure 7 over a protocol's folds")
    e.add_argument("--run", required=True, help="run folder with pre-processing and flow done")
    e.add_argument(
        "--method",
        default="dtscnn",
        choices=["dtscnn", *evaluate.BASELINES, "all"],
        help="DTSCNN (default), one of the paper's baselines, or all four (one Table 4, Figure 7 of the four fusions)",
    )
    e.add_argument("--fold", default="all", help="fold index or 'all' (default)")
    _config_options(e)
    e.add_argument("--svm-train", default=fusion.SVM_TRAIN[0], choices=list(fusion.SVM_TRAIN), help="the clips the SVMs are fitted on")
    e.add_argument("--C", type=float, default=1.0, help="the linear SVMs' C")
    e.add_argument(
        "--balanced", action="store_true", help="baselines: SVMs with balanced class weights, grid search scored by balanced accuracy (ours)"
    )
    e.add_argument("--no-train", action="store_true", help="fail (naming the command) instead of training a missing stream or fold")
    e.add_argument("--jobs", type=int, default=None)
    e.add_argument("--quiet", action="store_true")
    _scheduler_option(e)
    e.set_defaults(func=_cmd_evaluate)

    pr = sub.add_parser("predict", help="classify raw clip folders with a run's trained streams, SVMs and Eq. 11")
    pr.add_argument("--run", required=True, help="run folder with trained streams")
    pr.add_argument(
        "clips", nargs="+", help="folders of frames (onset..offset), e.g. CASME2_RAW_selected/sub01/EP02_01f, or clips cut as video files"
    )
    pr.add_argument("--fold", type=int, default=0, help="whose models and SVMs (default 0)")
    _config_options(pr)
    pr.add_argument("--svm-train", default=fusion.SVM_TRAIN[0], choices=list(fusion.SVM_TRAIN))
    pr.add_argument("--out", default=None, help="also write the table as CSV")
    pr.add_argument("--quiet", action="store_true")
    pr.set_defaults(func=_cmd_predict)

    sp = sub.add_parser("spot", help="spot micro- and macro-expressions in long videos (video files, frame folders, or CAS(ME)² / SAMM-LV roots)")
    sp.add_argument("sources", nargs="+", help="video files (.mp4 .mov .avi .mkv), frame folders, or long-video corpus roots (real or synthetic)")
    sp.add_argument("--method", default=None, choices=list(spot.METHODS), help="spotter (default: learned where the run has one, else mdmd)")
    sp.add_argument("--run", default=None, help="run folder: a corpus is evaluated into RUN/spot and trains its spotter there; videos use it")
    sp.add_argument(
        "--out", default=None, help="where intervals.csv goes (default: a corpus RUN/spot, videos RUN/spot/videos; without --run the current folder)"
    )
    sp.add_argument("--fps", type=float, default=None, help="the frame rate of frame folders (a video file's own is read from it)")
    sp.add_argument("--seeds", type=int, nargs="+", default=[0], help="corpus: the learned spotter's seeds (mean ± std over them)")
    sp.add_argument("--epochs", type=int, default=None, help="corpus: the learned spotter's training epochs (default: its own)")
    sp.add_argument("--jobs", type=int, default=1, help="corpus: videos read in parallel")
    sp.add_argument("--force", action="store_true", help="overwrite an existing intervals.csv")
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(func=_cmd_spot)

    an = sub.add_parser("analyze", help="a video in, a timeline of recognised micro-expressions out (spot, then recognise)")
    an.add_argument("videos", nargs="+", help="video files (.mp4 .mov .avi .mkv) or frame folders (with --fps)")
    an.add_argument("--run", required=True, help="run folder with trained streams (and, from `mexpr spot CORPUS --run RUN`, a spotter)")
    an.add_argument("--out", default=None, help="output folder (default RUN/analyze); one holding a timeline is refused without --force")
    an.add_argument("--fold", type=int, default=0, help="whose models and SVMs (default 0)")
    an.add_argument(
        "--input", default=None, choices=list(train.INPUTS), help="the streams' input (default: ours where the run trained it, else the paper's)"
    )
    an.add_argument("--profile", default="default", choices=list(settings.PROFILES), help="the profile the streams were trained with")
    an.add_argument("--seed", type=int, default=0, help="the seed the streams were trained with")
    an.add_argument("--protocol", default=None, choices=list(datasets.PROTOCOLS), help="the protocol the streams were trained under (default paper)")
    an.add_argument("--tag", default=None, help="the suffix of the streams' experiment folder, if they were trained with --tag")
    an.add_argument("--method", default=None, choices=list(spot.METHODS), help="spotter (default: learned where the run has one, else mdmd)")
    an.add_argument("--fps", type=float, default=None, help="the frame rate of frame folders (a video file's own is read from it)")
    an.add_argument("--video-out", action="store_true", help="also write an annotated MP4 per video")
    an.add_argument("--force", action="store_true", help="overwrite an existing timeline")
    an.add_argument("--quiet", action="store_true")
    an.set_defaults(func=_cmd_analyze)

    r = sub.add_parser("reproduce", help="run the notebook series with papermill into runs/<name>")
    r.add_argument("--run", default="runs/default")
    r.add_argument("--profile", default="default", choices=list(settings.PROFILES))
    r.add_argument("--seed", type=int, default=0)
    r.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="after the series (run with --seed), evaluate DTSCNN and the baselines with each of these seeds; Table 4 as mean ± std (tables/)",
    )
    r.add_argument("--data", action="append", default=None, help="real dataset root (repeatable); default: synthetic")
    r.add_argument("--jobs", type=int, default=None)
    r.add_argument("--force", action="store_true", help="re-run notebooks that already finished")
    r.add_argument(
        "--protocol",
        default=None,
        choices=list(datasets.PROTOCOLS),
        help="the notebooks' protocol (default: theirs, paper); megc3: the MEGC composite",
    )
    _scheduler_option(r)
    r.set_defaults(func=_cmd_reproduce)
    for command in sub.choices.values():
        command.add_argument("--verbose", action="store_true", help="keep TensorFlow's start-up log (silenced by default)")
    return p


def quiet_tensorflow() -> None:
    """TensorFlow's start-up log (oneDNN, the CPU's instructions, absl, grappler's ``NodeDef
    mentions attribute`` warnings) silenced before TensorFlow is imported, in this process and the
    workers and notebook kernels it starts (they inherit the environment); errors still print, and a
    ``TF_CPP_MIN_LOG_LEVEL`` the user set is kept.  ``--verbose`` leaves it all on."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    from mexpr import scale

    args = build_parser().parse_args(argv)
    if not args.verbose:
        quiet_tensorflow()
    try:
        if args.command == "reproduce":  # the series starts (or connects to) the cluster its notebooks share
            return args.func(args)
        with scale.scheduler(getattr(args, "scheduler", None)):  # None: nothing changes
            return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        print(f"mexpr {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
