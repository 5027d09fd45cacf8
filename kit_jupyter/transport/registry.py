"""OCI registry transport over ``requests``: auth, bounded retries, verified streaming.

oras-py was the starting point and is no longer used: its ``Registry`` reads whole blobs into
memory, has no progress hook, never checks a downloaded digest, re-parses manifests (so their
digests change), keeps a pull-only token for a push (oras-py #187), has no request timeouts,
retries every failure for 131 s and costs 2-3.5 s to import; what we kept of it (the token
backend, the credential-helper runner) was reached through private attributes. This module
owns the request path, with the token protocol in :mod:`kit_jupyter.transport.bearer`:

* every request has a timeout, and a short bounded retry (connection errors and 429/5xx only);
  a refused connection, wrong credentials or a missing reference surfaces in seconds as one line;
* the auth scheme is chosen from the ``/v2/`` challenge (Basic: credentials sent up front;
  Bearer: a token per scope, fetched before the first request that needs it), so a streamed
  body is never sent into a 401 and replayed from EOF; credentials and tokens go only to the
  registry's own host, never to a host a blob download is redirected to;
* blobs are uploaded as a monolithic PUT streaming from the file, skipped when ``HEAD`` finds
  them, downloaded as verified streams (digest and size, checked at EOF), with per-layer progress;
  a large blob as concurrent ranged GETs written in place, one SHA-256 following the written
  prefix (:meth:`RegistryClient.pull_blob_ranged`), a broken range resumed from its last byte;
* manifests travel as the exact bytes (digest after push == local digest, checked against
  ``Docker-Content-Digest``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import threading
import urllib.parse
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from kit_jupyter._fs import SharedFile, Writeback, io_buffer
from kit_jupyter.errors import AuthError, NotFoundError, RegistryError
from kit_jupyter.gocompat.godigest import is_sha256_digest, sha256_digest
from kit_jupyter.gocompat.gojson import unmarshal
from kit_jupyter.kitfile.reference import parse_reference
from kit_jupyter.oci.manifest import Descriptor, Manifest
from kit_jupyter.oci.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
)
from kit_jupyter.transport import credentials as creds_mod
from kit_jupyter.transport import deadline
from kit_jupyter.transport.bearer import (
    TokenAuth,
    bearer_challenge,
    parse_challenges,
    request_scope,
)
from kit_jupyter.transport.credentials import Credentials
from kit_jupyter.transport.deadline import Deadline, Timeouts
from kit_jupyter.transport.redact import redact
from kit_jupyter.transport.s3_download import InOrderHasher, RangeJob, body_readinto

if TYPE_CHECKING:  # pragma: no cover
    import requests

    from kit_jupyter.reporting import Task

MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST))
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # oras-go's limit; a manifest is never streamed to disk
CHUNK = 1024 * 1024
RANGE_STREAMS = 4  # concurrent ranged GETs of one large blob (pull_blob_ranged)
RANGE_MIN = 64 * CHUNK  # below this a blob is one GET: an extra request would not pay
RANGE_SIZE = 64 * CHUNK  # the largest range one GET asks for
RANGE_ATTEMPTS = 3  # tries in a row without a byte of progress before a range fails
_RETRY_STATUS = frozenset({429, 502, 503, 504})
MAX_TOKEN_BYTES = 1 << 20  # a token answer is a few KiB of JSON
#: one page of a tags list (docker-registry sends every tag in one page unless asked for fewer:
#: 16 MiB is some 500,000 tags), and the pages one listing follows
MAX_TAGS_PAGE_BYTES = 16 * 1024 * 1024
MAX_TAG_PAGES = 10_000
#: connections a registry client keeps open for reuse, whatever --concurrency says
MAX_POOL = 256


@dataclass(frozen=True)
class RegistryOptions:
    """kit's network flags (spec section 13) plus where credentials live."""

    plain_http: bool = False
    tls_verify: bool | str = True
    concurrency: int = 5
    home: str | os.PathLike[str] | None = None
    # seconds a request may make no progress (deadline.py); None: KIT_JUPYTER_TIMEOUT or 30
    timeout: float | None = None

    @classmethod
    def coerce(cls, value: RegistryOptions | dict[str, Any] | None, **extra: Any
               ) -> RegistryOptions:
        if isinstance(value, RegistryOptions):
            base = value
        else:  # an unknown (misspelt) key is a TypeError, never silently dropped
            base = cls(**(value or {}))
        extra = {k: v for k, v in extra.items() if v is not None}
        if not extra:
            return base
        return cls(**{**base.__dict__, **extra})


def registry_host(registry: str) -> str:
    """The host that serves the API (Docker Hub's name differs from its API host)."""
    return "registry-1.docker.io" if registry in ("docker.io", "index.docker.io") else registry


def _make_session(pool_size: int) -> requests.Session:
    """A requests session with 1 MiB send blocks (urllib3's 16 KiB default costs a Python call
    per 16 KiB of a 1 GiB upload), no cookies, and ``Accept-Encoding: identity`` instead of
    requests' ``gzip, deflate``: a blob's bytes are what its digest names, and the blob readers
    take the body as it comes off the socket, so a proxy that compressed one in transit would
    only make it fail its digest. Every request passes its own timeout."""
    import requests
    from requests.adapters import HTTPAdapter

    class _Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["blocksize"] = CHUNK
            super().init_poolmanager(*args, **kwargs)

    from http.cookiejar import DefaultCookiePolicy

    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    session.headers["Accept-Encoding"] = "identity"
    # urllib3 fills a pool with maxsize placeholders when it makes one: --concurrency 10**12
    # must not mean a list of 10**12 (connections beyond the pool are opened, used and closed)
    adapter = _Adapter(pool_connections=4, pool_maxsize=min(max(pool_size, 10), MAX_POOL))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _error_detail(resp: requests.Response, secrets: Iterable[str | None] = ()) -> str:
    """The first registry error message of a response, on one line and redacted (a registry
    may echo a token or a presigned URL into it); never request headers or bodies."""
    try:
        data = json.loads(next(resp.iter_content(65536), b"") or b"{}")
        errors = data.get("errors") or []
        if errors and isinstance(errors[0], dict):
            code = errors[0].get("code", "")
            msg = errors[0].get("message", "")
            text = f"{code}: {msg}".strip(": ") if code or msg else ""
            return redact(" ".join(str(text).split())[:300], secrets)
    except Exception:  # not the registry's JSON error, or a broken body: the status says enough
        pass
    return ""


def _one_line(exc: BaseException) -> str:
    """A short reason for a transport failure, without URLs' query strings or headers."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out",
                   "Temporary failure in name resolution", "No route to host",
                   "CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER", "Connection reset",
                   "Remote end closed connection"):
        if marker in text:
            return marker.lower() if marker[0].isupper() and not marker.isupper() else marker
    return type(exc).__name__


class DeleteUnsupported(RegistryError):
    """The registry answered 405 to a DELETE: deleting is switched off there."""


class Cancelled(RegistryError):
    """The transfer was stopped (an interrupt or a failed sibling transfer)."""


class _ProgressReader:
    """A file body for ``requests``: read() advances the task; ``__len__`` gives the length so
    the PUT carries Content-Length and is streamed, not buffered."""

    def __init__(self, f: BinaryIO, size: int, task: Task | None,
                 cancelled: threading.Event | None = None) -> None:
        self._f = f
        self._size = size
        self._task = task
        self._cancelled = cancelled
        self.sent = 0

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        if self._cancelled is not None and self._cancelled.is_set():
            raise Cancelled("upload cancelled")
        data = self._f.read(CHUNK if n is None or n < 0 else n)
        if data:
            self.sent += len(data)
            if self._task is not None:
                self._task.advance(len(data))
        return data

    def close(self) -> None:
        self._f.close()


class _Fanout:
    """Hands every piece to each consumer in the consumer's own thread, in order, through a
    bounded queue (at most ``depth`` pieces waiting each: memory does not grow with the blob).

    The first exception a consumer raises is kept; :meth:`put` raises it in the producing
    thread, and the consumers drain (without calling anything) whatever is still queued, so
    the producer never blocks on a consumer that has stopped. :meth:`close` waits for every
    consumer to finish, then raises that exception."""

    def __init__(self, consumers: list[Callable[[bytes], Any]], depth: int = 8) -> None:
        self.error: BaseException | None = None
        self._queues: list[queue.Queue[bytes | None]] = []
        self._threads: list[threading.Thread] = []
        for fn in consumers:
            q: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
            t = threading.Thread(target=self._run, args=(fn, q), name="kit-pull", daemon=True)
            t.start()
            self._queues.append(q)
            self._threads.append(t)

    def _run(self, fn: Callable[[bytes], Any], q: queue.Queue[bytes | None]) -> None:
        while (item := q.get()) is not None:
            if self.error is None:
                try:
                    fn(item)
                except BaseException as exc:  # handed to the producer by put() / close()
                    if self.error is None:
                        self.error = exc

    def put(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        for q in self._queues:
            q.put(data)

    def close(self, reraise: bool = True) -> None:
        for q in self._queues:
            q.put(None)
        for t in self._threads:
            t.join()
        if reraise and self.error is not None:
            raise self.error


class VerifiedBlobStream(io.RawIOBase):
    """A downloaded blob as a file object, checked against its descriptor while it is read.

    Raises :class:`RegistryError` as soon as more bytes than ``size`` arrive, and at EOF if the
    size or the digest differ, so a consumer never finishes on tampered data unnoticed. When
    the consumer hashes the bytes anyway (a storage BlobWriter), ``external_digest`` supplies
    that digest at EOF instead of hashing twice: SHA-256 is the slowest step of a pull on CPUs
    without SHA extensions (about 200-400 MB/s here).
    """

    def __init__(self, resp: requests.Response, digest: str, size: int | None, where: str,
                 task: Task | None = None,
                 external_digest: Callable[[], str] | None = None,
                 cancelled: threading.Event | None = None,
                 timeouts: Timeouts | None = None) -> None:
        super().__init__()
        self._cancelled = cancelled
        self._timeouts = timeouts
        self._resp = resp
        self._raw = resp.raw
        self._digest = digest
        self._size = size
        self._where = where
        self._task = task
        algo, _, _ = digest.partition(":")
        if algo not in ("sha256", "sha512"):
            raise RegistryError(f"unsupported digest algorithm in {digest!r} ({where})")
        self._external = external_digest
        self._hash = None if external_digest else hashlib.new(algo)
        self._count = 0
        self._verified = False

    def readable(self) -> bool:
        return True

    def _next(self, n: int, hash_inline: bool = True) -> bytes:
        if self._cancelled is not None and self._cancelled.is_set():
            raise Cancelled(f"download of {self._digest} cancelled")
        try:
            data = self._raw.read(n, decode_content=False)
        except Exception as exc:  # urllib3 protocol/read errors → one clear line
            reason = _one_line(exc)
            if reason == "timed out" and self._timeouts is not None:
                reason = (f"no data for {self._timeouts.read:g}s; "
                          f"{self._timeouts.hint()}")
            raise RegistryError(f"download of {self._digest} from {self._where} failed: "
                                f"{reason}") from None
        if data:
            if self._hash is not None and hash_inline:
                self._hash.update(data)
            self._count += len(data)
            if self._task is not None:
                self._task.advance(len(data))
            if self._size is not None and self._count > self._size:
                raise RegistryError(f"blob {self._digest} from {self._where} is larger than "
                                    f"its descriptor size {self._size}")
        return data

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self._next(len(view))
        n = len(data)
        if n:
            view[:n] = data
        else:
            self._check()
        return n

    def _check(self) -> None:
        if self._verified:
            return
        if self._size is not None and self._count != self._size:
            raise RegistryError(f"blob {self._digest} from {self._where} is truncated: got "
                                f"{self._count} of {self._size} bytes")
        if self._hash is not None:
            actual = f"{self._hash.name}:{self._hash.hexdigest()}"
        else:
            actual = self._external()  # type: ignore[misc]
        if actual != self._digest:
            raise RegistryError(f"blob {self._digest} from {self._where} does not match its "
                                f"digest (got {actual})")
        self._verified = True

    def read_all_verified(self, sink: Callable[[bytes], Any]) -> int:
        """Copy the whole blob into ``sink`` in 1 MiB pieces, verifying at the end (after the
        last ``sink`` call has returned, so an external digest has seen every byte).

        The socket is read here while ``sink`` (the file write) and our own hashing each run in
        a helper thread fed through a small bounded queue (:class:`_Fanout`): receiving,
        writing and hashing overlap instead of adding up (each releases the GIL). Measured on a
        1 GiB pull, reading and writing in one thread took about as long each, one after the
        other. A failing ``sink`` stops the download at the next piece.
        """
        consumers = [sink] if self._hash is None else [sink, self._hash.update]
        fanout = _Fanout(consumers)
        try:
            while data := self._next(CHUNK, hash_inline=False):
                fanout.put(data)
        except BaseException:
            fanout.close(reraise=False)
            raise
        fanout.close()
        self._check()
        return self._count

    def close(self) -> None:
        if not self.closed:
            self._resp.close()
        super().close()


class RegistryClient:
    """One registry host: auth discovery, bounded retries, streaming verified transfers.

    Thread-safe for parallel layer transfers (one ``requests`` session with a pool as large as
    ``concurrency``; token refreshes are serialised).
    """

    def __init__(self, registry: str, *, plain_http: bool = False,
                 tls_verify: bool | str = True,
                 credentials: Credentials | tuple[str, str] | None = None,
                 concurrency: int = 5, timeouts: Timeouts | None = None,
                 home: str | os.PathLike[str] | None = None,
                 lookup_credentials: bool = True,
                 warn: Callable[[str], Any] | None = None) -> None:
        self.registry = registry
        self.host = registry_host(registry)
        self.plain_http = plain_http
        self.tls_verify = tls_verify
        self.concurrency = max(1, int(concurrency))
        self.base_url = f"{'http' if plain_http else 'https'}://{self.host}"
        # read when the command starts, so KIT_JUPYTER_TIMEOUT set in a notebook applies
        self.timeouts = timeouts or Timeouts.from_env()
        self._home = home
        if isinstance(credentials, tuple):  # (username, password) is accepted too

            credentials = Credentials(*credentials)
        self._credentials = credentials
        self._lookup = lookup_credentials and credentials is None
        # One session with timeouts and big send blocks, for registry and token requests.
        self.session = _make_session(self.concurrency)
        if tls_verify is False:  # asked for explicitly (--tls-verify=false): no warning per call

            from urllib3.exceptions import InsecureRequestWarning

            warnings.filterwarnings("ignore", category=InsecureRequestWarning)
        self._auth: TokenAuth | None = None
        self._scheme: str | None = None  # "none" | "basic" | "bearer"
        self._ping_error: RegistryError | None = None
        self._basic_header: str | None = None
        self._lock = threading.RLock()
        self.cancelled = threading.Event()  # set() stops running transfers at the next MiB
        self.warnings: list[str] = []  # what a result should say (an unverifiable manifest)
        self._warn_to = warn

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self.registry!r}, plain_http={self.plain_http})"

    # -- credentials and auth ----------------------------------------------------------------
    def _creds(self) -> Credentials | None:
        if self._credentials is None and self._lookup:

            self._credentials = creds_mod.lookup(self.registry, home=self._home)
            self._lookup = False
        return self._credentials

    def _send(self, method: str, url: str, headers: dict[str, str], data: Any = None,
              stream: bool = False, *, timeout: tuple[float, float]) -> requests.Response:
        """One HTTP exchange; transport errors become one-line :class:`RegistryError`."""
        import requests

        try:
            return self.session.request(method, url, headers=headers, data=data, stream=stream,
                                        verify=self.tls_verify, timeout=timeout,
                                        allow_redirects=method in ("GET", "HEAD"))
        except requests.exceptions.SSLError as exc:
            raise RegistryError(
                f"TLS error talking to {self.registry}: {_one_line(exc)} (use --plain-http for "
                "an HTTP registry, or --tls-verify=false)") from None
        except ValueError as exc:
            # a URL the registry named (a token realm, an upload Location, a redirect) that no
            # request can go to, such as https://a..b/, or a header value no request can carry:
            # requests' InvalidURL, InvalidSchema, MissingSchema and InvalidHeader, urllib3's
            # LocationParseError, UnicodeEncodeError are all ValueErrors. Said without the URL,
            # which may be long or carry a signature
            raise RegistryError(f"talking to {self.registry}: it named a URL or header no "
                                f"request can carry ({type(exc).__name__})") from None
        except requests.exceptions.ConnectTimeout:
            raise _Transient(f"could not connect to registry {self.registry} within "
                             f"{timeout[0]:g}s", stalled=True) from None
        except requests.exceptions.Timeout:
            raise _Transient(f"registry {self.registry} did not respond within "
                             f"{timeout[1]:g}s", stalled=True) from None
        except requests.exceptions.ConnectionError as exc:
            reason = _one_line(exc)
            if reason == "timed out":  # a send that blocked: the server stopped reading
                raise _Transient(f"registry {self.registry} stopped responding (nothing "
                                 f"sent or received for {timeout[0]:g}s)", stalled=True) from None
            raise _Transient(f"could not connect to registry {self.registry}: "
                             f"{reason}") from None

    def ping(self) -> None:
        """GET /v2/ and set up auth from its challenge; with credentials, verifies them."""
        with self._lock:
            self._scheme = None
            self._ping_error = None
            self._ping_locked()

    def _ensure_auth(self) -> None:
        """Ping once per client; parallel transfers waiting on a failed ping get its error
        instead of each pinging (and timing out) again."""
        if self._scheme is None:
            with self._lock:
                if self._ping_error is not None:
                    raise self._ping_error
                if self._scheme is None:
                    try:
                        self._ping_locked()
                    except RegistryError as exc:
                        self._ping_error = exc
                        raise

    def _ping_locked(self) -> None:
        url = f"{self.base_url}/v2/"
        resp = self._with_retries(lambda t: self._send("GET", url, {}, timeout=t))
        resp.close()
        if resp.status_code == 200:
            self._scheme = "none"
            return
        if resp.status_code == 404:
            raise RegistryError(f"{self.registry} is not an OCI registry (GET /v2/ returned 404)")
        if resp.status_code != 401:
            raise RegistryError(f"registry {self.registry} answered GET /v2/ with "
                                f"{resp.status_code} {resp.reason}")
        challenge_header = resp.headers.get("Www-Authenticate", "")
        challenges = parse_challenges(challenge_header)
        schemes = [c.scheme for c in challenges]
        scheme = "bearer" if "bearer" in schemes else (schemes[0] if schemes else "")
        creds = self._creds()
        if scheme == "basic":
            if creds is None:
                raise AuthError(f"registry {self.registry} requires authentication: "
                                f"run kit login {self.registry}")
            header = "Basic " + creds.basic()
            check = self._with_retries(
                lambda t: self._send("GET", url, {"Authorization": header}, timeout=t))
            check.close()
            if check.status_code in (401, 403):
                raise AuthError(f"authentication to {self.registry} failed: wrong username or "
                                "password")
            self._basic_header = header
            self._scheme = "basic"
            return
        if scheme == "bearer":
            challenge = bearer_challenge(challenge_header)
            assert challenge is not None
            auth = TokenAuth(challenge, creds.basic() if creds else None, self._fetch_token,
                             allow_http=self.plain_http, registry=self.registry)
            # A token for no particular repository proves the credentials (the token service
            # refuses wrong ones); /v2/ must then accept it.
            token = auth.header(frozenset())
            check = self._with_retries(lambda t: self._send("GET", url, token, timeout=t))
            check.close()
            if check.status_code in (401, 403):
                raise AuthError(f"authentication to {self.registry} failed: wrong username or "
                                "password")
            self._auth = auth
            self._scheme = "bearer"
            return
        raise AuthError(f"registry {self.registry} asks for unsupported authentication "
                        f"{scheme or '(none given)'}")

    def _fetch_token(self, url: str, params: list[tuple[str, str]], headers: dict[str, str]
                     ) -> tuple[int, bytes]:
        """One token request for :class:`TokenAuth` (same session, timeouts and retries)."""
        full = f"{url}{'&' if urllib.parse.urlsplit(url).query else '?'}" \
               f"{urllib.parse.urlencode(params)}"
        resp = self._with_retries(
            lambda t: self._send("GET", full, headers, stream=True, timeout=t))
        try:
            body = resp.raw.read(MAX_TOKEN_BYTES, decode_content=True) \
                if resp.status_code == 200 else b""
        except Exception as exc:  # noqa: BLE001 - a broken token answer is one line
            raise AuthError(f"could not get a token for {self.registry}: "
                            f"{_one_line(exc)}") from None
        finally:
            resp.close()
        return resp.status_code, body

    def _own(self, url: str) -> str | None:
        """The path of ``url`` when it is on this registry's host; None for any other host
        (a redirect target: credentials and tokens are never sent there)."""
        if url == self.base_url or url.startswith(self.base_url + "/"):
            return urllib.parse.urlsplit(url).path
        return None

    def _auth_headers(self, method: str, url: str) -> dict[str, str]:
        path = self._own(url)
        if path is None:
            return {}
        if self._scheme == "basic" and self._basic_header:
            return {"Authorization": self._basic_header}
        if self._scheme == "bearer" and self._auth is not None:
            return self._auth.header(request_scope(method, path))
        return {}

    def _with_retries(self, fn: Callable[[tuple[float, float]], requests.Response],
                      retry: bool = True, patient: bool = False) -> requests.Response:
        """``fn(timeout)`` under the deadline policy (:mod:`.deadline`): short bounded retries
        for transport failures and 429/5xx gateway answers, each attempt's (connect, read)
        timeout cut to the time left. ``patient``: one read may take the whole limit (the
        answer to an upload, which a registry may give only after moving the blob)."""
        t = self.timeouts

        def attempt(left: Deadline) -> requests.Response:
            remaining = max(left.remaining(), 0.001)
            read = remaining if patient else min(t.read, remaining)
            resp = fn((min(t.connect, remaining), read))
            if retry and resp.status_code in _RETRY_STATUS:
                raise _RetryStatus(resp)
            return resp

        def transient(exc: BaseException) -> bool:
            return retry and isinstance(exc, (_Transient, _RetryStatus))

        try:
            return deadline.retry(attempt, transient=transient, timeouts=t,
                                  attempt_time=t.total if patient else None)
        except _RetryStatus as exc:  # still overloaded: the caller words the status
            return exc.resp
        except _Transient as exc:
            hint = f"; {t.hint()}" if exc.stalled else ""
            raise RegistryError(f"{exc}{hint}") from None

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                body: Callable[[], Any] | None = None, stream: bool = False,
                retry: bool = True, patient: bool = False) -> requests.Response:
        """An authenticated request. ``body`` is a factory so an auth replay reopens a stream
        instead of sending a consumed one; ``patient`` see :meth:`_with_retries`."""
        self._ensure_auth()
        if not url.startswith(("http://", "https://")):
            url = self.base_url + url

        def attempt(timeout: tuple[float, float]) -> requests.Response:
            hdrs = {**(headers or {}), **self._auth_headers(method, url)}
            resp = self._send(method, url, hdrs, body() if body else None, stream,
                              timeout=timeout)
            path = self._own(url)
            if (resp.status_code in (401, 403) and self._scheme == "bearer"
                    and self._auth is not None and path is not None):
                # The token was refused (expired, or the registry wants more scope than we
                # asked for): one fresh token for what the challenge names, one replay.
                challenge = resp.headers.get("Www-Authenticate", "")
                resp.close()
                hdrs.update(self._auth.renew(request_scope(method, path), challenge))
                resp = self._send(method, url, hdrs, body() if body else None, stream,
                                  timeout=timeout)
            return resp

        return self._with_retries(attempt, retry=retry, patient=patient)

    def secrets(self) -> list[str]:
        """What must never appear in a message: the password, its Basic form, the tokens."""
        creds = self._credentials
        out = [self._basic_header or ""]
        if creds is not None:
            out += [creds.password, creds.basic()]
        if self._auth is not None:
            out += self._auth.secrets()
        return [s for s in out if s]

    def _raise_for(self, resp: requests.Response, what: str) -> None:
        detail = _error_detail(resp, self.secrets())
        status = redact(f"{resp.status_code} {resp.reason}", self.secrets())
        suffix = f" ({detail})" if detail else ""
        resp.close()
        if resp.status_code in (401, 403):
            raise AuthError(
                f"{what}: {self.registry} returned {status}{suffix}; check your credentials "
                f"(kit login {self.registry})" if resp.status_code == 401 else
                f"{what}: access denied by {self.registry} ({status}){suffix}",
                status=resp.status_code, reason=resp.reason)
        if resp.status_code == 404:
            raise NotFoundError(f"{what}: not found on {self.registry}{suffix}")
        raise RegistryError(f"{what}: {self.registry} returned {status}{suffix}")

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        if self._warn_to is not None:
            self._warn_to(message)

    # -- blobs -------------------------------------------------------------------------------
    def blob_exists(self, repo: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        resp.close()
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        self._raise_for(resp, f"checking blob {digest} in {self.registry}/{repo}")
        return False  # pragma: no cover

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> str:
        """Ask the registry to link a blob it holds in ``from_repo`` into ``repo`` (a
        cross-repository mount: no bytes sent). Returns ``"mounted"`` (201); ``"absent"`` (202:
        the registry opened a plain upload session instead -- cancelled here -- because
        ``from_repo`` does not have the blob); ``"denied"`` (401/403/404: ``from_repo`` cannot
        be read with these credentials). Either refusal means: upload it."""
        query = urllib.parse.urlencode({"mount": digest, "from": from_repo})
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/?{query}",
                            headers={"Content-Length": "0"})
        resp.close()
        if resp.status_code == 201:
            got = resp.headers.get("Docker-Content-Digest")
            if got and got != digest:
                raise RegistryError(f"registry {self.registry} mounted {digest} as {got}")
            return "mounted"
        if resp.status_code == 202:
            location = resp.headers.get("Location")
            if location:  # the upload session it opened instead: not used, so cancel it
                url = urllib.parse.urljoin(self.base_url + "/", location)
                try:
                    self.request("DELETE", url, retry=False).close()
                except RegistryError:
                    pass  # the registry purges abandoned sessions itself
            return "absent"
        if resp.status_code in (401, 403, 404):
            return "denied"
        self._raise_for(resp, f"mounting {digest} from {from_repo} into "
                              f"{self.registry}/{repo}")
        return "denied"  # pragma: no cover

    def push_blob(self, repo: str, descriptor: Descriptor,
                  open_fn: Callable[[], BinaryIO], task: Task | None = None) -> None:
        """Monolithic upload streamed from ``open_fn()`` (POST, then PUT ?digest=). A failed
        transfer is retried once from a fresh upload session."""
        digest, size = descriptor.digest, descriptor.size
        where = f"{self.registry}/{repo}"
        readers: list[_ProgressReader] = []

        def body() -> _ProgressReader:
            for r in readers:  # an auth replay: give back what was counted, start over
                if task is not None and r.sent:
                    task.advance(-r.sent)
                r.sent = 0
                r.close()
            readers.clear()
            reader = _ProgressReader(open_fn(), size, task, self.cancelled)
            readers.append(reader)
            return reader

        last: Exception | None = None
        for attempt in range(2):
            start = self.request("POST", f"/v2/{repo}/blobs/uploads/",
                                 headers={"Content-Length": "0"})
            if start.status_code != 202 or not start.headers.get("Location"):
                self._raise_for(start, f"starting upload of {digest} to {where}")
            start.close()
            location = urllib.parse.urljoin(self.base_url + "/", start.headers["Location"])
            sep = "&" if urllib.parse.urlparse(location).query else "?"
            put_url = f"{location}{sep}digest={urllib.parse.quote(digest)}"
            try:
                resp = self.request(
                    "PUT", put_url, body=body, retry=False, patient=True,
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Length": str(size)})
            except RegistryError as exc:  # transport failure mid-body: new session, once
                last = exc
                if attempt == 0 and not isinstance(exc, (AuthError, Cancelled)):
                    continue
                raise
            finally:
                for r in readers:
                    r.close()
            if resp.status_code == 400 and "DIGEST_INVALID" in _error_detail(resp):
                resp.close()
                raise RegistryError(f"blob {digest} is corrupt: {self.registry} computed a "
                                    "different digest for the bytes sent")
            if resp.status_code not in (201, 204):
                self._raise_for(resp, f"uploading {digest} to {where}")
            resp.close()
            got = resp.headers.get("Docker-Content-Digest")
            if got and got != digest:
                raise RegistryError(f"registry {self.registry} stored {digest} as {got}")
            return
        raise last or RegistryError(f"uploading {digest} to {where} failed")  # pragma: no cover

    def open_blob(self, repo: str, descriptor: Descriptor, task: Task | None = None,
                  external_digest: Callable[[], str] | None = None) -> VerifiedBlobStream:
        digest = descriptor.digest
        where = f"{self.registry}/{repo}"
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", stream=True)
        if resp.status_code != 200:
            self._raise_for(resp, f"blob {digest} of {where}")
        return VerifiedBlobStream(resp, digest, descriptor.size, where, task, external_digest,
                                  self.cancelled, self.timeouts)

    def pull_blob(self, repo: str, descriptor: Descriptor, writer: Any,
                  task: Task | None = None) -> int:
        """Stream a blob into ``writer.write`` and verify it; raises before the caller commits.
        A writer that hashes what it is given (``writer.digest``, like storage's BlobWriter)
        is trusted for the digest, so each byte is hashed once."""
        external = None
        if isinstance(getattr(type(writer), "digest", None), property):
            def external() -> str:
                return str(writer.digest)
        with self.open_blob(repo, descriptor, task, external) as stream:
            return stream.read_all_verified(writer.write)

    def pull_blob_ranged(self, repo: str, descriptor: Descriptor, fd: int,
                         task: Task | None = None, streams: int | None = None) -> bool:
        """Download a large blob into ``fd`` (opened read-write, empty) as ranged GETs of at
        most ``RANGE_SIZE``, ``streams`` at a time (default ``RANGE_STREAMS``, never more than
        the client's ``concurrency``: ``--concurrency 1`` means one connection) and taken in
        order, verified like :meth:`pull_blob`; False (nothing written, nothing counted) when
        the registry does not answer a range with 206, or when one stream is all there may
        be, for the caller to stream it instead.

        One stream of docker-registry delivered 0.35-0.7 GB/s on a 2-core test machine, below
        one core's SHA-256 with SHA extensions (1.3 GB/s); several ranges fill the link and one
        SHA-256 follows the written prefix in order,
        hashing it where it lies in the page cache (:class:`~kit_jupyter.transport.s3_download.
        InOrderHasher`, the remote-dataset download's in-order hasher, given a SHA-256): the blob
        arrives at the speed of the slower of the network and one core's SHA-256, and what is
        verified is what was written. (A durable pull still waits for the disk: its blob is
        fsynced before the rename, and at ~350 MB/s of durable writes that, not the network or
        the hash, set the floor of a 1 GiB pull there.) A stream that breaks off is resumed
        from the last byte it wrote (at most ``RANGE_ATTEMPTS`` tries in a row without
        progress); the first failure stops the others at their next MiB and is raised. Each
        stream reads the socket into one reused buffer
        (:func:`~kit_jupyter.transport.s3_download.body_readinto`)."""
        digest = descriptor.digest
        where = f"{self.registry}/{repo}"
        algo, _, _ = digest.partition(":")
        size = descriptor.size
        streams = min(RANGE_STREAMS if streams is None else streams, self.concurrency)
        if algo not in ("sha256", "sha512") or size < 2 * CHUNK or streams < 2:
            return False
        # ranges of whole MiB, at most RANGE_SIZE and few enough that every stream gets one,
        # taken in order by the streams: the hashed prefix keeps up with them instead of
        # waiting for a first quarter while the others are written ahead
        step = min(RANGE_SIZE, -(-size // streams))
        step += -step % CHUNK
        jobs = [RangeJob(s, min(s + step, size)) for s in range(0, size, step)]
        first = self._open_range(repo, digest, jobs[0].start, jobs[0].end, size, where)
        if first is None:
            return False
        os.ftruncate(fd, size)
        cancel = threading.Event()
        hasher = InOrderHasher(fd, jobs, hashlib.new(algo), cancel)
        hasher.start()
        pool = ThreadPoolExecutor(min(streams, len(jobs)), thread_name_prefix="kit-pull-range")
        try:
            shared = SharedFile(fd)  # the streams' writes, one at a time
            futures = [pool.submit(self._fetch_range, repo, digest, shared, job, i, size,
                                   where, hasher, task, cancel, first if i == 0 else None)
                       for i, job in enumerate(jobs)]
            first = None
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                for f in done:
                    if (exc := f.exception()) is not None:
                        raise exc
                hasher.check()
            hasher.wait()
        except BaseException:
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            hasher.stop()
            raise
        finally:
            if first is not None:
                first.close()
            pool.shutdown(wait=True)
        actual = f"{algo}:{hasher.md5.hexdigest()}"
        if actual != digest:
            raise RegistryError(f"blob {digest} from {where} does not match its digest "
                                f"(got {actual})")
        return True

    def _open_range(self, repo: str, digest: str, start: int, end: int, size: int,
                    where: str) -> requests.Response | None:
        """``GET`` bytes ``start``..``end - 1`` of a blob: the 206 answer, or None when the
        registry sent the whole blob (200: no range support)."""
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", stream=True,
                            headers={"Range": f"bytes={start}-{end - 1}"})
        if resp.status_code == 200:
            resp.close()
            return None
        if resp.status_code != 206:
            self._raise_for(resp, f"blob {digest} of {where}")
        sent = resp.headers.get("Content-Range", "")
        if sent.replace(" ", "") != f"bytes{start}-{end - 1}/{size}":
            resp.close()
            raise RegistryError(f"blob {digest} from {where}: asked for bytes {start}-{end - 1} "
                                f"of {size}, got {sent or 'no Content-Range'}")
        return resp

    def _fetch_range(self, repo: str, digest: str, out: SharedFile, job: RangeJob, index: int,
                     size: int, where: str, hasher: InOrderHasher, task: Task | None,
                     cancel: threading.Event, resp: requests.Response | None) -> None:
        pos = job.start
        writeback = Writeback(out.fd, pos)  # of this stream's range, a step at a time
        failures = 0
        view = io_buffer(min(CHUNK, job.end - pos))  # reused for every read
        while pos < job.end:
            progressed = False
            try:
                if resp is None:
                    resp = self._open_range(repo, digest, pos, job.end, size, where)
                    if resp is None:
                        raise RegistryError(f"blob {digest} from {where}: the registry stopped "
                                            "answering ranged requests")
                readinto = body_readinto(resp.raw)  # the socket straight into ``view``
                while pos < job.end:
                    if cancel.is_set() or self.cancelled.is_set():
                        raise Cancelled(f"download of {digest} cancelled")
                    try:
                        n = readinto(view[:min(len(view), job.end - pos)])
                    except OSError as exc:  # the socket's (a reset, a timeout): resumed
                        raise _Transient(_one_line(exc)) from None
                    if not n:
                        raise _Transient(f"stream ended at byte {pos}")
                    out.write_at(view[:n], pos)
                    pos += n
                    progressed = True
                    hasher.written(index, pos)
                    if task is not None:
                        task.advance(n)
                    writeback.wrote(pos, last=pos == job.end)
            except (RegistryError, OSError):
                raise
            except Exception as exc:  # a broken stream: resumed from ``pos``, bounded
                failures = 0 if progressed else failures + 1
                if failures >= RANGE_ATTEMPTS or cancel.is_set() or self.cancelled.is_set():
                    raise RegistryError(f"download of {digest} from {where} failed: "
                                        f"{_one_line(exc)}") from None
            finally:
                if resp is not None:
                    resp.close()
                    resp = None

    # -- manifests and tags ------------------------------------------------------------------
    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        """Raw manifest bytes, their media type and their (computed) digest, verified like a
        blob: against ``ref`` when it is a digest, else against the registry's
        ``Docker-Content-Digest``, and never more than 4 MiB (containerd's and oras' limit).

        A registry that sends no digest for a tag cannot be checked: that is said in
        :attr:`warnings`, and the digest computed here is the one later steps use."""
        by_digest = ":" in ref
        where = f"{self.registry}/{repo}{'@' if by_digest else ':'}{ref}"
        resp = self.request("GET", f"/v2/{repo}/manifests/{ref}",
                            headers={"Accept": MANIFEST_ACCEPT}, stream=True)
        if resp.status_code == 404:
            resp.close()
            raise NotFoundError(f"{where} not found")
        if resp.status_code != 200:
            self._raise_for(resp, f"fetching manifest {where}")
        data = _read_capped(resp, MAX_MANIFEST_BYTES, f"manifest {where}",
                            f"fetching manifest {where}")
        digest = sha256_digest(data)
        sent = (resp.headers.get("Docker-Content-Digest") or "").strip()
        expected = ref if by_digest else sent
        if expected:
            source = "its digest" if by_digest else \
                f"the digest the registry sent (Docker-Content-Digest {expected})"
            if not is_sha256_digest(expected):  # storage holds sha256 only, as kit does
                raise RegistryError(f"manifest {where}: cannot verify {source}: only sha256 "
                                    "digests are supported")
            if digest != expected:
                raise RegistryError(f"manifest {where} does not match {source}: got {digest}; "
                                    "refusing it")
        else:
            self._warn(f"registry {self.registry} sent no Docker-Content-Digest for {where}: "
                       f"the manifest could not be verified; using its computed digest "
                       f"{digest}")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if not media_type or media_type in ("application/json", "text/plain"):
            try:
                media_type = unmarshal(data).get("mediaType") or OCI_MANIFEST
            except (ValueError, AttributeError):
                media_type = OCI_MANIFEST
        return data, media_type, digest

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> str:
        """PUT the exact bytes; the registry must agree on their digest."""
        digest = sha256_digest(data)
        where = f"{self.registry}/{repo}"
        resp = self.request("PUT", f"/v2/{repo}/manifests/{ref}", body=lambda: data,
                            headers={"Content-Type": media_type})
        if resp.status_code not in (200, 201, 202):
            self._raise_for(resp, f"pushing manifest to {where}")
        resp.close()
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise RegistryError(f"registry {self.registry} computed manifest digest {got}, "
                                f"expected {digest}")
        return digest

    def delete_manifest(self, repo: str, ref: str) -> None:
        """``DELETE /v2/<repo>/manifests/<ref>``: a digest deletes the manifest (and so every tag
        on it); a tag untags, where the registry supports that (optional in the OCI distribution
        spec; Debian's docker-registry 2.8 answers 400). A registry that refuses deletes (405,
        e.g. docker-registry without ``storage.delete.enabled``) raises DeleteUnsupported."""
        where = f"{self.registry}/{repo}{'@' if ':' in ref else ':'}{ref}"
        resp = self.request("DELETE", f"/v2/{repo}/manifests/{ref}")
        if resp.status_code in (200, 202, 204):
            resp.close()
            return
        if resp.status_code == 405:
            resp.close()
            raise DeleteUnsupported(f"deleting {where}: {self.registry} does not allow deletes "
                                    "(405 Method Not Allowed)")
        self._raise_for(resp, f"deleting {where}")

    def list_tags(self, repo: str) -> list[str]:
        """All tags, following ``Link`` pagination. What a registry sends is checked as any
        answer from the outside is: each page is read up to ``MAX_TAGS_PAGE_BYTES`` and must be
        a tags list (``{"tags": [strings] or null}``); a ``next`` link must stay on this
        registry, must not lead back to a page already read, and at most ``MAX_TAG_PAGES`` are
        followed -- a broken or hostile registry gets one line, not a traceback or a listing
        that never ends."""
        what = f"listing tags of {self.registry}/{repo}"
        url: str | None = f"{self.base_url}/v2/{repo}/tags/list"
        seen: set[str] = set()
        tags: list[str] = []
        while url is not None:
            if url in seen:
                raise RegistryError(f"{what}: the registry's next page is one it sent before")
            if len(seen) >= MAX_TAG_PAGES:
                raise RegistryError(f"{what}: more than {MAX_TAG_PAGES} pages")
            seen.add(url)
            resp = self.request("GET", url, stream=True)
            if resp.status_code == 404:
                resp.close()
                raise NotFoundError(f"repository {self.registry}/{repo} not found")
            if resp.status_code != 200:
                self._raise_for(resp, what)
            data = _read_capped(resp, MAX_TAGS_PAGE_BYTES,
                                f"a tags page of {self.registry}/{repo}", what)
            tags.extend(_tags_page(data, what))
            link = resp.links.get("next", {}).get("url")
            url = urllib.parse.urljoin(url, link) if link else None
            if url is not None and self._own(url) is None:
                raise RegistryError(f"{what}: the registry's next page is on another host")
        return tags


def _read_capped(resp: requests.Response, limit: int, thing: str, what: str) -> bytes:
    """The body of ``resp`` (closed after), refused above ``limit`` bytes -- by its declared
    length before a byte is read, else after ``limit + 1`` -- so a registry cannot make a
    client hold more than ``limit``; a broken or stalled body is one line."""
    limit_text = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit} bytes"
    try:
        declared = int(resp.headers.get("Content-Length") or 0)
        if declared > limit:
            raise RegistryError(f"{thing} is larger than {limit_text} ({declared} bytes)")
        data: bytes = resp.raw.read(limit + 1, decode_content=True)
    except RegistryError:
        raise
    except Exception as exc:  # a broken or stalled body, a Content-Length that is no number
        raise RegistryError(f"{what} failed: {_one_line(exc)}") from None
    finally:
        resp.close()
    if len(data) > limit:
        raise RegistryError(f"{thing} is larger than {limit_text}")
    return data


def _tags_page(data: bytes, what: str) -> list[str]:
    """The tags of one page of ``/tags/list``: a JSON object whose ``tags`` is a list of
    strings, or null (a repository without tags); anything else is refused."""
    try:
        page = unmarshal(data)
    except ValueError:
        raise RegistryError(f"{what}: invalid JSON") from None
    tags = page.get("tags") if isinstance(page, dict) else ()
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RegistryError(f"{what}: the registry's answer is not a list of tags")
    return tags


class _Transient(Exception):
    """A transport failure worth a short retry (internal; callers see RegistryError).
    ``stalled``: the server said nothing in time (the message then tells how to wait longer)."""

    def __init__(self, message: str, *, stalled: bool = False) -> None:
        super().__init__(message)
        self.stalled = stalled


class _RetryStatus(Exception):
    """A 429/5xx answer, retried like a transport failure (internal)."""

    def __init__(self, resp: requests.Response) -> None:
        super().__init__(resp.status_code)
        self.resp = resp


def make_client(registry: str, options: RegistryOptions | dict[str, Any] | None = None,
                credentials: Credentials | None = None,
                warn: Callable[[str], Any] | None = None) -> RegistryClient:
    """A client configured by ``options``; ``warn`` receives what a result should say (e.g. a
    manifest the registry gave no digest for), as ``reporter.warning`` does."""
    opts = RegistryOptions.coerce(options)
    return RegistryClient(registry, plain_http=opts.plain_http, tls_verify=opts.tls_verify,
                          credentials=credentials, concurrency=opts.concurrency,
                          timeouts=None if opts.timeout is None else Timeouts(opts.timeout),
                          home=opts.home, warn=warn)


class RemoteSource:
    """A ModelKit in a registry as a BlobSource: unpack/inspect/info read from it directly,
    fetching only the blobs asked for, every one verified while it streams."""

    def __init__(self, reference: Any, options: RegistryOptions | dict[str, Any] | None = None,
                 *, client: RegistryClient | None = None,
                 warn: Callable[[str], Any] | None = None) -> None:
        if isinstance(reference, str):

            reference = parse_reference(reference)
        self.reference = reference
        self.options = RegistryOptions.coerce(options)
        self.client = client or make_client(reference.registry, self.options, warn=warn)
        self.repository = reference.repository
        self.blob_requests: list[str] = []

    def resolve(self, ref: Any = None) -> Manifest:
        ref = ref or self.reference
        if ref.registry != self.reference.registry:
            raise RegistryError(f"{ref.registry} is not the registry of this source "
                                f"({self.reference.registry})")
        tag = ref.reference or "latest"
        display = f"{ref.registry}/{ref.repository}{'@' if ':' in tag else ':'}{tag}"
        try:
            data, _, digest = self.client.get_manifest(ref.repository, tag)
        except NotFoundError:
            raise NotFoundError(f"reference {display} is not present in local storage and "
                                "could not be found in remote") from None
        return Manifest.parse(data, f"manifest {digest} of {display}")

    def open_blob(self, descriptor: Descriptor, task: Task | None = None) -> BinaryIO:
        self.blob_requests.append(descriptor.digest)
        stream = self.client.open_blob(self.repository, descriptor, task)
        return io.BufferedReader(stream, buffer_size=CHUNK)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RemoteSource:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

