"""What the Home page shows: the real state of the platform's parts and a few counts."""
from __future__ import annotations

from dataclasses import dataclass

from app import db
from app.auth import Action, Actor, require
from app.errors import AlgoStageError
from app.launcher import counts
from app.platform import Platform


@dataclass(frozen=True)
class Reachability:
    name: str
    reachable: bool
    detail: str


@dataclass(frozen=True)
class Overview:
    database: str
    schema_revision: str | None
    schema_head: str
    code_store: str      # local | gitea
    object_store: str    # local | minio
    runtimes: list[Reachability]
    counts: dict[str, int]


def reachability(platform: Platform, name: str) -> Reachability:
    """Whether the runtime `name` can be used now, in one line; never raises."""
    try:
        return Reachability(name, True, platform.runtimes[name].check())
    except AlgoStageError as e:
        return Reachability(name, False, e.message.splitlines()[0][:200])


def overview(platform: Platform, actor: Actor) -> Overview:
    require(actor, Action.VIEW_CATALOG)
    value = platform.settings.value
    return Overview(
        database=db.backend_name(platform.engine),
        schema_revision=db.schema_revision(platform.engine),
        schema_head=db.head_revision(),
        code_store="gitea" if value("GITEA_URL") else "local",
        object_store="minio" if value("MINIO_ENDPOINT") else "local",
        runtimes=[reachability(platform, name) for name in platform.runtimes],
        counts=counts(platform),
    )
