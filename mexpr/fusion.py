"""Linear SVMs on the pool4 features of each stream and the paper's decision-level fusion
(Peng et al. 2017, section "DTSCNN", Eq. 11; called Eq. 10 in Table 4's caption).

The paper: "the output feature of the Pool4 layer from each stream was fused for classification
using linear SVM which would take decision-level fusion ... if a sample x is classified into class
C1 and class C2 with possibility of P1 and P2, respectively, then

    C = C1 if P1 >= P2,  C2 if P1 < P2."                                          (Eq. 11)

What the paper leaves open, and what we do:

- **Which clips the SVMs are fitted on.**  Not said.  Default ``"augmented"``: the balanced
  augmented clips each stream was trained on (Figure 6), which is what the paper's remark that
  DTSCNN "is robust to this imbalance-data effect ... due to the sampling method" suggests.
  ``"original"`` fits on the fold's un-augmented training clips, ``"both"`` on both.  Test clips
  are never used (:mod:`mexpr.evaluate` passes the fold's training side only).
- **Where the probabilities come from.**  A linear SVM has no probabilities.  We calibrate its
  one-vs-rest decision values with Platt's sigmoid (what libsvm's ``-b 1`` does too), fitted on
  held-out decision values: :class:`sklearn.calibration.CalibratedClassifierCV` with
  ``method="sigmoid"``, ``ensemble=False`` and a seeded stratified 5-fold split of the training
  features (fewer folds when a class has fewer samples), around libsvm's linear SVM
  (:class:`sklearn.svm.SVC`, ``kernel="linear"``: one-vs-one, its decision values in one-vs-rest
  shape) refitted on all of them; the four sigmoids are normalised to sum to 1.  (With fewer
  samples than the 1152 features, libsvm's dual solver is about ten times faster than liblinear's
  ``LinearSVC`` here: 0.3 s against 4 s for 740 clips.)  (scikit-learn 1.9
  deprecates ``SVC(probability=True)`` in favour of exactly this.)  A stream's predicted class is
  the arg-max of these probabilities.
- **Features** are standardised (fitted on the training features only) inside the calibrated
  pipeline: each of Platt's held-out folds is scaled by its own training part, then the final SVM
  by all of them.  :func:`calibrated_svm` is this one recipe, shared with the baselines' SVMs
  (:func:`mexpr.baselines.classify.fit`).

Labelled extensions (ours, not the paper's): :func:`average_fusion` (mean of the two streams'
probabilities) and one SVM on the concatenated features (``fit_svm(np.hstack([f64, f128]), y)``).
"""

from __future__ import annotations

import numpy as np

from mexpr.datasets import CLASSES

#: How the SVMs' training clips can be chosen (see the module text).
SVM_TRAIN = ("augmented", "original", "both")


class FusionError(ValueError):
    """Features and labels that cannot be fitted or fused."""


def check_features(X, y=None, name: str = "features") -> tuple[np.ndarray, np.ndarray | None]:
    """``X`` as float32 ``(N, D)`` and ``y`` as int ``(N,)``; :class:`FusionError` for different
    lengths, a wrong rank, NaN/inf features or labels outside ``0..3``."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise FusionError(f"{name}: expected a (samples, features) matrix, got shape {X.shape}")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise FusionError(f"{name}: {int(bad.sum())} sample(s) have NaN or infinite features (first: row {int(np.flatnonzero(bad)[0])})")
    if y is None:
        return X, None
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise FusionError(f"{name}: {len(X)} feature rows but {y.shape[0] if y.ndim else 0} labels; they must match one to one")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and (y.min() < 0 or y.max() >= len(CLASSES))):
        raise FusionError(f"{name}: labels must be class indices 0..{len(CLASSES) - 1} ({', '.join(CLASSES)})")
    return X, y.astype(np.int64)


def calibrated_svm(svm, X, y, seed: int = 0, name: str = "features", error: type[ValueError] = FusionError, classes=None):
    """``svm`` (an unfitted :class:`sklearn.svm.SVC`) on standardised features, with Platt
    probabilities: the one recipe of DTSCNN's SVMs (:func:`fit_svm`) and the baselines'
    (:func:`mexpr.baselines.classify.fit`), described in the module text.  ``X (N, D)`` and
    ``y (N,)`` (class indices) are checked already.

    Every class of ``classes`` (class indices; None: all four) needs at least 2 training samples
    (:func:`check_classes`); the protocol ``megc3`` has three (:func:`mexpr.datasets.protocol_classes`)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    counts = check_classes(y, name, error, classes)
    cv = StratifiedKFold(n_splits=min(5, int(counts[counts > 0].min())), shuffle=True, random_state=int(seed))
    return CalibratedClassifierCV(make_pipeline(StandardScaler(), svm), method="sigmoid", cv=cv, ensemble=False).fit(X, y)


def check_classes(y, name: str = "features", error: type[ValueError] = FusionError, classes=None) -> np.ndarray:
    """The training samples per class of ``y`` (class indices; ``(4,)``, in :data:`CLASSES` order),
    or ``error`` naming the classes of ``classes`` (indices; None: all four) with fewer than 2: a
    class with none cannot be predicted (its probability column would be missing) and one with a
    single sample can be neither cross-validated nor calibrated.  A label outside ``classes`` is
    an error too (a class the protocol does not have)."""
    classes = range(len(CLASSES)) if classes is None else [int(k) for k in classes]
    counts = np.bincount(y, minlength=len(CLASSES))
    extra = [CLASSES[k] for k in range(len(CLASSES)) if counts[k] and k not in classes]
    if extra:
        raise error(f"{name}: training samples of class(es) {', '.join(extra)}, which this protocol does not have")
    missing = [CLASSES[k] for k in classes if counts[k] == 0]
    if missing:
        raise error(f"{name}: no training sample of class(es) {', '.join(missing)}; every class needs at least 2 to fit and calibrate the SVM")
    single = [CLASSES[k] for k in classes if counts[k] == 1]
    if single:
        raise error(f"{name}: class(es) {', '.join(single)} have a single training sample; calibrating probabilities needs at least 2 per class")
    return counts


def fit_svm(X, y, C: float = 1.0, seed: int = 0, name: str = "features", classes=None):
    """A standardised linear SVM with Platt probabilities (:func:`calibrated_svm`), fitted on
    ``X (N, D)``, ``y (N,)`` (``classes``: the protocol's class indices, None: all four);
    :class:`FusionError` for bad features or labels."""
    from sklearn.svm import SVC

    X, y = check_features(X, y, name)
    return calibrated_svm(SVC(kernel="linear", C=C, random_state=int(seed)), X, y, seed, name, classes=classes)


def expand_proba(p, known, classes=None, name: str = "features", error: type[ValueError] = FusionError) -> np.ndarray:
    """Probabilities ``p (N, len(known))`` over the class indices ``known`` (an SVM's
    ``classes_``) as ``(N, 4)`` in :data:`CLASSES` order, zero for a class the protocol does not
    have; ``error`` unless ``known`` is exactly ``classes`` (None: all four)."""
    want = list(range(len(CLASSES))) if classes is None else sorted(int(k) for k in classes)
    known = [int(k) for k in known]
    if known != want:
        raise error(f"{name}: the SVM knows classes {known}, not the protocol's {want}")
    out = np.zeros((len(p), len(CLASSES)), dtype=np.float64)
    out[:, known] = p
    return out


def proba(svm, X, name: str = "features", classes=None) -> np.ndarray:
    """Class probabilities ``(N, 4)`` in :data:`~mexpr.datasets.CLASSES` order (``classes``: the
    protocol's class indices, None: all four; the others' columns are 0)."""
    X, _ = check_features(X, None, name)
    return expand_proba(svm.predict_proba(X), svm.classes_, classes, name)


def _pair(p64, p128) -> tuple[np.ndarray, np.ndarray]:
    p64, p128 = np.asarray(p64, dtype=np.float64), np.asarray(p128, dtype=np.float64)
    if p64.ndim != 2 or p64.shape != p128.shape:
        raise FusionError(f"the two streams' probabilities must have one shape (samples, classes), got {p64.shape} and {p128.shape}")
    if not (np.isfinite(p64).all() and np.isfinite(p128).all()):
        raise FusionError("NaN or infinite probabilities cannot be fused")
    return p64, p128


def first_decides(p64, p128) -> np.ndarray:
    """Eq. 11's choice of stream: True where the first stream (DTSCNN64, TIM64) decides, i.e. its top
    probability is at least the second's (``P1 >= P2``: ties go to it).  Boolean ``(N,)``."""
    p64, p128 = _pair(p64, p128)
    return p64.max(1) >= p128.max(1)


def decision_fusion(p64, p128) -> np.ndarray:
    """Eq. 11: per sample, the class of the stream whose top probability is higher; a tie goes to
    the first stream (DTSCNN64), as the paper's ``P1 >= P2`` says.  Returns class indices ``(N,)``."""
    p64, p128 = _pair(p64, p128)
    return np.where(first_decides(p64, p128), p64.argmax(1), p128.argmax(1))


def average_fusion(p64, p128) -> np.ndarray:
    """Ours (an extension, not the paper's): the arg-max of the mean of the two streams' probabilities."""
    p64, p128 = _pair(p64, p128)
    return ((p64 + p128) / 2).argmax(1)


def fusion_changes(p64, p128) -> np.ndarray:
    """Where Eq. 11 takes DTSCNN128's answer and the streams disagree: a boolean mask ``(N,)``."""
    p64, p128 = _pair(p64, p128)
    return ~first_decides(p64, p128) & (p64.argmax(1) != p128.argmax(1))
