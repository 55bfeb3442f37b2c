"""The real snakemake at smoke scale, once per session, in a temporary copy of the repository: the
smoke pipeline's tests, the browser tests of its reports and the MLflow server's view of its store
all read the same run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.pipeline import copy_repo   # what a run needs of the repository (test_slurm imports it from here)


def snakemake(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(cwd)}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="session")
def repo(tmp_path_factory) -> Path:
    dst = copy_repo(tmp_path_factory.mktemp("repo"))
    # the paper's own target first, then the whole catalogue (adds the index)
    first = snakemake(dst, "--cores", "2", "toy_superposition", "--config", "scale=smoke")
    (dst / "first_run.txt").write_text(first.stdout + first.stderr)
    snakemake(dst, "--cores", "2", "--config", "scale=smoke")
    return dst


