"""The whole workflow in a real browser against a platform started by `up`: log in → upload a
demo algorithm as an archive → deploy it → stop and start it on the manage page → run it on a
demo image → compare two parameter sets → find the call in history. Screenshots land in
test-artifacts/ (the README shows the best ones)."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.conftest import ROOT
from tests.e2e.conftest import ARTIFACTS, open_page, pick, services, uploaded
from tests.e2e.test_showcase_browser import choose
from tests.support_platform import RunningPlatform

PACKAGE = ROOT / "demo_data" / "algorithms" / "face-detect"
LONG = 300_000  # ms: a deploy that builds an environment

pytestmark = pytest.mark.timeout(900)


def zip_package(folder: Path, dest: Path) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                z.write(f, f"face-detect/{f.relative_to(folder).as_posix()}")
    dest.write_bytes(buf.getvalue())
    return dest


def test_1_upload_an_archive(page: Page, running: RunningPlatform, tmp_path: Path) -> None:
    open_page(page, "Upload")
    page.get_by_text("Upload an algorithm").wait_for()
    page.locator("input[type=file]").set_input_files(str(zip_package(PACKAGE, tmp_path / "face-detect.zip")))
    uploaded(page)
    page.get_by_label("Version message").fill("from the browser")
    # the form's submit button (the file picker has a button called "Upload" too)
    page.get_by_test_id("stBaseButton-primaryFormSubmit").filter(has_text="Upload").click()
    page.get_by_text("Stored face-detect version 1").wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "upload.png"))
    listed = json.loads(running.cli("algorithms", "--json", check=True).stdout)
    assert [a["name"] for a in listed] == ["face-detect"]
    assert listed[0]["versions"][0]["message"] == "from the browser"


def test_2_deploy_from_the_page(page: Page, running: RunningPlatform) -> None:
    open_page(page, "Deploy")
    page.get_by_text("Deploy an algorithm").wait_for()
    page.get_by_role("button", name="Deploy", exact=True).click()
    page.get_by_text("Serving at").wait_for(timeout=LONG)
    page.screenshot(path=str(ARTIFACTS / "deploy.png"))
    assert services(running)["face-detect"]["state"] == "RUNNING"


def test_3_stop_and_start_on_the_manage_page(page: Page, running: RunningPlatform) -> None:
    open_page(page, "Services")
    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=60_000)   # the services table
    assert services(running)["face-detect"]["state"] == "RUNNING"
    page.screenshot(path=str(ARTIFACTS / "manage.png"))
    page.locator('[data-testid="stMultiSelect"]').first.click()
    page.get_by_role("option", name="face-detect").click()
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Stop", exact=True).click()
    page.get_by_text("Stop: face-detect").wait_for(timeout=60_000)
    assert services(running)["face-detect"]["state"] == "STOPPED"
    page.get_by_role("button", name="Start", exact=True).click()
    page.get_by_text("Start: face-detect").wait_for(timeout=60_000)
    assert services(running)["face-detect"]["state"] == "RUNNING"


def test_4_run_on_a_demo_image(page: Page) -> None:
    open_page(page, "Showcase")
    page.get_by_text("Demo input").wait_for(timeout=60_000)
    pick(page, "Demo input", "messi5.jpg")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("found").first.wait_for(timeout=120_000)
    page.get_by_text("Total ms").first.wait_for()
    assert page.locator('[data-testid="stImage"]').count() >= 1
    page.get_by_text("Total ms").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "showcase.png"))


def test_5_compare_two_parameter_sets(page: Page) -> None:
    open_page(page, "Compare")
    page.get_by_text("Column 2").wait_for(timeout=60_000)
    pick(page, "Model", "Haar (alt2)", nth=1)
    choose(page, "Demo input", "messi5.jpg")   # typed: the list opens on the face demo, messi5 out of its window
    page.get_by_role("button", name="Compare", exact=True).click()
    page.get_by_text("How they differ").wait_for(timeout=120_000)
    page.get_by_text("Latency per column").first.wait_for()
    page.get_by_text("2. face-detect").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "compare.png"))
    page.get_by_text("How they differ").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "compare-summary.png"))


def test_6_the_calls_are_in_history(page: Page, tmp_path: Path) -> None:
    open_page(page, "History")
    page.get_by_text("Call history").wait_for(timeout=60_000)
    page.get_by_text("Latency percentiles of face-detect over time").first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "history.png"))
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    path = tmp_path / "calls.csv"
    download.value.save_as(path)
    text = path.read_text()
    assert text.count("face-detect") >= 2 and "messi5.jpg" in text and "haar_alt2" in text
