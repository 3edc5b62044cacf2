"""Sweeps on real deployed services with two replicas (supervisor runtime, the real runner), over
labelled datasets whose correct metrics each test works out on its own: classification, detection
and NER, every metric checked; the result cache, sampled recording, confirmation, refusals before
any call, and bad datasets refused with their file and line.

The fixture algorithms are written here, each deterministic, so that a test knows what every
configuration answers on every item without asking the service."""
from __future__ import annotations

import json
import re
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import func, select

from app.errors import PermissionDenied, ValidationFailed
from app.experiments.runner import STOP_AFTER_FAILURES
from app.experiments.space import Space
from app.experiments.sweeps import ConfirmationNeeded
from app.i18n import say
from app.models import AlgorithmCall, Dataset, Experiment, ExperimentItem
from app.platform import Platform
from app.services.deployer import DeployRequest
from tests.conftest import ADMIN, OPERATOR, ROOT, VIEWER, service_platform

pytestmark = pytest.mark.timeout(900)

BRIGHT_BOX = '''
"""Fixture: the bounding box of the pixels brighter than `threshold`, grown by `pad` pixels (clipped
to the image); its score is the brightest pixel / 255. Nothing when no pixel is that bright."""
import numpy as np


class Algorithm:
    def predict(self, inputs, threshold, pad):
        return [self._one(image, threshold, pad) for image in inputs]

    def _one(self, image, threshold, pad):
        grey = image.max(axis=2)
        ys, xs = np.nonzero(grey > threshold)
        if not len(xs):
            return {"boxes": []}
        h, w = grey.shape
        x0, y0 = max(0, int(xs.min()) - pad), max(0, int(ys.min()) - pad)
        x1, y1 = min(w, int(xs.max()) + 1 + pad), min(h, int(ys.max()) + 1 + pad)
        return {"boxes": [{"x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0, "label": "box",
                           "score": float(grey.max()) / 255}]}
'''
BRIGHT_BOX_YAML = '''
name: bright-box
title: Bright box (fixture)
task: image.detection
params:
  threshold: {type: int, default: 150, min: 0, max: 255}
  pad: {type: int, default: 0, min: 0, max: 20}
samples: [samples/a.png]
'''
CAPS_NER = '''
"""Fixture: capitalised words are entities (runs of them joined into one with `join`); places named
in PLACES are LOC, the rest PER; entities shorter than `min_length` characters are dropped."""
import re

PLACES = {"Paris", "London", "New York", "Berlin"}


class Algorithm:
    def predict(self, inputs, join, min_length):
        pattern = r"[A-Z][a-z]+(?: [A-Z][a-z]+)*" if join else r"[A-Z][a-z]+"
        return [{"entities": [{"text": m.group(), "start": m.start(), "end": m.end(),
                               "type": "LOC" if m.group() in PLACES else "PER"}
                              for m in re.finditer(pattern, text) if len(m.group()) >= min_length]}
                for text in inputs]
'''
CAPS_NER_YAML = '''
name: caps-ner
title: Capitalised words (fixture)
task: text.ner
params:
  join: {type: bool, default: true}
  min_length: {type: int, default: 1, min: 1, max: 10}
samples: [samples/a.txt]
'''


def package(tmp: Path, name: str, manifest: str, code: str, sample: tuple[str, bytes]) -> Path:
    pkg = tmp / name
    (pkg / "samples").mkdir(parents=True)
    (pkg / "algorithm.yaml").write_text(textwrap.dedent(manifest))
    (pkg / "predict.py").write_text(textwrap.dedent(code))
    (pkg / "requirements.txt").write_text("")
    (pkg / "samples" / sample[0]).write_bytes(sample[1])
    return pkg


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def lab(migrated_db_url: str, tmp_path_factory: pytest.TempPathFactory, shared_envs: Path) -> Iterator[Platform]:
    """A platform with hello, bright-box, caps-ner and slow-predict deployed, two replicas each."""
    tmp = tmp_path_factory.mktemp("lab")
    p = service_platform(migrated_db_url, tmp / "home", shared_envs)
    p.settings.set(ADMIN, "ALGOSTAGE_SWEEP_RECORD_EVERY", "5")
    fixtures = ROOT / "tests" / "fixtures" / "algorithms"
    sources = [fixtures / "hello", fixtures / "slow_predict",
               package(tmp, "bright-box", BRIGHT_BOX_YAML, BRIGHT_BOX, ("a.png", png(np.zeros((8, 8, 3), np.uint8)))),
               package(tmp, "caps-ner", CAPS_NER_YAML, CAPS_NER, ("a.txt", b"Alice in Paris"))]
    try:
        for source in sources:
            name = p.catalog.upload(ADMIN, str(source)).algorithm
            p.deployer.deploy(OPERATOR, DeployRequest(name, replicas=2))
        yield p
    finally:
        p.daemon.shutdown()
        p.close()


def counts(p: Platform, model: type, **where: object) -> int:
    with p.sessions() as s:
        q = select(func.count()).select_from(model)
        for key, value in where.items():
            q = q.where(getattr(model, key) == value)
        return s.scalar(q)


def run_sweep(p: Platform, algorithm: str, dataset: str, space: Space, **kw: object):
    experiment_id = p.experiments.start(VIEWER, p.experiments.plan(VIEWER, algorithm, dataset, space), **kw)
    view = p.experiments.wait(VIEWER, experiment_id, timeout=300)
    assert view.state == "DONE", (view.state, view.error)
    return view


def replicas_used(p: Platform, experiment_id: int) -> set[str]:
    with p.sessions() as s:
        return set(s.scalars(select(ExperimentItem.replica).where(ExperimentItem.experiment_id == experiment_id,
                                                                   ExperimentItem.cached.is_(False))))


# --- classification ---------------------------------------------------------------------------------

TEXTS = ["hi", "a bit longer", "tiny", "a much longer sentence than the others", "mid length",
         "x", "four", "exactly ten", "seventeen letters", "ok"]
LABELS = ["short", "long", "short", "long", "long", "short", "long", "long", "long", "short"]


def hello_label(text: str, n: int, threshold: float = 0.5) -> str:
    """What the hello fixture answers: score = len / (2 n), capped at 1; long from the threshold."""
    return "long" if min(1.0, len(text) / (2 * n)) >= threshold else "short"


def expected_classification(truth: list[str], pred: list[str]) -> dict[str, float]:
    labels = sorted(set(truth) | set(pred))
    f1s = []
    for label in labels:
        tp = sum(t == p == label for t, p in zip(truth, pred))
        fp = sum(p == label != t for t, p in zip(truth, pred))
        fn = sum(t == label != p for t, p in zip(truth, pred))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return {"accuracy": sum(t == p for t, p in zip(truth, pred)) / len(truth), "macro_f1": sum(f1s) / len(f1s)}


def text_dataset(tmp: Path) -> Path:
    folder = tmp / "texts"
    folder.mkdir()
    lines = ["input,label"] + [f'"{t}",{label}' for t, label in zip(TEXTS, LABELS)]
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_a_classification_sweep_over_two_replicas_scores_every_configuration(lab: Platform, tmp_path: Path):
    p = lab
    dataset = f"texts-{tmp_path.name[-12:]}"
    p.datasets.upload(ADMIN, text_dataset(tmp_path), name=dataset, task="text.classification")
    calls_before = counts(p, AlgorithmCall)
    view = run_sweep(p, "hello", dataset, Space(grid={"n": [2, 5, 10]}))

    assert [r.params["n"] for r in view.runs] == [2, 5, 10]
    assert all(r.params["threshold"] == 0.5 and r.params["mode"] == "length" for r in view.runs)   # defaults
    for run in view.runs:
        pred = [hello_label(t, run.params["n"]) for t in TEXTS]
        expected = expected_classification(LABELS, pred)
        assert run.metrics["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)
        assert run.metrics["macro_f1"] == pytest.approx(expected["macro_f1"], abs=1e-6)
        matrix = view.extras[run.index]["confusion"]
        labels = matrix["labels"]
        for i, t in enumerate(labels):
            for j, q in enumerate(labels):
                assert matrix["matrix"][i][j] == sum(a == t and b == q for a, b in zip(LABELS, pred))
        assert run.items == 10 and run.errors == 0
        assert 0 < run.latency_ms["p50"] <= run.latency_ms["p95"]
        assert run.metrics["throughput_per_s"] > 0
    best_n = max((r for r in view.runs), key=lambda r: (r.metrics["macro_f1"], -r.index)).params["n"]
    assert view.best.params["n"] == best_n
    assert replicas_used(p, view.id) == {"algo-hello-1", "algo-hello-2"}
    # one call in five is recorded (items 0 and 5 of each configuration), not one per item
    assert counts(p, AlgorithmCall) - calls_before == 3 * 2

    again = run_sweep(p, "hello", dataset, Space(grid={"n": [5, 10, 20]}))
    with p.sessions() as s:
        cached = s.execute(select(ExperimentItem.config, ExperimentItem.cached)
                           .where(ExperimentItem.experiment_id == again.id)).all()
    assert {c for c, hit in cached if hit} == {0, 1} and {c for c, hit in cached if not hit} == {2}
    assert again.runs[0].metrics == {**view.runs[1].metrics, "throughput_per_s": None}


def test_a_sweep_whose_service_is_down_fails_saying_why_in_the_readers_language(lab: Platform, tmp_path: Path):
    """Every call fails (the service is stopped): the sweep stops after STOP_AFTER_FAILURES in a row
    and says why; that error and each item's are kept as the messages they were, so the
    Experiments page says them in its reader's language (the API and the CLI in English)."""
    p = lab
    dataset = f"down-{tmp_path.name[-12:]}"
    p.datasets.upload(ADMIN, text_dataset(tmp_path), name=dataset, task="text.classification")
    plan = p.experiments.plan(VIEWER, "hello", dataset, Space(grid={"n": [3, 4, 6]}))   # 30 calls, none cached
    assert p.services.stop(OPERATOR, ["hello"]) == {"hello": None}
    try:
        view = p.experiments.wait(VIEWER, p.experiments.start(VIEWER, plan), timeout=300)
    finally:
        assert p.services.start(OPERATOR, ["hello"]) == {"hello": None}
    assert view.state == "FAILED" and view.errors >= STOP_AFTER_FAILURES
    assert view.error.startswith("hello is not reachable")
    assert say(view.error, "zh").startswith("hello 无法访问")
    failed = [i for i in p.experiments.items(VIEWER, view.id, 0) if i.error]
    assert failed and all(say(i.error, "zh").startswith("hello 无法访问") for i in failed)
    with p.sessions() as s:   # the text columns, which the API and the CLI show, stay English
        assert s.get(Experiment, view.id).error == str(view.error)
        texts = s.scalars(select(ExperimentItem.error).where(ExperimentItem.experiment_id == view.id,
                                                             ExperimentItem.status == "error")).all()
    assert texts and all(t.startswith("hello is not reachable") for t in texts)


def test_the_command_line_prints_the_stable_json_shape(lab: Platform, tmp_path: Path):
    from app.cli import Context, main
    import io
    dataset = f"cli-{tmp_path.name[-12:]}"
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(out, err)
    ctx._platform = lab
    assert main(["dataset", "upload", str(text_dataset(tmp_path)), "--name", dataset, "--task",
                 "text.classification"], ctx) == 0
    out.truncate(0), out.seek(0)
    assert main(["experiment", "run", "hello@v1", "--dataset", dataset, "--grid", '{"threshold": [0.25, 0.75]}',
                 "--json"], ctx) == 0, err.getvalue()
    data = json.loads(out.getvalue())
    assert set(data) == {"experiment", "algorithm", "version", "dataset", "runs", "best"}
    assert (data["algorithm"], data["version"], data["dataset"]) == ("hello", "v1", dataset)
    assert [r["params"] for r in data["runs"]] == [
        {"threshold": t, "mode": "length", "upper": False, "note": "", "n": 5} for t in (0.25, 0.75)]
    for run in data["runs"]:
        assert set(run) == {"params", "metrics", "latency_ms", "items", "errors"}
        assert {"accuracy", "macro_f1"} <= set(run["metrics"]) and set(run["latency_ms"]) == {"p50", "p95"}
        assert run["items"] == 10 and run["errors"] == 0
    assert data["best"]["metric"] == "macro_f1" and data["best"]["params"] in [r["params"] for r in data["runs"]]
    assert "items" in err.getvalue()          # progress went to stderr
    out.truncate(0), out.seek(0)
    assert main(["experiment", "show", str(data["experiment"]), "--json"], ctx) == 0
    assert json.loads(out.getvalue()) == data
    out.truncate(0), out.seek(0)
    assert main(["dataset", "list", "--json"], ctx) == 0
    assert dataset in {d["name"] for d in json.loads(out.getvalue())}
    out.truncate(0), out.seek(0)
    assert main(["experiment", "list", "--json"], ctx) == 0
    listed = next(e for e in json.loads(out.getvalue()) if e["experiment"] == data["experiment"])
    assert (listed["state"], listed["done"], listed["total"], listed["configs"]) == ("DONE", 20, 20, 2)
    report = tmp_path / "report.html"
    assert main(["experiment", "export", str(data["experiment"]), "--format", "html", "-o", str(report)], ctx) == 0
    assert "<script src=" not in report.read_text() and "Pareto front" in report.read_text()
    out.truncate(0), out.seek(0)
    assert main(["experiment", "export", str(data["experiment"])], ctx) == 0
    assert out.getvalue().splitlines()[0].startswith("#,threshold,mode,upper,note,n,accuracy,macro_f1")


# --- detection ----------------------------------------------------------------------------------------

# (x, y, w, h, brightness) per image; None: nothing to find. Image 4 has an unlabelled bright speck.
OBJECTS = [(10, 10, 20, 20, 200), (30, 20, 16, 24, 210), (5, 30, 20, 20, 100), (40, 40, 12, 12, 220), None, None,
           (20, 20, 20, 20, 120)]
SPECK = (50, 5, 6, 6, 240)


def detection_dataset(tmp: Path) -> Path:
    folder = tmp / "boxes"
    folder.mkdir()
    images, annotations = [], []
    for i, obj in enumerate(OBJECTS):
        canvas = np.zeros((64, 64, 3), np.uint8)
        drawn = obj or (SPECK if i == 4 else None)
        if drawn:
            x, y, w, h, v = drawn
            canvas[y:y + h, x:x + w] = v
        (folder / f"{i}.png").write_bytes(png(canvas))
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": 64, "height": 64})
        if obj:
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1,
                                "bbox": list(obj[:4])})
    (folder / "annotations.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                         "categories": [{"id": 1, "name": "box"}]}, indent=1))
    return folder


def bright_box(i: int, threshold: int, pad: int) -> list[tuple[float, float, float, float, float]]:
    drawn = OBJECTS[i] or (SPECK if i == 4 else None)
    if drawn is None or drawn[4] <= threshold:
        return []
    x, y, w, h, v = drawn
    x0, y0, x1, y1 = max(0, x - pad), max(0, y - pad), min(64, x + w + pad), min(64, y + h + pad)
    return [(x0, y0, x1 - x0, y1 - y0, v / 255)]


def iou(a: tuple, b: tuple) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def average_precision(dets: list[tuple[int, tuple]], truth: dict[int, tuple], n_truth: int, thr: float) -> float:
    """COCO's AP for one class: detections by score, each matched to an unmatched truth of its image
    with IoU >= thr; precision made monotone, read at the 101 recall points 0, .01, …, 1."""
    dets = sorted(dets, key=lambda d: -d[1][4])
    hits = [truth.get(image) is not None and iou(box, truth[image]) >= thr for image, box in dets]
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    recall = tp / n_truth
    for k in range(len(precision) - 2, -1, -1):
        precision[k] = max(precision[k], precision[k + 1])
    points = [precision[np.searchsorted(recall, r, side="left")] if np.searchsorted(recall, r, side="left") <
              len(recall) else 0.0 for r in np.linspace(0, 1, 101)]
    return float(np.mean(points))


def test_a_detection_sweep_gets_coco_precision_recall_and_map_right(lab: Platform, tmp_path: Path):
    p = lab
    dataset = f"boxes-{tmp_path.name[-12:]}"
    p.datasets.upload(ADMIN, detection_dataset(tmp_path), name=dataset, task="image.detection")
    view = run_sweep(p, "bright-box", dataset, Space(grid={"threshold": [50, 150], "pad": [0, 2, 6]}))

    truth = {i: obj[:4] for i, obj in enumerate(OBJECTS) if obj}
    assert len(view.runs) == 6
    for run in view.runs:
        dets = [(i, box) for i in range(len(OBJECTS)) for box in bright_box(i, **run.params)]
        tp = sum(i in truth and iou(box, truth[i]) >= 0.5 for i, box in dets)
        precision, recall = tp / len(dets), tp / len(truth)
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        aps = [average_precision(dets, truth, len(truth), thr) for thr in np.linspace(0.5, 0.95, 10)]
        m = run.metrics
        assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((precision, recall, f1), abs=1e-6), run.params
        assert m["map_50"] == pytest.approx(aps[0], abs=1e-6), run.params
        assert m["map"] == pytest.approx(np.mean(aps), abs=1e-6), run.params
        assert run.errors == 0 and run.items == len(OBJECTS)
    assert view.best.params == {"threshold": 50, "pad": 0}
    worst = p.experiments.items(VIEWER, view.id, view.best.index)
    assert worst[0].score == 0.0 and worst[0].index == 4        # the speck: a box where there is none
    assert worst[-1].score == 1.0
    assert replicas_used(p, view.id) == {"algo-bright-box-1", "algo-bright-box-2"}


# --- NER ---------------------------------------------------------------------------------------------

SENTENCES = [("Alice went to Paris", [(0, 5, "PER"), (14, 19, "LOC")]),
             ("Bob Smith met Carol in New York", [(0, 9, "PER"), (14, 19, "PER"), (23, 31, "LOC")]),
             ("the cat sat on the mat", []),
             ("Berlin welcomed Dave", [(0, 6, "LOC"), (16, 20, "PER")]),
             ("we saw Ed and Flo", [(7, 9, "PER"), (14, 17, "PER")]),
             ("London Bridge is old", [(0, 13, "LOC")])]
PLACES = {"Paris", "London", "New York", "Berlin"}


def caps(text: str, join: bool, min_length: int) -> list[tuple[int, int, str]]:
    pattern = r"[A-Z][a-z]+(?: [A-Z][a-z]+)*" if join else r"[A-Z][a-z]+"
    return [(m.start(), m.end(), "LOC" if m.group() in PLACES else "PER") for m in re.finditer(pattern, text)
            if len(m.group()) >= min_length]


def semeval(truth: list[list[tuple]], pred: list[list[tuple]], same_type_overlap: bool) -> tuple[float, float, float]:
    """SemEval-2013 counts: strict (exact span and type) or type (any overlap, same type); each true
    entity is used once; precision = correct / predicted, recall = correct / true."""
    correct = incorrect = spurious = missed = 0
    for gold, found in zip(truth, pred):
        used: set[int] = set()
        for s, e, kind in found:
            overlapping = [k for k, (gs, ge, _) in enumerate(gold) if k not in used and s < ge and gs < e]
            if same_type_overlap:
                good = [k for k in overlapping if gold[k][2] == kind]
                hit = min(good, key=lambda k: abs(gold[k][0] - s) + abs(gold[k][1] - e)) if good else None
            else:
                hit = next((k for k, g in enumerate(gold) if k not in used and g == (s, e, kind)), None)
            if hit is not None:
                correct += 1
                used.add(hit)
            elif overlapping:
                incorrect += 1
                used.add(overlapping[0])
            else:
                spurious += 1
        missed += len(gold) - len(used)
    precision = correct / (correct + incorrect + spurious) if correct + incorrect + spurious else 0.0
    recall = correct / (correct + incorrect + missed) if correct + incorrect + missed else 0.0
    return precision, recall, 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def test_a_ner_sweep_scores_exact_and_overlapping_entities(lab: Platform, tmp_path: Path):
    p = lab
    folder = tmp_path / "ner"
    folder.mkdir()
    (folder / "data.jsonl").write_text("\n".join(json.dumps({"text": t, "entities": [
        {"start": s, "end": e, "type": k} for s, e, k in ents]}) for t, ents in SENTENCES) + "\n")
    dataset = f"ner-{tmp_path.name[-12:]}"
    p.datasets.upload(ADMIN, folder, name=dataset, task="text.ner")
    view = run_sweep(p, "caps-ner", dataset, Space(grid={"join": [True, False], "min_length": [1, 3]}))

    truth = [ents for _, ents in SENTENCES]
    for run in view.runs:
        pred = [caps(t, **run.params) for t, _ in SENTENCES]
        for name, overlap in (("exact", False), ("overlap", True)):
            expected = semeval(truth, pred, overlap)
            got = tuple(run.metrics[f"{name}_{k}"] for k in ("precision", "recall", "f1"))
            assert got == pytest.approx(expected, abs=1e-6), (run.params, name)
    def exact_f1(run):
        return semeval(truth, [caps(t, **run.params) for t, _ in SENTENCES], False)[2]
    assert view.best.params == max(view.runs, key=lambda r: (exact_f1(r), -r.index)).params
    assert replicas_used(p, view.id) == {"algo-caps-ner-1", "algo-caps-ner-2"}


# --- refusals --------------------------------------------------------------------------------------------

def test_out_of_range_parameters_wrong_versions_and_tasks_are_refused_before_any_call(lab: Platform, tmp_path: Path):
    p = lab
    dataset = f"refusals-{tmp_path.name[-12:]}"
    p.datasets.upload(ADMIN, text_dataset(tmp_path), name=dataset, task="text.classification")
    calls, experiments = counts(p, AlgorithmCall), counts(p, Experiment)
    with pytest.raises(ValidationFailed) as e:
        p.experiments.plan(VIEWER, "hello", dataset, Space(grid={"threshold": [0.5, 7], "n": [0]}))
    assert {pr.field for pr in e.value.problems} == {"grid.threshold[1]", "grid.n[0]"}
    assert "between 0 and 1" in str(e.value)
    with pytest.raises(ValidationFailed) as e:
        p.experiments.plan(VIEWER, "hello@v7", dataset, Space(grid={"n": [1]}))
    assert e.value.problems[0].field == "algorithm" and "serves v1" in e.value.problems[0].reason
    with pytest.raises(ValidationFailed) as e:
        p.experiments.plan(VIEWER, "caps-ner", dataset, Space(grid={"min_length": [1]}))
    assert e.value.problems[0].field == "dataset"
    with pytest.raises(ValidationFailed):
        p.experiments.plan(VIEWER, "hello", dataset, Space(samples=3, vary=("note",)))
    assert (counts(p, AlgorithmCall), counts(p, Experiment)) == (calls, experiments)


def test_a_sweep_over_the_limit_asks_for_confirmation(lab: Platform, tmp_path: Path):
    p = lab
    dataset = f"confirm-{tmp_path.name[-12:]}"
    p.datasets.upload(ADMIN, text_dataset(tmp_path), name=dataset, task="text.classification")
    p.settings.set(ADMIN, "ALGOSTAGE_SWEEP_CONFIRM_CALLS", "15")
    try:
        plan = p.experiments.plan(VIEWER, "hello", dataset, Space(grid={"threshold": [0.1, 0.2]}))
        assert plan.calls == 20
        experiments = counts(p, Experiment)
        with pytest.raises(ConfirmationNeeded) as e:
            p.experiments.start(VIEWER, plan)
        assert e.value.calls == 20 and e.value.limit == 15 and counts(p, Experiment) == experiments
        experiment_id = p.experiments.start(VIEWER, plan, confirm=True)
        assert p.experiments.wait(VIEWER, experiment_id, timeout=120).state == "DONE"
    finally:
        p.settings.unset(ADMIN, "ALGOSTAGE_SWEEP_CONFIRM_CALLS")


def test_bad_datasets_are_refused_with_file_and_line_and_nothing_is_stored(lab: Platform, tmp_path: Path):
    p = lab
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "classes.txt").write_text("long\nshort\n")
    (folder / "labels.csv").write_text("input,label\nhello,short\nworld,medium\n,long\n")
    archive = shutil.make_archive(str(tmp_path / "bad"), "zip", folder)
    objects = len(p.objects.list("datasets"))
    with pytest.raises(ValidationFailed) as e:
        p.datasets.upload(ADMIN, archive, name="bad", task="text.classification")
    assert {pr.field: pr.reason for pr in e.value.problems} == {
        "labels.csv:3": "label 'medium' is not in classes.txt (long, short)", "labels.csv:4": "empty input"}
    assert counts(p, Dataset, name="bad") == 0 and len(p.objects.list("datasets")) == objects
    with pytest.raises(ValidationFailed) as e:
        p.datasets.upload(ADMIN, folder, name="Bad Name!", task="text.classification")
    assert e.value.problems[0].field == "name"


# --- cancel, restart, resume -------------------------------------------------------------------------------

def slow_dataset(p: Platform, tmp: Path, n: int = 30) -> str:
    folder = tmp / "slow"
    folder.mkdir()
    (folder / "labels.csv").write_text("input,label\n" + "".join(f"text number {i} of {tmp.name},slow\n" for i in range(n)))
    name = f"slow-{tmp.name[-12:]}"
    p.datasets.upload(ADMIN, folder, name=name, task="text.classification")
    return name


def cells(p: Platform, experiment_id: int) -> dict[tuple[int, int], tuple]:
    with p.sessions() as s:
        rows = s.execute(select(ExperimentItem).where(ExperimentItem.experiment_id == experiment_id)).scalars().all()
        return {(r.config, r.item): (r.id, r.status, r.output, r.replica, r.started) for r in rows}


def wait_for_items(p: Platform, experiment_id: int, at_least: int, timeout: float = 60) -> None:
    import time
    deadline = time.monotonic() + timeout
    while counts(p, ExperimentItem, experiment_id=experiment_id) < at_least:
        assert time.monotonic() < deadline, "the sweep made no progress"
        time.sleep(0.1)


def check_resumed(p: Platform, experiment_id: int, before: dict, resumed_at: float, total: int) -> None:
    after = cells(p, experiment_id)
    assert len(after) == total
    assert all(after[key] == value for key, value in before.items())          # nothing finished was lost or redone
    new = set(after) - set(before)
    called_again = {k for k in new if after[k][4] is not None and after[k][4] >= resumed_at}
    # a call the dead process made and recorded (one in five) but had not kept yet comes from the cache
    from_cache = {k for k in new if after[k][4] is None}
    assert called_again | from_cache == new and all(item % 5 == 0 for _, item in from_cache)


def test_cancel_then_resume_after_a_restart_loses_no_finished_item(lab: Platform, tmp_path: Path):
    import time
    p = lab
    dataset = slow_dataset(p, tmp_path)
    plan = p.experiments.plan(VIEWER, "slow-predict", dataset, Space(grid={"seconds": [0.2, 0.25]}))
    experiment_id = p.experiments.start(VIEWER, plan)
    wait_for_items(p, experiment_id, 10)
    p.experiments.cancel(VIEWER, experiment_id)
    view = p.experiments.wait(VIEWER, experiment_id, timeout=60)
    assert view.state == "CANCELLED" and 10 <= view.done < 60
    before = cells(p, experiment_id)
    assert len(before) == view.done and all(v[1] == "ok" for v in before.values())

    restarted = Platform.open(p.home, p.environ, migrate=False)        # the UI or the platform restarted
    try:
        assert restarted.experiments.get(VIEWER, experiment_id).state == "CANCELLED"
        resumed_at = time.time()
        restarted.experiments.resume(VIEWER, experiment_id)
        view = restarted.experiments.wait(VIEWER, experiment_id, timeout=120)
    finally:
        restarted.close()
    assert view.state == "DONE" and view.done == 60 and view.errors == 0
    check_resumed(p, experiment_id, before, resumed_at, 60)
    assert [r.metrics["accuracy"] for r in view.runs] == [1.0, 1.0] and [r.items for r in view.runs] == [30, 30]


def test_a_sweep_whose_process_died_reads_interrupted_and_resumes(lab: Platform, tmp_path: Path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from datetime import datetime, timedelta, timezone

    from app.experiments.runner import SweepLimits
    from app.experiments.sweeps import Experiments
    p = lab
    dataset = slow_dataset(p, tmp_path)
    env = {**os.environ, **p.environ, "PYTHONPATH": str(ROOT)}
    cli = subprocess.Popen([sys.executable, "-m", "app", "experiment", "run", "slow-predict", "--dataset", dataset,
                            "--grid", '{"seconds": [0.2, 0.25]}', "--json"], env=env, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while counts(p, Experiment, dataset_name=dataset) == 0:
            assert time.monotonic() < deadline and cli.poll() is None
            time.sleep(0.1)
        with p.sessions() as s:
            experiment_id = s.scalar(select(Experiment.id).where(Experiment.dataset_name == dataset))
        wait_for_items(p, experiment_id, 10)
    finally:
        os.kill(cli.pid, signal.SIGKILL)
        cli.wait()
    before = cells(p, experiment_id)
    assert 10 <= len(before) < 60

    later = Experiments(p.sessions, p.invoker, p.datasets, p.jobs, p.router, SweepLimits,
                        clock=lambda: datetime.now(timezone.utc) + timedelta(seconds=60))
    assert later.get(VIEWER, experiment_id).state == "INTERRUPTED"
    assert p.experiments.get(VIEWER, experiment_id).state == "RUNNING"   # its heartbeat is fresh yet
    with pytest.raises(PermissionDenied):         # it is cli:<user>'s experiment
        later.resume(VIEWER, experiment_id)
    resumed_at = time.time()
    later.resume(ADMIN, experiment_id)
    view = p.experiments.wait(VIEWER, experiment_id, timeout=120)
    assert view.state == "DONE" and view.done == 60
    check_resumed(p, experiment_id, before, resumed_at, 60)
