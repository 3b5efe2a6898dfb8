"""Eulerian motion magnification (mexpr.magnify): the pyramid, the band-pass, and the known answer of a
sub-pixel translation magnified (1 + alpha) times."""

from __future__ import annotations

import numpy as np
import pytest

from mexpr import magnify

FIELDS = 64


def pattern(dx, wavelength: float = 1.0) -> np.ndarray:
    """A smooth texture (wavelengths 24-48 px x ``wavelength``) translated by ``dx[t]`` px to the right,
    drawn exactly (no interpolation): ``(len(dx), 112, 96, 3)`` float32."""
    yy, xx = np.mgrid[0:112, 0:96].astype(np.float64)
    xs = xx - np.asarray(dx, np.float64).reshape(-1, 1, 1)
    s = wavelength
    f = (
        128
        + 40 * np.sin(2 * np.pi * xs / (32 * s) + 0.3)
        + 30 * np.sin(2 * np.pi * (xs / (40 * s) + yy / (28 * s)))
        + 20 * np.cos(2 * np.pi * (yy / (24 * s) - xs / (48 * s)))
    )
    return np.repeat(f[..., None], 3, -1).astype(np.float32)


def test_pyramid_collapses_back_exactly_and_matches_opencv():
    import cv2

    x = np.random.default_rng(0).random((3, 112, 96, 3)).astype(np.float32)
    pyr = magnify.laplacian_pyramid(x)
    assert [p.shape[1:3] for p in pyr] == [(112, 96), (56, 48), (28, 24), (14, 12), (7, 6), (4, 3)]
    assert np.abs(magnify.collapse(pyr) - x).max() < 1e-5
    assert np.abs(magnify.pyr_down(x)[1] - cv2.pyrDown(x[1])).max() < 1e-5
    assert np.abs(magnify.pyr_up(magnify.pyr_down(x), (112, 96))[1] - cv2.pyrUp(cv2.pyrDown(x[1]), dstsize=(96, 112))).max() < 1e-5


def test_bandpass_keeps_the_band_and_drops_the_still_image():
    t = np.arange(FIELDS)
    slow, fast = np.sin(2 * np.pi * 2 * t / FIELDS), np.sin(2 * np.pi * 20 * t / FIELDS)
    x = (5 + slow + fast)[:, None].astype(np.float32)
    assert magnify.bandpass(x, (1, 4))[:, 0] == pytest.approx(slow, abs=1e-5)
    assert magnify.bandpass(x, (10, 40), fps=FIELDS)[:, 0] == pytest.approx(fast, abs=1e-5)  # Hz, with a one-second clip
    butter = magnify.bandpass(x, (1, 4), kind="butterworth")[:, 0]  # on a short clip it strays at the ends
    assert np.abs(butter - slow)[16:-16].max() < 0.2 and abs(butter @ fast) < 0.1 * (slow @ slow)
    with pytest.raises(ValueError, match="band must be"):
        magnify.bandpass(x, (4, 1))


def test_measured_shift_is_exact_on_the_pattern():
    ref = pattern([0.0])[0]
    for d in (0.37, -1.9):
        dx, dy = magnify.shift(ref, pattern([d])[0])
        assert dx == pytest.approx(d, abs=2e-3) and abs(dy) < 2e-3


def test_a_subpixel_translation_moves_one_plus_alpha_times_as_far():
    """The known answer (Wu et al. 2012, section 3): I = f(x - d(t)) band-passed and amplified by alpha
    is f(x - (1 + alpha) d(t)) to first order, for the motion inside the band; outside it, nothing changes."""
    t = np.arange(FIELDS)
    ref = pattern([0.0])[0]
    for cycles, band_has_it in ((2, True), (20, False)):
        d = 0.1 * np.sin(2 * np.pi * cycles * t / FIELDS)  # a tenth of a pixel
        clip = pattern(d)
        for alpha, lambda_c, tol in ((10, 1.0, 0.03), (20, 1.0, 0.06)):
            out = magnify.magnify(clip, alpha=alpha, band=(1, 4), lambda_c=lambda_c)
            moved = np.array([magnify.shift(ref, f) for f in out])
            want = (1 + alpha) * d if band_has_it else d
            assert np.abs(moved[:, 0] - want).max() < tol * (1 + alpha) * 0.1, (cycles, alpha)
            assert np.abs(moved[:, 1]).max() < 0.02
    # with the attenuation of fine levels (lambda_c, Wu et al.'s bound) the gain drops, but not below the coarse levels' alpha
    d = 0.1 * np.sin(2 * np.pi * 2 * t / FIELDS)
    gains = []
    for lambda_c in (1.0, 16.0):
        out = magnify.magnify(pattern(d), alpha=10, band=(1, 4), lambda_c=lambda_c)
        moved = np.array([magnify.shift(ref, f)[0] for f in out])
        gains.append((moved @ d) / (d @ d))
    assert gains[0] == pytest.approx(11, rel=0.03) and 8 < gains[1] < gains[0]


def test_magnify_keeps_dtype_and_does_nothing_at_alpha_zero():
    clip = np.random.default_rng(1).integers(0, 256, (9, 112, 96, 3)).astype(np.uint8)
    assert np.array_equal(magnify.magnify(clip, alpha=0), clip)
    out = magnify.magnify(clip, alpha=5)
    assert out.dtype == np.uint8 and out.shape == clip.shape
    assert list(magnify.level_alphas(10, 5, lambda_c=16)) == [1.75, 4.5, 10, 10, 10]
