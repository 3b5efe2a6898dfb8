"""DTSCNN64/128 exactly per Table 2 (docs/DESIGN.md §2): shapes, parameter counts, saving, bad input."""

from __future__ import annotations

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
