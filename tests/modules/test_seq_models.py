"""The non-SSM sequence models: transformer (five positional schemes), Elman RNN, GRU and the
LSTM with the variants of Greff et al. 2015, checked against the model contract."""
from __future__ import annotations

import time

import pytest
import torch

from modules.config import ConfigError
from modules.models import build_model
from modules.models.lstm import VARIANTS
from modules.models.transformer import alibi_mask, alibi_slopes, apply_rope, hard_alibi_mask, rope_cos_sin
from modules.optim import make_optimizer

V = 11          # vocabulary of the toy inputs
B, T = 3, 13    # odd sizes on purpose

# (arch, params): every positional scheme, both ways of stacking recurrent layers, and the
# LSTM flags that change the state (full gate recurrence) or the gate layout (coupling).
CASES = [
    *[("transformer", {"n_layer": 2, "n_head": 2, "d_model": 16, "pos": p})
      for p in ("learned", "sinusoidal", "rope", "alibi", "hard_alibi", "none")],
    ("transformer", {"n_layer": 1, "n_head": 4, "d_model": 16, "pos": "hard_alibi", "hard_alibi_heads": 3}),
    ("transformer", {"n_layer": 1, "n_head": 3, "d_model": 24, "pos": "alibi"}),   # heads not a power of 2
    ("transformer", {"n_layer": 2, "n_head": 2, "d_model": 16, "pos": "rope", "qk_norm": True}),
    ("rnn", {"n_layer": 2, "d_model": 16}),
    ("rnn", {"n_layer": 2, "d_model": 16, "nonlinearity": "relu", "block": "prenorm"}),
    ("gru", {"n_layer": 2, "d_model": 16}),
    ("gru", {"n_layer": 2, "d_model": 16, "block": "prenorm", "d_ff": 32}),
    ("lstm", {"n_layer": 2, "d_model": 16}),
    ("lstm", {"n_layer": 1, "d_model": 16, "full_gate_recurrence": True, "block": "prenorm"}),
    ("lstm", {"n_layer": 1, "d_model": 16, "coupled_input_forget": True, "peepholes": False}),
    ("lstm", {"n_layer": 2, "d_model": 16, "peepholes": False}),                  # torch.lstm's fused path
    ("lstm", {"n_layer": 1, "d_model": 16, "peepholes": False, "block": "prenorm"}),
]
IDS = [f"{a}-{'-'.join(f'{k}={v}' for k, v in p.items() if k not in ('n_layer', 'd_model'))}" for a, p in CASES]




def make(arch, params, seed=0, **spec):
    torch.manual_seed(seed)
    return build_model(arch, params, spec or {"vocab_size": V}).eval()


def tokens(seed=0, b=B, t=T):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch,params", CASES, ids=IDS)
def test_shapes_and_hidden_states(arch, params):
    model = make(arch, params)
    logits, hiddens = model(tokens(), return_hidden=True)
    assert logits.shape == (B, T, V)
    assert len(hiddens) == params["n_layer"]
    assert all(h.shape == (B, T, params["d_model"]) for h in hiddens)
    assert torch.equal(model(tokens()), logits)


@pytest.mark.parametrize("arch,params", CASES, ids=IDS)
def test_causal(arch, params):
    """Changing the inputs from position s on never changes the outputs before s."""
    model = make(arch, params)
    x = tokens()
    base, hid = model(x, return_hidden=True)
    for s in (0, 5, T - 1):
        x2 = x.clone()
        x2[:, s:] = (x2[:, s:] + 1 + torch.arange(T - s)) % V
        out, hid2 = model(x2, return_hidden=True)
        assert torch.equal(out[:, :s], base[:, :s]), s
        assert all(torch.equal(a[:, :s], b[:, :s]) for a, b in zip(hid, hid2))
        assert not torch.allclose(out[:, s:], base[:, s:])


@pytest.mark.parametrize("arch,params", CASES, ids=IDS)   # the transformer steps with a KV cache
def test_step_equals_forward(arch, params):
    model = make(arch, params)
    x = tokens()
    full = model(x)
    state = model.init_state(B)
    outs = []
    for t in range(T):
        o, state = model.step(x[:, t], state)
        outs.append(o)
    torch.testing.assert_close(torch.stack(outs, 1), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch,params", CASES, ids=IDS)
def test_deterministic_under_a_seed(arch, params):
    a, b, c = make(arch, params, seed=1), make(arch, params, seed=1), make(arch, params, seed=2)
    x = tokens()
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), c(x))


@pytest.mark.parametrize("arch", ["transformer", "rnn", "gru", "lstm"])
def test_continuous_inputs(arch):
    params = {"n_layer": 1, "d_model": 8, **({"n_head": 2} if arch == "transformer" else {})}
    model = make(arch, params, d_input=5, d_output=3)
    x = torch.randn(2, 7, 5)
    out, hiddens = model(x, return_hidden=True)
    assert out.shape == (2, 7, 3) and hiddens[0].shape == (2, 7, 8)
    state = model.init_state(2)
    o, _ = model.step(x[:, 0], state)
    torch.testing.assert_close(o, out[:, 0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_lstm_variant_builds_runs_and_steps(name):
    params = {"n_layer": 1, "d_model": 12, **VARIANTS[name]}
    model = make("lstm", params)
    x = tokens()
    full = model(x)
    assert full.shape == (B, T, V) and torch.isfinite(full).all()
    state = model.init_state(B)
    for t in range(T):
        o, state = model.step(x[:, t], state)
        torch.testing.assert_close(o, full[:, t], rtol=1e-5, atol=1e-5)
    full.sum().backward()
    assert all(p.grad is not None for p in model.parameters())   # no dead weights in any variant


def test_lstm_variants_change_the_parameters_as_in_the_paper():
    H, D_in = 12, 12
    count = {n: sum(p.numel() for p in make("lstm", {"d_model": H, **f}).cells[0].parameters())
             for n, f in VARIANTS.items()}
    gate = D_in * H + H * H + H            # W, R and bias of one gate
    assert count["V"] == 4 * gate + 3 * H  # z, i, f, o and three peepholes
    for n in ("NIG", "NFG", "NOG", "CIFG"):
        assert count[n] == 3 * gate + 2 * H, n
    assert count["NP"] == 4 * gate
    assert count["NIAF"] == count["NOAF"] == count["V"]
    assert count["FGR"] == count["V"] + 9 * H * H


def test_lstm_without_peepholes_is_torch_lstm():
    """NP with one layer is the standard LSTM; copy its weights into torch.nn.LSTM."""
    H = 8
    model = make("lstm", {"d_model": H, "peepholes": False})
    cell = model.cells[0]
    ref = torch.nn.LSTM(H, H, batch_first=True)
    Wz, Wi, Wf, Wo = cell.W.weight.chunk(4)
    bz, bi, bf, bo = cell.W.bias.chunk(4)
    Rz, Ri, Rf, Ro = cell.R.weight.chunk(4)
    with torch.no_grad():                   # torch orders the gates i, f, g, o
        ref.weight_ih_l0.copy_(torch.cat([Wi, Wf, Wz, Wo]))
        ref.weight_hh_l0.copy_(torch.cat([Ri, Rf, Rz, Ro]))
        ref.bias_ih_l0.copy_(torch.cat([bi, bf, bz, bo]))
        ref.bias_hh_l0.zero_()
    x = tokens()
    _, hiddens = model(x, return_hidden=True)
    torch.testing.assert_close(hiddens[0], ref(model.inp(x))[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch,torch_cls", [("gru", torch.nn.GRU), ("rnn", torch.nn.RNN)])
def test_cells_match_torch(arch, torch_cls):
    H = 8
    model = make(arch, {"d_model": H})
    cell = model.cells[0]
    ref = torch_cls(H, H, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(cell.W.weight)
        ref.bias_ih_l0.copy_(cell.W.bias)
        ref.weight_hh_l0.copy_(cell.R.weight)
        ref.bias_hh_l0.copy_(cell.R.bias if cell.R.bias is not None else torch.zeros(H))
    x = tokens()
    _, hiddens = model(x, return_hidden=True)
    torch.testing.assert_close(hiddens[0], ref(model.inp(x))[0], rtol=1e-5, atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(m, n):
        cq, sq = rope_cos_sin(torch.tensor([m]), 8, 10000.0)
        ck, sk = rope_cos_sin(torch.tensor([n]), 8, 10000.0)
        return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum()

    torch.testing.assert_close(score(7, 3), score(27, 23))
    assert not torch.allclose(score(7, 3), score(7, 4))


def test_rope_of_queries_and_keys_at_once_is_rope_of_each_bit_for_bit():
    """The attention rotates its (B, T, 2, H, K) queries and keys in one pass: the same products,
    so the same bits as rotating each, forward and backward."""
    cos, sin = rope_cos_sin(torch.arange(11), 16, 10000.0)
    qkv = torch.randn(3, 11, 3, 4, 16, requires_grad=True)
    g = torch.randn(3, 11, 2, 4, 16)
    joint = apply_rope(qkv[:, :, :2], cos[:, None], sin[:, None])
    (gj,) = torch.autograd.grad(joint, qkv, g)
    q, k, _ = qkv.unbind(2)
    each = torch.stack([apply_rope(q, cos, sin), apply_rope(k, cos, sin)], 2)
    (ge,) = torch.autograd.grad(each, qkv, g)
    assert torch.equal(joint, each) and torch.equal(gj, ge)


def test_alibi_slopes_and_mask():
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    assert alibi_slopes(6).shape == (6,) and alibi_slopes(6)[:4].tolist() == alibi_slopes(4).tolist()
    m = alibi_mask(alibi_slopes(2), torch.arange(3), torch.arange(3))      # (H, T, T)
    assert m[0, 2, 0] == -2 * 2 ** -4 and m[1, 1, 0] == -(2 ** -8) and m[0, 0, 1] == float("-inf")


def test_fused_lstm_equals_the_cell_loop():
    """The standard LSTM runs through torch.lstm; the same weights through the explicit cell loop
    give the same outputs and gradients."""
    torch.manual_seed(0)
    model = make("lstm", {"n_layer": 2, "d_model": 16, "peepholes": False})
    assert all(c.can_fuse for c in model.cells)
    x = tokens(t=11)
    out = model(x)
    out.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for c in model.cells:
        c.__class__ = type("Unfused", (c.__class__,), {"can_fuse": False})
    ref = model(x)
    ref.square().sum().backward()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(g, p.grad, atol=1e-5, rtol=1e-4)
    assert not make("lstm", {"d_model": 16}).cells[0].can_fuse                    # peepholes: the loop


def test_hard_alibi_windows():
    m = hard_alibi_mask(torch.tensor([1, 2, 0]), torch.arange(4), torch.arange(4))      # (H, T, T)
    seen = (m == 0).int()
    assert seen[0].tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]   # itself only
    assert seen[1].tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]   # itself and one back
    assert seen[2].tolist() == torch.ones(4, 4).tril().int().tolist()                      # NoPE: all the past
    model = make("transformer", {"n_layer": 1, "n_head": 4, "d_model": 16, "pos": "hard_alibi"})
    assert model.windows.tolist() == [1, 2, 0, 0]                                          # n_head // 2 windowed
    assert model.cfg.hard_alibi_heads == 2


def test_qk_norm_makes_scores_blind_to_the_norms_of_keys_and_queries():
    """With qk_norm a head's queries and keys are LayerNormed: scaling the projected keys (here
    through the qkv weights of the key rows) leaves the layer's output unchanged; without it, not."""
    from modules.models.transformer import CausalSelfAttention, TransformerConfig

    x = torch.randn(2, 7, 16, generator=torch.Generator().manual_seed(0))
    for qk_norm in (True, False):
        torch.manual_seed(0)
        attn = CausalSelfAttention(TransformerConfig(vocab_size=V, n_head=2, d_model=16, qk_norm=qk_norm)).eval()
        y0, _ = attn(x, {})
        with torch.no_grad():
            attn.qkv.weight[16:32] *= 5.0                                  # the key rows
            if attn.qkv.bias is not None:
                attn.qkv.bias[16:32] *= 5.0
        y1, _ = attn(x, {})
        diff = (y0 - y1).abs().max().item()
        assert diff < 1e-4 if qk_norm else diff > 1e-2, (qk_norm, diff)     # (LayerNorm's eps: ~1e-5)


def test_learned_positions_refuse_to_run_past_the_table():
    model = make("transformer", {"n_layer": 1, "n_head": 1, "d_model": 8, "max_len": 8})
    model(tokens(t=8))
    with pytest.raises(ValueError, match="max_len"):
        model(tokens(t=9))
    make("transformer", {"n_layer": 1, "n_head": 1, "d_model": 8, "pos": "rope"})(tokens(t=50))


@pytest.mark.parametrize("arch,params,key", [
    ("transformer", {"n_head": 3, "d_model": 16}, "n_head"),
    ("transformer", {"pos": "relative"}, "pos"),
    ("transformer", {"pos": "rope", "hard_alibi_heads": 2}, "hard_alibi_heads"),
    ("transformer", {"pos": "hard_alibi", "n_head": 2, "d_model": 16, "hard_alibi_heads": 3}, "hard_alibi_heads"),
    ("transformer", {"n_layers": 2}, "n_layers"),
    ("transformer", {"dropout": 1.5}, "dropout"),
    ("rnn", {"nonlinearity": "sigmoid"}, "nonlinearity"),
    ("gru", {"d_ff": 64}, "d_ff"),                                    # only prenorm has an MLP
    ("lstm", {"coupled_input_forget": True, "input_gate": False}, "coupled_input_forget"),
    ("lstm", {"peepholes": "no"}, "peepholes"),
])
def test_bad_config_names_the_key(arch, params, key):
    with pytest.raises(ConfigError) as e:
        build_model(arch, params, {"vocab_size": V})
    assert e.value.key == key


def test_inputs_must_be_declared():
    with pytest.raises(ConfigError, match="vocab_size"):
        build_model("gru", {}, {})
    with pytest.raises(ConfigError, match="d_output"):
        build_model("gru", {}, {"d_input": 3})


OVERFIT = [
    ("transformer", {"n_layer": 2, "n_head": 2, "d_model": 32, "pos": "rope"}),
    ("transformer", {"n_layer": 2, "n_head": 2, "d_model": 32, "pos": "alibi"}),
    ("transformer", {"n_layer": 2, "n_head": 2, "d_model": 32, "pos": "rope", "qk_norm": True}),
    ("rnn", {"n_layer": 1, "d_model": 48}),
    ("gru", {"n_layer": 1, "d_model": 48}),
    ("lstm", {"n_layer": 1, "d_model": 48}),
]


@pytest.mark.parametrize("arch,params", OVERFIT, ids=[f"{a}-{p.get('pos', '')}" for a, p in OVERFIT])
def test_overfits_one_small_batch(arch, params):
    torch.manual_seed(0)
    model = build_model(arch, params, {"vocab_size": 8})
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 8, (4, 17), generator=gen)
    inp, tgt = x[:, :-1], x[:, 1:]
    opt = make_optimizer(model.parameters(), "adam", 1e-2, 0.0, 0.0)
    t0 = time.perf_counter()
    losses = []
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(model(inp).flatten(0, 1), tgt.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert time.perf_counter() - t0 < 10
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])
