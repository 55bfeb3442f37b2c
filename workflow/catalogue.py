"""Load, validate and expand catalogue entries.

    load_paper(path)              -> LoadedPaper (or CatalogueError naming file, key path, fix)
    LoadedPaper.experiment(id, scale) -> the experiment with the scale's overrides applied
    LoadedPaper.jobs(scale)       -> one Job per (experiment, model, sweep point, seed)

CLI:  python -m workflow.catalogue check [FILES]    validate and print a summary
      python -m workflow.catalogue schema           print the JSON Schema of the format
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
import sys
import typing
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from . import schema as S

MAX_FILE_BYTES = 1_000_000
MAX_ALIASES = 100
MAX_NODES = 200_000      # values in the file once aliases are expanded
CATALOGUE_DIR = Path("catalogue")  # relative to the working directory, like every Snakemake path


class CatalogueError(Exception):
    """One or more problems in catalogue files; str() is the message for the user."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


# --------------------------------------------------------------------------- YAML

def _no_duplicate_keys(loader, node) -> None:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            continue
        if key in seen:
            raise yaml.YAMLError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1}); keep one of them")
        seen.add(key)


class _Loader(yaml.SafeLoader):
    """Safe loading, plus: duplicate keys are errors, and aliases are capped (alias bombs)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                event = self.peek_event()
                raise yaml.YAMLError(
                    f"more than {MAX_ALIASES} YAML aliases (line {event.start_mark.line + 1}); "
                    "write the values out instead of using anchors and aliases this much"
                )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        _no_duplicate_keys(self, node)
        return super().construct_mapping(node, deep)


if yaml.__with_libyaml__:
    class _FastLoader(yaml.CSafeLoader):
        """libyaml's parser (about 9x faster; every Snakemake start, and on a cluster every job,
        parses the whole catalogue) with the same duplicate-key rule and alias cap. Any problem
        sends the text to `_Loader`, whose messages name the line; a clean file gives the same data."""

        def construct_mapping(self, node, deep=False):
            _no_duplicate_keys(self, node)
            return super().construct_mapping(node, deep)

        def get_single_data(self):
            node = self.get_single_node()
            if node is None:
                return None
            # libyaml hands an alias back as the anchored node itself: count the repeat visits
            seen, stack, aliases = {id(node)}, [node], 0
            while stack:
                n = stack.pop()
                if isinstance(n, yaml.SequenceNode):
                    children = n.value
                elif isinstance(n, yaml.MappingNode):
                    children = [c for kv in n.value for c in kv]
                else:
                    continue
                for c in children:
                    if id(c) in seen:
                        aliases += 1
                        if aliases > MAX_ALIASES:
                            raise yaml.YAMLError("too many aliases")
                    else:
                        seen.add(id(c))
                        stack.append(c)
            return self.construct_document(node)
else:  # PyYAML built without libyaml
    _FastLoader = None


def _parse(text: str) -> Any:
    if _FastLoader is not None:
        try:
            return yaml.load(text, Loader=_FastLoader)  # noqa: S506 - a CSafeLoader
        except yaml.YAMLError:
            pass  # the pure-Python loader below says what and where
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def _expanded_size(obj: Any, memo: dict) -> int:
    """How many values `obj` holds with every alias expanded (memoized: no expansion happens)."""
    key = id(obj)
    if key in memo:
        return memo[key]
    memo[key] = 1
    if isinstance(obj, dict):
        n = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in obj.items())
    elif isinstance(obj, list):
        n = 1 + sum(_expanded_size(v, memo) for v in obj)
    else:
        n = 1
    memo[key] = n
    return n


def short(value: Any, limit: int = 80) -> str:
    """repr() of a value for a message, cut to `limit` characters."""
    r = repr(value)
    return r if len(r) <= limit else r[: limit - 5] + "...'" if r.startswith("'") else r[: limit - 3] + "..."


def read_yaml(path: Path) -> Any:
    """Parse a YAML file safely; problems become a CatalogueError naming the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CatalogueError([f"{path}: no such file"]) from None
    except OSError as e:
        raise CatalogueError([f"{path}: cannot read: {e.strerror}"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise CatalogueError([f"{path}: file is {len(raw)} bytes, more than the {MAX_FILE_BYTES} allowed"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CatalogueError([f"{path}: not UTF-8 text (byte {e.start}); save the file as UTF-8"]) from None
    try:
        data = _parse(text)
    except yaml.constructor.ConstructorError as e:
        where = f" (line {e.problem_mark.line + 1})" if e.problem_mark else ""
        raise CatalogueError([f"{path}: {e.problem}{where}; only plain YAML data is allowed (no tags such as !!python/...)"]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            msg = f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {e.problem}"
        else:
            msg = str(e)
        raise CatalogueError([f"{path}: {msg}"]) from None
    if _expanded_size(data, {}) > MAX_NODES:
        raise CatalogueError([f"{path}: the file expands to more than {MAX_NODES} values once its YAML aliases are "
                              "expanded (an alias bomb?); write the values out instead"])
    return data


# ------------------------------------------------------------------ error paths

def fmt_path(loc: tuple | list) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _clean_loc(loc: tuple) -> tuple:
    """Drop pydantic's union-tag and type-name components from an error location."""
    out = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and i > 0 and isinstance(loc[i - 1], int) and part in S.CLAIM_KINDS and out[:1] == ["claims"]:
            continue
        if isinstance(part, str) and ("[" in part or part in ("bool", "int", "float", "str", "function-after")):
            continue
        out.append(part)
    return tuple(out)


def _model_at(cls: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class at `loc` (for listing allowed keys)."""
    tp: Any = cls
    for part in loc:
        while True:
            origin = typing.get_origin(tp)
            if origin is typing.Annotated:
                tp = typing.get_args(tp)[0]
            elif origin is typing.Union:
                args = [a for a in typing.get_args(tp) if a is not type(None)]
                if isinstance(part, str) and all(isinstance(a, type) and issubclass(a, BaseModel) for a in args):
                    match = [a for a in args if part in a.model_fields]
                    tp = match[0] if match else args[0]
                else:
                    tp = args[0]
            else:
                break
        if isinstance(part, int):
            tp = typing.get_args(tp)[0] if typing.get_args(tp) else tp
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            if part not in tp.model_fields:
                return None
            tp = tp.model_fields[part].annotation
        else:
            args = typing.get_args(tp)
            tp = args[-1] if args else tp
    while typing.get_origin(tp) in (typing.Annotated, typing.Union):
        tp = [a for a in typing.get_args(tp) if a is not type(None)][0]
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


class _Short:
    """A value that formats with !r as a shortened repr."""

    def __init__(self, v):
        self.v = v

    def __repr__(self):
        return short(self.v)


def _claim_class(data: Any, loc: tuple) -> type[BaseModel] | None:
    """The claim model of claims[i] from its kind, so unknown-key messages list the right keys."""
    if len(loc) == 2 and loc[0] == "claims" and isinstance(loc[1], int):
        try:
            kind = data["claims"][loc[1]]["kind"]
        except (KeyError, IndexError, TypeError):
            return None
        return {"value": S.ValueClaim, "threshold": S.ThresholdClaim, "ordering": S.OrderingClaim,
                "trend": S.TrendClaim, "ratio": S.RatioClaim}.get(kind) if isinstance(kind, str) else None
    return None


def _pydantic_problems(path: Path, err: ValidationError, data: Any) -> list[str]:
    problems = []
    for e in err.errors():
        loc = _clean_loc(e["loc"])
        kind = e["type"]
        value = e.get("input")
        if isinstance(value, (str, list, dict)):
            value = _Short(value)
        if kind == "extra_forbidden":
            parent = _claim_class(data, loc[:-1]) or _model_at(S.Paper, loc[:-1])
            allowed = ", ".join(parent.model_fields) if parent else "see docs/catalogue.md"
            msg = f"unknown key; allowed here: {allowed}"
        elif kind == "missing":
            msg = "is required"
        elif kind == "union_tag_invalid":
            loc = loc + ("kind",)
            msg = f"{e['ctx']['tag']!r} is not a known claim kind; known: {', '.join(S.CLAIM_KINDS)}"
        elif kind == "union_tag_not_found":
            loc = loc + ("kind",)
            msg = f"is required; one of: {', '.join(S.CLAIM_KINDS)}"
        elif kind == "string_pattern_mismatch" and loc and loc[-1] in ("id",) or (
            kind == "string_pattern_mismatch" and S.ID_PATTERN in str(e.get("ctx", {}).get("pattern"))
        ):
            msg = f"{value!r} is not a valid id; use lowercase letters, digits and underscores (e.g. 'my_model_2')"
        elif kind == "string_pattern_mismatch":
            msg = f"{value!r} is not allowed here; expected a string matching {e['ctx']['pattern']}"
        elif kind == "finite_number":
            msg = f"{value!r} is not a finite number"
        elif kind in ("float_type", "int_type", "bool_type", "string_type", "dict_type", "list_type", "model_type"):
            want = {"float_type": "a number", "int_type": "an integer", "bool_type": "true or false",
                    "string_type": "a string", "dict_type": "a mapping", "list_type": "a list",
                    "model_type": "a mapping"}[kind]
            msg = f"{value!r} must be {want}"
        elif kind == "value_error":
            msg = str(e["msg"]).removeprefix("Value error, ")
        elif kind == "literal_error":
            msg = f"{value!r} is not allowed; allowed: {e['ctx']['expected']}"
        else:
            msg = e["msg"][0].lower() + e["msg"][1:]
            if value is not None and not isinstance(value, (dict, list)):
                msg += f" (got {value!r})"
        problems.append(f"{path}: {fmt_path(loc)}: {msg}")
    # a discriminated union reports every member's failure; keep each message once
    return list(dict.fromkeys(problems))


# ------------------------------------------------------------ semantic checks

def _values_equal(a: Any, b: Any) -> bool:
    # a table's paper values may be keyed by "0.9" (quoted, or from JSON) for the axis value 0.9
    if isinstance(a, str) and isinstance(b, (int, float)) and not isinstance(b, bool):
        a, b = b, a
    if isinstance(b, str) and isinstance(a, (int, float)) and not isinstance(a, bool):
        try:
            b = float(b)
        except ValueError:
            return False
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def find_value(values: list, v: Any) -> Any | None:
    """The member of `values` equal to `v` (numbers compared as floats), or None."""
    for x in values:
        if _values_equal(x, v):
            return x
    return None


@dataclass
class Axes:
    """The axes of an experiment at one scale: train sweep keys, eval sweep keys, and the probe
    axes of each probe metric ("<probe id>.<stat>" -> {"probe.layer": [...], ...})."""

    train: dict[str, list]
    evaluate: dict[str, list]
    probe: dict[str, dict[str, list]] = field(default_factory=dict)

    @property
    def all(self) -> dict[str, list]:
        """Train and evaluation axes: those of the task's metrics."""
        return {**self.train, **self.evaluate}

    def for_metric(self, metric: str | None) -> dict[str, list]:
        """The axes a value of `metric` is addressed on: a probe metric has the train axes and
        its probe's axes; a task metric the train and evaluation axes."""
        if metric in self.probe:
            return {**self.train, **self.probe[metric]}
        return self.all

    @property
    def metrics(self) -> list[str]:
        return list(self.probe)


def probe_layers(exp: S.Experiment, probe: S.ProbeSpec) -> list[int] | None:
    """The probe's layers: its list, or 1 .. n_layer when every model gives the same n_layer."""
    if probe.layers != "all":
        return list(probe.layers)
    ns = {m.params.get("n_layer") for m in exp.models}
    if len(ns) != 1 or None in ns or not isinstance(next(iter(ns)), int):
        return None
    return list(range(1, next(iter(ns)) + 1))


def probe_metrics(exp: S.Experiment) -> dict[str, dict[str, list]]:
    """Every probe metric of the experiment with its probe axes ({} for unknown kinds)."""
    from modules.probes.kinds import KINDS, axis_values

    out: dict[str, dict[str, list]] = {}
    for p in exp.probes:
        if p.kind not in KINDS:
            continue
        layers = probe_layers(exp, p) or []
        try:
            axes = axis_values(p.kind, p.params, layers)
        except KeyError:
            axes = {}
        for stat, dims in KINDS[p.kind].metrics.items():
            out[f"{p.id}.{stat}"] = {f"probe.{d}": axes.get(f"probe.{d}", []) for d in dims}
    return out


def axes_of(exp: S.Experiment) -> Axes:
    """The axes claims and tables address: a `select_best` axis is resolved per seed, not addressed."""
    hidden = set(exp.select_best.over) if exp.select_best else set()
    return Axes(train={k: v for k, v in exp.sweep.items() if k not in hidden}, evaluate=dict(exp.evaluate.sweep),
                probe=probe_metrics(exp))


def _check_select(exp: S.Experiment, where: str, problems: list[str]) -> None:
    """select_best names axes of the training sweep and a metric the experiment evaluates."""
    sel = exp.select_best
    if sel is None:
        return
    for j, key in enumerate(sel.over):
        if key not in exp.sweep:
            problems.append(f"{where}.select_best.over[{j}]: {key!r} is not an axis of the experiment's sweep; "
                            f"sweep axes: {', '.join(exp.sweep) or 'none'}")
    if sel.by not in exp.evaluate.metrics:
        problems.append(f"{where}.select_best.by: {sel.by!r} is not an evaluate metric of the experiment; "
                        f"its metrics: {', '.join(exp.evaluate.metrics) or 'none'}")
    elif _REGISTRY_CHECKS[0]:
        fact = metric_fact(exp, sel.by)
        if fact is not None and fact["better"] == "none":
            problems.append(f"{where}.select_best.by: {sel.by!r} has no better side, so no point of a sweep is "
                            f"its best; choose a metric such as an accuracy or a loss")


def metrics_of(exp: S.Experiment) -> list[str]:
    """The metrics a claim or table can address: the evaluated ones and every probe metric."""
    return [*exp.evaluate.metrics, *probe_metrics(exp)]


def probe_config(exp: S.Experiment) -> dict:
    """What a probe job needs beyond its trained model: changing it never retrains."""
    probes = [{"id": p.id, "kind": p.kind, "target": p.target, "layers": probe_layers(exp, p) or [],
               "positions": p.positions, "params": dict(p.params)} for p in exp.probes]
    return {"probes": probes, "layers": sorted({l for p in probes for l in p["layers"]})}


_REGISTRY_CHECKS = [True]   # off only inside load_paper(registry_checks=False)


def _check_experiment(exp: S.Experiment, where: str, problems: list[str]) -> None:
    """Registry checks: task name and params, archs and their hyperparameters, sweeps, metrics."""
    if not _REGISTRY_CHECKS[0]:
        return
    from modules.config import ConfigError
    from modules.models import arch_names, build_config_for
    from modules.tasks import build_task, get_task_class, task_names

    try:
        task_cls = get_task_class(exp.task.name)
    except KeyError:
        problems.append(f"{where}.task.name: {exp.task.name!r} is not a known task; known: {', '.join(task_names())}")
        return
    try:
        task = build_task(exp.task.name, exp.task.params)
    except ConfigError as e:
        problems.append(f"{where}.task.{e.key}: {e.message}" if e.key else f"{where}.task: {e.message}")
        return
    for i, m in enumerate(exp.evaluate.metrics):
        if m not in task_cls.metrics:
            problems.append(
                f"{where}.evaluate.metrics[{i}]: {m!r} is not a metric of task {exp.task.name!r}; known: {', '.join(task_cls.metrics)}"
            )
    if not exp.evaluate.metrics and not exp.probes:
        problems.append(f"{where}.evaluate.metrics: is empty; list metrics of task {exp.task.name!r} "
                        f"({', '.join(task_cls.metrics)}); only an experiment with probes may leave it empty")
    if len(set(exp.evaluate.metrics)) != len(exp.evaluate.metrics):
        problems.append(f"{where}.evaluate.metrics: lists a metric twice")
    seen = set()
    for i, m in enumerate(exp.models):
        if m.id in seen:
            problems.append(f"{where}.models[{i}].id: duplicate model id {m.id!r}; model ids must be unique in an experiment")
        seen.add(m.id)
        if m.arch not in arch_names():
            problems.append(f"{where}.models[{i}].arch: {m.arch!r} is not a known architecture; known: {', '.join(arch_names())}")
            continue
        try:
            build_config_for(m.arch, m.params, task.spec())
        except ConfigError as e:
            problems.append(f"{where}.models[{i}].{e.key}: {e.message}")
    # every sweep value must give a valid job
    for key, values in exp.sweep.items():
        section, name = key.split(".", 1)
        for v in values:
            try:
                if section == "task":
                    params = {**exp.task.params, name: v}
                    build_task(exp.task.name, params)
                elif section == "model":
                    for m in exp.models:
                        if m.arch in arch_names():
                            build_config_for(m.arch, {**m.params, name: v}, task.spec())
                else:
                    S.TrainSpec.model_validate({**exp.train.model_dump(), name: v})
            except ConfigError as e:
                problems.append(f"{where}.sweep.{key}: {v!r}: {e.message}")
                break
            except ValidationError as e:
                msg = e.errors()[0]["msg"]
                if e.errors()[0]["type"] == "extra_forbidden":
                    msg = f"unknown train key; allowed: {', '.join(S.TrainSpec.model_fields)}"
                problems.append(f"{where}.sweep.{key}: {v!r}: {msg}")
                break
        if any(find_value(values[:j], v) is not None for j, v in enumerate(values)):
            problems.append(f"{where}.sweep.{key}: lists a value twice ({values})")
    for key, values in exp.evaluate.sweep.items():
        name = key.split(".", 1)[1]
        if name not in task_cls.eval_axes:
            problems.append(
                f"{where}.evaluate.sweep.{key}: task {exp.task.name!r} cannot vary {name!r} at evaluation; "
                f"evaluation axes: {', '.join('task.' + a for a in task_cls.eval_axes) or 'none'}"
            )
            continue
        if key in exp.sweep:
            problems.append(f"{where}.evaluate.sweep.{key}: already a training sweep axis; use one or the other")
        for v in values:
            try:
                build_task(exp.task.name, {**exp.task.params, name: v})
            except ConfigError as e:
                problems.append(f"{where}.evaluate.sweep.{key}: {v!r}: {e.message}")
                break
    _check_probes(exp, task, task_cls, where, problems)


def _check_probes(exp: S.Experiment, task, task_cls, where: str, problems: list[str]) -> None:
    from modules.models import arch_names, build_config_for
    from modules.probes.kinds import KINDS, kind_names, resolve_params

    ids = set()
    for i, p in enumerate(exp.probes):
        at = f"{where}.probes[{i}]"
        if p.id in ids:
            problems.append(f"{at}.id: duplicate probe id {p.id!r}")
        ids.add(p.id)
        if p.kind not in KINDS:
            problems.append(f"{at}.kind: {p.kind!r} is not a known probe kind; known: {', '.join(kind_names())}")
            continue
        kind = KINDS[p.kind]
        labels = getattr(task_cls, "probe_labels", {})
        if kind.needs_target and p.target is None:
            problems.append(f"{at}.target: a {p.kind} probe needs a target; task {exp.task.name!r} labels: "
                            f"{', '.join(labels) or 'none'}")
        elif p.target is not None and not kind.needs_target:
            problems.append(f"{at}.target: a {p.kind} probe takes no target; remove it")
        elif p.target is not None and p.target not in labels:
            problems.append(f"{at}.target: {p.target!r} is not a probe label of task {exp.task.name!r}; "
                            f"known: {', '.join(labels) or 'none'}")
        try:
            resolve_params(p.kind, p.params)
        except KeyError as e:
            problems.append(f"{at}.params: {e.args[0]}")
        if probe_layers(exp, p) is None:
            problems.append(f"{at}.layers: 'all' needs the same n_layer given in every model of the experiment; "
                            "give n_layer in each model, or list the layers, e.g. layers: [1, 2]")
            continue
        for m in exp.models:
            if m.arch not in arch_names():
                continue
            try:
                n = getattr(build_config_for(m.arch, m.params, task.spec()), "n_layer", None)
            except Exception:  # noqa: BLE001 - reported by the model checks
                continue
            bad = [l for l in probe_layers(exp, p) if n is not None and l > n]
            if bad:
                problems.append(f"{at}.layers: {bad} beyond model {m.id!r}'s {n} layers (layers are 1 .. n_layer)")
                break


def _check_at(at: dict, every: dict[str, list], free: set[str], where: str, problems: list[str]) -> None:
    for key, v in at.items():
        if key not in every:
            problems.append(f"{where}.at.{key}: not an axis of the experiment; axes: {', '.join(every) or 'none'}")
        elif key in free:
            problems.append(f"{where}.at.{key}: this axis is ranged over by the claim or table; remove it from at")
        elif find_value(every[key], v) is None:
            problems.append(f"{where}.at.{key}: {v!r} is not a value of this axis; values: {every[key]}")
    for key, values in every.items():
        if key not in at and key not in free and len(values) > 1:
            problems.append(f"{where}.at: must fix axis {key!r}, which has several values: {values}")


def _check_references(paper: S.Paper, problems: list[str]) -> None:
    from .claims import kind_of        # claims reads results, which reads this module

    exps = {}
    for i, e in enumerate(paper.experiments):
        if e.id in exps:
            problems.append(f"experiments[{i}].id: duplicate experiment id {e.id!r}")
        exps[e.id] = e
    ids = set()
    for i, c in enumerate(paper.claims):
        where = f"claims[{i}]"
        if c.id in ids:
            problems.append(f"{where}.id: duplicate claim id {c.id!r}")
        ids.add(c.id)
        m = c.measure
        exp = exps.get(m.experiment)
        if exp is None:
            problems.append(f"{where}.measure.experiment: {m.experiment!r} is not an experiment of this paper; known: {', '.join(exps)}")
            continue
        model_ids = [x.id for x in exp.models]
        if not metrics_of(exp):
            continue  # the experiment evaluates nothing: reported at its evaluate.metrics
        if m.metric not in metrics_of(exp):
            problems.append(
                f"{where}.measure.metric: {m.metric!r} is not evaluated in experiment {exp.id!r}; "
                f"its metrics: {', '.join(metrics_of(exp))}"
            )
        kind_of(c).check(c, model_ids, where, problems)
        if m.metric not in metrics_of(exp):
            continue  # its axes are unknown: `at` cannot be checked
        ax = axes_of(exp).for_metric(m.metric)
        free = set()
        if c.kind == "trend":
            if c.along not in ax:
                problems.append(f"{where}.along: {c.along!r} is not an axis of experiment {exp.id!r}; axes: {', '.join(ax) or 'none'}")
                continue  # which axes `at` must fix depends on a valid `along`
            elif len(ax[c.along]) < 2:
                problems.append(f"{where}.along: axis {c.along!r} has one value; a trend needs at least two")
            free.add(c.along)
        _check_at(m.at, ax, free, where + ".measure", problems)
    tids = set()
    for i, t in enumerate(paper.tables):
        where = f"tables[{i}]"
        if t.id in tids:
            problems.append(f"{where}.id: duplicate table id {t.id!r}")
        tids.add(t.id)
        exp = exps.get(t.experiment)
        if exp is None:
            problems.append(f"{where}.experiment: {t.experiment!r} is not an experiment of this paper; known: {', '.join(exps)}")
            continue
        if t.metric not in metrics_of(exp):
            problems.append(f"{where}.metric: {t.metric!r} is not evaluated in experiment {exp.id!r}; its metrics: {', '.join(metrics_of(exp))}")
        ax = axes_of(exp).for_metric(t.metric)
        choices = ["model", *ax]
        bad_axes = False
        for name in ("rows", "columns"):
            v = getattr(t, name)
            if v not in choices:
                problems.append(f"{where}.{name}: {v!r} is not 'model' or an axis of experiment {exp.id!r}; choose from: {', '.join(choices)}")
                bad_axes = True
        if t.rows == t.columns:
            problems.append(f"{where}.columns: same as rows ({t.rows!r}); choose two different axes")
            bad_axes = True
        if bad_axes:
            continue  # `at` and the paper values are read along rows and columns
        _check_at(t.at, ax, {t.rows, t.columns}, where, problems)
        if t.paper and not t.source:
            problems.append(f"{where}.source: is required when paper values are given; cite the table or figure")

        def labels(axis):
            return [x.id for x in exp.models] if axis == "model" else ax.get(axis, [])

        for r, cols in t.paper.items():
            if find_value(labels(t.rows), r) is None:
                problems.append(f"{where}.paper.{r}: not a row of the table; rows: {labels(t.rows)}")
            for col in cols:
                if find_value(labels(t.columns), col) is None:
                    problems.append(f"{where}.paper.{r}.{col}: not a column of the table; columns: {labels(t.columns)}")


def metric_fact(exp: S.Experiment, metric: str) -> dict | None:
    """The facts (modules/metrics.py) of one metric of an experiment: a task metric's from its task
    class, a probe stat's ("<probe id>.<stat>") from its probe kind; None when unknown."""
    if "." in metric:
        from modules.probes.kinds import KINDS, facts_of

        pid, stat = metric.split(".", 1)
        probe = next((p for p in exp.probes if p.id == pid), None)
        if probe is None or probe.kind not in KINDS:
            return None
        return facts_of(probe.kind).get(stat)
    from modules.tasks import get_task_class

    try:
        return get_task_class(exp.task.name).facts().get(metric)
    except KeyError:
        return None


def says_worse(c, better: str) -> bool:
    """Whether a claim says that something fails, drops or is worse, given its metric's better side:
    such a claim needs a control (`requires`) or the reason it has none (`no_control`)."""
    if better == "none":
        return False
    up = better == "higher"
    if c.kind == "threshold" or c.kind == "ratio":
        return c.op in (("<", "<=") if up else (">", ">="))
    if c.kind == "trend":
        return c.direction in (("decreasing", "non_increasing") if up else ("increasing", "non_decreasing"))
    return c.kind == "ordering"          # its later models are worse


def _check_controls(paper: S.Paper, problems: list[str], worse: bool = True) -> None:
    """requires: names claims of this paper, not itself, without a cycle; a claim that something fails
    names a control or says why it has none (this needs the metrics' better sides: a registry check)."""
    ids = [c.id for c in paper.claims]
    by_id = {c.id: c for c in paper.claims}
    for i, c in enumerate(paper.claims):
        for j, rid in enumerate(c.requires):
            if rid == c.id:
                problems.append(f"claims[{i}].requires[{j}]: {rid!r} is the claim itself; a control is another claim")
            elif rid not in by_id:
                problems.append(f"claims[{i}].requires[{j}]: {rid!r} is not a claim of this paper; claims: {', '.join(ids)}")
        if c.requires and c.no_control:
            problems.append(f"claims[{i}].no_control: the claim names controls in requires; drop one of the two")
    # a cycle would leave its claims waiting on each other for ever
    state: dict[str, int] = {}

    def visit(cid: str, path: list[str]) -> None:
        state[cid] = 1
        for rid in by_id[cid].requires:
            if rid not in by_id or rid == cid:
                continue
            if state.get(rid) == 1:
                cyc = path[path.index(rid):] + [rid] if rid in path else [cid, rid]
                problems.append(f"claims[{ids.index(cid)}].requires: controls form a cycle ({' -> '.join(cyc)}); "
                                f"a control must not depend on the claim it controls")
            elif rid not in state:
                visit(rid, path + [rid])
        state[cid] = 2

    for cid in ids:
        if cid not in state:
            visit(cid, [cid])
    if not _REGISTRY_CHECKS[0] or not worse:
        return
    exps = {e.id: e for e in paper.experiments}
    for i, c in enumerate(paper.claims):
        exp = exps.get(c.measure.experiment)
        if exp is None or c.requires or c.no_control:
            continue
        fact = metric_fact(exp, c.measure.metric)
        if fact is None or not fact.get("trained", True) or not says_worse(c, fact["better"]):
            continue
        problems.append(
            f"claims[{i}] ({c.id}): says that something fails, drops or is worse ({c.measure.metric}: "
            f"{fact['better']} is better); name the control that shows the setup can succeed "
            f"(requires: [claim id], e.g. the same model learning the in-distribution task) or say why there is "
            f"none (no_control: '...')")


# ------------------------------------------------------------------ scales

OVERRIDABLE = ("seeds", "train", "task", "evaluate", "sweep", "probes")


def apply_overrides(exp: dict, overrides: dict, where: str, problems: list[str]) -> dict:
    """Apply dotted overrides to an experiment dict (as dumped), checking every path exists."""
    exp = copy.deepcopy(exp)
    for key, value in overrides.items():
        if key == "experiments":
            continue
        if key == "sweep" or key == "evaluate.sweep":
            target = exp["sweep"] if key == "sweep" else exp["evaluate"]["sweep"]
            if not isinstance(value, dict):
                problems.append(f"{where}.{key}: must be a mapping of axis -> list of values")
                continue
            for axis, values in value.items():
                if axis not in target:
                    problems.append(f"{where}.{key}.{axis}: not an axis of the experiment's {key}; axes: {', '.join(target) or 'none'}")
                else:
                    target[axis] = values
            continue
        parts = key.split(".")
        if parts[0] not in OVERRIDABLE:
            problems.append(f"{where}.{key}: cannot be overridden by a scale; overridable: {', '.join(OVERRIDABLE)}, experiments.<id>.<path>")
            continue
        if parts[0] == "seeds":
            if len(parts) != 1:
                problems.append(f"{where}.{key}: seeds has no sub-keys")
                continue
            exp["seeds"] = value
            continue
        if len(parts) != 2:
            problems.append(f"{where}.{key}: expected <section>.<key>, e.g. train.steps")
            continue
        section, name = parts
        if section == "train" and name not in S.TrainSpec.model_fields:
            problems.append(f"{where}.{key}: {name!r} is not a train key; allowed: {', '.join(S.TrainSpec.model_fields)}")
            continue
        if section == "evaluate" and name not in ("metrics",):
            problems.append(f"{where}.{key}: only evaluate.metrics and evaluate.sweep can be overridden")
            continue
        if section == "probes":
            if name != "positions":
                problems.append(f"{where}.{key}: only probes.positions can be overridden (every probe of the experiment)")
            else:
                for p in exp["probes"]:
                    p["positions"] = value
            continue
        if section == "task" and name == "name":
            problems.append(f"{where}.{key}: a scale cannot change the task")
            continue
        exp[section][name] = value
    return exp


# -------------------------------------------------------------------- jobs

def fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def point_name(point: dict[str, Any]) -> str:
    """The path-safe name of a sweep point: 'task.sparsity=0.9,model.hidden=5' or 'default'."""
    if not point:
        return "default"
    return ",".join(f"{k}={fmt_value(v)}" for k, v in point.items())


def config_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Job:
    paper: str
    scale: str
    experiment: str
    model: str
    point: dict[str, Any]
    seed: int
    config: dict[str, Any] = field(repr=False)         # the train job's resolved config
    eval_config: dict[str, Any] = field(repr=False, default_factory=dict)
    probe_config: dict[str, Any] = field(repr=False, default_factory=dict)   # {"probes": [...]} or {}

    # computed once: the Snakefile asks for them for every job, several times, while building the DAG
    @cached_property
    def point_name(self) -> str:
        return point_name(self.point)

    @property
    def key(self) -> tuple:
        return (self.scale, self.paper, self.experiment, self.model, self.point_name, self.seed)

    @cached_property
    def dir(self) -> str:
        return f"results/{self.scale}/{self.paper}/{self.experiment}/{self.model}/{self.point_name}/seed{self.seed}"


def job_config(exp: S.Experiment, model: S.ModelSpec, point: dict, seed: int) -> dict:
    """The resolved config of one train job: everything that determines its result, nothing else."""
    task = {"name": exp.task.name, **exp.task.params}
    params = dict(model.params)
    train = exp.train.model_dump()
    train.pop("min_steps", None)        # read by the judge; it does not change what training does
    if model.train is not None:         # the model's own optimization settings
        train.update(model.train.overrides())
    for key, v in point.items():
        section, name = key.split(".", 1)
        {"task": task, "model": params, "train": train}[section][name] = v
    return {"task": task, "model": {"arch": model.arch, **params}, "train": train, "seed": seed}


def eval_config(exp: S.Experiment) -> dict:
    """What an evaluate job needs beyond its trained model: changing it never retrains."""
    return {"metrics": list(exp.evaluate.metrics), "sweep": {k: list(v) for k, v in exp.evaluate.sweep.items()}}


@dataclass
class LoadedPaper:
    path: Path
    spec: S.Paper
    _resolved: dict = field(default_factory=dict, repr=False)

    @property
    def id(self) -> str:
        return self.spec.paper.id

    def experiment(self, exp_id: str, scale: str = "small") -> S.Experiment:
        return self.experiments(scale)[exp_id]

    def experiments(self, scale: str = "small") -> dict[str, S.Experiment]:
        if scale not in self._resolved:
            self._resolved[scale] = resolve_scale(self.path, self.spec, scale)
        return self._resolved[scale]

    def jobs(self, scale: str = "small") -> list[Job]:
        jobs = []
        for exp in self.experiments(scale).values():
            keys = list(exp.sweep)
            for model in exp.models:
                for combo in itertools.product(*(exp.sweep[k] for k in keys)):
                    point = dict(zip(keys, combo))
                    for seed in range(exp.seeds):
                        jobs.append(Job(self.id, scale, exp.id, model.id, point, seed,
                                        job_config(exp, model, point, seed), eval_config(exp),
                                        probe_config(exp) if exp.probes else {}))
        return jobs

    def n_jobs(self, scale: str = "small") -> int:
        n = 0
        for exp in self.experiments(scale).values():
            n += len(exp.models) * exp.seeds * math.prod(len(v) for v in exp.sweep.values())
        return n


def resolve_scale(path: Path, paper: S.Paper, scale: str) -> dict[str, S.Experiment]:
    if scale not in S.SCALES:
        raise CatalogueError([f"{path}: scale {scale!r} is not known; scales: {', '.join(S.SCALES)}"])
    overrides = dict(paper.scales.get(scale, {}))
    where = f"scales.{scale}"
    problems: list[str] = []
    per_exp = overrides.get("experiments", {})
    # experiments.<id>.<path>: value  is the same as  experiments: {<id>: {<path>: value}}
    for key in [k for k in overrides if k.startswith("experiments.")]:
        parts = key.split(".", 2)
        value = overrides.pop(key)
        if len(parts) < 3:
            problems.append(f"{path}: {where}.{key}: expected experiments.<id>.<path>, e.g. experiments.my_exp.train.steps")
            continue
        if not isinstance(per_exp, dict):
            continue
        per_exp = {**per_exp, parts[1]: {**per_exp.get(parts[1], {}), parts[2]: value}}
    exp_ids = [e.id for e in paper.experiments]
    if not isinstance(per_exp, dict):
        problems.append(f"{path}: {where}.experiments: must map experiment ids to overrides")
        per_exp = {}
    for eid in per_exp:
        if eid not in exp_ids:
            problems.append(f"{path}: {where}.experiments.{eid}: not an experiment of this paper; known: {', '.join(exp_ids)}")
    out = {}
    for i, exp in enumerate(paper.experiments):
        raw = exp.model_dump(exclude_unset=False)
        # model specs keep their hyperparameters as extra keys
        raw["models"] = [{"id": m.id, "arch": m.arch, **({"train": m.train.overrides()} if m.train else {}),
                          **m.params} for m in exp.models]
        raw["task"] = {"name": exp.task.name, **exp.task.params}
        local: list[str] = []
        raw = apply_overrides(raw, overrides, where, local)
        extra = per_exp.get(exp.id, {}) if isinstance(per_exp, dict) else {}
        if isinstance(extra, dict):
            raw = apply_overrides(raw, extra, f"{where}.experiments.{exp.id}", local)
        else:
            local.append(f"{where}.experiments.{exp.id}: must be a mapping of overrides")
        problems += [f"{path}: {p}" for p in local]
        if local:
            continue
        try:
            resolved = S.Experiment.model_validate(raw)
        except ValidationError as e:
            for p in _pydantic_problems(path, e, raw):
                problems.append(p.replace(f"{path}: ", f"{path}: {where} gives experiments[{i}].", 1))
            continue
        sem: list[str] = []
        _check_experiment(resolved, f"{where} gives experiments[{i}]", sem)
        _check_select(resolved, f"{where} gives experiments[{i}]", sem)
        problems += [f"{path}: {p}" for p in sem]
        out[exp.id] = resolved
    if problems:
        raise CatalogueError(problems)
    return out


# -------------------------------------------------------------------- load

def load_paper(path: str | Path, registry_checks: bool = True) -> LoadedPaper:
    """Load and fully validate one catalogue file, at every scale it defines.

    `registry_checks=False` skips the checks against the model and task registries (they import
    torch and build every task, seconds for some), for the per-paper job steps (judge, tracking)
    of a run whose Snakefile validated the catalogue when it started; the schema and reference
    checks still run."""
    path = Path(path)
    data = read_yaml(path)
    if data is None:
        raise CatalogueError([f"{path}: the file is empty; a catalogue entry needs paper, experiments and claims"])
    if not isinstance(data, dict):
        raise CatalogueError([f"{path}: expected a mapping with keys paper, experiments, claims, not {type(data).__name__}"])
    try:
        spec = S.Paper.model_validate(data)
    except ValidationError as e:
        raise CatalogueError(_pydantic_problems(path, e, data)) from None
    problems: list[str] = []
    if spec.paper.id != path.stem:
        problems.append(f"{path}: paper.id: {spec.paper.id!r} differs from the file name; rename the file to {spec.paper.id}.yaml or change the id")
    checks, _REGISTRY_CHECKS[0] = _REGISTRY_CHECKS[0], _REGISTRY_CHECKS[0] and registry_checks
    try:
        for i, exp in enumerate(spec.experiments):
            sem: list[str] = []
            _check_experiment(exp, f"experiments[{i}]", sem)
            _check_select(exp, f"experiments[{i}]", sem)
            problems += [f"{path}: {p}" for p in sem]
        refs: list[str] = []
        _check_references(spec, refs)
        # a claim whose references are wrong is not also asked for its control
        _check_controls(spec, refs, worse=not refs and not problems)
        problems += [f"{path}: {p}" for p in refs]
        if problems:
            raise CatalogueError(problems)
        loaded = LoadedPaper(path, spec)
        # every scale's experiments are checked as they resolve: inside the same switch, so that
        # registry_checks=False holds for them too (it did not: each per-paper step of a run
        # imported torch and built every task again to check a catalogue the run had checked)
        for scale in S.SCALES:
            loaded.experiments(scale)
    finally:
        _REGISTRY_CHECKS[0] = checks
    return loaded


def catalogue_files(directory: Path = CATALOGUE_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def _validation_key(paths: list[Path]) -> str:
    """A hash of what validation depends on: the catalogue files and the code that checks them."""
    here = Path(__file__).resolve().parent
    code = sorted((here.parent / "modules").rglob("*.py")) + [here / "catalogue.py", here / "schema.py"]
    h = hashlib.sha256()
    for f in [*sorted(paths), *code]:
        h.update(str(f).encode())
        h.update(Path(f).read_bytes())
    return h.hexdigest()


def _cached(cache: Path | None, key: str | None) -> bool:
    try:
        return cache is not None and Path(cache).read_text().strip() == key
    except OSError:
        return False


def _write_cache(cache: Path | None, key: str | None) -> None:
    if cache is None or key is None:
        return
    try:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(cache).with_name(f".{Path(cache).name}.{os.getpid()}")
        tmp.write_text(key + "\n")
        os.replace(tmp, cache)
    except OSError:
        pass


def load_catalogue(paths: list[Path] | None = None, cache: Path | None = None) -> dict[str, LoadedPaper]:
    """Load every file, collecting all problems across files before raising.

    With `cache`, a set of files that passed every check before, with the same checking code,
    skips the registry checks (they import torch: seconds per snakemake start, and per job on
    a cluster, where every job parses the Snakefile again)."""
    paths = catalogue_files() if paths is None else paths
    key = _validation_key(paths) if cache is not None else None
    if _cached(cache, key):
        return _load_all(paths, registry_checks=False)
    out = _load_all(paths)
    _write_cache(cache, key)
    return out


def _check(paths: list[Path], cache: Path | None, key: str | None) -> list[str]:
    """Every check on `paths`: the problems; the cache is written when there are none."""
    try:
        _load_all(paths)
    except CatalogueError as e:
        return e.problems
    _write_cache(cache, key)
    return []


def _answer(paths: list[Path], out: Path, cache: Path | None, key: str | None) -> None:
    """The checker's side: `_check`, then {"problems": [...]} written to `out` atomically."""
    problems = _check(paths, cache, key)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(json.dumps({"problems": problems}))
    os.replace(tmp, out)


_INTERRUPTS = (2, 15, 1)   # SIGINT, SIGTERM, SIGHUP


class PendingChecks:
    """The registry checks of a catalogue, running in a background process while the caller goes
    on with the papers: they import torch and build every task (seconds), which a Snakemake start
    then spends building its DAG instead. On Linux the process is a fork of this one, which has the
    engine imported already; elsewhere `python -m workflow.catalogue registry-check`. `problems()`
    waits for them; `stop_on_problems()` prints them and ends the process. If the checker dies
    without an answer, the checks run here."""

    def __init__(self, paths: list[Path], cache: Path | None, key: str | None, fork: bool | None = None):
        import tempfile

        self.paths, self.cache, self.key = paths, cache, key
        fd, out = tempfile.mkstemp(prefix="claimcheck-checks-", suffix=".json")
        os.close(fd)
        self._out = Path(out)
        self._problems: list[str] | None = None
        self._reported = False
        self._proc = self._pid = None
        if fork is None:
            fork = sys.platform == "linux" and hasattr(os, "fork")
        try:
            if fork:
                self._pid = self._fork()
            else:
                import subprocess

                cmd = [sys.executable, "-m", "workflow.catalogue", "registry-check", "--out", str(self._out)]
                if cache is not None and key is not None:
                    cmd += ["--cache", str(cache), "--key", key]
                self._proc = subprocess.Popen([*cmd, *map(str, paths)], stdin=subprocess.DEVNULL,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            self._proc = self._pid = None

    def _fork(self) -> int:
        pid = os.fork()
        if pid:
            return pid
        # the child: check, answer through the file, and leave without running anything of the parent's
        code = 1
        try:
            import signal

            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            sys.stdin = sys.stdout = sys.stderr = open(os.devnull, "w")
            _answer(self.paths, self._out, self.cache, self.key)
            code = 0
        finally:
            os._exit(code)

    def _wait(self) -> int | None:
        """The checker's exit: its status, minus the signal that ended it (None: unknown)."""
        if self._proc is not None:
            return self._proc.wait()
        try:
            _, status = os.waitpid(self._pid, 0)
        except ChildProcessError:
            return None
        return os.waitstatus_to_exitcode(status)

    def problems(self, ending: bool = False) -> list[str]:
        """Wait for the checks; the problems they found (empty: the catalogue is valid). `ending`:
        the process is exiting anyway, so a checker that Ctrl-C or a kill stopped is not redone here."""
        if self._problems is None:
            answer = code = None
            if self._proc is not None or self._pid is not None:
                code = self._wait()
                try:
                    answer = json.loads(self._out.read_text())["problems"]
                except (OSError, ValueError, KeyError, TypeError):
                    answer = None
            self._out.unlink(missing_ok=True)
            if answer is None and ending and code is not None and -code in _INTERRUPTS:
                return []     # Ctrl-C or a kill stopped the checker: the run ends unchecked, uncached
            if not isinstance(answer, list):   # the checker died: check here
                answer = _check(self.paths, self.cache, self.key)
            self._problems = [str(p) for p in answer]
        return self._problems

    def stop_on_problems(self, at_exit: bool = False) -> None:
        """Print the problems and end the process with status 1; nothing when there are none.
        `at_exit` for an atexit handler, where only os._exit can still set the status."""
        problems = self.problems(ending=at_exit)
        if not problems or self._reported:
            return
        self._reported = True
        from .console import print_problems

        print_problems(problems)
        if at_exit:
            import logging

            sys.stdout.flush()
            sys.stderr.flush()
            logging.shutdown()
            os._exit(1)
        sys.exit(1)


def load_catalogue_deferred(paths: list[Path] | None = None, cache: Path | None = None,
                            defer: bool = True) -> tuple[dict[str, LoadedPaper], PendingChecks | None]:
    """`load_catalogue`, with the registry checks in a background process when the cache does not
    already vouch for the files (and `defer`): the schema and reference checks run here and raise
    as before, the registry checks are a `PendingChecks` (None when nothing is pending). The
    checker starts first and checks everything, so where a quick check fails here, the error
    still lists every problem at once."""
    paths = catalogue_files() if paths is None else paths
    if not defer:
        return load_catalogue(paths, cache), None
    key = _validation_key(paths) if cache is not None else None
    if _cached(cache, key):
        return _load_all(paths, registry_checks=False), None
    pending = PendingChecks(paths, cache, key)
    try:
        return _load_all(paths, registry_checks=False), pending
    except CatalogueError as quick:
        raise CatalogueError(pending.problems() or quick.problems) from None


def _load_all(paths: list[Path], registry_checks: bool = True) -> dict[str, LoadedPaper]:
    out: dict[str, LoadedPaper] = {}
    problems: list[str] = []
    for p in paths:
        try:
            lp = load_paper(p, registry_checks)
        except CatalogueError as e:
            problems += e.problems
            continue
        if lp.id in out:
            problems.append(f"{p}: paper.id: {lp.id!r} is also the id of {out[lp.id].path}")
        out[lp.id] = lp
    if problems:
        raise CatalogueError(problems)
    return out


def json_schema() -> dict:
    sch = S.Paper.model_json_schema()
    sch["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    sch["title"] = "Catalogue entry (catalogue/<paper>.yaml)"
    return sch


# --------------------------------------------------------------------- CLI

def _main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m workflow.catalogue", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    chk = sub.add_parser("check", help="validate catalogue files and print a summary")
    chk.add_argument("files", nargs="*", type=Path, help="catalogue files (default: catalogue/*.yaml)")
    chk.add_argument("--max-jobs", type=int, default=None, help="fail when a scale expands to more jobs than this")
    sub.add_parser("schema", help="print the JSON Schema of a catalogue entry")
    reg = sub.add_parser("registry-check", help="(used by the Snakefile) check files against the model and task "
                                                "registries in the background; write the problems as JSON")
    reg.add_argument("files", nargs="+", type=Path)
    reg.add_argument("--out", type=Path, required=True, help="JSON file for {\"problems\": [...]}")
    reg.add_argument("--cache", type=Path, default=None, help="validation cache to write when the files pass")
    reg.add_argument("--key", default=None, help="the validation key the caller computed for the files")
    args = parser.parse_args(argv)
    if args.cmd == "schema":
        print(json.dumps(json_schema(), indent=2))
        return 0
    if args.cmd == "registry-check":
        _answer(args.files, args.out, args.cache, args.key)
        return 0
    from rich.console import Console
    from rich.table import Table

    from .console import print_problems

    try:
        papers = load_catalogue(args.files or None)
        if args.max_jobs is not None:
            check_job_cap(papers, list(S.SCALES), args.max_jobs)
    except CatalogueError as e:
        print_problems(e.problems)
        return 1
    table = Table(title=f"{len(papers)} catalogue entr{'y' if len(papers) == 1 else 'ies'}: valid")
    for col in ("paper", "experiments", "claims", "tables", *(f"jobs ({s})" for s in S.SCALES)):
        if col == "paper":
            table.add_column(col, no_wrap=True, min_width=max(len(p) for p in papers) if papers else 5)
        else:
            table.add_column(col, justify="right")
    for pid, lp in papers.items():
        table.add_row(pid, str(len(lp.spec.experiments)), str(len(lp.spec.claims)), str(len(lp.spec.tables)),
                      *(str(lp.n_jobs(s)) for s in S.SCALES))
    Console().print(table)
    return 0


def check_job_cap(papers: dict[str, LoadedPaper], scales: list[str], cap: int) -> None:
    for scale in scales:
        total = sum(lp.n_jobs(scale) for lp in papers.values())
        if total > cap:
            worst = max(papers.values(), key=lambda lp: lp.n_jobs(scale))
            raise CatalogueError([
                f"{worst.path}: scale {scale} expands to {total} train jobs in all ({worst.n_jobs(scale)} from this file), "
                f"more than max_jobs={cap}; shrink the sweeps or seeds, or raise max_jobs in config.yaml"
            ])


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
