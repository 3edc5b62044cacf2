"""The supervisor runtime: each replica is a program `algo-{slug}-{n}` in its own include file
of the platform's supervisord, changed only through XML-RPC, running in the virtual environment
of its requirements (built once and shared, orchestration/builder.py). See
orchestration/runtime.py for the contract every backend honours.

A replica runs the runner from this checkout (`python -m orchestration.runner` with this
repository on PYTHONPATH), or the package's own `server` command, in the package's directory,
bound to `spec.host`:`spec.port`; its Endpoint is that address (loopback for 0.0.0.0).
"""
from __future__ import annotations

import json
import os
import shlex
import xmlrpc.client
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import psutil
from supervisor.xmlrpc import Faults

from orchestration.builder import EnvironmentBuilder, build_options
from orchestration.errors import BackendUnavailable, DeployError, Message, NotFound, OrchestrationError
from orchestration.registry import RuntimeContext
from orchestration.runtime import (NAME_PREFIX, Endpoint, LogSink, ReplicaSpec, ReplicaStatus, ServiceState, Usage,
                                   server_argv)
from orchestration.supervisord import Program, SupervisorDaemon

CODE_ROOT = Path(__file__).resolve().parent.parent   # holds orchestration/runner: the runner's PYTHONPATH


def create(ctx: RuntimeContext) -> SupervisorRuntime:
    """The platform's supervisor runtime (orchestration.registry)."""
    env_dir = ctx.setting("ALGOSTAGE_ENV_DIR")
    builder = EnvironmentBuilder(Path(env_dir) if env_dir else ctx.home / "envs", options=build_options(ctx.setting))
    return SupervisorRuntime(SupervisorDaemon(ctx.home), builder, log_max_mb=ctx.setting("ALGOSTAGE_LOG_MAX_MB"),
                             log_backups=ctx.setting("ALGOSTAGE_LOG_BACKUPS"))


class SupervisorRuntime:
    name = "supervisor"

    def __init__(self, daemon: SupervisorDaemon, builder: EnvironmentBuilder, *, log_max_mb: int = 10,
                 log_backups: int = 5, startsecs: int = 1) -> None:
        self.daemon = daemon
        self.builder = builder
        self.log_max_mb = log_max_mb
        self.log_backups = log_backups
        self.startsecs = startsecs

    # --- lifecycle ------------------------------------------------------------------------------

    def build(self, spec: ReplicaSpec, log: LogSink) -> bool:
        """The virtual environment of the package's requirements, built only if none matches."""
        return self.builder.ensure(spec.package_dir, log).built

    def deploy(self, spec: ReplicaSpec, log: LogSink) -> Endpoint:
        python = self.builder.ensure(spec.package_dir, log).python
        self.daemon.start()
        env_file = self._write_env(spec.name, self.environment(spec, python))
        program = Program(
            spec.name, shlex.join(self.argv(spec, python)), spec.package_dir, {},
            self.log_path(spec.name, "stdout"), self.log_path(spec.name, "stderr"),
            autorestart=spec.autorestart, autostart=False, startsecs=self.startsecs,
            log_max_mb=self.log_max_mb, log_backups=self.log_backups, env_file=env_file)
        self._stop_quietly(spec.name)
        self.daemon.put_program(program)
        try:
            self.daemon.update()
            self._call("startProcess", spec.name, False)
        except OrchestrationError as e:
            raise DeployError(Message("replica.did_not_start", "{name} did not start: {error}", name=spec.name, error=e.message),
                              phase="start",
                              log=self.logs(spec.name, 50, "stderr")) from e
        endpoint = Endpoint.bound(spec.host, spec.port)
        log(f"{spec.name}: program started by supervisord, answering at {endpoint.url}")
        return endpoint

    @staticmethod
    def argv(spec: ReplicaSpec, python: Path) -> list[str]:
        """The runner on the package in `python`'s environment, or the package's own server."""
        if spec.server:
            return server_argv(spec.server, spec.port, spec.host)
        return [str(python), "-m", "orchestration.runner", "--package", str(spec.package_dir),
                "--port", str(spec.port), "--host", spec.host]

    @staticmethod
    def environment(spec: ReplicaSpec, python: Path) -> dict[str, str]:
        return {**spec.env, "PORT": str(spec.port), "HOST": spec.host, "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(CODE_ROOT), "VIRTUAL_ENV": str(python.parent.parent),
                "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"}

    def start(self, name: str) -> None:
        if not self.daemon.program_file(name).exists():
            raise NotFound(_not_deployed(name))
        self.daemon.start()
        if not self._known(name):
            self.daemon.update()
        try:
            self._call("startProcess", name, False)
        except _Fault as e:
            if e.code != Faults.ALREADY_STARTED:
                raise OrchestrationError(Message("replica.did_not_start", "{name} did not start: {error}", name=name,
                                                 error=e.text)) from e

    def stop(self, name: str) -> None:
        self._stop_quietly(name)

    def restart(self, name: str) -> None:
        if not self.daemon.program_file(name).exists():
            raise NotFound(_not_deployed(name))
        self.stop(name)
        self.start(name)

    def remove(self, name: str) -> None:
        self._stop_quietly(name)
        existed = self.daemon.program_file(name).exists()
        self.daemon.delete_program(name)
        self._env_file(name).unlink(missing_ok=True)
        if existed and self.daemon.is_running():
            self.daemon.update()

    # --- reading --------------------------------------------------------------------------------

    def status(self, name: str) -> ReplicaStatus:
        if not self.daemon.is_running():
            return ReplicaStatus(name, ServiceState.STOPPED, exists=self.daemon.program_file(name).exists(),
                                 message="supervisord is not running")
        try:
            return self._status(self._call("getProcessInfo", name))
        except _Fault as e:
            if e.code == Faults.BAD_NAME:
                return ReplicaStatus(name, ServiceState.STOPPED, exists=False)
            raise OrchestrationError(e.text) from e

    def list(self) -> list[ReplicaStatus]:
        if not self.daemon.is_running():
            return []
        infos = self._call("getAllProcessInfo")
        return [self._status(i) for i in infos if i["name"].startswith(NAME_PREFIX)]

    def status_all(self) -> dict[str, ReplicaStatus]:
        """Every replica's status in one XML-RPC call (the manage page reads this)."""
        return {s.name: s for s in self.list()}

    def logs(self, name: str, lines: int = 200, stream: str = "stdout") -> str:
        return tail(self.log_path(name, stream), lines)

    def usage(self, statuses: Iterable[ReplicaStatus]) -> dict[str, Usage]:
        """CPU (percent since the previous call for the same pid) and resident memory of each
        running replica's process (the exec wrapper replaces itself with the program: one pid)."""
        out = {}
        for st in statuses:
            if st.pid and st.state.is_up:
                usage = _process_usage(st.pid)
                if usage is not None:
                    out[st.name] = usage
        return out

    def check(self) -> str:
        if not self.daemon.is_running():
            raise BackendUnavailable(Message("supervisord.not_running", "supervisord of {home} is not running",
                                             home=str(self.daemon.home)))
        return f"supervisord pid {self.daemon.pid()}"

    def log_path(self, name: str, stream: str) -> Path:
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"stream must be stdout or stderr, got {stream!r}")
        return self.daemon.log_dir / f"{name}.{'out' if stream == 'stdout' else 'err'}.log"

    # --- internals ------------------------------------------------------------------------------

    def _env_file(self, name: str) -> Path:
        return self.daemon.dir / "env" / f"{name}.json"

    def _write_env(self, name: str, env: dict[str, str]) -> Path:
        """The replica's environment, private to the platform's user (it may hold secrets)."""
        path = self._env_file(name)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(env, f)
        os.replace(path.with_suffix(".tmp"), path)
        return path

    def _status(self, info: dict) -> ReplicaStatus:
        state = ServiceState.__members__.get(info["statename"], ServiceState.UNKNOWN)
        return ReplicaStatus(info["name"], state, pid=info["pid"] or None,
                             started_at=float(info["start"]) if info["start"] and state.is_up else None,
                             message=info.get("spawnerr") or info.get("description", ""))

    def _known(self, name: str) -> bool:
        try:
            self._call("getProcessInfo", name)
            return True
        except _Fault:
            return False

    def _stop_quietly(self, name: str) -> None:
        if not self.daemon.is_running():
            return
        try:
            self._call("stopProcess", name, True)
        except _Fault as e:
            if e.code not in (Faults.BAD_NAME, Faults.NOT_RUNNING):
                raise OrchestrationError(Message("replica.did_not_stop", "{name} did not stop: {error}", name=name,
                                                 error=e.text)) from e

    def _call(self, method: str, *args: object):  # noqa: ANN202 - XML-RPC result
        try:
            return getattr(self.daemon.rpc().supervisor, method)(*args)
        except xmlrpc.client.Fault as e:
            raise _Fault(e.faultCode, e.faultString) from e
        except OSError as e:
            raise BackendUnavailable(Message("supervisord.unreachable", "supervisord of {home} is not reachable: {error}",
                                             home=str(self.daemon.home), error=str(e))) from e


_PROCS: dict[int, psutil.Process] = {}


def _process_usage(pid: int) -> Usage | None:
    try:
        proc = _PROCS.get(pid) or _PROCS.setdefault(pid, psutil.Process(pid))
        with proc.oneshot():
            return Usage(proc.cpu_percent(None), proc.memory_info().rss / 2**20)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        _PROCS.pop(pid, None)
        return None


class _Fault(OrchestrationError):
    """A supervisor XML-RPC fault, with its code (supervisor.xmlrpc.Faults)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


def tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a text file, "" if it does not exist. Reads from the end."""
    if lines <= 0 or not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        block, data = 64 * 1024, b""
        while size > 0 and data.count(b"\n") <= lines:
            step = min(block, size)
            size -= step
            f.seek(size)
            data = f.read(step) + data
    return b"\n".join(deque(data.splitlines(), maxlen=lines)).decode(errors="replace")


def _not_deployed(name: str) -> Message:
    return Message("replica.not_deployed", "{name} is not deployed", name=name)
