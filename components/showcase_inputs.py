"""Input widgets of the Showcase and Compare pages: the parameter form generated from a manifest's
params (labels, help and choice names in the page's language), and the input picker (demo gallery,
upload, typed text) that opens on a demo input when a manifest suggests one. Refused inputs are
shown as messages; the picker then returns None."""
from __future__ import annotations

from typing import Any

import streamlit as st

from app import media
from app.auth import Actor
from app.errors import Problem, ValidationFailed
from app.catalog.manifest import ParamSpec
from app.platform import Platform
from app.showcase.inputs import InputData, MediaItem, media_kinds
from app.showcase.runs import ServiceChoice
from components.session import lang, problem_lines, t

BROWSER_VIDEO_TYPES = ("video/mp4", "video/webm")
BROWSER_CODECS = ("h264", "vp8", "vp9", "av1")
PREVIEW_EVERY_NTH, PREVIEW_MAX_FRAMES = 3, 150   # a video's first run: a sampled preview
UPLOAD_TYPES = ["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff", "avi", "mp4", "mov", "mkv", "webm", "txt"]


def param_form(specs: dict[str, ParamSpec], *, key: str) -> dict[str, Any]:
    """One widget per parameter: bounded numbers → slider, other numbers → number input, enum →
    select box, bool → toggle, string → text input; labelled by the manifest's label (its name
    otherwise), its help as the tooltip. Widget keys are `{key}-{name}` (`param_keys`)."""
    if not specs:
        st.caption(t("catalog.no_params"))
    return {name: _widget(name, spec, f"{key}-{name}") for name, spec in specs.items()}


def param_keys(key: str, values: dict[str, Any]) -> dict[str, Any]:
    """Session-state entries that preset `param_form(…, key=key)` to `values`."""
    return {f"{key}-{name}": value for name, value in values.items()}


def _help(name: str, spec: ParamSpec) -> str:
    """The manifest's help, then the parameter's own name (what the API and CLI call it)."""
    return f"{spec.help}\n\n`{name}`" if spec.help else f"`{name}`"


def _widget(name: str, spec: ParamSpec, key: str) -> Any:
    label, helptext = spec.display(name), _help(name, spec)
    if spec.type in ("int", "float"):
        cast = int if spec.type == "int" else float
        step = cast(spec.step) if spec.step is not None else (1 if spec.type == "int" else None)
        lo, hi = (cast(v) if v is not None else None for v in (spec.min, spec.max))
        if lo is not None and hi is not None and lo < hi:
            return st.slider(label, lo, hi, cast(spec.default), step, help=helptext, key=key)
        return st.number_input(label, lo, hi, cast(spec.default), step, help=helptext, key=key)
    if spec.type == "enum":
        choices = list(spec.choices or [])
        return st.selectbox(label, choices, index=choices.index(spec.default), help=helptext, key=key,
                            format_func=spec.choice_label)
    if spec.type == "bool":
        return st.toggle(label, bool(spec.default), help=helptext, key=key)
    return st.text_input(label, str(spec.default or ""), help=helptext, key=key)


def video_sampling(prefix: str) -> tuple[int, int]:
    """Which frames a video run takes: every n-th, at most how many (0: all). A sampled preview
    by default (every 3rd frame, the first 150 of them), so a first run answers in seconds."""
    c1, c2 = st.columns(2)
    every_nth = c1.number_input(t("showcase.every_nth"), 1, 100, PREVIEW_EVERY_NTH, key=f"{prefix}-every-nth")
    max_frames = c2.number_input(t("showcase.max_frames"), 0, 100_000, PREVIEW_MAX_FRAMES, key=f"{prefix}-max-frames",
                                 help=t("showcase.max_frames_help"))
    return int(every_nth), int(max_frames)


def refused(error: ValidationFailed) -> None:
    st.error(t("input.refused") + "\n" + problem_lines(error))


def input_picker(p: Platform, who: Actor, kind: str, *, key: str, allow_video: bool = False,
                 demo: str | None = None, occasion: str = "") -> InputData | None:
    """An input of `kind` (a task's input kind: "text", "json" or "image"; with `allow_video`,
    videos too) from the gallery, an upload or typed text, loaded and checked. None (with a
    message if refused) when there is none. `demo` (a gallery item, "media/x.jpg" or
    "text/y.txt#2", from a manifest's `demo.input`) is chosen once per `occasion` (the task the
    page shows): when the page opens and when the task changes; the user's choice is kept otherwise."""
    kinds = media_kinds(kind, video=allow_video)
    items: dict[str, MediaItem] = {str(i.ref): i for k in kinds for i in p.showcase.gallery(who, k)}
    suggest(key, occasion, next((ref for ref in items if demo and ref.endswith("/" + demo)), None))
    sources = ["gallery", "upload", "text"] if "text" in kinds else ["gallery", "upload"]
    source = st.radio(t("input.source"), sources, format_func=lambda s: t(f"input.source.{s}"), horizontal=True,
                      key=f"{key}-source")
    try:
        if source == "gallery":
            data = _from_gallery(p, who, items, key)
        elif source == "upload":
            data = _from_upload(p, who, kinds, key)
        else:
            text = st.text_area(t("input.text"), key=f"{key}-text", height=120)
            data = p.showcase.load(who, p.showcase.add_text(who, text).ref) if text.strip() else None
    except ValidationFailed as e:
        refused(e)
        return None
    try:
        _preview(p, data)
    except ValidationFailed as e:
        refused(e)
        return None
    return data


def suggest(key: str, occasion: str, ref: str | None) -> None:
    """Choose the gallery item `ref` of the picker `key` once per `occasion` (None: keep the
    choice). `suggest(key, occasion, None)` marks an occasion as handled (a preset chose already)."""
    if st.session_state.get(f"{key}-suggested") == occasion:
        return
    st.session_state[f"{key}-suggested"] = occasion
    if ref is not None:
        st.session_state[f"{key}-source"] = "gallery"
        st.session_state[f"{key}-gallery"] = ref


def suggest_columns(occasion: str, featured: ServiceChoice, offered: list[str]) -> None:
    """Preset the Compare page's columns once per `occasion` (the task): the parameter sets the
    featured service's manifest suggests (`demo.columns`), else the task's first services."""
    if st.session_state.get("cmp-suggested") == occasion:
        return
    st.session_state["cmp-suggested"] = occasion
    columns = featured.demo.columns if featured.demo and len(featured.demo.columns) >= 2 else []
    st.session_state["cmp-n"] = len(columns) or 2
    for i, values in enumerate(columns or [{}, {}]):
        service = featured.name if columns else offered[i % len(offered)]
        st.session_state[f"cmp-svc-{i}"] = service
        st.session_state.update(param_keys(f"cmp-{i}-{service}", values))


def _from_gallery(p: Platform, who: Actor, items: dict[str, MediaItem], key: str) -> InputData | None:
    if not items:
        st.info(t("input.gallery_empty"))
        return None
    ref = st.selectbox(t("input.gallery"), list(items), format_func=lambda r: items[r].label, key=f"{key}-gallery")
    return _load_once(p, who, ref, key)


def _from_upload(p: Platform, who: Actor, kinds: tuple[str, ...], key: str) -> InputData | None:
    upload = st.file_uploader(t("input.upload"), type=UPLOAD_TYPES, key=f"{key}-upload",
                              help=t("input.upload_help", mb=p.showcase.limits.max_upload_bytes // 2**20))
    localize_uploader(p.showcase.limits.max_upload_bytes // 2**20)
    if upload is None:
        return None
    stored = st.session_state.get(f"{key}-stored")
    if not stored or stored[0] != upload.file_id:
        item = p.showcase.add_media(who, upload.name, upload.getvalue())
        stored = (upload.file_id, str(item.ref))
        st.session_state[f"{key}-stored"] = stored
    data = _load_once(p, who, stored[1], key)
    if data is not None and data.kind not in kinds:
        raise ValidationFailed([Problem("file", t("input.wrong_kind", kind=data.kind, wanted=" / ".join(sorted(kinds))))])
    return data


def _load_once(p: Platform, who: Actor, ref: str, key: str) -> InputData:
    """Loads (and checks) `ref` once per browser session; videos are costly to check."""
    loaded = st.session_state.get(f"{key}-loaded")
    if not loaded or loaded[0] != ref:
        loaded = (ref, p.showcase.load(who, ref))
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


def localize_uploader(limit_mb: int) -> None:
    """The file uploader's own texts (its button, "… per file • types") in the page's language:
    Streamlit has no setting for them, so outside English they are hidden by CSS and the
    translations drawn in their place."""
    if lang() == "en":
        return
    limit, browse = css_text(t("uploader.limit", mb=limit_mb)), css_text(t("uploader.browse"))
    st.html(UPLOADER_CSS.replace("LIMIT", limit).replace("BROWSE", browse))


UPLOADER_CSS = """<style>
[data-testid="stFileUploaderDropzoneInstructions"] > div > span { display: none; }
[data-testid="stFileUploaderDropzoneInstructions"] > div::after { content: "LIMIT"; }
[data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"] { display: none; }
[data-testid="stFileUploaderDropzone"] button > div::after { content: "BROWSE"; }
</style>"""


def css_text(text: str) -> str:
    """`text` as the inside of a CSS string."""
    return text.replace("\\", "\\\\").replace('"', '\\"')
