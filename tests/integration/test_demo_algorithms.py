"""Every demo algorithm, in-process on its real samples: predict.py is imported from its package
folder, setup() runs once per module, and parameters go through the manifest's validation as the
runner does it. Results must have the task's shape, be plain JSON, be deterministic and be
plausibly right (known faces, people, names and text are found; blank images give nothing).
The libraries come from demo_data/requirements-demo.txt; a missing one fails with its name."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest

from app.catalog.manifest import Manifest, load_manifest, validate_params

ROOT = Path(__file__).resolve().parents[2]
ALGORITHMS = ROOT / "demo_data" / "algorithms"
PLAIN = (str, int, float, bool, type(None))


class Demo:
    """One demo package loaded in-process: its manifest, module and set-up Algorithm."""

    def __init__(self, name: str) -> None:
        self.dir = ALGORITHMS / name
        self.manifest: Manifest = load_manifest(self.dir)
        self.module = import_predict(name, self.dir / "predict.py")
        self.algorithm = self.module.Algorithm()
        self.algorithm.setup()

    def sample(self, index: int = 0) -> Any:
        path = self.dir / self.manifest.samples[index]
        if self.manifest.task.input_kind == "text":
            return path.read_text(encoding="utf-8").strip()
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert image is not None, path
        return image

    def samples(self) -> list[Any]:
        return [self.sample(i) for i in range(len(self.manifest.samples))]

    def run(self, inputs: list[Any], **params: Any) -> list[dict[str, Any]]:
        """predict() with the params validated and defaulted by the manifest; checks one result per input."""
        results = self.algorithm.predict(inputs, **validate_params(self.manifest, params))
        assert isinstance(results, list) and len(results) == len(inputs)
        for result in results:
            assert_plain_json(result)
        return results


def import_predict(name: str, path: Path) -> ModuleType:
    """predict.py under a module name of its own, so the packages' modules never collide."""
    spec = importlib.util.spec_from_file_location(f"demo_{name.replace('-', '_')}_predict", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as e:
        pytest.fail(f"{name} needs {e.name!r}: install demo_data/requirements-demo.txt into the test venv")
    return module


def assert_plain_json(value: Any) -> None:
    """Only dict/list/str/int/float/bool/None all the way down (no numpy scalars), and dumpable."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert type(k) is str, k
            assert_plain_json(v)
    elif isinstance(value, list):
        for v in value:
            assert_plain_json(v)
    else:
        assert type(value) in PLAIN, f"{value!r} is a {type(value).__name__}, not a plain JSON type"
    json.dumps(value)


def iou(a: dict[str, Any], b: tuple[int, int, int, int]) -> float:
    ax1, ay1, bx1, by1 = a["x"], a["y"], b[0], b[1]
    ax2, ay2, bx2, by2 = ax1 + a["w"], ay1 + a["h"], bx1 + b[2], by1 + b[3]
    inter = max(0, min(ax2, bx2) - max(ax1, bx1)) * max(0, min(ay2, by2) - max(ay1, by1))
    return inter / float(a["w"] * a["h"] + b[2] * b[3] - inter)


def assert_boxes(result: dict[str, Any], label: str, image: np.ndarray) -> None:
    height, width = image.shape[:2]
    for box in result["boxes"]:
        assert box["label"] == label
        assert box["w"] > 0 and box["h"] > 0
        assert 0 <= box["x"] and box["x"] + box["w"] <= width and 0 <= box["y"] and box["y"] + box["h"] <= height


def blank(width: int = 640, height: int = 480) -> np.ndarray:
    return np.full((height, width, 3), 128, np.uint8)


@pytest.fixture(scope="module")
def demos() -> dict[str, Demo]:
    return {}


@pytest.fixture(scope="module")
def load(demos):
    def get(name: str) -> Demo:
        if name not in demos:
            demos[name] = Demo(name)
        return demos[name]
    return get


# --- sentiment-zh ---------------------------------------------------------------------------------

def test_sentiment_zh_separates_positive_from_negative(load):
    demo = load("sentiment-zh")
    positive, negative = demo.run(demo.samples())
    assert positive["label"] == "positive" and positive["probability"] > 0.5
    assert negative["label"] == "negative" and negative["probability"] < 0.5
    for r in (positive, negative):
        assert set(r["scores"]) == {"positive", "neutral", "negative"}
        assert r["score"] == r["scores"][r["label"]] == max(r["scores"].values())   # the label is the top class
        assert sum(r["scores"].values()) == pytest.approx(1.0)
    assert demo.run(demo.samples()) == [positive, negative]


def test_sentiment_zh_threshold_and_neutral_band_move_the_label(load):
    demo = load("sentiment-zh")
    text = demo.sample(0)
    p = demo.run([text])[0]["probability"]
    raised = demo.run([text], threshold=min(1.0, p + 0.01), neutral_band=0.0)[0]
    assert raised["label"] == "negative" and raised["scores"]["negative"] == 1.0
    banded = demo.run([text], threshold=round(p, 2), neutral_band=0.2)[0]
    assert banded["label"] == "neutral" and banded["score"] == max(banded["scores"].values()) > 0.5


def test_sentiment_zh_batch_of_reviews_and_blank_text(load):
    demo = load("sentiment-zh")
    lines = [ln for ln in (ROOT / "demo_data/text/reviews-zh.txt").read_text(encoding="utf-8").splitlines() if ln]
    labels = [r["label"] for r in demo.run(lines + ["", "   "], neutral_band=0.0)]
    assert labels[:4] == ["positive", "negative", "positive", "negative"]
    assert len(labels) == len(lines) + 2


# --- sentiment-en ---------------------------------------------------------------------------------

def test_sentiment_en_labels_the_three_samples(load):
    demo = load("sentiment-en")
    positive, negative, neutral = demo.run(demo.samples())
    assert (positive["label"], negative["label"], neutral["label"]) == ("positive", "negative", "neutral")
    assert positive["compound"] > 0.5 and negative["compound"] < -0.5
    for r in (positive, negative, neutral):
        assert set(r["scores"]) == set(r["proportions"]) == {"positive", "neutral", "negative"}
        assert sum(r["scores"].values()) == pytest.approx(1.0)
        assert sum(r["proportions"].values()) == pytest.approx(1.0, abs=0.01)
        assert r["score"] == r["scores"][r["label"]] == max(r["scores"].values())   # the label is the top class


def test_sentiment_en_label_is_the_top_class_even_where_most_words_are_neutral(load):
    """The finding of issue 14: "positive 0.852" above bars where neutral (0.570) beat positive
    (0.430) — VADER's word proportions were shown as class scores."""
    demo = load("sentiment-en")
    (result,) = demo.run(["The new phone arrived on Monday and the camera is excellent."])
    assert result["label"] == "positive" and result["proportions"]["neutral"] > result["proportions"]["positive"]
    assert max(result["scores"], key=result["scores"].get) == "positive"


def test_sentiment_en_threshold_turns_weak_sentiment_neutral(load):
    demo = load("sentiment-en")
    text = "The coffee was fine."
    compound = demo.run([text])[0]["compound"]
    assert 0.05 <= compound < 0.9
    assert demo.run([text], threshold=0.05)[0]["label"] == "positive"
    weak = demo.run([text], threshold=0.9)[0]
    assert weak["label"] == "neutral" and max(weak["scores"], key=weak["scores"].get) == "neutral"


# --- ner-zh ---------------------------------------------------------------------------------------

def entity_set(result: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["text"], e["type"]) for e in result["entities"]}


def test_ner_zh_finds_people_places_and_organisations_with_exact_offsets(load):
    demo = load("ner-zh")
    texts = demo.samples()
    results = demo.run(texts)
    assert {("北京", "LOCATION"), ("上海", "LOCATION"), ("张伟", "PERSON"), ("清华大学", "ORGANIZATION"),
            ("复旦大学", "ORGANIZATION")} <= entity_set(results[0])
    assert {("李强", "PERSON"), ("联合国", "ORGANIZATION")} <= entity_set(results[1])
    for text, result in zip(texts, results):
        for e in result["entities"]:
            assert text[e["start"]:e["end"]] == e["text"]
        starts = [e["start"] for e in result["entities"]]
        assert starts == sorted(starts)


def test_ner_zh_type_switches_and_min_length(load):
    demo = load("ner-zh")
    text = demo.sample(0)
    people = demo.run([text], include_location=False, include_org=False)[0]
    assert {e["type"] for e in people["entities"]} == {"PERSON"}
    long_only = demo.run([text], min_length=3)[0]
    assert all(len(e["text"]) >= 3 for e in long_only["entities"]) and ("清华大学", "ORGANIZATION") in entity_set(long_only)
    assert demo.run([text], include_person=False, include_location=False, include_org=False)[0] == {"entities": []}


def test_ner_zh_hmm_finds_names_missing_from_the_dictionary(load):
    demo = load("ner-zh")
    text = "马云昨天在杭州出席了浙江大学举办的创新论坛。"
    assert ("马云", "PERSON") in entity_set(demo.run([text], hmm=True)[0])
    assert ("马云", "PERSON") not in entity_set(demo.run([text], hmm=False)[0])
    assert demo.run([""]) == [{"entities": []}]


# --- face-detect ----------------------------------------------------------------------------------

MESSI_FACE = (225, 94, 38, 38)
MEGAMIND_FACE = (253, 245, 102, 102)


@pytest.mark.parametrize("model", ["haar_default", "haar_alt2"])
def test_face_detect_finds_the_players_face(load, model):
    demo = load("face-detect")
    image = demo.sample(0)
    result = demo.run([image], model=model)[0]
    assert_boxes(result, "face", image)
    assert max(iou(b, MESSI_FACE) for b in result["boxes"]) > 0.5, result
    scores = [b["score"] for b in result["boxes"]]
    assert scores == sorted(scores, reverse=True)


def test_face_detect_lbp_finds_the_animated_face(load):
    demo = load("face-detect")
    image = demo.sample(1)
    result = demo.run([image], model="lbp")[0]
    assert max(iou(b, MEGAMIND_FACE) for b in result["boxes"]) > 0.5, result


def test_face_detect_finds_nothing_on_blank_images_and_respects_min_size(load):
    demo = load("face-detect")
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for model in ("haar_default", "haar_alt2", "lbp"):
        assert demo.run([blank(), noise], model=model) == [{"boxes": []}, {"boxes": []}]
    big_only = demo.run([demo.sample(0)], min_size=60)[0]
    assert all(b["w"] >= 60 and iou(b, MESSI_FACE) < 0.5 for b in big_only["boxes"])


def test_face_detect_batch_is_deterministic(load):
    demo = load("face-detect")
    first = demo.run(demo.samples())
    assert first == demo.run(demo.samples())
    assert demo.run([cv2.cvtColor(demo.sample(0), cv2.COLOR_BGR2GRAY)]) == first[:1]


# --- person-detect --------------------------------------------------------------------------------

WALKER = (369, 219, 59, 118)   # the man in the middle of frame 250 of vtest.avi


def test_person_detect_finds_pedestrians(load):
    demo = load("person-detect")
    image = demo.sample(0)
    result = demo.run([image])[0]
    assert_boxes(result, "person", image)
    assert len(result["boxes"]) >= 4, result
    assert max(iou(b, WALKER) for b in result["boxes"]) > 0.6
    assert demo.run([image]) == [result]


def test_person_detect_params_change_the_result(load):
    demo = load("person-detect")
    image = demo.sample(0)
    default = demo.run([image])[0]["boxes"]
    assert len(demo.run([image], resize_width=640)[0]["boxes"]) < len(default)
    sure = demo.run([image], hit_threshold=2.0)[0]["boxes"]
    assert 0 < len(sure) < len(default) and all(b["score"] > 2.0 for b in sure)
    loose = demo.run([image], hit_threshold=-0.5)[0]["boxes"]   # negative SVM scores reach NMS
    assert len(loose) >= len(default)


def test_person_detect_blank_and_original_size(load):
    demo = load("person-detect")
    assert demo.run([blank()]) == [{"boxes": []}]
    image = demo.sample(0)
    native = demo.run([image], resize_width=0)[0]
    assert_boxes(native, "person", image)


# --- ocr-rapid ------------------------------------------------------------------------------------

def test_ocr_reads_chinese_and_english_text(load):
    demo = load("ocr-rapid")
    images = demo.samples()
    sign, page = demo.run(images)
    sign_text = [ln["text"] for ln in sign["lines"]]
    assert "北京市图书馆" in sign_text and "Beijing Library" in sign_text, sign_text
    page_text = " ".join(ln["text"] for ln in page["lines"])
    assert "In teaching our courses" in page_text and len(page["lines"]) >= 10, page_text
    for image, result in zip(images, (sign, page)):
        height, width = image.shape[:2]
        for line in result["lines"]:
            assert 0.5 <= line["score"] <= 1.0 and line["text"].strip()
            assert len(line["polygon"]) == 4
            box = line["box"]
            assert box["w"] > box["h"] > 0
            assert all(box["x"] <= x <= box["x"] + box["w"] and box["y"] <= y <= box["y"] + box["h"]
                       for x, y in line["polygon"])
            assert 0 <= box["x"] and box["x"] + box["w"] <= width + 2 and box["y"] + box["h"] <= height + 2


def test_ocr_text_score_filters_lines_and_blank_gives_nothing(load):
    demo = load("ocr-rapid")
    sign = demo.sample(0)
    everything, strict = demo.run([sign], text_score=0.0)[0], demo.run([sign], text_score=0.999)[0]
    assert 0 < len(strict["lines"]) < len(everything["lines"])
    assert all(ln["score"] >= 0.999 for ln in strict["lines"])
    assert demo.run([blank()]) == [{"lines": []}]


# --- edges-canny ----------------------------------------------------------------------------------

def test_canny_thresholds_change_edges_and_boxes(load):
    demo = load("edges-canny")
    image = demo.sample(0)
    low = demo.run([image], threshold1=20, threshold2=60)[0]
    high = demo.run([image], threshold1=200, threshold2=400)[0]
    assert low["edge_ratio"] > 2 * high["edge_ratio"] > 0
    assert low["boxes"] != high["boxes"]
    for result in (low, high):
        assert_boxes(result, "contour", image)
        areas = [b["area"] for b in result["boxes"]]
        assert areas == sorted(areas, reverse=True) and len(areas) <= 20


def test_canny_aperture_blur_and_max_boxes(load):
    demo = load("edges-canny")
    image = demo.sample(1)
    base = demo.run([image])[0]
    assert demo.run([image], aperture="5")[0]["edge_ratio"] > base["edge_ratio"]   # string from a query
    assert demo.run([image], blur=0)[0]["edge_ratio"] > demo.run([image], blur=9)[0]["edge_ratio"]
    few = demo.run([image], max_boxes=3)[0]
    assert few["boxes"] == base["boxes"][:3] and few["contours"] == base["contours"] > 3
    assert demo.run([blank()]) == [{"boxes": [], "edge_ratio": 0.0, "contours": 0}]
    assert demo.run(demo.samples()) == demo.run(demo.samples())


def test_every_demo_runs_its_first_sample_like_the_smoke_test(load):
    """The deploy smoke test calls /predict on the first sample with default params."""
    for name in sorted(p.name for p in ALGORITHMS.iterdir() if p.is_dir()):
        demo = load(name)
        result = demo.run([demo.sample(0)])[0]
        key = {"text.classification": "label", "text.ner": "entities", "image.detection": "boxes",
               "image.ocr": "lines"}[demo.manifest.task.value]
        assert result[key], f"{name}: empty result on its own first sample: {result}"
