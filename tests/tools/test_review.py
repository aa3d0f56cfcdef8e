"""Pull-request review: render diffs, dependency graphs, and the workflows that publish them."""

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pydot
import pytest
import yaml

from components.ratelimit import period_seconds
from tests.conftest import DEMO, ROOT, copy_program, fresh_name, stack_file, write_stack
from tools.engine.render import check_policies, load_policy_config, render_stack, write_render
from tools.engine.review import Change, diff_renders, diff_values
from tools.render import main as render_main

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


@pytest.fixture(scope="module")
def dev_render(tmp_path_factory, demo_config):
    """The demo stack rendered: the diffs below name its products and consumers."""
    out = tmp_path_factory.mktemp("dev")
    assert render_main(["--stack", "dev", "--config", str(demo_config), "--out", str(out)]) == 0
    return out


def render_project(project: Path, out: Path, config: Path | None = None) -> Path:
    """Render the dev stack of ``project`` (a copy of the program, perhaps with edited declarations) into ``out``."""
    result = render_stack("dev", config, project_dir=project)
    write_render(result, out, check_policies(result, load_policy_config("dev", None)))
    return out


def project_copy(tmp_path: Path) -> Path:
    """The parts of the program a stack and its declarations live in, with the demo stack as Pulumi.dev.yaml;
    components are imported from the repo."""
    return copy_program(tmp_path / "project", base=DEMO)


def diff_lines(old: Path, new: Path, *extra: str) -> tuple[int, list[str]]:
    """``tools.render --diff OLD NEW --exit-code``, run in this process (its exit code is what ``main`` returns; the
    command itself runs as a subprocess in test_releases.py and test_review_policy.py)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = render_main(["--diff", str(old), str(new), "--exit-code", *extra])
    assert not err.getvalue(), err.getvalue()
    return code, out.getvalue().splitlines()


def test_replica_change_diffs_to_exactly_that_change(dev_render, tmp_path):
    overrides = {"customer-features": {"replicas": 3}, "revenue-predictor": {"autoscaling": {"minReplicas": 1, "maxReplicas": 2}}}
    new = tmp_path / "new"
    assert render_main(["--stack", "dev", "--config", str(write_stack(tmp_path, {"datamesh:productOverrides": overrides}, base=DEMO)),
                        "--out", str(new)]) == 0
    code, out = diff_lines(dev_render, new)
    assert code == 2
    before, after = (json.loads((d / "cost.json").read_text())["capacity"] for d in (dev_render, new))
    assert out[:4] == [
        "== DataProduct customer-features",
        "~ Deployment customer/customer-features",
        "      spec.replicas: 2 -> 3",
        '== capacity (cost.json "capacity")',
    ]
    # The one more replica, and what it asks of the nodes: its share of node time, nothing else.
    assert out[4] == (f"    pods {before['pods']} -> {after['pods']}; requests {before['requests']['cpuMillicores']}m CPU / "
                      f"{before['requests']['memoryMiB']}Mi -> {after['requests']['cpuMillicores']}m / "
                      f"{after['requests']['memoryMiB']}Mi (+{after['requests']['cpuMillicores'] - before['requests']['cpuMillicores']}m"
                      f" / +{after['requests']['memoryMiB'] - before['requests']['memoryMiB']}Mi)")
    assert after["pods"] == before["pods"] + 1 and len(out) == 8
    assert out[-1].startswith("0 to add, 1 to change, 0 to delete; 0 output change(s); 0 policy finding change(s); cost "
                              f"+$0.00/month (${json.loads((new / 'cost.json').read_text())['total']:,.2f} list price) (+$")


def test_identical_renders_have_no_diff_and_exit_0(dev_render):
    code, out = diff_lines(dev_render, dev_render)
    assert code == 0 and len(out) == 1 and out[0].startswith("0 to add, 0 to change, 0 to delete; 0 output change(s)")


def test_rotating_a_key_shows_nothing(dev_render, tmp_path):
    keys = {"analytics": [{"secure": "v1:ROTATED:analytics-1"}], "partner-portal": [{"secure": "v1:ROTATED:partner-portal-1"}]}
    new = render_project(project_copy(tmp_path), tmp_path / "new", write_stack(tmp_path, {"datamesh:apiKeys": keys}, base=DEMO))
    code, out = diff_lines(dev_render, new)
    assert code == 0 and len(out) == 1, out


def test_adding_a_consumer_to_a_product_reads_as_insertions_at_the_gateway_and_the_product(dev_render, tmp_path):
    consumers = stack_file(DEMO)["config"]["datamesh:consumers"]
    consumers["partner-portal"]["products"] = ["customer-features", "customer-revenue"]
    new = tmp_path / "new"
    assert render_main(["--stack", "dev", "--config", str(write_stack(tmp_path, {"datamesh:consumers": consumers}, base=DEMO)),
                        "--out", str(new)]) == 0
    code, out = diff_lines(dev_render, new)
    assert code == 2
    tier = stack_file(DEMO)["config"]["datamesh:rateLimitTiers"][consumers["partner-portal"]["tier"]]
    limit = f"tier {consumers['partner-portal']['tier']}: {tier['requests']} requests per {period_seconds(tier['period'])}s"
    assert out.pop(0) == "== access" and out.pop(0) == f"    `partner-portal` ({limit}) may now call `customer-features`"
    rate_limit_route = ("spec.configPatches[HTTP_ROUTE 80 *:80 customer-features].patch.value.typed_per_filter_config"
                        ".envoy.filters.http.local_ratelimit.descriptors[consumer=partner-portal]")
    assert out[:3] == [
        "== ApiGovernance api-governance",
        "~ AuthorizationPolicy istio-ingress/datamesh-api-keys",
        '    + spec.rules[to /public/api/v1/customer-features/*].when[request.headers[x-datamesh-consumer]].values: "partner-portal"',
    ]
    # The same trial-tier bucket at the gateway and on the product's own sidecar (composite calls spend it too),
    # with the retry-after its slowest bucket now implies; and the product's sidecar admits the new consumer.
    sidecar = "~ EnvoyFilter customer/customer-features-limits"
    gateway = "~ EnvoyFilter istio-ingress/datamesh-rate-limits"
    assert out[3] == sidecar and out[out.index(gateway) + 1].startswith(f"    + {rate_limit_route}: ")
    assert '"max_tokens": 10' in out[out.index(gateway) + 1] and "consumer=partner-portal" in out[4]
    assert sum('"retry-after", "value": "6"' in line for line in out) == 2
    callers = out.index("~ AuthorizationPolicy customer/customer-features-callers")
    assert out[callers - 1] == "== ZeroTrust zero-trust" and out[callers + 1].endswith('.values: "partner-portal"')
    # And the consumers output: who may call what, with which tier (no keys).
    outputs = out.index("== stack outputs")
    assert out[outputs + 1] == '    + consumers.partner-portal.products: "customer-features"', out[outputs:]
    assert out[-1].startswith("0 to add, 4 to change, 0 to delete; 1 output change(s)") and len(out) == 17


def test_bumping_an_image_is_one_line(dev_render, tmp_path):
    project = project_copy(tmp_path)
    decl = project / "products" / "customer-features.yaml"
    decl.write_text(decl.read_text().replace("python:3.12.10-slim-bookworm", "python:3.12.11-slim-bookworm"))
    code, out = diff_lines(dev_render, render_project(project, tmp_path / "new"))
    assert code == 2
    assert out[:3] == [
        "== DataProduct customer-features",
        "~ Deployment customer/customer-features",
        '      spec.template.spec.containers[product].image: "python:3.12.10-slim-bookworm" -> '
        '"python:3.12.11-slim-bookworm"',
    ]
    assert out[3].startswith("0 to add, 1 to change, 0 to delete") and len(out) == 4


def test_adding_a_product_reads_as_the_product_and_its_governance(dev_render, tmp_path):
    project = project_copy(tmp_path)
    products = project / "products"
    name = fresh_name(products, "churn-score")
    decl = (products / "customer-features.yaml").read_text().replace("customer-features", name)
    (products / f"{name}.yaml").write_text(decl.replace("Customer feature lookup", "Churn score"))
    api = (products / "openapi" / "customer-features.yaml").read_text().replace("customer-features", name)
    (products / "openapi" / f"{name}.yaml").write_text(api)
    config = stack_file(DEMO)["config"]
    config["datamesh:consumers"]["analytics"]["products"].append(name)  # every product needs a rate limit
    stack = write_stack(tmp_path, {"datamesh:products": [*config["datamesh:products"], name],
                                   "datamesh:consumers": config["datamesh:consumers"]}, base=DEMO)
    shutil.copy(stack, project / "Pulumi.dev.yaml")
    code, out = diff_lines(dev_render, render_project(project, tmp_path / "new"))
    assert code == 2
    # First what a reviewer must not miss (golden text in test_review_headlines.py), then the detail.
    detail = out.index("== ApiGovernance api-governance")
    tier_name = config["datamesh:consumers"]["analytics"]["tier"]
    tier = config["datamesh:rateLimitTiers"][tier_name]
    limit = f"tier {tier_name}: {tier['requests']} requests per {period_seconds(tier['period'])}s"
    assert out[0] == "== access" and f"    `analytics` ({limit}) may now call `{name}`" in out[:detail]
    assert f"    + route prefix /public/api/v1/{name}/ on hosts * via istio-ingress/datamesh -> " \
           f"{name}.customer.svc.cluster.local:12000 (customer/{name})" in out[out.index("== exposure"):detail]
    out = out[detail:]
    assert out[1] == "~ AuthorizationPolicy istio-ingress/datamesh-api-keys"
    assert out[2].startswith(f"    + spec.rules[to /public/api/v1/{name}/*]: ")
    assert out[3] == f"+ EnvoyFilter customer/{name}-limits"  # its limits on its own sidecar too
    assert out[4] == "~ EnvoyFilter istio-ingress/datamesh-rate-limits"
    assert out[5].startswith(f"    + spec.configPatches[HTTP_ROUTE 80 *:80 {name}]: ")
    added = [line for line in out if line.startswith("+ ")]
    assert f"== DataProduct {name}" in out and "== ZeroTrust zero-trust" in out
    assert {f"+ Deployment customer/{name}", f"+ Service customer/{name}", f"+ VirtualService customer/{name}",
            f"+ AuthorizationPolicy customer/{name}-callers"} <= set(added)
    # Nothing existing shifts: every property line is an insertion for the new product (then what it asks of the nodes).
    capacity = out.index('== capacity (cost.json "capacity")')
    assert out[capacity + 1].startswith("    pods ")
    body = [line.strip() for line in out[:capacity] if line.startswith("    ")]
    assert all(line.startswith("+ ") and name in line for line in body), body
    # The product's URL, its catalog entries, and the consumer who may call it now (the consumers output).
    assert out[-1].startswith(f"{len(added)} to add, 2 to change, 0 to delete; 4 output change(s); 0 policy finding change(s)")
    assert len(out) < 30


def test_reordering_the_products_reads_as_order_only(dev_render, tmp_path):
    products = ["revenue-predictor", "customer-features", "customer-revenue"]
    new = tmp_path / "new"
    assert render_main(["--stack", "dev", "--config", str(write_stack(tmp_path, {"datamesh:products": products}, base=DEMO)),
                        "--out", str(new)]) == 0
    code, out = diff_lines(dev_render, new)
    assert code == 2
    paths = ["to /public/api/v1/customer-features/*", "to /public/api/v1/revenue-predictor/*",
             "to /public/api/v1/customer-revenue/*"]
    patches = ["HTTP_FILTER envoy.filters.network.http_connection_manager envoy.filters.http.router",
               *(f"HTTP_ROUTE 80 *:80 {p}" for p in ("customer-features", "revenue-predictor", "customer-revenue"))]
    assert out == [
        "== ApiGovernance api-governance",
        "~ AuthorizationPolicy istio-ingress/datamesh-api-keys",
        f"      spec.rules: order only: {', '.join(paths)} -> {', '.join([paths[1], paths[0], paths[2]])}",
        "~ EnvoyFilter istio-ingress/datamesh-rate-limits",
        f"      spec.configPatches: order only: {', '.join(patches)} -> {', '.join([patches[0], patches[2], patches[1], patches[3]])}",
        "== stack outputs",
        '      meshNamespaces: order only: "customer", "sales" -> "sales", "customer"',
        out[-1],
    ]
    assert out[-1].startswith("0 to add, 2 to change, 0 to delete; 1 output change(s)")


# Shifting canary weights on a real render: tests/products/test_releases.py, test_shifting_weights_diffs_to_exactly_the_two_weights.


def test_markdown_diff_groups_by_component(dev_render, tmp_path):
    new = tmp_path / "new"
    overrides = {**stack_file(DEMO)["config"]["datamesh:productOverrides"], "customer-features": {"replicas": 3}}
    assert render_main(["--stack", "dev", "--config", str(write_stack(tmp_path, {"datamesh:productOverrides": overrides}, base=DEMO)),
                        "--out", str(new)]) == 0
    code, out = diff_lines(dev_render, new, "--format", "markdown")
    assert code == 2
    text = "\n".join(out)
    assert "<summary><b>DataProduct customer-features</b></summary>" in text
    assert "```diff\n~ Deployment customer/customer-features\n      spec.replicas: 2 -> 3\n```" in text
    assert "| **total** |" not in text  # no cost change, no cost table


def test_outputs_policy_findings_and_cost_are_diffed(tmp_path):
    def write(folder, urn_name, outputs, violations, monthly):
        folder.mkdir()
        res = {"urn": f"urn:{urn_name}", "type": "aws:ec2/natGateway:NatGateway", "name": urn_name, "parent": None,
               "provider": None, "providers": {}, "dependencies": [], "inputs": {}}
        (folder / "resources.json").write_text(json.dumps([res]))
        (folder / "outputs.json").write_text(json.dumps(outputs))
        (folder / "policy-report.json").write_text(json.dumps({"violations": violations}))
        rows = [{"urn": f"urn:{urn_name}", "label": f"NAT {urn_name}", "monthly": monthly}]
        (folder / "cost.json").write_text(json.dumps({"resources": rows, "total": monthly}))

    finding = {"rule": "r", "urn": "u", "level": "advisory", "message": "m"}
    write(tmp_path / "old", "a", {"productUrls": {"x": "http://h/x/"}}, [finding], 39.84)
    write(tmp_path / "new", "b", {"productUrls": {"x": "http://h/x/", "y": "http://h/y/"}}, [], 79.68)
    text = diff_renders(tmp_path / "old", tmp_path / "new")
    assert "== stack outputs\n    + productUrls.y: \"http://h/y/\"\n" in text
    assert "== policy report\n    - advisory r: m\n" in text
    assert "      +$39.84  total ($39.84 -> $79.68)" in text
    assert "      -$39.84  NAT a ($39.84 -> $0.00)" in text and "      +$79.68  NAT b ($0.00 -> $79.68)" in text
    assert text.splitlines()[-1] == ("1 to add, 0 to change, 1 to delete; 1 output change(s); "
                                     "1 policy finding change(s); cost +$39.84/month ($79.68 list price)")


def test_a_base_without_cost_json_is_not_priced_at_zero(dev_render, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(dev_render, base)
    (base / "cost.json").unlink()  # renders from before the estimate
    text = diff_renders(base, dev_render)
    total = json.loads((dev_render / "cost.json").read_text())["total"]
    assert text == ("0 to add, 0 to change, 0 to delete; 0 output change(s); 0 policy finding change(s); "
                    f"cost not compared (a render without cost.json; ${total:,.2f} list price)\n")


def test_masked_secrets_do_not_show():
    old = {"key": "[secret]", "n": 1}
    assert diff_values(old, {"key": "[secret]", "n": 2}) == [Change("n", "~", 1, 2)]


@pytest.mark.parametrize(("old", "new", "expected"), [
    # The example: a consumer added to one rule is one insertion, whatever its position.
    ({"rules": [{"to": [{"operation": {"paths": ["/a/*"]}}], "when": [{"key": "h", "values": ["x"]}]}]},
     {"rules": [{"to": [{"operation": {"paths": ["/b/*"]}}], "when": [{"key": "h", "values": ["x"]}]},
                {"to": [{"operation": {"paths": ["/a/*"]}}], "when": [{"key": "h", "values": ["y", "x"]}]}]},
     ['+ rules[to /b/*]: {"to": [{"operation": {"paths": ["/b/*"]}}], "when": [{"key": "h", "values": ["x"]}]}',
      '+ rules[to /a/*].when[h].values: "y"']),
    ({"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]},
     {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}]}]},
     ["  containers[a].env: order only: X, Y -> Y, X"]),
    ({"ports": [{"port": 80}, {"port": 443}]}, {"ports": [{"port": 8080}, {"port": 443}]},
     ['- ports[80]: {"port": 80}', '+ ports[8080]: {"port": 8080}']),
    ({"args": ["a", "b"]}, {"args": ["b", "a"]}, ['  args: order only: "a", "b" -> "b", "a"']),
    ({"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 50}}]},
     {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 30}}]},
     ["  blockDeviceMappings[/dev/xvda].ebs.volumeSize: 50 -> 30"]),
    ({"data": {"server.py": "a\nb\n"}}, {"data": {"server.py": "a\nc\n"}},
     ["  data.server.py: text changed (2 lines)", "      -b", "      +c"]),
    ({"items": [{"a": 1}]}, {"items": [{"a": 2}]},  # nothing to key an item by: a content hash
     ['- items[#f9d86028]: {"a": 1}', '+ items[#e5a9d5b0]: {"a": 2}']),
    ({"policy": '{"Statement": [{"Sid": "a", "Action": "s3:Get"}]}'},
     {"policy": '{"Statement": [{"Sid": "a", "Action": "s3:Put"}]}'},
     ['  policy.Statement[a].Action: "s3:Get" -> "s3:Put"']),
])
def test_lists_are_matched_by_identity(old, new, expected):
    assert [line for c in diff_values(old, new) for line in c.lines()] == expected


def test_diff_of_a_folder_that_is_not_a_render(tmp_path, capsys):
    assert render_main(["--diff", str(tmp_path), str(tmp_path)]) == 2
    assert "resources.json: no such file" in capsys.readouterr().err
    assert render_main(["--diff", str(tmp_path), str(tmp_path), "--exit-code"]) == 1  # 2 means "changes" there


def test_under_diff_exit_code_every_error_is_1_and_2_only_means_changes(tmp_path, dev_render, capsys):
    # A usage mistake: 2 elsewhere, 1 under --diff --exit-code (terraform plan -detailed-exitcode).
    with pytest.raises(SystemExit) as usage:
        render_main(["--diff", str(dev_render), str(dev_render), "--exit-code", "--format", "pdf"])
    assert usage.value.code == 1
    with pytest.raises(SystemExit) as usage:
        render_main(["--diff", str(dev_render), str(dev_render), "--format", "pdf"])
    assert usage.value.code == 2
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert render_main(["--diff", str(dev_render), str(dev_render), "--exit-code", "--graph-out", str(blocker)]) == 1
    assert render_main(["--diff", str(dev_render), str(dev_render), "--graph-out", str(blocker)]) == 2
    assert render_main(["--diff", str(dev_render), str(dev_render), "--exit-code"]) == 0
    capsys.readouterr()


def test_one_exit_code_enum():
    from tools.cli import EXIT_BAD_INPUT, Exit

    assert (Exit.OK, Exit.FAILED, Exit.BAD_INPUT, Exit.CANNOT_FINISH) == (0, 1, 2, 3)
    assert (Exit.DIFF_ERROR, Exit.CHANGES) == (1, 2) and EXIT_BAD_INPUT is Exit.BAD_INPUT
    for path in (ROOT / "tools").rglob("*.py"):
        for line in path.read_text().splitlines():
            assert not re.match(r"\s*EXIT_\w+ = \d", line), f"{path}: {line.strip()} (exit codes live in tools.cli.Exit)"


def test_lineage_shows_domains_products_consumption_and_access(dev_render):
    mermaid = (dev_render / "lineage.mmd").read_text().splitlines()
    dot = (dev_render / "lineage.dot").read_text()
    assert mermaid[0] == "graph LR"
    assert '  subgraph d_customer["domain customer"]' in mermaid and '  subgraph d_sales["domain sales"]' in mermaid
    consumes = sorted(line.strip() for line in mermaid if "-->|consumes|" in line)
    assert consumes == ["p_customer_revenue -->|consumes| p_customer_features",
                        "p_customer_revenue -->|consumes| p_revenue_predictor"]
    calls = sorted(line.strip() for line in mermaid if "-.->|may call|" in line)
    assert calls == [  # Pulumi.dev.yaml: analytics may call all three, partner-portal only customer-revenue
        "c_analytics -.->|may call| p_customer_features",
        "c_analytics -.->|may call| p_customer_revenue",
        "c_analytics -.->|may call| p_revenue_predictor",
        "c_partner_portal -.->|may call| p_customer_revenue",
    ]
    assert dot.startswith("digraph lineage {") and dot.count("subgraph cluster_") == 2
    assert dot.count('[label="consumes"]') == 2 and dot.count('label="may call"') == 4


def test_graph_of_a_diff_highlights_what_changed(dev_render, tmp_path):
    new = tmp_path / "new"
    overrides = {**stack_file(DEMO)["config"]["datamesh:productOverrides"], "customer-features": {"replicas": 3}}
    assert render_main(["--stack", "dev", "--config", str(write_stack(tmp_path, {"datamesh:productOverrides": overrides}, base=DEMO)),
                        "--out", str(new)]) == 0
    assert render_main(["--diff", str(dev_render), str(new), "--graph-out", str(tmp_path / "g")]) == 0
    dot = (tmp_path / "g" / "changes.dot").read_text()
    mermaid = (tmp_path / "g" / "changes.mmd").read_text()
    highlighted = [line for line in dot.splitlines() if "fillcolor" in line]
    assert len(highlighted) == 1 and "kubernetes:apps/v1:Deployment\\ncustomer-features" in highlighted[0]
    node = highlighted[0].split()[0]
    assert f"  class {node} changed" in mermaid.splitlines()


def test_graph_files_draw_every_resource_and_dependency(dev_render):
    resources = json.loads((dev_render / "resources.json").read_text())
    dot = (dev_render / "graph.dot").read_text()
    mermaid = (dev_render / "graph.mmd").read_text()
    assert dot.startswith("strict digraph datamesh {") and dot.rstrip().endswith("}")
    assert mermaid.startswith("graph LR")
    edges = sum(len(r["dependencies"]) for r in resources)
    assert dot.count(" -> ") - dot.count("style=dotted") == edges
    assert mermaid.count(" --> ") == edges
    assert dot.count("[label=") == len(resources)
    # One cluster per top-level component (network, cluster, istio, each product, ...), and the stack's own.
    groups = {line.split('"')[1] for line in dot.splitlines() if line.strip().startswith("label=")}
    assert {"Network network", "Cluster cluster", "Istio istio", "DataProduct customer-features", "stack"} <= groups
    assert mermaid.count("  subgraph ") == len(groups) == dot.count("subgraph cluster_")


def test_dot_files_parse_as_graphviz(dev_render, tmp_path):
    # pydot's DOT grammar; the files were also drawn with Graphviz 2.43 `dot -Tsvg` (docs/operating.md).
    resources = json.loads((dev_render / "resources.json").read_text())
    (graph,) = pydot.graph_from_dot_file(str(dev_render / "graph.dot"))
    assert sum(len(s.get_nodes()) for s in graph.get_subgraphs()) == len(resources)
    parents = sum(r["parent"] is not None for r in resources)
    assert len(graph.get_edges()) == sum(len(r["dependencies"]) for r in resources) + parents
    (lineage,) = pydot.graph_from_dot_file(str(dev_render / "lineage.dot"))
    assert [s.get_label() for s in lineage.get_subgraphs()] == ['"domain customer"', '"domain sales"']
    assert len(lineage.get_edges()) == 6


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_are_valid_github_workflows(workflow):
    # The GitHub workflow schema; tests/repo/test_workflows.py also runs actionlint over them.
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(workflow)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pull_request_workflow_tests_renders_diffs_and_previews():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yml").read_text())
    text = json.dumps(wf)
    assert "bash .ci/run" in text and "actionlint" in text
    assert wf["jobs"]["render"]["strategy"]["matrix"]["stack"] == sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))
    assert "tools.render --diff" in text and "GITHUB_STEP_SUMMARY" in text
    preview = next(s for s in wf["jobs"]["preview"]["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert preview["with"]["command"] == "preview" and preview["with"]["policyPacks"] == "policies"
    assert preview["with"]["comment-on-pr"] is True and preview["with"]["diff"] is True
    assert wf["jobs"]["preview"]["if"] == "vars.AWS_PREVIEW_ROLE_ARN != ''"  # the preview role, never a deploy role


def test_main_deploys_dev_then_prod_behind_an_environment():
    deploy = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    up = yaml.safe_load((ROOT / ".github" / "workflows" / "pulumi-up.yml").read_text())
    assert deploy[True] == {"push": {"branches": ["main"]}}  # YAML 1.1 reads the key `on` as True
    assert deploy["jobs"]["up-dev"]["with"] == {"stack": "dev"}
    assert deploy["jobs"]["up-prod"]["needs"] == "up-dev" and deploy["jobs"]["up-prod"]["with"] == {"stack": "prod"}
    assert up["jobs"]["up"]["environment"] == "${{ inputs.stack }}"
    step = next(s for s in up["jobs"]["up"]["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert step["with"]["command"] == "up" and step["with"]["policyPacks"] == "policies"


@pytest.mark.parametrize("flag", [["--exit-code"], ["--graph-out", "g"], ["--format", "markdown"]])
def test_diff_only_flags_without_diff_are_a_usage_error(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as exited:
        render_main(["--stack", "dev", "--out", str(tmp_path / "out"), *flag])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"{flag[0]} goes with --diff" in err
    assert not (tmp_path / "out").exists()
