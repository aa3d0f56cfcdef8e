"""A bad stack file (Pulumi.<stack>.yaml: its shape, and each datamesh:* key) is one line naming the key, exit 2, nothing written."""

from __future__ import annotations

import functools

import pytest

from tests.base.bad_inputs import (
    BAD_UTF8,
    BIG,
    DEV,
    DEV_NO_DISK,
    DEV_PRODUCTS,
    DROP,
    STACK,
    Case,
    alias_bomb,
    cfg,
    check_bad_input,
    run_cli,
    stack_text,
)
from tests.conftest import ROOT
from tools import render as render_cli
from tools.engine.render import render_stack

STACK_CASES: list[Case] = [
    # shape of the file
    ("stack-non-utf8", stack_text(BAD_UTF8), [], 2, "not UTF-8"),
    ("stack-nul-bytes", stack_text(b"config:\n  aws:region: eu-west-1\x00\n"), [], 2, "binary"),
    ("stack-not-yaml", stack_text("config: [\n"), [], 2, "not valid YAML"),
    ("stack-a-list", stack_text("- a\n- b\n"), [], 2, "must be a YAML map"),
    ("stack-config-a-list", stack_text("config: [a, b]\n"), [], 2, "config: must be a map"),
    ("stack-too-big", stack_text("config: {}\n#" + BIG), [], 2, "byte limit"),
    ("stack-duplicate-key", stack_text(DEV + "  datamesh:nodeMinSize: 3\n  datamesh:nodeMinSize: 2\n"), [], 2, "duplicate key"),
    ("stack-alias-bomb-tags", stack_text(DEV.replace("  datamesh:tags:\n    environment: dev\n", "")
                                         + "  x: &x [1, 1]\n  datamesh:tags: *x\n"), [], 2, "aliases"),
    ("stack-alias-bomb", stack_text("config:\n" + "\n".join("  " + line for line in alias_bomb().splitlines())),
     [], 2, "aliases"),
    ("stack-deep-nesting", stack_text("config:\n  datamesh:tags: " + "[" * 5000 + "]" * 5000 + "\n"), [], 2, "nesting"),
    ("stack-5000-digit-int", stack_text(DEV_NO_DISK + "  datamesh:nodeDiskSize: " + "9" * 5000 + "\n"), [], 2, "integer longer"),
    ("stack-null-value", stack_text(DEV + "  datamesh:clusterName:\n"), [], 2, "has no value"),
    ("stack-secure-with-extra-key", cfg(datamesh__clusterName={"secure": "v1:x", "other": 1}), [], 2, "datamesh:clusterName"),
    ("stack-secure-not-a-string", cfg(datamesh__clusterName={"secure": ["v1:x"]}), [], 2, "datamesh:clusterName"),
    ("stack-float-infinity", stack_text(DEV_NO_DISK + "  datamesh:nodeDiskSize: .inf\n"), [], 2, "datamesh:nodeDiskSize"),
    # secure: on keys datamesh shows in the clear
    ("secure-clusterName", cfg(datamesh__clusterName={"secure": "v1:abc"}), [], 2, "datamesh:clusterName"),
    ("secure-tag", cfg(datamesh__tags={"team": {"secure": "v1:abc"}}), [], 2, "datamesh:tags"),
    ("secure-tier", cfg(datamesh__rateLimitTiers={"standard": {"requests": 60, "period": {"secure": "v1:x"}},
                                                  "trial": {"requests": 10, "period": "1m"}}), [], 2, "datamesh:rateLimitTiers"),
    ("secure-override", cfg(datamesh__productOverrides={"revenue-predictor": {"replicas": {"secure": "v1:x"}}}),
     [], 2, "datamesh:productOverrides"),
    ("secure-products", cfg(datamesh__products=[{"secure": "v1:x"}]), [], 2, "datamesh:products"),
    ("secure-observability", cfg(datamesh__observability={"secure": "v1:x"}), [], 2, "datamesh:observability"),
    # API keys
    ("apikeys-plaintext", cfg(datamesh__apiKeys={"analytics": ["a" * 30], "partner-portal": ["b" * 30]}), [], 2,
     "datamesh:apiKeys"),
    ("apikeys-mixed", cfg(datamesh__apiKeys={"analytics": [{"secure": "v1:x"}, "a" * 30],
                                             "partner-portal": [{"secure": "v1:y"}]}), [], 2, "datamesh:apiKeys"),
    ("apikeys-mixed-other-consumer", cfg(datamesh__apiKeys={"analytics": [{"secure": "v1:x"}], "partner-portal": ["b" * 30]}),
     [], 2, "datamesh:apiKeys"),
    ("apikeys-a-list", cfg(datamesh__apiKeys=[{"secure": "v1:x"}]), [], 2, "datamesh:apiKeys"),
    # keys and values
    ("unknown-key", cfg(datamesh__clusterNmae="x"), [], 2, "datamesh:clusterNmae"),
    ("timestamp-key", stack_text(DEV + "  2001-12-14: x\n"), [], 2, "datamesh:2001-12-14"),
    ("key-with-newline", cfg(**{"datamesh__a\nb": "x"}), [], 2, "config: 'datamesh:a\\nb'"),
    ("key-a-number", stack_text(DEV + "  7: x\n"), [], 2, "config: 7"),
    ("key-a-list", stack_text(DEV + "  ? [a]\n  : x\n"), [], 2, "a map key must be a plain value"),
    ("apikeys-consumer-newline", cfg(datamesh__apiKeys={"analytics": [{"secure": "v1:x"}], "partner-portal": [{"secure": "v1:y"}],
                                                        "x\ny": [{"secure": "v1:z"}]}), [], 2, "datamesh:apiKeys"),
    ("consumers-name-newline", cfg(datamesh__consumers={"a\nb": {"products": ["customer-features"]}}), [], 2,
     "datamesh:consumers"),
    ("consumers-product-huge", cfg(datamesh__consumers={"analytics": {"products": ["x" * 5000]},
                                                        "partner-portal": {"products": ["customer-revenue"]}}), [], 2,
     "datamesh:consumers.analytics.products"),
    ("region-missing", cfg(aws__region=DROP), [], 2, "aws:region"),
    ("region-bad", cfg(aws__region="eu-west-1\n"), [], 2, "aws:region"),
    ("clusterName-newline", cfg(datamesh__clusterName="customer\n"), [], 2, "datamesh:clusterName"),
    ("clusterName-too-long", cfg(datamesh__clusterName="a" * 101), [], 2, "datamesh:clusterName"),
    ("clusterName-digit", cfg(datamesh__clusterName="1abc"), [], 2, "datamesh:clusterName"),
    ("clusterName-a-map", cfg(datamesh__clusterName={"a": 1}), [], 2, "datamesh:clusterName"),
    ("clusterName-huge", cfg(datamesh__clusterName="x" * 500_000), [], 2, "datamesh:clusterName"),
    ("kubernetesVersion-bad", cfg(datamesh__kubernetesVersion="9.99"), [], 2, "datamesh:kubernetesVersion"),
    ("kubernetesVersion-timestamp", cfg(datamesh__kubernetesVersion="2001-12-14"), [], 2, "datamesh:kubernetesVersion"),
    ("istioVersion-bad", cfg(datamesh__istioVersion="1.0.0"), [], 2, "datamesh:istioVersion"),
    ("istioRevision-upper", cfg(datamesh__istioRevision="Rev"), [], 2, "datamesh:istioRevision"),
    ("istioRevision-newline", cfg(datamesh__istioRevision="rev\n"), [], 2, "datamesh:istioRevision"),
    ("vpcCidr-bad", cfg(datamesh__vpcCidr="10.0.0.0/33"), [], 2, "datamesh:vpcCidr"),
    ("vpcCidr-host-bits", cfg(datamesh__vpcCidr="10.0.0.1/16"), [], 2, "datamesh:vpcCidr"),
    ("vpcCidr-too-small", cfg(datamesh__vpcCidr="10.0.0.0/28"), [], 2, "datamesh:vpcCidr"),
    ("serviceCidr-overlap", cfg(datamesh__serviceCidr="10.0.128.0/20"), [], 2, "datamesh:serviceCidr"),
    ("zones-one", cfg(datamesh__availabilityZones=["eu-west-1a"]), [], 2, "datamesh:availabilityZones"),
    ("zones-other-region", cfg(datamesh__availabilityZones=["us-east-1a", "us-east-1b"]), [], 2, "datamesh:availabilityZones"),
    ("zones-twice", cfg(datamesh__availabilityZones=["eu-west-1a", "eu-west-1a"]), [], 2, "datamesh:availabilityZones"),
    ("zones-a-string", cfg(datamesh__availabilityZones="eu-west-1a"), [], 2, "datamesh:availabilityZones"),
    ("zones-numbers", cfg(datamesh__availabilityZones=[1, 2]), [], 2, "datamesh:availabilityZones"),
    ("natGateways-bad", cfg(datamesh__natGateways="many"), [], 2, "datamesh:natGateways"),
    ("capacity-bad", cfg(datamesh__nodeCapacityType="spot"), [], 2, "datamesh:nodeCapacityType"),
    ("instanceTypes-newline", cfg(datamesh__nodeInstanceTypes=["m6i.large\n"]), [], 2, "datamesh:nodeInstanceTypes"),
    ("instanceTypes-empty", cfg(datamesh__nodeInstanceTypes=[]), [], 2, "datamesh:nodeInstanceTypes"),
    ("nodeMinSize-zero", cfg(datamesh__nodeMinSize=0), [], 2, "datamesh:nodeMinSize"),
    ("nodeMinSize-huge", cfg(datamesh__nodeMinSize=10**17), [], 2, "datamesh:nodeMinSize"),
    ("nodeMinSize-text", cfg(datamesh__nodeMinSize="two"), [], 2, "datamesh:nodeMinSize"),
    ("nodeMinSize-float", cfg(datamesh__nodeMinSize=2.5), [], 2, "datamesh:nodeMinSize"),
    ("nodeMinSize-a-list", cfg(datamesh__nodeMinSize=[2]), [], 2, "datamesh:nodeMinSize"),
    ("nodeMax-below-min", cfg(datamesh__nodeMinSize=5, datamesh__nodeMaxSize=3), [], 2, "datamesh:nodeMinSize"),
    ("nodeDesired-outside", cfg(datamesh__nodeDesiredSize=9), [], 2, "datamesh:nodeDesiredSize"),
    ("nodeDiskSize-small", cfg(datamesh__nodeDiskSize=10), [], 2, "datamesh:nodeDiskSize"),
    ("endpoint-both-off", cfg(datamesh__endpointPublicAccess=False, datamesh__endpointPrivateAccess=False), [], 2,
     "datamesh:endpointPublicAccess"),
    ("endpoint-not-bool", cfg(datamesh__endpointPublicAccess="yes"), [], 2, "datamesh:endpointPublicAccess"),
    ("publicCidrs-bad", cfg(datamesh__publicAccessCidrs=["1.2.3.4/99"]), [], 2, "datamesh:publicAccessCidrs"),
    ("logs-bad", cfg(datamesh__controlPlaneLogs=["everything"]), [], 2, "datamesh:controlPlaneLogs"),
    ("admins-bad", cfg(datamesh__adminPrincipalArns=["arn:aws:iam::1:role/x"]), [], 2, "datamesh:adminPrincipalArns"),
    ("admins-newline", cfg(datamesh__adminPrincipalArns=["arn:aws:iam::000000000000:role/x\n"]), [], 2,
     "datamesh:adminPrincipalArns"),
    ("meshNamespaces-reserved", cfg(datamesh__meshNamespaces=["kube-system"]), [], 2, "datamesh:meshNamespaces"),
    ("meshNamespaces-newline", cfg(datamesh__meshNamespaces=["team\n"]), [], 2, "datamesh:meshNamespaces"),
    ("tags-aws-key", cfg(datamesh__tags={"aws:x": "y"}), [], 2, "datamesh:tags"),
    ("tags-number", cfg(datamesh__tags={"team": 3}), [], 2, "datamesh:tags"),
    ("tags-newline-value", cfg(datamesh__tags={"team": "a\nb"}), [], 2, "datamesh:tags"),
    ("tags-too-many", cfg(datamesh__tags={f"t{i}": "v" for i in range(41)}), [], 2, "datamesh:tags"),
    ("tags-a-list", cfg(datamesh__tags=["a"]), [], 2, "datamesh:tags"),
    ("products-dotdot", cfg(datamesh__products=[*DEV_PRODUCTS, "../products/customer-features"]), [], 2, "datamesh:products"),
    ("products-absolute", cfg(datamesh__products=[*DEV_PRODUCTS, "/etc/passwd"]), [], 2, "datamesh:products"),
    ("products-newline", cfg(datamesh__products=[*DEV_PRODUCTS, "customer-features\n"]), [], 2, "datamesh:products"),
    ("products-unknown", cfg(datamesh__products=[*DEV_PRODUCTS, "fraud"]), [], 2, "datamesh:products"),
    ("products-twice", cfg(datamesh__products=[*DEV_PRODUCTS, "customer-features"]), [], 2, "datamesh:products"),
    ("override-bad-replicas", cfg(datamesh__productOverrides={"customer-features": {"replicas": 0}}), [], 2,
     "datamesh:productOverrides.customer-features: replicas"),
    ("override-replicas-text", cfg(datamesh__productOverrides={"customer-features": {"replicas": "many"}}), [], 2,
     "datamesh:productOverrides.customer-features: replicas"),
    ("override-bad-quantity", cfg(datamesh__productOverrides={"customer-features": {"resources": {"limits": {"cpu": "lots"}}}}),
     [], 2, "datamesh:productOverrides.customer-features: resources.limits.cpu"),
    ("override-unknown-field", cfg(datamesh__productOverrides={"customer-features": {"image": "x:1"}}), [], 2,
     "datamesh:productOverrides.customer-features.image"),
    ("override-not-selected", cfg(datamesh__productOverrides={"fraud": {"replicas": 1}}), [], 2, "datamesh:productOverrides"),
    ("override-not-a-map", cfg(datamesh__productOverrides={"customer-features": [1]}), [], 2, "datamesh:productOverrides"),
    ("consumers-tier-list", cfg(datamesh__consumers={"analytics": {"products": ["customer-features"], "tier": ["a"]},
                                                     "partner-portal": {"products": ["customer-revenue"]}}), [], 2,
     "datamesh:consumers.analytics.tier"),
    ("consumers-tier-map", cfg(datamesh__consumers={"analytics": {"products": ["customer-features"], "tier": {"a": 1}},
                                                    "partner-portal": {"products": ["customer-revenue"]}}), [], 2,
     "datamesh:consumers.analytics.tier"),
    ("consumers-unknown-product", cfg(datamesh__consumers={"analytics": {"products": ["fraud"]},
                                                           "partner-portal": {"products": ["customer-revenue"]}}), [], 2,
     "datamesh:consumers"),
    ("consumers-a-list", cfg(datamesh__consumers=["analytics"]), [], 2, "datamesh:consumers"),
    ("tier-huge-period", cfg(datamesh__rateLimitTiers={"standard": {"requests": 60, "period": "99999999999999999999h"},
                                                       "trial": {"requests": 10, "period": "1m"}}), [], 2,
     "datamesh:rateLimitTiers"),
    ("tier-period-over-a-day", cfg(datamesh__rateLimitTiers={"standard": {"requests": 60, "period": "25h"},
                                                             "trial": {"requests": 10, "period": "1m"}}), [], 2,
     "datamesh:rateLimitTiers"),
    ("tier-zero-requests", cfg(datamesh__rateLimitTiers={"standard": {"requests": 0, "period": "1m"},
                                                         "trial": {"requests": 10, "period": "1m"}}), [], 2,
     "datamesh:rateLimitTiers"),
    ("tier-name-newline", cfg(datamesh__rateLimitTiers={"standard\n": {"requests": 1, "period": "1m"}}), [], 2,
     "datamesh:rateLimitTiers"),
    ("adapter-bad", cfg(datamesh__governanceAdapter="kong"), [], 2, "datamesh:governanceAdapter"),
    ("observability-maybe", cfg(datamesh__observability="maybe"), [], 2, "datamesh:observability"),
    ("anypoint-client-plaintext", cfg(datamesh__anypointClientId="abc"), [], 2, "datamesh:anypointClientId"),
]

@pytest.mark.parametrize(("change", "args", "code", "named"), [c[1:] for c in STACK_CASES], ids=[c[0] for c in STACK_CASES])
def test_bad_input_is_one_line_and_writes_nothing(project, monkeypatch, capfd, change, args, code, named):
    check_bad_input(project, monkeypatch, capfd, change, args, code, named)


def test_the_unbroken_copy_renders(project, monkeypatch, capfd):
    # The corpus's baseline: without the one break, the same command succeeds.
    monkeypatch.setattr(render_cli, "render_stack", functools.partial(render_stack, project_dir=project.root))
    out = project.root.parent / "render"
    code, _, err = run_cli(render_cli.main, ["--stack", "dev", "--config", str(project.root / STACK), "--out", str(out)], capfd)
    assert code == 0, err
    assert (out / "resources.json").exists()


# --- as a process: what a CI log shows -----------------------------------------------

@pytest.mark.parametrize("config_text", [
    BAD_UTF8,
    (DEV_NO_DISK + "  datamesh:nodeDiskSize: " + "9" * 5000 + "\n").encode(),
    (DEV.replace("      tier: standard", "      tier: [standard]")).encode(),
], ids=["non-utf8", "5000-digits", "tier-a-list"])
def test_a_bad_stack_file_is_one_line_from_the_process_too(tmp_path, config_text):
    import subprocess
    import sys

    (tmp_path / "stack.yaml").write_bytes(config_text)
    done = subprocess.run([sys.executable, "-m", "tools.render", "--stack", "dev", "--config", str(tmp_path / "stack.yaml"),
                           "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()
