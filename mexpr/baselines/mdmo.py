"""MDMO: Main Directional Mean Optical flow (Liu et al. 2015), one of the paper's baselines.

Liu, Zhang, Yan, Wang, Zhao & Fu, *A Main Directional Mean Optical Flow Feature for Spontaneous
Micro-Expression Recognition*, IEEE Trans. Affective Computing 7(4), 2016 (online 2015).  Peng et
al. 2017 (*Experimental Results*, MDMO; Table 4) run it on each clip's TIM64 and TIM128 flow
sequences and classify with a Gaussian SVM.

The descriptor, as implemented here:

1. **36 ROIs** (:data:`ROIS`): polygons over the 68 iBUG landmarks plus 12 points derived from
   them (:data:`DERIVED_POINTS`), rasterised by :func:`roi_masks`.
2. Per flow field and ROI (:func:`main_directions`): each vector in polar form (magnitude rho,
   angle theta); the angles binned into ``n_bins`` = 8 direction bins (HOOF-style); the bin with
   the most vectors is the ROI's *main direction*; its (mean magnitude, mean angle) is the ROI's
   value for that field.
3. Per clip (:func:`features`): the per-field values averaged over the clip's fields (magnitude:
   arithmetic mean; angle: direction of the mean of the per-field main-direction vectors
   ``rho * (cos theta, sin theta)``, i.e. a magnitude-weighted circular mean, so that angles near
   +-pi average correctly), and the 36 magnitudes divided by the largest of them
   (``normalize=True``; our reading of Liu et al.'s normalisation, which removes
   subject-dependent motion amplitude).
   The feature is ``(rho_1, theta_1, ..., rho_36, theta_36)``: 72 values.

Conventions: flow (u, v) in pixels per frame, u along x (right), v along y (down, image rows);
angles are ``atan2(v, u)`` in those image coordinates, radians in [-pi, pi): 0 = rightwards,
+pi/2 = downwards, -pi/2 = upwards, -pi = leftwards.  Direction bin k is centred on k * 45 deg
(covering +-22.5 deg), so the 8 compass directions sit at bin centres.

Departures from Liu et al. (each deliberate, each documented).  The full text was not at hand
when this was written; the steps above follow the abstract (36 ROIs, 72-d, optical-flow-driven
alignment) and our reading of the method, so check details against the paper before quoting.

* **ROIs.** Liu et al. draw 36 ROIs on their landmarks in a figure, FACS-motivated and (as we
  recall) leaving out the eyes (blinks).  A figure is not machine-readable, so :data:`ROIS` is
  our own table in the same spirit: 17 regions per face half (forehead, brow-to-lid, lateral
  canthus, infraorbital, cheek, nose wing, nasolabial fold, upper lip, lips, lip corner, chin),
  mirrored, plus glabella and nasal root on the midline; eyes excluded.  Each row names its
  Action Units.
* **Optical-flow-driven alignment** (Liu et al.) is **not** done: the project's
  pre-processing already aligns every frame (LWM, docs/DESIGN.md sec. 2), and Peng et al. feed MDMO the
  same pre-processed clips as DTSCNN.
* **Reference frame.** As we read Liu et al., each frame's flow is measured from the clip's
  first frame; Peng et al. apply MDMO to the sequence of flow fields between consecutive frames.
  ``reference="consecutive"`` (default) follows Peng et al.; ``reference="first"`` composes the
  consecutive fields into displacements from the first frame (:func:`accumulate`) first.
* Ties between equally full bins go to the lowest bin index (``numpy.argmax``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mexpr.baselines import check_flow, check_same_length
from mexpr.settings import CROP_H, CROP_W

#: Number of ROIs and of direction bins (Liu et al.).
N_ROIS = 36
N_BINS = 8

#: Points derived from the 68 landmarks, numbered on from 68: each is an affine combination
#: ``sum(w * landmark[i])`` (weights sum to 1), so it moves with the face.
#: 68..77: forehead points F17..F26, each brow point moved "up" by 0.2 x (nasal root 27 - chin 8),
#: about 13 px at the 96 x 112 template; 78 / 79: cheek points halfway between the outer jaw
#: point 1 / 15 (at eye level) and the nose ridge point 29.
DERIVED_POINTS: dict[int, tuple[tuple[int, float], ...]] = {
    **{68 + k: ((17 + k, 1.0), (27, 0.2), (8, -0.2)) for k in range(10)},
    78: ((1, 0.5), (29, 0.5)),
    79: ((15, 0.5), (29, 0.5)),
}

#: The 36 ROIs as polygons of point indices (0..67: iBUG 68-point landmarks, 0-based;
#: 68..79: :data:`DERIVED_POINTS`).  "Image-left" is the subject's right.  Pairs (2k, 2k + 1) are
#: mirror images (image-left, image-right); 34 and 35 sit on the midline.  Like Liu et al.'s
#: ROI figure, the regions follow the muscles of FACS Action Units, cover brows, forehead, cheeks,
#: nose, mouth and chin, and leave out the eyes themselves.
ROIS: list[tuple[int, ...]] = [
    (17, 18, 19, 70, 69, 68),  # 0: lateral forehead, image-left; AU2
    (26, 25, 24, 75, 76, 77),  # 1: lateral forehead, image-right; AU2
    (19, 20, 21, 72, 71, 70),  # 2: medial forehead, image-left; AU1
    (24, 23, 22, 73, 74, 75),  # 3: medial forehead, image-right; AU1
    (17, 18, 37, 36),  # 4: outer brow to upper lid, image-left; AU2/AU5
    (26, 25, 44, 45),  # 5: outer brow to upper lid, image-right; AU2/AU5
    (18, 19, 38, 37),  # 6: mid brow to upper lid, image-left; AU4/AU5
    (25, 24, 43, 44),  # 7: mid brow to upper lid, image-right; AU4/AU5
    (19, 20, 21, 39, 38),  # 8: inner brow to inner canthus, image-left; AU1/AU4
    (24, 23, 22, 42, 43),  # 9: inner brow to inner canthus, image-right; AU1/AU4
    (0, 17, 36, 1),  # 10: lateral canthus (crow's feet), image-left; AU6
    (16, 26, 45, 15),  # 11: lateral canthus (crow's feet), image-right; AU6
    (1, 36, 41, 40, 78),  # 12: infraorbital, outer, image-left; AU6/AU7
    (15, 45, 46, 47, 79),  # 13: infraorbital, outer, image-right; AU6/AU7
    (40, 39, 28, 29, 78),  # 14: infraorbital, inner (beside the nose), image-left; AU9
    (47, 42, 28, 29, 79),  # 15: infraorbital, inner (beside the nose), image-right; AU9
    (1, 78, 48, 3),  # 16: cheek (zygomaticus), image-left; AU6/AU12
    (15, 79, 54, 13),  # 17: cheek (zygomaticus), image-right; AU6/AU12
    (78, 29, 30, 31),  # 18: nose wing, image-left; AU9/AU10
    (79, 29, 30, 35),  # 19: nose wing, image-right; AU9/AU10
    (78, 31, 49, 48),  # 20: nasolabial fold, image-left; AU10/AU11
    (79, 35, 53, 54),  # 21: nasolabial fold, image-right; AU10/AU11
    (31, 32, 33, 51, 50, 49),  # 22: upper lip skin, image-left; AU10
    (35, 34, 33, 51, 52, 53),  # 23: upper lip skin, image-right; AU10
    (48, 49, 50, 51, 57, 58, 59),  # 24: lips (half), image-left; AU12/AU15/AU25
    (54, 53, 52, 51, 57, 56, 55),  # 25: lips (half), image-right; AU12/AU15/AU25
    (3, 48, 4),  # 26: beside the lip corner, image-left; AU12/AU14
    (13, 54, 12),  # 27: beside the lip corner, image-right; AU12/AU14
    (4, 48, 59, 5),  # 28: below the lip corner, image-left; AU15
    (12, 54, 55, 11),  # 29: below the lip corner, image-right; AU15
    (5, 59, 58, 7, 6),  # 30: chin, lateral, image-left; AU15/AU17
    (11, 55, 56, 9, 10),  # 31: chin, lateral, image-right; AU15/AU17
    (58, 57, 8, 7),  # 32: chin, medial, image-left; AU17
    (56, 57, 8, 9),  # 33: chin, medial, image-right; AU17
    (21, 72, 73, 22, 27),  # 34: glabella; AU4
    (39, 27, 42, 28),  # 35: nasal root; AU9
]

#: A short name for every ROI, in :data:`ROIS` order.
ROI_NAMES: list[str] = [
    f"{name} ({side})"
    for name in [
        "lateral forehead",
        "medial forehead",
        "outer brow to upper lid",
        "mid brow to upper lid",
        "inner brow to inner canthus",
        "lateral canthus",
        "infraorbital, outer",
        "infraorbital, inner",
        "cheek",
        "nose wing",
        "nasolabial fold",
        "upper lip skin",
        "lips",
        "beside lip corner",
        "below lip corner",
        "chin, lateral",
        "chin, medial",
    ]
    for side in ("image-left", "image-right")
] + ["glabella", "nasal root"]

assert len(ROIS) == len(ROI_NAMES) == N_ROIS


# --------------------------------------------------------------------------------------------
# ROIs


def _check_landmarks(landmarks) -> np.ndarray:
    if landmarks is None:
        from mexpr.face import TEMPLATE

        landmarks = TEMPLATE
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"landmarks must be (68, 2) (x, y) pixel coordinates in iBUG order, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError(f"landmarks have {int((~np.isfinite(pts)).sum())} non-finite values (NaN/inf)")
    return pts


def landmark_points(landmarks=None) -> np.ndarray:
    """The 68 landmarks followed by the 12 :data:`DERIVED_POINTS`: ``float64 (80, 2)`` (x, y)
    pixels.  ``landmarks``: ``(68, 2)`` (x, y) in iBUG order; default the crop's
    :data:`mexpr.face.TEMPLATE`."""
    pts = _check_landmarks(landmarks)
    derived = np.array([sum(w * pts[i] for i, w in combo) for _, combo in sorted(DERIVED_POINTS.items())])
    return np.vstack([pts, derived])


def roi_polygons(landmarks=None) -> list[np.ndarray]:
    """The 36 ROI polygons, each ``float64 (n_vertices, 2)`` (x, y) pixels, in :data:`ROIS`
    order (not clipped to the image)."""
    pts = landmark_points(landmarks)
    return [pts[list(roi)] for roi in ROIS]


def roi_masks(landmarks=None, shape: tuple[int, int] = (CROP_H, CROP_W)) -> np.ndarray:
    """The 36 ROIs rasterised: ``bool (36, H, W)``, True where a pixel's centre lies inside the
    ROI's polygon, clipped to the image.

    ``landmarks``: ``(68, 2)`` (x, y) pixel coordinates, iBUG order; default the pre-processing
    template, which is valid for every pre-processed clip (its first frame is warped onto it).
    ``shape``: (H, W) of the flow fields.  Raises ``ValueError`` naming the ROI if one is empty
    after clipping (e.g. landmarks that lie outside the crop).
    """
    from skimage.draw import polygon2mask

    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be (H, W) with H, W >= 1, got {shape}")
    h, w = int(shape[0]), int(shape[1])
    masks = np.zeros((N_ROIS, h, w), bool)
    for k, poly in enumerate(roi_polygons(landmarks)):
        masks[k] = polygon2mask((h, w), poly[:, ::-1])  # (row, col) = (y, x)
        if not masks[k].any():
            lo, hi = poly.min(axis=0).round(1), poly.max(axis=0).round(1)
            raise ValueError(
                f"ROI {k} ({ROI_NAMES[k]}) is empty inside the {h} x {w} image: its polygon spans x {lo[0]}..{hi[0]}, y {lo[1]}..{hi[1]}; are the landmarks in this crop's pixel coordinates?"
            )
    return masks


# --------------------------------------------------------------------------------------------
# main directions


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angles wrapped into [-pi, pi)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _check_masks(masks, hw: tuple[int, int]) -> np.ndarray:
    m = np.asarray(masks)
    if m.ndim != 3 or m.shape[1:] != tuple(hw):
        raise ValueError(f"masks must be (n_rois, H, W) = (n, {hw[0]}, {hw[1]}) to match the flow, got shape {m.shape}")
    m = m.astype(bool)
    empty = np.flatnonzero(~m.reshape(len(m), -1).any(axis=1))
    if len(empty):
        raise ValueError(f"ROI {int(empty[0])} has an empty mask")
    return m


def _main_directions(flow: np.ndarray, masks: np.ndarray, n_bins: int) -> np.ndarray:
    """``(T, H, W, 2)`` checked flow, ``(K, H, W)`` bool masks -> ``float32 (T, K, 2)``.

    Vectorised over fields, ROIs and pixels: every (field, ROI, bin) gets a slot in one
    ``bincount`` (ROI pixels are gathered once, so overlapping ROIs would also work)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    t_len, k_len = len(flow), len(masks)
    roi, pix = np.nonzero(masks.reshape(k_len, -1))  # every (ROI, pixel) pair
    f = flow.reshape(t_len, -1, 2)[:, pix].astype(np.float64)  # (T, N, 2)
    width = 2 * np.pi / n_bins
    mag = np.hypot(f[..., 0], f[..., 1])
    ang = np.arctan2(f[..., 1], f[..., 0])
    b = np.floor((ang + width / 2) / width).astype(np.int64) % n_bins  # bin k centred on k * width
    delta = _wrap(ang - b * width)  # angle relative to its bin's centre, in [-width/2, width/2)
    slot = ((np.arange(t_len)[:, None] * k_len + roi[None, :]) * n_bins + b).ravel()
    size = t_len * k_len * n_bins
    count = np.bincount(slot, minlength=size).reshape(t_len, k_len, n_bins)
    msum = np.bincount(slot, weights=mag.ravel(), minlength=size).reshape(t_len, k_len, n_bins)
    dsum = np.bincount(slot, weights=delta.ravel(), minlength=size).reshape(t_len, k_len, n_bins)
    main = np.argmax(count, axis=2)[..., None]  # (T, K, 1); ties -> lowest bin
    c = np.take_along_axis(count, main, 2)[..., 0]
    out = np.empty((t_len, k_len, 2), np.float32)
    out[..., 0] = np.take_along_axis(msum, main, 2)[..., 0] / c
    out[..., 1] = _wrap(main[..., 0] * width + np.take_along_axis(dsum, main, 2)[..., 0] / c)
    return out


def main_directions(flow_field, masks=None, n_bins: int = N_BINS) -> np.ndarray:
    """Each ROI's main direction in one flow field (Liu et al.): ``float32 (K, 2)``
    (mean magnitude in pixels per frame, mean angle in radians, [-pi, pi), image coordinates)
    of the vectors in the ROI's fullest direction bin.

    ``flow_field``: ``(H, W, 2)`` (u, v) pixels per frame, or ``(T, H, W, 2)`` for all fields
    at once (returns ``(T, K, 2)``).  ``masks``: ``bool (K, H, W)`` from :func:`roi_masks`
    (default: the template's 36 ROIs at the flow's size).  Useful for drawing the arrows.
    """
    arr = np.asarray(flow_field)
    single = arr.ndim == 3
    flow = check_flow(arr[None] if single else arr, "flow_field")
    if masks is None:
        masks = roi_masks(None, flow.shape[1:3])
    masks = _check_masks(masks, flow.shape[1:3])
    out = _main_directions(flow, masks, int(n_bins))
    return out[0] if single else out


# --------------------------------------------------------------------------------------------
# clip features


def accumulate(flow) -> np.ndarray:
    """Compose consecutive flow fields into displacements from the first frame:
    ``float32 (T, H, W, 2)``, field t = motion from frame 0 to frame t + 1, pixels.

    ``D_0 = F_0``, ``D_t(x) = D_{t-1}(x) + F_t(x + D_{t-1}(x))`` (bilinear lookup, border
    replicated), so a uniform translation adds up exactly.
    """
    import cv2

    f = check_flow(flow)
    _, h, w, _ = f.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = np.empty_like(f)
    out[0] = f[0]
    for t in range(1, len(f)):
        d = out[t - 1]
        moved = cv2.remap(f[t], gx + d[..., 0], gy + d[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[t] = d + moved
    return out


def features(flow, landmarks=None, *, n_bins: int = N_BINS, normalize: bool = True, reference: str = "consecutive", masks=None) -> np.ndarray:
    """The MDMO feature of one clip: ``float32 (72,)`` = ``(rho_1, theta_1, ..., rho_36,
    theta_36)``.

    ``flow``: ``(T, H, W, 2)`` (u, v) in pixels per frame between consecutive frames (e.g.
    ``mexpr.flow.compute``: 64 fields for TIM64).  ``landmarks``: ``(68, 2)`` (x, y) of the
    clip's first frame; default the pre-processing template.  ``masks``: precomputed
    :func:`roi_masks` (overrides ``landmarks``).

    rho_k: the clip mean of ROI k's main-direction magnitude, pixels per frame, divided by the
    largest rho over the 36 ROIs when ``normalize`` (so in [0, 1]; all zeros stay zeros).
    theta_k: the direction of the mean main-direction vector, radians in [-pi, pi) (0 when the ROI
    never moves).  ``reference``: ``"consecutive"`` (Peng et al.) or ``"first"`` (each field
    measured from the first frame, as Liu et al.; see :func:`accumulate`).
    """
    f = check_flow(flow)
    if reference == "first":
        f = accumulate(f)
    elif reference != "consecutive":
        raise ValueError(f"reference must be 'consecutive' or 'first', got {reference!r}")
    if masks is None:
        masks = roi_masks(landmarks, f.shape[1:3])
    masks = _check_masks(masks, f.shape[1:3])
    if len(masks) != N_ROIS:
        raise ValueError(f"MDMO needs {N_ROIS} ROI masks, got {len(masks)}")
    per_field = _main_directions(f, masks, int(n_bins)).astype(np.float64)  # (T, 36, 2)
    rho, theta = per_field[..., 0], per_field[..., 1]
    rho_mean = rho.mean(axis=0)
    vx, vy = (rho * np.cos(theta)).sum(axis=0), (rho * np.sin(theta)).sum(axis=0)
    theta_mean = np.where(np.hypot(vx, vy) > 0, _wrap(np.arctan2(vy, vx)), 0.0)
    if normalize and rho_mean.max() > 0:
        rho_mean = rho_mean / rho_mean.max()
    return np.stack([rho_mean, theta_mean], axis=1).reshape(-1).astype(np.float32)


def features_batch(flows: Sequence, landmarks=None, **kwargs) -> np.ndarray:
    """MDMO features of N clips: ``float32 (N, 72)``.

    ``flows``: N flow sequences ``(T, H, W, 2)`` of one length T (a ``ValueError`` names the
    first that differs).  ``landmarks``: None (template for all), one ``(68, 2)`` array for all,
    or a list of N of them.  ``kwargs``: as :func:`features`.
    """
    check_same_length(flows, "flow sequence")
    n = len(flows)
    if landmarks is None or np.ndim(landmarks) == 2:
        per_clip = [landmarks] * n
    elif len(landmarks) == n:
        per_clip = list(landmarks)
    else:
        raise ValueError(f"landmarks must be None, one (68, 2) array or one per clip ({n}), got {len(landmarks)}")
    out = np.empty((n, 2 * N_ROIS), np.float32)
    cache: dict[tuple, np.ndarray] = {}  # ROI masks per (landmarks, H, W): usually one for all clips
    for i, (flow, lm) in enumerate(zip(flows, per_clip)):
        try:
            f = check_flow(flow, f"flow sequence {i}")
            masks = kwargs.get("masks")
            if masks is None:
                key = (None if lm is None else np.asarray(lm, np.float64).tobytes(), f.shape[1:3])
                if key not in cache:
                    cache[key] = roi_masks(lm, f.shape[1:3])
                masks = cache[key]
            out[i] = features(f, lm, **{**kwargs, "masks": masks})
        except ValueError as e:
            raise ValueError(f"clip {i}: {e}") from e
    return out
