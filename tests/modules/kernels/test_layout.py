"""modules/kernels is one folder per op, as flash-linear-attention's fla/ops/<op>/: the reference
loop in naive.py beside the fast paths, the op's public names in its __init__.py. Ops share code
only through _common.py and native.py; the one op built on another, selective_scan (Mamba's
selective scan is the scan with input-dependent coefficients), calls scan's public package."""
from __future__ import annotations

import ast
import fnmatch
import importlib
import tomllib
from pathlib import Path

import pytest

import modules.kernels as K

ROOT = Path(__file__).resolve().parents[3]
KERNELS = ROOT / "modules" / "kernels"
OPS = sorted(p.name for p in KERNELS.iterdir() if p.is_dir() and p.name != "__pycache__")
SHARED = {"_common", "native"}            # what every op may import from modules.kernels
ALLOWED = {("selective_scan", "scan")}    # (importer, op): through the op's public package only


def test_the_ops_and_the_shared_files():
    assert OPS == ["causal_conv", "delta_rule", "fftconv", "linear_attn", "lstm", "rnn", "scan", "selective_scan", "ssd"]
    assert sorted(p.name for p in KERNELS.glob("*.py")) == ["__init__.py", "_common.py", "native.py"]


@pytest.mark.parametrize("op", OPS)
def test_every_op_has_a_reference_and_an_init_that_exports_it(op):
    assert (KERNELS / op / "__init__.py").is_file() and (KERNELS / op / "naive.py").is_file()
    pkg = importlib.import_module(f"modules.kernels.{op}")
    assert pkg.__all__ and all(callable(getattr(pkg, n)) for n in pkg.__all__)
    naive = importlib.import_module(f"modules.kernels.{op}.naive")
    refs = [n for n in pkg.__all__ if n.endswith("_ref")]
    assert refs and all(getattr(pkg, n) is getattr(naive, n) for n in refs)   # the loop lives in naive.py


def test_the_package_exports_each_ops_public_functions():
    for name in K.__all__:
        fn = getattr(K, name)
        op = fn.__module__.split(".")[2]
        assert op in OPS, (name, fn.__module__)
        assert getattr(importlib.import_module(f"modules.kernels.{op}"), fn.__name__) is fn, name


def _imports(path: Path) -> set[str]:
    """The absolute names a file imports: modules, and `module.name` for each name taken from one
    (relative imports resolved against the file's package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


@pytest.mark.parametrize("op", OPS)
def test_no_op_imports_another_ops_files(op):
    for path in sorted((KERNELS / op).rglob("*.py")):
        for name in _imports(path):
            parts = name.split(".")
            if parts[:2] != ["modules", "kernels"] or len(parts) == 2:
                continue
            target = parts[2]
            where = f"{path.relative_to(ROOT)} imports {name}"
            if target == op:
                continue
            if target in SHARED:
                assert len(parts) <= 4, where
                continue
            assert target in OPS, where
            assert (op, target) in ALLOWED, where
            public = importlib.import_module(f"modules.kernels.{target}").__all__
            assert len(parts) == 3 or (len(parts) == 4 and parts[3] in public), where  # the package, not its files


def test_selective_scan_uses_the_public_scan():
    assert "modules.kernels.scan.scan" in _imports(KERNELS / "selective_scan" / "chunk.py")


def test_the_scan_c_source_is_where_native_looks_and_is_shipped(monkeypatch):
    cpu = importlib.import_module("modules.kernels.scan.cpu")
    native = importlib.import_module("modules.kernels.native")
    asked = []
    monkeypatch.setattr(native, "library", lambda src: asked.append(Path(src)))
    assert cpu._native_fns.__wrapped__() is None          # bypass the cache: which file does it ask for?
    assert asked == [KERNELS / "scan" / "scan_cpu.c"] and asked[0].is_file()
    assert asked[0].stem == "scan_cpu"                    # the builds' name in the cache: scan_cpu-<key>.so
    # every C file under modules/kernels is package data of its folder's package
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    c_files = sorted(KERNELS.rglob("*.c"))
    assert c_files
    for c in c_files:
        pkg = ".".join(c.parent.relative_to(ROOT).parts)
        assert any(fnmatch.fnmatch(c.name, pat) for pat in data.get(pkg, [])), f"{c} is not in package-data of {pkg}"
