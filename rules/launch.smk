# How the jobs are started, and what the run does before its first job and after its last
# (workflow/launch/hooks.py). No rules here.
from workflow.console import print_verdicts
from workflow.launch import hooks

# Run-time settings (docs/running.md; not in config.yaml, defaults in the schema) reach a job's
# command as its resources, so that a change to them never reruns a finished job. Train, evaluate and probe jobs ask Snakemake for a GPU
# when they will run on one; bound the concurrency with --resources gpu=N (each running job then
# holds its own GPU: workflow/launch/gpu.py).
DEVICE = config["device"]
GPU_PER_JOB = hooks.gpus_per_job(DEVICE)
CHECKPOINT_SECONDS = str(config["checkpoint_seconds"])

# the previous release's job records brought up to date (workflow/launch/records.py); inside a SLURM
# allocation, the Snakemake that runs a group of jobs starts the group's fork server now
hooks.at_parse(workflow, config)


onstart:
    # a catalogue that changed since it last passed: its registry checks end before any job starts
    if CATALOGUE_CHECKS is not None:
        CATALOGUE_CHECKS.stop_on_problems()
    hooks.on_start(workflow, config)


onsuccess:
    hooks.on_end()
    print_verdicts(SCALE, SELECTED)


onerror:
    hooks.on_end()
