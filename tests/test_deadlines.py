"""Deadlines: a registry or S3 server that stops answering ends a command with one line.

``KIT_JUPYTER_TIMEOUT`` (default 30 s) bounds the time a request may make no progress, retries
included. The tests use a short limit (1.5 s) and two kinds of silence: a server on 127.0.0.1
that accepts and never answers (``silent_server``), and a real server (docker-registry, moto)
stopped with SIGSTOP -- the kernel still completes its handshakes. The default is checked by
inspecting the configuration and replaying the retry policy on a clock, never by waiting.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kit_jupyter.errors import KitError
from kit_jupyter.transport import deadline, s3
from kit_jupyter.transport.deadline import Timeouts
from kit_jupyter.transport.registry import RegistryClient
from tests.plugins.registry_server import start_registry
from tests.test_registry import make_modelkit

LIMIT = "1.5"
HANG_GUARD = 120  # a hang fails the test instead of eating CI (not a timing assertion)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kit_jupyter", *args], capture_output=True,
                          text=True, timeout=HANG_GUARD,
                          env={**os.environ, "KIT_JUPYTER_TIMEOUT": LIMIT, **env})


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The single ``[ERROR]`` line of a failed command (exit 1, no traceback)."""
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("[ERROR]")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@contextlib.contextmanager
def stopped(pid: int):
    """The process frozen with SIGSTOP for the duration (and thawed even if the test fails)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


# --- the policy ------------------------------------------------------------------------------

def test_default_limit_is_30s_and_every_transport_stays_within_it(monkeypatch):
    monkeypatch.delenv("KIT_JUPYTER_TIMEOUT", raising=False)
    t = Timeouts.from_env()
    assert t.total == 30 and t.connect <= 5 and t.read == 10
    with RegistryClient("r.example.com", lookup_credentials=False) as client:
        assert client.timeouts == t
    cfg = s3.make_client({"S3_API_ENDPOINT": "http://127.0.0.1:9", "S3_REGION": "us-east-1",
                          "S3_ACCESS_KEY_ID": "k", "S3_SECRET_KEY": "s"}).meta.config
    assert (cfg.connect_timeout, cfg.read_timeout) == (t.connect, t.read)
    assert cfg.retries["total_max_attempts"] == 1  # the retries are ours, under the limit

    # Replay the policy against a server that never answers: every attempt waits a full
    # per-read timeout, every back-off is slept on the same clock.
    now = [0.0]
    monkeypatch.setattr(deadline.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    attempts = []

    def silent(_: deadline.Deadline) -> None:
        attempts.append(now[0])
        now[0] += t.read
        raise TimeoutError("no answer")

    for attempt_time in (None, t.total):  # an ordinary request; the answer to an upload
        now[0], attempts[:] = 0.0, []
        with pytest.raises(TimeoutError):
            deadline.retry(silent, transient=lambda e: True, timeouts=t,
                           attempt_time=attempt_time, clock=lambda: now[0])
        assert now[0] <= t.total
    assert len(attempts) == 1  # the upload's answer may use the whole limit: no retry


def test_the_limit_is_read_when_a_command_starts_and_checked(monkeypatch):
    monkeypatch.setenv("KIT_JUPYTER_TIMEOUT", "7.5")
    with RegistryClient("r.example.com", lookup_credentials=False) as client:
        assert client.timeouts.total == 7.5
    for bad in ("abc", "0", "-3", "inf"):
        monkeypatch.setenv("KIT_JUPYTER_TIMEOUT", bad)
        with pytest.raises(KitError) as info:
            Timeouts.from_env()
        assert str(info.value) == ("KIT_JUPYTER_TIMEOUT must be a number of seconds greater "
                                   f"than 0, not {bad!r}")
    proc = cli("pull", "127.0.0.1:9/x/y:v1", "--plain-http", env={"KIT_JUPYTER_TIMEOUT": "abc"})
    assert one_error_line(proc) == ("[ERROR] KIT_JUPYTER_TIMEOUT must be a number of seconds "
                                    "greater than 0, not 'abc'")


# --- registries ------------------------------------------------------------------------------

STALL = "did not respond within 0.5s; set KIT_JUPYTER_TIMEOUT to wait longer (now 1.5s)"


@pytest.mark.registry
def test_silent_registry_pull_and_push(silent_server, tmp_path):
    home = tmp_path / "home"
    make_modelkit(home, "localhost/stall", "v1")
    env = {"KITOPS_HOME": str(home)}
    pull = cli("pull", f"{silent_server.host}/team/stall:v1", "--plain-http", env=env)
    assert one_error_line(pull) == f"[ERROR] Registry {silent_server.host} {STALL}"
    push = cli("push", "stall:v1", f"{silent_server.host}/team/stall:v1", "--plain-http",
               env=env)
    assert one_error_line(push) == f"[ERROR] Registry {silent_server.host} {STALL}"


@pytest.mark.registry
def test_stopped_registry_pull_push_and_inspect(tmp_path):
    server = start_registry(tmp_path / "registry")
    try:
        home = tmp_path / "home"
        make_modelkit(home, "localhost/frozen", "v1")
        env = {"KITOPS_HOME": str(home)}
        dest = f"{server.host}/team/frozen:v1"
        assert cli("push", "frozen:v1", dest, "--plain-http", env=env).returncode == 0
        with stopped(server.process.pid):
            for args in (("pull", dest), ("push", "frozen:v1", dest),
                         ("inspect", "--remote", dest)):
                proc = cli(*args, "--plain-http", env={"KITOPS_HOME": str(tmp_path / "p")}
                           if args[0] == "pull" else env)
                assert one_error_line(proc) == f"[ERROR] Registry {server.host} {STALL}", args
        # thawed, the same registry works again: nothing was left half-done
        assert cli("pull", dest, "--plain-http",
                   env={"KITOPS_HOME": str(tmp_path / "p")}).returncode == 0
    finally:
        server.stop()


# --- S3 --------------------------------------------------------------------------------------

def _kitfile(ctx: Path, etag: str) -> None:
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "README.md").write_text("stall\n")
    (ctx / "Kitfile").write_text(
        "manifestVersion: 1.0.0\npackage:\n  name: stall\ndocs:\n  - path: README.md\n"
        "datasets:\n  - name: d\n    path: data/d.bin\n"
        f"    remotePath: s3://data/d.bin\n    remoteHash: {etag}\n")


def _s3_env(endpoint: str, home: Path) -> dict[str, str]:
    from tests.plugins.s3_server import ACCESS_KEY, REGION, SECRET_KEY

    return {"S3_API_ENDPOINT": endpoint, "S3_REGION": REGION, "S3_ACCESS_KEY_ID": ACCESS_KEY,
            "S3_SECRET_KEY": SECRET_KEY, "KITOPS_HOME": str(home)}


S3_STALL = "did not answer within 0.5s; set KIT_JUPYTER_TIMEOUT to wait longer (now 1.5s)"


def test_silent_s3_endpoint_pack_head(silent_server, tmp_path):
    _kitfile(tmp_path / "ctx", "0123456789abcdef0123456789abcdef")
    proc = cli("pack", str(tmp_path / "ctx"), "-t", "stall:v1",
               env=_s3_env(silent_server.url, tmp_path / "home"))
    assert one_error_line(proc) == (
        "[ERROR] Failed to pack model kit: failed to verify remote object for data/d.bin: "
        "failed to HEAD object in S3 "
        f"bucket: s3://data/d.bin: {silent_server.url} {S3_STALL}")
    assert len(silent_server.accepted) == 2  # two attempts fit in 1.5 s, a third would not


def test_stopped_s3_server_unpack_head_and_download(moto_factory, tmp_path):
    """pack while the server answers; then SIGSTOP: unpack's HEAD fails with one line. A
    download that is already streaming when the server stops fails the same way, leaving
    nothing behind."""
    from kit_jupyter.commands.unpack import unpack
    from kit_jupyter.errors import RemoteDatasetError
    from tests.plugins.s3_server import S3Fixture
    from tests.test_s3 import InterruptingReporter

    server = moto_factory()
    fx = S3Fixture(server)
    fx.bucket("data")
    blob = os.urandom(48 << 20)  # far more than the sockets buffer once the server stops
    etag = fx.put("data", "d.bin", blob)["etag"]
    _kitfile(tmp_path / "ctx", etag)
    env = _s3_env(server.endpoint, tmp_path / "home")
    assert cli("pack", str(tmp_path / "ctx"), "-t", "stall:v1", env=env).returncode == 0
    with stopped(server.process.pid):
        proc = cli("unpack", "stall:v1", "-d", str(tmp_path / "out"), "--include-remote",
                   env=env)
        assert one_error_line(proc) == (
            "[ERROR] Failed to download remote dataset for path data/d.bin: failed to get "
            f"object from S3 bucket: s3://data/d.bin: {server.endpoint} {S3_STALL}")

    out = tmp_path / "out2"
    reporter = InterruptingReporter(after=1 << 20,
                                    action=lambda: os.kill(server.process.pid, signal.SIGSTOP))
    try:
        with pytest.raises(RemoteDatasetError) as info:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("KIT_JUPYTER_TIMEOUT", LIMIT)
                unpack("stall:v1", dir=out, include_remote=True, home=tmp_path / "home",
                       reporter=reporter, env={k: v for k, v in env.items()
                                               if k.startswith("S3_")})
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    assert reporter.fired
    assert str(info.value) == (
        "failed to download remote dataset for path data/d.bin: failed to get object from S3 "
        f"bucket: s3://data/d.bin: {server.endpoint} {S3_STALL}")
    assert not (out / "data").exists()  # no temporary file; the directory made for it gone
