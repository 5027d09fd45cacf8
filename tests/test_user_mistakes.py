"""The user surface under user mistakes: ``kit-jupyter`` (``python -m kit_jupyter``), ``%kit``,
``%%kitfile``'s own arguments and the Python API.

The property, for every command the one parser knows and every argument list Hypothesis makes
of it (missing, extra, unknown; empty, ``:``, ``@``, uppercase, 10,000 characters, newlines,
NUL, non-UTF-8, unicode digits; files where directories belong; odd numbers, templates and
filters): the outcome is success, or -- in the terminal -- exit status 1 with one ``[ERROR]``
line (kit's ``[WARN ]`` lines may come before it) or the usage exit status 2 with argparse's
usage and one line; in a notebook exactly one ``UsageError`` line. Never a traceback, never a
password typed into a reference. The Python API says which argument is of the wrong type.

The bugs these found are pinned below the property tests, each with its own test.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

import kit_jupyter as kit
from kit_jupyter.__main__ import main
from kit_jupyter.transport import deadline
from kit_jupyter.ui import cli

SECRET = "hunter2secret"
KITFILE = "manifestVersion: 1.0.0\nmodel:\n  path: m.bin\n"

PARSER = cli.build_parser(prog="kit-jupyter")
COMMANDS = cli.subcommands(PARSER)
#: positionals that are references or registries: the only places a password is typed into
REF_DESTS = {"ref", "source", "target", "destination", "ref1", "ref2", "registry",
             "repository"}

ODD = [
    "", ":", "@", "@sha256:", "a@sha256:abc", "A/B:V1", "x" * 10_000, "a\nb", "a\x00b",
    "a/b:v\u0661", "\u0661\u0662", "\udcff", "a\udcffb", "-", "--", ".", "a b", "a//b",
    "a/b:", "a/b:v1", "a/b:v1,v2", "a/b:v1,,X y", "localhost:1/x:v1", "127.0.0.1:1/x:v1",
    "local://a/b:v1", "remote://127.0.0.1:1/x:v1", "org/repo", "datasets/org/repo",
    "https://huggingface.co/org/repo", "proj", "proj/Kitfile", "file.txt", "nope",
    "nope/deeper", "0", "-1", "1e9", "abc", "99999999999999999999", "0x10", " 5", "1_0",
    "{{", "}}", "{{ .Nope }}", "{{ index .Tags 9 }}", "{{ printf \"%q\" .Repo }}",
    ".model", ".model.path", ".model[0]", "..model", ".a.b.c", "model,datasets:x",
    "kitfile:", "nope:x", "true", "false", "json", "table", "text",
]
SECRET_REFS = [f"user:{SECRET}@127.0.0.1:1/x:v1", f"https://user:{SECRET}@127.0.0.1:1/x",
               f"{SECRET}@127.0.0.1:1", f"user:{SECRET}@localhost", f"user:{SECRET}@r.io"]


def _safe(value: str) -> bool:
    """No absolute path or way up: the commands run as whoever runs the tests, and
    ``init -f -o /dev/null`` or ``unpack -d /`` would do what they say."""
    return not value.startswith(("/", "~")) and ".." not in value


VALUES = st.sampled_from(ODD) | st.text(max_size=12).filter(_safe)


def _value_of(action: argparse.Action, values: st.SearchStrategy[str]
              ) -> st.SearchStrategy[str]:
    """Mostly what the action takes (one of its choices, a number for a number), else
    anything."""
    if action.choices:
        fits = st.sampled_from([str(c) for c in action.choices])
    elif action.type is cli.go_int:
        fits = st.sampled_from(["0", "-1", "1", "3", "1000", "0x10", "-0"])
    else:
        return values
    return st.one_of(fits, fits, fits, values)


@st.composite
def command_lines(draw: st.DrawFn, *, magic: bool = False) -> list[str]:
    """A command and an argument list made of its own parser's actions: options given or not,
    with a value that is one of its choices or anything; each positional missing, given or
    given twice; sometimes one more word."""
    values = VALUES.filter(lambda v: "{" not in v.replace("{{", "") and "$" not in v) \
        if magic else VALUES  # IPython expands $x and {expr} in a magic's line
    name = draw(st.sampled_from(sorted(COMMANDS)))
    words = [name]
    for action in COMMANDS[name]._actions:
        if action.dest == "help":
            continue
        if action.option_strings:
            if draw(st.integers(0, 3)):  # mostly left out, so that most lines parse
                continue
            words.append(draw(st.sampled_from(action.option_strings)))
            if action.nargs == 0:
                continue
            words.append(draw(_value_of(action, values)))
        else:
            pool = _value_of(action, values)
            if action.dest in REF_DESTS:
                pool = pool | st.sampled_from(SECRET_REFS)
            words.extend(draw(pool) for _ in range(draw(st.sampled_from([1] * 8 + [0, 2]))))
    if not draw(st.integers(0, 9)):
        words.append(draw(values | st.sampled_from(["--nope", "-z", "--concurrency"])))
    return words


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A directory to run in, with a project, a file and a packed ModelKit (a/b:v1) in a
    private home; every network name leads to a closed port, and a failure is not retried."""
    home = tmp_path / "home"
    monkeypatch.setenv("KITOPS_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    for var in ("NO_PROXY", "no_proxy", "HF_HUB_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("KIT_JUPYTER_TIMEOUT", "5")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    monkeypatch.setattr(deadline, "RETRY_DELAYS", ())
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "Kitfile").write_text(KITFILE)
    (tmp_path / "proj" / "m.bin").write_bytes(b"m")
    (tmp_path / "file.txt").write_text("x")
    kit.pack(tmp_path / "proj", tag="a/b:v1", home=home)
    return tmp_path


def run_cli(words: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(words)
    return rc, out.getvalue(), err.getvalue()


def check_cli_outcome(words: list[str], rc: int, out: str, err: str) -> None:
    lines = err.splitlines()
    assert rc in (0, 1, 2), (words, rc, err)
    if rc == 2:  # argparse's: its usage line, then one line
        assert len(lines) in (1, 2) and (len(lines) == 1 or lines[0].startswith("usage:")), \
            (words, err)
    elif rc == 1 and not (words[0] == "validate" and not err):  # an invalid Kitfile: stdout
        assert lines and lines[-1].startswith("[ERROR] "), (words, err)
        assert all(line.startswith("[WARN ] ") for line in lines[:-1]), (words, err)
    else:
        assert all(line.startswith("[WARN ] ") for line in lines), (words, err)
    assert "Traceback" not in out + err
    assert SECRET not in out + err, (words, out, err)


@settings(max_examples=600, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(words=command_lines())
@example(words=["import", "org/repo"])
@example(words=["list", "--config", "file.txt"])
@example(words=["pack", "proj", "-f", "proj"])
@example(words=["login", f"https://user:{SECRET}@127.0.0.1:1", "-u", "u", "-p", "p"])
@example(words=["unpack", f"user:{SECRET}@127.0.0.1:1/x:v1"])
@example(words=["import", "\u2028", "--ref", "", "--config", ""])  # a [WARN ] line broke in two
def test_cli_outcome_is_success_or_one_line(workspace, words):
    rc, out, err = run_cli(words)
    event(f"{words[0]} exit {rc}")
    check_cli_outcome(words, rc, out, err)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(words=command_lines(magic=True))
@example(words=["list", "--format", "{{"])
@example(words=["info", "a/b:v1", "-f", ".model["])
@example(words=["validate", "proj("])
def test_magic_outcome_is_a_result_or_one_usage_error(workspace, ip, words):
    # a login without its user or password prompts for it, as kit does on a terminal
    assume(words[0] != "login" or ({"-u", "--username"} & set(words)
                                   and {"-p", "--password", "--password-stdin"} & set(words)))
    line = shlex.join(words)
    with contextlib.redirect_stdout(io.StringIO()) as out, \
            contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            ip.run_line_magic("kit", line)
        except UsageError as exc:
            assert type(exc) is UsageError, (words, exc)
            assert "\n" not in str(exc) and str(exc), (words, str(exc))
            assert SECRET not in str(exc), (words, str(exc))
    assert SECRET not in out.getvalue() + err.getvalue(), words


# -- what the properties found ------------------------------------------------------------------

def test_concurrency_below_one_is_kits_error(workspace):
    for words, text in [
        (["pull", "127.0.0.1:1/x:v1", "--concurrency", "0"],
         "[ERROR] Invalid arguments: invalid argument for concurrency (0): must be at least 1"),
        (["unpack", "a/b:v1", "--concurrency", "-1"],
         "[ERROR] Invalid arguments: invalid argument for concurrency (-1): must be at least 1"),
        (["login", "r.io", "-u", "u", "-p", "p", "--concurrency", "0"],
         "[ERROR] Invalid arguments: invalid argument for concurrency (0): must be at least 1"),
        (["import", "org/repo", "--concurrency", "0"],  # kit's import says it unwrapped
         "[ERROR] Invalid argument for concurrency (0): must be at least 1"),
    ]:
        rc, _, err = run_cli(words)
        assert (rc, err) == (1, text + "\n"), words


@pytest.mark.parametrize("value, parsed", [
    ("5", 5), ("+5", 5), ("-1", -1), ("0x10", 16), ("0X1f", 31), ("-0x10", -16), ("0o17", 15),
    ("017", 15), ("0b101", 5), ("1_000", 1000), ("0_7", 7), ("0x_1f", 31), ("00", 0),
    ("9223372036854775807", 2**63 - 1), ("-9223372036854775808", -(2**63)),
    (" 5", None), ("5 ", None), ("\u0663", None), ("1e9", None), ("abc", None), ("", None),
    ("08", None), ("1__000", None), ("_1", None), ("1_", None), ("0x", None), ("1.0", None),
    ("9223372036854775808", None), ("99999999999999999999", None), ("\uff11", None),
])
def test_integer_flags_read_numbers_as_kits_flag_library_does(value, parsed):
    """pflag's ``strconv.ParseInt(s, 0, 64)``; each expectation is what Go 1.24 answers."""
    if parsed is None:
        with pytest.raises(ValueError):
            cli.go_int(value)
    else:
        assert cli.go_int(value) == parsed


def test_an_unbounded_concurrency_is_a_usage_error_and_a_large_one_is_quick(workspace):
    rc, _, err = run_cli(["pull", "127.0.0.1:1/x:v1", "--concurrency", "99999999999999999999"])
    assert rc == 2 and "argument --concurrency: invalid int value" in err
    # a billion was a pool of a billion placeholders, filled before the first request
    from kit_jupyter.transport.registry import MAX_POOL, _make_session

    adapter = _make_session(10**9).get_adapter("https://r.io")
    assert adapter._pool_maxsize == MAX_POOL  # type: ignore[attr-defined]


def test_hub_that_cannot_be_reached_is_one_line(workspace):
    rc, _, err = run_cli(["import", "org/repo", "--tool", "hf"])
    assert rc == 1 and err.startswith("[ERROR] Failed to pin commit for org/repo@main: ")
    assert err.count("\n") == 1


@pytest.mark.parametrize("words, text", [
    (["list", "--config", "file.txt"], "[ERROR] Not a directory: {ws}/file.txt/storage"),
    (["cache", "info", "--config", "file.txt"], "[ERROR] Not a directory: {ws}/file.txt/cache"),
    (["cache", "clear", "--config", "file.txt"], "[ERROR] Not a directory: {ws}/file.txt/cache"),
    (["pack", "proj", "-f", "proj"], "[ERROR] Read proj: is a directory"),
    (["pack", "proj", "-f", ""], "[ERROR] Read .: is a directory"),
])
def test_a_file_where_a_directory_belongs_is_one_line(workspace, words, text):
    rc, _, err = run_cli(words)
    assert (rc, err) == (1, text.format(ws=workspace) + "\n")


def test_a_kitfile_path_that_is_a_directory_is_a_kitfile_error(workspace):
    with pytest.raises(kit.KitfileError, match="^read proj: is a directory$"):
        kit.load_kitfile_file("proj")
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(kit.KitfileError):
            kit.pack("proj", file="proj")
    assert len(os.listdir("/proc/self/fd")) <= fds  # no descriptor left open per try


@pytest.mark.parametrize("words, text", [
    (["unpack", f"user:{SECRET}@r.io/x:v1"],
     '[ERROR] Invalid reference: invalid registry "user:***@r.io"'),
    (["tag", "a/b:v1", f"{SECRET}@r.io/x:v1"], '[ERROR] Invalid arguments: failed to parse '
                                               'reference: invalid reference: invalid '
                                               'registry "***@r.io"'),
    (["login", f"https://user:{SECRET}@r.io", "-u", "u", "-p", "p"],
     '[ERROR] Could not resolve registry https://user:***@r.io: invalid reference: invalid '
     'registry "https://user:***@r.io"'),
    (["login", "", "-u", "u", "-p", "p"],  # oras ValidateRegistry, as kit says it
     '[ERROR] Could not resolve registry : invalid reference: invalid registry ""'),
    (["login", "a\nb", "-u", "u", "-p", "p"],
     '[ERROR] Could not resolve registry a b: invalid reference: invalid registry "a\\nb"'),
])
def test_a_password_typed_into_a_reference_is_not_shown(workspace, words, text):
    rc, _, err = run_cli(words)
    assert (rc, err) == (1, text + "\n")


def test_logout_does_not_show_a_password_either(workspace):
    rc, out, _ = run_cli(["logout", f"user:{SECRET}@r.io"])
    assert rc == 0 and SECRET not in out and "user:***@r.io" in out


@pytest.mark.parametrize("stdin, words, text", [
    ("pw\n", ["-p", "x", "--password-stdin"],
     "Invalid arguments: cannot use both --password and --password-stdin"),
    ("", ["--password-stdin"],
     "Invalid arguments: failed to read password from stdin: got empty string"),
])
def test_login_password_flags_say_what_kit_says(workspace, monkeypatch, stdin, words, text):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc, _, err = run_cli(["login", "127.0.0.1:1", "-u", "u", *words])
    assert (rc, err) == (1, f"[ERROR] {text}\n")


def test_remove_without_a_reference_says_what_kit_says(workspace):
    rc, _, err = run_cli(["remove"])
    assert rc == 2 and err.endswith("modelkit is required for remove unless --all is "
                                    "specified\n")


def test_a_nul_in_a_magic_argument_is_a_usage_error(workspace, ip):
    ip.user_ns["where"] = "a\x00b"
    for magic, line in [("kit", "validate $where"), ("kit", "unpack a/b:v1 -d $where")]:
        with pytest.raises(UsageError, match="an argument holds a NUL character"):
            ip.run_line_magic(magic, line)
    with pytest.raises(UsageError, match="an argument holds a NUL character"):
        ip.run_cell_magic("kitfile", "-o $where", KITFILE)


@pytest.mark.parametrize("line", ["list --format {{", "list --format {{.Repo}}[",
                                  "validate proj(", "validate proj( --format json"])
def test_an_unclosed_bracket_in_a_kit_line_is_no_tokenizer_traceback(workspace, ip, line):
    """IPython's ``@output_can_be_silenced`` tokenized the line as Python after the command
    ran: ``TokenError: EOF in multi-line statement`` under a command that had worked."""
    (workspace / "proj(").mkdir()
    (workspace / "proj(" / "Kitfile").write_text(KITFILE)
    ip.run_line_magic("kit", line)  # each of them works
    result = ip.run_cell(f"%kit {line}")
    assert result.success, result.error_in_exec


def test_a_trailing_semicolon_still_hides_the_result(workspace, ip):
    assert ip.run_line_magic("kit", "validate proj") is not None
    assert ip.run_line_magic("kit", "validate proj ;") is None
    cell = ip.run_cell("%kit validate proj;")
    assert cell.success and cell.result is None


def test_kitfile_refuses_a_bad_variable_before_it_fixes_or_writes(workspace, ip):
    typo = "manifestVersion: 1.0.0\nmodel:\n  pth: m.bin\n"
    for var in ("1kf", "class", "None", "kf.attr"):
        with pytest.raises(UsageError, match="is not a valid variable name"):
            ip.run_cell_magic("kitfile", f"--fix -o out {var}", typo)
    assert not Path("out").exists()
    with pytest.raises(UsageError, match="^%%kitfile: argument -o/--output: expected a file "
                                         "name$"):
        ip.run_cell_magic("kitfile", "-o ''", KITFILE)


# -- the Python API -----------------------------------------------------------------------------

CALLS = {
    "pack": lambda v: kit.pack(v), "pack(tag=)": lambda v: kit.pack("proj", tag=v),
    "unpack": lambda v: kit.unpack(v), "unpack(dir=)": lambda v: kit.unpack("a/b:v1", dir=v),
    "push": lambda v: kit.push(v), "pull": lambda v: kit.pull(v),
    "list_modelkits(home=)": lambda v: kit.list_modelkits(home=v),
    "list_remote": lambda v: kit.list_remote(v), "inspect": lambda v: kit.inspect(v),
    "inspect_remote": lambda v: kit.inspect_remote(v), "info": lambda v: kit.info(v),
    "info(filter=)": lambda v: kit.info("a/b:v1", filter=v),
    "tag": lambda v: kit.tag("a/b:v1", v), "remove": lambda v: kit.remove(v),
    "remove_remote": lambda v: kit.remove_remote(v), "login": lambda v: kit.login(v, "u", "p"),
    "login(username)": lambda v: kit.login("127.0.0.1:1", v, "p"),
    "logout": lambda v: kit.logout(v), "init": lambda v: kit.init(v, write=False),
    "diff": lambda v: kit.diff("a/b:v1", v), "cache_info(home=)": lambda v: kit.cache_info(home=v),
    "import_repository": lambda v: kit.import_repository(v),
    "validate": lambda v: kit.validate(v), "validate_text": lambda v: kit.validate_text(v),
    "load_kitfile": lambda v: kit.load_kitfile(v),
    "load_kitfile_file": lambda v: kit.load_kitfile_file(v),
    "parse_reference": lambda v: kit.parse_reference(v),
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("value", [5, 3.5, ["a/b:v1"], object(), True],
                         ids=lambda v: type(v).__name__)
def test_an_argument_of_the_wrong_type_is_a_type_error_naming_it(workspace, call, value):
    function = {"validate": "validate_path"}.get(call, call.split("(")[0])
    with pytest.raises(TypeError) as info:
        CALLS[call](value)
    message = str(info.value)
    assert message.startswith(f"{function}() argument "), message
    assert message.endswith(f", not {type(value).__name__}"), message


def test_none_where_a_reference_or_path_is_needed_is_a_type_error(workspace):
    with pytest.raises(TypeError, match=r"^unpack\(\) argument 'ref' must be str, not NoneType$"):
        kit.unpack(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^login\(\) argument 'registry' must be str"):
        kit.login(None, "u", "p")  # type: ignore[arg-type]  # was: a registry called "None"
    with pytest.raises(TypeError, match=r"^validate_path\(\) argument 'path' must be str or "
                                        r"os.PathLike, not NoneType$"):
        kit.validate(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"argument 'filters' must be a list or None, not str"):
        kit.unpack("a/b:v1", filters="model")  # type: ignore[arg-type]  # was: 'm', 'o' ...


def test_api_concurrency_and_nul_paths(workspace):
    with pytest.raises(kit.KitError, match=r"^invalid argument for concurrency \(0\): must be "
                                           r"at least 1$"):
        kit.unpack("a/b:v1", concurrency=0)
    with pytest.raises(TypeError, match="argument 'concurrency' must be int, not str"):
        kit.pull("127.0.0.1:1/x:v1", concurrency="4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="argument 'home' holds a NUL character"):
        kit.list_modelkits(home="a\x00b")


def test_the_checked_functions_keep_their_signature_and_docs():
    import inspect

    assert list(inspect.signature(kit.unpack).parameters)[0] == "ref"
    assert "Args:" in (kit.unpack.__doc__ or "")
    assert kit.unpack.__name__ == "unpack"
    with pytest.raises(TypeError, match="plain_htp"):
        kit.unpack("a/b:v1", plain_htp=True)  # type: ignore[call-arg]
