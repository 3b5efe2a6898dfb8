"""Figures.  Every figure goes through :func:`save_fig` into ``<run_dir>/figures/`` (PNG; SVG on
request); figures the README shows also go to ``<run_dir>/figures/readme/``, from where
``make reproduce`` copies them to the repository's ``figures/``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mexpr.datasets import frame_number


def save_fig(fig, name: str, run_dir: str | os.PathLike, readme: bool = False, svg: bool = False, dpi: int = 110) -> Path:
    """Save ``fig`` as ``<run_dir>/figures/<name>.png`` (and ``.svg``); returns the PNG path."""
    out = Path(run_dir) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    if svg:
        fig.savefig(out / f"{name}.svg", bbox_inches="tight", metadata={"Date": None})
    if readme:
        (out / "readme").mkdir(exist_ok=True)
        fig.savefig(out / "readme" / f"{name}.png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return path


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """A frame file as ``(H, W, 3) uint8`` RGB; a clear error names the file if it can't be read."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"{path}: cannot read image (missing or corrupt)")
    return img[..., ::-1].copy()


def face_window(landmarks: np.ndarray, shape: tuple[int, int], margin: float = 0.25) -> tuple[slice, slice]:
    """A square-ish window around the landmarks, for display."""
    x0, y0 = landmarks.min(0)
    x1, y1 = landmarks.max(0)
    w, h = x1 - x0, y1 - y0
    x0, x1 = max(0, int(x0 - margin * w)), min(shape[1], int(x1 + margin * w))
    y0, y1 = max(0, int(y0 - 0.6 * h)), min(shape[0], int(y1 + margin * h))
    return slice(y0, y1), slice(x0, x1)


def phase_montage(df, run_dir=None, name: str = "dataset_onset_apex_offset", readme: bool = False):
    """Onset, apex and offset frames of each clip of ``df`` (one row each), with its label."""
    import matplotlib.pyplot as plt

    from mexpr.preprocess import detect_faces

    n = len(df)
    fig, axes = plt.subplots(n, 3, figsize=(6.6, 2.7 * n), squeeze=False)
    for r, (_, row) in enumerate(df.iterrows()):
        numbers = [frame_number(f) for f in row["frames"]]
        first = read_rgb(row["frames"][0])
        faces = detect_faces(first, upsample=0)
        window = (slice(None), slice(None))
        if faces:  # show the face (the box widened by 25 %), one window for all three frames
            (x0, y0, x1, y1), _ = faces[0]
            mx, my = int(0.25 * (x1 - x0)), int(0.3 * (y1 - y0))
            window = (slice(max(0, y0 - my), y1 + my // 2), slice(max(0, x0 - mx), x1 + mx))
        for c, (phase, frame_no) in enumerate((("onset", row["onset"]), ("apex", row["apex"]), ("offset", row["offset"]))):
            idx = int(np.argmin(np.abs(np.array(numbers) - frame_no)))
            img = read_rgb(row["frames"][idx])
            ax = axes[r, c]
            ax.imshow(img[window])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{phase} (frame {numbers[idx]})", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{row['label']}\n{row['emotion']}, AU {row['action_units']}", fontsize=9)
    fig.tight_layout()
    if run_dir is not None:
        save_fig(fig, name, run_dir, readme=readme)
    return fig


def motion_quiver(ax, image: np.ndarray, field: np.ndarray, window: tuple[slice, slice], amplify: float, step: int = 8, face_scale: float = 1.0):
    """Draw ``field`` (frame px) as arrows amplified ``amplify`` times over ``image``, colour = magnitude
    in crop px (``field / face_scale``)."""
    ys, xs = window
    ax.imshow(image[ys, xs])
    sub = field[ys, xs]
    gy, gx = np.mgrid[step // 2 : sub.shape[0] : step, step // 2 : sub.shape[1] : step]
    u, v = sub[gy, gx, 0], sub[gy, gx, 1]
    mag = np.hypot(u, v) / face_scale
    keep = mag > 0.02
    q = ax.quiver(
        gx[keep], gy[keep], u[keep] * amplify, v[keep] * amplify, mag[keep],
        angles="xy", scale_units="xy", scale=1, cmap="autumn", width=0.006, clim=(0, max(0.3, float(mag.max()))),
    )
    ax.set_xticks([])
    ax.set_yticks([])
    return q
