"""The processes one platform home owns, found without its supervisord: after a `kill -9` of the
daemon its children run on as orphans, and the next `up` or `down` must find and end them.

Two ways in, never a process name:
- **pid files** under `$ALGOSTAGE_HOME/run/`, one per supervisord program, written by the exec
  wrapper (orchestration/exec_env.py) as "<pid> <start time>";
- **ports** the platform owns (UI, API, gateway, replicas): whoever listens there.

Before a pid is signalled it is checked to be this home's: alive (a zombie holds nothing), the
same start time as its pid file says (a recycled pid has another), and `ALGOSTAGE_HOME` in its
environment naming this home — or, for a process that overwrote its environment with its title
(nginx) or was started without the variable, a command line naming a file under this home.
A listener that is not ours itself but whose parent is (an nginx worker) stands for its parent.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

HOME_VAR = "ALGOSTAGE_HOME"
RUN_DIR = "run"

Listeners = Callable[[Iterable[int]], dict[int, set[int]]]


@dataclass(frozen=True)
class Owned:
    """A live process of the home: its pid and what pointed at it (a program's pid file or a port)."""
    pid: int
    name: str
    port: int | None = None

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})" if self.port is None else f"pid {self.pid} on port {self.port}"


def listening_pids(ports: Iterable[int]) -> dict[int, set[int]]:
    """port → pids with a TCP socket listening on it, for the given ports (absent: nobody listens)."""
    wanted = set(ports)
    found: dict[int, set[int]] = {}
    if not wanted:
        return found
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in wanted and conn.pid:
            found.setdefault(conn.laddr.port, set()).add(conn.pid)
    return found


def start_time(pid: int, proc: Path = Path("/proc")) -> int | None:
    """Clock ticks since boot at which `pid` started; None if there is no such process or it is a zombie."""
    try:
        fields = (proc / str(pid) / "stat").read_text(errors="replace").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def read_pid_file(path: Path) -> tuple[int | None, int | None]:
    """(pid, start time) from "<pid> [<start time>]"; (None, None) for a missing or garbled file."""
    try:
        parts = path.read_text().split()
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else None
    except (OSError, ValueError, IndexError):
        return None, None


class HomeProcesses:
    """Find and end the processes of the platform home `home` (see the module docstring)."""

    def __init__(self, home: Path, *, proc: Path = Path("/proc"), listeners: Listeners = listening_pids,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.home = home
        self.run_dir = home / RUN_DIR
        self._proc = proc
        self._listeners = listeners
        self._clock = clock

    def pid_file(self, program: str) -> Path:
        return self.run_dir / f"{program}.pid"

    # --- identity -------------------------------------------------------------------------------

    def is_ours(self, pid: int, started: int | None = None) -> bool:
        """True when `pid` is a live process of this home (and, if `started` is given, the one
        that started then). A process we may not read is not ours."""
        now = start_time(pid, self._proc)
        if now is None or (started is not None and now != started):
            return False
        try:
            environ = (self._proc / str(pid) / "environ").read_bytes()
            cmdline = (self._proc / str(pid) / "cmdline").read_bytes()
        except OSError:
            return False
        value = _env_value(environ, HOME_VAR)
        if value is not None:
            return self._same_home(pid, value)
        return f"{self.home}/".encode() in cmdline.replace(b"\0", b" ")

    def _same_home(self, pid: int, value: str) -> bool:
        if not os.path.isabs(value):
            try:
                value = os.path.join(os.readlink(self._proc / str(pid) / "cwd"), value)
            except OSError:
                return False
        return os.path.realpath(value) == os.path.realpath(self.home)

    def _owner(self, pid: int) -> int | None:
        """`pid` if it is ours, else its parent if that is ours (an nginx worker), else None."""
        if self.is_ours(pid):
            return pid
        try:
            parent = psutil.Process(pid).ppid()
        except psutil.Error:
            return None
        return parent if parent > 1 and self.is_ours(parent) else None

    # --- finding --------------------------------------------------------------------------------

    def pid_files(self) -> dict[str, Path]:
        """Every program's pid file under run/, by program name."""
        if not self.run_dir.is_dir():
            return {}
        return {p.name.removesuffix(".pid"): p for p in sorted(self.run_dir.glob("*.pid"))}

    def find(self, ports: Iterable[int] = (), *, extra: Mapping[str, Path] | None = None,
             keep_under: int | None = None) -> list[Owned]:
        """The live processes of this home named by the pid files (run/ and `extra`, name → file)
        or listening on `ports`, each once, pid files first — except the descendants of
        `keep_under` (a supervisord that answers: its children are not left behind) and this
        process and its ancestors (a command never ends itself)."""
        spared = _self_and_ancestors()
        found: dict[int, Owned] = {}
        for name, path in {**self.pid_files(), **(extra or {})}.items():
            pid, started = read_pid_file(path)
            if pid and pid not in spared and self.is_ours(pid, started):
                found.setdefault(pid, Owned(pid, name))
        for port, pids in sorted(self._listeners(ports).items()):
            for pid in sorted(pids):
                owner = self._owner(pid)
                if owner and owner not in spared:
                    found.setdefault(owner, Owned(owner, f"port {port}", port))
        return [p for p in found.values() if keep_under is None or not _descends(p.pid, keep_under)]

    def prune(self) -> list[str]:
        """Remove the pid files under run/ whose process is gone or not ours; their program names."""
        stale = []
        for name, path in self.pid_files().items():
            pid, started = read_pid_file(path)
            if not pid or not self.is_ours(pid, started):
                path.unlink(missing_ok=True)
                stale.append(name)
        return stale

    # --- ending ---------------------------------------------------------------------------------

    def end(self, processes: Iterable[Owned], grace_s: float = 3.0, kill_s: float = 5.0) -> list[Owned]:
        """SIGTERM to each process's group and descendants; SIGKILL to whatever of them still runs
        after `grace_s` (an orphan whose supervisord died may hang on its broken log pipe and never
        honour SIGTERM); returns the processes of which something still runs `kill_s` later."""
        trees = {p: self._tree(p.pid) for p in processes}
        everything = {pid: started for tree in trees.values() for pid, started in tree.items()}
        _signal_all(everything, signal.SIGTERM, self._proc)
        if not self._wait_gone(everything, grace_s):
            _signal_all(everything, signal.SIGKILL, self._proc)
            self._wait_gone(everything, kill_s)
        return [p for p, tree in trees.items() if _alive_any(tree, self._proc)]

    def _tree(self, pid: int) -> dict[int, int]:
        """`pid` and its descendants now, each with its start time (to not signal a recycled pid)."""
        tree = {pid: start_time(pid, self._proc)}
        try:
            tree.update({c.pid: start_time(c.pid, self._proc) for c in psutil.Process(pid).children(recursive=True)})
        except psutil.Error:
            pass
        return {p: s for p, s in tree.items() if s is not None}

    def _wait_gone(self, pids: Mapping[int, int], timeout: float) -> bool:
        deadline = self._clock() + timeout
        while _alive_any(pids, self._proc):
            if self._clock() >= deadline:
                return False
            time.sleep(0.05)
        return True


def _signal_all(pids: Mapping[int, int], sig: int, proc: Path) -> None:
    """`sig` to every process of `pids` that is still the one that started then: to its whole
    group when it leads one (supervisord makes each program a group leader)."""
    for pid, started in pids.items():
        if start_time(pid, proc) != started:
            continue
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _self_and_ancestors() -> set[int]:
    me = psutil.Process()
    return {me.pid, *(p.pid for p in me.parents())}


def _descends(pid: int, ancestor: int) -> bool:
    """True if `ancestor` is `pid`'s parent, grandparent, …"""
    try:
        return any(p.pid == ancestor for p in psutil.Process(pid).parents())
    except psutil.Error:
        return False


def _alive_any(pids: Mapping[int, int], proc: Path) -> bool:
    return any(start_time(pid, proc) == started for pid, started in pids.items())


def _env_value(environ: bytes, name: str) -> str | None:
    prefix = f"{name}=".encode()
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix):].decode(errors="replace")
    return None
