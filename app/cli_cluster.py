"""The cluster's commands of `python -m app` (DESIGN §7, §11), registered by app/cli.py:

  export compose|kubernetes NAME… [-o FILE]     a deployed service for `docker stack deploy` or kubectl
  scale NAME N                                  run N replicas of the version NAME serves
  node list [--json] | join-token [--json] | drain NODE | activate NODE    the cluster's machines
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.services.export import FORMATS

if TYPE_CHECKING:
    from app.cli import Context

COMMANDS: dict[str, Callable[[argparse.Namespace, "Context"], int]] = {}


def command(name: str) -> Callable[[Any], Any]:
    def register(fn: Any) -> Any:
        COMMANDS[name] = fn
        return fn
    return register


def add_parsers(sub: Any) -> None:
    """The cluster's subcommands on the main parser's subparsers."""
    ex = sub.add_parser("export", help="deployed services for another engine: compose (docker stack deploy) "
                                       "or kubernetes (Deployment, Service, HPA)")
    ex.add_argument("action", choices=FORMATS, metavar="compose|kubernetes")
    ex.add_argument("names", nargs="+", metavar="NAME")
    ex.add_argument("--output", "-o", help="file to write (default: standard output)")
    sc = sub.add_parser("scale", help="run N replicas of the version a service serves (new ones health-gated)")
    sc.add_argument("name", metavar="NAME")
    sc.add_argument("replicas", type=int, metavar="N")
    no = sub.add_parser("node", help="the cluster's nodes: list, join-token, drain NODE, activate NODE")
    no.add_argument("action", choices=NODE_ACTIONS, metavar="|".join(NODE_ACTIONS))
    no.add_argument("node", nargs="?", metavar="NODE", help="hostname or id (drain, activate)")
    no.add_argument("--json", action="store_true")


NODE_ACTIONS = ("list", "join-token", "drain", "activate")


def _write(ctx: Context, text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
        print(f"wrote {output}", file=ctx.err)
    else:
        ctx.out.write(text)


@command("export compose")
def cmd_export_compose(args: argparse.Namespace, ctx: Context) -> int:
    _write(ctx, ctx.platform.exporter.render(ctx.actor, "compose", args.names), args.output)
    return 0


@command("export kubernetes")
def cmd_export_kubernetes(args: argparse.Namespace, ctx: Context) -> int:
    _write(ctx, ctx.platform.exporter.render(ctx.actor, "kubernetes", args.names), args.output)
    return 0


@command("scale")
def cmd_scale(args: argparse.Namespace, ctx: Context) -> int:
    result = ctx.platform.deployer.scale(ctx.actor, args.name, args.replicas,
                                         lambda e: print(f"[{e.phase}] {e.message}", file=ctx.err))
    changed = (f"added {', '.join(result.added)}" if result.added else
               f"removed {', '.join(result.removed)}" if result.removed else "unchanged")
    ctx.print(f"{result.service} runs {result.replicas} replica(s): {changed}")
    return 0


@command("node list")
def cmd_node_list(args: argparse.Namespace, ctx: Context) -> int:
    nodes = ctx.platform.cluster.nodes(ctx.actor)
    rows = [{**asdict(n), "cpus": round(n.cpus, 2), "memory_mb": round(n.memory_mb)} for n in nodes]
    if args.json:
        ctx.json(rows)
    else:
        for row in rows:
            row["name"] += " *" if row["leader"] else ""
        ctx.table(rows, ["name", "role", "availability", "state", "address", "cpus", "memory_mb", "tasks"])
    return 0


@command("node join-token")
def cmd_node_join_token(args: argparse.Namespace, ctx: Context) -> int:
    tokens = ctx.platform.cluster.join_tokens(ctx.actor)
    if args.json:
        ctx.json(tokens)
        return 0
    for role in ("worker", "manager"):
        ctx.print(f"{role}: docker swarm join --token {tokens[role]} {tokens['address']}")
    return 0


def _set_availability(args: argparse.Namespace, ctx: Context, availability: str) -> int:
    if not args.node:
        print(f"usage: node {args.action} NODE", file=ctx.err)
        return 2
    ctx.platform.cluster.set_availability(ctx.actor, args.node, availability)
    ctx.print(f"node {args.node} is {availability}")
    return 0


@command("node drain")
def cmd_node_drain(args: argparse.Namespace, ctx: Context) -> int:
    return _set_availability(args, ctx, "drain")


@command("node activate")
def cmd_node_activate(args: argparse.Namespace, ctx: Context) -> int:
    return _set_availability(args, ctx, "active")
