"""Training checkpoints: atomic writes into an undeclared ckpt/ folder beside the job's
declared outputs (Snakemake deletes declared outputs before a rerun; this folder it leaves
alone), and resume from the newest valid one.

A checkpoint holds the model, the optimizer, every RNG state (the data stream's generator
and torch's global generator), the step and the loss-history accumulators, so a resumed
run gives exactly the numbers of an uninterrupted one on a CPU. It also holds the job's
config hash: a checkpoint of another config is never resumed.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

KEEP = 2
_NAME = re.compile(r"^step-(\d+)\.pt$")


def save(ckpt_dir: Path, step: int, state: dict) -> Path:
    import torch

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / f"step-{step:09d}.pt"
    fd, tmp = tempfile.mkstemp(dir=ckpt_dir, prefix=".tmp-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for old in checkpoints(ckpt_dir)[:-KEEP]:
        old.unlink(missing_ok=True)
    return final


def checkpoints(ckpt_dir: Path) -> list[Path]:
    """Checkpoint files, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def load_latest(ckpt_dir: Path, config_hash: str, log=print) -> dict | None:
    """The newest checkpoint that loads and belongs to this config; None for a clean start."""
    import torch

    for path in reversed(checkpoints(ckpt_dir)):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or "step" not in state or "model" not in state:
                raise ValueError("not a training checkpoint")
        except Exception as e:  # noqa: BLE001 - truncated or corrupt files raise many kinds
            log(f"checkpoint {path.name} is unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}); "
                "trying an older one")
            continue
        if state.get("config_hash") != config_hash:
            log(f"checkpoint {path.name} belongs to another config; ignoring it")
            continue
        log(f"resuming from {path.name} (step {state['step']})")
        return state
    if checkpoints(ckpt_dir):
        log("no usable checkpoint; starting from scratch")
    return None
