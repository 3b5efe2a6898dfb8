"""FDM: Facial Dynamics Map (Xu et al. 2017), one of the paper's baselines.

Xu, Zhang & Wang, *Microexpression Identification and Categorization Using a Facial Dynamics
Map*, IEEE Trans. Affective Computing 8(2):254-267, 2017.  Peng et al. 2017 (*Experimental
Results*, FDM; Table 4) compute it on each clip's TIM64 and TIM128 flow and classify with a
linear SVM.

The descriptor, as implemented here:

1. The flow sequence ``(T, H, W, 2)`` is cut into a grid of spatiotemporal cuboids:
   ``n_t = max(1, T // frames)`` slabs of about ``frames`` flow fields, ``n_y = max(1, H // block)``
   rows and ``n_x = max(1, W // block)`` columns of about ``block`` x ``block`` pixels.  Cuboid
   boundaries split each axis as evenly as possible (``floor(i * size / n)``), so every field and
   pixel belongs to exactly one cuboid; with the defaults (block 8, frames 8) a 64 x 112 x 96
   sequence gives 8 x 14 x 12 cuboids of exactly 8 x 8 x 8.
2. Per cuboid, with flow vectors ``w_i`` (pixels per frame), the **principal direction** is the
   unit vector ``xi`` that maximises ``f(xi) = sum_i max(0, <w_i, xi>)``: the direction along which
   the vectors that move with it add up to the most motion.  Found by the fixed-point iteration
   ``xi <- normalise(sum of the w_i with <w_i, xi> > 0)`` from the direction of the mean flow (or,
   when the mean is zero but the flow is not, the major axis of the vectors' second-moment
   matrix).  ``f`` is convex, so every step is a projected (sub)gradient step on the circle that
   never decreases it; it stops when the kept set no longer changes, or after ``iterations``.
3. Per cuboid the feature is ``strength * xi`` (``weighting="magnitude"``, default) or ``xi``
   (``"unit"``), with ``strength = f(xi) / n_vectors``, pixels per frame; a cuboid with no motion
   gives (0, 0).  The FDM is the ``(n_t, n_y, n_x, 2)`` array of these (dx, dy); the feature is
   it flattened (C order): length ``2 * n_t * n_y * n_x`` (:func:`feature_length`).

Departures from Xu et al. (deliberate, documented):

* Xu et al. compute each cuboid's principal direction with "an iterative optimal strategy"
  (their abstract); the full text was not at hand when this was written.  The objective and
  update above are our precise reading of that idea (start from the flow, drop the vectors that
  disagree with the current estimate, re-estimate), not their formulas; unlike the plain mean it
  ignores a minority of vectors that move against the majority.
* Their pixel-level alignment by optical flow (and coarse alignment/cropping) is **not** done:
  the project's pre-processing already aligns every frame (LWM, docs/DESIGN.md sec. 2), and Peng et al.
  feed FDM the same pre-processed clips as DTSCNN.
* Their cuboid sizes were chosen per dataset; ours are parameters with defaults chosen for the
  96 x 112 crop (block 8 px, 8 fields), not tuned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mexpr.baselines import check_flow, check_same_length

DEFAULT_BLOCK = 8
DEFAULT_FRAMES = 8
DEFAULT_ITERATIONS = 20
WEIGHTINGS = ("magnitude", "unit")


def grid_shape(shape: tuple[int, int, int], block: int = DEFAULT_BLOCK, frames: int = DEFAULT_FRAMES) -> tuple[int, int, int]:
    """``(n_t, n_y, n_x)``: the cuboid grid for a flow sequence of ``shape`` = (T, H, W)."""
    if block < 1 or frames < 1:
        raise ValueError(f"block and frames must be >= 1, got block={block}, frames={frames}")
    t, h, w = (int(s) for s in shape)
    if min(t, h, w) < 1:
        raise ValueError(f"shape must be (T, H, W) with every size >= 1, got {shape}")
    return max(1, t // frames), max(1, h // block), max(1, w // block)


def feature_length(shape: tuple[int, int, int], block: int = DEFAULT_BLOCK, frames: int = DEFAULT_FRAMES) -> int:
    """``2 * n_t * n_y * n_x`` for a flow sequence of ``shape`` = (T, H, W)
    (e.g. (64, 112, 96) -> 2 * 8 * 14 * 12 = 2688 with the defaults)."""
    n_t, n_y, n_x = grid_shape(shape, block, frames)
    return 2 * n_t * n_y * n_x


def _edges(size: int, n: int) -> np.ndarray:
    return (np.arange(n + 1) * size) // n


def _cuboid_sum(x: np.ndarray, edges: list[np.ndarray]) -> np.ndarray:
    """Sum of ``x`` (T, H, W, ...) over every cuboid -> (n_t, n_y, n_x, ...)."""
    for axis, e in enumerate(edges):
        x = np.add.reduceat(x, e[:-1], axis=axis)
    return x


def _per_pixel(x: np.ndarray, sizes: list[np.ndarray]) -> np.ndarray:
    """Spread a per-cuboid array (n_t, n_y, n_x, ...) back over the pixels (T, H, W, ...)."""
    for axis, s in enumerate(sizes):
        x = np.repeat(x, s, axis=axis)
    return x


def _iterate(f: np.ndarray, xi: np.ndarray, edges, sizes, tiny: float, iterations: int) -> np.ndarray:
    """The fixed-point iteration of :func:`principal_directions` over the whole sequence at once,
    from the start directions ``xi`` (n_t, n_y, n_x, 2), until no kept set changes."""
    keep = None
    for _ in range(iterations):
        new_keep = np.einsum("thwc,thwc->thw", f, _per_pixel(xi, sizes)) > 0
        if keep is not None and np.array_equal(new_keep, keep):
            break
        keep = new_keep
        s = _cuboid_sum(f * keep[..., None], edges)
        n = np.linalg.norm(s, axis=-1, keepdims=True)
        xi = np.where(n > tiny, s / np.maximum(n, tiny), xi)  # nothing kept -> keep the direction
    return xi


def _iterate_by_cuboid(f: np.ndarray, xi: np.ndarray, grid, shape, tiny: float, iterations: int) -> np.ndarray:
    """:func:`_iterate` when every cuboid has the same ``shape`` (bt, by, bx): a cuboid whose kept
    set did not change has converged (its sum, hence its direction, would come out the same again),
    so each iteration works on the others only.
    The same projections and the same sums in the same order (``reduceat``, as :func:`_cuboid_sum`),
    hence the same directions as :func:`_iterate`, bit for bit, in about a third of the time."""
    (nt, ny, nx), (bt, by, bx) = grid, shape
    blocks = f.reshape(nt, bt, ny, by, nx, bx, 2).transpose(0, 2, 4, 1, 3, 5, 6).reshape(-1, bt, by, bx, 2)  # one cuboid per row
    xi = xi.reshape(-1, 2).copy()
    active, keep = np.arange(len(blocks)), None
    for _ in range(iterations):
        b, x = blocks[active], xi[active][:, None, None, None, :]
        new_keep = b[..., 0] * x[..., 0] + b[..., 1] * x[..., 1] > 0
        if keep is not None:
            moved = (new_keep != keep).reshape(len(active), -1).any(axis=1)
            active, b, new_keep = active[moved], b[moved], new_keep[moved]
            if not len(active):
                break
        keep = new_keep
        s = b * keep[..., None]
        for axis in (1, 2, 3):  # t, then y, then x: _cuboid_sum's order
            s = np.add.reduceat(s, [0], axis=axis)
        s = s.reshape(-1, 2)
        n = np.linalg.norm(s, axis=-1, keepdims=True)
        xi[active] = np.where(n > tiny, s / np.maximum(n, tiny), xi[active])  # nothing kept -> keep the direction
    return xi.reshape(nt, ny, nx, 2)


def principal_directions(
    flow, block: int = DEFAULT_BLOCK, frames: int = DEFAULT_FRAMES, iterations: int = DEFAULT_ITERATIONS
) -> tuple[np.ndarray, np.ndarray]:
    """Each cuboid's principal direction and strength (see the module docstring).

    ``flow``: ``(T, H, W, 2)`` (u, v) pixels per frame (u right, v down).  Returns
    ``(directions, strength)``: ``float32 (n_t, n_y, n_x, 2)`` unit vectors (x, y), (0, 0) where
    the cuboid does not move, and ``float32 (n_t, n_y, n_x)`` mean positive projection onto the
    direction, pixels per frame.
    """
    f = check_flow(flow).astype(np.float64)
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    grid = grid_shape(f.shape[:3], block, frames)
    edges = [_edges(size, n) for size, n in zip(f.shape[:3], grid)]
    sizes = [np.diff(e) for e in edges]
    count = np.multiply.outer(np.multiply.outer(sizes[0], sizes[1]), sizes[2]).astype(np.float64)  # (n_t, n_y, n_x)
    scale = np.abs(f).max()
    tiny = 1e-12 * max(scale, 1.0)

    # start: the mean flow's direction; the major axis where the mean vanishes but the flow does not
    total = _cuboid_sum(f, edges)  # (n_t, n_y, n_x, 2)
    norm = np.linalg.norm(total, axis=-1, keepdims=True)
    xi = np.where(norm > tiny * count[..., None], total / np.maximum(norm, tiny), 0.0)
    second = _cuboid_sum(f[..., :, None] * f[..., None, :], edges)  # (n_t, n_y, n_x, 2, 2)
    axis_angle = 0.5 * np.arctan2(2 * second[..., 0, 1], second[..., 0, 0] - second[..., 1, 1])
    use_axis = (norm[..., 0] <= tiny * count) & (second[..., 0, 0] + second[..., 1, 1] > tiny)
    xi[use_axis] = np.stack([np.cos(axis_angle), np.sin(axis_angle)], axis=-1)[use_axis]

    if all((sz == sz[0]).all() for sz in sizes):  # cuboids of one size (the defaults on TIM64/TIM128): only the moving ones iterate
        xi = _iterate_by_cuboid(f, xi, grid, [int(sz[0]) for sz in sizes], tiny, iterations)
    else:
        xi = _iterate(f, xi, edges, sizes, tiny, iterations)
    proj = np.einsum("thwc,thwc->thw", f, _per_pixel(xi, sizes))
    strength = _cuboid_sum(np.maximum(proj, 0.0), edges) / count
    xi = np.where((strength > 0)[..., None], xi, 0.0)
    return xi.astype(np.float32), strength.astype(np.float32)


def features(
    flow, *, block: int = DEFAULT_BLOCK, frames: int = DEFAULT_FRAMES, weighting: str = "magnitude", iterations: int = DEFAULT_ITERATIONS
) -> np.ndarray:
    """The FDM feature of one clip: ``float32 (2 * n_t * n_y * n_x,)``, the per-cuboid (dx, dy)
    in C order over (n_t, n_y, n_x) (:func:`feature_length`).

    ``flow``: ``(T, H, W, 2)`` (u, v) pixels per frame between consecutive frames (e.g. 64
    fields for TIM64).  ``block``: cuboid width/height in pixels; ``frames``: cuboid depth in
    flow fields.  ``weighting``: ``"magnitude"`` -> strength x direction (pixels per frame);
    ``"unit"`` -> the direction alone.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    xi, strength = principal_directions(flow, block, frames, iterations)
    fdm = xi * strength[..., None] if weighting == "magnitude" else xi
    return fdm.reshape(-1).astype(np.float32)


def features_batch(flows: Sequence, **kwargs) -> np.ndarray:
    """FDM features of N clips: ``float32 (N, D)``.  ``flows``: N sequences ``(T, H, W, 2)`` of
    one length T (a ``ValueError`` names the first that differs) and one (H, W); ``kwargs`` as
    :func:`features`."""
    check_same_length(flows, "flow sequence")
    rows = []
    for i, flow in enumerate(flows):
        try:
            rows.append(features(flow, **kwargs))
        except ValueError as e:
            raise ValueError(f"clip {i}: {e}") from e
        if len(rows[-1]) != len(rows[0]):
            raise ValueError(
                f"clip {i}: its flow of shape {np.shape(flow)} gives {len(rows[-1])} FDM values, clip 0 gives {len(rows[0])}; give every clip the same (H, W)"
            )
    return np.stack(rows)
