"""Environments for process backends: one virtual environment per (requirements, python),
built with uv and shared by every version whose requirements match, so a redeploy with
unchanged requirements builds nothing.

An environment lives in `envs/<key>/` and is complete only when `envs/<key>/.complete` exists;
a build happens in a temporary directory and is renamed into place, under a file lock, so a
crashed or concurrent build never leaves a half-built environment in use. The build log is
kept in `envs/<key>.log`.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from orchestration.locks import file_lock
from orchestration.errors import DeployError, Message

RUNNER_REQUIREMENTS = Path(__file__).with_name("runner") / "requirements.txt"


@dataclass(frozen=True)
class BuildOptions:
    """Package index, proxy and CA settings passed through to uv/pip (and image builds)."""
    index_url: str = ""
    proxy: str = ""
    ca_bundle: str = ""

    def environment(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.index_url:
            env["UV_INDEX_URL"] = env["PIP_INDEX_URL"] = self.index_url
        if self.proxy:
            env["HTTPS_PROXY"] = env["HTTP_PROXY"] = self.proxy
        if self.ca_bundle:
            env["SSL_CERT_FILE"] = env["PIP_CERT"] = env["REQUESTS_CA_BUNDLE"] = self.ca_bundle
        return env


def build_options(setting: Callable[[str], Any]) -> BuildOptions:
    """Index, proxy and CA bundle from the platform's settings (they apply to every backend's builds)."""
    return BuildOptions(setting("ALGOSTAGE_PIP_INDEX_URL"), setting("ALGOSTAGE_PIP_PROXY"),
                        setting("ALGOSTAGE_PIP_CA_BUNDLE"))


@dataclass(frozen=True)
class Environment:
    key: str
    path: Path
    built: bool          # True if this call built it, False if it was reused
    log_path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


def _normalised(text: str) -> list[str]:
    return sorted(ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#"))


def environment_key(requirements: str, python_version: str, runner_requirements: str) -> str:
    """Hash of what goes into an environment; equal keys mean the environment can be shared."""
    text = "\n".join([f"python={python_version}", *_normalised(runner_requirements), "--", *_normalised(requirements)])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class EnvironmentBuilder:
    def __init__(self, root: Path, *, python: str = sys.executable, uv: str | None = None,
                 options: BuildOptions = BuildOptions(), runner_requirements: Path = RUNNER_REQUIREMENTS) -> None:
        self.root = root
        self.python = python
        self.uv = uv or str(Path(sys.executable).with_name("uv"))
        self.options = options
        self.runner_requirements = runner_requirements

    @functools.cached_property
    def _python_version(self) -> str:
        out = subprocess.run([self.python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def python_version(self) -> str:
        """The version of the interpreter environments are made from (asked once per builder)."""
        return self._python_version

    def key_for(self, package_dir: Path) -> str:
        req = package_dir / "requirements.txt"
        return environment_key(req.read_text() if req.exists() else "", self.python_version(),
                               self.runner_requirements.read_text())

    def ensure(self, package_dir: Path, log: Callable[[str], None] = lambda line: None) -> Environment:
        """Return the environment for the package, building it only if no complete one exists.
        A failed build raises DeployError(phase="build") with the build log and leaves nothing."""
        key = self.key_for(package_dir)
        target, log_path = self.root / key, self.root / f"{key}.log"
        if (target / ".complete").exists():
            log(f"environment {key} reused (requirements unchanged)")
            return Environment(key, target, False, log_path)
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock(key):
            if (target / ".complete").exists():  # built by a concurrent deploy meanwhile
                log(f"environment {key} reused (built concurrently)")
                return Environment(key, target, False, log_path)
            self._build(package_dir, key, target, log_path, log)
        return Environment(key, target, True, log_path)

    def remove_unused(self, keep: set[str]) -> list[str]:
        """Delete environments whose key is not in `keep`; returns the removed keys."""
        removed = []
        for path in self.root.glob("*"):
            if path.is_dir() and (path / ".complete").exists() and path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        return removed

    def _lock(self, key: str) -> AbstractContextManager[None]:
        return file_lock(self.root / f"{key}.lock")

    def _build(self, package_dir: Path, key: str, target: Path, log_path: Path,
               log: Callable[[str], None]) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}.building-", dir=self.root))
        lines: list[str] = []

        def sink(line: str) -> None:
            lines.append(line)
            log(line)
        try:
            sink(f"building environment {key} with {Path(self.python).name} {self.python_version()}")
            self._run([self.uv, "venv", "--python", self.python, str(tmp)], sink)
            reqs = ["-r", str(self.runner_requirements)]
            if (package_dir / "requirements.txt").exists():
                reqs += ["-r", str(package_dir / "requirements.txt")]
            self._run([self.uv, "pip", "install", "--python", str(tmp / "bin" / "python"), *reqs], sink)
            # venvs hard-code their path: rebuild the scripts for the final location by renaming
            # first, then marking complete only when the interpreter runs from there.
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
            self._fix_paths(tmp, target)
            (target / ".complete").write_text(key)
            sink(f"environment {key} ready")
        except DeployError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DeployError(e.message, phase="build", log="\n".join(lines)) from None
        finally:
            log_path.write_text("\n".join(lines) + "\n")

    def _run(self, argv: list[str], sink: Callable[[str], None]) -> None:
        env = {**os.environ, **self.options.environment(), "UV_CACHE_DIR": str(self.root / ".uv-cache"),
               "UV_LINK_MODE": "copy", "NO_COLOR": "1"}
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            sink(line.rstrip("\n"))
        if proc.wait() != 0:
            raise DeployError(Message("env.build_failed", "environment build failed: {command} exited with {code}",
                                      command=" ".join(argv[:3]), code=proc.returncode))

    @staticmethod
    def _fix_paths(old: Path, new: Path) -> None:
        """Rewrite the absolute build path in the venv's config and entry scripts."""
        for path in [new / "pyvenv.cfg", *(new / "bin").iterdir()]:
            if path.is_file() and not path.is_symlink():
                try:
                    text = path.read_text()
                except UnicodeDecodeError:
                    continue
                if str(old) in text:
                    path.write_text(text.replace(str(old), str(new)))
