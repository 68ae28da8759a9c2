"""scikit-learn estimator: ``SelfDistillationClassifier``."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._validation import (
    CLASS_PRIORS,
    INTERCEPT_SCALING,
    LAM,
    MAX_ITER,
    PLL_LOSSES,
    ROUNDS,
    TOL,
    Q,
    check_lam,
    warn_feature_scale,
    warn_single_example_classes,
)
from ._validation import Interval as _Range
from .distill import NamedFit, _self_distill, chain_of, model_names, pll_applies
from .intercept import INTERCEPT_SCALING_DEFAULT, add_intercept, linear_logits, split_weights
from .issues import label_issues_from_cv, rank_label_issues
from .losses import softmax
from .model_io import features_sha256
from .model_selection import (
    CV_TOL,
    averaging_round,
    cross_validate_pipeline,
    default_lam_grid,
    lam_unit,
    resolve_auto,
)
from .prior import adjust_prior, effective_prior, prior_shift
from .solvers import SpectralBasis

__all__ = ["SelfDistillationClassifier"]

#: The documented modes; ``"sd"`` is the name the command line uses for SD rounds.
MODES = ("auto", "sd", "pll", "teacher")
#: Other accepted spellings: ``"multi"`` (the estimator's first name for ``"sd"``).
MODE_ALIASES = {"multi": "sd"}


def _sk(r: _Range) -> Interval:
    """scikit-learn's ``Interval`` for one of :mod:`selfdistill._validation`'s ranges."""
    return Interval(Integral if r.integer else Real, r.lo, r.hi, closed=r.closed)


class SelfDistillationClassifier(ClassifierMixin, BaseEstimator):
    """Linear softmax probe with self-distillation (SD) or partial-label (PLL) refinement.

    A teacher is fitted on the given labels; then, by ``mode``, students of the same
    form are fitted on its soft outputs for ``rounds`` rounds (``"sd"``), or one
    student on its top-2 classes (``"pll"``). The default, ``"auto"``, chooses among
    the teacher, the SD rounds and the PLL student by cross-validation on the given
    labels, so on clean labels it predicts as well as the teacher. Every fit minimises
    ``(1/N) sum_i loss_i + (lam/2) (||W||^2 + ||b||^2 / intercept_scaling^2)`` exactly
    (see :func:`~selfdistill.fit_softmax`; ``b = 0`` without intercept).

    Parameters
    ----------
    lam : float in [1e-12, 1e4] or "auto", default=1e-5
        L2 strength. ``"auto"`` with ``mode="auto"`` runs the procedure of ``selfdistill
        fit --lam auto`` (:func:`~selfdistill.model_selection.resolve_auto`: 4-fold
        screen, clean, refine, choose by the noise-corrected score; the chosen model may be
        fitted without the rows flagged as mislabelled, ``selected_`` then starts with
        ``"pruned-"``); with another ``mode``, lam is picked from ``lam_grid`` by
        ``cv``-fold cross-validation on the given labels for that model
        (docs/selection.md).
    rounds : int, default=4
        SD rounds fitted when ``mode`` is ``"sd"`` or ``"auto"``.
    mode : {"auto", "sd", "pll", "teacher"}, default="auto"
        Which model predicts: the one with the best ``cv``-fold cross-validated accuracy
        on the given labels (``"auto"``; it costs about ``cv + 1`` pipelines, and only the
        chain up to the chosen model is refitted on all rows), the last SD round
        (``"sd"``; ``"multi"`` is accepted as another name for it), the PLL student, or
        the teacher. With two classes the top-2 partial label is every class, so the PLL
        student is never fitted: ``"auto"`` chooses among teacher and SD rounds, and
        ``"pll"`` predicts with the teacher (with a ``UserWarning``).
    q : float, default=0.7
        GCE exponent of the PLL loss.
    pll_loss : {"gce", "two-hot"}, default="gce"
        PLL student loss (see :mod:`selfdistill.distill`).
    tol : float, default=1e-6
        Relative gradient-norm tolerance of each fit.
    max_iter : int, default=2000
        Iteration cap of each fit.
    cv : int, default=None
        Folds of the cross-validation: None means 4 for ``lam="auto"`` with
        ``mode="auto"`` (:data:`~selfdistill.model_selection.AUTO_SPLITS`, as
        ``selfdistill fit --lam auto``) and 3 otherwise.
    lam_grid : tuple of float, default=None
        Candidates for ``lam="auto"``; None: (1e-6, 1e-5, 1e-4) for rows of norm about 1,
        times the features' mean squared row norm
        (:func:`~selfdistill.model_selection.default_lam_grid`).
    random_state : int, RandomState or None, default=None
        Seeds the cross-validation folds (the fits themselves are deterministic).
    fit_intercept : bool, default=True
        Fit a bias per class, as liblinear does: a constant column of value
        ``intercept_scaling`` is appended to the features (:mod:`selfdistill.intercept`),
        so every fit, the cross-validation and the label issues see ``[X, s 1]``. The bias
        is penalised with the weights (Notes). ``False`` gives the model of
        docs/theory-derivation.md (no intercept): use it to compare with the theory, and
        consider it when the PLL student is wanted or with thousands of classes of a few
        rows each: the bias reproduces the targets' class averages, and PLL's top-2
        targets pile runner-up mass onto a few classes (docs/pipeline.md, measured there).
    intercept_scaling : float in (0, 1e6], default=0.3
        Value ``s`` of the constant column. The bias ``b`` is penalised by
        ``(lam/2) ||b||^2 / s^2``: a larger ``s`` penalises it less and costs solver
        steps on rows of norm about 1 (about 2x at ``s = 1``, liblinear's value), a
        smaller one costs accuracy where noise skews the class counts (why 0.3:
        :mod:`selfdistill.intercept`). Ignored when ``fit_intercept=False``.
    class_prior : {"uniform", "given"}, default="uniform"
        ``"uniform"``: the predicting model's intercept is shifted so that it predicts as
        if the classes were balanced (:mod:`selfdistill.prior`): label noise piles rows
        onto some classes and drains others, and a model fitted on the given labels
        copies that. ``"given"`` keeps the fitted bias (the given labels' class
        frequencies; use it for long-tailed data whose frequencies are right,
        docs/selection.md measures the cost). With ``lam="auto"`` it also shapes the
        choice and the label issues: the candidates are scored and flag as the final
        model will predict, shifted, and label averaging runs only under ``"uniform"``
        (docs/selection.md, steps 2-3). Without intercept (``fit_intercept=False``)
        there is no bias to shift, and the model is as fitted.

    Attributes
    ----------
    classes_ : ndarray of shape (K,)
    n_features_in_ : int
    coef_ : ndarray of shape (K, d)
        Weights of the predicting model (W in theory-derivation.md).
    intercept_ : ndarray of shape (K,)
        Its bias per class (the fitted one plus the ``class_prior`` shift; zeros when
        ``fit_intercept=False``); the logits are ``X @ coef_.T + intercept_``.
    lam_ : float
        The lam used (chosen one for ``lam="auto"``).
    selected_ : str
        Name of the predicting model (``"teacher"``, ``"sd-t"`` or ``"pll"``; prefixed
        ``"pruned-"`` when ``lam="auto"`` fitted it without the flagged rows).
    history_ : list of dict
        One record per model fitted on all rows
        (:meth:`~selfdistill.distill.NamedFit.to_dict`: name, objective, iterations,
        nfev, seconds, converged, status, ...). With ``mode="auto"`` only the chain up to
        the chosen model is refitted (under label averaging the whole chain and its PLL
        student, from which the model is picked); ``cv_results_`` scores every candidate.
    label_issues_ : ndarray of int
        Training rows whose given label disagrees with the predicting model, most
        confident first (see :mod:`selfdistill.issues`). With ``lam="auto"`` or
        ``mode="auto"`` the model's *out-of-fold* probabilities from the
        cross-validation are used (a row is judged by fold models that never saw it),
        with ``lam="auto"`` united with a stiffer screening teacher's flags when the
        noise looks learnable (``cv_results_["lam_flag"]``, docs/selection.md);
        otherwise its in-sample probabilities, which partly memorise the noise and
        flag fewer rows.
    label_issue_scores_ : ndarray of float
        Their scores, the probability that the given label is wrong
        (:func:`selfdistill.issues.label_scores`), same order. How many rows are flagged
        is estimated from the data (calibrated confident joint,
        :func:`selfdistill.issues.estimate_n_issues`).
    label_issue_suggestions_ : ndarray of int
        The suggested label of each flagged row (in ``classes_``), same order.
    cv_results_ : dict or None
        Cross-validation record when ``lam="auto"`` or ``mode="auto"``.
    n_iter_ : ndarray of shape (n_models,)
    features_sha256_ : str
        Digest of the training features (:func:`selfdistill.model_io.features_sha256`),
        stored by :meth:`save` as the model's feature provenance.

    See Also
    --------
    selfdistill.fit_softmax : one fit.
    selfdistill.self_distill : the pipeline without the estimator wrapper.

    Notes
    -----
    theory-derivation.md §1-3: each student's outputs are its targets averaged over instances with
    correlated features; averaging removes instance-specific label noise first.

    With ``fit_intercept=True`` the derivation applies to the augmented features
    ``[X, s 1]``: their Gram matrix ``G = X X^T + s^2 1 1^T`` is the one the averaging
    runs over. The fitted weights ``W~`` (K, d + 1) give ``coef_ = W~[:, :d]`` and
    ``intercept_ = s W~[:, d]``, so the penalty ``(lam/2) ||W~||^2`` is
    ``(lam/2) (||coef_||^2 + ||intercept_||^2 / s^2)``: unlike scikit-learn's
    ``LogisticRegression`` (lbfgs), the bias is regularised, as in liblinear.

    Examples
    --------
    >>> from selfdistill.datasets import load_digits_dataset
    >>> ds = load_digits_dataset()
    >>> clf = SelfDistillationClassifier(lam=1e-3, mode="sd", rounds=2)
    >>> clf.fit(ds.X_train, ds.y_train).selected_
    'sd-2'
    >>> [h["name"] for h in clf.history_]
    ['teacher', 'sd-1', 'sd-2']
    >>> round(clf.score(ds.X_test, ds.y_test), 2)
    0.9...
    """

    _parameter_constraints: dict = {
        "lam": [_sk(LAM), StrOptions({"auto"})],
        "rounds": [_sk(ROUNDS)],
        "mode": [StrOptions(set(MODES) | set(MODE_ALIASES))],
        "q": [_sk(Q)],
        "pll_loss": [StrOptions(set(PLL_LOSSES))],
        "tol": [_sk(TOL)],
        "max_iter": [_sk(MAX_ITER)],
        "cv": [Interval(Integral, 2, None, closed="left"), None],
        "lam_grid": ["array-like", None],
        "random_state": ["random_state"],
        "fit_intercept": ["boolean"],
        "intercept_scaling": [_sk(INTERCEPT_SCALING)],
        "class_prior": [StrOptions(set(CLASS_PRIORS))],
    }

    def __init__(
        self,
        lam=1e-5,
        *,
        rounds=4,
        mode="auto",
        q=0.7,
        pll_loss="gce",
        tol=1e-6,
        max_iter=2000,
        cv=None,
        lam_grid=None,
        random_state=None,
        fit_intercept=True,
        intercept_scaling=INTERCEPT_SCALING_DEFAULT,
        class_prior="uniform",
    ):
        self.lam = lam
        self.rounds = rounds
        self.mode = mode
        self.q = q
        self.pll_loss = pll_loss
        self.tol = tol
        self.max_iter = max_iter
        self.cv = cv
        self.lam_grid = lam_grid
        self.random_state = random_state
        self.fit_intercept = fit_intercept
        self.intercept_scaling = intercept_scaling
        self.class_prior = class_prior

    def _lam_grid(self, unit: float) -> list[float]:
        """``lam_grid`` checked, or the default grid in the features' lam ``unit``."""
        if self.lam_grid is None:
            return list(default_lam_grid(unit))
        return [check_lam(v, name="lam_grid entry") for v in self.lam_grid]

    def _seed(self) -> int:
        rs = self.random_state
        if rs is None:
            return 0
        if isinstance(rs, Integral):
            return int(rs)
        return int(rs.randint(0, 2**31 - 1))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit teacher and students on ``X`` (N, d) and given labels ``y`` (N,).

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        K = len(self.classes_)
        if K < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {self.classes_[0]!r}"
            )
        warn_single_example_classes(y_enc, self.classes_)
        warn_feature_scale(X)
        self.features_sha256_ = features_sha256(X)
        # the lam unit of lam="auto" (of the features, before the intercept column); a
        # fixed lam needs none, so its fits skip the pass over X
        unit = lam_unit(X) if self.lam == "auto" else None
        # the intercept as a constant column (liblinear's way): everything below fits,
        # cross-validates and flags on the augmented features
        X = add_intercept(X, float(self.intercept_scaling)) if self.fit_intercept else X
        mode = MODE_ALIASES.get(self.mode, self.mode)
        rounds = self.rounds if mode in ("sd", "auto") else 0
        pll = mode in ("pll", "auto") and pll_applies(K)
        if mode == "pll" and not pll:
            warnings.warn(
                f"mode='pll' needs at least 3 classes (with {K} the top-2 partial label is "
                "every class); predicting with the teacher", UserWarning, stacklevel=2)
        self.cv_results_ = None
        auto = None
        rows = None
        teacher_W = None
        # the basis of X, borrowed by the cross-validation folds and the final fits
        basis = SpectralBasis.from_features(X)
        prior = effective_prior(self.class_prior, self.fit_intercept)  # none without b
        if self.lam == "auto" and mode == "auto":
            # the one resolution of "auto", the same as `selfdistill fit --lam auto`
            auto = resolve_auto(
                X, y_enc, lams=self._lam_grid(unit), rounds=rounds, pll=pll, n_classes=K,
                pll_loss=self.pll_loss, q=self.q, seed=self._seed(), basis=basis,
                average_learnable=prior == "uniform", class_prior=prior, unit=unit,
                **({} if self.cv is None else {"n_splits": int(self.cv)}))
            self.cv_results_ = auto.to_dict()
            self.lam_ = auto.lam
            rows = auto.final_rows(y_enc)
            teacher_W = auto.teacher_W
        elif self.lam == "auto" or mode == "auto":
            lams = self._lam_grid(unit) if self.lam == "auto" else [float(self.lam)]
            names = model_names(rounds, pll)
            sel = cross_validate_pipeline(
                X, y_enc, lams=lams, rounds=rounds, pll=pll, n_classes=K,
                pll_loss=self.pll_loss, q=self.q,
                n_splits=3 if self.cv is None else int(self.cv), seed=self._seed(),
                tol=max(self.tol, CV_TOL), basis=basis,
                select_models=None if mode == "auto" else [
                    "pll" if pll else names[-1] if mode == "sd" else "teacher"],
            )
            self.cv_results_ = {**sel.to_dict(),
                                **({"lam_unit": unit} if self.lam == "auto" else {})}
            self.lam_ = sel.best_lam
        else:
            self.lam_ = float(self.lam)
        if auto is not None:
            self.selected_ = auto.best_model
            rounds, pll = auto.chain()
        elif mode == "auto":
            self.selected_ = self.cv_results_["best_model"]
            # refit only the chain the chosen model needs
            rounds, pll = chain_of(self.selected_)
        # parameters checked by _fit_context against _parameter_constraints, X and y by
        # validate_data: the trusted chain
        Xf, yf = (X, y_enc) if rows is None else (X[rows], y_enc[rows])
        fits = _self_distill(
            Xf, yf, lam=self.lam_, rounds=rounds, pll=pll, pll_loss=self.pll_loss,
            q=float(self.q), n_classes=K, tol=float(self.tol), max_iter=int(self.max_iter),
            basis=basis if rows is None else basis.of_rows(rows), teacher_W=teacher_W,
        )
        if rows is not None:  # fitted without the flagged rows (docs/selection.md)
            fits = [NamedFit("pruned-" + f.name, f.fit) for f in fits]
        by_name = {f.name: f for f in fits}
        if auto is not None and auto.label_averaging:  # the round, from the chain's outputs
            self.selected_, confidence, balance, kept = averaging_round(
                adjust_prior(fits, Xf, prior), Xf, given=(X, y_enc))
            self.cv_results_["best_model"] = self.selected_
            self.cv_results_["confidence"] = confidence
            self.cv_results_["class_balance"] = balance
            self.cv_results_["kept_given"] = kept
        if mode != "auto":
            self.selected_ = "pll" if pll else fits[-1].name if mode == "sd" else "teacher"
        chosen = by_name[self.selected_]
        self.coef_, self.intercept_ = (
            split_weights(chosen.W, float(self.intercept_scaling)) if self.fit_intercept
            else (chosen.W, np.zeros(K)))
        if prior != "given":
            self.intercept_ = self.intercept_ + prior_shift(Xf @ chosen.W.T, prior)
        self.history_ = [f.to_dict() for f in fits]
        self.n_iter_ = np.array([f.fit.iterations for f in fits])
        if auto is not None:
            iss = auto.label_issues(y_enc)
            self.label_issues_, self.label_issue_scores_ = iss.indices, iss.scores
            sugg = iss.suggested
        elif self.cv_results_ is not None:
            iss = label_issues_from_cv(sel, X, y_enc, model=self.selected_)
            self.label_issues_, self.label_issue_scores_ = iss.indices, iss.scores
            sugg = iss.suggested
        else:
            P = chosen.predict_proba(X)
            self.label_issues_, self.label_issue_scores_ = rank_label_issues(P, y_enc)
            sugg = np.argmax(P[self.label_issues_], axis=1)
        self.label_issue_suggestions_ = self.classes_[sugg]
        return self

    def save(self, path):
        """Write the fitted model as a pickle-free model file (:mod:`selfdistill.model_io`).

        Parameters
        ----------
        path : str or Path
            Target ``.npz``, written atomically.

        Returns
        -------
        Path

        See Also
        --------
        selfdistill.load_model : the loader; predictions are identical after a round trip.
        """
        from .model_io import SavedModel, write_model

        check_is_fitted(self)
        params = {k: (list(v) if isinstance(v, tuple)
                      else v.item() if isinstance(v, np.generic) else v)
                  for k, v in self.get_params().items()}
        if not isinstance(params.get("random_state"), (int, type(None))):
            params["random_state"] = None
        return write_model(path, SavedModel(
            W=self.coef_, intercept=self.intercept_, classes=self.classes_, lam=self.lam_,
            model_name=self.selected_, features_sha256=getattr(self, "features_sha256_", ""),
            params=params))

    @classmethod
    def load(cls, path):
        """A fitted classifier from a model file (written by :meth:`save` or ``fit --model``).

        Only what prediction needs is restored: ``coef_``, ``intercept_``, ``classes_``,
        ``n_features_in_``, ``lam_``, ``selected_`` and the parameters; the training
        history and label issues are not stored (``history_`` is empty). A file of
        schema version 1 (written before intercepts existed) loads with
        ``intercept_ = 0`` and ``fit_intercept=False``, the model it holds.

        Raises
        ------
        SelfDistillError
            Not a model file, a schema version from a newer selfdistill, malformed members.
        """
        from .model_io import read_model

        saved = read_model(path)
        known = set(cls._get_param_names())
        params = {k: (tuple(v) if k == "lam_grid" and v is not None else v)
                  for k, v in saved.params.items() if k in known}
        if saved.schema_version < 2:  # fitted before intercepts existed: none
            params.setdefault("fit_intercept", False)
        params.setdefault("class_prior", "given")  # saved before class priors existed
        clf = cls(**params)
        clf.classes_ = saved.classes
        clf.coef_ = saved.W
        clf.intercept_ = saved.intercept
        clf.n_features_in_ = saved.d
        clf.lam_ = saved.lam
        clf.selected_ = saved.model_name
        clf.features_sha256_ = saved.features_sha256
        clf.history_ = []
        clf.n_iter_ = np.zeros(0, dtype=int)
        clf.cv_results_ = None
        return clf

    def _logits(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return linear_logits(np.asarray(X, dtype=np.float64), self.coef_, self.intercept_)

    def decision_function(self, X):
        """Logits ``X coef_^T + intercept_`` of the predicting model, shape (M, K) (or (M,)
        when K = 2)."""
        Z = self._logits(X)
        return Z[:, 1] - Z[:, 0] if Z.shape[1] == 2 else Z

    def predict_proba(self, X):
        """Class probabilities ``softmax(X coef_^T + intercept_)``, shape (M, K), columns in
        ``classes_``."""
        return softmax(self._logits(X))

    def predict(self, X):
        """Most probable class of each row, shape (M,)."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
