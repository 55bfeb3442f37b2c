"""The real snakemake at smoke scale, once per session, in a temporary copy of the repository: the
smoke pipeline's tests, the browser tests of its reports and the MLflow server's view of its store
all read the same run."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COPY = ["Snakefile", "config.yaml", "rules", "envs", "schemas", "catalogue", "workflow", "modules", "profiles"]


def snakemake(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(cwd)}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def copy_repo(dst: Path) -> Path:
    """What a run needs of the repository, copied to dst (made if missing)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy(src, dst / name)
    return dst


@pytest.fixture(scope="session")
def repo(tmp_path_factory) -> Path:
    dst = copy_repo(tmp_path_factory.mktemp("repo"))
    # the paper's own target first, then the whole catalogue (adds the index)
    first = snakemake(dst, "--cores", "2", "toy_superposition", "--config", "scale=smoke")
    (dst / "first_run.txt").write_text(first.stdout + first.stderr)
    snakemake(dst, "--cores", "2", "--config", "scale=smoke")
    return dst


