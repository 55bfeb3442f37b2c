"""The hostile cases: one defect each, and the message it must produce.

A catalogue case is base.yaml (or base_probe.yaml, with base="probe") with paper.id set to the
case's name and then a small patch:
    set={"path": value}        replace or add a value (an index one past the end appends)
    delete=["path"]            remove a key or list item
    copy={"to": "from"}        duplicate a part of the entry (for the duplicate-id cases)
    replace=("old", "new")     edit the written text once (for what data cannot say: duplicate keys)
A path is dotted keys with [i] for list items and a Python literal in brackets for keys holding
dots or numbers: claims[0].measure.at['task.sparsity'], tables[0].paper.relu[0.0].
kind="config" patches an empty config.yaml instead; raw="..." (bytes for non-UTF-8) gives the whole
text, for cases about the YAML text itself.

Case.write(folder) writes <name>.yaml with the old comment header ('# hostile case:', '# kind:',
'# expect:', '# max_jobs:' lines, so YAML line numbers count them) and returns its path.
"""
from __future__ import annotations

import ast
import copy as _copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
BASES = {"entry": HERE / "base.yaml", "probe": HERE / "base_probe.yaml"}


@dataclass(frozen=True)
class Case:
    name: str
    expect: str                                      # text the single error line must contain, or "accepted"
    set: dict[str, Any] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    copy: dict[str, str] = field(default_factory=dict)
    replace: tuple[str, str] | None = None
    raw: str | bytes | None = None
    base: str = "entry"                              # "entry" or "probe": which base file to patch
    kind: str = "entry"                              # "config": a config.yaml, patched from {}
    max_jobs: int | None = None                      # check the job cap (scale 'small') against this

    def header(self) -> str:
        lines = [f"# hostile case: {self.name}"]
        if self.kind == "config":
            lines.append("# kind: config")
        lines.append(f"# expect: {self.expect}")
        if self.max_jobs is not None:
            lines.append(f"# max_jobs: {self.max_jobs}")
        return "\n".join(lines) + "\n"

    def body(self) -> str | bytes:
        if self.raw is not None:
            return self.raw
        if self.kind == "config":
            data: Any = {}
        else:
            data = yaml.safe_load(BASES[self.base].read_text())
            data["paper"]["id"] = self.name
        for dst, src in self.copy.items():
            _put(data, dst, _copy.deepcopy(_get(data, src)))
        for path in self.delete:
            parent, key = _parent(data, path)
            del parent[key]
        for path, value in self.set.items():
            _put(data, path, _copy.deepcopy(value))
        text = yaml.safe_dump(data, sort_keys=False)
        if self.replace is not None:
            old, new = self.replace
            assert text.count(old) == 1, f"{self.name}: {old!r} is not in the text exactly once"
            text = text.replace(old, new)
        return text

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.yaml"
        body = self.body()
        if isinstance(body, bytes):
            path.write_bytes(self.header().encode() + body)
        else:
            path.write_text(self.header() + body)
        return path


_STEP = re.compile(r"(?:^|\.)([A-Za-z_]\w*)|\[([^\]]+)\]")


def _steps(path: str) -> list:
    steps, pos = [], 0
    for m in _STEP.finditer(path):
        assert m.start() == pos, f"bad path {path!r} at {pos}"
        steps.append(m.group(1) if m.group(1) is not None else ast.literal_eval(m.group(2)))
        pos = m.end()
    assert steps and pos == len(path), f"bad path {path!r}"
    return steps


def _parent(data: Any, path: str) -> tuple[Any, Any]:
    *head, last = _steps(path)
    for step in head:
        data = data[step]
    return data, last


def _get(data: Any, path: str) -> Any:
    parent, key = _parent(data, path)
    return parent[key]


def _put(data: Any, path: str, value: Any) -> None:
    parent, key = _parent(data, path)
    if isinstance(parent, list) and key == len(parent):
        parent.append(value)
    else:
        parent[key] = value


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in zip("abcdefg", "bcdefgh"))

CASES = [
    # the YAML text itself
    Case("empty_file", expect="the file is empty", raw=""),
    Case("not_a_mapping", expect="expected a mapping with keys paper, experiments, claims, not list", raw="- 1\n- 2\n"),
    Case("invalid_yaml", expect="invalid YAML at line 4, column 12: expected ',' or '}', but got ':'",
         raw="paper: {id: invalid_yaml\nexperiments: [\n"),
    Case("non_utf8", expect="not UTF-8 text", raw=b"paper:\n  title: caf\xe9 \xff\n"),
    Case("python_tag", expect="only plain YAML data is allowed",
         raw="paper: !!python/object/apply:os.system ['touch /tmp/hostile-pwned']\n"),
    Case("alias_bomb", expect="alias bomb", raw=ALIAS_BOMB),
    Case("duplicate_key", expect="duplicate key 'steps'",
         replace=("    steps: 100\n", "    steps: 100\n    steps: 200\n")),
    Case("unknown_top_key", expect="extra: unknown key; allowed here: paper, experiments, scales, claims, tables",
         set={"extra": 1}),

    # paper
    Case("html_in_text", expect="accepted",                   # the report test renders it: escaped, not run
         set={"paper.title": "<script>alert('title')</script> & <b>bold</b>",
              "claims[0].text": "<img src=x onerror=alert(1)> claim", "claims[0].source": "Figure <i>1</i>"}),
    Case("id_differs_from_file", set={"paper.id": "another_paper"},
         expect="paper.id: 'another_paper' differs from the file name; rename the file to another_paper.yaml or change the id"),
    Case("type_year", expect="paper.year: '2022' must be an integer", set={"paper.year": "2022"}),
    Case("unknown_paper_key", expect="paper.doi: unknown key; allowed here: id, title, year, url, authors",
         set={"paper.doi": "x"}),

    # experiments
    Case("type_experiments", expect="experiments: 'exp' must be a list", set={"experiments": "exp"}),
    Case("id_slash", expect="experiments[0].id: 'a/b' is not a valid id", set={"experiments[0].id": "a/b"}),
    Case("duplicate_experiment_id", expect="experiments[1].id: duplicate experiment id 'exp'",
         copy={"experiments[1]": "experiments[0]"}),
    Case("unknown_experiment_key", expect="experiments[0].repeats: unknown key", set={"experiments[0].repeats": 3}),
    Case("negative_seeds", expect="experiments[0].seeds: input should be greater than or equal to 1 (got -1)",
         set={"experiments[0].seeds": -1}),
    Case("type_seeds_float", expect="experiments[0].seeds: 2.5 must be an integer", set={"experiments[0].seeds": 2.5}),
    Case("job_cap", expect="expands to 4000 train jobs in all", max_jobs=1000, set={"experiments[0].seeds": 1000}),
    Case("unknown_task", expect="experiments[0].task.name: 'copy_long' is not a known task; known:",
         set={"experiments[0].task.name": "copy_long"}),
    Case("unknown_task_param", expect="experiments[0].task.n_feature: unknown key; allowed:",
         set={"experiments[0].task.n_feature": 3}),
    Case("type_task_param", expect="experiments[0].task.sparsity: 'high' must be a number",
         set={"experiments[0].task.sparsity": "high"}),
    Case("type_models", expect="experiments[0].models: {'id': 'relu'} must be a list",
         set={"experiments[0].models": {"id": "relu"}}),
    Case("duplicate_model_id", expect="experiments[0].models[2].id: duplicate model id 'relu'",
         copy={"experiments[0].models[2]": "experiments[0].models[0]"}),
    Case("id_dotdot", set={"experiments[0].models[0].id": "../relu"},
         expect="experiments[0].models[0].id: '../relu' is not a valid id; use lowercase letters, digits and underscores"),
    Case("unknown_arch", expect="experiments[0].models[0].arch: 'mamba3' is not a known architecture; known:",
         set={"experiments[0].models[0].arch": "mamba3"}),
    Case("unknown_model_param", set={"experiments[0].models[0].hiden": 3},
         expect="experiments[0].models[0].hiden: unknown key; allowed: activation, bias, hidden, n_features"),
    Case("type_hyperparameter", expect="experiments[0].models[0].hidden: 'two' must be an integer",
         set={"experiments[0].models[0].hidden": "two"}),
    Case("type_sweep", expect="experiments[0].sweep: [0.0, 0.9] must be a mapping",
         set={"experiments[0].sweep": [0.0, 0.9]}),
    Case("sparsity_out_of_range", expect="experiments[0].sweep.task.sparsity: 1.5: 1.5 must be in [0, 1)",
         set={"experiments[0].sweep['task.sparsity'][2]": 1.5}),
    Case("unknown_train_key", expect="experiments[0].train.stepz: unknown key", set={"experiments[0].train.stepz": 3}),
    Case("type_steps", expect="experiments[0].train.steps: '100' must be an integer",
         set={"experiments[0].train.steps": "100"}),
    Case("zero_steps", expect="experiments[0].train.steps: input should be greater than 0 (got 0)",
         set={"experiments[0].train.steps": 0}),
    Case("negative_lr", expect="experiments[0].train.lr: input should be greater than 0 (got -0.001)",
         set={"experiments[0].train.lr": -0.001}),
    Case("unknown_optimizer", set={"experiments[0].train.optimizer": "lion"},
         expect="experiments[0].train.optimizer: 'lion' is not allowed; allowed: 'adam', 'adamw' or 'sgd'"),
    Case("unknown_evaluate_key", expect="experiments[0].evaluate.metric: unknown key",
         set={"experiments[0].evaluate.metric": "loss"}),
    Case("unknown_metric", set={"experiments[0].evaluate.metrics[2]": "perplexity"},
         expect="experiments[0].evaluate.metrics[2]: 'perplexity' is not a metric of task 'superposition' nor a model metric; known:"),
    Case("evaluate_no_metrics", base="probe",
         expect="experiments[0].evaluate.metrics: is empty; list metrics of task 'python_source'",
         set={"experiments[0].evaluate.metrics": []}, delete=["experiments[0].probes"]),

    # probes (base_probe.yaml: a linear probe 'p' on in_string, the claim on bits_per_char)
    Case("probe_unknown_kind", base="probe", set={"experiments[0].probes[0]": {"id": "p", "kind": "logit_lens"}},
         expect="experiments[0].probes[0].kind: 'logit_lens' is not a known probe kind; "
                "known: future_token, geometry, linear, smoothing, sparse, sparse_layers"),
    Case("probe_missing_target", base="probe", delete=["experiments[0].probes[0].target"],
         expect="experiments[0].probes[0].target: a linear probe needs a target; task 'python_source' labels: in_string"),
    Case("probe_unknown_target", base="probe", set={"experiments[0].probes[0].target": "in_docstring"},
         expect="experiments[0].probes[0].target: 'in_docstring' is not a probe label of task 'python_source'; "
                "known: in_string"),
    Case("probe_unknown_param", base="probe",
         set={"experiments[0].probes[0]": {"id": "p", "kind": "future_token", "params": {"offset": [1]}}},
         expect="experiments[0].probes[0].params: 'offset' is not a parameter of probe kind 'future_token'; "
                "allowed: offsets"),
    Case("probe_layer_too_deep", base="probe", expect="experiments[0].probes[0].layers: [3] beyond model 'tf'",
         set={"experiments[0].probes[0]": {"id": "p", "kind": "geometry", "layers": [1, 3]}}),
    Case("probe_layers_all_unknown", base="probe",
         expect="experiments[0].probes[0].layers: 'all' needs the same n_layer given in every model",
         set={"experiments[0].probes[0]": {"id": "p", "kind": "geometry"}},
         delete=["experiments[0].models[1].n_layer"]),
    Case("probe_layer_unfixed", base="probe", expect="claims[0].measure.at: must fix axis 'probe.layer'",
         set={"claims[0].measure.metric": "p.score"}),
    Case("probe_layer_not_probed", base="probe",
         expect="claims[0].measure.at.probe.layer: 3 is not a value of this axis; values: [1, 2]",
         set={"claims[0].measure.metric": "p.score", "claims[0].measure.at": {"probe.layer": 3}}),
    Case("probe_metric_unknown", base="probe",
         expect="claims[0].measure.metric: 'p.accuracy' is not evaluated in experiment 'exp'",
         set={"claims[0].measure.metric": "p.accuracy", "claims[0].measure.at": {"probe.layer": 1}}),

    # scales
    Case("scale_unknown_name", expect="scales.tiny: 'tiny' is not allowed; allowed: 'smoke', 'small' or 'full'",
         set={"scales.tiny": {"seeds": 1}}),
    Case("scale_unknown_path", expect="scales.smoke.train.stepz: 'stepz' is not a train key; allowed:",
         set={"scales.smoke": {"train.stepz": 5}}),
    Case("scale_unknown_axis", set={"scales.smoke": {"sweep": {"task.length": [5]}}},
         expect="scales.smoke.sweep.task.length: not an axis of the experiment's sweep; axes: task.sparsity"),
    Case("scale_bad_value", expect="scales.smoke gives experiments[0].train.steps: input should be greater than 0 (got -5)",
         set={"scales.smoke['train.steps']": -5}),

    # claims (base.yaml: 0 value 'dense', 1 ordering, 2 trend, 3 threshold)
    Case("id_space", expect="claims[0].id: 'my claim' is not a valid id", set={"claims[0].id": "my claim"}),
    Case("duplicate_claim_id", expect="claims[1].id: duplicate claim id 'dense'", set={"claims[1].id": "dense"}),
    Case("missing_claim_kind", delete=["claims[0].kind"],
         expect="claims[0].kind: is required; one of: value, threshold, ordering, trend, ratio"),
    Case("unknown_claim_kind", set={"claims[0].kind": "correlation"},
         expect="claims[0].kind: 'correlation' is not a known claim kind; known: value, threshold, ordering, trend, ratio"),
    Case("unknown_claim_key", set={"claims[2].directon": "up"},
         expect="claims[2].directon: unknown key; allowed here: id, text, source, measure, note, requires, "
                "no_control, ours, our_bound, only_at, kind, along, direction"),
    Case("unknown_measure_key", expect="claims[0].measure.point: unknown key", set={"claims[0].measure.point": 1}),
    Case("claim_missing_experiment", set={"claims[0].measure.experiment": "exp2"},
         expect="claims[0].measure.experiment: 'exp2' is not an experiment of this paper; known: exp"),
    Case("claim_missing_model", set={"claims[0].measure.model": "gelu"},
         expect="claims[0].measure.model: 'gelu' is not a model of experiment 'exp'; models: relu, linear"),
    Case("claim_missing_metric", set={"claims[0].measure.metric": "accuracy"},
         expect="claims[0].measure.metric: 'accuracy' is not evaluated in experiment 'exp'"),
    Case("claim_missing_axis", set={"claims[0].measure.at['task.length']": 5},
         expect="claims[0].measure.at.task.length: not an axis of the experiment; axes: task.sparsity"),
    Case("claim_missing_sweep_value", set={"claims[0].measure.at['task.sparsity']": 0.5},
         expect="claims[0].measure.at.task.sparsity: 0.5 is not a value of this axis; values: [0.0, 0.9]"),
    Case("claim_unfixed_axis", set={"claims[0].measure.at": {}},
         expect="claims[0].measure.at: must fix axis 'task.sparsity', which has several values: [0.0, 0.9]"),
    Case("type_paper_value", expect="claims[0].paper: 'two' must be a number", set={"claims[0].paper": "two"}),
    Case("nan_paper_value", expect="claims[0].paper: nan is not a finite number", set={"claims[0].paper": float("nan")}),
    Case("negative_tolerance", expect="claims[0].tolerance: input should be greater than or equal to 0 (got -1)",
         set={"claims[0].tolerance": -1}),
    Case("ordering_missing_model", expect="claims[1].order[1]: 'tanh' is not a model of experiment 'exp'",
         set={"claims[1].order[1]": "tanh"}),
    Case("trend_missing_axis", set={"claims[2].along": "task.length"},
         expect="claims[2].along: 'task.length' is not an axis of experiment 'exp'; axes: task.sparsity"),
    Case("unknown_op", expect="claims[3].op: '=>' is not allowed; allowed: '>=', '>', '<=' or '<'",
         set={"claims[3].op": "=>"}),
    Case("inf_threshold", expect="claims[3].value: inf is not a finite number", set={"claims[3].value": float("inf")}),

    # tables
    Case("id_uppercase", expect="tables[0].id: 'Table1' is not a valid id", set={"tables[0].id": "Table1"}),
    Case("duplicate_table_id", expect="tables[1].id: duplicate table id 't'", copy={"tables[1]": "tables[0]"}),
    Case("unknown_table_key", expect="tables[0].colour: unknown key", set={"tables[0].colour": "red"}),
    Case("table_missing_experiment", expect="tables[0].experiment: 'exp2' is not an experiment of this paper",
         set={"tables[0].experiment": "exp2"}),
    Case("table_missing_axis", set={"tables[0].columns": "task.length"},
         expect="tables[0].columns: 'task.length' is not 'model' or an axis of experiment 'exp'"),
    Case("table_missing_column_value", set={"tables[0].paper.relu": {0.5: 1.0}},
         expect="tables[0].paper.relu.0.5: not a column of the table; columns: [0.0, 0.9]"),

    # config.yaml (patched from an empty config)
    Case("config_unknown_key", kind="config", set={"sclae": "smoke"},
         expect="config: sclae: unknown key; allowed: scale, papers, device, tracking_uri, tracking_ui, max_jobs"),
    Case("config_unknown_scale", kind="config", set={"scale": "huge"},
         expect="config: scale: 'huge' is not valid; allowed: smoke, small, full"),
    Case("config_unknown_paper", kind="config", set={"papers": ["no_such_paper"]},
         expect="config: papers: 'no_such_paper' not in catalogue/; known:"),
    Case("config_bad_device", kind="config", set={"device": "tpu"},
         expect="config: device: 'tpu' is not valid; allowed: auto, cpu, cuda"),
    Case("config_bad_max_jobs", kind="config", set={"max_jobs": 0}, expect="config: max_jobs: 0 is not valid"),
]
