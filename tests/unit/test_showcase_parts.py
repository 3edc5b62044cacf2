"""The Showcase package's seams, with a fake invoker over a fresh SQLite platform: one lookup of a
service per run, per comparison column and per video plan (however many frames); every part checks
the actor; the package imports without a cycle."""
from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from app.auth import Actor, Role
from app.catalog.manifest import load_manifest
from app.errors import PermissionDenied
from app.invoke import CallResult, Target
from app.jobs import Jobs, JobState
from app.platform import Platform
from app.showcase.inputs import InputData
from app.showcase.runs import Column
from app.showcase.showcase import Showcase
from tests.conftest import ROOT, demo_media

ALICE = Actor("alice", Role.VIEWER, 1)
NOBODY = Actor("nobody", "nobody")  # type: ignore[arg-type]  # a role with no permission at all
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"
PACKAGE = ROOT / "app" / "showcase"


class FakeInvoker:
    """Targets from the fixture manifests; every invoke answers at once. Counts lookups, and
    remembers what each invoke was given as its service."""

    def __init__(self) -> None:
        self.manifests = {"hello": load_manifest(FIXTURES / "hello").model_dump(mode="json"),
                          "hello-image": load_manifest(FIXTURES / "hello_image").model_dump(mode="json")}
        self.lookups: list[str] = []
        self.invoked_with: list[Any] = []
        self.recorded: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def target(self, actor: Actor, name: str) -> Target:
        self.lookups.append(name)
        manifest = self.manifests[name]
        return Target(name, 1, 1, 1, "v1", manifest["task"], manifest, 5.0, 1, 8)

    def invoke(self, actor: Actor, service: str | Target, inputs: list[Any], params: dict[str, Any] | None = None,
               *, input_ref: str = "", record: bool = True) -> CallResult:
        with self._lock:
            self.invoked_with.append(service)
        output = {"boxes": []} if isinstance(inputs[0], bytes) else {"label": "short", "score": 0.1}
        return CallResult(None, getattr(service, "name", service), "v1", [output] * len(inputs), 1.0, 0.5, "r0")

    def record(self, actor: Actor, target: Target, params: dict[str, Any], **call: Any) -> int:
        self.recorded.append({"service": target.name, "params": params, **call})
        return len(self.recorded)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    home = tmp_path_factory.mktemp("showcase-parts")
    p = Platform.open(home, {"ALGOSTAGE_HOME": str(home)})
    yield p
    p.close()


@pytest.fixture
def fake() -> FakeInvoker:
    return FakeInvoker()


@pytest.fixture
def jobs() -> Jobs:
    return Jobs()


@pytest.fixture
def showcase(platform: Platform, fake: FakeInvoker, jobs: Jobs, tmp_path: Path) -> Showcase:
    return Showcase(platform.sessions, fake, platform.objects, platform.services, jobs,  # type: ignore[arg-type]
                    workdir=tmp_path)


def video(frames_of: str = "Megamind.avi") -> InputData:
    return InputData(f"demo-media/media/{frames_of}", "video", data=demo_media(frames_of).read_bytes())


def test_a_run_looks_its_service_up_once_and_hands_the_target_to_invoke(showcase: Showcase,
                                                                         fake: FakeInvoker) -> None:
    result = showcase.run(ALICE, "hello", "a short text", {"n": 3})
    assert result.ok and result.params["n"] == 3 and result.params["threshold"] == 0.5
    assert fake.lookups == ["hello"] and [type(s) for s in fake.invoked_with] == [Target]


def test_a_comparison_looks_each_column_up_once(showcase: Showcase, fake: FakeInvoker) -> None:
    cmp = showcase.compare(ALICE, "a short text", [Column("hello", {"n": n}) for n in (1, 5, 50)])
    assert [r.params["n"] for r in cmp.results] == [1, 5, 50] and len(cmp.pairs) == 3
    assert fake.lookups == ["hello"] * 3 and all(isinstance(s, Target) for s in fake.invoked_with)


def test_a_video_plan_looks_its_service_up_once_for_every_frame(showcase: Showcase, fake: FakeInvoker) -> None:
    plan = showcase.plan_video(ALICE, "hello-image", video(), {}, every_nth=3, max_frames=6)
    result = showcase.run_video(ALICE, "hello-image", plan.data, {}, every_nth=3, max_frames=6)
    assert result.complete and [r["frame"] for r in result.frames] == [0, 3, 6, 9, 12, 15]
    assert fake.lookups == ["hello-image", "hello-image"]   # one per plan (plan_video, then run_video)
    assert len(fake.invoked_with) == 6 and all(isinstance(s, Target) for s in fake.invoked_with)
    assert len({id(s) for s in fake.invoked_with}) == 1   # the plan's Target, every frame
    [call] = fake.recorded   # the run is one recorded call, its frames inside
    assert call["output"]["frames"]["frame"] == [0, 3, 6, 9, 12, 15] and call["replica"] == "r0"


def test_a_video_comparison_runs_as_a_job_with_one_lookup_per_column(showcase: Showcase, fake: FakeInvoker,
                                                                      jobs: Jobs) -> None:
    plans = showcase.plan_video_compare(ALICE, video(), [Column("hello-image", {"min_size": m}) for m in (1, 2)],
                                        max_frames=4)
    job = jobs.wait(ALICE, showcase.start_video_compare(ALICE, [plans]), 60)
    assert job.state is JobState.DONE and job.kind == "video-compare" and job.owner == "alice"
    assert (job.stage.index, job.stage.count, job.stage.name) == (2, 2, "hello-image") and job.progress == (4, 4)
    [cmp] = job.result
    assert [len(r.frames) for r in cmp.results] == [4, 4] and [(p.left, p.right) for p in cmp.pairs] == [(0, 1)]
    assert fake.lookups == ["hello-image"] * 2 and all(isinstance(s, Target) for s in fake.invoked_with)
    assert len({id(s) for s in fake.invoked_with}) == 2


# --- every part checks the actor ------------------------------------------------------------------

class Touched(Exception):
    pass


class Poison:
    """Any use of it raises Touched: a method that uses an argument before checking is caught."""

    def __getattr__(self, name: str) -> object:
        raise Touched(name)

    def _touch(self, *args: object, **kw: object) -> object:
        raise Touched("used")

    __iter__ = __len__ = __bool__ = __hash__ = __eq__ = __getitem__ = __call__ = __str__ = _touch  # type: ignore


def test_every_public_method_of_every_part_checks_the_actor_first(showcase: Showcase) -> None:
    parts = [part for part in vars(showcase).values() if type(part).__module__.startswith("app.showcase.")]
    assert {type(p).__name__ for p in parts} == {"Inputs", "Runs", "Comparisons", "Videos", "VideoComparisons",
                                                 "Scenarios"}
    unchecked = []
    for part in [showcase, *parts]:
        for name, method in inspect.getmembers(part, inspect.ismethod):
            if name.startswith("_") or getattr(method, "__internal__", None):
                continue
            params = inspect.signature(method).parameters
            args = {n: Poison() for n, p in params.items() if p.default is inspect.Parameter.empty
                    and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
            try:
                method(**{**args, "actor": NOBODY})
            except PermissionDenied:
                continue
            except Exception as e:  # noqa: BLE001 - anything else means no check came first
                unchecked.append(f"{type(part).__name__}.{name}: {type(e).__name__} {e}")
            else:
                unchecked.append(f"{type(part).__name__}.{name}: returned")
    assert unchecked == []


# --- no import cycle ------------------------------------------------------------------------------

def module_imports(path: Path) -> set[str]:
    """The app.showcase modules `path` imports when it is loaded (not those imported inside
    functions or only for type checking)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("app.showcase."):
            found.add(node.module.rsplit(".", 1)[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.rsplit(".", 1)[1] for a in node.names if a.name.startswith("app.showcase.")}
    return found


def test_the_package_imports_point_one_way() -> None:
    graph = {p.stem: module_imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert {"inputs", "runs", "compare", "scenarios", "video", "video_compare", "showcase"} <= set(graph)
    order: list[str] = []
    while len(order) < len(graph):
        ready = sorted(m for m, deps in graph.items() if m not in order and deps <= set(order))
        assert ready, f"import cycle among {sorted(set(graph) - set(order))}"
        order += ready
    assert order.index("inputs") < order.index("runs") < order.index("compare") < order.index("showcase")


@pytest.mark.parametrize("module", sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"))
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", f"import app.showcase.{module}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
