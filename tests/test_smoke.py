"""The smoke test script, against a stand-in gateway on loopback that behaves as the real one should."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tools import smoke

GOOD, OTHER = "k" * 30, "o" * 30


def gateway(rate_limit: bool):
    tokens = {"left": 2}

    class Handler(BaseHTTPRequestHandler):
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

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("SMOKE_KEY", GOOD)
    monkeypatch.setenv("SMOKE_OTHER_KEY", OTHER)


def test_passes_against_a_governed_gateway(env, capsys):
    server = gateway(rate_limit=True)
    try:
        assert smoke.main(["--gateway", f"127.0.0.1:{server.server_port}", "--scheme", "http", "--gateway-replicas", "1"]) == 0
    finally:
        server.shutdown()
    out = capsys.readouterr().out
    assert out.count("PASS") == 4 and "4 passed, 0 failed" in out
    assert GOOD not in out and OTHER not in out


def test_fails_when_nothing_is_rate_limited(env, capsys):
    server = gateway(rate_limit=False)
    try:
        assert smoke.main(["--gateway", f"127.0.0.1:{server.server_port}", "--scheme", "http", "--gateway-replicas", "1"]) == 1
    finally:
        server.shutdown()
    assert "FAIL  the predictor admits 2 a minute per replica (1), then 429" in capsys.readouterr().out


def test_keys_come_from_the_environment_only(monkeypatch, capsys):
    monkeypatch.delenv("SMOKE_KEY", raising=False)
    assert smoke.main(["--gateway", "127.0.0.1:9"]) == 2
    assert "SMOKE_KEY" in capsys.readouterr().err


def test_basic_auth_is_key_as_username_with_empty_password():
    import base64

    assert base64.b64decode(smoke.basic_auth("abc").split()[1]) == b"abc:"
