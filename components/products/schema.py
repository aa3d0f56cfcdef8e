"""The shape of a product declaration: ``DECLARATION_SCHEMA`` (JSON Schema), and what a stack may override.

Meaning that a schema cannot say is checked after it (``components.products.checks``,
``components.products.loader``); ``tools/schema_docs.py`` writes this schema out as
``products/schema/declaration.schema.json``.
"""

from __future__ import annotations

from typing import Any

from components.documents import Document
from components.names import NAME_PATTERN

# Istio protocol selection: the Service port is named "<protocol>-api", so Istio
# never has to sniff. Only protocols a data-product API speaks are offered.
PROTOCOLS = {"http": "http", "http2": "http2", "grpc": "grpc", "grpc-web": "grpc-web", "tcp": "tcp"}
LIFECYCLES = ("experimental", "production", "deprecated")
# releases/mirror: a stack may run other releases than the declaration's (prod stays on the
# stable one while dev runs the canary), so promoting a release changes only Pulumi.prod.yaml.
OVERRIDABLE = ("replicas", "autoscaling", "resources", "rateLimit", "releases", "mirror")

# Dataiku's API node: port 12000, health on /isAlive/, routes under /public/api/v1/<service>/.
DATAIKU_PORT = 12000
DATAIKU_HEALTH_PATH = "/isAlive/"

EGRESS_PATTERN = r"^(?=[^:]{1,253}(:|$))([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}(:[1-9][0-9]{0,4})?$"
EGRESS_DEFAULT_PORT = 443
# Kubernetes' quantity grammar (k8s.io/apimachinery resource.Quantity), unsigned: a number, then a
# binary suffix, a decimal suffix or an exponent. Note "k" (kilo) is lowercase; "K" is not a suffix.
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][-+]?[0-9]{1,3})?$"
MAX_RELEASES = 3
RELEASE_VERSION_PATTERN = r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]*[0-9A-Za-z])?$"
MANAGED_POLICY_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::(aws|[0-9]{12}):policy/[\w+=,.@/-]{1,512}$"
IAM_ACTION_PATTERN = r"^(\*|[a-z0-9-]{1,64}:[A-Za-z0-9*?]{1,128})$"
IAM_RESOURCE_PATTERN = r"^(\*|arn:aws[a-z-]*:[a-z0-9-]{1,64}:[a-z0-9-]*:([0-9]{12}|aws)?:[\x21-\x7e]{1,1024})$"
# Secrets Manager names: letters, digits and /_+=.@- (the console's rule), no trailing "-" plus 6 characters.
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
SECRET_NAME_PATTERN = r"^[A-Za-z0-9/_+=.@-]{1,512}$"


def _record(required: list[str], properties: Document) -> Document:
    """A map with these fields only, the ``required`` ones required: the shape of every nested record below."""
    return {"type": "object", "additionalProperties": False, "required": required, "properties": properties}


_RESOURCES = _record(["cpu", "memory"], {
    "cpu": {"type": "string", "maxLength": 32, "pattern": QUANTITY_PATTERN},
    "memory": {"type": "string", "maxLength": 32, "pattern": QUANTITY_PATTERN},
})

DECLARATION_SCHEMA: Document = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    # "image", or "releases" instead: checked after the schema.
    "required": ["name", "domain", "owner", "description", "version", "lifecycle",
                 "protocol", "resources", "openapi"],
    "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN},
        "domain": {"type": "string", "pattern": NAME_PATTERN},
        "owner": {"type": "string", "minLength": 1, "maxLength": 253},
        "description": {"type": "string", "minLength": 1, "maxLength": 4096},
        "version": {"type": "string", "maxLength": 64, "pattern": r"^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$"},
        "lifecycle": {"enum": list(LIFECYCLES)},
        "image": {"type": "string", "minLength": 1, "maxLength": 512},
        "port": {"type": "integer", "minimum": 1024, "maximum": 65535},
        "protocol": {"type": "string"},
        # Defaults to "<protocol>-api"; a team may name its port, and the policy pack judges the name.
        "portName": {"type": "string", "pattern": r"^([A-Za-z0-9]([-A-Za-z0-9]{0,13}[A-Za-z0-9])?)?$"},
        "appProtocol": {"type": "string", "pattern": r"^[-a-zA-Z0-9./]{1,63}$"},
        "healthPath": {"type": "string", "maxLength": 256, "pattern": r"^/[-a-zA-Z0-9_.~/%]*$"},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 100},
        "autoscaling": _record(["minReplicas", "maxReplicas"], {
            "minReplicas": {"type": "integer", "minimum": 1, "maximum": 100},
            "maxReplicas": {"type": "integer", "minimum": 1, "maximum": 100},
            "targetCPUUtilizationPercentage": {"type": "integer", "minimum": 10, "maximum": 100},
        }),
        "resources": _record(["requests", "limits"], {"requests": _RESOURCES, "limits": _RESOURCES}),
        "openapi": {"type": "string", "minLength": 1, "maxLength": 256},
        "rateLimit": _record(["requests", "period"], {
            "requests": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
            "period": {"type": "string", "pattern": r"^[1-9][0-9]{0,4}(s|m|h)$"},
        }),
        "routePrefix": {"type": "string", "maxLength": 256, "pattern": r"^/([-a-zA-Z0-9_.~]+/)*$"},
        "consumes": {"type": "array", "items": {"type": "string", "pattern": NAME_PATTERN}, "uniqueItems": True},
        # External hosts the product calls over TLS, "host" (port 443) or "host:port"; nothing else leaves the mesh.
        "egress": {"type": "array", "items": {"type": "string", "pattern": EGRESS_PATTERN}, "uniqueItems": True},
        "command": {"type": "array", "items": {"type": "string"}},
        "args": {"type": "array", "items": {"type": "string"}},
        "env": {"type": "object", "additionalProperties": {"type": "string"},
                "propertyNames": {"pattern": ENV_NAME_PATTERN}},
        # env names that look like credentials but are not secret, each with the reason (shown in the review).
        "notSecret": {"type": "object", "additionalProperties": {"type": "string", "minLength": 10, "maxLength": 500},
                      "propertyNames": {"pattern": ENV_NAME_PATTERN}},
        # ConfigMap keys: Kubernetes refuses "." and ".." as keys.
        "files": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 256},
                  "propertyNames": {"pattern": r"^[-._a-zA-Z0-9]{1,253}$", "not": {"enum": [".", ".."]}}},
        # Releases side by side (canaries), the traffic share of each, and shadow traffic to one of them.
        "releases": {"type": "array", "minItems": 1, "maxItems": MAX_RELEASES, "items": _record(["version", "image", "weight"], {
            # A label value (version, app.kubernetes.io/version): no "+", at most 63 characters.
            "version": {"type": "string", "maxLength": 63, "pattern": RELEASE_VERSION_PATTERN},
            "image": {"type": "string", "minLength": 1, "maxLength": 512},
            "weight": {"type": "integer", "minimum": 0, "maximum": 100},
        })},
        "mirror": _record(["version", "percent"], {"version": {"type": "string", "maxLength": 63},
                                                   "percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100}}),
        # AWS access through the product's own IAM role (IRSA); wildcards need the stack's consent.
        "aws": {"type": "object", "additionalProperties": False, "minProperties": 1, "properties": {
            "managedPolicyArns": {"type": "array", "maxItems": 10, "uniqueItems": True,
                                  "items": {"type": "string", "pattern": MANAGED_POLICY_ARN_PATTERN}},
            "statements": {"type": "array", "minItems": 1, "maxItems": 20, "items": _record(["actions", "resources"], {
                "actions": {"type": "array", "minItems": 1, "uniqueItems": True,
                            "items": {"type": "string", "pattern": IAM_ACTION_PATTERN}},
                "resources": {"type": "array", "minItems": 1, "uniqueItems": True,
                              "items": {"type": "string", "pattern": IAM_RESOURCE_PATTERN}},
            })},
        }},
        # Environment values from AWS Secrets Manager, through the External Secrets Operator.
        "secrets": {"type": "array", "maxItems": 50, "items": _record(["env", "secretsManager"], {
            "env": {"type": "string", "pattern": ENV_NAME_PATTERN, "maxLength": 128},
            "secretsManager": _record(["name"], {"name": {"type": "string", "pattern": SECRET_NAME_PATTERN},
                                                 "key": {"type": "string", "minLength": 1, "maxLength": 256}}),
        })},
    },
    "not": {"required": ["replicas", "autoscaling"]},
}


# Each pattern in words: a message (and an editor's hover) says what is expected, not the regular expression.
PATTERN_WORDS = {
    NAME_PATTERN: "a name of lowercase letters, digits and '-', starting with a letter and not ending with '-', "
                  "40 characters at most (e.g. customer-features)",
    r"^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$": "a semantic version like 1.4.0 (or 1.4.0-rc.1)",
    r"^([A-Za-z0-9]([-A-Za-z0-9]{0,13}[A-Za-z0-9])?)?$": "a port name of letters, digits and '-', 15 characters at most, "
                                                         "not starting or ending with '-' (e.g. http or http-api)",
    r"^[-a-zA-Z0-9./]{1,63}$": "an application protocol like http, kubernetes.io/h2c (letters, digits, '-', '.', '/')",
    r"^/[-a-zA-Z0-9_.~/%]*$": "a path starting with '/' (letters, digits and - _ . ~ / %), e.g. /healthz",
    r"^[1-9][0-9]{0,4}(s|m|h)$": "a period like 30s, 1m or 1h (a whole number, then s, m or h)",
    r"^/([-a-zA-Z0-9_.~]+/)*$": "a path starting and ending with '/', segments of letters, digits and - _ . ~ "
                               "(e.g. /public/api/v1/my-product/)",
    EGRESS_PATTERN: "a host name like api.example.com, optionally with :port (1 to 99999)",
    ENV_NAME_PATTERN: "an environment variable name: letters, digits and '_', not starting with a digit",
    r"^[-._a-zA-Z0-9]{1,253}$": "a file name of letters, digits and - _ . (253 characters at most)",
    RELEASE_VERSION_PATTERN: "a release version like 1.4.0 or 1.4.0-canary.1 (no '+')",
    MANAGED_POLICY_ARN_PATTERN: "an IAM managed policy ARN like arn:aws:iam::aws:policy/Name or "
                                "arn:aws:iam::123456789012:policy/Name",
    IAM_ACTION_PATTERN: "an IAM action like s3:GetObject (service:Action, '*' and '?' allowed in the action)",
    IAM_RESOURCE_PATTERN: "an ARN like arn:aws:s3:::bucket/* (or '*')",
    SECRET_NAME_PATTERN: "a Secrets Manager name of letters, digits and / _ + = . @ - (512 characters at most)",
    QUANTITY_PATTERN: "a Kubernetes quantity like 250m or 0.5 (CPU), 512Mi or 1Gi (memory)",
}


def _with_words(schema: Any) -> Any:
    """``schema`` with each pattern's words as its ``description`` (JSON Schema's annotation for people)."""
    if isinstance(schema, dict):
        found = {k: _with_words(v) for k, v in schema.items()}
        if isinstance(schema.get("pattern"), str) and "description" not in schema:
            found["description"] = PATTERN_WORDS[schema["pattern"]]
        return found
    if isinstance(schema, list):
        return [_with_words(v) for v in schema]
    return schema


def _without_required(schema: Any) -> Any:
    """A schema for a partial value: the same shapes, nothing required."""
    if isinstance(schema, dict):
        return {k: _without_required(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [_without_required(v) for v in schema]
    return schema


DECLARATION_SCHEMA = _with_words(DECLARATION_SCHEMA)
OVERRIDE_SCHEMA: Document = {
    "type": "object",
    "additionalProperties": False,
    "properties": {k: _without_required(DECLARATION_SCHEMA["properties"][k]) for k in OVERRIDABLE},
    "not": {"required": ["replicas", "autoscaling"]},
}
