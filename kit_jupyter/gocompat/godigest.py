"""Content digests (``sha256:<hex>``) as opencontainers/go-digest defines them.

The one home for "is this a digest": a reference (``repo@sha256:…``), a descriptor and a storage
path all ask it. Two questions have two names, because their answers differ:

* :func:`is_digest` / :func:`digest_error` -- a digest go-digest accepts (sha256, sha384 or
  sha512, with its exact error texts, which kit prints for a bad reference);
* :func:`is_sha256_digest` -- a digest this package can verify and store: sha256 only, as kit
  writes them (a sha512 reference is well-formed but names nothing we could hold).
"""

from __future__ import annotations

import hashlib
import re

_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}
_ALGORITHM_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*")
_HEX_RE = re.compile(r"[a-f0-9]+")
_ENCODED_RE = re.compile(r"[a-zA-Z0-9=_-]+")
_SHA256_RE = re.compile(r"sha256:[a-f0-9]{64}")


def digest_error(s: str) -> str | None:
    """go-digest's ``Digest.Validate`` error text for ``s``, or None when ``s`` is valid."""
    i = s.find(":")
    if i <= 0 or i + 1 == len(s):
        return "invalid checksum digest format"
    algorithm, encoded = s[:i], s[i + 1:]
    if algorithm not in _HEX_LEN:
        if not _ALGORITHM_RE.fullmatch(algorithm) or not _ENCODED_RE.fullmatch(encoded):
            return "invalid checksum digest format"
        return "unsupported digest algorithm"
    if len(encoded) != _HEX_LEN[algorithm]:
        return "invalid checksum digest length"
    if not _HEX_RE.fullmatch(encoded):
        return "invalid checksum digest format"
    return None


def is_digest(s: str) -> bool:
    """A digest go-digest accepts (any of its algorithms)."""
    return digest_error(s) is None


def is_sha256_digest(s: object) -> bool:
    """A sha256 digest: the only kind storage holds and transfers verify."""
    return isinstance(s, str) and _SHA256_RE.fullmatch(s) is not None


def sha256_digest(data: bytes | bytearray | memoryview) -> str:
    """go-digest's ``FromBytes``: ``sha256:`` and the lowercase hex of the bytes' hash."""
    return "sha256:" + hashlib.sha256(data).hexdigest()
