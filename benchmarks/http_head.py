"""What the bounded request head costs: uvicorn's httptools protocol against ``BoundedHttpToolsProtocol``.

Run: ``.venv/bin/python benchmarks/http_head.py [--requests N]``.

Starts two uvicorn servers in this process on 127.0.0.1 around the same trivial ASGI app (reads the
body, answers ``{}``): one with uvicorn's ``HttpToolsProtocol``, one with the protocol ``alk-fhir
serve`` uses (``alk_fhir.cli.http_limits``: 431 beyond 32 kB of head or 100 header fields). Each
gets requests shaped like a CDS call (a 20 kB body, a 900-byte bearer token), taking turns request
by request (who goes first alternating) so that load from elsewhere on the machine weighs on both
alike. Printed: p50 and p99 per server and the ratio bounded / plain (issue 25: the limit must not
slow the CDS hot path).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import threading
import time
from typing import Any

import requests
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from alk_fhir.cli.http_limits import BoundedHttpToolsProtocol


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


def start(protocol: type[Any]) -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol, log_level="error",
                                           lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per server (default 3000)")
    args = parser.parse_args()
    ports = {"httptools (uvicorn)": start(HttpToolsProtocol),
             "bounded (alk-fhir serve)": start(BoundedHttpToolsProtocol)}
    sessions = {name: requests.Session() for name in ports}
    times: dict[str, list[float]] = {name: [] for name in ports}
    body, headers = b"x" * 20480, {"Authorization": "Bearer " + "a" * 900, "Content-Type": "application/json"}
    for turn in range(args.requests):
        order = list(ports.items())
        for name, port in order if turn % 2 else reversed(order):  # who goes first alternates
            started = time.perf_counter()
            answer = sessions[name].post(f"http://127.0.0.1:{port}/cds-services/x", data=body, headers=headers)
            answer.raise_for_status()
            times[name].append(time.perf_counter() - started)
    p50 = {name: statistics.median(v) * 1000 for name, v in times.items()}
    for name, values in times.items():
        p99 = statistics.quantiles(values, n=100)[98] * 1000
        print(f"{name:<26} p50 {p50[name]:.3f} ms  p99 {p99:.3f} ms")
    plain, bounded = p50.values()
    print(f"ratio bounded / plain (p50): {bounded / plain:.2f}")


if __name__ == "__main__":
    main()
