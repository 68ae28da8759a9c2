"""Atomic writes: permissions as a plain open() gives, batches committed together."""

from __future__ import annotations

import os
import stat

import pytest

from selfdistill import SelfDistillError
from selfdistill._io import output_batch, staged, write_text_atomic


@pytest.fixture()
def umask():
    """Set the process umask for one test, restore it after."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077], ids=oct)
def test_new_files_get_0666_minus_umask(tmp_path, umask, mask):
    # issue 16 bug 6: every output was 0600 whatever the umask (mkstemp's mode)
    umask(mask)
    write_text_atomic(tmp_path / "out.json", "{}")
    plain = tmp_path / "plain.txt"
    with open(plain, "w") as fh:
        fh.write("x")
    assert mode(tmp_path / "out.json") == mode(plain) == 0o666 & ~mask


def test_replaced_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "out.json"
    target.write_text("old")
    target.chmod(0o640)
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and mode(target) == 0o640


def test_fit_outputs_follow_the_umask(tmp_path, umask, small_npz, capsys):
    from selfdistill.cli import run

    umask(0o022)
    out, issues = tmp_path / "o.json", tmp_path / "i.csv"
    with pytest.raises(SystemExit) as exc:
        run(["fit", small_npz, "--lam", "1e-3", "--rounds", "0", "--no-select", "--noise",
             "sym:0.3", "--json", str(out), "--issues", str(issues), "--quiet"])
    assert exc.value.code == 0
    assert mode(out) == mode(issues) == 0o644


def test_batch_commits_together_or_not_at_all(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    with output_batch():
        write_text_atomic(a, "A")
        assert not a.exists() and staged(a).read_text() == "A"
        write_text_atomic(b, "B")
    assert a.read_text() == "A" and b.read_text() == "B"
    with pytest.raises(SelfDistillError), output_batch():
        write_text_atomic(a, "A2")
        raise SelfDistillError("boom")
    assert a.read_text() == "A"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]
