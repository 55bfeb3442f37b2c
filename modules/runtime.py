"""Process-wide settings that make torch on a CPU spend its time on the math.

`keep_freed_memory()`: glibc's malloc hands every block above its mmap threshold (128 KiB at
start, adjusted as blocks are freed) back to the kernel when it is freed, and trims the top of
the heap once more than its trim threshold is free. A torch training step frees its activations
and allocates them again on the next step, so each step then pays the kernel to map and zero
those pages again. Measured here (`python -m bench kernels`): chunked linear attention
at B=8, T=1024 took about 1,000 page faults per call and 7-10 ms instead of 4.3 ms, and
training throughput in `python -m bench archs` rose 1-17% with the setting below (LSTM 17%, transformer 12%). PyTorch's CPU
performance guide recommends a caching allocator (jemalloc, tcmalloc) for the same reason; this
gets most of the effect from glibc's own knobs, with nothing to install.

The cost: memory freed by the process stays mapped to it (up to `trim_threshold`) instead of
going back to the system, so its resident size stays at its peak. Set CLAIMCHECK_MALLOC_TUNING=0
to leave malloc alone. A no-op where libc is not glibc (macOS, musl).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2, 32 MiB on 64-bit systems;
# blocks larger than that still come from mmap (rare, and large enough to amortize it).
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024

_state: dict[str, object] = {}


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Raise glibc's mmap and trim thresholds for this process (and children forked after it).
    Returns True when the settings took effect, False when disabled or not glibc. Idempotent."""
    if tuning_disabled():
        _state["malloc_tuning"] = "disabled (CLAIMCHECK_MALLOC_TUNING=0)"
        return False
    if _state.get("malloc_tuning") is True:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        _state["malloc_tuning"] = "unavailable (not glibc)"
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
    _state["malloc_tuning"] = True if ok else "refused by mallopt"
    return ok


def tuning_disabled() -> bool:
    return os.environ.get("CLAIMCHECK_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off")


def malloc_env(env: dict[str, str]) -> dict[str, str]:
    """`env` plus the same two settings as glibc tunables (GLIBC_TUNABLES, read when a process
    starts), for a process about to be exec'd; existing tunables are kept, and win."""
    if tuning_disabled():
        return env
    ours = [f"glibc.malloc.mmap_threshold={MMAP_THRESHOLD}", f"glibc.malloc.trim_threshold={TRIM_THRESHOLD}"]
    have = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t]
    names = {t.split("=", 1)[0] for t in have}
    merged = [t for t in ours if t.split("=", 1)[0] not in names] + have
    return {**env, "GLIBC_TUNABLES": ":".join(merged)}


def malloc_tuning_state() -> str:
    """'on', 'off' or why not: for benchmark records and job manifests."""
    s = _state.get("malloc_tuning")
    return "on" if s is True else ("off" if s is None else str(s))
