"""In-context n-gram estimators: the reference predictors of Akyürek, Wang, Kim & Andreas 2024,
"In-Context Language Learning: Architectures and Algorithms" (the `icl_dfa` task), which read
nothing but the prompt so far and predict the next symbol from its own n-gram counts.

A prompt is a run of strings separated by a separator token: s_1 SEP s_2 SEP ... (symbols are the
ids 0 .. n_symbols-1; any other id but the separator, e.g. a pad, ends the prompt). At position t
(having read x_0 .. x_t) the order-n estimator predicts the next symbol of the current string:

  context      the strings read so far: the complete ones before t and the current one up to x_t;
               every string is preceded by n-1 BOS marks, and an n-gram never crosses a separator
  counts       N(u) for every m-gram u (m <= n) inside those padded strings; the current string's
               last (m-1)-gram h_m (its BOS marks included) is counted too, although nothing
               follows it yet
  Sigma_t      the symbols that occur in x_0 .. x_t: the only symbols that get probability
  order 1      P_1(c) = (N(c) + alpha) / sum_{c' in Sigma_t} (N(c') + alpha)
  order m > 1  with h = h_m (the last m-1 tokens) and S = {c in Sigma_t : N(h c) > 0},
                 P_m(c | h) = (N(h c) + alpha) / (N(h) + alpha |Sigma_t|)        for c in S
                 beta(h)    = 1 - sum_{c in S} P_m(c | h)
                 P_m(c | h) = beta(h) P_{m-1}(c | h') / sum_{c' in Sigma_t \\ S} P_{m-1}(c' | h')
                                                                                   for c not in S
               where h' drops the oldest token of h (Katz-style backoff per continuation: an
               unseen context, S empty and beta = 1, is the lower order's distribution)
  output       P_n renormalized over Sigma_t (it sums to 1 - beta(h) < 1 only when every symbol
               of Sigma_t has followed h; renormalizing gives a distribution).

beta(h) > 0 always, since h's own occurrence at t is counted in N(h) but has no continuation:
sum_c N(h c) <= N(h) - 1. With alpha = 0 (the default of the task) this is the scheme of the
authors' released analysis code (its n-gram predictor with backoff on and add-one off), which
pads each string with n-1 "_" marks and counts every m-gram of the padded strings; that
code counts a run of BOS marks once per mark position where this module counts the all-BOS
context once per string, a difference that never changes a probability (an all-BOS context is
backed off from only where its whole unseen set is unseen one order lower too, where only the
ratios of the order below count). The final renormalization is ours: the authors compare their
(unnormalized) estimates with model distributions directly.

Vectorized: per order, the running counts N(h_t c) and N(h_t) at every position are found with
one sort and two `searchsorted` per row (O(B T V log T)), so 512 prompts of ~100 tokens take well
under a second on one CPU thread, and prompts of ~1,000 tokens a few seconds.
"""
from __future__ import annotations

import torch

SENTINEL = 2 ** 62                 # sorts after every real event key


def _string_position(z: torch.Tensor, n_symbols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(is_symbol, j): j is the number of symbols of the current string up to and including
    position t (0 at a separator or any other non-symbol); both (B, T)."""
    T = z.shape[1]
    is_sym = (z >= 0) & (z < n_symbols)
    pos = torch.arange(T, device=z.device).expand_as(z)
    last_break = torch.where(is_sym, torch.full_like(pos, -1), pos).cummax(1).values
    return is_sym, pos - last_break


def context_codes(z: torch.Tensor, n_symbols: int, k: int) -> torch.Tensor:
    """The code of the k tokens ending at each position inside its string, BOS-padded (BOS is
    the id n_symbols): sum_i tok(t - i) (n_symbols + 1)^i; (B, T) int64, in [0, (V+1)^k)."""
    is_sym, j = _string_position(z, n_symbols)
    base = n_symbols + 1
    code = torch.zeros_like(z, dtype=torch.long)
    zz = torch.where(is_sym, z, torch.full_like(z, n_symbols)).long()
    for i in range(k):
        shifted = torch.cat([torch.full_like(zz[:, :i], n_symbols), zz[:, :zz.shape[1] - i]], 1)   # z[t - i]
        tok = torch.where(j > i, shifted, torch.full_like(shifted, n_symbols))
        code = code + tok * base ** i
    return code


def running_count(events: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """How often each query code has occurred as an event so far: events (B, T) int64 codes
    (negative: no event there), queries (B, T, K) codes >= 0; returns (B, T, K) with the number of
    s <= t such that events[b, s] == queries[b, t, k]."""
    B, T = events.shape
    K = queries.shape[2]
    pos = torch.arange(T, device=events.device)
    keys = torch.where(events >= 0, events * T + pos, torch.full_like(events, SENTINEL))
    keys = keys.sort(1).values                                                        # (B, T)
    q = queries.long() * T                                                            # (B, T, K)
    lo = q.reshape(B, T * K)
    hi = (q + pos[None, :, None]).reshape(B, T * K)
    n = torch.searchsorted(keys, hi, right=True) - torch.searchsorted(keys, lo, right=False)
    return n.reshape(B, T, K)


@torch.no_grad()
def in_context_ngram(x: torch.Tensor, n_symbols: int, sep: int, max_order: int,
                     alpha: float = 0.0) -> list[torch.Tensor]:
    """The in-context n-gram distributions of orders 1 .. max_order (module docstring) of the next
    symbol at every position of the prompts x (B, T): a list of (B, T, n_symbols) float tensors,
    each row summing to 1 wherever x_0 .. x_t holds a symbol. Positions after the prompt's end
    (pads) carry values that mean nothing. x starts with its first symbol; a virtual separator
    in front of it counts the first string's BOS context as every later string's is counted."""
    if max_order < 1:
        raise ValueError(f"max_order {max_order} must be at least 1")
    if alpha < 0:
        raise ValueError(f"alpha {alpha} must not be negative")
    V = n_symbols
    if (V + 1) ** (max_order - 1) * V * (x.shape[1] + 1) >= SENTINEL:
        raise ValueError(f"order {max_order} with {V} symbols and {x.shape[1]} positions overflows the count keys")
    B, T = x.shape
    z = torch.cat([torch.full((B, 1), sep, dtype=torch.long, device=x.device), x.long()], 1)   # (B, T+1)
    is_sym = (z >= 0) & (z < V)
    onehot = torch.zeros(B, T + 1, V, device=x.device)
    onehot.scatter_(2, z.clamp(0, V - 1)[..., None], is_sym[..., None].float())
    n1 = onehot.cumsum(1)                                                             # (B, T+1, V)
    sigma = n1 > 0                                                                    # Sigma_t
    n_sigma = sigma.sum(-1, keepdim=True).float()
    p = torch.where(sigma, n1 + alpha, torch.zeros(()))
    p = p / p.sum(-1, keepdim=True).clamp(min=1e-30)
    out = [p]
    sym_codes = torch.arange(V, device=x.device)
    tiny = torch.finfo(torch.float32).tiny
    for m in range(2, max_order + 1):
        ctx = context_codes(z, V, m - 1)                                              # h_t, (B, T+1)
        before = torch.cat([torch.full_like(ctx[:, :1], -1), ctx[:, :-1]], 1)        # context of token z_s
        pair = torch.where(is_sym & (before >= 0), before * V + z.clamp(min=0), torch.full_like(ctx, -1))
        cnt = running_count(pair, ctx[..., None] * V + sym_codes).float()           # N(h_t c), (B, T+1, V)
        den = running_count(ctx, ctx[..., None])[..., 0].float()                     # N(h_t), >= 1
        seen = cnt > 0
        p_seen = torch.where(seen, (cnt + alpha) / (den[..., None] + alpha * n_sigma), torch.zeros(()))
        beta = (1.0 - p_seen.sum(-1, keepdim=True)).clamp(min=0.0)
        back = torch.where(sigma & ~seen, p, torch.zeros(()))
        z_back = back.sum(-1, keepdim=True)
        p = p_seen + torch.where(z_back > 0, beta * back / z_back.clamp(min=tiny), torch.zeros(()))
        p = p / p.sum(-1, keepdim=True).clamp(min=1e-30)
        out.append(p)
    return [q[:, 1:] for q in out]
