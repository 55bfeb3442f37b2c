"""The continual embedded Reber grammar (CERG) of Gers, Schmidhuber & Cummins 2000, "Learning to
Forget: Continual Prediction with LSTM" (section 4): next-symbol prediction on an unsegmented
stream of embedded Reber strings, the task on which a cell state that is never reset shows why
an LSTM needs its forget gate.

The Reber grammar (Reber 1967), seven symbols B T P S X V E, as a graph:
    0 -B-> 1;  1 -T-> 2 | -P-> 3;  2 -S-> 2 | -X-> 4;  3 -T-> 3 | -V-> 5;
    4 -X-> 3 | -S-> 6;  5 -P-> 4 | -V-> 6;  6 -E-> end        (each fork taken with probability 1/2)
An embedded Reber string is  B T <Reber string> T E  or  B P <Reber string> P E: the second
symbol must be recalled at the second-to-last one, across the whole inner string. The stream
concatenates embedded strings with no marker and no reset (`seq_len` symbols of input).

    x: the stream s_0 ... s_{T-1}            y: the next symbol s_1 ... s_T, at every position

Training is cross-entropy on the next symbol. Most positions allow two next symbols, so a
prediction counts as right when the argmax is *a legal* next symbol given the history (Gers et
al. count a string as processed correctly when every prediction is right; their threshold on
the output units becomes the argmax here). Metrics:
  loss               cross-entropy per position (nats)
  accuracy           fraction of positions whose argmax is a legal next symbol
  string_accuracy    fraction of the embedded strings (complete inside the window) all of
                     whose symbols were predicted legally: Gers et al.'s measure
  sequence_accuracy  fraction of streams predicted legally at every position
The eval axis `seq_len` runs a trained model on longer streams than it was trained on (state
that grows without bound shows there).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..config import require
from ..metrics import FRACTION
from .sequence import SequenceTask

SYMBOLS = "BTPSXVE"
_S = {c: i for i, c in enumerate(SYMBOLS)}


def _machine() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """The embedded grammar as one finite-state machine: for every state its (symbol, next state)
    choices, two at a fork and one elsewhere (stored twice). Returns (symbol (S, 2), next (S, 2),
    legal (S, V) bool, the state that emits the closing E)."""
    reber = {0: [("B", 1)], 1: [("T", 2), ("P", 3)], 2: [("S", 2), ("X", 4)], 3: [("T", 3), ("V", 5)],
             4: [("X", 3), ("S", 6)], 5: [("P", 4), ("V", 6)], 6: [("E", "out")]}
    # states: 0 start (emits B), 1 branch (emits T or P), then the inner graph once per branch
    # symbol (2..8 for T, 9..15 for P), 16/17 recall (emits T / P), 18 close (emits E)
    table: dict[int, list[tuple[str, int]]] = {0: [("B", 1)], 1: [("T", 2), ("P", 9)]}
    for base, recall in ((2, 16), (9, 17)):
        for node, arcs in reber.items():
            table[base + node] = [(c, recall if n == "out" else base + n) for c, n in arcs]
    table[16], table[17], table[18] = [("T", 18)], [("P", 18)], [("E", 0)]
    n = len(table)
    sym = torch.zeros(n, 2, dtype=torch.long)
    nxt = torch.zeros(n, 2, dtype=torch.long)
    legal = torch.zeros(n, len(SYMBOLS), dtype=torch.bool)
    for s, arcs in table.items():
        arcs2 = arcs * (2 // len(arcs))
        for k, (c, t) in enumerate(arcs2):
            sym[s, k], nxt[s, k] = _S[c], t
            legal[s, _S[c]] = True
    return sym, nxt, legal, 18


_SYM, _NEXT, _LEGAL, _CLOSE = _machine()


@dataclass
class ReberTask(SequenceTask):
    seq_len: int = 100             # input symbols per stream (about 8 embedded strings)

    metrics: ClassVar[tuple[str, ...]] = ("loss", "accuracy", "string_accuracy", "sequence_accuracy")
    metric_facts: ClassVar = {**SequenceTask.metric_facts, "string_accuracy": FRACTION}
    eval_axes: ClassVar[tuple[str, ...]] = ("seq_len",)

    def __post_init__(self):
        super().__post_init__()
        require(self.seq_len >= 2, "seq_len", f"{self.seq_len} must be at least 2")

    def spec(self) -> dict:
        return {"vocab_size": len(SYMBOLS)}

    def stream(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        """seq_len + 1 symbols per stream, each starting a string; with, for every input position
        t, the legal next symbols (B, T, V) and whether s_{t+1} closes a string (B, T)."""
        B, T = batch_size, self.seq_len
        coins = (torch.rand(B, T + 1, generator=gen) < 0.5).long()                    # fork choices
        state = torch.zeros(B, dtype=torch.long)
        syms, states = [], []
        for t in range(T + 1):
            states.append(state)
            c = coins[:, t:t + 1]
            syms.append(_SYM[state].gather(1, c)[:, 0])
            state = _NEXT[state].gather(1, c)[:, 0]
        seq = torch.stack(syms, 1)                                                     # (B, T+1)
        st = torch.stack(states, 1)                                                    # state before each symbol
        return {"x": seq[:, :-1], "y": seq[:, 1:], "legal": _LEGAL[st[:, 1:]], "closes": st[:, 1:] == _CLOSE}

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        b = self.stream(gen, batch_size)
        return {"x": b["x"], "y": b["y"]}

    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        import torch.nn.functional as F

        from .sequence import EVAL_CHUNK

        nll = right_n = tokens = str_ok = str_n = seq_ok = seqs = 0.0
        left = self.eval_size
        while left > 0:
            n = min(EVAL_CHUNK, left)
            left -= n
            b = self.stream(gen, n)
            logits = model(b["x"].to(device)).float().cpu()                            # (B, T, V)
            nll += F.cross_entropy(logits.flatten(0, 1), b["y"].flatten(), reduction="sum").item()
            right = b["legal"].gather(2, logits.argmax(-1, keepdim=True))[..., 0]      # (B, T)
            right_n += right.sum().item()
            tokens += right.numel()
            seq_ok += right.all(1).sum().item()
            seqs += n
            # string k holds the predictions after the (k-1)-th close up to and including the k-th
            closes = b["closes"].long()
            sid = closes.cumsum(1) - closes                                            # (B, T)
            wrong = torch.zeros(n, self.seq_len + 1).scatter_add_(1, sid, (~right).float())
            n_done = closes.sum(1)                                                     # complete strings per row
            ok = (wrong == 0) & (torch.arange(self.seq_len + 1)[None] < n_done[:, None])
            str_ok += ok.sum().item()
            str_n += n_done.sum().item()
        return {
            "loss": nll / tokens,
            "accuracy": right_n / tokens,
            "string_accuracy": str_ok / str_n if str_n else float("nan"),
            "sequence_accuracy": seq_ok / seqs,
        }
