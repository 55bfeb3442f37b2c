"""What the synthetic sequence tasks share: token batches, a scored-position loss, and the metrics.

A batch is {"x": (B, T) int64 tokens, "y": (B, T) int64 targets}. The model's logits at
position t are scored against y[:, t] wherever y is not IGNORE (-100, torch's ignore_index);
every other position is free. A task that trains on more positions than it evaluates (e.g. the
full language-modelling loss of flip-flop) adds "y_loss" with the same layout, used by `loss`.

Metrics, over the scored positions of `eval_size` sequences drawn by `eval_batch`:
  loss               mean cross-entropy per scored token (nats)
  accuracy           fraction of scored tokens whose argmax is right
  sequence_accuracy  fraction of sequences whose scored tokens are all right

Chance (`chance()`): the best predictor that never reads the input answers, at each position t,
the commonest target seen there, with the targets' frequencies at t as its distribution. Its
accuracy, sequence accuracy and loss are measured on CHANCE_SEQUENCES evaluation sequences drawn
from a fixed seed, so every seed of a model is compared with the same level. A task whose
structure allows a better input-blind shortcut (MQAR) raises it in its own `chance()`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..config import require
from ..metrics import FRACTION, LOSS
from .base import Task

IGNORE = -100
EVAL_CHUNK = 256   # sequences per forward pass at evaluation
CHANCE_SEQUENCES = 2048
CHANCE_SEED = 7_000_003


@dataclass
class SequenceTask(Task):
    eval_size: int = 512           # sequences drawn for evaluate()

    metrics: ClassVar[tuple[str, ...]] = ("loss", "accuracy", "sequence_accuracy")
    metric_facts: ClassVar = {"loss": LOSS, "accuracy": FRACTION, "sequence_accuracy": FRACTION}

    def __post_init__(self):
        require(self.eval_size >= 1, "eval_size", f"{self.eval_size} must be at least 1")

    def eval_batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        """The evaluation distribution; the training one unless a task's eval axes change it."""
        return self.batch(gen, batch_size)

    probe_labels: ClassVar[dict[str, str]] = {"position": "classification", "target": "classification"}

    def probe_data(self, gen: torch.Generator, positions: int) -> dict:
        """Evaluation sequences until `positions` positions; labels: the position t and the scored
        target y_t (IGNORE, i.e. left out, where nothing is scored)."""
        xs, ys, n = [], [], 0
        while n < positions:
            b = self.eval_batch(gen, EVAL_CHUNK)
            xs.append(b["x"])
            ys.append(b["y"])
            n += b["x"].numel()
        T = min(x.shape[1] for x in xs)              # batches of varying length are cut to the shortest
        x = torch.cat([t[:, :T] for t in xs])
        y = torch.cat([t[:, :T] for t in ys])
        pos = torch.arange(T)[None].expand_as(x).clone()
        return {"x": x, "labels": {"position": pos, "target": y}, "label_kinds": dict(self.probe_labels),
                "vocab_size": self.spec()["vocab_size"]}

    def chance(self) -> dict[str, float]:
        if getattr(self, "_chance", None) is None:
            self._chance = {k: v for k, v in position_majority(self).items() if k in self.metrics}
        return dict(self._chance)

    def loss(self, model, batch) -> torch.Tensor:
        y = batch.get("y_loss", batch["y"])
        logits = model(batch["x"])                                                     # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=IGNORE)

    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        nll = correct = tokens = seq_right = seqs = 0.0
        left = self.eval_size
        while left > 0:
            n = min(EVAL_CHUNK, left)
            left -= n
            b = self.eval_batch(gen, n)
            x, y = b["x"].to(device), b["y"].to(device)
            logits = model(x).float()                                                  # (B, T, V)
            scored = y != IGNORE                                                       # (B, T)
            nll += F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE,
                                   reduction="sum").item()
            right = (logits.argmax(-1) == y) & scored                                  # (B, T)
            correct += right.sum().item()
            tokens += scored.sum().item()
            has = scored.any(1)
            seq_right += ((right | ~scored).all(1) & has).sum().item()
            seqs += has.sum().item()
        return {
            "loss": nll / tokens if tokens else float("nan"),
            "accuracy": correct / tokens if tokens else float("nan"),
            "sequence_accuracy": seq_right / seqs if seqs else float("nan"),
        }


def position_majority(task: SequenceTask, sequences: int = CHANCE_SEQUENCES) -> dict[str, float]:
    """loss, accuracy and sequence_accuracy of the input-blind predictor that answers, at each
    position, the commonest target there (its distribution: the targets' frequencies there)."""
    gen = torch.Generator().manual_seed(CHANCE_SEED)
    ys = []
    left = sequences
    while left > 0:
        n = min(EVAL_CHUNK, left)
        left -= n
        ys.append(task.eval_batch(gen, n)["y"])
    T = max(y.shape[1] for y in ys)
    y = torch.cat([F.pad(t, (0, T - t.shape[1]), value=IGNORE) for t in ys])          # (N, T)
    scored = y != IGNORE
    V = int(y.max().item()) + 1 if scored.any() else 1
    counts = torch.zeros(T, V)                                                         # (T, V)
    counts.scatter_add_(1, y.clamp(min=0).T, scored.T.float())
    total = counts.sum(1, keepdim=True)                                                # (T, 1)
    if total.sum() == 0:
        return {}
    majority = counts.argmax(1)                                                        # (T,)
    p = counts / total.clamp(min=1)
    logp = torch.log(p.clamp(min=1e-12))
    nll = -(counts * logp).sum()
    right = (y == majority[None]) & scored
    has = scored.any(1)
    seq_right = ((right | ~scored).all(1) & has).sum()
    tokens = scored.sum()
    return {"loss": float(nll / tokens), "accuracy": float(right.sum() / tokens),
            "sequence_accuracy": float(seq_right / has.sum().clamp(min=1))}


def check_pos(task, *keys: str, minimum: int = 1) -> None:
    for key in keys:
        v = getattr(task, key)
        require(v >= minimum, key, f"{v} must be at least {minimum}")


def randint(gen: torch.Generator, low: int, high: int, shape) -> torch.Tensor:
    """Uniform integers in [low, high), drawn on the CPU from `gen`."""
    return torch.randint(low, high, tuple(shape), generator=gen)


class LengthBatches:
    """The batches of a task whose sequences vary in length: training lengths uniform in
    [min_len, max_len], evaluation at `length` when it is set (the task's length axis), else the
    training distribution. The task gives `make(gen, lengths)` and the three fields."""

    min_len: int
    max_len: int
    length: int | None

    def make(self, gen: torch.Generator, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        return self.make(gen, sample_lengths(gen, batch_size, self.min_len, self.max_len))

    def eval_batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        if self.length is None:
            return self.batch(gen, batch_size)
        return self.make(gen, torch.full((batch_size,), self.length, dtype=torch.long))


def sample_lengths(gen: torch.Generator, batch_size: int, lo: int, hi: int) -> torch.Tensor:
    """A length per sequence, uniform in [lo, hi]; (B,)."""
    return randint(gen, lo, hi + 1, (batch_size,))
