"""Issue 14's pure parts, fast: results that read right (the headline is the top class, scores
named by their meaning, cached figures marked, a log axis for latencies apart by orders of
magnitude), the demo algorithms' scores and merged boxes, the defaults pages open on, the
template package, and the Chinese texts of every demo manifest."""
from __future__ import annotations

import importlib.util
import io
import itertools
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from app.catalog.manifest import load_manifest, validate_params
from app.catalog.sources import check_requirements
from app.history import LatencyBucket
from app.i18n import TEXTS, term
from app.showcase.runs import Column, RunResult, ServiceChoice, demo_order
from components.catalog_view import template_zip
from components.charts import latency_columns, score_bars, service_percentiles_figure, value_axis
from components.results import box_text, column_labels, params_text, score_name, top_class

ROOT = Path(__file__).resolve().parents[2]
ALGORITHMS = ROOT / "demo_data" / "algorithms"
PACKAGES = sorted(p.name for p in ALGORITHMS.iterdir() if (p / "algorithm.yaml").is_file())
FACE = load_manifest(ALGORITHMS / "face-detect")


def module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"t14_{path.parent.name.replace('-', '_')}", path)
    assert spec and spec.loader
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


# --- 3. the headline is the top class ------------------------------------------------------------------

def test_headline_is_the_top_class_and_the_label_only_breaks_ties() -> None:
    assert top_class("positive", {"positive": 0.43, "neutral": 0.57}) == "neutral"   # the finding's numbers
    assert top_class("positive", {"positive": 0.5, "neutral": 0.5}) == "positive"
    assert top_class("cat", {}) == "cat"


@pytest.mark.parametrize("name", ["sentiment-en", "sentiment-zh"])
def test_the_sentiment_labels_are_always_their_top_score(name: str) -> None:
    """Over a grid of model outputs and every threshold: label == argmax(scores) (ties to the label),
    scores sum to 1 and `score` is the label's."""
    classify = module(ALGORITHMS / name / "predict.py").classify
    values = [i / 20 for i in range(-20, 21)] if name == "sentiment-en" else [i / 20 for i in range(21)]
    for value, threshold, band in itertools.product(values, [0.0, 0.05, 0.3, 0.5, 0.95], [0.0, 0.1, 0.3]):
        out = classify({"compound": value, "pos": 0.2, "neu": 0.7, "neg": 0.1}, threshold) if name == "sentiment-en" \
            else classify(value, threshold, band)
        assert top_class(out["label"], out["scores"]) == out["label"], (value, threshold, band, out)
        assert out["score"] == out["scores"][out["label"]] and sum(out["scores"].values()) == pytest.approx(1.0)


def test_score_bars_highlight_the_headline() -> None:
    bars = score_bars({"positive": 0.9, "neutral": 0.1}, highlight="positive").data[0]
    assert list(bars.y) == ["neutral", "positive"] and bars.marker.color[1] != bars.marker.color[0]


# --- 4. merged boxes, scores that say what they are ------------------------------------------------------

def test_face_boxes_overlapping_a_better_box_are_merged() -> None:
    face = module(ALGORITHMS / "face-detect" / "predict.py")
    # messi5.jpg with both Haar cascades before the change: the face, and a box half over it
    boxes = [{"x": 225, "y": 94, "w": 38, "h": 38, "score": 14}, {"x": 244, "y": 62, "w": 85, "h": 85, "score": 9},
             {"x": 10, "y": 10, "w": 40, "h": 40, "score": 6}]
    assert face.overlap(boxes[0], boxes[1]) == pytest.approx(0.5)
    assert face.suppress(boxes, 0.3) == [boxes[0], boxes[2]]
    assert face.suppress(boxes, 1.0) == boxes           # 1 keeps every box
    assert FACE.params["nms_overlap"].default == 0.3 and FACE.score.kind == "neighbours"


def test_score_columns_and_labels_are_named_by_the_manifest() -> None:
    assert score_name(FACE) == "Score · neighbours" and score_name(None) == "Score"
    zh = FACE.localized("zh")
    assert zh.label("face") == "人脸" and FACE.label("face") == "face"
    columns = [Column("face-detect", {"model": m, "min_size": 30}) for m in ("haar_default", "lbp")]
    assert column_labels(columns, {"face-detect": FACE}) == ["1. face-detect · Model=Haar (default)",
                                                             "2. face-detect · Model=LBP (improved)"]
    assert column_labels(columns) == ["1. face-detect · model=haar_default", "2. face-detect · model=lbp"]
    assert params_text(FACE, {"equalize": True, "model": "lbp"}) == "Equalise histogram=yes, Model=LBP (improved)"
    assert box_text({"x": 1, "y": 2, "w": 30, "h": 40}) == "1, 2 · 30×40" and box_text({}) == "–, – · –×–"


# --- 7. cached figures marked ------------------------------------------------------------------------------

def test_cached_latencies_are_hatched_and_say_so() -> None:
    runs = [RunResult("a", "v1", "json", {}, "r", [{}], 12.0, 10.0, cached=True),
            RunResult("b", "v1", "json", {}, "r", [{}], 30.0, 25.0)]
    total, predict = latency_columns(["1. a", "2. b"], runs, total="Total", predict="Predict", cached="cached").data
    assert list(total.marker.pattern.shape) == ["/", ""] and list(total.text) == ["12.0 (cached)", "30.0"]
    assert list(predict.marker.pattern.shape) == ["/", ""]


# --- 9. latency per service ----------------------------------------------------------------------------------

def bucket(ms: float, minute: int) -> LatencyBucket:
    at = datetime(2026, 12, 1, 10, minute, tzinfo=timezone.utc)
    return LatencyBucket(at, timedelta(minutes=1), 3, ms, ms * 2, ms * 3, None, None, None)


def test_services_apart_by_orders_of_magnitude_get_a_log_axis() -> None:
    fig = service_percentiles_figure({"sentiment-en": [bucket(2, 0), bucket(3, 1)], "ocr": [bucket(7900, 0)]},
                                     quantile="p95", title="", log="对数坐标")
    assert [t.name for t in fig.data] == ["sentiment-en", "ocr"] and fig.layout.yaxis.type == "log"
    assert fig.layout.yaxis.title.text == "ms (对数坐标)"           # says so, in the page's language
    assert fig.layout.xaxis.tickformat == "%Y-%m-%d %H:%M"    # numeric dates: no English month names
    close = service_percentiles_figure({"a": [bucket(20, 0)], "b": [bucket(60, 0)]}, quantile="p50")
    assert close.layout.yaxis.type == "linear"
    assert value_axis([1.0], "ms")["type"] == "linear"


# --- 10. defaults and the template -------------------------------------------------------------------------

def choice(name: str, task: str, *, demo: bool, running: bool = True) -> ServiceChoice:
    manifest = load_manifest(ALGORITHMS / ("face-detect" if demo else "edges-canny"))
    return ServiceChoice(name, name, task, "v1", "RUNNING" if running else "STOPPED", {}, manifest)


def test_pages_open_on_a_service_whose_manifest_suggests_a_demo() -> None:
    ordered = demo_order([choice("edges-canny", "image.detection", demo=False),
                          choice("person-detect", "image.detection", demo=True, running=False),
                          choice("face-detect", "image.detection", demo=True)])
    assert [c.name for c in ordered] == ["face-detect", "person-detect", "edges-canny"]
    assert ordered[0].demo.input == "media/megamind-frame150.jpg" and len(ordered[0].demo.columns) == 3


@pytest.mark.parametrize("name", PACKAGES)
def test_demo_inputs_exist_in_the_gallery(name: str) -> None:
    demo = load_manifest(ALGORITHMS / name).demo
    if demo is None:
        return
    path, _, line = (demo.input or "").partition("#")
    source = ROOT / "demo_data" / path
    assert source.is_file(), demo.input
    if line:
        assert len([ln for ln in source.read_text(encoding="utf-8").splitlines() if ln.strip()]) >= int(line)
    assert 2 <= len(demo.columns) <= 4


def test_the_template_package_is_an_algorithm_the_platform_accepts(tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(template_zip())) as archive:
        archive.extractall(tmp_path)
    package = tmp_path / "algorithm-template"
    manifest = load_manifest(package)
    assert manifest.i18n["zh"].title and manifest.score and manifest.demo
    assert check_requirements((package / "requirements.txt").read_text(), allow_redirects=False) == []
    algorithm = module(package / "predict.py").Algorithm()
    algorithm.setup()
    (result,) = algorithm.predict([(package / manifest.samples[0]).read_text()], **validate_params(manifest, {}))
    assert result["label"] == "positive" == top_class(result["label"], result["scores"])


# --- 8. Chinese for every demo manifest, task and state ------------------------------------------------------

@pytest.mark.parametrize("name", PACKAGES)
def test_every_demo_manifest_speaks_chinese(name: str) -> None:
    raw = yaml.safe_load((ALGORITHMS / name / "algorithm.yaml").read_text(encoding="utf-8"))
    zh = load_manifest(ALGORITHMS / name).localized("zh")
    assert zh.title != raw["title"] and zh.description.strip() != raw["description"].strip()
    for pname, spec in zh.params.items():
        assert spec.label and spec.help != raw["params"][pname]["help"], pname
        assert spec.label != raw["params"][pname].get("label"), pname
    if zh.score:
        assert zh.score.help != raw["score"].get("help")


def test_tasks_and_states_have_names_in_both_languages() -> None:
    from app.catalog.manifest import Task
    from orchestration.runtime import ServiceState
    assert all(term("task", t.value, "zh") != t.value for t in Task)
    assert all(term("state", s.value, "zh") != s.value for s in ServiceState)
    assert term("task", "audio.tagging", "zh") == "audio.tagging"      # unknown: itself
    assert all(TEXTS[f"score.kind.{k}"]["zh"] for k in ("probability", "neighbours", "margin"))
