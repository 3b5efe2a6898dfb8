"""The paper's balanced augmentation (Figure 6): the nine crops, the per-class plan, the cache,
and that no test clip ever reaches it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from mexpr import augment, datasets, flow, preprocess, train
from mexpr.augment import AugmentError, LeakError


def ramp():
    y = np.arange(112, dtype=np.float32)[:, None].repeat(96, 1)
    x = np.arange(96, dtype=np.float32)[None, :].repeat(112, 0)
    return y, x


def test_nine_crops_cut_two_pixel_slices_and_resize_back():
    y, x = ramp()
    img = np.stack([y, x, np.zeros_like(y)], -1)
    crops = augment.nine_crops(img)
    assert crops.shape == (9, 112, 96, 3)
    rows, cols = np.arange(112), np.arange(96)

    # cv2.resize's pixel-centre convention: out p samples the slice at (p + 0.5) * kept / size - 0.5
    def expect(offset, kept, size, p):
        return offset + np.clip((p + 0.5) * kept / size - 0.5, 0, kept - 1)

    for name, (t, b, lft, r) in augment.CROPS.items():
        c = augment.crop(img, name)
        assert np.allclose(c[:, 40, 0], expect(t, 112 - t - b, 112, rows), atol=1e-3), name
        assert np.allclose(c[50, :, 1], expect(lft, 96 - lft - r, 96, cols), atol=1e-3), name
    assert sum(sum(c) for c in augment.CROPS.values()) == 4 * 2 + 4 * 4 + 4  # 2-px slices; corners cut both ways
    assert len({augment.crop(img, n).tobytes() for n in augment.CROPS}) == 9  # nine different frames


@pytest.fixture(scope="module")
def table():
    rows = []
    for cls, n in zip(datasets.CLASSES, (4, 6, 2, 3)):
        for i in range(n):
            rows.append(
                {"subject_id": f"s{i % 2}", "clip": f"{cls}{i}", "label": cls, "status": "processed", "n_used": 10 + i, "cache": f"c/{cls}{i}.npz"}
            )
    return pd.DataFrame(rows)


def test_plan_is_balanced_reproducible_and_per_frame(table):
    p = augment.plan(table, per_class=25, seed=3)
    assert p.groupby("label").size().to_dict() == dict.fromkeys(datasets.CLASSES, 25)
    assert set(p["source"]) <= set(table["subject_id"] + "/" + table["clip"])
    n_used = dict(zip(table["subject_id"] + "/" + table["clip"], table["n_used"]))
    assert all(len(c) == n_used[s] for s, c in zip(p["source"], p["crops"]))  # one crop per native frame
    assert len({c for s in p["crops"] for c in s}) == 9
    assert p.equals(augment.plan(table, per_class=25, seed=3))
    assert not p["crops"].equals(augment.plan(table, per_class=25, seed=4)["crops"])
    one = augment.plan(table, per_class=25, seed=3, mode="clip")
    assert all(len(set(c)) == 1 for c in one["crops"])  # docs/DESIGN.md §3 variant: one crop per clip
    assert len({c[0] for c in one["crops"]}) > 1


def test_flip_mirrors_about_half_without_changing_the_plan(table):
    plain = augment.plan(table, per_class=40, seed=3, mode="clip")
    flipped = augment.plan(table, per_class=40, seed=3, mode="clip", flip=True)
    assert not plain["flip"].any()
    assert flipped.drop(columns="flip").equals(plain.drop(columns="flip"))  # same clips and crops
    for _, g in flipped.groupby("label"):
        assert 8 <= g["flip"].sum() <= 32  # each class: about half mirrored
    # a smaller plan is the start of a larger one, flips included (shared cache entries)
    small = augment.plan(table, per_class=10, seed=3, mode="clip", flip=True)
    big = flipped.groupby("label").head(10).reset_index(drop=True)
    assert small["flip"].tolist() == big["flip"].tolist()


def test_test_clips_and_empty_classes_are_refused(table):
    with pytest.raises(LeakError, match=r"1 clip\(s\) are in both"):
        augment.plan(table, 5, test=table.iloc[[3]])
    no_positive = table[table["label"] != "Positive"]
    with pytest.raises(AugmentError, match="class 'Positive' has no training clip"):
        augment.plan(no_positive, 5)
    with pytest.raises(ValueError, match="mode must be one of"):
        augment.plan(table, 5, mode="jitter")


def test_samples_are_built_once_and_coded_like_real_clips(flowrun, monkeypatch):
    clips = train.clips_table(flowrun)
    # a seed no other test trains with: the session's run may already hold other tests' samples (pytest-xdist runs files in any order)
    samples = augment.plan(clips, per_class=2, seed=9173)
    calls = []
    real = augment.sample_munsell
    monkeypatch.setattr(augment, "sample_munsell", lambda *a, **k: calls.append(a[1]["source"]) or real(*a, **k))
    paths = augment.build(flowrun, samples, 64, jobs=1, progress=False)
    assert len(paths) == 8 and len(calls) == len(set(paths))
    x = np.load(paths[0])
    assert x.shape == (64, 112, 96, 3) and x.dtype == np.uint8
    again = augment.build(flowrun, samples, 64, jobs=1, progress=False)
    assert again == paths and len(calls) == len(set(paths))  # all from the cache
    # mode "none" with the centre crop skipped reproduces the flow stage's own coding of the clip
    plain = samples.iloc[[0]].assign(mode="none")
    row = clips[clips["subject_id"] + "/" + clips["clip"] == plain["source"].iloc[0]].iloc[0]
    ref = train.clip_munsell(flowrun, row, 64)
    assert np.array_equal(real(flowrun, plain.iloc[0], 64), ref)
    # a mirrored sample is the mirrored flow, coded: colours swap left-right and hue across the vertical
    onset = flow.run(flowrun, "dis", reference="onset", normalize="learned", jobs=1, progress=False, primary=False)
    row_o = onset[(onset["subject_id"] + "/" + onset["clip"]) == plain["source"].iloc[0]].iloc[0]
    spec = {"method": "dis", "params": flow.method_params("dis", {}), "reference": "onset", "smooth": 0.0, "normalize": 0.8}
    pair = plain.assign(flip=[True])
    m1, m0 = (
        augment.build(flowrun, pair.assign(flip=[f]), 64, jobs=1, progress=False, flow_cfg=spec, flow_files={pair["cache"].iloc[0]: row_o["cache"]})[
            0
        ]
        for f in (True, False)
    )
    assert m1 != m0  # mirrored samples have their own cache entries
    with np.load(flowrun / row_o["cache"]) as z:
        raw = z["flow64"].astype(np.float32)
    assert np.array_equal(np.load(m1), flow.to_munsell(flow.mirror(raw), 0.8))
    assert np.array_equal(np.load(m0), flow.to_munsell(raw, 0.8))
    frames, times = preprocess.read_cache(flowrun, pair["cache"].iloc[0])
    computed = flow.compute_as(preprocess.interpolate(frames, 65, times), spec)
    assert np.array_equal(real(flowrun, pair.iloc[0], 64, spec), flow.to_munsell(flow.mirror(computed), 0.8))


def test_crop_jitter_adds_motion_that_one_crop_per_clip_does_not(flowrun):
    clips = train.clips_table(flowrun)
    per_frame = augment.plan(clips, 1, seed=0, mode="frame").iloc[0]
    per_clip = augment.plan(clips, 1, seed=0, mode="clip").iloc[0]
    a, b = augment.jitter_energy(flowrun, per_frame, 64), augment.jitter_energy(flowrun, per_clip, 64)
    assert a["augmented_px"] > 5 * a["plain_px"]  # shifts of up to 2 px between frames
    assert b["augmented_px"] < 2 * b["plain_px"] + 0.02


def test_the_ablations_crop_jitter_plans_from_the_runs_clips_without_computing_each_inputs_flow(flowrun):
    from mexpr import ablation

    cfg = train.config_for("quick")
    configs = {f"{ref}, crop per {m}": replace(cfg, reference=ref, mode=m, smooth=1.5) for ref in ("consecutive", "onset") for m in ("frame", "clip")}
    before = sorted(p.name for p in (flowrun / "cache" / "flow").iterdir())
    table = ablation.crop_jitter(flowrun, configs, samples=2)
    assert sorted(p.name for p in (flowrun / "cache" / "flow").iterdir()) == before  # no flow stage of these inputs was run
    assert list(table.index) == list(configs) and (table["plain_px"] > 0).all()
    frame, clip = table.loc["onset, crop per frame", "added by the crops (x)"], table.loc["onset, crop per clip", "added by the crops (x)"]
    assert frame > clip  # per-frame crops add motion that one crop per clip does not
    # the plan is the one training would draw on this fold (the same clips: every clip has flow)
    _, _, plan = train.fold_plan(flowrun, configs["onset, crop per clip"], 0, per_class=1)
    _, _, again = train.fold_plan(flowrun, configs["onset, crop per clip"], 0, per_class=1, clips=train.clips_table(flowrun))
    assert plan.equals(again)
