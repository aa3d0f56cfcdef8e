"""A data product's Kubernetes specs, as plain values: labels, the container and pod, its route's destinations.

No Pulumi registration here: ``DataProduct`` (``components.products.data_product``) builds its resources from these.
"""

from __future__ import annotations

import hashlib

import pulumi_kubernetes as k8s

from components.documents import Document
from components.products import aws_access
from components.products.model import Product, Release, upstream_env_name

# Any non-root UID works for these images; a fixed one keeps file ownership predictable.
RUN_AS = 65532
FILES_MOUNT = "/app"


def labels(product: Product, version: str | None = None) -> dict[str, str]:
    """The labels Istio (app, version) and Kubernetes tooling (app.kubernetes.io/*) look for.

    ``version`` is a release's: Istio's sidecar injector takes the canonical revision, which
    its metrics report as destination_version, from app.kubernetes.io/version, then version.
    """
    version = version or product.version
    return {
        "app": product.name,
        "version": version,
        "app.kubernetes.io/name": product.name,
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/component": "data-product",
        "app.kubernetes.io/part-of": "datamesh",
        "datamesh.io/domain": product.domain,
    }


def product_annotations(product: Product) -> dict[str, str]:
    return {
        "datamesh.io/owner": product.owner,
        "datamesh.io/description": product.description,
        "datamesh.io/lifecycle": product.lifecycle,
        "datamesh.io/route-prefix": product.route_prefix,
        "datamesh.io/consumes": ",".join(product.consumes),
    }


def probe(product: Product, period: int) -> dict:
    if product.protocol == "tcp":
        action: dict = {"tcpSocket": {"port": product.port}}
    elif product.protocol == "grpc":
        action = {"grpc": {"port": product.port}}
    else:
        action = {"httpGet": {"path": product.health_path, "port": product.port}}
    return {**action, "periodSeconds": period, "timeoutSeconds": 2, "failureThreshold": 3}


def container(product: Product, upstreams: tuple[Product, ...], image: str | None = None) -> dict:
    env = {**product.env, **{upstream_env_name(u.name): u.mesh_url for u in upstreams}}
    mounts: list[Document] = [{"name": "tmp", "mountPath": "/tmp"}]
    if product.files:
        mounts.append({"name": "files", "mountPath": FILES_MOUNT, "readOnly": True})
    if product.aws:
        mounts.append(aws_access.token_mount())
    spec: Document = {
        "name": "product",
        "image": image or product.image,
        # Unnamed: Istio reads the Service port's name, and probes use the number.
        "ports": [{"containerPort": product.port, "protocol": "TCP"}],
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())] + aws_access.secret_env(product),
        "resources": {"requests": dict(product.resources["requests"]), "limits": dict(product.resources["limits"])},
        "readinessProbe": {**probe(product, 5), "initialDelaySeconds": 2},
        "livenessProbe": {**probe(product, 15), "initialDelaySeconds": 10},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    if product.command:
        spec["command"] = list(product.command)
    if product.args:
        spec["args"] = list(product.args)
    return spec


def files_digest(product: Product) -> str:
    """Changes when a mounted file changes, so the Deployment rolls."""
    h = hashlib.sha256()
    for name, content in sorted(product.files.items()):
        h.update(name.encode() + b"\0" + content.encode() + b"\0")
    return h.hexdigest()


def egress_entry_name(product: str, host: str) -> str:
    """The ServiceEntry's name for one external host: readable, and distinct for distinct hosts.

    Dots become dashes for a readable name, so ``a.b-c.com`` and ``a-b.c.com`` would collide;
    a short digest of the host keeps them apart, and the cut keeps the name under 253 characters.
    """
    digest = hashlib.sha256(host.encode()).hexdigest()[:8]
    return f"{product}-egress-{host.replace('.', '-')[:180]}-{digest}"


def subset(release: Release) -> str:
    """The DestinationRule subset of a release (a DNS label)."""
    return f"v{release.slug}"


def route(product: Product) -> list[dict]:
    """The gateway route's destinations: the Service, or each release with traffic by its weight."""
    destination = {"host": product.service_host, "port": {"number": product.port}}
    if not product.releases:
        return [{"destination": destination}]
    return [{"destination": {**destination, "subset": subset(r)}, "weight": r.weight}
            for r in product.releases if r.weight]


def mirror(product: Product) -> dict:
    """Shadow traffic: a copy of a share of the requests to a release whose answers are dropped."""
    if product.mirror is None:
        return {}
    release = next(r for r in product.releases if r.version == product.mirror.version)
    return {"mirror": {"host": product.service_host, "subset": subset(release), "port": {"number": product.port}},
            "mirrorPercentage": {"value": product.mirror.percent}}


def selector(product: Product) -> dict[str, str]:
    """What the Service, the budget and the Sidecar select: every release's pods."""
    return {"app": product.name}


def match_labels(product: Product, release: Release | None) -> dict[str, str]:
    """A Deployment's selector: the product's pods, or one release's."""
    return selector(product) if release is None else {**selector(product), "version": release.version}


def pod_spec(product: Product, upstreams: tuple[Product, ...], release: Release | None,
             account: k8s.core.v1.ServiceAccount, volumes: list[dict]) -> dict:
    """The pod of a Deployment: its service account, hardened, one container, spread over zones."""
    return {
        "serviceAccountName": account.metadata.name,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container(product, upstreams, release.image if release else None)],
        "volumes": volumes,
        "topologySpreadConstraints": [{
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": match_labels(product, release)},
        }],
    }
