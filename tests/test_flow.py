"""mexpr.flow: Munsell coding against the Middlebury reference, estimators, batch runner, bad input."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from mexpr import datasets, flow, groundtruth, preprocess
from mexpr.flow import FlowError
from mexpr.run import Run

RNG = np.random.default_rng(0)


def _reference_colour(u: float, v: float) -> tuple[int, int, int]:
    """Baker et al.'s computeColor for one (already normalised) vector, straight from the
    reference code (0-based indices)."""
    wheel = []
    for n, full, ramp, up in [(15, 0, 1, True), (6, 1, 0, False), (4, 1, 2, True), (11, 2, 1, False), (13, 2, 0, True), (6, 0, 2, False)]:
        for i in range(n):
            c = [0.0, 0.0, 0.0]
            c[full] = 255.0
            c[ramp] = math.floor(255 * i / n) if up else 255 - math.floor(255 * i / n)
            wheel.append(c)
    ncols = len(wheel)
    rad = math.sqrt(u * u + v * v)
    a = math.atan2(-v, -u) / math.pi
    fk = (a + 1) / 2 * (ncols - 1)
    k0 = int(math.floor(fk))
    k1 = 0 if k0 + 1 == ncols else k0 + 1
    f = fk - k0
    out = []
    for ch in range(3):
        col = (1 - f) * wheel[k0][ch] / 255 + f * wheel[k1][ch] / 255
        col = 1 - rad * (1 - col) if rad <= 1 else col * 0.75
        out.append(int(math.floor(255 * col)))
    return tuple(out)


def _at_wheel_index(fk: float, r: float = 1.0) -> np.ndarray:
    theta = (2 * fk / 54 - 1) * np.pi  # = atan2(-v, -u)
    return np.array([-np.cos(theta) * r, -np.sin(theta) * r], np.float32)


def test_wheel_layout_and_the_six_primary_hues():
    w = flow.colour_wheel()
    assert w.shape == (55, 3)
    primaries = {0: (255, 0, 0), 15: (255, 255, 0), 21: (0, 255, 0), 25: (0, 255, 255), 36: (0, 0, 255), 49: (255, 0, 255)}
    for k, rgb in primaries.items():
        assert tuple(w[k]) == rgb
        got = flow.to_munsell(_at_wheel_index(k)[None, None], normalize=1.0)[0, 0]
        assert np.abs(got.astype(int) - rgb).max() <= 1, (k, got)
    # the reference's conventions: right = red, zero motion = white, beyond the scale = 75 %
    assert tuple(flow.to_munsell(np.array([[[1.0, 0.0]]], np.float32), normalize=1.0)[0, 0]) == (255, 0, 0)
    assert tuple(flow.to_munsell(np.zeros((4, 4, 2), np.float32))[0, 0]) == (255, 255, 255)
    assert tuple(flow.to_munsell(np.array([[[2.0, 0.0]]], np.float32), normalize=1.0)[0, 0]) == (191, 0, 0)


def test_saturation_ramp_along_red():
    r = np.linspace(0, 1, 11, dtype=np.float32)
    img = flow.to_munsell(np.stack([r, np.zeros_like(r)], -1)[None], normalize=1.0)[0]
    expect = np.floor(255 * (1 - r.astype(np.float64)))
    assert (img[:, 0] == 255).all()
    assert np.abs(img[:, 1].astype(int) - expect).max() <= 1 and np.abs(img[:, 2].astype(int) - expect).max() <= 1


def test_coding_matches_the_reference_everywhere():
    f = RNG.normal(0, 1, (3, 20, 20, 2)).astype(np.float32)
    for norm in ("frame", "clip", 1.5):
        img = flow.to_munsell(f, normalize=norm)
        for t in range(3):
            s = {"frame": np.hypot(*f[t].reshape(-1, 2).T).max(), "clip": np.hypot(*f.reshape(-1, 2).T).max()}.get(norm, norm)
            for y, x in RNG.integers(0, 20, (40, 2)):
                ref = _reference_colour(f[t, y, x, 0] / s, f[t, y, x, 1] / s)
                assert np.abs(img[t, y, x].astype(int) - ref).max() <= 1, (norm, t, y, x)
    # per-frame normalisation: every frame reaches full saturation somewhere
    assert all((img_t.min(-1) == 0).any() for img_t in flow.to_munsell(f))
    assert flow.to_munsell(f[0]).shape == (20, 20, 3)


def test_decoding_inverts_the_coding():
    f = RNG.normal(0, 1, (2, 40, 40, 2)).astype(np.float32)
    back = flow.from_munsell(flow.to_munsell(f))
    n = f / np.hypot(f[..., 0], f[..., 1]).max(axis=(1, 2))[:, None, None, None]
    r = np.hypot(n[..., 0], n[..., 1])
    err = np.degrees(np.abs(np.angle(np.exp(1j * (np.arctan2(back[..., 1], back[..., 0]) - np.arctan2(n[..., 1], n[..., 0]))))))
    assert np.median(err[r > 0.3]) < 0.5 and np.percentile(err[r > 0.3], 95) < 3
    assert np.abs(np.hypot(back[..., 0], back[..., 1]) - r).max() < 1.5 / 255
    assert flow.colour_key(51).shape == (51, 51, 3)


def test_bad_flow_and_normalisation_are_refused():
    f = np.zeros((2, 8, 8, 2), np.float32)
    f[1, 3, 4, 0] = np.nan
    with pytest.raises(FlowError, match=r"NaN/inf .*index \[1, 3, 4\]"):
        flow.to_munsell(f)
    with pytest.raises(FlowError, match="unknown Munsell scaling 'max'"):
        flow.to_munsell(np.zeros((2, 8, 8, 2), np.float32), normalize="max")
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(FlowError, match="fixed Munsell scale must be a finite number of px > 0"):
            flow.to_munsell(np.zeros((2, 8, 8, 2), np.float32), normalize=bad)
    with pytest.raises(FlowError, match="'learned' is a training option"):
        flow.to_munsell(np.zeros((2, 8, 8, 2), np.float32), normalize="learned")
    with pytest.raises(FlowError, match="2 channels"):
        flow.to_munsell(np.zeros((8, 8, 3), np.float32))


def _sinusoids(shift: float) -> np.ndarray:
    yy, xx = np.mgrid[0:112, 0:96].astype(np.float64)
    x = xx - shift
    img = 128 + 40 * np.sin(0.31 * x + 0.21 * yy) + 30 * np.sin(0.17 * x - 0.26 * yy + 1) + 20 * np.cos(0.45 * x + 0.05 * yy)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", list(flow.METHODS))
def test_every_method_recovers_a_subpixel_translation(method):
    frames = np.stack([_sinusoids(0.0), _sinusoids(0.5), _sinusoids(1.0)])
    out = flow.compute(frames, method)
    assert out.shape == (2, 112, 96, 2) and out.dtype == np.float32
    inner = out[:, 16:-16, 16:-16]
    assert abs(np.median(inner[..., 0]) - 0.5) < 0.1 and abs(np.median(inner[..., 1])) < 0.1
    rgb = np.repeat(frames[..., None], 3, -1)
    assert np.allclose(flow.compute(rgb, method), out)  # RGB is converted to grey


def test_onset_reference_measures_the_displacement_since_the_first_frame():
    frames = np.stack([_sinusoids(0.25 * k) for k in range(5)])  # 0.25 px to the right per frame
    cons = flow.compute(frames, "dis")
    onset = flow.compute(frames, "dis", reference="onset")
    assert cons.shape == onset.shape == (4, 112, 96, 2)
    inner = lambda f: np.median(f[:, 16:-16, 16:-16, 0].reshape(len(f), -1), axis=1)  # noqa: E731
    assert np.allclose(inner(cons), 0.25, atol=0.06)  # the paper's: each step alone
    assert np.allclose(inner(onset), [0.25, 0.5, 0.75, 1.0], atol=0.08)  # ours: the sum since onset
    assert np.array_equal(onset[0], cons[0])  # the first field is the same pair
    with pytest.raises(FlowError, match="onset flow needs at least 2 frames, got 1"):
        flow.compute(frames[:1], reference="onset")
    with pytest.raises(FlowError, match="unknown flow reference 'apex'; valid: consecutive, onset"):
        flow.compute(frames, reference="apex")


def test_photo_pairs_have_exactly_known_flow():
    pairs = list(groundtruth.photo_pairs(amplitudes=(0.5,), per_photo=1, photos=("astronaut", "camera")))
    assert len(pairs) == 2 and pairs[0]["frames"].shape == (2, 112, 96, 3) and pairs[0]["flow"].shape == (112, 96, 2)
    res = groundtruth.score(pairs, {"dis": {"method": "dis"}, "tvl1": {"method": "tvl1"}})
    assert (res["epe_au"] < 0.5 * res["epe_au_zero_flow"]).all()  # every method recovers most of the known motion


def test_bad_frames_are_refused():
    a = np.zeros((112, 96), np.uint8)
    with pytest.raises(FlowError, match="different shapes"):
        flow.compute([a, np.zeros((100, 96), np.uint8)])
    with pytest.raises(FlowError, match="at least 2 frames"):
        flow.compute(a[None])
    with pytest.raises(FlowError, match=r"uint8, got float64 \(with NaN\)"):
        flow.compute(np.full((2, 112, 96), np.nan))
    with pytest.raises(FlowError, match="unknown flow method 'pwc'; valid: tvl1, dis, farneback, deepflow"):
        flow.compute(np.zeros((2, 112, 96), np.uint8), "pwc")
    with pytest.raises(FlowError, match="no parameter"):
        flow.compute(np.zeros((2, 112, 96), np.uint8), "dis", winsize=3)


@pytest.fixture(scope="module")
def prerun(casme1_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("flowrun")
    df = datasets.load(casme1_root)
    Run(run).write_dataset([casme1_root], synthetic=True)
    preprocess.run(df.iloc[:4], run, jobs=2, progress=False)
    return run


def test_batch_flow_is_cached_and_resumable(prerun):
    m = flow.run(prerun, "dis", jobs=2, progress=False, raw=True)
    assert len(m) == 4 and (m["status"] == "processed").all() and m.attrs["summary"]["computed"] == 4
    row = m.iloc[0]
    assert flow.load_flow(prerun, row, 64).shape == (64, 112, 96, 3)
    assert flow.load_flow(prerun, row, 128).dtype == np.uint8
    raw = flow.load_flow(prerun, row, 128, kind="flow")
    assert raw.shape == (128, 112, 96, 2) and raw.dtype == np.float16
    stamp = (prerun / "flow_manifest.csv").stat().st_mtime_ns
    again = flow.run(prerun, "dis", jobs=2, progress=False, raw=True)
    assert again.attrs["summary"]["computed"] == 0 and again["cached"].all()
    assert (prerun / "flow_manifest.csv").stat().st_mtime_ns == stamp  # a cached call writes nothing
    (prerun / row["cache"]).unlink()
    third = flow.run(prerun, "dis", jobs=1, progress=False, raw=True)
    assert third.attrs["summary"]["computed"] == 1
    assert json.loads((prerun / "flow.json").read_text())["fields"] == [64, 128]


def raw_peak(fl):
    return float(flow.robust_peak(fl).max())


def test_each_flow_setting_has_its_own_cache_and_learned_scales_code_on_load(prerun):
    paper = flow.run(prerun, "dis", jobs=2, progress=False)
    onset = flow.run(prerun, "dis", reference="onset", normalize="learned", jobs=2, progress=False, primary=False)
    row_p, row_o = paper.iloc[0], onset.iloc[0]
    assert row_p["cache"] != row_o["cache"]  # another setting, another folder: never mixed
    assert json.loads((prerun / "flow.json").read_text())["reference"] == "consecutive"  # primary=False left the run's flow alone
    assert json.loads((prerun / row_o["cache"]).parent.joinpath("flow.json").read_text())["normalize"] == "learned"
    with np.load(prerun / row_o["cache"]) as z:
        assert "munsell64" not in z.files and z["flow64"].dtype == np.float16 and z["robust64"].shape == (64,)
        raw = z["flow64"].astype(np.float32)
    # flow since onset holds the whole displacement; the paper's neighbouring-frame flow a 64th of it
    with np.load(prerun / row_p["cache"]) as z:
        assert z["robust64"].max() < 0.5 * raw_peak(raw)
    scale = flow.learn_scale(prerun, onset["cache"], 64)
    peaks = []
    for c in onset["cache"]:
        with np.load(prerun / c) as z:
            peaks.append(z["robust64"].max())
    assert min(peaks) <= scale <= max(peaks) and scale == pytest.approx(np.percentile(peaks, 95))
    coded = flow.load_munsell(prerun, row_o["cache"], 64, scale)
    assert coded.dtype == np.uint8 and np.array_equal(coded, flow.to_munsell(raw, scale))
    # the paper's setting is read as stored; another scaling of it needs the raw flow it did not keep
    assert np.array_equal(flow.load_munsell(prerun, row_p["cache"], 64, "frame"), flow.load_flow(prerun, row_p, 64))
    with pytest.raises(FlowError, match="no raw flow, so it cannot be coded with 0.5"):
        flow.load_munsell(prerun, row_p["cache"], 64, 0.5)
    with pytest.raises(FlowError, match="from no training clip"):
        flow.learn_scale(prerun, [], 64)


def test_flow_scores_against_synthetic_ground_truth(prerun):
    man = preprocess.load_manifest(prerun)
    pairs = list(groundtruth.synthetic_pairs(prerun, man.iloc[:2], amplitudes=(0.5, 1.0)))
    assert len(pairs) == 4 and pairs[0]["frames"].shape == (2, 112, 96, 3)
    assert abs(np.hypot(*pairs[0]["flow"][pairs[0]["face"]].T).max() - 0.5) < 1e-3
    res = groundtruth.score(pairs, {"dis": {"method": "dis"}})
    # the estimate is far closer to the truth than "no motion" is
    assert (res["epe_au"] < 0.6 * res["epe_au_zero_flow"]).all()


def test_cli_flow(prerun):
    out = subprocess.run(
        [sys.executable, "-m", "mexpr", "flow", "--run", str(prerun), "--method", "farneback", "--quiet", "--jobs", "1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "4 clip(s) with flow (4 computed, 0 from cache)" in out and "[64, 128] fields" in out


def test_mirror_is_the_flow_of_the_mirrored_clip():
    # a rightward drift on the left half: mirrored, it is a leftward drift on the right half
    f = np.zeros((2, 4, 6, 2), np.float32)
    f[:, :, :3, 0] = 1.0
    f[:, :, :3, 1] = 0.5
    m = flow.mirror(f)
    assert m.shape == f.shape and not np.shares_memory(m, f)
    assert np.all(m[:, :, 3:, 0] == -1.0) and np.all(m[:, :, 3:, 1] == 0.5) and np.all(m[:, :, :3] == 0)
    assert np.array_equal(flow.mirror(m), f)  # twice is the identity


def test_smoothing_over_time_keeps_steady_motion_and_averages_noise():
    rng = np.random.default_rng(0)
    steady = np.broadcast_to(rng.normal(size=(1, 6, 5, 2)).astype(np.float32), (20, 6, 5, 2))
    assert np.allclose(flow.smooth_time(steady, 4.0), steady, atol=1e-6)  # constant in time: unchanged
    noise = rng.normal(size=(64, 6, 5, 2)).astype(np.float32)
    assert flow.smooth_time(noise, 0) is noise  # sigma 0: the fields themselves
    smoothed = flow.smooth_time(noise, 4.0)
    assert smoothed.shape == noise.shape and smoothed.std() < 0.5 * noise.std()  # independent noise shrinks by ~sqrt(2 sqrt(pi) sigma)
    impulse = np.zeros((21, 1, 1, 2), np.float32)
    impulse[10] = 1.0
    spread = flow.smooth_time(impulse, 2.0)[:, 0, 0, 0]
    assert spread.argmax() == 10 and np.isclose(spread.sum(), 1.0, atol=1e-4) and spread[10] < 0.25
    with pytest.raises(FlowError, match="finite sigma"):
        flow.smooth_time(noise, -1.0)


def test_remove_global_takes_away_the_motion_the_whole_face_shares_and_keeps_local_motion():
    t, h, w = 3, 112, 96
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shared = np.zeros((t, h, w, 2), np.float32)
    for k in range(t):  # a drift, a small rotation and a zoom, different in every field
        shared[k, ..., 0] = 0.3 * k + 0.002 * (xx - 48) - 0.003 * k * (yy - 56)
        shared[k, ..., 1] = -0.2 + 0.003 * k * (xx - 48) + 0.002 * (yy - 56)
    assert np.abs(flow.remove_global(shared)).max() < 1e-4  # purely affine: nothing is left
    bump = np.zeros_like(shared)  # a brow raised: a local upward motion of 0.5 px
    bump[1, ..., 1] = -0.5 * np.exp(-((xx - 30) ** 2 + (yy - 30) ** 2) / (2 * 4.0**2))
    left = flow.remove_global(shared + bump)
    assert left[1, 30, 30, 1] == pytest.approx(-0.5, abs=0.03)  # the local motion stays (less its own small affine part)
    assert np.abs(left[1, 90:, 60:]).max() < 0.03 and np.abs(left[[0, 2]]).max() < 1e-4  # and nothing appears elsewhere
    with pytest.raises(FlowError, match=r"\(T, H, W, 2\)"):
        flow.remove_global(np.zeros((4, 5, 2)))
    with pytest.raises(FlowError, match="valid: keep, affine"):
        flow.code(shared, {"normalize": 1.0, "global_motion": "nose"})


def test_a_learned_scale_reads_each_clip_once_until_its_file_changes(prerun, tmp_path):
    import shutil

    m = flow.run(prerun, "dis", jobs=2, progress=False, raw=True, reference="onset", normalize="learned", primary=False)
    caches = list(m["cache"])
    for c in caches:  # a run folder of our own, whose files this test may rewrite
        (tmp_path / c).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(prerun / c, tmp_path / c)
    first = flow.learn_scale(tmp_path, caches, 64, global_motion="affine")
    hits = flow._clip_peak.cache_info().hits
    assert flow.learn_scale(tmp_path, caches, 64, global_motion="affine") == first  # the next fold's scale: no file read again
    assert flow._clip_peak.cache_info().hits == hits + len(caches)
    for c in caches:  # every flow file written again (a recomputed flow stage): four times the motion
        with np.load(tmp_path / c) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["flow64"] = (arrays["flow64"].astype(np.float32) * 4).astype(np.float16)
        np.savez_compressed(tmp_path / c, **arrays)
        st = (tmp_path / c).stat()
        os.utime(tmp_path / c, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert flow.learn_scale(tmp_path, caches, 64, global_motion="affine") == pytest.approx(4 * first, rel=1e-2)


def test_load_munsell_smooths_over_time_from_the_raw_flow(prerun):
    m = flow.run(prerun, "dis", jobs=2, progress=False, raw=True, reference="onset", normalize="learned", primary=False)
    row = m.iloc[0]
    raw = flow.load_flow(prerun, row, 64, kind="flow").astype(np.float32)
    got = flow.load_munsell(prerun, row["cache"], 64, 0.8, tsmooth=5.0)
    assert np.array_equal(got, flow.to_munsell(flow.smooth_time(raw, 5.0), 0.8))
    assert not np.array_equal(got, flow.load_munsell(prerun, row["cache"], 64, 0.8))
    local = flow.load_munsell(prerun, row["cache"], 64, 0.8, tsmooth=5.0, global_motion="affine")
    assert np.array_equal(local, flow.to_munsell(flow.smooth_time(flow.remove_global(raw), 5.0), 0.8))
    caches = list(m["cache"])
    peaks = [float(flow.robust_peak(flow.remove_global(flow.load_flow(prerun, r, 64, kind="flow"))).max()) for _, r in m.iterrows()]
    assert flow.learn_scale(prerun, caches, 64, global_motion="affine") == pytest.approx(np.percentile(peaks, 95), rel=1e-6)
    coded = flow.run(prerun, "dis", jobs=2, progress=False, primary=False)  # Munsell images only, no raw flow
    with pytest.raises(FlowError, match="smoothed over 5 fields"):
        flow.load_munsell(prerun, coded.iloc[0]["cache"], 64, "frame", tsmooth=5.0)
    with pytest.raises(FlowError, match="affine global motion"):
        flow.load_munsell(prerun, coded.iloc[0]["cache"], 64, "frame", global_motion="affine")
    with pytest.raises(FlowError, match="keeps no raw flow"):
        flow.learn_scale(prerun, list(coded["cache"]), 64, global_motion="affine")
    from mexpr import ablation

    total, shared, local = ablation.global_motion_curves(prerun, m.rename(columns={"cache": "flow_cache"})).values()
    assert total.shape == shared.shape == local.shape == (64,)
    assert np.all(total <= shared + local + 1e-6) and np.all(local > 0)  # |affine + local| <= |affine| + |local|, pixel by pixel
