"""DTSCNN64/128 exactly per Table 2 (docs/DESIGN.md §2): shapes, parameter counts, saving, bad input; conv1's
space-to-depth form against the plain Conv3D, and the precisions."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mexpr import models, settings
from mexpr.models import ClipShapeError

# Table 2 worked out by hand in Keras layout (T, H, W, C); conv1 differs between the streams only
# in its input padding.
SHAPES = {
    "conv1": (16, 56, 48, 16),
    "pool1": (16, 28, 24, 16),
    "conv2": (16, 28, 24, 32),
    "pool2": (8, 14, 12, 32),
    "conv3": (8, 14, 12, 64),
    "pool3": (4, 7, 6, 64),
    "conv4": (1, 7, 6, 128),
    "pool4": (1, 3, 3, 128),
    "pool4_flat": (1152,),
    "fc": (4,),
}


@pytest.mark.parametrize("fields,params,padded", [(64, 372_340, (68, 114, 98, 3)), (128, 375_796, (136, 114, 98, 3))])
def test_every_layer_shape_and_the_parameter_count(fields, params, padded):
    m = models.dtscnn(fields)
    assert m.count_params() == params == models.PARAMS[fields]
    assert tuple(m.input.shape[1:]) == (fields, 112, 96, 3)
    assert tuple(m.get_layer("conv1_pad").output.shape[1:]) == padded
    for name, shape in SHAPES.items():
        assert tuple(m.get_layer(name).output.shape[1:]) == shape, name
    conv = {n: m.get_layer(n) for n in ("conv1", "conv2", "conv3", "conv4")}
    assert [c.filters for c in conv.values()] == [16, 32, 64, 128]
    assert conv["conv1"].kernel_size == ((8 if fields == 64 else 16), 3, 3)
    assert conv["conv1"].strides == ((4 if fields == 64 else 8), 2, 2)
    assert conv["conv4"].kernel_size == (4, 3, 3)
    assert m.get_layer("dropout").rate == 0.5
    table = models.layer_table(m)
    assert table["params"].sum() == params
    assert table.set_index("layer").loc["pool4", "output"] == "1x3x3x128"


def test_pool4_features_and_probabilities():
    m = models.dtscnn64(seed=0)
    x = np.random.default_rng(0).integers(0, 256, (2, 64, 112, 96, 3), dtype=np.uint8)
    f = models.features(m, x)
    p = models.predict_proba(m, x)
    assert f.shape == (2, settings.POOL4_FEATURES) and (f >= 0).all()  # after ReLU and max pooling
    assert p.shape == (2, 4) and np.allclose(p.sum(1), 1, atol=1e-5)
    # the softmax is a linear map of the pool4 features (dropout is off at inference)
    W, b = m.get_layer("fc").get_weights()
    logits = f @ W + b
    e = np.exp(logits - logits.max(1, keepdims=True))
    assert np.allclose(p, e / e.sum(1, keepdims=True), atol=1e-5)


def test_save_and_load_in_safe_mode(tmp_path):
    m = models.dtscnn128(seed=1)
    x = np.random.default_rng(1).integers(0, 256, (1, 128, 112, 96, 3), dtype=np.uint8)
    path = models.save(m, tmp_path / "m" / "dtscnn128.keras")
    back = models.load(path)
    assert back.count_params() == 375_796 and models.fields_of(back) == 128
    assert np.array_equal(models.predict_proba(m, x), models.predict_proba(back, x))
    with pytest.raises(ValueError, match=r"\.keras"):
        models.save(m, tmp_path / "m.h5")
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.keras is not a readable .keras model"):
        models.load(tmp_path / "bad.keras")
    with pytest.raises(FileNotFoundError, match="no model at"):
        models.load(tmp_path / "missing.keras")


def test_clips_of_the_wrong_shape_or_dtype_are_refused():
    m = models.dtscnn64()
    good = np.zeros((1, 64, 112, 96, 3), np.uint8)
    assert models.check_clips(good[0], 64).shape == (1, 64, 112, 96, 3)  # one clip, no batch axis
    with pytest.raises(ClipShapeError, match=r"uint8 Munsell images .* got dtype float32"):
        models.predict_proba(m, good.astype(np.float32))
    with pytest.raises(ClipShapeError, match=r"shape \(N, 64, 112, 96, 3\), got \(1, 64, 96, 112, 3\)"):
        models.predict_proba(m, np.zeros((1, 64, 96, 112, 3), np.uint8))  # w and h swapped (the paper's order)
    with pytest.raises(ClipShapeError, match=r"got \(1, 128, 112, 96, 3\)"):
        models.features(m, np.zeros((1, 128, 112, 96, 3), np.uint8))  # a DTSCNN128 clip
    with pytest.raises(ClipShapeError, match="got dtype int64"):
        models.check_clips(np.zeros((1, 64, 112, 96, 3), np.int64), 64)
    with pytest.raises(ValueError, match="not 96"):
        models.dtscnn(96)


# --------------------------------------------------------------------------------------------
# conv1's space-to-depth form, precision


@pytest.mark.parametrize(
    "shape,kernel,strides",
    [((2, 11, 9, 7, 2), (5, 3, 2, 2, 4), (3, 2, 2)), ((1, 9, 8, 10, 3), (4, 3, 3, 3, 5), (2, 1, 3)), ((1, 6, 5, 5, 1), (2, 1, 1, 1, 2), (1, 1, 1))],
)
def test_space_to_depth_is_the_strided_convolution_for_any_shape(shape, kernel, strides):
    # sizes that are not whole blocks (the view pads or drops samples no output reads), stride 1 (no change)
    from keras import ops

    rng = np.random.default_rng(0)
    x, k = rng.standard_normal(shape).astype(np.float32), rng.standard_normal(kernel).astype(np.float32)
    want = np.asarray(ops.conv(x, k, strides=strides, padding="valid"))
    got = np.asarray(models.space_to_depth_conv(x, k, strides))
    assert got.shape == want.shape and np.allclose(got, want, atol=1e-5)


STREAM_T = {64: 8, 128: 16}  # conv1's temporal kernel per stream (Table 2)


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def _loss_and_grads(model, x, y):
    import tensorflow as tf

    conv1 = keras.Model(model.inputs[0], model.get_layer("conv1").output)
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(y, model(x, training=False))
    grads = tape.gradient(loss, model.trainable_variables)
    return np.asarray(conv1(x)), float(np.mean(loss)), [np.asarray(g) for g in grads]


@pytest.mark.parametrize("fields", [64, 128])
def test_conv1_in_its_space_to_depth_form_has_the_plain_conv3d_outputs_and_gradients(fields):
    plain = models.dtscnn(fields, conv1="plain", init_seed=3)  # Keras' own strided Conv3D, as before Conv1
    fast = models.dtscnn(fields, conv1="space_to_depth", init_seed=3)
    assert type(plain.get_layer("conv1")) is keras.layers.Conv3D and fast.get_layer("conv1").computes == "space_to_depth"
    assert [w.shape for w in fast.get_layer("conv1").get_weights()] == [(STREAM_T[fields], 3, 3, 3, 16), (16,)]  # Table 2's kernel
    assert fast.count_params() == plain.count_params() == models.PARAMS[fields]
    assert models.layer_table(fast).equals(models.layer_table(plain))
    assert same(fast.get_weights(), plain.get_weights())  # the same initialisation, weight for weight
    x = np.random.default_rng(fields).integers(0, 256, (2, fields, 112, 96, 3), dtype=np.uint8)
    y = np.array([1, 3])
    (a, la, ga), (b, lb, gb) = _loss_and_grads(plain, x, y), _loss_and_grads(fast, x, y)
    assert np.allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(a).max()) and la == pytest.approx(lb, rel=1e-5)
    for v, g, h in zip(plain.trainable_variables, ga, gb):  # conv1's kernel and bias, and every later layer's
        assert np.allclose(g, h, rtol=1e-4, atol=1e-5 * np.abs(g).max()), v.path


def test_conv1_picks_its_form_by_the_compute_dtype_and_checks_its_method():
    assert models.dtscnn64().get_layer("conv1").computes == "direct"  # float32: the direct form is faster (docs/benchmarks.md)
    bf16 = models.dtscnn64(precision="bfloat16")
    assert bf16.get_layer("conv1").computes == "space_to_depth" and bf16.get_layer("conv1").compute_dtype == "bfloat16"
    assert bf16.get_layer("conv1").variable_dtype == "float32"  # weights stay float32
    assert bf16.get_layer("scale").compute_dtype == "float32" and bf16.output.dtype == "float32"  # the Munsell scale, the softmax
    assert models.dtscnn64(precision="bfloat16", conv1="direct").get_layer("conv1").computes == "direct"
    with pytest.raises(ValueError, match="conv1 must be one of auto, direct, space_to_depth, plain, not 'fast'"):
        models.dtscnn64(conv1="fast")
    with pytest.raises(ValueError, match="'valid', channels-last"):
        models.Conv1(4, 3, padding="same", method="space_to_depth")
    with pytest.raises(ValueError, match="give precision or dtype"):
        models.dtscnn64(precision="float32", dtype="mixed_float16")


def test_a_model_saved_before_conv1_loads_and_moves_onto_it(tmp_path):
    old = models.dtscnn64(conv1="plain", init_seed=5, input_scale="motion")  # the graph saved before this layer existed
    path = models.save(old, tmp_path / "old.keras")
    import json
    import zipfile

    layers = json.loads(zipfile.ZipFile(path).read("config.json"))["config"]["layers"]
    assert next(lay for lay in layers if lay["name"] == "conv1")["class_name"] == "Conv3D"
    x = np.random.default_rng(5).integers(0, 256, (2, 64, 112, 96, 3), dtype=np.uint8)
    back = models.load(path)
    assert type(back.get_layer("conv1")) is keras.layers.Conv3D and np.array_equal(models.features(back, x), models.features(old, x))
    moved = models.load(path, precision="float32")
    assert isinstance(moved.get_layer("conv1"), models.Conv1) and same(moved.get_weights(), old.get_weights())
    assert moved.get_layer("scale").get_config()["offset"] == 1.0  # the motion input scale kept
    assert np.allclose(models.features(moved, x), models.features(old, x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="not a DTSCNN stream"):
        models.rebuild(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="fc")]))


def test_a_model_saved_in_one_precision_gives_the_same_features_in_another(tmp_path):
    x = np.random.default_rng(7).integers(0, 256, (3, 64, 112, 96, 3), dtype=np.uint8)
    f32 = models.dtscnn64(init_seed=7)
    bf16 = models.dtscnn64(init_seed=7, precision="bfloat16")
    assert same(bf16.get_weights(), f32.get_weights())  # float32 weights in both
    a, b = models.save(f32, tmp_path / "f32.keras"), models.save(bf16, tmp_path / "bf16.keras")
    want = models.features(f32, x)
    assert models.load(b).get_layer("conv1").compute_dtype == "bfloat16"  # saved as bfloat16, loaded as it was saved
    for got in (models.features(models.load(b), x), models.features(models.load(a, precision="bfloat16"), x)):
        assert got.dtype == np.float32 and got.shape == want.shape
        # bfloat16 keeps 8 significant bits.  Multiplied in bfloat16 and summed in float32 (AMX, AVX512-BF16, GPUs) the
        # features come within ~0.6% of the largest one; on a CPU without bfloat16 units TensorFlow's fallback Conv3D
        # also sums in bfloat16, so the error grows with the kernel's size and the threads' share of each sum: measured
        # on AVX2 the error's norm is 2.6% of the features' (2 threads) and 3.4% (1 thread), the largest single error
        # 3.4% and 6.2% of the largest feature, correlation 0.9994 and 0.9990.  10% of the norm and 0.995 hold for
        # every thread count; other weights are ~100% off and correlate below 0.9 (below)
        assert np.linalg.norm(got - want) < 0.10 * np.linalg.norm(want)
        assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.995
    assert np.allclose(models.features(models.load(b, precision="float32"), x), want, rtol=1e-5, atol=1e-6)  # and back: float32 exactly
    other = models.features(models.dtscnn64(init_seed=8), x)  # the test can tell other weights apart
    assert np.corrcoef(other.ravel(), want.ravel())[0, 1] < 0.9 and np.linalg.norm(other - want) > 0.5 * np.linalg.norm(want)
    with pytest.raises(models.PrecisionError, match="precision must be one of auto, float32, bfloat16, float16, not 'half'"):
        models.load(a, precision="half")


def test_precision_auto_is_detected_at_run_time(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu avx512f\n")
    assert models.bf16_cpu_flags(str(cpuinfo)) == ("amx_bf16", "avx512_bf16")
    assert models.bf16_cpu_flags(str(tmp_path / "none")) == ()  # no /proc/cpuinfo (macOS, Windows): none assumed
    monkeypatch.setattr(models, "gpu_count", lambda: 0)
    monkeypatch.setattr(models, "bf16_cpu_flags", lambda cpuinfo="/proc/cpuinfo": ("amx_bf16",))
    assert models.resolve_precision("auto") == ("bfloat16", "auto: no GPU; the CPU has amx_bf16")
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert models.resolve_precision("auto")[0] == "float32"  # oneDNN off: no AMX kernels
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    monkeypatch.setattr(models, "bf16_cpu_flags", lambda cpuinfo="/proc/cpuinfo": ())
    assert models.resolve_precision("auto") == ("float32", "auto: no GPU; the CPU has none of amx_bf16, avx512_bf16")
    assert models.resolve_precision("float16") == ("float16", "requested")
    with pytest.raises(models.PrecisionError, match="bfloat16: this CPU has none of amx_bf16, avx512_bf16 .* use precision float32, or auto"):
        models.check_precision("bfloat16")
    monkeypatch.setattr(models, "gpu_count", lambda: 1)
    assert models.resolve_precision("auto")[0] == "float16" and models.check_precision("bfloat16") == "bfloat16"  # GPUs compute bfloat16
    with pytest.raises(models.PrecisionError, match="precision must be one of auto, float32, bfloat16, float16, not 'half'"):
        models.resolve_precision("half")
