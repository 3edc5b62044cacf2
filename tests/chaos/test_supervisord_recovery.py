"""Recovery after the platform's supervisord dies, and after the UI dies (issue 11, finding 3), on
a real platform: supervisord, Streamlit, the agent, the API, nginx and two replicas of `hello`.

1. kill -9 of supervisord → the replicas and the gateway run on as orphans, `status` says so;
   `up` ends them (pid files and ports, never names; a recycled pid in a stale pid file is not
   touched), starts afresh: exit 0, every replica RUNNING and READY, the UI answering, calls
   through the gateway answered, no process of the home outside the new supervisord's tree.
2. kill -9 of the UI → supervisord starts it again and it answers.
3. kill -9 of supervisord, then `down` → nothing of the platform runs.
4. `up` from nothing, then `down` → the services come back READY; then nothing runs.
5. a process of the home that `down` cannot end for good → exit 1 naming it, never "stopped".

Every command runs detached (own session, output to files, a timeout), so nothing the platform
leaves behind can hold the test runner's output open. Timings are printed (see docs/RELIABILITY.md).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import ROOT, free_port, private_port_range
from tests.support_platform import platform_env

pytestmark = pytest.mark.timeout(900)
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"
PROGRAMS = ("algostage-ui", "algostage-agent", "algostage-api", "algostage-gateway")
REPLICAS = ("algo-hello-1", "algo-hello-2")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


@dataclass
class Rig:
    """One platform home driven through its command line."""
    home: Path
    env: dict[str, str]
    logs: Path

    def cli(self, *args: str, timeout: float = 300, check: bool = True) -> Result:
        """`python -m app ARGS` in its own session, its output in files, killed (group) at `timeout`."""
        n = len(list(self.logs.glob("*.out")))
        out, err = self.logs / f"{n:02d}-{args[0]}.out", self.logs / f"{n:02d}-{args[0]}.err"
        t0 = time.monotonic()
        with open(out, "w") as o, open(err, "w") as e:
            proc = subprocess.Popen([sys.executable, "-m", "app", *args], env=self.env, cwd=ROOT,
                                    stdin=subprocess.DEVNULL, stdout=o, stderr=e, start_new_session=True)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                pytest.fail(f"python -m app {' '.join(args)} did not finish within {timeout} s")
        result = Result(proc.returncode, out.read_text(), err.read_text(), time.monotonic() - t0)
        if check and result.returncode != 0:
            pytest.fail(f"python -m app {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def json(self, *args: str) -> object:
        return json.loads(self.cli(*args, "--json").stdout)

    @property
    def run(self) -> Path:
        return self.home / "run"

    def port(self, setting: str) -> int:
        return int(self.env[setting])

    def supervisord(self) -> int:
        return int((self.home / "supervisor" / "supervisord.pid").read_text())

    def pid_files(self) -> dict[str, int]:
        return {p.stem: int(p.read_text().split()[0]) for p in self.run.glob("*.pid")}

    def service(self) -> dict:
        return next(s for s in self.json("services") if s["name"] == "hello")


# --- what runs: read from /proc, independently of the code under test -----------------------------

def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def processes_of(home: Path) -> dict[int, str]:
    """pid → command line of every live process with ALGOSTAGE_HOME=home in its environment or a
    path under home in its command line (nginx overwrites its environment with its title)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if (f"ALGOSTAGE_HOME={home}".encode() in environ or f"{home}/" in cmdline) and alive(int(entry.name)):
            found[int(entry.name)] = cmdline
    return found


def start_ticks(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat: the process's start time in clock ticks since boot."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def tree(pid: int) -> set[int]:
    return {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}


def listeners(ports: set[int]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for c in psutil.net_connections(kind="tcp"):
        if c.status == psutil.CONN_LISTEN and c.laddr.port in ports and c.pid:
            out.setdefault(c.laddr.port, set()).add(c.pid)
    return out


def until(check: Callable[[], object], timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not {what} within {timeout:g} s")
        time.sleep(0.1)
    return time.monotonic() - t0


def answers(url: str, ok: tuple[int, ...] = (200,)) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code in ok
    except httpx.HTTPError:
        return False


def kill_all(home: Path) -> None:
    """Last resort of a fixture: SIGKILL whatever of `home` still runs, so no test leaks processes."""
    for pid in processes_of(home):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- the platform ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, shared_envs: Path) -> Iterator[Rig]:
    base = tmp_path_factory.mktemp("recovery")
    env = platform_env(base / "home", free_port(), ALGOSTAGE_PORT_RANGE=private_port_range(),
                       ALGOSTAGE_ENV_DIR=str(shared_envs), ALGOSTAGE_HEALTH_INTERVAL_S="1")
    (base / "logs").mkdir()
    p = Rig(base / "home", env, base / "logs")
    try:
        p.cli("up", timeout=240)
        p.cli("upload", str(FIXTURES / "hello"))
        p.cli("deploy", "hello", "--replicas", "2", timeout=600)
        yield p
    finally:
        p.cli("down", timeout=120, check=False)
        kill_all(p.home)


@pytest.fixture(scope="module")
def key(platform: Rig) -> str:
    return platform.json("key", "create", "recovery")["key"]


@pytest.fixture
def decoy() -> Iterator[subprocess.Popen]:
    """A process of someone else: no ALGOSTAGE_HOME, nothing of the home on its command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALGOSTAGE_")}
    proc = subprocess.Popen(["sleep", "600"], env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield proc
    proc.kill()
    proc.wait(10)


def assert_serving(p: Rig, key: str) -> None:
    """Every replica RUNNING, READY and in rotation; the UI and calls through the gateway answer."""
    svc = p.service()
    assert svc["state"] == "RUNNING" and len(svc["replicas"]) == 2, svc
    for r in svc["replicas"]:
        assert r["state"] == "RUNNING" and r["routed"], r
        assert httpx.get(f"{r['endpoint']}/health", timeout=5).json()["status"] == "READY"
    assert httpx.get(f"http://127.0.0.1:{p.port('ALGOSTAGE_UI_PORT')}/_stcore/health", timeout=5).text == "ok"
    gateway = f"http://127.0.0.1:{p.port('ALGOSTAGE_GATEWAY_PORT')}"
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
        codes = [client.post(f"{gateway}/ai/hello/predict", json={"inputs": [f"call {i}"]}).status_code
                 for i in range(20)]
    assert codes == [200] * 20, codes


def assert_only_the_live_supervisords(p: Rig) -> set[int]:
    """Everything of the home runs under the one supervisord of its pid file: by /proc, by every
    pid file, by every port. Returns that tree."""
    live = tree(p.supervisord())
    stray = {pid: cmd for pid, cmd in processes_of(p.home).items() if pid not in live}
    assert stray == {}, f"orphans: {stray}"
    files = p.pid_files()
    assert set(files) >= {*PROGRAMS, *REPLICAS}
    assert all(files[name] in live for name in (*PROGRAMS, *REPLICAS)), files
    ports = {p.port(s) for s in ("ALGOSTAGE_UI_PORT", "ALGOSTAGE_API_PORT", "ALGOSTAGE_GATEWAY_PORT")}
    ports |= {r["port"] for r in p.service()["replicas"]}
    held = listeners(ports)
    assert set(held) == ports and all(pids <= live for pids in held.values()), held
    return live


def assert_nothing_left(p: Rig) -> None:
    assert until(lambda: not processes_of(p.home), 10, "every process of the home gone") >= 0
    ports = {p.port(s) for s in ("ALGOSTAGE_UI_PORT", "ALGOSTAGE_API_PORT", "ALGOSTAGE_GATEWAY_PORT")}
    assert listeners(ports) == {}
    assert [name for name, pid in p.pid_files().items() if alive(pid)] == []


# --- the scenarios -----------------------------------------------------------------------------------

def test_1_kill_9_of_supervisord_then_up_ends_the_orphans_and_serves_again(platform, key, decoy):
    p = platform
    assert_serving(p, key)
    before = p.pid_files()
    replica_ports = sorted(r["port"] for r in p.service()["replicas"])
    # a stale pid file whose pid the kernel has given to someone else's process
    (p.run / "algo-gone-1.pid").write_text(f"{decoy.pid} {start_ticks(decoy.pid)}\n")

    os.kill(p.supervisord(), signal.SIGKILL)
    until(lambda: not alive(int((p.home / "supervisor" / "supervisord.pid").read_text())), 10, "supervisord gone")
    assert all(alive(before[name]) for name in REPLICAS)   # the finding: they run on, serving
    assert all(answers(f"http://127.0.0.1:{port}/health") for port in replica_ports)
    st = p.json("status")
    assert st["supervisord"] == "STOPPED" and st["gateway"] == "ORPHANED"
    assert {o["name"] for o in st["orphans"]} >= {*REPLICAS, "algostage-gateway"}
    assert "orphans" in p.cli("status").stdout

    up = p.cli("up", timeout=240)
    print(f"\nup after kill -9 of supervisord: {up.seconds:.1f} s")
    assert "ended" in up.stdout and "algo-hello-1" in up.stdout, up.stdout
    assert "could not reconcile" not in up.stdout, up.stdout
    assert [name for name, pid in before.items() if alive(pid)] == []
    assert alive(decoy.pid) and not (p.run / "algo-gone-1.pid").exists()
    assert_only_the_live_supervisords(p)
    assert_serving(p, key)
    st = p.json("status")
    assert st["supervisord"] == "RUNNING" and st["ui"] == "RUNNING" and st["orphans"] == []


def test_2_kill_9_of_the_ui_is_restarted_by_supervisord(platform, key):
    p = platform
    ui = p.pid_files()["algostage-ui"]
    url = f"http://127.0.0.1:{p.port('ALGOSTAGE_UI_PORT')}/_stcore/health"
    os.kill(ui, signal.SIGKILL)
    t0 = time.monotonic()
    until(lambda: p.pid_files()["algostage-ui"] != ui, 30, "the UI started again")
    until(lambda: answers(url), 60, "the UI answering again")
    print(f"\nUI answering again {time.monotonic() - t0:.1f} s after kill -9")
    # supervisord says RUNNING once the program has lived startsecs, which can be after it answers
    until(lambda: p.json("status")["ui"] == "RUNNING", 30, "supervisord reporting the UI RUNNING")
    assert not alive(ui)
    assert_only_the_live_supervisords(p)
    assert_serving(p, key)


def test_3_kill_9_of_supervisord_then_down_leaves_nothing(platform):
    p = platform
    os.kill(p.supervisord(), signal.SIGKILL)
    until(lambda: not alive(p.supervisord()), 10, "supervisord gone")
    assert processes_of(p.home)
    down = p.cli("down", timeout=120)
    print(f"\ndown after kill -9 of supervisord: {down.seconds:.1f} s")
    assert "ended" in down.stdout and "AlgoStage stopped" in down.stdout, down.stdout
    assert_nothing_left(p)
    assert "not running" in p.cli("down").stdout


def test_4_up_from_nothing_brings_the_services_back_then_down_leaves_nothing(platform, key):
    p = platform
    up = p.cli("up", timeout=240)
    print(f"\nup from nothing with 2 replicas to start: {up.seconds:.1f} s")
    assert "started again (should run): algo-hello-1, algo-hello-2" in up.stdout, up.stdout
    assert "ended" not in up.stdout
    assert_only_the_live_supervisords(p)
    assert_serving(p, key)
    down = p.cli("down", timeout=120)
    print(f"down with everything running: {down.seconds:.1f} s")
    assert down.stdout.strip() == "AlgoStage stopped"
    assert_nothing_left(p)


HYDRA = """
import socket, subprocess, sys, signal
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
sys.stdout.write("up\\n"); sys.stdout.flush()
def again(*_):   # on SIGTERM, a successor listening on the same port before this one goes
    nxt = subprocess.Popen([sys.executable, "-c", sys.argv[2], sys.argv[1], sys.argv[2]], start_new_session=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    nxt.stdout.readline()
    sys.exit(0)
signal.signal(signal.SIGTERM, again)
signal.pause()
"""


def test_5_down_names_what_it_could_not_end_and_never_says_stopped(tmp_path):
    home = tmp_path / "home"
    p = Rig(home, platform_env(home, free_port()), tmp_path)
    port = p.port("ALGOSTAGE_UI_PORT")
    hydra = subprocess.Popen([sys.executable, "-c", HYDRA, str(port), HYDRA], env=p.env, start_new_session=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert hydra.stdout.readline() == b"up\n"
        down = p.cli("down", timeout=60, check=False)
        assert down.returncode == 1 and "stopped" not in down.stdout, down
        assert down.stderr.startswith("error: still running after down: pid ") and f"port {port}" in down.stderr
        assert not alive(hydra.pid)   # the one it found was ended; its successor is named
    finally:
        kill_all(home)
        hydra.wait(10)
