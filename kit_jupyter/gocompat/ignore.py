"""``.kitignore``: Docker ``.dockerignore`` semantics, as kit gets them from moby/patternmatcher
(v0.6).

Reproduced rule for rule rather than approximated with ``fnmatch``: which files end up in a layer
decides the layer digest, so any difference from kit's matcher is a digest that differs from
kit's for the same context directory. The quirks kept on purpose (spec §8.6):

* patterns are cleaned like Go's ``filepath.Clean``, a leading ``/`` is dropped, ``#`` starts a
  comment only in column 0;
* ``*`` and ``?`` never cross ``/``; ``**`` crosses any number of directories; a leading ``**`` or a
  trailing ``**`` turns into plain suffix/prefix string tests (``foo/**`` does not match ``foo``);
* a path is ignored if it or any parent matches; later ``!`` patterns re-include;
* ``Kitfile``, ``kitfile``, ``.kitfile`` and ``.kitignore`` are always ignored;
* another layer's path excludes what lies within it, compared by whole path elements
  (``data`` excludes ``data/x`` but not ``database.txt`` or ``data-v2/``), unless it is the
  layer being packed or one of its parents. This is the newest kit's rule (PR #1280, its
  ``isWithin``); earlier kit compared plain string prefixes, so a sibling such as ``model-extra/``
  was silently left out of a layer at ``.`` when another layer sat at ``model``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kit_jupyter._fs import read_regular
from kit_jupyter.errors import PackError
from kit_jupyter.gocompat.gopath import go_clean, is_clean

IGNORE_FILE_NAME = ".kitignore"
#: A larger ``.kitignore`` is refused rather than read into memory (and every path of a pack
#: matched against its patterns): the limit the Kitfile has.
MAX_IGNORE_FILE_BYTES = 4 << 20
KITFILE_NAMES = ("Kitfile", "kitfile", ".kitfile")
ALWAYS_IGNORED = (*KITFILE_NAMES, IGNORE_FILE_NAME)

# Go's unicode.IsSpace (what strings.TrimSpace trims); Python's str.strip() also trims \x1c-\x1f.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008" \
            "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_REGEX_ESCAPE = set(".+()|{}$")
_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z", "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}


def go_trim_space(s: str) -> str:
    return s.strip(_GO_SPACE)


def _clean_arg(path: str) -> str:
    return go_clean(go_trim_space(path))


# --- Go filepath.Match syntax check ---------------------------------------------------------

def _check_go_pattern(pattern: str) -> None:
    """Raise ValueError where Go's ``filepath.Match`` reports ``syntax error in pattern``.

    patternmatcher calls ``Match(p, ".")`` only for this error; Go checks every chunk's syntax
    whatever the match result, so checking all chunks is equivalent.
    """
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise ValueError("syntax error in pattern")
            i += 2
        elif c == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            nrange = 0
            while True:
                if i < n and pattern[i] == "]" and nrange > 0:
                    i += 1
                    break
                i = _check_esc(pattern, i)
                if pattern[i] == "-":
                    i = _check_esc(pattern, i + 1)
                nrange += 1
        else:
            i += 1


def _check_esc(pattern: str, i: int) -> int:
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise ValueError("syntax error in pattern")
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise ValueError("syntax error in pattern")
    if "\udc80" <= pattern[i] <= "\udcff":  # an invalid UTF-8 byte (surrogateescape)
        raise ValueError("syntax error in pattern")
    i += 1
    if i >= n:
        raise ValueError("syntax error in pattern")
    return i


# --- one pattern --------------------------------------------------------------------------

@dataclass
class Pattern:
    """One compiled pattern; ``kind`` is patternmatcher's match type."""

    cleaned: str
    exclusion: bool
    kind: str = "exact"  # exact | prefix | suffix | regexp
    regexp: re.Pattern[str] | None = field(default=None, repr=False)

    @classmethod
    def compile(cls, cleaned: str, exclusion: bool) -> Pattern:
        """patternmatcher's ``compile``: builds the very regexp string Go builds (character by
        character, no notion of ``[...]``), then translates that RE2 string to Python."""
        regex = "^"
        kind = "exact"
        chars = cleaned
        i, n, step = 0, len(chars), 0
        while i < n:
            ch = chars[i]
            i += 1
            if ch == "*":
                if i < n and chars[i] == "*":
                    i += 1
                    if i < n and chars[i] == "/":
                        i += 1
                    if i >= n:
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            regex += ".*"
                            kind = "regexp"
                    else:
                        regex += "(.*/)?"
                        kind = "regexp"
                    if step == 0:
                        kind = "suffix"
                else:
                    regex += "[^/]*"
                    kind = "regexp"
            elif ch == "?":
                regex += "[^/]"
                kind = "regexp"
            elif ch in _REGEX_ESCAPE:
                regex += "\\" + ch
            elif ch == "\\":
                if i < n:
                    regex += "\\" + chars[i]
                    i += 1
                    kind = "regexp"
                else:
                    regex += "\\"
            elif ch in "[]":
                regex += ch
                kind = "regexp"
            else:
                regex += ch
            step += 1
        pat = cls(cleaned, exclusion, kind)
        if kind == "regexp":
            try:
                pat.regexp = re.compile(_re2_to_python(regex + "$"))
            except re.error as err:
                raise ValueError(f"error parsing regexp: {err}") from None
        return pat

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.cleaned
        if self.kind == "prefix":
            return path.startswith(self.cleaned[:-2])
        if self.kind == "suffix":
            suffix = self.cleaned[2:]
            if path.endswith(suffix):
                return True
            return suffix[:1] == "/" and path == suffix[1:]
        assert self.regexp is not None
        return self.regexp.match(path) is not None


def _re2_to_python(regex: str) -> str:
    """Translate the RE2 strings patternmatcher builds into Python ``re`` syntax.

    Only what such strings can contain differs: inside a class RE2 reads ``[`` literally (Python
    warns of nested sets) and knows ``[:alpha:]``; an unknown escape of punctuation is literal in
    both; ``$`` must not match before a final newline (``\\Z``).
    """
    out: list[str] = []
    i, n = 0, len(regex)
    in_class = class_start = negated_seen = False
    while i < n:
        ch = regex[i]
        if ch == "\\" and i + 1 < n:
            nxt = regex[i + 1]
            out.append("\\" + nxt if nxt.isascii() and nxt.isalnum() else re.escape(nxt))
            i += 2
            continue
        if in_class:
            if ch == "]" and not class_start:
                in_class = False
                out.append("]")
            elif ch == "[" and regex.startswith("[:", i):
                end = regex.find(":]", i + 2)
                name = regex[i + 2:end] if end > 0 else ""
                if name in _POSIX_CLASSES:
                    out.append(_POSIX_CLASSES[name])
                    i = end + 2
                    class_start = False
                    continue
                out.append("\\[")
            elif ch == "^" and class_start and not negated_seen:
                out.append("^")
                negated_seen = True
                i += 1
                continue
            elif ch in "[&~|]":
                out.append("\\" + ch)
            else:
                out.append(ch)
            class_start = False
            i += 1
            continue
        if ch == "[":
            in_class = True
            class_start = True
            negated_seen = False
            out.append("[")
        elif ch == "$" and i == n - 1:
            out.append(r"\Z")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


# --- the matcher --------------------------------------------------------------------------

class PatternMatcher:
    """moby/patternmatcher ``PatternMatcher`` (only the parts kit uses)."""

    def __init__(self, patterns: Iterable[str]):
        self.patterns: list[Pattern] = []
        self.exclusions = False
        for raw in patterns:
            p = go_trim_space(raw)
            if not p:
                continue
            p = go_clean(p)
            exclusion = False
            if p[0] == "!":
                if len(p) == 1:
                    raise ValueError('illegal exclusion pattern: "!"')
                exclusion = True
                p = p[1:]
                self.exclusions = True
            _check_go_pattern(p)
            self.patterns.append(Pattern.compile(p, exclusion))
        # no wildcards and no exceptions (kit's always-ignored names alone, say): a set lookup
        # of the path and of each parent answers for every pattern at once; and if no name has
        # a slash, only the first element of a clean relative path can equal one of them
        self._names: frozenset[str] | None = None
        self.top_names: frozenset[str] | None = None
        if all(p.kind == "exact" and not p.exclusion for p in self.patterns):
            self._names = frozenset(p.cleaned for p in self.patterns)
            if not any("/" in name for name in self._names):
                self.top_names = self._names

    def matches_or_parent_matches(self, file: str) -> bool:
        """patternmatcher's ``MatchesOrParentMatches``."""
        if not file.startswith("/") and go_clean(file) == file:
            return self.matches_clean(file)
        return self._matches(file, False)

    def matches_clean(self, file: str) -> bool:
        """:meth:`matches_or_parent_matches` for a clean relative ``file`` (``go_clean(file) ==
        file``, no leading ``/``: every name a walk makes). For such a name an exact pattern
        matches a parent exactly when ``file`` starts with it and a slash, and a ``prefix``
        pattern matching a parent matches ``file`` too, so neither needs the walk over the
        parents (pack asks this for every name it walks)."""
        top = self.top_names
        if top is not None:
            i = file.find("/")
            return (file[:i] if i >= 0 else file) in top
        names = self._names
        if names is not None:
            if file in names:
                return True
            i = file.find("/")
            while i > 0:
                if file[:i] in names:
                    return True
                i = file.find("/", i + 1)
            return False
        return self._matches(file, True)

    def _matches(self, file: str, plain: bool) -> bool:
        matched = False
        parent = _go_dir(file)
        parent_dirs: list[str] | None = None
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            kind = pattern.kind
            if plain and kind == "exact":
                c = pattern.cleaned
                match = file == c or file.startswith(c) and file[len(c):len(c) + 1] == "/"
            elif plain and kind == "prefix":
                match = pattern.match(file)
            else:
                match = pattern.match(file)
                if not match and parent != ".":
                    if parent_dirs is None:
                        parent_dirs = parent.split("/")
                    for i in range(len(parent_dirs)):
                        if pattern.match("/".join(parent_dirs[: i + 1])):
                            match = True
                            break
            if match:
                matched = not pattern.exclusion
        return matched


def _go_dir(path: str) -> str:
    i = path.rfind("/")
    return go_clean(path[: i + 1]) if i >= 0 else "."


def read_ignore_file(data: bytes) -> list[str]:
    """moby ``ignorefile.ReadAll``: BOM stripped, ``#`` comments in column 0, each pattern
    trimmed and cleaned, a leading ``/`` dropped (``!`` kept in front)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    out: list[str] = []
    for raw in data.split(b"\n"):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        line = raw.decode("utf-8", "surrogateescape")
        if line.startswith("#"):
            continue
        line = go_trim_space(line)
        if not line:
            continue
        invert = line[0] == "!"
        if invert:
            line = go_trim_space(line[1:])
        if line:
            line = go_clean(line)
            if len(line) > 1 and line[0] == "/":
                line = line[1:]
        out.append("!" + line if invert else line)
    return out


# --- kit's ignore.Paths -------------------------------------------------------------------

class IgnoreRules:
    """What kit leaves out of a layer: the ``.kitignore`` matcher plus the other layers' paths.

    ``matches(rel_path)`` answers for the ignore file alone; ``excludes(rel_path, layer_path)``
    is kit's full ``Matches(path, layerPath)``, adding the cross-layer rule.
    """

    def __init__(self, patterns: Sequence[str] = (), layer_paths: Sequence[str] = ()):
        all_patterns = [*patterns, *ALWAYS_IGNORED]
        try:
            self._matcher = PatternMatcher(all_patterns)
        except ValueError as err:
            raise PackError(f"invalid {IGNORE_FILE_NAME} file: {err}") from None
        self.patterns = list(patterns)
        self.layer_paths = [_clean_arg(p) for p in layer_paths]

    @classmethod
    def load(cls, context_dir: str | os.PathLike[str], extra_excludes: Sequence[str] = (), *,
             layer_paths: Sequence[str] = ()) -> IgnoreRules:
        """Read ``<context_dir>/.kitignore`` (absent is fine). ``extra_excludes`` are patterns
        appended after the file's; ``layer_paths`` are every Kitfile layer path (see
        :func:`layer_paths_from_kitfile`) plus a parent ModelKit's layer paths."""
        path = Path(context_dir) / IGNORE_FILE_NAME
        try:
            # a regular file only: a FIFO would block for ever, /dev/zero never end (kit opens
            # anything, and hangs on the one, reads a 64 KiB line of the other and fails)
            data = read_regular(path, MAX_IGNORE_FILE_BYTES)
        except FileNotFoundError:
            data = b""
        except OSError as err:
            raise PackError(f"failed to open {IGNORE_FILE_NAME} file: {err.strerror}") from None
        if len(data) > MAX_IGNORE_FILE_BYTES:
            raise PackError(f"failed to read {IGNORE_FILE_NAME} file: larger than "
                            f"{MAX_IGNORE_FILE_BYTES >> 20} MiB")
        return cls([*read_ignore_file(data), *extra_excludes], layer_paths)

    @property
    def has_exceptions(self) -> bool:
        """True if any ``!`` pattern exists; then ignored directories must still be walked."""
        return self._matcher.exclusions

    def matches(self, rel_path: str) -> bool:
        return self._matcher.matches_or_parent_matches(_clean_arg(rel_path))

    def excludes(self, rel_path: str, layer_path: str) -> bool:
        """kit's ``ignore.Paths.Matches(path, layerPath)``."""
        path = _clean_arg(rel_path)
        if self._matcher.matches_or_parent_matches(path):
            return True
        return _in_other_layer(path, _clean_arg(layer_path), self.layer_paths)

    def excluder(self, layer_path: str, other_layer_paths: Iterable[str] = (), *,
                 clean: bool = False) -> Callable[[str], bool]:
        """``excludes(path, layer_path) or _in_other_layer(path, layer_path,
        other_layer_paths)`` as one function of ``path``, for every name of one layer's walk
        (``other_layer_paths``: a parent ModelKit's layers).

        A walk asks it for each name it reaches (20,000 for a code layer), so what
        :meth:`excludes` does per call is done once here: the layer path and the other layers'
        paths are cleaned once and the layers holding this one (never excluded) dropped. A name
        that needs no cleaning (no Go space at either end, no empty, ``.`` or ``..`` element, no
        leading ``/``) is matched as it is; any other name is cleaned first, as :meth:`excludes`
        does. With ``clean`` the caller promises every name is clean (a walk's names: a clean
        directory, a slash and a name from its listing), and only the ends are looked at."""
        layer = _clean_arg(layer_path)
        others = tuple(o for o in (*self.layer_paths, *map(_clean_arg, other_layer_paths))
                       if not _is_within(layer, o))
        inside = tuple(o + "/" for o in others)
        matcher = self._matcher
        match_clean = matcher.matches_clean
        space = _GO_SPACE

        def slow(path: str) -> bool:
            path = _clean_arg(path)
            return matcher.matches_or_parent_matches(path) or _in_other_layer(path, layer, others)

        def excludes_clean(path: str) -> bool:
            if path[0] in space or path[-1] in space:
                return slow(path)
            if match_clean(path):
                return True
            return bool(others) and (path in others or path.startswith(inside))

        def excludes(path: str) -> bool:
            if not is_clean(path) or path[0] == "/":
                return slow(path)
            return excludes_clean(path)
        return excludes_clean if clean else excludes


def _in_other_layer(path: str, layer_path: str, other_layer_paths: Iterable[str]) -> bool:
    """Cross-layer exclusion (spec §8.6, newest kit): ``path`` belongs to another layer M if it
    is M or lies within it by whole path elements, unless the current layer's own path lies
    within M (parents of the current layer are not excluded). Arguments are clean already
    (``IgnoreRules`` cleans its layer paths once, not on each of the thousands of calls a walk
    makes)."""
    within = _is_within
    for other in other_layer_paths:
        if within(layer_path, other):
            continue
        if within(path, other):
            return True
    return False


def _is_within(path: str, directory: str) -> bool:
    if directory == ".":
        return True
    return path == directory or path.startswith(directory + "/")


def layer_paths_from_kitfile(kitfile: object) -> list[str]:
    """Every path kit treats as "another layer" (``LayerPathsFromKitfile``): code, datasets
    (remote ones too), docs, prompts, the model path when set, model parts. Duck-typed so it works
    with any object shaped like ``kitfile.Kitfile``."""
    paths: list[str] = []

    def add(entries: object) -> None:
        for entry in entries or ():  # type: ignore[attr-defined]
            paths.append(_clean_arg(getattr(entry, "path", "") or ""))

    add(getattr(kitfile, "code", None))
    add(getattr(kitfile, "datasets", None))
    add(getattr(kitfile, "docs", None))
    add(getattr(kitfile, "prompts", None))
    model = getattr(kitfile, "model", None)
    if model is not None:
        if getattr(model, "path", ""):
            paths.append(_clean_arg(model.path))
        add(getattr(model, "parts", None))
    return paths
