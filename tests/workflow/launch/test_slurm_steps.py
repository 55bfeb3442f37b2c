"""slurm_group_steps=local: the SLURM plugin's batch steps run their jobs with the local executor."""
from __future__ import annotations

import types

import pytest

from workflow.launch.slurm import PLUGIN_ARGS, local_args, local_group_steps


def executor(pass_command_as_script=False, array_jobs=()):
    return types.SimpleNamespace(
        workflow=types.SimpleNamespace(executor_settings=types.SimpleNamespace(
            pass_command_as_script=pass_command_as_script)),
        array_jobs=set(array_jobs), logger=types.SimpleNamespace(info=lambda msg: None))


def test_the_installed_plugin_gives_batch_steps_the_local_executor():
    plugin = pytest.importorskip("snakemake_executor_plugin_slurm")

    class Executor(plugin.Executor):      # a subclass: the plugin's own class stays as it is
        pass

    assert plugin.Executor.additional_general_args(executor()) == PLUGIN_ARGS
    assert local_group_steps(Executor)
    patched = Executor.additional_general_args
    assert local_group_steps(Executor) and Executor.additional_general_args is patched    # idempotent
    assert Executor.additional_general_args(executor()) == "--executor local"
    # the script-on-stdin setting belongs to srun steps: not passed to the local executor
    assert Executor.additional_general_args(executor(pass_command_as_script=True)) == "--executor local"
    # job arrays need the jobstep executor (their tasks read --slurm-jobstep-array-execs)
    assert Executor.additional_general_args(executor(array_jobs={"train"})) == PLUGIN_ARGS
    assert plugin.Executor.additional_general_args(executor()) == PLUGIN_ARGS


def test_another_plugin_version_is_left_alone_and_told():
    class Other:
        def additional_general_args(self):
            return "--executor slurm-jobstep --jobs 4"

    said = []
    original = Other.additional_general_args
    assert not local_group_steps(Other, log=said.append)
    assert Other.additional_general_args is original
    assert "slurm_group_steps=srun" in said[0] and "--jobs 4" in said[0]


def test_local_args_keep_what_is_not_the_jobstep_executors():
    assert local_args(PLUGIN_ARGS + " --slurm-jobstep-pass-command-as-script --verbose") == "--executor local --verbose"
