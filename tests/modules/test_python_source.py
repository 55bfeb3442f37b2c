"""Character modelling of the standard library's source: real text, no download, a held-out
split of whole files, seeded windows, and metrics in nats and bits."""
from __future__ import annotations

import math

import pytest
import torch

from modules.config import ConfigError
from modules.tasks import build_task
from modules.tasks.python_source import CHARS, OTHER, corpus, encode, stdlib_files


def test_corpus_is_the_stdlib_split_by_file():
    files = stdlib_files(1000)
    assert len(files) > 50 and all(f.suffix == ".py" for f in files) and files == sorted(files)
    train, test, desc = corpus(40, 10)
    assert train.numel() > test.numel() > 1000
    held = torch.cat([encode(f.read_bytes()) for f in files[:40][::10]])
    assert torch.equal(test, held)                              # files 0, 10, 20, 30 are held out
    assert "sha256" in desc and str(train.numel()) in desc


def test_encoding():
    ids = encode("def f():\n\treturn 'é'".encode())
    text = "".join(CHARS[i] if i < OTHER else "?" for i in ids.tolist())
    assert text == "def f():\n\treturn '??'"                     # two UTF-8 bytes, two OTHER ids
    assert build_task("python_source", {}).spec() == {"vocab_size": len(CHARS) + 1}


def test_windows_are_seeded_and_shifted():
    t = build_task("python_source", {"seq_len": 32, "files": 40})
    a = t.batch(torch.Generator().manual_seed(1), 4)
    b = t.batch(torch.Generator().manual_seed(1), 4)
    assert torch.equal(a["x"], b["x"]) and a["x"].shape == (4, 32)
    assert torch.equal(a["x"][:, 1:], a["y"][:, :-1])
    e = t.eval_batch(torch.Generator().manual_seed(1), 4)
    train, test, _ = corpus(40, 10)
    w = e["x"][0]
    # an evaluation window is a substring of the held-out text
    hits = (test.unfold(0, 32, 1).long() == w).all(1)
    assert hits.any()


class Unigram(torch.nn.Module):
    def __init__(self, logp):
        super().__init__()
        self.logp = logp

    def forward(self, x):
        return self.logp.expand(*x.shape, -1)


def test_metrics_of_a_unigram_model():
    t = build_task("python_source", {"seq_len": 64, "files": 40, "eval_size": 64})
    train, _, _ = corpus(40, 10)
    counts = torch.bincount(train.long(), minlength=len(CHARS) + 1).float() + 1
    m = t.evaluate(Unigram((counts / counts.sum()).log()), torch.Generator().manual_seed(0))
    assert m["bits_per_char"] == pytest.approx(m["loss"] / math.log(2))
    assert 4.0 < m["bits_per_char"] < 5.5                       # unigram entropy of code: ~4.5 bits
    assert 0.1 < m["accuracy"] < 0.5                            # the space (indentation) is the likeliest char


class PositionModel(torch.nn.Module):
    """Sure of the right character at positions >= 40 of its window, uniform before: its loss by
    position steps from log V to ~0 at 40, whatever the text."""

    def __init__(self, V):
        super().__init__()
        self.V = V

    def forward(self, x):
        B, T = x.shape
        logits = torch.zeros(B, T, self.V)
        nxt = torch.cat([x[:, 1:], x[:, -1:]], 1)                       # the true next character (but the last)
        logits[:, 40:] = 30.0 * torch.nn.functional.one_hot(nxt[:, 40:], self.V)
        return logits


def test_loss_by_position_scores_only_its_window():
    V = len(CHARS) + 1
    base = {"seq_len": 64, "files": 40, "eval_size": 32}
    whole = build_task("python_source", base).evaluate(PositionModel(V), torch.Generator().manual_seed(0))
    same = build_task("python_source", {**base, "score_from": 0}).evaluate(PositionModel(V), torch.Generator().manual_seed(0))
    assert same == whole                                                # the defaults score every position
    early = build_task("python_source", {**base, "score_from": 8, "score_width": 16}).evaluate(
        PositionModel(V), torch.Generator().manual_seed(0))
    late = build_task("python_source", {**base, "score_from": 40, "score_width": 16}).evaluate(
        PositionModel(V), torch.Generator().manual_seed(0))
    assert early["loss"] == pytest.approx(math.log(V)) and early["accuracy"] < 0.2
    assert late["loss"] < 1e-6 and late["accuracy"] == 1.0
    assert whole["loss"] == pytest.approx(math.log(V) * 40 / 64 + late["loss"] * 23 / 64 + 30 / 64, rel=0.2)
    assert early["ngram_bits_per_char"] != late["ngram_bits_per_char"]  # the baseline is scored on the same window


@pytest.mark.parametrize("params,key", [({"seq_len": 0}, "seq_len"), ({"files": 1}, "files"),
                                        ({"test_every": 1}, "test_every"), ({"seq_len": 64, "score_from": 64}, "score_from"),
                                        ({"score_from": -1}, "score_from"), ({"score_width": 0}, "score_width"),
                                        ({"seq_len": 64, "score_from": 60, "score_width": 8}, "score_width")])
def test_bad_config_names_the_key(params, key):
    with pytest.raises(ConfigError) as e:
        build_task("python_source", params)
    assert e.value.key == key
