"""A Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager, no nodes.

Certificates are made here (``cryptography``): a CA, the API server's serving certificate for
127.0.0.1, an admin client certificate in ``system:masters``, and the service-account signing
key. ``LocalCluster`` starts the three processes (by the paths it is given), waits for
``/readyz``, writes a kubeconfig, and stops them (by their own process ids) on ``stop()``. ``Api``
is a small client of the API server over HTTPS with that client certificate (stdlib only).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tools.engine.envoy_proc import free_port

_VALID = datetime.timedelta(hours=12)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))


def _cert(subject: x509.Name, key: rsa.RSAPrivateKey, issuer: x509.Name, issuer_key: rsa.RSAPrivateKey, *,
          ca: bool = False, sans: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + _VALID).add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                               x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def write_pki(folder: Path) -> None:
    """ca.crt, apiserver.crt/key (127.0.0.1, localhost), admin.crt/key (system:masters), sa.key/pub."""
    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        return x509.Name(attrs + ([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []))

    ca_key, ca_name = _key(), name("datamesh-local-ca")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    (folder / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(ca_key, folder / "ca.key")
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
                                    x509.DNSName("localhost"), x509.DNSName("kubernetes.default.svc")]
    for stem, subject, names in (("apiserver", name("kube-apiserver"), sans), ("admin", name("admin", "system:masters"), None)):
        key = _key()
        (folder / f"{stem}.crt").write_bytes(_cert(subject, key, ca_name, ca_key, sans=names).public_bytes(serialization.Encoding.PEM))
        _write_key(key, folder / f"{stem}.key")
    sa = _key()
    _write_key(sa, folder / "sa.key")
    (folder / "sa.pub").write_bytes(sa.public_key().public_bytes(serialization.Encoding.PEM,
                                                                 serialization.PublicFormat.SubjectPublicKeyInfo))


def kubeconfig(server: str, folder: Path) -> str:
    """A kubeconfig for ``server`` with the admin certificate, the files' contents inline (so it can be secret config)."""
    import base64

    def b64(name: str) -> str:
        return base64.b64encode((folder / name).read_bytes()).decode()

    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "local",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")}}],
        "users": [{"name": "admin", "user": {"client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
    })


class Api:
    """The API server over HTTPS as the admin: JSON in, JSON out."""

    def __init__(self, server: str, folder: Path) -> None:
        self.server = server
        self._ssl = ssl.create_default_context(cafile=str(folder / "ca.crt"))
        self._ssl.load_cert_chain(str(folder / "admin.crt"), str(folder / "admin.key"))

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method, headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=30) as response:
                text = response.read().decode()
                return response.status, json.loads(text) if text.startswith(("{", "[")) else text
        except urllib.error.HTTPError as exc:
            text = exc.read().decode()
            return exc.code, json.loads(text) if text.startswith("{") else text

    def apply(self, obj: dict[str, Any], path: str) -> None:
        """Create ``obj`` at the collection ``path``; an existing one is left as it is."""
        status, answer = self.request("POST", path, obj)
        if status not in (200, 201, 409):
            raise RuntimeError(f"POST {path} {obj['metadata']['name']}: {status} {str(answer)[:300]}")


@dataclass
class LocalCluster:
    """etcd, kube-apiserver and kube-controller-manager on loopback, in ``folder``."""

    folder: Path
    binaries: dict[str, Path]
    server: str = ""

    def __post_init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.folder / f"{name}.log").open("wb")
        self._procs.append(subprocess.Popen([str(self.binaries[name]), *args], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.folder))

    def start(self, timeout: float = 120) -> str:
        """Start everything and return the kubeconfig (its certificates inline)."""
        write_pki(self.folder)
        client, peer, port = free_port(), free_port(), free_port()
        etcd = f"http://127.0.0.1:{client}"
        self._spawn("etcd", ["--name", "local", "--data-dir", str(self.folder / "etcd"), "--listen-client-urls", etcd,
                             "--advertise-client-urls", etcd, "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                             "--initial-cluster", f"local=http://127.0.0.1:{peer}", "--log-level", "warn"])
        f = self.folder
        self._spawn("kube-apiserver", [
            f"--etcd-servers={etcd}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
            f"--tls-cert-file={f / 'apiserver.crt'}", f"--tls-private-key-file={f / 'apiserver.key'}",
            f"--client-ca-file={f / 'ca.crt'}", f"--service-account-key-file={f / 'sa.pub'}",
            f"--service-account-signing-key-file={f / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.0.0.0/24", "--authorization-mode=RBAC", "--enable-priority-and-fairness=false"])
        self.server = f"https://127.0.0.1:{port}"
        config = kubeconfig(self.server, f)
        (f / "kubeconfig").write_text(config)
        self._wait_ready(timeout)
        if "kube-controller-manager" in self.binaries:
            self._spawn("kube-controller-manager", [
                f"--kubeconfig={f / 'kubeconfig'}", "--leader-elect=false", "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}", f"--service-account-private-key-file={f / 'sa.key'}",
                f"--root-ca-file={f / 'ca.crt'}", "--controllers=namespace,garbagecollector,serviceaccount,serviceaccount-token"])
        return config

    def _wait_ready(self, timeout: float) -> None:
        api, deadline = Api(self.server, self.folder), time.monotonic() + timeout
        while True:
            try:
                if api.request("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in self._procs):
                tail = (self.folder / "kube-apiserver.log").read_text(errors="replace")[-600:]
                raise RuntimeError(f"kube-apiserver did not become ready: {tail}")
            time.sleep(1)

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
