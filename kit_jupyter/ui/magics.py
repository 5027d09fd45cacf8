"""IPython adapter: ``%kit`` and ``%%kitfile``.

Deliberately thin: parse with the shared parser, call the same functions ``python -m kit_jupyter``
calls, return the result object for display. User mistakes become exactly ``UsageError`` (a
subclass would print a traceback, ipython/ipython#14024); bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import getpass
import keyword
import os
import re
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import (
    Magics,
    cell_magic,
    line_magic,
    magics_class,
    no_var_expand,
)
from IPython.utils.text import DollarFormatter
from traitlets import Bool, Float

from kit_jupyter._fs import write_bytes_atomic
from kit_jupyter.errors import KitError, error_line
from kit_jupyter.ui import api, cli
from kit_jupyter.ui.progress import LIVE_DELAY, make_reporter

_PARSER = cli.build_parser(prog="%kit")


class TextResult(str):
    """A command's output that is only text (``version``, ``--format json``): a ``str`` a
    notebook shows as itself, not as a quoted string."""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


def _kitfile_parser() -> cli.KitArgumentParser:
    p = cli.KitArgumentParser(
        prog="%%kitfile",
        description="Parse and validate the cell as a Kitfile and show the findings.")
    p.add_argument("var", nargs="?", help="variable that receives the parsed Kitfile")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="also write the cell to FILE (atomically)")
    p.add_argument("--strict", action="store_true",
                   help="raise an error when the Kitfile has errors (for notebooks run in CI)")
    p.add_argument("--check-remote", action="store_true",
                   help="HEAD each S3 remote dataset and report a stale remoteHash")
    p.add_argument("--fix", action="store_true",
                   help="apply the unambiguous fixes to the cell: a misspelt key with one likely "
                        "meaning and, with --check-remote, a stale remoteHash")
    return p


_KITFILE_PARSER = _kitfile_parser()


def _silenced(line: str) -> tuple[str, bool]:
    """The line without a trailing ``;``, and whether it had one (the result is then not shown,
    as for a Python expression). Done here rather than with IPython's
    ``@output_can_be_silenced``, which tokenizes the line as Python after the command has run:
    an unclosed bracket in an argument (``--format {{``, ``data(1``) was a ``TokenError``
    traceback under a command that had succeeded."""
    line = line.rstrip()
    return (line[:-1].rstrip(), True) if line.endswith(";") else (line, False)


@magics_class
class KitMagics(Magics):
    short_errors = Bool(
        True, help="Show user errors as one UsageError line; False re-raises the original "
                   "exception with its traceback (for debugging).").tag(config=True)

    def _usage(self, err: Exception) -> UsageError:
        if not self.short_errors:
            raise err
        return UsageError(error_line(err) if isinstance(err, KitError) else str(err))

    progress_delay = Float(
        LIVE_DELAY, help="Seconds a task runs before its progress becomes a live widget (quicker "
                         "commands show only their static summary); 0 makes every task live."
    ).tag(config=True)

    def _context(self) -> cli.Context:
        delay = self.progress_delay
        return cli.Context(getpass=getpass.getpass, next_cell=self._next_cell,
                           reporter_factory=lambda mode: make_reporter(mode, delay=delay))

    def _next_cell(self, text: str) -> None:
        assert self.shell is not None
        self.shell.set_next_input(text, replace=False)

    @no_var_expand
    @line_magic
    def kit(self, line: str) -> Any:
        line, silenced = _silenced(_expand(line, self.shell.user_ns if self.shell is not None
                                           else {}))
        try:
            args = _PARSER.parse_args(_split(line))
        except cli.HelpShown:
            return None
        except cli.CommandLineError as e:
            raise UsageError(str(e)) from None
        try:
            result = cli.run(args, self._context())
        except cli.CommandLineError as e:
            raise UsageError(str(e)) from None
        except KitError as e:
            raise self._usage(e) from None
        if silenced:
            return None
        if getattr(args, "format", None) == "json" and hasattr(result, "to_json"):
            return TextResult(result.to_json())  # what it says: the JSON, shown as text
        return TextResult(result) if isinstance(result, str) else result

    kit.__doc__ = _PARSER.format_help()

    @cell_magic
    def kitfile(self, line: str, cell: str) -> Any:
        try:
            args = _KITFILE_PARSER.parse_args(_split(line))
        except cli.HelpShown:
            return None
        except cli.CommandLineError as e:
            raise UsageError(str(e)) from None
        if args.var is not None and (not args.var.isidentifier() or keyword.iskeyword(args.var)):
            # before anything runs: --fix would have rewritten the cell, -o written the file
            raise UsageError(f"%%kitfile: {args.var!r} is not a valid variable name")
        if args.output == "":
            raise UsageError("%%kitfile: argument -o/--output: expected a file name")
        return self._run_kitfile(args, cell, line)

    kitfile.__doc__ = _KITFILE_PARSER.format_help()

    def _run_kitfile(self, args: argparse.Namespace, cell: str, line: str = "") -> Any:
        from IPython.display import display

        # through the table: %load_ext must stay fast; the command (and PyYAML) load on first use
        validate_text = api.load("validate_text")
        from kit_jupyter.kitfile.finding import apply_fixes

        def check(text: str) -> Any:
            # One blank line first: the %%kitfile line is the editor's line 1, so every line
            # number -- of fields, of YAML errors, and those kit's messages mention -- is the
            # editor's.
            try:
                return validate_text("\n" + text, source=args.output or "Kitfile",
                                     check_remote=args.check_remote)
            except KitError as e:
                raise self._usage(e) from None

        report = check(cell)
        if args.fix:
            fixed, changes = apply_fixes(cell, report.findings, first_line=2)
            if changes:
                assert self.shell is not None
                self.shell.set_next_input(f"{self._cell_header(line)}\n{fixed}", replace=True)
                cell = fixed
                report = check(cell)
                report.fixed = changes
        if args.var:
            assert self.shell is not None, "a magic always runs in a shell"
            self.shell.user_ns[args.var] = report.kitfile  # best effort, see report.partial
        if args.strict and not report.valid:
            display(report)
            first = report.errors[0]
            where = f" (line {first.line})" if first.line else ""
            raise UsageError(f"Kitfile has {len(report.errors)} error(s): "
                             f"{first.message}{where}")
        if args.output:

            try:
                write_bytes_atomic(args.output, cell.encode("utf-8"))
            except OSError as e:
                raise UsageError(f"%%kitfile: cannot write {args.output}: {e.strerror}") from None
        return report

    def _cell_header(self, line: str) -> str:
        """The cell's first line as the user wrote it (before ``$var`` expansion), for
        rewriting the cell: IPython stores the raw cell in history before running it."""
        raw = getattr(getattr(self.shell, "history_manager", None), "input_hist_raw", None) or [""]
        first = raw[-1].lstrip().split("\n", 1)[0]
        return first if first.startswith("%%kitfile") else f"%%kitfile {line}".rstrip()


# Go template actions (``list --format '{{ .Repo }}'``) pass through untouched
_GO_ACTION = re.compile(r"(\{\{.*?\}\})", re.S)


def _expand(line: str, namespace: dict[str, Any]) -> str:
    """IPython's ``$var`` / ``{expr}`` expansion of a magic line (``var_expand``), except inside
    Go template actions: IPython would turn ``{{ .Repo }}`` into ``{ .Repo }``."""
    formatter = DollarFormatter()
    parts = _GO_ACTION.split(line)
    for i in range(0, len(parts), 2):
        try:
            parts[i] = formatter.vformat(parts[i], args=[], kwargs=namespace)
        except Exception:  # what var_expand does: a line it cannot expand is used as written
            pass
    return "".join(parts)


def _split(line: str) -> list[str]:
    """The words of a magic's line, as a shell splits them; a quote left open or a backslash
    at the end is the one-line error the shell would give, not shlex's ValueError."""
    from IPython.utils.process import arg_split

    try:
        return arg_split(line, posix=True)
    except ValueError as exc:
        raise cli.CommandLineError(f"cannot split the line into arguments: {exc} (close the "
                                   "quote, or put a backslash before it)") from None


# -- tab completion ----------------------------------------------------------------------------

#: positionals completed with local ModelKit references, and with paths (by dest)
_REF_ARGS = {("unpack", "ref"), ("inspect", "ref"), ("info", "ref"), ("push", "source"),
             ("tag", "source"), ("tag", "target"), ("remove", "ref"), ("diff", "ref1"),
             ("diff", "ref2")}
_PATH_ARGS = {"path", "directory"}
#: options whose value is a path
_PATH_OPTIONS = {"dir", "file", "config", "output"}
#: values offered for options without fixed choices (list's --format also takes a Go template)
_SUGGESTED = {("list", "format"): ("table", "json")}
_LINE = re.compile(r"(?:^|=\s*)(%%kitfile|%kit)(\s.*|)$")


def _complete(text_until_cursor: str) -> tuple[str, list[str]] | None:
    """``(fragment, completions)`` for the ``%kit`` / ``%%kitfile`` line being typed: the
    subcommands, a command's flags, the choices of a flag (``--compression``, ``--format``,
    ``--progress`` ...), local ModelKit references where a command takes one, paths where it
    takes a path. None when the line is not ours (or the word is a ``$var``/``{expr}``, which
    IPython completes)."""
    lines = text_until_cursor.split("\n")
    if len(lines) > 1 and lines[0].lstrip().startswith("%%"):
        return None  # inside a cell magic's body (a Kitfile)
    m = _LINE.search(lines[-1])
    if m is None:
        return None
    words = m.group(2).split()
    fragment = "" if not words or m.group(2)[-1:].isspace() else words.pop()
    if fragment.startswith(("$", "{")):
        return None
    if m.group(1) == "%%kitfile":
        parser: argparse.ArgumentParser = _KITFILE_PARSER
        command = ""
    else:
        commands = cli.subcommands(_PARSER)
        if not words:
            return fragment, [c for c in commands if c.startswith(fragment)]
        command = words.pop(0)
        if command not in commands:
            return fragment, []
        parser = commands[command]
    options = {o: a for a in parser._actions for o in a.option_strings}
    positionals = [a for a in parser._actions if not a.option_strings and a.dest != "help"]
    home = None
    expects: argparse.Action | None = None  # the option whose value comes next
    index = 0
    for word in words:
        if expects is not None:
            if expects.dest == "config":
                home = word
            expects = None
        elif word.startswith("-") and word.split("=", 1)[0] in options:
            action = options[word.split("=", 1)[0]]
            if "=" not in word and action.nargs != 0:
                expects = action
        elif not word.startswith("-"):
            index += 1
    if expects is None and fragment.startswith("-") and "=" in fragment:
        name, _, fragment = fragment.partition("=")
        expects = options.get(name)
        if expects is None:
            return fragment, []
    if expects is not None:
        choices = expects.choices or _SUGGESTED.get((command, expects.dest))
        if choices:
            return fragment, [str(c) for c in choices if str(c).startswith(fragment)]
        return fragment, _paths(fragment) if expects.dest in _PATH_OPTIONS else []
    if fragment.startswith("-"):
        return fragment, sorted(o for o in options if o.startswith(fragment))
    if index >= len(positionals):
        return fragment, []
    action = positionals[index]
    if action.choices:
        return fragment, [str(c) for c in action.choices if str(c).startswith(fragment)]
    if (command, action.dest) in _REF_ARGS:
        return fragment, [r for r in _local_refs(home) if r.startswith(fragment)]
    if action.dest in _PATH_ARGS:
        return fragment, _paths(fragment)
    return fragment, []


def _local_refs(home: str | None) -> list[str]:
    """``repository:tag`` of every tagged ModelKit in local storage, as ``list`` shows them."""
    try:
        models = api.load("list_modelkits")(home=home).models
    except Exception:  # completion must never raise; an unreadable store offers nothing
        return []
    return sorted({f"{m['repo']}:{tag}" for m in models for tag in m["tags"] or []})


def _paths(fragment: str) -> list[str]:
    """Entries of the directory ``fragment`` points into, directories with a trailing ``/``;
    hidden ones only when asked for with a leading dot."""
    head, tail = os.path.split(os.path.expanduser(fragment))
    try:
        names = sorted(os.listdir(head or "."))
    except OSError:
        return []
    keep = fragment[: len(fragment) - len(tail)]
    out = []
    for name in names:
        if not name.startswith(tail) or (name.startswith(".") and not tail.startswith(".")):
            continue
        out.append(keep + name + ("/" if os.path.isdir(os.path.join(head, name)) else ""))
    return out


def _make_matcher() -> Any:
    from IPython.core.completer import SimpleCompletion, context_matcher

    @context_matcher()
    def kit_matcher(context: Any) -> Any:
        found = _complete(context.text_until_cursor)
        if found is None:
            return {"completions": [], "suppress": False}
        fragment, texts = found
        return {"completions": [SimpleCompletion(t, type="kit") for t in texts],
                "matched_fragment": fragment, "suppress": True, "ordered": True}

    return kit_matcher


def _is_ours(matcher: Any) -> bool:
    return getattr(matcher, "__qualname__", "").startswith("_make_matcher")


def load(ipython: Any) -> None:
    ipython.register_magics(KitMagics)
    matchers = ipython.Completer.custom_matchers
    if not any(_is_ours(m) for m in matchers):
        matchers.append(_make_matcher())


def unload(ipython: Any) -> None:
    matchers = ipython.Completer.custom_matchers
    matchers[:] = [m for m in matchers if not _is_ours(m)]
