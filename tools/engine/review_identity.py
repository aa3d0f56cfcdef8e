"""What a reviewer reads first in a render diff: AWS access, and the secrets and env the workloads get.

- **AWS access.** Each statement of every IAM policy document in the render (``RolePolicy``
  and ``Policy`` documents, role trust policies) as one line per action and resource,
  named by the top-level component it belongs to (``churn-scorer: s3:GetObject on
  arn:aws:s3:::bucket/*``); managed policies attached by ARN (not the render's own
  ``Policy``, whose statements are listed) as one line each.
- **Secrets and env.** Every container's env by name, per workload ``app``: a plain value
  is shown (the render masks Pulumi secrets as ``[secret]``), a secret never is: only where
  it comes from (the Kubernetes Secret and key, and the ExternalSecret's remote reference).
"""

from __future__ import annotations

import json
from typing import Any

from tools.engine.graphs import component_of
from tools.engine.review_access import Resources, app_of, k8s_objects, workloads

_POLICY_DOCS = {"aws:iam/rolePolicy:RolePolicy": "policy", "aws:iam/policy:Policy": "policy",
                "aws:iam/role:Role": "assumeRolePolicy"}
_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
_POLICY = "aws:iam/policy:Policy"


def _owner(resource: dict[str, Any], by_urn: dict[str, dict[str, Any]]) -> str:
    """The name of the top-level component a resource belongs to ("stack" for plain top-level resources)."""
    return component_of(resource, by_urn).rsplit(" ", 1)[-1]


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [json.dumps(v, sort_keys=True) if not isinstance(v, str) else v
            for v in (value if isinstance(value, list) else [value])]


def _condition(condition: Any) -> str:
    """``Operator key=value, ...``; an OIDC provider's keys (``<provider host>/id/X:sub``) by their claim alone."""
    if not isinstance(condition, dict):
        return json.dumps(condition, sort_keys=True)
    parts = []
    for operator, tests in sorted(condition.items()):
        for key, values in sorted(tests.items()) if isinstance(tests, dict) else [("", tests)]:
            prefix, _, claim = key.rpartition(":")
            shown = claim if "/" in prefix else key
            parts.append(f"{operator} {shown}={','.join(_listed(values))}")
    return ", ".join(parts)


def _statement_lines(statement: dict[str, Any], trust: str | None) -> list[str]:
    """One line per action and resource (or per action and principal, for a role's trust policy)."""
    actions = _listed(statement.get("Action")) + [f"every action but {a}" for a in _listed(statement.get("NotAction"))]
    if trust is not None:
        principal = statement.get("Principal")
        targets = [f"{k} {v}" for k, vs in sorted(principal.items()) for v in _listed(vs)] \
            if isinstance(principal, dict) else _listed(principal)
        where = [f"role {trust} trusts {t}" for t in targets]
    else:
        where = _listed(statement.get("Resource")) + [f"everything but {r}" for r in _listed(statement.get("NotResource"))]
    effect = "deny " if statement.get("Effect") == "Deny" else ""
    condition = f" when {_condition(statement['Condition'])}" if statement.get("Condition") else ""
    if trust is not None:
        return [f"{w}: {effect}{a}{condition}" for w in where for a in actions]
    return [f"{effect}{a} on {w}{condition}" for a in actions for w in where]


def aws_access(resources: Resources) -> set[str]:
    """Every IAM grant and trust in the render, one line each, prefixed with its component's name."""
    by_urn = {r["urn"]: r for r in resources}
    lines: set[str] = set()
    for r in resources:
        field = _POLICY_DOCS.get(r["type"])
        inputs = r.get("inputs") or {}
        if field and isinstance(inputs.get(field), str):
            try:
                document = json.loads(inputs[field])
            except json.JSONDecodeError:
                lines.add(f"{_owner(r, by_urn)}: {r['name']}: a policy document the render cannot read")
                continue
            statements = document.get("Statement") if isinstance(document, dict) else None
            trust = r["name"] if field == "assumeRolePolicy" else None
            for statement in statements if isinstance(statements, list) else [statements] if statements else []:
                lines |= {f"{_owner(r, by_urn)}: {line}" for line in _statement_lines(statement, trust)}
        elif r["type"] == _ATTACHMENT and not any(by_urn.get(d, {}).get("type") == _POLICY
                                                  for d in r.get("dependencies") or []):
            lines.add(f"{_owner(r, by_urn)}: managed policy {inputs.get('policyArn')}")
    return lines


def _remote_refs(resources: Resources) -> dict[tuple[str, str, str], str]:
    """(namespace, Secret, key) -> where an ExternalSecret fetches it from."""
    found = {}
    for es in k8s_objects(resources, "ExternalSecret"):
        spec = es.get("spec") or {}
        ns = (es.get("metadata") or {}).get("namespace", "")
        target = (spec.get("target") or {}).get("name") or (es.get("metadata") or {}).get("name")
        store = (spec.get("secretStoreRef") or {}).get("name")
        for item in spec.get("data") or []:
            ref = item.get("remoteRef") or {}
            prop = f", key {ref['property']}" if ref.get("property") else ""
            found[(ns, str(target), str(item.get("secretKey")))] = f"{store} {ref.get('key')}{prop}"
    return found


def _describe(entry: dict[str, Any], ns: str, remote: dict[tuple[str, str, str], str]) -> tuple[str, str]:
    """("env" or "secret", what the reviewer sees): a plain value, or where a secret comes from (never its value)."""
    source = entry.get("valueFrom")
    if not isinstance(source, dict):
        return "env", json.dumps(entry.get("value", ""))
    ref = source.get("secretKeyRef")
    if isinstance(ref, dict):
        fetched = remote.get((ns, str(ref.get("name")), str(ref.get("key"))))
        return "secret", f"from Secret {ref.get('name')} key {ref.get('key')}" + (f", fetched from {fetched}" if fetched else "")
    return "env", "from " + json.dumps(source, sort_keys=True)


def env_by_name(resources: Resources) -> dict[tuple[str, str, str], str]:
    """(app, "env" or "secret", name) -> what the reviewer sees; a value differing between an app's workloads joined by " | "."""
    remote = _remote_refs(resources)
    found: dict[tuple[str, str, str], set[str]] = {}
    for w in workloads(resources):
        pod = w["spec"]["template"]
        app = app_of(w, (pod.get("metadata") or {}).get("labels"))
        ns = (w.get("metadata") or {}).get("namespace", "")
        for container in (pod.get("spec") or {}).get("containers") or []:
            for entry in container.get("env") or []:
                kind, shown = _describe(entry, ns, remote)
                found.setdefault((app, kind, str(entry.get("name"))), set()).add(shown)
            for source in container.get("envFrom") or []:
                for kind, ref in sorted(source.items()):
                    if isinstance(ref, dict):
                        label = "secret" if kind == "secretRef" else "env"
                        found.setdefault((app, label, f"all of {kind.removesuffix('Ref')} {ref.get('name')}"), set()).add("")
    return {key: " | ".join(sorted(values)) for key, values in found.items()}


def env_lines(old: dict[tuple[str, str, str], str], new: dict[tuple[str, str, str], str]) -> list[str]:
    def show(key: tuple[str, str, str], values: dict[tuple[str, str, str], str]) -> str:
        app, kind, name = key
        value = values[key]
        return f"{app}: {kind} {name}" + (f" = {value}" if kind == "env" and value else f" {value}" if value else "")

    added = [f"+ {show(k, new)}" for k in sorted(set(new) - set(old))]
    changed = [f"~ {k[0]}: {k[1]} {k[2]}: {old[k]} -> {new[k]}" for k in sorted(set(new) & set(old)) if old[k] != new[k]]
    return added + changed + [f"- {k[0]}: {k[1]} {k[2]}" for k in sorted(set(old) - set(new))]
