"""Classifying new clips: a raw frame folder through the run's own pre-processing, flow and Munsell
coding, both streams of a trained fold, their SVMs and Eq. 11 (``python -m mexpr predict``), and
what the pipeline made of one clip, for pictures (notebook 05).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from mexpr import fusion, train
from mexpr.datasets import CLASSES, clip_keys
from mexpr.evaluate import stream_features, stream_flow, svm_training_set
from mexpr.metrics import SHORT
from mexpr.run import Run
from mexpr.settings import LENGTHS


def fold_svms(run_dir, config: train.Config, fold: int = 0, svm_train: str = "augmented", C: float = 1.0) -> dict:
    """Both streams' SVMs of ``fold``, refitted from the cached features (deterministic, a second
    or two; no pickles are stored): ``{64: svm, 128: svm}``, on the classes of the config's protocol."""
    from mexpr.datasets import protocol_classes

    return {
        f: fusion.fit_svm(
            *svm_training_set(stream_features(run_dir, config, f, fold), svm_train),
            C=C,
            seed=config.seed,
            name=f"DTSCNN{f} {svm_train} training features",
            classes=protocol_classes(config.protocol),
        )
        for f in (64, 128)
    }


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """A clip folder's image files in frame order (by the last number in the name, not as text)."""
    from mexpr.datasets import IMAGE_SUFFIXES, frame_number

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of frames")
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    if len(files) < 2:
        raise ValueError(f"{folder}: {len(files)} image frame(s) ({', '.join(IMAGE_SUFFIXES)}); a clip needs at least 2")
    return sorted(files, key=lambda p: (frame_number(p) is None, frame_number(p) or 0, p.name))


#: The longest video file taken as one clip (s); a longer one holds more than one expression: spot it first.
MAX_CLIP_SECONDS = 5.0


def clip_video(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A clip cut as a video file (onset..offset): its frames ``uint8 (T, H, W, 3)`` RGB and times (s).
    A video longer than :data:`MAX_CLIP_SECONDS` is refused: it is a long video, for ``mexpr spot``."""
    from mexpr.video import open_video

    v = open_video(path)
    if v.info.seconds and v.info.seconds > MAX_CLIP_SECONDS:
        raise ValueError(
            f"{path}: a {v.info.seconds:.1f}-s video is not one clip (at most {MAX_CLIP_SECONDS:g} s); "
            "find its expressions first with `mexpr spot` (notebook 10)"
        )
    frames, times = [], []
    for f in v:
        frames.append(f.image[..., ::-1])
        times.append(f.time)
    if len(frames) < 2:
        raise ValueError(f"{path}: {len(frames)} frame(s); a clip needs at least 2")
    return np.ascontiguousarray(np.stack(frames)), np.asarray(times)


def clip_inputs(run_dir, folder, flows: dict | None = None, times=None, return_clip: bool = False):
    """A raw frame folder (or a clip cut as a video file, :func:`clip_video`, or its frames ``uint8
    (T, H, W, 3)`` RGB or a list of frame files, with their ``times`` in s) through the run's own pre-processing, flow and
    Munsell coding:
    ``{64: uint8 (64, 112, 96, 3), 128: uint8 (128, 112, 96, 3)}``.  ``flows``: per stream, how
    to compute and code the flow (:func:`stream_flow`; default: the run's flow stage);
    ``return_clip``: also the pre-processed :class:`~mexpr.preprocess.Clip`.  Raises the
    pre-processing's errors (e.g. :class:`~mexpr.face.FaceNotFoundError` naming the frame)
    on bad input."""
    from mexpr import augment, flow, preprocess

    flows = flows or {f: augment.flow_config(run_dir) for f in (64, 128)}
    if isinstance(folder, np.ndarray | list | tuple):  # frames already read, or frame files (mexpr.timeline)
        clip = preprocess.preprocess_clip(folder, preprocess.load_config(run_dir), times=times)
    elif Path(folder).is_file():  # a clip cut as a video file (mexpr.video): its frames, at their times
        frames, times = clip_video(folder)
        clip = preprocess.preprocess_clip(frames, preprocess.load_config(run_dir), times=times)
    else:
        clip = preprocess.preprocess_clip(frame_files(folder), preprocess.load_config(run_dir))
    x = {f: flow.code(flow.compute_as(clip.resample(f + 1), cfg), cfg) for f, cfg in flows.items()}
    return (x, clip) if return_clip else x


def clip_stages(run_dir, key: str, config: train.Config | None = None, fold: int = 0) -> dict:
    """What the pipeline made of one of the run's clips (``subject_id/clip``), for pictures:
    ``clip`` (its :func:`mexpr.datasets.load` row: frame files, onset, apex, offset, label),
    ``crop`` (the pre-processed frames interpolated to 129, ``uint8 (129, 112, 96, 3)``) and
    ``munsell`` (``{64: ..., 128: ...}``, the coded flow each stream reads: the run's flow stage,
    or ``config``'s input as fold ``fold`` codes it).  ``KeyError`` names a clip the run does not
    have (or skipped)."""
    from mexpr import preprocess

    df = Run(run_dir).dataset(errors="skip")
    clips = train.clips_table(run_dir, config)
    hit, row = df[clip_keys(df) == key], clips[clip_keys(clips) == key]
    if hit.empty or row.empty:
        raise KeyError(f"{key!r} is not a processed clip with flow in {run_dir} (see its manifest.csv and flow_manifest.csv)")
    row = row.iloc[0]
    coding = {f: None if config is None else stream_flow(run_dir, config, f, fold) for f in (64, 128)}
    return {
        "clip": hit.iloc[0],
        "crop": preprocess.load_clip(run_dir, row, LENGTHS[-1]),
        "munsell": {f: train.clip_munsell(run_dir, row, f, coding[f]) for f in (64, 128)},
    }


class Recogniser:
    """One trained fold of a run, ready to classify clips: both streams' pool4 extractors, their
    SVMs (refitted from the cached features, :func:`fold_svms`) and the flow coding each stream was
    trained on; :meth:`classify` takes a clip's raw frames and gives Eq. 11's answer.  Loading it is
    the slow part (seconds): build it once, then classify many clips (``mexpr predict``,
    ``mexpr analyze``).  A fold that is not trained is an :class:`~mexpr.evaluate.EvaluateError`
    naming the command that trains it."""

    def __init__(self, run_dir, config: train.Config, fold: int = 0, svm_train: str = "augmented", C: float = 1.0):
        from mexpr import models
        from mexpr.datasets import protocol_classes

        self.run_dir, self.config, self.fold = run_dir, config, int(fold)
        self.classes = protocol_classes(config.protocol)  # indices into CLASSES
        self.svms = fold_svms(run_dir, config, fold, svm_train, C)
        self.flows = {f: stream_flow(run_dir, config, f, fold) for f in (64, 128)}
        self.models = {f: models.load(train.stream_dir(run_dir, config, f, fold) / "model.keras") for f in (64, 128)}  # Grad-CAM reads them
        self.extractors = {f: models.pool4_features(m) for f, m in self.models.items()}

    @property
    def class_names(self) -> list[str]:
        return [CLASSES[k] for k in self.classes]

    def classify(self, source, times=None, name: str | None = None, return_clip: bool = False) -> dict:
        """Eq. 11 on one clip: ``source`` (a frame folder, a clip cut as a video file, or frames
        ``uint8 (T, H, W, 3)`` RGB with their ``times`` in s, :func:`clip_inputs`).  Returns
        ``prediction`` (a class name), ``from`` (the stream that decided), each stream's own answer
        (``DTSCNN64``, ``DTSCNN128``) and probabilities (``p64``, ``p128``: ``(4,)`` in
        :data:`CLASSES` order, 0 for a class the protocol does not have); with ``return_clip`` also
        ``clip``, the pre-processed :class:`~mexpr.preprocess.Clip`, and ``inputs``, the streams'
        coded inputs.  Raises the pre-processing's
        errors on bad input."""

        x, clip = clip_inputs(self.run_dir, source, self.flows, times=times, return_clip=True)
        p = self.probabilities(x, name or str(source)[:80])
        fused = int(fusion.decision_fusion(p[64], p[128])[0])
        return {
            "prediction": CLASSES[fused],
            "from": "DTSCNN64" if fusion.first_decides(p[64], p[128])[0] else "DTSCNN128",
            "DTSCNN64": CLASSES[int(p[64].argmax())],
            "DTSCNN128": CLASSES[int(p[128].argmax())],
            "p64": p[64][0],
            "p128": p[128][0],
        } | ({"clip": clip, "inputs": x} if return_clip else {})

    def probabilities(self, x: dict, name: str = "clip") -> dict:
        """Both streams' SVM probabilities ``{64: (1, 4), 128: (1, 4)}`` of one clip's coded inputs."""
        from mexpr import models

        p = {}
        for f in (64, 128):
            feats = self.extractors[f].predict(models.check_clips(x[f], f, name=name), verbose=0)
            p[f] = fusion.proba(self.svms[f], feats, classes=list(self.svms[f].classes_))
        return p


def predict_clips(
    run_dir, config: train.Config, folders, fold: int = 0, svm_train: str = "augmented", C: float = 1.0, progress: bool = True
) -> pd.DataFrame:
    """Classify new clips (raw frame folders) with fold ``fold``'s trained streams, their SVMs and
    Eq. 11 (:class:`Recogniser`).  One row per folder: ``status`` ("ok" or "error" with the
    ``reason``), the fused ``prediction``, which stream it came from, and both streams'
    probabilities.  A folder that fails (no face, corrupt frame...) is reported and the others
    carry on."""
    from tqdm.auto import tqdm

    from mexpr import preprocess

    rec = Recogniser(run_dir, config, fold, svm_train, C)
    rows = []
    for folder in tqdm(list(folders), desc="predict", unit="clip", disable=not progress):
        row = {"clip_dir": str(folder), "status": "ok", "reason": ""}
        try:
            r = rec.classify(folder)
        except (preprocess.PreprocessError, ValueError, FileNotFoundError) as exc:  # VideoError is a ValueError
            rows.append(row | {"status": "error", "reason": str(exc)})
            continue
        row |= {k: r[k] for k in ("prediction", "from", "DTSCNN64", "DTSCNN128")}
        for f in (64, 128):
            row |= {f"p{f}_{s}": round(float(v), 4) for s, v in zip(SHORT, r[f"p{f}"])}
        rows.append(row)
    return pd.DataFrame(rows)
