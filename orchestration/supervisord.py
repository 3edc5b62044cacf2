"""The platform's own supervisord: its config under `$ALGOSTAGE_HOME`, its socket, its XML-RPC.

Never the system supervisord. Programs live in one include file each under
`supervisor/conf.d/`; changes are applied with the `supervisorctl update` sequence over
XML-RPC (`reloadConfig` → `removeProcessGroup` / `addProcessGroup`), never by shelling out.

Every program runs behind the exec wrapper (orchestration/exec_env.py), which leaves its pid
file under `$ALGOSTAGE_HOME/run/`, and with `ALGOSTAGE_HOME` in its environment: if supervisord
dies, its children can still be found and told from other processes (orchestration/processes.py).
"""
from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport

from orchestration.errors import BackendUnavailable, Message, OrchestrationError
from orchestration.locks import file_lock
from orchestration.processes import HOME_VAR, HomeProcesses, Owned, start_time

EXEC_ENV = Path(__file__).with_name("exec_env.py")
MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 108 bytes


@dataclass(frozen=True)
class Program:
    """One `[program:x]` section. `environment` values are quoted for supervisor; `env_file`, a
    JSON object of further variables, carries values that supervisor's quoting cannot."""
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
    env_file: Path | None = None

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
        self.processes = HomeProcesses(home)

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
        """Start supervisord unless it already runs. Returns True if it was started now. Before a
        fresh start, whatever an earlier supervisord of this home left running (found by the pid
        files) is ended, so the programs the new one starts find their ports free."""
        with file_lock(self.dir / "start.lock"):
            if self.is_running():
                return False
            self._end_left_behind(())
            self._start(timeout)
            return True

    def recover(self, ports: Iterable[int] = (), grace_s: float = 3.0) -> list[Owned]:
        """End the processes of this home that no answering supervisord runs — the children an
        earlier supervisord left when it died (found by their pid files, or listening on `ports`),
        and that supervisord itself if it lingers without answering. Returns what was ended;
        raises OrchestrationError naming anything that outlived SIGKILL."""
        with file_lock(self.dir / "start.lock"):
            return self._end_left_behind(ports, grace_s)

    def left_behind(self, ports: Iterable[int] = ()) -> list[Owned]:
        """What `recover` would end now (nothing is signalled): the tree of a supervisord that
        answers is spared (nothing at all while it cannot say its pid); when none answers, its
        pid file names one more process to end."""
        if self.is_running():
            live = self._answering_pid()
            return [] if live is None else self.processes.find(ports, keep_under=live)
        return self.processes.find(ports, extra={"supervisord": self.pidfile})

    def _answering_pid(self) -> int | None:
        """The pid of the supervisord that answers on the socket (its own word, not its pid file)."""
        try:
            return int(self.rpc().supervisor.getPID())
        except (OSError, xmlrpc.client.Error):
            return None

    def _end_left_behind(self, ports: Iterable[int], grace_s: float = 3.0) -> list[Owned]:
        found = self.left_behind(ports)
        survivors = self.processes.end(found, grace_s) if found else []
        self.processes.prune()
        if survivors:
            raise OrchestrationError("still running after SIGKILL: " + ", ".join(map(str, survivors)),
                                     hint="they may belong to another user; end them by hand")
        return found

    def _start(self, timeout: float) -> None:
        self.write_config()
        self.socket.unlink(missing_ok=True)
        proc = subprocess.run([self.python, "-m", "supervisor.supervisord", "-c", str(self.conf)],
                              capture_output=True, text=True, cwd=self.home,
                              env={**os.environ, HOME_VAR: str(self.home)})
        if proc.returncode != 0:
            raise BackendUnavailable(Message("supervisord.did_not_start", "supervisord did not start: {error}",
                                             error=(proc.stderr or proc.stdout).strip()[-500:]))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_running():
                return
            time.sleep(0.1)
        raise BackendUnavailable(Message("supervisord.no_answer", "supervisord did not answer on {socket} within {seconds:.0f} s",
                                         socket=str(self.socket), seconds=timeout))

    def shutdown(self, timeout: float = 60.0) -> bool:
        """Stop every program and supervisord itself; idempotent. Returns True if it was running.
        Programs an earlier supervisord left are not its to stop: see `recover`."""
        with file_lock(self.dir / "start.lock"):
            return self._shutdown(timeout)

    def _shutdown(self, timeout: float) -> bool:
        pid = self.pid()
        if not self.is_running():
            return False
        try:
            self.rpc().supervisor.shutdown()
        except (OSError, xmlrpc.client.Error):
            pass  # the connection may close while it shuts down
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pid is None or start_time(pid) is None:   # gone, or a zombie its reaper has not collected
                return True
            time.sleep(0.1)
        raise OrchestrationError(f"supervisord (pid {pid}) did not stop within {timeout:.0f} s")

    # --- programs -------------------------------------------------------------------------------

    def program_file(self, name: str) -> Path:
        return self.include_dir / f"{name}.conf"

    def put_program(self, program: Program) -> None:
        """Write the program's include file, its command behind the exec wrapper (`launch_command`)."""
        self.include_dir.mkdir(parents=True, exist_ok=True)
        self.processes.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.program_file(program.name).with_suffix(".tmp")
        tmp.write_text(replace(program, command=self.launch_command(program)).render())
        os.replace(tmp, self.program_file(program.name))

    def launch_command(self, program: Program) -> str:
        """`program.command` run by the exec wrapper, which writes its pid file (and adds the
        variables of its env file) before it replaces itself with the command."""
        wrapper = [self.python, str(EXEC_ENV), "--pidfile", str(self.processes.pid_file(program.name))]
        if program.env_file is not None:
            wrapper += ["--env", str(program.env_file)]
        return f"{shlex.join([*wrapper, '--'])} {program.command}"

    def delete_program(self, name: str) -> None:
        """Remove the include file. Its pid file stays until `processes.prune` finds it stale: a
        process it names that still runs (its supervisord gone) must remain findable."""
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
            raise OrchestrationError(Message("supervisord.refused", "supervisord refused the change: {error}",
                                             error=e.faultString)) from e
        except OSError as e:
            raise BackendUnavailable(Message("supervisord.unreachable_socket", "supervisord is not reachable: {error}",
                                             error=str(e))) from e
        return added, changed, removed

    @staticmethod
    def _stop_and_remove(rpc: xmlrpc.client.ServerProxy, name: str) -> None:
        try:
            rpc.supervisor.stopProcessGroup(name, True)
        except xmlrpc.client.Fault:
            pass  # already stopped
        rpc.supervisor.removeProcessGroup(name)
