"""Safe extraction of uploaded archives (.zip, .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz).

Archives are hostile input. Extraction happens in two steps:

1. **Listing.** Every entry is checked before anything is written: paths (absolute, `..`,
   drive letters, backslashes, duplicates, file/directory clashes), entry types (symlinks,
   hardlinks, devices, fifos), declared sizes against the limits, and — for zip — overlapping
   entries (the "overlapping local file" zip bomb) and an oversized central directory. All
   problems found are reported together in one `ArchiveError`.
2. **Streaming.** Entries are written into `dest` while counting the bytes actually produced,
   because headers can lie: writing stops at the per-file cap, the total cap and the
   expansion-ratio cap, whatever the headers claimed.

Nothing is ever written outside `dest`; on error `dest` may hold partial files and the caller
deletes it.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from app.errors import AlgoStageError, Message

MiB = 1024 * 1024
CHUNK = 64 * 1024
MAX_REPORTED = 50
ZIP_CD_ENTRY = struct.Struct("<4s6H3L5H2L")       # central directory file header, 46 bytes
ZIP_LOCAL_HEADER = struct.Struct("<4s5H3L2H")     # local file header, 30 bytes
ZIP64_END = struct.Struct("<4sQ2H2L4Q")           # zip64 end of central directory record, 56 bytes
DRIVE_RE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps applied to one archive. `max_ratio` is uncompressed bytes / archive file size; it is
    only enforced once more than `ratio_grace_bytes` have been produced, so small archives of
    very compressible text are not refused."""
    max_entries: int = 10_000
    max_total_bytes: int = 200 * MiB
    max_file_bytes: int = 100 * MiB
    max_ratio: float = 100.0
    max_path_length: int = 1024
    ratio_grace_bytes: int = 1 * MiB


class ArchiveError(AlgoStageError):
    """The archive was refused. `problems` lists every reason found (one string each)."""
    code = "bad_archive"

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(Message("problems", "{problems}", problems=self.problems))


@dataclass
class _Entry:
    """One archive member as the listing sees it."""
    name: str                   # as stored in the archive
    path: PurePosixPath | None  # normalised relative path; None for the root ("./")
    is_dir: bool
    size: int                   # declared uncompressed size
    mode: int                   # permission bits we will apply


def extract_archive(path: Path, dest: Path, limits: ArchiveLimits) -> None:
    """Extract the archive at `path` into `dest`, an existing empty directory.

    Raises `ArchiveError` listing every problem (unsupported or corrupt archive, unsafe or
    duplicate paths, forbidden entry types, limits exceeded). On error `dest` may contain partial
    output; nothing outside it is touched. Raises ValueError if `dest` is not an empty directory.
    """
    if not dest.is_dir() or any(dest.iterdir()):
        raise ValueError(f"{dest} must be an existing empty directory")
    kind = archive_kind(path)
    if kind is None:
        raise ArchiveError([Message("archive.unsupported", "{file}: unsupported archive type; use .zip, .tar, .tar.gz, "
                                    ".tar.bz2 or .tar.xz", file=path.name)])
    try:
        if kind == "zip":
            _extract_zip(path, dest, limits)
        else:
            _extract_tar(path, dest, limits)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, EOFError, OSError,
            NotImplementedError) as e:
        raise ArchiveError([Message("archive.corrupt", "{file}: not a valid archive or corrupt data ({error})",
                                    file=path.name, error=str(e))]) from e


def archive_kind(path: Path) -> str | None:
    """"zip", "tar" (possibly compressed) or None, judged by content first and suffix second."""
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError:
        return None
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" or head[257:262] == b"ustar":
        return "tar"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06") or zipfile.is_zipfile(path):
        return "zip"
    if path.name.lower().endswith(".tar"):
        return "tar"
    return None


# --- checks shared by both formats ---------------------------------------------------------------

def normalise_name(name: str, limits: ArchiveLimits) -> tuple[PurePosixPath | None, str | None]:
    """(relative path, None) for a safe entry name, (None, None) for the root, (None, reason) if unsafe."""
    if "\x00" in name or any(ord(c) < 32 for c in name):
        return None, "contains control characters"
    if "\\" in name:
        return None, "contains a backslash"
    if name.startswith("/"):
        return None, "is an absolute path"
    if DRIVE_RE.match(name):
        return None, "starts with a drive letter"
    if len(name) > limits.max_path_length:
        return None, f"path is longer than {limits.max_path_length} characters"
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None, "contains a '..' component"
    if any(len(p.encode()) > 255 for p in parts):
        return None, "has a path component longer than 255 bytes"
    return (PurePosixPath(*parts), None) if parts else (None, None)


class _Listing:
    """Collects entries and problems while an archive is listed."""

    def __init__(self, limits: ArchiveLimits, archive_size: int) -> None:
        self.limits = limits
        self.archive_size = max(archive_size, 1)
        self.entries: list[_Entry] = []
        self.problems: list[str] = []
        self.files: set[PurePosixPath] = set()
        self.dirs: set[PurePosixPath] = set()
        self.total = 0
        self.too_big = False

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def add(self, name: str, kind: str, size: int, mode: int) -> None:
        """Record an entry; kind is "file", "dir" or a description of a forbidden type."""
        path, reason = normalise_name(name, self.limits)
        if reason:
            self.problem(f"{name!r}: {reason}")
        if kind not in ("file", "dir"):
            self.problem(Message("archive.entry_kind", "{name!r}: {kind} entries are not allowed", name=name, kind=kind))
            return
        if reason:
            return
        if path is None and kind == "file":
            self.problem(f"{name!r}: a file entry without a name")
            return
        if len(self.entries) >= self.limits.max_entries:
            self.problem(Message("archive.entries", "more than {count} entries", count=self.limits.max_entries))
            self.too_big = True
            return
        self._check_clash(name, path, kind == "dir")
        if kind == "file":
            self._check_size(name, size)
        self.entries.append(_Entry(name, path, kind == "dir", size if kind == "file" else 0,
                                   0o755 if mode & 0o111 else 0o644))

    def _check_clash(self, name: str, path: PurePosixPath | None, is_dir: bool) -> None:
        if path is None:
            return
        if not is_dir and (path in self.files or path in self.dirs):
            self.problem(Message("archive.duplicate", "{name!r}: duplicate entry", name=name))
        elif is_dir and path in self.files:
            self.problem(f"{name!r}: used both as a file and a directory")
        parents = set(path.parents) - {PurePosixPath(".")}
        if parents & self.files:
            self.problem(f"{name!r}: a parent directory is also a file entry")
        (self.dirs if is_dir else self.files).add(path)
        self.dirs.update(parents)

    def _check_size(self, name: str, size: int) -> None:
        if size > self.limits.max_file_bytes:
            self.problem(Message("archive.file_over", "{name!r}: {size} is over the per-file limit of {limit}", name=name,
                                 size=_mib(size), limit=_mib(self.limits.max_file_bytes)))
        self.total += size
        if self.total > self.limits.max_total_bytes and not self.too_big:
            self.problem(_total_over(self.limits))
            self.too_big = True

    def finish(self) -> None:
        """Check the declared expansion ratio, then raise if anything was found."""
        ratio = self.total / self.archive_size
        if self.total > self.limits.ratio_grace_bytes and ratio > self.limits.max_ratio:
            self.problem(Message("archive.bomb", "expands {ratio:.0f} times (limit {limit:.0f}): looks like an archive bomb",
                                 ratio=ratio, limit=self.limits.max_ratio))
        if self.problems:
            extra = len(self.problems) - MAX_REPORTED
            shown = self.problems[:MAX_REPORTED] + ([Message("archive.more", "… and {count} more problems", count=extra)]
                                                    if extra > 0 else [])
            raise ArchiveError(shown)


class _Budget:
    """Counts the bytes really written and stops at the caps, whatever the headers said."""

    def __init__(self, limits: ArchiveLimits, archive_size: int) -> None:
        self.limits = limits
        self.ratio_cap = max(limits.max_ratio * max(archive_size, 1), limits.ratio_grace_bytes)
        self.total = 0

    def charge(self, name: str, written: int, declared: int | None, n: int) -> None:
        """Account for `n` more bytes of entry `name` (already `written` before them)."""
        self.total += n
        if written + n > self.limits.max_file_bytes:
            raise ArchiveError([Message("archive.file_limit", "{name!r}: larger than the per-file limit of {limit}",
                                        name=name, limit=_mib(self.limits.max_file_bytes))])
        if declared is not None and written + n > declared:
            raise ArchiveError([f"{name!r}: expands beyond the size its header declares ({declared} bytes)"])
        if self.total > self.limits.max_total_bytes:
            raise ArchiveError([_total_over(self.limits)])
        if self.total > self.ratio_cap:
            raise ArchiveError([Message("archive.bomb_ratio", "expands more than {limit:.0f} times: looks like an archive bomb",
                                        limit=self.limits.max_ratio)])


def _write_entry(dest: Path, entry: _Entry, chunks: Iterator[bytes], budget: _Budget, declared: int | None) -> None:
    """Stream one regular file into dest, refusing to follow or replace anything that exists."""
    assert entry.path is not None
    target = dest.joinpath(*entry.path.parts)
    if not target.resolve().is_relative_to(dest.resolve()):   # defence in depth; names were checked
        raise ArchiveError([f"{entry.name!r}: resolves outside the destination"])
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, entry.mode)
    written = 0
    with os.fdopen(fd, "wb") as out:
        for chunk in chunks:
            budget.charge(entry.name, written, declared, len(chunk))
            out.write(chunk)
            written += len(chunk)


def _make_dir(dest: Path, entry: _Entry) -> None:
    if entry.path is not None:
        dest.joinpath(*entry.path.parts).mkdir(parents=True, exist_ok=True)


def _total_over(limits: ArchiveLimits) -> Message:
    return Message("archive.total_over", "unpacks to more than the limit of {limit}", limit=_mib(limits.max_total_bytes))


def _mib(n: int | float) -> str:
    return f"{n / MiB:.1f} MiB"


# --- zip -----------------------------------------------------------------------------------------

def _extract_zip(path: Path, dest: Path, limits: ArchiveLimits) -> None:
    size = path.stat().st_size
    _check_zip_directory(path, limits)
    with zipfile.ZipFile(path) as zf, path.open("rb") as raw:
        listing = _list_zip(zf, limits, size)
        data_starts = _check_zip_overlaps(zf, raw, listing)
        listing.finish()
        budget = _Budget(limits, size)
        for info, entry, start in zip(zf.infolist(), listing.entries, data_starts):
            if entry.is_dir:
                _make_dir(dest, entry)
            else:
                _write_entry(dest, entry, _zip_chunks(zf, raw, info, start), budget, info.file_size)


def _zip_chunks(zf: zipfile.ZipFile, raw: BinaryIO, info: zipfile.ZipInfo, start: int) -> Iterator[bytes]:
    """The entry's real content. Stored and deflated data are decoded here, from the compressed
    bytes, so the output is counted as it is produced and never cut to the size the header
    claims (zipfile would silently stop there); other methods go through zipfile."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        with zf.open(info) as src:
            yield from iter(lambda: src.read(CHUNK), b"")
        return
    inflater = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
    crc, left = 0, info.compress_size
    raw.seek(start)
    while left > 0:
        data = raw.read(min(CHUNK, left))
        if not data:
            raise ArchiveError([f"{info.filename!r}: truncated data"])
        left -= len(data)
        for chunk in _inflate(inflater, data):
            crc = zlib.crc32(chunk, crc)
            yield chunk
    if inflater is not None and (tail := inflater.flush()):
        crc = zlib.crc32(tail, crc)
        yield tail
    if crc != info.CRC:
        raise ArchiveError([f"{info.filename!r}: data does not match its checksum (corrupt or tampered)"])


def _inflate(inflater: zlib._Decompress | None, data: bytes) -> Iterator[bytes]:
    """Decompress in bounded pieces: a small input can expand enormously."""
    if inflater is None:
        yield data
        return
    chunk = inflater.decompress(data, CHUNK)
    while chunk:
        yield chunk
        chunk = inflater.decompress(inflater.unconsumed_tail, CHUNK) if inflater.unconsumed_tail else b""


def _list_zip(zf: zipfile.ZipFile, limits: ArchiveLimits, size: int) -> _Listing:
    listing = _Listing(limits, size)
    for info in zf.infolist():
        if info.flag_bits & 0x1:
            listing.problem(f"{info.filename!r}: encrypted entries are not allowed")
        unix_mode = info.external_attr >> 16 if info.create_system == 3 else 0
        listing.add(info.filename, _zip_kind(info), info.file_size, unix_mode)
        if listing.too_big:
            break
    return listing


def _zip_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16 if info.create_system == 3 else 0
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device file"
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return "fifo or socket"
    if info.is_dir() or stat.S_ISDIR(mode):
        return "dir"
    return "file"


def _check_zip_directory(path: Path, limits: ArchiveLimits) -> None:
    """Count central-directory records ourselves before zipfile loads them all into memory.
    The count in the end record can lie; the records themselves cannot."""
    with path.open("rb") as f:
        start, cd_size = _zip_directory_location(f, path.name)
        f.seek(start)
        directory = f.read(cd_size)
    count, pos = 0, 0
    while pos + ZIP_CD_ENTRY.size <= len(directory) and directory[pos:pos + 4] == b"PK\x01\x02":
        fields = ZIP_CD_ENTRY.unpack_from(directory, pos)
        pos += ZIP_CD_ENTRY.size + fields[10] + fields[11] + fields[12]
        count += 1
        if count > limits.max_entries:
            raise ArchiveError([f"more than {limits.max_entries} entries in the central directory"])


def _zip_directory_location(f: BinaryIO, name: str) -> tuple[int, int]:
    """(file offset, size) of the central directory, from the end record (zip64 aware). The
    directory is located backwards from the end record, as zipfile does, so data prepended to
    the archive is allowed for."""
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - 65_557))
    tail = f.read()
    eocd = tail.rfind(b"PK\x05\x06")
    if eocd < 0:
        raise ArchiveError([Message("archive.not_zip", "{file}: not a zip archive (no end of central directory)", file=name)])
    eocd_pos = size - len(tail) + eocd
    cd_size, cd_offset = struct.unpack("<LL", tail[eocd + 12:eocd + 20])
    directory_end = eocd_pos
    if 0xFFFFFFFF in (cd_size, cd_offset) and tail[eocd - 20:eocd - 16] == b"PK\x06\x07":
        directory_end = eocd_pos - 20 - ZIP64_END.size
        f.seek(directory_end)
        record = f.read(ZIP64_END.size)
        if len(record) < ZIP64_END.size or record[:4] != b"PK\x06\x06":
            raise ArchiveError([f"{name}: corrupt zip64 end record"])
        cd_size = ZIP64_END.unpack(record)[8]
    if directory_end - cd_size < 0:
        raise ArchiveError([Message("archive.bad_directory", "{file}: corrupt central directory", file=name)])
    return directory_end - cd_size, cd_size


def _check_zip_overlaps(zf: zipfile.ZipFile, raw: BinaryIO, listing: _Listing) -> list[int]:
    """Refuse entries whose local data ranges overlap (each other or the central directory):
    the construction of non-recursive zip bombs that reuse one compressed kernel many times.
    Returns where each entry's data starts."""
    end_of_data = getattr(zf, "start_dir", os.fstat(raw.fileno()).st_size)
    ranges: list[tuple[int, int, str]] = []
    starts: list[int] = []
    for info in zf.infolist():
        raw.seek(info.header_offset)
        header = raw.read(ZIP_LOCAL_HEADER.size)
        if len(header) < ZIP_LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
            listing.problem(f"{info.filename!r}: bad local header")
            starts.append(0)
            continue
        fields = ZIP_LOCAL_HEADER.unpack(header)
        data_start = info.header_offset + ZIP_LOCAL_HEADER.size + fields[9] + fields[10]
        starts.append(data_start)
        ranges.append((info.header_offset, data_start + info.compress_size, info.filename))
    overlapping = _overlaps(sorted(ranges), end_of_data)
    if overlapping:
        listing.problem(f"{len(overlapping)} entries overlap other entries or the directory (e.g. "
                        f"{overlapping[0]!r}): an overlapping-entry zip bomb")
    return starts


def _overlaps(ranges: list[tuple[int, int, str]], end_of_data: int) -> list[str]:
    bad: list[str] = []
    previous_end = 0
    for start, end, name in ranges:
        if start < previous_end or end > end_of_data:
            bad.append(name)
        previous_end = max(previous_end, end)
    return bad


# --- tar -----------------------------------------------------------------------------------------

class _CappedReader:
    """A read-only stream that fails once more than `cap` bytes were read: decompressing a tar
    (even just to list it) must not be allowed to run away."""

    def __init__(self, raw: BinaryIO, cap: float, message: str) -> None:
        self._raw, self._cap, self._message = raw, cap, message
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        allowed = int(self._cap - self.count) + 1
        data = self._raw.read(allowed if n is None or n < 0 else min(n, allowed))
        self.count += len(data)
        if self.count > self._cap:
            raise ArchiveError([self._message])
        return data


@contextmanager
def _tar_stream(path: Path, limits: ArchiveLimits) -> Iterator[tarfile.TarFile]:
    """The archive as a sequential tar stream over a capped decompressor."""
    size = path.stat().st_size
    with path.open("rb") as raw:
        head = raw.read(6)
        raw.seek(0)
        if head[:2] == b"\x1f\x8b":
            inner: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb")
        elif head[:3] == b"BZh":
            inner = bz2.BZ2File(raw)
        elif head[:6] == b"\xfd7zXZ\x00":
            inner = lzma.LZMAFile(raw)
        else:
            inner = raw
        overhead = 2048 * limits.max_entries + MiB      # headers, padding, long names
        cap = min(limits.max_total_bytes, max(limits.max_ratio * max(size, 1), limits.ratio_grace_bytes))
        reader = _CappedReader(inner, cap + overhead, "unpacks to more than the limits allow "
                               f"({_mib(limits.max_total_bytes)}, {limits.max_ratio:.0f} times the archive size)")
        with tarfile.open(fileobj=reader, mode="r|") as tf:   # type: ignore[call-overload]
            yield tf


def _tar_kind(m: tarfile.TarInfo) -> str:
    if m.issym():
        return "symbolic link"
    if m.islnk():
        return "hard link"
    if m.ischr() or m.isblk():
        return "device file"
    if m.isfifo():
        return "fifo"
    if m.isdir():
        return "dir"
    if m.issparse():
        return "sparse file"
    return "file" if m.isreg() else f"unknown type {m.type!r}"


def _extract_tar(path: Path, dest: Path, limits: ArchiveLimits) -> None:
    size = path.stat().st_size
    listing = _Listing(limits, size)
    try:
        with _tar_stream(path, limits) as tf:
            for m in tf:
                listing.add(m.name, _tar_kind(m), m.size, m.mode)
                if listing.too_big:
                    break
    except ArchiveError as e:
        listing.problems += e.problems
    listing.finish()
    budget = _Budget(limits, size)
    with _tar_stream(path, limits) as tf:
        for m, entry in zip(tf, listing.entries):
            if entry.is_dir:
                _make_dir(dest, entry)
                continue
            src = tf.extractfile(m)
            assert src is not None
            _write_entry(dest, entry, iter(lambda: src.read(CHUNK), b""), budget, m.size)
