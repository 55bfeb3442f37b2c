"""Position/context decomposition of hidden states (Song & Zhong 2023, "Uncovering hidden
geometry in Transformers via disentangling position and context", arXiv 2310.04861, section 2).

For hidden states h_{c,t} of N sequences (contexts c) at T positions t, in (N, T, D):

    mu      = mean_{c,t} h_{c,t}                      global mean            (D,)
    pos_t   = mean_c h_{c,t} - mu                     positional component  (T, D)
    ctx_c,t = h_{c,t} - mu - pos_t                    context component     (N, T, D)

so h_{c,t} = mu + pos_t + ctx_{c,t}. Since sum_t pos_t = 0 and sum_c ctx_{c,t} = 0 for each t,
the three parts are orthogonal in the mean over (c, t), and the total second moment splits
exactly:

    mean_{c,t} ||h||^2 = ||mu||^2 + mean_t ||pos_t||^2 + mean_{c,t} ||ctx_{c,t}||^2.

The shares reported are these three terms over the total (mean_share, pos_share, ctx_share;
they sum to 1). pos_var_share = pos / (pos + ctx) is the positional share of the variance
about the mean (the paper's comparison of positional against context variation).

The positional matrix P = [pos_0 .. pos_{T-1}] (T, D) is summarized by
    pos_rank            the fewest singular values holding `energy` (0.95) of ||P||_F^2;
    pos_effective_rank  exp(entropy of the energy fractions e_i = s_i^2 / sum_j s_j^2), the
                        effective rank of Roy & Vetterli 2007 taken on the PCA spectrum (so a
                        faint noise floor barely moves it); 2 for two equal components;
    pos_spectrum        the energy fraction of each of the top singular values;
    pos_pc              the coordinates of pos_t on P's top two right singular vectors (the
                        paper's low-dimensional spiral, for figures);
    smoothness          mean_t cos(pos_t, pos_{t+1}), against smoothness_shuffled: the same
                        for randomly permuted positions (mean over n_perm permutations).
Position decoding: a logistic probe predicting t from raw h_{c,t} and from ctx_{c,t} (mu and
pos fit on the training sequences only, applied to held-out ones). The context part carries
no linear trace of position by construction of its mean, so its accuracy should sit near
chance (position_chance).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config import require
from .linear import check_probe_params, logistic_probe, split

_N_PC = 16      # singular values listed in pos_spectrum


@dataclass
class GeometryConfig:
    energy: float = 0.95           # energy share that pos_rank must hold
    n_perm: int = 20               # permutations for smoothness_shuffled
    decode: bool = True            # fit the position-decoding probes
    max_decode: int = 20000        # training positions for a decoding probe (subsampled above)
    test_fraction: float = 0.2     # held-out share of the sequences (decoding)
    l2: float = 1e-3
    max_iter: int = 100
    seed: int = 0

    def __post_init__(self):
        require(0.0 < self.energy <= 1.0, "energy", f"{self.energy} must be in (0, 1]")
        require(self.n_perm >= 1, "n_perm", f"{self.n_perm} must be at least 1")
        require(self.max_decode >= 1, "max_decode", f"{self.max_decode} must be at least 1")
        check_probe_params(self)


def components(H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """H (N, T, D) -> mu (D,), pos (T, D), ctx (N, T, D), with H = mu + pos + ctx."""
    mu = H.mean((0, 1))                                                            # (D,)
    pos = H.mean(0) - mu                                                           # (T, D)
    return mu, pos, H - mu - pos


def _cos_adjacent(P: torch.Tensor) -> float:
    """mean_t cos(P_t, P_{t+1}) for P (T, D)."""
    U = P / P.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return float((U[:-1] * U[1:]).sum(1).mean())


def _decode_position(H: torch.Tensor, cfg: GeometryConfig, gen: torch.Generator) -> dict:
    N, T, D = H.shape
    tr, te = split(N, cfg.test_fraction, gen)
    mu, pos, _ = components(H[tr])
    t = torch.arange(T).expand(N, T)                                               # (N, T) labels
    raw_tr, raw_te = H[tr].reshape(-1, D), H[te].reshape(-1, D)
    ctx_tr, ctx_te = (H[tr] - mu - pos).reshape(-1, D), (H[te] - mu - pos).reshape(-1, D)
    y_tr, y_te = t[tr].reshape(-1), t[te].reshape(-1)
    if y_tr.shape[0] > cfg.max_decode:
        keep = torch.randperm(y_tr.shape[0], generator=gen)[: cfg.max_decode]
        raw_tr, ctx_tr, y_tr = raw_tr[keep], ctx_tr[keep], y_tr[keep]
    raw = logistic_probe(raw_tr, y_tr, raw_te, y_te, T, cfg.l2, cfg.max_iter)
    ctx = logistic_probe(ctx_tr, y_tr, ctx_te, y_te, T, cfg.l2, cfg.max_iter)
    return {"position_raw": raw["accuracy"], "position_context": ctx["accuracy"],
            "position_chance": raw["majority"]}


def decompose(H: torch.Tensor, energy: float = 0.95, n_perm: int = 20, decode: bool = True,
              max_decode: int = 20000, test_fraction: float = 0.2, l2: float = 1e-3,
              max_iter: int = 100, seed: int = 0) -> dict:
    """Mean/positional/context decomposition of H (N sequences, T positions, D).

    Returns {"mean_share", "pos_share", "ctx_share" (sum to 1), "pos_var_share",
    "second_moment" (mean ||h||^2), "pos_rank", "pos_effective_rank", "pos_spectrum",
    "pos_pc" ([2][T], fewer rows when P has rank < 2), "smoothness", "smoothness_shuffled"};
    with decode also "position_raw", "position_context", "position_chance" (test accuracies
    of decoding t, and of the majority position).
    """
    cfg = GeometryConfig(energy=energy, n_perm=n_perm, decode=decode, max_decode=max_decode,
                         test_fraction=test_fraction, l2=l2, max_iter=max_iter, seed=seed)
    require(H.dim() == 3 and H.shape[0] >= 2 and H.shape[1] >= 2, "H",
            f"{tuple(H.shape)} must be (N >= 2 sequences, T >= 2 positions, D)")
    H = H.float()
    N, T, D = H.shape
    gen = torch.Generator().manual_seed(cfg.seed)
    mu, pos, ctx = components(H)
    m2 = (mu.double() ** 2).sum()
    p2 = (pos.double() ** 2).sum(1).mean()
    c2 = (ctx.double() ** 2).sum(2).mean()
    total = float(m2 + p2 + c2)
    tot = max(total, 1e-30)
    out = {"mean_share": float(m2) / tot, "pos_share": float(p2) / tot, "ctx_share": float(c2) / tot,
           "pos_var_share": float(p2 / max(float(p2 + c2), 1e-30)), "second_moment": total}

    _, s, Vh = torch.linalg.svd(pos.double(), full_matrices=False)                # s (min(T, D),)
    e = s ** 2 / (s ** 2).sum().clamp(min=1e-300)
    cum = torch.cumsum(e, 0)
    out["pos_rank"] = int((cum < cfg.energy - 1e-12).sum()) + 1
    p = e[e > 0]
    out["pos_effective_rank"] = float(math.exp(float(-(p * p.log()).sum())))
    out["pos_spectrum"] = [float(v) for v in e[:_N_PC]]
    k = min(2, int((s > s[0] * 1e-6).sum()) if s[0] > 0 else 0)
    out["pos_pc"] = [[float(v) for v in row] for row in (pos.double() @ Vh[:k].T).T]

    out["smoothness"] = _cos_adjacent(pos)
    out["smoothness_shuffled"] = sum(_cos_adjacent(pos[torch.randperm(T, generator=gen)])
                                     for _ in range(cfg.n_perm)) / cfg.n_perm
    if cfg.decode:
        out.update(_decode_position(H, cfg, gen))
    return out


def decompose_layers(hiddens: list[torch.Tensor], **params) -> dict:
    """`decompose` for each layer's (N, T, D) states: {"layers": [...], key: [per layer], ...}."""
    require(len(hiddens) >= 1, "hiddens", "need at least one layer")
    per = [decompose(h, **params) for h in hiddens]
    return {"layers": list(range(len(per))), **{k: [r[k] for r in per] for k in per[0]}}
