"""Go's ``net/url`` parser (``url.Parse``, ``url.ParseRequestURI``, ``URL.Query``), byte for byte.

kit decides with it what a Kitfile path is (``GetPathType``: local, S3, HTTP, other URL), whether a
registry name is valid (oras parses ``dummy://<registry>`` with ``ParseRequestURI``) and where an
``s3://`` remote dataset lives; a failure reaches the user as Go's text
(``parse "s3://b/%zz": invalid URL escape "%zz"``). So the same strings must succeed, fail and read
the same here. Go works on bytes: so does this module (a ``str`` is taken as its UTF-8 bytes and
the decoded parts are given back as ``str``, undecodable bytes as surrogate escapes).

Only what Go's parser checks is checked here; change it only together with the golden data
recorded from Go (``tests/data/kitfiles/gourl.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kit_jupyter.gocompat import gostrconv

_ALPHA = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGIT = frozenset(b"0123456789")
_HEX = frozenset(b"0123456789abcdefABCDEF")
# Bytes a host (and an IPv6 zone) may hold unescaped: Go's shouldEscape(c, encodeHost) is false.
_HOST_OK = _ALPHA | _DIGIT | frozenset(b"!$&'()*+,;=:[]<>\"-_.~")
# Go's validUserinfo (it ranges over runes: anything non-ASCII is refused)
_USERINFO_OK = _ALPHA | _DIGIT | frozenset(b"-._:~!$&'()*+,;=%@")

# unescape modes (Go's encoding constants that unescape distinguishes)
_PATH, _HOST, _ZONE, _USERINFO, _QUERY, _FRAGMENT = range(6)


class URLError(ValueError):
    """Go's ``*url.Error``: ``<op> "<url>": <reason>``, the URL quoted as Go's ``%q`` does."""

    def __init__(self, op: str, url: str | bytes, reason: str) -> None:
        self.op = op
        self.url = _text(url) if isinstance(url, bytes) else url
        self.reason = reason
        super().__init__(f"{op} {gostrconv.quote(url)}: {reason}")


class _Invalid(Exception):
    """A parse failure before it is wrapped with the operation and the URL."""


@dataclass(frozen=True)
class URL:
    """The parts of Go's ``url.URL`` that a parse fills in (decoded where Go decodes)."""

    scheme: str = ""  # lower-cased
    opaque: str = ""  # rootless text after ``scheme:`` (``s3:bucket/key``)
    username: str | None = None  # None: no userinfo at all
    password: str | None = None  # None: no ``:`` in the userinfo
    host: str = ""  # host[:port], unescaped
    path: str = ""  # unescaped
    raw_query: str = ""  # as written, without the ``?``
    fragment: str = ""  # unescaped
    force_query: bool = False  # a lone trailing ``?``

    def query(self) -> dict[str, list[str]]:
        """Go's ``URL.Query()``: ``&``-separated pairs, ``+`` is a space; a pair with a ``;`` or
        a bad escape is dropped (Go reports it only to callers of ``ParseQuery``)."""
        values: dict[str, list[str]] = {}
        for pair in _bytes(self.raw_query).split(b"&"):
            if b";" in pair or not pair:
                continue
            key, _, value = pair.partition(b"=")
            try:
                k, v = _unescape(key, _QUERY), _unescape(value, _QUERY)
            except _Invalid:
                continue
            values.setdefault(_text(k), []).append(_text(v))
        return values


def parse(raw: str) -> URL:
    """``url.Parse``: a URL or a reference relative to one; raises :class:`URLError`."""
    data = _bytes(raw)
    head, sep, frag = data.partition(b"#")
    try:
        url = _parse(head, via_request=False)
    except _Invalid as e:
        raise URLError("parse", head, str(e)) from None
    if not frag:
        return url
    try:
        return replace(url, fragment=_text(_unescape(frag, _FRAGMENT)))
    except _Invalid as e:
        raise URLError("parse", data, str(e)) from None


def parse_request_uri(raw: str) -> URL:
    """``url.ParseRequestURI``: an absolute URI or absolute path, no fragment; raises
    :class:`URLError`."""
    data = _bytes(raw)
    try:
        return _parse(data, via_request=True)
    except _Invalid as e:
        raise URLError("parse", data, str(e)) from None


def get_scheme(raw: str) -> str:
    """The lower-cased scheme Go would split off ``raw`` ('' for none), whether or not the rest
    parses: enough to tell an ``s3://`` path from others without judging it."""
    try:
        return _text(_scheme(_bytes(raw))[0]).lower()
    except _Invalid:
        return ""


def _bytes(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


# -- the parser, after Go's net/url/url.go ------------------------------------------------------

def _parse(raw: bytes, *, via_request: bool) -> URL:
    if any(c < 0x20 or c == 0x7F for c in raw):
        raise _Invalid("net/url: invalid control character in URL")
    if not raw and via_request:
        raise _Invalid("empty url")
    if raw == b"*":
        return URL(path="*")
    scheme_b, rest = _scheme(raw)
    scheme = _text(scheme_b).lower()
    force_query = rest.endswith(b"?") and rest.count(b"?") == 1
    if force_query:
        rest, raw_query = rest[:-1], b""
    else:
        rest, _, raw_query = rest.partition(b"?")
    query = _text(raw_query)
    if not rest.startswith(b"/"):
        if scheme:  # rootless paths are opaque (RFC 3986)
            return URL(scheme=scheme, opaque=_text(rest), raw_query=query,
                       force_query=force_query)
        if via_request:
            raise _Invalid("invalid URI for request")
        if b":" in rest.partition(b"/")[0]:
            raise _Invalid("first path segment in URL cannot contain colon")
    username = password = None
    host = b""
    if (scheme or (not via_request and not rest.startswith(b"///"))) and rest.startswith(b"//"):
        authority, slash, path = rest[2:].partition(b"/")
        rest = slash + path
        username, password, host = _authority(authority)
    return URL(scheme=scheme, username=username, password=password, host=_text(host),
               path=_text(_unescape(rest, _PATH)), raw_query=query, force_query=force_query)


def _scheme(raw: bytes) -> tuple[bytes, bytes]:
    """Go's getScheme: ``[A-Za-z][A-Za-z0-9+.-]*`` before the first ``:``, else no scheme."""
    for i, c in enumerate(raw):
        if c in _ALPHA:
            continue
        if c in _DIGIT or c in b"+-.":
            if i == 0:
                return b"", raw
            continue
        if c == 0x3A:  # ':'
            if i == 0:
                raise _Invalid("missing protocol scheme")
            return raw[:i], raw[i + 1:]
        return b"", raw
    return b"", raw


def _authority(authority: bytes) -> tuple[str | None, str | None, bytes]:
    userinfo, at, hostpart = authority.rpartition(b"@")
    host = _host(hostpart if at else authority)
    if not at:
        return None, None, host
    if any(c not in _USERINFO_OK for c in userinfo):
        raise _Invalid("net/url: invalid userinfo")
    name, colon, password = userinfo.partition(b":")
    user = _text(_unescape(name, _USERINFO))
    if not colon:
        return user, None, host
    return user, _text(_unescape(password, _USERINFO)), host


def _host(host: bytes) -> bytes:
    if host.startswith(b"["):
        i = host.rfind(b"]")
        if i < 0:
            raise _Invalid("missing ']' in host")
        colon_port = host[i + 1:]
        if not _valid_optional_port(colon_port):
            raise _Invalid(f"invalid port {gostrconv.quote(colon_port)} after host")
        zone = host[:i].find(b"%25")
        if zone >= 0:
            return (_unescape(host[:zone], _HOST) + _unescape(host[zone:i], _ZONE)
                    + _unescape(host[i:], _HOST))
    else:
        i = host.rfind(b":")
        if i != -1 and not _valid_optional_port(host[i:]):
            raise _Invalid(f"invalid port {gostrconv.quote(host[i:])} after host")
    return _unescape(host, _HOST)


def _valid_optional_port(port: bytes) -> bool:
    return not port or (port[0] == 0x3A and all(c in _DIGIT for c in port[1:]))


def _unescape(s: bytes, mode: int) -> bytes:
    """Go's unescape: checks every ``%XX`` (and, in a host, every byte) first, then decodes."""
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == 0x25:  # '%'
            if i + 2 >= n or s[i + 1] not in _HEX or s[i + 2] not in _HEX:
                raise _Invalid(f"invalid URL escape {gostrconv.quote(s[i:i + 3])}")
            value = int(s[i + 1:i + 3], 16)
            if mode == _HOST and value < 0x80 and s[i:i + 3] != b"%25":
                # a host may escape only non-ASCII bytes (RFC 3986), and % itself (RFC 6874)
                raise _Invalid(f"invalid URL escape {gostrconv.quote(s[i:i + 3])}")
            if (mode == _ZONE and s[i:i + 3] != b"%25" and value != 0x20
                    and value not in _HOST_OK):
                raise _Invalid(f"invalid URL escape {gostrconv.quote(s[i:i + 3])}")
            i += 3
            continue
        if mode in (_HOST, _ZONE) and c < 0x80 and c not in _HOST_OK:
            raise _Invalid(f"invalid character {gostrconv.quote(s[i:i + 1])} in host name")
        i += 1
    if b"%" not in s and not (mode == _QUERY and b"+" in s):
        return s
    out = bytearray()
    i = 0
    while i < n:
        c = s[i]
        if c == 0x25:
            out.append(int(s[i + 1:i + 3], 16))
            i += 3
            continue
        out.append(0x20 if c == 0x2B and mode == _QUERY else c)
        i += 1
    return bytes(out)


__all__ = ["URL", "URLError", "get_scheme", "parse", "parse_request_uri"]
