"""The tabular classification task and the MLP encoder with nested (Matryoshka) heads
(Kusupati et al. 2022, arXiv 2205.13147): data split, batches, the MRL loss by hand, heads,
config errors, a tiny overfit, and the linear probe / PCA / size-reduction metrics on stubs."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from modules.config import ConfigError
from modules.models import arch_names, build_model
from modules.tasks import build_task, task_names

MC = {"source": "make_classification", "n_samples": 400, "n_features": 10, "n_informative": 6,
      "n_classes": 4, "class_sep": 2.0, "n_clusters_per_class": 1}


@pytest.fixture(autouse=True, scope="module")
def data_cache(tmp_path_factory):
    """Generated data goes to a temporary cache, not the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CLAIMCHECK_DATA_CACHE", str(tmp_path_factory.mktemp("data_cache")))
    yield
    mp.undo()


def mc_task(**over):
    return build_task("tabular_classification", {**MC, **over})


def test_registered():
    assert "tabular_classification" in task_names() and "mlp_encoder" in arch_names()


# ----------------------------------------------------------------------------- data

def test_split_is_fixed_and_independent_of_the_job_seed():
    a, b = mc_task().data(), mc_task(dim=3, probe_steps=5).data()     # eval settings do not move the data
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    X_tr, y_tr, X_te, y_te = a
    assert X_tr.shape == (320, 10) and X_te.shape == (80, 10) and y_tr.shape == (320,) and y_te.shape == (80,)
    assert set(y_tr.tolist()) == {0, 1, 2, 3}
    # no example in both splits
    assert not (torch.cdist(X_tr, X_te) < 1e-6).any()
    # standardized by the training split
    assert torch.allclose(X_tr.mean(0), torch.zeros(10), atol=1e-5)
    assert torch.allclose(X_tr.std(0), torch.ones(10), atol=1e-2)
    c = mc_task(data_seed=1).data()
    assert not torch.equal(a[0], c[0])


def test_data_is_sklearn_make_classification_through_the_cache(monkeypatch, tmp_path):
    import numpy as np
    from sklearn.datasets import make_classification

    from modules.tasks.tabular import load_split

    X, y = make_classification(n_samples=400, n_features=10, n_informative=6, n_redundant=0, n_repeated=0,
                               n_classes=4, n_clusters_per_class=1, class_sep=2.0, flip_y=0.0, random_state=0)
    perm = np.random.RandomState(0).permutation(400)
    te, tr = perm[:80], perm[80:]
    mean, std = X[tr].mean(0), X[tr].std(0, ddof=1)
    results = []
    for cache in (str(tmp_path), str(tmp_path), ""):              # write, read back, no cache
        monkeypatch.setenv("CLAIMCHECK_DATA_CACHE", cache)
        load_split.cache_clear()
        results.append(mc_task().data())
    assert len(list((tmp_path / "tabular").glob("*.npz"))) == 1
    for X_tr, y_tr, X_te, y_te in results:
        assert torch.equal(y_tr, torch.as_tensor(y[tr])) and torch.equal(y_te, torch.as_tensor(y[te]))
        torch.testing.assert_close(X_te, torch.as_tensor((X[te] - mean) / std, dtype=torch.float32))
    for u, v in zip(results[0], results[1]):
        assert torch.equal(u, v)
    load_split.cache_clear()


def test_digits_split_sizes_and_spec():
    t = build_task("tabular_classification", {"source": "digits"})
    X_tr, y_tr, X_te, y_te = t.data()
    assert len(y_te) == round(1797 * 0.2) and len(y_tr) + len(y_te) == 1797
    assert X_tr.shape[1] == 64 and t.spec() == {"n_features": 64, "n_classes": 10}
    assert sorted(set(y_te.tolist())) == list(range(10))


def test_batches_are_seeded_rows_of_the_training_split():
    t = mc_task()
    a = t.batch(torch.Generator().manual_seed(0), 32)
    b = t.batch(torch.Generator().manual_seed(0), 32)
    c = t.batch(torch.Generator().manual_seed(1), 32)
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"]) and not torch.equal(a["x"], c["x"])
    X_tr, y_tr, _, _ = t.data()
    idx = torch.cdist(a["x"], X_tr).argmin(1)
    assert torch.equal(X_tr[idx], a["x"]) and torch.equal(y_tr[idx], a["y"])


# ---------------------------------------------------------------------------- model

def mrl(**over):
    return build_model("mlp_encoder", {"hidden": 16, "d_embed": 8, "nesting": [2, 4, 8], **over},
                       {"n_features": 10, "n_classes": 4})


def test_heads_and_shapes():
    torch.manual_seed(0)
    m = mrl()
    assert m.head_dims == (2, 4, 8)
    assert [tuple(h.weight.shape) for h in m.heads] == [(4, 2), (4, 4), (4, 8)]
    x = torch.randn(5, 10)
    z, hid = m(x, return_hidden=True)
    assert z.shape == (5, 8) and [tuple(h.shape) for h in hid] == [(5, 1, 16), (5, 1, 16), (5, 1, 8)]
    assert torch.equal(hid[-1][:, 0], z)
    # a width without a head: the next wider head on the zero-padded prefix
    want = m.heads[1](torch.cat([z[:, :3], torch.zeros(5, 1)], 1))
    torch.testing.assert_close(m.logits(z, 3), want)
    with pytest.raises(ValueError):
        m.logits(z, 9)
    e = mrl(efficient=True)
    assert len(e.heads) == 1 and tuple(e.heads[0].weight.shape) == (4, 8)
    ze = e(x)
    W, b = e.heads[0].weight, e.heads[0].bias
    torch.testing.assert_close(e.logits(ze, 2), ze[:, :2] @ W[:, :2].T + b)       # W[:, :m] z_{1:m} + b
    std = build_model("mlp_encoder", {"hidden": 16, "d_embed": 8}, {"n_features": 10, "n_classes": 4})
    assert std.head_dims == (8,) and len(std.heads) == 1
    torch.testing.assert_close(std.logits(std(x), 2), std.heads[0](F.pad(std(x)[:, :2], (0, 6))))


def test_mrl_loss_is_the_sum_of_prefix_cross_entropies_by_hand():
    """z is fixed by zeroing the encoder's last layer and setting its bias; the heads are set by
    hand, so every cross-entropy can be written out."""
    m = build_model("mlp_encoder", {"hidden": 4, "d_embed": 2, "nesting": [1, 2]}, {"n_features": 3, "n_classes": 2})
    with torch.no_grad():
        m.embed.weight.zero_()
        m.embed.bias.copy_(torch.tensor([1.0, 2.0]))                 # z = (1, 2) for every input
        m.heads[0].weight.copy_(torch.tensor([[1.0], [0.0]]))        # head m=1: logits (z1, 0) = (1, 0)
        m.heads[0].bias.zero_()
        m.heads[1].weight.copy_(torch.tensor([[0.0, 0.0], [0.0, 1.0]]))  # head m=2: logits (0, z2) = (0, 2)
        m.heads[1].bias.zero_()
    batch = {"x": torch.randn(2, 3), "y": torch.tensor([0, 1])}
    loss = build_task("tabular_classification", {"source": "digits"}).loss(m, batch)
    # CE(logits, y) = log(sum exp) - logit_y, averaged over the two examples
    ce1 = ((math.log(math.e + 1) - 1) + (math.log(math.e + 1) - 0)) / 2
    ce2 = ((math.log(1 + math.e ** 2) - 0) + (math.log(1 + math.e ** 2) - 2)) / 2
    assert loss.item() == pytest.approx(ce1 + ce2, rel=1e-6)


@pytest.mark.parametrize("params,key", [
    ({"nesting": [4, 2, 8]}, "nesting"),
    ({"nesting": [2, 4]}, "nesting"),            # must end at d_embed
    ({"nesting": [0, 8]}, "nesting"),
    ({"nesting": "2,4,8"}, "nesting"),
    ({"nesting": [2, 4.0, 8]}, "nesting"),
    ({"efficient": True}, "efficient"),           # MRL-E needs nesting
    ({"truncation": "svd"}, "truncation"),
    ({"d_embed": 0}, "d_embed"),
    ({"depth": 0}, "depth"),
    ({"widht": 3}, "widht"),
])
def test_bad_model_config_names_the_key(params, key):
    with pytest.raises(ConfigError) as e:
        build_model("mlp_encoder", {"d_embed": 8, **params}, {"n_features": 10, "n_classes": 4})
    assert e.value.key == key


@pytest.mark.parametrize("params,key", [
    ({"source": "digits", "n_classes": 10}, "n_classes"),      # make_classification only
    ({"source": "iris"}, "source"),
    ({"n_informative": 20}, "n_informative"),
    ({"n_classes": 1}, "n_classes"),
    ({"dim": 0}, "dim"),
    ({"test_fraction": 1.0}, "test_fraction"),
    ({"probe_steps": 0}, "probe_steps"),
    ({"same_accuracy": 1.5}, "same_accuracy"),
    ({"flip_y": 1.0}, "flip_y"),
    ({"seed": 3}, "seed"),
])
def test_bad_task_config_names_the_key(params, key):
    base = {} if params.get("source") in ("digits", "iris") else MC
    with pytest.raises(ConfigError) as e:
        build_task("tabular_classification", {**base, **params})
    assert e.value.key == key


def _train(model, task, steps, lr=3e-3, seed=0, batch=64):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = task.loss(model, task.batch(gen, batch))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def test_training_is_deterministic_given_the_seed():
    t = mc_task()
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        m = mrl()
        _train(m, t, 15, seed=3)
        runs.append(torch.cat([p.flatten() for p in m.parameters()]))
    assert torch.equal(runs[0], runs[1])


def test_overfits_one_batch_at_every_prefix():
    t = mc_task()
    batch = t.batch(torch.Generator().manual_seed(0), 48)
    torch.manual_seed(0)
    m = build_model("mlp_encoder", {"hidden": 64, "d_embed": 8, "nesting": [2, 4, 8]}, {"n_features": 10, "n_classes": 4})
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(300):
        loss = t.loss(m, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    z = m(batch["x"])
    for width in (4, 8):
        assert (m.logits(z, width).argmax(1) == batch["y"]).all(), width
    assert loss.item() < 0.5


def test_evaluate_real_model_gives_every_metric():
    t = mc_task(probe_steps=30)
    torch.manual_seed(0)
    m = mrl()
    _train(m, t, 150)
    m.eval()
    full = t.evaluate(m, torch.Generator().manual_seed(0))
    assert set(full) == set(t.metrics)
    assert full["accuracy"] > 0.6 and full["probe_accuracy"] > 0.6       # chance is 0.25
    assert full["size_reduction"] in (1.0, 2.0, 4.0, 8.0) and math.isfinite(full["loss"])
    two = mc_task(probe_steps=30, dim=2).evaluate(m, None)
    assert two["loss"] == pytest.approx(full["loss"]) and two["size_reduction"] == full["size_reduction"]
    wide = mc_task(probe_steps=30, dim=16).evaluate(m, None)             # no 16-d representation
    assert math.isnan(wide["accuracy"]) and math.isnan(wide["probe_accuracy"]) and math.isfinite(wide["loss"])


# ------------------------------------------------------------ probe, PCA, size reduction on stubs

class Oracle(torch.nn.Module):
    """z = [noise (n_noise), scale * onehot(y) (C)] or the one-hot first; the label is looked up
    from the task's own data. Its own head is right only from width `good_from` on."""

    def __init__(self, task, order="onehot_first", n_noise=6, scale=1.0, noise=1.0, truncation="prefix",
                 good_from=None):
        super().__init__()
        X_tr, y_tr, X_te, y_te = task.data()
        self.X, self.y = torch.cat([X_tr, X_te]), torch.cat([y_tr, y_te])
        self.C = task.spec()["n_classes"]
        self.n_noise, self.order, self.scale, self.noise = n_noise, order, scale, noise
        self.d_embed = self.C + n_noise
        self.truncation = truncation
        self.head_dims = (self.d_embed,)
        self.good_from = good_from or self.d_embed

    def forward(self, x):
        y = self.y[torch.cdist(x, self.X).argmin(1)]
        g = torch.Generator().manual_seed(len(x))
        noise = self.noise * torch.randn(len(x), self.n_noise, generator=g)
        onehot = self.scale * F.one_hot(y, self.C).float()
        return torch.cat([onehot, noise] if self.order == "onehot_first" else [noise, onehot], 1)

    def logits(self, z, m=None):
        m = self.d_embed if m is None else m
        if m >= self.good_from:
            return z[:, :self.C] if self.order == "onehot_first" else z[:, -self.C:]
        return torch.zeros(len(z), self.C)                                  # always class 0

    def nested_logits(self, z):
        return [self.logits(z)]


@pytest.fixture(scope="module")
def digits():
    return {"source": "digits", "probe_steps": 60}


def test_probe_reads_exactly_the_prefix(digits):
    t = build_task("tabular_classification", {**digits, "dim": 10})
    assert t.evaluate(Oracle(t), None)["probe_accuracy"] == 1.0           # the separable one-hot block
    hidden = t.evaluate(Oracle(t, order="noise_first", n_noise=10), None)["probe_accuracy"]
    assert hidden < 0.2                                                     # 10 noise dims: chance is 0.1
    # one label coordinate more than the noise: the probe finds it (some classes now separable)
    part = build_task("tabular_classification", {**digits, "dim": 13})
    assert part.evaluate(Oracle(part, order="noise_first", n_noise=10), None)["probe_accuracy"] > 0.3


def test_pca_truncation_finds_the_high_variance_directions(digits):
    t = build_task("tabular_classification", {**digits, "dim": 10})
    # one-hot block scaled up and placed last: the prefix misses it, the top-10 components hold it
    prefix = Oracle(t, order="noise_first", n_noise=10, scale=10.0, noise=0.1)
    pca = Oracle(t, order="noise_first", n_noise=10, scale=10.0, noise=0.1, truncation="pca")
    assert t.evaluate(prefix, None)["probe_accuracy"] < 0.2
    assert t.evaluate(pca, None)["probe_accuracy"] > 0.95


def test_size_reduction_by_hand(digits):
    t = build_task("tabular_classification", digits)
    # d_embed = 10 + 54 = 64; widths 1, 2, 4, ..., 64; the head is right from width 8 on
    r = t.evaluate(Oracle(t, n_noise=54, good_from=8), None)
    assert r["accuracy"] == 1.0 and r["size_reduction"] == 64 / 8
    r = t.evaluate(Oracle(t, n_noise=54, good_from=9), None)
    assert r["size_reduction"] == 64 / 16
    # same_accuracy lower than chance/full accuracy: the narrowest width already counts
    low = build_task("tabular_classification", {**digits, "same_accuracy": 0.05})
    assert low.evaluate(Oracle(low, n_noise=54, good_from=9), None)["size_reduction"] == 64.0
