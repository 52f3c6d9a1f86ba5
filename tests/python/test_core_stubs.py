"""python/bglmm/_core.pyi lists every function of the compiled module with its parameters (in
order), so that type checkers and editors see the module as it is built."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import bglmm
from bglmm import _core

ROOT = Path(__file__).resolve().parents[2]
FIX = "regenerate it: python tools/core_stubs.py"


def _signatures(source: str) -> dict[str, list[str]]:
    tree = ast.parse(source)
    return {n.name: [a.arg for a in n.args.args] for n in tree.body
            if isinstance(n, ast.FunctionDef)}


def _generator():
    spec = importlib.util.spec_from_file_location("core_stubs", ROOT / "tools" / "core_stubs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stubs_match_the_compiled_module():
    stub = (ROOT / "python" / "bglmm" / "_core.pyi").read_text(encoding="utf-8")
    expected = _signatures(_generator().render(_core))
    got = _signatures(stub)
    assert set(got) == set(expected), f"_core.pyi is out of date: {FIX}"
    for name, params in expected.items():
        assert got[name] == params, f"_core.pyi: {name}{tuple(params)} changed; {FIX}"
    public = {n for n in dir(_core) if not n.startswith("_") and callable(getattr(_core, n))
              and not isinstance(getattr(_core, n), type)}
    assert set(got) == public


def test_stubs_are_installed_beside_the_module():
    installed = Path(bglmm.__file__).with_name("_core.pyi")
    assert installed.exists()
    tree = ast.parse(installed.read_text(encoding="utf-8"))
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert "NumericalError" in classes
