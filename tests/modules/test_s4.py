"""S4 (Gu, Goel & Ré 2021, arXiv 2111.00396): the NPLR form of HiPPO-LegS, the Cauchy-kernel
algorithm against the materialized matrices and against the real HiPPO-LegS SSM, the model
contract of the zoo (shapes, causality, step == forward, determinism), stability, config errors
and a tiny overfit."""
from __future__ import annotations


import pytest
import torch

from modules.config import ConfigError
from modules.models import build_model
from modules.models.dss import hippo_legs_normal_eigs
from modules.models.s4 import discretize, hippo_legs, nplr_legs, s4_kernel, s4_kernel_ref

V = 11
B, T = 3, 13
SMALL = {"n_layer": 2, "d_model": 16, "d_state": 8, "l_max": 32}
C128 = torch.complex128


def make(params=None, seed=0, **spec):
    torch.manual_seed(seed)
    return build_model("s4", {**SMALL, **(params or {})}, spec or {"vocab_size": V}).eval()


def tokens(seed=0, b=B, t=T):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


def random_dplr(H, M, seed=0):
    """Random stable DPLR parameters (Lambda, p, B, Ctilde) complex128 (H, M), Delta (H,)."""
    g = torch.Generator().manual_seed(seed)
    c = lambda: torch.complex(torch.randn(H, M, generator=g, dtype=torch.float64),          # noqa: E731
                              torch.randn(H, M, generator=g, dtype=torch.float64))
    lam = torch.complex(-torch.rand(H, M, generator=g, dtype=torch.float64) - 0.1,
                        3 * torch.randn(H, M, generator=g, dtype=torch.float64))
    dt = torch.exp(torch.empty(H, dtype=torch.float64).uniform_(-4, 0, generator=g))
    return lam, c(), c(), c(), dt


# --- HiPPO-LegS and its normal-plus-low-rank form -----------------------------------------------

@pytest.mark.parametrize("N", [2, 8, 64])
def test_nplr_of_hippo_legs(N):
    A, Bv, P = hippo_legs(N)
    assert torch.equal(torch.triu(A, 1), torch.zeros_like(A))                          # lower triangular
    torch.testing.assert_close(torch.diagonal(A), -torch.arange(1, N + 1, dtype=torch.float64))
    # A + P P^T = -I/2 + skew: normal, every eigenvalue has real part -1/2
    S = A + P[:, None] * P[None, :]
    torch.testing.assert_close(S + S.T, -torch.eye(N, dtype=torch.float64))
    eig = torch.linalg.eigvals(S)
    torch.testing.assert_close(eig.real, torch.full((N,), -0.5, dtype=torch.float64), rtol=0, atol=1e-9)
    lam, p, b, Vh = nplr_legs(N)
    assert lam.shape == (N // 2,) and (lam.imag > 0).all() and (lam.imag.diff() > 0).all()
    torch.testing.assert_close(lam, hippo_legs_normal_eigs(N // 2), rtol=1e-9, atol=1e-9)  # DSS's init
    Vf = torch.cat([Vh, Vh.conj()], 1)                                                 # (N, N)
    torch.testing.assert_close(Vf.conj().T @ Vf, torch.eye(N, dtype=C128), rtol=0, atol=1e-10)
    lam_f = torch.cat([lam, lam.conj()])
    Pc = P.to(C128)
    torch.testing.assert_close(Vf @ torch.diag(lam_f) @ Vf.conj().T - Pc[:, None] * Pc[None, :],
                               A.to(C128), rtol=0, atol=1e-9 * N)                      # A = V Lambda V* - P P^T
    torch.testing.assert_close(p, Vh.conj().T @ Pc)
    torch.testing.assert_close(b, Vh.conj().T @ Bv.to(C128))


def test_hippo_legs_by_hand():
    A, Bv, P = hippo_legs(3)
    s3, s5, s15 = 3 ** 0.5, 5 ** 0.5, 15 ** 0.5
    want = torch.tensor([[-1, 0, 0], [-s3, -2, 0], [-s5, -s15, -3]], dtype=torch.float64)
    torch.testing.assert_close(A, want)
    torch.testing.assert_close(Bv, torch.tensor([1, s3, s5], dtype=torch.float64))
    torch.testing.assert_close(P, torch.tensor([0.5, 1.5, 2.5], dtype=torch.float64).sqrt())


# --- the kernel ------------------------------------------------------------------------------

@pytest.mark.parametrize("L,Tk", [(16, 16), (17, 9), (40, 40)])
def test_cauchy_kernel_equals_materialized_powers(L, Tk):
    prm = random_dplr(3, 5, seed=L)
    K = s4_kernel(*prm, L, Tk)
    K_ref = s4_kernel_ref(*prm, L, Tk)
    assert K.shape == K_ref.shape == (3, Tk) and K.dtype == torch.float64
    torch.testing.assert_close(K, K_ref, rtol=1e-9, atol=1e-9 * K_ref.abs().max().item())


def test_cauchy_kernel_gradients_equal_the_reference():
    prm = [t.clone().requires_grad_() for t in random_dplr(2, 3, seed=5)]
    w = torch.randn(2, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    g1 = torch.autograd.grad((s4_kernel(*prm, 12) * w).sum(), prm)
    g2 = torch.autograd.grad((s4_kernel_ref(*prm, 12) * w).sum(), prm)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


def test_kernel_is_the_real_hippo_legs_ssm():
    """The whole chain against the paper's definitions: the real HiPPO-LegS (A, B), a real C,
    bilinear discretization, K_k = C Abar^k Bbar by dense powers; moved into the NPLR basis
    (Lambda, V* P, V* B, C (I - Abar^L) V) it must give the same kernel through `s4_kernel`."""
    N, L, H = 8, 24, 3
    A, Bv, _ = hippo_legs(N)
    lam, p, b, Vh = nplr_legs(N)
    Vf = torch.cat([Vh, Vh.conj()], 1)
    dt = torch.tensor([0.01, 0.1, 0.7], dtype=torch.float64)
    C = torch.randn(H, N, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    I = torch.eye(N, dtype=torch.float64)
    K_true, Ct = [], []
    for h in range(H):
        Ab = torch.linalg.solve(I - dt[h] / 2 * A, I + dt[h] / 2 * A)
        x = torch.linalg.solve(I - dt[h] / 2 * A, dt[h] * Bv)
        ks = []
        for _ in range(L):
            ks.append(C[h] @ x)
            x = Ab @ x
        K_true.append(torch.stack(ks))
        Ct.append(((C[h] @ (I - torch.linalg.matrix_power(Ab, L))).to(C128) @ Vf)[: N // 2])
    K_true, Ct = torch.stack(K_true), torch.stack(Ct)
    ex = lambda t: t.expand(H, N // 2)                                                 # noqa: E731
    torch.testing.assert_close(s4_kernel(ex(lam), ex(p), ex(b), Ct, dt, L), K_true, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(s4_kernel_ref(ex(lam), ex(p), ex(b), Ct, dt, L), K_true, rtol=1e-9, atol=1e-11)
    # and the kernel of a shorter sequence is the first taps (truncation, not a new Ctilde)
    torch.testing.assert_close(s4_kernel(ex(lam), ex(p), ex(b), Ct, dt, L, 7), K_true[:, :7], rtol=1e-9, atol=1e-11)


def test_layer_init_and_float32_kernel():
    model = make({"d_state": 16, "l_max": 64, "dt_min": 0.01, "dt_max": 0.2})
    mixer = model.blocks[0].mixer
    lam, p, b, Ct, dt = mixer.params()
    lam0, p0, b0, _ = nplr_legs(16)
    torch.testing.assert_close(lam.detach(), lam0.to(lam.dtype).expand_as(lam))
    torch.testing.assert_close(p.detach(), p0.to(p.dtype).expand_as(p))
    torch.testing.assert_close(b.detach(), b0.to(b.dtype).expand_as(b))
    assert ((dt >= 0.01 - 1e-7) & (dt <= 0.2 + 1e-7)).all() and dt.std() > 0
    with torch.no_grad():
        K = mixer.kernel(64).double()
        K_ref = s4_kernel_ref(*(t.detach() for t in mixer.params()), 64)
        torch.testing.assert_close(K, K_ref, rtol=1e-4, atol=1e-5 * K_ref.abs().max().item())
        # Ctilde was built from C by Ctilde = C (I - Abar^L): the recovered C has unit-scale entries
        Abar, _, C = discretize(*mixer.params(), 64)
        assert 0.05 < C.abs().pow(2).mean().sqrt() < 5
        assert torch.linalg.eigvals(Abar).abs().max() < 1
    with pytest.raises(ValueError, match="l_max"):
        mixer.kernel(65)


def test_stable_whatever_the_parameters():
    """Re(Lambda) < 0 and A = Lambda - p p*: A + A* < 0, so |eig(Abar)| < 1 after any update."""
    mixer = make().blocks[0].mixer
    with torch.no_grad():
        g = torch.Generator().manual_seed(3)
        for prm in (mixer.log_lambda_re, mixer.lambda_im, mixer.P, mixer.B, mixer.log_dt):
            prm.add_(3 * torch.randn(prm.shape, generator=g))
        Abar, _, _ = discretize(*mixer.params(), 32)
    assert torch.linalg.eigvals(Abar).abs().max() < 1


# --- the model contract (as the zoo tests check every arch) ------------------------------------

def test_shapes_hidden_states_and_every_weight_used():
    model = make()
    logits, hiddens = model(tokens(), return_hidden=True)
    assert logits.shape == (B, T, V) and torch.isfinite(logits).all()
    assert len(hiddens) == 2 and all(h.shape == (B, T, 16) for h in hiddens)
    logits.square().mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
            or p.grad.abs().max() == 0]
    assert not dead, dead


# causality, determinism and shapes of s4 are in test_ssm_models.py's CASES, with the other SSMs

@pytest.mark.parametrize("l_max", [13, 32, 33])
def test_step_equals_forward(l_max):
    model = make({"l_max": l_max, "dt_min": 0.01, "dt_max": 0.5})
    x = tokens()
    full = model(x)
    state, outs = model.init_state(B), []
    for t in range(T):
        o, state = model.step(x[:, t], state)
        outs.append(o)
    torch.testing.assert_close(torch.stack(outs, 1), full, rtol=1e-4, atol=1e-4)


def test_deterministic_under_a_seed():
    a, b, c = make(seed=1), make(seed=1), make(seed=2)
    x = tokens()
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), c(x))


@pytest.mark.parametrize("params,key", [
    ({"d_state": 7}, "d_state"),
    ({"d_state": 0}, "d_state"),
    ({"l_max": 1}, "l_max"),
    ({"dt_min": 0.1, "dt_max": 0.01}, "dt_max"),
    ({"dt_min": 0.0}, "dt_min"),
    ({"measure": "legt"}, "measure"),
    ({"l_max": 32.0}, "l_max"),
])
def test_bad_config_names_the_key(params, key):
    with pytest.raises(ConfigError) as e:
        build_model("s4", {"d_model": 16, **params}, {"vocab_size": V})
    assert e.value.key == key


# the one-batch overfit of s4 is in test_ssm_models.py's OVERFIT, with the other SSMs

