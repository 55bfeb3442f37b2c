"""SCAN (Lake & Baroni 2018, arXiv 1711.00350) and the seq2seq_rnn arch: the grammar gives the
paper's examples and the 20,910 commands, the splits have the sizes of the authors' files, the
batches are seeded and laid out as documented, exact match is computed right by hand-made
models, and the encoder-decoder meets the model contract (shapes, step equals forward, causal,
padding-blind, deterministic, config errors, overfits a batch)."""
from __future__ import annotations

import pytest
import torch

from modules.config import ConfigError
from modules.models import build_model
from modules.tasks import build_task, task_names
from modules.tasks.scan import (ACTIONS, CMD_SLOT, COMMAND_WORDS, EOS, PAD, SEP, VOCAB, all_pairs, greedy_decode,
                                make_batch, split_indices)
from modules.tasks.sequence import IGNORE

PAIRS = dict(all_pairs())


def ids(words: str) -> list[int]:
    return [VOCAB.index(w) for w in words.split()]


# ---------------------------------------------------------------------------------------------
# the grammar and the splits

@pytest.mark.parametrize("command,actions", [
    ("jump twice after walk", "WALK JUMP JUMP"),
    ("turn left twice", "LTURN LTURN"),
    ("jump opposite left", "LTURN LTURN JUMP"),
    ("walk around right", "RTURN WALK RTURN WALK RTURN WALK RTURN WALK"),
    ("jump", "JUMP"),
    ("jump left", "LTURN JUMP"),
    ("jump around right", "RTURN JUMP RTURN JUMP RTURN JUMP RTURN JUMP"),
    ("jump thrice", "JUMP JUMP JUMP"),
    ("jump opposite left and walk thrice", "LTURN LTURN JUMP WALK WALK WALK"),
    ("jump opposite left after walk around left", "LTURN WALK LTURN WALK LTURN WALK LTURN WALK LTURN LTURN JUMP"),
    ("turn opposite right thrice", "RTURN RTURN RTURN RTURN RTURN RTURN"),
    ("look and turn around left", "LOOK LTURN LTURN LTURN LTURN"),
])
def test_paper_examples(command, actions):
    assert PAIRS[command] == actions


def test_all_20910_commands_distinct_and_closed():
    pairs = all_pairs()
    assert len(pairs) == 20_910 and len(PAIRS) == 20_910
    assert "turn" not in PAIRS and "left" not in PAIRS and "walk and" not in PAIRS
    lengths = [len(a.split()) for _, a in pairs]
    assert min(lengths) == 1 and max(lengths) == 48
    assert max(len(c.split()) for c, _ in pairs) == CMD_SLOT
    words = {w for c, _ in pairs for w in c.split()}
    assert words == set(COMMAND_WORDS)
    assert {w for _, a in pairs for w in a.split()} == set(ACTIONS)
    # "x after y" is y's actions then x's, "x and y" the other way round, for every pair of S's
    s_phrases = [c for c in PAIRS if "and" not in c.split() and "after" not in c.split()]
    assert len(s_phrases) == 102
    for a, b in [("walk twice", "turn around right"), ("run opposite left thrice", "look")]:
        assert PAIRS[f"{a} and {b}"] == f"{PAIRS[a]} {PAIRS[b]}"
        assert PAIRS[f"{a} after {b}"] == f"{PAIRS[b]} {PAIRS[a]}"


def test_split_sizes_match_the_authors_files():
    """Sizes of github.com/brendenlake/SCAN's files (as listed by the HF/TFDS 'scan' dataset)."""
    sizes = {s: split_indices(s)[:2] for s in ("simple", "length", "add_jump", "add_turn_left")}
    assert [len(v) for v in sizes["simple"]] == [16_728, 4_182]
    assert [len(v) for v in sizes["length"]] == [16_990, 3_920]
    assert len(sizes["add_jump"][1]) == 7_706              # every composed jump command
    assert len(sizes["add_turn_left"][1]) == 1_208
    pairs = all_pairs()
    for s, (train, test) in sizes.items():
        assert len(set(train.tolist()) & set(test.tolist())) == 0, s
    # simple covers everything, fixed by split_seed, not by anything else
    assert len(sizes["simple"][0]) + len(sizes["simple"][1]) == 20_910
    assert torch.equal(split_indices("simple", 0)[1], build_task("scan", {"split": "simple"}).test_indices())
    assert not torch.equal(split_indices("simple", 1)[1], sizes["simple"][1])
    # length: train actions <= 22, test 24..48 (no command has 23 actions)
    lens = torch.tensor([len(a.split()) for _, a in pairs])
    assert lens[sizes["length"][0]].max() == 22 and lens[sizes["length"][1]].min() == 24
    # add_jump: train has no jump at all, the primitive is kept apart and added by sampling
    train, test, prim = split_indices("add_jump")
    assert pairs[prim][0] == "jump"
    assert not any("jump" in pairs[i][0].split() for i in train.tolist())
    assert all("jump" in pairs[i][0].split() and pairs[i][0] != "jump" for i in test.tolist())
    assert len(train) + len(test) + 1 == 20_910
    train, test, prim = split_indices("add_turn_left")
    assert pairs[prim][0] == "turn left"
    assert "turn opposite left" in {pairs[i][0] for i in train.tolist()}   # the bigram, not the words
    assert all("turn left" in pairs[i][0] for i in test.tolist())


def test_batches_are_seeded_laid_out_and_sample_the_primitive():
    t = build_task("scan", {"split": "add_jump"})
    a, b = t.batch(torch.Generator().manual_seed(3), 400), t.batch(torch.Generator().manual_seed(3), 400)
    c = t.batch(torch.Generator().manual_seed(4), 400)
    assert torch.equal(a["x"], b["x"]) and not torch.equal(a["x"], c["x"])
    x, y = a["x"], a["y"]
    assert (x[:, CMD_SLOT] == SEP).all() and t.spec() == {"vocab_size": len(VOCAB), "sep_token": SEP, "pad_token": PAD}
    jump = VOCAB.index("jump")
    has_jump = (x[:, :CMD_SLOT] == jump).any(1)
    only_jump = has_jump & (x[:, 1:CMD_SLOT] == PAD).all(1)
    assert torch.equal(has_jump, only_jump)                           # jump only ever alone
    assert 0.05 < only_jump.float().mean() < 0.16                     # ~ primitive_fraction = 0.1
    # y: the actions and EOS from SEP on, shifted by one against x; nothing scored before SEP
    assert (y[:, :CMD_SLOT] == IGNORE).all()
    for r in range(5):
        cmd = " ".join(VOCAB[i] for i in x[r, :CMD_SLOT].tolist() if i != PAD)
        acts = [VOCAB[i] for i in y[r].tolist() if i != IGNORE]
        assert acts[-1] == "EOS" and " ".join(acts[:-1]) == PAIRS[cmd]
        n = len(acts)
        assert torch.equal(x[r, CMD_SLOT + 1:CMD_SLOT + n], y[r, CMD_SLOT:CMD_SLOT + n - 1])


def test_hand_made_example():
    b = make_batch(torch.tensor([list(PAIRS).index("jump twice after walk")]))
    assert b["x"][0].tolist() == ids("jump twice after walk") + [PAD] * 5 + [SEP] + ids("WALK JUMP JUMP")
    assert b["y"][0].tolist() == [IGNORE] * 9 + ids("WALK JUMP JUMP") + [EOS]


def test_config_errors():
    for params, key in [({"split": "addjump"}, "split"), ({"eval_size": 0}, "eval_size"),
                        ({"teacher_forcing": 1.5}, "teacher_forcing"), ({"primitive_fraction": 0.0}, "primitive_fraction"),
                        ({"length_cutoff": 48}, "length_cutoff"), ({"n_symbols": 3}, "n_symbols")]:
        with pytest.raises(ConfigError) as e:
            build_task("scan", params)
        assert e.value.key == key
    assert "scan" in task_names()


# ---------------------------------------------------------------------------------------------
# evaluation: exact match with oracles

class Oracle(torch.nn.Module):
    """Reads the command from x and puts its logits on the right next action; `wrong_last` gets
    the last action of commands longer than one action wrong (EOS one step early)."""

    def __init__(self, wrong_last: bool = False):
        super().__init__()
        self.wrong_last = wrong_last

    def forward(self, x):
        B, T = x.shape
        out = torch.zeros(B, T, len(VOCAB))
        for r in range(B):
            cmd = " ".join(VOCAB[i] for i in x[r, :CMD_SLOT].tolist() if i != PAD)
            target = ids(PAIRS[cmd]) + [EOS]
            if self.wrong_last and len(target) > 2:
                target = target[:-2] + [EOS, EOS]
            for t in range(CMD_SLOT, T):
                k = t - CMD_SLOT
                out[r, t, target[min(k, len(target) - 1)]] = 10.0
        return out


def test_exact_match_with_oracles():
    t = build_task("scan", {"split": "length", "eval_size": 40})
    good = t.evaluate(Oracle(), torch.Generator().manual_seed(0))
    assert good["exact_match"] == 1.0 and good["accuracy"] == 1.0 and good["sequence_accuracy"] == 1.0
    assert good["loss"] < 1e-3
    bad = t.evaluate(Oracle(wrong_last=True), torch.Generator().manual_seed(0))
    assert bad["exact_match"] == 0.0 and 0.9 < bad["accuracy"] < 1.0    # test commands have >= 24 actions


def test_greedy_decode_generic_and_stepping_agree():
    t = build_task("scan", {})
    x = t.batch(torch.Generator().manual_seed(0), 6)["x"]
    torch.manual_seed(0)
    tf = build_model("transformer", {"n_layer": 1, "n_head": 2, "d_model": 16}, t.spec()).eval()

    class NoStep(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x)

    a = greedy_decode(tf, x[:, :CMD_SLOT + 1], 12, stop=None)
    b = greedy_decode(NoStep(tf), x[:, :CMD_SLOT + 1], 12, stop=None)
    assert a.shape == (6, 12) and torch.equal(a, b)
    c = greedy_decode(Oracle(), x[:, :CMD_SLOT + 1], 50)     # stops early, pads with EOS
    assert c.shape == (6, 50) and (c[:, -1] == EOS).all()


# ---------------------------------------------------------------------------------------------
# the seq2seq_rnn arch

SPEC = build_task("scan", {}).spec()
CASES = [{"cell": c, "attention": a, "n_layer": n, "d_model": 16}
         for c, a, n in [("gru", "bahdanau", 1), ("gru", "luong", 2), ("gru", "none", 2),
                         ("lstm", "bahdanau", 2), ("lstm", "luong", 1), ("lstm", "none", 1)]]
IDS = [f"{p['cell']}-{p['attention']}-{p['n_layer']}" for p in CASES]


def make(params, seed=0):
    torch.manual_seed(seed)
    return build_model("seq2seq_rnn", params, SPEC).eval()


def scan_x(n=5, seed=0):
    return build_task("scan", {}).batch(torch.Generator().manual_seed(seed), n)["x"]


@pytest.mark.parametrize("params", CASES, ids=IDS)
def test_seq2seq_shapes_step_and_determinism(params):
    m = make(params)
    x = scan_x()
    logits, hid = m(x, return_hidden=True)
    assert logits.shape == (5, x.shape[1], len(VOCAB))
    assert len(hid) == params["n_layer"] and all(h.shape == (5, x.shape[1], 16) for h in hid)
    assert (logits[:, :CMD_SLOT] == 0).all() and (logits[:, CMD_SLOT:] != 0).any(-1).all()
    state, outs = m.init_state(5), []
    for t in range(x.shape[1]):
        o, state = m.step(x[:, t], state)
        outs.append(o)
    torch.testing.assert_close(torch.stack(outs, 1), logits, rtol=1e-5, atol=1e-5)
    assert torch.equal(make(params, 0)(x), logits) and not torch.equal(make(params, 1)(x), logits)


@pytest.mark.parametrize("params", CASES, ids=IDS)
def test_seq2seq_causal_and_padding_blind(params):
    m = make(params)
    x = scan_x(seed=1)
    base = m(x)
    for s in (CMD_SLOT + 1, CMD_SLOT + 4, x.shape[1] - 1):       # change the decoder inputs from s on
        x2 = x.clone()
        x2[:, s:] = (x2[:, s:] - 13 + 1) % 6 + 13                # other actions
        out = m(x2)
        assert torch.equal(out[:, :s], base[:, :s]), s
        assert not torch.allclose(out[:, s:], base[:, s:])
    x3 = x.clone()                                               # another command: every decoder output moves
    x3[:, 0] = (x3[:, 0] + 1) % 4
    assert not torch.allclose(m(x3)[:, CMD_SLOT], base[:, CMD_SLOT])
    # a wider command slot (more PAD before SEP) changes nothing after SEP
    wide = torch.cat([x[:, :CMD_SLOT], torch.full((5, 3), PAD), x[:, CMD_SLOT:]], 1)
    torch.testing.assert_close(m(wide)[:, CMD_SLOT + 3:], base[:, CMD_SLOT:], rtol=1e-5, atol=1e-6)


def test_seq2seq_config_errors():
    for params, key in [({"cell": "rnn"}, "cell"), ({"attention": "dot"}, "attention"), ({"dropout": 1.0}, "dropout"),
                        ({"n_layer": 0}, "n_layer"), ({"d_embed": 0}, "d_embed"), ({"heads": 2}, "heads")]:
        with pytest.raises(ConfigError) as e:
            build_model("seq2seq_rnn", params, SPEC)
        assert e.value.key == key
    with pytest.raises(ConfigError) as e:
        build_model("seq2seq_rnn", {}, {"vocab_size": 22})        # a task without a separator
    assert e.value.key == "sep_token"
    with pytest.raises(ConfigError) as e:
        build_model("seq2seq_rnn", {"sep_token": 30}, {"vocab_size": 22})
    assert e.value.key == "sep_token"
    m = make(CASES[0])
    x = scan_x()
    x[0, CMD_SLOT], x[0, CMD_SLOT - 1] = PAD, SEP                 # separators in different columns
    with pytest.raises(ValueError, match="same column"):
        m(x)


@pytest.mark.parametrize("params", [CASES[0], CASES[2]], ids=[IDS[0], IDS[2]])
def test_seq2seq_overfits_a_batch_and_decodes_it(params):
    t = build_task("scan", {"teacher_forcing": 0.5})
    torch.manual_seed(0)
    m = build_model("seq2seq_rnn", {**params, "d_model": 32}, SPEC)
    short = [i for i, (_, a) in enumerate(all_pairs()) if len(a.split()) <= 8]
    pick = torch.randperm(len(short), generator=torch.Generator().manual_seed(0))[:8]
    b = make_batch(torch.tensor(short)[pick])
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = None
    for i in range(120):
        b["teacher_forced"] = torch.tensor(i % 2 == 0)          # both paths of the loss
        loss = t.loss(m, b)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    assert loss.item() < 0.05 * first
    x, y = b["x"], b["y"]
    pred = greedy_decode(m, x[:, :CMD_SLOT + 1], x.shape[1] - CMD_SLOT)
    target = torch.where(y[:, CMD_SLOT:] == IGNORE, EOS, y[:, CMD_SLOT:])
    assert torch.equal(pred, target)
