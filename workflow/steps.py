"""Helpers shared by the job entry points (train, evaluate): files, provenance, devices."""
from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any



def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically: a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=False, default=_json_default)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def job_parser(prog: str, description: str, config_help: str):
    """The command line of a step that reads a trained job's folder (evaluate, probe)."""
    import argparse

    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--dir", required=True, type=Path, help="the train job's folder")
    p.add_argument("--config", required=True, help=config_help)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--attempt", default="", help="retry token from the Snakefile (recorded)")
    return p


def untrained_reason(tr: dict) -> str | None:
    """Why a train record gives no model to evaluate or probe ("training diverged at step 7: ..."), or None."""
    if tr["status"] == "ok":
        return None
    reason = f"training {tr['status']}" + (f" at step {tr['diverged_at']}" if tr.get("diverged_at") else "")
    return reason + (f": {tr['error']}" if tr.get("error") else "")


def failure_line(e: BaseException) -> str:
    """Print the traceback (it goes to the job's log) and return the error's last line, for its record."""
    import traceback

    traceback.print_exc()
    return (traceback.format_exception_only(type(e), e)[-1].strip() or type(e).__name__)[:500]


def load_weights(model, path: str | Path, device: str = "cpu") -> None:
    """Load a train job's model.pt into `model`; a pretrained model (saved as {}) keeps its own."""
    import torch

    state = torch.load(path, map_location=device, weights_only=True)
    if getattr(model, "pretrained", False) and not state:
        return
    model.load_state_dict(state)


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)



_GIT: dict | None = None


def git_info() -> dict:
    """Commit and dirty flag of the repo (results/, reports/ and the MLflow store are ignored)."""
    global _GIT
    if _GIT is None:
        try:
            sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
            st = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
            _GIT = {
                "git_sha": sha.stdout.strip() if sha.returncode == 0 else "unknown",
                "git_dirty": bool(st.stdout.strip()) if st.returncode == 0 else None,
            }
        except (OSError, subprocess.SubprocessError):
            _GIT = {"git_sha": "unknown", "git_dirty": None}
    return _GIT


PACKAGES = ("torch", "numpy", "scipy", "pydantic", "snakemake", "mlflow", "claimcheck")


def package_versions() -> dict[str, str]:
    """Installed versions, read from package metadata (nothing is imported)."""
    from importlib import metadata

    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def provenance(device: str) -> dict:
    """Where and with what a job ran: git state, host, device, Python and package versions."""
    import os

    return {
        **git_info(),
        "host": socket.gethostname(),
        "device": device,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_step_id": os.environ.get("SLURM_STEP_ID"),   # None in a batch step (slurm_group_steps: local)
        "python": platform.python_version(),
        "packages": package_versions(),
    }


def pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("device: cuda was asked for in config.yaml, but torch sees no CUDA device; "
                         "use device: auto or cpu, or install a CUDA build of torch")
    return requested


def device_fields(device: str) -> dict:
    """What a result file records of the device it was computed on: the kind a claim's
    `only_at.device` names (cpu, cuda) and the hardware's own name."""
    import platform

    import torch

    kind = device.split(":", 1)[0]
    name = torch.cuda.get_device_name(torch.device(device)) if kind == "cuda" else (platform.processor() or platform.machine())
    return {"device": kind, "device_name": name}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
