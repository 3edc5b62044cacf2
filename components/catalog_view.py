"""Render helpers for algorithms, versions, parameters and the changes between versions. Texts of a
manifest are shown in the page's language (`localized`)."""
from __future__ import annotations

import html
import io
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from pydantic import BaseModel, ValidationError

from app.catalog.catalog import VersionChanges
from app.catalog.manifest import Manifest, ParamSpec
from app.demo import DEMO_ROOT
from app.i18n import term
from components.session import lang, t

TEMPLATE = DEMO_ROOT / "template"


def localized(manifest: dict[str, Any]) -> Manifest | None:
    """A stored manifest with its texts in the page's language; None if it no longer validates."""
    try:
        return Manifest.model_validate(manifest).localized(lang())
    except ValidationError:
        return None


def as_data(text: str) -> str:
    """HTML of `text` (a commit message, a user's name) marked as data, not interface: its
    language is its author's, and translators (the browser's, the tests of the Chinese UI) leave it."""
    return f'<span translate="no">{html.escape(text)}</span>'


def params_table(manifest: Manifest | None) -> None:
    """One row per parameter: its label and name, type, default, range or choices, and help."""
    if manifest is None or not manifest.params:
        st.caption(t("catalog.no_params"))
        return
    rows = [{t("catalog.param"): spec.display(name), t("catalog.param_name"): name,
             t("catalog.param_type"): term("ptype", spec.type, lang()),
             t("catalog.param_default"): value_name(spec, spec.default), t("catalog.param_range"): value_range(spec),
             t("catalog.param_help"): spec.help or None} for name, spec in manifest.params.items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", placeholder="–")


def value_name(spec: ParamSpec, value: Any) -> str:
    """A parameter's value as a page shows it: yes/no for booleans, a choice by its label."""
    if isinstance(value, bool):
        return t("compare.yes") if value else t("compare.no")
    return spec.choice_label(value)


def value_range(spec: ParamSpec) -> str | None:
    """"1.01 – 2 (step 0.01)", or the choices by their labels; None when unbounded."""
    if spec.choices:
        return " / ".join(spec.choice_label(c) for c in spec.choices)
    if spec.min is None and spec.max is None:
        return None
    bounds = f"{'' if spec.min is None else f'{spec.min:g}'} – {'' if spec.max is None else f'{spec.max:g}'}"
    return bounds + (f" ({t('catalog.step')} {spec.step:g})" if spec.step is not None else "")


def changes_view(changes: VersionChanges) -> None:
    if changes.empty:
        st.caption(t("catalog.no_changes"))
        return
    for label, items, colour in ((t("catalog.added"), changes.added, "green"),
                                 (t("catalog.modified"), changes.modified, "orange"),
                                 (t("catalog.deleted"), changes.deleted, "red"),
                                 (t("catalog.params_added"), changes.params_added, "green"),
                                 (t("catalog.params_removed"), changes.params_removed, "red")):
        if items:
            st.markdown(f"**{label}**: " + " ".join(f":{colour}-background[{i}]" for i in items))
    changed = {**changes.manifest, **{f"params.{k}": v for k, v in changes.params_changed.items()}}
    if changed:
        st.dataframe(pd.DataFrame([{t("catalog.field"): k, t("col.old"): str(old), t("col.new"): str(new)}
                                   for k, (old, new) in changed.items()]), hide_index=True, width="stretch")


def template_zip(folder: Path = TEMPLATE) -> bytes:
    """The template package as a zip archive (its files under `algorithm-template/`)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, "algorithm-template/" + path.relative_to(folder).as_posix())
    return out.getvalue()


def manifest_reference() -> None:
    """Every field of algorithm.yaml and of a parameter, with whether it is required, its default
    and its meaning (from the manifest model itself, so the reference cannot fall behind it), then
    the template's annotated manifest."""
    for title, model in ((t("upload.ref_fields"), Manifest), (t("upload.ref_param_fields"), ParamSpec)):
        st.markdown(f"**{title}**")
        rows = [{t("upload.ref_field"): name, t("upload.ref_required"): t("compare.yes") if f.is_required() else "",
                 t("catalog.param_default"): _default(f), t("catalog.param_help"): t(f"manifest.{model.__name__}.{name}")}
                for name, f in model.model_fields.items()]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", placeholder="–",
                     height=35 * (len(rows) + 1) + 3)   # every field in view: a reference does not scroll
    st.code((TEMPLATE / "algorithm.yaml").read_text(encoding="utf-8"), language="yaml")


def _default(field: Any) -> str | None:
    if field.is_required():
        return None
    value = field.get_default(call_default_factory=True)
    return None if isinstance(value, BaseModel) or value in (None, "", [], {}) else str(value)
