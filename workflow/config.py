"""config.yaml checks with messages a user can act on (before Snakemake's own validate)."""
from __future__ import annotations

from pathlib import Path

import yaml


def config_problems(config: dict, schema_path: str | Path = "schemas/config.schema.yaml") -> list[str]:
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    props = schema["properties"]
    problems = []
    for key in config:
        if key not in props:
            problems.append(f"config: {key}: unknown key; allowed: {', '.join(props)}")
    validator = jsonschema.Draft202012Validator(schema)
    for err in sorted(validator.iter_errors(config), key=lambda e: list(e.path)):
        if err.validator == "additionalProperties":
            continue
        key = ".".join(str(p) for p in err.path) or "(top level)"
        spec = props.get(str(err.path[0])) if err.path else None
        allowed = ""
        if spec is not None and "enum" in spec:
            allowed = f"; allowed: {', '.join(map(str, spec['enum']))}"
        elif spec is not None and "oneOf" in spec:
            allowed = "; allowed: all, a catalogue id, or a list of ids such as [paper_a, paper_b]"
        value = err.instance
        problems.append(f"config: {key}: {value!r} is not valid{allowed} (set it in config.yaml or with --config {key}=...)")
    return problems
