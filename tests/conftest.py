"""Shared fixtures. Server fixtures live in tests/plugins/ (one module per real service)."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest

from kit_jupyter._fs import BackgroundSync, syncing_file

# Every module in tests/plugins/ is a plugin (one per real service), so adding a fixture module
# never means editing this file.
pytest_plugins = sorted(
    f"tests.plugins.{p.stem}"
    for p in (Path(__file__).parent / "plugins").glob("*.py")
    if p.stem != "__init__"
)


@pytest.fixture
def kitops_home(tmp_path, monkeypatch):
    """A private KITOPS_HOME so tests never touch the user's storage."""
    home = tmp_path / "kitops-home"
    home.mkdir()
    monkeypatch.setenv("KITOPS_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def _private_home_for_every_test(tmp_path_factory, monkeypatch):
    """No test writes the user's KITOPS_HOME (the remote-dataset cache lives there), and no test
    sees what another one cached."""
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path_factory.mktemp("home")))


class FlushSpy:
    """Which files a writer flushes as it writes (:func:`kit_jupyter._fs.syncing_file`, watched
    in the writer's module): their paths, and whether every pass ended with the writer. With
    ``fail``, the passes meet an I/O error before the writer goes on (deterministically: the
    spy waits for it), which the writer must report, as its own fsync would have."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._mp = monkeypatch
        self.files: list[str] = []
        self._made: list[BackgroundSync] = []

    def watch(self, module: object, *, fail: bool = False) -> FlushSpy:
        def spy(fd: int, period: float | None = None) -> BackgroundSync:
            self.files.append(os.readlink(f"/proc/self/fd/{fd}"))
            if fail:
                bg = BackgroundSync(_io_error, period=0)
                bg._thread.join(10)  # the first pass has met the error
            else:
                bg = syncing_file(fd, period)
            self._made.append(bg)
            return bg

        self._mp.setattr(module, "syncing_file", spy)
        return self

    @property
    def all_ended(self) -> bool:
        return all(not bg._thread.is_alive() for bg in self._made)


class WriteOverlap:
    """How many threads were inside ``os.pwrite`` at once, at most (each call is held for a
    millisecond, so writes that are not serialised overlap): the ranged downloads write one
    at a time (:class:`kit_jupyter._fs.SharedFile`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = self.most = 0
        self._inside = 0
        self._lock = threading.Lock()
        real = os.pwrite

        def spy(fd: int, data, offset: int) -> int:  # type: ignore[no-untyped-def]
            with self._lock:
                self._inside += 1
                self.calls += 1
                self.most = max(self.most, self._inside)
            try:
                time.sleep(0.001)
                return real(fd, data, offset)
            finally:
                with self._lock:
                    self._inside -= 1

        monkeypatch.setattr(os, "pwrite", spy)


@pytest.fixture
def write_overlap(monkeypatch):
    return WriteOverlap(monkeypatch)


def _io_error() -> None:
    raise OSError(errno.EIO, os.strerror(errno.EIO))


@pytest.fixture
def flush_spy(monkeypatch):
    return FlushSpy(monkeypatch)
