"""How long a silent server is waited for: one setting and one retry policy for every network call.

A registry or S3 server that accepts a connection and then says nothing (overloaded, stopped,
behind a broken proxy) must end a command with one line, not hang it. ``KIT_JUPYTER_TIMEOUT``
(seconds, default 30; read from the environment each time a command starts) is the time a
request may go without any progress -- connecting, waiting for an answer, or waiting for the next
bytes of a body -- including its retries. From it follow:

* the connect timeout (at most 5 s) and the per-read timeout (a third of the limit) of each
  attempt, so that a stall is noticed while there is still time for another attempt;
* the retries: a short back-off (0.25 s, then 1 s) and another attempt only for transport
  failures and overload answers, and only while the attempt could still finish within the limit.

A transfer that keeps moving is never cut off: the clock restarts with every byte that arrives.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from kit_jupyter.errors import KitError

ENV_TIMEOUT = "KIT_JUPYTER_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
MAX_CONNECT = 5.0
RETRY_DELAYS = (0.25, 1.0)  # at most three attempts

T = TypeVar("T")


@dataclass(frozen=True)
class Timeouts:
    """The no-progress limit and the per-attempt timeouts derived from it."""

    total: float = DEFAULT_TIMEOUT

    @property
    def connect(self) -> float:
        return min(MAX_CONNECT, self.total / 3)

    @property
    def read(self) -> float:
        return self.total / 3

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Timeouts:
        """``KIT_JUPYTER_TIMEOUT`` from ``env`` (default: the process environment, now)."""
        raw = (os.environ if env is None else env).get(ENV_TIMEOUT, "").strip()
        if not raw:
            return cls()
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not (value > 0 and value != float("inf")):
            raise KitError(f"{ENV_TIMEOUT} must be a number of seconds greater than 0, "
                           f"not {raw!r}")
        return cls(value)

    def hint(self) -> str:
        """How to wait longer, for the end of a timeout message."""
        return f"set {ENV_TIMEOUT} to wait longer (now {self.total:g}s)"


class Deadline:
    """The time left before a request that has made no progress is given up."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._start = clock()

    def progressed(self) -> None:
        self._start = self._clock()

    def remaining(self) -> float:
        return self.seconds - (self._clock() - self._start)


def retry(attempt: Callable[[Deadline], T], *, transient: Callable[[BaseException], bool],
          timeouts: Timeouts, attempt_time: float | None = None,
          clock: Callable[[], float] = time.monotonic) -> T:
    """``attempt(deadline)`` with the bounded retries above; the last failure is raised as it
    is. ``deadline`` tells an attempt how much time is left (to cut its own timeouts).

    ``attempt_time`` is the longest one attempt can wait without progress (default: the
    per-read timeout); another attempt is made only if that much time is left after the
    back-off.
    """
    deadline = Deadline(timeouts.total, clock)
    budget = timeouts.read if attempt_time is None else attempt_time
    for delay in (*RETRY_DELAYS, None):
        try:
            return attempt(deadline)
        except BaseException as exc:
            if (delay is None or not transient(exc)
                    or deadline.remaining() < delay + budget):
                raise
        time.sleep(delay)  # looked up at call time: tests record the back-off instead
    raise AssertionError("unreachable")  # pragma: no cover
