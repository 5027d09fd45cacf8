"""Rich display of validation findings.

A :class:`ValidationReport` renders three ways from one mime bundle: an ipywidgets panel in a live
notebook, an HTML table wherever widgets cannot render (nbconvert, GitHub, a Lab without the widget
manager) and aligned text in a terminal. The object itself stays plain data, so tests and CI can
read ``report.findings`` and ``report.to_json()`` without a kernel.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_SEVERITY_COLOR = {"error": "#c62828", "warning": "#b36b00"}

_CSS = (
    "<style>"
    ".kit-findings{border-collapse:collapse;font-size:13px}"
    ".kit-findings td,.kit-findings th{padding:2px 8px;text-align:left;vertical-align:top}"
    ".kit-findings code{white-space:pre-wrap}"
    "</style>"
)


def _field_text(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass
class ValidationReport:
    """Findings for one Kitfile (decode errors, validation errors and warnings, remote checks)."""

    findings: Sequence[Any]
    source: str = "Kitfile"
    kitfile: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

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
        state = "valid" if self.valid else "invalid"
        return (f"{self.source}: {state}, {len(self.errors)} error(s), "
                f"{len(self.warnings)} warning(s)")

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "findings": [
                {"severity": f.severity, "message": f.message, "field": f.field, "line": f.line}
                for f in self.findings
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_json_obj(), ensure_ascii=False)

    @property
    def data(self) -> dict[str, Any]:
        return self.to_json_obj()

    # -- text ------------------------------------------------------------------------------
    def text(self) -> str:
        lines = [self.summary()]
        for f in self.findings:
            where = f"line {f.line}" if f.line else ""
            loc = ", ".join(x for x in (where, _field_text(f.field)) if x)
            lines.append(f"  {f.severity.upper():7} {f.message}" + (f"  [{loc}]" if loc else ""))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())

    # -- html ------------------------------------------------------------------------------
    def _rows_html(self) -> str:
        rows = []
        for f in self.findings:
            color = _SEVERITY_COLOR.get(f.severity, "inherit")
            rows.append(
                f'<tr class="kit-finding kit-{html.escape(f.severity)}">'
                f'<td style="color:{color};font-weight:bold">{html.escape(f.severity)}</td>'
                f"<td>{html.escape(_field_text(f.line))}</td>"
                f"<td><code>{html.escape(_field_text(f.field))}</code></td>"
                f"<td>{html.escape(f.message)}</td></tr>")
        return "".join(rows)

    def _summary_html(self) -> str:
        color = "#2e7d32" if self.valid else _SEVERITY_COLOR["error"]
        return (f'<div class="kit-summary" style="color:{color};font-weight:bold">'
                f"{html.escape(self.summary())}</div>")

    def _repr_html_(self) -> str:
        table = ""
        if self.findings:
            table = ('<table class="kit-findings"><thead><tr><th>severity</th><th>line</th>'
                     f"<th>field</th><th>message</th></tr></thead><tbody>{self._rows_html()}"
                     "</tbody></table>")
        return f"{_CSS}<div class=\"kit-validation\">{self._summary_html()}{table}</div>"

    # -- widget ----------------------------------------------------------------------------
    def widget(self) -> Any:
        """The live panel: one row per finding, so a frontend can style and scroll them."""
        import ipywidgets as w

        children = [w.HTML(self._summary_html())]
        for f in self.findings:
            color = _SEVERITY_COLOR.get(f.severity, "inherit")
            loc = " · ".join(x for x in (f"line {f.line}" if f.line else "",
                                         _field_text(f.field)) if x)
            row = w.HTML(
                f'<span style="color:{color};font-weight:bold">{html.escape(f.severity)}</span> '
                f"{html.escape(f.message)} "
                f'<span style="color:#666"><code>{html.escape(loc)}</code></span>')
            row.add_class("kit-finding")
            row.add_class(f"kit-{f.severity}")
            children.append(row)
        panel = w.VBox(children)
        panel.add_class("kit-findings-panel")
        return panel

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": self.text(), "text/html": self._repr_html_()}
        try:
            panel = self.widget()
        except Exception:  # pragma: no cover - ipywidgets missing or broken: fallbacks remain
            return bundle
        bundle["application/vnd.jupyter.widget-view+json"] = {
            "version_major": 2, "version_minor": 0, "model_id": panel.model_id}
        self._panel = panel  # keep the model alive while the frontend renders it
        return bundle
