"""Semantic checks of an entry: against the task, model and probe registries (when asked), the
references between claims, tables and experiments, and the controls of negative claims."""
from __future__ import annotations

from pydantic import ValidationError

from .. import schema as S
from .model import axes_of, find_value, metrics_of, probe_layers


def _check_select(exp: S.Experiment, where: str, problems: list[str], registry: bool = True) -> None:
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
    elif registry:
        fact = metric_fact(exp, sel.by)
        if fact is not None and fact["better"] == "none":
            problems.append(f"{where}.select_best.by: {sel.by!r} has no better side, so no point of a sweep is "
                            f"its best; choose a metric such as an accuracy or a loss")




def _check_experiment(exp: S.Experiment, where: str, problems: list[str], registry: bool = True) -> None:
    """Registry checks: task name and params, archs and their hyperparameters, sweeps, metrics."""
    if not registry:
        return
    from modules.config import ConfigError
    from modules.models import MODEL_METRICS, arch_names, build_config_for
    from modules.models import model_metrics as _model_metrics
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
        if m in task_cls.metrics:
            continue
        if m in MODEL_METRICS:
            without = [md.id for md in exp.models if m not in _model_metrics(md.arch)]
            if without:
                need = ("a model with a recurrent form (step)" if m == "recurrence_gap"
                        else "a model that reads sequences")
                problems.append(f"{where}.evaluate.metrics[{i}]: {m!r} needs {need}; {', '.join(without)} is not one")
            continue
        problems.append(
            f"{where}.evaluate.metrics[{i}]: {m!r} is not a metric of task {exp.task.name!r} nor a model metric; "
            f"known: {', '.join(task_cls.metrics + MODEL_METRICS)}"
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
        section, name = key.split(".", 1)
        if section == "model":
            _check_model_eval_axis(exp, key, name, values, where, problems)
            continue
        if name not in task_cls.eval_axes:
            problems.append(
                f"{where}.evaluate.sweep.{key}: task {exp.task.name!r} cannot vary {name!r} at evaluation; "
                f"evaluation axes: {', '.join('task.' + a for a in task_cls.eval_axes) or 'none'}"
            )
            continue
        if key in exp.sweep:
            problems.append(f"{where}.evaluate.sweep.{key}: already a training sweep axis; use one or the other")
    _check_task_eval_points(exp, task_cls, where, problems)
    _check_probes(exp, task, task_cls, where, problems)


def _check_task_eval_points(exp: S.Experiment, task_cls, where: str, problems: list[str]) -> None:
    """Every point of the task's evaluation axes builds a valid task: the axes together, as evaluation
    combines them (a window of positions must fit the evaluated length)."""
    import itertools

    from modules.config import ConfigError
    from modules.tasks import build_task

    axes = {k: v for k, v in exp.evaluate.sweep.items()
            if k.startswith("task.") and k[5:] in task_cls.eval_axes and k not in exp.sweep}
    keys = list(axes)
    for combo in itertools.product(*axes.values()):
        at = dict(zip(keys, combo))
        try:
            build_task(exp.task.name, {**exp.task.params, **{k[5:]: v for k, v in at.items()}})
        except ConfigError as e:
            key = f"task.{e.key}" if f"task.{e.key}" in at else next(iter(at), "")
            point = ", ".join(f"{k}={v!r}" for k, v in at.items())
            problems.append(f"{where}.evaluate.sweep.{key}: {at.get(key)!r} (at {point}): {e.message}")
            return


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


def _check_model_eval_axis(exp, key: str, name: str, values: list, where: str, problems: list[str]) -> None:
    """A model evaluation axis (modules/models MODEL_EVAL_AXES): known, offered by every model of the
    experiment, and numbers >= 0."""
    from modules.models import MODEL_EVAL_AXES, model_eval_axes

    if name not in MODEL_EVAL_AXES:
        problems.append(f"{where}.evaluate.sweep.{key}: {name!r} is not a model evaluation axis; "
                        f"known: {', '.join('model.' + a for a in MODEL_EVAL_AXES)}")
        return
    without = [m.id for m in exp.models if name not in model_eval_axes(m.arch)]
    if without:
        problems.append(f"{where}.evaluate.sweep.{key}: model(s) {', '.join(without)} cannot vary {name!r} "
                        f"at evaluation (their arch names no state matrix weights); move them to another experiment")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            problems.append(f"{where}.evaluate.sweep.{key}: {v!r} must be a number >= 0")
            break


def _check_references(paper: S.Paper, problems: list[str]) -> None:
    # a claim kind's checks live with its judgement (workflow/claims.py), which reads results, which read
    # the job model of this package: imported here, not at the top, so the package loads first
    from ..claims import kind_of

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
        free = kind_of(c).free_axes(c, ax, where, problems)
        if free is not None:
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
    from modules.models import model_metric_facts
    from modules.tasks import get_task_class

    try:
        return {**model_metric_facts(), **get_task_class(exp.task.name).facts()}.get(metric)
    except KeyError:
        return None


def says_worse(c, better: str) -> bool:
    """Whether a claim says that something fails, drops or is worse, given its metric's better side:
    such a claim needs a control (`requires`) or the reason it has none (`no_control`)."""
    from ..claims import kind_of     # (see _check_references)

    return better != "none" and kind_of(c).says_worse(c, better == "higher")


def _check_controls(paper: S.Paper, problems: list[str], worse: bool = True, registry: bool = True) -> None:
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
    if not registry or not worse:
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

