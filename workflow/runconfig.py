"""config.yaml checks with messages a user can act on (before Snakemake's own validate)."""
from __future__ import annotations

from pathlib import Path

import yaml


TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def config_problems(config: dict, schema_path: str | Path = "schemas/config.schema.yaml") -> list[str]:
    """Problems with the run settings, one line each. Boolean keys given as words on the command
    line (`--config forkserver=false` reaches Snakemake as the string 'false') become booleans."""
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    props = schema["properties"]
    for key, spec in props.items():
        v = config.get(key)
        boolean = spec.get("type") == "boolean" or any(o.get("type") == "boolean" for o in spec.get("oneOf", []))
        if boolean and isinstance(v, str) and v.lower() in TRUE + FALSE:
            config[key] = v.lower() in TRUE
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
        if spec is not None and spec.get("type") == "boolean":
            allowed = "; allowed: true or false"
        elif spec is not None and "enum" in spec:
            allowed = f"; allowed: {', '.join(map(str, spec['enum']))}"
        elif spec is not None and "x-allowed" in spec:       # a oneOf's values, in words
            allowed = f"; allowed: {spec['x-allowed']}"
        value = err.instance
        where = "with --config" if spec is not None and spec.get("x-run-time") else "in config.yaml or with --config"
        problems.append(f"config: {key}: {value!r} is not valid{allowed} (set it {where} {key}=...)")
    return problems


def select_papers(config: dict, known: list[str]) -> list[str]:
    """The paper ids `rule all` reproduces; CatalogueError for ids not in catalogue/."""
    from .catalogue import CatalogueError

    sel = config.get("papers", "all")
    if isinstance(sel, str) and sel != "all":
        sel = [sel]
    if sel == "all":
        return sorted(known)
    unknown = [p for p in sel if p not in known]
    if unknown:
        raise CatalogueError([
            f"config: papers: {', '.join(map(repr, unknown))} not in catalogue/; known: {', '.join(sorted(known)) or 'none'}"
        ])
    return list(sel)


def main(argv: list[str] | None = None) -> int:
    """python -m workflow.runconfig check [config.yaml]: the checks the Snakefile runs first."""
    import argparse
    import sys

    from .catalogue import CatalogueError, catalogue_files
    from .console import print_problems

    p = argparse.ArgumentParser(prog="python -m workflow.runconfig")
    p.add_argument("cmd", choices=["check"])
    p.add_argument("file", nargs="?", default="config.yaml", type=Path)
    args = p.parse_args(argv)
    try:
        config = yaml.safe_load(args.file.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        print_problems([f"{args.file}: cannot read: {e}".splitlines()[0]], what="config")
        return 1
    if not isinstance(config, dict):
        print_problems([f"{args.file}: expected a mapping of settings"], what="config")
        return 1
    problems = config_problems(config)
    if not problems:
        try:
            select_papers(config, [f.stem for f in catalogue_files()])
        except CatalogueError as e:
            problems = e.problems
    if problems:
        print_problems([pr.replace("config:", f"{args.file}:", 1) for pr in problems], what="config")
        return 1
    print(f"{args.file}: valid", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
