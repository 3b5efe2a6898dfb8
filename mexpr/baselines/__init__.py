"""The paper's three hand-crafted baselines (Peng et al. 2017, *Experimental Results*, Table 4).

* :mod:`mexpr.baselines.stclqp`: Spatiotemporal Completed Local Quantized Patterns (Huang et al.
  2016): sign, magnitude and orientation patterns on the XY, XT and YT planes of the grey clip,
  quantised with codebooks learned on training clips, block histograms.
* :mod:`mexpr.baselines.mdmo`: Main Directional Mean Optical flow (Liu et al. 2015): per ROI of 36
  landmark-defined facial regions, the mean flow of its main direction; 36 x 2 = 72 values.
* :mod:`mexpr.baselines.fdm`: Facial Dynamics Map (Xu et al. 2017): the principal flow direction
  of every spatiotemporal cuboid of the flow sequence.

Each module works on one clip (``features``/``transform``) and on a batch of clips of equal length
(``features_batch``/``transform_many``); all are pure NumPy/OpenCV, no learning except STCLQP's
codebooks.  The two input checks they share live here.

For a whole run:

* :mod:`mexpr.baselines.extract`: ``features(run_dir, method, fields)`` computes one descriptor
  at TIM64 or TIM128 for every clip of a run, in parallel, cached per clip and resumable; a clip
  that fails is recorded with its reason.  STCLQP is cached as raw-pattern histograms, so that
  ``stclqp_fold_features`` can learn each fold's codebooks on its training clips in seconds.
* :mod:`mexpr.baselines.classify`: the paper's SVM for each baseline (polynomial for STCLQP,
  Gaussian for MDMO, linear for FDM), grid-searched on the training clips only, with calibrated
  class probabilities for Eq. 11's fusion.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_flow(flow, name: str = "flow") -> np.ndarray:
    """``flow`` as ``float32 (T, H, W, 2)``, or a ``ValueError`` that says what is wrong: wrong
    rank or last axis, no fields, or NaN/inf (how many, and in which flow fields)."""
    arr = np.asarray(flow)
    if arr.ndim != 4 or arr.shape[-1] != 2:
        raise ValueError(f"{name} must be (T, H, W, 2) (u, v) in pixels per frame, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        per_field = bad.reshape(len(arr), -1).sum(axis=1)
        fields = np.flatnonzero(per_field)
        shown = ", ".join(str(int(f)) for f in fields[:10]) + (" ..." if len(fields) > 10 else "")
        raise ValueError(
            f"{name} has {int(bad.sum())} non-finite values (NaN/inf), first in field {int(fields[0])} (0-based); fields affected: {shown}"
        )
    return arr


def check_same_length(items: Sequence, what: str = "clip") -> int:
    """The common length (first axis) of a batch, or a ``ValueError`` naming the first item whose
    length differs from item 0's."""
    if len(items) == 0:
        raise ValueError(f"no {what}s given")
    lengths = [len(x) for x in items]
    for i, n in enumerate(lengths):
        if n != lengths[0]:
            raise ValueError(
                f"{what}s of different lengths in one batch: {what} {i} has {n}, {what} 0 has {lengths[0]}; interpolate them to one length (e.g. TIM64) first"
            )
    return lengths[0]
