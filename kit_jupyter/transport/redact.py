"""Secrets out of every text the transports let go: error lines, warnings, retry reasons.

Texts from the outside (an exception from botocore or urllib3, a registry's error body, a URL a
user configured) can carry what must never be shown:

* a password in a URL's userinfo (``http://user:secret@host`` as ``S3_API_ENDPOINT``);
* the signature, credential and token of a presigned URL (``?X-Amz-Signature=…``: anyone with
  the URL can fetch the object until it expires), or an Azure/GCS equivalent;
* an ``Authorization: Bearer …`` / ``Basic …`` value, or a bare JWT (registry tokens) that a
  registry echoed into an error message;
* and, by value, the secrets the caller knows (an S3 secret key, a registry password, the
  tokens handed out so far).

:func:`redact` replaces each with ``***`` and keeps the rest readable (host, path, user name,
the non-secret query parameters).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
MIN_SECRET = 4  # shorter "secrets" would mask random letters of the message, not a secret

# scheme://userinfo@ -- the password part, or a lone token, never the host
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^\s/@?#]+)@")
# query parameters whose values authorise a request (presigned S3/GCS URLs, Azure SAS, tokens)
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;](?:[\w.-]*(?:signature|credential|token|secret|password|passwd|"
    r"accesskey|access_key|apikey|api_key|session)[\w.-]*|sig|code|key)=)"
    r"(?P<value>[^&#\s\"'<>]*)", re.IGNORECASE)
# a credential looks like one: 8+ characters with a digit or a base64/JWT punctuation mark (not
# "Basic authentication")
_AUTH_HEADER = re.compile(r"\b(?P<kind>Bearer|Basic)\s+"
                          r"(?P<value>(?=[A-Za-z.]*[0-9_~+/=-])[A-Za-z0-9._~+/=-]{8,})")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")


def _userinfo(m: re.Match[str]) -> str:
    user, sep, _password = m.group("info").partition(":")
    return f"{m.group('scheme')}{user}:{MASK}@" if sep else f"{m.group('scheme')}{MASK}@"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with URL passwords, presigned-URL signatures, tokens and the given ``secrets``
    replaced by ``***``."""
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len,
                         reverse=True):
        text = text.replace(secret, MASK)
    text = _USERINFO.sub(_userinfo, text)
    text = _SECRET_PARAM.sub(lambda m: m.group("name") + MASK, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group('kind')} {MASK}", text)
    return _JWT.sub(MASK, text)
