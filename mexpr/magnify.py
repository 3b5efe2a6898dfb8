"""Linear Eulerian video magnification (Wu, Rubinstein, Shih, Guttag, Durand & Freeman 2012, *Eulerian
Video Magnification for Revealing Subtle Changes in the World*, ACM Transactions on Graphics 31(4):65):
make a micro-expression's sub-pixel motion visible without computing any flow.

The idea, for a frame sequence ``I(x, t) = f(x - δ(t))`` that moves by a small ``δ(t)``: to first order
``I(x, t) ≈ f(x) - δ(t) f'(x)``, so a temporal band-pass ``B(x, t)`` of every pixel that keeps the band
of ``δ(t)`` (and drops the still image ``f``) is ``-δ(t) f'(x)``, and ``I + α B ≈ f(x - (1 + α) δ(t))``:
the same picture, moving ``1 + α`` times as far.  Section 3 of the paper; its steps, all vectorised
over the whole clip ``(T, H, W, C)``:

1. a **Laplacian pyramid** of every frame (:func:`laplacian_pyramid`; Burt & Adelson's 5-tap filter),
2. a **temporal band-pass** of every pyramid coefficient along time (:func:`bandpass`: an ideal FFT
   filter or a zero-phase Butterworth), the band given in cycles per clip (or Hz with ``fps``),
3. **amplification** by ``α`` per level, less at fine levels where ``(1 + α) δ`` would exceed an
   eighth of the level's wavelength (the paper's bound, Eq. 14-15, via the cut-off wavelength
   ``λ_c``: :func:`level_alphas`), and
4. the pyramid **collapsed** back into frames (:func:`collapse`).

What it is for here: a pre-processed clip (``(65 or 129, 112, 96, 3)`` uint8, mexpr.preprocess) whose
expression moves less than a pixel is hard to see; magnified 10-20 times it can be watched beside the
Munsell-coded flow that DTSCNN reads (notebook 09).  It is also a pre-processing step in later
micro-expression work; mexpr does not train on magnified clips.  :func:`shift` measures the
displacement between two frames (phase correlation), which the tests use for the known answer.
"""

from __future__ import annotations

import numpy as np

#: Burt & Adelson's 5-tap binomial kernel (what ``cv2.pyrDown`` uses).
KERNEL = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32) / 16.0

#: The temporal filters :func:`bandpass` offers.
FILTERS = ("ideal", "butterworth")


def _blur(x: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """The 5-tap kernel along H and W (axes 1, 2) of ``(T, H, W, C)``, borders reflected as OpenCV's default."""
    from scipy.ndimage import correlate1d

    k = KERNEL * np.float32(gain)
    return correlate1d(correlate1d(x, k, axis=1, mode="mirror"), k, axis=2, mode="mirror")


def pyr_down(x: np.ndarray) -> np.ndarray:
    """One level down: blur, keep every second row and column: ``(T, H, W, C)`` -> ``(T, ⌈H/2⌉, ⌈W/2⌉, C)``."""
    return _blur(x)[:, ::2, ::2]


def pyr_up(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """One level up to ``shape`` (H, W): zeros between the samples, then the kernel times 4."""
    up = np.zeros((x.shape[0], shape[0], shape[1], x.shape[3]), np.float32)
    up[:, ::2, ::2] = x[:, : (shape[0] + 1) // 2, : (shape[1] + 1) // 2]
    return _blur(up, gain=2.0)


def laplacian_pyramid(frames: np.ndarray, levels: int | None = None) -> list[np.ndarray]:
    """The Laplacian pyramid of every frame of ``frames (T, H, W, C)`` at once: ``levels`` band-pass
    levels, finest first, then the low-pass residual (``levels + 1`` arrays of ``(T, h, w, C)``
    float32).  ``levels`` ``None``: down to a residual of about 3 px a side (5 levels at 112 × 96:
    the residual, 4 × 3, holds only the face's overall shading)."""
    x = np.asarray(frames, np.float32)
    if x.ndim != 4:
        raise ValueError(f"frames must be (T, H, W, C), got shape {x.shape}")
    if levels is None:
        levels = max(1, int(np.log2(min(x.shape[1:3]) / 3)))
    pyramid = []
    for _ in range(int(levels)):
        down = pyr_down(x)
        pyramid.append(x - pyr_up(down, x.shape[1:3]))
        x = down
    return pyramid + [x]


def collapse(pyramid: list[np.ndarray]) -> np.ndarray:
    """Frames back from :func:`laplacian_pyramid` (exact: collapse(laplacian_pyramid(x)) == x)."""
    x = pyramid[-1]
    for level in reversed(pyramid[:-1]):
        x = pyr_up(x, level.shape[1:3]) + level
    return x


def bandpass(x: np.ndarray, band: tuple[float, float], fps: float | None = None, kind: str = "ideal", order: int = 2) -> np.ndarray:
    """``x`` band-passed along its first axis (time): frequencies in ``band`` = (low, high) kept, in
    cycles per clip (``fps`` ``None``) or in Hz (``fps`` the clip's frame rate).  ``kind``:
    ``"ideal"`` (zero every FFT bin outside the band: the filter Wu et al. use for motion) or
    ``"butterworth"`` (``order``, run forwards and backwards so it shifts nothing in time; on a
    clip of 65 frames and a band down to one cycle per clip it strays at the clip's ends).
    The still part (0 Hz) is never kept."""
    x = np.asarray(x, np.float32)
    T = x.shape[0]
    lo, hi = (float(b) * (T / fps if fps else 1.0) for b in band)  # cycles per clip
    if not 0 <= lo < hi:
        raise ValueError(f"band must be (low, high) with 0 <= low < high, got {band}")
    if kind == "ideal":
        spectrum = np.fft.rfft(x, axis=0)
        freq = np.fft.rfftfreq(T, d=1.0 / T)  # cycles per clip
        keep = (freq >= lo) & (freq <= hi) & (freq > 0)
        spectrum[~keep] = 0
        return np.fft.irfft(spectrum, n=T, axis=0).astype(np.float32)
    if kind == "butterworth":
        from scipy.signal import butter, sosfiltfilt

        nyquist = T / 2.0
        edges = [max(lo, 1e-3) / nyquist, min(hi / nyquist, 0.999)]
        sos = butter(order, edges, btype="bandpass", output="sos")
        return sosfiltfilt(sos, x - x.mean(0), axis=0, padlen=min(3 * (2 * order + 1), T - 1)).astype(np.float32)
    raise ValueError(f"kind must be one of {FILTERS}, not {kind!r}")


def level_alphas(alpha: float, levels: int, lambda_c: float = 16.0) -> np.ndarray:
    """The amplification of each Laplacian level (finest first): ``α``, less where the level's
    wavelength ``λ`` (about ``2^(l+2)`` px at level ``l``) is below the cut-off ``λ_c``.  Wu et al.
    bound ``(1 + α) δ < λ / 8``; with ``δ = λ_c / (8 (1 + α))``, the largest motion ``α`` may magnify
    at ``λ_c``, a level gets ``α_l = (1 + α) λ / λ_c - 1``, at most ``α`` and at least 0."""
    lam = 2.0 ** (np.arange(int(levels)) + 2)
    return np.clip((1.0 + alpha) * lam / float(lambda_c) - 1.0, 0.0, float(alpha))


def magnify(
    frames: np.ndarray,
    alpha: float = 10.0,
    band: tuple[float, float] = (0.5, 8.0),
    fps: float | None = None,
    levels: int | None = None,
    lambda_c: float = 16.0,
    kind: str = "ideal",
    low_pass: bool = False,
) -> np.ndarray:
    """Linear Eulerian motion magnification of a clip ``frames (T, H, W, C)`` (uint8 or float; the
    same dtype comes back, uint8 clipped to 0-255): every pyramid level band-passed over time
    (``band``, ``fps``, ``kind``: :func:`bandpass`), amplified by ``α`` (:func:`level_alphas`
    with ``lambda_c`` px) and added back.  ``low_pass``: amplify the pyramid's low-pass residual too
    (the coarsest shading; Wu et al. leave it out, as here by default: it carries lighting changes,
    flicker above all, more than motion).
    ``alpha`` 0 returns the clip unchanged.

    The default band, 0.5-8 cycles per clip, keeps a micro-expression's onset -> apex -> offset
    (about one cycle over a pre-processed clip) and drops what changes faster (sensor noise, flicker)."""
    x = np.asarray(frames)
    if alpha == 0:
        return x.copy()
    pyramid = laplacian_pyramid(x, levels)
    gains = list(level_alphas(alpha, len(pyramid) - 1, lambda_c)) + [alpha if low_pass else 0.0]
    out = collapse([p + np.float32(g) * bandpass(p, band, fps, kind) if g > 0 else p for p, g in zip(pyramid, gains)])
    if x.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(x.dtype)


def shift(a: np.ndarray, b: np.ndarray, border: int = 8, iterations: int = 20) -> tuple[float, float]:
    """The translation ``(dx, dy)`` in px that moves image ``a`` onto image ``b`` (``(H, W)`` or
    ``(H, W, C)``, averaged over colour), ``b(x) ≈ a(x - d)``: Lucas & Kanade's least squares for one
    translation over the whole image (``border`` px left out), iterated (Gauss-Newton, cubic-spline
    warps) to a few thousandths of a pixel on smooth images.  (OpenCV's phase correlation and its
    warps round sub-pixel shifts, to the nearest 1/32 px for the warps, so neither is used.)"""
    from scipy.ndimage import shift as spline_shift

    def grey(x):
        x = np.asarray(x, np.float32)
        return x.mean(-1) if x.ndim == 3 else x

    a, b = grey(a), grey(b)
    inner = (slice(border, a.shape[0] - border), slice(border, a.shape[1] - border))
    d = np.zeros(2)
    for _ in range(iterations):
        w = spline_shift(a, (d[1], d[0]), order=3, mode="reflect")  # a(x - d)
        gy, gx = np.gradient(w)
        G = np.stack([gx[inner].ravel(), gy[inner].ravel()], 1).astype(np.float64)
        r = (b - w)[inner].ravel().astype(np.float64)
        step = -np.linalg.lstsq(G, r, rcond=None)[0]  # b - a(x - d) ≈ -∇w · Δd
        d += step
        if np.abs(step).max() < 1e-5:
            break
    return float(d[0]), float(d[1])
