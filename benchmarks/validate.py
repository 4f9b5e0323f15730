"""Validator throughput on one core, with every check on.

Run: ``.venv/bin/python benchmarks/validate.py [--seconds S]``. Builds the validator once (the
compile time is printed), then validates, in one thread, each workload repeatedly for about S
seconds and prints resources per second. A resource is one FHIR resource validated against its base
definition and the profiles it claims, with every invariant, binding, slice and reference check;
a Bundle counts once per entry resource plus once for itself. Workloads:

- our profile examples (examples/profiles, single resources and the case-overview document);
- the example patient bundles (examples/patients, 7 collections of 7–30 resources);
- the questionnaire responses (examples/questionnaire-responses);
- everything above, mixed, plus the invalid examples (errors cost a little more to report);
- one collection Bundle of 1,000 entries of our profiled resources (the profile examples and the
  case-overview document's entries, copied with fresh ids and fullUrls): the issue's yardstick;
- the same bundle decoded from its JSON text: deepcopy shares every string between the copies, so
  in the yardstick the validator's per-call memo (narrative parses, keyed by the string object) hits
  where a decoded bundle, every narrative its own string, pays for each.

For comparison it also times fhir.resources R4B model parsing of the same, already-decoded content
(the validator too is given decoded JSON), which checks far less (no profiles, no invariants, no
terminology).

``--cpu`` times with this process's CPU time instead of the wall clock: on a machine shared with other
work, the wall clock also counts the time the other processes had the core, and that share changes
between the validation and the parse runs.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import uuid
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from alk_fhir.config import REPO_ROOT, Settings
from alk_fhir.knowledge import corepkg, load_package
from alk_fhir.validation import build_validator

EXAMPLES = REPO_ROOT / "examples"


def load(folder: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted((EXAMPLES / folder).glob("*.json"))]


def size(resource: dict[str, Any]) -> int:
    entries = resource.get("entry", []) if resource.get("resourceType") == "Bundle" else []
    return 1 + sum(size(e["resource"]) for e in entries if isinstance(e.get("resource"), dict))


def thousand_entry_bundle(profiles: list[dict[str, Any]]) -> dict[str, Any]:
    """1,000 entries of profiled resources: the single examples and the document's entries, repeated."""
    pool: list[dict[str, Any]] = []
    for resource in profiles:
        if resource["resourceType"] == "Bundle":
            pool += [e["resource"] for e in resource.get("entry", []) if e.get("resource", {}).get("meta")]
        else:
            pool.append(resource)
    entries = []
    for i in range(1000):
        resource = copy.deepcopy(pool[i % len(pool)])
        resource["id"] = str(uuid.UUID(int=i + 1))
        entries.append({"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource})
    return {"resourceType": "Bundle", "id": "bench-1000", "type": "collection", "entry": entries}


def rate(fn: Any, items: list[dict[str, Any]], seconds: float, clock: Any = time.perf_counter) -> float:
    for item in items:  # warm-up: lazily compiled base definitions
        fn(item)
    resources = sum(size(i) for i in items)
    rounds, start = 0, clock()
    while True:
        for item in items:
            fn(item)
        rounds += 1
        elapsed = clock() - start
        if elapsed >= seconds:
            return rounds * resources / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--cpu", action="store_true", help="time with process CPU time, not the wall clock")
    args = parser.parse_args()
    clock = time.process_time if args.cpu else time.perf_counter
    start = time.perf_counter()
    package = load_package(REPO_ROOT / "profiles")
    validator = build_validator(package, corepkg.require(Settings.from_env().package_cache))
    print(f"compile: {time.perf_counter() - start:.2f} s for {len(validator.profiles)} profiles "
          f"({len(validator.compiler.compiled_urls())} definitions)")
    workloads = {
        "profile examples": load("profiles"),
        "patient bundles": load("patients"),
        "questionnaire responses": load("questionnaire-responses"),
    }
    workloads["all, with the invalid examples"] = [r for rs in workloads.values() for r in rs] + load("invalid")
    big = thousand_entry_bundle(workloads["profile examples"])
    errors = [i for i in validator.validate(big)["issue"] if i["severity"] in ("error", "fatal")]
    if errors:
        raise SystemExit(f"the 1,000-entry bundle should be valid: {errors[:3]}")
    workloads["1,000-entry bundle of profiled resources"] = [big]
    workloads["the same, decoded from JSON"] = [json.loads(json.dumps(big))]

    def parse(resource: dict[str, Any]) -> object:
        return get_fhir_model_class(resource["resourceType"]).model_validate(resource)

    print(f"{'workload':42} {'resources':>9} {'validate/s':>11} {'R4B parse/s':>12}"
          + ("  (CPU time)" if args.cpu else ""))
    for name, items in workloads.items():
        n = sum(size(i) for i in items)
        valid_rate = rate(validator.validate, items, args.seconds, clock)
        parsable = [i for i in items if not name.startswith("all")]
        parse_rate = rate(parse, parsable, args.seconds / 2, clock) if parsable else float("nan")
        print(f"{name:42} {n:9d} {valid_rate:11.0f} {parse_rate:12.0f}")


if __name__ == "__main__":
    main()
