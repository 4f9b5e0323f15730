"""Pseudonyms for the case register: keyed HMAC-SHA256 (RFC 2104) of the BSN.

The key is the installation's secret (``ALK_FHIR_REGISTER_KEY``): the same key gives every patient
the same pseudonym in every export, so versions and later exports link up; without the key nobody
can recompute a pseudonym from a BSN (there are only ~10^9 BSNs, so a plain hash would be reversed
by trying them all). Another installation or a new key gives unrelated pseudonyms. Keep the key out
of the export and away from its recipients.

So the key must be unguessable, not merely long: :func:`key_problem` refuses keys made of repeats
(``aaaa…``, ``abcabc…``), runs (``0123…``), common words (``password``, ``geheim``, …) or that carry
less than 128 bits by a character-class estimate (length × log2 of the alphabet the key draws from:
16 for hex, 10 for digits, 26/52/62/94 for letters and more). ``alk-fhir register key`` prints a
fresh 256-bit key (:func:`new_key`, 64 hex digits from the OS's CSPRNG).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets
import string

KEY_VARIABLE = "ALK_FHIR_REGISTER_KEY"
MIN_KEY_LENGTH = 32
MIN_KEY_BITS = 128
MAKE_ONE = "make one with `alk-fhir register key` (or openssl rand -hex 32)"
# Words people put in keys. Not a dictionary attack list: any of these in a key means it was typed by a
# person, and a key a person typed is guessable.
WORDS = ("password", "wachtwoord", "passw0rd", "secret", "geheim", "sleutel", "letmein", "welcome", "welkom",
         "qwerty", "azerty", "admin", "changeme", "default", "example", "test", "alk-fhir", "alkfhir", "register",
         "hospital", "huisarts", "patient", "iloveyou", "monkey", "dragon", "master", "abc123", "123456", "654321")
BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"


class RegisterKeyError(ValueError):
    """No usable key: the export must not run."""


def register_key(environ: dict[str, str] | None = None) -> bytes:
    """The key from ``ALK_FHIR_REGISTER_KEY``; RegisterKeyError when it is unset, too short or guessable."""
    raw = (os.environ if environ is None else environ).get(KEY_VARIABLE, "").strip()
    if not raw:
        raise RegisterKeyError(f"{KEY_VARIABLE} is not set: the register export pseudonymises with a secret key "
                               f"the installation sets (export {KEY_VARIABLE}=$(alk-fhir register key)) "
                               "and keeps; nothing was exported")
    if len(raw) < MIN_KEY_LENGTH:
        raise RegisterKeyError(f"{KEY_VARIABLE} is too short ({len(raw)} characters): use at least "
                               f"{MIN_KEY_LENGTH}; {MAKE_ONE}; nothing was exported")
    problem = key_problem(raw)
    if problem is not None:
        raise RegisterKeyError(f"{KEY_VARIABLE} is guessable: {problem}; {MAKE_ONE}; nothing was exported")
    return raw.encode("utf-8")


def new_key() -> str:
    """A fresh key: 256 bits from the OS's CSPRNG as 64 hex digits."""
    return secrets.token_hex(32)


_LETTERS = re.compile(r"[A-Z]?[a-z]{2,13}|[A-Z]{3,14}")  # a word as typed: lower, Capitalised or UPPER
_WORD_BITS = 13.0  # a word of a diceware list (7,776 words: 12.9 bits), about what a chosen word adds


def _wordlike(run: str) -> bool:
    """A run of letters a person could have typed as a word: vowels and consonants alternate as in
    Dutch or English (a quarter to two thirds vowels, never four consonants in a row). Hex keys have
    no words: their letters are a-f only."""
    lowered = run.lower()
    vowels = sum(c in "aeiouy" for c in lowered)
    return 0.25 <= vowels / len(lowered) <= 0.67 and re.search(r"[^aeiouy]{4}", lowered) is None


def estimated_bits(key: str) -> float:
    """Length × log2(alphabet), the alphabet being the character classes the key uses (hex digits count
    as a class of 16 when the key uses nothing else), except that a run of letters that reads like a
    word counts as one word (13 bits) whatever its length: ``Correct-Horse-Battery-Staple`` is four
    words, not 28 random characters. An upper bound for a random key of that alphabet; a key with
    other structure carries less, which :func:`key_problem` checks separately."""
    if not key:
        return 0.0
    per_char = math.log2(max(_alphabet(key), 2))
    words = [] if _alphabet(key) <= 16 else [m.group() for m in _LETTERS.finditer(key) if _wordlike(m.group())]
    return (len(key) - sum(map(len, words))) * per_char + len(words) * min(_WORD_BITS, per_char * 4)


def _alphabet(key: str) -> int:
    if all(c in string.hexdigits for c in key) and (key == key.lower() or key == key.upper()):
        alphabet = 16 if not key.isdigit() else 10
    else:
        alphabet = sum(size for chars, size in ((string.ascii_lowercase, 26), (string.ascii_uppercase, 26),
                                                (string.digits, 10)) if any(c in chars for c in key))
        alphabet += 32 if any(not c.isascii() or not c.isalnum() for c in key) else 0
    return alphabet


def _period(key: str) -> int:
    """The shortest p with key[i] == key[i + p] throughout (len(key) when it does not repeat)."""
    return next((p for p in range(1, len(key)) if key[p:] == key[:-p]), len(key))


def _runs(key: str) -> int:
    """Characters that continue an ascending or descending run of code points (``0123``, ``fedc``)."""
    return sum(1 for a, b, c in zip(key, key[1:], key[2:], strict=False)
               if ord(b) - ord(a) == ord(c) - ord(b) and abs(ord(b) - ord(a)) == 1)


def key_problem(key: str) -> str | None:
    """Why ``key`` is guessable, or None when it looks random enough."""
    lowered = key.lower()
    if _period(key) <= len(key) // 2:
        return "it repeats a pattern"
    if len(set(key)) < 8:
        return f"it uses only {len(set(key))} different characters"
    if _runs(key) > len(key) // 4:
        return "it is made of runs such as 0123 or abcd"
    word = next((w for w in WORDS if w in lowered), None)
    if word is not None:
        return f"it contains the word {word!r}"
    bits = estimated_bits(key)
    if bits < MIN_KEY_BITS:
        return f"about {bits:.0f} bits, fewer than {MIN_KEY_BITS}"
    return None


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
