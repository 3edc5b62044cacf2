"""The Experiments page in a real browser against a platform started by `up`, with sentiment-en
deployed (two replicas) through the command line: the demo datasets added from the page, a small
grid sweep run from the page, then the runs table, the Pareto chart and a drill-down item with its
ground truth and result. Screenshots land in test-artifacts/."""
from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ROOT
from tests.e2e.conftest import ARTIFACTS, open_page, services
from tests.support_platform import RunningPlatform

pytestmark = pytest.mark.timeout(900)
WAIT = 120_000   # ms


@pytest.fixture(scope="module")
def experiments(page: Page, running: RunningPlatform) -> Page:
    running.cli("upload", str(ROOT / "demo_data" / "algorithms" / "sentiment-en"), check=True)
    running.cli("deploy", "sentiment-en", "--replicas", "2", check=True, timeout=600)
    assert services(running)["sentiment-en"]["state"] == "RUNNING"
    open_page(page, "Experiments")
    page.get_by_role("button", name="Add the demo datasets").click()
    expect(page.get_by_text("Datasets (6)")).to_be_visible(timeout=WAIT)
    return page


def idle(page: Page) -> None:
    expect(page.locator('[data-testid="stApp"]')).to_have_attribute("data-test-script-state", "notRunning",
                                                                      timeout=WAIT)


def test_a_small_sweep_from_the_page_shows_the_table_the_pareto_chart_and_an_item(experiments: Page,
                                                                                   running: RunningPlatform):
    page = experiments
    expect(page.get_by_role("combobox", name="Algorithm (deployed service)")).to_have_value(
        "sentiment-en · v1 · RUNNING")
    expect(page.get_by_role("combobox", name="Dataset")).to_have_value("reviews-en · 36 items")
    values = page.get_by_role("textbox", name="threshold (0..1)")
    values.fill("0.1, 0.3, 0.6")
    values.press("Enter")
    idle(page)
    page.get_by_role("button", name="Run sweep").click()
    expect(page.get_by_text("Experiment 1 started")).to_be_visible(timeout=WAIT)

    page.get_by_role("tab", name="Results").click()
    expect(page.get_by_text("DONE · 108/108 calls · 0 errors")).to_be_visible(timeout=WAIT)
    idle(page)
    table = page.locator('[data-testid="stDataFrame"]').first
    expect(table).to_be_visible()
    pareto = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="macro_f1 vs latency").first
    figure = pareto.locator(".js-plotly-plot")
    expect(figure.locator(".main-svg").first).to_be_visible(timeout=WAIT)
    traces = figure.evaluate("gd => gd.data.map(t => ({name: t.name, n: t.x.length}))")
    assert traces[0]["n"] == 3 and traces[-1]["name"] == "Pareto front" and 1 <= traces[-1]["n"] <= 3

    expect(page.get_by_text("Items, worst first")).to_be_visible()
    expect(page.locator('[data-testid="stCaptionContainer"]', has_text="Ground truth")).to_be_visible()
    expect(page.locator('[data-testid="stCaptionContainer"]', has_text="Result")).to_be_visible()
    shown = json.loads(running.cli("experiment", "show", "1", "--json", check=True).stdout)
    assert [r["params"]["threshold"] for r in shown["runs"]] == [0.1, 0.3, 0.6]
    assert all(r["items"] == 36 and r["errors"] == 0 for r in shown["runs"])
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "experiments.png"), full_page=True)


def test_open_in_compare_takes_the_best_and_the_default_configuration_there(experiments: Page,
                                                                           running: RunningPlatform):
    page = experiments
    best = json.loads(running.cli("experiment", "show", "1", "--json", check=True).stdout)["best"]["params"]
    page.get_by_role("tab", name="Results").click()
    page.get_by_role("button", name="Open in Compare (best vs default)").click()
    expect(page.get_by_role("heading", name="Compare")).to_be_visible(timeout=WAIT)
    idle(page)
    assert page.get_by_role("combobox", name="Column 1").input_value().startswith("sentiment-en")
    assert page.get_by_role("combobox", name="Column 2").input_value().startswith("sentiment-en")
    sliders = page.locator('[data-testid="stSlider"]').filter(has_text="threshold")
    expect(sliders).to_have_count(2)
    shown = [float(sliders.nth(i).locator('[data-testid="stSliderThumbValue"]').inner_text()) for i in range(2)]
    assert shown == [best["threshold"], 0.05]                      # the best, then the manifest's default
    expect(page.get_by_role("combobox", name="Demo input")).to_have_value(re.compile(r"uploads/.+\.txt"))
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "experiments-compare.png"), full_page=True)
