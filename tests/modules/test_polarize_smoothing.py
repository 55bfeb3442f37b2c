"""Polarized Mamba (Wang et al. 2025): constant state dimensions with A = 0 (never decays) and
A = -100 (forgets at once when Delta is large) beside the learned ones; and the smoothing probe,
which measures how alike the states of one sequence are, on planted states."""
from __future__ import annotations

import math

import pytest
import torch

from modules.config import ConfigError
from modules.models import build_model
from modules.models.mamba import ZERO_A
from modules.probes.kinds import run_probe, token_smoothness

V = 11


def mamba(polarize, seed=0, **kw):
    torch.manual_seed(seed)
    return build_model("mamba", {"n_layer": 2, "d_model": 16, "d_state": 4, "polarize": polarize, **kw},
                       {"vocab_size": V}).eval()


@pytest.mark.parametrize("polarize,ones,zeros", [("none", 0, 0), ("one", 1, 0), ("zero", 0, 1), ("both", 1, 1)])
def test_polarized_dims_are_constant_and_beside_the_learned_ones(polarize, ones, zeros):
    model = mamba(polarize)
    mixer = model.blocks[0].mixer
    A = mixer.A()
    assert A.shape == (32, 4 + ones + zeros) and mixer.N == 4 + ones + zeros
    assert mixer.A_log.shape == (32, 4)                       # only the learned ones are parameters
    assert (A[:, :ones] == 0).all() and (A[:, A.shape[1] - zeros:] == ZERO_A).all()
    torch.testing.assert_close(A[:, ones:ones + 4], -torch.exp(mixer.A_log))
    assert mixer.x_proj.out_features == mixer.R + 2 * mixer.N


def test_polarize_none_is_plain_mamba_bit_for_bit():
    x = torch.randint(0, V, (2, 9), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    plain = build_model("mamba", {"n_layer": 2, "d_model": 16, "d_state": 4}, {"vocab_size": V}).eval()
    assert torch.equal(plain(x), mamba("none")(x))


def test_the_one_dim_never_forgets_and_the_zero_dim_forgets_at_once():
    """One mixer step by step: with a large Delta the A = -100 dimension holds only the current input;
    the A = 0 dimension is the running sum of Delta B x, whatever Delta is."""
    mixer = mamba("both").blocks[0].mixer
    with torch.no_grad():
        mixer.dt_proj.bias.fill_(10.0)                       # Delta = softplus(10 + ...) ~ 10: e^-1000 = 0
    state = mixer.init_state(1, "cpu")
    u = torch.randn(6, 1, 16, generator=torch.Generator().manual_seed(2))
    acc = torch.zeros(32)
    for t in range(6):
        conv_before = state[0]
        _, state = mixer.step(u[t], state)
        x, _ = mixer.in_proj(u[t]).chunk(2, dim=-1)
        x, _ = mixer.conv.step(x, conv_before)
        x = torch.nn.functional.silu(x)
        dt, B, _ = mixer._split(x)
        dt = torch.nn.functional.softplus(dt + mixer.dt_proj.bias)
        inp = (dt * x)[0, :, None] * B[0]                  # (E, N): this step's input to the state
        acc = acc + inp[:, 0]
        h = state[1][0]
        torch.testing.assert_close(h[:, 0], acc, rtol=1e-5, atol=1e-6)    # A = 0: a pure accumulator
        torch.testing.assert_close(h[:, -1], inp[:, -1], rtol=1e-5, atol=1e-6)  # A = -100: this step only


@pytest.mark.parametrize("polarize", ["one", "zero", "both"])
def test_polarized_step_equals_forward_and_is_causal(polarize):
    model = mamba(polarize, init="mimetic") if polarize == "both" else mamba(polarize)
    x = torch.randint(0, V, (2, 9), generator=torch.Generator().manual_seed(3))
    full = model(x)
    state = model.init_state(2)
    outs = []
    for t in range(9):
        o, state = model.step(x[:, t], state)
        outs.append(o)
    torch.testing.assert_close(torch.stack(outs, 1), full, rtol=1e-4, atol=1e-5)
    x2 = x.clone()
    x2[:, 5:] = (x2[:, 5:] + 1) % V
    torch.testing.assert_close(model(x2)[:, :5], full[:, :5], rtol=0, atol=1e-6)


def test_polarize_refuses_an_unknown_value_naming_the_key():
    with pytest.raises(ConfigError, match="polarize"):
        mamba("half")


def test_smoothing_of_identical_tokens_is_zero_and_of_orthogonal_ones_is_known():
    same = torch.randn(1, 1, 8).expand(3, 5, 8)
    r = token_smoothness(same)
    assert r["token_distance"] == pytest.approx(0, abs=1e-9) and r["token_cos"] == pytest.approx(1)
    eye = torch.eye(6)[None].repeat(2, 1, 1) * 3.0          # 6 orthogonal states of norm 3
    r = token_smoothness(eye)
    assert r["token_distance"] == pytest.approx(3 * math.sqrt(2))
    assert r["token_spread"] == pytest.approx(math.sqrt(2)) and r["token_cos"] == pytest.approx(0, abs=1e-12)


def test_smoothing_probe_sees_planted_smoothing_grow_with_depth_and_ignores_scale():
    """Layer l mixes each state toward its sequence's mean by 1 - 2^-l and scales it by 10^l: spread
    and cosine track the mixing, not the growing norm; distance alone would rise with the norm."""
    g = torch.Generator().manual_seed(4)
    H = torch.randn(64, 16, 12, generator=g) + 0.5
    layers = []
    for l in (1, 2, 3):
        a = 2.0 ** -l
        layers.append(10.0 ** l * (a * H + (1 - a) * H.mean(1, keepdim=True)))
    pts, raw = run_probe("smoothing", layers, {"label_kinds": {}}, [1, 2, 3], None, {}, seed=0)
    spread = [p["metrics"]["token_spread"] for p in pts]
    cos = [p["metrics"]["token_cos"] for p in pts]
    dist = [p["metrics"]["token_distance"] for p in pts]
    assert spread[0] > spread[1] > spread[2] and cos[0] < cos[1] < cos[2] and dist[0] < dist[1] < dist[2]
    assert [p["at"] for p in pts] == [{"probe.layer": l} for l in (1, 2, 3)] and len(raw["per_layer"]) == 3


def test_smoothing_probe_needs_two_positions():
    with pytest.raises(ValueError, match="2 positions"):
        run_probe("smoothing", [torch.randn(4, 1, 3)], {"label_kinds": {}}, [1], None, {}, seed=0)
