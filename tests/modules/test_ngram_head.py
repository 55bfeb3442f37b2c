"""The hard-wired n-gram head (Akyürek, Wang, Kim & Andreas 2024) and the hybrid stacks that hold
it: the attention pattern by hand and against its definition, the no-match and current-position
cases, causality, seeds, step == forward, tbptt windows, the config errors, a small in-context
copying task the head solves, and hybrids without a head running MixerLM's code unchanged."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from modules.config import ConfigError
from modules.models import build_model
from modules.models.hybrid import Hybrid
from modules.models.mixer_lm import MixerLM
from modules.models.ngram_head import NGramHead, NGramHeadConfig, ngram_mask, ngram_weights

V = 3           # a small vocabulary, so that contexts repeat and the heads have matches
B, T = 3, 17
D = 16
A, Bt = 0, 1    # the tokens a and b


def make(pattern, seed=0, **params):
    torch.manual_seed(seed)
    n_layer = len(pattern)
    return build_model("hybrid", {"n_layer": n_layer, "d_model": D, "pattern": pattern, **params},
                       {"vocab_size": V}).eval()


def tokens(seed=0, b=B, t=T):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


STACKS = [
    (["lru", "ngram2", "ngram3"], {"mixers": {"lru": {"d_state": 8}}}),
    (["ngram", "gla"], {"mixers": {"ngram": {"n": 4, "direct": False}, "gla": {"n_head": 2, "chunk_size": 4}}}),
    (["attention", "ngram2"], {"mixers": {"attention": {"n_head": 2}}}),
]
IDS = ["-".join(p) for p, _ in STACKS]


# --- the attention pattern --------------------------------------------------------------------

def test_pattern_by_hand():
    """ids a b a b a at positions 0..4. n = 2 matches the one token ending at t against the token
    before j: t = 2 (a) -> j = 1 (after the a at 0); t = 3 (b) -> j = 2 (after the b at 1);
    t = 4 (a) -> j = 1 and 3 (after the a's at 0 and 2), 1/2 each; t = 0, 1 have no earlier match.
    n = 3 matches two tokens: t = 3 (a b) -> j = 2 (after a b at 0, 1); t = 4 (b a) -> j = 3
    (after b a at 1, 2); j = 4 (after a b at 2, 3) is not earlier than t = 3. n = 4 matches three:
    only t = 4 (a b a) -> j = 3 (after a b a at 0..2)."""
    ids = torch.tensor([[A, Bt, A, Bt, A]])
    w2 = torch.zeros(5, 5)
    w2[2, 1] = w2[3, 2] = 1.0
    w2[4, 1] = w2[4, 3] = 0.5
    torch.testing.assert_close(ngram_weights(ids, 2)[0], w2, rtol=0, atol=0)
    w3 = torch.zeros(5, 5)
    w3[3, 2] = w3[4, 3] = 1.0
    torch.testing.assert_close(ngram_weights(ids, 3)[0], w3, rtol=0, atol=0)
    w4 = torch.zeros(5, 5)
    w4[4, 3] = 1.0
    torch.testing.assert_close(ngram_weights(ids, 4)[0], w4, rtol=0, atol=0)
    assert not ngram_mask(ids, 5).any()


@pytest.mark.parametrize("n", [2, 3, 4])
def test_mask_is_the_definition(n):
    """M[t, j] = 1 iff j < t, j >= n-1 and x_{j-n+1..j-1} == x_{t-n+2..t}, by brute force."""
    m = n - 1
    for seed, vocab in ((0, 2), (1, 3)):
        ids = torch.randint(0, vocab, (2, 21), generator=torch.Generator().manual_seed(seed))
        want = torch.zeros(2, 21, 21, dtype=torch.bool)
        for b in range(2):
            s = ids[b].tolist()
            for t in range(21):
                for j in range(m, t):
                    want[b, t, j] = t >= m - 1 and s[j - m:j] == s[t - m + 1:t + 1]
        assert torch.equal(ngram_mask(ids, n), want)
        assert want.any()


def test_the_current_position_is_never_attended_and_no_match_gives_zero():
    """ids a a b, n = 2: at t = 1 the context (a) was followed by a at j = 1 itself, which is not
    earlier than t, so no match; at t = 2 the context (b) never occurred before."""
    ids = torch.tensor([[A, A, Bt]])
    assert not ngram_mask(ids, 2).any()
    x = torch.randn(1, 3, D)
    torch.manual_seed(0)
    pure = NGramHead(NGramHeadConfig(n=2, direct=False), D)
    y = pure(x, ids)
    torch.testing.assert_close(y, pure.value.bias.expand(1, 3, D), rtol=0, atol=0)   # W_v 0 + b_v
    head = NGramHead(NGramHeadConfig(n=2), D)
    torch.testing.assert_close(head(x, ids), head.value.bias + head.direct(x), rtol=0, atol=0)
    # with a match, the head adds W_v of the mean of the attended hidden states
    ids = torch.tensor([[A, Bt, A, Bt, A]])
    x = torch.randn(1, 5, D)
    want = head.value((x[:, 1] + x[:, 3]) / 2) + head.direct(x[:, 4])
    torch.testing.assert_close(head(x, ids)[:, 4], want)


def test_the_head_needs_token_ids():
    head = NGramHead(NGramHeadConfig(), D)
    with pytest.raises(RuntimeError, match="token ids"):
        head(torch.randn(1, 4, D))
    with pytest.raises(RuntimeError, match="token ids"):
        head.step(torch.randn(1, D), head.init_state(1, "cpu"))
    model = make(["lru", "ngram2"])
    with pytest.raises(TypeError, match="float"):
        model(torch.randn(2, 5))
    with pytest.raises(ConfigError) as e:
        build_model("hybrid", {"pattern": "lru,ngram"}, {"d_input": 4, "d_output": 2})
    assert e.value.key == "pattern"


# --- in a hybrid stack --------------------------------------------------------------------------

def test_hybrid_builds_heads_of_several_orders():
    model = make(["gla", "ngram2", "ngram3", "ngram"],
                 mixers={"gla": {"n_head": 2}, "ngram": {"n": 5, "direct": False}})
    kinds = [type(b.mixer).__name__ for b in model.blocks]
    assert kinds == ["GLAMixer", "NGramHead", "NGramHead", "NGramHead"]
    assert [b.mixer.n for b in model.blocks[1:]] == [2, 3, 5]
    assert model.blocks[3].mixer.direct is None and model.blocks[1].mixer.direct is not None
    model = make(["ngram3"], mixers={"ngram3": {"n": 3}})                               # n may repeat the name's
    assert model.blocks[0].mixer.n == 3


@pytest.mark.parametrize("params,key", [
    ({"pattern": "lru,ngram1"}, "pattern"),
    ({"pattern": "lru,ngram_2"}, "pattern"),
    ({"pattern": "lru,ngram", "mixers": {"ngram": {"n": 1}}}, "mixers.ngram.n"),
    ({"pattern": "lru,ngram", "mixers": {"ngram": {"n": 2.5}}}, "mixers.ngram.n"),
    ({"pattern": "lru,ngram3", "mixers": {"ngram3": {"n": 2}}}, "mixers.ngram3.n"),
    ({"pattern": "lru,ngram", "mixers": {"ngram": {"window": 4}}}, "mixers.ngram.window"),
    ({"pattern": "lru,ngram", "mixers": {"ngram": {"direct": "yes"}}}, "mixers.ngram.direct"),
    ({"pattern": "lru,ngram", "mixers": {"ngram": {"d_model": 8}}}, "mixers.ngram.d_model"),
    ({"pattern": "lru,ngram", "mixers": {"ngram2": {}}}, "mixers.ngram2"),
])
def test_bad_config_names_the_key(params, key):
    with pytest.raises(ConfigError) as e:
        build_model("hybrid", {"d_model": D, **params}, {"vocab_size": V})
    assert e.value.key == key


# The zoo's contract (shapes, every weight used, causality, determinism, step == forward) runs on
# these stacks in test_ssm_models.py; here, step == forward where several earlier matches average.


@pytest.mark.parametrize("pattern,params", STACKS, ids=IDS)
def test_step_equals_forward(pattern, params):
    model = make(pattern, **params)
    x = tokens(t=24)
    assert ngram_mask(x, 3).sum(-1).gt(1).any()                # rows averaging several matches
    with torch.no_grad():
        full = model(x)
        state, outs = model.init_state(B), []
        for t in range(x.shape[1]):
            o, state = model.step(x[:, t], state)
            outs.append(o)
    torch.testing.assert_close(torch.stack(outs, 1), full, rtol=0, atol=1e-5)


def test_tbptt_windows_hand_each_head_its_window():
    """Training with tbptt: W runs every window from zero: the heads see only the window's ids."""
    pattern, params = STACKS[0]
    model = make(pattern, tbptt=5, **params)
    x = tokens(t=T)
    with torch.no_grad():
        windows = torch.cat([model(x[:, s:s + 5]) for s in range(0, T, 5)], dim=1)    # eval: each alone
        model.train()
        trained = model(x)                                                             # train: windowed
    torch.testing.assert_close(trained, windows, rtol=0, atol=1e-6)
    assert not torch.allclose(trained, model.eval()(x), atol=1e-4)


def test_hybrids_without_a_head_run_mixer_lm_unchanged():
    torch.manual_seed(0)
    model = build_model("hybrid", {"n_layer": 2, "d_model": D, "pattern": "gla,attention",
                                   "mixers": {"gla": {"n_head": 2}, "attention": {"n_head": 2}}},
                        {"vocab_size": V}).eval()
    x = tokens()
    assert torch.equal(model(x), MixerLM.forward(model, x))
    s1, s2 = model.init_state(B), model.init_state(B)
    for t in range(4):
        o1, s1 = model.step(x[:, t], s1)
        o2, s2 = MixerLM.step(model, x[:, t], s2)
        assert torch.equal(o1, o2)
    assert isinstance(model, Hybrid)


# --- learning ---------------------------------------------------------------------------------

def test_learns_in_context_copying_that_the_recurrence_alone_does_not():
    """Sequences are a fresh random permutation of K tokens, repeated: the second copy is
    predictable only in context. With an n = 2 head (which reads the token that followed the
    earlier occurrence of the current one) the loss on the second copy falls near zero within a
    few dozen steps; the same stack with a second s4d layer instead stays near chance, ln K."""
    K, steps = 10, 40

    def batch(g, b):
        perm = torch.stack([torch.randperm(K, generator=g) for _ in range(b)])
        return torch.cat([perm, perm], 1)                                              # (b, 2K)

    def second_copy_loss(model, x):
        logits = model(x[:, :-1])[:, K:]                                               # predicts x[K+1:]
        return F.cross_entropy(logits.reshape(-1, K), x[:, K + 1:].reshape(-1))

    losses = {}
    for pattern in ("s4d,ngram2", "s4d,s4d"):
        torch.manual_seed(0)
        model = build_model("hybrid", {"n_layer": 2, "d_model": 16, "d_ff": 32, "pattern": pattern,
                                       "mixers": {"s4d": {"d_state": 4}}}, {"vocab_size": K})
        opt = torch.optim.Adam(model.parameters(), lr=2e-2)
        g = torch.Generator().manual_seed(0)
        for _ in range(steps):
            loss = second_copy_loss(model, batch(g, 16))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            losses[pattern] = second_copy_loss(model.eval(), batch(torch.Generator().manual_seed(99), 64)).item()
    assert losses["s4d,ngram2"] < 0.1, losses
    assert losses["s4d,s4d"] > 1.5, losses                                             # ln 10 = 2.30
