"""``kit validate``-style checking of a Kitfile on disk or in a cell.

Decoding, validation and (optionally) the remote S3 check run together and never raise for a bad
Kitfile: everything wrong becomes a finding, so a cell can show all problems at once. Only a
missing file is an exception, because there is nothing to report findings about.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kit_jupyter.commands.findings import ValidationReport
from kit_jupyter.errors import KitError
from kit_jupyter.kitfile.model import find_kitfile, read_kitfile_text
from kit_jupyter.kitfile.rules import check_kitfile
from kit_jupyter.transport.s3 import check_remote_findings


def locate_kitfile(path: str | os.PathLike[str] = ".") -> Path:
    """A file is taken as is; a directory is searched for kit's three names, in kit's order."""

    p = Path(path)
    if p.is_dir():
        return find_kitfile(p)
    if not p.exists():
        raise KitError(f"open {p}: no such file or directory")
    return p


def validate_text(text: str, *, source: str = "Kitfile", check_remote: bool = False,
                  env: Mapping[str, str] | None = None) -> ValidationReport:

    kf, findings = check_kitfile(text)
    if check_remote and kf is not None:

        findings.extend(check_remote_findings(kf, env=env))
    return ValidationReport(findings=findings, source=source, kitfile=kf)


def validate_path(path: str | os.PathLike[str] = ".", *, check_remote: bool = False,
                  env: Mapping[str, str] | None = None) -> ValidationReport:
    file = locate_kitfile(path)
    text = read_kitfile_text(file)
    return validate_text(text, source=str(file), check_remote=check_remote, env=env)
