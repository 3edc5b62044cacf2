"""fetch_source with real folders, archives and git repositories (cloned with real git)."""
from __future__ import annotations

import os
from pathlib import Path

import git
import pytest

from app.catalog.archive import ArchiveLimits
from app.catalog.sources import SourceError, fetch_source
from tests import hostile_archives as ha

PACKAGE = {"algorithm.yaml": "name: demo\n", "predict.py": "def predict(x):\n    return x\n",
           "samples/one.txt": "hello\n"}
LIMITS = ArchiveLimits()


def files_of(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


# --- folders -------------------------------------------------------------------------------------

def test_folder_is_copied_without_git_caches_and_venvs(tmp_path, tmp):
    src = write(tmp_path / "src", {**PACKAGE, ".git/HEAD": "ref: x\n", "__pycache__/p.pyc": "x",
                                   ".venv/bin/python": "x", "sub/__pycache__/q.pyc": "x"})
    os.symlink("predict.py", src / "alias.py")                 # a link inside the package is fine
    package = fetch_source(str(src), tmp, LIMITS)
    assert package.is_relative_to(tmp)
    assert files_of(package) == {**PACKAGE, "alias.py": PACKAGE["predict.py"]}
    assert (package / "alias.py").is_symlink() and os.readlink(package / "alias.py") == "predict.py"


def test_folder_with_links_leaving_it_is_refused(tmp_path, tmp):
    src = write(tmp_path / "src", PACKAGE)
    os.symlink("/etc/passwd", src / "passwd")
    os.symlink("../../secret", src / "samples" / "up")
    with pytest.raises(SourceError) as info:
        fetch_source(str(src), tmp, LIMITS)
    assert info.value.problems == [
        "passwd: symbolic link to an absolute path (/etc/passwd); use a relative link or a copy",
        "samples/up: symbolic link pointing outside the package (../../secret)"]
    assert list(tmp.iterdir()) == []


def test_folder_over_the_size_limit_is_refused(tmp_path, tmp):
    src = write(tmp_path / "src", PACKAGE)
    (src / "weights.bin").write_bytes(b"\0" * 3000)
    with pytest.raises(SourceError, match="weights.bin: larger than the per-file limit"):
        fetch_source(str(src), tmp, ArchiveLimits(max_file_bytes=2000))


def test_missing_and_unsupported_sources(tmp_path, tmp):
    with pytest.raises(SourceError, match="does not exist"):
        fetch_source(str(tmp_path / "nowhere"), tmp, LIMITS)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(SourceError, match="unsupported type"):
        fetch_source(str(notes), tmp, LIMITS)
    with pytest.raises(SourceError, match="no source given"):
        fetch_source("  ", tmp, LIMITS)


# --- archives ------------------------------------------------------------------------------------

def test_zip_with_a_wrapping_top_folder_is_descended(tmp_path, tmp):
    archive = ha.make_zip(tmp_path / "project-main.zip",
                          {f"project-main/{k}": v.encode() for k, v in PACKAGE.items()}
                          | {"__MACOSX/project-main/._predict.py": b"junk"})
    package = fetch_source(str(archive), tmp, LIMITS)
    assert package.name == "project-main"
    assert files_of(package) == PACKAGE


def test_tar_gz_extracts_the_package(tmp_path, tmp):
    archive = ha.make_tar(tmp_path / "pkg.tar.gz", {k: v.encode() for k, v in PACKAGE.items()}, dirs=("./",))
    package = fetch_source(str(archive), tmp, LIMITS)
    assert files_of(package) == PACKAGE


def test_archive_problems_become_source_problems(tmp_path, tmp):
    archive = ha.zip_with_names(tmp_path / "evil.zip", ["algorithm.yaml", "../evil", "/tmp/evil-abs"])
    with pytest.raises(SourceError) as info:
        fetch_source(str(archive), tmp, LIMITS)
    assert info.value.problems == ["evil.zip: '../evil': contains a '..' component",
                                   "evil.zip: '/tmp/evil-abs': is an absolute path"]
    assert not (tmp.parent / "evil").exists()


# --- git -----------------------------------------------------------------------------------------

@pytest.fixture
def origin(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A repository with tag v1 (PACKAGE), branch `next` (a README more) and main a commit later."""
    path = tmp_path / "origin"
    repo = git.Repo.init(path, initial_branch="main")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "t").set_value("user", "email", "t@x")
    write(path, PACKAGE)
    repo.git.add(A=True)
    repo.git.commit(m="v1")
    repo.git.tag("-a", "v1", "-m", "v1")
    shas = {"v1": repo.head.commit.hexsha}
    repo.git.checkout("-b", "next")
    write(path, {"README.md": "next\n"})
    repo.git.add(A=True)
    repo.git.commit(m="next")
    repo.git.checkout("main")
    write(path, {"predict.py": "def predict(x):\n    return [x]\n"})
    repo.git.commit(a=True, m="main moves on")
    shas["main"] = repo.head.commit.hexsha
    return path, shas


def test_git_file_url_with_a_tag(origin, tmp):
    path, _ = origin
    package = fetch_source(f"file://{path}#v1", tmp, LIMITS)
    assert files_of(package) == PACKAGE and not (package / ".git").exists()


def test_git_file_url_with_a_branch(origin, tmp):
    path, _ = origin
    package = fetch_source(f"file://{path}#next", tmp, LIMITS)
    assert files_of(package) == {**PACKAGE, "README.md": "next\n"}


def test_git_default_branch_and_commit_sha(origin, tmp, tmp_path):
    path, shas = origin
    assert "return [x]" in (fetch_source(f"file://{path}", tmp, LIMITS) / "predict.py").read_text()
    other = tmp_path / "other"
    other.mkdir()
    assert files_of(fetch_source(f"file://{path}#{shas['v1'][:12]}", other, LIMITS)) == PACKAGE


def test_local_bare_repository_path_ending_in_git(origin, tmp, tmp_path):
    path, _ = origin
    bare = tmp_path / "mirror.git"
    git.Repo.clone_from(str(path), str(bare), bare=True)
    assert files_of(fetch_source(f"{bare}#v1", tmp, LIMITS)) == PACKAGE


def test_git_link_leaving_the_package_is_refused(tmp_path, tmp):
    path = tmp_path / "linky"
    repo = git.Repo.init(path, initial_branch="main")
    write(path, PACKAGE)
    os.symlink("/etc/passwd", path / "requirements.txt")
    repo.git.add(A=True)
    repo.git.commit(m="x", author="t <t@x>", env={"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"})
    with pytest.raises(SourceError, match="requirements.txt: symbolic link to an absolute path"):
        fetch_source(f"file://{path}", tmp, LIMITS)


def test_unknown_ref_and_bad_urls_give_clear_errors(origin, tmp):
    path, _ = origin
    with pytest.raises(SourceError, match="clone of file://.* failed: no branch, tag or commit 'nope'"):
        fetch_source(f"file://{path}#nope", tmp, LIMITS)
    with pytest.raises(SourceError, match="clone of https://127.0.0.1:9/nothing.git failed: .*"):
        fetch_source("https://127.0.0.1:9/nothing.git", tmp, LIMITS)
    with pytest.raises(SourceError, match="clone of file:///nonexistent/repo.git failed"):
        fetch_source("file:///nonexistent/repo.git", tmp, LIMITS)
    with pytest.raises(SourceError, match="not a valid branch, tag or commit"):
        fetch_source(f"file://{path}#--upload-pack=touch", tmp, LIMITS)
    with pytest.raises(SourceError, match="downloading archives by URL is not supported"):
        fetch_source("https://example.com/pkg.zip", tmp, LIMITS)


def test_credentials_in_a_url_are_masked_in_errors(tmp):
    with pytest.raises(SourceError) as info:
        fetch_source("https://user:hunter2@127.0.0.1:9/x.git", tmp, LIMITS)
    assert "hunter2" not in str(info.value) and "user:***@" in str(info.value)
