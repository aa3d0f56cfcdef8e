"""The scaffold (tools.new_product) and the declaration schema editors read."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from components.products.declarations import DECLARATION_SCHEMA, load_products
from policies.rules import MANDATORY
from tests.conftest import DEMO, ROOT, copy_program, fresh_name
from tools import new_product
from tools.engine.render import check_policies, render_stack, write_render
from tools.engine.review import compare_renders, format_text

SCHEMA_FILE = ROOT / "products" / "schema" / "declaration.schema.json"


def project_copy(tmp_path: Path) -> Path:
    return copy_program(tmp_path / "project")


def test_the_editor_schema_is_the_one_the_program_validates_with():
    on_disk = json.loads(SCHEMA_FILE.read_text())
    assert {k: v for k, v in on_disk.items() if k not in ("title", "$comment")} == DECLARATION_SCHEMA
    jsonschema.Draft202012Validator.check_schema(on_disk)


@pytest.mark.parametrize("source", sorted((ROOT / "products").glob("*.yaml")), ids=lambda p: p.stem)
def test_each_declaration_names_the_schema_and_passes_it(source):
    first = source.read_text().splitlines()[0]
    assert first == new_product.SCHEMA_REF
    assert (source.parent / first.split("$schema=")[1]).resolve() == SCHEMA_FILE
    # as an editor would check it: plain JSON Schema, no program code
    jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(yaml.safe_load(source.read_text()))


def test_scaffolded_products_render_everywhere_and_pass_the_policy_pack(tmp_path, capsys):
    project = copy_program(tmp_path / "project", base=DEMO)
    products = project / "products"
    base = tmp_path / "base"
    write_render(render_stack("dev", project_dir=project), base)
    # Names no declaration uses yet (a team may have added a churn-scorer to the repository already).
    scorer = fresh_name(products, "churn-scorer")
    lookup = fresh_name(products, "churn-lookup")
    assert new_product.main([scorer, "--domain", "churn", "--kind", "predict",
                             "--consumes", "customer-features", "--products", str(products)]) == 0
    out = capsys.readouterr().out
    assert "datamesh:products" in out and "datamesh:consumers" in out
    assert new_product.main([lookup, "--domain", "churn", "--kind", "lookup", "--bare-paths",
                             "--products", str(products)]) == 0
    by_name = {p.name: p for p in load_products(products, ["customer-features", scorer, lookup], {})}
    assert by_name[scorer].route_rewrite is False and by_name[lookup].route_rewrite is True

    stack = yaml.safe_load((project / "Pulumi.dev.yaml").read_text())
    stack["config"]["datamesh:products"] += [scorer, lookup]
    stack["config"]["datamesh:consumers"]["analytics"]["products"] += [scorer, lookup]
    (project / "Pulumi.dev.yaml").write_text(yaml.safe_dump(stack))
    result = render_stack("dev", project_dir=project)
    violations = check_policies(result, {})
    assert [v for v in violations if v.level == MANDATORY] == []
    new = tmp_path / "new"
    write_render(result, new, violations)

    assert (new / "manifests" / f"deployment-churn-{scorer}.yaml").is_file()
    vs = yaml.safe_load((new / "manifests" / f"virtualservice-churn-{lookup}.yaml").read_text())
    assert vs["spec"]["http"][0]["match"] == [{"uri": {"prefix": f"/public/api/v1/{lookup}/"}}]
    assert vs["spec"]["http"][0]["rewrite"] == {"uri": "/"}
    vs = yaml.safe_load((new / "manifests" / f"virtualservice-churn-{scorer}.yaml").read_text())
    assert "rewrite" not in vs["spec"]["http"][0]
    catalog = "".join(p.read_text() for p in (new / "catalog").rglob("*.yaml"))
    assert f"name: {scorer}" in catalog and f"/public/api/v1/{scorer}/predict" in catalog
    diff = format_text(compare_renders(base, new))
    assert scorer in diff and lookup in diff


@pytest.mark.parametrize(("argv", "named"), [
    (["customer-features", "--domain", "customer", "--kind", "lookup"], "already exists"),
    (["Churn", "--domain", "churn", "--kind", "lookup"], "NAME: 'Churn' is not a product name"),
    (["churn", "--domain", "kube-system", "--kind", "lookup"], "--domain: 'kube-system'"),
    (["churn", "--domain", "churn", "--kind", "lookup", "--consumes", "nope"], "--consumes: 'nope' is not a declared product"),
    (["churn", "--domain", "churn", "--kind", "train"], "--kind"),
    (["churn", "--domain", "churn", "--kind", "lookup", "--owner", ""], "--owner: '' is not a team name"),
    (["churn", "--domain", "churn", "--kind", "lookup", "--products", "/nonexistent/products"],
     "--products: /nonexistent/products is not a folder"),
    (["churn", "--domain", "churn", "--kind", "lookup", "--products", "TMP"], "is not a datamesh products folder"),
])
def test_bad_scaffold_requests_are_one_line_and_write_nothing(tmp_path, capsys, argv, named):
    products = project_copy(tmp_path) / "products"
    before = sorted(p.relative_to(products) for p in products.rglob("*"))
    elsewhere = tmp_path / "elsewhere"  # any folder that is not a products folder, e.g. a typo's
    elsewhere.mkdir()
    argv = [str(elsewhere) if a == "TMP" else a for a in argv]
    try:
        code = new_product.main(argv if "--products" in argv else [*argv, "--products", str(products)])
    except SystemExit as exit_:  # argparse's own refusals exit through OneLineParser
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and named in err, err
    assert sorted(p.relative_to(products) for p in products.rglob("*")) == before
    assert list(elsewhere.iterdir()) == []



def test_a_product_no_consumer_may_call_is_a_warning(tmp_path, demo):
    from tests.conftest import render_variant, stack_file, undated

    consumers = stack_file(DEMO)["config"]["datamesh:consumers"]
    consumers["analytics"]["products"] = ["customer-features"]
    result = render_variant(tmp_path, {"datamesh:consumers": consumers}, base=DEMO)
    assert undated(result.warnings) == [
        "datamesh:consumers: no consumer may call revenue-predictor; add it to a consumer's products",
        "datamesh:apiKeys: 2 key(s) not decrypted (an offline render): the gateway accepts none of them"]
    assert undated(demo.warnings) == []  # rendered with test keys: nothing undecrypted, every product callable


def test_the_field_table_documents_every_declaration_field():
    doc = (ROOT / "docs" / "data-products.md").read_text()
    table = [line for line in doc.splitlines() if line.startswith("| `")]
    missing = [f for f in DECLARATION_SCHEMA["properties"] if not any(f"`{f}`" in line.split(" | ")[0] for line in table)]
    assert missing == []


def test_the_render_prints_the_warning_in_one_line(tmp_path, capsys):
    from tests.conftest import stack_file, write_stack
    from tools.render import main

    consumers = stack_file(DEMO)["config"]["datamesh:consumers"]
    consumers["analytics"]["products"] = ["customer-features", "customer-revenue"]
    config = write_stack(tmp_path, {"datamesh:consumers": consumers}, base=DEMO)
    assert main(["--stack", "dev", "--config", str(config), "--out", str(tmp_path / "out")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "may call" in line]
    assert warnings == ["warning: datamesh:consumers: no consumer may call revenue-predictor; add it to a consumer's products"]


def test_the_scaffolds_stand_in_serves_its_health_and_operation(tmp_path):
    """The scaffold's pod must start and pass its probes: its command runs the stand-in, which answers."""
    import http.client
    import socket
    import subprocess
    import sys
    import time

    from tools.new_product import declaration

    doc = declaration("churn-x", "churn", "team-churn", "predict", [])
    assert doc["command"] == ["python", "/app/stand_in.py"] and doc["files"] == {"stand_in.py": "demo/stand_in.py"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(ROOT / "products" / doc["files"]["stand_in.py"])],
                              env={"PORT": str(port), **doc["env"]}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", doc["healthPath"])
                assert connection.getresponse().status == 200
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        else:
            raise AssertionError("the stand-in never listened")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("POST", doc["routePrefix"] + "predict", body=b"{}", headers={"Content-Type": "application/json"})
        assert connection.getresponse().status == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
