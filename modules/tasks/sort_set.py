"""Sorting a set of numbers with pointers: the sorting experiment of Vinyals, Bengio & Kudlur 2016,
"Order Matters: Sequence to Sequence for Sets" (ICLR 2016, arXiv 1511.06391, Section 4.2, Table 1).

    x: (B, n, 1)  n numbers drawn i.i.d. uniform in [0, 1], in the order drawn (itself random)
    y: (B, n)     y_t = the index in x of the element written at step t

With `output_order: ascending` (the paper's task) y is argsort(x): the numbers from the least to
the greatest. With `output_order: scrambled` step t writes the element of rank sigma(t), for a
fixed permutation sigma of 0 .. n-1 drawn once from `order_seed` (and n): the same set, the same
information, only another fixed order of the output. This is our test of the paper's claim that
the order of the outputs matters for learning (Section 5: the chain rule holds in any order, but
some orders are easier to learn); the paper does not run sorting in a scrambled order.

The model is called as `model(x, targets=y)` (teacher-forced pointer logits, (B, n, n)) for the
loss and as `model(x)` (greedy decoding) for the metrics:
  loss                   mean cross-entropy of the teacher-forced pointers (nats per step)
  accuracy               the paper's metric: the fraction of sets whose whole output is right
  pointer_accuracy       the fraction of greedy steps pointing at the right element
  permutation_agreement  the fraction of sets on which the greedy output (as a sequence of values)
                         is the same when the set is presented in another random order: 1 for a
                         model that sees a set, below 1 for one that sees a sequence
Eval axis: `n` (a model trained on one set size evaluated on another).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from ..config import require
from ..metrics import FRACTION, LOSS, Metric
from .base import Task

EVAL_CHUNK = 500   # sets per forward pass at evaluation


@dataclass
class SortSetTask(Task):
    n: int = 5                                            # set size N
    output_order: Literal["ascending", "scrambled"] = "ascending"
    order_seed: int = 0                                   # scrambled: draws sigma
    eval_size: int = 2000                                 # sets drawn for evaluate()

    metrics: ClassVar[tuple[str, ...]] = ("loss", "accuracy", "pointer_accuracy", "permutation_agreement")
    # permutation_agreement: a model that ignores its input agrees with itself perfectly, so it is
    # a property, not a skill: no better side
    metric_facts: ClassVar = {"loss": LOSS, "accuracy": FRACTION, "pointer_accuracy": FRACTION,
                              "permutation_agreement": Metric("none", 0.0, 1.0)}
    eval_axes: ClassVar[tuple[str, ...]] = ("n",)

    def chance(self) -> dict[str, float]:
        """Blind to the values, a pointer names the right element with probability 1/n (the input
        order is random), and a whole output is right with probability 1/n!; loss ln n per step."""
        return {"pointer_accuracy": 1.0 / self.n, "accuracy": 1.0 / math.factorial(self.n),
                "loss": math.log(self.n)}

    def __post_init__(self):
        require(self.n >= 2, "n", f"{self.n} must be at least 2")
        require(self.eval_size >= 1, "eval_size", f"{self.eval_size} must be at least 1")
        require(self.order_seed >= 0, "order_seed", f"{self.order_seed} must be at least 0")

    def spec(self) -> dict:
        return {"d_input": 1}

    def rank_order(self) -> torch.Tensor:
        """sigma, (n,): step t writes the element of rank sigma[t] (rank 0: the least)."""
        if self.output_order == "ascending":
            return torch.arange(self.n)
        g = torch.Generator().manual_seed(1_000_003 * self.order_seed + self.n)
        while True:                                       # never the identity: that is ascending
            sigma = torch.randperm(self.n, generator=g)
            if not torch.equal(sigma, torch.arange(self.n)):
                return sigma

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """y (B, n) for values x (B, n, 1): y[:, t] = index of the element of rank sigma[t]."""
        by_rank = x[..., 0].argsort(dim=1)                                             # (B, n)
        return by_rank[:, self.rank_order()]

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        x = torch.rand((batch_size, self.n, 1), generator=gen)                         # (B, n, 1)
        return {"x": x, "y": self.targets(x)}

    def loss(self, model, batch) -> torch.Tensor:
        logits = model(batch["x"], targets=batch["y"])                                 # (B, n, n)
        return F.cross_entropy(logits.flatten(0, 1).float(), batch["y"].flatten())

    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        nll = exact = right = agree = 0.0
        left = self.eval_size
        while left > 0:
            k = min(EVAL_CHUNK, left)
            left -= k
            b = self.batch(gen, k)
            perm = torch.argsort(torch.rand((k, self.n), generator=gen), dim=1)        # (k, n)
            x, y, perm = b["x"].to(device), b["y"].to(device), perm.to(device)
            tf = model(x, targets=y).float()                                           # (k, n, n)
            nll += F.cross_entropy(tf.flatten(0, 1), y.flatten(), reduction="sum").item()
            pred = model(x).argmax(-1)                                                 # (k, n) greedy
            hit = pred == y
            exact += hit.all(1).sum().item()
            right += hit.sum().item()
            x_perm = x.gather(1, perm[..., None].expand_as(x))                         # x_perm[j] = x[perm[j]]
            pred_perm = perm.gather(1, model(x_perm).argmax(-1))                       # back to x's indices
            agree += (pred_perm == pred).all(1).sum().item()
        sets, steps = self.eval_size, self.eval_size * self.n
        return {"loss": nll / steps, "accuracy": exact / sets, "pointer_accuracy": right / steps,
                "permutation_agreement": agree / sets}
