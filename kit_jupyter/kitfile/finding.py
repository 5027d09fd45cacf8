"""One problem found in a Kitfile: what decoding, validation and the remote check all produce.

Its own module because the model (decode errors), the rules and the S3 check all create findings,
and none of them should import another just for this type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Finding:
    """One error or warning about a Kitfile: kit's ``message``, the ``field`` path at fault
    (``datasets[0].remotePath``) and its YAML ``line`` when known; ``hint`` (ours) says how to
    fix it where kit's text is terse (a Go type error); ``fix`` is an unambiguous edit of that
    line -- the token ``old`` becomes ``new`` (see :func:`apply_fixes`)."""

    severity: Literal["error", "warning"]
    message: str
    field: str | None = None
    line: int | None = None
    related: tuple[str, ...] = ()
    hint: str | None = None
    fix: tuple[str, str] | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        hint = f"; {self.hint}" if self.hint else ""
        return f"{where}{self.message}{hint}"


def apply_fixes(text: str, findings: Iterable[Finding], *,
                first_line: int = 1) -> tuple[str, list[str]]:
    """Apply every finding's unambiguous ``fix`` to ``text`` (whose first line is numbered
    ``first_line``, as the findings count): on the finding's line, the token ``old`` becomes
    ``new`` -- only where it occurs exactly once as a whole token, so nothing is guessed.
    Returns the new text and one ``line N: old -> new`` per edit made."""
    lines = text.splitlines(keepends=True)
    done = []
    for f in findings:
        if f.fix is None or f.line is None:
            continue
        i = f.line - first_line
        if not 0 <= i < len(lines):
            continue
        old, new = f.fix
        token = re.compile(rf"(?<![\w.-]){re.escape(old)}(?![\w.-])")
        if len(token.findall(lines[i])) != 1:
            continue
        lines[i] = token.sub(new.replace("\\", "\\\\"), lines[i])
        done.append(f"line {f.line}: {old} -> {new}")
    return "".join(lines), done
