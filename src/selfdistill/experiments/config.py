"""Sweep configuration files (TOML): the grid and the options shared by every point.

A config has two tables; every key is optional except ``grid.datasets``::

    title = "digits smoke test"          # report title (optional)

    [grid]                                # the cross product of these lists
    datasets = ["digits"]                 # "banking77" (bundled), "digits", or a .npz path
                                          # (relative to the config file)
    noise = ["sym", "asym", "cc"]         # kinds: sym, asym, cc, idn, paper-asym, paper-cc, none
    rates = [0.0, 0.2, 0.5]               # each in [0, 1)
    seeds = [0, 1, 2]                     # noise seeds, ints >= 0
    lam = [1e-5]                          # L2 strengths > 0
    rounds = [4]                          # SD rounds per point (sd-1 .. sd-R are all kept)
    methods = ["teacher", "sd", "pll"]    # teacher is always fitted; pll on/off

    [options]                             # the same for every point
    select = false                        # CV model recommendation (costly)
    pll_loss = "gce"                      # or "two-hot"
    q = 0.7                               # GCE exponent
    tol = 1e-6                            # solver tolerance
    blas_threads = 1                      # BLAS threads per point (see Notes)

Notes
-----
Rate 0 is the same point for every noise kind, so it is run once with noise kind
``"none"`` (``noise = ["none"]`` asks for it too). Without ``select`` the noise seed
plays no role at rate 0, so the clean point is also run for the first seed only.

``blas_threads`` fixes the number of BLAS threads used inside each point. Floating-point
sums depend on how BLAS splits them over threads, so fixing it makes the numbers identical
whichever scheduler or worker count runs the sweep; parallelism comes from workers.
"""

from __future__ import annotations

import json
import math
import numbers
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._errors import SelfDistillError
from .._validation import LAM, PLL_LOSSES, RATE, TOL, Interval, Q, check_params
from ..noise import RATE_KINDS

__all__ = ["SweepConfig", "GridPoint", "load_config", "parse_config", "NOISE_KINDS",
           "METHODS", "NAMED_DATASETS"]

#: the kinds of :class:`selfdistill.noise.NoiseSpec` that a grid can name (rates come
#: from ``grid.rates``)
NOISE_KINDS = (*RATE_KINDS, "none")
METHODS = ("teacher", "sd", "pll")
NAMED_DATASETS = ("banking77", "digits")
GRID_KEYS = ("datasets", "noise", "rates", "seeds", "lam", "rounds", "methods")
OPTION_KEYS = ("select", "pll_loss", "q", "tol", "blas_threads")
TOP_KEYS = ("title", "grid", "options")


@dataclass(frozen=True)
class GridPoint:
    """One point of a sweep grid: the arguments of :func:`~.runner.run_experiment`.

    Attributes
    ----------
    dataset : str
        As written in the config ("banking77", "digits" or the .npz path as given).
    noise : str
        "sym", "asym", "cc" or "none" (rate 0).
    rate, seed, lam, rounds, pll
        Noise rate, noise seed, L2 strength, SD rounds, PLL student on/off.
    """

    dataset: str
    noise: str
    rate: float
    seed: int
    lam: float
    rounds: int
    pll: bool

    @property
    def key(self) -> str:
        """Canonical JSON of the parameters: the point's primary key in the store.

        Examples
        --------
        >>> GridPoint("digits", "sym", 0.2, 0, 1e-05, 4, True).key
        '{"dataset":"digits","lam":1e-05,"noise":"sym","pll":true,"rate":0.2,"rounds":4,"seed":0}'
        """
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class SweepConfig:
    """A parsed, validated sweep config (see the module docstring for the file format).

    Attributes
    ----------
    grid : dict
        Lists per grid key (``datasets, noise, rates, seeds, lam, rounds, methods``).
    options : dict
        ``select, pll_loss, q, tol, blas_threads``.
    dataset_paths : dict
        Dataset spec as written -> what to load ("banking77", "digits" or an absolute path).
    title : str
    source : str
        The config file (for messages).
    """

    grid: dict[str, list[Any]]
    options: dict[str, Any]
    dataset_paths: dict[str, str]
    title: str = "selfdistill sweep"
    source: str = "<config>"

    def points(self) -> list[GridPoint]:
        """The grid points in a fixed order (dataset, noise, rate, seed, lam, rounds).

        Rate 0 is deduplicated into one ``noise="none"`` point; without ``select``
        it is kept for the first seed only (the seed has no effect there).
        """
        g, out, seen = self.grid, [], set()
        pll = "pll" in g["methods"]
        for ds in g["datasets"]:
            for kind in g["noise"]:
                rates = [0.0] if kind == "none" else g["rates"]
                for rate in rates:
                    k = "none" if rate == 0.0 else kind
                    seeds = g["seeds"]
                    if k == "none" and not self.options["select"]:
                        seeds = seeds[:1]
                    for seed in seeds:
                        for lam in g["lam"]:
                            for r in g["rounds"]:
                                p = GridPoint(ds, k, float(rate), int(seed), float(lam), int(r),
                                              pll)
                                if p not in seen:
                                    seen.add(p)
                                    out.append(p)
        return out

    def canonical(self) -> str:
        """Canonical JSON of grid and options (what a resumed sweep must match)."""
        return json.dumps({"grid": self.grid, "options": self.options}, sort_keys=True,
                          separators=(",", ":"))


def _err(source: str, key: str, msg: str) -> SelfDistillError:
    return SelfDistillError(f"{source}: {key}: {msg}")


def _as_list(value: Any, source: str, key: str) -> list[Any]:
    if isinstance(value, list):
        if not value:
            raise _err(source, key, "must not be empty")
        return value
    if isinstance(value, dict):
        raise _err(source, key, "must be a list, got a table")
    return [value]


def _number(v: Any, source: str, key: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise _err(source, key, f"must be a number, got {v!r}")
    return float(v)


def _checked(v: Any, source: str, key: str, rule: Interval | tuple[str, ...]) -> Any:
    """``v`` checked against its rule in :mod:`selfdistill._validation`.

    Errors read ``source: key: must be ...``.
    """
    try:
        return check_params({key: rule}, **{key: v})[key]
    except SelfDistillError as exc:
        raise _err(source, key, str(exc).removeprefix(f"{key} ")) from None


def _int(v: Any, source: str, key: str, lo: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _err(source, key, f"must be an integer in [{lo}, inf), got {v!r}")
    if v < lo:
        raise _err(source, key, f"must be in [{lo}, inf), got {v}")
    return int(v)


def _unique(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def parse_config(data: dict[str, Any], *, source: str = "<config>",
                 base_dir: str | Path = ".") -> SweepConfig:
    """Validate a config dict (as read from TOML) into a :class:`SweepConfig`.

    Raises
    ------
    SelfDistillError
        Naming the file and the key: unknown keys, empty lists, unknown noise kinds
        or methods, rates outside [0, 1), lam <= 0, negative seeds or rounds, a
        dataset that is neither a known name nor an existing ``.npz`` file.

    Examples
    --------
    >>> cfg = parse_config({"grid": {"datasets": ["digits"], "noise": ["sym"],
    ...                              "rates": [0.0, 0.5], "seeds": [0, 1], "lam": [1e-4],
    ...                              "rounds": [2]}})
    >>> [(p.noise, p.rate, p.seed) for p in cfg.points()]
    [('none', 0.0, 0), ('sym', 0.5, 0), ('sym', 0.5, 1)]
    >>> parse_config({"grid": {"datasets": ["digits"], "rates": [1.2]}}, source="c.toml")
    Traceback (most recent call last):
    ...
    selfdistill._errors.SelfDistillError: c.toml: grid.rates[0]: must be in [0, 1), got 1.2
    """
    base = Path(base_dir)
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise _err(source, unknown[0], f"unknown key; allowed top-level keys: "
                   f"{', '.join(TOP_KEYS)}")
    title = data.get("title", "selfdistill sweep")
    if not isinstance(title, str):
        raise _err(source, "title", f"must be a string, got {title!r}")
    grid_in = data.get("grid")
    if not isinstance(grid_in, dict):
        raise _err(source, "grid", "missing [grid] table" if grid_in is None
                   else "must be a table ([grid])")
    opts_in = data.get("options", {})
    if not isinstance(opts_in, dict):
        raise _err(source, "options", "must be a table ([options])")
    for table, allowed, given in (("grid", GRID_KEYS, grid_in), ("options", OPTION_KEYS,
                                                                  opts_in)):
        bad = sorted(set(given) - set(allowed))
        if bad:
            raise _err(source, f"{table}.{bad[0]}", f"unknown key; allowed: {', '.join(allowed)}")
    if "datasets" not in grid_in:
        raise _err(source, "grid.datasets", "missing; list datasets such as [\"digits\"]")

    grid: dict[str, list[Any]] = {}
    paths: dict[str, str] = {}
    for i, ds in enumerate(_as_list(grid_in["datasets"], source, "grid.datasets")):
        key = f"grid.datasets[{i}]"
        if not isinstance(ds, str) or not ds:
            raise _err(source, key, f"must be a dataset name or .npz path, got {ds!r}")
        if ds in NAMED_DATASETS:
            paths[ds] = ds
            continue
        if not ds.endswith(".npz"):
            raise _err(source, key, f"unknown dataset {ds!r}; use banking77, digits or a "
                       "path to a .npz feature file")
        p = Path(ds)
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            raise _err(source, key, f"feature file not found: {p}")
        paths[ds] = str(p.resolve())
    grid["datasets"] = _unique(list(paths))

    kinds = _as_list(grid_in.get("noise", ["sym"]), source, "grid.noise")
    for i, k in enumerate(kinds):
        if k not in NOISE_KINDS:
            raise _err(source, f"grid.noise[{i}]", f"unknown noise kind {k!r}; choose from "
                       f"{', '.join(NOISE_KINDS)}")
    grid["noise"] = _unique(kinds)

    rates = []
    for i, r in enumerate(_as_list(grid_in.get("rates", [0.0]), source, "grid.rates")):
        rates.append(_checked(_number(r, source, f"grid.rates[{i}]"), source,
                              f"grid.rates[{i}]", RATE))
    grid["rates"] = _unique(rates)

    grid["seeds"] = _unique([_int(s, source, f"grid.seeds[{i}]")
                             for i, s in enumerate(_as_list(grid_in.get("seeds", [0]), source,
                                                            "grid.seeds"))])
    lams = []
    for i, lam in enumerate(_as_list(grid_in.get("lam", [1e-5]), source, "grid.lam")):
        lams.append(_checked(_number(lam, source, f"grid.lam[{i}]"), source,
                             f"grid.lam[{i}]", LAM))
    grid["lam"] = _unique(lams)

    methods = _as_list(grid_in.get("methods", list(METHODS)), source, "grid.methods")
    for i, m in enumerate(methods):
        if m not in METHODS:
            raise _err(source, f"grid.methods[{i}]", f"unknown method {m!r}; choose from "
                       f"{', '.join(METHODS)}")
    if "teacher" not in methods:
        raise _err(source, "grid.methods", "must include 'teacher' (SD and PLL start from it)")
    grid["methods"] = [m for m in METHODS if m in methods]

    if "sd" in methods:
        rounds = _unique([_int(r, source, f"grid.rounds[{i}]", lo=1) for i, r in
                          enumerate(_as_list(grid_in.get("rounds", [4]), source,
                                             "grid.rounds"))])
    else:
        given = _as_list(grid_in.get("rounds", [0]), source, "grid.rounds")
        if given != [0]:
            raise _err(source, "grid.rounds", "must be [0] or left out when methods lacks 'sd'")
        rounds = [0]
    grid["rounds"] = rounds

    opts: dict[str, Any] = {"select": False, "pll_loss": "gce", "q": 0.7, "tol": 1e-6,
                            "blas_threads": 1}
    if "select" in opts_in:
        if not isinstance(opts_in["select"], bool):
            raise _err(source, "options.select", f"must be true or false, got "
                       f"{opts_in['select']!r}")
        opts["select"] = opts_in["select"]
    if "pll_loss" in opts_in:
        opts["pll_loss"] = _checked(opts_in["pll_loss"], source, "options.pll_loss",
                                    PLL_LOSSES)
    for key, rule in (("q", Q), ("tol", TOL)):
        if key in opts_in:
            opts[key] = _checked(_number(opts_in[key], source, f"options.{key}"), source,
                                 f"options.{key}", rule)
    if "blas_threads" in opts_in:
        opts["blas_threads"] = _int(opts_in["blas_threads"], source, "options.blas_threads",
                                    lo=1)
    return SweepConfig(grid=grid, options=opts, dataset_paths=paths, title=title, source=source)


def load_config(path: str | Path) -> SweepConfig:
    """Read and validate a TOML sweep config; dataset paths are relative to its folder.

    Raises
    ------
    SelfDistillError
        File missing or unreadable, malformed TOML (with line and column), or any
        problem :func:`parse_config` reports.
    """
    p = Path(path)
    if not p.is_file():
        raise SelfDistillError(f"config file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SelfDistillError(f"cannot read config {p}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SelfDistillError(f"{p}: malformed TOML: {exc}") from None
    return parse_config(data, source=str(p), base_dir=p.parent)
