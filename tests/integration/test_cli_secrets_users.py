"""Issue 11, finding 8 (secrets never on the command line) and the CLI's user and audit commands,
through app.cli.main on a real platform (both databases)."""
from __future__ import annotations

import io
import json

import pytest

from app.cli import Context, main
from app.platform import Platform


def run(platform: Platform, *args: str, stdin: str | None = None,
        monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(out, err)
    ctx._platform = platform
    if stdin is not None and monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args), ctx)
    return code, out.getvalue(), err.getvalue()


def test_a_secret_is_refused_as_an_argument_and_read_from_stdin(platform: Platform,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(platform, "config", "set", "GITEA_TOKEN", "tok-123")
    assert code != 0 and "standard input" in err and "tok-123" not in err
    assert platform.settings.value("GITEA_TOKEN") == ""
    code, out, _ = run(platform, "config", "set", "GITEA_TOKEN", stdin="tok-456\n", monkeypatch=monkeypatch)
    assert code == 0 and "tok-456" not in out
    assert platform.settings.value("GITEA_TOKEN") == "tok-456"
    code, _, _ = run(platform, "config", "set", "ALGOSTAGE_LOG_BACKUPS", "7")   # not a secret: as before
    assert code == 0 and platform.settings.value("ALGOSTAGE_LOG_BACKUPS") == 7


def test_user_update_and_the_audit_log(platform: Platform) -> None:
    assert run(platform, "user", "add", "olga", "--role", "operator", "--password", "olga-password")[0] == 0
    assert run(platform, "user", "update", "olga")[0] != 0      # nothing to change is an error
    assert run(platform, "user", "update", "olga", "--role", "viewer", "--inactive")[0] == 0
    users = {u["username"]: u for u in json.loads(run(platform, "user", "list", "--json")[1])}
    assert users["olga"]["role"] == "viewer" and users["olga"]["active"] is False
    code, out, _ = run(platform, "audit", "--json")
    records = json.loads(out)
    assert code == 0 and [r["action"] for r in records] == ["user.update", "user.create"]
    assert records[0]["target"] == "olga" and records[0]["detail"] == "role operator -> viewer; deactivated"
    assert records[0]["actor"].startswith("cli:")


def test_the_sqlite_file_is_readable_by_its_owner_only(tmp_path) -> None:
    """Issue 11, finding 8: it holds password hashes (it was 0644)."""
    import os
    import stat
    home = tmp_path / "home"
    p = Platform.open(home, {"ALGOSTAGE_HOME": str(home)})
    p.auth.bootstrap_admin("admin-password")
    try:
        for name in ("algostage.db", "algostage.db-wal"):
            path = home / name
            if path.exists():
                assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, name
    finally:
        p.close()
