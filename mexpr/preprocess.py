"""Face detection and 68-point landmarks (the paper's Pre-Processing section, first step).

The paper locates 68 landmarks with an Active Shape Model; we use dlib's HOG frontal face detector
and its 68-point shape predictor (iBUG 300-W layout), whose model file ships in the
``face-recognition-models`` package.

Several faces: dlib's upsampled detector also returns false faces (on scikit-image's astronaut
photo it returns the face, score 1.2, and a box on the mission patch, score 0.1), so the face with
the highest detection score is taken, not the largest box (DESIGN.md §4).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np


class FaceNotFoundError(RuntimeError):
    """No face was detected in an image."""


def predictor_path() -> Path:
    """Path of dlib's 68-point landmark model shipped by ``face-recognition-models``.

    Located through the package's files rather than its ``pose_predictor_model_location()``
    helper, which imports ``pkg_resources`` (gone from recent setuptools).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the 'face-recognition-models' package is not installed; it ships dlib's "
            "68-point model (pip install face-recognition-models)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise FileNotFoundError(f"dlib's 68-point model is missing from {path.parent}")
    return path


@functools.lru_cache(maxsize=1)
def _detector():
    import dlib

    return dlib.get_frontal_face_detector()


@functools.lru_cache(maxsize=4)
def _predictor(path: str):
    import dlib

    if not os.path.isfile(path):
        raise FileNotFoundError(f"landmark model not found: {path}")
    return dlib.shape_predictor(path)


def detect_faces(image: np.ndarray, upsample: int = 1) -> list[tuple[tuple[int, int, int, int], float]]:
    """All faces in ``image`` (uint8 RGB or grey) as ``((left, top, right, bottom), score)``,
    highest score first."""
    boxes, scores, _ = _detector().run(np.ascontiguousarray(image), upsample, 0.0)
    found = [((b.left(), b.top(), b.right(), b.bottom()), float(s)) for b, s in zip(boxes, scores)]
    return sorted(found, key=lambda f: -f[1])


def detect_face(image: np.ndarray, upsample: int = 1, source: str = "image") -> tuple[int, int, int, int]:
    """The face box of the highest-scoring detection; :class:`FaceNotFoundError` if none."""
    found = detect_faces(image, upsample)
    if not found:
        raise FaceNotFoundError(f"{source}: no face found by dlib's frontal detector (upsample={upsample})")
    return found[0][0]


def landmarks(
    image: np.ndarray,
    box: tuple[int, int, int, int] | None = None,
    model: str | os.PathLike | None = None,
    upsample: int = 1,
    source: str = "image",
) -> np.ndarray:
    """68 landmarks ``(68, 2) float32`` (x, y in pixels) of the face in ``box`` (detected if None)."""
    import dlib

    if box is None:
        box = detect_face(image, upsample, source)
    rect = dlib.rectangle(int(box[0]), int(box[1]), int(box[2]), int(box[3]))
    shape = _predictor(str(model or predictor_path()))(np.ascontiguousarray(image), rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
