"""mexpr: a notebook-first Keras 3 reference implementation of DTSCNN.

Peng, Wang, Chen, Liu & Fu (2017), *Dual Temporal Scale Convolutional Neural Network for
Micro-Expression Recognition*, Frontiers in Psychology 8:1745.

One module per pipeline stage (see ``docs/DESIGN.md`` §5):

- :mod:`mexpr.datasets`   CASME I/II loaders, the Table 3 class map, the protocols' folds
- :mod:`mexpr.synth`      synthetic CASME I/II datasets with ground-truth motion
- :mod:`mexpr.preprocess` face detection, landmarks (dlib), LWM alignment, the 96x112 crop, 65/129 frames
- :mod:`mexpr.flow`       optical flow and its Munsell colour coding
- :mod:`mexpr.augment`    the paper's 9-crop balanced augmentation (Figure 6), mirrored copies (ours)
- :mod:`mexpr.models`     DTSCNN64 / DTSCNN128 (Table 2)
- :mod:`mexpr.train`      training one stream on one fold; the input representations
- :mod:`mexpr.fusion`     linear SVMs on pool4 features, Eq. 11
- :mod:`mexpr.evaluate`   folds, metrics, Table 4, Figure 7, the baselines' evaluation
- :mod:`mexpr.baselines`  STCLQP, MDMO, FDM
- :mod:`mexpr.ablation`   what each input choice costs (notebook 08)
- :mod:`mexpr.viz`        figures;  :mod:`mexpr.series` the notebook series;  :mod:`mexpr.cli` the command line

Modules are imported lazily so that ``import mexpr`` stays fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "datasets",
    "synth",
    "preprocess",
    "flow",
    "augment",
    "models",
    "train",
    "fusion",
    "evaluate",
    "baselines",
    "ablation",
    "viz",
    "series",
    "cli",
}


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"mexpr.{name}")
    raise AttributeError(f"module 'mexpr' has no attribute {name!r}")
