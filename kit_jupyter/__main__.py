"""``python -m kit_jupyter``: the same commands as ``%kit``, for terminals and CI.

Exit status: 0 on success (and for ``validate`` when there are no errors, warnings allowed),
1 on a user error or an invalid Kitfile, 2 on bad arguments, 130 on Ctrl-C.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from kit_jupyter.errors import KitError, error_line
from kit_jupyter.ui import cli


def _render(result: Any, fmt: str | None) -> str | None:
    if result is None:
        return None
    if isinstance(result, str):
        return result
    if fmt == "json":
        if hasattr(result, "to_json"):
            return result.to_json()
        return json.dumps(result.data, ensure_ascii=False, indent=2)
    if hasattr(result, "text"):
        return result.text()
    from IPython.lib.pretty import pretty

    return pretty(result)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.build_parser(prog="python -m kit_jupyter")
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except cli.HelpShown:
        return 0
    except cli.CommandLineError as e:
        sys.stderr.write(parser.format_usage() + f"{e}\n")
        return 2
    ctx = cli.Context(progress="text" if sys.stderr.isatty() else "none")
    try:
        result = cli.run(args, ctx)
    except cli.CommandLineError as e:
        sys.stderr.write(f"{e}\n")
        return 2
    except KitError as e:
        message = error_line(e)
        sys.stderr.write(f"[ERROR] {message[:1].upper()}{message[1:]}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("[ERROR] Interrupted\n")
        return 130
    out = _render(result, getattr(args, "format", None))
    if out is not None and out.strip():
        sys.stdout.write(out.rstrip("\n") + "\n")
    if args.command == "validate" and not result.valid:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
