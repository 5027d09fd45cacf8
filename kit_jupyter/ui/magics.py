"""IPython adapter: ``%kit`` and ``%%kitfile``.

Deliberately thin: parse with the shared parser, call the same functions ``python -m kit_jupyter``
calls, return the result object for display. User mistakes become exactly ``UsageError`` (a
subclass would print a traceback, ipython/ipython#14024); bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import getpass
import re
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import (
    Magics,
    cell_magic,
    line_magic,
    magics_class,
    no_var_expand,
    output_can_be_silenced,
)
from IPython.utils.text import DollarFormatter
from traitlets import Bool, Float

from kit_jupyter._fs import write_bytes_atomic
from kit_jupyter.errors import KitError
from kit_jupyter.ui import api, cli
from kit_jupyter.ui.progress import LIVE_DELAY, make_reporter

_PARSER = cli.build_parser(prog="%kit")


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


def _strip_silencer(line: str) -> str:
    """``@output_can_be_silenced`` hides the result but still passes the ``;`` to us."""
    line = line.rstrip()
    return line[:-1].rstrip() if line.endswith(";") else line


@magics_class
class KitMagics(Magics):
    short_errors = Bool(
        True, help="Show user errors as one UsageError line; False re-raises the original "
                   "exception with its traceback (for debugging).").tag(config=True)

    def _usage(self, err: Exception) -> UsageError:
        if not self.short_errors:
            raise err
        return UsageError(str(err))

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

    @output_can_be_silenced
    @no_var_expand
    @line_magic
    def kit(self, line: str) -> Any:
        line = _expand(line, self.shell.user_ns if self.shell is not None else {})
        try:
            args = _PARSER.parse_args(_split(_strip_silencer(line)))
        except cli.HelpShown:
            return None
        except cli.CommandLineError as e:
            raise UsageError(str(e)) from None
        try:
            return cli.run(args, self._context())
        except cli.CommandLineError as e:
            raise UsageError(str(e)) from None
        except KitError as e:
            raise self._usage(e) from None

    kit.__doc__ = _PARSER.format_help()

    @cell_magic
    def kitfile(self, line: str, cell: str) -> Any:
        try:
            args = _KITFILE_PARSER.parse_args(_split(line))
        except cli.HelpShown:
            return None
        except cli.CommandLineError as e:
            raise UsageError(str(e)) from None
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
            if not args.var.isidentifier():
                raise UsageError(f"%%kitfile: {args.var!r} is not a valid variable name")
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
    from IPython.utils.process import arg_split

    return arg_split(line, posix=True)


# -- tab completion ----------------------------------------------------------------------------

def _complete(text_until_cursor: str, token: str) -> list[str] | None:
    stripped = text_until_cursor.lstrip()
    if stripped.startswith("%%kitfile"):
        if token.startswith("-"):
            return [o for o in cli.option_strings(_KITFILE_PARSER) if o.startswith(token)]
        return None
    if not stripped.startswith("%kit ") and stripped != "%kit":
        return None
    words = stripped.split()[1:]
    if text_until_cursor.endswith(" "):
        words.append("")
    commands = cli.subcommands(_PARSER)
    if len(words) <= 1:
        prefix = words[0] if words else ""
        return sorted(c for c in commands if c.startswith(prefix))
    sub = commands.get(words[0])
    if sub is None or not token.startswith("-"):
        return None
    return sorted(o for o in cli.option_strings(sub) if o.startswith(token))


def _make_matcher() -> Any:
    from IPython.core.completer import SimpleCompletion, context_matcher

    @context_matcher()
    def kit_matcher(context: Any) -> Any:
        found = _complete(context.text_until_cursor, context.token)
        if found is None:
            return {"completions": [], "suppress": False}
        return {"completions": [SimpleCompletion(t, type="kit") for t in found],
                "suppress": True}

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
