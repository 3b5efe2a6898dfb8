"""The run folder, ``runs/<name>/``, and its one owner: :class:`Run`.

Every stage writes into one folder per run; this object knows where each thing lies and reads the
facts the stages share, so that no notebook, command or test parses them itself::

    runs/<name>/
        dataset.json          the dataset roots and whether they are synthetic (notebook 00, Run.write_dataset)
        clips.csv             the clip table (notebook 00)
        preprocess.json       the pre-processing's settings and counts (mexpr.preprocess.run)
        manifest.csv          one row per clip: processed or skipped, and why (mexpr.preprocess.run)
        flow.json, flow_manifest.csv, cache/flow/...   the flow stage (mexpr.flow.run)
        train/<experiment>/   trained streams, features and evaluations (mexpr.train, mexpr.evaluate)
        baselines/            the baselines' features and evaluations
        tables/, figures/     what the notebooks show (CSV + markdown, PNG)
        notebooks/, logs/     the executed series (make reproduce)

A notebook's setup is one line, ``run_dir = Run.open(run_dir, profile, seed)``: it makes the
repository root the working directory (as JupyterLab and papermill differ there), creates
``tables/`` and ``figures/`` and checks the profile.  A :class:`Run` is path-like
(``run_dir / "tables"``, ``Path(run_dir)`` and every stage's ``run_dir`` argument take it).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

from mexpr import settings


class RunError(FileNotFoundError):
    """A run folder lacks what a stage needs; the message names the file and the step that writes it."""


@dataclass(frozen=True)
class Run(os.PathLike):
    """The run folder ``dir`` of a ``profile`` (:data:`mexpr.settings.PROFILES`) and ``seed``."""

    dir: Path
    profile: str = "quick"
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "dir", Path(self.dir))
        settings.profile(self.profile)  # a ValueError naming the valid ones

    @classmethod
    def open(cls, run_dir: str | os.PathLike, profile: str = "quick", seed: int = 0, scheduler: str | None = None) -> Run:
        """A notebook's setup: the repository root as working directory (relative ``runs/...`` paths
        mean the same in JupyterLab as under ``make reproduce``), ``tables/`` and ``figures/``
        created, the profile checked.  ``scheduler`` (``"tcp://host:8786"``, ``"local:N"``): the
        notebook's stages run on that Dask cluster until the kernel ends (:func:`mexpr.scale.use`);
        ``None``: on this machine, as always."""
        from mexpr import scale
        from mexpr.series import enter_project

        scale.use(scheduler)
        enter_project()
        run = cls(Path(run_dir), profile, int(seed))
        run.tables.mkdir(parents=True, exist_ok=True)
        run.figures.mkdir(parents=True, exist_ok=True)
        return run

    # -- path-like ------------------------------------------------------------------------------
    def __fspath__(self) -> str:
        return str(self.dir)

    def __truediv__(self, other) -> Path:
        return self.dir / other

    def __str__(self) -> str:
        return str(self.dir)

    # -- folders --------------------------------------------------------------------------------
    @property
    def tables(self) -> Path:
        return self.dir / "tables"

    @property
    def figures(self) -> Path:
        return self.dir / "figures"

    @property
    def settings(self) -> dict:
        """The profile's row of :data:`mexpr.settings.PROFILES`."""
        return settings.profile(self.profile)

    # -- the dataset ----------------------------------------------------------------------------
    def _json(self, name: str, written_by: str) -> dict:
        path = self.dir / name
        if not path.is_file():
            raise RunError(f"{path} not found: {written_by} writes it")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise RunError(f"{path} is not valid JSON ({e}); run {written_by} again") from e

    @functools.cached_property
    def info(self) -> dict:
        """``dataset.json``: ``roots`` (the dataset folders), ``synthetic``, ``scale``, ``seed``."""
        return self._json("dataset.json", "notebook 00 (or Run.write_dataset)")

    @property
    def roots(self) -> list[str]:
        return list(self.info["roots"])

    @property
    def synthetic(self) -> bool:
        return bool(self.info.get("synthetic"))

    @property
    def data_kind(self) -> str:
        """``"synthetic data"`` or ``"real data"``, for titles."""
        return "synthetic data" if self.synthetic else "real data"

    def write_dataset(self, roots, synthetic: bool, scale: float | None = None, seed: int | None = None, classes: str = "paper") -> Path:
        """Record the dataset roots of this run (``dataset.json``) and the class set its clip table
        is loaded with (``"paper"``, or ``"megc3"`` for a composite run: :func:`mexpr.datasets.load`)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "dataset.json"
        info = {"roots": [str(r) for r in roots], "synthetic": bool(synthetic), "scale": scale, "seed": seed}
        if classes != "paper":
            info["classes"] = classes
        path.write_text(json.dumps(info, indent=2))
        self.__dict__.pop("info", None)
        return path

    def dataset(self, errors: str = "skip"):
        """The run's clips as :func:`mexpr.datasets.load` reads them from its roots."""
        from mexpr import datasets

        return datasets.load(self.roots, errors=errors, classes=self.info.get("classes", "paper"))

    # -- the stages' records --------------------------------------------------------------------
    def preprocess_config(self):
        """The run's pre-processing :class:`~mexpr.preprocess.Config` (``preprocess.json``)."""
        from mexpr import preprocess

        return preprocess.load_config(self.dir)

    def manifest(self):
        """The pre-processing manifest (one row per clip, processed or skipped and why)."""
        from mexpr import preprocess

        return preprocess.load_manifest(self.dir)

    def clips(self, config=None):
        """The processed clips with flow (:func:`mexpr.train.clips_table`)."""
        from mexpr import train

        return train.clips_table(self.dir, config)

    # -- training -------------------------------------------------------------------------------
    def config(self, input: str | None = None, **overrides):
        """The training :class:`~mexpr.train.Config` of this run's profile and seed
        (:func:`mexpr.train.config_for`); an override of ``None`` keeps the profile's value."""
        from mexpr import train

        return train.config_for(self.profile, input=input, **({"seed": self.seed} | {k: v for k, v in overrides.items() if v is not None}))

    def folds(self, config, folds=None) -> list[int]:
        """``folds`` (``None``: the profile's, where ``None`` is every fold of the protocol) as a
        checked list of fold indices."""
        from mexpr import train

        return train.folds_of(self.dir, config, self.settings["folds"] if folds is None else folds)
