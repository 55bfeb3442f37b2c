"""Character-level language modelling of the Python standard library's own source code: real
text that ships with every Python, so nothing is downloaded (the stand-in for the text corpora
of Karpathy et al. 2015 and for the real-data sets of Greff et al. 2015).

The corpus is the top-level modules of the running interpreter's standard library
(`<stdlib>/*.py`, sorted by name, `files` of them at most; no packages, no tests). Every
`test_every`-th file (the 0th, the 10th, ...) is held out for evaluation, so a model is scored
on code it never read. Characters map to ids by `CHARS`: tab, newline and printable ASCII each
have their own id, anything else becomes one shared id. Text differs a little between Python
patch releases; the task reports the corpus size and checksum in `describe()`.

    x: a window c_t ... c_{t+T-1} of the text     y: the next character c_{t+1} ... c_{t+T}

Training windows start uniformly at random in the training text (seeded); evaluation windows
in the held-out text. Metrics over every position of `eval_size` windows:
  loss            cross-entropy per character (nats)
  bits_per_char   the same in bits (loss / ln 2)
  accuracy        fraction of characters whose argmax is right
"""
from __future__ import annotations

import functools
import hashlib
import math
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..config import require
from .sequence import EVAL_CHUNK, SequenceTask

CHARS = "\t\n" + "".join(chr(c) for c in range(32, 127))     # ids 0..96; 97 is every other character
OTHER = len(CHARS)
_LUT = torch.full((256,), OTHER, dtype=torch.uint8)
_LUT[torch.tensor([ord(c) for c in CHARS])] = torch.arange(len(CHARS), dtype=torch.uint8)


def stdlib_files(limit: int) -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no Python source files in the standard library folder {root}")
    return files[:limit]


def encode(text: bytes) -> torch.Tensor:
    """Bytes -> ids (uint8); UTF-8 continuation bytes of a non-ASCII character become OTHER each."""
    return _LUT[torch.frombuffer(bytearray(text), dtype=torch.uint8).long()]


@functools.lru_cache(maxsize=4)
def corpus(limit: int, test_every: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(train ids, held-out ids, description), built once per process."""
    train, test, h = [], [], hashlib.sha256()
    for i, path in enumerate(stdlib_files(limit)):
        raw = path.read_bytes()
        h.update(path.name.encode() + b"\0" + raw)
        (test if i % test_every == 0 else train).append(encode(raw))
    tr, te = torch.cat(train), torch.cat(test)
    return tr, te, f"{limit} stdlib files max: {tr.numel()} train / {te.numel()} held-out chars, sha256 {h.hexdigest()[:12]}"


@dataclass
class PythonSourceTask(SequenceTask):
    seq_len: int = 128             # characters per window
    files: int = 1000              # at most this many stdlib modules (sorted by name)
    test_every: int = 10           # every test_every-th file is held out

    metrics: ClassVar[tuple[str, ...]] = ("loss", "bits_per_char", "accuracy")
    eval_axes: ClassVar[tuple[str, ...]] = ("seq_len",)

    def __post_init__(self):
        super().__post_init__()
        require(self.seq_len >= 1, "seq_len", f"{self.seq_len} must be at least 1")
        require(self.files >= 2, "files", f"{self.files} must be at least 2 (one is held out)")
        require(self.test_every >= 2, "test_every", f"{self.test_every} must be at least 2")

    def spec(self) -> dict:
        return {"vocab_size": len(CHARS) + 1}

    def describe(self) -> str:
        return corpus(self.files, self.test_every)[2]

    def _windows(self, text: torch.Tensor, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        T = self.seq_len
        if text.numel() < T + 2:
            raise ValueError(f"seq_len={T} is longer than the text ({text.numel()} characters); lower seq_len")
        start = torch.randint(0, text.numel() - T - 1, (batch_size,), generator=gen)
        idx = start[:, None] + torch.arange(T + 1)[None]                              # (B, T+1)
        w = text[idx].long()
        return {"x": w[:, :-1], "y": w[:, 1:]}

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        return self._windows(corpus(self.files, self.test_every)[0], gen, batch_size)

    def eval_batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        return self._windows(corpus(self.files, self.test_every)[1], gen, batch_size)

    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        nll = right = tokens = 0.0
        left = self.eval_size
        while left > 0:
            n = min(EVAL_CHUNK, left)
            left -= n
            b = self.eval_batch(gen, n)
            logits = model(b["x"].to(device)).float()                                  # (B, T, V)
            y = b["y"].to(device)
            nll += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
            right += (logits.argmax(-1) == y).sum().item()
            tokens += y.numel()
        return {"loss": nll / tokens, "bits_per_char": nll / tokens / math.log(2), "accuracy": right / tokens}
