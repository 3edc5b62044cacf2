"""Object storage for demo media and run artifacts: a local directory by default, MinIO/S3
through the minio SDK when configured. Same bucket/key layout on both."""
from __future__ import annotations

import errno
import hashlib
import io
import mimetypes
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol
from app.errors import AlgoStageError, Message

DEMO_BUCKET = "demo-media"
RESULTS_BUCKET = "results"
KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/ ()]{0,400}")


class StorageError(AlgoStageError):
    """An object operation failed; the message is fit to show a user."""
    code = "storage"


class ObjectNotFound(StorageError):
    code = "object_not_found"
    pass


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    content_type: str
    modified: datetime
    etag: str = ""


def _no_object(bucket: str, key: str) -> Message:
    return Message("storage.missing", "{object} does not exist", object=f"{bucket}/{key}")


def check_key(key: str) -> str:
    """Keys are relative paths: no leading slash, no `..`, no backslash, printable characters."""
    if not KEY_RE.fullmatch(key) or ".." in key.split("/") or "//" in key or key.endswith("/"):
        raise StorageError(f"invalid object key {key!r}")
    return key


def guess_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


class ObjectStore(Protocol):
    kind: str

    def put(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo: ...
    def get(self, bucket: str, key: str) -> bytes: ...
    def stat(self, bucket: str, key: str) -> ObjectInfo | None: ...
    def list(self, bucket: str, prefix: str = "") -> list[ObjectInfo]: ...
    def delete(self, bucket: str, key: str) -> None: ...


class LocalObjectStore:
    """Objects as files under `root/bucket/key`; writes are atomic (temp file + rename)."""
    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, bucket: str, key: str) -> Path:
        return self.root / check_key(bucket) / check_key(key)

    def put(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        """Stores the object whole or not at all: StorageError ("disk full: …" when the disk is) and
        no trace of the attempt when it cannot be written."""
        path = self._path(bucket, key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise StorageError(_write_failed(e, f"{bucket}/{key}", len(data))) from e
        return self._info(bucket, key, path)

    def get(self, bucket: str, key: str) -> bytes:
        path = self._path(bucket, key)
        if not path.is_file():
            raise ObjectNotFound(_no_object(bucket, key))
        return path.read_bytes()

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        path = self._path(bucket, key)
        return self._info(bucket, key, path) if path.is_file() else None

    def list(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        base = self.root / check_key(bucket)
        if not base.is_dir():
            return []
        found = [p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")]
        infos = [self._info(bucket, p.relative_to(base).as_posix(), p) for p in found]
        return sorted((i for i in infos if i.key.startswith(prefix)), key=lambda i: i.key)

    def delete(self, bucket: str, key: str) -> None:
        self._path(bucket, key).unlink(missing_ok=True)

    @staticmethod
    def _info(bucket: str, key: str, path: Path) -> ObjectInfo:
        st = path.stat()
        return ObjectInfo(bucket, key, st.st_size, guess_type(key),
                          datetime.fromtimestamp(st.st_mtime, timezone.utc), f"{st.st_size:x}-{int(st.st_mtime)}")


def _write_failed(error: OSError, name: str, size: int) -> str:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full: the object store has no room for {name} ({size:,} bytes); nothing was stored"
    return f"{name} could not be stored: {error.strerror or error}"


class MinioObjectStore:
    """Objects in MinIO or any S3 endpoint through the minio client (buckets created on demand)."""
    kind = "minio"

    def __init__(self, client: "Minio") -> None:  # noqa: F821 - imported lazily below
        self._client = client
        self._buckets: set[str] = set()

    def _bucket(self, bucket: str) -> str:
        from minio.error import S3Error
        if bucket not in self._buckets:
            try:
                if not self._client.bucket_exists(check_key(bucket)):
                    self._client.make_bucket(bucket)
            except S3Error as e:
                if e.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise StorageError(f"bucket {bucket}: {e.code}") from e
            except Exception as e:  # noqa: BLE001 - urllib3 errors when the endpoint is down
                raise StorageError(Message("storage.unreachable", "object storage is not reachable: {error}",
                                           error=str(e))) from e
            self._buckets.add(bucket)
        return bucket

    def put(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        from minio.error import S3Error
        try:
            self._client.put_object(self._bucket(bucket), check_key(key), io.BytesIO(data), len(data),
                                    content_type=content_type or guess_type(key))
        except S3Error as e:   # an upload MinIO refuses is not stored at all
            full = e.code == "XMinioStorageFull"
            raise StorageError(Message("storage.full", "disk full: the object store has no room for {object} ({size:,} bytes)",
                                       object=f"{bucket}/{key}", size=len(data))
                               if full else Message("storage.not_stored", "{object} could not be stored: {code}",
                                                    object=f"{bucket}/{key}", code=e.code)) from e
        info = self.stat(bucket, key)
        assert info is not None
        return info

    def get(self, bucket: str, key: str) -> bytes:
        from minio.error import S3Error
        try:
            resp = self._client.get_object(self._bucket(bucket), check_key(key))
        except S3Error as e:
            if e.code == "NoSuchKey":
                raise ObjectNotFound(_no_object(bucket, key)) from e
            raise StorageError(f"{bucket}/{key}: {e.code}") from e
        try:
            return resp.read()
        finally:
            resp.close()
            resp.release_conn()

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        from minio.error import S3Error
        try:
            o = self._client.stat_object(self._bucket(bucket), check_key(key))
        except S3Error as e:
            if e.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise StorageError(f"{bucket}/{key}: {e.code}") from e
        return ObjectInfo(bucket, key, o.size or 0, o.content_type or guess_type(key),
                          o.last_modified or datetime.now(timezone.utc), o.etag or "")

    def list(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        objs = self._client.list_objects(self._bucket(bucket), prefix=prefix or None, recursive=True)
        return sorted((ObjectInfo(bucket, o.object_name, o.size or 0, guess_type(o.object_name),
                                  o.last_modified or datetime.now(timezone.utc), o.etag or "")
                       for o in objs if not o.is_dir), key=lambda i: i.key)

    def delete(self, bucket: str, key: str) -> None:
        self._client.remove_object(self._bucket(bucket), check_key(key))


def minio_store(endpoint: str, access_key: str, secret_key: str, secure: bool) -> MinioObjectStore:
    from minio import Minio
    return MinioObjectStore(Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure))


def seed(store: ObjectStore, source: Path, bucket: str = DEMO_BUCKET, *, prefix: str = "") -> list[str]:
    """Copy every file under `source` into `bucket` (keys `prefix` + relative path) unless an
    object of the same size is there. Idempotent; returns the relative paths written."""
    written = []
    for path in sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = path.relative_to(source).as_posix()
        key = prefix + rel
        existing = store.stat(bucket, key)
        if existing is not None and existing.size == path.stat().st_size:
            continue
        store.put(bucket, key, path.read_bytes())
        written.append(rel)
    return written


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
