"""Future Lens: does one hidden state already encode the tokens after the next? (Pal et al. 2023,
"Future Lens: Anticipating Subsequent Tokens from a Single Hidden State", section 3.1: the
linear model approximation, "direct vocabulary prediction").

For layer l and offset n (n = 0 is the next token), a multinomial logistic probe reads the
token n positions after the next from the hidden state at t:

    p(x_{t+1+n} | h^l_t) = softmax(W_{l,n} h^l_t + b_{l,n}),    one probe per (l, n),

fit on the positions of the training sequences and scored (precision@1, i.e. accuracy) on
held-out sequences (the split is by sequence, so no sequence is in both). Two baselines per
offset, fit on the same training sequences:
    unigram   always predict the train's most frequent token at that offset;
    bigram    predict x_{t+1+n} from the current input token x_t alone: the most frequent
              token n+1 places after x_t in the train (the unigram for an unseen x_t).
A probe that beats the bigram reads more from h_t than the current token gives.

Layout: hiddens[l] is (B, T, D), the states after the model read tokens[:, :T]; tokens is
(B, S) with S >= T (S > T gives the later offsets their targets for every position).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..config import require
from .linear import check_probe_params, logistic_probe, split


def _default_offsets() -> list:
    return [0, 1, 2]


@dataclass
class FutureLensConfig:
    offsets: list = field(default_factory=_default_offsets)   # n: predict token t+1+n from h_t
    vocab_size: int | None = None                              # None: max token + 1
    test_fraction: float = 0.2                                 # held-out share of the sequences
    l2: float = 1e-3
    max_iter: int = 100
    seed: int = 0

    def __post_init__(self):
        require(isinstance(self.offsets, (list, tuple)) and len(self.offsets) >= 1, "offsets",
                f"{self.offsets!r} must be a non-empty list")
        for n in self.offsets:
            require(isinstance(n, int) and not isinstance(n, bool) and n >= 0, "offsets",
                    f"{n!r} must be a non-negative integer")
        require(self.vocab_size is None or self.vocab_size >= 1, "vocab_size", f"{self.vocab_size} must be at least 1")
        check_probe_params(self)


def _baselines(src_tr, tgt_tr, src_te, tgt_te, V: int) -> tuple[float, float]:
    """Unigram and bigram accuracy on the test pairs, from counts on the train pairs."""
    mode = int(torch.bincount(tgt_tr, minlength=V).argmax())
    unigram = float((tgt_te == mode).float().mean())
    counts = torch.zeros(V * V, dtype=torch.long).index_add_(
        0, src_tr * V + tgt_tr, torch.ones_like(src_tr)).view(V, V)               # (V src, V tgt)
    succ = torch.where(counts.sum(1) > 0, counts.argmax(1), torch.full((V,), mode))  # (V,)
    bigram = float((succ[src_te] == tgt_te).float().mean())
    return unigram, bigram


def future_token_probe(hiddens: list[torch.Tensor], tokens: torch.Tensor, offsets: list | None = None,
                vocab_size: int | None = None, test_fraction: float = 0.2, l2: float = 1e-3,
                max_iter: int = 100, seed: int = 0) -> dict:
    """A logistic probe per (layer, offset) from h_t to token t+1+n, plus unigram/bigram baselines.

    hiddens: one (B, T, D) tensor per layer; tokens (B, S), S >= T, int ids in 0 .. V-1.
    Returns {"layers", "offsets", "accuracy": [layer][offset index], "loss": [layer][offset
    index] (test cross-entropy), "unigram": [per offset], "bigram": [per offset],
    "best_layer": [per offset], "n_train": [positions per offset], "n_test": [...],
    "vocab_size"}.
    """
    cfg = FutureLensConfig(offsets=_default_offsets() if offsets is None else list(offsets),
                           vocab_size=vocab_size, test_fraction=test_fraction, l2=l2,
                           max_iter=max_iter, seed=seed)
    require(len(hiddens) >= 1, "hiddens", "need at least one layer")
    B, T, _ = hiddens[0].shape
    require(all(h.shape[:2] == (B, T) for h in hiddens), "hiddens", "every layer must be (B, T, D) with the same B, T")
    tokens = tokens.long()
    require(tokens.dim() == 2 and tokens.shape[0] == B and tokens.shape[1] >= T, "tokens",
            f"tokens {tuple(tokens.shape)} must be (B={B}, S>={T})")
    S = tokens.shape[1]
    V = int(tokens.max()) + 1 if cfg.vocab_size is None else cfg.vocab_size
    require(int(tokens.min()) >= 0 and int(tokens.max()) < V, "tokens", f"ids must lie in 0 .. {V - 1}")
    tr, te = split(B, cfg.test_fraction, torch.Generator().manual_seed(cfg.seed))
    L = len(hiddens)
    acc = [[0.0] * len(cfg.offsets) for _ in range(L)]
    loss = [[0.0] * len(cfg.offsets) for _ in range(L)]
    out = {"layers": list(range(L)), "offsets": list(cfg.offsets), "unigram": [], "bigram": [],
           "best_layer": [], "n_train": [], "n_test": [], "vocab_size": V}
    for j, n in enumerate(cfg.offsets):
        Tn = min(T, S - 1 - n)                                                     # positions with a target
        require(Tn >= 1, "offsets", f"offset {n} has no target: tokens has {S} positions, hiddens {T}")
        src = tokens[:, :Tn]                                                       # (B, Tn) input at t
        tgt = tokens[:, 1 + n: 1 + n + Tn]                                         # (B, Tn) token t+1+n
        s_tr, s_te = src[tr].reshape(-1), src[te].reshape(-1)
        y_tr, y_te = tgt[tr].reshape(-1), tgt[te].reshape(-1)
        uni, bi = _baselines(s_tr, y_tr, s_te, y_te, V)
        out["unigram"].append(uni)
        out["bigram"].append(bi)
        out["n_train"].append(int(y_tr.shape[0]))
        out["n_test"].append(int(y_te.shape[0]))
        for l, h in enumerate(hiddens):
            h = h[:, :Tn].float()
            H_tr, H_te = h[tr].reshape(-1, h.shape[-1]), h[te].reshape(-1, h.shape[-1])
            r = logistic_probe(H_tr, y_tr, H_te, y_te, V, cfg.l2, cfg.max_iter)
            acc[l][j], loss[l][j] = r["accuracy"], r["loss"]
        out["best_layer"].append(int(torch.tensor([acc[l][j] for l in range(L)]).argmax()))
    out["accuracy"], out["loss"] = acc, loss
    return out
