""""Theory vs measurement" on real embeddings: the linearised prediction next to the fits.

For features ``X`` (Phi), given labels and ``lam``, theory-derivation.md §2 predicts every round's
outputs as ``U + A^t (Y - U)``; this module scores that prediction against the clean
labels and puts it next to the accuracies the product measured, as a report section in
the format of :func:`selfdistill.experiments.report.render_report`:
``{"heading", "html", "table": (rows, columns, headers), "figure": (png_path, caption)}``.

Measured accuracies are passed in (teacher first, then sd-1, sd-2, ...), so the section can
be added to any report that already fitted the models.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import SelfDistillError
from ..datasets import Dataset
from .linear import GramSpectrum, linearised_sd_accuracy
from .plots import plot_theory_vs_measurement

__all__ = ["theory_section", "theory_section_runs", "theory_table_rows", "theory_curve"]

TABLE_COLUMNS = ["run", "model", "theory_round", "measured", "predicted", "difference"]
TABLE_HEADERS = ["run", "model", "derivation round t", "measured train acc %",
                 "predicted train acc % (linearised)", "predicted - measured (points)"]


def _measured_list(measured: Sequence[float | None] | Mapping[str, float | None] | None,
                   n: int) -> list[float | None]:
    """Teacher-first list of length ``n`` from a sequence or a {model name: acc} mapping."""
    if measured is None:
        return [None] * n
    if isinstance(measured, Mapping):
        names = ["teacher"] + [f"sd-{s}" for s in range(1, n)]
        return [None if measured.get(k) is None else float(measured[k]) for k in names]
    vals = [None if v is None else float(v) for v in measured]
    return (vals + [None] * n)[:n]


def theory_curve(ds: Dataset | np.ndarray, y_given: np.ndarray, y_clean: np.ndarray,
                 lam: float, rounds: int, measured: Any = None, *, label: str = "",
                 measured_pll: float | None = None,
                 spectrum: GramSpectrum | None = None) -> dict[str, Any]:
    """One run's predicted and measured accuracies (teacher, sd-1 .. sd-rounds, PLL).

    Returns
    -------
    dict
        ``label``, ``predicted`` (list, rounds + 1), ``measured`` (list, None where not
        given), ``pll_predicted``, ``pll_measured``.
    """
    X = ds.X_train if isinstance(ds, Dataset) else ds
    K = ds.n_classes if isinstance(ds, Dataset) else None
    pr = linearised_sd_accuracy(X, y_given, y_clean, lam, rounds, n_classes=K, pll=True,
                                spectrum=spectrum)
    pred = [float(v) for v in pr["train_acc"]]
    return {"label": label, "predicted": pred,
            "measured": _measured_list(measured, len(pred)),
            "pll_predicted": float(pr["pll_train_acc"]),
            "pll_measured": None if measured_pll is None else float(measured_pll)}


def theory_table_rows(curves: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows (columns :data:`TABLE_COLUMNS`) of :func:`theory_curve` results, in %.

    Examples
    --------
    >>> rows = theory_table_rows([{"label": "sym 0.5", "predicted": [0.8, 0.85],
    ...                            "measured": [0.86, 0.88]}])
    >>> [(r["model"], r["theory_round"], r["measured"], r["predicted"]) for r in rows]
    [('teacher', 1, '86.0', '80.0'), ('sd-1', 2, '88.0', '85.0')]
    """
    rows = []
    for cur in curves:
        for s, (p, m) in enumerate(zip(cur["predicted"], cur["measured"])):
            rows.append({"run": cur["label"], "model": "teacher" if s == 0 else f"sd-{s}",
                         "theory_round": s + 1,
                         "measured": None if m is None else f"{100 * m:.1f}",
                         "predicted": f"{100 * p:.1f}",
                         "difference": None if m is None else f"{100 * (p - m):+.1f}"})
        if cur.get("pll_predicted") is not None:
            m = cur.get("pll_measured")
            p = cur["pll_predicted"]
            rows.append({"run": cur["label"], "model": "pll", "theory_round": 2,
                         "measured": None if m is None else f"{100 * m:.1f}",
                         "predicted": f"{100 * p:.1f}",
                         "difference": None if m is None else f"{100 * (p - m):+.1f}"})
    return rows


def _direction(cur: dict[str, Any]) -> str | None:
    """Does the prediction get the sign of the SD effect (best SD round vs teacher) right?"""
    m, p = cur["measured"], cur["predicted"]
    if len(m) < 2 or m[0] is None or any(v is None for v in m[1:]):
        return None
    dm = max(m[1:]) - m[0]
    dp = max(p[1:]) - p[0]
    same = (dm > 0.002) == (dp > 0.002)
    return (f"{html.escape(cur['label'])}: measured best SD round - teacher "
            f"{100 * dm:+.1f} points, predicted {100 * dp:+.1f} ({'same' if same else 'opposite'}"
            " direction)")


def theory_section_runs(ds: Dataset, runs: Sequence[dict[str, Any]], y_clean: np.ndarray,
                        lam: float, rounds: int, out_dir: str | Path, *,
                        heading: str = "Theory vs measurement",
                        filename: str = "theory_vs_measurement.png") -> dict[str, Any]:
    """Section for several labellings of one dataset (e.g. the demo's noise rates).

    Parameters
    ----------
    ds : Dataset
        Training features ``ds.X_train`` (Phi) and ``ds.n_classes``.
    runs : sequence of dict
        Each with ``label`` (e.g. ``"sym 0.5"``), ``y_given`` (N,), ``measured`` (teacher
        first, then sd-1 ..; or a {model name: accuracy} mapping) and optionally
        ``measured_pll``.
    y_clean : ndarray of shape (N,)
        True training labels.
    lam : float
    rounds : int
        SD rounds after the teacher.
    out_dir : str or Path
        Folder for the PNG.

    Returns
    -------
    dict
        A :func:`~selfdistill.experiments.report.render_report` section.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise SelfDistillError(f"cannot write the theory figure: folder {out_dir} does not "
                               "exist")
    spec = GramSpectrum.from_features(ds.X_train)
    curves = [theory_curve(ds, r["y_given"], y_clean, lam, rounds, r.get("measured"),
                           label=r.get("label", ""), measured_pll=r.get("measured_pll"),
                           spectrum=spec) for r in runs]
    png = plot_theory_vs_measurement(
        curves, out_dir / filename,
        title=f"{ds.name}: train accuracy, measured (exact fits) vs linearised prediction, "
              f"lam={lam:g}")
    notes = [s for s in (_direction(c) for c in curves) if s]
    text = (
        "<p>The linearised closed form of docs/theory-derivation.md §2, "
        "<code>P_t - U = A^t (Y - U)</code> "
        "with <code>A = gamma G (I + gamma G)^-1</code>, <code>gamma = 1/(K N lam)</code>, "
        f"computed from the thin SVD of the N={ds.n_train} x d={ds.X_train.shape[1]} training "
        "features (no fitting), predicts each round's training accuracy against the true "
        "labels. Round numbering: derivation round t = 1 is the teacher, round t is the model "
        "sd-(t-1). The PLL prediction is one linearised student on the linearised teacher's "
        "top-2 classes (two-hot); the measured PLL uses the product's PLL loss.</p>"
        "<p class='note'>The linearisation assumes small logits; the exact teacher memorises "
        "more of the given labels than the linearised one, so expect levels to differ and "
        "read the figure for the direction and timing of the SD effect. "
        + ("; ".join(notes) + "." if notes else "") + "</p>")
    return {"heading": heading, "html": text,
            "table": (theory_table_rows(curves), TABLE_COLUMNS, TABLE_HEADERS),
            "figure": (png, "Train accuracy per model: measured (solid) vs linearised "
                            "prediction (dashed); stars: measured PLL, diamonds: predicted "
                            "PLL.")}


def theory_section(ds: Dataset, y_given: np.ndarray, y_clean: np.ndarray, lam: float,
                   rounds: int, measured_train_acc_by_round: Any, out_dir: str | Path, *,
                   label: str = "", measured_pll: float | None = None) -> dict[str, Any]:
    """The "theory vs measurement" report section for one labelling of a dataset.

    Parameters
    ----------
    ds : Dataset
        Training features ``ds.X_train`` (Phi) and ``ds.n_classes``.
    y_given : ndarray of shape (N,)
        The labels the models were fitted on.
    y_clean : ndarray of shape (N,)
        True training labels (accuracies are measured against them).
    lam : float
    rounds : int
        SD rounds after the teacher.
    measured_train_acc_by_round : sequence or mapping
        Teacher first then sd-1 .. sd-rounds (or a {model name: accuracy} mapping),
        accuracies against ``y_clean`` in [0, 1].
    out_dir : str or Path
        Folder for the PNG.
    label : str, optional
        Legend label (default: the dataset's name).
    measured_pll : float, optional

    Returns
    -------
    dict
        ``{"heading", "html", "table": (rows, columns, headers), "figure": (png, caption)}``.

    Notes
    -----
    Sections built from a sweep's results rows (reproducing each run's noisy labels) are
    the sweep report's business: :func:`selfdistill.experiments.sweep_report.sweep_theory_section`.

    Examples
    --------
    >>> import tempfile
    >>> from selfdistill.datasets import load_digits_dataset
    >>> from selfdistill import make_noisy_labels
    >>> ds = load_digits_dataset()
    >>> y_noisy, _ = make_noisy_labels(ds.y_train, "sym", 0.5, 10, seed=0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     sec = theory_section(ds, y_noisy, ds.y_train, 1e-3, 2, [0.9, 0.92, 0.93], tmp)
    ...     sorted(sec), len(sec["table"][0])
    (['figure', 'heading', 'html', 'table'], 4)
    """
    if not isinstance(ds, Dataset):
        raise SelfDistillError(
            "theory_section needs a Dataset; for a sweep's results rows use "
            "selfdistill.experiments.sweep_report.sweep_theory_section")
    run = {"label": label or ds.name, "y_given": np.asarray(y_given),
           "measured": measured_train_acc_by_round, "measured_pll": measured_pll}
    return theory_section_runs(ds, [run], np.asarray(y_clean), float(lam), int(rounds),
                               out_dir)
