"""Builders for hostile (and honest) archives, made at test time so the corpus is readable code.

Zip files are written byte by byte where the standard library would refuse to produce the
attack (lying sizes, overlapping entries); tar files use tarfile with hand-made TarInfo entries.
"""
from __future__ import annotations

import io
import stat
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

MiB = 1024 * 1024


# --- honest archives -----------------------------------------------------------------------------

def make_zip(path: Path, files: dict[str, bytes], *, executable: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = ((0o100755 if name in executable else 0o100644) << 16)
            zf.writestr(info, data)
    return path


def make_tar(path: Path, files: dict[str, bytes], *, mode: str = "w:gz", executable: tuple[str, ...] = (),
             dirs: tuple[str, ...] = ()) -> Path:
    with tarfile.open(path, mode) as tf:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name in executable else 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


# --- hostile tar ---------------------------------------------------------------------------------

def tar_with_special_entries(path: Path, *, absolute: str) -> Path:
    """Traversal, an absolute path, a symlink, a hardlink, a device and a fifo in one archive."""
    with tarfile.open(path, "w:gz") as tf:
        _tar_file(tf, "pkg/algorithm.yaml", b"name: x\n")
        _tar_file(tf, "../evil", b"escaped\n")
        _tar_file(tf, "pkg/../../evil2", b"escaped\n")
        _tar_file(tf, absolute, b"absolute\n")
        _tar_special(tf, "pkg/link", tarfile.SYMTYPE, linkname="/etc/passwd")
        _tar_special(tf, "pkg/hard", tarfile.LNKTYPE, linkname="/etc/passwd")
        _tar_special(tf, "pkg/null", tarfile.CHRTYPE, devmajor=1, devminor=3)
        _tar_special(tf, "pkg/pipe", tarfile.FIFOTYPE)
    return path


def tar_symlink_then_write_through(path: Path) -> Path:
    """The classic two-step escape: a symlink to a directory outside, then a file written through it."""
    with tarfile.open(path, "w") as tf:
        _tar_special(tf, "out", tarfile.SYMTYPE, linkname="..")
        _tar_file(tf, "out/evil", b"through the link\n")
    return path


def _tar_file(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def _tar_special(tf: tarfile.TarFile, name: str, kind: bytes, **attrs: object) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    tf.addfile(info)


# --- hostile zip, byte by byte -------------------------------------------------------------------

def _local_header(name: bytes, method: int, crc: int, csize: int, usize: int) -> bytes:
    return struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, csize, usize, len(name), 0) + name


def _central_header(name: bytes, method: int, crc: int, csize: int, usize: int, offset: int,
                    mode: int = 0o100644) -> bytes:
    return struct.pack("<4s6H3L5H2L", b"PK\x01\x02", (3 << 8) | 20, 20, 0, method, 0, 0x21, crc, csize, usize,
                       len(name), 0, 0, 0, 0, mode << 16, offset) + name


def _end_record(count: int, cd_size: int, cd_offset: int) -> bytes:
    return struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, cd_size, cd_offset, 0)


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def zip_raw(path: Path, locals_: list[tuple[str, bytes, int, int, int]],
            centrals: list[tuple[str, int, int, int, int, int, int]]) -> Path:
    """A zip from explicit records. locals_: (name, payload, method, crc, usize); the local
    records are written in order and their offsets are available to `centrals` as indexes.
    centrals: (name, method, crc, csize, usize, local index or -1-offset, mode)."""
    blob, offsets = b"", []
    for name, payload, method, crc, usize in locals_:
        offsets.append(len(blob))
        blob += _local_header(name.encode(), method, crc, len(payload), usize) + payload
    cd = b"".join(_central_header(name.encode(), method, crc, csize, usize,
                                  offsets[where] if where >= 0 else -1 - where, mode)
                  for name, method, crc, csize, usize, where, mode in centrals)
    path.write_bytes(blob + cd + _end_record(len(centrals), len(cd), len(blob)))
    return path


def zip_lying_size(path: Path, real_size: int = 8 * MiB, claimed: int = 10) -> Path:
    """One deflated entry that really inflates to `real_size` bytes while both headers claim
    `claimed` bytes (and carry the CRC of `claimed` zero bytes, so a reader that stops at the
    claimed size sees nothing wrong)."""
    payload = _deflate(b"\0" * real_size)
    crc = zlib.crc32(b"\0" * claimed)
    return zip_raw(path, [("big.bin", payload, 8, crc, claimed)],
                   [("big.bin", 8, crc, len(payload), claimed, 0, 0o100644)])


def zip_overlapping_bomb(path: Path, copies: int = 200, kernel_size: int = 1 * MiB) -> Path:
    """David Fifield's construction, full-overlap variant: one compressed kernel and many
    central-directory entries (distinct names) that all point at the same local file."""
    data = b"\0" * kernel_size
    payload, crc = _deflate(data), zlib.crc32(data)
    centrals = [(f"f{i:04d}.bin", 8, crc, len(payload), kernel_size, 0, 0o100644) for i in range(copies)]
    return zip_raw(path, [("f0000.bin", payload, 8, crc, kernel_size)], centrals)


def zip_quoted_overlap(path: Path) -> Path:
    """The quoted-overlap variant, small: entry A is stored and its data *quotes* the local
    header and data of entry B, so B lies inside A's range. Small sizes: only the overlap is wrong."""
    b_data = b"hello from B\n"
    b_record = _local_header(b"b.txt", 0, zlib.crc32(b_data), len(b_data), len(b_data)) + b_data
    a_offset = 0
    b_offset = 30 + len(b"a.txt")          # B's header starts where A's data starts
    a_crc = zlib.crc32(b_record)
    return zip_raw(path, [("a.txt", b_record, 0, a_crc, len(b_record))],
                   [("a.txt", 0, a_crc, len(b_record), len(b_record), -1 - a_offset, 0o100644),
                    ("b.txt", 0, zlib.crc32(b_data), len(b_data), len(b_data), -1 - b_offset, 0o100644)])


def zip_with_names(path: Path, names: list[str]) -> Path:
    """Entries with arbitrary (possibly hostile) names; zipfile keeps them verbatim."""
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(zipfile.ZipInfo(name), b"x\n")
    return path


def zip_symlink(path: Path, name: str = "link", target: str = "/etc/passwd") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target)
    return path


def zip_many_entries_lying_count(path: Path, entries: int) -> Path:
    """`entries` central-directory records while the end record claims there is only one."""
    data = b"x"
    crc = zlib.crc32(data)
    locals_ = [(f"f{i}", data, 0, crc, 1) for i in range(entries)]
    centrals = [(f"f{i}", 0, crc, 1, 1, i, 0o100644) for i in range(entries)]
    zip_raw(path, locals_, centrals)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<2H", raw, len(raw) - 22 + 8, 1, 1)      # the end record's two entry counts
    path.write_bytes(bytes(raw))
    return path


def zip64_many_entries(path: Path, entries: int) -> Path:
    """`entries` records behind a zip64 end record (the classic end record says 0xFFFF...)."""
    data = b"x"
    crc = zlib.crc32(data)
    blob = b"".join(_local_header(f"f{i}".encode(), 0, crc, 1, 1) + data for i in range(entries))
    offsets = [sum(30 + len(f"f{j}") + 1 for j in range(i)) for i in range(entries)]
    cd = b"".join(_central_header(f"f{i}".encode(), 0, crc, 1, 1, offsets[i]) for i in range(entries))
    z64_pos = len(blob) + len(cd)
    z64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, len(cd), len(blob))
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, z64_pos, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    path.write_bytes(blob + cd + z64 + locator + end)
    return path


def zeros_zip(path: Path, size: int = 50 * MiB) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("zeros.bin", "w") as out:
            chunk = b"\0" * MiB
            for _ in range(size // MiB):
                out.write(chunk)
    return path


def zeros_tar_gz(path: Path, size: int = 50 * MiB) -> Path:
    class Zeros(io.RawIOBase):
        def __init__(self, n: int) -> None:
            self.left = n

        def readable(self) -> bool:
            return True

        def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
            n = min(len(buf), self.left)
            buf[:n] = b"\0" * n
            self.left -= n
            return n

    with tarfile.open(path, "w:gz", compresslevel=1) as tf:
        info = tarfile.TarInfo("zeros.bin")
        info.size = size
        tf.addfile(info, io.BufferedReader(Zeros(size)))
    return path
