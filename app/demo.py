"""The demo catalog: demo media seeded into the object store, demo algorithms uploaded and
deployed, so a newcomer lands on a working showcase. Every step is idempotent: what is already
there is left alone, and one algorithm that fails to deploy does not stop the others."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.auth import Actor
from app.platform import Platform
from app.storage import DEMO_BUCKET, seed
from app.errors import AlgoStageError, ValidationFailed

DEMO_ROOT = Path(__file__).resolve().parent.parent / "demo_data"
DEMO_KEY = "demo"


@dataclass
class DemoReport:
    seeded: list[str] = field(default_factory=list)      # object keys written
    uploaded: list[str] = field(default_factory=list)    # algorithms uploaded now
    deployed: list[str] = field(default_factory=list)    # services deployed now
    running: list[str] = field(default_factory=list)     # services that already existed
    failed: dict[str, str] = field(default_factory=dict)  # algorithm -> why
    key: str | None = None                                 # the demo API key, when created now

    @property
    def ok(self) -> bool:
        return not self.failed


def demo_packages(root: Path = DEMO_ROOT / "algorithms") -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "algorithm.yaml").is_file())


def seed_media(platform: Platform, root: Path = DEMO_ROOT) -> list[str]:
    """Demo images, videos and texts into the demo bucket (`media/…`, `text/…`); idempotent."""
    written = [f"media/{k}" for k in seed(platform.objects, root / "media", DEMO_BUCKET, prefix="media/")]
    written += [f"text/{k}" for k in seed(platform.objects, root / "text", DEMO_BUCKET, prefix="text/")]
    return written


def install(platform: Platform, actor: Actor, *, deploy: bool = True,
            progress: Callable[[str], None] = lambda line: None,
            packages: list[Path] | None = None) -> DemoReport:
    """Seed media, upload the demo algorithms that are not in the catalog, deploy those without a service."""
    report = DemoReport(seeded=seed_media(platform))
    known = {a.name for a in platform.catalog.list(actor)}
    services = set(platform.services.all_names(actor))
    for package in packages or demo_packages():
        name = _upload(platform, actor, package, known, report, progress)
        if name is None or not deploy:
            continue
        if name in services:
            report.running.append(name)
            continue
        _deploy(platform, actor, name, report, progress)
    report.key = demo_key(platform, actor)
    return report


def demo_key(platform: Platform, actor: Actor) -> str | None:
    """A key `demo` for every service, created once (None when it exists: keys are shown once)."""
    if any(k.name == DEMO_KEY for k in platform.keys.list(actor)):
        return None
    return platform.keys.create(actor, DEMO_KEY).key


def _upload(platform: Platform, actor: Actor, package: Path, known: set[str], report: DemoReport,
            progress: Callable[[str], None]) -> str | None:
    from app.catalog.manifest import load_manifest
    name = load_manifest(package).name
    if name in known:
        return name
    try:
        platform.catalog.upload(actor, str(package), message="demo catalog")
    except ValidationFailed as e:
        report.failed[name] = f"upload: {e}"
        return None
    report.uploaded.append(name)
    progress(f"uploaded {name}")
    return name


def _deploy(platform: Platform, actor: Actor, name: str, report: DemoReport,
            progress: Callable[[str], None]) -> None:
    from app.services.deployer import DeployRequest
    progress(f"deploying {name} …")
    try:
        result = platform.deployer.deploy(actor, DeployRequest(name, health_timeout=300))
    except AlgoStageError as e:
        report.failed[name] = f"deploy: {e}"
        progress(f"{name} failed: {e}")
        return
    report.deployed.append(name)
    progress(f"{name} is healthy at {' '.join(result.urls)}")
