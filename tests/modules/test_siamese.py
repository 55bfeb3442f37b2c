"""SimSiam on digit sequences (Chen & He 2021): the siamese_views task (seeded views of one digit,
the SimSiam loss, the collapse monitor and the frozen-feature classifiers) and the siamese wrapper
arch (any sequence backbone, projector, predictor mlp / none / fixed_random, stop-gradient), and a
run of both through the engine's train and evaluate steps."""
from __future__ import annotations

import math

import pytest
import torch

from modules.config import ConfigError, build_config
from modules.models.siamese import Siamese, SiameseConfig
from modules.tasks.siamese_views import (
    SiameseViewsTask,
    knn_accuracy,
    output_std,
    siamese_loss,
)

ARCH = "modules.models.siamese:Siamese:SiameseConfig"
TASK = "modules.tasks.siamese_views:SiameseViewsTask"
CLEAN = {"max_shift": 0, "mask_rows": 0.0, "scale": 0.0, "noise": 0.0}


def model(task=None, seed=0, **params):
    task = task or SiameseViewsTask()
    torch.manual_seed(seed)
    params = {"backbone": "gru", "backbone_params": {"d_model": 16}, "proj_dim": 16, **params}
    return Siamese(build_config(SiameseConfig, {**params, "d_input": task.spec()["d_input"]}))


@pytest.fixture
def registered(monkeypatch):
    """The task and arch in the registries, as their registry lines would put them."""
    import modules.models as M
    import modules.tasks as T

    monkeypatch.setitem(M.ARCHS, "siamese", ARCH)
    monkeypatch.setitem(T.TASKS, "siamese_views", TASK)


# ---- the task's data ------------------------------------------------------------------------------

def test_views_are_seeded_two_different_views_of_one_labelled_digit():
    t = SiameseViewsTask()
    a, b = (t.batch(torch.Generator().manual_seed(3), 32) for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in ("x1", "x2", "y"))
    assert a["x1"].shape == a["x2"].shape == (32, 8, 8) and a["y"].shape == (32,)
    assert not torch.allclose(a["x1"], a["x2"])
    c = t.batch(torch.Generator().manual_seed(4), 32)
    assert not torch.equal(a["x1"], c["x1"])
    # without augmentation both views are the clean digit that the label belongs to
    clean = SiameseViewsTask(**CLEAN)
    g = torch.Generator().manual_seed(3)
    bt = clean.batch(g, 32)
    idx = torch.randint(0, clean.n_train, (32,), generator=torch.Generator().manual_seed(3))
    d = clean.data()
    assert torch.equal(bt["x1"], bt["x2"]) and torch.equal(bt["y"], d["y_train"][idx])
    assert torch.equal(bt["x1"], clean.sequences(d["img_train"][idx]))
    # with augmentation the batch draws the same digits (its first draw), and two views of them
    assert torch.equal(a["y"], bt["y"])


def test_augmentations_and_layouts():
    img = SiameseViewsTask().data()["img_train"][:64]
    g = torch.Generator().manual_seed(0)
    masked = SiameseViewsTask(**{**CLEAN, "mask_rows": 0.5}).augment(img, g)
    row_kept = (masked == img).all(-1)
    assert (row_kept | (masked == 0).all(-1)).all() and 0.3 < (~row_kept & (img != 0).any(-1)).float().mean() < 0.7
    shifted = SiameseViewsTask(**{**CLEAN, "max_shift": 1}).augment(img, g)
    assert shifted.sum() <= img.sum() + 1e-4 and not torch.equal(shifted, img)     # zero fill drops ink
    assert torch.allclose(SiameseViewsTask(**{**CLEAN, "scale": 0.5}).augment(img, g).sum((1, 2)) / img.sum((1, 2)),
                          torch.ones(64), atol=0.5)
    px = SiameseViewsTask(layout="pixels")
    assert px.spec() == {"d_input": 1, "n_classes": 10} and px.batch(g, 4)["x1"].shape == (4, 64, 1)
    assert SiameseViewsTask(n_train=100).data()["img_test"].shape == (360, 8, 8)      # the fixed test split
    for bad in ({"mask_rows": 1.0}, {"layout": "cols"}, {"n_train": 2000}, {"max_shift": 8}, {"knn_k": 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            build_config(SiameseViewsTask, bad)


# ---- the wrapper arch --------------------------------------------------------------------------------

def test_config_errors_name_the_key():
    def build(**p):
        return build_config(SiameseConfig, {"d_input": 8, **p})

    with pytest.raises(ConfigError, match="^backbone: 'nope' is not a known"):
        build(backbone="nope")
    with pytest.raises(ConfigError, match="^backbone: 'mlp_encoder' cannot be a backbone"):
        build(backbone="mlp_encoder")
    with pytest.raises(ConfigError, match="^backbone_params.d_model: 0 must be at least 1"):
        build(backbone_params={"d_model": 0})
    with pytest.raises(ConfigError, match="^backbone_params.n_heads: unknown key"):
        build(backbone="transformer", backbone_params={"n_heads": 2})
    with pytest.raises(ConfigError, match="^backbone_params.d_input: is set by the task"):
        build(backbone_params={"d_input": 3})
    with pytest.raises(ConfigError, match="^backbone_params: "):
        build(backbone_params=[1, 2])
    with pytest.raises(ConfigError, match="^pred_hidden: applies to predictor mlp"):
        build(predictor="none", pred_hidden=4)
    with pytest.raises(ConfigError, match="^proj_hidden: applies with proj_layers of 2"):
        build(proj_layers=1, proj_hidden=8)
    with pytest.raises(ConfigError, match="^predictor: 'linear' is not allowed"):
        build(predictor="linear")
    assert build().pred_hidden == 16 and build(proj_dim=2).pred_hidden == 1


def test_build_model_fills_the_input_size_from_the_task_and_any_backbone_works(registered):
    from modules.models import build_model, model_metrics

    t = SiameseViewsTask(layout="pixels")
    x = t.eval_batch(torch.Generator(), 5)["x"]
    for backbone, bp in [("gru", {"d_model": 8}), ("transformer", {"n_layer": 1, "d_model": 8, "n_head": 2}),
                         ("lru", {"n_layer": 1, "d_model": 8, "d_state": 4}), ("lstm", {"d_model": 8})]:
        torch.manual_seed(0)
        m = build_model("siamese", {"backbone": backbone, "backbone_params": bp, "proj_dim": 12, "pool": "last"},
                        t.spec()).eval()
        assert m.cfg.d_input == 1 and m.d_feature == 8
        out, hiddens = m(x, return_hidden=True)
        assert out["feature"].shape == (5, 8) and out["z"].shape == out["p"].shape == (5, 12)
        assert torch.allclose(out["feature"], hiddens[-1][:, -1])
    assert model_metrics("siamese") == ("forward_tokens_per_s",)


def test_predictor_none_is_the_identity_and_fixed_random_is_frozen():
    t = SiameseViewsTask()
    b = t.batch(torch.Generator().manual_seed(0), 16)
    out = model(t, predictor="none")(b["x1"])
    assert out["p"] is out["z"]
    fixed = model(t, predictor="fixed_random")
    assert sum(p.numel() for p in fixed.predictor.parameters()) > 0
    assert not any(p.requires_grad for p in fixed.predictor.parameters())
    assert all(p.requires_grad for n, p in fixed.named_parameters() if not n.startswith("predictor."))
    mlp = model(t, predictor="mlp")
    assert all(p.requires_grad for p in mlp.predictor.parameters())
    # a training step moves the encoder, never the fixed predictor (from the engine's optimizer)
    from modules.optim import make_optimizer

    before = {n: p.detach().clone() for n, p in fixed.named_parameters()}
    opt = make_optimizer(fixed.parameters(), "adamw", 1e-2, 0.0, 0.0)
    t.loss(fixed, b).backward()
    opt.step()
    moved = {n for n, p in fixed.named_parameters() if not torch.equal(p, before[n])}
    assert moved and not any(n.startswith("predictor.") for n in moved)


def test_stop_gradient_blocks_the_target_branch():
    g = torch.Generator().manual_seed(0)
    p1, p2, z1, z2 = (torch.randn(8, 6, generator=g, requires_grad=True) for _ in range(4))
    sg = siamese_loss(p1, p2, z1, z2, stop_grad=True)
    grads = torch.autograd.grad(sg, (p1, p2, z1, z2), allow_unused=True)
    assert grads[0].abs().sum() > 0 and grads[1].abs().sum() > 0 and grads[2] is None and grads[3] is None
    free = torch.autograd.grad(siamese_loss(p1, p2, z1, z2, stop_grad=False), (z1, z2))
    assert all(gr.abs().sum() > 0 for gr in free)
    assert sg.item() == pytest.approx(-0.5 * (torch.cosine_similarity(p1, z2).mean() + torch.cosine_similarity(p2, z1).mean()).item())

    # through the model: the task's loss has the gradients of the detached formula exactly, and
    # without the flag those of the undetached one
    t = SiameseViewsTask()
    b = t.batch(torch.Generator().manual_seed(1), 16)

    def grads_of(m, detach):
        o1, o2 = m(b["x1"]), m(b["x2"])
        z1, z2 = (o1["z"].detach(), o2["z"].detach()) if detach else (o1["z"], o2["z"])
        loss = -0.5 * (torch.cosine_similarity(o1["p"], z2).mean() + torch.cosine_similarity(o2["p"], z1).mean())
        return torch.autograd.grad(loss, [p for p in m.parameters() if p.requires_grad], allow_unused=True)

    def task_grads(m):
        return torch.autograd.grad(t.loss(m, b), [p for p in m.parameters() if p.requires_grad], allow_unused=True)

    def same(a, c):
        return all((x is None and y is None) or (x is not None and y is not None and torch.allclose(x, y, atol=1e-7))
                   for x, y in zip(a, c))

    for flag in (True, False):
        m = model(t, stop_grad=flag)
        assert m.stop_grad is flag
        assert same(task_grads(m), grads_of(m, detach=flag)) and not same(task_grads(m), grads_of(m, detach=not flag))


# ---- the metrics ----------------------------------------------------------------------------------------

def test_output_std_is_zero_when_collapsed_and_one_over_root_d_when_isotropic():
    g = torch.Generator().manual_seed(0)
    assert output_std(torch.ones(500, 32) * torch.randn(1, 32, generator=g)) == pytest.approx(0.0, abs=1e-7)
    for d in (8, 64):
        assert output_std(torch.randn(20000, d, generator=g)) == pytest.approx(1 / math.sqrt(d), rel=0.02)
    # never above 1/sqrt(d): one-hot outputs on random axes, a scaled and shifted Gaussian
    onehot = torch.eye(16)[torch.randint(0, 16, (5000,), generator=g)]
    assert output_std(onehot) <= 1 / 4 and output_std(3 + 0.1 * torch.randn(5000, 16, generator=g)) < 0.05


def test_linear_and_knn_accuracy_of_an_oracle_and_of_a_constant_feature():
    t = SiameseViewsTask(probe_steps=50)
    d = t.data()
    oracle = t.scores(torch.eye(10)[d["y_train"]], torch.eye(10)[d["y_test"]])
    assert oracle["linear_accuracy"] > 0.99 and oracle["knn_accuracy"] == 1.0
    chance = t.chance()
    assert chance["linear_accuracy"] == pytest.approx(37 / 360) and chance["output_std"] == 0.0
    const = t.scores(torch.ones(len(d["y_train"]), 5), torch.ones(360, 5))
    assert chance["linear_accuracy"] - 0.01 <= const["linear_accuracy"] <= chance["linear_accuracy"]
    # knn with a handful of neighbours reads the oracle perfectly too
    assert knn_accuracy(torch.eye(10)[d["y_train"]], d["y_train"], torch.eye(10)[d["y_test"]], d["y_test"],
                        k=5, temperature=0.2, n_classes=10) == 1.0


# ---- the engine --------------------------------------------------------------------------------------------

def test_a_tiny_run_through_the_engine_gives_finite_metrics(tmp_path, registered):
    from workflow.evaluate import evaluate, metric_facts
    from workflow.train import train

    cfg = {"task": {"name": "siamese_views", "probe_steps": 30},
           "model": {"arch": "siamese", "backbone": "gru", "backbone_params": {"d_model": 16}, "proj_dim": 16},
           "train": {"steps": 8, "batch_size": 32, "lr": 3e-3}, "seed": 0}
    rec = train(cfg, tmp_path, log=lambda s: None)
    assert rec["status"] == "ok" and math.isfinite(rec["final_loss"])
    metrics = list(SiameseViewsTask.metrics) + ["forward_tokens_per_s"]
    pt = evaluate(cfg, {"metrics": metrics, "sweep": {}}, tmp_path / "model.pt")[0]
    assert all(v is not None and math.isfinite(v) for v in pt["metrics"].values()), pt["metrics"]
    m = pt["metrics"]
    assert -1 <= m["loss"] <= 1 and 0 < m["output_std"] <= 1 / 4 + 1e-9
    assert m["output_std_rel"] == pytest.approx(4 * m["output_std"])
    assert 0.1 < m["linear_accuracy"] <= 1 and m["pixels_linear_accuracy"] > 0.8
    assert set(pt["chance"]) == {"linear_accuracy", "knn_accuracy", "output_std", "output_std_rel"}
    facts = metric_facts(cfg)
    assert facts["output_std"]["better"] == "higher" and facts["pixels_linear_accuracy"]["trained"] is False


def test_without_stop_gradient_the_output_collapses():
    """The paper's Figure 2 in miniature: the same model and data stream, with and without sg."""
    from modules.optim import make_optimizer

    t = SiameseViewsTask(probe_steps=1)
    stds = {}
    for flag in (True, False):
        m = model(t, stop_grad=flag)
        opt = make_optimizer(m.parameters(), "adamw", 1e-2, 0.0, 0.0)
        g = torch.Generator().manual_seed(0)
        for _ in range(120):
            loss = t.loss(m, t.batch(g, 32))
            opt.zero_grad()
            loss.backward()
            opt.step()
        m.eval()
        with torch.no_grad():
            stds[flag] = output_std(m(t.sequences(t.data()["img_test"]))["z"]) * 4      # x sqrt(d = 16)
    assert stds[True] > 0.6 and stds[False] < 0.15, stds
