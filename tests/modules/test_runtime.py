"""modules/runtime.py: glibc malloc settings that stop freed tensors' pages being faulted in again."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from modules.runtime import MMAP_THRESHOLD, TRIM_THRESHOLD, malloc_env

ROOT = Path(__file__).resolve().parents[2]
glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's")

# chunked linear attention at the benchmark's size, 30 calls: prints the page faults of the last 20
FAULTS = """
import resource, sys, torch
from modules.kernels import linear_attn_chunked
from modules.runtime import keep_freed_memory, malloc_tuning_state
torch.set_num_threads(1)
if sys.argv[1] == "tuned":
    assert keep_freed_memory(), malloc_tuning_state()
q, k, v = (torch.randn(8, 1024, 4, 16) for _ in range(3))
for i in range(30):
    if i == 10:
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    linear_attn_chunked(q, k, v, output_final_state=True)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def _faults(mode: str, env=None) -> int:
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


# glibc's own behaviour depends on the heap's history (it raises its mmap threshold from 128 KiB
# as blocks are freed): 1,000 faults per call in the benchmark's process, 100 in another. Pinned at
# that initial 128 KiB, it is deterministic: every buffer above it is mapped and unmapped per call.
PINNED_DEFAULT = {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072"}
# a 2 MiB buffer faulted in again is 512 faults; re-faulting one per call would be 20 x 512.
# Fewer than a quarter of that: at most an occasional new high-water mark of the heap
FEW = 20 * 128


@glibc
def test_tuned_malloc_reuses_freed_pages_instead_of_faulting_them_in_again():
    default, tuned = _faults("default", PINNED_DEFAULT), _faults("tuned")
    assert default > 20 * 500, default
    assert tuned < FEW, (tuned, default)


@glibc
def test_the_tunables_given_to_an_execd_job_have_the_same_effect():
    assert _faults("default", malloc_env({})) < FEW


def test_tuning_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("CLAIMCHECK_MALLOC_TUNING", "0")
    from modules import runtime

    assert runtime.keep_freed_memory() is False
    assert runtime.malloc_tuning_state().startswith("disabled")
    assert malloc_env({"A": "1"}) == {"A": "1"}


def test_malloc_env_keeps_the_users_own_tunables():
    env = malloc_env({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=5:glibc.cpu.x86_shstk=off"})
    parts = env["GLIBC_TUNABLES"].split(":")
    assert f"glibc.malloc.mmap_threshold={MMAP_THRESHOLD}" in parts
    assert "glibc.malloc.trim_threshold=5" in parts and f"glibc.malloc.trim_threshold={TRIM_THRESHOLD}" not in parts
    assert "glibc.cpu.x86_shstk=off" in parts
