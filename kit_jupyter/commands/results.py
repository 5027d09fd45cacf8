"""Result objects of the local commands (pack, unpack, list, inspect, info, tag, remove).

Each renders three ways: ``_repr_html_`` (a static table with inline styles, see
:mod:`kit_jupyter.commands.render`: readable in an export, an untrusted notebook and either
theme), ``_repr_pretty_`` / ``text()`` (what kit prints in a terminal) and ``.data`` (plain
values, sizes in bytes, so ``mk = %kit inspect x:v1`` can be used programmatically);
``to_json()`` is kit's JSON and ``to_pandas()`` the table as a DataFrame. ``messages`` keeps
kit's info and warning lines said while the command ran. Repositories are shown as kit shows
them (``myproj/churn``, not ``localhost/myproj/churn``) everywhere.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from kit_jupyter.commands.render import (
    Cell,
    details,
    digest_cell,
    esc,
    html_table,
    messages_html,
    short_digest,
    size_cell,
    to_pandas,
)
from kit_jupyter.gocompat.gojson import marshal
from kit_jupyter.gocompat.gotemplate import GoTemplate
from kit_jupyter.gocompat.goyaml import Struct
from kit_jupyter.kitfile.model import Kitfile
from kit_jupyter.kitfile.reference import display_repository
from kit_jupyter.oci.manifest import Manifest
from kit_jupyter.oci.mediatypes import ANNOTATION_FILEPATH, MediaTypeError, parse_media_type
from kit_jupyter.reporting import format_bytes, message_text


def layer_type(media_type: str) -> str:
    """A layer's kind in kit's words (``model``, ``code``, ``dataset`` ...), with what is not
    the default about it (``model (raw, zstd)``: a raw layer, its compression); the media type
    itself when it is not a ModelKit layer. mcpServer bundles are always raw, so not said."""
    try:
        mt = parse_media_type(media_type)
    except MediaTypeError:
        return media_type
    extras = [x for x in ("raw" if mt.format == "raw" and mt.base != "mcpb" else "",
                          "" if mt.compression == "none" else mt.compression) if x]
    return f"{mt.base} ({', '.join(extras)})" if extras else mt.base


def headline(markup: str) -> str:
    """One line above a result's table (ready markup)."""
    return f'<div class="kit-headline" style="padding:2px 0">{markup}</div>'


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


class Result:
    """Base of every command result (local and registry commands alike).

    ``data``: the result as plain values (sizes in bytes); ``to_json()``: kit's JSON where kit
    has one; ``text()``: what kit prints; ``to_pandas()``: the table as a DataFrame (needs
    pandas); ``messages``: kit's lines said while the command ran.
    """

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

    def records(self) -> list[dict[str, Any]]:
        """The rows of the result's table, one flat dict each (sizes in bytes)."""
        return []

    def to_pandas(self) -> Any:
        """The result's table as a ``pandas.DataFrame`` (sizes as integer bytes)."""
        return to_pandas(self.records())

    def summary(self) -> str:
        """What a notebook cell shows as text (``text()`` is what a terminal prints)."""
        return self.text().rstrip("\n")

    def _oneline(self) -> str:
        """The result in one line, for ``repr()`` and ``?``."""
        return self.summary().split("\n", 1)[0][:200]

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.summary() if not cycle else f"{type(self).__name__}(...)")

    def __repr__(self) -> str:
        # dataclass reprs would shadow _repr_pretty_ in IPython and dump whole configs
        return f"<{type(self).__name__}: {self._oneline() or 'ok'}>"

    def _html_body(self) -> str:  # pragma: no cover - overridden
        return ""

    def _repr_html_(self) -> str:
        msgs = messages_html(self.messages) if self._html_messages else ""
        return f'<div class="kit-result-view">{msgs}{self._html_body()}</div>'


@dataclass(repr=False)
class PackResult(Result):
    """A ModelKit packed into local storage (``%kit pack``).

    Attributes: ``digest`` (the manifest's), ``repository`` (``registry/repository``, e.g.
    ``localhost/myproj/churn``), ``tags``, ``config`` (the Kitfile as config JSON values, with
    the layers' digests, in both formats: a ModelPack's model-spec config is the blob its
    manifest names), ``layers`` (each layer's descriptor plus its ``path``), ``size`` (bytes of
    all layers),
    ``reference`` (as kit shows it: ``myproj/churn:v1``), ``messages`` (kit's ``Saved ...``
    lines). ``to_pandas()``: one row per layer.
    """

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
        """kit's display form: ``myproj/churn:v1`` (the default registry left out)."""
        repo = display_repository(self.repository)
        tag = self.tags[0] if self.tags else None
        if not repo:
            return self.digest
        return f"{repo}:{tag}" if tag else f"{repo}@{self.digest}"

    def records(self) -> list[dict[str, Any]]:
        return [{"type": layer_type(x["mediaType"]), "path": x.get("path", ""),
                 "size": int(x["size"]), "digest": x["digest"], "mediaType": x["mediaType"]}
                for x in self.layers]

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
        rows = [[r["type"], r["path"], size_cell(r["size"]), digest_cell(r["digest"])]
                for r in self.records()]
        head = headline(
            f"<b>Saved {esc(self.reference)}</b>: {len(self.layers)} layer"
            f"{'' if len(self.layers) == 1 else 's'}, {esc(format_bytes(self.size))}, digest "
            f'<code title="{esc(self.digest)}">{esc(short_digest(self.digest))}</code>')
        # kit's "Saved ..." lines are folded in the progress display above, not repeated here
        return head + html_table(["TYPE", "PATH", "SIZE", "DIGEST"], rows)


_REMOTE_STATUS = {"downloaded": "downloaded", "from-cache": "copied from the cache",
                  "up-to-date": "already present",
                  "skipped-existing": "skipped (exists)",
                  "not-included": "skipped (no --include-remote)",
                  "unpacked": "unpacked (ModelKit)"}


@dataclass(repr=False)
class UnpackResult(Result):
    """A ModelKit unpacked into a directory (``%kit unpack``).

    Attributes: ``reference``, ``digest``, ``directory``, ``kitfile_path``, ``layers`` (each
    unpacked layer: ``type``, ``name``, ``path``, ``digest``, ``size``), ``remote`` (each remote
    dataset: its ``status`` -- downloaded, from-cache, up-to-date, skipped-existing,
    not-included, or unpacked for a ModelKit reference -- size and ETag), ``messages``.
    ``to_pandas()``: one row per layer and remote dataset.
    """

    reference: str
    digest: str
    directory: str
    kitfile_path: str | None
    layers: list[dict[str, Any]]          # {"type", "name", "path", "digest", "size"}
    remote: list[Any] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)
    _html_messages = False

    def records(self) -> list[dict[str, Any]]:
        rows = [{"type": x["type"], "name": x.get("name", ""), "path": x["path"],
                 "status": "unpacked", "size": x.get("size"), "digest": x.get("digest"),
                 "etag": None} for x in self.layers]
        for r in self.remote:
            rows.append({"type": "dataset (remote)", "name": "", "path": r.path,
                         "status": r.status, "size": r.size or None, "digest": None,
                         "etag": r.etag or None, "remotePath": r.remote_path})
        return rows

    @property
    def data(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": self.digest,
                "directory": self.directory, "kitfile": self.kitfile_path,
                "layers": [dict(x) for x in self.layers],
                "remote": [_jsonable(r) for r in self.remote]}

    def text(self) -> str:
        return ""

    def summary(self) -> str:
        remote = f", {len(self.remote)} remote dataset(s)" if self.remote else ""
        return (f"Unpacked {self.reference} to {self.directory} "
                f"({len(self.layers)} layer(s){remote})")

    def _html_body(self) -> str:
        rows = []
        for r in self.records():
            ident = digest_cell(r["digest"]) if r["digest"] else Cell(
                r["etag"] or "", mono=True, title=f"ETag of {r.get('remotePath', '')}")
            remote = r["type"] == "dataset (remote)"  # a layer's "unpacked" is plain
            rows.append([r["type"], r["name"], r["path"],
                         _REMOTE_STATUS.get(r["status"], r["status"]) if remote else r["status"],
                         size_cell(r["size"]), ident])
        head = headline(f"<b>Unpacked {esc(self.reference)}</b> to "
                         f"<code>{esc(self.directory)}</code>")
        return head + html_table(["TYPE", "NAME", "PATH", "STATUS", "SIZE", "DIGEST / ETAG"],
                                 rows)


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
                  size=manifest.size, author=authors[0] if authors else "<none>")


@dataclass(repr=False)
class ListResult(Result):
    """ModelKits in local storage, or the tags of a remote repository (``%kit list``).

    ``models``: one object per ModelKit in kit's ``--format json`` shape, except ``size``,
    which is bytes here (``to_json()`` writes kit's ``76.5 MiB``); ``data``: copies of them;
    ``rows()``: kit's table; ``to_pandas()``: one row per tag.
    """

    models: list[dict[str, Any]]          # kit's --format json objects, size in bytes
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
                out.append([m["repo"], tag, m["author"], m["modelName"],
                            format_bytes(m["size"]), m["digest"]])
        return out

    def records(self) -> list[dict[str, Any]]:
        return [{"repository": m["repo"], "tag": tag, "maintainer": m["author"],
                 "name": m["modelName"], "size": m["size"], "digest": m["digest"]}
                for m in self.models for tag in (m["tags"] or [None])]

    @property
    def data(self) -> list[dict[str, Any]]:
        return [Struct(m) for m in self.models]  # copies that keep kit's field order

    def to_json(self) -> str:
        kit = [Struct({**m, "size": format_bytes(m["size"])}) for m in self.models]
        return marshal(kit, indent="  ").decode("utf-8")  # kit's MarshalIndent

    def text(self) -> str:
        if self.template_output is not None:
            return self.template_output
        return tabwriter([LIST_HEADER, *self.rows()])

    def _oneline(self) -> str:
        return f"{len(self.models)} ModelKit(s)"

    def __len__(self) -> int:
        return len(self.models)

    def _html_body(self) -> str:
        if self.template_output is not None:
            return f'<pre style="margin:0">{esc(self.template_output)}</pre>'
        rows = [[r["repository"], r["tag"] or "<none>", r["maintainer"], r["name"],
                 size_cell(r["size"]), digest_cell(r["digest"])] for r in self.records()]
        return html_table(LIST_HEADER, rows)


def _model_info(model: dict[str, Any]) -> dict[str, Any]:
    """kit's ``modelInfo`` struct (pkg/cmd/list/util.go) with its Go field names."""
    return {"Repo": model["repo"], "Digest": model["digest"], "Tags": model["tags"],
            "ModelName": model["modelName"], "Size": format_bytes(model["size"]),
            "Author": model["author"]}


@dataclass(repr=False)
class InspectResult(Result):
    """A ModelKit's manifest and Kitfile (``%kit inspect``), as kit's ``inspect`` prints them.

    Attributes: ``digest``, ``cli_version`` (the kit version that packed it), ``kitfile`` (the
    config as JSON values), ``manifest``; ``data`` / ``to_json()``: kit's inspect object.
    ``to_pandas()``: one row per layer.
    """

    digest: str
    cli_version: str
    kitfile: dict[str, Any] | None        # the config as JSON values, in kit's field order
    manifest: Manifest
    messages: list[tuple[str, str]] = field(default_factory=list)
    #: the messages went to a caller's reporter while it ran (a registry's unverifiable
    #: manifest), so the HTML does not repeat them
    shown: bool = False

    def __post_init__(self) -> None:
        self._html_messages = not self.shown

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

    def _oneline(self) -> str:
        return f"{self.digest} ({len(self.manifest.layers)} layers, kit {self.cli_version})"

    def records(self) -> list[dict[str, Any]]:
        return [{"type": layer_type(layer.media_type),
                 "path": layer.annotations.get(ANNOTATION_FILEPATH, ""),
                 "size": layer.size, "digest": layer.digest, "mediaType": layer.media_type}
                for layer in self.manifest.layers]

    def _html_body(self) -> str:
        pkg = (self.kitfile or {}).get("package") or {}
        what = " ".join(str(pkg[k]) for k in ("name", "version") if pkg.get(k))
        size = sum(r["size"] for r in self.records())
        head = headline(
            (f"<b>{esc(what)}</b> · " if what else "")
            + f'digest <code title="{esc(self.digest)}">{esc(short_digest(self.digest))}</code>'
            f" · {esc(format_bytes(size))} · packed by kit {esc(self.cli_version)}")
        if pkg.get("description"):
            head += headline(esc(pkg["description"]))
        rows = [[r["type"], r["path"], size_cell(r["size"]), digest_cell(r["digest"])]
                for r in self.records()]
        table = html_table(["TYPE", "PATH", "SIZE", "DIGEST"], rows)
        raw = details("kit's JSON", f'<pre style="margin:0">{esc(self.to_json())}</pre>')
        return head + table + raw


@dataclass(repr=False)
class InfoResult(Result):
    """A ModelKit's Kitfile (``%kit info``): ``yaml`` is the text kit prints, ``kitfile`` the
    same as a dict (``data``); ``-f/--filter`` gives one field of it."""

    reference: str
    yaml: str
    kitfile: dict[str, Any] | None = None
    messages: list[tuple[str, str]] = field(default_factory=list)
    #: the messages went to a caller's reporter while it ran (a registry's unverifiable
    #: manifest), so the HTML does not repeat them
    shown: bool = False

    def __post_init__(self) -> None:
        self._html_messages = not self.shown

    @property
    def data(self) -> Any:
        return self.kitfile if self.kitfile is not None else self.yaml

    def text(self) -> str:
        return self.yaml

    def __str__(self) -> str:
        return self.yaml

    def _html_body(self) -> str:
        return f'<pre class="kit-info" style="margin:0">{esc(self.yaml)}</pre>'


@dataclass(repr=False)
class TagResult(Result):
    """A new tag for a local ModelKit (``%kit tag``): ``source``, ``target``, ``digest``."""

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
    """What ``%kit remove`` did: ``removed`` holds one ``{"reference", "digest", "action"}``
    per ModelKit or tag (action ``removed`` or ``untagged``)."""

    removed: list[dict[str, Any]]         # {"reference", "digest", "action": removed|untagged}
    messages: list[tuple[str, str]] = field(default_factory=list)
    #: the messages already went to a caller's reporter while it ran (``remove --remote``
    #: says ``Untagging …`` before the registry answers, as kit does), so text() repeats none
    shown: bool = False

    @property
    def data(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.removed]

    def __post_init__(self) -> None:
        self._html_messages = not self.shown

    def text(self) -> str:
        return "" if self.shown else self._lines()

    def summary(self) -> str:
        return self._lines().rstrip("\n")

    def _lines(self) -> str:
        return "".join(message_text(lvl, m) + "\n" for lvl, m in self.messages)

    def records(self) -> list[dict[str, Any]]:
        return self.data

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
