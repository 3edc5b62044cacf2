"""The management API as a real process (a program of the platform's supervisord, reached through
the gateway's /api/): the whole life cycle of a service over HTTP as each role, a real `git push`
over HTTP and a signed webhook that each end in a healthy new version, and a bad signature that
deploys nothing."""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOT, free_port, private_port_range
from tests.support_platform import RunningPlatform, start_platform, stop_platform

pytestmark = pytest.mark.timeout(900)
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"
PASSWORD = "a-long-password"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, shared_envs: Path) -> Iterator[RunningPlatform]:
    home = tmp_path_factory.mktemp("api") / "home"
    p = start_platform(home, free_port(), ALGOSTAGE_PORT_RANGE=private_port_range(), ALGOSTAGE_ENV_DIR=str(shared_envs))
    for user, role in (("otto", "operator"), ("vera", "viewer")):
        p.cli("user", "add", user, "--role", role, "--password", PASSWORD, check=True)
    yield p
    stop_platform(p)


@pytest.fixture(scope="module")
def api(running: RunningPlatform) -> str:
    return f"http://127.0.0.1:{running.env['ALGOSTAGE_GATEWAY_PORT']}/api/v1"


def login(api: str, user: str, password: str = PASSWORD) -> httpx.Client:
    key = httpx.post(f"{api}/auth/token", json={"username": user, "password": password}, timeout=30).json()["key"]
    return httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=120)


def zipped(folder: Path, **manifest: object) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                data = f.read_bytes()
                if f.name == "algorithm.yaml" and manifest:
                    data = yaml.safe_dump({**yaml.safe_load(data), **manifest}, sort_keys=False).encode()
                z.writestr(str(f.relative_to(folder)), data)
    return buf.getvalue()


def finished(client: httpx.Client, job: dict) -> dict:
    reply = client.get(f"/jobs/{job['id']}", params={"wait": 300})
    assert reply.status_code == 200, reply.text
    done = reply.json()
    assert done["state"] in ("DONE", "FAILED", "CANCELLED"), done
    return done


def test_the_life_cycle_over_http_as_each_role(api: str) -> None:
    op, viewer, admin = login(api, "otto"), login(api, "vera"), login(api, "admin", "admin-password")
    assert viewer.post("/algorithms", files={"archive": ("h.zip", zipped(FIXTURES / "hello"))}).status_code == 403
    uploaded = op.post("/algorithms", files={"archive": ("hello.zip", zipped(FIXTURES / "hello"))},
                       data={"message": "over the API"})
    assert uploaded.status_code == 201 and uploaded.json()["version"] == 1
    assert viewer.post("/deployments", json={"service": "hello"}).status_code == 403
    job = op.post("/deployments", json={"service": "hello", "replicas": 2})
    assert job.status_code == 202
    done = finished(op, job.json())
    assert done["state"] == "DONE" and done["result"]["version"] == 1 and any("[smoke]" in x for x in done["log"])
    assert len(done["result"]["urls"]) == 2

    called = viewer.post("/services/hello/invoke", json={"inputs": ["hello over http"]})
    assert called.status_code == 200 and called.json()["outputs"][0]["label"] == "long"
    assert viewer.get("/services/hello").json()["state"] == "RUNNING"
    assert viewer.post("/services/hello/stop").status_code == 403
    assert op.post("/services/hello/stop").json()["failed"] == []
    assert viewer.get("/services/hello").json()["state"] == "STOPPED"
    stopped = viewer.post("/services/hello/invoke", json={"inputs": ["x"]})
    assert stopped.status_code == 502 and stopped.json()["code"] == "invoke_failed"
    assert op.post("/services/start/hello").json()["failed"] == []   # the original plan's path
    assert viewer.post("/services/hello/invoke", json={"inputs": ["back"]}).status_code == 200
    assert viewer.get("/services/hello/logs").status_code == 403   # logs are an operator's right
    logs = op.get("/services/hello/logs", params={"lines": 50})
    assert logs.status_code == 200 and any("READY" in text for text in logs.json().values())
    mine = viewer.get("/calls").json()
    assert {c["service"] for c in mine} == {"hello"} and {c["user"] for c in mine} == {"vera"}
    assert len(op.get("/calls", params={"service": "hello"}).json()) >= 3
    assert op.get("/calls.csv").text.startswith("id,")
    assert admin.get("/users").status_code == 200 and op.get("/users").status_code == 403
    assert op.delete("/services/hello").json()["failed"] == []
    assert op.get("/services").json() == []


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={"GIT_TERMINAL_PROMPT": "0", "HOME": str(cwd), "PATH": "/usr/bin:/bin",
                               "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@x"})


def version_served(api: str, name: str) -> str | None:
    services = {s["name"]: s for s in login(api, "vera").get("/services").json()}
    svc = services.get(name)
    return svc["version"] if svc and svc["state"] == "RUNNING" else None


def test_a_git_push_makes_a_version_and_with_auto_deploy_a_healthy_redeploy(api: str, running: RunningPlatform,
                                                                           tmp_path: Path) -> None:
    key = json.loads(running.cli("key", "create", "pusher", "--user", "otto", "--json", check=True).stdout)["key"]
    work = tmp_path / "pushed"
    shutil.copytree(FIXTURES / "hello", work)
    git("init", "-q", "-b", "main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "first", cwd=work)
    remote = api.replace("/api/v1", "/git/pushed.git").replace("http://", f"http://otto:{key}@")
    first = git("push", remote, "main", cwd=work)
    assert first.returncode == 0, first.stderr
    assert "pushed version 1 stored" in first.stderr
    running.cli("deploy", "pushed", check=True, timeout=600)
    running.cli("algorithm", "link", "pushed", "--auto-deploy", "on", check=True)

    (work / "algorithm.yaml").write_text((work / "algorithm.yaml").read_text().replace("Hello (fixture)", "Hello 2"))
    git("commit", "-qam", "second", cwd=work)
    second = git("push", remote, "main", cwd=work)
    assert second.returncode == 0 and "[smoke] smoke test passed" in second.stderr, second.stderr
    assert version_served(api, "pushed") == "v2"

    (work / "algorithm.yaml").write_text("name: pushed\ntask: no.such.task\n")
    git("commit", "-qam", "broken", cwd=work)
    third = git("push", remote, "main", cwd=work)
    assert "rejected, nothing stored" in third.stderr and "task" in third.stderr
    assert version_served(api, "pushed") == "v2"   # the running version keeps serving
    history = json.loads(running.cli("algorithm", "history", "pushed", "--json", check=True).stdout)
    assert [e["status"] for e in history] == ["rejected", "deployed", "version"]
    assert "task" in history[0]["reason"]
    viewer_key = json.loads(running.cli("key", "create", "peeker", "--user", "vera", "--json", check=True).stdout)["key"]
    refused = git("push", remote.replace(key, viewer_key).replace("otto:", "vera:"), "main", cwd=work)
    assert refused.returncode != 0


def history_of(running: RunningPlatform, name: str) -> list[dict]:
    return json.loads(running.cli("algorithm", "history", name, "--json", check=True).stdout)


def signed(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_a_signed_webhook_makes_a_healthy_new_version_and_a_bad_signature_nothing(
        api: str, running: RunningPlatform, tmp_path: Path) -> None:
    upstream = tmp_path / "upstream.git"
    work = tmp_path / "work"
    shutil.copytree(FIXTURES / "hello", work)
    manifest = yaml.safe_load((work / "algorithm.yaml").read_text())
    (work / "algorithm.yaml").write_text(yaml.safe_dump({**manifest, "name": "hooked"}, sort_keys=False))
    git("init", "-q", "--bare", "-b", "main", str(upstream), cwd=tmp_path)
    git("init", "-q", "-b", "main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "v1", cwd=work)
    git("push", "-q", str(upstream), "main", cwd=work)
    running.cli("upload", f"{upstream}#main", check=True)
    running.cli("deploy", "hooked", check=True, timeout=600)
    running.cli("algorithm", "link", "hooked", "--upstream", f"file://{upstream}", "--secret", "s3cret",
                "--auto-deploy", "on", check=True)
    (work / "README.md").write_text("second\n")
    git("add", "-A", cwd=work)
    git("commit", "-qm", "v2", cwd=work)
    git("push", "-q", str(upstream), "main", cwd=work)
    sha = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    body = json.dumps({"ref": "refs/heads/main", "after": sha,
                       "repository": {"clone_url": f"file://{upstream}"}}).encode()

    bad = httpx.post(f"{api}/hooks/gitea", content=body, headers={"X-Gitea-Signature": signed("wrong", body)})
    assert bad.status_code == 401 and bad.json()["code"] == "unauthorized"
    unsigned = httpx.post(f"{api}/hooks/github", content=body)
    assert unsigned.status_code == 401
    assert version_served(api, "hooked") == "v1"

    good = httpx.post(f"{api}/hooks/github", content=body,
                      headers={"X-Hub-Signature-256": "sha256=" + signed("s3cret", body)})
    assert good.status_code == 202, good.text
    # the webhook's deploy runs as a job: wait for its end (its history entry), not for the first
    # sight of v2, which comes at the switch while the old replica is still being retired (the
    # service then reads STOPPED for a moment)
    deadline = time.monotonic() + 300
    while (history_of(running, "hooked") or [{}])[0].get("status") != "deployed" and time.monotonic() < deadline:
        time.sleep(1)
    assert version_served(api, "hooked") == "v2"
    history = history_of(running, "hooked")
    assert history[0]["status"] == "deployed" and history[0]["source"] == "github" and history[0]["commit"] == sha
