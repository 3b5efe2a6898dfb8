"""mexpr.baselines: MDMO, FDM and STCLQP on tiny synthetic inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from mexpr.baselines import fdm, mdmo, stclqp
from mexpr.face import TEMPLATE

H, W = 112, 96


def _uniform_flow(u: float, v: float, t: int = 3, h: int = H, w: int = W) -> np.ndarray:
    flow = np.empty((t, h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = u, v
    return flow


# --------------------------------------------------------------------------------------------
# MDMO


def test_mdmo_roi_masks_for_the_template():
    masks = mdmo.roi_masks(TEMPLATE, (H, W))
    assert masks.shape == (36, H, W) and masks.dtype == bool
    assert masks.reshape(36, -1).sum(axis=1).min() > 20  # every ROI non-empty, inside the crop
    assert masks.sum(axis=0).max() == 1  # the template's ROIs do not overlap
    for k in range(17):  # ROIs 2k and 2k + 1 mirror each other about the face's midline
        a, b = masks[2 * k], masks[2 * k + 1][:, ::-1]
        assert (a & b).sum() / (a | b).sum() > 0.9, mdmo.ROI_NAMES[2 * k]
    for eye in (range(36, 42), range(42, 48)):  # the eyes are left out (blinks)
        x, y = TEMPLATE[list(eye)].mean(axis=0).round().astype(int)
        assert not masks[:, y, x].any()
    assert len(mdmo.ROIS) == len(mdmo.ROI_NAMES) == 36


def test_mdmo_roi_outside_the_crop_is_a_clear_error():
    lm = TEMPLATE.copy()
    lm[[7, 8, 57, 58], 1] += 100  # drag the medial chin ROI (32) below the crop
    with pytest.raises(ValueError, match=r"ROI 32 \(chin, medial"):
        mdmo.roi_masks(lm, (H, W))
    with pytest.raises(ValueError, match="68, 2"):
        mdmo.roi_masks(TEMPLATE[:60])


def test_mdmo_translation_right():
    flow = _uniform_flow(0.5, 0.0)
    per_field = mdmo.main_directions(flow[0])
    np.testing.assert_allclose(per_field, np.tile([0.5, 0.0], (36, 1)), atol=1e-6)
    assert mdmo.main_directions(flow).shape == (3, 36, 2)
    x = mdmo.features(flow, normalize=False)
    assert x.shape == (72,) and x.dtype == np.float32
    np.testing.assert_allclose(x[0::2], 0.5, atol=1e-6)  # magnitudes, pixels per frame
    np.testing.assert_allclose(x[1::2], 0.0, atol=1e-6)  # angles: rightwards
    np.testing.assert_allclose(mdmo.features(flow)[0::2], 1.0, atol=1e-6)  # normalised by the max


def test_mdmo_translation_up_and_left():
    x = mdmo.features(_uniform_flow(0.0, -0.3), normalize=False)
    np.testing.assert_allclose(x[0::2], 0.3, atol=1e-6)
    np.testing.assert_allclose(x[1::2], -np.pi / 2, atol=1e-6)  # upwards (image y points down)
    x = mdmo.features(_uniform_flow(-0.2, 0.0), normalize=False)
    np.testing.assert_allclose(np.abs(x[1::2]), np.pi, atol=1e-6)  # leftwards


def test_mdmo_angles_average_on_the_circle():
    flow = _uniform_flow(-1.0, 0.02, t=2)
    flow[1, ..., 1] = -0.02  # just above and just below "left": the mean is left, not right
    x = mdmo.features(flow, normalize=False)
    np.testing.assert_allclose(np.abs(x[1::2]), np.pi, atol=1e-6)


def test_mdmo_main_direction_is_the_fullest_bin():
    flow = np.zeros((16, 16, 2), np.float32)
    flow[:, :10] = (1.0, 0.0)  # 62.5 % of the vectors: right, 1 px
    flow[:, 10:] = (0.0, 2.0)  # 37.5 %: down, 2 px (larger, but fewer)
    got = mdmo.main_directions(flow, np.ones((1, 16, 16), bool))
    np.testing.assert_allclose(got, [[1.0, 0.0]], atol=1e-6)


def test_mdmo_static_clip_gives_zeros():
    x = mdmo.features(np.zeros((3, H, W, 2), np.float32))
    assert x.shape == (72,) and not x.any()


def test_mdmo_reference_first_frame_accumulates():
    flow = _uniform_flow(0.5, 0.0)
    np.testing.assert_allclose(mdmo.accumulate(flow)[:, 50, 40, 0], [0.5, 1.0, 1.5])
    x = mdmo.features(flow, normalize=False, reference="first")
    np.testing.assert_allclose(x[0::2], 1.0, atol=1e-6)  # mean of 0.5, 1.0, 1.5


def test_mdmo_nan_flow_names_the_field():
    flow = _uniform_flow(0.5, 0.0)
    flow[2, 10, 10, 0] = np.nan
    flow[2, 11, 10, 1] = np.inf
    with pytest.raises(ValueError, match=r"2 non-finite values.*field 2"):
        mdmo.features(flow)
    with pytest.raises(ValueError, match=r"\(T, H, W, 2\)"):
        mdmo.features(np.zeros((3, H, W), np.float32))


def test_mdmo_batch():
    flows = [_uniform_flow(0.5, 0.0), _uniform_flow(0.0, -0.3)]
    x = mdmo.features_batch(flows, normalize=False)
    assert x.shape == (2, 72)
    np.testing.assert_allclose(x[1, 1::2], -np.pi / 2, atol=1e-6)
    with pytest.raises(ValueError, match="flow sequence 2 has 4"):
        mdmo.features_batch(flows + [_uniform_flow(0.5, 0.0, t=4)])


# --------------------------------------------------------------------------------------------
# FDM


def test_fdm_length_formula():
    assert fdm.feature_length((64, 112, 96)) == 2 * 8 * 14 * 12 == 2688
    assert fdm.feature_length((128, 112, 96)) == 2 * 16 * 14 * 12
    flow = np.zeros((10, 20, 13, 2), np.float32)  # uneven: 2 slabs (5 + 5), 2 rows (10 + 10), 1 column
    assert fdm.grid_shape((10, 20, 13), block=8, frames=4) == (2, 2, 1)
    assert fdm.features(flow, block=8, frames=4).shape == (2 * 2 * 2 * 1,)


def test_fdm_static_gives_zeros():
    x = fdm.features(np.zeros((16, 16, 16, 2), np.float32))
    assert x.shape == (fdm.feature_length((16, 16, 16)),) and x.dtype == np.float32 and not x.any()


def test_fdm_translation_gives_its_direction_everywhere():
    flow = _uniform_flow(0.3, -0.4, t=16, h=16, w=24)
    directions, strength = fdm.principal_directions(flow)
    assert directions.shape == (2, 2, 3, 2)
    np.testing.assert_allclose(directions.reshape(-1, 2), np.tile([0.6, -0.8], (12, 1)), atol=1e-6)
    np.testing.assert_allclose(strength, 0.5, atol=1e-6)
    np.testing.assert_allclose(fdm.features(flow).reshape(-1, 2), np.tile([0.3, -0.4], (12, 1)), atol=1e-6)
    np.testing.assert_allclose(fdm.features(flow, weighting="unit").reshape(-1, 2), np.tile([0.6, -0.8], (12, 1)), atol=1e-6)


def test_fdm_principal_direction_ignores_an_opposing_minority():
    flow = np.zeros((8, 8, 8, 2), np.float32)
    flow[:, :, :5] = (1.0, 0.0)  # 5/8 of the vectors move right
    flow[:, :, 5:] = (-0.5, 0.5)  # 3/8 move up-left, which would tilt the mean flow
    directions, strength = fdm.principal_directions(flow)
    np.testing.assert_allclose(directions[0, 0, 0], [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(strength[0, 0, 0], 5 / 8, atol=1e-6)


def test_fdm_iterating_cuboid_by_cuboid_gives_the_whole_sequences_directions_bit_for_bit():
    rng = np.random.default_rng(3)
    t, h, w = 16, 24, 16
    smooth = np.cumsum(np.cumsum(rng.normal(size=(t, h, w, 2)), axis=1), axis=2) / 20  # motion that varies across cuboids
    flow = (smooth + rng.normal(scale=0.4, size=smooth.shape)).astype(np.float32)  # and vectors that disagree within them
    flow[:8, :8, :8] = 0.0  # a cuboid without motion
    f = flow.astype(np.float64)
    grid = fdm.grid_shape((t, h, w))
    edges = [fdm._edges(size, n) for size, n in zip((t, h, w), grid)]
    sizes = [np.diff(e) for e in edges]
    start = fdm._cuboid_sum(f, edges)
    start = start / np.maximum(np.linalg.norm(start, axis=-1, keepdims=True), 1e-12)
    for iterations in (0, 1, 2, 20):
        whole = fdm._iterate(f, start, edges, sizes, 1e-12, iterations)
        assert np.array_equal(fdm._iterate_by_cuboid(f, start, grid, (8, 8, 8), 1e-12, iterations), whole)
    assert not np.array_equal(whole, start)  # the iteration moved some directions
    # principal_directions takes the by-cuboid path on an even grid, the whole-sequence one on an uneven grid
    even, _ = fdm.principal_directions(flow)
    uneven, _ = fdm.principal_directions(flow[:, :, :15])
    assert even.shape == (2, 3, 2, 2) and uneven.shape == (2, 3, 1, 2) and np.isfinite(uneven).all()


def test_fdm_bad_input():
    flow = np.zeros((8, 8, 8, 2), np.float32)
    flow[5, 1, 1] = np.nan
    with pytest.raises(ValueError, match="field 5"):
        fdm.features(flow)
    with pytest.raises(ValueError, match="flow sequence 1 has 4"):
        fdm.features_batch([np.zeros((8, 8, 8, 2), np.float32), np.zeros((4, 8, 8, 2), np.float32)])
    assert fdm.features_batch([np.zeros((8, 8, 8, 2), np.float32)] * 2).shape == (2, 2)


# --------------------------------------------------------------------------------------------
# STCLQP

RNG = np.random.default_rng(0)
TRAIN = [RNG.integers(0, 256, (7, 18, 14), dtype=np.uint8) for _ in range(3)]


def test_stclqp_transform_before_fit_raises():
    with pytest.raises(ValueError, match="fit"):
        stclqp.STCLQP().transform(TRAIN[0])


def test_stclqp_constant_clip_is_one_code():
    codes = stclqp.raw_patterns(np.full((5, 8, 8), 90, np.uint8))
    assert codes.shape == (3, 3, 3, 6, 6) and (codes == 255).all()
    desc = stclqp.STCLQP(n_codewords=8, blocks=(2, 2)).fit(TRAIN)
    hist = desc.transform(np.full((7, 18, 14, 3), 90, np.uint8)).reshape(3, 3, 4, 8)  # RGB works too
    assert ((hist > 0).sum(axis=3) == 1).all()  # one bin per (plane, component, block) ...
    np.testing.assert_allclose(hist.max(axis=3), 1.0)  # ... holding all the mass


def test_stclqp_ramp_has_the_expected_patterns():
    ramp = np.broadcast_to(np.arange(10, dtype=np.float32), (5, 6, 10))  # grey = x
    codes = stclqp.raw_patterns(ramp)
    right_half = 1 + 2 + 4 + 64 + 128  # neighbours 0, 1, 2, 6, 7 have dx >= 0
    assert (codes[0, 0] == right_half).all() and (codes[1, 0] == right_half).all()  # XY, XT sign
    assert (codes[2, 0] == 255).all()  # YT: nothing changes along y or t
    assert (codes[0, 1] == 1 + 2 + 8 + 16 + 32 + 128).all()  # XY magnitude: |d| = 1 >= mean 0.75 where dx != 0
    assert (codes[0, 2] == 255).all()  # one gradient orientation everywhere


def test_stclqp_length_and_histograms():
    desc = stclqp.STCLQP(n_codewords=8, blocks=(2, 2))
    assert desc.fit(TRAIN) is desc
    assert desc.n_features == 3 * 3 * 2 * 2 * 8
    x = desc.transform(TRAIN[0])
    assert x.shape == (desc.n_features,) and x.dtype == np.float32
    np.testing.assert_allclose(x.reshape(3, 3, 4, 8).sum(axis=3), 1.0, atol=1e-6)
    assert desc.lut_.shape == (3, 3, 256) and desc.lut_.min() >= 0 and desc.lut_.max() < 8
    frequent = stclqp.STCLQP(n_codewords=8, blocks=(2, 2), codebook="frequent").fit(TRAIN)
    assert frequent.transform(TRAIN[1]).shape == (desc.n_features,)
    longer = RNG.integers(0, 256, (9, 20, 16), dtype=np.uint8)  # the length does not depend on the clip's size
    assert desc.transform(longer).shape == (desc.n_features,)


def test_stclqp_batches_check_lengths():
    desc = stclqp.STCLQP(n_codewords=8, blocks=(2, 2)).fit(TRAIN)
    assert desc.transform_many(TRAIN[:2]).shape == (2, desc.n_features)
    odd = RNG.integers(0, 256, (9, 18, 14), dtype=np.uint8)
    with pytest.raises(ValueError, match="clip 2 has 9"):
        desc.transform_many(TRAIN[:2] + [odd])
    with pytest.raises(ValueError, match="clip 1 has 9"):
        stclqp.STCLQP().fit([TRAIN[0], odd])
    with pytest.raises(ValueError, match="frame 3"):
        bad = TRAIN[0].astype(np.float32)
        bad[3, 2, 2] = np.nan
        desc.transform(bad)


def test_stclqp_histogram_path_equals_the_clip_path():
    clips = TRAIN + [RNG.integers(0, 256, (7, 18, 14, 3), dtype=np.uint8)]  # grey and RGB
    for codebook in ("kmeans", "frequent"):
        from_clips = stclqp.STCLQP(n_codewords=8, blocks=(2, 3), codebook=codebook).fit(TRAIN)
        raws = [from_clips.raw_histograms(c) for c in clips]
        assert raws[0].shape == (3, 3, 6, 256) and raws[0].dtype == np.int32
        assert (raws[0].sum(axis=(2, 3)) == 5 * 16 * 12).all()  # every interior voxel counted once per plane and component
        from_hists = stclqp.STCLQP(n_codewords=8, blocks=(2, 3), codebook=codebook).fit_histograms(raws[:3])
        np.testing.assert_array_equal(from_hists.pattern_counts_, from_clips.pattern_counts_)
        np.testing.assert_array_equal(from_hists.lut_, from_clips.lut_)
        np.testing.assert_array_equal(from_hists.codebooks_, from_clips.codebooks_)  # NaN rows (unused words) match too
        expected = from_clips.transform_many(clips[:3])
        np.testing.assert_array_equal(from_hists.transform_histograms(np.stack(raws[:3])), expected)  # exactly
        flat = np.stack(raws[:3]).reshape(3, -1).astype(np.float32)  # as the extraction cache returns them
        np.testing.assert_array_equal(from_hists.transform_histograms(flat), expected)
        np.testing.assert_array_equal(from_clips.transform_histograms(raws[3]), from_clips.transform(clips[3]))
    with pytest.raises(ValueError, match=r"\(2, 2\) blocks"):
        stclqp.STCLQP(n_codewords=8, blocks=(2, 2)).fit_histograms(raws)
    bad = flat.copy()
    bad[1, 5] = np.nan
    with pytest.raises(ValueError, match="first: clip 1"):
        from_hists.transform_histograms(bad)


# --------------------------------------------------------------------------------------------
# run-level extraction (mexpr.baselines.extract) on the tiny flow run


def test_stclqp_fold_features_fit_on_training_rows_only():
    from mexpr.baselines import extract

    clips = TRAIN + [RNG.integers(0, 256, (7, 18, 14), dtype=np.uint8)]
    raw = np.stack([stclqp.raw_histograms(c, blocks=(2, 2)) for c in clips]).reshape(4, -1).astype(np.float32)
    raw = np.vstack([raw, np.full((1, raw.shape[1]), np.nan, np.float32)])  # a skipped clip
    got = extract.stclqp_fold_features(raw, [0, 2], blocks=(2, 2), n_codewords=8)
    expected = stclqp.STCLQP(n_codewords=8, blocks=(2, 2)).fit([clips[0], clips[2]]).transform_many(clips)
    np.testing.assert_array_equal(got[:4], expected)
    assert np.isnan(got[4]).all()
    with pytest.raises(ValueError, match="first: row 4"):
        extract.stclqp_fold_features(raw, [0, 4], blocks=(2, 2), n_codewords=8)
    with pytest.raises(ValueError, match="blocks"):
        extract.stclqp_fold_features(raw, [0, 1])  # extracted with (2, 2) blocks, not the default (4, 4)


def test_extract_shapes_per_method_and_length(flowrun):
    from mexpr import train
    from mexpr.baselines import extract

    clips = train.clips_table(flowrun).head(2)
    expected = {"mdmo": (72, 72), "fdm": (fdm.feature_length((64, H, W)), fdm.feature_length((128, H, W))), "stclqp": (3 * 3 * 16 * 256,) * 2}
    assert expected["fdm"] == (2688, 5376)
    for method, dims in expected.items():
        for fields, dim in zip((64, 128), dims):
            X, table = extract.features(flowrun, method, fields, clips=clips, jobs=2, progress=False)
            assert X.shape == (2, dim) == (2, extract.feature_length(method, fields)) and X.dtype == np.float32, (method, fields)
            assert np.isfinite(X).all() and list(table["status"]) == ["processed"] * 2
            assert list(table["clip"]) == list(clips["clip"]) and list(table["label"]) == list(clips["label"])
    # MDMO magnitudes are normalised by the largest; STCLQP rows count every interior voxel once per plane/component
    assert X.reshape(2, 9, -1).sum(axis=2).std() == 0  # (last: stclqp f128)
    mdmo_x, _ = extract.features(flowrun, "mdmo", 64, clips=clips, progress=False)
    assert mdmo_x[:, 0::2].max() == pytest.approx(1.0)


def test_extract_is_cached_and_stclqp_matches_the_descriptor(flowrun, monkeypatch):
    from mexpr import preprocess, train
    from mexpr.baselines import extract

    clips = train.clips_table(flowrun).head(3)
    extract.features(flowrun, "stclqp", 64, clips=clips.head(2), jobs=1, progress=False)  # "interrupted" after 2 clips
    X, table = extract.features(flowrun, "stclqp", 64, clips=clips, jobs=1, progress=False)
    assert table.attrs["summary"]["computed"] == 1 and list(table["cached"]) == [True, True, False]  # resumed
    folder = extract.method_dir(flowrun, "stclqp") / "f64"
    assert sorted(p.name for p in folder.glob("*.npz")) == sorted(p.split("/")[-1] for p in clips["cache"])
    assert (folder / "manifest.csv").is_file() and (folder.parent / "params.json").is_file()

    def boom(*a, **k):
        raise AssertionError("a cached clip was recomputed")

    monkeypatch.setattr(stclqp, "raw_histograms", boom)
    again, table2 = extract.features(flowrun, "stclqp", 64, clips=clips, jobs=1, progress=False)
    assert table2["cached"].all() and table2.attrs["summary"]["computed"] == 0
    np.testing.assert_array_equal(again, X)
    monkeypatch.undo()

    frames = [preprocess.load_clip(flowrun, row, 65) for _, row in clips.iterrows()]
    got = extract.stclqp_fold_features(X, [0, 1])
    np.testing.assert_array_equal(got, stclqp.STCLQP().fit(frames[:2]).transform_many(frames))  # real clips, exactly


def test_extract_records_failing_clips(flowrun, monkeypatch):
    from mexpr import flow, train
    from mexpr.baselines import extract

    clips = train.clips_table(flowrun).head(3).copy()
    clips.loc[1, "cache"] = "cache/preprocess/missing__clip.npz"  # an unreadable pre-processed clip
    real, calls = flow.compute, []

    def nan_once(frames, method, **params):  # the first clip's flow comes back with NaNs
        fl = real(frames, method, **params)
        calls.append(1)
        if len(calls) == 1:
            fl[3, 10, 10] = np.nan
        return fl

    monkeypatch.setattr(flow, "compute", nan_once)
    X, table = extract.features(flowrun, "mdmo", 64, clips=clips, jobs=1, progress=False, n_bins=4)  # n_bins=4: a fresh cache
    assert list(table["status"]) == ["skipped", "skipped", "processed"]
    assert "non-finite" in table.loc[0, "reason"] and "field 3" in table.loc[0, "reason"]
    assert "FileNotFoundError" in table.loc[1, "reason"]
    assert np.isnan(X[:2]).all() and np.isfinite(X[2]).all()
    assert table.attrs["summary"]["skipped"] == 2
    manifest = __import__("pandas").read_csv(extract.method_dir(flowrun, "mdmo", n_bins=4) / "f64" / "manifest.csv", keep_default_na=False)
    assert sorted(manifest["status"]) == ["processed", "skipped", "skipped"]


def test_mdmo_and_fdm_share_each_clips_flow(flowrun, monkeypatch):
    from pathlib import Path

    from mexpr import flow, train
    from mexpr.baselines import extract

    clips = train.clips_table(flowrun).iloc[4:7]
    for m in ("mdmo", "fdm"):  # these clips uncached for both, whatever ran before
        for c in clips["cache"]:
            (extract.method_dir(flowrun, m) / "f64" / Path(c).name).unlink(missing_ok=True)
    real, calls = flow.compute, []
    monkeypatch.setattr(flow, "compute", lambda *a, **k: calls.append(1) or real(*a, **k))
    mdmo_x, _ = extract.features(flowrun, "mdmo", 64, clips=clips, jobs=1, progress=False, together=["mdmo", "fdm"])
    assert len(calls) == 3  # one flow per clip
    fdm_x, table = extract.features(flowrun, "fdm", 64, clips=clips, jobs=1, progress=False)
    assert table["cached"].all() and len(calls) == 3  # FDM found its features: no flow computed again
    monkeypatch.undo()
    alone = np.stack([extract.clip_features(flowrun, r, "fdm", 64) for _, r in clips.iterrows()])
    np.testing.assert_array_equal(fdm_x, alone)  # the same features as FDM computing its own flow
    assert np.isfinite(mdmo_x).all()
    with pytest.raises(extract.ExtractError, match="share a clip's flow"):
        extract.features(flowrun, "stclqp", 64, clips=clips, together=["mdmo"])


def test_extract_bad_arguments(flowrun):
    from mexpr.baselines import extract

    with pytest.raises(ValueError, match="unknown baseline"):
        extract.features(flowrun, "lbptop", 64)
    with pytest.raises(ValueError, match="fields must be one of"):
        extract.features(flowrun, "mdmo", 32)
    with pytest.raises(ValueError, match="stclqp_fold_features"):
        extract.features(flowrun, "stclqp", 64, n_codewords=16)
    with pytest.raises(ValueError, match="not among the run's usable clips"):
        extract.features(flowrun, "mdmo", 64, clips=["nobody/nothing"])


# --------------------------------------------------------------------------------------------
# the baselines' SVMs (mexpr.baselines.classify)


def _blobs(n_per_class: int = 20, dim: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = 4.0 * np.eye(4, dim)
    y = np.repeat(np.arange(4), n_per_class)
    return (centres[y] + rng.normal(size=(len(y), dim))).astype(np.float32), y


@pytest.mark.parametrize("method", ["stclqp", "mdmo", "fdm"])
def test_classifiers_separate_blobs(method):
    from mexpr.baselines import classify

    X, y = _blobs()
    Xt, yt = _blobs(seed=1)
    est = classify.fit(method, X, y, seed=0)
    p = classify.proba(est, Xt)
    assert p.shape == (len(Xt), 4)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert (p.argmax(1) == yt).mean() > 0.9
    assert est.best_params_["kernel"] == classify.KERNELS[method] and est.best_params_ in classify.param_grid(method, X.shape[1])
    assert len(est.cv_results_) == len(classify.param_grid(method, X.shape[1])) and 0.9 < est.best_score_ <= 1
    np.testing.assert_array_equal(classify.proba(classify.fit(method, X, y, seed=0), Xt), p)  # seeded
    names = np.array(["Negative", "Others", "Positive", "Surprise"])[y]  # class names work too
    assert classify.fit(method, X, names, seed=0).best_params_ == est.best_params_


def test_classify_kernels_match_scikit_learn():
    from sklearn.metrics.pairwise import polynomial_kernel, rbf_kernel

    from mexpr.baselines import classify

    a, b = RNG.normal(size=(5, 7)), RNG.normal(size=(4, 7))
    poly = {"kernel": "poly", "C": 1.0, "gamma": 0.3, "degree": 3, "coef0": 1.0}
    rbf = {"kernel": "rbf", "C": 1.0, "gamma": 0.3}
    sq_a, sq_b = (a * a).sum(1), (b * b).sum(1)
    np.testing.assert_allclose(classify.kernel_matrix(a @ b.T, sq_a, sq_b, poly), polynomial_kernel(a, b, degree=3, gamma=0.3, coef0=1.0))
    np.testing.assert_allclose(classify.kernel_matrix(a @ b.T, sq_a, sq_b, rbf), rbf_kernel(a, b, gamma=0.3))


def test_classify_bad_input():
    from mexpr.baselines import classify

    X, y = _blobs(n_per_class=4)
    with pytest.raises(ValueError, match="16 feature rows but 15 labels"):
        classify.fit("mdmo", X, y[:-1])
    bad = X.copy()
    bad[[5, 9], 2] = np.nan
    with pytest.raises(ValueError, match=r"2 of 16 rows have NaN.*first: row 5"):
        classify.fit("mdmo", bad, y)
    with pytest.raises(ValueError, match="no training sample of class.*Surprise"):
        classify.fit("fdm", X[y < 3], y[y < 3])
    with pytest.raises(ValueError, match="Positive have a single training sample"):
        classify.fit("fdm", X[[0, 1, 4, 5, 8, 12, 13]], y[[0, 1, 4, 5, 8, 12, 13]])
    with pytest.raises(ValueError, match="unknown baseline"):
        classify.fit("lbptop", X, y)
    with pytest.raises(ValueError, match="unknown class label"):
        classify.fit("fdm", X, ["Happy"] * 16)
    est = classify.fit("fdm", X, y)
    with pytest.raises(ValueError, match="fitted on 12"):
        classify.proba(est, X[:, :5])


def _imbalanced(seed: int, n=(8, 64, 8, 8), dim: int = 4, shift: float = 1.5):
    """Others (class 1) at the origin and 8x as common as each other class, which sits 1.5
    standard deviations away along its own axis: so much overlap that the accuracy-searched,
    unweighted SVM answers Others for (nearly) everything, while each minority class is still
    separable enough to be found by a class-balanced one."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), n)
    centres = shift * np.eye(4, dim)[[0, 3, 1, 2]]
    centres[1] = 0.0
    return (centres[y] + rng.normal(size=(len(y), dim))).astype(np.float32), y


@pytest.mark.parametrize("method", ["stclqp", "mdmo"])
def test_balanced_svm_is_not_a_majority_voter(method):
    from sklearn.metrics import balanced_accuracy_score

    from mexpr.baselines import classify

    X, y = _imbalanced(0)
    Xt, yt = _imbalanced(100, n=(25, 25, 25, 25))
    plain = classify.fit(method, X, y, seed=0)
    bal = classify.fit(method, X, y, seed=0, balanced=True)
    a, b = plain.predict(Xt), bal.predict(Xt)
    assert (a == 1).mean() >= 0.9  # the paper's set-up: Others for (nearly) every clip
    uar_plain, uar_bal = balanced_accuracy_score(yt, a), balanced_accuracy_score(yt, b)
    assert uar_bal >= uar_plain + 0.1 and uar_bal >= 0.4, (uar_plain, uar_bal)
    assert len(np.unique(b)) >= 3, np.bincount(b, minlength=4)
    assert bal.balanced and not plain.balanced and "balanced=True" in repr(bal)
    assert bal.scoring == "balanced_accuracy" and plain.scoring == "accuracy"
    svc = bal.calibrated_.calibrated_classifiers_[0].estimator[-1]
    assert svc.class_weight == "balanced"
    np.testing.assert_allclose(bal.priors_, np.array([8, 64, 8, 8]) / 88)
    p = classify.proba(bal, Xt)  # prior-corrected, still probabilities
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    raw = bal.calibrated_.predict_proba(Xt)
    np.testing.assert_allclose(p, (raw / bal.priors_) / (raw / bal.priors_).sum(1, keepdims=True))


def test_balanced_false_is_the_default():
    from mexpr.baselines import classify

    X, y = _imbalanced(1)
    Xt, _ = _imbalanced(101, n=(5, 5, 5, 5))
    default = classify.fit("mdmo", X, y, seed=2)
    off = classify.fit("mdmo", X, y, seed=2, balanced=False)
    np.testing.assert_array_equal(off.predict_proba(Xt), default.predict_proba(Xt))
    np.testing.assert_array_equal(off.predict(Xt), default.predict(Xt))
    assert off.best_params_ == default.best_params_ and off.best_score_ == default.best_score_
    assert off.cv_results_.equals(default.cv_results_) and off.scoring == default.scoring == "accuracy"
    assert off.priors_ is None and default.calibrated_.calibrated_classifiers_[0].estimator[-1].class_weight is None
    np.testing.assert_array_equal(default.predict_proba(Xt), default.calibrated_.predict_proba(Xt))  # no prior correction
    scores = {
        s: classify.grid_search("mdmo", X, y, seed=2, balanced=True, scoring=s)[2]["mean_score"].to_numpy()
        for s in (None, "balanced_accuracy", "accuracy")
    }
    np.testing.assert_array_equal(scores[None], scores["balanced_accuracy"])  # balanced: UAR unless told otherwise
    assert not np.array_equal(scores[None], scores["accuracy"])  # an explicit scoring wins


def test_balanced_baseline_through_the_folds(flowrun):
    import json

    from mexpr import evaluate, report

    ev = evaluate.evaluate_baseline(flowrun, "mdmo", "paper", seed=0, folds=[0], jobs=1, progress=False, balanced=True)
    names = ["MDMO TIM64 (balanced, ours)", "MDMO TIM128 (balanced, ours)", "MDMO (fusion, balanced, ours)"]
    assert ev.info["methods"] == names == evaluate.baseline_methods("mdmo", balanced=True) and ev.info["balanced"] is True
    out = evaluate.baseline_dir(flowrun, "mdmo", "paper", 0, balanced=True)
    assert out.name == "mdmo-balanced-paper-s0" and evaluate.baseline_dir(flowrun, "mdmo", "paper", 0).name == "mdmo-paper-s0"
    assert json.loads((out / "evaluate.json").read_text())["balanced"] is True and (out / "svm_parameters.csv").is_file()
    assert set(names) <= set(ev.predictions.columns) and set(ev.summary["method"]) == set(names)
    plain = evaluate.evaluate_baseline(flowrun, "mdmo", "paper", seed=0, folds=[0], jobs=1, progress=False)  # features cached now
    assert plain.info["balanced"] is False and plain.info["dir"] != ev.info["dir"]
    both = report.combine([plain, ev])  # the paper's rows and ours in one Table 4
    t4 = report.table4(both, methods=[*evaluate.baseline_methods("mdmo"), *names])  # no paper value for ours: blank, not an error
    assert np.isnan(t4.loc[names, "paper Average"]).all() and t4.loc["MDMO (fusion)", "paper Average"] == 55.45
    assert t4.loc[names[2], "Fold1"] == pytest.approx(100 * (ev.predictions[names[2]] == ev.predictions["label"]).mean(), abs=0.01)
    assert not t4[["Fold1", "Average"]].isna().any().any()
