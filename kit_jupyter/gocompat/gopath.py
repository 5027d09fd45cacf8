"""Go's ``path.Clean`` for slash-separated paths, shared by validation, .kitignore and tar
writing: they must all agree with kit on what a path "is", so there is exactly one copy."""

from __future__ import annotations


def go_clean(path: str) -> str:
    """Unlike ``posixpath.normpath`` this folds a leading ``//`` and maps ``""`` to ``"."``."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(seg)
    out = "/".join(parts)
    if rooted:
        return "/" + out
    return out or "."
