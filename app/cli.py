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

from sqlalchemy.exc import SQLAlchemyError

from app import cli_cluster, launcher, schemas
from app.auth import Actor, Role, generate_password
from app.errors import AlgoStageError, Problem, ValidationFailed, describe
from app.platform import Platform, resolve_home
from orchestration import registry

Handler = Callable[[argparse.Namespace, "Context"], int]
COMMANDS: dict[str, Handler] = {}


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
    sub.add_parser("agent", help="run the platform's agent in the foreground (supervisord runs it)")
    sub.add_parser("api", help="serve the management API in the foreground (supervisord runs it)")
    hook = sub.add_parser("hook", help="git's hooks for pushes over HTTP").add_subparsers(dest="action", required=True)
    hook.add_parser("post-receive", help="read `old new ref` lines: the deploy branch becomes a version")
    alg = sub.add_parser("algorithm", help="an algorithm's push to deploy").add_subparsers(dest="action", required=True)
    link = alg.add_parser("link", help="webhooks, deploy branch and auto-deploy of an algorithm")
    link.add_argument("name")
    link.add_argument("--upstream", help="the Gitea/GitHub repository (clone URL) whose webhooks deploy it")
    link.add_argument("--secret", help="the webhook secret ('' removes it)")
    link.add_argument("--auto-deploy", choices=["on", "off"])
    link.add_argument("--branch", help="the branch whose pushes become versions (default main)")
    link.add_argument("--json", action="store_true")
    pushes = alg.add_parser("history", help="pushes and webhooks, and what became of them")
    pushes.add_argument("name", nargs="?")
    pushes.add_argument("--json", action="store_true")
    key = sub.add_parser("key", help="API keys for the gateway").add_subparsers(dest="action", required=True)
    kc = key.add_parser("create", help="create a key; it is printed once")
    kc.add_argument("name")
    kc.add_argument("--services", help="comma-separated services it may call (default: every service)")
    kc.add_argument("--expires", type=float, metavar="DAYS", help="days until it expires (default: never)")
    kc.add_argument("--user", help="the user it acts as on the API (their role applies); default: invoke only")
    kc.add_argument("--json", action="store_true")
    key.add_parser("list").add_argument("--json", action="store_true")
    key.add_parser("revoke").add_argument("name")

    user = sub.add_parser("user", help="users").add_subparsers(dest="action", required=True)
    add = user.add_parser("add")
    add.add_argument("username")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.VIEWER.value)
    add.add_argument("--password", help="default: generated and printed once")
    pw = user.add_parser("passwd")
    pw.add_argument("username")
    pw.add_argument("--password", help="default: generated and printed once")
    upd = user.add_parser("update", help="change a user's role or active flag (ends their sessions when deactivated)")
    upd.add_argument("username")
    upd.add_argument("--role", choices=[r.value for r in Role])
    active = upd.add_mutually_exclusive_group()
    active.add_argument("--active", dest="active", action="store_const", const=True)
    active.add_argument("--inactive", dest="active", action="store_const", const=False)
    user.add_parser("list").add_argument("--json", action="store_true")
    audit = sub.add_parser("audit", help="who started, stopped, restarted or removed services and changed users")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--json", action="store_true")

    cfg = sub.add_parser("config", help="settings").add_subparsers(dest="action", required=True)
    cfg.add_parser("get").add_argument("key")
    st = cfg.add_parser("set", help="a secret's value is read from standard input (never an argument: ps shows those)")
    st.add_argument("key")
    st.add_argument("value", nargs="?", help="omit to read it from standard input (required for secrets)")
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
    dep.add_argument("--runtime", choices=registry.names())
    dep.add_argument("--replicas", type=int)
    dep.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    dep.add_argument("--canary", type=int, metavar="PERCENT",
                     help="run this version beside the served one for PERCENT%% of the calls (then: canary promote|abort)")
    can = sub.add_parser("canary", help="end a version's trial").add_subparsers(dest="action", required=True)
    can.add_parser("promote", help="the version on trial becomes the served one").add_argument("name")
    can.add_parser("abort", help="remove the version on trial").add_argument("name")
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
    # experiments (issue 12)
    ds = sub.add_parser("dataset", help="labelled datasets").add_subparsers(dest="action", required=True)
    du = ds.add_parser("upload", help="upload a dataset: a folder or an archive (.zip, .tar.gz)")
    du.add_argument("source")
    du.add_argument("--name", required=True)
    du.add_argument("--task", required=True, help="text.classification, image.classification, image.detection, "
                                                  "text.ner or image.ocr")
    du.add_argument("--json", action="store_true")
    ds.add_parser("list").add_argument("--json", action="store_true")
    ex = sub.add_parser("experiment", help="parameter sweeps over datasets").add_subparsers(dest="action",
                                                                                            required=True)
    er = ex.add_parser("run", help="sweep ALGORITHM[@VERSION] over a dataset; waits, progress on stderr")
    er.add_argument("algorithm", metavar="ALGORITHM[@VERSION]")
    er.add_argument("--dataset", required=True)
    space = er.add_mutually_exclusive_group(required=True)
    space.add_argument("--grid", help='JSON: {"param": [values]} or {"param": {"min", "max", "steps"}}')
    space.add_argument("--random", type=int, metavar="N", help="N configurations drawn at random")
    er.add_argument("--seed", type=int, default=0)
    er.add_argument("--vary", help="comma-separated parameters to draw (--random; default: every bounded one)")
    er.add_argument("--yes", action="store_true", help="run a sweep over the confirmation limit without asking")
    er.add_argument("--json", action="store_true")
    ex.add_parser("list").add_argument("--json", action="store_true")
    for action in ("show", "resume"):
        a = ex.add_parser(action, help="an experiment's runs" if action == "show" else
                          "run what a cancelled or interrupted experiment has left; waits")
        a.add_argument("id", type=int)
        a.add_argument("--json", action="store_true")
    ex.add_parser("cancel", help="stop a running experiment (finished items are kept)").add_argument("id", type=int)
    ee = ex.add_parser("export", help="an experiment as CSV (its runs) or a self-contained HTML report")
    ee.add_argument("id", type=int)
    ee.add_argument("--format", choices=["csv", "html"], default="csv")
    ee.add_argument("--output", "-o", help="file to write (default: standard output)")
    cli_cluster.add_parsers(sub)   # export, scale, node
    return p


def main(argv: Sequence[str] | None = None, ctx: Context | None = None) -> int:
    COMMANDS.update(cli_cluster.COMMANDS)
    args = build_parser().parse_args(argv)
    ctx = ctx or Context()
    key = args.command + (f" {args.action}" if getattr(args, "action", None) else "")
    try:
        return COMMANDS[key](args, ctx)
    except AlgoStageError as e:
        print(f"error: {describe(e)}", file=ctx.err)
        return 1
    except OSError as e:   # a file named on the command line, the home folder, a socket
        print(f"error: {e}", file=ctx.err)
        return 1


# --- platform -----------------------------------------------------------------------------------

@command("up")
def cmd_up(args: argparse.Namespace, ctx: Context) -> int:
    from app.demo import seed_media
    result = launcher.up(ctx.platform)
    seeded = seed_media(ctx.platform)
    ctx.print(f"AlgoStage is running: {result.url}")
    ctx.print(f"gateway: {result.gateway_url}/ai/<service>/predict   API: {result.gateway_url}/api/v1 "
              f"(docs {result.gateway_url}/api/docs)")
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
                  "running": report.running, "failed": report.failed, "key": report.key,
                  "gateway": ctx.platform.router.base_url()})
    else:
        ctx.print(f"demo catalog: {len(report.uploaded)} uploaded, {len(report.deployed)} deployed, "
                  f"{len(report.running)} already deployed, {len(report.failed)} failed")
        for name, why in report.failed.items():
            ctx.print(f"  {name}: {why}")
        gateway = ctx.platform.router.base_url()
        if report.key:
            ctx.print(f"demo API key (shown once): {report.key}")
            ctx.print(f"try: curl -H 'Authorization: Bearer {report.key}' -H 'Content-Type: application/json' "
                      f"-d '{{\"inputs\": [\"What a great demo\"]}}' {gateway}/ai/sentiment-en/predict")
        else:
            ctx.print(f"gateway: {gateway}/ai/<service>/predict (the demo key was printed when it was created; "
                      "`python -m app key create NAME` makes another)")
    if report.failed:
        print(f"error: {len(report.failed)} demo algorithm(s) failed: {', '.join(report.failed)}", file=ctx.err)
        return 1
    return 0


@command("down")
def cmd_down(args: argparse.Namespace, ctx: Context) -> int:
    result = launcher.down(resolve_home(), _owned_ports(ctx))
    if result.ended:
        ctx.print(f"ended {len(result.ended)} process(es) no supervisord ran: " + ", ".join(map(str, result.ended)))
    ctx.print("AlgoStage stopped" if result.stopped_anything else "AlgoStage was not running")
    return 0


def _owned_ports(ctx: Context) -> set[int]:
    """The platform's ports for `down`; without its database, none: the pid files still name every
    program, and `down` must work when the database is what failed."""
    try:
        return launcher.owned_ports(ctx.platform)
    except (AlgoStageError, SQLAlchemyError) as e:
        print(f"warning: ports not checked ({e.__class__.__name__}: {str(e).splitlines()[0][:200]})", file=ctx.err)
        return set()


@command("status")
def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    st = launcher.status(ctx.platform)
    if args.json:
        ctx.json(st.to_dict())
        return 0
    ctx.print(f"home        {st.home}\nsupervisord {st.supervisord}\nui          {st.ui}  {st.url}")
    ctx.print(f"agent       {st.agent}\napi         {st.api}  {st.gateway_url}/api/v1\n"
              f"gateway     {st.gateway}  {st.gateway_url}")
    ctx.print(f"database    {st.database}  schema {st.schema_revision} (head {st.schema_head})")
    ctx.print("counts      " + ", ".join(f"{k} {v}" for k, v in st.counts.items()))
    if st.orphans:
        ctx.print(f"orphans     {len(st.orphans)} process(es) run by no supervisord (`python -m app up` ends them "
                  "and starts afresh; `down` ends them): "
                  + ", ".join(f"{o['name']} pid {o['pid']}" for o in st.orphans))
    return 0


@command("api")
def cmd_api(args: argparse.Namespace, ctx: Context) -> int:
    from api import app as api_app
    api_app.main()
    return 0


@command("hook post-receive")
def cmd_hook_post_receive(args: argparse.Namespace, ctx: Context) -> int:
    """Run by git after a push over HTTP (api/git.py): each updated ref, as the pusher."""
    import os
    name = Path(os.environ["GIT_DIR"]).resolve().name.removesuffix(".git")
    for var in [v for v in os.environ if v.startswith("GIT_")]:   # git's own, for this hook: not for our clones
        del os.environ[var]
    actor = ctx.platform.auth.actor_named(os.environ["ALGOSTAGE_PUSH_USER"])
    for line in sys.stdin:
        old, new, ref = (line.split() + ["", "", ""])[:3]
        if new and set(new) != {"0"}:
            status = ctx.platform.pushes.received(actor, name, ref, new, lambda text: ctx.print(text))
            ctx.print(f"{ref}: {status}")
    return 0


@command("algorithm link")
def cmd_algorithm_link(args: argparse.Namespace, ctx: Context) -> int:
    info = ctx.platform.pushes.link(ctx.actor, args.name, upstream_url=args.upstream, secret=args.secret,
                                    auto_deploy=None if args.auto_deploy is None else args.auto_deploy == "on",
                                    branch=args.branch)
    row = {"algorithm": info.algorithm, "upstream_url": info.upstream_url, "deploy_branch": info.deploy_branch,
           "auto_deploy": info.auto_deploy, "webhook_secret": info.has_secret}
    ctx.json(row) if args.json else ctx.table([row], list(row))
    return 0


@command("algorithm history")
def cmd_algorithm_history(args: argparse.Namespace, ctx: Context) -> int:
    rows = [{"id": e.id, "algorithm": e.algorithm, "source": e.source, "ref": e.ref, "commit": e.commit,
             "status": e.status, "reason": e.reason, "version": e.version, "actor": e.actor,
             "created_at": e.created_at.isoformat()} for e in ctx.platform.pushes.events(ctx.actor, args.name)]
    ctx.json(rows) if args.json else ctx.table(rows, ["id", "algorithm", "source", "commit", "status", "version",
                                                      "reason"])
    return 0


@command("agent")
def cmd_agent(args: argparse.Namespace, ctx: Context) -> int:
    from app import agent
    agent.main()
    return 0


# --- API keys -----------------------------------------------------------------------------------

@command("key create")
def cmd_key_create(args: argparse.Namespace, ctx: Context) -> int:
    services = [s.strip() for s in args.services.split(",") if s.strip()] if args.services else None
    new = ctx.platform.keys.create(ctx.actor, args.name, services=services, expires_days=args.expires,
                                   user=args.user)
    if args.json:
        ctx.json(schemas.NewKeyOut.of(new).json_dict())
    else:
        ctx.print(f"key {new.info.name}: {new.key}")
        ctx.print("(shown once; send it as `Authorization: Bearer <key>`)")
    return 0


@command("key list")
def cmd_key_list(args: argparse.Namespace, ctx: Context) -> int:
    rows = [schemas.KeyOut.of(k).json_dict() for k in ctx.platform.keys.list(ctx.actor)]
    ctx.json(rows) if args.json else ctx.table(rows, ["name", "prefix", "state", "services", "expires_at",
                                                      "last_used_at"])
    return 0


@command("key revoke")
def cmd_key_revoke(args: argparse.Namespace, ctx: Context) -> int:
    ctx.platform.keys.revoke(ctx.actor, args.name)
    ctx.print(f"key {args.name} revoked")
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


@command("user update")
def cmd_user_update(args: argparse.Namespace, ctx: Context) -> int:
    if args.role is None and args.active is None:
        raise ValidationFailed([Problem("user update", "say what changes: --role and/or --active/--inactive")])
    ctx.platform.auth.update_user(ctx.actor, args.username, role=args.role, active=args.active)
    ctx.print(f"{args.username} updated")
    return 0


@command("audit")
def cmd_audit(args: argparse.Namespace, ctx: Context) -> int:
    rows = [dict(at=r.at.isoformat(timespec="seconds"), actor=r.actor, action=r.action, target=r.target,
                 detail=r.detail) for r in ctx.platform.auth.audit_log(ctx.actor, limit=args.limit)]
    ctx.json(rows) if args.json else ctx.table(rows, ["at", "actor", "action", "target", "detail"])
    return 0


@command("user list")
def cmd_user_list(args: argparse.Namespace, ctx: Context) -> int:
    rows = [schemas.UserOut.of(u).json_dict() for u in ctx.platform.auth.list_users(ctx.actor)]
    ctx.json(rows) if args.json else ctx.table(rows, ["username", "role", "active", "last_login_at"])
    return 0


# --- settings -----------------------------------------------------------------------------------

@command("config get")
def cmd_config_get(args: argparse.Namespace, ctx: Context) -> int:
    r = ctx.platform.settings.get(ctx.actor, args.key)
    ctx.print(f"{r.display}\t({r.source.value})")
    return 0


@command("config set")
def cmd_config_set(args: argparse.Namespace, ctx: Context) -> int:
    from app.settings import SPECS
    secret = args.key in SPECS and SPECS[args.key].secret
    value = args.value
    if value is not None and secret:
        raise ValidationFailed([Problem("value", f"{args.key} is a secret: give it on standard input, not as an "
                                                 "argument (arguments are visible to every user in ps)")])
    if value is None:
        value = getpass.getpass(f"{args.key}: ") if sys.stdin.isatty() else sys.stdin.read().rstrip("\r\n")
    r = ctx.platform.settings.set(ctx.actor, args.key, value)
    ctx.print(f"{r.key} = {r.display}  (effective source: {r.source.value})")
    return 0


@command("config unset")
def cmd_config_unset(args: argparse.Namespace, ctx: Context) -> int:
    r = ctx.platform.settings.unset(ctx.actor, args.key)
    ctx.print(f"{r.key} = {r.display}  (effective source: {r.source.value})")
    return 0


@command("config list")
def cmd_config_list(args: argparse.Namespace, ctx: Context) -> int:
    rows = [schemas.SettingOut.of(r).json_dict() for r in ctx.platform.settings.all(ctx.actor)]
    ctx.json(rows) if args.json else ctx.table(rows, ["key", "value", "source", "error"])
    return 0


@command("config history")
def cmd_config_history(args: argparse.Namespace, ctx: Context) -> int:
    rows = [schemas.SettingHistoryOut.of(h).json_dict() for h in ctx.platform.settings.history(ctx.actor, args.key)]
    ctx.json(rows) if args.json else ctx.table(rows, ["id", "key", "old", "new", "actor", "changed_at"])
    return 0


@command("config restore")
def cmd_config_restore(args: argparse.Namespace, ctx: Context) -> int:
    r = ctx.platform.settings.restore(ctx.actor, args.history_id)
    ctx.print(f"{r.key} = {r.display}  (effective source: {r.source.value})")
    return 0


@command("config rotate-key")
def cmd_config_rotate_key(args: argparse.Namespace, ctx: Context) -> int:
    count = ctx.platform.rotate_secret_key(ctx.actor)
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
        ctx.json([schemas.AlgorithmOut.of(a).json_dict() for a in algos])
        return 0
    ctx.table([{"name": a.name, "task": a.task, "versions": len(a.versions), "latest": a.latest.tag,
                "title": a.title} for a in algos], ["name", "task", "versions", "latest", "title"])
    return 0


# --- services -----------------------------------------------------------------------------------

@command("canary promote")
def cmd_canary_promote(args: argparse.Namespace, ctx: Context) -> int:
    result = ctx.platform.deployer.promote(ctx.actor, args.name,
                                           lambda e: print(f"[{e.phase}] {e.message}", file=ctx.err))
    ctx.print(f"{result.service} v{result.version} is served by every replica: " + " ".join(result.urls))
    return 0


@command("canary abort")
def cmd_canary_abort(args: argparse.Namespace, ctx: Context) -> int:
    removed = ctx.platform.deployer.abort(ctx.actor, args.name)
    ctx.print(f"trial of {args.name} ended; removed {', '.join(removed) or 'no replica'}")
    return 0


@command("deploy")
def cmd_deploy(args: argparse.Namespace, ctx: Context) -> int:
    from app.services.deployer import DeployRequest
    from orchestration.errors import DeployError
    name, _, version = args.target.partition("@")
    env = dict(kv.split("=", 1) for kv in args.env if "=" in kv)
    req = DeployRequest(name, int(version.lstrip("v")) if version else None, args.runtime, args.replicas, env,
                        canary=args.canary)
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


@command("services")
def cmd_services(args: argparse.Namespace, ctx: Context) -> int:
    views = ctx.platform.services.list(ctx.actor, resources=False)
    if args.json:
        ctx.json([schemas.ServiceOut.of(v).json_dict() for v in views])
        return 0
    ctx.table([{"name": v.name, "state": v.state.value, "version": v.version, "runtime": v.runtime,
                "replicas": len(v.replicas), "urls": " ".join(v.urls)} for v in views],
              ["name", "state", "version", "runtime", "replicas", "urls"])
    return 0


def _targets(args: argparse.Namespace, ctx: Context) -> list[str]:
    names = list(args.names)
    if args.group:
        names += ctx.platform.services.names_in_group(ctx.actor, args.group)
    if args.all:
        names += ctx.platform.services.all_names(ctx.actor)
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
    groups = ctx.platform.services.groups(ctx.actor)
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
    ctx.json(schemas.InvokeOut.of(r).json_dict())
    return 0


def _read_input(value: str) -> Any:
    """A path to an existing file is read (JSON, text or bytes); anything else is the text itself.
    A file that does not parse as what its name says is a ValidationFailed naming it."""
    path = Path(value)
    if len(value) < 4096 and path.is_file():
        try:
            if path.suffix == ".json":
                return json.loads(path.read_text())
            if path.suffix == ".txt":
                return path.read_text().strip()
        except RecursionError:
            raise ValidationFailed([Problem("input", f"{path.name}: JSON nested too deeply to read")]) from None
        except (ValueError, UnicodeDecodeError) as e:
            raise ValidationFailed([Problem("input", f"{path.name}: not valid {path.suffix[1:]}: {e}"[:300])]) from None
        return path.read_bytes()
    return value


# --- experiments (issue 12) --------------------------------------------------------------------------

@command("dataset upload")
def cmd_dataset_upload(args: argparse.Namespace, ctx: Context) -> int:
    info = ctx.platform.datasets.upload(ctx.actor, args.source, name=args.name, task=args.task)
    if args.json:
        ctx.json(info.to_json())
    else:
        ctx.print(f"dataset {info.name}: {info.items} {info.task} items, labels {', '.join(info.labels) or '-'}")
    return 0


@command("dataset list")
def cmd_dataset_list(args: argparse.Namespace, ctx: Context) -> int:
    rows = [d.to_json() for d in ctx.platform.datasets.list(ctx.actor)]
    ctx.json(rows) if args.json else ctx.table(rows, ["name", "task", "items", "size_bytes", "created_by"])
    return 0


def _space(args: argparse.Namespace) -> Any:
    from app.experiments.space import Space
    if args.random is not None:
        vary = tuple(v.strip() for v in (args.vary or "").split(",") if v.strip())
        return Space(samples=args.random, seed=args.seed, vary=vary)
    try:
        grid = json.loads(args.grid)
        assert isinstance(grid, dict) and grid
    except (ValueError, AssertionError):
        raise ValidationFailed([Problem("grid", 'must be a JSON object, e.g. \'{"threshold": [0.1, 0.5]}\'')]) from None
    return Space(grid=grid)


def _follow(ctx: Context, experiment_id: int, as_json: bool) -> int:
    """Wait for the experiment (progress on stderr; Ctrl-C cancels it), then print its runs."""
    experiments = ctx.platform.experiments

    def progress(done: int, total: int) -> None:
        print(f"\rexperiment {experiment_id}: {done}/{total} items", end="", file=ctx.err, flush=True)
    try:
        view = experiments.wait(ctx.actor, experiment_id, progress=progress)
    except KeyboardInterrupt:
        experiments.cancel(ctx.actor, experiment_id)
        view = experiments.wait(ctx.actor, experiment_id, timeout=60)
    print(file=ctx.err)
    _show_experiment(ctx, view, as_json)
    if view.state != "DONE":
        print(f"error: experiment {view.id} ended {view.state}" + (f": {view.error}" if view.error else "") +
              f" (python -m app experiment resume {view.id} runs the rest)", file=ctx.err)
        return 1
    return 0


def _show_experiment(ctx: Context, view: Any, as_json: bool) -> None:
    if as_json:
        ctx.json(view.to_json())
        return
    ctx.print(f"experiment {view.id}: {view.algorithm} {view.version} on {view.dataset} · {view.state} · "
              f"{view.done}/{view.total} items, {view.errors} errors")
    name = view.primary[0]
    rows = [{"#": r.index, "params": json.dumps(r.params, ensure_ascii=False), name: r.metrics.get(name),
             "p50_ms": r.latency_ms.get("p50"), "p95_ms": r.latency_ms.get("p95"), "items": r.items,
             "errors": r.errors} for r in view.runs]
    ctx.table(rows, ["#", name, "p50_ms", "p95_ms", "items", "errors", "params"])
    if view.best is not None:
        ctx.print(f"best ({name}): #{view.best.index} {json.dumps(view.best.params, ensure_ascii=False)}")


@command("experiment run")
def cmd_experiment_run(args: argparse.Namespace, ctx: Context) -> int:
    from app.experiments.sweeps import ConfirmationNeeded
    experiments = ctx.platform.experiments
    plan = experiments.plan(ctx.actor, args.algorithm, args.dataset, _space(args))
    try:
        experiment_id = experiments.start(ctx.actor, plan, confirm=args.yes)
    except ConfirmationNeeded as e:
        if args.json or not sys.stdin.isatty() or input(f"{e.message}. Run it? [y/N] ").strip().lower() != "y":
            raise
        experiment_id = experiments.start(ctx.actor, plan, confirm=True)
    print(f"experiment {experiment_id}: {len(plan.configs)} configurations x {plan.dataset.items} items",
          file=ctx.err)
    return _follow(ctx, experiment_id, args.json)


@command("experiment resume")
def cmd_experiment_resume(args: argparse.Namespace, ctx: Context) -> int:
    return _follow(ctx, ctx.platform.experiments.resume(ctx.actor, args.id), args.json)


@command("experiment cancel")
def cmd_experiment_cancel(args: argparse.Namespace, ctx: Context) -> int:
    ctx.platform.experiments.cancel(ctx.actor, args.id)
    ctx.print(f"experiment {args.id}: cancel asked; finished items are kept")
    return 0


@command("experiment list")
def cmd_experiment_list(args: argparse.Namespace, ctx: Context) -> int:
    rows = [{"experiment": e.id, "algorithm": e.algorithm, "version": e.version, "dataset": e.dataset,
             "state": e.state, "configs": e.configs, "done": e.done, "total": e.total, "errors": e.errors,
             "created_by": e.created_by, "created_at": e.created_at.isoformat()}
            for e in ctx.platform.experiments.list(ctx.actor)]
    ctx.json(rows) if args.json else ctx.table(rows, ["experiment", "algorithm", "version", "dataset", "state",
                                                      "configs", "done", "total", "errors"])
    return 0


@command("experiment show")
def cmd_experiment_show(args: argparse.Namespace, ctx: Context) -> int:
    _show_experiment(ctx, ctx.platform.experiments.get(ctx.actor, args.id), args.json)
    return 0


@command("experiment export")
def cmd_experiment_export(args: argparse.Namespace, ctx: Context) -> int:
    experiments = ctx.platform.experiments
    text = experiments.csv(ctx.actor, args.id) if args.format == "csv" else experiments.report(ctx.actor, args.id)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        ctx.print(f"wrote {args.output}")
    else:
        ctx.out.write(text)
    return 0
