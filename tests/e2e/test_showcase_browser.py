"""The Showcase in a real browser against a platform started by `up`, with sentiment-zh, ner-zh,
face-detect and person-detect deployed through the command line: a label with its score bars
for a demo text and a typed one; entities highlighted in a Chinese sentence with their table;
annotated demo videos that the browser decodes and plays, with their frame counts and per-frame
charts; a long video run cancelled half-way. Screenshots land in test-artifacts/."""
from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from app.i18n import term
from components.results import entity_color
from tests.e2e.conftest import ARTIFACTS, deploy_demos, open_page
from tests.support_platform import RunningPlatform

DEPLOYED = ("sentiment-zh", "ner-zh", "face-detect", "person-detect")
RUN = 120_000       # ms: one call, or the first frames of a video
VIDEO_RUN = 240_000  # ms: a whole (short) video run
NEWS = "清华大学教授张伟昨天在上海出席了复旦大学举办的人工智能论坛，随后前往北京参加会议。"  # news-zh.txt, line 1
# Draws the video's current frame on a canvas: the spread of its pixel values (0 for a blank frame).
FRAME_SPREAD = """v => {
  const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d'); g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let s = 0, s2 = 0, n = 0;
  for (let i = 0; i < d.length; i += 4 * 97) { const y = d[i] + d[i + 1] + d[i + 2]; s += y; s2 += y * y; n++; }
  return Math.sqrt(s2 / n - (s / n) ** 2);
}"""

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def showcase(page: Page, running: RunningPlatform) -> Page:
    """The Showcase page, once the four services are deployed through the command line."""
    deploy_demos(running, DEPLOYED)
    open_page(page, "Showcase")
    page.get_by_text("Demo input").wait_for(timeout=60_000)
    return page


# --- driving the page ------------------------------------------------------------------------------

def choose_algorithm(page: Page, task: str, service: str) -> None:
    """Choose `task` (shown by its name), then `service` as the only algorithm (the algorithms box
    is keyed by the task's id)."""
    choose(page, "Task", term("task", task))
    box = page.locator(f'.st-key-sc-services-{task.replace(".", "-")} [data-testid="stMultiSelect"]')
    expect(box.locator("[data-tag]").first).to_be_visible()  # drawn with its default choice
    if box.get_by_role("button", name=f"Remove {service} ·").count() == 0:
        box.get_by_role("combobox").fill(service)
        page.get_by_role("option", name=service).click()
        page.keyboard.press("Escape")
    others = box.get_by_role("button", name=re.compile(rf"^Remove (?!{re.escape(service)} ·)"))
    for _ in range(others.count()):
        others.first.click()
    expect(box.locator("[data-tag]")).to_have_count(1)
    expect(box).to_contain_text(f"{service} · v1")
    idle(page)


def choose(page: Page, label: str, text: str) -> None:
    """Choose the option containing `text` in the select box `label`. Typed: it filters the list,
    which shows a window of its options only, and opens it even when a click did not (emptied
    first, so that typing the chosen value again changes the input too)."""
    box = page.get_by_role("combobox", name=label)
    box.click()
    box.fill("")
    box.fill(text)
    page.get_by_role("option", name=text).first.click()
    expect(box).to_have_value(re.compile(re.escape(text)))


def idle(page: Page) -> None:
    """Until the script run started by the last change is over."""
    expect(page.locator('[data-testid="stApp"]')).to_have_attribute("data-test-script-state", "notRunning")


def choose_source(page: Page, source: str) -> None:
    page.locator('[data-testid="stRadio"]').filter(has_text="Input").get_by_text(source, exact=True).click()


def choose_demo(page: Page, text: str) -> None:
    choose_source(page, "Demo gallery")
    choose(page, "Demo input", text)


def metric(page: Page, label: str) -> Locator:
    return page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text(label, exact=True)).last


def run(page: Page) -> None:
    button = page.get_by_role("button", name="Run", exact=True)
    expect(button).to_be_enabled()
    button.click()


def no_exception(page: Page) -> None:
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def chart(page: Page, title: str) -> Locator:
    """The drawn Plotly figure (its `data` and `layout` readable) of the chart titled `title`."""
    figure = page.locator('[data-testid="stPlotlyChart"]').filter(has_text=title).last.locator(".js-plotly-plot")
    expect(figure.locator(".main-svg").first).to_be_visible(timeout=RUN)
    return figure


def traces(figure: Locator) -> list[dict[str, Any]]:
    return figure.evaluate("gd => gd.data.map(t => ({type: t.type, x: Array.from(t.x), y: Array.from(t.y)}))")


# --- text ------------------------------------------------------------------------------------------

def assert_classified(page: Page, label: str) -> None:
    """The Label metric says `label`; the score bars hold the three labels with `label` on top."""
    shown = metric(page, "Label")
    expect(shown).to_contain_text(label, timeout=RUN)
    score = metric(page, "Score · confidence").locator('[data-testid="stMetricValue"]').inner_text().strip()
    figure = chart(page, "Scores")
    expect(figure).to_contain_text(score)      # the bars of this run, not of the one before
    (bars,) = traces(figure)
    assert bars["type"] == "bar" and sorted(bars["y"]) == ["negative", "neutral", "positive"]
    assert bars["y"][-1] == label and f"{max(bars['x']):.3f}" == score
    no_exception(page)


def test_1_text_classification_of_a_demo_and_a_typed_text(showcase: Page) -> None:
    page = showcase
    choose_algorithm(page, "text.classification", "sentiment-zh")
    choose_demo(page, "这家餐厅的菜非常好吃")
    run(page)
    assert_classified(page, "positive")

    choose_source(page, "Type text")
    text = page.locator('[data-testid="stTextArea"] textarea')
    text.fill("质量太差了，非常失望，再也不买了。")
    text.press("Control+Enter")
    run(page)
    assert_classified(page, "negative")
    metric(page, "Label").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "showcase-text.png"))


def test_2_entities_highlighted_with_their_table(showcase: Page) -> None:
    page = showcase
    choose_algorithm(page, "text.ner", "ner-zh")
    choose_demo(page, NEWS[:12])
    run(page)
    marks = page.locator("mark")
    marks.first.wait_for(timeout=RUN)
    shown = marks.evaluate_all("ms => ms.map(m => [m.firstChild.textContent, m.querySelector('sub').textContent,"
                               " getComputedStyle(m).backgroundColor])")
    found = {(text, kind) for text, kind, _ in shown}
    assert {("清华大学", "ORGANIZATION"), ("张伟", "PERSON"), ("上海", "LOCATION"), ("复旦大学", "ORGANIZATION"),
            ("北京", "LOCATION")} <= found
    assert all(colour == rgb(entity_color(kind)) for _, kind, colour in shown)
    sentence = page.locator("div:has(> mark)").evaluate(
        "d => { const c = d.cloneNode(true); c.querySelectorAll('sub').forEach(s => s.remove()); return c.textContent }")
    assert sentence == NEWS

    table = page.locator(".st-key-sc-run-0-entities table")
    table.wait_for(timeout=RUN)
    expect(table.locator("tr")).to_have_count(1 + len(shown))   # header + one row per entity
    cells = table.locator("td").all_inner_texts()
    assert all(text in cells and kind in cells for text, kind in found)
    assert str(NEWS.index("复旦大学")) in cells and str(NEWS.index("北京") + 2) in cells
    no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "showcase-ner.png"))


def rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


# --- video -----------------------------------------------------------------------------------------

def start_video(page: Page, service: str, video: str, *, every_nth: int, max_frames: int) -> Locator:
    """Start `service` on the demo `video`; returns the progress bars once they show."""
    choose_algorithm(page, "image.detection", service)
    choose_demo(page, video)
    for label, value in (("Every n-th frame", every_nth), ("At most frames", max_frames)):
        field = page.get_by_role("spinbutton", name=label)
        field.fill(str(value))
        field.press("Enter")
        expect(field).to_have_value(str(value))
    run(page)
    progress = page.locator('[data-testid="stProgress"]')
    expect(progress.first).to_contain_text(f"{service}: frame", timeout=RUN)
    return progress


def result_video(page: Page) -> Locator:
    """The annotated videos of the result, in their container ("sc-videos", "cmp-…-videos"; the
    input's preview is in an expander)."""
    return page.locator('[class*="st-key-"][class*="videos"] video[data-testid="stVideo"]')


def assert_plays(page: Page, video: Locator, *, width: int, duration: float) -> None:
    """The browser decodes `video` (H.264 MP4): it has frames of `width` pixels, lasts `duration`
    seconds, and a frame from its middle, drawn on a canvas, is a picture rather than blank."""
    page.wait_for_function("v => v.readyState >= 2 && v.duration > 0", arg=video.element_handle(), timeout=30_000)
    assert video.evaluate("v => v.error") is None
    assert video.evaluate("v => v.videoWidth") == width
    assert video.evaluate("v => v.duration") == pytest.approx(duration, abs=0.3)
    video.evaluate("v => new Promise(done => { v.addEventListener('seeked', done, {once: true});"
                   " v.currentTime = v.duration / 2; })")
    page.wait_for_function("v => v.readyState >= 2", arg=video.element_handle(), timeout=30_000)
    assert video.evaluate(FRAME_SPREAD) > 20


def assert_video_result(page: Page, service: str, *, frames: list[int], width: int, fps: float) -> None:
    """The run of `service` over `frames` (source frame indices) is shown: the frame counter, a
    video the browser plays, and a per-frame chart whose detections add up to the metric."""
    expect(metric(page, "Frames")).to_contain_text(f"{len(frames)}/{len(frames)}", timeout=VIDEO_RUN)
    expect(page.locator('[data-testid="stProgress"]')).to_have_count(0)
    expect(page.get_by_text(f"{service} · v1", exact=True)).to_be_visible()
    video = result_video(page)
    expect(video).to_have_count(1)
    assert_plays(page, video, width=width, duration=len(frames) / fps)
    count, latency, predict = traces(chart(page, "Per frame"))
    assert (count["type"], latency["type"], predict["type"]) == ("bar", "scatter", "scatter")
    assert count["x"] == frames and latency["x"] == frames and len(predict["y"]) == len(frames)
    detections = int(metric(page, "Detections").locator('[data-testid="stMetricValue"]').inner_text())
    assert detections == sum(count["y"]) > 0
    assert all(ms > 0 for ms in latency["y"])
    no_exception(page)


def screenshot_video(page: Page, name: str) -> None:
    """The result video in view, showing its frame (not the player's loading spinner)."""
    video = result_video(page)
    video.scroll_into_view_if_needed()
    page.wait_for_function("v => v.readyState >= 3 && !v.seeking", arg=video.element_handle(), timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / name))


def test_3_faces_in_megamind(showcase: Page) -> None:
    page = showcase
    start_video(page, "face-detect", "Megamind.avi", every_nth=3, max_frames=30)
    assert_video_result(page, "face-detect", frames=list(range(0, 90, 3)), width=720, fps=23.976 / 3)
    screenshot_video(page, "showcase-video-face.png")


def test_4_people_in_vtest(showcase: Page) -> None:
    page = showcase
    start_video(page, "person-detect", "vtest.avi", every_nth=1, max_frames=40)
    assert_video_result(page, "person-detect", frames=list(range(40)), width=768, fps=10.0)
    screenshot_video(page, "showcase-video-people.png")


def test_5_cancel_a_long_video_run(showcase: Page) -> None:
    page = showcase
    progress = start_video(page, "person-detect", "vtest.avi", every_nth=1, max_frames=0)
    expect(progress.first).to_contain_text(re.compile(r"frame [1-9]\d* of 795"), timeout=RUN)
    page.get_by_role("button", name="Cancel").click()
    warning = page.locator('[data-testid="stAlertContentWarning"]').filter(has_text="Cancelled after")
    expect(warning).to_be_visible(timeout=RUN)
    done, total = map(int, re.search(r"Cancelled after (\d+) of (\d+) frames", warning.inner_text()).groups())
    assert total == 795 and 1 <= done < total
    expect(metric(page, "Frames")).to_contain_text(f"{done}/{total}")
    expect(page.locator('[data-testid="stProgress"]')).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.locator('[data-testid="stAlertContentError"]')).to_have_count(0)
    no_exception(page)
    assert_plays(page, result_video(page), width=768, duration=done / 10.0)
    warning.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "showcase-video-cancelled.png"))


# --- comparing the face detectors --------------------------------------------------------------------

MODELS = ("Haar (default)", "Haar (alt2)", "LBP (improved)")   # the manifest's labels of its models
LABELS = [f"{i}. face-detect · Model={m}" for i, m in enumerate(MODELS, 1)]


def three_face_detectors(page: Page) -> None:
    """The Compare page set up with face-detect in three columns, one cascade each."""
    open_page(page, "Compare")
    choose(page, "Task", term("task", "image.detection"))
    columns = page.get_by_role("spinbutton", name="Columns")
    columns.fill("3")
    columns.press("Enter")
    expect(page.get_by_role("combobox", name="Column 3")).to_be_visible()
    for i in (1, 2, 3):
        choose(page, f"Column {i}", "face-detect")
    for i, model in enumerate(MODELS):
        box = page.locator(f".st-key-cmp-{i}-face-detect-model").get_by_role("combobox")
        if box.input_value() != model:
            box.click()
            box.fill("")
            box.fill(model)
            page.get_by_role("option", name=model, exact=True).click()
        expect(box).to_have_value(model)
        idle(page)


def compare(page: Page) -> None:
    button = page.get_by_role("button", name="Compare", exact=True)
    expect(button).to_be_enabled()
    button.click()


def summary_rows(page: Page) -> Locator:
    table = page.locator('[data-testid="stDataFrame"]').last
    table.scroll_into_view_if_needed()
    return table.locator('[role="row"]')


def test_6_face_detectors_compared_on_a_demo_image_and_on_the_face_video(showcase: Page) -> None:
    page = showcase
    three_face_detectors(page)
    choose_demo(page, "messi5.jpg")
    compare(page)
    for label in LABELS:
        expect(page.get_by_role("heading", name=label)).to_be_visible(timeout=RUN)
    expect(page.locator('[data-testid="stColumn"] [data-testid="stImage"]')).to_have_count(3)  # boxes drawn
    expect(page.get_by_text("How they differ")).to_be_visible()
    expect(summary_rows(page)).to_have_count(1 + 3)   # header + one row per pair of columns
    total, predict = traces(chart(page, "Latency per column"))
    assert total["x"] == predict["x"] == LABELS and all(ms > 0 for ms in total["y"])
    no_exception(page)

    choose_demo(page, "Megamind.avi")
    for label, value in (("Every n-th frame", 3), ("At most frames", 30)):
        field = page.get_by_role("spinbutton", name=label)
        field.fill(str(value))
        field.press("Enter")
        expect(field).to_have_value(str(value))
    compare(page)
    expect(page.locator('[data-testid="stProgress"]').first).to_contain_text("of 3 · face-detect", timeout=RUN)
    expect(page.locator('[data-testid="stProgress"]')).to_have_count(0, timeout=VIDEO_RUN)
    frames = page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text("Frames", exact=True))
    expect(frames).to_have_count(3)
    for i in range(3):
        expect(frames.nth(i)).to_contain_text("30/30")
    videos = result_video(page)
    expect(videos).to_have_count(3)
    for i in range(3):
        assert_plays(page, videos.nth(i), width=720, duration=30 / (23.976 / 3))
    expect(summary_rows(page)).to_have_count(1 + 3)
    cells = page.locator('[data-testid="stDataFrame"]').last.locator('[role="gridcell"]').all_inner_texts()
    assert cells.count("30") >= 3 and any(c.endswith("/30") for c in cells)   # frames compared, in full agreement
    counts = traces(chart(page, "Found per frame"))
    assert len(counts) == 3 and all(t["x"] == list(range(0, 90, 3)) for t in counts)
    boxes = traces(chart(page, "Latency per frame, by column"))
    assert [t["type"] for t in boxes] == ["box", "box"] and sorted(set(boxes[0]["x"])) == LABELS
    no_exception(page)
    page.get_by_text("How they differ").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "compare-video.png"))
