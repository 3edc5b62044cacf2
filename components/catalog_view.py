"""Render helpers for algorithms, versions, parameters and the changes between versions."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app.catalog import VersionChanges
from components.session import t


def params_table(manifest: dict) -> None:
    params = manifest.get("params") or {}
    if not params:
        st.caption(t("catalog.no_params"))
        return
    rows = [{t("catalog.param"): name, **{k: (", ".join(map(str, v)) if isinstance(v, list) else v)
                                          for k, v in spec.items()}} for name, spec in params.items()]
    st.dataframe(pd.DataFrame(rows).astype(str), hide_index=True, width="stretch")


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
