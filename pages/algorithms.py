"""The catalog: algorithms, their versions, manifests, parameters, samples and changes."""
import pandas as pd
import streamlit as st

from app.auth import Action
from components.catalog_view import changes_view, params_table
from components.session import guard, platform, t

who = guard(Action.VIEW_CATALOG)
catalog = platform().catalog
st.title(t("catalog.title"))
algos = catalog.list(who)
if not algos:
    st.info(t("catalog.empty"))
    st.stop()

st.dataframe(pd.DataFrame([{t("catalog.name"): a.name, t("catalog.task"): a.task, t("catalog.title_col"): a.title,
                            t("catalog.versions"): len(a.versions), t("catalog.latest"): a.latest.tag,
                            t("catalog.updated"): a.latest.created_at} for a in algos]),
             hide_index=True, width="stretch")

name = st.selectbox(t("catalog.algorithm"), [a.name for a in algos])
algo = next(a for a in algos if a.name == name)
number = st.selectbox(t("catalog.version"), [v.number for v in reversed(algo.versions)],
                      format_func=lambda n: f"v{n}")
version = next(v for v in algo.versions if v.number == number)

st.subheader(f"{algo.title} · v{version.number}")
st.markdown(algo.description)
st.caption(t("catalog.meta", sha=version.commit_sha[:10], by=version.created_by, at=version.created_at,
             message=version.message))
tab_params, tab_files, tab_changes, tab_manifest = st.tabs(
    [t("catalog.params"), t("catalog.files"), t("catalog.changes"), t("catalog.manifest")])
with tab_params:
    params_table(version.manifest)
with tab_files:
    refs = catalog.refs(who, name)
    st.caption(t("catalog.refs", tags=", ".join(refs["tags"]) or "–", branches=", ".join(refs["branches"]) or "–"))
    st.dataframe(pd.DataFrame({t("catalog.file"): version.files}), hide_index=True, width="stretch")
    samples = [f for f in version.files if f.startswith("samples/")]
    if samples:
        sample = st.selectbox(t("catalog.sample"), samples)
        data = catalog.read_file(who, name, number, sample)
        if sample.lower().endswith((".jpg", ".jpeg", ".png")):
            st.image(data, caption=sample)
        else:
            st.code(data.decode(errors="replace")[:2000])
with tab_changes:
    if number == 1:
        st.caption(t("catalog.first_version"))
    else:
        changes_view(catalog.changes(who, name, number - 1, number))
with tab_manifest:
    st.json(version.manifest)
