"""Beyond one machine (mexpr.scale): the scheduler option and its errors, a 2-worker Dask
LocalCluster giving the serial run's predictions to the byte, a worker killed mid-task, and one
stream trained across two logical CPU devices."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from mexpr import _io, cli, evaluate, models, scale, train

QUICK = train.config_for("quick", per_class=3, epochs=1, tag="eval")  # test_evaluate's: its serial run is reused


def test_a_malformed_scheduler_names_the_problem(capsys):
    assert scale.parse(None) is None and scale.parse("") is None
    assert scale.parse("local:2") == ("local", 2) and scale.parse("tcp://10.0.0.5:8786/") == ("address", "tcp://10.0.0.5:8786")
    for bad, why in [
        ("local:0", "local:N with N >= 1"),
        ("local", "local:N with N >= 1"),
        ("node7:8786", "no protocol; did you mean tcp://node7:8786"),
        ("http://node7:8786", "protocol http:// is not supported"),
        ("tcp://node7", "is not tcp://host:port"),
        ("tcp://node7:99999", "port 99999 is not in 1..65535"),
    ]:
        with pytest.raises(scale.ScaleError, match=why.replace(".", r"\.").replace("(", r"\(")):
            scale.parse(bad)
    with pytest.raises(scale.ScaleError, match=r"no Dask scheduler answers at tcp://127\.0\.0\.1:1 within 1 s"):
        with scale.scheduler("tcp://127.0.0.1:1", timeout=1):
            pass
    with scale.scheduler(None) as client:  # no option: nothing changes
        assert client is None and scale.current() is None and scale.describe() == {}
    assert cli.main(["flow", "--run", "nowhere", "--scheduler", "node7:8786", "--quiet"]) == 2
    assert "did you mean tcp://node7:8786" in capsys.readouterr().err
    for bad in ("0", "some", -1, True):
        with pytest.raises(ValueError, match="devices must be 'all' or a number"):
            replace(QUICK, devices=bad)
    assert replace(QUICK, devices="2").devices == 2 and train.experiment_dir("r", replace(QUICK, devices="all")).name.endswith("-devicesall-eval")
    assert QUICK.fingerprint(64, 0) == replace(QUICK, devices=1).fingerprint(64, 0) and "devices" not in QUICK.fingerprint(64, 0)


@pytest.fixture(scope="module")
def cluster():
    """A 2-worker LocalCluster for this module's tests (each connects to it by its tcp:// address)."""
    with scale.local_cluster(2) as c:
        yield c.scheduler_address


@pytest.fixture(scope="module")
def serial(flowrun):
    """The serial evaluation of fold 0 (the one test_evaluate runs: read back when it ran first)."""
    return evaluate.evaluate(flowrun, QUICK, folds=[0], jobs=1, verbose=0, progress=False)


def fresh_copy(flowrun, dest):
    """The run's pre-processing and flow, nothing trained."""
    shutil.copytree(
        flowrun, dest, ignore=lambda d, names: [n for n in names if d == str(flowrun) and n in ("train", "baselines", "tables", "figures")]
    )
    return dest


def weights(path):
    return models.load(path).get_weights()


def test_a_2_worker_cluster_gives_the_serial_predictions_to_the_byte(flowrun, serial, cluster, tmp_path):
    from joblib import delayed

    run = fresh_copy(flowrun, tmp_path / "run")
    with scale.scheduler(cluster) as client:
        workers = set(client.run(os.getpid).values())
        # the stages' joblib loops go to the workers (joblib's Dask backend)
        assert set(_io.parallel([delayed(os.getpid)() for _ in range(4)], jobs=1, progress=False)) <= workers
        ev = evaluate.evaluate(run, QUICK, folds=[0], progress=False)  # both streams: two Dask tasks
    assert ev.info["scheduler"] == cluster and ev.info["workers"] == 2
    mine, theirs = evaluate.evaluate_dir(run, QUICK), evaluate.evaluate_dir(flowrun, QUICK)
    assert (mine / "predictions.csv").read_bytes() == (theirs / "predictions.csv").read_bytes()
    assert (mine / "summary.csv").read_bytes() == (theirs / "summary.csv").read_bytes()
    assert not any(p.name.startswith(".") for p in run.rglob("*"))  # no temporary file left behind


def test_a_worker_killed_mid_task_has_its_task_run_again(flowrun, serial, cluster, tmp_path):
    run = fresh_copy(flowrun, tmp_path / "run")
    out = train.stream_dir(run, QUICK, 64, 0)
    result, errors = [], []

    def work():
        try:
            result.extend(train.train_many(run, QUICK, [(0, 64)]))
        except Exception as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    with scale.scheduler(cluster) as client:
        thread = threading.Thread(target=work)
        thread.start()
        key, deadline = None, time.time() + 120
        while key is None and time.time() < deadline:  # the task has started: its plan is written
            busy = {w: ks for w, ks in client.processing().items() if any(str(k).startswith("mexpr-train") for k in ks)}
            key = next(iter(busy), None) if (out / "plan.csv").is_file() else None
            time.sleep(0.05)
        assert key is not None, "the training task never started"
        assert not (out / "done.json").exists()  # mid-task
        pid = client.run(os.getpid, workers=[key])[key]
        os.kill(pid, signal.SIGKILL)
        thread.join(timeout=300)
    assert not thread.is_alive() and not errors, errors
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # that worker is gone; Dask ran its task again on another
    r = result[0]
    assert not r["cached"] and json.loads((out / "done.json").read_text())["epochs"] == 1 and len(r["history"]) == 1
    assert not (out / "backup").exists()  # finished: the checkpoint is removed after done.json
    ref = train.stream_dir(flowrun, QUICK, 64, 0) / "model.keras"
    assert all(np.array_equal(a, b) for a, b in zip(weights(out / "model.keras"), weights(ref)))  # the serial run's weights
    # a killed writer leaves at most an orphaned temporary file, never half a file under its name
    assert all(p.name.startswith(".") for p in run.rglob("*.part"))


DEVICES = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)  # before TF starts
from mexpr import evaluate, scale, train
cfg = train.config_for("quick", per_class=3, epochs=1, batch_size=4, devices="all")
r = train.train_stream(sys.argv[1], 64, 0, cfg, jobs=1, verbose=0)
f = evaluate.stream_features(sys.argv[1], cfg, 64, 0)  # the model trained on two devices, read back like any other
print(json.dumps({"devices": scale.local_devices(), "replicas": r["replicas"], "global_batch": r["global_batch"],
                  "epochs": len(r["history"]), "loss": r["final"]["loss"], "dir": r["dir"], "features": list(f["test"].shape)}))
"""


def test_one_stream_trains_on_two_logical_cpu_devices(flowrun, tmp_path):
    run = fresh_copy(flowrun, tmp_path / "run")
    env = os.environ | {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}  # scale.strategy says why
    out = subprocess.run([sys.executable, "-c", DEVICES, str(run)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["devices"] == ["/device:CPU:0", "/device:CPU:1"] and r["replicas"] == 2
    assert r["global_batch"] == 8 and r["epochs"] == 1 and np.isfinite(r["loss"])  # batch_size 4 per device
    assert r["dir"].endswith("-devicesall/fold0/dtscnn64") and r["features"][1] == 1152


def test_a_writer_that_fails_leaves_nothing_under_the_name(tmp_path):
    target = tmp_path / "sample.npy"
    with pytest.raises(RuntimeError):
        with _io.replacing(target, suffix=".npy") as tmp:
            np.save(tmp, np.zeros(3))
            raise RuntimeError("killed half-way")
    assert list(tmp_path.iterdir()) == []
    with _io.replacing(target, suffix=".npy") as tmp:
        np.save(tmp, np.arange(3))
    assert np.array_equal(np.load(target), np.arange(3)) and [p.name for p in tmp_path.iterdir()] == ["sample.npy"]
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what an ordinary write gives: the written file is readable as that one is, not private
    _io.atomic_write_text(tmp_path / "record.json", "{}")
    assert (tmp_path / "record.json").stat().st_mode & 0o777 == target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_the_costliest_tasks_start_first(cluster):
    """run_tasks with costs (train_many: DTSCNN128 before DTSCNN64) starts the costliest tasks
    first on the cluster's two workers, whatever the order of the calls, and still returns the
    results in that order; without a cluster it runs the calls in order."""

    def started(name):
        t = time.time()
        time.sleep(0.3)
        return name, t

    names, costs = ["a", "b", "c", "d", "e", "f"], [1, 5, 2, 6, 3, 4]
    calls = [(n,) for n in names]
    assert [r[0] for r in scale.run_tasks(started, calls, costs=costs)] == names  # here: in order
    with scale.scheduler(cluster):
        out = scale.run_tasks(started, calls, costs=costs)
    assert [r[0] for r in out] == names
    by_start = [n for n, _ in sorted(out, key=lambda r: r[1])]
    assert set(by_start[:2]) == {"d", "b"} and set(by_start[2:4]) == {"f", "e"} and set(by_start[4:]) == {"c", "a"}
    with pytest.raises(ValueError, match="2 costs for 6 tasks"), scale.scheduler(cluster):
        scale.run_tasks(started, calls, costs=[1, 2])
    with pytest.raises(ValueError, match="2 costs for 6 tasks"):  # the same mistake without a cluster
        scale.run_tasks(started, calls, costs=[1, 2])
