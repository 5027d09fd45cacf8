"""What local storage must look like after any sequence of commands, finished, concurrent or
killed: the invariants the stateful, concurrent and SIGKILL tests of local storage check.

Read straight from the files (``json`` and ``hashlib``, not the store's parsers), so a bug in
the store's own reading cannot hide one in its writing.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from kit_jupyter._fs import is_live


def _load(path: Path, problems: list[str]) -> object:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name}: not readable JSON ({exc})")
        return None


def _blob_ok(blobs: Path, digest: str, problems: list[str], why: str) -> bytes | None:
    algo, _, hexpart = digest.partition(":")
    path = blobs / hexpart
    if algo != "sha256" or not path.is_file():
        problems.append(f"{why}: blob {digest} missing")
        return None
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != hexpart:
        problems.append(f"{why}: blob {digest} does not hash to its name")
    return data


def storage_state(home: Path) -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    """What storage holds: ``{repo_key: {manifest digests}}`` and ``{(repo_key, tag): digest}``,
    read from the per-repository files."""
    root = home / "storage"
    repos: dict[str, set[str]] = {}
    tags: dict[tuple[str, str], str] = {}
    if not root.is_dir():
        return repos, tags
    for path in root.iterdir():
        for suffix in ("-index.json", "-tags.json"):
            if path.name.endswith(suffix) and not path.name.startswith("."):
                repo = base64.urlsafe_b64decode(path.name[:-len(suffix)]).decode()
                data = json.loads(path.read_bytes())
                if suffix == "-index.json":
                    repos[repo] = {d["digest"] for d in data["manifests"]}
                else:
                    tags.update({(repo, t): d["digest"] for t, d in data.items()})
    return repos, tags


def storage_problems(home: Path, *, strict: bool = True, live_ok: bool = False,
                     litter_ok: bool = False) -> list[str]:
    """Everything wrong with the storage under ``home`` (empty: nothing).

    Always: every JSON file parses; every manifest an index lists is stored, hashes to its
    name, and so does every blob it references; every tag names a manifest its repository
    lists; every blob hashes to its name; no temporary file (``kj-``, ``.part``) -- with
    ``live_ok``, none whose writer is dead (one of a process still running may be there);
    with ``litter_ok`` none is looked for (a SIGKILLed writer's, before the next command).
    With ``strict`` (storage that only this project's finished commands wrote): ``index.json``
    lists exactly the manifests of the repositories, and no blob is unreferenced."""
    problems: list[str] = []
    root = home / "storage"
    if not root.exists():
        return problems
    blobs = root / "blobs" / "sha256"
    for path in root.rglob("*"):
        name = path.name
        if not litter_ok and ("kj-" in name or name.endswith(".part")):
            if not (live_ok and is_live(name)):
                problems.append(f"temporary file left: {path.relative_to(root)}")
    top = _load(root / "index.json", problems) if (root / "index.json").exists() else {}
    top_digests = ({d["digest"] for d in top.get("manifests", [])}
                   if isinstance(top, dict) else set())
    try:
        repos, tags = storage_state(home)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [*problems, f"repository files unreadable: {exc!r}"]
    listed = top_digests.union(*repos.values())
    referenced: set[str] = set()
    for digest in sorted(listed):
        data = _blob_ok(blobs, digest, problems, "listed manifest")
        referenced.add(digest)
        if data is None:
            continue
        manifest = json.loads(data)
        for d in [manifest["config"], *manifest.get("layers", [])]:
            referenced.add(d["digest"])
            _blob_ok(blobs, d["digest"], problems, f"manifest {digest}")
    for (repo, tag), digest in sorted(tags.items()):
        if digest not in repos.get(repo, set()):
            problems.append(f"tag {repo}:{tag} names {digest}, which {repo} does not list")
    stored = {p.name for p in blobs.iterdir()} if blobs.is_dir() else set()
    for name in sorted(stored):
        if hashlib.sha256((blobs / name).read_bytes()).hexdigest() != name:
            problems.append(f"blob {name} does not hash to its name")
    if strict:
        union = set().union(*repos.values())
        if top_digests != union:
            problems.append(f"index.json lists {sorted(top_digests)}, the repositories "
                            f"{sorted(union)}")
        orphans = stored - {d.split(":", 1)[1] for d in referenced}
        if orphans:
            problems.append(f"unreferenced blobs: {sorted(orphans)}")
    return problems
