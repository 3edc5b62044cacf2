"""app.media's video pipeline on the real demo videos, with real decoding and H.264 encoding (PyAV's
libx264), an in-process HOG people detector standing in for a service, and predicts that sleep,
block, fail or misbehave to check concurrency, ordering, cancel and errors."""
from __future__ import annotations

import importlib.util
import json
import random
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from app.media import (H264Writer, MediaError, decode_image, encode_jpeg, iter_frames, label_color, probe_video,
                       run_video, video_poster)
from orchestration.runner import images

from tests.conftest import ROOT, demo_media


@pytest.fixture(scope="module")
def vtest() -> Path:
    return demo_media("vtest.avi")


def ffprobe(path: Path) -> dict:
    """What a browser cares about, read back with FFmpeg (PyAV): codec, pixel format, frames
    actually decodable, rate, size, and whether the index (moov) precedes the data (mdat)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        info = {"codec": s.codec_context.name, "pix_fmt": s.codec_context.pix_fmt, "rate": float(s.average_rate),
                "width": s.codec_context.width, "height": s.codec_context.height, "container": c.format.name}
        info["frames"] = sum(1 for _ in c.decode(s))
    head = path.read_bytes()
    info["faststart"] = 0 <= head.find(b"moov") < head.find(b"mdat")
    return info


class HogPredict:
    """People detection like the person-detect demo, decoding the body (JPEG or raw) as a runner does."""

    def __init__(self, width: int = 640) -> None:
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.width = width

    def __call__(self, body: bytes) -> dict:
        return self.detect(images.decode(body))

    def detect(self, image: np.ndarray) -> dict:
        factor = image.shape[1] / self.width
        small = cv2.resize(image, (self.width, round(image.shape[0] / factor)), interpolation=cv2.INTER_AREA)
        rects, weights = self.hog.detectMultiScale(small, winStride=(8, 8), padding=(8, 8), scale=1.1)
        boxes = [{"x": round(x * factor), "y": round(y * factor), "w": round(w * factor), "h": round(h * factor),
                  "label": "person", "score": round(float(s), 6)} for (x, y, w, h), s in zip(rects, np.ravel(weights))]
        return {"boxes": sorted(boxes, key=lambda b: (-b["score"], b["x"], b["y"]))}   # HOG's order varies


class Gauge:
    """Counts calls in flight; remembers the most seen at once."""

    def __init__(self) -> None:
        self.lock, self.now, self.max, self.calls = threading.Lock(), 0, 0, 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.calls += 1
            self.max = max(self.max, self.now)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


def sleeper(seconds: float, gauge: Gauge):
    def predict(body: bytes) -> dict:
        with gauge:
            time.sleep(seconds)
        return {"boxes": []}
    return predict


def jpeg_bodies(path: Path, n: int) -> list[bytes]:
    """The first `n` frames as run_video sends them (JPEG quality 90)."""
    bodies = []
    for _, frame in iter_frames(path):
        if len(bodies) == n:
            break
        bodies.append(encode_jpeg(frame, 90))
    return bodies


# --- probe ---------------------------------------------------------------------------------------

def test_probe_reads_the_demo_videos(vtest):
    assert probe_video(vtest) == probe_video(vtest)
    info = probe_video(vtest)
    assert (info.frames, info.fps, info.width, info.height, info.codec) == (795, 10.0, 768, 576, "msmpeg4")
    assert info.duration_s == 79.5
    mega = probe_video(demo_media("Megamind.avi"))
    assert (mega.width, mega.height, mega.codec) == (720, 528, "mpeg4") and abs(mega.fps - 23.976) < 0.01


def test_poster_is_the_first_frame_with_the_probe(vtest):
    info, first = video_poster(vtest)
    assert info == probe_video(vtest) and first.shape == (576, 768, 3)
    assert np.array_equal(first, next(iter_frames(vtest))[1])


def corrupt_files(tmp_path: Path, vtest: Path) -> dict[str, Path]:
    data = vtest.read_bytes()
    movi = data.find(b"movi")
    files = {"truncated in the header": data[:movi - 100], "truncated before the first frame": data[:movi + 4],
             "random bytes": np.random.default_rng(3).bytes(50_000), "text": b"not a video\n" * 100, "empty": b"",
             "an image": demo_media("fruits.jpg").read_bytes()}
    out = {}
    for name, content in files.items():
        out[name] = tmp_path / f"{name.replace(' ', '_')}.avi"
        out[name].write_bytes(content)
    return out


@pytest.mark.parametrize("case", ["truncated in the header", "truncated before the first frame", "random bytes",
                                  "text", "empty", "an image"])
def test_corrupt_or_unsupported_video_raises_media_error(tmp_path, vtest, case):
    path = corrupt_files(tmp_path, vtest)[case]
    with pytest.raises(MediaError, match=path.name):
        probe_video(path)
    gauge = Gauge()
    with pytest.raises(MediaError):
        run_video(path, sleeper(0, gauge), task="video.detection", out_path=tmp_path / "out.mp4")
    assert gauge.calls == 0 and not (tmp_path / "out.mp4").exists()


def test_probe_counts_frames_when_the_container_does_not_say(tmp_path):
    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=12)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(17):
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 10, np.uint8), format="bgr24")))
        c.mux(s.encode(None))
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0, "matroska keeps no frame count: the probe must count"
    info = probe_video(path)
    assert (info.frames, info.fps, info.width, info.height, info.codec) == (17, 12.0, 64, 48, "h264")


def test_writer_pads_odd_sizes_and_fits_later_frames_to_the_first(tmp_path):
    path = tmp_path / "odd.mp4"
    with H264Writer(path, 5) as writer:
        writer.write(np.full((75, 101, 3), 200, np.uint8))
        writer.write(np.full((150, 202, 3), 50, np.uint8))
        writer.write(np.full((76, 102, 3), 100, np.uint8))
    assert writer.frames == 3
    probe = ffprobe(path)
    assert (probe["codec"], probe["pix_fmt"], probe["width"], probe["height"], probe["frames"]) == (
        "h264", "yuv420p", 102, 76, 3)
    means = [f.to_ndarray(format="bgr24").mean() for f in av.open(str(path)).decode(video=0)]
    assert [round(m / 10) for m in means] == [20, 5, 10]


def test_writer_refuses_a_path_it_cannot_create(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(MediaError, match="cannot write the video"):
        H264Writer(tmp_path / "file" / "o.mp4", 10)


def test_missing_video_raises_media_error(tmp_path):
    with pytest.raises(MediaError, match="cannot be read"):
        probe_video(tmp_path / "nope.avi")


# --- the pipeline --------------------------------------------------------------------------------

def test_raw_frames_reach_the_service_as_the_very_pixels_decoded_and_give_the_same_video(tmp_path, vtest):
    """frame_format="raw": each call gets the NPY frame the runner decodes (orchestration.runner.images)
    to exactly the frame iter_frames gives; outputs, order and the annotated video are as with JPEG."""
    frames = [frame for _, (_, frame) in zip(range(12), iter_frames(vtest))]
    seen: dict[int, np.ndarray] = {}

    def predict(body: bytes) -> dict:
        assert body.startswith(images.NPY_MAGIC)
        image = images.decode(body)
        index = next(i for i, f in enumerate(frames) if np.array_equal(f, image))
        seen[index] = image
        return {"boxes": [{"x": 10 + 4 * index, "y": 20, "w": 60, "h": 120, "label": "person", "score": 1.0}]}

    raw = run_video(vtest, predict, task="video.detection", out_path=tmp_path / "raw.mp4", max_frames=12,
                    frame_format="raw")
    assert sorted(seen) == list(range(12)) and raw.error is None
    assert [o["boxes"][0]["x"] for o in raw.outputs] == [10 + 4 * i for i in range(12)]
    assert ffprobe(raw.out_path)["frames"] == 12
    with av.open(str(raw.out_path)) as c:
        last = list(c.decode(video=0))[-1].to_ndarray(format="bgr24")
    edge = last[30:130, 10 + 4 * 11].astype(int)   # frame 11's box, drawn in the label's colour
    assert np.abs(edge - np.array(label_color("person"))).mean() < 40


def test_hog_finds_the_same_people_in_raw_frames_as_in_process(tmp_path, vtest):
    """Results identical in meaning: raw frames are the decoded pixels, so a service finds exactly
    the boxes the in-process detector finds (JPEG, quality 90, moves a few)."""
    hog = HogPredict()
    frames = [frame for _, (_, frame) in zip(range(20), iter_frames(vtest))]
    expected = [hog.detect(frame) for frame in frames]
    run = run_video(vtest, HogPredict(), task="video.detection", out_path=tmp_path / "o.mp4", max_frames=20,
                    frame_format="raw")
    assert run.outputs == expected and sum(len(o["boxes"]) for o in expected) > 5


def person_detect() -> object:
    spec = importlib.util.spec_from_file_location("person_detect_predict",
                                                  ROOT / "demo_data" / "algorithms" / "person-detect" / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    algorithm = module.Algorithm()
    algorithm.setup()
    return algorithm


@pytest.mark.parametrize("frame_format", ["raw", "jpeg"])
def test_frames_sent_at_the_width_person_detect_works_at_give_boxes_on_the_whole_frame(tmp_path, vtest, frame_format):
    """frame_width=640: the service gets each frame at 640x480, the picture person-detect would make
    of it itself (within a level: shrunk bilinearly, not by its INTER_AREA), and the boxes come
    back in the 768x576 frame's pixels: the people it finds in-process on the whole frame, give or
    take a box moved or dropped, as with JPEG."""
    algorithm = person_detect()
    frames = [frame for _, (_, frame) in zip(range(15), iter_frames(vtest))]
    expected = [algorithm.predict([frame], resize_width=640)[0] for frame in frames]
    seen = []

    def predict(body: bytes) -> dict:
        image = images.decode(body)
        seen.append(image)
        return json.loads(json.dumps(algorithm.predict([image], resize_width=640)[0]))   # as over HTTP

    run = run_video(vtest, predict, task="video.detection", out_path=tmp_path / "o.mp4", max_frames=15,
                    frame_format=frame_format, frame_width=640, in_flight=1)
    assert {image.shape for image in seen} == {(480, 640, 3)} and run.error is None
    if frame_format == "raw":   # in order (in_flight=1): frame i, shrunk
        for frame, image in zip(frames, seen, strict=True):
            area = cv2.resize(frame, (640, 480), interpolation=cv2.INTER_AREA)
            assert np.abs(image.astype(int) - area).mean() < 1
    found, want = (sum(len(o["boxes"]) for o in outs) for outs in (run.outputs, expected))
    assert want > 10 and abs(found - want) <= 3
    assert all(b["x"] + b["w"] <= 768 and b["y"] + b["h"] <= 576 for o in run.outputs for b in o["boxes"])
    assert ffprobe(run.out_path)["width"] == 768, "the annotated video keeps the frame's size"


def test_a_bad_frame_width_is_refused(tmp_path, vtest):
    with pytest.raises(ValueError, match="frame_width"):
        run_video(vtest, sleeper(0, Gauge()), task="video.detection", out_path=tmp_path / "o.mp4", frame_width=0)


def test_opencv_runs_on_the_calling_thread_during_a_run_and_gets_its_threads_back(tmp_path, vtest):
    before, during = cv2.getNumThreads(), []

    def predict(body: bytes) -> dict:
        during.append(cv2.getNumThreads())
        return {"boxes": []}

    run_video(vtest, predict, task="video.detection", out_path=tmp_path / "a.mp4", max_frames=3, opencv_threads=1)
    assert set(during) == {1} and cv2.getNumThreads() == before
    during.clear()
    run_video(vtest, predict, task="video.detection", out_path=tmp_path / "b.mp4", max_frames=3)
    assert set(during) == {before}, "without opencv_threads the run leaves OpenCV alone"


def test_overlapping_runs_that_lower_opencv_threads_restore_them_after_the_last(tmp_path, vtest):
    before, gate, during = cv2.getNumThreads(), threading.Event(), []

    def slow(body: bytes) -> dict:
        gate.wait(10)
        return {"boxes": []}

    first = threading.Thread(target=run_video, args=(vtest, slow), kwargs={
        "task": "video.detection", "out_path": tmp_path / "a.mp4", "max_frames": 2, "opencv_threads": 1})
    first.start()
    time.sleep(0.3)

    def quick(body: bytes) -> dict:
        during.append(cv2.getNumThreads())
        return {"boxes": []}

    run_video(vtest, quick, task="video.detection", out_path=tmp_path / "b.mp4", max_frames=2, opencv_threads=1)
    assert set(during) == {1} and cv2.getNumThreads() == 1, "the first run still lasts"
    gate.set()
    first.join(10)
    assert cv2.getNumThreads() == before

def test_hog_people_detection_over_120_frames_in_order_with_an_h264_video(tmp_path, vtest):
    hog = HogPredict()
    expected = {i: hog(body) for i, body in enumerate(jpeg_bodies(vtest, 120)) if i % 10 == 3}
    out = tmp_path / "annotated" / "vtest.mp4"
    run = run_video(vtest, HogPredict(), task="video.detection", out_path=out, in_flight=2, max_frames=120)

    assert (run.frames_total, run.frames_done, run.error, run.cancelled) == (120, 120, None, False)
    assert {i: run.outputs[i] for i in expected} == expected, "outputs must be the per-frame results, in order"
    assert sum(len(o["boxes"]) for o in run.outputs) > 60, "HOG finds the pedestrians of vtest.avi"
    assert run.frame_indices == list(range(120)) and len(run.latency_ms) == 120
    assert all(ms > 0 for ms in run.latency_ms) and run.fps > 0 and run.out_path == out

    probe = ffprobe(out)
    assert probe == {"codec": "h264", "pix_fmt": "yuv420p", "rate": 10.0, "width": 768, "height": 576,
                     "container": probe["container"], "frames": 120, "faststart": True}
    assert "mp4" in probe["container"]

    # the boxes are in the video: frame 0's first box edge is in the label's colour
    with av.open(str(out)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="bgr24")
    box = run.outputs[0]["boxes"][0]
    edge = first[box["y"] + 5:box["y"] + box["h"] - 5, box["x"]].astype(int)
    assert np.abs(edge - np.array(label_color("person"))).mean() < 40


def test_two_calls_in_flight_finish_about_twice_as_fast(tmp_path, vtest):
    times, gauges = {}, {}
    for in_flight in (1, 2, 4):
        gauges[in_flight] = Gauge()
        t0 = time.perf_counter()
        run = run_video(vtest, sleeper(0.05, gauges[in_flight]), task="video.detection",
                        out_path=tmp_path / f"{in_flight}.mp4", in_flight=in_flight, max_frames=40)
        times[in_flight] = time.perf_counter() - t0
        assert run.frames_done == 40 and run.error is None
    assert times[1] >= 40 * 0.05
    assert times[2] < 0.75 * times[1], times
    assert (gauges[1].max, gauges[2].max, gauges[4].max) == (1, 2, 4)


def test_outputs_stay_in_frame_order_when_calls_finish_out_of_order(tmp_path, vtest):
    def mean_of(body: bytes) -> dict:
        return {"mean": float(decode_image(body).mean())}

    expected = [mean_of(b) for b in jpeg_bodies(vtest, 30)]
    rng, lock = random.Random(5), threading.Lock()

    def jittery(body: bytes) -> dict:
        with lock:
            delay = rng.uniform(0, 0.03)
        time.sleep(delay)
        return mean_of(body)

    run = run_video(vtest, jittery, task="video.detection", out_path=tmp_path / "o.mp4", in_flight=4, max_frames=30)
    assert run.outputs == expected


def test_every_nth_frame_and_the_video_rate(tmp_path, vtest):
    run = run_video(vtest, lambda body: {"boxes": []}, task="video.detection", out_path=tmp_path / "o.mp4",
                    every_nth=3, max_frames=10)
    assert run.frame_indices == list(range(0, 30, 3)) and run.frames_total == 10
    probe = ffprobe(tmp_path / "o.mp4")
    assert probe["frames"] == 10 and abs(probe["rate"] - 10 / 3) < 0.01
    assert [row["frame"] for row in run.summary("video.detection")] == run.frame_indices
    saved = json.loads(json.dumps(run.to_dict()))
    assert saved["frame_indices"] == run.frame_indices and saved["info"]["frames"] == 795
    assert saved["out_path"] == str(tmp_path / "o.mp4") and saved["fps"] == run.fps


def test_progress_is_called_monotonically_up_to_the_total(tmp_path, vtest):
    calls = []
    run = run_video(vtest, lambda body: {"boxes": []}, task="video.detection", out_path=tmp_path / "o.mp4",
                    max_frames=25, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 25) for i in range(26)] and run.frames_done == 25


def test_cancel_after_n_frames_keeps_those_frames(tmp_path, vtest):
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 10:
            cancel.set()

    run = run_video(vtest, sleeper(0.01, Gauge()), task="video.detection", out_path=tmp_path / "o.mp4",
                    progress=progress, cancel=cancel)
    assert run.cancelled and run.error is None
    assert 10 <= run.frames_done <= 12 and len(run.outputs) == run.frames_done
    assert run.frames_total == 795
    assert ffprobe(tmp_path / "o.mp4")["frames"] == run.frames_done


def test_cancel_is_prompt_while_the_service_hangs(tmp_path, vtest):
    release, cancel, gauge = threading.Event(), threading.Event(), Gauge()
    first_five = set(jpeg_bodies(vtest, 5))

    def hangs_after_five(body: bytes) -> dict:
        if body not in first_five:
            with gauge:
                release.wait(30)
        return {"boxes": []}

    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    try:
        t0 = time.perf_counter()
        run = run_video(vtest, hangs_after_five, task="video.detection", out_path=tmp_path / "o.mp4",
                        in_flight=2, cancel=cancel)
        elapsed = time.perf_counter() - t0
    finally:
        release.set()
        timer.cancel()
    assert run.cancelled and run.frames_done == 5 and elapsed < 2.0 and gauge.max == 2
    assert ffprobe(tmp_path / "o.mp4")["frames"] == 5


def test_a_failing_predict_keeps_the_frames_before_it(tmp_path, vtest):
    bad = jpeg_bodies(vtest, 31)[30]

    def fails_on_frame_30(body: bytes) -> dict:
        if body == bad:
            raise RuntimeError("service returned 500: boom")
        return {"boxes": [{"x": 10, "y": 10, "w": 50, "h": 80, "label": "person", "score": 1.0}]}

    out = tmp_path / "o.mp4"
    run = run_video(vtest, fails_on_frame_30, task="video.detection", out_path=out, in_flight=2)
    assert run.error == "frame 30: RuntimeError: service returned 500: boom"
    assert (run.frames_done, len(run.outputs), run.cancelled, run.out_path) == (30, 30, False, out)
    assert ffprobe(out)["frames"] == 30


def test_a_failure_on_the_first_frame_writes_no_video(tmp_path, vtest):
    def down(body: bytes) -> dict:
        raise ConnectionError("connection refused")

    run = run_video(vtest, down, task="video.detection", out_path=tmp_path / "o.mp4")
    assert run.error == "frame 0: ConnectionError: connection refused"
    assert run.frames_done == 0 and run.out_path is None and not (tmp_path / "o.mp4").exists()


def test_an_output_that_is_not_a_dict_is_an_error(tmp_path, vtest):
    run = run_video(vtest, lambda body: [{"boxes": []}], task="video.detection", out_path=tmp_path / "o.mp4")
    assert run.error == "frame 0: predict returned list, not a dict" and run.frames_done == 0


def test_a_file_shorter_than_its_header_says_is_run_to_its_end(tmp_path, vtest):
    short = tmp_path / "short.avi"
    short.write_bytes(vtest.read_bytes()[:2_000_000])
    calls = []
    run = run_video(short, lambda body: {"boxes": []}, task="video.detection", out_path=tmp_path / "o.mp4",
                    progress=lambda done, total: calls.append((done, total)))
    assert run.error is None and 100 < run.frames_done < 795 and run.frames_total == run.frames_done
    assert calls[0] == (0, 795) and [d for d, _ in calls] == list(range(run.frames_done + 1))
    assert ffprobe(tmp_path / "o.mp4")["frames"] == run.frames_done


def test_another_codec_and_rate(tmp_path):
    run = run_video(demo_media("Megamind.avi"), lambda body: {"label": "face", "score": 0.5},
                    task="video.classification", out_path=tmp_path / "m.mp4", max_frames=24)
    probe = ffprobe(tmp_path / "m.mp4")
    assert (probe["codec"], probe["frames"], probe["width"], probe["height"]) == ("h264", 24, 720, 528)
    assert abs(probe["rate"] - 23.976) < 0.01
    assert run.summary("video.classification")[0] == {"frame": 0, "count": 1, "mean_score": 0.5, "label": "face",
                                                       "latency_ms": run.latency_ms[0]}


def test_an_unknown_frame_format_is_refused(tmp_path, vtest):
    with pytest.raises(ValueError, match="frame_format must be one of jpeg, raw, not 'png'"):
        run_video(vtest, sleeper(0, Gauge()), task="video.detection", out_path=tmp_path / "o.mp4", frame_format="png")


def test_bad_arguments_are_refused(tmp_path, vtest):
    for kwargs in ({"in_flight": 0}, {"every_nth": 0}, {"max_frames": -1}):
        with pytest.raises(ValueError):
            run_video(vtest, lambda body: {}, task="video.detection", out_path=tmp_path / "o.mp4", **kwargs)
