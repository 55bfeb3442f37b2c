"""The copy task with a timed autoregressive generation: Katharopoulos, Vyas, Pappas & Fleuret 2020,
"Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention" (ICML 2020,
arXiv 2006.16236), section 3.4 (the causal linear transformer is an RNN) and section 4 (its
generation throughput against softmax attention; its copy task, section 4.1).

The copy metrics (loss, accuracy, sequence_accuracy) are those of `copy.CopyTask`, unchanged.
On top, `evaluate` generates `gen_len` tokens greedily after a copy prompt BOS s_1 .. s_L SEP
(L = `length`, or `max_len` when unset), for `gen_batch` sequences at once, and times it:

  step   a model with `step(x_t, state)` carries its state: linear attention's
         S_t = S_{t-1} + phi(k_t) v_t^T and z_t = z_{t-1} + phi(k_t), a constant cost per token
         (the paper's RNN form); a softmax transformer's state is its key-value cache, which grows
  full   the whole forward over the prefix is recomputed for every new token: softmax attention
         "without a cache", O(t^2) attention and O(t) everything else at position t

Which one a model gets is decided from the model, never from its name: `step` is run three times
from `init_state`, and a state that grows with the prefix is a cache. Metrics:

  gen_tokens_per_s         tokens generated per second (over the batch), with the time the process
                           spent waiting for the CPU taken out (below), in the paper's comparison:
                           `step` for a model whose state stays the same size (recurrent), `full`
                           for one whose state grows (attention, timed without its cache) or that
                           has no `step`
  gen_tokens_per_s_wall    the same, by plain wall-clock time (start to end, waits included)
  gen_tokens_per_s_cached  as gen_tokens_per_s, by `step` whenever the model has one (the KV cache
                           of softmax attention; for a recurrent model the same run as above)
  gen_cost_growth          the time of one token in the last quarter of the generation over that
                           in the first quarter (each the 10% quantile of its quarter's per-token
                           times, see `low_quantile`), in the gen_tokens_per_s mode: ~1 for a
                           constant cost per token, growing with gen_len for recomputation
  gen_accuracy             fraction of the L copied symbols and EOS that the free-running greedy
                           generation gets right (a check that the timed path computes the model)
  gen_state_floats         floats per sequence in the `step` state at the end, when P - 1 + gen_len
                           positions have been fed (P the prompt's length): constant for an RNN,
                           linear in the length for a cache; nan without `step`

The timed span of one run is gen_len model calls, call i producing generated token i (step: the
prompt but its last token is fed beforehand, untimed; full: call i reads the prompt and the i - 1
tokens generated so far). Timing follows the usual rules of a benchmark: `gen_warmup` tokens are
generated untimed first in each mode, then `gen_repeats` runs (each on a fresh prompt) under
torch.no_grad, and the median is reported; on CUDA the device is synchronized after every token.
Torch runs on `gen_threads` CPU threads while timing (1 by default, whatever the job's setting;
restored afterwards), so that every model is timed on the same resources.

Waiting taken out: the models are timed in different jobs, and on shared cores the load of the
other jobs changes between them (a pilot saw the same model's wall-clock rate change 3x from one
run of the job set to the next). Every token is timed, the generation is cut into `SEGMENTS`
consecutive segments, and each segment is charged its length times its 10% quantile per-token time
(`low_quantile`: the cost of a token the scheduler did not interrupt); gen_tokens_per_s divides by
that sum. Inside a segment of a recomputing generation the cost still rises, so the quantile
under-charges it a little: the estimate flatters softmax attention, which only makes a ratio in
linear attention's favour conservative. gen_tokens_per_s_wall keeps the plain measurement.

Honesty about what this measures: wall-clock throughput depends on the machine, its load, the
torch build and the batch size, and different models are timed in different jobs, possibly
running at the same time on shared cores. Only ratios between models of one run of one job set
mean anything; the absolute tokens/s are not comparable with the paper's images/s (a GTX 1080 Ti,
CUDA kernels, much larger models). Medians over repeats damp the noise; they do not remove it.
The paper's softmax baseline in its image-generation tables (Tables 1 and 2) is taken here to be
generation without a key-value cache (the paper's Appendix C.1 says so for those tables; checked
against its v3 text); we time the cached form too (gen_tokens_per_s_cached), since a cache is
how softmax attention is usually decoded, and keep the uncached one as the paper's figure.
"""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..metrics import FRACTION, Metric
from .copy import CopyTask
from .sequence import check_pos

SEGMENTS = 16   # a generation's per-token times are summarized in this many consecutive segments


def state_floats(state) -> int:
    """Number of floating-point values held in a (nested) step state."""
    if isinstance(state, torch.Tensor):
        return state.numel() if state.is_floating_point() else 0
    if isinstance(state, dict):
        return sum(state_floats(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_floats(v) for v in state)
    return 0


@torch.no_grad()
def generation_mode(model: torch.nn.Module, token: int = 0, device: str = "cpu") -> str:
    """'recurrent' when step() keeps a state of constant size, 'cache' when the state grows with
    the prefix (a key-value cache), 'none' when the model has no step()."""
    if not (hasattr(model, "step") and hasattr(model, "init_state")):
        return "none"
    x = torch.full((1,), token, dtype=torch.long, device=device)
    state = model.init_state(1)
    sizes = []
    for _ in range(3):
        _, state = model.step(x, state)
        sizes.append(state_floats(state))
    return "cache" if sizes[2] > sizes[1] else "recurrent"


def low_quantile(xs: list[float], q: float = 0.1) -> float:
    """The q-quantile (lower order statistic) of xs: the cost of a token that the machine did not
    interrupt. A median is not enough on shared cores, where a process waits for its time slice
    every few tokens and the load changes from one quarter of a generation to the next."""
    ys = sorted(xs)
    return ys[int(q * (len(ys) - 1))]


@contextmanager
def torch_threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


@torch.no_grad()
def generate(model, prompt: torch.Tensor, n: int, mode: str):
    """Greedy generation of n tokens after `prompt` (B, P). mode 'step' carries the model's state,
    'full' recomputes the forward over the whole prefix for every token. Returns the generated
    tokens (B, n), the perf_counter time before the first call and after each (n + 1 floats; on
    CUDA the device is synchronized at each) and the final step state (None in 'full' mode)."""
    B, P = prompt.shape
    device = prompt.device
    out = torch.empty(B, n, dtype=torch.long, device=device)
    state = None
    if mode == "step":
        state = model.init_state(B)
        for i in range(P - 1):                                         # prefill, untimed
            _, state = model.step(prompt[:, i], state)
        tok = prompt[:, P - 1]
    else:
        buf = torch.empty(B, P + n, dtype=torch.long, device=device)
        buf[:, :P] = prompt
    _sync(device)
    times = [time.perf_counter()]
    for i in range(n):
        if mode == "step":
            logits, state = model.step(tok, state)                     # (B, V)
        else:
            logits = model(buf[:, : P + i])[:, -1]                     # (B, V)
        tok = logits.argmax(-1)                                        # (B,)
        out[:, i] = tok
        if mode == "full":
            buf[:, P + i] = tok
        _sync(device)
        times.append(time.perf_counter())
    return out, times, state


@dataclass
class CopyGenerationTask(CopyTask):
    gen_len: int = 256             # tokens generated per timed run (an eval axis)
    gen_batch: int = 1             # sequences generated at once
    gen_repeats: int = 3           # timed runs; the median is reported
    gen_warmup: int = 8            # tokens generated untimed before timing, in each mode
    gen_threads: int = 1           # torch CPU threads while timing

    eval_axes: ClassVar[tuple[str, ...]] = ("length", "gen_len", "gen_batch")
    metrics: ClassVar[tuple[str, ...]] = (
        "loss", "accuracy", "sequence_accuracy",
        "gen_tokens_per_s", "gen_tokens_per_s_wall", "gen_tokens_per_s_cached", "gen_cost_growth", "gen_accuracy",
        "gen_state_floats",
    )
    metric_facts: ClassVar = {
        **CopyTask.metric_facts, "gen_accuracy": FRACTION,
        # speeds and sizes of the decoding loop: training does not move them
        **{k: Metric("higher", 0.0, None, trained=False)
           for k in ("gen_tokens_per_s", "gen_tokens_per_s_wall", "gen_tokens_per_s_cached")},
        "gen_cost_growth": Metric("lower", 0.0, None, trained=False),
        "gen_state_floats": Metric("none", 0.0, None, trained=False),
    }

    def chance(self) -> dict[str, float]:
        c = super().chance()
        return {**c, "gen_accuracy": c["accuracy"]} if "accuracy" in c else c

    def __post_init__(self):
        super().__post_init__()
        check_pos(self, "gen_len", "gen_batch", "gen_repeats", "gen_threads")
        check_pos(self, "gen_warmup", minimum=0)

    def prompt(self, gen: torch.Generator, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Copy prompts BOS s_1 .. s_L SEP (B, L + 2) and their answers s_1 .. s_L EOS (B, L + 1)."""
        L = self.length if self.length is not None else self.max_len
        s = self.strings(gen, batch_size, L)                                          # (B, L)
        bos = torch.full((batch_size, 1), self.BOS, dtype=torch.long)
        sep = torch.full((batch_size, 1), self.SEP, dtype=torch.long)
        eos = torch.full((batch_size, 1), self.EOS, dtype=torch.long)
        return torch.cat([bos, s, sep], 1), torch.cat([s, eos], 1)

    def _time(self, model, mode: str, prompts: list[torch.Tensor]) -> dict:
        n = self.gen_len
        q = max(1, n // 4)
        if self.gen_warmup:
            generate(model, prompts[0], min(self.gen_warmup, n), mode)
        m = -(-n // SEGMENTS)                                                   # tokens per segment
        rates, wall, growth, tokens, state = [], [], [], [], None
        for p in prompts:
            toks, t, state = generate(model, p, n, mode)
            per_token = [b - a for a, b in zip(t, t[1:])]
            busy = sum(len(seg) * low_quantile(seg) for seg in (per_token[i: i + m] for i in range(0, n, m)))
            rates.append(p.shape[0] * n / max(busy, 1e-12))                     # over the batch
            wall.append(p.shape[0] * n / max(t[n] - t[0], 1e-12))
            growth.append(low_quantile(per_token[n - q:]) / max(low_quantile(per_token[:q]), 1e-12))
            tokens.append(toks)
        return {"tokens_per_s": statistics.median(rates), "wall": statistics.median(wall),
                "growth": statistics.median(growth), "tokens": tokens, "state": state}

    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        out = super().evaluate(model, gen, device)
        pairs = [self.prompt(gen, self.gen_batch) for _ in range(self.gen_repeats)]
        prompts = [p.to(device) for p, _ in pairs]
        kind = generation_mode(model, self.BOS, device)
        with torch_threads(self.gen_threads):
            if kind == "recurrent":
                main = cached = self._time(model, "step", prompts)
            else:
                main = self._time(model, "full", prompts)
                cached = self._time(model, "step", prompts) if kind == "cache" else main
        right = total = 0
        for toks, (_, answer) in zip(main["tokens"], pairs):
            m = min(answer.shape[1], toks.shape[1])
            right += (toks[:, :m].cpu() == answer[:, :m]).sum().item()
            total += answer[:, :m].numel()
        out.update({
            "gen_tokens_per_s": main["tokens_per_s"],
            "gen_tokens_per_s_wall": main["wall"],
            "gen_tokens_per_s_cached": cached["tokens_per_s"],
            "gen_cost_growth": main["growth"],
            "gen_accuracy": right / total,
            "gen_state_floats": (state_floats(cached["state"]) / self.gen_batch
                                 if cached["state"] is not None else float("nan")),
        })
        return out
