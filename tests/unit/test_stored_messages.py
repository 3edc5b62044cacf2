"""An error kept in a database column (`stored`, a JSON document) comes back (`restored`) as the
message it was — key, template, values, nested messages and problems — so a page says it in its
reader's language; plain text, an older column's text and a broken document come back as text."""
from __future__ import annotations

import json

from app.i18n import say
from orchestration.errors import Message, Problem, kept, restored, stored


def test_a_message_with_nested_messages_and_problems_survives_a_json_column() -> None:
    inner = Message("deploy.smoke_failed", "smoke test failed: {problems}",
                    problems=[Problem("outputs", Message("x.bad", "bad {n}", n=2)), Problem("status", "500")])
    failed = Message("deploy.failed_at", "deploy of {version} failed at {phase}: {error}",
                     version="v3", phase=Message("phase.smoke", "smoke"), error=inner)
    back = restored(json.loads(json.dumps(stored(failed))))
    assert isinstance(back, Message) and back == failed and back.key == "deploy.failed_at"
    assert back == "deploy of v3 failed at smoke: smoke test failed: outputs: bad 2; status: 500"
    assert say(back, "zh") == say(failed, "zh")
    assert say(back, "zh").startswith("v3 的部署在冒烟测试阶段失败：冒烟测试失败：")


def test_values_that_json_cannot_hold_are_kept_as_their_text() -> None:
    odd = Message("x.odd", "{a} {b} {c}", a=1.5, b=None, c={"k": (1, 2)})
    back = restored(json.loads(json.dumps(stored(odd))))
    assert back == odd == "1.5 None {'k': (1, 2)}"


def test_plain_text_old_columns_and_broken_documents_come_back_as_text() -> None:
    assert stored("plain words") == "plain words" and restored("plain words") == "plain words"
    assert restored(None) == "" and stored("") is None
    assert restored(None, "deploy of v1 failed at build: …") == "deploy of v1 failed at build: …"   # a row from before
    assert restored({"message": ["k.missing_value", "needs {x}", {}]}) == "needs {x}"
    assert restored({"something": "else"}) == "{'something': 'else'}"


def test_kept_cuts_the_text_column_and_keeps_the_whole_message() -> None:
    long = Message("invoke.answered", "{name} answered {status}: {error}", name="ocr", status=500, error="x" * 50)
    text, doc = kept(long, 20)
    assert text == "ocr answered 500: xx" and type(text) is str
    assert restored(doc, text) == long and restored(doc, text).values["error"] == "x" * 50
    assert kept("", 20) == ("", None) and kept("plain words", 5) == ("plain", "plain words")
