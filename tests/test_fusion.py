"""Linear SVMs with probabilities and Eq. 11 decision fusion: known answers and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mexpr import fusion
from mexpr.fusion import FusionError


def blobs(n_per=12, d=20, seed=0, sep=4.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, sep, (4, d))
    y = np.repeat(np.arange(4), n_per)
    return (centres[y] + rng.normal(0, 1, (len(y), d))).astype(np.float32), y


def test_eq11_takes_the_more_confident_stream_and_ties_go_to_dtscnn64():
    p64 = np.array([[0.7, 0.1, 0.1, 0.1], [0.4, 0.3, 0.2, 0.1], [0.5, 0.05, 0.4, 0.05], [0.25, 0.25, 0.4, 0.1]])
    p128 = np.array([[0.1, 0.2, 0.6, 0.1], [0.1, 0.1, 0.1, 0.7], [0.05, 0.5, 0.4, 0.05], [0.1, 0.1, 0.1, 0.7]])
    #                 64 wins (0.7>0.6)      128 wins (0.7>0.4)    tie 0.5=0.5 -> 64             128 wins
    assert fusion.decision_fusion(p64, p128).tolist() == [0, 3, 0, 3]
    assert fusion.first_decides(p64, p128).tolist() == [True, False, True, False]
    assert fusion.fusion_changes(p64, p128).tolist() == [False, True, False, True]
    # averaging (ours) can pick a class neither stream ranks first: row 2 -> (.275, .275, .4, .05)
    assert fusion.average_fusion(p64, p128).tolist() == [0, 3, 2, 3]


def test_svm_probabilities_and_fit():
    X, y = blobs()
    svm = fusion.fit_svm(X, y, seed=0)
    Xt, yt = blobs(n_per=5, seed=0)  # same centres, new noise
    p = fusion.proba(svm, Xt)
    assert p.shape == (20, 4) and np.allclose(p.sum(1), 1, atol=1e-6)
    assert (p.argmax(1) == yt).mean() >= 0.9
    again = fusion.proba(fusion.fit_svm(X, y, seed=0), Xt)
    assert np.array_equal(p, again)  # seeded Platt scaling: same probabilities


def test_bad_features_and_labels_are_clear_errors():
    X, y = blobs()
    with pytest.raises(FusionError, match="48 feature rows but 47 labels"):
        fusion.fit_svm(X, y[:-1])
    Xn = X.copy()
    Xn[5, 3] = np.nan
    with pytest.raises(FusionError, match="1 sample.*NaN.*row 5"):
        fusion.fit_svm(Xn, y)
    with pytest.raises(FusionError, match="no training sample of class.*Positive"):
        fusion.fit_svm(X[y != 2], y[y != 2])
    with pytest.raises(FusionError, match="labels must be class indices"):
        fusion.fit_svm(X, y + 1)
    with pytest.raises(FusionError, match="one shape"):
        fusion.decision_fusion(np.ones((3, 4)) / 4, np.ones((2, 4)) / 4)
