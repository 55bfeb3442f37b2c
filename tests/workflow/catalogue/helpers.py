"""The real entry the tests of workflow.catalogue start from, and the helpers that change it,
write it and read the error back.

Every bad-input test writes a small catalogue file into tmp_path, named <paper id>.yaml, made
by changing one thing in the real entry catalogue/toy_superposition.yaml; it then asserts that
load_paper raises CatalogueError and that the message names the file, the key path and the bad
value (or the allowed values). Nothing here trains a model.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import pytest
import yaml

from workflow.catalogue import CatalogueError, load_paper

ROOT = Path(__file__).resolve().parents[3]
TOY = ROOT / "catalogue" / "toy_superposition.yaml"


BASE: dict = yaml.safe_load(TOY.read_text())
PAPER = BASE["paper"]["id"]
EXP = BASE["experiments"][0]
EXP_ID = EXP["id"]
M0, M1 = EXP["models"][0]["id"], EXP["models"][1]["id"]
AXIS = next(iter(EXP["sweep"]))                      # the multi-valued training axis (task.sparsity)
AXIS_VALUES = EXP["sweep"][AXIS]
METRICS = EXP["evaluate"]["metrics"]


def _claim_index(kind: str) -> int:
    return next(i for i, c in enumerate(BASE["claims"]) if c["kind"] == kind)


I_VALUE = _claim_index("value")
I_THRESHOLD = _claim_index("threshold")
I_ORDERING = _claim_index("ordering")
I_TREND = _claim_index("trend")
I_RATIO = _claim_index("ratio")
TABLE = BASE["tables"][0]
TABLE_ROW = next(iter(TABLE["paper"]))               # a model id with paper values


def base() -> dict:
    return copy.deepcopy(BASE)


def dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def write(tmp_path: Path, data: dict | None = None, *, text: str | bytes | None = None, name: str = PAPER) -> Path:
    path = tmp_path / f"{name}.yaml"
    if text is None:
        text = dump(base() if data is None else data)
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(CatalogueError) as info:
        load_paper(path)
    msg = str(info.value)
    assert msg == "\n".join(info.value.problems)
    return msg


def assert_mentions(msg: str, path: Path, *parts: str) -> None:
    assert str(path) in msg, f"the message does not name the file {path}:\n{msg}"
    for part in parts:
        assert part in msg, f"{part!r} is not in the message:\n{msg}"


def assert_refused(tmp_path: Path, change: Callable[[dict], None], *parts: str) -> None:
    """The base entry with `change` applied is refused, with a message naming the file and `parts`."""
    d = base()
    change(d)
    path = write(tmp_path, d)
    assert_mentions(error_of(path), path, *parts)


def setv(*keys_and_value) -> Callable[[dict], None]:
    """A change that sets data[k1][k2]... = value."""
    *keys, value = keys_and_value

    def change(d: dict) -> None:
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = copy.deepcopy(value)

    return change


def delete(*keys) -> Callable[[dict], None]:
    def change(d: dict) -> None:
        for k in keys[:-1]:
            d = d[k]
        del d[keys[-1]]

    return change


def both(*changes: Callable[[dict], None]) -> Callable[[dict], None]:
    def change(d: dict) -> None:
        for c in changes:
            c(d)

    return change


def append(*keys_and_value) -> Callable[[dict], None]:
    *keys, value = keys_and_value

    def change(d: dict) -> None:
        for k in keys:
            d = d[k]
        d.append(copy.deepcopy(value))

    return change
