"""The project's rules of the road, checked."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def py_files(folder: str):
    return sorted((ROOT / folder).rglob("*.py"))


def snake_files():
    return [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]


def test_modules_never_import_snakemake_or_mlflow():
    for f in py_files("modules"):
        text = f.read_text()
        assert not re.search(r"^\s*(import|from)\s+(snakemake|mlflow)\b", text, re.M), f


def test_no_model_imports_a_task():
    """Models and tasks meet only in the engine: a model reads shared pieces (modules/pretrained.py), not a task."""
    for f in py_files("modules/models"):
        text = f.read_text()
        assert not re.search(r"from \.\.tasks|from modules\.tasks|import modules\.tasks", text), f


def test_snakefiles_import_the_engine_only_with_from_workflow_x():
    for f in snake_files():
        for line in f.read_text().splitlines():
            s = line.strip()
            assert not re.match(r"import\s+workflow\b", s), f"{f.name}: {s}"
            if s.startswith("from workflow"):
                assert re.match(r"from workflow\.\w+ import ", s), f"{f.name}: {s}"


def test_no_lambdas_in_rules():
    for f in snake_files():
        assert "lambda" not in f.read_text(), f


def test_every_rule_has_log_and_benchmark():
    for f in snake_files():
        text = f.read_text()
        for block in re.split(r"\n(?=rule )", text):
            if not block.startswith("rule ") or "shell:" not in block:
                continue
            assert "log:" in block and "benchmark:" in block, block.splitlines()[0]


def test_every_input_function_tells_snakemake_its_signature_once():
    """rules/common.smk hands Snakemake each input function's parameters through the hook
    Snakemake reads (else it runs inspect.signature at every call: 100,000 calls at 10,000 jobs)."""
    import inspect
    from unittest import mock

    from snakemake.common import get_function_params, overwrite_function_params

    def f(wildcards):
        return ""

    params = inspect.signature(f).parameters
    overwrite_function_params(f, params)
    with mock.patch("inspect.signature", side_effect=AssertionError("inspected again")):
        assert get_function_params(f) is params
    text = (ROOT / "rules" / "common.smk").read_text()
    fixed = re.search(r"for _f in \(([^)]*)\)", text).group(1)
    for name in re.findall(r"^def ([a-z]\w*)\((?:w|wildcards)\b", text, re.M):
        assert re.search(rf"\b{name}\b", fixed), f"{name}: add it to the functions rules/common.smk fixes"


def test_config_yaml_says_what_to_reproduce_and_the_schema_defaults_how_to_run_it():
    schema = yaml.safe_load((ROOT / "schemas/config.schema.yaml").read_text())
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    run_time = {k for k, spec in schema["properties"].items() if spec.get("x-run-time")}
    assert run_time >= {"device", "forkserver", "slurm_group_steps", "checkpoint_seconds"}
    assert not run_time & set(config), "run-time settings stay out of config.yaml"
    assert set(config) == set(schema["properties"]) - run_time, "config.yaml lists every setting of what to reproduce"
    for key in run_time:
        assert "default" in schema["properties"][key], key
    assert not (ROOT / "profiles" / "default").exists(), \
        "a default workflow profile overrides the keys of every --profile (docs/running.md, Run-time settings)"


def test_snakemake_lint_is_clean():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0 and "Lints for" not in text and "good condition" in text, text[-3000:]


def test_the_rules_conda_environment_holds_the_project_s_python_and_dependencies():
    """Every rule names envs/claimcheck.yaml (for --sdm conda; conda is not reachable here, so its
    content is checked, not built): the Python pyproject.toml asks for and exactly its dependencies."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "envs/claimcheck.yaml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    assert project["requires-python"] == ">=3.11" and python == "python=3.11"
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip == project["dependencies"]
    for f in snake_files():
        for block in re.split(r"\n(?=rule )", f.read_text()):
            if block.startswith("rule ") and "shell:" in block:
                assert 'conda:\n        "../envs/claimcheck.yaml"' in block, block.splitlines()[0]


def test_the_engine_never_names_a_paper():
    ids = [yaml.safe_load(f.read_text())["paper"]["id"] for f in (ROOT / "catalogue").glob("*.yaml")]
    assert ids
    for f in [*py_files("workflow"), *py_files("modules"), *snake_files()]:
        text = f.read_text()
        for pid in ids:
            assert pid not in text, f"{f} names the paper {pid}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text()
    cmd = [line for line in ci.splitlines() if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert len(cmd) == 1, cmd
    assert cmd[0].strip() in readme


def test_results_and_reports_are_ignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    for p in ("results/", "reports/", "mlflow.db", ".snakemake/"):
        assert p in ignored


def test_no_eval_exec_or_pickle_of_catalogue_data():
    for f in [*py_files("workflow"), *py_files("modules"), *snake_files()]:
        text = f.read_text()
        assert not re.search(r"(?<![\w.])(eval|exec)\(", text), f
        assert "import pickle" not in text and "pickle.load" not in text, f
        assert "yaml.load(" not in text or "_Loader" in text, f        # safe loading only
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in m.group(1), f"{f}: {m.group(0)}"


def test_job_paths_stay_inside_results(tmp_path):
    from workflow.catalogue import load_catalogue

    base = (ROOT / "results").resolve()
    for lp in load_catalogue(sorted((ROOT / "catalogue").glob("*.yaml"))).values():
        for scale in ("smoke", "small", "full"):
            for job in lp.jobs(scale):
                assert (ROOT / job.dir).resolve().is_relative_to(base), job.dir
    # string sweep values that look like paths stay one path component
    from workflow.catalogue import point_name

    assert "/" not in point_name({"task.mode": ".."}) and point_name({"task.mode": ".."}) == "task.mode=.."


def test_readme_lists_every_arch_and_task_with_its_metrics():
    """The catalogue reference the README links to (docs/catalogue.md) lists them."""
    from modules.models import ARCHS
    from modules.tasks import TASKS, get_task_class

    readme = (ROOT / "docs" / "catalogue.md").read_text()
    for arch in ARCHS:
        assert f"`{arch}`" in readme, f"README does not list the arch {arch}"
    for name in TASKS:
        cls = get_task_class(name)
        row = next((ln for ln in readme.splitlines() if ln.startswith(f"| `{name}` |")), None)
        assert row, f"README does not list the task {name}"
        assert ", ".join(cls.metrics) in row and ", ".join(cls.eval_axes) in row, row


def test_a_claim_kind_is_one_class_and_one_model():
    """Adding a kind: its class in workflow/claims.py (checks, paper text, evidence) and its pydantic
    model in the claim union of workflow/schema.py; everything else reads them from there."""
    from workflow import schema as S
    from workflow.claims import KINDS, Kind

    assert set(KINDS) == set(S.CLAIM_MODELS)
    for name, kind in KINDS.items():
        for method in ("paper_text", "says_worse", "evidence"):
            assert getattr(type(kind), method) is not getattr(Kind, method), f"{name}: {method}"
    for f in py_files("workflow"):
        if f.name in ("claims.py", "schema.py"):
            continue
        text = f.read_text()
        for name in KINDS:
            assert not re.search(rf"\.kind\s*(==|!=)\s*['\"]{name}['\"]", text), f"{f}: tests a claim's kind by name"
