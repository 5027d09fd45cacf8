"""Progress and message display: text in a terminal, a live widget in a kernel, static at the end.

The :class:`~kit_jupyter.reporting.Reporter` interface lives below every layer; these are its
implementations, chosen by the adapters (:func:`make_reporter`).

In a kernel, widgets exist only while something is live. A command that only says something
(``list``, ``validate``, ``version``) creates no widget at all, and neither does one whose tasks
all end within ``delay`` seconds (a local pack of a small project): until then the display is a
plain HTML output updated through its display id. A task still running after ``delay`` turns the
display into one ``HTML`` widget (updated about ten times a second); when the command ends, the
widget, its layout and its style are closed and the display is replaced by a static text/html +
text/plain bundle. So a saved notebook keeps no widget state of ours, and a plain
``jupyter nbconvert --to html``, GitHub and VS Code show the final summary.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from kit_jupyter.reporting import Reporter, Task, format_bytes, message_text

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


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
                self._err.write(message_text(level, message) + "\n")
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
            if t.ok is False:
                line += " FAILED"
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


# -- the one renderer of a reporter's state (live widget, interim and final display) -----------

def _visible(tasks: Sequence[Task]) -> list[Task]:
    """Every task but an aggregate whose one child covers all of it (the child's row says the
    same); an aggregate whose other children have not started yet stays, so it does not blink
    out and back while its first child runs."""
    children: dict[int, list[Task]] = {}
    for t in tasks:
        if t.parent is not None:
            children.setdefault(id(t.parent), []).append(t)
    return [t for t in tasks
            if not (len(children.get(id(t), [])) == 1 and children[id(t)][0].total == t.total)]


def _task_state(t: Task) -> str:
    if t.finished is None:
        return "running"
    return "done" if t.ok else "failed"


def _task_rows(tasks: Sequence[Task]) -> str:
    # the HTML pieces load with the first display: %load_ext must not import kit_jupyter.commands
    from kit_jupyter.commands.render import Cell, badge, bar, esc, html_table

    rows, classes = [], []
    for t in tasks:
        state = _task_state(t)
        kind = {"running": "running", "done": "ok", "failed": "error"}[state]
        pct = f"{t.fraction() * 100:.0f}%"
        status = badge("failed", "error") if state == "failed" else ""
        rows.append([t.label, Cell(markup=bar(t.fraction(), kind)), Cell(pct, numeric=True),
                     Cell(markup=f"{status} {esc(t.stats_text())}".strip())])
        classes.append(f"kit-task kit-task-{state}")
    return html_table(None, rows, cls="kit-progress-summary", row_classes=classes)


def _state(reporter: Reporter, closed: bool) -> str:
    if not closed:
        return "running"
    if reporter.error is None:
        return "done"
    return "interrupted" if isinstance(reporter.error, KeyboardInterrupt) else "failed"


def _elapsed(reporter: Reporter) -> float:
    if not reporter.tasks:
        return 0.0
    start = min(t.started for t in reporter.tasks)
    end = max((t.finished or time.monotonic()) for t in reporter.tasks)
    return end - start


def progress_html(reporter: Reporter, *, closed: bool) -> str:
    """Running: the bars, then kit's lines. Done: warnings stay in view, the rest folds into one
    summary line. Failed or interrupted: everything in view, below a red badge."""
    from kit_jupyter.commands.render import badge, details, esc, messages_html

    state = _state(reporter, closed)
    tasks = _visible(reporter.tasks)
    table = _task_rows(tasks) if tasks else ""
    msgs = list(reporter.messages)
    if state == "running":
        return f'<div class="kit-progress">{table}{messages_html(msgs)}</div>'
    if state != "done":
        head = (f'<div class="kit-progress-state" style="padding:2px 0">{badge(state, "error")} '
                f"after {_elapsed(reporter):.1f} s</div>")
        return f'<div class="kit-progress kit-failed">{head}{table}{messages_html(msgs)}</div>'
    warnings = [m for m in msgs if m[0] == "warning"]
    infos = [m for m in msgs if m[0] != "warning"]
    if not tasks and len(infos) <= 1:
        return f'<div class="kit-progress">{messages_html(msgs)}</div>'
    parts = []
    if tasks:
        parents = {id(t.parent) for t in tasks if t.parent is not None}
        total = sum(t.done for t in tasks if id(t) not in parents)  # bytes counted once
        parts.append(f"{len(tasks)} task{'s' if len(tasks) != 1 else ''}, "
                     f"{format_bytes(total)} in {_elapsed(reporter):.1f} s")
    if infos:
        parts.append(f"{len(infos)} line{'s' if len(infos) != 1 else ''} of output")
    summary = f'{badge("done", "ok")} {esc(" · ".join(parts))}'
    return (f'<div class="kit-progress kit-done">{messages_html(warnings)}'
            f"{details(summary, table + messages_html(infos))}</div>")


def progress_text(reporter: Reporter, *, closed: bool) -> str:
    state = _state(reporter, closed)
    lines = [message_text(level, m) for level, m in reporter.messages]
    for t in _visible(reporter.tasks):
        lines.append(f"{t.label}: {_task_state(t)} {t.fraction() * 100:.0f}% "
                     f"({t.stats_text()})")
    if state in ("failed", "interrupted"):
        lines.insert(0, f"{state} after {_elapsed(reporter):.1f} s")
    return "\n".join(lines)


def _close_tree(widget: Any) -> None:
    """Close a widget, its children, and the layout and style models every widget owns
    (``Widget.close()`` alone leaves them in the kernel and in a saved notebook)."""
    for child in getattr(widget, "children", ()) or ():
        _close_tree(child)
    for attr in ("layout", "style"):
        sub = getattr(widget, attr, None)
        if sub is not None and hasattr(sub, "close"):
            sub.close()
    widget.close()


#: seconds a task runs before its display becomes a live widget (``KitMagics.progress_delay``)
LIVE_DELAY = 0.5


class WidgetReporter(Reporter):
    """Live progress in a kernel: see the module docstring. ``display`` is IPython's (tests
    inject a recorder); it is called with a raw mime bundle and ``display_id=True``. Draws come
    from worker threads too: ipykernel routes their output to the running cell."""

    def __init__(self, display: Callable[..., Any] | None = None,
                 delay: float = LIVE_DELAY) -> None:
        super().__init__()
        self.delay = delay
        self._display = display
        self._handle: Any = None
        self._widget: Any = None
        self._closed = False

    def _show(self, bundle: dict[str, Any]) -> None:
        if self._handle is None:
            if self._display is not None:
                self._handle = self._display(bundle, raw=True, display_id=True)
            else:
                from IPython.display import display  # lazy: keep %load_ext cheap

                self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def _static(self, closed: bool) -> dict[str, Any]:
        return {"text/plain": progress_text(self, closed=closed),
                "text/html": progress_html(self, closed=closed)}

    def _draw(self) -> None:
        if self._closed:
            return
        running = [t.started for t in self.tasks if t.finished is None]
        if self._widget is not None:
            self._widget.value = progress_html(self, closed=False)
        elif running and time.monotonic() - min(running) >= self.delay:
            import ipywidgets  # lazy: only a live task needs it

            self._widget = ipywidgets.HTML(progress_html(self, closed=False))
            self._widget.add_class("kit-progress-live")
            bundle = self._static(closed=False)
            bundle[WIDGET_VIEW] = {"version_major": 2, "version_minor": 0,
                                   "model_id": self._widget.model_id}
            self._show(bundle)
        elif self.tasks or self.messages:
            self._show(self._static(closed=False))

    def _emit(self, level: str, message: str) -> None:
        self._changed(final=True)

    def close(self, error: BaseException | None = None) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True  # no more live draws
            super().close(error)  # marks unfinished tasks failed
            if self._widget is not None:
                _close_tree(self._widget)
                self._widget = None
            if self._handle is not None or self.tasks or self.messages:
                self._show(self._static(closed=True))


def in_kernel() -> bool:
    """True in a Jupyter kernel (where widgets can render), false in terminal IPython/scripts."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    ip = get_ipython()
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def make_reporter(mode: str = "auto", *, delay: float = LIVE_DELAY) -> Reporter:
    """A reporter that shows kit's messages and progress, for a command's ``reporter=``.

    Commands called from Python show nothing unless given one: ``unpack(ref,
    reporter=make_reporter())`` draws live progress in a notebook and text in a terminal.

    Args:
        mode: ``auto`` (widgets in a Jupyter kernel, text elsewhere), ``widget``, ``text``, or
            ``none`` (kit's messages as text, no progress bars). In a kernel, text goes to
            stdout only: a notebook shows stderr as an error block.
        delay: seconds a task runs before its display becomes a live widget.

    Returns:
        Reporter: use it in a ``with`` block (or call ``close()``) so that when the command is
            done its display becomes static.
    """
    kernel = in_kernel()
    if mode == "auto":
        mode = "widget" if kernel else "text"
    if mode == "widget":
        return WidgetReporter(delay=delay)
    err = sys.stdout if kernel else None
    if mode == "text":
        return TextReporter(err=err)
    if mode == "none":
        return TextReporter(progress=False, err=err)
    raise ValueError(f"unknown progress mode {mode!r}")
