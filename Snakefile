# Reproduce paper claims from catalogue/*.yaml. Read README.md; the reference is in docs/.
#   snakemake --cores all                         every paper in config.yaml, default scale (small)
#   snakemake --cores all --config scale=smoke    every paper, CPU-sized
#   snakemake --cores all <paper id>              one paper (a rule per catalogue entry)
import os
import sys

from snakemake.utils import min_version, validate

from workflow.runconfig import config_problems
from workflow.console import print_problems
from workflow.forkserver import slurm_group_step, start as start_forkserver, stop as stop_forkserver
from workflow.slurm import local_group_steps

min_version("9.0")


configfile: "config.yaml"


if config_problems(config):
    print_problems(config_problems(config), what="config")
    sys.exit(1)


validate(config, "schemas/config.schema.yaml")


if config["forkserver"] and slurm_group_step(workflow.remote_exec):
    # the Snakemake that runs one group of jobs (profiles/slurm groups a fit's train, evaluate and probe
    # steps) inside its SLURM allocation: one server for those steps, which wait for it rather than import
    # torch each; it exits with this process (spawned Snakemakes run no onstart/onsuccess hooks)
    start_forkserver(log_path=f"logs/forkserver/slurm-{os.environ['SLURM_JOB_ID']}.log", preload="fit", wait=True)


include: "rules/common.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/probe.smk"
include: "rules/track.smk"
include: "rules/judge.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    localrule: True
    input:
        all_targets(),


onstart:
    # a catalogue that changed since it last passed: its registry checks end before any job starts
    if CATALOGUE_CHECKS is not None:
        CATALOGUE_CHECKS.stop_on_problems()
    # a local run's jobs fork from one warm process instead of importing torch each (workflow/forkserver.py);
    # with the SLURM executor it serves the local rules only (a step in a SLURM job never uses it); not
    # with other cluster executors, nor inside a job that a cluster node runs
    _executor = getattr(workflow.executor_plugin, "name", "")
    if _executor == "slurm" and config["slurm_group_steps"] == "local":
        # an sbatch job that runs a group runs its jobs itself, not as one srun + Snakemake each
        local_group_steps()
    if config["forkserver"] and not workflow.remote_exec and (workflow.local_exec or _executor == "slurm"):
        # with SLURM it runs only the local rules, which need no torch (--preload local)
        start_forkserver(log_path="logs/forkserver.log", preload="local" if _executor == "slurm" else "all")


onsuccess:
    stop_forkserver()
    print_verdicts(SCALE, SELECTED)


onerror:
    stop_forkserver()
