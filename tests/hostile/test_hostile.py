"""Hostile inputs: one file per case in this folder, each with the message it must produce.

A case file starts with comment lines:
    # expect: <text the single error line must contain>   ("accepted" for valid input)
    # kind: config                                         (a config.yaml, not a catalogue entry)
    # max_jobs: N                                          (the job cap to check against)
Every case must fail validation before any job, with exactly one message naming the file
and the key path, and no traceback. Validation only: the whole suite runs in seconds.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workflow.catalogue import CatalogueError, catalogue_files, check_job_cap, load_paper
from workflow.runconfig import config_problems, select_papers

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
CASES = sorted(HERE.glob("*.yaml"))


def header(path: Path) -> dict:
    out = {}
    for line in path.read_bytes().split(b"\n"):
        if not line.startswith(b"# "):
            break
        key, _, value = line[2:].decode().partition(": ")
        out[key] = value
    return out


def problems_of(path: Path, meta: dict) -> list[str]:
    if meta.get("kind") == "config":
        config = yaml.safe_load(path.read_text())
        found = config_problems(config, ROOT / "schemas/config.schema.yaml")
        if not found:
            try:
                select_papers(config, [f.stem for f in catalogue_files(ROOT / "catalogue")])
            except CatalogueError as e:
                found = e.problems
        return found
    try:
        lp = load_paper(path)
        if "max_jobs" in meta:
            check_job_cap({lp.id: lp}, ["small"], int(meta["max_jobs"]))
    except CatalogueError as e:
        return e.problems
    return []


def test_there_are_enough_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # nothing a case does may touch the repository
    meta = header(path)
    assert "expect" in meta, f"{path.name} has no '# expect:' line"
    found = problems_of(path, meta)
    if meta["expect"] == "accepted":
        assert found == []
        return
    assert len(found) == 1, "\n".join(found)
    msg = found[0]
    assert meta["expect"] in msg, f"expected {meta['expect']!r}\n     got {msg!r}"
    if meta.get("kind") != "config":
        assert msg.startswith(f"{path}: "), msg          # names the file
    assert "Traceback" not in msg and len(msg) < 600
    assert not Path("/tmp/hostile-pwned").exists()       # the !!python tag never ran


def test_check_cli_exits_nonzero_with_one_line_per_case_and_no_traceback():
    bad = [p for p in CASES if header(p).get("expect") != "accepted" and header(p).get("kind") != "config"
           and "max_jobs" not in header(p)]
    proc = subprocess.run([sys.executable, "-m", "workflow.catalogue", "check", *map(str, bad)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={"COLUMNS": "300", "PATH": ""})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error ")]
    assert len(lines) == len(bad)
    for p in bad:
        assert sum(str(p) in ln for ln in lines) == 1, p.name


def test_config_cli(tmp_path):
    for p in [p for p in CASES if header(p).get("kind") == "config"]:
        proc = subprocess.run([sys.executable, "-m", "workflow.runconfig", "check", str(p)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert header(p)["expect"].replace("config:", f"{p}:", 1) in " ".join(proc.stderr.split()), proc.stderr


def test_html_in_catalogue_text_is_escaped_in_the_report(tmp_path, monkeypatch):
    from workflow.steps import write_json
    from workflow.judge import judge_paper
    from workflow.report import render_paper

    src = HERE / "html_in_text.yaml"
    (tmp_path / "catalogue").mkdir()
    shutil.copy(src, tmp_path / "catalogue" / src.name)
    monkeypatch.chdir(tmp_path)
    v = judge_paper(Path("catalogue") / src.name, "smoke", tmp_path)
    assert {c["verdict"] for c in v["claims"]} == {"not_run"}      # nothing trained: every claim says why
    write_json(tmp_path / "v.json", v)
    html = render_paper(tmp_path / "v.json", tmp_path / "out").read_text()
    assert "<script>alert" not in html and "<img src=x" not in html and "<i>1</i>" not in html
    assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in html
