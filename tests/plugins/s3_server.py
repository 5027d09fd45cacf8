"""A real S3-compatible server for tests: moto in server mode on 127.0.0.1, over HTTP.

moto runs as its own process (``moto_server``) so that a test can kill it mid-download and see
what a client sees when a server dies (a thread in our process could not be killed). One server
per session, state reset before each test; tests that kill a server or need credential checks
(``INITIAL_NO_AUTH_ACTION_COUNT``) get their own process from ``moto_factory``. Credentials are
dummies. ``S3_UPLOAD_PART_MIN_SIZE`` is lowered so multipart objects stay small (moto copies the
whole object on every GET).

``tcp_proxy`` puts a byte-counting TCP proxy in front of a server: it logs the requests (method,
path, Range) and can cut the next response after N bytes with a reset, which is how a flaky
network looks to the client.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ACCESS_KEY = "kitjupyter-test-key"
SECRET_KEY = "kitjupyter-moto-SECRET-5f1e"  # tests assert this never shows up anywhere
PART_MIN = 256 * 1024
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _moto_server_bin() -> str:
    cand = Path(sys.executable).with_name("moto_server")
    return str(cand) if cand.exists() else "moto_server"


def s3_client(endpoint: str, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY,
              region: str = REGION):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"))


class MotoServer:
    def __init__(self, log_dir: Path, *, auth_free_actions: int | None = None):
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = Path(log_dir) / f"moto-{self.port}.log"
        self.auth_free_actions = auth_free_actions
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> MotoServer:
        env = dict(os.environ, S3_UPLOAD_PART_MIN_SIZE=str(PART_MIN),
                   MOTO_S3_DEFAULT_KEY_BUFFER_SIZE=str(16 << 20))
        if self.auth_free_actions is not None:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(self.auth_free_actions)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [_moto_server_bin(), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
                return self
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"moto_server did not start on {self.endpoint}")

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).close()

    def kill(self) -> None:
        """SIGKILL: connections die mid-response, as when a server crashes."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


class S3Fixture:
    """What a test needs: the endpoint, kit's env vars, an admin client, object helpers."""

    def __init__(self, server: MotoServer, endpoint: str | None = None):
        self.server = server
        self.endpoint = endpoint or server.endpoint
        self.client = s3_client(server.endpoint)
        self.secret_key = SECRET_KEY

    def env(self, **overrides: str) -> dict[str, str]:
        env = {"S3_API_ENDPOINT": self.endpoint, "S3_REGION": REGION,
               "S3_ACCESS_KEY_ID": ACCESS_KEY, "S3_SECRET_KEY": SECRET_KEY}
        env.update(overrides)
        return {k: v for k, v in env.items() if v is not None}

    def bucket(self, name: str = "data", *, versioned: bool = False, region: str = REGION) -> str:
        kw = {} if region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": region}}
        self.client.create_bucket(Bucket=name, **kw)
        if versioned:
            self.client.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def put(self, bucket: str, key: str, data: bytes) -> dict:
        r = self.client.put_object(Bucket=bucket, Key=key, Body=data)
        return {"etag": r["ETag"].strip('"'), "version": r.get("VersionId")}

    def put_multipart(self, bucket: str, key: str, data: bytes, part_size: int) -> dict:
        mp = self.client.create_multipart_upload(Bucket=bucket, Key=key)
        parts = []
        for i, start in enumerate(range(0, len(data), part_size), start=1):
            r = self.client.upload_part(Bucket=bucket, Key=key, UploadId=mp["UploadId"],
                                        PartNumber=i, Body=data[start:start + part_size])
            parts.append({"PartNumber": i, "ETag": r["ETag"]})
        self.client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=mp["UploadId"],
                                              MultipartUpload={"Parts": parts})
        etag = self.client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        digests = b"".join(hashlib.md5(data[s:s + part_size]).digest()
                           for s in range(0, len(data), part_size))
        assert etag == f"{hashlib.md5(digests).hexdigest()}-{len(parts)}"
        return {"etag": etag}


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


@pytest.fixture
def s3(moto_server):
    """The session's moto server, emptied for this test."""
    moto_server.reset()
    return S3Fixture(moto_server)


@pytest.fixture
def moto_factory(tmp_path):
    """Private moto processes (to kill mid-download, or with credential checks)."""
    servers: list[MotoServer] = []

    def make(**kw) -> MotoServer:
        s = MotoServer(tmp_path, **kw).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


class TcpProxy:
    """Forwards 127.0.0.1:port to an upstream port; logs requests; can reset a response."""

    _REQ = re.compile(rb"^(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP/1\.[01]\r\n", re.M)

    def __init__(self, upstream_port: int):
        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.requests: list[tuple[str, str, str | None]] = []   # method, path, Range
        self.cuts_done = 0
        self._cut_after: int | None = None
        self._cuts_left = 0
        self._lock = threading.Lock()
        self._closed = False
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_next_response(self, after_bytes: int, times: int = 1) -> None:
        with self._lock:
            self._cut_after, self._cuts_left = after_bytes, times

    def gets(self) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[0] == "GET"]

    def _accept(self) -> None:
        while not self._closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream))
            with self._lock:
                self._conns += [c, u]
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()

    def _log_requests(self, data: bytes) -> None:
        for m in self._REQ.finditer(data):
            head = data[m.start():data.find(b"\r\n\r\n", m.start())]
            rng = re.search(rb"\r\nrange: *(\S+)", head, re.I)
            with self._lock:
                self.requests.append((m.group(1).decode(), m.group(2).decode(),
                                      rng.group(1).decode() if rng else None))

    def _pump(self, c: socket.socket, u: socket.socket) -> None:
        """Both directions in one thread, so a cut closes sockets nobody is blocked on (a socket
        closed under another thread's recv() is only really closed when that recv returns).
        A normal end is a graceful close; only a cut resets the connection."""
        sent = 0
        reset = False
        sel = selectors.DefaultSelector()
        sel.register(c, selectors.EVENT_READ)
        sel.register(u, selectors.EVENT_READ)
        try:
            while not self._closed:
                for key, _ in sel.select(timeout=1):
                    src = key.fileobj
                    data = src.recv(65536)
                    if not data:
                        return
                    if src is c:
                        self._log_requests(data)
                        u.sendall(data)
                        continue
                    with self._lock:
                        cut = self._cut_after is not None and self._cuts_left > 0 \
                            and sent + len(data) > self._cut_after
                        if cut:
                            self._cuts_left -= 1
                            self.cuts_done += 1
                    if cut:
                        c.sendall(data[: max(0, self._cut_after - sent)])
                        time.sleep(0.3)  # let the client read it: an RST drops unread data
                        reset = True
                        return
                    c.sendall(data)
                    sent += len(data)
        except OSError:
            pass
        finally:
            sel.close()
            for s in (c, u):
                with contextlib.suppress(OSError):
                    if reset:   # RST, as a broken network does
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
                    s.close()

    def close(self) -> None:
        self._closed = True
        self.sock.close()
        with self._lock:
            for s in self._conns:
                with contextlib.suppress(OSError):
                    s.close()


@pytest.fixture
def tcp_proxy():
    proxies: list[TcpProxy] = []

    def make(upstream_port: int) -> TcpProxy:
        p = TcpProxy(upstream_port)
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        p.close()
