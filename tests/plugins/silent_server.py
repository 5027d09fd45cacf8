"""A TCP server on 127.0.0.1 that accepts connections and never answers.

What a client sees from an overloaded server, a hung process or a proxy that lost its upstream:
the connection succeeds, then nothing. Used as a registry and as an S3 endpoint by the deadline
tests (a SIGSTOPped real server is the other half: the kernel still completes its handshakes).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest


@dataclass
class SilentServer:
    port: int
    accepted: list[socket.socket] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    server = SilentServer(srv.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                server.accepted.append(srv.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join()
        for c in server.accepted:
            c.close()
        srv.close()
