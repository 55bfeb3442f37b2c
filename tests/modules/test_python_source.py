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


@pytest.mark.parametrize("params,key", [({"seq_len": 0}, "seq_len"), ({"files": 1}, "files"),
                                        ({"test_every": 1}, "test_every")])
def test_bad_config_names_the_key(params, key):
    with pytest.raises(ConfigError) as e:
        build_task("python_source", params)
    assert e.value.key == key
