"""Fetching an uploaded algorithm package into a private temporary directory, and checking its
requirements before anything is stored.

A SOURCE is a folder on the server, an archive (.zip, .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz) or
a git URL with an optional `#ref` (branch, tag or commit). Whatever it is, the result is a plain
directory inside `tmp` with no `.git`, no caches and no links leaving the package, and with a
single wrapping folder (`project-main/algorithm.yaml`) descended into.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Collection
from pathlib import Path

import git
from packaging.requirements import InvalidRequirement, Requirement

from app.catalog.archive import ArchiveError, ArchiveLimits, archive_kind, extract_archive, normalise_name
from app.catalog.codestore.base import git_env, git_failure, mask
from app.errors import AlgoStageError, Message

IGNORED = {".git", "__pycache__", ".venv"}
JUNK = {"__MACOSX", ".DS_Store"}
MANIFEST = "algorithm.yaml"
CLONE_TIMEOUT = 600
URL_PREFIXES = ("https://", "http://", "ssh://", "git://", "file://")
SCP_RE = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!//)\S+")
SHA_RE = re.compile(r"[0-9a-fA-F]{7,40}")
REF_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]*")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".whl")


class SourceError(AlgoStageError):
    """The source cannot be used. `problems` lists every reason (one string each)."""
    code = "bad_source"

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(Message("problems", "{problems}", problems=self.problems))


def fetch_source(source: str, tmp: Path, limits: ArchiveLimits) -> Path:
    """Bring `source` into `tmp` (an existing private directory) and return the package directory.

    Raises SourceError when the source does not exist, is of an unsupported type, cannot be
    cloned (with git's reason), or its content breaks the limits or safety rules (archive
    problems, links pointing outside the package, special files).
    """
    text = source.strip()
    if not text:
        raise SourceError([Message("source.none", "no source given: a folder, an archive or a git URL")])
    if is_git_source(text):
        root = _clone(text, tmp, limits)
    else:
        root = _local(Path(text).expanduser(), tmp / "package", limits)
    _strip(root)
    return package_root(root)


def is_git_source(text: str) -> bool:
    """True for git URLs (https, http, ssh, git, file, user@host:path) and local paths ending in .git."""
    url, _ = split_ref(text)
    return url.startswith(URL_PREFIXES) or bool(SCP_RE.fullmatch(url)) or url.rstrip("/").endswith(".git")


def split_ref(text: str) -> tuple[str, str]:
    """("url", "ref") from "url#ref"; ref is "" when absent."""
    url, sep, ref = text.rpartition("#")
    return (url, ref.strip()) if sep else (text, "")


def package_root(root: Path) -> Path:
    """Descend through single wrapping folders (`project-main/…`) until algorithm.yaml or a
    folder with more than one entry is found."""
    while not (root / MANIFEST).exists():
        entries = [e for e in root.iterdir() if e.name not in JUNK]
        if len(entries) != 1 or not entries[0].is_dir() or entries[0].is_symlink():
            break
        root = entries[0]
    return root


# --- folders and archives ------------------------------------------------------------------------

def _local(path: Path, dest: Path, limits: ArchiveLimits) -> Path:
    if not path.exists() and not path.is_symlink():
        raise SourceError([Message("source.missing", "{path}: does not exist", path=str(path))])
    if path.is_dir():
        problems = tree_problems(path, limits, skip=IGNORED)
        if problems:
            raise SourceError(problems)
        shutil.copytree(path, dest, symlinks=True, ignore=shutil.ignore_patterns(*IGNORED))
        return dest
    if path.is_file() and archive_kind(path):
        dest.mkdir()
        try:
            extract_archive(path, dest, limits)
        except ArchiveError as e:
            raise SourceError([Message("source.in_archive", "{file}: {problem}", file=path.name, problem=p)
                               for p in e.problems]) from None
        return dest
    raise SourceError([Message("source.unsupported", "{path}: unsupported type; give a folder, a .zip, .tar, .tar.gz, "
                               ".tar.bz2 or .tar.xz archive, or a git URL", path=str(path))])


def tree_problems(root: Path, limits: ArchiveLimits, skip: Collection[str] = ()) -> list[str]:
    """Everything wrong with a directory tree as a package: links leaving it, special files,
    and the entry/size limits. Directories named in `skip` are not looked into."""
    problems: list[str] = []
    real_root = root.resolve()
    count = total = 0
    for current, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in dirs + files:
            entry = Path(current, name)
            rel = entry.relative_to(root)
            count += 1
            problems += _entry_problems(entry, rel, real_root, limits)
            if not entry.is_symlink() and entry.is_file():
                total += entry.stat().st_size
        if count > limits.max_entries:
            return problems + [Message("source.entries", "more than {count} files and folders", count=limits.max_entries)]
    if total > limits.max_total_bytes:
        problems.append(Message("source.total_over", "{size:.1f} MiB is over the limit of {limit:.1f} MiB", size=total / 2**20,
                                limit=limits.max_total_bytes / 2**20))
    return problems


def _entry_problems(entry: Path, rel: Path, real_root: Path, limits: ArchiveLimits) -> list[str]:
    """What is wrong with one entry: its name by the same rules as an archive entry's (no control
    characters, backslashes, over-long paths), then its kind, links and size."""
    _, why = normalise_name(rel.as_posix(), limits)
    if why:
        return [f"{rel.as_posix()!r}: {why}"]
    mode = entry.lstat().st_mode
    if stat.S_ISLNK(mode):
        target = os.readlink(entry)
        if os.path.isabs(target):
            return [f"{rel}: symbolic link to an absolute path ({target}); use a relative link or a copy"]
        if not (entry.parent.resolve() / target).resolve().is_relative_to(real_root):
            return [f"{rel}: symbolic link pointing outside the package ({target})"]
        return []
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return [f"{rel}: special files (devices, fifos, sockets) are not allowed"]
    if stat.S_ISREG(mode) and entry.lstat().st_size > limits.max_file_bytes:
        return [Message("source.file_over", "{path}: larger than the per-file limit of {limit:.1f} MiB", path=str(rel),
                        limit=limits.max_file_bytes / 2**20)]
    return []


def _strip(root: Path) -> None:
    """Remove what is never part of a package: git metadata (nested ones would become
    submodule links), caches, virtualenvs, macOS archive debris."""
    for current, dirs, files in os.walk(root):
        for name in [d for d in dirs if d in IGNORED | JUNK]:
            path = Path(current, name)
            if path.is_symlink():
                path.unlink()
            else:
                shutil.rmtree(path)
            dirs.remove(name)
        for name in [f for f in files if f in JUNK or f == ".git"]:
            Path(current, name).unlink()


# --- git -----------------------------------------------------------------------------------------

def _clone(text: str, tmp: Path, limits: ArchiveLimits) -> Path:
    url, ref = split_ref(text)
    problems = _url_problems(url) + _ref_problems(ref)
    if problems:
        raise SourceError(problems)
    target = tmp / "clone"
    env = git_env()
    if "GIT_SSH_COMMAND" not in os.environ:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    try:
        git.Git.check_unsafe_protocols(url)
        if ref and SHA_RE.fullmatch(ref):
            _clone_commit(url, ref, target, env)
        else:
            options = ["--depth=1", "--no-tags"] + ([f"--branch={ref}"] if ref else [])
            git.Git(str(tmp)).clone(*options, "--", url, str(target), env=env, kill_after_timeout=CLONE_TIMEOUT)
    except git.GitCommandError as e:
        raise SourceError([Message("source.clone_failed", "clone of {url} failed: {reason}", url=mask(url, ()),
                                   reason=_clone_reason(e, ref))]) from e
    except git.UnsafeProtocolError as e:
        raise SourceError([f"{mask(url, ())}: {e}"]) from e
    shutil.rmtree(target / ".git", ignore_errors=True)
    problems = tree_problems(target, limits)
    if problems:
        raise SourceError(problems)
    return target


def _clone_commit(url: str, sha: str, target: Path, env: dict[str, str]) -> None:
    """A commit cannot be cloned shallowly by name everywhere: clone fully, then check it out."""
    git.Git(str(target.parent)).clone("--no-checkout", "--", url, str(target), env=env,
                                      kill_after_timeout=CLONE_TIMEOUT)
    git.Git(str(target)).checkout("--detach", sha, env=env, kill_after_timeout=CLONE_TIMEOUT)


def _clone_reason(e: git.GitCommandError, ref: str) -> str:
    reason = git_failure(e)
    if ref and ("not found in upstream" in reason or "did not match any" in reason or "reference is not a tree"
                in reason or "unable to read tree" in reason):
        return f"no branch, tag or commit {ref!r} ({reason})"
    if "timeout" in str(e).lower() or "timed out" in str(e).lower():
        return f"took longer than {CLONE_TIMEOUT} s"
    return reason


def _url_problems(url: str) -> list[str]:
    if not url or url.startswith("-") or any(c.isspace() for c in url):
        return [f"{url!r} is not a valid git URL"]
    if url.startswith(("http://", "https://")) and url.lower().endswith(ARCHIVE_SUFFIXES):
        return [f"{mask(url, ())}: downloading archives by URL is not supported; upload the file or give a git URL"]
    if not url.startswith(URL_PREFIXES) and not SCP_RE.fullmatch(url) and not Path(url).exists():
        return [f"{url}: does not exist"]
    return []


def _ref_problems(ref: str) -> list[str]:
    if ref and (not REF_RE.fullmatch(ref) or ".." in ref or ref.endswith((".lock", "/", "."))):
        return [f"{ref!r} is not a valid branch, tag or commit"]
    return []


# --- requirements --------------------------------------------------------------------------------

COMMENT_RE = re.compile(r"(^|\s+)#.*$")
DRIVE_RE = re.compile(r"^[A-Za-z]:[\\/]")
URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
REDIRECT_OPTIONS = {
    "-i": "another package index", "--index-url": "another package index",
    "--extra-index-url": "an extra package index", "-f": "a find-links location",
    "--find-links": "a find-links location", "--trusted-host": "an untrusted host",
    "-e": "an editable install", "--editable": "an editable install",
    "-r": "an included requirements file", "--requirement": "an included requirements file",
    "-c": "an included constraints file", "--constraint": "an included constraints file",
    "--no-index": "no package index",
}
SAFE_OPTIONS = {"--pre", "--prefer-binary", "--only-binary", "--no-binary", "--require-hashes"}
NOT_ALLOWED = "; not allowed unless an admin allows install redirects"
DIRECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*@")


def check_requirements(text: str, allow_redirects: bool) -> list[str]:
    """One message per offending line of a requirements.txt, each starting with "line N:".

    Offending: options that redirect installs (index URLs, find-links, trusted hosts, editable
    installs, -r/-c includes), local paths, URLs and `name @ URL` direct references — unless
    `allow_redirects`; unknown options, and lines that are not valid requirement specifiers,
    always. An empty list means the file is acceptable.
    """
    problems: list[str] = []
    for number, line in _logical_lines(text):
        problem = _line_problem(line, allow_redirects)
        if problem:
            problems.append(f"line {number}: {problem}")
    return problems


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, content) with comments removed and backslash continuations joined."""
    result: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        line = COMMENT_RE.sub("", pending + raw).strip()
        pending = ""
        if line:
            result.append((start, line))
    if pending.strip():
        result.append((start, COMMENT_RE.sub("", pending).strip()))
    return result


def _line_problem(line: str, allow_redirects: bool) -> str | None:
    if line.startswith("-"):
        return _option_problem(line, allow_redirects)
    spec, options = _split_options(line)
    for option in options:
        if not option.startswith("--hash"):
            return f"{option.split('=')[0]!r} is not supported in requirement lines"
    redirect = _redirect_kind(spec)
    if redirect:
        return None if allow_redirects else f"installs from {redirect} ({spec}){NOT_ALLOWED}"
    try:
        req = Requirement(spec)
    except InvalidRequirement as e:
        return f"{spec!r} is not a valid requirement: {str(e).splitlines()[0]}"
    if req.url and not allow_redirects:
        return f"installs from a direct reference ({spec}){NOT_ALLOWED}"
    return None


def _option_problem(line: str, allow_redirects: bool) -> str | None:
    token = line.split()[0]
    name = token.split("=")[0] if token.startswith("--") else token[:2]
    if name in REDIRECT_OPTIONS:
        return None if allow_redirects else f"{name} redirects installs to {REDIRECT_OPTIONS[name]}{NOT_ALLOWED}"
    if name in SAFE_OPTIONS:
        return None
    return f"option {name!r} is not supported"


def _split_options(line: str) -> tuple[str, list[str]]:
    """pip's rule: the requirement runs up to the first token starting with '-'."""
    tokens = line.split()
    for i, token in enumerate(tokens):
        if token.startswith("-") and i > 0:
            return " ".join(tokens[:i]), tokens[i:]
    return line, []


def _redirect_kind(spec: str) -> str | None:
    """Whether a requirement is really a URL or a local path, which pip would install from."""
    head = spec.split(";")[0].strip()
    if DIRECT_RE.match(head):
        return None      # `name @ url`: a valid requirement whose url the caller checks
    if URL_RE.match(head) or head.startswith(("git+", "hg+", "svn+", "bzr+", "file:")):
        return "a URL"
    if head.startswith((".", "/", "~")) or DRIVE_RE.match(head) or "\\" in head or "/" in head.split("@")[0] \
            or head.lower().endswith(ARCHIVE_SUFFIXES):
        return "a local path"
    return None
