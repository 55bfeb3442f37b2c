"""Linear attention, with optional scalar decay, and the delta rule (DeltaNet).

Layout as in flash-linear-attention: q, k (B, T, H, K); v (B, T, H, V); state (B, H, K, V);
every op returns (o, final_state) with o (B, T, H, V) and final_state None unless
`output_final_state`. No scale or feature map is applied: the caller maps q and k first
(e.g. elu+1 for Katharopoulos et al. 2020, a K**-0.5 scale for fla's default). For the
normalized form o_t = q_t S_t / (q_t z_t), append a column of ones to v: the last output
column is the denominator.

Decay (gated linear attention with a scalar gate, RetNet, SSD-like): `decay` is a log-decay
g <= 0, either per head (H,) and constant in time (RetNet) or per step and head (B, T, H)
(data-dependent gate); the state is multiplied by exp(g_t) before step t's update.

Three equivalent forms of the same recurrence:
  recurrent (the reference loop), parallel (one masked T x T product), and chunked
  (parallel inside chunks of `chunk_size`, a recurrence over chunk states between them;
  O(T C) work, the form fla's kernels use).
The delta rule has a recurrent reference and a chunked form using the WY / UT transform
of Yang et al. 2024 ("Parallelizing Linear Transformers with the Delta Rule over Sequence
Length"): the C sequential rank-one updates in a chunk are rewritten as one triangular solve.

When flash-linear-attention (`fla`) is importable and the inputs are on a GPU, the chunked
ops call its Triton kernels (chunk_simple_gla, chunk_delta_rule) with scale=1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import chunk_or_default, on_cuda, optional_kernel, pad_time, segsum, try_kernel, work_dtype


def _log_decay(decay, q):
    """decay None | (H,) | (B, T, H) -> None or a (B, T, H) log-decay in q's dtype."""
    if decay is None:
        return None
    B, T, H = q.shape[:3]
    decay = decay.to(q.dtype)
    if decay.shape == (H,):
        return decay.expand(B, T, H)
    if decay.shape != (B, T, H):
        raise ValueError(f"decay must be (H,)=({H},) or (B, T, H)=({B}, {T}, {H}); got {tuple(decay.shape)}")
    return decay


def _check(q, k, v):
    if q.dim() != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"q, k must be (B, T, H, K) and v (B, T, H, V); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")


def _cast(*ts):
    work = work_dtype(*ts)
    return [None if t is None else t.to(work) for t in ts]


def linear_attn_recurrent_ref(q, k, v, initial_state=None, output_final_state=False, decay=None):
    """Reference loop (fp32):  S_t = exp(g_t) S_{t-1} + k_t v_t^T,   o_t = q_t^T S_t.
    With decay=None, g_t = 0 (Katharopoulos et al. 2020's causal linear attention)."""
    _check(q, k, v)
    dtype = v.dtype
    q, k, v, S = _cast(q, k, v, initial_state)
    g = _log_decay(decay, q)
    B, T, H, K = q.shape
    if S is None:
        S = q.new_zeros(B, H, K, v.shape[-1])
    os = []
    for t, (q_t, k_t, v_t) in enumerate(zip(q.unbind(1), k.unbind(1), v.unbind(1))):
        if g is not None:
            S = S * g[:, t].exp()[..., None, None]
        S = S + k_t[..., :, None] * v_t[..., None, :]
        os.append(torch.einsum("bhk,bhkv->bhv", q_t, S))
    return torch.stack(os, dim=1).to(dtype), (S if output_final_state else None)


def linear_attn_parallel(q, k, v, initial_state=None, output_final_state=False, decay=None):
    """Masked quadratic form: o = ((q k^T) * M) v + exp(G_t) q_t S_0, M_ts = exp(G_t - G_s) [s <= t],
    with G the cumulative log-decay. Same signature and returns as the reference.
    O(T^2) memory: a check and a short-sequence tool. G_t - G_s is a difference of two long
    sums, which loses digits once |G| reaches the thousands; the chunked form only takes
    differences inside a chunk."""
    _check(q, k, v)
    dtype = v.dtype
    q, k, v, S0 = _cast(q, k, v, initial_state)
    g = _log_decay(decay, q)
    T = q.shape[1]
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))                     # (B, H, T, *)
    scores = q @ k.transpose(-1, -2)                                      # (B, H, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    if g is None:
        scores = scores.masked_fill(~causal, 0)
    else:
        G = g.transpose(1, 2).cumsum(-1)                                  # (B, H, T)
        scores = scores * (G[..., :, None] - G[..., None, :]).masked_fill(~causal, float("-inf")).exp()
    o = scores @ v
    S = None
    if S0 is not None:
        q_in = q if g is None else q * G[..., None].exp()
        o = o + q_in @ S0
    if output_final_state:
        k_w = k if g is None else k * (G[..., -1:] - G).exp()[..., None]
        S = k_w.transpose(-1, -2) @ v
        if S0 is not None:
            S = S + (S0 if g is None else S0 * G[..., -1].exp()[..., None, None])
    return o.transpose(1, 2).to(dtype), S


def _to_chunks(x, C):
    """(B, T, H, D) -> (B, H, n, C, D), zero-padded in time, contiguous (one copy)."""
    x = pad_time(x, 1, C)
    B, T, H, D = x.shape
    return x.view(B, T // C, C, H, D).permute(0, 3, 1, 2, 4).contiguous()


def _chunked_torch(q, k, v, initial_state, output_final_state, decay, chunk_size):
    dtype = v.dtype
    q, k, v, S0 = _cast(q, k, v, initial_state)
    g = _log_decay(decay, q)
    B, T, H, K = q.shape
    V = v.shape[-1]
    C = chunk_size
    q, k, v = (_to_chunks(x, C) for x in (q, k, v))                    # (B, H, n, C, *)
    n = q.shape[2]
    scores = q @ k.transpose(-1, -2)                                    # (B, H, n, C, C)
    if g is None:
        # times a causal 0/1 mask rather than tril_: tril's backward on these batched (C, C) blocks
        # cost as much as all the matmuls together
        scores = scores.mul_(torch.ones(C, C, dtype=scores.dtype, device=scores.device).tril_())
        q_in, k_out = q, k
    else:
        G = _to_chunks(g[..., None], C)[..., 0].cumsum(-1)              # (B, H, n, C) within-chunk
        causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
        # exp(G_t - G_s) for s <= t, 0 above the diagonal (in place: these are (B, H, n, C, C))
        scores = scores * (G[..., :, None] - G[..., None, :]).masked_fill_(~causal, float("-inf")).exp_()
        q_in = q * G.exp()[..., None]                                   # decay from chunk start to t
        k_out = k * (G[..., -1:] - G).exp()[..., None]                  # decay from s to chunk end
    U = k_out.transpose(-1, -2) @ v                                     # (B, H, n, K, V) each chunk's own update
    # the state entering every chunk, and the final state
    if g is None:
        # an exclusive prefix sum over chunks as one product with a strictly lower-triangular
        # matrix of ones (faster than cumsum over a middle dim, and no cat to shift it by one)
        ones = torch.ones(n, n, dtype=U.dtype, device=U.device).tril_(-1)
        states = (ones @ U.reshape(B, H, n, K * V)).view(B, H, n, K, V)
        S = states[:, :, -1] + U[:, :, -1]
        if S0 is not None:
            states, S = states + S0[:, :, None], S + S0
    else:
        # S_{j+1} = exp(a_j) S_j + U_j over chunks, as one small (n+1) x (n+1) decay matrix (SSD step 3)
        a = F.pad(G[..., -1], (1, 0))                                   # (B, H, n+1)
        init = U.new_zeros(B, H, 1, K, V) if S0 is None else S0[:, :, None]
        all_states = torch.einsum("bhzc,bhckv->bhzkv", segsum(a).exp(), torch.cat([init, U], dim=2))
        states, S = all_states[:, :, :-1], all_states[:, :, -1]
    # inter- plus intra-chunk in one fused multiply-add: q_in @ states + scores @ v
    # (in place: the out-of-place baddbmm copies its first argument once more)
    o = (q_in @ states).view(-1, C, V).baddbmm_(scores.view(-1, C, C), v.view(-1, C, V)).view(B, H, n, C, V)
    o = o.permute(0, 2, 3, 1, 4).reshape(B, n * C, H, V)[:, :T]
    return o.to(dtype), (S if output_final_state else None)


def linear_attn_chunked(q, k, v, initial_state=None, output_final_state=False, decay=None, chunk_size=None):
    """Chunked form (fla's chunk kernels on a GPU when available). Same returns as the reference.
    chunk_size None: 64 on a GPU, 32 on a CPU (see `chunk_or_default`)."""
    _check(q, k, v)
    fn = optional_kernel("fla.ops.simple_gla", "chunk_simple_gla")
    if fn is not None and on_cuda(q, k, v):
        g = _log_decay(decay, q)
        g = torch.zeros(q.shape[:3], dtype=torch.float32, device=q.device) if g is None else g.float().contiguous()
        res = try_kernel("linear_attn_chunked", fn, q, k, v, g=g, scale=1.0, initial_state=initial_state,
                         output_final_state=output_final_state)
        if res is not None:
            return res
    return _chunked_torch(q, k, v, initial_state, output_final_state, decay, chunk_or_default(chunk_size, q))


# --- delta rule --------------------------------------------------------------------------

def _check_beta(q, beta):
    if beta.shape != q.shape[:3]:
        raise ValueError(f"beta must be (B, T, H)={tuple(q.shape[:3])}; got {tuple(beta.shape)}")


def delta_rule_ref(q, k, v, beta, initial_state=None, output_final_state=False):
    """Reference loop for DeltaNet (Schlag et al. 2021; Yang et al. 2024), fp32:
        S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T
        o_t = q_t^T S_t
    beta: (B, T, H), usually in (0, 1) (or (0, 2)); k is usually L2-normalized by the caller."""
    _check(q, k, v)
    _check_beta(q, beta)
    dtype = v.dtype
    q, k, v, beta, S = _cast(q, k, v, beta, initial_state)
    B, T, H, K = q.shape
    if S is None:
        S = q.new_zeros(B, H, K, v.shape[-1])
    os = []
    for q_t, k_t, v_t, b_t in zip(q.unbind(1), k.unbind(1), v.unbind(1), beta.unbind(1)):
        v_old = torch.einsum("bhk,bhkv->bhv", k_t, S)
        S = S + (b_t[..., None, None] * k_t[..., :, None]) * (v_t - v_old)[..., None, :]
        os.append(torch.einsum("bhk,bhkv->bhv", q_t, S))
    return torch.stack(os, dim=1).to(dtype), (S if output_final_state else None)


def _delta_chunked_torch(q, k, v, beta, initial_state, output_final_state, chunk_size):
    dtype = v.dtype
    q, k, v, beta, S = _cast(q, k, v, beta, initial_state)
    B, T, H, K = q.shape
    V = v.shape[-1]
    C = chunk_size
    # padding with k = v = beta = 0 leaves the state untouched
    q, k, v = (pad_time(x, 1, C).transpose(1, 2) for x in (q, k, v))
    beta = pad_time(beta, 1, C).transpose(1, 2)
    n = q.shape[2] // C
    q, k, v = (x.reshape(B, H, n, C, x.shape[-1]) for x in (q, k, v))
    beta = beta.reshape(B, H, n, C, 1)
    k_beta, v_beta = k * beta, v * beta
    # Within a chunk, with u_t = beta_t (v_t - S_{t-1}^T k_t) the update is S_t = S_{t-1} + k_t u_t^T, so
    #   u_t + beta_t sum_{s<t} (k_t . k_s) u_s = beta_t v_t - beta_t S_0^T k_t,
    # i.e. (I + tril(diag(beta) K K^T, -1)) U = beta V - beta K S_0: one unit-lower-triangular
    # solve gives U = Ub - W S_0 with Ub = A^-1 beta V, W = A^-1 beta K (the WY/UT transform).
    A = (k_beta @ k.transpose(-1, -2)).tril(-1)                         # unit diagonal implied
    Ub = torch.linalg.solve_triangular(A, v_beta, upper=False, unitriangular=True)   # (B, H, n, C, V)
    W = torch.linalg.solve_triangular(A, k_beta, upper=False, unitriangular=True)    # (B, H, n, C, K)
    scores = (q @ k.transpose(-1, -2)).tril()                           # (B, H, n, C, C)
    if S is None:
        S = q.new_zeros(B, H, K, V)
    os = []
    for j in range(n):
        u = Ub[:, :, j] - W[:, :, j] @ S                                # (B, H, C, V)
        os.append(q[:, :, j] @ S + scores[:, :, j] @ u)
        S = S + k[:, :, j].transpose(-1, -2) @ u
    o = torch.stack(os, dim=2).reshape(B, H, n * C, V)[:, :, :T].transpose(1, 2)
    return o.to(dtype), (S if output_final_state else None)


def delta_rule_chunked(q, k, v, beta, initial_state=None, output_final_state=False, chunk_size=None):
    """Chunked delta rule (WY/UT transform; fla's chunk_delta_rule on a GPU when available).
    Same returns as `delta_rule_ref`; chunk_size None: 64 on a GPU, 32 on a CPU."""
    _check(q, k, v)
    _check_beta(q, beta)
    fn = optional_kernel("fla.ops.delta_rule", "chunk_delta_rule")
    if fn is not None and on_cuda(q, k, v, beta):
        res = try_kernel("delta_rule_chunked", fn, q, k, v, beta, scale=1.0, initial_state=initial_state,
                         output_final_state=output_final_state)
        if res is not None:
            return res
    return _delta_chunked_torch(q, k, v, beta, initial_state, output_final_state, chunk_or_default(chunk_size, q))
