"""Benchmarks that print ratios, not timed tests.

    python -m bench kernels [--out results/bench/kernels.json] [--threads N]
    python -m bench archs [--out results/bench/archs.json] [--threads N] [--archs ...]

`kernels`: every kernel's loop reference against its fast path at B=8, T=1024, D=64
(H=4, K=V=16 for attention-style ops, N=16 for SSM states): the median time of a few runs
after a warm-up, forward only (under no_grad) and forward+backward (the backward of fixed random
gradients for the output and the final state, as `o.backward(do)`), and their ratio.
The loop references are slow at T=1024, so they get fewer repeats (never less than one).
One CPU thread by default (see --threads). Wall-clock times on a shared machine move with
its load: the JSON records the load average, and ratios are the numbers to compare. Both
benchmarks run with the malloc settings the engine's jobs get (modules/runtime.py: freed memory is
kept rather than unmapped and faulted in again on the next call); `--malloc default` leaves
glibc's defaults, under which the fast paths' timings depend on what ran before them.

`archs`: training throughput of every registered sequence model at d_model=128, 2 layers,
T=256, batch 8, vocabulary 64: tokens per second of forward + backward (cross-entropy on
random targets, no optimizer step), the median of a few steps after a warm-up. An arch whose
config cannot be built from those sizes (e.g. a non-sequence model) is listed as skipped.
Imports only torch, modules (kernels, models) and the standard library.
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from modules import kernels as K

# ops whose fast path must be >= 10x its loop reference on a CPU (the targets). The
# chunked ops run at their default chunk (32 on a CPU, 64 on a GPU: modules.kernels._common.
# chunk_or_default); chunk 64 is shown beside it on a CPU to show why the CPU default is 32.
# `scan` is what the models call: the compiled CPU kernel (modules/kernels/scan/scan_cpu.c) when
# this machine can build it, else the log-depth torch scan, which is also timed on its own
# as `scan_parallel`, against the same target.
TARGETS = {"scan": 10.0, "scan_parallel": 10.0, "linear_attn_chunked": 10.0}


def _cases(B: int, T: int, D: int, H: int, Kd: int, N: int, device: str, seed: int = 0):
    """(name, ref, fast, inputs): ref and fast take the same inputs and return (out, state)."""
    g = torch.Generator().manual_seed(seed)

    def rn(*s):
        return torch.randn(*s, generator=g).to(device)

    def ru(*s):
        return torch.rand(*s, generator=g).to(device)

    P = D // H
    a, b = 0.5 + 0.5 * ru(B, T, D), rn(B, T, D)
    u, delta = rn(B, D, T), rn(B, D, T) * 0.5 - 1
    A_ss, B_ss, C_ss = -ru(D, N) - 0.1, rn(B, N, T), rn(B, N, T)
    Dskip, z, dbias = rn(D), rn(B, D, T), rn(D) * 0.1
    q, k, v = rn(B, T, H, Kd) * 0.25, rn(B, T, H, Kd) * 0.25, rn(B, T, H, Kd)
    k_unit = F.normalize(rn(B, T, H, Kd), dim=-1)
    gate = F.logsigmoid(rn(B, T, H) + 3)
    beta = ru(B, T, H)
    uc, kernel = rn(B, T, D), rn(D, T) * torch.exp(-0.01 * torch.arange(T, dtype=torch.float32)).to(device)
    x, dt = rn(B, T, H, P), F.softplus(rn(B, T, H) - 1)
    A_ssd = dt * -torch.linspace(0.5, 4.0, H).to(device)
    B_ssd, C_ssd = rn(B, T, 1, N), rn(B, T, 1, N)
    w_conv, b_conv = rn(D, 1, 4), rn(D)                        # Mamba's d_conv = 4
    R_lin = rn(D, D) * (0.5 / D ** 0.5)                         # spectral radius about 0.5: a stable recurrence

    def ss(fn):
        return lambda *xs: fn(*xs[:5], D=xs[5], z=xs[6], delta_bias=xs[7], delta_softplus=True, output_final_state=True)

    return [
        ("scan", K.scan_ref, K.scan, (a, b)),
        ("scan_parallel", K.scan_ref, K.scan_parallel, (a, b)),
        ("selective_scan", ss(K.selective_scan_ref), ss(K.selective_scan), (u, delta, A_ss, B_ss, C_ss, Dskip, z, dbias)),
        ("linear_attn_parallel", lambda *t: K.linear_attn_recurrent_ref(*t, output_final_state=True),
         lambda *t: K.linear_attn_parallel(*t, output_final_state=True), (q, k, v)),
        ("linear_attn_chunked", lambda *t: K.linear_attn_recurrent_ref(*t, output_final_state=True),
         lambda *t: K.linear_attn_chunked(*t, output_final_state=True), (q, k, v)),
        ("linear_attn_chunked_c64", lambda *t: K.linear_attn_recurrent_ref(*t, output_final_state=True),
         lambda *t: K.linear_attn_chunked(*t, output_final_state=True, chunk_size=64), (q, k, v)),
        ("gated_linear_attn_chunked", lambda q, k, v, d: K.linear_attn_recurrent_ref(q, k, v, None, True, d),
         lambda q, k, v, d: K.linear_attn_chunked(q, k, v, None, True, d), (q, k, v, gate)),
        ("delta_rule_chunked", lambda *t: K.delta_rule_ref(*t, output_final_state=True),
         lambda *t: K.delta_rule_chunked(*t, output_final_state=True), (q, k_unit, v, beta)),
        ("delta_rule", lambda *t: K.delta_rule_ref(*t, output_final_state=True),
         lambda *t: K.delta_rule(*t, output_final_state=True), (q, k_unit, v, beta)),
        ("fftconv", K.fftconv_ref, K.fftconv, (uc, kernel)),
        ("ssd_chunked", K.ssd_ref, K.ssd_chunked, (x, dt, A_ssd, B_ssd, C_ssd)),
        # the reference here is torch's depthwise conv1d (B, C, T) with its two transposes, not a loop
        ("causal_conv1d", lambda *t: (K.causal_conv1d_ref(*t), None), lambda *t: (K.causal_conv1d(*t), None),
         (uc, w_conv, b_conv)),
        ("linear_recurrence", K.linear_recurrence_ref, K.linear_recurrence, (uc, R_lin)),
    ]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time(fn, device: str, repeats: int, budget_s: float) -> float:
    """Median seconds of `repeats` runs after one warm-up; fewer runs when one run is slow."""
    t0 = time.perf_counter()
    fn()
    _sync(device)
    first = time.perf_counter() - t0
    n = max(1, min(repeats, int(budget_s / max(first, 1e-9))))
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _forward(fn, inputs):
    def run():
        with torch.no_grad():
            fn(*inputs)
    return run


def _forward_backward(fn, inputs):
    """One forward and the backward of fixed random upstream gradients for both outputs (the
    vector-Jacobian product, `o.backward(do)` as flash-linear-attention's benchmarks time it): the
    gradients a loss sum(o * do) + sum(s * ds) would give, without timing that loss's own passes."""
    leaves = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
    out, state = fn(*leaves)
    d_out = torch.randn_like(out)
    d_state = None if state is None else torch.randn_like(state)

    def run():
        for t in leaves:
            t.grad = None
        o, s = fn(*leaves)
        if s is None:
            torch.autograd.backward([o], [d_out])
        else:
            torch.autograd.backward([o, s], [d_out, d_state])
    return run


def _scan_path(device: str) -> str:
    """Which implementation the `scan` row timed."""
    if device == "cpu" and K.scan_native_available():
        return "compiled CPU kernel (modules/kernels/scan/scan_cpu.c)"
    return "log-depth torch scan (scan_parallel)"


def bench_kernels(B=8, T=1024, D=64, H=4, Kd=16, N=16, device="cpu", repeats=7, ref_repeats=3,
                  ref_budget_s=20.0, ops=None, log=print) -> dict:
    rows = []
    for name, ref, fast, inputs in _cases(B, T, D, H, Kd, N, device):
        if ops and name not in ops:
            continue
        row = {"op": name}
        for mode, make in (("fwd", _forward), ("fwd_bwd", _forward_backward)):
            t_ref = _time(make(ref, inputs), device, ref_repeats, ref_budget_s)
            t_fast = _time(make(fast, inputs), device, repeats, 10.0)
            row[mode] = {"ref_ms": 1e3 * t_ref, "fast_ms": 1e3 * t_fast, "ratio": t_ref / t_fast}
        if name in TARGETS:
            row["target_ratio"] = TARGETS[name]
        rows.append(row)
        log(_format_row(row))
    return {
        "config": {"B": B, "T": T, "D": D, "H": H, "K": Kd, "V": Kd, "N": N, "device": device,
                   "threads": torch.get_num_threads(), "torch": torch.__version__,
                   "machine": platform.processor() or platform.machine(), "repeats": repeats,
                   "ref_repeats": ref_repeats, "statistic": "median after one warm-up",
                   "backward": "autograd.backward of fixed random gradients for (out, final_state)",
                   "scan_path": _scan_path(device),
                   "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "ops": rows,
    }


HEADER = (f"{'op':<26} {'ref fwd ms':>11} {'fast fwd ms':>12} {'ratio':>7}   "
          f"{'ref f+b ms':>11} {'fast f+b ms':>12} {'ratio':>7}  target")


def _format_row(r: dict) -> str:
    f, fb = r["fwd"], r["fwd_bwd"]
    target = ""
    if "target_ratio" in r:
        ok = f["ratio"] >= r["target_ratio"] and fb["ratio"] >= r["target_ratio"]
        target = f">={r['target_ratio']:g}x {'met' if ok else 'MISSED'}"
    return (f"{r['op']:<26} {f['ref_ms']:>11.2f} {f['fast_ms']:>12.2f} {f['ratio']:>6.1f}x   "
            f"{fb['ref_ms']:>11.2f} {fb['fast_ms']:>12.2f} {fb['ratio']:>6.1f}x  {target}")


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def matmul_peak(device: str = "cpu", n: int | None = None, repeats: int = 7) -> dict:
    """This machine's own matmul peak at the current thread count: the median FLOP/s of timed n x n
    fp32 products (n = 1024 on a CPU, 8192 on a GPU) after a warm-up."""
    n = n or (8192 if device == "cuda" else 1024)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    t = _time(lambda: a @ b, device, repeats, budget_s=10.0)
    return {"n": n, "device": device, "threads": torch.get_num_threads(), "seconds": t, "flop_per_s": 2 * n ** 3 / t}


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                         _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """A convolution's backward: the forward's count for each gradient it computes (input, weight).
    torch's own formula counts the weight gradient as an ungrouped convolution, C times too much for
    a depthwise one (1,133 MFLOP for one (32, 64, 256) Mamba-2 convolution whose three passes make
    13 MFLOP), which had put Mamba-2 over half of the peak."""
    from torch.utils.flop_counter import conv_flop_count

    fwd = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed=transposed)
    return fwd * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def flop_counter():
    """torch's FlopCounterMode (matmuls, convolutions, attention), with the convolution backward
    counted right for grouped convolutions; the one counter of every bench command."""
    from torch.utils.flop_counter import FlopCounterMode

    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flops})


def _flops(run) -> float:
    """Counted FLOPs of one call of `run` (see flop_counter)."""
    counter = flop_counter()
    with counter:
        run()
    return float(counter.get_total_flops())


def bench_archs(archs=None, B=8, T=256, d_model=128, n_layer=2, vocab=64, device="cpu", steps=5,
                budget_s=30.0, log=print) -> dict:
    """tokens/s of forward+backward per arch; median of up to `steps` timed steps after one warm-up
    (fewer when one step takes long: about `budget_s` per arch)."""
    # Loaded here, not at the top: the `kernels` subcommand stays import-light (torch and
    # modules.kernels only, which tests/modules/kernels/test_bench.py checks on the import statements)
    models = importlib.import_module("modules.models")
    unknown = [a for a in archs or [] if a not in models.arch_names()]
    if unknown:
        raise ValueError(f"unknown arch {', '.join(unknown)}; known: {', '.join(models.arch_names())}")
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (B, T), generator=g).to(device)
    y = torch.randint(0, vocab, (B, T), generator=g).to(device)
    peak = matmul_peak(device)
    log(f"peak: a {peak['n']} x {peak['n']} fp32 matmul on {device}, {torch.get_num_threads()} threads: "
        f"{peak['flop_per_s'] / 1e9:,.1f} GFLOP/s")
    rows = []
    for arch in archs or models.arch_names():
        try:
            torch.manual_seed(0)
            # l_max = T as the catalogue sets it: S4 builds its kernel at l_max taps whatever T is
            # (1,024 by default: 16x the work of a T = 64 kernel)
            model = models.build_model(arch, {"n_layer": n_layer, "d_model": d_model},
                                       {"vocab_size": vocab, "l_max": T}).to(device)
        except (TypeError, ValueError) as e:  # ConfigError is a ValueError
            rows.append({"arch": arch, "skipped": f"{type(e).__name__}: {e}"})
            log(f"{arch:<18} skipped ({e})")
            continue

        def run():
            for p in model.parameters():
                p.grad = None
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            loss.backward()

        t = _time(run, device, steps, budget_s)
        flops = _flops(run)
        row = {"arch": arch, "tokens_per_s": B * T / t, "step_ms": 1e3 * t,
               "params": sum(p.numel() for p in model.parameters()),
               "matmul_flop_per_step": flops, "matmul_flop_per_s": flops / t,
               "fraction_of_peak": flops / t / peak["flop_per_s"]}
        rows.append(row)
        log(f"{arch:<18} {row['tokens_per_s']:>12,.0f} {row['step_ms']:>10.1f} {row['params']:>10,} "
            f"{row['matmul_flop_per_s'] / 1e9:>9.2f} {100 * row['fraction_of_peak']:>7.1f}%")
    return {
        "config": {"B": B, "T": T, "d_model": d_model, "n_layer": n_layer, "vocab": vocab, "l_max": T,
                   "device": device,
                   "threads": torch.get_num_threads(), "torch": torch.__version__,
                   "machine": platform.processor() or platform.machine(), "steps": steps,
                   "statistic": "median after one warm-up", "mode": "forward+backward", "peak": peak,
                   "flops": "matmuls, convolutions and attention as torch's FlopCounterMode counts them; "
                            "element-wise work and the scan kernels are not counted, so a scan model's "
                            "fraction of peak is a floor",
                   "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "archs": rows,
    }
