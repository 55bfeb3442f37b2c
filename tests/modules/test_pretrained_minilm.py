"""The pretrained MiniLM loads from its pip package with the hub offline and no network, gives six
block outputs of width 384, and passes through the engine's train (not trained), evaluate (no task
metrics) and probe steps."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modules.config import ConfigError
from modules.models import build_model
from modules.tasks import build_task

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def minilm():
    torch.set_num_threads(1)
    task = build_task("wordpiece_text", {"seq_len": 16, "eval_size": 8})
    return task, build_model("pretrained_minilm", {}, task.spec())


def test_loads_offline_without_network(tmp_path):
    """A fresh process with the hub offline and every proxy pointing nowhere still loads it."""
    code = ("import torch; from modules.models import build_model; "
            "m = build_model('pretrained_minilm', {}, {'vocab_size': 30522}); "
            "out, hs = m(torch.tensor([[101, 7592, 2088, 102]]), return_hidden=True); "
            "print(len(hs), tuple(hs[0].shape), sum(p.numel() for p in m.parameters()))")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf"), "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "NO_PROXY": ""}
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    layers, shape, n = p.stdout.split(" ", 2)[0], p.stdout.split("(")[1].split(")")[0], p.stdout.split()[-1]
    assert layers == "6" and shape == "1, 4, 384" and 22_000_000 < int(n) < 23_000_000


def test_hidden_states_and_tokens(minilm):
    task, model = minilm
    b = task.eval_batch(torch.Generator().manual_seed(0), 3)
    assert b["x"].shape == (3, 16) and (b["x"][:, 0] == 101).all()                 # [CLS] first
    assert torch.equal(b["x"][:, 1:], b["y"][:, :-1])
    out, hs = model(b["x"], return_hidden=True)
    assert len(hs) == 6 and all(h.shape == (3, 16, 384) for h in hs)
    assert not any(p.requires_grad for p in model.parameters())
    model.train()
    assert not model.bert.training                                                 # frozen: dropout stays off
    again = model(b["x"])
    torch.testing.assert_close(out, again)
    d = task.probe_data(torch.Generator().manual_seed(1), 100)
    assert d["x"].shape[1] == 16 and d["x"].shape[0] * 16 >= 100 and set(d["labels"]) == {"position", "target", "in_quote"}


def test_in_quote_labels_mark_quoted_spans_of_the_same_windows(minilm):
    from modules.tasks.sequence import IGNORE, SequenceTask
    from modules.tasks.wordpiece_text import labelled_streams, quoted

    assert quoted('a "b c" d') == [False, False, False, True, True, True, True, False, False]
    task, _ = minilm
    d = task.probe_data(torch.Generator().manual_seed(4), 2000)
    plain = SequenceTask.probe_data(task, torch.Generator().manual_seed(4), 2000)
    assert torch.equal(d["x"], plain["x"])                         # the windows other probes read, unchanged
    q = d["labels"]["in_quote"]
    assert (q[:, 0] == IGNORE).all() and set(q[:, 1:].unique().tolist()) == {0, 1}
    _, test, _, quote = labelled_streams(task.test_every)
    # the quote token opens a span: the token after an opening quote is inside, up to the closing one
    ids = test.tolist()
    opening = [i for i in range(len(ids) - 1) if ids[i] == 1000 and quote[i] == 0][:50]   # '"' is id 1000
    assert opening and all(quote[i + 1] == 1 or ids[i + 1] == 1000 for i in opening)
    assert 0.05 < float((q == 1).sum()) / float((q >= 0).sum()) < 0.4


def test_config_is_fixed():
    with pytest.raises(ConfigError) as e:
        build_model("pretrained_minilm", {"n_layer": 4}, {"vocab_size": 30522})
    assert e.value.key == "n_layer"
    with pytest.raises(ConfigError) as e:
        build_model("pretrained_minilm", {}, {"vocab_size": 97})
    assert e.value.key == "vocab_size"


def test_engine_probes_it_without_training(tmp_path):
    cfg = {"task": {"name": "wordpiece_text", "seq_len": 16, "eval_size": 8},
           "model": {"arch": "pretrained_minilm", "n_layer": 6},
           "train": {"steps": 1, "batch_size": 1, "lr": 1e-3, "optimizer": "adamw", "weight_decay": 0.0,
                     "momentum": 0.0, "schedule": "constant", "warmup_steps": 0, "grad_clip": None,
                     "log_every": None, "converged_rel_drop": 0.02}, "seed": 0}
    pcfg = {"probes": [{"id": "geo", "kind": "geometry", "target": None, "layers": [1, 6], "positions": 320,
                        "params": {}}], "layers": [1, 6]}
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    for args in (("workflow.train", "--config", json.dumps(cfg), "--out", str(tmp_path), "--device", "cpu"),
                 ("workflow.evaluate", "--dir", str(tmp_path), "--config", json.dumps({"metrics": [], "sweep": {}}),
                  "--device", "cpu"),
                 ("workflow.probe", "--dir", str(tmp_path), "--config", json.dumps(pcfg), "--device", "cpu")):
        p = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
    tr = json.loads((tmp_path / "train.json").read_text())
    assert tr["status"] == "ok" and tr["pretrained"] and tr["steps_done"] == 0
    assert (tmp_path / "model.pt").stat().st_size < 10_000                         # no copy of the weights
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["status"] == "ok" and ev["points"] == [{"at": {}, "metrics": {}}]
    pr = json.loads((tmp_path / "probe.json").read_text())
    assert pr["status"] == "ok"
    pts = pr["probes"]["geo"]["points"]
    assert [p["at"] for p in pts] == [{"probe.layer": 1}, {"probe.layer": 6}]
    assert 0 < pts[0]["metrics"]["geo.pos_share"] < 1 and pts[0]["metrics"]["geo.pos_ctx_cos"] < 0.5
