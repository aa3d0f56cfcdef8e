"""Shared fixtures: the real program run under Pulumi mocks, once per stack.

``run_program`` sets the mocks before it executes ``__main__.py`` and runs
with ``preview=False``, so every apply runs; tests assert on the recorded
registrations themselves, never inside an apply.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.engine.mockrun import Registration, RunResult  # noqa: E402
from tools.engine.render import render_stack  # noqa: E402


def copy_program(project: Path) -> Path:
    """A copy of what a stack and its declarations live in (the program, project and dev stack files, products/)
    at ``project``, so a test can edit them; components are still imported from the repository."""
    project.mkdir(parents=True)
    for name in ("__main__.py", "Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "products", project / "products")
    return project


def stack_file(stack: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())


def write_stack(tmp_path: Path, overrides: dict[str, Any], base: str = "dev", drop: tuple[str, ...] = ()) -> Path:
    """A stack file: ``base``'s config with ``overrides`` set and ``drop`` removed."""
    doc = stack_file(base)
    for key in drop:
        doc["config"].pop(key)
    doc["config"].update(overrides)
    path = tmp_path / f"Pulumi.{base}-variant.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def render_variant(tmp_path: Path, overrides: dict[str, Any], base: str = "dev", drop: tuple[str, ...] = ()) -> RunResult:
    return render_stack(base, write_stack(tmp_path, overrides, base, drop))


@pytest.fixture(scope="session")
def dev() -> RunResult:
    return render_stack("dev")


@pytest.fixture(scope="session")
def prod() -> RunResult:
    return render_stack("prod")


def closure(result: RunResult, urn: str) -> set[str]:
    """Every URN ``urn`` waits for on `pulumi up`: dependencies and providers, transitively.

    The engine creates a resource after its dependencies and its provider, and
    deletes it before them, so this set is also what outlives it on destroy.
    """
    by_urn = result.by_urn()
    seen: set[str] = set()
    todo = [urn]
    while todo:
        reg = by_urn[todo.pop()]
        edges = list(reg.dependencies)
        if reg.provider:
            edges.append(reg.provider.rsplit("::", 1)[0])  # a provider reference is URN::ID
        for dep in edges:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def waits_for(result: RunResult, later: Registration, earlier: Registration) -> bool:
    return earlier.urn in closure(result, later.urn)
