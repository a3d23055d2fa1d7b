"""Seed 004 device benchmarks (run by hand, CPU shared):

1. load then unload a session, the memory returned as a share of the memory taken (process RSS on the CPU,
   measured after gc and malloc_trim), over several rounds; goal >= 95%;
2. a batch of 10 items (inference then a 2x upscale) on the task system against 10 single calls of
   /api/inference/execute + /api/postprocessing/upscale, over HTTP on the in-process app.

    PYTHONPATH=. python benchmarks/devices.py [--rounds 5] [--channels 128,256]

The load/unload model is a real digits diffusion UNet of the given widths, trained for one step: it is here for
its size (tens of MB of weights), not its drawings. The batch uses the default digits model size (32,64).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def train(store_dir: Path, name: str, channels: tuple[int, ...], steps: int) -> None:
    from kiln.recipes.digits_ddpm import DiffusionHyperparameters, DigitsDDPMRecipe
    from kiln.store import ModelStore, fingerprint_of

    with ModelStore(store_dir).stage(name, fingerprint_of(name, channels), "text-to-image", {"source": "train"}) as folder:
        DigitsDDPMRecipe.train(DiffusionHyperparameters(steps=steps, batch_size=16, block_channels=channels), folder)


def load_unload(rounds: int, channels: tuple[int, ...]) -> None:
    from kiln.device_sessions import DeviceSessions
    from kiln.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="kiln-devices-bench-"))
    settings = Settings(home=home, idle_ttl_seconds=0)
    train(settings.model_store_dir, "digits-big", channels, steps=1)
    sessions = DeviceSessions(settings)
    shares, taken_mb, returned_mb, load_s = [], [], [], []
    for _ in range(rounds):
        session, _ = sessions.load("cpu-0", "digits-big", "digits-diffusion")
        sessions.run(session.id, lambda runner: None)
        answer = sessions.unload(session.id)
        taken_mb.append(answer["memoryTaken"] / 2**20)
        returned_mb.append(answer["memoryReturned"] / 2**20)
        load_s.append(session.loading_time)
        shares.append(answer["memoryReturned"] / answer["memoryTaken"] if answer["memoryTaken"] else float("nan"))
    disk = sum(p.stat().st_size for p in (settings.model_store_dir / "digits-big").rglob("*.safetensors")) / 2**20
    print(f"load/unload of a {disk:.1f} MB UNet (channels {channels}), {rounds} rounds on cpu-0 (process RSS):")
    for i in range(rounds):
        print(f"  round {i + 1}: taken {taken_mb[i]:7.1f} MB, returned {returned_mb[i]:7.1f} MB "
              f"({100 * shares[i]:5.1f}%), load {load_s[i]:.3f} s")
    print(f"  median returned share {100 * statistics.median(shares):.1f}% (goal >= 95%)")
    sessions.close()


def batch_vs_single(items: int, steps: int) -> None:
    from tests.bentos.fakes import fake_server

    home = Path(tempfile.mkdtemp(prefix="kiln-devices-batch-"))
    server = fake_server(home, device_queue_seconds=120, allowed_hosts=["testserver"])
    train(server.settings.model_store_dir, "digits-diffusion", (32, 64), steps=2)
    server.start_task_workers(threads=2)
    client = server.client
    client.post("/api/model/load/cpu-0", json={"modelPath": "digits-diffusion"}).raise_for_status()
    inference = {"prompt": "a handwritten 3", "steps": steps, "width": 16, "height": 16}
    upscale = {"upscaleModel": "lanczos", "upscaleFactor": 2, "deviceId": "cpu-0"}
    client.post("/api/inference/execute/cpu-0", json={**inference, "seed": 0}).raise_for_status()  # warm
    started = time.perf_counter()
    for index in range(items):
        image = client.post("/api/inference/execute/cpu-0", json={**inference, "seed": index}).json()
        image = image["data"]["results"]["images"][0]["imageData"]
        client.post("/api/postprocessing/upscale", json={**upscale, "imageData": image}).raise_for_status()
    single = time.perf_counter() - started
    results = {}
    for concurrency in (1, 5, 10):
        body = {"batchName": f"bench-{concurrency}", "itemCount": items, "deviceIds": ["cpu-0"], "operations": [
            {"type": "inference", "parameters": {**inference, "seed": 0}},
            {"type": "postprocessing", "parameters": {"operation": "upscale", **upscale}}]}
        batch = client.post("/api/processing/batches/create", json=body).json()["data"]["batchId"]
        started = time.perf_counter()
        client.post(f"/api/processing/batches/{batch}/execute", json={"concurrent": True, "maxConcurrency": concurrency})
        while True:
            data = client.get(f"/api/processing/batches/{batch}").json()["data"]
            if data["status"] not in ("running", "created"):
                break
            time.sleep(0.02)
        results[concurrency] = (time.perf_counter() - started, data["counts"]["completed"])
    print(f"{items} items (digits UNet (32,64), {steps} DDIM steps, 16x16, then a 2x lanczos upscale) on cpu-0:")
    print(f"  {items} single inference + upscale calls: {single:.2f} s ({single / items * 1000:.0f} ms per item)")
    for concurrency, (seconds, done) in results.items():
        print(f"  one batch, maxConcurrency {concurrency:2d}: {seconds:.2f} s ({done}/{items} completed, "
              f"{single / seconds:.2f}x the single calls)")
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--channels", default="128,256")
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    load_unload(args.rounds, tuple(int(c) for c in args.channels.split(",")))
    batch_vs_single(args.items, args.steps)


if __name__ == "__main__":
    main()
