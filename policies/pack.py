"""Adapt ``policies.rules`` to the Pulumi policy SDK: one Pulumi policy per rule."""

from __future__ import annotations

from collections.abc import Callable

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.rules import RULES, Resource, Rule, config_schema, run_rule

ReportViolation = Callable[[str, str | None], None]


def _schema(rule: Rule) -> PolicyConfigSchema:
    """The same schema the render validates config files against (``policies.rules.config_schema``)."""
    return PolicyConfigSchema(properties=config_schema(rule)["properties"])


def _resource_validator(rule: Rule) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        resource = Resource(args.urn, args.resource_type, args.name, args.props)
        for _, message in run_rule(rule, [resource], args.get_config() or {}):
            report_violation(message, args.urn)
    return validate


def _stack_validator(rule: Rule) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [Resource(r.urn, r.resource_type, r.name, r.props) for r in args.resources]
        for resource, message in run_rule(rule, resources, args.get_config() or {}):
            report_violation(message, resource.urn)
    return validate


def build_policies() -> list[Policy]:
    """Every rule as a Pulumi policy, with its default enforcement level and config schema."""
    policies: list[Policy] = []
    for rule in RULES:
        level = EnforcementLevel(rule.level)
        if rule.resource_check is not None:
            policies.append(ResourceValidationPolicy(
                name=rule.name, description=rule.description, validate=_resource_validator(rule),
                enforcement_level=level, config_schema=_schema(rule)))
        else:
            policies.append(StackValidationPolicy(
                name=rule.name, description=rule.description, validate=_stack_validator(rule),
                enforcement_level=level, config_schema=_schema(rule)))
    return policies
