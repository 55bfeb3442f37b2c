"""Hostile inputs: each case in cases.py is a valid base entry with one defect, and its message.

To add a case, append a Case to CASES in cases.py, e.g.
    Case("claim_missing_model", set={"claims[0].measure.model": "gelu"},
         expect="claims[0].measure.model: 'gelu' is not a model of experiment 'exp'")
(set=, delete=, copy= patch base.yaml; raw= gives the whole text; kind="config" is a config.yaml;
max_jobs= checks the job cap; cases.py's docstring says more). Each case is written to
<name>.yaml under tmp_path; it must fail validation before any job, with exactly one message naming
the file and the key path, and no traceback. Validation only: the whole suite runs in seconds.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workflow.catalogue import CatalogueError, catalogue_files, check_job_cap, load_paper
from workflow.runconfig import config_problems, select_papers

from .cases import BASES, CASES, Case

ROOT = Path(__file__).parent.parent.parent


def problems_of(path: Path, case: Case) -> list[str]:
    if case.kind == "config":
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
        if case.max_jobs is not None:
            check_job_cap({lp.id: lp}, ["small"], case.max_jobs)
    except CatalogueError as e:
        return e.problems
    return []


def test_there_are_enough_cases():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES), "two cases share a name"
    for base in BASES.values():                       # a case's one problem is its own defect
        load_paper(base)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case, tmp_path, monkeypatch):
    path = case.write(tmp_path)
    monkeypatch.chdir(tmp_path)   # nothing a case does may touch the repository
    found = problems_of(path, case)
    if case.expect == "accepted":
        assert found == []
        return
    assert len(found) == 1, "\n".join(found)
    msg = found[0]
    assert case.expect in msg, f"expected {case.expect!r}\n     got {msg!r}"
    if case.kind != "config":
        assert msg.startswith(f"{path}: "), msg          # names the file
    assert "Traceback" not in msg and len(msg) < 600
    assert not Path("/tmp/hostile-pwned").exists()       # the !!python tag never ran


def test_check_cli_exits_nonzero_with_one_line_per_case_and_no_traceback(tmp_path):
    bad = [c.write(tmp_path) for c in CASES if c.expect != "accepted" and c.kind != "config" and c.max_jobs is None]
    proc = subprocess.run([sys.executable, "-m", "workflow.catalogue", "check", *map(str, bad)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={"COLUMNS": "300", "PATH": ""})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error ")]
    assert len(lines) == len(bad)
    for p in bad:
        assert sum(str(p) in ln for ln in lines) == 1, p.name


def test_config_cli(tmp_path):
    for case in [c for c in CASES if c.kind == "config"]:
        p = case.write(tmp_path)
        proc = subprocess.run([sys.executable, "-m", "workflow.runconfig", "check", str(p)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert case.expect.replace("config:", f"{p}:", 1) in " ".join(proc.stderr.split()), proc.stderr


def test_html_in_catalogue_text_is_escaped_in_the_report(tmp_path, monkeypatch):
    from workflow.steps import write_json
    from workflow.judge import judge_paper
    from workflow.report import render_paper

    (case,) = [c for c in CASES if c.name == "html_in_text"]
    src = case.write(tmp_path / "catalogue")
    monkeypatch.chdir(tmp_path)
    v = judge_paper(Path("catalogue") / src.name, "smoke", tmp_path)
    assert {c["verdict"] for c in v["claims"]} == {"not_run"}      # nothing trained: every claim says why
    write_json(tmp_path / "v.json", v)
    html = render_paper(tmp_path / "v.json", tmp_path / "out").read_text()
    assert "<script>alert" not in html and "<img src=x" not in html and "<i>1</i>" not in html
    assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in html
