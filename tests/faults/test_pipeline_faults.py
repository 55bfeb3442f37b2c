"""Faults in a real snakemake run: a NaN loss, a job that raises, a dead tracking store,
two runs at once, Ctrl-C. Nothing is lost, the report renders and says why."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench.pipeline import copy_repo

pytestmark = pytest.mark.e2e

CATALOGUE = {
    "paper": {"id": "faulty", "title": "Faults", "year": 2024},
    "experiments": [{
        "id": "exp", "task": {"name": "superposition", "n_features": 6, "sparsity": 0.5},
        "models": [{"id": "relu", "arch": "toy_autoencoder", "hidden": 2},
                   {"id": "linear", "arch": "toy_autoencoder", "hidden": 2, "activation": "none"}],
        "sweep": {"train.lr": [0.01, 1.0e30]},
        "train": {"steps": 40, "batch_size": 64, "lr": 0.01, "optimizer": "sgd"},
        "evaluate": {"metrics": ["features_represented", "loss"]},
        "seeds": 2}],
    "claims": [
        {"id": "healthy", "text": "t", "source": "Figure 1", "kind": "threshold",
         "measure": {"experiment": "exp", "model": "relu", "metric": "loss", "at": {"train.lr": 0.01}},
         "op": ">=", "value": 0, "no_control": "a fault-injection test"},
        {"id": "nan", "text": "t", "source": "Figure 1", "kind": "ordering",
         "measure": {"experiment": "exp", "metric": "loss", "at": {"train.lr": 1.0e30}}, "order": ["relu", "linear"],
         "no_control": "a fault-injection test"},
        {"id": "raises", "text": "t", "source": "Figure 1", "kind": "threshold",
         "measure": {"experiment": "exp", "model": "linear", "metric": "loss", "at": {"train.lr": 0.01}},
         "op": ">=", "value": 0, "no_control": "a fault-injection test"},
    ],
}
FAILING = "faulty/exp/linear/train.lr=0.01/seed1"


def env(**extra):
    e = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **extra}
    e.pop("MLFLOW_TRACKING_URI", None)
    return e


def snakemake(cwd, *args, check=True, **extra):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=cwd, env=env(PYTHONPATH=str(cwd), **extra),
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture
def repo(tmp_path):
    copy_repo(tmp_path, catalogue=False)
    (tmp_path / "catalogue" / "faulty.yaml").write_text(yaml.safe_dump(CATALOGUE, sort_keys=False))
    return tmp_path


def one_seed(repo):
    """Fewer jobs for the tests that need a run, not a particular job."""
    path = repo / "catalogue" / "faulty.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["experiments"][0]["seeds"] = 1
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def verdicts(repo):
    v = json.loads((repo / "results/small/faulty/verdicts.json").read_text())
    return {c["id"]: c for c in v["claims"]}


def test_nan_and_raise_are_reported_and_retried(repo):
    snakemake(repo, "--keep-going", CLAIMCHECK_INJECT_FAULT=f"raise:{FAILING}")
    v = verdicts(repo)
    assert v["healthy"]["verdict"] != "not_run"
    assert v["nan"]["verdict"] == "not_run" and "diverged at step" in v["nan"]["reason"]
    assert v["raises"]["verdict"] == "not_run"
    assert f"RuntimeError: injected fault in {FAILING}" in v["raises"]["reason"]
    html = (repo / "reports/small/faulty/index.html").read_text()
    assert "diverged at step" in html and "RuntimeError: injected fault" in html
    # the next run retries exactly the failed job (and what depends on it), not the diverged ones
    dry = snakemake(repo, "-n").stdout
    assert "rule train:" in dry and dry.count("rule train:") == 1 and "linear/train.lr=0.01/seed1" in dry
    snakemake(repo)
    v = verdicts(repo)
    assert v["raises"]["verdict"] != "not_run"
    assert v["nan"]["verdict"] == "not_run"
    assert "Nothing to be done" in snakemake(repo, "-n").stdout


def test_dead_tracking_store_loses_no_result(repo):
    one_seed(repo)
    snakemake(repo, "--config", "tracking_uri=http://127.0.0.1:9", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    runs = json.loads((repo / "results/small/faulty/runs.json").read_text())
    assert runs["runs"] == {} and runs["error"]
    html = (repo / "reports/small/faulty/index.html").read_text()
    assert "MLflow logging failed" in html and "workflow.tracking sync" in html
    sync = subprocess.run([sys.executable, "-m", "workflow.tracking", "sync", "--scale", "small", "--uri",
                           f"sqlite:///{repo}/mlflow.db", "faulty"], cwd=repo, env=env(PYTHONPATH=str(repo)),
                          capture_output=True, text=True, timeout=300)
    assert sync.returncode == 0, sync.stderr
    runs = json.loads((repo / "results/small/faulty/runs.json").read_text())
    assert len(runs["runs"]) == 4 and not runs["error"]
    # the report picks the run ids up on the next run (the judge never waited for them)
    snakemake(repo, "--config", "tracking_uri=sqlite:///mlflow.db")
    joined = json.loads((repo / "reports/small/faulty/verdicts.json").read_text())
    assert {c["id"]: c for c in joined["claims"]}["healthy"]["runs"]


def test_two_runs_at_once_and_ctrl_c(repo):
    one_seed(repo)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2"]
    first = subprocess.Popen(cmd, cwd=repo, env=env(PYTHONPATH=str(repo), CLAIMCHECK_INJECT_FAULT="sleep:3"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((repo / "logs").rglob("train.log")):
        time.sleep(0.2)
    second = snakemake(repo, check=False)
    assert second.returncode != 0
    assert "cannot be locked" in second.stdout + second.stderr
    # Ctrl-C on the first: running jobs are stopped, nothing half-written is kept
    time.sleep(1)
    os.killpg(first.pid, signal.SIGINT)
    first.communicate(timeout=120)
    for f in (repo / "results").rglob("*.json"):
        json.loads(f.read_text())                      # every file there is complete
    # the next run finishes the work, without --unlock or manual cleanup
    out = snakemake(repo, "--rerun-incomplete")
    assert (repo / "reports/small/faulty/index.html").exists(), out.stderr[-2000:]


def test_a_result_the_catalogue_does_not_list_is_refused_by_name(repo):
    """Asking for a job folder of a point (or seed, model, paper) that no catalogue entry lists
    names the folder, the catalogue file and the fix, and runs nothing."""
    for target, where in (("results/small/faulty/exp/relu/train.lr=0.5/seed0/train.json", "catalogue/faulty.yaml"),
                          ("results/small/faulty/exp/relu/train.lr=0.01/seed7/eval.json", "catalogue/faulty.yaml"),
                          ("results/small/nopaper/exp/relu/default/seed0/train.json", "catalogue/")):
        proc = snakemake(repo, "-n", target, check=False)
        out = proc.stdout + proc.stderr
        fit = target.split("/", 2)[2].rsplit("/", 1)[0]
        assert proc.returncode != 0, out[-2000:]
        assert f"no job {fit} in {where} at scale small" in out and "or add them there" in out, out[-2000:]
    assert not (repo / "results").exists()
