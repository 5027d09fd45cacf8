"""One problem found in a Kitfile: what decoding, validation and the remote check all produce.

Its own module because the model (decode errors), the rules and the S3 check all create findings,
and none of them should import another just for this type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Finding:
    """One error or warning about a Kitfile: kit's ``message``, the ``field`` path at fault
    (``datasets[0].remotePath``) and its YAML ``line`` when known."""

    severity: Literal["error", "warning"]
    message: str
    field: str | None = None
    line: int | None = None
    related: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        if where and self.message.startswith(where):
            where = ""  # decode errors already start with their line, as yaml.v3's do
        return f"{where}{self.message}"
