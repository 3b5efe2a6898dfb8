"""Training each DTSCNN stream on the balanced augmented clips of one fold (Peng et al. 2017,
"Experimental Results": SGD with momentum 0.9, batch 10, learning rate 1e-4 divided by 10 every
10 epochs, dropout 0.5; the two streams trained separately).

``train_stream(run_dir, fields=64, fold=0, config=...)`` does, for one stream and one fold:

1. the fold's split of the run's clips (:func:`mexpr.datasets.splits`),
2. the augmentation plan of its training clips only (:func:`mexpr.augment.plan`, Figure 6) and
   the augmented Munsell clips on disk (:func:`mexpr.augment.build`, cached and resumable),
3. training from a stream of those files (never all in memory), with a checkpoint at every epoch
   (``BackupAndRestore``: an interrupted run resumes at its last finished epoch and ends with the
   same weights), CSV and TensorBoard logs, and the fold's test clips as a *monitor* only
   (nothing is chosen on them: the model kept is the last epoch's),
4. ``model.keras`` and ``history.csv`` in ``<run_dir>/train/<experiment>/fold<k>/dtscnn<fields>/``
   (:func:`experiment_dir`).

One ``seed`` fixes the split, the augmentation, the weight initialisation, dropout and the order
of the batches; on CPU the same seed gives the same weights (TensorFlow's op determinism is on).

Schedules (:data:`SCHEDULES`): ``"paper"`` is the paper's; ``"tuned"`` is ours, labelled as such
everywhere it is used, for when the paper's rate cannot learn in the epochs a profile allows
(notebook 04 shows both).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from mexpr import settings
from mexpr.datasets import CLASSES

#: Learning-rate schedules: initial rate, and the factor applied every ``decay_every`` epochs.
SCHEDULES = {
    "paper": {"lr": 1e-4, "decay_every": 10, "decay": 0.1},  # the paper's text
    "tuned": {"lr": 1e-3, "decay_every": 10, "decay": 0.1},  # ours: see notebook 04 and docs/benchmarks.md
    "adam": {"lr": 3e-4, "decay_every": 15, "decay": 0.3, "optimizer": "adam"},  # ours: Adam (the mexpr input; notebook 08)
}

#: Input representations: what the network is shown.  ``"paper"`` is the paper's (flow between
#: neighbouring frames, each field coloured by its own peak, a new crop for every frame);
#: ``"mexpr"`` is ours, labelled as such wherever it appears: flow since onset, smoothed (Gaussian,
#: 4 px), each field's affine (global) motion removed, one Munsell scale in px learned from the
#: fold's training clips, no crop but mirrored
#: copies, a first layer that reads no motion as zero, and Adam with a moving average of the weights
#: (notebook 08 measures what each of these changes costs or buys; the Table 2 network itself is the
#: paper's).
INPUTS = {
    "paper": {
        "reference": "consecutive",
        "munsell": "frame",
        "mode": "frame",
        "flow_method": "dis",
        "smooth": 0.0,
        "tsmooth": 0.0,
        "global_motion": "keep",
        "input_scale": "symmetric",
        "flip": False,
        "ema": 0.0,
    },
    "mexpr": {
        "reference": "onset",
        "munsell": "learned",
        "mode": "none",
        "flow_method": "dis",
        "smooth": 4.0,
        "global_motion": "affine",
        "input_scale": "motion",
        "flip": True,
        "ema": 0.99,
        "schedule": "adam",
    },
}

TRAIN_VERSION = 1

#: Config fields added after the first checkpoints: left out of the fingerprint at these defaults,
#: so that adding a setting does not make every finished stream retrain.
_ADDED_LATER = {"tsmooth": 0.0, "global_motion": "keep", "devices": 1}


class TrainError(RuntimeError):
    """Training cannot start or resume (e.g. a corrupt or mismatched checkpoint)."""


@dataclass(frozen=True)
class Config:
    """Everything that decides a stream's training; part of its checkpoint's fingerprint."""

    protocol: str = "paper"
    seed: int = 0
    per_class: int = 500
    mode: str = "frame"  # augmentation: "frame" (paper), "clip" (one crop per clip), "none"
    reference: str = "consecutive"  # flow: "consecutive" (paper) or "onset" (ours); flow.REFERENCES
    munsell: str | float = "frame"  # Munsell scaling: "frame" (paper), "clip", "learned", or px
    flow_method: str = "dis"  # flow.METHODS
    smooth: float = 0.0  # Gaussian blur of every flow field, sigma in px (0: none, the paper's)
    tsmooth: float = 0.0  # Gaussian along time over the fields, sigma in fields (ours; 0: none, the paper's); needs raw flow
    global_motion: str = "keep"  # "keep" (the paper's) or "affine": each field's affine motion removed (ours; flow.GLOBAL_MOTION); needs raw flow
    input_scale: str = "symmetric"  # the network's first layer: models.INPUT_SCALES
    flip: bool = False  # augmentation: mirror half the samples left-right (ours; flow.mirror)
    ema: float = 0.0  # keep an exponential moving average of the weights with this momentum and end on it (0: none, the paper's)
    epochs: int = 30
    batch_size: int = 10  # per device: with several devices the global batch is batch_size x devices
    devices: int | str = 1  # 1 (one device, the paper's), "all" local GPUs (or logical CPUs), or a count: mexpr.scale.strategy
    schedule: str = "paper"
    momentum: float = 0.9
    dropout: float = 0.5
    # compute precision: "float32" (the paper's), "bfloat16", "float16" (mixed: float32 weights, softmax, loss and Munsell
    # scale; float16 with loss scaling) or "auto" (bfloat16 on a CPU with AMX/AVX512-BF16, float16 on a GPU, else float32:
    # models.resolve_precision, resolved where it trains).  The default stays float32 until the three-seed check has shown
    # bfloat16's results within noise of float32's (issue 31); it then becomes "auto".  Replaces mixed_precision=True ("float16").
    precision: str = "float32"
    jit_compile: bool = False  # XLA (turns off op determinism: same seed, not bit-identical weights)
    tag: str = ""  # a suffix for the experiment folder, e.g. "tuned"

    def __post_init__(self):
        from mexpr import augment, datasets, flow, models

        try:
            flow.check_reference(self.reference)
            object.__setattr__(self, "munsell", flow.check_scaling(self.munsell))
            object.__setattr__(self, "smooth", flow.check_smooth(self.smooth))
            object.__setattr__(self, "tsmooth", flow.check_smooth(self.tsmooth))
            flow.check_global_motion(self.global_motion)
        except flow.FlowError as e:
            raise ValueError(str(e)) from None
        if self.input_scale not in models.INPUT_SCALES:
            raise ValueError(f"input_scale must be one of {list(models.INPUT_SCALES)}, not {self.input_scale!r}")
        if self.flow_method not in flow.METHODS:
            raise ValueError(f"flow_method must be one of {sorted(flow.METHODS)}, not {self.flow_method!r}")
        if self.protocol not in datasets.PROTOCOLS:
            raise ValueError(f"protocol must be one of {datasets.PROTOCOLS}, not {self.protocol!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, not {self.schedule!r}")
        if self.mode not in augment.MODES:
            raise ValueError(f"mode must be one of {augment.MODES}, not {self.mode!r}")
        if not 0.0 <= float(self.ema) < 1.0:
            raise ValueError(f"ema must be a momentum in [0, 1) (0: no weight averaging), not {self.ema!r}")
        from mexpr import scale

        object.__setattr__(self, "devices", scale.check_devices(self.devices))
        try:
            models.check_precision_name(self.precision)
        except models.PrecisionError as e:
            raise ValueError(str(e)) from None
        if self.epochs < 1 or self.batch_size < 1 or self.per_class < 1:
            raise ValueError("epochs, batch_size and per_class must be >= 1")

    @property
    def rates(self) -> dict:
        return SCHEDULES[self.schedule]

    @property
    def compute_precision(self) -> str:
        """The precision this config trains in on this machine: ``precision`` with ``"auto"``
        resolved (:func:`mexpr.models.resolve_precision`)."""
        from mexpr import models

        return models.resolve_precision(self.precision)[0]

    @property
    def mixed_precision(self) -> bool:
        """Whether it trains in float16 (the setting that ``precision`` replaced)."""
        return self.compute_precision == "float16"

    @property
    def input(self) -> str:
        """The name of this config's input representation in :data:`INPUTS`, or ``"custom"``."""
        # the paper's input leaves the schedule to the profile; ours trains with Adam
        # (a setting an input does not name is the paper's)
        return next((name for name, spec in INPUTS.items() if all(getattr(self, k) == v for k, v in (INPUTS["paper"] | spec).items())), "custom")

    @property
    def builds_on_mexpr(self) -> bool:
        """Whether every setting our ``mexpr`` input names is as it names it (more may be changed)."""
        return all(getattr(self, k) == v for k, v in INPUTS["mexpr"].items())

    @property
    def label(self) -> str:
        """How results of this input are labelled: ``""`` for the paper's, ``" (ours)"`` for
        ``mexpr``, else the settings that differ from the paper's, e.g. ``" (onset, learned)"``."""
        if self.input == "paper":
            return ""
        if self.input == "mexpr":
            return " (mexpr input, ours)"
        if self.builds_on_mexpr:  # ours and more, e.g. " (mexpr input + flow smoothed over 12 fields, ours)"
            extra = [
                SETTING_WORDS[k][1].format(getattr(self, k))
                for k in INPUTS["paper"]
                if k not in INPUTS["mexpr"] and getattr(self, k) != INPUTS["paper"][k]
            ]
            return " (mexpr input + " + ", ".join(extra) + ", ours)"
        return " (" + ", ".join(input_changes(self)) + ")"

    def fingerprint(self, fields: int, fold: int) -> dict:
        """What a checkpoint must match to be resumed (``epochs`` may grow)."""
        d = asdict(self)
        d.pop("epochs")
        for k, default in _ADDED_LATER.items():  # settings added after checkpoints were made: absent at their default
            if d[k] == default:
                d.pop(k)
        # the precision it trains in (auto resolved), as checkpoints made before the setting say float32 and float16
        # (mixed_precision false / true); bfloat16 is named
        precision = self.compute_precision
        d.pop("precision")
        d["mixed_precision"] = precision == "float16"
        if precision == "bfloat16":
            d["precision"] = precision
        return d | {"fields": int(fields), "fold": int(fold), "rates": self.rates, "version": TRAIN_VERSION}


#: Each setting of an input representation in words, one vocabulary for the whole package: the
#: name of our change (the ablation's step, :data:`mexpr.ablation.STEPS`) and how a config's value
#: reads (:func:`input_changes`).
SETTING_WORDS = {
    "reference": ("flow since onset", "flow since {}"),
    "munsell": ("learned Munsell scale", "Munsell scale {}"),
    "mode": ("no crop", "crop per {}"),
    "smooth": ("smoothed flow", "flow smoothed {:g} px"),
    "tsmooth": ("flow smoothed over time", "flow smoothed over {:g} fields"),
    "global_motion": ("global motion removed", "global motion: {}"),
    "input_scale": ("zero input for no motion", "{} input scale"),
    "flip": ("mirrored copies", "mirrored copies"),
    "ema": ("weight averaging", "weights averaged ({:g})"),
    "flow_method": ("another flow method", "{} flow"),
    "schedule": ("Adam", "{} schedule"),
}


def input_changes(config: Config) -> list[str]:
    """The ways ``config``'s input differs from the paper's, in words (``[]`` for the paper's)."""
    paper = INPUTS["paper"]
    return [SETTING_WORDS[k][1].format(getattr(config, k)) for k in paper if getattr(config, k) != paper[k]]


def config_for(profile: str = "default", input: str | None = None, **overrides) -> Config:
    """The :class:`Config` of a profile (``quick``, ``default``, ``paper``) and an input
    representation (:data:`INPUTS`: ``"paper"`` by default, or ``"mexpr"``) with overrides; an
    override of ``None`` keeps the profile's (or the input's) value (so a notebook parameter left
    at ``None`` means "the profile's")."""
    training = {k: settings.profile(profile)[k] for k in settings.TRAINING_KEYS}
    if input is not None and input not in INPUTS:
        raise ValueError(f"unknown input representation {input!r}; valid: {', '.join(INPUTS)}")
    p = training | INPUTS[input or "paper"]
    return replace(Config(), **(p | {k: v for k, v in overrides.items() if v is not None}))


def experiment_dir(run_dir: str | os.PathLike, config: Config) -> Path:
    """``<run_dir>/train/<protocol>-s<seed>-<schedule>[-<input>][-<precision>][-<tag>]``: nothing for the
    paper's input, ``-mexpr`` for ours, else each setting that differs from the paper's (e.g.
    ``-clip`` for one crop per clip, ``-onset-scale0.5``); ``-bfloat16`` / ``-float16`` where it
    trains in that precision (``auto`` resolved), nothing for float32."""
    name = f"{config.protocol}-s{config.seed}-{config.schedule}"
    ours = config.builds_on_mexpr
    if ours:  # our input, and what differs from it (e.g. -mexpr-tsmooth12)
        name += "-mexpr"
    if config.input != "paper":
        paper = INPUTS["paper"]
        for k in paper:
            v = getattr(config, k)
            if v != paper[k] and not (ours and k in INPUTS["mexpr"]):
                if k == "smooth":
                    name += f"-smooth{v:g}"
                elif k == "flip":
                    name += "-flip" if v else "-noflip"
                elif k == "ema":
                    name += f"-ema{v:g}"
                elif k == "tsmooth":
                    name += f"-tsmooth{v:g}"
                elif k == "global_motion":
                    name += f"-{v}motion" if v != "keep" else "-globalkept"
                elif k == "munsell":
                    name += f"-scale{v:g}" if isinstance(v, float) else f"-scale-{v}"
                else:
                    name += f"-{v}"
    name += f"-devices{config.devices}" if config.devices != 1 else ""  # several devices: another global batch, other weights
    precision = config.compute_precision
    name += f"-{precision}" if precision != "float32" else ""  # another precision: other weights, beside the float32 ones
    name += f"-{config.tag}" if config.tag else ""
    return Path(run_dir) / "train" / name


def stream_dir(run_dir, config: Config, fields: int, fold: int) -> Path:
    return experiment_dir(run_dir, config) / f"fold{int(fold)}" / f"dtscnn{int(fields)}"


# --------------------------------------------------------------------------------------------
# data


def flow_manifest(run_dir: str | os.PathLike, config: Config, jobs: int | None = None, progress: bool = False):
    """The flow manifest of ``config``'s flow setting (method, reference, Munsell scaling),
    computing what is missing (:func:`mexpr.flow.run`, cached by its settings; the paper's
    input reuses what notebook 02's flow stage made).  Settings applied before the coding
    (``tsmooth``, ``global_motion``) need the raw flow, so the flow stage keeps it for them."""
    from mexpr import flow

    return flow.run(
        run_dir,
        config.flow_method,
        normalize=config.munsell,
        reference=config.reference,
        smooth=config.smooth,
        raw=bool(config.tsmooth) or config.global_motion != "keep",
        primary=False,
        jobs=jobs,
        progress=progress,
    )


def clips_table(run_dir: str | os.PathLike, config: Config | None = None):
    """The run's clips that have flow (pre-processing manifest joined with the flow manifest;
    ``flow_cache`` is the clip's flow file): the run's flow stage (``flow_manifest.csv``), or with
    ``config``, the flow of that config's input (:func:`flow_manifest`) and only the clips of its
    protocol, labelled in its classes (:func:`mexpr.datasets.protocol_table`: the composite's
    clips and three classes for ``megc3``)."""
    from mexpr import datasets, flow, preprocess

    pre = preprocess.load_manifest(run_dir)
    fm = flow.load_manifest(run_dir) if config is None else flow_manifest(run_dir, config)
    fl = fm[["subject_id", "clip", "status", "cache"]].rename(columns={"status": "flow_status", "cache": "flow_cache"})
    df = pre.merge(fl, on=["subject_id", "clip"], how="left")
    ok = (df["status"] == "processed") & (df["flow_status"] == "processed")
    df = df[ok].reset_index(drop=True)
    return df if config is None else datasets.protocol_table(df, config.protocol)


def fold_split(run_dir: str | os.PathLike, config: Config, fold: int, clips=None):
    """``(train, test)`` clip tables of ``fold`` under the config's protocol and seed; ``clips``: the
    table to split (default :func:`clips_table` of the config, which computes its input's flow if missing)."""
    from mexpr import datasets

    df = clips_table(run_dir, config) if clips is None else clips
    folds = datasets.splits(df, config.protocol, config.seed)
    if not 0 <= fold < len(folds):
        raise ValueError(f"fold {fold} does not exist: protocol {config.protocol!r} has {len(folds)} fold(s) (0..{len(folds) - 1})")
    f = folds[fold]
    return df.iloc[f["train"]].reset_index(drop=True), df.iloc[f["test"]].reset_index(drop=True)


def fold_plan(run_dir: str | os.PathLike, config: Config, fold: int, per_class: int | None = None, clips=None):
    """``(train, test, plan)`` of ``fold``: its clip tables and the augmentation plan of its
    training clips (``per_class`` overrides the config's; a smaller plan is the start of the
    larger one, so its samples are shared in the cache; ``clips``: as :func:`fold_split`)."""
    from mexpr import augment
    from mexpr.datasets import CLASSES, protocol_classes

    train, test = fold_split(run_dir, config, fold, clips)
    classes = [CLASSES[k] for k in protocol_classes(config.protocol)]  # megc3: Negative, Positive, Surprise
    samples = augment.plan(
        train, per_class or config.per_class, seed=config.seed * 1000 + fold, mode=config.mode, test=test, classes=classes, flip=config.flip
    )
    return train, test, samples


def build_samples(run_dir, trainset, samples, fields: int, fold: int, flow_cfg: dict, jobs: int | None = None, progress: bool = True) -> list[str]:
    """The ``.npy`` files of a fold's augmentation plan ``samples`` for the ``fields`` stream
    (:func:`mexpr.augment.build`, cached), coded with the stream's ``flow_cfg``; uncropped samples
    are read from the flow stage's file of their clip (``trainset``'s ``flow_cache``)."""
    from mexpr import augment

    return augment.build(
        run_dir,
        samples,
        fields,
        jobs=jobs,
        progress=progress,
        desc=f"augment fold {fold} f{fields}",
        flow_cfg=flow_cfg,
        flow_files=dict(zip(trainset["cache"], trainset["flow_cache"])),
    )


def fold_count(run_dir: str | os.PathLike, config: Config) -> int:
    """How many folds the config's protocol makes of the run's clips."""
    from mexpr import datasets

    return len(datasets.splits(clips_table(run_dir, config), config.protocol, config.seed))


def folds_of(run_dir: str | os.PathLike, config: Config, folds=None) -> list[int]:
    """``folds`` as a list of the config's protocol's fold indices (``None``: every fold, as a
    profile's ``folds`` of ``None`` means); ``ValueError`` names a fold that does not exist."""
    from mexpr import datasets

    return datasets.check_folds(folds, fold_count(run_dir, config), config.protocol)


def fold_flow(run_dir: str | os.PathLike, config: Config, fold: int, fields: int, train=None) -> dict:
    """How the ``fields`` stream of ``fold`` computes and codes flow: ``{"method", "params",
    "reference", "normalize"}``, ``normalize`` being ``"frame"``, ``"clip"`` or px.  A
    ``"learned"`` scale is learned here from the fold's **training** clips only
    (:func:`mexpr.flow.learn_scale`); ``train``: the fold's training table, if at hand."""
    from mexpr import flow

    if train is None:
        train, _ = fold_split(run_dir, config, fold)
    normalize = config.munsell
    if normalize == "learned":
        normalize = round(flow.learn_scale(run_dir, train["flow_cache"], fields, global_motion=config.global_motion), 4)
    spec = {
        "method": config.flow_method,
        "params": flow.method_params(config.flow_method, {}),
        "reference": config.reference,
        "smooth": config.smooth,
        "normalize": normalize,
    }
    # settings added later are absent at their defaults: the caches of earlier runs stay valid
    return (
        spec
        | ({"tsmooth": config.tsmooth} if config.tsmooth else {})
        | ({"global_motion": config.global_motion} if config.global_motion != "keep" else {})
    )


def clip_munsell(run_dir: str | os.PathLike, row, fields: int, coding: str | float | dict | None = None) -> np.ndarray:
    """One clip's Munsell images (a :func:`clips_table` row): as the flow stage coded them, or
    coded as ``coding`` says: a stream's flow spec (:func:`fold_flow`: its ``normalize`` and
    ``tsmooth``, ``global_motion``) or just a scaling (``"frame"``, ``"clip"``, px: e.g. a fold's learned scale)."""
    from mexpr import flow

    if isinstance(coding, dict):
        return flow.load_coded(run_dir, row["flow_cache"], fields, coding)
    if coding is not None:
        return flow.load_munsell(run_dir, row["flow_cache"], fields, coding)
    return flow.load_flow(
        run_dir, {"status": "processed", "cache": row["flow_cache"], "subject_id": row["subject_id"], "clip": row["clip"], "reason": ""}, fields
    )


def load_test(run_dir: str | os.PathLike, test, fields: int, coding: str | float | dict | None = None):
    """The test clips' Munsell images ``uint8 (N, fields, 112, 96, 3)`` (coded as :func:`clip_munsell`) and labels ``(N,)``."""
    from mexpr import _io

    x = np.stack(_io.thread_map(lambda row: clip_munsell(run_dir, row, fields, coding), [row for _, row in test.iterrows()]))
    y = np.array([CLASSES.index(c) for c in test["label"]], dtype=np.int32)
    return x, y


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the ``n`` training samples in ``epoch``: a function of (seed, epoch) only, so a
    resumed run sees the same batches as an uninterrupted one."""
    return np.random.default_rng([int(seed), 7, int(epoch)]).permutation(n)


def read_npy_into(path, out: np.ndarray) -> None:
    """Read the ``.npy`` file ``path`` straight into the C-contiguous array ``out`` (one copy, no
    temporary: ``np.load`` + assignment copies a 4 MB DTSCNN128 clip twice).  A file of another
    shape or dtype, or a truncated one, is a ``ValueError`` naming it."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        try:
            major, _ = fmt.read_magic(f)
            shape, fortran, dtype = (fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0)(f)
        except ValueError as e:
            raise ValueError(f"{path}: not a readable .npy file ({e})") from e
        if tuple(shape) != out.shape or dtype != out.dtype or fortran:
            raise ValueError(f"{path}: holds {dtype} {tuple(shape)}, expected {out.dtype} {out.shape}; delete it to have it recomputed")
        got = f.readinto(memoryview(out).cast("B"))
    if got != out.nbytes:
        raise ValueError(f"{path}: truncated ({got} of {out.nbytes} bytes); delete it to have it recomputed")


def stream_dataset(paths, labels, fields: int, batch_size: int, seed: int, first_epoch: int, epochs: int):
    """A ``tf.data`` pipeline reading the augmented clips from disk, batch by batch, in the
    order of :func:`epoch_order`, for epochs ``first_epoch .. epochs-1`` (prefetching one batch
    ahead while the model trains).  Memory holds a few batches, whatever the number of clips."""
    import tensorflow as tf

    from mexpr.models import input_shape

    paths = list(paths)
    labels = np.asarray(labels, dtype=np.int32)
    n = len(paths)
    steps = int(np.ceil(n / batch_size))
    shape = input_shape(fields)

    def gen():
        for e in range(first_epoch, epochs):
            order = epoch_order(n, seed, e)
            for s in range(steps):
                idx = order[s * batch_size : (s + 1) * batch_size]
                x = np.empty((len(idx),) + shape, np.uint8)
                for j, i in enumerate(idx):
                    read_npy_into(paths[i], x[j])
                yield x, labels[idx]

    sig = (tf.TensorSpec((None,) + shape, tf.uint8), tf.TensorSpec((None,), tf.int32))
    return tf.data.Dataset.from_generator(gen, output_signature=sig).prefetch(2), steps


# --------------------------------------------------------------------------------------------
# model + optimiser


def set_determinism(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow/Keras from ``seed`` and turn on op determinism."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()


def build(fields: int, config: Config, steps_per_epoch: int, seed: int):
    """A compiled DTSCNN stream: SGD(momentum) with the config's step schedule, in the config's
    precision (:func:`mexpr.models.check_precision`: bfloat16 where this machine cannot compute it
    natively is a :class:`~mexpr.models.PrecisionError`; float16 trains with loss scaling).  With
    ``config.jit_compile`` TensorFlow's op determinism is turned off (Keras' XLA needs that)."""
    import keras

    from mexpr import models

    precision = models.check_precision(config.precision)
    if config.jit_compile:
        # Keras refuses XLA while TensorFlow's op determinism is on: an XLA run is fast, not bit-reproducible
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()
    model = models.dtscnn(fields, dropout=config.dropout, precision=precision, seed=seed, input_scale=config.input_scale, init_seed=seed)
    r = config.rates
    lr = keras.optimizers.schedules.ExponentialDecay(r["lr"], decay_steps=r["decay_every"] * steps_per_epoch, decay_rate=r["decay"], staircase=True)
    # with config.ema the optimizer keeps a moving average of the weights, and fit() ends by copying it into the model
    ema = {"use_ema": True, "ema_momentum": float(config.ema)} if config.ema else {}
    if r.get("optimizer") == "adam":
        opt = keras.optimizers.Adam(learning_rate=lr, **ema)
    else:
        opt = keras.optimizers.SGD(learning_rate=lr, momentum=config.momentum, **ema)
    if precision == "float16":  # float16's range needs the loss scaled (bfloat16 has float32's)
        opt = keras.optimizers.LossScaleOptimizer(opt)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=config.jit_compile)
    return model


def _lr_logger():
    import keras

    class LearningRateLog(keras.callbacks.Callback):
        """Adds the current learning rate to each epoch's logs (for history.csv)."""

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                opt = self.model.optimizer
                opt = getattr(opt, "inner_optimizer", opt)
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(opt._get_current_learning_rate()))

    return LearningRateLog()


def _epoch_seeds():
    import keras

    class EpochSeeds(keras.callbacks.Callback):
        """Sets every random layer's (dropout's) generator to a state that depends on the epoch
        only: the masks of epoch e are the same whether or not the run was resumed before it
        (Keras' weight checkpoints do not hold generator states)."""

        def on_train_begin(self, logs=None):
            self.gens = [layer.seed_generator for layer in self.model.layers if getattr(layer, "seed_generator", None) is not None]
            self.first = [np.asarray(g.state.numpy()) for g in self.gens]

        def on_epoch_begin(self, epoch, logs=None):
            for g, s0 in zip(self.gens, self.first):
                g.state.assign(np.array([s0[0], s0[1] + (epoch << 24)], dtype=s0.dtype))

    return EpochSeeds()


def _backup_epoch(backup: Path) -> int:
    """The epoch a backup's weights were saved after: written into the weights file itself (so the
    two files of a checkpoint can never disagree), or, in checkpoints made before that, read from
    ``training_metadata.json``.  ``OSError`` for an unreadable weights file, ``ValueError``/``KeyError``
    for unreadable metadata."""
    import h5py

    with h5py.File(backup / "latest.weights.h5", "r") as f:
        epoch = f.attrs.get("mexpr_epoch")
    if epoch is not None:
        return int(epoch)
    return int(json.loads((backup / "training_metadata.json").read_text())["epoch"])


def _backup_callback(backup: Path):
    """Keras' ``BackupAndRestore`` (a checkpoint at every epoch's end, restored by ``fit``) whose
    checkpoint is never half-written: the weights go to a temporary file that carries its epoch and
    replaces the last one in one step, then the metadata likewise (:func:`mexpr._io.replacing`).  The
    checkpoint is kept when training ends; :func:`train_stream` removes it once ``done.json`` is
    written, so a task killed in between resumes with nothing left to train."""
    import h5py
    import keras

    from mexpr import _io

    class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
        def _save_model(self):
            os.makedirs(self.backup_dir, exist_ok=True)
            with _io.replacing(self._weights_path, suffix=".weights.h5") as tmp:
                self.model.save_weights(str(tmp), overwrite=True)
                with h5py.File(tmp, "a") as f:
                    f.attrs["mexpr_epoch"] = int(self._current_epoch)
            meta = {"epoch": int(self._current_epoch), "batch": int(self._last_batch_seen)}
            _io.atomic_write_text(self._training_metadata_path, json.dumps(meta))

        def _load_model(self):
            super()._load_model()
            if os.path.exists(self._weights_path):
                self.model._initial_epoch = _backup_epoch(Path(self.backup_dir))

    return AtomicBackupAndRestore(str(backup), delete_checkpoint=False)


def _check_resume(out: Path, fingerprint: dict, model) -> int:
    """The epoch to resume from (0: fresh), after checking the backup matches this training."""
    backup = out / "backup"
    meta, weights = backup / "training_metadata.json", backup / "latest.weights.h5"
    if not weights.exists():
        meta.unlink(missing_ok=True)  # metadata without weights (a checkpoint being removed): start afresh
        return 0
    saved = out / "config.json"
    if saved.is_file():
        old = json.loads(saved.read_text())
        if old != fingerprint:
            diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            raise TrainError(
                f"the checkpoint in {backup} was made with other settings ({', '.join(diff)} differ); "
                "delete that folder, pass force=True (CLI: --force), or use another tag"
            )
    try:
        epoch = _backup_epoch(backup)
    except OSError as e:  # h5py: a truncated or corrupt weights file
        raise TrainError(f"cannot resume from {weights}: {type(e).__name__}: {e}; delete {backup} to start this stream again") from e
    except (ValueError, KeyError, TypeError) as e:
        raise TrainError(f"{meta} is unreadable ({e}); delete {backup} to start this stream again") from e
    try:
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(weights)
    except Exception as e:  # h5py/ValueError: corrupt file, or weights of another model
        raise TrainError(f"cannot resume from {weights}: {type(e).__name__}: {e}; delete {backup} to start this stream again") from e
    return epoch


def _trim_history(path: Path, first: int) -> None:
    """Keep the per-epoch log's complete rows of the epochs before ``first``: a run killed after
    logging an epoch but before its checkpoint logs it again when it resumes, and one killed while
    writing a row leaves part of it (Keras' ``CSVLogger`` appends a row at every epoch's end)."""
    import csv
    import io

    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "epoch" not in rows[0]:
        return
    header, body, i = rows[0], rows[1:], rows[0].index("epoch")
    keep = [r for r in body if len(r) == len(header) and r[i].isdigit() and int(r[i]) < first]
    if keep != body or not path.read_bytes().endswith(b"\n"):
        from mexpr import _io

        out = io.StringIO()
        csv.writer(out).writerows([header, *keep])  # the excel dialect, as CSVLogger writes
        _io.atomic_write_text(path, out.getvalue())


def finished(run_dir: str | os.PathLike, fields: int, fold: int, config: Config) -> dict | None:
    """The saved results (``done.json``) of a stream that finished training with exactly
    ``config`` (same fingerprint and epochs, model saved), or None."""
    out = stream_dir(run_dir, config, fields, fold)
    done = out / "done.json"
    if not done.is_file():
        return None
    info = json.loads(done.read_text())
    ok = info.get("fingerprint") == config.fingerprint(fields, fold) and info.get("epochs") == config.epochs and (out / "model.keras").is_file()
    return info if ok else None


def train_stream(
    run_dir: str | os.PathLike,
    fields: int = 64,
    fold: int = 0,
    config: Config | None = None,
    jobs: int | None = None,
    verbose: int | str = "auto",
    force: bool = False,
    callbacks: list | None = None,
    monitor_test: bool = True,
) -> dict:
    """Train the ``fields`` stream (64 or 128) on ``fold`` of ``run_dir``; see the module text.

    Returns ``{"dir", "model", "history" (DataFrame), "seconds", "train_clips_per_s", ...}``.  A
    stream that finished with the same settings is not trained again (its saved results are
    returned); ``force=True`` starts it afresh.  ``callbacks`` are added after the built-in ones.
    It trains in ``config.precision`` (``"auto"`` resolved here: logged at INFO and recorded in
    ``done.json``'s ``precision`` with the reason; :func:`build`).

    With ``config.devices`` (``"all"`` or a count) the stream is trained under a
    ``tf.distribute.MirroredStrategy`` (:func:`mexpr.scale.strategy`): one replica per device, each
    step a global batch of ``batch_size`` x devices clips split between them (so each device sees
    ``batch_size``, as one device does), and as many fewer steps per epoch.

    Every file it writes is written under a temporary name and renamed into place, so a process
    killed at any moment (a lost Dask worker) leaves nothing half-written: run again, it resumes.
    """
    import contextlib

    import keras
    import pandas as pd

    from mexpr import _io, models, scale

    config = config or Config()
    run_dir = Path(run_dir)
    out = stream_dir(run_dir, config, fields, fold)
    fingerprint = config.fingerprint(fields, fold)
    done = out / "done.json"
    if force and out.exists():
        shutil.rmtree(out)
    info = finished(run_dir, fields, fold, config)
    if info is not None:
        return info | {"dir": str(out), "model": str(out / "model.keras"), "history": pd.read_csv(out / "history.csv"), "cached": True}
    precision = models.check_precision(config.precision)  # before any work: bfloat16 where it cannot run is an error
    why = models.resolve_precision(config.precision)[1]
    logging.getLogger(__name__).info("DTSCNN%d fold %d trains in %s (%s)", fields, fold, precision, why)
    done.unlink(missing_ok=True)  # a stream finished with other settings is trained again
    out.mkdir(parents=True, exist_ok=True)

    trainset, test, samples = fold_plan(run_dir, config, fold)
    fcfg = fold_flow(run_dir, config, fold, fields, trainset)
    stream_seed = int(config.seed) * 1000 + int(fold) * 10 + (1 if fields == 128 else 0)
    _io.atomic_write_text(out / "plan.csv", samples.to_csv(index=False))
    t_aug = time.perf_counter()
    paths = build_samples(run_dir, trainset, samples, fields, fold, fcfg, jobs=jobs, progress=verbose != 0)
    t_aug = time.perf_counter() - t_aug
    labels = np.array([CLASSES.index(c) for c in samples["label"]], dtype=np.int32)

    set_determinism(stream_seed)
    strategy = scale.strategy(config.devices)  # None: one device, as always
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    batch = config.batch_size * replicas  # the global batch: batch_size clips per device
    if strategy is not None:  # Keras (3.15) builds a distributed model from its first batch averaged over the replicas: it must split evenly
        batch = min(batch, replicas * max(1, len(paths) // replicas))
    steps = int(np.ceil(len(paths) / batch))
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = build(fields, config, steps, stream_seed)
    first = _check_resume(out, fingerprint, model)
    _io.atomic_write_text(out / "config.json", json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")
    if first >= config.epochs:
        first = config.epochs  # nothing left but saving
    if first > 0:
        _trim_history(out / "history.csv", first)
    data, _ = stream_dataset(paths, labels, fields, batch, stream_seed, first, config.epochs)  # same steps
    val = load_test(run_dir, test, fields, fcfg) if monitor_test and len(test) else None
    val_batch = batch
    if val is not None and strategy is not None:  # the same even split for the monitor's first batch
        val_batch = min(batch, replicas * (len(val[0]) // replicas))
        val = val if val_batch else None
    cbs = [
        _epoch_seeds(),
        _lr_logger(),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=first > 0),
        _backup_callback(out / "backup"),  # after the log: a checkpoint at epoch e means the log has e rows (or more, trimmed on resume)
        keras.callbacks.TensorBoard(str(out / "tensorboard"), write_graph=False, update_freq="epoch"),
    ] + list(callbacks or [])
    t0 = time.perf_counter()
    if first < config.epochs:
        model.fit(
            data,
            epochs=config.epochs,
            steps_per_epoch=steps,
            validation_data=val,
            validation_batch_size=val_batch or None,
            callbacks=cbs,
            shuffle=False,  # the order is epoch_order's
            verbose=verbose,
        )
    else:  # killed after its last checkpoint, before the model was saved: what fit() does last (the weight average swapped in)
        model.optimizer.finalize_variable_values(model.trainable_weights)
    seconds = time.perf_counter() - t0
    models.save(model, out / "model.keras")
    history = pd.read_csv(out / "history.csv")
    info = {
        "fingerprint": fingerprint,
        "flow": fcfg,  # how this stream's clips are coded (with the fold's learned scale, if any)
        "epochs": config.epochs,
        "precision": {"requested": config.precision, "used": precision, "why": why},
        "resumed_from": first,
        "train_clips": len(paths),
        "test_clips": len(test),
        **({"replicas": replicas, "global_batch": batch} if strategy is not None else {}),
        "augment_seconds": round(t_aug, 2),
        "seconds": round(seconds, 2),
        "train_clips_per_s": round(len(paths) * (config.epochs - first) / seconds, 2) if seconds > 0 and first < config.epochs else None,
        "final": {k: float(v) for k, v in history.iloc[-1].items() if k != "epoch"} if len(history) else {},
    }
    _io.atomic_write_text(done, json.dumps(info, indent=2) + "\n")
    shutil.rmtree(out / "backup", ignore_errors=True)  # finished: the checkpoint is no longer needed
    return info | {"dir": str(out), "model": str(out / "model.keras"), "history": history, "cached": False}


def _train_task(run_dir: str, fields: int, fold: int, config: Config, force: bool) -> dict:
    """One (protocol, fold, stream, seed) training task as a Dask worker runs it: the augmentation
    in the worker's own process (the cluster's parallelism is the tasks'), no progress bar."""
    return train_stream(run_dir, fields, fold, config, jobs=1, verbose=0, force=force)


def task_key(run_dir, config: Config, fields: int, fold: int, kind: str = "train") -> str:
    """The Dask task key of one stream's task, e.g. ``mexpr-train-paper-s0-fold1-dtscnn64-<digest>``
    (the digest: the run folder and the stream's fingerprint)."""
    from mexpr import scale

    return scale.task_key(
        kind, config.protocol, f"s{config.seed}", f"fold{int(fold)}", f"dtscnn{int(fields)}", str(run_dir), config.fingerprint(fields, fold)
    )


def train_many(run_dir, config: Config, pairs, jobs: int | None = None, verbose: int | str = "auto", force: bool = False) -> list[dict]:
    """:func:`train_stream` of each ``(fold, fields)`` of ``pairs``, results in that order: here one
    after another, or inside :func:`mexpr.scale.scheduler` one Dask task each (:func:`task_key`),
    trained by the cluster's workers side by side.  Each stream is seeded by (seed, fold, stream)
    alone, so both give the same weights."""
    from mexpr import scale

    pairs = [(int(k), int(f)) for k, f in pairs]
    if scale.current() is None:
        return [train_stream(run_dir, f, k, config, jobs=jobs, verbose=verbose, force=force) for k, f in pairs]
    calls = [(str(run_dir), f, k, config, force) for k, f in pairs]
    keys = [task_key(run_dir, config, f, k) for k, f in pairs]
    # DTSCNN128 costs about twice DTSCNN64 (twice the fields, the same filters): the 128 streams start first
    costs = [f for _, f in pairs]
    return scale.run_tasks(_train_task, calls, keys, desc=f"train {config.protocol} ({len(pairs)} streams)", progress=verbose != 0, costs=costs)


def run(run_dir, config: Config, folds=None, streams=(64, 128), jobs: int | None = None, verbose: int | str = "auto", force: bool = False):
    """Train ``streams`` on ``folds`` (default: all of the protocol's; inside
    :func:`mexpr.scale.scheduler`, as Dask tasks: :func:`train_many`); writes
    ``<experiment>/train.json`` with one entry per stream and fold, and returns it as a DataFrame."""
    import pandas as pd

    from mexpr import _io

    if folds is None:
        folds = range(fold_count(run_dir, config))
    pairs = [(fold, fields) for fold in folds for fields in streams]
    rows = []
    for (fold, fields), r in zip(pairs, train_many(run_dir, config, pairs, jobs=jobs, verbose=verbose, force=force)):
        rows.append(
            {
                "fold": fold,
                "stream": f"DTSCNN{fields}",
                "cached": r["cached"],
                "augment_s": r["augment_seconds"],
                "train_s": r["seconds"],
                "clips_per_s": r["train_clips_per_s"],
                **{k: round(v, 4) for k, v in r["final"].items()},
            }
        )
    table = pd.DataFrame(rows)
    exp = experiment_dir(run_dir, config)
    exp.mkdir(parents=True, exist_ok=True)
    cfg = asdict(config) | {"compute_precision": config.compute_precision}  # "auto" as resolved here
    _io.atomic_write_text(exp / "train.json", json.dumps({"config": cfg, "streams": rows}, indent=2, default=str) + "\n")
    return table


def history_summary(histories: dict):
    """One row per training run (``histories``: label -> :func:`history`): first and last loss,
    last training accuracy, last and best accuracy on the fold's test clips (monitored only)."""
    import pandas as pd

    return pd.DataFrame(
        {
            label: {
                "first loss": h["loss"].iloc[0],
                "last loss": h["loss"].iloc[-1],
                "last train acc": h["accuracy"].iloc[-1],
                "last test acc (monitor)": h["val_accuracy"].iloc[-1],
                "best test acc (monitor)": h["val_accuracy"].max(),
            }
            for label, h in histories.items()
        }
    ).T


def history(run_dir, config: Config, fields: int, fold: int):
    """A finished (or interrupted) stream's per-epoch log as a DataFrame."""
    import pandas as pd

    path = stream_dir(run_dir, config, fields, fold) / "history.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train fold {fold} of DTSCNN{fields} first")
    return pd.read_csv(path)
