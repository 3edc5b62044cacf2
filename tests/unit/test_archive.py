"""Safe extraction: honest archives come out intact; hostile ones are refused with the reason,
and nothing is ever written outside the destination."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from app.catalog.archive import ArchiveError, ArchiveLimits, extract_archive
from tests import hostile_archives as ha

SMALL = ArchiveLimits(max_entries=20, max_total_bytes=4 * ha.MiB, max_file_bytes=1 * ha.MiB)


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """sandbox/a/b/dest is the destination: '../' escapes land in sandbox/a/b, sandbox/a, …"""
    dest = tmp_path / "sandbox" / "a" / "b" / "dest"
    dest.mkdir(parents=True)
    return dest


def outside_files(dest: Path) -> list[str]:
    """Every file under the sandbox that is not inside dest: must stay empty."""
    sandbox = dest.parents[2]
    return sorted(str(p.relative_to(sandbox)) for p in sandbox.rglob("*")
                  if not p.is_dir() and not p.is_relative_to(dest))


def refused(archive: Path, dest: Path, limits: ArchiveLimits = ArchiveLimits()) -> list[str]:
    with pytest.raises(ArchiveError) as info:
        extract_archive(archive, dest, limits)
    assert outside_files(dest) == []
    return info.value.problems


def written_files(dest: Path) -> dict[str, int]:
    return {str(p.relative_to(dest)): p.stat().st_size for p in dest.rglob("*") if p.is_file()}


# --- honest archives -----------------------------------------------------------------------------

FILES = {"pkg/algorithm.yaml": b"name: demo\n", "pkg/predict.py": b"def predict(x):\n    return x\n",
         "pkg/samples/a.txt": b"hello\n", "pkg/run.sh": b"#!/bin/sh\necho hi\n"}


@pytest.mark.parametrize("mode,suffix", [("w", ".tar"), ("w:gz", ".tar.gz"), ("w:gz", ".tgz"),
                                         ("w:bz2", ".tar.bz2"), ("w:xz", ".tar.xz")])
def test_good_tar_extracts_every_file_with_its_exec_bit(tmp_path, sandbox, mode, suffix):
    archive = ha.make_tar(tmp_path / f"good{suffix}", FILES, mode=mode, executable=("pkg/run.sh",),
                          dirs=("./", "pkg", "pkg/samples"))
    extract_archive(archive, sandbox, ArchiveLimits())
    assert {k: (sandbox / k).read_bytes() for k in FILES} == FILES
    assert os.access(sandbox / "pkg/run.sh", os.X_OK) and not os.access(sandbox / "pkg/predict.py", os.X_OK)
    assert outside_files(sandbox) == []


def test_good_zip_extracts_every_file_with_its_exec_bit(tmp_path, sandbox):
    archive = ha.make_zip(tmp_path / "good.zip", {**FILES, "pkg/empty/": b""}, executable=("pkg/run.sh",))
    extract_archive(archive, sandbox, ArchiveLimits())
    assert {k: (sandbox / k).read_bytes() for k in FILES} == FILES
    assert (sandbox / "pkg/empty").is_dir()
    assert os.access(sandbox / "pkg/run.sh", os.X_OK) and not os.access(sandbox / "pkg/predict.py", os.X_OK)


def test_dot_slash_names_and_small_compressible_text_are_fine(tmp_path, sandbox):
    text = b"a" * 500_000      # compresses ~1000x but is below the ratio grace size
    archive = ha.make_tar(tmp_path / "dots.tar.gz", {"./algorithm.yaml": b"x: 1\n", "./data.txt": text}, dirs=("./",))
    extract_archive(archive, sandbox, ArchiveLimits())
    assert (sandbox / "data.txt").read_bytes() == text


def test_destination_must_be_an_empty_directory(tmp_path, sandbox):
    archive = ha.make_zip(tmp_path / "good.zip", FILES)
    (sandbox / "existing").write_text("x")
    with pytest.raises(ValueError):
        extract_archive(archive, sandbox, ArchiveLimits())


# --- paths and entry types -----------------------------------------------------------------------

def test_zip_reports_every_bad_path_at_once(tmp_path, sandbox):
    absolute = f"/tmp/algostage-evil-{uuid.uuid4().hex}"
    archive = ha.zip_with_names(tmp_path / "paths.zip", ["ok.txt", "../evil", "pkg/../../evil2", absolute,
                                                         "dir\\..\\evil3", "C:evil4", "ok2.txt"])
    problems = refused(archive, sandbox)
    text = "\n".join(problems)
    assert "'../evil': contains a '..' component" in text
    assert "'pkg/../../evil2': contains a '..' component" in text
    assert f"{absolute!r}: is an absolute path" in text
    assert "backslash" in text and "drive letter" in text
    assert len(problems) == 5
    assert written_files(sandbox) == {}          # refused before anything was written
    assert not Path(absolute).exists()


def test_tar_reports_traversal_absolute_links_devices_and_fifos(tmp_path, sandbox):
    absolute = f"/tmp/algostage-evil-{uuid.uuid4().hex}"
    problems = refused(ha.tar_with_special_entries(tmp_path / "special.tar.gz", absolute=absolute), sandbox)
    text = "\n".join(problems)
    for expected in ("'../evil': contains a '..' component", "'pkg/../../evil2': contains a '..' component",
                     f"{absolute!r}: is an absolute path", "'pkg/link': symbolic link entries are not allowed",
                     "'pkg/hard': hard link entries are not allowed", "'pkg/null': device file entries are not allowed",
                     "'pkg/pipe': fifo entries are not allowed"):
        assert expected in text
    assert written_files(sandbox) == {}
    assert not Path(absolute).exists()


def test_tar_symlink_then_write_through_it_is_refused(tmp_path, sandbox):
    problems = refused(ha.tar_symlink_then_write_through(tmp_path / "through.tar"), sandbox)
    assert any("'out': symbolic link" in p for p in problems)
    assert not (sandbox.parent / "evil").exists()


def test_zip_symlink_is_refused(tmp_path, sandbox):
    problems = refused(ha.zip_symlink(tmp_path / "link.zip"), sandbox)
    assert problems == ["'link': symbolic link entries are not allowed"]


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_duplicates_and_file_directory_clashes_are_refused(tmp_path, sandbox):
    archive = ha.zip_with_names(tmp_path / "dups.zip", ["a.txt", "a.txt", "./b/c.txt", "b//c.txt", "d", "d/e.txt"])
    problems = "\n".join(refused(archive, sandbox))
    assert "'a.txt': duplicate entry" in problems
    assert "'b//c.txt': duplicate entry" in problems
    assert "'d/e.txt': a parent directory is also a file entry" in problems


# --- sizes, ratios, bombs ------------------------------------------------------------------------

@pytest.mark.parametrize("builder", [ha.make_zip, ha.make_tar])
def test_a_file_over_the_per_file_cap_is_refused(tmp_path, sandbox, builder):
    archive = builder(tmp_path / ("big.zip" if builder is ha.make_zip else "big.tar.gz"),
                      {"ok.txt": b"x", "big.bin": os.urandom(int(1.5 * ha.MiB))})
    problems = refused(archive, sandbox, SMALL)
    assert problems == ["'big.bin': 1.5 MiB is over the per-file limit of 1.0 MiB"]


def test_too_many_entries(tmp_path, sandbox):
    archive = ha.make_tar(tmp_path / "many.tar", {f"f{i}.txt": b"x" for i in range(30)}, mode="w")
    problems = refused(archive, sandbox, SMALL)
    assert "more than 20 entries" in problems


def test_central_directory_is_counted_even_when_the_end_record_lies(tmp_path, sandbox):
    archive = ha.zip_many_entries_lying_count(tmp_path / "lying-count.zip", 30)
    assert refused(archive, sandbox, SMALL) == ["more than 20 entries in the central directory"]


def test_zip64_directories_are_counted_too(tmp_path, sandbox):
    archive = ha.zip64_many_entries(tmp_path / "zip64.zip", 30)
    assert refused(archive, sandbox, SMALL) == ["more than 20 entries in the central directory"]
    small = ha.zip64_many_entries(tmp_path / "zip64-ok.zip", 3)
    extract_archive(small, sandbox, SMALL)
    assert written_files(sandbox) == {"f0": 1, "f1": 1, "f2": 1}


@pytest.mark.parametrize("builder,name", [(ha.zeros_zip, "zeros.zip"), (ha.zeros_tar_gz, "zeros.tar.gz")])
def test_50_mb_of_zeros_is_over_the_ratio_cap(tmp_path, sandbox, builder, name):
    archive = builder(tmp_path / name)
    assert archive.stat().st_size < 1 * ha.MiB
    problems = refused(archive, sandbox)
    assert any("looks like an archive bomb" in p for p in problems), problems
    assert sum(written_files(sandbox).values()) == 0


def test_zip_whose_header_lies_about_the_size_is_stopped_while_streaming(tmp_path, sandbox):
    archive = ha.zip_lying_size(tmp_path / "liar.zip", real_size=8 * ha.MiB, claimed=10)
    problems = refused(archive, sandbox)
    assert problems == ["'big.bin': expands beyond the size its header declares (10 bytes)"]
    assert sum(written_files(sandbox).values()) <= 10


def test_overlapping_entry_zip_bomb_is_detected_before_extracting(tmp_path, sandbox):
    archive = ha.zip_overlapping_bomb(tmp_path / "overlap.zip", copies=200, kernel_size=1 * ha.MiB)
    problems = refused(archive, sandbox)
    assert any("199 entries overlap other entries" in p and "zip bomb" in p for p in problems), problems
    assert written_files(sandbox) == {}


def test_quoted_overlap_is_detected_even_when_sizes_are_harmless(tmp_path, sandbox):
    problems = refused(ha.zip_quoted_overlap(tmp_path / "quoted.zip"), sandbox)
    assert len(problems) == 1 and "1 entries overlap" in problems[0] and "'b.txt'" in problems[0]
    assert written_files(sandbox) == {}


def test_not_an_archive(tmp_path, sandbox):
    junk = tmp_path / "notes.zip"
    junk.write_bytes(b"PK\x03\x04 this is not really a zip")
    assert "not a valid archive" in refused(junk, sandbox)[0] or "not a zip" in refused(junk, sandbox)[0]
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert "unsupported archive type" in refused(text, sandbox)[0]


def test_truncated_tar_gz_is_a_clear_error(tmp_path, sandbox):
    archive = ha.make_tar(tmp_path / "t.tar.gz", {"a.bin": os.urandom(200_000)})
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[:50_000])
    assert "not a valid archive or corrupt data" in refused(cut, sandbox)[0]
