"""Label issues, noise estimate and noisy-label model choice: selfdistill vs cleanlab 2.x.

On the bundled BANKING77 embeddings (N = 10003, K = 77, d = 384), for each noise
(kind, rate, seed), in the same process, one after the other (never two timed at once):

* **ours**: exactly what ``selfdistill fit data.npz --lam auto --issues out.csv`` runs
  with its defaults, :func:`selfdistill.experiments.runner.run_pipeline` with
  ``lam="auto"``, ``issues=True``, ``fit_intercept=True`` and ``class_prior="uniform"``
  (4-fold screen, prune, refine, choose; final fits, whose intercept is then shifted to a
  uniform class prior, :mod:`selfdistill.prior`; flags and noise estimate from
  out-of-fold probabilities). Seconds = the whole call. ``given_prior_acc`` is the
  selected model's test accuracy without the shift (``--class-prior given``).
* **cleanlab**: 5-fold out-of-fold ``LogisticRegression(max_iter=1000)`` probabilities
  and ``cleanlab.filter.find_label_issues`` (defaults); seconds = both (the *find* time the
  issue compares with). ``CleanLearning(LogisticRegression)`` test accuracy (given those
  out-of-fold probabilities, so they are counted once).
* **oracle**: our best test accuracy over the full teacher -> SD 1..4 -> PLL pipeline at
  every lam of the grid on the given labels, the same on the rows we flagged removed,
  and the final models: the best choice made with the clean test labels.

Noise kinds are those of ``--noise`` (:class:`selfdistill.noise.NoiseSpec`), plus
``text:RATE`` (benchmark only): a weak *text* annotator, TF-IDF (word 1-2-grams) +
logistic regression trained on a stratified 10 % of ../shared/datasets/banking77/train.csv
with its true labels; the ``round(rate N)`` rows on which it most believes a wrong class
are given that class (the construction of the held-out check in issue 12).

Precision, recall and F1 are of the flagged set against the truly corrupted rows; clean
labels are used for scoring only.

Run (appends to the JSON after each row; ``--resume`` skips finished rows)::

    .venv/bin/python benchmarks/label_issues.py --out docs/label_issues.md \\
        --json benchmarks/label_issues.json

cleanlab and the TF-IDF annotator are benchmark dependencies only (the ``[dev]`` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from selfdistill.datasets import load_banking77
from selfdistill.distill import self_distill
from selfdistill.experiments.runner import evaluate_models, run_pipeline
from selfdistill.intercept import add_intercept
from selfdistill.model_selection import DEFAULT_LAM_GRID
from selfdistill.noise import NoiseSpec
from selfdistill.prior import adjust_prior

ROWS = ["sym:0.2", "sym:0.5", "sym:0.8", "asym:0.2", "asym:0.4", "paper-asym:0.5",
        "cc:0.2", "cc:0.5", "cc:0.8", "idn:0.2", "idn:0.4", "text:0.3", "text:0.5"]
ORDER = ["sym", "asym", "paper-asym", "cc", "idn", "text"]
TEXT_CSV = Path(__file__).resolve().parents[2] / "shared/datasets/banking77/train.csv"


def prf(mask: np.ndarray, corrupted: np.ndarray) -> dict:
    """Precision, recall, F1 of a flagged mask against the corrupted mask."""
    tp = int(np.sum(mask & corrupted))
    p = tp / max(int(mask.sum()), 1)
    r = tp / max(int(corrupted.sum()), 1)
    return {"n_flagged": int(mask.sum()), "precision": p, "recall": r,
            "f1": 0.0 if p + r == 0 else 2 * p * r / (p + r)}


def weak_annotator_labels(Z, y: np.ndarray, n_classes: int, rate: float,
                          rng: np.random.Generator) -> np.ndarray:
    """Labels of a weak annotator on features ``Z`` (its own view of the rows): a
    ``LogisticRegression`` fitted on 10 % of each class's rows predicts every row, and
    the ``rate * N`` rows on which it most believes a wrong class are given that class
    (ties in a random order from ``rng``)."""
    from sklearn.linear_model import LogisticRegression

    N = len(y)
    sub = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == k),
                                             max(1, round(0.1 * np.sum(y == k))),
                                             replace=False) for k in range(n_classes)]))
    lr = LogisticRegression(max_iter=2000).fit(Z[sub], y[sub])
    P = np.zeros((N, n_classes))
    P[:, lr.classes_] = lr.predict_proba(Z)
    P[np.arange(N), y] = -1.0
    wrong = P.argmax(axis=1)
    belief = P[np.arange(N), wrong]
    flip = np.lexsort((rng.permutation(N), -belief))[:round(rate * N)]
    out = y.copy()
    out[flip] = wrong[flip]
    return out


def text_annotator_labels(ds, rate: float, seed: int) -> np.ndarray:
    """``text:RATE``: the weak TF-IDF annotator's most confident wrong labels."""
    import csv

    from sklearn.feature_extraction.text import TfidfVectorizer

    with open(TEXT_CSV, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    names = list(ds.classes)
    texts = [r["text"] for r in rows]
    y = np.array([names.index(r["category"]) for r in rows])
    if not np.array_equal(y, ds.y_train):
        raise SystemExit("train.csv rows do not line up with the bundled embeddings")
    Z = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True).fit_transform(texts)
    return weak_annotator_labels(Z, y, len(names), rate, np.random.default_rng(seed))


def noisy_labels(ds, spec: str, seed: int) -> np.ndarray:
    kind, rate = spec.split(":")
    if kind == "text":
        return text_annotator_labels(ds, float(rate), seed)
    return NoiseSpec.parse(spec).draw(ds.y_train, ds.n_classes, features=ds.X_train,
                                      seed=seed)[0]


def run_ours(ds, y_noisy: np.ndarray, corrupted: np.ndarray, seed: int) -> tuple[dict, object]:
    from selfdistill.datasets import Dataset

    given = Dataset(name=ds.name, X_train=ds.X_train, y_train=y_noisy, X_test=ds.X_test,
                    y_test=ds.y_test, classes=ds.classes, y_train_clean=ds.y_train)
    t0 = time.perf_counter()
    res = run_pipeline(given, lam="auto", issues=True, noise_seed=seed, fit_intercept=True,
                       class_prior="uniform")
    secs = time.perf_counter() - t0
    sel = res.selected_fit
    unshifted = evaluate_models([replace(sel, bias=None)], given, y_noisy, ds.y_train,
                                intercept_scaling=res.intercept_scaling)[0]["test_acc"]
    mask = np.zeros(len(y_noisy), dtype=bool)
    mask[res.issues.indices] = True
    by = {m["name"]: m["test_acc"] for m in res.models}
    return {"seconds": secs, "lam": res.lam, "model": res.selected,
            "test_acc": by[res.selected], "final_models": by,
            "given_prior_acc": unshifted,
            "issues": prf(mask, corrupted),
            "noise_estimate_rate": res.noise_estimate.rate,
            "lam_selection": res.lam_selection}, res


def run_oracle(ds, y_noisy: np.ndarray, flagged: np.ndarray, final: dict,
               scaling: float, lams=DEFAULT_LAM_GRID) -> dict:
    """Best test accuracy over full and pruned pipelines at every lam of ``lams`` (clean
    test labels), fitted as ours are (intercept of column value ``scaling``, uniform class
    prior)."""
    X, K = add_intercept(ds.X_train, scaling), ds.n_classes
    Xt = add_intercept(ds.X_test, scaling)
    keep = ~flagged
    out = {}
    for lam in lams:
        for tag, rows in (("full", slice(None)), ("pruned", keep)):
            fits = adjust_prior(self_distill(X[rows], y_noisy[rows], lam=lam, rounds=4,
                                             pll=True, n_classes=K), X[rows], "uniform")
            out[f"{tag} {lam:g}"] = {
                f.name: float(np.mean(np.argmax(Xt @ f.W.T + f.bias, 1) == ds.y_test))
                for f in fits}
    best = max(((v, f"{k} {m}") for k, d in out.items() for m, v in d.items()),
               default=(0.0, ""))
    fin = max(((v, f"final {m}") for m, v in final.items()), default=(0.0, ""))
    acc, where = max(best, fin)
    return {"test_acc": acc, "where": where, "by_pipeline": out}


def run_cleanlab(ds, y_noisy: np.ndarray, corrupted: np.ndarray, seed: int) -> dict:
    from cleanlab.classification import CleanLearning
    from cleanlab.filter import find_label_issues as cl_find
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    X = ds.X_train
    t0 = time.perf_counter()
    pred_probs = cross_val_predict(LogisticRegression(max_iter=1000), X, y_noisy,
                                   method="predict_proba",
                                   cv=StratifiedKFold(5, shuffle=True, random_state=seed))
    mask = cl_find(labels=y_noisy, pred_probs=pred_probs)
    t_find = time.perf_counter() - t0
    t1 = time.perf_counter()
    cl = CleanLearning(LogisticRegression(max_iter=1000), seed=seed, verbose=False)
    cl.fit(X, y_noisy, pred_probs=pred_probs)
    return {"issues": prf(mask, corrupted), "issues_seconds": t_find,
            "cl_test_acc": float(np.mean(cl.predict(ds.X_test) == ds.y_test)),
            "cl_seconds": t_find + time.perf_counter() - t1}


def pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


#: How the seconds were taken (edit after an idle re-timing; ``--render`` rewrites the page)
TIMING_NOTE = ("Each row's timings were taken in one process, ours then cleanlab's, with "
               "nothing else running (2026-11-25, fourteenth session: all 26 rows run "
               "with fit's defaults: intercept of column value 0.3, the uniform class "
               "prior, label averaging for learnable noise, docs/selection.md step 2, the "
               "candidates scored and flagging as the shifted final model predicts, "
               "step 3, the lam walks' races, step 1, and the noise estimate of the "
               "stiffer teacher when its flags join, section 3, and label averaging's round "
               "or PLL student, step 2, four folds, section 2); cleanlab's find time itself "
               "varies by up to 30-40% between runs of the same row, ours by about 5%, "
               "so read the seconds as same-row "
               "ratios. The final fits of --lam auto stop at a relative gradient of "
               "1e-3.")

NOTES = """
Columns: *selected* is what `fit --lam auto` chose from the noisy labels alone (model
`pruned-…` = fitted without the flagged rows). *est / real* is the estimated
noise rate (`noise_estimate.rate`, from the given labels only) against the realised one.
P / R / F1 (%) are for the flagged rows against the truly corrupted ones: *ours* from the
chosen candidate's 4-fold out-of-fold probabilities, each fold's model shifted to the
uniform class prior as the final model is (the confident joint's count of rows,
highest probability of a wrong label under the estimated noise first), united with those
of the screen's teacher at the lam shown as *+flags lam* when the chosen model is more
flexible and the screen saw flexibility fit the given labels better (docs/selection.md,
"Which models flag"),
*cleanlab* `find_label_issues` with default arguments on 5-fold out-of-fold
`LogisticRegression(max_iter=1000)` probabilities. Test accuracy (%): the selected model,
`CleanLearning(LogisticRegression)`, and *oracle*, our best over the full and the pruned
teacher -> SD 1-4 -> PLL pipelines at lam 1e-6, 1e-5, 1e-4 and the final models, chosen
with the clean test labels. Seconds (wall clock, same process, one after the other):
*ours* = the whole `run_pipeline(lam="auto", issues=True)`; *cleanlab* = out-of-fold
probabilities + `find_label_issues`. *text* rows: labels from a weak TF-IDF annotator
(see the benchmark's docstring).

Reproduce: `.venv/bin/python benchmarks/label_issues.py --out docs/label_issues.md`
(cleanlab comes with the `[dev]` extra).
"""


def row_order(r: dict) -> tuple:
    return ORDER.index(r["kind"]), r["rate"], r["seed"]


def flags_lam(o: dict) -> str:
    """`` (+flags lam L)`` when a second teacher's flags joined the chosen candidate's."""
    lam = (o.get("lam_selection") or {}).get("lam_flag")
    return "" if lam is None else f" (+flags lam {lam:g})"


def prf_cell(d: dict) -> str:
    return f"{pct(d['precision'])} / {pct(d['recall'])} / **{pct(d['f1'])}**"


def table(rows: list[dict], header: str) -> str:
    lines = ["# Label issues and noisy-label model selection vs cleanlab", "",
             header, NOTES,
             "| noise | eta | seed | selected (lam, model) | est / real rate | "
             "ours P / R / F1 | cleanlab P / R / F1 | test acc: ours / CleanLearning / "
             "oracle | ours s | cleanlab find s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=row_order):
        o, c = r["ours"], r["cleanlab"]
        lines.append(
            f"| {r['kind']} | {r['rate']:g} | {r['seed']} | {o['lam']:g}, {o['model']}"
            f"{flags_lam(o)} | "
            f"{o['noise_estimate_rate']:.3f} / {r['realized_rate']:.3f} | "
            f"{prf_cell(o['issues'])} | {prf_cell(c['issues'])} | "
            f"**{pct(o['test_acc'])}** / {pct(c['cl_test_acc'])} / "
            f"{pct(r['oracle']['test_acc'])} | "
            f"{o['seconds']:.1f} | {c['issues_seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def readme_table(rows: list[dict]) -> str:
    """The README's compact table: both seeds per row, ``seed 0 / seed 1``."""
    by = {}
    for r in rows:
        by.setdefault((r["kind"], r["rate"]), {})[r["seed"]] = r

    def pair(d: dict, get, fmt=pct) -> str:
        return " / ".join(fmt(get(d[s])) for s in sorted(d))

    out = ["| noise | F1 ours | F1 cleanlab | acc selected | acc CleanLearning | "
           "acc oracle | est / real rate | seconds ours / cleanlab find |",
           "|---|---|---|---|---|---|---|---|"]
    for (kind, rate), d in sorted(by.items(), key=lambda kv: (ORDER.index(kv[0][0]),
                                                             kv[0][1])):
        out.append(
            f"| {kind} {rate:g} | {pair(d, lambda r: r['ours']['issues']['f1'])} | "
            f"{pair(d, lambda r: r['cleanlab']['issues']['f1'])} | "
            f"{pair(d, lambda r: r['ours']['test_acc'])} | "
            f"{pair(d, lambda r: r['cleanlab']['cl_test_acc'])} | "
            f"{pair(d, lambda r: r['oracle']['test_acc'])} | "
            f"{pair(d, lambda r: r['ours']['noise_estimate_rate'], lambda v: f'{v:.2f}')} "
            f"vs {pair(d, lambda r: r['realized_rate'], lambda v: f'{v:.2f}')} | "
            f"{pair(d, lambda r: r['ours']['seconds'], lambda v: f'{v:.0f}')} vs "
            f"{pair(d, lambda r: r['cleanlab']['issues_seconds'], lambda v: f'{v:.0f}')} |")
    return "\n".join(out) + "\n"


def machine() -> str:
    try:
        model = next(ln.split(":", 1)[1].strip() for ln in
                     subprocess.run(["lscpu"], capture_output=True, text=True).stdout
                     .splitlines() if ln.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--noise", nargs="+", default=ROWS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--out", type=Path, default=Path("docs/label_issues.md"))
    ap.add_argument("--json", type=Path, default=Path("benchmarks/label_issues.json"))
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--no-oracle", action="store_true")
    ap.add_argument("--render", action="store_true",
                    help="rewrite --out from --json (no runs) and exit")
    ap.add_argument("--readme", action="store_true",
                    help="print the README's compact table from --json and exit")
    args = ap.parse_args(argv)
    if args.readme:
        print(readme_table(json.loads(args.json.read_text())), end="")
        return
    if args.render:
        ds = load_banking77()
        args.out.write_text(table(json.loads(args.json.read_text()),
                                  f"BANKING77 (N={ds.n_train}, K={ds.n_classes}, "
                                  f"d={ds.X_train.shape[1]}); {machine()}. {TIMING_NOTE}"))
        return
    warnings.simplefilter("ignore")  # sklearn's lbfgs chatter in cleanlab's baseline
    ds = load_banking77()
    rows = json.loads(args.json.read_text()) if args.resume and args.json.exists() else []
    done = {(r["kind"], r["rate"], r["seed"]) for r in rows}
    header = (f"BANKING77 (N={ds.n_train}, K={ds.n_classes}, d={ds.X_train.shape[1]}); "
              f"{machine()}. {TIMING_NOTE}")

    def save() -> None:
        args.json.write_text(json.dumps(rows, indent=1))
        args.out.write_text(table(rows, header))

    for seed in args.seeds:
        for spec in args.noise:
            kind, rate = spec.split(":")[0], float(spec.split(":")[1])
            if (kind, rate, seed) in done:
                continue
            y_noisy = noisy_labels(ds, spec, seed)
            corrupted = y_noisy != ds.y_train
            row = {"kind": kind, "rate": rate, "seed": seed,
                   "realized_rate": float(corrupted.mean())}
            row["ours"], res = run_ours(ds, y_noisy, corrupted, seed)
            row["cleanlab"] = run_cleanlab(ds, y_noisy, corrupted, seed)
            flagged = np.zeros(len(y_noisy), dtype=bool)
            flagged[res.issues.indices] = True
            row["oracle"] = ({"test_acc": None} if args.no_oracle else
                             run_oracle(ds, y_noisy, flagged, row["ours"]["final_models"],
                                        res.intercept_scaling))
            rows.append(row)
            o, c = row["ours"], row["cleanlab"]
            print(f"{spec} seed {seed}: ours {o['model']} {pct(o['test_acc'])} "
                  f"F1 {pct(o['issues']['f1'])} {o['seconds']:.1f}s | cleanlab F1 "
                  f"{pct(c['issues']['f1'])} CL {pct(c['cl_test_acc'])} "
                  f"{c['issues_seconds']:.1f}s | oracle {pct(row['oracle']['test_acc'])}",
                  flush=True)
            save()
    save()


if __name__ == "__main__":
    main()
