"""Result objects of the local commands (pack, unpack, list, inspect, info, tag, remove).

Each renders three ways: ``_repr_html_`` (an escaped HTML table, for notebooks and exported
HTML), ``_repr_pretty_`` / ``text()`` (what kit prints in a terminal) and ``.data`` (plain JSON
values, so ``mk = %kit inspect x:v1`` can be used programmatically). ``messages`` keeps kit's
info and warning lines said while the command ran.
"""

from __future__ import annotations

import dataclasses
import html
import json
from dataclasses import dataclass, field
from typing import Any

from kit_jupyter.gocompat.gojson import marshal
from kit_jupyter.gocompat.gotemplate import GoTemplate
from kit_jupyter.gocompat.goyaml import Struct
from kit_jupyter.kitfile.model import Kitfile
from kit_jupyter.oci.manifest import Manifest
from kit_jupyter.oci.mediatypes import ANNOTATION_FILEPATH
from kit_jupyter.reporting import format_bytes

_TABLE_CSS = ("<style>.kit-result{border-collapse:collapse;font-size:13px}"
              ".kit-result td,.kit-result th{padding:2px 8px;text-align:left;"
              "vertical-align:top;font-family:monospace}</style>")


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def html_table(header: list[str] | None, rows: list[list[Any]], caption: str = "") -> str:
    head = ""
    if header:
        head = "<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
    return f'{_TABLE_CSS}<table class="kit-result">{cap}{head}{body}</table>'


def _messages_html(messages: list[tuple[str, str]]) -> str:
    return "".join(
        f'<div style="font-family:monospace">'
        f'{_esc(("[WARN ] " if level == "warning" else "") + text)}</div>'
        for level, text in messages)


def tabwriter(rows: list[list[str]], padding: int = 3) -> str:
    """Go's ``tabwriter.NewWriter(w, 0, 2, 3, ' ', 0)`` as kit list uses it: every column but
    the last is padded to its widest cell plus three spaces."""
    if not rows:
        return ""
    ncols = max(len(r) for r in rows)
    widths = [0] * ncols
    for r in rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for r in rows:
        parts = [cell.ljust(widths[i] + padding) for i, cell in enumerate(r[:-1])]
        lines.append("".join(parts) + (r[-1] if r else ""))
    return "\n".join(lines) + "\n"


class TextResult(str):
    """A result that is only text (``version``): a ``str`` that a notebook shows as itself,
    not as a quoted string."""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


class Result:
    """Base of every command result (local and registry commands alike)."""

    messages: list[tuple[str, str]]
    #: commands that were given a reporter already showed their messages while running
    _html_messages: bool = True

    def text(self) -> str:  # pragma: no cover - overridden
        return ""

    @property
    def data(self) -> Any:  # pragma: no cover - overridden
        return {}

    def to_json(self) -> str:
        return json.dumps(self.data, ensure_ascii=False, indent=2)

    def summary(self) -> str:
        """What a notebook cell shows as text (``text()`` is what a terminal prints)."""
        return self.text().rstrip("\n")

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.summary() if not cycle else f"{type(self).__name__}(...)")

    def __repr__(self) -> str:
        # dataclass reprs would shadow _repr_pretty_ in IPython and dump whole configs
        return f"<{type(self).__name__}: {self.summary()[:200] or 'ok'}>"

    def _html_body(self) -> str:  # pragma: no cover - overridden
        return ""

    def _repr_html_(self) -> str:
        msgs = _messages_html(self.messages) if self._html_messages else ""
        return f"<div>{msgs}{self._html_body()}</div>"


@dataclass(repr=False)
class PackResult(Result):
    digest: str
    repository: str                       # registry/repository, e.g. localhost/_
    tags: list[str]
    config: dict[str, Any]
    layers: list[dict[str, Any]]          # descriptor + "path"
    messages: list[tuple[str, str]] = field(default_factory=list)
    _html_messages = False

    @property
    def size(self) -> int:
        return sum(int(layer["size"]) for layer in self.layers)

    @property
    def reference(self) -> str:
        tag = self.tags[0] if self.tags else None
        return f"{self.repository}:{tag}" if tag else f"{self.repository}@{self.digest}"

    @property
    def data(self) -> dict[str, Any]:
        return {"digest": self.digest, "repository": self.repository, "tags": list(self.tags),
                "config": dict(self.config), "layers": [dict(x) for x in self.layers],
                "size": self.size}

    def text(self) -> str:
        return ""  # kit's lines went to the reporter while packing

    def summary(self) -> str:
        return f"Model saved: {self.digest} ({self.reference})"

    def _html_body(self) -> str:
        rows = [[x["mediaType"], x.get("path", ""), x["digest"], x["size"]] for x in self.layers]
        return html_table(["MEDIA TYPE", "PATH", "DIGEST", "SIZE"], rows,
                          caption=f"{self.reference} -> {self.digest}")


@dataclass(repr=False)
class UnpackResult(Result):
    reference: str
    digest: str
    directory: str
    kitfile_path: str | None
    layers: list[dict[str, Any]]          # {"type", "name", "path", "digest"}
    remote: list[Any] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)
    _html_messages = False

    @property
    def data(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": self.digest,
                "directory": self.directory, "kitfile": self.kitfile_path,
                "layers": [dict(x) for x in self.layers],
                "remote": [_jsonable(r) for r in self.remote]}

    def text(self) -> str:
        return ""

    def summary(self) -> str:
        return (f"Unpacked {self.reference} to {self.directory} "
                f"({len(self.layers)} layer(s))")

    def _html_body(self) -> str:
        rows = [[x["type"], x.get("name", ""), x["path"], x["digest"]] for x in self.layers]
        return html_table(["TYPE", "NAME", "PATH", "DIGEST"], rows,
                          caption=f"{self.reference} -> {self.directory}")


LIST_HEADER = ["REPOSITORY", "TAG", "MAINTAINER", "NAME", "SIZE", "DIGEST"]


def list_row(repo: str, digest: str, tags: list[str], kitfile: Kitfile | None,
             manifest: Manifest) -> Struct:
    """One ModelKit as ``kit list`` describes it, local or remote (kit's ``modelInfo``, in
    its field order): no tags is ``null``, a missing name or author ``<none>``, the size the
    sum of the layers in kit's format."""
    package = kitfile.package if kitfile is not None else None
    authors = package.authors if package is not None else []
    return Struct(repo=repo, digest=digest, tags=list(tags) or None,
                  modelName=(package.name if package is not None else "") or "<none>",
                  size=format_bytes(manifest.size),
                  author=authors[0] if authors else "<none>")


@dataclass(repr=False)
class ListResult(Result):
    models: list[dict[str, Any]]          # kit's --format json objects
    messages: list[tuple[str, str]] = field(default_factory=list)
    #: what ``--format '<Go template>'`` printed (None: kit's table)
    template_output: str | None = None

    def with_format(self, fmt: str | None) -> ListResult:
        """kit's ``--format``: ``table`` and ``json`` keep this result (``to_json`` is the JSON);
        anything else is a Go template run once per ModelKit over kit's ``modelInfo`` fields
        (``Repo Digest Tags ModelName Size Author``), each run ending in a newline unless the
        template does. Bad templates raise TemplateError with Go's text."""
        if fmt in (None, "", "table", "json"):
            return self
        tpl = GoTemplate(fmt, name="list", type_name="list.modelInfo")
        end = "" if fmt.endswith("\n") else "\n"
        out = "".join(tpl.execute(_model_info(m)) + end for m in self.models)
        return dataclasses.replace(self, template_output=out)

    def rows(self) -> list[list[str]]:
        out = []
        for m in self.models:
            for tag in (m["tags"] or ["<none>"]):
                out.append([m["repo"], tag, m["author"], m["modelName"], m["size"], m["digest"]])
        return out

    @property
    def data(self) -> list[dict[str, Any]]:
        return [Struct(m) for m in self.models]  # copies that keep kit's field order

    def to_json(self) -> str:
        return marshal(self.data, indent="  ").decode("utf-8")  # kit's MarshalIndent

    def text(self) -> str:
        if self.template_output is not None:
            return self.template_output
        return tabwriter([LIST_HEADER, *self.rows()])

    def __len__(self) -> int:
        return len(self.models)

    def _html_body(self) -> str:
        if self.template_output is not None:
            return f"<pre>{_esc(self.template_output)}</pre>"
        return html_table(LIST_HEADER, self.rows())


def _model_info(model: dict[str, Any]) -> dict[str, Any]:
    """kit's ``modelInfo`` struct (pkg/cmd/list/util.go) with its Go field names."""
    return {"Repo": model["repo"], "Digest": model["digest"], "Tags": model["tags"],
            "ModelName": model["modelName"], "Size": model["size"], "Author": model["author"]}


@dataclass(repr=False)
class InspectResult(Result):
    digest: str
    cli_version: str
    kitfile: dict[str, Any] | None        # the config as JSON values, in kit's field order
    manifest: Manifest
    messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def data(self) -> dict[str, Any]:
        """kit's ``inspect`` object, in its field order."""
        out = Struct(digest=self.digest, cliVersion=self.cli_version)
        if self.kitfile is not None:
            out["kitfile"] = self.kitfile
        out["manifest"] = self.manifest.to_json()
        return out

    def to_json(self) -> str:
        return marshal(self.data, indent="  ").decode("utf-8")  # kit's MarshalIndent

    def text(self) -> str:
        return self.to_json() + "\n"

    def _html_body(self) -> str:
        rows: list[list[Any]] = [["digest", self.digest], ["cliVersion", self.cli_version]]
        pkg = (self.kitfile or {}).get("package") or {}
        if pkg.get("name"):
            rows.append(["package", pkg["name"]])
        for layer in self.manifest.layers:
            rows.append([layer.media_type,
                         f"{layer.annotations.get(ANNOTATION_FILEPATH, '')}  {layer.digest}  "
                         f"{format_bytes(layer.size)}"])
        table = html_table(None, rows)
        raw = f"<details><summary>JSON</summary><pre>{_esc(self.to_json())}</pre></details>"
        return table + raw


@dataclass(repr=False)
class InfoResult(Result):
    reference: str
    yaml: str
    kitfile: dict[str, Any] | None = None
    messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def data(self) -> Any:
        return self.kitfile if self.kitfile is not None else self.yaml

    def text(self) -> str:
        return self.yaml

    def __str__(self) -> str:
        return self.yaml

    def _html_body(self) -> str:
        return f'<pre class="kit-info">{_esc(self.yaml)}</pre>'


@dataclass(repr=False)
class TagResult(Result):
    source: str
    target: str
    digest: str
    messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def data(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "digest": self.digest}

    def text(self) -> str:
        return "".join(m + "\n" for _, m in self.messages)

    def _html_body(self) -> str:
        return ""


@dataclass(repr=False)
class RemoveResult(Result):
    removed: list[dict[str, Any]]         # {"reference", "digest", "action": removed|untagged}
    messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def data(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.removed]

    def text(self) -> str:
        return "".join((("[WARN ] " if lvl == "warning" else "") + m + "\n")
                       for lvl, m in self.messages)

    def _html_body(self) -> str:
        return ""


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    data = getattr(value, "data", None)
    if data is not None and not callable(data):
        return _jsonable(data)

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    return str(value)
