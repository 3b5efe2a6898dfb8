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

**How conv1 is computed** (ours; the function and the weights are Table 2's): conv1 is a
:class:`Conv1` layer, a ``Conv3D`` whose kernel keeps Table 2's shape (8x3x3x3x16, 16x3x3x3x16),
computed either directly (the strided convolution) or as the same convolution over a
space-to-depth view of its input (:func:`space_to_depth_conv`: the 4x2x2 / 8x2x2 stride folded
into 48 / 96 channels, a stride-1 2x2x2 convolution with the kernel re-arranged and zero-padded).
Three input channels and a strided kernel suit the CPU's bfloat16 matrix units (AMX) worst: the
space-to-depth form is ~2.6x faster there, the direct one ~1.5x faster in float32
(``docs/benchmarks.md``, ``benchmarks/profile_step.py``), so ``"auto"`` picks by the compute dtype.

**Precision** (:data:`PRECISIONS`, :func:`resolve_precision`): float32, or Keras' mixed
policies (bfloat16 / float16 compute, float32 weights); the Munsell scaling layer and the softmax
stay float32 in every precision.
"""

from __future__ import annotations

import functools
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

#: How :class:`Conv1` computes Table 2's conv1 (the same function and weights in every case):
#: ``"auto"``: ``"space_to_depth"`` where the compute dtype is bfloat16, else ``"direct"`` (what
#: measured faster, ``docs/benchmarks.md``); ``"direct"``: the strided convolution, as Keras'
#: ``Conv3D``; ``"space_to_depth"``: :func:`space_to_depth_conv`.  For :func:`dtscnn` also
#: ``"plain"``: Keras' own ``Conv3D`` layer, the graph that models saved before :class:`Conv1`
#: existed hold (they load as they are; :func:`rebuild` moves them onto :class:`Conv1`).
CONV1_METHODS = ("auto", "direct", "space_to_depth")

#: Training precisions (:func:`resolve_precision`): ``"auto"`` picks one for the machine.
PRECISIONS = ("auto", "float32", "bfloat16", "float16")

#: The Keras dtype policy of each concrete precision (mixed: float32 weights, lower-precision compute).
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}

#: The /proc/cpuinfo flags of the x86 units that run bfloat16 natively (oneDNN uses them for
#: bfloat16 convolutions): Intel AMX (Sapphire Rapids and later) and AVX512-BF16 (Cooper Lake, Zen 4).
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


class ClipShapeError(ValueError):
    """Clips that a DTSCNN stream cannot take (wrong shape or dtype)."""


class PrecisionError(ValueError):
    """A precision that is unknown, or that this machine cannot compute natively."""


# --------------------------------------------------------------------------------------------
# precision


@functools.lru_cache(maxsize=4)
def bf16_cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, ...]:
    """Which of :data:`BF16_CPU_FLAGS` this CPU reports in ``cpuinfo`` (Linux); ``()`` where the
    file does not exist (macOS, Windows: bfloat16 is then never picked by ``"auto"``)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return ()
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return tuple(f for f in BF16_CPU_FLAGS if f in flags)


def gpu_count() -> int:
    """The GPUs TensorFlow sees (imports TensorFlow)."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def check_precision_name(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else :class:`PrecisionError` listing them."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return precision


def resolve_precision(precision: str = "auto") -> tuple[str, str]:
    """``(precision, why)``: the concrete precision (float32, bfloat16 or float16) that
    ``precision`` means on this machine, and why, in words for the log.

    ``"auto"``: float16 where TensorFlow sees a GPU (mixed precision, Micikevicius et al. 2018);
    else bfloat16 where the CPU has AMX-BF16 or AVX512-BF16 (:func:`bf16_cpu_flags`, read at run
    time; never assumed) and oneDNN is on (``TF_ENABLE_ONEDNN_OPTS`` not ``0``); else float32.
    A concrete name is returned as it is (:func:`check_precision` says whether it runs natively)."""
    check_precision_name(precision)
    if precision != "auto":
        return precision, "requested"
    gpus = gpu_count()
    if gpus:
        return "float16", f"auto: {gpus} GPU(s) visible"
    flags = bf16_cpu_flags()
    if flags and os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0":
        return "bfloat16", f"auto: no GPU; the CPU has {', '.join(flags)}"
    why = "oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0)" if flags else f"the CPU has none of {', '.join(BF16_CPU_FLAGS)}"
    return "float32", f"auto: no GPU; {why}"


def check_precision(precision: str) -> str:
    """``precision`` resolved (:func:`resolve_precision`), or :class:`PrecisionError` where it is
    bfloat16 on a machine without native bfloat16 (no AMX-BF16 / AVX512-BF16, no GPU).

    An error, not a warning and float32: TensorFlow would emulate bfloat16 there, several times
    slower than float32, and falling back quietly would train float32 weights under a config, a
    fingerprint and a folder that say bfloat16 (``"auto"`` is the setting that means "what is
    fast here")."""
    concrete, _ = resolve_precision(precision)
    if concrete == "bfloat16" and not bf16_cpu_flags() and not gpu_count():
        raise PrecisionError(
            f"precision bfloat16: this CPU has none of {', '.join(BF16_CPU_FLAGS)} (/proc/cpuinfo) and no GPU is visible, so "
            "TensorFlow would emulate bfloat16, slower than float32; use precision float32, or auto (float32 here)"
        )
    return concrete


# --------------------------------------------------------------------------------------------
# conv1


def space_to_depth_conv(x, kernel, strides):
    """A ``"valid"`` strided 3-D convolution computed as a stride-1 one over a space-to-depth view.

    ``x`` ``(N, T, H, W, C)``, ``kernel`` ``(kt, kh, kw, C, F)``, ``strides`` ``(st, sh, sw)``;
    returns ``(N, (T-kt)//st+1, (H-kh)//sh+1, (W-kw)//sw+1, F)``, the same as
    ``keras.ops.conv(x, kernel, strides)``.  Each block of ``st x sh x sw`` input samples becomes
    one sample of ``st*sh*sw*C`` channels; the kernel, zero-padded to whole blocks
    (``ceil(k/s)`` each way), is re-arranged alike, and the convolution over blocks has stride 1.
    The sums are the same products plus zeros, so outputs and gradients equal the direct
    convolution's up to float rounding (tested).  Space-to-depth as in Shi et al. (2016, ESPCN;
    there its inverse, "sub-pixel convolution"); Keras ops only, any backend."""
    from keras import ops

    st, sh, sw = (int(s) for s in strides)
    kt, kh, kw, c, f = (int(d) for d in kernel.shape)
    size = [int(d) for d in x.shape[1:4]]
    blocks = [-(-k // s) for k, s in zip((kt, kh, kw), (st, sh, sw))]  # the kernel, in blocks
    out = [(n - k) // s + 1 for n, k, s in zip(size, (kt, kh, kw), (st, sh, sw))]
    need = [(o + b - 1) * s for o, b, s in zip(out, blocks, (st, sh, sw))]  # the input samples the blocks cover
    x = x[:, : min(need[0], size[0]), : min(need[1], size[1]), : min(need[2], size[2]), :]  # samples no output reads
    if any(n > s for n, s in zip(need, size)):  # zeros where the last block runs past the input (read by zero taps only)
        x = ops.pad(x, [[0, 0]] + [[0, max(0, n - s)] for n, s in zip(need, size)] + [[0, 0]])
    nt, nh, nw = (n // s for n, s in zip(need, (st, sh, sw)))
    x = ops.reshape(x, (-1, nt, st, nh, sh, nw, sw * c))
    x = ops.transpose(x, (0, 1, 3, 5, 2, 4, 6))  # (N, nt, nh, nw, st, sh, sw*C)
    x = ops.reshape(x, (-1, nt, nh, nw, st * sh * sw * c))
    bt, bh, bw = blocks
    k = ops.pad(kernel, [[0, bt * st - kt], [0, bh * sh - kh], [0, bw * sw - kw], [0, 0], [0, 0]])
    k = ops.reshape(k, (bt, st, bh, sh, bw, sw, c, f))
    k = ops.transpose(k, (0, 2, 4, 1, 3, 5, 6, 7))  # (bt, bh, bw, st, sh, sw, C, F): the channels' order above
    k = ops.reshape(k, (bt, bh, bw, st * sh * sw * c, f))
    return ops.conv(x, k, strides=1, padding="valid")


@functools.cache
def _conv1_class():
    import keras

    @keras.saving.register_keras_serializable(package="mexpr", name="Conv1")
    class Conv1(keras.layers.Conv3D):
        """Table 2's conv1: a ``Conv3D`` (kernel, bias, strides and the saved weights as Keras'
        own) computed by ``method`` (:data:`CONV1_METHODS`); see the module text."""

        def __init__(self, filters, kernel_size, method: str = "auto", **kwargs):
            super().__init__(filters, kernel_size, **kwargs)
            if method not in CONV1_METHODS:
                raise ValueError(f"conv1 method must be one of {', '.join(CONV1_METHODS)}, not {method!r}")
            plain = self.padding == "valid" and self.data_format == "channels_last" and set(self.dilation_rate) == {1} and self.groups == 1
            if method == "space_to_depth" and not plain:
                raise ValueError("the space-to-depth form computes 'valid', channels-last, undilated, ungrouped convolutions only")
            self.method = method
            self._plain = plain

        @property
        def computes(self) -> str:
            """How this layer computes now: ``"direct"`` or ``"space_to_depth"``."""
            if self.method == "auto":
                return "space_to_depth" if self._plain and self.compute_dtype == "bfloat16" else "direct"
            return self.method

        def convolution_op(self, inputs, kernel):
            if self.computes == "direct" or any(d is None for d in inputs.shape[1:4]):
                return super().convolution_op(inputs, kernel)
            return space_to_depth_conv(inputs, kernel, self.strides)

        def get_config(self):
            return super().get_config() | {"method": self.method}

    return Conv1


def __getattr__(name: str):
    if name == "Conv1":  # made on first use, so that importing this module does not import Keras
        return _conv1_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    precision: str | None = None,
    conv1: str = "auto",
):
    """The DTSCNN stream for ``fields`` (64 or 128) Munsell flow images, exactly per Table 2.

    ``precision``: ``"float32"``, ``"bfloat16"`` or ``"float16"`` compute (:data:`POLICIES`;
    ``"auto"``: :func:`resolve_precision`); or ``dtype``, a Keras dtype policy (e.g.
    ``"mixed_float16"``).  In every precision the first layer (the Munsell scaling) and the softmax
    output compute in float32.  ``conv1``: how conv1 is computed (:data:`CONV1_METHODS`, or
    ``"plain"`` for Keras' own ``Conv3D``, the graph of models saved before :class:`Conv1`).
    ``seed`` seeds the dropout layer.  ``input_scale``: how the first layer scales the Munsell
    images (:data:`INPUT_SCALES`).  ``init_seed`` seeds the
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
    if conv1 not in CONV1_METHODS + ("plain",):
        raise ValueError(f"conv1 must be one of {', '.join(CONV1_METHODS + ('plain',))}, not {conv1!r}")
    if precision is not None:
        if dtype is not None:
            raise ValueError("give precision or dtype, not both")
        concrete, _ = resolve_precision(precision)
        dtype = POLICIES[concrete] if concrete != "float32" else None
    t_kernel, t_pad, t_stride = STREAMS[fields]
    kw = {"dtype": dtype} if dtype is not None else {}
    # Keras draws an unseeded initialiser's seed as randint(1, 1e9) from Python's global generator
    # (keras.src.random.seed_generator.make_default_seed), one per layer with weights, in this order
    draws = random.Random(init_seed) if init_seed is not None else None
    init = lambda: {"kernel_initializer": keras.initializers.GlorotUniform(seed=draws.randint(1, int(1e9)))} if draws else {}  # noqa: E731
    inp = keras.Input(shape=input_shape(fields), dtype="uint8", name="munsell")
    scale, offset = INPUT_SCALES[input_scale]
    x = layers.Rescaling(scale, offset=offset, name="scale", **({"dtype": "float32"} if kw else {}))(inp)  # the Munsell scale: float32
    x = layers.ZeroPadding3D(((t_pad, t_pad), (1, 1), (1, 1)), name="conv1_pad", **kw)(x)
    first = layers.Conv3D if conv1 == "plain" else functools.partial(_conv1_class(), method=conv1)
    x = first(16, (t_kernel, 3, 3), strides=(t_stride, 2, 2), activation="relu", name="conv1", **init(), **kw)(x)
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
    flattened output of pool4, before dropout): the input of the paper's linear SVMs; float32 in
    every precision (a bfloat16 model's features are cast up)."""
    import keras

    out = model.get_layer("pool4_flat").output
    if out.dtype != "float32":
        out = keras.layers.Activation("linear", dtype="float32", name="pool4_float32")(out)
    return keras.Model(model.inputs[0], out, name=f"{model.name}_pool4")


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
    """pool4 features ``(N, 1152)`` float32 for uint8 clips, shape and dtype checked first."""
    x = check_clips(clips, fields_of(model))
    return np.asarray(pool4_features(model).predict(x, batch_size=batch_size, verbose=0))


def save(model, path: str | os.PathLike) -> Path:
    """Save ``model`` as a ``.keras`` file (architecture + weights; conv1 is :class:`Conv1`,
    which :func:`load` knows)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: models are saved as .keras files")
    path.parent.mkdir(parents=True, exist_ok=True)
    from mexpr import _io

    with _io.replacing(path, suffix=".keras") as tmp:  # never half a model under its name
        model.save(tmp)
    return path


def load(path: str | os.PathLike, precision: str | None = None):
    """Load a ``.keras`` model in Keras' safe mode (no arbitrary code is deserialised; the one
    custom layer, :class:`Conv1`, is registered here).  ``precision``: compute in this precision
    instead of the one it was saved in (:func:`rebuild`; ``None``: as saved).  Models saved before
    :class:`Conv1` existed (a plain ``Conv3D`` conv1) load as they are."""
    import keras

    if precision is not None:
        check_precision_name(precision)  # before reading the file
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model at {path}")
    _conv1_class()  # registered before Keras reads the file
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:  # zip/h5 errors: name the file
        raise ValueError(f"{path} is not a readable .keras model: {e}") from e
    return model if precision is None else rebuild(model, precision=precision, name=str(path))


def rebuild(model, precision: str = "float32", conv1: str = "auto", name: str | None = None):
    """The DTSCNN stream ``model`` built anew, same weights, computing in ``precision``
    (:data:`PRECISIONS`) with conv1 a :class:`Conv1` computed by ``conv1`` (a model saved with a
    plain ``Conv3D`` conv1 moves onto it).  The outputs are ``model``'s up to the precisions'
    rounding.  ``name``: what to call ``model`` in an error (e.g. its file)."""
    what = name or f"model {model.name!r}"
    try:
        scale, fc, drop = model.get_layer("scale"), model.get_layer("fc"), model.get_layer("dropout")
        model.get_layer("conv1"), model.get_layer("pool4_flat")
    except ValueError as e:
        raise ValueError(f"{what} is not a DTSCNN stream (Table 2's layer names): {e}") from e
    cfg = scale.get_config()
    found = [k for k, (a, b) in INPUT_SCALES.items() if np.isclose(cfg["scale"], a) and np.isclose(cfg["offset"], b)]
    if not found:
        raise ValueError(f"{what}: its first layer scales by {cfg['scale']} + {cfg['offset']}, none of {list(INPUT_SCALES)}")
    new = dtscnn(
        fields_of(model),
        classes=int(fc.units),
        dropout=float(drop.rate),
        seed=drop.seed,
        name=model.name,
        input_scale=found[0],
        precision=precision,
        conv1=conv1,
    )
    try:
        new.set_weights(model.get_weights())
    except ValueError as e:
        raise ValueError(f"{what}: its weights do not fit Table 2's layers: {e}") from e
    return new


# --------------------------------------------------------------------------------------------
# teaching aids (notebook 03)


def layer_table(model):
    """One row per layer: kind, kernel, stride, padding, output shape, parameters, and the
    receptive field (T x H x W in input frames/pixels) of one unit of its output."""
    import keras
    import pandas as pd

    rows = []
    rf = np.ones(3)  # receptive field of one unit, in input samples
    jump = np.ones(3)  # distance between adjacent units, in input samples
    for layer in model.layers:
        kind = "Conv3D" if isinstance(layer, keras.layers.Conv3D) else type(layer).__name__  # conv1 is one (Conv1)
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
