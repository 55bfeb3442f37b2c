"""scan: both fast paths against the loop, real and complex, values, states and gradients.

`scan` is what the models call (the compiled CPU kernel of scan/scan_cpu.c on a CPU when the
machine can build it); `scan_parallel` is the log-depth torch scan, which `scan` falls back to.
Every numeric test runs on both."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from typing import NamedTuple

import pytest
import torch

from modules.kernels import native, scan, scan_parallel, scan_ref

scan_mod = importlib.import_module("modules.kernels.scan")  # the op's package; modules.kernels.scan is the function
FAST = pytest.mark.parametrize("fast", [scan, scan_parallel], ids=["scan", "scan_parallel"])

from .helpers import assert_close, grads, leaf


class Case(NamedTuple):
    name: str
    B: int
    T: int
    channels: tuple
    complex: bool = False


CASES = [
    Case("real_T63_D5", 2, 63, (5,)),
    Case("complex_T63_D7", 2, 63, (7,), complex=True),
    Case("real_T100_D3xN4", 3, 100, (3, 4)),      # (B, T, D, N): what the selective scan feeds it
    Case("complex_T37_D2xN3", 1, 37, (2, 3), complex=True),
    Case("real_T1", 2, 1, (5,)),
    Case("real_T17_one_past_base", 2, 17, (3,)),
]


def make(case: Case, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (case.B, case.T, *case.channels)
    # |a| in [0.5, 1): decaying but long memory, like a trained SSM
    mag = 0.5 + 0.5 * torch.rand(shape, generator=g, dtype=torch.float64)
    if case.complex:
        phase = torch.rand(shape, generator=g, dtype=torch.float64) * 6.28
        a = torch.polar(mag, phase)
        b = torch.complex(torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64))
        h0 = torch.complex(torch.randn(shape[:1] + shape[2:], generator=g, dtype=torch.float64),
                           torch.randn(shape[:1] + shape[2:], generator=g, dtype=torch.float64))
        cd = torch.complex128 if dtype == torch.float64 else torch.complex64
        return a.to(cd), b.to(cd), h0.to(cd)
    sign = torch.where(torch.rand(shape, generator=g, dtype=torch.float64) < 0.2, -1.0, 1.0)  # some negative a
    a = mag * sign
    b = torch.randn(shape, generator=g, dtype=torch.float64)
    h0 = torch.randn(shape[:1] + shape[2:], generator=g, dtype=torch.float64)
    return a.to(dtype), b.to(dtype), h0.to(dtype)


@FAST
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_scan_matches_reference(case, with_state, fast):
    a, b, h0 = (leaf(t) for t in make(case))
    inputs = [a, b, h0] if with_state else [a, b]
    h_ref, s_ref = scan_ref(a, b, h0 if with_state else None)
    g_ref = grads([h_ref, s_ref], inputs)
    h, s = fast(a, b, h0 if with_state else None)
    g = grads([h, s], inputs)
    assert_close(f"{case.name} h", h_ref, h)
    assert_close(f"{case.name} final_state", s_ref, s)
    for n, gr, gf in zip("a b h0".split(), g_ref, g):
        assert_close(f"{case.name} d{n}", gr, gf)


@FAST
@pytest.mark.parametrize("case", [Case("real_T21", 1, 21, (2,)), Case("complex_T21", 1, 21, (2,), complex=True)], ids=lambda c: c.name)
def test_scan_gradcheck(case, fast):
    a, b, h0 = (leaf(t) for t in make(case, torch.float64))
    assert torch.autograd.gradcheck(lambda a, b, h0: fast(a, b, h0), (a, b, h0))
    assert torch.autograd.gradcheck(lambda a, b: fast(a, b)[0], (a, b))


@FAST
@pytest.mark.parametrize("case", [CASES[0], CASES[1]], ids=lambda c: c.name)
def test_scan_state_carries_over(case, fast):
    a, b, h0 = make(case)
    h_full, s_full = fast(a, b, h0)
    k = 40
    h1, s1 = fast(a[:, :k], b[:, :k], h0)
    h2, s2 = fast(a[:, k:], b[:, k:], s1)
    assert_close("two halves h", h_full, torch.cat([h1, h2], 1))
    assert_close("two halves final_state", s_full, s2)


@FAST
def test_scan_keeps_low_precision_dtype(fast):
    a, b, _ = make(CASES[0])
    h, s = fast(a.bfloat16(), b.bfloat16())
    assert h.dtype == s.dtype == torch.bfloat16
    assert_close("bf16 h", scan_ref(a, b)[0], h.float(), atol=0.1, rtol=2e-2)


@FAST
def test_scan_rejects_mismatched_shapes(fast):
    with pytest.raises(ValueError, match="same shape"):
        fast(torch.zeros(2, 5, 3), torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match="initial_state must be"):
        fast(torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), torch.zeros(2, 4))


@FAST
def test_scan_takes_non_contiguous_inputs(fast):
    """Transposed and sliced views (what a model hands over after a permute) give the same result."""
    a, b, h0 = make(Case("real", 2, 30, (6,)))
    a_t, b_t = a.transpose(0, 1).contiguous().transpose(0, 1), b[..., ::1].transpose(1, 2).contiguous().transpose(1, 2)
    assert not b_t.is_contiguous()
    assert_close("non-contiguous h", scan_ref(a, b, h0)[0], fast(a_t, b_t, h0)[0])


# --- the compiled CPU kernel -----------------------------------------------------------------

needs_cc = pytest.mark.skipif(native.compiler() is None, reason="no C compiler on this machine: scan runs its torch path")


@needs_cc
def test_scan_runs_the_compiled_kernel_on_cpu():
    """With a compiler present the kernel must build: a silent fallback would cost 3-4x."""
    assert native.enabled(), "CLAIMCHECK_NATIVE=0 or CLAIMCHECK_TORCH_KERNELS=1 is set for this test run"
    assert scan_mod.native_available()
    a, b, _ = make(CASES[0])
    h, _ = scan(a.requires_grad_(), b)
    assert type(h.grad_fn).__name__.startswith("_NativeScanBackward")


def _child(code: str, **env) -> subprocess.CompletedProcess:
    import os
    return subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True,
                          env={**os.environ, "CLAIMCHECK_NATIVE": "1", "CLAIMCHECK_TORCH_KERNELS": "", **env}, timeout=120)


PROBE = ("import importlib, torch; from modules.kernels import scan; m = importlib.import_module('modules.kernels.scan');"
         "a = torch.rand(2, 9, 3); h, _ = scan(a, a); print('native' if m.native_available() else 'torch');"
         "print(float((h - m.scan_ref(a, a)[0]).abs().max()))")


@needs_cc
def test_native_build_is_cached_per_source(tmp_path):
    first = _child(PROBE, CLAIMCHECK_NATIVE_CACHE=str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert first.stdout.split()[0] == "native"
    built = sorted(tmp_path.glob("scan_cpu-*.so"))
    assert len(built) == 1 and not list(tmp_path.glob("*.tmp.so"))
    inode = built[0].stat().st_ino
    again = _child(PROBE, CLAIMCHECK_NATIVE_CACHE=str(tmp_path))
    assert again.stdout.split()[0] == "native" and built[0].stat().st_ino == inode  # reused, not rebuilt


@needs_cc
def test_a_new_build_prunes_builds_unused_for_a_month(tmp_path):
    import os
    import time
    old = time.time() - (native.STALE_DAYS + 1) * 86400
    stale, in_use, killed, other = (tmp_path / n for n in ("scan_cpu-0000old.so", "scan_cpu-0000new.so",
                                                           "scan_cpu-x.tmp.so", "other-0000old.so"))
    for f in (stale, in_use, killed, other):
        f.write_bytes(b"")
        os.utime(f, (old, old))
    os.utime(in_use)                          # loaded recently, e.g. by a node with another CPU
    res = _child(PROBE, CLAIMCHECK_NATIVE_CACHE=str(tmp_path))
    assert res.returncode == 0 and res.stdout.split()[0] == "native", res.stderr
    assert not stale.exists() and not killed.exists()
    assert in_use.exists() and other.exists()  # in use; another kernel's
    built = [f for f in tmp_path.glob("scan_cpu-*.so") if f != in_use]
    assert len(built) == 1
    os.utime(built[0], (old, old))
    again = _child(PROBE, CLAIMCHECK_NATIVE_CACHE=str(tmp_path))
    assert again.stdout.split()[0] == "native" and time.time() - built[0].stat().st_mtime < 3600  # touched


@pytest.mark.parametrize("env, says", [
    ({"CC": "/bin/false"}, "could not compile"),
    ({"CC": "no-such-compiler-here", "PATH": "/nonexistent"}, "No such file"),
    ({"CC": "", "PATH": "/nonexistent"}, "no C compiler found"),
], ids=["compiler_fails", "compiler_missing", "no_compiler"])
def test_failed_build_falls_back_to_torch_with_one_warning(tmp_path, env, says):
    res = _child(PROBE, CLAIMCHECK_NATIVE_CACHE=str(tmp_path), **env)
    assert res.returncode == 0, res.stderr
    out = res.stdout.split()
    assert out[0] == "torch" and float(out[1]) < 1e-5
    assert res.stderr.count("RuntimeWarning") == 1 and "torch path" in res.stderr and says in res.stderr, res.stderr


def test_native_off_switch(tmp_path):
    res = _child(PROBE, CLAIMCHECK_NATIVE="0", CLAIMCHECK_NATIVE_CACHE=str(tmp_path))
    assert res.returncode == 0 and res.stdout.split()[0] == "torch", res.stderr
    assert "Warning" not in res.stderr and not list(tmp_path.iterdir())


@needs_cc
def test_a_kernels_build_key_covers_the_header_it_includes(tmp_path):
    """A kernel that includes a shared header (../vecmath.h) is rebuilt when the header changes:
    the header's text is part of the build key, and the build finds it beside the kernel's folder."""
    op = tmp_path / "op"
    op.mkdir()
    (tmp_path / "shared.h").write_text("static inline int three(void) { return 3; }\n")
    src = op / "k.c"
    src.write_text('#include "../shared.h"\nint k_value(void) { return three(); }\n')
    cache = tmp_path / "cache"
    old = os.environ.get("CLAIMCHECK_NATIVE_CACHE")
    os.environ["CLAIMCHECK_NATIVE_CACHE"] = str(cache)
    try:
        assert native.library(src).k_value() == 3
        (tmp_path / "shared.h").write_text("static inline int three(void) { return 4; }\n")
        native.library.cache_clear()
        assert native.library(src).k_value() == 4
        assert len(list(cache.glob("k-*.so"))) == 2
    finally:
        native.library.cache_clear()
        if old is None:
            os.environ.pop("CLAIMCHECK_NATIVE_CACHE")
        else:
            os.environ["CLAIMCHECK_NATIVE_CACHE"] = old
