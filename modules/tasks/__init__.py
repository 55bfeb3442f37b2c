"""Task registry. A task is a seeded data generator that declares its sizes, metrics and
evaluation axes; see `base.Task`.
"""
from __future__ import annotations

import importlib

# name -> "module:Class"; modules import lazily so listing names costs nothing.
TASKS: dict[str, str] = {
    "superposition": "modules.tasks.superposition:SuperpositionTask",
    "tabular_classification": "modules.tasks.tabular:TabularClassificationTask",
    "copy": "modules.tasks.copy:CopyTask",
    "copy_generation": "modules.tasks.copy_generation:CopyGenerationTask",
    "count": "modules.tasks.count:CountTask",
    "mode": "modules.tasks.mode:ModeTask",
    "addition": "modules.tasks.addition:AdditionTask",
    "mqar": "modules.tasks.mqar:MQARTask",
    "selective_copy": "modules.tasks.selective_copy:SelectiveCopyTask",
    "induction": "modules.tasks.induction:InductionTask",
    "parity": "modules.tasks.parity:ParityTask",
    "flip_flop": "modules.tasks.flip_flop:FlipFlopTask",
    "dyck": "modules.tasks.dyck:DyckTask",
    "reber": "modules.tasks.reber:ReberTask",
    "python_source": "modules.tasks.python_source:PythonSourceTask",
    "icl_regression": "modules.tasks.icl_regression:ICLRegressionTask",
    "wordpiece_text": "modules.tasks.wordpiece_text:WordpieceTextTask",
    "scan": "modules.tasks.scan:ScanTask",
    "adding": "modules.tasks.adding:AddingTask",
    "seq_digits": "modules.tasks.seq_digits:SeqDigitsTask",
    "sort_set": "modules.tasks.sort_set:SortSetTask",
    "kv_regression": "modules.tasks.kv_regression:KVRegressionTask",
    "linear_functional": "modules.tasks.linear_functional:LinearFunctionalTask",
    "ps_categorical": "modules.tasks.ps_categorical:PSCategoricalTask",
    "siamese_views": "modules.tasks.siamese_views:SiameseViewsTask",
    "icl_dfa": "modules.tasks.icl_dfa:ICLDFATask",
    "cpc_sequences": "modules.tasks.cpc_sequences:CPCSequencesTask",
}


def task_names() -> list[str]:
    return sorted(TASKS)


def get_task_class(name: str):
    if name not in TASKS:
        raise KeyError(f"{name!r} is not a known task; known: {', '.join(task_names())}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_task(name: str, params: dict):
    from ..config import build_config

    return build_config(get_task_class(name), params)
