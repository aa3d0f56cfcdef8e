"""Every input is untrusted: a table of bad inputs, each answered with one line, the right exit code, nothing written.

Each case breaks one thing (the stack file, a declaration, an OpenAPI or
mounted file, the policy config, a command-line argument) in a copy of the
project, runs the command line in-process (output captured at the file
descriptors, so anything the runtime prints is seen) and asserts: the exit
code, exactly one line on stderr naming the key or file, no traceback, and no
output folder.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import DEMO, ROOT, copy_program, fresh_name
from tools import bench, smoke
from tools import render as render_cli
from tools.engine.render import render_stack

HOST_FILE = "/etc/passwd"  # a host file every Linux CI runner has


class Project:
    """A copy of the program, its dev stack and its products, to break one thing at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.outside = root.parent / "outside"  # a folder next to the project, never inside it
        self.outside.mkdir()
        (self.outside / "secret.txt").write_text("OUTSIDE-CONTENT\n")
        (self.outside / "spec.yaml").write_text((ROOT / "products/openapi/revenue-predictor.yaml").read_text())

    @property
    def products(self) -> Path:
        return self.root / "products"

    def stack(self) -> dict[str, Any]:
        return yaml.safe_load((self.root / "Pulumi.dev.yaml").read_text())

    def set_config(self, **changes: Any) -> None:
        doc = self.stack()
        for key, value in changes.items():
            full = key.replace("__", ":")
            if value is DROP:
                doc["config"].pop(full, None)
            else:
                doc["config"][full] = value
        (self.root / "Pulumi.dev.yaml").write_text(yaml.safe_dump(doc))

    def write_stack_text(self, text: str | bytes) -> None:
        path = self.root / "Pulumi.dev.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())

    def declaration(self, name: str = "revenue-predictor") -> Path:
        return self.products / f"{name}.yaml"

    def set_field(self, product: str = "revenue-predictor", **changes: Any) -> None:
        doc = yaml.safe_load(self.declaration(product).read_text())
        doc.update(changes)
        self.declaration(product).write_text(yaml.safe_dump(doc))

    def append(self, text: str, name: str = "revenue-predictor") -> None:
        with self.declaration(name).open("a") as f:
            f.write(text)


DROP = object()


@pytest.fixture(scope="session")
def pristine(tmp_path_factory) -> Path:
    root = copy_program(tmp_path_factory.mktemp("pristine") / "project", base=DEMO)  # cases name its products
    (root / "policies").mkdir()
    return root


@pytest.fixture
def project(pristine, tmp_path) -> Project:
    root = tmp_path / "work" / "project"
    shutil.copytree(pristine, root)
    return Project(root)


def run_cli(main: Callable[[list[str]], int], argv: list[str], capfd) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capfd.readouterr()
    return code, out, err


def assert_one_line(code: int, out: str, err: str, expected_code: int, named: str) -> None:
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert named in lines[0], err
    assert code == expected_code, err
    assert len(lines[0]) < 600, "a message quotes at most a short excerpt"


# --- the cases -------------------------------------------------------------------
# Each: (id, break the project, extra CLI args, exit code, text the line must hold)

Case = tuple[str, Callable[[Project], Any], list[str], int, str]
STACK = "Pulumi.dev.yaml"


def cfg(**changes: Any) -> Callable[[Project], None]:
    return lambda p: p.set_config(**changes)


def stack_text(text: str | bytes) -> Callable[[Project], None]:
    return lambda p: p.write_stack_text(text)


def field(**changes: Any) -> Callable[[Project], None]:
    return lambda p: p.set_field(**changes)


def files(ref: str, key: str = "server.py", product: str = "customer-features") -> Callable[[Project], None]:
    def change(p: Project) -> None:
        p.set_field(product, files={key: ref})
    return change


def outside_ref(p: Project, name: str, product: str = "customer-features") -> str:
    return os.path.relpath(p.outside / name, p.products)


def symlink_out(target: str, link: str, key: str = "files") -> Callable[[Project], None]:
    def change(p: Project) -> None:
        (p.products / link).symlink_to(target if target.startswith("/") else p.outside / target)
        if key == "files":
            p.set_field("customer-features", files={"server.py": link})
        else:
            p.set_field(openapi=link)
    return change


def write_file(rel: str, data: bytes | str, then: Callable[[Project], None]) -> Callable[[Project], None]:
    def change(p: Project) -> None:
        path = p.products / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        then(p)
    return change


def both(*changes: Callable[[Project], Any]) -> Callable[[Project], None]:
    def change(p: Project) -> None:
        for c in changes:
            c(p)
    return change


def alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


DEV = (ROOT / STACK).read_text()
# The dev stack without nodeDiskSize, so a case can append its own value of it (a second one is a duplicate key).
DEV_NO_DISK = re.sub(r"(?m)^  datamesh:nodeDiskSize:.*\n", "", DEV)
DEV_PRODUCTS = ["customer-features", "revenue-predictor", "customer-revenue"]
# A product name the repository does not declare (a team may have added churn-scorer already).
UNSELECTED = fresh_name(ROOT / "products", "churn-scorer")
BIG = "x" * (1024 * 1024 + 10)
BAD_UTF8 = b"\xff\xfe\xfa not utf-8 \xc3\x28\n"

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


def _dir(p: Project, rel: str) -> None:
    (p.products / rel).mkdir(parents=True, exist_ok=True)


DECLARATION_CASES: list[Case] = [
    # files: containment
    ("files-dotdot-passwd", files("../../../../../../../../etc/passwd"), [], 2, "customer-features.yaml: files.server.py"),
    ("files-absolute", files(HOST_FILE), [], 2, "customer-features.yaml: files.server.py"),
    ("files-proc-environ", files("/proc/self/environ"), [], 2, "customer-features.yaml: files.server.py"),
    ("files-dev-zero", files("/dev/zero"), [], 2, "customer-features.yaml: files.server.py"),
    ("files-outside-relative", lambda p: p.set_field("customer-features", files={"server.py": outside_ref(p, "secret.txt")}),
     [], 2, "customer-features.yaml: files.server.py"),
    ("files-symlink-out", symlink_out("secret.txt", "demo/link.py"), [], 2, "customer-features.yaml: files.server.py"),
    ("files-symlink-passwd", symlink_out(HOST_FILE, "demo/passwd.py"), [], 2, "customer-features.yaml: files.server.py"),
    ("files-symlink-environ", symlink_out("/proc/self/environ", "demo/env.py"), [], 2, "customer-features.yaml: files.server.py"),
    ("files-a-directory", files("demo"), [], 2, "customer-features.yaml: files.server.py"),
    ("files-missing", files("demo/nope.py"), [], 2, "customer-features.yaml: files.server.py"),
    ("files-non-utf8", write_file("demo/bad.py", BAD_UTF8, files("demo/bad.py")), [], 2,
     "customer-features.yaml: files.server.py"),
    ("files-binary", write_file("demo/bin.py", b"abc\x00def", files("demo/bin.py")), [], 2,
     "customer-features.yaml: files.server.py"),
    ("files-too-big", write_file("demo/big.py", BIG, files("demo/big.py")), [], 2, "customer-features.yaml: files.server.py"),
    ("files-key-dotdot", files("demo/server.py", key=".."), [], 2, "customer-features.yaml: files"),
    ("files-key-dot", files("demo/server.py", key="."), [], 2, "customer-features.yaml: files"),
    ("files-key-slash", files("demo/server.py", key="a/b"), [], 2, "customer-features.yaml: files"),
    ("files-key-newline", files("demo/server.py", key="a\n"), [], 2, "customer-features.yaml: files"),
    ("files-a-list", lambda p: p.set_field("customer-features", files=["demo/server.py"]), [], 2,
     "customer-features.yaml: files"),
    ("files-ref-number", lambda p: p.set_field("customer-features", files={"a": 3}), [], 2, "customer-features.yaml: files.a"),
    # openapi: containment and content
    ("openapi-dotdot", field(openapi="../../../../../../../etc/passwd"), [], 2, "revenue-predictor.yaml: openapi"),
    ("openapi-absolute", field(openapi=HOST_FILE), [], 2, "revenue-predictor.yaml: openapi"),
    ("openapi-environ", field(openapi="/proc/self/environ"), [], 2, "revenue-predictor.yaml: openapi"),
    ("openapi-outside", lambda p: p.set_field(openapi=outside_ref(p, "spec.yaml")), [], 2, "revenue-predictor.yaml: openapi"),
    ("openapi-symlink-out", symlink_out("spec.yaml", "openapi/link.yaml", key="openapi"), [], 2,
     "revenue-predictor.yaml: openapi"),
    ("openapi-directory", field(openapi="openapi"), [], 2, "revenue-predictor.yaml: openapi"),
    ("openapi-dev-zero", field(openapi="/dev/zero"), [], 2, "revenue-predictor.yaml: openapi"),
    ("openapi-non-utf8", write_file("openapi/bad.yaml", BAD_UTF8, field(openapi="openapi/bad.yaml")), [], 2,
     "revenue-predictor.yaml: openapi"),
    ("openapi-too-big", write_file("openapi/big.yaml", "a: " + BIG, field(openapi="openapi/big.yaml")), [], 2,
     "revenue-predictor.yaml: openapi"),
    ("openapi-alias-bomb", write_file("openapi/bomb.yaml", alias_bomb(), field(openapi="openapi/bomb.yaml")), [], 2,
     "revenue-predictor.yaml: openapi"),
    ("openapi-not-a-map", write_file("openapi/list.yaml", "- a\n", field(openapi="openapi/list.yaml")), [], 2,
     "revenue-predictor.yaml: openapi"),
    ("openapi-not-openapi", write_file("openapi/x.yaml", "openapi: 3.0.3\n", field(openapi="openapi/x.yaml")), [], 2,
     "revenue-predictor.yaml: openapi"),
    ("openapi-duplicate-key", write_file("openapi/d.yaml", "openapi: 3.0.3\nopenapi: 3.1.0\n", field(openapi="openapi/d.yaml")),
     [], 2, "revenue-predictor.yaml: openapi"),
    ("openapi-missing", field(openapi="openapi/missing.yaml"), [], 2, "revenue-predictor.yaml: openapi"),
    # the declaration file itself
    ("declaration-non-utf8", lambda p: p.declaration().write_bytes(BAD_UTF8), [], 2, "revenue-predictor.yaml"),
    ("declaration-binary", lambda p: p.declaration().write_bytes(b"name: x\x00\n"), [], 2, "revenue-predictor.yaml"),
    ("declaration-empty", lambda p: p.declaration().write_text(""), [], 2, "revenue-predictor.yaml"),
    ("declaration-a-list", lambda p: p.declaration().write_text("- a\n"), [], 2, "revenue-predictor.yaml"),
    ("declaration-directory", lambda p: (p.declaration().unlink(), p.declaration().mkdir()), [], 2, "revenue-predictor"),
    ("declaration-symlink-out", lambda p: (p.declaration().unlink(), p.declaration().symlink_to(HOST_FILE)), [], 2,
     "revenue-predictor.yaml"),
    ("declaration-too-big", lambda p: p.append("# " + BIG + "\n"), [], 2, "revenue-predictor.yaml"),
    ("declaration-50mb-description", field(description="d" * (2 * 1024 * 1024)), [], 2, "revenue-predictor.yaml"),
    ("declaration-long-description", field(description="d" * 5000), [], 2, "revenue-predictor.yaml: description"),
    ("declaration-alias-bomb-description", lambda p: p.append("x: &x [a, a]\ndescription2: *x\n"), [], 2,
     "revenue-predictor.yaml"),
    ("declaration-duplicate-key", lambda p: p.append("owner: someone-else\n"), [], 2, "revenue-predictor.yaml"),
    ("declaration-not-yaml", lambda p: p.append("  : : [\n"), [], 2, "revenue-predictor.yaml"),
    ("declaration-deep", lambda p: p.append("x: " + "[" * 3000 + "]" * 3000 + "\n"), [], 2, "revenue-predictor.yaml"),
    # fields
    ("name-newline", field(name="revenue-predictor\n"), [], 2, "revenue-predictor.yaml: name"),
    ("domain-newline", field(domain="customer\n"), [], 2, "revenue-predictor.yaml: domain"),
    ("domain-reserved", field(domain="kube-system"), [], 2, "revenue-predictor.yaml: domain"),
    ("domain-a-list", field(domain=["a"]), [], 2, "revenue-predictor.yaml: domain"),
    ("image-not-a-reference", field(image="Not A Valid Image!!:v1"), [], 2, "revenue-predictor.yaml: image"),
    ("image-newline-flag", field(image="python:3.12\n--privileged"), [], 2, "revenue-predictor.yaml: image"),
    ("image-latest", field(image="python:latest"), [], 2, "revenue-predictor.yaml: image"),
    ("image-untagged", field(image="python"), [], 2, "revenue-predictor.yaml: image"),
    ("image-uppercase", field(image="Python:3.12"), [], 2, "revenue-predictor.yaml: image"),
    ("image-huge", field(image="a" * 600 + ":1"), [], 2, "revenue-predictor.yaml: image"),
    ("quantity-huge", field(resources={"requests": {"cpu": "1", "memory": "1Gi"},
                                       "limits": {"cpu": "1", "memory": "999999999999999999999999Ti"}}), [], 2,
     "revenue-predictor.yaml: resources.limits.memory"),
    ("quantity-capital-K", field(resources={"requests": {"cpu": "1", "memory": "1K"},
                                            "limits": {"cpu": "1", "memory": "2K"}}), [], 2,
     "revenue-predictor.yaml: resources.requests.memory"),
    ("quantity-negative", field(resources={"requests": {"cpu": "-1", "memory": "1Gi"},
                                           "limits": {"cpu": "1", "memory": "1Gi"}}), [], 2,
     "revenue-predictor.yaml: resources.requests.cpu"),
    ("quantity-zero", field(resources={"requests": {"cpu": "0", "memory": "1Gi"},
                                       "limits": {"cpu": "1", "memory": "1Gi"}}), [], 2,
     "revenue-predictor.yaml: resources.requests.cpu"),
    ("quantity-1000-cores", field(resources={"requests": {"cpu": "1", "memory": "1Gi"},
                                             "limits": {"cpu": "1000", "memory": "1Gi"}}), [], 2,
     "revenue-predictor.yaml: resources.limits.cpu"),
    ("quantity-exponent", field(resources={"requests": {"cpu": "1", "memory": "1Gi"},
                                           "limits": {"cpu": "1", "memory": "1e999"}}), [], 2,
     "revenue-predictor.yaml: resources.limits.memory"),
    ("quantity-newline", field(resources={"requests": {"cpu": "1\n", "memory": "1Gi"},
                                          "limits": {"cpu": "1", "memory": "1Gi"}}), [], 2,
     "revenue-predictor.yaml: resources.requests.cpu"),
    ("requests-above-limits", field(resources={"requests": {"cpu": "2", "memory": "1Gi"},
                                               "limits": {"cpu": "1", "memory": "1Gi"}}), [], 2,
     "revenue-predictor.yaml: resources.requests.cpu"),
    ("period-huge", field(rateLimit={"requests": 2, "period": "99999999999999999999h"}), [], 2,
     "revenue-predictor.yaml: rateLimit.period"),
    ("period-two-days", field(rateLimit={"requests": 2, "period": "48h"}), [], 2, "revenue-predictor.yaml: rateLimit.period"),
    ("period-zero", field(rateLimit={"requests": 2, "period": "0s"}), [], 2, "revenue-predictor.yaml: rateLimit.period"),
    ("requests-huge", field(rateLimit={"requests": 10**9, "period": "1m"}), [], 2, "revenue-predictor.yaml: rateLimit.requests"),
    ("port-80", field(port=80), [], 2, "revenue-predictor.yaml: port"),
    ("port-huge", lambda p: p.append("port: " + "9" * 5000 + "\n"), [], 2, "revenue-predictor.yaml"),
    ("port-text", field(port="http"), [], 2, "revenue-predictor.yaml: port"),
    ("replicas-a-list", lambda p: p.set_field("customer-features", replicas=[2]), [], 2, "customer-features.yaml: replicas"),
    ("healthPath-newline", field(healthPath="/isAlive/\nX: y"), [], 2, "revenue-predictor.yaml: healthPath"),
    ("routePrefix-bad", field(routePrefix="no-slash"), [], 2, "revenue-predictor.yaml: routePrefix"),
    ("env-bad-name", field(env={"1X": "y"}), [], 2, "revenue-predictor.yaml: env"),
    ("env-value-number", field(env={"X": 1}), [], 2, "revenue-predictor.yaml: env.X"),
    ("consumes-self", field(consumes=["revenue-predictor"]), [], 2, "revenue-predictor.yaml: consumes"),
    ("consumes-unknown", field(consumes=["fraud"]), [], 2, "revenue-predictor.yaml: consumes"),
    ("version-newline", field(version="1.0.0\n"), [], 2, "revenue-predictor.yaml: version"),
    ("owner-empty", field(owner=""), [], 2, "revenue-predictor.yaml: owner"),
    ("protocol-soap", field(protocol="soap"), [], 2, "revenue-predictor.yaml: protocol"),
    ("portName-too-long", field(portName="http-" + "a" * 20), [], 2, "revenue-predictor.yaml: portName"),
    ("appProtocol-space", field(appProtocol="http 2"), [], 2, "revenue-predictor.yaml: appProtocol"),
    ("unknown-field", field(sidecar=True), [], 2, "revenue-predictor.yaml: sidecar: unknown field"),
    # A declaration no stack selects is validated all the same.
    ("unselected-missing-openapi", write_file(f"{UNSELECTED}.yaml", yaml.safe_dump({
        "name": UNSELECTED, "domain": "churn", "owner": "team-churn", "description": "d", "version": "0.1.0",
        "lifecycle": "experimental", "image": "python:3.12.10-slim-bookworm", "protocol": "http",
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}},
        "openapi": f"openapi/{UNSELECTED}.yaml"}), lambda p: None), [], 2,
     f"{UNSELECTED}.yaml: openapi: openapi/{UNSELECTED}.yaml does not exist"),
    ("several-problems", field(replica=2, lifecycle="beta"), [], 2,
     "revenue-predictor.yaml: replica: unknown field (did you mean 'replicas'?); lifecycle: 'beta' is not one of"),
    ("lifecycle-bad", field(lifecycle="beta"), [], 2, "revenue-predictor.yaml: lifecycle"),
]


def policy_file(content: str | bytes) -> Callable[[Project], None]:
    def change(p: Project) -> None:
        path = p.root / "policies" / "custom.json"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return change


POLICY = "custom.json"
POLICY_ARGS = ["--policy-config", "{root}/policies/custom.json"]
POLICY_CASES: list[Case] = [
    ("policy-exemptions-string", policy_file('{"istio-port-naming": {"exemptions": "legacy-*"}}'), POLICY_ARGS, 2,
     "istio-port-naming.exemptions"),
    ("policy-exemptions-numbers", policy_file('{"pinned-images": {"exemptions": [1]}}'), POLICY_ARGS, 2,
     "pinned-images.exemptions"),
    ("policy-a-list", policy_file('["pinned-images"]'), POLICY_ARGS, 2, POLICY),
    ("policy-an-int", policy_file('{"pinned-images": 3}'), POLICY_ARGS, 2, "pinned-images"),
    ("policy-a-number", policy_file("3"), POLICY_ARGS, 2, POLICY),
    ("policy-unknown-rule", policy_file('{"no-such-rule": "mandatory"}'), POLICY_ARGS, 2, "no-such-rule"),
    ("policy-unknown-setting", policy_file('{"pinned-images": {"exemption": ["x"]}}'), POLICY_ARGS, 2, "pinned-images.exemption"),
    ("policy-bad-level", policy_file('{"pinned-images": "loud"}'), POLICY_ARGS, 2, "pinned-images.enforcementLevel"),
    ("policy-bad-level-in-map", policy_file('{"pinned-images": {"enforcementLevel": 1}}'), POLICY_ARGS, 2,
     "pinned-images.enforcementLevel"),
    ("policy-setting-on-all", policy_file('{"all": {"meshNamespaces": ["x"]}}'), POLICY_ARGS, 2, "all.meshNamespaces"),
    ("policy-mesh-namespaces-string", policy_file('{"istio-port-naming": {"meshNamespaces": "sales"}}'), POLICY_ARGS, 2,
     "istio-port-naming.meshNamespaces"),
    ("policy-not-json", policy_file("{"), POLICY_ARGS, 2, "not valid JSON"),
    ("policy-non-utf8", policy_file(BAD_UTF8), POLICY_ARGS, 2, "not UTF-8"),
    ("policy-deep", policy_file("[" * 100_000 + "]" * 100_000), POLICY_ARGS, 2, POLICY),
    ("policy-too-big", policy_file('{"all": "mandatory"}' + " " * (1024 * 1024)), POLICY_ARGS, 2, "byte limit"),
    ("policy-missing", lambda p: None, ["--policy-config", "{root}/policies/none.json"], 2, "none.json"),
    ("policy-a-directory", lambda p: None, ["--policy-config", "{root}/policies"], 2, "policies"),
]

CLI_CASES: list[Case] = [
    ("cli-config-directory", lambda p: None, ["--config", "{root}/products"], 2, "products"),
    ("cli-config-missing", lambda p: None, ["--config", "{root}/nope.yaml"], 2, "nope.yaml"),
    ("cli-config-dev-zero", lambda p: None, ["--config", "/dev/zero"], 2, "/dev/zero"),
    ("cli-config-proc-environ", lambda p: None, ["--config", "/proc/self/environ"], 2, "/proc/self/environ"),
    ("cli-out-is-a-file", lambda p: (p.root / "file").write_text("x"), ["--out", "{root}/file"], 2, "--out"),
    ("cli-out-under-a-file", lambda p: (p.root / "file").write_text("x"), ["--out", "{root}/file/render"], 2, "--out"),
    ("cli-out-unwritable", lambda p: None, ["--out", "/proc/datamesh-render"], 2, "--out"),
    ("cli-stack-path", lambda p: None, ["--stack", "../../etc/passwd"], 2, "--stack"),
    ("cli-stack-unknown", lambda p: None, ["--stack", "nosuchstack", "--config", "{root}/Pulumi.nosuchstack.yaml"], 2,
     "Pulumi.nosuchstack.yaml"),
]

CASES = STACK_CASES + DECLARATION_CASES + POLICY_CASES + CLI_CASES


def test_the_corpus_is_large_and_ids_are_unique():
    ids = [c[0] for c in CASES] + [c[0] for c in DIFF_CASES] + [c[0] for c in ARG_CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 150


@pytest.mark.parametrize(("change", "args", "code", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(project, monkeypatch, capfd, change, args, code, named):
    change(project)
    out = project.root.parent / "render"
    options = {"--stack": "dev", "--config": str(project.root / STACK), "--out": str(out)}
    options.update(zip(args[::2], [a.format(root=project.root) for a in args[1::2]], strict=True))
    argv = [part for pair in options.items() for part in pair]
    monkeypatch.setattr(render_cli, "render_stack", functools.partial(render_stack, project_dir=project.root))
    monkeypatch.chdir(project.root)
    capfd.readouterr()
    code_seen = _exit_code(render_cli.main, argv)
    result = (code_seen, *capfd.readouterr())
    assert_one_line(*result, code, named.format(root=project.root))
    assert not out.exists(), "nothing is written for a bad input"
    assert "OUTSIDE-CONTENT" not in result[1] + result[2]


def test_the_unbroken_copy_renders(project, monkeypatch, capfd):
    # The corpus's baseline: without the one break, the same command succeeds.
    monkeypatch.setattr(render_cli, "render_stack", functools.partial(render_stack, project_dir=project.root))
    out = project.root.parent / "render"
    code, _, err = run_cli(render_cli.main, ["--stack", "dev", "--config", str(project.root / STACK), "--out", str(out)], capfd)
    assert code == 0, err
    assert (out / "resources.json").exists()


# --- --diff ----------------------------------------------------------------------

def render_dir(content: str | bytes | None) -> Callable[[Path], Path]:
    def make(base: Path) -> Path:
        folder = base / "bad"
        folder.mkdir()
        if content is not None:
            path = folder / "resources.json"
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return folder
    return make


DIFF_CASES = [
    ("diff-missing", render_dir(None), "resources.json"),
    ("diff-empty", render_dir(""), "resources.json"),
    ("diff-truncated", render_dir('[{"urn": "a", "type": "t", "na'), "resources.json"),
    ("diff-non-utf8", render_dir(BAD_UTF8), "resources.json"),
    ("diff-a-map", render_dir('{"urn": "a"}'), "resources.json"),
    ("diff-list-of-numbers", render_dir("[1, 2]"), "resources.json"),
    ("diff-urn-a-number", render_dir('[{"urn": 1, "type": "t", "name": "n"}]'), "resources.json"),
    ("diff-deep", render_dir("[" * 100_000 + "]" * 100_000), "resources.json"),
    ("diff-binary", render_dir(b"[\x00]"), "resources.json"),
]


@pytest.fixture(scope="module")
def good_render(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("good")
    assert render_cli.main(["--stack", "dev", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(("make", "named"), [c[1:] for c in DIFF_CASES], ids=[c[0] for c in DIFF_CASES])
def test_bad_diff_input_is_one_line(good_render, tmp_path, capfd, make, named):
    capfd.readouterr()
    bad = make(tmp_path)
    for argv in (["--diff", str(good_render), str(bad)], ["--diff", str(bad), str(good_render)]):
        code, out, err = run_cli(render_cli.main, argv, capfd)
        assert_one_line(code, out, err, 2, named)
        assert out == ""


# --- other command lines ------------------------------------------------------------

ARG_CASES = [
    ("render-no-arguments", render_cli.main, [], 2, "--stack and --out"),
    ("render-unknown-argument", render_cli.main, ["--stak", "dev"], 2, "--stak"),
    ("render-diff-one-folder", render_cli.main, ["--diff", "a"], 2, "--diff"),
    ("bench-size-zero", bench.main, ["--sizes", "0"], 2, "--sizes"),
    ("bench-size-huge", bench.main, ["--sizes", "9" * 5000], 2, "--sizes"),
    ("bench-size-text", bench.main, ["--sizes", "ten"], 2, "--sizes"),
    ("bench-repeat-zero", bench.main, ["--repeat", "0"], 2, "--repeat"),
    ("bench-markdown-directory", bench.main, ["--markdown", "/"], 2, "--markdown"),
    ("bench-markdown-unwritable", bench.main, ["--markdown", "/proc/bench.md"], 2, "--markdown"),
    ("bench-child-bad", bench.main, ["--child", "x", "y"], 2, "--child"),
    ("smoke-no-gateway", smoke.main, [], 2, "--gateway"),
    ("smoke-empty-gateway", smoke.main, ["--gateway", ""], 2, "--gateway"),
    ("smoke-gateway-url", smoke.main, ["--gateway", "http://example.com"], 2, "--gateway"),
    ("smoke-gateway-path", smoke.main, ["--gateway", "example.com/x"], 2, "--gateway"),
    ("smoke-gateway-credentials", smoke.main, ["--gateway", "user:pw@example.com"], 2, "--gateway"),
    ("smoke-gateway-space", smoke.main, ["--gateway", "exa mple.com"], 2, "--gateway"),
    ("smoke-gateway-newline", smoke.main, ["--gateway", "example.com\n"], 2, "--gateway"),
    ("smoke-port-too-big", smoke.main, ["--gateway", "127.0.0.1:99999"], 2, "--gateway"),
    ("smoke-bad-ipv6", smoke.main, ["--gateway", "[zz::1]"], 2, "--gateway"),
    ("smoke-bad-scheme", smoke.main, ["--gateway", "127.0.0.1", "--scheme", "ftp"], 2, "--scheme"),
    ("smoke-timeout-zero", smoke.main, ["--gateway", "127.0.0.1", "--timeout", "0"], 2, "--timeout"),
    ("smoke-timeout-text", smoke.main, ["--gateway", "127.0.0.1", "--timeout", "soon"], 2, "--timeout"),
]


def _exit_code(main: Callable[[list[str]], int], argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's way out, as the process would see it
        return int(exc.code or 0)


@pytest.mark.parametrize(("main", "argv", "code", "named"), [c[1:] for c in ARG_CASES], ids=[c[0] for c in ARG_CASES])
def test_bad_arguments_are_one_line(monkeypatch, tmp_path, capfd, main, argv, code, named):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMOKE_KEY", "k" * 30)
    monkeypatch.setenv("SMOKE_OTHER_KEY", "o" * 30)
    capfd.readouterr()
    result = _exit_code(main, argv)
    out, err = capfd.readouterr()
    assert_one_line(result, out, err, code, named)
    assert list(tmp_path.iterdir()) == []


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
