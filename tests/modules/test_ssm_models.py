"""The state-space and linear-attention half of the zoo (s4d, dss, lru, mamba, mamba2,
linear_attention, gla, deltanet, ttt, hybrid), checked against the model contract (hybrids with n-gram heads too), plus the
initializations the papers prescribe (S4D-Lin/Inv, DSS's HiPPO eigenvalues, LRU's ring,
Mamba's mimetic init)."""
from __future__ import annotations

import json
import math
import time

import pytest
import torch

from modules.config import ConfigError
from modules.models import build_model
from modules.models.dss import hippo_legs_normal_eigs
from modules.models.hybrid import AttentionMixer
from modules.models.s4d import s4d_imag
from modules.optim import make_optimizer

V = 11          # vocabulary of the toy inputs
B, T = 3, 13    # odd sizes on purpose; T is not a multiple of the chunk sizes below
SMALL = {"n_layer": 2, "d_model": 16}

CASES = [
    ("s4", {"d_state": 8, "l_max": 32}),
    ("s4d", {"d_state": 8, "init": "lin"}),
    ("s4d", {"d_state": 8, "init": "inv"}),
    *[("s4d", {"d_state": 8, "reparam": r}) for r in ("softplus", "best", "direct")],
    ("dss", {"d_state": 6, "param": "exp"}),
    ("dss", {"d_state": 6, "param": "softmax", "l_max": 32}),
    ("lru", {"d_state": 12, "r_min": 0.5, "r_max": 0.99}),
    ("lru", {"d_state": 12, "r_min": 0.5, "r_max": 0.99, "train_state": "carried", "tbptt": 4}),  # eval: from zero
    ("mamba", {"d_state": 4, "d_ff": 0}),
    ("mamba", {"d_state": 4, "init": "mimetic"}),
    ("mamba", {"d_state": 4, "polarize": "both"}),
    ("mamba2", {"d_state": 8, "n_head": 2, "chunk_size": 4}),
    ("mamba2", {"d_state": 8, "n_head": 2, "chunk_size": 4, "train_state": "random", "train_state_scale": 0.5}),
    ("linear_attention", {"n_head": 2, "chunk_size": 4}),
    ("gla", {"n_head": 2, "chunk_size": 4, "decay": "data"}),
    ("gla", {"n_head": 2, "chunk_size": 4, "decay": "fixed"}),
    ("deltanet", {"n_head": 2, "chunk_size": 4}),
    ("ttt", {"n_head": 2, "inner": "linear", "mini_batch": 4}),
    ("ttt", {"n_head": 2, "inner": "mlp", "mini_batch": 4}),
    ("ttt", {"n_head": 2, "inner": "linear", "mini_batch": 1, "inner_norm": False, "eta_learnable": False,
             "prefix_mean": False, "post_norm": False}),
    ("hybrid", {"pattern": "mamba,attention", "mixers": {"mamba": {"d_state": 4}}}),
    ("hybrid", {"n_layer": 3, "pattern": ["gla", "attention", "s4d"],
                "mixers": {"attention": {"pos": "alibi", "window": 4, "n_head": 2}, "s4d": {"d_state": 4}}}),
    # hard-wired n-gram heads (their own tests: test_ngram_head.py)
    ("hybrid", {"n_layer": 3, "pattern": ["lru", "ngram2", "ngram3"], "mixers": {"lru": {"d_state": 8}}}),
    ("hybrid", {"pattern": ["ngram", "gla"], "mixers": {"ngram": {"n": 4, "direct": False}, "gla": {"n_head": 2, "chunk_size": 4}}}),
    ("hybrid", {"pattern": ["attention", "ngram2"], "mixers": {"attention": {"n_head": 2}}}),
]
IDS = [f"{a}-{'-'.join(f'{k}={v}' for k, v in p.items() if k in ('init', 'param', 'decay', 'pattern', 'inner', 'mini_batch', 'polarize', 'train_state'))}" for a, p in CASES]




def make(arch, params, seed=0, **spec):
    torch.manual_seed(seed)
    return build_model(arch, {**SMALL, **params}, spec or {"vocab_size": V}).eval()


def tokens(seed=0, b=B, t=T):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch,params", CASES, ids=IDS)
def test_shapes_hidden_states_and_every_weight_used(arch, params):
    model = make(arch, params)
    logits, hiddens = model(tokens(), return_hidden=True)
    n_layer = params.get("n_layer", SMALL["n_layer"])
    assert logits.shape == (B, T, V) and torch.isfinite(logits).all()
    assert len(hiddens) == n_layer and all(h.shape == (B, T, SMALL["d_model"]) for h in hiddens)
    logits.square().mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not dead, dead


@pytest.mark.parametrize("arch,params", CASES, ids=IDS)
def test_causal(arch, params):
    """Changing inputs from position s on never changes outputs before s (to FFT round-off)."""
    model = make(arch, params)
    x = tokens()
    base, hid = model(x, return_hidden=True)
    for s in (0, 5, T - 1):
        x2 = x.clone()
        x2[:, s:] = (x2[:, s:] + 1 + torch.arange(T - s)) % V
        out, hid2 = model(x2, return_hidden=True)
        torch.testing.assert_close(out[:, :s], base[:, :s], rtol=0, atol=1e-5)
        for a, b in zip(hid, hid2):
            torch.testing.assert_close(a[:, :s], b[:, :s], rtol=0, atol=1e-5)
        assert not torch.allclose(out[:, s:], base[:, s:], atol=1e-4)


@pytest.mark.parametrize("arch,params", CASES, ids=IDS)
def test_step_equals_forward(arch, params):
    model = make(arch, params)
    x = tokens()
    full = model(x)
    state = model.init_state(B)
    outs = []
    for t in range(T):
        o, state = model.step(x[:, t], state)
        outs.append(o)
    torch.testing.assert_close(torch.stack(outs, 1), full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch,params", CASES, ids=IDS)
def test_deterministic_under_a_seed(arch, params):
    a, b, c = make(arch, params, seed=1), make(arch, params, seed=1), make(arch, params, seed=2)
    x = tokens()
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), c(x))


def tiny(arch):
    """One small layer (two for the hybrid), with head counts that divide d_model = 8."""
    if arch == "hybrid":
        return {"n_layer": 2, "d_model": 8, "mixers": {"attention": {"n_head": 2}}}
    heads = {"n_head": 2} if arch in ("mamba2", "linear_attention", "gla", "deltanet", "ttt") else {}
    return {"n_layer": 1, "d_model": 8, **heads}


@pytest.mark.parametrize("arch", ["s4", "s4d", "dss", "lru", "mamba", "mamba2", "linear_attention", "gla", "deltanet", "ttt",
                                  "hybrid"])
def test_continuous_inputs(arch):
    model = make(arch, tiny(arch), d_input=5, d_output=3)
    x = torch.randn(2, 7, 5)
    out, hiddens = model(x, return_hidden=True)
    assert out.shape == (2, 7, 3) and hiddens[0].shape == (2, 7, 8)
    state, steps = model.init_state(2), []
    for t in range(7):
        o, state = model.step(x[:, t], state)
        steps.append(o)
    torch.testing.assert_close(torch.stack(steps, 1), out, rtol=1e-4, atol=1e-4)
    with pytest.raises(TypeError, match="float"):
        make(arch, tiny(arch))(x)                  # a token model refuses continuous inputs


# --- the initializations of the papers ------------------------------------------------------

def test_s4d_lin_and_inv_initial_eigenvalues():
    N = 8
    n = torch.arange(N // 2, dtype=torch.float64)
    torch.testing.assert_close(s4d_imag("lin", N), math.pi * n)
    torch.testing.assert_close(s4d_imag("inv", N), N / math.pi * (N / (2 * n + 1) - 1))
    for init in ("lin", "inv"):
        mixer = make("s4d", {"d_state": N, "init": init}).blocks[0].mixer
        A = mixer.A().detach()                                                             # (H, N/2)
        assert A.shape == (16, N // 2)
        torch.testing.assert_close(A.real, torch.full_like(A.real, -0.5))
        torch.testing.assert_close(A.imag, s4d_imag(init, N).float().expand_as(A.imag))
        dt = mixer.log_dt.exp()
        assert ((dt >= 0.001 - 1e-9) & (dt <= 0.1 + 1e-9)).all()


def test_s4d_reparameterizations_start_stable_and_only_direct_can_leave():
    """StableSSM's maps Re(a) = f(W): every one starts at -1/2; exp, softplus and best are negative
    for every W, direct (f(W) = W) is not."""
    import torch.nn.functional as F

    from modules.models.s4d import REPARAM

    w = torch.linspace(-10, 10, 201)
    torch.testing.assert_close(REPARAM["exp"](w), -torch.exp(w))
    torch.testing.assert_close(REPARAM["softplus"](w), -F.softplus(w))
    torch.testing.assert_close(REPARAM["best"](w), -1 / (w ** 2 + 0.1))
    for name in ("exp", "softplus", "best"):
        assert (REPARAM[name](w) < 0).all(), name
    assert (REPARAM["direct"](w) > 0).any()
    for name in REPARAM:
        mixer = make("s4d", {"d_state": 8, "reparam": name}).blocks[0].mixer
        torch.testing.assert_close(mixer.A().real.detach(), torch.full((16, 4), -0.5))
    x = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(0))
    assert torch.equal(make("s4d", {"d_state": 8, "reparam": "exp"})(x), make("s4d", {"d_state": 8})(x))  # S4D's own


def test_s4d_kernel_is_the_zoh_discretization():
    """K_k = 2 Re(C Bbar Abar^k), Bbar = int_0^dt exp(A s) ds (B = 1), integrated numerically."""
    mixer = make("s4d", {"d_state": 4, "init": "lin", "dt_min": 0.05, "dt_max": 0.5}).blocks[0].mixer
    with torch.no_grad():
        A, dt = mixer.A().to(torch.complex128), mixer.log_dt.exp().double()
        s = torch.linspace(0, 1, 2001, dtype=torch.float64)                                # s * dt, trapezoid rule
        f = torch.exp(A[..., None] * (s * dt[:, None, None]))                              # (H, M, S)
        Bbar = torch.trapezoid(f, s, dim=-1) * dt[:, None]
        C = torch.view_as_complex(mixer.C).to(torch.complex128)
        k = torch.arange(9, dtype=torch.float64)
        K = 2 * (C[..., None] * Bbar[..., None] * torch.exp(A[..., None] * dt[:, None, None] * k)).real.sum(1)
        torch.testing.assert_close(mixer.kernel(9).double(), K, rtol=1e-4, atol=1e-5)


def test_dss_eigenvalues_are_hippo_legs_normal_part():
    N = 6
    n = torch.arange(2 * N, dtype=torch.float64)
    r = torch.sqrt(2 * n + 1)
    legs = -torch.where(n[:, None] > n[None, :], r[:, None] * r[None, :], torch.diag(n + 1))    # HiPPO-LegS
    P = torch.sqrt(n + 0.5)
    eig = torch.linalg.eigvals(legs + P[:, None] * P[None, :])                            # its normal part
    eig = eig[eig.imag > 0]
    eig = eig[eig.imag.argsort()]
    torch.testing.assert_close(hippo_legs_normal_eigs(N), eig, rtol=1e-6, atol=1e-6)
    lam = make("dss", {"d_state": N}).blocks[0].mixer.Lambda().detach()
    torch.testing.assert_close(lam[0], eig.to(torch.complex64))


def test_dss_exp_is_s4d_zoh_with_b_one_and_softmax_is_normalized():
    dss = make("dss", {"d_state": 4, "param": "exp"}).blocks[0].mixer
    s4d = make("s4d", {"d_state": 8}).blocks[0].mixer
    with torch.no_grad():
        lam = dss.Lambda()
        s4d.log_a_real.copy_(torch.log(-lam.real))
        s4d.a_imag.copy_(lam.imag)
        s4d.log_dt.copy_(dss.log_dt)
        s4d.C.copy_(dss.W / 2)                                                             # S4D adds the conjugate half
        torch.testing.assert_close(dss.kernel(T), s4d.kernel(T), rtol=1e-5, atol=1e-5)
    L = 20
    soft = make("dss", {"d_state": 4, "param": "softmax", "l_max": L}).blocks[0].mixer
    with torch.no_grad():
        soft.lambda_re[:, :2] = 0.3                                                        # growing modes are allowed
        lam = soft.Lambda().to(torch.complex128)
        dt = soft.log_dt.exp().double()
        P = lam[..., None] * dt[:, None, None] * torch.arange(L, dtype=torch.float64)      # (H, N, L)
        sm = torch.exp(P) / torch.exp(P).sum(-1, keepdim=True)
        W = torch.view_as_complex(soft.W).to(torch.complex128)
        K = (W[..., None] / lam[..., None] * sm).real.sum(1)
        torch.testing.assert_close(soft.kernel(L).double(), K, rtol=1e-4, atol=1e-5)
    model = make("dss", {"d_state": 4, "param": "softmax", "l_max": L})
    with torch.no_grad():
        model.blocks[0].mixer.lambda_re[:, :2] = 0.3
    x = tokens(t=L)
    state, outs = model.init_state(B), []
    for t in range(L):
        o, state = model.step(x[:, t], state)
        outs.append(o)
    torch.testing.assert_close(torch.stack(outs, 1), model(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="l_max"):
        model(tokens(t=L + 1))


def test_lru_ring_init_and_gamma_normalization():
    r_min, r_max, max_phase = 0.4, 0.8, math.pi / 4
    mixer = make("lru", {"d_state": 256, "r_min": r_min, "r_max": r_max, "max_phase": max_phase}).blocks[0].mixer
    lam = mixer.lam().detach()
    assert (lam.abs() >= r_min - 1e-6).all() and (lam.abs() <= r_max + 1e-6).all()
    assert lam.abs().min() < r_min + 0.05 and lam.abs().max() > r_max - 0.05                # it fills the ring
    phase = lam.angle()
    assert (phase >= 0).all() and (phase <= max_phase + 1e-6).all()
    torch.testing.assert_close(mixer.gamma_log.exp(), torch.sqrt(1 - lam.abs() ** 2))
    # |lambda| = exp(-exp(nu_log)) < 1 whatever nu_log becomes (to fp32's resolution near 1)
    with torch.no_grad():
        mixer.nu_log.normal_(0.0, 5.0).clamp_(min=-8.0)
    assert (mixer.lam().abs() < 1).all()


def _x_proj_BC(mixer, x):
    R, N = mixer.R, mixer.N
    W = mixer.x_proj.weight
    return x @ W[R:R + N].t(), x @ W[R + N:].t()                                           # B, C: (T, N)


def test_mimetic_init_sets_what_the_paper_says():
    """Trockman et al. 2024: exp(Delta A) ~ 1 (A ~ 0) and W_C = W_B, so C_t . B_s is a PSD
    attention-like matrix; the default init has neither property."""
    params = {"d_state": 8, "d_model": 16}
    mim = make("mamba", {**params, "init": "mimetic"})
    dflt = make("mamba", {**params, "init": "default"})
    x = torch.randn(20, 32)                                                                # (T, E) conv outputs
    for block in mim.blocks:
        m = block.mixer
        dt = torch.nn.functional.softplus(m.dt_proj.bias)                                  # Delta at init, (E,)
        decay = torch.exp(dt[:, None] * m.A())                                             # (E, N)
        assert decay.min() > 0.999
        assert (m.A() < 0).all()                                                           # still a decay
        Bm, Cm = _x_proj_BC(m, x)
        assert torch.equal(Bm, Cm)
        scores = Cm @ Bm.t()                                                               # (T, T): C_t . B_s
        torch.testing.assert_close(scores, scores.t())
        assert torch.linalg.eigvalsh(scores.double()).min() > -1e-6
        assert (scores.diagonal() >= 0).all()
    m = dflt.blocks[0].mixer
    decay = torch.exp(torch.nn.functional.softplus(m.dt_proj.bias)[:, None] * m.A())
    assert decay.min() < 0.9                                                               # forgets within ~10 steps
    Bm, Cm = _x_proj_BC(m, x)
    assert not torch.allclose(Cm @ Bm.t(), (Cm @ Bm.t()).t())
    # the rest of the init is mamba's: same dt range, D = 1
    assert torch.equal(mim.blocks[0].mixer.D, torch.ones(32))


# --- hybrid ---------------------------------------------------------------------------------

def test_hybrid_pattern_fills_the_stack():
    model = make("hybrid", {"n_layer": 4, "pattern": "mamba, attention", "mixers": {"attention": {"n_head": 2}}})
    kinds = [type(b.mixer).__name__ for b in model.blocks]
    assert kinds == ["MambaMixer", "AttentionMixer"] * 2
    model = make("hybrid", {"n_layer": 3, "pattern": ["deltanet", "attention", "lru"], "mixers": {"deltanet": {"n_head": 2}}})
    assert [type(b.mixer).__name__ for b in model.blocks] == ["DeltaNetMixer", "AttentionMixer", "LRUMixer"]
    assert model.cfg.mixer_cfgs["deltanet"].n_head == 2


def test_sliding_window_attention_forgets_beyond_the_window():
    model = make("hybrid", {"n_layer": 1, "pattern": "attention", "mixers": {"attention": {"window": 3, "pos": "none"}}})
    assert isinstance(model.blocks[0].mixer, AttentionMixer)
    x = tokens()
    x2 = x.clone()
    x2[:, 0] = (x2[:, 0] + 1) % V
    a, b = model(x), model(x2)
    assert not torch.allclose(a[:, :3], b[:, :3])
    torch.testing.assert_close(a[:, 3:], b[:, 3:], rtol=0, atol=1e-6)


@pytest.mark.parametrize("arch,params,key", [
    ("s4d", {"init": "legs"}, "init"),
    ("s4d", {"d_state": 7}, "d_state"),
    ("s4d", {"dt_min": 0.1, "dt_max": 0.01}, "dt_max"),
    ("dss", {"param": "softplus"}, "param"),
    ("lru", {"r_min": 0.9, "r_max": 0.5}, "r_min"),
    ("lru", {"rmin": 0.9}, "rmin"),
    ("mamba", {"init": "xavier"}, "init"),
    ("mamba", {"dt_rank": 0}, "dt_rank"),
    ("mamba2", {"n_head": 3}, "n_head"),
    ("linear_attention", {"n_head": 5}, "n_head"),
    ("gla", {"decay": "learned"}, "decay"),
    ("deltanet", {"chunk_size": 0}, "chunk_size"),
    ("hybrid", {"pattern": "mamba,transformer"}, "pattern"),
    ("hybrid", {"n_layer": 3, "pattern": "mamba,attention"}, "n_layer"),
    ("hybrid", {"mixers": {"gla": {}}}, "mixers.gla"),
    ("hybrid", {"mixers": {"mamba": {"d_stat": 4}}}, "mixers.mamba.d_stat"),
    ("hybrid", {"mixers": {"mamba": {"d_model": 4}}}, "mixers.mamba.d_model"),
    ("hybrid", {"mixers": {"attention": {"n_head": 3}}}, "mixers.attention.n_head"),
    ("hybrid", {"mixers": {"attention": {"window": 0}}}, "mixers.attention.window"),
])
def test_bad_config_names_the_key(arch, params, key):
    with pytest.raises(ConfigError) as e:
        build_model(arch, {"d_model": 16, **params}, {"vocab_size": V})
    assert e.value.key == key


# --- training -------------------------------------------------------------------------------

OVERFIT = [
    ("s4", {"d_state": 16, "l_max": 16}),
    ("s4d", {"d_state": 16}),
    ("dss", {"d_state": 8}),
    ("lru", {"d_state": 32, "r_min": 0.5}),
    ("mamba", {"d_state": 8}),
    ("mamba", {"d_state": 8, "init": "mimetic"}),
    ("mamba2", {"d_state": 16, "n_head": 2, "chunk_size": 8}),
    ("linear_attention", {"n_head": 2, "chunk_size": 8}),
    ("gla", {"n_head": 2, "chunk_size": 8}),
    ("deltanet", {"n_head": 2, "chunk_size": 8}),
    ("ttt", {"n_head": 2, "inner": "linear"}),
    ("ttt", {"n_head": 2, "inner": "mlp", "mini_batch": 4}),
    ("hybrid", {"n_layer": 2, "mixers": {"attention": {"n_head": 2}, "mamba": {"d_state": 8}}}),
]


@pytest.mark.parametrize("arch,params", OVERFIT, ids=[f"{a}-{p.get('init', p.get('inner', ''))}" for a, p in OVERFIT])
def test_overfits_one_small_batch(arch, params):
    torch.manual_seed(0)
    model = build_model(arch, {"n_layer": 1, "d_model": 32, **params}, {"vocab_size": 8})
    x = torch.randint(0, 8, (4, 17), generator=torch.Generator().manual_seed(0))
    inp, tgt = x[:, :-1], x[:, 1:]
    opt = make_optimizer(model.parameters(), "adam", 1e-2, 0.0, 0.0)
    t0 = time.perf_counter()
    losses = []
    for _ in range(200):
        loss = torch.nn.functional.cross_entropy(model(inp).flatten(0, 1), tgt.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if losses[-1] < losses[0] / 10:
            break
    assert time.perf_counter() - t0 < 10
    assert losses[-1] < losses[0] / 10, (len(losses), losses[0], losses[-1])


def test_bench_archs_runs_and_writes_json(tmp_path, capsys):
    from bench import cli as bench

    out = tmp_path / "archs.json"
    rc = bench.main(["archs", "--archs", "s4d", "gla", "toy_autoencoder", "-B", "1", "-T", "8",
                     "--d-model", "8", "--steps", "1", "--out", str(out)])
    assert rc == 0
    rows = {r["arch"]: r for r in json.loads(out.read_text())["archs"]}
    assert rows["s4d"]["tokens_per_s"] > 0 and rows["gla"]["tokens_per_s"] > 0
    assert "skipped" in rows["toy_autoencoder"]
    peak = json.loads(out.read_text())["config"]["peak"]
    assert peak["flop_per_s"] > 0 and peak["threads"] == 1
    gla = rows["gla"]                                   # its projections are matmuls: counted, and held to the peak
    assert gla["matmul_flop_per_step"] > 0
    assert gla["fraction_of_peak"] == gla["matmul_flop_per_s"] / peak["flop_per_s"]
    assert "tokens/s" in capsys.readouterr().out
