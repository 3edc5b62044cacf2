"""Parameter spaces: grids of values or ranges, random draws with a seed, every value checked
against the manifest before anything runs (app.experiments.space)."""
from __future__ import annotations

import pytest

from app.catalog.manifest import ParamSpec
from app.errors import ValidationFailed
from app.experiments.space import Space, expand

SPECS = {
    "threshold": ParamSpec(type="float", default=0.5, min=0.0, max=1.0, step=0.05),
    "n": ParamSpec(type="int", default=5, min=1, max=100),
    "mode": ParamSpec(type="enum", choices=["length", "echo"], default="length"),
    "upper": ParamSpec(type="bool", default=False),
    "note": ParamSpec(type="string", default=""),
}
DEFAULTS = {"threshold": 0.5, "n": 5, "mode": "length", "upper": False, "note": ""}


def test_a_grid_sweeps_its_axes_with_the_others_at_their_defaults():
    configs = expand(SPECS, Space(grid={"threshold": [0.1, 0.5, 0.9]}))
    assert configs == [{**DEFAULTS, "threshold": t} for t in (0.1, 0.5, 0.9)]
    two = expand(SPECS, Space(grid={"n": [1, 2], "mode": ["length", "echo"]}))
    assert [(c["n"], c["mode"]) for c in two] == [(1, "length"), (1, "echo"), (2, "length"), (2, "echo")]


def test_a_range_with_steps_is_evenly_spaced_and_ints_are_rounded_without_repeats():
    assert [c["threshold"] for c in expand(SPECS, Space(grid={"threshold": {"min": 0.0, "max": 1.0, "steps": 5}}))] \
        == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [c["n"] for c in expand(SPECS, Space(grid={"n": {"min": 1, "max": 3, "steps": 5}}))] == [1, 2, 3]
    assert [c["n"] for c in expand(SPECS, Space(grid={"n": {"steps": 3}}))] == [1, 50, 100]   # the manifest's bounds


def test_out_of_range_and_unknown_parameters_are_refused_each_by_name():
    with pytest.raises(ValidationFailed) as e:
        expand(SPECS, Space(grid={"threshold": [0.5, 7], "mode": ["fast"], "n": {"min": 1, "max": 3}}))
    fields = {p.field: p.reason for p in e.value.problems}
    assert "between 0 and 1" in fields["grid.threshold[1]"]
    assert "one of" in fields["grid.mode[0]"]
    assert "whole number" in fields["grid.n.steps"]
    with pytest.raises(ValidationFailed) as e:
        expand(SPECS, Space(grid={"speed": [1]}))
    assert e.value.problems[0].field == "speed" and "unknown parameter" in e.value.problems[0].reason
    with pytest.raises(ValidationFailed):
        expand(SPECS, Space(grid={"threshold": []}))


def test_random_draws_are_reproducible_within_bounds_and_on_steps():
    one = expand(SPECS, Space(samples=20, seed=3))
    assert one == expand(SPECS, Space(samples=20, seed=3)) and one != expand(SPECS, Space(samples=20, seed=4))
    for c in one:
        assert 0.0 <= c["threshold"] <= 1.0 and abs(c["threshold"] / 0.05 - round(c["threshold"] / 0.05)) < 1e-6
        assert 1 <= c["n"] <= 100 and isinstance(c["n"], int)
        assert c["mode"] in ("length", "echo") and c["note"] == ""
    varied = expand(SPECS, Space(samples=10, seed=1, vary=("n",), ranges={"n": {"min": 10, "max": 12}}))
    assert {c["n"] for c in varied} <= {10, 11, 12} and all(c["threshold"] == 0.5 for c in varied)
    with pytest.raises(ValidationFailed) as e:
        expand(SPECS, Space(samples=5, vary=("n",), ranges={"n": {"min": 0, "max": 500}}))
    assert {p.field for p in e.value.problems} == {"ranges.n.min", "ranges.n.max"}


def test_a_space_round_trips_through_json():
    for space in (Space(grid={"n": [1, 2]}), Space(samples=4, seed=9, vary=("n",), ranges={"n": {"min": 1, "max": 2}})):
        assert Space.from_json(space.to_json()) == space
