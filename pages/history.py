"""History: calls filtered by service, user, status and time; latency percentiles per service (a
2 ms text service and an 8 s OCR never share one line, and a log axis shows both) or over time for
a chosen service; the calls themselves; CSV."""
import json
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, timezone

import pandas as pd
import streamlit as st

from app.auth import Action, can
from app.history import CallFilter, CallRow, latency_buckets, percentile, to_csv
from app.i18n import term
from components.charts import percentiles_figure, service_percentiles_figure
from components.session import guard, lang, platform, say, t

who = guard(Action.VIEW_HISTORY)
p = platform()
st.title(t("history.title"))
see_all = can(who, Action.VIEW_ALL_HISTORY)
st.caption(t("history.scope_all") if see_all else t("history.scope_own"))
services, users = p.history.choices(who)

c1, c2, c3, c4 = st.columns([2, 2, 1, 2])
service = c1.selectbox(t("history.service"), ["", *services], format_func=lambda s: s or t("history.any"))
user = c2.selectbox(t("history.user"), ["", *users], format_func=lambda u: u or t("history.any"), disabled=not see_all)
status = c3.selectbox(t("history.status"), ["", "ok", "error"],
                      format_func=lambda s: term("status", s, lang()) if s else t("history.any"))
today = date.today()
period = c4.date_input(t("history.period"), (today - timedelta(days=7), today), max_value=today, format="YYYY-MM-DD")
start, end = (period[0], period[-1]) if isinstance(period, (tuple, list)) and period else (today, today)
since = datetime.combine(start, time.min).astimezone(timezone.utc)
until = datetime.combine(end + timedelta(days=1), time.min).astimezone(timezone.utc)

rows = p.history.calls(who, CallFilter(service or None, user or None, status or None, since, until))
if not rows:
    st.info(t("history.empty"))
    st.stop()


def latencies(calls: Sequence[CallRow]) -> list[float]:
    """Total ms of the ok calls."""
    return [r.total_ms for r in calls if r.status == "ok"]


def ms(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 1) if values else None


by_service = {name: [r for r in rows if r.service == name] for name in sorted({r.service for r in rows})}
if len(by_service) == 1:
    (name, calls), = by_service.items()
    ok = latencies(calls)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(t("history.calls"), len(calls))
    m2.metric(t("history.errors"), len(calls) - sum(r.status == "ok" for r in calls))
    m3.metric(t("history.p50"), f"{ms(ok, 50):,.1f} ms" if ok else "–")
    m4.metric(t("history.p95"), f"{ms(ok, 95):,.1f} ms" if ok else "–")
    if buckets := latency_buckets(calls):
        st.plotly_chart(percentiles_figure(buckets, total=t("results.total_ms"), predict=t("results.predict_ms"),
                                           title=t("history.percentiles_of", service=name), log=t("history.log")),
                        key="history-percentiles")
else:
    st.subheader(t("history.per_service"))
    st.dataframe(pd.DataFrame([{t("history.service"): name, t("history.calls"): len(calls),
                                t("history.errors"): sum(r.status != "ok" for r in calls),
                                **{f"p{q} ms": ms(latencies(calls), q) for q in (50, 95, 99)}}
                               for name, calls in by_service.items()]),
                 hide_index=True, width="stretch", placeholder="–")
    quantile = st.segmented_control(t("history.quantile"), ["p50", "p95", "p99"], default="p95",
                                    key="history-quantile") or "p95"
    series = {name: buckets for name, calls in by_service.items() if (buckets := latency_buckets(calls))}
    if series:
        st.plotly_chart(service_percentiles_figure(series, quantile=quantile, log=t("history.log"),
                                                   title=t("history.percentiles_per_service", q=quantile)),
                        key="history-services")
    st.caption(t("history.choose_service"))

st.dataframe(pd.DataFrame([{
    "#": r.id, t("col.when"): r.created_at, t("history.service"): r.service, t("svc.version"): r.version,
    t("history.user"): r.user, t("history.status"): term("status", r.status, lang()),
    t("results.total_ms"): round(r.total_ms, 1),
    t("results.predict_ms"): None if r.predict_ms is None else round(r.predict_ms, 1),
    t("manage.replica"): r.replica, t("history.input"): r.input_ref,
    t("history.params"): json.dumps(r.params, ensure_ascii=False), t("history.error"): say(r.error) or None} for r in rows]),
    hide_index=True, width="stretch", placeholder="–",
    column_config={t("col.when"): st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")})
st.download_button(t("history.export"), to_csv(rows), file_name="algostage-calls.csv", mime="text/csv",
                   icon=":material/download:")
