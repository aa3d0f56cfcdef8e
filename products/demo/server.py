"""A stand-in for a Dataiku API node service, on the public python image, for the dev stack.

One file, three roles (DEMO_ROLE), in Dataiku's URL shape on port 12000:
- features:  POST /public/api/v1/customer-features/features/lookup   {"data": {"customerId": "42"}}
- predictor: POST /public/api/v1/revenue-predictor/revenue/predict   {"features": {...}}
- process:   POST /public/api/v1/customer-revenue/revenue/predict    {"customerId": "42"}
  which looks the features up and asks the predictor: the article's Process API.
Health: GET /isAlive/. Deterministic made-up data; no state, no files written.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE = os.environ.get("DEMO_ROLE", "features")
PATHS = {
    "features": "/public/api/v1/customer-features/features/lookup",
    "predictor": "/public/api/v1/revenue-predictor/revenue/predict",
    "process": "/public/api/v1/customer-revenue/revenue/predict",
}


def features_for(customer_id: str) -> dict:
    seed = int(hashlib.sha256(customer_id.encode()).hexdigest()[:8], 16)
    return {"customerId": customer_id, "tenureMonths": seed % 120, "ordersLastYear": seed % 37,
            "avgBasket": round(20 + (seed % 8000) / 100, 2)}


def predict(features: dict) -> float:
    return round(features["ordersLastYear"] * features["avgBasket"] * (1 + features["tenureMonths"] / 240), 2)


# Who a request is on behalf of, set by the gateway; a composite forwards it on every upstream call,
# and the upstream's own sidecar admits and limits the call as that consumer's (docs/governance.md).
CONSUMER_HEADER = "x-datamesh-consumer"


def call(url: str, body: dict, consumer: str) -> dict:
    headers = {"Content-Type": "application/json", CONSUMER_HEADER: consumer}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    # The URLs are the in-mesh upstream URLs the platform injects, never user input.
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def answer(body: dict, consumer: str) -> dict:
    if ROLE == "features":
        customer_id = str(body["data"]["customerId"])
        return {"results": [{"data": features_for(customer_id)}]}
    if ROLE == "predictor":
        return {"result": {"prediction": predict(body["features"])}}
    customer_id = str(body["customerId"])
    looked_up = call(os.environ["UPSTREAM_CUSTOMER_FEATURES_URL"] + PATHS["features"], {"data": {"customerId": customer_id}},
                     consumer)
    features = looked_up["results"][0]["data"]
    predicted = call(os.environ["UPSTREAM_REVENUE_PREDICTOR_URL"] + PATHS["predictor"], {"features": features}, consumer)
    return {"customerId": customer_id, "features": features, "predictedRevenue": predicted["result"]["prediction"]}


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/isAlive":
            self._send(200, {"alive": True})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path != PATHS[ROLE]:
            self._send(404, {"error": f"POST {PATHS[ROLE]}"})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            self._send(200, answer(body, self.headers.get(CONSUMER_HEADER, "")))
        except (KeyError, TypeError, ValueError):  # no exception text to clients: it names internals
            self._send(400, {"error": "bad request"})
        except urllib.error.HTTPError as exc:  # an upstream refused (403, 429): say which status, nothing more
            self._send(502, {"error": "upstream refused", "status": exc.code})
        except OSError:
            self._send(502, {"error": "upstream failed"})

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write(f"{ROLE} {self.address_string()} {fmt % args}\n")


if __name__ == "__main__":
    # All interfaces: in a pod, the sidecar reaches the app on the pod IP.
    ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "12000"))), Handler).serve_forever()
