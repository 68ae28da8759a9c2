"""Sweeps: every point of a config's grid through :func:`~.runner.run_experiment`.

Results go to ``DIR/results.sqlite`` (:class:`~.store.ResultStore`), one transaction per
finished point, and are exported to ``DIR/results.csv`` when the grid is complete. Only
the process that runs :func:`run_sweep` writes the database; workers return records.

Schedulers
----------
``local``
    Points one after another in this process (``workers`` ignored).
``processes``
    A pool of ``workers`` fresh Python processes on this machine (``spawn``).
``dask``
    ``dask.distributed``: without an address a ``LocalCluster`` of ``workers``
    single-threaded worker processes on 127.0.0.1; ``dask:tcp://HOST:PORT`` sends the
    points to an existing scheduler (see docs/sweeps.md for a multi-machine cluster).

Every worker loads each dataset and computes its spectral basis once and keeps them
for all its points (:func:`compute_point`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._errors import SelfDistillError
from .config import GridPoint, SweepConfig
from .store import DirLock, ResultStore

__all__ = ["run_sweep", "compute_point", "parse_scheduler", "SweepSummary", "export_csv",
           "DB_NAME", "CSV_NAME", "estimate_seconds", "format_duration", "CONFIRM_POINTS"]

DB_NAME = "results.sqlite"
CSV_NAME = "results.csv"
SCHEDULERS = ("local", "processes", "dask")

#: dataset spec -> (Dataset, SpectralBasis), per worker process
_CACHE: dict[tuple[str, int], tuple[Any, Any]] = {}
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did: ``total`` points, ``skipped`` (already stored), ``computed``."""

    total: int
    skipped: int
    computed: int
    seconds: float
    db: Path
    csv: Path


#: A grid of this many points or more runs only when confirmed (``selfdistill sweep --yes``).
CONFIRM_POINTS = 10_000
#: The cost model of :func:`estimate_seconds`: seconds per fit, plus seconds per fit and
#: per ``N * d * K``. Measured on two shared cores: teacher + 4 SD + PLL without
#: selection took 0.73 s on digits (1257 x 64, K = 10) and 11.5 s on BANKING77
#: (10003 x 384, K = 77); cross-validated selection about doubled both.
FIT_OVERHEAD_S = 0.12
FIT_SIZE_S = 6e-9


def _dataset_size(path: str) -> tuple[int, int, int] | None:
    """``(N, d, K)`` of a sweep dataset without loading its features (None: unknown)."""
    import zipfile

    import numpy as np

    from ..datasets import load_dataset

    try:
        if path in ("banking77", "digits"):
            ds = load_dataset(path)
            return ds.n_train, ds.X_train.shape[1], ds.n_classes
        with zipfile.ZipFile(path) as zf, zf.open("X_train.npy") as fh:
            version = np.lib.format.read_magic(fh)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape = read(fh)[0]
        with np.load(path, allow_pickle=False) as z:
            K = len(z["classes"]) if "classes" in z.files else len(np.unique(z["y_train"]))
        return int(shape[0]), int(shape[1]), int(K)
    except Exception:  # the estimate is advice; the sweep itself reports a bad file
        return None


def estimate_seconds(config: SweepConfig, points: list[GridPoint]) -> float | None:
    """Rough single-worker wall-clock seconds of ``points`` (None when a size is unknown).

    Per point, ``fits * (FIT_OVERHEAD_S + FIT_SIZE_S * N d K)`` with
    ``fits = 1 + rounds + pll``, doubled when the config selects a model by
    cross-validation. Right to within a factor of about two on an idle machine; its use
    is to tell a minute from a day before starting.
    """
    sizes = {ds: _dataset_size(path) for ds, path in config.dataset_paths.items()}
    total = 0.0
    for p in points:
        size = sizes.get(p.dataset)
        if size is None:
            return None
        N, d, K = size
        fits = 1 + p.rounds + int(p.pll)
        total += fits * (FIT_OVERHEAD_S + FIT_SIZE_S * N * d * K)
    return total * (2.0 if config.options.get("select", True) else 1.0)


def format_duration(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``, ``3.0 days``.

    Examples
    --------
    >>> format_duration(42), format_duration(210), format_duration(7600)
    ('42 s', '3.5 min', '2.1 h')
    """
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def parse_scheduler(spec: str) -> tuple[str, str | None]:
    """``local``, ``processes``, ``dask`` or ``dask:ADDRESS`` -> (name, address).

    Examples
    --------
    >>> parse_scheduler("dask:tcp://10.0.0.5:8786")
    ('dask', 'tcp://10.0.0.5:8786')
    >>> parse_scheduler("local")
    ('local', None)
    """
    name, sep, address = spec.partition(":")
    if name not in SCHEDULERS:
        raise SelfDistillError(
            f"--scheduler must be local, processes, dask or dask:ADDRESS, got {spec!r}")
    if sep and name != "dask":
        raise SelfDistillError(f"--scheduler {name} takes no address, got {spec!r}")
    if sep and not address:
        raise SelfDistillError("--scheduler dask:ADDRESS needs an address such as "
                               "tcp://HOST:8786")
    return name, (address or None)


def _load(spec: str, threads: int):
    """(Dataset, SpectralBasis) of a dataset spec, cached for this process."""
    with _CACHE_LOCK:
        hit = _CACHE.get((spec, threads))
        if hit is None:
            from threadpoolctl import threadpool_limits

            from ..datasets import load_dataset
            from ..solvers import SpectralBasis

            ds = load_dataset(spec)
            with threadpool_limits(threads):
                basis = SpectralBasis.from_features(ds.X_train)
            hit = _CACHE[(spec, threads)] = (ds, basis)
        return hit


def compute_point(point: dict[str, Any], dataset_path: str,
                  options: dict[str, Any]) -> dict[str, Any]:
    """Run one grid point; the task every scheduler executes.

    Parameters
    ----------
    point : dict
        :class:`~.config.GridPoint` fields.
    dataset_path : str
        What to load: "banking77", "digits" or an absolute ``.npz`` path (read on the
        worker; on a cluster it must exist there).
    options : dict
        ``select, pll_loss, q, tol, blas_threads`` of the config.

    Returns
    -------
    dict
        ``{"record": spec.md record, "worker": "host:pid"}``.
    """
    import socket

    from threadpoolctl import threadpool_limits

    from .runner import run_experiment

    threads = int(options["blas_threads"])
    ds, basis = _load(dataset_path, threads)
    with threadpool_limits(threads):
        record = run_experiment(
            ds, noise=point["noise"], rate=point["rate"], noise_seed=point["seed"],
            lam=point["lam"], rounds=point["rounds"], pll=point["pll"],
            pll_loss=options["pll_loss"], q=options["q"], select=options["select"],
            tol=options["tol"], basis=basis,
        )
    return {"record": record, "worker": f"{socket.gethostname()}:{os.getpid()}"}


# -- schedulers: each yields (index into todo, result) as points finish --------------------
Task = tuple[dict[str, Any], str, dict[str, Any]]


def _run_local(tasks: list[Task], workers: int) -> Iterator[tuple[int, dict[str, Any]]]:
    for i, t in enumerate(tasks):
        yield i, compute_point(*t)


def _watch_parent(parent: int) -> None:  # pragma: no cover - runs in pool workers
    """Pool-worker initializer: exit when the sweep process is gone (e.g. SIGKILL).

    Ctrl-C reaches every process of the terminal's group; workers ignore it and leave
    the sweep process to stop the pool and say what was stored (no worker tracebacks).
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def loop() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(0)
            time.sleep(0.5)

    threading.Thread(target=loop, daemon=True).start()


def _run_processes(tasks: list[Task], workers: int) -> Iterator[tuple[int, dict[str, Any]]]:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn: children inherit neither the database connection nor the folder lock
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                             initializer=_watch_parent, initargs=(os.getpid(),)) as pool:
        # keep at most 2 * workers tasks queued so a stopped sweep wastes little work
        pending: dict[Any, int] = {}
        it = iter(enumerate(tasks))
        try:
            while True:
                while len(pending) < 2 * workers:
                    nxt = next(it, None)
                    if nxt is None:
                        break
                    pending[pool.submit(compute_point, *nxt[1])] = nxt[0]
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: pending[f]):
                    yield pending.pop(fut), fut.result()
        except BaseException:  # Ctrl-C, a failed point: drop what is queued, now
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            for fut in pending:
                fut.cancel()


def _probe(address: str) -> None:
    """Fail fast (instead of dask's connect timeout) when a tcp scheduler refuses."""
    import socket
    from urllib.parse import urlsplit

    if not address.startswith("tcp://"):
        return
    try:
        parts = urlsplit(address)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise SelfDistillError(f"bad dask scheduler address {address!r}; expected "
                               "tcp://HOST:PORT") from None
    if not host or not port:
        raise SelfDistillError(f"bad dask scheduler address {address!r}; expected "
                               "tcp://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as exc:
        raise SelfDistillError(
            f"cannot reach the dask scheduler at {address}: {exc.strerror or exc}") from None


def _run_dask(tasks: list[Task], workers: int,
              address: str | None) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise SelfDistillError(
            "--scheduler dask needs dask.distributed: pip install 'selfdistill[dask]'") from None
    cluster = None
    try:
        if address is None:
            import logging

            # silence_logs: the workers' shutdown races (heartbeat to a closed scheduler)
            # are harmless; task errors still reach us through the futures
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                   silence_logs=logging.CRITICAL)
            client = Client(cluster)
        else:
            try:
                client = Client(address, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise SelfDistillError(
                    f"cannot reach the dask scheduler at {address}: {exc}") from None
        with client:
            futures = {client.submit(compute_point, *t, pure=False): i
                       for i, t in enumerate(tasks)}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
                fut.release()
    finally:
        if cluster is not None:
            cluster.close()


def _schedule(name: str, address: str | None, tasks: list[Task],
              workers: int) -> Iterable[tuple[int, dict[str, Any]]]:
    if not tasks:
        return iter(())
    if name == "local":
        return _run_local(tasks, workers)
    if name == "processes":
        return _run_processes(tasks, workers)
    return _run_dask(tasks, workers, address)


def export_csv(store: ResultStore, path: str | Path) -> Path:
    """Write the store's rows as ``results.csv`` (atomically)."""
    from .store import CSV_COLUMNS
    from .tables import write_csv

    write_csv(path, store.rows(), CSV_COLUMNS)
    return Path(path)


def prepare_output(config: SweepConfig, out: str | Path, *, resume: bool) -> tuple[
        DirLock, ResultStore]:
    """Create ``out``, take its lock and open (or create) the database for ``config``.

    Raises
    ------
    SelfDistillError
        Another sweep holds the folder; the database exists and ``resume`` is off; it
        has another schema or was written for another config.
    """
    from .._io import ensure_dir

    folder = ensure_dir(out)
    lock = DirLock(folder).acquire()
    try:
        db = folder / DB_NAME
        if db.exists() and not resume:
            probe = ResultStore(db)  # schema errors first, they are the more useful message
            n = probe.n_points()
            probe.close()
            if n:
                raise SelfDistillError(
                    f"{db} already holds {n} point(s); pass --resume to continue that sweep "
                    "or choose another --out folder")
        store = ResultStore(db, create=True)
        try:
            store.bind_config(config.canonical(), config.title)
        except BaseException:
            store.close()
            raise
    except BaseException:
        lock.release()
        raise
    return lock, store


def run_sweep(
    config: SweepConfig,
    out: str | Path,
    *,
    scheduler: str = "local",
    workers: int | None = None,
    resume: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> SweepSummary:
    """Run (or finish) the grid of ``config`` into ``out``.

    Parameters
    ----------
    config : SweepConfig
    out : str or Path
        Output folder; gets ``results.sqlite`` and, once the grid is complete,
        ``results.csv``.
    scheduler : str, default="local"
        ``local``, ``processes``, ``dask`` or ``dask:ADDRESS`` (module docstring).
    workers : int, optional
        Parallel workers for ``processes`` and a local dask cluster (default: CPU count).
    resume : bool, default=False
        Continue a sweep stored in ``out``; points already there are skipped.
    progress : callable ``(done, total, label)``, optional
        Called at the start and after each stored point.

    Returns
    -------
    SweepSummary

    Examples
    --------
    >>> import tempfile
    >>> from selfdistill.experiments.config import parse_config
    >>> cfg = parse_config({"grid": {"datasets": ["digits"], "noise": ["sym"],
    ...                              "rates": [0.3], "lam": [1e-3], "rounds": [1],
    ...                              "methods": ["teacher", "sd"]}})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     s = run_sweep(cfg, d)
    ...     (s.total, s.computed, s.csv.name)
    (1, 1, 'results.csv')
    """
    name, address = parse_scheduler(scheduler)
    n_workers = int(workers or os.cpu_count() or 1)
    if n_workers < 1:
        raise SelfDistillError(f"--workers must be in [1, inf), got {workers}")
    if name == "dask" and address is not None:
        _probe(address)  # before anything is written
    t0 = time.perf_counter()
    points: list[GridPoint] = config.points()
    lock, store = prepare_output(config, out, resume=resume)
    try:
        done_keys = store.done_keys()
        index = {p.key: i for i, p in enumerate(points)}
        todo = [p for p in points if p.key not in done_keys]
        total, done = len(points), len(points) - len(todo)
        if progress is not None:
            progress(done, total, "")
        run_id = store.start_run(scheduler, 1 if name == "local" else n_workers)
        tasks = [(asdict(p), config.dataset_paths[p.dataset], dict(config.options))
                 for p in todo]
        for i, result in _schedule(name, address, tasks, n_workers):
            p = todo[i]
            store.add_point(p.key, index[p.key], asdict(p), result["record"], run_id=run_id,
                            worker=result["worker"])
            done += 1
            if progress is not None:
                progress(done, total, f"{p.noise} {p.rate:g} seed {p.seed} lam {p.lam:g}")
        store.finish_run(run_id)
        csv = export_csv(store, Path(out) / CSV_NAME)
    finally:
        store.close()
        lock.release()
    return SweepSummary(total=total, skipped=total - len(todo), computed=len(todo),
                        seconds=time.perf_counter() - t0, db=Path(out) / DB_NAME, csv=csv)
