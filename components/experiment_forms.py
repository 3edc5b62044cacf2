"""Input widgets of the Experiments page: the parameter space of a sweep (a grid of values or
ranges per parameter, or random draws) and the dataset upload form. They read widgets and return
what the core takes; they call nothing in the core themselves."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import streamlit as st

from app.catalog.manifest import ParamSpec
from app.errors import Problem, ValidationFailed
from app.experiments.formats import TASKS
from app.experiments.space import Space
from components.session import t

RANGE_RE = re.compile(r"^\s*(-?[\d.]+)\s*\.\.\s*(-?[\d.]+)\s*(?:/\s*(\d+))?\s*$")


def parse_axis(spec: ParamSpec, text: str) -> Any:
    """One grid axis as typed: "" (the default only), "a, b, c" (values) or "lo..hi/steps" (a range
    with steps, numbers only). Values are typed as the parameter is; the core checks them."""
    text = text.strip()
    if not text:
        return None
    m = RANGE_RE.match(text)
    if m and spec.type in ("int", "float"):
        lo, hi, steps = float(m[1]), float(m[2]), int(m[3] or 5)
        return {"min": lo, "max": hi, "steps": steps}
    return [_typed(spec, v.strip()) for v in text.split(",") if v.strip()]


def _typed(spec: ParamSpec, value: str) -> Any:
    if spec.type == "bool":
        return value.lower() in ("true", "1", "yes", "on")
    if spec.type in ("int", "float") or (spec.type == "enum" and all(isinstance(c, (int, float))
                                                                     for c in spec.choices or [])):
        try:
            number = float(value)
        except ValueError:
            return value          # the core names it
        return int(number) if number.is_integer() and spec.type != "float" else number
    return value


def space_form(specs: dict[str, ParamSpec], *, key: str) -> Space | None:
    """A grid (values or a range per parameter) or random search; None (with a message) when a value
    cannot be read."""
    kind = st.radio(t("exp.space"), ["grid", "random"], format_func=lambda k: t(f"exp.space.{k}"), horizontal=True,
                    key=f"{key}-kind")
    if kind == "random":
        c1, c2 = st.columns(2)
        n = int(c1.number_input(t("exp.samples"), 1, 10_000, 8, key=f"{key}-n"))
        seed = int(c2.number_input(t("exp.seed"), 0, 2**31 - 1, 0, key=f"{key}-seed"))
        return Space(samples=n, seed=seed)
    st.caption(t("exp.grid_help"))
    grid = {}
    for name, spec in specs.items():
        hint = _hint(spec)
        axis = parse_axis(spec, st.text_input(f"{name} ({hint})", key=f"{key}-{name}", placeholder=str(spec.default),
                                              help=spec.help or None))
        if axis is not None:
            grid[name] = axis
    return Space(grid=grid)


def _hint(spec: ParamSpec) -> str:
    if spec.choices:
        return " | ".join(str(c) for c in spec.choices)
    if spec.type in ("int", "float") and spec.min is not None and spec.max is not None:
        return f"{spec.min:g}..{spec.max:g}"
    return spec.type


@dataclass(frozen=True)
class DatasetUpload:
    filename: str
    data: bytes
    name: str
    task: str


def dataset_form(*, key: str) -> DatasetUpload | None:
    """An archive with its name and task, once the user asks to upload it."""
    with st.form(f"{key}-form", clear_on_submit=False):
        upload = st.file_uploader(t("exp.dataset_archive"), type=["zip", "gz", "tgz", "tar"], key=f"{key}-file",
                                  help=t("exp.dataset_help"))
        c1, c2 = st.columns(2)
        name = c1.text_input(t("exp.dataset_name"), key=f"{key}-name")
        task = c2.selectbox(t("exp.task"), TASKS, key=f"{key}-task")
        if not st.form_submit_button(t("exp.dataset_upload"), icon=":material/upload:"):
            return None
    if upload is None:
        raise ValidationFailed([Problem("file", t("exp.dataset_no_file"))])
    return DatasetUpload(upload.name, upload.getvalue(), name.strip(), task)
