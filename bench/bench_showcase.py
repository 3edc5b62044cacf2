"""What the platform adds on top of the algorithm, measured through the real Showcase path.

1. Text: `Invoker.invoke` on the deployed `sentiment-en` demo service; the platform's cost per
   call is `total_ms - predict_ms` (HTTP, JSON, replica choice), median over N calls. Also the
   whole `Showcase.run` (parameter check, cache lookup, call, recording) with force=True.
2. Video: `Showcase.run_video` of the deployed `person-detect` over vtest.avi (every frame sent as
   a JPEG to the service, two requests in flight, every call recorded, boxes drawn, H.264 MP4
   stored in the results bucket) against the same algorithm called in-process on every frame.

Targets (issue 5): text overhead <= 2 ms at the median; video fps >= 90% of in-process; the whole
showcase run <= 1.3x the in-process algorithm time.

    .venv/bin/python bench/bench_showcase.py [--frames 795] [--calls 300]
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import demo  # noqa: E402
from app.auth import Actor, Role  # noqa: E402
from app.platform import Platform  # noqa: E402
from app.showcase.inputs import InputRef  # noqa: E402
from app.storage import DEMO_BUCKET  # noqa: E402

ADMIN = Actor("bench", Role.ADMIN)
PACKAGES = ROOT / "demo_data" / "algorithms"
VIDEO = ROOT / "demo_data" / "media" / "vtest.avi"


def text_overhead(p: Platform, calls: int) -> dict[str, float]:
    text = "The demo went really well, the customer loved it!"
    for _ in range(20):
        p.invoker.invoke(ADMIN, "sentiment-en", [text])
    over, runs = [], []
    for i in range(calls):
        r = p.invoker.invoke(ADMIN, "sentiment-en", [f"{text} {i}"])
        over.append(r.total_ms - (r.predict_ms or 0))
        t0 = time.perf_counter()
        run = p.showcase.run(ADMIN, "sentiment-en", f"{text} #{i}", {}, force=True)
        runs.append((time.perf_counter() - t0) * 1000 - (run.predict_ms or 0))
    return {"invoke_overhead_median": statistics.median(over), "invoke_overhead_p95": quantile(over, 0.95),
            "showcase_run_overhead_median": statistics.median(runs)}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def in_process_video(frames: int) -> tuple[float, int]:
    spec = importlib.util.spec_from_file_location("person_detect", PACKAGES / "person-detect" / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    algo = module.Algorithm()
    algo.setup()
    cap = cv2.VideoCapture(str(VIDEO))
    done, t0 = 0, time.perf_counter()
    while done < frames:
        ok, frame = cap.read()
        if not ok:
            break
        algo.predict([frame])
        done += 1
    return time.perf_counter() - t0, done


def showcase_video(p: Platform, frames: int) -> tuple[float, int, str | None]:
    ref = InputRef(DEMO_BUCKET, "media/vtest.avi")
    t0 = time.perf_counter()
    result = p.showcase.run_video(ADMIN, "person-detect", ref, {}, max_frames=frames, force=True)
    return time.perf_counter() - t0, len(result.frames), result.error


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=795)
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        environ = {"ALGOSTAGE_HOME": tmp, "ALGOSTAGE_ENV_DIR": str(ROOT / "var" / "bench-envs")}
        p = Platform.open(Path(tmp), environ)
        p.daemon.start()
        try:
            report = demo.install(p, ADMIN, packages=[PACKAGES / "sentiment-en", PACKAGES / "person-detect"])
            assert report.ok, report.failed
            text = text_overhead(p, args.calls)
            svc_s, svc_n, error = showcase_video(p, args.frames)
            local_s, local_n = in_process_video(args.frames)
        finally:
            p.daemon.shutdown()
    print("| measure | result | target |\n|---|---|---|")
    print(f"| text: invoke total − predict, median ({args.calls} calls) | {text['invoke_overhead_median']:.2f} ms "
          f"(p95 {text['invoke_overhead_p95']:.2f}) | <= 2 ms |")
    print(f"| text: whole Showcase.run − predict, median | {text['showcase_run_overhead_median']:.2f} ms | – |")
    print(f"| video in-process: {local_n} frames | {local_s:.1f} s, {local_n / local_s:.2f} fps | reference |")
    print(f"| video showcase run: {svc_n} frames{' (error: ' + error + ')' if error else ''} | {svc_s:.1f} s, "
          f"{svc_n / svc_s:.2f} fps | |")
    print(f"| fps ratio showcase / in-process | {(svc_n / svc_s) / (local_n / local_s):.2f} | >= 0.90 |")
    print(f"| time ratio showcase / in-process | {svc_s / local_s:.2f}x | <= 1.3x |")


if __name__ == "__main__":
    main()
