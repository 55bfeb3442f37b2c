"""The log-depth torch scan for h_t = a_t * h_{t-1} + b_t (`scan_parallel`), with its
hand-written backward; also what `scan` runs on a GPU or without the compiled CPU kernel.

The combine rule of the scan is the composition of affine maps,
    (a1, b1) then (a2, b2) = (a2 * a1, a2 * b1 + b2),
which is associative, so pairs of neighbours can be folded in parallel: fold every pair
(2i, 2i+1) into one step, scan the half-length sequence (giving h at odd positions), then
fill in the even positions with one more elementwise step. log2(T) levels, O(T) work.
"""
from __future__ import annotations

import torch

from .._common import work_dtype

# Below this length the recursion stops and a short loop finishes the job: the python loop
# is cheaper than two more levels of strided kernels (measured on CPU: 16 is a little faster than 4 or 8).
_BASE = 16


def _scan_into(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, a_scratch: bool, reverse: bool = False) -> None:
    """Write the scan of (a, b) along dim 1 into `out`. No autograd.

    Forward: h_t = a_t * h_{t-1} + b_t from t = 0 (a_0 unused). Reverse:
    h_t = a_t * h_{t+1} + b_t from t = T-1 down (a_{T-1} unused); the backward pass needs it,
    and running it in place beats flipping (torch has no negative strides, flip copies).
    `out` may be `b` itself (in place). When `a_scratch`, `a`'s slots may be overwritten.
    Below the top level everything runs in place on strided views of `out`, so a call
    allocates at most one half-length buffer.
    """
    T = a.shape[1]
    if T <= _BASE:
        first, steps = (T - 1, range(T - 2, -1, -1)) if reverse else (0, range(1, T))
        if out.data_ptr() != b.data_ptr():
            out[:, first] = b[:, first]
        a_, b_, o_ = a.unbind(1), b.unbind(1), out.unbind(1)  # one call for all views, not one per step
        for t in steps:
            torch.addcmul(b_[t], a_[t], o_[t + 1 if reverse else t - 1], out=o_[t])
        return
    n_pairs = T // 2
    # Pair each step with the one before it in scan order: forward (0,1), (2,3), ...;
    # reverse (T-1,T-2), (T-3,T-4), ... `late` is the second of each pair, `early` the first.
    if reverse:
        p = (T - 1) % 2
        late, early = slice(1 - p, T - 1, 2), slice(2 - p, T, 2)
        rest, rest_prev = slice(p, T - 1, 2), slice(p + 1, T, 2)
        first = T - 1
    else:
        late, early = slice(1, 2 * n_pairs, 2), slice(0, 2 * n_pairs, 2)
        rest, rest_prev = slice(2, T, 2), slice(1, T - 1, 2)
        first = 0
    a_late = a[:, late]
    h_late = out[:, late]
    # fold each pair into one step: (a_late * a_early, a_late * b_early + b_late)
    torch.addcmul(b[:, late], a_late, b[:, early], out=h_late)
    a2 = a_late.mul_(a[:, early]) if a_scratch else a_late * a[:, early]
    _scan_into(h_late, a2, h_late, True, reverse)  # h at the second step of every pair
    if out.data_ptr() != b.data_ptr():
        out[:, first] = b[:, first]
    # the remaining steps each follow one that is now done
    torch.addcmul(b[:, rest], a[:, rest], out[:, rest_prev], out=out[:, rest])


def _scan_fwd(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None, a_scratch: bool = False) -> torch.Tensor:
    if h0 is not None:
        b = b.clone()
        b[:, 0].addcmul_(a[:, 0], h0)
        _scan_into(b, a, b, a_scratch)
        return b
    out = torch.empty_like(b)
    _scan_into(out, a, b, a_scratch)
    return out


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, h0):
        h = _scan_fwd(a, b, h0)
        ctx.save_for_backward(a, h, h0)
        # the final state as its own output: its gradient then enters the backward scan directly,
        # instead of autograd scattering it into a zero tensor as big as h and adding that
        return h, h[:, -1].clone()

    @staticmethod
    def backward(ctx, dh, dh_last):
        a, h, h0 = ctx.saved_tensors
        # g_t = dL/dh_t in total = dh_t + conj(a_{t+1}) g_{t+1}: the same recurrence, run backwards
        # (conj because torch's complex gradients are conjugate Wirtinger derivatives).
        a_c = a.conj() if a.is_complex() else a
        g = dh.clone(memory_format=torch.contiguous_format)
        g[:, -1] += dh_last
        if g.shape[1] > 1:
            # g_{T-1} is done; g_t for t < T-1 is the reverse scan of (a_{t+1}, dh_t) seeded by it:
            # fold the seed into g_{T-2}, then scan g[:, :-1] with the view a[:, 1:] (its last slot
            # unused), with no shifted copy of a
            g[:, -2].addcmul_(a_c[:, -1], g[:, -1])
            _scan_into(g[:, :-1], a_c[:, 1:], g[:, :-1], False, reverse=True)
        da = None
        if ctx.needs_input_grad[0]:
            h_c = h.conj() if h.is_complex() else h
            da = torch.empty_like(g)
            torch.mul(g[:, 1:], h_c[:, :-1], out=da[:, 1:])
            if h0 is None:
                da[:, 0] = 0
            else:
                torch.mul(g[:, 0], h0.conj() if h0.is_complex() else h0, out=da[:, 0])
        dh0 = None
        if h0 is not None and ctx.needs_input_grad[2]:
            dh0 = a_c[:, 0] * g[:, 0]
        return da, g, dh0


# the checks and casts of `scan_parallel` and of the dispatching `scan` (__init__.py)
def _prepare(name, a, b, initial_state):
    if a.shape != b.shape:
        raise ValueError(f"{name}: a {tuple(a.shape)} and b {tuple(b.shape)} must have the same shape")
    if a.dim() < 2:
        raise ValueError(f"{name}: a and b must be (B, T, ...) with time in dim 1; got shape {tuple(a.shape)}")
    dtype = torch.promote_types(a.dtype, b.dtype)
    work = work_dtype(a, b, initial_state)
    h0 = None if initial_state is None else initial_state.to(work)
    if h0 is not None and h0.shape != a.shape[:1] + a.shape[2:]:
        raise ValueError(f"{name}: initial_state must be {tuple(a.shape[:1] + a.shape[2:])} (a without its time dim); "
                         f"got {tuple(h0.shape)}")
    return a.to(work), b.to(work), h0, dtype


def scan_parallel(a: torch.Tensor, b: torch.Tensor, initial_state: torch.Tensor | None = None):
    """The log-depth torch scan for h_t = a_t * h_{t-1} + b_t; same signature and returns as `scan_ref`."""
    a, b, h0, dtype = _prepare("scan_parallel", a, b, initial_state)
    h, h_last = _Scan.apply(a, b, h0)
    return h.to(dtype), h_last.to(dtype)
