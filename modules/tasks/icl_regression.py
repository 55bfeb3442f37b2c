"""In-context linear regression: Garg et al. 2022, "What Can Transformers Learn In-Context? A
Case Study of Simple Function Classes" (section 3), and Akyürek et al. 2022/ICLR 2023, "What
learning algorithm is in-context learning? Investigations with linear models" (section 4).

Each prompt has its own weight vector; the model must fit it from the examples in its context.

    w ~ N(0, I_d),  x_i ~ N(0, I_d),  y_i = w . x_i + eps_i,  eps_i ~ N(0, noise_std^2),  i = 1..n_points

The prompt is 2 * n_points tokens of width d + 1, interleaved as in Garg et al.:

    x_1, y_1, x_2, y_2, ..., x_n, y_n      x token = [0, x_i],  y token = [y_i, 0, ..., 0]

A causal model (continuous inputs: d_input = d + 1, d_output = 1; `spec()` declares both) reads
it, and its output at x token i is its prediction of y_i from the k = i - 1 pairs before it.
Training loss: the squared error at every x token, averaged over the n_points positions (k = 0
.. n_points - 1) and, with `loss_per_dim` (the default), divided by d, so that predicting 0
scores 1 whatever d is (E y^2 = d). The batch is {"inputs": (B, 2n, d+1), "x": (B, n, d),
"y": (B, n), "w": (B, d)}, drawn on the CPU from the seeded generator; the noise is drawn even
when noise_std = 0, so prompts at two noise levels share their w and x.

Reference predictors, computed in the same job on the same prompts. Each predicts y at the query
x_{k+1} from the k pairs before it (X: k x d, Y: k); with k = 0 every one predicts 0 (w's mean):
  ols    minimum-norm least squares, w = pinv(X) Y (exact interpolation for k < d; for k >= d
         without noise, w itself)
  ridge  w = (X^T X + lambda I)^-1 X^T Y, lambda = ridge_lambda (default noise_std^2, the
         Bayes posterior mean under w's N(0, I) prior; 1e-8 without noise, i.e. ~ols)
  gd     one step of gradient descent from w = 0 on L(w) = 1/(2k) sum_i (w . x_i - y_i)^2, so
         w = (eta_k / k) X^T Y. eta_k = gd_lr when set; by default the step that minimizes the
         expected error of that one step at each k, eta_k = k / (k + d + 1 + noise_std^2)
         (it minimizes E||eta S w - w||^2 plus the noise term, S = X^T X / k): the best one step
  knn    the mean y of the knn_k nearest context x's (Euclidean; all of them when k < knn_k)
  avg    Garg et al.'s "averaging" estimator, w = (1/k) X^T Y (gd with a fixed step of 1)

Metrics (all divided by d; "the model" is the model being evaluated):
  mse            the model's squared error, E (yhat - y)^2 / d
  <b>_mse        the same for reference predictor b in (ols, ridge, gd, knn, avg)
  spd_<b>        Akyürek et al.'s squared prediction difference, E (yhat - yhat_b)^2 / d, for
                 b in (ols, ridge, gd, knn)
  spd_ratio_ols_gd, spd_ratio_ols_knn   spd_ols / spd_gd and spd_ols / spd_knn: below 1 when the
                 model is closer to least squares than to one-step GD (resp. 3-NN)
  spd_ratio_ridge_ols                   spd_ridge / spd_ols: below 1 when it is closer to ridge
The expectation runs over eval_size prompts and over the number of in-context examples k: at
k = `k` when the eval axis `k` is set, else uniformly over every k = 0 .. n_points - 1 (the
training loss's positions: then mse is the evaluation loss). A ratio is one of those means over
another (NaN when its denominator is 0).

Catalogue claims this gives (Garg Fig. 2, Akyürek Fig. 3), with `evaluate.sweep: {task.k: [...]}`:
  error falls with k          trend along task.k of mse, direction decreasing (e.g. k = 0, d/2,
                              d, 2d; past d the noiseless error is ~0 and barely moves, so end the
                              sweep at d or use statistic: spearman)
  ~0 past d without noise     threshold: mse at task.k = 2d below e.g. 0.05 (ols_mse there is 0)
  matches least squares       threshold: spd_ratio_ols_gd and spd_ratio_ols_knn < 1 (at a k, or
                              averaged over k with no sweep)
  with noise, closer to ridge threshold: spd_ratio_ridge_ols < 1 at some k >= d + 2 (e.g. 2d)
Least squares with noise at k = d and d + 1 has no finite expected error (E tr (X^T X)^-1 is
infinite for a k x d Gaussian X with k <= d + 1, and d / (k - d - 1) beyond): ols_mse and spd_ols
there, and so their means over k, are set by a few prompts and differ wildly between seeds, and
any sane model is "closer to ridge than to ols" at k = d. Read ols-based metrics with noise at
k >= d + 2 (or k < d, where ols interpolates). Without noise ols is exact from k = d on, so past
d spd_ols equals the model's own mse: spd_ratio_ols_gd < 1 there needs a model whose error is
below its distance to one-step GD, i.e. a well-trained one.
The other eval axes: `noise_std` (a noiseless-trained model on noisy prompts; the default ridge
lambda and gd step follow it) and `n_points` (longer prompts than trained on, as in Garg et al.'s
length-extrapolation figures; a learned position table must cover 2 * n_points).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..config import require
from ..metrics import Metric
from .base import Task

EVAL_CHUNK = 256                   # prompts per forward pass at evaluation
NOISELESS_RIDGE = 1e-8             # ridge lambda when noise_std = 0 and ridge_lambda is not set
BASELINES = ("ols", "ridge", "gd", "knn", "avg")
SPD_BASELINES = ("ols", "ridge", "gd", "knn")


@dataclass
class ICLRegressionTask(Task):
    dim: int = 8                   # d: size of x and w
    n_points: int | None = None    # (x, y) pairs per prompt; default 2 * dim + 1 (k up to 2d)
    noise_std: float = 0.0         # std of the label noise eps
    eval_size: int = 1024          # prompts drawn for evaluate()
    ridge_lambda: float | None = None   # default noise_std^2, or 1e-8 without noise
    knn_k: int = 3                 # neighbours averaged by the knn predictor
    gd_lr: float | None = None     # one-step GD step; default the best step at each k (see above)
    loss_per_dim: bool = True      # training loss divided by d
    k: int | None = None           # evaluation: metrics at k in-context examples; None: mean over k

    metrics: ClassVar[tuple[str, ...]] = (
        "mse", "ols_mse", "ridge_mse", "gd_mse", "knn_mse", "avg_mse",
        "spd_ols", "spd_ridge", "spd_gd", "spd_knn",
        "spd_ratio_ols_gd", "spd_ratio_ols_knn", "spd_ratio_ridge_ols",
    )
    # the model's error falls with training; the reference predictors' errors are not the model's;
    # a squared prediction difference (and a ratio of two) measures which algorithm the model is
    # like, which training may move either way
    metric_facts: ClassVar = {
        "mse": Metric("lower", 0.0, None, band=0.05),
        **{f"{b}_mse": Metric("none", 0.0, None, trained=False) for b in BASELINES},
        **{k: Metric("none", 0.0, None) for k in ("spd_ols", "spd_ridge", "spd_gd", "spd_knn", "spd_ratio_ols_gd",
                                                 "spd_ratio_ols_knn", "spd_ratio_ridge_ols")},
    }
    eval_axes: ClassVar[tuple[str, ...]] = ("k", "noise_std", "n_points")

    def chance(self) -> dict[str, float]:
        """mse of the predictor 0 (w's mean), which ignores the context: E y^2 / d = 1 + noise^2 / d."""
        return {"mse": 1.0 + self.noise_std ** 2 / self.dim}

    def __post_init__(self):
        require(self.dim >= 1, "dim", f"{self.dim} must be at least 1")
        if self.n_points is None:
            self.n_points = 2 * self.dim + 1
        require(self.n_points >= 1, "n_points", f"{self.n_points} must be at least 1")
        require(self.noise_std >= 0.0, "noise_std", f"{self.noise_std} must not be negative")
        require(self.eval_size >= 1, "eval_size", f"{self.eval_size} must be at least 1")
        require(self.ridge_lambda is None or self.ridge_lambda > 0.0, "ridge_lambda",
                f"{self.ridge_lambda} must be positive (lambda -> 0 is the ols predictor)")
        require(self.knn_k >= 1, "knn_k", f"{self.knn_k} must be at least 1")
        require(self.gd_lr is None or self.gd_lr > 0.0, "gd_lr", f"{self.gd_lr} must be positive")
        require(self.k is None or 0 <= self.k < self.n_points, "k",
                f"{self.k} must be between 0 and n_points - 1 = {self.n_points - 1}")

    @property
    def lam(self) -> float:
        """The ridge lambda in use."""
        if self.ridge_lambda is not None:
            return self.ridge_lambda
        return self.noise_std ** 2 if self.noise_std > 0 else NOISELESS_RIDGE

    def gd_step(self, k: int) -> float:
        """The one-step GD step size eta_k used with k examples."""
        if self.gd_lr is not None:
            return self.gd_lr
        return k / (k + self.dim + 1 + self.noise_std ** 2)

    def spec(self) -> dict:
        return {"d_input": self.dim + 1, "d_output": 1}

    # ---- data -----------------------------------------------------------------------------------

    @staticmethod
    def prompt(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Interleave x (B, n, d) and y (B, n) into tokens (B, 2n, d+1): [0, x_i] then [y_i, 0]."""
        B, n, d = x.shape
        z = x.new_zeros(B, n, 2, d + 1)
        z[:, :, 0, 1:] = x
        z[:, :, 1, 0] = y
        return z.view(B, 2 * n, d + 1)

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        B, n, d = batch_size, self.n_points, self.dim
        w = torch.randn(B, d, generator=gen)
        x = torch.randn(B, n, d, generator=gen)
        eps = torch.randn(B, n, generator=gen)
        y = torch.einsum("bnd,bd->bn", x, w) + self.noise_std * eps
        return {"inputs": self.prompt(x, y), "x": x, "y": y, "w": w}

    @staticmethod
    def predictions(model, inputs: torch.Tensor) -> torch.Tensor:
        """The model's prediction at every x token, (B, n)."""
        return model(inputs)[:, 0::2, 0]

    def loss(self, model, batch) -> torch.Tensor:
        err = (self.predictions(model, batch["inputs"]).float() - batch["y"].float()) ** 2   # (B, n)
        return err.mean() / self.dim if self.loss_per_dim else err.mean()

    # ---- reference predictors -------------------------------------------------------------------

    def baselines(self, x: torch.Tensor, y: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
        """Each reference predictor's prediction of y_{k+1} from the first k pairs of x (B, n, d),
        y (B, n): {name: (B,)}, in float64 on x's device."""
        x, y = x.double(), y.double()
        B, d = x.shape[0], x.shape[2]
        q = x[:, k]                                                                    # (B, d)
        if k == 0:
            zero = q.new_zeros(B)
            return {b: zero for b in BASELINES}
        X, Y = x[:, :k], y[:, :k]                                                      # (B, k, d), (B, k)
        XtY = torch.einsum("bkd,bk->bd", X, Y)                                         # (B, d)
        w_ols = (torch.linalg.pinv(X) @ Y[..., None])[..., 0]                          # (B, d)
        A = X.transpose(1, 2) @ X + self.lam * torch.eye(d, dtype=X.dtype, device=X.device)
        w_ridge = torch.linalg.solve(A, XtY)                                           # (B, d)
        dist = ((X - q[:, None]) ** 2).sum(-1)                                         # (B, k)
        near = dist.topk(min(self.knn_k, k), dim=1, largest=False).indices             # (B, m)

        def at(w):
            return (w * q).sum(-1)

        return {
            "ols": at(w_ols),
            "ridge": at(w_ridge),
            "gd": at(self.gd_step(k) / k * XtY),
            "knn": Y.gather(1, near).mean(1),
            "avg": at(XtY / k),
        }

    # ---- evaluation -----------------------------------------------------------------------------

    @torch.no_grad()
    def curves(self, model, gen: torch.Generator, device: str = "cpu",
               ks: list[int] | None = None) -> dict[str, torch.Tensor]:
        """Per-k means over eval_size prompts, each (len(ks),) float64, all divided by d:
        "k", "mse", "<b>_mse" for every baseline and "spd_<b>" for those in SPD_BASELINES."""
        ks = list(range(self.n_points)) if ks is None else list(ks)
        sums = {name: torch.zeros(len(ks), dtype=torch.float64)
                for name in ["mse", *(f"{b}_mse" for b in BASELINES), *(f"spd_{b}" for b in SPD_BASELINES)]}
        left = self.eval_size
        while left > 0:
            n = min(EVAL_CHUNK, left)
            left -= n
            b = self.batch(gen, n)
            pred = self.predictions(model, b["inputs"].to(device)).double().cpu()     # (B, n_points)
            x, y = b["x"], b["y"].double()
            for j, k in enumerate(ks):
                p, t = pred[:, k], y[:, k]
                sums["mse"][j] += ((p - t) ** 2).sum()
                for name, pb in self.baselines(x, y, k).items():
                    sums[f"{name}_mse"][j] += ((pb - t) ** 2).sum()
                    if name in SPD_BASELINES:
                        sums[f"spd_{name}"][j] += ((p - pb) ** 2).sum()
        out = {name: s / (self.eval_size * self.dim) for name, s in sums.items()}
        out["k"] = torch.tensor(ks, dtype=torch.float64)
        return out

    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        c = self.curves(model, gen, device, None if self.k is None else [self.k])
        m = {name: float(v.mean()) for name, v in c.items() if name != "k"}

        def ratio(a: str, b: str) -> float:
            return m[a] / m[b] if m[b] > 0 else float("nan")

        m["spd_ratio_ols_gd"] = ratio("spd_ols", "spd_gd")
        m["spd_ratio_ols_knn"] = ratio("spd_ols", "spd_knn")
        m["spd_ratio_ridge_ols"] = ratio("spd_ridge", "spd_ols")
        return {name: m[name] for name in self.metrics}
