"""A real Hugging Face Hub-compatible server for tests: olah (PyPI), offline, on 127.0.0.1.

olah is a self-hosted Hub mirror. Offline and with ``mirrors-path`` set it serves local git
repositories as Hub repositories -- the same routes ``huggingface_hub`` calls on huggingface.co:
``/api/{models,datasets}/<org>/<repo>/revision/<ref>`` (repository info with the commit ``sha``),
``.../tree/<commit>`` (recursive listing with sizes, blob ids, LFS sha256),
``/<org>/<repo>/resolve/<commit>/<path>`` (HEAD with ``X-Repo-Commit``/ETag, GET of the bytes,
LFS objects read from the repository's ``.git/lfs/objects``). Tests make those repositories with
real ``git`` and ``git-lfs`` (:meth:`HubServer.make_repo`).

olah pins ``psutil<6`` (through fastapi-utils) while IPython wants ``psutil>=7``, so it cannot
share the test virtualenv: it lives in its own, ``.venv-olah`` beside ``.venv``
(scripts/run-tests creates it; ``KIT_TEST_OLAH_PYTHON`` names another interpreter). Without it the
fixture FAILS, because a skipped Hub test would hide a missing feature.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.plugins.git_server import git_env, require_git


def olah_python() -> str:
    candidates = [os.environ.get("KIT_TEST_OLAH_PYTHON", ""),
                  str(Path(sys.prefix).parent / ".venv-olah" / "bin" / "python")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("olah is not installed: the Hugging Face import tests need it in .venv-olah "
                "(scripts/run-tests creates it: python3 -m venv .venv-olah && "
                ".venv-olah/bin/pip install olah)", pytrace=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HubServer:
    root: Path
    port: int
    process: subprocess.Popen
    home: Path
    log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def git(self, *args: str, cwd: Path) -> None:
        proc = subprocess.run(["git", *args], cwd=cwd, env=git_env(self.home),
                              capture_output=True, text=True, timeout=120)
        if proc.returncode:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")

    def make_repo(self, repo: str, files: dict[str, bytes], *, kind: str = "models",
                  tags: Iterable[str] = (), lfs: str = "*.safetensors") -> Path:
        """A Hub repository ``repo`` (``org/name``) of ``kind`` (``models`` or ``datasets``),
        committed with real git; files matching ``lfs`` are LFS objects."""
        path = self.root / kind / repo
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main", cwd=path)
        self.git("lfs", "install", "--local", cwd=path)
        if lfs:
            self.git("lfs", "track", lfs, cwd=path)
        self.commit(path, files)
        for tag in tags:
            self.git("tag", tag, cwd=path)
        return path

    def commit(self, path: Path, files: dict[str, bytes]) -> None:
        for rel, data in files.items():
            (path / rel).parent.mkdir(parents=True, exist_ok=True)
            (path / rel).write_bytes(data)
        self.git("add", "-A", cwd=path)
        self.git("commit", "-q", "-m", "commit", cwd=path)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def hf_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterable[HubServer]:
    """olah serving local git repositories as a Hub on 127.0.0.1, for the whole session."""
    require_git()
    python = olah_python()
    base = tmp_path_factory.mktemp("hf-hub")
    mirrors, cache, home = base / "mirrors", base / "cache", base / "home"
    for d in (mirrors, cache, home):
        d.mkdir()
    port = _free_port()
    config = base / "olah.toml"
    config.write_text(
        "[basic]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f'repos-path = "{cache}"\n'
        f'mirrors-path = ["{mirrors}"]\n'
        "metadata-cache-ttl = 0\n"
        "[accessibility]\n"
        "offline = true\n")
    log = base / "olah.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([python, "-m", "olah.server", "--config", str(config)],
                                   cwd=base, stdout=out, stderr=subprocess.STDOUT)
    server = HubServer(root=mirrors, port=port, process=process, home=home, log=log)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{server.endpoint}/api/whoami-v2", timeout=2)
            break
        except urllib.error.HTTPError:
            break  # it answers
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                pytest.fail(f"olah did not start:\n{log.read_text()[-2000:]}", pytrace=False)
            time.sleep(0.2)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
