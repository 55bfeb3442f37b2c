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
in the held-out text. Probe labels of every held-out character (from Python's own tokenizer,
the long-range state that Karpathy et al. 2015 found cells tracking):
  in_string   1 inside a string literal (quotes included), else 0
  in_comment  1 inside a comment
  indent      the line's indentation in steps of 4 spaces, 0 .. 7 (7: 28 spaces or more)
  column      the position in the line (0 at the first character), a value (ridge probe)
Metrics over every position of `eval_size` windows:
  loss                 cross-entropy per character (nats)
  bits_per_char        the same in bits (loss / ln 2)
  accuracy             fraction of characters whose argmax is right
  ngram_bits_per_char  the same windows under an interpolated Witten-Bell n-gram model of order
                       `ngram_order`, counted on the training text (the baseline of Karpathy et
                       al. 2015, section 4.3), reading only the window, as the model does
  ratio_to_ngram       bits_per_char / ngram_bits_per_char (below 1: the model beats the n-gram)
Loss by position: `score_from: s` and `score_width: w` (evaluation axes; defaults 0 and None, every
position) score only the predictions at positions s .. s + w - 1 of each window (the model still
reads the whole window from its start). Sweeping `task.score_from` with a fixed width gives the
loss as a function of the position in the context, the curve of LongSSM's length extension and of
TTT's "keeps improving late in the context"; training always scores every position.
"""
from __future__ import annotations

import functools
import hashlib
import io
import math
import sysconfig
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..config import require
from ..metrics import FRACTION, LOSS, Metric
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


def source_labels(raw: bytes) -> dict[str, torch.Tensor]:
    """Per-byte labels of one source file (see the module docstring); (len(raw),) each."""
    n = len(raw)
    in_string = torch.zeros(n, dtype=torch.uint8)
    in_comment = torch.zeros(n, dtype=torch.uint8)
    lines = raw.split(b"\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    text_lines = raw.decode("utf-8", errors="replace").split("\n")

    def offset(row: int, col: int) -> int:                    # tokenize's (row, char col) -> byte offset
        line = text_lines[row - 1] if row - 1 < len(text_lines) else ""
        return starts[min(row - 1, len(starts) - 1)] + len(line[:col].encode("utf-8", errors="replace"))

    try:
        for tok in tokenize.tokenize(io.BytesIO(raw).readline):
            if tok.type in (tokenize.STRING, tokenize.COMMENT, getattr(tokenize, "FSTRING_START", -1)):
                a, b = offset(*tok.start), offset(*tok.end)
                (in_string if tok.type != tokenize.COMMENT else in_comment)[a:b] = 1
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass                                                  # labels up to the error stay
    column = torch.zeros(n, dtype=torch.int16)
    indent = torch.zeros(n, dtype=torch.uint8)
    for start, line in zip(starts, lines):
        m = len(line)
        column[start:start + m + 1] = torch.arange(min(m + 1, n - start), dtype=torch.int16).clamp(max=32000)
        depth = min((len(line) - len(line.lstrip(b" "))) // 4, 7)
        indent[start:start + m + 1] = depth
    return {"in_string": in_string, "in_comment": in_comment, "indent": indent, "column": column}


@functools.lru_cache(maxsize=2)
def held_out_labels(limit: int, test_every: int) -> dict[str, torch.Tensor]:
    """The probe labels of the held-out text, aligned with corpus(...)[1]."""
    parts = [source_labels(p.read_bytes()) for i, p in enumerate(stdlib_files(limit)) if i % test_every == 0]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


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


class NGram:
    """Interpolated Witten-Bell n-gram model of characters (Witten & Bell 1991; Chen & Goodman 1998):
        P_k(c | h) = (N(h, c) + T(h) P_{k-1}(c | h')) / (N(h) + T(h))
    for a context h of k characters (h' drops its oldest one), with N the counts on the training
    text and T(h) the number of distinct characters seen after h; P_{k} = P_{k-1} for an unseen h;
    P_0 is the add-one unigram. Counts are kept as sorted int64 codes, looked up by searchsorted."""

    def __init__(self, text: torch.Tensor, order: int, V: int):
        self.order, self.V = order, V
        t = text.long()
        counts = torch.bincount(t, minlength=V).double() + 1
        self.unigram = counts / counts.sum()
        self.tables = []                                   # per context length k >= 1
        for k in range(1, order):
            n = t.numel() - k
            ctx = torch.zeros(n, dtype=torch.long)
            for j in range(k):                             # the k characters before position k + i
                ctx = ctx * V + t[j:j + n]
            pair = ctx * V + t[k:k + n]
            pairs, pair_n = torch.unique(pair, return_counts=True)          # sorted
            ctxs, ctx_n = torch.unique(ctx, return_counts=True)
            types = torch.unique(pairs // V, return_counts=True)[1]         # distinct continuations, same order as ctxs
            self.tables.append((pairs, pair_n.double(), ctxs, ctx_n.double(), types.double()))

    @staticmethod
    def _find(keys: torch.Tensor, q: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        i = torch.searchsorted(keys, q).clamp(max=keys.numel() - 1)
        return torch.where(keys[i] == q, vals[i], torch.zeros((), dtype=vals.dtype))

    def logprob(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log P(y_t | the up to n-1 characters x_{t-n+2} .. x_t of the same window); (B, T)."""
        V = self.V
        x, y = x.long(), y.long()
        p = self.unigram[y]                                                 # (B, T)
        ctx = torch.zeros_like(x)
        B, T = x.shape
        for k, (pairs, pair_n, ctxs, ctx_n, types) in enumerate(self.tables, start=1):
            # context of length k ending at t: x_{t-k+1} .. x_t (only where t - k + 1 >= 0)
            ctx = torch.cat([torch.zeros(B, 1, dtype=torch.long), ctx[:, :-1]], 1) * V + x if k > 1 else x.clone()
            ok = torch.arange(T)[None] >= k - 1
            N = self._find(ctxs, ctx, ctx_n)
            Tt = self._find(ctxs, ctx, types)
            c = self._find(pairs, ctx * V + y, pair_n)
            p = torch.where(ok & (N > 0), (c + Tt * p) / (N + Tt).clamp(min=1), p)
        return p.log()


@functools.lru_cache(maxsize=2)
def ngram_model(limit: int, test_every: int, order: int) -> NGram:
    return NGram(corpus(limit, test_every)[0], order, len(CHARS) + 1)


@dataclass
class PythonSourceTask(SequenceTask):
    seq_len: int = 128             # characters per window
    files: int = 1000              # at most this many stdlib modules (sorted by name)
    test_every: int = 10           # every test_every-th file is held out
    ngram_order: int = 5           # the n of the n-gram baseline (context of n - 1 characters)
    score_from: int = 0            # evaluation scores positions score_from .. score_from + score_width - 1
    score_width: int | None = None  # None: to the end of the window

    metrics: ClassVar[tuple[str, ...]] = ("loss", "bits_per_char", "accuracy", "ngram_bits_per_char", "ratio_to_ngram")
    metric_facts: ClassVar = {"loss": LOSS, "accuracy": FRACTION, "bits_per_char": LOSS,
                              "ngram_bits_per_char": Metric("none", 0.0, None, trained=False),
                              "ratio_to_ngram": Metric("lower", 0.0, None)}
    eval_axes: ClassVar[tuple[str, ...]] = ("seq_len", "score_from", "score_width")
    probe_labels: ClassVar[dict[str, str]] = {"in_string": "classification", "in_comment": "classification",
                                              "indent": "classification", "column": "regression",
                                              "position": "classification"}

    def chance(self) -> dict[str, float]:
        c = super().chance()
        return {**c, "bits_per_char": c["loss"] / math.log(2)} if "loss" in c else c

    def __post_init__(self):
        super().__post_init__()
        require(self.seq_len >= 1, "seq_len", f"{self.seq_len} must be at least 1")
        require(self.files >= 2, "files", f"{self.files} must be at least 2 (one is held out)")
        require(self.test_every >= 2, "test_every", f"{self.test_every} must be at least 2")
        require(1 <= self.ngram_order <= 8, "ngram_order", f"{self.ngram_order} must be in 1 .. 8")
        require(0 <= self.score_from < self.seq_len, "score_from",
                f"{self.score_from} must be a position of the window, 0 .. seq_len - 1 = {self.seq_len - 1}")
        require(self.score_width is None or self.score_width >= 1, "score_width", f"{self.score_width} must be at least 1")
        require(self.score_width is None or self.score_from + self.score_width <= self.seq_len, "score_width",
                f"score_from + score_width = {self.score_from + (self.score_width or 0)} runs past seq_len {self.seq_len}")

    def spec(self) -> dict:
        return {"vocab_size": len(CHARS) + 1}

    def describe(self) -> str:
        return corpus(self.files, self.test_every)[2]

    def _windows(self, text: torch.Tensor, gen: torch.Generator, batch_size: int,
                 labels: dict | None = None) -> dict[str, torch.Tensor]:
        T = self.seq_len
        if text.numel() < T + 2:
            raise ValueError(f"seq_len={T} is longer than the text ({text.numel()} characters); lower seq_len")
        start = torch.randint(0, text.numel() - T - 1, (batch_size,), generator=gen)
        idx = start[:, None] + torch.arange(T + 1)[None]                              # (B, T+1)
        w = text[idx].long()
        out = {"x": w[:, :-1], "y": w[:, 1:]}
        if labels is not None:
            out["labels"] = {k: v[idx[:, :-1]].long() if k != "column" else v[idx[:, :-1]].float()
                             for k, v in labels.items()}
        return out

    def probe_data(self, gen: torch.Generator, positions: int) -> dict:
        """Held-out windows with the labels of every character (see the module docstring)."""
        n = max(1, -(-positions // self.seq_len))
        b = self._windows(corpus(self.files, self.test_every)[1], gen, n, held_out_labels(self.files, self.test_every))
        labels = {**b["labels"], "position": torch.arange(self.seq_len)[None].expand(n, -1).clone()}
        return {"x": b["x"], "labels": labels, "label_kinds": dict(self.probe_labels),
                "vocab_size": self.spec()["vocab_size"]}

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        return self._windows(corpus(self.files, self.test_every)[0], gen, batch_size)

    def eval_batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        return self._windows(corpus(self.files, self.test_every)[1], gen, batch_size)

    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        nll = right = tokens = ng = 0.0
        left = self.eval_size
        while left > 0:
            n = min(EVAL_CHUNK, left)
            left -= n
            b = self.eval_batch(gen, n)
            lo = self.score_from
            hi = self.seq_len if self.score_width is None else lo + self.score_width
            logits = model(b["x"].to(device)).float()[:, lo:hi]                       # (B, hi - lo, V)
            y = b["y"].to(device)[:, lo:hi]
            nll += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
            right += (logits.argmax(-1) == y).sum().item()
            tokens += y.numel()
            ng_lp = ngram_model(self.files, self.test_every, self.ngram_order).logprob(b["x"], b["y"])  # (B, T)
            ng += -ng_lp[:, lo:hi].sum().item()
        bpc = nll / tokens / math.log(2)
        ng_bpc = ng / tokens / math.log(2)
        return {"loss": nll / tokens, "bits_per_char": bpc, "accuracy": right / tokens,
                "ngram_bits_per_char": ng_bpc, "ratio_to_ngram": bpc / ng_bpc}
