"""Sparse probing: how few neurons carry a label (Gurnee et al. 2023, "Finding Neurons in a
Haystack: Case Studies with Sparse Probing", section 2: feature selection by a cheap
univariate ranking, then a probe restricted to the top k neurons).

Neurons (the D coordinates of a hidden state) are ranked on the train split only by the
one-way ANOVA F statistic of each neuron across the C classes,

    F_j = [ sum_c n_c (m_cj - m_j)^2 / (C - 1) ] / [ sum_i (h_ij - m_{y_i} j)^2 / (N - C) ],

with m_cj the class-c mean of neuron j and m_j its overall mean. For two classes F_j is the
squared two-sample t statistic, (m_1j - m_0j)^2 / (s_j^2 (1/n_0 + 1/n_1)) with s_j the pooled
std: the absolute difference of class means over the pooled std, up to a constant. Then one
logistic probe (see linear.logistic_probe) is fit on the top-k neurons for each k and scored
on the held-out split. A label carried by a few neurons reaches the full probe's accuracy at
small k.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..config import require
from .linear import check_probe_params, logistic_probe, split


def _default_ks() -> list:
    return [1, 2, 4, 8, 16, "all"]


@dataclass
class SparseProbeConfig:
    ks: list = field(default_factory=_default_ks)   # neuron counts; "all" is every neuron
    test_fraction: float = 0.2
    l2: float = 1e-3
    max_iter: int = 100
    seed: int = 0

    def __post_init__(self):
        require(isinstance(self.ks, (list, tuple)) and len(self.ks) >= 1, "ks", f"{self.ks!r} must be a non-empty list")
        for k in self.ks:
            ok = k == "all" or (isinstance(k, int) and not isinstance(k, bool) and k >= 1)
            require(ok, "ks", f"{k!r} must be a positive integer or 'all'")
        check_probe_params(self)


def f_statistic(H: torch.Tensor, y: torch.Tensor, n_classes: int | None = None) -> torch.Tensor:
    """One-way ANOVA F statistic of every neuron of H (N, D) across classes y (N,): (D,)."""
    y = y.long()
    C = int(y.max()) + 1 if n_classes is None else n_classes
    H = H.double()
    n, _ = H.shape
    counts = torch.bincount(y, minlength=C).double()                               # (C,)
    present = counts > 0
    sums = torch.zeros(C, H.shape[1], dtype=torch.float64).index_add_(0, y, H)     # (C, D)
    means = sums / counts.clamp(min=1)[:, None]                                    # (C, D)
    grand = H.mean(0)                                                              # (D,)
    between = (counts[:, None] * (means - grand) ** 2).sum(0)                      # (D,)
    within = ((H - means[y]) ** 2).sum(0)                                          # (D,)
    k = int(present.sum())
    if k < 2:
        return torch.zeros(H.shape[1], dtype=torch.float32)
    dof_w = max(n - k, 1)
    return ((between / (k - 1)) / (within / dof_w).clamp(min=1e-12)).float()


def sparse_probe(H: torch.Tensor, labels: torch.Tensor, ks: list | None = None, test_fraction: float = 0.2,
                 l2: float = 1e-3, max_iter: int = 100, seed: int = 0) -> dict:
    """Rank neurons by F on the train split, then a logistic probe on the top k for each k.

    H: (N, D) (or (B, T, D)) hidden states of one layer; labels (N,) (or (B, T)) class ids
    (negative ids, e.g. IGNORE, are dropped). ks: neuron counts, ints or "all" (default
    [1, 2, 4, 8, 16, "all"]); counts above D become D, and duplicates are dropped.

    Returns {"k": [resolved counts, increasing], "score": [test accuracy per k],
    "neurons": [neuron ids, best first, as many as the largest k], "f_stat": [their F on
    the train split], "baseline" (majority accuracy), "n_train", "n_test"}.
    """
    cfg = SparseProbeConfig(ks=_default_ks() if ks is None else list(ks), test_fraction=test_fraction,
                            l2=l2, max_iter=max_iter, seed=seed)
    H = H.reshape(-1, H.shape[-1]).float()
    y = labels.reshape(-1).long()
    require(y.shape[0] == H.shape[0], "labels", f"{y.shape[0]} labels for {H.shape[0]} positions")
    keep = y >= 0
    H, y = H[keep], y[keep]
    D = H.shape[1]
    kk = sorted({D if k == "all" else min(int(k), D) for k in cfg.ks})
    tr, te = split(y.shape[0], cfg.test_fraction, torch.Generator().manual_seed(cfg.seed))
    n_classes = int(y.max()) + 1
    F_tr = f_statistic(H[tr], y[tr], n_classes)                                   # (D,)
    order = torch.argsort(F_tr, descending=True, stable=True)
    H_tr, H_te = H[tr], H[te]
    scores, baseline = [], 0.0
    for k in kk:
        cols = order[:k]
        r = logistic_probe(H_tr[:, cols], y[tr], H_te[:, cols], y[te], n_classes, cfg.l2, cfg.max_iter)
        scores.append(r["accuracy"])
        baseline = r["majority"]
    top = order[: kk[-1]]
    return {"k": kk, "score": scores, "neurons": [int(i) for i in top],
            "f_stat": [float(F_tr[i]) for i in top], "baseline": baseline,
            "n_train": int(tr.shape[0]), "n_test": int(te.shape[0])}


def k_at(r: dict, share: float = 0.9) -> float:
    """The smallest probed k whose gain over the majority baseline reaches `share` of the gain of the
    largest probed k (every neuron, with the default ks); NaN when that largest probe gains nothing
    (no label to carry). r is a sparse_probe result."""
    full = r["score"][-1] - r["baseline"]
    if not full > 0:
        return float("nan")
    for k, s in zip(r["k"], r["score"]):
        if s - r["baseline"] >= share * full:
            return float(k)
    return float(r["k"][-1])
