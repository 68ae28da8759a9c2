"""Flatten result records into rows (one per model per grid point) and aggregate them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["flatten_record", "aggregate", "round_index", "METRICS", "write_csv", "rows_to_csv"]

METRICS = ("test_acc", "train_acc_true", "noisy_subset_acc", "cv_acc_given", "objective",
           "iterations", "fit_s")


def round_index(name: str) -> int:
    """teacher -> 0, sd-t -> t, pll -> -1.

    Examples
    --------
    >>> [round_index(n) for n in ("teacher", "sd-3", "pll")]
    [0, 3, -1]
    """
    if name == "teacher":
        return 0
    if name.startswith("sd-"):
        return int(name[3:])
    return -1


def flatten_record(record: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    """One row per model: ``params`` (grid keys), then the model's metrics."""
    base = {
        "dataset": record["dataset"],
        "noise_kind": record["noise"]["kind"],
        "rate": record["noise"]["rate"],
        "realized_rate": record["noise"]["realized_rate"],
        "seed": record["noise"]["seed"],
        "lam": record["lam"],
    }
    base.update(params)
    rows = []
    for m in record["models"]:
        row = dict(base)
        row["model"] = m["name"]
        row["selected"] = int(m["name"] == record.get("selected"))
        for key in METRICS:
            src = "seconds" if key == "fit_s" else key
            row[key] = m.get(src)
        rows.append(row)
    return rows


def aggregate(rows: Iterable[dict[str, Any]], keys: Sequence[str],
              metric: str = "test_acc") -> dict[tuple, tuple[float, float, int]]:
    """Mean, standard deviation and count of ``metric`` grouped by ``keys``."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        v = r.get(metric)
        if v is not None:
            groups[tuple(r[k] for k in keys)].append(float(v))
    return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in groups.items()}


def rows_to_csv(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """CSV text of ``rows`` (columns from the first row unless given)."""
    import csv
    import io

    if not rows:
        return ""
    cols = list(columns or rows[0].keys())
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    return buf.getvalue()


def write_csv(path, rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Write ``rows`` as CSV atomically."""
    from .._io import write_text_atomic

    write_text_atomic(path, rows_to_csv(rows, columns))
