"""Where DTSCNN looks: Grad-CAM and integrated gradients on a stream's Munsell flow volume (notebook 09).

**Grad-CAM** (Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra 2017, *Grad-CAM: Visual Explanations
from Deep Networks via Gradient-based Localization*, ICCV).  For a class ``c`` and a convolution's
output ``A`` (after its ReLU; ``(T', H', W', K)``: DTSCNN's convolutions are 3D, so it is a volume),
filter ``k`` weighs ``w_k = mean over (t, i, j) of ∂y_c / ∂A_k[t, i, j]``, ``y_c`` the class score
before the softmax (layer ``fc``), and the relevance is ``ReLU(Σ_k w_k A_k)``: where, and when, the
filters that raise ``y_c`` fire.  It is upsampled (trilinear) to the stream's input, ``(fields, 112, 96)``,
to lie over the frames (:func:`grad_cam`), summed over space as a time curve (:func:`time_curve`:
which fields matter) and over time as a map (:func:`spatial_map`).

**HiResCAM** (Draelos & Carin 2020, *Use HiResCAM instead of Grad-CAM for faithful explanations of
convolutional neural networks*, arXiv:2011.08891) keeps the gradient where it is: ``ReLU(Σ_k
∂y_c/∂A_k ⊙ A_k)``, place by place (``variant="hirescam"``).  The difference matters for DTSCNN:
Table 2 flattens pool4 into ``fc``, which weighs each of the 3 × 3 places separately, so the mean
gradient of Grad-CAM mixes the places' weights and can light a filter wherever it fires, even where
``fc`` ignores it (a class's map can even be all zero); HiResCAM's terms add up to ``y_c`` minus its
bias, place by place.  Both are computed from the same gradients (:data:`VARIANTS`).

Which convolution: Table 2's conv4 (the last, :data:`LAST_CONV`) has a temporal kernel of 4 with no
temporal padding over pool3's 4 steps, so its output has one time step (``1 × 7 × 6``): it says
*where* on the face, not *when*.  conv3 (:data:`TIME_LAYER`, ``8 × 14 × 12``) still has 8 steps of
8 fields (DTSCNN64) or 16 fields (DTSCNN128): its Grad-CAM gives the time curve.

**Integrated gradients** (Sundararajan, Taly & Yan 2017, *Axiomatic Attribution for Deep Networks*,
ICML) add what Grad-CAM cannot give: one number per input pixel of every field.  The gradient of
``y_c`` is averaged along the straight path from a baseline clip to the clip and multiplied by
their difference (:func:`integrated_gradients`); the attributions add up to ``y_c(clip) -
y_c(baseline)`` (completeness).  Our baseline is the clip with no motion at all: white everywhere,
which is zero flow on the Munsell wheel.

Measuring a map against what moved: :func:`mass_inside` is the share of a map's mass that falls in a
region (e.g. the Action Units the synthetic generator moved, :func:`mexpr.groundtruth.au_regions`),
beside the share a map spread evenly would put there (the region's area: chance);
:func:`overlap_table` and :func:`class_summary` do it per clip and per class.  :func:`fold_relevance`
computes the maps of a trained stream on a fold's test clips.

Everything here reads a Keras model as a chain of layers (DTSCNN is one) and uses TensorFlow's
gradients (``tf.GradientTape``).
"""

from __future__ import annotations

import functools
import os

import numpy as np

from mexpr.datasets import CLASSES
from mexpr.settings import CROP_H, CROP_W

#: Table 2's last convolution: Grad-CAM's usual layer (one time step: *where*).
LAST_CONV = "conv4"
#: The last convolution that still resolves time (8 steps): the time curve's layer.
TIME_LAYER = "conv3"
#: The layer whose output is the class score ``y_c`` (DTSCNN's logits, before the softmax).
SCORE_LAYER = "fc"
#: The no-motion clip (white: zero flow on the Munsell wheel), integrated gradients' baseline.
NO_MOTION = 255
#: How the gradients weigh the feature maps: Grad-CAM's mean per filter, HiResCAM's place by place.
VARIANTS = ("grad-cam", "hirescam")


def _as_batch(model, clips) -> tuple[np.ndarray, bool]:
    """``clips`` as a float32 batch the model takes, and whether one clip (no batch axis) was given."""
    x = np.asarray(clips)
    want = tuple(model.inputs[0].shape[1:])
    one = x.ndim == len(want)
    if one:
        x = x[None]
    if tuple(x.shape[1:]) != want:
        raise ValueError(f"{model.name} takes clips of shape (N, {', '.join(map(str, want))}), got {np.asarray(clips).shape}")
    return x.astype(np.float32), one


def _max_pool(layer, h):
    """``layer`` (a Keras ``MaxPooling3D``, valid, strides = pool size) as TensorFlow ops whose
    gradient is one subgradient: TensorFlow's own 3D max-pooling gradient gives the *whole* gradient
    to every tied maximum of a window (8 times too much on a flat 2×2×2 patch, and a Munsell clip is
    white wherever nothing moves), which breaks integrated gradients' completeness and tilts
    Grad-CAM's weights.  Here time is pooled by ``reduce_max`` (ties share the gradient) and space by
    a 2D max-pooling (the first maximum takes it); the values are the layer's."""
    import tensorflow as tf

    kt, kh, kw = layer.pool_size
    if tuple(layer.strides) != (kt, kh, kw) or layer.padding != "valid":
        return layer(h)
    _, T, H, W, C = h.shape
    T2, H2, W2 = T // kt, H // kh, W // kw
    h = h[:, : T2 * kt, : H2 * kh, : W2 * kw]
    h = tf.reduce_max(tf.reshape(h, (-1, T2, kt, H2 * kh, W2 * kw, C)), axis=2)
    h = tf.nn.max_pool2d(tf.reshape(h, (-1, H2 * kh, W2 * kw, C)), (kh, kw), (kh, kw), "VALID")
    return tf.reshape(h, (-1, T2, H2, W2, C))


def _chain(model, x, layers=()):
    """Run the float batch ``x`` through ``model``'s layers in order (inference mode) up to the score
    layer (:data:`SCORE_LAYER`, or the last); returns ({each of ``layers``: its output}, the scores).
    3D max-pooling layers run as :func:`_max_pool`."""
    names = [lay.name for lay in model.layers]
    missing = [name for name in layers if name not in names]
    if missing:
        convs = [n for n in names if n.startswith("conv") and "pad" not in n]
        raise ValueError(f"{model.name} has no layer {missing[0]!r}; its convolutions: {convs}")
    stop = SCORE_LAYER if SCORE_LAYER in names else names[-1]
    acts, h = {}, x
    for lay in model.layers:
        if type(lay).__name__ == "InputLayer":
            continue
        h = _max_pool(lay, h) if type(lay).__name__ == "MaxPooling3D" else lay(h, training=False)
        if lay.name in layers:
            acts[lay.name] = h
        if lay.name == stop:
            break
    return acts, h


def class_scores(model, clips, batch_size: int = 8) -> np.ndarray:
    """The class scores ``y_c`` (logits before the softmax) of ``clips``: ``(N, classes)``."""
    x, one = _as_batch(model, clips)
    out = np.concatenate([np.asarray(_chain(model, x[i : i + batch_size])[1], np.float32) for i in range(0, len(x), batch_size)])
    return out[0] if one else out


def _targets(scores: np.ndarray, class_index) -> np.ndarray:
    """The class each clip is explained for: ``None`` = the predicted one, an int = that class for
    all, or one per clip."""
    if class_index is None:
        return scores.argmax(-1)
    return np.broadcast_to(np.asarray(class_index, int), (len(scores),)).copy()


@functools.lru_cache(maxsize=64)
def _zoom_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Linear interpolation from ``n_in`` to ``n_out`` samples, cells aligned on their edges, as a
    ``(n_out, n_in)`` matrix (``scipy.ndimage.zoom`` of the identity)."""
    from scipy.ndimage import zoom

    return zoom(np.eye(n_in, dtype=np.float64), (n_out / n_in, 1), order=1, grid_mode=True, mode="nearest").astype(np.float32)


def upsample(volume: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """A ``(..., T', H', W')`` volume stretched over ``shape`` = (T, H, W) by trilinear interpolation,
    cells aligned on their edges (as ``cv2.resize`` does): one interpolation matrix per axis (it is
    separable), so a batch of DTSCNN128 maps takes milliseconds."""
    v = np.asarray(volume, np.float32)
    zt, zh, zw = (_zoom_matrix(n, m) for n, m in zip(v.shape[-3:], shape))
    out = np.einsum("...thw,Tt->...Thw", v, zt, optimize=True)
    out = np.einsum("...thw,Hh->...tHw", out, zh, optimize=True)
    out = np.einsum("...thw,Ww->...thW", out, zw, optimize=True)
    return np.maximum(out, 0)


def _relevance(model, x: np.ndarray, layers: tuple[str, ...], class_index, variants: tuple[str, ...], batch_size: int) -> dict:
    """``{(variant, layer): (N, T', H', W')}`` for the float batch ``x``, one gradient pass per batch."""
    import tensorflow as tf

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"variant must be one of {VARIANTS}, not {unknown[0]!r}")
    out = {(v, name): [] for v in variants for name in layers}
    for i in range(0, len(x), batch_size):
        xb = tf.constant(x[i : i + batch_size])
        with tf.GradientTape() as tape:
            acts, scores = _chain(model, xb, layers)
            target = _targets(np.asarray(scores), class_index if np.ndim(class_index) == 0 else np.asarray(class_index)[i : i + batch_size])
            score = tf.reduce_sum(tf.gather(tf.cast(scores, tf.float32), target, axis=1, batch_dims=1))
        grads = tape.gradient(score, [acts[name] for name in layers])
        for name, g in zip(layers, grads):
            a, g = np.asarray(acts[name], np.float32), np.asarray(g, np.float32)  # (B, T', H', W', K)
            for v in variants:
                weights = g.mean(axis=(1, 2, 3), keepdims=True) if v == "grad-cam" else g  # w_k, or the gradient in place
                out[v, name].append(np.maximum((weights * a).sum(-1), 0.0))
    return {k: np.concatenate(parts) for k, parts in out.items()}


def grad_cam(
    model,
    clips,
    layer: str | tuple[str, ...] = LAST_CONV,
    class_index=None,
    batch_size: int = 4,
    upsampled: bool = True,
    variant: str = "grad-cam",
):
    """Grad-CAM of ``clips`` (uint8 Munsell images ``(N, fields, 112, 96, 3)``, or one clip) for
    ``class_index`` (``None``: each clip's predicted class; an int; or one per clip) at ``layer``
    (``variant="hirescam"``: HiResCAM, the module text).

    Returns the relevance ``ReLU(Σ_k w_k A_k)`` (module text), float32 ``>= 0``: upsampled to
    ``(N, fields, 112, 96)`` (``upsampled``) or at the layer's ``(N, T', H', W')``; no batch axis
    for one clip.  Not normalised: divide by the sum for shares, by the max for display.  Several
    layers (a tuple) are computed in one pass and returned as ``{layer: relevance}``."""
    names = (layer,) if isinstance(layer, str) else tuple(layer)
    x, one = _as_batch(model, clips)
    rel = _relevance(model, x, names, class_index, (variant,), batch_size)
    cams = {}
    for name in names:
        cam = rel[variant, name]
        cam = upsample(cam, x.shape[1:4]) if upsampled else cam
        cams[name] = cam[0] if one else cam
    return cams[layer] if isinstance(layer, str) else cams


def integrated_gradients(model, clip, class_index: int | None = None, baseline=NO_MOTION, steps: int = 16, batch_size: int = 8) -> np.ndarray:
    """Integrated gradients of one clip (uint8 ``(fields, 112, 96, 3)``) for ``class_index``
    (``None``: the predicted class), from ``baseline`` (a clip, or one value for every pixel: the
    default is no motion), with ``steps`` points of the path (midpoint rule).  Returns ``(fields,
    112, 96)`` float32, the attribution of each pixel summed over its three colours; positive where
    the pixel raises ``y_c`` over the baseline's.  Its sum approaches ``y_c(clip) - y_c(baseline)``
    as ``steps`` grows (completeness)."""
    import tensorflow as tf

    x, one = _as_batch(model, clip)
    if not one and len(x) != 1:
        raise ValueError("integrated_gradients explains one clip at a time")
    x = x[0]
    base = np.broadcast_to(np.asarray(baseline, np.float32), x.shape)
    target = int(_targets(class_scores(model, x[None]), class_index)[0])
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    total = np.zeros(x.shape, np.float32)
    for i in range(0, steps, batch_size):
        a = alphas[i : i + batch_size].reshape(-1, 1, 1, 1, 1)
        path = tf.constant(base + a * (x - base))
        with tf.GradientTape() as tape:
            tape.watch(path)
            _, scores = _chain(model, path)
            score = tf.reduce_sum(tf.cast(scores, tf.float32)[:, target])
        total += np.asarray(tape.gradient(score, path), np.float32).sum(0)
    return ((x - base) * total / steps).sum(-1)


# --------------------------------------------------------------------------------------------
# reading the maps


def time_curve(relevance: np.ndarray) -> np.ndarray:
    """Each field's share of the relevance: ``(..., T, H, W)`` -> ``(..., T)``, summing to 1."""
    r = np.asarray(relevance, np.float64).sum((-2, -1))
    return (r / np.maximum(r.sum(-1, keepdims=True), 1e-12)).astype(np.float32)


def spatial_map(relevance: np.ndarray) -> np.ndarray:
    """Where the relevance lies, over the whole clip: ``(..., T, H, W)`` summed over time ->
    ``(..., H, W)``, summing to 1."""
    r = np.asarray(relevance, np.float64).sum(-3)
    return (r / np.maximum(r.sum((-2, -1), keepdims=True), 1e-12)).astype(np.float32)


def mass_inside(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The share of each map's mass inside its mask: ``maps (..., H, W) >= 0``, ``masks`` bool of the
    same shape -> ``(...)``.  A map spread evenly scores the mask's area share (chance)."""
    m = np.asarray(maps, np.float64)
    return (m * np.asarray(masks, bool)).sum((-2, -1)) / np.maximum(m.sum((-2, -1)), 1e-12)


def overlap_table(maps: np.ndarray, masks: np.ndarray, clips, labels):
    """One row per clip: ``clip``, ``label``, ``inside`` (:func:`mass_inside`), ``chance`` (the
    mask's area share), ``ratio`` (inside / chance; 1 = no better than an even spread) and
    ``peak_inside`` (whether the map's maximum lies in the mask: the "pointing game")."""
    import pandas as pd

    maps, masks = np.asarray(maps), np.asarray(masks, bool)
    inside = mass_inside(maps, masks)
    chance = masks.mean((-2, -1))
    flat = maps.reshape(len(maps), -1).argmax(1)
    peak = masks.reshape(len(masks), -1)[np.arange(len(masks)), flat]
    return pd.DataFrame(
        {
            "clip": list(clips),
            "label": list(labels),
            "inside": inside,
            "chance": chance,
            "ratio": inside / np.maximum(chance, 1e-12),
            "peak_inside": peak,
        }
    )


def class_summary(table):
    """:func:`overlap_table` per class (in N/O/P/S order, then all clips): the number of clips and the
    mean ``inside``, ``chance``, ``ratio`` and ``peak_inside``."""
    import pandas as pd

    cols = ["inside", "chance", "ratio", "peak_inside"]
    rows = [
        {"label": c, "clips": int((table["label"] == c).sum())} | table.loc[table["label"] == c, cols].astype(float).mean().to_dict() for c in CLASSES
    ]
    rows.append({"label": "all", "clips": len(table)} | table[cols].astype(float).mean().to_dict())
    return pd.DataFrame(rows).set_index("label")


def class_means(maps: np.ndarray, labels) -> dict[str, np.ndarray]:
    """The mean map of each class present in ``labels`` (maps ``(N, ...)``, each normalised first)."""
    maps = np.asarray(maps, np.float64)
    maps = maps / np.maximum(maps.reshape(len(maps), -1).sum(1), 1e-12).reshape((-1,) + (1,) * (maps.ndim - 1))
    labels = np.asarray(labels)
    return {c: maps[labels == c].mean(0).astype(np.float32) for c in CLASSES if (labels == c).any()}


def near_apex(curves: np.ndarray, apex, half_width: int) -> tuple[np.ndarray, np.ndarray]:
    """How much of each time curve (``(N, fields)``, :func:`time_curve`) lies within ``half_width``
    fields of the field that ends at the clip's apex (``apex``: :func:`apex_position`), and the share
    an even curve would put there (chance: the window's length over the fields).  Two ``(N,)`` arrays."""
    curves = np.asarray(curves, np.float64)
    fields = curves.shape[1]
    centre = np.rint(np.asarray(apex, np.float64)).astype(int) - 1
    window = np.abs(np.arange(fields)[None] - centre[:, None]) <= half_width
    return (curves * window).sum(1) / np.maximum(curves.sum(1), 1e-12), window.mean(1)


def apex_position(onset, apex, offset, fields: int):
    """Where the apex lies on a stream's time line, in frames of the ``fields + 1``-frame clip
    (field ``t`` ends at frame ``t + 1``): the pre-processed clip runs from onset to offset."""
    onset, apex, offset = (np.asarray(v, np.float64) for v in (onset, apex, offset))
    return (apex - onset) / np.maximum(offset - onset, 1) * fields


# --------------------------------------------------------------------------------------------
# a trained stream on a fold's test clips


def fold_relevance(
    run_dir: str | os.PathLike,
    config,
    fields: int,
    fold: int = 0,
    layers: tuple[str, ...] = (LAST_CONV, TIME_LAYER),
    variants: tuple[str, ...] = VARIANTS,
    target: str = "true",
    batch_size: int = 4,
    clips=None,
) -> dict:
    """Grad-CAM (and HiResCAM: ``variants``) of the trained ``fields`` stream of ``fold`` (a
    :class:`mexpr.train.Config`) at each of ``layers``, on the fold's test clips (or ``clips``, rows
    of the same table), each coded as the stream was trained (:func:`mexpr.evaluate.stream_flow`).
    ``target``: ``"true"`` explains each clip's own class, ``"predicted"`` the network's answer.

    Returns ``{"clips" (subject_id/clip), "labels", "y", "predicted" (the arg-max class score),
    "maps": {(variant, layer): (N, 112, 96)}, "time": {(variant, layer): (N, fields)}`` (the
    :func:`spatial_map` and :func:`time_curve` of each clip's relevance) ``, "apex" (N,)``
    (:func:`apex_position`)``}``."""
    from mexpr import evaluate, models, train
    from mexpr.datasets import clip_keys

    if target not in ("true", "predicted"):
        raise ValueError(f"target must be 'true' or 'predicted', not {target!r}")
    layers, variants = tuple(layers), tuple(variants)
    keys = [(v, name) for v in variants for name in layers]
    model = models.load(train.stream_dir(run_dir, config, fields, fold) / "model.keras")
    coding = evaluate.stream_flow(run_dir, config, fields, fold)
    test = train.fold_split(run_dir, config, fold)[1] if clips is None else clips
    y = np.array([CLASSES.index(c) for c in test["label"]], np.int64)
    rows = [r for _, r in test.iterrows()]
    maps, curves, predicted = {k: [] for k in keys}, {k: [] for k in keys}, []
    for i in range(0, len(rows), batch_size):  # a batch at a time: the 128 stream's test clips fill gigabytes
        x = np.stack([train.clip_munsell(run_dir, r, fields, coding) for r in rows[i : i + batch_size]]).astype(np.float32)
        predicted.append(class_scores(model, x).argmax(1))
        rel = _relevance(model, x, layers, y[i : i + batch_size] if target == "true" else None, variants, batch_size)
        for k in keys:
            cam = upsample(rel[k], x.shape[1:4])
            maps[k].append(spatial_map(cam))
            curves[k].append(time_curve(cam))
    join = lambda parts, shape: np.concatenate(parts) if parts else np.zeros((0,) + shape, np.float32)  # noqa: E731
    return {
        "clips": clip_keys(test).to_numpy(dtype=str),
        "labels": test["label"].to_numpy(dtype=str),
        "y": y,
        "predicted": np.concatenate(predicted) if predicted else np.zeros(0, np.int64),
        "maps": {k: join(maps[k], (CROP_H, CROP_W)) for k in keys},
        "time": {k: join(curves[k], (fields,)) for k in keys},
        "apex": apex_position(test["onset"], test["apex"], test["offset"], fields),
    }
