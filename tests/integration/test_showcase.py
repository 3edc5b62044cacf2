"""The Showcase over real services: the demo `face-detect` and `sentiment-en` deployed by the
deployer on the supervisor runtime (each database backend), demo media seeded into the object
store. Runs, the result cache, forced re-runs, checks before calling, comparisons with box
agreement, video frame by frame, scenarios and replays with the service stopped and removed."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app import media
from app.demo import seed_media
from app.errors import PermissionDenied, ValidationFailed
from app.models import AlgorithmCall
from app.platform import Platform
from app.jobs import JobState
from app.showcase.inputs import InputData, InputRef, Limits
from app.showcase.runs import Column
from app.showcase.scenarios import ScenarioSpec
from app.showcase.showcase import Showcase
from app.storage import DEMO_BUCKET, RESULTS_BUCKET
from app.services.deployer import DeployRequest
from tests.conftest import ADMIN, OPERATOR, ROOT, VIEWER, service_platform

pytestmark = pytest.mark.timeout(1200)
DEMO = ROOT / "demo_data" / "algorithms"
FACE = InputRef(DEMO_BUCKET, "media/messi5.jpg")
MODELS = ("haar_default", "haar_alt2", "lbp")


@pytest.fixture(scope="module")
def deployed(migrated_db_url: str, tmp_path_factory: pytest.TempPathFactory, shared_envs: Path) -> Iterator[Platform]:
    """face-detect and sentiment-en deployed once per backend; the tests below share them, in order."""
    p = service_platform(migrated_db_url, tmp_path_factory.mktemp("showcase-home"), shared_envs)
    seed_media(p)
    for name in ("face-detect", "sentiment-en"):
        p.catalog.upload(ADMIN, str(DEMO / name))
        p.deployer.deploy(OPERATOR, DeployRequest(name, runtime="supervisor", health_timeout=300))
    yield p
    p.daemon.shutdown()
    p.close()


def requests_to_replicas(p: Platform, monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """The requests the platform's invoker sends to replicas from now on (the test's monkeypatch ends it)."""
    sent: list[httpx.Request] = []
    transport = p.invoker._transport
    assert transport is not None
    handle = transport.handle_request
    monkeypatch.setattr(transport, "handle_request", lambda r: sent.append(r) or handle(r))
    return sent


def calls(p: Platform, **where: object) -> int:
    with p.sessions() as s:
        q = select(func.count()).select_from(AlgorithmCall)
        for key, value in where.items():
            q = q.where(getattr(AlgorithmCall, key) == value)
        return s.scalar(q)


def test_gallery_offers_demo_media_by_kind(deployed: Platform) -> None:
    sc = deployed.showcase
    images = {str(i.ref) for i in sc.gallery(VIEWER, "image")}
    assert "demo-media/media/messi5.jpg" in images and not any(r.endswith(".avi") for r in images)
    videos = {str(i.ref) for i in sc.gallery(VIEWER, "video")}
    assert {"demo-media/media/vtest.avi", "demo-media/media/Megamind.avi"} <= videos
    texts = sc.gallery(VIEWER, "text")
    assert len(texts) >= 8 and all(i.ref.line for i in texts)
    assert {i.ref.key for i in texts} == {f"text/{n}-{lang}.txt" for n in ("news", "reviews") for lang in ("en", "zh")}
    assert deployed.objects.stat(DEMO_BUCKET, "media/LICENSE-opencv-samples.txt") is not None  # kept, not offered
    first = sc.load(VIEWER, texts[0].ref)
    assert first.kind == "text" and first.text and "\n" not in first.text
    assert {c.name: c.running for c in sc.services(VIEWER)} == {"face-detect": True, "sentiment-en": True}


def test_a_repeated_run_is_cached_and_force_calls_again(deployed: Platform) -> None:
    sc = deployed.showcase
    first = sc.run(VIEWER, "face-detect", FACE, {"model": "haar_default"})
    assert first.ok and not first.cached and first.error is None and first.call_id
    assert first.version == "v1" and len(first.output["boxes"]) >= 1
    assert first.predict_ms is not None and first.total_ms >= first.predict_ms

    second = sc.run(VIEWER, "face-detect", FACE, {"model": "haar_default"})
    assert second.cached and second.call_id == first.call_id and second.outputs == first.outputs
    assert second.cached_at is not None and second.total_ms == first.total_ms
    defaults = sc.run(VIEWER, "face-detect", FACE, {})   # the defaults spelled out or not: one entry
    assert defaults.cached and defaults.call_id == first.call_id
    other = sc.run(VIEWER, "face-detect", FACE, {"model": "lbp"})
    assert not other.cached

    forced = sc.run(VIEWER, "face-detect", FACE, {"model": "haar_default"}, force=True)
    assert not forced.cached and forced.call_id != first.call_id and forced.outputs == first.outputs
    assert calls(deployed, input_ref=str(FACE), status="ok") == 3
    assert sc.run(VIEWER, "face-detect", FACE, {"model": "haar_default"}).call_id == forced.call_id  # the latest


def test_inputs_and_parameters_are_checked_before_any_call(deployed: Platform, tmp_path: Path) -> None:
    sc = deployed.showcase
    before = calls(deployed)

    def refused(fn, *args, **kwargs) -> list:  # noqa: ANN001
        with pytest.raises(ValidationFailed) as e:
            fn(*args, **kwargs)
        return [(p.field, p.reason) for p in e.value.problems]

    [(field, reason)] = refused(sc.run, VIEWER, "face-detect", FACE, {"scale_factor": 5})
    assert field == "scale_factor" and "between 1.01 and 2" in reason
    assert refused(sc.run, VIEWER, "face-detect", FACE, {"nope": 1})[0][0] == "nope"
    assert "10,001 characters" in refused(sc.run, VIEWER, "sentiment-en", "x" * 10_001)[0][1]
    assert "empty" in refused(sc.run, VIEWER, "sentiment-en", "   ")[0][1]
    assert "takes image input, not text" in refused(sc.run, VIEWER, "face-detect", "a face?")[0][1]
    assert "takes text input, not image" in refused(sc.run, VIEWER, "sentiment-en", FACE)[0][1]
    assert refused(sc.run, VIEWER, "no-such", "x")[0][0] == "service"

    jpeg = deployed.objects.get(DEMO_BUCKET, FACE.key)
    [(field, reason)] = refused(sc.add_media, VIEWER, "broken.jpg", jpeg[: len(jpeg) // 2])
    assert field == "file" and "truncated" in reason
    assert "unsupported type" in refused(sc.add_media, VIEWER, "doc.pdf", b"%PDF-1.7\n\x00\x01\x02binary")[0][1]
    assert "video" in refused(sc.add_media, VIEWER, "clip.avi", b"RIFF\x00\x10\x00\x00AVI LIST" + b"\x00" * 400)[0][1]
    small = Showcase(deployed.sessions, deployed.invoker, deployed.objects, deployed.services, deployed.jobs,
                     workdir=tmp_path, limits=Limits(max_upload_bytes=10_000))
    assert "MiB" in refused(small.add_media, VIEWER, "big.jpg", jpeg)[0][1]
    assert "characters" in refused(small.add_text, VIEWER, "y" * 10_001)[0][1]
    assert refused(sc.load, VIEWER, "demo-media/media/missing.jpg")[0][1].endswith("does not exist")
    assert calls(deployed) == before

    item = sc.add_media(VIEWER, "messi copy.jpg", jpeg)
    assert item.kind == "image" and item.ref.key.startswith("uploads/") and item.ref.key.endswith("messi-copy.jpg")
    assert sc.add_media(VIEWER, "again.jpg", jpeg).ref.key.split("-")[0] == item.ref.key.split("-")[0]
    assert sc.run(VIEWER, "face-detect", item.ref, {"model": "haar_default"}).cached  # same bytes as the demo image


def test_compare_three_cascades_on_a_face(deployed: Platform) -> None:
    cmp = deployed.showcase.compare(VIEWER, FACE, [Column("face-detect", {"model": m}) for m in MODELS])
    assert cmp.task == "image.detection" and [r.params["model"] for r in cmp.results] == list(MODELS)
    assert all(r.ok and r.error is None for r in cmp.results)
    assert cmp.counts[0] >= 1 and cmp.counts[1] >= 1 and cmp.counts[2] is not None, cmp.counts
    assert [(x.left, x.right) for x in cmp.pairs] == [(0, 1), (0, 2), (1, 2)]
    for pair in cmp.pairs:
        assert pair.boxes is not None
        assert len(pair.boxes.pairs) + len(pair.boxes.unmatched_a) == cmp.counts[pair.left]
        assert len(pair.boxes.pairs) + len(pair.boxes.unmatched_b) == cmp.counts[pair.right]
        if pair.boxes.pairs:
            assert 0.5 <= pair.boxes.mean_iou <= 1.0 and pair.box_label_agreement == 1.0
    haar = cmp.pairs[0].boxes   # the two Haar cascades agree on Messi's face (LBP misses it at these settings)
    assert len(haar.pairs) >= 1 and haar.mean_iou >= 0.5

    with pytest.raises(ValidationFailed) as e:
        deployed.showcase.compare(VIEWER, FACE, [Column("face-detect"), Column("face-detect", {"min_size": 1})])
    assert [p.field for p in e.value.problems] == ["column 2 · min_size"]
    with pytest.raises(ValidationFailed, match="columns"):
        deployed.showcase.compare(VIEWER, FACE, [Column("face-detect")] * 5)
    with pytest.raises(ValidationFailed, match="different inputs"):
        deployed.showcase.compare(VIEWER, FACE, [Column("face-detect"), Column("sentiment-en")])


def test_compare_text_columns_reports_label_agreement(deployed: Platform) -> None:
    cmp = deployed.showcase.compare(VIEWER, "The food was good.", [Column("sentiment-en", {"threshold": 0.05}),
                                                                   Column("sentiment-en", {"threshold": 0.99})])
    assert [r.output["label"] for r in cmp.results] == ["positive", "neutral"]
    assert cmp.counts == [None, None] and cmp.pairs[0].label_agrees is False


def test_video_runs_frame_by_frame_into_a_playable_mp4_and_is_cached(deployed: Platform,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sc = deployed.showcase
    video = InputRef(DEMO_BUCKET, "media/Megamind.avi")
    seen: list[tuple[int, int]] = []
    sent = requests_to_replicas(deployed, monkeypatch)
    result = sc.run_video(VIEWER, "face-detect", video, {}, every_nth=5, max_frames=8,
                          progress=lambda done, total: seen.append((done, total)))
    assert [r.headers["content-type"] for r in sent] == ["application/x-npy"] * 8   # the pixels, to this host
    monkeypatch.undo()
    assert result.complete and not result.cached and result.error is None
    assert [r["frame"] for r in result.frames] == [0, 5, 10, 15, 20, 25, 30, 35]
    assert all(r["latency_ms"] > 0 and r["predict_ms"] is not None and r["count"] >= 0 for r in result.frames)
    assert seen[0] == (0, 8) and seen[-1] == (8, 8)
    mp4 = deployed.objects.get(RESULTS_BUCKET, result.video_key)
    assert mp4[4:8] == b"ftyp" and b"avc1" in mp4[:4096]   # H.264 with the index first
    assert calls(deployed, input_ref=str(video)) == 1   # the run is one recorded call, its frames inside

    again = sc.run_video(VIEWER, "face-detect", video, {}, every_nth=5, max_frames=8)
    assert again.cached and again.frames == result.frames and again.video_key == result.video_key
    assert calls(deployed, input_ref=str(video)) == 1

    stop = threading.Event()
    stop.set()
    cancelled = sc.run_video(VIEWER, "face-detect", video, {}, every_nth=5, max_frames=8, force=True, cancel=stop)
    assert cancelled.cancelled and not cancelled.complete and len(cancelled.frames) < 8

    job_id = sc.start_video(VIEWER, sc.plan_video(VIEWER, "face-detect", video, {"model": "lbp"}, max_frames=3))
    job = deployed.jobs.wait(VIEWER, job_id, 120)
    assert job.state is JobState.DONE and job.error is None and job.result.complete and job.progress == (3, 3)
    assert job.kind == "video" and job.owner == "viewer"

    info, poster = sc.video_poster(sc.load(VIEWER, video))
    assert (info.width, info.height, info.frames) == (720, 528, 270)
    assert media.decode_image(poster).shape == (528, 720, 3) and poster[:2] == b"\xff\xd8"

    with pytest.raises(ValidationFailed, match="not a video"):
        sc.plan_video(VIEWER, "face-detect", FACE, {})
    with pytest.raises(ValidationFailed, match="text input, not video"):
        sc.plan_video(VIEWER, "sentiment-en", video, {})
    broken = InputData("broken.avi", "video", data=b"RIFF\x00\x10\x00\x00AVI LIST" + b"\x01" * 2000)
    with pytest.raises(ValidationFailed, match="input"):
        sc.run_video(VIEWER, "face-detect", broken, {})


def test_compare_three_cascades_on_the_face_video_frame_by_frame(deployed: Platform) -> None:
    sc = deployed.showcase
    video = InputRef(DEMO_BUCKET, "media/Megamind.avi")
    plans = sc.plan_video_compare(VIEWER, video, [Column("face-detect", {"model": m}) for m in MODELS],
                                  every_nth=10, max_frames=12)
    job = deployed.jobs.wait(VIEWER, sc.start_video_compare(VIEWER, [plans], force=True), 300)
    assert job.state is JobState.DONE and job.error is None, job.error
    [cmp] = job.result
    assert (job.stage.index, job.stage.count, job.stage.name) == (3, 3, "face-detect") and job.progress == (12, 12)
    assert [c.params["model"] for c in cmp.columns] == list(MODELS) and cmp.task == "image.detection"
    assert all(r is not None and r.complete and len(r.frames) == 12 for r in cmp.results)
    assert all(deployed.objects.get(RESULTS_BUCKET, r.video_key)[4:8] == b"ftyp" for r in cmp.results)
    assert [(x.left, x.right) for x in cmp.pairs] == [(0, 1), (0, 2), (1, 2)]
    for pair in cmp.pairs:
        left, right = (sum(f["count"] for f in cmp.results[i].frames) for i in (pair.left, pair.right))
        assert pair.frames == 12
        assert (pair.matched + pair.only_left, pair.matched + pair.only_right) == (left, right)
    haar = cmp.pairs[0]   # the two Haar cascades find the same face in most frames
    assert haar.matched >= 6 and haar.mean_iou >= 0.5 and haar.agreement >= 0.5, haar

    again = deployed.jobs.wait(VIEWER, sc.start_video_compare(VIEWER, [plans]), 60)   # every column from the cache
    assert again.finished and all(r.cached for r in again.result[0].results)

    # saved as a scenario with an image too: the image replays at once, the video is planned
    spec = ScenarioSpec(["demo-media/media/messi5.jpg", str(video)], [Column("face-detect", {"model": m}) for m in MODELS],
                        every_nth=10, max_frames=12)
    sc.save_scenario(VIEWER, "cascades, image and video", spec)
    assert [c.input.ref for c in sc.replay(VIEWER, "cascades, image and video")] == ["demo-media/media/messi5.jpg"]
    [video_plans] = sc.plan_replay_videos(VIEWER, "cascades, image and video")
    assert [p.cache_key for p in video_plans] == [p.cache_key for p in plans]   # the same frames, the same cache
    replayed = deployed.jobs.wait(VIEWER, sc.start_video_compare(VIEWER, [video_plans, video_plans]), 60)
    assert replayed.finished and (replayed.stage.index, replayed.stage.count) == (6, 6) and len(replayed.result) == 2
    with pytest.raises(ValidationFailed, match="text input, not video frames"):
        sc.save_scenario(VIEWER, "wrong", ScenarioSpec([str(video)], [Column("sentiment-en")]))
    sc.delete_scenario(VIEWER, "cascades, image and video")

    with pytest.raises(ValidationFailed) as e:
        sc.plan_video_compare(VIEWER, video, [Column("face-detect"), Column("face-detect", {"model": "hog"})])
    assert [p.field for p in e.value.problems] == ["column 2 · model"]
    with pytest.raises(ValidationFailed, match="different inputs"):
        sc.plan_video_compare(VIEWER, video, [Column("face-detect"), Column("sentiment-en")])
    with pytest.raises(ValidationFailed, match="not a video"):
        sc.plan_video_compare(VIEWER, FACE, [Column("face-detect"), Column("face-detect")])


def test_a_video_goes_at_the_width_the_algorithm_shrinks_to_and_its_boxes_come_back_on_the_frame(
        deployed: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """person-detect's manifest names `resize_width` its `resize_param`: its frames are sent raw at
    that width (vtest.avi is 768x576), and the boxes are drawn and kept in the frame's pixels."""
    deployed.catalog.upload(ADMIN, str(DEMO / "person-detect"))
    deployed.deployer.deploy(OPERATOR, DeployRequest("person-detect", runtime="supervisor", health_timeout=300))
    sent = requests_to_replicas(deployed, monkeypatch)
    video = InputRef(DEMO_BUCKET, "media/vtest.avi")
    narrow = deployed.showcase.run_video(VIEWER, "person-detect", video, {"resize_width": 384}, every_nth=40,
                                         max_frames=5, force=True)
    shapes = [media.decode_raw(r.read()).shape for r in sent]
    assert narrow.complete and shapes == [(288, 384, 3)] * 5
    sent.clear()
    whole = deployed.showcase.run_video(VIEWER, "person-detect", video, {"resize_width": 0}, every_nth=40,
                                        max_frames=5, force=True)
    assert whole.complete and [media.decode_raw(r.read()).shape for r in sent] == [(576, 768, 3)] * 5
    boxes = [b for out in narrow.outputs for b in out["boxes"]]
    right = [b["x"] + b["w"] for b in boxes]
    assert boxes and max(right) > 384 and max(right) <= 768 and max(b["y"] + b["h"] for b in boxes) <= 576


def test_processes_with_redis_share_results_and_the_agents_health_checks(deployed: Platform) -> None:
    """Issue 11 (Redis for shared state): two more processes' platforms over the same database
    and one Redis. A run in one is a cached result in the other even once its call row is gone
    (served by Redis); the agent's health round is what the other process's manager reports."""
    import uuid

    import redis as redis_client
    from tests.integration.test_shared_state import REDIS_URL
    environ = {**deployed.environ, "REDIS_URL": REDIS_URL}
    first, second = (Platform.open(deployed.home, environ, migrate=False) for _ in range(2))
    try:
        text = f"a lovely demo {uuid.uuid4().hex}"
        ran = first.showcase.run(VIEWER, "sentiment-en", text, {})
        assert ran.ok and not ran.cached
        with deployed.sessions() as s:
            s.query(AlgorithmCall).filter(AlgorithmCall.id == ran.call_id).delete()
            s.commit()
        again = second.showcase.run(VIEWER, "sentiment-en", text, {})
        assert again.cached and again.call_id == ran.call_id and again.outputs == ran.outputs

        first.health_monitor.round()
        views = second.services.list(VIEWER, resources=False)
        published = first.shared.health.read([r.name for v in views for r in v.replicas])
        assert published and second.services.health(VIEWER, views) == published   # same latencies: not re-probed
    finally:
        client = redis_client.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{first.shared.prefix}*"))
        if keys:
            client.delete(*keys)
        first.close()
        second.close()


def test_what_one_call_stores_is_bounded(deployed: Platform) -> None:
    """Issue 11, finding 6: one call stored a 5,000,163-byte output row, and a 10 MB string
    parameter reached the service. Outputs over 1 MiB are kept as a note of their size (and are
    not served from the cache); parameters over 64 KB are refused before any call."""
    from app.invoke import MAX_STORED_OUTPUT_BYTES
    target = deployed.invoker.target(VIEWER, "sentiment-en")
    call_id = deployed.invoker.record(VIEWER, target, {}, input_ref="big", input_hash="h-big",
                                      output={"outputs": ["x" * 5_000_000]}, error="", total_ms=1.0,
                                      predict_ms=1.0, replica="algo-sentiment-en-1")
    with deployed.sessions() as s:
        stored = s.get(AlgorithmCall, call_id).output
    assert "outputs" not in stored and stored["omitted"]["bytes"] > 5_000_000
    assert stored["omitted"]["limit"] == MAX_STORED_OUTPUT_BYTES and len(str(stored)) < 1000
    before = calls(deployed)
    with pytest.raises(ValidationFailed) as refused:
        deployed.invoker.invoke(VIEWER, "sentiment-en", ["fine"], {"note": "y" * 10_000_000})
    assert refused.value.problems[0].field == "params" and "64 KB" in str(refused.value)
    assert calls(deployed) == before


def test_scenarios_replay_cached_and_survive_a_stopped_then_removed_service(deployed: Platform) -> None:
    sc = deployed.showcase
    typed = sc.add_text(VIEWER, "What a wonderful, delightful day!")
    line = next(i.ref for i in sc.gallery(VIEWER, "text") if i.ref.key == "text/reviews-en.txt")
    spec = ScenarioSpec([str(typed.ref), str(line)], [Column("sentiment-en"), Column("sentiment-en", {"threshold": 0.9})])
    saved = sc.save_scenario(VIEWER, "demo day", spec)
    assert saved.created_by == "viewer" and saved.spec.columns[0].params == {"threshold": 0.05}
    with pytest.raises(ValidationFailed) as e:
        sc.save_scenario(VIEWER, " ", ScenarioSpec(["demo-media/none.txt"], [Column("sentiment-en", {"threshold": 2})]))
    assert {p.field for p in e.value.problems} == {"name", "input", "column 1 · threshold"}
    assert [s.name for s in sc.scenarios(VIEWER)] == ["demo day"]

    first = sc.replay(VIEWER, "demo day")
    assert len(first) == 2 and all(len(c.results) == 2 and c.pairs for c in first)
    assert first[0].results[0].output["label"] == "positive" and first[0].input.ref == str(typed.ref)
    second = sc.replay(VIEWER, "demo day")
    assert all(r.cached and r.error is None for c in second for r in c.results)
    assert [r.outputs for c in second for r in c.results] == [r.outputs for c in first for r in c.results]

    assert deployed.services.stop(OPERATOR, ["sentiment-en"]) == {"sentiment-en": None}
    down = sc.replay(VIEWER, "demo day", force=True)
    assert all(r.cached and r.ok and "not reachable" in r.error for c in down for r in c.results)
    assert [r.outputs for c in down for r in c.results] == [r.outputs for c in first for r in c.results]
    fresh = sc.run(VIEWER, "sentiment-en", "A sentence nobody has run before.")
    assert not fresh.ok and not fresh.cached and "not reachable" in fresh.error
    assert {c.name: c.running for c in sc.services(VIEWER)}["sentiment-en"] is False

    deployed.services.remove(OPERATOR, ["sentiment-en"])
    gone = sc.replay(VIEWER, "demo day")
    assert all(r.cached and r.ok and "no service" in r.error for c in gone for r in c.results)

    with pytest.raises(ValidationFailed, match="takes image input, not text"):
        sc.save_scenario(OPERATOR, "ops only", ScenarioSpec([str(line)], [Column("face-detect")]))
    sc.save_scenario(OPERATOR, "ops only", ScenarioSpec([str(FACE)], [Column("face-detect")]))
    with pytest.raises(PermissionDenied):
        sc.delete_scenario(VIEWER, "ops only")
    sc.delete_scenario(VIEWER, "demo day")
    sc.delete_scenario(ADMIN, "ops only")
    assert sc.scenarios(VIEWER) == []
