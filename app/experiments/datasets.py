"""Labelled datasets: uploaded from a folder or an archive, checked (app.experiments.formats), stored
in the object store with a row per dataset.

Contracts:
- `upload` stores nothing unless the whole dataset checks: ValidationFailed lists every problem
  with its file and line. A name is a slug and unique ("name": already taken).
- Objects live in the `datasets` bucket under `<name>/<first 12 hex of the hash>/`: `index.json`
  (the items) and `files/<path>` (every file the items need). The row says where (`prefix`).
- `content` reads a dataset back: its items, and the bytes or text of any item's input.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.auth import Action, Actor, require
from app.catalog.archive import ArchiveLimits, archive_kind, extract_archive
from app.db import transaction
from app.errors import Message, Problem, ValidationFailed
from app.experiments.formats import Item, Parsed, read_dataset
from app.models import Dataset
from app.storage import ObjectStore

BUCKET = "datasets"
DEMO_DATASETS = Path(__file__).resolve().parents[2] / "demo_data" / "datasets"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,62}")


@dataclass(frozen=True)
class DatasetInfo:
    id: int
    name: str
    task: str
    items: int
    size_bytes: int
    sha256: str
    labels: list[str]
    created_by: str
    created_at: datetime

    def to_json(self) -> dict[str, object]:
        """The stable shape of `dataset list --json`."""
        return {"name": self.name, "task": self.task, "items": self.items, "size_bytes": self.size_bytes,
                "sha256": self.sha256, "labels": self.labels, "created_by": self.created_by,
                "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class DatasetContent:
    """A dataset read back: its row and its items, with a reader of the items' inputs."""
    info: DatasetInfo
    items: list[Item]
    prefix: str
    objects: ObjectStore

    def input_of(self, item: Item) -> str | bytes:
        """What an item's input is: its text, the text of its .txt file, or its image bytes."""
        if item.text is not None:
            return item.text
        data = self.objects.get(BUCKET, f"{self.prefix}/files/{item.file}")
        return data.decode("utf-8").strip() if str(item.file).lower().endswith(".txt") else data

    def ref_of(self, item: Item) -> str:
        """Where the item's input is: `datasets/<key>` for a file, else the item's place in the dataset."""
        return f"{BUCKET}/{self.prefix}/files/{item.file}" if item.file else f"{self.info.name}/{item.ref}"


def _info(row: Dataset) -> DatasetInfo:
    return DatasetInfo(row.id, row.name, row.task, row.items, row.size_bytes, row.sha256, list(row.labels or []),
                       row.created_by, row.created_at)


def get_dataset(s: Session, name: str) -> Dataset:
    """The row of dataset `name`; ValidationFailed ("dataset") when there is none."""
    row = s.scalar(select(Dataset).where(Dataset.name == name))
    if row is None:
        raise ValidationFailed([Problem("dataset", Message("dataset.missing", "no dataset named {name!r}", name=name))])
    return row


class Datasets:
    """Datasets in the object store; `workdir` holds archives while they are unpacked."""

    def __init__(self, sessions: sessionmaker[Session], objects: ObjectStore, workdir: Path,
                 limits: ArchiveLimits | None = None) -> None:
        self._sessions = sessions
        self._objects = objects
        self._workdir = workdir
        self._limits = limits or ArchiveLimits()

    def upload(self, actor: Actor, source: str | Path, *, name: str, task: str) -> DatasetInfo:
        """A dataset from a folder or an archive (.zip, .tar.gz, …) on this machine."""
        require(actor, Action.UPLOAD)
        require(actor, Action.UPLOAD_FROM_SERVER)
        path = Path(source)
        if not path.exists():
            raise ValidationFailed([Problem("source", Message("dataset.no_source", "{source}: no such folder or archive",
                                                              source=source))])
        return self._upload(actor, path, name, task)

    def upload_archive(self, actor: Actor, filename: str, data: bytes, *, name: str, task: str) -> DatasetInfo:
        """A dataset from an archive received from a browser (bytes, not a server path)."""
        require(actor, Action.UPLOAD)
        self._workdir.mkdir(parents=True, exist_ok=True)
        holder = Path(tempfile.mkdtemp(prefix="dataset-", dir=self._workdir))
        try:
            path = holder / (Path(filename).name or "dataset.zip")
            path.write_bytes(data)
            return self._upload(actor, path, name, task)
        finally:
            shutil.rmtree(holder, ignore_errors=True)

    def add_demo(self, actor: Actor) -> list[DatasetInfo]:
        """The project's labelled demo datasets (demo_data/datasets/index.json) that are not here
        yet, uploaded; returns those added (none when all are here)."""
        require(actor, Action.UPLOAD)
        have = {d.name for d in self.list(actor)}
        entries = json.loads((DEMO_DATASETS / "index.json").read_text())
        return [self._upload(actor, DEMO_DATASETS / e["folder"], e["name"], e["task"])
                for e in entries if e["name"] not in have]

    def list(self, actor: Actor) -> list[DatasetInfo]:
        """Every dataset, by name."""
        require(actor, Action.VIEW_SHOWCASE)
        with self._sessions() as s:
            return [_info(r) for r in s.scalars(select(Dataset).order_by(Dataset.name))]

    def content(self, actor: Actor, name: str) -> DatasetContent:
        """The dataset `name` with its items; ValidationFailed ("dataset") when there is none."""
        require(actor, Action.VIEW_SHOWCASE)
        with self._sessions() as s:
            row = get_dataset(s, name)
            info, prefix = _info(row), row.prefix
        index = json.loads(self._objects.get(BUCKET, f"{prefix}/index.json"))
        return DatasetContent(info, [Item.from_json(i) for i in index["items"]], prefix, self._objects)

    # --- internals ---------------------------------------------------------------------------------

    def _upload(self, actor: Actor, path: Path, name: str, task: str) -> DatasetInfo:
        if not NAME_RE.fullmatch(name or ""):
            raise ValidationFailed([Problem("name", Message("dataset.name_rule", "{name!r} is not a dataset name: 1-63 of a-z, "
                                                            "0-9, '-', '_', '.', starting with a letter or digit",
                                                            name=name))])
        with self._sessions() as s:
            if s.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
                raise ValidationFailed([Problem("name", _exists(name))])
        self._workdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="dataset-", dir=self._workdir) as tmp:
            root = self._unpack(path, Path(tmp))
            parsed = read_dataset(root, task)
            return self._store(actor, name, root, parsed)

    def _unpack(self, path: Path, tmp: Path) -> Path:
        """The folder holding the dataset: `path` itself, or the archive unpacked (descending into
        a single top-level folder, as archives of a folder have)."""
        if path.is_dir():
            return path
        if archive_kind(path) is None:
            raise ValidationFailed([Problem("source", Message("dataset.not_archive", "{file}: not a folder or an archive (.zip, .tar.gz, …)",
                                                              file=path.name))])
        extract_archive(path, tmp, self._limits)
        entries = [p for p in tmp.iterdir() if not p.name.startswith(("__MACOSX", "."))]
        return entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp

    def _store(self, actor: Actor, name: str, root: Path, parsed: Parsed) -> DatasetInfo:
        digest, size = _digest(root, parsed.files)
        prefix = f"{name}/{digest[:12]}"
        for rel in parsed.files:
            self._objects.put(BUCKET, f"{prefix}/files/{rel}", (root / rel).read_bytes())
        index = {"task": parsed.task, "labels": parsed.labels, "items": [i.to_json() for i in parsed.items]}
        self._objects.put(BUCKET, f"{prefix}/index.json", json.dumps(index, ensure_ascii=False).encode(),
                          "application/json")
        try:
            with transaction(self._sessions) as s:
                row = Dataset(name=name, task=parsed.task, items=len(parsed.items), size_bytes=size, sha256=digest,
                              labels=parsed.labels, prefix=prefix, created_by=actor.username)
                s.add(row)
                s.flush()
                return _info(row)
        except IntegrityError:
            raise ValidationFailed([Problem("name", _exists(name))]) from None


def _exists(name: str) -> Message:
    return Message("dataset.exists", "a dataset named {name!r} exists already", name=name)


def _digest(root: Path, files: list[str]) -> tuple[str, int]:
    """SHA-256 over the dataset's files (path and content, in path order), and their total size."""
    h, size = hashlib.sha256(), 0
    for rel in sorted(files):
        data = (root / rel).read_bytes()
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
        size += len(data)
    return h.hexdigest(), size
