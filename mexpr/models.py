"""DTSCNN64 and DTSCNN128 (Peng et al. 2017, Table 2) as Keras 3 functional models.

Keras layout is ``(T, H, W, C)`` = ``(fields, 112, 96, 3)``: the paper writes clips as
``frames x 96 x 112 x 3`` (w before h) and kernels as ``k x k x l`` (space before time); here a
kernel is ``T x H x W``.

=======  ===================================  ===================================
layer    DTSCNN64                             DTSCNN128
=======  ===================================  ===================================
conv1    16 f, 8x3x3, pad T2/S1, stride T4/S2 16 f, 16x3x3, pad T4/S1, stride T8/S2
pool1    max 1x2x2, stride 1x2x2              same
conv2    32 f, 3x3x3, pad 1, stride 1         same
pool2    max 2x2x2, stride 2                  same
conv3    64 f, 3x3x3, pad 1, stride 1         same
pool3    max 2x2x2, stride 2                  same
conv4    128 f, 4x3x3, pad T0/S1, stride 1    same
pool4    max 1x2x2, stride 1x2x2 -> (1, 3, 3, 128) = 1152 features
fc       dropout 0.5, dense 4, softmax        same
=======  ===================================  ===================================

Table 2 gives padding and stride but no activation: we use ReLU after every convolution, as C3D
(Tran et al. 2015), which the paper follows for conv2/conv3, does.  Padding is explicit
(``ZeroPadding3D``) followed by ``padding="valid"`` convolutions, so every size is the paper's
and not Keras' ``"same"`` arithmetic.  The models take the uint8 Munsell images and scale them
in their first layer (the paper does not say how): to [-1, 1] by default, or to the colour's
deficit from white, zero where nothing moves (``input_scale="motion"``, :data:`INPUT_SCALES`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mexpr.datasets import CLASSES  # N, O, P, S
from mexpr.settings import CROP_H, CROP_W

#: Per stream: (conv1 temporal kernel, temporal padding, temporal stride) - Table 2.
STREAMS = {64: (8, 2, 4), 128: (16, 4, 8)}

#: Table 2's layers after conv1: (name, filters, kernel T x H x W, padding T/H/W).
_CONVS = [("conv2", 32, (3, 3, 3), (1, 1, 1)), ("conv3", 64, (3, 3, 3), (1, 1, 1)), ("conv4", 128, (4, 3, 3), (0, 1, 1))]
_POOLS = {"pool1": (1, 2, 2), "pool2": (2, 2, 2), "pool3": (2, 2, 2), "pool4": (1, 2, 2)}

#: How the first layer scales the uint8 Munsell images (the paper does not say; both are ours):
#: ``"symmetric"`` maps 0..255 to [-1, 1] (white, no motion, is +1 everywhere); ``"motion"`` maps
#: a pixel to its colour deficit 1 - x/255, so no motion is 0 and full colour is up to 1: the input
#: is zero wherever nothing moves, which SGD and Adam learn from far more easily (notebook 08).
INPUT_SCALES = {"symmetric": (1 / 127.5, -1.0), "motion": (-1 / 255, 1.0)}

#: Parameter counts worked out by hand from Table 2 (pinned by the tests).
PARAMS = {64: 372_340, 128: 375_796}


class ClipShapeError(ValueError):
    """Clips that a DTSCNN stream cannot take (wrong shape or dtype)."""


def input_shape(fields: int) -> tuple[int, int, int, int]:
    """The input of the ``fields`` stream: ``(fields, 112, 96, 3)``."""
    return (int(fields), CROP_H, CROP_W, 3)


def dtscnn(
    fields: int = 64,
    classes: int = len(CLASSES),
    dropout: float = 0.5,
    dtype=None,
    name: str | None = None,
    seed: int | None = None,
    input_scale: str = "symmetric",
    init_seed: int | None = None,
):
    """The DTSCNN stream for ``fields`` (64 or 128) Munsell flow images, exactly per Table 2.

    ``dtype`` is a Keras dtype policy (``"mixed_float16"`` for mixed precision on a GPU); the
    softmax output always stays float32.  ``seed`` seeds the dropout layer.  ``input_scale``: how
    the first layer scales the Munsell images (:data:`INPUT_SCALES`).  ``init_seed`` seeds the
    weight initialisation from a generator of the model's own: the weights are those that
    ``keras.utils.set_random_seed(init_seed)`` followed by Keras' default (unseeded) initialisers
    gives, but no other thread drawing from Python's global ``random`` meanwhile (a Dask worker's
    event loop does) can change them.  ``None``: Keras' default, drawn from the global generator.
    """
    import random

    import keras
    from keras import layers

    if input_scale not in INPUT_SCALES:
        raise ValueError(f"input_scale must be one of {list(INPUT_SCALES)}, not {input_scale!r}")
    if fields not in STREAMS:
        raise ValueError(f"DTSCNN has a 64 and a 128 stream (Table 2), not {fields!r}")
    t_kernel, t_pad, t_stride = STREAMS[fields]
    kw = {"dtype": dtype} if dtype is not None else {}
    # Keras draws an unseeded initialiser's seed as randint(1, 1e9) from Python's global generator
    # (keras.src.random.seed_generator.make_default_seed), one per layer with weights, in this order
    draws = random.Random(init_seed) if init_seed is not None else None
    init = lambda: {"kernel_initializer": keras.initializers.GlorotUniform(seed=draws.randint(1, int(1e9)))} if draws else {}  # noqa: E731
    inp = keras.Input(shape=input_shape(fields), dtype="uint8", name="munsell")
    scale, offset = INPUT_SCALES[input_scale]
    x = layers.Rescaling(scale, offset=offset, name="scale", **kw)(inp)
    x = layers.ZeroPadding3D(((t_pad, t_pad), (1, 1), (1, 1)), name="conv1_pad", **kw)(x)
    x = layers.Conv3D(16, (t_kernel, 3, 3), strides=(t_stride, 2, 2), activation="relu", name="conv1", **init(), **kw)(x)
    x = layers.MaxPooling3D(_POOLS["pool1"], strides=_POOLS["pool1"], name="pool1", **kw)(x)
    for i, (cname, filters, kernel, pad) in enumerate(_CONVS, start=2):
        x = layers.ZeroPadding3D(tuple((p, p) for p in pad), name=f"{cname}_pad", **kw)(x)
        x = layers.Conv3D(filters, kernel, strides=1, activation="relu", name=cname, **init(), **kw)(x)
        pool = f"pool{i}"
        x = layers.MaxPooling3D(_POOLS[pool], strides=_POOLS[pool], name=pool, **kw)(x)
    x = layers.Flatten(name="pool4_flat", **kw)(x)
    x = layers.Dropout(dropout, seed=seed, name="dropout", **kw)(x)
    x = layers.Dense(classes, name="fc", **init(), **kw)(x)
    out = layers.Activation("softmax", dtype="float32", name="softmax")(x)
    return keras.Model(inp, out, name=name or f"dtscnn{fields}")


def dtscnn64(**kwargs):
    """DTSCNN64: 64 flow fields (65 frames), Table 2 left column."""
    return dtscnn(64, **kwargs)


def dtscnn128(**kwargs):
    """DTSCNN128: 128 flow fields (129 frames), Table 2 right column."""
    return dtscnn(128, **kwargs)


def fields_of(model) -> int:
    """The number of flow fields a DTSCNN model takes (64 or 128)."""
    return int(model.inputs[0].shape[1])


def pool4_features(model):
    """A model sharing ``model``'s weights that maps clips to the 1152-d pool4 features (the
    flattened output of pool4, before dropout): the input of the paper's linear SVMs."""
    import keras

    return keras.Model(model.inputs[0], model.get_layer("pool4_flat").output, name=f"{model.name}_pool4")


def check_clips(x, fields: int, name: str = "clips") -> np.ndarray:
    """``x`` as a batch the ``fields`` stream takes, or :class:`ClipShapeError` naming the problem.

    Accepts uint8 ``(N, fields, 112, 96, 3)`` Munsell images, or one clip without the batch axis.
    """
    x = np.asarray(x)
    want = input_shape(fields)
    if x.ndim == 4:
        x = x[None]
    if x.dtype != np.uint8:
        raise ClipShapeError(
            f"{name}: DTSCNN{fields} takes uint8 Munsell images (0-255), got dtype {x.dtype}; code the flow with mexpr.flow.to_munsell first"
        )
    if x.ndim != 5 or tuple(x.shape[1:]) != want:
        raise ClipShapeError(f"{name}: DTSCNN{fields} takes clips of shape (N, {', '.join(map(str, want))}), got {tuple(x.shape)}")
    return x


def predict_proba(model, clips, batch_size: int = 10) -> np.ndarray:
    """Softmax probabilities ``(N, 4)`` for uint8 clips, shape and dtype checked first."""
    x = check_clips(clips, fields_of(model))
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def features(model, clips, batch_size: int = 10) -> np.ndarray:
    """pool4 features ``(N, 1152)`` for uint8 clips, shape and dtype checked first."""
    x = check_clips(clips, fields_of(model))
    return np.asarray(pool4_features(model).predict(x, batch_size=batch_size, verbose=0))


def save(model, path: str | os.PathLike) -> Path:
    """Save ``model`` as a ``.keras`` file (architecture + weights, no custom objects)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: models are saved as .keras files")
    path.parent.mkdir(parents=True, exist_ok=True)
    from mexpr import _io

    with _io.replacing(path, suffix=".keras") as tmp:  # never half a model under its name
        model.save(tmp)
    return path


def load(path: str | os.PathLike):
    """Load a ``.keras`` model in Keras' safe mode (no arbitrary code is deserialised)."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model at {path}")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:  # zip/h5 errors: name the file
        raise ValueError(f"{path} is not a readable .keras model: {e}") from e


# --------------------------------------------------------------------------------------------
# teaching aids (notebook 03)


def layer_table(model):
    """One row per layer: kind, kernel, stride, padding, output shape, parameters, and the
    receptive field (T x H x W in input frames/pixels) of one unit of its output."""
    import pandas as pd

    rows = []
    rf = np.ones(3)  # receptive field of one unit, in input samples
    jump = np.ones(3)  # distance between adjacent units, in input samples
    for layer in model.layers:
        kind = type(layer).__name__
        kernel = stride = pad = ""
        if kind in ("Conv3D", "MaxPooling3D"):
            k = np.array(layer.kernel_size if kind == "Conv3D" else layer.pool_size)
            s = np.array(layer.strides)
            rf = rf + (k - 1) * jump
            jump = jump * s
            kernel, stride = "x".join(map(str, k)), "x".join(map(str, s))
        elif kind == "ZeroPadding3D":
            pad = "/".join(str(p[0]) for p in layer.padding)
        shape = tuple(layer.output.shape[1:])
        rows.append(
            {
                "layer": layer.name,
                "kind": kind,
                "kernel": kernel,
                "stride": stride,
                "padding": pad,
                "output": "x".join(str(d) for d in shape),
                "params": layer.count_params(),
                "receptive_field": "x".join(str(int(r)) for r in rf) if kind in ("Conv3D", "MaxPooling3D") else "",
            }
        )
    return pd.DataFrame(rows)
