"""Code store backend: bare git repositories under one directory (`<root>/<name>.git`).

Commits are made with git plumbing straight into the bare repository: a temporary index is
filled from the package directory (`add -A`), written as a tree, committed, and `main` is moved
with compare-and-swap; then the annotated tag is created. Each repository has its own lock file,
so concurrent uploads of different algorithms never wait for each other and uploads of the
same algorithm are serialised (across processes too).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

import git
from gitdb.exc import BadName, BadObject

from orchestration.locks import file_lock
from app.catalog.codestore.base import (BRANCH, CodeStoreError, CommitInfo, check_repo_name, git_env, git_failure,
                                version_order)

GIT_ERRORS = (git.GitError, BadName, BadObject, ValueError, KeyError, OSError)
T = TypeVar("T")


class BareRepo:
    """Operations on one bare repository, shared by the local and the Gitea backends.
    Methods raise GitPython errors; callers translate them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.repo = git.Repo(path)

    @classmethod
    def create(cls, path: Path, description: str = "") -> BareRepo:
        path.parent.mkdir(parents=True, exist_ok=True)
        git.Repo.init(path, bare=True, mkdir=True, initial_branch=BRANCH, env=git_env())
        if description:
            (path / "description").write_text(description.replace("\n", " ") + "\n")
        return cls(path)

    def head(self) -> str | None:
        """The commit sha of main, None before the first commit."""
        try:
            return self.repo.git.rev_parse("--verify", "--quiet", f"refs/heads/{BRANCH}^{{commit}}", env=git_env())
        except git.GitCommandError:
            return None

    def has_tag(self, tag: str) -> bool:
        try:
            self.repo.git.rev_parse("--verify", "--quiet", f"refs/tags/{tag}", env=git_env())
            return True
        except git.GitCommandError:
            return False

    def resolves(self, ref: str) -> bool:
        try:
            self.repo.git.rev_parse("--verify", "--quiet", f"{_ref(ref)}^{{commit}}", env=git_env())
            return True
        except git.GitCommandError:
            return False

    def commit(self, package_dir: Path, *, tag: str, message: str, author_name: str,
               author_email: str) -> tuple[CommitInfo, str | None]:
        """Commit package_dir as the whole tree on main and tag it. Returns the commit and the
        previous main (for `undo`). A tag that exists already: CodeStoreError, nothing changed."""
        self.repo.git.check_ref_format(f"refs/tags/{_ref(tag)}")
        if self.has_tag(tag):
            raise CodeStoreError(f"tag {tag!r} already exists in {self.path.name}")
        identity = _identity(author_name, author_email)
        tree = self._write_tree(package_dir)
        parent = self.head()
        args = [tree, "-m", message] + (["-p", parent] if parent else [])
        sha = self.repo.git.commit_tree(*args, env=git_env(**identity))
        self.repo.git.update_ref(f"refs/heads/{BRANCH}", sha, parent or "0" * 40, env=git_env())
        try:
            self.repo.git.tag("-a", tag, sha, "-m", message, env=git_env(**identity))
        except git.GitCommandError:
            self.undo(tag, sha, parent)
            raise
        return CommitInfo(sha, tag, self.files(sha)), parent

    def undo(self, tag: str, sha: str, parent: str | None) -> None:
        """Take back a commit made by `commit` (when it could not be published)."""
        if self.has_tag(tag):
            self.repo.git.update_ref("-d", f"refs/tags/{tag}", env=git_env())
        if parent:
            self.repo.git.update_ref(f"refs/heads/{BRANCH}", parent, sha, env=git_env())
        else:
            self.repo.git.update_ref("-d", f"refs/heads/{BRANCH}", sha, env=git_env())

    def _write_tree(self, package_dir: Path) -> str:
        with tempfile.TemporaryDirectory(prefix="algostage-index-") as tmp:
            env = git_env(GIT_DIR=str(self.path), GIT_WORK_TREE=str(package_dir),
                          GIT_INDEX_FILE=str(Path(tmp) / "index"))
            worktree = git.Git(str(package_dir))
            worktree.add("--all", "--force", "--", ".", env=env)
            return worktree.write_tree(env=env)

    def files(self, ref: str) -> list[str]:
        out = self.repo.git.ls_tree("-r", "-z", "--name-only", f"{_ref(ref)}^{{tree}}", env=git_env())
        return sorted(p for p in out.split("\0") if p)

    def diff(self, old_ref: str, new_ref: str) -> dict[str, list[str]]:
        out = self.repo.git.diff("--name-status", "--no-renames", "-z", f"{_ref(old_ref)}^{{commit}}",
                                 f"{_ref(new_ref)}^{{commit}}", "--", env=git_env())
        fields = [f for f in out.split("\0") if f]
        result: dict[str, list[str]] = {"added": [], "modified": [], "deleted": []}
        for status, path in zip(fields[::2], fields[1::2]):
            key = {"A": "added", "D": "deleted"}.get(status[:1], "modified")
            result[key].append(path)
        return {k: sorted(v) for k, v in result.items()}

    def export(self, ref: str, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="algostage-index-") as tmp:
            env = git_env(GIT_DIR=str(self.path), GIT_WORK_TREE=str(dest), GIT_INDEX_FILE=str(Path(tmp) / "index"))
            worktree = git.Git(str(dest))
            worktree.read_tree(f"{_ref(ref)}^{{tree}}", env=env)
            worktree.checkout_index("--all", "--force", env=env)
        return dest

    def read(self, ref: str, path: str) -> bytes:
        parts = [p for p in path.strip("/").split("/") if p not in ("", ".")]
        if not parts or ".." in parts:
            raise CodeStoreError(f"{path!r} is not a file path")
        obj = self.repo.commit(_ref(ref)).tree / "/".join(parts)
        if obj.type != "blob":
            raise CodeStoreError(f"{path!r} is a directory")
        return obj.data_stream.read()

    def refs(self) -> dict[str, list[str]]:
        out = self.repo.git.for_each_ref("--format=%(refname)", "refs/heads", "refs/tags", env=git_env())
        names = out.splitlines()
        branches = sorted(n.removeprefix("refs/heads/") for n in names if n.startswith("refs/heads/"))
        tags = sorted((n.removeprefix("refs/tags/") for n in names if n.startswith("refs/tags/")), key=version_order)
        return {"branches": branches, "tags": tags}


def _ref(ref: str) -> str:
    """A ref as a revision argument; never something git could read as an option."""
    if not ref or ref.startswith("-") or any(c.isspace() for c in ref):
        raise CodeStoreError(f"{ref!r} is not a valid ref")
    return ref


def _identity(name: str, email: str) -> dict[str, str]:
    clean_name = "".join(c for c in name if c not in "<>\n\r") or "unknown"
    clean_email = "".join(c for c in email if c not in "<>\n\r ") or "unknown@localhost"
    return {"GIT_AUTHOR_NAME": clean_name, "GIT_AUTHOR_EMAIL": clean_email,
            "GIT_COMMITTER_NAME": clean_name, "GIT_COMMITTER_EMAIL": clean_email}


class LocalCodeStore:
    """Bare repositories at `root/<name>.git`. Locations returned are filesystem paths."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        return self.root / f"{check_repo_name(name)}.git"

    def _lock(self, name: str) -> AbstractContextManager[None]:
        return file_lock(self.root / ".locks" / f"{check_repo_name(name)}.lock")

    def _open(self, name: str) -> BareRepo:
        path = self._path(name)
        if not (path / "HEAD").is_file():
            raise CodeStoreError(f"no repository {name!r} in {self.root}")
        try:
            return BareRepo(path)
        except GIT_ERRORS as e:
            raise CodeStoreError(f"repository {name!r} cannot be opened: {e}") from e

    def ensure_repository(self, name: str, description: str = "") -> str:
        path = self._path(name)
        with self._lock(name):
            if not (path / "HEAD").is_file():
                try:
                    BareRepo.create(path, description)
                except GIT_ERRORS as e:
                    raise CodeStoreError(f"cannot create repository {name!r}: {git_failure(e)}") from e
        return str(path)

    def commit_version(self, name: str, package_dir: Path, *, tag: str, message: str, author_name: str,
                       author_email: str) -> CommitInfo:
        with self._lock(name):
            repo = self._open(name)
            try:
                info, _ = repo.commit(package_dir, tag=tag, message=message, author_name=author_name,
                                      author_email=author_email)
            except GIT_ERRORS as e:
                raise CodeStoreError(f"commit to {name!r} failed: {git_failure(e)}") from e
        return info

    def diff_files(self, name: str, old_ref: str, new_ref: str) -> dict[str, list[str]]:
        return _translate(name, lambda: self._open(name).diff(old_ref, new_ref))

    def export(self, name: str, ref: str, dest: Path) -> Path:
        return _translate(name, lambda: self._open(name).export(ref, dest))

    def read_file(self, name: str, ref: str, path: str) -> bytes:
        return _translate(name, lambda: self._open(name).read(ref, path), f"no file {path!r} at {ref!r}")

    def list_refs(self, name: str) -> dict[str, list[str]]:
        return _translate(name, lambda: self._open(name).refs())

    def delete_repository(self, name: str) -> None:
        with self._lock(name):
            shutil.rmtree(self._path(name), ignore_errors=True)

    def test_connection(self) -> str:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CodeStoreError(f"cannot create {self.root}: {e}") from e
        if not os.access(self.root, os.W_OK):
            raise CodeStoreError(f"{self.root} is not writable")
        count = len(list(self.root.glob("*.git")))
        return f"Local repositories in {self.root} ({count} repositories), {git.Git().version()}"


def _translate(name: str, action: Callable[[], T], missing: str = "") -> T:
    """Run a read operation, turning git errors into CodeStoreError."""
    try:
        return action()
    except CodeStoreError:
        raise
    except KeyError as e:
        raise CodeStoreError(f"{name}: {missing or 'not found'}") from e
    except GIT_ERRORS as e:
        raise CodeStoreError(f"{name}: {git_failure(e)}") from e
