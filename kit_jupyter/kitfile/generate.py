"""``kit init``'s Kitfile generation: a directory listing in, a Kitfile out (pure logic).

kit (``pkg/lib/kitfile/generate``) guesses what each file is from its name and size and writes
the Kitfile a user would most likely have written; ``kit init`` and ``kit import`` both use it.
This module reimplements those rules so that ``%kit init`` produces the same Kitfile for the same
directory, checked against kit's own ``testing/testdata/kitfile-generation`` fixtures:

* files are classified by name: prompt files (``AGENTS.md``, ``SKILL.md``, ``CLAUDE.md``, any
  name containing ``.prompt``), MCP bundles (``.mcpb``), model weights (a list of suffixes and
  ``*pytorch_model*.bin``), metadata (``.json .yaml .xml .txt``), docs (``.md .adoc .html .pdf``),
  datasets (``.tar .zip .parquet .csv``); ``README*`` and ``LICENSE*`` are docs with a
  description, and a recognised licence is attached to the model (or the only dataset, the only
  code entry, else the package);
* several model files become one model plus parts: the largest file is the model if it is more
  than 1.5 times the average size (an adaptor next to its base), else the first one in name order
  (a sharded model); metadata files join the model as parts, or become datasets without a model;
* a subdirectory is one unit (``docs``, ``src``, ``pkg``, ``lib``, ``build`` by name; otherwise
  by its files: all models, datasets, docs or prompts; mixed -> code), written with a trailing
  ``/``; ``depth`` > 0 examines that many levels file by file instead (-1: all levels);
* a directory holding ``SKILL.md`` is an agent skill: one ``prompts`` entry named from the
  file's front matter (at the root, the whole Kitfile is that skill);
* more than five files of unknown type at the top make one catch-all ``code: .``; fewer are
  listed one by one.

Reading the few files whose *content* matters (the licence, ``SKILL.md`` front matter) goes
through the ``read_text`` callback, so the same rules work on a local directory, a git checkout
or a remote file listing without contents.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

import yaml

from kit_jupyter.kitfile.model import (
    KITFILE_NAMES,
    MANIFEST_VERSION,
    Code,
    DataSet,
    Docs,
    Kitfile,
    MCPServer,
    Model,
    ModelPart,
    Package,
    Prompt,
)

#: Reads a file by its slash path relative to the listed directory; None when it cannot.
ReadText = Callable[[str], "str | None"]
#: Receives kit's warning lines (``Unable to determine license type``).
Warn = Callable[[str], None]


@dataclass
class FileListing:
    name: str
    path: str  # slash path relative to the listed directory
    size: int = 0


@dataclass
class DirectoryListing:
    """A directory as kit sees it: regular files and subdirectories, each list in name order."""

    name: str
    path: str  # "." for the listed directory itself
    files: list[FileListing] = field(default_factory=list)
    subdirs: list[DirectoryListing] = field(default_factory=list)

    def all_files(self) -> Iterator[FileListing]:
        """Every file below, each directory's files before its subdirectories' (depth first,
        in name order), from a stack rather than by recursion: a listing may be deeper than
        Python's recursion limit."""
        todo: list[DirectoryListing] = [self]
        while todo:
            d = todo.pop()
            yield from d.files
            todo.extend(reversed(d.subdirs))


# -- file types -------------------------------------------------------------------------------

MODEL = "model"
DATASET = "dataset"
CODE = "code"
DOCS = "docs"
METADATA = "metadata"
PROMPT = "prompt"
MCP = "mcpServer"
UNKNOWN = "unknown"
#: kit's enumeration order; a directory's files are tallied in this order (see _add_dir).
_TYPE_ORDER = (MODEL, DATASET, CODE, DOCS, METADATA, PROMPT, MCP, UNKNOWN)

MODEL_SUFFIXES = (
    ".safetensors", ".pkl", ".joblib",
    ".pth", ".pt", ".mar", ".pt2", ".ptl",                  # PyTorch
    ".pb", ".ckpt", ".tflite", ".tfrecords",                # TensorFlow
    ".npy", ".npz",                                         # NumPy
    ".keras", ".h5", ".caffemodel", ".pmml", ".coreml",     # Keras and others
    ".gguf", ".ggml", ".ggmf", ".llamafile", ".onnx",
)
#: Go ``filepath.Match("*pytorch_model*.bin", name)``: ``*`` never crosses a ``/``.
_MODEL_PATTERN = re.compile(r"[^/]*pytorch_model[^/]*\.bin")
DOCS_SUFFIXES = (".md", ".adoc", ".html", ".pdf")
METADATA_SUFFIXES = (".json", ".yaml", ".xml", ".txt")
DATASET_SUFFIXES = (".tar", ".zip", ".parquet", ".csv")
MCP_SUFFIX = ".mcpb"
PROMPT_NAMES = ("agents.md", "skill.md", "claude.md")
CODE_DIR_NAMES = ("src", "pkg", "lib", "build")
#: More unknown top-level files than this are packed as one ``code: .`` entry.
MAX_LISTED_UNKNOWN = 5


def file_type(name: str) -> str:
    """The type of a file from its name or slash path (kit's ``determineFileType``)."""
    base = name.rsplit("/", 1)[-1].lower()
    # first: prompt names can end in any suffix (chain.prompt.md, my.prompt.yaml)
    if base in PROMPT_NAMES or ".prompt" in base:
        return PROMPT
    if name.endswith(MCP_SUFFIX):
        return MCP
    if name.endswith(MODEL_SUFFIXES) or _MODEL_PATTERN.fullmatch(name):
        return MODEL
    if name.endswith(METADATA_SUFFIXES):
        return METADATA
    if name.endswith(DOCS_SUFFIXES):
        return DOCS
    if name.endswith(DATASET_SUFFIXES):
        return DATASET
    return UNKNOWN


def _go_ext(name: str) -> str:
    """Go's ``filepath.Ext``: from the last dot of the last element (``.hidden`` included)."""
    i = name.rfind(".")
    return name[i:] if i >= 0 and "/" not in name[i:] else ""


def _strip_ext(path: str, name: str) -> str:
    ext = _go_ext(name)
    return path[: -len(ext)] if ext and path.endswith(ext) else path


def _dir_path(path: str) -> str:
    """kit writes directories with a trailing ``/`` (and ``.`` as is)."""
    return path if path == "." or path.endswith("/") else path + "/"


# -- licences ---------------------------------------------------------------------------------

# kit identifies a LICENSE file with google/licensecheck (hundreds of SPDX texts; a result only
# when exactly one licence matches). We recognise the licences models and datasets actually use,
# by phrases that occur in their canonical texts and in no other licence, and like licensecheck
# answer nothing rather than guess: (SPDX id, phrases that must all occur, phrases that must not).
_LICENSES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    # the licence itself, or the notice that applies it (both are licensecheck's Apache-2.0)
    ("Apache-2.0", ("apache license version 2 0 january 2004",), ()),
    ("Apache-2.0", ("licensed under the apache license version 2 0",), ()),
    ("MIT", ("permission is hereby granted free of charge to any person obtaining a copy",
             "the above copyright notice and this permission notice shall be included"), ()),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms",
                      "endorse or promote products derived from this software"),
     ("all advertising materials",)),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",
                      "redistributions in binary form must reproduce"),
     ("endorse or promote", "all advertising materials")),
    ("GPL-2.0", ("gnu general public license version 2 june 1991",), ()),
    ("GPL-3.0", ("the gnu general public license is a free copyleft license",), ()),
    ("LGPL-2.1", ("gnu lesser general public license version 2 1 february 1999",), ()),
    ("LGPL-3.0", ("gnu lesser general public license version 3 29 june 2007",), ()),
    ("AGPL-3.0", ("gnu affero general public license version 3 19 november 2007",), ()),
    ("MPL-2.0", ("mozilla public license version 2 0",), ()),
    ("ISC", ("permission to use copy modify and or distribute this software for any purpose "
             "with or without fee is hereby granted",
             "provided that the above copyright notice and this permission notice appear"), ()),
    ("Unlicense", ("this is free and unencumbered software released into the public domain",), ()),
    ("BSL-1.0", ("boost software license version 1 0",), ()),
    ("CC0-1.0", ("cc0 1 0 universal",), ()),
    ("CC-BY-4.0", ("creative commons attribution 4 0 international public license",), ()),
    ("CC-BY-SA-4.0", ("creative commons attribution sharealike 4 0 international public license",),
     ()),
    ("CC-BY-NC-4.0", ("creative commons attribution noncommercial 4 0 international public "
                      "license",), ()),
)


def detect_license(text: str) -> str:
    """The SPDX id of the one licence ``text`` is, or "" (none recognised, or several)."""
    words = " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "
    found = {spdx for spdx, need, forbid in _LICENSES
             if all(f" {p} " in words for p in need) and not any(f in words for f in forbid)}
    return found.pop() if len(found) == 1 else ""


# -- skills -----------------------------------------------------------------------------------

@dataclass
class SkillInfo:
    name: str = ""
    description: str = ""
    license: str = ""


def _skill_file(d: DirectoryListing) -> FileListing | None:
    for f in d.files:
        if f.name.lower() == "skill.md":
            return f
    return None


def parse_skill_front_matter(text: str, *, warn: Warn | None = None,
                             where: str = "SKILL.md") -> SkillInfo | None:
    """``name``, ``description`` and ``license`` from a ``---`` front matter block, as text."""
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or lines[0] != "---":
        return None
    try:
        end = lines.index("---", 1)
    except ValueError:
        return None
    block = "\n".join(lines[1:end])
    if not block.strip():
        return None
    try:
        node = yaml.compose(block, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        if warn:
            warn(f"Malformed frontmatter in {where}: {str(exc).splitlines()[0]}")
        return None
    info = SkillInfo()
    if not isinstance(node, yaml.MappingNode):
        if warn and node is not None:
            warn(f"Malformed frontmatter in {where}: not a mapping")
        return None
    for key, value in node.value:
        attr = key.value if isinstance(key, yaml.ScalarNode) else None
        if attr not in ("name", "description", "license"):
            continue
        if not isinstance(value, yaml.ScalarNode):
            if warn:
                warn(f"Malformed frontmatter in {where}: {attr} is not a string")
            return None
        # Go decodes any scalar into a string field as written (name: 1.10 stays "1.10")
        null = value.tag == "tag:yaml.org,2002:null"
        setattr(info, attr, "" if null else value.value)
    return info


# -- generation -------------------------------------------------------------------------------

#: A directory's model files, metadata files and unknown files, and the licence found in it.
_Classified = tuple[list[FileListing], list[FileListing], list[FileListing], str]


class _Generator:
    def __init__(self, kitfile: Kitfile, read_text: ReadText | None, warn: Warn | None):
        self.kf = kitfile
        self._read = read_text
        self._warn = warn

    def read(self, path: str) -> str | None:
        if self._read is None:
            return None
        try:
            return self._read(path)
        except (OSError, UnicodeDecodeError):
            return None

    def warn(self, message: str) -> None:
        if self._warn is not None:
            self._warn(message)

    def skill(self, d: DirectoryListing) -> SkillInfo | None:
        f = _skill_file(d)
        if f is None:
            return None
        text = self.read(f.path)
        return parse_skill_front_matter(text, warn=self._warn, where=f.path) if text else None

    def skill_prompt(self, d: DirectoryListing) -> tuple[Prompt, SkillInfo | None]:
        info = self.skill(d)
        prompt = Prompt(path=d.path)
        if info is not None:
            prompt.name, prompt.description = info.name, info.description
        return prompt, info

    def license_of(self, f: FileListing) -> str:
        text = self.read(f.path)
        spdx = detect_license(text) if text is not None else ""
        if not spdx:
            self.warn("Unable to determine license type")
        return spdx

    def files(self, d: DirectoryListing, depth: int) -> _Classified:
        """Classify ``d``'s files one by one (kit's ``processSubdirFiles``): returns model files,
        metadata files and unknown files for the caller, and the licence found.

        kit recurses into every level ``depth`` asks for (``-1``: all of them); so does
        :meth:`_files`, but as a generator that yields each call it would make, run here from
        a stack of its own, so a tree deeper than Python's recursion limit gives kit's Kitfile,
        not a RecursionError. Everything is appended in the order the recursion appends it."""
        stack = [self._files(d, depth)]
        result: _Classified | None = None
        while True:
            try:
                sub, sub_depth = stack[-1].send(result)
            except StopIteration as done:
                stack.pop()
                if not stack:
                    return done.value
                result = done.value
                continue
            stack.append(self._files(sub, sub_depth))
            result = None

    def _files(self, d: DirectoryListing, depth: int
               ) -> Generator[tuple[DirectoryListing, int], _Classified | None, _Classified]:
        """:meth:`files`' work; ``yield (sub, depth)`` is the recursive call, answered with its
        result."""
        kf = self.kf
        models: list[FileListing] = []
        metadata: list[FileListing] = []
        unknown: list[FileListing] = []
        license_id = ""
        if _skill_file(d) is not None:
            kf.prompts.append(self.skill_prompt(d)[0])
            return models, metadata, unknown, license_id
        for f in d.files:
            if f.name in KITFILE_NAMES:
                continue  # never packed anyway
            lower = f.name.lower()
            if lower.startswith("readme"):
                kf.docs.append(Docs(path=f.path, description="Readme file"))
                continue
            if lower.startswith("license"):
                kf.docs.append(Docs(path=f.path, description="License file"))
                license_id = self.license_of(f)
                continue
            kind = file_type(f.path)
            if kind == MODEL:
                models.append(f)
            elif kind == METADATA:
                metadata.append(f)
            elif kind == DOCS:
                kf.docs.append(Docs(path=f.path))
            elif kind == DATASET:
                kf.datasets.append(DataSet(path=f.path))
            elif kind == PROMPT:
                kf.prompts.append(Prompt(path=f.path))
            elif kind == MCP:
                kf.mcp_servers.append(_mcp_server(f))
            else:
                unknown.append(f)
        if depth == 0:
            for sub in d.subdirs:
                models.extend(self.directory(sub))
        else:
            for sub in d.subdirs:
                # licences in subdirectories are not attached: it is unclear what they cover
                sub_result = yield sub, depth - 1
                assert sub_result is not None
                sub_models, sub_meta, sub_unknown, _ = sub_result
                models.extend(sub_models)
                metadata.extend(sub_meta)
                kf.code.extend(Code(path=f.path) for f in sub_unknown)
        return models, metadata, unknown, license_id

    def directory(self, d: DirectoryListing) -> list[FileListing]:
        """One subdirectory as a unit (kit's ``addDirToKitfile``); returns its model files,
        which the caller combines with the others into the model and its parts."""
        kf = self.kf
        if _skill_file(d) is not None:
            kf.prompts.append(self.skill_prompt(d)[0])
            return []
        if d.name == "docs":
            kf.docs.append(Docs(path=_dir_path(d.path)))
            return []
        if d.name in CODE_DIR_NAMES:
            kf.code.append(Code(path=_dir_path(d.path)))
            return []
        by_type: dict[str, list[FileListing]] = {t: [] for t in _TYPE_ORDER}
        nested = bool(d.subdirs)  # deeper directories are not examined: they count as unknown
        for f in d.files:
            by_type[file_type(f.name)].append(f)
        present = [t for t in _TYPE_ORDER
                   if t != METADATA and (by_type[t] or (t == UNKNOWN and nested))]
        models = list(by_type[MODEL])
        kind = present[0] if len(present) == 1 else (UNKNOWN if not present else "mixed")
        if kind == MODEL:
            return models + by_type[METADATA]  # metadata next to weights: model parts
        if kind == DATASET:
            kf.datasets.append(DataSet(path=_dir_path(d.path)))
        elif kind == DOCS:
            kf.docs.append(Docs(path=_dir_path(d.path)))
        elif kind == PROMPT:
            kf.prompts.append(Prompt(path=_dir_path(d.path)))
        elif kind == MCP:
            # an MCP server is a single .mcpb file, so a directory of bundles is listed file by
            # file; metadata beside them is kept as code so that nothing is left out
            kf.mcp_servers.extend(_mcp_server(f) for f in by_type[MCP])
            kf.code.extend(Code(path=f.path) for f in by_type[METADATA])
        else:  # code, unknown, metadata only, or mixed
            kf.code.append(Code(path=_dir_path(d.path)))
        return models

    def model(self, files: list[FileListing]) -> None:
        """kit's ``addModelToKitfile``: a main model plus adaptors, or a sharded model."""
        if len(files) == 1:
            f = files[0]
            self.kf.model = Model(path=f.path, name=_strip_ext(f.path, f.name))
            return
        largest: FileListing | None = None
        largest_size = 0
        total = 0
        for f in files:
            if f.size > largest_size:
                largest, largest_size = f, f.size
            total += f.size
        average = total // len(files)
        if largest is not None and largest_size > average + average // 2:
            self.kf.model = Model(path=largest.path, name=_strip_ext(largest.path, largest.name))
            self.kf.model.parts = [ModelPart(path=f.path) for f in files if f is not largest]
        else:
            self.kf.model = Model(path=files[0].path)
            self.kf.model.parts = [ModelPart(path=f.path) for f in files[1:]]


def _mcp_server(f: FileListing) -> MCPServer:
    return MCPServer(name=_strip_ext(f.path, f.name), path=f.path)


def generate_kitfile(listing: DirectoryListing, package: Package | None = None, *,
                     depth: int = 0, read_text: ReadText | None = None,
                     warn: Warn | None = None) -> Kitfile:
    """The Kitfile ``kit init`` writes for ``listing``.

    ``package`` fills the package section (``--name``, ``--desc``, ``--author``); ``depth`` is
    ``kit init --depth``; ``read_text`` reads a listed file's text (LICENSE, SKILL.md) and may be
    None for listings without contents; ``warn`` receives kit's warning lines.
    """
    kf = Kitfile(manifest_version=MANIFEST_VERSION,
                 package=copy.deepcopy(package) if package is not None else Package())
    gen = _Generator(kf, read_text, warn)
    pkg = kf.package
    assert pkg is not None

    if _skill_file(listing) is not None:  # the whole directory is one agent skill
        prompt, info = gen.skill_prompt(listing)
        kf.prompts.append(prompt)
        if info is not None:
            pkg.name = pkg.name or info.name
            pkg.description = pkg.description or info.description
            pkg.license = pkg.license or info.license
        return kf

    models, metadata, unknown, license_id = gen.files(listing, depth)
    if len(unknown) > MAX_LISTED_UNKNOWN:
        kf.code.append(Code(path="."))
    else:
        kf.code.extend(Code(path=f.path) for f in unknown)

    if models:
        gen.model(models)
        assert kf.model is not None
        kf.model.parts.extend(ModelPart(path=f.path) for f in metadata)
    else:
        kf.datasets.extend(DataSet(path=f.path) for f in metadata)

    # attach the licence where it most likely applies
    if kf.model is not None and license_id:
        kf.model.license = license_id
    elif len(kf.datasets) == 1:
        kf.datasets[0].license = license_id
    elif len(kf.code) == 1:
        kf.code[0].license = license_id
    else:
        pkg.license = license_id

    _skill_metadata_to_package(gen, listing)
    return kf


def _skill_metadata_to_package(gen: _Generator, listing: DirectoryListing) -> None:
    """Skills one level down lend the package their licence, and -- when the Kitfile is nothing
    but that one skill -- their name and description."""
    kf = gen.kf
    pkg = kf.package
    assert pkg is not None
    infos = [info for sub in listing.subdirs if (info := gen.skill(sub)) is not None]
    if not infos:
        return
    only_prompts = kf.model is None and not kf.code and not kf.datasets and not kf.docs
    if only_prompts and len(infos) == 1:
        pkg.name = pkg.name or infos[0].name
        pkg.description = pkg.description or infos[0].description
    if not pkg.license and infos[0].license:
        pkg.license = infos[0].license
