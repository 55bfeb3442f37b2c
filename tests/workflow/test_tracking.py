"""MLflow logging from result files: idempotent, complete, and harmless when the store is down."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy
import pytest

from workflow.tracking import flatten, log_paper

from .fakes import make_paper, plant


def values(model, point, seed):
    return {"loss": 1.0 + seed, "features_represented": 2.0}


def test_flatten():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": "1", "a.c": "[1, 2]", "d": "null"}


def test_log_is_idempotent_and_complete(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lp = make_paper(tmp_path)
    plant(tmp_path, lp, "smoke", values)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = log_paper(lp.path, "smoke", uri, tmp_path)
    jobs = lp.jobs("smoke")
    assert set(first["runs"]) == {j.dir for j in jobs}
    again = log_paper(lp.path, "smoke", uri, tmp_path)
    assert again["runs"] == first["runs"] and again["parents"] == first["parents"]

    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([first["experiment_id"]], max_results=1000)
    assert len(runs) == len(jobs) + 1                     # no duplicates; one parent
    child = client.get_run(first["runs"][jobs[0].dir])
    assert child.data.tags["paper"] == "fake" and child.data.tags["seed"] == str(jobs[0].seed)
    assert child.data.tags["mlflow.parentRunId"] == next(iter(first["parents"].values()))
    assert child.data.metrics["eval/loss"] == 1.0 + jobs[0].seed
    assert child.data.params["task.name"] == "superposition"
    arts = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert arts == {"train.json", "eval.json"}
    # a changed result is logged again as a new run; the old one stays
    d = tmp_path / jobs[0].dir
    ev = json.loads((d / "eval.json").read_text())
    ev["points"][0]["metrics"]["loss"] = 9.0
    (d / "eval.json").write_text(json.dumps(ev))
    third = log_paper(lp.path, "smoke", uri, tmp_path)
    assert third["runs"][jobs[0].dir] != first["runs"][jobs[0].dir]
    assert all(third["runs"][j.dir] == first["runs"][j.dir] for j in jobs[1:])


def test_unreachable_store_loses_nothing(tmp_path, root):
    lp = make_paper(tmp_path)
    plant(tmp_path, lp, "smoke", values)
    out = tmp_path / "runs.json"
    env = {**os.environ, "PYTHONPATH": str(root), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
           "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([sys.executable, "-m", "workflow.tracking", "log", "--paper", str(lp.path), "--scale", "smoke",
                           "--uri", "http://127.0.0.1:9", "--out", str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "workflow.tracking sync" in proc.stderr and "Traceback" not in proc.stderr
    rec = json.loads(out.read_text())
    assert rec["runs"] == {} and "Connection refused" in rec["error"] or "refused" in rec["error"].lower()
    assert all((tmp_path / j.dir / "eval.json").exists() for j in lp.jobs("smoke"))


def test_a_locked_store_is_retried_with_backoff(tmp_path, monkeypatch):
    """Another process holds the sqlite store for a few seconds: logging waits, then succeeds."""
    import sqlite3
    import threading
    import time

    monkeypatch.chdir(tmp_path)
    lp = make_paper(tmp_path)
    plant(tmp_path, lp, "smoke", values)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    log_paper(lp.path, "smoke", uri, tmp_path)                  # creates the store
    for job in lp.jobs("smoke"):                                 # new results to log
        ev = tmp_path / job.dir / "eval.json"
        rec = json.loads(ev.read_text())
        rec["points"][0]["metrics"]["loss"] += 0.5
        ev.write_text(json.dumps(rec))
    holder = sqlite3.connect(tmp_path / "mlflow.db", timeout=0, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    threading.Timer(3.0, holder.rollback).start()
    t0 = time.time()
    result = log_paper(lp.path, "smoke", uri, tmp_path)
    assert time.time() - t0 >= 2.5                               # it waited for the lock
    assert len(result["runs"]) == len(lp.jobs("smoke"))


def test_long_histories_and_many_params_are_logged_whole(tmp_path, monkeypatch):
    """Params and metrics share batches within MLflow's limits (100 params, 1,000 entries a call)."""
    monkeypatch.chdir(tmp_path)
    lp = make_paper(tmp_path)
    plant(tmp_path, lp, "smoke", values)
    job = lp.jobs("smoke")[0]
    tr_path = tmp_path / job.dir / "train.json"
    tr = json.loads(tr_path.read_text())
    tr["config"]["extra"] = {f"k{i}": i for i in range(150)}
    n = 1234
    # warm-up, a constant stretch, a step decay
    lr = [1e-4 * (i + 1) for i in range(10)] + [1e-3] * 600 + [1e-4] * (n - 610)
    tr["history"] = {"step": list(range(n)), "loss": [1.0 / (i + 1) for i in range(n)], "lr": lr}
    tr_path.write_text(json.dumps(tr))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = log_paper(lp.path, "smoke", uri, tmp_path)

    from mlflow import MlflowClient

    client = MlflowClient(uri)
    rid = result["runs"][job.dir]
    run = client.get_run(rid)
    assert sum(k.startswith("extra.") for k in run.data.params) == 150
    loss = client.get_metric_history(rid, "train/loss")
    assert len(loss) == n and sorted(m.step for m in loss) == list(range(n))
    # the lr is logged at the ends of its constant stretches only, so that MLflow's chart (straight
    # lines between points) draws the same curve: every logged value interpolates back exactly
    lr_log = sorted((m.step, m.value) for m in client.get_metric_history(rid, "train/lr"))
    assert len(lr_log) <= 10 + 2 + 2   # the warm-up's steps, and two ends per constant stretch
    xs, ys = [s for s, _ in lr_log], [v for _, v in lr_log]
    assert numpy.allclose(numpy.interp(range(n), xs, ys), lr, rtol=1e-12)
    assert run.data.metrics["eval/loss"] == 1.0 + job.seed


def test_run_ends_keeps_each_constant_stretch_s_ends():
    from workflow.tracking import _run_ends

    assert _run_ends([]) == [] and _run_ends([5]) == [0] and _run_ends([1, 1]) == [0, 1]
    assert _run_ends([1, 1, 1, 1]) == [0, 3]
    assert _run_ends([1, 2, 3]) == [0, 1, 2]
    assert _run_ends([3, 3, 3, 1, 1, 2]) == [0, 2, 3, 4, 5]


def test_mlflow_telemetry_is_off_unless_the_user_chose(monkeypatch):
    from workflow.tracking import _quiet_mlflow

    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    _quiet_mlflow()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")
    _quiet_mlflow()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false"


def test_tracking_steps_record_their_time_inside_mlflow(tmp_path, monkeypatch):
    """`log` puts mlflow_s in runs.json, `report` writes report-tracking.json beside it: the seconds the
    step spent inside MLflow (what `python -m bench pipeline` adds up), never more than the step took."""
    import time

    from workflow import tracking
    from bench.pipeline import _mlflow_seconds

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    lp = make_paper(tmp_path)
    plant(tmp_path, lp, "smoke", values)
    out = tmp_path / "results/smoke/fake/runs.json"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    t0 = time.perf_counter()
    assert tracking.main(["log", "--paper", str(lp.path), "--scale", "smoke", "--uri", uri, "--out", str(out)]) == 0
    took = time.perf_counter() - t0
    runs = json.loads(out.read_text())
    assert runs["error"] is None and 0 < runs["mlflow_s"] <= took
    (key, parent), = runs["parents"].items()
    verdicts = tmp_path / "results/smoke/fake/verdicts.json"
    job0 = sorted(runs["runs"])[0]
    verdicts.write_text(json.dumps({
        "paper": {"id": "fake", "title": "A fake paper", "year": 2020, "url": "https://example.org/p"}, "scale": "smoke",
        "counts": {"reproduced": 0, "not_reproduced": 0, "inconclusive": 3, "not_run": 0},
        "claims": [{"id": f"c{i}", "experiment": key.rsplit("/", 1)[1], "verdict": "inconclusive", "jobs": [job0],
                    "measured_text": f"0.{i} (1 seed)"} for i in range(3)]}))
    report = tmp_path / "reports"
    (report / "figures").mkdir(parents=True)
    for f in ("index.html", "report.md", "figures/a.png"):
        (report / f).write_text(f)
    assert tracking.main(["report", "--runs", str(out), "--verdicts", str(verdicts), "--dir", str(report)]) == 0
    rep = json.loads((tmp_path / "results/smoke/fake/report-tracking.json").read_text())
    assert rep["error"] is None and rep["parents"] == 1 and rep["mlflow_s"] > 0
    from mlflow import MlflowClient

    client = MlflowClient(uri)                  # the parent run: its claims' verdicts and the report
    assert {k: v for k, v in client.get_run(parent).data.tags.items() if k.startswith("claim.")} == \
        {f"claim.c{i}": "inconclusive" for i in range(3)}
    assert {a.path for a in client.list_artifacts(parent, "report")} == \
        {"report/verdicts.json", "report/index.html", "report/report.md", "report/figures"}
    assert [a.path for a in client.list_artifacts(parent, "report/figures")] == ["report/figures/a.png"]
    # the child runs a claim rests on carry its verdict and measured value; the experiment is
    # described and opens in the model-training view
    child = client.get_run(runs["runs"][job0]).data.tags
    assert child["claim.c1.verdict"] == "inconclusive" and child["claim.c1.measured"] == "0.1 (1 seed)"
    exp = client.get_experiment(runs["experiment_id"])
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "A fake paper" in exp.tags["mlflow.note.content"] and "inconclusive 3" in exp.tags["mlflow.note.content"]
    assert _mlflow_seconds(tmp_path / "results/smoke") == {"track": runs["mlflow_s"], "report": rep["mlflow_s"], "papers": 1}


def test_each_paper_logged_in_one_process_records_its_own_time_inside_mlflow(tmp_path, monkeypatch):
    """`sync` logs several papers (and scales) in one process: each runs.json counts its own seconds."""
    from workflow import tracking

    monkeypatch.chdir(tmp_path)
    lp = make_paper(tmp_path)
    plant(tmp_path, lp, "smoke", values)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setattr(tracking, "MLFLOW_S", [0.0])
    first = tracking.log_paper(lp.path, "smoke", uri)
    again = tracking.log_paper(lp.path, "smoke", uri)
    assert first["mlflow_s"] > 0 and again["mlflow_s"] > 0
    assert first["mlflow_s"] + again["mlflow_s"] == pytest.approx(tracking.MLFLOW_S[0])


def test_a_run_has_its_jobs_own_times_and_the_trained_model(tmp_path, monkeypatch):
    """Start and end are the training job's (not when the collector logged it), and model.pt is an artifact."""
    from datetime import datetime, timezone

    from mlflow import MlflowClient

    from workflow import tracking

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    lp = make_paper(tmp_path)
    plant(tmp_path, lp, "smoke", values)
    job = lp.jobs("smoke")[0]
    tr_path = tmp_path / job.dir / "train.json"
    tr = json.loads(tr_path.read_text())
    tr.update(wall_s=2.5, provenance={"start": "2026-01-02T03:04:05+0000", "end": "2026-01-02T03:04:08+0000"})
    tr_path.write_text(json.dumps(tr))
    (tmp_path / job.dir / "model.pt").write_bytes(b"\0" * 1000)
    out = tmp_path / "runs.json"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert tracking.main(["log", "--paper", str(lp.path), "--scale", "smoke", "--uri", uri, "--out", str(out)]) == 0
    rid = json.loads(out.read_text())["runs"][job.dir]
    client = MlflowClient(uri)
    run = client.get_run(rid)
    start = int(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp() * 1000)
    assert run.info.start_time == start and run.info.end_time - run.info.start_time == 2500
    assert "model.pt" in {a.path for a in client.list_artifacts(rid)}
    assert run.data.tags["model_path"].endswith(f"{job.dir}/model.pt")
