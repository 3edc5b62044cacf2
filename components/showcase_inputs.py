"""Input widgets of the Showcase and Compare pages: the parameter form generated from a manifest's
params, and the input picker (demo gallery, upload, typed text). Refused inputs are shown as
messages; the picker then returns None."""
from __future__ import annotations

from typing import Any

import streamlit as st

from app import media
from app.auth import Actor
from app.errors import Problem, ValidationFailed
from app.manifest import ParamSpec
from app.platform import Platform
from app.showcase import InputData, MediaItem
from components.session import t

BROWSER_VIDEO_TYPES = ("video/mp4", "video/webm")
BROWSER_CODECS = ("h264", "vp8", "vp9", "av1")
UPLOAD_TYPES = ["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff", "avi", "mp4", "mov", "mkv", "webm", "txt"]


def param_form(specs: dict[str, ParamSpec], *, key: str) -> dict[str, Any]:
    """One widget per parameter: bounded numbers → slider, other numbers → number input, enum →
    select box, bool → toggle, string → text input; the manifest's help as the tooltip."""
    if not specs:
        st.caption(t("catalog.no_params"))
    return {name: _widget(name, spec, f"{key}-{name}") for name, spec in specs.items()}


def _widget(name: str, spec: ParamSpec, key: str) -> Any:
    helptext = spec.help or None
    if spec.type in ("int", "float"):
        cast = int if spec.type == "int" else float
        step = cast(spec.step) if spec.step is not None else (1 if spec.type == "int" else None)
        lo, hi = (cast(v) if v is not None else None for v in (spec.min, spec.max))
        if lo is not None and hi is not None and lo < hi:
            return st.slider(name, lo, hi, cast(spec.default), step, help=helptext, key=key)
        return st.number_input(name, lo, hi, cast(spec.default), step, help=helptext, key=key)
    if spec.type == "enum":
        choices = list(spec.choices or [])
        return st.selectbox(name, choices, index=choices.index(spec.default), help=helptext, key=key)
    if spec.type == "bool":
        return st.toggle(name, bool(spec.default), help=helptext, key=key)
    return st.text_input(name, str(spec.default or ""), help=helptext, key=key)


def refused(error: ValidationFailed) -> None:
    st.error(t("input.refused") + "\n" + "\n".join(f"- **{p.field}**: {p.reason}" for p in error.problems))


def input_picker(p: Platform, who: Actor, kind: str, *, key: str, allow_video: bool = False) -> InputData | None:
    """An input of `kind` ("text" or "image"; with `allow_video`, videos too) from the gallery, an
    upload or typed text, loaded and checked. None (with a message if refused) when there is none."""
    sources = ["gallery", "upload", "text"] if kind in ("text", "json") else ["gallery", "upload"]
    source = st.radio(t("input.source"), sources, format_func=lambda s: t(f"input.source.{s}"), horizontal=True,
                      key=f"{key}-source")
    try:
        if source == "gallery":
            data = _from_gallery(p, kind, allow_video, key)
        elif source == "upload":
            data = _from_upload(p, who, kind, allow_video, key)
        else:
            text = st.text_area(t("input.text"), key=f"{key}-text", height=120)
            data = p.showcase.load(p.showcase.add_text(who, text).ref) if text.strip() else None
    except ValidationFailed as e:
        refused(e)
        return None
    try:
        _preview(p, data)
    except ValidationFailed as e:
        refused(e)
        return None
    return data


def _from_gallery(p: Platform, kind: str, allow_video: bool, key: str) -> InputData | None:
    kinds = ["image", "video"] if kind == "image" and allow_video else ["text" if kind == "json" else kind]
    items: dict[str, MediaItem] = {str(i.ref): i for k in kinds for i in p.showcase.gallery(k)}
    if not items:
        st.info(t("input.gallery_empty"))
        return None
    ref = st.selectbox(t("input.gallery"), list(items), format_func=lambda r: items[r].label, key=f"{key}-gallery")
    return _load_once(p, ref, key)


def _from_upload(p: Platform, who: Actor, kind: str, allow_video: bool, key: str) -> InputData | None:
    upload = st.file_uploader(t("input.upload"), type=UPLOAD_TYPES, key=f"{key}-upload",
                              help=t("input.upload_help", mb=p.showcase.limits.max_upload_bytes // 2**20))
    if upload is None:
        return None
    stored = st.session_state.get(f"{key}-stored")
    if not stored or stored[0] != upload.file_id:
        item = p.showcase.add_media(who, upload.name, upload.getvalue())
        stored = (upload.file_id, str(item.ref))
        st.session_state[f"{key}-stored"] = stored
    data = _load_once(p, stored[1], key)
    wanted = {"image", "video"} if kind == "image" and allow_video else {"text" if kind == "json" else kind}
    if data is not None and data.kind not in wanted:
        raise ValidationFailed([Problem("file", t("input.wrong_kind", kind=data.kind, wanted=" / ".join(sorted(wanted))))])
    return data


def _load_once(p: Platform, ref: str, key: str) -> InputData:
    """Loads (and checks) `ref` once per browser session; videos are costly to check."""
    loaded = st.session_state.get(f"{key}-loaded")
    if not loaded or loaded[0] != ref:
        loaded = (ref, p.showcase.load(ref))
        st.session_state[f"{key}-loaded"] = loaded
    return loaded[1]


def _preview(p: Platform, data: InputData | None) -> None:
    if data is None or data.kind == "text":
        return
    with st.expander(t("input.preview"), expanded=False):
        if data.kind == "image":
            st.image(data.data, width=360)
            return
        info, poster = _poster(p, data)
        caption = t("input.video_info", w=info.width, h=info.height, frames=info.frames, fps=f"{info.fps:.1f}",
                    seconds=f"{info.duration_s:.1f}", codec=info.codec)
        if media.sniff(data.data or b"") in BROWSER_VIDEO_TYPES and info.codec in BROWSER_CODECS:
            st.video(data.data)
            st.caption(caption)
        else:   # AVI, MPEG-4 part 2, …: browsers do not play them; the first frame instead
            st.image(poster, width=360, caption=caption)


def _poster(p: Platform, data: InputData) -> tuple[media.VideoInfo, bytes]:
    """`Showcase.video_poster`, once per input and browser session."""
    cached = st.session_state.get("input-poster")
    if not cached or cached[0] != data.ref:
        cached = (data.ref, p.showcase.video_poster(data))
        st.session_state["input-poster"] = cached
    return cached[1]
