"""Class-prior adjustment of fitted models: predict as if every class were equally common.

Label noise moves rows between classes unevenly. An annotator who confuses plausible
classes gives its favourite wrong classes far more rows than they hold and drains
others: on BANKING77 under the benchmark's text annotator at rate 0.5 the given class
counts run from 4 to 431 where the true ones run from 35 to 187 (``idn`` noise does
the same). A model fitted on those labels learns their class frequencies, and a
drained class is almost never predicted, however clean its rows' features are. No
estimate from the given labels alone finds the true frequencies again: the confident
joint's, the noise matrix's and the flagged rows' priors all stay as far from the truth
as the given one (docs/selection.md, "Class prior").

``class_prior="uniform"`` therefore shifts each final model's logits so that it
predicts as if the classes were balanced (the logit adjustment of Menon et al., 2021,
"Long-tail learning via logit adjustment"): the bias of class k moves by
``-log(K * pi_k)``, where ``pi`` is the model's own mean predicted probability over the
rows it was fitted on (the prior it learnt, penalty's shrinkage included). The weights
are untouched, so the ranking of a row's classes changes only through the bias.
``"given"`` keeps the models as fitted.

This is an assumption about the data, not an estimate: it suits data whose true classes
are roughly balanced, or a user to whom every class matters equally (it maximises
balanced accuracy). docs/selection.md measures what it costs on long-tailed data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ._validation import CLASS_PRIORS
from .distill import NamedFit
from .losses import softmax

__all__ = ["CLASS_PRIORS", "effective_prior", "prior_shift", "adjust_prior"]


def effective_prior(class_prior: str, fit_intercept: bool) -> str:
    """The class prior a pipeline applies: ``class_prior`` with an intercept, ``"given"``
    without (the shift is a bias, and the model without intercept, the theory's, keeps
    none). Callers check ``class_prior`` against :data:`CLASS_PRIORS` first.

    Examples
    --------
    >>> effective_prior("uniform", True), effective_prior("uniform", False)
    ('uniform', 'given')
    """
    return class_prior if fit_intercept else "given"


def prior_shift(logits: np.ndarray, class_prior: str = "uniform") -> np.ndarray:
    """Bias shift (K,) that moves a model's learnt class prior to ``class_prior``.

    Parameters
    ----------
    logits : ndarray of shape (N, K)
        The model's logits on the rows it was fitted on.
    class_prior : {"given", "uniform"}
        ``"given"``: zeros. ``"uniform"``: ``-log(K * pi)`` with ``pi`` the mean of
        ``softmax(logits)`` over the rows.

    Returns
    -------
    ndarray of shape (K,)

    Examples
    --------
    >>> L = np.log(np.array([[0.7, 0.3], [0.9, 0.1]]))
    >>> prior_shift(L).round(3)       # pi = (0.8, 0.2): class 1 gains log(4)
    array([-0.47 ,  0.916])
    >>> prior_shift(L, "given")
    array([0., 0.])
    """
    K = logits.shape[1]
    if class_prior == "given":
        return np.zeros(K)
    pi = softmax(np.asarray(logits, dtype=np.float64)).mean(axis=0)
    return -np.log(K * np.maximum(pi, 1e-300))


def adjust_prior(fits: Sequence[NamedFit], X: np.ndarray, class_prior: str
                 ) -> list[NamedFit]:
    """``fits`` with each one's :func:`prior_shift` on ``X`` (the rows it was fitted on)
    as its ``bias``; unchanged for ``"given"``."""
    if class_prior == "given":
        return list(fits)
    return [replace(f, bias=prior_shift(X @ f.W.T, class_prior)) for f in fits]
