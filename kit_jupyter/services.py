"""Local stand-ins for the cloud, on 127.0.0.1: an S3 server (moto) and an OCI registry.

One implementation serves the demo notebooks (through :mod:`kit_jupyter.demo`) and the test suite
(``tests/plugins/`` are thin pytest fixtures over these functions), so the servers the tests
trust are the ones a user runs the demo against.

Each ``start_*`` launches a child process bound to loopback on a port the kernel picks (port 0;
the real port is read back from the server's log), waits until it answers HTTP, and returns a
handle with the ``process`` (to kill or ``SIGSTOP`` it), the ``log_path``, the ``root`` directory
it works in, and ``stop()``. ``stop()`` is idempotent, undoes what the start did (environment
variables included) and also runs at interpreter exit: the child lives in its own session, so an
interrupted notebook cell does not kill it mid-push, and a kernel restart must not orphan it.

A ``root`` not given is a new temporary directory (under ``KIT_DEMO_TMP`` when set, else the
system's), removed by ``stop()``; a given one is kept. Nothing here prints; boto3 and
cryptography are imported only when used.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import ipaddress
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kit_jupyter._fs import atomic_write
from kit_jupyter.errors import KitError

LOOPBACK = "127.0.0.1"

#: Dummy credentials: moto accepts any, and these make it obvious nothing real is used.
DEMO_ACCESS_KEY = "demo-access-key"
DEMO_SECRET_KEY = "demo-secret-key"
DEMO_REGION = "us-east-1"

_REGISTRY_PORT = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
_MOTO_PORT = re.compile(r"Running on https?://127\.0\.0\.1:(\d+)")
_ACCESS_LINE = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d{3}) ')


class ServiceError(KitError):
    """A local service could not be started (program missing, port never reported, no answer)."""


# -- environment ------------------------------------------------------------------------------

class EnvPatch:
    """Sets environment variables and remembers what was there, so ``restore`` puts back the
    exact previous state (unset stays unset) -- a re-run notebook must not inherit a dead
    endpoint from an earlier run."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            if key not in self._saved:
                self._saved[key] = os.environ.get(key)
            os.environ[key] = value

    def restore(self) -> None:
        for key, old in self._saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        self._saved.clear()


# -- a child process on 127.0.0.1 -------------------------------------------------------------

_S = TypeVar("_S", bound="Service")


@dataclass(kw_only=True)
class Service:
    """A server running as a child process; the base of :class:`S3Server` and :class:`Registry`."""

    port: int
    process: subprocess.Popen[bytes] = field(repr=False)
    root: Path
    log_path: Path = field(repr=False)
    owns_root: bool = field(default=False, repr=False)
    stopped: bool = False
    _env: EnvPatch = field(default_factory=EnvPatch, repr=False)

    def log(self) -> str:
        """Everything the server wrote so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: connections die mid-response, as when a server crashes."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server, restore the environment, remove a temporary root."""
        if self.stopped:
            return
        self.stopped = True
        self._env.restore()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _make_root(root: str | os.PathLike[str] | None, prefix: str) -> tuple[Path, bool]:
    if root is not None:
        path = Path(root)
        path.mkdir(parents=True, exist_ok=True)
        return path, False
    base = os.environ.get("KIT_DEMO_TMP") or None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base)).resolve(), True


def _tail(path: Path, start: int = 0, lines: int = 3) -> str:
    """Why a server died, from its log after ``start``: a Go panic or fatal line, else the
    last lines."""
    try:
        with open(path, "rb") as log:
            log.seek(start)
            text = log.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    for line in text:
        if line.startswith("panic: ") or "level=fatal" in line:
            return line.strip()
    return " | ".join(text[-lines:]) or "(empty log)"


def _launch(argv: list[str], *, root: Path, log_name: str, port_pattern: re.Pattern[str],
            env: Mapping[str, str], deadline: float, what: str
            ) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Start ``argv`` with its output in ``root/log_name`` and wait for the port it reports.

    The log is appended to (a root given again keeps its earlier runs' lines), so the port is
    looked for only in what this run wrote: an earlier run's "Running on" line named a port
    nobody listens on any more, and the start then failed a minute later."""
    log_path = root / log_name
    with open(log_path, "ab") as log:
        start = log.seek(0, os.SEEK_END)
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=dict(env),
                                   start_new_session=True)
    while True:
        with open(log_path, "rb") as log:
            log.seek(start)
            found = port_pattern.search(log.read().decode(errors="replace"))
        if found:
            return process, int(found.group(1)), log_path
        if process.poll() is not None:
            raise ServiceError(f"{what} exited at start: {_tail(log_path, start)}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise ServiceError(f"{what} did not report its port in time: "
                               f"{_tail(log_path, start)}")
        time.sleep(0.02)


def _wait_http(url: str, *, deadline: float, what: str, process: subprocess.Popen[bytes],
               context: ssl.SSLContext | None = None) -> None:
    """Until ``url`` answers anything but a 5xx (a 401 from a registry with auth is an answer)."""
    while True:
        if process.poll() is not None:
            raise ServiceError(f"{what} exited before answering on {url}")
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as r:
                if r.status < 500:
                    return
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return
        except (urllib.error.URLError, OSError):  # TimeoutError is an OSError
            pass
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} did not answer on {url} in time")
        time.sleep(0.05)


def _started(service: Service, url: str, *, deadline: float, what: str,
             context: ssl.SSLContext | None = None) -> None:
    """Register the stop at exit, then wait for the first answer (stopping on failure)."""
    atexit.register(service.stop)
    try:
        _wait_http(url, deadline=deadline, what=what, process=service.process, context=context)
    except BaseException:
        service.stop()
        raise


# -- S3: moto in server mode ------------------------------------------------------------------

def s3_client(endpoint: str, access_key: str = DEMO_ACCESS_KEY,
              secret_key: str = DEMO_SECRET_KEY, region: str = DEMO_REGION) -> Any:
    """A boto3 client for setting the scene on a local S3 (buckets, uploads) -- not what kit
    uses: path-style addressing, SigV4, checksums only where required (moto and RGW)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"))


@dataclass(kw_only=True)
class S3Server(Service):
    """A running moto S3 server and the credentials kit should use with it."""

    access_key: str
    secret_key: str = field(repr=False)
    region: str = DEMO_REGION

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def env(self, **overrides: str | None) -> dict[str, str]:
        """kit's S3 variables pointing at this server; an override of ``None`` leaves one out."""
        values: dict[str, str | None] = {
            "S3_API_ENDPOINT": self.endpoint, "S3_REGION": self.region,
            "S3_ACCESS_KEY_ID": self.access_key, "S3_SECRET_KEY": self.secret_key}
        values.update(overrides)
        return {k: v for k, v in values.items() if v is not None}

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        """A boto3 client for setting the scene (see :func:`s3_client`)."""
        return s3_client(self.endpoint, access_key or self.access_key,
                         secret_key or self.secret_key, self.region)

    def reset(self) -> None:
        """Empty the server (every bucket and object), as after a fresh start."""
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).close()


def start_s3(root: str | os.PathLike[str] | None = None, *,
             access_key: str = DEMO_ACCESS_KEY, secret_key: str = DEMO_SECRET_KEY,
             region: str = DEMO_REGION, set_env: bool = False,
             part_min_size: int | None = None, auth_free_actions: int | None = None,
             timeout: float = 60.0) -> S3Server:
    """Start moto's S3 server (``python -m moto.server``) on 127.0.0.1.

    Args:
        root: where its log goes; default a temporary directory removed by ``stop()``.
        access_key, secret_key, region: what kit is told to use (moto accepts any credentials
            unless ``auth_free_actions`` is given).
        set_env: export kit's S3 variables (``S3_API_ENDPOINT``, ``S3_REGION``,
            ``S3_ACCESS_KEY_ID``, ``S3_SECRET_KEY``) until ``stop()``.
        part_min_size: the smallest multipart part moto accepts (S3's is 5 MiB), so tests can
            make multipart objects of a few hundred KiB.
        auth_free_actions: check credentials, after this many free requests (to create the
            IAM user and its keys).
        timeout: seconds to wait for the server to answer.

    Returns:
        S3Server: ``endpoint``, ``env()``, ``client()``, ``reset()``, ``kill()``, ``stop()``.
    """
    deadline = time.monotonic() + timeout
    path, owns = _make_root(root, "kit-s3-")
    env = dict(os.environ, MOTO_S3_DEFAULT_KEY_BUFFER_SIZE=str(16 << 20))
    if part_min_size is not None:
        env["S3_UPLOAD_PART_MIN_SIZE"] = str(part_min_size)
    if auth_free_actions is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(auth_free_actions)
    argv = [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", "0"]
    try:
        process, port, log_path = _launch(argv, root=path, log_name="moto.log",
                                          port_pattern=_MOTO_PORT, env=env, deadline=deadline,
                                          what="moto S3 server")
    except BaseException:
        if owns:
            shutil.rmtree(path, ignore_errors=True)
        raise
    server = S3Server(port=port, process=process, root=path, log_path=log_path, owns_root=owns,
                      access_key=access_key, secret_key=secret_key, region=region)
    _started(server, f"{server.endpoint}/moto-api/", deadline=deadline, what="moto S3 server")
    if set_env:
        server._env.set(server.env())
    return server


# -- OCI registry: Debian's docker-registry ---------------------------------------------------

class TokenIssuer(Protocol):
    """What a registry with Bearer token auth needs to know about its token server, and the
    ``credentials`` (user, password) for which that server grants access."""

    @property
    def realm(self) -> str: ...

    @property
    def service(self) -> str: ...

    @property
    def issuer(self) -> str: ...

    @property
    def cert_path(self) -> Path: ...

    @property
    def credentials(self) -> tuple[str, str]: ...


@dataclass(kw_only=True)
class Registry(Service):
    """A running ``docker-registry`` with filesystem storage under ``root / "data"``."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    token: TokenIssuer | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry part of a ModelKit reference."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def ca_path(self) -> Path:
        """The self-signed certificate of a TLS registry (kit's ``tls_verify=``)."""
        return self.root / "tls.crt"

    @property
    def data_dir(self) -> Path:
        return self.root / "data" / "docker" / "registry" / "v2"

    def blob_data_path(self, digest: str) -> Path:
        """Where the registry keeps a blob's bytes (to corrupt one in a test)."""
        hexd = digest.split(":", 1)[1]
        return self.data_dir / "blobs" / "sha256" / hexd[:2] / hexd / "data"

    def mark(self) -> int:
        """A position in the access log, for :meth:`requests`."""
        time.sleep(0.05)  # let the registry flush the previous request's access line
        return self.log_path.stat().st_size

    def requests(self, since: int = 0) -> list[tuple[str, str, int]]:
        """``(method, path, status)`` of every request logged after ``since`` (a :meth:`mark`)."""
        time.sleep(0.1)
        with open(self.log_path, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
        return [(m.group(1), m.group(2), int(m.group(3))) for m in _ACCESS_LINE.finditer(text)]


def find_registry_binary() -> str | None:
    """``docker-registry`` (Debian's package name) or ``registry`` (upstream), if installed."""
    for name in ("docker-registry", "registry"):
        found = shutil.which(name)
        if found:
            return found
    return None


def self_signed_certificate(directory: Path, name: str, *, ip: str | None = None
                            ) -> tuple[Path, Path]:
    """A fresh ECDSA key and a self-signed CA certificate valid for two days, written as
    ``name.crt`` and ``name.key`` in ``directory``; ``ip`` adds an IP subject alternative name
    (what a TLS client checks for ``https://127.0.0.1``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip or name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False)
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    with atomic_write(cert_path) as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with atomic_write(key_path) as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def _htpasswd(path: Path, user: str, password: str) -> None:
    tool = shutil.which("htpasswd")
    if tool is None:
        raise ServiceError("htpasswd is not installed: a registry with basic auth needs it "
                           "(Debian/Ubuntu: apt-get install apache2-utils)")
    out = subprocess.run([tool, "-Bbn", user, password], check=True, capture_output=True)
    with atomic_write(path) as f:
        f.write(out.stdout)


def start_registry(root: str | os.PathLike[str] | None = None, *,
                   basic_auth: tuple[str, str] | None = None, token: TokenIssuer | None = None,
                   tls: bool = False, s3: Mapping[str, str] | None = None,
                   delete: bool = True, timeout: float = 30.0) -> Registry:
    """Start ``docker-registry serve`` on 127.0.0.1 with filesystem storage.

    Args:
        root: its configuration, storage and log; default a temporary directory removed by
            ``stop()``.
        basic_auth: ``(user, password)``: require HTTP basic auth (an htpasswd file).
        token: require Bearer tokens issued by this token server.
        tls: serve HTTPS with a fresh self-signed certificate (``registry.ca_path``).
        s3: store in S3 instead of ``root / "data"``: the S3 storage driver's options
            (``regionendpoint``, ``bucket``, ``accesskey`` ...); blob GETs are then answered
            with redirects to presigned URLs.
        delete: allow ``DELETE`` of manifests and blobs (``False``: the registry answers 405,
            as many hosted registries do).
        timeout: seconds to wait for the registry to answer.

    Returns:
        Registry: ``host`` (``127.0.0.1:PORT``, for references), ``url``, the access log
        (``mark()``, ``requests()``), ``stop()``.
    """
    deadline = time.monotonic() + timeout
    binary = find_registry_binary()
    if binary is None:
        raise ServiceError("docker-registry is not installed (Debian/Ubuntu: apt-get install "
                           "docker-registry)")
    path, owns = _make_root(root, "kit-registry-")
    try:
        storage = (["  s3:", *(f"    {k}: {v}" for k, v in s3.items())] if s3 else
                   ["  filesystem:", f"    rootdirectory: {path / 'data'}"])
        config = ["version: 0.1", "log:", "  level: info", "storage:", *storage, "  delete:",
                  f"    enabled: {'true' if delete else 'false'}", "http:", f"  addr: {LOOPBACK}:0",
                  "  secret: kit-jupyter-not-a-secret"]
        if tls:
            cert, key = self_signed_certificate(path, "tls", ip=LOOPBACK)
            config += ["  tls:", f"    certificate: {cert}", f"    key: {key}"]
        if basic_auth is not None:
            _htpasswd(path / "htpasswd", *basic_auth)
            config += ["auth:", "  htpasswd:", "    realm: kit-jupyter",
                       f"    path: {path / 'htpasswd'}"]
        elif token is not None:
            config += ["auth:", "  token:", f"    realm: {token.realm}",
                       f"    service: {token.service}", f"    issuer: {token.issuer}",
                       f"    rootcertbundle: {token.cert_path}"]
        with atomic_write(path / "config.yml") as f:
            f.write(("\n".join(config) + "\n").encode())
        # REGISTRY_* variables would override the configuration file; the AWS SDK inside
        # refuses AWS_CA_BUNDLE with its own transport (a panic at start)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("REGISTRY_") and k != "AWS_CA_BUNDLE"}
        process, port, log_path = _launch([binary, "serve", str(path / "config.yml")],
                                          root=path, log_name="registry.log",
                                          port_pattern=_REGISTRY_PORT, env=env,
                                          deadline=deadline, what="docker-registry")
    except BaseException:
        if owns:
            shutil.rmtree(path, ignore_errors=True)
        raise
    user, password = basic_auth or (token.credentials if token is not None else (None, None))
    registry = Registry(port=port, process=process, root=path, log_path=log_path,
                        owns_root=owns, username=user, password=password, tls=tls, token=token)
    context = ssl.create_default_context(cafile=str(registry.ca_path)) if tls else None
    _started(registry, f"{registry.url}/v2/", deadline=deadline, what="docker-registry",
             context=context)
    return registry
