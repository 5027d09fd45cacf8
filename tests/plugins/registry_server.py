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

import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

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


def _htpasswd(path: Path, user: str, password: str) -> None:
    tool = shutil.which("htpasswd")
    if tool is None:
        pytest.fail("htpasswd is not installed: the registry auth tests need Debian's "
                    "'apache2-utils' package", pytrace=False)
    out = subprocess.run([tool, "-Bbn", user, password], check=True, capture_output=True)
    path.write_bytes(out.stdout)


def start_registry(root: Path, *, auth: bool = False) -> RegistryServer:
    binary = registry_binary()
    root.mkdir(parents=True, exist_ok=True)
    config = [
        "version: 0.1",
        "log:",
        "  level: info",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {root / 'data'}",
        "  delete:",
        "    enabled: true",
        "http:",
        "  addr: 127.0.0.1:0",
        "  secret: kit-jupyter-tests",
    ]
    if auth:
        _htpasswd(root / "htpasswd", USERNAME, PASSWORD)
        config += ["auth:", "  htpasswd:", "    realm: kit-test", f"    path: {root / 'htpasswd'}"]
    cfg = root / "config.yml"
    cfg.write_text("\n".join(config) + "\n")
    log_path = root / "registry.log"
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the child process
    process = subprocess.Popen([binary, "serve", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
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
    server = RegistryServer(root, process, port, log_path,
                            USERNAME if auth else None, PASSWORD if auth else None)
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{server.url}/v2/", timeout=2).close()
            break
        except urllib.error.HTTPError:
            break  # 401 from the auth registry: it is up
        except OSError:
            time.sleep(0.02)
    return server


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A plain-HTTP docker-registry (no auth), shared by the session."""
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory):
    """A docker-registry with htpasswd basic auth; user ``USERNAME`` / ``PASSWORD``."""
    server = start_registry(tmp_path_factory.mktemp("registry-auth"), auth=True)
    yield server
    server.stop()
