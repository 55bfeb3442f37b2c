"""Probes: what frozen hidden states encode, each fit on a train split and scored on a
held-out one against a baseline; every result is a plain dict of floats and lists (JSON).

    linear probes per layer, ridge (R^2) or multinomial logistic   linear.py
      (accuracy), with Hewitt & Liang's control task and selectivity
    sparse probing: top-k neurons by a univariate F ranking       sparse.py
      (Gurnee et al. 2023)
    Future Lens: tokens t+1+n from the state at t, against        future_token.py
      unigram and bigram baselines (Pal et al. 2023)
    position/context decomposition of hidden states               geometry.py
      (Song & Zhong 2023)
    the kinds a catalogue names, their axes and metrics          kinds.py
"""
import importlib

# name -> submodule; imported on first use, so that reading the kind registry (kinds.py) costs no torch import
_LAZY = {"split": "linear", "ridge_probe": "linear", "logistic_probe": "linear", "control_labels": "linear",
         "probe_layers": "linear", "sparse_probe": "sparse", "decompose": "geometry", "decompose_layers": "geometry"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
