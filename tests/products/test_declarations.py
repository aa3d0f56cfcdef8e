"""Product declarations: every bad one fails before any resource, naming the file and the field."""

import shutil

import pytest
import yaml

from components.products.declarations import DeclarationError, load_products, parse_declaration, upstream_env_name
from tests.conftest import ROOT, fresh_name, write_stack
from tools.engine import mockrun
from tools.render import main as render_main

DEV_PRODUCTS = ["customer-features", "revenue-predictor", "customer-revenue"]


@pytest.fixture
def products_dir(tmp_path):
    """A copy of products/ to break."""
    folder = tmp_path / "products"
    shutil.copytree(ROOT / "products", folder)
    return folder


def edit(folder, name, change):
    path = folder / f"{name}.yaml"
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc))
    return path


def setter(**fields):
    return lambda doc: doc.update(fields)


def dropper(field):
    return lambda doc: doc.pop(field)


# (product file to edit, change, field the message names, what it says)
BAD_DECLARATIONS = [
    ("customer-revenue", setter(consumes=["customer-features", "fraud-scores"]), "consumes", "'fraud-scores' is not a declared product"),
    ("customer-features", setter(consumes=["customer-revenue"]), "consumes", "dependency cycle"),
    ("customer-features", setter(consumes=["customer-features"]), "consumes", "cannot consume itself"),
    ("revenue-predictor", setter(image="python:latest"), "image", "moving tag"),
    ("revenue-predictor", setter(image="registry.example.com:5000/models/revenue"), "image", "no tag"),
    ("revenue-predictor", setter(image="python@sha256:1234"), "image", "malformed sha256 digest"),
    ("revenue-predictor", setter(protocol="soap"), "protocol", "'soap' is not one of http"),
    ("revenue-predictor", setter(lifecycle="beta"), "lifecycle", "'beta' is not one of"),
    ("revenue-predictor", dropper("owner"), "(top level)", "'owner' is a required property"),
    ("revenue-predictor", setter(port=80), "port", "less than the minimum of 1024"),
    ("revenue-predictor", setter(replicas=3), "replicas", "either replicas or autoscaling"),
    ("revenue-predictor", setter(autoscaling={"minReplicas": 5, "maxReplicas": 2}), "autoscaling.minReplicas", "above maxReplicas"),
    ("revenue-predictor", setter(resources={"requests": {"cpu": "2", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}}),
     "resources.requests.cpu", "above the limit"),
    ("revenue-predictor", setter(resources={"requests": {"cpu": "lots", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}}),
     "resources.requests.cpu", "is not a Kubernetes quantity like 250m"),
    ("revenue-predictor", setter(version="v1"), "version", "is not a semantic version like 1.4.0"),
    ("revenue-predictor", setter(name="revenue"), "name", "must match the file name"),
    ("revenue-predictor", setter(domain="kube-system"), "domain", "platform namespace"),
    ("revenue-predictor", setter(routePrefix="/public/api/v1/"), "routePrefix", "overlaps customer-features"),
    ("revenue-predictor", setter(routePrefix="public"), "routePrefix", "is not a path starting and ending with '/'"),
    ("revenue-predictor", setter(replica=2), "replica", "unknown field (did you mean 'replicas'?)"),
    ("revenue-predictor", setter(openapi="openapi/missing.yaml"), "openapi", "does not exist"),
    ("revenue-predictor", setter(files={"server.py": "demo/nope.py"}), "files.server.py", "does not exist"),
    ("revenue-predictor", setter(env={"bad-name": "x"}), "env", "'bad-name' is not an environment variable name"),
]


@pytest.mark.parametrize(("name", "change", "field", "problem"), BAD_DECLARATIONS,
                         ids=[f"{c[2]}:{c[3]}" for c in BAD_DECLARATIONS])
def test_bad_declaration_names_the_file_and_field(products_dir, name, change, field, problem):
    path = edit(products_dir, name, change)
    with pytest.raises(DeclarationError) as caught:
        load_products(products_dir, DEV_PRODUCTS, {})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{products_dir}/"), message
    assert f": {field}: " in message, message
    assert problem in message, message
    if field not in ("consumes", "routePrefix"):  # graph problems name one file of the graph
        assert message.startswith(f"{path}: ")


def test_invalid_openapi_names_the_file_and_the_place(products_dir):
    spec = products_dir / "openapi" / "revenue-predictor.yaml"
    doc = yaml.safe_load(spec.read_text())
    doc["paths"]["/public/api/v1/revenue-predictor/revenue/predict"]["post"]["responses"] = {"200": {"content": {}}}
    spec.write_text(yaml.safe_dump(doc))
    with pytest.raises(DeclarationError, match=r"revenue-predictor\.yaml: openapi: openapi/revenue-predictor\.yaml is not valid OpenAPI"):
        load_products(products_dir, DEV_PRODUCTS, {})


def test_openapi_that_is_not_openapi(products_dir):
    (products_dir / "openapi" / "revenue-predictor.yaml").write_text("title: just some yaml\n")
    with pytest.raises(DeclarationError, match=r"openapi: openapi/revenue-predictor\.yaml is not"):
        load_products(products_dir, DEV_PRODUCTS, {})


def test_unparseable_declaration(products_dir):
    (products_dir / "revenue-predictor.yaml").write_text("name: [unclosed\n")
    with pytest.raises(DeclarationError, match=r"revenue-predictor\.yaml: \(file\): not valid YAML \(line 2\)"):
        load_products(products_dir, DEV_PRODUCTS, {})


def test_unknown_upstream_that_exists_but_is_not_selected(products_dir):
    with pytest.raises(DeclarationError, match="'revenue-predictor' is not a selected product"):
        load_products(products_dir, ["customer-features", "customer-revenue"], {})


def test_selection_and_override_errors_name_the_config_key(products_dir):
    with pytest.raises(DeclarationError, match=r"^datamesh:products: 'fraud' has no declaration"):
        load_products(products_dir, ["fraud"], {})
    with pytest.raises(DeclarationError, match=r"^datamesh:productOverrides.fraud: is not a selected product"):
        load_products(products_dir, DEV_PRODUCTS, {"fraud": {"replicas": 1}})
    with pytest.raises(DeclarationError, match=r"^datamesh:productOverrides.customer-features.image: cannot be overridden"):
        load_products(products_dir, DEV_PRODUCTS, {"customer-features": {"image": "x:1"}})
    # A bad override is the stack's mistake: named against the stack key, not the product's file.
    with pytest.raises(DeclarationError, match=r"^datamesh:productOverrides.customer-features: replicas: 0 is less than the minimum of 1"):
        load_products(products_dir, DEV_PRODUCTS, {"customer-features": {"replicas": 0}})


def test_overrides_replace_scaling_and_resources(products_dir):
    products = {p.name: p for p in load_products(products_dir, DEV_PRODUCTS, {
        "revenue-predictor": {"replicas": 1},
        "customer-features": {"autoscaling": {"minReplicas": 2, "maxReplicas": 9}, "resources": {"limits": {"memory": "512Mi"}}},
    })}
    assert products["revenue-predictor"].replicas == 1 and products["revenue-predictor"].autoscaling is None
    cf = products["customer-features"]
    assert cf.replicas is None and (cf.autoscaling.min_replicas, cf.autoscaling.max_replicas) == (2, 9)
    assert cf.resources["limits"] == {"cpu": "500m", "memory": "512Mi"} and cf.resources["requests"]["cpu"] == "50m"


def test_upstreams_come_first_and_dataiku_defaults_apply(products_dir):
    order = [p.name for p in load_products(products_dir, list(reversed(DEV_PRODUCTS)), {})]
    assert order.index("customer-revenue") > order.index("customer-features")
    assert order.index("customer-revenue") > order.index("revenue-predictor")
    doc = yaml.safe_load((products_dir / "customer-features.yaml").read_text())
    for key in ("port", "healthPath", "routePrefix"):
        doc.pop(key)
    (products_dir / "customer-features.yaml").write_text(yaml.safe_dump(doc))
    p = parse_declaration(products_dir / "customer-features.yaml")
    assert (p.port, p.health_path, p.route_prefix) == (12000, "/isAlive/", "/public/api/v1/customer-features/")
    assert p.port_name == "http-api"
    assert upstream_env_name("customer-features") == "UPSTREAM_CUSTOMER_FEATURES_URL"


def test_bad_declaration_through_the_render_exits_2_and_registers_nothing(tmp_path, capsys, monkeypatch):
    made = []
    original = mockrun.RecordingMonitor.__init__
    monkeypatch.setattr(mockrun.RecordingMonitor, "__init__", lambda self, m: (original(self, m), made.append(self))[0])
    stack = write_stack(tmp_path, {"datamesh:products": ["customer-features", "no-such-product"]}, drop=("datamesh:productOverrides",))
    code = render_main(["--stack", "dev", "--config", str(stack), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"error: datamesh:products: 'no-such-product' has no declaration {ROOT / 'products' / 'no-such-product.yaml'}"]
    assert not (tmp_path / "out").exists()
    assert [r.type for r in made[0].registrations] == ["pulumi:pulumi:Stack"]


def test_a_declaration_no_stack_selects_is_validated_too(products_dir):
    """A product file not in the stack's list, pointing at a missing OpenAPI file, fails the load."""
    name = fresh_name(products_dir, "churn-scorer")  # not a product the repository declares already
    doc = yaml.safe_load((products_dir / "customer-features.yaml").read_text())
    doc.update(name=name, openapi=f"openapi/{name}.yaml", routePrefix=f"/public/api/v1/{name}/")
    (products_dir / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(DeclarationError) as caught:
        load_products(products_dir, DEV_PRODUCTS, {})
    assert str(caught.value) == f"{products_dir / f'{name}.yaml'}: openapi: openapi/{name}.yaml does not exist"


def test_all_problems_of_a_declaration_at_once(products_dir):
    edit(products_dir, "revenue-predictor", setter(replica=2, lifecycle="beta", image="python:latest", proto="http"))
    with pytest.raises(DeclarationError) as caught:
        load_products(products_dir, DEV_PRODUCTS, {})
    message = str(caught.value)
    assert "\n" not in message
    assert "proto: unknown field (did you mean 'protocol'?)" in message
    assert "replica: unknown field (did you mean 'replicas'?)" in message
    assert "lifecycle: 'beta' is not one of" in message
    # the image's pin is a meaning check, run once the shape is right
    edit(products_dir, "revenue-predictor", lambda d: [d.pop(k) for k in ("replica", "proto")] and d.update(lifecycle="production"))
    edit(products_dir, "revenue-predictor", setter(domain="kube-system", name="other"))
    with pytest.raises(DeclarationError) as caught:
        load_products(products_dir, DEV_PRODUCTS, {})
    message = str(caught.value)
    assert ": name: 'other' must match" in message and "; domain: 'kube-system'" in message and "; image: " in message


def test_problems_are_bounded(products_dir):
    edit(products_dir, "revenue-predictor", setter(**{f"extra{i}": 1 for i in range(25)}))
    with pytest.raises(DeclarationError, match=r"\(and 5 more\)$") as caught:
        load_products(products_dir, DEV_PRODUCTS, {})
    assert str(caught.value).count("unknown field") == 20


def test_openapi_paths_outside_the_route_are_refused(products_dir):
    spec = products_dir / "openapi" / "revenue-predictor.yaml"
    doc = yaml.safe_load(spec.read_text())
    doc["paths"] = {"/churn/score": doc["paths"].popitem()[1]}
    spec.write_text(yaml.safe_dump(doc))
    with pytest.raises(DeclarationError, match=r"revenue-predictor\.yaml: openapi: openapi/revenue-predictor\.yaml: paths: "
                       r"/churn/score is outside the route /public/api/v1/revenue-predictor/"):
        load_products(products_dir, DEV_PRODUCTS, {})
    for bad_server, problem in (("/public/api/v1/other", "is not the route prefix"),
                                ("https://{host}/x", "server variables are not supported")):
        doc["servers"] = [{"url": bad_server}]
        spec.write_text(yaml.safe_dump(doc))
        with pytest.raises(DeclarationError, match=problem):
            load_products(products_dir, DEV_PRODUCTS, {})


def test_a_server_at_the_prefix_makes_the_gateway_rewrite(products_dir):
    spec = products_dir / "openapi" / "revenue-predictor.yaml"
    doc = yaml.safe_load(spec.read_text())
    doc["paths"] = {"/revenue/predict": doc["paths"].popitem()[1]}
    doc["servers"] = [{"url": "https://api.example.com/public/api/v1/revenue-predictor"}]
    spec.write_text(yaml.safe_dump(doc))
    products = {p.name: p for p in load_products(products_dir, DEV_PRODUCTS, {})}
    assert products["revenue-predictor"].route_rewrite is True
    assert products["customer-features"].route_rewrite is False
