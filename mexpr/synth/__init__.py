"""Synthetic CASME I / CASME II datasets with known ground-truth motion (docs/DESIGN.md §4).

A fresh machine has no CASME data (it is licensed by its authors), so this module writes stand-in
datasets *in the real formats* (frame folders of 640×480 JPEGs and the coding sheet as ``.xlsx``
with the real column names and quirks), so that the same loader, preprocessing and training code
runs on both.  Results on synthetic data show that the pipeline works, not what CASME gives.

How a clip is made
------------------
1. **Identity.** Each subject is a distinct face made from real photographs that ship inside
   installed packages (scikit-image's *astronaut*, matplotlib's *Grace Hopper*; plus an optional
   folder of the user's photos): two photos, possibly mirrored, are warped onto a common
   landmark shape with a thin-plate spline and cross-dissolved, the shape is perturbed (face height,
   eye spacing, nose length, mouth width, jaw), recoloured (CIELAB), relit (a light gradient),
   rescaled and composited onto a plain lab backdrop.
2. **Micro-expression.** Action-Unit-like displacement fields anchored on the 68 landmarks
   (brows, lids, cheeks, nose, lips, chin) are weighted by an onset → apex → offset profile.
   Emotion → AU recipes follow FACS practice with per-clip partial AU sets, shared AUs and
   near-threshold intensities, so classes overlap as in real data.  Peak displacements are about
   a pixel or less at the 96×112 crop scale.
3. **Nuisances.** Head drift (translation, rotation, scale), blinks, flicker, sensor noise and JPEG
   compression; clip lengths near the real ones (CASME II mean 66.8 frames at 200 fps, CASME I
   22 frames at 60 fps).
4. **Ground truth.** Every frame is rendered by warping one reference image, so the dense motion
   between any two frames is known exactly.  It is saved beside the frames, factorised, in
   ``motion.npz`` (rigid head pose per frame, AU basis fields, AU intensities per frame);
   :func:`ground_truth_flow` expands it to the dense ``(T-1, H, W, 2)`` flow of every frame pair.

Everything is seeded: the same seed writes byte-identical files.

The package, by what it makes: :mod:`~mexpr.synth.plans` (formats, difficulty, AU recipes, the
clips' plan), :mod:`~mexpr.synth.identity` (the faces), :mod:`~mexpr.synth.motion` (the motion
and its ground truth) and :mod:`~mexpr.synth.render` (frames, sheets, :func:`generate`); their
public names are importable from ``mexpr.synth`` itself.
"""

from mexpr.synth.identity import CROP_JAW_WIDTH, FRAME_H, FRAME_W, Identity, make_identity
from mexpr.synth.motion import FIELD_STRIDE, Motion, au_field, ground_truth_flow, inverse_map, make_motion
from mexpr.synth.plans import DATASETS, DIFFICULTIES, EMOTION_AUS, ClipPlan, Difficulty, plan_clips
from mexpr.synth.render import GENERATOR_VERSION, generate, render_frames

__all__ = [
    "CROP_JAW_WIDTH",
    "DATASETS",
    "DIFFICULTIES",
    "EMOTION_AUS",
    "FIELD_STRIDE",
    "FRAME_H",
    "FRAME_W",
    "GENERATOR_VERSION",
    "ClipPlan",
    "Difficulty",
    "Identity",
    "Motion",
    "au_field",
    "generate",
    "ground_truth_flow",
    "inverse_map",
    "make_identity",
    "make_motion",
    "plan_clips",
    "render_frames",
]
