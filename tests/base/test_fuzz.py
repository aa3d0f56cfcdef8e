"""Property-based fuzzing of the stack-config and declaration parsers: any input is parsed or refused, never a crash.

Bounded so CI stays fast: a fixed number of examples each, a per-example
deadline, and no example database written into the checkout.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.config import SCHEMA, ConfigError, load_settings
from components.governance.access import load_access
from components.products.declarations import DeclarationError, load_products, parse_declaration
from tests.conftest import ROOT
from tools.engine.stackconfig import StackConfigError, load_stack_config

FUZZ = settings(max_examples=60, deadline=2000, database=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["customer-features", "1m", "99999999999999999999h", "eu-west-1a", "1.35", "1.30.5", "../x",
                     "/etc/passwd", "a\n", "2001-12-14", "10.0.0.0/16", "m6i.large", "Ki", "1e999"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=12), inner, max_size=4),
        inner.map(lambda v: {"secure": v}),
    ),
    max_leaves=12,
)
YAML_SNIPPETS = st.sampled_from(["&a [1]", "*a", "{", "[", "- ", ": ", "\t", "!!python/object:os.system", "\x00",
                                 "\ufeff", "---", "...", "? ", "<<: ", "%YAML 1.1", "'", '"'])
yaml_texts = st.lists(st.one_of(st.text(max_size=30), YAML_SNIPPETS), max_size=12).map("\n".join)


def project() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    (folder / "Pulumi.yaml").write_text("name: datamesh\nruntime: python\n")
    return folder


def settle(config_text: bytes) -> None:
    """The render's path through the stack file: read it, validate the settings, the access lists, the products."""
    folder = project()
    path = folder / "Pulumi.fuzz.yaml"
    path.write_bytes(config_text)
    try:
        cfg = load_stack_config(folder, "fuzz", path)
        raw = {k.split(":", 1)[1]: v for k, v in cfg.values.items() if k.startswith("datamesh:")}
        secret = frozenset(k.split(":", 1)[1] for k in cfg.secret_keys if k.startswith("datamesh:"))
        s = load_settings(raw, "fuzz", cfg.values.get("aws:region"), secret)
        products = load_products(ROOT / "products", s.products, s.product_overrides)
        load_access(s.governance.consumers, s.governance.api_keys, s.governance.rate_limit_tiers, {p.name for p in products})
    except (StackConfigError, ConfigError, DeclarationError):
        pass
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # hundreds of examples: leave nothing behind in /tmp


DEV = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())


@FUZZ
@given(yaml_texts)
def test_any_stack_file_text_is_parsed_or_refused(text):
    settle(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.binary(max_size=200))
def test_any_stack_file_bytes_are_parsed_or_refused(data):
    settle(data)


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(SCHEMA)), values, max_size=4))
def test_any_value_of_any_known_key_is_parsed_or_refused(changes):
    doc = json.loads(json.dumps(DEV))
    doc["config"].update({f"datamesh:{k}": v for k, v in changes.items()})
    settle(yaml.safe_dump(doc).encode())


DECLARATION = yaml.safe_load((ROOT / "products" / "customer-features.yaml").read_text())
FIELDS = sorted(set(DECLARATION) | {"autoscaling", "rateLimit", "consumes", "portName", "appProtocol", "args", "x"})


def parse(text: bytes) -> None:
    folder = Path(tempfile.mkdtemp(prefix="fuzz-products-"))
    for sub in ("openapi", "demo"):
        (folder / sub).mkdir()
    (folder / "openapi" / "customer-features.yaml").write_text((ROOT / "products/openapi/customer-features.yaml").read_text())
    (folder / "demo" / "server.py").write_text("print('demo')\n")
    source = folder / "customer-features.yaml"
    source.write_bytes(text)
    try:
        parse_declaration(source, root=folder)
    except DeclarationError:
        pass
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@FUZZ
@given(yaml_texts)
def test_any_declaration_text_is_parsed_or_refused(text):
    parse(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), values, max_size=4))
def test_any_value_of_any_field_is_parsed_or_refused(changes: dict[str, Any]):
    parse(yaml.safe_dump({**DECLARATION, **changes}).encode())
