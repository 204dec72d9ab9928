"""The conda environment and the pip project install the same packages."""

from __future__ import annotations

from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _pip_section() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return {d.strip() for d in dep["pip"] if not d.startswith("-e")}
    raise AssertionError("environment.yml has no pip section")


def _pyproject() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = set(project["dependencies"])
    for extra in ("dev", "text", "sweeps"):
        deps |= set(project["optional-dependencies"][extra])
    return {d.strip() for d in deps}


def test_environment_matches_pyproject() -> None:
    assert _pip_section() == _pyproject()


def test_torch_pins() -> None:
    deps = _pyproject()
    for pin in ("torch==2.14.1", "torchvision==0.29.1", "open-clip-torch==3.3.0"):
        assert pin in deps


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci
    assert "make test" in readme and "make demo" in readme


def test_license_is_an_spdx_expression() -> None:
    """A TOML table here makes setuptools print a deprecation box on every install."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(data["project"]["license"], str)
    assert any(r.replace(" ", "").startswith("setuptools>=77") for r in data["build-system"]["requires"])
