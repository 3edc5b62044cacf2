"""Deploy an algorithm version as a service: runtime, replicas, resources, environment."""
import pandas as pd
import streamlit as st

from app.auth import Action
from app.errors import AlgoStageError
from app.i18n import term
from components import data
from components.catalog_view import localized
from components.session import guard, lang, platform, say, show_error, t
from app.services.deployer import DeployRequest, parse_memory_mb
from orchestration.errors import DeployError
from orchestration.runtime import Resources

who = guard(Action.DEPLOY)
p = platform()
st.title(t("deploy.title"))
algos = data.algorithms(who)
if not algos:
    st.info(t("catalog.empty"))
    st.stop()

titles = {a.name: m.title if (m := localized(a.latest.manifest)) else a.title for a in algos}   # page's language
left, right = st.columns(2)
name = left.selectbox(t("catalog.algorithm"), [a.name for a in algos], format_func=lambda n: f"{n} — {titles[n]}")
algo = next(a for a in algos if a.name == name)
number = right.selectbox(t("catalog.version"), [v.number for v in reversed(algo.versions)], format_func=lambda n: f"v{n}")
manifest = next(v for v in algo.versions if v.number == number).manifest
runtimes = list(p.runtimes)
default_runtime = p.settings.value("ALGOSTAGE_RUNTIME")
runtime = left.radio(t("deploy.runtime"), runtimes, horizontal=True, format_func=lambda r: term("runtime", r, lang()),
                     index=runtimes.index(default_runtime) if default_runtime in runtimes else 0)
replicas = right.number_input(t("deploy.replicas"), 1, 16, int(manifest.get("replicas", 1)))
res = manifest.get("resources") or {}
cpus = left.number_input(t("deploy.cpus"), 0.1, 64.0, float(res.get("cpus") or 1.0), 0.1)
memory = right.number_input(t("deploy.memory"), 64, 65536, parse_memory_mb(res.get("memory")) or 512, 64)
env_table = st.data_editor(pd.DataFrame({"key": pd.Series(dtype=str), "value": pd.Series(dtype=str)}),
                           num_rows="dynamic", width="stretch", key="deploy-env",
                           column_config={"key": st.column_config.TextColumn(t("deploy.env_key")),
                                          "value": st.column_config.TextColumn(t("deploy.env_value"))})

if st.button(t("deploy.submit"), type="primary", icon=":material/rocket_launch:"):
    env = {str(r["key"]).strip(): str(r["value"]) for _, r in env_table.iterrows() if str(r["key"]).strip()
           and str(r["key"]) != "nan"}
    req = DeployRequest(name, number, runtime, int(replicas), env, Resources(cpus, int(memory)))
    lines: list[str] = []
    with st.status(t("deploy.running", name=name, version=number), expanded=True) as status:
        phase_box, log_box = st.empty(), st.empty()

        def show(event) -> None:  # noqa: ANN001 - DeployEvent
            lines.append(f"[{event.phase}] {event.message}")
            phase_box.markdown(t("deploy.phase", phase=term("phase", event.phase, lang())))
            log_box.code("\n".join(lines[-40:]), language=None)
        try:
            result = p.deployer.deploy(who, req, show)
            data.changed("services")
        except DeployError as e:
            data.changed("services")   # the failure is recorded on the service
            status.update(label=t("deploy.failed", phase=term("phase", e.phase, lang())), state="error")
            st.error(say(e.message))
            with st.expander(t("deploy.log"), expanded=True):
                st.code(e.log or "\n".join(lines), language=None)
            st.stop()
        except AlgoStageError as e:
            status.update(label=t("deploy.failed", phase="-"), state="error")
            show_error(e)
            st.stop()
        status.update(label=t("deploy.done", name=name, version=number), state="complete", expanded=False)
    st.success(t("deploy.urls") + " " + " · ".join(result.urls))
    st.dataframe(pd.DataFrame([{term("phase", k, lang()): v for k, v in result.phases.items()}]), hide_index=True)
