"""pydantic's validation errors as the catalogue's messages: the key path as the file writes it, the fix."""
from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .. import schema as S
from .yamlio import short


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
        return S.CLAIM_MODELS.get(kind) if isinstance(kind, str) else None
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

