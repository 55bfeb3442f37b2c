"""Scales: an entry's per-scale overrides applied to its experiments, each result checked again."""
from __future__ import annotations

import copy
from pathlib import Path

from pydantic import ValidationError

from .. import schema as S
from .checks import _check_experiment, _check_select
from .errors import CatalogueError
from .messages import _pydantic_problems

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


def resolve_scale(path: Path, paper: S.Paper, scale: str, registry: bool = True) -> dict[str, S.Experiment]:
    """The experiments at `scale`: the entry's overrides applied, each result validated and checked
    (against the registries unless `registry` is False)."""
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
        _check_experiment(resolved, f"{where} gives experiments[{i}]", sem, registry)
        _check_select(resolved, f"{where} gives experiments[{i}]", sem, registry)
        problems += [f"{path}: {p}" for p in sem]
        out[exp.id] = resolved
    if problems:
        raise CatalogueError(problems)
    return out

