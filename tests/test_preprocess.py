"""mexpr.preprocess: template, LWM, alignment accuracy, crop, interpolation, batch runner, bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mexpr import align, datasets, face, groundtruth, preprocess, settings, synth
from mexpr.preprocess import (
    AlignmentError,
    Config,
    FaceNotFoundError,
    FrameError,
    MultipleFacesError,
)

RNG = np.random.default_rng(0)


# --------------------------------------------------------------------------------------------
# template and transforms


def test_template_is_rebuilt_symmetric_and_inside_the_crop():
    assert np.allclose(face.TEMPLATE, face.build_template(), atol=0.01)
    t = face.TEMPLATE
    mirrored = t[face.MIRROR_68].copy()
    mirrored[:, 0] = (settings.CROP_W - 1) - mirrored[:, 0]
    assert np.allclose(mirrored, t, atol=1e-3)
    assert t[:, 0].min() > 4 and t[:, 0].max() < settings.CROP_W - 4
    assert t[:, 1].min() > 20 and t[:, 1].max() < settings.CROP_H - 4
    assert np.isclose(np.linalg.norm(t[16] - t[0]), 80.0, atol=0.01)


def _lwm_reference(fixed, moving, query, n):
    """Goshtasby's LWM written straight from its definition, one point at a time."""
    out = np.full((len(query), 2), np.nan)
    polys, radii = [], []
    for c in fixed:
        d = np.linalg.norm(fixed - c, axis=1)
        nb = np.argsort(d, kind="stable")[:n]
        radii.append(d[nb[-1]])
        x, y = fixed[nb, 0], fixed[nb, 1]
        A = np.stack([np.ones(n), x, y, x * x, x * y, y * y], 1)
        polys.append(np.linalg.lstsq(A, moving[nb], rcond=None)[0])
    for j, (x, y) in enumerate(query):
        num, den = np.zeros(2), 0.0
        for c, R, coef in zip(fixed, radii, polys):
            r = np.hypot(x - c[0], y - c[1]) / R
            if r < 1:
                w = 1 - 3 * r**2 + 2 * r**3
                num += w * (np.array([1, x, y, x * x, x * y, y * y]) @ coef)
                den += w
        if den > 0:
            out[j] = num / den
    return out


def test_lwm_matches_the_definition_and_reproduces_quadratics():
    fixed = RNG.uniform(0, 100, (40, 2))
    moving = fixed + RNG.normal(0, 3, fixed.shape)
    query = np.vstack([RNG.uniform(-20, 120, (300, 2)), [[-200.0, 50.0], [300.0, 300.0]]])
    ours = align.lwm_operator(fixed, query, n=10, fallback=0) @ moving
    ref = _lwm_reference(fixed, moving, query, 10)
    assert np.array_equal(np.isnan(ours), np.isnan(ref)) and np.isnan(ref).any() and (~np.isnan(ref)).any()
    inside = ~np.isnan(ref[:, 0])
    assert np.abs(ours[inside] - ref[inside]).max() < 1e-8

    def quad(p):
        x, y = p[:, 0], p[:, 1]
        return np.stack([3 + 0.9 * x + 0.1 * y + 0.002 * x * x, -2 + 1.1 * y - 0.001 * x * y + 0.003 * y * y], 1)

    tf = align.LWM(fixed, quad(fixed), n=10, fallback=0)
    assert np.abs(tf(query[inside]) - quad(query[inside])).max() < 1e-8


def test_lwm_fallback_is_the_affine_fit_far_away_and_continuous():
    fixed = RNG.uniform(0, 50, (30, 2))
    M = np.array([[1.1, 0.2, 5.0], [-0.1, 0.9, -3.0]])
    moving = fixed @ M[:, :2].T + M[:, 2]
    far = np.array([[500.0, 500.0], [-300.0, 40.0]])
    assert np.allclose(align.LWM(fixed, moving, fallback=0.01)(far), far @ M[:, :2].T + M[:, 2])
    line = np.stack([np.linspace(-40, 90, 2000), np.full(2000, 25.0)], 1)
    moving2 = moving + RNG.normal(0, 1, moving.shape)
    out = align.LWM(fixed, moving2, fallback=0.01)(line)
    assert np.isfinite(out).all() and np.abs(np.diff(out, axis=0)).max() < 0.5  # no jump at the support's edge


def test_degenerate_lwm_systems_are_refused():
    collinear = np.stack([np.arange(20.0), 2 * np.arange(20.0)], 1)
    with pytest.raises(AlignmentError, match="degenerate LWM"):
        align.lwm_operator(collinear, collinear[:3])
    same = np.tile([[10.0, 10.0]], (68, 1))
    with pytest.raises(AlignmentError, match="coincide"):
        align.lwm_operator(same, same[:1])
    with pytest.raises(AlignmentError, match="non-finite"):
        align.alignment_maps(np.full((3, 68, 2), np.nan))
    with pytest.raises(ValueError, match="unknown align .*valid: lwm-first"):
        align.alignment_maps(np.zeros((2, 68, 2)), align="affine")


def test_similarity_fit_recovers_a_known_transform():
    src = RNG.uniform(0, 100, (68, 2))
    a = 0.3
    M = np.array([[1.7 * np.cos(a), -1.7 * np.sin(a), 12.0], [1.7 * np.sin(a), 1.7 * np.cos(a), -4.0]])
    assert np.allclose(align.similarity(src, src @ M[:, :2].T + M[:, 2]), M)


def test_alignment_maps_of_a_pure_translation():
    lm = face.TEMPLATE.astype(np.float64) * 3 + 100
    lms = np.stack([lm, lm + [4.0, -2.5], lm + [1.0, 1.0]])
    for mode in align.ALIGN_MODES:
        maps = align.alignment_maps(lms, mode)
        assert maps.shape == (3, 112, 96, 2) and maps.dtype == np.float32
        # the template maps onto the first frame's landmarks
        assert np.allclose(maps[0][48, 47], np.array([47, 48]) * 3 + 100, atol=0.05)
        moved = np.abs(maps[1] - maps[0] - [4.0, -2.5]).max()
        assert (moved < 1e-3) if align.ALIGN_MODES[mode][1] else np.allclose(maps[1], maps[0])


# --------------------------------------------------------------------------------------------
# interpolation and warping


def test_interpolation_known_answers():
    ramp = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.full((1, 2, 2, 3), 40, np.uint8)
    assert np.array_equal(preprocess.interpolate(ramp, 5), ramp)
    nine = preprocess.interpolate(ramp, 9)
    assert nine.shape == (9, 2, 2, 3) and nine.dtype == np.uint8
    assert list(nine[:, 0, 0, 0]) == [0, 20, 40, 60, 80, 100, 120, 140, 160]
    # a missing frame (number 12) is bridged at its true time
    gap = preprocess.interpolate(np.array([0.0, 10.0, 40.0]), 5, times=[10, 11, 13])
    assert np.allclose(gap, [0.0, 7.5, 17.5, 28.75, 40.0])  # at t = 10, 10.75, 11.5, 12.25, 13
    assert preprocess.interpolate(ramp, 65).shape[0] == 65 and preprocess.interpolate(ramp, 129).shape[0] == 129
    with pytest.raises(ValueError, match="at least 2 frames"):
        preprocess.interpolate(ramp[:1], 65)
    with pytest.raises(ValueError, match="increasing"):
        preprocess.interpolate(ramp[:3], 5, times=[1, 3, 2])


def test_warp_samples_the_map_and_prefilters_downscaling():
    img = np.zeros((300, 300), np.uint8)
    img[:, ::2] = 255  # 1-px stripes: aliasing would turn them into black/white
    yy, xx = np.mgrid[0:50, 0:40].astype(np.float32)
    down = align.warp(img, np.stack([xx * 3 + 20, yy * 3 + 20], -1))
    assert down.shape == (50, 40) and abs(float(down.mean()) - 127.5) < 3 and down.std() < 10
    ident = align.warp(np.arange(100, dtype=np.uint8).reshape(10, 10), np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0)), -1))
    assert np.array_equal(ident, np.arange(100).reshape(10, 10))


# --------------------------------------------------------------------------------------------
# real clips: accuracy against the synthetic ground truth


@pytest.fixture(scope="module")
def c2(casme2_root):
    return datasets.load(casme2_root)


def test_default_alignment_removes_head_motion_and_keeps_the_expression(c2):
    rows = []
    for _, row in c2.iloc[:3].iterrows():
        motion = synth.Motion.load(row["clip_dir"])
        for mode in ("lwm-similarity", "lwm-first", "lwm-per-frame"):
            clip = preprocess.preprocess_clip(row["frames"], Config(align=mode), return_maps=True)
            assert clip.frames.shape == (row["n_frames"], 112, 96, 3) and clip.frames.dtype == np.uint8
            rows.append({"align": mode, **groundtruth.alignment_error(clip.maps, clip.times, motion, row["apex"])})
    acc = pd.DataFrame(rows).groupby("align").median()
    d = acc.loc["lwm-similarity"]
    assert d["residual_head_rms"] < 0.45 and d["residual_head_rms"] < 0.7 * d["head_rms"]
    assert 0.7 < d["expression_kept"] < 1.3 and d["noise_rms"] < 0.1
    assert acc.loc["lwm-first", "residual_head_rms"] > d["residual_head_rms"]
    assert d["jitter_rms"] < acc.loc["lwm-first", "jitter_rms"]  # smoothed registration adds no jitter
    raw = groundtruth.alignment_error(align.alignment_maps(clip.landmarks, "lwm-similarity"), clip.times, motion, row["apex"])
    assert raw["jitter_rms"] > 2 * d["jitter_rms"]  # unsmoothed per-frame landmarks do
    assert acc.loc["lwm-per-frame", "noise_rms"] > 3 * d["noise_rms"]  # per-frame landmark jitter warped in


def test_clip_resample_and_determinism(c2):
    row = c2.iloc[0]
    a = preprocess.preprocess_clip(row["frames"])
    b = preprocess.preprocess_clip(row["frames"])
    assert np.array_equal(a.frames, b.frames)
    assert list(a.times) == [datasets.frame_number(f) for f in row["frames"]]
    assert a.resample(65).shape == (65, 112, 96, 3) and a.resample(129).shape == (129, 112, 96, 3)
    # the crop holds the face: the template's landmarks land on the clip's landmarks
    assert a.landmarks.shape == (row["n_frames"], 68, 2)


# --------------------------------------------------------------------------------------------
# bad input


def _frames(row, tmp_path: Path) -> list[Path]:
    out = []
    for f in row["frames"]:
        dst = tmp_path / Path(f).name
        shutil.copy(f, dst)
        out.append(dst)
    return out


def test_no_face_is_a_clear_error(c2, tmp_path):
    paths = _frames(c2.iloc[0], tmp_path)
    blank = np.full((480, 640, 3), 128, np.uint8)
    cv2.imwrite(str(paths[0]), blank)
    with pytest.raises(FaceNotFoundError, match=rf"{paths[0].name}: no face found"):
        preprocess.preprocess_clip(paths)


def test_several_faces_takes_the_largest_or_refuses(c2):
    frame = cv2.imread(str(c2.iloc[0]["frames"][0]))
    small = cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA)
    smaller = cv2.resize(frame, (256, 192), interpolation=cv2.INTER_AREA)
    canvas = np.full_like(frame, 90)
    canvas[120:360, :320] = small
    canvas[140:332, 360:616] = smaller
    grey = cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY)
    assert len([f for f in face.detect_faces(grey, 0) if f[1] >= 0.3]) == 2
    box = face.find_face(grey)
    assert box[2] <= 330  # the larger (left) face
    with pytest.raises(MultipleFacesError, match="2 faces found"):
        face.find_face(grey, several="error", source="two.jpg")


def test_frame_size_mismatch_short_clip_and_corrupt_middle_frame(c2, tmp_path):
    paths = _frames(c2.iloc[0], tmp_path)
    odd = paths[3]
    cv2.imwrite(str(odd), cv2.resize(cv2.imread(str(odd)), (320, 240)))
    with pytest.raises(FrameError, match=rf"{odd.name}: frame size 320x240 differs .*640x480"):
        preprocess.preprocess_clip(paths)
    with pytest.raises(FrameError, match="at least 2 frames"):
        preprocess.preprocess_clip(paths[:1])
    (tmp_path / "b").mkdir()
    paths = _frames(c2.iloc[1], tmp_path / "b")
    mid = paths[len(paths) // 2]
    mid.write_bytes(mid.read_bytes()[: len(mid.read_bytes()) // 2])
    with pytest.raises(FrameError, match=rf"{mid.name}: corrupt frame: truncated JPEG"):
        preprocess.preprocess_clip(paths)
    clip = preprocess.preprocess_clip(paths, Config(bad_frames="drop"))
    assert len(clip.frames) == len(paths) - 1 and datasets.frame_number(mid) not in clip.times
    assert any(mid.name in n for n in clip.notes)


def test_collapsed_landmarks_are_an_alignment_error(c2, monkeypatch):
    monkeypatch.setattr(preprocess, "landmarks", lambda img, box, model=None, **kw: np.full((68, 2), 50.0, np.float32))
    with pytest.raises(AlignmentError, match="landmarks collapsed"):
        preprocess.preprocess_clip(c2.iloc[0]["frames"])


# --------------------------------------------------------------------------------------------
# batch runner


def test_batch_records_skips_caches_and_resumes(casme2_root, tmp_path):
    root = Path(shutil.copytree(casme2_root, tmp_path / "data"))
    df = datasets.load(root, verify="none")
    bad = df.iloc[2]
    cv2.imwrite(str(bad["frames"][0]), np.full((480, 640, 3), 128, np.uint8))  # no face
    corrupt = Path(df.iloc[5]["frames"][4])
    corrupt.write_bytes(corrupt.read_bytes()[:300])
    run = tmp_path / "run"
    m = preprocess.run(df, run, jobs=2, progress=False)
    assert len(m) == len(df) and (run / "manifest.csv").is_file()
    assert list(pd.read_csv(run / "manifest.csv")["clip"]) == list(df["clip"])
    skipped = m[m["status"] == "skipped"].set_index("clip")["reason"]
    assert set(skipped.index) == {bad["clip"], df.iloc[5]["clip"]}
    assert "no face found" in skipped[bad["clip"]] and f"{corrupt.name}: corrupt frame" in skipped[df.iloc[5]["clip"]]
    done = m[m["status"] == "processed"]
    assert len(done) == len(df) - 2 and not done["cached"].any()
    x = preprocess.load_clip(run, done.iloc[0], 129)
    assert x.shape == (129, 112, 96, 3) and x.dtype == np.uint8
    first = {p: np.load(run / p)["frames"] for p in done["cache"]}

    # a re-run computes nothing; an interrupted run (a cache file lost) recomputes that clip only
    (run / done.iloc[1]["cache"]).unlink()
    m2 = preprocess.run(df, run, jobs=1, progress=False)
    again = m2[m2["status"] == "processed"]
    assert list(again["clip"][~again["cached"]]) == [done.iloc[1]["clip"]]
    assert list(again["cache"]) == list(done["cache"])
    assert all(np.array_equal(first[p], np.load(run / p)["frames"]) for p in again["cache"])
    # a changed input frame changes the key
    f = Path(df.iloc[0]["frames"][1])
    img = cv2.imread(str(f))
    img[0, 0] = 255 - img[0, 0]
    cv2.imwrite(str(f), img)
    m3 = preprocess.run(df, run, jobs=1, progress=False)
    assert list(m3["clip"][(m3["status"] == "processed") & ~m3["cached"]]) == [df.iloc[0]["clip"]]


def test_cli_preprocess(casme1_root, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "mexpr", "preprocess", "--data", str(casme1_root), "--run", str(run), "--quiet", "--jobs", "2"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    n = len(datasets.load(casme1_root))
    assert f"{n} clip(s) processed (0 from cache), 0 skipped" in out
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert f"{n} clip(s) processed ({n} from cache)" in out
    assert preprocess.load_manifest(run)["status"].eq("processed").all()
    # the run records its dataset, as notebook 00 does: the later stages read the clips' frames from it
    from mexpr.run import Run

    r = Run(run)
    assert r.roots == [str(casme1_root)] and r.synthetic and len(r.dataset()) == n
