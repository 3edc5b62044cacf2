"""The four labelled dataset layouts, read from a folder and checked (DESIGN §10). Pure: files in,
items out; nothing is stored here.

Layouts, by task:
- `text.classification`, `image.classification`: `labels.csv` with the columns `input,label`.
  `input` is a file inside the dataset (images always; texts when it names a `.txt` file), or
  for text the text itself. An optional `classes.txt` (one label a line) is the set of labels.
- `image.detection`: images plus `annotations.json` in COCO format (`images`, `annotations` with
  `bbox` = [x, y, w, h] in pixels, `categories`).
- `text.ner`: `data.jsonl`, one `{"text": …, "entities": [{"start", "end", "type"}]}` a line;
  offsets are character offsets, `end` exclusive. An optional `types.txt` is the set of types.
- `image.ocr`: images plus `labels.csv` with the columns `input,text`.

Contract: `read_dataset(root, task)` returns a `Parsed` dataset, or raises ValidationFailed listing
every problem found (at most MAX_PROBLEMS), each with the file and line as its field
("labels.csv:7", "annotations.json:42") and the reason. Images must be JPEG or PNG (what every
runner decodes) and decode; boxes must lie inside their image.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from app import media
from app.errors import Message, Problem, ValidationFailed

TASKS = ("text.classification", "image.classification", "image.detection", "text.ner", "image.ocr")
MAX_PROBLEMS = 50
IMAGE_TYPES = ("image/jpeg", "image/png")
BOX_TOLERANCE = 0.5   # pixels a box may overhang its image (rounding in other tools' exports)


@dataclass(frozen=True)
class Item:
    """One labelled example. `text` is the input of a text task given inline, `file` the path of
    the input file inside the dataset (an image, or a text file); `target` the ground truth: a
    label (classification), {"boxes": […]} (detection), {"entities": […]} (NER) or a text (OCR)."""
    index: int
    ref: str
    target: Any
    text: str | None = None
    file: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "ref": self.ref, "target": self.target, "text": self.text, "file": self.file}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Item:
        return cls(data["index"], data["ref"], data["target"], data.get("text"), data.get("file"))


@dataclass
class Parsed:
    """A dataset read and checked: its items, its label set, and the files it is made of."""
    task: str
    items: list[Item]
    labels: list[str]
    files: list[str] = field(default_factory=list)


class _Problems:
    """Problems collected while reading; `field` is "file:line" (or the file alone)."""

    def __init__(self) -> None:
        self.found: list[Problem] = []

    def add(self, where: str, reason: str) -> None:
        if len(self.found) < MAX_PROBLEMS:
            self.found.append(Problem(where, reason))

    def raise_any(self) -> None:
        if self.found:
            raise ValidationFailed(self.found)


def _not_json(e: json.JSONDecodeError) -> Message:
    return Message("dataset.not_json", "not JSON: {error} (column {column})", error=e.msg, column=e.colno)


def read_dataset(root: Path, task: str) -> Parsed:
    """The dataset in folder `root` for `task`; ValidationFailed with every problem otherwise."""
    if task not in TASKS:
        raise ValidationFailed([Problem("task", Message("dataset.task_unknown", "{task!r} is not a dataset task; one of: {known}",
                                                    task=task, known=", ".join(TASKS)))])
    reader = {"text.classification": _classification, "image.classification": _classification,
              "image.detection": _detection, "text.ner": _ner, "image.ocr": _ocr}[task]
    problems = _Problems()
    parsed = reader(root, task, problems)
    if not parsed.items and not problems.found:
        problems.add(_main_file(task), Message("dataset.no_items", "no items"))
    problems.raise_any()
    return parsed


def _main_file(task: str) -> str:
    return {"image.detection": "annotations.json", "text.ner": "data.jsonl"}.get(task, "labels.csv")


# --- shared readers --------------------------------------------------------------------------------

def _text_file(root: Path, name: str, problems: _Problems, *, required: bool = True) -> str | None:
    path = root / name
    if not path.is_file():
        if required:
            problems.add(name, Message("dataset.file_needed", "missing: this task's dataset needs it"))
        return None
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        problems.add(name, Message("dataset.not_utf8_at", "not UTF-8 text ({reason} at byte {byte})", reason=e.reason,
                                     byte=e.start))
        return None


def _label_set(root: Path, name: str, problems: _Problems) -> list[str] | None:
    """The optional set of labels in `name` (one a line, blank lines skipped); None without the file."""
    text = _text_file(root, name, problems, required=False)
    if text is None:
        return None
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        problems.add(name, Message("dataset.classes_empty", "empty: list one label a line, or leave the file out"))
    return labels


def _csv_rows(text: str, name: str, columns: tuple[str, str], problems: _Problems) -> Iterator[tuple[int, str, str]]:
    """(line, first column, second column) of each row of a CSV with a header naming `columns`."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader, [])]
    except csv.Error as e:
        problems.add(f"{name}:1", Message("dataset.not_csv", "not CSV: {error}", error=str(e)))
        return
    if header[:2] != list(columns):
        problems.add(f"{name}:1", Message("dataset.csv_header", "the header must be {columns}, got {header}",
                                           columns=",".join(columns), header=",".join(header) or "nothing"))
        return
    line = reader.line_num
    try:
        for row in reader:
            start, line = line + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != 2:
                problems.add(f"{name}:{start}", Message("dataset.csv_columns", "{count} columns; expected 2 ({columns})",
                                                       count=len(row), columns=",".join(columns)))
                continue
            yield start, row[0], row[1]
    except csv.Error as e:
        problems.add(f"{name}:{line + 1}", Message("dataset.not_csv", "not CSV: {error}", error=str(e)))


def _inside(root: Path, rel: str) -> Path | None:
    """`rel` as a file inside `root`; None for absolute paths, `..`, or a file that is not there."""
    p = PurePosixPath(rel.strip())
    if not rel.strip() or p.is_absolute() or ".." in p.parts or "\\" in rel:
        return None
    path = root / p
    return path if path.is_file() else None


def _image_size(path: Path) -> tuple[int, int] | str:
    """(width, height) of a JPEG/PNG image file, or why it is refused."""
    data = path.read_bytes()
    if media.sniff(data) not in IMAGE_TYPES:
        return "not a JPEG or PNG image"
    try:
        image = media.decode_image(data)
    except media.MediaError as e:
        return str(e)
    return int(image.shape[1]), int(image.shape[0])


def _image_input(root: Path, rel: str, where: str, problems: _Problems) -> str | None:
    """The normalised path of the image `rel` inside `root`, or None (with a problem)."""
    path = _inside(root, rel)
    if path is None:
        problems.add(where, Message("dataset.no_file", "{file!r}: no such file in the dataset", file=rel))
        return None
    size = _image_size(path)
    if isinstance(size, str):
        problems.add(where, f"{rel!r}: {size}")
        return None
    return str(PurePosixPath(rel.strip()))


# --- classification ---------------------------------------------------------------------------------

def _classification(root: Path, task: str, problems: _Problems) -> Parsed:
    allowed = _label_set(root, "classes.txt", problems)
    text = _text_file(root, "labels.csv", problems)
    items: list[Item] = []
    files = ["labels.csv"] + (["classes.txt"] if allowed is not None else [])
    for line, raw_input, raw_label in _csv_rows(text or "", "labels.csv", ("input", "label"), problems):
        where, label = f"labels.csv:{line}", raw_label.strip()
        if not label:
            problems.add(where, Message("dataset.empty_label", "empty label"))
            continue
        if allowed is not None and label not in allowed:
            problems.add(where, Message("dataset.label_unknown", "label {label!r} is not in classes.txt ({known})", label=label,
                                          known=", ".join(allowed)))
            continue
        item = _classification_item(root, task, len(items), raw_input, label, where, problems)
        if item is not None:
            items.append(item)
            files += [item.file] if item.file else []
    labels = allowed if allowed is not None else sorted({str(i.target) for i in items})
    return Parsed(task, items, labels, list(dict.fromkeys(files)))


def _classification_item(root: Path, task: str, index: int, raw: str, label: str, where: str,
                         problems: _Problems) -> Item | None:
    if task == "image.classification":
        rel = _image_input(root, raw, where, problems)
        return None if rel is None else Item(index, rel, label, file=rel)
    if raw.strip().lower().endswith(".txt"):
        path = _inside(root, raw)
        if path is None:
            problems.add(where, Message("dataset.no_file", "{file!r}: no such file in the dataset", file=raw.strip()))
            return None
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            problems.add(where, Message("dataset.file_not_utf8", "{file!r}: not UTF-8 text", file=raw.strip()))
            return None
        rel = str(PurePosixPath(raw.strip()))
        return Item(index, rel, label, file=rel)
    if not raw.strip():
        problems.add(where, Message("dataset.empty_input", "empty input"))
        return None
    return Item(index, f"labels.csv:{where.rpartition(':')[2]}", label, text=raw)


# --- detection ----------------------------------------------------------------------------------------

def element_lines(text: str, key: str) -> list[int]:
    """The line (from 1) on which each element of the top-level JSON array `key` starts, found with
    the standard decoder value by value; [] when `text` is no object or has no such array."""
    decoder = json.JSONDecoder()
    pos = _skip(text, 0)
    if pos >= len(text) or text[pos] != "{":
        return []
    pos = _skip(text, pos + 1)
    while pos < len(text) and text[pos] == '"':
        name, pos = decoder.raw_decode(text, pos)
        pos = _skip(text, _skip(text, pos) + 1)            # past the colon
        if name == key and text.startswith("[", pos):
            return _array_lines(text, pos, decoder)
        _, pos = decoder.raw_decode(text, pos)
        pos = _skip(text, pos)
        pos = _skip(text, pos + 1) if text.startswith(",", pos) else pos
    return []


def _array_lines(text: str, pos: int, decoder: json.JSONDecoder) -> list[int]:
    lines, pos = [], _skip(text, pos + 1)
    while pos < len(text) and text[pos] != "]":
        lines.append(text.count("\n", 0, pos) + 1)
        _, pos = decoder.raw_decode(text, pos)
        pos = _skip(text, pos)
        pos = _skip(text, pos + 1) if text.startswith(",", pos) else pos
    return lines


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _detection(root: Path, task: str, problems: _Problems) -> Parsed:
    name = "annotations.json"
    text = _text_file(root, name, problems)
    if text is None:
        return Parsed(task, [], [])
    try:
        coco = json.loads(text)
    except json.JSONDecodeError as e:
        problems.add(f"{name}:{e.lineno}", _not_json(e))
        return Parsed(task, [], [])
    if not isinstance(coco, dict) or not all(isinstance(coco.get(k), list) for k in ("images", "categories")):
        problems.add(name, Message("dataset.coco_lists", "a COCO object needs the lists images, annotations and categories"))
        return Parsed(task, [], [])
    categories = _categories(coco["categories"], element_lines(text, "categories"), problems)
    images = _images(root, coco["images"], element_lines(text, "images"), problems)
    boxes = _annotations(coco.get("annotations") or [], element_lines(text, "annotations"), images, categories,
                         problems)
    items = [Item(i, img["file"], {"boxes": boxes.get(img_id, [])}, file=img["file"])
             for i, (img_id, img) in enumerate(images.items())]
    return Parsed(task, items, sorted(set(categories.values())), [name] + [i.file for i in items if i.file])


def _at(lines: list[int], i: int) -> str:
    return f"annotations.json:{lines[i]}" if i < len(lines) else "annotations.json"


def _categories(rows: list[Any], lines: list[int], problems: _Problems) -> dict[int, str]:
    found: dict[int, str] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("id"), int) or not str(row.get("name") or "").strip():
            problems.add(_at(lines, i), "a category needs an integer id and a name")
        elif row["id"] in found:
            problems.add(_at(lines, i), f"category id {row['id']} is used twice")
        else:
            found[row["id"]] = str(row["name"]).strip()
    return found


def _images(root: Path, rows: list[Any], lines: list[int], problems: _Problems) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        where = _at(lines, i)
        if not isinstance(row, dict) or not isinstance(row.get("id"), int) or not isinstance(row.get("file_name"), str):
            problems.add(where, "an image needs an integer id and a file_name")
            continue
        if row["id"] in found:
            problems.add(where, f"image id {row['id']} is used twice")
            continue
        path = _inside(root, row["file_name"])
        size = _image_size(path) if path else "no such file in the dataset"
        if isinstance(size, str):
            problems.add(where, f"{row['file_name']!r}: {size}")
            continue
        declared = (row.get("width"), row.get("height"))
        if None not in declared and tuple(declared) != size:
            problems.add(where, f"{row['file_name']!r} is {size[0]}x{size[1]} pixels, not {declared[0]}x{declared[1]}")
            continue
        found[row["id"]] = {"file": str(PurePosixPath(row["file_name"].strip())), "width": size[0], "height": size[1]}
    return found


def _annotations(rows: list[Any], lines: list[int], images: dict[int, dict[str, Any]], categories: dict[int, str],
                 problems: _Problems) -> dict[int, list[dict[str, Any]]]:
    boxes: dict[int, list[dict[str, Any]]] = {}
    for i, row in enumerate(rows):
        where = _at(lines, i)
        reason = _annotation_problem(row, images, categories)
        if reason:
            problems.add(where, reason)
            continue
        x, y, w, h = (float(v) for v in row["bbox"])
        boxes.setdefault(row["image_id"], []).append(
            {"x": x, "y": y, "w": w, "h": h, "label": categories[row["category_id"]]})
    return boxes


def _annotation_problem(row: Any, images: dict[int, dict[str, Any]], categories: dict[int, str]) -> str | None:
    if not isinstance(row, dict):
        return "an annotation must be an object"
    bbox = row.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
        return "bbox must be [x, y, width, height] in pixels"
    if row.get("category_id") not in categories:
        return f"category_id {row.get('category_id')!r} is not in categories"
    image = images.get(row.get("image_id"))   # type: ignore[arg-type]
    if image is None:
        return f"image_id {row.get('image_id')!r} is not in images (or its image was refused)"
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        return f"box {bbox} has no area"
    if x < -BOX_TOLERANCE or y < -BOX_TOLERANCE or x + w > image["width"] + BOX_TOLERANCE \
            or y + h > image["height"] + BOX_TOLERANCE:
        return f"box {bbox} lies outside its image ({image['file']}, {image['width']}x{image['height']})"
    return None


# --- NER ---------------------------------------------------------------------------------------------

def _ner(root: Path, task: str, problems: _Problems) -> Parsed:
    allowed = _label_set(root, "types.txt", problems)
    text = _text_file(root, "data.jsonl", problems)
    items: list[Item] = []
    for line, raw in enumerate((text or "").splitlines(), 1):
        if not raw.strip():
            continue
        where = f"data.jsonl:{line}"
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as e:
            problems.add(where, _not_json(e))
            continue
        entities = _entities(row, where, allowed, problems)
        if entities is not None:
            items.append(Item(len(items), where, {"entities": entities}, text=row["text"]))
    labels = allowed if allowed is not None else sorted({e["type"] for i in items for e in i.target["entities"]})
    return Parsed(task, items, labels, ["data.jsonl"] + (["types.txt"] if allowed is not None else []))


def _entities(row: Any, where: str, allowed: list[str] | None, problems: _Problems) -> list[dict[str, Any]] | None:
    if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"]:
        problems.add(where, Message("dataset.ner_line", 'each line needs {{"text": "…", "entities": [...]}} with a non-empty text'))
        return None
    if not isinstance(row.get("entities", []), list):
        problems.add(where, Message("dataset.entities_list", "entities must be a list"))
        return None
    out, ok = [], True
    for n, e in enumerate(row.get("entities", [])):
        reason = _entity_problem(e, len(row["text"]), allowed)
        if reason:
            problems.add(where, f"entity {n + 1}: {reason}")
            ok = False
        else:
            out.append({"start": e["start"], "end": e["end"], "type": e["type"], "text": row["text"][e["start"]:e["end"]]})
    return out if ok else None


def _entity_problem(e: Any, length: int, allowed: list[str] | None) -> str | None:
    if not isinstance(e, dict) or not all(isinstance(e.get(k), int) and not isinstance(e.get(k), bool)
                                          for k in ("start", "end")):
        return "needs integer start and end"
    if not isinstance(e.get("type"), str) or not e["type"].strip():
        return "needs a type"
    if not 0 <= e["start"] < e["end"] <= length:
        return f"span {e['start']}-{e['end']} is not inside the text (0-{length}, end exclusive)"
    if allowed is not None and e["type"] not in allowed:
        return f"type {e['type']!r} is not in types.txt ({', '.join(allowed)})"
    return None


# --- OCR ---------------------------------------------------------------------------------------------

def _ocr(root: Path, task: str, problems: _Problems) -> Parsed:
    text = _text_file(root, "labels.csv", problems)
    items: list[Item] = []
    for line, raw_input, raw_text in _csv_rows(text or "", "labels.csv", ("input", "text"), problems):
        rel = _image_input(root, raw_input, f"labels.csv:{line}", problems)
        if rel is not None:
            items.append(Item(len(items), rel, raw_text, file=rel))
    return Parsed(task, items, [], ["labels.csv"] + [i.file for i in items if i.file])
