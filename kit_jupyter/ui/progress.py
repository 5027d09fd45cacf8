"""Progress and message display: text in a terminal, ipywidgets in a live kernel.

The :class:`~kit_jupyter.reporting.Reporter` interface lives below every layer; these are its
implementations, chosen by the adapters (:func:`make_reporter`).
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable
from typing import IO, Any

from kit_jupyter.reporting import Reporter, Task


class TextReporter(Reporter):
    """Terminal output as kit prints it: info on ``out``, ``[WARN ]`` lines and ``\\r`` progress
    on ``err``. Progress lines are only drawn when ``progress`` is true."""

    def __init__(self, out: IO[str] | None = None, err: IO[str] | None = None,
                 progress: bool = True) -> None:
        super().__init__()
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self._progress = progress
        self._line_open = False
        self._last_width = 0
        self._drawn_finished: set[int] = set()

    def _emit(self, level: str, message: str) -> None:
        with self._lock:
            self._end_line()
            if level == "warning":
                self._err.write(f"[WARN ] {message}\n")
                self._err.flush()
            else:
                self._out.write(message + "\n")
                self._out.flush()

    def _end_line(self) -> None:
        if self._line_open:
            self._err.write("\n")
            self._line_open = False
            self._last_width = 0

    def _draw(self) -> None:
        if not self._progress:
            return
        for t in self.tasks:
            if id(t) in self._drawn_finished:
                continue
            line = f"{t.label}: {t.fraction() * 100:5.1f}% {t.stats_text()}"
            # pad over the previous, possibly longer, line drawn after the same \r
            padded = line.ljust(self._last_width)
            self._last_width = len(line)
            if t.finished is not None:
                self._drawn_finished.add(id(t))
                self._err.write(f"\r{padded}\n")
                self._line_open = False
                self._last_width = 0
            else:
                self._err.write(f"\r{padded}")
                self._line_open = True
                break  # one live line at a time in a terminal
        self._err.flush()


class WidgetReporter(Reporter):
    """ipywidgets rows (label, bar, stats) displayed once with a display id; messages go to a
    text area below them. ``close()`` replaces the live widgets by a static HTML/text summary so
    exported notebooks do not show a stale ``value=0.0`` repr."""

    def __init__(self, display: Callable[..., Any] | None = None, title: str = "") -> None:
        super().__init__()
        import ipywidgets as w  # lazy: keep %load_ext cheap
        from IPython.display import display as ipy_display

        self._w = w
        self._display = display or ipy_display
        self._title = title
        self._rows: dict[int, tuple[Any, Any, Any]] = {}
        self._rows_box = w.VBox([])
        self._log = w.HTML("")
        self.box = w.VBox([self._rows_box, self._log])  # bars above, kit's messages below
        self._handle: Any = None
        self._closed = False

    def _ensure_shown(self) -> None:
        if self._handle is None:
            self._handle = self._display(self.box, display_id=True)

    def _row(self, t: Task) -> tuple[Any, Any, Any]:
        row = self._rows.get(id(t))
        if row is None:
            w = self._w
            bar = w.FloatProgress(value=0.0, min=0.0, max=float(t.total or 1),
                                  description="", layout=w.Layout(width="40%"))
            name = w.Label(t.label, layout=w.Layout(width="30%"))
            stats = w.Label("")
            row = (name, bar, stats)
            self._rows[id(t)] = row
            self._rows_box.children = (*self._rows_box.children, w.HBox(list(row)))
        return row

    def _draw(self) -> None:
        if self._closed or not self.tasks:
            return
        self._ensure_shown()
        for t in self.tasks:
            _, bar, stats = self._row(t)
            with bar.hold_sync():
                bar.max = float(t.total or 1)
                bar.value = float(min(t.done, t.total)) if t.total else float(bool(t.finished))
                if t.finished is not None:
                    bar.bar_style = "success" if t.ok else "danger"
            stats.value = t.stats_text()

    def _emit(self, level: str, message: str) -> None:
        if self._closed:
            return
        with self._lock:
            color = "#b36b00" if level == "warning" else "inherit"
            prefix = "[WARN ] " if level == "warning" else ""
            line = f'<div style="color:{color};font-family:monospace">' \
                   f"{html.escape(prefix + message)}</div>"
            self._log.value += line
            self._ensure_shown()

    def close(self) -> None:
        with self._lock:
            self._draw()
            if self._closed or self._handle is None:
                self._closed = True
                return
            self._closed = True
            summary = ProgressSummary(list(self.tasks), list(self.messages))
            for row in self._rows.values():
                for widget in row:
                    widget.close()
            self.box.close()
            self._handle.update(summary)


class ProgressSummary:
    """The static end state of a reporter: one line per task and every message."""

    def __init__(self, tasks: list[Task], messages: list[tuple[str, str]]):
        self.tasks = tasks
        self.messages = messages

    def _lines(self) -> list[str]:
        lines = [f"{m if lvl == 'info' else '[WARN ] ' + m}" for lvl, m in self.messages]
        for t in self.tasks:
            state = "done" if t.ok else "FAILED" if t.ok is False else "stopped"
            lines.append(f"{t.label}: {state} {t.fraction() * 100:.0f}% ({t.stats_text()})")
        return lines

    def _repr_html_(self) -> str:
        rows = []
        for t in self.tasks:
            pct = t.fraction() * 100
            color = "#2e7d32" if t.ok else "#c62828"
            rows.append(
                f"<tr><td>{html.escape(t.label)}</td>"
                f'<td><div style="width:200px;background:#eee"><div style="width:{pct:.0f}%;'
                f'background:{color};height:10px"></div></div></td>'
                f"<td>{pct:.0f}%</td><td>{html.escape(t.stats_text())}</td></tr>")
        msgs = "".join(
            '<div style="font-family:monospace">'
            f'{html.escape(("[WARN ] " if lvl != "info" else "") + m)}</div>'
            for lvl, m in self.messages)
        table = f'<table class="kit-progress-summary">{"".join(rows)}</table>' if rows else ""
        return f"<div>{msgs}{table}</div>"

    def __repr__(self) -> str:
        return "\n".join(self._lines())

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


def in_kernel() -> bool:
    """True in a Jupyter kernel (where widgets can render), false in terminal IPython/scripts."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    ip = get_ipython()
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def make_reporter(mode: str = "auto") -> Reporter:
    """A reporter that shows kit's messages and progress, for a command's ``reporter=``.

    Commands called from Python show nothing unless given one: ``unpack(ref,
    reporter=make_reporter())`` draws live progress bars in a notebook and text in a terminal.

    Args:
        mode: ``auto`` (widgets in a Jupyter kernel, text elsewhere), ``widget``, ``text``, or
            ``none`` (kit's messages as text, no progress bars).

    Returns:
        Reporter: call ``close()`` when the command is done (a widget becomes a static summary).
    """
    if mode == "auto":
        mode = "widget" if in_kernel() else "text"
    if mode == "widget":
        return WidgetReporter()
    if mode == "text":
        return TextReporter()
    if mode == "none":
        return TextReporter(progress=False)
    raise ValueError(f"unknown progress mode {mode!r}")
