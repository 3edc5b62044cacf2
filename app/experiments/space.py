"""Parameter spaces of a sweep, over the manifest's params (DESIGN §2, §10).

- grid: `{"param": [v1, v2, …]}` (values) or `{"param": {"min": a, "max": b, "steps": n}}` (n
  evenly spaced values from a to b; ints rounded, repeats dropped); the grid is the product of
  the axes, every other parameter at its default.
- random: `n` configurations drawn with `seed`: numbers uniformly between their bounds (the
  manifest's min/max, or a range given in `ranges`), rounded to the parameter's step when it has
  one; enums and bools uniformly among their values. `vary` limits which parameters are drawn
  (default: every parameter that has bounds or choices); others stay at their defaults.

Contract: `expand(specs, space)` returns the configurations (every parameter filled in, in the
manifest's order, duplicates dropped, in the order they were made) or raises ValidationFailed
naming every bad parameter or value ("grid.threshold[2]": must be between 0 and 1, …) — before
any call is made.
"""
from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.catalog.manifest import ParamSpec
from app.errors import Message, Problem, ValidationFailed

MAX_STEPS = 1000


@dataclass(frozen=True)
class Space:
    """A grid (`grid`: axes by parameter) or a random search (`samples` > 0)."""
    grid: dict[str, Any] = field(default_factory=dict)
    samples: int = 0
    seed: int = 0
    vary: tuple[str, ...] = ()
    ranges: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "random" if self.samples else "grid"

    def to_json(self) -> dict[str, Any]:
        if self.samples:
            return {"random": self.samples, "seed": self.seed, "vary": list(self.vary), "ranges": self.ranges}
        return {"grid": self.grid}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Space:
        if data.get("random"):
            return cls(samples=int(data["random"]), seed=int(data.get("seed") or 0), vary=tuple(data.get("vary") or ()),
                       ranges=dict(data.get("ranges") or {}))
        return cls(grid=dict(data.get("grid") or {}))


def expand(specs: Mapping[str, ParamSpec], space: Space) -> list[dict[str, Any]]:
    """The configurations of `space` over the parameters `specs` (see the module contract)."""
    unknown = [n for n in [*space.grid, *space.vary, *space.ranges] if n not in specs]
    if unknown:
        known = ", ".join(specs) or "none"
        raise ValidationFailed([Problem(n, Message("param.unknown", "unknown parameter; known: {known}", known=known)) for n in dict.fromkeys(unknown)])
    configs = _random(specs, space) if space.samples else _grid(specs, space.grid)
    return list({_key(c): c for c in configs}.values())


def _key(config: dict[str, Any]) -> str:
    return repr(sorted(config.items()))


def defaults(specs: Mapping[str, ParamSpec]) -> dict[str, Any]:
    return {name: spec.default for name, spec in specs.items()}


# --- grid -------------------------------------------------------------------------------------------

def _grid(specs: Mapping[str, ParamSpec], grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    problems: list[Problem] = []
    axes = {name: _axis(name, specs[name], axis, problems) for name, axis in grid.items()}
    if problems:
        raise ValidationFailed(problems)
    base = defaults(specs)
    names = list(axes)
    return [{**base, **dict(zip(names, values))} for values in itertools.product(*axes.values())]


def _axis(name: str, spec: ParamSpec, axis: Any, problems: list[Problem]) -> list[Any]:
    """The checked values of one axis: a list of values, or a range with steps."""
    if isinstance(axis, Mapping):
        axis = _steps(name, spec, axis, problems)
    elif not isinstance(axis, list) or not axis:
        problems.append(Problem(f"grid.{name}", Message("sweep.axis", 'give a non-empty list of values, or {{"min", "max", "steps"}}')))
        return []
    values = []
    for i, value in enumerate(axis):
        try:
            values.append(spec.check(value, lenient=False))
        except ValueError as e:
            problems.append(Problem(f"grid.{name}[{i}]", str(e)))
    return list(dict.fromkeys(values))


def _steps(name: str, spec: ParamSpec, axis: Mapping[str, Any], problems: list[Problem]) -> list[Any]:
    where = f"grid.{name}"
    if spec.type not in ("int", "float"):
        problems.append(Problem(where, Message("sweep.range_type", "a range needs a number parameter; {name} is {type}: list its values",
                                                name=name, type=spec.type)))
        return []
    lo, hi, steps = axis.get("min", spec.min), axis.get("max", spec.max), axis.get("steps")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)):
        problems.append(Problem(where, Message("sweep.range_bounds", "a range needs numbers min and max (the manifest gives none)")))
        return []
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
        problems.append(Problem(f"{where}.steps", Message("sweep.steps", "must be a whole number from 1 to {max}", max=MAX_STEPS)))
        return []
    values = [lo] if steps == 1 else [lo + (hi - lo) * k / (steps - 1) for k in range(steps)]
    return [round(v) if spec.type == "int" else round(v, 10) for v in values]


# --- random -------------------------------------------------------------------------------------------

def _random(specs: Mapping[str, ParamSpec], space: Space) -> list[dict[str, Any]]:
    problems: list[Problem] = []
    vary = list(space.vary) or [n for n, s in specs.items() if _drawable(s, space.ranges.get(n))]
    draws = {name: _drawer(name, specs[name], space.ranges.get(name), problems) for name in vary}
    if space.samples < 1:
        problems.append(Problem("random", Message("sweep.samples", "must be at least 1")))
    if problems:
        raise ValidationFailed(problems)
    rng = random.Random(space.seed)
    base = defaults(specs)
    return [{**base, **{name: draw(rng) for name, draw in draws.items()}} for _ in range(space.samples)]


def _drawable(spec: ParamSpec, given: Any) -> bool:
    if spec.type in ("enum", "bool") or spec.choices:
        return True
    return spec.type in ("int", "float") and (given is not None or (spec.min is not None and spec.max is not None))


def _drawer(name: str, spec: ParamSpec, given: Any, problems: list[Problem]) -> Any:
    """A function of a random.Random drawing one checked value of `name`."""
    if spec.choices or spec.type == "bool":
        values = list(spec.choices or [False, True])
        return lambda rng: rng.choice(values)
    if spec.type not in ("int", "float"):
        problems.append(Problem(name, Message("sweep.not_random", "a {type} parameter cannot be drawn at random", type=spec.type)))
        return None
    lo, hi = (given.get("min"), given.get("max")) if isinstance(given, Mapping) else (spec.min, spec.max)
    for bound, value in (("min", lo), ("max", hi)):
        try:
            spec.check(value, lenient=False)
        except ValueError as e:
            problems.append(Problem(f"ranges.{name}.{bound}", str(e) if value is not None else Message("sweep.bound_needed", "needed")))
    if problems:
        return None
    return lambda rng: _round(spec, rng.uniform(lo, hi), lo, hi)


def _round(spec: ParamSpec, value: float, lo: float, hi: float) -> int | float:
    if spec.step:
        value = lo + round((value - lo) / spec.step) * spec.step
        value = min(max(value, lo), hi)
    if spec.type == "int":
        return min(max(int(round(value)), math.ceil(lo)), math.floor(hi))
    return round(value, 10)
