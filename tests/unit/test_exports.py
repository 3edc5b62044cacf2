"""The exports (orchestration/export): a Compose file whose `deploy:` sections say what the swarm
runtime runs, and Kubernetes manifests valid against the Kubernetes schemas (kubernetes-validate,
offline: the schemas ship in the package)."""
from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from orchestration.export import compose, kubernetes
from orchestration.runtime import ReplicaSpec, Resources
from orchestration.workload import CONTAINER_PORT, Workload, workload_of

K8S_VERSION = "1.33.0"


def workload(tmp_path: Path, *, replicas: int = 3, resources: Resources = Resources(1.5, 512),
             server: str | None = None, dockerfile: bool = False, autorestart: bool = True) -> Workload:
    (tmp_path / "requirements.txt").write_text("numpy\n")
    spec = ReplicaSpec("face-detect", 2, "v7", "c0ffee", tmp_path, 18123, "127.0.0.1", server,
                       {"ALGOSTAGE_SERVICE": "face-detect", "ALGOSTAGE_REPLICA": "2", "MODE": "fast"}, resources,
                       "ab" * 32, autorestart)
    return workload_of(spec, replicas, "127.0.0.1:5000", own_dockerfile=dockerfile)


def test_the_workload_is_the_docker_runtimes_image_in_the_registry_on_the_cluster_port(tmp_path: Path) -> None:
    w = workload(tmp_path)
    assert w.name == "algo-face-detect"
    assert w.image == "127.0.0.1:5000/algostage/face-detect:v7-c0ffee-" + ("ab" * 6)   # version, commit, requirements
    assert w.command == ("python", "-m", "orchestration.runner", "--package", "/srv/package",
                         "--port", str(CONTAINER_PORT), "--host", "0.0.0.0")
    assert w.env["PORT"] == str(CONTAINER_PORT) and w.env["MODE"] == "fast"
    assert "ALGOSTAGE_REPLICA" not in w.env          # one definition for every task
    assert w.reserved == Resources(0.375, 128)
    assert w.labels["algostage.service"] == "face-detect" and w.labels["algostage.version"] == "v7"
    own = workload(tmp_path, server="uvicorn main:app --port $PORT --host $HOST")
    assert own.command == ("uvicorn", "main:app", "--port", "8000", "--host", "0.0.0.0")
    assert workload(tmp_path, dockerfile=True).command is None


def test_compose_has_the_deploy_section_of_the_original_plan(tmp_path: Path) -> None:
    doc = yaml.safe_load(compose.render([workload(tmp_path)]))
    svc = doc["services"]["face-detect"]
    deploy = svc["deploy"]
    assert deploy["replicas"] == 3 and deploy["endpoint_mode"] == "dnsrr"
    assert deploy["resources"] == {"limits": {"cpus": "1.5", "memory": "512M"},
                                   "reservations": {"cpus": "0.375", "memory": "128M"}}
    assert deploy["restart_policy"]["condition"] == "on-failure"
    assert deploy["update_config"]["order"] == "start-first" and deploy["update_config"]["failure_action"] == "rollback"
    assert deploy["placement"] == {"preferences": [{"spread": "node.id"}]}
    assert svc["ports"] == [{"target": CONTAINER_PORT, "protocol": "tcp", "mode": "host"}]   # no routing mesh
    assert svc["healthcheck"]["test"][:2] == ["CMD", "python"] and "/health" in svc["healthcheck"]["test"][-1]
    assert svc["command"][:2] == ["/bin/sh", "-c"] and svc["command"][-1] == "0.0.0.0"   # drains, then the runner
    assert '"$$@" & pid=$$!' in svc["command"][2] and "$" not in svc["command"][2].replace("$$", "")  # no interpolation
    assert doc["networks"]["algostage"]["driver"] == "overlay"
    no_restart = yaml.safe_load(compose.render([workload(tmp_path, autorestart=False, resources=Resources())]))
    assert no_restart["services"]["face-detect"]["deploy"]["restart_policy"]["condition"] == "none"
    assert "resources" not in no_restart["services"]["face-detect"]["deploy"]


def test_kubernetes_manifests_validate_against_the_schemas(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all(kubernetes.render([workload(tmp_path), workload(tmp_path / "..", replicas=1)])))
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "HorizontalPodAutoscaler"] * 2
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    deployment, service, hpa = docs[:3]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"] == {"limits": {"cpu": "1.5", "memory": "512Mi"},
                                      "requests": {"cpu": "0.375", "memory": "128Mi"}}
    assert deployment["spec"]["replicas"] == 3
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"] == "algo-face-detect"


def test_the_validator_refuses_a_broken_manifest(tmp_path: Path) -> None:
    """The schemas are really applied: a Deployment without a selector is refused."""
    deployment = kubernetes.deployment(workload(tmp_path))
    del deployment["spec"]["selector"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
