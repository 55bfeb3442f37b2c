"""Multi-query associative recall (MQAR), the synthetic task of Arora et al. 2023, "Zoology:
Measuring and Improving Recall in Efficient Language Models" (section 3.1), generated as
zoology's `multiquery_ar`.

    x:  k_1 v_1 k_2 v_2 ... k_n v_n | ... k_a ? ... k_b ? ...
    y:  at a query key k_j, its value v_j; every other position is not scored

Keys are drawn without replacement from [1, vocab_size/2), values from [vocab_size/2,
vocab_size). After the 2n context tokens, each key is queried once, at an even offset g of the
query region chosen with a power law p(g) ~ g^(power_a - 1) (short gaps are likelier). The
remaining tokens are uniform random noise over the whole vocabulary (zoology's
`random_non_queries`), or 0 when that is off. accuracy is per query, sequence_accuracy counts
sequences whose queries are all answered.

`query_gap: g` (an evaluation or training axis; None, the default, is zoology's power law) asks the
keys in their own order instead, the first after g empty query slots: key j sits at position 2j and
its query at 2n + 2(g + j), so every query is 2(n + g) tokens after its key. Recall against
key-query distance then reads off one axis (Zoology section 3.2 and the SSM recency papers plot
accuracy against that distance).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..config import require
from .sequence import IGNORE, SequenceTask, check_pos, randint


@dataclass
class MQARTask(SequenceTask):
    vocab_size: int = 8192
    seq_len: int = 64
    num_kv_pairs: int = 4
    power_a: float = 0.01
    random_non_queries: bool = True
    query_gap: int | None = None   # every query 2 (num_kv_pairs + query_gap) tokens after its key

    eval_axes: ClassVar[tuple[str, ...]] = ("seq_len", "num_kv_pairs", "query_gap")

    def chance(self) -> dict[str, float]:
        """Beside the position majority, the one-query shortcut: a model that answers one query of
        the n right (the one asked right after the context is the likeliest) and guesses a value for
        the others scores 1/n + (1 - 1/n) / (values in the vocabulary); 0.27 for 4 pairs and 32
        values."""
        c = super().chance()
        n, values = self.num_kv_pairs, self.vocab_size - self.vocab_size // 2
        return {**c, "accuracy": max(c.get("accuracy", 0.0), 1 / n + (1 - 1 / n) / values)}

    def __post_init__(self):
        super().__post_init__()
        check_pos(self, "vocab_size", "seq_len", "num_kv_pairs")
        require(self.seq_len % 2 == 0, "seq_len", f"{self.seq_len} must be even")
        require(4 * self.num_kv_pairs <= self.seq_len, "num_kv_pairs",
                f"{self.num_kv_pairs} pairs need seq_len >= {4 * self.num_kv_pairs} (pairs, then a query slot each)")
        require(self.num_kv_pairs <= self.vocab_size // 2 - 1, "vocab_size",
                f"{self.vocab_size} is too small for {self.num_kv_pairs} distinct keys (keys are 1 .. vocab_size/2 - 1)")
        require(0.0 < self.power_a <= 1.0, "power_a", f"{self.power_a} must be in (0, 1]")
        if self.query_gap is not None:
            space = (self.seq_len - 2 * self.num_kv_pairs) // 2
            check_pos(self, "query_gap", minimum=0)
            require(self.query_gap + self.num_kv_pairs <= space, "query_gap",
                    f"{self.query_gap} leaves no room for {self.num_kv_pairs} queries in seq_len {self.seq_len}: "
                    f"at most {space - self.num_kv_pairs}")

    def spec(self) -> dict:
        return {"vocab_size": self.vocab_size}

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        B, n, V, T = batch_size, self.num_kv_pairs, self.vocab_size, self.seq_len
        half = V // 2
        keys = torch.rand(B, half - 1, generator=gen).argsort(-1)[:, :n] + 1          # (B, n), distinct
        values = torch.rand(B, V - half, generator=gen).argsort(-1)[:, :n] + half     # (B, n), distinct
        context = torch.stack([keys, values], dim=-1).flatten(1)                       # (B, 2n): k v k v ...
        space = (T - 2 * n) // 2                                                       # query slots
        if self.query_gap is None:
            p = self.power_a * torch.arange(1, space + 1, dtype=torch.float64) ** (self.power_a - 1)
            gaps = torch.multinomial((p / p.sum()).expand(B, space), n, replacement=False, generator=gen)  # (B, n)
        else:                                                                          # keys asked in order
            gaps = (self.query_gap + torch.arange(n)).expand(B, n)
        queries = torch.zeros(B, T - 2 * n + 1, dtype=torch.long)
        queries.scatter_(1, 2 * gaps, keys)
        examples = torch.cat([context, queries], dim=1)                                # (B, T+1)
        labels = torch.full((B, T + 1), IGNORE, dtype=torch.long)
        labels.scatter_(1, 2 * gaps + 2 * n + 1, values)
        x, y = examples[:, :-1], labels[:, 1:]                                         # (B, T) each
        noise = randint(gen, 0, V, (B, T))
        if self.random_non_queries:
            x = torch.where(x == 0, noise, x)
        return {"x": x.contiguous(), "y": y.contiguous()}
