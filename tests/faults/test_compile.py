"""The run-time setting `compile`: a fit trained through torch.compile, the same weights file and
record as an eager one; a compiler that fails at the first step leaves an eager fit that says why."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch

from workflow.train import COMPILE_ENV, compile_mode_from_env, train

from .test_checkpoints import CFG, weights

quiet = dict(log=lambda s: None)


def _cfg(steps):
    cfg = {**CFG, "train": {**CFG["train"], "steps": steps, "warmup_steps": 5}}
    return cfg


def test_the_setting_reaches_the_jobs_and_a_bad_value_is_refused(monkeypatch, root):
    from workflow.launch import hooks
    from workflow.runconfig import config_problems

    monkeypatch.setenv(COMPILE_ENV, "")                 # restored at the test's end
    monkeypatch.setenv("CLAIMCHECK_GPU_JOBS_PER_DEVICE", "1")
    for value, env, mode in ((False, "", None), (True, "default", "default"),
                             ("reduce-overhead", "reduce-overhead", "reduce-overhead")):
        hooks.at_parse(SimpleNamespace(remote_exec=True),
                       {"gpu_jobs_per_device": 1, "forkserver": False, "compile": value})
        assert os.environ[COMPILE_ENV] == env
        assert compile_mode_from_env() == mode
    monkeypatch.setenv(COMPILE_ENV, "fast")
    with pytest.raises(ValueError, match="run-time setting `compile`"):
        compile_mode_from_env()
    problems = config_problems({"compile": "fast"}, root / "schemas/config.schema.yaml")
    assert any(p.startswith("config: compile: ") and "--config compile=" in p for p in problems), problems
    assert not config_problems({"compile": "false"}, root / "schemas/config.schema.yaml")   # a word, as --config gives it
    assert not config_problems({"compile": "max-autotune"}, root / "schemas/config.schema.yaml")


def test_a_compiler_that_fails_leaves_an_eager_fit_that_says_why(tmp_path, monkeypatch):
    (tmp_path / "ref").mkdir()
    ref = train(_cfg(40), tmp_path / "ref", **quiet)

    def broken(model, mode=None):
        def call(*a, **k):
            raise RuntimeError("no C++ compiler found")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    logs = []
    out = train(_cfg(40), tmp_path, compile_mode="default", log=logs.append)
    assert out["compiled"] is None and "no C++ compiler found" in out["compile_note"]
    assert any("trained eagerly" in m for m in logs)
    assert out["history"] == ref["history"]                     # the eager fit, bit for bit
    for k, v in weights(tmp_path / "ref").items():
        assert torch.equal(v, weights(tmp_path)[k]), k


def test_a_compiled_fit_saves_the_modules_own_weights_and_learns_as_eager(tmp_path):
    """Inductor on this CPU (a C++ compiler is part of the test set-up, as for the scan kernels)."""
    (tmp_path / "ref").mkdir()
    ref = train(_cfg(60), tmp_path / "ref", **quiet)
    out = train(_cfg(60), tmp_path, compile_mode="default", **quiet)
    assert out["compiled"] == "default" and "compile_note" not in out
    w, w_ref = weights(tmp_path), weights(tmp_path / "ref")
    assert set(w) == set(w_ref)                                 # no "_orig_mod." prefixes
    for k in w:
        assert torch.allclose(w[k], w_ref[k], atol=1e-4, rtol=1e-3), k
    assert out["final_loss"] == pytest.approx(ref["final_loss"], rel=1e-3)
