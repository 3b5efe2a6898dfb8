"""Video input: a video file or a folder of frames, read as a stream of frames with their times
(docs/DESIGN.md §10, "Consumer video").

:func:`open_video` takes what a user has: a video file (``.mp4 .mov .avi .mkv`` and anything else
OpenCV's FFmpeg backend decodes) or a folder of numbered frame files (a corpus' ``rawpic/``
folders, a clip folder).  It returns a :class:`Video`, whose iteration yields :class:`Frame`
objects one at a time (index, time in seconds, BGR uint8 image); nothing but the current frame is
held, so memory does not grow with the video's length.

**Frame rate.** A file's rate is its container's; a folder's is given (``fps=``) or unknown.
**Variable frame rate.** Phones record at a variable rate: a file's frame timestamps are read
first (a decode-free pass, :func:`frame_times`), and where they depart from a constant-rate grid
by more than half a frame the video is *resampled to its mean rate* (each output frame the
source frame nearest its time, so frames are repeated or dropped, never blended) and a note says
so (:attr:`VideoInfo.notes`).  Everything downstream then sees a constant rate, as the spotting
metrics and the sheets' frame numbers assume.

**Bad input** raises :class:`VideoError` naming the file: a missing path, a file that is not a
video, a video with no frames.  A file that stops decoding before its container's frame count (a
truncated or partly corrupt file) yields the frames it has and notes how many were missing; in a
frame folder a corrupt file or a missing number repeats the frame before it and is recorded
(:attr:`Video.skipped`), so every frame keeps its number and time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: File suffixes read as videos (any other file is tried too, and refused if OpenCV cannot read it).
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")
#: Frame files read from a folder.
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
#: A video whose frame times depart from a constant-rate grid by more than this many frame
#: intervals is variable-rate (and resampled).
VFR_TOLERANCE = 0.5


class VideoError(ValueError):
    """A video (file or frame folder) that cannot be read; the message names it and the problem."""


@dataclass(frozen=True)
class Frame:
    """One frame: ``index`` (0-based, after any resampling), ``time`` (s from the first frame),
    ``image`` (BGR uint8 ``(H, W, 3)``) and ``number`` (the source's number: a frame file's
    number, or the file's frame index before resampling)."""

    index: int
    time: float
    image: np.ndarray
    number: int


@dataclass
class VideoInfo:
    """What is known about a video before it is read: ``kind`` (``"file"`` or ``"folder"``),
    ``fps`` (the delivered rate; ``None`` for a folder without one), ``n_frames`` (the frames it
    will deliver; for a file, from its timestamps), ``size`` ``(width, height)``, ``variable``
    (variable-rate source, resampled), ``source_fps`` (the container's nominal rate) and ``notes``."""

    path: str
    kind: str
    fps: float | None
    n_frames: int
    size: tuple[int, int]
    variable: bool = False
    source_fps: float | None = None
    first_number: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        return self.n_frames / self.fps if self.fps else None


def _frame_files(folder: Path) -> list[tuple[int, Path]]:
    """The folder's frame files ordered by their number (never as text: ``img1000`` follows
    ``img999``); files without a number are ordered after, by name."""
    from mexpr.clips import frame_number

    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES]
    numbered = [(frame_number(p), p) for p in files]
    with_n = sorted((n, p) for n, p in numbered if n is not None)
    without = sorted(p for n, p in numbered if n is None)
    start = (with_n[-1][0] + 1) if with_n else 0
    return with_n + [(start + i, p) for i, p in enumerate(without)]


def frame_times(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """A video file's frame timestamps in seconds (from its container, one per decodable frame,
    read with ``grab()``: demuxed and decoded, not converted) and its nominal rate."""
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise VideoError(f"{path}: not a video OpenCV's FFmpeg backend can open")
        nominal = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        times = []
        while cap.grab():
            times.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
        return np.asarray(times, np.float64), nominal
    finally:
        cap.release()


def resample_plan(times: Sequence[float], nominal: float | None = None, tolerance: float = VFR_TOLERANCE) -> tuple[np.ndarray, float, bool]:
    """For source frame times ``times`` (s): ``(source index of each output frame, output fps,
    variable)``.  A constant-rate source (every time within ``tolerance`` frames of the grid
    ``t0 + i / fps``) maps each frame to itself at its rate (the nominal one where it agrees);
    a variable-rate one is resampled to its mean rate, each output frame taking the source
    frame nearest its time."""
    t = np.asarray(times, np.float64)
    n = len(t)
    if n == 0:
        return np.zeros(0, int), float(nominal or 0.0), False
    if n == 1:
        return np.zeros(1, int), float(nominal or 1.0), False
    span = t[-1] - t[0]
    mean_fps = (n - 1) / span if span > 0 else float(nominal or 1.0)
    # the nominal rate where it describes the file (containers round: 29.97 vs 30000/1001)
    rate = float(nominal) if nominal and abs(nominal - mean_fps) / mean_fps < 0.01 else mean_fps
    grid = t[0] + np.arange(n) / rate
    off = np.abs(t - grid).max() * rate
    if off <= tolerance and np.all(np.diff(t) > 0):
        return np.arange(n), rate, False
    order = np.argsort(t, kind="stable")
    ts = t[order]
    m = int(round(span * mean_fps)) + 1
    out_t = ts[0] + np.arange(m) / mean_fps
    j = np.clip(np.searchsorted(ts, out_t), 1, n - 1)
    nearest = np.where(np.abs(ts[j - 1] - out_t) <= np.abs(ts[j] - out_t), j - 1, j)
    return order[nearest], mean_fps, True


class Video:
    """A video file or frame folder, read one frame at a time (:func:`open_video`)."""

    def __init__(self, path: Path, info: VideoInfo, plan: np.ndarray | None = None, files: list[tuple[int, Path]] | None = None):
        self.path = path
        self.info = info
        self._plan = plan
        self._files = files
        self.skipped: list[dict] = []  # frames that could not be decoded: {number, reason}

    def __len__(self) -> int:
        return self.info.n_frames

    def __repr__(self) -> str:
        i = self.info
        rate = f"{i.fps:.3g} fps" if i.fps else "fps unknown"
        return f"Video({str(self.path)!r}, {i.kind}, {i.n_frames} frames, {rate}, {i.size[0]}x{i.size[1]})"

    def __iter__(self) -> Iterator[Frame]:
        return self._folder() if self.info.kind == "folder" else self._file()

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (as iteration numbers them) on its own, BGR uint8: random access for a
        viewer's slider (a file is sought, a folder's file read; a frame that cannot be read is a
        :class:`VideoError`).  Reading the whole video is faster by iteration."""
        import cv2

        if not 0 <= index < self.info.n_frames:
            raise VideoError(f"{self.path}: no frame {index} (it has {self.info.n_frames})")
        if self.info.kind == "folder":
            by_number = dict(self._files)
            number = self._files[0][0] + int(index)
            while number >= self._files[0][0]:  # a missing number repeats the frame before it, as iteration does
                if number in by_number and (img := cv2.imread(str(by_number[number]), cv2.IMREAD_COLOR)) is not None:
                    return img
                number -= 1
            raise VideoError(f"{self.path}: frame {index} cannot be read")
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        try:
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(self._plan[index]))
            ok, img = cap.read()
        finally:
            cap.release()
        if not ok:
            raise VideoError(f"{self.path}: frame {index} cannot be read")
        return img

    def _folder(self) -> Iterator[Frame]:
        """Frames ``first .. last`` by number: a missing number or a file that cannot be decoded
        repeats the frame before it (recorded in :attr:`skipped`), so that the frame with number
        ``n`` is always index ``n - first`` (the sheets count frames by number)."""
        import cv2

        fps = self.info.fps
        first, last = self._files[0][0], self._files[-1][0]
        by_number = dict(self._files)
        size = self.info.size
        prev = None
        for number in range(first, last + 1):
            p = by_number.get(number)
            img = cv2.imread(str(p), cv2.IMREAD_COLOR) if p is not None else None
            problem = None
            if p is None:
                problem = "no file with this number"
            elif img is None:
                problem = "cannot be decoded"
            elif (img.shape[1], img.shape[0]) != size:
                problem = f"frame size {img.shape[1]}x{img.shape[0]} differs from the first frame's {size[0]}x{size[1]}"
            if problem:
                self.skipped.append({"number": number, "file": str(p or self.path), "reason": problem})
                if prev is None:
                    continue  # nothing to repeat yet: the first decodable frame starts the video
                img = prev
            prev = img
            i = number - first
            yield Frame(i, i / fps if fps else float(i), img, int(number))

    def _file(self) -> Iterator[Frame]:
        import cv2

        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            raise VideoError(f"{self.path}: not a video OpenCV's FFmpeg backend can open")
        plan = self._plan
        fps = self.info.fps
        try:
            src = -1
            img = None
            for out, want in enumerate(plan):
                while src < want:  # decode up to the source frame this output frame takes
                    ok, img = cap.read()
                    src += 1
                    if not ok:
                        self.info.notes.append(f"{self.path}: stopped decoding at frame {src} of {plan[-1] + 1}; the rest is missing")
                        return
                yield Frame(out, out / fps, img, int(want))
        finally:
            cap.release()


def open_video(source: str | os.PathLike, fps: float | None = None) -> Video:
    """A :class:`Video` for a video file or a folder of frames (module text).  ``fps``: a frame
    folder's rate (CAS(ME)²'s ``rawpic`` 30, SAMM's 200), or a file's rate to use instead of its
    own.  Raises :class:`VideoError` naming ``source`` when it cannot be read."""
    import cv2

    path = Path(source)
    if not path.exists():
        raise VideoError(f"{path}: no such file or folder")
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise VideoError(f"{path}: fps must be a positive number, not {fps!r}")
    if path.is_dir():  # a folder of frames
        files = _frame_files(path)
        if not files:
            raise VideoError(f"{path}: a folder with no frame files ({', '.join(FRAME_SUFFIXES)})")
        first = None
        for _, p in files:
            first = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if first is not None:
                break
        if first is None:
            raise VideoError(f"{path}: none of its {len(files)} frame files can be decoded")
        numbers = [n for n, _ in files]
        notes = []
        missing = numbers[-1] - numbers[0] + 1 - len(numbers)
        if missing > 0:
            notes.append(f"{path}: {missing} frame numbers missing between {numbers[0]} and {numbers[-1]}")
        n = numbers[-1] - numbers[0] + 1  # missing numbers repeat the frame before (Video._folder)
        info = VideoInfo(str(path), "folder", float(fps) if fps else None, n, (first.shape[1], first.shape[0]), first_number=numbers[0], notes=notes)
        return Video(path, info, files=files)
    if not path.is_file():
        raise VideoError(f"{path}: neither a video file nor a folder of frames")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: an empty file (0 bytes), not a video")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise VideoError(f"{path}: not a video OpenCV's FFmpeg backend can open (a {path.suffix or 'suffix-less'} file)")
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    times, nominal = frame_times(path)
    if len(times) == 0:
        raise VideoError(f"{path}: a video with no decodable frames (its header declares {declared})")
    plan, rate, variable = resample_plan(times, nominal)
    notes = []
    if variable:
        notes.append(
            f"{path}: variable frame rate ({len(times)} frames over {times[-1] - times[0]:.2f} s, nominal {nominal:.3g} fps); "
            f"resampled to its mean rate {rate:.3f} fps ({len(plan)} frames, each the nearest source frame)"
        )
    if declared and not variable and len(times) < declared - max(2, 0.01 * declared):  # (a VFR header counts duration x nominal rate)
        notes.append(f"{path}: {declared - len(times)} of the {declared} frames its header declares cannot be read (truncated or corrupt)")
    if fps is not None:
        if variable:
            raise VideoError(f"{path}: fps={fps} given for a variable-rate video; leave it out to resample it to its mean rate")
        notes.append(f"{path}: read at {fps} fps as asked (the file says {rate:.3f})")
        rate = float(fps)
    info = VideoInfo(str(path), "file", rate, len(plan), size, variable, nominal or None, notes=notes)
    return Video(path, info, plan=plan)


def is_video(source: str | os.PathLike) -> bool:
    """Whether ``source`` looks like something :func:`open_video` reads: a video file by its
    suffix, or a folder holding frame files."""
    p = Path(source)
    if p.is_file():
        return p.suffix.lower() in VIDEO_SUFFIXES
    return p.is_dir() and any(q.suffix.lower() in FRAME_SUFFIXES for q in p.iterdir())


def write_video(path: str | os.PathLike, frames, fps: float, codec: str = "mp4v") -> Path:
    """Write BGR uint8 frames (an iterable of ``(H, W, 3)``) to a video file with OpenCV (``mp4v``
    for ``.mp4``/``.mov``, ``MJPG`` for ``.avi``, ``XVID`` for ``.mkv`` unless ``codec`` is given);
    frames are written as they come.  Returns the path."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if codec == "mp4v" and path.suffix.lower() == ".avi":
        codec = "MJPG"
    writer = None
    try:
        for f in frames:
            f = np.asarray(f)
            if f.ndim == 2:
                f = np.repeat(f[..., None], 3, -1)
            if writer is None:
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), float(fps), (f.shape[1], f.shape[0]))
                if not writer.isOpened():
                    raise VideoError(f"{path}: OpenCV cannot write {codec} video here")
            writer.write(np.ascontiguousarray(f, np.uint8))
    finally:
        if writer is not None:
            writer.release()
    if writer is None:
        raise VideoError(f"{path}: no frames to write")
    return path
