"""The folder tree is the architecture: imports only go down the layers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BASE = {"config", "versions", "cidr", "names", "images", "ratelimit", "inputs", "documents", "problems", "istio_protocol"}
# A layer may import the base and the layers before it in this list, never one after it.
LAYERS = ["platform", "addons", "products", "governance"]
STDLIB_ONLY = ["components/documents.py", "components/images.py", "components/names.py", "components/problems.py",
               "components/istio_protocol.py"]


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def layer_of(module: str) -> int | None:
    """-1 for the base, the layer's index, or None for a module outside components/."""
    parts = module.split(".")
    if parts[0] != "components" or len(parts) < 2:
        return None
    if parts[1] in BASE:
        return -1
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def component_modules() -> list[Path]:
    return sorted(p for p in (ROOT / "components").rglob("*.py"))


def test_every_component_module_belongs_to_a_layer():
    for path in component_modules():
        rel = path.relative_to(ROOT / "components")
        if rel.name == "__init__.py" and rel.parent == Path("."):
            continue
        top = rel.parts[0].removesuffix(".py")
        assert top in BASE or top in LAYERS, f"{path}: not in the base nor in a layer ({', '.join(LAYERS)})"


@pytest.mark.parametrize("path", component_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_go_down(path):
    rel = path.relative_to(ROOT)
    own = layer_of(".".join(rel.with_suffix("").parts))
    own = -1 if own is None else own  # components/__init__.py
    for module in imported_modules(path):
        assert not module.startswith(("tools", "policies", "tests")), f"{rel} imports {module}"
        other = layer_of(module)
        if other is not None:
            assert other <= own, f"{rel} (layer {own}) imports {module} (layer {other}), a layer above it"


def test_the_render_engine_knows_nothing_of_the_command_line_tools():
    clis = {p.stem for p in (ROOT / "tools").glob("*.py") if p.stem != "__init__"}
    for path in (ROOT / "tools" / "engine").glob("*.py"):
        for module in imported_modules(path):
            assert module.split(".")[:2] not in [["tools", c] for c in clis], f"{path.name} imports {module}"


@pytest.mark.parametrize("rel", STDLIB_ONLY)
def test_shared_helpers_use_the_standard_library_only(rel):
    for module in imported_modules(ROOT / rel):
        assert module.split(".")[0] in sys.stdlib_module_names | {"__future__"}, f"{rel} imports {module}"


def test_policy_rules_import_without_any_installed_package():
    # The pack's virtualenv has pulumi and pulumi-policy only; -S leaves site-packages off the path entirely.
    code = "import sys; sys.path.insert(0, sys.argv[1]); import policies.rules as r; print(len(r.RULES))"
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(ROOT)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0


# Sizes: a module over 400 lines or a function over 60 holds more than one concern.
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def program_modules() -> list[Path]:
    found = [*(ROOT / "components").rglob("*.py"), *(ROOT / "policies").glob("*.py"), ROOT / "__main__.py",
             *(p for p in (ROOT / "tools").rglob("*.py") if "istiod" not in p.relative_to(ROOT / "tools").parts)]
    return sorted(found)


@pytest.mark.parametrize("path", program_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name}: {len(text.splitlines())} lines"
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path.name}:{node.lineno} {node.name}: {length} lines"

