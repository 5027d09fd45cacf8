"""unpack --filter grammar (spec §11.3)."""

from __future__ import annotations

import pytest

from kit_jupyter.errors import FilterError
from kit_jupyter.kitfile.filters import (
    Filter,
    filters_from_flags,
    matches,
    parse_filter,
    parse_filters,
)
from kit_jupyter.kitfile.model import load_kitfile

KF = load_kitfile(
    "manifestVersion: 1.0.0\nmodel:\n  name: llm\n  path: model.gguf\n  parts:\n"
    "    - {name: lora, path: adapters/lora}\ncode:\n  - path: src\ndatasets:\n"
    "  - {name: train, path: data/train}\n  - {name: eval, path: data/eval}\n"
    "docs:\n  - path: README.md\nprompts:\n  - {name: sys, path: prompts/sys.md}\n"
    "mcpServers:\n  - {name: fs, path: fs.mcpb}\n"
)


def selected(values):
    fs = parse_filters(values)
    picked = [e.field for e in KF.layer_entries() if matches(fs, e.kind, e.name, e.path)]
    if matches(fs, "kitfile"):
        picked.insert(0, "kitfile")
    return picked


ALL = ["kitfile", "model.path", "model.parts[0].path", "code[0].path", "datasets[0].path",
       "datasets[1].path", "docs[0].path", "prompts[0].path", "mcpServers[0].path"]


@pytest.mark.parametrize(
    "values,expected",
    [
        ([], ALL),
        (["model"], ["model.path", "model.parts[0].path"]),
        (["kitfile"], ["kitfile"]),
        (["datasets:train"], ["datasets[0].path"]),
        (["datasets:data/eval"], ["datasets[1].path"]),
        (["datasets:train,data/eval"], ["datasets[0].path", "datasets[1].path"]),
        (["model:lora"], ["model.parts[0].path"]),
        (["model,code"], ["model.path", "model.parts[0].path", "code[0].path"]),
        (["docs", "prompts:sys"], ["docs[0].path", "prompts[0].path"]),
        (["mcpservers"], ["mcpServers[0].path"]),
        (["code:src/"], []),  # exact match only
        (["kitfile:anything"], ["kitfile"]),
        (["datasets:TRAIN"], []),
        (["code:llm"], []),  # code has no name; ids match only its path
    ],
)
def test_selection(values, expected):
    assert selected(values) == expected


def test_empty_id_matches_unnamed_entries_like_kit():
    f = parse_filter("code:")
    assert f.ids == ("",)
    assert not f.matches("code", "", "src")
    assert parse_filter("model:").matches("modelpart", "", "p")


@pytest.mark.parametrize(
    "value,message",
    [
        ("model:a:b", "Invalid filter 'model:a:b': invalid filter: should be in format "
         "<type1>,<type2>[:<filter1>,<filter2>]"),
        ("models", "Invalid filter 'models': invalid filter type models (must be one of "
         "kitfile, model, datasets, code, prompts, docs, mcpservers)"),
        ("", "Invalid filter '': invalid filter type  (must be one of kitfile, model, "
         "datasets, code, prompts, docs, mcpservers)"),
        ("model,,code", "Invalid filter 'model,,code': invalid filter type  (must be one of "
         "kitfile, model, datasets, code, prompts, docs, mcpservers)"),
        ("dataset:x", "Invalid filter 'dataset:x': invalid filter type dataset (must be one of "
         "kitfile, model, datasets, code, prompts, docs, mcpservers)"),
    ],
)
def test_errors(value, message):
    with pytest.raises(FilterError) as ei:
        parse_filters([value])
    assert str(ei.value) == message


def test_deprecated_flags():
    assert filters_from_flags() == []
    fs = filters_from_flags(model=True, docs=True)
    assert fs == [Filter(("model", "docs"))]
    assert matches(fs, "modelpart", "x", "y") and matches(fs, "docs", "", "README.md")
    assert not matches(fs, "code", "", "src") and not matches(fs, "kitfile")
    assert matches(filters_from_flags(kitfile=True), "kitfile")


def test_kind_aliases_from_callers():
    fs = parse_filters(["datasets:train", "prompts", "mcpservers"])
    assert matches(fs, "datasets", "train", "data/train")
    assert matches(fs, "dataset", "train", "data/train")
    assert not matches(fs, "datasets", "eval", "data/eval")
    assert matches(fs, "prompts", "", "p") and matches(fs, "mcpServers", "fs", "fs.mcpb")
