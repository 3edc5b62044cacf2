"""A real browser reaches the login page of a platform started by `up`, logs in, sees Home."""
import time
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


@pytest.mark.timeout(300)
def test_a_session_survives_refresh_deep_links_and_tabs_and_ends_at_logout(browser, running):
    """Issue 14, finding 1: F5, a typed URL and a second tab keep the user signed in (an HttpOnly
    cookie resumes the session); a deep link opens the login form at that address, then the page;
    logout ends the session in every tab."""
    running.cli("user", "add", "olga", "--role", "operator", "--password", "olga-password", check=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(f"{running.url}/manage")                       # a deep link while signed out
    page.get_by_text("Log in to AlgoStage").wait_for(timeout=60_000)
    page.get_by_label("Username").fill("olga")
    page.get_by_label("Password", exact=True).fill("olga-password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Services").wait_for(timeout=30_000)
    assert page.url.endswith("/manage")

    deadline = time.monotonic() + 20                           # the page's script stores the cookie
    while not [c for c in context.cookies() if c["name"].startswith("algostage_session")]:
        assert time.monotonic() < deadline, "no session cookie was set"
        time.sleep(0.2)
    cookie = next(c for c in context.cookies() if c["name"].startswith("algostage_session"))
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["expires"] > time.time() + 3600

    page.reload()                                              # F5
    page.get_by_role("heading", name="Services").wait_for(timeout=30_000)
    assert not page.get_by_text("Log in to AlgoStage").count()
    page.screenshot(path=str(ARTIFACTS / "refreshed-still-signed-in.png"))
    second = context.new_page()                                # a second tab, a typed URL
    second.goto(f"{running.url}/history")
    second.get_by_text("Signed in as olga").wait_for(timeout=30_000)

    page.get_by_role("button", name="Log out").click()
    page.get_by_text("Log in to AlgoStage").wait_for(timeout=30_000)
    second.reload()
    second.get_by_text("Log in to AlgoStage").wait_for(timeout=30_000)
    context.close()


@pytest.mark.timeout(300)
def test_deactivation_signs_the_user_out_at_the_next_interaction(browser, running):
    """Issue 11, finding 1, in a real browser: an operator demoted and deactivated while signed in
    loses the Manage page's actions at the next click."""
    running.cli("user", "add", "demoted", "--role", "operator", "--password", "demoted-password", check=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(f"{running.url}/manage")
    page.get_by_label("Username").fill("demoted")
    page.get_by_label("Password", exact=True).fill("demoted-password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Services").wait_for(timeout=30_000)
    running.cli("user", "update", "demoted", "--role", "viewer", "--inactive", check=True)
    time.sleep(2.5)                                            # past the re-check interval
    page.get_by_role("link", name="History").first.click()
    page.get_by_text("Your session has ended").wait_for(timeout=30_000)
    page.reload()
    page.get_by_text("Log in to AlgoStage").wait_for(timeout=30_000)
    context.close()
