"""Data product declarations: one YAML file per product, validated before any resource exists.

Product teams own ``products/<name>.yaml`` through pull requests. A stack
selects products by name (``datamesh:products``) and may override
per-environment values (``datamesh:productOverrides``: replicas, autoscaling,
resources). The shape is a JSON Schema (``DECLARATION_SCHEMA``); meaning that
a schema cannot say (pinned images, known upstreams, no cycles, a valid
OpenAPI document that agrees with the route) is checked after it. A bad
declaration raises ``DeclarationError``: one line naming the file, then every
problem (at most ``MAX_PROBLEMS``) as "field: what is wrong", unknown fields
with a "did you mean". ``load_products`` validates every declaration in the
folder, selected or not.
Declarations are untrusted: files they name must resolve inside the products
folder, every read is bounded (``components.inputs``), patterns match whole,
and a message quotes at most a short excerpt of a value, never a file's content.

This module is the layer's front door; the work is split along its seams:

- ``schema``: the JSON Schema and what a stack may override;
- ``model``: the validated ``Product`` and its parts;
- ``problems``: problems as data, (where, what), and the one-line message they make;
- ``checks``: each field's meaning (files, OpenAPI, releases, quantities, rate limit, secrets);
- ``iam``: the declared AWS access and its wildcards;
- ``loader``: ``parse_declaration`` and ``load_products``.
"""

from __future__ import annotations

from components.products.checks import QUANTITY_BOUNDS, quantity
from components.products.iam import BROAD_MANAGED_POLICIES, wildcard_problem
from components.products.loader import load_products, parse_declaration
from components.products.model import Autoscaling, AwsAccess, Mirror, Product, Release, SecretRef, upstream_env_name
from components.products.problems import MAX_PROBLEMS, DeclarationError, Problem, Validator
from components.products.schema import (
    DATAIKU_HEALTH_PATH,
    DATAIKU_PORT,
    DECLARATION_SCHEMA,
    EGRESS_DEFAULT_PORT,
    EGRESS_PATTERN,
    IAM_ACTION_PATTERN,
    IAM_RESOURCE_PATTERN,
    LIFECYCLES,
    MANAGED_POLICY_ARN_PATTERN,
    MAX_RELEASES,
    OVERRIDABLE,
    OVERRIDE_SCHEMA,
    PROTOCOLS,
    QUANTITY_PATTERN,
    RELEASE_VERSION_PATTERN,
    SECRET_NAME_PATTERN,
)
from components.ratelimit import MAX_PERIOD_SECONDS

__all__ = [
    "BROAD_MANAGED_POLICIES", "DATAIKU_HEALTH_PATH", "DATAIKU_PORT", "DECLARATION_SCHEMA", "EGRESS_DEFAULT_PORT",
    "EGRESS_PATTERN", "IAM_ACTION_PATTERN", "IAM_RESOURCE_PATTERN", "LIFECYCLES", "MANAGED_POLICY_ARN_PATTERN",
    "MAX_PERIOD_SECONDS", "MAX_PROBLEMS", "MAX_RELEASES", "OVERRIDABLE", "OVERRIDE_SCHEMA", "PROTOCOLS",
    "QUANTITY_BOUNDS", "QUANTITY_PATTERN", "RELEASE_VERSION_PATTERN", "SECRET_NAME_PATTERN", "Autoscaling",
    "AwsAccess", "DeclarationError", "Mirror", "Problem", "Product", "Release", "SecretRef", "Validator",
    "load_products", "parse_declaration", "quantity", "upstream_env_name", "wildcard_problem",
]
