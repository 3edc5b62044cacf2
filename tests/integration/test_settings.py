"""Settings: precedence with sources, validation, history and restore, secrets at rest."""
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from app.auth import Actor, Role
from app.crypto import SecretBox
from app.models import Setting, SettingHistory
from app.settings import SettingError, SettingsStore, Source
from tests.conftest import ADMIN


def admin(name: str) -> Actor:
    return Actor(name, Role.ADMIN)


def store(platform, environ=None) -> SettingsStore:
    return SettingsStore(platform.sessions, platform.secrets, environ or {})


def history_count(platform) -> int:
    with platform.sessions() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(SettingHistory))


def test_default_then_database_then_environment(platform):
    plain = store(platform)
    r = plain.get(ADMIN, "ALGOSTAGE_PORT_RANGE")
    assert (r.value, r.source) == ((18000, 18999), Source.DEFAULT)

    plain.set(admin("alice"), "ALGOSTAGE_PORT_RANGE", "20000-20100")
    r = plain.get(ADMIN, "ALGOSTAGE_PORT_RANGE")
    assert (r.value, r.source) == ((20000, 20100), Source.DB)

    with_env = store(platform, {"ALGOSTAGE_PORT_RANGE": "30000-30010"})
    r = with_env.get(ADMIN, "ALGOSTAGE_PORT_RANGE")
    assert (r.value, r.source) == ((30000, 30010), Source.ENV)
    # the database value is kept underneath the environment
    assert plain.get(ADMIN, "ALGOSTAGE_PORT_RANGE").value == (20000, 20100)


def test_empty_environment_value_does_not_override(platform):
    s = store(platform, {"ALGOSTAGE_RUNTIME": ""})
    s.set(admin("alice"), "ALGOSTAGE_RUNTIME", "docker")
    assert s.get(ADMIN, "ALGOSTAGE_RUNTIME").source is Source.DB


@pytest.mark.parametrize("key,raw,reason", [
    ("ALGOSTAGE_UI_PORT", "70000", "between 1 and 65535"),
    ("ALGOSTAGE_UI_PORT", "abc", "whole number"),
    ("ALGOSTAGE_PORT_RANGE", "19000-18000", "start < end"),
    ("ALGOSTAGE_PORT_RANGE", "18000", "18000-18999"),
    ("ALGOSTAGE_RUNTIME", "kubernetes", "one of supervisor, docker"),
    ("GITEA_URL", "ftp://x", "http://"),
    ("MINIO_ENDPOINT", "http://minio:9000", "host:port"),
    ("MINIO_SECURE", "maybe", "true or false"),
    ("ALGOSTAGE_PIP_CA_BUNDLE", "/no/such/file.pem", "does not exist"),
])
def test_invalid_value_is_refused_with_field_and_reason_and_changes_nothing(platform, key, raw, reason):
    s = store(platform)
    before = s.get(ADMIN, key)
    with pytest.raises(SettingError) as e:
        s.set(admin("alice"), key, raw)
    assert e.value.problems[0].field == key
    assert reason in e.value.problems[0].reason
    assert s.get(ADMIN, key) == before
    assert history_count(platform) == 0


def test_unknown_key_and_env_only_key_are_refused(platform):
    s = store(platform)
    with pytest.raises(SettingError, match="NO_SUCH: unknown setting"):
        s.set(admin("alice"), "NO_SUCH", "1")
    with pytest.raises(SettingError, match="unknown setting"):
        s.get(ADMIN, "NO_SUCH")
    with pytest.raises(SettingError, match="only be set in the environment"):
        s.set(admin("alice"), "DATABASE_URL", "sqlite:///x.db")
    assert history_count(platform) == 0


def test_invalid_environment_value_is_reported_not_raised(platform):
    r = store(platform, {"ALGOSTAGE_UI_PORT": "http"}).get(ADMIN, "ALGOSTAGE_UI_PORT")
    assert r.source is Source.ENV and r.value is None and "whole number" in r.error


def test_history_records_who_old_new_and_restore_brings_back_an_earlier_value(platform):
    s = store(platform)
    s.set(admin("alice"), "ALGOSTAGE_UI_PORT", "8600")
    s.set(admin("bob"), "ALGOSTAGE_UI_PORT", "8700")
    s.unset(admin("carol"), "ALGOSTAGE_UI_PORT")
    h = s.history(ADMIN, "ALGOSTAGE_UI_PORT")
    assert [(e.actor, e.old, e.new) for e in h] == [("carol", "8700", None), ("bob", "8600", "8700"),
                                                    ("alice", None, "8600")]
    assert s.get(ADMIN, "ALGOSTAGE_UI_PORT").source is Source.DEFAULT
    first = h[-1]
    r = s.restore(admin("dave"), first.id)
    assert (r.value, r.source) == (8600, Source.DB)
    assert s.history(ADMIN, "ALGOSTAGE_UI_PORT")[0].actor == "dave"
    with pytest.raises(SettingError, match="no history entry"):
        s.restore(admin("dave"), 99999)


def test_secret_is_encrypted_in_the_database_masked_in_history_and_restorable(platform):
    s = store(platform)
    s.set(admin("alice"), "GITEA_TOKEN", "tok-very-secret-1")
    s.set(admin("alice"), "GITEA_TOKEN", "tok-very-secret-2")
    with platform.engine.connect() as conn:
        dumped = " ".join(str(v) for row in conn.execute(sa.text("SELECT * FROM settings")) for v in row)
        dumped += " ".join(str(v) for row in conn.execute(sa.text("SELECT * FROM setting_history")) for v in row)
    assert "tok-very-secret" not in dumped
    assert s.get(ADMIN, "GITEA_TOKEN").value == "tok-very-secret-2"
    assert s.get(ADMIN, "GITEA_TOKEN").display == "••••••••"
    assert all("secret" not in (e.new or "") for e in s.history(ADMIN, "GITEA_TOKEN"))
    s.restore(admin("bob"), s.history(ADMIN, "GITEA_TOKEN")[-1].id)
    assert s.get(ADMIN, "GITEA_TOKEN").value == "tok-very-secret-1"


def test_key_rotation_reencrypts_everything_without_loss(platform):
    s = store(platform)
    s.set(admin("alice"), "GITEA_TOKEN", "tok-1")
    s.set(admin("alice"), "MINIO_SECRET_KEY", "minio-secret")
    new_key = Fernet.generate_key()
    rotated = SecretBox([new_key] + platform.secrets.keys)
    assert s.rotate_secrets(rotated) == 2
    only_new = SettingsStore(platform.sessions, SecretBox([new_key]), {})
    assert only_new.get(ADMIN, "GITEA_TOKEN").value == "tok-1"
    assert only_new.get(ADMIN, "MINIO_SECRET_KEY").value == "minio-secret"
    only_new.restore(admin("bob"), only_new.history(ADMIN, "GITEA_TOKEN")[-1].id)  # history re-encrypted too
    with platform.sessions() as sess:
        assert all(not r.value.startswith("tok") for r in sess.scalars(sa.select(Setting)))
