"""Private API access: a runner or VPN named in config reaches the private endpoint on 443, nothing else does."""

import pytest

from tests.conftest import render_variant, write_stack
from tools.render import main as render_main

RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SOURCES = ["10.200.0.0/16", "sg-0123456789abcdef0"]


def _api_rules(result) -> list:
    return [r for r in result.of_type(RULE) if r.name.startswith("cluster-api-from-")]


def test_no_sources_no_rules(dev):
    assert _api_rules(dev) == []


def test_each_source_opens_443_on_the_control_plane_security_group(tmp_path):
    result = render_variant(tmp_path, {"datamesh:privateAccessSources": SOURCES, "datamesh:endpointPrivateAccess": True})
    rules = _api_rules(result)
    assert len(rules) == len(SOURCES)
    to_api = result.one(RULE, "cluster-nodes-to-api").inputs["securityGroupId"]  # the control plane's group
    opened = set()
    for rule in rules:
        inputs = rule.inputs
        assert (inputs["type"], inputs["protocol"], inputs["fromPort"], inputs["toPort"]) == ("ingress", "tcp", 443, 443)
        assert inputs["securityGroupId"] == to_api
        opened.update(inputs.get("cidrBlocks") or [inputs.get("sourceSecurityGroupId")])
    assert opened == set(SOURCES)


@pytest.mark.parametrize(("sources", "private", "problem"), [
    (["0.0.0.0/0"], True, "not a private network"),
    (["8.8.8.0/24"], True, "not a private network"),
    (["10.0.0.0/33"], True, "not a valid IPv4 network CIDR"),
    (["sg-123"], True, "not a security group ID"),
    (["10.1.0.0/16", "10.1.0.0/16"], True, "twice"),
    (["10.1.0.0/16"], False, "endpointPrivateAccess is false"),
])
def test_bad_sources_are_refused(tmp_path, capsys, sources, private, problem):
    stack = write_stack(tmp_path, {"datamesh:privateAccessSources": sources, "datamesh:endpointPrivateAccess": private,
                                   "datamesh:endpointPublicAccess": True})
    out = tmp_path / "render"
    code = render_main(["--stack", "dev", "--config", str(stack), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists(), err
    assert err.startswith("error: datamesh:privateAccessSources: ") and problem in err, err
