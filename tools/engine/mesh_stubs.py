"""What the harness puts where the products' pods would be: echoing stub backends, or one answering Envoy.

A stub records every request (``Seen``) and answers with what it received. Without sidecars
it terminates Istio mTLS itself (``tls_context``: a certificate for the workload's SPIFFE
identity, client certificates required); behind a sidecar it speaks plaintext, and a
composite's stub first calls each of its upstreams the way a composite must, forwarding the
consumer (``call_upstream``). ``backends_bootstrap`` is the benchmark's backend: one Envoy
answering every pod address directly, over Istio mTLS.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from components.documents import Document
from tools.engine import istio_xds
from tools.engine.envoy_proc import LOOPBACK
from tools.engine.pki import Identity, MeshCA

CONSUMER_HEADER = "x-datamesh-consumer"


@dataclass
class Seen:
    """One request a stub backend received."""

    workload: str
    method: str
    path: str
    headers: dict[str, list[str]]
    peer: str


@dataclass
class Stub:
    workload: istio_xds.Workload
    port: int
    server: ThreadingHTTPServer
    seen: list[Seen] = field(default_factory=list)


def call_upstream(url: str, workload: istio_xds.Workload, service_ips: dict[str, str], consumer: str | None) -> int:
    """What a composite's app does: call an upstream's in-mesh URL, from its pod, forwarding the consumer.

    The call goes to the service's cluster IP from the pod's address, where the pod's
    interception sends it to its own sidecar (``MeshHarness._intercept``).
    """
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "", parsed.port or 80
    connection = http.client.HTTPConnection(service_ips.get(host, host), port, timeout=10, source_address=(workload.ip, 0))
    try:
        headers = {"host": f"{host}:{port}", "content-type": "application/json"}
        if consumer is not None:
            headers[CONSUMER_HEADER] = consumer
        connection.request("POST", "/datamesh-verify", body=b"{}", headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        connection.close()


def handler(stub_seen: list[Seen], workload: istio_xds.Workload,
             service_ips: dict[str, str] | None = None) -> type[BaseHTTPRequestHandler]:
    """Echo what arrived; with ``service_ips`` (pods behind sidecars), a composite first calls its upstreams."""

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One write per response, sent at once: headers and body in separate small writes would wait
        # on Nagle's algorithm and the peer's delayed ACK (40 ms a request).
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(min(length, 1 << 20))
            headers: dict[str, list[str]] = {}
            for name, value in self.headers.items():
                headers.setdefault(name.lower(), []).append(value)
            peer = ""
            cert = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
            for entry in (cert or {}).get("subjectAltName", ()):
                if entry[0] == "URI":
                    peer = str(entry[1])
            seen = Seen(workload.name, self.command, self.path, headers, peer)
            stub_seen.append(seen)
            upstreams: dict[str, int] = {}
            if service_ips is not None:
                consumer = headers[CONSUMER_HEADER][0] if headers.get(CONSUMER_HEADER) else None
                upstreams = {url: call_upstream(url, workload, service_ips, consumer) for url in workload.upstreams}
            body = json.dumps({"workload": workload.name, "app": workload.labels.get("app", ""),
                               "version": workload.labels.get("version", ""), "path": self.path,
                               "headers": headers, "peer": peer, "upstreams": upstreams}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815 (the stdlib's handler names)

        def log_message(self, *args: object) -> None:
            pass

    return Echo


def tls_context(identity: Identity, folder: Path, name: str) -> ssl.SSLContext:
    cert, key, root = folder / f"{name}.crt", folder / f"{name}.key", folder / "root.crt"
    cert.write_text(identity.cert_chain)
    key.write_text(identity.private_key)
    root.write_text(identity.root_cert)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.load_verify_locations(root)
    context.verify_mode = ssl.CERT_REQUIRED  # Istio's STRICT mTLS: no client certificate, no connection
    return context



def backends_bootstrap(workloads: list[istio_xds.Workload], ca: MeshCA, ports: dict[str, set[int]]) -> Document:
    """One Envoy listening on every workload's pod address and port, terminating Istio mTLS, answering 200."""
    listeners = []
    for w in workloads:
        identity = ca.issue(w.identity) if w.name in ports else None
        for number in sorted(ports.get(w.name, ())):
            assert identity is not None
            tls = {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "require_client_certificate": True,
                "common_tls_context": {
                    "tls_certificates": [{"certificate_chain": {"inline_string": identity.cert_chain},
                                          "private_key": {"inline_string": identity.private_key}}],
                    "validation_context": {"trusted_ca": {"inline_string": identity.root_cert}}}}}
            listeners.append({
                "name": f"{w.name}-{number}",
                "address": {"socket_address": {"address": w.ip, "port_value": number}},
                # Envoy sets SO_REUSEPORT by default: another harness's backends on the same pod address would
                # silently share it (connections split between two CAs). Without it, the second bind fails and
                # MeshHarness moves to the next free /16.
                "enable_reuse_port": False,
                "filter_chains": [{"transport_socket": tls, "filters": [{
                    "name": "envoy.filters.network.http_connection_manager", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                                 ".HttpConnectionManager",
                        "stat_prefix": "backend",
                        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
                            "match": {"prefix": "/"},
                            "direct_response": {"status": 200, "body": {"inline_string": '{"result": 1.0}'}}}]}]},
                        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}],
            })
    return {"admin": {"address": {"socket_address": {"address": LOOPBACK, "port_value": 0}}},
            "static_resources": {"listeners": listeners}}
