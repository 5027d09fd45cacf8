"""``kit validate``-style checking of a Kitfile on disk or in a cell.

Decoding, validation and (optionally) the remote S3 check run together and never raise for a bad
Kitfile: everything wrong becomes a finding, so a cell can show all problems at once. Only a
missing file is an exception, because there is nothing to report findings about.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kit_jupyter._arguments import PATH, TEXT, TEXT_OR_BYTES, arguments
from kit_jupyter.commands.findings import ValidationReport
from kit_jupyter.errors import KitError, KitfileError, RemoteDatasetError
from kit_jupyter.kitfile.finding import Finding
from kit_jupyter.kitfile.model import Kitfile, find_kitfile, read_kitfile_text
from kit_jupyter.kitfile.rules import check_kitfile
from kit_jupyter.transport.s3 import S3Clients, current_etag, is_s3_path, parse_s3_url


def locate_kitfile(path: str | os.PathLike[str] = ".") -> Path:
    """A file is taken as is; a directory is searched for kit's three names, in kit's order."""

    p = Path(path)
    if p.is_dir():
        try:
            return find_kitfile(p)
        except KitfileError:
            # find_kitfile's text is pack's, whose -f flag validate does not have
            raise KitfileError(f"No Kitfile found in {p}").with_hint(
                "give the Kitfile's path instead of its directory") from None
    if not p.exists():
        raise KitError(f"open {p}: no such file or directory")
    return p


@arguments(text=TEXT_OR_BYTES, source=TEXT)
def validate_text(text: str, *, source: str = "Kitfile", check_remote: bool = False,
                  env: Mapping[str, str] | None = None) -> ValidationReport:
    """Validate a Kitfile given as text, as ``%%kitfile`` does (never raises for a bad one).

    Args:
        text: the Kitfile's YAML.
        source: the name the report shows for it.
        check_remote: HEAD each S3 remote dataset and report a stale ``remoteHash``.
        env: environment for S3 settings (``S3_API_ENDPOINT`` ...); default ``os.environ``.

    Returns:
        ValidationReport: ``valid``, ``findings`` (kit's messages, field path, line), ``errors``,
        ``warnings`` and the decoded ``kitfile`` (``None`` if the YAML cannot be decoded).
    """

    kf, findings = check_kitfile(text)
    if check_remote and kf is not None:
        findings.extend(check_remote_findings(kf, env=env))
    return ValidationReport(findings=findings, source=source, kitfile=kf)


def check_remote_findings(kf: Kitfile, *, env: Mapping[str, str] | None = None) -> list[Finding]:
    """HEAD each S3 remote dataset; a stale or wrong remoteHash becomes a finding that shows the
    object's current ETag so the Kitfile can be fixed in place (beyond kit). S3 failures are
    findings too: ``validate`` reports, it does not raise."""
    datasets = [d for d in kf.remote_datasets() if is_s3_path(d.remote_path)]
    if not datasets:
        return []
    try:
        clients = S3Clients(env)
    except RemoteDatasetError as e:
        first = datasets[0]
        return [Finding("error", str(e), f"{first.field}.remotePath", first.remote_path_line)]
    findings: list[Finding] = []
    for d in datasets:
        path_field, hash_field = f"{d.field}.remotePath", f"{d.field}.remoteHash"
        rp, rh = d.remote_path, d.remote_hash
        try:
            obj = parse_s3_url(rp, rh or "-")
        except RemoteDatasetError:
            continue                   # the validator reports malformed remote paths
        try:
            etag = current_etag(clients, obj, rh)
        except RemoteDatasetError as e:
            findings.append(Finding("error", f"cannot check remote dataset {d.path} ({rp}): {e}",
                                    path_field, d.remote_path_line))
            continue
        value = etag.strip('"')
        if not etag:
            findings.append(Finding("error", f"remote object {rp} has no ETag", path_field,
                                    d.remote_path_line))
        elif not rh:
            findings.append(Finding(
                "warning", f"the object's current ETag is {value} ({rp}); set remoteHash: {value}",
                hash_field, d.remote_hash_line))
        elif value != rh:
            findings.append(Finding(
                "error", f"remoteHash {rh} does not match the object's current ETag {value} "
                         f"({rp}); set remoteHash: {value}", hash_field, d.remote_hash_line,
                fix=(rh, value)))
    return findings


@arguments(path=PATH)
def validate_path(path: str | os.PathLike[str] = ".", *, check_remote: bool = False,
                  env: Mapping[str, str] | None = None) -> ValidationReport:
    """Validate a Kitfile on disk with kit's rules and messages (``kit-jupyter validate PATH``).

    Every problem becomes a finding, so all of them show at once; only a missing or unreadable
    file raises.

    Args:
        path: a Kitfile, or a directory searched for ``Kitfile``, ``kitfile``, ``.kitfile``.
        check_remote: HEAD each S3 remote dataset and report a stale ``remoteHash``.
        env: environment for S3 settings (``S3_API_ENDPOINT`` ...); default ``os.environ``.

    Returns:
        ValidationReport: ``valid``, ``findings`` (kit's messages, field path, line), ``errors``,
        ``warnings`` and the decoded ``kitfile``.
    """
    file = locate_kitfile(path)
    text = read_kitfile_text(file)
    return validate_text(text, source=str(file), check_remote=check_remote, env=env)
