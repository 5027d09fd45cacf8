"""The public functions' arguments, checked where they come in.

``kit.unpack(5)`` must say which argument is wrong, not fail three modules down with ``'int'
object has no attribute 'find'``; ``kit.login(None, ...)`` must not try to reach a registry
called ``None``. :func:`arguments` wraps a public function with the kind of each argument that
a user passes (a reference, a path, a count); a value of the wrong type is a ``TypeError`` worded
as Python's own functions word it::

    unpack() argument 'ref' must be str, not int
    pack() argument 'home' must be str, os.PathLike or None, not int

A path holding a NUL character is a ``ValueError`` naming the argument (no system call takes
one), and a concurrency below 1 is kit's ``KitError``: ``invalid argument for concurrency (0):
must be at least 1``. Everything else about a value -- a malformed reference, a missing file
-- stays the command's to say, with kit's text.

The adapters pass strings from a parser, so they never meet these errors; they are for Python
callers. The wrapper keeps the function's name, docstring and signature (``help(kit.unpack)``,
``inspect.signature``), and a misspelt keyword is still Python's own ``TypeError``.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from kit_jupyter.errors import KitError

_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Kind:
    """What an argument must be: instances of ``types`` (``bool`` never counts as an int), said
    as ``what``; ``path`` adds the NUL check, ``count`` kit's lower bound of 1."""

    types: tuple[type, ...]
    what: str
    path: bool = False
    count: bool = False
    not_text: bool = False  # an iterable of values, where one str would be taken apart

    def check(self, function: str, name: str, value: Any) -> None:
        ok = isinstance(value, self.types) and not (
            isinstance(value, bool) and bool not in self.types)
        if not ok or (self.not_text and isinstance(value, (str, bytes))):
            raise TypeError(f"{function}() argument {name!r} must be {self.what}, "
                            f"not {type(value).__name__}")
        if self.path and value is not None and "\0" in os.fspath(value):
            raise ValueError(f"{function}() argument {name!r} holds a NUL character, which no "
                             f"path can: {value!r}")
        if self.count and value < 1:
            raise KitError(f"invalid argument for {name} ({value}): must be at least 1")


TEXT = Kind((str,), "str")
OPT_TEXT = Kind((str, type(None)), "str or None")
TEXT_OR_BYTES = Kind((str, bytes), "str or bytes")
PATH = Kind((str, os.PathLike), "str or os.PathLike", path=True)
OPT_PATH = Kind((str, os.PathLike, type(None)), "str, os.PathLike or None", path=True)
INT = Kind((int,), "int")
COUNT = Kind((int,), "int", count=True)
#: a list (or other iterable) of values such as ``--filter``'s, never one string
VALUES = Kind((Iterable, type(None)), "a list or None", not_text=True)


def arguments(**kinds: Kind) -> Callable[[_F], _F]:
    """Check the named arguments of the decorated function against their :class:`Kind` on
    every call, before it runs; arguments not named (and defaults) are not checked."""

    def decorate(fn: _F) -> _F:
        signature = inspect.signature(fn)
        unknown = set(kinds) - set(signature.parameters)
        assert not unknown, f"{fn.__qualname__} has no parameter {sorted(unknown)}"

        @functools.wraps(fn)
        def checked(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return fn(*args, **kwargs)  # Python's own message for a misspelt keyword
            for name, value in bound.arguments.items():
                kind = kinds.get(name)
                if kind is not None:
                    kind.check(fn.__name__, name, value)
            return fn(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate
