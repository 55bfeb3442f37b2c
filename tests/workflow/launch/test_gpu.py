"""GPU slots with a faked device list: distinct GPUs per running job, released on any exit."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

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
