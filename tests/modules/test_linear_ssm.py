"""The single-layer linear SSM of Wang & Li (linear_ssm): the residual recurrence of the authors'
code, its stable reparameterizations of lambda, step == forward, causality, a fit of a linear
functional, and the perturbation that makes the direct parameterization unstable."""
from __future__ import annotations

import math

import pytest
import torch

from modules.config import ConfigError
from modules.models import apply_eval_axes, build_model, model_eval_axes, model_metrics
from modules.models.linear_ssm import lambda_of, w_of

SPEC = {"d_input": 1, "d_output": 1}
REPARAMS = ["direct", "exp", "softplus", "best"]


def ssm(reparam="exp", m=8, seed=0, **kw):
    torch.manual_seed(seed)
    return build_model("linear_ssm", {"d_state": m, "reparam": reparam, **kw}, SPEC).eval()


@pytest.mark.parametrize("reparam", REPARAMS)
def test_reparameterizations_invert_and_start_from_the_same_lambdas(reparam):
    lam = torch.tensor([0.01, 0.3, 0.99])
    torch.testing.assert_close(lambda_of(w_of(lam, reparam), reparam), lam)
    a, b = ssm(reparam), ssm("direct")
    torch.testing.assert_close(a.lam(), b.lam())                      # same draw of lambda, whatever f
    assert model_eval_axes("linear_ssm") == ("perturb_state",) and model_metrics("linear_ssm") == ("recurrence_gap", "forward_tokens_per_s")


@pytest.mark.parametrize("reparam", REPARAMS)
def test_recurrence_by_hand_step_equals_forward_and_causal(reparam):
    model = ssm(reparam, m=5)
    x = torch.randn(3, 11, 1, generator=torch.Generator().manual_seed(1))
    y, (H,) = model(x, return_hidden=True)
    h = torch.zeros(3, 5)
    A = torch.eye(5) - model.cfg.dt * model.P.t() @ torch.diag(model.lam()) @ model.P
    for t in range(11):
        h = h @ A.t() + model.cfg.dt * model.U(x[:, t])
        torch.testing.assert_close(H[:, t], h, rtol=1e-5, atol=1e-6)
    state, outs = model.init_state(3), []
    for t in range(11):
        o, state = model.step(x[:, t], state)
        outs.append(o)
    torch.testing.assert_close(torch.stack(outs, 1), y, rtol=1e-5, atol=1e-6)
    x2 = x.clone()
    x2[:, 6:] += 1.0
    torch.testing.assert_close(model(x2)[:, :6], y[:, :6], rtol=0, atol=0)


def test_fits_an_exponential_memory_and_is_seeded():
    """A few hundred Adam steps fit y_t = sum_s e^-s x_{t-s} (the linear functional task) far below the
    zero predictor; the same seed gives the same model."""
    from modules.tasks import build_task

    task = build_task("linear_functional", {"memory": "exp", "seq_len": 30, "eval_size": 256})
    torch.manual_seed(0)
    model = build_model("linear_ssm", {"d_state": 8, "reparam": "exp"}, task.spec())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        loss = task.loss(model, task.batch(gen, 32))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert task.evaluate(model.eval(), torch.Generator().manual_seed(1))["rel_mse"] < 0.05
    assert torch.equal(ssm(seed=3).P, ssm(seed=3).P) and not torch.equal(ssm(seed=3).P, ssm(seed=4).P)


def test_a_perturbation_destabilizes_direct_lambdas_near_zero_but_not_exp():
    """lambda_i = 0.01 (a long memory): beta = 0.05 on w can make lambda_i negative under the direct
    parameterization, so |1 - lambda| > 1 and the output grows over 200 steps; under exp it only
    scales lambda by e^+-0.05."""
    x = torch.randn(4, 200, 1, generator=torch.Generator().manual_seed(2))
    for reparam, explodes in (("direct", True), ("exp", False)):
        model = ssm(reparam, m=16)
        with torch.no_grad():
            model.w.copy_(w_of(torch.full((16,), 0.01), reparam))
        calm = model(x).abs().max().item()
        apply_eval_axes(model, {"perturb_state": 0.05}, torch.Generator().manual_seed(5))
        after = model(x).abs().max().item()
        assert (after > 10 * calm) == explodes, (reparam, calm, after)


@pytest.mark.parametrize("params,key", [({"d_state": 0}, "d_state"), ({"dt": 0.0}, "dt"),
                                        ({"reparam": "tanh"}, "reparam"), ({"lambda_max": 0}, "lambda_max"),
                                        ({"reparam": "best", "lambda_max": 20}, "lambda_max")])
def test_bad_config_names_the_key(params, key):
    with pytest.raises(ConfigError) as e:
        build_model("linear_ssm", params, SPEC)
    assert e.value.key == key


def test_token_inputs_are_embedded():
    torch.manual_seed(0)
    model = build_model("linear_ssm", {"d_state": 4}, {"vocab_size": 7}).eval()
    assert model(torch.randint(0, 7, (2, 5))).shape == (2, 5, 7) and math.isfinite(model.w.sum().item())
