"""Linear probes on frozen hidden states, with a held-out split and a control task.

A probe is a linear map fit on the hidden states of a training split and scored on a
held-out split. Features are standardized with the training split's mean and std, so the L2
penalty means the same thing for every layer.

    ridge (real targets y, (N,) or (N, K)):
        [w; b] = argmin  mean_i ||y_i - x_i w - b||^2 + l2 ||w||^2
        solved in closed form from the (D+1) x (D+1) normal equations (fp64; b unpenalized).
        r2 = 1 - mse / baseline_mse, where baseline_mse is the test mse of predicting the
        train mean: out-of-sample R^2, 0 for the mean predictor, negative when worse.

    multinomial logistic (classes y in 0 .. C-1):
        [W; b] = argmin  mean_i -log softmax(x_i W + b)_{y_i} + l2 ||W||^2
        full-batch L-BFGS (strong Wolfe line search) with an analytic gradient, at most
        max_iter iterations, started from b = log class prior, W = 0.

Control task (Hewitt & Liang 2019, "Designing and Interpreting Probes with Control Tasks"):
every token type (the input token id at a position) gets one label drawn at random from the
empirical label distribution, the same at every occurrence of that type. A probe that scores
well on it is memorizing token identity, not reading the property from the representation:
    selectivity = score(real labels) - score(control labels)
is high only when the representation encodes the property beyond what token identity gives.
Selectivity compares scores on two different labellings, so its sign says little on its own: a
state that holds the current token reads the control perfectly, and a property with a skewed or
hard labelling can score below it while being well encoded.

Input baseline: the same probe on the input alone, the one-hot of the last `window` tokens
(the current one and the window - 1 before it, padded at the start), with the same split:
    input_gain = score(state) - score(last `window` tokens)
is positive when the state holds the property beyond what that window of input gives; with the
window of an n-gram model, beyond what a finite-horizon model could see.

`probe_layers` runs one probe per layer on the same split and reports a score per layer:
accuracy for classification, R^2 for regression. Everything returns plain dicts of floats
and lists, ready for JSON.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..config import require

_STD_EPS = 1e-6     # features with a smaller train std are constant: left unscaled


@dataclass
class ProbeConfig:
    kind: Literal["classification", "regression"] = "classification"
    test_fraction: float = 0.2     # held-out share of the positions
    l2: float = 1e-3               # L2 penalty on the weights (standardized features)
    max_iter: int = 100            # L-BFGS iterations per logistic probe
    seed: int = 0                  # split and control labels
    window: int = 1                # input baseline: one-hot of the last `window` tokens

    def __post_init__(self):
        require(self.kind in ("classification", "regression"), "kind",
                f"{self.kind!r} is not allowed; allowed: classification, regression")
        require(isinstance(self.window, int) and self.window >= 1, "window",
                f"{self.window!r} must be an integer of at least 1 (the current token)")
        check_probe_params(self)


def check_probe_params(cfg) -> None:
    """Range checks shared by every probe config: test_fraction, l2, max_iter."""
    require(0.0 < cfg.test_fraction < 1.0, "test_fraction", f"{cfg.test_fraction} must be in (0, 1)")
    require(cfg.l2 >= 0.0, "l2", f"{cfg.l2} must be non-negative")
    require(cfg.max_iter >= 1, "max_iter", f"{cfg.max_iter} must be at least 1")


def _generator(gen: torch.Generator | int) -> torch.Generator:
    return gen if isinstance(gen, torch.Generator) else torch.Generator().manual_seed(int(gen))


def split(n: int, test_fraction: float, gen: torch.Generator | int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random train/test split of range(n): (train_idx, test_idx), int64, both non-empty.

    The test split has round(n * test_fraction) items (at least 1); gen is a seeded
    torch.Generator (or an int seed).
    """
    require(n >= 2, "n", f"{n} items cannot be split; need at least 2")
    require(0.0 < test_fraction < 1.0, "test_fraction", f"{test_fraction} must be in (0, 1)")
    n_te = min(max(1, round(n * test_fraction)), n - 1)
    perm = torch.randperm(n, generator=_generator(gen))
    return perm[n_te:], perm[:n_te]


def standardize(H_tr: torch.Tensor, H_te: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(H - mean_tr) / std_tr for both splits; constant features are only centred."""
    mean = H_tr.mean(0)
    std = H_tr.std(0, unbiased=False)
    std = torch.where(std > _STD_EPS * (1.0 + mean.abs()), std, torch.ones_like(std))
    return (H_tr - mean) / std, (H_te - mean) / std


def ridge_probe(H_tr: torch.Tensor, y_tr: torch.Tensor, H_te: torch.Tensor, y_te: torch.Tensor,
                l2: float = 1e-3) -> dict:
    """Ridge regression from H (N, D) to real targets y (N,) or (N, K).

    Returns {"r2", "mse", "baseline_mse"}: the test mse (averaged over outputs), the test mse
    of predicting the train mean, and r2 = 1 - mse / baseline_mse.
    """
    require(l2 >= 0.0, "l2", f"{l2} must be non-negative")
    X_tr, X_te = standardize(H_tr.float(), H_te.float())
    y_tr = y_tr.double().reshape(y_tr.shape[0], -1)                               # (N, K)
    y_te = y_te.double().reshape(y_te.shape[0], -1)
    n, d = X_tr.shape
    A = torch.cat([X_tr.double(), torch.ones(n, 1, dtype=torch.float64)], 1)     # (N, D+1)
    G = A.T @ A / n                                                                # (D+1, D+1)
    G[:d, :d] += l2 * torch.eye(d, dtype=torch.float64)
    G[:d, :d] += 1e-9 * torch.eye(d, dtype=torch.float64)                        # constant features, l2=0
    wb = torch.linalg.solve(G, A.T @ y_tr / n)                                     # (D+1, K)
    pred = X_te.double() @ wb[:d] + wb[d]                                          # (N_te, K)
    mse = float(((pred - y_te) ** 2).mean())
    base = float(((y_te - y_tr.mean(0)) ** 2).mean())
    return {"r2": 1.0 - mse / max(base, 1e-12), "mse": mse, "baseline_mse": base}


def fit_logistic(X: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float = 1e-3,
                 max_iter: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression on (already standardized) X (N, D), y (N,) int.

    Full-batch L-BFGS on mean cross-entropy + l2 ||W||^2 (bias unpenalized); returns
    W (D, C), b (C,).
    """
    n, d = X.shape
    X = X.float().contiguous()
    Y = torch.zeros(n, n_classes).scatter_(1, y[:, None], 1.0)                    # (N, C) one-hot
    counts = Y.sum(0)
    W = torch.zeros(d, n_classes, requires_grad=True)
    b = torch.log((counts + 1.0) / (n + n_classes)).requires_grad_(True)          # class prior
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, history_size=10,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-10)

    def closure():
        with torch.no_grad():
            logits = torch.addmm(b, X, W)                                          # (N, C)
            lse = torch.logsumexp(logits, 1, keepdim=True)                         # (N, 1)
            loss = (lse.sum() - (logits * Y).sum()) / n + l2 * (W * W).sum()
            G = torch.exp(logits - lse).sub_(Y).div_(n)                            # dloss/dlogits
            W.grad = torch.addmm(W, X.T, G, beta=2.0 * l2)
            b.grad = G.sum(0)
        return loss

    opt.step(closure)
    return W.detach(), b.detach()


def logistic_probe(H_tr: torch.Tensor, y_tr: torch.Tensor, H_te: torch.Tensor, y_te: torch.Tensor,
                   n_classes: int | None = None, l2: float = 1e-3, max_iter: int = 100) -> dict:
    """Multinomial logistic probe from H (N, D) to classes y (N,) in 0 .. n_classes-1.

    Features are standardized with the train split's mean and std. Returns {"accuracy",
    "loss" (test cross-entropy, nats), "majority" (test accuracy of always predicting the
    train's most frequent class)}.
    """
    require(l2 >= 0.0, "l2", f"{l2} must be non-negative")
    require(max_iter >= 1, "max_iter", f"{max_iter} must be at least 1")
    y_tr, y_te = y_tr.long().reshape(-1), y_te.long().reshape(-1)
    top = int(max(y_tr.max(), y_te.max())) + 1
    n_classes = top if n_classes is None else n_classes
    require(top <= n_classes and int(min(y_tr.min(), y_te.min())) >= 0, "n_classes",
            f"labels must lie in 0 .. {n_classes - 1}; got {int(min(y_tr.min(), y_te.min()))} .. {top - 1}")
    majority_class = int(torch.bincount(y_tr, minlength=n_classes).argmax())
    majority = float((y_te == majority_class).float().mean())
    X_tr, X_te = standardize(H_tr.float(), H_te.float())
    W, b = fit_logistic(X_tr, y_tr, n_classes, l2, max_iter)
    logits = torch.addmm(b, X_te, W)                                               # (N_te, C)
    loss = float(torch.nn.functional.cross_entropy(logits, y_te))
    accuracy = float((logits.argmax(1) == y_te).float().mean())
    return {"accuracy": accuracy, "loss": loss, "majority": majority}


def control_labels(tokens: torch.Tensor, labels: torch.Tensor, gen: torch.Generator | int) -> torch.Tensor:
    """Hewitt & Liang's control task: one random label per token type, consistent across occurrences.

    tokens (N,) int: the input token id at each position; labels (N,) or (N, K): the real
    labels. Each type's label is the label of a uniformly drawn position, i.e. a draw from the
    empirical label distribution. Returns a tensor shaped and typed like labels.
    """
    tokens = tokens.reshape(-1)
    require(tokens.shape[0] == labels.shape[0], "tokens",
            f"{tokens.shape[0]} tokens for {labels.shape[0]} labels")
    types, inverse = torch.unique(tokens, return_inverse=True)                     # (V,), (N,)
    draw = torch.randint(0, labels.shape[0], (types.shape[0],), generator=_generator(gen))
    return labels[draw][inverse]


def window_ids(tokens: torch.Tensor, window: int) -> torch.Tensor:
    """(B, T) token ids -> (B, T, window): the current token and the window - 1 before it, most
    recent first; positions before the start hold -1. (N,) ids are taken as one sequence."""
    tokens = tokens.long()
    if tokens.dim() == 1:
        tokens = tokens[None]
    out = torch.full((*tokens.shape, window), -1, dtype=torch.long)
    for j in range(window):
        out[:, j:, j] = tokens[:, : tokens.shape[1] - j]
    return out


def window_onehot(ids: torch.Tensor, n_types: int) -> torch.Tensor:
    """(N, window) ids in -1 .. n_types-1 -> (N, window * (n_types + 1)) one-hot features."""
    n, w = ids.shape
    X = torch.zeros(n, w, n_types + 1)
    X.scatter_(2, (ids + 1)[..., None], 1.0)
    return X.reshape(n, w * (n_types + 1))


def _flatten(hiddens, labels, tokens, kind):
    """(..., D) hiddens to (N, D), labels to (N,) [(N, K) regression], dropping unscored positions."""
    hs = [h.reshape(-1, h.shape[-1]) for h in hiddens]
    n = hs[0].shape[0]
    require(all(h.shape[0] == n for h in hs), "hiddens", "every layer must have the same positions")
    if kind == "classification":
        labels = labels.reshape(-1).long()
        keep = labels >= 0                                                          # IGNORE (-100) dropped
    else:
        labels = (labels.reshape(-1) if labels.numel() == n else labels.reshape(n, -1)).float()
        keep = torch.isfinite(labels.reshape(n, -1)).all(1)
    require(labels.shape[0] == n, "labels", f"{labels.shape[0]} labels for {n} positions")
    if tokens is not None:
        require(tokens.shape[0] * tokens.shape[1] == n, "tokens",
                f"{tokens.shape[0] * tokens.shape[1]} tokens for {n} positions")
        tokens = tokens.reshape(n, -1)                                             # (N, window)
        tokens = tokens[keep]
    return [h[keep] for h in hs], labels[keep], tokens


def probe_layers(hiddens: list[torch.Tensor], labels: torch.Tensor, tokens: torch.Tensor | None = None,
                 kind: str = "classification", test_fraction: float = 0.2, l2: float = 1e-3,
                 max_iter: int = 100, seed: int = 0, window: int = 1) -> dict:
    """One probe per layer on a shared held-out split; with tokens, also the control task and the
    input baseline.

    hiddens: one (N, D) (or (B, T, D)) tensor per layer; labels (N,) (or (B, T)): class ids
    for classification (negative ids, e.g. IGNORE, are dropped), real values for regression
    ((N, K) allowed); tokens (N,) (or (B, T)): the input token ids, for the control task.

    Returns {"kind", "layers": [0 .. L-1], "score": [per layer] (accuracy or R^2),
    "loss": [per layer] (test cross-entropy or mse), "baseline" (majority accuracy, or 0.0:
    the R^2 of the train mean), "best_layer", "n_train", "n_test"}; with tokens also
    "control": [per layer], "selectivity": [score - control], "control_baseline", "window",
    "input_score" (the same probe on the one-hot of the last `window` tokens) and "input_gain":
    [score - input_score].
    """
    cfg = ProbeConfig(kind=kind, test_fraction=test_fraction, l2=l2, max_iter=max_iter, seed=seed,
                      window=window)
    require(len(hiddens) >= 1, "hiddens", "need at least one layer")
    ids = None if tokens is None else window_ids(tokens.reshape(tokens.shape[0], -1) if tokens.dim() > 1
                                                 else tokens, cfg.window)
    hs, y, ids = _flatten(hiddens, labels, ids, cfg.kind)
    tok = None if ids is None else ids[:, 0]
    require(y.shape[0] >= 2, "labels", f"{y.shape[0]} scored positions; need at least 2")
    gen = torch.Generator().manual_seed(cfg.seed)
    tr, te = split(y.shape[0], cfg.test_fraction, gen)
    targets = {"score": y}
    if tok is not None:
        targets["control"] = control_labels(tok, y, gen)
    n_classes = int(y.max()) + 1 if cfg.kind == "classification" else None
    out: dict = {"kind": cfg.kind, "layers": list(range(len(hs))), "n_train": int(tr.shape[0]),
                 "n_test": int(te.shape[0])}
    for name, t in targets.items():
        scores, losses = [], []
        for h in hs:
            if cfg.kind == "classification":
                r = logistic_probe(h[tr], t[tr], h[te], t[te], n_classes, cfg.l2, cfg.max_iter)
                scores.append(r["accuracy"])
                losses.append(r["loss"])
                base = r["majority"]
            else:
                r = ridge_probe(h[tr], t[tr], h[te], t[te], cfg.l2)
                scores.append(r["r2"])
                losses.append(r["mse"])
                base = 0.0
        if name == "score":
            out.update(score=scores, loss=losses, baseline=base)
        else:
            out.update(control=scores, control_baseline=base)
    out["best_layer"] = int(torch.tensor(out["score"]).argmax())
    if "control" in out:
        out["selectivity"] = [s - c for s, c in zip(out["score"], out["control"])]
        X = window_onehot(ids, int(ids.max()) + 1)
        if cfg.kind == "classification":
            r = logistic_probe(X[tr], y[tr], X[te], y[te], n_classes, cfg.l2, cfg.max_iter)
            inp = r["accuracy"]
        else:
            inp = ridge_probe(X[tr], y[tr], X[te], y[te], cfg.l2)["r2"]
        out.update(window=cfg.window, input_score=inp, input_gain=[s - inp for s in out["score"]])
    return out
