"""Shared fixtures: tiny synthetic datasets (every emotion at its minimum of 2 clips)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY_SCALE = 0.02  # every emotion at its minimum of 2 clips


@pytest.fixture(scope="session")
def casme2_root(tmp_path_factory):
    from mexpr import synth

    return synth.generate(tmp_path_factory.mktemp("synth") / "casme2", "casme2", scale=TINY_SCALE, seed=0, jobs=2, progress=False)


@pytest.fixture(scope="session")
def casme1_root(tmp_path_factory):
    from mexpr import synth

    return synth.generate(tmp_path_factory.mktemp("synth") / "casme1", "casme1", scale=TINY_SCALE, seed=0, jobs=2, progress=False)


@pytest.fixture(scope="session")
def flowrun(casme2_root, casme1_root, tmp_path_factory):
    """A run with every tiny clip of both datasets pre-processed and coded (DIS, 64 + 128 fields)."""

    from mexpr import datasets, flow, preprocess
    from mexpr.run import Run

    run = tmp_path_factory.mktemp("flowrun")
    df = datasets.load([casme2_root, casme1_root])
    Run(run).write_dataset([casme2_root, casme1_root], synthetic=True)
    preprocess.run(df, run, jobs=2, progress=False)
    flow.run(run, "dis", jobs=2, progress=False)
    return run


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
