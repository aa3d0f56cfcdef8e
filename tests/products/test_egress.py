"""Egress closed by default: REGISTRY_ONLY mesh-wide, and a product's declared external hosts as ServiceEntries."""

from __future__ import annotations

import shutil

import pytest
import yaml

from components.products.declarations import DeclarationError, parse_declaration
from tests.conftest import ROOT
from tools.engine.mockrun import run_program

PROGRAM = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
import pulumi
import pulumi_kubernetes as k8s
from components.products.declarations import parse_declaration
from components.products.data_product import DataProduct, DataProductArgs

product = parse_declaration(Path({source!r}))
provider = k8s.Provider("k8s")
namespace = k8s.core.v1.Namespace("ns", metadata={{"name": product.domain}})
gateway = k8s.apiextensions.CustomResource("gw", api_version="networking.istio.io/v1", kind="Gateway",
                                           metadata={{"name": "datamesh"}}, spec={{}})
DataProduct(product.name, DataProductArgs(product=product, upstreams=(), namespace=namespace,
                                          gateway="istio-ingress/datamesh", gateway_resource=gateway),
            pulumi.ResourceOptions(providers=[provider]))
"""


def declaration(tmp_path, egress):
    folder = tmp_path / "products"
    shutil.copytree(ROOT / "products" / "openapi", folder / "openapi")
    shutil.copytree(ROOT / "products" / "demo", folder / "demo")
    doc = yaml.safe_load((ROOT / "products" / "customer-features.yaml").read_text())
    doc["egress"] = egress
    source = folder / "customer-features.yaml"
    source.write_text(yaml.safe_dump(doc))
    return source


def test_the_mesh_reaches_only_registered_hosts(dev):
    mesh = dev.one("kubernetes:helm.sh/v3:Release", "istiod").inputs["values"]["meshConfig"]
    assert mesh["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}


def test_declared_egress_hosts_become_service_entries_in_the_products_sidecar(tmp_path):
    source = declaration(tmp_path, ["api.example.com", "files.example.org:8443"])
    program = tmp_path / "program.py"
    program.write_text(PROGRAM.format(root=str(ROOT), source=str(source)))
    result = run_program({}, [], stack="dev", program=program)
    entries = {r.inputs["spec"]["hosts"][0]: r.inputs for r in result.resources if r.type.endswith(":ServiceEntry")}
    assert set(entries) == {"api.example.com", "files.example.org"}
    api = entries["api.example.com"]
    assert api["metadata"]["namespace"] == "customer"
    assert api["spec"] == {"hosts": ["api.example.com"], "ports": [{"number": 443, "name": "tls-443", "protocol": "TLS"}],
                           "resolution": "DNS", "location": "MESH_EXTERNAL", "exportTo": ["."]}
    assert entries["files.example.org"]["spec"]["ports"] == [{"number": 8443, "name": "tls-8443", "protocol": "TLS"}]
    [sidecar] = [r for r in result.resources if r.type.endswith(":Sidecar")]
    assert sidecar.inputs["spec"]["egress"] == [{"hosts": ["istio-system/*", "./api.example.com", "./files.example.org"]}]


def test_products_without_egress_reach_nothing_outside(dev):
    assert not [r for r in dev.resources if r.type.endswith(":ServiceEntry")]


@pytest.mark.parametrize(("egress", "problem"), [
    (["https://api.example.com"], "egress[0]"),
    (["*.example.com"], "egress[0]"),
    (["api.example.com:0"], "egress[0]"),
    (["api.example.com:70000"], "egress: 'api.example.com:70000': the port must be 1 to 65535"),
    (["api.example.com", "api.example.com"], "egress"),
    (["api.example.com", "api.example.com:8443"], "egress: 'api.example.com' is declared twice"),
    ("api.example.com", "egress"),
])
def test_bad_egress_names_the_file_and_field(tmp_path, egress, problem):
    source = declaration(tmp_path, egress)
    with pytest.raises(DeclarationError) as caught:
        parse_declaration(source)
    assert str(caught.value).startswith(f"{source}: {problem}"), str(caught.value)


def test_hosts_whose_names_fold_alike_get_distinct_service_entries(tmp_path):
    # Dots become dashes in the object name, so these two would collide without the host's digest.
    source = declaration(tmp_path, ["a.b-c.com", "a-b.c.com"])
    program = tmp_path / "program.py"
    program.write_text(PROGRAM.format(root=str(ROOT), source=str(source)))
    result = run_program({}, [], stack="dev", program=program)
    names = [r.inputs["metadata"]["name"] for r in result.resources if r.type.endswith(":ServiceEntry")]
    assert len(names) == 2 and len(set(names)) == 2
    assert all(n.startswith("customer-features-egress-a-b-c-com-") and len(n) <= 253 for n in names)


def test_the_engine_refuses_two_resources_with_one_urn(tmp_path):
    from tools.engine.mockrun import DuplicateResourceError

    program = tmp_path / "program.py"
    program.write_text("import pulumi_kubernetes as k8s\n"
                       "k8s.core.v1.Namespace('same', metadata={'name': 'a'})\n"
                       "k8s.core.v1.Namespace('same', metadata={'name': 'b'})\n")
    with pytest.raises(DuplicateResourceError, match="two resources share the URN"):
        run_program({}, [], stack="dev", program=program)


def test_the_render_refuses_one_object_declared_twice(tmp_path):
    from tools.engine.mockrun import DuplicateResourceError
    from tools.engine.render import write_render

    program = tmp_path / "program.py"
    program.write_text("import pulumi_kubernetes as k8s\n"
                       "k8s.core.v1.Namespace('one', metadata={'name': 'same'})\n"
                       "k8s.core.v1.Namespace('two', metadata={'name': 'same'})\n")
    result = run_program({}, [], stack="dev", program=program)
    with pytest.raises(DuplicateResourceError, match="Namespace -/same is declared twice"):
        write_render(result, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written
