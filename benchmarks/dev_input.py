"""Development runs for the training of our ``mexpr`` input, on data no evaluation uses.

    python benchmarks/dev_input.py [--run runs/default] [--split 0] [--epochs 12] [--lr 3e-4] [--ema 0.99] [--no-flip]
        [--fields 64] [--per-class 100] [--tsmooth SIGMA] [--bn] [--mixup ALPHA] [--batch 10] [--dropout 0.5] [--wd 0]
        [--deglobal] [--ssmooth SIGMA] [--tmean] [--gain G] [--aux W]

The training clips of fold 0 (paper protocol, seed 0) are split 75/25, stratified (``--split`` seeds the split);
DTSCNN64 (or 128) trains on the three quarters (flow since onset smoothed over 4 px, the Munsell scale learned from
them, no crop, optionally mirrored copies) and the held-out quarter is scored after every epoch: softmax UAR of the
network, of its averaged weights (``--ema``) and of the averaged weights with a test-time mirror (the mean of the
softmax of each held-out clip and of its mirror image).  The test fold is never read.  Options that are not the
package's, to try: ``--tsmooth`` (a Gaussian over the fields, sigma in fields, on the raw flow before coding),
``--bn`` (batch normalisation after every convolution: not Table 2), ``--mixup`` (mixup of the colour deficits and
labels), ``--wd`` (AdamW), ``--deglobal`` (each field's affine motion removed, as ``global_motion="affine"`` does,
and the Munsell scale learned without it), ``--ssmooth`` (a spatial Gaussian, px), ``--tmean`` (every field
replaced by the clip's time-mean), ``--gain`` (the first layer's input multiplied), ``--aux`` (an auxiliary loss:
a linear read-out of pool4 regresses the clip's coarse mean motion).  After training, a linear SVM on the
stream's pool4 features of the three quarters (and their mirrors) is scored on the held-out quarter too, as
Eq. 11 would use the stream.  docs/benchmarks.md ("Our mexpr input") records the runs that chose the input's settings.
Needs the run's flow for the mexpr input (``python -m mexpr evaluate --run RUN --input mexpr`` or notebook 06 makes it).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def build_model(fields, seed, input_scale, bn=False, dropout=0.5, width=1.0, gain=1.0, aux=0.0, aux_block=16):
    """Table 2's network, optionally with batch normalisation after each convolution or other widths."""
    import keras
    from keras import layers

    from mexpr import models

    AuxMotion = _aux_class()

    t_kernel, t_pad, t_stride = models.STREAMS[fields]
    inp = keras.Input(shape=models.input_shape(fields), dtype="uint8")
    s, o = models.INPUT_SCALES[input_scale]
    x = layers.Rescaling(s * gain, offset=o * gain)(inp)
    rescaled = x

    def conv(x, f, k, st, pad):
        x = layers.ZeroPadding3D(pad)(x)
        x = layers.Conv3D(int(f * width), k, strides=st, use_bias=not bn)(x)
        if bn:
            x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    x = conv(x, 16, (t_kernel, 3, 3), (t_stride, 2, 2), ((t_pad, t_pad), (1, 1), (1, 1)))
    x = layers.MaxPooling3D((1, 2, 2))(x)
    for f, k, pad, pool in [(32, (3, 3, 3), 1, (2, 2, 2)), (64, (3, 3, 3), 1, (2, 2, 2)), (128, (4, 3, 3), (0, 1, 1), (1, 2, 2))]:
        x = conv(x, f, k, 1, pad)
        x = layers.MaxPooling3D(pool)(x)
    x = layers.Flatten(name="pool4_flat")(x)
    if aux:
        x = AuxMotion(aux, fields, aux_block)([x, rescaled])
    x = layers.Dropout(dropout, seed=seed)(x)
    out = layers.Dense(4, activation="softmax")(x)
    return keras.Model(inp, out)


def _aux_class():
    from keras import layers, ops

    class AuxMotion(layers.Layer):
        """Adds weight * MSE between a linear read-out of the features and the clip's coarse time-mean motion."""

        def __init__(self, weight, fields, block, **kw):
            super().__init__(**kw)
            self.w = weight
            self.pool = layers.AveragePooling3D((fields, block, block))
            self.head = layers.Dense((112 // block) * (96 // block) * 3)

        def call(self, inputs):
            feat, rescaled = inputs
            target = ops.stop_gradient(ops.reshape(self.pool(rescaled), (ops.shape(feat)[0], -1)) * 10.0)
            self.add_loss(self.w * ops.mean(ops.square(self.head(feat) - target)))
            return feat

    return AuxMotion


def main():
    import keras
    from sklearn.metrics import recall_score
    from sklearn.model_selection import train_test_split

    from mexpr import flow, train
    from mexpr.datasets import CLASSES

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/default")
    ap.add_argument("--split", type=int, default=0)
    ap.add_argument("--fields", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--ema", type=float, default=0.99)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--bn", action="store_true")
    ap.add_argument("--mixup", type=float, default=0.0)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--wd", type=float, default=0.0)
    ap.add_argument("--flip", default=True, action=argparse.BooleanOptionalAction)
    ap.add_argument("--tsmooth", type=float, default=0.0)
    ap.add_argument("--ssmooth", type=float, default=0.0)
    ap.add_argument("--tmean", action="store_true")
    ap.add_argument("--gain", type=float, default=1.0)
    ap.add_argument("--aux", type=float, default=0.0)
    ap.add_argument("--deglobal", action="store_true")
    ap.add_argument("--aux-block", type=int, default=16)
    args = ap.parse_args()
    cfg = train.config_for("default", input="mexpr")
    tr, _ = train.fold_split(args.run, cfg, 0)
    y = np.array([CLASSES.index(c) for c in tr["label"]])
    fit, held = train_test_split(np.arange(len(y)), test_size=0.25, stratify=y, random_state=args.split)
    # --deglobal, as global_motion="affine" does: the scale of the flow without its global motion
    scale = flow.learn_scale(args.run, tr["flow_cache"].iloc[fit], args.fields, global_motion="affine" if args.deglobal else "keep")
    from scipy.ndimage import gaussian_filter

    def load(c, mirrored):
        if not (args.tsmooth or args.ssmooth or args.tmean or args.deglobal):
            return flow.load_munsell(args.run, c, args.fields, scale, mirrored=mirrored)
        with np.load(Path(args.run) / c) as z:
            fl = z[f"flow{args.fields}"].astype(np.float32)
        if args.deglobal:
            fl = flow.remove_global(fl)
        fl = flow.smooth_time(fl, args.tsmooth)
        if args.ssmooth:
            fl = gaussian_filter(fl, (0, args.ssmooth, args.ssmooth, 0), mode="nearest")
        if args.tmean:
            fl = np.broadcast_to(fl.mean(0, keepdims=True), fl.shape).copy()
        return flow.to_munsell(flow.mirror(fl) if mirrored else fl, scale)

    X = np.stack([load(c, False) for c in tr["flow_cache"]])
    M = np.stack([load(c, True) for c in tr["flow_cache"]]) if args.flip else None
    rng = np.random.default_rng(args.split)
    B = args.batch
    steps = 4 * args.per_class // B

    def batches():
        for _ in range(args.epochs):
            idx = np.concatenate([rng.choice(fit[y[fit] == c], args.per_class) for c in range(4)])
            rng.shuffle(idx)
            flip = rng.random(len(idx)) < 0.5 if args.flip else np.zeros(len(idx), bool)
            for s in range(steps):
                b = idx[s * B : (s + 1) * B]
                xb = np.stack([M[i] if f else X[i] for i, f in zip(b, flip[s * B :])])
                yb = np.eye(4, dtype=np.float32)[y[b]]
                if args.mixup:
                    lam = rng.beta(args.mixup, args.mixup, len(b)).astype(np.float32)
                    lam = np.maximum(lam, 1 - lam)
                    p = rng.permutation(len(b))
                    # mix the colour deficit (motion input): 255 - x is the deficit
                    d = 255.0 - xb.astype(np.float32)
                    d = lam[:, None, None, None, None] * d + (1 - lam[:, None, None, None, None]) * d[p]
                    xb = np.clip(255.0 - d + 0.5, 0, 255).astype(np.uint8)
                    yb = lam[:, None] * yb + (1 - lam[:, None]) * yb[p]
                yield xb, yb

    import tensorflow as tf

    spec = (tf.TensorSpec((None, *X.shape[1:]), tf.uint8), tf.TensorSpec((None, 4), tf.float32))
    data = tf.data.Dataset.from_generator(batches, output_signature=spec).prefetch(2)
    train.set_determinism(args.split + 1)
    model = build_model(
        args.fields,
        args.split,
        cfg.input_scale,
        bn=args.bn,
        dropout=args.dropout,
        width=args.width,
        gain=args.gain,
        aux=args.aux,
        aux_block=args.aux_block,
    )
    kw = {"use_ema": True, "ema_momentum": args.ema} if args.ema else {}
    opt = keras.optimizers.AdamW(args.lr, weight_decay=args.wd, **kw) if args.wd else keras.optimizers.Adam(args.lr, **kw)
    model.compile(optimizer=opt, loss="categorical_crossentropy", metrics=["accuracy"])

    def uar():
        p = model.predict(X[held], verbose=0, batch_size=20)
        if args.flip:  # also: the mean with the mirrored clip's softmax (test-time mirror)
            pm = model.predict(M[held], verbose=0, batch_size=20)
            return recall_score(y[held], p.argmax(1), average="macro"), recall_score(y[held], (p + pm).argmax(1), average="macro")
        return recall_score(y[held], p.argmax(1), average="macro"), float("nan")

    class Score(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            line = f"epoch {epoch}: loss {logs['loss']:.3f} acc {logs['accuracy']:.3f} held {uar()[0]:.3f}"
            if args.ema:
                now = [v.numpy() for v in model.trainable_variables]
                for v, a in zip(opt._trainable_variables, opt._model_variables_moving_average):
                    v.assign(a)
                u = uar()
                line += f" ema {u[0]:.3f} ema+tta {u[1]:.3f}"
                for v, w in zip(model.trainable_variables, now):
                    v.assign(w)
            print(line, flush=True)

    t0 = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=args.epochs, verbose=0, callbacks=[Score()])
    u = uar()
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    feats = keras.Model(model.input, model.get_layer("pool4_flat").output)
    F = feats.predict(X, verbose=0, batch_size=20)
    Fm = feats.predict(M, verbose=0, batch_size=20) if args.flip else F[:0]
    yf = np.concatenate([y[fit], y[fit]]) if args.flip else y[fit]
    svm = make_pipeline(StandardScaler(), SVC(kernel="linear", C=1.0, class_weight="balanced")).fit(
        np.concatenate([F[fit], Fm[fit] if args.flip else F[:0]]), yf
    )
    su = recall_score(y[held], svm.predict(F[held]), average="macro")
    print(f"{vars(args)}: final {u[0]:.3f} tta {u[1]:.3f} svm-pool4 {su:.3f}, {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
