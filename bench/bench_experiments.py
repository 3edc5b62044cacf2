"""Experiments (issue 12): does a sweep keep the replicas busy, and how long do its metrics take?

1. sweep: the demo `face-detect` deployed with 2 replicas on the supervisor runtime of a fresh
   platform; a dataset of 200 distinct images (the face of messi5.jpg pasted at known places and
   scales onto the other demo images, 320x240); a grid of 8 configurations (scale_factor x
   min_neighbors) run through `Experiments.start` like the page and the CLI do. Busy = sum of the
   items' `predict_ms` / (replicas x wall), wall from `start` to the experiment's end (hashing the
   inputs, the cache lookup, every call, writing the items and the metrics included).
2. metrics: `results.summarise` (what an experiment's page and `experiment show` compute) over
   10,000 synthetic items x 8 configurations per task, after the libraries are imported.

Targets: busy >= 90% of the wall time; metrics of 10,000 x 8 in <= 2 s.

    .venv/bin/python bench/bench_experiments.py [--images 200] [--inflight 2] [--skip-sweep]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.auth import Actor, Role  # noqa: E402
from app.experiments import metrics  # noqa: E402
from app.experiments.results import summarise  # noqa: E402
from app.experiments.space import Space  # noqa: E402
from app.models import ExperimentItem  # noqa: E402
from app.platform import Platform  # noqa: E402
from app.services.deployer import DeployRequest  # noqa: E402
from sqlalchemy import select  # noqa: E402

ADMIN = Actor("bench", Role.ADMIN)
MEDIA = ROOT / "demo_data" / "media"
FACE = (218, 90, 42, 42)      # demo_data/datasets/README.md: the face box of messi5.jpg
GRID = {"scale_factor": [1.05, 1.1, 1.2, 1.3], "min_neighbors": [3, 6]}


def face_dataset(folder: Path, n: int) -> None:
    """`n` distinct 320x240 images, each with the messi5 face pasted at a random place and scale."""
    rng = np.random.default_rng(1)
    messi = cv2.imread(str(MEDIA / "messi5.jpg"))
    x, y, w, h = FACE
    crop = messi[y - 24:y + h + 24, x - 24:x + w + 24]
    backgrounds = [cv2.resize(cv2.imread(str(MEDIA / b)), (320, 240))
                   for b in ("home.jpg", "fruits.jpg", "butterfly.jpg", "basketball1.png")]
    images, anns = [], []
    (folder / "images").mkdir(parents=True)
    for i in range(n):
        scale = float(rng.uniform(0.9, 1.8))
        patch = cv2.resize(crop, None, fx=scale, fy=scale)
        img = backgrounds[i % 4].copy()
        px, py = int(rng.integers(0, 320 - patch.shape[1])), int(rng.integers(0, 240 - patch.shape[0]))
        img[py:py + patch.shape[0], px:px + patch.shape[1]] = patch
        name = f"images/{i:03d}.jpg"
        cv2.imwrite(str(folder / name), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        images.append({"id": i + 1, "file_name": name, "width": 320, "height": 240})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1,
                     "bbox": [px + 24 * scale, py + 24 * scale, w * scale, h * scale]})
    (folder / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                         "categories": [{"id": 1, "name": "face"}]}))


def sweep(images: int, inflight: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        environ = {"ALGOSTAGE_HOME": tmp, "ALGOSTAGE_ENV_DIR": str(ROOT / "var" / "bench-envs"),
                   "ALGOSTAGE_SWEEP_INFLIGHT": str(inflight), "ALGOSTAGE_SWEEP_CONFIRM_CALLS": "100000"}
        p = Platform.open(Path(tmp), environ)
        p.daemon.start()
        try:
            p.catalog.upload(ADMIN, str(ROOT / "demo_data" / "algorithms" / "face-detect"))
            p.deployer.deploy(ADMIN, DeployRequest("face-detect", replicas=2))
            face_dataset(Path(tmp) / "faces", images)
            p.datasets.upload(ADMIN, Path(tmp) / "faces", name="faces", task="image.detection")
            plan = p.experiments.plan(ADMIN, "face-detect", "faces", Space(grid=GRID))
            t0 = time.perf_counter()
            experiment_id = p.experiments.start(ADMIN, plan)
            view = p.experiments.wait(ADMIN, experiment_id, poll_s=0.05)
            wall = time.perf_counter() - t0
            with p.sessions() as s:
                rows = s.execute(select(ExperimentItem.predict_ms, ExperimentItem.started, ExperimentItem.ended,
                                        ExperimentItem.replica)
                                 .where(ExperimentItem.experiment_id == experiment_id)).all()
        finally:
            p.daemon.shutdown()
            p.close()
    predict = sum(r.predict_ms or 0 for r in rows) / 1000
    calls_wall = max(r.ended for r in rows) - min(r.started for r in rows)
    return {"state": view.state, "calls": len(rows), "wall_s": wall, "calls_wall_s": calls_wall,
            "predict_s": predict, "busy": predict / (2 * wall), "busy_calls": predict / (2 * calls_wall),
            "replicas": len({r.replica for r in rows}), "best": json.dumps(view.best.params if view.best else None)}


def synthetic(task: str, n: int, configs: int) -> tuple[list, list, list]:
    rng = random.Random(0)
    labels = ["positive", "negative", "neutral"]
    targets, outs = [], [[] for _ in range(configs)]
    for i in range(n):
        if task == "text.classification":
            t = rng.choice(labels)
            targets.append(t)
            for c in range(configs):
                outs[c].append({"label": t if rng.random() < 0.8 else rng.choice(labels),
                                "scores": {lb: rng.random() for lb in labels}})
        elif task == "text.ner":
            targets.append({"entities": [{"start": 0, "end": 3, "type": "PER"}, {"start": 10, "end": 16, "type": "LOC"}]})
            for c in range(configs):
                outs[c].append({"entities": [{"start": 0, "end": 3 + rng.randint(0, 1), "type": "PER"},
                                             {"start": 10, "end": 16, "type": rng.choice(["LOC", "PER"])}]})
        elif task == "image.detection":
            boxes = [{"x": rng.uniform(0, 200), "y": rng.uniform(0, 200), "w": 40, "h": 40, "label": "face"}
                     for _ in range(2)]
            targets.append({"boxes": boxes})
            for c in range(configs):
                outs[c].append({"boxes": [{**b, "x": b["x"] + rng.gauss(0, 5), "score": rng.random()} for b in boxes]})
        else:
            t = "".join(rng.choice("ABCDEF ") for _ in range(20))
            targets.append(t)
            for c in range(configs):
                outs[c].append({"lines": [{"text": t[:-1] + rng.choice("AX")}]})
    rows = [{"config": c, "item": i, "status": "ok", "output": o, "error": "", "total_ms": rng.uniform(5, 50),
             "cached": False, "started": i * 0.01, "ended": i * 0.01 + 0.02}
            for c, column in enumerate(outs) for i, o in enumerate(column)]
    return targets, rows, labels if task.endswith("classification") else []


def metric_times(n: int, configs: int) -> dict[str, float]:
    out = {}
    for task in ("text.classification", "text.ner", "image.detection", "image.ocr"):
        targets, rows, labels = synthetic(task, n, configs)
        first = [r for r in rows if r["item"] < 2 and r["config"] == 0]
        metrics.score(task, targets[:2], [r["output"] for r in first], labels)     # imports, once
        t0 = time.perf_counter()
        summarise(task, labels, [{"config": c} for c in range(configs)], targets, rows)
        out[task] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--inflight", type=int, default=2)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--skip-sweep", action="store_true")
    args = ap.parse_args()
    print("| measure | result | target |\n|---|---|---|")
    if not args.skip_sweep:
        r = sweep(args.images, args.inflight)
        print(f"| sweep: 8 configurations x {args.images} images, 2 replicas, {args.inflight} in flight per replica "
              f"| {r['state']}, {r['calls']:.0f} calls on {r['replicas']:.0f} replicas in {r['wall_s']:.1f} s "
              f"(calls {r['calls_wall_s']:.1f} s), predict {r['predict_s']:.1f} s | |")
        print(f"| busy: sum predict_ms / (2 x wall) | **{r['busy']:.1%}** (over the calls' span: "
              f"{r['busy_calls']:.1%}) | >= 90% |")
    for task, seconds in metric_times(args.items, 8).items():
        print(f"| metrics: {task}, {args.items:,} items x 8 configurations | **{seconds:.2f} s** | <= 2 s |")


if __name__ == "__main__":
    main()
