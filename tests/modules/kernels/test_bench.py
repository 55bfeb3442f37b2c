"""`python -m bench kernels` at toy sizes: it runs every op and writes its JSON."""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

from bench import cli as bench

ROOT = Path(__file__).resolve().parents[3]


def test_bench_kernels_writes_every_op(tmp_path, capsys):
    out = tmp_path / "kernels.json"
    rc = bench.main(["kernels", "--out", str(out), "-B", "1", "-T", "12", "-D", "8", "-H", "2", "-K", "4", "-N", "3",
                     "--repeats", "1", "--ref-repeats", "1"])
    assert rc == 0
    result = json.loads(out.read_text())
    ops = {r["op"] for r in result["ops"]}
    assert {"scan", "selective_scan", "linear_attn_chunked", "delta_rule_chunked", "fftconv", "ssd_chunked",
            "causal_conv1d", "linear_recurrence"} <= ops
    for r in result["ops"]:
        for mode in ("fwd", "fwd_bwd"):
            assert r[mode]["ref_ms"] > 0 and r[mode]["fast_ms"] > 0 and r[mode]["ratio"] > 0
    assert result["config"]["T"] == 12
    assert "ratio" in capsys.readouterr().out


def test_bench_imports_only_torch_kernels_and_the_standard_library():
    tree = ast.parse((ROOT / "bench" / "kernels.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top in ("torch", "modules", "__future__"), name
            if top == "modules":   # the kernels, and the stdlib-only process settings
                assert (name == "modules" and all(a.name == "kernels" for a in node.names)) or name == "modules.runtime", name


def test_the_flop_counter_counts_a_depthwise_convolutions_backward_as_two_forwards():
    """torch's own formula counts the weight gradient of a grouped convolution as an ungrouped one
    (C times too much for a depthwise one); the bench's counter counts each gradient as one forward,
    and a dense convolution as torch does."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bench.kernels import flop_counter

    def count(counter, conv, x):
        with counter:
            conv(x).sum().backward()
        return counter.get_total_flops()

    torch.manual_seed(0)
    depthwise, x = torch.nn.Conv1d(64, 64, 4, groups=64, padding=3), torch.randn(8, 64, 20, requires_grad=True)
    forward = 2 * 8 * 23 * 64 * 4                                     # B, output length, channels, taps
    assert count(flop_counter(), depthwise, x) == 3 * forward          # forward, input and weight gradients
    assert count(FlopCounterMode(display=False), depthwise, x) > 10 * forward   # torch's formula, for contrast
    dense, x = torch.nn.Conv1d(16, 32, 3), torch.randn(4, 16, 50, requires_grad=True)
    assert count(flop_counter(), dense, x) == count(FlopCounterMode(display=False), dense, x)
