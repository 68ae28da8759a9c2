"""One experiment: dataset -> noise -> teacher/SD/PLL fits -> spec.md result record.

This is the single place where a grid point is computed; ``selfdistill fit``,
``selfdistill demo`` and sweeps all call :func:`run_experiment`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import SelfDistillError
from .._validation import CLASS_PRIORS, INTERCEPT_SCALING, check_in, check_option
from ..datasets import Dataset
from ..distill import NamedFit, self_distill
from ..intercept import INTERCEPT_SCALING_DEFAULT, add_intercept, linear_logits, split_weights
from ..issues import LabelIssues, NoiseEstimate
from ..losses import softmax
from ..model_selection import (
    CV_TOL,
    averaging_round,
    cross_validate_pipeline,
    lam_unit,
)
from ..noise import NoiseSpec, realized_rate
from ..prior import adjust_prior, effective_prior
from ..solvers import SpectralBasis

__all__ = ["run_pipeline", "run_experiment", "RunResult", "evaluate_models", "given_labels",
           "weights_of"]


def _acc(pred: np.ndarray, truth: np.ndarray) -> float | None:
    return float(np.mean(pred == truth)) if truth.size else None


def weights_of(nf: NamedFit, intercept_scaling: float | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(coef (K, d), intercept (K,))`` of a fitted model.

    ``intercept_scaling`` is the value of the constant column the model was fitted with
    (:func:`~selfdistill.intercept.add_intercept`), or None when it was fitted without
    intercept (the intercept is then zeros). The model's class-prior ``bias``
    (:mod:`selfdistill.prior`), if any, is added to the intercept.
    """
    if intercept_scaling is None:
        coef, b = nf.W, np.zeros(nf.W.shape[0])
    else:
        coef, b = split_weights(nf.W, intercept_scaling)
    return coef, b if nf.bias is None else b + nf.bias


def evaluate_models(
    fits: list[NamedFit],
    ds: Dataset,
    y_given: np.ndarray,
    y_clean: np.ndarray | None,
    *,
    intercept_scaling: float | None = None,
) -> list[dict[str, Any]]:
    """spec.md ``models`` records: test accuracy, clean train accuracy, noisy-subset accuracy.

    ``noisy_subset_acc`` is the accuracy against the clean labels on the training rows
    whose given label is wrong (how many wrong labels the model fixed); ``None``
    without clean labels or when no label is wrong. The fits were made on ``ds``'s
    features with a constant column of value ``intercept_scaling`` appended (None: no
    column); the logits are :func:`~selfdistill.intercept.linear_logits`, as
    ``predict`` computes them.
    """
    out = []
    X = ds.X_train
    noisy = None if y_clean is None else (y_given != y_clean)
    for nf in fits:
        coef, b = weights_of(nf, intercept_scaling)
        pred_tr = np.argmax(linear_logits(X, coef, b), axis=1)
        rec: dict[str, Any] = {"name": nf.name}
        rec["test_acc"] = (
            None if ds.X_test is None
            else _acc(np.argmax(linear_logits(ds.X_test, coef, b), axis=1), ds.y_test)
        )
        truth = y_given if y_clean is None else y_clean
        rec["train_acc_true"] = _acc(pred_tr, truth)
        rec["train_acc_given"] = _acc(pred_tr, y_given)
        rec["noisy_subset_acc"] = (
            None if noisy is None or not noisy.any() else _acc(pred_tr[noisy], y_clean[noisy])
        )
        rec.update({k: v for k, v in nf.to_dict().items() if k != "name"})
        out.append(rec)
    return out


def given_labels(ds: Dataset, noise: NoiseSpec | str = "none", rate: float = 0.0,
                 seed: int = 0, T: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The training labels a run sees, and the transition matrix that made them.

    ``ds.y_train`` as it is for noise "none" (or a record's "given"); otherwise the
    seeded :meth:`NoiseSpec.draw <selfdistill.noise.NoiseSpec.draw>` from the clean
    labels. The one place that decides this, so reports can rebuild a record's labels
    exactly. ``noise`` is a :class:`~selfdistill.noise.NoiseSpec` or its ``KIND:RATE``
    spelling; the older ``(kind, rate, T)`` arguments are still accepted.
    """
    spec = _spec(noise, rate, T)
    K = ds.n_classes
    if spec.is_none:
        return ds.y_train, np.eye(K)
    clean = ds.y_train_clean if ds.y_train_clean is not None else ds.y_train
    return spec.draw(clean, K, features=ds.X_train, seed=seed)


def _spec(noise: NoiseSpec | str, rate: float = 0.0, T: np.ndarray | None = None) -> NoiseSpec:
    """Old ``(kind, rate, T)`` arguments or a spec string -> :class:`NoiseSpec`."""
    if isinstance(noise, NoiseSpec):
        return noise
    if T is not None:
        return NoiseSpec("custom", T=np.asarray(T))
    if noise in ("none", "given", ""):
        return NoiseSpec()
    if ":" in str(noise):
        return NoiseSpec.parse(noise)
    return NoiseSpec(str(noise), float(rate))


@dataclass(eq=False)
class RunResult:
    """Everything one pipeline run produced: the typed result behind ``fit --json``.

    Attributes
    ----------
    dataset : str
    n_train, n_test, n_classes : int
    noise : NoiseSpec
        The noise added to the training labels (``none`` when the labels are used as
        given).
    noise_seed : int
    noise_kind : str
        ``noise.kind``, or ``"given"`` when the file's labels are already noisy.
    rate_requested, realized_rate : float
    T_used : ndarray of shape (K, K)
        The transition matrix that made the labels (identity when none was applied).
    y_given : ndarray of shape (N,)
        The training labels the models saw.
    lam : float
        The L2 strength of the final fits (chosen one when ``lam="auto"``).
    lam_selection : dict or None
        How lam and the model were chosen (spec.md ``lam_selection``).
    fits : list of NamedFit
        Final models, pipeline order.
    models : list of dict
        Their spec.md records (accuracies, objective, iterations, seconds, ...).
    selected : str
        The recommended model's name.
    oof_proba : ndarray of shape (N, K) or None
        Out-of-fold probabilities the label issues and the noise estimate come from.
    flag_others : tuple of ndarray of shape (N, K)
        Further models' out-of-fold probabilities whose flags are united with those of
        ``oof_proba`` (``lam="auto"``:
        :meth:`~selfdistill.model_selection.AutoSelection.flag_probas`).
    issues : LabelIssues or None
        Likely label errors (out-of-fold), when cross-validation ran.
    noise_estimate : NoiseEstimate or None
        Estimated from the given labels and out-of-fold probabilities only: the stiffest
        flagging model's (``flag_others[-1]`` when there is one,
        :meth:`~selfdistill.model_selection.AutoSelection.noise_proba`), else
        ``oof_proba``'s.
    pll_loss : str
    q : float
    seconds : float
    intercept_scaling : float or None
        Value of the constant feature column the models were fitted with
        (:mod:`selfdistill.intercept`); None: fitted without intercept. The fits' ``W``
        then has d + 1 columns; :meth:`weights` splits them.
    class_prior : str
        ``"given"`` or ``"uniform"`` (:mod:`selfdistill.prior`): whether the final
        models' ``bias`` moves their learnt class prior to a uniform one.
    """

    dataset: str
    n_train: int
    n_test: int
    n_classes: int
    noise: NoiseSpec
    noise_seed: int
    noise_kind: str
    rate_requested: float
    realized_rate: float
    T_used: np.ndarray
    y_given: np.ndarray
    lam: float
    lam_selection: dict[str, Any] | None
    fits: list[NamedFit]
    models: list[dict[str, Any]]
    selected: str
    pll_loss: str
    q: float
    seconds: float
    oof_proba: np.ndarray | None = None
    flag_others: tuple[np.ndarray, ...] = ()
    issues: LabelIssues | None = None
    noise_estimate: NoiseEstimate | None = None
    intercept_scaling: float | None = None
    class_prior: str = "given"

    def fit_named(self, name: str) -> NamedFit:
        """The final model called ``name``."""
        for f in self.fits:
            if f.name == name:
                return f
        raise KeyError(name)

    def weights(self, name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(coef (K, d), intercept (K,))`` of the final model ``name`` (default: the
        selected one)."""
        return weights_of(self.fit_named(self.selected if name is None else name),
                          self.intercept_scaling)

    def predict_proba(self, X: np.ndarray, name: str | None = None) -> np.ndarray:
        """``softmax(X coef^T + intercept)`` (M, K) of the final model ``name`` (default:
        the selected one) on features ``X`` (M, d) as the dataset holds them."""
        return softmax(linear_logits(np.asarray(X, dtype=np.float64), *self.weights(name)))

    @property
    def selected_fit(self) -> NamedFit:
        """The recommended model."""
        return self.fit_named(self.selected)

    @property
    def noise_estimate_caveat(self) -> str | None:
        """How far to trust :attr:`noise_estimate`, when label averaging fired (the
        given labels looked learnable); None otherwise.

        The estimate counts the labels the out-of-fold models disagree with, and a model
        learns part of an annotator's systematic mistakes. On BANKING77 it read 0.10,
        0.18, 0.23 and 0.37 for realised rates 0.20, 0.40 (idn) and 0.30, 0.50 (text
        annotator); on the synthetic 150-class set 0.31 and 0.46 for idn 0.3 and 0.5,
        but 0.35-0.60 for an annotator that sees another view of the rows at 0.3-0.5
        (docs/selection.md, section 3, "Which model estimates the noise").
        """
        if not (self.lam_selection or {}).get("label_averaging"):
            return None
        return ("rough, mostly low: the labels look learnable, and models learn part of "
                "such noise (BANKING77 idn 0.4 read 0.18 for 0.40 realised)")

    def to_record(self) -> dict[str, Any]:
        """The spec.md ``fit --json`` record (plain JSON types)."""
        rec: dict[str, Any] = {
            "dataset": self.dataset,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "n_classes": self.n_classes,
            "noise": {
                "kind": self.noise_kind,
                "rate": float(self.rate_requested),
                "realized_rate": self.realized_rate,
                "seed": int(self.noise_seed),
                "transition_matrix": np.round(self.T_used, 6).tolist(),
            },
            "lam": self.lam,
            "lam_selection": self.lam_selection,
            "pll_loss": self.pll_loss,
            "q": self.q,
            "fit_intercept": self.intercept_scaling is not None,
            "intercept_scaling": self.intercept_scaling,
            "class_prior": self.class_prior,
            "models": self.models,
            "selected": self.selected,
            "seconds": self.seconds,
        }
        if self.noise_estimate is not None:
            rec["noise_estimate"] = {**self.noise_estimate.to_dict(),
                                     "caveat": self.noise_estimate_caveat}
        if self.issues is not None:
            rec["n_label_issues"] = len(self.issues)
            rec["label_issues_source"] = self.issues.source
        return rec


def run_pipeline(
    ds: Dataset,
    *,
    noise: NoiseSpec | str = "none",
    noise_seed: int = 0,
    lam: float | str = 1e-5,
    rounds: int = 4,
    pll: bool = True,
    pll_loss: str = "gce",
    q: float = 0.7,
    select: bool = True,
    issues: bool = False,
    lam_grid: tuple[float, ...] | None = None,
    n_splits: int | None = None,
    tol: float | None = None,
    max_iter: int = 2000,
    basis: SpectralBasis | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    fit_intercept: bool = False,
    intercept_scaling: float = INTERCEPT_SCALING_DEFAULT,
    class_prior: str = "given",
) -> RunResult:
    """Run one pipeline: noise -> (cross-validation) -> final fits -> records, issues.

    Parameters
    ----------
    ds : Dataset
        Features and labels; ``ds.y_train`` is treated as clean unless
        ``ds.y_train_clean`` says otherwise.
    noise : NoiseSpec or str, default="none"
        Synthetic noise added to the training labels.
    noise_seed : int, default=0
    lam : float or "auto", default=1e-5
        ``"auto"``: lam *and* the model are chosen from the given labels only
        (:func:`~selfdistill.model_selection.resolve_auto`, the one resolution of
        "auto").
    rounds, pll, pll_loss, q : see :func:`~selfdistill.distill.self_distill`
    select : bool, default=True
        Recommend a model by cross-validation on the given labels; otherwise
        ``selected`` is the PLL student (or the last SD round without PLL).
    issues : bool, default=False
        Also estimate the noise and flag likely label errors from out-of-fold
        probabilities (cross-validates even when ``select`` is off).
    lam_grid : tuple of float, optional
        Candidates for ``lam="auto"``; default
        :func:`~selfdistill.model_selection.default_lam_grid` of the features
        (:data:`~selfdistill.model_selection.DEFAULT_LAM_GRID` for rows of norm about 1).
    n_splits : int, optional
        Folds: default 3 for a fixed lam, :data:`~selfdistill.model_selection.AUTO_SPLITS`
        (4) for ``lam="auto"``.
    max_iter : int, default=2000
        Iteration cap of each final fit.
    tol : float, optional
        Tolerance of the final fits: by default 1e-6, or
        :data:`~selfdistill.model_selection.AUTO_FINAL_TOL` (1e-3) with ``lam="auto"``.
    basis : SpectralBasis, optional
        Precomputed basis of the fitted features, ``ds.X_train`` (with the intercept's
        column when ``fit_intercept``), reused across grid points.
    progress : callable ``(stage, done, total)``, optional
    fit_intercept : bool, default=False
        Fit a bias per class: a constant column of value ``intercept_scaling`` is
        appended to ``ds``'s features for every fit, cross-validation included
        (:mod:`selfdistill.intercept`; the bias is penalised by
        ``(lam/2) ||b||^2 / intercept_scaling^2``). Off by default, the setting of
        docs/theory-derivation.md, which sweeps and the demo compare with; ``selfdistill fit``
        turns it on (``--intercept``).
    intercept_scaling : float, default=0.3
        In ``(0, 1e6]``; :mod:`selfdistill.intercept` says why 0.3.
    class_prior : {"given", "uniform"}, default="given"
        ``"uniform"``: every final model's intercept is shifted so that it predicts as if
        the classes were balanced (:mod:`selfdistill.prior`; the label issues and the
        choice are unchanged). ``"given"`` keeps the fitted models; so does
        ``fit_intercept=False`` (no intercept, no shift: the theory's model, which sweeps
        and the demo use). ``selfdistill fit`` defaults to ``"uniform"``.

    Returns
    -------
    RunResult
    """
    from ..issues import estimate_noise, find_label_issues
    from ..model_selection import AUTO_FINAL_TOL, resolve_auto

    t0 = time.perf_counter()
    if tol is None:
        tol = AUTO_FINAL_TOL if isinstance(lam, str) else 1e-6
    scaling = (check_in(intercept_scaling, INTERCEPT_SCALING, name="intercept_scaling")
               if fit_intercept else None)
    class_prior = effective_prior(
        check_option(class_prior, CLASS_PRIORS, name="class_prior"), fit_intercept)
    spec = NoiseSpec.parse(noise)
    K = ds.n_classes
    clean = ds.y_train_clean if ds.y_train_clean is not None else ds.y_train
    y_given, T_used = given_labels(ds, spec, seed=noise_seed)
    if spec.is_none:
        kind = "given" if ds.y_train_clean is not None else "none"
        rate_req = realized_rate(ds.y_train, clean)
    else:
        kind = spec.kind
        rate_req = (spec.rate if spec.kind != "custom"
                    else float(np.mean(1 - np.diag(T_used)[clean])))
    X = ds.X_train if scaling is None else add_intercept(ds.X_train, scaling)
    cv_progress = (lambda d, t: progress("cv", d, t)) if progress else None
    lam_selection = oof = noise_P = train_rows = cv_scores = teacher_W = None
    flag_others: tuple[np.ndarray, ...] = ()
    if isinstance(lam, str) and lam != "auto":
        raise SelfDistillError(f"lam must be a positive number or 'auto', got {lam!r}")
    if basis is None or basis.XV is None:  # shared by the folds and the final fits
        basis = SpectralBasis.from_features(X)
    if isinstance(lam, str):
        auto = resolve_auto(X, y_given, lams=lam_grid, rounds=rounds, pll=pll, n_classes=K,
                            pll_loss=pll_loss, q=q, seed=noise_seed, progress=cv_progress,
                            basis=basis, average_learnable=class_prior == "uniform",
                            class_prior=class_prior,
                            unit=lam_unit(ds.X_train),   # of the features, no intercept
                            **({} if n_splits is None else {"n_splits": n_splits}))
        lam_value, selected, oof = auto.lam, auto.best_model, auto.oof_proba
        lam_selection = auto.to_dict()
        train_rows = auto.final_rows(y_given)
        if train_rows is not None:
            lam_selection["n_left_out"] = int(np.sum(~train_rows))
        rounds, pll = auto.chain()   # the final chain stops at the chosen model
        teacher_W = auto.teacher_W
        flag_others = auto.flag_probas()[1:]
        noise_P = auto.noise_proba()
    else:
        lam_value = float(lam)
        if select or issues:
            cv = cross_validate_pipeline(
                X, y_given, lams=[lam_value], rounds=rounds, pll=pll, n_classes=K,
                pll_loss=pll_loss, q=q, n_splits=3 if n_splits is None else n_splits,
                seed=noise_seed, tol=max(tol, CV_TOL), progress=cv_progress, basis=basis)
            cv_scores = dict(zip(cv.models, cv.scores[0]))
            oof = cv.oof_proba(X)
            selected = cv.best_model if select else None
        else:
            selected = None
    Xf, yf = (X, y_given) if train_rows is None else (X[train_rows], y_given[train_rows])
    if train_rows is not None:  # the basis is of all rows: the final fits borrow theirs
        basis = basis.of_rows(train_rows)
    fits = self_distill(Xf, yf, lam=lam_value, rounds=rounds, pll=pll, pll_loss=pll_loss,
                        q=q, n_classes=K, tol=tol, max_iter=max_iter, basis=basis,
                        progress=progress, teacher_W=teacher_W)
    if train_rows is not None:  # fitted without the flagged rows
        fits = [NamedFit("pruned-" + f.name, f.fit) for f in fits]
    fits = adjust_prior(fits, Xf, class_prior)
    if lam_selection is not None and lam_selection["label_averaging"]:
        selected, confidence, balance, kept = averaging_round(fits, Xf,
                                                              given=(X, y_given))
        lam_selection["best_model"] = selected
        lam_selection["confidence"] = confidence
        lam_selection["class_balance"] = balance
        lam_selection["kept_given"] = kept
    if selected is None:
        selected = fits[-1].name
    models = evaluate_models(fits, ds, y_given, clean, intercept_scaling=scaling)
    if cv_scores is not None:
        for rec in models:
            if rec["name"] in cv_scores:
                rec["cv_acc_given"] = float(cv_scores[rec["name"]])
    if lam_selection is not None and "scores_by_model" in lam_selection:
        for rec in models:
            if rec["name"] in lam_selection["scores_by_model"]:
                rec["cv_score"] = float(lam_selection["scores_by_model"][rec["name"]])
    found = est = None
    if issues and oof is not None:
        found = find_label_issues(oof, y_given, source="out-of-fold", others=flag_others)
        est = estimate_noise(oof if noise_P is None else noise_P, y_given)
    return RunResult(
        dataset=ds.name, n_train=ds.n_train, n_test=ds.n_test, n_classes=K, noise=spec,
        noise_seed=int(noise_seed), noise_kind=kind, rate_requested=float(rate_req),
        realized_rate=realized_rate(y_given, clean), T_used=T_used, y_given=y_given,
        lam=lam_value, lam_selection=lam_selection, fits=fits, models=models,
        selected=selected, pll_loss=pll_loss, q=q, seconds=time.perf_counter() - t0,
        oof_proba=oof, flag_others=flag_others, issues=found, noise_estimate=est,
        intercept_scaling=scaling, class_prior=class_prior)


def run_experiment(
    ds: Dataset,
    *,
    noise: NoiseSpec | str = "none",
    rate: float = 0.0,
    noise_seed: int = 0,
    T: np.ndarray | None = None,
    lam: float | str = 1e-5,
    rounds: int = 4,
    pll: bool = True,
    pll_loss: str = "gce",
    q: float = 0.7,
    select: bool = True,
    lam_grid: tuple[float, ...] | None = None,
    n_splits: int = 3,
    tol: float = 1e-6,
    basis: SpectralBasis | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Run one grid point and return the spec.md ``fit --json`` record.

    :func:`run_pipeline` with the sweep's spelling of the noise (``noise`` kind plus
    ``rate``, or a matrix ``T``), returning :meth:`RunResult.to_record`.
    """
    return run_pipeline(
        ds, noise=_spec(noise, rate, T), noise_seed=noise_seed, lam=lam, rounds=rounds,
        pll=pll, pll_loss=pll_loss, q=q, select=select, lam_grid=lam_grid,
        n_splits=n_splits, tol=tol, basis=basis, progress=progress,
    ).to_record()
