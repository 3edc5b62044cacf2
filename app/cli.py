"""`python -m app …`: everything an operator does on the pages, scriptable (DESIGN §7).

Exit status 0 on success; 1 with a one-line reason on stderr when the action failed; 2 for a
usage error. `--json` output is stable. The command line acts as `cli:<os user>` with admin
rights: whoever can read `$ALGOSTAGE_HOME` owns the platform, as with supervisorctl's socket.
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

from app import launcher
from app.auth import Actor, LoginError, Role, generate_password
from app.crypto import SecretError
from app.invoke import InvokeError
from app.errors import PermissionDenied, Problem, ValidationFailed
from app.platform import Platform, resolve_home
from orchestration.errors import OrchestrationError

Handler = Callable[[argparse.Namespace, "Context"], int]
COMMANDS: dict[str, Handler] = {}
FAILURES = (ValidationFailed, PermissionDenied, OrchestrationError, LoginError, SecretError, OSError, InvokeError)


class Context:
    """What a command needs: the platform (opened lazily), the actor, and output streams."""

    def __init__(self, out=sys.stdout, err=sys.stderr) -> None:  # noqa: ANN001 - text streams
        self.out, self.err = out, err
        self.actor = Actor(f"cli:{getpass.getuser()}", Role.ADMIN)
        self._platform: Platform | None = None

    @property
    def platform(self) -> Platform:
        if self._platform is None:
            self._platform = Platform.open()
        return self._platform

    def print(self, *args: Any) -> None:
        print(*args, file=self.out)

    def json(self, data: Any) -> None:
        print(json.dumps(data, indent=2, default=str, ensure_ascii=False), file=self.out)

    def table(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
        widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
        self.print("  ".join(c.upper().ljust(widths[c]) for c in columns))
        for r in rows:
            self.print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns))


def command(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = fn
        return fn
    return register


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app", description="AlgoStage command line")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="set up and start the platform")
    sub.add_parser("down", help="stop the platform and every service")
    demo = sub.add_parser("demo", help="seed demo media, upload and deploy the demo catalog (idempotent)")
    demo.add_argument("--no-deploy", action="store_true", help="upload only")
    demo.add_argument("--json", action="store_true")
    sub.add_parser("status", help="platform state").add_argument("--json", action="store_true")

    user = sub.add_parser("user", help="users").add_subparsers(dest="action", required=True)
    add = user.add_parser("add")
    add.add_argument("username")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.VIEWER.value)
    add.add_argument("--password", help="default: generated and printed once")
    pw = user.add_parser("passwd")
    pw.add_argument("username")
    pw.add_argument("--password", help="default: generated and printed once")
    user.add_parser("list").add_argument("--json", action="store_true")

    cfg = sub.add_parser("config", help="settings").add_subparsers(dest="action", required=True)
    cfg.add_parser("get").add_argument("key")
    st = cfg.add_parser("set")
    st.add_argument("key")
    st.add_argument("value")
    cfg.add_parser("unset").add_argument("key")
    cfg.add_parser("list").add_argument("--json", action="store_true")
    hist = cfg.add_parser("history")
    hist.add_argument("key", nargs="?")
    hist.add_argument("--json", action="store_true")
    cfg.add_parser("restore").add_argument("history_id", type=int)
    cfg.add_parser("rotate-key", help="new encryption key; re-encrypts every stored secret")
    up = sub.add_parser("upload", help="upload an algorithm package: folder, .zip, .tar.gz or git URL[#ref]")
    up.add_argument("source")
    up.add_argument("--name", help="algorithm name (default: the manifest's)")
    up.add_argument("--message", default="", help="version message")
    up.add_argument("--allow-redirects", action="store_true",
                    help="accept requirements with index URLs, -e, paths or URLs (admins)")
    sub.add_parser("algorithms", help="algorithms and their versions").add_argument("--json", action="store_true")
    dep = sub.add_parser("deploy", help="deploy NAME[@VERSION]; waits until healthy or failed")
    dep.add_argument("target", metavar="NAME[@VERSION]")
    dep.add_argument("--runtime", choices=["supervisor", "docker"])
    dep.add_argument("--replicas", type=int)
    dep.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    sub.add_parser("services", help="services: state, version, replicas, urls").add_argument("--json", action="store_true")
    for action in ("start", "stop", "restart", "remove"):
        a = sub.add_parser(action, help=f"{action} services (names, --group G or --all)")
        a.add_argument("names", nargs="*")
        a.add_argument("--group")
        a.add_argument("--all", action="store_true")
    lg = sub.add_parser("logs", help="last lines of a service's logs")
    lg.add_argument("name")
    lg.add_argument("--lines", type=int, default=100)
    lg.add_argument("--replica", type=int)
    lg.add_argument("--stream", choices=["stdout", "stderr", "both"], default="both",
                    help="which output (the runner logs requests and tracebacks to stderr)")
    grp = sub.add_parser("group", help="service groups").add_subparsers(dest="action", required=True)
    gc = grp.add_parser("create")
    gc.add_argument("name")
    gc.add_argument("--description", default="")
    ga = grp.add_parser("assign")
    ga.add_argument("service")
    ga.add_argument("group", nargs="?", help="omit to remove the service from its group")
    grp.add_parser("list").add_argument("--json", action="store_true")
    inv = sub.add_parser("invoke", help="call a service; prints the result as JSON")
    inv.add_argument("name")
    inv.add_argument("--input", required=True, action="append", help="text, or a file path (image, .txt, .json)")
    inv.add_argument("--params", default="{}", help="JSON object")
    return p


def main(argv: Sequence[str] | None = None, ctx: Context | None = None) -> int:
    args = build_parser().parse_args(argv)
    ctx = ctx or Context()
    key = args.command + (f" {args.action}" if getattr(args, "action", None) else "")
    try:
        return COMMANDS[key](args, ctx)
    except FAILURES as e:
        print(f"error: {e}", file=ctx.err)
        return 1


# --- platform -----------------------------------------------------------------------------------

@command("up")
def cmd_up(args: argparse.Namespace, ctx: Context) -> int:
    from app.demo import seed_media
    result = launcher.up(ctx.platform)
    seeded = seed_media(ctx.platform)
    ctx.print(f"AlgoStage is running: {result.url}")
    if seeded:
        ctx.print(f"seeded {len(seeded)} demo media file(s) into the object store")
    if result.admin_created and ctx.platform.environ.get("ALGOSTAGE_ADMIN_PASSWORD"):
        ctx.print(f"admin login: {result.admin_created[0]} / the password in ALGOSTAGE_ADMIN_PASSWORD")
    elif result.admin_created:
        user, password = result.admin_created
        ctx.print(f"admin login: {user} / {password}   (shown once; change it on the Users page)")
    else:
        ctx.print("admin login: as created on the first `up` (python -m app user passwd admin to reset)")
    for message in result.messages + (_reconcile_messages(result.reconcile) if result.reconcile else []):
        ctx.print(message)
    return 0


def _reconcile_messages(report: Any) -> list[str]:
    out = []
    if report.started:
        out.append("started again (should run): " + ", ".join(report.started))
    if report.stopped:
        out.append("stopped (should not run): " + ", ".join(report.stopped))
    if report.unexpected:
        out.append("running but unknown to the database: " + ", ".join(report.unexpected))
    out += [f"could not reconcile {k}: {v}" for k, v in report.failed.items()]
    return out


@command("demo")
def cmd_demo(args: argparse.Namespace, ctx: Context) -> int:
    from app import demo
    if not args.no_deploy:
        ctx.platform.daemon.start()
    report = demo.install(ctx.platform, ctx.actor, deploy=not args.no_deploy,
                          progress=lambda line: print(line, file=ctx.err))
    if args.json:
        ctx.json({"seeded": report.seeded, "uploaded": report.uploaded, "deployed": report.deployed,
                  "running": report.running, "failed": report.failed})
    else:
        ctx.print(f"demo catalog: {len(report.uploaded)} uploaded, {len(report.deployed)} deployed, "
                  f"{len(report.running)} already deployed, {len(report.failed)} failed")
        for name, why in report.failed.items():
            ctx.print(f"  {name}: {why}")
    if report.failed:
        print(f"error: {len(report.failed)} demo algorithm(s) failed: {', '.join(report.failed)}", file=ctx.err)
        return 1
    return 0


@command("down")
def cmd_down(args: argparse.Namespace, ctx: Context) -> int:
    was_running = launcher.down(resolve_home())
    ctx.print("AlgoStage stopped" if was_running else "AlgoStage was not running")
    return 0


@command("status")
def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    st = launcher.status(ctx.platform)
    if args.json:
        ctx.json(st.to_dict())
        return 0
    ctx.print(f"home        {st.home}\nsupervisord {st.supervisord}\nui          {st.ui}  {st.url}")
    ctx.print(f"database    {st.database}  schema {st.schema_revision} (head {st.schema_head})")
    ctx.print("counts      " + ", ".join(f"{k} {v}" for k, v in st.counts.items()))
    return 0


# --- users --------------------------------------------------------------------------------------

@command("user add")
def cmd_user_add(args: argparse.Namespace, ctx: Context) -> int:
    password = args.password or generate_password()
    info = ctx.platform.auth.create_user(ctx.actor, args.username, password, args.role)
    ctx.print(f"created {info.username} ({info.role.value})" + ("" if args.password else f", password: {password}"))
    return 0


@command("user passwd")
def cmd_user_passwd(args: argparse.Namespace, ctx: Context) -> int:
    password = args.password or generate_password()
    ctx.platform.auth.set_password(ctx.actor, args.username, password)
    ctx.print(f"password of {args.username} changed" + ("" if args.password else f": {password}"))
    return 0


@command("user list")
def cmd_user_list(args: argparse.Namespace, ctx: Context) -> int:
    rows = [{"username": u.username, "role": u.role.value, "active": u.is_active,
             "created_at": u.created_at.isoformat(),
             "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None}
            for u in ctx.platform.auth.list_users(ctx.actor)]
    ctx.json(rows) if args.json else ctx.table(rows, ["username", "role", "active", "last_login_at"])
    return 0


# --- settings -----------------------------------------------------------------------------------

def _setting_row(r: Any) -> dict[str, Any]:
    return {"key": r.key, "value": r.display, "source": r.source.value, "error": r.error}


@command("config get")
def cmd_config_get(args: argparse.Namespace, ctx: Context) -> int:
    r = ctx.platform.settings.get(args.key)
    ctx.print(f"{r.display}\t({r.source.value})")
    return 0


@command("config set")
def cmd_config_set(args: argparse.Namespace, ctx: Context) -> int:
    r = ctx.platform.settings.set(args.key, args.value, ctx.actor.username)
    ctx.print(f"{r.key} = {r.display}  (effective source: {r.source.value})")
    return 0


@command("config unset")
def cmd_config_unset(args: argparse.Namespace, ctx: Context) -> int:
    r = ctx.platform.settings.unset(args.key, ctx.actor.username)
    ctx.print(f"{r.key} = {r.display}  (effective source: {r.source.value})")
    return 0


@command("config list")
def cmd_config_list(args: argparse.Namespace, ctx: Context) -> int:
    rows = [_setting_row(r) for r in ctx.platform.settings.all()]
    ctx.json(rows) if args.json else ctx.table(rows, ["key", "value", "source", "error"])
    return 0


@command("config history")
def cmd_config_history(args: argparse.Namespace, ctx: Context) -> int:
    rows = [{"id": h.id, "key": h.key, "old": h.old, "new": h.new, "actor": h.actor,
             "changed_at": h.changed_at.isoformat()} for h in ctx.platform.settings.history(args.key)]
    ctx.json(rows) if args.json else ctx.table(rows, ["id", "key", "old", "new", "actor", "changed_at"])
    return 0


@command("config restore")
def cmd_config_restore(args: argparse.Namespace, ctx: Context) -> int:
    r = ctx.platform.settings.restore(args.history_id, ctx.actor.username)
    ctx.print(f"{r.key} = {r.display}  (effective source: {r.source.value})")
    return 0


@command("config rotate-key")
def cmd_config_rotate_key(args: argparse.Namespace, ctx: Context) -> int:
    count = ctx.platform.rotate_secret_key()
    ctx.print(f"re-encrypted {count} secret(s) with the newest key")
    return 0


# --- catalog ------------------------------------------------------------------------------------

@command("upload")
def cmd_upload(args: argparse.Namespace, ctx: Context) -> int:
    try:
        r = ctx.platform.catalog.upload(ctx.actor, args.source, name=args.name, message=args.message,
                                        allow_redirects=args.allow_redirects)
    except ValidationFailed as e:
        print("error: upload rejected, nothing stored: " + "; ".join(str(p) for p in e.problems), file=ctx.err)
        return 1
    ctx.print(f"{r.algorithm} version {r.version} ({r.tag}, commit {r.commit_sha[:10]})")
    if r.changes is not None:
        c = r.changes
        for label, items in (("added", c.added), ("modified", c.modified), ("deleted", c.deleted),
                             ("params added", c.params_added), ("params removed", c.params_removed)):
            if items:
                ctx.print(f"  {label}: {', '.join(items)}")
        for key, (old, new) in {**c.manifest, **c.params_changed}.items():
            ctx.print(f"  changed {key}: {old!r} -> {new!r}")
    return 0


@command("algorithms")
def cmd_algorithms(args: argparse.Namespace, ctx: Context) -> int:
    algos = ctx.platform.catalog.list(ctx.actor)
    if args.json:
        ctx.json([algorithm_json(a) for a in algos])
        return 0
    ctx.table([{"name": a.name, "task": a.task, "versions": len(a.versions), "latest": a.latest.tag,
                "title": a.title} for a in algos], ["name", "task", "versions", "latest", "title"])
    return 0


def algorithm_json(a: Any) -> dict[str, Any]:
    """The stable JSON shape of an algorithm for `algorithms --json`."""
    return {"name": a.name, "title": a.title, "description": a.description, "task": a.task,
            "repository": a.repository,
            "versions": [{"number": v.number, "tag": v.tag, "commit": v.commit_sha, "message": v.message,
                          "created_by": v.created_by, "created_at": v.created_at.isoformat(),
                          "manifest": v.manifest, "files": v.files,
                          "samples": [f for f in v.files if f.startswith("samples/")]} for v in a.versions]}


# --- services -----------------------------------------------------------------------------------

@command("deploy")
def cmd_deploy(args: argparse.Namespace, ctx: Context) -> int:
    from orchestration.deployer import DeployRequest
    from orchestration.errors import DeployError
    name, _, version = args.target.partition("@")
    env = dict(kv.split("=", 1) for kv in args.env if "=" in kv)
    req = DeployRequest(name, int(version.lstrip("v")) if version else None, args.runtime, args.replicas, env)
    shown: set[str] = set()

    def progress(event: Any) -> None:
        shown.add(event.message)
        print(f"[{event.phase}] {event.message}", file=ctx.err)
    try:
        result = ctx.platform.deployer.deploy(ctx.actor, req, progress)
    except DeployError as e:
        # progress lines (the build log) are on stderr already; the service's own log tail is not
        tail = [line for line in e.log.splitlines() if line not in shown][-30:]
        if tail:
            print(f"--- last lines of the service log ({e.phase}) ---", *tail, sep="\n", file=ctx.err)
        print(f"error: deploy of {name} failed at {e.phase or 'deploy'}: {e}", file=ctx.err)
        return 1
    ctx.print(f"{result.service} v{result.version} is healthy on {result.runtime}: " + " ".join(result.urls))
    return 0


def service_json(v: Any) -> dict[str, Any]:
    """The stable JSON shape of a service for `services --json`."""
    return {"name": v.name, "algorithm": v.algorithm, "task": v.task, "version": v.version,
            "runtime": v.runtime, "state": v.state.value, "desired_state": v.desired_state, "group": v.group,
            "last_error": v.last_error, "urls": v.urls,
            "replicas": [{"name": r.name, "index": r.index, "port": r.port, "state": r.state.value, "pid": r.pid,
                          "container_id": r.container_id, "uptime_s": r.uptime_s, "message": r.message,
                          "log_tail": r.log_tail}
                         for r in v.replicas]}


@command("services")
def cmd_services(args: argparse.Namespace, ctx: Context) -> int:
    views = ctx.platform.services.list(ctx.actor, resources=False)
    if args.json:
        ctx.json([service_json(v) for v in views])
        return 0
    ctx.table([{"name": v.name, "state": v.state.value, "version": v.version, "runtime": v.runtime,
                "replicas": len(v.replicas), "urls": " ".join(v.urls)} for v in views],
              ["name", "state", "version", "runtime", "replicas", "urls"])
    return 0


def _targets(args: argparse.Namespace, ctx: Context) -> list[str]:
    names = list(args.names)
    if args.group:
        names += ctx.platform.services.names_in_group(args.group)
    if args.all:
        names += ctx.platform.services.all_names()
    if not names:
        raise ValidationFailed([Problem("names", "give service names, --group GROUP or --all")])
    return list(dict.fromkeys(names))


def _bulk(action: str) -> Handler:
    def run(args: argparse.Namespace, ctx: Context) -> int:
        results = getattr(ctx.platform.services, action)(ctx.actor, _targets(args, ctx))
        for name, error in results.items():
            ctx.print(f"{name}: {'ok' if error is None else 'FAILED: ' + error}")
        failed = [n for n, e in results.items() if e]
        if failed:
            print(f"error: {action} failed for {', '.join(failed)}", file=ctx.err)
            return 1
        return 0
    return run


for _action in ("start", "stop", "restart", "remove"):
    command(_action)(_bulk(_action))


@command("logs")
def cmd_logs(args: argparse.Namespace, ctx: Context) -> int:
    streams = ["stdout", "stderr"] if args.stream == "both" else [args.stream]
    for stream in streams:
        logs = ctx.platform.services.logs(ctx.actor, args.name, replica=args.replica, lines=args.lines, stream=stream)
        for replica, text in logs.items():
            if len(logs) > 1 or len(streams) > 1:
                ctx.print(f"==> {replica} {stream} <==")
            ctx.print(text)
    return 0


@command("group create")
def cmd_group_create(args: argparse.Namespace, ctx: Context) -> int:
    ctx.platform.services.create_group(ctx.actor, args.name, args.description)
    ctx.print(f"group {args.name} created")
    return 0


@command("group assign")
def cmd_group_assign(args: argparse.Namespace, ctx: Context) -> int:
    ctx.platform.services.set_group(ctx.actor, args.service, args.group)
    ctx.print(f"{args.service} is in group {args.group}" if args.group else f"{args.service} is in no group")
    return 0


@command("group list")
def cmd_group_list(args: argparse.Namespace, ctx: Context) -> int:
    groups = ctx.platform.services.groups()
    if args.json:
        ctx.json(groups)
    else:
        ctx.table([{"group": g, "services": " ".join(s)} for g, s in groups.items()], ["group", "services"])
    return 0


@command("invoke")
def cmd_invoke(args: argparse.Namespace, ctx: Context) -> int:
    try:
        params = json.loads(args.params)
        assert isinstance(params, dict)
    except (ValueError, AssertionError):
        raise ValidationFailed([Problem("params", "must be a JSON object, e.g. '{\"threshold\": 0.5}'")]) from None
    inputs = [_read_input(i) for i in args.input]
    r = ctx.platform.invoker.invoke(ctx.actor, args.name, inputs, params, input_ref=", ".join(args.input)[:500])
    ctx.json({"service": r.service, "version": r.version, "outputs": r.outputs, "total_ms": round(r.total_ms, 3),
              "predict_ms": r.predict_ms, "replica": r.replica, "call_id": r.call_id})
    return 0


def _read_input(value: str) -> Any:
    """A path to an existing file is read (JSON, text or bytes); anything else is the text itself."""
    path = Path(value)
    if len(value) < 4096 and path.is_file():
        if path.suffix == ".json":
            return json.loads(path.read_text())
        if path.suffix == ".txt":
            return path.read_text().strip()
        return path.read_bytes()
    return value
