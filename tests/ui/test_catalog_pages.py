"""The upload and algorithms pages driven through AppTest over a real platform."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from app.auth import Actor, Role
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"
OPERATOR = Actor("op", Role.OPERATOR)
ADMIN = Actor("boss", Role.ADMIN)


@pytest.fixture
def env(platform, monkeypatch):
    monkeypatch.setenv("ALGOSTAGE_HOME", str(platform.home))
    monkeypatch.setenv("DATABASE_URL", platform.environ["DATABASE_URL"])
    return platform


def page(name: str, actor: Actor = OPERATOR) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=60)
    at.session_state["actor"] = actor
    at.session_state["lang"] = "en"
    return at


def upload_folder(path: Path, message: str = "") -> AppTest:
    at = page("upload.py", ADMIN).run()
    at.radio[0].set_value("folder").run()
    at.text_input[0].input(str(path))
    at.text_input[2].input(message)
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def test_upload_page_stores_a_version_and_shows_the_next_ones_changes(env, tmp_path):
    pkg = tmp_path / "hello"
    shutil.copytree(FIXTURES / "hello", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    at = upload_folder(pkg, "from the page")
    assert any("hello" in s.value and "version 1" in s.value for s in at.success), [s.value for s in at.success]
    assert env.catalog.get(OPERATOR, "hello").latest.message == "from the page"

    data = yaml.safe_load((pkg / "algorithm.yaml").read_text())
    data["title"] = "Hello v2"
    (pkg / "algorithm.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    at = upload_folder(pkg)
    assert any("version 2" in s.value for s in at.success)
    shown = " ".join(m.value for m in at.markdown)
    assert "algorithm.yaml" in shown
    assert any("Hello v2" in str(df.value.to_dict()) for df in at.dataframe)


def test_upload_page_lists_every_problem_and_stores_nothing(env):
    at = upload_folder(FIXTURES / "bad_manifest")
    assert len(at.error) == 1
    assert at.error[0].value.count("- **algorithm.yaml") >= 3
    assert env.catalog.list(OPERATOR) == []


def test_operators_are_not_offered_server_folders(env):
    at = page("upload.py").run()
    assert at.radio[0].options == ["Archive (.zip, .tar.gz)", "Git URL"]


def test_algorithms_page_shows_versions_params_and_samples(env):
    env.catalog.upload(ADMIN, str(FIXTURES / "hello_image"))
    at = page("algorithms.py", Actor("v", Role.VIEWER)).run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table.iloc[:, 0]) == ["hello-image"]
    params = at.dataframe[1].value
    assert "min_size" in list(params.iloc[:, 0])
    assert at.selectbox[2].options  # a sample to preview
    assert len(at.get("image")) == 1  # the first sample, previewed


def test_every_demo_algorithm_uploads_through_the_page(env):
    demos = sorted(p for p in (ROOT / "demo_data" / "algorithms").iterdir() if (p / "algorithm.yaml").exists())
    for package in demos:
        at = upload_folder(package, "demo from the page")
        assert not at.error, (package.name, [e.value for e in at.error])
        assert any("version 1" in s.value for s in at.success), package.name
    listed = env.catalog.list(OPERATOR)
    assert len(listed) == len(demos) >= 7
    assert all(a.latest.message == "demo from the page" for a in listed)


def test_settings_page_tests_the_code_store_connection(env):
    at = page("settings.py", ADMIN).run()
    button = next(b for b in at.button if b.label == "Test connection")
    button.click().run()
    assert not at.exception and any(str(env.home / "repos") in s.value for s in at.success), \
        [s.value for s in at.success]


def test_algorithms_page_lists_the_repository_tags(env):
    env.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    env.catalog.upload(ADMIN, str(FIXTURES / "hello"), message="again")
    at = page("algorithms.py", Actor("v", Role.VIEWER)).run()
    assert any("Tags: v1, v2" in c.value and "main" in c.value for c in at.caption), [c.value for c in at.caption]
