"""Every interface text exists in English and Chinese, and every key a page uses exists."""
import re
from pathlib import Path

from app.i18n import TEXTS, t
from app.settings import SPECS

ROOT = Path(__file__).resolve().parents[2]
KEY_RE = re.compile(r"""\bt\(\s*["']([a-z_]+\.[^"']+)["']""")


def test_every_text_has_both_languages():
    missing = [k for k, v in TEXTS.items() if not k.startswith("setting.") and not (v.get("en") and v.get("zh"))]
    assert missing == []


def test_every_setting_has_chinese_help():
    assert [k for k in SPECS if not TEXTS.get(f"setting.{k}", {}).get("zh")] == []


def test_every_key_used_by_the_interface_exists():
    files = [*(ROOT / "pages").glob("*.py"), *(ROOT / "components").glob("*.py"), ROOT / "app" / "main.py"]
    used = {m for f in files for m in KEY_RE.findall(f.read_text())}
    assert used, "the scan found no keys"
    assert sorted(k for k in used if k not in TEXTS and not k.endswith(".")) == []


def test_translation_and_fallback():
    assert t("nav.home", "zh") == "首页"
    assert t("nav.home", "fr") == "Home"
    assert t("settings.saved", "en", key="X", source="database").startswith("Saved X")
    assert t("no.such.key") == "no.such.key"
