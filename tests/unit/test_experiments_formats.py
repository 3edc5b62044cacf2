"""Dataset layouts: good datasets read into items; every kind of mistake is refused with the file
and the line it is on (app.experiments.formats)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.errors import ValidationFailed
from app.experiments.formats import element_lines, read_dataset


def image(path: Path, w: int = 64, h: int = 48, ext: str = ".png") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(ext, np.full((h, w, 3), 127, np.uint8))
    assert ok
    path.write_bytes(data.tobytes())


def write(root: Path, name: str, text: str) -> Path:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text, encoding="utf-8")
    return root


def problems(root: Path, task: str) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as e:
        read_dataset(root, task)
    return {p.field: p.reason for p in e.value.problems}


# --- classification ---------------------------------------------------------------------------------

def test_text_classification_reads_inline_texts_and_text_files(tmp_path):
    write(tmp_path, "texts/a.txt", "from a file\n")
    write(tmp_path, "labels.csv", 'input,label\n"great, really",positive\ntexts/a.txt,neutral\n\nawful,negative\n')
    parsed = read_dataset(tmp_path, "text.classification")
    assert [(i.text, i.file, i.target) for i in parsed.items] == [
        ("great, really", None, "positive"), (None, "texts/a.txt", "neutral"), ("awful", None, "negative")]
    assert parsed.labels == ["negative", "neutral", "positive"]
    assert parsed.items[0].ref == "labels.csv:2" and parsed.items[2].ref == "labels.csv:5"
    assert set(parsed.files) == {"labels.csv", "texts/a.txt"}


def test_classification_mistakes_name_file_and_line(tmp_path):
    write(tmp_path, "classes.txt", "cat\ndog\n")
    image(tmp_path / "img" / "ok.png")
    write(tmp_path, "img/notes.png", "this is text, not an image")
    write(tmp_path, "labels.csv", "input,label\nimg/ok.png,cat\nimg/ok.png,cta\nimg/missing.png,dog\n"
                                  "img/notes.png,dog\nimg/ok.png,\nimg/ok.png,cat,extra\n../etc/passwd,cat\n")
    found = problems(tmp_path, "image.classification")
    assert "not in classes.txt" in found["labels.csv:3"] and "'cta'" in found["labels.csv:3"]
    assert "no such file" in found["labels.csv:4"]
    assert "not a JPEG or PNG" in found["labels.csv:5"]
    assert found["labels.csv:6"] == "empty label"
    assert "3 columns" in found["labels.csv:7"]
    assert "no such file" in found["labels.csv:8"]
    assert "labels.csv:2" not in found


def test_classification_needs_its_csv_with_the_right_header(tmp_path):
    assert "missing" in problems(tmp_path, "text.classification")["labels.csv"]
    write(tmp_path, "labels.csv", "text,class\nhello,a\n")
    assert "header must be input,label" in problems(tmp_path, "text.classification")["labels.csv:1"]
    write(tmp_path, "labels.csv", "input,label\n")
    assert problems(tmp_path, "text.classification") == {"labels.csv": "no items"}
    (tmp_path / "labels.csv").write_bytes(b"input,label\n\xff\xfe,a\n")
    assert "not UTF-8" in problems(tmp_path, "text.classification")["labels.csv"]


def test_an_unknown_task_is_refused(tmp_path):
    assert "not a dataset task" in problems(tmp_path, "audio.transcription")["task"]


# --- detection --------------------------------------------------------------------------------------

def coco(images: list, annotations: list, categories: list | None = None) -> str:
    """Pretty-printed as tools write it: one element per few lines."""
    return json.dumps({"images": images, "annotations": annotations,
                       "categories": categories if categories is not None else [{"id": 1, "name": "face"}]}, indent=2)


def test_detection_reads_boxes_by_image(tmp_path):
    image(tmp_path / "a.png", 100, 80)
    image(tmp_path / "b.jpg", 50, 50, ".jpg")
    write(tmp_path, "annotations.json", coco(
        [{"id": 7, "file_name": "a.png", "width": 100, "height": 80}, {"id": 9, "file_name": "b.jpg"}],
        [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 10, 20, 30]},
         {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 100, 80]}]))
    parsed = read_dataset(tmp_path, "image.detection")
    assert [i.file for i in parsed.items] == ["a.png", "b.jpg"]
    assert parsed.items[0].target["boxes"][0] == {"x": 10.0, "y": 10.0, "w": 20.0, "h": 30.0, "label": "face"}
    assert len(parsed.items[0].target["boxes"]) == 2 and parsed.items[1].target == {"boxes": []}
    assert parsed.labels == ["face"]


def test_detection_mistakes_name_the_line_of_the_element(tmp_path):
    image(tmp_path / "a.png", 100, 80)
    text = coco([{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "gone.png"},
                 {"id": 3, "file_name": "a.png", "width": 10, "height": 10}, {"id": 1, "file_name": "a.png"}],
                [{"image_id": 1, "category_id": 1, "bbox": [90, 10, 20, 20]},
                 {"image_id": 1, "category_id": 5, "bbox": [1, 1, 2, 2]},
                 {"image_id": 42, "category_id": 1, "bbox": [1, 1, 2, 2]},
                 {"image_id": 1, "category_id": 1, "bbox": [1, 1, 0, 2]},
                 {"image_id": 1, "category_id": 1, "bbox": [1, 1]}])
    write(tmp_path, "annotations.json", text)
    lines = text.splitlines()

    def line_of(fragment: str, nth: int = 0) -> str:
        hits = [n for n, line in enumerate(lines, 1) if fragment in line]
        return f"annotations.json:{hits[nth] - 1}"     # the element starts on the line of its "{"
    found = problems(tmp_path, "image.detection")
    assert "outside its image" in found[line_of('"image_id": 1', 0)]
    assert "category_id 5 is not in categories" in found[line_of('"image_id": 1', 1)]
    assert "image_id 42 is not in images" in found[line_of('"image_id": 42')]
    assert "no area" in found[line_of('"image_id": 1', 2)]
    assert "bbox must be" in found[line_of('"image_id": 1', 3)]
    assert "no such file" in found[line_of('"id": 2')]
    assert "100x80 pixels, not 10x10" in found[line_of('"id": 3')]
    assert "used twice" in found[line_of('"id": 1,', 1)]


def test_detection_json_syntax_error_has_its_line(tmp_path):
    write(tmp_path, "annotations.json", '{\n  "images": [],\n  "annotations": [,]\n}')
    found = problems(tmp_path, "image.detection")
    assert list(found) == ["annotations.json:3"] and "not JSON" in found["annotations.json:3"]


def test_element_lines_finds_each_element_of_a_top_level_array():
    text = '{"a": {"annotations": [9]},\n "annotations": [\n  {"x": "]"},\n  [1,\n 2], 3\n]}'
    assert element_lines(text, "annotations") == [3, 4, 5]
    assert element_lines(text, "missing") == [] and element_lines("[1, 2]", "a") == []


# --- NER and OCR ------------------------------------------------------------------------------------

def test_ner_reads_spans_and_refuses_bad_lines(tmp_path):
    good = {"text": "Alice met Bob", "entities": [{"start": 0, "end": 5, "type": "PER"}, {"start": 10, "end": 13,
                                                                                         "type": "PER"}]}
    write(tmp_path, "data.jsonl", json.dumps(good) + "\n")
    parsed = read_dataset(tmp_path, "text.ner")
    assert parsed.items[0].target["entities"][1]["text"] == "Bob" and parsed.labels == ["PER"]
    write(tmp_path, "types.txt", "PER\nLOC\n")
    bad = [good, {"text": "x", "entities": [{"start": 0, "end": 5, "type": "PER"}]}, "{not json",
           {"text": "Paris", "entities": [{"start": 0, "end": 5, "type": "CITY"}]}, {"entities": []},
           {"text": "Oslo", "entities": [{"start": "0", "end": 4, "type": "LOC"}]}]
    write(tmp_path, "data.jsonl", "\n".join(b if isinstance(b, str) else json.dumps(b) for b in bad) + "\n")
    found = problems(tmp_path, "text.ner")
    assert "not inside the text" in found["data.jsonl:2"]
    assert "not JSON" in found["data.jsonl:3"]
    assert "not in types.txt" in found["data.jsonl:4"]
    assert "non-empty text" in found["data.jsonl:5"]
    assert "integer start and end" in found["data.jsonl:6"]
    assert "data.jsonl:1" not in found


def test_ocr_reads_images_and_texts(tmp_path):
    image(tmp_path / "a.png")
    write(tmp_path, "labels.csv", "input,text\na.png,HELLO WORLD\nb.png,missing\n")
    assert "no such file" in problems(tmp_path, "image.ocr")["labels.csv:3"]
    write(tmp_path, "labels.csv", "input,text\na.png,HELLO WORLD\n")
    parsed = read_dataset(tmp_path, "image.ocr")
    assert parsed.items[0].target == "HELLO WORLD" and parsed.items[0].file == "a.png"
