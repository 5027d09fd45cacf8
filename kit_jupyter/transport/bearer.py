"""Registry token authentication (the distribution token protocol), without oras-py.

A registry that wants tokens answers 401 with ``WWW-Authenticate: Bearer realm="…",
service="…",scope="…"``. The client then asks the realm for a token (``GET realm?service=…
&scope=…``, with the user's Basic credentials if there are any, anonymously otherwise) and
repeats the request with ``Authorization: Bearer <token>``. Tokens are kept per scope: a push
needs ``repository:<name>:pull,push`` where a pull needed only ``…:pull`` (oras-py #187 kept the
first, pull-only token and its pushes to new repositories failed), and a token is re-used for
every later request that its scope covers until it expires.

This module is pure bookkeeping: the HTTP exchange is a ``fetch`` function given by the
registry client, so every token request shares the client's session, timeouts and retries.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from kit_jupyter.errors import AuthError
from kit_jupyter.gocompat.gojson import unmarshal

# A token without ``expires_in`` is valid for 60 s (distribution token spec); renew a little early.
DEFAULT_EXPIRES_IN = 60.0
EXPIRY_MARGIN = 5.0
_REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?:blobs|manifests|tags|referrers)/")
_PUSH_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What a token may hold: it goes into an ``Authorization`` header, where a CR/LF would be refused
# by requests (with the token in its message) and a non-Latin-1 character would fail to encode.
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")

Scope = frozenset[tuple[str, str, str]]  # (resource type, name, action)


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: its scheme (lower case) and parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a ``WWW-Authenticate`` value (RFC 9110 §11.6.1).

    Parameter values may be quoted strings that contain commas and ``\\``-escapes (a scope such
    as ``"repository:a:pull,push"``), and one header may carry several challenges
    (``Basic realm="x", Bearer realm="y"``) -- so it is tokenised, not split on commas.
    """
    out: list[Challenge] = []
    i, n = 0, len(header)
    current: Challenge | None = None

    def skip(chars: str) -> None:
        nonlocal i
        while i < n and header[i] in chars:
            i += 1

    def token() -> str:
        nonlocal i
        start = i
        while i < n and header[i] not in ' \t,="':
            i += 1
        return header[start:i]

    while i < n:
        skip(" \t,")
        if i >= n:
            break
        name = token()
        if not name:  # stray character: skip it rather than loop
            i += 1
            continue
        skip(" \t")
        if i < n and header[i] == "=" and current is not None:
            i += 1
            skip(" \t")
            if i < n and header[i] == '"':
                i += 1
                chars: list[str] = []
                while i < n and header[i] != '"':
                    if header[i] == "\\" and i + 1 < n:
                        i += 1
                    chars.append(header[i])
                    i += 1
                i += 1  # closing quote
                value = "".join(chars)
            else:
                value = token()
            current.params[name.lower()] = value
            continue
        if i < n and header[i] == "=" and current is None:  # token68 without a scheme
            i += 1
            continue
        current = Challenge(name.lower(), {})
        out.append(current)
        # token68 form ("Negotiate abc=="): one token, no '=' params; kept as a bare name
    return out


def bearer_challenge(header: str) -> Challenge | None:
    for challenge in parse_challenges(header):
        if challenge.scheme == "bearer":
            return challenge
    return None


def parse_scope(text: str) -> Scope:
    """``repository:a/b:pull,push repository:c:pull`` as a set of (type, name, action)."""
    items: set[tuple[str, str, str]] = set()
    for part in text.split():
        kind, sep, rest = part.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not (sep and sep2 and name):
            continue
        for action in actions.split(","):
            if action:
                items.add((kind, name, action))
    return frozenset(items)


def format_scope(scope: Scope) -> list[str]:
    """One ``type:name:actions`` string per resource (actions in a stable order)."""
    by_resource: dict[tuple[str, str], list[str]] = {}
    for kind, name, action in sorted(scope):
        by_resource.setdefault((kind, name), []).append(action)
    order = {"pull": 0, "push": 1}
    return [f"{kind}:{name}:{','.join(sorted(acts, key=lambda a: (order.get(a, 2), a)))}"
            for (kind, name), acts in sorted(by_resource.items())]


def request_scope(method: str, path: str) -> Scope:
    """The scope a registry API request needs: pull to read a repository, pull and push to
    write to it; nothing for ``/v2/`` itself."""
    m = _REPO_PATH.match(path)
    if not m:
        return frozenset()
    name = m.group("name")
    actions = ("pull", "push") if method.upper() in _PUSH_METHODS else ("pull",)
    return frozenset(("repository", name, a) for a in actions)


@dataclass
class _Token:
    value: str
    scope: Scope
    expires: float


FetchFn = Callable[[str, list[tuple[str, str]], dict[str, str]], tuple[int, bytes]]


def _lifetime(value: object) -> float:
    """A token's lifetime in seconds from the answer's ``expires_in``. kit (oras-go) reads only
    the token from the answer, so an ``expires_in`` that is no number (``"soon"``, ``true``) or
    that no float holds (10**400) is the default lifetime, not a failure."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value:
        return DEFAULT_EXPIRES_IN
    try:
        return float(value)
    except OverflowError:
        return DEFAULT_EXPIRES_IN


class TokenAuth:
    """Bearer tokens for one registry, fetched from the challenge's realm and cached by scope.

    ``fetch(url, params, headers) -> (status, body)`` performs the token request; ``basic`` is
    the base64 ``user:password`` of the stored login, or None for anonymous tokens.
    """

    def __init__(self, challenge: Challenge, basic: str | None, fetch: FetchFn, *,
                 allow_http: bool = False, registry: str = "",
                 clock: Callable[[], float] = time.monotonic) -> None:
        realm = challenge.params.get("realm", "")
        if not realm:
            raise AuthError(f"registry {registry} asks for a token but names no realm")
        if "://" not in realm:
            realm = f"https://{realm}"
        try:  # the registry's header: "https://[::1", an NFKC-unsafe host, no host at all ...
            parts = urllib.parse.urlsplit(realm)
            if not parts.netloc:
                raise ValueError("no host")
        except ValueError:
            raise AuthError(f"registry {registry} names a token service that is not a URL: "
                            f"{realm[:200]!r}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("https", "http") or (scheme == "http" and not allow_http):
            # Credentials are sent to the realm: never in clear text to an https registry's
            # token service.
            raise AuthError(f"registry {registry} names a token service that is not HTTPS "
                            f"({parts.netloc}); refusing to send credentials to it")
        self.realm = realm
        self.service = challenge.params.get("service", "")
        self.registry = registry
        self._basic = basic
        self._fetch = fetch
        self._clock = clock
        self._tokens: list[_Token] = []
        self._lock = threading.Lock()
        self.requested: list[list[str]] = []  # the scopes asked for, in order (diagnostics)

    def secrets(self) -> list[str]:
        """Every token handed out so far (for redaction of error texts)."""
        with self._lock:
            return [t.value for t in self._tokens]

    def _cached(self, scope: Scope) -> _Token | None:
        now = self._clock()
        self._tokens = [t for t in self._tokens if t.expires > now]
        for t in self._tokens:
            if scope <= t.scope:
                return t
        return None

    def header(self, scope: Scope) -> dict[str, str]:
        """``Authorization: Bearer …`` for a request needing ``scope`` (fetched if not cached)."""
        with self._lock:
            token = self._cached(scope) or self._get(scope)
        return {"Authorization": f"Bearer {token.value}"}

    def renew(self, scope: Scope, challenge_header: str) -> dict[str, str]:
        """After a 401/403 with a token: forget the tokens for ``scope`` and fetch one for it
        plus whatever the new challenge asks for (``insufficient_scope`` names it)."""
        challenge = bearer_challenge(challenge_header)
        wanted = scope | (parse_scope(challenge.params.get("scope", "")) if challenge
                          else frozenset())
        with self._lock:
            self._tokens = [t for t in self._tokens if not (scope <= t.scope)]
            token = self._get(wanted)
        return {"Authorization": f"Bearer {token.value}"}

    def _get(self, scope: Scope) -> _Token:
        params: list[tuple[str, str]] = []
        if self.service:
            params.append(("service", self.service))
        scopes = format_scope(scope)
        params.extend(("scope", s) for s in scopes)
        headers = {"Accept": "application/json"}
        if self._basic:
            headers["Authorization"] = f"Basic {self._basic}"
        self.requested.append(scopes)
        started = self._clock()
        status, body = self._fetch(self.realm, params, headers)
        if status in (401, 403):
            if self._basic:
                raise AuthError(f"authentication to {self.registry} failed: wrong username or "
                                "password")
            raise AuthError(f"registry {self.registry} requires authentication: "
                            f"run kit login {self.registry}")
        if status != 200:
            raise AuthError(f"could not get a token for {self.registry}: the token service "
                            f"answered {status}")
        # The answer is the token service's. Not JSON (too deep, NaN or 1e400, which
        # ``unmarshal`` refuses), or not an object, is no token: one line, not a traceback.
        try:
            data = unmarshal(body or b"{}")
        except ValueError:
            data = None
        data = data if isinstance(data, dict) else {}
        value = data.get("token") or data.get("access_token")
        expires_in = _lifetime(data.get("expires_in"))
        if not isinstance(value, str) or not value:
            raise AuthError(f"could not get a token for {self.registry}: the token service "
                            "sent no token")
        if not _TOKEN_CHARS.fullmatch(value):
            raise AuthError(f"could not get a token for {self.registry}: the token service "
                            "sent a token with characters a header cannot carry")
        # as Docker's client: a lifetime under 60 s (0, or negative) is taken as 60 s, else
        # every request would fetch a token of its own; a token the registry expires sooner is
        # refused with a 401, and the request renews it then
        expires_in = max(expires_in, DEFAULT_EXPIRES_IN)
        expires = started + max(expires_in - EXPIRY_MARGIN, expires_in / 2)
        token = _Token(value, scope, expires)
        self._tokens.append(token)
        return token

