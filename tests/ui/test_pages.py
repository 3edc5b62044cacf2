"""AppTest smoke tests of every page, logged in (each role) and logged out, in both languages."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.auth import Action, Actor, Role, can

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
    at = AppTest.from_file(MAIN, default_timeout=60)
    if actor:
        at.session_state["actor"] = actor
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
    assert env.settings.get("ALGOSTAGE_UI_PORT").value == 8501
    at.text_input[0].input("8601")
    at.button[0].click().run()
    assert env.settings.get("ALGOSTAGE_UI_PORT").value == 8601
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
