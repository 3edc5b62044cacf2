"""Upload an algorithm package: archive, git URL or a folder on the server. The template package
and the manifest reference are on the page, for a first package."""
import streamlit as st

from app.auth import Action, can
from app.errors import AlgoStageError
from components.catalog_view import changes_view, manifest_reference, template_zip
from components import data
from components.session import guard, platform, show_error, t
from components.showcase_inputs import localize_uploader

who = guard(Action.UPLOAD)
st.title(t("upload.title"))
st.caption(t("upload.intro"))
st.download_button(t("upload.template"), template_zip(), file_name="algorithm-template.zip", mime="application/zip",
                   icon=":material/download:", help=t("upload.template_help"))
with st.expander(t("upload.reference"), icon=":material/menu_book:"):
    manifest_reference()

kinds = ["archive", "git", "folder"] if can(who, Action.UPLOAD_FROM_SERVER) else ["archive", "git"]
kind = st.radio(t("upload.kind"), kinds, horizontal=True,
                format_func=lambda k: t(f"upload.kind.{k}"))
with st.form("upload"):
    if kind == "archive":
        upload = st.file_uploader(t("upload.archive"), type=["zip", "gz", "tgz", "tar", "bz2", "xz"])
        localize_uploader(int(st.get_option("server.maxUploadSize")))
    else:
        source_text = st.text_input(t(f"upload.{kind}"), placeholder=t(f"upload.{kind}.placeholder"))
    name = st.text_input(t("upload.name"), help=t("upload.name.help"))
    message = st.text_input(t("upload.message"))
    allow = st.checkbox(t("upload.allow_redirects"), disabled=not can(who, Action.ALLOW_REQUIREMENT_REDIRECTS))
    submitted = st.form_submit_button(t("upload.submit"), type="primary")

if submitted:
    if kind == "archive" and upload is None:
        st.error(t("upload.choose_file"))
        st.stop()
    options = {"name": name.strip() or None, "message": message.strip(), "allow_redirects": allow}
    try:
        with st.spinner(t("upload.working")):
            catalog = platform().catalog
            result = catalog.upload_archive(who, upload.name, upload.getvalue(), **options) if kind == "archive" \
                else catalog.upload(who, source_text.strip(), **options)
    except AlgoStageError as e:
        show_error(e)
        st.stop()
    data.changed("algorithms")
    st.success(t("upload.done", name=result.algorithm, version=result.version, sha=result.commit_sha[:10]))
    if result.changes is not None:
        st.subheader(t("upload.changes", version=result.version - 1))
        changes_view(result.changes)
