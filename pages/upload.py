"""Upload an algorithm package: archive, git URL or a folder on the server."""
import streamlit as st

from app.auth import Action, can
from app.errors import PermissionDenied, ValidationFailed
from components.catalog_view import changes_view
from components.session import guard, platform, show_problems, t

who = guard(Action.UPLOAD)
st.title(t("upload.title"))
st.caption(t("upload.intro"))

kinds = ["archive", "git", "folder"] if can(who, Action.UPLOAD_FROM_SERVER) else ["archive", "git"]
kind = st.radio(t("upload.kind"), kinds, horizontal=True,
                format_func=lambda k: t(f"upload.kind.{k}"))
with st.form("upload"):
    if kind == "archive":
        upload = st.file_uploader(t("upload.archive"), type=["zip", "gz", "tgz", "tar", "bz2", "xz"])
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
    except (ValidationFailed, PermissionDenied) as e:
        show_problems(e) if isinstance(e, ValidationFailed) else st.error(str(e))
        st.stop()
    st.success(t("upload.done", name=result.algorithm, version=result.version, sha=result.commit_sha[:10]))
    if result.changes is not None:
        st.subheader(t("upload.changes", version=result.version - 1))
        changes_view(result.changes)
