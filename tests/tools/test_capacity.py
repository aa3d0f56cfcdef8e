"""The capacity estimate: pods' requests against a node's allocatable, and the cost that follows."""

import json

import yaml

from tests.conftest import add_documented_product, copy_repository, render_variant, stack_file
from tools.engine import capacity
from tools.engine.cost import estimate as cost_estimate
from tools.engine.render import write_render

TABLE = capacity.load_table()


def _k8s(kind: str, name: str, namespace: str | None, **body) -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"urn": f"u-{kind}-{name}", "type": f"kubernetes:x:{kind}", "name": name, "parent": None, "dependencies": [],
            "inputs": {"kind": kind, "metadata": meta, **body}}


def _deployment(name: str, namespace: str, replicas: int, cpu: str, memory: str) -> dict:
    container = {"name": "app", "resources": {"requests": {"cpu": cpu, "memory": memory}}}
    template = {"metadata": {}, "spec": {"containers": [container]}}
    return _k8s("Deployment", name, namespace, spec={"replicas": replicas, "template": template})


def test_allocatable_is_nodeadms_formula():
    spec = TABLE["instances"]["m6a.large"]
    max_pods = spec["enis"] * (spec["ipsPerEni"] - 1) + 2  # the VPC CNI's limit: 29
    cpu = 2000 - (1000 * 6 // 100 + 1000 * 1 // 100)  # 6% of the first core, 1% of the second
    memory = int(spec["memoryGiB"] * 1024 * TABLE["memoryVisible"]) - (11 * max_pods + 255) - TABLE["evictionHardMi"]
    assert capacity.allocatable("m6a.large", TABLE) == (cpu, memory, max_pods) == (1930, memory, 29)


def test_every_pod_counts_with_its_sidecar_and_its_autoscalers_floor():
    injected = _k8s("Namespace", "sales", None)
    injected["inputs"]["metadata"]["labels"] = {"istio.io/rev": "stable"}
    plain = _k8s("Namespace", "tools", None)
    hpa = _k8s("HorizontalPodAutoscaler", "api-hpa", "sales", spec={"minReplicas": 3, "scaleTargetRef": {"name": "api"}})
    release = {"urn": "r", "type": capacity.HELM_RELEASE, "name": "metrics-server", "parent": None, "dependencies": [],
               "inputs": {"chart": "metrics-server", "values": {"replicas": 2}}}
    resources = [injected, plain, hpa, release, _deployment("api", "sales", 2, "250m", "256Mi"),
                 _deployment("job", "tools", 1, "1", "1Gi")]
    found = capacity.estimate(resources, "m6a.large", TABLE)
    sidecar = (100, 128)  # istiod's default proxy requests
    by_owner: dict[str, list] = {}
    for pod in found.pods:
        by_owner.setdefault(pod.owner, []).append((pod.cpu, pod.memory))
    assert by_owner["sales/api"] == [(250 + sidecar[0], 256 + sidecar[1])] * 3  # the HPA's floor, not the 2 replicas
    assert by_owner["tools/job"] == [(1000, 1024)]  # no injection in that namespace
    assert by_owner["metrics-server/metrics-server"] == [(100, 200)] * 2  # the values' replicas, the chart's requests
    assert by_owner["eks/coredns"] == [(100, 70)] * 2
    assert {p.owner for p in found.per_node} == {"eks/kube-proxy", "eks/aws-node"}


def test_nodes_needed_grow_with_the_requests():
    base = [_deployment("a", "x", 1, "100m", "100Mi")]
    small = capacity.estimate(base, "t4g.medium", TABLE).needed
    cpu, _memory, _ = capacity.allocatable("t4g.medium", TABLE)
    # Enough pods that each asks half a node's CPU: they need about one node per two pods, filled to packTo.
    heavy = [_deployment(f"h{i}", "x", 1, f"{cpu // 2 - 100}m", "64Mi") for i in range(6)]
    assert capacity.estimate(base + heavy, "t4g.medium", TABLE).needed >= small + 3


def test_more_than_the_maximum_is_a_warning(tmp_path):
    config = stack_file("dev")["config"]
    result = render_variant(tmp_path, {"datamesh:nodeMinSize": 1, "datamesh:nodeDesiredSize": 1, "datamesh:nodeMaxSize": 1})
    c = cost_estimate([r.as_json() for r in result.resources])
    assert c["capacity"]["nodesNeeded"] > 1 and c["capacity"]["nodes"] == 1
    assert any("more than nodeMaxSize 1" in w for w in c["warnings"]), (c["warnings"], config["datamesh:nodeInstanceTypes"])


def test_a_new_product_costs_a_positive_share_of_node_time_and_says_why(tmp_path):
    from tools.engine.render import check_policies, load_policy_config, render_stack
    from tools.engine.review import diff_renders

    def render(repo, out):
        result = render_stack("dev", None, project_dir=repo)
        write_render(result, out, check_policies(result, load_policy_config("dev", None)))
        return json.loads((out / "cost.json").read_text())["capacity"]

    repo = copy_repository(tmp_path / "repo")
    old = render(repo, tmp_path / "before")
    made = add_documented_product(repo)
    new = render(repo, tmp_path / "after")
    declared = yaml.safe_load((repo / "products" / f"{made['product']}.yaml").read_text())
    replicas = declared.get("replicas", 1)
    assert new["pods"] >= old["pods"] + replicas
    assert new["requests"]["cpuMillicores"] > old["requests"]["cpuMillicores"]
    text = diff_renders(tmp_path / "before", tmp_path / "after")
    lines = text.splitlines()
    section = lines[lines.index('== capacity (cost.json "capacity")') + 1:]
    assert section[0].strip().startswith(f"pods {old['pods']} -> {new['pods']}")
    share = next(line for line in section if "of node time" in line)
    dollars = float(share.split("+$")[1].split("/month")[0])
    assert dollars > 0
    assert f"(+${dollars:,.2f} of node time)" in lines[-1]
