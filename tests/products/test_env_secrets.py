"""Secrets only through secrets: a credential-looking env name is refused unless notSecret says why."""

import pytest
import yaml

from components.products.declarations import DeclarationError
from tests.conftest import copy_program
from tools.engine.render import render_stack
from tools.render import main as render_main


@pytest.fixture()
def project(tmp_path):
    return copy_program(tmp_path / "project")


def _declare(project, **fields) -> str:
    config = yaml.safe_load((project / "Pulumi.dev.yaml").read_text())["config"]
    name = config["datamesh:products"][0]
    path = project / "products" / f"{name}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc.update(fields)
    path.write_text(yaml.safe_dump(doc))
    return name


def _refusal(project) -> str:
    """The one-line error rendering ``project`` ends with: a declaration error (exit 2 from tools.render)."""
    with pytest.raises(DeclarationError) as caught:
        render_stack("dev", project_dir=project)
    return str(caught.value)


@pytest.mark.parametrize("env_name", ["DB_PASSWORD", "api_key", "GithubToken", "CLIENT_SECRET", "AwsCredentials", "PASSWD"])
def test_a_plaintext_credential_in_env_is_refused_naming_the_field(project, env_name):
    name = _declare(project, env={env_name: "hunter2-plaintext"})
    err = _refusal(project)
    assert "\n" not in err and f"products/{name}.yaml: env.{env_name}: looks like a credential" in err and "secrets:" in err
    assert "hunter2-plaintext" not in err  # the value is never echoed


def test_not_secret_with_a_reason_lets_it_through_and_the_value_is_visible(project):
    name = _declare(project, env={"CACHE_KEY_PREFIX": "churn-"}, notSecret={"CACHE_KEY_PREFIX": "a prefix for cache keys"})
    result = render_stack("dev", project_dir=project)
    [deployment] = [r for r in result.resources if r.type == "kubernetes:apps/v1:Deployment" and r.name == name]
    env = {e["name"]: e.get("value") for c in deployment.inputs["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
    assert env["CACHE_KEY_PREFIX"] == "churn-"


@pytest.mark.parametrize(("fields", "field", "problem"), [
    ({"env": {"A": "b"}, "notSecret": {"CACHE_KEY": "a reason long enough"}}, "notSecret.CACHE_KEY", "names no env value"),
    ({"env": {"CACHE_KEY": "b"}, "notSecret": {"CACHE_KEYS": "a reason long enough"}}, "notSecret.CACHE_KEYS",
     "(did you mean 'CACHE_KEY'?)"),
    ({"env": {"CACHE_KEY": "b"}, "notSecret": {"CACHE_KEY": "why"}}, "notSecret.CACHE_KEY", "at least 10 characters"),
])
def test_not_secret_must_name_an_env_value_with_a_reason(project, fields, field, problem):
    _declare(project, **fields)
    err = _refusal(project)
    assert f"{field}: " in err and problem in err, err


def test_the_cli_answers_2_and_writes_nothing(tmp_path, capsys, monkeypatch):
    from components.products import loader

    monkeypatch.setattr(loader, "CREDENTIAL_NAME", loader.re.compile("PATH|HOME|[A-Z]"))  # every env name now matches
    code = render_main(["--stack", "dev", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "out").exists() and ": env." in err and "looks like a credential" in err
