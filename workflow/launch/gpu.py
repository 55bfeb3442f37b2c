"""GPU slots on a workstation: each running job gets its own GPU.

Snakemake counts `--resources gpu=N` but never says which GPU a job should use (snakemake
issue 281), so two jobs would share GPU 0. A job calls `claim_gpu()` before it touches CUDA:
it takes the first free slot of a pool of lock files (one per visible GPU, under
.snakemake/gpu-slots/) with a non-blocking `flock`, and sets CUDA_VISIBLE_DEVICES to that GPU.
The lock belongs to the process, so the operating system releases it on any exit, a
SIGKILL included: no slot is ever leaked. Under SLURM, a job that runs as its own `srun` step
already has its GPUs from SLURM, so the pool is skipped. A job that runs in the batch step of its
sbatch job (`slurm_group_steps: local`, workflow/launch/slurm.py: the jobs of a group share the
allocation) takes a slot of a pool of that SLURM job's own, over the GPUs the allocation shows.

The device list is, in order: CLAIMCHECK_GPUS (comma-separated ids; tests fake GPUs on a
CPU machine with it), the CUDA_VISIBLE_DEVICES the job started with, or `nvidia-smi -L`.

A model of 100k parameters uses a few percent of a modern GPU, so a GPU may hold several jobs at
once: the run-time setting `gpu_jobs_per_device` (default 1; the Snakefile hands it to every job
as CLAIMCHECK_GPU_JOBS_PER_DEVICE) gives each GPU that many slots. Jobs fill the first slot of
every GPU before a second slot of any, so they spread evenly; bound the run's concurrency with
`--resources gpu=<GPUs x gpu_jobs_per_device>`.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

SLOT_DIR = Path(".snakemake") / "gpu-slots"
_HELD: list = []  # open lock files, kept for the life of the process


def visible_gpus() -> list[str]:
    for var in ("CLAIMCHECK_GPUS", "CUDA_VISIBLE_DEVICES"):
        value = os.environ.get(var)
        if value is not None and value.strip():
            return [g.strip() for g in value.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]
    return []


def has_gpu() -> bool:
    """Cheap check at DAG-build time (no torch import): does this machine show a GPU?"""
    return bool(visible_gpus())


PER_DEVICE_ENV = "CLAIMCHECK_GPU_JOBS_PER_DEVICE"


def jobs_per_device() -> int:
    """How many jobs one GPU holds at once: CLAIMCHECK_GPU_JOBS_PER_DEVICE (the run-time setting
    gpu_jobs_per_device), default 1."""
    raw = os.environ.get(PER_DEVICE_ENV, "").strip() or "1"
    try:
        k = int(raw)
    except ValueError:
        k = 0
    if k < 1:
        raise ValueError(f"{PER_DEVICE_ENV}={raw!r}: give a whole number of at least 1 "
                         f"(`--config gpu_jobs_per_device=N`)")
    return k


def _slot_name(gpu: str, j: int) -> str:
    return f"gpu-{gpu}.lock" if j == 0 else f"gpu-{gpu}.{j}.lock"


def claim_gpu(slot_dir: Path = SLOT_DIR, wait_s: float = 24 * 3600, log=print,
              per_device: int | None = None) -> str | None:
    """Hold a free GPU slot for the rest of this process and point CUDA_VISIBLE_DEVICES at it.
    Each GPU has `per_device` slots (default: jobs_per_device()). Returns the GPU id, or None when
    there is nothing to claim (no GPU, or an srun step of SLURM)."""
    job = os.environ.get("SLURM_JOB_ID")
    if job and not os.environ.get("CLAIMCHECK_GPUS"):
        if os.environ.get("SLURM_STEP_ID"):
            return None                 # an srun step: SLURM gave it its GPUs
        slot_dir = slot_dir / f"slurm-{job}"   # the jobs of one allocation share its GPUs, one each
    gpus = visible_gpus()
    if not gpus:
        return None
    k = per_device if per_device is not None else jobs_per_device()
    slot_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    said = False
    slots = [(gpu, j) for j in range(k) for gpu in gpus]      # one job on every GPU before a second on any
    while True:
        for gpu, j in slots:
            f = open(slot_dir / _slot_name(gpu, j), "a+")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
            _HELD.append(f)
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            return gpu
        if time.monotonic() > deadline:
            per = f" ({k} jobs per GPU)" if k > 1 else ""
            raise TimeoutError(f"no free GPU among {gpus}{per} after {wait_s:.0f} s")
        if not said:
            each = f" ({len(gpus)} GPUs x {k} jobs each)" if k > 1 else ""
            log(f"all {len(slots)} GPU slots{each} are busy; waiting (run snakemake with --resources gpu={len(slots)})")
            said = True
        time.sleep(0.5)


def release_gpu() -> None:
    while _HELD:
        f = _HELD.pop()
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
