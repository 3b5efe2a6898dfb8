"""Development runs for the training of our ``mexpr`` input, on data no evaluation uses.

    python benchmarks/dev_input.py --run runs/default [--split 0] [--epochs 12] [--lr 3e-4] [--ema 0.99] [--no-flip]
        [--fields 64] [--per-class 100]

The training clips of fold 0 (paper protocol, seed 0) are split 75/25, stratified (``--split`` seeds the split);
DTSCNN64 (or 128) trains on the three quarters (flow since onset smoothed over 4 px, the Munsell scale learned from
them, no crop, optionally mirrored copies) and the held-out quarter is scored after every epoch (softmax UAR; with
``--ema``, also the averaged weights).  The test fold is never read.  docs/benchmarks.md ("Our mexpr input, second
version") records the runs that chose the input's training settings.  Needs the run's flow for the mexpr input
(``python -m mexpr evaluate --run RUN --input mexpr`` or notebook 06 makes it).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    import keras
    from sklearn.metrics import recall_score
    from sklearn.model_selection import train_test_split

    from mexpr import flow, models, train
    from mexpr.datasets import CLASSES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--split", type=int, default=0)
    ap.add_argument("--fields", type=int, default=64, choices=[64, 128])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--ema", type=float, default=0.99)
    ap.add_argument("--flip", default=True, action=argparse.BooleanOptionalAction)
    args = ap.parse_args()

    cfg = train.config_for("default", input="mexpr")
    tr, _ = train.fold_split(args.run, cfg, 0)  # fold 0's training clips only
    y = np.array([CLASSES.index(c) for c in tr["label"]])
    fit, held = train_test_split(np.arange(len(y)), test_size=0.25, stratify=y, random_state=args.split)
    scale = flow.learn_scale(args.run, tr["flow_cache"].iloc[fit], args.fields)
    raw = [flow.load_munsell(args.run, c, args.fields, scale) for c in tr["flow_cache"]]
    mirrored = [flow.load_munsell(args.run, c, args.fields, scale, mirrored=True) for c in tr["flow_cache"]] if args.flip else None
    X = np.stack(raw)
    rng = np.random.default_rng(args.split)
    steps = 4 * args.per_class // cfg.batch_size

    def batches():
        for _ in range(args.epochs):
            idx = np.concatenate([rng.choice(fit[y[fit] == c], args.per_class) for c in range(len(CLASSES))])
            rng.shuffle(idx)
            flip = rng.random(len(idx)) < 0.5 if args.flip else np.zeros(len(idx), bool)
            for s in range(steps):
                b = idx[s * cfg.batch_size : (s + 1) * cfg.batch_size]
                yield np.stack([mirrored[i] if f else X[i] for i, f in zip(b, flip[s * cfg.batch_size :])]), y[b]

    import tensorflow as tf

    spec = (tf.TensorSpec((None, *X.shape[1:]), tf.uint8), tf.TensorSpec((None,), tf.int64))
    data = tf.data.Dataset.from_generator(batches, output_signature=spec).prefetch(2)
    train.set_determinism(args.split + 1)
    model = models.dtscnn(args.fields, seed=args.split, input_scale=cfg.input_scale)
    opt = keras.optimizers.Adam(args.lr, **({"use_ema": True, "ema_momentum": args.ema} if args.ema else {}))
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def uar() -> float:
        return recall_score(y[held], model.predict(X[held], verbose=0, batch_size=20).argmax(1), average="macro")

    class Score(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            line = f"epoch {epoch}: loss {logs['loss']:.3f}, training accuracy {logs['accuracy']:.3f}, held-out UAR {uar():.3f}"
            if args.ema:  # the averaged weights, swapped in for a moment
                now = [v.numpy() for v in model.trainable_variables]
                for v, a in zip(opt._trainable_variables, opt._model_variables_moving_average):
                    v.assign(a)
                line += f" (averaged weights {uar():.3f})"
                for v, w in zip(model.trainable_variables, now):
                    v.assign(w)
            print(line, flush=True)

    t0 = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=args.epochs, verbose=0, callbacks=[Score()])
    print(f"{vars(args)}: scale {scale:.3f} px, held-out UAR at the end {uar():.3f}, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
