"""The real snakemake, at smoke scale, in a temporary copy of the repository."""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3

import pytest

from .conftest import snakemake

pytestmark = pytest.mark.e2e


def test_report_and_verdicts(repo):
    v = json.loads((repo / "results/smoke/toy_superposition/verdicts.json").read_text())
    assert v["scale"] == "smoke" and len(v["claims"]) >= 4
    kinds = {c["kind"] for c in v["claims"]}
    assert kinds == {"value", "threshold", "ordering", "trend", "ratio"}
    # the judge reads no MLflow file; the report's copy joins each claim's jobs with their runs
    joined = json.loads((repo / "reports/smoke/toy_superposition/verdicts.json").read_text())
    for c, j in zip(v["claims"], joined["claims"]):
        assert c["verdict"] in ("reproduced", "not_reproduced", "inconclusive", "not_run")
        assert "runs" not in c and j["verdict"] == c["verdict"]
        assert c["verdict"] == "not_run" or (j["runs"] and len(j["runs"]) == len(c["jobs"]))
    html = (repo / "reports/smoke/toy_superposition/index.html").read_text()
    for c in v["claims"]:
        assert f'id="claim-{c["id"]}"' in html
    assert "data:image/svg+xml;base64," in html                  # figures inline: self-contained
    assert "<script" not in html
    md = (repo / "reports/smoke/toy_superposition/report.md").read_text()
    assert "| claim | verdict | paper | ours | ours − paper |" in md
    assert (repo / "reports/smoke/toy_superposition/claims.csv").exists() and (repo / "reports/smoke/claims.csv").exists()
    index = (repo / "reports/smoke/index.html").read_text()
    assert 'href="toy_superposition/index.html"' in index
    assert "Verdicts at scale smoke" in (repo / "first_run.txt").read_text()   # the console table


def test_every_paper_is_judged_and_probes_ran(repo):
    """The whole catalogue at smoke scale: every paper has its verdicts, report and index row, and
    every job of an experiment with probes has its probe file, whose values reached the report."""
    import yaml

    ids = [yaml.safe_load(f.read_text())["paper"]["id"] for f in sorted((repo / "catalogue").glob("*.yaml"))]
    index = (repo / "reports/smoke/index.html").read_text()
    probed = 0
    for pid in ids:
        v = json.loads((repo / f"results/smoke/{pid}/verdicts.json").read_text())
        assert v["claims"] and all(c["verdict"] in ("reproduced", "not_reproduced", "inconclusive", "not_run")
                                   for c in v["claims"]), pid
        assert f'href="{pid}/index.html"' in index
        for pr in (repo / f"results/smoke/{pid}").rglob("probe.json"):
            assert json.loads(pr.read_text())["status"] == "ok", pr
            probed += 1
        html = (repo / f"reports/smoke/{pid}/index.html").read_text()
        for c in v["claims"]:
            # smoke trains fewer steps than any experiment's budget: a value or a trend, which more
            # training could move either way, is never decided on it; a pass that stands says why
            if c["under_budget"] and c["kind"] in ("value", "trend"):
                assert c["verdict"] in ("inconclusive", "not_run"), (pid, c["id"], c["reason"])
            if c["verdict"] == "reproduced" and c["under_budget"]:
                assert "could only strengthen" in c["reason"], (pid, c["id"], c["reason"])
            if "." in c["metric"]:                                 # a probe metric: judged, not missing
                assert c["verdict"] != "not_run", (pid, c["id"], c.get("reason"))
                assert f'id="claim-{c["id"]}"' in html
    assert probed >= 3
    # each evaluation records the metrics' facts and the chance level beside every value
    ev = json.loads(next((repo / "results/smoke/mimetic_init/mqar").rglob("eval.json")).read_text())
    assert ev["metric_facts"]["accuracy"]["better"] == "higher"
    assert 0.2 < ev["points"][0]["chance"]["accuracy"] < 0.6


def test_every_job_reached_mlflow(repo):
    v = json.loads((repo / "reports/smoke/toy_superposition/verdicts.json").read_text())
    db = sqlite3.connect(repo / "mlflow.db")
    (exp_id,) = db.execute("select experiment_id from experiments where name='toy_superposition/smoke'").fetchone()
    runs = [r[0] for r in db.execute("select run_uuid from runs where experiment_id=?", (exp_id,))]
    n_jobs = v["jobs"]["total"]
    assert len(runs) == n_jobs + 1                                # one per train job + the experiment's parent
    tags = dict(db.execute("select key, value from tags where run_uuid=?", (v["claims"][0]["runs"][0],)).fetchall())
    for key in ("paper", "experiment", "model", "seed", "scale", "point", "git_sha", "git_dirty", "config_hash",
                "mlflow.parentRunId"):
        assert key in tags, key
    assert tags["paper"] == "toy_superposition" and tags["scale"] == "smoke"
    (n_loss,) = db.execute("select count(*) from metrics where run_uuid=? and key='train/loss'",
                           (v["claims"][0]["runs"][0],)).fetchone()
    assert n_loss == 100                                          # the loss history, not just the last value
    (n_params,) = db.execute("select count(*) from params where run_uuid=?", (v["claims"][0]["runs"][0],)).fetchone()
    assert n_params >= 10


def test_rerun_does_nothing_and_a_claim_edit_only_rejudges(repo):
    out = snakemake(repo, "--cores", "2", "--config", "scale=smoke", "-n")
    assert "Nothing to be done" in out.stdout + out.stderr
    cat = repo / "catalogue/toy_superposition.yaml"
    text = cat.read_text()
    cat.write_text(text.replace("tolerance: 0.5", "tolerance: 0.6", 1))
    try:
        out = snakemake(repo, "--cores", "2", "--config", "scale=smoke", "-n")
        stats = re.search(r"Job stats:\n(.*?)\n\n", out.stdout, re.S).group(1)
        rules = {line.split()[0] for line in stats.splitlines()[2:] if line.split() and line.split()[0] != "total"}
        assert rules == {"judge", "report", "report_index", "all"}, stats
    finally:
        cat.write_text(text)


def _stats(out) -> dict[str, int]:
    m = re.search(r"Job stats:\n(.*?)\n\n", out.stdout, re.S)
    rows = [line.split() for line in m.group(1).splitlines()[2:]] if m else []
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[0] != "total"}


def test_the_previous_release_s_finished_jobs_do_not_rerun(repo, tmp_path):
    """This release changed every rule's command (python -m workflow.launch; run-time settings as
    resources; the fit folder derived from the output). Records as the previous release wrote them
    would rerun every job; rewritten once (workflow/launch/records.py), none reruns."""
    from workflow.launch import records

    d = tmp_path / "r"
    shutil.copytree(repo, d, symlinks=True)                  # keeps the files' times
    meta = d / ".snakemake" / "metadata"
    seen, trained = {}, 0
    for path in (p for p in meta.rglob("*") if p.is_file()):
        rec = json.loads(path.read_text())
        rule = rec["rule"]
        if rule not in records.UPGRADES:
            continue
        old, new, fit_dir_left = records.UPGRADES[rule]
        assert rec["code"] == new, rule                      # the table names what the rules write today
        seen[rule] = seen.get(rule, 0) + 1
        trained += records.output_of(path, meta).endswith("/train.json")
        rec["code"] = old                                    # ... and what the previous release wrote
        if fit_dir_left:
            rec["params"] = sorted(rec["params"] + [repr(os.path.dirname(records.output_of(path, meta)))])
        path.write_text(json.dumps(rec))
    assert set(seen) == set(records.UPGRADES), seen
    stamp = d / ".snakemake" / records.STAMP
    stamp.write_text(records.VERSION)                        # as if already upgraded: nothing rewritten
    out = snakemake(d, "--cores", "2", "--config", "scale=smoke", "-n")
    assert _stats(out).get("train") == trained > 0, out.stdout[-2000:]   # the records alone would rerun all
    stamp.unlink()
    out = snakemake(d, "--cores", "2", "--config", "scale=smoke", "-n")
    text = out.stdout + out.stderr
    assert "Nothing to be done" in text, text[-3000:]
    assert f"{sum(seen.values())} of Snakemake's job records" in text
    # a run-time setting is not what to reproduce: changing it reruns nothing either
    out = snakemake(d, "--cores", "2", "-n", "--config", "scale=smoke", "device=cpu", "checkpoint_seconds=7",
                    "forkserver=false", "slurm_group_steps=srun")
    assert "Nothing to be done" in out.stdout + out.stderr


@pytest.mark.parametrize("how", ["--forceall", "-n"], ids=["run", "dry_run"])
def test_bad_catalogue_stops_before_any_job(repo, how):
    """The registry checks of a changed catalogue run beside the DAG: a run waits for them before
    its first job (onstart), a dry run (no hooks) fails with their message at exit."""
    cat = repo / "catalogue/toy_superposition.yaml"
    text = cat.read_text()
    cat.write_text(text.replace("arch: toy_autoencoder", "arch: mamba3", 1))
    try:
        out = snakemake(repo, "--cores", "2", "--config", "scale=smoke", how, check=False)
    finally:
        cat.write_text(text)
    err = out.stdout + out.stderr
    assert out.returncode == 1, err[-2000:]
    assert "experiments[0].models[0].arch: 'mamba3' is not a known architecture" in err
    assert "toy_superposition.yaml" in err
    assert "Traceback" not in err
    if how == "--forceall":
        assert "rule train" not in err                                    # no job started


def test_bad_config_is_refused(repo):
    out = snakemake(repo, "--cores", "2", "--config", "scale=huge", "-n", check=False)
    assert out.returncode != 0 and "huge" in out.stdout + out.stderr
    out = snakemake(repo, "--cores", "2", "--config", "papers=[nope]", "-n", check=False)
    assert out.returncode != 0 and "'nope' not in catalogue/" in out.stdout + out.stderr


def test_a_fit_two_jobs_share_is_trained_once(repo):
    """Jobs of the same resolved config and seed (here two papers' GPT on Python source, and
    Read-Process-Write runs that two experiments both list) train once: the others copy that fit
    (rules/train.smk, copy_fit), and the copy is the fit, to the byte, its reports say so, and its
    MLflow run names the fit it copies."""
    from workflow.catalogue import load_catalogue, shared_fits

    papers = load_catalogue(sorted((repo / "catalogue").glob("*.yaml")))
    copies = shared_fits(j for lp in papers.values() for j in lp.jobs("smoke"))
    assert any(c.split("/")[2] != s.split("/")[2] for c, s in copies.items())   # across papers
    db = sqlite3.connect(repo / "mlflow.db")
    for dst, src in copies.items():
        rec = json.loads((repo / dst / "train.json").read_text())
        orig = json.loads((repo / src / "train.json").read_text())
        assert rec["copy_of"] == src and "copy_of" not in orig
        assert rec["config_hash"] == orig["config_hash"] and rec["history"] == orig["history"]
        assert (repo / dst / "model.pt").read_bytes() == (repo / src / "model.pt").read_bytes()
        log = (repo / dst.replace("results/", "logs/", 1) / "train.log").read_text()
        assert f"as {src}, which trains it: copied its fit" in log and "training on" not in log
        (n,) = db.execute("select count(*) from tags where key='copy_of' and value=?", (src,)).fetchone()
        assert n >= 1
    for paper in {d.split("/")[2] for d in copies}:
        v = json.loads((repo / f"results/smoke/{paper}/verdicts.json").read_text())
        n = sum(d.split("/")[2] == paper for d in copies)
        assert v["jobs"]["copied"] == n
        for page in ("index.html", "report.md"):
            assert f"({n} copied from a job of the same config)" in (repo / f"reports/smoke/{paper}/{page}").read_text()
