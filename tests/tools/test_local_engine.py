"""The local engine's parts that run without its binaries: pins, certificates, the report, the delete-order check.

The run itself (`python -m tools.local_engine`) builds Go binaries for tens of minutes cold: docs/operating.md.
"""

from __future__ import annotations

import json

import pytest

from tools.engine import local_build
from tools.engine.local_cluster import kubeconfig, write_pki
from tools.engine.local_run import compare_delete_order, one_line
from tools.engine.order import Graph
from tools.local_engine import __main__ as local_engine


@pytest.mark.parametrize("binary", local_build.BINARIES, ids=lambda b: b.name)
def test_every_binary_comes_from_an_exactly_pinned_module(binary):
    version = local_build.required_version(binary.directory, binary.module)
    assert version.startswith("v") and "latest" not in version
    assert (binary.directory / "go.sum").exists()


def test_the_pins_are_those_the_module_proxy_serves():
    pins = {b.module: local_build.required_version(b.directory, b.module) for b in local_build.BINARIES}
    assert pins["github.com/pulumi/pulumi/pkg/v3"] == "v3.276.0"
    assert pins["go.etcd.io/etcd/server/v3"] == "v3.7.3"
    assert pins["k8s.io/kubernetes"] == "v1.35.4"
    assert pins["github.com/pulumi/pulumi-kubernetes/provider/v4"] in local_build.PROVIDER_RELEASE


def test_kubernetes_staging_modules_are_replaced_by_the_same_release():
    text = (local_build.GO_ROOT / "apiserver" / "go.mod").read_text()
    replaced = [line.split() for line in text.splitlines() if "=>" in line]
    assert len(replaced) >= 30 and all(parts[0] == parts[2] and parts[3] == "v0.35.4" for parts in replaced)


def test_pki_and_kubeconfig(tmp_path):
    write_pki(tmp_path)
    config = json.loads(kubeconfig("https://127.0.0.1:6443", tmp_path))
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert {"client-certificate-data", "client-key-data"} <= set(config["users"][0]["user"])
    assert (tmp_path / "sa.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")


def _graph():
    stack = {"urn": "urn:pulumi:local::datamesh::pulumi:pulumi:Stack::s", "type": "pulumi:pulumi:Stack", "custom": False}
    provider = {"urn": "urn:pulumi:local::datamesh::pulumi:providers:kubernetes::k", "type": "pulumi:providers:kubernetes",
                "custom": True, "parent": stack["urn"]}
    ns = {"urn": "urn:pulumi:local::datamesh::kubernetes:core/v1:Namespace::ns", "type": "kubernetes:core/v1:Namespace",
          "custom": True, "parent": stack["urn"], "provider": provider["urn"] + "::id"}
    svc = {"urn": "urn:pulumi:local::datamesh::kubernetes:core/v1:Service::svc", "type": "kubernetes:core/v1:Service",
           "custom": True, "parent": stack["urn"], "provider": provider["urn"] + "::id", "dependencies": [ns["urn"]]}
    return Graph([{**r, "name": r["urn"].rsplit("::", 1)[-1]} for r in (stack, provider, ns, svc)])


def test_the_delete_order_check_accepts_the_models_order_and_names_an_inversion():
    graph = _graph()
    urns = [urn for wave in graph.deletion_waves("engine") for urn in wave]
    ok = compare_delete_order(graph, urns)
    assert ok["graphViolations"] == 0 and ok["engineRoundsOutOfOrder"] == 0 and ok["deleted"] == 4
    bad = compare_delete_order(graph, list(reversed(urns)))
    assert bad["graphViolations"] == 6 and "s before svc" in bad["examples"]  # every ordered pair of the 4, inverted


def test_one_line_prefers_the_error():
    assert one_line("Previewing\n  error: preview failed\nDuration: 1s\n") == "error: preview failed"


def test_a_binary_that_does_not_build_stops_the_run_naming_it(monkeypatch, tmp_path, capsys):
    failed = local_build.BuildResult()
    failed.paths = {b.name: tmp_path / b.name for b in local_build.BINARIES if b.name != "pulumi"}
    failed.failures["pulumi"] = "github.com/pulumi/pulumi/pkg/v3@v3.276.0: some error"
    monkeypatch.setattr(local_engine, "build_local_engine", lambda: failed)
    code = local_engine.main(["--out", str(tmp_path / "report.json")])
    report = json.loads((tmp_path / "report.json").read_text())
    assert code == 1 and set(report["steps"]) == set(local_engine.STEPS)
    assert all(v.startswith("not run: ") and "v3.276.0" in v for v in report["steps"].values())
    assert json.loads(capsys.readouterr().out) == report


@pytest.mark.parametrize(("flag", "make", "why"), [
    ("--out", lambda p: p.mkdir(), "is a folder"),
    ("--keep", lambda p: p.write_text("x"), "exists and is not a folder"),
])
def test_an_unwritable_output_is_refused_before_any_build(monkeypatch, tmp_path, capsys, flag, make, why):
    built = []
    monkeypatch.setattr(local_engine, "build_local_engine", lambda: built.append(1))
    target = tmp_path / "target"
    make(target)
    with pytest.raises(SystemExit) as stop:
        local_engine.main([flag, str(target)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and built == []
    assert err.count("\n") == 1 and f"{flag}: {target}: {why}" in err
