"""``selfdistill report DIR``: one self-contained report.html of a sweep (or demo) folder.

Sections, per dataset:

* headline table: per noise kind and rate, teacher, best SD round and PLL test accuracy
  (mean +- std over seeds; each method at its best lam of the grid, named in the cell);
* accuracy vs SD round per noise rate (one figure per lam);
* teacher vs best SD vs PLL against the noise rate, per noise kind;
* wrong labels fixed: accuracy on the training rows whose given label is wrong;
* every setting (kind, rate, lam) with every model's mean test accuracy;
* theory vs measurement: theory-derivation.md §2's linearised prediction next to the measured
  train accuracies (:func:`sweep_theory_section`).

Figures are also written as PNG files next to the report. The clean point (noise kind
``none``, rate 0) is drawn as rate 0 of every noise kind.
"""

from __future__ import annotations

import csv
import html
import json
import re
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._errors import SelfDistillError
from .tables import aggregate, round_index

__all__ = ["load_results", "expand_clean", "headline_table", "settings_table",
           "write_sweep_report", "theory_sections", "sweep_theory_section",
           "headline_markdown", "best_lam_rows"]


def _num(text: str) -> Any:
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def load_results(folder: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows (one per model per point) and metadata of a sweep or demo folder.

    Reads ``results.sqlite`` when present, else ``results.csv``.

    Raises
    ------
    SelfDistillError
        No results in the folder, a database of another schema, an empty result set.
    """
    from .store import ResultStore

    folder = Path(folder)
    if not folder.is_dir():
        raise SelfDistillError(f"results folder not found: {folder}")
    db, csv_path = folder / "results.sqlite", folder / "results.csv"
    meta: dict[str, Any] = {"title": "selfdistill sweep", "datasets": {}}
    if db.exists():
        store = ResultStore(db)
        try:
            rows = store.rows()
            meta["title"] = store.get_meta("title") or meta["title"]
            cfg = store.get_meta("config")
            meta["config"] = json.loads(cfg) if cfg else None
        finally:
            store.close()
    elif csv_path.exists():
        try:
            with open(csv_path, newline="", encoding="utf-8") as fh:
                rows = [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(fh)]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise SelfDistillError(f"cannot read {csv_path}: {exc}") from None
        need = {"noise_kind", "rate", "model", "test_acc"}
        if rows and not need <= set(rows[0]):
            raise SelfDistillError(f"{csv_path} lacks column(s) "
                                   f"{', '.join(sorted(need - set(rows[0])))}")
    else:
        raise SelfDistillError(f"{folder} has neither results.sqlite nor results.csv; run "
                               f"selfdistill sweep CONFIG --out {folder} first")
    if not rows:
        raise SelfDistillError(f"no finished grid points in {folder}")
    for r in rows:
        r.setdefault("dataset", "dataset")
        r.setdefault("lam", None)
        r.setdefault("seed", 0)
    return rows, meta


def expand_clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy the clean rows (kind ``none``/``given`` at rate 0) into every noise kind.

    Examples
    --------
    >>> rows = [{"noise_kind": "none", "rate": 0.0}, {"noise_kind": "sym", "rate": 0.5},
    ...         {"noise_kind": "cc", "rate": 0.5}]
    >>> sorted((r["noise_kind"], r["rate"]) for r in expand_clean(rows))
    [('cc', 0.0), ('cc', 0.5), ('sym', 0.0), ('sym', 0.5)]
    """
    clean_kinds = ("none", "given")
    kinds = sorted({r["noise_kind"] for r in rows} - set(clean_kinds))
    if not kinds:
        return list(rows)
    out = []
    for r in rows:
        if r["noise_kind"] in clean_kinds and not r["rate"]:
            out.extend({**r, "noise_kind": k} for k in kinds)
        else:
            out.append(r)
    return out


def _best_lam(rows: list[dict[str, Any]], metric: str = "test_acc") -> dict[tuple, Any]:
    """(kind, rate, model) -> the lam with the highest mean ``metric`` over seeds."""
    agg = aggregate(rows, ["noise_kind", "rate", "model", "lam"], metric)
    best: dict[tuple, tuple[float, Any]] = {}
    for (kind, rate, model, lam), (mean, _, _) in agg.items():
        k = (kind, rate, model)
        if k not in best or mean > best[k][0]:
            best[k] = (mean, lam)
    return {k: v[1] for k, v in best.items()}


def best_lam_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of each (kind, rate, model) at its best lam (by mean test accuracy)."""
    best = _best_lam(rows)
    return [r for r in rows if best.get((r["noise_kind"], r["rate"], r["model"])) == r["lam"]]


def _cell(vals: tuple[float, float, int] | None, note: str = "") -> str | None:
    if vals is None:
        return None
    mean, std, n = vals
    text = f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if n > 1 else "")
    return text + (f" ({note})" if note else "")


def headline_table(rows: list[dict[str, Any]], metric: str = "test_acc") -> list[dict[str, Any]]:
    """Per (kind, rate): teacher, best SD round, PLL (mean ± std % over seeds, best lam).

    ``rows`` are of one dataset, clean rows already expanded (:func:`expand_clean`).
    """
    best = _best_lam(rows, metric)
    agg = aggregate(rows, ["noise_kind", "rate", "model", "lam"], metric)
    out = []
    for kind, rate in sorted({(r["noise_kind"], r["rate"]) for r in rows}):
        def at(model: str, kind: str = kind, rate: float = rate):
            lam = best.get((kind, rate, model))
            return agg.get((kind, rate, model, lam)), lam

        teacher, lam_t = at("teacher")
        sd = [(at(m), m) for m in sorted({r["model"] for r in rows if round_index(r["model"])
                                          >= 1}, key=round_index)]
        sd = [((v, lam), m) for (v, lam), m in sd if v is not None]
        pll, lam_p = at("pll")
        row = {"noise": kind, "rate": f"{rate:g}",
               "teacher": _cell(teacher, _lam_note(lam_t))}
        if sd:
            (v, lam), m = max(sd, key=lambda s: s[0][0][0])
            row["best SD"] = _cell(v, f"{m}, {_lam_note(lam)}".strip(", "))
        else:
            row["best SD"] = None
        row["PLL"] = _cell(pll, _lam_note(lam_p))
        out.append(row)
    return out


def _lam_note(lam: Any) -> str:
    return "" if lam is None else f"λ={lam:g}"


def settings_table(rows: list[dict[str, Any]], metric: str = "test_acc") -> tuple[
        list[dict[str, Any]], list[str]]:
    """Every (kind, rate, lam): each model's mean ``metric`` (%) over seeds."""
    agg = aggregate(rows, ["noise_kind", "rate", "lam", "model"], metric)
    models = sorted({k[3] for k in agg}, key=lambda m: (round_index(m) < 0, round_index(m)))
    out = []
    for kind, rate, lam in sorted({k[:3] for k in agg},
                                  key=lambda k: (k[0], k[1], -1 if k[2] is None else k[2])):
        row: dict[str, Any] = {"noise": kind, "rate": f"{rate:g}",
                               "lam": "-" if lam is None else f"{lam:g}"}
        n = 0
        for m in models:
            v = agg.get((kind, rate, lam, m))
            row[m] = None if v is None else f"{100 * v[0]:.1f}"
            n = max(n, 0 if v is None else v[2])
        row["seeds"] = n
        out.append(row)
    return out, ["noise", "rate", "lam", *models, "seeds"]


def sweep_theory_section(rows: list[dict[str, Any]], *, datasets: Mapping[str, Any],
                         out_dir: str | Path, max_runs: int = 4
                         ) -> dict[str, Any] | list[dict[str, Any]] | None:
    """theory-derivation.md §2's linearised prediction next to a sweep's measured train accuracies.

    For each dataset, up to ``max_runs`` settings (noise kind, rate, lam; the smallest
    seed) get their training labels rebuilt by :func:`~selfdistill.experiments.runner.
    given_labels` (the draw the runner made) and are handed to
    :func:`selfdistill.theory.report.theory_section_runs`, one section per lam.

    Parameters
    ----------
    rows : list of dict
        results.csv rows (one per model).
    datasets : mapping
        Dataset name in the rows -> what :func:`~selfdistill.datasets.load_dataset` accepts.
    out_dir : str or Path
        Folder for the PNGs.
    max_runs : int, default=4

    Returns
    -------
    dict, list of dict or None
        One section, several, or None when no row can be reproduced (custom noise
        matrices, unknown datasets).
    """
    from ..datasets import load_dataset
    from ..theory.report import theory_section_runs
    from .runner import given_labels

    out_dir = Path(out_dir)
    groups: dict[tuple, dict[str, float | None]] = {}
    for r in rows:
        kind = r.get("noise_kind")
        if kind in (None, "custom") or r.get("lam") in (None, ""):
            continue
        key = (r["dataset"], kind, float(r.get("rate") or 0.0), int(r.get("seed") or 0),
               float(r["lam"]))
        groups.setdefault(key, {})[str(r["model"])] = r.get("train_acc_true")
    if not groups:
        return None
    sections = []
    for name in dict.fromkeys(k[0] for k in groups):
        spec_name = datasets.get(name, name)
        try:
            ds = load_dataset(spec_name)
        except (SelfDistillError, OSError):
            continue
        clean = ds.y_train_clean if ds.y_train_clean is not None else ds.y_train
        keys = sorted(k for k in groups if k[0] == name)
        min_seed = min(k[3] for k in keys)
        keys = _spread([k for k in keys if k[3] == min_seed], max_runs)
        by_lam: dict[float, list[dict[str, Any]]] = {}
        for (_, kind, rate, seed, lam) in keys:
            models = groups[(name, kind, rate, seed, lam)]
            n_sd = max([int(m[3:]) for m in models if m.startswith("sd-")] or [0])
            y_given, _ = given_labels(ds, kind, rate, seed)
            by_lam.setdefault(lam, []).append({
                "label": f"{kind} {rate:g} (seed {seed})", "y_given": y_given,
                "measured": dict(models), "rounds": n_sd,
                "measured_pll": models.get("pll")})
        for lam, runs in by_lam.items():
            rounds = max(r["rounds"] for r in runs)
            tag = "".join(ch if ch.isalnum() else "_" for ch in f"{name}_lam{lam:g}")
            sections.append(theory_section_runs(
                ds, runs, clean, lam, rounds, out_dir,
                heading=f"{name}: theory vs measurement (lam={lam:g})",
                filename=f"theory_{tag}.png"))
    if not sections:
        return None
    return sections[0] if len(sections) == 1 else sections


def _spread(keys: list[tuple], n: int) -> list[tuple]:
    """Up to ``n`` settings, every noise kind represented (sym first, then by name), the
    highest rate of each kind first: a plain cut of the sorted list dropped sym, which
    sorts after asym and cc.

    Examples
    --------
    >>> keys = [("d", k, r, 0, 1e-5) for k in ("asym", "cc", "sym") for r in (0.2, 0.5)]
    >>> [(k[1], k[2]) for k in _spread(keys, 4)]
    [('sym', 0.5), ('asym', 0.5), ('cc', 0.5), ('sym', 0.2)]
    """
    by_kind: dict[str, list[tuple]] = {}
    for k in sorted(keys, key=lambda k: (k[2], k[4])):
        by_kind.setdefault(k[1], []).append(k)
    order = sorted(by_kind, key=lambda kind: (kind != "sym", kind))
    out: list[tuple] = []
    while len(out) < n and any(by_kind.values()):
        for kind in order:
            if by_kind[kind] and len(out) < n:
                out.append(by_kind[kind].pop())
    return out


def theory_sections(rows: list[dict[str, Any]], meta: dict[str, Any],
                    out_dir: Path) -> list[dict[str, Any]]:
    """The report's theory-vs-measurement sections (:func:`sweep_theory_section`).

    ``datasets`` maps each dataset spec of the config (and the folder's recorded
    datasets) to what :func:`~selfdistill.datasets.load_dataset` accepts.
    """
    datasets = {}
    cfg = meta.get("config") or {}
    for ds in (cfg.get("grid") or {}).get("datasets", []):
        datasets[ds] = ds
    datasets.update(meta.get("datasets") or {})
    got = sweep_theory_section(rows, datasets=datasets, out_dir=out_dir)
    if got is None:
        return []
    return [got] if isinstance(got, dict) else list(got)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


def report_name(folder: str | Path) -> str:
    """``report.html``, or ``results-report.html`` in a folder of ``selfdistill demo``.

    The demo writes its own ``report.html`` (with the theory section of its run); a
    report made later from its ``results.csv`` goes beside it instead of replacing it.
    """
    folder = Path(folder)
    if (folder / "results.sqlite").exists():
        return "report.html"
    try:
        with open(folder / "results.json", encoding="utf-8") as fh:
            demo = "experiments" in json.load(fh)
    except (OSError, ValueError, TypeError):
        demo = False
    return "results-report.html" if demo else "report.html"


def write_sweep_report(folder: str | Path, *, title: str | None = None) -> dict[str, Path]:
    """Write ``folder/report.html`` and the PNG figures from the folder's results.

    In a demo folder the report is ``results-report.html`` (:func:`report_name`), so
    the demo's own ``report.html`` stays.

    Returns
    -------
    dict
        ``"html"`` -> the report, ``"headline"`` -> ``headline.md`` (the headline table
        as Markdown); figure names -> PNG paths.
    """
    from .plots import plot_accuracy_vs_rounds, plot_methods_vs_rate, plot_noisy_subset
    from .report import write_report

    folder = Path(folder)
    rows, meta = load_results(folder)
    paths: dict[str, Path] = {}
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    n_points = len({tuple(r.get(k) for k in ("dataset", "noise_kind", "rate", "seed", "lam",
                                             "rounds", "pll")) for r in rows})
    kinds = sorted({r["noise_kind"] for r in rows})
    intro = (f"<p>{n_points} grid points, {len(rows)} fitted models; datasets "
             f"{html.escape(', '.join(map(str, datasets)))}; noise kinds "
             f"{html.escape(', '.join(kinds))}. Accuracies are on the clean test set, in %, "
             "mean ± standard deviation over noise seeds. The clean point (rate 0) is shared "
             "by all noise kinds. In the headline table each method is shown at its best "
             "λ of the grid (chosen on test accuracy: an oracle choice, for comparing the "
             "methods at their best); the table of all settings shows every λ.</p>")
    sections: list[dict[str, Any]] = [{"heading": "Summary", "html": intro}]
    for ds in datasets:
        sub = expand_clean([r for r in rows if r["dataset"] == ds])
        tag = _slug(Path(ds).stem if str(ds).endswith(".npz") else ds)
        prefix = f"{ds}: " if len(datasets) > 1 else ""
        n_tr = sub[0].get("n_train")
        info = "" if n_tr is None else (f"<p class='note'>N={n_tr} training and "
                                        f"{sub[0].get('n_test')} test rows, "
                                        f"K={sub[0].get('n_classes')} classes.</p>")
        sections.append({"heading": f"{prefix}Teacher vs best SD vs PLL (test accuracy %)",
                         "html": info, "table": (headline_table(sub), None, None)})
        best_rows = best_lam_rows(sub)
        p = paths[f"{tag}_methods"] = folder / f"{tag}_methods_vs_rate.png"
        plot_methods_vs_rate(best_rows, p)
        sections.append({"heading": f"{prefix}Teacher vs best SD vs PLL against the noise rate",
                         "figure": (p, "Test accuracy against the noise rate, per noise kind; "
                                    "each method and rate at its best λ.")})
        lams = sorted({r["lam"] for r in sub if r["lam"] is not None}) or [None]
        for lam in lams:
            at = [r for r in sub if r["lam"] == lam]
            lt = "" if lam is None else f"λ={lam:g}"
            ltag = "" if lam is None else f"_lam{lam:g}"
            p = paths[f"{tag}_rounds{ltag}"] = folder / f"{tag}_rounds{ltag}.png"
            plot_accuracy_vs_rounds(at, p)
            sections.append({"heading": f"{prefix}Accuracy vs SD round {lt}".strip(),
                             "figure": (p, "Test accuracy of the teacher (round 0) and SD "
                                        "rounds per noise rate, mean over seeds; dashed: the "
                                        f"PLL student. {lt}".strip())})
            if any(r.get("noisy_subset_acc") is not None for r in at):
                p = paths[f"{tag}_noisy{ltag}"] = folder / f"{tag}_noisy_subset{ltag}.png"
                plot_noisy_subset(at, p)
                sections.append({
                    "heading": f"{prefix}Wrong labels fixed {lt}".strip(),
                    "figure": (p, "Accuracy against the clean labels on the training rows "
                               "whose given label is wrong: the share of wrong labels each "
                               f"model fixes. {lt}".strip())})
        fixed = headline_table([r for r in sub if r.get("noisy_subset_acc") is not None],
                               "noisy_subset_acc")
        if fixed:
            sections.append({"heading": f"{prefix}Wrong labels fixed (%), best λ per method",
                             "table": (fixed, None, None)})
        table, cols = settings_table(sub)
        sections.append({"heading": f"{prefix}All settings: mean test accuracy (%)",
                         "table": (table, cols, None)})
    theory = theory_sections(rows, meta, folder)
    if theory:
        sections.extend(theory)
        for i, sec in enumerate(theory):  # every PNG written counts as a figure
            if "figure" in sec:
                paths[f"theory_{i}"] = Path(sec["figure"][0])
    else:
        sections.append({"heading": "Theory vs measurement",
                         "html": "<p class='note'>No run of these results can be reproduced "
                                 "for the linearised prediction (custom noise matrices or "
                                 "datasets that cannot be loaded); section skipped.</p>"})
    from .._io import write_text_atomic

    paths["headline"] = folder / "headline.md"
    write_text_atomic(paths["headline"], headline_markdown(rows))
    paths["html"] = write_report(folder / report_name(folder), title or meta.get("title")
                                 or "selfdistill sweep", sections)
    return paths


def headline_markdown(rows: list[dict[str, Any]]) -> str:
    """The headline table of every dataset as Markdown (for README/docs)."""
    out = []
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[r["dataset"]].append(r)
    for ds, sub in by.items():
        table = headline_table(expand_clean(sub))
        cols = list(table[0])
        out.append(f"**{ds}**, test accuracy % (mean ± std over seeds; best λ per method)\n")
        out.append("| " + " | ".join(cols) + " |")
        out.append("|" + "---|" * len(cols))
        for row in table:
            out.append("| " + " | ".join("-" if row[c] is None else str(row[c])
                                         for c in cols) + " |")
        out.append("")
    return "\n".join(out)

