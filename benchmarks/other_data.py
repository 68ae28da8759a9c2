"""``--lam auto --issues`` vs cleanlab on data shaped unlike BANKING77 and the 150-class set.

The same comparison as :mod:`label_issues` (ours = ``run_pipeline(lam="auto",
issues=True)`` with ``fit``'s defaults; cleanlab = 5-fold out-of-fold
``LogisticRegression(max_iter=1000)`` + ``find_label_issues``, and ``CleanLearning``),
run one after the other in one process, on four sets that no rule was read from:

* ``digits``: scikit-learn's ``load_digits`` (8 x 8 pixel intensities / 16, d = 64,
  K = 10), shuffled with seed 0 and split 1,347 training / 450 test rows. Few rows, few
  classes, features that are not sentence embeddings.
* ``synthetic-k10``: :func:`synthetic_intents.synthetic_intents` with K = 10 in pairs,
  d = 512, 5,000 / 2,000 rows (``seed=9, noise=4.0``): ten classes of unit-norm
  embeddings, as a 10-class image set embedded by a vision model.
* ``synthetic-k30``: the same generator with K = 30 in groups of 3, d = 256, 6,000 /
  2,000 rows (``seed=3, noise=3.0``).
* ``synthetic-k100-d768``: the same generator with K = 100 in groups of 4, d = 768 (a
  BERT-base width), 12,000 / 3,000 rows (``seed=5, noise=4.0``).

Noise kinds are those of ``--noise`` plus ``view:RATE``
(:func:`synthetic_intents.view_annotator_labels`). ``--oracle`` adds our best model by
clean test accuracy over the full and pruned pipelines at every lam of the default grid
in the features' lam unit (:func:`selfdistill.model_selection.lam_unit`) and two
widening steps above it (x10, x100). Run::

    .venv/bin/python benchmarks/other_data.py
    .venv/bin/python benchmarks/other_data.py --data digits --noise idn:0.3 --oracle
    .venv/bin/python benchmarks/other_data.py --json benchmarks/other_data.json \\
        --render docs/other_data.md

Measured 2026-11-25 (fifteenth session; 2-vCPU AMD EPYC Zen 5 guest, idle), every row
with ``--oracle`` in ``benchmarks/other_data.json`` (written by ``--json``); read in
docs/selection.md, section 4, "Data shaped otherwise".
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from selfdistill.datasets import Dataset
from selfdistill.model_selection import default_lam_grid, lam_unit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import label_issues as LI  # noqa: E402  (the benchmarks beside this file)
import synthetic_intents as SI  # noqa: E402


def oracle_lams(ds: Dataset) -> tuple[float, ...]:
    """The default grid in the features' lam unit and the widening steps above it
    (``AUTO_WIDEN = 2``)."""
    grid = default_lam_grid(lam_unit(ds.X_train))
    return (*grid, 10 * grid[-1], 100 * grid[-1])


NOISE = ["idn:0.2", "idn:0.3", "idn:0.5", "asym:0.4", "view:0.3"]


def digits() -> Dataset:
    """scikit-learn's digits, pixels / 16, shuffled (seed 0): 1,347 train, 450 test."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    X, y = (X[order] / 16.0).astype(np.float32), y[order]
    n = 1347
    return Dataset(name="digits", X_train=X[:n], y_train=y[:n], X_test=X[n:],
                   y_test=y[n:], classes=[str(k) for k in range(10)])


SETS = {
    "digits": digits,
    "synthetic-k10": lambda: SI.synthetic_intents(seed=9, n_classes=10, group=2,
                                                  n_train=5000, n_test=2000, d=512,
                                                  noise=4.0),
    "synthetic-k30": lambda: SI.synthetic_intents(seed=3, n_classes=30, group=3,
                                                  n_train=6000, n_test=2000, d=256,
                                                  noise=3.0),
    "synthetic-k100-d768": lambda: SI.synthetic_intents(seed=5, n_classes=100, group=4,
                                                        n_train=12_000, n_test=3000,
                                                        d=768, noise=4.0),
}


def render(rows: list[dict]) -> str:
    """The markdown page of ``rows`` (``--json``'s records): one table per set."""
    def pct(v) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    out = ["# Label issues and model choice on data shaped otherwise",
           "",
           "Written by `benchmarks/other_data.py --render` from `benchmarks/other_data.json`",
           f"({LI.machine()}). The comparison of docs/label_issues.md (ours: `fit --lam auto",
           "--issues` defaults; cleanlab: 5-fold out-of-fold LogisticRegression,",
           "`find_label_issues` and `CleanLearning`) on four sets no rule was read from;",
           "what the rows say: docs/selection.md, section 4, \"Data shaped otherwise\".",
           "Reproduce: `.venv/bin/python benchmarks/other_data.py --oracle --json "
           "benchmarks/other_data.json`.", ""]
    for name in dict.fromkeys(r["data"] for r in rows):
        out += [f"## {name}", "",
                "| noise | seed | realised | selected (lam) | test % | CleanLearning % "
                "| oracle % | F1 ours / cleanlab | s ours / find |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in rows if r["data"] == name):
            o, c = r["ours"], r["cleanlab"]
            orc = (r.get("oracle") or {}).get("test_acc")
            out.append(
                f"| {r['noise']} | {r['seed']} | {r['realized_rate']:.2f} | {o['model']} "
                f"({o['lam']:g}) | {pct(o['test_acc'])} | {pct(c['cl_test_acc'])} | "
                f"{pct(orc)} | {pct(o['issues']['f1'])} / {pct(c['issues']['f1'])} | "
                f"{o['seconds']:.1f} / {c['issues_seconds']:.1f} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", choices=list(SETS), default=list(SETS))
    ap.add_argument("--noise", nargs="+", default=NOISE)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--oracle", action="store_true",
                    help="also our best model by clean test accuracy (slow)")
    ap.add_argument("--json", type=Path, help="write every row's numbers here")
    ap.add_argument("--render", type=Path, metavar="PAGE",
                    help="write the markdown page of --json's rows here (no runs) and exit")
    args = ap.parse_args(argv)
    if args.render:
        args.render.write_text(render(json.loads(args.json.read_text())))
        return
    warnings.simplefilter("ignore")  # sklearn's lbfgs chatter in cleanlab's baseline
    rows = []
    for name in args.data:
        ds = SETS[name]()
        for spec in args.noise:
            for seed in args.seeds:
                y = SI.noisy_labels(ds, spec, seed)
                corrupted = y != ds.y_train
                ours, res = LI.run_ours(ds, y, corrupted, seed)
                cl = LI.run_cleanlab(ds, y, corrupted, seed)
                row = {"data": name, "noise": spec, "seed": seed,
                       "realized_rate": float(corrupted.mean()), "ours": ours,
                       "cleanlab": cl}
                oracle = ""
                if args.oracle:
                    flagged = np.zeros(len(y), dtype=bool)
                    flagged[res.issues.indices] = True
                    best = LI.run_oracle(ds, y, flagged, ours["final_models"],
                                         res.intercept_scaling, lams=oracle_lams(ds))
                    row["oracle"] = {"test_acc": best["test_acc"], "where": best["where"]}
                    oracle = f" | oracle {100 * best['test_acc']:.1f} ({best['where']})"
                rows.append(row)
                print(f"{name} {spec} seed {seed}: selected {ours['model']} (lam "
                      f"{ours['lam']:g}) {100 * ours['test_acc']:.1f} vs CleanLearning "
                      f"{100 * cl['cl_test_acc']:.1f} | F1 {100 * ours['issues']['f1']:.1f} "
                      f"vs {100 * cl['issues']['f1']:.1f} | {ours['seconds']:.1f} s vs "
                      f"cleanlab find {cl['issues_seconds']:.1f} s{oracle}", flush=True)
                if args.json:
                    args.json.write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()
