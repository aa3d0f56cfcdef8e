"""A product's AWS access (its own IRSA role, the STS token mounted) and its secrets (External Secrets Operator)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from components.products.declarations import DeclarationError, load_products
from tests.conftest import DEMO, ROOT, closure, copy_program, waits_for, write_stack
from tests.platform.test_chart_values import schema_errors, unknown_keys
from tools.engine.render import render_stack

DEV_PRODUCTS = ["customer-features", "revenue-predictor", "customer-revenue"]
BUCKET = "arn:aws:s3:::sales-models/revenue/*"
AWS = {"managedPolicyArns": ["arn:aws:iam::aws:policy/AmazonSageMakerFeatureStoreAccess"],
       "statements": [{"actions": ["s3:GetObject"], "resources": [BUCKET]}]}
SECRETS = [{"env": "FEATURE_STORE_TOKEN", "secretsManager": {"name": "datamesh/revenue-predictor/feature-store", "key": "token"}},
           {"env": "MODEL_LICENSE", "secretsManager": {"name": "datamesh/revenue-predictor/license"}}]


def project_with(tmp_path: Path, fields: dict, stack: dict | None = None) -> Path:
    project = copy_program(tmp_path / "project", base=DEMO)
    shutil.copy(write_stack(tmp_path, stack or {}, base=DEMO), project / "Pulumi.dev.yaml")
    decl = project / "products" / "revenue-predictor.yaml"
    doc = yaml.safe_load(decl.read_text())
    doc.update(fields)
    decl.write_text(yaml.safe_dump(doc, sort_keys=False))
    return project


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return render_stack("dev", project_dir=project_with(tmp_path_factory.mktemp("aws"), {"aws": AWS, "secrets": SECRETS}))


def named(result, kind: str, name: str):
    [reg] = [r for r in result.resources if r.type.endswith(f":{kind}") and r.inputs.get("metadata", {}).get("name") == name]
    return reg


def test_the_product_gets_its_own_role_trusted_by_its_service_account_only(run):
    role = run.one("aws:iam/role:Role", "revenue-predictor-irsa")
    condition = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
    subjects = {v for k, v in condition.items() if k.endswith(":sub")}
    assert subjects == {"system:serviceaccount:sales:revenue-predictor"}
    inline = json.loads(run.one("aws:iam/rolePolicy:RolePolicy", "revenue-predictor-declared").inputs["policy"])
    assert inline["Statement"] == [{"Sid": "Declared0", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [BUCKET]}]
    attachment = run.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "revenue-predictor-managed-0")
    assert attachment.inputs["policyArn"] == AWS["managedPolicyArns"][0]
    sa = named(run, "ServiceAccount", "revenue-predictor").inputs
    # The role's ARN as the mocks answer it for revenue-predictor-irsa.
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(":revenue-predictor-irsa")
    assert sa["automountServiceAccountToken"] is False
    # Products without aws get neither role nor annotation.
    assert not [r for r in run.resources if r.type == "aws:iam/role:Role" and r.name.startswith("customer-")]
    assert "eks.amazonaws.com/role-arn" not in named(run, "ServiceAccount", "customer-features").inputs["metadata"]["annotations"]


def test_only_the_sts_token_is_mounted(run, demo):
    pod = named(run, "Deployment", "revenue-predictor").inputs["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False  # no Kubernetes API token
    [token] = [v for v in pod["volumes"] if v["name"] == "aws-iam-token"]
    assert token["projected"]["sources"] == [{"serviceAccountToken": {
        "audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token"}}]
    assert {"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount",
            "readOnly": True} in pod["containers"][0]["volumeMounts"]
    plain = named(demo, "Deployment", "revenue-predictor").inputs["spec"]["template"]["spec"]
    assert "aws-iam-token" not in json.dumps(plain)


def test_the_manifests_are_valid_kubernetes(run):
    for kind in ("Deployment", "ServiceAccount"):
        kubernetes_validate.validate(named(run, kind, "revenue-predictor").inputs | {
            "apiVersion": "apps/v1" if kind == "Deployment" else "v1", "kind": kind}, "1.35", strict=True)


def test_secrets_come_from_an_external_secret_by_reference(run):
    es = named(run, "ExternalSecret", "revenue-predictor-secrets").inputs
    assert es["apiVersion"] == "external-secrets.io/v1" and es["metadata"]["namespace"] == "sales"
    assert es["spec"]["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "aws-secrets-manager"}
    assert es["spec"]["data"] == [
        {"secretKey": "FEATURE_STORE_TOKEN", "remoteRef": {"key": "datamesh/revenue-predictor/feature-store", "property": "token"}},
        {"secretKey": "MODEL_LICENSE", "remoteRef": {"key": "datamesh/revenue-predictor/license"}},
    ]
    env = named(run, "Deployment", "revenue-predictor").inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "MODEL_LICENSE", "valueFrom": {"secretKeyRef": {"name": "revenue-predictor-secrets", "key": "MODEL_LICENSE"}}} in env
    assert all("value" not in e for e in env if e["name"] in ("FEATURE_STORE_TOKEN", "MODEL_LICENSE"))


def test_the_operator_reads_the_declared_secrets_only(run):
    policy = json.loads(run.one("aws:iam/policy:Policy", "external-secrets-policy").inputs["policy"])
    [statement] = policy["Statement"]
    assert statement["Action"] == ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    assert [a.split(":secret:")[1] for a in statement["Resource"]] == [
        "datamesh/revenue-predictor/feature-store-??????", "datamesh/revenue-predictor/license-??????"]
    assert all(a.startswith("arn:aws:secretsmanager:eu-west-1:") and ":*:" not in a for a in statement["Resource"])
    trust = json.loads(run.one("aws:iam/role:Role", "external-secrets-irsa").inputs["assumeRolePolicy"])
    assert "system:serviceaccount:kube-system:external-secrets" in json.dumps(trust)


def test_the_operator_release_uses_only_its_charts_keys(run):
    release = run.one("kubernetes:helm.sh/v3:Release", "external-secrets").inputs
    assert (release["chart"], release["version"]) == ("external-secrets", "2.9.0")
    assert unknown_keys("external-secrets", "2.9.0", release["values"]) == []
    assert schema_errors("external-secrets", "2.9.0", release["values"]) == []
    assert unknown_keys("external-secrets", "2.9.0", {"serviceAccount": {"annotation": {}}}) == ["serviceAccount.annotation"]


def test_order_operator_before_external_secret_role_before_deployment(run):
    release = run.one("kubernetes:helm.sh/v3:Release", "external-secrets")
    store = named(run, "ClusterSecretStore", "aws-secrets-manager")
    external_secret = named(run, "ExternalSecret", "revenue-predictor-secrets")
    deployment = named(run, "Deployment", "revenue-predictor")
    assert waits_for(run, store, release) and waits_for(run, external_secret, store)
    assert waits_for(run, deployment, external_secret)
    for grant in (run.one("aws:iam/rolePolicy:RolePolicy", "revenue-predictor-declared"),
                  run.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "revenue-predictor-managed-0")):
        assert waits_for(run, deployment, grant)
    assert run.one("aws:iam/role:Role", "revenue-predictor-irsa").urn in closure(run, deployment.urn)


def test_no_operator_without_secrets(demo):
    assert not [r for r in demo.resources if "external-secrets" in r.name]


@pytest.fixture
def products_dir(tmp_path):
    folder = tmp_path / "products"
    shutil.copytree(ROOT / "products", folder)
    return folder


def declare(products_dir: Path, **fields) -> Path:
    path = products_dir / "revenue-predictor.yaml"
    doc = yaml.safe_load(path.read_text())
    doc.update(fields)
    path.write_text(yaml.safe_dump(doc))
    return path


WILDCARDS = [
    ({"statements": [{"actions": ["s3:*"], "resources": [BUCKET]}]}, "aws.statements[0].actions", "'s3:*' is a wildcard action"),
    ({"statements": [{"actions": ["*"], "resources": [BUCKET]}]}, "aws.statements[0].actions", "'*' is a wildcard action"),
    ({"statements": [{"actions": ["s3:GetObject"], "resources": ["*"]}]}, "aws.statements[0].resources",
     "'*' names every resource"),
    ({"managedPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"]}, "aws.managedPolicyArns[0]",
     "arn:aws:iam::aws:policy/AdministratorAccess grants every action"),
    # Found in review: each of these rendered with exit 0.
    ({"statements": [{"actions": ["s3:Get*"], "resources": [BUCKET]}]}, "aws.statements[0].actions", "'s3:Get*' is a wildcard"),
    ({"statements": [{"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::*/*"]}]}, "aws.statements[0].resources",
     "'arn:aws:s3:::*/*' names every resource of a kind"),
    ({"statements": [{"actions": ["dynamodb:GetItem"], "resources": ["arn:aws:dynamodb:eu-west-1:123456789012:table/*"]}]},
     "aws.statements[0].resources", "'arn:aws:dynamodb:eu-west-1:123456789012:table/*' names every resource"),
    ({"managedPolicyArns": ["arn:aws:iam::aws:policy/AmazonS3FullAccess"]}, "aws.managedPolicyArns[0]",
     "arn:aws:iam::aws:policy/AmazonS3FullAccess grants every action of a service"),
]


@pytest.mark.parametrize(("aws", "field", "problem"), WILDCARDS, ids=[w[1] + w[2] for w in WILDCARDS])
def test_wildcards_are_refused_unless_the_stack_allows(products_dir, aws, field, problem):
    path = declare(products_dir, aws=aws)
    with pytest.raises(DeclarationError) as caught:
        load_products(products_dir, DEV_PRODUCTS, {})
    message = str(caught.value)
    assert message.startswith(f"{path}: {field}: {problem}") and "datamesh:allowWildcardIam" in message, message
    assert "\n" not in message
    assert load_products(products_dir, DEV_PRODUCTS, {}, allow_wildcard_iam=True)
    assert load_products(products_dir, DEV_PRODUCTS, {}, allow_wildcard_iam=frozenset({"revenue-predictor"}))
    with pytest.raises(DeclarationError):
        load_products(products_dir, DEV_PRODUCTS, {}, allow_wildcard_iam=frozenset({"customer-features"}))


BAD_ACCESS = [
    ({"aws": {"managedPolicyArns": ["AdministratorAccess"]}}, "aws.managedPolicyArns[0]", "is not an IAM managed policy ARN"),
    ({"aws": {"statements": [{"actions": ["s3 GetObject"], "resources": [BUCKET]}]}}, "aws.statements[0].actions[0]",
     "is not an IAM action like s3:GetObject"),
    ({"aws": {"statements": [{"actions": ["s3:GetObject"], "resources": ["my-bucket"]}]}}, "aws.statements[0].resources[0]",
     "is not an ARN like arn:aws:s3:::bucket/*"),
    ({"aws": {}}, "aws", "is not valid"),
    ({"secrets": [{"env": "X", "secretsManager": {"key": "k"}}]}, "secrets[0].secretsManager", "'name' is a required property"),
    ({"secrets": [{"env": "DEMO_ROLE", "secretsManager": {"name": "datamesh/x"}}]}, "secrets[0].env", "'DEMO_ROLE' is set twice"),
]


@pytest.mark.parametrize(("fields", "field", "problem"), BAD_ACCESS, ids=[b[1] + b[2] for b in BAD_ACCESS])
def test_bad_access_declarations_name_the_file_and_field(products_dir, fields, field, problem):
    path = declare(products_dir, **fields)
    with pytest.raises(DeclarationError) as caught:
        load_products(products_dir, DEV_PRODUCTS, {})
    message = str(caught.value)
    assert message.startswith(f"{path}: {field}: ") and problem in message, message


def test_a_wildcard_stops_the_render_before_any_resource(tmp_path):
    project = project_with(tmp_path, {"aws": {"statements": [{"actions": ["s3:*"], "resources": [BUCKET]}]}})
    with pytest.raises(DeclarationError, match=r"revenue-predictor\.yaml: aws\.statements\[0\]\.actions: 's3:\*'"):
        render_stack("dev", project_dir=project)
    allowed = project_with(tmp_path / "allowed", {"aws": {"statements": [{"actions": ["s3:*"], "resources": [BUCKET]}]}},
                           {"datamesh:allowWildcardIamProducts": ["revenue-predictor"]})
    assert render_stack("dev", project_dir=allowed).one("aws:iam/role:Role", "revenue-predictor-irsa")


def test_the_access_render_passes_the_policies(run):
    from tools.engine.render import check_policies, load_policy_config

    findings = check_policies(run, load_policy_config("dev", None))
    assert not [f for f in findings if f.level == "mandatory"], findings


def test_paths_under_a_named_resource_are_not_wildcards(products_dir):
    table = "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/index/*"
    declare(products_dir, aws={"statements": [{"actions": ["s3:GetObject", "s3:ListBucket", "dynamodb:Query"],
                                               "resources": ["arn:aws:s3:::sales-models", BUCKET, table]}]})
    [p] = [p for p in load_products(products_dir, DEV_PRODUCTS, {}) if p.name == "revenue-predictor"]
    assert p.aws is not None and p.aws.statements[0][1] == ("arn:aws:s3:::sales-models", BUCKET, table)


def test_an_unselected_declaration_with_a_wildcard_is_refused(products_dir):
    declare(products_dir, aws={"statements": [{"actions": ["s3:*"], "resources": [BUCKET]}]})
    with pytest.raises(DeclarationError, match=r"revenue-predictor\.yaml: aws\.statements\[0\]\.actions"):
        load_products(products_dir, ["customer-features"], {})


def test_only_namespaces_of_products_with_secrets_may_use_the_store(run):
    # A ClusterSecretStore without conditions serves an ExternalSecret in any namespace.
    store = named(run, "ClusterSecretStore", "aws-secrets-manager")
    assert store.inputs["spec"]["conditions"] == [{"namespaces": ["sales"]}]
