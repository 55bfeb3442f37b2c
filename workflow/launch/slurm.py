"""How the jobs of a group run inside their SLURM allocation (config `slurm_group_steps`).

The SLURM executor plugin submits a group of jobs (profiles/slurm groups a fit's train, evaluate
and probe jobs; `--group-components fit=N` packs N fits) as one sbatch job whose batch step runs
`python -m snakemake --executor slurm-jobstep --jobs 1 --local-groupid ...`. That Snakemake runs
each job of the group as `srun ... python -m snakemake --target-jobs <job>`: one job step and one
more Snakemake start per job (about 1.1 s here: Snakemake, and the plugin's pandas, imported
again), one job at a time. For fits of seconds that is most of the sbatch job's time.

`slurm_group_steps: local` (the default) has the batch step's Snakemake run the group with
Snakemake's local executor instead: it runs each job's shell command itself, in the allocation, as
many at once as `--cores` allows (for a group, the `--cores` its sbatch job was sized for; without
`--cores`, every CPU the allocation lets the process use), and a group's steps fork from the
allocation's fork server (workflow/launch/forkserver.py). The jobs then are not separate `srun` steps:
`sacct`/`sstat` show one step per sbatch job, and SLURM's cgroup bounds the allocation as a whole.
The same holds for a job that is in no group (a rule left out of profiles/slurm's `groups:`): its
sbatch job's batch step runs it. `slurm_group_steps: srun` keeps the plugin's own behaviour.

The plugin has no setting for this, so `local_group_steps` replaces the executor arguments that it
gives the batch step (`Executor.additional_general_args`), in the main Snakemake process before the
first job is submitted. It leaves the plugin alone, and says so, if those arguments are not the
ones it expects (another plugin version).
"""
from __future__ import annotations

import sys
import types

PLUGIN_ARGS = "--executor slurm-jobstep --jobs 1"     # what plugin 2.8 gives every batch step
LOCAL_ARGS = "--executor local"


def local_args(plugin_args: str) -> str:
    """The batch step's arguments with the local executor: the plugin's executor and --jobs 1
    replaced, its `--slurm-jobstep-*` settings (which only srun steps use) dropped."""
    rest = plugin_args.replace(PLUGIN_ARGS, "", 1).split()
    return " ".join([LOCAL_ARGS, *(a for a in rest if not a.startswith("--slurm-jobstep-"))])


def local_group_steps(executor_cls=None, log=None) -> bool:
    """Make the SLURM executor plugin's batch steps run their jobs with the local executor.
    Idempotent. True when it did; False, with a message, when the plugin's batch-step arguments
    are not the expected ones (then nothing changes)."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if executor_cls is None:
        from snakemake_executor_plugin_slurm import Executor as executor_cls
    current = executor_cls.additional_general_args
    if getattr(current, "_claimcheck_local", False):
        return True
    probe = _probe_args(current)
    if probe is None or PLUGIN_ARGS not in probe:
        log(f"slurm_group_steps=local: the SLURM executor plugin gives its batch steps {probe!r}, not "
            f"{PLUGIN_ARGS!r} (another plugin version?), so every job keeps the plugin's srun step. "
            f"Set --config slurm_group_steps=srun to silence this.")
        return False

    def additional_general_args(self):
        args = current(self)
        if PLUGIN_ARGS not in args:
            return args
        if getattr(self, "array_jobs", None):
            # array tasks read their commands from a --slurm-jobstep-array-execs argument that only
            # the jobstep executor understands: a run that submits arrays keeps srun steps throughout
            if not getattr(self, "_claimcheck_told", False):
                self._claimcheck_told = True
                self.logger.info("slurm_group_steps=local is off for this run: it submits job arrays "
                                 "(slurm-array-jobs), whose tasks need the plugin's own job steps.")
            return args
        return local_args(args)

    additional_general_args._claimcheck_local = True
    executor_cls.additional_general_args = additional_general_args
    return True


def _probe_args(method) -> str | None:
    """What the plugin's method returns for an executor with its default settings (it reads only
    executor_settings.pass_command_as_script), or None if it cannot be called that way."""
    fake = types.SimpleNamespace(workflow=types.SimpleNamespace(
        executor_settings=types.SimpleNamespace(pass_command_as_script=False)))
    try:
        return method(fake)
    except Exception:
        return None
