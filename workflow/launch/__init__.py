"""How a job step gets run: launch machinery, not science. Nothing in here computes a result.

    python -m workflow.launch <step> [args]   every rule's command (__main__.py): run one step,
                                               forked from the run's fork server when there is one
    forkserver.py   one warm process that imported torch once; job steps fork from it
    hooks.py        what a Snakemake run does around its jobs (rules/launch.smk calls it): start
                    and stop the fork server, choose how a SLURM group runs its jobs
    slurm.py        a SLURM group's jobs run by the batch step's own Snakemake (slurm_group_steps)
    gpu.py          one GPU per running job (device cuda): a lock file per visible GPU
    records.py      Snakemake's job records written by an earlier version of the rules, brought up
                    to date so that a changed command line does not rerun finished jobs

This package imports only the standard library at import time: `python -m workflow.launch` starts
in tens of milliseconds, before it hands its step to the fork server.
"""
