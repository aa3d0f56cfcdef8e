"""The dev stack's stand-in products, run for real on loopback: the process API composes the other two."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT

SERVER = ROOT / "products" / "demo" / "server.py"
PATHS = {
    "features": "/public/api/v1/customer-features/features/lookup",
    "predictor": "/public/api/v1/revenue-predictor/revenue/predict",
    "process": "/public/api/v1/customer-revenue/revenue/predict",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(role, port, env=None):
    proc = subprocess.Popen([sys.executable, str(SERVER)], env={"DEMO_ROLE": role, "PORT": str(port), **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/isAlive/", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{role} did not start")


def post(port, path, body):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def mesh():
    ports = {role: free_port() for role in PATHS}
    procs = [start("features", ports["features"]), start("predictor", ports["predictor"])]
    procs.append(start("process", ports["process"], {
        "UPSTREAM_CUSTOMER_FEATURES_URL": f"http://127.0.0.1:{ports['features']}",
        "UPSTREAM_REVENUE_PREDICTOR_URL": f"http://127.0.0.1:{ports['predictor']}",
    }))
    yield ports
    for p in procs:
        p.kill()
        p.wait(timeout=5)


def test_process_api_composes_lookup_and_prediction(mesh):
    status, looked_up = post(mesh["features"], PATHS["features"], {"data": {"customerId": "42"}})
    assert status == 200
    features = looked_up["results"][0]["data"]
    status, predicted = post(mesh["predictor"], PATHS["predictor"], {"features": features})
    assert status == 200
    status, composed = post(mesh["process"], PATHS["process"], {"customerId": "42"})
    assert status == 200
    assert composed == {"customerId": "42", "features": features, "predictedRevenue": predicted["result"]["prediction"]}


def test_bad_requests_and_wrong_paths(mesh):
    assert post(mesh["process"], PATHS["process"], {"id": "42"})[0] == 400
    assert post(mesh["features"], PATHS["process"], {"customerId": "42"})[0] == 404


def test_upstream_failure_is_a_502():
    port, dead = free_port(), free_port()
    proc = start("process", port, {"UPSTREAM_CUSTOMER_FEATURES_URL": f"http://127.0.0.1:{dead}",
                                   "UPSTREAM_REVENUE_PREDICTOR_URL": f"http://127.0.0.1:{dead}"})
    try:
        status, body = post(port, PATHS["process"], {"customerId": "7"})
        assert status == 502 and "upstream failed" in body["error"]
    finally:
        proc.kill()
        proc.wait(timeout=5)


def test_declared_paths_match_the_openapi_definitions():
    import yaml

    for role, product in (("features", "customer-features"), ("predictor", "revenue-predictor"), ("process", "customer-revenue")):
        spec = yaml.safe_load((ROOT / "products" / "openapi" / f"{product}.yaml").read_text())
        assert PATHS[role] in spec["paths"]
