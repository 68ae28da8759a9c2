"""Every bad input we know of: exit 2, one ``error:`` line, no traceback, no file written.

The same catalogue produces the table in ``docs/bad_inputs.md``; a test checks that every
row there is what the tool prints today. Regenerate the table after changing a message::

    .venv/bin/python -m tests.test_bad_inputs > docs/bad_inputs.md
"""

from __future__ import annotations

import io
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from selfdistill.cli import run

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "bad_inputs.md"

_digits = load_digits()
X = (_digits.data[:60] / 16.0).astype(np.float32)
Y = _digits.target[:60].astype(np.int64)


def npz(path: Path, **arrays) -> str:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return str(path)


def good(d: Path) -> str:
    return npz(d / "good.npz", X_train=X, y_train=Y, X_test=X[:20], y_test=Y[:20])


def feat(**arrays) -> Callable[[Path], list[str]]:
    """``fit`` on a feature file made of ``arrays`` (defaults: 60 digits rows)."""
    def make(d: Path) -> list[str]:
        base = {"X_train": X, "y_train": Y}
        base.update(arrays)
        return ["fit", npz(d / "bad.npz", **{k: v for k, v in base.items() if v is not None})]
    return make


def pickled(d: Path) -> list[str]:
    path = d / "pickled.npz"
    with open(path, "wb") as fh:
        np.savez(fh, X_train=X, y_train=Y, classes=np.array([{"a": 1}] * 10, dtype=object))
    return ["fit", str(path)]


def truncated(d: Path) -> list[str]:
    data = Path(good(d)).read_bytes()
    (d / "trunc.npz").write_bytes(data[: len(data) // 2])
    return ["fit", str(d / "trunc.npz")]


def corrupt_member(d: Path) -> list[str]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("X_train.npy", b"\x93NUMPY\x01\x00garbage")
        zf.writestr("y_train.npy", b"nothing")
    (d / "corrupt.npz").write_bytes(buf.getvalue())
    return ["fit", str(d / "corrupt.npz")]


def text_file(d: Path) -> list[str]:
    (d / "text.npz").write_text("hello")
    return ["fit", str(d / "text.npz")]


def single_npy(d: Path) -> list[str]:
    np.save(d / "x.npy", X)
    return ["fit", str(d / "x.npy")]


def fit_with(*extra: str) -> Callable[[Path], list[str]]:
    return lambda d: ["fit", good(d), *extra]


def matrix(T: np.ndarray) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        np.save(d / "T.npy", T)
        return ["fit", good(d), "--noise", f"matrix:{d / 'T.npy'}"]
    return make


def toml(text: str) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        good(d)
        (d / "sweep.toml").write_text(text)
        return ["sweep", str(d / "sweep.toml"), "--out", str(d / "sweep-out")]
    return make


def model_file(d: Path, *, d_features: int = 64, **changes) -> str:
    """A valid model file for 10 digits classes (``changes`` replace members; None drops
    one)."""
    from selfdistill.model_io import SavedModel, write_model

    path = d / "m.npz"
    write_model(path, SavedModel(W=np.zeros((10, d_features)), classes=np.arange(10).astype(str),
                                 lam=1e-3, model_name="pll"))
    if changes:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        arrays.update(changes)
        npz(path, **{k: v for k, v in arrays.items() if v is not None})
    return str(path)


def predict_with(input_of: Callable[[Path], str], **model) -> Callable[[Path], list[str]]:
    return lambda d: ["predict", model_file(d, **model), input_of(d), "--out", str(d / "p.csv")]


def texts(content: str, name: str = "t.csv") -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        (d / name).write_text(content, encoding="utf-8")
        return ["fit", str(d / name)]
    return make


def parquet(**columns) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({k: pa.array(v) for k, v in columns.items()}),
                       d / "e.parquet")
        return ["fit", str(d / "e.parquet")]
    return make


GRID = '[grid]\ndatasets = ["good.npz"]\nnoise = ["sym"]\nrates = [0.2]\nseeds = [0]\n' \
       'lam = [1e-3]\nrounds = [1]\n'

#: (what is wrong, command builder, path that must not exist afterwards)
CASES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    # feature files
    ("missing key (no y_train)", feat(y_train=None), "out.json"),
    ("extra key", feat(weights=np.ones(3)), "out.json"),
    ("wrong dtype: text features", feat(X_train=np.full((60, 4), "a")), "out.json"),
    ("wrong dtype: float labels", feat(y_train=Y + 0.5), "out.json"),
    ("wrong shape: 1-D features", feat(X_train=X[:, 0]), "out.json"),
    ("N mismatch between X and y", feat(y_train=Y[:50]), "out.json"),
    ("NaN in features", feat(X_train=np.where(np.eye(60, 64) > 0, np.nan, X)), "out.json"),
    ("inf in features", feat(X_train=np.full((60, 64), np.inf)), "out.json"),
    ("empty arrays", feat(X_train=np.zeros((0, 64)), y_train=np.zeros(0, int)), "out.json"),
    ("one class", feat(y_train=np.zeros(60, int)), "out.json"),
    ("negative label with classes", feat(y_train=Y - 1, classes=np.array(list("abcdefghij"))),
     "out.json"),
    ("test label not among the training labels",
     feat(y_train=np.where(Y == 7, 8, Y), X_test=X, y_test=Y), "out.json"),
    ("text label not in classes",
     feat(y_train=np.where(Y == 3, "drei", Y.astype(str)), classes=np.arange(10).astype(str)),
     "out.json"),
    ("labels mixing text and numbers", feat(X_test=X, y_test=Y.astype(str)), "out.json"),
    ("label >= K (K from classes)", feat(classes=np.array(["a", "b"])), "out.json"),
    ("X_test with other columns", feat(X_test=X[:, :5], y_test=Y), "out.json"),
    ("X_test without y_test", feat(X_test=X), "out.json"),
    ("object array / pickled payload", pickled, "out.json"),
    ("truncated .npz", truncated, "out.json"),
    ("corrupt .npz member", corrupt_member, "out.json"),
    ("not a zip archive", text_file, "out.json"),
    ("single .npy instead of .npz", single_npy, "out.json"),
    ("directory where a file is expected", lambda d: ["fit", str(d)], "out.json"),
    ("missing feature file", lambda d: ["fit", str(d / "nope.npz")], "out.json"),
    # options
    ("noise rate > 1", fit_with("--noise", "sym:1.2"), "out.json"),
    ("negative noise rate", fit_with("--noise", "sym:-0.1"), "out.json"),
    ("noise rate not a number", fit_with("--noise", "sym:high"), "out.json"),
    ("unknown noise kind", fit_with("--noise", "gauss:0.1"), "out.json"),
    ("noise without rate", fit_with("--noise", "sym"), "out.json"),
    ("non-stochastic noise matrix", matrix(np.ones((10, 10))), "out.json"),
    ("negative entries in noise matrix", matrix(np.eye(10) * 2 - 0.1), "out.json"),
    ("noise matrix of wrong size", matrix(np.eye(3)), "out.json"),
    ("missing noise matrix file", fit_with("--noise", "matrix:nope.npy"), "out.json"),
    ("negative lam", fit_with("--lam", "-3"), "out.json"),
    ("lam not a number", fit_with("--lam", "big"), "out.json"),
    ("lam too large (1e300)", fit_with("--lam", "1e300"), "out.json"),
    ("lam too small (1e-300)", fit_with("--lam", "1e-300"), "out.json"),
    ("negative rounds", fit_with("--rounds", "-1"), "out.json"),
    ("q outside [0, 1]", fit_with("--q", "1.5"), "out.json"),
    ("--intercept given a value", fit_with("--intercept=no"), "out.json"),
    ("--intercept-scaling 0", fit_with("--intercept-scaling", "0"), "out.json"),
    ("unknown option", fit_with("--frobnicate"), "out.json"),
    # outputs
    ("--json is a directory", lambda d: ["fit", good(d), "--json", str(d)], "out.json"),
    ("--json in a missing folder",
     lambda d: ["fit", good(d), "--json", str(d / "no" / "out.json")], "no/out.json"),
    ("--json under a regular file (unwritable)",
     lambda d: ["fit", good(d), "--json", str(Path(good(d)) / "out.json")], "out.json"),
    ("--issues is a directory", lambda d: ["fit", good(d), "--issues", str(d)], "out.json"),
    ("--json is the input feature file", lambda d: ["fit", good(d), "--json", good(d)],
     "out.json"),
    ("--issues and --json name one file",
     lambda d: ["fit", good(d), "--issues", str(d / "same.out"), "--json", str(d / "same.out")],
     "same.out"),
    ("demo --out is a file", lambda d: ["demo", "--out", good(d)], "out.json"),
    # sweep configs
    ("malformed TOML", toml("[grid\nnoise = sym\n"), "sweep-out"),
    ("unknown key in config", toml(GRID + "colour = 3\n"), "sweep-out"),
    ("unknown noise kind in config", toml(GRID.replace('"sym"', '"gauss"')), "sweep-out"),
    ("noise rate > 1 in config", toml(GRID.replace("[0.2]", "[1.5]")), "sweep-out"),
    ("negative lam in config", toml(GRID.replace("[1e-3]", "[-1]")), "sweep-out"),
    ("lam too large in config", toml(GRID.replace("[1e-3]", "[1e9]")), "sweep-out"),
    ("wrong type in config", toml(GRID.replace("[0]", '["zero"]')), "sweep-out"),
    ("empty list in config", toml(GRID.replace('["sym"]', "[]")), "sweep-out"),
    ("missing config file", lambda d: ["sweep", str(d / "nope.toml"), "--out", str(d / "o")],
     "o"),
    ("unknown scheduler", lambda d: [*toml(GRID)(d), "--scheduler", "slurm"], "sweep-out"),
    ("sweep of 10,000 points without --yes",
     toml(GRID.replace("seeds = [0]", f"seeds = {list(range(10_000))}")), "sweep-out"),
    ("report on a folder without results", lambda d: ["report", str(d)], "report.html"),
    # theory and embed
    ("theory: K < 2", lambda d: ["theory", "--K", "1", "--json", str(d / "t.json")], "t.json"),
    ("theory: lam too large", lambda d: ["theory", "--lam", "1e300", "--json",
                                         str(d / "t.json")], "t.json"),
    ("theory: c <= d", lambda d: ["theory", "--c", "0.1", "--d", "0.2", "--json",
                                  str(d / "t.json")], "t.json"),
    # texts, Parquet and the outputs of fit (issue 13)
    ("missing text column", texts("sentence,category\nhi,a\nho,b\n"), "out.json"),
    ("missing label column", texts("text,label\nhi,a\nho,b\n"), "out.json"),
    ("empty text", texts("text,category\nhi,a\n   ,b\n"), "out.json"),
    ("missing key in JSONL", texts('{"text": "hi"}\n', "t.jsonl"), "out.json"),
    ("ragged Parquet embeddings",
     parquet(embedding=[[0.1, 0.2], [0.3]], category=["a", "b"]), "out.json"),
    ("Parquet without an embedding column", parquet(vec=[[0.1]], category=["a"]), "out.json"),
    ("--test of another width", lambda d: ["fit", good(d), "--test",
                                           npz(d / "t.npz", X_train=X[:5, :9], y_train=Y[:5])],
     "out.json"),
    ("--test label not among the training classes",
     lambda d: ["fit", good(d), "--test", npz(d / "t.npz", X_train=X[:5], y_train=Y[:5] + 20)],
     "out.json"),
    ("--model-name of no fitted model",
     lambda d: ["fit", good(d), "--model", str(d / "m.npz"), "--model-name", "sd-9"], "m.npz"),
    ("--model-name without --model", fit_with("--model-name", "pll"), "out.json"),
    ("--relabel not .csv or .npz", lambda d: ["fit", good(d), "--relabel", str(d / "r.txt")],
     "r.txt"),
    ("--report is a file", lambda d: ["fit", good(d), "--report", good(d)], "out.json"),
    # predict
    ("predict: model of the wrong d", predict_with(good, d_features=10), "p.csv"),
    ("predict: schema version from the future",
     predict_with(good, schema_version=np.array(99)), "p.csv"),
    ("predict: model intercept of the wrong length",
     predict_with(good, intercept=np.zeros(3)), "p.csv"),
    ("predict: NaN in the model intercept",
     predict_with(good, intercept=np.full(10, np.nan)), "p.csv"),
    ("predict: schema-2 model without an intercept", predict_with(good, intercept=None),
     "p.csv"),
    ("predict: a feature file as the model",
     lambda d: ["predict", good(d), good(d), "--out", str(d / "p.csv")],
     "p.csv"),
    ("predict: missing model file",
     lambda d: ["predict", str(d / "none.npz"), good(d), "--out", str(d / "p.csv")], "p.csv"),
    ("predict: input without features",
     predict_with(lambda d: npz(d / "labels.npz", y_train=Y)), "p.csv"),
    ("predict: texts without the text column",
     predict_with(lambda d: texts("sentence\nhi\n")(d)[1]), "p.csv"),
    ("predict: input of unknown kind",
     predict_with(lambda d: str(d / "x.txt")), "p.csv"),
    ("predict: --out not .csv",
     lambda d: ["predict", model_file(d), good(d), "--out", str(d / "p.json")], "p.json"),
    ("embed: missing text file", lambda d: ["embed", str(d / "none.csv"), "-o",
                                            str(d / "e.npz")], "e.npz"),
]


#: Inputs that are accepted (exit 0) with a ``warning:`` or ``note:`` line saying what the
#: tool did about them: (what, command builder)
NOTICES: list[tuple[str, Callable[[Path], list[str]]]] = [
    ("a class with one training example",
     feat(y_train=np.where((Y == 3) & (np.arange(60) > 10), 4, Y))),
    ("two classes: the top-2 PLL set is every class", feat(y_train=Y % 2)),
    ("features scaled by 1e4", feat(X_train=X * 1e4)),
    ("features scaled by 1e-4", feat(X_train=X * 1e-4)),
    ("--lam auto on features scaled by 1e4",
     lambda d: [*feat(X_train=X * 1e4)(d), "--lam", "auto", "--rounds", "1", "--quiet"]),
    ("--lam auto on features scaled by 1e-4",
     lambda d: [*feat(X_train=X * 1e-4)(d), "--lam", "auto", "--rounds", "1", "--quiet"]),
    ("--noise on a file that has y_train_clean",
     lambda d: [*feat(y_train=(Y + 1) % 10, y_train_clean=Y)(d), "--noise", "sym:0.2"]),
]


def run_case(make: Callable[[Path], list[str]], d: Path, capsys=None) -> tuple[int, str]:
    args = make(d)
    if args[0] == "fit":
        args += ["--rounds", "0", "--no-select", "--quiet"] if "--rounds" not in args else []
        args += ["--json", str(d / "out.json")] if "--json" not in args else []
    try:
        run(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err if capsys is not None else ""
    return code, err


def message(err: str, d: Path) -> str:
    return err.strip().replace(str(d), "DIR")


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_bad_input_exits_2_one_line_nothing_written(capsys, tmp_path, case):
    _, make, must_not_exist = next(c for c in CASES if c[0] == case)
    code, err = run_case(make, tmp_path, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    target = tmp_path / must_not_exist
    if must_not_exist != "sweep-out":
        assert not target.is_file(), target
    else:
        assert not (target / "results.sqlite").exists()
    assert not list(tmp_path.rglob(".*.tmp")), "temp file left behind"
    row = f"| {case} | `{message(lines[0], tmp_path)}` |"
    assert row in DOC.read_text(encoding="utf-8"), f"docs/bad_inputs.md lacks:\n{row}"


@pytest.mark.parametrize("case", [c[0] for c in NOTICES])
def test_noticed_input_runs_and_says_so(capsys, tmp_path, case):
    _, make = next(c for c in NOTICES if c[0] == case)
    code, err = run_case(make, tmp_path, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 0, err
    assert lines and all(ln.startswith(("warning: ", "note: ")) for ln in lines), err
    assert "Traceback" not in err
    row = f"| {case} | `{message(' / '.join(lines), tmp_path)}` |"
    assert row in DOC.read_text(encoding="utf-8"), f"docs/bad_inputs.md lacks:\n{row}"


def table() -> str:
    """The markdown of docs/bad_inputs.md, from running every case."""
    import contextlib

    head = [
        "# Bad inputs and what the tool says",
        "",
        "Every row was produced by running the command on a file made to be wrong "
        "(`tests/test_bad_inputs.py`, which also checks that this table is current; "
        "regenerate it with `.venv/bin/python -m tests.test_bad_inputs > docs/bad_inputs.md`).",
        "Each one exits with code 2, prints exactly the one `error:` line shown on stderr "
        "(no traceback), and leaves no output file or temp file behind. `DIR` stands for "
        "the folder the files were in.",
        "",
        "Files we did not write never run code: `.npz` and `.npy` files are read with "
        "`allow_pickle=False`, so an object array (a pickled payload) is refused before "
        "anything is unpickled; configs are TOML, results are SQLite and JSON.",
        "",
        "| input | error line |",
        "|---|---|",
    ]
    rows = []
    for name, make, _ in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            buf = io.StringIO()
            with contextlib.redirect_stderr(buf):
                from selfdistill.cli import _app

                _app.error_console.file = buf
                code, _ = run_case(make, d)
            rows.append(f"| {name} | `{message(buf.getvalue(), d)}` |")
            assert code == 2, (name, code)
    rows += [
        "",
        "## Accepted, with a warning or a note",
        "",
        "These run to the end (exit 0) and say on stderr what the tool made of them "
        "(lines joined by ` / `).",
        "",
        "| input | stderr |",
        "|---|---|",
    ]
    for name, make in NOTICES:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            buf, results = io.StringIO(), io.StringIO()
            with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(results):
                from selfdistill.cli import _app

                _app.error_console.file, _app.console.file = buf, results
                code, _ = run_case(make, d)
            lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
            rows.append(f"| {name} | `{message(' / '.join(lines), d)}` |")
            assert code == 0, (name, code)
    return "\n".join(head + rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(table())
