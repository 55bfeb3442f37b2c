"""Compiled CPU kernels: small C files in the ops' folders, built once per machine, loaded with ctypes.

Some recurrences have no fast form in torch on a CPU. A loop over time costs one dispatch of a
few microseconds per step, and a log-depth scan makes ~2 log2(T) memory passes. A plain C loop
over time, vectorized across channels, makes one pass. So the ops that need it (the linear
recurrence, scan/) carry a C source in their folder, `<name>.c` (scan/scan_cpu.c), and pass its
path to `library`. It is compiled on first use with the machine's C compiler (`$CC`, else `cc`,
`gcc` or `clang`; `-O3 -march=native`; about half a second). The shared object goes in a cache
folder keyed by the source, the flags, the compiler and the CPU, so a cluster node with another
CPU builds its own, and concurrent jobs build safely: each compiles to a private temporary file
and renames it into place. Each load touches its build;
a new build deletes the builds of that kernel no process has loaded for 30 days.

Where no compiler is found, or the build fails, the op falls back to its torch path and warns
once. The results agree with the torch path to rounding.

Environment:
    CLAIMCHECK_NATIVE=0          never build or load these kernels (the torch paths run)
    CLAIMCHECK_TORCH_KERNELS=1   the same, and also no optional CUDA kernels (see _common.py)
    CLAIMCHECK_NATIVE_CACHE=DIR  where the built libraries go (default
                                 $XDG_CACHE_HOME/claimcheck/native, else ~/.cache/claimcheck/native)
    CC                           the C compiler to use
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

FLAGS = ("-O3", "-fPIC", "-shared", "-fno-math-errno", "-std=gnu11", "-fopenmp-simd")   # omp simd: the loops a kernel marks (a reduction it allows to vectorize); no threads
NATIVE_ARCH = ("-march=native",)
ROW_BLOCK = 4      # batch rows a recurrent kernel steps through time together (vecmath.h's ROW_BLOCK, which sizes its scratch)


def enabled() -> bool:
    return os.environ.get("CLAIMCHECK_NATIVE", "1") != "0" and os.environ.get("CLAIMCHECK_TORCH_KERNELS", "") != "1"


def cache_dir() -> Path:
    if os.environ.get("CLAIMCHECK_NATIVE_CACHE"):
        return Path(os.environ["CLAIMCHECK_NATIVE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "claimcheck" / "native"


def compiler() -> str | None:
    cc = os.environ.get("CC")
    if cc:
        return shutil.which(cc) or cc
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _cpu_identity() -> str:
    """What -march=native depends on: the machine, the CPU model and its feature flags."""
    ident = [platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key = line.split(":", 1)[0].strip()
                if key in ("model name", "flags", "Features", "CPU part"):
                    ident.append(line.strip())
                if line.strip() == "":  # the first processor is enough
                    break
    except OSError:
        pass
    return "\n".join(ident)


def _compiler_identity(cc: str) -> str:
    """The compiler's resolved path, size and mtime: an upgrade changes them, and reading them
    costs a stat, not a `cc --version` in every job."""
    try:
        real = os.path.realpath(cc)
        st = os.stat(real)
        return f"{real} {st.st_size} {st.st_mtime_ns}"
    except OSError:
        return cc


@functools.cache
def _warn_once(msg: str) -> None:
    warnings.warn(msg, RuntimeWarning, stacklevel=4)


def _build(cc: str, src: Path, out: Path) -> None:
    """Compile src into out atomically: a private temporary file, then a rename. With
    -march=native first; without it if the compiler refuses that flag."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.stem + ".", suffix=".tmp.so", dir=out.parent)
    os.close(fd)
    try:
        err = ""
        for arch in (NATIVE_ARCH, ()):
            res = subprocess.run([cc, *FLAGS, *arch, "-o", tmp, str(src)], capture_output=True, text=True, timeout=300)
            if res.returncode == 0:
                os.replace(tmp, out)
                return
            err = (res.stderr or res.stdout).strip()
        raise RuntimeError(f"{cc} could not compile {src}:\n{err[-2000:]}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


STALE_DAYS = 30   # a build no process has loaded for this long is deleted when another one is made


def _touch(so: Path) -> None:
    """Mark a build as in use (its mtime), so that pruning keeps it; a read-only cache is fine."""
    try:
        os.utime(so)
    except OSError:
        pass


def _prune(keep: Path, name: str) -> None:
    """Delete builds of `name` unused for STALE_DAYS (an older source, compiler or CPU; nodes of a
    cluster that share the cache touch theirs at every load) and temporaries a killed build left."""
    now = time.time()
    for p in keep.parent.glob(f"{name}-*.so"):
        if p == keep:
            continue
        try:
            if now - p.stat().st_mtime > (86400 if p.name.endswith(".tmp.so") else STALE_DAYS * 86400):
                p.unlink()
        except OSError:
            pass


def _source_text(src: Path) -> str:
    """The kernel's C text and the text of every file it includes with #include "..." (one level:
    ../vecmath.h), so that a change to a shared header rebuilds the kernels that use it."""
    text = src.read_text()
    parts = [text]
    for inc in re.findall(r'^\s*#\s*include\s+"([^"]+)"', text, re.M):
        try:
            parts.append((src.parent / inc).read_text())
        except OSError:
            parts.append(f"missing {inc}")   # the compiler says what is wrong
    return "\0".join(parts)


@functools.cache
def library(src: str | os.PathLike) -> ctypes.CDLL | None:
    """The C file `src` (an op's `<name>.c`, e.g. scan/scan_cpu.c), built, as a ctypes library, or
    None (disabled, no compiler, build failed: the last two warn once). Builds it on first use; later
    calls and processes reuse the cache, where its builds are named `<name>-<key>.so`."""
    if not enabled():
        return None
    src = Path(src)
    name = src.stem
    cc = compiler()
    if cc is None:
        _warn_once(f"modules.kernels: no C compiler found (tried $CC, cc, gcc, clang), so {name} runs "
                   f"its slower torch path. Install gcc (Debian: apt-get install gcc), or set "
                   f"CLAIMCHECK_NATIVE=0 to choose the torch path and silence this warning.")
        return None
    key = hashlib.sha256("\0".join([_source_text(src), " ".join(FLAGS + NATIVE_ARCH), _compiler_identity(cc),
                                    _cpu_identity()]).encode()).hexdigest()[:16]
    so = cache_dir() / f"{name}-{key}.so"
    try:
        if so.exists():
            _touch(so)
        else:
            _build(cc, src, so)
            _prune(so, name)
        return ctypes.CDLL(str(so))
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        _warn_once(f"modules.kernels: building or loading {name} into {so} failed, so it runs its slower "
                   f"torch path ({type(e).__name__}: {e}). Set CLAIMCHECK_NATIVE_CACHE to a writable "
                   f"folder, or CLAIMCHECK_NATIVE=0 to silence this warning.")
        return None


def real_on_cpu(*tensors) -> bool:
    """Whether every given tensor (None: absent) is a real CPU tensor, the kernels' one layout."""
    return all(t is None or (t.device.type == "cpu" and not t.is_complex()) for t in tensors)


def wants_backward(*tensors) -> bool:
    """Whether a backward can follow: grad mode on and an input that wants a gradient. A kernel's
    autograd.Function asks this of its caller, since inside its forward grad mode is always off;
    when it is False the kernel keeps nothing for a backward."""
    import torch

    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def ptr(t) -> ctypes.c_void_p | None:
    """A tensor's data pointer for a C call (None for a missing optional tensor: NULL)."""
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def fwd_bwd(src: str | os.PathLike, name: str, suffixes: dict, fwd_args: tuple[int, int],
            bwd_args: tuple[int, int]) -> dict | None:
    """{dtype: (forward, backward)} C functions `<name>_fwd_<suffix>` / `<name>_bwd_<suffix>` of the
    kernel `src`, typed as (n int64 arguments, then m pointers) each; None when `library` gives none."""
    lib = library(src)
    if lib is None:
        return None
    try:
        block = lib.claimcheck_row_block()      # every kernel that includes vecmath.h has it
    except AttributeError:
        block = ROW_BLOCK
    if block != ROW_BLOCK:   # the scratch the Python side allocates would be too small
        raise RuntimeError(f"{src}: built with ROW_BLOCK {block}, but native.ROW_BLOCK is {ROW_BLOCK}; "
                           f"make the two the same (vecmath.h and native.py)")
    i64, p = ctypes.c_int64, ctypes.c_void_p
    fns = {}
    for dtype, sfx in suffixes.items():
        pair = []
        for kind, (n_int, n_ptr) in (("fwd", fwd_args), ("bwd", bwd_args)):
            fn = getattr(lib, f"{name}_{kind}_{sfx}")
            fn.argtypes, fn.restype = [i64] * n_int + [p] * n_ptr, None
            pair.append(fn)
        fns[dtype] = tuple(pair)
    return fns

