"""The token protocol's pure logic: challenge parsing, scopes, the per-scope token cache.

The HTTP exchange is a function handed to :class:`TokenAuth`; here it is a table of answers, so
expiry and renewal can be checked with a clock instead of a stopwatch. The real exchange (a
docker-registry trusting a token server) is in test_registry_token.py."""

from __future__ import annotations

import json

import pytest

from kit_jupyter.errors import AuthError
from kit_jupyter.transport.bearer import (
    Challenge,
    TokenAuth,
    format_scope,
    parse_challenges,
    parse_scope,
    request_scope,
)


@pytest.mark.parametrize("header,expected", [
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
     'scope="repository:samalba/my-app:pull,push"',
     [Challenge("bearer", {"realm": "https://auth.docker.io/token",
                           "service": "registry.docker.io",
                           "scope": "repository:samalba/my-app:pull,push"})]),
    ('Basic realm="kit-test"', [Challenge("basic", {"realm": "kit-test"})]),
    ('Basic realm="a, b", Bearer realm="https://t/x" , service=reg',
     [Challenge("basic", {"realm": "a, b"}),
      Challenge("bearer", {"realm": "https://t/x", "service": "reg"})]),
    ('BEARER Realm="q\\"uote"', [Challenge("bearer", {"realm": 'q"uote'})]),
    ("Negotiate abc==", [Challenge("negotiate", {"abc": ""})]),
    ("", []),
    (",,, =", []),
])
def test_parse_challenges(header, expected):
    assert parse_challenges(header) == expected


def test_scopes():
    s = parse_scope("repository:a/b:pull,push repository:c:pull registry:catalog:*")
    assert s == {("repository", "a/b", "pull"), ("repository", "a/b", "push"),
                 ("repository", "c", "pull"), ("registry", "catalog", "*")}
    assert format_scope(s) == ["registry:catalog:*", "repository:a/b:pull,push",
                               "repository:c:pull"]
    assert parse_scope("nonsense repository::pull") == frozenset()
    assert request_scope("HEAD", "/v2/team/x/blobs/sha256:ab") == {("repository", "team/x",
                                                                      "pull")}
    assert format_scope(request_scope("PUT", "/v2/a/b/c/manifests/v1")) == [
        "repository:a/b/c:pull,push"]
    assert format_scope(request_scope("POST", "/v2/x/blobs/uploads/")) == ["repository:x:pull,push"]
    assert request_scope("GET", "/v2/") == frozenset()


class Realm:
    """Token answers in order; records (params, headers) of each request."""

    def __init__(self, *answers: tuple[int, dict | bytes]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[list[tuple[str, str]], dict[str, str]]] = []

    def __call__(self, url, params, headers):
        assert url == "https://auth.example/token"
        self.calls.append((params, headers))
        status, body = self.answers.pop(0)
        return status, body if isinstance(body, bytes) else json.dumps(body).encode()


CHALLENGE = Challenge("bearer", {"realm": "https://auth.example/token", "service": "reg"})


def test_tokens_are_cached_per_scope_and_renewed_before_expiry():
    now = [100.0]
    realm = Realm((200, {"token": "T-pull", "expires_in": 300}),
                  (200, {"access_token": "T-push", "expires_in": 600}),
                  (200, {"token": "T-pull-2"}),
                  (200, {"token": "T-pull-3"}))
    auth = TokenAuth(CHALLENGE, "dXNlcjpwdw==", realm, registry="reg", clock=lambda: now[0])
    pull = request_scope("GET", "/v2/r/manifests/v1")
    push = request_scope("PUT", "/v2/r/manifests/v1")
    assert auth.header(pull) == {"Authorization": "Bearer T-pull"}
    assert auth.header(pull) == {"Authorization": "Bearer T-pull"}  # cached
    assert auth.header(push) == {"Authorization": "Bearer T-push"}  # pull,push: a new token
    now[0] += 400  # T-pull expired; T-push covers pull too
    assert auth.header(pull) == {"Authorization": "Bearer T-push"}
    now[0] += 300  # everything expired
    assert auth.header(pull) == {"Authorization": "Bearer T-pull-2"}
    now[0] += 50   # no expires_in: 60 s, renewed 5 s early
    assert auth.header(pull) == {"Authorization": "Bearer T-pull-2"}
    now[0] += 6
    assert auth.header(pull) == {"Authorization": "Bearer T-pull-3"}
    assert [p for p, _ in realm.calls] == [
        [("service", "reg"), ("scope", "repository:r:pull")],
        [("service", "reg"), ("scope", "repository:r:pull,push")],
        [("service", "reg"), ("scope", "repository:r:pull")],
        [("service", "reg"), ("scope", "repository:r:pull")]]
    assert all(h["Authorization"] == "Basic dXNlcjpwdw==" for _, h in realm.calls)
    assert set(auth.secrets()) == {"T-pull-3"}


def test_renew_asks_for_what_the_challenge_names():
    realm = Realm((200, {"token": "A"}), (200, {"token": "B"}))
    auth = TokenAuth(CHALLENGE, None, realm, registry="reg")
    pull = request_scope("GET", "/v2/r/blobs/sha256:00")
    auth.header(pull)
    got = auth.renew(pull, 'Bearer realm="https://auth.example/token",service="reg",'
                           'scope="repository:other:pull",error="insufficient_scope"')
    assert got == {"Authorization": "Bearer B"}
    assert realm.calls[1][0] == [("service", "reg"), ("scope", "repository:other:pull"),
                                 ("scope", "repository:r:pull")]
    assert "Authorization" not in realm.calls[0][1]  # anonymous


@pytest.mark.parametrize("basic,answer,message", [
    ("dTpw", (401, b""), "authentication to reg failed: wrong username or password"),
    (None, (401, b""), "registry reg requires authentication: run kit login reg"),
    (None, (500, b"<html>"), "could not get a token for reg: the token service answered 500"),
    (None, (200, b"not json"), "could not get a token for reg: the token service sent no token"),
    (None, (200, {"token": 7}), "could not get a token for reg: the token service sent no token"),
])
def test_token_failures_are_one_line(basic, answer, message):
    auth = TokenAuth(CHALLENGE, basic, Realm(answer), registry="reg")
    with pytest.raises(AuthError) as info:
        auth.header(frozenset())
    assert str(info.value) == message


def test_credentials_never_go_to_a_plain_http_token_service_of_an_https_registry():
    challenge = Challenge("bearer", {"realm": "http://auth.example/token"})
    with pytest.raises(AuthError, match="not HTTPS"):
        TokenAuth(challenge, "dTpw", Realm(), registry="reg")
    with pytest.raises(AuthError, match="names no realm"):
        TokenAuth(Challenge("bearer", {}), None, Realm(), registry="reg")
    auth = TokenAuth(Challenge("bearer", {"realm": "auth.example/token"}), None, Realm(),
                     registry="reg")
    assert auth.realm == "https://auth.example/token"
