"""Loading (workflow/catalogue/load.py): load_paper and the catalogue, problems across files, the
JSON Schema, the validation cache and the background registry checks."""
from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from workflow import catalogue as C
from workflow.catalogue import CatalogueError, load_catalogue, load_paper

from .helpers import BASE, PAPER, ROOT, TOY, assert_mentions, base, error_of, write

SCHEMA_FILE = ROOT / "schemas" / "catalogue.schema.json"
REGENERATE = "python -m workflow.catalogue schema > schemas/catalogue.schema.json"


def test_real_catalogue_loads(catalogue):
    assert PAPER in catalogue
    for pid, lp in catalogue.items():
        assert lp.id == pid == lp.path.stem
    assert (ROOT / catalogue[PAPER].path).resolve() == TOY
    lp = catalogue[PAPER]
    assert [e.id for e in lp.spec.experiments] == [e["id"] for e in BASE["experiments"]]
    assert [c.id for c in lp.spec.claims] == [c["id"] for c in BASE["claims"]]


def test_load_paper_accepts_str_path():
    assert load_paper(str(TOY)).id == PAPER


def test_paper_id_differs_from_file_name(tmp_path):
    path = write(tmp_path, base(), name="other_name")
    assert_mentions(error_of(path), path, "paper.id", f"'{PAPER}'", "file name", f"{PAPER}.yaml")


def test_duplicate_paper_id_across_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    pa, pb = write(a, base()), write(b, base())
    with pytest.raises(CatalogueError) as info:
        load_catalogue([pa, pb])
    assert_mentions(str(info.value), pb, "paper.id", f"'{PAPER}'", str(pa))


def test_load_catalogue_reports_every_bad_file(tmp_path):
    d = base()
    d["paper"]["id"] = "second"
    d["experiments"][0]["models"][1]["arch"] = "nope_arch"
    good = write(tmp_path, base())
    bad1 = write(tmp_path, text="paper: [\n", name="first")
    bad2 = write(tmp_path, d, name="second")
    with pytest.raises(CatalogueError) as info:
        load_catalogue([good, bad1, bad2])
    msg = str(info.value)
    assert_mentions(msg, bad1, "invalid YAML")
    assert_mentions(msg, bad2, "experiments[0].models[1].arch", "'nope_arch'")
    assert len(info.value.problems) == 2


def test_json_schema_file_is_up_to_date():
    assert SCHEMA_FILE.exists(), f"{SCHEMA_FILE} is missing; generate it with: {REGENERATE}"
    on_disk = json.loads(SCHEMA_FILE.read_text())
    current = json.loads(json.dumps(C.json_schema()))
    assert on_disk == current, (
        f"{SCHEMA_FILE.relative_to(ROOT)} is out of date with workflow/schema.py; regenerate it with: {REGENERATE}"
    )


def test_json_schema_accepts_the_real_entry_and_rejects_unknown_keys():
    jsonschema = pytest.importorskip("jsonschema")
    sch = C.json_schema()
    jsonschema.Draft202012Validator.check_schema(sch)
    jsonschema.validate(BASE, sch)
    d = base()
    d["experiments"][0]["repeats"] = 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(d, sch)


def test_validation_cache_skips_only_what_passed(tmp_path):
    """A cache hit skips the registry checks (no torch import); any edit re-runs them."""
    import subprocess

    cat = tmp_path / "catalogue"
    cat.mkdir()
    shutil.copy(TOY, cat / TOY.name)
    cache = tmp_path / "validated"
    code = ("import sys; from pathlib import Path; from workflow.catalogue import load_catalogue; "
            f"load_catalogue(sorted(Path({str(cat)!r}).glob('*.yaml')), cache=Path({str(cache)!r})); "
            "print('torch' in sys.modules)")
    run = lambda: subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)  # noqa: E731
    first = run()
    assert first.stdout.strip() == "True" and cache.exists()
    assert run().stdout.strip() == "False"                                  # cached: no torch
    (cat / TOY.name).write_text((cat / TOY.name).read_text().replace("arch: toy_autoencoder", "arch: mamba3", 1))
    bad = run()
    assert bad.returncode != 0 and "mamba3" in bad.stderr                    # edited: checked again


def test_load_paper_without_registry_checks_imports_no_torch():
    """registry_checks=False (the per-paper track and judge steps) skips the registry checks at
    every scale too: the steps of a run whose Snakefile validated the catalogue import no torch."""
    import subprocess

    code = ("import sys; from workflow.catalogue import load_paper; "
            f"lp = load_paper({str(TOY)!r}, registry_checks=False); "
            "n = sum(len(lp.jobs(s)) for s in ('smoke', 'small', 'full')); "
            "print(n > 0, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]


def _bad_arch(text: str) -> str:
    return text.replace("arch: toy_autoencoder", "arch: mamba3", 1)


def test_deferred_checks_pass_and_fill_the_cache(tmp_path):
    """A catalogue the cache does not vouch for: papers at once, registry checks in the background;
    once they pass the cache vouches, and the next load defers nothing."""
    cat = tmp_path / "catalogue"
    cat.mkdir()
    shutil.copy(TOY, cat / TOY.name)
    cache = tmp_path / "validated"
    papers, pending = C.load_catalogue_deferred([cat / TOY.name], cache=cache)
    assert list(papers) == [PAPER] and pending is not None
    assert pending.problems() == [] and pending.problems() == []          # waits once, then remembers
    assert cache.exists()
    papers2, pending2 = C.load_catalogue_deferred([cat / TOY.name], cache=cache)
    assert pending2 is None and list(papers2) == [PAPER]


@pytest.mark.parametrize("fork", [True, False], ids=["fork", "spawn"])
def test_deferred_checks_find_registry_problems(tmp_path, fork):
    cat = tmp_path / "catalogue"
    cat.mkdir()
    (cat / TOY.name).write_text(_bad_arch(TOY.read_text()))
    cache = tmp_path / "validated"
    papers, deferred = C.load_catalogue_deferred([cat / TOY.name], cache=cache)
    assert list(papers) == [PAPER]                                        # the quick checks pass
    assert deferred.problems() and not cache.exists()                    # the registry's do not
    pending = C.PendingChecks([cat / TOY.name], cache, "k", fork=fork)
    (msg,) = pending.problems()
    assert msg.startswith(f"{cat / TOY.name}: experiments[0].models[0].arch: 'mamba3' is not a known architecture")
    assert not cache.exists()


def test_deferred_checks_list_every_problem_when_a_quick_check_fails(tmp_path):
    cat = tmp_path / "catalogue"
    cat.mkdir()
    (cat / "a.yaml").write_text(_bad_arch(TOY.read_text()).replace(f"id: {PAPER}", "id: a", 1))
    (cat / "b.yaml").write_text(TOY.read_text().replace(f"id: {PAPER}", "id: wrong", 1))
    with pytest.raises(CatalogueError) as info:
        C.load_catalogue_deferred(sorted(cat.glob("*.yaml")), cache=tmp_path / "validated")
    msg = str(info.value)
    assert "'mamba3' is not a known architecture" in msg and "differs from the file name" in msg


@pytest.mark.parametrize("fork", [True, False], ids=["fork", "spawn"])
def test_deferred_checks_run_here_when_the_checker_dies(tmp_path, monkeypatch, fork):
    import subprocess

    cat = tmp_path / "catalogue"
    cat.mkdir()
    (cat / TOY.name).write_text(_bad_arch(TOY.read_text()))
    if fork:
        monkeypatch.setattr(C.load, "_answer", lambda *a: os._exit(3))       # the forked checker dies
    else:
        real = subprocess.Popen
        monkeypatch.setattr(subprocess, "Popen", lambda cmd, **kw: real([sys.executable, "-c", "raise SystemExit(3)"], **kw))
    pending = C.PendingChecks([cat / TOY.name], tmp_path / "validated", "k", fork=fork)
    (msg,) = pending.problems()
    assert "'mamba3' is not a known architecture" in msg


def test_a_checker_stopped_by_ctrl_c_is_not_redone_at_exit(tmp_path, monkeypatch):
    """At exit, a checker that an interrupt stopped is not redone (the run is ending; the cache stays
    empty, so the next run checks); before the first job it is (onstart must not run jobs unchecked)."""
    import signal

    cat = tmp_path / "catalogue"
    cat.mkdir()
    (cat / TOY.name).write_text(_bad_arch(TOY.read_text()))
    cache = tmp_path / "validated"
    monkeypatch.setattr(C.load, "_answer", lambda *a: os.kill(os.getpid(), signal.SIGINT) or os._exit(9))
    ending = C.PendingChecks([cat / TOY.name], cache, "k", fork=True)
    assert ending.problems(ending=True) == [] and not cache.exists()
    starting = C.PendingChecks([cat / TOY.name], cache, "k", fork=True)
    (msg,) = starting.problems()
    assert "'mamba3' is not a known architecture" in msg
