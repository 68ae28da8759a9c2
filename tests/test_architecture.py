"""The import rule of docs/architecture.md: data flows one way, imports point down.

features + labels (``datasets``) -> noise (``noise``) -> fits (``solvers``, ``distill``,
``theory`` beside them) -> results (``experiments``) -> report and terminal (``cli``).
Every import, top-level or inside a function, is read from the source with ``ast``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import selfdistill

PKG = Path(selfdistill.__file__).parent

#: the core: every top-level module except the command-line entry ``__main__``
CORE = sorted(p for p in PKG.glob("*.py") if p.name != "__main__.py")
THEORY = sorted((PKG / "theory").glob("*.py"))
EXPERIMENTS = sorted((PKG / "experiments").glob("*.py"))


def imports_of(source: str, package: list[str]) -> set[str]:
    """Absolute names of every module ``source`` imports, relative imports resolved
    against ``package`` (the parts of the package the module lives in)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
            out.update(f"{name}.{alias.name}" for alias in node.names)
    return out


def imported_modules(path: Path) -> set[str]:
    rel = path.relative_to(PKG.parent).with_suffix("")
    return imports_of(path.read_text(encoding="utf-8"), list(rel.parts[:-1]))


def offending(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{p.relative_to(PKG)} imports {m}" for p in paths for m in sorted(imported_modules(p))
            if any(m == f or m.startswith(f + ".") for f in forbidden)]


def test_the_modules_are_found():
    assert {p.name for p in CORE} >= {"solvers.py", "losses.py", "distill.py", "noise.py",
                                      "issues.py", "model_selection.py", "datasets.py",
                                      "estimator.py", "_validation.py"}
    assert {p.name for p in THEORY} >= {"block.py", "exact.py", "experiment.py", "report.py"}


@pytest.mark.parametrize("layer,paths", [("core", CORE), ("theory", THEORY)])
def test_core_and_theory_import_nothing_from_experiments_or_cli(layer, paths):
    assert offending(paths, ("selfdistill.experiments", "selfdistill.cli")) == []


def test_experiments_import_nothing_from_cli():
    assert offending(EXPERIMENTS, ("selfdistill.cli",)) == []


def test_the_checker_sees_relative_and_nested_imports():
    """What the rule forbids is found wherever it hides: inside a function, relative."""
    src = "def f():\n    from ..experiments.runner import given_labels\n    from .. import cli\n"
    found = imports_of(src, ["selfdistill", "theory"])
    assert {"selfdistill.experiments.runner", "selfdistill.cli"} <= found
    assert "selfdistill.theory.linear" in imported_modules(PKG / "theory" / "report.py")
