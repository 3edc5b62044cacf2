"""History: calls filtered by service, user, status and time; latency percentiles over time; CSV."""
import json
from datetime import date, datetime, time, timedelta, timezone

import pandas as pd
import streamlit as st

from app.auth import Action, can
from app.history import CallFilter, latency_buckets, percentile, to_csv
from components.charts import percentiles_figure
from components.session import guard, platform, t

who = guard(Action.VIEW_HISTORY)
p = platform()
st.title(t("history.title"))
see_all = can(who, Action.VIEW_ALL_HISTORY)
st.caption(t("history.scope_all") if see_all else t("history.scope_own"))
services, users = p.history.choices(who)

c1, c2, c3, c4 = st.columns([2, 2, 1, 2])
service = c1.selectbox(t("history.service"), ["", *services], format_func=lambda s: s or t("history.any"))
user = c2.selectbox(t("history.user"), ["", *users], format_func=lambda u: u or t("history.any"), disabled=not see_all)
status = c3.selectbox(t("history.status"), ["", "ok", "error"], format_func=lambda s: s or t("history.any"))
today = date.today()
period = c4.date_input(t("history.period"), (today - timedelta(days=7), today), max_value=today)
start, end = (period[0], period[-1]) if isinstance(period, (tuple, list)) and period else (today, today)
since = datetime.combine(start, time.min).astimezone(timezone.utc)
until = datetime.combine(end + timedelta(days=1), time.min).astimezone(timezone.utc)

rows = p.history.calls(who, CallFilter(service or None, user or None, status or None, since, until))
if not rows:
    st.info(t("history.empty"))
    st.stop()

ok = [r for r in rows if r.status == "ok"]
m1, m2, m3, m4 = st.columns(4)
m1.metric(t("history.calls"), len(rows))
m2.metric(t("history.errors"), len(rows) - len(ok))
m3.metric(t("history.p50"), f"{percentile([r.total_ms for r in ok], 50):.1f} ms" if ok else "–")
m4.metric(t("history.p95"), f"{percentile([r.total_ms for r in ok], 95):.1f} ms" if ok else "–")
buckets = latency_buckets(rows)
if buckets:
    st.plotly_chart(percentiles_figure(buckets, total=t("results.total_ms"), predict=t("results.predict_ms"),
                                       title=t("history.percentiles")), key="history-percentiles")

st.dataframe(pd.DataFrame([{
    "#": r.id, t("col.when"): r.created_at, t("history.service"): r.service, t("svc.version"): r.version,
    t("history.user"): r.user, t("history.status"): r.status, t("results.total_ms"): round(r.total_ms, 1),
    t("results.predict_ms"): None if r.predict_ms is None else round(r.predict_ms, 1),
    t("manage.replica"): r.replica, t("history.input"): r.input_ref, t("history.params"): json.dumps(r.params, ensure_ascii=False),
    t("svc.error"): r.error} for r in rows]), hide_index=True, width="stretch")
st.download_button(t("history.export"), to_csv(rows), file_name="algostage-calls.csv", mime="text/csv",
                   icon=":material/download:")
