"""Classification of offline feature vectors, evaluated at every embedding width m: the
classification setting of Kusupati et al. 2022, "Matryoshka Representation Learning"
(NeurIPS 2022, arXiv 2205.13147), Figure 2 (ImageNet-1K linear classification), on data that ships with
scikit-learn instead of ImageNet-1K.

Data (the same for every job: `data_seed` fixes both the generation and the split, never the
job's seed):
    source: digits               sklearn.datasets.load_digits, 1,797 8x8 images, 64 features, 10 classes
    source: make_classification  sklearn.datasets.make_classification(n_samples, n_features,
                                 n_informative, n_redundant=0, n_classes, n_clusters_per_class,
                                 class_sep, flip_y, random_state=data_seed)
The generated arrays are cached on disk (~/.cache/claimcheck/tabular; CLAIMCHECK_DATA_CACHE sets
the folder, empty turns it off), since importing sklearn costs more than a smoke job's training.
A permutation drawn by numpy's RandomState(data_seed) puts round(test_fraction * N) examples
in the test split; features are standardized by the training split's mean and std.
Training batches are drawn with replacement from the training split by the job's generator.

The model is an encoder with heads (modules/models/mlp_encoder.py: forward(x) -> z, head_dims,
logits(z, m), truncation). The training loss is the MRL loss, the sum of the cross-entropies of
every head the model has (a single term for a standard model).

Metrics at the eval axis `dim` = m (None: the model's full width d_embed), on the test split:
    accuracy        the model's own classifier on its m-dim representation: logits(z, m) for a
                    "prefix" model (MRL's nested head; naive truncation of a standard model's head
                    with the other coordinates zeroed); for a "pca" model its full head applied to
                    the rank-m PCA reconstruction of z
    probe_accuracy  a fresh multinomial logistic regression (L-BFGS, `probe_steps` iterations,
                    L2 `probe_l2`, standardized features; modules/probes/linear.py) fitted on the
                    training split's m-dim representations: z_{1:m}, or the top-m principal
                    components of the training embeddings for a "pca" model (the paper's SVD
                    baseline; Rand. FS/naive truncation for a standard model's prefix). The same
                    procedure for every model, so truncations are compared on equal terms, as the
                    paper's linear-probe baselines are.
    loss            the training loss (sum over heads) on the test split, independent of m
    size_reduction  d_embed / m*, m* the smallest width among the powers of two below d_embed
                    and d_embed itself whose `accuracy` reaches same_accuracy x the full-width
                    `accuracy` (the paper's "x smaller embedding at the same accuracy", with
                    "same" read as within 1 - same_accuracy); independent of m
m > d_embed has no m-dim representation: accuracy and probe_accuracy are NaN there (an FF-2
model has no 64-d prefix), which the engine records as missing.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from ..config import require
from ..metrics import FRACTION, LOSS, Metric
from .base import Task

# make_classification's settings when not given (n_informative defaults to n_features)
_MC_DEFAULTS = {"n_samples": 20_000, "n_features": 64, "n_classes": 40, "n_clusters_per_class": 2,
                "class_sep": 1.0, "flip_y": 0.0}


def _raw_data(source: str, mc: dict, data_seed: int):
    """(X float64 (N, D), y int64 (N,)) from scikit-learn, through an on-disk cache: importing
    sklearn costs more than a smoke job's training, so the arrays are generated once per machine
    and read back with numpy (np.save/np.load round-trip them exactly). The cache key holds every
    generator setting and the sklearn and numpy versions; CLAIMCHECK_DATA_CACHE= (empty) turns it off."""
    import hashlib
    import json
    import os
    from importlib.metadata import version
    from pathlib import Path

    import numpy as np

    root = os.environ.get("CLAIMCHECK_DATA_CACHE",
                          os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "claimcheck"))
    key = json.dumps({"source": source, **mc, "data_seed": data_seed, "sklearn": version("scikit-learn"),
                      "numpy": np.__version__}, sort_keys=True)
    path = Path(root) / "tabular" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz" if root else None
    if path is not None and path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                if str(f["key"]) == key:
                    return f["X"], f["y"]
        except (OSError, ValueError, KeyError):
            pass                                                    # unreadable: regenerate
    if source == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
    else:
        from sklearn.datasets import make_classification

        X, y = make_classification(**mc, n_redundant=0, n_repeated=0, random_state=data_seed)
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, X=X, y=y, key=np.array(key))
            os.replace(tmp, path)                                   # atomic: concurrent jobs are safe
        except OSError:
            pass                                                    # a read-only home: no cache
    return X, y


@functools.lru_cache(maxsize=4)
def load_split(source: str, n_samples: int, n_features: int, n_informative: int, n_classes: int,
               n_clusters_per_class: int, class_sep: float, flip_y: float, data_seed: int,
               test_fraction: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(X_train, y_train, X_test, y_test), float32 features standardized by the train split."""
    import numpy as np

    mc = {} if source == "digits" else {
        "n_samples": n_samples, "n_features": n_features, "n_informative": n_informative, "n_classes": n_classes,
        "n_clusters_per_class": n_clusters_per_class, "class_sep": class_sep, "flip_y": flip_y}
    X, y = _raw_data(source, mc, data_seed)
    n = len(y)
    perm = np.random.RandomState(data_seed).permutation(n)
    n_te = min(max(1, round(n * test_fraction)), n - 1)
    te, tr = perm[:n_te], perm[n_te:]
    X = torch.as_tensor(X, dtype=torch.float64)
    mean, std = X[tr].mean(0), X[tr].std(0)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))      # constant pixels of digits
    X = ((X - mean) / std).float()
    y = torch.as_tensor(y, dtype=torch.long)
    return X[tr], y[tr], X[te], y[te]


def pca_basis(z_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (D,), V (D, D)): principal directions of the training embeddings, by variance."""
    mean = z_train.mean(0)
    _, _, Vh = torch.linalg.svd((z_train - mean).double(), full_matrices=False)   # Vh (D, D)
    return mean, Vh.T.float()


@dataclass
class TabularClassificationTask(Task):
    source: Literal["digits", "make_classification"] = "make_classification"
    n_samples: int | None = None         # make_classification only (default 20,000)
    n_features: int | None = None        # make_classification only (default 64)
    n_informative: int | None = None     # make_classification only (default n_features)
    n_classes: int | None = None         # make_classification only (default 40)
    n_clusters_per_class: int | None = None   # make_classification only (default 2)
    class_sep: float | None = None       # make_classification only (default 1.0)
    flip_y: float | None = None          # make_classification only: share of labels redrawn (default 0)
    data_seed: int = 0                   # generation and split; the same data for every job
    test_fraction: float = 0.2
    dim: int | None = None               # eval axis: the representation width m (None: d_embed)
    probe_steps: int = 100               # L-BFGS iterations of the probe
    probe_l2: float = 1e-4               # L2 penalty of the probe (standardized features)
    same_accuracy: float = 0.98          # size_reduction: the share of full-width accuracy kept

    metrics: ClassVar[tuple[str, ...]] = ("accuracy", "probe_accuracy", "loss", "size_reduction")
    metric_facts: ClassVar = {"accuracy": FRACTION, "probe_accuracy": FRACTION, "loss": LOSS,
                              "size_reduction": Metric("higher", 1.0, None)}
    eval_axes: ClassVar[tuple[str, ...]] = ("dim",)

    def chance(self) -> dict[str, float]:
        """The commonest class of the test split, for the model's own and the probe's accuracy."""
        y_te = self.data()[3]
        top = float(torch.bincount(y_te).max()) / len(y_te)
        return {"accuracy": top, "probe_accuracy": top}

    def __post_init__(self):
        require(self.source in ("digits", "make_classification"), "source",
                f"{self.source!r} is not allowed; allowed: digits, make_classification")
        mc_only = ("n_samples", "n_features", "n_informative", "n_classes", "n_clusters_per_class",
                   "class_sep", "flip_y")
        if self.source == "digits":
            for key in mc_only:
                require(getattr(self, key) is None, key, "applies to source make_classification only "
                        "(digits has 1,797 samples, 64 features, 10 classes)")
        else:
            for key in mc_only:
                if getattr(self, key) is None:
                    setattr(self, key, _MC_DEFAULTS.get(key, self.n_features))
            require(self.n_features >= 1, "n_features", f"{self.n_features} must be at least 1")
            require(self.n_classes >= 2, "n_classes", f"{self.n_classes} must be at least 2")
            require(1 <= self.n_informative <= self.n_features, "n_informative",
                    f"{self.n_informative} must be in 1 .. n_features ({self.n_features})")
            require(self.n_clusters_per_class >= 1, "n_clusters_per_class", f"{self.n_clusters_per_class} must be at least 1")
            require(self.n_classes * self.n_clusters_per_class <= 2 ** self.n_informative, "n_classes",
                    f"n_classes x n_clusters_per_class ({self.n_classes * self.n_clusters_per_class}) must be "
                    f"at most 2**n_informative")
            require(self.n_samples >= 2 * self.n_classes, "n_samples",
                    f"{self.n_samples} must be at least 2 x n_classes ({2 * self.n_classes})")
            require(self.class_sep > 0, "class_sep", f"{self.class_sep} must be positive")
            require(0.0 <= self.flip_y < 1.0, "flip_y", f"{self.flip_y} must be in [0, 1)")
        require(0.0 < self.test_fraction < 1.0, "test_fraction", f"{self.test_fraction} must be in (0, 1)")
        require(self.dim is None or self.dim >= 1, "dim", f"{self.dim} must be at least 1")
        require(self.probe_steps >= 1, "probe_steps", f"{self.probe_steps} must be at least 1")
        require(self.probe_l2 >= 0.0, "probe_l2", f"{self.probe_l2} must be non-negative")
        require(0.0 < self.same_accuracy <= 1.0, "same_accuracy", f"{self.same_accuracy} must be in (0, 1]")

    # ------------------------------------------------------------------ data
    def spec(self) -> dict:
        if self.source == "digits":
            return {"n_features": 64, "n_classes": 10}
        return {"n_features": self.n_features, "n_classes": self.n_classes}

    def data(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(X_train, y_train, X_test, y_test); loaded once per process and data setting."""
        return load_split(self.source, self.n_samples or 0, self.n_features or 0, self.n_informative or 0,
                          self.n_classes or 0, self.n_clusters_per_class or 0, self.class_sep or 0.0,
                          self.flip_y or 0.0,
                          self.data_seed, self.test_fraction)

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        X, y, _, _ = self.data()
        idx = torch.randint(0, len(y), (batch_size,), generator=gen)
        return {"x": X[idx], "y": y[idx]}

    def loss(self, model, batch) -> torch.Tensor:
        z = model(batch["x"])                                          # (B, d_embed)
        return sum(F.cross_entropy(lg, batch["y"]) for lg in model.nested_logits(z))

    # ------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        from ..probes.linear import logistic_probe

        X_tr, y_tr, X_te, y_te = self.data()
        z_tr, z_te = model(X_tr.to(device)).float().cpu(), model(X_te.to(device)).float().cpu()
        d = model.d_embed
        m = d if self.dim is None else self.dim
        pca = pca_basis(z_tr) if model.truncation == "pca" else None

        def own_accuracy(width: int) -> float:
            if pca is None:
                logits = model.logits(z_te.to(device), width)
            else:
                mean, V = pca
                rec = mean + (z_te - mean) @ V[:, :width] @ V[:, :width].T  # rank-width reconstruction
                logits = model.logits(rec.to(device), d)
            return float((logits.argmax(1).cpu() == y_te).float().mean())

        loss = float(self.loss(model, {"x": X_te.to(device), "y": y_te.to(device)}))
        full = own_accuracy(d)
        widths = sorted({2 ** k for k in range(int(math.log2(d)) + 1) if 2 ** k < d} | {d})
        m_star = next(w for w in widths if w == d or own_accuracy(w) >= self.same_accuracy * full)
        out = {"loss": loss, "size_reduction": d / m_star, "accuracy": math.nan, "probe_accuracy": math.nan}
        if m > d:
            return out
        if pca is None:
            f_tr, f_te = z_tr[:, :m], z_te[:, :m]
        else:
            mean, V = pca
            f_tr, f_te = (z_tr - mean) @ V[:, :m], (z_te - mean) @ V[:, :m]
        with torch.enable_grad():                                      # L-BFGS sets .grad by hand
            probe = logistic_probe(f_tr, y_tr, f_te, y_te, n_classes=self.spec()["n_classes"],
                                   l2=self.probe_l2, max_iter=self.probe_steps)
        out["accuracy"] = full if m == d else own_accuracy(m)
        out["probe_accuracy"] = probe["accuracy"]
        return out
