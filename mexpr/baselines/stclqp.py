"""STCLQP: Spatiotemporal Completed Local Quantized Patterns (Huang et al. 2016), a baseline.

Huang, Zhao, Hong, Zheng & Pietikäinen, *Spontaneous facial micro-expression analysis using
Spatiotemporal Completed Local Quantized Patterns*, Neurocomputing 175:564-578, 2016.  Peng et al.
2017 (*Experimental Results*, STCLQP; Table 4) compute it on each pre-processed clip (TIM64 and
TIM128) and classify with a polynomial SVM tuned by grid search.

The descriptor, as implemented here, on a grey clip ``V`` of shape (T, H, W):

1. **Three orthogonal planes** (as LBP-TOP): XY (appearance), XT and YT (motion).  On each plane
   every voxel has P = 8 neighbours at the corners and edge midpoints of a square of radius
   ``radius`` pixels along X/Y and ``temporal_radius`` frames along T (no interpolation), in the
   plane's angular order phi_p = p * 45 deg, turning from the plane's first axis to its second
   (X to Y, X to T, Y to T); bit p of a code belongs to neighbour p.  ``d_p = V(neighbour p) -
   V(centre)``.
2. **Completed patterns** (three components, each an 8-bit code per voxel and plane):
   * sign: bit p = ``d_p >= 0`` (the LBP);
   * magnitude: bit p = ``|d_p| >= c``, c = the mean of ``|d_p|`` over the clip's plane (CLBP_M);
   * orientation: each voxel's in-plane gradient ``g = sum_p d_p (cos phi_p, sin phi_p)``
     quantised into ``n_orientations`` sectors centred on k * 360 / n_orientations deg (plus one
     "flat" label where ``|g| < 1e-3``);
     bit p = the neighbour's label equals the centre's (where the local orientation is coherent).
   Codes are computed at every voxel of the interior (``radius`` from the image border,
   ``temporal_radius`` from the first/last frame), so all nine code volumes share one shape
   (:func:`raw_patterns`).
3. **Quantisation** (the "Q" of LQP, Hussain & Triggs 2012): per plane and component, a codebook
   of ``n_codewords`` words is learned **from training clips only** (:meth:`STCLQP.fit`):
   ``"kmeans"`` clusters the observed 8-bit patterns (as 0/1 vectors, weighted by how often they
   occur) and maps every one of the 256 patterns to its nearest centroid; ``"frequent"`` keeps the
   ``n_codewords - 1`` most frequent patterns and sends every other pattern to the last word.
   Fewer observed patterns than words: each is its own word, the rest of the words stay empty.
4. **Block histograms**: the interior's XY extent is split into ``blocks`` = (rows, cols) blocks
   (each spanning all frames); per block, plane and component a histogram of codewords, L1
   normalised (sums to 1).  Feature: ``(plane, component, block, codeword)`` flattened, C order,
   length ``3 * 3 * rows * cols * n_codewords`` (4608 with the defaults), whatever T, H, W.
5. **The same, from raw-pattern histograms** (for cross-validation: codebooks are learned per
   fold, the patterns are not): :func:`raw_histograms` counts every block's *raw* 8-bit patterns,
   ``(3, 3, rows * cols, 256)``, once per clip.  A codebook maps each raw pattern to one word, so a
   block's codeword histogram is its raw histogram summed over the patterns of each word, then
   L1-normalised: :meth:`STCLQP.transform_histograms` gives exactly :meth:`STCLQP.transform`'s
   feature, and :meth:`STCLQP.fit_histograms` the same codebooks as :meth:`STCLQP.fit` (the
   pattern counts are the histograms summed over blocks and clips).  A fold then costs a k-means
   and a matrix product, not a pass over every clip's voxels.

Departures from Huang et al. (deliberate, documented):

* The full text of Huang et al. was not at hand when this was written; it follows their abstract
  (sign, magnitude and orientation components on three orthogonal planes; "efficient vector
  quantization and codebook selection" per component, learning "compact and discriminative
  codebooks") and CLBP/LQP, on which STCLQP builds.  The orientation component above is our
  reading; their codebook *selection* is discriminative (it uses class labels), ours is
  unsupervised (k-means or frequency) so that ``fit`` needs no labels.  Check against the paper
  before quoting numbers as STCLQP's.
* Square 8-neighbourhoods (no bilinear sampling on a circle), one radius per axis.
* The grey conversion of RGB clips is ITU-R BT.601 luma (as OpenCV's ``COLOR_RGB2GRAY``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mexpr.baselines import check_same_length

PLANES = ("XY", "XT", "YT")
COMPONENTS = ("sign", "magnitude", "orientation")
P = 8  # neighbours per plane
CODEBOOKS = ("kmeans", "frequent")
_FLAT_EPS = 1e-3  # grey levels: below this gradient norm a voxel has no orientation
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
#: (axis of the plane's horizontal direction, axis of its vertical direction) in a (T, H, W) array
_PLANE_AXES = {"XY": (2, 1), "XT": (2, 0), "YT": (1, 0)}
_PHI = np.arange(P) * 2 * np.pi / P
_UNIT = np.stack([np.round(np.cos(_PHI)), np.round(np.sin(_PHI))], axis=1).astype(int)  # (8, 2) square corners/edges
_DIR = (_UNIT / np.linalg.norm(_UNIT, axis=1, keepdims=True)).astype(np.float32)  # exact (cos, sin) phi_p: sin(pi) is 0


def as_grey(clip) -> np.ndarray:
    """A clip as ``float32 (T, H, W)`` grey levels: ``(T, H, W, 3)`` RGB (BT.601 luma) or
    ``(T, H, W)`` grey, uint8 or float (finite)."""
    arr = np.asarray(clip)
    if arr.ndim == 4 and arr.shape[-1] == 3:
        arr = arr.astype(np.float32)
        arr = _LUMA[0] * arr[..., 0] + _LUMA[1] * arr[..., 1] + _LUMA[2] * arr[..., 2]  # elementwise: equal pixels stay equal
    elif arr.ndim != 3:
        raise ValueError(f"a clip must be (T, H, W) grey or (T, H, W, 3) RGB, got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"a clip must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        frames = np.flatnonzero(bad.reshape(len(arr), -1).any(axis=1))
        raise ValueError(f"clip has {int(bad.sum())} non-finite values (NaN/inf), first in frame {int(frames[0])} (0-based)")
    return arr


def _offsets(plane: str, radius: int, temporal_radius: int) -> list[tuple[int, int, int]]:
    """The 8 neighbour offsets (dt, dy, dx) of a plane, in angular order."""
    h_axis, v_axis = _PLANE_AXES[plane]
    r = {0: temporal_radius, 1: radius, 2: radius}
    out = []
    for ch, cv in _UNIT:
        o = [0, 0, 0]
        o[h_axis] += int(ch) * r[h_axis]
        o[v_axis] += int(cv) * r[v_axis]
        out.append(tuple(o))
    return out


def raw_patterns(clip, radius: int = 1, temporal_radius: int = 1, n_orientations: int = 8) -> np.ndarray:
    """The completed local patterns of a clip: ``uint8 (3, 3, T', H', W')`` raw 8-bit codes,
    indexed by plane (:data:`PLANES`), component (:data:`COMPONENTS`) and interior voxel
    (``T' = T - 2 temporal_radius``, ``H' = H - 2 radius``, ``W' = W - 2 radius``).

    ``clip``: ``(T, H, W)`` grey or ``(T, H, W, 3)`` RGB.  Vectorised: one shifted view per
    neighbour; the loops run over the 3 planes and 8 neighbours only.
    """
    v = as_grey(clip)
    if radius < 1 or temporal_radius < 1 or n_orientations < 1:
        raise ValueError(f"radius, temporal_radius and n_orientations must be >= 1, got {radius}, {temporal_radius}, {n_orientations}")
    t, h, w = v.shape
    if t <= 2 * temporal_radius or h <= 2 * radius or w <= 2 * radius:
        raise ValueError(
            f"clip of shape (T, H, W) = {v.shape} has no interior for radius {radius}, temporal_radius {temporal_radius}: needs T > {2 * temporal_radius}, H and W > {2 * radius}"
        )
    rt, r = temporal_radius, radius
    pad = np.pad(v, ((rt, rt), (r, r), (r, r)), mode="edge")
    full = (slice(rt, rt + t), slice(r, r + h), slice(r, r + w))  # the clip inside ``pad``
    inner = (slice(rt, t - rt), slice(r, h - r), slice(r, w - r))  # the interior inside the clip
    weights = (1 << np.arange(P)).astype(np.uint8)
    out = np.empty((len(PLANES), len(COMPONENTS), t - 2 * rt, h - 2 * r, w - 2 * r), np.uint8)
    for i, plane in enumerate(PLANES):
        offs = _offsets(plane, r, rt)
        # differences at every voxel of the clip (edge-replicated beyond it), for the gradient
        d = np.stack([pad[tuple(slice(s.start + o, s.stop + o) for s, o in zip(full, off))] - v for off in offs])  # (8, T, H, W)
        di = d[(slice(None), *inner)]
        out[i, 0] = np.tensordot(weights, di >= 0, axes=1)
        mag = np.abs(di)
        out[i, 1] = np.tensordot(weights, mag >= mag.mean(), axes=1)
        gx = np.tensordot(_DIR[:, 0], d, axes=1)
        gy = np.tensordot(_DIR[:, 1], d, axes=1)
        width = 2 * np.pi / n_orientations  # sector k centred on k * width, so the axes sit mid-sector
        sector = (np.floor((np.arctan2(gy, gx) + width / 2) / width).astype(np.int16)) % n_orientations
        label = np.where(np.hypot(gx, gy) < _FLAT_EPS, n_orientations, sector)  # (T, H, W)
        centre = label[inner]
        same = np.stack([label[tuple(slice(s.start + o, s.stop + o) for s, o in zip(inner, off))] == centre for off in offs])
        out[i, 2] = np.tensordot(weights, same, axes=1)
        del d, di, mag, gx, gy
    return out


def block_index(shape: tuple[int, int], blocks: tuple[int, int]) -> np.ndarray:
    """Each interior pixel's block: ``int (H', W')``, row-major over the ``blocks`` = (rows, cols)
    grid, blocks split as evenly as possible (``floor(i * rows / H')``)."""
    h, w = shape
    rows, cols = blocks
    if h < rows or w < cols:
        raise ValueError(f"the clip's interior ({h} x {w}) is smaller than the block grid {tuple(blocks)}")
    return ((np.arange(h) * rows) // h)[:, None] * cols + ((np.arange(w) * cols) // w)[None, :]


def raw_histograms(clip, radius: int = 1, temporal_radius: int = 1, n_orientations: int = 8, blocks: tuple[int, int] = (4, 4)) -> np.ndarray:
    """How often each raw 8-bit pattern occurs in each block: ``int32 (3, 3, rows * cols, 256)``,
    indexed by plane (:data:`PLANES`), component (:data:`COMPONENTS`), block (row-major, as in
    :meth:`STCLQP.transform`) and pattern; counts, not normalised (every voxel of the interior
    counted once per plane and component).

    Independent of any codebook, so it can be computed once per clip and cached;
    :meth:`STCLQP.fit_histograms` and :meth:`STCLQP.transform_histograms` turn it into the
    STCLQP feature for any codebook (see the module docstring, step 5).
    """
    if len(blocks) != 2 or min(blocks) < 1:
        raise ValueError(f"blocks must be (rows, cols) >= 1, got {blocks}")
    codes = raw_patterns(clip, radius, temporal_radius, n_orientations)  # (3, 3, T', H', W')
    n_blocks = int(blocks[0]) * int(blocks[1])
    block = block_index(codes.shape[3:], (int(blocks[0]), int(blocks[1])))
    slot = (block[None, None, None].astype(np.intp) << 8) | codes  # block * 256 + pattern
    offset = (np.arange(9, dtype=np.intp) * n_blocks * 256).reshape(3, 3, 1, 1, 1)
    counts = np.bincount((slot + offset).ravel(), minlength=9 * n_blocks * 256)
    return counts.reshape(len(PLANES), len(COMPONENTS), n_blocks, 256).astype(np.int32)


def _bits() -> np.ndarray:
    """All 256 patterns as 0/1 vectors: ``float64 (256, 8)``, bit p of pattern n in column p."""
    return ((np.arange(256)[:, None] >> np.arange(P)) & 1).astype(np.float64)


class STCLQP:
    """STCLQP descriptor with codebooks learned on training clips (see the module docstring).

    >>> desc = STCLQP().fit(train_clips)            # training clips only
    >>> x = desc.transform(test_clip)               # float32 (desc.n_features,)
    >>> X = desc.transform_many(test_clips)         # float32 (N, desc.n_features)

    or, from cached raw-pattern histograms (:func:`raw_histograms`), with identical results:

    >>> desc = STCLQP().fit_histograms([desc.raw_histograms(c) for c in train_clips])
    >>> X = desc.transform_histograms(np.stack([desc.raw_histograms(c) for c in test_clips]))

    Parameters: ``n_codewords`` per plane and component; ``blocks`` = (rows, cols) of the XY
    block grid; ``radius`` (pixels) and ``temporal_radius`` (frames) of the neighbourhoods;
    ``n_orientations`` sectors of the orientation component; ``codebook`` ``"kmeans"`` or
    ``"frequent"``; ``seed`` for k-means.

    After :meth:`fit`: ``pattern_counts_`` ``int64 (3, 3, 256)`` (how often each raw pattern
    occurred in the training clips), ``lut_`` ``int16 (3, 3, 256)`` (raw pattern -> codeword) and
    ``codebooks_`` ``float64 (3, 3, n_codewords, 8)`` (the words as bit vectors, NaN where unused).
    """

    def __init__(
        self,
        n_codewords: int = 32,
        blocks: tuple[int, int] = (4, 4),
        radius: int = 1,
        temporal_radius: int = 1,
        n_orientations: int = 8,
        codebook: str = "kmeans",
        seed: int = 0,
    ):
        if not 2 <= n_codewords <= 256:
            raise ValueError(f"n_codewords must be in 2..256, got {n_codewords}")
        if len(blocks) != 2 or min(blocks) < 1:
            raise ValueError(f"blocks must be (rows, cols) >= 1, got {blocks}")
        if codebook not in CODEBOOKS:
            raise ValueError(f"codebook must be one of {CODEBOOKS}, got {codebook!r}")
        self.n_codewords = int(n_codewords)
        self.blocks = (int(blocks[0]), int(blocks[1]))
        self.radius = int(radius)
        self.temporal_radius = int(temporal_radius)
        self.n_orientations = int(n_orientations)
        self.codebook = codebook
        self.seed = seed

    def __repr__(self) -> str:
        return f"STCLQP(n_codewords={self.n_codewords}, blocks={self.blocks}, radius={self.radius}, temporal_radius={self.temporal_radius}, n_orientations={self.n_orientations}, codebook={self.codebook!r}, seed={self.seed})"

    @property
    def n_features(self) -> int:
        """Feature length: 3 planes x 3 components x rows x cols x n_codewords."""
        return len(PLANES) * len(COMPONENTS) * self.blocks[0] * self.blocks[1] * self.n_codewords

    def raw_patterns(self, clip) -> np.ndarray:
        """:func:`raw_patterns` with this descriptor's radii: ``uint8 (3, 3, T', H', W')``."""
        return raw_patterns(clip, self.radius, self.temporal_radius, self.n_orientations)

    def raw_histograms(self, clip) -> np.ndarray:
        """:func:`raw_histograms` with this descriptor's radii and blocks:
        ``int32 (3, 3, rows * cols, 256)``."""
        return raw_histograms(clip, self.radius, self.temporal_radius, self.n_orientations, self.blocks)

    @property
    def raw_length(self) -> int:
        """Length of a flattened :meth:`raw_histograms`: 3 x 3 x rows x cols x 256."""
        return len(PLANES) * len(COMPONENTS) * self.blocks[0] * self.blocks[1] * 256

    def _as_histograms(self, raw, what: str = "raw histograms") -> tuple[np.ndarray, bool]:
        """Raw histograms as ``(N, 3, 3, rows * cols, 256)`` (a view when possible) and whether one
        clip's was given: ``(3, 3, B, 256)`` or its flattened ``(D,)`` for one clip, ``(N, 3, 3, B,
        256)`` or ``(N, D)`` for N.  ``ValueError`` for another size (e.g. other blocks), or
        negative or non-finite counts (naming the first bad clip)."""
        arr = np.asarray(raw)
        shape = (len(PLANES), len(COMPONENTS), self.blocks[0] * self.blocks[1], 256)
        if arr.ndim in (1, 4):
            single, arr = True, arr[None]
        elif arr.ndim in (2, 5):
            single = False
        else:
            raise ValueError(f"{what} must be (3, 3, blocks, 256), (N, 3, 3, blocks, 256) or flattened (D,) / (N, D), got shape {arr.shape}")
        if arr[0].size != self.raw_length:
            raise ValueError(
                f"{what} of {arr[0].size} values per clip do not fit this STCLQP's {self.blocks} blocks (3 x 3 x {shape[2]} x 256 = {self.raw_length}); compute them with the same blocks"
            )
        if arr.dtype.kind not in "fiu":
            raise ValueError(f"{what} must be numeric counts, got dtype {arr.dtype}")
        arr = arr.reshape(len(arr), *shape)
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
            if bad.any():
                raise ValueError(
                    f"{what}: {int(bad.sum())} clip(s) have NaN/inf counts (first: clip {int(np.flatnonzero(bad)[0])}); leave out clips whose extraction failed"
                )
        neg = (arr < 0).reshape(len(arr), -1).any(axis=1)
        if neg.any():
            raise ValueError(f"{what}: clip {int(np.flatnonzero(neg)[0])} has negative counts")
        return arr, single

    # ---------------------------------------------------------------- codebooks

    def fit(self, clips: Sequence, y=None) -> STCLQP:
        """Learn the nine codebooks from **training clips only**: a list of ``(T, H, W)`` grey
        or ``(T, H, W, 3)`` RGB clips of one length T.  ``y`` is ignored (unsupervised).
        Returns ``self``."""
        check_same_length(clips, "clip")
        counts = np.zeros((len(PLANES), len(COMPONENTS), 256), np.int64)
        for i, clip in enumerate(clips):
            try:
                codes = self.raw_patterns(clip)
            except ValueError as e:
                raise ValueError(f"clip {i}: {e}") from e
            for a in range(len(PLANES)):
                for b in range(len(COMPONENTS)):
                    counts[a, b] += np.bincount(codes[a, b].ravel(), minlength=256)
        return self._fit_counts(counts)

    def fit_histograms(self, histograms, y=None) -> STCLQP:
        """Learn the codebooks from the **training clips'** :meth:`raw_histograms` (a list of
        ``(3, 3, B, 256)``, or an array ``(N, 3, 3, B, 256)`` or ``(N, D)`` flattened; integer
        counts, any numeric dtype).  Identical to :meth:`fit` on those clips: the pattern counts
        are the histograms summed over clips and blocks.  Returns ``self``."""
        if isinstance(histograms, (list, tuple)):
            if len(histograms) == 0:
                raise ValueError("no raw histograms given")
            histograms = np.stack([np.asarray(h) for h in histograms])
        arr, single = self._as_histograms(histograms, "training raw histograms")
        if single:
            raise ValueError("fit_histograms needs a batch of clips' raw histograms, (N, 3, 3, blocks, 256) or (N, D); got one clip's")
        if len(arr) == 0:
            raise ValueError("no raw histograms given")
        counts = np.zeros((len(PLANES), len(COMPONENTS), 256), np.int64)
        for a in range(len(PLANES)):  # per plane: a (N, B, 256) slice, not the whole batch in int64
            part = np.rint(arr[:, a]).astype(np.int64) if arr.dtype.kind == "f" else arr[:, a].astype(np.int64)
            counts[a] = part.sum(axis=(0, 2))
        return self._fit_counts(counts)

    def _fit_counts(self, counts: np.ndarray) -> STCLQP:
        """The nine codebooks from the training pattern counts ``int64 (3, 3, 256)``."""
        lut = np.zeros((len(PLANES), len(COMPONENTS), 256), np.int16)
        books = np.full((len(PLANES), len(COMPONENTS), self.n_codewords, P), np.nan)
        for a in range(len(PLANES)):
            for b in range(len(COMPONENTS)):
                lut[a, b], books[a, b] = self._codebook(counts[a, b])
        self.pattern_counts_, self.lut_, self.codebooks_ = counts, lut, books
        return self

    def _codebook(self, freq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One plane/component: 256 pattern counts -> (LUT (256,), words (K, 8))."""
        k = self.n_codewords
        bits = _bits()
        words = np.full((k, P), np.nan)
        seen = np.flatnonzero(freq)
        seen = seen[np.argsort(-freq[seen], kind="stable")]  # most frequent first
        if self.codebook == "frequent" or len(seen) <= k:
            if len(seen) <= k:
                keep, rest = seen, None
            else:
                keep, rest = seen[: k - 1], k - 1
            words[: len(keep)] = bits[keep]
            lut = np.full(256, -1, np.int16)
            lut[keep] = np.arange(len(keep))
            unseen = lut < 0
            if rest is not None:
                lut[unseen] = rest  # "frequent": every other pattern shares the last word
                words[rest] = np.average(bits[seen[k - 1 :]], axis=0, weights=freq[seen[k - 1 :]])
            else:  # fewer patterns than words: an unseen pattern goes to its nearest (Hamming) seen one
                dist = (bits[unseen, None, :] != bits[None, keep, :]).sum(axis=2)
                lut[unseen] = np.argmin(dist, axis=1)
            return lut, words
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=k, n_init=4, random_state=self.seed).fit(bits[seen], sample_weight=freq[seen].astype(np.float64))
        mass = np.bincount(km.labels_, weights=freq[seen], minlength=k)
        order = np.argsort(-mass, kind="stable")  # word 0 = the most frequent cluster
        centres = km.cluster_centers_[order]
        lut = np.argmin(((bits[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1).astype(np.int16)
        return lut, centres

    # ---------------------------------------------------------------- features

    def _check_fitted(self) -> None:
        if not hasattr(self, "lut_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this STCLQP has no codebooks yet: call fit(training_clips) before transform (fit on training clips only)")

    def codeword_maps(self, clip) -> np.ndarray:
        """Each interior voxel's codeword: ``int16 (3, 3, T', H', W')`` (plane, component, ...)."""
        self._check_fitted()
        codes = self.raw_patterns(clip)
        flat = codes.reshape(len(PLANES), len(COMPONENTS), -1).astype(np.intp)
        return np.take_along_axis(self.lut_, flat, axis=2).reshape(codes.shape)

    def transform(self, clip) -> np.ndarray:
        """The STCLQP feature of one clip: ``float32 (n_features,)``, L1-normalised block
        histograms in (plane, component, block, codeword) order; blocks row-major."""
        words = self.codeword_maps(clip)  # (3, 3, T', H', W')
        _, _, _, h, w = words.shape
        rows, cols = self.blocks
        block = block_index((h, w), self.blocks)  # (H', W')
        n_blocks, k = rows * cols, self.n_codewords
        slot = block[None, None, None] * k + words  # (3, 3, T', H', W')
        offset = (np.arange(9) * n_blocks * k).reshape(3, 3, 1, 1, 1)
        hist = np.bincount((slot + offset).ravel(), minlength=9 * n_blocks * k).reshape(3, 3, n_blocks, k).astype(np.float64)
        hist /= hist.sum(axis=3, keepdims=True)
        return hist.reshape(-1).astype(np.float32)

    def transform_many(self, clips: Sequence) -> np.ndarray:
        """Features of N clips of one length: ``float32 (N, n_features)`` (a ``ValueError`` names
        the first clip whose length differs)."""
        self._check_fitted()
        check_same_length(clips, "clip")
        out = np.empty((len(clips), self.n_features), np.float32)
        for i, clip in enumerate(clips):
            try:
                out[i] = self.transform(clip)
            except ValueError as e:
                raise ValueError(f"clip {i}: {e}") from e
        return out

    def transform_histograms(self, raw) -> np.ndarray:
        """The STCLQP feature from raw-pattern histograms (:meth:`raw_histograms`): one clip's
        ``(3, 3, B, 256)`` or ``(D,)`` -> ``float32 (n_features,)``; N clips' ``(N, 3, 3, B, 256)``
        or ``(N, D)`` -> ``float32 (N, n_features)``.  Equal to :meth:`transform` on the same
        clips: each word's count is the sum of its patterns' counts (exact in float64), then each
        (plane, component, block) histogram is L1-normalised."""
        self._check_fitted()
        arr, single = self._as_histograms(raw)
        n, k = len(arr), self.n_codewords
        onehot = np.zeros((len(PLANES), len(COMPONENTS), 256, k))  # raw pattern -> its word
        a, b, p = np.meshgrid(np.arange(len(PLANES)), np.arange(len(COMPONENTS)), np.arange(256), indexing="ij")
        onehot[a, b, p, self.lut_[a, b, p]] = 1.0
        hist = np.empty((n, len(PLANES), len(COMPONENTS), arr.shape[3], k))
        for i in range(len(PLANES)):  # one (plane, component) at a time keeps the float64 copy small
            for j in range(len(COMPONENTS)):
                hist[:, i, j] = arr[:, i, j].astype(np.float64) @ onehot[i, j]  # integer sums: exact
        hist /= hist.sum(axis=4, keepdims=True)
        out = hist.reshape(n, -1).astype(np.float32)
        return out[0] if single else out
