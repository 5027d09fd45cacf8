"""The one command-line parser, shared by ``%kit`` and ``python -m kit_jupyter``.

Both adapters parse with :func:`build_parser` and run :func:`run`, so a flag exists in the
notebook exactly when it exists in the terminal. Each command calls the public function of the
same name, found in :mod:`kit_jupyter.ui.api`'s table (imported on first use, so ``%load_ext``
stays fast): the terminal, the magics and ``import kit_jupyter`` run the same code.

The parser never exits the process: a usage error raises :class:`CommandLineError` and ``--help``
raises :class:`HelpShown` after printing, and each adapter maps those to its own world
(``UsageError`` in IPython, exit status 2 in a shell).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from kit_jupyter._arguments import COUNT
from kit_jupyter._version import __version__
from kit_jupyter.errors import KitError, one_line, path_problem, system_problem
from kit_jupyter.gocompat import gostrconv
from kit_jupyter.kitfile.filters import filters_from_flags
from kit_jupyter.kitfile.reference import password_in, without_password
from kit_jupyter.oci.mediatypes import COMPRESSIONS, FORMATS
from kit_jupyter.reporting import Reporter
from kit_jupyter.transport.redact import redact
from kit_jupyter.ui import api
from kit_jupyter.ui.progress import make_reporter

PROGRESS_CHOICES = ("auto", "none", "text", "widget", "plain", "fancy")


class CommandLineError(Exception):
    """Bad arguments: one line, shown as a UsageError or on stderr with exit status 2."""


class HelpShown(Exception):
    """``-h`` was given; the help has been printed."""


class KitArgumentParser(argparse.ArgumentParser):
    """argparse that never exits, and says "did you mean" for a misspelt command, choice or
    flag (Python 3.14's ``suggest_on_error`` for choices; difflib before it, and for flags)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        if sys.version_info >= (3, 14):
            kwargs.setdefault("suggest_on_error", True)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CommandLineError(f"{self.prog}: {one_line(message)}")

    if sys.version_info < (3, 14):
        def _check_value(self, action: argparse.Action, value: Any) -> None:
            if action.choices is not None and value not in action.choices:
                choices = [str(c) for c in action.choices]
                close = difflib.get_close_matches(str(value), choices, n=1)
                tail = (f"maybe you meant {close[0]!r}?" if close
                        else f"choose from {', '.join(choices)}")
                raise argparse.ArgumentError(action, f"invalid choice: {value!r} ({tail})")
            super()._check_value(action, value)

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        for arg in args if args is not None else sys.argv[1:]:
            if "\0" in arg:  # only a magic's $var can hold one: no command line can
                self.error(f"an argument holds a NUL character, which no command line can "
                           f"carry: {arg!r}")
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            # the flags of the command that was given, which the top parser does not know
            parser = subcommands(self).get(getattr(ns, "command", None) or "", self)
            flags = option_strings(parser)
            said = []
            for extra in extras:
                close = [f for f in difflib.get_close_matches(extra.split("=", 1)[0], flags, n=1)
                         if f != extra] if extra.startswith("-") else []  # after --: itself
                extra = without_password(extra)  # a reference typed once too often
                if not extra.isprintable() or any(c.isspace() for c in extra) or not extra:
                    extra = repr(extra)  # one word, on one line
                said.append(f"{extra} (maybe you meant {close[0]}?)" if close else extra)
            self.error(f"unrecognized arguments: {' '.join(said)}")
        return ns

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if status:
            raise CommandLineError((message or "invalid arguments").strip())
        raise HelpShown()


@dataclass
class Context:
    """What a command needs from its adapter: how to report, how to ask for a password."""

    progress: str = "auto"
    getpass: Callable[[str], str] | None = None
    stdin: IO[str] | None = None  # --password-stdin reads here (default sys.stdin)
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    reporter_factory: Callable[[str], Reporter] = make_reporter
    #: proposes a new cell below (IPython's set_next_input); None outside a notebook
    next_cell: Callable[[str], None] | None = None


#: kit unpack's flags from before --filter (still accepted, ignored when --filter is given)
_DEPRECATED_FILTERS = (("kitfile", "Kitfile"), ("model", "model"), ("code", "code"),
                       ("datasets", "datasets"), ("docs", "docs"))


def go_int(text: str) -> int:
    """An integer flag's value as kit's flag library reads it (pflag: ``strconv.ParseInt(s, 0,
    64)``, :func:`~kit_jupyter.gocompat.gostrconv.parse_int`). Python's ``int`` would also
    take `` 5``, ``٣`` (an Arabic-Indic digit) and numbers of any length, and a count of
    10**21 parallel transfers is not one to try."""
    return gostrconv.parse_int(text)


go_int.__name__ = "int"  # argparse names the type in its message: "invalid int value: 'x'"


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="DIR",
                   help="storage root (default: $KITOPS_HOME, else the OS default)")


def _add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", choices=PROGRESS_CHOICES, default="auto",
                   help="progress display: widget in a notebook, text in a terminal (default auto)")


def _add_network(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plain-http", action="store_true", help="use plain HTTP for the registry")
    p.add_argument("--tls-verify", default="true", choices=("true", "false"),
                   help="verify the registry's TLS certificate (default true)")
    p.add_argument("--concurrency", type=go_int, default=5,
                   help="parallel transfers (default 5)")


def build_parser(prog: str = "kit") -> KitArgumentParser:
    parser = KitArgumentParser(
        prog=prog,
        description="KitOps ModelKits from Python and Jupyter, interchangeable with the kit CLI.",
        epilog=f"Run '{prog} COMMAND -h' for a command's flags.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=KitArgumentParser)

    p = sub.add_parser("validate", help="validate a Kitfile (a file, or a directory holding one)")
    p.add_argument("path", nargs="?", default=".", help="Kitfile or directory (default .)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--check-remote", action="store_true",
                   help="HEAD each S3 remote dataset and report a stale remoteHash")

    p = sub.add_parser("pack", help="pack a directory into a ModelKit in local storage")
    p.add_argument("directory", nargs="?", default=".")
    p.add_argument("-f", "--file", help="Kitfile path (default: Kitfile, kitfile, .kitfile in DIR)")
    p.add_argument("-t", "--tag", help="reference, e.g. churn:v1 (extra tags after commas)")
    p.add_argument("--compression", choices=COMPRESSIONS, default="none",
                   help="layer compression (default none: byte-identical to kit)")
    p.add_argument("--layer-format", choices=FORMATS, default="tar",
                   help="tar (default), or raw: each layer is the one file its path names")
    p.add_argument("--push", action="store_true",
                   help="then push it to the registry named in --tag, under each tag")
    p.add_argument("--use-model-pack", action="store_true",
                   help="write a CNCF ModelPack (model-spec) artifact instead of kit's format")
    _add_config(p)
    _add_progress(p)
    _add_network(p)

    p = sub.add_parser("unpack", help="extract a ModelKit's components into a directory")
    p.add_argument("ref")
    p.add_argument("-d", "--dir", default=".", help="target directory (default .)")
    p.add_argument("-o", "--overwrite", action="store_true", help="overwrite existing files")
    p.add_argument("-i", "--ignore-existing", action="store_true", help="skip existing files")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="TYPES[:IDS]",
                   help="e.g. model,datasets:events (repeatable)")
    for word, what in _DEPRECATED_FILTERS:
        p.add_argument(f"--{word}", action="store_true",
                       help=f"unpack only {what} (deprecated: use --filter={word})")
    p.add_argument("--include-remote", action="store_true",
                   help="also download remote (S3) datasets and unpack the datasets of "
                        "ModelKits that datasets refer to")
    p.add_argument("--no-cache", action="store_true",
                   help="bypass the shared cache of remote datasets under $KITOPS_HOME/cache")
    _add_config(p)
    _add_progress(p)
    _add_network(p)

    p = sub.add_parser("push", help="upload a ModelKit to a registry")
    p.add_argument("source")
    p.add_argument("destination", nargs="?")
    _add_config(p)
    _add_progress(p)
    _add_network(p)

    p = sub.add_parser("pull", help="download a ModelKit from a registry into local storage")
    p.add_argument("ref")
    _add_config(p)
    _add_progress(p)
    _add_network(p)

    p = sub.add_parser("list", help="list local ModelKits, or the tags of a remote repository")
    p.add_argument("repository", nargs="?")
    p.add_argument("--format", default="table", metavar="FORMAT",
                   help="table, json, or a Go template run per ModelKit, e.g. "
                        "'{{ .Repo }}:{{ index .Tags 0 }}' (fields: Repo Tags Digest ModelName "
                        "Size Author)")
    _add_config(p)
    _add_network(p)

    p = sub.add_parser("inspect", help="manifest and Kitfile of a ModelKit")
    p.add_argument("ref")
    p.add_argument("-r", "--remote", action="store_true", help="read from the registry")
    _add_config(p)
    _add_network(p)

    p = sub.add_parser("info", help="the Kitfile of a ModelKit, as YAML")
    p.add_argument("ref")
    p.add_argument("-r", "--remote", action="store_true", help="read from the registry")
    p.add_argument("-f", "--filter", help="dot path into the Kitfile, e.g. .model.path")
    _add_config(p)
    _add_network(p)

    p = sub.add_parser("tag", help="add a tag to a local ModelKit")
    p.add_argument("source")
    p.add_argument("target")
    _add_config(p)

    p = sub.add_parser("remove", help="remove a local ModelKit or tag (-r: in its registry)")
    p.add_argument("ref", nargs="?")
    p.add_argument("-f", "--force", action="store_true", help="remove all tags of the manifest")
    p.add_argument("-a", "--all", action="store_true", help="remove all untagged ModelKits")
    p.add_argument("-r", "--remote", action="store_true",
                   help="remove from the registry instead: a tag is untagged, a digest "
                        "deletes the manifest (not with -f or -a)")
    _add_config(p)
    _add_network(p)

    p = sub.add_parser("login", help="store registry credentials after checking them")
    p.add_argument("registry")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password", help="prefer --password-stdin or the prompt")
    p.add_argument("--password-stdin", action="store_true")
    _add_config(p)
    _add_network(p)

    p = sub.add_parser("logout", help="forget stored registry credentials")
    p.add_argument("registry")
    _add_config(p)

    p = sub.add_parser("init", help="generate a Kitfile for a directory (in a notebook: into "
                                    "a new %%%%kitfile cell; -o writes it)")
    p.add_argument("path", help="directory to examine")
    p.add_argument("--name", default="", help="name for the ModelKit")
    p.add_argument("--desc", default="", help="description for the ModelKit")
    p.add_argument("--author", default="", help="author for the ModelKit")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing Kitfile")
    p.add_argument("-o", "--output", nargs="?", const="", metavar="PATH",
                   help="write the Kitfile (default PATH: DIR/Kitfile; '-' prints it); in a "
                        "terminal it is always written")
    p.add_argument("--depth", type=go_int, default=0,
                   help="subdirectory levels examined file by file (default 0; -1: all)")

    p = sub.add_parser("diff", help="compare two ModelKits (prefix local:// or remote:// to "
                                    "choose where each is read from)")
    p.add_argument("ref1", metavar="MODELKIT1")
    p.add_argument("ref2", metavar="MODELKIT2")
    p.add_argument("--format", choices=("text", "json"), default="text")
    _add_config(p)
    _add_network(p)

    p = sub.add_parser("cache", help="size of $KITOPS_HOME/cache (info) or empty it (clear)")
    p.add_argument("action", choices=("info", "clear"))
    p.add_argument("--format", choices=("table", "json"), default="table")
    _add_config(p)

    p = sub.add_parser("import", help="download a Hugging Face or git repository and pack it "
                                      "as a ModelKit")
    p.add_argument("repository", metavar="REPOSITORY",
                   help="org/repo, datasets/org/repo, a Hugging Face URL or a git URL")
    p.add_argument("--ref", default="main", help="version (branch or tag) of the repository "
                                                 "to import (default main)")
    p.add_argument("--token", help="token to use for authenticating with the repository")
    p.add_argument("-t", "--tag", help="tag for the ModelKit (default '[repository]:latest')")
    p.add_argument("-f", "--file", help="Kitfile to use for packing ('-' reads standard input)")
    p.add_argument("--tool", help="tool for downloading: 'git' or 'hf' (default: detect from "
                                  "the repository)")
    p.add_argument("--concurrency", type=go_int, default=5,
                   help="maximum simultaneous downloads, for Hugging Face (default 5)")
    _add_config(p)
    _add_progress(p)

    sub.add_parser("version", help="version information")
    return parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings]


# -- dispatch ---------------------------------------------------------------------------------

def _net(args: argparse.Namespace) -> dict[str, Any]:
    return {"plain_http": args.plain_http, "tls_verify": args.tls_verify == "true",
            "concurrency": args.concurrency}


def _progress_mode(value: str) -> str:
    return {"plain": "text", "fancy": "auto"}.get(value, value)


def run(args: argparse.Namespace, ctx: Context | None = None) -> Any:
    """Run one parsed command; returns its result object (never prints itself)."""
    ctx = ctx or Context()
    handler = _HANDLERS[args.command]
    if getattr(args, "concurrency", None) is not None:
        try:  # kit's NetworkOptions.Complete, before all: the API's own rule and text
            COUNT.check(args.command, "concurrency", args.concurrency)
        except KitError as exc:  # kit's import says it unwrapped, its other commands wrapped
            if args.command == "import":
                raise
            raise KitError(f"Invalid arguments: {exc}") from None
    mode = _progress_mode(getattr(args, "progress", ctx.progress) or ctx.progress)
    if mode == "auto" and ctx.progress != "auto":
        mode = ctx.progress
    reporter = ctx.reporter_factory(mode)
    try:
        result = handler(args, ctx, reporter)
    except KitError as exc:
        reporter.close(error=exc)
        raise _without_passwords(exc, args) from None
    except OSError as exc:
        problem = system_problem(exc) or path_problem(exc)
        reporter.close(error=problem or exc)  # the display ends as failed, not half-done
        if problem is None:
            raise
        raise problem from None
    except BaseException as e:
        reporter.close(error=e)
        raise
    reporter.close()
    return result


def _without_passwords(exc: KitError, args: argparse.Namespace) -> KitError:
    """``exc``, or a KitError of the same text with every password typed into an argument
    (``user:secret@host/...``) shown as ``***``: a message may quote what it could not use,
    and the adapters print it into a notebook or a CI log."""
    secrets = [p for v in vars(args).values() if isinstance(v, str)
               for p in [password_in(v)] if p]
    text = redact(str(exc), secrets) if secrets else str(exc)
    if text == str(exc):
        return exc
    return KitError(text).with_hint(exc.hint) if exc.hint else KitError(text)


def _validate(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    return api.load("validate")(args.path, check_remote=args.check_remote, env=ctx.env)


def _pack(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    return api.load("pack")(args.directory, file=args.file, tag=args.tag,
                            compression=args.compression, layer_format=args.layer_format,
                            home=args.config, reporter=reporter,
                            push=args.push, use_model_pack=args.use_model_pack,
                            **_net(args))


def _unpack(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    # kit: --filter values when given, else the deprecated flags as one filter
    filters = args.filter or filters_from_flags(
        **{word: getattr(args, word) for word, _ in _DEPRECATED_FILTERS})
    return api.load("unpack")(args.ref, dir=args.dir, overwrite=args.overwrite,
                              ignore_existing=args.ignore_existing, filters=filters,
                              include_remote=args.include_remote, home=args.config,
                              remote_cache=not args.no_cache, reporter=reporter, **_net(args))


def _push(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    return api.load("push")(args.source, args.destination, home=args.config, reporter=reporter,
                            **_net(args))


def _pull(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    return api.load("pull")(args.ref, home=args.config, reporter=reporter, **_net(args))


def _list(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    if args.repository:
        result = api.load("list_remote")(args.repository, home=args.config, reporter=reporter,
                                         **_net(args))
    else:
        result = api.load("list_modelkits")(home=args.config, reporter=reporter)
    return result.with_format(args.format)


def _inspect(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    if args.remote:
        return api.load("inspect_remote")(args.ref, home=args.config, reporter=reporter,
                                          **_net(args))
    return api.load("inspect")(args.ref, home=args.config, reporter=reporter, **_net(args))


def _info(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    return api.load("info")(args.ref, home=args.config, filter=args.filter, remote=args.remote,
                            reporter=reporter, **_net(args))


def _tag(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    return api.load("tag")(args.source, args.target, home=args.config)


def _remove(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    if not args.ref and not args.all:
        raise CommandLineError("remove: modelkit is required for remove unless --all is "
                               "specified")  # kit's (cobra's Args) text
    if args.remote:
        if args.all or args.force:  # kit's command refuses both (its library takes force)
            raise KitError("Invalid arguments: cannot use --all or --force with --remote")
        net = {k: v for k, v in _net(args).items() if k != "concurrency"}
        return api.load("remove_remote")(args.ref, force=args.force, home=args.config,
                                         reporter=reporter, **net)
    return api.load("remove")(args.ref, force=args.force, all=args.all, home=args.config)


def _login(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    password = args.password
    if args.password_stdin:
        if password:
            raise KitError("Invalid arguments: cannot use both --password and --password-stdin")
        stream = ctx.stdin or sys.stdin
        password = stream.readline().rstrip("\r\n")
        if not password:
            raise KitError("Invalid arguments: failed to read password from stdin: got empty "
                           "string")
    username = args.username
    if username is None:
        if ctx.getpass is None:
            raise CommandLineError("login: -u/--username is required")
        username = input("Username: ")
    if password is None:
        if ctx.getpass is None:
            raise CommandLineError("login: give --password-stdin or run interactively")
        password = ctx.getpass("Password: ")
    return api.load("login")(args.registry, username, password, home=args.config,
                             reporter=reporter, plain_http=args.plain_http,
                             tls_verify=args.tls_verify == "true")


def _logout(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    return api.load("logout")(args.registry, home=args.config)


def _init(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    to_cell = args.output is None and ctx.next_cell is not None
    if ctx.next_cell is None and sys.stdin.isatty() and sys.stdout.isatty():
        # kit asks for what the flags did not give when it runs on a terminal
        args.name = args.name or input("Enter a name for the ModelKit: ")
        args.desc = args.desc or input("Enter a short description for the ModelKit: ")
        args.author = args.author or input("Enter an author for the ModelKit: ")
    result = api.load("init")(args.path, name=args.name, desc=args.desc, author=args.author,
                              force=args.force, output=args.output or None, write=not to_cell,
                              depth=args.depth, reporter=reporter)
    if to_cell and ctx.next_cell is not None:
        ctx.next_cell(result.cell)
    return result


def _diff(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    return api.load("diff")(args.ref1, args.ref2, home=args.config, reporter=reporter,
                            **_net(args))


def _cache(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    if args.action == "info":
        return api.load("cache_info")(home=args.config)
    return api.load("cache_clear")(home=args.config, reporter=reporter)


def _import(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    return api.load("import_repository")(args.repository, ref=args.ref, token=args.token,
                                         tag=args.tag,
                                         file=args.file, tool=args.tool,
                                         concurrency=args.concurrency, home=args.config,
                                         reporter=reporter, env=ctx.env)


def _version(args: argparse.Namespace, ctx: Context, reporter: Reporter) -> Any:
    return f"kit-jupyter {__version__} (Python {sys.version.split()[0]})"


_HANDLERS: dict[str, Callable[[argparse.Namespace, Context, Reporter], Any]] = {
    "validate": _validate, "pack": _pack, "unpack": _unpack, "push": _push, "pull": _pull,
    "list": _list, "inspect": _inspect, "info": _info, "tag": _tag, "remove": _remove,
    "login": _login, "logout": _logout, "version": _version, "init": _init,
    "diff": _diff, "cache": _cache, "import": _import,
}
