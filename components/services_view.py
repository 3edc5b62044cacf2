"""Render helpers for services: the status table, action results, the log viewer."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app.i18n import term
from orchestration.health import Health
from app.services.manager import FAILED_STATES, ReplicaView, ServiceView
from orchestration.runtime import ServiceState
from components.session import lang, say, t

STATE_ICON = {ServiceState.RUNNING: "🟢", ServiceState.STARTING: "🟡", ServiceState.BACKOFF: "🟠",
              ServiceState.STOPPING: "🟡", ServiceState.STOPPED: "⚪", ServiceState.EXITED: "🔴",
              ServiceState.FATAL: "🔴", ServiceState.UNKNOWN: "❔"}


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return ""
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _health_text(v: ServiceView, health: dict[str, Health]) -> str:
    seen = [health[r.name] for r in v.replicas if r.name in health]
    if not seen:
        return ""
    ready = sum(h.ready for h in seen)
    worst = next((h for h in seen if not h.ready), None)
    text = f"{ready}/{len(v.replicas)} {term('health', 'READY', lang())}"
    return text if worst is None else f"{text} · {term('health', worst.status, lang())} {worst.error[:80]}".strip()


def services_table(views: list[ServiceView], health: dict[str, Health] | None = None) -> None:
    health = health or {}
    rows = []
    for v in views:
        cpu = [r.cpu_percent for r in v.replicas if r.cpu_percent is not None]
        mem = [r.memory_mb for r in v.replicas if r.memory_mb is not None]
        rows.append({
            t("svc.name"): v.name, t("svc.state"): state_text(v.state),
            t("svc.health"): _health_text(v, health), t("svc.version"): v.version,
            t("svc.runtime"): term("runtime", v.runtime, lang()),
            t("svc.replicas"): f"{sum(r.state is ServiceState.RUNNING for r in v.replicas)}/{len(v.replicas)}",
            t("svc.routed"): f"{sum(r.routed for r in v.replicas)}/{len(v.replicas)}"
                             + (f" · {v.canary_version} {v.canary_percent}%" if v.canary_version else ""),
            t("svc.ports"): " ".join(str(r.port) for r in v.replicas),
            t("svc.pids"): " ".join(str(r.pid or (r.container_id or "")[:12]) for r in v.replicas),
            t("svc.uptime"): _uptime(min((r.uptime_s for r in v.replicas if r.uptime_s), default=None)),
            t("svc.cpu"): round(sum(cpu), 1) if cpu else None, t("svc.memory"): round(sum(mem)) if mem else None,
            t("svc.group"): v.group or "", t("svc.error"): _error_text(v),
        })
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", placeholder="–")


def state_text(state: ServiceState) -> str:
    """A service or replica state with its icon, in the page's language."""
    return f"{STATE_ICON[state]} {term('state', state.value, lang())}"


def _failed(v: ServiceView) -> list[ReplicaView]:
    return [r for r in v.replicas if r.state in FAILED_STATES]


def _error_text(v: ServiceView) -> str:
    """The failed deploy (if any) and the first failing replica's state, message and last log line."""
    parts = [say(v.last_error)] if v.last_error else []
    for r in _failed(v)[:1]:
        last = r.log_tail.strip().splitlines()[-1:] if r.log_tail.strip() else []
        parts.append(" — ".join([f"{r.name} {term('state', r.state.value, lang())}: {say(r.message)}", *last]))
    return " · ".join(parts)


def failed_replicas(views: list[ServiceView]) -> None:
    """One warning per replica that is FATAL, BACKOFF or EXITED, with the tail of its log."""
    for v in views:
        for r in _failed(v):
            st.warning(f"**{r.name}** {state_text(r.state)}: {say(r.message)}")
            if r.log_tail:
                st.code(r.log_tail, language=None)


def action_results(action: str, results: dict[str, str | None]) -> None:
    ok = [n for n, e in results.items() if e is None]
    if ok:
        st.success(t("svc.action_ok", action=t(f"svc.action.{action}"), names=", ".join(ok)))
    for name, error in results.items():
        if error:
            st.error(f"{name}: {say(error)}")


def log_viewer(logs: dict[str, str], search: str, key: str) -> None:
    for replica, text in logs.items():
        lines = [ln for ln in text.splitlines() if search.lower() in ln.lower()] if search else text.splitlines()
        st.caption(t("svc.log_lines", replica=replica, n=len(lines)))
        st.code("\n".join(lines) or t("svc.log_empty"), language=None)
        st.download_button(t("svc.download"), text, file_name=f"{replica}.log", key=f"{key}-{replica}")
