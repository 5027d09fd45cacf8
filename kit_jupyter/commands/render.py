"""HTML building blocks shared by every result table, the findings table and the progress summary.

Everything here renders to *static* HTML with *inline* styles, because that is what survives: a
plain ``jupyter nbconvert --to html``, GitHub's and VS Code's renderers, and a notebook reopened
untrusted (JupyterLab's sanitizer removes ``<style>`` elements and every ``var(...)`` value, but
keeps plain inline declarations).

Colours follow the JupyterLab theme through its ``--jp-*`` variables. Each coloured declaration
is written twice -- a plain fallback first, then the ``var()`` form -- so the sanitizer drops only
the second. Text is never coloured on the page background (no single colour reaches WCAG AA
4.5:1 on both JupyterLab Light's white and Dark's #111): text inherits the theme's font colour,
and colour carries meaning through badges, whose foreground is fixed for AA contrast on both
themes' badge backgrounds:

==========  ===========================  ================  ================
badge       background (Light / Dark)    text              contrast L / D
==========  ===========================  ================  ================
error       --jp-error-color0 b71c1c/d32f2f   #fff          6.57 / 4.98
warning     --jp-warn-color0  e65100/f57c00   #000          5.54 / 7.77
ok          --jp-success-color1 388e3c/4caf50 #000          5.10 / 7.56
==========  ===========================  ================  ================
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kit_jupyter.errors import KitError
from kit_jupyter.reporting import format_bytes

#: badge kind -> (JupyterLab variable, fallback background, text colour); see the module table
BADGES: dict[str, tuple[str, str, str]] = {
    "error": ("--jp-error-color0", "#b71c1c", "#fff"),
    "warning": ("--jp-warn-color0", "#e65100", "#000"),
    "ok": ("--jp-success-color1", "#388e3c", "#000"),
}
#: progress bar fills (not text: no contrast requirement, but the same theme colours)
BAR_FILL = {"ok": ("--jp-success-color1", "#388e3c"), "error": ("--jp-error-color0", "#b71c1c"),
            "running": ("--jp-brand-color1", "#1976d2")}
#: a neutral track and rule that sit well on a light and a dark page alike
TRACK = ("--jp-layout-color2", "rgba(128,128,128,0.25)")
RULE = ("--jp-border-color1", "rgba(128,128,128,0.5)")

MONO = "font-family:monospace;font-family:var(--jp-code-font-family,monospace)"
_CELL = "padding:2px 8px;vertical-align:top"


def themed(prop: str, var: str, fallback: str, template: str = "{}") -> str:
    """``prop`` from a JupyterLab variable, with a fallback that survives the sanitizer;
    ``template`` places the colour in a longer value (``1px solid {}``)."""
    return (f"{prop}:{template.format(fallback)};"
            f"{prop}:{template.format(f'var({var},{fallback})')}")


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def badge(text: str, kind: str) -> str:
    var, bg, fg = BADGES[kind]
    return (f'<span class="kit-badge kit-badge-{kind}" style="{themed("background", var, bg)};'
            f'color:{fg};border-radius:3px;padding:0 5px;font-weight:bold;white-space:nowrap">'
            f"{esc(text)}</span>")


def bar(fraction: float, kind: str) -> str:
    """A static bar (the live display uses the same markup): track plus fill, with the
    percentage as an ARIA value so tests and screen readers read it."""
    pct = max(0.0, min(1.0, fraction)) * 100
    var, fill = BAR_FILL[kind]
    return (f'<div class="kit-bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" '
            f'aria-valuenow="{pct:.0f}" style="width:160px;height:10px;'
            f'{themed("background", *TRACK)};border-radius:2px;display:inline-block">'
            f'<div style="width:{pct:.1f}%;height:10px;{themed("background", var, fill)};'
            f'border-radius:2px"></div></div>')


def details(summary_html: str, body_html: str) -> str:
    """Folded content: readable in an export (``<details>`` is allowed by the sanitizer) and
    out of the way in the notebook."""
    return (f'<details class="kit-details"><summary style="cursor:pointer">'
            f"{summary_html}</summary>{body_html}</details>")


@dataclass(frozen=True)
class Cell:
    """One table cell: ``text`` (escaped), right-aligned when ``numeric``, ``title`` as a
    tooltip (the full digest behind a short one), monospace when ``mono``; ``markup`` replaces
    the text with ready HTML (a badge); ``style`` adds inline CSS (diff's row tints)."""

    text: str = ""
    numeric: bool = False
    title: str | None = None
    mono: bool = False
    markup: str | None = None
    style: str = ""

    def html(self, tag: str = "td", extra_style: str = "") -> str:
        style = f"{_CELL};text-align:{'right' if self.numeric else 'left'}{extra_style}"
        if self.numeric:
            style += ";white-space:nowrap"
        if self.mono:
            style += f";{MONO}"
        if self.style:
            style += f";{self.style}"
        title = f' title="{esc(self.title)}"' if self.title else ""
        body = self.markup if self.markup is not None else esc(self.text)
        return f'<{tag} style="{style}"{title}>{body}</{tag}>'


def cell(value: Any) -> Cell:
    """Numbers right-aligned, everything else left-aligned text."""
    if isinstance(value, Cell):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Cell(str(value), numeric=True)
    return Cell("" if value is None else str(value))


def short_digest(digest: str | None, n: int = 12) -> str:
    """``sha256:<64 hex>`` -> the first ``n`` hex digits, as docker shows image ids."""
    if not digest:
        return ""
    _, _, hexpart = digest.partition(":")
    return (hexpart or digest)[:n]


def digest_cell(digest: str | None) -> Cell:
    return Cell(short_digest(digest), title=digest or None, mono=True)


def size_cell(size: int | None) -> Cell:
    if size is None:
        return Cell("", numeric=True)
    return Cell(format_bytes(int(size)), numeric=True, title=f"{int(size):,} bytes")


def html_table(header: Sequence[str] | None, rows: Iterable[Sequence[Any]], caption: str = "",
               *, cls: str = "kit-result", row_classes: Sequence[str] | None = None,
               numeric: Sequence[bool] | None = None) -> str:
    """A table with inline styles only. Cells are values or :class:`Cell`; a header cell is
    right-aligned when its column is (``numeric``, else guessed from the first row)."""
    rows = [[cell(c) for c in r] for r in rows]
    if numeric is None:
        numeric = [c.numeric for c in rows[0]] if rows else [False] * len(header or [])
    head = ""
    if header:
        rule = ";" + themed("border-bottom", *RULE, template="1px solid {}")
        head = "<thead><tr>" + "".join(
            Cell(h, numeric=i < len(numeric) and numeric[i]).html("th", rule)
            for i, h in enumerate(header)) + "</tr></thead>"
    body = []
    for i, r in enumerate(rows):
        klass = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{klass}>" + "".join(c.html() for c in r) + "</tr>")
    cap = (f'<caption style="caption-side:top;text-align:left;font-weight:bold;padding:2px 8px">'
           f"{esc(caption)}</caption>") if caption else ""
    return (f'<table class="{esc(cls)}" style="border-collapse:collapse;margin:0">'
            f"{cap}{head}<tbody>{''.join(body)}</tbody></table>")


def messages_html(messages: Sequence[tuple[str, str]]) -> str:
    """kit's lines as kit prints them, warnings with a badge instead of ``[WARN ]``."""
    out = []
    for level, text in messages:
        mark = badge("warning", "warning") + " " if level == "warning" else ""
        out.append(f'<div class="kit-message kit-{esc(level)}" style="{MONO};'
                   f'white-space:pre-wrap">{mark}{esc(text)}</div>')
    return "".join(out)


def to_pandas(records: Sequence[dict[str, Any]]) -> Any:
    """A result's rows as a ``pandas.DataFrame``; pandas is optional, so its absence is a
    user error with the fix, not a traceback."""
    try:
        import pandas  # optional: only for this method
    except ImportError:
        raise KitError("to_pandas() needs pandas (pip install pandas)") from None
    frame = pandas.DataFrame.from_records(list(records))
    if "size" in frame.columns:
        frame["size"] = frame["size"].astype("Int64")  # bytes stay integers, missing ones <NA>
    return frame
