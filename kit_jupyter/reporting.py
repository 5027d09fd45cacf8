"""Injected progress and messages: the interface every layer reports through.

Library code never prints: every command takes a :class:`Reporter` and tells it about kit's info
and warning lines and about byte transfers (:class:`Task`). The adapters in :mod:`kit_jupyter.ui`
choose the implementation -- widgets in a live kernel, text in a terminal, nothing when asked.
This module is at the bottom of the package so that transports and commands can report without
depending on the user interface. Reporters are thread-safe (boto3 and our download pool report
from worker threads) and throttle redraws to about 10 per second, because unthrottled widget
updates trip Jupyter's IOPub rate limit and freeze the bar.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from kit_jupyter.errors import one_line

THROTTLE_SECONDS = 0.1


def format_bytes(n: float) -> str:
    """kit's ``output.FormatBytes``, the one size format of the package (``list``, local and
    remote, results and progress): binary units, one decimal rounded *down* (so 1 MiB - 1 B is
    ``1023.9 KiB``, never ``1024.0 KiB``), whole bytes below 1 KiB."""
    n = int(n)
    if n < 1024:
        return f"{n} B"
    size = n / 1024.0
    for suffix in ("KiB", "MiB", "GiB", "TiB"):
        if size < 1024:
            return f"{math.floor(size * 10) / 10:.1f} {suffix}"
        size /= 1024.0
    return f"{size:.1f} PiB"


def message_text(level: str, text: str) -> str:
    """The terminal form of one of kit's lines: warnings get kit's ``[WARN ]`` prefix (the
    text reporter, plain-text progress and results that repeat their messages all use it)
    and stay on that one line, whatever line break the outside text they quote holds (a
    U+2028 in a repository name made a second line). Info may span lines (``import``'s
    generated Kitfile)."""
    return f"[WARN ] {one_line(text)}" if level == "warning" else text


def positioned(label: str, noun: str, index: int, count: int) -> str:
    """A progress row's name with its place in the whole: ``model clf.bin (layer 2 of 4)``."""
    return f"{label} ({noun} {index} of {count})" if count > 1 else label


class Task:
    """One progress row. ``advance`` may be called from any thread, with negative values too
    (a retried range gives back the bytes it had counted)."""

    def __init__(self, reporter: Reporter, label: str, total: int | None,
                 parent: Task | None = None):
        self.label = label
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self.finished: float | None = None
        self.ok: bool | None = None
        self._reporter = reporter
        self.parent = parent

    def advance(self, n: int) -> None:
        with self._reporter._lock:
            self.done += n
            if self.parent is not None:
                self.parent.done += n
        self._reporter._changed(final=False)

    def finish(self, ok: bool = True) -> None:
        with self._reporter._lock:
            if self.finished is not None:
                return
            self.finished = time.monotonic()
            self.ok = ok
        self._reporter._changed(final=True)

    def __enter__(self) -> Task:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.finish(ok=exc_type is None)

    # derived values, read under the reporter's lock by renderers
    def rate(self) -> float:
        end = self.finished or time.monotonic()
        elapsed = max(end - self.started, 1e-6)
        return self.done / elapsed

    def eta(self) -> float | None:
        rate = self.rate()
        if self.total is None or rate <= 0 or self.finished is not None:
            return None
        return max(self.total - self.done, 0) / rate

    def fraction(self) -> float:
        if not self.total:
            return 1.0 if self.finished else 0.0
        return min(max(self.done / self.total, 0.0), 1.0)

    def stats_text(self) -> str:
        total = format_bytes(self.total) if self.total is not None else "?"
        parts = [f"{format_bytes(self.done)} / {total}", f"{format_bytes(self.rate())}/s"]
        eta = self.eta()
        if eta is not None:
            parts.append(f"ETA {eta:.0f}s")
        elif self.finished is not None:
            parts.append(f"in {self.finished - self.started:.1f}s")
        return ", ".join(parts)


class Reporter:
    """Base reporter: collects messages and tasks, draws nothing.

    Subclasses override ``_draw`` (called at most every ``THROTTLE_SECONDS`` and once more on
    every task's finish) and ``_emit`` (one message). ``messages`` keeps everything said, so
    tests and result objects can show it.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._last_draw = 0.0
        self.tasks: list[Task] = []
        self.messages: list[tuple[str, str]] = []
        self.error: BaseException | None = None

    def info(self, message: str) -> None:
        with self._lock:
            self.messages.append(("info", message))
        self._emit("info", message)

    def warning(self, message: str) -> None:
        with self._lock:
            self.messages.append(("warning", message))
        self._emit("warning", message)

    def task(self, label: str, total: int | None, parent: Task | None = None) -> Task:
        t = Task(self, label, total, parent)
        with self._lock:
            self.tasks.append(t)
        self._changed(final=True)
        return t

    def close(self, error: BaseException | None = None) -> None:
        """End of the command: draw the final state (widgets become a static summary).

        ``error`` is the exception that ended the command: every task still running is marked
        failed, so no display is left looking half-done."""
        with self._lock:
            self.error = error
            if error is not None:
                now = time.monotonic()
                for t in self.tasks:
                    if t.finished is None:
                        t.finished, t.ok = now, False
        self._changed(final=True)

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        """``with make_reporter() as r: push(..., reporter=r)`` closes it even on an error."""
        self.close()

    def _changed(self, final: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if not final and now - self._last_draw < THROTTLE_SECONDS:
                return
            self._last_draw = now
            self._draw()

    def _draw(self) -> None:  # pragma: no cover - overridden
        pass

    def _emit(self, level: str, message: str) -> None:  # pragma: no cover - overridden
        pass


class NullReporter(Reporter):
    """Keeps messages and counters (for result objects and tests) and shows nothing."""
