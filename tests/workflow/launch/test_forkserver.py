"""The fork server (workflow/launch/forkserver.py) and its client (workflow/launch/__main__.py): a job forked from the
warm server is the job a fresh process runs: same numbers, same log, same exit status, same
answer to signals."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from workflow import checkpoint
from workflow.launch.forkserver import request

CFG = {"task": {"name": "superposition", "n_features": 12, "sparsity": 0.9},
       "model": {"arch": "toy_autoencoder", "hidden": 3},
       "train": {"steps": 200, "batch_size": 256, "lr": 3e-3, "optimizer": "adamw", "weight_decay": 0.01,
                 "momentum": 0.0, "schedule": "cosine", "warmup_steps": 20, "grad_clip": 1.0, "log_every": 7,
                 "converged_rel_drop": 0.02}, "seed": 3}


def env(root, sock=None, **extra):
    e = {k: v for k, v in os.environ.items()
         if k not in ("CLAIMCHECK_FORKSERVER", "CLAIMCHECK_FORKSERVER_JOB", "CLAIMCHECK_FORKSERVER_STARTING")}
    e.update({"PYTHONPATH": str(root), **extra})
    if sock:
        e["CLAIMCHECK_FORKSERVER"] = str(sock)
    return e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = Path(__file__).resolve().parents[3]
    d = tmp_path_factory.mktemp("fs")
    sock = d / "fs.sock"
    log = open(d / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "workflow.launch.forkserver", "serve", "--socket", str(sock),
                             "--idle-timeout", "300"], env=env(root), stdout=log, stderr=log, cwd=d)
    deadline = time.time() + 120
    while time.time() < deadline and request(str(sock), "ping") is None:
        assert proc.poll() is None, (d / "server.log").read_text()
        time.sleep(0.1)
    assert request(str(sock), "ping")["ok"]
    yield sock
    assert request(str(sock), "stop")["ok"]
    proc.wait(timeout=30)
    log.close()
    assert not sock.exists()                      # it cleans up its socket


def train_cmd(cfg, out, *more):
    return [sys.executable, "-m", "workflow.launch", "train", "--config", json.dumps(cfg), "--out", str(out),
            "--device", "cpu", *more]


def test_a_forked_job_equals_a_fresh_process(server, root, tmp_path):
    direct = subprocess.run(train_cmd(CFG, tmp_path / "a"), env=env(root), capture_output=True, text=True, timeout=120)
    served = subprocess.run(train_cmd(CFG, tmp_path / "b"), env=env(root, server), capture_output=True, text=True,
                            timeout=120)
    assert direct.returncode == served.returncode == 0, served.stderr
    a, b = (json.loads((tmp_path / x / "train.json").read_text()) for x in "ab")
    assert a["history"] == b["history"] and a["final_loss"] == b["final_loss"]
    wa, wb = (torch.load(tmp_path / x / "model.pt", weights_only=True) for x in "ab")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # the job's output reached the client's stderr (the rule's log file), not the server's
    assert "final loss" in served.stderr and "training on cpu" in served.stderr
    before = request(str(server), "ping")["served"]
    subprocess.run(train_cmd(CFG, tmp_path / "c"), env=env(root, server), capture_output=True, timeout=120)
    assert request(str(server), "ping")["served"] == before + 1   # it did run in the server


def test_exit_status_and_output_come_back(server, root, tmp_path):
    bad = subprocess.run([sys.executable, "-m", "workflow.launch", "judge", "--no-such-flag"], env=env(root, server),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "the following arguments are required" in bad.stderr
    log = tmp_path / "job.log"
    with open(log, "w") as f:
        ok = subprocess.run([sys.executable, "-m", "workflow.launch", "train", "--help"], env=env(root, server),
                            stdout=f, stderr=subprocess.STDOUT, timeout=60)
    assert ok.returncode == 0 and "usage: python -m workflow.train" in log.read_text()
    unknown = subprocess.run([sys.executable, "-m", "workflow.launch", "rm"], env=env(root, server),
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "one of train" in unknown.stderr


def test_no_server_runs_the_step_directly(root, tmp_path):
    for sock in (None, tmp_path / "nobody.sock"):
        out = subprocess.run([sys.executable, "-m", "workflow.launch", "train", "--help"], env=env(root, sock),
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "usage: python -m workflow.train" in out.stdout


def test_a_step_in_another_slurm_job_never_uses_the_server(server, root, tmp_path):
    """With the SLURM executor the server runs beside Snakemake (no SLURM job) for the local rules,
    and sbatch exports its variables to every job: a step inside a SLURM job must run there."""
    served = lambda: request(str(server), "ping")["served"]      # noqa: E731
    cases = [({"CLAIMCHECK_FORKSERVER_JOB": "", "SLURM_JOB_ID": "42"}, False),     # a job; server outside
             ({"CLAIMCHECK_FORKSERVER_JOB": "7", "SLURM_JOB_ID": "42"}, False),    # another job's server
             ({"CLAIMCHECK_FORKSERVER_JOB": "42", "SLURM_JOB_ID": "42"}, True),    # its own allocation's
             ({"CLAIMCHECK_FORKSERVER_JOB": ""}, True)]                            # login node, local rule
    for extra, uses_server in cases:
        e = env(root, server, **extra)
        if "SLURM_JOB_ID" not in extra:
            e.pop("SLURM_JOB_ID", None)
        before = served()
        out = subprocess.run([sys.executable, "-m", "workflow.launch", "train", "--help"], env=e,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "usage: python -m workflow.train" in out.stdout, (extra, out.stderr)
        assert served() == before + uses_server, extra


def test_start_records_the_slurm_job_it_runs_in(tmp_path, monkeypatch):
    from workflow.launch import forkserver
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    monkeypatch.setattr("subprocess.Popen", lambda *a, **k: None)    # record only; start nothing
    monkeypatch.setattr(forkserver, "request", lambda *a, **k: None)
    monkeypatch.delenv("CLAIMCHECK_FORKSERVER", raising=False)
    forkserver.start(str(tmp_path / "s.sock"))
    assert os.environ["CLAIMCHECK_FORKSERVER_JOB"] == "99" and os.environ["CLAIMCHECK_FORKSERVER"]
    forkserver.stop()
    assert "CLAIMCHECK_FORKSERVER_JOB" not in os.environ and "CLAIMCHECK_FORKSERVER" not in os.environ


def test_only_the_snakemake_of_a_group_in_its_batch_step_starts_a_server():
    """The SLURM plugin runs a group job as `snakemake --executor slurm-jobstep --local-groupid N`
    in the batch step; every job of the group is an `srun` step running one more Snakemake."""
    from workflow.launch.forkserver import slurm_group_step

    batch = ["snakemake", "--target-jobs", "train:x", "--local-groupid", "3", "--executor", "slurm-jobstep",
             "--jobs", "1", "--mode", "remote"]
    job = {"SLURM_JOB_ID": "42"}
    assert slurm_group_step(True, batch, job)
    assert not slurm_group_step(False, batch, job)                                   # the submitting Snakemake
    assert not slurm_group_step(True, batch, {})                                     # not in an allocation
    assert not slurm_group_step(True, batch, {**job, "SLURM_STEP_ID": "0"})         # the srun step's Snakemake
    assert not slurm_group_step(True, [a for a in batch if a not in ("--local-groupid", "3")], job)  # one job
    # slurm_group_steps=local (workflow/launch/slurm.py): the batch step runs the group with the local executor
    local = ["snakemake", "--target-jobs", "train:x", "--local-groupid", "3", "--executor", "local", "--mode", "remote"]
    assert slurm_group_step(True, local, job)
    assert not slurm_group_step(True, local, {**job, "SLURM_STEP_ID": "0"})
    assert not slurm_group_step(True, [a.replace("local", "googlebatch") for a in local], job)   # another executor
    assert not slurm_group_step(True, ["snakemake", "--local-groupid", "3", "--mode", "remote"], job)


def test_a_step_waits_for_a_server_that_is_still_starting(root, tmp_path, monkeypatch):
    """Inside a SLURM group job the server starts beside the first step: the step waits for it
    (CLAIMCHECK_FORKSERVER_STARTING) instead of importing torch itself; a starting server that
    died, or one on another host, is not waited for."""
    from workflow.launch import forkserver

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(root))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    for k in ("CLAIMCHECK_FORKSERVER", "CLAIMCHECK_FORKSERVER_JOB", "CLAIMCHECK_FORKSERVER_STARTING"):
        monkeypatch.delenv(k, raising=False)
    sock = forkserver.start("s.sock", log_path=str(tmp_path / "fs.log"), preload="fit", wait=True)
    try:
        assert os.environ["CLAIMCHECK_FORKSERVER_STARTING"].startswith(socket.gethostname() + ":")
        assert not Path(sock).exists()          # still importing torch when the step starts
        out = subprocess.run([sys.executable, "-m", "workflow.launch", "train", "--help"], env=dict(os.environ),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "usage: python -m workflow.train" in out.stdout, out.stderr
        assert request(sock, "ping")["served"] == 1, (tmp_path / "fs.log").read_text()
    finally:
        forkserver.stop(sock)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for starting in (f"{socket.gethostname()}:{dead.pid}", f"another-host:{os.getpid()}"):
        t0 = time.monotonic()
        assert not forkserver.wait_until_ready(str(tmp_path / "none.sock"), starting, limit=30)
        assert time.monotonic() - t0 < 5, starting


def wait_for_checkpoints(d, n, proc):
    deadline = time.time() + 90
    while time.time() < deadline and len(checkpoint.checkpoints(d / "ckpt")) < n:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    assert len(checkpoint.checkpoints(d / "ckpt")) >= n


def job_pids(sock):
    return request(str(sock), "ping")["jobs"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_client_reaches_the_job(server, root, tmp_path, sig):
    cfg = json.loads(json.dumps(CFG))
    cfg["train"]["steps"] = 50000
    proc = subprocess.Popen(train_cmd(cfg, tmp_path / "j", "--checkpoint-steps", "50"), env=env(root, server),
                            stderr=subprocess.PIPE, text=True)
    wait_for_checkpoints(tmp_path / "j", 1, proc)
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode != 0
    assert ("checkpoint written" if sig == signal.SIGTERM else "interrupted") in err
    assert not (tmp_path / "j" / "train.json").exists()
    assert job_pids(server) == 0


def test_a_killed_client_stops_its_job(server, root, tmp_path):
    cfg = json.loads(json.dumps(CFG))
    cfg["train"]["steps"] = 50000
    log = open(tmp_path / "j.log", "w")
    proc = subprocess.Popen(train_cmd(cfg, tmp_path / "j", "--checkpoint-steps", "50"), env=env(root, server),
                            stderr=log)
    wait_for_checkpoints(tmp_path / "j", 1, proc)
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.time() + 60
    while time.time() < deadline and job_pids(server):
        time.sleep(0.1)
    assert job_pids(server) == 0                          # the orphaned job did not run on
    log.close()
    assert "checkpoint written" in (tmp_path / "j.log").read_text()   # it was told to stop, as a kill would


def test_idle_server_exits_and_removes_its_socket(root, tmp_path):
    sock = tmp_path / "idle.sock"
    proc = subprocess.Popen([sys.executable, "-m", "workflow.launch.forkserver", "serve", "--socket", str(sock),
                             "--idle-timeout", "1"], env=env(root), stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 0 and "stopping (idle)" in err and not sock.exists()


def test_the_setting_accepts_words_from_the_command_line(root):
    """`--config forkserver=false` reaches the Snakefile as the string 'false'."""
    from workflow.runconfig import config_problems

    for word, value in (("false", False), ("True", True), ("no", False), ("1", True)):
        cfg = {"forkserver": word}
        assert config_problems(cfg, root / "schemas/config.schema.yaml") == [] and cfg["forkserver"] is value
    bad = config_problems({"forkserver": "maybe"}, root / "schemas/config.schema.yaml")
    assert bad == ["config: forkserver: 'maybe' is not valid; allowed: true or false "
                   "(set it with --config forkserver=...)"]


def preload_in_fresh_python(preload: str, report: str) -> tuple[object, str]:
    """Run the server's preload in a fresh interpreter; (the JSON that `report` prints, stderr)."""
    code = ("import sys, json; from workflow.launch import forkserver as f; "
            f"f._preload(f.PRELOADS[{preload!r}], lambda s: print(s, file=sys.stderr)); " + report)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1]), res.stderr


def test_preload_covers_the_registries_without_reading_the_environment():
    """Every task and model module is preloaded except the two that load the pretrained
    transformer (its import reads HF_HUB_OFFLINE, which a job may set differently), and the
    collector's schema lookup is warmed once in the server."""
    out, err = preload_in_fresh_python("all", (
        "import mlflow.store.db.utils as u; "
        "print(json.dumps({'mods': f.registry_modules(), 'hf': [m for m in ('transformers', 'huggingface_hub') if m in sys.modules], "
        "'cached': getattr(u._get_latest_schema_revision, '_claimcheck_cached', False), "
        "'hits': u._get_latest_schema_revision.cache_info().currsize}))"))
    assert "modules.tasks.copy" in out["mods"] and "modules.models.mamba" in out["mods"]
    assert "modules.tasks.wordpiece_text" not in out["mods"] and "modules.models.pretrained_minilm" not in out["mods"]
    assert out["hf"] == []
    assert out["cached"] and out["hits"] == 1
    assert "not preloaded" not in err and "not warmed" not in err, err


def test_the_fit_preload_leaves_out_what_only_the_per_paper_steps_need():
    """A SLURM job's server (`--preload fit`) starts beside the job's first step on the same CPUs:
    torch and the engine's fit steps, but not MLflow, matplotlib, scikit-learn, torch._dynamo or
    the registry's model and task modules (each step imports its own)."""
    mods, err = preload_in_fresh_python("fit", (
        "print(json.dumps(sorted(m for m in ('torch', 'workflow.train', 'workflow.evaluate', 'workflow.probe', "
        "'mlflow', 'matplotlib', 'sklearn', 'torch._dynamo', 'modules.models.mamba', 'modules.tasks.copy') "
        "if m in sys.modules)))"))
    assert mods == ["torch", "workflow.evaluate", "workflow.probe", "workflow.train"]
    assert "not preloaded" not in err, err


def test_the_local_preload_serves_the_local_rules_without_torch():
    """The server of a SLURM run's main Snakemake (`--preload local`) runs only the local rules on
    the login node: the collector, judge and report steps, whose modules it imports, and not torch,
    scikit-learn or the registries, which none of them imports."""
    mods, err = preload_in_fresh_python("local", (
        "import mlflow.store.db.utils as u; "
        "print(json.dumps([sorted(m for m in ('torch', 'sklearn', 'modules.models', 'modules.tasks', 'mlflow', "
        "'matplotlib', 'scipy.stats', 'workflow.tracking', 'workflow.judge', 'workflow.report', "
        "'sqlalchemy.dialects.sqlite', 'matplotlib.pyplot') if m in sys.modules), "
        "u._get_latest_schema_revision.cache_info().currsize, __import__('matplotlib').get_backend()]))"))
    assert mods == [["matplotlib", "matplotlib.pyplot", "mlflow", "scipy.stats", "sqlalchemy.dialects.sqlite",
                     "workflow.judge", "workflow.report", "workflow.tracking"], 1, "Agg"]
    assert "not preloaded" not in err and "not warmed" not in err, err
