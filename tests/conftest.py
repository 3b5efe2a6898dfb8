"""Shared fixtures: tiny synthetic datasets (every emotion at its minimum of 2 clips)."""

from __future__ import annotations

import contextlib
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY_SCALE = 0.02  # every emotion at its minimum of 2 clips


def _shared(tmp_path_factory):
    """A folder all of this session's pytest-xdist workers share (each worker has its own basetemp
    under one parent; without xdist the basetemp itself)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def _locked(lockfile):
    """Held by one process of the session at a time (an exclusive ``flock`` on ``lockfile``)."""
    import fcntl

    with open(lockfile, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def shared_synth(tmp_path_factory, dataset: str):
    """The tiny synthetic ``dataset``, written once per test session whatever the number of workers
    (the first to ask writes it under a lock; the others wait and read it) and named as notebook
    00 names its cache, so the quick series finds it made.  Read-only: a test that changes a
    dataset copies it first."""
    from mexpr import synth

    cache = _shared(tmp_path_factory) / "synth-shared"
    cache.mkdir(exist_ok=True)
    with _locked(cache / f"{dataset}.lock"):
        out = cache / f"{dataset}-scale{TINY_SCALE:g}-seed0-default"
        return synth.generate(out, dataset, scale=TINY_SCALE, seed=0, difficulty="default", jobs=2, progress=False)


@pytest.fixture(scope="session")
def casme2_root(tmp_path_factory):
    return shared_synth(tmp_path_factory, "casme2")


@pytest.fixture(scope="session")
def casme1_root(tmp_path_factory):
    return shared_synth(tmp_path_factory, "casme1")


@pytest.fixture(scope="session")
def flowrun_base(casme2_root, casme1_root, tmp_path_factory):
    """A run with every tiny clip of both datasets pre-processed and its flow computed for both
    inputs (the paper's: DIS between neighbouring frames, coded, 64 + 128 fields; ours: since onset,
    smoothed, raw for the learned scale), once per session (under a lock, as :func:`shared_synth`).
    Read-only: tests use a copy (:func:`flowrun`) or its caches (:func:`seed_caches`)."""
    from mexpr import datasets, flow, preprocess, train
    from mexpr.run import Run

    base = _shared(tmp_path_factory) / "flowrun-shared"
    with _locked(str(base) + ".lock"):
        if not (base / "done").is_file():  # each stage resumes: an interrupted session's part is kept
            df = datasets.load([casme2_root, casme1_root])
            Run(base).write_dataset([casme2_root, casme1_root], synthetic=True)
            preprocess.run(df, base, jobs=2, progress=False)
            flow.run(base, "dis", jobs=2, progress=False)
            # every test that trains on our input, and notebook 06 of the quick series, would compute it otherwise
            train.flow_manifest(base, train.config_for("quick", input="mexpr"), jobs=2)
            (base / "done").touch()
    return base


@pytest.fixture(scope="session")
def flowrun(flowrun_base, tmp_path_factory):
    """A copy of :func:`flowrun_base` for each worker, whose tests train and write into it."""
    import shutil

    run = tmp_path_factory.mktemp("flowrun")
    shutil.copytree(flowrun_base, run, dirs_exist_ok=True)
    return run


@pytest.fixture(scope="session")
def seed_caches(flowrun_base):
    """``seed_caches(run)`` gives ``run`` the pre-processing and flow caches of :func:`flowrun_base`
    (hard links: writers replace a file, never change it in place).  Both caches are keyed by the
    clips' content and the settings, so a series over the same clips with the default settings finds
    its notebooks 01-02's batch work done, as a resumed run does (those two stages are tested where
    the base is made, and in tests/test_preprocess.py and tests/test_flow.py)."""
    import os
    import shutil

    def seed(run):
        for part in ("preprocess", "flow"):
            shutil.copytree(flowrun_base / "cache" / part, run / "cache" / part, copy_function=os.link, dirs_exist_ok=True)

    return seed


@pytest.fixture(scope="session")
def face_bgr():
    """A synthetic face, 640 x 480 BGR uint8 (identity 0 of mexpr.synth; made once per session: ~5 s)."""
    import numpy as np

    from mexpr.synth.identity import make_identity

    img = np.clip(make_identity(0).image, 0, 255).astype(np.uint8)[..., ::-1].copy()
    img.flags.writeable = False  # shared: a test copies before drawing on it
    return img


@pytest.fixture(scope="session")
def face_video(tmp_path_factory, face_bgr):
    """A 4-s 30-fps video of a synthetic face that sways, raises its brows twice (a micro- and a
    macro-like movement) and leaves nothing else to find."""
    import cv2
    import numpy as np

    from mexpr import video

    img = face_bgr
    frames = []
    for i in range(120):
        up = 2.0 * np.exp(-0.5 * ((i - 40) / 2.5) ** 2) + 4.0 * np.exp(-0.5 * ((i - 85) / 8) ** 2)
        f = img.copy()
        band = f[150:230].copy()
        m = np.float32([[1, 0, 0], [0, 1, -up]])
        f[150:230] = cv2.warpAffine(band, m, (band.shape[1], band.shape[0]), borderMode=cv2.BORDER_REFLECT)
        sway = np.float32([[1, 0, 1.2 * np.sin(i / 11)], [0, 1, 0]])
        frames.append(cv2.warpAffine(f, sway, (f.shape[1], f.shape[0]), borderMode=cv2.BORDER_REFLECT))
    return video.write_video(tmp_path_factory.mktemp("user") / "me.mp4", frames, 30)
