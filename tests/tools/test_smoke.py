"""The smoke test script, against a stand-in gateway on loopback that behaves as the real one should."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tools import smoke

GOOD, OTHER = "k" * 30, "o" * 30


class Quiet(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(handler):
    """A stand-in server on a free loopback port, in a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def gateway(rate_limit: bool):
    tokens = {"left": 2}

    class Handler(Quiet):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            auth = self.headers.get("Authorization")
            if auth not in (smoke.basic_auth(GOOD), smoke.basic_auth(OTHER)):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="datamesh"')
                self.end_headers()
                return
            if self.path != smoke.PREDICT_PATH or auth != smoke.basic_auth(GOOD):
                self.send_response(403)
                self.end_headers()
                return
            if rate_limit and tokens["left"] == 0:
                self.send_response(429)
                self.send_header("x-datamesh-rate-limited", "true")
                self.end_headers()
                return
            tokens["left"] -= 1
            self.send_response(200)
            self.end_headers()

    return serve(Handler)


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("SMOKE_KEY", GOOD)
    monkeypatch.setenv("SMOKE_OTHER_KEY", OTHER)


def smoke_against(rate_limit: bool) -> int:
    """tools.smoke's exit code against a stand-in gateway, limited or not."""
    server = gateway(rate_limit=rate_limit)
    try:
        return smoke.main(["--gateway", f"127.0.0.1:{server.server_port}", "--scheme", "http", "--gateway-replicas", "1"])
    finally:
        server.shutdown()


def test_passes_against_a_governed_gateway(env, capsys):
    assert smoke_against(rate_limit=True) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == 4 and "4 passed, 0 failed" in out
    assert GOOD not in out and OTHER not in out


def test_fails_when_nothing_is_rate_limited(env, capsys):
    assert smoke_against(rate_limit=False) == 1
    assert "FAIL  the predictor admits 2 a minute per replica (1), then 429" in capsys.readouterr().out


def test_keys_come_from_the_environment_only(monkeypatch, capsys):
    monkeypatch.delenv("SMOKE_KEY", raising=False)
    assert smoke.main(["--gateway", "127.0.0.1:9"]) == 2
    assert "SMOKE_KEY" in capsys.readouterr().err


def test_basic_auth_is_key_as_username_with_empty_password():
    import base64

    assert base64.b64decode(smoke.basic_auth("abc").split()[1]) == b"abc:"


# --- transport safety: loopback servers only -----------------------------------------

import socket  # noqa: E402
import time  # noqa: E402


def recorder():
    """A server on another port that records every request it gets (a host the keys must never reach)."""
    seen = []

    class Handler(Quiet):
        def do_POST(self):
            seen.append(dict(self.headers))
            self.send_response(200)
            self.end_headers()

        do_GET = do_POST  # noqa: N815 (http.server method name)

    return serve(Handler), seen


def redirector(target_port):
    class Handler(Quiet):
        def do_POST(self):
            self.send_response(302)  # urllib follows a 302 after a POST, Authorization header included
            self.send_header("Location", f"http://127.0.0.1:{target_port}{self.path}")
            self.end_headers()

    return serve(Handler)


def test_a_redirect_is_never_followed_with_the_keys(env, capsys):
    other, seen = recorder()
    redirecting = redirector(other.server_port)
    try:
        assert smoke.main(["--gateway", f"127.0.0.1:{redirecting.server_port}", "--scheme", "http"]) == 1
    finally:
        redirecting.shutdown()
        other.shutdown()
    assert seen == []  # the other host got nothing, let alone an Authorization header
    assert "HTTP 302" in capsys.readouterr().out


def test_proxy_settings_in_the_environment_are_ignored(env, monkeypatch, capsys):
    proxy, seen = recorder()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_port}")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.server_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    import urllib.request

    urllib.request.install_opener(None)  # urllib's global opener reads the environment again on next use
    server = gateway(rate_limit=True)
    try:
        assert smoke.main(["--gateway", f"127.0.0.1:{server.server_port}", "--scheme", "http"]) == 0
    finally:
        server.shutdown()
        proxy.shutdown()
    assert seen == []


def silent_server(reply: bytes | None):
    """Accepts connections; answers ``reply`` and closes, or (None) never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if reply is None:
                held.append(conn)
            else:
                conn.recv(65536)
                conn.sendall(reply)
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener, held


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize(("kind", "message"), [
    ("refused", "connection refused"),
    ("silent", "no answer within 0.5 s"),
    ("not-http", "not HTTP"),
    ("https-against-http", "TLS handshake failed"),
])
def test_an_unusable_gateway_is_one_line_exit_3(env, capfd, kind, message):
    listener, server = None, None
    if kind == "refused":
        port, scheme = closed_port(), "http"
    elif kind == "https-against-http":
        server = gateway(rate_limit=True)
        port, scheme = server.server_port, "https"
    else:
        listener, _ = silent_server(None if kind == "silent" else b"SSH-2.0-OpenSSH_9.6\r\n")
        port, scheme = listener.getsockname()[1], "http"
    start = time.monotonic()
    try:
        code = smoke.main(["--gateway", f"127.0.0.1:{port}", "--scheme", scheme, "--timeout", "0.5"])
    finally:
        if listener:
            listener.close()
        if server:
            server.shutdown()
    out, err = capfd.readouterr()
    assert code == 3
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in out + err, err
    assert GOOD not in out + err and OTHER not in out + err
    assert time.monotonic() - start < 10  # the timeout holds


def outputs_with(definition: dict, name: str = "churn-scorer") -> dict:
    import yaml

    return {"productUrls": {name: f"http://gw/public/api/v1/{name}/"}, "catalog": [
        {"kind": "Component", "metadata": {"name": name, "annotations": {
            "datamesh.io/product": name, "datamesh.io/health-path": "/isAlive/"}}},
        {"kind": "API", "metadata": {"name": name, "annotations": {"datamesh.io/product": name}},
         "spec": {"definition": yaml.safe_dump(definition)}}]}


def operation(method, example=None, mark=False):
    op = {"responses": {"200": {"description": "ok"}}}
    if example is not None:
        op["requestBody"] = {"content": {"application/json": {"example": example}}}
    if mark:
        op["x-datamesh-smoke"] = True
    return {method: op}


def test_the_documented_operation_is_the_marked_one_then_one_with_an_example_then_a_get():
    paths = {"/p/a": operation("get"), "/p/b": operation("post", {"x": 1}), "/p/c": operation("post", {"y": 2}, mark=True)}
    [probe] = smoke.product_probes(outputs_with({"openapi": "3.0.3", "paths": paths}), [])
    assert (probe.method, probe.path, probe.body) == ("POST", "/p/c", {"y": 2})
    del paths["/p/c"]
    [probe] = smoke.product_probes(outputs_with({"openapi": "3.0.3", "paths": paths}), [])
    assert (probe.method, probe.path, probe.body) == ("POST", "/p/b", {"x": 1})
    del paths["/p/b"]
    [probe] = smoke.product_probes(outputs_with({"openapi": "3.0.3", "paths": paths}), [])
    assert (probe.method, probe.path, probe.body, probe.health_path) == ("GET", "/p/a", None, None)


def test_a_rewritten_route_is_probed_under_the_servers_path_with_its_health():
    doc = {"openapi": "3.0.3", "servers": [{"url": "/public/api/v1/churn-scorer"}], "paths": {"/score": operation("post", {})}}
    [probe] = smoke.product_probes(outputs_with(doc), ["churn-scorer"])
    assert probe.path == "/public/api/v1/churn-scorer/score"
    assert probe.health_path == "/public/api/v1/churn-scorer/isAlive/"


@pytest.mark.parametrize(("extra", "named"), [
    (["--product", "revenue-predictor"], "--product: needs --render DIR or --outputs FILE"),
    (["--render", "/nonexistent"], "--render: /nonexistent/outputs.json: no such file"),
    (["--outputs", "PLACEHOLDER/not-outputs.json"], "has no productUrls and catalog outputs"),
    (["--outputs", "PLACEHOLDER/outputs.json", "--product", "fraud"], "--product: 'fraud' is not a product of this stack"),
    (["--outputs", "PLACEHOLDER/nodoc.json"], "documents no operation to call"),
])
def test_unusable_product_sources_are_one_line_exit_2(env, tmp_path, capsys, extra, named):
    import json

    (tmp_path / "not-outputs.json").write_text(json.dumps({"vpcId": "x"}))
    (tmp_path / "outputs.json").write_text(json.dumps(outputs_with({"openapi": "3.0.3", "paths": {"/a": operation("get")}})))
    (tmp_path / "nodoc.json").write_text(json.dumps(outputs_with({"openapi": "3.0.3", "paths": {}})))
    extra = [e.replace("PLACEHOLDER", str(tmp_path)) for e in extra]
    try:
        code = smoke.main(["--gateway", "127.0.0.1:9", *extra])
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and named in err, err


def test_a_bad_product_source_is_reported_before_the_keys_are_asked_for(monkeypatch, capsys):
    monkeypatch.delenv("SMOKE_KEY", raising=False)
    monkeypatch.delenv("SMOKE_OTHER_KEY", raising=False)
    assert smoke.main(["--gateway", "127.0.0.1:9", "--render", "/nonexistent"]) == 2
    assert "--render: /nonexistent/outputs.json: no such file" in capsys.readouterr().err
