"""Probes on synthetic hidden states with planted structure: linear probes find the layer that
holds it and sit at the baseline elsewhere, shuffled labels give chance, the control task is
consistent per token type and selectivity separates encoding from memorizing token identity
(Hewitt & Liang), sparse probing finds the planted neurons, the future-token probe finds the
planted offset and beats the bigram, and the position/context decomposition recovers planted
components and their variance shares."""
from __future__ import annotations

import json
import math
import time

import pytest
import torch

from modules.config import ConfigError, build_config
from modules.probes import control_labels, decompose, logistic_probe, probe_layers, ridge_probe, split, sparse_probe
from modules.probes.future_token import FutureLensConfig, future_token_probe
from modules.probes.geometry import components
from modules.probes.linear import ProbeConfig
from modules.probes.sparse import SparseProbeConfig, f_statistic




def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def planted_classes(g, N=3000, D=32, C=4, scale=2.0):
    """Labels, and hidden states (N, D) whose class means are `scale` apart per direction."""
    y = torch.randint(0, C, (N,), generator=g)
    means = torch.randn(C, D, generator=g) * scale / math.sqrt(D) * 3
    return y, torch.randn(N, D, generator=g) + means[y]


def test_split_is_seeded_disjoint_and_complete():
    tr, te = split(101, 0.2, gen(3))
    assert te.shape[0] == 20 and tr.shape[0] == 81
    assert sorted(torch.cat([tr, te]).tolist()) == list(range(101))
    tr2, te2 = split(101, 0.2, 3)
    assert torch.equal(tr, tr2) and torch.equal(te, te2)
    assert not torch.equal(te, split(101, 0.2, gen(4))[1])
    with pytest.raises(ConfigError):
        split(1, 0.2, gen())


def test_ridge_recovers_a_planted_linear_target_and_not_noise():
    g = gen(1)
    N, D = 2000, 16
    H = torch.randn(N, D, generator=g) * 3 + 5                       # unstandardized on purpose
    y = H @ torch.randn(D, generator=g) + 0.1 * torch.randn(N, generator=g)
    tr, te = split(N, 0.25, g)
    r = ridge_probe(H[tr], y[tr], H[te], y[te], l2=1e-4)
    assert r["r2"] > 0.99
    assert r["baseline_mse"] == pytest.approx(float(((y[te] - y[tr].mean()) ** 2).mean()), rel=1e-5)
    assert r["r2"] == pytest.approx(1 - r["mse"] / r["baseline_mse"])
    noise = torch.randn(N, D, generator=g)
    assert abs(ridge_probe(noise[tr], y[tr], noise[te], y[te])["r2"]) < 0.05
    # several outputs at once
    Y = torch.stack([y, -2 * y], 1)
    assert ridge_probe(H[tr], Y[tr], H[te], Y[te], l2=1e-4)["r2"] > 0.99


def test_logistic_probe_majority_and_loss():
    g = gen(2)
    y, H = planted_classes(g, N=2000)
    tr, te = split(2000, 0.2, g)
    r = logistic_probe(H[tr], y[tr], H[te], y[te], n_classes=4)
    assert r["accuracy"] > 0.95 and r["loss"] < 0.3
    mode = int(torch.bincount(y[tr]).argmax())
    assert r["majority"] == pytest.approx(float((y[te] == mode).float().mean()))
    with pytest.raises(ConfigError, match="n_classes"):
        logistic_probe(H[tr], y[tr], H[te], y[te], n_classes=2)


def test_probe_layers_classification_finds_the_planted_layer():
    g = gen(3)
    y, planted = planted_classes(g)
    N, D = planted.shape
    hiddens = [torch.randn(N, D, generator=g), planted, torch.randn(N, D, generator=g)]
    labels = y.clone()
    labels[:100] = -100                                              # IGNORE positions are dropped
    r = probe_layers(hiddens, labels)
    json.dumps(r)
    assert r["layers"] == [0, 1, 2] and r["best_layer"] == 1
    assert r["n_train"] + r["n_test"] == N - 100
    assert r["score"][1] > 0.95
    for l in (0, 2):
        assert abs(r["score"][l] - r["baseline"]) < 0.07                 # 600 test positions
    assert "control" not in r and "selectivity" not in r
    # (B, T, D) layout is flattened the same way
    r2 = probe_layers([h.reshape(30, 100, D) for h in hiddens], labels.reshape(30, 100))
    assert r2["score"] == r["score"]


def test_probe_layers_regression_finds_the_planted_layer():
    g = gen(4)
    N, D = 3000, 32
    target = torch.randn(N, generator=g)
    w = torch.randn(D, generator=g)
    planted = torch.randn(N, D, generator=g) + target[:, None] * w / w.norm() * 3
    hiddens = [torch.randn(N, D, generator=g), torch.randn(N, D, generator=g), planted]
    r = probe_layers(hiddens, target, kind="regression")
    json.dumps(r)
    assert r["best_layer"] == 2 and r["baseline"] == 0.0
    assert r["score"][2] > 0.85
    assert abs(r["score"][0]) < 0.05 and abs(r["score"][1]) < 0.05


def test_shuffled_labels_give_chance():
    g = gen(5)
    y, planted = planted_classes(g, N=6000)
    shuffled = y[torch.randperm(y.shape[0], generator=g)]
    r = probe_layers([planted], shuffled)
    assert abs(r["score"][0] - r["baseline"]) < 0.05                     # 1200 test positions
    assert r["score"][0] < 0.35                                     # 4 balanced classes


def test_control_labels_are_consistent_per_type_and_follow_the_label_distribution():
    g = gen(6)
    N, V = 20000, 2000
    tokens = torch.randint(0, V, (N,), generator=g)
    labels = (torch.rand(N, generator=g) < 0.3).long()             # 30% ones
    c = control_labels(tokens, labels, gen(0))
    assert c.shape == labels.shape and c.dtype == labels.dtype
    assert torch.equal(c, control_labels(tokens, labels, gen(0)))
    assert not torch.equal(c, control_labels(tokens, labels, gen(1)))
    for v in torch.unique(tokens)[:200].tolist():
        assert torch.unique(c[tokens == v]).numel() == 1
    per_type = torch.zeros(V, dtype=torch.long).scatter_(0, tokens, c)
    assert abs(per_type[torch.unique(tokens)].float().mean().item() - 0.3) < 0.04
    # a constant label stays constant; real-valued labels are drawn from the observed values
    assert torch.equal(control_labels(tokens, torch.full((N,), 7), gen()), torch.full((N,), 7))
    real = torch.randn(N, generator=g)
    assert torch.isin(control_labels(tokens, real, gen()), real).all()


def test_selectivity_separates_encoding_from_token_identity():
    g = gen(7)
    N, V = 4000, 20
    tokens = torch.randint(0, V, (N,), generator=g)
    # Hewitt & Liang's point: on a one-hot of the token, any function of the token identity is
    # linearly decodable, so the real label and the control task are both ~perfect: selectivity ~0
    onehot = torch.nn.functional.one_hot(tokens, V).float()
    f = torch.randint(0, 3, (V,), generator=g)
    r = probe_layers([onehot], f[tokens], tokens=tokens)
    json.dumps(r)
    assert r["score"][0] > 0.99 and r["control"][0] > 0.95
    assert abs(r["selectivity"][0]) < 0.05
    # a label that depends on context, not on the token, planted in a state that carries no
    # token identity: high accuracy, the control task at its majority, high selectivity
    y, planted = planted_classes(g, N=N)
    r = probe_layers([planted], y, tokens=tokens)
    assert r["score"][0] > 0.95
    assert abs(r["control"][0] - r["control_baseline"]) < 0.1
    assert r["selectivity"][0] > 0.5


def test_input_gain_finds_history_that_selectivity_misses():
    # the label is the parity of the 0s seen so far: no window of input gives it. A state that
    # holds it and the current token reads the real label and the control perfectly (selectivity
    # 0, the case a "selectivity > 0" claim would call a failure); the input baseline of the last
    # 3 tokens is at the majority, so input_gain is large. A state holding only the current token
    # gains nothing over the input.
    g = gen(11)
    B, T, V = 200, 50, 10
    x = torch.randint(0, V, (B, T), generator=g)
    lab = torch.cumsum((x == 0).long(), 1) % 2
    onehot = torch.nn.functional.one_hot(x, V).float()
    holds = torch.cat([lab[..., None].float() + 0.1 * torch.randn(B, T, 1, generator=g), onehot], -1)
    blind = onehot + 0.01 * torch.randn(B, T, V, generator=g)
    r = probe_layers([blind, holds], lab, x, window=3)
    json.dumps(r)
    assert r["window"] == 3 and r["score"][1] > 0.99 and abs(r["selectivity"][1]) < 0.02
    assert abs(r["input_score"] - r["baseline"]) < 0.05
    assert r["input_gain"][1] > 0.4 and abs(r["input_gain"][0]) < 0.03
    # a label the last 3 tokens determine: the input baseline reads it and the gain is ~0
    prev = torch.cat([torch.zeros(B, 1, dtype=torch.long), x[:, :-1]], 1)
    r = probe_layers([holds], (prev < 5).long(), x, window=3)
    assert r["input_score"] > 0.99 and r["input_gain"][0] < 0.02
    with pytest.raises(ConfigError, match="window"):
        probe_layers([holds], lab, x, window=0)


def test_window_ids_pad_the_start_and_keep_sequences_apart():
    from modules.probes.linear import window_ids

    ids = window_ids(torch.tensor([[1, 2, 3], [4, 5, 6]]), 2)
    assert ids.tolist() == [[[1, -1], [2, 1], [3, 2]], [[4, -1], [5, 4], [6, 5]]]


def test_sparse_probe_finds_two_planted_neurons():
    g = gen(8)
    N, D = 4000, 64
    y = torch.randint(0, 2, (N,), generator=g)
    H = torch.randn(N, D, generator=g) * torch.rand(D, generator=g).add(0.5)  # neurons of varied scale
    for j in (7, 31):
        H[:, j] = 1.5 * (2 * y - 1) + torch.randn(N, generator=g)
    r = sparse_probe(H, y, ks=[1, 2, 4, "all"])
    json.dumps(r)
    assert r["k"] == [1, 2, 4, D]
    assert set(r["neurons"][:2]) == {7, 31}
    s = dict(zip(r["k"], r["score"]))
    assert s[2] > 0.95 and s[2] > s[1] + 0.02 and s[2] >= s[D] - 0.02
    assert r["f_stat"] == sorted(r["f_stat"], reverse=True)
    assert len(r["neurons"]) == D
    # three classes, one neuron each
    y3 = torch.randint(0, 3, (N,), generator=g)
    H3 = torch.randn(N, D, generator=g)
    H3[:, 5] += 3.0 * (y3 == 1)
    H3[:, 40] += 3.0 * (y3 == 2)
    r3 = sparse_probe(H3, y3, ks=[2, 100])
    assert set(r3["neurons"][:2]) == {5, 40} and r3["k"] == [2, D]
    assert r3["score"][0] > 0.9


def test_k_at_90_is_the_fewest_neurons_with_nine_tenths_of_the_full_gain():
    from modules.probes.sparse import k_at

    r = {"k": [1, 2, 4, 64], "score": [0.6, 0.96, 0.97, 0.98], "baseline": 0.5}   # gains .1 .46 .47 .48
    assert k_at(r, 0.9) == 2 and k_at(r, 0.2) == 1 and k_at(r, 1.0) == 64
    assert math.isnan(k_at({**r, "score": [0.5, 0.5, 0.5, 0.49]}, 0.9))           # nothing to carry


def test_sparse_layers_finds_the_layer_whose_label_sits_in_one_neuron():
    from modules.probes.kinds import KINDS, add_chance, resolve_params

    g = gen(11)
    B, T, D = 100, 30, 32
    y = torch.randint(0, 2, (B, T), generator=g)
    sign = (2 * y - 1).float()
    spread = torch.randn(B, T, D, generator=g)
    spread[..., :8] += 0.5 * sign[..., None]                        # layer 1: eight weak neurons
    single = torch.randn(B, T, D, generator=g)
    single[..., 3] += 3.0 * sign                                    # layer 2: one strong neuron
    p = resolve_params("sparse_layers", {"ks": [1, 2, 4, 8, "all"]})
    pts, raw = KINDS["sparse_layers"].run([spread, single], {"labels": {"y": y}}, [1, 2], "y", "sparse_layers", p, 0)
    add_chance("sparse_layers", pts)
    k90 = {pt["at"]["probe.layer"]: pt["metrics"]["k_at_90"] for pt in pts if "k_at_90" in pt["metrics"]}
    assert k90[2] == 1 and k90[1] >= 4
    base = next(pt["metrics"]["baseline"] for pt in pts if pt["at"] == {})
    scored = [pt for pt in pts if "score" in pt["metrics"]]
    assert len(scored) == 2 * 5 and all(pt["chance"]["score"] == base for pt in scored)
    assert raw["per_layer"][1]["neurons"][0] == 3
    # the one-layer kind carries k_at_90 too, and its score now has its baseline as chance
    pts1, _ = KINDS["sparse"].run([spread, single], {"labels": {"y": y}}, [1, 2], "y", "sparse",
                                  resolve_params("sparse", {"ks": [1, 2, 4, 8, "all"]}), 0)
    add_chance("sparse", pts1)
    top = next(pt for pt in pts1 if pt["at"] == {})
    assert top["metrics"]["k_at_90"] == 1 and top["metrics"]["baseline"] == base
    assert all(pt["chance"]["score"] == base for pt in pts1 if "score" in pt["metrics"])


def test_f_statistic_of_two_classes_is_the_squared_t_statistic():
    g = gen(9)
    y = torch.randint(0, 2, (500,), generator=g)
    H = torch.randn(500, 3, generator=g) + y[:, None] * torch.tensor([0.0, 0.5, 2.0])
    F = f_statistic(H, y)
    a, b = H[y == 0].double(), H[y == 1].double()
    n0, n1 = a.shape[0], b.shape[0]
    pooled = (((a - a.mean(0)) ** 2).sum(0) + ((b - b.mean(0)) ** 2).sum(0)) / (n0 + n1 - 2)
    t2 = (b.mean(0) - a.mean(0)) ** 2 / (pooled * (1 / n0 + 1 / n1))
    assert torch.allclose(F.double(), t2, rtol=1e-4)
    assert F.argmax() == 2


def test_future_token_probe_finds_the_planted_offset_and_beats_the_bigram():
    g = gen(10)
    B, T, D, V = 300, 20, 32, 12
    tokens = torch.randint(0, V, (B, T + 3), generator=g)          # iid: the bigram is uninformative
    E = torch.randn(V, D, generator=g)
    planted = E[tokens[:, 3: 3 + T]] + 0.3 * torch.randn(B, T, D, generator=g)   # token t+1+2 at t
    hiddens = [torch.randn(B, T, D, generator=g), planted]
    r = future_token_probe(hiddens, tokens, offsets=[0, 1, 2])
    json.dumps(r)
    assert r["offsets"] == [0, 1, 2] and r["layers"] == [0, 1] and r["vocab_size"] == V
    assert r["accuracy"][1][2] > 0.9 and r["best_layer"][2] == 1
    assert r["accuracy"][1][2] > r["bigram"][2] + 0.5
    assert r["bigram"][2] < 0.2 and r["unigram"][2] < 0.2
    for n in (0, 1):
        assert r["accuracy"][1][n] < 0.2 and r["accuracy"][0][n] < 0.2
    assert r["n_train"][0] + r["n_test"][0] == B * T


def test_future_token_probe_bigram_baseline_on_a_deterministic_successor():
    g = gen(11)
    B, T, V = 100, 16, 10
    start = torch.randint(0, V, (B, 1), generator=g)
    tokens = (start + torch.arange(T)) % V                          # x_{t+1} = x_t + 1 mod V
    hiddens = [torch.randn(B, T, 8, generator=g)]
    r = future_token_probe(hiddens, tokens, offsets=[0, 1], max_iter=20)
    assert r["bigram"] == [1.0, 1.0] and max(r["unigram"]) < 0.3
    assert r["n_train"][1] + r["n_test"][1] == B * (T - 2)          # S == T: later offsets lose positions
    with pytest.raises(ConfigError, match="offsets"):
        future_token_probe(hiddens, tokens, offsets=[T])


def planted_geometry(g, N=400, T=32, D=64, mean=3.0, amp=4.0, noise=1.0):
    Q, _ = torch.linalg.qr(torch.randn(D, 3, generator=g))        # orthonormal directions
    t = torch.arange(T).float() * 2 * math.pi / T                   # one full period: mean 0 over t
    mu = mean * Q[:, 2]
    pos = amp * (torch.cos(t)[:, None] * Q[:, 0] + torch.sin(t)[:, None] * Q[:, 1])   # (T, D), rank 2
    ctx = noise * torch.randn(N, T, D, generator=g)
    total = mean ** 2 + amp ** 2 + noise ** 2 * D
    return mu + pos + ctx, (mean ** 2 / total, amp ** 2 / total, noise ** 2 * D / total)


def test_decomposition_recovers_planted_components_and_shares():
    g = gen(12)
    H, (m, p, c) = planted_geometry(g)
    mu, pos, ctx = components(H)
    assert torch.allclose(mu + pos + ctx, H, atol=1e-5)
    r = decompose(H)
    json.dumps(r)
    assert r["mean_share"] + r["pos_share"] + r["ctx_share"] == pytest.approx(1.0, abs=1e-9)
    assert r["mean_share"] == pytest.approx(m, abs=0.01)
    assert r["pos_share"] == pytest.approx(p, abs=0.01)
    assert r["ctx_share"] == pytest.approx(c, abs=0.01)
    assert r["pos_var_share"] == pytest.approx(p / (p + c), abs=0.01)
    assert r["pos_rank"] == 2 and 1.8 < r["pos_effective_rank"] < 2.5
    assert sum(r["pos_spectrum"][:2]) > 0.98
    assert len(r["pos_pc"]) == 2 and len(r["pos_pc"][0]) == 32
    radius = torch.tensor(r["pos_pc"]).norm(dim=0)                 # the planted circle, radius amp
    assert torch.allclose(radius, torch.full_like(radius, 4.0), atol=0.5)
    assert r["smoothness"] > 0.9 and abs(r["smoothness_shuffled"]) < 0.2
    # position is linearly decodable from raw states, not from the context part
    assert r["position_chance"] == pytest.approx(1 / 32, abs=0.01)
    assert r["position_raw"] > 0.15
    assert r["position_context"] < r["position_chance"] + 0.03


def test_decomposition_of_pure_context_has_no_positional_part():
    g = gen(13)
    H = torch.randn(300, 16, 24, generator=g)
    r = decompose(H, decode=False)
    assert "position_raw" not in r
    assert r["pos_share"] < 0.01 and r["mean_share"] < 0.01
    assert abs(r["smoothness"]) < 0.2


def test_configs_refuse_bad_values():
    with pytest.raises(ConfigError, match="kind"):
        probe_layers([torch.randn(10, 2)], torch.zeros(10), kind="clustering")
    with pytest.raises(ConfigError, match="test_fraction"):
        ProbeConfig(test_fraction=1.5)
    with pytest.raises(ConfigError, match="ks"):
        SparseProbeConfig(ks=[0])
    with pytest.raises(ConfigError, match="offsets"):
        FutureLensConfig(offsets=[-1])
    with pytest.raises(ConfigError, match="energy"):
        decompose(torch.randn(4, 4, 2), energy=0.0)
    cfg = build_config(ProbeConfig, {"kind": "regression", "l2": 0})
    assert cfg.l2 == 0.0 and cfg.kind == "regression"
    with pytest.raises(ConfigError, match="unknown key"):
        build_config(ProbeConfig, {"lambda": 1.0})


def test_timing_four_layers_d128_20k_positions():
    """Not an assertion on time: prints the wall time of probe_layers, with the control task."""
    g = gen(14)
    N, D, C, L = 20000, 128, 10, 4
    y = torch.randint(0, C, (N,), generator=g)
    tokens = torch.randint(0, 50, (N,), generator=g)
    means = torch.randn(C, D, generator=g)
    hiddens = [torch.randn(N, D, generator=g) + 0.1 * l * means[y] for l in range(L)]
    t0 = time.perf_counter()
    r = probe_layers(hiddens, y, tokens=tokens)
    t_cls = time.perf_counter() - t0
    t0 = time.perf_counter()
    rr = probe_layers(hiddens, hiddens[2] @ torch.randn(D, generator=g), tokens=tokens, kind="regression")
    t_reg = time.perf_counter() - t0
    print(f"\nprobe_layers, {L} layers x d={D} x {N} positions, 1 thread: classification ({C} classes, "
          f"real + control = {2 * L} logistic probes) {t_cls:.2f} s; regression (real + control) {t_reg:.2f} s")
    assert r["best_layer"] == L - 1 and rr["best_layer"] == 2
