"""The swarm runtime: a service runs as a Docker Swarm service on a real Docker Engine cluster,
reached through the manager's Docker API. See orchestration/runtime.py for the contract
(`Runtime`, and `ClusterRuntime` for what a cluster adds).

What runs: the `Workload` of orchestration/workload.py — the docker runtime's image, pushed to the
cluster's registry so every node can pull it; N replicas; cpu/memory limits and reservations; a
restart policy; a health check on the runner's /health (swarm reports a task running only once
it is healthy); rolling updates that start the new task first and roll back when one fails;
placement spread over the nodes; labels that name the service; the platform's overlay network.

No IPVS is assumed (the routing mesh and VIPs need it): `endpoint_mode: dnsrr`, and every task
publishes its port in `host` mode on its own node, on a port the engine picks. A task's endpoint
is its node's address and that port; the platform's gateway reaches the tasks there and follows
them as the swarm moves them (app/services/cluster.py).

Names: the platform's deploys make one swarm service per served version line, `algo-{slug}`
(a canary's version gets `algo-{slug}-{tag}` beside it); its replicas are the task slots
`algo-{slug}.{slot}`, and start/stop/restart/remove of a slot act on the whole service (stop:
scaled to 0; start: back to the replicas it had). `deploy(spec)` of the plain Runtime protocol
makes a swarm service of one task named `spec.name`, published on `spec.port`.

States: a slot reads its newest task: new…starting → STARTING, running → RUNNING, failed or
rejected → BACKOFF while the swarm will start another, EXITED when the restart policy is `none`,
complete/shutdown → STOPPED; a service scaled to 0 is STOPPED.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import (ContainerSpec, EndpointSpec, Healthcheck, Placement, Resources as SwarmResources,
                          RestartPolicy, RollbackConfig, ServiceMode, TaskTemplate, UpdateConfig)

from orchestration.builder import build_options
from orchestration.docker import (DEFAULT_BASE_IMAGE, DockerRuntime, engine_errors, epoch, image_tag, not_deployed,
                                  why_unreachable)
from orchestration.errors import BackendUnavailable, DeployError, Message, NotFound, RolledBack
from orchestration.registry import RuntimeContext
from orchestration.runner import SETUP_FAILED_EXIT
from orchestration.runtime import (Endpoint, LogSink, NodeStatus, ReplicaSpec, ReplicaStatus,
                                   ServiceState, TaskEndpoint, Usage, slot_of)
from orchestration.workload import CONTAINER_PORT, LABEL, Probe, Workload, drained, image_ref, workload_of

DEFAULT_REGISTRY = "127.0.0.1:5000"
DEFAULT_NETWORK = "algostage"
NS = 1_000_000_000
POLL_S = 0.5
REPLICAS_LABEL = f"{LABEL}.replicas"      # the count `start` brings a stopped service back to
NAMING_LABEL = f"{LABEL}.naming"          # "slots" (deploy_service) or "service" (deploy)
AVAILABILITIES = ("active", "pause", "drain")
# a task whose setup() failed exits (orchestration/runner/server.py): the swarm sees it fail at once
EXIT_ON_SETUP_FAILURE = "ALGOSTAGE_EXIT_ON_SETUP_FAILURE"
RUNNING_TASK = {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running"}
_STARTING = {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting"}


def create(ctx: RuntimeContext) -> SwarmRuntime:
    """The platform's swarm runtime (orchestration.registry). Never fails: the manager is contacted on first use."""
    builder = DockerRuntime(docker_host=ctx.setting("DOCKER_HOST"),
                            base_image=ctx.setting("ALGOSTAGE_DOCKER_BASE_IMAGE") or DEFAULT_BASE_IMAGE,
                            build_options=build_options(ctx.setting))
    return SwarmRuntime(docker_host=ctx.setting("ALGOSTAGE_SWARM_HOST") or builder.docker_host, builder=builder,
                        registry=ctx.setting("ALGOSTAGE_SWARM_REGISTRY") or DEFAULT_REGISTRY,
                        network=ctx.setting("ALGOSTAGE_SWARM_NETWORK") or DEFAULT_NETWORK)


class SwarmRuntime:
    name = "swarm"

    def __init__(self, client: docker.DockerClient | Callable[[], docker.DockerClient] | None = None, *,
                 docker_host: str = "", builder: DockerRuntime | None = None, registry: str = DEFAULT_REGISTRY,
                 network: str = DEFAULT_NETWORK, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """`client` is the swarm manager's DockerClient, or a factory called on first use; None
        builds one for `docker_host`. `builder` builds the images (on its own engine, which pushes
        them to `registry`); by default the docker runtime on the manager's engine."""
        self.docker_host = docker_host or "unix:///var/run/docker.sock"
        self._client = client if client is not None and not callable(client) else None
        self._connect = client if callable(client) else self._default_client
        self._manager_seen = False
        self.builder = builder or DockerRuntime(lambda: self.client, docker_host=self.docker_host)
        self.registry = registry
        self.network = network
        self._clock = clock
        self._sleep = sleep
        self._local = DockerRuntime(lambda: self.client, docker_host=self.docker_host)  # stats of this node's tasks

    # --- images -----------------------------------------------------------------------------------

    def build(self, spec: ReplicaSpec, log: LogSink) -> bool:
        """The docker runtime's image of `spec`'s version in the registry: reused when the registry
        has it, else built (or found) on the builder's engine and pushed. Returns whether it built."""
        ref = image_ref(spec, self.registry)
        if self._in_registry(ref):
            log(f"image {ref} reused (in the registry)")
            return False
        built = self.builder.build(spec, log)
        self._push(image_tag(spec), ref, log)
        return built

    def _in_registry(self, ref: str) -> bool:
        try:
            self.client.api.inspect_distribution(ref)
            return True
        except docker.errors.APIError:
            return False
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
            raise self._unavailable(e) from e

    def _push(self, local: str, ref: str, log: LogSink) -> None:
        repository, _, tag = ref.rpartition(":")
        with self._engine(f"image {ref} could not be pushed"):
            engine = self.builder.client
            engine.images.get(local).tag(repository, tag)
            for line in engine.images.push(repository, tag, stream=True, decode=True):
                if "error" in line:
                    raise DeployError(Message("image.push_failed", "push of {ref} failed: {error}", ref=ref,
                                              error=line["error"]), phase="build",
                                      hint=Message("image.push_failed.hint", "is the registry {registry} running and "
                                                   "reachable by the engine?", registry=self.registry))
        log(f"image {ref} pushed")

    # --- deploying ----------------------------------------------------------------------------------

    def deploy(self, spec: ReplicaSpec, log: LogSink, *, timeout: float = 300) -> Endpoint:
        """One replica as a swarm service of one task named `spec.name` (one of the same name is
        replaced), published on `spec.port` of the node it runs on. Returns once its container
        started, not when it is healthy (the deployer's smoke test gates that); DeployError when
        the swarm cannot place or start it within `timeout`."""
        self.remove(spec.name)
        self._apply(spec.name, spec, 1, log, timeout=timeout, publish=spec.port, naming="service")
        return self._started(spec.name, spec.port, timeout)

    def deploy_service(self, name: str, spec: ReplicaSpec, replicas: int, log: LogSink, *, timeout: float,
                       on_change: Callable[[dict[str, TaskEndpoint]], None] = lambda found: None
                       ) -> dict[str, TaskEndpoint]:
        created = self._apply(name, spec, replicas, log, timeout=timeout)
        return self._converge(name, spec.version, replicas, timeout, log, on_change, created=created)

    def _apply(self, name: str, spec: ReplicaSpec, replicas: int, log: LogSink, *, timeout: float,
               publish: int | None = None, naming: str = "slots") -> bool:
        """Create swarm service `name` running `spec`'s version, or update it to; True if created.
        The health check's start period is `timeout`: setup() may take that long."""
        if not self._in_registry(image_ref(spec, self.registry)):
            self.build(spec, log)
        workload = workload_of(spec, replicas, self.registry,
                               own_dockerfile=(spec.package_dir / "Dockerfile").is_file(),
                               probe=Probe(start_period_s=int(min(max(timeout, 10), 600))))
        self._ensure_network()
        current = self._find(name)
        args = self._service_args(workload, name, publish, naming)
        with self._engine(f"swarm service {name} could not be deployed"):
            if current is None:
                self.client.api.create_service(name=name, **args)
                log(f"swarm service {name} created: {replicas} task(s) of {workload.image}")
            else:
                self.client.api.update_service(current.id, current.version, name=name, **args)
                log(f"swarm service {name} rolling to {spec.version}: {replicas} task(s), new tasks first")
        return current is None

    def _started(self, name: str, port: int, timeout: float) -> Endpoint:
        """The endpoint of the one task of `name` once its container runs (healthy or not yet)."""
        deadline = self._clock() + timeout
        while True:
            wanted = [t for t in self._tasks(name) if t.get("DesiredState") == "running"]
            native = wanted[-1]["Status"].get("State", "") if wanted else ""
            if native in ("starting", "running"):
                return Endpoint(self._node_addresses().get(wanted[-1].get("NodeID", ""), "127.0.0.1"), port)
            if native in ("failed", "rejected") or self._clock() > deadline:
                status = wanted[-1]["Status"] if wanted else {}
                raise DeployError(Message("swarm.did_not_start", "swarm service {name} did not start: {error}", name=name,
                                          error=status.get("Err") or native or "no task"),
                                  phase="start", log=self.logs(name, 50, "stderr"))
            self._sleep(POLL_S)

    def _service_args(self, w: Workload, name: str, publish: int | None, naming: str) -> dict[str, Any]:
        p = w.policies
        container = ContainerSpec(
            w.image, command=drained(w), labels=dict(w.labels), init=True,
            env={**w.env, EXIT_ON_SETUP_FAILURE: "1", "ALGOSTAGE_REPLICA": "{{.Task.Slot}}"},
            stop_grace_period=p.stop_grace_s * NS,
            healthcheck=Healthcheck(test=w.health_command, interval=w.probe.interval_s * NS,
                                    timeout=w.probe.timeout_s * NS, retries=w.probe.retries,
                                    start_period=w.probe.start_period_s * NS))
        limits = SwarmResources(
            cpu_limit=int(w.resources.cpus * NS) if w.resources.cpus else None,
            mem_limit=w.resources.memory_mb * 2**20 if w.resources.memory_mb else None,
            cpu_reservation=int(w.reserved.cpus * NS) if w.reserved.cpus else None,
            mem_reservation=w.reserved.memory_mb * 2**20 if w.reserved.memory_mb else None)
        template = TaskTemplate(
            container, resources=limits, networks=[self.network],
            restart_policy=RestartPolicy(p.restart_condition, p.restart_delay_s * NS, p.restart_attempts,
                                         p.restart_window_s * NS),
            placement=Placement(preferences=[("spread", "node.id")]))
        # a port fixed on the node cannot be held by the old and the new task at once
        order = "stop-first" if publish else "start-first"
        endpoint = EndpointSpec(mode="dnsrr")
        endpoint["Ports"] = [{"Protocol": "tcp", "TargetPort": CONTAINER_PORT, "PublishMode": "host",
                              **({"PublishedPort": publish} if publish else {})}]
        labels = {**w.labels, REPLICAS_LABEL: str(w.replicas), NAMING_LABEL: naming}
        return dict(task_template=template, labels=labels, mode=ServiceMode("replicated", replicas=w.replicas),
                    update_config=UpdateConfig(parallelism=p.update_parallelism, delay=p.update_delay_s * NS,
                                               failure_action="rollback", monitor=p.update_monitor_s * NS,
                                               max_failure_ratio=0, order=order),
                    rollback_config=RollbackConfig(parallelism=p.update_parallelism, delay=0, failure_action="pause",
                                                   monitor=p.update_monitor_s * NS, order=order),
                    endpoint_spec=endpoint)

    def _converge(self, name: str, version: str, replicas: int, timeout: float, log: LogSink,
                  on_change: Callable[[dict[str, TaskEndpoint]], None], *, created: bool) -> dict[str, TaskEndpoint]:
        """Until every slot runs `version` (and the update says completed), following the tasks."""
        # the health check's start period, then the update's monitor
        for found, update in self._follow(name, on_change, until=self._clock() + timeout + 60):
            state = update.get("State", "")
            if state.startswith("rollback") or state == "paused":
                self._wait_rolled_back(name, on_change)
                raise RolledBack(Message("swarm.rolled_back", "the swarm rolled {name} back: {error}", name=name,
                                          error=update.get("Message", state)), phase="start",
                                  log=self._failures(name, version))
            if created and self._setup_failed(name, version):
                raise DeployError(Message("swarm.setup_failed", "swarm service {name}: setup() of {version} failed",
                                          name=name, version=version), phase="start",
                                  log=self._failures(name, version))
            current = [t for t in found.values() if t.version == version]
            if len(current) == replicas == len(found) and (created or state in ("completed", "")):
                log(f"swarm service {name}: {replicas} task(s) of {version} running on "
                    f"{', '.join(sorted({t.node for t in found.values()}))}")
                return found
        raise DeployError(Message("swarm.not_healthy", "swarm service {name} did not run {replicas} healthy task(s) "
                                  "of {version} within {seconds:g} s", name=name, replicas=replicas,
                                  version=version, seconds=timeout), phase="start", log=self._failures(name, version))

    def _follow(self, name: str, on_change: Callable[[dict[str, TaskEndpoint]], None], *, until: float
                ) -> Iterator[tuple[dict[str, TaskEndpoint], dict[str, Any]]]:
        """Polls of service `name` while it updates, POLL_S apart, until the clock passes `until`:
        each yields the running tasks' endpoints (`on_change` told first whenever they changed) and
        the service's UpdateStatus. The last poll is at or after `until`."""
        seen: dict[str, TaskEndpoint] = {}
        while True:
            found = self.endpoints(name)
            if found != seen:
                seen = found
                on_change(found)
            yield found, self._service(name).attrs.get("UpdateStatus") or {}
            if self._clock() > until:
                return
            self._sleep(POLL_S)

    def _setup_failed(self, name: str, version: str) -> bool:
        """A task of `version` exited because its setup() failed: final, the swarm's retries will not mend it."""
        return any(self._version(t) == version and t["Status"].get("State") == "failed" and
                   (t["Status"].get("ContainerStatus") or {}).get("ExitCode") == SETUP_FAILED_EXIT
                   for t in self._tasks(name))

    def _wait_rolled_back(self, name: str, on_change: Callable[[dict[str, TaskEndpoint]], None]) -> None:
        """Follow the swarm's rollback until it is over (bounded), so the previous version serves again."""
        deadline = self._clock() + 120
        while self._clock() < deadline:
            on_change(self.endpoints(name))
            state = (self._service(name).attrs.get("UpdateStatus") or {}).get("State", "")
            if state in ("rollback_completed", "rollback_paused", "paused"):
                on_change(self.endpoints(name))
                return
            self._sleep(POLL_S)

    def _failures(self, name: str, version: str) -> str:
        """Why tasks of `version` failed: their errors and the last lines of their output."""
        nodes = self._node_names()
        failed = [t for t in self._tasks(name) if self._version(t) == version and t["Status"].get("State") != "running"]
        lines = [f"{t['Slot']}@{nodes.get(t.get('NodeID', ''), '?')}: {t['Status'].get('State')} "
                 f"{t['Status'].get('Err', '')}".rstrip() for t in failed]
        output = self._task_logs(name, {t["ID"] for t in failed}, 40, "stderr") if failed else ""
        return "\n".join(lines[-20:] + [output])

    def rollback(self, name: str) -> None:
        service = self._find(name)
        if service is None or not service.attrs.get("PreviousSpec"):
            return
        with self._engine(f"swarm service {name} could not be rolled back"):
            self.client.api.update_service(service.id, service.version,
                                           **self._spec_args(service.attrs["PreviousSpec"]))

    @staticmethod
    def _spec_args(spec: Mapping[str, Any]) -> dict[str, Any]:
        return dict(name=spec["Name"], task_template=spec["TaskTemplate"], labels=spec.get("Labels"),
                    mode=spec.get("Mode"), update_config=spec.get("UpdateConfig"),
                    rollback_config=spec.get("RollbackConfig"), endpoint_spec=spec.get("EndpointSpec"))

    # --- replicas (task slots) and services --------------------------------------------------------

    def scale(self, name: str, replicas: int) -> None:
        """Run `replicas` tasks of the service (of slot `name`'s service); NotFound if it is not deployed."""
        service = self._service(slot_of(name)[0])
        spec = service.attrs["Spec"]
        spec["Mode"] = {"Replicated": {"Replicas": replicas}}
        if replicas:
            spec.setdefault("Labels", {})[REPLICAS_LABEL] = str(replicas)
        with self._engine(f"swarm service {service.name} could not be scaled"):
            self.client.api.update_service(service.id, service.version, **self._spec_args(spec))

    def start(self, name: str) -> None:
        service = self._service(slot_of(name)[0])
        if self._replicas(service) == 0:
            self.scale(service.name, int(service.attrs["Spec"].get("Labels", {}).get(REPLICAS_LABEL, "1")))

    def stop(self, name: str) -> None:
        service = self._find(slot_of(name)[0])
        if service is not None and self._replicas(service):
            self.scale(service.name, 0)
            self._wait_gone(service.name)

    def restart(self, name: str) -> None:
        """A rolling restart: every task replaced (new first), as an update of the same definition."""
        service = self._service(slot_of(name)[0])
        if self._replicas(service) == 0:
            return self.start(name)
        spec = service.attrs["Spec"]
        spec["TaskTemplate"]["ForceUpdate"] = int(spec["TaskTemplate"].get("ForceUpdate", 0)) + 1
        with self._engine(f"swarm service {service.name} could not be restarted"):
            self.client.api.update_service(service.id, service.version, **self._spec_args(spec))

    def restart_service(self, name: str, *, timeout: float,
                        on_change: Callable[[dict[str, TaskEndpoint]], None] = lambda found: None
                        ) -> dict[str, TaskEndpoint]:
        """`restart`, followed to its end: returns the slots' endpoints once the swarm's update
        has replaced every task. `on_change` hears the running tasks' endpoints whenever they change
        meanwhile (a replaced task answers on another port, or node). RolledBack when a new task
        failed and the swarm rolled the service back (the tasks it kept serve on); DeployError when
        the update is not over within `timeout` + 60 s."""
        service = self._service(name)
        replicas = self._replicas(service)
        if replicas == 0:
            self.start(name)
            return {}
        before = (service.attrs.get("UpdateStatus") or {}).get("StartedAt")
        self.restart(name)
        state = "not begun"
        # as _converge: the start period, then the monitor
        for found, update in self._follow(name, on_change, until=self._clock() + timeout + 60):
            state = update.get("State", "") if update.get("StartedAt") != before else "not begun"
            if state.startswith("rollback") or state == "paused":
                self._wait_rolled_back(name, on_change)
                raise RolledBack(Message("swarm.restart_rolled_back", "the swarm rolled the restart of {name} back: "
                                          "{error}", name=name, error=update.get("Message", state)), phase="start",
                                  log=self.logs(name, 40, "stderr"))
            if state == "completed" and len(found) == replicas:
                return found
        raise DeployError(Message("swarm.restart_not_over", "the restart of swarm service {name} was not over "
                                  "within {seconds:g} s (update: {state})", name=name,
                                  seconds=timeout + 60, state=state), phase="start")

    def remove(self, name: str) -> None:
        """Stopped first (scaled to 0, its tasks followed until their containers ended: once the
        service is gone its tasks can no longer be read), then removed."""
        service = self._find(slot_of(name)[0])
        if service is None:
            return
        try:
            self.stop(service.name)
        except NotFound:
            return
        with self._engine(f"swarm service {service.name} could not be removed"):
            try:
                self.client.api.remove_service(service.id)
            except docker.errors.NotFound:
                return

    def _wait_gone(self, name: str, timeout: float = 60) -> None:
        """Until no task of `name` runs any more (its containers stopped), at most `timeout` s. A
        task on a node that is down is not waited for: its last known state stays "running" until
        the node comes back (which then ends it), and no container of it answers meanwhile."""
        deadline = self._clock() + timeout
        while self._clock() < deadline:
            try:
                tasks = self.client.api.tasks(filters={"service": name})
                up = {n["ID"] for n in self.client.api.nodes() if (n.get("Status") or {}).get("State") == "ready"}
            except docker.errors.APIError:
                return
            if not any((t["Status"].get("State") in RUNNING_TASK and t.get("DesiredState") == "running" or
                        t["Status"].get("State") in ("running", "starting")) and t.get("NodeID", "") in up
                       for t in tasks):
                return
            self._sleep(POLL_S)

    def status(self, name: str) -> ReplicaStatus:
        service_name, slot = slot_of(name)
        service = self._find(service_name)
        if service is None:
            return ReplicaStatus(name, ServiceState.STOPPED, exists=False)
        return self._slot_status(name, service, self._tasks(service.name), slot or 1)

    def _slot_status(self, name: str, service: Any, tasks: list[dict], slot: int) -> ReplicaStatus:
        labels = dict(service.attrs["Spec"].get("Labels") or {})
        mine = sorted((t for t in tasks if t.get("Slot") == slot), key=lambda t: t.get("CreatedAt", ""))
        if self._replicas(service) == 0 or not mine:
            return ReplicaStatus(name, ServiceState.STOPPED, message="scaled to 0" if mine else "no task",
                                 labels=labels)
        wanted = [t for t in mine if t.get("DesiredState") == "running"]
        task = (wanted or mine)[-1]
        native = task["Status"].get("State", "")
        restart = service.attrs["Spec"]["TaskTemplate"].get("RestartPolicy", {}).get("Condition", "any")
        state = _state(native, bool(wanted), restart)
        container = task["Status"].get("ContainerStatus") or {}
        node = self._node_names().get(task.get("NodeID", ""), "")
        error = task["Status"].get("Err", "")
        message = f"{native} on {node or '?'}" + (f": {error}" if error else "") + \
            (f", exit status {container['ExitCode']}" if native in ("failed", "complete") and "ExitCode" in container
             else "")
        return ReplicaStatus(name, state, pid=container.get("PID") or None,
                             container_id=container.get("ContainerID") or None,
                             started_at=epoch(task["Status"].get("Timestamp")) if state.is_up else None,
                             message=message, labels=labels)

    def list(self) -> list[ReplicaStatus]:
        """Every slot of every service of the platform (`algo-…`); a one-task service by its own name."""
        with self._engine("swarm services could not be listed"):
            services = [s for s in self.client.services.list(filters={"label": f"{LABEL}.managed=true"})
                        if s.name.startswith("algo-")]
            tasks = self.client.api.tasks(filters={"label": f"{LABEL}.managed=true"}) if services else []
        by_service: dict[str, list[dict]] = {}
        for t in tasks:
            by_service.setdefault(t.get("ServiceID", ""), []).append(t)
        out = []
        for service in services:
            mine = by_service.get(service.id, [])
            if (service.attrs["Spec"].get("Labels") or {}).get(NAMING_LABEL) == "service":
                out.append(self._slot_status(service.name, service, mine, 1))
                continue
            slots = sorted({t["Slot"] for t in mine if "Slot" in t} | set(range(1, self._replicas(service) + 1)))
            out += [self._slot_status(f"{service.name}.{slot}", service, mine, slot) for slot in slots]
        return out

    def endpoints(self, name: str) -> dict[str, TaskEndpoint]:
        """The running tasks of service `name` by slot name, each at its node's address and published
        port; for a slot name (`algo-x.2`), that slot's task only."""
        service, slot = slot_of(name)
        if slot is not None:   # a swarm service's name has no dot
            return {k: v for k, v in self.endpoints(service).items() if k == name}
        addresses = self._node_addresses()
        names = self._node_names()
        out: dict[str, TaskEndpoint] = {}
        for t in sorted(self._tasks(name), key=lambda t: t.get("CreatedAt", "")):
            ports = (t["Status"].get("PortStatus") or {}).get("Ports") or []
            if t["Status"].get("State") != "running" or t.get("DesiredState") != "running" or not ports:
                continue
            node = t.get("NodeID", "")   # ports: IPv4 first, then IPv6 (not always the same number)
            out[f"{name}.{t['Slot']}"] = TaskEndpoint(Endpoint(addresses.get(node, "127.0.0.1"),
                                                               int(ports[0]["PublishedPort"])),
                                                      self._version(t), names.get(node, node))
        return out

    def logs(self, name: str, lines: int = 200, stream: str = "stdout") -> str:
        """The last `lines` lines of the service's tasks (of the slot's tasks for a slot name)."""
        service_name, slot = slot_of(name)
        service = self._find(service_name)
        if service is None:
            return ""
        ids = {t["ID"] for t in self._tasks(service_name) if slot is None or t.get("Slot") == slot}
        return self._task_logs(service.id, ids, lines, stream)

    def _task_logs(self, service: str, ids: set[str], lines: int, stream: str) -> str:
        """The last `lines` lines the tasks `ids` of `service` (name or id) wrote to `stream`."""
        with self._engine(f"logs of {service} could not be read"):
            raw = self.client.api.service_logs(service, details=True, stdout=stream == "stdout",
                                               stderr=stream != "stdout", tail=max(lines * 4, 50))
            text = b"".join(raw).decode(errors="replace")
        kept = [_strip_details(line) for line in text.splitlines() if _task_of(line) in ids]
        return "\n".join(kept[-lines:])

    def usage(self, statuses: Iterable[ReplicaStatus]) -> dict[str, Usage]:
        """CPU and memory of the running tasks on the manager's own node (others are left out)."""
        return self._local.usage(statuses)

    def check(self) -> str:
        with self._engine("the swarm manager did not answer"):
            info = self.client.info()
        swarm = info.get("Swarm") or {}
        return (f"Docker Swarm, {swarm.get('Nodes', '?')} node(s), manager {info.get('Name', '?')} "
                f"(Docker Engine {info.get('ServerVersion', '?')}) at {self.docker_host}")

    # --- nodes --------------------------------------------------------------------------------------

    def nodes(self) -> list[NodeStatus]:
        with self._engine("the swarm's nodes could not be listed"):
            nodes = self.client.api.nodes()
            tasks = self.client.api.tasks(filters={"label": f"{LABEL}.managed=true", "desired-state": "running"})
        running: dict[str, int] = {}
        for t in tasks:
            if t["Status"].get("State") == "running":
                running[t.get("NodeID", "")] = running.get(t.get("NodeID", ""), 0) + 1
        addresses = self._node_addresses(nodes)
        return [NodeStatus(n["ID"], n["Description"]["Hostname"], n["Spec"].get("Role", "?"),
                           n["Spec"].get("Availability", "?"), n["Status"].get("State", "?"), addresses[n["ID"]],
                           n["Description"]["Resources"].get("NanoCPUs", 0) / NS,
                           n["Description"]["Resources"].get("MemoryBytes", 0) / 2**20, running.get(n["ID"], 0),
                           bool((n.get("ManagerStatus") or {}).get("Leader")))
                for n in sorted(nodes, key=lambda n: n["Description"]["Hostname"])]

    def set_availability(self, node: str, availability: str) -> None:
        """`drain` moves the node's tasks elsewhere and places none there; `active` takes tasks again."""
        if availability not in AVAILABILITIES:
            raise ValueError(f"availability is one of {', '.join(AVAILABILITIES)}, not {availability!r}")
        with self._engine("the swarm's nodes could not be listed"):
            found = [n for n in self.client.api.nodes() if node in (n["ID"], n["Description"]["Hostname"])]
        if not found:
            raise NotFound(Message("swarm.no_node", "no node {node!r} in the swarm", node=node))
        spec = dict(found[0]["Spec"], Availability=availability)
        with self._engine(f"node {node} could not be set to {availability}"):
            self.client.api.update_node(found[0]["ID"], found[0]["Version"]["Index"], spec)

    def join_tokens(self) -> dict[str, str]:
        """{"worker": token, "manager": token, "address": the manager's host:port}."""
        with self._engine("the swarm's join tokens could not be read"):
            swarm = self.client.api.inspect_swarm()
            info = self.client.info()
        managers = (info.get("Swarm") or {}).get("RemoteManagers") or []
        return {"worker": swarm["JoinTokens"]["Worker"], "manager": swarm["JoinTokens"]["Manager"],
                "address": managers[0]["Addr"] if managers else ""}

    # --- internals ----------------------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        """The manager's client, connected on first use; BackendUnavailable if the engine cannot be
        reached or is not a swarm manager (checked until it once is)."""
        if self._client is None:
            try:
                self._client = self._connect()
            except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
                raise self._unavailable(e) from e
        if not self._manager_seen:
            self._manager_seen = self._is_manager(self._client)
        return self._client

    def _is_manager(self, client: docker.DockerClient) -> bool:
        try:
            info = client.info()
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
            raise self._unavailable(e) from e
        swarm = info.get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
            raise BackendUnavailable(Message("swarm.not_manager", "the engine at {host} is not a swarm manager",
                                             host=self.docker_host),
                                     hint=Message("swarm.not_manager.hint",
                                                  "scripts/docker-engine.sh --swarm makes one (or docker swarm init)"))
        return True

    def _default_client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, timeout=60)

    def _unavailable(self, e: Exception) -> BackendUnavailable:
        return BackendUnavailable(Message("swarm.unreachable", "swarm manager at {host} is not reachable: {why}",
                                          host=self.docker_host, why=why_unreachable(e)),
                                  hint=Message("swarm.unreachable.hint",
                                               "start it (scripts/docker-engine.sh --swarm) or set ALGOSTAGE_SWARM_HOST"))

    def _engine(self, what: str) -> AbstractContextManager[None]:
        return engine_errors(what, self._unavailable)

    def _find(self, name: str) -> Any | None:
        with self._engine(f"swarm service {name} could not be read"):
            found = [s for s in self.client.services.list(filters={"name": name}) if s.name == name]
        return found[0] if found else None

    def _service(self, name: str) -> Any:
        service = self._find(name)
        if service is None:
            raise NotFound(not_deployed(name))
        return service

    def _tasks(self, name: str) -> list[dict]:
        """The tasks of service `name`, oldest first ([] if there is no such service)."""
        with self._engine(f"tasks of {name} could not be listed"):
            try:
                found = self.client.api.tasks(filters={"service": name})
            except docker.errors.NotFound:
                return []
        return sorted(found, key=lambda t: t.get("CreatedAt", ""))

    @staticmethod
    def _replicas(service: Any) -> int:
        return int(((service.attrs["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas", 0))

    @staticmethod
    def _version(task: dict) -> str:
        return ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels", {}).get(f"{LABEL}.version", "")

    def _node_names(self) -> dict[str, str]:
        with self._engine("the swarm's nodes could not be listed"):
            return {n["ID"]: n["Description"]["Hostname"] for n in self.client.api.nodes()}

    def _node_addresses(self, nodes: list[dict] | None = None) -> dict[str, str]:
        """Each node's address; a manager that reports 0.0.0.0 is reached on its advertised address."""
        if nodes is None:
            with self._engine("the swarm's nodes could not be listed"):
                nodes = self.client.api.nodes()
        out = {}
        for n in nodes:
            addr = (n.get("Status") or {}).get("Addr", "")
            if addr in ("", "0.0.0.0"):
                addr = ((n.get("ManagerStatus") or {}).get("Addr", "") or "127.0.0.1").rpartition(":")[0]
            out[n["ID"]] = addr
        return out

    def _ensure_network(self) -> None:
        """The platform's overlay network (attachable: tasks find each other as `tasks.<service>`)."""
        with self._engine(f"overlay network {self.network} could not be created"):
            if not self.client.networks.list(names=[self.network]):
                try:
                    self.client.networks.create(self.network, driver="overlay", attachable=True,
                                                labels={f"{LABEL}.managed": "true"})
                except docker.errors.APIError as e:
                    if e.status_code != 409:   # made meanwhile by another deploy
                        raise


def _state(native: str, wanted: bool, restart: str) -> ServiceState:
    if native in _STARTING:
        return ServiceState.STARTING
    if native == "running":
        return ServiceState.RUNNING if wanted else ServiceState.STOPPING
    if native in ("failed", "rejected"):
        return ServiceState.BACKOFF if wanted and restart != "none" else ServiceState.EXITED
    if native in ("complete", "shutdown", "remove"):
        return ServiceState.STOPPED
    return ServiceState.UNKNOWN


def _task_of(line: str) -> str:
    """The task id in a `details=True` log line (`com.docker.swarm.node.id=…,…task.id=ID,… text`)."""
    m = re.search(r"com\.docker\.swarm\.task\.id=([a-z0-9]+)", line.split(" ", 1)[0])
    return m[1] if m else ""


def _strip_details(line: str) -> str:
    return line.split(" ", 1)[1] if line.startswith("com.docker.swarm") and " " in line else line

