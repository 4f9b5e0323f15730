"""Server memory under huge request bodies: every endpoint that takes a body gets 400 MB.

Run: ``.venv/bin/python benchmarks/body_memory.py [--mb 400] [--parallel 4] [--only big] [--src DIR]``.

Starts ``alk-fhir serve`` on 127.0.0.1 (one worker, SQLite in a temporary directory, CDS client JWTs
off so that the CDS endpoints read their bodies too, one registered exchange partner so that
``POST /fhir/Bundle`` is reached with a valid token) and streams a body of ``--mb`` megabytes to
each body-taking endpoint (the known ones and any other POST route in /openapi.json), twice: once
declaring ``Content-Length`` and once ``Transfer-Encoding: chunked`` (no length to check up front).
The client never holds the body: it writes 1 MB of JSON whitespace at a time to a raw socket and
keeps writing after the answer arrives, as a hostile client would, until the whole body is sent or
the server closes the connection. A thread samples the server process's RSS
(``/proc/<pid>/status``) every 10 ms. Then ``--parallel`` chunked bodies go to ``/fhir/$validate``
at once, and 19 MB of ``[{},{},…]`` and of ``["ab","ab",…]`` (scalars: the value count covers them
too since issue 25), once and ``--parallel`` at once.

Big bodies within the cap (issue 25: validated on the event loop, a 17.7 MB Bundle kept other
clients waiting 1.2-1.7 s; a 19 MB Bundle peaked at 369 MB): a collection Bundle of the example
patients' resources repeated to 19 MB (37,000 entries, the largest body the cap admits) to each
endpoint that reads a Bundle (``$validate``, ``POST /fhir/Bundle``, the app's render-overview, and
``$apply`` with it as ``data``), then ``--parallel`` of them at once to ``$validate`` and to the
four endpoints. Meanwhile another client asks ``/healthz`` and validates a small Patient every
20 ms: its slowest answer is the stall other clients saw.

Header floods (issue 25: a 100 MB header used to cost 373 MB and 12 s, a 200 MB ``Authorization``
1,173 MB and 48 s, stalling other clients): ``--header-mb`` MB of one header line, of an
``Authorization: Bearer`` value, of a URL, and of 100-byte header lines, each streamed 1 MB at a
time to the CDS endpoint (no token needed to reach the head parser). Meanwhile a second client
asks ``/healthz`` every 20 ms; its slowest answer is printed as the stall other clients saw.

``--only big`` runs only that part (``--only heads``, ``--only floods`` the others).

Printed: the server's RSS idle and after one small request per endpoint, and per request the
status, how many MB had been sent when the answer came, and the peak RSS; the verdict compares the
highest peak with 300 MB. ``--src DIR`` serves the ``alk_fhir`` package found in DIR instead (e.g.
a checkout of an older commit, for a before/after figure). Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec

MB = 1024 * 1024
LIMIT_MB = 300
URA = "http://fhir.nl/fhir/NamingSystem/ura"
ALK_FHIR = Path(sys.executable).with_name("alk-fhir")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` and its children (uvicorn with --workers), in MB."""
    total = 0
    for p in [pid, *children(pid)]:
        try:
            with open(f"/proc/{p}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


class Sampler:
    """Samples RSS of the server in a thread; ``window()`` gives the peak over a block of work."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid, self.interval = pid, interval
        self.peak = 0.0
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            value = rss_mb(self.pid)
            with self.lock:
                self.peak = max(self.peak, value)
            time.sleep(self.interval)

    @contextmanager
    def window(self) -> Iterator[list[float]]:
        with self.lock:
            self.peak = rss_mb(self.pid)
        out: list[float] = []
        yield out
        time.sleep(3 * self.interval)
        with self.lock:
            out.append(self.peak)

    def stop(self) -> None:
        self.running = False
        self.thread.join()


@dataclass
class Sent:
    status: int | None
    mb_before_answer: float | None  # MB written when the first byte of the answer was readable
    mb_sent: float
    seconds: float


def whitespace(total: int) -> Iterator[bytes]:
    """``total`` bytes of JSON whitespace, 1 MB at a time: a huge body that would even parse."""
    for start in range(0, total, MB):
        yield b" " * min(MB, total - start)


def _array_of(item: bytes, total: int) -> Iterator[bytes]:
    """``[item,item,…]`` of about ``total`` bytes, 1 MB at a time."""
    width = len(item) + 1
    per_chunk = MB // width
    count = max(1, total // width)
    yield b"["
    for start in range(0, count, per_chunk):
        n = min(per_chunk, count - start)
        yield (item + b",") * (n - 1) + (item if start + n == count else item + b",")
    yield b"]"


def empty_objects(total: int) -> Iterator[bytes]:
    """``[{},{},…]`` of about ``total`` bytes: the JSON that costs the most memory per byte once parsed."""
    return _array_of(b"{}", total)


def stream_body(port: int, path: str, chunks: Iterator[bytes], *, length: int | None,
                headers: dict[str, str]) -> Sent:
    """POST the ``chunks`` to ``path`` without holding them: declared with ``Content-Length: length``,
    or chunked when ``length`` is None. Keeps writing after the answer came, as a hostile client
    would, until everything is sent or the server closes the connection."""
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/fhir+json",
            "Accept: application/fhir+json", *(f"{k}: {v}" for k, v in headers.items())]
    head.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("ascii"))
    sent, answered_at = 0, None
    answer = b""
    try:
        for piece in chunks:
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if length is None else piece)
            sent += len(piece)
            if answered_at is None and select.select([sock], [], [], 0)[0]:
                answered_at = sent
                answer += sock.recv(65536)
        if length is None:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed the connection: it will not read more
    return _finish(sock, answer, answered_at, sent, started)


def _finish(sock: socket.socket, answer: bytes, answered_at: int | None, sent: int, started: float) -> Sent:
    """Read the status line (the server may have answered already), close, and say what happened."""
    sock.settimeout(600)
    try:
        while b"\r\n" not in answer:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    except (TimeoutError, ConnectionResetError):
        pass
    finally:
        sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
    return Sent(status, None if answered_at is None else answered_at / MB, sent / MB, time.monotonic() - started)


def scalars(total: int) -> Iterator[bytes]:
    """``["ab","ab",…]`` of about ``total`` bytes: five bytes per string of some 55 once parsed."""
    return _array_of(b'"ab"', total)


def head_flood(port: int, kind: str, total: int) -> Sent:
    """A request whose head is ``total`` bytes of ``kind``, streamed 1 MB at a time until the server
    answers or closes: "header" (one line), "authorization" (a bearer token), "url" or "lines"
    (100-byte header lines)."""
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port))
    path = "/cds-services/alk-patient-view"
    opening = {"url": f"POST {path}?q=", "header": f"POST {path} HTTP/1.1\r\nX-Flood: ",
               "authorization": f"POST {path} HTTP/1.1\r\nAuthorization: Bearer ",
               "lines": f"POST {path} HTTP/1.1\r\n"}[kind]
    sent, answered_at, answer = 0, None, b""
    try:
        sock.sendall(opening.encode("ascii"))
        line = b"X-Line-" + b"a" * 90 + b": v\r\n"
        piece = (line * (MB // len(line))) if kind == "lines" else b"a" * MB
        while sent < total:
            sock.sendall(piece)
            sent += len(piece)
            if select.select([sock], [], [], 0)[0]:
                answered_at = sent
                break
        else:
            sock.sendall(b" HTTP/1.1\r\n\r\n" if kind == "url" else b"\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    return _finish(sock, answer, answered_at, sent, started)


class Prober:
    """Another client: every 20 ms, on its own connection, asks ``/healthz`` or (every other time) has a
    small Patient validated; ``worst`` is its slowest answer in a window, ``answered`` how many it got."""

    def __init__(self, base: str) -> None:
        self.base, self.worst, self.running, self.answered = base, 0.0, True, 0
        self.session = requests.Session()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        small = {"resourceType": "Patient", "id": "p", "gender": "female"}
        turn = 0
        while self.running:
            started = time.monotonic()
            with suppress(requests.RequestException):
                if turn % 2:
                    self.session.post(self.base + "/fhir/$validate", json=small, timeout=120)
                else:
                    self.session.get(self.base + "/healthz", timeout=120)
                self.answered += 1
            self.worst = max(self.worst, time.monotonic() - started)
            turn += 1
            time.sleep(0.02)

    def reset(self) -> None:
        self.worst, self.answered = 0.0, 0

    def stop(self) -> None:
        self.running = False
        self.thread.join()


def realistic_bundle(megabytes: float) -> bytes:
    """A collection Bundle of the example patients' resources, repeated to ``megabytes``: FHIR JSON as
    it comes, just under the body cap."""
    root = Path(__file__).resolve().parents[1] / "examples" / "patients"
    entries = [e for p in sorted(root.glob("*.json")) for e in json.loads(p.read_text(encoding="utf-8"))["entry"]]
    average = sum(len(json.dumps(e)) for e in entries) / len(entries)
    count = int(megabytes * MB / (average + 2))
    return json.dumps({"resourceType": "Bundle", "type": "collection",
                       "entry": [entries[i % len(entries)] for i in range(count)]}).encode("utf-8")


def body_cap(src: str | None) -> int:
    """The served code's cap on body bytes: ALK_FHIR_MAX_BODY_MB when set, else its MAX_BODY."""
    if os.environ.get("ALK_FHIR_MAX_BODY_MB"):
        return int(os.environ["ALK_FHIR_MAX_BODY_MB"]) * MB
    code = "import alk_fhir.fhir.body as b; print(b.MAX_BODY)"
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")} if src else None
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env=env).stdout)


def body_values_cap(src: str | None) -> int:
    """The served code's cap on JSON values per body (its container cap before issue 25)."""
    code = ("import alk_fhir.fhir.body as b; "
            "print(getattr(b, 'MAX_VALUES', None) or getattr(b, 'MAX_CONTAINERS'))")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")} if src else None
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env=env).stdout)


def partner_setup(tmp: Path) -> tuple[ec.EllipticCurvePrivateKey, Path]:
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    partners = [{"client_id": "bench", "name": "Benchmark partner",
                 "organization": {"system": URA, "value": "12345678"},
                 "scopes": ["system/Bundle.write", "system/Bundle.read"],
                 "jwks": {"keys": [{**jwk, "kid": "bench-1", "use": "sig", "alg": "ES384"}]}}]
    path = tmp / "partners.json"
    path.write_text(json.dumps(partners), encoding="utf-8")
    return key, path


def access_token(base: str, key: ec.EllipticCurvePrivateKey) -> str:
    now = int(time.time())
    token_url = base + "/auth/token"
    assertion = jwt.encode({"iss": "bench", "sub": "bench", "aud": token_url, "iat": now, "exp": now + 240,
                            "jti": str(uuid.uuid4())}, key, algorithm="ES384", headers={"kid": "bench-1"})
    response = requests.post(token_url, data={
        "grant_type": "client_credentials", "scope": "system/Bundle.write",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion}, timeout=30)
    response.raise_for_status()
    return str(response.json()["access_token"])


SMALL: dict[str, Any] = {"resourceType": "Parameters", "parameter": []}


def endpoints(base: str) -> list[tuple[str, bool, Any]]:
    """(path, needs the partner token, a small body for the warm-up): every POST route of the service,
    the known ones with a sensible body and any other from the OpenAPI description."""
    known: list[tuple[str, bool, Any]] = [
        ("/fhir/$validate", False, {"resourceType": "Patient", "id": "p"}),
        ("/fhir/Patient/$validate", False, {"resourceType": "Patient", "id": "p"}),
        ("/fhir/PlanDefinition/$apply", False, SMALL),
        ("/fhir/PlanDefinition/alk-guideline/$apply", False, SMALL),
        ("/fhir/Bundle", True, {"resourceType": "Bundle", "type": "document"}),
        ("/cds-services/alk-patient-view", False, {"hook": "patient-view"}),
        ("/cds-services/alk-patient-view/feedback", False, {"feedback": []}),
        ("/app/api/render-overview", False, {"resourceType": "Bundle"}),
        ("/auth/token", False, None),
    ]
    fill = {"{resource_type}": "Patient", "{plan_id}": "alk-guideline", "{service_id}": "alk-patient-view"}
    listed = {p for p, _, _ in known}
    spec = requests.get(base + "/openapi.json", timeout=30).json()
    for template, operations in spec.get("paths", {}).items():
        if "post" not in operations and "put" not in operations:
            continue
        path = template
        for name, value in fill.items():
            path = path.replace(name, value)
        if path not in listed and "{" not in path:
            known.append((path, False, {}))
            listed.add(path)
    return known


@contextmanager
def server(port: int, tmp: Path, partners: Path, src: str | None) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "ALK_FHIR_CDS_AUTH": "off", "ALK_FHIR_BASE_URL": f"http://127.0.0.1:{port}",
           "ALK_FHIR_DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3", "ALK_FHIR_LOG_LEVEL": "warning",
           "ALK_FHIR_PARTNERS_FILE": str(partners), "ALK_FHIR_TOKEN_KEY_FILE": "", "ALK_FHIR_CORS_ORIGINS": ""}
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([str(ALK_FHIR), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"alk-fhir serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            raise RuntimeError("alk-fhir serve did not start")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def floods(port: int, base: str, token: str, sampler: Sampler, args: argparse.Namespace) -> list[float]:
    """Whitespace past the body cap to every endpoint, then JSON floods within it; the peaks."""
    total = args.mb * MB
    targets = endpoints(base)
    peaks: list[float] = []
    print(f"{args.mb} MB of JSON whitespace to each of {len(targets)} endpoints "
          "(status, MB sent when the answer came, peak server RSS):")
    for path, needs_token, _ in targets:
        headers = {"Authorization": f"Bearer {token}"} if needs_token else {}
        if path == "/auth/token":
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        for chunked in (False, True):
            with sampler.window() as peak:
                sent = stream_body(port, path, whitespace(total), length=None if chunked else total, headers=headers)
            peaks.append(peak[0])
            when = "no answer" if sent.mb_before_answer is None else f"{sent.mb_before_answer:6.0f} MB"
            mode = "chunked       " if chunked else "Content-Length"
            print(f"  {path:<44} {mode}  HTTP {sent.status}  answer after {when}  "
                  f"peak {peak[0]:5.0f} MB  ({sent.mb_sent:.0f} MB sent, {sent.seconds:.1f} s)")
    with sampler.window() as peak:
        results = at_once(args.parallel, lambda: stream_body(port, "/fhir/$validate", whitespace(total), length=None,
                                                             headers={}))
    peaks.append(peak[0])
    statuses = sorted({r.status for r in results}, key=str)
    print(f"  {args.parallel} x {args.mb} MB at once to /fhir/$validate (chunked): HTTP {statuses}, "
          f"peak {peak[0]:.0f} MB")
    print("Within the body cap, what parsing costs:")
    with sampler.window() as peak:
        sent = stream_body(port, "/fhir/$validate", empty_objects(19 * MB), length=None, headers={})
    peaks.append(peak[0])
    print(f"  19 MB of [{{}},{{}},...] (6.6 million empty objects) to /fhir/$validate: HTTP {sent.status}, "
          f"peak {peak[0]:.0f} MB")
    with sampler.window() as peak:
        sent = stream_body(port, "/fhir/$validate", scalars(19 * MB), length=None, headers={})
    peaks.append(peak[0])
    print(f'  19 MB of ["ab","ab",...] (4 million strings) to /fhir/$validate: HTTP {sent.status}, '
          f"peak {peak[0]:.0f} MB")
    values = body_values_cap(args.src)
    for label, make in (("[{},{},...]", empty_objects), ('["ab","ab",...]', scalars)):
        size = (values // 2 - 2) * 3 if make is empty_objects else (values - 2) * 5
        with sampler.window() as peak:
            results = at_once(args.parallel, lambda m=make, n=size: stream_body(  # type: ignore[misc]
                port, "/fhir/$validate", m(n), length=None, headers={}))
        peaks.append(peak[0])
        statuses = sorted({r.status for r in results}, key=str)
        print(f"  {args.parallel} x {size / MB:.1f} MB of {label} at once (just within the value cap, "
              f"{values:,} values): HTTP {statuses}, peak {peak[0]:.0f} MB")
    # One issue per JSON value (integers where strings belong): 1.7 MB gave 890,001 issues and 780 MB
    # before the validator kept at most 10,000 of them.
    given = b'{"resourceType":"Patient","name":[{"given":[' + b",".join([b"1"] * (values - 10)) + b"]}]}"
    with sampler.window() as peak:
        sent = stream_body(port, "/fhir/$validate", iter([given]), length=len(given), headers={})
    peaks.append(peak[0])
    print(f"  a {len(given) / MB:.1f} MB Patient of {values - 10:,} integers in name.given (one issue each) to "
          f"/fhir/$validate: HTTP {sent.status}, peak {peak[0]:.0f} MB")
    return peaks


def heads(port: int, base: str, sampler: Sampler, args: argparse.Namespace) -> list[float]:
    peaks: list[float] = []
    print(f"Request heads of {args.header_mb} MB to /cds-services/alk-patient-view (status, MB sent when "
          "the answer came, peak RSS, slowest answer of another client meanwhile):")
    prober = Prober(base)
    try:
        for kind in ("header", "authorization", "url", "lines"):
            prober.reset()
            with sampler.window() as peak:
                sent = head_flood(port, kind, args.header_mb * MB)
            peaks.append(peak[0])
            when = "no answer" if sent.mb_before_answer is None else f"{sent.mb_before_answer:6.0f} MB"
            print(f"  {kind:<14} HTTP {sent.status}  answer after {when}  peak {peak[0]:5.0f} MB  "
                  f"({sent.mb_sent:.0f} MB sent, {sent.seconds:.1f} s)  other client's slowest "
                  f"answer {prober.worst * 1000:.0f} ms")
    finally:
        prober.stop()
    return peaks


def at_once(count: int, send: Any) -> list[Any]:
    """``send()`` from ``count`` threads at once; what each returned."""
    return each_at_once([send] * count)


def each_at_once(sends: list[Any]) -> list[Any]:
    """Each of ``sends`` called in its own thread, all at once; what they returned."""
    results: list[Any] = []
    threads = [threading.Thread(target=lambda f=f: results.append(f())) for f in sends]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def big_bodies(port: int, base: str, key: ec.EllipticCurvePrivateKey, sampler: Sampler,
               args: argparse.Namespace) -> list[float]:
    """The largest FHIR body the cap admits, to each endpoint that reads a Bundle, alone and
    ``--parallel`` at once, with another client's slowest answer meanwhile."""
    cap = body_cap(args.src)
    token = access_token(base, key)
    nineteen = realistic_bundle(19)
    with sampler.window() as peak:
        sent = stream_body(port, "/fhir/$validate", iter([nineteen]), length=len(nineteen), headers={})
    count = nineteen.count(b'"resource":')
    print(f"A 19 MB collection Bundle ({count:,} entries) to /fhir/$validate, body cap "
          f"{cap / MB:.0f} MB: HTTP {sent.status}  {sent.seconds:5.1f} s  peak {peak[0]:4.0f} MB")
    del nineteen
    peaks = [peak[0]]
    bundle = realistic_bundle(cap / MB - 0.1)
    entries = bundle.count(b'"resource":')
    as_data = b'{"resourceType":"Parameters","parameter":[{"name":"data","resource":' + bundle + b"}]}"
    targets = [("/fhir/$validate", bundle, {}), ("/fhir/Bundle", bundle, {"Authorization": f"Bearer {token}"}),
               ("/app/api/render-overview", bundle, {}), ("/fhir/PlanDefinition/$apply", as_data, {})]
    print(f"A {len(bundle) / MB:.1f} MB collection Bundle of FHIR resources ({entries:,} entries), the largest the cap "
          "admits, to each endpoint that reads one (status, seconds, peak RSS, slowest answer of another client "
          "meanwhile):")
    prober = Prober(base)
    try:
        for path, body, headers in targets:
            prober.reset()
            before = rss_mb(sampler.pid)
            with sampler.window() as peak:
                sent = stream_body(port, path, iter([body]), length=len(body), headers=headers)
            peaks.append(peak[0])
            print(f"  {path:<30} HTTP {sent.status}  {sent.seconds:5.1f} s  RSS before {before:4.0f} MB, peak "
                  f"{peak[0]:4.0f} MB  other client's slowest answer {prober.worst * 1000:5.0f} ms "
                  f"({prober.answered} answers)")
        for label, chosen in (("/fhir/$validate", targets[:1] * args.parallel),
                              ("the four endpoints", (targets * args.parallel)[:args.parallel])):
            prober.reset()
            started = time.monotonic()
            with sampler.window() as peak:
                results = each_at_once([lambda p=p, b=b, h=h: stream_body(port, p, iter([b]), length=len(b), headers=h)
                                        for p, b, h in chosen])
            peaks.append(peak[0])
            statuses = sorted({r.status for r in results}, key=str)
            print(f"  {len(chosen)} at once to {label}: HTTP {statuses}  {time.monotonic() - started:5.1f} s  "
                  f"peak {peak[0]:5.0f} MB  other client's slowest answer {prober.worst * 1000:5.0f} ms "
                  f"({prober.answered} answers)")
    finally:
        prober.stop()
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=400, help="body size in MB (default 400)")
    parser.add_argument("--parallel", type=int, default=4, help="bodies sent at once")
    parser.add_argument("--header-mb", type=int, default=200, help="size of each header flood in MB (default 200)")
    parser.add_argument("--src", default=None, help="serve the alk_fhir package from this src directory")
    parser.add_argument("--only", choices=("floods", "heads", "big"), default=None, help="run one part only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        key, partners = partner_setup(tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with server(port, tmp, partners, args.src) as proc:
            time.sleep(1)
            idle = rss_mb(proc.pid)
            token = access_token(base, key)
            for path, needs_token, small in endpoints(base):  # everything lazily built is built now
                headers = {"Authorization": f"Bearer {token}"} if needs_token else {}
                if path == "/auth/token":
                    requests.post(base + path, data={"grant_type": "client_credentials"}, timeout=60)
                else:
                    requests.post(base + path, json=small, headers=headers, timeout=60)
            warm = rss_mb(proc.pid)
            print(f"server RSS: idle {idle:.0f} MB, after one small request per endpoint {warm:.0f} MB")
            sampler = Sampler(proc.pid)
            peaks: list[float] = []
            try:
                if args.only in (None, "floods"):
                    peaks += floods(port, base, token, sampler, args)
                if args.only in (None, "heads"):
                    peaks += heads(port, base, sampler, args)
                if args.only in (None, "big"):
                    peaks += big_bodies(port, base, key, sampler, args)
            finally:
                sampler.stop()
            highest = max(peaks)
            print(f"highest peak {highest:.0f} MB (idle {idle:.0f} MB): "
                  + ("under" if highest < LIMIT_MB else "NOT under") + f" the {LIMIT_MB} MB target")


if __name__ == "__main__":
    main()
