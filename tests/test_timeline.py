"""mexpr analyze: a video in, a timeline of recognised micro-expressions out (spot, then recognise).

The recognition side uses the tiny run of tests/conftest.py with its fold 0 trained for one epoch
(the same experiment as tests/test_evaluate.py's: whichever test comes first trains it); the videos
are the synthetic face of conftest.py and scikit-image's astronaut photograph (a real face mexpr
did not make), moved, covered by a hand and taken out of the frame."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from mexpr import evaluate, spot, timeline, train
from mexpr.datasets import CLASSES

QUICK = train.config_for("quick", per_class=3, epochs=1, tag="eval")
RUN_KW = {"profile": "quick", "per_class": 3, "epochs": 1, "tag": "eval"}


@pytest.fixture(scope="module")
def trained(flowrun):
    evaluate.evaluate(flowrun, QUICK, folds=[0], jobs=1, verbose=0, progress=False)  # trains fold 0 where no test did yet
    return flowrun


@pytest.fixture(scope="module")
def recogniser(trained):
    return timeline.load_recogniser(trained, input="paper", **RUN_KW)


def _video(path, frames, fps=30):
    from mexpr import video

    return video.write_video(path, frames, fps)


def test_recognise_intervals_classifies_micro_rows_and_says_why_it_skips_the_others(recogniser, face_video):
    intervals = pd.DataFrame(
        [
            {"video": "me", "start_frame": 30, "apex_frame": 40, "end_frame": 50, "start_s": 1.0, "apex_s": 40 / 30, "end_s": 50 / 30, "type": "micro", "score": 0.9},
            {"video": "me", "start_frame": 60, "apex_frame": 85, "end_frame": 110, "start_s": 2.0, "apex_s": 85 / 30, "end_s": 110 / 30, "type": "macro", "score": 0.8},
            {"video": "me", "start_frame": 118, "apex_frame": 125, "end_frame": 130, "start_s": 118 / 30, "apex_s": 125 / 30, "end_s": 130 / 30, "type": "micro", "score": 0.5},
        ]
    )  # fmt: skip
    thumbs = {}
    out = timeline.recognise_intervals(recogniser, face_video, intervals, thumbnails=thumbs)
    assert list(out.columns) == timeline.columns(recogniser.class_names)
    ok, macro, past = out.iloc[0], out.iloc[1], out.iloc[2]
    assert ok["status"] == "classified" and ok["label"] in CLASSES and ok["from"] in ("DTSCNN64", "DTSCNN128")
    assert sum(ok[f"p_{c}"] for c in recogniser.class_names) == pytest.approx(1, abs=2e-3)
    assert ok[f"p_{ok['label']}"] == max(ok[f"p_{c}"] for c in recogniser.class_names)  # the label is the fused argmax
    assert macro["status"] == "not classified" and "macro" in macro["reason"]
    # frames 118-130 of a 120-frame video: what exists is read (118, 119) and classified, nothing is lost
    assert past["status"] in ("classified", "error")
    assert list(thumbs) == [i for i in range(3) if out.iloc[i]["status"] == "classified"] and thumbs[0].shape == (112, 96, 3)
    # the same frames through mexpr predict's path give the same answer
    frames, times = next((f, t) for _, f, t in timeline.interval_frames(face_video, [(30, 50)]))
    again = recogniser.classify(frames, times=times)
    assert again["prediction"] == ok["label"]


def test_interval_frames_holds_only_open_windows_and_yields_in_order_of_their_ends(face_video):
    got = [(k, len(f), round(t[0] * 30)) for k, f, t in timeline.interval_frames(face_video, [(10, 20), (5, 8), (15, 16)])]
    assert got == [(1, 4, 5), (2, 2, 15), (0, 11, 10)]
    assert list(timeline.interval_frames(face_video, [])) == []


def test_analyze_writes_a_timeline_figure_and_annotated_video(trained, recogniser, face_video, tmp_path):
    import cv2

    out = tmp_path / "an"
    tl = timeline.analyze(face_video, trained, out=out, method="mdmd", video_out=True, progress=False, recogniser=recogniser)
    table = pd.read_csv(out / "timeline.csv")
    assert list(table.columns) == timeline.columns(recogniser.class_names)
    assert len(table) == len(tl.table) and (table["video"] == "me").all()
    sp = spot.mdmd_spot(spot.signals(face_video), 0.01)  # the same intervals spotting finds on its own
    assert table[["start_frame", "end_frame", "type"]].values.tolist() == sp[["start_frame", "end_frame", "type"]].values.tolist()
    assert set(table["status"]) <= set(timeline.STATUSES)
    meta = json.loads((out / "timeline.json").read_text())
    assert meta["settings"]["experiment"] == train.experiment_dir(trained, QUICK).name and meta["settings"]["spotter"]["method"] == "mdmd"
    assert meta["videos"][0]["frames"] == 120 and meta["videos"][0]["fps"] == pytest.approx(30)
    assert (out / "timeline_me.png").stat().st_size > 10_000
    cap = cv2.VideoCapture(str(out / "me_annotated.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 120
    cap.release()
    assert "me.mp4: 4.0 s, 120 frames at 30 fps" in tl.summary()
    # an output folder that holds a timeline is refused without force
    with pytest.raises(timeline.AnalyzeError, match="timeline.csv exists; pass --force"):
        timeline.analyze(face_video, trained, out=out, progress=False, recogniser=recogniser)


def test_bad_runs_say_what_they_lack_and_which_command_trains_it(trained, tmp_path):
    with pytest.raises(timeline.AnalyzeError, match=r"no trained streams.*python -m mexpr train --run .*--input mexpr"):
        timeline.load_recogniser(tmp_path / "empty", profile="quick")
    # streams trained under another protocol's classes: the run lists what it has
    with pytest.raises(timeline.AnalyzeError, match=r"subject3-s0.*the run has (.*, )?paper-s0-[^,]*-eval fold 0.*--protocol"):
        timeline.load_recogniser(trained, protocol="subject3", **RUN_KW)


def test_cli_analyze_short_and_faceless_videos(trained, face_bgr, tmp_path, capsys):
    from mexpr import cli

    short = _video(tmp_path / "short.mp4", [face_bgr] * 30)  # 1 s: shorter than the spotter's windows
    blank = _video(tmp_path / "blank.mp4", [np.full((360, 640, 3), 90, np.uint8)] * 30)
    notes = tmp_path / "notes.mov"
    notes.write_text("not a video")
    empty = tmp_path / "empty.mp4"
    empty.touch()
    args = [
        "analyze",
        str(short),
        str(blank),
        str(notes),
        str(empty),
        "--run",
        str(trained),
        "--out",
        str(tmp_path / "o"),
        "--input",
        "paper",
        "--quiet",
    ]
    args += ["--profile", "quick", "--method", "mdmd"]
    assert cli.main(args) == 2  # the experiment's tag left out: the error says what the run has
    # other tests may have trained more experiments into the shared run: paper-s0's is among them
    assert re.search(r"the run has (.*, )?paper-s0-", capsys.readouterr().err)
    rc = cli.main([*args, "--tag", "eval"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "nothing spotted (the video is shorter than the spotter's window)" in text
    assert f"{blank}: skipped:" in text and "no face found" in text
    meta = json.loads((tmp_path / "o" / "timeline.json").read_text())
    assert [v["status"] for v in meta["videos"]] == ["analysed", "skipped", "skipped", "skipped"]
    assert f"{notes}: skipped:" in text and "not a video" in text and f"{empty}: skipped:" in text and "empty file" in text
    assert pd.read_csv(tmp_path / "o" / "timeline.csv").empty


def _astronaut_video(path, seconds: float = 6.0, fps: int = 30):
    """scikit-image's astronaut photograph (a real face) in a 640 x 360 frame: the head turns and
    sways, a hand covers the mouth from 2.0 to 2.7 s, the face leaves the frame from 3.5 to 4.5 s."""
    import cv2
    from skimage import data

    face = data.astronaut()[20:300, 100:340, ::-1].copy()  # BGR, the head and shoulders
    frames = []
    for i in range(int(seconds * fps)):
        t = i / fps
        canvas = np.full((360, 640, 3), (70, 80, 90), np.uint8)
        angle = 6 * np.sin(2 * np.pi * t / 3)
        m = cv2.getRotationMatrix2D((120, 140), angle, 1.0)
        img = cv2.warpAffine(face, m, (240, 280), borderMode=cv2.BORDER_REPLICATE)
        x = 200 + int(20 * np.sin(2 * np.pi * t / 4)) + (700 if 3.5 <= t < 4.5 else 0)
        if x + 240 <= 640:
            canvas[40:320, x : x + 240] = img
        if 2.0 <= t < 2.7:  # a hand over the mouth
            cv2.ellipse(canvas, (x + 125, 215), (70, 45), 0, 0, 360, (120, 150, 200), -1)
        frames.append(canvas)
    return _video(path, frames, fps)


def test_a_real_face_that_turns_is_covered_and_leaves_gives_a_timeline_with_its_gaps(recogniser, trained, tmp_path):
    src = _astronaut_video(tmp_path / "astronaut.mp4")
    tl = timeline.analyze(src, trained, method="mdmd", progress=False, recogniser=recogniser)
    rec = tl.videos[0]
    assert rec["status"] == "analysed" and rec["frames"] == 180
    assert rec["gaps"], "the face that left the frame is a gap"
    left = [g for g in rec["gaps"] if g["start_s"] <= 3.6 and g["end_s"] >= 4.4]
    assert left, rec["gaps"]
    assert set(tl.table["status"]) <= set(timeline.STATUSES)


def test_score_counts_spotting_and_recognition_on_true_positives():
    classes = ["Negative", "Others", "Positive", "Surprise"]
    truth = pd.DataFrame(
        {"video": ["a", "a", "b"], "start_frame": [10, 50, 10], "end_frame": [20, 60, 20], "label": ["Negative", "Positive", "Others"]}
    )
    spotted = pd.DataFrame(
        {
            "video": ["a", "a", "a", "b"],
            "start_frame": [11, 52, 90, 30],
            "end_frame": [20, 60, 99, 40],
            "type": ["micro"] * 4,
            "label": ["Negative", "Surprise", "Others", "Others"],
            "status": ["classified"] * 4,
        }
    )
    s = timeline.score(spotted, truth, classes)
    assert (s["tp"], s["n_spotted"], s["n_truth"]) == (2, 4, 3)
    assert s["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    # true positives: Negative -> Negative (right), Positive -> Surprise (wrong); UAR over the true classes present
    assert s["accuracy"] == 0.5 and s["uar"] == pytest.approx(0.5)
    assert s["strs"] == pytest.approx(s["f1"] * s["uf1"])
    assert timeline.truth_label("negative") == "Negative" and timeline.truth_label("repression") == "Others"
    assert timeline.truth_label("others", "megc3") is None


def test_subsample_takes_what_a_slower_camera_would_have_filmed():
    t = np.arange(41) / 200.0  # 0.2 s at 200 fps
    idx = timeline.subsample(t, 30)
    assert len(idx) == 7 and idx[0] == 0 and np.allclose(t[idx], np.arange(7) / 30, atol=1 / 400)
    assert list(timeline.subsample(t, 200)) == list(range(41))


def test_timeline_explorer_scrubs_the_video_and_jumps_to_intervals(recogniser, face_video):
    from mexpr import explorer

    rows = pd.DataFrame(
        [
            {"video": "me", "start_frame": 30, "apex_frame": 40, "end_frame": 50, "start_s": 1.0, "apex_s": 40 / 30, "end_s": 50 / 30, "type": "micro", "score": 0.9},
            {"video": "me", "start_frame": 70, "apex_frame": 85, "end_frame": 100, "start_s": 70 / 30, "apex_s": 85 / 30, "end_s": 100 / 30, "type": "micro", "score": 0.9},
        ]
    )  # fmt: skip
    table = timeline.recognise_intervals(recogniser, face_video, rows)
    rec = {"source": str(face_video), "video": "me", "status": "analysed", "frames": 120, "fps": 30.0, "first_number": 0, "gaps": []}
    tl = timeline.Timeline(table, [rec], {})
    truth = pd.DataFrame({"start_frame": [32], "end_frame": [50], "label": ["Surprise"]})
    ex = explorer.TimelineExplorer(tl, "me", recogniser, truth=truth, alpha=4.0)
    keys = list(ex.clip.options)
    assert keys == [explorer.interval_key(r) for r in table.itertuples()]
    assert ex.scrub.value == 40 and ex.view.label == "Surprise"  # the first interval, at its apex; its truth by IoU
    assert ex.video_picture().shape == (480, 640, 3)
    ex.clip.value = keys[1]  # choosing an interval jumps the video to its apex
    assert ex.scrub.value == 85 and ex.view.label == "none (a false positive)"
    ex.scrub.value = 35  # scrubbing into an interval chooses it
    assert ex.clip.value == keys[0]
    assert set(ex.panels()) == set(explorer.PANELS) and ex.panels()["Munsell flow"].shape == (112, 96, 3)
    assert "Eq. 11" in ex.caption()
    with pytest.raises(ValueError, match="no classified micro-expression"):
        explorer.TimelineExplorer(timeline.Timeline(table.assign(status="error"), [rec], {}), "me", recogniser)
