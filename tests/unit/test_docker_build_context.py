"""The docker runtime's pure parts: build contexts, generated Dockerfile, how a ReplicaSpec is
rendered into a container (argv, environment, ports), state mapping, and the contract's edge cases
against a fake client (no engine needed)."""
from __future__ import annotations

import io
import tarfile
from dataclasses import replace
from pathlib import Path

import docker.errors
import pytest

from orchestration.builder import BuildOptions
from orchestration.docker import (
    CODE_DIR, PACKAGE_DIR, DockerRuntime, build_args, build_context, container_command, container_env,
    generated_dockerfile, image_tag, published_address,
)
from orchestration.errors import BackendUnavailable, DeployError, NotFound
from orchestration.runtime import ReplicaSpec, Resources, ServiceState

ROOT = Path(__file__).resolve().parents[2]


def files_of(tar_bytes: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.fixture
def runner_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runner"
    d.mkdir()
    (d / "__init__.py").write_text("")
    (d / "__main__.py").write_text("print('runner')\n")
    (d / "requirements.txt").write_text("starlette==1.10.0\n")
    (d / "__pycache__").mkdir()
    (d / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    return d


@pytest.fixture
def package(tmp_path: Path) -> Path:
    p = tmp_path / "releases" / "hello" / "v1-abc"
    p.mkdir(parents=True)
    (p / "algorithm.yaml").write_text("name: hello\ntask: text.classification\nentrypoint: predict:predict\n")
    (p / "predict.py").write_text("def predict(inputs, **params):\n    return inputs\n")
    (p / "requirements.txt").write_text("six==1.16.0\n")
    (p / "samples").mkdir()
    (p / "samples" / "one.txt").write_text("hello")
    (p / ".complete").write_text("abc")
    (p / ".git").mkdir()
    (p / ".git" / "HEAD").write_text("ref")
    return p


def spec_for(package: Path, server: str | None = None, **kw: object) -> ReplicaSpec:
    defaults = dict(env={"GREETING": "hi", "ALGOSTAGE_SERVICE": "hello"}, resources=Resources(0.5, 256),
                    requirements_hash="0123456789abcdef")
    defaults.update(kw)
    return ReplicaSpec("hello", 1, "v1", "abc123", package, 18123, server=server, **defaults)


def test_generated_dockerfile_installs_dependencies_before_copying_source() -> None:
    text = generated_dockerfile("example/base:1", has_ca=True, arg_names=["PIP_INDEX_URL"])
    lines = text.splitlines()
    assert lines[0] == "FROM example/base:1"
    at = {key: next(i for i, ln in enumerate(lines) if ln.startswith(key)) for key in
          ("ARG PIP_INDEX_URL", "COPY requirements/", "RUN PIP_CERT=", "COPY opt/algostage/", "COPY package/")}
    assert at["ARG PIP_INDEX_URL"] < at["COPY requirements/"] < at["RUN PIP_CERT="] \
        < at["COPY opt/algostage/"] < at["COPY package/"]
    assert "pip install -r /opt/algostage/requirements/runner.txt -r /opt/algostage/requirements/package.txt" in text
    assert f"PYTHONPATH={CODE_DIR}" in text
    assert "ARG" not in generated_dockerfile("b", has_ca=False) and "PIP_CERT" not in generated_dockerfile("b", False)


def test_build_context_holds_runner_requirements_and_package(package: Path, runner_dir: Path, tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    ctx = build_context(package, "example/base:1", runner_dir=runner_dir, ca_bundle=ca)
    files = files_of(ctx.tar)
    assert not ctx.own_dockerfile and ctx.dockerfile == "Dockerfile"
    assert files["Dockerfile"].startswith(b"FROM example/base:1\n")
    assert files["requirements/runner.txt"] == b"starlette==1.10.0\n"
    assert files["requirements/package.txt"] == b"six==1.16.0\n"
    assert files["opt/algostage/orchestration/__init__.py"] == b""
    assert files["opt/algostage/orchestration/runner/__main__.py"] == b"print('runner')\n"
    assert files["package/predict.py"].startswith(b"def predict")
    assert files["package/samples/one.txt"] == b"hello"
    assert files[".algostage/ca-bundle.crt"] == ca.read_bytes()
    assert not [n for n in files if ".git" in n.split("/") or "__pycache__" in n or n.endswith(".complete")]


def test_build_context_is_identical_for_identical_inputs(package: Path, runner_dir: Path) -> None:
    first = build_context(package, runner_dir=runner_dir).tar
    (package / "predict.py").touch()  # a new mtime must not change the context (layer cache)
    assert build_context(package, runner_dir=runner_dir).tar == first


def test_package_dockerfile_is_used_with_the_package_as_context(package: Path, runner_dir: Path) -> None:
    (package / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY . /app\nCMD python /app/predict.py\n")
    (package / ".dockerignore").write_text("samples\n")
    ctx = build_context(package, runner_dir=runner_dir)
    files = files_of(ctx.tar)
    assert ctx.own_dockerfile
    assert files["Dockerfile"] == (package / "Dockerfile").read_bytes()
    assert "predict.py" in files and "algorithm.yaml" in files
    assert not [n for n in files if n.startswith(("samples/", "opt/", "requirements/", ".git/"))]


def test_the_runner_spec_is_rendered_for_the_container(package: Path) -> None:
    spec = spec_for(package)
    assert container_command(spec, own_dockerfile=False) == [
        "python", "-m", "orchestration.runner", "--package", PACKAGE_DIR, "--port", "18123", "--host", "0.0.0.0"]
    assert container_command(spec, own_dockerfile=True) is None  # the package's image CMD
    env = container_env(spec, own_dockerfile=False)
    assert env["PYTHONPATH"] == CODE_DIR and env["PATH"].startswith("/opt/venv/bin:")
    assert env["PORT"] == "18123" and env["HOST"] == "0.0.0.0" and env["GREETING"] == "hi"
    assert not [v for v in env.values() if str(package) in v]  # nothing of the platform's host leaks in
    assert "PYTHONPATH" not in container_env(spec, own_dockerfile=True)


def test_a_server_command_gets_its_port_and_an_open_host(package: Path) -> None:
    spec = spec_for(package, "uvicorn main:app --host $HOST --port ${PORT}")
    assert container_command(spec, False) == ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "18123"]
    spec = spec_for(package, "python3 -m http.server $PORT")
    assert container_command(spec, True) == ["python3", "-m", "http.server", "18123"]


@pytest.mark.parametrize(("host", "published"), [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", ""), ("10.1.2.3", "10.1.2.3")])
def test_the_port_is_published_on_the_replicas_host(package: Path, host: str, published: str) -> None:
    assert published_address(spec_for(package, host=host)) == published


def test_image_tag_names_service_version_commit_and_requirements(package: Path, runner_dir: Path) -> None:
    assert image_tag(spec_for(package)) == "algostage/hello:v1-abc123-0123456789ab"
    computed = image_tag(spec_for(package, requirements_hash=""), runner_dir)
    assert computed.startswith("algostage/hello:v1-abc123-") and len(computed.rsplit("-", 1)[1]) == 12
    # the same service and version tag with other code (uploaded again, or another platform) is another image
    assert image_tag(replace(spec_for(package), commit="fedcba98765")) == "algostage/hello:v1-fedcba9876-0123456789ab"


def test_build_args_follow_options_then_machine_and_drop_local_indexes() -> None:
    environ = {"PIP_INDEX_URL": "https://mirror.example/simple",
               "PIP_EXTRA_INDEX_URL": "file:///opt/pypi/simple https://extra.example/simple", "https_proxy": "http://p:3128"}
    assert build_args(BuildOptions(), environ) == {"PIP_INDEX_URL": "https://mirror.example/simple",
                                                   "PIP_EXTRA_INDEX_URL": "https://extra.example/simple",
                                                   "HTTPS_PROXY": "http://p:3128"}
    assert build_args(BuildOptions(index_url="https://own/simple"), environ)["PIP_INDEX_URL"] == "https://own/simple"
    assert build_args(BuildOptions(), {"PIP_FIND_LINKS": "/opt/wheels"}) == {}


# --- the runtime against a fake client -----------------------------------------------------------

class FakeContainer:
    def __init__(self, name: str, status: str, exit_code: int = 0, **extra: object) -> None:
        self.name, self.id, self.short_id = name, "c0ffee" * 10, "c0ffee"
        self.labels = {"algostage.service": "hello"}
        self.attrs = {"State": {"Status": status, "ExitCode": exit_code, "Pid": 42 if status == "running" else 0,
                                "StartedAt": "2026-01-02T03:04:05.123456789Z", **extra}}
        self.calls: list[str] = []

    def start(self) -> None:
        self.calls.append("start")

    def stop(self, timeout: int) -> None:
        self.calls.append("stop")

    def restart(self, timeout: int) -> None:
        self.calls.append("restart")

    def remove(self, force: bool, v: bool) -> None:
        self.calls.append("remove")

    def logs(self, **kw: object) -> bytes:
        self.calls.append(f"logs {kw}")
        return b"line1\nline2\n"


class FakeContainers:
    def __init__(self, *containers: FakeContainer) -> None:
        self.by_name = {c.name: c for c in containers}
        self.created: list[tuple[str, dict]] = []

    def get(self, name: str) -> FakeContainer:
        if name not in self.by_name:
            raise docker.errors.NotFound(f"no container {name}")
        return self.by_name[name]

    def create(self, image: str, **kw: object) -> FakeContainer:
        self.created.append((image, kw))
        self.by_name[kw["name"]] = FakeContainer(kw["name"], "created")
        return self.by_name[kw["name"]]

    def list(self, all: bool, filters: dict) -> list[FakeContainer]:  # noqa: A002 - the SDK's name
        return list(self.by_name.values())


class FakeAPI:
    def __init__(self, output: list[dict]) -> None:
        self.output, self.builds = output, []

    def build(self, **kw: object) -> list[dict]:
        self.builds.append(kw)
        return self.output


class FakeImages:
    def __init__(self, api: FakeAPI) -> None:
        self.api = api

    def get(self, tag: str) -> object:
        if not any(b["tag"] == tag for b in self.api.builds):
            raise docker.errors.ImageNotFound(f"no image {tag}")
        return object()


class FakeClient:
    """The part of docker.DockerClient the runtime uses."""

    def __init__(self, *containers: FakeContainer, build_output: list[dict] | None = None) -> None:
        self.containers = FakeContainers(*containers)
        self.api = FakeAPI(build_output if build_output is not None else [{"stream": "Step 1\nStep"}, {"stream": " 2\n"}])
        self.images = FakeImages(self.api)


def test_deploy_builds_the_package_dockerfile_and_creates_the_container(package: Path, runner_dir: Path) -> None:
    (package / "Dockerfile").write_text("FROM scratch\n")
    client, lines = FakeClient(FakeContainer("algo-hello-1", "running")), []
    runtime = DockerRuntime(client, runner_dir=runner_dir, environ={})
    endpoint = runtime.deploy(spec_for(package), lines.append)
    assert endpoint.url == "http://127.0.0.1:18123"
    build = client.api.builds[0]
    assert build["dockerfile"] == "Dockerfile" and build["tag"] == "algostage/hello:v1-abc123-0123456789ab"
    assert files_of(build["fileobj"].getvalue())["Dockerfile"] == b"FROM scratch\n"
    assert "Step 1" in lines and "Step 2" in lines
    image, kw = client.containers.created[0]
    assert image == "algostage/hello:v1-abc123-0123456789ab" and kw["command"] is None
    assert kw["ports"] == {"18123/tcp": ("127.0.0.1", 18123)} and kw["nano_cpus"] == 500_000_000
    assert kw["mem_limit"] == "256m" and kw["restart_policy"]["Name"] == "on-failure"
    assert kw["labels"] == {"algostage.service": "hello", "algostage.replica": "1", "algostage.version": "v1",
                            "algostage.commit": "abc123", "algostage.managed": "true"}
    assert client.containers.by_name["algo-hello-1"].calls == ["start"]  # the old one was replaced
    assert runtime.build(spec_for(package), lines.append) is False and len(client.api.builds) == 1  # image reused


def test_build_error_is_a_deploy_error_with_the_log(package: Path, runner_dir: Path) -> None:
    client = FakeClient(build_output=[{"stream": "STEP 6: RUN pip install\n"},
                                      {"error": "no such package", "errorDetail": {"message": "no such package"}}])
    with pytest.raises(DeployError) as e:
        DockerRuntime(client, runner_dir=runner_dir, environ={}).deploy(spec_for(package), lambda line: None)
    assert e.value.phase == "build" and "no such package" in str(e.value) and "RUN pip install" in e.value.log
    assert client.containers.created == []


@pytest.mark.parametrize(("status", "exit_code", "state"), [
    ("running", 0, ServiceState.RUNNING), ("restarting", 1, ServiceState.BACKOFF), ("created", 0, ServiceState.STOPPED),
    ("exited", 0, ServiceState.STOPPED), ("exited", 143, ServiceState.STOPPED), ("exited", 1, ServiceState.EXITED),
    ("paused", 0, ServiceState.STOPPED), ("dead", 1, ServiceState.FATAL)])
def test_container_states_map_to_service_states(status: str, exit_code: int, state: ServiceState) -> None:
    runtime = DockerRuntime(FakeClient(FakeContainer("algo-hello-1", status, exit_code)), environ={})
    got = runtime.status("algo-hello-1")
    assert got.state == state and got.exists and got.container_id == "c0ffee" * 10
    assert (got.pid == 42) == (status == "running")
    assert (got.started_at == pytest.approx(1767323045.123456)) == state.is_up


def test_missing_container_contract() -> None:
    runtime = DockerRuntime(FakeClient(), environ={})
    runtime.stop("algo-nope-1")
    runtime.remove("algo-nope-1")
    assert runtime.status("algo-nope-1").state == ServiceState.STOPPED
    assert runtime.status("algo-nope-1").exists is False
    assert runtime.logs("algo-nope-1") == ""
    with pytest.raises(NotFound):
        runtime.start("algo-nope-1")
    with pytest.raises(NotFound):
        runtime.restart("algo-nope-1")


def test_logs_choose_the_stream_and_tail() -> None:
    container = FakeContainer("algo-hello-1", "running")
    runtime = DockerRuntime(FakeClient(container), environ={})
    assert runtime.logs("algo-hello-1", 5, "stderr") == "line1\nline2"
    assert container.calls == ["logs {'stdout': False, 'stderr': True, 'tail': 5}"]
    with pytest.raises(ValueError):
        runtime.logs("algo-hello-1", 5, "both")


def test_unreachable_engine_fails_on_use_not_on_construction(tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/missing.sock"
    runtime = DockerRuntime(docker_host=host)
    with pytest.raises(BackendUnavailable, match=f"container engine at {host} is not reachable"):
        runtime.status("algo-hello-1")
