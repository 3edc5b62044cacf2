"""The Showcase, Compare and History pages driven through AppTest over a platform with the
fixture text service `hello` deployed on the supervisor runtime (each database backend)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete
from streamlit.testing.v1 import AppTest

from app.auth import Actor, Role
from app.demo import seed_media
from app.invoke import InvokeError
from app.jobs import JobState, Jobs
from app.models import AlgorithmCall, Scenario
from app.platform import Platform
from app.services.deployer import DeployRequest
from tests.conftest import ADMIN, OPERATOR, ROOT, service_platform

pytestmark = pytest.mark.timeout(900)
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"
VIEWER = Actor("viewer", Role.VIEWER)


@pytest.fixture(scope="module")
def deployed(migrated_db_url: str, tmp_path_factory: pytest.TempPathFactory, shared_envs: Path) -> Iterator[Platform]:
    p = service_platform(migrated_db_url, tmp_path_factory.mktemp("ui-showcase-home"), shared_envs)
    seed_media(p)
    for name, folder in (("hello", "hello"), ("hello-image", "hello_image")):
        p.catalog.upload(ADMIN, str(FIXTURES / folder))
        p.deployer.deploy(OPERATOR, DeployRequest(name, runtime="supervisor"))
    yield p
    p.daemon.shutdown()
    p.close()


@pytest.fixture
def env(deployed: Platform, monkeypatch: pytest.MonkeyPatch) -> Platform:
    monkeypatch.setenv("ALGOSTAGE_HOME", str(deployed.home))
    monkeypatch.setenv("DATABASE_URL", deployed.environ["DATABASE_URL"])
    with deployed.sessions.begin() as s:
        s.execute(delete(AlgorithmCall))
        s.execute(delete(Scenario))
    return deployed


def page(name: str, actor: Actor = VIEWER, lang: str = "en") -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=60)
    at.session_state["actor"] = actor
    at.session_state["lang"] = lang
    return at


def text_page(name: str, prefix: str) -> AppTest:
    """`name` opened with the text classification task chosen."""
    at = page(name).run()
    at.selectbox(key=f"{prefix}-task").set_value("text.classification").run()
    return at


def type_text(at: AppTest, text: str) -> AppTest:
    at.radio(key=next(r.key for r in at.radio if r.key.endswith("-source"))).set_value("text").run()
    at.text_area[0].input(text).run()
    return at


def metric(at: AppTest, label: str) -> list[str]:
    return [m.value for m in at.metric if m.label == label]


def page_jobs() -> Jobs:
    """The jobs of the platform the pages use (one per process and home, components.session):
    pages keep only job ids."""
    from components.session import platform
    return platform().jobs


def test_showcase_runs_typed_text_then_answers_from_the_cache(env: Platform) -> None:
    at = page("showcase.py").run()
    assert not at.exception and at.title[0].value == "Showcase"
    assert at.selectbox(key="sc-task").options == ["Object detection", "Text classification"]   # tasks by name
    at.selectbox(key="sc-task").set_value("text.classification").run()
    assert at.multiselect[0].value == ["hello"]
    type_text(at, "hello world")
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert metric(at, "Label") == ["long"]
    assert not any("Cached" in i.value for i in at.info)
    at.button[0].click().run()
    assert metric(at, "Label") == ["long"]
    assert any("Cached result" in i.value for i in at.info)
    assert len(env.history.calls(ADMIN)) == 1

    at.toggle(key="sc-force").set_value(True).run()
    at.button[0].click().run()
    assert not any("Cached" in i.value for i in at.info) and len(env.history.calls(ADMIN)) == 2


def test_showcase_draws_boxes_on_a_demo_image_and_runs_a_video_with_progress(env: Platform) -> None:
    at = page("showcase.py").run()
    at.selectbox(key="sc-task").set_value("image.detection").run()
    assert at.multiselect[0].value == ["hello-image"]
    at.selectbox(key="sc-input-gallery").set_value("demo-media/media/messi5.jpg").run()
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.get("image")   # the annotated image
    boxes = next(tb.value for tb in at.table if "Label" in tb.value.columns)   # a whole table, not a grid
    assert boxes[["Label", "Box (x, y · w×h)"]].values.tolist() == [["image", "0, 0 · 548×342"]]

    at.selectbox(key="sc-input-gallery").set_value("demo-media/media/Megamind.avi").run()
    at.number_input[1].set_value(4).run()   # at most 4 frames
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = page_jobs().wait(VIEWER, at.session_state["sc-video"]["hello-image"], 60)
    assert job.state is JobState.DONE and job.error is None
    at.run()
    assert not at.exception and not at.error
    assert metric(at, "Frames") == ["4/4"] and metric(at, "Detections") == ["4"]
    assert at.get("video") and at.get("plotly_chart")
    assert job.result.video_key and env.objects.stat("results", job.result.video_key) is not None


def test_showcase_parameters_come_from_the_manifest(env: Platform) -> None:
    at = text_page("showcase.py", "sc")
    assert {s.label for s in at.slider} == {"threshold", "n"}
    assert [s.label for s in at.selectbox if s.label == "mode"] == ["mode"]
    assert [t.label for t in at.toggle if t.label == "upper"] == ["upper"]
    assert "note" in [t.label for t in at.text_input]
    type_text(at, "abc")
    at.toggle(key="sc-text.classification-hello-upper").set_value(True).run()
    at.button[0].click().run()
    assert metric(at, "Label") == ["SHORT"]
    assert env.history.calls(ADMIN)[0].params["upper"] is True


def test_showcase_refuses_over_long_text_with_a_message(env: Platform) -> None:
    at = text_page("showcase.py", "sc")
    type_text(at, "x" * 10_001)
    assert not at.exception
    assert any("10,001 characters" in e.value for e in at.error)
    assert at.button[0].disabled
    assert env.history.calls(ADMIN) == []


def test_history_page_shows_the_call_and_exports_csv(env: Platform) -> None:
    env.showcase.run(VIEWER, "hello", "from the viewer")
    env.showcase.run(OPERATOR, "hello", "from the operator")
    at = page("history.py").run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["Service"]) == ["hello"] and list(table["User"]) == ["viewer"]
    assert metric(at, "Calls") == ["1"]
    assert at.get("plotly_chart") and at.get("download_button")

    at = page("history.py", OPERATOR).run()
    assert sorted(at.dataframe[0].value["User"]) == ["op", "viewer"]
    at.selectbox[1].select("op").run()
    assert list(at.dataframe[0].value["User"]) == ["op"]


def test_history_page_says_a_failed_calls_error_in_the_pages_language(env: Platform) -> None:
    with pytest.raises(InvokeError):
        env.invoker.invoke(VIEWER, "hello", ["x"], {"threshold": 7})   # refused by the service
    at = page("history.py", lang="zh").run()
    assert not at.exception
    [error] = at.dataframe[0].value["错误"].tolist()
    assert error.startswith("参数错误：threshold:"), error
    [error] = page("history.py").run().dataframe[0].value["Error"].tolist()
    assert error.startswith("bad parameters: threshold:"), error


def test_compare_page_renders_two_columns_and_saves_a_scenario(env: Platform) -> None:
    at = text_page("compare.py", "cmp")
    assert not at.exception and at.title[0].value == "Compare"
    type_text(at, "hello there")
    at.slider(key="cmp-1-hello-n").set_value(100).run()
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [h.value for h in at.subheader if h.value[0].isdigit()] == ["1. hello · n=5", "2. hello · n=100"]
    assert metric(at, "Label") == ["long", "short"]
    summary = next(d.value for d in at.dataframe if "Pair" in d.value.columns)
    assert summary["Labels agree"].tolist() == ["no"]

    at.text_input(key="cmp-scenario-name").input("two thresholds").run()
    at.button[1].click().run()
    assert any("two thresholds" in s.value for s in at.success)
    assert [s.name for s in env.showcase.scenarios(VIEWER)] == ["two thresholds"]

    at = page("compare.py").run()
    replay = next(b for b in at.button if b.label == "Replay")
    replay.click().run()
    assert not at.exception and metric(at, "Label") == ["long", "short"]
    assert sum("Cached result" in i.value for i in at.info) == 2


def test_compare_page_runs_two_columns_over_a_video_and_replays_it_as_a_scenario(env: Platform) -> None:
    at = page("compare.py").run()
    at.selectbox(key="cmp-task").set_value("image.detection").run()
    at.selectbox(key="cmp-input-gallery").set_value("demo-media/media/Megamind.avi").run()
    at.number_input(key="cmp-max-frames").set_value(3).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = page_jobs().wait(VIEWER, at.session_state["cmp-video"], 60)
    assert [c.service for c in job.result[0].columns] == ["hello-image", "hello-image"]
    assert job.state is JobState.DONE and job.error is None
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert metric(at, "Frames") == ["3/3", "3/3"]
    assert len(at.get("video")) == 2   # the annotated videos (the AVI's preview is its first frame)
    assert any("720×528, 270 frames at 24.0 fps (11.3 s), mpeg4" in str(i.proto) for i in at.get("image")), \
        [i.proto for i in at.get("image")]
    summary = next(d.value for d in at.dataframe if "Pair" in d.value.columns)
    assert summary[["Frames compared", "Matched (IoU ≥ 0.5)", "Only left", "Box agreement"]].values.tolist() == [
        [3, 3, 0, "100%"]]   # hello-image finds one whole-image box per frame, in both columns
    assert len(at.get("plotly_chart")) == 2   # found per frame, latency per frame by column

    at.text_input(key="cmp-scenario-name").input("video, 3 frames").run()
    next(b for b in at.button if b.label == "Save").click().run()
    assert any("video, 3 frames" in s.value for s in at.success), [e.value for e in at.error]
    [saved] = env.showcase.scenarios(VIEWER)
    assert (saved.spec.inputs, saved.spec.every_nth, saved.spec.max_frames) == (
        ["demo-media/media/Megamind.avi"], 3, 3)   # the sampled preview's every 3rd frame

    at = page("compare.py").run()
    next(b for b in at.button if b.label == "Replay").click().run()
    job = page_jobs().wait(VIEWER, at.session_state["cmp-video"], 60)
    assert [c.service for c in job.result[0].columns] == ["hello-image", "hello-image"]
    assert job.state is JobState.DONE and job.error is None
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert metric(at, "Frames") == ["3/3", "3/3"]
    assert sum("Cached video run" in i.value for i in at.info) == 2   # the same frames: from the video cache


def test_pages_in_chinese(env: Platform) -> None:
    for name, title in (("showcase.py", "算法展示"), ("compare.py", "对比"), ("history.py", "调用历史")):
        at = page(name, VIEWER, "zh").run()
        assert not at.exception and at.title[0].value == title
