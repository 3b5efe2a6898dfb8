"""Face tracking over long videos: landmarks on every frame, gaps where there is no face, and
every frame aligned to the crop with the head's motion measured (docs/DESIGN.md §10).

:func:`follow` reads a video as a stream (:mod:`mexpr.video`) and yields one :class:`Tracked`
per frame, keeping only a few frames in memory:

1. **Detect at intervals, track between.**  dlib's detector (:func:`mexpr.face.find_face`, the
   pre-processing's several-faces rule) runs on the first frame, every ``detect_every`` seconds
   and whenever tracking looks lost; between detections the 68-point predictor runs in the
   detection's box moved and scaled with the landmarks (as :func:`mexpr.preprocess.track_landmarks`
   does within a clip).  Tracking is *lost* when the face patch stops resembling the one seen at
   the last detection (normalised cross-correlation below ``min_similarity``: a hand over the
   face, a scene cut, the face leaving) or the landmarks collapse; the detector is then asked at
   once, and where it finds no face the frame is a **gap**.  During a gap the detector is asked
   every ``gap_every`` seconds.  Gaps are recorded (:attr:`Follower.gaps`: first and last frame,
   times, why) and never stop the run.  Detection runs on the frame scaled down to at most
   ``detect_side`` px, so a 4K video costs what a VGA one does.
2. **Smooth.**  The landmark tracks are smoothed over time (Gaussian, ``smooth`` frames, within a
   run of tracked frames), as the clips' are (:func:`mexpr.align.smooth_tracks`), with a lookahead
   of ``2 smooth`` frames.
3. **Align.**  Each run of tracked frames (a *segment*) is aligned as a clip is
   (:data:`mexpr.align.DEFAULT_ALIGN`, ``"lwm-similarity"``): the segment's first frame is
   normalised to the crop's template by the paper's LWM transform, and every later frame is
   registered to it by a similarity fitted to the 68 landmarks.  The crop is the grey 96 x 112
   face; the **head's pose** per frame is the similarity from the template to its landmarks:
   translation of the face centre (frame px), rotation (degrees) and scale, so that spotting can
   tell a head turn from an expression.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mexpr.face import TEMPLATE, PreprocessError
from mexpr.settings import CROP_H, CROP_W
from mexpr.video import Frame, Video, open_video

#: Why a frame has no face (a gap's ``reason``).
NO_FACE = "no face found"
LOST = "tracking lost and no face found again (covered, turned away or a scene cut)"

_PATCH = 32  # side of the patch compared to tell whether the tracked face is still there


@dataclass(frozen=True)
class Tracked:
    """One frame of a tracked video: ``index``, ``time`` (s), ``number`` (the source's frame
    number), ``found`` (a face is tracked), ``landmarks`` ``(68, 2)`` frame px (smoothed),
    ``pose`` ``[tx, ty, rotation_deg, scale]`` (the template's centre in the frame, its rotation
    and scale), ``crop`` the aligned grey face ``(112, 96) uint8``, ``detected`` (the detector
    ran on this frame) and ``segment`` (which run of tracked frames; -1 in a gap)."""

    index: int
    time: float
    number: int
    found: bool
    landmarks: np.ndarray | None
    pose: np.ndarray | None
    crop: np.ndarray | None
    detected: bool
    segment: int


def _grey(image: np.ndarray) -> np.ndarray:
    import cv2

    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def _patch(grey: np.ndarray, lms: np.ndarray) -> np.ndarray | None:
    """The face's central patch (the landmarks' box), ``_PATCH`` x ``_PATCH``, zero mean, unit norm."""
    import cv2

    x0, y0 = np.floor(lms.min(0)).astype(int)
    x1, y1 = np.ceil(lms.max(0)).astype(int)
    h, w = grey.shape
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    p = cv2.resize(grey[y0:y1, x0:x1], (_PATCH, _PATCH), interpolation=cv2.INTER_AREA).astype(np.float32)
    p -= p.mean()
    n = float(np.linalg.norm(p))
    return p / n if n > 1e-6 else None


def pose_of(lms: np.ndarray) -> np.ndarray:
    """The head's pose ``[tx, ty, rotation_deg, scale] float32`` from 68 landmarks: the similarity
    mapping the crop's template onto them (where the template's centre lands, its rotation and
    scale: ~1/3 for a 640 x 480 CASME II face seen at 96 x 112)."""
    from mexpr.align import apply_affine, similarity

    M = similarity(TEMPLATE, lms)
    centre = apply_affine(M, np.array([[(CROP_W - 1) / 2, (CROP_H - 1) / 2]]))[0]
    scale = math.sqrt(abs(np.linalg.det(M[:, :2])))
    rot = math.degrees(math.atan2(M[1, 0], M[0, 0]))
    return np.array([centre[0], centre[1], rot, scale], np.float32)


class Follower:
    """Iterating yields a :class:`Tracked` per frame (:func:`follow`); afterwards :attr:`gaps`
    lists the frames without a face and :attr:`stats` counts detections."""

    def __init__(
        self,
        video: Video,
        detect_every: float = 1.0,
        gap_every: float = 0.5,
        min_similarity: float = 0.6,
        smooth: float = 1.5,
        detect_side: int = 640,
        several: str = "largest",
        min_score: float = 0.3,
        model: str | os.PathLike | None = None,
        progress: bool = False,
    ):
        if several not in ("largest", "best", "error"):
            raise ValueError(f"several must be largest, best or error, not {several!r}")
        self.video = video
        self.info = video.info
        rate = video.info.fps or 30.0
        self.detect_every = max(1, int(round(detect_every * rate)))
        self.gap_every = max(1, int(round(gap_every * rate)))
        self.min_similarity = float(min_similarity)
        self.smooth = float(smooth)
        self.detect_side = int(detect_side)
        self.several, self.min_score = several, float(min_score)
        self.model = model
        self.progress = progress
        self.gaps: list[dict] = []
        self.stats = {"frames": 0, "tracked": 0, "detections": 0, "lost": 0}

    # ---------------------------------------------------------------- 1. landmarks
    def _detect(self, grey: np.ndarray, where: str) -> tuple[int, int, int, int] | None:
        import cv2

        from mexpr.face import FaceNotFoundError, find_face

        self.stats["detections"] += 1
        h, w = grey.shape
        f = min(1.0, self.detect_side / max(h, w))
        small = cv2.resize(grey, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA) if f < 1 else grey
        try:
            box = find_face(small, upsample=0, several=self.several, min_score=self.min_score, source=where)
        except FaceNotFoundError:
            return None
        return tuple(int(round(c / f)) for c in box)

    def _landmarks(self) -> Iterator[tuple[Frame, np.ndarray | None, bool, str | None]]:
        """``(frame, landmarks or None, detected here, why not found)`` for every frame."""
        from mexpr.face import landmarks, predictor_path

        model = str(self.model or predictor_path())
        box = ref_lms = ref_patch = None  # the last detection's box, landmarks and patch
        prev = None  # the previous frame's landmarks (None: no face)
        last_try = -(10**9)
        for fr in self.video:
            grey = _grey(fr.image)
            where = f"{self.video.path} frame {fr.number}"
            detected = False
            lms = None
            why = None
            if prev is not None and fr.index - last_try < self.detect_every:
                # track: the detection's box moved and scaled with the landmarks
                c0, c1 = ref_lms.mean(0), prev.mean(0)
                s = float(np.ptp(prev, 0).mean() / max(np.ptp(ref_lms, 0).mean(), 1e-6))
                bw, bh = (box[2] - box[0]) * s, (box[3] - box[1]) * s
                bc = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]) + (c1 - c0)
                cur = (bc[0] - bw / 2, bc[1] - bh / 2, bc[0] + bw / 2, bc[1] + bh / 2)
                lms = landmarks(grey, cur, model)
                patch = _patch(grey, lms)
                if np.ptp(lms, 0).min() < 4 or patch is None or float((patch * ref_patch).sum()) < self.min_similarity:
                    self.stats["lost"] += 1
                    lms = None  # lost: ask the detector now
                    why = LOST
            if lms is None and (prev is not None or fr.index - last_try >= self.gap_every):
                last_try = fr.index
                detected = True
                found = self._detect(grey, where)
                if found is not None:
                    lms = landmarks(grey, found, model)
                    patch = _patch(grey, lms)
                    if np.ptp(lms, 0).min() >= 4 and patch is not None:
                        box, ref_lms, ref_patch = found, lms, patch
                        why = None
                    else:
                        lms = None
                if lms is None:
                    why = why or NO_FACE
            elif lms is None:  # inside a gap, between two tries: the gap it continues keeps its reason (_gap)
                why = NO_FACE
            prev = lms
            yield fr, lms, detected, why

    # ---------------------------------------------------------------- 2. smoothing
    def _smoothed(self) -> Iterator[tuple[Frame, np.ndarray | None, bool, str | None]]:
        """The landmarks smoothed over time within each run of tracked frames (lookahead ``D``)."""
        D = int(math.ceil(2 * self.smooth)) if self.smooth > 0 else 0
        if D == 0:
            yield from self._landmarks()
            return
        w = np.exp(-0.5 * (np.arange(-D, D + 1) / self.smooth) ** 2)
        buf: deque = deque()  # at most 2 D + 1 items

        def emit(i: int):
            fr, lms, det, why = buf[i]
            if lms is None:
                return fr, None, det, why
            acc, tot = np.zeros((68, 2)), 0.0
            for j in range(max(0, i - D), min(len(buf), i + D + 1)):
                other = buf[j][1]
                if other is None:  # a gap ends the run: only its own side counts
                    if j < i:
                        acc, tot = np.zeros((68, 2)), 0.0
                        continue
                    break
                acc += w[j - i + D] * other
                tot += w[j - i + D]
            return fr, (acc / tot).astype(np.float32), det, why

        base = emitted = 0  # the frame index of buf[0]; the next frame to emit
        for item in self._landmarks():
            buf.append(item)
            while emitted + D < base + len(buf):  # D frames of lookahead
                yield emit(emitted - base)
                emitted += 1
                while emitted - base > D:  # D frames of history
                    buf.popleft()
                    base += 1
        while emitted < base + len(buf):
            yield emit(emitted - base)
            emitted += 1

    # ---------------------------------------------------------------- 3. alignment
    def __iter__(self) -> Iterator[Tracked]:
        from tqdm.auto import tqdm

        from mexpr.align import AlignmentError, alignment_maps, apply_affine, similarity, warp

        ref = q0 = None
        segment = -1
        bar = tqdm(total=len(self.video), desc=f"tracking {self.video.path.name}", unit="frame", disable=not self.progress)
        try:
            for fr, lms, det, why in self._smoothed():
                self.stats["frames"] += 1
                bar.update()
                if lms is not None:
                    try:
                        if ref is None:  # a new segment: its first frame to the template (LWM)
                            q0 = alignment_maps(lms[None], "lwm-first")[0].reshape(-1, 2).astype(np.float64)
                            ref = lms.astype(np.float64)
                            segment += 1
                        M = similarity(ref, lms)
                        crop = warp(_grey(fr.image), apply_affine(M, q0).reshape(CROP_H, CROP_W, 2).astype(np.float32))
                        pose = pose_of(lms)
                    except (AlignmentError, PreprocessError, np.linalg.LinAlgError):
                        lms, why = None, "landmarks could not be aligned"
                if lms is None:
                    ref = q0 = None
                    self._gap(fr, why or NO_FACE)
                    yield Tracked(fr.index, fr.time, fr.number, False, None, None, None, det, -1)
                    continue
                self.stats["tracked"] += 1
                yield Tracked(fr.index, fr.time, fr.number, True, lms, pose, crop, det, segment)
        finally:
            bar.close()

    def _gap(self, fr: Frame, why: str) -> None:
        g = self.gaps[-1] if self.gaps else None
        if g is not None and g["end_frame"] == fr.index - 1:
            g["end_frame"], g["end_s"] = fr.index, fr.time
            return
        self.gaps.append({"start_frame": fr.index, "end_frame": fr.index, "start_s": fr.time, "end_s": fr.time, "reason": why})


def follow(source, fps: float | None = None, progress: bool = False, **kw) -> Follower:
    """Track the face through ``source`` (a video file, a frame folder or a :class:`~mexpr.video.Video`):
    a :class:`Follower` to iterate (module text; keyword arguments as :class:`Follower`'s)."""
    video = source if isinstance(source, Video) else open_video(source, fps=fps)
    return Follower(video, progress=progress, **kw)
