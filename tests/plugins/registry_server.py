"""A real OCI registry for tests: Debian's ``docker-registry`` on 127.0.0.1.

Two session-wide servers -- plain, and htpasswd basic auth (user ``alice``) -- each with
filesystem storage in a temporary directory, started on port 0 (the real port is read from the
registry's log) and terminated at the end of the session. Tests isolate themselves by using
their own repository names. The registry's access log is the request counter: ``mark()`` then
``requests(since=mark)`` lists the ``(method, path, status)`` seen in between.

The binary is required: without it the fixtures FAIL (CI installs the package), because a
skipped registry test would hide a missing feature.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

USERNAME = "alice"
PASSWORD = "s3cret-Pa55"
_ACCESS = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d{3}) ')
_PORT = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


def registry_binary() -> str:
    path = shutil.which("docker-registry") or (
        "/usr/bin/docker-registry" if Path("/usr/bin/docker-registry").exists() else None)
    if path is None:
        pytest.fail("docker-registry is not installed: the registry tests need Debian's "
                    "'docker-registry' package (apt-get install docker-registry)",
                    pytrace=False)
    return path


@dataclass
class RegistryServer:
    root: Path
    process: subprocess.Popen
    port: int
    log_path: Path
    username: str | None = None
    password: str | None = None
    token: Any = None
    tls: bool = False

    @property
    def ca_path(self) -> Path:
        """The self-signed certificate of a TLS registry (to pass as ``tls_verify``)."""
        return self.root / "tls.crt"

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry part of a reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data" / "docker" / "registry" / "v2"

    def blob_data_path(self, digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        return self.data_dir / "blobs" / "sha256" / hexd[:2] / hexd / "data"

    def mark(self) -> int:
        time.sleep(0.05)  # let the registry flush the previous request's access line
        return self.log_path.stat().st_size

    def requests(self, since: int = 0) -> list[tuple[str, str, int]]:
        time.sleep(0.1)
        with open(self.log_path, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
        return [(m.group(1), m.group(2), int(m.group(3))) for m in _ACCESS.finditer(text)]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _self_signed(root: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (IP SAN), made with ``cryptography``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = root / "tls.crt", root / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _htpasswd(path: Path, user: str, password: str) -> None:
    tool = shutil.which("htpasswd")
    if tool is None:
        pytest.fail("htpasswd is not installed: the registry auth tests need Debian's "
                    "'apache2-utils' package", pytrace=False)
    out = subprocess.run([tool, "-Bbn", user, password], check=True, capture_output=True)
    path.write_bytes(out.stdout)


def start_registry(root: Path, *, auth: bool = False, token: TokenServer | None = None,
                   tls: bool = False, s3: dict[str, str] | None = None,
                   delete: bool = True) -> RegistryServer:
    """``s3``: the S3 storage driver's options (e.g. a moto server's endpoint and keys) instead
    of a directory; the registry then answers blob GETs with redirects to presigned URLs."""
    binary = registry_binary()
    root.mkdir(parents=True, exist_ok=True)
    storage = ["  s3:", *(f"    {k}: {v}" for k, v in s3.items())] if s3 else [
        "  filesystem:", f"    rootdirectory: {root / 'data'}"]
    config = [
        "version: 0.1",
        "log:",
        "  level: info",
        "storage:",
        *storage,
        "  delete:",
        f"    enabled: {'true' if delete else 'false'}",  # false: DELETE answers 405
        "http:",
        "  addr: 127.0.0.1:0",
        "  secret: kit-jupyter-tests",
    ]
    if auth:
        _htpasswd(root / "htpasswd", USERNAME, PASSWORD)
        config += ["auth:", "  htpasswd:", "    realm: kit-test", f"    path: {root / 'htpasswd'}"]
    if tls:
        cert, key = _self_signed(root)
        config += ["  tls:", f"    certificate: {cert}", f"    key: {key}"]
    if token is not None:
        config += ["auth:", "  token:", f"    realm: {token.realm}",
                   f"    service: {TOKEN_SERVICE}", f"    issuer: {TOKEN_ISSUER}",
                   f"    rootcertbundle: {token.cert_path}"]
    cfg = root / "config.yml"
    cfg.write_text("\n".join(config) + "\n")
    log_path = root / "registry.log"
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the child process
    # the AWS SDK inside refuses AWS_CA_BUNDLE with its own transport (a panic at start)
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    process = subprocess.Popen([binary, "serve", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=env)
    log.close()
    deadline = time.monotonic() + 15
    port = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"docker-registry exited at start: {log_path.read_text()[-2000:]}",
                        pytrace=False)
        m = _PORT.search(log_path.read_text(errors="replace"))
        if m:
            port = int(m.group(1))
            break
        time.sleep(0.02)
    if port is None:
        process.terminate()
        pytest.fail("docker-registry did not report its port within 15 s", pytrace=False)
    secured = auth or token is not None
    server = RegistryServer(root, process, port, log_path,
                            USERNAME if secured else None, PASSWORD if secured else None)
    server.tls = tls
    while time.monotonic() < deadline:
        try:
            if tls:
                import socket

                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            urllib.request.urlopen(f"{server.url}/v2/", timeout=2).close()
            break
        except urllib.error.HTTPError:
            break  # 401 from the auth registry: it is up
        except OSError:
            time.sleep(0.02)
    return server


@pytest.fixture
def retry_sleeps(monkeypatch):
    """Every back-off sleep of the transports' retry policy, recorded instead of slept:
    asserting a bounded policy (not a stopwatch) is what keeps failures fast."""
    import kit_jupyter.transport.deadline as deadline

    slept: list[float] = []
    monkeypatch.setattr(deadline.time, "sleep", slept.append)
    return slept


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A plain-HTTP docker-registry (no auth), shared by the session."""
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory):
    """A docker-registry serving HTTPS with a self-signed certificate (``server.ca_path``)."""
    server = start_registry(tmp_path_factory.mktemp("registry-tls"), tls=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory):
    """A docker-registry with htpasswd basic auth; user ``USERNAME`` / ``PASSWORD``."""
    server = start_registry(tmp_path_factory.mktemp("registry-auth"), auth=True)
    yield server
    server.stop()


# -- token auth (Bearer): a docker-registry trusting a small token server in this process ------

TOKEN_SERVICE = "kit-test-registry"
TOKEN_ISSUER = "kit-test-issuer"


class TokenServer:
    """The distribution token protocol, minimally: ``GET /token?service=&scope=`` with Basic
    credentials returns an ES256 JWT (``x5c`` header, self-signed certificate that the registry
    trusts) granting every requested action to ``USERNAME``; anonymous or wrong credentials get
    a token with no access, as Docker Hub does. ``scopes`` records what was asked for."""

    def __init__(self, root: Path) -> None:
        import datetime
        import http.server
        import threading

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kit-test-token")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self.key, hashes.SHA256()))
        self.cert_path = root / "token-cert.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.scopes: list[tuple[str | None, str]] = []  # (user or None, scope)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                server._serve(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def _jwt(self, user: str, access: list[dict]) -> str:
        import base64
        import json
        import secrets
        import time as _time

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self._cert_der).decode()]}
        now = int(_time.time())
        claims = {"iss": TOKEN_ISSUER, "sub": user, "aud": TOKEN_SERVICE, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def _serve(self, req) -> None:
        import base64
        import json
        import urllib.parse

        query = urllib.parse.parse_qs(urllib.parse.urlparse(req.path).query)
        user = None
        auth = req.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
            if u == USERNAME and p == PASSWORD:
                user = u
            else:
                req.send_response(401)
                req.end_headers()
                return
        access = []
        for scope in query.get("scope", []):
            self.scopes.append((user, scope))
            kind, name, actions = scope.split(":", 2)
            if user is not None:
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        body = json.dumps({"token": self._jwt(user or "", access)}).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory):
    """A docker-registry with Bearer token auth backed by :class:`TokenServer`
    (``server.token`` is the token server)."""
    root = tmp_path_factory.mktemp("registry-token")
    tokens = TokenServer(root)
    server = start_registry(root, token=tokens)
    server.token = tokens
    yield server
    server.stop()
    tokens.stop()


@pytest.fixture
def isolated_docker_config(tmp_path, monkeypatch):
    """Never read the developer's ~/.docker: an empty DOCKER_CONFIG per test."""
    d = tmp_path / "docker-config"
    d.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    return d
