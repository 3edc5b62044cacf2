"""Architecture rules of DESIGN §1 that a test can check."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports_streamlit(path: Path) -> bool:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "streamlit" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "streamlit":
            return True
    return False


def test_core_never_imports_streamlit():
    core = [p for d in ("app", "orchestration") for p in (ROOT / d).rglob("*.py") if p != ROOT / "app" / "main.py"]
    assert len(core) > 10
    offenders = [str(p.relative_to(ROOT)) for p in core if _imports_streamlit(p)]
    assert offenders == []


def test_the_checker_detects_a_streamlit_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from streamlit import session_state\n")
    assert _imports_streamlit(bad)


def test_pages_stay_thin():
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "pages").glob("*.py")}
    assert sizes and all(n <= 200 for n in sizes.values()), sizes


def test_layout_exists():
    for d in ("app", "pages", "components", "orchestration", "demo_data", "tests", "bench", "docs"):
        assert (ROOT / d).is_dir(), d
    assert "==" in (ROOT / "requirements.txt").read_text()
