"""Local storage driven by random sequences of pack, tag, remove (by tag, by digest, ``-f``,
``--all``), list and info through the public API, checked after every step against a model
that knows only which tags exist and which manifests each repository lists.

A pack's manifest carries its creation time to the second, so the same context packed twice
gives the same manifest or two, as the clock decides; a replayed example must take the same
path, so the rules choose the second (one of three) and pack writes it."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import kit_jupyter.commands.pack as pack_module
from kit_jupyter.commands.local import info, list_modelkits, remove, tag
from kit_jupyter.commands.pack import DEFAULT_REPO_KEY, pack
from kit_jupyter.errors import NotFoundError
from kit_jupyter.kitfile.reference import display_repository
from tests.storage_check import storage_problems, storage_state

REPOS = ("a", "b", "c/d")
TAGS = ("v1", "v2", "latest")
SECONDS = ("2025-01-01T00:00:00Z", "2025-01-01T00:00:01Z", "2025-01-01T00:00:02Z")

#: three tiny contexts: "one" and "two" share their weights (one layer blob, two configs),
#: "three" has a docs layer only
CONTEXTS = {
    "one": {"Kitfile": "manifestVersion: 1.0.0\npackage:\n  name: one\nmodel:\n"
                       "  path: model.bin\n", "model.bin": "shared weights\n"},
    "two": {"Kitfile": "manifestVersion: 1.0.0\npackage:\n  name: two\nmodel:\n"
                       "  path: model.bin\ndocs:\n  - path: README.md\n",
            "model.bin": "shared weights\n", "README.md": "# two\n"},
    "three": {"Kitfile": "manifestVersion: 1.0.0\npackage:\n  name: three\ndocs:\n"
                         "  - path: notes.md\n", "notes.md": "notes\n"},
}


def make_contexts(root: Path) -> dict[str, Path]:
    out = {}
    for name, files in CONTEXTS.items():
        for rel, text in files.items():
            (root / name / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / name / rel).write_text(text)
        out[name] = root / name
    return out


def key(repo: str) -> str:
    return f"localhost/{repo}"


class StorageMachine(RuleBasedStateMachine):
    contexts: dict[str, Path] = {}
    homes: Path = Path()
    clock: list[str] = [SECONDS[0]]   # what pack writes as its creation time
    _count = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        self.home = Path(tempfile.mkdtemp(dir=self.homes, prefix=f"h{next(self._count)}-"))
        self.repos: dict[str, set[str]] = {}            # repo key -> manifest digests
        self.tags: dict[tuple[str, str], str] = {}      # (repo key, tag) -> digest
        self.names: dict[str, str] = {}                 # digest -> package name

    # -- model helpers ------------------------------------------------------------------
    def _drop_manifest(self, repo: str, digest: str) -> None:
        self.repos[repo].discard(digest)
        if not self.repos[repo]:
            del self.repos[repo]
        for k in [k for k, d in self.tags.items() if k[0] == repo and d == digest]:
            del self.tags[k]

    def _add(self, repo: str, digest: str, tags: list[str]) -> None:
        self.repos.setdefault(repo, set()).add(digest)
        for t in tags:
            self.tags[(repo, t)] = digest

    def _listed(self) -> list[tuple[str, str]]:
        return sorted((r, d) for r, ds in self.repos.items() for d in ds
                      if r != DEFAULT_REPO_KEY)

    # -- rules ---------------------------------------------------------------------------
    @rule(ctx=st.sampled_from(sorted(CONTEXTS)), repo=st.sampled_from(REPOS),
          tags=st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True),
          second=st.sampled_from(SECONDS))
    def pack_tagged(self, ctx: str, repo: str, tags: list[str], second: str) -> None:
        self.clock[0] = second
        res = pack(self.contexts[ctx], tag=f"{repo}:{','.join(tags)}", home=self.home)
        self._add(key(repo), res.digest, tags)
        self.names[res.digest] = ctx

    @rule(ctx=st.sampled_from(sorted(CONTEXTS)), second=st.sampled_from(SECONDS))
    def pack_untagged(self, ctx: str, second: str) -> None:
        self.clock[0] = second
        res = pack(self.contexts[ctx], home=self.home)
        self._add(DEFAULT_REPO_KEY, res.digest, [])
        self.names[res.digest] = ctx

    @precondition(lambda self: self.tags)
    @rule(data=st.data(), repo=st.sampled_from(REPOS), new=st.sampled_from(TAGS))
    def tag_a_tag(self, data: st.DataObject, repo: str, new: str) -> None:
        (src_repo, src_tag) = data.draw(st.sampled_from(sorted(self.tags)))
        digest = self.tags[(src_repo, src_tag)]
        res = tag(f"{display_repository(src_repo)}:{src_tag}", f"{repo}:{new}", home=self.home)
        assert res.digest == digest
        self._add(key(repo), digest, [new])

    @precondition(lambda self: self._listed())
    @rule(data=st.data(), repo=st.sampled_from(REPOS), new=st.sampled_from(TAGS))
    def tag_a_digest(self, data: st.DataObject, repo: str, new: str) -> None:
        src_repo, digest = data.draw(st.sampled_from(self._listed()))
        tag(f"{display_repository(src_repo)}@{digest}", f"{repo}:{new}", home=self.home)
        self._add(key(repo), digest, [new])

    @rule(repo=st.sampled_from(REPOS), src=st.sampled_from(TAGS), new=st.sampled_from(TAGS))
    def tag_a_missing_tag(self, repo: str, src: str, new: str) -> None:
        if (key(repo), src) in self.tags:
            return
        with pytest.raises(NotFoundError):
            tag(f"{repo}:{src}", f"{repo}:{new}", home=self.home)

    @rule(repo=st.sampled_from(REPOS),
          refs=st.lists(st.sampled_from(TAGS), min_size=1, max_size=3, unique=True),
          force=st.booleans())
    def remove_tags(self, repo: str, refs: list[str], force: bool) -> None:
        rk = key(repo)
        if (rk, refs[0]) not in self.tags:
            with pytest.raises(NotFoundError):
                remove(f"{repo}:{','.join(refs)}", force=force, home=self.home)
            return
        remove(f"{repo}:{','.join(refs)}", force=force, home=self.home)
        for t in refs:  # kit's rule, one reference after the other
            digest = self.tags.get((rk, t))
            if digest is None:
                continue
            holders = [k for k, d in self.tags.items() if k[0] == rk and d == digest]
            if force or len(holders) <= 1:
                self._drop_manifest(rk, digest)
            else:
                del self.tags[(rk, t)]

    @precondition(lambda self: self._listed())
    @rule(data=st.data())
    def remove_digest(self, data: st.DataObject) -> None:
        repo, digest = data.draw(st.sampled_from(self._listed()))
        remove(f"{display_repository(repo)}@{digest}", home=self.home)
        self._drop_manifest(repo, digest)

    @rule(force=st.booleans())
    def remove_all(self, force: bool) -> None:
        remove(all=True, force=force, home=self.home)
        for repo, digests in list(self.repos.items()):
            for digest in list(digests):
                if force or not any(k[0] == repo and d == digest
                                    for k, d in self.tags.items()):
                    self._drop_manifest(repo, digest)

    @precondition(lambda self: self.tags)
    @rule(data=st.data())
    def info_of_a_tag(self, data: st.DataObject) -> None:
        repo, t = data.draw(st.sampled_from(sorted(self.tags)))
        res = info(f"{display_repository(repo)}:{t}", home=self.home)
        assert res.kitfile["package"]["name"] == self.names[self.tags[(repo, t)]]

    # -- checks --------------------------------------------------------------------------
    @invariant()
    def storage_is_what_the_model_says(self) -> None:
        assert storage_problems(self.home) == []
        assert storage_state(self.home) == (self.repos, self.tags)

    @invariant()
    def list_agrees(self) -> None:
        rows = {(m["repo"], m["digest"], tuple(m["tags"] or ()), m["modelName"])
                for m in list_modelkits(home=self.home).data}
        want = {(display_repository(r) or "<none>", d,
                 tuple(sorted(t for (rr, t), dd in self.tags.items() if rr == r and dd == d)),
                 self.names[d])
                for r, ds in self.repos.items() for d in ds}
        assert rows == want


def test_storage_follows_its_model(tmp_path, monkeypatch):
    monkeypatch.setattr(pack_module, "created_annotation", lambda: StorageMachine.clock[0])
    StorageMachine.contexts = make_contexts(tmp_path / "contexts")
    StorageMachine.homes = tmp_path / "homes"
    StorageMachine.homes.mkdir()
    run_state_machine_as_test(StorageMachine, settings=settings(
        max_examples=40, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))
