"""Grad-CAM and integrated gradients (mexpr.explain): known answers on tiny 3D CNNs, the shapes on
DTSCNN, and the overlap measures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mexpr import explain, models

T, H, W = 8, 16, 16
RED = np.zeros((T, H, W), bool)
RED[4:6, 2:6, 2:6] = True  # the red patch: fields 4-5, rows and columns 2-5 (on the pooling grid)
GREEN = np.zeros((T, H, W), bool)
GREEN[:, 10:14, 10:14] = True  # the green patch: every field


def tiny(conv_filters: int = 2, kernel: int = 1, padding: str = "valid"):
    """A DTSCNN-shaped chain (uint8 input, ``scale``, two 3D convolutions, 3D max-pooling, ``fc``, softmax)."""
    import keras
    from keras import layers

    inp = keras.Input((T, H, W, 3), dtype="uint8", name="munsell")
    x = layers.Rescaling(1 / 255, name="scale")(inp)
    x = layers.Conv3D(conv_filters, kernel, padding=padding, activation="relu", name="conv1")(x)
    x = layers.MaxPooling3D(2, name="pool1")(x)
    x = layers.Conv3D(conv_filters, kernel, padding=padding, activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling3D(name="gap")(x)
    x = layers.Dense(2, name="fc")(x)
    return keras.Model(inp, layers.Activation("softmax", name="softmax")(x))


@pytest.fixture(scope="module")
def by_hand():
    """Class 1 is decided by red, class 0 by green: conv1's two filters read the red and the green
    channel, conv2 passes them on, and ``fc`` scores class 0 from the green filter, class 1 from the red."""
    m = tiny()
    m.get_layer("conv1").set_weights([np.array([[1, 0], [0, 1], [0, 0]], np.float32).reshape(1, 1, 1, 3, 2), np.zeros(2, np.float32)])
    m.get_layer("conv2").set_weights([np.eye(2, dtype=np.float32).reshape(1, 1, 1, 2, 2), np.zeros(2, np.float32)])
    m.get_layer("fc").set_weights([np.array([[0, 50], [50, 0]], np.float32), np.zeros(2, np.float32)])
    x = np.zeros((T, H, W, 3), np.uint8)
    x[..., 0][RED] = 255
    x[..., 1][GREEN] = 255
    return m, x


def test_grad_cam_lands_on_the_region_that_decides_the_class(by_hand):
    m, x = by_hand
    # at the layer: exactly the red patch's cells (pool1 halves every axis) for class 1, the green one's for class 0
    coarse = explain.grad_cam(m, x, "conv2", class_index=1, upsampled=False)
    assert coarse.shape == (T // 2, H // 2, W // 2)
    assert {tuple(i) for i in np.argwhere(coarse > 0)} == {(2, r, c) for r in (1, 2) for c in (1, 2)}
    assert set(map(tuple, np.argwhere(explain.grad_cam(m, x, "conv2", 0, upsampled=False) > 0))) == {
        (t, r, c) for t in range(4) for r in (5, 6) for c in (5, 6)
    }
    # upsampled over the clip: all of it within a cell of the red patch, none on the green one
    cam = explain.grad_cam(m, x, "conv2", class_index=1)
    assert cam.shape == (T, H, W) and cam.min() >= 0
    near = np.zeros_like(RED)
    near[3:7, 1:7, 1:7] = True
    assert (cam * near).sum() == pytest.approx(cam.sum()) and (cam * RED).sum() > 0.5 * cam.sum()
    assert (cam * GREEN).sum() == 0
    # the time curve: fields 4 and 5 hold three quarters of it, the fields away from them nothing
    curve = explain.time_curve(cam)
    assert curve.sum() == pytest.approx(1) and curve[4:6].sum() == pytest.approx(0.75) and curve[[0, 1, 2, 7]].sum() == 0
    green = explain.grad_cam(m, x, "conv2", class_index=0)
    assert (green * RED).sum() == 0 and explain.time_curve(green) == pytest.approx(np.full(T, 1 / T))
    # with a global average before fc every place has the same gradient, its mean: HiResCAM is Grad-CAM
    assert explain.grad_cam(m, x, "conv2", 1, upsampled=False, variant="hirescam") == pytest.approx(coarse)
    # the predicted class (None) is green's here: its logit is 4x red's
    assert explain.class_scores(m, x).argmax() == 0 and np.array_equal(explain.grad_cam(m, x, "conv2"), green)


def test_hirescam_keeps_to_the_places_the_classifier_reads():
    """Table 2 flattens pool4 into ``fc``, which weighs each place on its own.  Here ``fc`` reads the red
    filter at one place only; a second red patch elsewhere fires the same filter.  Grad-CAM's mean
    gradient lights both patches; HiResCAM lights the one that decides, and its terms add up to the score."""
    import keras
    from keras import layers

    inp = keras.Input((T, H, W, 3), dtype="uint8", name="munsell")
    h = layers.Rescaling(1 / 255, name="scale")(inp)
    h = layers.Conv3D(2, 1, activation="relu", name="conv1")(h)
    h = layers.MaxPooling3D(2, name="pool1")(h)
    h = layers.Conv3D(2, 1, activation="relu", name="conv2")(h)
    h = layers.Flatten(name="flat")(h)
    m = keras.Model(inp, layers.Activation("softmax", name="softmax")(layers.Dense(2, name="fc")(h)))
    m.get_layer("conv1").set_weights([np.array([[1, 0], [0, 1], [0, 0]], np.float32).reshape(1, 1, 1, 3, 2), np.zeros(2, np.float32)])
    m.get_layer("conv2").set_weights([np.eye(2, dtype=np.float32).reshape(1, 1, 1, 2, 2), np.zeros(2, np.float32)])
    fc = np.zeros((T // 2, H // 2, W // 2, 2, 2), np.float32)
    fc[2, 1:3, 1:3, 0, 1] = 1.0  # class 1: the red filter at the red patch's four cells, nowhere else
    fc[..., 1, 0] = 0.1  # class 0: green anywhere
    m.get_layer("fc").set_weights([fc.reshape(-1, 2), np.array([0.0, 0.5], np.float32)])
    x = np.zeros((T, H, W, 3), np.uint8)
    x[..., 0][RED] = 255
    x[4:6, 10:14, 10:14, 0] = 255  # the same red patch where fc does not look
    decisive = {(2, r, c) for r in (1, 2) for c in (1, 2)}
    elsewhere = {(2, r, c) for r in (5, 6) for c in (5, 6)}
    hires = explain.grad_cam(m, x, "conv2", class_index=1, upsampled=False, variant="hirescam")
    assert {tuple(i) for i in np.argwhere(hires > 0)} == decisive
    assert hires.sum() == pytest.approx(explain.class_scores(m, x)[1] - 0.5)  # y_c minus fc's bias
    cam = explain.grad_cam(m, x, "conv2", class_index=1, upsampled=False)
    assert {tuple(i) for i in np.argwhere(cam > 0)} == decisive | elsewhere
    with pytest.raises(ValueError, match="variant must be one of"):
        explain.grad_cam(m, x, "conv2", variant="cam")


def test_integrated_gradients_are_complete_and_local(by_hand):
    m, x = by_hand
    ig = explain.integrated_gradients(m, x, class_index=1, baseline=0, steps=8)
    gain = explain.class_scores(m, x)[1] - explain.class_scores(m, np.zeros_like(x))[1]
    assert ig.shape == (T, H, W) and ig.sum() == pytest.approx(gain, rel=1e-4)  # completeness
    assert (ig * RED).sum() == pytest.approx(ig.sum()) and (np.abs(ig) * ~RED).sum() == 0


def test_max_pooling_hands_each_window_one_gradient():
    """TensorFlow's own 3D max-pooling gradient gives the whole gradient to each of a flat window's
    8 tied maxima; explain's chain pools so that a window passes on exactly what it received."""
    import tensorflow as tf
    from keras import layers

    pool = layers.MaxPooling3D((2, 2, 2))
    x = tf.constant(np.ones((1, 2, 4, 4, 1), np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = tf.reduce_sum(explain._max_pool(pool, x))
        theirs = tf.reduce_sum(pool(x))
    assert float(ours) == float(theirs) == 4.0
    assert float(tf.reduce_sum(tape.gradient(ours, x))) == pytest.approx(4.0)
    assert float(tf.reduce_sum(tape.gradient(theirs, x))) == pytest.approx(32.0)


def _patches(n: int, seed: int):
    """Clips with a 4x4 patch at a random place and time, red (class 0) or green (class 1), a blue
    patch (in both classes) elsewhere, on dark noise; and where the deciding patch is."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 40, (n, T, H, W, 3)).astype(np.uint8)
    y = rng.integers(0, 2, n)
    where = np.zeros((n, T, H, W), bool)
    for i in range(n):
        t, (r, c) = rng.integers(0, T - 3), rng.integers(0, H - 3, 2)
        x[i, t : t + 3, r : r + 4, c : c + 4, y[i]] = 255
        where[i, t : t + 3, r : r + 4, c : c + 4] = True
        r2, c2 = next(p for p in (rng.integers(0, H - 3, 2) for _ in range(100)) if abs(p[0] - r) > 5 or abs(p[1] - c) > 5)
        x[i, :, r2 : r2 + 4, c2 : c2 + 4, 2] = 255
    return x, y, where


def test_grad_cam_of_a_trained_network_points_at_the_deciding_patch():
    import keras
    from scipy.ndimage import binary_dilation

    keras.utils.set_random_seed(0)
    m = tiny(conv_filters=8, kernel=3, padding="same")
    m.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    x, y, _ = _patches(128, 0)
    m.fit(x, y, epochs=15, batch_size=16, verbose=0)
    xt, yt, where = _patches(32, 1)
    assert (m.predict(xt, verbose=0).argmax(1) == yt).mean() >= 0.95
    cam = explain.grad_cam(m, xt, "conv2", yt)
    near = np.stack([binary_dilation(w, iterations=2) for w in where])
    peak_near = near.reshape(len(near), -1)[np.arange(len(cam)), cam.reshape(len(cam), -1).argmax(1)]
    assert peak_near.mean() >= 0.9  # the pointing game
    inside = (cam * where).sum((1, 2, 3)) / cam.sum((1, 2, 3))
    assert inside.mean() > 3 * where.mean()  # far above an even spread


def test_grad_cam_and_integrated_gradients_on_dtscnn():
    m = models.dtscnn(64, input_scale="motion", seed=0)
    rng = np.random.default_rng(0)
    x = np.full((2, 64, 112, 96, 3), 255, np.uint8)
    x[:, 20:40, 30:60, 20:50] = rng.integers(0, 255, (2, 20, 30, 30, 3))
    both = explain.grad_cam(m, x, (explain.LAST_CONV, explain.TIME_LAYER), upsampled=False)  # one pass, two layers
    assert both[explain.LAST_CONV].shape == (2, 1, 7, 6)  # conv4: one time step
    assert both[explain.TIME_LAYER].shape == (2, 8, 14, 12)
    assert np.array_equal(both[explain.TIME_LAYER], explain.grad_cam(m, x, explain.TIME_LAYER, upsampled=False))
    cam = explain.grad_cam(m, x[0], explain.TIME_LAYER, class_index=2)
    assert cam.shape == (64, 112, 96) and cam.dtype == np.float32 and cam.min() >= 0
    ig = explain.integrated_gradients(m, x[0], class_index=2, steps=16)  # from the no-motion clip
    gain = explain.class_scores(m, x[0])[2] - explain.class_scores(m, np.full_like(x[0], explain.NO_MOTION))[2]
    assert ig.shape == (64, 112, 96) and ig.sum() == pytest.approx(gain, rel=0.02, abs=1e-3)
    assert np.abs(ig[:20]).sum() == 0  # no attribution where the clip is the baseline
    with pytest.raises(ValueError, match="has no layer 'conv9'"):
        explain.grad_cam(m, x, "conv9")
    with pytest.raises(ValueError, match="takes clips of shape"):
        explain.grad_cam(m, x[:, :32])


def test_maps_overlap_and_class_summaries():
    maps = np.zeros((3, 4, 4))
    maps[0, 0, 0] = 1  # all inside
    maps[1] = 1  # even: chance
    maps[2, 3, 3] = 1  # all outside
    masks = np.zeros((3, 4, 4), bool)
    masks[:, :2, :2] = True  # a quarter of the crop
    t = explain.overlap_table(maps, masks, ["a", "b", "c"], ["Positive", "Positive", "Surprise"])
    assert list(t["inside"]) == [1, 0.25, 0] and (t["chance"] == 0.25).all() and list(t["peak_inside"]) == [True, True, False]
    s = explain.class_summary(t)
    assert list(s.index) == ["Negative", "Others", "Positive", "Surprise", "all"]
    assert s.loc["Positive", "inside"] == pytest.approx(0.625) and s.loc["Positive", "clips"] == 2 and s.loc["all", "ratio"] == pytest.approx(5 / 3)
    assert pd.isna(s.loc["Negative", "inside"]) and s.loc["Negative", "clips"] == 0
    means = explain.class_means(maps, ["Positive", "Positive", "Surprise"])
    assert set(means) == {"Positive", "Surprise"} and means["Positive"].sum() == pytest.approx(1)
    from scipy.ndimage import zoom

    v = np.random.default_rng(0).random((2, 8, 14, 12)).astype(np.float32)  # conv3's grid to DTSCNN128's input
    assert np.abs(explain.upsample(v, (128, 112, 96)) - zoom(v, (1, 16, 8, 8), order=1, grid_mode=True, mode="nearest")).max() < 1e-5
    vol = np.ones((5, 3, 2))
    assert explain.spatial_map(vol).sum() == pytest.approx(1) and explain.time_curve(vol) == pytest.approx(np.full(5, 0.2))
    assert explain.apex_position(10, 15, 20, 64) == pytest.approx(32)
    share, chance = explain.near_apex(np.eye(8)[[3, 0]], apex=[4, 8], half_width=1)  # fields 2-4 and 6-7 (the last ends at frame 8)
    assert list(share) == [1, 0] and list(chance) == [3 / 8, 2 / 8]


def test_au_regions_lie_where_the_generator_moved_the_face(flowrun):
    """The regions the overlap is measured against (mexpr.groundtruth.au_regions): brow and lid Action Units
    in the upper face of the crop, mouth and chin ones in the lower, and the same regions as the flow scoring's."""
    from mexpr import groundtruth, preprocess
    from mexpr.datasets import clip_keys
    from mexpr.run import Run

    manifest = preprocess.load_manifest(flowrun)
    manifest = manifest[manifest["status"] == "processed"].reset_index(drop=True)
    aus = dict(zip(clip_keys(Run(flowrun).dataset()), Run(flowrun).dataset()["action_units"]))
    regions = groundtruth.au_regions(flowrun, manifest)
    assert set(regions) == set(clip_keys(manifest))
    upper, lower = {"1", "2", "4", "5", "7"}, {"10", "12", "14", "L14", "R12", "15", "17", "20", "23", "24"}
    seen = set()
    for key, mask in regions.items():
        assert mask.shape == (112, 96) and mask.dtype == bool and 0.005 < mask.mean() < 0.5, key
        units = set(str(aus[key]).split("+"))
        row = np.argwhere(mask)[:, 0].mean() / 112
        if units <= upper:
            assert row < 0.45, (key, units, row)
            seen.add("upper")
        elif units <= lower:
            assert row > 0.55, (key, units, row)
            seen.add("lower")
    assert seen == {"upper", "lower"}
    pair = next(groundtruth.synthetic_pairs(flowrun, manifest.iloc[:1], amplitudes=(1.0,)))
    assert (pair["au"] == regions[pair["clip"]]).mean() > 0.99  # the flow scoring's AU regions (notebook 02)
