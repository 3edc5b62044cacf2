"""The videos of a comparison in a real browser, without a platform: the control bar's script
(components/video_sync.py) on a plain page whose videos the test serves itself, so it can make the
browser's media request stall the way it sometimes does on a loaded machine (a video left black,
its seek never completing)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, Route

from app.media import H264Writer
from components.video_sync import SCRIPT

ORIGIN = "http://algostage.test"
KEY = "cmp-videos"

pytestmark = pytest.mark.timeout(120)


def make_clip(path: Path, frames: int) -> bytes:
    """A bright square moving over grey noise at 25 fps: every frame differs from black, and each
    takes a few kilobytes (a browser fetches such a video in several parts, not at once)."""
    noise = np.random.default_rng(7)
    with H264Writer(path, 25) as writer:
        for i in range(frames):
            frame = noise.integers(60, 120, (120, 160, 3), np.uint8)
            x = (2 * i) % 120
            frame[40:80, x:x + 40] = (40, 200, 240)
            writer.write(frame)
    return path.read_bytes()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Two seconds (its poster frame at 0.2 s)."""
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", 50)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Ten seconds (its poster frame at 1 s)."""
    return make_clip(tmp_path_factory.mktemp("clip") / "long.mp4", 250)


def partial(route: Route, clip: bytes, end: int) -> None:
    """Bytes 0..end-1 of the clip as a range answer (a browser then asks for the rest when it needs it)."""
    route.fulfill(status=206, body=clip[:end], headers={
        "Content-Type": "video/mp4", "Accept-Ranges": "bytes", "Content-Range": f"bytes 0-{end - 1}/{len(clip)}"})


def page_html() -> str:
    bar = SCRIPT % {"key": KEY, "key_json": json.dumps(KEY), "text": json.dumps({"play": "Play", "pause": "Pause"}),
                    "seek": "Seek"}
    videos = "".join(f'<video src="/v/{name}.mp4" controls muted></video>' for name in ("a", "b"))
    return f'<html><body><div class="st-key-{KEY}">{videos}</div>{bar}</body></html>'


def test_a_video_whose_media_request_stalls_is_loaded_anew_and_shows_a_frame(browser: Browser, clip: bytes) -> None:
    """Video a's first media request never answers (as Chromium's sometimes never completes):
    the script loads it anew after 4 s without progress, and both videos end up paused on a frame
    past the start, the way an untouched comparison is shown."""
    requests: Counter[str] = Counter()
    held: list[Route] = []

    def serve(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        if path.startswith("/v/"):
            requests[path] += 1
            if path == "/v/a.mp4" and requests[path] == 1:
                held.append(route)   # never answered
                return
            route.fulfill(status=200, body=clip, headers={"Content-Type": "video/mp4", "Accept-Ranges": "bytes"})
        else:
            route.fulfill(status=200, body=page_html(), headers={"Content-Type": "text/html"})

    context = browser.new_context()
    try:
        page = context.new_page()
        page.route(f"{ORIGIN}/**", serve)
        page.goto(f"{ORIGIN}/")
        videos = page.locator(f".st-key-{KEY} video")
        for i in range(2):
            page.wait_for_function("v => v.readyState >= 2 && v.currentTime > 0 && !v.seeking && v.paused",
                                   arg=videos.nth(i).element_handle(), timeout=30_000)
        assert held and requests["/v/a.mp4"] >= 2, requests
        assert videos.nth(0).evaluate("v => Number(v.dataset.reloads)") == 1
        assert videos.nth(1).evaluate("v => v.dataset.reloads") is None    # the healthy one was left alone
        assert abs(videos.nth(0).evaluate("v => v.currentTime") - 0.2) < 0.05   # a tenth of its 2 s
    finally:
        context.close()


def test_a_video_whose_seek_stalls_is_loaded_anew_and_shows_a_frame(browser: Browser, long_clip: bytes) -> None:
    """What a CI run saw: video a got its metadata (readyState 1), the script sought it to its
    poster time, and the request for the data there never completed (`seeking` stayed true for a
    minute). Here a's first answer holds the header and the first frames only, and the request for
    the rest is held: the script loads it anew and it ends up on its poster frame."""
    clip = long_clip
    requests: Counter[str] = Counter()
    held: list[Route] = []
    seen: list[dict] = []
    data_at = clip.index(b"mdat")   # the index is at the front (faststart), then the frames
    first_part = data_at + (len(clip) - data_at) // 20   # the index and about the first half second

    def serve(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        if not path.startswith("/v/"):
            route.fulfill(status=200, body=page_html(), headers={"Content-Type": "text/html"})
            return
        requests[path] += 1
        if path == "/v/a.mp4" and requests[path] == 1:
            partial(route, clip, first_part)
        elif path == "/v/a.mp4" and requests[path] == 2:
            held.append(route)
        else:
            route.fulfill(status=200, body=clip, headers={"Content-Type": "video/mp4", "Accept-Ranges": "bytes"})

    context = browser.new_context()
    try:
        page = context.new_page()
        page.route(f"{ORIGIN}/**", serve)
        page.goto(f"{ORIGIN}/")
        video = page.locator(f".st-key-{KEY} video").nth(0)
        page.wait_for_function("v => v.seeking", arg=video.element_handle(), timeout=10_000)
        seen.append(video.evaluate("v => ({ready: v.readyState, at: v.currentTime})"))
        page.wait_for_function("v => v.readyState >= 2 && v.currentTime > 0 && !v.seeking && v.paused",
                               arg=video.element_handle(), timeout=30_000)
        assert held and seen[0]["at"] == pytest.approx(1.0), (requests, seen)   # stuck seeking its poster time
        assert video.evaluate("v => Number(v.dataset.reloads)") == 1
        assert abs(video.evaluate("v => v.currentTime") - 1.0) < 0.05
    finally:
        context.close()
