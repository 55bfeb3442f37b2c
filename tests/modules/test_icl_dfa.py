"""In-context language learning of random DFAs (Akyürek et al. 2024, RegBench): prompts are seeded
and every string walks its own automaton; the in-context n-gram estimator matches hand-computed
values and a literal string-by-string implementation of the authors' scheme; an oracle that knows
the automaton is perfect, a constant guess is at chance, the n-gram estimator is at TV 0 from
itself; and the engine trains and evaluates the task."""
from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from modules.config import ConfigError, build_config
from modules.tasks.icl_dfa import ICLDFATask
from modules.tasks.ngram_refs import in_context_ngram
from modules.tasks.sequence import IGNORE

SMALL = {"vocab_size": 8, "min_states": 3, "max_states": 5, "max_edges": 2, "min_strings": 6, "max_strings": 8,
         "max_len": 12, "n_train_prompts": 300, "eval_size": 256}


def task(**over) -> ICLDFATask:
    return build_config(ICLDFATask, {**SMALL, **over})


# ---- data ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("pool", [300, None])
def test_seeded_and_in_vocabulary(pool):
    t = task(n_train_prompts=pool)
    a = t.batch(torch.Generator().manual_seed(5), 16)
    b = task(n_train_prompts=pool).batch(torch.Generator().manual_seed(5), 16)     # a new task: same pool
    c = t.batch(torch.Generator().manual_seed(6), 16)
    assert a.keys() == {"x", "y"} and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["x"][:, :20], c["x"][:, :20])
    x, y = a["x"], a["y"]
    V = t.spec()["vocab_size"]
    assert V == 10 and x.dtype == y.dtype == torch.long and x.shape == y.shape
    assert 0 <= x.min() and x.max() < V
    scored = y != IGNORE
    assert scored.any(1).all() and (y[scored] < t.vocab_size).all()
    nxt = torch.cat([x[:, 1:], torch.full_like(x[:, :1], t.PAD)], 1)
    assert torch.equal(scored[:, :-1], nxt[:, :-1] < t.vocab_size)   # y is the next token where it is a symbol


def test_pool_is_fixed_and_batches_come_from_it():
    t = task(n_train_prompts=40, seq_len=None)
    z, total = t.pool()
    assert z.shape[0] == 40 and torch.equal(z, task(n_train_prompts=40).pool()[0])
    assert not torch.equal(z, task(n_train_prompts=40, pool_seed=1).pool()[0])
    prompts = [tuple(r[:n].tolist()) for r, n in zip(z.long(), total)]
    b = t.batch(torch.Generator().manual_seed(0), 64)
    for row in b["x"]:
        n = int((row != t.PAD).sum())                     # the whole prompt, or all but its last token
        assert any(p[:n] == tuple(row[:n].tolist()) and n >= len(p) - 1 for p in prompts)


def test_every_string_walks_its_automaton_and_sizes_are_in_range():
    t = task(eval_size=64)
    b = t.sample(torch.Generator().manual_seed(1), 64)
    x, y, trans, legal = b["x"], b["y"], b["trans"], b["legal"]
    assert trans.shape == (64, t.max_states, t.vocab_size)
    for i in range(64):
        tr = trans[i]
        has = (tr >= 0).any(1)
        n = int(has.sum())
        assert t.min_states <= n <= t.max_states and has[:n].all()                 # states 0 .. n-1
        degree = (tr[:n] >= 0).sum(1)
        assert ((degree >= t.min_edges) & (degree <= t.max_edges)).all()
        for s in range(n):
            targets = tr[s][tr[s] >= 0].tolist()
            assert len(set(targets)) == len(targets) and s not in targets and max(targets) < n
        # the prompt: strings joined by SEP, walked from state 0
        row = x[i].tolist() + [y[i, -1].item()]
        tokens = row[:row.index(t.PAD)] if t.PAD in row else row
        strings = [[]]
        for c in tokens:
            strings[-1].append(c) if c != t.SEP else strings.append([])
        assert t.min_strings <= len(strings) <= t.max_strings
        state = 0
        for s in strings:
            assert t.min_len <= len(s) <= t.max_len
            state = 0
            for c in s:
                assert tr[state, c] >= 0, (i, s)
                state = int(tr[state, c])
    # the true next symbol is always legal, and legal is the current state's edges
    scored = y != IGNORE
    assert legal.gather(2, y.clamp(min=0)[..., None])[..., 0][scored].all()


def test_seq_len_cuts_and_pads():
    t = task(seq_len=30, n_train_prompts=None)
    b = t.batch(torch.Generator().manual_seed(0), 8)
    assert b["x"].shape == (8, 30)
    t = task(seq_len=200, n_train_prompts=20)
    long = t.batch(torch.Generator().manual_seed(0), 4)
    assert long["x"].shape == (4, 200) and (long["x"][:, -1] == t.PAD).all()


# ---- the in-context n-gram estimator --------------------------------------------------------------

def test_ngram_by_hand():
    a, b, c, SEP = 0, 1, 2, 3
    x = torch.tensor([[a, b, a, b, a]])
    # bigram at the last a: N(a) = 3 (its own occurrence included), N(a b) = 2; a never followed a
    p = in_context_ngram(x, 3, SEP, 2, alpha=1.0)[1][0, -1]            # Sigma = {a, b}: c gets 0
    assert p.tolist() == pytest.approx([2 / 5, 3 / 5, 0.0])            # b: (2+1)/(3+2); a: beta = 2/5
    p = in_context_ngram(x, 3, SEP, 2, alpha=0.0)[1][0, -1]
    assert p.tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    # backoff: the trigram context (c, a) was never seen; the bigram gives b 1/2 (a b once, N(a) = 2),
    # and its remaining 1/2 goes to the unseen a and c by their unigram counts 2 : 1
    x = torch.tensor([[a, b, c, a]])
    p = in_context_ngram(x, 3, SEP, 3)[2][0, -1]
    assert p.tolist() == pytest.approx([1 / 3, 1 / 2, 1 / 6])
    # after a separator the context is the string start: a began one of the 2 strings so far
    x = torch.tensor([[a, b, SEP, a]])
    probs = in_context_ngram(x, 3, SEP, 2)[1][0]
    assert probs[2].tolist() == pytest.approx([1 / 2, 1 / 2, 0.0])
    assert probs[0].tolist() == pytest.approx([1.0, 0.0, 0.0])         # only a has been seen
    # unigram with add-alpha: counts a 2, b 1 after "a b SEP a"
    assert in_context_ngram(x, 3, SEP, 1, alpha=1.0)[0][0, 3].tolist() == pytest.approx([3 / 5, 2 / 5, 0.0])


def _backoff(counts: Counter, vocab: list[int], prefix: tuple, chars: list[int], m: int, alpha: float) -> list[float]:
    """P_m(c | prefix) for c in chars, backing off per unseen continuation (module ngram_refs)."""
    if m == 1:
        total = sum(counts[(c,)] + alpha for c in vocab)
        return [(counts[(c,)] + alpha) / total for c in chars]
    p = {c: (counts[prefix + (c,)] + alpha) / (counts[prefix] + alpha * len(vocab))
         for c in vocab if counts[prefix + (c,)] > 0}
    beta = 1 - sum(p.values())
    unseen = [c for c in vocab if c not in p]
    if unseen:
        lower = _backoff(counts, vocab, prefix[1:], unseen, m - 1, alpha)
        for c, q in zip(unseen, lower):
            p[c] = beta * q / sum(lower)
    return [p[c] for c in chars]


def slow_ngram(tokens: list[int], V: int, sep: int, N: int, alpha: float) -> list[list[float]]:
    """The authors' scheme written out on strings: pad every string with N-1 BOS marks, count every
    m-gram, back off per unseen continuation, renormalize over the symbols seen so far."""
    BOS = -1
    out = []
    for t in range(len(tokens)):
        strings = [[]]
        for c in tokens[:t + 1]:
            strings[-1].append(c) if c != sep else strings.append([])
        vocab = sorted({c for s in strings for c in s})
        counts = Counter()
        for s in strings:
            padded = [BOS] * (N - 1) + s
            for m in range(1, N + 1):
                for i in range(len(padded) - m + 1):
                    counts[tuple(padded[i:i + m])] += 1
        prefix = tuple(([BOS] * (N - 1) + strings[-1])[len(strings[-1]):]) if N > 1 else ()
        probs = _backoff(counts, vocab, prefix, vocab, N, alpha)
        row = [0.0] * V
        for c, q in zip(vocab, probs):
            row[c] = q / sum(probs)
        out.append(row)
    return out


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_ngram_matches_the_string_by_string_scheme(alpha):
    t = task(vocab_size=5, max_len=6, min_strings=4, max_strings=6)
    b = t.sample(torch.Generator().manual_seed(3), 4)
    refs = in_context_ngram(b["x"], t.vocab_size, t.SEP, 4, alpha)
    for i in range(4):
        row = b["x"][i].tolist()
        tokens = row[:row.index(t.PAD)] if t.PAD in row else row
        for N in (1, 2, 3, 4):
            want = torch.tensor(slow_ngram(tokens, t.vocab_size, t.SEP, N, alpha))
            got = refs[N - 1][i, :len(tokens)].double()
            assert torch.allclose(got, want.double(), atol=1e-5), (i, N)


# ---- evaluation: oracle, constant, n-gram, chance -------------------------------------------------

class Oracle(torch.nn.Module):
    """Knows every automaton: replays the evaluation's draws with its own generator and puts equal
    logits on the current state's edges."""

    def __init__(self, t, seed):
        super().__init__()
        self.t, self.gen = t, torch.Generator().manual_seed(seed)

    def forward(self, x):
        b = self.t.sample(self.gen, x.shape[0])
        assert torch.equal(b["x"], x)
        legal = torch.nn.functional.pad(b["legal"], (0, 2))
        return torch.where(legal, 0.0, -30.0)


class Constant(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits.expand(*x.shape, -1)


class NGramModel(torch.nn.Module):
    def __init__(self, t, order):
        super().__init__()
        self.t, self.order = t, order

    def forward(self, x):
        p = in_context_ngram(x, self.t.vocab_size, self.t.SEP, self.order, self.t.ngram_alpha)[-1]
        return torch.nn.functional.pad(p.clamp(min=1e-30).log(), (0, 2), value=-1e4)


def test_oracle_is_perfect_and_at_zero_tv_from_the_automaton():
    t = task()
    m = t.evaluate(Oracle(t, 11), torch.Generator().manual_seed(11))
    assert m["accuracy"] == 1.0 and m["tv_dfa"] < 1e-6
    assert 0 < m["loss"] < math.log(t.max_edges) + 1e-6                 # the walk's own entropy
    assert set(m) == set(t.metrics) and all(0 <= m[k] <= 1 for k in t.metrics if k != "loss")


def test_constant_guesses_are_at_chance():
    t = task(eval_size=512)
    chance = t.chance()
    V = t.vocab_size
    accs = []
    for c in range(V):
        m = t.evaluate(Constant(torch.nn.functional.one_hot(torch.tensor(c), V + 2).float() * 10),
                       torch.Generator().manual_seed(2))
        accs.append(m["accuracy"])
        assert abs(m["accuracy"] - chance["accuracy"]) < 0.06, (c, m, chance)
    assert abs(sum(accs) / V - chance["accuracy"]) < 0.02
    uniform = torch.cat([torch.zeros(V), torch.full((2,), -1e4)])
    m = t.evaluate(Constant(uniform), torch.Generator().manual_seed(2))
    assert m["loss"] == pytest.approx(chance["loss"]) == pytest.approx(math.log(V))
    assert m["tv_dfa"] == pytest.approx(1 - sum(accs) / V, abs=1e-4)     # uniform vs uniform over the edges
    assert abs(m["tv_dfa"] - chance["tv_dfa"]) < 0.02
    assert chance == t.chance()                                           # fixed for every seed


def test_the_ngram_estimator_is_at_zero_tv_from_itself():
    t = task(ngram_alpha=0.5)
    m = t.evaluate(NGramModel(t, 3), torch.Generator().manual_seed(4))
    assert m["tv_ngram3"] < 1e-4
    assert abs(m["accuracy"] - m["ngram3_accuracy"]) < 0.01            # near-ties may break apart under log
    assert m["tv_ngram2"] > 0.01 and m["tv_ngram1"] > m["tv_ngram2"]
    assert m["ngram3_accuracy"] > m["ngram1_accuracy"] > t.chance()["accuracy"]


def test_score_string_reads_one_string_and_the_estimators_learn_in_context():
    first = task(score_string=0).evaluate(NGramModel(task(), 2), torch.Generator().manual_seed(5))
    later = task(score_string=4).evaluate(NGramModel(task(), 2), torch.Generator().manual_seed(5))
    assert later["ngram2_accuracy"] > first["ngram2_accuracy"] + 0.05
    o = task(score_string=5)
    assert o.evaluate(Oracle(o, 6), torch.Generator().manual_seed(6))["accuracy"] == 1.0


def test_bad_configs_name_their_key():
    for params, key in [({"min_states": 6, "max_states": 5}, "min_states"),
                        ({"max_edges": 3, "min_states": 3}, "max_edges"),
                        ({"min_alphabet": 9}, "min_alphabet"),
                        ({"min_strings": 9}, "min_strings"),
                        ({"score_string": 8}, "score_string"),
                        ({"n_train_prompts": 0}, "n_train_prompts"),
                        ({"ngram_alpha": -1.0}, "ngram_alpha")]:
        with pytest.raises(ConfigError) as e:
            task(**params)
        assert e.value.key == key, (params, e.value)


# ---- the engine -----------------------------------------------------------------------------------

def test_engine_trains_and_evaluates(tmp_path, monkeypatch):
    import modules.tasks
    from workflow.evaluate import evaluate
    from workflow.train import train

    monkeypatch.setitem(modules.tasks.TASKS, "icl_dfa", "modules.tasks.icl_dfa:ICLDFATask")
    cfg = {"task": {"name": "icl_dfa", **SMALL, "n_train_prompts": 64, "eval_size": 32},
           "model": {"arch": "transformer", "n_layer": 1, "n_head": 2, "d_model": 16, "pos": "rope"},
           "train": {"steps": 20, "batch_size": 16, "lr": 3e-3, "optimizer": "adamw", "weight_decay": 0.0,
                     "momentum": 0.0, "schedule": "constant", "warmup_steps": 0, "grad_clip": 1.0,
                     "log_every": None, "converged_rel_drop": 0.02}, "seed": 0}
    rec = train(cfg, tmp_path, log=lambda s: None)
    assert rec["status"] == "ok" and rec["history"]["loss"][-1] < rec["history"]["loss"][0]
    metrics = ["loss", "accuracy", "tv_dfa", "tv_ngram2", "tv_ngram3", "ngram2_accuracy", "ngram3_accuracy"]
    points = evaluate(cfg, {"metrics": metrics, "sweep": {"task.score_string": [0, 3]}}, tmp_path / "model.pt")
    assert [p["at"] for p in points] == [{"task.score_string": 0}, {"task.score_string": 3}]
    for p in points:
        m = p["metrics"]
        assert all(0 <= m[k] <= 1 for k in metrics if k != "loss") and math.isfinite(m["loss"])
        assert set(p["chance"]) == {"loss", "accuracy", "tv_dfa"}
