"""Spotting (mexpr.spot): the MEGC metric, MDMD, the learned spotter and the leave-one-subject-out protocol."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mexpr import spot

FPS = 30.0


def test_iou_counts_inclusive_frames():
    assert spot.iou((10, 19), (10, 19)) == 1.0
    assert spot.iou((0, 9), (10, 19)) == 0.0  # touching, no shared frame (the MEGC 2020 code says 1/21)
    assert spot.iou((0, 9), (5, 14)) == pytest.approx(5 / 15)
    assert spot.iou((0, 3), (0, 0)) == pytest.approx(1 / 4)


def test_match_is_one_to_one():
    truth = [(100, 110)]
    spotted = [(100, 110), (101, 110), (300, 310)]
    m = spot.match(spotted, truth)
    assert m == [(0, 0, 1.0)]  # the duplicate is a false positive


def _table(rows):
    return pd.DataFrame(rows, columns=["video", "start_frame", "end_frame", "type"])


def test_score_counts_per_type_and_overall_over_the_corpus():
    truth = _table([("a", 10, 20, "micro"), ("a", 100, 160, "macro"), ("b", 50, 60, "micro"), ("b", 200, 260, "macro")])
    spotted = _table(
        [
            ("a", 11, 20, "micro"),  # TP (IoU 10/11)
            ("a", 100, 160, "micro"),  # right place, wrong type: FP for micro, the macro is missed
            ("b", 50, 58, "micro"),  # TP (9/11)
            ("b", 205, 255, "macro"),  # TP (51/61)
            ("c", 5, 15, "micro"),  # a video with no expression: FP
        ]
    )
    sc = spot.score(spotted, truth).set_index("type")
    assert sc.loc["micro", ["n_truth", "n_spotted", "tp", "fp", "fn"]].tolist() == [2, 4, 2, 2, 0]
    assert sc.loc["macro", ["n_truth", "n_spotted", "tp", "fp", "fn"]].tolist() == [2, 1, 1, 0, 1]
    assert sc.loc["overall", ["n_truth", "n_spotted", "tp"]].tolist() == [4, 5, 3]
    p, r = 3 / 5, 3 / 4
    assert sc.loc["overall", "f1"] == pytest.approx(2 * p * r / (p + r))
    assert sc.loc["micro", "f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_runs_above_merges_short_breaks_and_treats_nan_as_below():
    s = np.array([0, 1, 1, 0, 1, np.nan, 0, 0, 1, 1])
    assert spot.runs_above(s, 0.5) == [(1, 2), (4, 4), (8, 9)]
    assert spot.runs_above(s, 0.5, bridge=1) == [(1, 4), (8, 9)]


def test_mdmd_blocks_see_motion_that_returns():
    """A block moving HF -> CF and back by TF scores its magnitude; one still moving at TF scores 0."""
    hc = np.zeros((112, 96, 2), np.float32)
    ht = np.zeros_like(hc)
    hc[:18, :16] = (0.0, -1.0)  # block 0: up 1 px at CF, back at TF (an expression)
    hc[18:36, :16] = (2.0, 0.0)  # block 6: right 2 px at CF and still at TF (a head shift)
    ht[18:36, :16] = (2.0, 0.0)
    b = spot.mdmd_blocks(hc, ht)
    assert b.shape == (36,)
    assert b[0] == pytest.approx(1.0)
    assert b[6] == pytest.approx(0.0)
    assert spot.mdmd_value(b) == pytest.approx(1.0 / 12)  # top third: 12 blocks, one at 1


def test_block_magnitude_ignores_a_global_shift():
    fl = np.zeros((112, 96, 2), np.float32) + (1.5, -0.5)
    fl[:18, :16, 1] -= 1.0
    m = spot.block_magnitude(fl)
    assert m[0] > 0.5 and np.median(m) < 0.1


# --------------------------------------------------------------------------------------------
# synthetic signals: expressions raise some blocks' flow, blinks the eyes', head turns the pose


def _signals(name: str, rng: np.random.Generator, n: int = 600, events=()):
    """A Signals with ``events`` ``(type, start, end)``: micro/macro raise the brow/mouth blocks' local
    flow (smooth bumps), "blink" the eye blocks briefly, "turn" the head pose."""
    ks = spot.ks_for(FPS)
    local = {t: rng.gamma(2.0, 0.02, (n, 36)).astype(np.float32) for t in spot.TYPES}
    pose = np.zeros((n, 4), np.float32)
    pose[:, 3] = 1.0
    t = np.arange(n)
    for typ, s, e in events:
        bump = np.clip(1 - np.abs((t - (s + e) / 2) / ((e - s) / 2 + 1)), 0, 1) ** 0.5
        if typ in spot.TYPES:
            blocks = [1, 2, 3, 4, 31, 32, 33, 34] if typ == "micro" else list(range(24, 36))
            amp = 0.4 if typ == "micro" else 1.5
            for kt in spot.TYPES:
                local[kt][:, blocks] += (amp * bump)[:, None]
        elif typ == "blink":
            for kt in spot.TYPES:
                local[kt][:, 12:18] += (3.0 * bump)[:, None]
        elif typ == "turn":
            pose[:, 0] += 8 * bump
    blocks = {k: v * rng.uniform(0.6, 1.0, v.shape).astype(np.float32) for k, v in local.items()}
    mdmd = {k: np.array([spot.mdmd_value(b) for b in v], np.float32) for k, v in blocks.items()}
    # the blocks' mean vectors: the noise mostly cancels, the expression stays (and is gone again by the tail frame)
    vector = {k: (v - 0.7 * (v - local[k].min())).astype(np.float32) for k, v in local.items()}
    tail = {k: rng.gamma(2.0, 0.01, (n, 36)).astype(np.float32) for k in spot.TYPES}
    for k, v in ks.items():
        for arr in (local[k], blocks[k], vector[k], tail[k]):
            arr[: 2 * v] = np.nan
            arr[n - v :] = np.nan
        mdmd[k][: 2 * v] = np.nan
        mdmd[k][n - v :] = np.nan
    return spot.Signals(name, FPS, n, 0, ks, np.ones(n, bool), pose, mdmd, blocks, local, vector, tail)


def _corpus(n_subjects: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    sigs, subjects, rows = [], [], []
    for s in range(n_subjects):
        for v in range(2):
            name = f"s{s}_v{v}"
            events, t = [], 90
            while t < 520:
                kind = rng.choice(["micro", "macro", "blink", "turn"], p=[0.35, 0.3, 0.2, 0.15])
                dur = {"micro": rng.integers(8, 14), "macro": rng.integers(25, 60), "blink": 5, "turn": 30}[kind]
                events.append((kind, t, t + dur - 1))
                if kind in spot.TYPES:
                    rows.append({"video": name, "start_frame": t, "end_frame": t + dur - 1, "type": kind})
                t += dur + rng.integers(25, 60)
            sigs.append(_signals(name, rng, events=events))
            subjects.append(f"sub{s}")
    return sigs, subjects, pd.DataFrame(rows)


def test_learned_spotter_beats_mdmd_on_signals_with_distractors():
    sigs, subjects, truth = _corpus()
    res = spot.loso(sigs, subjects, truth, seeds=(0,), epochs=10, steps=8)
    sc = res["scores"].set_index(["method", "type"])
    assert sc.loc[("learned", "overall"), "f1"] > 0.6
    assert sc.loc[("learned", "overall"), "f1"] > sc.loc[("mdmd", "overall"), "f1"]
    assert set(res["intervals"].columns) >= set(spot.INTERVAL_COLUMNS)


def test_loso_never_lets_the_test_subject_reach_training_or_thresholds():
    """Each fold's fit lists the other subjects only, and changing the held-out subject's ground
    truth changes nothing that is spotted in its videos."""
    sigs, subjects, truth = _corpus(n_subjects=3, seed=1)
    test = "sub0"
    kw = {"seeds": (0,), "epochs": 3, "steps": 4, "held_out": [test]}
    res = spot.loso(sigs, subjects, truth, **kw)
    assert {f["test_subject"] for f in res["fits"]} == {test} and {f["method"] for f in res["fits"]} == set(spot.METHODS)
    for f in res["fits"]:
        assert f["test_subject"] not in f.get("fit_subjects", [])
        assert f["test_subject"] not in f.get("val_subjects", [])
    assert set(res["intervals"]["subject_id"]) <= {test}
    videos = {s.video for s, sub in zip(sigs, subjects) if sub == test}
    moved = truth.copy()
    sel = moved["video"].isin(videos)
    moved.loc[sel, ["start_frame", "end_frame"]] += 7
    res2 = spot.loso(sigs, subjects, moved, **kw)

    def held_out(r):
        i = r["intervals"]
        return i[i["subject_id"] == test].reset_index(drop=True)

    pd.testing.assert_frame_equal(held_out(res), held_out(res2))


def test_loso_refuses_one_subject_and_unknown_methods():
    sigs, subjects, truth = _corpus(n_subjects=2)
    with pytest.raises(spot.SpotError, match="at least 2 subjects"):
        spot.loso(sigs[:2], subjects[:2], truth)
    with pytest.raises(spot.SpotError, match="unknown spotting method"):
        spot.loso(sigs, subjects, truth, methods=("softnet",))


def test_signals_save_and_load_round_trip(tmp_path):
    sig = _signals("v", np.random.default_rng(0), n=120, events=[("micro", 40, 50)])
    sig.save(tmp_path / "v.npz")
    back = spot.Signals.load(tmp_path / "v.npz")
    assert back.video == "v" and back.ks == sig.ks
    np.testing.assert_array_equal(back.features(), sig.features())


def test_block_vector_keeps_a_blocks_pull_and_cancels_noise():
    """A block whose pixels all move 0.3 px one way keeps 0.3 px; noise of the same size in every
    direction almost vanishes from the mean vector, while the mean magnitude counts it in full."""
    rng = np.random.default_rng(0)
    field = rng.normal(0, 0.3, (112, 96, 2)).astype(np.float32)
    field[:18, :16] = [0.3, 0.0]  # block 0 (6 x 6 grid of 18 x 16 px)
    v = spot.block_vector(field)
    assert v.shape == (36,) and v[0] == pytest.approx(0.3, abs=1e-6)
    assert v[1:].max() < 0.06
    assert spot.block_magnitude(field, local=True)[1:].min() > 0.3


def test_peak_intervals_keep_the_strongest_peak_and_the_training_geometry():
    d = np.full(60, -5.0)
    d[10], d[12], d[40], d[55] = 3.0, 2.0, 5.0, 0.5  # 12 is within 0.15 s of the stronger 10; 55 is under the threshold
    got = spot._peak_intervals(d, 1.0, FPS, before_s=0.1, after_s=0.2)
    assert got == [(7, 16, 10), (37, 46, 40)]
    assert spot._peak_intervals(np.full(60, np.nan), 1.0, FPS, 0.1, 0.2) == []


def test_micro_detector_finds_a_held_out_subjects_micro_expressions_and_round_trips(tmp_path):
    sigs, subjects, truth = _corpus(n_subjects=4, seed=2)
    train = {}
    for s, sub in zip(sigs, subjects):
        if sub != "sub3":
            train.setdefault(sub, []).append(s)
    det = spot.fit_micro(train, truth[truth["video"].isin({s.video for v in train.values() for s in v})])
    assert det.C in spot.MICRO_CS and det.threshold in spot.MICRO_THRESHOLDS
    assert det.info["fit_subjects"] == ["sub0", "sub1", "sub2"]
    held = [s for s, sub in zip(sigs, subjects) if sub == "sub3"]
    found = {s.video: [(a, b) for a, b, _ in det.intervals(s)] for s in held}
    want = spot._intervals_by_video(truth[truth["video"].isin(found)], "micro")
    tp, n_spotted, n_truth = spot._tally(found, want)
    assert n_truth > 0 and spot.prf(tp, n_spotted, n_truth)[2] > 0.6
    back = spot.MicroDetector.from_json(json.loads(json.dumps(det.to_json())))
    for s in held:
        np.testing.assert_allclose(back.decision(s), det.decision(s), rtol=1e-5, atol=1e-5)


def test_estimate_apex_finds_the_peak_of_a_synthetic_movement():
    """A bright bar moves down then back; the apex is the frame where it is furthest from onset."""
    import cv2

    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur((rng.random((112, 96)) * 255).astype(np.float32), (0, 0), 2)
    shifts = np.concatenate([np.linspace(0, 1.5, 12), np.linspace(1.5, 0, 8)[1:]])
    frames = []
    for s in shifts:
        m = np.float32([[1, 0, 0], [0, 1, s]])
        moved = cv2.warpAffine(base, m, (96, 112), borderMode=cv2.BORDER_REFLECT)
        f = base.copy()
        f[30:60, 20:70] = moved[30:60, 20:70]
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    apex, sig = spot.estimate_apex(np.stack(frames))
    assert abs(apex - int(np.argmax(shifts))) <= 1
    assert sig[0] == 0 and sig.max() > 0.3


# --------------------------------------------------------------------------------------------
# mexpr spot on a user's video


def test_mexpr_spot_writes_intervals_for_a_users_video_and_skips_what_is_not_one(face_video, tmp_path, capsys):
    from mexpr import cli

    bad = tmp_path / "notes.mov"
    bad.write_text("not a video")
    out = tmp_path / "spots"
    rc = cli.main(["spot", str(face_video), str(bad), "--method", "mdmd", "--out", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0
    table = pd.read_csv(out / "intervals.csv")
    assert list(table.columns) == spot.INTERVAL_COLUMNS
    assert (table["video"] == "me").all() and (table["end_frame"] < 120).all()
    assert (table["start_s"] == table["start_frame"] / FPS).all()
    assert "me.mp4: 120 frames at 30 fps" in text and f"skipped {bad}" in text and "not a video" in text
    records = __import__("json").loads((out / "videos.json").read_text())["videos"]
    assert [r["status"] for r in records] == ["spotted", "skipped"]
    # an existing timeline is not overwritten without --force
    assert cli.main(["spot", str(face_video), "--method", "mdmd", "--out", str(out), "--quiet"]) == 2
    assert "exists; pass --force" in capsys.readouterr().err


def test_mexpr_spot_learned_without_a_trained_spotter_says_how_to_train_one(face_video, tmp_path, capsys):
    from mexpr import cli

    rc = cli.main(["spot", str(face_video), "--method", "learned", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "no trained spotter" in err and "mexpr spot CORPUS_ROOT --run RUN" in err


def test_mexpr_spot_on_a_corpus_without_faces_says_what_it_skipped(tmp_path, capsys):
    """A long-video root whose frames show no face (a layout-only synthetic set): every video is
    recorded as skipped with its reason, and the run ends with one error naming the root."""
    from mexpr import cli
    from mexpr.synth import longvideo as synth_long

    root = synth_long.generate(tmp_path / "lv", "casme2lv", scale=0.05, seconds=3, jobs=1, progress=False, render=False)
    rc = cli.main(["spot", str(root), "--method", "mdmd", "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{root}: no video could be read" in err and "no face found in any of its" in err
