"""Figures.  Every figure goes through :func:`save_fig` into ``<run_dir>/figures/`` (PNG; SVG on
request); figures the README shows also go to ``<run_dir>/figures/readme/``, from where
``make reproduce`` copies them to the repository's ``figures/``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mexpr.datasets import frame_number

#: Each class's colour in timelines and annotated videos (mexpr.timeline) (RGB 0-1), in CLASSES order (N, O, P, S).
#: Macro-expressions in timelines (not classified: the streams are micro-expression classifiers).
MACRO_COLOUR = (0.85, 0.72, 0.45)
CLASS_COLOURS = {"Negative": (0.84, 0.15, 0.16), "Others": (0.5, 0.5, 0.5), "Positive": (0.17, 0.63, 0.17), "Surprise": (0.12, 0.47, 0.71)}


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
        if svg:
            fig.savefig(out / "readme" / f"{name}.svg", bbox_inches="tight", metadata={"Date": None})
    return path


def _finish(fig, run_dir, name: str | None, readme: bool = False, title: str = "", svg: bool = False):
    """Every figure's last steps: its title, a tight layout, and :func:`save_fig` when a run
    folder (and a name) is given.  Returns ``fig``."""
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if run_dir is not None and name:
        save_fig(fig, name, run_dir, readme=readme, svg=svg)
    return fig


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


def detected_face_window(image: np.ndarray) -> tuple[slice, slice]:
    """The face dlib finds in ``image``, its box widened by 25 % (for display); the whole image if
    none is found."""
    from mexpr.face import detect_faces

    faces = detect_faces(image, upsample=0)
    if not faces:
        return slice(None), slice(None)
    (x0, y0, x1, y1), _ = faces[0]
    mx, my = int(0.25 * (x1 - x0)), int(0.3 * (y1 - y0))
    return slice(max(0, y0 - my), y1 + my // 2), slice(max(0, x0 - mx), x1 + mx)


def phase_montage(df, run_dir=None, name: str = "dataset_onset_apex_offset", readme: bool = False):
    """Onset, apex and offset frames of each clip of ``df`` (one row each), with its label."""
    import matplotlib.pyplot as plt

    n = len(df)
    fig, axes = plt.subplots(n, 3, figsize=(6.6, 2.7 * n), squeeze=False)
    for r, (_, row) in enumerate(df.iterrows()):
        numbers = [frame_number(f) for f in row["frames"]]
        window = detected_face_window(read_rgb(row["frames"][0]))  # one window for all three frames
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
    return _finish(fig, run_dir, name, readme)


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
        gx[keep],
        gy[keep],
        u[keep] * amplify,
        v[keep] * amplify,
        mag[keep],
        angles="xy",
        scale_units="xy",
        scale=1,
        cmap="autumn",
        width=0.006,
        clim=(0, max(0.3, float(mag.max()))),
    )
    ax.set_xticks([])
    ax.set_yticks([])
    return q


def landmark_panel(ax, image: np.ndarray, lms: np.ndarray, box=None, title: str = "", window=None, size: float = 6):
    """``image`` with its 68 landmarks (and face box) drawn; ``window`` crops the view."""
    from matplotlib.patches import Rectangle

    ys, xs = window if window is not None else (slice(0, image.shape[0]), slice(0, image.shape[1]))
    ax.imshow(image[ys, xs], cmap="gray" if image.ndim == 2 else None)
    ax.scatter(lms[:, 0] - xs.start, lms[:, 1] - ys.start, s=size, c="#00e0ff", linewidths=0)
    if box is not None:
        ax.add_patch(Rectangle((box[0] - xs.start, box[1] - ys.start), box[2] - box[0], box[3] - box[1], fill=False, ec="#ffcc00", lw=1.2))
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def frame_strip(frames: np.ndarray, n: int = 8, title: str = "", run_dir=None, name: str | None = None, readme: bool = False):
    """``n`` evenly spaced frames of a clip ``(T, H, W, 3)`` in one row, labelled by index."""
    import matplotlib.pyplot as plt

    idx = np.linspace(0, len(frames) - 1, n).round().astype(int)
    fig, axes = plt.subplots(1, n, figsize=(1.25 * n, 1.25 * frames.shape[1] / frames.shape[2] + 0.4))
    for ax, i in zip(axes, idx):
        ax.imshow(frames[i])
        ax.set_title(f"{i}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    return _finish(fig, run_dir, name, readme, title=title)


def strip_rows(rows: dict, n: int = 8, title: str = "", run_dir=None, name: str | None = None, readme: bool = False):
    """Several clips (``{label: (T, H, W, 3)}``, same T) as rows of ``n`` evenly spaced frames."""
    import matplotlib.pyplot as plt

    first = next(iter(rows.values()))
    idx = np.linspace(0, len(first) - 1, n).round().astype(int)
    h = first.shape[1] / first.shape[2]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.2 * n + 1.2, 1.2 * h * len(rows) + 0.5), squeeze=False)
    for r, (label, clip) in enumerate(rows.items()):
        for ax, i in zip(axes[r], idx):
            ax.imshow(clip[i])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{i}", fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    return _finish(fig, run_dir, name, readme, title=title)


def training_curves(histories: dict, run_dir=None, name: str = "training_curves", readme: bool = False, title: str = ""):
    """Loss and accuracy per epoch: ``histories`` maps a stream name to ``{fold: DataFrame}``
    (Keras' CSV log).  Solid: the augmented training clips; dashed: the fold's test clips
    (monitored only, never used for a choice)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(histories), figsize=(4.6 * len(histories), 6), squeeze=False, sharex="col")
    for c, (stream, folds) in enumerate(histories.items()):
        for k, (fold, h) in enumerate(sorted(folds.items())):
            colour = f"C{k}"
            for r, metric in enumerate(("loss", "accuracy")):
                ax = axes[r, c]
                ax.plot(h["epoch"] + 1, h[metric], c=colour, lw=1.5, label=f"fold {fold} train")
                if f"val_{metric}" in h:
                    ax.plot(h["epoch"] + 1, h[f"val_{metric}"], c=colour, lw=1.2, ls="--", label=f"fold {fold} test (monitor)")
                ax.set_ylabel(metric)
                ax.grid(alpha=0.3)
        axes[0, c].set_title(stream, fontsize=10)
        axes[1, c].set_xlabel("epoch")
        axes[1, c].axhline(0.25, c="grey", lw=0.8, ls=":")
    axes[0, -1].legend(fontsize=7, loc="upper right")
    return _finish(fig, run_dir, name, readme, title=title)


def compare_histories(histories: dict, title: str = "", run_dir=None, name: str = "training_comparison", readme: bool = False):
    """Two or more training runs side by side: ``histories`` maps a label to a Keras CSV log
    (:func:`mexpr.train.history`).  Left: training loss (chance, ln 4, dotted); right: accuracy on
    the augmented training clips (solid) and on the fold's test clips (dashed, monitored only;
    chance 25 %, dotted)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.3))
    for i, (label, h) in enumerate(histories.items()):
        axes[0].plot(h["epoch"] + 1, h["loss"], c=f"C{i}", label=label)
        axes[1].plot(h["epoch"] + 1, h["accuracy"], c=f"C{i}", label=f"{label}: train")
        axes[1].plot(h["epoch"] + 1, h["val_accuracy"], c=f"C{i}", ls="--", label=f"{label}: test (monitor)")
    axes[0].axhline(np.log(4), c="grey", ls=":", lw=0.8)
    axes[0].set_ylabel("training loss")
    axes[1].axhline(0.25, c="grey", ls=":", lw=0.8)
    axes[1].set_ylabel("accuracy")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return _finish(fig, run_dir, name, readme, title=title)


def frames_over_flow(examples: dict, n: int = 8, run_dir=None, name: str = "flow_figure2", readme: bool = False):
    """The paper's Figure 2: pre-processed frames above the Munsell-coded flow that leaves each of
    them.  ``examples`` maps a row label (a class) to ``(frames, coded, apex)``: ``(65, 112, 96, 3)``
    frames, ``(64, 112, 96, 3)`` coded fields and the apex's index among them; ``n`` fields around
    the apex are shown."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2 * len(examples), n, figsize=(1.3 * n, 3.1 * len(examples)), squeeze=False)
    for r, (label, (frames, coded, a)) in enumerate(examples.items()):
        last = len(coded) - 1
        for c, i in enumerate(np.linspace(max(0, a - 14), min(last, a + 14), n).round().astype(int)):
            axes[2 * r, c].imshow(frames[i])
            axes[2 * r + 1, c].imshow(coded[i])
            axes[2 * r, c].set_title(f"t={i}" + (" (apex)" if abs(i - a) <= 2 else ""), fontsize=7)
        axes[2 * r, 0].set_ylabel(f"{label}\nframes", fontsize=8)
        axes[2 * r + 1, 0].set_ylabel("flow", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return _finish(fig, run_dir, name, readme)


def flow_benchmark(bench, run_dir=None, name: str = "flow_benchmark", readme: bool = False):
    """The flow methods against ground truth (``docs/results/flow_benchmark.csv``, written by
    ``benchmarks/flow.py``): end-point and angular error in the Action-Unit regions per peak
    amplitude (px at 96×112; zero flow's error for scale), and milliseconds per pair on one core."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for m, g in bench.groupby("method"):
        axes[0].plot(g["amplitude"], g["epe_au"], "o-", label=m)
        axes[1].plot(g["amplitude"], g["ae_au"], "o-", label=m)
    zero = bench.groupby("amplitude")["epe_au_zero_flow"].mean()
    axes[0].plot(zero.index, zero.values, "k--", lw=0.8, label="zero flow")
    axes[0].set(xscale="log", yscale="log", xlabel="peak motion (px at 96×112)", ylabel="EPE in AU regions (px)", title="end-point error")
    axes[1].set(xscale="log", xlabel="peak motion (px at 96×112)", ylabel="degrees", title="angular error in AU regions")
    speed = bench.groupby("method")["ms_in_clip"].first().sort_values()
    axes[2].barh(speed.index, speed.values)
    axes[2].set(xscale="log", xlabel="ms per 96×112 pair (inside a clip), one core", title="speed")
    axes[0].legend(fontsize=8)
    return _finish(fig, run_dir, name, readme)


def apex_difference(clips: dict, apex_index: int, run_dir=None, name: str = "preprocess_alignment_difference", gain: float = 6.0):
    """Per alignment mode: the crop at onset, and |apex − onset| amplified ``gain`` times.  Head
    motion that alignment leaves shows as bright edges everywhere; the expression stays local."""
    import matplotlib.pyplot as plt

    modes = list(clips)
    fig, axes = plt.subplots(2, len(modes), figsize=(1.9 * len(modes), 4.6), squeeze=False)
    for c, mode in enumerate(modes):
        fr = clips[mode].frames.astype(np.float32)
        a = min(apex_index, len(fr) - 1)
        diff = np.abs(fr[a] - fr[0]).mean(-1)
        axes[0, c].imshow(clips[mode].frames[0])
        axes[0, c].set_title(mode, fontsize=9)
        axes[1, c].imshow(np.clip(diff * gain, 0, 255), cmap="magma", vmin=0, vmax=255)
        axes[1, c].set_title(f"|apex − onset| × {gain:g}\nmean {diff.mean():.2f}", fontsize=8)
        for ax in axes[:, c]:
            ax.set_xticks([])
            ax.set_yticks([])
    return _finish(fig, run_dir, name)


def alignment_modes_plot(results, run_dir=None, name: str = "preprocess_alignment_modes", readme: bool = False):
    """Box plots per alignment variant of :func:`mexpr.groundtruth.compare_alignments` results."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    panels = [
        ("residual_head_rms", "residual head motion\n(RMS px at 96×112; lower is better)"),
        ("jitter_rms", "frame-to-frame residual motion\n(RMS px; lower is better)"),
        ("expression_kept", "expression motion kept at apex\n(1 = all; higher is better)"),
        ("noise_rms", "non-rigid motion added\n(RMS px; lower is better)"),
    ]
    order = list(dict.fromkeys(results["variant"]))
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.2))
    for ax, (col, label) in zip(axes, panels):
        sns.boxplot(data=results, x="variant", y=col, order=order, ax=ax, showfliers=False, color="#9ecae1")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(axis="x", rotation=45, labelsize=7)
        for t in ax.get_xticklabels():
            t.set_ha("right")
    axes[2].axhline(1.0, color="k", lw=0.8, ls="--")
    return _finish(fig, run_dir, name, readme)


def confusion_matrices(cms: dict, run_dir=None, name: str = "figure7_confusion_matrices", readme: bool = False, title: str = "", ncols: int = 3):
    """Figure 7: one seaborn heatmap per method (``cms`` maps a method to its ``(4, 4)`` counts,
    rows true, columns predicted, N/O/P/S order); cells show the row-normalised percentage and the
    count; each row label gives the class's number of test clips.  A class no matrix has a clip of
    or a prediction for (Others under the ``megc3`` protocol's three classes) is left out.  PNG and
    SVG."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from mexpr.datasets import CLASSES

    total = sum(np.asarray(cm, dtype=float) for cm in cms.values())
    keep = [k for k in range(len(CLASSES)) if total[k].sum() + total[:, k].sum() > 0] or list(range(len(CLASSES)))
    cms = {m: np.asarray(cm)[np.ix_(keep, keep)] for m, cm in cms.items()}
    short = [CLASSES[k][0] for k in keep]
    n = len(cms)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.3 * nrows), squeeze=False)
    for ax, (method, cm) in zip(axes.flat, cms.items()):
        cm = np.asarray(cm, dtype=float)
        support = cm.sum(1, keepdims=True)
        pct = np.divide(cm, support, out=np.zeros_like(cm), where=support > 0) * 100
        annot = np.array([[f"{pct[i, j]:.1f}%\n({int(cm[i, j])})" for j in range(cm.shape[1])] for i in range(cm.shape[0])])
        sns.heatmap(
            pct,
            annot=annot,
            fmt="",
            vmin=0,
            vmax=100,
            cmap="Blues",
            cbar=False,
            square=True,
            ax=ax,
            xticklabels=short,
            yticklabels=[f"{s} ({int(k)})" for s, k in zip(short, support[:, 0])],
            annot_kws={"fontsize": 8},
        )
        acc = np.trace(cm) / max(cm.sum(), 1) * 100
        ax.set_title(f"{method}\naccuracy {acc:.1f}%", fontsize=9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true (test clips)")
        ax.tick_params(axis="y", rotation=0)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return _finish(fig, run_dir, name, readme, title=title, svg=True)


def mdmo_panel(ax, frame: np.ndarray, masks: np.ndarray, directions: np.ndarray, gain: float = 12.0, title: str = ""):
    """MDMO on one face (notebook 07): the 36 ROIs (``bool (36, H, W)``) tinted over ``frame``
    (``(H, W, 3)`` uint8) and each ROI's main direction (``(36, 2)``: magnitude in pixels per frame,
    angle in radians, image coordinates) drawn from its centroid, ``gain`` x longer."""
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab20")(np.arange(len(masks)) % 20)[:, :3]
    tint = (np.tensordot(masks.astype(float).transpose(1, 2, 0), colours, axes=1)).clip(0, 1)
    covered = masks.any(0)[..., None]
    ax.imshow(np.where(covered, 0.55 * frame / 255 + 0.45 * tint, frame / 255))
    roi, pix = np.nonzero(masks.reshape(len(masks), -1))
    ys, xs = np.divmod(pix, masks.shape[2])
    n = np.bincount(roi, minlength=len(masks))
    cx, cy = (np.bincount(roi, weights=c, minlength=len(masks)) / n for c in (xs, ys))
    mag, ang = directions[:, 0], directions[:, 1]
    ax.quiver(cx, cy, gain * mag * np.cos(ang), gain * mag * np.sin(ang), angles="xy", scale_units="xy", scale=1, color="k", width=0.006)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def fdm_panel(ax, frame: np.ndarray, directions: np.ndarray, strength: np.ndarray, gain: float = 12.0, title: str = ""):
    """FDM of one temporal slab (notebook 07): each cuboid's principal direction (``(n_y, n_x, 2)``
    unit vectors) times its strength (``(n_y, n_x)``, pixels per frame), ``gain`` x longer, at the
    cuboid centres over ``frame``."""
    h, w = frame.shape[:2]
    ny, nx = strength.shape
    cy = (np.arange(ny) + 0.5) * h / ny
    cx = (np.arange(nx) + 0.5) * w / nx
    X, Y = np.meshgrid(cx, cy)
    ax.imshow(frame, alpha=0.6)
    ax.quiver(
        X,
        Y,
        gain * directions[..., 0] * strength,
        gain * directions[..., 1] * strength,
        angles="xy",
        scale_units="xy",
        scale=1,
        color="C3",
        width=0.006,
    )
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def pipeline_figure(clip, crop: np.ndarray, munsell: dict, features: dict, probs: dict, run_dir=None, name: str = "pipeline", readme: bool = False):
    """One clip through the whole pipeline in eight numbered panels (the README's pipeline picture).

    ``clip``: its :func:`mexpr.datasets.load` row (``frames``, ``onset``, ``apex``, ``offset``,
    ``label``); ``crop``: its pre-processed frames ``(T, 112, 96, 3)``; ``munsell``, ``features`` and
    ``probs``: ``{64: ..., 128: ...}``, the Munsell-coded flow ``(fields, 112, 96, 3)``, the pool4
    features ``(1152,)`` and the SVM's class probabilities ``(4,)`` of each stream.  Every frame
    shown is the one nearest the apex; the fused class follows Eq. 11 (:func:`mexpr.fusion.first_decides`).
    """
    import matplotlib.pyplot as plt

    from mexpr.datasets import CLASSES
    from mexpr.fusion import decision_fusion, first_decides

    numbers = np.array([frame_number(f) for f in clip["frames"]])
    at = float(np.clip((clip["apex"] - numbers[0]) / max(numbers[-1] - numbers[0], 1), 0, 1))  # apex, as a fraction of the clip
    raw = read_rgb(clip["frames"][int(np.argmin(np.abs(numbers - clip["apex"])))])
    p = {f: np.asarray(probs[f], dtype=float).reshape(-1) for f in (64, 128)}
    take64 = bool(first_decides(p[64][None], p[128][None])[0])
    fused = int(decision_fusion(p[64][None], p[128][None])[0])

    fig, axes = plt.subplots(2, 4, figsize=(13, 6.4), gridspec_kw={"height_ratios": [1.25, 1]})
    images = [
        (raw[detected_face_window(raw)], f"1  raw frame at apex ({raw.shape[1]}×{raw.shape[0]})"),
        (crop[round(at * (len(crop) - 1))], "2  landmarks, LWM alignment,\n96×112 crop, 65 / 129 frames"),
        (munsell[64][round(at * (len(munsell[64]) - 1))], "3  optical flow, Munsell-coded:\nDTSCNN64's input (64 fields)"),
        (munsell[128][round(at * (len(munsell[128]) - 1))], "4  the same for DTSCNN128\n(128 fields)"),
    ]
    for ax, (img, title) in zip(axes[0], images):
        ax.imshow(img)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax, f, k in ((axes[1, 0], 64, 5), (axes[1, 1], 128, 6)):
        feat = np.asarray(features[f], dtype=float).reshape(9, -1)  # (3 x 3 places, 128 filters)
        ax.imshow(feat, aspect="auto", cmap="magma", interpolation="nearest")
        ax.set_title(f"{k}  DTSCNN{f}'s pool4 features\n(1152 = 3×3 places × 128 filters)", fontsize=9)
        ax.set_xlabel("filter")
        ax.set_ylabel("place on the face")
    ax = axes[1, 2]
    x = np.arange(len(CLASSES))
    ax.bar(x - 0.2, p[64], 0.4, label="DTSCNN64 (P1)", color="C0")
    ax.bar(x + 0.2, p[128], 0.4, label="DTSCNN128 (P2)", color="C1")
    ax.set_xticks(x, CLASSES, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title("7  a linear SVM per stream:\nclass probabilities", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1, 3]
    ax.axis("off")
    c1, c2 = CLASSES[int(p[64].argmax())], CLASSES[int(p[128].argmax())]
    text = (
        f"DTSCNN64:  C1 = {c1},  P1 = {p[64].max():.2f}\nDTSCNN128: C2 = {c2},  P2 = {p[128].max():.2f}\n\n"
        f"{'P1 ≥ P2' if take64 else 'P1 < P2'}  →  C = {CLASSES[fused]}\n\ntrue class: {clip['label']}"
    )
    ax.text(0.0, 0.85, text, fontsize=9, va="top", family="monospace")
    ax.set_title("8  decision fusion (Eq. 11):\nthe surer stream decides", fontsize=9)
    return _finish(fig, run_dir, name, readme)


def ablation_plot(summary, baseline_uar: dict | None = None, run_dir=None, name: str = "ablation", readme: bool = False, title: str = ""):
    """The ablation at a glance (notebook 08): one panel per protocol, one group of bars per step
    (:func:`mexpr.ablation.summary`), the UAR of DTSCNN64, DTSCNN128 and their fusion, mean over
    seeds with the standard deviation as error bars; chance (25 %) dotted, and each protocol's best
    baseline (``baseline_uar``: protocol -> (name, UAR)) dashed."""
    import matplotlib.pyplot as plt

    protocols = list(dict.fromkeys(summary["protocol"]))
    steps = list(dict.fromkeys(summary["step"]))
    methods = list(dict.fromkeys(summary["method"]))
    fig, axes = plt.subplots(1, len(protocols), figsize=(1.0 + 1.6 * len(steps) * len(protocols), 4.2), squeeze=False, sharey=True)
    w = 0.8 / max(len(methods), 1)
    for ax, protocol in zip(axes[0], protocols):
        g = summary[summary["protocol"] == protocol]
        for i, m in enumerate(methods):
            r = g[g["method"] == m].set_index("step").reindex(steps)
            x = np.arange(len(steps)) + (i - (len(methods) - 1) / 2) * w
            ax.bar(x, 100 * r["uar_mean"], w, yerr=100 * r["uar_std"].fillna(0), capsize=2, color=f"C{i}", label=m)
        ax.axhline(25, c="grey", ls=":", lw=1, label="chance")
        if baseline_uar and protocol in baseline_uar:
            bname, buar = baseline_uar[protocol]
            ax.axhline(100 * buar, c="k", ls="--", lw=1, label=f"best baseline ({bname})")
        ax.set_xticks(np.arange(len(steps)))
        ax.set_xticklabels([s.replace(" (", "\n(") for s in steps], fontsize=7, rotation=20, ha="right")
        ax.set_title(f"protocol {protocol}", fontsize=9)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel("UAR (%), mean ± std over seeds")
    axes[0, -1].legend(fontsize=7, loc="upper left")
    return _finish(fig, run_dir, name, readme, title=title)


def flow_magnitude_curves(
    curves: dict, run_dir=None, name: str = "ablation_flow_signal", readme: bool = False, title: str = "", ylabel: str = "99th percentile |flow| (px)"
):
    """How much motion each flow field carries, over a clip: ``curves`` maps a label (e.g.
    "Positive: neighbouring frames (paper)") to a per-field magnitude ``(T,)`` in px (e.g. each
    field's 99th percentile, :func:`mexpr.flow.robust_peak`).  Log scale, so that a few hundredths
    of a pixel and a whole pixel both show."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for i, (label, y) in enumerate(curves.items()):
        y = np.asarray(y, float)
        ax.plot(np.arange(1, len(y) + 1), y, c=f"C{i // 2}", ls="-" if i % 2 else "--", lw=1.3, label=label)
    ax.set(yscale="log", xlabel="flow field", ylabel=ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    return _finish(fig, run_dir, name, readme, title=title)


def relevance_overlay(frames: np.ndarray, relevance: np.ndarray, vmax: float | None = None, alpha: float = 0.75, cmap: str = "inferno") -> np.ndarray:
    """A relevance map (Grad-CAM, notebook 09) over frames: ``frames (..., H, W, 3) uint8`` shown in
    grey, ``relevance (..., H, W) >= 0`` coloured with ``cmap`` and blended in as strongly as it is
    relevant (``vmax``: the value shown at full strength; default the maximum).  Returns uint8 RGB."""
    import matplotlib

    r = np.clip(np.asarray(relevance, np.float32) / max(float(vmax if vmax is not None else np.max(relevance)), 1e-12), 0, 1)
    grey = np.asarray(frames, np.float32).mean(-1, keepdims=True) / 255.0
    colour = matplotlib.colormaps[cmap](r)[..., :3]
    w = alpha * r[..., None]
    return np.clip(255 * ((1 - w) * (0.25 + 0.75 * grey) + w * colour), 0, 255).astype(np.uint8)


def class_relevance(
    means: dict, regions: dict, faces: dict, run_dir=None, name: str = "inside_gradcam_classes", readme: bool = False, title: str = ""
):
    """Where each stream looks, per class (notebook 09): one row per kind of map (``means``: a name,
    e.g. a stream and a variant, -> class -> the mean map of the class's test clips, ``(H, W)``), one
    column per class, each over the class's mean face (``faces``: class -> ``(H, W, 3)`` uint8), with
    the outline of where the generator moved Action Units in at least half of those clips
    (``regions``: class -> the share of clips moving each pixel, ``(H, W)``)."""
    import matplotlib.pyplot as plt

    streams = list(means)
    classes = [c for c in regions if any(c in means[s] for s in streams)]
    fig, axes = plt.subplots(len(streams), len(classes), figsize=(1.9 * len(classes) + 0.6, 2.4 * len(streams)), squeeze=False)
    for r, s in enumerate(streams):
        for c, cls in enumerate(classes):
            ax = axes[r, c]
            if cls in means[s]:
                ax.imshow(relevance_overlay(faces[cls], means[s][cls]))
                if np.max(regions[cls]) >= 0.5:
                    ax.contour(regions[cls], levels=[0.5], colors="#00e0ff", linewidths=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cls, fontsize=9)
            if c == 0:
                ax.set_ylabel(str(s), fontsize=9)
    return _finish(fig, run_dir, name, readme, title=title)


def overlap_bars(summaries: dict, run_dir=None, name: str = "inside_gradcam_overlap", readme: bool = False, title: str = ""):
    """The share of a relevance map's mass inside the moved Action Units per class (bars, one colour
    per map: ``summaries`` maps a name, e.g. "DTSCNN64 Grad-CAM", to :func:`mexpr.explain.class_summary`)
    beside chance, the regions' share of the crop (black ticks)."""
    import matplotlib.pyplot as plt

    first = next(iter(summaries.values()))
    labels = list(first.index)
    x = np.arange(len(labels))
    w = 0.8 / len(summaries)
    fig, ax = plt.subplots(figsize=(1.3 * len(labels) + 1.5, 3.2))
    for i, (s, t) in enumerate(summaries.items()):
        t = t.reindex(labels)
        pos = x + (i - (len(summaries) - 1) / 2) * w
        ax.bar(pos, 100 * t["inside"], w, color=f"C{i}", label=f"{s}: share inside")
        ax.scatter(pos, 100 * t["chance"], marker="_", s=260, c="k", zorder=3, label="chance (the regions' area)" if i == 0 else None)
    ax.set_xticks(x, [f"{c}\n({int(first.loc[c, 'clips'])} clips)" for c in labels], fontsize=8)
    ax.set_ylabel("% of the map inside the AU regions")
    top = max(float(np.nanmax(100 * t[["inside", "chance"]].to_numpy())) for t in summaries.values())
    ax.set_ylim(0, max(1.0, 1.35 * top))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return _finish(fig, run_dir, name, readme, title=title)


def relevance_time_curves(curves: dict, apex: dict, run_dir=None, name: str = "inside_gradcam_time", readme: bool = False, title: str = ""):
    """When each stream looks (notebook 09): per stream (``curves``: stream -> class -> ``(n, fields)``
    time curves of test clips), the class means against the field index, and the clips' apexes
    (``apex``: stream -> ``(N,)`` positions, :func:`mexpr.explain.apex_position`) as a rug."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.2), squeeze=False)
    for ax, (s, by_class) in zip(axes[0], curves.items()):
        for k, (cls, c) in enumerate(by_class.items()):
            c = np.asarray(c)
            ax.plot(np.arange(c.shape[1]), 100 * c.mean(0), c=f"C{k}", lw=1.5, label=f"{cls} ({len(c)})")
        fields = np.asarray(c).shape[1]
        ax.axhline(100 / fields, c="grey", ls=":", lw=1, label="even")
        ax.plot(np.asarray(apex[s]) - 1, np.zeros(len(apex[s])), "|", c="k", ms=12, label="apexes (field ending there)")
        ax.set(xlabel="flow field", ylabel="% of the relevance", title=str(s))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _finish(fig, run_dir, name, readme, title=title)


#: Colours of the spotting figures: ground-truth types and the synthetic videos' distractors.
SPOT_COLOURS = {"micro": "tab:red", "macro": "tab:blue", "blink": "0.6", "head_turn": "tab:orange", "talk": "tab:green", "light": "gold"}


def spotting_timeline(sig, truth=None, spotted: dict | None = None, events=(), scores: dict | None = None, run_dir=None,
                      name: str = "spotting_timeline", readme: bool = False, title: str = ""):  # fmt: skip
    """One long video over time: the MDMD contrast of each type (:func:`mexpr.spot.mdmd_contrast`),
    ``scores`` (``{label: (N, 2) per-frame scores}``, e.g. the learned spotter's) and the head's pose,
    with the ground-truth intervals shaded (micro red, macro blue), the distractor ``events``
    (:func:`mexpr.spot.video_events`) marked below, and ``spotted`` (``{method: intervals table}``)
    drawn as bars at the top.  Frames are the sheet's numbers (``sig.first_number`` onwards)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from mexpr import spot

    t = np.arange(sig.n_frames) / sig.fps
    first = sig.first_number
    lanes_on = int(bool(spotted))  # 1: a lane of spotted intervals on top (an int: numpy reads a bool index as a mask)
    rows = lanes_on + 2 + bool(scores)
    ratios = [1.2] * lanes_on + [2] * (rows - 1 - lanes_on) + [1.2]
    fig, axes = plt.subplots(rows, 1, figsize=(11, 1.9 * rows), sharex=True, gridspec_kw={"height_ratios": ratios})
    if lanes_on:
        lanes = axes[0]
        methods = list(spotted)
        for j, m in enumerate(methods):
            for r in spotted[m].itertuples():
                lanes.barh(
                    j, (r.end_frame - r.start_frame + 1) / sig.fps, left=(r.start_frame - first) / sig.fps, color=SPOT_COLOURS[r.type], height=0.6
                )
        lanes.set_yticks(range(len(methods)), methods, fontsize=8)
        lanes.set_ylim(-0.6, len(methods) - 0.4)
        lanes.set_title("spotted intervals", fontsize=8, loc="left")
    panels = [(axes[lanes_on], {f"MDMD contrast, {k}": spot.mdmd_contrast(sig, k) for k in spot.TYPES})]
    if scores:
        panels.append((axes[lanes_on + 1], {f"{label}, {k}": sc[:, i] for label, sc in scores.items() for i, k in enumerate(spot.TYPES)}))
    for ax, curves in panels:
        for label, y in curves.items():
            ax.plot(
                t, y, lw=0.8, label=label, color=SPOT_COLOURS["micro" if label.endswith("micro") else "macro"], alpha=0.9 if "micro" in label else 0.6
            )
        ax.legend(fontsize=7, loc="upper right", ncols=2)
    pose = axes[-1]
    pose.plot(t, sig.pose[:, 0] - np.nanmedian(sig.pose[:, 0]), lw=0.8, color="k", label="head x (px)")
    pose.plot(t, sig.pose[:, 2], lw=0.8, color="tab:purple", label="head rotation (deg)")
    pose.legend(fontsize=7, loc="upper right", ncols=2)
    for ax in axes[lanes_on:]:
        if truth is not None:
            for r in truth[truth["video"] == sig.video].itertuples():
                ax.axvspan((r.start_frame - first) / sig.fps, (r.end_frame - first + 1) / sig.fps, color=SPOT_COLOURS[r.type], alpha=0.15, lw=0)
        for g in sig.gaps:
            ax.axvspan(g["start_frame"] / sig.fps, (g["end_frame"] + 1) / sig.fps, color="k", alpha=0.1, hatch="//", lw=0)
        ax.grid(alpha=0.3)
    y0 = pose.get_ylim()[0]
    for e in events:
        if e["type"] in spot.DISTRACTORS:
            pose.plot(
                [(e["start"] - first) / sig.fps, (e["end"] - first + 1) / sig.fps],
                [y0, y0],
                lw=5,
                color=SPOT_COLOURS[e["type"]],
                solid_capstyle="butt",
            )
    pose.set_xlabel("time (s)")
    handles = [Patch(color=SPOT_COLOURS[k], alpha=0.5, label=k.replace("_", " ")) for k in SPOT_COLOURS]
    fig.legend(handles=handles, loc="lower center", ncols=len(handles), fontsize=7, bbox_to_anchor=(0.5, 0.0))
    fig = _finish(fig, run_dir, None, title=title or f"{sig.video}: {sig.n_frames} frames at {sig.fps:g} fps")
    fig.subplots_adjust(bottom=0.06 + 0.6 / (1.9 * rows))  # room for the legend below the time axis
    if run_dir is not None and name:
        save_fig(fig, name, run_dir, readme=readme)
    return fig


def timeline(tl, video: str, truth=None):
    """One analysed video (:class:`mexpr.timeline.Timeline`) over time: the aligned face at each
    classified micro-expression's apex on top, labelled with its class and probability; below, the
    spotter's signal (micro and macro) with the micro-expressions shaded in their class' colour,
    the macro ones sand, the face gaps hatched and ``truth`` (intervals with ``label``, optional) as
    a lane of bars.  Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rec = next(v for v in tl.videos if v.get("video") == video and v["status"] == "analysed")
    rows = tl.table[tl.table["video"] == video]
    first, fps = int(rec.get("first_number", 0)), float(rec["fps"])
    sig = tl.signals.get(video)
    thumbs = [(i, tl.thumbnails[i]) for i in rows.index if i in tl.thumbnails]
    fig = plt.figure(figsize=(11, 4.6 if thumbs else 3.2))
    grid = fig.add_gridspec(2 if thumbs else 1, 1, height_ratios=[1.3, 2] if thumbs else [1])
    ax = fig.add_subplot(grid[-1])
    if sig is not None:
        for j, (typ, colour) in enumerate((("micro", "tab:red"), ("macro", "tab:blue"))):
            ax.plot(sig["times"], sig["signal"][:, j], lw=0.8, color=colour, alpha=0.9 if j == 0 else 0.5, label=f"spotter signal, {typ}")
    for r in rows.itertuples():
        s, e = (r.start_frame - first) / fps, (r.end_frame - first + 1) / fps
        colour = CLASS_COLOURS.get(str(r.label), (0.6, 0.6, 0.6)) if r.type == "micro" else MACRO_COLOUR
        ax.axvspan(s, e, color=colour, alpha=0.35, lw=0)
    for g in rec.get("gaps", []):
        ax.axvspan(g["start_s"], g["end_s"] + 1 / fps, facecolor="none", edgecolor=(0, 0, 0, 0.35), hatch="//", lw=0)
    if truth is not None:  # a lane along the top edge, in axes coordinates so it never leaves the plot
        import matplotlib.transforms as mtransforms

        lane = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
        for r in truth[truth["video"] == video].itertuples() if "video" in truth else truth.itertuples():
            ax.plot([(r.start_frame - first) / fps, (r.end_frame - first + 1) / fps], [0.97, 0.97], lw=6, solid_capstyle="butt", transform=lane,
                    color=CLASS_COLOURS.get(str(getattr(r, "label", "")), (0.3, 0.3, 0.3)))  # fmt: skip
    ax.set_xlim(0, rec["seconds"])
    ax.set_xlabel("time (s)")
    ax.grid(alpha=0.3)
    handles = [Patch(color=c, alpha=0.5, label=k) for k, c in CLASS_COLOURS.items() if k in tl.settings.get("classes", CLASS_COLOURS)]
    handles += [
        Patch(color=MACRO_COLOUR, alpha=0.35, label="macro-expression"),
        Patch(facecolor="w", edgecolor="k", hatch="//", alpha=0.4, label="no face"),
    ]
    if truth is not None:
        handles.append(plt.Line2D([], [], lw=5, color="k", label="ground-truth micro-expression (top lane, its class' colour)"))
    ax.legend(handles=handles + ax.get_legend_handles_labels()[0], fontsize=7, loc="upper left", ncols=4, bbox_to_anchor=(0, 0.93))
    micro = rows[rows["type"] == "micro"]
    ok = int((micro["status"] == "classified").sum())
    ax.set_title(f"{video}: {len(micro)} micro-expression(s), {ok} classified, {int((rows['type'] == 'macro').sum())} macro; "
                 f"{tl.settings.get('experiment', '')} fold {tl.settings.get('fold', '')}, spotter {tl.settings.get('spotter', {}).get('method', '')}",
                 fontsize=9, loc="left")  # fmt: skip
    if thumbs:
        top = fig.add_subplot(grid[0], sharex=ax)
        top.set_ylim(0, 1)
        top.axis("off")
        width = rec["seconds"] / max(len(thumbs) + 1, 12)
        for i, img in thumbs:
            r = rows.loc[i]
            x = float(r["apex_s"])
            top.imshow(img, extent=(x - width / 2, x + width / 2, 0.15, 1.0), aspect="auto", zorder=2)
            p = r.get(f"p_{r['label']}", float("nan"))
            top.text(x, 0.07, f"{r['label']} {p:.2f}", ha="center", va="center", fontsize=7, color=CLASS_COLOURS.get(str(r["label"]), "k"))
        ax.set_xlim(0, rec["seconds"])
    fig.tight_layout()
    return fig
