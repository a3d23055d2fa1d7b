"""Upscaling benchmark (run by hand, CPU shared): 512x512 -> 1024x1024 (factor 2) through kiln.upscaling.upscale.

Rows: the classical methods, then networks built here and stored in a temporary model store the way a
fetched model is (random weights: the time is the architecture's, the picture is noise on top of a
nearest-neighbour upscale). "tiny" is the unit tests' size; the others have the shapes of Real-ESRGAN's
released weights (realesr-animevideov3: compact x4 with 16 convs; realesr-general-x4v3: 32 convs; the
x4 ones are downsampled to 2x with Lanczos, as a factor-2 request of a x4 model is). ``--rrdb`` adds
RealESRGAN_x2plus's shape (RRDBNet, 23 blocks), which takes minutes per image on two cores.

    PYTHONPATH=. nice -n 10 python benchmarks/upscale.py [--repeat 3] [--threads 2] [--tile 512 256] [--rrdb]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def store(home: Path, name: str, network) -> int:
    import torch

    from kiln.store import ModelStore, fingerprint_of

    with ModelStore(home / "models").stage(name, fingerprint_of(name), "super-resolution") as staging:
        torch.save({"params_ema": network.state_dict()}, staging / f"{name}.pth")
    return sum(parameter.numel() for parameter in network.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tile", type=int, nargs="+", default=[512, 256], help="tile sizes to time the networks at")
    parser.add_argument("--rrdb", action="store_true", help="also RealESRGAN_x2plus's shape (slow on a CPU)")
    args = parser.parse_args()

    import torch

    from kiln.upscaling import upscale
    from kiln.upscaling_arches import RRDBNet, SRVGGNetCompact
    from kiln.vision.samples import sample_image

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    image = sample_image("astronaut")  # 512x512
    home = Path(tempfile.mkdtemp(prefix="kiln-upscale-bench-"))
    networks = {
        "tiny-compact-x2": SRVGGNetCompact(features=8, convs=3, scale=2),
        "compact-x4-16conv": SRVGGNetCompact(features=64, convs=16, scale=4),
        "compact-x4-32conv": SRVGGNetCompact(features=64, convs=32, scale=4),
    }
    if args.rrdb:
        networks["rrdb-x2plus"] = RRDBNet(scale=2, features=64, blocks=23, growth=32)
    parameters = {name: store(home, name, network) for name, network in networks.items()}

    rows = [(name, None) for name in ("lanczos", "bicubic")]
    rows += [(name, tile) for name in networks for tile in args.tile]
    print(f"upscale {image.width}x{image.height} -> {2 * image.width}x{2 * image.height}, CPU, "
          f"{args.threads} torch threads, best and median of {args.repeat} (after one warm-up that loads the network)")
    print(f"{'upscaler':<20} {'method':<9} {'arch':<16} {'params':>9} {'tile':>5} {'tiles':>5} "
          f"{'best s':>8} {'median s':>9} {'out MP/s':>9}")
    for name, tile in rows:
        options = {"tile_size": tile} if tile else {}
        first = upscale(image, name, 2, "cpu", home, **options)
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = upscale(image, name, 2, "cpu", home, **options)
            times.append(time.perf_counter() - started)
        assert result.image.size == (1024, 1024) and result.load_seconds == 0
        best = min(times)
        print(f"{name:<20} {result.method:<9} {result.architecture or '-':<16} {parameters.get(name, 0):>9,} "
              f"{tile or '-':>5} {result.tiles:>5} {best:>8.3f} {statistics.median(times):>9.3f} "
              f"{1024 * 1024 / best / 1e6:>9.2f}" + (f"   load {first.load_seconds:.3f} s" if tile else ""))


if __name__ == "__main__":
    main()
