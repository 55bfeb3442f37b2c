"""Training-time initial states of lru and mamba2 (`train_state`: zero, random, carried with
`tbptt`; LongSSM, Wang 2024): the default is today's forward bit for bit, evaluation always
starts from zero, carried windows pass the state on exactly and cut only the gradient, a
random state is drawn afresh with the configured scale, and bad configs name their key."""
from __future__ import annotations

import time

import pytest
import torch

from modules.config import ConfigError
from modules.models import build_model
from modules.optim import make_optimizer

V = 11
B, T, W = 3, 13, 5          # T is not a multiple of W: windows [0, 5), [5, 10), [10, 13)
ARCHS = {
    "lru": {"n_layer": 2, "d_model": 16, "d_state": 12, "r_min": 0.5, "r_max": 0.99},
    "mamba2": {"n_layer": 2, "d_model": 16, "d_state": 8, "n_head": 2, "chunk_size": 4},
}
MODES = {"zero": {}, "random": {"train_state": "random"}, "carried": {"train_state": "carried", "tbptt": W}}


def make(arch, seed=0, spec=None, **opts):
    torch.manual_seed(seed)
    return build_model(arch, {**ARCHS[arch], **opts}, spec or {"vocab_size": V})


def tokens(seed=0, t=T):
    return torch.randint(0, V, (B, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", ARCHS)
def test_default_zero_is_todays_forward_bit_for_bit(arch):
    x = tokens()
    plain, zero = make(arch), make(arch, train_state="zero")
    assert zero.cfg.train_state == "zero" and zero.cfg.tbptt is None
    for train in (True, False):
        plain.train(train)
        zero.train(train)
        a, ha = plain(x, return_hidden=True)
        b, hb = zero(x, return_hidden=True)
        assert torch.equal(a, b) and all(torch.equal(p, q) for p, q in zip(ha, hb))
    # with no state, the mixer's forward is the stateless one: no initial state enters the kernels
    mixer = plain.blocks[0].mixer
    u = torch.randn(B, T, 16)
    y, _ = mixer(u, None, return_state=True)
    torch.testing.assert_close(y, mixer(u), rtol=0, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_eval_is_the_same_for_every_mode(arch):
    models = {m: make(arch, **opts).eval() for m, opts in MODES.items()}
    ref = models["zero"].state_dict()
    for m in models.values():
        assert all(torch.equal(ref[k], v) for k, v in m.state_dict().items())         # the option draws nothing at init
    for t in (T, 3 * T):                                                              # any length, longer than tbptt too
        x = tokens(t=t)
        outs = {m: model(x) for m, model in models.items()}
        assert torch.equal(outs["zero"], outs["random"]) and torch.equal(outs["zero"], outs["carried"])


@pytest.mark.parametrize("arch", ARCHS)
def test_carried_passes_the_state_exactly_and_cuts_the_gradient(arch):
    carried = make(arch, **MODES["carried"]).train()
    x = tokens()
    full, full_h = carried.eval()(x, return_hidden=True)                             # one pass from zero
    win, win_h = carried.train()(x, return_hidden=True)                              # three windows
    torch.testing.assert_close(win, full, rtol=0, atol=1e-5)
    for a, b in zip(win_h, full_h):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)

    # continuous inputs, so the gradient reaches x: the loss of the last window sees no earlier window
    spec = {"d_input": 4, "d_output": 2}
    u = torch.randn(B, T, 4)
    for mode, reaches in (("carried", False), ("zero", True)):
        model = make(arch, spec=spec, **MODES[mode]).train()
        x = u.clone().requires_grad_(True)
        out = model(x)
        (g,) = torch.autograd.grad(out[:, 2 * W:].square().sum(), x)
        assert g[:, 2 * W:].abs().sum() > 0                                             # its own window
        assert (g[:, :2 * W].abs().sum() > 0) == reaches, mode
        if not reaches:
            assert torch.equal(g[:, :2 * W], torch.zeros_like(g[:, :2 * W]))
        with torch.no_grad():
            torch.testing.assert_close(out, model.eval()(u), rtol=0, atol=1e-5)       # same outputs either way


@pytest.mark.parametrize("arch", ARCHS)
def test_mixer_forward_from_a_state_equals_step_from_it(arch):
    mixer = make(arch).blocks[0].mixer
    u = torch.randn(B, T, 16)
    torch.manual_seed(1)
    h0 = mixer.random_state(B, "cpu", 0.7)
    if arch == "mamba2":                                                              # a non-zero conv buffer too
        h0 = (torch.randn_like(h0[0]), h0[1])
    y, last = mixer(u, h0, return_state=True)
    assert torch.equal(mixer(u, h0), y)
    state, steps = h0, []
    for t in range(T):
        o, state = mixer.step(u[:, t], state)
        steps.append(o)
    torch.testing.assert_close(y, torch.stack(steps, 1), rtol=1e-4, atol=1e-4)
    for a, b in zip(last if arch == "mamba2" else [last], state if arch == "mamba2" else [state]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    # two halves, the second from the first's final state, are the whole
    y1, s1 = mixer(u[:, :6], None, return_state=True)
    y2 = mixer(u[:, 6:], s1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), mixer(u), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_random_state_is_drawn_per_forward_with_its_scale(arch):
    x = tokens()
    model = make(arch, **MODES["random"]).train()
    torch.manual_seed(5)
    a = model(x)
    b = model(x)
    torch.manual_seed(5)
    assert not torch.allclose(a, b) and torch.equal(model(x), a)                      # fresh draws, from the global RNG
    model.eval()
    assert torch.equal(model(x), model(x))

    zero = model(x)

    def first_shift(scale):
        m = make(arch, train_state="random", train_state_scale=scale).train()
        return (m(x)[:, 0] - zero[:, 0]).abs().mean().item()
    small, large = first_shift(0.01), first_shift(10.0)
    assert large > 10 * small > 0

    # the draw: std `scale` (complex: each part scale / sqrt(2)); mamba2's conv buffer stays zero
    mixer = model.blocks[0].mixer
    s = mixer.random_state(4096, "cpu", 3.0)
    if arch == "lru":
        assert s.dtype == torch.complex64
        for part in (s.real, s.imag):
            assert abs(part.std().item() - 3.0 / 2 ** 0.5) < 0.05
    else:
        conv, h = s
        assert torch.equal(conv, torch.zeros_like(conv)) and abs(h.std().item() - 3.0) < 0.05


@pytest.mark.parametrize("arch,opts", [("lru", MODES["carried"]), ("mamba2", MODES["random"])])
def test_trains_with_a_non_zero_state(arch, opts):
    torch.manual_seed(0)
    model = build_model(arch, {**ARCHS[arch], "n_layer": 1, "d_model": 32, **opts, **(
        {"tbptt": 4} if "tbptt" in opts else {"train_state_scale": 0.1})}, {"vocab_size": 8})
    x = torch.randint(0, 8, (4, 17), generator=torch.Generator().manual_seed(0))
    inp, tgt = x[:, :-1], x[:, 1:]
    opt = make_optimizer(model.parameters(), "adam", 1e-2, 0.0, 0.0)
    t0, losses = time.perf_counter(), []
    for _ in range(200):
        loss = torch.nn.functional.cross_entropy(model(inp).flatten(0, 1), tgt.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if losses[-1] < losses[0] / 5:
            break
    assert time.perf_counter() - t0 < 10
    assert losses[-1] < losses[0] / 5, (len(losses), losses[0], losses[-1])


@pytest.mark.parametrize("arch,params,key", [
    ("lru", {"train_state": "carried"}, "tbptt"),
    ("mamba2", {"train_state": "carried", "tbptt": 0}, "tbptt"),
    ("lru", {"train_state": "previous"}, "train_state"),
    ("mamba2", {"train_state": "random", "train_state_scale": 0.0}, "train_state_scale"),
    ("mamba2", {"train_state_scale": 2.0}, "train_state_scale"),                     # random only
    ("s4d", {"train_state": "random"}, "train_state"),
    ("mamba", {"train_state": "carried", "tbptt": 4}, "train_state"),
    ("hybrid", {"train_state": "random"}, "train_state"),
    ("hybrid", {"pattern": "lru,attention", "mixers": {"lru": {"train_state": "random"}}}, "mixers.lru.train_state"),
    ("transformer", {"train_state": "random"}, "train_state"),
])
def test_bad_config_names_the_key(arch, params, key):
    base = {"d_model": 16, **({"n_head": 2} if arch == "transformer" else {})}
    with pytest.raises(ConfigError) as e:
        build_model(arch, {**base, **params}, {"vocab_size": V})
    assert e.value.key == key


def test_other_archs_accept_the_default():
    build_model("s4d", {"d_model": 16, "train_state": "zero"}, {"vocab_size": V})


@pytest.mark.parametrize("arch,params", [("s4d", {"d_state": 4}), ("mamba", {"d_state": 4}), ("lru", {"d_state": 6})])
def test_zero_with_a_window_is_training_on_windows_from_zero(arch, params):
    """tbptt with zero: each window of W tokens runs as its own sequence from a zero state (any MixerLM
    arch), so the outputs equal the model run on each window alone; evaluation reads the whole sequence."""
    torch.manual_seed(0)
    model = build_model(arch, {"n_layer": 2, "d_model": 8, "tbptt": 5, **params}, {"vocab_size": 8})
    x = torch.randint(0, 8, (2, 13), generator=torch.Generator().manual_seed(1))
    model.train()
    out = model(x)
    model.eval()
    alone = torch.cat([model(x[:, s:s + 5]) for s in range(0, 13, 5)], dim=1)
    torch.testing.assert_close(out, alone, rtol=1e-5, atol=1e-6)
    whole = model(x)
    assert not torch.allclose(whole[:, 5:], out[:, 5:], atol=1e-4)   # evaluation: one sequence from zero


def test_random_with_a_window_draws_a_state_per_window():
    torch.manual_seed(0)
    model = build_model("lru", {"n_layer": 1, "d_model": 8, "d_state": 6, "train_state": "random", "tbptt": 4,
                                "train_state_scale": 5.0}, {"vocab_size": 8}).train()
    x = torch.zeros(1, 8, dtype=torch.long)                          # the same input in both windows
    out = model(x)
    assert not torch.allclose(out[:, :4], out[:, 4:])                # different draws, different outputs
