"""The global rate limit's service and its Redis (``datamesh:rateLimits: global``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import yaml

from components.config import RateLimitSettings
from components.documents import Document
from components.governance.access import Consumer, RateLimit
from components.governance.global_limits import (
    GATEWAY_DOMAIN,
    GRPC_PORT,
    HTTP_PORT,
    INBOUND_DOMAIN,
    SERVICE_NAME,
    SERVICE_NAMESPACE,
    service_config,
)
from components.platform.context import ClusterContext
from components.products.declarations import Product
from components.versions import ELASTICACHE_ENGINE_VERSION, RATELIMIT_IMAGE, REDIS_IMAGE

REDIS_PORT = 6379
REDIS_NAME = f"{SERVICE_NAME}-redis"
CONFIG_DIR = "/data/ratelimit/config"  # RUNTIME_ROOT/RUNTIME_SUBDIRECTORY/config: the service reads every file there
SELECTOR = {"app": SERVICE_NAME}  # the service's pods: its Deployment, Service and NetworkPolicy select them by this
LABELS = {**SELECTOR, "app.kubernetes.io/part-of": "datamesh"}
REDIS_SELECTOR = {"app": REDIS_NAME}
# Set by Kubernetes on every Namespace (1.22+): a NetworkPolicy names a namespace by it.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
_HARDENED = {"runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False,
             "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


def config_files(products: Sequence[Product], consumers: Sequence[Consumer], tiers: dict[str, RateLimit]) -> dict[str, str]:
    """The service's config files: the gateway's domain and the sidecars', with the same descriptors."""
    return {f"{domain}.yaml": yaml.safe_dump(service_config(domain, products, consumers, tiers), sort_keys=False)
            for domain in (GATEWAY_DOMAIN, INBOUND_DOMAIN)}


def service_env(redis_url: pulumi.Input[str], tls: bool, auth_secret: str | None) -> list[Document]:
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in (
        # No stats sink: without one the service writes every timer sample (one per call) as a JSON line to stderr,
        # synchronously on the call's path. The gateway's and sidecars' Envoys count the calls (ratelimit.ok, ...).
        ("USE_STATSD", "false"), ("DISABLE_STATS", "true"), ("LOG_LEVEL", "warn"),
        ("REDIS_SOCKET_TYPE", "tcp"), ("REDIS_TYPE", "SINGLE"),
        ("REDIS_TLS", "true" if tls else "false"), ("RUNTIME_ROOT", "/data"), ("RUNTIME_SUBDIRECTORY", "ratelimit"),
        ("RUNTIME_WATCH_ROOT", "false"), ("GRPC_PORT", str(GRPC_PORT)), ("PORT", str(HTTP_PORT)),
        # A request over one of its limits spends none of the others (a consumer over its tier does not use up the
        # product's shared limit).
        ("STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT", "true"))]
    env.append({"name": "REDIS_URL", "value": redis_url})
    if auth_secret is not None:
        env.append({"name": "REDIS_AUTH", "valueFrom": {"secretKeyRef": {"name": auth_secret, "key": "token"}}})
    return env


@dataclass(frozen=True)
class Caller:
    """Pods whose Envoy calls the service (it has the global rate limit filter): their namespace and pod labels."""

    namespace: pulumi.Input[str]
    labels: dict[str, str]


def caller_rules(callers: Sequence[Caller]) -> list[Document]:
    """The NetworkPolicy's ingress: gRPC from exactly ``callers``' pods; none at all without callers (an empty
    ``from`` would admit every source)."""
    if not callers:
        return []
    return [{"from": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: c.namespace}},
                       "podSelector": {"matchLabels": dict(c.labels)}} for c in callers],
             "ports": [{"protocol": "TCP", "port": GRPC_PORT}]}]


@dataclass(frozen=True)
class RateLimitServiceArgs:
    """Inputs of ``RateLimitService``.

    Attributes:
        settings: datamesh:rateLimits and its Redis (the AUTH token is a secret).
        products, consumers, tiers: what is limited: the same declarations as the local limits.
        cluster: the cluster's context (tags; the AWS provider for ElastiCache).
        vpc_id, private_subnet_ids: where ElastiCache goes.
        node_security_group_id: the only source ElastiCache admits, on 6379.
        zones: the network's availability zones (two or more: a replica in another zone, automatic failover).
        callers: the pods whose Envoys call the service (the gateway's, each limited product's): the only ones its
            NetworkPolicy admits, on the gRPC port.
        after: what the service waits for (the gateway's release, hence istio-system).
    """

    settings: RateLimitSettings
    products: tuple[Product, ...]
    consumers: tuple[Consumer, ...]
    tiers: dict[str, RateLimit]
    cluster: ClusterContext
    vpc_id: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[Sequence[str]]
    node_security_group_id: pulumi.Input[str]
    zones: int
    callers: Sequence[Caller] = ()
    after: Sequence[pulumi.Resource] = ()


class RateLimitService(pulumi.ComponentResource):
    """Creates, in istio-system: a ConfigMap with the service's config (one file per domain), the
    envoyproxy/ratelimit Deployment (two replicas, pinned image), its Service (gRPC 8081) and a NetworkPolicy
    admitting gRPC from the callers only; and its Redis: with ``elasticache``, a subnet group over the private
    subnets, a security group admitting 6379 from the nodes only, a replication group (TLS in transit,
    encryption at rest, AUTH with the secret token) and a Secret holding the token for the service; with
    ``in-cluster``, one Redis pod, its Service and a NetworkPolicy admitting 6379 from the service's pods only
    (dev only: no persistence, no AUTH). A NetworkPolicy holds only where the CNI enforces it."""

    def __init__(self, name: str, args: RateLimitServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:governance:RateLimitService", name, None, opts)
        self._k8s = pulumi.ResourceOptions(parent=self, depends_on=list(args.after))
        if args.settings.redis == "elasticache":
            url, tls, secret = self._elasticache(name, args), True, self._auth_secret(args)
        else:
            url, tls, secret = pulumi.Output.from_input(self._in_cluster_redis()), False, None
        config = k8s.core.v1.ConfigMap(f"{name}-config", metadata={"name": f"{SERVICE_NAME}-config",
                                                                    "namespace": SERVICE_NAMESPACE},
                                       data=config_files(args.products, args.consumers, args.tiers), opts=self._k8s)
        self.deployment = self._deployment(name, url, tls, secret, config)
        k8s.core.v1.Service(  # type: ignore[call-overload]
            name, metadata={"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE, "labels": LABELS},
                            spec={"selector": dict(SELECTOR), "ports": [
                                {"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT},
                                {"name": "http-health", "port": HTTP_PORT, "targetPort": HTTP_PORT}]}, opts=self._k8s)
        # The health port is left out: only the kubelet probes it, from the node, which a NetworkPolicy always admits.
        self._network_policy(f"{name}-callers", SERVICE_NAME, SELECTOR, caller_rules(args.callers))
        self.register_outputs({})

    def _network_policy(self, resource: str, name: str, pods: dict[str, str], ingress: list[Document]) -> None:
        """Ingress to the ``pods`` (in the service's namespace) only as ``ingress`` says; egress untouched."""
        k8s.networking.v1.NetworkPolicy(  # type: ignore[call-overload]
            resource, metadata={"name": name, "namespace": SERVICE_NAMESPACE, "labels": dict(pods)},
            spec={"podSelector": {"matchLabels": dict(pods)}, "policyTypes": ["Ingress"], "ingress": ingress},
            opts=self._k8s)

    def _deployment(self, name: str, url: pulumi.Input[str], tls: bool, secret: str | None,
                    config: k8s.core.v1.ConfigMap) -> k8s.apps.v1.Deployment:
        container = {
            "name": SERVICE_NAME, "image": RATELIMIT_IMAGE, "command": ["/bin/ratelimit"],
            "env": service_env(url, tls, secret),
            "ports": [{"name": "grpc", "containerPort": GRPC_PORT}, {"name": "http", "containerPort": HTTP_PORT}],
            "readinessProbe": {"httpGet": {"path": "/healthcheck", "port": HTTP_PORT}, "periodSeconds": 5},
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
            "securityContext": _HARDENED,
            "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        }
        return k8s.apps.v1.Deployment(  # type: ignore[call-overload]
            name, metadata={"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE, "labels": LABELS},
                                      spec={"replicas": 2, "selector": {"matchLabels": dict(SELECTOR)},
                                            "template": {"metadata": {"labels": LABELS}, "spec": {
                                                "containers": [container],
                                                "volumes": [{"name": "config", "configMap": {"name": config.metadata.name}}]}}},
                                      opts=self._k8s)

    def _in_cluster_redis(self) -> str:
        labels = dict(REDIS_SELECTOR)
        container = {"name": "redis", "image": REDIS_IMAGE, "args": ["--save", "", "--appendonly", "no"],
                     "ports": [{"name": "redis", "containerPort": REDIS_PORT}],
                     "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
                     "securityContext": {**_HARDENED, "runAsUser": 999}}
        k8s.apps.v1.Deployment(  # type: ignore[call-overload]
            REDIS_NAME, metadata={"name": REDIS_NAME, "namespace": SERVICE_NAMESPACE, "labels": labels},
                               spec={"replicas": 1, "selector": {"matchLabels": labels},
                                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}},
                               opts=self._k8s)
        k8s.core.v1.Service(
            REDIS_NAME, metadata={"name": REDIS_NAME, "namespace": SERVICE_NAMESPACE, "labels": labels},
                            spec={"selector": labels, "ports": [{"name": "tcp-redis", "port": REDIS_PORT}]}, opts=self._k8s)
        # No AUTH, no TLS: only the service's pods (same namespace) may reach it.
        self._network_policy(f"{REDIS_NAME}-from-service", REDIS_NAME, REDIS_SELECTOR, [
            {"from": [{"podSelector": {"matchLabels": dict(SELECTOR)}}], "ports": [{"protocol": "TCP", "port": REDIS_PORT}]}])
        return f"{REDIS_NAME}.{SERVICE_NAMESPACE}.svc.cluster.local:{REDIS_PORT}"

    def _auth_secret(self, args: RateLimitServiceArgs) -> str:
        name = f"{REDIS_NAME}-auth"
        k8s.core.v1.Secret(name, metadata={"name": name, "namespace": SERVICE_NAMESPACE}, type="Opaque",
                           string_data={"token": pulumi.Output.secret(args.settings.redis_auth_token)}, opts=self._k8s)
        return name

    def _elasticache(self, name: str, args: RateLimitServiceArgs) -> pulumi.Output[str]:
        opts = pulumi.ResourceOptions(parent=self, provider=args.cluster.aws_provider)
        tags = args.cluster.tags
        group = aws.ec2.SecurityGroup(f"{name}-redis", vpc_id=args.vpc_id, tags={**tags, "Name": f"{args.cluster.name}-ratelimit-redis"},
                                      description="rate-limit Redis: 6379 from the cluster's nodes only", opts=opts)
        aws.ec2.SecurityGroupRule(f"{name}-redis-from-nodes", type="ingress", security_group_id=group.id, protocol="tcp",
                                  from_port=REDIS_PORT, to_port=REDIS_PORT, source_security_group_id=args.node_security_group_id,
                                  description="the rate-limit service, from the nodes", opts=opts)
        subnets = aws.elasticache.SubnetGroup(f"{name}-redis", name=f"{args.cluster.name.lower()}-ratelimit",
                                              subnet_ids=args.private_subnet_ids, tags=tags,
                                              description="the cluster's private subnets", opts=opts)
        replicas = 2 if args.zones > 1 else 1
        redis = aws.elasticache.ReplicationGroup(
            f"{name}-redis", description=f"{args.cluster.name} global rate limits", engine="redis",
            engine_version=ELASTICACHE_ENGINE_VERSION, node_type=args.settings.redis_node_type, port=REDIS_PORT,
            num_cache_clusters=replicas, automatic_failover_enabled=replicas > 1, multi_az_enabled=replicas > 1,
            subnet_group_name=subnets.name, security_group_ids=[group.id],
            transit_encryption_enabled=True, at_rest_encryption_enabled=True,
            auth_token=pulumi.Output.secret(args.settings.redis_auth_token), tags=tags,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["authToken"])))
        return pulumi.Output.concat(redis.primary_endpoint_address, f":{REDIS_PORT}")
