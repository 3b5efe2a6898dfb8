"""The SVMs the paper pairs with each baseline, with class probabilities for Eq. 11's fusion
(Peng et al. 2017, *Experimental Results*: STCLQP, MDMO, FDM; Table 4).

* **STCLQP**: "a SVM classifier with polynomial kernel ... The parameters of SVM were refined using
  grid searching (Hsu et al., 2003)".
* **MDMO**: "a SVM with Gaussian kernel".  The paper gives no parameters; we grid-search them the
  same way as STCLQP's (ours, said here because it is not the paper's).
* **FDM**: "a Linear SVM classifier".  Its C is grid-searched too (ours, same reason).

:func:`fit` does, on the **training features only**:

1. **Grid search** in the style of Hsu, Chang & Lin (2003), *A Practical Guide to Support Vector
   Classification*: standardised features, exponentially spaced (log2) grids, parameters chosen
   by the mean score of a seeded stratified ``inner_folds``-fold cross-validation of the
   training data (:data:`C_GRID`; gamma :data:`GAMMA_GRID` times ``1 / D``, i.e. around
   scikit-learn's ``gamma="scale"`` for standardised features of any length D; polynomial
   degree 2 or 3 with ``coef0 = 1``: :func:`param_grid`).  Ties go to the first setting in grid
   order (smaller C, smaller gamma, lower degree: the simpler model).  Our grid is coarser than
   Hsu et al.'s (C steps of 2^4 over their 2^-5..2^15, four gammas) so that a fit on ~340 clips
   takes seconds.  Inside the search each fold's scaler is fitted on that fold's training part,
   and the kernels are computed from one Gram matrix per fold (``kernel="precomputed"``: the same
   kernel values as scikit-learn's, :func:`kernel_matrix`), which makes the search about ten times
   faster than refitting libsvm's own kernels.
2. **Probabilities** as :func:`mexpr.fusion.fit_svm` makes them for DTSCNN: the chosen SVM
   (standardiser + :class:`sklearn.svm.SVC`) inside
   :class:`sklearn.calibration.CalibratedClassifierCV` with Platt's sigmoid, ``ensemble=False``
   and a seeded stratified 5-fold split (fewer when a class has fewer samples), refitted on all
   the training features.  :func:`proba` returns ``(N, 4)`` in :data:`mexpr.datasets.CLASSES`
   order; the predicted class is their arg-max.

The search scores ``"accuracy"`` by default, the measure of the paper's Table 4 (which, as the
paper's Figure 7 shows, favours the larger classes); ``"f1_macro"`` (UF1) and
``"balanced_accuracy"`` (UAR) are there to try.  ``balanced=True`` (ours, not the paper's) adds
balanced class weights, scores the search by UAR and prior-corrects the probabilities (:func:`fit`).
"""

from __future__ import annotations

import numpy as np

from mexpr.datasets import CLASSES

#: Each baseline's SVM kernel (the paper's *Experimental Results*).
KERNELS = {"stclqp": "poly", "mdmo": "rbf", "fdm": "linear"}

#: log2 grids (Hsu et al. 2003): C = 2^-5, 2^-1, ..., 2^15; gamma = 2^-6, 2^-3, 1, 2^3 times 1/D.
C_GRID = tuple(2.0**k for k in range(-5, 16, 4))
GAMMA_GRID = tuple(2.0**k for k in (-6, -3, 0, 3))
DEGREES = (2, 3)
COEF0 = 1.0  # polynomial kernel (gamma <x, x'> + 1)^degree: all monomials up to the degree

SCORINGS = ("accuracy", "f1_macro", "balanced_accuracy")


class ClassifyError(ValueError):
    """Features and labels that cannot be fitted or scored."""


def param_grid(method: str, n_features: int, grid: dict | None = None) -> list[dict]:
    """The SVC settings :func:`fit` tries for ``method`` on ``n_features``-long features, in
    order: dicts of ``kernel``, ``C`` and, as the kernel needs, ``gamma`` (absolute), ``degree``,
    ``coef0``.  ``grid`` overrides ``"C"``, ``"gamma"`` (multiples of ``1 / n_features``) or
    ``"degree"`` lists."""
    if method not in KERNELS:
        raise ClassifyError(f"unknown baseline {method!r}; valid: {', '.join(KERNELS)}")
    g = {"C": C_GRID, "gamma": GAMMA_GRID, "degree": DEGREES, **(grid or {})}
    unknown = set(g) - {"C", "gamma", "degree"}
    if unknown:
        raise ClassifyError(f"grid has unknown key(s) {sorted(unknown)}; valid: C, gamma, degree")
    kernel = KERNELS[method]
    out = []
    for c in g["C"]:
        if kernel == "linear":
            out.append({"kernel": "linear", "C": float(c)})
            continue
        for gam in g["gamma"]:
            if kernel == "rbf":
                out.append({"kernel": "rbf", "C": float(c), "gamma": float(gam) / n_features})
            else:
                for d in g["degree"]:
                    out.append({"kernel": "poly", "C": float(c), "gamma": float(gam) / n_features, "degree": int(d), "coef0": COEF0})
    return out


def kernel_matrix(gram: np.ndarray, sq_a: np.ndarray, sq_b: np.ndarray, params: dict) -> np.ndarray:
    """An SVC kernel from dot products: ``gram`` ``(n_a, n_b)`` = ``A @ B.T``, ``sq_a``/``sq_b``
    the rows' squared norms; as scikit-learn's ``linear``, ``poly`` ((gamma <a, b> + coef0)^degree)
    and ``rbf`` (exp(-gamma |a - b|^2)) kernels."""
    kernel = params["kernel"]
    if kernel == "linear":
        return gram
    if kernel == "poly":
        return (params["gamma"] * gram + params["coef0"]) ** params["degree"]
    if kernel == "rbf":
        d2 = np.maximum(sq_a[:, None] + sq_b[None, :] - 2 * gram, 0.0)
        return np.exp(-params["gamma"] * d2)
    raise ClassifyError(f"unknown kernel {kernel!r}")


def _labels(y) -> np.ndarray:
    """Class indices 0..3 from indices or class names (:data:`~mexpr.datasets.CLASSES`)."""
    y = np.asarray(y)
    if y.dtype.kind in "USO":
        unknown = sorted({str(v) for v in y} - set(CLASSES))
        if unknown:
            raise ClassifyError(f"unknown class label(s) {unknown[:5]}; valid: {', '.join(CLASSES)}")
        return np.array([CLASSES.index(str(v)) for v in y], np.int64)
    return y


def _check(method: str, X, y=None) -> tuple[np.ndarray, np.ndarray | None]:
    from mexpr.fusion import check_features

    name = f"{method} features"
    X = np.asarray(X)
    y = None if y is None else _labels(y)
    if X.ndim == 2 and X.dtype.kind in "fc":  # fusion.check_features says the same, without the hint; shape and labels are its
        bad = ~np.isfinite(X).all(axis=1)
        if bad.any():
            raise ClassifyError(
                f"{name}: {int(bad.sum())} of {len(X)} rows have NaN or infinite values (first: row {int(np.flatnonzero(bad)[0])}); "
                "leave out the clips that extraction skipped (table.status != 'processed')"
            )
    try:
        return check_features(X, y, name)
    except ValueError as e:
        raise ClassifyError(str(e)) from e


def _score(scoring: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    if scoring == "accuracy":
        return float(accuracy_score(y_true, y_pred))
    if scoring == "balanced_accuracy":
        return float(balanced_accuracy_score(y_true, y_pred))
    return float(f1_score(y_true, y_pred, average="macro", labels=np.unique(np.concatenate([y_true, y_pred])), zero_division=0))


def _default_scoring(scoring: str | None, balanced: bool) -> str:
    """``scoring`` as given, or (None) ``"balanced_accuracy"`` with ``balanced``, ``"accuracy"`` without."""
    if scoring is None:
        return "balanced_accuracy" if balanced else "accuracy"
    return scoring


def grid_search(method: str, X, y, seed: int = 0, inner_folds: int = 3, scoring: str | None = None, grid: dict | None = None, balanced: bool = False):
    """The grid search of :func:`fit` alone: ``(best_params, best_score, results)``, ``results`` a
    DataFrame with one row per setting (its parameters, ``gamma_x_D``, ``mean_score``,
    ``std_score`` and one ``split<k>`` column per inner fold).  ``balanced`` (ours): the inner
    SVCs get ``class_weight="balanced"`` and ``scoring`` (None) defaults to ``"balanced_accuracy"``
    instead of ``"accuracy"``."""
    import pandas as pd
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    scoring = _default_scoring(scoring, balanced)
    if scoring not in SCORINGS:
        raise ClassifyError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
    X, y = _check(method, X, y)
    settings = param_grid(method, X.shape[1], grid)
    counts = np.bincount(y, minlength=len(CLASSES))
    fewest = int(counts[counts > 0].min()) if counts.any() else 0
    if inner_folds < 2 or fewest < 2:
        raise ClassifyError(
            f"the grid search needs inner_folds >= 2 and 2 training samples per class, got inner_folds={inner_folds}, fewest per class {fewest}"
        )
    cv = StratifiedKFold(n_splits=min(int(inner_folds), fewest), shuffle=True, random_state=int(seed))
    scores = np.zeros((len(settings), cv.get_n_splits()))
    for f, (tr, va) in enumerate(cv.split(X, y)):
        scaler = StandardScaler().fit(X[tr])
        a, b = scaler.transform(X[tr]).astype(np.float64), scaler.transform(X[va]).astype(np.float64)
        g_tr, g_va = a @ a.T, b @ a.T
        sq_a, sq_b = (a * a).sum(1), (b * b).sum(1)
        for s, params in enumerate(settings):
            svm = SVC(kernel="precomputed", C=params["C"], class_weight="balanced" if balanced else None).fit(
                kernel_matrix(g_tr, sq_a, sq_a, params), y[tr]
            )
            scores[s, f] = _score(scoring, y[va], svm.predict(kernel_matrix(g_va, sq_b, sq_a, params)))
    results = pd.DataFrame(settings)
    if "gamma" in results:
        results["gamma_x_D"] = results["gamma"] * X.shape[1]
    results["mean_score"], results["std_score"] = scores.mean(1), scores.std(1)
    for f in range(scores.shape[1]):
        results[f"split{f}"] = scores[:, f]
    best = int(np.argmax(scores.mean(1)))  # first of equals: the simplest
    return settings[best], float(scores[best].mean()), results


class BaselineSVM:
    """A fitted baseline classifier (:func:`fit`): the chosen SVM with Platt probabilities.

    Attributes: ``method``; ``best_params_`` (the SVC settings chosen by the grid search:
    ``kernel``, ``C``, and ``gamma``/``degree``/``coef0`` as the kernel has them);
    ``best_score_`` (their mean inner-CV score); ``cv_results_`` (every setting's scores, a
    DataFrame); ``scoring``; ``calibrated_`` (the fitted standardiser + SVC inside
    ``CalibratedClassifierCV``); ``classes_`` (0..3, :data:`~mexpr.datasets.CLASSES` order);
    ``balanced`` (ours: balanced class weights, see :func:`fit`); ``priors_`` (with ``balanced``,
    the training class frequencies :meth:`predict_proba` divides by; else None).
    """

    def __init__(self, method: str, best_params: dict, best_score: float, cv_results, scoring: str, calibrated, balanced: bool = False, priors=None):
        self.method = method
        self.best_params_ = best_params
        self.best_score_ = best_score
        self.cv_results_ = cv_results
        self.scoring = scoring
        self.calibrated_ = calibrated
        self.classes_ = np.asarray(calibrated.classes_)
        self.n_features_in_ = int(calibrated.n_features_in_)
        self.balanced = bool(balanced)
        self.priors_ = None if priors is None else np.asarray(priors, np.float64)

    def __repr__(self) -> str:
        return f"BaselineSVM({self.method!r}, {self.best_params_}, inner-CV {self.scoring} {self.best_score_:.3f}, balanced={self.balanced})"

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``float64 (N, 4)`` in :data:`~mexpr.datasets.CLASSES` order.

        With ``balanced`` (ours) they are **prior-corrected**: Platt's sigmoids are fitted on the
        training clips' labels, so the calibrated probabilities still carry the training class
        frequencies (Others about half) and their arg-max drifts back to the largest class even
        when the SVM itself was class-weighted.  Each column is divided by its class's training
        frequency (``priors_``) and each row renormalised to sum to 1: the posteriors under equal
        class priors, whose arg-max is the balanced decision (Eq. 11 takes these too).
        """
        X, _ = _check(self.method, X)
        if X.shape[1] != self.n_features_in_:
            raise ClassifyError(f"{self.method} features: {X.shape[1]} values per row, the SVM was fitted on {self.n_features_in_}")
        p = self.calibrated_.predict_proba(X)
        if self.priors_ is None:
            return p
        p = p / self.priors_
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """Class indices ``(N,)``: the arg-max of :meth:`predict_proba`."""
        return self.predict_proba(X).argmax(1)


def fit(
    method: str,
    X,
    y,
    seed: int = 0,
    inner_folds: int = 3,
    scoring: str | None = None,
    grid: dict | None = None,
    balanced: bool = False,
    classes=None,
) -> BaselineSVM:
    """The paper's classifier for baseline ``method`` (``"stclqp"``: polynomial SVM; ``"mdmo"``:
    Gaussian; ``"fdm"``: linear), grid-searched and calibrated on **training** features ``X``
    ``(N, D)`` with labels ``y`` ``(N,)`` (class indices 0..3 or names); see the module docstring.

    ``seed`` fixes the inner and the calibration splits; ``inner_folds``: folds of the grid
    search (fewer when a class has fewer samples); ``grid``: :func:`param_grid` overrides;
    ``scoring``: the grid search's measure (:data:`SCORINGS`; None: ``"accuracy"``, or
    ``"balanced_accuracy"`` with ``balanced``).

    ``balanced=True`` is **ours, not the paper's**: the paper's unweighted SVMs, searched for
    accuracy, answer the largest class (Others) for nearly every clip of the imbalanced data.
    With it the SVC gets ``class_weight="balanced"`` in the grid search's inner CV and in the
    final calibrated SVM, the search scores balanced accuracy (UAR) unless ``scoring`` says
    otherwise, and :meth:`BaselineSVM.predict_proba` divides Platt's probabilities by the
    training class frequencies (rows renormalised), so that the calibration does not pull the
    arg-max back to the majority.  ``balanced=False`` (default) is the paper's set-up.

    :class:`ClassifyError` (a ``ValueError``) for features and labels of different lengths, NaN
    features (how many rows, and the first), a class with no training sample or only one.
    """
    from sklearn.svm import SVC

    from mexpr.fusion import calibrated_svm, check_classes

    if method not in KERNELS:
        raise ClassifyError(f"unknown baseline {method!r}; valid: {', '.join(KERNELS)}")
    X, y = _check(method, X, y)
    counts = check_classes(y, method, ClassifyError, classes)  # before the grid search, which needs 2 per class too
    scoring = _default_scoring(scoring, balanced)
    best, score, results = grid_search(method, X, y, seed, inner_folds, scoring, grid, balanced=balanced)
    svm = SVC(**best, random_state=int(seed), class_weight="balanced" if balanced else None)
    calibrated = calibrated_svm(svm, X, y, seed, name=method, error=ClassifyError, classes=classes)
    present = counts[np.asarray(calibrated.classes_, int)]
    priors = present / present.sum() if balanced else None
    return BaselineSVM(method, best, score, results, scoring, calibrated, balanced=balanced, priors=priors)


def proba(est: BaselineSVM, X, classes=None) -> np.ndarray:
    """Class probabilities ``(N, 4)`` in :data:`~mexpr.datasets.CLASSES` order (rows sum to 1),
    ready for Eq. 11 (:func:`mexpr.fusion.decision_fusion`); ``classes``: the protocol's class
    indices (None: all four), the others' columns 0."""
    from mexpr.fusion import expand_proba

    return expand_proba(est.predict_proba(X), est.classes_, classes, est.method, ClassifyError)
