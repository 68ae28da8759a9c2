"""The results store of a sweep: one SQLite file (WAL), one transaction per grid point.

Schema (``SCHEMA_VERSION`` 1)
-----------------------------
``meta(key, value)``
    ``schema_version`` ("1"), ``config`` (canonical JSON of grid and options),
    ``title``, ``created_with`` (package version).
``points``: one row per finished grid point, primary key ``point_key`` (the canonical
    JSON of its parameters, :attr:`~.config.GridPoint.key`)
    ``idx`` (grid order), ``dataset, noise_kind, rate, seed, lam, rounds, pll`` (the grid
    parameters), ``realized_rate, n_train, n_test, n_classes, selected``, ``record``
    (the spec.md result record as JSON, timings removed) and ``point_s`` (wall-clock).
``models``: one row per fitted model of a point, primary key ``(point_key, model)``
    ``position`` (teacher, sd-1.., pll), ``test_acc, train_acc_true, train_acc_given,
    noisy_subset_acc, cv_acc_given, objective, iterations, converged`` and ``fit_s``.
``runs``: one row per ``selfdistill sweep`` invocation (start/end time, host, pid,
    scheduler, workers, points computed). ``point_runs``: which run and worker computed
    each point, and when. Everything that differs between two runs of the same grid
    lives in these two tables or in columns ending in ``_s``.

A point's ``points``, ``models`` and ``point_runs`` rows are written in one
transaction, so a killed process leaves every point either complete or absent.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._errors import SelfDistillError

__all__ = ["SCHEMA_VERSION", "ResultStore", "GRID_COLUMNS", "CSV_COLUMNS", "DirLock"]

SCHEMA_VERSION = 1

#: grid parameters, the first columns of results.csv
GRID_COLUMNS = ("dataset", "noise_kind", "rate", "seed", "lam", "rounds", "pll")
MODEL_METRICS = ("test_acc", "train_acc_true", "train_acc_given", "noisy_subset_acc",
                 "cv_acc_given", "objective", "iterations", "converged", "fit_s")
#: results.csv: one row per model per grid point
CSV_COLUMNS = GRID_COLUMNS + ("realized_rate", "n_train", "n_test", "n_classes", "model",
                              "selected") + MODEL_METRICS + ("point_s",)

_DDL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE points (
    point_key TEXT PRIMARY KEY,
    idx INTEGER NOT NULL,
    dataset TEXT NOT NULL, noise_kind TEXT NOT NULL, rate REAL NOT NULL,
    seed INTEGER NOT NULL, lam REAL NOT NULL, rounds INTEGER NOT NULL, pll INTEGER NOT NULL,
    realized_rate REAL, n_train INTEGER, n_test INTEGER, n_classes INTEGER, selected TEXT,
    record TEXT NOT NULL,
    point_s REAL
);
CREATE TABLE models (
    point_key TEXT NOT NULL REFERENCES points(point_key),
    model TEXT NOT NULL, position INTEGER NOT NULL,
    test_acc REAL, train_acc_true REAL, train_acc_given REAL, noisy_subset_acc REAL,
    cv_acc_given REAL, objective REAL, iterations INTEGER, converged INTEGER,
    fit_s REAL,
    PRIMARY KEY (point_key, model)
);
CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL, finished TEXT, host TEXT, pid INTEGER, scheduler TEXT,
    workers INTEGER, version TEXT, points_computed INTEGER DEFAULT 0
);
CREATE TABLE point_runs (
    point_key TEXT PRIMARY KEY REFERENCES points(point_key),
    run_id INTEGER REFERENCES runs(run_id), worker TEXT, finished TEXT
);
"""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class DirLock:
    """An exclusive, non-blocking lock on ``DIR/.sweep.lock`` (``flock``).

    The kernel drops the lock when the holding process dies, even by SIGKILL, so a
    crashed sweep never blocks the next one. Where ``fcntl`` is missing (Windows)
    the lock is a no-op.
    """

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / ".sweep.lock"
        self._fd: int | None = None

    def acquire(self) -> DirLock:
        """Take the lock or raise :class:`SelfDistillError` naming the holder."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise SelfDistillError(
                f"another sweep is writing to {self.path.parent} (pid {holder}); wait for it "
                "to finish or use another --out folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (also released when the process exits)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


class ResultStore:
    """``DIR/results.sqlite``: create, check the schema, add points, read rows.

    Parameters
    ----------
    path : str or Path
        The database file.
    create : bool, default=False
        Create the file with the current schema when it does not exist; otherwise a
        missing file raises.

    Raises
    ------
    SelfDistillError
        The file is not an SQLite database, is not a selfdistill results database, or
        was written with another schema version.
    """

    def __init__(self, path: str | Path, *, create: bool = False):
        self.path = Path(path)
        exists = self.path.exists()
        if not exists and not create:
            raise SelfDistillError(f"no results database at {self.path}")
        if exists and not self.path.is_file():
            raise SelfDistillError(f"{self.path} is not a file")
        try:
            self.con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self.con.execute("PRAGMA busy_timeout=30000")
            empty = self.con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
            if empty and create:  # new, or created by a process killed before its first commit
                self._create()
            self._check()
            self.con.execute("PRAGMA journal_mode=WAL")
            self.con.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(Exception):
                self.con.close()
            raise SelfDistillError(
                f"{self.path} is not a readable selfdistill results database ({exc})") from None

    # -- schema ---------------------------------------------------------------------------
    def _create(self) -> None:
        from .. import __version__

        with self.transaction() as cur:
            for stmt in _DDL.split(";"):
                if stmt.strip():
                    cur.execute(stmt)
            cur.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("schema_version", str(SCHEMA_VERSION)),
                ("created_with", f"selfdistill {__version__}"),
            ])

    def _check(self) -> None:
        tables = {r[0] for r in self.con.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            raise SelfDistillError(
                f"{self.path} is not a selfdistill results database (no meta table)")
        row = self.con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = None if row is None else row[0]
        if version != str(SCHEMA_VERSION):
            raise SelfDistillError(
                f"{self.path} has results schema version {version}; this selfdistill reads "
                f"version {SCHEMA_VERSION}. Run the sweep into a new --out folder")
        missing = {"points", "models", "runs", "point_runs"} - tables
        if missing:
            raise SelfDistillError(
                f"{self.path} lacks table(s) {', '.join(sorted(missing))}; not a complete "
                "selfdistill results database")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any exception)."""
        cur = self.con.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def close(self) -> None:
        """Close the connection."""
        self.con.close()

    # -- meta -----------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        """A ``meta`` value or ``None``."""
        row = self.con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def bind_config(self, canonical: str, title: str) -> None:
        """Record the sweep's config, or check it equals the one already recorded.

        Raises
        ------
        SelfDistillError
            The database holds a sweep of another grid or options.
        """
        with self.transaction() as cur:
            row = cur.execute("SELECT value FROM meta WHERE key='config'").fetchone()
            if row is None:
                cur.execute("INSERT INTO meta VALUES ('config', ?)", (canonical,))
                cur.execute("INSERT OR REPLACE INTO meta VALUES ('title', ?)", (title,))
                return
        if row[0] != canonical:
            old, new = json.loads(row[0]), json.loads(canonical)
            diff = [f"{part}.{k}" for part in ("grid", "options")
                    for k in sorted(set(old[part]) | set(new[part]))
                    if old[part].get(k) != new[part].get(k)]
            raise SelfDistillError(
                f"{self.path} holds a sweep of another config (differs in "
                f"{', '.join(diff) or 'layout'}); resume with the same config or use another "
                "--out folder")

    # -- runs -----------------------------------------------------------------------------
    def start_run(self, scheduler: str, workers: int) -> int:
        """Insert a ``runs`` row; returns its id."""
        from .. import __version__

        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO runs (started, host, pid, scheduler, workers, version) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (_now(), socket.gethostname(), os.getpid(), scheduler, workers, __version__))
            return int(cur.lastrowid)

    def finish_run(self, run_id: int) -> None:
        """Stamp the run's end time."""
        with self.transaction() as cur:
            cur.execute("UPDATE runs SET finished=? WHERE run_id=?", (_now(), run_id))

    # -- points ---------------------------------------------------------------------------
    def done_keys(self) -> set[str]:
        """Keys of the points already stored."""
        return {r[0] for r in self.con.execute("SELECT point_key FROM points")}

    def add_point(self, key: str, idx: int, params: dict[str, Any], record: dict[str, Any],
                  *, run_id: int | None = None, worker: str = "") -> None:
        """Store one finished point (its ``points``, ``models``, ``point_runs`` rows) atomically.

        ``record`` is :func:`~.runner.run_experiment`'s output; its ``seconds`` fields
        go to the ``_s`` columns and are removed from the stored JSON.
        """
        rec = dict(record)
        point_s = rec.pop("seconds", None)
        models = [dict(m) for m in rec["models"]]
        fit_s = [m.pop("seconds", None) for m in models]
        rec["models"] = models
        text = json.dumps(rec, sort_keys=True, default=_json_default)
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO points (point_key, idx, dataset, noise_kind, rate, seed, lam, "
                "rounds, pll, realized_rate, n_train, n_test, n_classes, selected, record, "
                "point_s) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (key, idx, params["dataset"], params["noise"], params["rate"], params["seed"],
                 params["lam"], params["rounds"], int(params["pll"]),
                 rec["noise"]["realized_rate"], rec["n_train"], rec["n_test"],
                 rec["n_classes"], rec["selected"], text, point_s))
            cur.executemany(
                "INSERT INTO models (point_key, model, position, test_acc, train_acc_true, "
                "train_acc_given, noisy_subset_acc, cv_acc_given, objective, iterations, "
                "converged, fit_s) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [(key, m["name"], j, m.get("test_acc"), m.get("train_acc_true"),
                  m.get("train_acc_given"), m.get("noisy_subset_acc"), m.get("cv_acc_given"),
                  m.get("objective"), m.get("iterations"),
                  None if m.get("converged") is None else int(m["converged"]), s)
                 for j, (m, s) in enumerate(zip(models, fit_s))])
            cur.execute("INSERT INTO point_runs VALUES (?, ?, ?, ?)",
                        (key, run_id, worker, _now()))
            if run_id is not None:
                cur.execute("UPDATE runs SET points_computed = points_computed + 1 "
                            "WHERE run_id=?", (run_id,))

    def rows(self) -> list[dict[str, Any]]:
        """results.csv rows (:data:`CSV_COLUMNS`): one per model per point, in grid order."""
        cols = ", ".join(
            [f"p.{c}" for c in GRID_COLUMNS]
            + ["p.realized_rate", "p.n_train", "p.n_test", "p.n_classes", "m.model",
               "(m.model = p.selected) AS selected"]
            + [f"m.{c}" for c in MODEL_METRICS] + ["p.point_s"])
        cur = self.con.execute(
            f"SELECT {cols} FROM points p JOIN models m ON m.point_key = p.point_key "
            "ORDER BY p.idx, p.point_key, m.position")
        names = [d[0] for d in cur.description]
        out = []
        for r in cur:
            row = dict(zip(names, r))
            row["pll"] = bool(row["pll"])
            row["selected"] = int(row["selected"])
            if row["converged"] is not None:
                row["converged"] = bool(row["converged"])
            out.append(row)
        return out

    def records(self) -> list[dict[str, Any]]:
        """The stored spec.md records (timings removed), in grid order."""
        return [json.loads(r[0]) for r in
                self.con.execute("SELECT record FROM points ORDER BY idx, point_key")]

    def n_points(self) -> int:
        """Number of stored points."""
        return int(self.con.execute("SELECT COUNT(*) FROM points").fetchone()[0])


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
