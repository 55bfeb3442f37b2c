"""TTT layers (modules/models/ttt.py): the dual-form forward against the update rule written out
token by token with autograd, Theorem 1 (TTT-Linear with batch GD from W_0 = 0 is linear attention),
step == forward, the paper's defaults and config errors. The generic contract (shapes, every
weight used, causality, step == forward, seeds, overfitting) is in test_ssm_models.py."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from modules.config import ConfigError
from modules.models import build_model
from modules.models.ttt import TTTConfig, TTTMixer

V, B, T, D, H = 11, 2, 11, 16, 2
K = D // H


def mixer(seed=0, **params):
    torch.manual_seed(seed)
    m = TTTMixer(TTTConfig(vocab_size=V, d_model=D, n_head=H, **params)).double()
    with torch.no_grad():                      # move W_0, the LN and the gate off their initial values
        for name, p in m.named_parameters():
            if not name.startswith(("qkv", "out_proj")):
                p.add_(0.3 * torch.randn_like(p))
    return m


def xs(seed=0, t=T):
    return torch.randn(B, t, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def reference(m: TTTMixer, x: torch.Tensor) -> torch.Tensor:
    """z_t = f(q_t; W_t), W_t = W_{i-1} - c_t sum_{s<=t in i} eta_s grad l(W_{i-1}; x_s), each gradient
    taken by autograd of l = ||f(k_s; W) - v_s||^2, one token at a time."""
    with torch.no_grad():
        q, k, v, eta = m._views(x)                                              # (B, H, T, K), eta (B, H, T)
    n_inner = m.n_inner
    # the inner weights, flat: W0 [, W1], then the biases b0 [, b1] that exist; one copy per sequence
    names = [f"W{i}" for i in range(n_inner)] + [f"b{i}" for i in range(n_inner) if getattr(m, f"b{i}") is not None]
    w = [getattr(m, n).detach().expand(B, *getattr(m, n).shape).clone() for n in names]
    ln = None if m.ln_w is None else (m.ln_w.detach(), m.ln_b.detach())

    def f(w, inp):                                                              # inp (B, H, K)
        h = inp
        for i in range(n_inner):
            h = torch.einsum("bhi,bhio->bho", F.gelu(h) if i else h, w[i])
            h = h + w[names.index(f"b{i}")] if f"b{i}" in names else h
        return h if ln is None else inp + F.layer_norm(h, (K,), eps=1e-6) * ln[0] + ln[1]

    def grad(w, s):
        w = [p.clone().requires_grad_() for p in w]
        return torch.autograd.grad((f(w, k[:, :, s]) - v[:, :, s]).square().sum(), w)

    out = []
    for s0 in range(0, x.shape[1], m.b):
        span = range(s0, min(s0 + m.b, x.shape[1]))
        grads = [grad(w, s) for s in span]                                      # all at W_{i-1}
        for j, t in enumerate(span):
            c = 1 / (j + 1) if m.prefix_mean else 1.0
            w_t = [p - c * sum(eta[:, :, s].reshape(B, H, *[1] * (p.dim() - 2)) * g[n]
                               for s, g in zip(span[:j + 1], grads)) for n, p in enumerate(w)]
            out.append(f(w_t, q[:, :, t]))
        w = w_t                                                                 # W_i: the last token's
    return torch.stack(out, dim=2)


@pytest.mark.parametrize("params", [
    {"inner": "linear", "mini_batch": 4},
    {"inner": "linear", "mini_batch": 1, "inner_norm": False},
    {"inner": "linear", "mini_batch": 32, "prefix_mean": False, "inner_bias": False},
    {"inner": "mlp", "mini_batch": 4},
    {"inner": "mlp", "mini_batch": 3, "inner_norm": False, "eta_learnable": False},
    {"inner": "mlp", "mini_batch": 5, "prefix_mean": False, "eta_base": 0.5},
], ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_dual_form_is_the_update_rule(params):
    """The mini-batch dual form (hand-written gradients, LN's and GELU's included) equals mini-batch
    GD with autograd's gradients; T = 11 leaves a short last mini-batch."""
    m = mixer(**params)
    x = xs()
    torch.testing.assert_close(m.inner_outputs(x), reference(m, x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("mini_batch", [T, T + 5])
def test_theorem_1_batch_gd_from_zero_is_linear_attention(mini_batch):
    """f(k) = W k, W_0 = 0, batch GD, eta = 1/2: z_t = sum_{s<=t} v_s k_s^T q_t; any fixed eta: 2 eta times it."""
    theorem = {"inner": "linear", "inner_norm": False, "inner_bias": False, "w0": "zero",
               "eta_learnable": False, "prefix_mean": False, "mini_batch": mini_batch}
    x = xs(1)
    for eta in (0.5, 0.1):
        m = mixer(**theorem, eta_base=eta * K)                                 # eta_s = eta_base / K
        q, k, v, e = m._views(x)
        assert torch.equal(e, torch.full_like(e, eta))
        scores = torch.tril(q @ k.transpose(-1, -2))                           # (B, H, T, T): q_t . k_s, s <= t
        linear_attention = scores @ v
        torch.testing.assert_close(m.inner_outputs(x), 2 * eta * linear_attention, rtol=0, atol=1e-10)
    m = mixer(**{**theorem, "mini_batch": 4}, eta_base=0.5 * K)                 # mini-batch GD is not: W moves
    assert not torch.allclose(m.inner_outputs(x), linear_attention, atol=1e-3)


@pytest.mark.parametrize("params", [{"mini_batch": 1}, {"mini_batch": 1, "inner": "mlp"},
                                    {"mini_batch": 5, "inner": "mlp"}, {"mini_batch": 40}])
def test_step_equals_forward(params):
    torch.manual_seed(0)
    model = build_model("ttt", {"n_layer": 2, "d_model": D, "n_head": H, **params}, {"vocab_size": V}).eval()
    x = torch.randint(0, V, (B, 13), generator=torch.Generator().manual_seed(0))
    state, outs = model.init_state(B), []
    for t in range(13):
        o, state = model.step(x[:, t], state)
        outs.append(o)
    torch.testing.assert_close(torch.stack(outs, 1), model(x), rtol=1e-5, atol=1e-5)
    assert state[0][2] == 13 % params["mini_batch"]                             # the position in the mini-batch


def test_a_mini_batch_step_lowers_the_inner_loss():
    """The update is descent: after one mini-batch W_1 fits that mini-batch's views better than W_0."""
    m = mixer(inner="linear", inner_norm=False, mini_batch=T, eta_learnable=False)
    x = xs(2)
    _, k, v, _ = m._views(x)
    state = m.init_state(B, "cpu")
    with torch.no_grad():
        for t in range(T):
            _, state = m.step(x[:, t], state)
    (W0, b0), = m._w0(B)
    (W1, b1), = state[0]

    def loss(W, b):
        return (k @ W + b[:, :, None] - v).square().sum()
    assert state[2] == 0 and loss(W1, b1) < loss(W0, b0)


def test_defaults_follow_the_paper_and_the_official_code():
    lin, mlp = TTTConfig(vocab_size=V), TTTConfig(vocab_size=V, inner="mlp")
    assert (lin.mini_batch, lin.inner_norm, lin.eta_learnable, lin.w0) == (16, True, True, "learned")
    assert (lin.eta_base, mlp.eta_base) == (1.0, 0.1)
    torch.manual_seed(0)
    m = TTTMixer(TTTConfig(vocab_size=V, d_model=64, n_head=2, inner="mlp"))
    assert m.W0.shape == (2, 32, 128) and m.W1.shape == (2, 128, 32)
    assert abs(m.W0.std().item() - 0.02) < 0.002 and torch.equal(m.b0, torch.zeros(2, 128))
    assert torch.equal(m.ln_w, torch.ones(2, 32)) and torch.equal(m.lr.bias, torch.zeros(2))
    z = TTTMixer(TTTConfig(vocab_size=V, d_model=16, n_head=2, w0="zero"))
    assert "W0" not in dict(z.named_parameters()) and torch.equal(z.W0, torch.zeros(2, 8, 8))


@pytest.mark.parametrize("params,key", [
    ({"mini_batch": 0}, "mini_batch"),
    ({"n_head": 3}, "n_head"),
    ({"inner": "conv"}, "inner"),
    ({"eta_base": 0.0}, "eta_base"),
    ({"w0": "zero", "inner": "mlp"}, "w0"),
    ({"w0": "normal"}, "w0"),
    ({"inner_norm": "yes"}, "inner_norm"),
    ({"minibatch": 4}, "minibatch"),
])
def test_bad_config_names_the_key(params, key):
    with pytest.raises(ConfigError) as e:
        build_model("ttt", {"d_model": D, **params}, {"vocab_size": V})
    assert e.value.key == key
