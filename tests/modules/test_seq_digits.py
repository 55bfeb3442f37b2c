"""Sequential and permuted digits (scikit-learn's 8x8 load_digits read pixel by pixel; the sMNIST
/ sCIFAR style benchmark of the LRU and S4 papers): a fixed seed-independent split, sequences
that are the images row by row (checked by hand against the raw pixels), one fixed permutation
shared by every job, bilinear upsampling, mean-pooled or last-position readout, seeded batches
from the training split only, config errors that name the key, and a small model that overfits
a batch."""
from __future__ import annotations

import time

import pytest
import torch

from modules.config import ConfigError
from modules.models import build_model
from modules.tasks import build_task
from modules.tasks.seq_digits import N_TRAIN_MAX, SeqDigitsTask, load_images


def task(**over) -> SeqDigitsTask:
    return build_task("seq_digits", over)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Fixed(torch.nn.Module):
    """Per-position outputs given by a function of x."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def test_images_are_sklearns_load_digits():
    from sklearn.datasets import load_digits

    images, labels = load_images()
    d = load_digits()
    assert torch.equal(images, torch.tensor(d.images, dtype=torch.float32) / 16)
    assert torch.equal(labels, torch.tensor(d.target))


def test_split_is_fixed_balanced_and_disjoint():
    images, labels = load_images()
    assert images.shape == (1797, 8, 8) and 0 <= images.min() and images.max() == 1.0
    assert labels.dtype == torch.long and labels.unique().tolist() == list(range(10))
    d = task().data()
    assert d["x_train"].shape == (1437, 64, 1) and d["x_test"].shape == (360, 64, 1)
    assert torch.equal(d["y_train"], labels[:1437]) and torch.equal(d["y_test"], labels[1437:])
    assert d["y_train"].bincount().min() >= 140 and d["y_test"].bincount().min() >= 33
    small = task(n_train=100).data()
    assert small["x_train"].shape[0] == 100 and torch.equal(small["y_test"], d["y_test"])


def test_sequence_is_the_image_row_by_row_standardized():
    images, _ = load_images()
    d = task().data()
    train = images[:N_TRAIN_MAX].flatten(1)
    mean, std = train.mean(), train.std()
    x = d["x_train"][..., 0]                                                          # (1437, 64)
    assert x.mean().item() == pytest.approx(0.0, abs=1e-5) and x.std().item() == pytest.approx(1.0, abs=1e-5)
    raw = x * std + mean
    torch.testing.assert_close(raw[5], images[5].flatten())
    # by hand: pixel (row 2, column 3) of image 5 is sequence position 2 * 8 + 3
    assert raw[5, 19].item() == pytest.approx(images[5, 2, 3].item(), abs=1e-5)
    torch.testing.assert_close(d["x_test"][0, :, 0] * std + mean, images[1437].flatten())


def test_permutation_is_fixed_and_applied_to_every_image():
    a, b = task(permute=True), task(permute=True)
    perm = a.permutation()
    assert torch.equal(perm, b.permutation())
    assert sorted(perm.tolist()) == list(range(64)) and not torch.equal(perm, torch.arange(64))
    assert not torch.equal(perm, task(permute=True, perm_seed=1).permutation())
    plain = task().data()["x_train"]
    torch.testing.assert_close(a.data()["x_train"], plain[:, perm])
    assert torch.equal(task().permutation(), torch.arange(64))


def test_upsampling_makes_longer_sequences_of_the_same_image():
    t = task(upsample=2)
    assert t.seq_len == 256
    d = t.data()
    assert d["x_train"].shape == (1437, 256, 1)
    const = torch.full((1, 8, 8), 0.3)
    torch.testing.assert_close(t.sequences(const), torch.full((1, 256), 0.3))
    # bilinear, align_corners=False: output pixel o reads input coordinate (o + 0.5) / 2 - 0.5, so
    # output (3, 4) reads input (1.25, 1.75) = weights 3/4, 1/4 on rows 1, 2 and 1/4, 3/4 on columns 1, 2
    images, _ = load_images()
    img = images[7]
    up = t.sequences(img[None]).view(16, 16)
    hand = (0.75 * 0.25 * img[1, 1] + 0.75 * 0.75 * img[1, 2] + 0.25 * 0.25 * img[2, 1] + 0.25 * 0.75 * img[2, 2])
    assert up[3, 4].item() == pytest.approx(hand.item(), abs=1e-6)
    assert up[0, 0].item() == pytest.approx(img[0, 0].item(), abs=1e-6)               # corners are clamped
    assert task(upsample=2, permute=True).permutation().shape == (256,)


def test_batches_are_seeded_and_drawn_from_the_training_split():
    t = task(n_train=50)
    a, b, c = t.batch(gen(3), 64), t.batch(gen(3), 64), t.batch(gen(4), 64)
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])
    assert not torch.equal(a["x"], c["x"])
    assert a["x"].shape == (64, 64, 1) and a["y"].dtype == torch.long
    train = t.data()["x_train"][..., 0]                                               # (50, 64)
    rows = (a["x"][..., 0][:, None] == train[None]).all(-1)                           # (64, 50)
    assert (rows.sum(1) >= 1).all()                                                   # every image is a training image


def test_pooling_and_metrics():
    t = task()
    y_test = t.data()["y_test"]

    def one_hot_at(pos):
        def fn(x):
            out = torch.zeros(x.shape[0], x.shape[1], 10)
            out[:, pos, 3] = 50.0                                                     # class 3, at one position
            return out
        return Fixed(fn)

    # mean pooling sees the vote at position 0, the last-position readout does not
    mean = t.evaluate(one_hot_at(0), gen())
    assert mean["accuracy"] == pytest.approx((y_test == 3).float().mean().item())
    assert mean["train_accuracy"] == pytest.approx((t.data()["y_train"] == 3).float().mean().item())
    last = task(pool="last").evaluate(one_hot_at(0), gen())
    assert last["loss"] == pytest.approx(torch.log(torch.tensor(10.0)).item(), abs=1e-5)   # uniform logits
    assert task(pool="last").evaluate(one_hot_at(-1), gen())["accuracy"] == mean["accuracy"]
    assert t.spec() == {"d_input": 1, "d_output": 10}
    assert SeqDigitsTask.metrics == ("accuracy", "loss", "train_accuracy")


@pytest.mark.parametrize("params,key", [
    ({"upsample": 0}, "upsample"),
    ({"n_train": 1500}, "n_train"),
    ({"n_train": 0}, "n_train"),
    ({"pool": "max"}, "pool"),
    ({"perm_seed": -1}, "perm_seed"),
    ({"permute": "yes"}, "permute"),
    ({"seq_len": 64}, "seq_len"),
])
def test_bad_config_names_the_key(params, key):
    with pytest.raises(ConfigError) as e:
        build_task("seq_digits", params)
    assert e.value.key == key


def test_a_small_lru_overfits_one_batch():
    t = task(permute=True)
    torch.manual_seed(0)
    model = build_model("lru", {"n_layer": 1, "d_model": 32, "d_state": 16, "r_min": 0.5}, t.spec())
    b = t.batch(gen(), 16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    t0 = time.perf_counter()
    losses = []
    for _ in range(200):
        loss = t.loss(model, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if losses[-1] < 0.05:
            break
    assert time.perf_counter() - t0 < 30
    assert losses[-1] < 0.05, (len(losses), losses[0], losses[-1])
    assert (t.logits(model, b["x"]).argmax(-1) == b["y"]).all()
