"""Finding and ending the processes of one platform home without its supervisord
(orchestration/processes.py) and the exec wrapper that leaves their pid files
(orchestration/exec_env.py), on real short-lived processes of this machine."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from orchestration import exec_env
from orchestration.processes import HOME_VAR, HomeProcesses, Owned, listening_pids, read_pid_file, start_time
from orchestration.supervisord import EXEC_ENV, Program, SupervisorDaemon
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(60)

LISTEN = ("import socket, sys, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
          "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(60)")
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ALGOSTAGE_")}, **extra}


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start a detached process (own session, no inherited output); every one is killed at the end."""
    started: list[subprocess.Popen] = []

    def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(list(argv), env=env or clean_env(), start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proc)
        return proc
    yield run
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


def alive(pid: int) -> bool:
    return start_time(pid) is not None


def until(check: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def ours(home: Path, **extra: str) -> dict[str, str]:
    return clean_env(**{HOME_VAR: str(home)}, **extra)


def write_pid(path: Path, pid: int, started: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid} {started}\n" if started is not None else f"{pid}\n")


# --- the exec wrapper ------------------------------------------------------------------------------

def test_the_wrapper_leaves_the_pid_and_start_time_of_the_program_it_becomes(tmp_path: Path) -> None:
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps({"GREETING": 'say "hi" 100%'}))
    pidfile = tmp_path / "run" / "p.pid"
    code = "import os; print(os.getpid(), os.environ['GREETING']); open(os.sys.argv[1], 'w').write(open('/proc/self/stat').read())"
    out = subprocess.run([sys.executable, str(EXEC_ENV), "--pidfile", str(pidfile), "--env", str(env_file), "--",
                          sys.executable, "-c", code, str(tmp_path / "stat")], capture_output=True, text=True, check=True)
    pid, greeting = out.stdout.strip().split(" ", 1)
    recorded_pid, recorded_start = read_pid_file(pidfile)
    assert (recorded_pid, greeting) == (int(pid), 'say "hi" 100%')   # exec kept the pid: the file names the program
    assert recorded_start == int((tmp_path / "stat").read_text().rsplit(")", 1)[1].split()[19])


def test_the_wrapper_still_takes_the_form_written_before_pid_files(tmp_path: Path) -> None:
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps({"GREETING": "old"}))
    out = subprocess.run([sys.executable, str(EXEC_ENV), str(env_file), "--", sys.executable, "-c",
                          "import os; print(os.environ['GREETING'])"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "old" and not list(tmp_path.glob("**/*.pid"))


@pytest.mark.parametrize("argv", [["w"], ["w", "--pidfile", "--"], ["w", "--bogus", "x", "--", "true"],
                                  ["w", "--pidfile", "p", "--"]])
def test_the_wrapper_refuses_malformed_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit, match="usage"):
        exec_env.parse(argv)


def test_every_program_of_the_daemon_runs_behind_the_wrapper_with_its_pid_file(tmp_path: Path) -> None:
    daemon = SupervisorDaemon(tmp_path / "home")
    daemon.put_program(Program("algo-x-1", "/bin/echo 50%", tmp_path, {}, tmp_path / "o.log", tmp_path / "e.log",
                               env_file=tmp_path / "x.json"))
    command = next(line for line in daemon.program_file("algo-x-1").read_text().splitlines()
                   if line.startswith("command="))
    assert command == (f"command={sys.executable} {EXEC_ENV} --pidfile {tmp_path}/home/run/algo-x-1.pid "
                       f"--env {tmp_path}/x.json -- /bin/echo 50%%")   # % doubled for supervisor


# --- identity --------------------------------------------------------------------------------------

def test_a_process_is_ours_by_the_home_in_its_environment(tmp_path: Path, spawn) -> None:
    home = tmp_path / "home"
    mine = spawn("sleep", "60", env=ours(home))
    other_home = spawn("sleep", "60", env=ours(tmp_path / "other"))
    nested_home = spawn("sleep", "60", env=ours(home / "nested"))
    foreign = spawn("sleep", "60")
    processes = HomeProcesses(home)
    until(lambda: all(alive(p.pid) for p in (mine, other_home, nested_home, foreign)))
    assert processes.is_ours(mine.pid) and processes.is_ours(mine.pid, start_time(mine.pid))
    assert not processes.is_ours(mine.pid, start_time(mine.pid) - 1)   # same pid, another process: recycled
    assert not processes.is_ours(other_home.pid) and not processes.is_ours(nested_home.pid)
    assert not processes.is_ours(foreign.pid)


def test_without_the_variable_a_command_line_naming_the_home_counts(tmp_path: Path, spawn) -> None:
    """nginx writes its title over its environment; its command line names its config in the home."""
    home = tmp_path / "home"
    (home / "gateway").mkdir(parents=True)
    nap = "import time; time.sleep(60)"
    named = spawn(sys.executable, "-c", nap, "-c", str(home / "gateway" / "nginx.conf"), env=clean_env())
    prefix_only = spawn(sys.executable, "-c", nap, f"{home}-other/x", env=clean_env())
    until(lambda: alive(named.pid) and alive(prefix_only.pid))
    assert HomeProcesses(home).is_ours(named.pid)
    assert not HomeProcesses(home).is_ours(prefix_only.pid)


# --- finding ---------------------------------------------------------------------------------------

def test_find_by_pid_files_skips_a_recycled_pid_and_a_dead_one(tmp_path: Path, spawn) -> None:
    home = tmp_path / "home"
    processes = HomeProcesses(home)
    orphan = spawn("sleep", "60", env=ours(home))
    stranger = spawn("sleep", "60")    # a pid the kernel handed on to something else
    gone = spawn("true")
    gone.wait(5)
    until(lambda: alive(orphan.pid) and alive(stranger.pid))
    write_pid(processes.pid_file("algostage-ui"), orphan.pid, start_time(orphan.pid))
    write_pid(processes.pid_file("algo-old-1"), stranger.pid, start_time(stranger.pid))
    write_pid(processes.pid_file("algo-gone-1"), gone.pid, 12345)
    (processes.run_dir / "garbled.pid").write_text("not a pid\n")
    assert processes.find() == [Owned(orphan.pid, "algostage-ui")]
    assert sorted(processes.prune()) == ["algo-gone-1", "algo-old-1", "garbled"]
    assert list(processes.pid_files()) == ["algostage-ui"]


def test_find_by_port_and_a_listener_that_is_not_ours_stands_for_its_parent(tmp_path: Path, spawn) -> None:
    home = tmp_path / "home"
    direct, via_child, foreign = free_port(), free_port(), free_port()
    listener = spawn(sys.executable, "-c", LISTEN, str(direct), env=ours(home))
    # like an nginx master: ours, with a worker whose environment does not say so holding the port
    parent = spawn(sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
                   f"{LISTEN!r}, sys.argv[1]], env={{}}); time.sleep(60)", str(via_child), env=ours(home))
    spawn(sys.executable, "-c", LISTEN, str(foreign))
    until(lambda: len(listening_pids([direct, via_child, foreign])) == 3)
    found = HomeProcesses(home).find([direct, via_child, foreign])
    assert sorted(found, key=lambda o: o.port) == sorted([Owned(listener.pid, f"port {direct}", direct),
                                                          Owned(parent.pid, f"port {via_child}", via_child)],
                                                         key=lambda o: o.port)


def test_find_spares_a_live_supervisors_tree_and_the_caller_itself(tmp_path: Path, spawn) -> None:
    home = tmp_path / "home"
    processes = HomeProcesses(home)
    tree = spawn(sys.executable, "-c", "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)",
                 env=ours(home))
    until(lambda: len(children(tree.pid)) == 1)
    child = children(tree.pid)[0]
    write_pid(processes.pid_file("algo-a-1"), child, start_time(child))
    write_pid(processes.pid_file("me"), os.getpid(), start_time(os.getpid()))
    os.environ[HOME_VAR] = str(home)   # even a caller that is "ours" never ends itself
    try:
        assert processes.find(keep_under=tree.pid) == []
        assert processes.find() == [Owned(child, "algo-a-1")]
    finally:
        del os.environ[HOME_VAR]


def children(pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


# --- ending ----------------------------------------------------------------------------------------

def test_end_kills_what_ignores_sigterm_with_its_children_after_the_grace(tmp_path: Path, spawn) -> None:
    home = tmp_path / "home"
    stubborn = spawn(sys.executable, "-c", "import signal, subprocess, time; "
                     "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                     "subprocess.Popen(['sleep', '60']); subprocess.Popen(['sleep', '60'], start_new_session=True); "
                     "time.sleep(60)", env=ours(home))
    polite = spawn("sleep", "60", env=ours(home))
    bystander = spawn("sleep", "60", env=ours(home))
    until(lambda: len(children(stubborn.pid)) == 2)
    kids = children(stubborn.pid)
    t0 = time.monotonic()
    left = HomeProcesses(home).end([Owned(stubborn.pid, "algostage-ui"), Owned(polite.pid, "algo-a-1")], grace_s=0.5)
    took = time.monotonic() - t0
    assert left == []
    assert 0.5 <= took < 3.0, took   # SIGTERM was not enough: SIGKILL after the grace, not a hang
    for pid in (stubborn.pid, polite.pid, *kids):   # one child escaped the group: ended as a descendant
        assert not alive(pid), pid
    assert alive(bystander.pid)


def test_end_of_processes_that_honour_sigterm_does_not_wait_for_the_grace(tmp_path: Path, spawn) -> None:
    home = tmp_path / "home"
    polite = [spawn("sleep", "60", env=ours(home)) for _ in range(3)]
    until(lambda: all(alive(p.pid) for p in polite))
    t0 = time.monotonic()
    assert HomeProcesses(home).end([Owned(p.pid, f"algo-a-{i}") for i, p in enumerate(polite)], grace_s=10) == []
    assert time.monotonic() - t0 < 2.0
