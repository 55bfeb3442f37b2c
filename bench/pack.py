"""python -m bench pack: would training a fit's seeds as one vectorized ensemble be faster?

For each arch, S models (seeds 0..S-1) take one full training step each (zero the gradients,
forward, cross-entropy, backward, AdamW), one after another, as S jobs do today; against that,
the same S models stacked into one ensemble (`torch.func.stack_module_state`) take one step
together: `vmap(grad(loss))` over the stacked weights, then one AdamW step over the stacked
tensors (AdamW is element-wise, so that is each seed's own update). The ratio is the sequential
time over the packed time: above 1 packing would pay, below 1 it would cost.

Sequence archs run on random tokens at the `archs` benchmark's sizes (B, T, d_model, 2 layers);
`toy_autoencoder` runs at its catalogue's sizes (batch 1,024 of 20 features into 5 dimensions,
mean squared error). An arch that `vmap` cannot run (an autograd.Function without a vmap rule:
the compiled scan, LSTM, Elman and GRU kernels) is listed with the error, as is one whose packed
gradients differ from its seeds' own. One CPU thread by default.
Imports only torch, modules and the standard library.
"""
from __future__ import annotations

import os
import platform

import torch
import torch.nn.functional as F

from modules import models

from .kernels import _time

DEFAULT_ARCHS = ["toy_autoencoder", "transformer", "lstm", "mamba", "s4d", "lru", "gla"]
GRAD_TOLERANCE = 1e-4          # relative: the packed step must compute each seed's own gradients
TOY = {"n_features": 20, "hidden": 5, "batch": 1024}


def _inputs(arch: str, B: int, T: int, vocab: int, device: str):
    g = torch.Generator().manual_seed(0)
    if arch == "toy_autoencoder":
        x = torch.rand(TOY["batch"], TOY["n_features"], generator=g).to(device)
        return x, x, lambda out, y: F.mse_loss(out, y)
    x = torch.randint(0, vocab, (B, T), generator=g).to(device)
    y = torch.randint(0, vocab, (B, T), generator=g).to(device)
    return x, y, lambda out, y: F.cross_entropy(out.flatten(0, 1), y.flatten())


def _build(arch: str, seed: int, d_model: int, n_layer: int, vocab: int, T: int, device: str):
    torch.manual_seed(seed)
    if arch == "toy_autoencoder":
        return models.build_model(arch, {"hidden": TOY["hidden"]}, {"n_features": TOY["n_features"]}).to(device)
    return models.build_model(arch, {"n_layer": n_layer, "d_model": d_model},
                              {"vocab_size": vocab, "l_max": T}).to(device)


def pack_one(arch: str, seeds: int, B: int, T: int, d_model: int, n_layer: int, vocab: int, device: str,
             repeats: int, budget_s: float) -> dict:
    """Seconds of `seeds` sequential steps and of one packed step, and the packed step's loss gap."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    x, y, loss_of = _inputs(arch, B, T, vocab, device)
    nets = [_build(arch, s, d_model, n_layer, vocab, T, device) for s in range(seeds)]
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in nets]

    def sequential():
        for m, opt in zip(nets, opts):
            opt.zero_grad(set_to_none=True)
            loss_of(m(x), y).backward()
            opt.step()

    params, buffers = stack_module_state(nets)           # {name: (S, ...)}, leaves
    base = nets[0]
    keys = list(params)
    stacked = [params[k] for k in keys]
    opt = torch.optim.AdamW(stacked, lr=1e-3)

    def loss_fn(p, b):
        return loss_of(functional_call(base, (p, b), (x,)), y)

    grads_of = vmap(grad(loss_fn), in_dims=(0, 0))

    def packed():
        gs = grads_of(params, buffers)
        for k, t in zip(keys, stacked):
            t.grad = gs[k]
        opt.step()

    # the packed gradients of the first step are each seed's own (checked before timing)
    p0 = {k: v.detach().clone() for k, v in params.items()}
    g_packed = vmap(grad(loss_fn), in_dims=(0, 0))(p0, buffers)
    gap = 0.0
    for s, m in enumerate(nets):
        m.zero_grad(set_to_none=True)
        loss_of(m(x), y).backward()
        for k, p in m.named_parameters():
            if p.grad is None:                           # a parameter the loss does not reach
                continue
            gap = max(gap, float((g_packed[k][s] - p.grad).abs().max() / p.grad.abs().max().clamp(min=1e-30)))
    if gap > GRAD_TOLERANCE:
        raise ValueError(f"the packed gradients differ from the seeds' own by {gap:.2g} (relative): not timed")
    t_seq = _time(sequential, device, repeats, budget_s)
    t_pack = _time(packed, device, repeats, budget_s)
    return {"arch": arch, "seeds": seeds, "sequential_s": t_seq, "packed_s": t_pack, "ratio": t_seq / t_pack,
            "grad_rel_gap": gap}


def bench_pack(archs: list[str], seeds: int = 3, B: int = 32, T: int = 64, d_model: int = 64, n_layer: int = 2,
               vocab: int = 64, device: str = "cpu", repeats: int = 5, budget_s: float = 20.0, log=print) -> dict:
    unknown = [a for a in archs if a not in models.arch_names()]
    if unknown:
        raise ValueError(f"unknown arch {', '.join(unknown)}; known: {', '.join(models.arch_names())}")
    log(f"{'arch':<18} {'sequential ms':>14} {'packed ms':>10} {'ratio':>6}  (S={seeds} seeds, one training step each)")
    rows = []
    for arch in archs:
        try:
            row = pack_one(arch, seeds, B, T, d_model, n_layer, vocab, device, repeats, budget_s)
        except (RuntimeError, NotImplementedError, ValueError, TypeError) as e:
            msg = str(e).splitlines()[0][:160]
            rows.append({"arch": arch, "seeds": seeds, "unsupported": f"{type(e).__name__}: {msg}"})
            log(f"{arch:<18} cannot be packed: {type(e).__name__}: {msg}")
            continue
        rows.append(row)
        log(f"{arch:<18} {1e3 * row['sequential_s']:>14.1f} {1e3 * row['packed_s']:>10.1f} {row['ratio']:>6.2f}")
    return {
        "config": {"seeds": seeds, "B": B, "T": T, "d_model": d_model, "n_layer": n_layer, "vocab": vocab,
                   "toy_autoencoder": TOY, "device": device, "threads": torch.get_num_threads(),
                   "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
                   "statistic": "median after one warm-up", "step": "forward, backward and AdamW",
                   "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "archs": rows,
    }
