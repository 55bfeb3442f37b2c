"""Shared by the kernel tests: the comparison that reports how far apart two tensors are,
and the gradients of every input under one random projection of the outputs."""
from __future__ import annotations

import torch


def assert_close(name: str, ref: torch.Tensor, fast: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Fail on NaN/inf, or when max|ref - fast| > atol + rtol * max|ref| or the relative RMS
    error ||ref - fast|| / ||ref|| > rtol. The message reports both numbers."""
    assert ref.shape == fast.shape, f"{name}: shape {tuple(fast.shape)} != reference {tuple(ref.shape)}"
    ref, fast = ref.detach().to(torch.complex128 if ref.is_complex() else torch.float64), fast.detach().to(
        torch.complex128 if fast.is_complex() else torch.float64)
    assert torch.isfinite(ref).all(), f"{name}: the reference has NaN/inf"
    assert torch.isfinite(fast).all(), f"{name}: NaN/inf in the fast result"
    diff = (ref - fast).abs()
    max_abs = diff.max().item() if diff.numel() else 0.0
    scale = ref.abs().max().item() if ref.numel() else 0.0
    rms_ref = ref.abs().square().mean().sqrt().item() if ref.numel() else 0.0
    rel_rms = diff.square().mean().sqrt().item() / max(rms_ref, 1e-30) if ref.numel() else 0.0
    ok = max_abs <= atol + rtol * scale and (rel_rms <= rtol or max_abs <= atol)
    msg = f"{name}: max abs err {max_abs:.3e} (max |ref| {scale:.3e}), relative RMS err {rel_rms:.3e}; atol {atol:g}, rtol {rtol:g}"
    assert ok, msg


def grads(outputs, inputs, seed: int = 0):
    """Gradients of sum_i <w_i, outputs_i> with fixed random w_i (so every output element and
    its sign matter), for every tensor in `inputs` (None where an input gets no gradient)."""
    gen = torch.Generator().manual_seed(seed)
    loss = 0
    for o in outputs:
        if o is None:
            continue
        w = torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.real.dtype if o.is_complex() else o.dtype)
        loss = loss + ((o.real if o.is_complex() else o) * w).sum()
        if o.is_complex():
            loss = loss + (o.imag * w.flip(-1)).sum()
    gs = torch.autograd.grad(loss, inputs, allow_unused=True)
    return list(gs)


def fixed_weights(seed: int = 0):
    """weights(outputs, B): one random weight tensor per output, drawn once for a batch of B rows
    (every call returns the same ones), so that the gradients of rows run alone and of the same
    rows in the whole batch come from the same projection: index them by the rows run."""
    cache = []

    def weights(outputs, B: int):
        if not cache:
            gen = torch.Generator().manual_seed(seed)
            cache.extend(torch.randn((B, *o.shape[1:]), generator=gen, dtype=torch.float64).to(o.dtype)
                         for o in outputs)
        return cache

    return weights


def leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def spy_kept(monkeypatch, table: dict, key, pointer: int) -> list[bool]:
    """Wrap the compiled forward `table[key] = (fwd, bwd)` so that each call records whether its
    argument `pointer` (the buffer kept for a backward) was given (not NULL); returns that record."""
    fwd, bwd = table[key]
    kept = []

    def spy(*args):
        kept.append(args[pointer] is not None)
        return fwd(*args)

    monkeypatch.setitem(table, key, (spy, bwd))
    return kept


def check_model_on_kernel(arch: str, params: dict, op, monkeypatch, T: int = 9, what: str = "the op's other path"):
    """A model that calls a kernel op in forward(): the same outputs as its step() one position at
    a time, and the same parameter gradients as with the op's `usable` patched to False."""
    from modules.models import build_model

    torch.manual_seed(0)
    m = build_model(arch, {"n_layer": 2, "d_model": 16, **params}, {"vocab_size": 11})
    x = torch.randint(0, 11, (3, T))
    full = m(x)
    state = m.init_state(3)
    steps = []
    for t in range(T):
        out, state = m.step(x[:, t], state)
        steps.append(out)
    assert_close("step vs forward", full, torch.stack(steps, 1), atol=1e-5, rtol=1e-5)
    full.square().sum().backward()
    g_kernel = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    monkeypatch.setattr(op, "usable", lambda *t: False)
    m(x).square().sum().backward()
    for a, b in zip(g_kernel, (p.grad for p in m.parameters())):
        assert_close(f"grad vs {what}", b, a, atol=1e-4, rtol=1e-4)
