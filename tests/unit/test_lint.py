"""pyflakes-level checks (undefined names, unused imports, syntax) over all project code."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_undefined_names_or_unused_imports():
    dirs = [d for d in ("app", "orchestration", "components", "pages", "tests", "bench", "demo_data") if (ROOT / d).exists()]
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "F,E9", *dirs],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
