"""CDS client JWTs are bounded in size and carry no ``sub`` requirement (issue 25).

Validly signed 1 MB and 8 MB tokens used to be decoded, verified and accepted. Now anything longer than
8 kB is refused before it is decoded (a 401 like every bad token); a token with every claim CDS Hooks
2.0 lists stays far below that. CDS Hooks 2.0 ("Trusting CDS Clients") lists iss, aud, exp, iat, jti
and an optional tenant as the payload, so a token without ``sub`` is accepted.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from alk_fhir.auth.cds_jwt import MAX_TOKEN_LENGTH, CdsJwtError
from alk_fhir.auth.replay import MemoryJtiCache
from alk_fhir.store import StoreJtiCache, open_store
from fixtures.auth.jwtkit import cds_claims
from test_auth_token_limits import AUD, ISS, RecordingCache, token, verifier


def padded(length: int, **extra: Any) -> str:
    """A validly signed token of exactly ``length`` characters (a filler claim takes up the rest)."""
    claims = {**cds_claims(ISS, AUD), **extra, "filler": ""}
    base = len(token(claims))
    claims["filler"] = "x" * ((length - base) * 3 // 4)
    text = token(claims)
    while len(text) < length:
        claims["filler"] += "x"
        text = token(claims)
    assert len(text) in range(length, length + 4)
    return text


@pytest.mark.parametrize("size", [MAX_TOKEN_LENGTH + 4, 1024 * 1024, 8 * 1024 * 1024])
def test_a_token_beyond_8_kb_is_refused_before_it_is_decoded(size: int) -> None:
    replay = RecordingCache()
    with pytest.raises(CdsJwtError, match=f"at most {MAX_TOKEN_LENGTH} accepted"):
        verifier(replay)(padded(size))
    assert replay.expiries == []  # refused before anything was recorded


def test_a_token_at_the_limit_and_one_without_sub_are_accepted() -> None:
    run = verifier(MemoryJtiCache())
    assert run(padded(MAX_TOKEN_LENGTH - 4))["iss"] == ISS
    plain = token(cds_claims(ISS, AUD, tenant="praktijk-1"))
    claims = json.loads(base64.urlsafe_b64decode(plain.split(".")[1] + "=="))
    assert "sub" not in claims and len(plain) < 1024
    assert run(plain)["tenant"] == "praktijk-1"


def test_a_jti_with_a_lone_surrogate_is_remembered_not_a_crash(tmp_path: Path) -> None:
    """JSON lets a signed token carry ``"jti": "\\ud800"``; hashing it for the replay table raised
    UnicodeEncodeError (a 500 on every CDS call with such a token)."""
    store = open_store(f"sqlite:///{tmp_path / 'jti.sqlite3'}")
    try:
        run = verifier(StoreJtiCache(store))
        text = token(cds_claims(ISS, AUD, jti="ab\ud800"))
        assert run(text)["jti"] == "ab\ud800"
        with pytest.raises(CdsJwtError, match="already used"):
            run(text)
    finally:
        store.close()
