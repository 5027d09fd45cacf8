"""The findings of a Kitfile check, as a result object.

Findings are static, so they render as static output only -- an HTML table (inline styles, see
:mod:`kit_jupyter.commands.render`) and aligned text -- never as widgets: the same table shows in
the live notebook, in a plain ``jupyter nbconvert --to html`` export, on GitHub, in VS Code and
in a notebook reopened untrusted. The object itself stays plain data, so tests and CI can read
``report.findings`` and ``report.to_json()`` without a kernel.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kit_jupyter.commands.render import MONO, Cell, badge, esc, html_table, to_pandas

FINDING_HEADER = ["LINE", "SEVERITY", "FIELD", "MESSAGE"]


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclass(repr=False)
class ValidationReport:
    """What ``%%kitfile`` and ``%kit validate`` return: every finding for one Kitfile.

    Attributes: ``findings`` (errors and warnings: severity, message, field path, line, hint),
    ``valid`` (no errors), ``errors`` / ``warnings``, ``kitfile`` (the parsed Kitfile, or None when
    the YAML could not be read at all), ``partial`` (the Kitfile decoded only in part: values with
    decode errors are left out of it), ``data`` / ``to_json()`` (the findings as JSON values).
    """

    findings: Sequence[Any]
    source: str = "Kitfile"
    kitfile: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: what ``%%kitfile --fix`` changed in the cell, one line per edit
    fixed: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        return bool(getattr(self.kitfile, "partial", False))

    @property
    def errors(self) -> list[Any]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Any]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def valid(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if not self.findings:
            return f"{self.source}: valid, no findings"
        counts = [_plural(len(self.errors), "error")] if self.errors else []
        if self.warnings:
            counts.append(_plural(len(self.warnings), "warning"))
        state = "valid" if self.valid else "invalid"
        return f"{self.source}: {state}, {', '.join(counts)}"

    def partial_note(self) -> str:
        if not self.partial:
            return ""
        return ("The Kitfile object is partial: values with decode errors are left out of it.")

    def to_json_obj(self) -> dict[str, Any]:
        """``{"valid", "findings": [{severity, message, field, line[, hint]}]}``; ``hint`` only
        where there is one, so the shape of kit-style findings stays as it was."""
        findings = []
        for f in self.findings:
            item = {"severity": f.severity, "message": f.message, "field": f.field,
                    "line": f.line}
            if getattr(f, "hint", None):
                item["hint"] = f.hint
            findings.append(item)
        return {"valid": self.valid, "findings": findings}

    def to_json(self) -> str:
        return json.dumps(self.to_json_obj(), ensure_ascii=False)

    @property
    def data(self) -> dict[str, Any]:
        return self.to_json_obj()

    def to_pandas(self) -> Any:
        """The findings as a ``pandas.DataFrame`` (one row per finding)."""
        return to_pandas([{"line": f.line, "severity": f.severity, "field": f.field,
                           "message": f.message, "hint": getattr(f, "hint", None)}
                          for f in self.findings])

    # -- text ------------------------------------------------------------------------------
    def text(self) -> str:
        """One line per finding: line, severity, field, message (and the hint below it)."""
        lines = [self.summary()]
        lines += [f"fixed in the cell: {change}" for change in self.fixed]
        if self.partial:
            lines.append(self.partial_note())
        cells = [(f"line {f.line}" if f.line else "", str(f.severity), f.field or "")
                 for f in self.findings]
        widths = [max((len(c[i]) for c in cells), default=0) for i in range(3)]
        for f, (where, sev, fld) in zip(self.findings, cells, strict=True):
            message, hint = f.message, getattr(f, "hint", None)
            cols = [c.ljust(w) for c, w in zip((where, sev, fld), widths, strict=True) if w]
            lines.append("  " + "  ".join([*cols, message]))
            if hint:
                indent = len("  ".join(cols)) + 2 if cols else 0
                lines.append("  " + " " * indent + f"hint: {hint}")
        return "\n".join(line.rstrip() for line in lines)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return f"<ValidationReport: {self.summary()}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())

    # -- html ------------------------------------------------------------------------------
    def _summary_html(self) -> str:
        mark = badge("valid", "ok") if self.valid else badge("invalid", "error")
        _, _, counts = self.summary().partition(": ")
        counts = counts.split(", ", 1)[1] if ", " in counts else "no findings"
        note = (f'<div class="kit-partial">{esc(self.partial_note())}</div>'
                if self.partial else "")
        fixed = "".join(f'<div class="kit-fixed">{badge("fixed", "ok")} {esc(change)}</div>'
                        for change in self.fixed)
        return (f'<div class="kit-summary" style="padding:2px 0">{mark} '
                f"<b>{esc(self.source)}</b>: {esc(counts)}</div>{fixed}{note}")

    def _rows(self) -> list[list[Cell]]:
        rows = []
        for f in self.findings:
            message = esc(f.message)
            hint = getattr(f, "hint", None)
            if hint:
                message += (f'<div class="kit-hint" style="{MONO};white-space:pre-wrap">'
                            f"hint: {esc(hint)}</div>")
            rows.append([Cell(str(f.line) if f.line else "", numeric=True),
                         Cell(markup=badge(f.severity, f.severity)),
                         Cell(f.field or "", mono=True),
                         Cell(markup=f'<span style="white-space:pre-wrap">{message}</span>')])
        return rows

    def _repr_html_(self) -> str:
        table = ""
        if self.findings:
            table = html_table(FINDING_HEADER, self._rows(), cls="kit-findings",
                               row_classes=[f"kit-finding kit-{f.severity}"
                                            for f in self.findings],
                               numeric=[True, False, False, False])
        return (f'<div class="kit-validation kit-findings-panel">{self._summary_html()}'
                f"{table}</div>")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Static parts only: no frontend needs a widget manager to show findings."""
        return {"text/plain": self.text(), "text/html": self._repr_html_()}
