"""What a Snakemake run does around its jobs; rules/launch.smk calls these from its hooks.

A run's settings that say how to run, not what to reproduce (`forkserver`, `slurm_group_steps`, `compile`;
docs/running.md, "Run-time settings"), are read here and nowhere else in the Snakefiles.
"""
from __future__ import annotations

import os

from ..train import COMPILE_ENV
from . import forkserver, gpu, records
from .gpu import has_gpu
from .slurm import local_group_steps


def gpus_per_job(device: str) -> int:
    """What a train, evaluate or probe job asks of Snakemake's `gpu` resource: one when it will run
    on a GPU (device cuda, or auto on a machine that shows one; no torch import), else none."""
    return 1 if device == "cuda" or (device == "auto" and has_gpu()) else 0


def _executor(workflow) -> str:
    return getattr(workflow.executor_plugin, "name", "") or ""


def at_parse(workflow, config) -> None:
    """While the Snakefile is read, before Snakemake looks at what is done. The run's own Snakemake
    brings the job records of the previous release up to date (records.py). Inside a SLURM allocation,
    the Snakemake that runs a group of jobs (profiles/slurm groups a fit's train, evaluate and probe)
    starts one server for the group's steps, which wait for it rather than import torch each. It exits
    with this process: a Snakemake that a cluster job spawns runs no onstart/onsuccess hooks."""
    # every job's GPU slots (gpu.py): an environment variable, not the command line, so that a change
    # never reruns a finished job; the jobs (and the fork server's children) inherit it
    os.environ[gpu.PER_DEVICE_ENV] = str(config["gpu_jobs_per_device"])
    # the same for torch.compile (workflow/train.py reads it): how a fit computes, not what it is
    mode = config["compile"]
    os.environ[COMPILE_ENV] = {False: "", True: "default"}.get(mode, mode) if isinstance(mode, bool) else str(mode)
    if not workflow.remote_exec:
        records.upgrade(".snakemake")     # Snakemake's state folder, in the working directory
    if config["forkserver"] and forkserver.slurm_group_step(workflow.remote_exec):
        job = os.environ.get("SLURM_JOB_ID", "")
        forkserver.start(log_path=f"logs/forkserver/slurm-{job}.log", preload="fit", wait=True)


def on_start(workflow, config) -> None:
    """Before the first job. A local run's jobs fork from one warm process instead of importing torch
    each. With the SLURM executor that server runs the local rules only (no torch: --preload local),
    and an sbatch job that runs a group runs its jobs itself (slurm_group_steps: local). Other
    cluster executors, and a Snakemake inside a cluster job, start none."""
    executor = _executor(workflow)
    if executor == "slurm" and config["slurm_group_steps"] == "local":
        local_group_steps()
    if config["forkserver"] and not workflow.remote_exec and (workflow.local_exec or executor == "slurm"):
        forkserver.start(log_path="logs/forkserver.log", preload="local" if executor == "slurm" else "all")


def on_end() -> None:
    """After the last job, whether the run succeeded or not."""
    forkserver.stop()
