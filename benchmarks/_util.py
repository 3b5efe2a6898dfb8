"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import threading
import time

import psutil


def add_plan_args(ap) -> None:
    """The options of the scripts that train over protocols and seeds (ablation.py, bar.py): the run,
    the profile, the protocols and the seeds."""
    ap.add_argument("--run", required=True, help="a run with pre-processing and flow done (make reproduce leaves runs/default)")
    ap.add_argument("--profile", default="default", choices=["quick", "default", "paper"])
    ap.add_argument("--protocols", nargs="+", default=["paper", "subject3"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])


class PeakRSS:
    """Polls the resident memory of this process and all its children; ``peak`` in bytes."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process(os.getpid())
        while not self._stop.is_set():
            total = 0
            for p in [me] + me.children(recursive=True):
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def du(path) -> int:
    return sum(f.stat().st_size for f in __import__("pathlib").Path(path).rglob("*") if f.is_file())
