"""API keys at the gateway: parsing the keys file, scopes, and never echoing a key."""

from __future__ import annotations

import grpc
import pytest

from gateway.auth import Authenticator, parse_keys
from services.common.config import ConfigError

TALK, READ, ALL = "t" * 20, "r" * 20, "a" * 20
KEYS = parse_keys(f"# comment\n\nweb:{TALK}:talk\ndash:{READ}:read\nops:{ALL}\n")


def bearer(key):
    return (("authorization", f"Bearer {key}"),)


@pytest.mark.parametrize(("metadata", "code"), [
    (bearer(TALK), None),
    (bearer(ALL), None),
    ((("authorization", f"bearer {TALK}"),), None),
    ((), grpc.StatusCode.UNAUTHENTICATED),
    ((("authorization", TALK),), grpc.StatusCode.UNAUTHENTICATED),
    (bearer("x" * 20), grpc.StatusCode.UNAUTHENTICATED),
    (bearer(READ), grpc.StatusCode.PERMISSION_DENIED),
])
def test_scopes_and_status(metadata, code):
    result = Authenticator(KEYS).check("/talker.v1.GatewayService/Converse", metadata)
    assert (result and result[0]) == code
    if result:
        assert TALK not in result[1] and READ not in result[1]


def test_health_needs_no_key():
    assert Authenticator(KEYS).check("/grpc.health.v1.Health/Check", ()) is None


@pytest.mark.parametrize(("text", "words"), [
    ("", "no keys"),
    ("justonefield", "expected name:key"),
    ("a:short", "shorter than 16"),
    (f"a:{TALK}\na:{READ}", "appears twice"),
    (f"a:{TALK}:", "empty scope"),
])
def test_bad_keys_files_are_refused_without_the_key(text, words):
    with pytest.raises(ConfigError) as err:
        parse_keys(text)
    assert words in str(err.value)
    assert TALK not in str(err.value) and "short" not in str(err.value).replace("shorter", "")
