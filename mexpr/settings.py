"""The settings that several stages share, each defined once here (the paper's Pre-Processing and
Table 2; docs/DESIGN.md §1–3), and the profiles that size a run.

Every stage reads these names from here; the CLI takes its choices and defaults from them.
"""

from __future__ import annotations

#: The paper's crop (Pre-Processing): 96 px wide, 112 px high.
CROP_W, CROP_H = 96, 112

#: The paper's two temporal lengths: clips interpolated to 65 and 129 frames (TIM), whose
#: consecutive or since-onset flow gives the 64 and 128 fields of DTSCNN64 and DTSCNN128.
LENGTHS = (65, 129)

#: The flow fields per stream, one fewer than the frames: ``FIELDS[length] == length - 1``.
FIELDS = {length: length - 1 for length in LENGTHS}

#: DTSCNN's pool4 output, flattened: 1 × 3 × 3 places × 128 filters (Table 2); the SVMs' input.
POOL4_FEATURES = 1152

#: What ``make reproduce PROFILE=...`` (and a notebook's ``profile`` parameter) means for every
#: stage, in one table:
#:
#: - data: ``synth_scale`` (Table 3 counts × scale), ``align_clips`` (clips scored per alignment
#:   mode, notebook 01), ``flow_bench_clips`` (clips of the live flow accuracy check, notebook 02),
#:   ``jitter_samples`` (samples of the crop-jitter measurement, notebook 04);
#: - training (:func:`mexpr.train.config_for`): ``per_class`` (augmented clips per class),
#:   ``epochs``, ``folds`` (the folds notebooks 04–07 train and evaluate; ``None``: every fold of
#:   the protocol), ``schedule``;
#: - ``compare``: whether notebook 04 also trains its two comparison runs (DTSCNN64 on fold 0 with the
#:   paper's learning rate, and with one crop per clip; about 3 min at the default budget on 2 cores,
#:   left out of ``make reproduce`` to keep it under an hour; ``compare=True`` trains them);
#: - ``ablation``: notebook 08's plan (protocols, seeds, folds, steps and each step's training budget;
#:   ``None``: the profile's; steps ``None``: every step); ``benchmarks/ablation.py`` runs the full one,
#:   and its ``--record`` keeps a run's table in ``docs/results/`` for the notebook to show.
#: - ``spotting``: notebook 10's plan: the synthetic CAS(ME)²'s ``scale`` (of the published subjects and
#:   videos) and ``seconds`` per video, the learned spotter's ``seeds`` and ``epochs`` (None:
#:   :func:`mexpr.spot.fit_learned`'s default).
#: Notebook 08's plan under ``quick`` and ``default``: the two ends of the ablation (the paper's input,
#: ours) on fold 0 of the paper protocol at the profile's budget: exactly the streams notebooks 04
#: and 06 trained, so the notebook trains nothing again.
_ENDS_ON_FOLD_0 = {
    "protocols": ["paper"],
    "seeds": [0],
    "folds": [0],
    "per_class": None,
    "epochs": None,
    "steps": ["paper input", "mexpr input (all, ours)"],
}

PROFILES: dict[str, dict] = {
    "quick": {  # the tests: seconds per stage, 2 clips per emotion
        "synth_scale": 0.02,
        "align_clips": 4,
        "flow_bench_clips": 2,
        "jitter_samples": 4,
        "per_class": 3,
        "epochs": 2,
        "folds": [0],
        "schedule": "tuned",
        "compare": True,
        # the two ends; every step's input setting has its own unit tests (flow, augment, train)
        "ablation": _ENDS_ON_FOLD_0,
        "spotting": {"scale": 0.05, "seconds": 4.0, "seeds": [0], "epochs": 4},
    },
    "default": {  # make reproduce on 2 cores (DTSCNN on our input plateaus by ~8 epochs)
        "synth_scale": 1.0,
        "align_clips": 40,
        "flow_bench_clips": 10,
        "jitter_samples": 24,
        "per_class": 100,
        "epochs": 10,
        "folds": None,
        "schedule": "tuned",
        "compare": False,
        # the two ends; every step at this budget is recorded by benchmarks/ablation.py --record (docs/results/
        # ablation_default*, which the notebook shows) and runs in the notebook with steps="all" (about an hour on 2 cores)
        "ablation": _ENDS_ON_FOLD_0,
        # one seed keeps make reproduce short; the three-seed numbers: mexpr spot ROOT --seeds 0 1 2 (docs/benchmarks.md)
        "spotting": {"scale": 0.3, "seconds": 20.0, "seeds": [0], "epochs": None},
    },
    "paper": {  # full scale: 2,000 clips per fold (GPU for training)
        "synth_scale": 1.0,
        "align_clips": 120,
        "flow_bench_clips": 30,
        "jitter_samples": 24,
        "per_class": 500,
        "epochs": 30,
        "folds": None,
        "schedule": "paper",
        "compare": True,
        "ablation": {"protocols": ["paper", "subject3"], "seeds": [0, 1, 2], "folds": None, "per_class": None, "epochs": None, "steps": None},
        "spotting": {"scale": 0.3, "seconds": 20.0, "seeds": [0, 1, 2], "epochs": None},
    },
}

#: The keys of a profile that are training settings (:class:`mexpr.train.Config` fields).
TRAINING_KEYS = ("per_class", "epochs", "schedule")


def profile(name: str) -> dict:
    """The profile ``name`` (:data:`PROFILES`); ``ValueError`` names the valid ones."""
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, not {name!r}")
    return PROFILES[name]
