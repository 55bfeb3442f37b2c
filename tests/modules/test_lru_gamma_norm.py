"""The LRU's `gamma_norm` switch (Orvieto et al. 2023, arXiv 2303.06349, Section 3.4): on (the default) it is `lru`
exactly; without it gamma is a fixed 1 (no parameter), the rest of the draw is the same, the
recurrent step still equals the parallel form, and the state's variance grows by
1 / (1 - |lambda|^2), the blow-up the normalization exists to remove."""
from __future__ import annotations

import pytest
import torch

from modules.config import ConfigError
from modules.kernels import scan
from modules.models import build_model

SPEC = {"d_input": 2, "d_output": 1}
P = {"n_layer": 2, "d_model": 16, "d_state": 12, "r_min": 0.9, "r_max": 0.999, "max_phase": 0.314}


def make(arch, seed=0, **over):
    torch.manual_seed(seed)
    return build_model(arch, {**P, **over}, SPEC).eval()


def x(b=3, t=13):
    return torch.randn(b, t, 2, generator=torch.Generator().manual_seed(1))


def test_with_gamma_it_is_lru():
    a, b = make("lru"), make("lru", gamma_norm=True)
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert torch.equal(a(x()), b(x()))


def test_without_gamma_gamma_is_one_and_not_trained():
    a, b = make("lru"), make("lru", gamma_norm=False)
    ma, mb = a.blocks[0].mixer, b.blocks[0].mixer
    assert "gamma_log" not in dict(mb.named_parameters())
    assert torch.equal(mb.gamma_log, torch.zeros(12))
    for name in ("nu_log", "theta_log", "B", "C", "D"):                             # the same draw
        assert torch.equal(getattr(ma, name), getattr(mb, name))
    assert not torch.allclose(a(x()), b(x()))
    n_a = sum(p.numel() for p in a.parameters())
    assert sum(p.numel() for p in b.parameters()) == n_a - 2 * 12                   # gamma_log per layer


def test_step_equals_forward_without_gamma():
    model = make("lru", gamma_norm=False)
    inp = x()
    state = model.init_state(inp.shape[0])
    outs = []
    for t in range(inp.shape[1]):
        o, state = model.step(inp[:, t], state)
        outs.append(o)
    torch.testing.assert_close(torch.stack(outs, 1), model(inp), rtol=1e-4, atol=1e-4)


def test_state_variance_grows_by_one_over_one_minus_r_squared_without_gamma():
    over = {"n_layer": 1, "d_state": 8, "r_min": 0.9, "r_max": 0.95}
    with_g = make("lru", gamma_norm=True, **over).blocks[0].mixer
    no_g = make("lru", gamma_norm=False, **over).blocks[0].mixer
    u = torch.randn(512, 300, 16, generator=torch.Generator().manual_seed(2))       # white noise
    with torch.no_grad():
        var = []
        for m in (with_g, no_g):
            b = m._input(u)
            xs, _ = scan(m.lam().expand_as(b), b)                                     # (B, T, N)
            var.append(xs[:, -1].abs().pow(2).mean(0))                                # (N,)
        r2 = with_g.lam().abs() ** 2
    torch.testing.assert_close(var[1] / var[0], 1 / (1 - r2), rtol=1e-4, atol=0)    # same inputs: exact ratio
    inp_var = with_g._input(u).abs().pow(2).mean((0, 1)) / (1 - r2)                 # gamma^2 = 1 - r^2 ...
    torch.testing.assert_close(var[0], inp_var * (1 - r2 ** 300), rtol=0.15, atol=0)  # ... keeps the input's scale


def test_bad_config_names_the_key():
    with pytest.raises(ConfigError) as e:
        build_model("lru", {**P, "gamma_norm": "no"}, SPEC)
    assert e.value.key == "gamma_norm"
