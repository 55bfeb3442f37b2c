"""GPU slots with a faked device list: distinct GPUs per running job, released on any exit."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from workflow.launch.gpu import claim_gpu, release_gpu, visible_gpus

CHILD = """
import sys, time
from pathlib import Path
from workflow.launch.gpu import claim_gpu
gpu = claim_gpu(Path(sys.argv[1]), log=lambda s: print(s, flush=True))
import os
print("GOT", gpu, os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
time.sleep(float(sys.argv[2]))
"""


def spawn(slots, hold, root):
    env = {**os.environ, "CLAIMCHECK_GPUS": "0,1", "PYTHONPATH": str(root)}
    env.pop("SLURM_JOB_ID", None)
    return subprocess.Popen([sys.executable, "-c", CHILD, str(slots), str(hold)], env=env,
                            stdout=subprocess.PIPE, text=True)


def first_got(proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith("GOT"):
            return line.split()[1]
    raise AssertionError("no GPU claimed")


def test_device_list_from_env(monkeypatch):
    monkeypatch.setenv("CLAIMCHECK_GPUS", "2, 5")
    assert visible_gpus() == ["2", "5"]
    monkeypatch.setenv("CLAIMCHECK_GPUS", "")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == []


def test_each_job_gets_its_own_gpu_and_a_killed_job_frees_it(tmp_path, root):
    a = spawn(tmp_path, 60, root)
    b = spawn(tmp_path, 60, root)
    got = {first_got(a), first_got(b)}
    assert got == {"0", "1"}
    c = spawn(tmp_path, 1, root)
    assert "busy" in c.stdout.readline()           # the third waits ...
    a.send_signal(signal.SIGKILL)                  # ... until a holder dies, however it dies
    a.wait()
    assert first_got(c) in got
    c.wait(timeout=30)
    b.kill()
    b.wait()


def test_no_gpu_means_no_claim(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAIMCHECK_GPUS", "")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert claim_gpu(tmp_path) is None


def test_an_srun_step_keeps_the_gpus_slurm_gave_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    monkeypatch.delenv("CLAIMCHECK_GPUS", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert claim_gpu(tmp_path) is None and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert not any(tmp_path.iterdir())
    release_gpu()


BATCH_CHILD = """
import sys, time
from pathlib import Path
from workflow.launch.gpu import claim_gpu
print("GOT", claim_gpu(Path(sys.argv[1]), wait_s=0.1), flush=True)
time.sleep(30)
"""


def test_jobs_in_one_allocations_batch_step_share_its_gpus_one_each(tmp_path, root):
    """slurm_group_steps=local: a group's jobs run in the batch step, which sees all the
    allocation's GPUs; each takes one, from a pool of that SLURM job's own."""
    env = {**os.environ, "SLURM_JOB_ID": "42", "CUDA_VISIBLE_DEVICES": "3,5", "PYTHONPATH": str(root)}
    for var in ("SLURM_STEP_ID", "CLAIMCHECK_GPUS"):
        env.pop(var, None)
    procs = [subprocess.Popen([sys.executable, "-c", BATCH_CHILD, str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        got = {first_got(p) for p in procs}
        assert got == {"3", "5"}
        assert sorted(p.name for p in (tmp_path / "slurm-42").iterdir()) == ["gpu-3.lock", "gpu-5.lock"]
        third = subprocess.run([sys.executable, "-c", BATCH_CHILD.replace("time.sleep(30)", ""), str(tmp_path)],
                               env=env, capture_output=True, text=True, timeout=60)
        assert "no free GPU among ['3', '5']" in third.stderr    # both held: the third waits, here 0.1 s
    finally:
        for p in procs:
            p.kill()
            p.wait()


SHARE_CHILD = """
import sys, time
from pathlib import Path
from workflow.launch.gpu import claim_gpu
gpu = claim_gpu(Path(sys.argv[1]), log=lambda s: print(s, flush=True))
print("GOT", gpu, flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_jobs_per_device_gives_each_gpu_that_many_slots_filled_evenly(tmp_path, root):
    """gpu_jobs_per_device=2 on two faked GPUs: four jobs run at once, two on each GPU (the first
    slot of every GPU before a second of any), and a fifth waits, naming the four slots."""
    env = {**os.environ, "CLAIMCHECK_GPUS": "0,1", "PYTHONPATH": str(root), "CLAIMCHECK_GPU_JOBS_PER_DEVICE": "2"}
    env.pop("SLURM_JOB_ID", None)

    def start(hold):
        return subprocess.Popen([sys.executable, "-c", SHARE_CHILD, str(tmp_path), str(hold)], env=env,
                                stdout=subprocess.PIPE, text=True)

    procs = []
    got = []
    for _ in range(2):                      # one at a time: the order of slots is observable
        procs.append(start(60))
        got.append(first_got(procs[-1]))
    assert sorted(got) == ["0", "1"]        # spread: the second job went to the other GPU
    for _ in range(2):
        procs.append(start(60))
        got.append(first_got(procs[-1]))
    assert sorted(got) == ["0", "0", "1", "1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-0.1.lock", "gpu-0.lock", "gpu-1.1.lock", "gpu-1.lock"]
    fifth = start(1)
    line = fifth.stdout.readline()
    assert "all 4 GPU slots (2 GPUs x 2 jobs each) are busy" in line and "--resources gpu=4" in line
    procs[0].kill()
    procs[0].wait()
    assert first_got(fifth) == got[0]       # the dead job's GPU, through its freed slot
    fifth.wait(timeout=30)
    for p in procs[1:]:
        p.kill()
        p.wait()


def test_jobs_per_device_must_be_a_whole_number(monkeypatch):
    from workflow.launch.gpu import jobs_per_device

    monkeypatch.setenv("CLAIMCHECK_GPU_JOBS_PER_DEVICE", "3")
    assert jobs_per_device() == 3
    monkeypatch.delenv("CLAIMCHECK_GPU_JOBS_PER_DEVICE")
    assert jobs_per_device() == 1
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("CLAIMCHECK_GPU_JOBS_PER_DEVICE", bad)
        with pytest.raises(ValueError, match="gpu_jobs_per_device"):
            jobs_per_device()


def test_the_setting_reaches_every_job_and_a_bad_one_is_refused(monkeypatch, root):
    """The run's Snakemake puts gpu_jobs_per_device in the environment its jobs inherit; the
    config check refuses 0 with the key and how to set it."""
    from types import SimpleNamespace

    from workflow.launch import hooks
    from workflow.runconfig import config_problems

    monkeypatch.setenv("CLAIMCHECK_GPU_JOBS_PER_DEVICE", "1")     # so that the test's end restores it
    hooks.at_parse(SimpleNamespace(remote_exec=True), {"gpu_jobs_per_device": 3, "forkserver": False, "compile": False})
    assert os.environ["CLAIMCHECK_GPU_JOBS_PER_DEVICE"] == "3"
    problems = config_problems({"gpu_jobs_per_device": 0}, root / "schemas/config.schema.yaml")
    assert any("gpu_jobs_per_device: 0 is not valid" in p and "--config gpu_jobs_per_device=" in p for p in problems)
