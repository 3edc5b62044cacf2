"""A real browser reaches the login page of a platform started by `up`, logs in, sees Home."""
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import free_port
from tests.support_platform import start_platform, stop_platform

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    p = start_platform(tmp_path_factory.mktemp("e2e") / "home", free_port())
    yield p
    stop_platform(p)


@pytest.mark.timeout(300)
def test_login_page_then_home_in_both_languages(browser, running):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(running.url)
    page.get_by_text("Log in to AlgoStage").wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "login.png"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill("wrong-password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Invalid username or password.").wait_for(timeout=30_000)
    page.get_by_label("Password", exact=True).fill("admin-password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Platform overview").wait_for(timeout=30_000)
    page.get_by_text("reachable").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "home.png"))
    page.get_by_role("combobox").first.click()
    page.get_by_role("option", name="中文").click()
    page.get_by_text("平台概览").wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "home-zh.png"))
