"""mexpr.synth: formats, counts, determinism, ground truth, landmarks."""

from __future__ import annotations

import filecmp
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mexpr import datasets, face, synth
from mexpr.datasets import TABLE3
from tests.conftest import TINY_SCALE


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_scaled_counts_follow_table3_with_minimum_two():
    assert datasets.scaled_counts("casme2", 1.0) == TABLE3["casme2"]
    assert datasets.scaled_counts("casme1", 1.0) == TABLE3["casme1"]
    assert set(datasets.scaled_counts("casme2", 0.001).values()) == {2}
    assert datasets.scaled_counts("casme2", 0.05) == {
        "disgust": 3,
        "sadness": 2,
        "fear": 2,
        "repression": 2,
        "others": 5,
        "happiness": 2,
        "surprise": 2,
    }
    with pytest.raises(ValueError, match="scale"):
        datasets.scaled_counts("casme2", 0)
    with pytest.raises(ValueError, match="dataset"):
        datasets.scaled_counts("mmew", 1.0)


@pytest.mark.parametrize("name", ["casme2", "casme1"])
def test_synthetic_dataset_loads_with_table3_counts(name, request):
    root = request.getfixturevalue(f"{name}_root")
    df = datasets.load(root)
    expected = datasets.scaled_counts(name, TINY_SCALE)
    got = df.groupby("emotion").size().to_dict()
    assert got == expected
    assert (df["dataset"] == name).all()
    assert (df["fps"] == datasets.FPS[name]).all()
    assert df["subject_id"].nunique() >= 4
    # frames: 640x480 JPEGs, numbered onset..offset (the folder may hold a few extra frames)
    row = df.iloc[0]
    img = cv2.imread(row["frames"][0])
    assert img.shape == (480, 640, 3)
    assert [datasets.frame_number(f) for f in row["frames"]] == list(range(row["onset"], row["offset"] + 1))
    assert (df["n_frames"] >= 2).all()


def test_casme2_sheet_has_real_columns_and_quirks(casme2_root):
    sheet = pd.read_excel(casme2_root / "CASME2-coding-synthetic.xlsx")
    assert list(sheet.columns) == [
        "Subject",
        "Filename",
        "Unnamed: 2",
        "OnsetFrame",
        "ApexFrame",
        "OffsetFrame",
        "Unnamed: 6",
        "Action Units",
        "Estimated Emotion",
    ]
    assert pd.api.types.is_integer_dtype(sheet["Subject"])
    assert (casme2_root / "CASME2_RAW_selected" / "sub01").is_dir()


def test_casme1_layout_and_columns(casme1_root):
    sheets = sorted(casme1_root.rglob("Section *.xlsx"))
    assert [s.name for s in sheets] == ["Section A.xlsx", "Section B.xlsx"]
    cols = list(pd.read_excel(sheets[0]).columns)
    for c in ("OnsetF", "ApexF1", "ApexF2", "OffsetF", "Emotion"):
        assert c in cols
    frame = next(casme1_root.rglob("*.jpg"))
    assert "-" in frame.stem  # EPxx_y-N.jpg


def test_same_seed_gives_byte_identical_files_and_the_cli_writes_them(casme1_root, tmp_path, capsys):
    # a second run, through the CLI and on one worker instead of two: the same bytes as the session's set
    # (CASME I: 60 fps, a third of CASME II's frames per clip)
    from mexpr.cli import main

    again = tmp_path / "again"
    args = ["synth", "--dataset", "casme1", "--scale", f"{TINY_SCALE:g}", "--seed", "0", "--out", str(again), "--quiet", "--jobs", "1"]
    assert main(args) == 0
    files = _files(casme1_root)
    assert files == _files(again)
    match, mismatch, errors = filecmp.cmpfiles(casme1_root, again, [str(f) for f in files], shallow=False)
    assert not mismatch and not errors
    assert len(match) == len(files) > 100
    assert main(["info", str(again)]) == 0
    text = capsys.readouterr().out
    assert f"table3 x {TINY_SCALE:g}" in text
    assert "16 clips" in text


def test_different_seed_gives_different_data():
    a = synth.plan_clips("casme2", 0.05, 0, synth.Difficulty())
    b = synth.plan_clips("casme2", 0.05, 1, synth.Difficulty())
    assert [p.aus for p in a] != [p.aus for p in b]


def test_generate_refuses_a_folder_with_another_dataset(casme1_root):
    with pytest.raises(FileExistsError):
        synth.generate(casme1_root, "casme1", scale=TINY_SCALE, seed=1, progress=False)
    # same arguments: already complete, returns at once
    assert synth.generate(casme1_root, "casme1", scale=TINY_SCALE, seed=0, progress=False) == casme1_root


def test_interrupted_generation_resumes(casme1_root, tmp_path):
    # simulate an interrupt: copy the finished clips, drop one clip's completion marker and frames
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(casme1_root, partial)
    (partial / "synth.json").unlink()
    (partial / ".synth-partial").write_text((casme1_root / "synth.json").read_text())
    victim = next(partial.rglob("motion.npz")).parent
    for f in victim.iterdir():
        f.unlink()
    synth.generate(partial, "casme1", scale=TINY_SCALE, seed=0, jobs=1, progress=False)
    match, mismatch, errors = filecmp.cmpfiles(casme1_root, partial, [str(f) for f in _files(casme1_root)], shallow=False)
    assert not mismatch and not errors


def test_micro_motion_amplitudes_are_about_a_pixel_or_less(casme2_root, casme1_root):
    stats = pd.concat([pd.read_csv(r / "clips.csv") for r in (casme2_root, casme1_root)])
    px = stats["apex_displacement_px"]
    assert px.max() <= synth.Difficulty().intensity_range[1] + 1e-3
    assert 0.05 < px.median() < 1.0


def test_ground_truth_flow_explains_the_frames():
    """Warping frame t+1 back along the stored ground-truth flow reproduces frame t."""
    ident = synth.make_identity(3)
    plan = synth.ClipPlan(0, 1, "", "EP01_01", "surprise", ["1", "2", "12"], 12, 100, 1, 6, 10, True, 5)
    strong = synth.Difficulty(intensity_median=8.0, intensity_sigma=0.0, intensity_range=(8.0, 8.0), head_drift=6.0, blink_prob=0.0)
    motion = synth.make_motion(plan, ident, strong, 200, np.random.default_rng(0))
    frames = [f.astype(np.float32) for f in synth.render_frames(ident, motion, strong, 200, rng=None)]
    t = 3  # rising phase: expression and head both move
    flow = synth.ground_truth_flow(motion, pairs=[t])[0]
    assert flow.shape == (480, 640, 2)
    h, w = flow.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    back = cv2.remap(frames[t + 1], xx + flow[..., 0], yy + flow[..., 1], cv2.INTER_LINEAR)
    face = (slice(120, 420), slice(200, 440))
    before = np.abs(frames[t + 1] - frames[t])[face].mean()
    after = np.abs(back - frames[t])[face].mean()
    assert np.abs(flow[face]).max() > 1.0  # a real movement was tested
    assert after < 0.25 * before


def test_motion_file_round_trips(casme2_root):
    clip = next(casme2_root.rglob("motion.npz")).parent
    m = synth.Motion.load(clip)
    n = len(m.frame_numbers)
    frames = sorted(p for p in clip.glob("*.jpg"))
    assert n == len(frames)
    flow = synth.ground_truth_flow(clip, pairs=[0, n - 2])
    assert flow.shape == (2, 480, 640, 2) and flow.dtype == np.float32
    assert np.isfinite(flow).all()
    with pytest.raises(IndexError):
        synth.ground_truth_flow(m, pairs=[n - 1])


def test_dlib_finds_68_landmarks_on_first_frames(casme2_root, casme1_root):
    from mexpr.face import detect_faces, landmarks

    df = datasets.load([casme2_root, casme1_root])
    found, errors = 0, []
    for _, row in df.iterrows():
        img = cv2.imread(row["frames"][0])[..., ::-1]
        faces = detect_faces(img, upsample=0)
        if not faces:
            continue
        found += 1
        pts = landmarks(img, faces[0][0])
        m = synth.Motion.load(row["clip_dir"])
        truth = m.landmarks_at(row["onset"])
        errors.append(np.linalg.norm(pts - truth, axis=1).mean() / m.face_scale)
    assert found == len(df)
    # landmark error, in px at the 96x112 crop scale
    assert np.median(errors) < 2.0


def test_user_faces_folder_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="faces folder"):
        face._user_photos(tmp_path / "nope")
    (tmp_path / "faces").mkdir()
    with pytest.raises(ValueError, match="no .jpg"):
        face._user_photos(tmp_path / "faces")
