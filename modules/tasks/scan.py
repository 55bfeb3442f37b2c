"""SCAN: commands in a tiny navigation language mapped to action sequences, and the splits that
test compositional generalization: Lake & Baroni 2018, "Generalization without Systematicity: On
the Compositional Skills of Sequence-to-Sequence Recurrent Networks" (ICML 2018, arXiv 1711.00350).

The grammar (the paper's appendix, Figure 7) is generated here in code, all 20,910 commands:

    C -> S and S | S after S | S          [[S1 and S2]] = [[S1]] [[S2]];  [[S1 after S2]] = [[S2]] [[S1]]
    S -> V twice | V thrice | V           [[V twice]] = [[V]] [[V]];  thrice: three times
    V -> X opposite D | X around D | X D | U
         [[X D]] = T(D) [[X]];  [[X opposite D]] = T(D) T(D) [[X]];  [[X around D]] = (T(D) [[X]]) x 4
    X -> U | turn     ([[turn]] is empty, so "turn left" is LTURN; "turn" alone is not a command)
    U -> walk | look | run | jump         [[walk]] = WALK, ...;   D -> left | right;  T(left) = LTURN

34 V x 3 = 102 S; 102 + 2 * 102^2 = 20,910 commands; actions are 1 to 48 tokens long.

Splits (`split`), as in the paper and its data repository (github.com/brendenlake/SCAN):
  simple         a random 80/20 split of the commands (Experiment 1), drawn from `split_seed`,
                 fixed and independent of the job's seed. It is *a* random split, not the
                 repository's file (which cannot be regenerated): 16,728 train / 4,182 test, as there.
  length         train on commands whose actions are <= `length_cutoff` (22) tokens, test on the
                 longer ones, 24-48 (Experiment 2): 16,990 / 3,920, as in the repository.
  add_jump       train on every command without "jump" plus the primitive "jump" alone; test on
  add_turn_left  every composed command with "jump" (7,706) (Experiment 3); likewise the bigram
                 "turn left" (1,208 test commands). The repository over-represents the primitive to
                 10% of the training file; here each training example is the primitive with
                 probability `primitive_fraction` (0.1) and otherwise a uniform draw from the other
                 training commands: the same distribution, sampled with replacement as the paper
                 samples its 100,000 training trials.

Layout of a sequence (one vocabulary for commands and actions, so any causal model of the zoo
reads it; `seq2seq_rnn` splits it at SEP into encoder and decoder):

    x:  c_1 .. c_n PAD .. PAD SEP a_1 .. a_m         the command left-aligned in a slot of 9 words
    y:  scored at SEP and after: a_1 .. a_m EOS      (every other position is IGNORE)

Training batches draw commands from the training split with the job's generator. With
`teacher_forcing` < 1, a batch is teacher-forced with that probability and otherwise fed the
model's own greedy outputs as decoder inputs (detached; the paper: "for half the time, the
network's self-produced outputs were passed back to the next step", Section 3); the loss is
always against the true actions.

Metrics, over the test split (every test command; `eval_size` caps it to a fixed subset drawn
with `split_seed`, the same for every seed):
  exact_match        greedy decoding from "command SEP" must produce the whole action sequence and
                     then EOS (the paper's accuracy: a command is right only if all actions are)
  accuracy           fraction of scored tokens right under teacher forcing
  sequence_accuracy  fraction of commands whose scored tokens are all right under teacher forcing
  loss               cross-entropy per scored token under teacher forcing (nats)
Greedy decoding steps the model (`init_state`/`step`) when it has them, else re-runs `forward` on
the growing sequence; it is batched and stops once every row has emitted EOS.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from ..config import require
from ..metrics import FRACTION
from .sequence import IGNORE, SequenceTask

PRIMITIVES = ("walk", "look", "run", "jump")
COMMAND_WORDS = PRIMITIVES + ("turn", "left", "right", "opposite", "around", "twice", "thrice", "and", "after")
ACTIONS = ("WALK", "LOOK", "RUN", "JUMP", "LTURN", "RTURN")
VOCAB = COMMAND_WORDS + ACTIONS + ("PAD", "SEP", "EOS")
PAD, SEP, EOS = len(VOCAB) - 3, len(VOCAB) - 2, len(VOCAB) - 1
CMD_SLOT = 9          # the longest command: "walk opposite left thrice and walk opposite left thrice"
MAX_ACTIONS = 48      # "walk around left thrice after run around right thrice"
N_COMMANDS = 20_910
_TOK = {w: i for i, w in enumerate(VOCAB)}
_TURN = {"left": "LTURN", "right": "RTURN"}
EVAL_CHUNK = 512


def _verb_phrases() -> list[tuple[list[str], list[str]]]:
    """The 34 V's with their meanings."""
    out = [([u], [u.upper()]) for u in PRIMITIVES]
    for x in PRIMITIVES + ("turn",):
        act = [] if x == "turn" else [x.upper()]
        for d in ("left", "right"):
            out.append(([x, d], [_TURN[d]] + act))
            out.append(([x, "opposite", d], [_TURN[d], _TURN[d]] + act))
            out.append(([x, "around", d], ([_TURN[d]] + act) * 4))
    return out


@functools.lru_cache(maxsize=1)
def all_pairs() -> tuple[tuple[str, str], ...]:
    """Every SCAN command and its action sequence, as space-separated strings, in a fixed order."""
    s = []
    for words, acts in _verb_phrases():
        s.append((words, acts))
        s.append((words + ["twice"], acts * 2))
        s.append((words + ["thrice"], acts * 3))
    pairs = [(w, a) for w, a in s]
    for w1, a1 in s:
        for w2, a2 in s:
            pairs.append((w1 + ["and"] + w2, a1 + a2))
            pairs.append((w1 + ["after"] + w2, a2 + a1))
    return tuple((" ".join(w), " ".join(a)) for w, a in pairs)


@functools.lru_cache(maxsize=1)
def _tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Commands (N, CMD_SLOT) and actions (N, MAX_ACTIONS) as token ids, PAD-filled, and their lengths.
    Built as padded lists and converted once (a tensor per row took a second: every SCAN job and
    every catalogue check paid it)."""
    cmds = [[_TOK[w] for w in c.split()] for c, _ in all_pairs()]
    acts = [[_TOK[w] for w in a.split()] for _, a in all_pairs()]
    clen = torch.tensor([len(r) for r in cmds], dtype=torch.long)
    alen = torch.tensor([len(r) for r in acts], dtype=torch.long)
    # one flat list each: torch converts a flat list several times faster than a nested one
    cmd = torch.tensor([t for r in cmds for t in r + [PAD] * (CMD_SLOT - len(r))], dtype=torch.long).view(-1, CMD_SLOT)
    act = torch.tensor([t for r in acts for t in r + [PAD] * (MAX_ACTIONS - len(r))],
                       dtype=torch.long).view(-1, MAX_ACTIONS)
    return cmd, act, clen, alen


@functools.lru_cache(maxsize=32)
def split_indices(split: str, split_seed: int = 0, length_cutoff: int = 22) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    """(train indices, test indices, index of the added primitive or None) into `all_pairs()`."""
    pairs = all_pairs()
    n = len(pairs)
    if split == "simple":
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
        n_test = round(0.2 * n)
        return perm[n_test:].sort().values, perm[:n_test].sort().values, None
    if split == "length":
        alen = _tensors()[3]
        return (alen <= length_cutoff).nonzero()[:, 0], (alen > length_cutoff).nonzero()[:, 0], None
    phrase = {"add_jump": "jump", "add_turn_left": "turn left"}[split]
    has = torch.tensor([f" {phrase} " in f" {c} " for c, _ in pairs])
    prim = next(i for i, (c, _) in enumerate(pairs) if c == phrase)
    test = has.clone()
    test[prim] = False
    return (~has).nonzero()[:, 0], test.nonzero()[:, 0], prim


def make_batch(idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """The sequences of the commands `idx` (B,), laid out as in the module docstring."""
    cmd, act, _, alen = _tensors()
    L = alen[idx]                                                                      # (B,)
    m = int(L.max())
    B = idx.shape[0]
    seq = torch.cat([cmd[idx], torch.full((B, 1), SEP), act[idx, :m], torch.full((B, 1), PAD)], 1)  # (B, CMD_SLOT+m+2)
    seq[torch.arange(B), CMD_SLOT + 1 + L] = EOS
    x, y = seq[:, :-1], seq[:, 1:]                                                     # (B, CMD_SLOT+m+1)
    pos = torch.arange(x.shape[1])[None]
    scored = (pos >= CMD_SLOT) & (pos <= CMD_SLOT + L[:, None])                        # actions and EOS
    return {"x": x, "y": torch.where(scored, y, IGNORE)}


@torch.no_grad()
def greedy_decode(model, prefix: torch.Tensor, steps: int, stop: int | None = EOS) -> torch.Tensor:
    """Greedy continuation of `prefix` (B, P) by up to `steps` tokens, (B, steps). Rows that have
    emitted `stop` keep emitting it; decoding ends early once every row has."""
    B = prefix.shape[0]
    out = torch.full((B, steps), stop if stop is not None else PAD, dtype=torch.long, device=prefix.device)
    done = torch.zeros(B, dtype=torch.bool, device=prefix.device)
    stepping = hasattr(model, "step") and hasattr(model, "init_state")
    if stepping:
        state = model.init_state(B)
        for t in range(prefix.shape[1]):
            logits, state = model.step(prefix[:, t], state)                            # (B, V)
    else:
        seq = prefix
        logits = model(seq)[:, -1]
    for s in range(steps):
        tok = logits.argmax(-1)                                                        # (B,)
        if stop is not None:
            tok = torch.where(done, stop, tok)
            done = done | (tok == stop)
        out[:, s] = tok
        if s + 1 == steps or (stop is not None and bool(done.all())):
            break
        if stepping:
            logits, state = model.step(tok, state)
        else:
            seq = torch.cat([seq, tok[:, None]], 1)
            logits = model(seq)[:, -1]
    return out


@dataclass
class ScanTask(SequenceTask):
    split: Literal["simple", "length", "add_jump", "add_turn_left"] = "simple"
    split_seed: int = 0                # the simple split's permutation and the eval_size subset
    length_cutoff: int = 22            # length split: train on actions of at most this many tokens
    primitive_fraction: float = 0.1    # add_*: share of training examples that are the primitive
    teacher_forcing: float = 1.0       # probability that a training batch is teacher-forced
    eval_size: int | None = None       # test commands evaluated; None: the whole test split

    metrics: ClassVar[tuple[str, ...]] = ("exact_match", "accuracy", "sequence_accuracy", "loss")
    metric_facts: ClassVar = {**SequenceTask.metric_facts, "exact_match": FRACTION}
    eval_axes: ClassVar[tuple[str, ...]] = ()

    def chance(self) -> dict[str, float]:
        c = super().chance()     # the commonest action at each output position, whatever the command
        return {**c, "exact_match": c["sequence_accuracy"]} if "sequence_accuracy" in c else c

    def __post_init__(self):
        require(self.eval_size is None or self.eval_size >= 1, "eval_size", f"{self.eval_size} must be at least 1")
        require(1 <= self.length_cutoff < MAX_ACTIONS, "length_cutoff",
                f"{self.length_cutoff} must be between 1 and {MAX_ACTIONS - 1}")
        require(0.0 < self.primitive_fraction < 1.0, "primitive_fraction", f"{self.primitive_fraction} must be in (0, 1)")
        require(0.0 <= self.teacher_forcing <= 1.0, "teacher_forcing", f"{self.teacher_forcing} must be in [0, 1]")
        train, test, _ = split_indices(self.split, self.split_seed, self.length_cutoff)
        require(len(test) > 0 and len(train) > 0, "length_cutoff", f"{self.length_cutoff} leaves an empty split")

    def spec(self) -> dict:
        return {"vocab_size": len(VOCAB), "sep_token": SEP, "pad_token": PAD}

    def _split(self):
        return split_indices(self.split, self.split_seed, self.length_cutoff)

    def test_indices(self) -> torch.Tensor:
        test = self._split()[1]
        if self.eval_size is not None and self.eval_size < len(test):
            pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(self.split_seed + 1))
            test = test[pick[:self.eval_size].sort().values]
        return test

    def sample_train(self, gen: torch.Generator, batch_size: int) -> torch.Tensor:
        train, _, prim = self._split()
        idx = train[torch.randint(0, len(train), (batch_size,), generator=gen)]
        if prim is not None:
            idx = torch.where(torch.rand(batch_size, generator=gen) < self.primitive_fraction, prim, idx)
        return idx

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        b = make_batch(self.sample_train(gen, batch_size))
        if self.teacher_forcing < 1.0:
            b["teacher_forced"] = torch.rand((), generator=gen) < self.teacher_forcing
        return b

    def eval_batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        test = self._split()[1]
        return make_batch(test[torch.randint(0, len(test), (batch_size,), generator=gen)])

    def loss(self, model, batch) -> torch.Tensor:
        x, y = batch["x"], batch["y"]
        if "teacher_forced" in batch and not bool(batch["teacher_forced"]):
            was = model.training
            model.eval()                          # the model's own best guesses, without dropout
            own = greedy_decode(model, x[:, :CMD_SLOT + 1], x.shape[1] - CMD_SLOT - 1, stop=None)
            model.train(was)
            x = torch.cat([x[:, :CMD_SLOT + 1], own], 1)                               # (B, T)
        logits = model(x)                                                              # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=IGNORE)

    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        _, act, _, alen = _tensors()
        test = self.test_indices()
        nll = correct = tokens = tf_right = exact = 0.0
        for start in range(0, len(test), EVAL_CHUNK):
            idx = test[start:start + EVAL_CHUNK]
            b = make_batch(idx)
            x, y = b["x"].to(device), b["y"].to(device)
            logits = model(x).float()                                                  # (B, T, V)
            scored = y != IGNORE
            nll += F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="sum").item()
            right = (logits.argmax(-1) == y) & scored
            correct += right.sum().item()
            tokens += scored.sum().item()
            tf_right += (right | ~scored).all(1).sum().item()
            L = alen[idx].to(device)                                                   # (B,)
            m = int(L.max())
            pred = greedy_decode(model, x[:, :CMD_SLOT + 1], m + 1)                    # (B, <= m+1)
            pred = torch.cat([pred, torch.full((len(idx), m + 1 - pred.shape[1]), EOS, device=device)], 1)
            target = torch.cat([act[idx, :m].to(device), torch.full((len(idx), 1), PAD, device=device)], 1)
            target[torch.arange(len(idx)), L] = EOS                                    # (B, m+1)
            upto = torch.arange(m + 1, device=device)[None] <= L[:, None]
            exact += ((pred == target) | ~upto).all(1).sum().item()
        n = len(test)
        return {"exact_match": exact / n, "accuracy": correct / tokens, "sequence_accuracy": tf_right / n,
                "loss": nll / tokens}
