"""The upload flow end to end over a real git code store and both databases: versions, the
changes between them, and rejections that store nothing."""
from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from app.auth import PermissionDenied
from app.catalog.catalog import UploadRejected
from app.models import Algorithm, AlgorithmRepository, AlgorithmVersion
from app.platform import Platform
from tests.conftest import ADMIN, OPERATOR, ROOT, VIEWER

FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"
DEMO = ROOT / "demo_data" / "algorithms"


def copy_package(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def edit_manifest(package: Path, **changes: object) -> None:
    path = package / "algorithm.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def zip_bytes(package: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in package.rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts:
                z.write(f, f.relative_to(package).as_posix())
    return buf.getvalue()


def stored_counts(p: Platform) -> tuple[int, int, int]:
    with p.sessions() as s:
        return (s.scalar(select(func.count()).select_from(Algorithm)),
                s.scalar(select(func.count()).select_from(AlgorithmVersion)),
                s.scalar(select(func.count()).select_from(AlgorithmRepository)))


def repositories(p: Platform) -> list[str]:
    root = p.home / "repos"
    return sorted(x.name for x in root.glob("*.git")) if root.exists() else []


def test_first_upload_is_version_1_with_commit_tag_and_snapshot(platform: Platform, tmp_path: Path) -> None:
    pkg = copy_package(FIXTURES / "hello", tmp_path / "hello")
    result = platform.catalog.upload(ADMIN, str(pkg), message="first")

    assert (result.algorithm, result.version, result.tag, result.created) == ("hello", 1, "v1", True)
    assert result.changes is None and len(result.commit_sha) == 40
    info = platform.catalog.get(VIEWER, "hello")
    v1 = info.latest
    assert v1.commit_sha == result.commit_sha and v1.message == "first" and v1.created_by == "root-admin"
    assert "algorithm.yaml" in v1.files and "predict.py" in v1.files
    assert v1.manifest["name"] == "hello" and "threshold" in v1.manifest["params"]
    assert platform.catalog.read_file(VIEWER, "hello", 1, "predict.py") == (pkg / "predict.py").read_bytes()
    assert repositories(platform) == ["hello.git"]


def test_second_upload_is_version_2_and_shows_what_changed(platform: Platform, tmp_path: Path) -> None:
    pkg = copy_package(FIXTURES / "hello", tmp_path / "hello")
    platform.catalog.upload(ADMIN, str(pkg))
    (pkg / "predict.py").write_text((pkg / "predict.py").read_text() + "\n# tuned\n")
    (pkg / "NOTES.md").write_text("new file\n")
    manifest = yaml.safe_load((pkg / "algorithm.yaml").read_text())
    params = manifest["params"]
    removed = sorted(params)[0]
    del params[removed]
    params["extra"] = {"type": "int", "default": 3, "min": 1, "max": 9}
    edit_manifest(pkg, title="Hello, tuned", params=params)

    result = platform.catalog.upload(ADMIN, str(pkg), message="tuned")

    assert (result.version, result.tag, result.created) == (2, "v2", False)
    c = result.changes
    assert c is not None
    assert c.added == ["NOTES.md"] and c.modified == ["algorithm.yaml", "predict.py"] and c.deleted == []
    assert c.manifest["title"][1] == "Hello, tuned"
    assert c.params_added == ["extra"] and c.params_removed == [removed]
    assert platform.catalog.changes(VIEWER, "hello", 1, 2) == c
    assert [v.number for v in platform.catalog.get(VIEWER, "hello").versions] == [1, 2]


def test_upload_from_zip_and_tar_archives(platform: Platform, tmp_path: Path) -> None:
    src = FIXTURES / "hello"
    zpath = tmp_path / "hello.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in src.rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts:
                z.write(f, "hello-main/" + f.relative_to(src).as_posix())
    assert platform.catalog.upload(ADMIN, str(zpath)).version == 1

    tpath = tmp_path / "hello.tar.gz"
    with tarfile.open(tpath, "w:gz") as t:
        t.add(src, arcname="hello", filter=lambda ti: None if "__pycache__" in ti.name else ti)
    result = platform.catalog.upload(ADMIN, str(tpath))
    assert result.version == 2 and result.changes is not None and result.changes.empty


def test_broken_manifest_reports_every_problem_and_stores_nothing(platform: Platform) -> None:
    with pytest.raises(UploadRejected) as e:
        platform.catalog.upload(ADMIN, str(FIXTURES / "bad_manifest"))
    fields = [p.field for p in e.value.problems]
    assert len(fields) >= 3, fields
    assert all(f.startswith("algorithm.yaml") for f in fields)
    assert stored_counts(platform) == (0, 0, 0) and repositories(platform) == []


def test_requirement_redirects_are_refused_unless_an_admin_allows_them(platform: Platform, tmp_path: Path) -> None:
    pkg = copy_package(FIXTURES / "hello", tmp_path / "hello")
    (pkg / "requirements.txt").write_text("--index-url https://evil.example/simple\nrequests==2.32.3\n-e ./local\n")
    with pytest.raises(UploadRejected) as e:
        platform.catalog.upload(ADMIN, str(pkg))
    assert [p.field for p in e.value.problems] == ["requirements.txt", "requirements.txt"]
    assert stored_counts(platform) == (0, 0, 0) and repositories(platform) == []
    archive = zip_bytes(pkg)
    with pytest.raises(PermissionDenied):
        platform.catalog.upload_archive(OPERATOR, "hello.zip", archive, allow_redirects=True)
    assert platform.catalog.upload(ADMIN, str(pkg), allow_redirects=True).version == 1


def test_a_name_taken_by_another_algorithm_is_refused(platform: Platform, tmp_path: Path) -> None:
    platform.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    other = copy_package(FIXTURES / "hello_image", tmp_path / "img")
    with pytest.raises(UploadRejected) as e:
        platform.catalog.upload(ADMIN, str(other), name="hello")
    assert e.value.problems[0].field == "name" and "taken" in e.value.problems[0].reason
    assert stored_counts(platform) == (1, 1, 1)


def test_hostile_archive_is_refused_and_nothing_is_stored(platform: Platform, tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        for f in (FIXTURES / "hello").iterdir():
            if f.is_file():
                z.write(f, f.name)
        z.writestr("../../escaped.txt", "x")
    with pytest.raises(UploadRejected) as e:
        platform.catalog.upload(ADMIN, str(evil))
    assert e.value.problems[0].field == "source" and ".." in str(e.value)
    assert not (tmp_path / "escaped.txt").exists() and not (platform.home / "escaped.txt").exists()
    assert stored_counts(platform) == (0, 0, 0) and repositories(platform) == []
    assert list((platform.home / "tmp").iterdir()) == []


def test_a_folder_with_a_control_character_in_a_file_name_is_refused(platform: Platform, tmp_path: Path) -> None:
    """Issue 11, finding 8: folders get the archives' name check ("evil\\nname.txt" reached the
    repository)."""
    package = copy_package(FIXTURES / "hello", tmp_path / "hello")
    (package / "evil\nname.txt").write_text("x")
    with pytest.raises(UploadRejected) as e:
        platform.catalog.upload(ADMIN, str(package))
    assert "control characters" in str(e.value) and "evil\\nname.txt" in str(e.value)
    assert stored_counts(platform) == (0, 0, 0) and repositories(platform) == []


def test_a_missing_source_is_a_clear_rejection(platform: Platform, tmp_path: Path) -> None:
    with pytest.raises(UploadRejected) as e:
        platform.catalog.upload(ADMIN, str(tmp_path / "nope"))
    assert e.value.problems[0].field == "source"


def test_viewers_cannot_upload(platform: Platform) -> None:
    with pytest.raises(PermissionDenied):
        platform.catalog.upload(VIEWER, str(FIXTURES / "hello"))
    with pytest.raises(PermissionDenied):
        platform.catalog.upload_archive(VIEWER, "hello.zip", zip_bytes(FIXTURES / "hello"))
    assert stored_counts(platform) == (0, 0, 0)


def test_operators_upload_archives_but_only_admins_read_server_paths(platform: Platform, tmp_path: Path) -> None:
    for source in (str(FIXTURES / "hello"), f"file://{tmp_path}/repo.git", "/etc"):
        with pytest.raises(PermissionDenied):
            platform.catalog.upload(OPERATOR, source)
    result = platform.catalog.upload_archive(OPERATOR, "hello.zip", zip_bytes(FIXTURES / "hello"), message="web")
    assert (result.version, platform.catalog.get(VIEWER, "hello").latest.created_by) == (1, "op")
    assert list((platform.home / "tmp").glob("archive-*")) == []


def test_concurrent_first_uploads_of_one_name_make_two_versions(platform: Platform) -> None:
    from concurrent.futures import ThreadPoolExecutor
    data = zip_bytes(FIXTURES / "hello")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: platform.catalog.upload_archive(OPERATOR, f"h{i}.zip", data), range(4)))
    assert sorted(r.version for r in results) == [1, 2, 3, 4]
    assert [r.created for r in sorted(results, key=lambda r: r.version)] == [True, False, False, False]
    assert [v.number for v in platform.catalog.get(VIEWER, "hello").versions] == [1, 2, 3, 4]


def test_cli_uploads_every_demo_algorithm_and_lists_them_as_json(tmp_path: Path) -> None:
    from tests.support_platform import platform_env, run_cli
    env = platform_env(tmp_path / "home", 0)
    demos = sorted(d for d in DEMO.iterdir() if (d / "algorithm.yaml").exists())
    assert len(demos) >= 7
    for d in demos:
        out = run_cli(env, "upload", str(d), "--message", "demo", check=True)
        assert "version 1" in out.stdout
    changed = copy_package(demos[0], tmp_path / demos[0].name)
    (changed / "README.md").write_text((changed / "README.md").read_text() + "\nMore notes.\n")
    out = run_cli(env, "upload", str(changed), check=True)
    assert "version 2" in out.stdout and "modified: README.md" in out.stdout

    listed = json.loads(run_cli(env, "algorithms", "--json", check=True).stdout)
    assert sorted(a["name"] for a in listed) == sorted(yaml.safe_load((d / "algorithm.yaml").read_text())["name"]
                                                       for d in demos)
    first = next(a for a in listed if a["name"] == yaml.safe_load((demos[0] / "algorithm.yaml").read_text())["name"])
    assert [v["number"] for v in first["versions"]] == [1, 2]
    for a in listed:
        v = a["versions"][0]
        assert set(v) >= {"number", "tag", "commit", "manifest", "files", "samples", "created_by", "created_at"}
        assert v["samples"] and v["manifest"]["params"], a["name"]

    bad = run_cli(env, "upload", str(FIXTURES / "bad_manifest"))
    assert bad.returncode == 1 and bad.stderr.startswith("error: upload rejected, nothing stored")
    assert bad.stderr.count("\n") == 1
    assert run_cli(env, "upload").returncode == 2


def test_uploaded_archive_bytes_round_trip_through_the_store(platform: Platform, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in (FIXTURES / "hello_image").rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts:
                z.write(f, f.relative_to(FIXTURES / "hello_image").as_posix())
    (tmp_path / "img.zip").write_bytes(buf.getvalue())
    result = platform.catalog.upload(ADMIN, str(tmp_path / "img.zip"))
    sample = next(f for f in platform.catalog.get(VIEWER, result.algorithm).latest.files if f.startswith("samples/"))
    assert platform.catalog.read_file(VIEWER, result.algorithm, 1, sample) == \
        (FIXTURES / "hello_image" / sample).read_bytes()
