"""Architecture rules of DESIGN §1 that a test can check: imports point down only.

interfaces (pages/, components/, app/main.py, api/)  →  core (app/)  →  engines (orchestration/)
The runner (orchestration/runner) is copied into every replica and imports nothing of the
platform but itself; nothing outside pages/, components/ and app/main.py imports Streamlit.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INTERFACES = ("pages", "components", "api")


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1]) if path.is_relative_to(ROOT) else ""


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Every module a file imports, as absolute names (`from . import x` is resolved against
    `package`, by default the file's own package in the project)."""
    tree = ast.parse(path.read_text(), str(path))
    package = package_of(path) if package is None else package
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def top(module: str) -> str:
    return module.split(".")[0]


def violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    """`file: module` for every import of a package in `forbidden` (by top-level name or prefix)."""
    out = []
    for path in files:
        for module in sorted(imported_modules(path)):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                out.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {module}")
    return out


def py_files(*dirs: str) -> list[Path]:
    return [p for d in dirs for p in (ROOT / d).rglob("*.py")]


def test_engines_never_import_the_platform_or_the_interfaces():
    engines = py_files("orchestration")
    assert len(engines) > 10
    assert violations(engines, ("app", *INTERFACES)) == []


def test_the_runner_imports_only_itself_of_the_project():
    runner = py_files("orchestration/runner")
    own = [m for p in runner for m in imported_modules(p)
           if top(m) in ("app", "orchestration", *INTERFACES) and not m.startswith("orchestration.runner")]
    assert own == []


# The interfaces that live in app/: the Streamlit entry point (its server, which sets the session
# cookie, is components/ui_server.py), and the command line (which also starts the API's server).
APP_INTERFACES = {ROOT / "app" / "main.py", ROOT / "app" / "cli.py",
                  ROOT / "app" / "__main__.py"}


def test_core_never_imports_the_interfaces():
    core = [p for p in py_files("app") if p not in APP_INTERFACES]
    assert violations(core, INTERFACES) == []


def test_core_never_imports_streamlit():
    streamlit_entry = {ROOT / "app" / "main.py"}
    core = [p for p in py_files("app", "orchestration") if p not in streamlit_entry]
    assert len(core) > 10
    assert violations(core, ("streamlit",)) == []


def test_pages_do_not_reach_past_the_core_into_engines_internals():
    """Pages and components use the core; engine types they show (states, health) come through
    the core's modules, never a backend module (supervisor, docker, …) directly."""
    backends = ("orchestration.supervisor", "orchestration.supervisord", "orchestration.docker",
                "orchestration.builder", "orchestration.runner")
    assert violations(py_files(*INTERFACES), backends) == []


@pytest.mark.parametrize("source, forbidden, caught", [
    ("def f():\n    from streamlit import session_state\n", ("streamlit",), True),
    ("import app.models as m\n", ("app",), True),
    ("from app import db\n", ("app",), True),
    ("from orchestration.runtime import ServiceState\n", ("app",), False),
    ("import apple\n", ("app",), False),
])
def test_the_checker_detects_a_violation(tmp_path, source, forbidden, caught):
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    assert bool(violations([probe], forbidden)) is caught


def test_relative_imports_are_resolved(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from . import errors\nfrom .runtime import ServiceState\nfrom .. import app\n")
    found = imported_modules(probe, package="orchestration.sub")
    assert {"orchestration.sub.errors", "orchestration.sub.runtime", "orchestration.app"} <= found


def test_pages_stay_thin():
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "pages").glob("*.py")}
    assert sizes and all(n <= 200 for n in sizes.values()), sizes


def test_layout_exists():
    for d in ("app", "app/catalog", "app/services", "app/showcase", "api", "pages", "components", "orchestration",
              "orchestration/runner", "demo_data", "tests", "bench", "docs"):
        assert (ROOT / d).is_dir(), d
    assert (ROOT / "docs" / "ARCHITECTURE.md").is_file()
    assert "==" in (ROOT / "requirements.txt").read_text()
