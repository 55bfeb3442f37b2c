"""Model evaluation axes (modules/models: MODEL_EVAL_AXES): perturb_state adds beta * n / max|n| to
the trained state-matrix weights, seeded, after loading; 0 is the model as trained; every point of
an evaluation starts from the trained weights and reads the same data."""
from __future__ import annotations

import pytest
import torch

from modules.models import apply_eval_axes, build_model, model_eval_axes

SPEC = {"d_input": 1, "d_output": 1}


def s4d(reparam="exp"):
    torch.manual_seed(0)
    return build_model("s4d", {"n_layer": 2, "d_model": 8, "d_state": 4, "reparam": reparam}, SPEC).eval()


def test_which_archs_offer_it():
    assert model_eval_axes("s4d") == ("perturb_state",)
    assert model_eval_axes("transformer") == () and model_eval_axes("lru") == ()


def test_perturbation_has_largest_entry_beta_is_seeded_and_zero_is_a_no_op():
    m = s4d()
    before = [w.detach().clone() for w in m.state_matrix_weights()]
    apply_eval_axes(m, {"perturb_state": 0.0}, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(before, m.state_matrix_weights()))
    apply_eval_axes(m, {"perturb_state": 0.05}, torch.Generator().manual_seed(1))
    deltas = [w.detach() - b for w, b in zip(m.state_matrix_weights(), before)]
    assert all(d.abs().max().item() == pytest.approx(0.05, rel=1e-5) for d in deltas)
    m2 = s4d()
    apply_eval_axes(m2, {"perturb_state": 0.05}, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(m.state_matrix_weights(), m2.state_matrix_weights()))
    others = {n: p for n, p in s4d().named_parameters() if not n.endswith("log_a_real")}
    assert all(torch.equal(p, others[n]) for n, p in m.named_parameters() if n in others)


def test_bad_axis_or_value():
    with pytest.raises(KeyError):
        apply_eval_axes(s4d(), {"dropout": 0.1}, torch.Generator())
    with pytest.raises(ValueError):
        apply_eval_axes(s4d(), {"perturb_state": -0.1}, torch.Generator())


def test_evaluate_restores_the_trained_weights_between_points(tmp_path):
    """beta 0 after beta 0.5 scores as the unperturbed model; beta 0.5 scores differently."""
    from workflow.evaluate import evaluate
    from workflow.train import train

    cfg = {"task": {"name": "linear_functional", "memory": "pol", "seq_len": 24, "eval_size": 64},
           "model": {"arch": "s4d", "n_layer": 1, "d_model": 8, "d_state": 4, "reparam": "direct"},
           "train": {"steps": 20, "batch_size": 16, "lr": 3e-3}, "seed": 0}
    train(cfg, tmp_path, log=lambda s: None)
    plain = evaluate(cfg, {"metrics": ["mse"], "sweep": {}}, tmp_path / "model.pt")[0]["metrics"]["mse"]
    pts = evaluate(cfg, {"metrics": ["mse"], "sweep": {"model.perturb_state": [0.5, 0.0, 0.5]}}, tmp_path / "model.pt")
    got = [p["metrics"]["mse"] for p in pts]
    assert got[1] == plain and got[0] == got[2] and got[0] != plain
    assert [p["at"] for p in pts] == [{"model.perturb_state": b} for b in (0.5, 0.0, 0.5)]


# ---- model metrics: recurrence_gap
def test_recurrence_gap_is_round_off_for_the_zoo_and_large_for_a_broken_step():
    from modules.models import measure_model_metric, model_metrics

    x = torch.randint(0, 11, (4, 37), generator=torch.Generator().manual_seed(0))
    for arch, params in [("mamba2", {"d_state": 8, "n_head": 2, "chunk_size": 8}), ("lru", {"d_state": 8}),
                         ("transformer", {"n_head": 2})]:
        torch.manual_seed(0)
        model = build_model(arch, {"n_layer": 2, "d_model": 16, **params}, {"vocab_size": 11}).eval()
        assert model_metrics(arch) == ("recurrence_gap", "forward_tokens_per_s")
        gap = measure_model_metric("recurrence_gap", model, x)
        assert 0 <= gap < 1e-5, (arch, gap)
    torch.manual_seed(0)
    model = build_model("mamba2", {"n_layer": 2, "d_model": 16, "d_state": 8, "n_head": 2, "chunk_size": 8},
                        {"vocab_size": 11}).eval()
    mixer = model.blocks[1].mixer
    real = mixer.step
    mixer.step = lambda u, s: (real(u, s)[0] * 1.01, real(u, s)[1])      # a recurrence 1% off the chunked form
    assert measure_model_metric("recurrence_gap", model, x) > 1e-3
    assert model_metrics("mlp_encoder") == () and model_metrics("seq2seq_rnn") == ("forward_tokens_per_s",)
    with pytest.raises(KeyError, match="not a model metric"):
        measure_model_metric("speed", model, x)


def test_evaluate_measures_recurrence_gap_beside_the_task_metrics(tmp_path):
    from workflow.evaluate import evaluate, metric_facts
    from workflow.train import train

    cfg = {"task": {"name": "mqar", "vocab_size": 16, "seq_len": 24, "num_kv_pairs": 2, "eval_size": 32},
           "model": {"arch": "mamba2", "n_layer": 1, "d_model": 16, "d_state": 8, "n_head": 2, "chunk_size": 8},
           "train": {"steps": 5, "batch_size": 8, "lr": 3e-3}, "seed": 0}
    train(cfg, tmp_path, log=lambda s: None)
    pt = evaluate(cfg, {"metrics": ["accuracy", "recurrence_gap"], "sweep": {"task.seq_len": [16, 24]}},
                  tmp_path / "model.pt")
    gaps = [p["metrics"]["recurrence_gap"] for p in pt]
    assert all(0 <= g < 1e-5 for g in gaps) and all("accuracy" in p["metrics"] for p in pt)
    assert "recurrence_gap" not in pt[0]["chance"]
    assert metric_facts(cfg)["recurrence_gap"]["trained"] is False


def test_the_evaluate_step_records_its_device_beside_a_speed(tmp_path):
    import json

    from workflow.evaluate import main
    from workflow.steps import write_json
    from workflow.train import train

    cfg = {"task": {"name": "mqar", "vocab_size": 16, "seq_len": 24, "num_kv_pairs": 2, "eval_size": 32},
           "model": {"arch": "mamba", "n_layer": 1, "d_model": 16, "d_state": 8},
           "train": {"steps": 3, "batch_size": 8, "lr": 3e-3}, "seed": 0}
    write_json(tmp_path / "train.json", {**train(cfg, tmp_path, log=lambda s: None), "config": cfg, "config_hash": "h"})
    assert main(["--dir", str(tmp_path), "--device", "cpu", "--config",
                 json.dumps({"metrics": ["accuracy", "forward_tokens_per_s"], "sweep": {}})]) == 0
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["status"] == "ok" and ev["device"] == "cpu" and ev["device_name"]
    assert ev["points"][0]["metrics"]["forward_tokens_per_s"] > 0
    assert ev["metric_facts"]["forward_tokens_per_s"]["better"] == "higher"


# ---- model metrics: forward_tokens_per_s
def test_forward_speed_counts_positions_per_second_and_tracks_the_work(monkeypatch):
    import modules.models as M

    x = torch.randint(0, 11, (4, 64), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = build_model("transformer", {"n_layer": 1, "d_model": 16, "n_head": 2}, {"vocab_size": 11}).eval()
    calls = []
    real = model.forward
    model.forward = lambda *a, **k: (calls.append(1), real(*a, **k))[1]
    ticks = iter(range(100))
    monkeypatch.setattr("time.perf_counter", lambda: 0.5 * next(ticks))   # every timed pass takes 0.5 s
    speed = M.measure_model_metric("forward_tokens_per_s", model, x)
    assert len(calls) == M.SPEED_WARMUP + M.SPEED_REPEATS
    assert speed == pytest.approx(4 * 64 / 0.5)
    monkeypatch.undo()
    # a model that does four times the work per position is measurably slower (not a constant)
    big = build_model("transformer", {"n_layer": 4, "d_model": 128, "n_head": 2}, {"vocab_size": 11}).eval()
    small = build_model("transformer", {"n_layer": 1, "d_model": 16, "n_head": 2}, {"vocab_size": 11}).eval()
    xs = torch.randint(0, 11, (8, 256), generator=torch.Generator().manual_seed(1))
    assert M.measure_model_metric("forward_tokens_per_s", small, xs) > 2 * M.measure_model_metric(
        "forward_tokens_per_s", big, xs)
    assert "forward_tokens_per_s" not in M.model_metrics("toy_autoencoder")
    facts = M.model_metric_facts()["forward_tokens_per_s"]
    assert facts["better"] == "higher" and facts["trained"] is False
