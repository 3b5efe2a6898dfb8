"""The measures every table of the course reports (Peng et al. 2017, "Experimental Results";
docs/DESIGN.md §7): the confusion matrix (Figure 7), accuracy (Table 4), and the field's
imbalance-aware measures UF1 (the unweighted mean over the four classes of each class's F1) and
UAR (the unweighted mean of the per-class recalls).

Classes absent from a test set are left out of UAR and count F1 = 0 only if predicted.
"""

from __future__ import annotations

import numpy as np

from mexpr.datasets import CLASSES

SHORT = [c[0] for c in CLASSES]  # N, O, P, S: Figure 7's order


def confusion(y_true, y_pred) -> np.ndarray:
    """Counts ``(4, 4)``: rows the true class, columns the predicted one, N/O/P/S order."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    k = len(CLASSES)
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def metrics(y_true, y_pred, classes=None) -> dict:
    """``{"accuracy", "uf1", "uar", "n"}`` (fractions) of class-index predictions.

    ``classes`` (class indices; None: all four) are the protocol's: MEGC 2019 defines UF1 as the
    mean over its three classes of each class's F1 and UAR as the mean of their recalls, computed
    on the confusion matrix pooled over all folds (pass the pooled predictions)."""
    cm = confusion(y_true, y_pred).astype(float)
    if classes is not None:
        keep = sorted(int(k) for k in classes)
        outside = cm.sum() - cm[np.ix_(keep, keep)].sum()
        if outside:
            raise ValueError(f"{int(outside)} label(s) or prediction(s) outside the protocol's classes {[CLASSES[k] for k in keep]}")
        cm = cm[np.ix_(keep, keep)]
    n = cm.sum()
    if n == 0:
        raise ValueError("no predictions to score")
    tp = np.diag(cm)
    support, predicted = cm.sum(1), cm.sum(0)
    present = support > 0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=(support + predicted) > 0)
    scored = present | (predicted > 0)  # a class neither present nor predicted is left out
    recall = tp[present] / support[present]
    return {"accuracy": float(tp.sum() / n), "uf1": float(f1[scored].mean()), "uar": float(recall.mean()), "n": int(n)}
