"""Sparse synthetic features with importance decay (Elhage et al. 2022, "Toy Models of
Superposition", section "Demonstrating Superposition").

Each of n features is x_i = 0 with probability S (the sparsity), else x_i ~ U[0, 1],
independently. Feature i has importance I_i = decay**i and the loss is the importance-
weighted squared reconstruction error  L = E_x sum_i I_i (x_i - x'_i)^2.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..config import require
from ..metrics import COUNT, Metric
from .base import Task


@dataclass
class SuperpositionTask(Task):
    n_features: int = 20
    sparsity: float = 0.0          # S: probability that a feature is zero
    importance_decay: float = 0.7  # I_i = importance_decay ** i
    eval_batch: int = 10_000       # samples used for the loss metric
    represented_threshold: float = 0.5  # a feature is "represented" when ||W_i|| > this

    metrics: ClassVar[tuple[str, ...]] = (
        "loss",
        "features_represented",
        "dimensions_per_feature",
        "features_per_dimension",
    )
    # counts of what the model stores: sparsity, not training alone, decides which way they move
    metric_facts: ClassVar = {"loss": Metric("lower", 0.0, None, band=0.0), "features_represented": COUNT,
                              "dimensions_per_feature": COUNT, "features_per_dimension": COUNT}
    eval_axes: ClassVar[tuple[str, ...]] = ("sparsity",)

    def __post_init__(self):
        require(self.n_features >= 1, "n_features", f"{self.n_features} must be at least 1")
        require(0.0 <= self.sparsity < 1.0, "sparsity", f"{self.sparsity} must be in [0, 1)")
        require(0.0 < self.importance_decay <= 1.0, "importance_decay", f"{self.importance_decay} must be in (0, 1]")
        require(self.eval_batch >= 1, "eval_batch", f"{self.eval_batch} must be at least 1")

    def spec(self) -> dict:
        return {"n_features": self.n_features}

    def importance(self, device="cpu") -> torch.Tensor:
        return self.importance_decay ** torch.arange(self.n_features, dtype=torch.float32, device=device)

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        shape = (batch_size, self.n_features)
        values = torch.rand(shape, generator=gen)
        present = torch.rand(shape, generator=gen) >= self.sparsity
        return {"x": values * present}

    def loss(self, model, batch) -> torch.Tensor:
        x = batch["x"]
        err = (x - model(x)) ** 2                                  # (B, n)
        return (err * self.importance(x.device)).sum(-1).mean()

    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        batch = {k: v.to(device) for k, v in self.batch(gen, self.eval_batch).items()}
        W = model.feature_weights().float()                        # (m, n)
        m = W.shape[0]
        norms = W.norm(dim=0)                                      # ||W_i|| per feature
        frob2 = float((W ** 2).sum())
        return {
            "loss": float(self.loss(model, batch)),
            "features_represented": float((norms > self.represented_threshold).sum()),
            # D* = m / ||W||_F^2 (paper, section "Feature Dimensionality")
            "dimensions_per_feature": m / frob2 if frob2 > 0 else float("inf"),
            "features_per_dimension": frob2 / m,
        }
