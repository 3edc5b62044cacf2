"""Algorithms, versions and manifests: the upload flow and the catalog's read side.

An upload is checked completely before anything is stored: the source (folder, archive, git
URL), the manifest, the requirements, the name. Every problem is reported at once, and a
rejected upload leaves no repository, commit or row. An accepted upload is one commit plus a
tag `vN` in the algorithm's git repository and one `algorithm_versions` row.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from app.catalog.archive import ArchiveLimits
from app.auth import Action, Actor, require
from app.catalog.codestore.base import CodeStore, CodeStoreError, check_repo_name
from app.db import transaction
from app.errors import Message, Missing, Problem, ValidationFailed
from orchestration.locks import file_lock
from app.catalog.manifest import Manifest, ManifestError, load_manifest
from app.models import Algorithm, AlgorithmRepository, AlgorithmVersion
from app.catalog.sources import URL_PREFIXES, SCP_RE, SourceError, check_requirements, fetch_source, split_ref

COMMITTER_DOMAIN = "algostage.local"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")


class UploadRejected(ValidationFailed):
    """The upload was refused; nothing was stored. `problems` lists every reason."""


@dataclass(frozen=True)
class VersionChanges:
    """What changed from one version to the next: files, manifest fields, parameters."""
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    manifest: dict[str, tuple[Any, Any]] = field(default_factory=dict)   # field -> (old, new)
    params_added: list[str] = field(default_factory=list)
    params_removed: list[str] = field(default_factory=list)
    params_changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.modified or self.deleted or self.manifest or self.params_added
                    or self.params_removed or self.params_changed)


@dataclass(frozen=True)
class VersionInfo:
    number: int
    tag: str
    commit_sha: str
    manifest: dict[str, Any]
    files: list[str]
    message: str
    created_by: str
    created_at: Any
    requirements_hash: str


@dataclass(frozen=True)
class AlgorithmInfo:
    name: str
    title: str
    description: str
    task: str
    repository: str
    versions: list[VersionInfo]

    @property
    def latest(self) -> VersionInfo:
        return self.versions[-1]


@dataclass(frozen=True)
class UploadResult:
    algorithm: str
    version: int
    tag: str
    commit_sha: str
    created: bool
    changes: VersionChanges | None


def reads_server_files(source: str) -> bool:
    """True when `source` names something on the server's own disk (a folder, an archive path, a
    local git repository, a file:// URL) rather than a remote git URL."""
    url, _ = split_ref(source.strip())
    remote = url.startswith(tuple(p for p in URL_PREFIXES if p != "file://")) or bool(SCP_RE.fullmatch(url))
    return not remote


def requirements_hash(package: Path) -> str:
    """Hash of the package's requirements (normalised lines), used to share environments."""
    path = package / "requirements.txt"
    lines = sorted(ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")) \
        if path.exists() else []
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def manifest_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Fields of the manifest that changed, params compared separately."""
    keys = (set(old) | set(new)) - {"params"}
    changed = {k: (old.get(k), new.get(k)) for k in sorted(keys) if old.get(k) != new.get(k)}
    old_p, new_p = old.get("params") or {}, new.get("params") or {}
    return {
        "manifest": changed,
        "params_added": sorted(set(new_p) - set(old_p)),
        "params_removed": sorted(set(old_p) - set(new_p)),
        "params_changed": {k: (old_p[k], new_p[k]) for k in sorted(set(old_p) & set(new_p)) if old_p[k] != new_p[k]},
    }


class Catalog:
    def __init__(self, sessions: sessionmaker[Session], codestore: CodeStore, workdir: Path,
                 limits: ArchiveLimits | None = None, *, incoming: Path | None = None) -> None:
        self._sessions = sessions
        self._codestore = codestore
        self._workdir = workdir
        self._limits = limits or ArchiveLimits()
        self.incoming = incoming or workdir.parent / "incoming"   # where `git push` over HTTP lands

    # --- upload ---------------------------------------------------------------------------------

    def upload(self, actor: Actor, source: str, *, name: str | None = None, message: str = "",
               allow_redirects: bool = False) -> UploadResult:
        """Check and store a new version. Raises UploadRejected with every problem; stores nothing then."""
        require(actor, Action.UPLOAD)
        if reads_server_files(source):
            require(actor, Action.UPLOAD_FROM_SERVER)
        return self._upload(actor, source, name, message, allow_redirects)

    def upload_archive(self, actor: Actor, filename: str, data: bytes, *, name: str | None = None,
                       message: str = "", allow_redirects: bool = False) -> UploadResult:
        """Upload an archive received from a browser (bytes, not a server path)."""
        require(actor, Action.UPLOAD)
        self._workdir.mkdir(parents=True, exist_ok=True)
        holder = Path(tempfile.mkdtemp(prefix="archive-", dir=self._workdir))
        try:
            path = holder / (Path(filename).name or "upload.zip")
            path.write_bytes(data)
            return self._upload(actor, str(path), name, message or f"upload of {path.name}", allow_redirects)
        finally:
            shutil.rmtree(holder, ignore_errors=True)

    def upload_push(self, actor: Actor, name: str, commit: str, message: str = "") -> UploadResult:
        """A new version of `name` from `commit`, pushed over HTTP into the platform's incoming
        repository of that name (git's smart HTTP, api/git.py); checked like any upload."""
        require(actor, Action.UPLOAD)
        repo = self.incoming / f"{check_repo_name(name)}.git"
        return self._upload(actor, f"{repo}#{commit}", name, message or f"git push of {commit[:10]}", False)

    def upload_linked(self, actor: Actor, name: str, commit: str, message: str = "") -> UploadResult:
        """A new version of `name` from `commit` of the upstream repository an admin linked to it
        (a Gitea or GitHub repository whose signed webhook names the commit)."""
        require(actor, Action.UPLOAD)
        with self._sessions() as s:
            repo = s.scalar(select(AlgorithmRepository).join(Algorithm).where(Algorithm.name == name))
        if repo is None or not repo.upstream_url:
            raise Missing([Problem("upstream", Message("algorithm.no_upstream", "{name} has no linked upstream repository",
                                                             name=name))])
        return self._upload(actor, f"{repo.upstream_url}#{commit}", name,
                            message or f"webhook: {commit[:10]} of {repo.upstream_url}", False)

    def _upload(self, actor: Actor, source: str, name: str | None, message: str,
                allow_redirects: bool) -> UploadResult:
        if allow_redirects:
            require(actor, Action.ALLOW_REQUIREMENT_REDIRECTS)
        self._workdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="upload-", dir=self._workdir))
        try:
            package = self._fetch(source, tmp)
            manifest = self._check(package, name, allow_redirects)
            with self._name_lock(manifest.name):
                self._recheck_name(manifest)
                return self._store(actor, package, manifest, message or f"upload from {Path(source).name or source}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _name_lock(self, name: str) -> AbstractContextManager[None]:
        """Uploads of one name on this host run one at a time, so "first version" is decided once."""
        return file_lock(self._workdir / "locks" / f"upload-{name}.lock")

    def _recheck_name(self, manifest: Manifest) -> None:
        problems = self._name_problems(manifest)
        if problems:
            raise UploadRejected(problems)

    def _fetch(self, source: str, tmp: Path) -> Path:
        try:
            return fetch_source(source, tmp, self._limits)
        except SourceError as e:
            raise UploadRejected([Problem("source", p) for p in e.problems]) from None

    def _check(self, package: Path, name: str | None, allow_redirects: bool) -> Manifest:
        problems: list[Problem] = []
        manifest: Manifest | None = None
        try:
            manifest = load_manifest(package)
            if name:
                manifest = manifest.model_copy(update={"name": name})
        except ManifestError as e:
            problems += [Problem(p.field if p.field.startswith("algorithm.yaml") else f"algorithm.yaml: {p.field}",
                                 p.reason) for p in e.problems]
        req = package / "requirements.txt"
        if req.exists():
            problems += [Problem("requirements.txt", p) for p in check_requirements(req.read_text(), allow_redirects)]
        if manifest is not None:
            problems += self._name_problems(manifest)
        if problems:
            raise UploadRejected(problems)
        assert manifest is not None
        return manifest

    def _name_problems(self, manifest: Manifest) -> list[Problem]:
        if not NAME_RE.fullmatch(manifest.name):
            return [Problem("name", Message("algorithm.name_rule", "{name!r} is not a valid name: lower-case letters, "
                                            "digits and -", name=manifest.name))]
        with self._sessions() as s:
            existing = s.scalar(select(Algorithm).where(Algorithm.name == manifest.name))
        if existing is not None and existing.task != manifest.task.value:
            return [Problem("name", Message("algorithm.name_taken", "{name!r} is taken by another algorithm (task {task}); "
                                            "choose another name", name=manifest.name, task=existing.task))]
        return []

    def _store(self, actor: Actor, package: Path, manifest: Manifest, message: str) -> UploadResult:
        snapshot = manifest.model_dump(mode="json", exclude_none=True)
        previous = self._latest_version(manifest.name)
        number = previous.number + 1 if previous else 1
        created_repo = previous is None
        try:
            location = self._codestore.ensure_repository(manifest.name, manifest.title)
            info = self._codestore.commit_version(
                manifest.name, package, tag=f"v{number}", message=message, author_name=actor.username,
                author_email=f"{actor.username.replace(':', '-')}@{COMMITTER_DOMAIN}")
        except CodeStoreError as e:
            if created_repo:
                self._codestore.delete_repository(manifest.name)
            raise UploadRejected([Problem("code store", e.message)]) from None
        changes = self._changes(manifest.name, previous, f"v{number}", snapshot)
        try:
            self._insert(actor, manifest, snapshot, location, number, info, message, package)
        except IntegrityError:
            if created_repo:
                self._codestore.delete_repository(manifest.name)
            raise UploadRejected([Problem("name", Message("algorithm.concurrent", "{name!r} was uploaded concurrently; retry",
                                                          name=manifest.name))]) from None
        return UploadResult(manifest.name, number, info.tag, info.sha, created_repo, changes)

    def _changes(self, name: str, previous: AlgorithmVersion | None, new_tag: str,
                 snapshot: dict[str, Any]) -> VersionChanges | None:
        if previous is None:
            return None
        files = self._codestore.diff_files(name, previous.tag, new_tag)
        return VersionChanges(files["added"], files["modified"], files["deleted"],
                              **manifest_changes(previous.manifest, snapshot))

    def _insert(self, actor: Actor, manifest: Manifest, snapshot: dict[str, Any], location: str, number: int,
                info: Any, message: str, package: Path) -> None:
        with transaction(self._sessions) as s:
            algo = s.scalar(select(Algorithm).where(Algorithm.name == manifest.name))
            if algo is None:
                algo = Algorithm(name=manifest.name, title=manifest.title, description=manifest.description or "",
                                 task=manifest.task.value, created_by=actor.username)
                algo.repository = AlgorithmRepository(backend=self._codestore.kind, location=location)
                s.add(algo)
            else:
                algo.title, algo.description = manifest.title, manifest.description or ""
            s.flush()
            s.add(AlgorithmVersion(algorithm_id=algo.id, number=number, tag=info.tag, commit_sha=info.sha,
                                   manifest=snapshot, files=list(info.files), message=message,
                                   requirements_hash=requirements_hash(package), created_by=actor.username))

    def _latest_version(self, name: str) -> AlgorithmVersion | None:
        with self._sessions() as s:
            return s.scalar(select(AlgorithmVersion).join(Algorithm).where(Algorithm.name == name)
                            .order_by(AlgorithmVersion.number.desc()).limit(1))

    # --- reading --------------------------------------------------------------------------------

    def list(self, actor: Actor) -> list[AlgorithmInfo]:
        require(actor, Action.VIEW_CATALOG)
        with self._sessions() as s:
            algos = s.scalars(select(Algorithm).options(selectinload(Algorithm.versions),
                                                        selectinload(Algorithm.repository))
                              .order_by(Algorithm.name))
            return [self._info(a) for a in algos]

    def get(self, actor: Actor, name: str) -> AlgorithmInfo:
        """One algorithm with its versions; unknown name: ValidationFailed."""
        found = [a for a in self.list(actor) if a.name == name]
        if not found:
            raise Missing([Problem("algorithm", Message("algorithm.missing", "no algorithm {name!r}", name=name))])
        return found[0]

    def changes(self, actor: Actor, name: str, old: int, new: int) -> VersionChanges:
        algo = self.get(actor, name)
        versions = {v.number: v for v in algo.versions}
        missing = [n for n in (old, new) if n not in versions]
        if missing:
            raise Missing([Problem("version", Message("version.missing", "{name} has no version {version}", name=name,
                                                      version=n)) for n in missing])
        files = self._codestore.diff_files(name, versions[old].tag, versions[new].tag)
        return VersionChanges(files["added"], files["modified"], files["deleted"],
                              **manifest_changes(versions[old].manifest, versions[new].manifest))

    def refs(self, actor: Actor, name: str) -> dict[str, list[str]]:
        """Branches and tags of the algorithm's repository in the code store."""
        require(actor, Action.VIEW_CATALOG)
        try:
            return self._codestore.list_refs(name)
        except CodeStoreError as e:
            raise ValidationFailed([Problem("code store", e.message)]) from None

    def read_file(self, actor: Actor, name: str, number: int, path: str) -> bytes:
        require(actor, Action.VIEW_CATALOG)
        return self._codestore.read_file(name, f"v{number}", path)

    @staticmethod
    def _info(a: Algorithm) -> AlgorithmInfo:
        versions = [VersionInfo(v.number, v.tag, v.commit_sha, v.manifest, v.files, v.message, v.created_by,
                                v.created_at, v.requirements_hash) for v in a.versions]
        return AlgorithmInfo(a.name, a.title, a.description, a.task,
                             a.repository.location if a.repository else "", versions)
