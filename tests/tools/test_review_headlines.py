"""The review leads with access, AWS access, secrets and env, and exposure: golden text for each section.

"Before" is a copy of the repository rendered as it is; "after" is the same copy once a team has
added a product and a consumer as docs/data-products.md says (tests/conftest.py,
add_documented_product), onboarded a second consumer with a tier (tools.new_consumer --tier) and
declared AWS access and a secret. Every expected line is built from those declared inputs (the
helper's names, the declaration, the stack file), never from the shipped demo's names or the render.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.ratelimit import period_seconds
from tests.conftest import ROOT, add_documented_product, copy_repository
from tools.engine.render import check_policies, load_policy_config, render_stack, write_render
from tools.engine.review import diff_renders
from tools.render import main as render_main

STATEMENT = {"actions": ["s3:GetObject", "s3:ListBucket"], "resources": ["arn:aws:s3:::churn-models/*", "arn:aws:s3:::churn-models"]}
MANAGED = "arn:aws:iam::aws:policy/AmazonSageMakerFeatureStoreAccess"
SECRET = {"env": "MODEL_STORE_TOKEN", "secretsManager": {"name": "datamesh/churn/model-store", "key": "token"}}


def render(repo: Path, out: Path) -> Path:
    result = render_stack("dev", None, project_dir=repo)
    write_render(result, out, check_policies(result, load_policy_config("dev", None)))
    return out


def new_consumer(repo: Path, name: str, product: str, tier: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "tools.new_consumer", name, "--products", product, "--tier", tier],
                          cwd=repo, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def change(tmp_path_factory):
    """Renders before and after the team's pull request, and what the team declared."""
    tmp = tmp_path_factory.mktemp("headlines")
    repo = copy_repository(tmp / "repo")
    before = render(repo, tmp / "before")
    made = add_documented_product(repo)
    config = yaml.safe_load(made["stack"].read_text())["config"]
    tiers = config["datamesh:rateLimitTiers"]
    tier = sorted(tiers)[0]
    tiered = next(f"{made['consumer']}-tiered-{n}" for n in range(2, 100)
                  if f"{made['consumer']}-tiered-{n}" not in config["datamesh:consumers"])
    new_consumer(repo, tiered, made["product"], tier)
    path = repo / "products" / f"{made['product']}.yaml"
    decl = yaml.safe_load(path.read_text())
    decl.update(aws={"managedPolicyArns": [MANAGED], "statements": [STATEMENT]}, secrets=[SECRET])
    path.write_text(yaml.safe_dump(decl, sort_keys=False))
    after = render(repo, tmp / "after")
    upstream = yaml.safe_load((repo / "products" / f"{made['upstream']}.yaml").read_text())
    return {"before": before, "after": after, "made": made, "decl": decl, "upstream": upstream, "tiered": tiered,
            "tier": tiers[tier], "config": config}


def section(text: str, title: str) -> list[str]:
    """The lines under ``== title`` (each indented by four spaces), up to the next section."""
    lines = text.splitlines()
    start = lines.index(f"== {title}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("== ")), len(lines) - 1)
    assert all(line.startswith("    ") for line in lines[start:end]), lines[start:end]
    return [line[4:] for line in lines[start:end]]


def test_the_headline_sections_come_first_in_order(change):
    text = diff_renders(change["before"], change["after"])
    titles = [line for line in text.splitlines() if line.startswith("== ")]
    assert titles[:4] == ["== access", "== AWS access", "== secrets and env", "== exposure"]


def test_access_lines_name_each_caller_and_callee(change):
    made, tier = change["made"], change["tier"]
    tier_name = sorted(change["config"]["datamesh:rateLimitTiers"])[0]  # the one the fixture gave the tiered consumer
    limit = f"tier {tier_name}: {tier['requests']} requests per {period_seconds(tier['period'])}s"
    grants = {(made["consumer"], made["product"]): "no tier",  # the documented consumer has no tier
              (change["tiered"], made["product"]): limit,
              (made["product"], made["upstream"]): ""}  # the product's declared `consumes`

    def who(caller, callee):
        return f"`{caller}` ({grants[(caller, callee)]})" if grants[(caller, callee)] else f"`{caller}`"

    assert section(diff_renders(change["before"], change["after"]), "access") == [
        f"{who(c, p)} may now call `{p}`" for c, p in sorted(grants)]
    assert section(diff_renders(change["after"], change["before"]), "access") == [
        f"{who(c, p)} may no longer call `{p}`" for c, p in sorted(grants)]


def test_aws_access_lines_are_each_action_on_each_resource(change):
    made, decl, config = change["made"], change["decl"], change["config"]
    product, namespace = made["product"], decl["domain"]
    oidc = json.loads((change["after"] / "outputs.json").read_text())["oidcProviderArn"]
    account = oidc.split(":")[4]
    secret_arn = f"arn:aws:secretsmanager:{config['aws:region']}:{account}:secret:{SECRET['secretsManager']['name']}-??????"

    def trust(owner, role, account_name):
        return (f"+ {owner}: role {role} trusts Federated {oidc}: sts:AssumeRoleWithWebIdentity when "
                f"StringEquals aud=sts.amazonaws.com, StringEquals sub=system:serviceaccount:{account_name}")

    assert section(diff_renders(change["before"], change["after"]), "AWS access") == sorted([
        *(f"+ {product}: {a} on {r}" for a in STATEMENT["actions"] for r in STATEMENT["resources"]),
        f"+ {product}: managed policy {MANAGED}",
        trust(product, f"{product}-irsa", f"{namespace}:{product}"),
        # The operator that copies the declared secret reads exactly that secret.
        *(f"+ external-secrets: {a} on {secret_arn}" for a in ("secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue")),
        trust("external-secrets", "external-secrets-irsa", "kube-system:external-secrets"),
    ])


def test_secret_and_env_lines_show_plain_values_and_never_a_secret_value(change):
    made, decl, upstream = change["made"], change["decl"], change["upstream"]
    product = made["product"]
    injected = {"UPSTREAM_" + re.sub(r"[^A-Z0-9]", "_", made["upstream"].upper()) + "_URL":
                f"http://{made['upstream']}.{upstream['domain']}.svc.cluster.local:{upstream['port']}"}
    ref = SECRET["secretsManager"]
    expected = sorted(f"+ {product}: env {k} = {json.dumps(str(v))}" for k, v in {**decl["env"], **injected}.items())
    expected.append(f"+ {product}: secret {SECRET['env']} from Secret {product}-secrets key {SECRET['env']}, "
                    f"fetched from aws-secrets-manager {ref['name']}, key {ref['key']}")
    assert section(diff_renders(change["before"], change["after"]), "secrets and env") == expected
    assert section(diff_renders(change["after"], change["before"]), "secrets and env") == sorted(
        [f"- {product}: env {k}" for k in {**decl["env"], **injected}] + [f"- {product}: secret {SECRET['env']}"])


def test_exposure_lines_are_the_new_route_and_port(change):
    decl, product = change["decl"], change["made"]["product"]
    ns, port = decl["domain"], decl["port"]
    assert section(diff_renders(change["before"], change["after"]), "exposure") == [
        f"+ Service {ns}/{product} port {port}/TCP ({decl.get('portName') or decl['protocol'] + '-api'})",
        f"+ route prefix {decl['routePrefix']} on hosts * via istio-ingress/datamesh -> "
        f"{product}.{ns}.svc.cluster.local:{port} ({ns}/{product})",
    ]


def test_markdown_puts_the_headline_sections_before_the_components(change):
    text = diff_renders(change["before"], change["after"], fmt="markdown")
    made = change["made"]
    order = [text.index(marker) for marker in ("**Access**", "**AWS access**", "**Secrets and env**", "**Exposure**",
                                                "<details open>")]
    assert order == sorted(order)
    assert f"- `{made['product']}` may now call `{made['upstream']}`\n" in text
    aws = text[text.index("**AWS access**"):text.index("**Secrets and env**")]
    assert f"```diff\n+ {made['product']}: managed policy {MANAGED}\n" in aws


def test_a_tier_change_reads_as_one_line(change, tmp_path):
    made, tiers = change["made"], change["config"]["datamesh:rateLimitTiers"]
    old, new = sorted(tiers)[:2]
    stack = made["stack"].read_text()
    doc = yaml.safe_load(stack)
    doc["config"]["datamesh:consumers"][change["tiered"]]["tier"] = new
    made["stack"].write_text(yaml.safe_dump(doc))
    try:
        retiered = render(made["stack"].parent, tmp_path / "retiered")
    finally:
        made["stack"].write_text(stack)

    def limit(name):
        return f"tier {name}: {tiers[name]['requests']} requests per {period_seconds(tiers[name]['period'])}s"

    assert section(diff_renders(change["after"], retiered), "access") == [
        f"`{change['tiered']}` calling `{made['product']}`: {limit(old)} -> {limit(new)}"]


def test_only_a_weaker_level_for_a_firing_rule_is_a_change(tmp_path):
    # A pull request that turns a mandatory rule with a finding into an advisory one changes nothing but the report.
    shipped = json.loads((ROOT / "policies" / "config" / "dev.json").read_text())
    rule = next(r for r in sorted(shipped) if shipped[r] == "advisory")
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps({**shipped, rule: "mandatory"}))
    result = render_stack("dev")
    write_render(result, tmp_path / "old", check_policies(result, load_policy_config("dev", strict)))
    write_render(result, tmp_path / "new", check_policies(result, load_policy_config("dev", None)))
    text = diff_renders(tmp_path / "old", tmp_path / "new")
    assert any(line.startswith(f"    ~ mandatory -> advisory {rule}: ") for line in text.splitlines()), text
    assert render_main(["--diff", str(tmp_path / "old"), str(tmp_path / "new"), "--exit-code"]) == 2
    assert render_main(["--diff", str(tmp_path / "new"), str(tmp_path / "new"), "--exit-code"]) == 0


def test_a_rule_the_pack_no_longer_runs_is_a_change(tmp_path, capsys):
    rule = {"name": "r", "description": "d", "defaultLevel": "mandatory"}
    for name, rules in (("old", [rule]), ("new", [])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "resources.json").write_text("[]")
        (tmp_path / name / "policy-report.json").write_text(json.dumps({"passed": True, "rules": rules, "violations": []}))
    assert render_main(["--diff", str(tmp_path / "old"), str(tmp_path / "new"), "--exit-code"]) == 2
    assert "== policy report\n    - rule r (no longer run)\n" in capsys.readouterr().out
