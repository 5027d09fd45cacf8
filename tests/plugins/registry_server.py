"""A real OCI registry for tests: Debian's ``docker-registry`` on 127.0.0.1.

The server is :func:`kit_jupyter.services.start_registry` -- the one the demo notebooks use.
Session-wide servers -- plain, TLS with a self-signed certificate, htpasswd basic auth (user
``alice``), and Bearer tokens from :class:`TokenServer` -- each with filesystem storage in a
temporary directory, terminated at the end of the session. Tests isolate themselves by using
their own repository names. The registry's access log is the request counter: ``mark()`` then
``requests(since=mark)`` lists the ``(method, path, status)`` seen in between.

The binary is required: without it the fixtures FAIL (CI installs the package), because a
skipped registry test would hide a missing feature.
"""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from kit_jupyter import services
from kit_jupyter.services import Registry, ServiceError, self_signed_certificate

USERNAME = "alice"
PASSWORD = "s3cret-Pa55"


def start_registry(root: Path, **kw) -> Registry:
    """:func:`kit_jupyter.services.start_registry`, where a missing ``docker-registry`` or
    ``htpasswd`` fails the test with one line."""
    try:
        return services.start_registry(root, **kw)
    except ServiceError as e:
        pytest.fail(str(e), pytrace=False)


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
    server = start_registry(tmp_path_factory.mktemp("registry-auth"),
                                 basic_auth=(USERNAME, PASSWORD))
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

    service = TOKEN_SERVICE
    issuer = TOKEN_ISSUER
    credentials = (USERNAME, PASSWORD)

    def __init__(self, root: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        self.cert_path, key_path = self_signed_certificate(root, "token")
        self.key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
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
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self._cert_der).decode()]}
        now = int(time.time())
        claims = {"iss": TOKEN_ISSUER, "sub": user, "aud": TOKEN_SERVICE, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def _serve(self, req) -> None:
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
