"""Istio's protocol selection for a Service port, as a plain function. Standard library only.

The declarations check a product's ``portName`` with it before anything renders, and the
policy pack checks every Service port in a mesh namespace with it (policies/rules.py).
"""

from __future__ import annotations

# Istio's protocol selection for a Service port: ConvertProtocol in istio/istio
# pkg/config/kube/conversion.go with protocol.Parse (pkg/config/protocol/instance.go),
# read at 1.30.3 and unchanged from 1.28.10 to 1.31.0-rc.0. Values are Istio's protocol.Instance names.
ISTIO_PARSE = {
    "tcp": "TCP", "udp": "UDP", "grpc": "GRPC", "grpc-web": "GRPC-Web", "http": "HTTP", "http_proxy": "HTTP_PROXY",
    "http2": "HTTP2", "https": "HTTPS", "tls": "TLS", "mongo": "Mongo", "redis": "Redis", "mysql": "MySQL",
}
# Kubernetes' standard appProtocol values, honoured only through appProtocol, matched exactly.
ISTIO_K8S_APP_PROTOCOLS = {"kubernetes.io/h2c": "HTTP2", "kubernetes.io/ws": "HTTP", "kubernetes.io/wss": "HTTPS"}
ISTIO_WELL_KNOWN_PORTS = frozenset({25, 53, 3306, 27017})  # SMTP, DNS, MySQL, MongoDB: TCP when unnamed
UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"


def convert_protocol(port: int, name: str, protocol: str, app_protocol: str | None) -> str:
    """The protocol Istio selects for a Service port, exactly as Istio's ConvertProtocol does.

    UDP wins; a set appProtocol alone decides (the port name is then ignored, even
    when appProtocol is unknown); "grpc-web" is matched as a prefix, case aside;
    otherwise the part before the first "-" is looked up, case aside. Unknown is
    ``UNSUPPORTED_PROTOCOL`` (Istio sniffs), except on the well-known ports (TCP).
    """
    if protocol == "UDP":
        return "UDP"
    if app_protocol is not None:
        name = app_protocol
        if name in ISTIO_K8S_APP_PROTOCOLS:
            return ISTIO_K8S_APP_PROTOCOLS[name]
    # Go slices bytes; port names and appProtocols are ASCII in a valid Service, so bytes and characters agree.
    if len(name) >= len("grpc-web") and name[: len("grpc-web")].lower() == "grpc-web":
        return "GRPC-Web"
    prefix = name.split("-", 1)[0]
    found = ISTIO_PARSE.get(prefix.lower(), UNSUPPORTED_PROTOCOL)
    if found == UNSUPPORTED_PROTOCOL and port in ISTIO_WELL_KNOWN_PORTS:
        return "TCP"
    return found


def suggest_port_name(given: str, protocol: str) -> str:
    """A port name selecting ``protocol`` (an Istio protocol name, e.g. "http"): ``protocol``, then the suffix words of
    ``given`` that name no protocol ("api-http" -> "http-api", "tcp-db" -> "http-db", "web" -> "http")."""
    if "-" not in given:
        return protocol
    words = [w for w in given.lower().split("-") if w and w not in ISTIO_PARSE and w != "web"]
    return f"{protocol}-{'-'.join(words)}"[:15].rstrip("-") if words else protocol
