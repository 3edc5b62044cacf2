"""Kubernetes manifests of the platform's services: per service a Deployment (the image, the
replicas, requests and limits, readiness and liveness probes on the runner's /health, a rolling
update that keeps every replica serving), a Service in front of it and a HorizontalPodAutoscaler
(autoscaling/v2, on CPU). An export, validated against the Kubernetes schemas in the tests; no
Kubernetes cluster runs it here.
"""
from __future__ import annotations

from collections.abc import Iterable

import yaml

from orchestration.workload import CONTAINER_PORT, HEALTH_PATH, Workload, k8s_name

SERVICE_PORT = 80
MAX_REPLICAS_FACTOR = 4
TARGET_CPU_PERCENT = 70


def render(workloads: Iterable[Workload]) -> str:
    docs = [doc for w in workloads for doc in manifests(w)]
    return "# AlgoStage export: kubectl apply -f algostage.yaml\n" + yaml.safe_dump_all(docs, sort_keys=False)


def manifests(w: Workload) -> list[dict]:
    return [deployment(w), service(w), autoscaler(w)]


def _labels(w: Workload) -> dict[str, str]:
    return {"app.kubernetes.io/name": k8s_name(w.service), "app.kubernetes.io/version": k8s_name(w.version),
            "app.kubernetes.io/managed-by": "algostage"}


def _selector(w: Workload) -> dict[str, str]:
    return {"app.kubernetes.io/name": k8s_name(w.service)}


def deployment(w: Workload) -> dict:
    container: dict = {"name": k8s_name(w.service), "image": w.image,
                       "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
                       "env": [{"name": k, "value": str(v)} for k, v in sorted(w.env.items())]}
    if w.command:
        container["command"] = list(w.command)
    resources = _resources(w)
    if resources:
        container["resources"] = resources
    probe = {"httpGet": {"path": HEALTH_PATH, "port": "http"}, "periodSeconds": w.probe.interval_s,
             "timeoutSeconds": w.probe.timeout_s, "failureThreshold": w.probe.retries}
    container["startupProbe"] = {**probe, "failureThreshold": max(1, w.probe.start_period_s // w.probe.interval_s)}
    container["readinessProbe"] = probe
    container["livenessProbe"] = probe
    container["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", str(w.policies.drain_s)]}}}
    pod = {"metadata": {"labels": {**_labels(w)}, "annotations": {k: str(v) for k, v in w.labels.items()}},
           "spec": {"containers": [container], "terminationGracePeriodSeconds": w.policies.stop_grace_s,
                    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                                   "whenUnsatisfiable": "ScheduleAnyway",
                                                   "labelSelector": {"matchLabels": _selector(w)}}]}}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": k8s_name(w.name), "labels": _labels(w)},
            "spec": {"replicas": w.replicas, "selector": {"matchLabels": _selector(w)},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                     "template": pod}}


def _resources(w: Workload) -> dict:
    limits, requests = {}, {}
    if w.resources.cpus:
        limits["cpu"], requests["cpu"] = f"{w.resources.cpus:g}", f"{w.reserved.cpus:g}"
    if w.resources.memory_mb:
        limits["memory"], requests["memory"] = f"{w.resources.memory_mb}Mi", f"{w.reserved.memory_mb}Mi"
    return {"limits": limits, "requests": requests} if limits else {}


def service(w: Workload) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": k8s_name(w.name), "labels": _labels(w)},
            "spec": {"selector": _selector(w),
                     "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}]}}


def autoscaler(w: Workload) -> dict:
    """CPU-driven, from the deployed replica count up to MAX_REPLICAS_FACTOR times it. Needs CPU
    requests to mean anything: a service without a cpu limit gets the scheduler's default."""
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": k8s_name(w.name), "labels": _labels(w)},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": k8s_name(w.name)},
                     "minReplicas": w.replicas, "maxReplicas": w.replicas * MAX_REPLICAS_FACTOR,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization", "averageUtilization": TARGET_CPU_PERCENT}}}]}}
