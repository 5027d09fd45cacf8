"""A real git server with Git LFS for tests, on 127.0.0.1.

Git's own smart HTTP server (``git http-backend``, run as CGI for each request) serves bare
repositories, and giftless -- a Git LFS server from PyPI -- serves their LFS objects at the URL
git-lfs derives from the remote (``<repo>.git/info/lfs``), storing them on disk. The only code
here is the WSGI glue: a CGI bridge (environment in, ``Status:`` + headers + body out) and a
dispatcher that sends ``/info/lfs/`` requests to giftless and the rest to git. Repositories under
``/private/`` require HTTP basic auth (any user name, password :data:`TOKEN`) -- except LFS
object transfers, which carry the token giftless signed in its batch answer -- which is how kit's
``--token`` reaches a server (git's credential helper answers the 401).

Tests get repositories through :func:`GitServer.make_repo`: a working tree committed with real
``git``, ``*.safetensors`` tracked by real ``git lfs``, pushed over HTTP (LFS objects included).
``git`` and ``git-lfs`` are required: without them the fixture FAILS, because a skipped import
test would hide a missing feature (CI installs both from Debian).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TOKEN = "hf_gitSecretToken123"
_HOP_BY_HOP = {"connection", "transfer-encoding"}

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def require_git() -> None:
    for cmd in (["git", "version"], ["git", "lfs", "version"]):
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.CalledProcessError):
            pytest.fail(f"{' '.join(cmd)} failed: the import tests need Debian's 'git' and "
                        "'git-lfs' packages", pytrace=False)


def git_env(home: Path) -> dict[str, str]:
    """An environment for test-side git commands: a private HOME and no system config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0",
               GIT_AUTHOR_NAME="Test", GIT_AUTHOR_EMAIL="test@example.com",
               GIT_COMMITTER_NAME="Test", GIT_COMMITTER_EMAIL="test@example.com")
    return env


class _GitCGI:
    """``git http-backend`` behind WSGI: one CGI process per request."""

    def __init__(self, project_root: Path):
        self.root = project_root

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        stream = environ["wsgi.input"]
        if length:
            body = stream.read(length)
        elif environ.get("wsgi.input_terminated"):  # a chunked request body (large pushes)
            body = stream.read()
        else:
            body = b""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
               "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(self.root),
               "REMOTE_USER": environ.get("REMOTE_USER", "anonymous"),
               "CONTENT_LENGTH": str(len(body))}
        for key in ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
                    "REMOTE_ADDR", "HTTP_CONTENT_ENCODING", "HTTP_GIT_PROTOCOL"):
            if environ.get(key):
                env[key] = environ[key]
        proc = subprocess.run(["git", "http-backend"], input=body, env=env,
                              capture_output=True, timeout=120)
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = proc.stdout.partition(b"\n\n")
        status = "200 OK"
        headers = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = value.strip()
            elif name and name.lower() not in _HOP_BY_HOP:
                headers.append((name, value.strip()))
        start_response(status, headers)
        return [payload]


class _Dispatcher:
    def __init__(self, git: Any, lfs: Any):
        self.git = git
        self.lfs = lfs

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        auth = environ.get("HTTP_AUTHORIZATION", "")
        # object transfers carry giftless's own signed token from the batch answer
        preauthorized = "/info/lfs/objects/storage/" in path and (
            auth.startswith("Bearer ") or "jwt=" in environ.get("QUERY_STRING", ""))
        if path.startswith("/private/") and not preauthorized:
            ok = False
            if auth.startswith("Basic "):
                _, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                ok = password == TOKEN
            if not ok:
                start_response("401 Unauthorized",
                               [("WWW-Authenticate", 'Basic realm="test"'),
                                ("Content-Type", "text/plain")])
                return [b"authentication required\n"]
            environ["REMOTE_USER"] = "token"
        app = self.lfs if "/info/lfs/" in path else self.git
        return app(environ, start_response)


@dataclass
class GitServer:
    root: Path
    port: int
    home: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def git(self, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run(["git", *args], cwd=cwd, env=git_env(self.home),
                              capture_output=True, text=True, timeout=120)
        if proc.returncode:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout

    def make_repo(self, name: str, files: dict[str, bytes], *, work: Path,
                  tags: Iterable[str] = (), lfs: str = "*.safetensors") -> str:
        """Create ``<root>/<name>.git`` from ``files`` (LFS for ``lfs``) and push it over HTTP;
        returns the clone URL. ``name`` is ``org/repo`` or ``private/repo``."""
        bare = self.root / f"{name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "--bare", "-b", "main", str(bare))
        self.git("config", "http.receivepack", "true", cwd=bare)
        src = work / name.replace("/", "_")
        src.mkdir(parents=True)
        self.git("init", "-q", "-b", "main", cwd=src)
        self.git("lfs", "install", "--local", cwd=src)
        if lfs:
            self.git("lfs", "track", lfs, cwd=src)
        for rel, data in files.items():
            path = src / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        self.git("add", "-A", cwd=src)
        self.git("commit", "-q", "-m", "initial", cwd=src)
        for tag in tags:
            self.git("tag", tag, cwd=src)
        url = f"{self.url}/{name}.git"
        push_url = url
        if name.startswith("private/"):
            push_url = url.replace("http://", f"http://token:{TOKEN}@")
        self.git("push", "-q", push_url, "main", *tags, cwd=src)
        return url

    def push_commit(self, name: str, work: Path, files: dict[str, bytes]) -> None:
        src = work / name.replace("/", "_")
        for rel, data in files.items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes(data)
        self.git("add", "-A", cwd=src)
        self.git("commit", "-q", "-m", "update", cwd=src)
        self.git("push", "-q", f"{self.url}/{name}.git", "main", cwd=src)


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterable[GitServer]:
    """git smart HTTP + giftless LFS on 127.0.0.1 for the whole session."""
    require_git()
    from giftless.app import init_app
    from werkzeug.serving import make_server

    base = tmp_path_factory.mktemp("git-server")
    root, lfs_store, home = base / "repos", base / "lfs", base / "home"
    for d in (root, lfs_store, home):
        d.mkdir()
    lfs_app = init_app(additional_config={
        "AUTH_PROVIDERS": ["giftless.auth.allow_anon:read_write"],
        "LEGACY_ENDPOINTS": False,
        "TRANSFER_ADAPTERS": {"basic": {"options": {"storage_options": {"path": str(lfs_store)}}}},
    })
    server = make_server("127.0.0.1", 0, _Dispatcher(_GitCGI(root), lfs_app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield GitServer(root=root, port=server.server_port, home=home)
    finally:
        server.shutdown()
        shutil.rmtree(base, ignore_errors=True)
