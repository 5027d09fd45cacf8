"""The public Python API: ``from kit_jupyter import unpack`` and friends.

Pinned names, lazy imports (one table in ``kit_jupyter/ui/api.py``), docstrings a user can read with
``?``, keyword options that reject a typo, and one round trip through the public names only.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import kit_jupyter
from kit_jupyter.ui import api

ROOT = Path(__file__).resolve().parent.parent

# Changing the public API is deliberate: update this list, the table and the README together.
PUBLIC = [
    "pack", "unpack", "push", "pull", "list_modelkits", "list_remote", "inspect",
    "inspect_remote", "info", "tag", "remove", "remove_remote", "login", "logout", "init", "diff",
    "cache_info", "cache_clear", "import_repository", "validate", "validate_text",
    "Kitfile", "load_kitfile", "load_kitfile_file", "Finding", "ValidationReport", "Reference",
    "parse_reference",
    "Reporter", "make_reporter",
    "KitError", "KitfileError", "ValidationError", "ReferenceError_", "FilterError",
    "NotFoundError", "StorageError", "PackError", "UnpackError", "RemoteDatasetError",
    "RegistryError", "AuthError",
]

# The functions that are kit commands, and the positional arguments that reach the keywords.
COMMANDS = {
    "pack": ("dir",), "unpack": ("x:v1",), "push": ("x:v1",), "pull": ("r.io/x:v1",),
    "list_modelkits": (), "list_remote": ("r.io/x",), "inspect": ("x:v1",),
    "inspect_remote": ("r.io/x:v1",), "info": ("x:v1",), "tag": ("x:v1", "y:v1"),
    "remove": ("x:v1",), "remove_remote": ("r.io/x:v1",), "login": ("r.io", "u", "p"),
    "logout": ("r.io",), "init": ("dir",),
    "diff": ("x:v1", "y:v1"), "cache_info": (), "cache_clear": (),
    "import_repository": ("org/repo",),
    "validate": (".",), "validate_text": ("",),
}
NETWORK = ("plain_http", "tls_verify", "concurrency")


def test_all_is_pinned_and_is_the_table():
    assert kit_jupyter.__all__ == PUBLIC
    assert list(api.EXPORTS) == PUBLIC
    assert set(COMMANDS) <= set(PUBLIC)


def test_type_checking_imports_match_the_table():
    """IDEs and type checkers read the ``TYPE_CHECKING`` imports of ``__init__.py``; the runtime
    reads the table. They must name the same objects."""
    tree = ast.parse((ROOT / "kit_jupyter" / "__init__.py").read_text())
    (block,) = [n for n in tree.body if isinstance(n, ast.If)
                and getattr(n.test, "id", None) == "TYPE_CHECKING"]
    seen = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom)
        for alias in node.names:
            seen[alias.asname or alias.name] = f"{node.module}:{alias.name}"
    assert seen == api.EXPORTS


@pytest.mark.parametrize("name", PUBLIC)
def test_each_name_is_the_object_its_module_defines(name):
    module, _, attr = api.EXPORTS[name].partition(":")
    assert getattr(kit_jupyter, name) is getattr(importlib.import_module(module), attr)
    assert name in dir(kit_jupyter)


def test_unknown_name_is_an_attribute_error():
    assert not hasattr(kit_jupyter, "unpak")
    with pytest.raises(AttributeError, match="unpak"):
        kit_jupyter.unpak  # noqa: B018
    with pytest.raises(ImportError):
        exec("from kit_jupyter import unpak", {})


def test_import_loads_nothing_until_a_name_is_used():
    code = """
import sys, json
heavy = ('boto3', 'botocore', 'oras', 'requests', 'ipywidgets', 'yaml', 'IPython')
def loaded(*names):
    return sorted(m for m in names if m in sys.modules)
import kit_jupyter
out = {"import": loaded(*heavy, 'kit_jupyter.commands', 'kit_jupyter.kitfile')}
kit_jupyter.unpack, kit_jupyter.push, kit_jupyter.validate
out["commands"] = loaded('boto3', 'oras', 'ipywidgets')
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["import"] == []
    assert out["commands"] == []  # the heavy transports load when a command needs them


def test_load_ext_loads_no_command():
    code = """
import sys, IPython, kit_jupyter.ui.magics
print(sorted(m for m in sys.modules if m.startswith('kit_jupyter.commands') or m in ('yaml',)))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_adapters_call_commands_only_through_the_table():
    """One home for "which function implements which command": the magics and the CLI import
    no command module themselves."""
    for path in ("ui/cli.py", "ui/magics.py", "__main__.py"):
        tree = ast.parse((ROOT / "kit_jupyter" / path).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in imported if m and m.startswith("kit_jupyter.commands")}, path


# -- docstrings ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(COMMANDS) + ["load_kitfile", "load_kitfile_file",
                                                      "parse_reference", "make_reporter"])
def test_function_docstring_documents_every_parameter_and_the_result(name):
    fn = getattr(kit_jupyter, name)
    doc = inspect.getdoc(fn)
    assert doc, name
    summary = doc.splitlines()[0]
    assert summary.endswith(".") or summary.endswith(")."), summary
    missing = [p for p in inspect.signature(fn).parameters if f"    {p}:" not in doc]
    assert not missing, f"{name}: parameters not documented: {missing}"
    assert "\nReturns:\n" in doc, name


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - {"validate_text"}))
def test_command_docstring_names_kits_command(name):
    summary = inspect.getdoc(getattr(kit_jupyter, name)).splitlines()[0]
    assert "``kit " in summary or "``kit-jupyter " in summary, summary


@pytest.mark.parametrize("name", ["Kitfile", "Finding", "Reference", "ValidationReport",
                                  "Reporter", "KitError"])
def test_class_docstring_is_written_not_generated(name):
    doc = inspect.getdoc(getattr(kit_jupyter, name)) or ""
    assert doc and not doc.startswith(f"{name}("), name  # not the dataclass signature


def test_package_docstring_shows_how_to_start():
    assert "import kit_jupyter" in kit_jupyter.__doc__
    assert "make_reporter" in kit_jupyter.__doc__


# -- keyword options ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_misspelt_option_is_a_type_error(name, tmp_path):
    fn = getattr(kit_jupyter, name)
    params = inspect.signature(fn).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), name
    with pytest.raises(TypeError, match="plain_htp"):
        fn(*COMMANDS[name], plain_htp=True, home=tmp_path) if "home" in params \
            else fn(*COMMANDS[name], plain_htp=True)


@pytest.mark.parametrize("name", ["unpack", "push", "pull", "list_remote", "inspect",
                                  "inspect_remote", "info", "diff"])
def test_registry_commands_take_kits_network_flags(name):
    params = inspect.signature(getattr(kit_jupyter, name)).parameters
    for flag in NETWORK:
        assert params[flag].kind is inspect.Parameter.KEYWORD_ONLY, (name, flag)


# -- a round trip through the public names only -------------------------------------------------

KITFILE = """\
manifestVersion: 1.0.0
package:
  name: api-demo
  authors: [Ada]
model:
  name: clf
  path: model.bin
code:
  - path: src
"""


def test_round_trip_through_the_public_api(tmp_path):
    kj = kit_jupyter
    project, home = tmp_path / "project", tmp_path / "home"
    (project / "src").mkdir(parents=True)
    (project / "Kitfile").write_text(KITFILE)
    (project / "model.bin").write_bytes(b"\x00weights" * 100)
    (project / "src" / "train.py").write_text("print('hi')\n")

    report = kj.validate(project)
    assert report.valid and report.findings == []
    kf = kj.load_kitfile((project / "Kitfile").read_text())
    assert isinstance(kf, kj.Kitfile) and kf.model.path == "model.bin"
    assert kj.load_kitfile_file(project / "Kitfile") == kf
    ref = kj.parse_reference("acme/api-demo:v1")
    assert isinstance(ref, kj.Reference) and (ref.registry, ref.tag) == ("localhost", "v1")

    packed = kj.pack(project, tag="acme/api-demo:v1", home=home)
    assert [m["modelName"] for m in kj.list_modelkits(home=home).models] == ["api-demo"]
    assert kj.inspect("acme/api-demo:v1", home=home).digest == packed.digest
    assert kj.info("acme/api-demo:v1", home=home, filter=".model.path").yaml == "model.bin\n"
    kj.tag("acme/api-demo:v1", "acme/api-demo:v2", home=home)
    out = tmp_path / "out"
    unpacked = kj.unpack("acme/api-demo:v2", dir=out, home=home, filters=["model"])
    assert unpacked.digest == packed.digest
    assert (out / "model.bin").read_bytes() == (project / "model.bin").read_bytes()
    assert not (out / "src").exists()
    kj.remove("acme/api-demo:v1", home=home)
    kj.remove("acme/api-demo:v2", home=home)
    assert len(kj.list_modelkits(home=home)) == 0
    with pytest.raises(kj.NotFoundError):
        kj.inspect("acme/api-demo:v1", home=home)
    with pytest.raises(kj.KitError):
        kj.parse_reference("Acme/Upper:v1")


def test_reporter_closes_at_the_end_of_a_with_block():
    closed = []

    class Counting(kit_jupyter.Reporter):
        def close(self) -> None:
            closed.append(True)

    with pytest.raises(ValueError), Counting() as rep:
        rep.info("working")
        raise ValueError("the command failed")
    assert closed == [True] and rep.messages == [("info", "working")]


def test_readme_names_every_public_function():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):text.index("## Development")]
    missing = [n for n in PUBLIC if n[0].islower() and f"`{n}`" not in section]
    assert not missing, f"README's Python API section does not name {missing}"
