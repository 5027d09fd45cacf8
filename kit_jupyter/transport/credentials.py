"""Registry credentials where kit keeps them, with Docker's configuration as the fallback.

kit stores logins in ``$KITOPS_HOME/credentials.json`` (Docker's ``config.json`` format, written by
oras-go's file store) and, for reading only, falls back to Docker's own configuration, including
``credsStore`` / ``credHelpers``. We keep exactly that order so a ``kit login`` is seen by
kit_jupyter and the other way round. Credential helpers are run here too, by the protocol Docker
documents (``docker-credential-<name> get``, the server on stdin, ``{"Username", "Secret"}`` JSON
on stdout), with a time limit.

Passwords never leave this module in text form: :class:`Credentials` masks them in ``repr``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit_jupyter._fs import write_bytes_atomic
from kit_jupyter.errors import AuthError
from kit_jupyter.gocompat.gojson import unmarshal
from kit_jupyter.oci.store import resolve_home as storage_resolve_home

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    """A username and password (or token) for one registry; the secret is never shown."""

    username: str
    password: str = field(repr=False)
    source: str = ""

    def __repr__(self) -> str:
        where = f", source={self.source!r}" if self.source else ""
        return f"Credentials(username={self.username!r}, password='***'{where})"

    def basic(self) -> str:
        """The base64 ``user:password`` value of an HTTP Basic header / config.json ``auth``."""
        raw = f"{self.username}:{self.password}".encode()
        return base64.b64encode(raw).decode("ascii")


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """kit's storage root (spec section 9), the same one local storage uses."""
    return Path(storage_resolve_home(home))


def credentials_path(home: str | os.PathLike[str] | None = None) -> Path:
    return resolve_home(home) / "credentials.json"


def docker_config_path() -> Path:
    """Docker's config file, honouring ``DOCKER_CONFIG`` (read at call time)."""
    env = os.environ.get("DOCKER_CONFIG")
    if env:
        return Path(env) / "config.json"
    return Path.home() / ".docker" / "config.json"


def server_keys(registry: str) -> Iterator[str]:
    """The config keys that may hold credentials for ``registry`` (localhost and 127.0.0.1 are
    interchangeable, as oras-py and Docker treat them; Docker Hub lives under its legacy
    URL)."""
    seen: set[str] = set()
    candidates = [registry]
    if registry in _DOCKER_HUB_NAMES:
        candidates = [DOCKER_HUB_KEY, *_DOCKER_HUB_NAMES]
    for name in list(candidates):
        if "localhost" in name:
            candidates.append(name.replace("localhost", "127.0.0.1"))
        elif "127.0.0.1" in name:
            candidates.append(name.replace("127.0.0.1", "localhost"))
    for name in candidates:
        for key in (name, f"https://{name}", f"http://{name}"):
            if key not in seen:
                seen.add(key)
                yield key


def _store_key(registry: str) -> str:
    return DOCKER_HUB_KEY if registry in _DOCKER_HUB_NAMES else registry


def _read_config(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; {} when there is none. An unreadable file is an AuthError
    naming the file and what is wrong, never its content (it holds secrets)."""
    try:
        # unmarshal: nesting too deep is a ValueError too, not a RecursionError
        data = unmarshal(path.read_text(encoding="utf-8") or "{}")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise AuthError(f"cannot read credentials file {path}: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise AuthError(f"cannot read credentials file {path}: not a JSON object")
    return data


def _decode_auth(value: str, source: str) -> Credentials | None:
    try:
        raw = base64.b64decode(value).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = raw.partition(":")
    if not sep:
        return None
    return Credentials(user, password, source)


def _from_auths(config: dict[str, Any], registry: str, source: str) -> Credentials | None:
    """The inline credentials for ``registry``. A value of the wrong JSON type (a hand edit,
    another tool) is skipped like a missing one -- as ``credHelpers`` are -- instead of a
    TypeError or AttributeError in the middle of a push."""
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    for key in server_keys(registry):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        auth, user, password, token = (entry.get(k) for k in ("auth", "username", "password",
                                                             "identitytoken"))
        if isinstance(auth, str) and auth:
            creds = _decode_auth(auth, source)
            if creds:
                return creds
        if isinstance(user, str) and user and isinstance(password, str) and password:
            return Credentials(user, password, source)
        if isinstance(token, str) and token:
            # oras-go stores a refresh token with an empty user; Docker uses "<token>".
            return Credentials("<token>", token, source)
    return None


HELPER_TIMEOUT = 30.0  # a helper may ask the desktop keyring, which can prompt the user


def run_helper(name: str, server: str, source: str) -> Credentials | None:
    """``docker-credential-<name> get`` for ``server``: None when the helper is not installed
    or has nothing stored (it then exits non-zero, e.g. "credentials not found in native
    keychain"). Neither its output nor its error text is ever shown: both may hold the secret."""
    binary = f"docker-credential-{name}"
    try:
        proc = subprocess.run([binary, "get"], input=server.encode("utf-8"),
                              capture_output=True, timeout=HELPER_TIMEOUT, check=False)
    except FileNotFoundError:
        return None
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {binary} did not answer within "
                        f"{HELPER_TIMEOUT:g}s") from None
    except OSError as exc:
        raise AuthError(f"cannot run credential helper {binary}: {exc.strerror}") from None
    if proc.returncode != 0:
        return None
    try:
        payload = unmarshal(proc.stdout)   # too deep is a ValueError too
        user, secret = payload["Username"], payload["Secret"]
    except (ValueError, KeyError, TypeError):
        raise AuthError(f"credential helper {binary} returned an unreadable answer for "
                        f"{server}") from None
    if not isinstance(user, str) or not isinstance(secret, str) or not secret:
        return None
    return Credentials(user, secret, f"{source} ({binary})")


def _from_docker_helpers(config: dict[str, Any], registry: str, source: str) -> Credentials | None:
    """``credHelpers`` (per registry) first, then ``credsStore``, for each key the registry may
    be stored under."""
    helpers = config.get("credHelpers") or {}
    store_name = config.get("credsStore")
    if not isinstance(helpers, dict) or (not helpers and not store_name):
        return None
    for key in server_keys(registry):
        for name in (helpers.get(key), store_name):
            if isinstance(name, str) and name:
                creds = run_helper(name, key, source)
                if creds is not None:
                    return creds
    return None


def lookup(registry: str, *, home: str | os.PathLike[str] | None = None) -> Credentials | None:
    """Credentials for ``registry``: kit's ``credentials.json`` first, then Docker's config
    (inline ``auths``, then ``credHelpers`` / ``credsStore``). None when nothing is stored."""
    kit_path = credentials_path(home)
    kit_cfg = _read_config(kit_path)
    creds = _from_auths(kit_cfg, registry, str(kit_path))
    if creds is None:
        creds = _from_docker_helpers(kit_cfg, registry, str(kit_path))
    if creds is not None:
        return creds
    docker_path = docker_config_path()
    docker_cfg = _read_config(docker_path)
    return (_from_auths(docker_cfg, registry, str(docker_path))
            or _from_docker_helpers(docker_cfg, registry, str(docker_path)))


def store(registry: str, creds: Credentials, *,
          home: str | os.PathLike[str] | None = None) -> Path:
    """Write ``creds`` into kit's credentials file (mode 0600, atomic), keeping other entries."""
    path = credentials_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = _read_config(path)
    auths = config.setdefault("auths", {})
    if not isinstance(auths, dict):
        auths = config["auths"] = {}
    auths[_store_key(registry)] = {"auth": creds.basic()}
    data = json.dumps(config, indent="\t").encode("utf-8")
    write_bytes_atomic(path, data, mode=0o600)
    return path


def remove(registry: str, *, home: str | os.PathLike[str] | None = None) -> bool:
    """Forget ``registry`` in kit's credentials file; True if something was removed. Docker's
    own config is never touched (kit's fallback store is read-only too)."""
    path = credentials_path(home)
    config = _read_config(path)
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return False
    removed = False
    for key in list(server_keys(registry)):
        if key in auths and key in (registry, _store_key(registry)):
            del auths[key]
            removed = True
    if removed:
        with contextlib.suppress(FileNotFoundError):
            write_bytes_atomic(path, json.dumps(config, indent="\t").encode("utf-8"), mode=0o600)
    return removed
