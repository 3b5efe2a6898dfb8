"""Long videos for spotting: the loaders of CAS(ME)² and SAMM Long Videos (mexpr.longvideo) on the
synthetic stand-ins of mexpr.synth.longvideo (layout only, and one tiny rendered set)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from scipy import stats

from mexpr import clips, longvideo
from mexpr.corpora import LONG_CORPORA, QUIRKS
from mexpr.synth import longvideo as synth_lv
from mexpr.synth.identity import make_identity
from mexpr.synth.motion import make_motion
from mexpr.synth.plans import DIFFICULTIES, plan_clips

# small layout-only sets: CAS(ME)² at 0.15 (15 videos of 3 subjects, 3 without any interval),
# SAMM Long Videos at 0.02 (3 videos of 2 subjects, one without any interval)
SETS = {"casme2lv": {"scale": 0.15, "seconds": 4.0}, "sammlv": {"scale": 0.02, "seconds": 4.5}}


def _generate(out: Path, dataset: str, seed: int = 0, **kw) -> Path:
    args = SETS[dataset] | kw
    return synth_lv.generate(out, dataset, seed=seed, jobs=1, progress=False, render=False, **args)


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("longvideo")
    return {ds: _generate(base / ds, ds) for ds in SETS}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """The one rendered set: CAS(ME)², 2 videos of ~3 s (frames, AVIs, groundtruth.csv, motion.npz)."""
    out = tmp_path_factory.mktemp("longvideo_rendered") / "casme2lv"
    return synth_lv.generate(out, "casme2lv", scale=0.02, seconds=3, seed=1, jobs=1, progress=False)


def _copy(root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(root, tmp_path / root.name))


def _truths(root: Path) -> dict[str, dict]:
    """Every video's groundtruth.json, by its frame folder."""
    return {str(p.parent): json.loads(p.read_text()) for p in sorted(root.rglob("groundtruth.json"))}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _sheet(root: Path) -> Path:
    (dataset,) = [ds for ds in SETS if (root / synth_lv.SHEET_NAMES[ds]).is_file()]
    return root / synth_lv.SHEET_NAMES[dataset]


def _edit(path: Path, cells: dict[tuple[int, str], object]) -> None:
    """Set cells of the first sheet of a workbook: ``{(excel row, column letter): value}``."""
    wb = load_workbook(path)
    ws = wb.worksheets[0]
    for (row, col), value in cells.items():
        ws[f"{col}{row}"] = value
    wb.save(path)


def _assert_matches_truth(df: pd.DataFrame, root: Path) -> None:
    """``df`` (load) holds exactly the intervals of the videos' groundtruth.json (apex: the middle
    frame, flagged, where the sheet leaves it out)."""
    truths = _truths(root)
    assert set(df["video_path"]) <= set(truths)
    for folder, gt in truths.items():
        got = df[df["video_path"] == folder].sort_values(["onset", "offset"])
        want = sorted(gt["intervals"], key=lambda i: (i["onset"], i["offset"]))
        assert Counter(got["type"]) == Counter(i["type"] for i in want), folder
        assert len(got) == len(want), folder
        for (_, row), iv in zip(got.iterrows(), want):
            assert (row["type"], row["onset"], row["offset"]) == (iv["type"], iv["onset"], iv["offset"]), folder
            assert row["aus"] == iv["aus"]
            if iv.get("sheet_quirk") == "apex_missing":
                assert row["apex_estimated"] and row["apex"] == (iv["onset"] + iv["offset"]) // 2
            else:
                assert not row["apex_estimated"] and row["apex"] == iv["apex"], (folder, iv)
        assert (got["first_frame"] == gt["first_frame"]).all() and (got["last_frame"] == gt["last_frame"]).all()
        assert (got["fps"] == gt["fps"]).all()


# --------------------------------------------------------------------------------------------
# round trip


@pytest.mark.parametrize("dataset", list(SETS))
def test_load_gives_exactly_the_planned_intervals(roots, dataset):
    root = roots[dataset]
    assert longvideo.detect(root) == dataset
    df = longvideo.load(root)  # errors="raise": a generated set has no unusable row
    assert list(df.columns) == longvideo.INTERVAL_COLUMNS
    assert df.attrs["skipped"] == []
    assert (df["dataset"] == dataset).all() and (df["fps"] == LONG_CORPORA[dataset].fps).all()
    assert df["video_key"].str.startswith(f"{dataset}/").all()
    _assert_matches_truth(df, root)
    counts = json.loads((root / "synth.json").read_text())["counts"]
    assert (int((df["type"] == "micro").sum()), int((df["type"] == "macro").sum())) == (counts["micro"], counts["macro"])


@pytest.mark.parametrize("dataset", list(SETS))
def test_videos_lists_every_video_with_or_without_intervals(roots, dataset):
    root = roots[dataset]
    truths = _truths(root)
    intervals = longvideo.load(root)
    vids = longvideo.videos(root, intervals)
    assert list(vids.columns) == longvideo.VIDEO_COLUMNS
    assert sorted(vids["video_path"]) == sorted(truths)
    assert vids["video_key"].is_unique
    empty = 0
    for _, v in vids.iterrows():
        gt = truths[v["video_path"]]
        assert (v["first_frame"], v["last_frame"], v["n_frames"]) == (gt["first_frame"], gt["last_frame"], gt["n_frames"])
        kinds = Counter(i["type"] for i in gt["intervals"])
        assert (v["n_micro"], v["n_macro"]) == (kinds["micro"], kinds["macro"])
        empty += not gt["intervals"]
    assert empty >= 1  # the generator leaves some videos without any expression: they must be listed
    assert longvideo.videos(root).equals(vids)  # by default, from load(roots, errors="skip")

    counts = longvideo.counts_table(intervals, vids).set_index("quantity")["here"]
    assert counts["videos"] == len(truths) and counts["videos without intervals"] == empty
    assert counts["subjects"] == len({gt["subject"] for gt in truths.values()})
    assert counts["micro-expressions"] == (intervals["type"] == "micro").sum()
    assert counts["macro-expressions"] == (intervals["type"] == "macro").sum()
    durations = longvideo.durations_table(intervals, vids).set_index("what")
    assert durations.loc["videos", "frames total"] == sum(gt["n_frames"] for gt in truths.values())
    assert durations.loc["micro intervals", "n"] == (intervals["type"] == "micro").sum()
    assert durations.loc["micro intervals", "max s"] <= durations.loc["macro intervals", "max s"]


def test_detect_tells_long_video_roots_from_the_others(roots, tmp_path):
    assert longvideo.detect(roots["casme2lv"]) == "casme2lv"
    assert longvideo.detect(roots["sammlv"]) == "sammlv"
    (tmp_path / "CASME2_RAW_selected" / "sub01").mkdir(parents=True)
    assert longvideo.detect(tmp_path) is None
    assert longvideo.detect(tmp_path / "missing") is None
    with pytest.raises(clips.DatasetError, match="neither CAS"):
        longvideo.load(tmp_path)


def test_two_corpora_load_together(roots):
    both = longvideo.load([roots["casme2lv"], roots["sammlv"]])
    assert len(both) == len(longvideo.load(roots["casme2lv"])) + len(longvideo.load(roots["sammlv"]))
    assert set(both["dataset"]) == set(SETS)
    assert {q["corpus"] for q in both.attrs["quirks"]} == set(SETS)
    vids = longvideo.videos([roots["casme2lv"], roots["sammlv"]], both)
    assert vids["video_key"].is_unique and set(vids["dataset"]) == set(SETS)


# --------------------------------------------------------------------------------------------
# determinism and resuming


@pytest.mark.parametrize("dataset", list(SETS))
def test_same_seed_writes_identical_files(roots, dataset, tmp_path):
    again = _files(_generate(tmp_path / "again", dataset))
    first = _files(roots[dataset])
    assert sorted(again) == sorted(first)
    assert [k for k in first if again[k] != first[k]] == []
    assert any(k.endswith("groundtruth.json") for k in first) and synth_lv.SHEET_NAMES[dataset] in first
    other = _files(_generate(tmp_path / "other", dataset, seed=1))
    assert other[synth_lv.SHEET_NAMES[dataset]] != first[synth_lv.SHEET_NAMES[dataset]]


def test_an_interrupted_generation_resumes(roots, tmp_path):
    original = roots["sammlv"]
    root = _copy(original, tmp_path)
    # interrupted: still marked partial, one video not finished, no sheet yet
    (root / "synth.json").rename(root / ".synth-partial")
    folders = sorted(p.parent for p in root.rglob("groundtruth.json"))
    lost, kept = folders[0], folders[-1]
    for p in sorted(lost.iterdir())[len(list(lost.iterdir())) // 2 :]:
        p.unlink()  # half of its frames and its groundtruth.json (the mark of a finished video)
    (root / synth_lv.SHEET_NAMES["sammlv"]).unlink()
    (root / "videos.csv").unlink()
    kept_inode = (kept / "groundtruth.json").stat().st_ino

    assert _generate(root, "sammlv") == root
    assert _files(root) == _files(original)
    assert not (root / ".synth-partial").exists()
    assert (kept / "groundtruth.json").stat().st_ino == kept_inode  # a finished video is not written again
    _generate(root, "sammlv")  # complete: nothing to do
    assert _files(root) == _files(original)


def test_generation_refuses_to_mix_sets(roots, tmp_path):
    root = _copy(roots["sammlv"], tmp_path)
    with pytest.raises(FileExistsError, match="different synthetic dataset"):
        _generate(root, "sammlv", seed=1)
    (root / "synth.json").rename(root / ".synth-partial")
    with pytest.raises(FileExistsError, match="interrupted synthetic dataset of other arguments"):
        _generate(root, "sammlv", seed=1)  # resuming it with another seed would mix two sets' videos
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        _generate(foreign, "sammlv")


def test_too_short_videos_are_refused_up_front():
    d = DIFFICULTIES["default"]
    for dataset in SETS:
        shortest = synth_lv.min_seconds(dataset)
        with pytest.raises(ValueError, match=f"seconds must be >= {shortest:g} for {dataset}"):
            synth_lv.plan_videos(dataset, 0.1, 0, shortest - 0.1, d)
        for seed in range(5):  # the shortest allowed always fits one macro- and one micro-expression
            plans = synth_lv.plan_videos(dataset, 0.1, seed, shortest, d)
            assert all({e.kind for e in v.intervals} == {"macro", "micro"} for v in plans if v.intervals)
            # squeezed into short videos (and the offset-0 row's even span), macro-expressions stay 0.5-4 s
            fps = LONG_CORPORA[dataset].fps
            spans = [(e.end - e.start) / fps for v in plans for e in v.intervals if e.kind == "macro" and "true_end" not in e.params]
            assert 0.5 <= min(spans) and max(spans) <= 4.0
    assert synth_lv.min_seconds("casme2lv") <= 3 < synth_lv.min_seconds("sammlv")


# --------------------------------------------------------------------------------------------
# statistics of the expressions (plans only, nothing rendered)


def _events(dataset: str, kind: str, scale: float, seed: int = 0) -> list[tuple[synth_lv.VideoPlan, synth_lv.Event]]:
    plans = synth_lv.plan_videos(dataset, scale, seed, synth_lv.FORMATS[dataset].seconds, DIFFICULTIES["default"])
    return [(v, e) for v in plans for e in v.intervals if e.kind == kind and "true_end" not in e.params]


@pytest.mark.parametrize(("dataset", "clips_like"), [("casme2lv", "casme2"), ("sammlv", "samm")])
def test_micro_expression_durations_follow_the_clips(dataset, clips_like):
    fps = LONG_CORPORA[dataset].fps
    micro = np.array([(e.end - e.start) / fps for _, e in _events(dataset, "micro", 1.0)])
    assert len(micro) >= 100
    clip_plans = plan_clips(clips_like, 1.0, 12345, DIFFICULTIES["default"])
    clip_fps = 200  # CASME II and SAMM
    onset_to_offset = np.array([(p.offset_index - p.onset_index) / clip_fps for p in clip_plans])
    at_video_rate = np.round(onset_to_offset * fps) / fps  # the same seconds, in whole frames of the long video
    assert stats.ks_2samp(micro, at_video_rate).pvalue > 0.01
    assert abs(np.median(micro) - np.median(onset_to_offset)) <= 1 / fps + 0.02
    assert micro.max() <= 0.5 + 1 / fps


def test_macro_expressions_are_longer_than_micro_ones():
    for dataset in SETS:
        fps = LONG_CORPORA[dataset].fps
        macro = np.array([(e.end - e.start) / fps for _, e in _events(dataset, "macro", 0.3)])
        micro = np.array([(e.end - e.start) / fps for _, e in _events(dataset, "micro", 0.3)])
        assert len(macro) >= 20 and macro.min() >= 0.5 and macro.max() <= 4.0
        assert np.median(macro) > 2 * np.median(micro)
        assert np.median(macro) > micro.max()


def _peak(intensity: np.ndarray) -> float:
    return float(np.abs(intensity).max())


def test_micro_expression_amplitudes_follow_the_clips_and_macro_ones_are_larger():
    d = DIFFICULTIES["default"]
    ident = make_identity(0, None, d)
    micro = _events("casme2lv", "micro", 0.6)
    macro = _events("casme2lv", "macro", 0.6)[:60]
    assert len(micro) >= 100
    amp_micro = np.array([_peak(synth_lv._expression(e, v, ident, d, synth_lv.SCHEDULE)[1]) for v, e in micro])
    amp_macro = np.array([_peak(synth_lv._expression(e, v, ident, d, synth_lv.SCHEDULE)[1]) for v, e in macro])
    amp_clips = []
    for p in plan_clips("casme2", 0.5, 12345, d):  # the CASME II stand-in's clips, as mexpr.synth renders them
        m = make_motion(p, ident, d, 200, np.random.default_rng([12345, p.index]))
        keep = [k for k, name in enumerate(m.au_names) if str(name) != "45"]  # its blink is no expression
        amp_clips.append(_peak(m.au_intensity[:, keep]))
    amp_clips = np.array(amp_clips)
    assert len(amp_clips) >= 100
    assert stats.ks_2samp(amp_micro, amp_clips).pvalue > 0.01
    assert np.median(amp_micro) == pytest.approx(np.median(amp_clips), rel=0.15)
    assert np.median(amp_macro) > 2 * np.median(amp_micro)
    assert stats.mannwhitneyu(amp_macro, amp_micro, alternative="greater").pvalue < 1e-6


# --------------------------------------------------------------------------------------------
# bad input


def test_bad_casme2lv_rows_are_reported_or_skipped_clipped_overlaps_kept(roots, tmp_path):
    root = _copy(roots["casme2lv"], tmp_path)
    sheet = _sheet(root)
    clean = longvideo.load(root)
    plain = clean[clean["notes"] == ""]  # rows without any quirk (no offset 0, no renamed folder)
    by_video = [g.sort_values("onset") for _, g in plain.groupby("video_key", sort=True) if len(g) >= 2]
    assert len(by_video) >= 5
    outside, clipped, overlap, unknown, gone = by_video[:5]
    last = int(outside["last_frame"].iloc[0])
    r_out = int(outside["excel_row"].iloc[0])
    r_clip = int(clipped["excel_row"].iloc[-1])
    last_clip = int(clipped["last_frame"].iloc[0])
    (a, b) = overlap["excel_row"].iloc[:2].astype(int)
    a_on, a_off = int(overlap["onset"].iloc[0]), int(overlap["offset"].iloc[0])
    r_unknown = int(unknown["excel_row"].iloc[0])
    _edit(
        sheet,
        {
            (r_out, "C"): last + 10,  # wholly after the video's last frame
            (r_out, "D"): last + 15,
            (r_out, "E"): last + 20,
            (r_clip, "E"): last_clip + 40,  # runs past the last frame
            (b, "C"): a_on + 1,  # shares frames with the row a
            (b, "D"): a_off,
            (b, "E"): a_off + 5,
            (r_unknown, "H"): "mini-expression",
        },
    )
    shutil.rmtree(gone["video_path"].iloc[0])  # its rows have no video folder
    gone_rows = set(clean.loc[clean["video_key"] == gone["video_key"].iloc[0], "excel_row"].astype(int))

    with pytest.raises(clips.DatasetError) as err:
        longvideo.load(root)
    text = str(err.value)
    assert f"{sheet.name} row {r_out}" in text and f"outside its video's frames 1..{last}" in text
    assert f"{sheet.name} row {r_unknown}" in text and "unknown type 'mini-expression'" in text
    assert "no video folder for" in text and "rawpic/" in text
    assert {p["row"] for p in err.value.problems} == {r_out, r_unknown} | gone_rows

    df = longvideo.load(root, errors="skip")
    skipped = {p["row"]: p for p in df.attrs["skipped"]}
    assert set(skipped) == {r_out, r_unknown} | gone_rows
    assert all(p["sheet"] == str(sheet) and p["reason"] for p in skipped.values())
    assert "outside" in skipped[r_out]["reason"] and "unknown type" in skipped[r_unknown]["reason"]
    assert all("no video folder" in skipped[r]["reason"] for r in gone_rows)
    assert len(df) == len(clean) - len(skipped)

    row = df[df["excel_row"] == r_clip].iloc[0]
    assert row["offset"] == last_clip and f"clipped to the video's frames 1..{last_clip}" in row["notes"]
    pair = df[df["excel_row"].isin([a, b])]
    assert len(pair) == 2 and pair["notes"].str.contains("overlaps the").all()
    assert df.loc[df["excel_row"] == b, "onset"].iloc[0] == a_on + 1
    assert not df.loc[~df["excel_row"].isin([a, b]), "notes"].str.contains("overlaps").any()

    vids = longvideo.videos(root, df)
    assert gone["video_key"].iloc[0] not in set(vids["video_key"]) and len(vids) == len(longvideo.videos(roots["casme2lv"])) - 1


def test_bad_sammlv_rows_are_reported_or_skipped(roots, tmp_path):
    root = _copy(roots["sammlv"], tmp_path)
    sheet = _sheet(root)
    clean = longvideo.load(root)
    # rows as the sheet gives them (apex, offset coded, inside the video; frame_padding is the video's)
    plain = clean[~clean["apex_estimated"] & ~clean["notes"].str.contains("offset_zero|clipped")].sort_values("excel_row")
    assert len(plain) >= 2
    r_out, r_apex = (int(r) for r in plain["excel_row"].iloc[:2])
    last = int(plain["last_frame"].iloc[0])
    apex_row = plain.iloc[1]
    renamed = clean[clean["notes"].str.contains("quirk offset_zero")].iloc[0]  # keeps the row with Apex -1 as it is
    r_video, subject = int(renamed["excel_row"]), int(renamed["subject"])
    _edit(
        sheet,
        {
            (r_out, "D"): last + 100,  # Onset, Apex, Offset: wholly after the video
            (r_out, "E"): last + 110,
            (r_out, "F"): last + 120,
            (r_video, "B"): f"{subject:03d}_9_1",  # a video that is not on disk
            (r_apex, "E"): int(apex_row["offset"]) + 5,  # an apex given, outside its interval
        },
    )
    with pytest.raises(clips.DatasetError) as err:
        longvideo.load(root)
    text = str(err.value)
    assert f"{sheet.name} row {r_out}" in text and f"{sheet.name} row {r_video}" in text
    assert f"no video folder for video {subject:03d}_9" in text and f"SAMM_longvideos/{subject:03d}_9/" in text
    df = longvideo.load(root, errors="skip")
    assert sorted(p["row"] for p in df.attrs["skipped"]) == sorted([r_out, r_video])
    moved = df[df["excel_row"] == r_apex].iloc[0]
    assert moved["apex_estimated"] and moved["apex"] == (moved["onset"] + moved["offset"]) // 2
    assert "outside" in moved["notes"] and "quirk apex_missing" not in moved["notes"]  # given, not missing
    quirks = {q["quirk"]: q["rows"] for q in df.attrs["quirks"]}
    assert quirks["apex_missing"] == 1  # the generated row with Apex -1 only


def test_a_root_without_its_sheet_or_with_a_broken_sheet_is_an_error(roots, tmp_path):
    root = _copy(roots["sammlv"], tmp_path)
    sheet = _sheet(root)
    sheet.write_bytes(b"not a workbook")
    with pytest.raises(clips.DatasetError, match=r"SAMM_LongVideos_V3_Release\.xlsx: not a readable"):
        longvideo.load(root, errors="skip")
    sheet.unlink()
    with pytest.raises(clips.DatasetError, match="no coding sheet of SAMM Long Videos"):
        longvideo.load(root, errors="skip")
    with pytest.raises(ValueError, match="errors must be"):
        longvideo.load(roots["sammlv"], errors="ignore")


# --------------------------------------------------------------------------------------------
# the quirks


def _video_quirk(dataset: str, gt: dict, root: Path) -> str | None:
    """The quirk a generated video exhibits as a whole, from its folder."""
    if dataset == "casme2lv":
        return "folder_prefix" if gt["video"].split("_")[0] != gt["subject"][1:] else None
    frame = next(p.name for p in (root / "SAMM_longvideos" / gt["video"]).glob("*.jpg"))
    return "frame_padding" if len(frame.rsplit("_", 1)[1].split(".")[0]) != 4 else None


@pytest.mark.parametrize("dataset", list(SETS))
def test_every_quirk_of_a_generated_set_is_counted(roots, dataset):
    root = roots[dataset]
    df = longvideo.load(root)
    counted = {q["quirk"]: q for q in df.attrs["quirks"]}
    known = {q.name: q for q in QUIRKS if q.corpus == dataset}
    assert set(counted) == set(known)  # the generator plants every known quirk, the loader absorbs each
    assert all(q["corpus"] == dataset and q["absorbed"] == known[name].absorbed for name, q in counted.items())

    expected = Counter()
    for gt in _truths(root).values():
        expected.update(i["sheet_quirk"] for i in gt["intervals"] if "sheet_quirk" in i)
        if name := _video_quirk(dataset, gt, root):
            expected[name] += len(gt["intervals"])
    whole_sheet = ("no_header", "naming_rules") if dataset == "casme2lv" else ("header_row", "subject_digits", "no_emotion")
    for name in whole_sheet:
        expected[name] = len(df)
    assert {name: q["rows"] for name, q in counted.items()} == dict(expected)
    for name in set(known) - set(whole_sheet):  # the row-level quirks are noted on the rows they touch
        assert df["notes"].str.contains(f"quirk {name}:", regex=False).sum() == expected[name], name


def test_quirks_sit_on_videos_with_intervals_at_the_default_scale():
    """At the default scales too, every planted quirk touches at least one interval (a quirk of an
    empty video would never be counted)."""
    for dataset, fmt in synth_lv.FORMATS.items():
        plans = synth_lv.plan_videos(dataset, fmt.scale, 0, fmt.seconds, DIFFICULTIES["default"])
        on_event = {"offset_zero": "macro", "apex_missing": "micro", "interval_clipped": "macro"}
        planted = Counter()
        for v in plans:
            for name, k in v.quirks.items():
                planted[name] += 1
                assert v.intervals, (dataset, v.video, name)
                if name in on_event:
                    assert v.events[k].kind == on_event[name], (dataset, v.video, name)
                    assert ("true_end" in v.events[k].params) == (name == "interval_clipped"), (dataset, v.video, name)
        padded = [v for v in plans if v.pad != plans[0].pad]
        assert all(v.intervals for v in padded)
        assert len(padded) == (dataset == "sammlv")
        want = {"offset_zero", "folder_prefix"} if dataset == "casme2lv" else {"offset_zero", "apex_missing", "interval_clipped"}
        assert planted == dict.fromkeys(want, 1)


# --------------------------------------------------------------------------------------------
# the rendered set


def test_a_rendered_set_reads_back_and_its_truth_marks_the_intervals(rendered):
    df = longvideo.load(rendered)
    _assert_matches_truth(df, rendered)
    for folder, gt in _truths(rendered).items():
        folder = Path(folder)
        assert (folder / "motion.npz").is_file()
        table = pd.read_csv(folder / "groundtruth.csv", keep_default_na=False)
        assert list(table["frame"]) == list(range(gt["first_frame"], gt["last_frame"] + 1))
        inside = np.zeros(len(table), bool)
        for iv in gt["intervals"]:
            span = (table["frame"] >= iv["onset"]) & (table["frame"] <= iv["offset"])
            inside |= span.to_numpy()
            assert (table.loc[span, "interval"] == iv["type"]).all()
            assert table.loc[table["frame"] == iv["apex"], "expression_px"].iloc[0] > 0
            assert iv["peak_px"] > 0
        assert (table.loc[~inside, "expression_px"] == 0).all()  # no expression outside the intervals
        assert (table.loc[~inside, "interval"] == "").all()


def test_casme2lv_reads_its_avi_files_where_no_frame_folder_exists(rendered, tmp_path):
    only_videos = tmp_path / "avi_only"
    only_videos.mkdir()
    shutil.copytree(rendered / "rawvideo", only_videos / "rawvideo")
    shutil.copy(_sheet(rendered), only_videos)
    frames = longvideo.load(rendered)
    avi = longvideo.load(only_videos)
    cols = ["video_key", "onset", "apex", "offset", "type"]
    assert avi[cols].equals(frames[cols])
    assert avi["video_path"].str.endswith(".avi").all()
    vids = longvideo.videos(only_videos, avi)
    truths = {(gt["subject"], gt["video"]): gt for gt in _truths(rendered).values()}
    assert len(vids) == len(truths)
    for _, v in vids.iterrows():
        assert v["n_frames"] == truths[(v["subject"], v["video"])]["n_frames"]
        assert "frames from the video file" in v["notes"]


def test_two_releases_of_a_sheet_in_one_root_are_read_once_from_the_newest(roots, tmp_path):
    root = _copy(roots["sammlv"], tmp_path)
    v3 = _sheet(root)
    v2 = v3.with_name(v3.name.replace("V3", "V2"))
    shutil.copy(v3, v2)
    once = longvideo.load(roots["sammlv"])
    both = longvideo.load(root)
    assert len(both) == len(once)  # not every interval twice
    assert both.attrs["sheets"] == [str(v3)]
    assert len(both.attrs["sheets_ignored"]) == 1 and str(v2) in both.attrs["sheets_ignored"][0]
