"""`train.precision: bf16`: the engine trains under bf16 autocast on CUDA (fp32 elsewhere, and the
job records which it used). CPU autocast runs the same mixed-dtype graphs here, so every sequence
model is checked under it: the linear layers hand bf16 tensors to the kernels, which must cast
what they compute in fp32 (the scans, the selective scan's C kernel, the chunked attentions) and
give a loss close to fp32's and finite gradients for every weight."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from modules.models import build_model

V, B, T, D = 13, 4, 24, 32
ARCHS = ["transformer", "rnn", "gru", "lstm", "s4", "s4d", "dss", "lru", "mamba", "mamba2", "linear_attention",
         "gla", "deltanet", "hybrid", "ttt"]


@pytest.mark.parametrize("arch", ARCHS)
def test_model_under_bf16_autocast_stays_close_to_fp32(arch):
    torch.manual_seed(0)
    model = build_model(arch, {"n_layer": 2, "d_model": D}, {"vocab_size": V})
    g = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, V, (B, T), generator=g), torch.randint(0, V, (B, T), generator=g)
    ref = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    loss = F.cross_entropy(out.float().flatten(0, 1), y.flatten())
    assert torch.isfinite(loss)
    assert abs(loss.item() - ref.item()) <= 0.03 * abs(ref.item()), (arch, loss.item(), ref.item())
    loss.backward()
    for name, p in model.named_parameters():
        if p.requires_grad and p.grad is not None:
            assert torch.isfinite(p.grad).all(), (arch, name)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_bf16_on_a_cpu_trains_in_fp32_and_records_it(tmp_path):
    """The engine's own switch: bf16 asked on a CPU says so in the log, trains in fp32 and records
    precision_used fp32 (the numbers equal an fp32 run's, bit for bit)."""
    from workflow.train import train

    cfg = {"task": {"name": "superposition", "n_features": 20, "sparsity": 0.9},
           "model": {"arch": "toy_autoencoder", "hidden": 5}, "seed": 0,
           "train": {"steps": 20, "batch_size": 64, "lr": 1e-3}}
    logs = []
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    rec = train({**cfg, "train": {**cfg["train"], "precision": "bf16"}}, tmp_path / "a", "cpu", log=logs.append)
    ref = train(cfg, tmp_path / "b", "cpu", log=lambda s: None)
    assert rec["precision_used"] == "fp32" and any("bf16 applies on CUDA only" in m for m in logs)
    assert json.dumps(rec["history"]) == json.dumps(ref["history"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_on_cuda_trains_under_autocast(tmp_path):
    from workflow.train import train

    cfg = {"task": {"name": "copy", "n_symbols": 8, "min_len": 1, "max_len": 8},
           "model": {"arch": "mamba", "n_layer": 1, "d_model": 32}, "seed": 0,
           "train": {"steps": 20, "batch_size": 16, "lr": 1e-3, "precision": "bf16"}}
    rec = train(cfg, tmp_path, "cuda", log=lambda s: None)
    assert rec["precision_used"] == "bf16" and rec["status"] == "ok"
