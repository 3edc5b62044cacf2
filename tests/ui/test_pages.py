"""AppTest smoke tests of every page, logged in (each role) and logged out, in both languages."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.auth import Action, Actor, Role, can
from tests.conftest import browser_session

ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "app" / "main.py")


def _pages() -> list[tuple[str, str]]:
    import ast
    tree = ast.parse((ROOT / "app" / "main.py").read_text())
    table = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PAGE_TABLE")
    return [(e.elts[0].value, e.elts[4].attr) for e in table.value.elts]


@pytest.fixture
def env(platform, monkeypatch):
    monkeypatch.setenv("ALGOSTAGE_HOME", str(platform.home))
    monkeypatch.setenv("DATABASE_URL", platform.environ["DATABASE_URL"])
    platform.auth.bootstrap_admin("admin-password")
    return platform


def app(actor: Actor | None = None, lang: str = "en") -> AppTest:
    """The whole app, signed in as a real user of `actor`'s role and name when given."""
    at = AppTest.from_file(MAIN, default_timeout=60)
    if actor:
        from app.platform import Platform
        for key, value in browser_session(Platform.open(migrate=False), actor.role, actor.username).items():
            at.session_state[key] = value
    at.session_state["lang"] = lang
    return at


def test_logged_out_sees_only_the_login_page(env):
    at = app().run()
    assert not at.exception
    assert at.title[0].value == "Log in to AlgoStage"
    assert len(at.text_input) == 2


def test_login_with_wrong_password_shows_an_error_and_no_pages(env):
    at = app().run()
    at.text_input[0].input("admin")
    at.text_input[1].input("wrong-password")
    at.button[0].click().run()
    assert "Invalid username or password." in [e.value for e in at.error]
    assert "actor" not in at.session_state


def test_login_then_home(env):
    at = app().run()
    at.text_input[0].input("admin")
    at.text_input[1].input("admin-password")
    at.button[0].click().run()
    assert at.session_state["actor"].role is Role.ADMIN
    assert at.title[0].value == "Platform overview"
    assert [m.value for m in at.metric][3] == "1"  # one user


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_page_renders_for_allowed_roles_and_is_hidden_from_others(env, role, lang):
    for file, action in _pages():
        at = app(Actor("someone", role), lang).run()
        if can(Actor("x", role), Action[action]):
            at.switch_page(f"../pages/{file}").run()
            assert not at.exception, (file, at.exception)
            assert at.title and not at.error, file
        else:
            with pytest.raises(ValueError, match="Could not find a navigation page"):
                at.switch_page(f"../pages/{file}")


@pytest.mark.parametrize("role", [None, *Role])
def test_every_page_guards_itself_when_opened_directly(env, role):
    """The navigation hides pages; the page's own guard is the second line (deny by default)."""
    for file, action in _pages():
        at = AppTest.from_file(str(ROOT / "pages" / file), default_timeout=60)
        if role:
            at.session_state["actor"] = Actor("someone", role)
        at.run()
        assert not at.exception, (file, at.exception)
        denied = any("permission" in e.value for e in at.error)
        assert denied is not can(Actor("x", role) if role else None, Action[action]), (file, role)


def test_chinese_interface(env):
    at = app(Actor("admin", Role.ADMIN), "zh").run()
    assert at.title[0].value == "平台概览"
    assert at.sidebar.selectbox[0].label == "语言"


def test_settings_page_saves_a_valid_value_and_refuses_a_bad_one(env):
    at = app(Actor("admin", Role.ADMIN)).run()
    at.switch_page("../pages/settings.py").run()
    at.selectbox[0].select("ALGOSTAGE_UI_PORT")
    at.text_input[0].input("99999")
    at.button[0].click().run()
    assert any("between 1 and 65535" in e.value for e in at.error)
    assert env.settings.value("ALGOSTAGE_UI_PORT") == 8501
    at.text_input[0].input("8601")
    at.button[0].click().run()
    assert env.settings.value("ALGOSTAGE_UI_PORT") == 8601
    assert any("ALGOSTAGE_UI_PORT" in s.value for s in at.success)


def test_users_page_adds_a_user_and_refuses_a_duplicate(env):
    at = app(Actor("admin", Role.ADMIN)).run()
    at.switch_page("../pages/users.py").run()
    at.text_input[0].input("carol")
    at.text_input[1].input("carol-password")
    at.button[0].click().run()
    assert any("carol" in s.value for s in at.success)
    at.text_input[0].input("carol")
    at.text_input[1].input("carol-password")
    at.button[0].click().run()
    assert any("already exists" in e.value for e in at.error)


def test_users_table_shows_a_role_change_at_once(env):
    """Issue 14, finding 2: the table above the forms is read after the change, not before it."""
    admin = Actor("admin", Role.ADMIN)
    env.auth.create_user(admin, "dora", "dora-password", Role.VIEWER)
    at = app(admin).run()
    at.switch_page("../pages/users.py").run()
    next(s for s in at.selectbox if s.label == "User").set_value("dora").run()
    [*_, role] = [s for s in at.selectbox if s.label == "Role"]   # the change form's
    role.set_value("operator")
    next(b for b in at.button if b.label == "Apply").click().run()
    assert any("Updated dora." in s.value for s in at.success), [e.value for e in at.error]
    table = at.dataframe[0].value
    assert table.loc[table["Username"] == "dora", "Role"].tolist() == ["operator"]


def test_an_open_session_follows_demotion_and_deactivation(env, monkeypatch):
    """Issue 11, finding 1: the app re-reads the session's user (here at once: RECHECK_S = 0), so
    a demoted operator loses the operator's pages and buttons at the next rerun and a deactivated
    one is signed out."""
    import components.session
    monkeypatch.setattr(components.session, "RECHECK_S", 0.0)
    admin = Actor("admin", Role.ADMIN)
    env.auth.create_user(admin, "olga", "olga-password", Role.OPERATOR)
    at = app().run()
    at.text_input[0].input("olga")
    at.text_input[1].input("olga-password")
    at.button[0].click().run()
    assert at.session_state["actor"].role is Role.OPERATOR
    at.switch_page("../pages/deploy.py").run()
    assert not at.exception and at.title[0].value == "Deploy an algorithm"

    env.auth.update_user(admin, "olga", role=Role.VIEWER)
    at.run()
    assert at.session_state["actor"].role is Role.VIEWER
    assert at.title[0].value != "Deploy an algorithm"   # no longer in the viewer's navigation
    env.auth.update_user(admin, "olga", active=False)
    at.run()
    assert "actor" not in at.session_state
    assert at.title[0].value == "Log in to AlgoStage"
    assert any("session has ended" in i.value for i in at.info)


def test_a_session_state_actor_without_a_session_is_not_trusted(env):
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.session_state["actor"] = Actor("admin", Role.ADMIN)
    at.run()
    assert at.title[0].value == "Log in to AlgoStage" and "actor" not in at.session_state


def test_home_says_in_words_why_docker_is_not_reachable(env, monkeypatch, tmp_path):
    """Issue 11, finding 8 / issue 14, finding 6: no raw Python exception for an engine that is
    not running ("Error while fetching server API version: ('Connection aborted.', …)")."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    at = AppTest.from_file(str(ROOT / "pages" / "home.py"), default_timeout=60)
    for key, value in browser_session(env, Role.ADMIN, "admin").items():
        at.session_state[key] = value
    at.session_state["lang"] = "en"
    at.run()
    assert not at.exception
    shown = " ".join([m.value for m in at.markdown] + [c.value for c in at.caption])
    assert "nothing listens at that socket" in shown
    assert "Error while fetching" not in shown and "Connection aborted" not in shown
