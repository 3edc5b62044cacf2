"""Every core method that reads or changes protected state checks the actor's permission itself
(DESIGN §1), before it touches anything else.

The walk finds the core services the way interfaces do — every service the Platform composes
whose class lives in `app/` — and calls each public method with an actor who may do nothing and
arguments that explode when touched. A method passes if it raises PermissionDenied; a method that
takes no actor must say why with `@internal("…")`.
"""
from __future__ import annotations

import inspect
from functools import cached_property

import pytest

from app.auth import Actor, internal
from app.errors import PermissionDenied
from app.platform import Platform

NOBODY = Actor("nobody", "nobody")  # type: ignore[arg-type]  # a role with no permission at all


class Touched(Exception):
    """An argument was used before the permission check."""


class Poison:
    """Stands for every argument but the actor: any use of it raises Touched."""

    def __getattr__(self, name: str) -> object:
        raise Touched(f"attribute {name}")

    def _touch(self, *args: object, **kw: object) -> object:
        raise Touched("used")

    def __eq__(self, other: object) -> bool:   # comparing is no use: "is it my own account?" may decide the check
        return False

    def __ne__(self, other: object) -> bool:
        return True

    __str__ = __repr__ = __iter__ = __len__ = __bool__ = __hash__ = __lt__ = __getitem__ = _touch  # type: ignore
    __add__ = __radd__ = __contains__ = __call__ = __int__ = __float__ = __index__ = _touch  # type: ignore


# Storage adapters: Protocols with one class per backend (local folder, Gitea, MinIO), reached only
# through the Catalog and the Showcase, which check; like the engines below them, they check nothing.
ADAPTERS = {"codestore": "app.catalog.codestore.base.CodeStore", "objects": "app.storage.ObjectStore"}


def core_services(platform: Platform) -> dict[str, object]:
    """Every service the Platform composes whose class is defined in the core (`app.`), the parts
    those services are made of (the Showcase's inputs, runs, …), and the Platform itself."""
    found: dict[str, object] = {"platform": platform}
    for name, attr in vars(Platform).items():
        if isinstance(attr, cached_property) and name not in ADAPTERS:
            value = getattr(platform, name)
            if _is_core(value):
                found[name] = value
    for name, service in list(found.items()):
        if service is platform:
            continue
        for part_name, part in vars(service).items():
            if _is_core(part) and _acts_for_someone(part) and all(part is not v for v in found.values()) \
                    and not _is_adapter(part, platform):
                found[f"{name}.{part_name.lstrip('_')}"] = part
    return found


def _is_core(value: object) -> bool:
    return type(value).__module__.startswith("app.") and not isinstance(value, (type, str, bytes, int, float))


def _acts_for_someone(value: object) -> bool:
    """A part is a service (not a helper such as a client pool) when one of its methods takes an actor."""
    return any("actor" in inspect.signature(m).parameters for _, m in public_methods(value))


def _is_adapter(value: object, platform: Platform) -> bool:
    return any(value is getattr(platform, name) for name in ADAPTERS)


def public_methods(obj: object) -> list[tuple[str, object]]:
    return [(name, getattr(obj, name)) for name, member in inspect.getmembers(type(obj))
            if not name.startswith("_") and inspect.isfunction(member)]


def verdict(method: object) -> str:
    """"checks", "internal", or what is wrong with the method."""
    if getattr(method, "__internal__", None):
        return "internal"
    sig = inspect.signature(method)
    if "actor" not in sig.parameters:
        return "takes no actor and is not marked @internal"
    args = {name: (NOBODY if name == "actor" else Poison()) for name, p in sig.parameters.items()
            if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    args["actor"] = NOBODY
    try:
        result = method(**args)
        if inspect.isgenerator(result):
            next(result)
    except PermissionDenied:
        return "checks"
    except Touched as e:
        return f"used an argument ({e}) before checking the actor"
    except Exception as e:  # noqa: BLE001 - anything else means no check came first
        return f"raised {type(e).__name__} ({e}) instead of PermissionDenied"
    return "returned without checking the actor"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    home = tmp_path_factory.mktemp("walk")
    p = Platform.open(home, {"ALGOSTAGE_HOME": str(home)})
    yield core_services(p)
    p.close()


def test_the_walk_finds_the_core_services(services):
    assert {"settings", "auth", "service_configs", "catalog", "deployer", "services", "invoker", "showcase",
            "history", "platform"} <= set(services)


def test_every_public_core_method_checks_the_actor_or_says_why_not(services):
    problems, checked = [], 0
    for service, obj in services.items():
        for name, method in public_methods(obj):
            outcome = verdict(method)
            checked += outcome == "checks"
            if outcome not in ("checks", "internal"):
                problems.append(f"{type(obj).__name__}.{name}: {outcome}")
    assert problems == []
    assert checked >= 40


class _Sample:
    def guarded(self, actor: Actor, name: str) -> str:
        from app.auth import Action, require
        require(actor, Action.MANAGE_USERS)
        return name.upper()

    def unguarded(self, actor: Actor, name: str) -> str:
        return name.upper()

    def touches_first(self, actor: Actor, name: str) -> str:
        from app.auth import Action, require
        name = name.strip()
        require(actor, Action.MANAGE_USERS)
        return name

    def no_actor(self, name: str) -> str:
        return name

    @internal("a test of the marker")
    def marked(self, name: str) -> str:
        return name


@pytest.mark.parametrize("method, expected", [
    ("guarded", "checks"), ("marked", "internal"), ("unguarded", "used an argument"),
    ("touches_first", "used an argument"), ("no_actor", "takes no actor"),
])
def test_the_walk_tells_a_check_from_its_absence(method, expected):
    assert verdict(getattr(_Sample(), method)).startswith(expected)


# Classes over the database that interfaces never get: they are reached only through a service above.
BUILDING_BLOCKS = {"RoutingTable": "read and written by the Router, the deployer and the manager",
                   "SweepRun": "one run of one experiment, built by Experiments after its own check",
                   "DatabaseThrottle": "the login throttle's counters, used by AuthService.authenticate (the login "
                                       "itself, before anyone is known)"}


def test_every_core_class_over_the_database_is_walked(services):
    """A service class added to app/ but not composed by the Platform would escape the walk."""
    import importlib
    import pkgutil

    import app
    walked = {type(obj).__name__ for obj in services.values()}
    over_db = set()
    for info in pkgutil.walk_packages(app.__path__, "app."):
        if info.name in ("app.main", "app.__main__") or ".migrations" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and "sessions" in inspect.signature(cls.__init__).parameters:
                over_db.add(name)
    assert over_db, "no class over the database found: the scan is broken"
    assert over_db - walked - set(BUILDING_BLOCKS) == set()
