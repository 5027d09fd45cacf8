"""The token protocol's pure logic: challenge parsing, scopes, the per-scope token cache.

The HTTP exchange is a function handed to :class:`TokenAuth`; here it is a table of answers, so
expiry and renewal can be checked with a clock instead of a stopwatch. The real exchange (a
docker-registry trusting a token server) is in test_registry_token.py."""

from __future__ import annotations

import json
import math
import urllib.parse

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kit_jupyter.errors import AuthError, RegistryError
from kit_jupyter.transport.bearer import (
    DEFAULT_EXPIRES_IN,
    EXPIRY_MARGIN,
    Challenge,
    Scope,
    TokenAuth,
    bearer_challenge,
    format_scope,
    parse_challenges,
    parse_scope,
    request_scope,
)
from kit_jupyter.transport.registry import RegistryClient


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


@pytest.mark.parametrize("expires_in", [0, -30, 10])
def test_a_lifetime_under_a_minute_counts_as_one(expires_in: int) -> None:
    """As Docker's client: a token said to live 0, -30 or 10 s is used for 60 s (renewed 5 s
    early), not fetched again for every request."""
    now = [0.0]
    realm = Realm((200, {"token": "T1", "expires_in": expires_in}), (200, {"token": "T2"}))
    auth = TokenAuth(CHALLENGE, None, realm, registry="reg", clock=lambda: now[0])
    pull = request_scope("GET", "/v2/r/manifests/v1")
    assert auth.header(pull) == {"Authorization": "Bearer T1"}
    now[0] = 54
    assert auth.header(pull) == {"Authorization": "Bearer T1"}
    now[0] = 56
    assert auth.header(pull) == {"Authorization": "Bearer T2"}
    assert len(realm.calls) == 2


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


# --------------------------------------------------------------------------------------------
# hostile input, property-based: the header, the scope and the token answer are the registry's

_SEPARATORS = ' \t,="'
# RFC 9110 tchar: what a scheme or parameter name is made of
_TCHAR_SET = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TCHAR = st.sampled_from(sorted(_TCHAR_SET))
_HEADER = st.text(st.sampled_from(list(_SEPARATORS + "\\aZ=:é")) | st.characters(), max_size=120)


@settings(max_examples=400, deadline=None)
@given(_HEADER)
def test_any_header_gives_well_formed_challenges(header: str) -> None:
    """Whatever the registry sends: a list of challenges (never an exception), each with a
    lower-case token as scheme and parameter names; bearer_challenge is the first Bearer one."""
    challenges = parse_challenges(header)
    for c in challenges:
        for name in (c.scheme, *c.params):
            assert name and name == name.lower()
            assert not any(ch in _SEPARATORS for ch in name)
        assert all(isinstance(v, str) for v in c.params.values())
    bearers = [c for c in challenges if c.scheme == "bearer"]
    assert bearer_challenge(header) == (bearers[0] if bearers else None)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_TOKEN = st.text(_TCHAR, min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_TOKEN, st.lists(st.tuples(_TOKEN, st.text(max_size=12),
                                                     st.booleans(), st.sampled_from(["", " "])),
                                           max_size=4)), max_size=3))
def test_challenges_round_trip(spec: list[tuple[str, list[tuple[str, str, bool, str]]]]) -> None:
    """A header written from schemes and parameters (quoted with escapes, or bare tokens, with
    optional spaces around '=') parses back to those schemes and parameters."""
    parts, expected = [], []
    for scheme, params in spec:
        want: dict[str, str] = {}
        texts = []
        for name, value, bare, space in params:
            bare = bare and bool(value) and all(ch in _TCHAR_SET for ch in value)
            texts.append(f"{name}{space}={space}{value if bare else _quoted(value)}")
            want[name.lower()] = value
        parts.append(f"{scheme} {', '.join(texts)}" if texts else scheme)
        expected.append(Challenge(scheme.lower(), want))
    assert parse_challenges(", ".join(parts)) == expected


def test_a_huge_hostile_header_is_linear() -> None:
    """Unterminated quotes, escapes, stray '=' and commas: parsed in one pass (a quadratic
    parser would take hours here, and the suite's per-test timeout would end it: no timing is
    asserted), each giving well-formed challenges."""
    for unit in ('a="\\', "=,", 'x=y ', "Bearer ", '"', "a=" * 3):
        header = unit * (200_000 // len(unit))
        for challenge in parse_challenges(header):
            assert challenge.scheme == challenge.scheme.lower() and " " not in challenge.scheme


@settings(max_examples=400, deadline=None)
@given(st.text(st.sampled_from(list(":,/ \tab")) | st.characters(), max_size=80))
def test_any_scope_text_gives_well_formed_items(text: str) -> None:
    """A scope from the registry is a set of (type, name, action) with a non-empty name and
    action, no ':' in type or action, no ',' in an action -- so formatting it and parsing the
    result gives the same set."""
    scope = parse_scope(text)
    for kind, name, action in scope:
        assert ":" not in kind and ":" not in action and "," not in action
        assert kind.split() == ([kind] if kind else [])  # no white space; name and action
        assert name.split() == [name] and action.split() == [action]  # are never empty
    assert parse_scope(" ".join(format_scope(scope))) == scope


_SCOPE_PART = st.text(st.characters(blacklist_categories=("Zs", "Cc", "Zl", "Zp"),
                                    blacklist_characters=":,\x1c\x1d\x1e\x1f\x85"),
                      min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.frozensets(st.tuples(_SCOPE_PART, _SCOPE_PART, _SCOPE_PART), max_size=5))
def test_scopes_round_trip(scope: Scope) -> None:
    assert parse_scope(" ".join(format_scope(scope))) == scope


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40),
                 st.builds("".join, st.lists(st.sampled_from(
                     ["https://", "http://", "[", "]", "::1", "＃", "a", ":99999", "@", "/t",
                      "\n", "\x85", "%", "?", "#"]), max_size=8))),
       st.booleans())
@example("https://[::1", False)  # urlsplit's ValueError escaped
@example("https://a\uff03b/t", False)  # so did its NFKC check
@example("https:///token", False)  # no host: requests' InvalidURL would have escaped
def test_any_realm_is_a_token_service_or_one_line(realm: str, allow_http: bool) -> None:
    """The realm is where credentials go: an https URL with a host (http only when allowed),
    or one line saying why not."""
    try:
        auth = TokenAuth(Challenge("bearer", {"realm": realm}), "dTpw", Realm(),
                         allow_http=allow_http, registry="reg")
    except AuthError as err:
        assert "\n" not in str(err) and "\r" not in str(err)
    else:
        parts = urllib.parse.urlsplit(auth.realm)
        assert parts.netloc and parts.scheme in (("https", "http") if allow_http
                                                 else ("https",))


_EXPIRES = st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=6),
                     st.sampled_from(["nan", "inf", "-inf", "1e400", 10 ** 400, -1, 0, True]))
_TOKEN_VALUE = st.one_of(st.text(max_size=12), st.integers(), st.none(),
                         st.sampled_from(["T", "a\nb", "a b", "€", "eyJ0.eyJ1.sig=="]))


@st.composite
def _token_answer(draw: st.DrawFn) -> tuple[bytes, object, object]:
    """A token service's body, with the token and expiry it holds (None when it is not JSON
    of an object)."""
    kind = draw(st.sampled_from(["json", "bytes", "deep"]))
    if kind == "bytes":
        return draw(st.binary(max_size=40)), None, None
    if kind == "deep":
        return b"[" * 50_000 + b"]" * 50_000, None, None
    token, expires = draw(_TOKEN_VALUE), draw(_EXPIRES)
    doc: dict[str, object] = {draw(st.sampled_from(["token", "access_token"])): token}
    if draw(st.booleans()):
        doc["expires_in"] = expires
    else:
        expires = None
    return json.dumps(doc).encode(), token, expires  # NaN and Infinity as Python writes them


@settings(max_examples=400, deadline=None)
@given(_token_answer())
@example((b'{"token": "t", "expires_in": 1' + b"0" * 400 + b"}", "t", 10 ** 400))  # Overflow
@example((b"[" * 50_000 + b"]" * 50_000, None, None))  # RecursionError
@example((b'{"token": "a\\nb"}', "a\nb", None))  # header injection / InvalidHeader
@example((b'{"token": "t", "expires_in": NaN}', "t", math.nan))  # never cached
@example((b'{"token": "t", "expires_in": "soon"}', "t", "soon"))  # kit reads only the token
def test_any_token_answer_is_a_token_or_one_line(answer: tuple[bytes, object, object]) -> None:
    """A token answer is a usable ``Authorization`` header (printable ASCII, so no header
    injection and no encoding error in requests), re-used while the clock stands still (a
    lifetime under 60 s counts as 60 s, as in Docker's client, and an ``expires_in`` that is no
    usable number is the default); anything else is one line."""
    body, token, expires = answer
    realm = Realm((200, body))
    auth = TokenAuth(CHALLENGE, None, realm, registry="reg", clock=lambda: 0.0)
    try:
        header = auth.header(frozenset())
    except AuthError as err:
        assert "\n" not in str(err) and str(err).startswith("could not get a token for reg")
        return
    assert isinstance(token, str) and header == {"Authorization": f"Bearer {token}"}
    assert all("!" <= ch <= "~" for ch in token)
    # reused whatever the lifetime: under 60 s (0 or negative too) it counts as 60, as Docker's;
    # one that is no number, or that no float holds, is the default (kit reads only the token)
    assert auth.header(frozenset()) == header and len(realm.calls) == 1
    assert auth._tokens[-1].expires > 0


@pytest.mark.parametrize("expires_in", ['"soon"', '"3600"', "true", "[1]", "1" + "0" * 400])
def test_a_token_with_an_unusable_lifetime_is_still_a_token(expires_in: str) -> None:
    """kit (oras-go) reads only ``token``/``access_token`` from the answer: a lifetime that is
    no number, or that no float holds, gives the default lifetime, not a failed pull."""
    body = b'{"token": "T", "expires_in": ' + expires_in.encode() + b"}"
    auth = TokenAuth(CHALLENGE, None, Realm((200, body)), registry="reg", clock=lambda: 0.0)
    assert auth.header(frozenset()) == {"Authorization": "Bearer T"}
    assert auth._tokens[-1].expires == DEFAULT_EXPIRES_IN - EXPIRY_MARGIN


@pytest.mark.parametrize("url, headers", [
    ("https://a..b/token", {}),            # a realm whose host has an empty label
    ("ftp://registry.example/token", {}),  # a Location on a scheme requests has no adapter for
    ("token", {}),                         # no scheme at all
    ("http://\u2100/", {}),                # a host NFKC changes
    ("http://127.0.0.1:9/", {"X-Echo": "a\r\nInjected: 1"}),
    ("http://127.0.0.1:9/", {"X-Echo": "\u20ac"}),
])
def test_a_url_or_header_no_request_can_carry_is_one_line(url: str, headers: dict[str, str]):
    """What a registry names (a token realm, an upload location) goes to requests; where no
    request can be made of it, the client says so in one line, without the URL, before any
    connection is tried."""
    with RegistryClient("127.0.0.1:9", plain_http=True) as client:
        with pytest.raises(RegistryError) as err:
            client._send("GET", url, headers, timeout=(1, 1))
    assert str(err.value).startswith("talking to 127.0.0.1:9: it named a URL or header no "
                                     "request can carry (")
    assert url not in str(err.value) and "\n" not in str(err.value)
