"""The catalog: algorithms, their versions, manifests, parameters, samples and changes. Titles,
descriptions and parameters in the page's language (a manifest's `i18n:` block)."""
import pandas as pd
import streamlit as st

from app.auth import Action
from app.i18n import term
from components import data
from components.catalog_view import as_data, changes_view, localized, params_table
from components.session import guard, lang, platform, t

who = guard(Action.VIEW_CATALOG)
catalog = platform().catalog
st.title(t("catalog.title"))
algos = data.algorithms(who)
if not algos:
    st.info(t("catalog.empty"))
    st.stop()
texts = {a.name: localized(a.latest.manifest) for a in algos}

st.dataframe(pd.DataFrame([{t("catalog.name"): a.name, t("catalog.task"): term("task", a.task, lang()),
                            t("catalog.title_col"): texts[a.name].title if texts[a.name] else a.title,
                            t("catalog.versions"): len(a.versions), t("catalog.latest"): a.latest.tag,
                            t("catalog.updated"): a.latest.created_at} for a in algos]),
             hide_index=True, width="stretch", placeholder="–",
             column_config={t("catalog.updated"): st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")})

name = st.selectbox(t("catalog.algorithm"), [a.name for a in algos])
algo = next(a for a in algos if a.name == name)
number = st.selectbox(t("catalog.version"), [v.number for v in reversed(algo.versions)],
                      format_func=lambda n: f"v{n}")
version = next(v for v in algo.versions if v.number == number)
manifest = localized(version.manifest)

st.subheader(f"{manifest.title if manifest else algo.title} · v{version.number}")
st.markdown(manifest.description if manifest else algo.description)
when = version.created_at.strftime("%Y-%m-%d %H:%M") if hasattr(version.created_at, "strftime") else version.created_at
st.caption(t("catalog.meta", sha=version.commit_sha[:10], by=as_data(version.created_by), at=when,
             message=as_data(version.message)), unsafe_allow_html=True)
tab_params, tab_files, tab_changes, tab_manifest = st.tabs(
    [t("catalog.params"), t("catalog.files"), t("catalog.changes"), t("catalog.manifest")])
with tab_params:
    params_table(manifest)
    if manifest and manifest.score:
        st.caption(t("catalog.score", kind=term("score.kind", manifest.score.kind, lang()), help=manifest.score.help))
with tab_files:
    refs = catalog.refs(who, name)
    st.caption(t("catalog.refs", tags=", ".join(refs["tags"]) or "–", branches=", ".join(refs["branches"]) or "–"))
    st.dataframe(pd.DataFrame({t("catalog.file"): version.files}), hide_index=True, width="stretch")
    samples = [f for f in version.files if f.startswith("samples/")]
    if samples:
        sample = st.selectbox(t("catalog.sample"), samples)
        content = catalog.read_file(who, name, number, sample)
        if sample.lower().endswith((".jpg", ".jpeg", ".png")):
            st.image(content, caption=sample)
        else:
            st.code(content.decode(errors="replace")[:2000])
with tab_changes:
    if number == 1:
        st.caption(t("catalog.first_version"))
    else:
        changes_view(catalog.changes(who, name, number - 1, number))
with tab_manifest:
    st.json(version.manifest)
