"""Packaging settings that nothing else exercises: cibuildwheel builds portable wheels, with
the CMake option that turns off -march=native spelled as CMakeLists.txt spells it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_cibuildwheel_builds_for_the_baseline_cpu():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    cibw = config["tool"]["cibuildwheel"]
    settings = cibw["config-settings"]
    native = [k for k in settings if k.endswith("BGLMM_NATIVE")]
    assert native and settings[native[0]] == "OFF"
    option = native[0].split(".")[-1]
    assert re.search(rf"option\({option}\b", (ROOT / "CMakeLists.txt").read_text(encoding="utf-8"))
    assert "manylinux" in cibw["build"] and cibw["test-command"]
    for path in re.findall(r"\{project\}/(\S+\.py)", cibw["test-command"]):
        assert (ROOT / path).exists(), path
