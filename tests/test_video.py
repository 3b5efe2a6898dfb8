"""Video input (mexpr.video) and face tracking over long videos (mexpr.track): streamed reading,
variable frame rates, and the bad videos of the spotting issue (no face, a face that leaves, a hand
over the face, truncated, not a video, no frames, very large frames)."""

from __future__ import annotations

import fractions
import weakref

import cv2
import numpy as np
import pytest

from mexpr import spot, track, video

FPS = 30.0


@pytest.fixture(scope="module")
def face(face_bgr):
    """A synthetic face (640 x 480 BGR uint8) and a background without one."""
    img = face_bgr
    rng = np.random.default_rng(0)
    bg = cv2.GaussianBlur(rng.integers(60, 200, img.shape, dtype=np.uint8), (0, 0), 6)
    return img, bg


def _shift(img: np.ndarray, dx: float, dy: float = 0.0) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)


def _sway(img: np.ndarray, n: int) -> list[np.ndarray]:
    """``n`` frames of the face drifting slowly (a px or so), as a seated person's head does."""
    return [_shift(img, 1.5 * np.sin(i / 7), 0.8 * np.cos(i / 9)) for i in range(n)]


# --------------------------------------------------------------------------------------------
# reading


def test_resample_plan_keeps_a_constant_rate_and_resamples_a_variable_one():
    idx, rate, variable = video.resample_plan(np.arange(90) / 30 + 0.004 * np.sin(np.arange(90)), 30.0)
    assert not variable and rate == 30.0 and idx.tolist() == list(range(90))
    # 1 s at 30 fps then 2 s at 15 fps: 60 frames over 2.93 s, resampled to their mean rate
    t = np.concatenate([np.arange(30) / 30, 1 + np.arange(30) / 15])
    idx, rate, variable = video.resample_plan(t, 30.0)
    assert variable and rate == pytest.approx(59 / t[-1])
    out_t = t[0] + np.arange(len(idx)) / rate
    assert np.abs(t[idx] - out_t).max() <= 0.5 / 15 + 1e-9  # each output frame the nearest source frame
    assert np.all(np.diff(idx) >= 0)


def test_a_video_file_streams_its_frames_with_times(tmp_path):
    frames = [np.full((48, 64, 3), 4 * i, np.uint8) for i in range(40)]
    path = video.write_video(tmp_path / "v.mp4", frames, FPS)
    v = video.open_video(path)
    assert (v.info.kind, v.info.fps, v.info.n_frames, v.info.size, v.info.variable) == ("file", FPS, 40, (64, 48), False)
    got = list(v)
    assert [f.index for f in got] == list(range(40))
    assert [f.time for f in got] == pytest.approx([i / FPS for i in range(40)])
    means = [f.image.mean() for f in got]
    assert np.corrcoef(means, np.arange(40))[0, 1] > 0.99  # the frames in their order


def _write_vfr(path, times, size=(64, 48)):
    av = pytest.importorskip("av")
    c = av.open(str(path), "w")
    s = c.add_stream("mpeg4", rate=30)
    s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
    s.codec_context.time_base = fractions.Fraction(1, 1000)
    for i, t in enumerate(times):
        f = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), (i * 4) % 250, np.uint8), format="rgb24")
        f.pts, f.time_base = int(round(t * 1000)), fractions.Fraction(1, 1000)
        for p in s.encode(f):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    return path


def test_a_variable_frame_rate_video_is_resampled_to_its_mean_rate_and_says_so(tmp_path):
    t = np.concatenate([np.arange(30) / 30, 1 + np.arange(30) / 15])
    path = _write_vfr(tmp_path / "phone.mkv", t)
    v = video.open_video(path)
    assert v.info.variable and v.info.fps == pytest.approx(59 / t[-1], rel=1e-3)
    assert any("variable frame rate" in n and "resampled" in n for n in v.info.notes)
    assert not any("truncated" in n for n in v.info.notes)
    numbers = [f.number for f in v]
    assert len(numbers) == v.info.n_frames
    assert numbers[:6] == [0, 1, 3, 4, 6, 7]  # the 30 fps second thinned, the 15 fps part repeated
    assert len(numbers) - len(set(numbers)) > 5
    with pytest.raises(video.VideoError, match="variable-rate"):
        video.open_video(path, fps=30)


def test_a_frame_folder_keeps_numbers_when_a_frame_is_missing_or_corrupt(tmp_path):
    for n in range(1, 13):
        if n == 5:
            continue  # missing
        cv2.imwrite(str(tmp_path / f"img{n}.jpg"), np.full((32, 40, 3), 20 * n, np.uint8))
    (tmp_path / "img7.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    v = video.open_video(tmp_path, fps=FPS)
    frames = list(v)
    assert v.info.first_number == 1 and len(frames) == v.info.n_frames == 12
    assert [f.number for f in frames] == list(range(1, 13))
    assert {s["number"]: s["reason"] for s in v.skipped} == {5: "no file with this number", 7: "cannot be decoded"}
    np.testing.assert_array_equal(frames[4].image, frames[3].image)  # img5 repeats img4
    assert frames[11].time == pytest.approx(11 / FPS)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.mp4", b"hello " * 200, "not a video"),
        ("empty.mp4", b"", "empty file"),
        ("missing.mp4", None, "no such file"),
    ],
)
def test_what_is_not_a_video_is_a_clear_error_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(video.VideoError, match=message) as e:
        video.open_video(path)
    assert str(path) in str(e.value)


def test_a_zero_frame_video_is_a_clear_error(tmp_path):
    path = tmp_path / "zero.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (64, 48))
    w.release()
    with pytest.raises(video.VideoError, match="no decodable frames") as e:
        video.open_video(path)
    assert str(path) in str(e.value)


def test_a_truncated_video_gives_the_frames_it_has_and_says_how_many_are_missing(tmp_path):
    frames = [np.full((48, 64, 3), 4 * i, np.uint8) for i in range(60)]
    full = video.write_video(tmp_path / "full.avi", frames, FPS).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full[: len(full) // 2])
    v = video.open_video(cut)
    got = list(v)
    assert 10 < len(got) < 60 and len(got) == v.info.n_frames
    assert any("cannot be read (truncated or corrupt)" in n for n in v.info.notes)


# --------------------------------------------------------------------------------------------
# tracking


def _tracked(frames, tmp_path, name="v.avi", **kw):
    path = video.write_video(tmp_path / name, frames, FPS)
    f = track.follow(path, **kw)
    return f, list(f)


def test_a_face_is_tracked_on_every_frame_with_its_pose_and_aligned_crop(face, tmp_path):
    img, _ = face
    f, out = _tracked(_sway(img, 45), tmp_path)
    assert len(out) == 45 and all(t.found for t in out) and f.gaps == []
    assert all(t.crop.shape == (112, 96) and t.crop.dtype == np.uint8 for t in out)
    assert f.stats["detections"] <= 3  # detected at intervals (1 s), tracked between
    pose = np.stack([t.pose for t in out])
    sway = np.array([1.5 * np.sin(i / 7) for i in range(45)])
    assert np.corrcoef(pose[:, 0], sway)[0, 1] > 0.9  # the head's x follows the sway
    assert np.ptp(pose[:, 2]) < 1.0  # no rotation
    crops = np.stack([t.crop for t in out]).astype(np.float32)
    assert np.abs(crops - crops.mean(0)).mean() < 4.0  # aligned: the sway is taken out of the crops


def test_a_face_that_leaves_and_comes_back_is_a_recorded_gap(face, tmp_path):
    img, bg = face
    frames = _sway(img, 15) + [bg] * 15 + _sway(img, 15)
    f, out = _tracked(frames, tmp_path, gap_every=0.1)
    found = [t.found for t in out]
    assert all(found[:15]) and not any(found[15:30]) and all(found[33:])
    assert len(f.gaps) == 1
    g = f.gaps[0]
    assert g["start_frame"] == 15 and 29 <= g["end_frame"] <= 32
    assert g["start_s"] == pytest.approx(15 / FPS) and g["reason"] in (track.LOST, track.NO_FACE)
    assert len({t.segment for t in out if t.found}) == 2  # aligned anew after the gap


def test_a_hand_over_the_face_never_stops_the_run(face, tmp_path):
    img, _ = face
    covered = []
    for fr in _sway(img, 15):
        fr = fr.copy()
        cv2.ellipse(fr, (330, 300), (120, 150), 0, 0, 360, (120, 150, 200), -1)  # a skin-toned hand
        covered.append(fr)
    frames = _sway(img, 15) + covered + _sway(img, 15)
    f, out = _tracked(frames, tmp_path, gap_every=0.1)
    assert len(out) == 45
    assert all(t.found for t in out[:15]) and all(t.found for t in out[-10:])
    for g in f.gaps:  # whatever was not tracked is recorded inside the covered stretch
        assert 15 <= g["start_frame"] <= g["end_frame"] <= 33


def test_a_video_with_no_face_is_one_gap_and_spotting_says_so(face, tmp_path):
    _, bg = face
    f, out = _tracked([_shift(bg, i) for i in range(20)], tmp_path, name="wall.avi")
    assert not any(t.found for t in out)
    assert [(g["start_frame"], g["end_frame"]) for g in f.gaps] == [(0, 19)]
    with pytest.raises(spot.SpotError, match="no face found in any of its 20 frames") as e:
        spot.signals(tmp_path / "wall.avi")
    assert "wall.avi" in str(e.value)


def test_a_very_large_video_is_streamed_with_bounded_memory(face, tmp_path):
    """4K frames: the detector runs on a downscaled copy, and the tracker never holds more than
    its smoothing window of frames (weak references to every decoded image die as it goes)."""
    img, _ = face
    big = cv2.resize(img, (3840, 2880), interpolation=cv2.INTER_CUBIC)
    path = video.write_video(tmp_path / "big.avi", _sway(big, 16), FPS)
    f = track.follow(path)
    alive, n = [], 0
    orig = f.video.__class__.__iter__

    def spy(v):
        for fr in orig(v):
            alive.append(weakref.ref(fr.image))
            yield fr

    f.video.__class__ = type("Spied", (video.Video,), {"__iter__": spy})
    for t in f:
        n += 1
        assert t.found and t.crop.shape == (112, 96)
        assert sum(r() is not None for r in alive) <= 2 * int(np.ceil(2 * f.smooth)) + 2
    assert n == 16
    assert f.info.size == (3840, 2880)


def test_a_clip_cut_as_a_video_file_is_read_for_predict_and_a_long_video_is_refused(tmp_path):
    from mexpr import predict

    frames = [np.full((48, 64, 3), (10 * i, 0, 200 - 10 * i), np.uint8) for i in range(12)]
    path = video.write_video(tmp_path / "clip.avi", frames, 200)
    rgb, times = predict.clip_video(path)
    assert rgb.shape == (12, 48, 64, 3) and times == pytest.approx(np.arange(12) / 200)
    assert rgb[0, 0, 0, 2] < 30 and rgb[0, 0, 0, 0] > 150  # RGB, as the pre-processing takes arrays
    long = video.write_video(tmp_path / "long.avi", [frames[0]] * 200, 30)
    with pytest.raises(ValueError, match="not one clip.*mexpr spot"):
        predict.clip_video(long)
