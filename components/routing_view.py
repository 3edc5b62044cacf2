"""The Manage page's routing tab: each replica in or out of rotation and why, the version on trial
beside the served one, and what went through the gateway (calls, errors, latency) per version
and per replica."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.i18n import TEXTS, term
from app.services.gateway_log import Figures, ServiceTraffic
from app.services.manager import ServiceView
from components.charts import LAYOUT, PREDICT_COLOR, TOTAL_COLOR
from components.session import lang, say, t
from orchestration.errors import Message


def replicas_table(view: ServiceView) -> None:
    st.dataframe(pd.DataFrame([{
        t("manage.replica"): r.name, t("svc.version"): r.version, t("svc.state"): term("state", r.state.value, lang()),
        t("routing.in"): "✅" if r.routed else "⛔", t("routing.why"): route_note(r.route_note),
        t("routing.endpoint"): r.endpoint,
    } for r in view.replicas]), hide_index=True, width="stretch")


def route_note(note: str) -> str:
    """Why a replica is in or out of rotation (the health monitor's verdict) in the page's
    language; the detail of a failed check (an engine's own words) stays as it came."""
    if isinstance(note, Message):
        return say(note)
    if f"routing.note.{note}" in TEXTS:
        return t(f"routing.note.{note}")
    return t("routing.note.out", reason=note.removeprefix("out: ")) if note.startswith("out: ") else note


def canary_caption(view: ServiceView) -> None:
    if view.canary_version:
        st.info(t("routing.canary", version=view.canary_version, percent=view.canary_percent,
                  stable=view.version), icon=":material/science:")


def traffic(view: ServiceView, seen: ServiceTraffic | None, window_s: float) -> None:
    """Figures of the last `window_s` seconds through the gateway, per version and per replica."""
    if seen is None or not seen.total.requests:
        st.caption(t("routing.no_traffic", minutes=round(window_s / 60)))
        return
    rows = [_row(t("routing.all"), seen.total)]
    rows += [_row(f"{t('svc.version')} {v}", f) for v, f in sorted(seen.by_version.items())]
    rows += [_row(r, f) for r, f in sorted(seen.by_replica.items())]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.plotly_chart(_latency_figure(seen), key=f"traffic-{view.name}")


def _row(label: str, f: Figures) -> dict:
    return {t("routing.group"): label, t("routing.calls"): f.requests, t("routing.per_s"): round(f.per_s, 2),
            t("routing.errors"): f.errors, t("routing.error_rate"): f"{f.error_rate:.1%}",
            "p50 ms": None if f.p50_ms is None else round(f.p50_ms, 1),
            "p95 ms": None if f.p95_ms is None else round(f.p95_ms, 1)}


def _latency_figure(seen: ServiceTraffic) -> go.Figure:
    names = sorted(seen.by_version)
    fig = go.Figure([go.Bar(name="p50", x=names, y=[seen.by_version[n].p50_ms for n in names], marker_color=TOTAL_COLOR),
                     go.Bar(name="p95", x=names, y=[seen.by_version[n].p95_ms for n in names],
                            marker_color=PREDICT_COLOR)])
    fig.update_layout(barmode="group", title=t("routing.latency_title"), yaxis_title="ms", **LAYOUT)
    return fig
