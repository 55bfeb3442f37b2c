"""The chunked delta rule (the WY / UT transform); fla's chunk_delta_rule on a GPU when it is importable."""
from __future__ import annotations

import torch

from .._common import check_qkv, chunk_or_default, fp32_math, on_cuda, optional_kernel, pad_time, to_work, try_kernel
from .naive import _check_beta


@fp32_math
def _delta_chunked_torch(q, k, v, beta, initial_state, output_final_state, chunk_size):
    dtype = v.dtype
    q, k, v, beta, S = to_work(q, k, v, beta, initial_state)
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
    check_qkv(q, k, v)
    _check_beta(q, beta)
    fn = optional_kernel("fla.ops.delta_rule", "chunk_delta_rule")
    if fn is not None and on_cuda(q, k, v, beta):
        res = try_kernel("delta_rule_chunked", fn, q, k, v, beta, scale=1.0, initial_state=initial_state,
                         output_final_state=output_final_state)
        if res is not None:
            return res
    return _delta_chunked_torch(q, k, v, beta, initial_state, output_final_state, chunk_or_default(chunk_size, q))
