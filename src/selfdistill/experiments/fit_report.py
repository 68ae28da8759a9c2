"""``fit --report DIR``: one HTML page about the user's own data and the fitted models.

Sections: the data and the selected model (and why), accuracy per model (cross-validated
on the given labels, and on the test set when there is one), the estimated noise with a
per-class label-quality table and the most confused pairs, the flagged rows (with their
texts when the input had texts). Figures are PNGs beside ``report.html`` and embedded
in it as data URIs, so the page is self-contained.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from .._plotting import pyplot as _plt
from .._plotting import savefig
from ..distill import chain_of
from ..inputs import TrainingInput
from ..model_selection import AUTO_AVG_CONFIDENCE_SHARE
from .outputs import relabel_rows
from .report import write_report
from .runner import RunResult

__all__ = ["write_fit_report", "plot_class_noise", "plot_model_accuracy", "N_FLAGGED_SHOWN"]

#: flagged rows listed in the report (most likely wrong first)
N_FLAGGED_SHOWN = 50
#: classes shown in the per-class noise figure (noisiest first)
N_CLASSES_PLOTTED = 30


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def plot_class_noise(names: list[str], rates: np.ndarray, path: str | Path) -> Path:
    """Horizontal bars: estimated share of wrong labels per given class, noisiest first."""
    plt = _plt()
    order = np.argsort(-rates, kind="stable")[:N_CLASSES_PLOTTED]
    fig, ax = plt.subplots(figsize=(7.5, 0.8 + 0.26 * len(order)))
    ax.barh(np.arange(len(order)), 100 * rates[order], color="#d95f02")
    ax.set_yticks(np.arange(len(order)))
    ax.set_yticklabels([names[i] for i in order], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("estimated wrong labels among rows given the class (%)")
    shown = "" if len(order) == len(rates) else f" ({len(order)} noisiest of {len(rates)})"
    ax.set_title("Estimated label noise per class" + shown)
    ax.grid(alpha=0.3, axis="x")
    return savefig(fig, path)


def plot_model_accuracy(models: list[dict[str, Any]], selected: str, path: str | Path) -> Path:
    """Grouped bars per model: the cross-validated figure (:func:`_cv_text`) and test
    accuracy."""
    plt = _plt()
    names = [m["name"] for m in models]
    series = {_cv_text(models)[0]: [_cv(m) for m in models],
              "test set": [m.get("test_acc") for m in models]}
    series = {k: v for k, v in series.items() if any(x is not None for x in v)}
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(names) + 2), 3.6))
    width = 0.8 / max(len(series), 1)
    for j, (label, ys) in enumerate(series.items()):
        vals = [np.nan if y is None else 100 * y for y in ys]
        ax.bar(np.arange(len(names)) + j * width, vals, width, label=label)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
    ax.set_xticklabels([n + (" *" if n == selected else "") for n in names])
    finite = [100 * y for ys in series.values() for y in ys if y is not None]
    if finite:
        ax.set_ylim(max(0.0, min(finite) - 5), min(100.0, max(finite) + 2))
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy per model (* = selected)")
    ax.grid(alpha=0.3, axis="y")
    if series:
        ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    return savefig(fig, path)


def _cv(m: dict[str, Any]) -> float | None:
    return m.get("cv_acc_given", m.get("cv_score"))


def _cv_text(models: list[dict[str, Any]]) -> tuple[str, str, str]:
    """What the cv figure of the models is: (legend, column header, note).

    Cross-validation at a fixed lam reports accuracy on the given labels
    (``cv_acc_given``); ``--lam auto`` reports each candidate's selection score
    (``cv_score``: by default the clean accuracy implied by the held-out confusion and
    the estimated noise, which is no accuracy on the given labels).
    """
    if any(m.get("cv_acc_given") is not None for m in models):
        return ("cross-validated (given labels)", "cv accuracy %",
                "cv: cross-validated accuracy on the given labels (out-of-fold)")
    return ("selection score (out-of-fold)", "cv score %",
            "cv score: the out-of-fold score the selection ranked the candidate by (the "
            "rule above; for the corrected score, the clean accuracy implied by the "
            "held-out confusion and the estimated noise, not an accuracy on the given "
            "labels: it ranks the candidates and runs high with an estimated noise "
            "matrix)")


def _prior_note(result: RunResult) -> str:
    """One sentence on the class prior the models predict with (:mod:`selfdistill.prior`)."""
    counts = np.bincount(result.y_given, minlength=result.n_classes)
    spread = f"{counts.min()}-{counts.max()} rows a class in the given labels"
    if result.class_prior == "uniform":
        return (f"<p>Every model's intercept is shifted so that it predicts as if the "
                f"{result.n_classes} classes were balanced (class prior <i>uniform</i>; "
                f"{spread}, which label noise skews; <code>--class-prior given</code> "
                "keeps them).</p>")
    return f"<p>The models predict with the class frequencies they learnt ({spread}).</p>"


def _why(result: RunResult) -> str:
    """One paragraph: which model is recommended and by what rule."""
    sel = result.lam_selection or {}
    name = html.escape(result.selected)
    if sel:
        rule = html.escape(str(sel.get("rule", sel.get("method", ""))))
        n_out = sel.get("n_left_out", sel.get("n_pruned", 0))
        by = ("a stiffer teacher (λ="
              f"{sel['lam_flag']:g}: the noise looks learnable) flagged most surely"
              if sel.get("lam_flag") is not None else "flagged out of fold")
        pruned = (f" It is fitted without the {n_out} rows {by}." if sel.get("pruned")
                  else "")
        if sel.get("label_averaging"):
            share = f"{AUTO_AVG_CONFIDENCE_SHARE:g}"
            how = ("the chain's PLL student, whose predictions spread over the classes "
                   "at least as evenly as its self-distillation round's (the last one "
                   f"keeping {share} of the teacher's confidence) and depart from the "
                   "given labels on more rows"
                   if chain_of(result.selected)[1] else
                   f"a self-distillation round (the last one whose outputs keep {share} "
                   "of the teacher's confidence; the chain's PLL student was less even "
                   "over the classes, kept the given labels as often as the round, or "
                   "was not fitted)")
            rule = ("the given labels looked learnable (a flexible model predicted them "
                    "better than scikit-learn's default regularisation), so the "
                    f"recommended model is {how}, at the λ that fitted them best, "
                    "without the rows the stiffer teacher flags most surely: the rounds "
                    "average the labels of correlated rows, which flags alone cannot "
                    "clean there (docs/selection.md, &quot;Learnable noise&quot;)")
        return (f"<p><b>{name}</b> at λ={result.lam:g}, chosen from the given labels only "
                f"({html.escape(str(sel.get('method', '')))}): {rule}.{pruned}</p>")
    cv = {m["name"]: m.get("cv_acc_given") for m in result.models}
    if any(v is not None for v in cv.values()):
        return (f"<p><b>{name}</b> at λ={result.lam:g}: the highest cross-validated accuracy "
                f"on the given labels ({_pct(cv.get(result.selected))}%).</p>")
    return (f"<p><b>{name}</b> at λ={result.lam:g}: the pipeline's last model (no "
            "cross-validation ran).</p>")


def _selection_path(result: RunResult) -> dict[str, Any] | None:
    path = (result.lam_selection or {}).get("path") or []
    rows = [{"stage": p.get("stage", ""),
             "lam": "" if p.get("lam") is None else f"{p['lam']:g}",
             "model": p.get("model", ""),
             "score %": _pct(p.get("score"))} for p in path if isinstance(p, dict)]
    if not rows:
        return None
    return {"heading": "How λ and the model were chosen",
            "html": "<p class='note'>Every candidate tried, in order. Scores are out-of-fold: "
                    "accuracy on the given labels (screen, clean), the clean accuracy "
                    "implied by the estimated noise (screen-guard, refine, choose, "
                    "unpruned-sd), and for unpruned-sd-race the best SD round's score "
                    "minus the best candidate's on the first folds "
                    "(docs/selection.md).</p>",
            "table": (rows, ["stage", "lam", "model", "score %"], None)}


def write_fit_report(out_dir: str | Path, result: RunResult, training: TrainingInput, *,
                     source: str = "", test: str | None = None) -> Path:
    """Write ``out_dir/report.html`` (and its PNGs) for one ``fit`` run.

    Parameters
    ----------
    out_dir : str or Path
        An existing folder.
    result : RunResult
        The run (with out-of-fold issues and noise estimate for the noise sections).
    training : TrainingInput
        The data it ran on (texts shown beside flagged rows when present).
    source, test : str
        The input files, for the summary.

    Returns
    -------
    Path
        The HTML file.
    """
    out = Path(out_dir)
    ds = training.dataset
    names = [str(c) for c in ds.classes.tolist()]
    features = (f"texts embedded with {training.embedding_model}" if training.embedding_model
                else "given features")
    summary = (
        f"<p>Training rows: {ds.n_train} from <code>{html.escape(source)}</code> "
        f"({html.escape(features)}, d={ds.X_train.shape[1]}), {ds.n_classes} classes"
        + (f"; test rows: {ds.n_test}" + (f" from <code>{html.escape(test)}</code>"
                                          if test else "") if ds.n_test else "; no test set")
        + f". Feature digest (SHA-256): <code>{training.features_sha256[:16]}…</code></p>"
        + _why(result) + _prior_note(result))
    sections: list[dict[str, Any]] = [{"heading": "Selected model", "html": summary}]
    rows = [{"model": m["name"] + (" *" if m["name"] == result.selected else ""),
             "cv": _pct(_cv(m)), "test": _pct(m.get("test_acc")),
             "train": _pct(m.get("train_acc_given")), "iterations": m.get("iterations"),
             "seconds": f"{m.get('seconds', 0.0):.2f}"} for m in result.models]
    legend, header, note = _cv_text(result.models)
    sections.append({
        "heading": "Accuracy per model",
        "html": f"<p class='note'>{html.escape(note)}; test: on the test set's labels; "
                "train: on the given training labels. * = selected.</p>",
        "table": (rows, ["model", "cv", "test", "train", "iterations", "seconds"],
                  ["model", header, "test accuracy %", "train accuracy (given) %",
                   "iterations", "seconds"]),
        "figure": (plot_model_accuracy(result.models, result.selected,
                                       out / "model_accuracy.png"),
                   f"Accuracy per model: {legend}, and on the test set when one was given"),
    })
    path_sec = _selection_path(result)
    if path_sec:
        sections.append(path_sec)
    est = result.noise_estimate
    if est is not None:
        rel = relabel_rows(result, ds, training.texts)
        y = result.y_given
        n_given = np.bincount(y, minlength=ds.n_classes)
        flagged = np.bincount(y[rel.flag == 1], minlength=ds.n_classes)
        per = est.per_class
        class_rows = [{"class": names[k], "rows": int(n_given[k]),
                       "noise": _pct(float(per[k])), "flagged": int(flagged[k])}
                      for k in np.argsort(-per, kind="stable")]
        sections.append({
            "heading": "Estimated noise",
            "html": (f"<p>About <b>{100 * est.rate:.1f}%</b> of the training labels look wrong "
                     f"({est.n_issues} of {ds.n_train} rows), estimated from the given labels "
                     f"and out-of-fold probabilities ({html.escape(est.method)})."
                     + (f" It is {html.escape(result.noise_estimate_caveat)}."
                        if result.noise_estimate_caveat else "") + "</p>"),
            "figure": (plot_class_noise(names, per, out / "class_noise.png"),
                       "Estimated share of wrong labels per given class"),
        })
        sections.append({
            "heading": "Label quality per class",
            "html": ("<p class='note'>Each class's estimated share of wrong labels among the "
                     "rows given that class, and how many of them are flagged; noisiest "
                     "first.</p>"),
            "table": (class_rows, ["class", "rows", "noise", "flagged"],
                      ["class (given)", "rows", "estimated noise %", "flagged rows"]),
        })
        pairs = [{"true": names[j], "given": names[g], "share": f"{100 * s:.2f}",
                  "rows": int(round(s * ds.n_train))} for j, g, s in est.top_confusions(15)]
        sections.append({
            "heading": "Most confused pairs",
            "html": "<p class='note'>Rows whose true class is estimated to be the first but "
                    "are given the second.</p>",
            "table": (pairs, ["true", "given", "share", "rows"],
                      ["true class (estimated)", "given as", "share of rows %",
                       "rows (estimated)"]),
        })
    if result.issues is not None:
        iss = result.issues
        shown = [{"row": int(i), "given": names[g], "suggested": names[s],
                  "score": f"{sc:.3f}",
                  **({"text": training.texts[int(i)]} if training.texts else {})}
                 for i, g, s, sc in iss.to_records()[:N_FLAGGED_SHOWN]]
        cols = ["row", "given", "suggested", "score"] + (["text"] if training.texts else [])
        sections.append({
            "heading": f"Flagged rows ({len(iss)}; top {min(len(iss), N_FLAGGED_SHOWN)})",
            "html": ("<style>p.flagged + table td{text-align:left}</style>"
                     "<p class='note flagged'>Likely label errors, most confident first; score = "
                     f"1 − P[given] ({html.escape(iss.source)} probabilities). "
                     "<code>fit --relabel FILE.csv</code> writes every row.</p>"),
            "table": (shown, cols, None),
        })
    return write_report(out / "report.html", f"selfdistill fit: {ds.name}", sections)
