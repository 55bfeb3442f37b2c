"""Sequential and permuted-sequential digits: the pixel-by-pixel image classification benchmark of
Le, Jaitly & Hinton 2015, "A Simple Way to Initialize Recurrent Networks of Rectified Linear
Units" (arXiv 1504.00941; sequential and permuted MNIST), as used for long-range models such as
S4 (Gu et al. 2022, arXiv 2111.00396, sCIFAR) and the LRU (Orvieto et al. 2023, "Resurrecting
Recurrent Neural Networks for Long Sequences", arXiv 2303.06349, sCIFAR in Table 1 / Figure 1),
here on the 8x8 handwritten digits that ship with scikit-learn (`sklearn.datasets.load_digits`,
1,797 images of 10 classes; the test half of UCI optdigits), so that nothing is downloaded.

    image (8, 8), pixels 0..16  ->  optional bilinear upsampling by `upsample` = k to (8k, 8k)
                                ->  read row by row: a sequence of T = 64 k^2 scalars, x: (B, T, 1)
                                ->  optional fixed permutation of the T positions (`permute`)

Pixels are divided by 16 and then standardized with the training split's mean and standard
deviation (one scalar each). The permutation is drawn once from `torch.Generator().manual_seed(
perm_seed)` and is the same for every job and seed: permuted digits is one fixed task, as pMNIST
is. Upsampling (F.interpolate, bilinear, align_corners=False) makes the sequences longer without
new information: k = 2 gives T = 256, k = 4 gives T = 1024.

Split (seed-independent): the first `n_train` images (default 1437, 80%) train, the last 360
(indices 1437..1796) are the test set; both are balanced over the ten classes (141-146 and 33-37
per class). A training batch draws `batch_size` training images uniformly with replacement from
the job's generator (so the batch stream depends on the generator alone, and a resumed run sees
the same batches); `evaluate` scores the whole test split (its generator is unused).

Readout (`pool`): `mean` (default) averages the model's per-position outputs (B, T, 10) over time
and scores the mean as logits, the mean pooling of the LRU and S4 classifiers (for a zoo model
whose head is linear this is the head applied to the time-mean of its final-norm features; the
papers pool before their decoder and, being bidirectional or not, pool the same way); `last`
scores the output at the last position, the classic recurrent-network readout.
spec(): d_input = 1, d_output = 10.

Metrics: `accuracy` and `loss` (mean cross-entropy, nats) on the test split, and `train_accuracy`
on the whole training split (to tell under-fitting from over-fitting on so small a data set).
Chance is 0.1. No evaluation axes: the data set is fixed.
Deviation from the papers: 8x8 digits instead of 28x28 MNIST or 32x32x3 CIFAR (T = 64..1024
instead of 784 or 1024), and no data augmentation.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from ..config import require
from ..metrics import FRACTION, LOSS
from .base import Task

N_IMAGES = 1797                    # load_digits
N_TRAIN_MAX = 1437                 # images before the fixed test split
N_CLASSES = 10
EVAL_CHUNK = 512                   # images per forward pass at evaluation


@lru_cache(maxsize=1)
def load_images() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 images as float32 (N, 8, 8) in [0, 1], and their int64 labels (N,).

    Read straight from the file `load_digits` reads (sklearn/datasets/data/digits.csv.gz: 64
    pixels and the label per row), found without importing scikit-learn, whose import costs
    seconds per job; the test checks that both give the same arrays."""
    import importlib.util

    import numpy as np

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("seq_digits reads the digits that ship with scikit-learn: pip install scikit-learn")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",")                                            # (1797, 65)
    images = torch.tensor(data[:, :-1], dtype=torch.float32).view(-1, 8, 8) / 16.0
    return images, torch.tensor(data[:, -1].astype(np.int64))


@dataclass
class SeqDigitsTask(Task):
    permute: bool = False          # fixed permutation of the pixel order
    perm_seed: int = 0             # the permutation's seed (the same for every job)
    upsample: int = 1              # k: images resized to (8k, 8k), T = 64 k^2
    pool: Literal["mean", "last"] = "mean"
    n_train: int = N_TRAIN_MAX     # training images: the first n_train (the test split is fixed)

    metrics: ClassVar[tuple[str, ...]] = ("accuracy", "loss", "train_accuracy")
    metric_facts: ClassVar = {"accuracy": FRACTION, "loss": LOSS, "train_accuracy": FRACTION}
    eval_axes: ClassVar[tuple[str, ...]] = ()

    def chance(self) -> dict[str, float]:
        """The commonest class of the test split (and of the training images), and the loss of
        predicting the class frequencies; the images themselves are ignored."""
        d = self.data()
        out = {}
        for split, key in (("y_test", "accuracy"), ("y_train", "train_accuracy")):
            p = torch.bincount(d[split]).float() / len(d[split])
            out[key] = float(p.max())
            if key == "accuracy":
                out["loss"] = float(-(p[d[split]]).log().mean())
        return out

    def __post_init__(self):
        require(1 <= self.upsample <= 8, "upsample", f"{self.upsample} must be between 1 and 8 (T = 64 k^2)")
        require(1 <= self.n_train <= N_TRAIN_MAX, "n_train",
                f"{self.n_train} must be between 1 and {N_TRAIN_MAX} (the last {N_IMAGES - N_TRAIN_MAX} images are the test set)")
        require(self.perm_seed >= 0, "perm_seed", f"{self.perm_seed} must not be negative")
        self._data: dict[str, torch.Tensor] | None = None

    @property
    def seq_len(self) -> int:
        return 64 * self.upsample ** 2

    def spec(self) -> dict:
        return {"d_input": 1, "d_output": N_CLASSES}

    def permutation(self) -> torch.Tensor:
        """The fixed order in which positions are read (identity unless `permute`), (T,)."""
        if not self.permute:
            return torch.arange(self.seq_len)
        return torch.randperm(self.seq_len, generator=torch.Generator().manual_seed(self.perm_seed))

    def sequences(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, 8, 8) in [0, 1] -> unnormalized pixel sequences (N, T), upsampled and permuted."""
        if self.upsample > 1:
            s = 8 * self.upsample
            images = F.interpolate(images[:, None], size=(s, s), mode="bilinear", align_corners=False)[:, 0]
        return images.flatten(1)[:, self.permutation()]                                # (N, T)

    def data(self) -> dict[str, torch.Tensor]:
        """The two splits, built once: x_train (n_train, T, 1), y_train, x_test (360, T, 1), y_test."""
        if self._data is None:
            images, labels = load_images()
            seq = self.sequences(images)                                               # (N, T)
            train = seq[:self.n_train]
            mean, std = train.mean(), train.std()
            seq = ((seq - mean) / std)[..., None]                                      # (N, T, 1)
            self._data = {"x_train": seq[:self.n_train], "y_train": labels[:self.n_train],
                          "x_test": seq[N_TRAIN_MAX:], "y_test": labels[N_TRAIN_MAX:]}
        return self._data

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        d = self.data()
        idx = torch.randint(0, self.n_train, (batch_size,), generator=gen)            # with replacement
        return {"x": d["x_train"][idx], "y": d["y_train"][idx]}

    def logits(self, model, x: torch.Tensor) -> torch.Tensor:
        out = model(x)                                                                 # (B, T, 10)
        return out.mean(1) if self.pool == "mean" else out[:, -1]                      # (B, 10)

    def loss(self, model, batch) -> torch.Tensor:
        return F.cross_entropy(self.logits(model, batch["x"]).float(), batch["y"])

    @torch.no_grad()
    def _score(self, model, x: torch.Tensor, y: torch.Tensor, device: str) -> tuple[float, float]:
        nll = right = 0.0
        for s in range(0, x.shape[0], EVAL_CHUNK):
            xb, yb = x[s:s + EVAL_CHUNK].to(device), y[s:s + EVAL_CHUNK].to(device)
            logits = self.logits(model, xb).float()                                    # (b, 10)
            nll += F.cross_entropy(logits, yb, reduction="sum").item()
            right += (logits.argmax(-1) == yb).sum().item()
        return nll / x.shape[0], right / x.shape[0]

    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        d = self.data()
        loss, acc = self._score(model, d["x_test"], d["y_test"], device)
        _, train_acc = self._score(model, d["x_train"], d["y_train"], device)
        return {"accuracy": acc, "loss": loss, "train_accuracy": train_acc}
