"""The nginx gateway as an engine: a whole nginx.conf rendered from a GatewaySpec, written
atomically, checked with `nginx -t` before it replaces the running one, and loaded by a graceful
reload (SIGHUP to the master: old workers finish their requests, new ones take the new config).

It knows nothing of users, keys or the database: the platform (app/services/gateway.py) turns
the routing table into a GatewaySpec. Contract of `NginxGateway.apply(spec)`:
- the new config is tested first; one that fails the test raises GatewayConfigError with nginx's
  own message, is kept beside the live one as `nginx.conf.rejected`, and is never loaded — the
  previous config keeps serving;
- when nginx is not running the config is only written (the next start reads it);
- applying a spec that renders the same text as the live config changes nothing.

Every error the gateway itself answers (401, 403, 404, 413, 429, 502-504) is JSON
`{"error": …, "service": …}`, never nginx's HTML page.
"""
from __future__ import annotations

import getpass
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from orchestration.errors import OrchestrationError

NGINX = "/usr/sbin/nginx"
SERVICE_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}(@v[0-9]+)?")
ERRORS = {401: "a valid API key is required (Authorization: Bearer <key>)",
          403: "this API key may not call this service",
          404: "no such service at this gateway",
          413: "the request body is larger than this service accepts",
          429: "too many requests for this API key; slow down",
          500: "the gateway could not handle this request (see its error log)",
          502: "no replica of this service answered",
          503: "no replica of this service is available",
          504: "no replica of this service answered in time"}


class GatewayConfigError(OrchestrationError):
    """nginx refused a generated configuration; the previous one keeps serving."""
    code = "gateway_config_rejected"


@dataclass(frozen=True)
class Backend:
    """One replica behind a route: where it answers and its share of the calls."""
    host: str
    port: int
    weight: int = 1
    replica: str = ""


@dataclass(frozen=True)
class GatewayRoute:
    """`/ai/<name>/…` → its backends. `name` is a service, or `service@vN` pinned to a version."""
    name: str
    service: str
    backends: tuple[Backend, ...]
    max_body_mb: int = 32
    timeout_s: float = 30.0

    @property
    def upstream(self) -> str:
        return "algo_" + re.sub(r"[^a-z0-9]", "_", self.name)


@dataclass(frozen=True)
class GatewaySpec:
    host: str
    port: int
    routes: tuple[GatewayRoute, ...] = ()
    auth: str | None = None          # where auth subrequests go: "unix:/path.sock" or "127.0.0.1:8001"; None: open
    index: str | None = None          # where GET /ai/ (the list of routes a key may call) goes
    rate_per_s: int = 0               # per API key; 0: no limit
    burst: int = 0
    keepalive: int = 32               # idle connections kept per upstream (and worker)
    max_fails: int = 1                # passive health: failures within fail_timeout take a backend out
    fail_timeout_s: int = 5
    workers: int = 1                  # one proxies far more than Python replicas serve; on a machine shared
    # with them a second took CPU from them (bench_gateway, 2 cores: ratio 0.80 with 1, 0.73 with 2)
    api: str | None = None            # where /api/ and /git/ go (the management API: "127.0.0.1:8001")
    api_body_mb: int = 200            # the largest upload (an archive, a push) through /api/ and /git/
    extra: tuple[str, ...] = field(default=())   # raw lines added to the server block (tests)


class NginxGateway:
    """The files of one gateway under `root` (config, pid, logs, temp dirs) and its nginx."""

    def __init__(self, root: Path, *, nginx: str = NGINX) -> None:
        self.root = root
        self.nginx = nginx
        self.conf = root / "nginx.conf"
        self.pidfile = root / "nginx.pid"
        self.access_log = root / "access.log"
        self.error_log = root / "error.log"

    def command(self) -> list[str]:
        """The argv that runs nginx in the foreground (for a supervisord program)."""
        return [self.nginx, "-c", str(self.conf), "-p", str(self.root), "-e", str(self.error_log),
                "-g", "daemon off;"]

    def apply(self, spec: GatewaySpec) -> bool:
        """Make `spec` the live configuration (see the module's contract). Returns True when the
        configuration changed (and was reloaded if nginx runs)."""
        text = render(spec, self.root)
        if self.conf.exists() and self.conf.read_text() == text:
            return False
        self._prepare()
        candidate = self.conf.with_name("nginx.conf.next")
        candidate.write_text(text)
        problem = self.test(candidate)
        if problem:
            os.replace(candidate, self.conf.with_name("nginx.conf.rejected"))
            raise GatewayConfigError(f"nginx rejected the generated configuration: {problem}",
                                     hint=f"the previous configuration keeps serving; see {self.conf}.rejected")
        os.replace(candidate, self.conf)
        self.reload()
        return True

    def test(self, conf: Path) -> str:
        """`nginx -t` on `conf`: "" when it passes, else nginx's message."""
        proc = subprocess.run([self.nginx, "-t", "-q", "-c", str(conf), "-p", str(self.root), "-e", "stderr",
                               "-g", "daemon off;"], capture_output=True, text=True)
        return "" if proc.returncode == 0 else (proc.stderr or proc.stdout).strip()[-1000:]

    def reload(self, drain_s: float = 10.0) -> bool:
        """Graceful reload of the running master, returning once the new configuration serves and
        the old workers have finished their requests (drained), or after `drain_s`; False when
        nginx does not run. After it returns, no new request goes where the old config sent it."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            master = psutil.Process(pid)
            old = {c.pid for c in master.children()}
            os.kill(pid, signal.SIGHUP)
        except (ProcessLookupError, psutil.NoSuchProcess):
            return False
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline:
            try:
                workers = {c.pid for c in master.children()}
            except psutil.NoSuchProcess:
                return False
            if workers - old and not workers & old:
                return True
            time.sleep(0.01)
        return True

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def _prepare(self) -> None:
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi", "cache/auth"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)


# --- rendering (pure) ------------------------------------------------------------------------------

def render(spec: GatewaySpec, root: Path) -> str:
    """The whole nginx.conf for `spec`, files under `root`."""
    routes = sorted(spec.routes, key=lambda r: r.name)
    for route in routes:
        if not SERVICE_RE.fullmatch(route.name):
            raise OrchestrationError(f"not a route name: {route.name!r}")
    parts = [_main(spec, root), "http {", _http(spec, root)]
    parts += [_upstream(spec, r) for r in routes if r.backends]
    parts += ["  server {", _server(spec), *[_location(spec, r) for r in routes], _fallbacks(spec), "  }", "}", ""]
    return "\n".join(parts)


def _main(spec: GatewaySpec, root: Path) -> str:
    # Started as root, nginx would run its workers as `nobody`, who may not use the platform's
    # files (temp dirs, the key-check cache, the agent's socket): they run as the platform's user.
    user = [f"user {getpass.getuser()};"] if os.geteuid() == 0 else []
    return "\n".join([
        "# generated by AlgoStage from the routing table; do not edit",
        *user,
        f"worker_processes {spec.workers};",
        f"pid {root / 'nginx.pid'};",
        f"error_log {root / 'error.log'} warn;",
        "events { worker_connections 4096; }",
    ])


def _http(spec: GatewaySpec, root: Path) -> str:
    lines = [
        "  default_type application/json;",
        "  server_tokens off;",
        "  log_format algostage escape=json '{\"time\":$msec,\"service\":\"$algo_service\",\"route\":\"$algo_route\","
        "\"replica\":\"$upstream_addr\",\"status\":$status,\"request_s\":$request_time,"
        "\"upstream_s\":\"$upstream_response_time\",\"upstream_status\":\"$upstream_status\","
        "\"request_id\":\"$algo_request_id\",\"bytes_in\":$request_length,\"method\":\"$request_method\"}';",
        f"  access_log {root / 'access.log'} algostage;",
        f"  client_body_temp_path {root / 'tmp/body'};",
        f"  proxy_temp_path {root / 'tmp/proxy'};",
        f"  fastcgi_temp_path {root / 'tmp/fastcgi'};",
        f"  uwsgi_temp_path {root / 'tmp/uwsgi'};",
        f"  scgi_temp_path {root / 'tmp/scgi'};",
        "  map $http_x_request_id $algo_request_id { default $http_x_request_id; \"\" $request_id; }",
        # the route and the service of a request, from the client's own request line: the same in the
        # key check's subrequest (which shares the request's variables) and after an error page
        "  map $request_uri $algo_route { \"~^/ai/(?<r>[a-z0-9][a-z0-9-]*(@v[0-9]+)?)/\" $r; default \"\"; }",
        "  map $algo_route $algo_service { \"~^(?<s>[^@]+)\" $s; default \"\"; }",
        "  keepalive_requests 100000;",
        "  client_body_buffer_size 1m;",
        "  proxy_buffer_size 64k;",
        "  proxy_buffers 16 64k;",
    ]
    if spec.auth:
        lines.append(f"  proxy_cache_path {root / 'cache/auth'} levels=1 keys_zone=algo_auth:1m max_size=16m "
                     "inactive=30s use_temp_path=off;")
    if spec.rate_per_s:
        lines += ["  limit_req_zone $http_authorization zone=algo_per_key:10m "
                  f"rate={spec.rate_per_s}r/s;", "  limit_req_status 429;"]
    return "\n".join(lines)


def _upstream(spec: GatewaySpec, route: GatewayRoute) -> str:
    servers = [f"    server {_hostport(b.host, b.port)} weight={max(1, b.weight)} max_fails={spec.max_fails} "
               f"fail_timeout={spec.fail_timeout_s}s;  # {b.replica}" for b in route.backends]
    return "\n".join([f"  upstream {route.upstream} {{", *servers, f"    keepalive {spec.keepalive};",
                      "    keepalive_timeout 60s;", "  }"])


def _server(spec: GatewaySpec) -> str:
    lines = [f"    listen {_hostport(spec.host, spec.port)} backlog=4096;"]
    for status in ERRORS:
        lines.append(f"    error_page {status} = @error{status};")
    if spec.auth:
        lines += ["    location = /_algostage/auth {", "      internal;",
                  f"      proxy_pass {_url(spec.auth, '/gateway/auth')};",
                  "      proxy_pass_request_body off;", "      proxy_set_header Content-Length \"\";",
                  "      proxy_set_header X-Algostage-Service $algo_service;",
                  "      proxy_set_header X-Algostage-Route $algo_route;",
                  "      proxy_cache algo_auth;", "      proxy_cache_key \"$http_authorization|$algo_route\";",
                  "      proxy_cache_valid 200 401 403 5s;", "    }"]
    lines += list(spec.extra)
    return "\n".join(lines)


def _location(spec: GatewaySpec, route: GatewayRoute) -> str:
    lines = [f"    location /ai/{route.name}/ {{"]
    if spec.auth:
        lines.append("      auth_request /_algostage/auth;")
    if spec.rate_per_s:
        lines.append(f"      limit_req zone=algo_per_key burst={spec.burst} nodelay;")
    if not route.backends:
        lines += ["      return 503;", "    }"]
        return "\n".join(lines)
    timeout = max(1, int(route.timeout_s + 0.999))
    lines += [f"      client_max_body_size {route.max_body_mb}m;",
              f"      proxy_pass http://{route.upstream}/;",
              "      proxy_http_version 1.1;",
              "      proxy_set_header Connection \"\";",
              "      proxy_set_header Host $host;",
              "      proxy_set_header X-Request-Id $algo_request_id;",
              "      proxy_hide_header X-Request-Id;",   # the runner echoes it: one header, from nginx
              "      add_header X-Request-Id $algo_request_id always;",
              "      add_header X-Algostage-Replica $upstream_addr always;",
              "      proxy_request_buffering on;",
              "      proxy_connect_timeout 1s;",
              f"      proxy_read_timeout {timeout}s;",
              f"      proxy_send_timeout {timeout}s;",
              "      proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;",
              f"      proxy_next_upstream_tries {max(2, len(route.backends) + 1)};",
              f"      proxy_next_upstream_timeout {timeout}s;",
              "    }"]
    return "\n".join(lines)


def _fallbacks(spec: GatewaySpec) -> str:
    lines = []
    if spec.index:
        lines += ["    location = /ai/ {"]
        if spec.auth:
            lines.append("      auth_request /_algostage/auth;")
        lines += [f"      proxy_pass {_url(spec.index, '/gateway/routes')};",
                  "      proxy_set_header Authorization $http_authorization;", "    }"]
    if spec.index:
        lines += ["    location = /metrics {", f"      proxy_pass {_url(spec.index, '/metrics')};", "    }"]
    if spec.api:
        for prefix in ("/api/", "/git/"):   # the API checks its own keys; long uploads, pushes and deploys
            lines += [f"    location {prefix} {{", f"      proxy_pass http://{spec.api};",
                      f"      client_max_body_size {spec.api_body_mb}m;", "      proxy_request_buffering off;",
                      "      proxy_read_timeout 900s;", "      proxy_set_header Host $host;",
                      "      proxy_set_header X-Request-Id $algo_request_id;", "    }"]
    lines += ["    location / { return 404; }"]
    for status, message in ERRORS.items():
        body = '{"error": "' + message + '", "status": ' + str(status) + ', "service": "$algo_service"}'
        lines += [f"    location @error{status} {{", "      default_type application/json;",
                  "      add_header X-Request-Id $algo_request_id always;",
                  f"      return {status} '{body}\\n';", "    }"]
    return "\n".join(lines)


def _url(target: str, path: str) -> str:
    """proxy_pass URL of `path` on `target` ("unix:/run/x.sock" or "host:port")."""
    return f"http://{target}:{path}" if target.startswith("unix:") else f"http://{target}{path}"


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

