"""Contrastive Predictive Coding on synthetic sequences with a slow latent state: the setting of
van den Oord, Li & Vinyals 2018, "Representation Learning with Contrastive Predictive Coding"
(arXiv 1807.03748), Section 3.1 (audio), with a sticky Markov chain in place of the phones of
LibriSpeech. The model is modules/models/cpc.py (forward(x) -> z, c; predict(c) -> W_k c_t).

Data. A world fixed by `data_seed` (the same for every job), sequences drawn by the job's generator:
    s_1 ~ U{0 .. n_states-1};  s_t = s_{t-1} with probability 1 - switch_prob, else a state drawn
    uniformly from the n_states - 1 others. The chain is doubly stochastic: every s_t is uniform.
    frames (vocab_size None):  h_t = mu_{s_t} + noise * eps_t,  mu_s ~ N(0, I / d_input) (norm ~1),
        eps_t ~ N(0, I);  x_t = h_t, or with `mixing` a fixed random nonlinear map
        x_t = tanh(2 h_t A) B  (A, B ~ N(0, 1 / d_input) entries, d_input x d_input), so the state
        is not a linear function of one frame and single frames are noisy: the state is read well
        only by integrating frames over time.
    tokens (vocab_size V):  x_t ~ softmax(g_{s_t} / noise),  g_s ~ N(0, I_V): overlapping emission
        distributions, noise is their temperature. Token ids let the engine's `linear` probe run its
        control task and input baseline, which read token ids (probe_data's x).

Loss (InfoNCE). For each offset k = 1 .. max_offset and each position t with t + k < seq_len,
the prediction p = W_k c_t scores the candidates z_{t+k} of every sequence of its group: the batch
split into consecutive groups of `candidates` sequences (the last group of a batch that is not a
multiple is smaller). The positive is its own sequence's z_{t+k}; the negatives, the other
candidates - 1 sequences' encodings at the same target step. The loss of (k, t, b) is the
cross-entropy of picking the positive, -log softmax_j(z_j^T W_k c_t)_{positive}; the task's loss
is the mean over the positions of each k, then the mean over k (a sum over k would differ by the
constant factor K; the mean keeps a constant scorer at log(candidates) whatever K is).

Metrics, on `eval_size` evaluation sequences (groups of `candidates`):
    loss              the training loss above
    infonce_accuracy  the share of (t, b) whose positive scores highest among its candidates (ties
                      go to the first candidate), at the eval axis `offset` = k; offset None: the
                      mean over k = 1 .. max_offset. Chance 1 / candidates (a constant scorer
                      gets exactly that). The paper's Figure 3 plots it against k.
    state_accuracy    a linear classifier of the latent state s_t from the frozen c_t: multinomial
                      logistic regression (modules/probes/linear.py: standardized features, L-BFGS,
                      `probe_steps` iterations, L2 `probe_l2`) fit on every position of the first
                      half of the evaluation sequences, scored on the second half. Chance
                      1 / n_states: the state is uniform, so a classifier that ignores its input
                      scores that in expectation (the majority state share). The paper's Table 1
                      (phone classification from c_t, CPC against a randomly initialized model:
                      arch cpc with train_encoder false).
    frame_state_accuracy  the same classifier on the raw frames x_t (the one-hot of the token in
                      token mode): what one time step gives without context; a reference, not
                      trained (the role of the MFCC row of Table 1).
Evaluation axis: offset (1 .. max_offset, or None); the other metrics do not depend on it.
Probe labels: `state` (classification), the latent s_t at every position.

Measured (this task and arch cpc at their defaults, 1,500 AdamW steps of batch 64 at lr 2e-3, CPU,
seeds 0 and 1; workflow.train then workflow.evaluate with task.offset in [1, 2, 4, 8]):
    infonce_accuracy by offset   CPC 0.236/0.234, 0.216/0.213, 0.185/0.181, 0.138/0.137
                                 random encoder 0.148/0.150, 0.138/0.144, 0.122/0.125, 0.100/0.101
                                 (chance 1/16 = 0.0625): falls with k for both, as in Figure 3
    state_accuracy               CPC 0.803/0.796, random encoder 0.680/0.712, frames 0.560/0.575
                                 (chance 1/8): CPC's c_t above the random encoder's, as in Table 1
                                 (a gap of 8-12 points here against the paper's 37)
About 0.07 s a training step on one busy CPU thread; the evaluation a few seconds per point.

What was checked against the paper, and what was not. Checked, in stored copies of its abstract
(arXiv, ar5iv): an encoder and an autoregressive model trained jointly, predicting the future in
latent space with a probabilistic contrastive loss that uses negative sampling, on speech, images,
text and 3D environments. Checked only in secondary summaries of the paper: the InfoNCE form
(one positive drawn from p(x_{t+k} | c_t) among N - 1 negatives from p(x_{t+k}), f_k estimating
p(x_{t+k} | c_t) / p(x_{t+k})), a GRU as g_ar, and one linear W_k per offset. NOT checked (no
stored copy gave the text past the introduction): Section 3.1's setup; Figure 3 (on LibriSpeech,
the accuracy of predicting the positive sample falls as the offset grows); Table 1 (a linear phone
classifier on c_t: 64.6% after CPC, 27.6% from a randomly initialized model); the paper's equation
numbers; how it draws negatives (here: the other sequences of a group at the same step); whether
it sums or averages over k; whether its classifier reads c_t or z_t. Those come from the brief
that asked for this task.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..config import require
from ..metrics import FRACTION, LOSS, UNTRAINED
from .base import Task

EVAL_CHUNK_GROUPS = 8   # groups of `candidates` sequences per forward pass at evaluation


# ---------------------------------------------------------------------------------------------
# InfoNCE

def infonce_logits(z: torch.Tensor, p: torch.Tensor, k: int, candidates: int) -> torch.Tensor:
    """Scores of every query against its candidates for offset k (the plain form; the loss and the
    metrics use infonce_terms, its batched equal).

    z (B, T, D): encodings; p (B, T, D): the predictions W_k c_t for this k. Returns logits
    (T - k, B, B): logits[t, b, j] = z[j, t + k] . p[b, t] where j is in b's group (sequences
    [g * candidates, (g + 1) * candidates)), -inf elsewhere. The positive of (t, b) is j = b.
    """
    B, T, _ = z.shape
    logits = torch.einsum("btd,jtd->tbj", p[:, : T - k].float(), z[:, k:].float())   # (T-k, B, B)
    g = torch.arange(B, device=z.device) // candidates
    return logits.masked_fill(g[:, None] != g[None, :], float("-inf"))


def infonce(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(summed cross-entropy, number of queries whose positive wins, number of queries) for logits
    (T', B, B) whose positive is the diagonal. Ties go to the first candidate (torch.argmax)."""
    Tk, B, _ = logits.shape
    flat = logits.reshape(Tk * B, B)
    target = torch.arange(B, device=logits.device).repeat(Tk)
    nll = F.cross_entropy(flat, target, reduction="sum")
    right = (flat.argmax(1) == target).sum()
    return nll, right, Tk * B


def _terms_of_groups(z: torch.Tensor, preds: torch.Tensor, g: int, K: int):
    """infonce_terms for a batch of whole groups of g sequences: one batched product over
    (group, k, t) instead of a masked (B, B) score matrix per k."""
    B, T, D = z.shape
    n = B // g
    P = preds[:, :, :K].float().reshape(n, g, T, K, D).permute(0, 3, 2, 1, 4)     # (n, K, T, g, D)
    Z = torch.zeros(K, B, T, D, dtype=P.dtype, device=z.device)
    for k in range(1, K + 1):
        Z[k - 1, :, : T - k] = z[:, k:].float()                                     # z_{t+k} at t
    Z = Z.reshape(K, n, g, T, D).permute(1, 0, 3, 4, 2)                             # (n, K, T, D, g)
    logp = torch.log_softmax(P @ Z, dim=-1)                                        # (n, K, T, g, g)
    valid = (torch.arange(T, device=z.device)[None] < T - torch.arange(1, K + 1, device=z.device)[:, None])
    diag = logp.diagonal(dim1=-2, dim2=-1)                                          # (n, K, T, g)
    nll = -(diag * valid[None, :, :, None]).sum(dim=(0, 2, 3))                      # (K,)
    win = (logp.argmax(-1) == torch.arange(g, device=z.device)) & valid[None, :, :, None]
    count = valid.sum(1) * B                                                        # (K,)
    return nll, win.sum(dim=(0, 2, 3)), count


def infonce_terms(z: torch.Tensor, preds: torch.Tensor, candidates: int, K: int):
    """(summed cross-entropy (K,), positives that win (K,), queries (K,)) for k = 1 .. K: the sums
    of infonce(infonce_logits(z, preds[:, :, k - 1], k, candidates)). preds (B, T, >=K, D)."""
    B = z.shape[0]
    full = B - B % candidates
    parts = [(0, full, candidates)] if full else []
    if full < B:
        parts.append((full, B, B - full))                                          # the smaller last group
    out = [_terms_of_groups(z[a:b], preds[a:b], g, K) for a, b, g in parts]
    return tuple(sum(o[i] for o in out) for i in range(3))


def state_probe(f_tr: torch.Tensor, s_tr: torch.Tensor, f_te: torch.Tensor, s_te: torch.Tensor, n_states: int,
                l2: float = 1e-3, max_iter: int = 100) -> dict:
    """A multinomial logistic classifier of the state from features (N, D); {"accuracy", "loss",
    "majority"} on the test positions (modules/probes/linear.logistic_probe)."""
    from ..probes.linear import logistic_probe

    with torch.enable_grad():                                      # L-BFGS sets .grad by hand
        return logistic_probe(f_tr.float().cpu(), s_tr.cpu(), f_te.float().cpu(), s_te.cpu(),
                              n_classes=n_states, l2=l2, max_iter=max_iter)


# ---------------------------------------------------------------------------------------------

@dataclass
class CPCSequencesTask(Task):
    n_states: int = 8                # latent states of the Markov chain
    d_input: int = 16                # frame width (frames only)
    vocab_size: int | None = None    # None: continuous frames; an int: token observations
    seq_len: int = 64
    switch_prob: float = 0.1         # per-step probability of leaving the current state
    noise: float = 0.5               # frames: std of the per-frame noise; tokens: emission temperature
    mixing: bool = True              # frames: the fixed random nonlinear map x = tanh(2 h A) B
    data_seed: int = 0               # the world: state means, mixing, emission tables
    max_offset: int = 8              # K: offsets 1 .. K in the loss (the model's W_k)
    candidates: int = 16             # sequences per group: 1 positive + candidates - 1 negatives
    eval_size: int = 512             # evaluation sequences (a multiple of candidates)
    offset: int | None = None        # eval axis: infonce_accuracy at this k (None: mean over k)
    probe_steps: int = 100           # L-BFGS iterations of the state classifier
    probe_l2: float = 1e-3           # its L2 penalty (standardized features)

    metrics: ClassVar[tuple[str, ...]] = ("loss", "infonce_accuracy", "state_accuracy", "frame_state_accuracy")
    metric_facts: ClassVar = {"loss": LOSS, "infonce_accuracy": FRACTION, "state_accuracy": FRACTION,
                              "frame_state_accuracy": UNTRAINED}
    eval_axes: ClassVar[tuple[str, ...]] = ("offset",)
    probe_labels: ClassVar[dict[str, str]] = {"state": "classification"}

    def __post_init__(self):
        require(self.n_states >= 2, "n_states", f"{self.n_states} must be at least 2")
        require(self.d_input >= 1, "d_input", f"{self.d_input} must be at least 1")
        require(self.vocab_size is None or self.vocab_size >= 2, "vocab_size", f"{self.vocab_size} must be at least 2")
        require(self.max_offset >= 1, "max_offset", f"{self.max_offset} must be at least 1")
        require(self.seq_len > self.max_offset, "seq_len",
                f"{self.seq_len} must exceed max_offset ({self.max_offset}): every offset needs a target")
        require(0.0 <= self.switch_prob <= 1.0, "switch_prob", f"{self.switch_prob} must be in [0, 1]")
        if self.vocab_size is None:
            require(self.noise >= 0.0, "noise", f"{self.noise} must be non-negative")
        else:
            require(self.noise > 0.0, "noise", f"{self.noise} must be positive (the emission temperature)")
        require(self.candidates >= 2, "candidates", f"{self.candidates} must be at least 2 (a positive and a negative)")
        require(self.eval_size >= 2 * self.candidates and self.eval_size % self.candidates == 0, "eval_size",
                f"{self.eval_size} must be a multiple of candidates ({self.candidates}), at least two groups")
        require(self.offset is None or 1 <= self.offset <= self.max_offset, "offset",
                f"{self.offset} must be in 1 .. max_offset ({self.max_offset})")
        require(self.probe_steps >= 1, "probe_steps", f"{self.probe_steps} must be at least 1")
        require(self.probe_l2 >= 0.0, "probe_l2", f"{self.probe_l2} must be non-negative")

    # ------------------------------------------------------------------ data
    def spec(self) -> dict:
        io = {"d_input": self.d_input} if self.vocab_size is None else {"vocab_size": self.vocab_size}
        return {**io, "max_offset": self.max_offset}

    def chance(self) -> dict[str, float]:
        s = 1.0 / self.n_states
        return {"loss": math.log(self.candidates), "infonce_accuracy": 1.0 / self.candidates,
                "state_accuracy": s, "frame_state_accuracy": s}

    def world(self) -> dict[str, torch.Tensor]:
        """The fixed parameters of the data, from data_seed."""
        if getattr(self, "_world", None) is None:
            g = torch.Generator().manual_seed(self.data_seed)
            d = self.d_input
            if self.vocab_size is None:
                self._world = {"mu": torch.randn(self.n_states, d, generator=g) / math.sqrt(d),
                               "A": torch.randn(d, d, generator=g) / math.sqrt(d),
                               "B": torch.randn(d, d, generator=g) / math.sqrt(d)}
            else:
                logits = torch.randn(self.n_states, self.vocab_size, generator=g)
                self._world = {"emission": torch.softmax(logits / self.noise, dim=1)}   # (S, V)
        return self._world

    def states(self, gen: torch.Generator, batch_size: int) -> torch.Tensor:
        """(B, T) int64 latent states of the sticky chain."""
        n, T = self.n_states, self.seq_len
        s0 = torch.randint(0, n, (batch_size, 1), generator=gen)
        switch = torch.rand(batch_size, T - 1, generator=gen) < self.switch_prob
        jump = torch.randint(1, n, (batch_size, T - 1), generator=gen)       # to one of the n - 1 others
        steps = torch.cumsum(switch.long() * jump, dim=1)
        return torch.cat([s0, (s0 + steps) % n], dim=1)

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        s = self.states(gen, batch_size)
        w = self.world()
        if self.vocab_size is not None:
            probs = w["emission"][s.reshape(-1)]                                         # (B*T, V)
            x = torch.multinomial(probs, 1, generator=gen).reshape(s.shape)
            return {"x": x, "state": s}
        h = w["mu"][s] + self.noise * torch.randn(*s.shape, self.d_input, generator=gen)  # (B, T, d)
        x = torch.tanh(2.0 * h @ w["A"]) @ w["B"] if self.mixing else h
        return {"x": x, "state": s}

    def eval_batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        return self.batch(gen, batch_size)

    def probe_data(self, gen: torch.Generator, positions: int) -> dict:
        """Sequences until `positions` positions; label `state` (B, T). x are frames (B, T, d_input)
        or token ids (B, T): the `linear` probe's control task and input baseline need token ids."""
        n = max(2, -(-positions // self.seq_len))
        b = self.batch(gen, n)
        return {"x": b["x"], "labels": {"state": b["state"]}, "label_kinds": dict(self.probe_labels),
                "vocab_size": self.vocab_size}

    # ------------------------------------------------------------------ loss
    def loss(self, model, batch) -> torch.Tensor:
        z, c = model(batch["x"])
        preds = model.predict(c)                                                       # (B, T, K', D)
        if preds.shape[2] < self.max_offset:
            raise ValueError(f"the model predicts {preds.shape[2]} offsets; the task needs max_offset={self.max_offset}")
        nll, _, count = infonce_terms(z, preds, self.candidates, self.max_offset)
        return (nll / count).mean()

    # ------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        K = self.max_offset
        b = self.eval_batch(gen, self.eval_size)
        x, s = b["x"], b["state"]
        nll, right, count = torch.zeros(K, dtype=torch.float64), torch.zeros(K, dtype=torch.float64), torch.zeros(K)
        cs = []
        chunk = EVAL_CHUNK_GROUPS * self.candidates
        for i in range(0, self.eval_size, chunk):
            z, c = model(x[i:i + chunk].to(device))
            preds = model.predict(c)
            l, r, n = infonce_terms(z, preds, self.candidates, K)
            nll += l.double().cpu()
            right += r.double().cpu()
            count += n.cpu()
            cs.append(c.float().cpu())
        acc = right / count.double()
        c = torch.cat(cs)                                                              # (N, T, d_context)
        half = self.eval_size // 2
        ctx = state_probe(c[:half].flatten(0, 1), s[:half].flatten(), c[half:].flatten(0, 1), s[half:].flatten(),
                          self.n_states, self.probe_l2, self.probe_steps)
        frames = x.float() if self.vocab_size is None else F.one_hot(x, self.vocab_size).float()
        frame = state_probe(frames[:half].flatten(0, 1), s[:half].flatten(), frames[half:].flatten(0, 1),
                            s[half:].flatten(), self.n_states, self.probe_l2, self.probe_steps)
        return {
            "loss": float((nll / count.double()).mean()),
            "infonce_accuracy": float(acc.mean() if self.offset is None else acc[self.offset - 1]),
            "state_accuracy": ctx["accuracy"],
            "frame_state_accuracy": frame["accuracy"],
        }
