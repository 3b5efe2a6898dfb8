"""mexpr: a notebook-first Keras 3 reference implementation of DTSCNN.

Peng, Wang, Chen, Liu & Fu (2017), *Dual Temporal Scale Convolutional Neural Network for
Micro-Expression Recognition*, Frontiers in Psychology 8:1745.

One module per idea (see ``docs/DESIGN.md`` §5), in the order of the pipeline:

- :mod:`mexpr.settings`    the crop, the two lengths, the pool4 size, the profiles: defined once
- :mod:`mexpr.run`         the run folder ``runs/<name>/`` and its one owner, :class:`~mexpr.run.Run`
- :mod:`mexpr.clips`       a clip folder's frames, their checks and record: what every loader shares
- :mod:`mexpr.corpora`     SAMM, SMIC-HS, CAS(ME)³: loaders, quirks, class maps, published counts, the MEGC composite
- :mod:`mexpr.datasets`    the loader of every corpus (CASME I/II here), the Table 3 class map, the protocols' folds
- :mod:`mexpr.synth`       synthetic CASME I/II datasets (and on request the other corpora) with ground-truth motion
- :mod:`mexpr.face`        face detection, the 68 landmarks (dlib), the crop's template
- :mod:`mexpr.align`       LWM and similarity alignment, backward maps, warping
- :mod:`mexpr.preprocess`  one clip through face, alignment, the 96x112 crop and 65/129 frames; the batch run
- :mod:`mexpr.flow`        optical flow and its Munsell colour coding
- :mod:`mexpr.groundtruth` alignment and flow scored against known motion (synthetic data only)
- :mod:`mexpr.augment`     the paper's 9-crop balanced augmentation (Figure 6), mirrored copies (ours)
- :mod:`mexpr.models`      DTSCNN64 / DTSCNN128 (Table 2)
- :mod:`mexpr.train`       training one stream on one fold; the input representations
- :mod:`mexpr.fusion`      linear SVMs on pool4 features, Eq. 11
- :mod:`mexpr.metrics`     accuracy, UF1, UAR, the confusion matrix
- :mod:`mexpr.evaluate`    features, SVMs and fusion over a protocol's folds; the baselines' evaluation
- :mod:`mexpr.report`      Table 4 beside the paper's, combined tables, a run's facts
- :mod:`mexpr.predict`     classifying new clips (frame folders or video files) with a trained run
- :mod:`mexpr.video`       video files and frame folders read as a stream, variable frame rates resampled
- :mod:`mexpr.track`       face tracking over long videos: detect at intervals, track between, gaps, alignment, head pose
- :mod:`mexpr.longvideo`   the long-video corpora for spotting: CAS(ME)², SAMM Long Videos (loaders, quirks)
- :mod:`mexpr.spot`        spotting micro- and macro-expressions: MDMD, a learned spotter, the MEGC protocol (notebook 10)
- :mod:`mexpr.timeline`    a video in, a timeline of recognised micro-expressions out: ``mexpr.analyze(video, run)`` (notebook 11)
- :mod:`mexpr.baselines`   STCLQP, MDMO, FDM
- :mod:`mexpr.ablation`    what each input choice costs (notebook 08)
- :mod:`mexpr.explain`     where DTSCNN looks: Grad-CAM and integrated gradients on the flow volume (notebook 09)
- :mod:`mexpr.magnify`     linear Eulerian motion magnification of a pre-processed clip (notebook 09)
- :mod:`mexpr.explorer`    a JupyterLab clip explorer: frame, magnified frame, flow, Grad-CAM (notebook 09)
- :mod:`mexpr.scale`       beyond one machine: a Dask cluster (``--scheduler``) and several devices (``--devices``)
- :mod:`mexpr.viz`         figures;  :mod:`mexpr.series` the notebook series;  :mod:`mexpr.cli` the command line

Modules are imported lazily so that ``import mexpr`` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil

__version__ = "0.1.0"

#: Every public module of the package (read from its folder, so the list cannot drift).
_SUBMODULES = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}


def __dir__():
    return sorted(set(globals()) | _SUBMODULES | {"analyze"})


def __getattr__(name: str):
    if name == "analyze":  # the one function at the top: a video in, a timeline out
        from mexpr.timeline import analyze

        return analyze
    if name in _SUBMODULES:
        return importlib.import_module(f"mexpr.{name}")
    raise AttributeError(f"module 'mexpr' has no attribute {name!r}")
