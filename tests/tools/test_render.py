"""The offline render, end to end: the command a reviewer without credentials runs."""

import json
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT
from tools.engine.mockrun import SECRET
from tools.engine.stackconfig import SECRET_PLACEHOLDER, load_stack_config

FIELDS = {"urn", "type", "name", "custom", "deletedWith", "parent", "provider", "providers", "dependencies", "inputs",
          "protect", "replaceOnChanges", "deleteBeforeReplace", "ignoreChanges", "retainOnDelete", "aliases"}


@pytest.fixture(scope="module", params=["dev", "prod"])
def rendered(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    proc = subprocess.run(
        [sys.executable, "-m", "tools.render", "--stack", request.param, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return request.param, out, proc.stdout


def test_resources_json_lists_every_resource_with_its_graph(rendered):
    stack, out, _ = rendered
    resources = json.loads((out / "resources.json").read_text())
    assert all(set(r) == FIELDS for r in resources)
    urns = {r["urn"] for r in resources}
    assert len(urns) == len(resources)
    for r in resources:
        assert r["parent"] is None or r["parent"] in urns, r["urn"]
        assert all(d in urns for d in r["dependencies"]), r["urn"]
        if r["provider"]:
            assert r["provider"].rsplit("::", 1)[0] in urns
    types = {r["type"] for r in resources}
    assert {"eks:index:Cluster", "kubernetes:helm.sh/v3:Release", "aws:iam/policy:Policy"} <= types
    # One token scheme, datamesh:<layer>:<Component>; prod has a domain: TLS at the edge.
    components = {"platform:Network", "platform:Cluster", "addons:ManagedAddons", "platform:LoadBalancerController",
                  "platform:Istio", "platform:MeshNamespaces", "governance:ZeroTrust", "governance:Observability",
                  "products:DataProduct"} | ({"platform:EdgeCertificate", "platform:EdgeDnsName"} if stack == "prod" else set())
    assert components <= {r["type"].removeprefix("datamesh:") for r in resources if r["type"].startswith("datamesh:")}
    assert {r["type"].split(":")[1] for r in resources if r["type"].startswith("datamesh:")} == {
        "platform", "addons", "products", "governance"}


def test_summary_counts_what_was_written(rendered):
    _, out, stdout = rendered
    resources = json.loads((out / "resources.json").read_text())
    lines = stdout.splitlines()
    total = [i for i, line in enumerate(lines) if line.startswith("total")]
    assert total and int(lines[total[0]].split()[-1]) == len(resources)
    cost = json.loads((out / "cost.json").read_text())
    assert lines[total[0] + 1].startswith(f"monthly cost estimate: ${cost['total']:,.2f} USD at eu-west-1 list prices")
    for line in lines[1:total[0]]:
        type_, count = line.split()
        assert sum(r["type"] == type_ for r in resources) == int(count)


def test_manifests_are_every_declared_kubernetes_object_and_valid(rendered):
    stack, out, _ = rendered
    resources = json.loads((out / "resources.json").read_text())
    declared = [r for r in resources if r["type"].startswith("kubernetes:")
                and "helm.sh" not in r["type"] and not r["type"].startswith("pulumi:providers")]
    files = sorted((out / "manifests").glob("*.yaml"))
    assert len(files) == len(declared) >= 4
    k8s_version = load_stack_config(ROOT, stack).values["datamesh:kubernetesVersion"]
    istio_kinds = set()
    for path in files:
        obj = yaml.safe_load(path.read_text())
        assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"]
        if obj["apiVersion"].split("/")[0].endswith(".istio.io"):
            # Istio's CRD schemas are not in kubernetes-validate; the component tests check their specs.
            assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
            istio_kinds.add(obj["kind"])
            continue
        kubernetes_validate.validate(obj, k8s_version, strict=True)
    assert istio_kinds <= {"Gateway", "VirtualService", "DestinationRule", "Sidecar", "EnvoyFilter",
                           "PeerAuthentication", "AuthorizationPolicy", "Telemetry"}


def test_no_secret_in_plaintext(rendered):
    _, out, _ = rendered
    every_file = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    # The mock kubeconfig carries this server name; it must only ever appear masked.
    assert ".eks.amazonaws.com" not in every_file.replace(".elb.", "")
    outputs = json.loads((out / "outputs.json").read_text())
    assert outputs["kubeconfig"] == SECRET
    provider = next(r for r in json.loads((out / "resources.json").read_text()) if r["type"] == "pulumi:providers:kubernetes")
    assert provider["inputs"]["kubeconfig"] == SECRET


def test_render_shows_what_the_issue_asks_for(rendered):
    _, out, _ = rendered
    resources = json.loads((out / "resources.json").read_text())
    by_name = {(r["type"], r["name"]): r for r in resources}
    text = json.dumps(resources)
    assert '"kubernetes.io/role/elb": "1"' in text and '"kubernetes.io/role/internal-elb": "1"' in text
    assert ":sub\\\": \\\"system:serviceaccount:kube-system:aws-load-balancer-controller" in text
    policy = by_name[("aws:iam/policy:Policy", "aws-load-balancer-controller-policy")]["inputs"]["policy"]
    assert "elasticloadbalancing:CreateLoadBalancer" in policy
    assert {n for (t, n) in by_name if t == "kubernetes:helm.sh/v3:Release"} >= {"istio-base", "istiod", "istio-ingressgateway"}
    svc = by_name[("kubernetes:core/v1:Service", "istio-ingressgateway")]
    assert by_name[("kubernetes:helm.sh/v3:Release", "aws-load-balancer-controller")]["urn"] in svc["dependencies"]


def test_rerender_replaces_stale_manifests(tmp_path):
    stale = tmp_path / "manifests" / "service-old-gone.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("kind: Service\n")
    from tools.render import main

    assert main(["--stack", "dev", "--out", str(tmp_path)]) == 0
    assert not stale.exists()


def test_secure_values_are_never_decrypted(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: datamesh\nruntime: python\n")
    (tmp_path / "Pulumi.s.yaml").write_text(yaml.safe_dump({"config": {
        "datamesh:apiKey": {"secure": "v1:abc"},
        "datamesh:consumers": [{"key": {"secure": "v1:def"}}],
        "datamesh:plain": 3,
        "region": "x",
    }}))
    cfg = load_stack_config(tmp_path, "s")
    assert cfg.values["datamesh:apiKey"] == f"{SECRET_PLACEHOLDER}-1"
    assert json.loads(cfg.values["datamesh:consumers"]) == [{"key": f"{SECRET_PLACEHOLDER}-2"}]
    assert sorted(cfg.secret_keys) == ["datamesh:apiKey", "datamesh:consumers"]
    assert cfg.values["datamesh:plain"] == "3" and cfg.values["datamesh:region"] == "x"
    assert "v1:abc" not in json.dumps(cfg.values)


def test_test_keys_are_fresh_private_and_outside_the_render(tmp_path, capsys):
    import stat

    from tools.render import main

    keys = tmp_path / "keys.json"
    assert main(["--stack", "dev", "--out", str(tmp_path / "r"), "--test-keys", str(keys)]) == 0
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    found = json.loads(keys.read_text())
    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    assert set(found) == set(config["datamesh:apiKeys"])
    flat = [k for ks in found.values() for k in ks]
    assert len(set(flat)) == len(flat) and all(len(k) == 48 for k in flat)
    everything = "".join(p.read_text() for p in (tmp_path / "r").rglob("*") if p.is_file())
    assert not any(k in everything for k in flat)  # digests only
    assert "never apply it" in capsys.readouterr().err
    assert main(["--stack", "dev", "--out", str(tmp_path / "r2"), "--test-keys", str(tmp_path / "r2" / "k.json")]) == 2
    assert "--test-keys: must be outside --out" in capsys.readouterr().err
