"""In-context language learning of random finite automata: RegBench, the task of Akyürek, Wang,
Kim & Andreas 2024, "In-Context Language Learning: Architectures and Algorithms" (ICML 2024,
arXiv 2401.12973). Every prompt has its own random probabilistic DFA; the model sees several
strings of that language and must predict the next symbol of each, learning the language in
context (a new automaton per prompt).

The automaton of one prompt (every size a parameter; defaults are the authors' RegBench):
  states       n uniform in [min_states, max_states] (4 .. 12); state 0 starts every string, every
               state accepts
  alphabet     a uniform in [min_alphabet, vocab_size] (4 .. 18) distinct symbols of the vocabulary,
               a uniformly random subset
  edges        each state gets k uniform in [min_edges, max_edges] (1 .. 3) outgoing edges, with k
               distinct symbols of the alphabet and k distinct target states, never itself (no
               self-loops), all uniformly at random
  strings      a random walk from state 0 taking one of the current state's edges uniformly at
               random (the "probabilistic" DFA: uniform transition probabilities), length uniform
               in [min_len, max_len] (1 .. 49)
  prompt       m uniform in [min_strings, max_strings] (10 .. 19) strings joined by a separator

    x: s_1 SEP s_2 SEP ... SEP s_m  minus its last token     y: the next token, where it is a symbol

Tokens: symbols 0 .. vocab_size-1, SEP = vocab_size, PAD = vocab_size + 1 (spec vocab_size + 2: the
authors' vocabulary of 20 is 18 symbols, the separator and the pad). `seq_len: null` (the default,
the paper's: its prompts, at most 19 * 50 - 1 = 949 tokens, are never cut) pads each batch to its
longest prompt; an integer cuts every prompt to seq_len input tokens and pads to exactly that.
Scored positions, for the loss and for every metric: the predictions of a symbol, i.e. every
input position whose next token is a symbol (as the authors train: separator and pad targets are
ignored). Training prompts: with `n_train_prompts: N` (default 5,000, the authors' training set)
a fixed pool of N prompts, each with its own automaton, drawn once from `pool_seed` (the same for
every model and seed; batches pick pool prompts uniformly with replacement from the job's
generator); `n_train_prompts: null` draws a fresh automaton for every training prompt. Evaluation
always draws fresh automata.

Metrics over the scored positions of `eval_size` fresh prompts:
  loss             cross-entropy of the true next symbol (nats)
  accuracy         fraction of predictions whose argmax is a legal next symbol: an edge out of the
                   current DFA state (the DFA accuracy the authors' training code logs: the
                   current string with the predicted symbol appended is still accepted)
  tv_dfa           total variation 1/2 sum |p_model - p_dfa| from the true next-symbol
                   distribution (uniform over the current state's edges)
  tv_ngram<n>      the same from the in-context n-gram estimator of order n = 1 .. 4
                   (modules/tasks/ngram_refs.py: counts of the prompt so far, backoff, add-`ngram_alpha`)
  ngram<n>_accuracy  accuracy of that estimator's argmax (ties: the lowest symbol id); a reference
                   that reads the same prompt, not the model (untrained)
The paper's headline claims read off these: transformers reach higher `accuracy` than recurrent and
state-space models, and their predictions are closest (lowest tv_ngram<n>) to the 2- and 3-gram
estimators. `score_string: k` (an eval axis) scores only the predictions inside the k-th string
(0-based; the separator before string k predicts its first symbol), accuracy against the number of
example strings already in context.

Chance (`chance()`): an input-blind predictor answers the same symbol everywhere. The automaton's
labels are exchangeable over the symbols, so every symbol is a legal next symbol equally often and
the best blind accuracy is E|legal| / vocab_size, the mean number of edges out of the current state
over the scored positions (measured on 512 prompts from a fixed seed); its best distribution is
uniform over the symbols: loss ln(vocab_size), tv_dfa 1 - E|legal| / vocab_size. The n-gram
references are the input-reading baselines (ngram1: the in-context unigram).

Checked against the authors' released training code and configs (not against the paper's text,
which was not at hand): every default above, the separator-masked loss, the accuracy, the 5,000
training DFAs (their figures also use 1,000 .. 40,000), TV as half the L1 distance, and the n-gram
estimator (backoff on, add-one off). Not reproduced: the authors minimize and trim each automaton
and keep only distinct ones, with training and test automata disjoint; here automata are not
minimized (that changes no string distribution: equivalent states have the same edge symbols) and
neither the pool nor the evaluation draws are checked for repeats (at the default sizes a repeat
is vanishingly rare; at toy sizes, e.g. 3 states, one is possible). The authors' training-time
TV to the 3-gram summed |p - q| (no 1/2) over every input position with the unnormalized estimate,
and one analysis script also scores the positions that end a string; this module halves, uses the
renormalized estimate and reads the scored positions only. Ours: the token ids, the pad, every
draw made with torch's generator (so no prompt equals the authors').
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..config import require
from ..metrics import FRACTION, LOSS, Metric
from .ngram_refs import in_context_ngram
from .sequence import EVAL_CHUNK, IGNORE, SequenceTask, check_pos, randint

NGRAM_ORDERS = (1, 2, 3, 4)
CHANCE_PROMPTS = 512
CHANCE_SEED = 7_000_003
POOL_SEED_BASE = 3_000_017         # the pool's generator: never a training or evaluation stream
POOL_CHUNK = 1024                  # prompts drawn at once when building the pool

_TV = Metric("none", 0.0, 1.0)


@dataclass
class ICLDFATask(SequenceTask):
    vocab_size: int = 18           # symbols (the model's vocabulary adds SEP and PAD)
    min_alphabet: int = 4          # a DFA's alphabet: uniform in [min_alphabet, vocab_size] symbols
    min_states: int = 4            # states: uniform in [min_states, max_states]
    max_states: int = 12
    min_edges: int = 1             # edges out of each state: uniform in [min_edges, max_edges]
    max_edges: int = 3
    min_strings: int = 10          # strings per prompt: uniform in [min_strings, max_strings]
    max_strings: int = 19
    min_len: int = 1               # symbols per string: uniform in [min_len, max_len]
    max_len: int = 49
    seq_len: int | None = None     # input tokens per prompt: None, whole prompts; else cut/padded to it
    n_train_prompts: int | None = 5000   # fixed training pool; None: a fresh DFA every prompt
    pool_seed: int = 0             # the pool's draw (not the job's seed)
    score_string: int | None = None      # evaluation: score only string k (0-based); None: all
    ngram_alpha: float = 0.0       # add-alpha of the reference n-gram estimators

    metrics: ClassVar[tuple[str, ...]] = (
        "loss", "accuracy", "tv_dfa", *(f"tv_ngram{n}" for n in NGRAM_ORDERS),
        *(f"ngram{n}_accuracy" for n in NGRAM_ORDERS))
    # how close the model is to an n-gram estimator says which algorithm it resembles, which
    # training may move either way; the estimators' own accuracies are references
    metric_facts: ClassVar = {
        "loss": LOSS, "accuracy": FRACTION, "tv_dfa": Metric("lower", 0.0, 1.0),
        **{f"tv_ngram{n}": _TV for n in NGRAM_ORDERS},
        **{f"ngram{n}_accuracy": Metric("none", 0.0, 1.0, trained=False) for n in NGRAM_ORDERS},
    }
    eval_axes: ClassVar[tuple[str, ...]] = ("score_string", "seq_len", "min_strings", "max_strings",
                                            "min_len", "max_len", "min_states", "max_states", "ngram_alpha")

    def __post_init__(self):
        super().__post_init__()
        check_pos(self, "vocab_size", "min_alphabet", "min_edges", "min_strings", "min_len")
        check_pos(self, "min_states", minimum=2)
        require(self.vocab_size <= 1000, "vocab_size", f"{self.vocab_size} must be at most 1000")
        require(self.min_alphabet <= self.vocab_size, "min_alphabet",
                f"{self.min_alphabet} must not exceed vocab_size={self.vocab_size}")
        require(self.min_states <= self.max_states, "min_states",
                f"{self.min_states} must not exceed max_states={self.max_states}")
        require(self.min_edges <= self.max_edges, "min_edges", f"{self.min_edges} must not exceed max_edges={self.max_edges}")
        require(self.max_edges < self.min_states, "max_edges",
                f"{self.max_edges} edges to distinct other states need min_states >= {self.max_edges + 1}")
        require(self.max_edges <= self.min_alphabet, "max_edges",
                f"{self.max_edges} distinct edge symbols need min_alphabet >= {self.max_edges}")
        require(self.min_strings <= self.max_strings, "min_strings",
                f"{self.min_strings} must not exceed max_strings={self.max_strings}")
        require(self.min_len <= self.max_len, "min_len", f"{self.min_len} must not exceed max_len={self.max_len}")
        require(self.min_strings * (self.min_len + 1) >= 3, "min_len",
                "a prompt needs at least 3 tokens (two to read, one to predict); raise min_len or min_strings")
        require(self.seq_len is None or self.seq_len >= 2, "seq_len", f"{self.seq_len} must be at least 2")
        require(self.n_train_prompts is None or self.n_train_prompts >= 1, "n_train_prompts",
                f"{self.n_train_prompts} must be at least 1 (or null for fresh prompts)")
        require(self.score_string is None or 0 <= self.score_string < self.max_strings, "score_string",
                f"{self.score_string} must be a string index, 0 .. max_strings - 1 = {self.max_strings - 1}")
        require(self.ngram_alpha >= 0, "ngram_alpha", f"{self.ngram_alpha} must not be negative")

    @property
    def SEP(self) -> int:
        return self.vocab_size

    @property
    def PAD(self) -> int:
        return self.vocab_size + 1

    def spec(self) -> dict:
        return {"vocab_size": self.vocab_size + 2}

    # ---- generation ---------------------------------------------------------------------------

    def sample_dfas(self, gen: torch.Generator, B: int) -> torch.Tensor:
        """B random automata as transition tables (B, max_states, vocab_size): the next state, -1
        where the symbol has no edge (and for every state beyond a DFA's own count)."""
        V, S = self.vocab_size, self.max_states
        n = randint(gen, self.min_states, self.max_states + 1, (B,))
        a = randint(gen, self.min_alphabet, V + 1, (B,))
        in_alpha = torch.rand(B, V, generator=gen).argsort(1).argsort(1) < a[:, None]           # (B, V)
        k = randint(gen, self.min_edges, self.max_edges + 1, (B, S))
        sym_key = torch.rand(B, S, V, generator=gen).masked_fill(~in_alpha[:, None], 2.0)
        syms = sym_key.argsort(2)[..., :self.max_edges]                                         # (B, S, E)
        s = torch.arange(S)
        bad = (s[None, None, :] >= n[:, None, None]) | (s[None, :, None] == s[None, None, :])   # (B, S, S)
        tgts = torch.rand(B, S, S, generator=gen).masked_fill(bad, 2.0).argsort(2)[..., :self.max_edges]
        use = (torch.arange(self.max_edges)[None, None] < k[..., None]) & (s[None, :, None] < n[:, None, None])
        trans = torch.full((B, S, V), -1, dtype=torch.long)
        trans.scatter_(2, syms, torch.where(use, tgts, -1))
        return trans

    def sample_prompts(self, gen: torch.Generator, B: int, cut: int | None = None) -> dict[str, torch.Tensor]:
        """B prompts, each from its own automaton: tokens z (B, L) (PAD after the prompt), the DFA
        state after each token (B, L) (0 after a separator), the tables (B, S, V) and each
        prompt's token count (B,). L is the longest prompt, or `cut` when that is shorter."""
        V = self.vocab_size
        trans = self.sample_dfas(gen, B)
        M = self.max_strings
        m = randint(gen, self.min_strings, M + 1, (B,))
        lens = randint(gen, self.min_len, self.max_len + 1, (B, M))
        lens = torch.where(torch.arange(M)[None] < m[:, None], lens, 0)
        total = lens.sum(1) + m - 1                                                   # tokens per prompt
        L = int(total.max()) if cut is None else min(int(total.max()), cut)
        ends = (lens + 1).cumsum(1) - 1                                               # separator after string j
        pos = torch.arange(L)
        is_sep = ((pos[None, :, None] == ends[:, None, :]) & (torch.arange(M)[None, None] < (m - 1)[:, None, None])).any(2)
        is_pad = pos[None] >= total[:, None]
        u = torch.rand(B, L, V, generator=gen)
        rows = torch.arange(B)
        state = torch.zeros(B, dtype=torch.long)
        z = torch.empty(B, L, dtype=torch.long)
        after = torch.empty(B, L, dtype=torch.long)
        for p in range(L):
            out = trans[rows, state]                                                  # (B, V)
            c = torch.where(out >= 0, u[:, p], -1.0).argmax(1)                        # a uniform edge
            sym = ~(is_sep[:, p] | is_pad[:, p])
            z[:, p] = torch.where(sym, c, torch.where(is_sep[:, p], self.SEP, self.PAD))
            state = torch.where(sym, out.gather(1, c[:, None])[:, 0], 0)
            after[:, p] = state
        return {"z": z, "after": after, "trans": trans, "total": total}

    def _width(self, total: torch.Tensor) -> int:
        """Tokens of z a batch keeps: the longest prompt, or seq_len + 1 (padded) when set."""
        return int(total.max()) if self.seq_len is None else self.seq_len + 1

    def _xy(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        x, nxt = z[:, :-1], z[:, 1:]
        return {"x": x.contiguous(), "y": torch.where(nxt < self.vocab_size, nxt, IGNORE).contiguous()}

    def _fit(self, t: torch.Tensor, width: int, fill: int) -> torch.Tensor:
        return t[:, :width] if t.shape[1] >= width else F.pad(t, (0, width - t.shape[1]), value=fill)

    def sample(self, gen: torch.Generator, B: int) -> dict[str, torch.Tensor]:
        """Fresh prompts with what evaluation needs: x, y (B, T), legal (B, T, V) the symbols with
        an edge out of the state after x_t, and the automata `trans`."""
        cut = None if self.seq_len is None else self.seq_len + 1
        b = self.sample_prompts(gen, B, cut)
        W = self._width(b["total"])
        z, after = self._fit(b["z"], W, self.PAD), self._fit(b["after"], W, 0)
        out = self._xy(z)
        out["legal"] = b["trans"][torch.arange(B)[:, None], after[:, :-1]] >= 0
        out["trans"] = b["trans"]
        return out

    def pool(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed training prompts (N, L) int16 and their token counts, built once per task."""
        if getattr(self, "_pool", None) is None:
            gen = torch.Generator().manual_seed(POOL_SEED_BASE + self.pool_seed)
            zs, totals, left = [], [], self.n_train_prompts
            while left > 0:
                n = min(POOL_CHUNK, left)
                left -= n
                b = self.sample_prompts(gen, n)
                zs.append(b["z"].to(torch.int16))
                totals.append(b["total"])
            L = max(z.shape[1] for z in zs)
            self._pool = (torch.cat([F.pad(z, (0, L - z.shape[1]), value=self.PAD) for z in zs]), torch.cat(totals))
        return self._pool

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        if self.n_train_prompts is None:
            return self.eval_batch(gen, batch_size)
        z_all, total_all = self.pool()
        idx = torch.randint(0, z_all.shape[0], (batch_size,), generator=gen)
        total = total_all[idx]
        W = self._width(total)
        return self._xy(self._fit(z_all[idx].long(), W, self.PAD))

    def eval_batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        b = self.sample(gen, batch_size)
        return {"x": b["x"], "y": b["y"]}

    # ---- evaluation ---------------------------------------------------------------------------

    def scored(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The positions every metric reads (B, T): a symbol to predict, in string score_string
        when that is set."""
        mask = y != IGNORE
        if self.score_string is not None:
            mask &= (x == self.SEP).long().cumsum(1) == self.score_string
        return mask

    def chance(self) -> dict[str, float]:
        if getattr(self, "_chance", None) is None:
            b = self.sample(torch.Generator().manual_seed(CHANCE_SEED), CHANCE_PROMPTS)
            mask = self.scored(b["x"], b["y"])
            if not mask.any():
                self._chance = {}
            else:
                share = float(b["legal"].sum(-1)[mask].float().mean()) / self.vocab_size
                self._chance = {"accuracy": share, "loss": math.log(self.vocab_size), "tv_dfa": 1.0 - share}
        return dict(self._chance)

    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        V, VT = self.vocab_size, self.vocab_size + 2
        sums = dict.fromkeys(self.metrics, 0.0)
        tokens = 0
        left = self.eval_size
        while left > 0:
            n = min(EVAL_CHUNK, left)
            left -= n
            b = self.sample(gen, n)
            x, y = b["x"], b["y"]
            mask = self.scored(x, y)
            k = int(mask.sum())
            if k == 0:
                continue
            logits = model(x.to(device)).float().cpu()[mask]                         # (k, V + 2)
            legal = b["legal"][mask]                                                  # (k, V)
            target = y[mask]
            sums["loss"] += F.cross_entropy(logits, target, reduction="sum").item()
            p = logits.softmax(-1)
            guess = logits.argmax(-1)
            sums["accuracy"] += (guess < V).logical_and(legal.gather(1, guess.clamp(max=V - 1)[:, None])[:, 0]).sum().item()
            q_dfa = legal.float() / legal.sum(-1, keepdim=True).clamp(min=1)
            sums["tv_dfa"] += 0.5 * (p - F.pad(q_dfa, (0, VT - V))).abs().sum().item()
            refs = in_context_ngram(x, V, self.SEP, max(NGRAM_ORDERS), self.ngram_alpha)
            for order in NGRAM_ORDERS:
                q = refs[order - 1][mask]                                             # (k, V)
                sums[f"tv_ngram{order}"] += 0.5 * (p - F.pad(q, (0, VT - V))).abs().sum().item()
                guess_ref = (q * 2 ** 20).round().argmax(-1)                          # ties: the lowest id
                sums[f"ngram{order}_accuracy"] += legal.gather(1, guess_ref[:, None]).sum().item()
            tokens += k
        return {m: (v / tokens if tokens else float("nan")) for m, v in sums.items()}
