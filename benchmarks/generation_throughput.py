"""Image generation: throughput of the digits diffusion model, its training time to the gate, and the tiny
Stable Diffusion pipeline through the real loader.

    nice -n 10 .venv/bin/python benchmarks/generation_throughput.py [--requests 32] [--skip-training] [--threads 2]

- throughput: 16x16 images, DDIM 25 steps, guidance 2 (the default). ``--requests`` requests at once from as many threads
  through the model's batcher (what concurrent generate_image tasks do) against the same requests one at a
  time. Goal: >= 5 images/s batched. Uses the workspace's stored digits-diffusion when there is one (KILN_HOME),
  else the default architecture untrained (the cost of sampling does not depend on the weights).
- training: the default digits-ddpm recipe trained from scratch, then judged like the pipeline's gate (the
  `example` classifier over 100 samples per class; a digits-mlp judge is trained here when the store has
  none). Goal: <= 300 s wall on 2 cores, conditional accuracy >= 0.90. Also prints CPU seconds, which say more
  than wall time on a shared machine.
- tiny SD: a tiny StableDiffusionPipeline built from configs, fetched into a model store as `source: path`,
  loaded by kiln.generation.hub and run at 32x32 for 10 steps.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def digits_model():
    from kiln.generation.digits import DigitsDiffusion
    from kiln.generation.models import shared_models
    from kiln.settings import get_settings

    stored = shared_models(get_settings().model_store_dir).stored().get("digits-diffusion")
    if stored is not None:
        return DigitsDiffusion.load(stored.path, "digits-diffusion"), f"stored {stored.version}"
    from kiln.recipes.digits_ddpm import DiffusionHyperparameters, build_unet

    params = DiffusionHyperparameters()
    unet = build_unet(params.block_channels, params.layers_per_block)
    config = {"labels": [str(d) for d in range(10)], "null_class": 10, "image_size": 16}
    return DigitsDiffusion("untrained", unet, config), "default architecture, untrained"


def throughput(requests: int) -> None:
    from kiln.generation.batching import DigitsBatcher

    model, what = digits_model()
    print(f"== throughput: {what}, {requests} requests, 16x16, 25 steps, guidance 2")
    batcher = DigitsBatcher(model)
    batcher.generate("a 1", 0, None, 25, 2.0)  # warm-up
    started = time.perf_counter()
    for index in range(requests):
        batcher.generate(f"a {index % 10}", index, None, 25, 2.0)
    one_at_a_time = requests / (time.perf_counter() - started)
    batcher.batches.clear()
    threads = [threading.Thread(target=batcher.generate, args=(f"a {i % 10}", i, None, 25, 2.0)) for i in range(requests)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batched = requests / (time.perf_counter() - started)
    print(f"one at a time: {one_at_a_time:.2f} images/s")
    print(f"batched:       {batched:.2f} images/s (batches {batcher.batches}), {batched / one_at_a_time:.1f}x; goal >= 5")


def training() -> None:
    from kiln.engines import load_engine
    from kiln.generation.evaluation import evaluate_digits_generation, judge_engine
    from kiln.recipes.digits import DigitsHyperparameters, DigitsMLPRecipe
    from kiln.recipes.digits_ddpm import DiffusionHyperparameters, DigitsDDPMRecipe
    from kiln.settings import get_settings
    from kiln.store import ModelStore

    try:
        judge, judged_by = judge_engine(ModelStore(get_settings().model_store_dir)), "the workspace's example"
    except Exception:
        folder = Path(tempfile.mkdtemp())
        DigitsMLPRecipe.train(DigitsHyperparameters(), folder)
        judge, judged_by = load_engine("classification", folder, "example"), "a digits-mlp trained here"
    params = DiffusionHyperparameters()
    print(f"== training to the gate: {params}")
    out = Path(tempfile.mkdtemp())
    cpu, wall = cpu_seconds(), time.perf_counter()
    metrics = DigitsDDPMRecipe.train(params, out)
    train_wall, train_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    cpu, wall = cpu_seconds(), time.perf_counter()
    evaluation, _ = evaluate_digits_generation(out, judge, per_class=100)
    print(f"training: {train_wall:.0f} s wall, {train_cpu:.0f} s CPU, {metrics['train_steps']:.0f} steps, "
          f"final loss {metrics['train_loss']:.4f}; goal <= 300 s wall")
    print(f"gate (judged by {judged_by}): conditional accuracy {evaluation['conditional_accuracy']:.3f} over 1000 samples "
          f"(sampling {time.perf_counter() - wall:.0f} s wall, {cpu_seconds() - cpu:.0f} s CPU); goal >= 0.90")
    print("per digit: " + ", ".join(f"{d}: {evaluation[f'accuracy_digit_{d}']:.2f}" for d in range(10)))


def tiny_stable_diffusion() -> None:
    from kiln.catalog import CatalogEntry
    from kiln.generation.hub import HubPipeline
    from kiln.sources import fetch
    from kiln.store import ModelStore
    from tests.bentos.generation.tiny_pipelines import build_stable_diffusion

    folder = build_stable_diffusion(Path(tempfile.mkdtemp()))
    stored, _ = fetch(CatalogEntry(name="tiny-sd", source="path", id=str(folder), task="text-to-image"),
                      ModelStore(Path(tempfile.mkdtemp())))
    started = time.perf_counter()
    pipeline = HubPipeline.load(stored.path, "tiny-sd")
    loaded = time.perf_counter() - started
    pipeline.text_to_image("a photo of a cat", None, 32, 32, 10, 7.5, 0)  # warm-up
    runs = []
    for seed in range(5):
        started = time.perf_counter()
        pipeline.text_to_image("a photo of a cat", "blurry", 32, 32, 10, 7.5, seed)
        runs.append(time.perf_counter() - started)
    print(f"== tiny SD through the real loader: load {loaded:.2f} s; 32x32, 10 steps: best {min(runs):.3f} s, "
          f"median {sorted(runs)[2]:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--only", choices=["throughput", "training", "tiny-sd"])
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.only in (None, "throughput"):
        throughput(args.requests)
    if args.only in (None, "tiny-sd"):
        tiny_stable_diffusion()
    if args.only in (None, "training") and not args.skip_training:
        training()


if __name__ == "__main__":
    main()
