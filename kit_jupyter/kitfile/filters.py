"""``kit unpack --filter`` grammar (spec §11.3): ``<types>[:<ids>]``, repeatable, any match wins.

kit matches ids exactly against an entry's name or path and treats model parts as ``model``;
those rules (including the quirk that ``model:`` matches entries with an empty name) are kept so
a filter selects the same layers here as with kit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kit_jupyter.errors import FilterError

# filter type -> layer kinds it selects (kinds as in kitfile.LayerEntry, plus "kitfile")
FILTER_TYPES: dict[str, frozenset[str]] = {
    "kitfile": frozenset({"kitfile"}),
    "model": frozenset({"model", "modelpart"}),
    "datasets": frozenset({"dataset"}),
    "code": frozenset({"code"}),
    "prompts": frozenset({"prompt"}),
    "docs": frozenset({"docs"}),
    "mcpservers": frozenset({"mcpserver"}),
}
# kit joins its list of valid types with ", " (kit's list ends at docs; mcpservers came later)
_TYPE_LIST = ", ".join(FILTER_TYPES)
# Kinds whose entries have a name that ids are matched against (code and docs have none).
_NAMED = frozenset({"model", "modelpart", "dataset", "prompt", "mcpserver"})
# Callers may name a kind by its filter word or media-type base; all mean the same entries.
_KIND_ALIASES = {
    "datasets": "dataset", "prompts": "prompt", "mcpservers": "mcpserver",
    "mcpServers": "mcpserver", "mcpServer": "mcpserver", "mcpb": "mcpserver", "doc": "docs",
    "config": "kitfile", "parts": "modelpart",
}


def normalize_kind(kind: str) -> str:
    return _KIND_ALIASES.get(kind, kind)


@dataclass(frozen=True)
class Filter:
    types: tuple[str, ...]  # filter type words as given, e.g. ("model", "datasets")
    ids: tuple[str, ...] = ()  # empty: every entry of the types

    @property
    def kinds(self) -> frozenset[str]:
        out: set[str] = set()
        for t in self.types:
            out |= FILTER_TYPES[t]
        return frozenset(out)

    def matches(self, kind: str, name: str = "", path: str = "") -> bool:
        kind = normalize_kind(kind)
        if kind not in self.kinds:
            return False
        if kind == "kitfile" or not self.ids:
            return True
        if kind in _NAMED and name in self.ids:
            return True
        return path in self.ids


def parse_filter(text: str) -> Filter:
    """One ``--filter`` value; raises FilterError with kit's wrapped text."""
    parts = text.split(":")
    if len(parts) > 2:
        raise FilterError(
            f"Invalid filter '{text}': invalid filter: should be in format "
            "<type1>,<type2>[:<filter1>,<filter2>]"
        )
    types = parts[0].split(",")
    for t in types:
        if t not in FILTER_TYPES:
            raise FilterError(
                f"Invalid filter '{text}': invalid filter type {t} (must be one of {_TYPE_LIST})"
            )
    ids = tuple(parts[1].split(",")) if len(parts) == 2 else ()
    return Filter(tuple(types), ids)


def parse_filters(values: Iterable[str | Filter] | None) -> list[Filter]:
    """kit's ``--filter`` strings parsed (a bad one is kit's one-line FilterError); filters
    already parsed (the Python API may pass them) are taken as they are."""
    return [v if isinstance(v, Filter) else parse_filter(v) for v in values or ()]


def filters_from_flags(
    *, kitfile: bool = False, model: bool = False, code: bool = False, datasets: bool = False,
    docs: bool = False,
) -> list[Filter]:
    """kit's deprecated ``--kitfile --model --code --datasets --docs`` flags as one filter,
    which ``unpack`` uses when no ``--filter`` is given (kit's ``unpackOptions.complete``).

    An empty list means no deprecated flag was set: everything is unpacked.
    """
    chosen = [
        word for word, on in (("kitfile", kitfile), ("model", model), ("docs", docs),
                              ("datasets", datasets), ("code", code)) if on
    ]
    return [Filter(tuple(chosen))] if chosen else []


def matches(filters: list[Filter], kind: str, name: str = "", path: str = "") -> bool:
    """True when the entry is to be unpacked: no filters, or any filter matches."""
    if not filters:
        return True
    return any(f.matches(kind, name, path) for f in filters)


def restrict(filters: list[Filter], type_word: str) -> list[Filter] | None:
    """The filters a referenced ModelKit is unpacked with (kit's ``unpackRemote``): only
    ``type_word`` (``model`` for a parent, ``datasets`` for a dataset's ModelKit) is taken from
    it. No filters: everything of that type. Otherwise each filter that names the type, with
    its other types dropped and its ids kept (so ``datasets:train`` also picks ``train`` inside
    the referenced ModelKit); None when no filter names the type (nothing is taken)."""
    if type_word not in FILTER_TYPES:
        raise ValueError(f"unknown filter type {type_word}")
    if not filters:
        return [Filter((type_word,))]
    kept = [Filter((type_word,), f.ids) for f in filters if type_word in f.types]
    return kept or None
