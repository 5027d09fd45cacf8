"""The Kitfile model: strict YAML decoding with lines, kit-style YAML output, config JSON.

Everything here mirrors how kit (Go, yaml.v3 in strict mode, encoding/json) treats a Kitfile, so
that a Kitfile accepted here is accepted by kit, and a config written here has the same bytes and
digest as kit's (spec §3, §4). String fields keep their source text; ``parameters`` are typed as
yaml.v3 types them; every field path remembers its YAML line so findings can point at it.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from kit_jupyter._arguments import PATH, TEXT_OR_BYTES, arguments
from kit_jupyter._fs import NotRegularFile, open_regular
from kit_jupyter.errors import KitfileError
from kit_jupyter.gocompat import gostrconv
from kit_jupyter.gocompat import goyaml as _yaml
from kit_jupyter.gocompat.gojson import UnsupportedValue, json_kind, marshal, unmarshal
from kit_jupyter.gocompat.goyaml import AnyKeyMap, FlowList, MapKey, Struct
from kit_jupyter.kitfile.finding import Finding
from kit_jupyter.kitfile.reference import is_modelkit_reference

KITFILE_NAMES = ("Kitfile", "kitfile", ".kitfile")
MANIFEST_VERSION = "1.0.0"

# Field kinds in the schema tables below.
_S = "str"
_SL = "strlist"
_ANY = "any"


class _Entity:
    """Shared behaviour of the Kitfile's struct types (schema-driven (de)serialisation)."""

    _schema: ClassVar[tuple[tuple[str, str, Any], ...]] = ()
    _go_name: ClassVar[str] = ""
    _always: ClassVar[frozenset[str]] = frozenset()
    _has_layer: ClassVar[bool] = True

    def _to_struct(self, *, json_mode: bool) -> Struct:
        out = Struct()
        for key, attr, kind in self._schema:
            v = getattr(self, attr)
            if kind == _S:
                if v or key in self._always:
                    out[key] = v
            elif kind == _SL:
                if v:
                    out[key] = list(v) if json_mode else FlowList(v)
            elif kind == _ANY:
                if v is not None:
                    out[key] = v
            else:  # list of entities
                if v:
                    out[key] = [e._to_struct(json_mode=json_mode) for e in v]
        if json_mode and self._has_layer:
            if getattr(self, "digest", ""):
                out["digest"] = self.digest  # type: ignore[attr-defined]
            if getattr(self, "diff_id", ""):
                out["diffId"] = self.diff_id  # type: ignore[attr-defined]
        return out

    @classmethod
    def _from_json(cls, d: Any, where: str):
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise KitfileError(f"json: cannot unmarshal {json_kind(d)} into Go value of type "
                               f"artifact.{cls._go_name}", field=where or None)
        obj = cls()
        for key, attr, kind in cls._schema:
            if key not in d:
                continue
            v = d[key]
            if kind == _S:
                setattr(obj, attr, _json_str(v, f"{where}.{key}".lstrip(".")))
            elif kind == _SL:
                if v is None:
                    v = []
                if not isinstance(v, list):
                    raise KitfileError(f"json: cannot unmarshal {json_kind(v)} into Go struct "
                                       f"field {cls._go_name}.{key} of type []string")
                setattr(obj, attr, [_json_str(x, key) for x in v])
            elif kind == _ANY:
                setattr(obj, attr, v)
            elif kind is Package or kind is Model:
                sub = f"{where}.{key}".lstrip(".")
                none = v is None and kind is Model
                setattr(obj, attr, None if none else kind._from_json(v, sub))
            else:
                if v is None:
                    v = []
                if not isinstance(v, list):
                    raise KitfileError(f"json: cannot unmarshal {json_kind(v)} into Go struct "
                                       f"field {cls._go_name}.{key}")
                setattr(obj, attr, [kind._from_json(x, f"{where}.{key}[{i}]".lstrip("."))
                                    for i, x in enumerate(v)])
        if cls._has_layer:
            obj.digest = _json_str(d.get("digest", ""), "digest")  # type: ignore[attr-defined]
            obj.diff_id = _json_str(d.get("diffId", ""), "diffId")  # type: ignore[attr-defined]
        return obj


def _nesting_over(value: Any, limit: int) -> bool:
    """Whether lists and objects nest more than ``limit`` levels in a decoded JSON value;
    measured without recursion, so that a value too deep for the stack is measured too."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth == limit:
                return True
            stack.extend((x, depth + 1) for x in (v.values() if isinstance(v, dict) else v))
    return False


def _json_str(v: Any, where: str) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise KitfileError(f"json: cannot unmarshal {json_kind(v)} into Go struct field "
                           f"{where} of type string", field=where)
    return v


@dataclass
class Package(_Entity):
    name: str = ""
    version: str = ""
    description: str = ""
    license: str = ""
    authors: list[str] = field(default_factory=list)

    _go_name: ClassVar[str] = "Package"
    _has_layer: ClassVar[bool] = False
    _schema: ClassVar[tuple] = (
        ("name", "name", _S), ("version", "version", _S), ("description", "description", _S),
        ("license", "license", _S), ("authors", "authors", _SL),
    )


@dataclass
class ModelPart(_Entity):
    name: str = ""
    path: str = ""
    license: str = ""
    type: str = ""
    digest: str = ""
    diff_id: str = ""

    _go_name: ClassVar[str] = "ModelPart"
    _schema: ClassVar[tuple] = (
        ("name", "name", _S), ("path", "path", _S), ("license", "license", _S),
        ("type", "type", _S),
    )


@dataclass
class Model(_Entity):
    name: str = ""
    path: str = ""
    license: str = ""
    framework: str = ""
    format: str = ""
    version: str = ""
    description: str = ""
    parts: list[ModelPart] = field(default_factory=list)
    parameters: Any = None
    digest: str = ""
    diff_id: str = ""

    _go_name: ClassVar[str] = "Model"
    _schema: ClassVar[tuple] = (
        ("name", "name", _S), ("path", "path", _S), ("license", "license", _S),
        ("framework", "framework", _S), ("format", "format", _S), ("version", "version", _S),
        ("description", "description", _S), ("parts", "parts", ModelPart),
        ("parameters", "parameters", _ANY),
    )


@dataclass
class Code(_Entity):
    path: str = ""
    description: str = ""
    license: str = ""
    digest: str = ""
    diff_id: str = ""

    _go_name: ClassVar[str] = "Code"
    _schema: ClassVar[tuple] = (
        ("path", "path", _S), ("description", "description", _S), ("license", "license", _S),
    )


@dataclass
class DataSet(_Entity):
    name: str = ""
    path: str = ""
    remote_path: str = ""
    remote_hash: str = ""
    description: str = ""
    license: str = ""
    parameters: Any = None
    digest: str = ""
    diff_id: str = ""

    _go_name: ClassVar[str] = "DataSet"
    _schema: ClassVar[tuple] = (
        ("name", "name", _S), ("path", "path", _S), ("remotePath", "remote_path", _S),
        ("remoteHash", "remote_hash", _S), ("description", "description", _S),
        ("license", "license", _S), ("parameters", "parameters", _ANY),
    )


@dataclass
class Docs(_Entity):
    path: str = ""
    description: str = ""
    digest: str = ""
    diff_id: str = ""

    _go_name: ClassVar[str] = "Docs"
    _always: ClassVar[frozenset[str]] = frozenset({"path"})
    _schema: ClassVar[tuple] = (("path", "path", _S), ("description", "description", _S))


@dataclass
class Prompt(_Entity):
    name: str = ""
    path: str = ""
    description: str = ""
    digest: str = ""
    diff_id: str = ""

    _go_name: ClassVar[str] = "Prompt"
    _schema: ClassVar[tuple] = (
        ("name", "name", _S), ("path", "path", _S), ("description", "description", _S),
    )


@dataclass
class MCPServer(_Entity):
    name: str = ""
    path: str = ""
    description: str = ""
    digest: str = ""
    diff_id: str = ""

    _go_name: ClassVar[str] = "MCPServer"
    _schema: ClassVar[tuple] = (
        ("name", "name", _S), ("path", "path", _S), ("description", "description", _S),
    )


@dataclass(frozen=True)
class LayerEntry:
    """One Kitfile entry that produces a layer, in kit's layer order (spec §7.5)."""

    kind: str  # model, modelpart, code, dataset, docs, prompt, mcpserver
    index: int  # index within its Kitfile list (0 for the model)
    entity: Any
    path: str
    name: str

    @property
    def field(self) -> str:
        """The Kitfile field path of the entry's ``path``."""
        return {
            "model": "model.path",
            "modelpart": f"model.parts[{self.index}].path",
            "code": f"code[{self.index}].path",
            "dataset": f"datasets[{self.index}].path",
            "docs": f"docs[{self.index}].path",
            "prompt": f"prompts[{self.index}].path",
            "mcpserver": f"mcpServers[{self.index}].path",
        }[self.kind]


@dataclass(frozen=True)
class RemoteDataset:
    """A Kitfile dataset whose bytes stay outside the ModelKit (``remotePath``: an ``s3://`` URL
    or a ModelKit reference). The seam between the Kitfile and the code that checks or fetches
    the bytes (S3 transport, ``validate --check-remote``, unpack), so none of them reads the
    Kitfile's lists or line table itself."""

    index: int  # position in the Kitfile's ``datasets`` list
    name: str
    path: str  # where unpack writes the bytes, relative to the unpack directory
    remote_path: str
    remote_hash: str
    remote_path_line: int | None = None  # YAML line of ``remotePath`` (None: not read from YAML)
    remote_hash_line: int | None = None  # YAML line of ``remoteHash``, else of ``remotePath``

    @property
    def field(self) -> str:
        """The Kitfile field path of the dataset entry, e.g. ``datasets[2]``."""
        return f"datasets[{self.index}]"


@dataclass
class Kitfile(_Entity):
    """A decoded Kitfile (``load_kitfile``): what a ModelKit holds and where its files are.

    String fields keep their YAML text as kit keeps it; ``lines`` maps a field path such as
    ``datasets[0].remotePath`` to its YAML line. ``to_yaml()`` writes it as kit does,
    ``to_config_json()`` gives the config blob's exact bytes.
    """

    manifest_version: str = ""
    package: Package | None = field(default_factory=Package)
    model: Model | None = None
    code: list[Code] = field(default_factory=list)
    datasets: list[DataSet] = field(default_factory=list)
    docs: list[Docs] = field(default_factory=list)
    prompts: list[Prompt] = field(default_factory=list)
    mcp_servers: list[MCPServer] = field(default_factory=list)
    # field path -> line of its key (list items: line of the item)
    lines: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    # field path -> first line of a mapping/list value (where an absent key would go)
    value_lines: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    # decoded best-effort from YAML with decode errors: the values that had errors are missing
    partial: bool = field(default=False, repr=False, compare=False)

    _go_name: ClassVar[str] = "KitFile"
    _has_layer: ClassVar[bool] = False
    _schema: ClassVar[tuple] = (
        ("manifestVersion", "manifest_version", _S), ("package", "package", Package),
        ("model", "model", Model), ("code", "code", Code), ("datasets", "datasets", DataSet),
        ("docs", "docs", Docs), ("prompts", "prompts", Prompt),
        ("mcpServers", "mcp_servers", MCPServer),
    )

    # -- output ------------------------------------------------------------------------------

    def _top(self, *, json_mode: bool) -> Struct:
        out = Struct()
        out["manifestVersion"] = self.manifest_version
        pkg = self.package._to_struct(json_mode=json_mode) if self.package else Struct()
        if json_mode or pkg:
            out["package"] = pkg
        if self.model is not None:
            out["model"] = self.model._to_struct(json_mode=json_mode)
        for key, attr in (("code", "code"), ("datasets", "datasets"), ("docs", "docs"),
                          ("prompts", "prompts"), ("mcpServers", "mcp_servers")):
            items = getattr(self, attr)
            if items:
                out[key] = [e._to_struct(json_mode=json_mode) for e in items]
        return out

    def to_yaml(self) -> str:
        """The Kitfile as kit writes it (yaml.v3, indent 2; spec §3.5)."""
        return _yaml.dump_document(self._top(json_mode=False))

    def to_config_json(self) -> bytes:
        """The config blob, byte-identical to kit's ``json.Marshal`` (spec §4).

        Raises KitfileError with Go's text when parameters hold values JSON cannot carry
        (``.inf``, ``.nan``, maps with non-string keys), as kit's pack does.
        """
        try:
            return marshal(self._top(json_mode=True))
        except UnsupportedValue as exc:
            raise KitfileError(str(exc)) from None

    @classmethod
    def from_config_json(cls, data: bytes | str) -> Kitfile:
        """A Kitfile read back from a config blob (digests kept; numbers become floats). A
        config nested deeper than a Kitfile may be (``_Decoder.MAX_DEPTH``, counted from the
        top) is refused here, as the YAML decoder refuses it: it could not be written back out
        as a Kitfile (``info``, ``unpack``) without exhausting Python's stack."""
        try:
            d = unmarshal(data, parse_int=float)
        except (ValueError, UnicodeDecodeError) as exc:
            raise KitfileError(f"invalid config JSON: {exc}") from None
        if _nesting_over(d, _Decoder.MAX_DEPTH):
            raise KitfileError(f"invalid config JSON: nested deeper than {_Decoder.MAX_DEPTH} "
                               "levels")
        return cls._from_json(d, "")

    # -- helpers ---------------------------------------------------------------------------

    def line_of(self, field_path: str) -> int | None:
        """The YAML line of a field; for an absent key the enclosing mapping's first line.

        None for a Kitfile that was not read from YAML (built in code or from a config).
        """
        if not self.lines and not self.value_lines:
            return None
        if field_path in self.lines:
            return self.lines[field_path]
        path = field_path
        while path:
            cut = path.rfind("[") if path.endswith("]") else max(path.rfind("."), 0)
            path = path[:cut]
            if path and path in self.value_lines:
                return self.value_lines[path]
            if path in self.lines:
                return self.lines[path]
        return 1  # a missing top-level key (manifestVersion) points at the top

    def layer_entries(self) -> list[LayerEntry]:
        """Entries that produce layers, in kit's order (spec §7.5)."""

        out: list[LayerEntry] = []
        m = self.model
        if m is not None:
            if m.path and not is_modelkit_reference(m.path):
                out.append(LayerEntry("model", 0, m, m.path, m.name))
            for i, p in enumerate(m.parts):
                out.append(LayerEntry("modelpart", i, p, p.path, p.name))
        for i, c in enumerate(self.code):
            out.append(LayerEntry("code", i, c, c.path, ""))
        for i, d in enumerate(self.datasets):
            if not d.remote_path:
                out.append(LayerEntry("dataset", i, d, d.path, d.name))
        for i, doc in enumerate(self.docs):
            out.append(LayerEntry("docs", i, doc, doc.path, ""))
        for i, pr in enumerate(self.prompts):
            out.append(LayerEntry("prompt", i, pr, pr.path, pr.name))
        for i, s in enumerate(self.mcp_servers):
            out.append(LayerEntry("mcpserver", i, s, s.path, s.name))
        return out

    def has_layer_info(self) -> tuple[bool, bool]:
        """kit's ``KitfileHasLayerInfo`` (the newest kit's ``pkg/artifact/core.go``): whether
        every layer entry carries a ``digest`` and whether every one carries a ``diffId``.

        unpack matches layers to entries by digest when they all have one and by position
        when none has (ModelKits packed before kit 1.0 stored no layer info). Entries that
        make no layer here -- a parent reference, remote datasets -- are not asked, and nor
        are mcpServers (kit leaves them out of the check). A Kitfile without entries has
        both (vacuously), as in kit.

        Raises:
            ValueError: some entries have a digest (or a diffId) and others not, with kit's
                text (``invalid digests in layerinfo in Kitfile``).
        """
        entries = [e for e in self.layer_entries() if e.kind != "mcpserver"]
        digests = {bool(e.entity.digest) for e in entries}
        diff_ids = {bool(e.entity.diff_id) for e in entries}
        if len(digests) > 1:
            raise ValueError("invalid digests in layerinfo in Kitfile")
        if len(diff_ids) > 1:
            raise ValueError("invalid diffIDs in layerinfo in Kitfile")
        return False not in digests, False not in diff_ids

    def remote_datasets(self) -> list[RemoteDataset]:
        """The datasets whose bytes live outside the ModelKit (non-empty ``remotePath``), in
        Kitfile order, with what the S3 check, the validator and unpack need to name them."""
        out: list[RemoteDataset] = []
        for i, d in enumerate(self.datasets):
            if not d.remote_path:
                continue
            base = f"datasets[{i}]"
            path_line = self.lines.get(f"{base}.remotePath", self.lines.get(base))
            out.append(RemoteDataset(
                index=i, name=d.name, path=d.path, remote_path=d.remote_path,
                remote_hash=d.remote_hash, remote_path_line=path_line,
                remote_hash_line=self.lines.get(f"{base}.remoteHash", path_line)))
        return out


# ---------------------------------------------------------------------------------------------
# Decoding


@dataclass
class _Problem:
    line: int | None
    message: str  # our text (with field path / hint): KitfileError's one line
    kit: str  # yaml.v3's text
    field: str | None
    hint: str | None = None  # how to fix it, where kit's text is terse
    fix: tuple[str, str] | None = None  # an unambiguous edit on ``line``: (old, new) token


class _Fatal(Exception):
    """yaml.v3 aborts the whole decode (``failf``) instead of collecting an error."""

    def __init__(self, node: yaml.Node, message: str, path: str):
        super().__init__(message)
        self.line = node.start_mark.line + 1
        self.path = path


# Bytes of scalar text a document may copy through aliases (see _Decoder._tick).
MAX_ALIAS_BYTES = 32 * 1024 * 1024


def _allowed_alias_ratio(decode_count: int) -> float:
    """yaml.v3's allowedAliasRatio: 0.99 up to 400,000 nodes, 0.10 from 4,000,000."""
    low, high = 400_000, 4_000_000
    if decode_count <= low:
        return 0.99
    if decode_count >= high:
        return 0.10
    return 0.99 - 0.89 * ((decode_count - low) / (high - low))


class _Decoder:
    """Strict decoding of the node tree into the Kitfile types, collecting every problem."""

    MAX_NODES = 2_000_000
    # Python recursion, not YAML, sets this bound (yaml.v3 allows 10000 levels); deeper
    # parameters could not be written back out anyway.
    MAX_DEPTH = 250

    def __init__(self) -> None:
        self.problems: list[_Problem] = []
        self.lines: dict[str, int] = {}
        self.value_lines: dict[str, int] = {}
        self._active: set[int] = set()
        self._count = 0
        # yaml.v3's alias accounting (decode.go): nodes decoded, nodes decoded through an alias,
        # how deep in alias expansions we are, and which nodes were seen (a second visit of the
        # same composed node is an alias: PyYAML's composer shares the anchored node).
        self._alias_count = 0
        self._alias_depth = 0
        self._alias_bytes = 0
        self._seen: set[int] = set()
        self._alias_stack: list[bool] = []

    # -- helpers
    def _problem(self, node: yaml.Node, kit: str, ours: str | None, path: str | None,
                 hint: str | None = None, fix: tuple[str, str] | None = None) -> None:
        line = node.start_mark.line + 1
        self.problems.append(
            _Problem(line, f"line {line}: {ours or kit}", f"line {line}: {kit}", path or None,
                     hint, fix)
        )

    def _type_error(self, node: yaml.Node, target: str, path: str) -> None:
        if isinstance(node, yaml.ScalarNode):
            tag = _yaml.scalar_tag(node)
            v = node.value
            v = f" `{v[:7]}...`" if len(v) > 10 else f" `{v}`"
        else:
            tag = _yaml.MAP if isinstance(node, yaml.MappingNode) else _yaml.SEQ
            v = ""
        kit = f"cannot unmarshal {tag}{v} into {target}"
        ours = f"{path}: {kit}" if path else kit
        self._problem(node, kit, ours, path, _type_hint(node, target, path))

    def _is_null(self, node: yaml.Node) -> bool:
        if not isinstance(node, yaml.ScalarNode):
            return False
        try:
            return _yaml.resolve_scalar(node)[0] == _yaml.NULL
        except _yaml.TagError:
            return False

    def _tick(self, node: yaml.Node, path: str) -> bool:
        """Count one decoded node the way yaml.v3 does and refuse alias bombs as it does.

        yaml.v3 fails with "document contains excessive aliasing" once more than 100 nodes were
        decoded through aliases, more than 1000 in all, and the aliased share exceeds a ratio
        that falls from 0.99 (up to 400,000 nodes) to 0.10 (from 4,000,000). A "billion laughs"
        document trips this after a few thousand nodes, in milliseconds. We also bound the
        bytes of scalars copied through aliases (:data:`MAX_ALIAS_BYTES`), which yaml.v3 does
        not: one large anchored string repeated hundreds of times would otherwise become a
        config blob of hundreds of megabytes. Returns True when the node was reached through an
        alias (the caller must then :meth:`_leave` with it).
        """
        self._count += 1
        alias = id(node) in self._seen
        self._seen.add(id(node))
        if alias or self._alias_depth:
            self._alias_count += 1
            if isinstance(node, yaml.ScalarNode):
                self._alias_bytes += len(node.value)
        if (self._alias_count > 100 and self._count > 1000
                and self._alias_count / self._count > _allowed_alias_ratio(self._count)
                or self._alias_bytes > MAX_ALIAS_BYTES or self._count > self.MAX_NODES):
            raise _Fatal(node, "document contains excessive aliasing", path)
        return alias

    def _enter(self, node: yaml.Node, path: str) -> bool:
        if id(node) in self._active:
            self._problem(node, "anchor value contains itself", None, path)
            return False
        alias = self._tick(node, path)
        self._alias_stack.append(alias)
        self._alias_depth += alias
        self._active.add(id(node))
        return True

    def _leave(self, node: yaml.Node) -> None:
        self._active.discard(id(node))
        self._alias_depth -= self._alias_stack.pop()

    @staticmethod
    def _key_text(node: yaml.Node) -> str | None:
        if isinstance(node, yaml.ScalarNode):
            return node.value
        return None

    def _duplicates(self, node: yaml.MappingNode, path: str) -> bool:
        """yaml.v3's unique-key check; returns True (and reports) when keys repeat."""
        seen: dict[tuple[str, str], list[yaml.Node]] = {}
        found = False
        for k, _ in node.value:
            kind = "s" if isinstance(k, yaml.ScalarNode) else (
                "m" if isinstance(k, yaml.MappingNode) else "q")
            val = k.value if isinstance(k, yaml.ScalarNode) else ""
            seen.setdefault((kind, val), []).append(k)
        if all(len(v) == 1 for v in seen.values()):
            return False
        pairs = []
        for group in seen.values():
            for i, a in enumerate(group):
                for b in group[i + 1 :]:
                    pairs.append((a, b))
        order = {id(k): i for i, (k, _) in enumerate(node.value)}
        pairs.sort(key=lambda ab: (order[id(ab[0])], order[id(ab[1])]))
        for a, b in pairs:
            key = a.value if isinstance(a, yaml.ScalarNode) else ""
            kit = (f'mapping key {gostrconv.quote(key)} already defined at line '
                   f"{a.start_mark.line + 1}")
            where = f" in {path}" if path else ""
            ours = f"{kit}{where}" if path else kit
            self._problem(b, kit, ours, f"{path}.{key}".lstrip(".") if key else path)
            found = True
        return found

    @staticmethod
    def _is_merge(k: yaml.Node) -> bool:
        return (
            isinstance(k, yaml.ScalarNode)
            and k.value == "<<"
            and (k.tag == _yaml.PLAIN or _yaml.short_tag(k.tag) == _yaml.MERGE)
        )

    def _merged_entries(self, node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
        """Mapping entries with ``<<`` merges applied: explicit keys win, earlier merges win."""
        explicit = {
            k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)
            and not self._is_merge(k)
        }
        entries: list[tuple[yaml.Node, yaml.Node]] = []
        taken = set(explicit)
        for k, v in node.value:
            if not self._is_merge(k):
                entries.append((k, v))
                continue
            sources = v.value if isinstance(v, yaml.SequenceNode) else [v]
            for src in sources:
                if not isinstance(src, yaml.MappingNode):
                    self._problem(src, "map merge requires map or sequence of maps as the value",
                                  None, None)
                    continue
                for sk, sv in self._merged_entries(src):
                    name = self._key_text(sk)
                    if name is not None and name in taken:
                        continue
                    if name is not None:
                        taken.add(name)
                    entries.append((sk, sv))
        return entries

    # -- typed decoding
    def decode_string(self, node: yaml.Node, path: str) -> str:
        if isinstance(node, yaml.ScalarNode):
            self._tick(node, path)
            try:
                tag, val = _yaml.resolve_scalar(node)
            except _yaml.TagError as exc:
                raise _Fatal(node, str(exc), path) from None
            if tag == _yaml.NULL:
                return ""
            if _yaml.short_tag(node.tag) == _yaml.BINARY:
                return val
            return node.value
        self._type_error(node, "string", path)
        return ""

    def decode_strlist(self, node: yaml.Node, path: str) -> list[str]:
        if self._is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self._type_error(node, "[]string", path)
            return []
        out: list[str] = []
        for item in node.value:
            if self._is_null(item):
                continue  # yaml.v3 drops null items of a typed list
            p = f"{path}[{len(out)}]"
            self.lines[p] = item.start_mark.line + 1
            out.append(self.decode_string(item, p))
        return out

    def decode_entity(self, node: yaml.Node, cls: type[_Entity], path: str, *,
                      pointer: bool = False) -> Any:
        if self._is_null(node):
            return None if pointer else cls()
        if not isinstance(node, yaml.MappingNode):
            self._type_error(node, f"artifact.{cls._go_name}", path)
            return None if pointer else cls()
        if not self._enter(node, path):
            return cls()
        try:
            return self._decode_mapping(node, cls, path)
        finally:
            self._leave(node)

    def _decode_mapping(self, node: yaml.MappingNode, cls: type[_Entity], path: str) -> Any:
        obj = cls()
        self.value_lines[path] = node.start_mark.line + 1
        if self._duplicates(node, path):
            return obj
        by_key = {key: (attr, kind) for key, attr, kind in cls._schema}
        done: set[str] = set()
        present = {self._key_text(k) for k, _ in node.value}
        for k, v in self._merged_entries(node):
            if isinstance(k, yaml.ScalarNode):
                if self._is_null(k):
                    continue  # yaml.v3 skips a null key of a struct without a word
                name = k.value
            else:
                self._type_error(k, "string", path)
                continue
            fpath = f"{path}.{name}" if path else name
            spec = by_key.get(name)
            if spec is None:
                self._unknown_key(k, name, cls, path, present)
                continue
            if name in done:
                kit = f"field {name} already set in type artifact.{cls._go_name}"
                self._problem(k, kit, kit, fpath)
                continue
            done.add(name)
            attr, kind = spec
            self.lines[fpath] = k.start_mark.line + 1
            if isinstance(v, (yaml.MappingNode, yaml.SequenceNode)):
                self.value_lines[fpath] = v.start_mark.line + 1
            if kind == _S:
                setattr(obj, attr, self.decode_string(v, fpath))
            elif kind == _SL:
                setattr(obj, attr, self.decode_strlist(v, fpath))
            elif kind == _ANY:
                setattr(obj, attr, self.decode_any(v, fpath))
            elif kind in (Package, Model):
                setattr(obj, attr, self.decode_entity(v, kind, fpath, pointer=kind is Model))
            else:
                setattr(obj, attr, self.decode_list(v, kind, fpath))
        return obj

    def decode_list(self, node: yaml.Node, cls: type[_Entity], path: str) -> list:
        if self._is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self._type_error(node, f"[]artifact.{cls._go_name}", path)
            return []
        out: list = []
        for item in node.value:
            if self._is_null(item):
                continue  # yaml.v3 drops null items of a typed list
            p = f"{path}[{len(out)}]"
            self.lines[p] = item.start_mark.line + 1
            out.append(self.decode_entity(item, cls, p))
        return out

    def _unknown_key(self, k: yaml.Node, name: str, cls: type[_Entity], path: str,
                     present: set[str | None]) -> None:
        kit = f"field {name} not found in type artifact.{cls._go_name}"
        where = path or "Kitfile"
        ours = f"field {name} not found in {where}"
        keys = [key for key, _, _ in cls._schema]
        hint = closest_key(name, keys)
        fix = None
        if hint:
            ours += f'; did you mean "{hint}"?'
            # one candidate only, and not already set in this mapping: safe to rename
            if hint not in present and len(key_suggestions(name, keys)) == 1:
                fix = (name, hint)
        self._problem(k, kit, ours, f"{path}.{name}".lstrip(".") if path else name,
                      f'did you mean "{hint}"?' if hint else None, fix)

    def decode_any(self, node: yaml.Node, path: str, depth: int = 0) -> Any:
        if depth > self.MAX_DEPTH:
            raise RecursionError
        if isinstance(node, yaml.ScalarNode):
            self._tick(node, path)
            try:
                return _yaml.resolve_scalar(node)[1]
            except _yaml.TagError as exc:
                raise _Fatal(node, str(exc), path) from None
        if not self._enter(node, path):
            return None
        try:
            if isinstance(node, yaml.SequenceNode):
                return [
                    self.decode_any(item, f"{path}[{i}]", depth + 1)
                    for i, item in enumerate(node.value)
                ]
            assert isinstance(node, yaml.MappingNode)
            if self._duplicates(node, path):
                return {}
            entries = self._merged_entries(node)
            keys: list[MapKey] = []
            for k, _ in entries:
                if isinstance(k, yaml.ScalarNode):
                    try:
                        tag, kv = _yaml.resolve_scalar(k)
                    except _yaml.TagError as exc:
                        raise _Fatal(k, str(exc), path) from None
                else:
                    # Go cannot hash a map or slice key: yaml.v3 gives up on the document
                    raise _Fatal(k, f"invalid map key: {self.decode_any(k, path, depth + 1)!r}",
                                 path)
                keys.append(MapKey(tag, kv))
            if all(key.kind == _yaml.STR for key in keys):
                return {
                    key.value: self.decode_any(v, f"{path}.{key.value}", depth + 1)
                    for key, (_, v) in zip(keys, entries, strict=True)
                }
            out = AnyKeyMap()
            for key, (_, v) in zip(keys, entries, strict=True):
                out[key] = self.decode_any(v, f"{path}.{key.value!r}", depth + 1)
            return out
        finally:
            self._leave(node)


def closest_key(name: str, candidates: list[str]) -> str | None:
    """The valid key a mistyped key most likely meant (case-insensitive first)."""
    hits = key_suggestions(name, candidates)
    return hits[0] if hits else None


def key_suggestions(name: str, candidates: list[str]) -> list[str]:
    """The valid keys ``name`` may have meant, best first: a case-insensitive match alone, else
    every close key that scores within 0.1 of the best (one entry: the typo is unambiguous)."""
    lower = {c.lower(): c for c in candidates}
    if name.lower() in lower:
        return [lower[name.lower()]]
    scored = sorted(((difflib.SequenceMatcher(None, name.lower(), c).ratio(), c) for c in lower),
                    reverse=True)
    close = [(r, c) for r, c in scored if r >= 0.6]
    return [lower[c] for r, c in close if r >= close[0][0] - 0.1] if close else []


_ITEM_KEY = {"Code": "path", "DataSet": "path", "Docs": "path", "Prompt": "path",
             "MCPServer": "name", "ModelPart": "path"}


def _type_hint(node: yaml.Node, target: str, path: str) -> str | None:
    """A short fix for a Go type error, in the user's terms (kit's text names Go types)."""
    key = path.rpartition(".")[2] or "the Kitfile"
    value = node.value if isinstance(node, yaml.ScalarNode) else None
    if target.startswith("[]artifact."):
        item = _ITEM_KEY.get(target[len("[]artifact."):], "path")
        if isinstance(node, yaml.MappingNode) and node.value:
            first_key, first_value = node.value[0]
            shown = first_value.value if isinstance(first_value, yaml.ScalarNode) else "..."
            return f"{key} must be a list: - {first_key.value}: {shown}"
        return f"{key} must be a list: - {item}: {value if value else '...'}"
    if target == "[]string":
        return f"{key} must be a list: [{value if value else '...'}]"
    if target == "string":
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
        return f"{key} must be text, not {kind}; quote it to keep it as written"
    if target == "artifact.KitFile":
        return "a Kitfile is a mapping of keys such as manifestVersion:, package:, model:"
    if target.startswith("artifact."):
        return f"{key} must be a mapping of its fields (name:, path: ...), not a single value"
    return None


@dataclass
class _DecodeResult:
    """``kitfile`` is what decoded (``partial`` when there are ``problems``), or None when
    nothing could be (malformed YAML, a document that is not a mapping, a fatal yaml.v3 error)."""

    kitfile: Kitfile | None
    problems: list[_Problem]
    kit_text: str


def _decode(text: str | bytes) -> _DecodeResult:
    try:
        root = _yaml.compose_first(text)
    except _yaml.YAMLSyntaxError as exc:
        msg = str(exc)
        return _DecodeResult(None, [_Problem(exc.line, msg, msg, None)], msg)
    if root is None:
        return _DecodeResult(None, [_Problem(None, "EOF", "EOF", None)], "EOF")
    dec = _Decoder()
    try:
        kf = dec.decode_entity(root, Kitfile, "")
    except _Fatal as exc:
        where = f"{exc.path}: " if exc.path else ""
        kit = f"yaml: {exc}"
        problem = _Problem(exc.line, f"line {exc.line}: {where}{exc}", kit, exc.path or None)
        return _DecodeResult(None, [problem], kit)
    except RecursionError:
        msg = f"yaml: exceeded max depth of {_Decoder.MAX_DEPTH}"
        return _DecodeResult(None, [_Problem(None, msg, msg, None)], msg)
    if dec.problems and not isinstance(root, yaml.MappingNode):
        kf = None  # the document is not a mapping: nothing decoded
    kit = ""
    if dec.problems:
        kit = "yaml: unmarshal errors:\n  " + "\n  ".join(p.kit for p in dec.problems)
    if kf is not None:
        # best effort: what decoded is kept, so validation can still run on it
        kf.lines = dec.lines
        kf.value_lines = dec.value_lines
        kf.value_lines.setdefault("", root.start_mark.line + 1)
        kf.partial = bool(dec.problems)
        if kf.package is None:
            kf.package = Package()
    return _DecodeResult(kf, dec.problems, kit)


def _raise(res: _DecodeResult) -> None:
    first = res.problems[0]
    more = len(res.problems) - 1
    msg = first.message + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
    raise KitfileError(msg, line=first.line, field=first.field, findings=_findings(res.problems),
                       kit_text=res.kit_text)


def _findings(problems: list[_Problem]) -> list[Finding]:
    """kit's text, its line said once (in ``line``, not repeated in the message), our hint."""
    return [Finding("error", _unlocated(p.kit, p.line), p.field, p.line, hint=p.hint, fix=p.fix)
            for p in problems]


def _unlocated(text: str, line: int | None) -> str:
    """``line 5: x`` -> ``x`` and ``yaml: line 5: x`` -> ``yaml: x`` (the line is a column)."""
    if line is None:
        return text
    for prefix in ("", "yaml: "):
        if text.startswith(f"{prefix}line {line}: "):
            return prefix + text[len(f"{prefix}line {line}: "):]
    return text


@arguments(text=TEXT_OR_BYTES)
def load_kitfile(text: str | bytes) -> Kitfile:
    """Decode a Kitfile from its YAML text, strictly, as kit does.

    Unknown keys, repeated keys and wrong types are errors; this does not validate paths and
    references (``validate_text`` does both and never raises).

    Args:
        text: the YAML, as text or bytes.

    Returns:
        Kitfile: the model (``.package``, ``.model``, ``.datasets`` ..., ``.to_yaml()``).

    Raises:
        KitfileError: the YAML cannot be decoded (``err.line`` and ``err.field`` say where).
    """
    res = _decode(text)
    if res.problems or res.kitfile is None:
        _raise(res)
    assert res.kitfile is not None
    return res.kitfile


# A Kitfile is a few KiB; this bound keeps a wrong path (a log, /dev/zero, a dataset) from
# eating memory -- PyYAML's node tree costs ~100 bytes per input byte. kit has no such bound.
MAX_KITFILE_BYTES = 4 * 1024 * 1024


def read_kitfile_text(path: str | os.PathLike) -> str:
    """The text of a Kitfile on disk, for every command that reads one (one set of messages).

    Only regular files are read: a FIFO would block for ever and a device never ends. Reading
    stops after :data:`MAX_KITFILE_BYTES`.
    """
    p = Path(path)
    try:
        fd, _ = open_regular(p)
    except NotRegularFile as exc:  # "is a directory", "not a regular file"
        raise KitfileError(f"read {p}: {exc.strerror}") from None
    except FileNotFoundError:
        raise KitfileError(f"open {p}: no such file or directory") from None
    except OSError as exc:
        raise KitfileError(f"open {p}: {(exc.strerror or str(exc)).lower()}") from None
    except ValueError:  # a NUL in the path: what Go's open says of one
        raise KitfileError(f"open {p}: invalid argument") from None
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(MAX_KITFILE_BYTES + 1)
        except OSError as exc:
            raise KitfileError(f"read {p}: {(exc.strerror or str(exc)).lower()}") from None
    return decode_kitfile_bytes(data, str(p))


def decode_kitfile_bytes(data: bytes, source: str) -> str:
    """Kitfile bytes (from a file or standard input) as text, refusing oversized or non-UTF-8
    input with one line."""
    if len(data) > MAX_KITFILE_BYTES:
        raise KitfileError(f"Kitfile {source} is larger than {MAX_KITFILE_BYTES // 2**20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KitfileError(f"Kitfile {source} is not UTF-8: {exc.reason}") from None


@arguments(path=PATH)
def load_kitfile_file(path: str | os.PathLike) -> Kitfile:
    """Read and decode the Kitfile at ``path`` (see ``load_kitfile``).

    Args:
        path: the Kitfile's path (a regular file of at most 4 MiB).

    Returns:
        Kitfile: the model.

    Raises:
        KitfileError: the file cannot be read or decoded.
    """
    return load_kitfile(read_kitfile_text(path))


def decode_kitfile(text: str | bytes) -> tuple[Kitfile | None, list[Finding]]:
    """Decode without raising: what decoded (None only when nothing did; else ``partial``
    when there were problems) and every decoding problem as an error finding (none when the
    Kitfile decodes). What :func:`~kit_jupyter.kitfile.rules.check_kitfile` validates."""
    res = _decode(text)
    return res.kitfile, _findings(res.problems)


def find_kitfile(context_dir: str | os.PathLike, file: str | os.PathLike | None = None) -> Path:
    """The Kitfile kit would use: ``file`` if given, else Kitfile, kitfile, .kitfile."""
    if file is not None:
        p = Path(file)
        if not p.is_file():
            raise KitfileError(f"open {p}: no such file or directory")
        return p
    ctx = Path(context_dir)
    try:
        names = set(os.listdir(ctx))
    except OSError:
        names = set()
    for name in KITFILE_NAMES:
        # exact-name match, so a case-insensitive file system does not find "kitfile" twice
        if name in names and (ctx / name).is_file():
            return ctx / name
    raise KitfileError(
        f"No Kitfile found in {context_dir}. Consider using the -f flag to specify its path"
    )
