"""The adding problem: Hochreiter & Schmidhuber 1997, "Long Short-Term Memory" (Neural Computation
9(8), Section 5.4, experiment 4), in the form used by Arjovsky, Shah & Bengio 2016 ("Unitary
Evolution Recurrent Neural Networks", arXiv 1511.06464) and later long-range papers, e.g. Orvieto
et al. 2023, "Resurrecting Recurrent Neural Networks for Long Sequences" (arXiv 2303.06349),
whose LRU is tested on it in catalogue/lru.yaml.

Each sequence has T = seq_len steps of two continuous channels, x: (B, T, 2):

    x[:, t, 0] = v_t ~ U(0, 1)                       the value channel
    x[:, t, 1] = 1 at exactly two positions i < j     the marker channel (0 elsewhere)
    target     y = v_i + v_j                          read from the model's output at t = T - 1

`markers: halves` (the usual form) draws i uniformly in [0, T/2) and j uniformly in [T/2, T)
(T odd: the first half is the first floor(T/2) steps), so the first marked value must be held
for T/2 steps on average; `markers: anywhere` draws two distinct positions uniformly.
The model reads the features (d_input = 2) and its output at the last position, one regression
channel (d_output = 1; `spec()` declares both), is the prediction: the loss is the squared error
(yhat_{T-1} - y)^2 averaged over the batch, every other position is free. A causal model sees the
whole sequence at its last step.

Metrics over `eval_size` fresh sequences:
  mse        mean squared error of the prediction at the last position
  accuracy   fraction of sequences with |yhat - y| < 0.04, Hochreiter & Schmidhuber's criterion
             of a correctly processed sequence
The constant predictor yhat = E y = 1 scores mse = Var(v_i + v_j) = 2/12 = 1/6 ~ 0.167 (the
"baseline" of the LRU and uRNN papers): a model below it has learned something, one near 0 has
solved the task. Deviations from Hochreiter & Schmidhuber: their values are U(-1, 1), the first
marker lies in the first 10 steps and the second in the first half, and the target is rescaled to
0.5 + (v_i + v_j) / 4; here the later, more common U(0, 1) / halves / plain-sum form.
Eval axes: `seq_len` (a model trained at one length evaluated at another) and `markers` (a model
trained with one marker in each half, scored with two markers anywhere: both may sit in the first
half, to be held for longer, or side by side; it tells a general sum from a positional shortcut).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from ..config import require
from ..metrics import FRACTION, Metric
from .base import Task

EVAL_CHUNK = 256                   # sequences per forward pass at evaluation
TOLERANCE = 0.04                   # |error| below which a sequence counts as right (H&S 1997)
CONSTANT_MSE = 1.0 / 6.0           # Var(U(0,1) + U(0,1)): the best constant predictor's mse


@dataclass
class AddingTask(Task):
    seq_len: int = 200             # T
    markers: Literal["halves", "anywhere"] = "halves"
    eval_size: int = 1024          # sequences drawn for evaluate()

    metrics: ClassVar[tuple[str, ...]] = ("mse", "accuracy")
    # the constant predictor E y = 1: mse 1/6; |1 - y| < 0.04 for y = v_i + v_j (triangular density
    # 1 - |y - 1| around 1) with probability 2 x 0.04 - 0.04^2 = 0.0784
    metric_facts: ClassVar = {"mse": Metric("lower", 0.0, None, band=0.01), "accuracy": FRACTION}
    eval_axes: ClassVar[tuple[str, ...]] = ("seq_len", "markers")

    def __post_init__(self):
        require(self.seq_len >= 2, "seq_len", f"{self.seq_len} must be at least 2 (two marked positions)")
        require(self.eval_size >= 1, "eval_size", f"{self.eval_size} must be at least 1")

    def chance(self) -> dict[str, float]:
        return {"mse": CONSTANT_MSE, "accuracy": 2 * TOLERANCE - TOLERANCE ** 2}

    def spec(self) -> dict:
        return {"d_input": 2, "d_output": 1}

    def marker_positions(self, gen: torch.Generator, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The two marked positions i < j of each sequence, (B,) each."""
        T, B = self.seq_len, batch_size
        if self.markers == "halves":
            half = T // 2
            i = torch.randint(0, half, (B,), generator=gen)
            j = torch.randint(half, T, (B,), generator=gen)
            return i, j
        a = torch.randint(0, T, (B,), generator=gen)
        b = torch.randint(0, T - 1, (B,), generator=gen)
        b = b + (b >= a).long()                                                        # distinct from a
        return torch.minimum(a, b), torch.maximum(a, b)

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        B, T = batch_size, self.seq_len
        values = torch.rand(B, T, generator=gen)                                       # (B, T)
        i, j = self.marker_positions(gen, B)                                           # (B,), (B,)
        marks = torch.zeros(B, T)
        rows = torch.arange(B)
        marks[rows, i] = 1.0
        marks[rows, j] = 1.0
        x = torch.stack([values, marks], dim=-1)                                       # (B, T, 2)
        y = values[rows, i] + values[rows, j]                                          # (B,)
        return {"x": x, "y": y}

    @staticmethod
    def prediction(model, x: torch.Tensor) -> torch.Tensor:
        """The model's output at the last position, (B,)."""
        return model(x)[:, -1, 0]

    def loss(self, model, batch) -> torch.Tensor:
        return ((self.prediction(model, batch["x"]).float() - batch["y"].float()) ** 2).mean()

    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        sq = right = 0.0
        left = self.eval_size
        while left > 0:
            n = min(EVAL_CHUNK, left)
            left -= n
            b = self.batch(gen, n)
            err = self.prediction(model, b["x"].to(device)).double().cpu() - b["y"].double()   # (n,)
            sq += (err ** 2).sum().item()
            right += (err.abs() < TOLERANCE).sum().item()
        return {"mse": sq / self.eval_size, "accuracy": right / self.eval_size}
