"""Kitfile validation with kit's rules and texts (spec §5), plus a field path and line per finding.

kit returns one error string; we keep each finding separate so a notebook can point at the YAML
line, while :func:`error_text` rebuilds kit's exact combined text for CLI-style output.
"""

from __future__ import annotations

import posixpath
import re
from typing import TYPE_CHECKING

from kit_jupyter.errors import ValidationError
from kit_jupyter.gocompat import gourl
from kit_jupyter.gocompat.gopath import go_clean
from kit_jupyter.kitfile.finding import Finding
from kit_jupyter.kitfile.model import decode_kitfile
from kit_jupyter.kitfile.reference import is_modelkit_reference

if TYPE_CHECKING:
    from kit_jupyter.kitfile.model import Kitfile
    from kit_jupyter.reporting import Reporter

MANIFEST_VERSION = "1.0.0"
_PART_TYPE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


# ---------------------------------------------------------------------------------------------
# Path classification (spec §5.2): Go net/url rules, only as far as they decide the class.


def classify_path(path: str) -> tuple[str | None, str | None]:
    """(class, error): class is "reference", "local", "s3" or None when ``error`` is set."""
    if (":" in path or "@" in path) and is_modelkit_reference(path):
        return "reference", None
    try:
        url = gourl.parse(path)
    except gourl.URLError:
        return "local", None
    if not url.scheme and not url.host:
        return "local", None
    if url.scheme == "s3":
        return "s3", None
    if url.scheme in ("http", "https"):
        return None, f"HTTP urls are not supported in paths ({path})"
    return None, f"unrecognized URL in path: {path}"


def _is_local(cleaned: str) -> bool:
    """Go's filepath.IsLocal for an already cleaned path."""
    if cleaned == "" or cleaned.startswith("/"):
        return False
    return cleaned != ".." and not cleaned.startswith("../")


# ---------------------------------------------------------------------------------------------
# Validation (spec §5.3)


class _Checks:
    """kit's rules, one method per part of the Kitfile. Findings are collected in the order
    the parts come; every path a layer uses is registered on the way, for the rules between
    paths (:meth:`paths`) that run last."""

    def __init__(self, kf: Kitfile):
        self.kf = kf
        self.findings: list[Finding] = []
        self.registry: dict[str, list[tuple[str, str]]] = {}   # clean path -> (label, field)
        self.remote_paths: list[str] = []   # the paths of ModelKit-reference datasets

    def add(self, severity, message: str, field: str | None, related: tuple[str, ...] = ()):
        line = self.kf.line_of(field) if field else None
        self.findings.append(Finding(severity, message, field, line, related))

    def error(self, message: str, field: str | None, related: tuple[str, ...] = ()):
        self.add("error", message, field, related)

    def warning(self, message: str, field: str | None):
        self.add("warning", message, field)

    def register(self, path: str, label: str, field: str) -> None:
        self.registry.setdefault(go_clean(path or "."), []).append((label, field))

    def local_only(self, path: str, noun: str, field: str) -> bool:
        """The two B-rule errors for components that only take local paths (spec §5.3 B);
        an HTTP URL gets both."""
        cls, err = classify_path(path)
        if err:
            self.error(f"invalid path for {noun} ({path}): {err}", field)
        if cls != "local":
            self.error(f"invalid path for {noun} ({path}): only local paths are permitted",
                       field)
        return cls == "local"

    def manifest_version(self) -> None:
        if self.kf.manifest_version != MANIFEST_VERSION:
            self.warning(f"Unrecognized manifestVersion {self.kf.manifest_version}: treating "
                         "Kitfile as 1.0.0", "manifestVersion")

    def model(self) -> None:
        m = self.kf.model
        if m is None:
            return
        self.register(m.path, f"model {m.name}", "model.path")
        cls, err = classify_path(m.path)
        if err:
            self.error(f"invalid path for model: {err}", "model.path")
        if cls not in ("local", "reference"):
            self.error("invalid path for model: only local paths and ModelKit references are "
                       "permitted", "model.path")
        for i, part in enumerate(m.parts):
            f = f"model.parts[{i}].path"
            self.register(part.path, f"modelpart {part.name}", f)
            self.local_only(part.path, "model part", f)
            if part.type:
                tf = f"model.parts[{i}].type"
                if not _PART_TYPE_RE.fullmatch(part.type):
                    self.error(f"modelpart {part.name} has invalid type (must be alphanumeric "
                               "with dots, dashes, and underscores)", tf)
                if len(part.type.encode("utf-8")) > 64:
                    self.error(f"modelpart {part.name} type is too long (must be fewer than "
                               "64 characters)", tf)

    def simple(self, items, key: str, label: str, noun: str) -> None:
        """code, docs and prompts: a local path each."""
        for i, e in enumerate(items):
            f = f"{key}[{i}].path"
            self.register(e.path, f"{label} {i}", f)
            self.local_only(e.path, noun, f)

    def datasets(self) -> None:
        for i, ds in enumerate(self.kf.datasets):
            f = f"datasets[{i}].path"
            self.register(ds.path, f"dataset layer {i}", f)
            self.local_only(ds.path, "dataset", f)
            rp_field, rh_field = f"datasets[{i}].remotePath", f"datasets[{i}].remoteHash"
            if not ds.remote_path:
                if ds.remote_hash:
                    self.error("remote hash is only applicable when remotePath is set",
                               rh_field)
                continue
            rcls, rerr = classify_path(ds.remote_path)
            if rerr:
                self.error(f"invalid remote path for dataset ({ds.remote_path}): {rerr}",
                           rp_field)
            if rcls == "s3":
                if not ds.remote_hash:
                    self.error("remoteHash is required when remote dataset paths are used "
                               f"({ds.remote_path})", rh_field)
            elif rcls == "reference":
                if ds.remote_hash:
                    self.warning("remoteHash is ignored for ModelKit references in datasets "
                                 f"({ds.path})", rh_field)
                self.remote_paths.append(go_clean(ds.path or "."))
            else:
                self.error("only S3 URLs and ModelKit references are supported for remote "
                           f"dataset paths ({ds.remote_path})", rp_field)

    def mcp_servers(self) -> None:
        names: set[str] = set()
        for i, s in enumerate(self.kf.mcp_servers):
            f = f"mcpServers[{i}].path"
            self.register(s.path, f"mcpServer layer {i}", f)
            if self.local_only(s.path, "mcpServer", f) and not s.path.endswith(".mcpb"):
                self.error(f"invalid path for mcpServer ({s.path}): path must point to a "
                           "single .mcpb file", f)
            nf = f"mcpServers[{i}].name"
            if not s.name:
                self.error(f"mcpServer with path {s.path} must have a name", nf)
            elif s.name in names:
                self.error(f"duplicate mcpServer name {s.name}: names must be unique", nf)
            else:
                names.add(s.name)

    def paths(self) -> None:
        """Between the registered paths: shared, absolute, outside the context, inside a
        ModelKit-reference dataset's directory."""
        for p, regs in self.registry.items():
            labels = [lab for lab, _ in regs]
            first_label, first_field = regs[0]
            if len(regs) > 1:
                text = ", ".join(labels[:-1]) + " and " + labels[-1]
                self.error(f"{text} use the same path {p}", regs[-1][1],
                           tuple(fld for _, fld in regs[:-1]))
            if p.startswith("/"):
                self.error("absolute paths are not supported in a Kitfile (path "
                           f"{p} in {first_label})", first_field)
            elif classify_path(p)[0] == "local" and not _is_local(p):
                self.error("paths outside the context directory are not supported in a "
                           f"Kitfile (path {p} in {first_label})", first_field)
            for r in self.remote_paths:
                if r == p:
                    continue
                if r.startswith("/") != p.startswith("/"):
                    self.error("error calculating relative path for remote dataset: "
                               f"Rel: can't make {p} relative to {r}", first_field)
                    continue
                rel = posixpath.relpath(p, r)
                if rel != ".." and not rel.startswith("../"):
                    self.error(f"{first_label} uses a path ({p}) that is within the path for a "
                               "remote dataset", first_field)


def validate(kf: Kitfile) -> list[Finding]:
    """Warnings and errors for a decoded Kitfile, with kit's exact texts.

    Warnings come first, then errors in kit's (sorted) order.
    """
    c = _Checks(kf)
    c.manifest_version()
    c.model()
    c.simple(kf.code, "code", "code layer", "code")
    c.datasets()
    c.simple(kf.docs, "docs", "docs layer", "doc")
    c.simple(kf.prompts, "prompts", "prompt layer", "prompt")
    c.mcp_servers()
    c.paths()
    warnings = [x for x in c.findings if x.severity == "warning"]
    errors = sorted((x for x in c.findings if x.severity == "error"), key=lambda x: x.message)
    return warnings + errors


def error_text(findings: list[Finding]) -> str:
    """kit's combined error text (spec §5.3 D); empty when there are no errors."""
    lines = sorted(f"  * {f.message}" for f in findings if f.severity == "error")
    if not lines:
        return ""
    return "errors while validating Kitfile: \n" + "\n".join(lines)


def check_kitfile(text: str | bytes) -> tuple[Kitfile | None, list[Finding]]:
    """Decode and validate in one pass, showing every finding it can: kit stops at the decode
    errors, we list them first and then validate what decoded (the Kitfile is then
    ``partial``). The Kitfile is None only when nothing decoded. Never raises."""

    kf, findings = decode_kitfile(text)
    if kf is None:
        return None, findings
    return kf, findings + validate(kf)


def ensure_valid(kf: Kitfile, *, reporter: Reporter | None = None) -> list[Finding]:
    """Validate for a command (pack): warnings go to the reporter, errors raise
    ValidationError with kit's text and every finding."""
    findings = validate(kf)
    if reporter is not None:
        for f in findings:
            if f.severity == "warning":
                reporter.warning(f.message)
    if any(f.severity == "error" for f in findings):
        raise ValidationError(error_text(findings), findings)
    return findings
