"""Safe YAML reading: size, alias and node caps, duplicate keys as errors, libyaml when it is there."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import CatalogueError

MAX_FILE_BYTES = 1_000_000


MAX_ALIASES = 100


MAX_NODES = 200_000      # values in the file once aliases are expanded


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

