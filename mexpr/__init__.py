"""mexpr: a notebook-first Keras 3 reference implementation of DTSCNN.

Peng, Wang, Chen, Liu & Fu (2017), *Dual Temporal Scale Convolutional Neural Network for
Micro-Expression Recognition*, Frontiers in Psychology 8:1745.

One module per pipeline stage (see ``docs/DESIGN.md`` §5):

- :mod:`mexpr.datasets`  CASME I/II loaders, the Table 3 class map
- :mod:`mexpr.synth`     synthetic CASME I/II datasets with ground-truth motion
- :mod:`mexpr.preprocess` face detection and landmarks (dlib)

Modules are imported lazily so that ``import mexpr`` stays fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {"datasets", "synth", "preprocess", "cli", "viz"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"mexpr.{name}")
    raise AttributeError(f"module 'mexpr' has no attribute {name!r}")
