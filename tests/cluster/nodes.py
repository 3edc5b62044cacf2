"""A real two-node Docker Swarm on this one machine, for the cluster tests and benchmarks (issue 13).

Each node is a Docker Engine (Debian's dockerd) in a network namespace of its own with its own
hostname, data root, exec root and socket; the namespaces hang off one Linux bridge on the host:

    host  algostage-br0  10.201.0.1/24
    node algostage-n1   10.201.0.2   swarm manager (the platform talks to it on its unix socket)
    node algostage-n2   10.201.0.3   worker (joined with the worker token)

The gateway (nginx on the host) reaches a task at its node's address and the port it publishes
in `host` mode there, over the bridge. Images: the platform builds on the host's engine and pushes
to the host's registry (127.0.0.1:5000, scripts/docker-engine.sh --swarm); each node sees that
registry at its own 127.0.0.1:5000 through a socat relay (so the image names are the same
everywhere, and Docker trusts a registry on 127.0.0.0/8 over plain HTTP).

Stopping a node stops its dockerd (SIGTERM: its containers are stopped with it, as when a machine
is shut down); the swarm's manager then marks it down and reschedules its tasks.

Every process started here is detached (its own session, every descriptor to a log) and ended by
`down()`, which also removes the namespaces, the bridge, the firewall rule and the data roots.
Needs root, iproute2, iptables, socat and dockerd (scripts/docker-engine.sh installs docker.io).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

BRIDGE = "algostage-br0"
SUBNET = "10.201.0"
HOST_IP = f"{SUBNET}.1"
REGISTRY_PORT = 5000
STATE = Path("/var/lib/algostage-cluster-test")
RUN = Path("/run/algostage-cluster-test")
LOGS = Path("/var/log/algostage-cluster-test")
FORWARD_RULE = ["FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"]


@dataclass
class Node:
    name: str       # the network namespace and the hostname
    ip: str
    pids: list[int] = field(default_factory=list)    # dockerd first, then the registry relay

    @property
    def socket(self) -> Path:
        return RUN / f"{self.name}.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def client(self, timeout: int = 60) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, timeout=timeout)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120)
    if check and done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done


def detached(argv: list[str], log: Path) -> int:
    """Start `argv` in a session of its own, every descriptor away from the caller (a CI runner's
    pipe must not be held), and return its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd="/",
                                start_new_session=True, close_fds=True).pid


def in_namespace(node: Node, argv: list[str]) -> list[str]:
    """`argv` run in `node`'s network namespace (nsenter: only the network, unlike `ip netns exec`,
    which mounts a sysfs of its own over /sys and so hides the cgroups dockerd needs)."""
    return ["nsenter", f"--net=/run/netns/{node.name}", *argv]


class TwoNodeSwarm:
    """`up()` makes the cluster (about 15 s), `down()` takes every trace of it away (idempotent)."""

    def __init__(self, prefix: str = "algostage") -> None:
        self.manager = Node(f"{prefix}-n1", f"{SUBNET}.2")
        self.worker = Node(f"{prefix}-n2", f"{SUBNET}.3")
        self.nodes = (self.manager, self.worker)
        self.relay_pid = 0

    # --- up ------------------------------------------------------------------------------------

    def up(self) -> TwoNodeSwarm:
        self.down()
        for tool in ("ip", "iptables", "nsenter", "unshare", "socat", "dockerd"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is missing (scripts/system-packages.sh test, scripts/docker-engine.sh)")
        RUN.mkdir(parents=True, exist_ok=True)
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{HOST_IP}/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        # Docker on the host drops forwarded traffic by policy; bridged frames between the nodes
        # pass the host's FORWARD chain when br_netfilter is loaded.
        sh("iptables", "-I", *FORWARD_RULE)
        self.relay_pid = detached(["socat", f"TCP-LISTEN:{REGISTRY_PORT},bind={HOST_IP},fork,reuseaddr",
                                   f"TCP:127.0.0.1:{REGISTRY_PORT}"], LOGS / "relay-host.log")
        for node in self.nodes:
            self._network(node)
            self._start(node)
        for node in self.nodes:
            self._wait_engine(node)
        self._form_swarm()
        return self

    def _network(self, node: Node) -> None:
        sh("ip", "netns", "add", node.name)
        host_end, node_end = f"{node.name[-2:]}-{node.name[:6]}"[:15], "eth0"
        sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", f"{host_end}p")
        sh("ip", "link", "set", f"{host_end}p", "netns", node.name)
        sh("ip", "link", "set", host_end, "master", BRIDGE)
        sh("ip", "link", "set", host_end, "up")
        ns = ["ip", "-n", node.name]
        sh(*ns, "link", "set", f"{host_end}p", "name", node_end)
        sh(*ns, "addr", "add", f"{node.ip}/24", "dev", node_end)
        sh(*ns, "link", "set", node_end, "up")
        sh(*ns, "link", "set", "lo", "up")
        sh(*ns, "route", "add", "default", "via", HOST_IP)

    def _start(self, node: Node) -> None:
        root, exec_root = STATE / node.name, RUN / node.name
        root.mkdir(parents=True, exist_ok=True)
        exec_root.mkdir(parents=True, exist_ok=True)
        node.socket.unlink(missing_ok=True)
        dockerd = ["dockerd", "--host", node.docker_host, "--data-root", str(root), "--exec-root", str(exec_root),
                   "--pidfile", str(exec_root / "dockerd.pid"), "--bridge", "none"]
        # its own hostname: the swarm names nodes by it
        argv = in_namespace(node, ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', node.name, *dockerd])
        node.pids = [detached(argv, LOGS / f"{node.name}.log")]
        node.pids.append(detached(in_namespace(node, [
            "socat", f"TCP-LISTEN:{REGISTRY_PORT},bind=127.0.0.1,fork,reuseaddr", f"TCP:{HOST_IP}:{REGISTRY_PORT}"]),
            LOGS / f"relay-{node.name}.log"))

    def _wait_engine(self, node: Node, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                node.client(5).ping()
                return
            except (docker.errors.DockerException, OSError):
                time.sleep(0.5)
        raise RuntimeError(f"dockerd of {node.name} did not answer within {timeout:g} s; "
                           f"see {LOGS / (node.name + '.log')}:\n{_tail(LOGS / (node.name + '.log'))}")

    def _form_swarm(self) -> None:
        manager = self.manager.client()
        manager.swarm.init(advertise_addr=self.manager.ip, listen_addr=f"{self.manager.ip}:2377")
        token = manager.api.inspect_swarm()["JoinTokens"]["Worker"]
        self.worker.client().swarm.join(remote_addrs=[f"{self.manager.ip}:2377"], join_token=token,
                                        advertise_addr=self.worker.ip, listen_addr=f"{self.worker.ip}:2377")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = [n for n in manager.api.nodes() if n["Status"].get("State") == "ready"]
            if len(ready) == 2:
                return
            time.sleep(0.5)
        raise RuntimeError("the worker did not join the swarm within 60 s")

    # --- faults --------------------------------------------------------------------------------

    def stop(self, node: Node, timeout: float = 60) -> None:
        """Shut `node`'s engine down (its containers stop with it); returns once it has exited."""
        if node.pids:
            _end(node.pids[0], signal.SIGTERM, timeout)

    def node_states(self) -> dict[str, str]:
        """Hostname → state ("ready", "down", …) as the manager sees it."""
        return {n["Description"]["Hostname"]: n["Status"].get("State", "?") for n in self.manager.client().api.nodes()}

    # --- down ----------------------------------------------------------------------------------

    def down(self) -> None:
        for node in self.nodes:
            pid = _pidfile(RUN / node.name / "dockerd.pid")
            for p in ([pid] if pid else []) + node.pids:
                _end(p, signal.SIGTERM, 60)
            node.pids = []
            _kill_in_namespace(node.name)
            sh("ip", "netns", "del", node.name, check=False)
        if self.relay_pid:
            _end(self.relay_pid, signal.SIGTERM, 10)
        sh("pkill", "-f", f"TCP-LISTEN:{REGISTRY_PORT},bind={HOST_IP}", check=False)
        while sh("iptables", "-D", *FORWARD_RULE, check=False).returncode == 0:
            pass
        sh("ip", "link", "del", BRIDGE, check=False)
        for node in self.nodes:
            _unmount_under(STATE / node.name)
            shutil.rmtree(STATE / node.name, ignore_errors=True)
            _unmount_under(RUN / node.name)
            shutil.rmtree(RUN / node.name, ignore_errors=True)
            node.socket.unlink(missing_ok=True)


def _pidfile(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie (exited, not yet reaped by us) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _end(pid: int, sig: signal.Signals, timeout: float) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _kill_in_namespace(ns: str) -> None:
    """Whatever still runs in network namespace `ns` (containers' processes, shims, relays)."""
    done = sh("ip", "netns", "pids", ns, check=False)
    for pid in (int(p) for p in done.stdout.split() if p.isdigit()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _unmount_under(path: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
              if line.split()[1].startswith(str(path) + "/")]
    for mount in sorted(mounts, key=len, reverse=True):
        sh("umount", "-l", mount, check=False)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def two_node_swarm() -> Iterator[TwoNodeSwarm]:
    cluster = TwoNodeSwarm()
    try:
        yield cluster.up()
    finally:
        cluster.down()
