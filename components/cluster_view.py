"""The Manage page's Cluster section (DESIGN §11) and its Scale control.

The section: the cluster runtime's nodes (role, availability, state, address, CPUs, memory, the
platform's running tasks on each), Drain / Activate per node for operators, the join command with
the worker token for admins; when no swarm manager answers, one line saying why. The core checks
every right (`Cluster`, `Deployer.scale`); this only hides what the actor may not do.

Reads are cached per platform and actor for a few seconds (`st.cache_data`, the failure included,
so an absent swarm is not asked again on every rerun) and cleared by the actions that change them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from app.auth import Action, Actor, can
from app.errors import AlgoStageError
from app.i18n import say, term
from app.services.deployer import MAX_REPLICAS, DeployEvent, ScaleResult
from app.services.manager import ServiceView
from components.data import scope
from components.session import lang, platform, show_error, t
from orchestration.runtime import NodeStatus

Done = Callable[..., None]   # the page's `done(message, *changed)`: show the result on a fresh page
STATE_ICON = {"ready": "🟢", "down": "🔴", "disconnected": "🟠", "unknown": "❔"}


@dataclass(frozen=True)
class ClusterReading:
    nodes: list[NodeStatus]
    join: dict[str, str] | None      # the join tokens, read for admins only
    error: str | None                # why no swarm manager answered (then nodes is empty)


@st.cache_data(ttl=5, show_spinner=False)
def _read(scope_key: tuple[str, str], who: Actor) -> ClusterReading:
    cluster = platform().cluster
    try:
        nodes = cluster.nodes(who)
        join = cluster.join_tokens(who) if can(who, Action.MANAGE_SETTINGS) else None
    except AlgoStageError as e:
        return ClusterReading([], None, e.message)   # a Message: said in the page's language
    return ClusterReading(nodes, join, None)


def reading(who: Actor) -> ClusterReading:
    """The nodes (and, for admins, the join tokens) as the cluster reports them, at most every 5 s."""
    return _read(scope(), who)


def changed() -> None:
    """Forget the cached reading after an action changed the cluster."""
    _read.clear()


@st.fragment(run_every="10s")
def cluster_section(who: Actor, done: Done) -> None:
    st.subheader(t("cluster.title"))
    found = reading(who)
    if found.error is not None:
        st.info(t("cluster.none", error=say(found.error, lang()).partition("\n")[0]), icon=":material/hub:")
        return
    nodes_table(found.nodes)
    if can(who, Action.MANAGE_SERVICES):
        for node in found.nodes:
            node_actions(who, node, done)
    if found.join is not None:
        st.caption(t("cluster.join"))
        st.code(join_command(found.join), language="bash")


def nodes_table(nodes: list[NodeStatus]) -> None:
    st.dataframe(pd.DataFrame([{
        t("cluster.node"): n.name, t("cluster.role"): role_text(n),
        t("cluster.availability"): term("cluster.availability", n.availability, lang()),
        t("cluster.state"): f"{STATE_ICON.get(n.state, '❔')} {term('cluster.state', n.state, lang())}",
        t("cluster.address"): n.address, t("cluster.cpus"): round(n.cpus, 2),
        t("cluster.memory"): round(n.memory_mb), t("cluster.tasks"): n.tasks,
    } for n in nodes], columns=[t(f"cluster.{c}") for c in ("node", "role", "availability", "state", "address",
                                                            "cpus", "memory", "tasks")]),
                 hide_index=True, width="stretch")


def role_text(node: NodeStatus) -> str:
    role = term("cluster.role", node.role, lang())
    return f"{role} · {t('cluster.leader')}" if node.leader else role


def join_command(tokens: dict[str, str]) -> str:
    return f"docker swarm join --token {tokens['worker']} {tokens['address']}"


def node_actions(who: Actor, node: NodeStatus, done: Done) -> None:
    """Drain (its tasks move elsewhere) or Activate one node; only the one that changes something."""
    c1, c2, c3 = st.columns([4, 1, 1], vertical_alignment="center")
    c1.markdown(f"**{node.name}** · {term('cluster.availability', node.availability, lang())}")
    for col, availability, label in ((c2, "drain", "cluster.drain"), (c3, "active", "cluster.activate")):
        if col.button(t(label), key=f"cluster-{availability}-{node.id}", disabled=node.availability == availability,
                      width="stretch"):
            try:
                platform().cluster.set_availability(who, node.id, availability)
            except AlgoStageError as e:
                show_error(e)
                return
            changed()
            done(t("cluster.changed", node=node.name,
                   availability=term("cluster.availability", availability, lang())), "services")


def serving(view: ServiceView) -> int:
    """How many replicas run the version the service serves (what a scale changes)."""
    return sum(r.version == view.version for r in view.replicas)


def scale_control(who: Actor, view: ServiceView, done: Done) -> None:
    """A running service's replica count and a Scale button (operators); new replicas are
    health-gated like a deploy, removed ones leave the rotation first (`Deployer.scale`)."""
    if not can(who, Action.DEPLOY) or view.desired_state != "running" or view.version_number is None:
        return
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    count = c1.number_input(t("manage.scale"), 1, MAX_REPLICAS, max(1, min(serving(view), MAX_REPLICAS)), 1,
                            key=f"scale-{view.name}")
    if not c2.button(t("manage.scale_apply"), key=f"scale-apply-{view.name}", width="stretch"):
        return
    with st.status(t("manage.scaling", name=view.name, n=int(count)), expanded=True) as status:
        def progress(e: DeployEvent) -> None:
            status.write(f"{term('phase', e.phase, lang())}: {e.message}")
        try:
            result = platform().deployer.scale(who, view.name, int(count), progress)
        except AlgoStageError as e:
            status.update(label=t("manage.scale_failed", name=view.name), state="error")
            show_error(e)
            return
    changed()
    done(scaled_text(result), "services")


def scaled_text(result: ScaleResult) -> str:
    what = (t("manage.scaled_added", names=", ".join(result.added)) if result.added else
            t("manage.scaled_removed", names=", ".join(result.removed)) if result.removed else
            t("manage.scaled_same"))
    return f"{t('manage.scaled', name=result.service, n=result.replicas)}: {what}"
