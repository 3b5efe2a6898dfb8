"""Training a stream on one fold: the paper's optimiser, streaming input, no test clip in
training, one seed for everything, resume after an interrupt, bad checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import keras
import numpy as np
import pandas as pd
import pytest

from mexpr import augment, models, train
from mexpr.train import TrainError

QUICK = train.config_for("quick", per_class=2, epochs=2)


def test_profile_overrides_of_none_keep_the_profile():
    assert train.config_for("paper", epochs=None, schedule=None) == train.config_for("paper")
    assert train.config_for("paper", epochs=3).epochs == 3 and train.config_for("paper").per_class == 500
    with pytest.raises(ValueError, match="profile must be one of"):
        train.config_for("huge")


def test_input_representations_are_named_configs():
    paper, ours = train.config_for("quick"), train.config_for("quick", input="mexpr")
    assert paper.input == "paper" and paper.label == "" and (paper.reference, paper.munsell, paper.mode) == ("consecutive", "frame", "frame")
    assert ours.input == "mexpr" and "ours" in ours.label and (ours.reference, ours.munsell, ours.mode) == ("onset", "learned", "none")
    assert ours.flip and ours.ema == 0.99 and not paper.flip and paper.ema == 0.0
    assert train.experiment_dir("r", ours).name == "paper-s0-adam-mexpr" and train.experiment_dir("r", paper).name == "paper-s0-tuned"
    one = train.config_for("quick", reference="onset")  # one factor changed: a custom input, named by what changed
    assert one.input == "custom" and train.input_changes(one) == ["flow since onset"] and train.experiment_dir("r", one).name.endswith("-onset")
    fixed = train.config_for("quick", munsell="0.5")  # a numeric string (CLI) is a scale in px
    assert fixed.munsell == 0.5 and train.experiment_dir("r", fixed).name.endswith("-scale0.5")
    assert train.config_for("quick", input="mexpr", mode="frame").input == "custom"  # an override beats the preset
    with pytest.raises(ValueError, match="unknown input representation 'ours'; valid: paper, mexpr"):
        train.config_for("quick", input="ours")
    for bad in (0, -2.0, float("nan"), "max"):
        with pytest.raises(ValueError, match="Munsell"):
            train.config_for("quick", munsell=bad)
    with pytest.raises(ValueError, match="unknown flow reference"):
        train.config_for("quick", reference="apex")
    with pytest.raises(ValueError, match="flow_method must be one of"):
        train.config_for("quick", flow_method="pwc")
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="ema must be a momentum"):
            train.config_for("quick", ema=bad)
    assert train.experiment_dir("r", train.config_for("quick", flip=True, ema=0.9)).name == "paper-s0-tuned-flip-ema0.9"


def test_the_learned_scale_comes_from_training_clips_only(flowrun):
    from mexpr import flow

    cfg = replace(train.config_for("quick", input="mexpr"), per_class=1, epochs=1)
    tr, te = train.fold_split(flowrun, cfg, 0)
    got = train.fold_flow(flowrun, cfg, 0, 64, tr)
    assert got["reference"] == "onset" and got["normalize"] == round(
        flow.learn_scale(flowrun, tr["flow_cache"], 64, global_motion=cfg.global_motion), 4
    )
    # another fold learns from other clips; the test clips never enter
    calls = []
    real = flow.learn_scale
    try:
        flow.learn_scale = lambda run, caches, fields, **k: calls.append(set(caches)) or real(run, caches, fields, **k)
        train.fold_flow(flowrun, cfg, 0, 64)
    finally:
        flow.learn_scale = real
    assert calls == [set(tr["flow_cache"])] and not calls[0] & set(te["flow_cache"])


@pytest.mark.parametrize("tsmooth, global_motion", [(0.0, "keep"), (3.0, "affine")])
def test_a_stream_trains_on_our_input_and_codes_like_its_test_clips(flowrun, tsmooth, global_motion):
    from mexpr import flow

    cfg = replace(train.config_for("quick", input="mexpr", tsmooth=tsmooth, global_motion=global_motion), per_class=4, epochs=1)
    r = train.train_stream(flowrun, 64, 0, cfg, jobs=1, verbose=0)
    done = json.loads(open(f"{r['dir']}/done.json").read())
    scale = done["flow"]["normalize"]
    assert isinstance(scale, float) and scale > 0 and done["flow"]["reference"] == "onset"
    assert done["flow"].get("tsmooth", 0.0) == tsmooth  # absent at 0: the specs (and caches) of earlier runs are unchanged
    assert done["flow"].get("global_motion", "keep") == global_motion and ("global_motion" in done["flow"]) == (global_motion != "keep")
    # an uncropped training sample is its clip, coded exactly as the clip is coded for testing; a mirrored one its mirror image
    plan = __import__("pandas").read_csv(f"{r['dir']}/plan.csv", dtype={"crops": str})
    assert plan["flip"].dtype == bool and 0 < plan["flip"].sum() < len(plan)
    tr, _ = train.fold_split(flowrun, cfg, 0)
    for flipped in (False, True):
        sample = plan[plan["flip"] == flipped].head(1)
        path = augment.build(flowrun, sample, 64, flow_cfg=done["flow"], progress=False)[0]
        row = tr[(tr["subject_id"] + "/" + tr["clip"]) == sample.iloc[0]["source"]].iloc[0]
        raw = flow.load_flow(flowrun, {"status": "processed", "cache": row["flow_cache"]}, 64, kind="flow").astype(np.float32)
        local = flow.remove_global(raw) if global_motion == "affine" else raw
        want = flow.to_munsell(flow.mirror(flow.smooth_time(local, tsmooth)) if flipped else flow.smooth_time(local, tsmooth), scale)
        assert np.array_equal(np.load(path), want)
        if not flipped:  # and the test side codes its clips the same way
            assert np.array_equal(train.clip_munsell(flowrun, row, 64, done["flow"]), want)


def weights(path):
    return models.load(path).get_weights()


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_paper_optimiser_and_schedule():
    m = train.build(64, replace(QUICK, schedule="paper"), steps_per_epoch=7, seed=0)
    opt = m.optimizer
    assert isinstance(opt, keras.optimizers.SGD) and opt.momentum == 0.9
    sched = opt._learning_rate  # the schedule object
    assert [float(sched(s)) for s in (0, 69, 70, 139, 140)] == pytest.approx([1e-4, 1e-4, 1e-5, 1e-5, 1e-6])


def test_no_test_clip_reaches_the_generator(flowrun, monkeypatch):
    seen = []
    real = augment.sample_munsell
    monkeypatch.setattr(augment, "sample_munsell", lambda *a, **k: seen.append(a[1]["source"]) or real(*a, **k))
    cfg = replace(QUICK, epochs=1, tag="leak")
    r = train.train_stream(flowrun, 64, 1, cfg, jobs=1, verbose=0)
    tr, te = train.fold_split(flowrun, cfg, 1)
    keys = lambda d: set(d["subject_id"] + "/" + d["clip"])  # noqa: E731
    assert seen and set(seen) <= keys(tr) and not set(seen) & keys(te)
    plan = __import__("pandas").read_csv(f"{r['dir']}/plan.csv")
    assert not set(plan["source"]) & keys(te) and len(plan) == 4 * cfg.per_class
    assert r["test_clips"] == len(te) > 0


def test_same_seed_same_weights_and_resume_after_an_interrupt(flowrun):
    cfg = replace(QUICK, epochs=2, tag="det", ema=0.9)  # the weight average is part of what a resume restores
    a = train.train_stream(flowrun, 64, 0, cfg, verbose=0)
    assert list(a["history"]["epoch"]) == [0, 1] and {"loss", "accuracy", "val_accuracy", "learning_rate"} <= set(a["history"])
    first = weights(a["model"])
    assert not a["cached"] and train.train_stream(flowrun, 64, 0, cfg, verbose=0)["cached"]

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise KeyboardInterrupt("power cut")

    with pytest.raises(KeyboardInterrupt):
        train.train_stream(flowrun, 64, 0, cfg, verbose=0, force=True, callbacks=[Crash()])
    out = train.stream_dir(flowrun, cfg, 64, 0)
    assert json.loads((out / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    c = train.train_stream(flowrun, 64, 0, cfg, verbose=0)
    assert c["resumed_from"] == 1 and list(c["history"]["epoch"]) == [0, 1]
    # the interrupted run started afresh (force) with the same seed: resumed == uninterrupted, and so the
    # same seed gives the same weights (CPU)
    assert same(first, weights(c["model"]))

    class CrashLast(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("after the last checkpoint, before the model is saved")

    with pytest.raises(KeyboardInterrupt):
        train.train_stream(flowrun, 64, 0, cfg, verbose=0, force=True, callbacks=[CrashLast()])
    d = train.train_stream(flowrun, 64, 0, cfg, verbose=0)
    assert d["resumed_from"] == 2 and same(first, weights(d["model"]))  # the weight average swapped in, as fit() does
    other = train.train_stream(flowrun, 64, 0, replace(cfg, seed=1), verbose=0)
    assert not same(first, weights(other["model"]))


def test_corrupt_or_mismatched_checkpoints_are_refused(flowrun):
    cfg = replace(QUICK, epochs=2, tag="ckpt")
    out = train.stream_dir(flowrun, cfg, 64, 0)

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.train_stream(flowrun, 64, 0, cfg, verbose=0, callbacks=[Crash()])
    weights_file = out / "backup" / "latest.weights.h5"
    good = weights_file.read_bytes()
    with pytest.raises(TrainError, match="other settings.*per_class"):
        train.train_stream(flowrun, 64, 0, replace(cfg, per_class=3), verbose=0)
    weights_file.write_bytes(good[: len(good) // 3])
    with pytest.raises(TrainError, match=r"cannot resume from .*latest\.weights\.h5"):
        train.train_stream(flowrun, 64, 0, cfg, verbose=0)
    # weights of the other stream in this stream's folder
    m128 = models.dtscnn128()
    m128.save_weights(weights_file)
    with pytest.raises(TrainError, match="cannot resume from"):
        train.train_stream(flowrun, 64, 0, cfg, verbose=0)
    (out / "backup" / "training_metadata.json").write_text("{not json")
    with pytest.raises(TrainError, match="training_metadata.json is unreadable"):
        train.train_stream(flowrun, 64, 0, cfg, verbose=0)
    r = train.train_stream(flowrun, 64, 0, cfg, verbose=0, force=True)  # --force starts afresh
    assert r["resumed_from"] == 0 and len(r["history"]) == 2


def test_a_fold_without_a_class_in_training_is_a_clear_error(flowrun, monkeypatch):
    from mexpr import datasets

    df = train.clips_table(flowrun)
    pos = np.flatnonzero(df["label"].to_numpy() == "Positive")
    rest = np.setdiff1d(np.arange(len(df)), pos)
    # a fold like a leave-one-subject-out fold whose subject holds every Positive clip
    monkeypatch.setattr(datasets, "splits", lambda *a, **k: [{"fold": 0, "train": rest, "test": pos}])
    with pytest.raises(augment.AugmentError, match="class 'Positive' has no training clip"):
        train.train_stream(flowrun, 64, 0, replace(QUICK, tag="nopos"), verbose=0)


def test_cli_train(flowrun):
    cmd = [
        sys.executable,
        "-m",
        "mexpr",
        "train",
        "--run",
        str(flowrun),
        "--stream",
        "128",
        "--fold",
        "2",
        "--profile",
        "quick",
        "--per-class",
        "1",
        "--epochs",
        "1",
        "--quiet",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "DTSCNN128 fold 2" in out.stdout
    folder = train.stream_dir(flowrun, replace(train.config_for("quick"), per_class=1, epochs=1), 128, 2)
    assert (folder / "model.keras").is_file() and (folder / "history.csv").is_file() and any((folder / "tensorboard").rglob("*"))
    bad = subprocess.run(cmd[:-1] + ["--fold", "7"], capture_output=True, text=True)
    assert bad.returncode == 2 and "fold 7 does not exist" in bad.stderr


def test_mixed_precision_and_xla_are_opt_in():
    assert QUICK.precision == "float32" and not QUICK.mixed_precision and not QUICK.jit_compile
    half = replace(QUICK, precision="float16", jit_compile=True)  # what mixed_precision=True was
    m = train.build(64, half, steps_per_epoch=1, seed=0)
    assert isinstance(m.optimizer, keras.optimizers.LossScaleOptimizer) and half.mixed_precision
    assert m.get_layer("conv1").compute_dtype == "float16" and m.get_layer("conv1").variable_dtype == "float32"
    assert m.output.dtype == "float32" and m.get_layer("scale").compute_dtype == "float32"  # the softmax and the Munsell scale stay float32
    assert m.jit_compile
    train.set_determinism(0)  # back to deterministic ops for the other tests
    assert half.fingerprint(64, 0)["mixed_precision"] is True and "precision" not in half.fingerprint(64, 0)  # as mixed_precision=True's were
    assert train.experiment_dir("r", half).name == "paper-s0-tuned-float16"


#: A default config's fingerprint as written before the precision setting existed (``mixed_precision``
#: a boolean): a stream trained then must still be found finished, not trained again.
FINGERPRINT_BEFORE_PRECISION = {
    "batch_size": 10, "dropout": 0.5, "ema": 0.0, "fields": 64, "flip": False, "flow_method": "dis", "fold": 0,
    "input_scale": "symmetric", "jit_compile": False, "mixed_precision": False, "mode": "frame", "momentum": 0.9,
    "munsell": "frame", "per_class": 500, "protocol": "paper", "rates": {"decay": 0.1, "decay_every": 10, "lr": 0.0001},
    "reference": "consecutive", "schedule": "paper", "seed": 0, "smooth": 0.0, "tag": "", "version": 1,
}  # fmt: skip


def test_precision_is_a_setting_that_leaves_float32_checkpoints_valid(monkeypatch):
    assert train.Config().fingerprint(64, 0) == FINGERPRINT_BEFORE_PRECISION
    assert train.Config(precision="float32").fingerprint(64, 0) == FINGERPRINT_BEFORE_PRECISION
    monkeypatch.setattr(models, "gpu_count", lambda: 0)
    monkeypatch.setattr(models, "bf16_cpu_flags", lambda cpuinfo="/proc/cpuinfo": ("amx_bf16", "avx512_bf16"))
    auto = train.Config(precision="auto")
    assert auto.compute_precision == "bfloat16" and auto.fingerprint(64, 0) == FINGERPRINT_BEFORE_PRECISION | {"precision": "bfloat16"}
    assert train.experiment_dir("r", auto).name == "paper-s0-paper-bfloat16"  # beside the float32 streams, not over them
    assert auto.fingerprint(64, 0) == train.Config(precision="bfloat16").fingerprint(64, 0)  # auto is what it resolves to
    monkeypatch.setattr(models, "bf16_cpu_flags", lambda cpuinfo="/proc/cpuinfo": ())
    assert auto.compute_precision == "float32" and auto.fingerprint(64, 0) == FINGERPRINT_BEFORE_PRECISION  # auto here: float32
    assert train.experiment_dir("r", auto).name == "paper-s0-paper"
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16, float16, not 'fp8'"):
        train.config_for("quick", precision="fp8")


def test_bfloat16_on_a_cpu_without_it_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from mexpr import cli

    monkeypatch.setattr(models, "gpu_count", lambda: 0)
    monkeypatch.setattr(models, "bf16_cpu_flags", lambda cpuinfo="/proc/cpuinfo": ())
    cfg = replace(QUICK, precision="bfloat16")  # a config may name it (to find or evaluate a run trained elsewhere) ...
    with pytest.raises(models.PrecisionError, match="this CPU has none of amx_bf16, avx512_bf16 .* use precision float32, or auto"):
        train.build(64, cfg, steps_per_epoch=1, seed=0)  # ... but not train in it here
    with pytest.raises(models.PrecisionError, match="bfloat16: this CPU"):
        train.train_stream("no-such-run", 64, 0, cfg, verbose=0)  # before any work
    # mexpr train --precision bfloat16: the error, named, and exit status 2 (no traceback), before any work
    run = tmp_path / "run"
    argv = ["train", "--run", str(run), "--profile", "quick", "--stream", "64", "--fold", "0", "--quiet", "--precision", "bfloat16"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "mexpr train: error: precision bfloat16: this CPU has none of amx_bf16, avx512_bf16" in err and "Traceback" not in err
    assert not (run / "train").exists()


def test_a_stream_trains_in_bfloat16_and_says_so(flowrun, monkeypatch, caplog):
    import logging

    monkeypatch.setattr(models, "gpu_count", lambda: 0)
    if models.resolve_precision("auto")[0] != "bfloat16":  # also where oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0)
        pytest.skip("this CPU has no native bfloat16 (AMX-BF16 / AVX512-BF16) that TensorFlow uses")
    cfg = replace(QUICK, per_class=1, epochs=1, precision="auto")
    with caplog.at_level(logging.INFO, logger="mexpr.train"):
        r = train.train_stream(flowrun, 64, 0, cfg, jobs=1, verbose=0)
    assert "trains in bfloat16 (auto: no GPU; the CPU has" in caplog.text
    assert r["dir"].endswith("paper-s0-tuned-bfloat16/fold0/dtscnn64") and np.isfinite(r["final"]["loss"])
    done = json.loads((train.stream_dir(flowrun, cfg, 64, 0) / "done.json").read_text())
    assert done["precision"]["requested"] == "auto" and done["precision"]["used"] == "bfloat16"
    assert done["fingerprint"]["precision"] == "bfloat16" and train.finished(flowrun, 64, 0, cfg) is not None
    model = models.load(r["model"])
    assert model.get_layer("conv1").compute_dtype == "bfloat16" and model.get_layer("conv1").computes == "space_to_depth"
    x = train.load_test(flowrun, train.fold_split(flowrun, cfg, 0)[1].head(2), 64)[0]
    as_saved, in_float32 = models.features(model, x), models.features(models.load(r["model"], precision="float32"), x)
    assert np.abs(as_saved - in_float32).max() <= 0.02 * np.abs(in_float32).max() + 1e-6  # evaluated in another precision


def test_a_damaged_augmentation_file_is_named(tmp_path):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    good = tmp_path / "good.npy"
    np.save(good, x)
    out = np.empty_like(x)
    train.read_npy_into(good, out)
    assert np.array_equal(out, x)
    cut = tmp_path / "cut.npy"
    cut.write_bytes(good.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"cut\.npy: truncated \(19 of 24 bytes\)"):
        train.read_npy_into(cut, out)
    with pytest.raises(ValueError, match=r"good\.npy: holds uint8 \(2, 3, 4\), expected uint8 \(3, 3, 4\)"):
        train.read_npy_into(good, np.empty((3, 3, 4), np.uint8))
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not an array")
    with pytest.raises(ValueError, match=r"junk\.npy: not a readable \.npy file"):
        train.read_npy_into(junk, out)


def test_the_test_fold_is_a_monitor_only(flowrun):
    """Training selects nothing on the test fold: with the fold's test clips monitored every epoch
    or not shown at all, the kept model (the last epoch's) is the same, weight for weight."""
    cfg = replace(QUICK, epochs=2, tag="monitor")
    shown = train.train_stream(flowrun, 64, 1, cfg, verbose=0)
    hidden = train.train_stream(flowrun, 64, 1, replace(cfg, tag="no-monitor"), verbose=0, monitor_test=False)
    assert shown["history"]["val_accuracy"].notna().all() and hidden["history"].get("val_accuracy", pd.Series([np.nan])).isna().all()
    assert same(weights(shown["model"]), weights(hidden["model"]))


def test_cli_options_name_our_training_settings():
    from mexpr import cli

    def config(*extra):
        return cli._train_config(cli.build_parser().parse_args(["train", "--run", "r", "--profile", "quick", *extra]))

    assert config().flip is False and config().ema == 0.0  # the paper's
    assert config("--flip", "--ema", "0.9").flip is True and config("--flip", "--ema", "0.9").ema == 0.9
    ours = config("--input", "mexpr")
    assert ours.input == "mexpr" and config("--input", "mexpr", "--no-flip").input == "custom"
    assert config("--input", "mexpr", "--global-motion", "affine").global_motion == "affine"
    with pytest.raises(ValueError, match="ema must be a momentum"):
        config("--ema", "1.5")
    assert config().precision == "float32" and config("--precision", "bfloat16").precision == "bfloat16"
    assert config("--mixed-precision").precision == "float16" == config("--precision", "float16", "--mixed-precision").precision
    with pytest.raises(ValueError, match="--mixed-precision means --precision float16, not bfloat16"):
        config("--precision", "bfloat16", "--mixed-precision")
    with pytest.raises(SystemExit):  # argparse lists the choices
        config("--precision", "half")


def test_smoothing_over_time_is_a_named_setting_that_leaves_earlier_checkpoints_valid():
    plain = train.config_for("default", input="mexpr")
    smoothed = train.config_for("default", input="mexpr", tsmooth=12)
    assert "tsmooth" not in plain.fingerprint(64, 0)  # a stream trained before the setting existed still resumes
    assert smoothed.fingerprint(64, 0)["tsmooth"] == 12.0
    assert smoothed.input == "custom" and smoothed.label == " (mexpr input + flow smoothed over 12 fields, ours)"
    assert train.experiment_dir("runs/x", smoothed).name == "paper-s0-adam-mexpr-tsmooth12"
    with pytest.raises(ValueError, match="finite sigma"):
        train.config_for("default", tsmooth=-1)


def test_removing_global_motion_is_a_named_setting_that_leaves_earlier_checkpoints_valid():
    plain = train.config_for("default", input="mexpr", global_motion="keep")
    local = train.config_for("default", input="mexpr", global_motion="affine")
    assert "global_motion" not in train.config_for("default").fingerprint(64, 0)  # the paper's keeps it: earlier streams resume
    assert local.fingerprint(64, 0)["global_motion"] == "affine" and local.builds_on_mexpr
    assert "global motion: affine" in local.label or local.input == "mexpr"
    assert train.experiment_dir("runs/x", local).name.startswith("paper-s0-adam-mexpr")
    assert train.experiment_dir("runs/x", plain) != train.experiment_dir("runs/x", local)
    with pytest.raises(ValueError, match="valid: keep, affine"):
        train.config_for("default", global_motion="nose")


def test_a_checkpoint_is_never_half_written_and_its_weights_say_their_epoch(tmp_path):
    backup = tmp_path / "backup"
    cb = train._backup_callback(backup)
    cb.set_model(models.dtscnn64())
    cb._current_epoch = 3
    cb._save_model()
    assert sorted(p.name for p in backup.iterdir()) == ["latest.weights.h5", "training_metadata.json"]  # no temporary file left
    # killed between the two renames: the metadata still says the epoch before; the weights know theirs
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 2, "batch": 0}))
    assert train._backup_epoch(backup) == 3
    (backup / "latest.weights.h5").unlink()  # a checkpoint being removed: metadata alone means start afresh
    assert train._check_resume(tmp_path, {}, None) == 0 and not (backup / "training_metadata.json").exists()


def test_a_resumed_log_drops_the_rows_of_epochs_it_trains_again(tmp_path):
    log = tmp_path / "history.csv"
    log.write_bytes(b"epoch,loss\r\n0,1.5\r\n1,1.25\r\n2,1.")  # killed while writing epoch 2's row
    train._trim_history(log, 2)
    assert log.read_bytes() == b"epoch,loss\r\n0,1.5\r\n1,1.25\r\n"
    train._trim_history(log, 1)  # killed after logging epoch 1 but before its checkpoint
    assert pd.read_csv(log)["epoch"].tolist() == [0]


def test_default_ablation_plan_reuses_the_series_streams_and_shows_a_recorded_table(tmp_path):
    """make reproduce's notebook 08 trains nothing again: its plan's two ends are exactly the
    configs notebooks 04 (the paper's input) and 06 (ours) trained at the profile's budget; the
    other steps come from a table benchmarks/ablation.py --record kept, read back as written, and
    a malformed one is refused with its file named."""
    from mexpr import ablation

    plan = ablation.plan_for("default")
    ends = ablation.configs("default", "paper", 0, plan["steps"], **{k: plan[k] for k in ("epochs", "per_class") if plan[k] is not None})
    assert ends == {
        "paper input": train.config_for("default", protocol="paper", seed=0),
        ablation.MEXPR_STEP: train.config_for("default", protocol="paper", seed=0, input="mexpr"),
    }
    assert (
        ablation.configs("default", "paper", 0, ["paper input"], per_class=40)["paper input"].tag == "budget40x10"
    )  # another budget: its own folder

    assert ablation.recorded("default", tmp_path) is None  # nothing recorded in this folder
    kept, how = ablation.recorded("default")  # the table make reproduce's notebook 08 shows: every step of this version
    assert (
        set(kept["step"]) == set(ablation.STEPS) and set(kept["method"]) == set(ablation.METHODS) and how["command"].startswith("python benchmarks/")
    )
    runs = pd.DataFrame(
        [
            {"step": s, "protocol": "paper", "seed": 0, "method": m, "uar": 0.25 + 0.01 * i, "uf1": 0.2, "accuracy": 0.3, "folds": 1}
            for i, s in enumerate(ablation.STEPS)
            for m in ablation.METHODS
        ]
    )
    path = ablation.record(runs, {"command": "python benchmarks/ablation.py --run runs/default", "seconds": 60.0}, "default", tmp_path)
    back, info = ablation.recorded("default", tmp_path)
    pd.testing.assert_frame_equal(back, runs)
    assert info["command"].startswith("python benchmarks/ablation.py") and path.name == "ablation_default_runs.csv"
    table = ablation.table(back)
    assert list(table.index) == list(ablation.STEPS) and table.loc[ablation.MEXPR_STEP, ("paper", "ΔUAR vs paper (points)")] == "+11.0"
    runs.drop(columns="folds").to_csv(path, index=False)
    with pytest.raises(ablation.AblationError, match=r"ablation_default_runs.csv: not an ablation table .*folds"):
        ablation.recorded("default", tmp_path)
    runs.assign(step="more data").to_csv(path, index=False)
    with pytest.raises(ablation.AblationError, match=r"'more data'.* not steps of this version"):
        ablation.recorded("default", tmp_path)


def test_each_ablation_step_changes_one_factor_of_the_papers_input():
    """The ablation (notebook 08, benchmarks/ablation.py): the paper's input, each of our settings
    alone, one crop per clip, then all of ours; every step differs from the paper's input in
    exactly its own factor(s), and its last step is the ``mexpr`` input."""
    from dataclasses import asdict

    from mexpr import ablation

    cfgs = {step: asdict(cfg) for step, cfg in ablation.configs("default", "paper", 0).items()}
    assert list(cfgs) == list(ablation.STEPS)
    paper, ours = cfgs["paper input"], asdict(train.config_for("default", input="mexpr"))
    assert cfgs[ablation.MEXPR_STEP] == ours
    for step, cfg in cfgs.items():
        changed = {k for k, v in cfg.items() if paper[k] != v}
        assert changed == set(ablation.STEPS[step]), step
        assert all(cfg[k] == v for k, v in ablation.STEPS[step].items()), step
    assert len(ablation.STEPS) >= 4 and all(len(s) == 1 for name, s in ablation.STEPS.items() if name not in ("paper input", ablation.MEXPR_STEP))
