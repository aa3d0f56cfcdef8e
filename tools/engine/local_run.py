"""The real Pulumi engine against the local control plane: each step of ``python -m tools.local_engine``.

``Project`` is a copy of the program (``__main__.py``, ``Pulumi.yaml``, components/, products/,
policies/) in a temporary folder, with ``.venv`` (and the pack's ``venv``) linked to the
interpreter running this, a file backend (``pulumi login file://...``) and a passphrase. Each
step returns "ok" or its failure in one line.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.inputs import TRUSTED_YAML_LOADER
from tools.engine.local_cluster import Api
from tools.engine.order import Graph

ROOT = Path(__file__).resolve().parents[2]
STACK = "local"
CANARY = "revenue-predictor"
PORT_RULE = "istio-port-naming"
PASSPHRASE = "datamesh-local-engine"  # a throwaway stack's, in a temporary state folder


def _releases(weights: tuple[int, int]) -> list[dict[str, Any]]:
    image = "python:3.12.10-slim-bookworm"  # revenue-predictor's own image (products/revenue-predictor.yaml)
    return [{"version": "1.0.0", "image": image, "weight": weights[0]}, {"version": "1.1.0", "image": image, "weight": weights[1]}]


def one_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return ((errors or lines or ["(no output)"])[-1])[:limit]


@dataclass
class Project:
    """A copy of the program, its state folder and the environment every ``pulumi`` command runs with."""

    folder: Path
    bin_dir: Path
    times: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dir = self.folder / "project"
        state, home = self.folder / "state", self.folder / "pulumi-home"
        for path in (state, home):
            path.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                    "PULUMI_HOME": str(home), "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE, "PULUMI_SKIP_UPDATE_CHECK": "true",
                    "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true", "PULUMI_DEBUG_COMMANDS": "true",
                    "PULUMI_BACKEND_URL": f"file://{state}",
                    "PULUMI_PYTHON_CMD": sys.executable, "NO_COLOR": "1"}

    def copy_program(self) -> None:
        self.dir.mkdir(parents=True)
        for name in ("__main__.py", "requirements.txt"):
            shutil.copy(ROOT / name, self.dir / name)
        project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
        project["backend"] = {"url": self.env["PULUMI_BACKEND_URL"]}  # the project's file://~ would win over the login
        (self.dir / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
        ignore = shutil.ignore_patterns("__pycache__", "venv", ".venv")
        for name in ("components", "products", "policies"):
            shutil.copytree(ROOT / name, self.dir / name, ignore=ignore)
        venv = Path(sys.prefix)
        (self.dir / ".venv").symlink_to(venv)
        (self.dir / "policies" / "venv").symlink_to(venv)

    def pulumi(self, *args: str, timeout: float = 1200, step: str = "", stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``pulumi ARGS --non-interactive`` in the copy (a secret value goes in on ``stdin``, never in the log)."""
        started = time.monotonic()
        done = subprocess.run(["pulumi", *args, "--non-interactive"], cwd=self.dir, env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False, input=stdin)
        if step:
            self.times[step] = round(time.monotonic() - started, 1)
        (self.folder / "pulumi.log").open("a").write(f"$ pulumi {' '.join(args)}\n{done.stdout}\n{done.stderr}\n")
        return done

    def config_file(self) -> Path:
        return self.dir / f"Pulumi.{STACK}.yaml"

    def write_config(self, weights: tuple[int, int]) -> None:
        """Pulumi.local.yaml without its placeholder ciphertexts (set as real secrets after), with a canary."""
        doc = yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text()) if not self.config_file().exists() else \
            yaml.safe_load(self.config_file().read_text())
        config = doc["config"]
        for key in ("datamesh:kubeconfig", "datamesh:apiKeys"):
            if "REPLACE-BEFORE-PULUMI-UP" in json.dumps(config.get(key)):  # the shipped placeholders, not real ciphertexts
                config.pop(key)
        config["datamesh:productOverrides"] = {CANARY: {"releases": _releases(weights)}}
        self.config_file().write_text(yaml.safe_dump(doc, sort_keys=False))

    def init(self, kubeconfig: str) -> str:
        self.copy_program()
        self.write_config((90, 10))
        for args, stdin in ((("login", self.env["PULUMI_BACKEND_URL"]), None),
                            (("stack", "init", STACK, "--secrets-provider", "passphrase"), None),
                            (("config", "set", "--secret", "datamesh:kubeconfig", "--stack", STACK), kubeconfig),
                            (("config", "set", "--secret", "--path", "datamesh:apiKeys.analytics[0]", "--stack", STACK),
                             secrets.token_hex(16))):
            done = self.pulumi(*args, stdin=stdin)
            if done.returncode != 0:
                return f"pulumi {' '.join(args[:3])}: {one_line(done.stderr or done.stdout)}"
        return "ok"

    def version(self) -> str:
        return self.pulumi("version").stdout.strip()


def install_istio(api: Api, crd_file: Path, version: str) -> None:
    """The pinned Istio module's CRDs (CEL rules included), its two namespaces and a stand-in istiod Deployment."""
    crds = [doc for doc in yaml.load_all(crd_file.read_text(), Loader=TRUSTED_YAML_LOADER)
            if doc and doc.get("kind") == "CustomResourceDefinition"]
    for crd in crds:
        api.apply(crd, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    for ns in ("istio-system", "istio-ingress"):
        api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, "/api/v1/namespaces")
    labels = {"app": "istiod", "istio.io/rev": "default"}
    pod = {"metadata": {"labels": labels},
           "spec": {"containers": [{"name": "discovery", "image": f"docker.io/istio/pilot:{version}"}]}}
    api.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "istiod", "namespace": "istio-system",
               "labels": labels}, "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": pod}},
              "/apis/apps/v1/namespaces/istio-system/deployments")
    deadline = time.monotonic() + 60
    for crd in crds:
        while True:
            _, got = api.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}")
            conditions = (got.get("status") or {}).get("conditions") or [] if isinstance(got, dict) else []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"CRD {crd['metadata']['name']} not established")
            time.sleep(0.5)


def preview(project: Project) -> str:
    done = project.pulumi("preview", "--stack", STACK, "--policy-pack", str(project.dir / "policies"), step="preview")
    return "ok" if done.returncode == 0 else one_line(done.stdout + done.stderr)


# A Service in a mesh namespace whose port names no protocol (Istio would sniff it), added to the copy's program
# only: product declarations refuse such a port themselves, so the violation comes from outside them.
VIOLATION = """
import pulumi_kubernetes as _k8s
_k8s.core.v1.Service("port-naming-violation", metadata={"name": "port-naming-violation", "namespace": "sales"},
                     spec={"selector": {"app": "none"}, "ports": [{"port": 8080}]},
                     opts=pulumi.ResourceOptions(provider=ctx.kubernetes, depends_on=[mesh]))
"""


def violation_fails_preview(project: Project) -> str:
    """An unnamed Service port in a mesh namespace: the real analyzer must fail the preview with the rule."""
    program = project.dir / "__main__.py"
    original = program.read_text()
    program.write_text(original + VIOLATION)
    try:
        done = project.pulumi("preview", "--stack", STACK, "--policy-pack", str(project.dir / "policies"), step="policy_violation")
    finally:
        program.write_text(original)
    out = done.stdout + done.stderr
    if done.returncode == 0:
        return f"the preview passed: the analyzer did not report {PORT_RULE}"
    if f"[mandatory]  {PORT_RULE}" not in out or "port-naming-violation" not in out:
        return f"the preview failed, but not with {PORT_RULE} (mandatory) on the added Service: {one_line(out)}"
    return "ok"


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _ops(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(op, urn, type) of each step the engine finished, in order, from its event log."""
    out = []
    for event in events:
        outputs = event.get("resOutputsEvent")
        if outputs:
            meta = outputs["metadata"]
            out.append((meta["op"], meta["urn"], meta["type"]))
    return out


def up(project: Project, step: str = "up", expect_no_changes: bool = False) -> tuple[str, list[tuple[str, str, str]]]:
    log = project.folder / f"{step}.events.jsonl"
    args = ["up", "--stack", STACK, "--yes", "--skip-preview", "--event-log", str(log)]
    done = project.pulumi(*args, *(["--expect-no-changes"] if expect_no_changes else []), step=step)
    ops = _ops(_events(log))
    return ("ok" if done.returncode == 0 else one_line(done.stdout + done.stderr)), ops


def noop_up(project: Project) -> str:
    result, ops = up(project, "noop_up", expect_no_changes=True)
    changed = [f"{op} {urn.rsplit('::', 1)[-1]}" for op, urn, _ in ops if op not in ("same", "read")]
    if result != "ok":
        return result
    return "ok" if not changed else f"the second up changed {len(changed)}: {', '.join(changed[:5])}"


def update_in_place(project: Project) -> str:
    """The canary from 90/10 to 50/50: its VirtualService updated in place, nothing replaced or recreated."""
    project.write_config((50, 50))
    result, ops = up(project, "update_in_place")
    if result != "ok":
        return result
    changed = [(op, urn.rsplit("::", 1)[-1], t) for op, urn, t in ops if op not in ("same", "read")]
    if not changed:
        return "the weight change changed nothing"
    wrong = [f"{op} {t} {name}" for op, name, t in changed if op != "update"]
    if wrong:
        return f"not an in-place update: {', '.join(wrong[:5])}"
    if not any(t.endswith(":VirtualService") for _, _, t in changed):
        return f"the VirtualService was not updated ({', '.join(n for _, n, _ in changed)})"
    return "ok"


def state_graph(project: Project) -> Graph:
    """The stack's dependency graph as the engine recorded it (``pulumi stack export``)."""
    exported = json.loads(project.pulumi("stack", "export", "--stack", STACK).stdout)
    records = exported["deployment"].get("resources") or []
    return Graph([{**r, "name": r["urn"].rsplit("::", 1)[-1]} for r in records])  # the state has no "name"


def compare_delete_order(graph: Graph, deleted: list[str]) -> dict[str, Any]:
    """The engine's delete order against the model: each deletion's round (tools/engine/order.py, ``engine``) never
    goes down along the order, and every pair the graph orders (``must_precede``) is deleted in that order."""
    waves = Graph.wave_of(graph.deletion_waves("engine"))
    eager = Graph.wave_of(graph.deletion_waves("eager"))
    known = [urn for urn in deleted if urn in waves]
    position = {urn: i for i, urn in enumerate(known)}
    inversions = [(a, b) for a in known for b in known
                  if position[a] < position[b] and graph.must_precede(b, a)]
    rounds = [waves[u] for u in known]
    out_of_round = sum(1 for x, y in itertools.pairwise(rounds) if y < x)
    return {"deleted": len(deleted), "modelled": len(waves), "graphViolations": len(inversions),
            "examples": [f"{a.rsplit('::', 1)[-1]} before {b.rsplit('::', 1)[-1]}" for a, b in inversions[:3]],
            "engineRoundsOutOfOrder": out_of_round, "eagerRounds": max(eager.values(), default=-1) + 1,
            "engineRounds": max(waves.values(), default=-1) + 1}


def destroy(project: Project, api: Api) -> tuple[str, dict[str, Any]]:
    graph = state_graph(project)
    log = project.folder / "destroy.events.jsonl"
    done = project.pulumi("destroy", "--stack", STACK, "--yes", "--skip-preview", "--event-log", str(log), step="destroy")
    deleted = [urn for op, urn, _ in _ops(_events(log)) if op == "delete"]
    order = compare_delete_order(graph, deleted)
    if done.returncode != 0:
        return one_line(done.stdout + done.stderr), order
    left = leftovers(api, graph)
    if left:
        return f"left in the API server: {', '.join(left[:5])}", order
    if order["graphViolations"]:
        return f"the engine deleted against the graph: {'; '.join(order['examples'])}", order
    return "ok", order


def leftovers(api: Api, graph: Graph, wait: float = 90) -> list[str]:
    """The stack's namespaces and objects still in the API server (namespaces may take the controller a moment)."""
    names = [n.name for n in graph.nodes.values() if n.type == "kubernetes:core/v1:Namespace"]
    deadline = time.monotonic() + wait
    while True:
        left = [f"namespace/{name}" for name in names if api.request("GET", f"/api/v1/namespaces/{name}")[0] != 404]
        _, gateways = api.request("GET", "/apis/networking.istio.io/v1/namespaces/istio-ingress/gateways")
        left += [f"gateway/{g['metadata']['name']}" for g in (gateways.get("items") or [] if isinstance(gateways, dict) else [])]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(2)
