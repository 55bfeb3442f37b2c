"""A real MLflow server on loopback: 8 tracking jobs log at once, the server dies mid-run and
comes back, `sync` fills the gaps, and every run, metric and artifact is there exactly once."""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.workflow.fakes import BASE, plant
from workflow.catalogue import load_paper

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
N_PAPERS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "workflow.tracking", "server", "--port", str(port),
                             "--store", f"sqlite:///{tmp}/server.db", "--artifacts", str(tmp / "artifacts"),
                             "--workers", "1"],
                            cwd=tmp, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError("the MLflow server did not start")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 9)
    proc.wait()


def test_server_outage_loses_nothing_and_duplicates_nothing(tmp_path):
    papers = []
    for i in range(N_PAPERS):
        doc = json.loads(json.dumps(BASE))
        doc["paper"]["id"] = f"fake{i}"
        path = tmp_path / "catalogue" / f"fake{i}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        lp = load_paper(path)
        plant(tmp_path, lp, "smoke", lambda m, p, s: {"loss": 1.0 + s, "features_represented": 2.0})
        for job in lp.jobs("smoke"):   # a loss history to log
            f = tmp_path / job.dir / "train.json"
            rec = json.loads(f.read_text())
            rec["history"] = {"step": list(range(1, 51)), "loss": [1.0 / k for k in range(1, 51)], "lr": [0.01] * 50}
            f.write_text(json.dumps(rec))
        papers.append(lp)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
           "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    logs = [subprocess.Popen([sys.executable, "-m", "workflow.tracking", "log", "--paper", str(lp.path), "--scale",
                              "smoke", "--uri", uri, "--out", str(tmp_path / f"runs-{lp.id}.json")],
                             cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True) for lp in papers]
    # kill the server once runs have started to arrive
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            n = sqlite3.connect(tmp_path / "server.db").execute("select count(*) from runs").fetchone()[0]
        except sqlite3.Error:
            n = 0
        if n >= 6:
            break
        time.sleep(0.1)
    stop(server)
    for p in logs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    failed = [lp.id for lp in papers if json.loads((tmp_path / f"runs-{lp.id}.json").read_text())["error"]]
    assert failed, "the outage should have cut some logging short"
    server = start_server(tmp_path, port)
    try:
        sync = subprocess.run([sys.executable, "-m", "workflow.tracking", "sync", "--scale", "smoke", "--uri", uri],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert sync.returncode == 0, sync.stderr
        from mlflow import MlflowClient

        client = MlflowClient(uri)
        for lp in papers:
            exp = client.get_experiment_by_name(f"{lp.id}/smoke")
            runs = client.search_runs([exp.experiment_id], max_results=1000)
            children = [r for r in runs if r.data.tags.get("result_hash") != "parent"]
            jobs = lp.jobs("smoke")
            assert sorted(r.data.tags["job_key"] for r in children) == sorted(j.dir for j in jobs)   # once each
            assert len(runs) == len(jobs) + 1
            for r in children:
                assert r.info.status == "FINISHED"
                assert len(client.get_metric_history(r.info.run_id, "train/loss")) == 50
                assert {a.path for a in client.list_artifacts(r.info.run_id)} == {"train.json", "eval.json"}
    finally:
        stop(server)


def _rest(port: int, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/{path}",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_the_smoke_runs_store_through_a_server(repo, tmp_path):
    """`mlflow server` on the smoke run's own store: the experiment opens in the model-training view
    and is described, each run lasts as long as its job did, and verdicts sit on the child runs."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workflow.tracking", "server", "--port", str(port),
                             "--store", f"sqlite:///{repo}/mlflow.db", "--artifacts", str(tmp_path / "artifacts"),
                             "--workers", "1"], cwd=repo, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert time.time() < deadline, "the MLflow server did not start"
                time.sleep(0.5)
        exp = _rest(port, "experiments/get-by-name?experiment_name=toy_superposition%2Fsmoke")["experiment"]
        tags = {t["key"]: t["value"] for t in exp.get("tags", [])}
        assert tags["mlflow.experimentKind"] == "custom_model_development"
        assert "Toy Models of Superposition" in tags["mlflow.note.content"]
        assert "Scale smoke" in tags["mlflow.note.content"]
        runs = _rest(port, "runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 1000})["runs"]
        children = [r for r in runs if any(t["key"] == "mlflow.parentRunId" for t in r["data"].get("tags", []))]
        assert children
        verdict_tags = 0
        for r in children:
            t = {x["key"]: x["value"] for x in r["data"]["tags"]}
            tr = json.loads((repo / t["job_key"] / "train.json").read_text())
            took = int(r["info"]["end_time"]) - int(r["info"]["start_time"])
            assert abs(took - 1000 * tr["wall_s"]) <= 2, (took, tr["wall_s"])      # the job's own time
            verdict_tags += sum(k.startswith("claim.") and k.endswith(".verdict") for k in t)
            assert t["model_path"].endswith("model.pt")
        assert verdict_tags > 0
    finally:
        stop(proc)
