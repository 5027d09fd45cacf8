""".kitignore matching. The expected values of the table were produced by moby/patternmatcher
v0.6.0 itself (ignorefile.ReadAll + MatchesOrParentMatches, plus kit's always-ignored names)."""

from __future__ import annotations

import posixpath
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit_jupyter.errors import PackError
from kit_jupyter.gocompat.gopath import is_clean
from kit_jupyter.gocompat.ignore import (
    IgnoreRules,
    go_clean,
    layer_paths_from_kitfile,
    read_ignore_file,
)

GO_CASES = [
    (["*.txt"], {"a.txt": True, "d/a.txt": False, "a.txt/x": True, "a.txtx": False}),
    (["**/*.txt"], {"a.txt": True, "d/a.txt": True, "d/e/a.txt": True, "a.md": False}),
    (["data/**"], {"data": False, "data/x": True, "data/x/y": True, "database": False}),
    (["foo**"], {"foo": True, "foobar": True, "foo/x": True, "fo": False}),
    (["**"], {"a": True, "a/b": True}),
    (["**/cache"], {"cache": True, "a/cache": True, "a/b/cache/x": True, "xcache": False,
                    "a/xcache": False}),
    (["a?c"], {"abc": True, "a/c": False, "ac": False, "abbc": False}),
    (["[a-c]x", "[^b]y"], {"ax": True, "dx": False, "by": False, "cy": True, "b/y": False}),
    (["/abs/path"], {"abs/path": True, "abs/path/x": True, "abs": False}),
    (["docs/../src"], {"src": True, "docs/src": False, "src/x": True}),
    (["*.md", "!README.md"], {"a.md": True, "README.md": False, "d/README.md": False,
                              "d/a.md": False}),
    (["**/*.md", "!README.md"], {"a.md": True, "README.md": False, "d/README.md": True}),
    (["d", "!d/keep"], {"d": True, "d/x": True, "d/keep": False, "d/keep/y": False}),
    (["!d", "d"], {"d": True, "d/x": True}),
    (["# comment", " #notcomment", "  spaced.txt  "], {"# comment": False, "#notcomment": True,
                                                       "spaced.txt": True}),
    (["a\\*b"], {"a*b": True, "axb": False}),
    (["file.(1)"], {"file.(1)": True, "fileX(1)": False}),
    (["$RECYCLE", "c++"], {"$RECYCLE": True, "c++": True, "c": False}),
    (["é*"], {"été": True, "e": False}),
    (["model*/weights"], {"model1/weights": True, "model1/weights/x": True,
                          "model/weights": True, "models/a/weights": False}),
    ([], {"Kitfile": True, "kitfile": True, ".kitfile": True, ".kitignore": True,
          "sub/Kitfile": False, "KITFILE": False}),
    # regexps Go builds from '*' and '?' inside brackets (translated from RE2, not reinterpreted)
    (["[+?\\*[^b]"], {"+*a": True, "/*a": True, "[*b": False, "+*b": False, "^*a": True,
                     "+a": False}),
]


@pytest.mark.parametrize("patterns,expected", GO_CASES)
def test_matches_like_patternmatcher(patterns: list[str], expected: dict[str, bool]) -> None:
    rules = IgnoreRules(read_ignore_file("\n".join(patterns).encode()))
    got = {p: rules.matches(p) for p in expected}
    assert got == expected


def test_has_exceptions() -> None:
    assert IgnoreRules(["a", "!b"]).has_exceptions
    assert not IgnoreRules(["a", "b"]).has_exceptions
    assert not IgnoreRules().has_exceptions  # the always-ignored names add none


def test_read_ignore_file_normalises() -> None:
    text = "\ufeff# c\n/lead\r\n ! /neg/ \n\n  \ta/./b//c/  \n#x\n!\n"
    assert read_ignore_file(text.encode()) == ["lead", "!neg", "a/b/c", "!"]


@pytest.mark.parametrize("text,msg", [
    ("!\n", 'invalid .kitignore file: illegal exclusion pattern: "!"'),
    ("a[\n", "invalid .kitignore file: syntax error in pattern"),
    ("x[]y\n", "invalid .kitignore file: syntax error in pattern"),
    ("ok\\\n", "invalid .kitignore file: syntax error in pattern"),
    ("a*[\n", "invalid .kitignore file: syntax error in pattern"),  # Go >= 1.20 checks the rest
])
def test_bad_patterns_are_errors(tmp_path: Path, text: str, msg: str) -> None:
    (tmp_path / ".kitignore").write_text(text)
    with pytest.raises(PackError) as err:
        IgnoreRules.load(tmp_path)
    assert str(err.value) == msg


def test_load_missing_file_and_extra_excludes(tmp_path: Path) -> None:
    rules = IgnoreRules.load(tmp_path, ["*.log"])
    assert rules.matches("x.log") and rules.matches("Kitfile") and not rules.matches("x.py")
    (tmp_path / ".kitignore").write_text("*.py\n")
    rules = IgnoreRules.load(tmp_path, ["!keep.py"])
    assert rules.matches("x.py") and not rules.matches("keep.py") and rules.has_exceptions


def in_other_layer(path: str, layer_path: str, other_layer_paths: list[str]) -> bool:
    """The cross-layer rule: what ``excludes`` says with no ignore patterns (and so also for a
    name kit always ignores, ``Kitfile`` and ``.kitignore``)."""
    return IgnoreRules([], other_layer_paths).excludes(path, layer_path)


def test_paths_are_cleaned_before_matching() -> None:
    rules = IgnoreRules(["data/raw"])
    assert rules.matches("./data/raw/") and rules.matches(" data//raw/x ")


def test_cross_layer_whole_path_elements_rule() -> None:
    """Newest kit (PR #1280): other layers exclude by whole path elements. Before it, a string
    prefix ruled and ``database.txt`` was left out of the layer at ``.``."""
    layers = [".", "data", "models/m1"]
    assert not in_other_layer("database.txt", ".", layers)
    assert not in_other_layer("data-v2/x", ".", layers)
    assert in_other_layer("data", ".", layers)
    assert in_other_layer("data/x", ".", layers)
    assert not in_other_layer("data/x", "data", layers)  # own layer
    assert not in_other_layer("data/x", "data/sub", layers)  # "data" is a parent of the layer
    assert in_other_layer("models/m1/w", "models", layers)
    assert not in_other_layer("models/m10/w", "models", layers)


def test_excludes_combines_ignore_file_and_layers() -> None:
    rules = IgnoreRules(["**/*.tmp"], layer_paths=["code", "code/vendor"])
    assert rules.excludes("code/a.tmp", "code")
    assert rules.excludes("code/vendor/lib.py", "code")
    assert not rules.excludes("code/main.py", "code")
    assert not rules.excludes("code/vendor/lib.py", "code/vendor")
    extended = IgnoreRules(["**/*.tmp"], layer_paths=["code", "code/vendor", "code/gen"])
    assert extended.excludes("code/gen/x", "code") and not rules.excludes("code/gen/x", "code")


def test_layer_paths_from_kitfile_duck_typed() -> None:
    kf = SimpleNamespace(
        code=[SimpleNamespace(path="./src/")],
        datasets=[SimpleNamespace(path="data", remote_path="s3://b/k"),
                  SimpleNamespace(path=" d2 ")],
        docs=[SimpleNamespace(path="README.md")],
        prompts=[SimpleNamespace(path="prompts")],
        model=SimpleNamespace(path="model.bin", parts=[SimpleNamespace(path="tok/")]),
    )
    assert layer_paths_from_kitfile(kf) == ["src", "data", "d2", "README.md", "prompts",
                                            "model.bin", "tok"]
    kf.model = SimpleNamespace(path="", parts=[])
    assert layer_paths_from_kitfile(kf)[-1] == "prompts"


@pytest.mark.parametrize("raw,clean", [("", "."), ("a//b/", "a/b"), ("//x", "/x"),
                                       ("a/../..", ".."), ("/../a", "/a"), ("./", ".")])
def test_go_clean(raw: str, clean: str) -> None:
    assert go_clean(raw) == clean


@given(st.lists(st.sampled_from(["", ".", "..", "a", "b.c", ".x", "..y", "z.."]), max_size=5),
       st.booleans())
def test_is_clean_only_says_so_of_clean_paths(parts: list[str], rooted: bool) -> None:
    """``is_clean`` (go_clean's shortcut, and the walk's test of a name) against the standard
    library: what it calls clean ``posixpath.normpath`` and ``go_clean`` leave as it is; and it
    misses no such path without a ``.`` or ``..`` element (those, "/" alone and a leading "//"
    it leaves to the general path, which is right, only slower)."""
    path = ("/" if rooted else "") + "/".join(parts)
    kept = bool(path) and posixpath.normpath(path) == path
    if is_clean(path):
        assert kept and go_clean(path) == path
    elif not {".", ".."} & set(path.split("/")):
        assert not kept or path == "/" or path.startswith("//")


def _matches_walking_every_parent(matcher, file: str) -> bool:
    """patternmatcher's MatchesOrParentMatches as written in Go (every pattern tried on the
    file and on each parent): the reference for the matcher's shortcuts."""
    from kit_jupyter.gocompat.ignore import _go_dir

    matched = False
    parent = _go_dir(file)
    parent_dirs = parent.split("/")
    for pattern in matcher.patterns:
        if pattern.exclusion != matched:
            continue
        match = pattern.match(file)
        if not match and parent != ".":
            match = any(pattern.match("/".join(parent_dirs[: i + 1]))
                        for i in range(len(parent_dirs)))
        if match:
            matched = not pattern.exclusion
    return matched


_ELEMS = st.sampled_from(["a", "b", "a.txt", "data", "d", "keep", ".", "..", "", "x*", "c",
                          "Kitfile"])


@settings(max_examples=300, deadline=None)
@given(patterns=st.lists(st.builds(lambda neg, body, tail: ("!" if neg else "") + body + tail,
                                   st.booleans(),
                                   st.lists(_ELEMS, min_size=1, max_size=3).map("/".join),
                                   st.sampled_from(["", "", "", "/**", "**", "*"])),
                         max_size=4),
       file=st.lists(_ELEMS, min_size=1, max_size=4).map("/".join))
def test_shortcuts_agree_with_walking_every_parent(patterns: list[str], file: str) -> None:
    from kit_jupyter.gocompat.ignore import PatternMatcher

    patterns = [p for p in patterns if p.strip("!")]
    try:
        matcher = PatternMatcher(patterns)
    except ValueError:
        return
    for path in (file, go_clean(file)):
        assert matcher.matches_or_parent_matches(path) == \
            _matches_walking_every_parent(matcher, path), (patterns, path)


_NAME_ELEMS = st.sampled_from(["a", "b", "data", "Kitfile", ".kitignore", "kitfile", " x",
                               "y ", ".", "..", "", "a..b", "...", ".git", "d\u00a0"])
_PATHS = st.lists(_NAME_ELEMS, min_size=1, max_size=4).map("/".join)


@settings(max_examples=400, deadline=None)
@given(patterns=st.lists(st.builds(lambda neg, body, tail: ("!" if neg else "") + body + tail,
                                   st.booleans(), _PATHS,
                                   st.sampled_from(["", "", "", "/**", "**", "*"])),
                         max_size=3),
       layer_paths=st.lists(_PATHS, max_size=3), other=st.lists(_PATHS, max_size=2),
       layer=_PATHS, lead=st.sampled_from(["", "", "/", " "]),
       files=st.lists(_PATHS, min_size=1, max_size=6))
def test_a_walks_excluder_is_excludes_and_in_other_layer(
        patterns: list[str], layer_paths: list[str], other: list[str], layer: str, lead: str,
        files: list[str]) -> None:
    """The per-walk excluder (layer paths cleaned once, clean names matched as they are, a set
    lookup for kit's always-ignored names alone) answers as kit's Matches plus the extra
    layers' rule for any name, clean or not."""
    patterns = [p for p in patterns if p.strip("!")]
    try:
        rules = IgnoreRules(patterns, layer_paths)
    except PackError:
        return
    excluded = rules.excluder(layer, other)
    walked = rules.excluder(layer, other, clean=True)  # for the names a walk makes
    for f in files:
        f = lead + f
        expected = rules.excludes(f, layer) or in_other_layer(f, layer, other)
        assert excluded(f) == expected, (patterns, layer_paths, other, layer, f)
        if f[:1] not in ("", "/") and is_clean(f):  # what the walk promises
            assert walked(f) == expected, (patterns, layer_paths, other, layer, f)


def test_the_always_ignored_names_alone_are_one_lookup() -> None:
    rules = IgnoreRules((), ["code", "data"])
    excluded = rules.excluder("code")
    assert rules._matcher.top_names == {"Kitfile", "kitfile", ".kitfile", ".kitignore"}
    assert excluded("Kitfile") and excluded("Kitfile/x") and excluded("data/x")
    assert not excluded("code/Kitfile") and not excluded("code/x") and not excluded("database")
    assert excluded(" Kitfile") and excluded("./Kitfile") and excluded("data/")
    assert IgnoreRules(["a/b"])._matcher.top_names is None
