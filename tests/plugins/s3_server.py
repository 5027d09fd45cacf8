"""A real S3-compatible server for tests: moto in server mode on 127.0.0.1, over HTTP.

The server is :func:`kit_jupyter.services.start_s3` -- the one the demo notebooks use -- as its
own process, so that a test can kill it mid-download and see what a client sees when a server
dies. One server per session, state reset before each test; tests that kill a server or need
credential checks (``auth_free_actions``) get their own process from ``moto_factory``.
Credentials are dummies. The smallest multipart part is lowered to ``PART_MIN`` so multipart
objects stay small (moto copies the whole object on every GET).

``tcp_proxy`` puts a byte-counting TCP proxy in front of a server: it logs the requests (method,
path, Range) and can cut the next response after N bytes with a reset, which is how a flaky
network looks to the client.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterable

import pytest

from kit_jupyter import services
from kit_jupyter.services import S3Server, ServiceError

ACCESS_KEY = "kitjupyter-test-key"
SECRET_KEY = "kitjupyter-moto-SECRET-5f1e"  # tests assert this never shows up anywhere
PART_MIN = 256 * 1024
REGION = "us-east-1"


def multipart_etag(chunks: Iterable[bytes], part_size: int) -> str:
    """The ETag S3 gives a multipart upload of these bytes in ``part_size`` parts (no quotes):
    the test oracle for every multipart object a test or the demo uploads."""
    digests: list[bytes] = []
    h = hashlib.md5()
    filled = 0
    for block in chunks:
        view = memoryview(block)
        while view:
            take = min(part_size - filled, len(view))
            h.update(view[:take])
            filled += take
            view = view[take:]
            if filled == part_size:
                digests.append(h.digest())
                h, filled = hashlib.md5(), 0
    if filled or not digests:
        digests.append(h.digest())
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def start_s3(root, **kw) -> S3Server:
    """:func:`kit_jupyter.services.start_s3` with the suite's credentials and small multipart
    parts; a start failure fails the test with one line."""
    try:
        return services.start_s3(root, access_key=ACCESS_KEY, secret_key=SECRET_KEY, region=REGION,
                        part_min_size=PART_MIN, **kw)
    except ServiceError as e:
        pytest.fail(str(e), pytrace=False)


class S3Fixture:
    """What a test needs: the endpoint, kit's env vars, an admin client, object helpers."""

    def __init__(self, server: S3Server, endpoint: str | None = None):
        self.server = server
        self.endpoint = endpoint or server.endpoint
        self.client = server.client()
        self.secret_key = SECRET_KEY

    def env(self, **overrides: str | None) -> dict[str, str]:
        return self.server.env(**{"S3_API_ENDPOINT": self.endpoint, **overrides})

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
        assert etag == multipart_etag([data], part_size)
        return {"etag": etag}


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    server = start_s3(tmp_path_factory.mktemp("moto"))
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
    servers: list[S3Server] = []

    def make(**kw) -> S3Server:
        s = start_s3(tmp_path / f"moto-{len(servers)}", **kw)
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
        self.heads: list[bytes] = []  # each request's whole head, request line and headers
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
                self.heads.append(head)
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
