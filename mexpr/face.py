"""The face: dlib's detector and 68-point landmarks, the crop's landmark template, and the
photographs the synthetic faces and the template are made from (docs/DESIGN.md §2, step 1–2).

- :func:`find_face` / :func:`detect_faces` / :func:`landmarks`: dlib's HOG frontal detector and
  its 68-point shape predictor (iBUG 300-W layout; the paper used an Active Shape Model).
- :data:`TEMPLATE` / :func:`build_template`: the 68-point frontal face in the 96 × 112 crop that
  every clip's first frame is normalised to.
- :func:`base_faces`: the bundled face photographs with their landmarks (also what
  :mod:`mexpr.synth` builds its identities from); :data:`MIRROR_68` and :func:`normalise_shape`.

Several faces: the detector (with ``adjust_threshold=0``) also returns weak false faces, so
detections scoring below ``min_score`` are ignored; of the faces left, the largest box is taken
(``several="largest"``, the default), or the best-scoring one (``"best"``), or the clip is refused
(``"error"``).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mexpr._template import TEMPLATE_68
from mexpr.settings import CROP_H, CROP_W

#: The 68-point template in crop pixels (x, y), pixel centres at integers: see build_template().
TEMPLATE = TEMPLATE_68

#: What :func:`find_face` does when several faces are found (see the module text).
SEVERAL = ("largest", "best", "error")

# --------------------------------------------------------------------------------------------
# errors


class PreprocessError(ValueError):
    """A clip cannot be pre-processed; the message names the file and the problem."""


class FaceNotFoundError(PreprocessError):
    """No face was detected in an image."""


class MultipleFacesError(PreprocessError):
    """Several faces were found and ``several="error"`` was asked for."""


# --------------------------------------------------------------------------------------------
# dlib: detector and shape predictor


def predictor_path() -> Path:
    """Path of dlib's 68-point landmark model shipped by ``face-recognition-models``.

    Located through the package's files rather than its ``pose_predictor_model_location()``
    helper, which imports ``pkg_resources`` (gone from recent setuptools).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the 'face-recognition-models' package is not installed; it ships dlib's 68-point model (pip install face-recognition-models)"
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


def _grey(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        return np.ascontiguousarray(image)
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def detect_faces(image: np.ndarray, upsample: int = 1) -> list[tuple[tuple[int, int, int, int], float]]:
    """All faces in ``image`` (uint8 RGB or grey) as ``((left, top, right, bottom), score)``,
    highest score first (dlib's detector with ``adjust_threshold=0``)."""
    boxes, scores, _ = _detector().run(_grey(image), upsample, 0.0)
    found = [((b.left(), b.top(), b.right(), b.bottom()), float(s)) for b, s in zip(boxes, scores)]
    return sorted(found, key=lambda f: -f[1])


def _area(box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def find_face(
    image: np.ndarray,
    upsample: int | str = "auto",
    several: str = "largest",
    min_score: float = 0.3,
    source: str = "image",
) -> tuple[int, int, int, int]:
    """The face box ``(left, top, right, bottom)`` of ``image``, by the module's several-faces rule.

    ``upsample="auto"`` tries, until a face scores ``min_score``: a half-size copy (fast, finds
    faces over ~160 px; only for ``several="largest"``), the image itself, then the image
    upsampled once (faces down to ~40 px).
    Raises :class:`FaceNotFoundError` or, with ``several="error"``, :class:`MultipleFacesError`.
    """
    import cv2

    if several not in SEVERAL:
        raise ValueError(f"several must be one of {', '.join(SEVERAL)}, not {several!r}")
    grey = _grey(image)
    if upsample == "auto":
        h, w = grey.shape
        attempts = [(grey, 0, 1.0), (grey, 1, 1.0)]
        if several == "largest":  # a face found at half size is larger than any it misses
            attempts.insert(0, (cv2.resize(grey, (w // 2, h // 2), interpolation=cv2.INTER_AREA), 0, 2.0))
    else:
        attempts = [(grey, int(upsample), 1.0)]
    best_seen = None
    faces: list = []
    for img, up, factor in attempts:
        found = detect_faces(img, up)
        if found:
            best_seen = max(best_seen or -np.inf, found[0][1])
        faces = [(tuple(int(round(c * factor)) for c in b), s) for b, s in found if s >= min_score]
        if faces:
            break
    if not faces:
        extra = f" (best detection score {best_seen:.2f} < min_score {min_score})" if best_seen is not None else ""
        raise FaceNotFoundError(f"{source}: no face found by dlib's frontal detector{extra}")
    if len(faces) > 1 and several == "error":
        listed = ", ".join(f"{b} score {s:.2f}" for b, s in faces)
        raise MultipleFacesError(f"{source}: {len(faces)} faces found ({listed}); pass several='largest' or 'best'")
    if several == "largest":
        return max(faces, key=lambda f: (_area(f[0]), f[1]))[0]
    return faces[0][0]


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
    """68 landmarks ``(68, 2) float32`` (x, y in pixels) of the face in ``box`` (detected if None).

    The predictor is run on the grey image (dlib converts colour images itself, ten times slower).
    """
    import dlib

    if box is None:
        box = detect_face(image, upsample, source)
    rect = dlib.rectangle(int(box[0]), int(box[1]), int(box[2]), int(box[3]))
    shape = _predictor(str(model or predictor_path()))(_grey(image), rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


# --------------------------------------------------------------------------------------------
# the bundled face photographs and their landmarks

#: The landmark that each of the 68 becomes in the mirror image.
MIRROR_68 = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lips
)


@dataclass
class BaseFace:
    """A face photograph with its 68 landmarks (what synthetic identities and the template start from)."""

    name: str
    image: np.ndarray  # float32 RGB 0..255
    landmarks: np.ndarray  # (68, 2)


def _bundled_photos() -> list[tuple[str, np.ndarray]]:
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as im:
        hopper = np.asarray(im.convert("RGB"))
    return [("skimage:astronaut", skimage.data.astronaut()), ("matplotlib:grace_hopper", hopper)]


def _user_photos(folder: str | os.PathLike) -> list[tuple[str, np.ndarray]]:
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"faces folder not found: {folder}")
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"):
            try:
                with Image.open(p) as im:
                    out.append((str(p), np.asarray(im.convert("RGB"))))
            except Exception as exc:
                raise ValueError(f"{p}: cannot read face photo ({exc})") from exc
    if not out:
        raise ValueError(f"{folder}: no .jpg/.png photos found")
    return out


@functools.lru_cache(maxsize=4)
def base_faces(faces: str | None) -> tuple[BaseFace, ...]:
    """The bundled photographs (scikit-image's astronaut, matplotlib's Grace Hopper) and those of the
    folder ``faces``, each with dlib's landmarks; :class:`FaceNotFoundError` names a photo without a face."""
    photos = _bundled_photos() + (_user_photos(faces) if faces else [])
    out = []
    for name, img in photos:
        found = detect_faces(img, upsample=1)
        if not found:
            raise FaceNotFoundError(f"{name}: no face found; faces must be frontal photographs")
        pts = landmarks(img, found[0][0], source=name)
        out.append(BaseFace(name, img.astype(np.float32), pts))
    return tuple(out)


def normalise_shape(pts: np.ndarray) -> np.ndarray:
    """Landmarks -> eye midpoint at 0, eye line horizontal, jaw width 1."""
    le, re_ = pts[36:42].mean(0), pts[42:48].mean(0)
    mid = (le + re_) / 2
    ang = math.atan2(re_[1] - le[1], re_[0] - le[0])
    c, s = math.cos(-ang), math.sin(-ang)
    rot = (pts - mid) @ np.array([[c, s], [-s, c]])
    return rot / np.linalg.norm(rot[16] - rot[0])


# --------------------------------------------------------------------------------------------
# the template


def build_template(size: tuple[int, int] = (CROP_W, CROP_H), jaw_width: float = 80.0, eye_y: float = 38.0) -> np.ndarray:
    """Rebuild :data:`TEMPLATE`: the 68-point frontal face of the 96 × 112 crop.

    How: dlib's 68 landmarks on the two face photographs bundled with the dependencies
    (scikit-image's astronaut, matplotlib's Grace Hopper) and on their mirror images, each
    normalised by a similarity (eye centres' midpoint at the origin, eye line horizontal, jaw
    width 1), averaged (the mirrors make the mean exactly left-right symmetric), then scaled to a
    jaw width of ``jaw_width`` px (points 0–16; 8 px margins in a 96 px crop) and placed with the
    eyes' midpoint at ``(47.5, eye_y)``: brows at y ≈ 25 leave 25 px of forehead for the brow
    actions (AU1/2/4), the chin lands at y ≈ 103.  The paper's template (Yan et al. 2014) is not
    published; any frontal mean shape plays its role.
    """
    shapes = []
    for face in base_faces(None):
        pts = face.landmarks.astype(np.float64)
        mirrored = pts[MIRROR_68].copy()
        mirrored[:, 0] = -mirrored[:, 0]
        shapes += [normalise_shape(pts), normalise_shape(mirrored)]
    mean = np.mean(shapes, axis=0)
    return (mean * jaw_width + np.array([(size[0] - 1) / 2.0, eye_y])).astype(np.float32)
