"""What the browser tests share: headless Chromium, a real platform started by `up` on a free
port (one per test module), a page logged in as admin, and helpers to drive Streamlit widgets.

A module changes its platform's settings by overriding `platform_settings` (by default the
platforms share the session's environments through ALGOSTAGE_ENV_DIR)."""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import ROOT, free_port, private_port_range
from tests.support_platform import RunningPlatform, start_platform, stop_platform

ARTIFACTS = ROOT / "test-artifacts"
DEMO = ROOT / "demo_data" / "algorithms"
# A loaded CI machine (2 cores, load 10+) takes seconds for one Streamlit rerun; while it runs, the
# elements of the previous run are still on the page beside the new ones. An assertion waits for
# the page to settle up to 20 s (Playwright's default is 5 s); a passing one returns at once.
expect.set_options(timeout=20_000)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def platform_settings(shared_envs: Path) -> dict[str, str]:
    """Extra ALGOSTAGE_* settings of the module's platform: by default the environments shared with
    the rest of the session (ALGOSTAGE_ENV_DIR), so only the first deploy of a package builds one
    (downloading OpenCV again takes over 5 minutes on a loaded CI machine)."""
    return {"ALGOSTAGE_ENV_DIR": str(shared_envs)}


@pytest.fixture(scope="module")
def running(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            platform_settings: dict[str, str]) -> Iterator[RunningPlatform]:
    home = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2]) / "home"
    p = start_platform(home, free_port(), ALGOSTAGE_PORT_RANGE=private_port_range(), **platform_settings)
    yield p
    stop_platform(p)


@pytest.fixture(scope="module")
def page(browser: Browser, running: RunningPlatform) -> Iterator[Page]:
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page.goto(running.url)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill("admin-password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Platform overview").wait_for(timeout=60_000)
    yield page
    page.close()


def open_page(page: Page, title: str) -> None:
    page.get_by_role("link", name=title).first.click()
    page.wait_for_load_state("networkidle")


def services(running: RunningPlatform) -> dict[str, dict]:
    out = running.cli("services", "--json", check=True).stdout
    return {s["name"]: s for s in json.loads(out)}


def deploy_demos(running: RunningPlatform, names: Sequence[str]) -> None:
    """Upload and deploy the demo packages `names` through the command line; fails unless the
    platform's services are then exactly these, all RUNNING."""
    for name in names:
        running.cli("upload", str(DEMO / name), check=True)
        running.cli("deploy", name, check=True, timeout=600)
    assert {n: s["state"] for n, s in services(running).items()} == dict.fromkeys(names, "RUNNING")


def pick(page: Page, label: str, option: str, nth: int = 0) -> None:
    """Choose `option` in the nth Streamlit select box labelled `label`."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).nth(nth)
    box.click()
    page.get_by_role("option", name=option).first.click()


def uploaded(page: Page) -> None:
    """Until the file chosen in the page's file uploader has reached the server: Streamlit sends it
    in the background, and a form submitted before that sees no file."""
    chips = page.locator('[data-testid="stFileChipName"]')
    expect(chips).to_have_count(1, timeout=60_000)
    expect(page.locator('[data-testid="stFileChipIconSpinner"]')).to_have_count(0, timeout=60_000)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failed browser test's report also says what its page said (alerts, exceptions) and keeps a
    screenshot: a CI log shows why a wait timed out, not only that it did."""
    outcome = yield
    report = outcome.get_result()
    page = next((v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Page)), None)
    if report.when != "call" or not report.failed or page is None or page.is_closed():
        return
    try:
        said = page.locator('[data-testid="stAlert"], [data-testid="stException"]').all_inner_texts()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"failed-{item.name}.png"), full_page=True)
        report.sections.append(("page", f"url: {page.url}\n" + "\n---\n".join(said or ["(no alert on the page)"])))
    except Exception as e:   # the report must not fail because the page could not be read
        report.sections.append(("page", f"could not read the page: {e!r}"))
