"""Stack configuration: every bad value stops the program before any resource exists."""

import subprocess
import sys

import pytest
import yaml

from components import config
from components.config import SCHEMA, ConfigError, load_settings
from tests.conftest import ROOT, write_stack
from tools.engine import mockrun
from tools.engine.stackconfig import load_stack_config
from tools.render import main as render_main

GOOD = {"kubernetesVersion": "1.35", "istioVersion": "1.30.5", "availabilityZones": '["eu-west-1a", "eu-west-1b"]',
        "allowPlainHttp": "true"}

# (overrides on top of Pulumi.dev.yaml, keys to drop, the key the message must name, what it must say)
BAD_CONFIGS = [
    ({"datamesh:nodeMinSize": "two"}, (), "datamesh:nodeMinSize", "whole number"),
    ({"datamesh:endpointPublicAccess": "maybe"}, (), "datamesh:endpointPublicAccess", "true or false"),
    ({"datamesh:vpcCidr": "10.0.0.0/33"}, (), "datamesh:vpcCidr", "not a valid IPv4 network CIDR"),
    ({"datamesh:serviceCidr": "10.0.128.0/20"}, (), "datamesh:serviceCidr", "overlaps vpcCidr"),
    ({"datamesh:vpcCidr": "10.0.0.0/8"}, (), "datamesh:vpcCidr", "larger than AWS allows"),
    ({"datamesh:kubernetesVersion": "1.27"}, (), "datamesh:kubernetesVersion", "not supported"),
    ({"datamesh:istioVersion": "1.11.5"}, (), "datamesh:istioVersion", "not a pinned Istio release"),
    ({"datamesh:availabilityZones": ["eu-west-1a"]}, (), "datamesh:availabilityZones", "2 to 6 zones"),
    ({"datamesh:availabilityZones": ["eu-west-1a", "us-east-1b"]}, (), "datamesh:availabilityZones",
     "not a zone of aws:region eu-west-1"),
    ({"datamesh:availabilityZones": ["eu-west-1a", "eu-west-1a"]}, (), "datamesh:availabilityZones", "twice"),
    ({"datamesh:nodeMinSize": 5, "datamesh:nodeMaxSize": 3}, (), "datamesh:nodeMinSize", "above nodeMaxSize"),
    ({"datamesh:nodeMaxSize": 500}, (), "datamesh:nodeMaxSize", "between 1 and 100"),
    ({"datamesh:nodeCapacityType": "spot"}, (), "datamesh:nodeCapacityType", "ON_DEMAND, SPOT"),
    ({"datamesh:natGateways": "many"}, (), "datamesh:natGateways", "single, perAz"),
    ({"datamesh:nodeInstanceTypes": "m6i.large"}, (), "datamesh:nodeInstanceTypes", "must be a YAML list"),
    ({"datamesh:controlPlaneLogs": ["api", "everything"]}, (), "datamesh:controlPlaneLogs", "'everything' is not one of"),
    ({"datamesh:publicAccessCidrs": ["0.0.0.0/0", "1.2.3.4/40"]}, (), "datamesh:publicAccessCidrs", "not a valid IPv4"),
    ({"datamesh:endpointPublicAccess": False, "datamesh:endpointPrivateAccess": False}, (),
     "datamesh:endpointPublicAccess", "nothing could reach the API"),
    ({"datamesh:meshNamespaces": ["kube-system"]}, (), "datamesh:meshNamespaces", "reserved"),
    ({"datamesh:meshNamespaces": ["Data_Products"]}, (), "datamesh:meshNamespaces", "not a DNS label"),
    ({"datamesh:adminPrincipalArns": ["alice"]}, (), "datamesh:adminPrincipalArns", "not an IAM role or user ARN"),
    ({"datamesh:clusterName": "9lives"}, (), "datamesh:clusterName", "must start with a letter"),
    ({"datamesh:nodeCount": 3}, (), "datamesh:nodeCount", "not a known key"),
    ({"nodeDiskSize": 5}, (), "datamesh:nodeDiskSize", "between 20 and 1000"),  # bare key: project namespace
    ({"datamesh:tags": {"aws:owner": "me"}}, (), "datamesh:tags", "not a usable AWS tag key"),
    ({"datamesh:tags": ["a"]}, (), "datamesh:tags", "must be a map"),
    ({"datamesh:tags": {"team": 7}}, (), "datamesh:tags.team", "the value must be a string"),
    ({"datamesh:products": ["customer-features", "customer-features"]}, (), "datamesh:products", "twice"),
    ({"datamesh:istioRevision": "1.30"}, (), "datamesh:istioRevision", "DNS label"),
    ({"datamesh:eksSupportType": "standard"}, (), "datamesh:eksSupportType", "STANDARD, EXTENDED"),
    ({"datamesh:kubernetesVersion": "1.33", "datamesh:istioVersion": "1.30.5"}, (), "datamesh:eksSupportType",
     "1.33 left standard support on 2026-07-29"),
    ({}, ("datamesh:kubernetesVersion",), "datamesh:kubernetesVersion", "is required"),
    ({}, ("aws:region",), "aws:region", "is required"),
    ({"aws:region": "Ireland"}, (), "aws:region", "not an AWS region name"),
]


@pytest.fixture
def monitors(monkeypatch):
    """Every RecordingMonitor made during the test, to prove nothing was registered."""
    made = []
    original = mockrun.RecordingMonitor.__init__

    def record(self, mocks):
        original(self, mocks)
        made.append(self)

    monkeypatch.setattr(mockrun.RecordingMonitor, "__init__", record)
    return made


@pytest.mark.parametrize(("overrides", "drop", "key", "problem"), BAD_CONFIGS, ids=[c[2] + ":" + c[3] for c in BAD_CONFIGS])
def test_bad_config_exits_2_with_one_line_naming_the_key(tmp_path, capsys, monitors, overrides, drop, key, problem):
    stack = write_stack(tmp_path, overrides, drop=drop)
    out = tmp_path / "render"
    code = render_main(["--stack", "dev", "--config", str(stack), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"error: {key}: "), lines[0]
    assert problem in lines[0]
    assert "Traceback" not in captured.err
    assert not out.exists(), "nothing may be written for a bad configuration"
    assert len(monitors) == 1
    registered = [r.type for r in monitors[0].registrations if r.type != "pulumi:pulumi:Stack"]
    assert registered == [], "nothing may be registered"


def test_bad_config_process_exit_code_and_no_traceback(tmp_path):
    stack = write_stack(tmp_path, {"datamesh:vpcCidr": "10.0.0.0/33"})
    out = tmp_path / "render"
    proc = subprocess.run(
        [sys.executable, "-m", "tools.render", "--stack", "dev", "--config", str(stack), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: datamesh:vpcCidr: '10.0.0.0/33' is not a valid IPv4 network CIDR")
    assert "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [("config: [1, 2\n", "not valid YAML"), ("config: just-a-string\n", "must be a map"), ("- a\n", "must be a YAML map")],
)
def test_unreadable_stack_file_exits_2_naming_the_file(tmp_path, capsys, content, problem):
    stack = tmp_path / "Pulumi.broken.yaml"
    stack.write_text(content)
    code = render_main(["--stack", "broken", "--config", str(stack), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert str(stack) in err and problem in err
    assert not (tmp_path / "out").exists()


def test_missing_stack_file_exits_2(tmp_path, capsys):
    code = render_main(["--stack", "nosuchstack", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "Pulumi.nosuchstack.yaml: no such file" in capsys.readouterr().err


def test_defaults_fill_what_a_stack_leaves_out():
    s = load_settings(GOOD, "qa", "eu-west-1")
    assert s.cluster_name == "datamesh-qa"
    assert s.network.vpc_cidr == "10.0.0.0/16"
    assert s.network.nat_gateways == "single"
    assert s.nodes.capacity_type == "ON_DEMAND"
    assert s.mesh_namespaces == ()
    assert s.products == ()
    assert s.injection_label == ("istio.io/rev", "stable")
    assert s.istio.version == "1.30.5"
    assert [(r.name, r.helm_release) for r in s.istio.revisions] == [("", "istiod")]


def test_a_named_revision_keeps_the_tag_as_the_injection_label():
    s = load_settings({**GOOD, "istioRevision": "1-30"}, "qa", "eu-west-1")
    assert s.injection_label == ("istio.io/rev", "stable")
    assert s.istio.stable.name == "1-30" and s.istio.stable.service == "istiod-1-30"


def test_settings_are_immutable():
    s = load_settings(GOOD, "qa", "eu-west-1")
    with pytest.raises(AttributeError):
        s.network = s.network
    for group, field in [(s.network, "vpc_cidr"), (s.nodes, "min_size"), (s.endpoint, "public_access"),
                         (s.edge, "domain"), (s.governance, "adapter")]:
        with pytest.raises(AttributeError):
            setattr(group, field, getattr(group, field))


def test_config_error_is_a_pulumi_run_error():
    # Pulumi prints a RunError as one line, without the program's traceback.
    import pulumi

    with pytest.raises(pulumi.RunError):
        load_settings({**GOOD, "vpcCidr": "x"}, "qa", "eu-west-1")


def stack_settings(stack):
    cfg = load_stack_config(ROOT, stack)
    raw = {k.split(":", 1)[1]: v for k, v in cfg.values.items() if k.startswith("datamesh:")}
    secret = frozenset(k.split(":", 1)[1] for k in cfg.secret_keys if k.startswith("datamesh:"))
    return load_settings(raw, stack, cfg.values.get("aws:region"), secret)


@pytest.mark.parametrize("stack", sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml")))
def test_every_stack_file_is_valid(stack):
    assert stack_settings(stack).stack == stack


def test_dev_is_small_and_prod_is_highly_available():
    dev, prod = stack_settings("dev"), stack_settings("prod")
    assert len(dev.availability_zones) == 2 and dev.network.nat_gateways in ("single", "instance") and dev.nodes.capacity_type == "SPOT"
    assert len(prod.availability_zones) == 3 and prod.network.nat_gateways == "perAz" and prod.nodes.capacity_type == "ON_DEMAND"
    assert prod.endpoint.private_access and "0.0.0.0/0" not in prod.endpoint.public_access_cidrs
    assert set(prod.endpoint.control_plane_logs) == set(config.LOG_TYPES)


def test_pulumi_yaml_declares_the_same_keys_types_and_defaults():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    expected = {k: v for k, v in SCHEMA.items() if v.type != "object"}  # project config has no map type
    assert set(declared) == set(expected)
    for key, spec in expected.items():
        assert declared[key]["type"] == spec.type, key
        assert declared[key]["description"] == spec.description, key
        assert declared[key].get("default") == spec.default, key


def test_unknown_key_suggests_the_closest_known_one():
    with pytest.raises(ConfigError, match=r"^datamesh:vpcCdir: is not a known key \(did you mean vpcCidr\?"):
        load_settings({**GOOD, "vpcCdir": "10.0.0.0/16"}, "qa", "eu-west-1")
    with pytest.raises(ConfigError) as caught:
        load_settings({**GOOD, "zzzzzz": "1"}, "qa", "eu-west-1")
    assert "did you mean" not in str(caught.value) and "docs/reference.md" in str(caught.value)
