"""The syntax of the external code systems whose codes we match by prefix: a code is a code only
when it has its system's published structure, so free text (``K58 Jan Pietersen 123456782``) can
never pass as one, in membership, validation, the store or the register.

- ICD-10 (WHO, ICD-10 Volume 2, "Instruction manual", §2.4 / the tabular list): a letter, two
  digits, optionally a dot and a fourth character; national editions (ICD-10-NL, ICD-10-CM) extend
  the part after the dot to at most four letters or digits.
- ICPC-1 / ICPC-1-NL (WONCA ICPC; NHG Tabel 24 "ICPC"): one of the 17 chapter letters
  (A B D F H K L N P R S T U W X Y Z) and a two-digit component, optionally an NHG sub-code of one
  or two digits after a dot (P75.01), under its URI and its OID.
- ATC (WHO Collaborating Centre, "Structure and principles"): 1, 3, 4, 5 or 7 characters: letter,
  two digits, letter, letter, two digits.

A leaf module (standard library only), so the store, which imports nothing else of alk_fhir, can
use it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

_ICD10 = re.compile(r"[A-Z][0-9]{2}(?:\.[0-9A-Z]{1,4})?")
_ICPC = re.compile(r"[ABDFHKLNPRSTUWXYZ][0-9]{2}(?:\.[0-9]{1,2})?")
CODE_SYNTAX: dict[str, re.Pattern[str]] = {
    "http://www.whocc.no/atc": re.compile(r"[A-Z](?:[0-9]{2}(?:[A-Z](?:[A-Z](?:[0-9]{2})?)?)?)?"),
    "http://hl7.org/fhir/sid/icd-10": _ICD10,
    "http://hl7.org/fhir/sid/icd-10-nl": _ICD10,
    "http://hl7.org/fhir/sid/icpc-1-nl": _ICPC,
    "urn:oid:2.16.840.1.113883.2.4.4.31.1": _ICPC,
}


def valid_code(system: str | None, code: str | None) -> bool:
    """Whether ``code`` has the syntax of ``system``; True for systems without a rule here (their
    codes are checked by enumeration, or not at all)."""
    pattern = CODE_SYNTAX.get(system or "")
    return pattern is None or (isinstance(code, str) and pattern.fullmatch(code) is not None)


def malformed_codes(node: Any) -> Iterator[tuple[str, str]]:
    """(system, code) of every Coding-like object in a JSON value whose code breaks its system's
    syntax, in no particular order."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            system, code = item.get("system"), item.get("code")
            if isinstance(system, str) and isinstance(code, str) and not valid_code(system, code):
                yield system, code
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
