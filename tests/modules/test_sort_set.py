"""Sorting sets with pointers (Vinyals, Bengio & Kudlur 2016, "Order Matters", arXiv 1511.06391):
the sort_set task's targets are the sorting permutation (checked by hand and against sorted()),
the read-process-write model is invariant to the order of its input set while the Ptr-Net
baseline is not, a masked decoder never points twice, training is seeded, one batch is overfit,
and the engine trains and evaluates it."""
from __future__ import annotations

import math

import pytest
import torch

from modules.config import ConfigError
from modules.models import arch_names, build_config_for, build_model
from modules.tasks import build_task, task_names


def rpw(**kw):
    return build_model("read_process_write", {"d_model": 16, **kw}, {"d_input": 1})


def ptr(**kw):
    return build_model("ptr_net", {"d_model": 16, **kw}, {"d_input": 1})


# ---- the task --------------------------------------------------------------------------------

def test_registered_and_seeded():
    assert "sort_set" in task_names() and {"read_process_write", "ptr_net"} <= set(arch_names())
    t = build_task("sort_set", {"n": 6})
    a, b = t.batch(torch.Generator().manual_seed(3), 8), t.batch(torch.Generator().manual_seed(3), 8)
    c = t.batch(torch.Generator().manual_seed(4), 8)
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"]) and not torch.equal(a["x"], c["x"])
    assert a["x"].shape == (8, 6, 1) and a["y"].shape == (8, 6) and a["y"].dtype == torch.long
    assert 0 <= a["x"].min() and a["x"].max() < 1
    assert t.spec() == {"d_input": 1}


def test_targets_by_hand():
    t = build_task("sort_set", {"n": 4})
    x = torch.tensor([[0.7, 0.1, 0.9, 0.4]])[..., None]
    assert t.targets(x).tolist() == [[1, 3, 0, 2]]                 # 0.1, 0.4, 0.7, 0.9


def test_targets_sort_every_set():
    t = build_task("sort_set", {"n": 9})
    b = t.batch(torch.Generator().manual_seed(0), 64)
    for row, y in zip(b["x"][..., 0].tolist(), b["y"].tolist()):
        assert sorted(y) == list(range(9))                           # a permutation
        assert [row[i] for i in y] == sorted(row)                    # that sorts the set


def test_scrambled_order_is_a_fixed_non_identity_rank_order():
    t = build_task("sort_set", {"n": 5, "output_order": "scrambled", "order_seed": 2})
    sigma = t.rank_order()
    assert sorted(sigma.tolist()) == list(range(5)) and sigma.tolist() != list(range(5))
    assert torch.equal(sigma, build_task("sort_set", {"n": 5, "output_order": "scrambled", "order_seed": 2}).rank_order())
    x = torch.tensor([[0.7, 0.1, 0.9, 0.4, 0.2]])[..., None]
    by_rank = [1, 4, 3, 0, 2]                                        # indices from the least up
    assert t.targets(x).tolist() == [[by_rank[r] for r in sigma.tolist()]]


def test_bad_config_names_the_key():
    for params, key in [({"n": 1}, "n"), ({"eval_size": 0}, "eval_size"), ({"output_order": "random"}, "output_order"),
                        ({"order_seed": -1}, "order_seed"), ({"size": 5}, "size")]:
        with pytest.raises(ConfigError) as e:
            build_task("sort_set", params)
        assert e.value.key == key
    for arch, params, key in [("read_process_write", {"process_steps": -1}, "process_steps"),
                              ("read_process_write", {"d_model": 0}, "d_model"),
                              ("read_process_write", {"glimpses": -1}, "glimpses"),
                              ("ptr_net", {"process_steps": 1}, "process_steps"),
                              ("ptr_net", {"mask_pointed": 1}, "mask_pointed")]:
        with pytest.raises(ConfigError) as e:
            build_config_for(arch, params, {"d_input": 1})
        assert e.value.key == key


def test_oracle_metrics():
    """A model that points exactly at the targets scores 1; one that always points at element 0
    scores 0 exact accuracy and 1/n of the pointers."""
    t = build_task("sort_set", {"n": 5, "eval_size": 300})

    class Oracle(torch.nn.Module):
        def __init__(self, cheat: bool):
            super().__init__()
            self.cheat = cheat

        def forward(self, x, targets=None):
            B, n, _ = x.shape
            y = t.targets(x) if self.cheat else torch.zeros(B, n, dtype=torch.long)
            return 20.0 * torch.nn.functional.one_hot(y, n).float()

    good = t.evaluate(Oracle(True), torch.Generator().manual_seed(0))
    assert good["accuracy"] == good["pointer_accuracy"] == good["permutation_agreement"] == 1.0
    assert good["loss"] < 1e-6
    bad = t.evaluate(Oracle(False), torch.Generator().manual_seed(0))
    assert bad["accuracy"] == 0.0 and abs(bad["pointer_accuracy"] - 0.2) < 0.03
    assert abs(bad["permutation_agreement"] - 0.2) < 0.05   # same only when the shuffle keeps element 0 first


# ---- the models ------------------------------------------------------------------------------

def test_shapes_and_hiddens():
    x = torch.rand(3, 7, 1)
    for m in (rpw(process_steps=2), ptr(), rpw(process_steps=0, glimpses=0)):
        assert m(x).shape == (3, 7, 7)
        logits, hid = m(x, targets=torch.zeros(3, 7, dtype=torch.long), return_hidden=True)
        assert logits.shape == (3, 7, 7) and [h.shape for h in hid] == [(3, 7, 16), (3, 7, 16)]


@pytest.mark.parametrize("P", [0, 1, 4])
def test_read_process_write_is_permutation_invariant(P):
    """Permuting the set permutes every step's logits the same way (teacher-forced with the
    correspondingly renamed targets) and leaves the greedy output, as values, unchanged."""
    torch.manual_seed(0)
    m = rpw(process_steps=P).eval()
    t = build_task("sort_set", {"n": 8})
    b = t.batch(torch.Generator().manual_seed(1), 16)
    x, y = b["x"], b["y"]
    perm = torch.argsort(torch.rand(16, 8, generator=torch.Generator().manual_seed(2)), dim=1)
    x_p = x.gather(1, perm[..., None])                               # x_p[j] = x[perm[j]]
    inv = perm.argsort(1)                                            # x[i] = x_p[inv[i]]
    y_p = inv.gather(1, y)
    with torch.no_grad():
        a, bb = m(x, targets=y), m(x_p, targets=y_p)
        torch.testing.assert_close(bb, a.gather(2, perm[:, None].expand(-1, 8, -1)), atol=1e-5, rtol=1e-5)
        g, g_p = m(x).argmax(-1), m(x_p).argmax(-1)
    assert torch.equal(x.gather(1, g[..., None]), x_p.gather(1, g_p[..., None]))


def test_ptr_net_depends_on_input_order():
    torch.manual_seed(0)
    m = ptr().eval()
    x = torch.rand(4, 6, 1)
    with torch.no_grad():
        a = m(x)
        b = m(x.flip(1)).flip(2)                                     # logits renamed back to x's elements
    assert (a - b).abs().max() > 1e-3


def test_masked_decoder_never_points_twice():
    torch.manual_seed(0)
    x = torch.rand(32, 9, 1)
    for m in (rpw(mask_pointed=True, process_steps=2), ptr(mask_pointed=True)):
        with torch.no_grad():
            pred = m(x).argmax(-1)                                   # (32, 9)
        assert all(sorted(row) == list(range(9)) for row in pred.tolist())
    with torch.no_grad():                                            # unmasked, untrained: repeats occur
        pred = rpw(process_steps=2)(x).argmax(-1)
    assert any(len(set(row)) < 9 for row in pred.tolist())


def test_masking_applies_to_teacher_forced_logits():
    torch.manual_seed(0)
    m = rpw(mask_pointed=True)
    y = torch.tensor([[2, 0, 1, 3]])
    logits = m(torch.rand(1, 4, 1), targets=y)
    for t in range(4):
        assert torch.isinf(logits[0, t, y[0, :t]]).all() and torch.isfinite(logits[0, t, y[0, t:]]).all()


@pytest.mark.parametrize("kw", [{"glimpses": 0}, {}, {"mask_pointed": True, "glimpses": 2}])
def test_greedy_steps_equal_the_parallel_teacher_forced_pass(kw):
    """Decoding one step at a time and the one-call teacher-forced pass, fed the greedy choices,
    give the same logits: the two code paths compute one model."""
    torch.manual_seed(0)
    x = torch.rand(5, 7, 1)
    for m in (rpw(process_steps=3, **kw), ptr(**kw)):
        with torch.no_grad():
            greedy = m(x)
            tf = m(x, targets=greedy.argmax(-1))
        torch.testing.assert_close(tf, greedy, atol=1e-5, rtol=1e-5)


def test_process_block_feeds_the_decoder():
    """With P > 0 the decoder starts from q*_P (changing the process LSTM changes the logits);
    with P = 0 the process block has nothing to do."""
    x = torch.rand(3, 6, 1)
    for P, changes in [(3, True), (0, False)]:
        torch.manual_seed(0)
        m = rpw(process_steps=P)
        with torch.no_grad():
            before = m(x)
            for p in m.process.parameters():
                p.add_(0.5)
            after = m(x)
        assert ((before - after).abs().max() > 1e-4) == changes


def test_seeded_init_is_deterministic():
    x = torch.rand(2, 5, 1)
    outs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        outs.append(rpw(process_steps=3)(x))
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])


@pytest.mark.parametrize("arch", ["read_process_write", "ptr_net"])
def test_overfits_one_batch(arch):
    """Sorting 5 numbers: 32 fixed sets learned (nearly all exactly) in 250 steps."""
    torch.manual_seed(0)
    t = build_task("sort_set", {"n": 5})
    m = build_model(arch, {"d_model": 32, **({"process_steps": 2} if arch == "read_process_write" else {})},
                    t.spec())
    b = t.batch(torch.Generator().manual_seed(0), 32)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(250):
        loss = t.loss(m, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = m(b["x"]).argmax(-1)
    assert loss.item() < 0.15 and (pred == b["y"]).all(1).float().mean() >= 0.9   # from ln 5 = 1.61


# ---- the engine ------------------------------------------------------------------------------

def test_engine_trains_and_evaluates_it(tmp_path):
    from workflow.evaluate import evaluate
    from workflow.train import train

    cfg = {"task": {"name": "sort_set", "n": 5, "eval_size": 64},
           "model": {"arch": "read_process_write", "d_model": 16, "process_steps": 1},
           "train": {"steps": 30, "batch_size": 32, "lr": 1e-2, "optimizer": "adam", "weight_decay": 0.0,
                     "momentum": 0.0, "schedule": "constant", "warmup_steps": 0, "grad_clip": 1.0,
                     "log_every": None, "converged_rel_drop": 0.02}, "seed": 0}
    rec = train(cfg, tmp_path, log=lambda s: None)
    assert rec["status"] == "ok" and rec["history"]["loss"][-1] < rec["history"]["loss"][0]
    metrics = ["loss", "accuracy", "pointer_accuracy", "permutation_agreement"]
    points = evaluate(cfg, {"metrics": metrics, "sweep": {"task.n": [5, 8]}}, tmp_path / "model.pt")
    assert [p["at"] for p in points] == [{"task.n": 5}, {"task.n": 8}]
    for p in points:
        m = p["metrics"]
        assert math.isfinite(m["loss"]) and 0 <= m["accuracy"] <= m["pointer_accuracy"] <= 1
        assert m["permutation_agreement"] == 1.0
