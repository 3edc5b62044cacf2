"""The demo catalog (demo_data/algorithms) is well formed: every package has its files, a
manifest the platform accepts, sane parameter defaults, pinned requirements that the upload check
accepts, and demo_data/requirements-demo.txt is their union without clashing with the platform's pins.
Fast: nothing here imports an algorithm's libraries (tests/integration/test_demo_algorithms.py does)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from app.catalog.manifest import load_manifest, validate_params
from app.catalog.sources import check_requirements

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo_data"
ALGORITHMS = DEMO / "algorithms"
EXPECTED_TASKS = {
    "sentiment-zh": "text.classification",
    "sentiment-en": "text.classification",
    "ner-zh": "text.ner",
    "face-detect": "image.detection",
    "person-detect": "image.detection",
    "ocr-rapid": "image.ocr",
    "edges-canny": "image.detection",
}
PACKAGES = sorted(p.name for p in ALGORITHMS.iterdir() if p.is_dir()) if ALGORITHMS.is_dir() else []
PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([A-Za-z0-9.+!-]+)$")
SAMPLE_SUFFIXES = {"text": {".txt"}, "image": {".jpg", ".jpeg", ".png"}}


def pins(path: Path) -> dict[str, str]:
    """Normalised package name -> pinned version for every requirement line; fails on an unpinned one."""
    out: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-r "):
            continue
        m = PIN_RE.match(line)
        assert m, f"{path.relative_to(ROOT)}: {raw!r} is not pinned with =="
        out[re.sub(r"[-_.]+", "-", m[1]).lower()] = m[3]
    return out


def test_the_whole_catalog_is_there():
    assert set(EXPECTED_TASKS) <= set(PACKAGES), f"missing: {set(EXPECTED_TASKS) - set(PACKAGES)}"


@pytest.mark.parametrize("name", PACKAGES)
def test_package_has_its_files(name):
    package = ALGORITHMS / name
    for file in ("algorithm.yaml", "predict.py", "requirements.txt", "README.md"):
        assert (package / file).is_file(), f"{name}/{file} is missing"
    assert "licen" in (package / "README.md").read_text(encoding="utf-8").lower(), f"{name}: README names no licence"


@pytest.mark.parametrize("name", PACKAGES)
def test_manifest_is_accepted_by_the_platform(name):
    manifest = load_manifest(ALGORITHMS / name)
    assert manifest.name == name
    assert manifest.entrypoint == "predict:Algorithm"
    assert manifest.task.value == EXPECTED_TASKS.get(name, manifest.task.value)
    assert manifest.replicas == 1
    assert manifest.resources.cpus and manifest.resources.memory_mb
    assert 1 <= len(manifest.samples) <= 3
    assert manifest.title.strip() and manifest.description.strip()
    assert manifest.params, f"{name} has no parameters to show in the Showcase form"


@pytest.mark.parametrize("name", PACKAGES)
def test_samples_exist_and_suit_the_task(name):
    manifest = load_manifest(ALGORITHMS / name)
    for sample in manifest.samples:
        path = ALGORITHMS / name / sample
        assert path.is_file() and path.stat().st_size > 0, sample
        assert path.suffix.lower() in SAMPLE_SUFFIXES[manifest.task.input_kind], sample


@pytest.mark.parametrize("name", PACKAGES)
def test_param_defaults_lie_within_their_bounds(name):
    """Checked on the raw YAML too, independently of the manifest module."""
    data = yaml.safe_load((ALGORITHMS / name / "algorithm.yaml").read_text(encoding="utf-8"))
    for pname, spec in data["params"].items():
        default, kind = spec["default"], spec["type"]
        assert kind in {"int", "float", "bool", "enum", "string"}, (pname, kind)
        if kind == "enum":
            assert default in spec["choices"], (pname, default)
        if kind == "int":
            assert isinstance(default, int) and not isinstance(default, bool), (pname, default)
        if kind == "bool":
            assert isinstance(default, bool), (pname, default)
        if kind in ("int", "float"):
            assert "min" in spec and "max" in spec, f"{name}.{pname} needs min and max for a slider"
            assert spec["min"] <= default <= spec["max"], (pname, default)
        if kind == "float":
            assert spec.get("step"), f"{name}.{pname} needs a step"
        assert spec.get("help"), f"{name}.{pname} has no help text"


@pytest.mark.parametrize("name", PACKAGES)
def test_validated_defaults_match_the_yaml(name):
    data = yaml.safe_load((ALGORITHMS / name / "algorithm.yaml").read_text(encoding="utf-8"))
    defaults = validate_params(load_manifest(ALGORITHMS / name), {})
    assert defaults == {p: spec["default"] for p, spec in data["params"].items()}


@pytest.mark.parametrize("name", PACKAGES)
def test_requirements_are_pinned_and_pass_the_upload_check(name):
    path = ALGORITHMS / name / "requirements.txt"
    assert pins(path), f"{name} has no requirements"
    assert check_requirements(path.read_text(encoding="utf-8"), allow_redirects=False) == []


def test_demo_requirements_are_the_union_of_the_packages():
    union: dict[str, str] = {}
    for name in PACKAGES:
        for pkg, version in pins(ALGORITHMS / name / "requirements.txt").items():
            assert union.setdefault(pkg, version) == version, f"{pkg} pinned twice differently ({name})"
    assert pins(DEMO / "requirements-demo.txt") == union


def test_demo_requirements_agree_with_the_platform_pins():
    platform = pins(ROOT / "requirements.txt")
    demo = pins(DEMO / "requirements-demo.txt")
    clashes = {p: (v, platform[p]) for p, v in demo.items() if p in platform and platform[p] != v}
    assert clashes == {}
    # the GUI build would overwrite the headless cv2 the platform pins
    assert "opencv-python" not in demo


def test_demo_media_and_attribution():
    media = DEMO / "media"
    sources = (media / "SOURCES.md").read_text(encoding="utf-8")
    files = [p for p in media.iterdir() if p.suffix.lower() in {".jpg", ".png", ".avi"}]
    assert {"vtest.avi", "Megamind.avi", "messi5.jpg", "imageTextN.png"} <= {p.name for p in files}
    for p in files:
        assert p.name in sources, f"{p.name} has no attribution in SOURCES.md"
    assert "Apache License" in (media / "LICENSE-opencv-samples.txt").read_text(encoding="utf-8")


def test_demo_texts_have_chinese_and_english_lines():
    texts = {p.name: [ln for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
             for p in (DEMO / "text").glob("*.txt")}
    assert len(texts.get("news-zh.txt", [])) >= 3 and len(texts.get("news-en.txt", [])) >= 3
    assert all(re.search(r"[\u4e00-\u9fff]", ln) for ln in texts["news-zh.txt"])
    assert any("北京" in ln for ln in texts["news-zh.txt"])
