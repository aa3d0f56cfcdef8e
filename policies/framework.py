"""The policy framework: what a rule sees (``Resource``), what it may be told (``Context``),
a rule and its findings, and how a pack's config turns rules on, off and exempts resources.

Standard library only, like the rules (``policies.rules``, the catalogue): the pack's
virtualenv has ``pulumi`` and ``pulumi-policy`` and nothing else.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from components.documents import Document, DocumentView
from components.problems import TOP_LEVEL, Problem, message

MANDATORY, ADVISORY, DISABLED = "mandatory", "advisory", "disabled"
LEVELS = (MANDATORY, ADVISORY, DISABLED)


@dataclass(frozen=True)
class Resource:
    """A resource as a policy sees it."""

    urn: str
    type: str
    name: str
    props: DocumentView

    @property
    def kind(self) -> str:
        """The Kubernetes kind, or the last part of the type token."""
        return self.type.rsplit(":", 1)[-1]

    def is_k8s(self, *kinds: str) -> bool:
        return self.type.startswith("kubernetes:") and self.kind in kinds

    @property
    def metadata(self) -> DocumentView:
        meta = self.props.get("metadata")
        return meta if isinstance(meta, Mapping) else {}

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or "default")

    @property
    def k8s_name(self) -> str:
        return str(self.metadata.get("name") or self.name)

    @property
    def spec(self) -> DocumentView:
        spec = self.props.get("spec")
        return spec if isinstance(spec, Mapping) else {}


@dataclass(frozen=True)
class Context:
    """What a rule may be told through the pack's config."""

    config: DocumentView = field(default_factory=dict)

    def setting(self, key: str, default: list[str]) -> list[str]:
        """A rule's setting, or ``default``: every rule setting is a list of strings (``_check_entry`` holds them to it)."""
        value: list[str] = self.config.get(key, default)
        return value


ResourceCheck = Callable[[Resource, Context], Iterable[str]]
StackCheck = Callable[[list[Resource], Context], Iterable[tuple[Resource, str]]]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    level: str
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None
    # Extra config properties (JSON Schema) the rule reads, besides exemptions.
    settings: Mapping[str, DocumentView] = field(default_factory=dict)


@dataclass(frozen=True)
class Violation:
    rule: str
    level: str
    urn: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"rule": self.rule, "level": self.level, "urn": self.urn, "message": self.message}


# --- configuration and evaluation --------------------------------------------


class PolicyConfigError(ValueError):
    """A policy config that is not what the rules' schemas allow: its ``problem`` says where and what."""

    def __init__(self, where: str, what: str) -> None:
        self.problem = Problem(where, what)
        super().__init__(message([self.problem]))


EXEMPTIONS_PROPERTY = {"type": "array", "items": {"type": "string"},
                       "description": "URNs or resource names (globs) this rule does not apply to"}


def config_schema(rule: Rule) -> Document:
    """The JSON Schema of one rule's config object: what the pack declares to Pulumi (``policies/pack.py``)
    and what the render validates a config file against (besides ``enforcementLevel``, which Pulumi adds)."""
    return {"type": "object", "properties": {"exemptions": EXEMPTIONS_PROPERTY, **rule.settings}}


def _check_entry(key: str, entry: DocumentView, properties: DocumentView) -> None:
    """Fail closed, with the standard library only: every property known, every list a list of strings."""
    for prop, value in entry.items():
        if prop == "enforcementLevel":
            if value not in LEVELS:
                raise PolicyConfigError(f"{key}.enforcementLevel", f"must be one of {', '.join(LEVELS)}, got {str(value)[:40]!r}")
            continue
        if prop not in properties:
            raise PolicyConfigError(f"{key}.{str(prop)[:60]}", "is not a setting of this policy "
                                    f"({', '.join(['enforcementLevel', *properties])})")
        wanted = properties[prop].get("type")
        if wanted == "array" and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise PolicyConfigError(f"{key}.{prop}", "must be a list of strings")


def rule_configs(config: object, rules: Mapping[str, Rule]) -> dict[str, Document]:
    """Normalise Pulumi policy config (``{"all": level, "<rule>": level | {...}}``) per rule of ``rules`` (by name).

    Anything the rules' schemas do not allow is an error, never ignored: a
    malformed exemption must not exempt everything.
    """
    if not isinstance(config, Mapping):
        raise PolicyConfigError(TOP_LEVEL, "must be a map of policy name to level or settings")
    result: dict[str, Document] = {name: {} for name in rules}
    for key, value in config.items():
        if key != "all" and key not in rules:
            raise PolicyConfigError(str(key)[:60], f"is not a datamesh policy ({', '.join(rules)})")
        if isinstance(value, str):
            entry: Document = {"enforcementLevel": value}
        elif isinstance(value, Mapping):
            entry = dict(value)
        else:
            raise PolicyConfigError(str(key), f"must be a level ({', '.join(LEVELS)}) or a map of settings")
        properties = {"exemptions": EXEMPTIONS_PROPERTY} if key == "all" else config_schema(rules[key])["properties"]
        _check_entry(key, entry, properties)
        for name in (rules if key == "all" else [key]):
            result[name] = {**result[name], **entry}
    return result


def exempt(resource: Resource, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(resource.urn, p) or fnmatch.fnmatchcase(resource.name, p) for p in patterns)


def run_rule(rule: Rule, resources: list[Resource], config: DocumentView) -> list[tuple[Resource, str]]:
    """A rule's findings, exemptions (``config["exemptions"]``: URN or name globs) left out."""
    ctx = Context(config)
    if rule.resource_check is not None:
        found = [(r, m) for r in resources for m in rule.resource_check(r, ctx)]
    else:
        assert rule.stack_check is not None
        found = list(rule.stack_check(resources, ctx))
    patterns = config.get("exemptions", [])
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise PolicyConfigError(f"{rule.name}.exemptions", "must be a list of strings")  # never iterate a string's letters
    return [(r, m) for r, m in found if not exempt(r, patterns)]


def evaluate(rules: tuple[Rule, ...], resources: list[Resource], config: DocumentView | None = None) -> list[Violation]:
    """Every rule of ``rules`` over ``resources``, with levels and exemptions from ``config``."""
    configs = rule_configs(config or {}, {rule.name: rule for rule in rules})
    violations = []
    for rule in rules:
        cfg = configs[rule.name]
        level = cfg.get("enforcementLevel", rule.level)
        if level == DISABLED:
            continue
        violations += [Violation(rule.name, level, r.urn, m) for r, m in run_rule(rule, resources, cfg)]
    return violations
