"""CDS Hooks ``patient-view`` over HTTP, next to a bare FastAPI endpoint that parses the same body.

Run: ``.venv/bin/python benchmarks/cds.py [--requests N] [--seconds S] [--workers W] [--without-auth]``.
``--workers`` gives every server (service and echo alike) that many uvicorn worker processes: one
is the default, the number of cores is the usual production setting. Starts, on 127.0.0.1:

- the service as in production: ``alk-fhir serve`` (uvicorn, one worker, no access log, log level
  warning) with ``ALK_FHIR_CDS_AUTH=jwt``: every request carries a fresh ES384 CDS client JWT, verified
  against a JWKS this script serves, its ``jti`` recorded in the SQLite store (replay protection);
- a bare FastAPI app on uvicorn whose one endpoint does ``await request.json()`` and answers
  ``{"cards": []}`` (the baseline issue 10 names; until 2026-11-30 it returned the parsed body, which
  made the baseline slower and the ratio look better by about 10 %).

Both get the same body: a ``patient-view`` request whose prefetch holds a 50-resource patient (the
polypharmacy example topped up with encounters, as in benchmarks/apply.py). Printed, per server:
p50/p99 latency of sequential requests (from sending the request to having received the whole
answer; the answer is checked after the clock stops, so that the client parsing the service's 20 kB
of cards is not counted as the server's time, as it never was for the echo's 12 bytes) and
requests/s with 8 concurrent clients (each its own keep-alive connection), and the ratio
service/echo. Client and servers share this machine; the servers run side by side and take turns
(request by request, then one-second rounds), so that load from elsewhere on the machine weighs on
all figures alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from jwt.algorithms import ECAlgorithm

from alk_fhir.cds.discovery import templates_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apply import fifty_resource_patient

ISSUER = "https://ehr.bench.example"
KID = "bench-1"
CLIENTS = 8

# resourceType -> the prefetch key of alk-patient-view that would return it
KEYS = {"Condition": "conditions", "MedicationStatement": "medicationStatements",
        "MedicationRequest": "medicationRequests", "Procedure": "procedures", "DiagnosticReport": "diagnosticReports",
        "Encounter": "encounters", "CareTeam": "careTeams", "CarePlan": "carePlans",
        "QuestionnaireResponse": "questionnaireResponses", "Consent": "consents", "Observation": "assessments",
        "EpisodeOfCare": "episodes"}


def hook_body() -> bytes:
    bundle = fifty_resource_patient()
    resources = [e["resource"] for e in bundle["entry"]]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    user = next(r for r in resources if r["resourceType"] == "Practitioner")
    prefetch: dict[str, Any] = {"patient": patient, "user": user}
    # every search key the service generates from its plan (alk_fhir.cds.discovery), filled below
    for key, template in templates_for("patient-view").items():
        if "?" in template:
            prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    for res in resources:
        if res["resourceType"] in KEYS and KEYS[res["resourceType"]] in prefetch:
            prefetch[KEYS[res["resourceType"]]]["entry"].append({"resource": res})
    # The bundle's Organizations and second Practitioner are not fetched by any template: top the
    # prefetch up with encounters to exactly 50 resources.
    count = 2 + sum(len(v["entry"]) for k, v in prefetch.items() if k not in ("patient", "user"))
    for i in range(50 - count):
        prefetch["encounters"]["entry"].append({"resource": {
            "resourceType": "Encounter", "id": f"bench-extra-{i}", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{patient['id']}"}, "period": {"start": f"2026-0{1 + i % 9}-10"}}})
    count = 2 + sum(len(v["entry"]) for k, v in prefetch.items() if k not in ("patient", "user"))
    body = {"hookInstance": str(uuid.uuid4()), "hook": "patient-view",
            "context": {"userId": f"Practitioner/{user['id']}", "patientId": patient["id"]}, "prefetch": prefetch}
    sys.stdout.write(f"body: patient-view with {count} resources in the prefetch, "
                     f"{len(json.dumps(body)) // 1024} KiB\n")
    return json.dumps(body).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def jwks_server(key: ec.EllipticCurvePrivateKey) -> Iterator[str]:
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "ES384"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def process(args: list[str], env: dict[str, str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{args[0]} exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"{' '.join(args)} did not start")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


echo_app = FastAPI()


@echo_app.post("/echo")
async def echo(request: Request) -> JSONResponse:
    """The baseline issue 10 names: a bare FastAPI endpoint that only parses the same body and
    answers ``{"cards": []}``."""
    await request.json()
    return JSONResponse({"cards": []})


def serve_echo(port: int, workers: int) -> None:
    import uvicorn

    uvicorn.run("cds:echo_app", app_dir=str(Path(__file__).resolve().parent), host="127.0.0.1", port=port,
                workers=workers, log_level="warning", access_log=False)


# A call sends one request and returns the response once it has been received in full; whether the
# answer is right is checked apart (Check), outside the timed part: the time is the server's answer,
# not this client parsing a 20 kB card list (the echo's 12 bytes would cost it nothing).
Call = Callable[[requests.Session], requests.Response]
Check = Callable[[requests.Response], None]


def sequential(calls: dict[str, tuple[Call, Check]], runs: int) -> dict[str, tuple[float, float]]:
    """p50/p99 per server; the servers take turns request by request, so background load hits all alike.
    Every answer is checked, after its time is taken."""
    sessions = {name: requests.Session() for name in calls}
    for _ in range(min(50, runs)):
        for name, (call, check) in calls.items():
            check(call(sessions[name]))
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, (call, check) in calls.items():
            start = time.perf_counter()
            response = call(sessions[name])
            times[name].append((time.perf_counter() - start) * 1000)
            check(response)
    out = {}
    for name, found in times.items():
        found.sort()
        out[name] = (statistics.median(found), found[min(len(found) - 1, int(len(found) * 0.99))])
    return out


def concurrent(call: Call, check: Check, seconds: float) -> tuple[int, float]:
    """Requests done by 8 clients in ``seconds``, and the time taken (each client checks its first
    answer in full, then the status of every other one)."""
    done = [0] * CLIENTS
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        session = requests.Session()
        check(call(session))  # connect outside the count
        while time.perf_counter() < stop:
            response = call(session)
            if response.status_code != 200:
                raise RuntimeError(f"answered {response.status_code}: {response.text[:300]}")
            done[i] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done), time.perf_counter() - start


def throughput(calls: dict[str, tuple[Call, Check]], seconds: float) -> dict[str, float]:
    """Requests/s with 8 clients; the servers take turns in one-second rounds."""
    totals = {name: [0, 0.0] for name in calls}
    for _ in range(max(1, round(seconds))):
        for name, (call, check) in calls.items():
            count, took = concurrent(call, check, 1.0)
            totals[name][0] += count
            totals[name][1] += took
    return {name: count / took for name, (count, took) in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per server")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the 8-client run per server")
    parser.add_argument("--without-auth", action="store_true",
                        help="also measure the service with ALK_FHIR_CDS_AUTH=off (JWT and jti cost shown apart)")
    parser.add_argument("--workers", type=int, default=1,
                        help="uvicorn worker processes, the same for the service and the echo (default 1)")
    parser.add_argument("--serve-echo", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        serve_echo(args.serve_echo, args.workers)
        return

    body = hook_body()
    key = ec.generate_private_key(ec.SECP384R1())
    service_port, echo_port = free_port(), free_port()
    service_url = f"http://127.0.0.1:{service_port}/cds-services/alk-patient-view"
    audience = f"http://127.0.0.1:{service_port}/cds-services/alk-patient-view"
    tokens_needed = args.requests + 50 + CLIENTS * (int(args.seconds + 1) * 300 + 2)
    sys.stdout.write(f"signing {tokens_needed} ES384 CDS client JWTs (client side, not timed)…\n")
    now = int(time.time())
    tokens = iter([jwt.encode({"iss": ISSUER, "aud": audience, "iat": now, "exp": now + 900,
                               "jti": str(uuid.uuid4())}, key, algorithm="ES384",
                              headers={"kid": KID, "typ": "JWT"}) for _ in range(tokens_needed)])
    lock = threading.Lock()
    headers = {"Content-Type": "application/json"}

    def call_service(session: requests.Session) -> requests.Response:
        with lock:
            token = next(tokens)
        return session.post(service_url, data=body, headers={**headers, "Authorization": f"Bearer {token}"})

    def has_cards(response: requests.Response) -> None:
        if response.status_code != 200 or not response.json()["cards"]:
            raise RuntimeError(f"service answered {response.status_code}: {response.text[:300]}")

    def call_echo(session: requests.Session) -> requests.Response:
        return session.post(f"http://127.0.0.1:{echo_port}/echo", data=body, headers=headers)

    def no_cards(response: requests.Response) -> None:
        if response.status_code != 200 or response.json() != {"cards": []}:
            raise RuntimeError(f"echo answered {response.status_code}: {response.text[:300]}")

    with tempfile.TemporaryDirectory() as tmp, jwks_server(key) as jwks_url:
        env = {**os.environ, "ALK_FHIR_CDS_AUTH": "jwt", "ALK_FHIR_BASE_URL": f"http://127.0.0.1:{service_port}",
               "ALK_FHIR_CDS_TRUSTED_ISSUERS": json.dumps({ISSUER: jwks_url}),
               "ALK_FHIR_DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3", "ALK_FHIR_LOG_LEVEL": "warning",
               "ALK_FHIR_TOKEN_KEY_FILE": "",
               # the tokens are signed up front with exp = iat + 900 s, for runs of several minutes
               "ALK_FHIR_CDS_TOKEN_MAX_LIFETIME": "900"}
        alk = str(Path(sys.executable).with_name("alk-fhir"))
        calls: dict[str, tuple[Call, Check]] = {"alk-patient-view": (call_service, has_cards)}
        workers = ["--workers", str(args.workers)]
        servers = [([alk, "serve", "--host", "127.0.0.1", "--port", str(service_port), *workers], env, service_port)]
        if args.without_auth:
            off_port = free_port()

            def call_off(session: requests.Session) -> requests.Response:
                return session.post(f"http://127.0.0.1:{off_port}/cds-services/alk-patient-view", data=body,
                                    headers=headers)

            calls["  same, CDS_AUTH=off"] = (call_off, has_cards)
            servers.append(([alk, "serve", "--host", "127.0.0.1", "--port", str(off_port), *workers],
                            {**env, "ALK_FHIR_CDS_AUTH": "off", "ALK_FHIR_BASE_URL": f"http://127.0.0.1:{off_port}",
                             "ALK_FHIR_DATABASE_URL": f"sqlite:///{tmp}/bench-off.sqlite3"}, off_port))
        calls["echo (parse + return)"] = (call_echo, no_cards)
        servers.append(([sys.executable, __file__, "--serve-echo", str(echo_port), *workers], env, echo_port))
        with contextlib.ExitStack() as stack:
            for command, environment, port in servers:
                stack.enter_context(process(command, environment, port))
            latency = sequential(calls, args.requests)
            rates = throughput(calls, args.seconds)
        results = {name: (*latency[name], rates[name]) for name in calls}
    sys.stdout.write(f"{args.requests} sequential requests; {CLIENTS} concurrent clients for {args.seconds:g} s; "
                     f"{args.workers} uvicorn worker(s) per server; {os.cpu_count()} CPUs shared by all\n")
    sys.stdout.write(f"{'server':26} {'p50 ms':>8} {'p99 ms':>8} {'req/s (8 clients)':>18}\n")
    for name, (p50, p99, rps) in results.items():
        sys.stdout.write(f"{name:26} {p50:8.2f} {p99:8.2f} {rps:18.0f}\n")
    sp50, sp99, srps = results["alk-patient-view"]
    ep50, ep99, erps = results["echo (parse + return)"]
    sys.stdout.write(f"{'ratio service / echo':26} {sp50 / ep50:7.2f}x {sp99 / ep99:7.2f}x "
                     f"{erps / srps:17.2f}x (throughput: echo / service)\n")


if __name__ == "__main__":
    main()
