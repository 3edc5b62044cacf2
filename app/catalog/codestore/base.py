"""The code store contract: where algorithm code lives, one git repository per algorithm.

Every upload is one commit on branch `main` plus an annotated tag (`v1`, `v2`, …). Backends
(local bare repositories, Gitea) implement `CodeStore`; every git or HTTP failure is translated
into `CodeStoreError` at the boundary, with secrets masked.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable
from app.errors import AlgoStageError

BRANCH = "main"
REPO_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class CodeStoreError(AlgoStageError):
    """A code store operation failed; the message is safe to show (no secrets)."""
    code = "codestore"


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tag: str
    files: list[str] = field(default_factory=list)   # sorted paths in the commit


@runtime_checkable
class CodeStore(Protocol):
    """One git repository per algorithm name. All methods raise CodeStoreError on failure,
    including an unknown repository or ref (except where noted)."""

    kind: str   # "local" | "gitea"

    def ensure_repository(self, name: str, description: str = "") -> str:
        """Create the repository if missing; return its location (path or clone URL). Idempotent."""
        ...

    def commit_version(self, name: str, package_dir: Path, *, tag: str, message: str,
                       author_name: str, author_email: str) -> CommitInfo:
        """Make the repository content exactly `package_dir`'s files (removed files are deleted):
        one commit on `main` and an annotated `tag` on it. A tag that exists already is an error
        and leaves the repository unchanged."""
        ...

    def diff_files(self, name: str, old_ref: str, new_ref: str) -> dict[str, list[str]]:
        """Sorted paths under "added", "modified" and "deleted" from old_ref to new_ref."""
        ...

    def export(self, name: str, ref: str, dest: Path) -> Path:
        """Write ref's files (no .git) into `dest` (created if missing) and return it."""
        ...

    def read_file(self, name: str, ref: str, path: str) -> bytes:
        """The content of `path` at `ref`."""
        ...

    def delete_repository(self, name: str) -> None:
        """Remove the repository; a missing one is not an error."""
        ...

    def list_refs(self, name: str) -> dict[str, list[str]]:
        """{"branches": [...], "tags": [...]}; tags in version order (v2 before v10)."""
        ...

    def test_connection(self) -> str:
        """A human sentence saying what is reachable; CodeStoreError when it is not."""
        ...


def check_repo_name(name: str) -> str:
    """The name if it is a safe repository name, else CodeStoreError."""
    if not REPO_NAME_RE.fullmatch(name) or name.endswith(".git"):
        raise CodeStoreError(f"{name!r} is not a valid repository name (letters, digits, '.', '_', '-')")
    return name


def version_order(tag: str) -> tuple[object, ...]:
    """Sort key putting v2 before v10."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", tag))


def git_env(config: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """Environment for a git subprocess: never prompt, no hooks, no line-ending conversion, and
    `config` passed through GIT_CONFIG_* variables (kept out of command lines and config files).
    The operator's system and global git config (proxies, CAs) still apply."""
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", "GCM_INTERACTIVE": "never"}
    items = {"core.autocrlf": "false", "core.safecrlf": "false", "core.hooksPath": "/dev/null",
             **(config or {})}
    env["GIT_CONFIG_COUNT"] = str(len(items))
    for i, (key, value) in enumerate(items.items()):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    env.update(extra)
    return env


def git_failure(e: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """A short reason from a GitPython error: the fatal/error lines of stderr, secrets masked."""
    stderr = getattr(e, "stderr", "") or ""
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    stderr = re.sub(r"^\s*stderr:\s*'?", "", str(stderr)).rstrip().removesuffix("'")
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    reasons = [ln for ln in lines if not ln.startswith(("Cloning into", "warning:", "hint:", "To ", "Done",
                                                                "Please make sure", "and the repository exists"))] or lines
    text = "; ".join(reasons)[:500] or str(e)[:500]
    return mask(text, secrets)


def mask(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return re.sub(r"(://[^/\s:@]+:)[^@\s/]+@", r"\1***@", text)
