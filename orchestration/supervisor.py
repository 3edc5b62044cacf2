"""The supervisor runtime: each replica is a program `algo-{slug}-{n}` in its own include file
of the platform's supervisord, changed only through XML-RPC. See orchestration/runtime.py for
the contract every backend honours."""
from __future__ import annotations

import json
import os
import shlex
import sys
import xmlrpc.client
from collections import deque
from pathlib import Path

from supervisor.xmlrpc import Faults

from orchestration.errors import BackendUnavailable, DeployError, NotFound, OrchestrationError
from orchestration.runtime import NAME_PREFIX, LogSink, ReplicaSpec, ReplicaStatus, ServiceState, register
from orchestration.supervisord import Program, SupervisorDaemon

EXEC_ENV = Path(__file__).with_name("exec_env.py")


@register("supervisor")
class SupervisorRuntime:
    name = "supervisor"

    def __init__(self, daemon: SupervisorDaemon, *, log_max_mb: int = 10, log_backups: int = 5,
                 startsecs: int = 1) -> None:
        self.daemon = daemon
        self.log_max_mb = log_max_mb
        self.log_backups = log_backups
        self.startsecs = startsecs

    # --- lifecycle ------------------------------------------------------------------------------

    def deploy(self, spec: ReplicaSpec, log: LogSink) -> None:
        self.daemon.start()
        env_file = self._write_env(spec.name, {**spec.env, "PORT": str(spec.port)})
        command = [sys.executable, str(EXEC_ENV), str(env_file), "--", *spec.command]
        program = Program(
            spec.name, shlex.join(command), spec.package_dir, {},
            self.log_path(spec.name, "stdout"), self.log_path(spec.name, "stderr"),
            autorestart=spec.autorestart, autostart=False, startsecs=self.startsecs,
            log_max_mb=self.log_max_mb, log_backups=self.log_backups)
        self._stop_quietly(spec.name)
        self.daemon.put_program(program)
        try:
            self.daemon.update()
            self._call("startProcess", spec.name, False)
        except OrchestrationError as e:
            raise DeployError(f"{spec.name} did not start: {e}", phase="start",
                              log=self.logs(spec.name, 50, "stderr")) from e
        log(f"{spec.name}: program started by supervisord on port {spec.port}")

    def start(self, name: str) -> None:
        if not self.daemon.program_file(name).exists():
            raise NotFound(f"{name} is not deployed")
        self.daemon.start()
        if not self._known(name):
            self.daemon.update()
        try:
            self._call("startProcess", name, False)
        except _Fault as e:
            if e.code != Faults.ALREADY_STARTED:
                raise OrchestrationError(f"{name} did not start: {e.text}") from e

    def stop(self, name: str) -> None:
        self._stop_quietly(name)

    def restart(self, name: str) -> None:
        if not self.daemon.program_file(name).exists():
            raise NotFound(f"{name} is not deployed")
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
                raise OrchestrationError(f"{name} did not stop: {e.text}") from e

    def _call(self, method: str, *args: object):  # noqa: ANN202 - XML-RPC result
        try:
            return getattr(self.daemon.rpc().supervisor, method)(*args)
        except xmlrpc.client.Fault as e:
            raise _Fault(e.faultCode, e.faultString) from e
        except OSError as e:
            raise BackendUnavailable(f"supervisord of {self.daemon.home} is not reachable: {e}") from e


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
