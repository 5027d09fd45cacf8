"""Go's ``path.Clean`` (and ``filepath.IsLocal``) for slash-separated paths, shared by
validation, .kitignore, tar writing and unpack: they must all agree with kit on what a path
"is", so there is exactly one copy."""

from __future__ import annotations


def is_clean(path: str) -> bool:
    """``go_clean(path) == path`` without building anything, for the names a walk makes: not
    empty, no empty, ``.`` or ``..`` element, no trailing slash (``"/"`` alone is clean, but is
    answered by :func:`go_clean`'s general path)."""
    if not path or path[-1] == "/" or "//" in path:
        return False
    if "." not in path:
        return True
    framed = f"/{path}/"
    return "/./" not in framed and "/../" not in framed


def go_clean(path: str) -> str:
    """Unlike ``posixpath.normpath`` this folds a leading ``//`` and maps ``""`` to ``"."``.

    A path that is clean already comes back at once (:func:`is_clean`): pack cleans every name
    it walks, several times, and nearly all are."""
    if is_clean(path):
        return path
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


def go_is_local(path: str) -> bool:
    """Go's ``filepath.IsLocal`` on Unix: relative, and not climbing out once cleaned."""
    if not path or path.startswith("/"):
        return False
    if any(part in (".", "..") for part in path.split("/")):
        path = go_clean(path)
    return not (path == ".." or path.startswith("../"))
