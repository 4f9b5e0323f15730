"""Pseudonyms for the case register: keyed HMAC-SHA256 (RFC 2104) of the BSN.

The key is the installation's secret (``ALK_FHIR_REGISTER_KEY``): the same key gives every patient
the same pseudonym in every export, so versions and later exports link up; without the key nobody
can recompute a pseudonym from a BSN (there are only ~10^9 BSNs, so a plain hash would be reversed
by trying them all). Another installation or a new key gives unrelated pseudonyms. Keep the key out
of the export and away from its recipients.
"""

from __future__ import annotations

import hashlib
import hmac
import os

KEY_VARIABLE = "ALK_FHIR_REGISTER_KEY"
MIN_KEY_LENGTH = 32
BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"


class RegisterKeyError(ValueError):
    """No usable key: the export must not run."""


def register_key(environ: dict[str, str] | None = None) -> bytes:
    """The key from ``ALK_FHIR_REGISTER_KEY``; RegisterKeyError when it is unset or too short."""
    raw = (os.environ if environ is None else environ).get(KEY_VARIABLE, "").strip()
    if not raw:
        raise RegisterKeyError(f"{KEY_VARIABLE} is not set: the register export pseudonymises with a secret key "
                               f"the installation sets (e.g. export {KEY_VARIABLE}=$(openssl rand -hex 32)) "
                               "and keeps; nothing was exported")
    if len(raw) < MIN_KEY_LENGTH:
        raise RegisterKeyError(f"{KEY_VARIABLE} is too short ({len(raw)} characters): use at least "
                               f"{MIN_KEY_LENGTH}, e.g. $(openssl rand -hex 32); nothing was exported")
    return raw.encode("utf-8")


def normalise_bsn(value: str) -> str | None:
    """The BSN's nine digits (an eight-digit BSN gets its leading zero back); None when it is not one."""
    digits = "".join(ch for ch in value if not ch.isspace() and ch not in ".-")
    if not digits.isdigit() or len(digits) not in (8, 9):
        return None
    return digits.zfill(9)


def pseudonym(key: bytes, bsn: str) -> str:
    """64 hex digits: HMAC-SHA256 of the normalised BSN under ``key``."""
    normal = normalise_bsn(bsn)
    if normal is None:
        raise ValueError("not a BSN")
    return hmac.new(key, b"bsn|" + normal.encode("ascii"), hashlib.sha256).hexdigest()


def document_pseudonym(key: bytes, system: str, value: str) -> str:
    """The document's Bundle.identifier under the same key (its own domain), 32 hex digits: tells two
    documents about one patient apart without naming the organisation or record they came from."""
    message = f"document|{system}|{value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]
