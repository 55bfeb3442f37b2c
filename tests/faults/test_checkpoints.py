"""Preemption-safe training: stop, resume, and get exactly the uninterrupted numbers."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from workflow import checkpoint
from workflow.train import Interrupted, train

CFG = {"task": {"name": "superposition", "n_features": 12, "sparsity": 0.9},
       "model": {"arch": "toy_autoencoder", "hidden": 3},
       "train": {"steps": 300, "batch_size": 256, "lr": 3e-3, "optimizer": "adamw", "weight_decay": 0.01,
                 "momentum": 0.0, "schedule": "cosine", "warmup_steps": 20, "grad_clip": 1.0, "log_every": 7,
                 "converged_rel_drop": 0.02}, "seed": 3}
quiet = dict(log=lambda s: None)


def weights(d):
    return torch.load(d / "model.pt", weights_only=True)


def same(a, b):
    assert a["history"] == b["history"] and a["final_loss"] == b["final_loss"]


def test_resume_equals_uninterrupted(tmp_path):
    (tmp_path / "ref").mkdir()
    ref = train(CFG, tmp_path / "ref", **quiet)
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(Interrupted) as e:
        train(CFG, run, ckpt_every_steps=50, stop_after=130, **quiet)
    assert e.value.step == 130
    assert [p.name for p in checkpoint.checkpoints(run / "ckpt")] == ["step-000000100.pt", "step-000000130.pt"]
    out = train(CFG, run, ckpt_every_steps=50, **quiet)
    assert out["resumed_from_step"] == 130
    same(out, ref)
    for k, v in weights(tmp_path / "ref").items():
        assert torch.equal(v, weights(run)[k]), k


def test_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path):
    (tmp_path / "ref").mkdir()
    ref = train(CFG, tmp_path / "ref", **quiet)
    with pytest.raises(Interrupted):
        train(CFG, tmp_path, ckpt_every_steps=50, stop_after=130, **quiet)
    newest = checkpoint.checkpoints(tmp_path / "ckpt")[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])      # truncated
    logs = []
    out = train(CFG, tmp_path, ckpt_every_steps=50, log=logs.append)
    assert out["resumed_from_step"] == 100
    assert any("unreadable" in m and newest.name in m for m in logs)
    same(out, ref)


def test_garbage_checkpoints_mean_a_clean_start(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "step-000000050.pt").write_bytes(b"not a checkpoint")
    logs = []
    out = train(CFG, tmp_path, log=logs.append)
    assert out["resumed_from_step"] is None
    assert any("starting from scratch" in m for m in logs)


def test_checkpoint_of_another_config_is_ignored(tmp_path):
    with pytest.raises(Interrupted):
        train(CFG, tmp_path, ckpt_every_steps=50, stop_after=60, **quiet)
    other = json.loads(json.dumps(CFG))
    other["train"]["lr"] = 1e-3
    logs = []
    out = train(other, tmp_path, log=logs.append)
    assert out["resumed_from_step"] is None and any("another config" in m for m in logs)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_job_resumes_to_the_same_numbers(tmp_path, root, sig):
    """The job as Snakemake runs it: a process, killed mid-run, then run again."""
    cfg = json.loads(json.dumps(CFG))
    cfg["train"].update(steps=2000, batch_size=32)   # long enough to be killed mid-run
    args = [sys.executable, "-m", "workflow.train", "--config", json.dumps(cfg), "--out", str(tmp_path / "job"),
            "--checkpoint-steps", "100", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(checkpoint.checkpoints(tmp_path / "job" / "ckpt")) < 2:
        time.sleep(0.05)
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode != 0
    if sig == signal.SIGTERM:
        assert "checkpoint written" in err
    assert not (tmp_path / "job" / "train.json").exists()
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resuming from step-" in done.stderr
    (tmp_path / "ref2").mkdir()
    ref = train(cfg, tmp_path / "ref2", **quiet)
    got = json.loads((tmp_path / "job" / "train.json").read_text())
    assert got["resumed_from_step"] and got["history"] == ref["history"]
    for k, v in weights(tmp_path / "ref2").items():
        assert torch.equal(v, weights(tmp_path / "job")[k]), k
