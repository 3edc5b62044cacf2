"""The docker runtime: each replica is a container `algo-{slug}-{n}` built from its package, reached
through the Docker API (Docker, or Podman's Docker-compatible service). See orchestration/runtime.py
for the contract every backend honours.

Images are tagged `algostage/<service>:<version>-<commit[:10]>-<requirements hash[:12]>`.
- A package with its own `Dockerfile` is built from that Dockerfile with the package as the build
  context (`.dockerignore` honoured). The container runs the manifest's `server` command if there is
  one, otherwise the image's own CMD, which must serve the §3 API on `$PORT` (and `$HOST`, 0.0.0.0).
- Otherwise a Dockerfile is generated FROM the configurable base image: a venv in /opt/venv, the
  runner's and the package's requirements installed first (that layer is reused while the
  requirements are unchanged), then the runner code (/opt/algostage) and the package (/srv/package).
  Package index, proxy and CA bundle (BuildOptions, else this machine's pip environment) are passed
  to pip as build arguments; the CA bundle is copied into the build context.

Containers listen on 0.0.0.0 inside their own network namespace on port `spec.port`, published on
`spec.host`:`spec.port` of the host (127.0.0.1 by default); the replica's Endpoint is that address. States: running → RUNNING, restarting → BACKOFF, dead → FATAL, created/paused →
STOPPED, exited → STOPPED when it exited 0 or by the stop signal (137/143), EXITED otherwise.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.utils.build import exclude_paths

from orchestration.builder import BuildOptions, build_options
from orchestration.errors import BackendUnavailable, DeployError, Message, NotFound, OrchestrationError
from orchestration.registry import RuntimeContext
from orchestration.runtime import (NAME_PREFIX, Endpoint, LogSink, ReplicaSpec, ReplicaStatus, ServiceState, Usage,
                                   server_argv)

DEFAULT_BASE_IMAGE = "algostage/base:bookworm"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
RUNNER_DIR = Path(__file__).with_name("runner")
PACKAGE_DIR = "/srv/package"        # the package inside the container
CODE_DIR = "/opt/algostage"         # PYTHONPATH inside the container: orchestration/runner lives here
VENV_DIR = "/opt/venv"
CA_IN_CONTEXT = ".algostage/ca-bundle.crt"
CONTAINER_PATH = f"{VENV_DIR}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EXCLUDED = {".git", "__pycache__", ".complete", ".venv", ".mypy_cache", ".pytest_cache"}
FIXED_MTIME = 315532800             # 1980-01-01: contexts are byte-identical for identical files
STOP_EXIT_CODES = {0, 137, 143}     # exited on its own cleanly, or by SIGKILL/SIGTERM from stop
LABEL = "algostage"


@dataclass(frozen=True)
class BuildContext:
    """A tar build context in memory, the Dockerfile's path inside it, and whether the package brought it."""
    tar: bytes
    dockerfile: str
    own_dockerfile: bool


# --- build context (pure functions, unit tested) -----------------------------------------------

def generated_dockerfile(base_image: str, has_ca: bool, arg_names: Iterable[str] = ()) -> str:
    """The Dockerfile for a package without one: dependencies first, then the code.
    `arg_names` are the build arguments (index, proxy) declared for pip."""
    args = "".join(f"ARG {name}\n" for name in sorted(arg_names))
    ca = f"COPY {CA_IN_CONTEXT} /etc/algostage/ca-bundle.crt\n" if has_ca else ""
    cert = "PIP_CERT=/etc/algostage/ca-bundle.crt SSL_CERT_FILE=/etc/algostage/ca-bundle.crt " if has_ca else ""
    return f"""\
FROM {base_image}
ENV VIRTUAL_ENV={VENV_DIR} PATH={CONTAINER_PATH} PYTHONUNBUFFERED=1 PYTHONPATH={CODE_DIR} \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=120 PIP_PROGRESS_BAR=off
RUN python3 -m venv {VENV_DIR}
{args}{ca}# dependency layer: reused as long as the requirements do not change
COPY requirements/ {CODE_DIR}/requirements/
RUN {cert}pip install -r {CODE_DIR}/requirements/runner.txt -r {CODE_DIR}/requirements/package.txt
# code layers
COPY opt/algostage/ {CODE_DIR}/
COPY package/ {PACKAGE_DIR}/
WORKDIR {PACKAGE_DIR}
CMD ["python", "-m", "orchestration.runner", "--package", "{PACKAGE_DIR}", "--host", "0.0.0.0", "--port", "8000"]
"""


def build_context(package_dir: Path, base_image: str = DEFAULT_BASE_IMAGE, *, runner_dir: Path = RUNNER_DIR,
                  ca_bundle: Path | None = None, arg_names: Iterable[str] = ()) -> BuildContext:
    """The build context of a package: the package alone when it has its own Dockerfile, else
    the generated Dockerfile, requirements/{runner,package}.txt, opt/algostage/orchestration/runner
    and package/. Files have fixed owners and times so identical inputs give identical layers."""
    if (package_dir / "Dockerfile").is_file():
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            _add_tree(tar, package_dir, "", _dockerignore(package_dir))
        return BuildContext(buf.getvalue(), "Dockerfile", True)
    has_ca = ca_bundle is not None and ca_bundle.is_file()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", generated_dockerfile(base_image, has_ca, arg_names).encode())
        _add_bytes(tar, "requirements/runner.txt", _read(runner_dir / "requirements.txt"))
        _add_bytes(tar, "requirements/package.txt", _read(package_dir / "requirements.txt"))
        if has_ca:
            _add_bytes(tar, CA_IN_CONTEXT, ca_bundle.read_bytes())
        _add_bytes(tar, "opt/algostage/orchestration/__init__.py", b"")
        _add_tree(tar, runner_dir, "opt/algostage/orchestration/runner", [])
        _add_tree(tar, package_dir, "package", _dockerignore(package_dir))
    return BuildContext(buf.getvalue(), "Dockerfile", False)


def requirements_hash(package_dir: Path, runner_dir: Path = RUNNER_DIR) -> str:
    """Hash of what goes into the dependency layer (used when the spec carries none)."""
    data = _read(runner_dir / "requirements.txt") + b"\0" + _read(package_dir / "requirements.txt")
    return hashlib.sha256(data).hexdigest()


def image_tag(spec: ReplicaSpec, runner_dir: Path = RUNNER_DIR) -> str:
    """`algostage/<service>:<version>-<commit[:10]>-<requirements hash[:12]>`. The commit belongs in
    it: the image holds the package's code, and a version tag alone is not unique (an algorithm
    removed and uploaded again starts at v1 anew; another platform may share the registry)."""
    digest = spec.requirements_hash or requirements_hash(spec.package_dir, runner_dir)
    version = re.sub(r"[^A-Za-z0-9_.-]", "-", spec.version or "latest")
    commit = re.sub(r"[^A-Za-z0-9]", "", spec.commit)[:10]
    return f"algostage/{spec.service}:{version}-{commit + '-' if commit else ''}{digest[:12]}"


def build_args(options: BuildOptions, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Index and proxy settings for pip inside the build: BuildOptions first, else the values
    this machine's own pip uses. Local (file://) indexes cannot be seen from a build; dropped."""
    merged = {**environ, **options.environment()}
    args = {}
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        value = merged.get(key) or merged.get(key.lower(), "")
        value = " ".join(v for v in value.split() if not v.startswith("file:"))
        if value:
            args[key] = value
    return args


def ca_bundle_path(options: BuildOptions, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The CA bundle pip should trust inside the build: BuildOptions', else this machine's."""
    for candidate in (options.ca_bundle, environ.get("PIP_CERT"), environ.get("SSL_CERT_FILE"),
                      environ.get("REQUESTS_CA_BUNDLE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


CONTAINER_HOST = "0.0.0.0"           # inside its own network namespace a replica listens everywhere


def container_command(spec: ReplicaSpec, own_dockerfile: bool) -> list[str] | None:
    """The argv inside the container: the package's own server command, the runner on the package
    (generated image), or None for the image's own CMD (a package Dockerfile without `server`)."""
    if spec.server:
        return server_argv(spec.server, spec.port, CONTAINER_HOST)
    if own_dockerfile:
        return None
    return ["python", "-m", "orchestration.runner", "--package", PACKAGE_DIR,
            "--port", str(spec.port), "--host", CONTAINER_HOST]


def container_env(spec: ReplicaSpec, own_dockerfile: bool) -> dict[str, str]:
    """spec.env, PORT and HOST for the server, and the generated image's paths."""
    env = dict(spec.env)
    if not own_dockerfile:
        env.update(PYTHONPATH=CODE_DIR, PATH=CONTAINER_PATH, VIRTUAL_ENV=VENV_DIR)
    env.update(PORT=str(spec.port), HOST=CONTAINER_HOST, PYTHONUNBUFFERED="1")
    return env


def published_address(spec: ReplicaSpec) -> str:
    """The host address the container's port is published on: `spec.host`, every address for 0.0.0.0."""
    return "" if spec.host in ("0.0.0.0", "") else spec.host


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b""


def _dockerignore(package_dir: Path) -> list[str]:
    path = package_dir / ".dockerignore"
    if not path.is_file():
        return []
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, FIXED_MTIME
    tar.addfile(info, io.BytesIO(data))


def _add_tree(tar: tarfile.TarFile, root: Path, prefix: str, ignore: list[str]) -> None:
    """Regular files of `root` (without EXCLUDED parts and .dockerignore matches), sorted."""
    if not root.is_dir():
        return
    for rel in sorted(exclude_paths(str(root), list(ignore))):
        path = root / rel
        if not path.is_file() or EXCLUDED.intersection(Path(rel).parts) or path.suffix == ".pyc":
            continue
        mode = 0o755 if os.access(path, os.X_OK) else 0o644
        _add_bytes(tar, f"{prefix}/{rel}" if prefix else rel, path.read_bytes(), mode)


# --- the runtime ---------------------------------------------------------------------------------

def create(ctx: RuntimeContext) -> DockerRuntime:
    """The platform's docker runtime (orchestration.registry). Never fails: the engine is contacted on first use."""
    return DockerRuntime(docker_host=ctx.setting("DOCKER_HOST"),
                         base_image=ctx.setting("ALGOSTAGE_DOCKER_BASE_IMAGE") or DEFAULT_BASE_IMAGE,
                         build_options=build_options(ctx.setting))


class DockerRuntime:
    name = "docker"

    def __init__(self, client: docker.DockerClient | Callable[[], docker.DockerClient] | None = None, *,
                 docker_host: str = "", base_image: str = DEFAULT_BASE_IMAGE,
                 build_options: BuildOptions = BuildOptions(), runner_dir: Path = RUNNER_DIR,
                 restart_policy: str = "on-failure", max_restarts: int = 5, stop_timeout: int = 10,
                 build_timeout: int = 3600, environ: Mapping[str, str] = os.environ) -> None:
        """`client` is a DockerClient, or a factory called on first use (so an unreachable
        engine does not fail construction); None builds one for `docker_host`."""
        self.docker_host = docker_host or environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
        self._client = client if client is not None and not callable(client) else None
        self._connect = client if callable(client) else self._default_client
        self.base_image = base_image
        self.build_options = build_options
        self.runner_dir = runner_dir
        self.restart_policy = restart_policy
        self.max_restarts = max_restarts
        self.stop_timeout = stop_timeout
        self.build_timeout = build_timeout
        self.environ = environ
        self._cpu_seen: dict[str, tuple[int, float]] = {}

    # --- lifecycle ------------------------------------------------------------------------------

    def build(self, spec: ReplicaSpec, log: LogSink) -> bool:
        """The image of `spec`'s version (tagged by version and requirements hash); built only if
        the engine does not have it. Returns whether it was built."""
        tag = image_tag(spec, self.runner_dir)
        if self._has_image(tag):
            log(f"image {tag} reused")
            return False
        context = self.context_for(spec)
        log(f"building image {tag} ({'package Dockerfile' if context.own_dockerfile else 'generated Dockerfile'}"
            f" FROM {self.base_image if not context.own_dockerfile else 'the package'})")
        self.build_image(context, tag, log)
        return True

    def deploy(self, spec: ReplicaSpec, log: LogSink) -> Endpoint:
        tag = image_tag(spec, self.runner_dir)
        if not self._has_image(tag):
            self.build(spec, log)
        own_dockerfile = (spec.package_dir / "Dockerfile").is_file()
        self.remove(spec.name)
        with self._engine(f"{spec.name} could not be created"):
            try:
                container = self.client.containers.create(tag, **self._create_args(spec, own_dockerfile))
                container.start()
            except docker.errors.APIError as e:
                raise DeployError(did_not_start(spec.name, _explain(e)), phase="start",
                                  log=self.logs(spec.name, 50, "stderr")) from e
        endpoint = Endpoint.bound(spec.host, spec.port)
        log(f"{spec.name}: container {container.short_id} started, {endpoint.url} -> {spec.port}/tcp")
        return endpoint

    def context_for(self, spec: ReplicaSpec) -> BuildContext:
        return build_context(spec.package_dir, self.base_image, runner_dir=self.runner_dir,
                             ca_bundle=ca_bundle_path(self.build_options, self.environ),
                             arg_names=build_args(self.build_options, self.environ))

    def _has_image(self, tag: str) -> bool:
        with self._engine(f"image {tag} could not be inspected"):
            try:
                self.client.images.get(tag)
                return True
            except docker.errors.ImageNotFound:
                return False

    def build_image(self, context: BuildContext, tag: str, log: LogSink) -> str:
        """Build `context` as `tag`, streaming the output to `log` line by line; returns the tag.
        A failed build raises DeployError(phase="build") carrying the build log."""
        lines: list[str] = []

        def sink(line: str) -> None:
            lines.append(line)
            log(line)
        with self._engine("image build failed"):
            try:
                chunks = self.client.api.build(
                    fileobj=io.BytesIO(context.tar), custom_context=True, dockerfile=context.dockerfile,
                    tag=tag, rm=True, forcerm=True, pull=False, decode=True, timeout=self.build_timeout,
                    buildargs=build_args(self.build_options, self.environ))
                error = _stream_build(chunks, sink)
            except docker.errors.APIError as e:
                raise DeployError(build_failed(_explain(e)), phase="build", log="\n".join(lines)) from e
        if error:
            raise DeployError(build_failed(error), phase="build", log="\n".join(lines))
        return tag

    def start(self, name: str) -> None:
        with self._engine(f"{name} did not start"):
            self._get(name).start()

    def stop(self, name: str) -> None:
        with self._engine(f"{name} did not stop"):
            try:
                self.client.containers.get(name).stop(timeout=self.stop_timeout)
            except docker.errors.NotFound:
                pass

    def restart(self, name: str) -> None:
        with self._engine(f"{name} did not restart"):
            self._get(name).restart(timeout=self.stop_timeout)

    def remove(self, name: str) -> None:
        with self._engine(f"{name} could not be removed"):
            try:
                self.client.containers.get(name).remove(force=True, v=True)
            except docker.errors.NotFound:
                pass

    # --- reading --------------------------------------------------------------------------------

    def status(self, name: str) -> ReplicaStatus:
        with self._engine(f"status of {name} unavailable"):
            try:
                return self._status(self.client.containers.get(name))
            except docker.errors.NotFound:
                return ReplicaStatus(name, ServiceState.STOPPED, exists=False)

    def list(self) -> list[ReplicaStatus]:
        with self._engine("containers could not be listed"):
            found = self.client.containers.list(all=True, filters={"label": f"{LABEL}.managed=true"})
            return sorted((self._status(c) for c in found if c.name.startswith(NAME_PREFIX)), key=lambda s: s.name)

    def logs(self, name: str, lines: int = 200, stream: str = "stdout") -> str:
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"stream must be stdout or stderr, got {stream!r}")
        if lines <= 0:
            return ""
        with self._engine(f"logs of {name} unavailable"):
            try:
                data = self.client.containers.get(name).logs(stdout=stream == "stdout", stderr=stream == "stderr",
                                                              tail=lines)
            except docker.errors.NotFound:
                return ""
        return data.decode(errors="replace").rstrip("\n")

    def usage(self, statuses: Iterable[ReplicaStatus]) -> dict[str, Usage]:
        """Memory and CPU of each running container, from one stats snapshot each (asked in
        parallel); CPU is the share of one CPU since the previous snapshot of the same container."""
        running = [st for st in statuses if st.state.is_up and st.container_id]
        if not running:
            return {}
        with ThreadPoolExecutor(max_workers=min(8, len(running))) as pool:
            found = list(pool.map(self._usage_of, running))
        return {st.name: u for st, u in zip(running, found) if u is not None}

    def _usage_of(self, st: ReplicaStatus) -> Usage | None:
        try:
            stats = self.client.api.stats(st.container_id, stream=False, one_shot=True)
        except (docker.errors.DockerException, requests.exceptions.RequestException, OrchestrationError):
            return None
        memory = (stats.get("memory_stats") or {}).get("usage")
        cpu_ns = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
        now = time.monotonic()
        previous = self._cpu_seen.get(st.container_id)
        if cpu_ns is not None:
            self._cpu_seen[st.container_id] = (cpu_ns, now)
        cpu = None
        if previous and cpu_ns is not None and now > previous[1]:
            cpu = max(0.0, (cpu_ns - previous[0]) / 1e9 / (now - previous[1]) * 100)
        return Usage(cpu, memory / 2**20 if memory else None)

    def check(self) -> str:
        with self._engine("the container engine did not answer"):
            version = self.client.version()
        product = next((c.get("Name") for c in version.get("Components", []) if c.get("Name")), "engine")
        return f"{product} {version.get('Version', '?')} at {self.docker_host}"

    # --- internals ------------------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        """The engine's client, connected on first use; BackendUnavailable if it cannot be."""
        if self._client is None:
            try:
                self._client = self._connect()
            except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
                raise self._unavailable(e) from e
        return self._client

    def _default_client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, timeout=60)

    def _unavailable(self, e: Exception) -> BackendUnavailable:
        return BackendUnavailable(Message("engine.unreachable", "container engine at {host} is not reachable: {why}",
                                          host=self.docker_host, why=why_unreachable(e)),
                                  hint=Message("engine.unreachable.hint",
                                               "start it (scripts/container-engine.sh sets one up) or set DOCKER_HOST"))

    def _engine(self, what: str) -> AbstractContextManager[None]:
        return engine_errors(what, self._unavailable)

    def _get(self, name: str) -> Container:
        try:
            return self.client.containers.get(name)
        except docker.errors.NotFound as e:
            raise NotFound(not_deployed(name)) from e

    def _create_args(self, spec: ReplicaSpec, own_dockerfile: bool) -> dict:
        policy = {"Name": self.restart_policy}
        if self.restart_policy == "on-failure":
            policy["MaximumRetryCount"] = self.max_restarts
        args = dict(
            name=spec.name, command=container_command(spec, own_dockerfile), detach=True, init=True,
            environment=container_env(spec, own_dockerfile),
            ports={f"{spec.port}/tcp": (published_address(spec), spec.port)},
            restart_policy=policy if spec.autorestart else {"Name": "no"},
            labels={f"{LABEL}.service": spec.service, f"{LABEL}.replica": str(spec.index),
                    f"{LABEL}.version": spec.version, f"{LABEL}.commit": spec.commit, f"{LABEL}.managed": "true"})
        if spec.resources.cpus:
            args["nano_cpus"] = int(spec.resources.cpus * 1e9)
        if spec.resources.memory_mb:
            args["mem_limit"] = f"{spec.resources.memory_mb}m"
        return args

    def _status(self, container: Container) -> ReplicaStatus:
        state = container.attrs.get("State", {})
        native = state.get("Status", "")
        exit_code = state.get("ExitCode") or 0
        mapped = _STATES.get(native, ServiceState.UNKNOWN)
        if native == "exited" and exit_code not in STOP_EXIT_CODES:
            mapped = ServiceState.EXITED
        message = native + (f", exit status {exit_code}" if native in ("exited", "dead") else "")
        if state.get("Error"):
            message += f": {state['Error']}"
        if state.get("OOMKilled"):
            message += " (out of memory)"
        return ReplicaStatus(container.name, mapped, pid=state.get("Pid") or None, container_id=container.id,
                             started_at=epoch(state.get("StartedAt")) if mapped.is_up else None,
                             message=message, labels=dict(container.labels))


_STATES = {
    "created": ServiceState.STOPPED, "running": ServiceState.RUNNING, "restarting": ServiceState.BACKOFF,
    "exited": ServiceState.STOPPED, "paused": ServiceState.STOPPED, "dead": ServiceState.FATAL,
    "removing": ServiceState.STOPPING, "stopping": ServiceState.STOPPING, "configured": ServiceState.STOPPED,
}


def _stream_build(chunks: Iterator[dict], sink: LogSink) -> str:
    """Feed the build's output to `sink` line by line; returns the error message, "" on success."""
    pending = ""
    for chunk in chunks:
        if "error" in chunk or "errorDetail" in chunk:
            if pending:
                sink(pending)
            message = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error", "")
            sink(message.rstrip("\n"))
            return message.strip() or "unknown build error"
        text = pending + chunk.get("stream", "")
        *complete, pending = text.split("\n")
        for line in complete:
            sink(line.rstrip("\r"))
    if pending:
        sink(pending)
    return ""


def epoch(timestamp: str | None) -> float | None:
    """RFC 3339 with nanoseconds ('2024-05-01T12:00:00.123456789Z') → epoch seconds; None if unset."""
    if not timestamp or timestamp.startswith("0001-"):
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", timestamp.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def not_deployed(name: str) -> Message:
    return Message("replica.not_deployed", "{name} is not deployed", name=name)


def did_not_start(name: str, error: object) -> Message:
    return Message("replica.did_not_start", "{name} did not start: {error}", name=name, error=str(error))


def build_failed(error: object) -> Message:
    return Message("image.build_failed", "image build failed: {error}", error=str(error))


def why_unreachable(e: Exception) -> str:
    """In a user's words why the engine did not answer, not the HTTP library's tuple of exceptions."""
    text = str(e)
    for needle, reason in (("No such file", Message("engine.no_socket", "nothing listens at that socket")),
                           ("Connection refused", Message("engine.refused", "connection refused")),
                           ("Permission denied", Message("engine.permission", "permission denied on its socket")),
                           ("timed out", Message("engine.timeout", "it did not answer in time")),
                           ("Name or service not known", Message("engine.unknown_host", "unknown host"))):
        if needle in text:
            return reason
    return text.splitlines()[0][:200] if text else type(e).__name__


@contextmanager
def engine_errors(what: str, unavailable: Callable[[Exception], BackendUnavailable]) -> Iterator[None]:
    """Translate the Docker SDK's errors (the docker and swarm runtimes): connection problems →
    `unavailable(e)`, 404 → NotFound, other API errors → OrchestrationError with `what`."""
    try:
        yield
    except docker.errors.NotFound as e:
        raise NotFound(Message("engine.failed", "{what}: {error}", what=what, error=_explain(e))) from e
    except docker.errors.APIError as e:
        raise OrchestrationError(Message("engine.failed", "{what}: {error}", what=what, error=_explain(e))) from e
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
        raise unavailable(e) from e
    except docker.errors.DockerException as e:
        raise OrchestrationError(Message("engine.failed", "{what}: {error}", what=what, error=str(e))) from e


def _explain(e: Exception) -> str:
    if isinstance(e, docker.errors.APIError):
        return str(e.explanation or e)
    return str(e)
