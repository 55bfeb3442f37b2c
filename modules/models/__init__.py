"""Model registry, keyed by the catalogue's `arch` name.

Every model is `Model(cfg)` with a typed dataclass config; `forward(x, return_hidden=False)`
returns the output, or (output, hiddens) with one (B, T, D) tensor per layer.
"""
from __future__ import annotations

import dataclasses
import importlib

# arch -> "module:ModelClass:ConfigClass"; imported lazily.
ARCHS: dict[str, str] = {
    "toy_autoencoder": "modules.models.toy_autoencoder:ToyAutoencoder:ToyAutoencoderConfig",
    "mlp_encoder": "modules.models.mlp_encoder:MLPEncoder:MLPEncoderConfig",
    "transformer": "modules.models.transformer:Transformer:TransformerConfig",
    "rnn": "modules.models.rnn:ElmanRNN:ElmanConfig",
    "gru": "modules.models.rnn:GRU:GRUConfig",
    "lstm": "modules.models.lstm:LSTM:LSTMConfig",
    "linear_ssm": "modules.models.linear_ssm:LinearSSM:LinearSSMConfig",
    # state-space and linear-attention mixers on one pre-norm backbone (mixer_lm.py)
    "s4": "modules.models.s4:S4:S4Config",
    "s4d": "modules.models.s4d:S4D:S4DConfig",
    "dss": "modules.models.dss:DSS:DSSConfig",
    "lru": "modules.models.lru:LRU:LRUConfig",
    "mamba": "modules.models.mamba:Mamba:MambaConfig",
    "mamba2": "modules.models.mamba2:Mamba2:Mamba2Config",
    "linear_attention": "modules.models.linear_attention:LinearAttention:LinearAttentionConfig",
    "gla": "modules.models.linear_attention:GLA:GLAConfig",
    "deltanet": "modules.models.deltanet:DeltaNet:DeltaNetConfig",
    "ttt": "modules.models.ttt:TTT:TTTConfig",
    "siamese": "modules.models.siamese:Siamese:SiameseConfig",
    "cpc": "modules.models.cpc:CPC:CPCConfig",
    "hybrid": "modules.models.hybrid:Hybrid:HybridConfig",
    "seq2seq_rnn": "modules.models.seq2seq:Seq2SeqRNN:Seq2SeqConfig",
    # pretrained, frozen: a probe target (the engine does not train it)
    "pretrained_minilm": "modules.models.pretrained_minilm:PretrainedMiniLM:PretrainedMiniLMConfig",
    "read_process_write": "modules.models.read_process_write:ReadProcessWrite:ReadProcessWriteConfig",
    "ptr_net": "modules.models.read_process_write:PtrNet:PtrNetConfig",
}


def arch_names() -> list[str]:
    return sorted(ARCHS)


def get_arch(name: str):
    """(ModelClass, ConfigClass) for an arch name."""
    if name not in ARCHS:
        raise KeyError(f"{name!r} is not a known architecture; known: {', '.join(arch_names())}")
    module, model_cls, cfg_cls = ARCHS[name].split(":")
    mod = importlib.import_module(module)
    return getattr(mod, model_cls), getattr(mod, cfg_cls)


def build_config_for(arch: str, params: dict, task_spec: dict):
    """The typed config of `arch` from catalogue params, with sizes the task declares
    (e.g. n_features, vocab_size) filled in where the config has such a field."""
    from ..config import build_config

    _, cfg_cls = get_arch(arch)
    names = {f.name for f in dataclasses.fields(cfg_cls)}
    merged = {k: v for k, v in task_spec.items() if k in names and k not in params}
    merged.update(params)
    return build_config(cfg_cls, merged)


# Evaluation axes every model may offer (`evaluate.sweep: {model.<axis>: [...]}`): applied to the trained
# weights after loading, never to training.
#   perturb_state  beta >= 0: each weight tensor the model names in `state_matrix_weights()` (the
#                  trained W of its state matrix) gets beta * n / max|n|, n ~ N(0, 1) drawn from the
#                  evaluation's seeded generator: an additive perturbation whose largest entry is
#                  beta, as in Wang & Li's perturbation tests of stable approximation (authors' code,
#                  radarFudan/Curse-of-memory, src/perturb.py). 0 leaves the model as trained.
MODEL_EVAL_AXES = ("perturb_state",)


def model_eval_axes(arch: str) -> tuple[str, ...]:
    """The model evaluation axes `arch` supports."""
    model_cls, _ = get_arch(arch)
    return ("perturb_state",) if hasattr(model_cls, "state_matrix_weights") else ()


def apply_eval_axes(model, at: dict, gen) -> None:
    """Apply the model axes of an evaluation point ({axis: value}, without the 'model.' prefix) to
    the loaded model, in place."""
    import torch

    for axis, value in at.items():
        if axis != "perturb_state":
            raise KeyError(f"{axis!r} is not a model evaluation axis; known: {', '.join(MODEL_EVAL_AXES)}")
        beta = float(value)
        if beta < 0:
            raise ValueError(f"perturb_state: {beta} must not be negative")
        if beta == 0:
            continue
        with torch.no_grad():
            for w in model.state_matrix_weights():
                n = torch.randn(w.shape, generator=gen, dtype=torch.float32).to(w.device, w.dtype)
                w.add_(beta * n / n.abs().max())


# Evaluation metrics a model offers itself (`evaluate.metrics`), measured on the task's evaluation
# inputs rather than by the task:
#   recurrence_gap        max |forward(x) - step(x)| / max |forward(x)| over the outputs of
#                         MODEL_METRIC_SEQUENCES evaluation sequences, step(x) being the model's
#                         recurrent form run one position at a time from its initial state: how far the
#                         parallel form it trains with (a chunked algorithm, a scan, an FFT convolution) is
#                         from the recurrence it stands for. Exact arithmetic gives 0; float32 round-off
#                         some 1e-7 .. 1e-5. Only for a model with a recurrent form. Training does not aim
#                         at it.
#   forward_tokens_per_s  positions per second of the parallel forward (no gradient) on a batch of
#                         MODEL_METRIC_SEQUENCES evaluation sequences (a model that reads sequences:
#                         not one with `reads_sequences = False`): the median of SPEED_REPEATS timed
#                         passes after SPEED_WARMUP untimed ones, the device synchronized around each.
#                         A speed of this machine: the evaluation records the device it ran on, and a
#                         claim about one device (`only_at.device`) is judged only on it.
MODEL_METRICS = ("recurrence_gap", "forward_tokens_per_s")
MODEL_METRIC_SEQUENCES = {"recurrence_gap": 16, "forward_tokens_per_s": 8}
RECURRENCE_SEQUENCES = MODEL_METRIC_SEQUENCES["recurrence_gap"]
SPEED_WARMUP, SPEED_REPEATS = 2, 5


def model_metrics(arch: str) -> tuple[str, ...]:
    """The model metrics `arch` offers (those of MODEL_METRICS its class supports)."""
    model_cls, _ = get_arch(arch)
    recurrent = callable(getattr(model_cls, "step", None)) and getattr(model_cls, "step_is_forward", True)
    sequences = getattr(model_cls, "reads_sequences", True)
    return (("recurrence_gap",) if recurrent else ()) + (("forward_tokens_per_s",) if sequences else ())


def model_metric_facts() -> dict[str, dict]:
    from ..metrics import Metric

    return {"recurrence_gap": Metric("lower", 0.0, None, trained=False, band=0.0).as_dict(),
            "forward_tokens_per_s": Metric("higher", 0.0, None, trained=False, band=0.0).as_dict()}


def _sync(x) -> None:
    import torch

    if x.is_cuda:
        torch.cuda.synchronize(x.device)


def measure_model_metric(name: str, model, x):
    """One model metric on the evaluation inputs x (B, T[, d]); the model is in eval mode."""
    import statistics
    import time

    import torch

    if name not in MODEL_METRICS:
        raise KeyError(f"{name!r} is not a model metric; known: {', '.join(MODEL_METRICS)}")
    with torch.no_grad():
        if name == "forward_tokens_per_s":
            for _ in range(SPEED_WARMUP):
                model(x)
            times = []
            for _ in range(SPEED_REPEATS):
                _sync(x)
                t0 = time.perf_counter()
                model(x)
                _sync(x)
                times.append(time.perf_counter() - t0)
            return x.shape[0] * x.shape[1] / max(statistics.median(times), 1e-12)
        full = model(x).float()                                                        # (B, T, V)
        state = model.init_state(x.shape[0])
        steps = []
        for t in range(x.shape[1]):
            out, state = model.step(x[:, t], state)
            steps.append(out.float())
        gap = (torch.stack(steps, 1) - full).abs().max()
        return float(gap / full.abs().max().clamp(min=1e-30))


def build_model(arch: str, params: dict, task_spec: dict):
    model_cls, _ = get_arch(arch)
    return model_cls(build_config_for(arch, params, task_spec))
