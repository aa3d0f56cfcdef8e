"""Shared fixtures: the real program run under Pulumi mocks, once per stack.

``run_program`` sets the mocks before it executes ``__main__.py`` and runs
with ``preview=False``, so every apply runs; tests assert on the recorded
registrations themselves, never inside an apply.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.inputs import TRUSTED_YAML_LOADER  # noqa: E402
from tools.engine.mockrun import Registration, RunResult  # noqa: E402
from tools.engine.render import render_stack, write_render  # noqa: E402

# --- the demo: the article's three products and their two consumers --------------------------
# Tests that assert on those products by name render this stack, not Pulumi.dev.yaml, so the
# suite holds whatever products dev selects. It is dev's stack file with every key that names
# products replaced; the declarations are the shared ones in products/.
DEMO = "demo"
DEMO_PRODUCTS = ("customer-features", "revenue-predictor", "customer-revenue")
DEMO_NAMESPACES = {"customer-features": "customer", "revenue-predictor": "sales", "customer-revenue": "sales"}
DEMO_CONFIG: dict[str, Any] = {
    "datamesh:products": list(DEMO_PRODUCTS),
    "datamesh:productOverrides": {"revenue-predictor": {"autoscaling": {"minReplicas": 1, "maxReplicas": 2}}},
    "datamesh:rateLimitTiers": {"standard": {"requests": 60, "period": "1m"}, "trial": {"requests": 10, "period": "1m"}},
    "datamesh:consumers": {
        "analytics": {"products": ["customer-features", "revenue-predictor", "customer-revenue"], "tier": "standard"},
        "partner-portal": {"products": ["customer-revenue"], "tier": "trial"},
    },
    "datamesh:apiKeys": {
        "analytics": [{"secure": "v1:REPLACE-BEFORE-PULUMI-UP:analytics-0"}],
        "partner-portal": [{"secure": "v1:REPLACE-BEFORE-PULUMI-UP:partner-portal-0"}],
    },
}
# Keys of dev's file that name products and have no place in the demo.
_PRODUCT_KEYS = ("datamesh:anypoint", "datamesh:allowWildcardIamProducts")


def stack_name(base: str) -> str:
    """The stack a base renders as: the demo is a dev stack."""
    return "dev" if base == DEMO else base


def stack_file(stack: str) -> dict[str, Any]:
    """``Pulumi.<stack>.yaml`` as a dict; ``demo`` is dev's file selecting the demo products and consumers."""
    if stack != DEMO:
        return yaml.load((ROOT / f"Pulumi.{stack}.yaml").read_text(), Loader=TRUSTED_YAML_LOADER)
    doc = yaml.load((ROOT / "Pulumi.dev.yaml").read_text(), Loader=TRUSTED_YAML_LOADER)
    for key in _PRODUCT_KEYS:
        doc["config"].pop(key, None)
    doc["config"].update(yaml.safe_load(yaml.safe_dump(DEMO_CONFIG)))  # a deep copy
    return doc


def copy_program(project: Path, base: str = "dev") -> Path:
    """A copy of what a stack and its declarations live in (the program, project and dev stack files, products/)
    at ``project``, so a test can edit them; components are still imported from the repository.
    With ``base="demo"`` the copy's Pulumi.dev.yaml is the demo stack."""
    project.mkdir(parents=True)
    for name in ("__main__.py", "Pulumi.yaml"):
        shutil.copy(ROOT / name, project / name)
    if base == "dev":
        shutil.copy(ROOT / "Pulumi.dev.yaml", project / "Pulumi.dev.yaml")  # byte for byte, comments and all
    else:
        (project / "Pulumi.dev.yaml").write_text(yaml.safe_dump(stack_file(base)))
    shutil.copytree(ROOT / "products", project / "products")
    return project


def write_stack(tmp_path: Path, overrides: dict[str, Any], base: str = "dev", drop: tuple[str, ...] = ()) -> Path:
    """A stack file: ``base``'s config with ``overrides`` set and ``drop`` removed."""
    doc = stack_file(base)
    for key in drop:
        doc["config"].pop(key)
    doc["config"].update(overrides)
    path = tmp_path / f"Pulumi.{base}-variant.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def undated(warnings: list[str]) -> list[str]:
    """Warnings less those that depend on the day of the run (EKS support windows: tests/base/test_support_windows.py)."""
    return [w for w in warnings if not w.startswith("datamesh:eksSupportType: ")]


def render_variant(tmp_path: Path, overrides: dict[str, Any], base: str = "dev", drop: tuple[str, ...] = ()) -> RunResult:
    return render_stack(stack_name(base), write_stack(tmp_path, overrides, base, drop))


def kube_object(result: RunResult, kind: str, name: str, namespace: str | None = None) -> Registration:
    """The one Kubernetes object of ``kind`` named ``name`` (in ``namespace``, when given) that ``result`` registers."""
    found = [r for r in result.resources if r.type.startswith("kubernetes:") and r.type.endswith(f":{kind}")
             and (r.inputs.get("metadata") or {}).get("name") == name
             and (namespace is None or r.inputs["metadata"].get("namespace") == namespace)]
    assert len(found) == 1, (kind, name, namespace, len(found))
    return found[0]


def prefix_of(name: str) -> str:
    """The route prefix product ``name`` declares, or the default one."""
    return declared(name).get("routePrefix", f"/public/api/v1/{name}/")


def selected(stack: str) -> list[str]:
    """The products a real stack file selects, read from the file itself."""
    return list(stack_file(stack)["config"].get("datamesh:products", []))


def declared(name: str, products: Path = ROOT / "products") -> dict[str, Any]:
    """A product's declaration, read as plain YAML."""
    return yaml.safe_load((products / f"{name}.yaml").read_text())


def fresh_name(products: Path, stem: str) -> str:
    """``stem``, or ``stem-2``, ``stem-3``...: a product name nothing in ``products`` uses yet."""
    name, n = stem, 1
    while (products / f"{name}.yaml").exists() or (products / "openapi" / f"{name}.yaml").exists():
        n += 1
        name = f"{stem}-{n}"
    return name


# --- adding a product the way docs/data-products.md says -----------------------------------------

_COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", "render",
                                      "*.pyc", "node_modules")
CANDIDATE_IMAGE = "python:3.12.11-slim-bookworm"  # the canary's image: pinned, and not the stand-in's


def copy_repository(dest: Path) -> Path:
    """A copy of the whole repository at ``dest``, as a team's clone: no virtualenv, caches or renders."""
    shutil.copytree(ROOT, dest, ignore=_COPY_IGNORE)
    return dest


def add_documented_product(repo_dir: Path, stem: str = "churn-scorer", consumer_stem: str = "churn-app") -> dict[str, Any]:
    """Add a product to the repository copy at ``repo_dir`` as docs/data-products.md says, and return what was made.

    1. ``python -m tools.new_product NAME --domain churn --kind predict --consumes UPSTREAM`` (Starting a product),
       UPSTREAM being the first product the stack selects, NAME ``stem`` unless a declaration has it;
    2. a 90/10 canary: ``releases`` in place of ``image`` in its declaration (Releases and canaries);
    3. in Pulumi.dev.yaml: NAME added to ``datamesh:products``; a new consumer whose ``products`` are [NAME]
       in ``datamesh:consumers``; its offline placeholder key under ``datamesh:apiKeys``, in the form the
       shipped keys have (``secure: v1:REPLACE-BEFORE-PULUMI-UP:<consumer>-0``; docs/data-products.md, Starting a product).

    The stack file is edited as text, as a person would, so its comments stay. Returns the names:
    ``product``, ``domain``, ``upstream``, ``consumer``, ``releases`` ((version, weight), ...), ``stack``
    (the stack file) and ``scaffold_output`` (what the scaffold printed).
    """
    products = repo_dir / "products"
    stack_path = repo_dir / "Pulumi.dev.yaml"
    config = yaml.safe_load(stack_path.read_text())["config"]
    upstream = config["datamesh:products"][0]
    name = fresh_name(products, stem)
    domain = "churn"
    taken = set(config.get("datamesh:consumers") or {}) | set(config.get("datamesh:apiKeys") or {})
    consumer = next(c for c in (consumer_stem, *(f"{consumer_stem}-{n}" for n in range(2, 100))) if c not in taken)

    proc = subprocess.run([sys.executable, "-m", "tools.new_product", name, "--domain", domain, "--kind", "predict",
                           "--consumes", upstream], cwd=repo_dir, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (products / f"{name}.yaml").is_file() and (products / "openapi" / f"{name}.yaml").is_file()

    declaration = products / f"{name}.yaml"
    text = declaration.read_text()
    [image_line] = [line for line in text.splitlines() if line.startswith("image: ")]
    image = image_line.removeprefix("image: ").strip()
    releases = (("0.1.0", 90, image), ("0.2.0", 10, CANDIDATE_IMAGE))
    block = "releases:\n" + "".join(f"  - {{version: {v}, image: {i}, weight: {w}}}\n" for v, w, i in releases)
    declaration.write_text(text.replace(image_line + "\n", block, 1))

    stack = stack_path.read_text()
    listed = re.search(r"(?m)^  datamesh:products:\n(?:    - .*\n)+", stack)
    assert listed, f"{stack_path}: datamesh:products is not a block list; edit it by hand"
    stack = stack[:listed.end()] + f"    - {name}\n" + stack[listed.end():]
    stack_path.write_text(stack)
    # The new consumer, with the tool the docs name (Starting a product): its products and a placeholder key.
    proc_consumer = subprocess.run([sys.executable, "-m", "tools.new_consumer", consumer, "--products", name],
                                   cwd=repo_dir, capture_output=True, text=True, timeout=120)
    assert proc_consumer.returncode == 0, proc_consumer.stderr
    stack = stack_path.read_text()

    edited = yaml.safe_load(stack)["config"]  # the edits landed where they were meant to
    assert edited["datamesh:products"] == [*config["datamesh:products"], name]
    assert edited["datamesh:consumers"][consumer] == {"products": [name]}
    assert edited["datamesh:apiKeys"][consumer] == [{"secure": f"v1:REPLACE-BEFORE-PULUMI-UP:{consumer}-0"}]
    return {"product": name, "domain": domain, "upstream": upstream, "consumer": consumer,
            "releases": tuple((v, w) for v, w, _ in releases), "stack": stack_path, "scaffold_output": proc.stdout}


@pytest.fixture(scope="session")
def dev() -> RunResult:
    return render_stack("dev")


@pytest.fixture(scope="session")
def demo_config(tmp_path_factory) -> Path:
    """The demo stack's file (render it as ``--stack dev --config FILE``)."""
    return write_stack(tmp_path_factory.mktemp("demo"), {}, base=DEMO)


@pytest.fixture(scope="session")
def demo_keys(tmp_path_factory) -> Path:
    """The test keys the demo render was made with (``tools.render --test-keys``): its gateway accepts only these."""
    return tmp_path_factory.mktemp("demo-keys") / "keys.json"


@pytest.fixture(scope="session")
def demo(demo_config, demo_keys) -> RunResult:
    return render_stack("dev", demo_config, test_keys=demo_keys)


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


def not_waiting_for(result: RunResult, type_prefix: str, earlier: Registration) -> list[str]:
    """The names of the resources whose type starts with ``type_prefix`` that do not wait for ``earlier``."""
    return [r.name for r in result.resources if r.type.startswith(type_prefix) and not waits_for(result, r, earlier)]


def written(result: RunResult, out: Path) -> Path:
    """``result`` written as tools.render writes it, into ``out``."""
    write_render(result, out)
    return out


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that run real Envoy over Istio's translation (they ask for ``istio_tools``) take seconds each: they go
    first, so parallel workers (pytest-xdist, pyproject.toml) share them out instead of ending on one of them."""
    items.sort(key=lambda item: "istio_tools" not in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="session")
def istio_tools():
    """istiod-xds and istioctl, built from the pinned Istio module (cached across runs)."""
    from tools.engine.istio_xds import build_istio_tools

    return build_istio_tools()


@pytest.fixture(scope="session")
def demo_render(demo, tmp_path_factory) -> Path:
    return written(demo, tmp_path_factory.mktemp("demo-render"))
