"""The command line (workflow/catalogue/cli.py): python -m workflow.catalogue check."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from workflow.catalogue import CatalogueError, load_paper

from .helpers import PAPER, ROOT, TOY, assert_mentions, base, error_of, write


def cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "workflow.catalogue", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def good_check() -> subprocess.CompletedProcess:
    return cli("check", str(TOY))


def test_cli_check_good_file(good_check):
    assert good_check.returncode == 0, good_check.stderr
    assert "Traceback" not in good_check.stderr
    assert "valid" in good_check.stdout


def test_cli_check_prints_the_paper_id(good_check):
    assert good_check.returncode == 0
    assert PAPER in good_check.stdout, good_check.stdout


def test_cli_check_bad_files(tmp_path):
    d = base()
    d["experiments"][0]["models"][1]["arch"] = "nope_arch"
    bad1 = write(tmp_path, text="paper: [\n", name="broken")
    (tmp_path / "sub").mkdir()
    bad2 = write(tmp_path / "sub", d)
    r = cli("check", str(bad1), str(bad2))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr, r.stderr
    assert_mentions(r.stderr, bad1, "invalid YAML")
    assert_mentions(r.stderr, bad2, "experiments[0].models[1].arch", "'nope_arch'", "toy_autoencoder")
    assert "valid" not in r.stdout


def test_cli_check_missing_file(tmp_path):
    path = tmp_path / "absent.yaml"
    r = cli("check", str(path))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr, r.stderr
    assert_mentions(r.stderr, path, "no such file")


def test_cli_check_value_that_looks_like_markup(tmp_path):
    d = base()
    d["paper"]["year"] = "[/]"
    path = write(tmp_path, d)
    assert_mentions(error_of(path), path, "paper.year", "'[/]'")
    r = cli("check", str(path))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr, r.stderr
    assert_mentions(r.stderr, path, "paper.year", "'[/]'")


def test_cli_check_prints_messages_verbatim(tmp_path):
    d = base()
    d["experiments"][0]["sweep"] = {"Task.sparsity": [0.5]}
    path = write(tmp_path, d)
    with pytest.raises(CatalogueError) as info:
        load_paper(path)
    r = cli("check", str(path), columns=500)
    assert r.returncode == 1
    for p in info.value.problems:
        assert p in r.stderr, f"{p!r} is not printed as is:\n{r.stderr}"
