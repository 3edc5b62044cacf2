"""A real error of the core on a page of the Chinese UI is Chinese (issue 14, finding 8: "error
messages are English too"), through AppTest: the app when the database is unreachable, and a page
that refuses an input. Values (the driver's reason, the names) stay as they are; no other English."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import components.session
from app.auth import Role
from app.errors import AlgoStageError
from app.platform import Platform
from tests.conftest import browser_session, free_port

ROOT = Path(__file__).resolve().parents[2]


def english_words(text: str, *values: str) -> list[str]:
    """Words of Latin letters left once the values the message carries are taken out."""
    for value in values:
        text = text.replace(value, " ")
    return re.findall(r"[A-Za-z]{2,}", text)


@pytest.fixture
def unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A PostgreSQL URL where nothing listens; the core's own message and its driver reason."""
    url = f"postgresql://algostage:x@127.0.0.1:{free_port()}/algostage"
    monkeypatch.setenv("ALGOSTAGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(AlgoStageError) as caught:
        Platform.open(tmp_path / "home", {"DATABASE_URL": url, "ALGOSTAGE_HOME": str(tmp_path / "home")})
    assert caught.value.key == "db.unreachable", caught.value.message
    return caught.value.values["reason"]


def signed_in_app(lang: str) -> AppTest:
    """The whole app of a browser whose session must be read again from the database."""
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=60)
    at.session_state["session_id"] = 1
    at.session_state["checked_at"] = 0.0
    at.session_state["lang"] = lang
    return at


def test_an_unreachable_database_is_said_in_chinese_with_the_drivers_reason(unreachable: str) -> None:
    at = signed_in_app("zh").run()
    assert not at.exception, [e.value for e in at.exception]
    [error] = [e.value for e in at.error]
    assert error.startswith("数据库无法连接：") and unreachable in error, error
    assert english_words(error, unreachable) == [], error
    assert [c.value for c in at.caption] == ["请稍后再试，无需重启任何服务"]


def test_the_same_error_stays_english_in_the_english_ui(unreachable: str) -> None:
    at = signed_in_app("en").run()
    assert [e.value for e in at.error] == [f"the database is not reachable: {unreachable}"]
    assert [c.value for c in at.caption] == ["try again in a moment; nothing needs restarting"]


def test_a_refused_user_is_said_in_chinese_problem_by_problem(platform: Platform, monkeypatch) -> None:
    """The Users page: a name that breaks the rules and a short password, both refused at once."""
    # AppTest formats the role boxes' choices between runs, outside the page's session: the
    # page's format_func (t(), the session's language) must see Chinese there too.
    monkeypatch.setattr(components.session, "lang", lambda: "zh")
    monkeypatch.setenv("ALGOSTAGE_HOME", str(platform.home))
    monkeypatch.setenv("DATABASE_URL", platform.environ["DATABASE_URL"])
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=60)
    for key, value in browser_session(Platform.open(migrate=False), Role.ADMIN, "boss").items():
        at.session_state[key] = value
    at.session_state["lang"] = "zh"
    at.run()
    at.switch_page("../pages/users.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.text_input[0].input("Li Lei")
    at.text_input[1].input("short")
    next(b for b in at.button if b.label == "添加用户").click().run()
    [error] = [e.value for e in at.error]
    assert error.splitlines() == ["未做任何修改：",
                                  "- **用户名**: 2-64 个字符：小写字母、数字、_ . -，以字母开头",
                                  "- **密码**: 至少需要 8 个字符"], error
    assert english_words(error) == [], error
