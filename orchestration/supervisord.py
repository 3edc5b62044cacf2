"""The platform's own supervisord: its config under `$ALGOSTAGE_HOME`, its socket, its XML-RPC.

Never the system supervisord. Programs live in one include file each under
`supervisor/conf.d/`; changes are applied with the `supervisorctl update` sequence over
XML-RPC (`reloadConfig` → `removeProcessGroup` / `addProcessGroup`), never by shelling out.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport

from orchestration.errors import BackendUnavailable, OrchestrationError

MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 108 bytes


@dataclass(frozen=True)
class Program:
    """One `[program:x]` section. `environment` values are quoted for supervisor."""
    name: str
    command: str
    directory: Path
    environment: Mapping[str, str]
    stdout_log: Path
    stderr_log: Path
    autorestart: bool = True
    autostart: bool = True
    startsecs: int = 1
    startretries: int = 3
    stopwaitsecs: int = 10
    log_max_mb: int = 10
    log_backups: int = 5

    def render(self) -> str:
        env = ",".join(f'{k}="{_quote(v)}"' for k, v in self.environment.items())
        return "\n".join([
            f"[program:{self.name}]",
            f"command={_escape(self.command)}",
            f"directory={_escape(str(self.directory))}",
            f"environment={_escape(env)}" if env else "",
            f"autostart={'true' if self.autostart else 'false'}",
            f"autorestart={'true' if self.autorestart else 'false'}",
            f"startsecs={self.startsecs}",
            f"startretries={self.startretries}",
            f"stopwaitsecs={self.stopwaitsecs}",
            "stopasgroup=true",
            "killasgroup=true",
            f"stdout_logfile={_escape(str(self.stdout_log))}",
            f"stdout_logfile_maxbytes={self.log_max_mb}MB",
            f"stdout_logfile_backups={self.log_backups}",
            f"stderr_logfile={_escape(str(self.stderr_log))}",
            f"stderr_logfile_maxbytes={self.log_max_mb}MB",
            f"stderr_logfile_backups={self.log_backups}",
            "",
        ])


def _escape(value: str) -> str:
    """supervisor expands %(name)s in values; a literal % is written %%."""
    if "\n" in value:
        raise OrchestrationError("newline in a supervisor config value")
    return value.replace("%", "%%")


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class SupervisorDaemon:
    """Start, reach and stop the supervisord of one platform home."""

    def __init__(self, home: Path, *, python: str = sys.executable) -> None:
        self.home = home
        self.python = python
        self.dir = home / "supervisor"
        self.conf = self.dir / "supervisord.conf"
        self.include_dir = self.dir / "conf.d"
        self.pidfile = self.dir / "supervisord.pid"
        self.log_dir = home / "logs"
        self.socket = self._socket_path()

    def _socket_path(self) -> Path:
        path = self.dir / "supervisor.sock"
        if len(str(path)) <= MAX_SOCKET_PATH:
            return path
        digest = hashlib.sha1(str(self.home).encode()).hexdigest()[:16]
        return Path("/tmp") / f"algostage-{digest}.sock"

    def write_config(self) -> None:
        self.include_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        ident = hashlib.sha1(str(self.home).encode()).hexdigest()[:10]
        self.conf.write_text("\n".join([
            "[unix_http_server]", f"file={_escape(str(self.socket))}", "chmod=0700", "",
            "[supervisord]", f"logfile={_escape(str(self.log_dir / 'supervisord.log'))}",
            "logfile_maxbytes=10MB", "logfile_backups=3", f"pidfile={_escape(str(self.pidfile))}",
            f"childlogdir={_escape(str(self.log_dir))}", f"directory={_escape(str(self.home))}",
            f"identifier=algostage-{ident}", "", "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{_escape(str(self.socket))}", "",
            "[include]", f"files = {_escape(str(self.include_dir))}/*.conf", "",
        ]))

    def rpc(self) -> xmlrpc.client.ServerProxy:
        transport = SupervisorTransport(None, None, serverurl=f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport, allow_none=True)

    def is_running(self) -> bool:
        """True when this home's supervisord answers on its socket."""
        if not self.socket.exists():
            return False
        try:
            return self.rpc().supervisor.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self, timeout: float = 20.0) -> bool:
        """Start supervisord unless it already runs. Returns True if it was started now."""
        if self.is_running():
            return False
        self.write_config()
        self.socket.unlink(missing_ok=True)
        proc = subprocess.run([self.python, "-m", "supervisor.supervisord", "-c", str(self.conf)],
                              capture_output=True, text=True, cwd=self.home, env=dict(os.environ))
        if proc.returncode != 0:
            raise BackendUnavailable(f"supervisord did not start: {(proc.stderr or proc.stdout).strip()[-500:]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_running():
                return True
            time.sleep(0.1)
        raise BackendUnavailable(f"supervisord did not answer on {self.socket} within {timeout:.0f} s")

    def shutdown(self, timeout: float = 60.0) -> bool:
        """Stop every program and supervisord itself; idempotent. Returns True if it was running."""
        pid = self.pid()
        if not self.is_running():
            return False
        try:
            self.rpc().supervisor.shutdown()
        except (OSError, xmlrpc.client.Error):
            pass  # the connection may close while it shuts down
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pid is None or not _alive(pid):
                return True
            time.sleep(0.1)
        raise OrchestrationError(f"supervisord (pid {pid}) did not stop within {timeout:.0f} s")

    # --- programs -------------------------------------------------------------------------------

    def program_file(self, name: str) -> Path:
        return self.include_dir / f"{name}.conf"

    def put_program(self, program: Program) -> None:
        self.include_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.program_file(program.name).with_suffix(".tmp")
        tmp.write_text(program.render())
        os.replace(tmp, self.program_file(program.name))

    def delete_program(self, name: str) -> None:
        self.program_file(name).unlink(missing_ok=True)

    def update(self) -> tuple[list[str], list[str], list[str]]:
        """Apply include-file changes like `supervisorctl update`. Returns (added, changed, removed)."""
        rpc = self.rpc()
        try:
            added, changed, removed = rpc.supervisor.reloadConfig()[0]
            for name in removed + changed:
                self._stop_and_remove(rpc, name)
            for name in added + changed:
                rpc.supervisor.addProcessGroup(name)
        except xmlrpc.client.Fault as e:
            raise OrchestrationError(f"supervisord refused the change: {e.faultString}") from e
        except OSError as e:
            raise BackendUnavailable(f"supervisord is not reachable: {e}") from e
        return added, changed, removed

    @staticmethod
    def _stop_and_remove(rpc: xmlrpc.client.ServerProxy, name: str) -> None:
        try:
            rpc.supervisor.stopProcessGroup(name, True)
        except xmlrpc.client.Fault:
            pass  # already stopped
        rpc.supervisor.removeProcessGroup(name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
