"""mexpr.datasets: the loaders on small hand-made CASME II / CASME I roots, including bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mexpr import _io, datasets
from mexpr.datasets import DatasetError

C2_HEADER = ["Subject", "Filename", "", "OnsetFrame", "ApexFrame", "OffsetFrame", "", "Action Units", "Estimated Emotion"]
C1_HEADER = ["Subject", "Filename", "", "OnsetF", "ApexF1", "ApexF2", "OffsetF", "", "AU", "Emotion"]


def _jpeg(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", np.full((8, 8, 3), value, np.uint8))
    path.write_bytes(buf.tobytes())


def _casme2(root: Path, rows, frames: dict[str, range] | None = None) -> Path:
    """A CASME II root: rows = (subject, filename, onset, apex, offset, emotion)."""
    frames = frames or {}
    sheet_rows = []
    for subject, filename, onset, apex, offset, emotion in rows:
        sheet_rows.append([subject, filename, "", onset, apex, offset, "", "12", emotion])
        plain = isinstance(subject, int) and "/" not in filename
        default = range(onset, offset + 1) if isinstance(onset, int) and isinstance(offset, int) else range(0)
        for n in frames.get(filename, default) if plain else ():
            _jpeg(root / "CASME2_RAW_selected" / f"sub{int(subject):02d}" / filename / f"img{n}.jpg", n)
    root.mkdir(parents=True, exist_ok=True)
    _io.save_xlsx(C2_HEADER, sheet_rows, root / "CASME2-coding-20140508.xlsx")
    return root


GOOD = [(1, "EP02_01f", 8, 10, 12, "happiness"), (2, "EP03_02", 1, 2, 4, "Disgust "), (2, "EP04_01", 5, "/", 9, "others")]


def test_loads_rows_in_frame_number_order(tmp_path):
    root = _casme2(tmp_path / "c2", GOOD)
    df = datasets.load(root)
    assert list(df.columns) == datasets.OUTPUT_COLUMNS
    assert len(df) == 3
    r = df.set_index("clip").loc["EP02_01f"]
    assert r["subject"] == "sub01" and r["label"] == "Positive" and r["fps"] == 200
    # img8, img9, img10, img11, img12: numeric order, not string order (img10 < img8 as text)
    assert [Path(f).name for f in r["frames"]] == ["img8.jpg", "img9.jpg", "img10.jpg", "img11.jpg", "img12.jpg"]
    d = df.set_index("clip").loc["EP03_02"]
    assert d["emotion"] == "disgust" and d["label"] == "Negative"  # case and space insensitive
    e = df.set_index("clip").loc["EP04_01"]
    assert e["apex_estimated"] and e["apex"] == 7 and "estimated" in e["notes"]


def test_range_mismatch_uses_frames_present_and_notes_it(tmp_path):
    root = _casme2(tmp_path / "c2", [(1, "EP01_01", 3, 5, 9, "surprise")], frames={"EP01_01": [1, 2, 3, 4, 6, 7]})
    r = datasets.load(root).iloc[0]
    assert [datasets.frame_number(f) for f in r["frames"]] == [3, 4, 6, 7]
    assert "differs from folder" in r["notes"] and "missing inside the range: 5" in r["notes"]


def test_missing_column_names_file_and_column(tmp_path):
    root = tmp_path / "c2"
    root.mkdir()
    header = [h for h in C2_HEADER if h != "OffsetFrame"]
    _io.save_xlsx(header, [[1, "EP01", "", 1, 2, "", "4", "disgust"]], root / "CASME2-coding.xlsx")
    with pytest.raises(DatasetError, match=r"CASME2-coding.xlsx.*missing column.*offset"):
        datasets.load(root)


def test_unknown_label_error_lists_labels_and_options(tmp_path):
    rows = GOOD + [(1, "EP05_01", 1, 2, 3, "happy"), (1, "EP06_01", 1, 2, 3, "contentment")]
    root = _casme2(tmp_path / "c2", rows)
    with pytest.raises(DatasetError) as err:
        datasets.load(root)
    msg = str(err.value)
    assert "'contentment'" in msg and "'happy'" in msg and "unknown=" in msg
    assert len(err.value.problems) == 2
    skipped = datasets.load(root, unknown="skip")  # skipping unknown labels only
    assert len(skipped) == 3 and len(skipped.attrs["skipped"]) == 2
    mapped = datasets.load(root, unknown={"happy": "Positive", "Contentment": "Positive"})
    assert len(mapped) == 5 and set(mapped[mapped["clip"].isin(["EP05_01", "EP06_01"])]["label"]) == {"Positive"}
    with pytest.raises(ValueError, match="classes"):
        datasets.load(root, unknown={"happy": "Joy"})


def test_problems_are_reported_together_and_skip_loses_nothing(tmp_path):
    rows = GOOD + [
        (3, "EP09_09", 1, 2, 3, "happiness"),  # no folder sub03
        (1, "EP07_01", 9, 5, 3, "surprise"),  # onset after offset
        (1, "EP08_01", 1, 7, 4, "surprise"),  # apex outside range
        (1, "../../etc", 1, 2, 3, "surprise"),  # escapes the root
        ("../x", "EP01", 1, 2, 3, "surprise"),  # subject escapes the root
        (1, "/abs/path", 1, 2, 3, "surprise"),  # absolute path
        (1, "EP10_01", "x", 2, 3, "surprise"),  # onset not a number
    ]
    root = _casme2(tmp_path / "c2", rows, frames={"EP07_01": range(3, 10), "EP08_01": range(1, 5), "EP09_09": []})
    with pytest.raises(DatasetError) as err:
        datasets.load(root)
    reasons = [p["reason"] for p in err.value.problems]
    assert len(reasons) == 7
    text = str(err.value)
    for needle in ("no folder sub03", "not before offset", "outside onset..offset", "escape the dataset root", "frame numbers"):
        assert needle in text
    assert sum("escape" in r for r in reasons) == 3
    df = datasets.load(root, errors="skip")
    assert len(df) == 3 and len(df.attrs["skipped"]) == 7


def test_missing_clip_folder(tmp_path):
    root = _casme2(tmp_path / "c2", GOOD + [(1, "EP99_99", 1, 2, 3, "surprise")], frames={"EP99_99": []})
    with pytest.raises(DatasetError, match=r"row 5 .*folder sub01/EP99_99 not found"):
        datasets.load(root)


def test_corrupt_frame_is_named(tmp_path):
    root = _casme2(tmp_path / "c2", GOOD)
    bad = root / "CASME2_RAW_selected" / "sub01" / "EP02_01f" / "img10.jpg"
    bad.write_bytes(bad.read_bytes()[:20])  # truncated
    with pytest.raises(DatasetError, match=r"corrupt frame .*img10.jpg: truncated JPEG"):
        datasets.load(root)
    bad.write_bytes(b"")
    with pytest.raises(DatasetError, match=r"img10.jpg: empty file"):
        datasets.load(root)
    bad.write_bytes(b"not an image at all, but long enough" * 4)
    with pytest.raises(DatasetError, match="img10.jpg: not a JPEG"):
        datasets.load(root)
    with pytest.raises(DatasetError, match="img10.jpg: cannot be decoded"):
        datasets.load(root, verify="decode")


def test_fewer_than_two_frames_in_range(tmp_path):
    root = _casme2(tmp_path / "c2", [(1, "EP01_01", 5, 6, 9, "surprise")], frames={"EP01_01": [1, 2, 9]})
    with pytest.raises(DatasetError, match="fewer than 2 frames"):
        datasets.load(root)


def test_empty_dataset(tmp_path):
    root = tmp_path / "c2"
    root.mkdir()
    _io.save_xlsx(C2_HEADER, [], root / "CASME2-coding.xlsx")
    with pytest.raises(DatasetError, match="no usable clips"):
        datasets.load(root)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no coding sheet"):
        datasets.load(empty)
    with pytest.raises(DatasetError, match="does not exist"):
        datasets.load(tmp_path / "missing")


def test_casme1_aliases_sections_and_merge(tmp_path):
    root = tmp_path / "c1"
    rows = {"A": [[1, "EP01_5", "", 1, 3, "", 5, "", "4+7", "tense"]], "B": [[8, "EP02_1", "", 2, 4, 5, 6, "", "L14", "Contempt"]]}
    for sec, srows in rows.items():
        base = root / f"CASME_{sec}" / f"Section {sec}"
        base.mkdir(parents=True)
        _io.save_xlsx(C1_HEADER, srows, base / f"Section {sec}.xlsx")
        subj, name, _, on, _, _, off = srows[0][:7]
        pad = 3 if sec == "B" else 1
        for n in range(on, off + 1):
            _jpeg(base / f"sub{subj:02d}" / name / f"{name}-{n:0{pad}d}.jpg")
    df = datasets.load(root)
    assert list(df["dataset"]) == ["casme1", "casme1"] and set(df["fps"]) == {60}
    assert list(df["label"]) == ["Others", "Others"]
    assert list(df["n_frames"]) == [5, 5]
    c2 = _casme2(tmp_path / "c2", GOOD)
    both = datasets.load([c2, root])
    assert len(both) == 5 and set(both["dataset"]) == {"casme1", "casme2"}
    assert both["subject_id"].nunique() == 4  # casme1/sub01 is not casme2/sub01


def test_cropped_variant(tmp_path):
    root = _casme2(tmp_path / "c2", GOOD)
    for n in range(8, 13):
        _jpeg(root / "Cropped" / "sub01" / "EP02_01f" / f"reg_img{n}.jpg")
    raw = datasets.load(root)
    assert "CASME2_RAW_selected" in raw.set_index("clip").loc["EP02_01f", "clip_dir"]
    cropped = datasets.load(root, variant="cropped", errors="skip")
    assert len(cropped) == 1 and "Cropped" in cropped.iloc[0]["clip_dir"]
    assert len(cropped.attrs["skipped"]) == 2  # sub02 has no cropped folder: reported


def test_frame_number_is_the_last_integer():
    assert datasets.frame_number("img46.jpg") == 46
    assert datasets.frame_number("EP01_5-012.jpg") == 12
    assert datasets.frame_number("reg_img7.jpg") == 7
    assert datasets.frame_number("cover.jpg") is None


def test_a_sheet_that_is_not_a_spreadsheet_names_the_file(tmp_path):
    root = tmp_path / "c2"
    (root / "CASME2_RAW_selected" / "sub01").mkdir(parents=True)
    sheet = root / "CASME2-coding-20140508.xlsx"
    sheet.write_text("Subject,Filename\n1,EP01_01\n")  # a CSV saved under the spreadsheet's name
    with pytest.raises(DatasetError, match="CASME2-coding-20140508.xlsx: not a readable .xlsx coding sheet"):
        datasets.load(root)


def test_cli_info_names_its_own_flag_for_skipping_bad_rows(tmp_path, capsys):
    from mexpr.cli import main

    root = _casme2(tmp_path / "c2", GOOD + [(3, "EP09_09", 1, 2, 4, "happiness")], frames={"EP09_09": range(0)})  # a row with no folder
    assert main(["info", str(root)]) == 2  # an error, named
    err = capsys.readouterr().err
    assert "EP09_09" in err and "mexpr info --skip" in err
    assert main(["info", str(root), "--skip"]) == 0
    assert "1 row(s) skipped" in capsys.readouterr().out
