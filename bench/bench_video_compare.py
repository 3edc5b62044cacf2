"""What a video comparison adds on top of its column runs: the frame-by-frame summaries.

Builds the outputs of four face-detect columns over every frame of Megamind.avi from the real
algorithm (in-process, once per model/parameter set), then times `compare_results` (every pair
of columns: boxes matched per frame by IoU, summed) against the time it took the algorithm to
produce those outputs. Target: the summaries cost under 1% of the runs they summarise.

    .venv/bin/python bench/bench_video_compare.py [--frames 270] [--repeat 20]
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import media  # noqa: E402
from app.showcase.runs import Column  # noqa: E402
from app.showcase.video import VideoResult  # noqa: E402
from app.showcase.video_compare import compare_results  # noqa: E402

PACKAGE = ROOT / "demo_data" / "algorithms" / "face-detect"
VIDEO = ROOT / "demo_data" / "media" / "Megamind.avi"
COLUMNS = [{"model": "haar_default"}, {"model": "haar_alt2"}, {"model": "lbp"}, {"model": "haar_default", "min_neighbors": 3}]


def load_algorithm():  # noqa: ANN201 - the package's own class
    spec = importlib.util.spec_from_file_location("face_detect_predict", PACKAGE / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    algo = module.Algorithm()
    algo.setup()
    return algo


def column_run(algo, frames: list, params: dict) -> tuple[VideoResult, float]:  # noqa: ANN001
    outputs, t0 = [], time.perf_counter()
    for _, frame in frames:
        outputs.append(algo.predict([frame], **params)[0])
    seconds = time.perf_counter() - t0
    rows = media.frame_summary(outputs, "image.detection", frame_indices=[i for i, _ in frames])
    return VideoResult("face-detect", "v1", "image.detection", params, "Megamind.avi", None, rows, len(rows),
                       outputs=outputs), seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=270)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    frames = list(media.iter_frames(VIDEO))[:args.frames]
    algo = load_algorithm()
    runs = [column_run(algo, frames, params) for params in COLUMNS]
    results, algo_s = [r for r, _ in runs], sum(s for _, s in runs)
    columns = [Column("face-detect", p) for p in COLUMNS]
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        cmp = compare_results("Megamind.avi", "image.detection", columns, results, [None] * len(results))
        times.append(time.perf_counter() - t0)
    boxes = sum(r["count"] for res in results for r in res.frames)
    median = statistics.median(times)
    print(f"{len(frames)} frames x {len(COLUMNS)} columns, {boxes} boxes, {len(cmp.pairs)} pairs")
    print(f"algorithm in-process, all columns: {algo_s:.2f} s")
    print(f"summaries (median of {args.repeat}): {median * 1000:.1f} ms = {median / algo_s:.3%} of the runs")
    for p in cmp.pairs:
        print(f"  {p.left}<->{p.right}: matched {p.matched}, only {p.only_left}/{p.only_right}, "
              f"mean IoU {p.mean_iou or 0:.3f}, agreement {p.agreement or 0:.0%}, full {p.frames_agreeing}/{p.frames}")


if __name__ == "__main__":
    main()
