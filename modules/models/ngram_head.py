"""A hard-wired n-gram head, a mixer of the `hybrid` stack (Akyürek, Wang, Kim & Andreas 2024,
"In-Context Language Learning: Architectures and Algorithms", ICML 2024, the section on
hard-wiring n-gram heads into recurrent and convolutional models).

The paper finds that transformers learn regular languages in context with "n-gram heads",
higher-order induction heads that attend to the tokens which followed earlier occurrences of the
current context, and that hard-wiring such heads, a fixed attention pattern, into recurrent and
convolutional models improves their in-context language learning (and the perplexity of
language models) (the abstract; the models and numbers are the paper's, not checked here).

Attention pattern (fixed, from the input token ids x, never from hidden states). With n >= 2 the
order and m = n - 1 the length of the context matched,
    M[t, j] = 1  iff  j < t,  j >= m,  t >= m - 1  and  x_{j-m} .. x_{j-1} == x_{t-m+1} .. x_t
i.e. position t attends to every earlier position j whose preceding m tokens equal the m tokens
ending at t (itself included), so j holds a token that followed the same context. Rows are
normalized to uniform weights, A[t, j] = M[t, j] / sum_j M[t, j], and a row with no match is all
zero (no division by zero). The current position is never attended (j < t strictly), even when
x_{t-1..} already matches the context ending at t. n = 2 matches the previous token only: on
ids a b a b a (positions 0..4), position 4 (an a) attends to positions 1 and 3, the b's that
followed the two earlier a's, with weight 1/2 each.

What is learned (the authors' layer): the head averages the mixer's input hidden states h_j
(the block's LayerNorm of the residual stream, width d_model) over the attended positions, then
    y_t = W_v (sum_j A[t, j] h_j) + b_v  +  W_d h_t + b_d          (direct: true, the default)
with two learned d_model x d_model linear maps with bias: W_v on the head's average and W_d on the
current position (a direct path). `direct: false` drops W_d h_t + b_d. With no earlier match the
average is zero, so y_t = b_v + W_d h_t + b_d (b_v alone without the direct path). The head itself
has no query, key or softmax, hence no positions. In a layer after the embedding, h_j is (the norm
of) token x_j's embedding; deeper, it is a contextual state of position j.

Recurrent form: `step` keeps the ids and hidden states seen so far and attends over them with the
same pattern, so `step` run over a sequence equals `forward` (to float round-off). Memory and
time are O(T) per step and O(B T^2 n) for `forward`'s (T, T) match mask: meant for T <= ~512.

Token ids reach the head outside the (B, T, D) mixer interface: `forward(x, ids)` and
`step(x_t, state, id_t)` take them directly; inside a `hybrid` stack the model hands every head
the input ids (`feed`) before each forward or step and the head takes them in order (under
`tbptt` windows, the ids of each window in turn). So a hybrid with n-gram heads needs token
inputs (vocab_size).

Verified against the authors' released code (the public repository berlino/seq_icl, listed as
the paper's code; its `Ngram` layer and `induction_head` mask, run side by side with ours on
random ids: identical outputs for their ngram = 1, 2, 3): matching on input token ids of
the m previous tokens; the shifted read (the position after the match); strict causality (the
current position excluded); uniform weights over the matches and zeros with none; two linear
maps with bias, one on the head's average of the layer's input hidden states and one on the
current hidden state, summed. Their option `ngram: k` matches k tokens, i.e. our n = k + 1; their
hybrid ICLL models stack heads with k = 1, 2, 3 (our ngram2, ngram3, ngram4) after a first
recurrent layer, each n-gram block with a narrower MLP (d_model) than the recurrent blocks.
Not verified: the paper's own equation for the layer (only its abstract was available to us:
the definition above follows the code, not the paper's typesetting); whether the paper's
SlimPajama models use the same layer; the per-layer MLP widths, which a hybrid here shares.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..config import require


@dataclass
class NGramHeadConfig:
    n: int = 2              # the order: match the n - 1 tokens ending at the current position
    direct: bool = True     # also add a linear map of the current hidden state (the authors' layer)

    def __post_init__(self):
        require(self.n >= 2, "n", f"{self.n} must be at least 2 (n = 2 matches the previous token)")


def ngram_mask(ids: torch.Tensor, n: int) -> torch.Tensor:
    """M[b, t, j]: position t attends to j (module doc). ids (B, T) -> (B, T, T) bool."""
    T = ids.shape[1]
    eq = ids[:, :, None] == ids[:, None, :]                                            # (B, T, T): x_p == x_q
    mask = torch.ones_like(eq)
    for k in range(n - 1):                                                             # x_{t-k} == x_{j-1-k}
        shifted = torch.zeros_like(eq)
        if k + 1 < T:
            shifted[:, k:, k + 1:] = eq[:, :T - k, :T - k - 1]
        mask &= shifted
    causal = torch.ones(T, T, dtype=torch.bool, device=ids.device).tril(diagonal=-1)   # j < t
    return mask & causal


def ngram_weights(ids: torch.Tensor, n: int, dtype=torch.float32) -> torch.Tensor:
    """A[b, t, j]: uniform over the matches of row t, zero rows where none. (B, T) -> (B, T, T)."""
    mask = ngram_mask(ids, n).to(dtype)
    return mask / mask.sum(-1, keepdim=True).clamp(min=1)


class NGramHead(nn.Module):
    """The fixed-pattern n-gram head with its two learned maps (module doc)."""

    def __init__(self, cfg: NGramHeadConfig, d_model: int):
        super().__init__()
        self.n = cfg.n
        self.value = nn.Linear(d_model, d_model)                                       # W_v, b_v
        self.direct = nn.Linear(d_model, d_model) if cfg.direct else None              # W_d, b_d
        self._ids: torch.Tensor | None = None
        self._at = 0

    # --- the token ids, handed over by the hybrid model ---------------------------------------

    def feed(self, ids: torch.Tensor | None) -> None:
        """The input ids (B, T) of the coming forward (or (B, 1) of a step); None forgets them."""
        self._ids, self._at = ids, 0

    def _take(self, length: int) -> torch.Tensor:
        if self._ids is None:
            raise RuntimeError("an n-gram head reads the input token ids: run it inside a hybrid model "
                               "(which hands them over) or pass ids to forward / step")
        ids = self._ids[:, self._at:self._at + length]
        if ids.shape[1] != length:
            raise RuntimeError(f"the n-gram head was handed {self._ids.shape[1]} token ids, fewer than the "
                               f"{self._at + length} positions it was asked to mix")
        self._at += length
        return ids

    # --- the mixer ----------------------------------------------------------------------------

    def _out(self, avg: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y = self.value(avg)
        return y if self.direct is None else y + self.direct(x)

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D) hidden states, ids (B, T) token ids (None: those the model handed over)."""
        ids = self._take(x.shape[1]) if ids is None else ids
        avg = ngram_weights(ids, self.n, x.dtype) @ x                                  # (B, T, D)
        return self._out(avg, x)

    def init_state(self, batch_size: int, device) -> dict:
        return {"ids": torch.zeros(batch_size, 0, dtype=torch.long, device=device),
                "h": torch.zeros(batch_size, 0, self.value.in_features, device=device)}

    def step(self, x_t: torch.Tensor, state: dict, id_t: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """x_t (B, D), id_t (B,) (None: the one handed over); attends over the positions before t."""
        id_t = self._take(1)[:, 0] if id_t is None else id_t
        ids = torch.cat([state["ids"], id_t[:, None].to(state["ids"].dtype)], dim=1)    # (B, t+1)
        h = state["h"]                                                                 # (B, t, D)
        t, m = h.shape[1], self.n - 1
        avg = torch.zeros_like(x_t)
        if t - m >= 1:                                             # candidates j = m .. t-1 exist
            keys = ids[:, :t - 1].unfold(1, m, 1)                  # (B, t-m, m): window s is the context of j = s+m
            match = (keys == ids[:, None, t - m + 1:]).all(-1).to(x_t.dtype)           # (B, t-m)
            w = match / match.sum(-1, keepdim=True).clamp(min=1)
            avg = (w[:, None, :] @ h[:, m:t])[:, 0]                                    # (B, D)
        return self._out(avg, x_t), {"ids": ids, "h": torch.cat([h, x_t[:, None]], dim=1)}
