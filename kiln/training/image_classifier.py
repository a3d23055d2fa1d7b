"""The ``image_classifier`` model type: EfficientNet-Lite0 from the packaged ImageNet weights, its 1000-class
layer replaced by one for the dataset's classes, fine-tuned on an image folder (kiln/training/image_folders.py).

Only the new classifier layer trains by default; ``train_blocks`` also opens the final 1x1 convolution and the
last N MBConv blocks. Batch-norm statistics stay ImageNet's (the network runs in eval mode: user datasets are
small, and re-estimating statistics from a few dozen images hurts). The frozen part of the network runs once
per image (its outputs are cached), so head-only epochs after the first cost almost nothing. Images are read
with PIL and preprocessed with numpy exactly as the serving classifier does (kiln/vision/classifiers.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kiln.errors import KilnError

ARCHITECTURE = "efficientnet-lite0"
CONFIG_FILE = "kiln_image_classifier.json"  # what kiln.vision.classifiers.load_classifier recognizes
StepReport = Callable[[int, dict[str, float]], None]


class BadImage(KilnError):
    status_code = 422
    code = "VALIDATION_ERROR"


def build_network(num_classes: int, imagenet_weights: Path | None = None) -> Any:
    """EfficientNet-Lite0 with a fresh ``num_classes`` layer; the rest from the ImageNet ``.pth`` when given."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    module = EfficientNet.from_name(ARCHITECTURE, num_classes=1000)
    if imagenet_weights is not None:
        module.load_state_dict(torch.load(imagenet_weights, map_location="cpu", weights_only=True))
    torch.manual_seed(0)
    module._fc = torch.nn.Linear(module._fc.in_features, num_classes)
    return module


def load_image(path: Path, max_pixels: int) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.width * image.height > max_pixels:
                raise BadImage(f"dataset_path: {path.parent.name}/{path.name} has {image.width}x{image.height} pixels; "
                               f"at most {max_pixels} are accepted (KILN_VISION_MAX_PIXELS)")
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise BadImage(f"dataset_path: {path.parent.name}/{path.name} is not a readable image ({exc})") from None


def preprocess(image: Any, size: int) -> Any:
    from kiln.vision.classifiers import LITE_MEAN, LITE_STD
    from kiln.vision.preprocess import classification_input

    return classification_input(image, size, mean=LITE_MEAN, std=LITE_STD)


class SplitNetwork:
    """The network as a frozen prefix, run once per image (its outputs cached), and a trainable suffix."""

    def __init__(self, module: Any, train_blocks: int):
        import torch

        self.module = module.eval()
        self.train_blocks = max(0, min(train_blocks, len(module._blocks)))
        self.start = len(module._blocks) - self.train_blocks
        for parameter in module.parameters():
            parameter.requires_grad_(False)
        opened = [module._fc] + ([module._conv_head, module._bn1, *module._blocks[self.start:]] if self.train_blocks else [])
        for part in opened:
            for parameter in part.parameters():
                parameter.requires_grad_(True)
        self.trainable = [p for p in module.parameters() if p.requires_grad]
        self.cache: dict[int, Any] = {}
        self.no_grad = torch.no_grad

    def prefix(self, batch: Any) -> Any:
        m = self.module
        with self.no_grad():
            x = m._swish(m._bn0(m._conv_stem(batch)))
            for block in m._blocks[: self.start]:
                x = block(x)
            if not self.train_blocks:
                x = m._avg_pooling(m._swish(m._bn1(m._conv_head(x)))).flatten(1)
        return x

    def suffix(self, x: Any) -> Any:
        m = self.module
        if self.train_blocks:
            for block in m._blocks[self.start:]:
                x = block(x)
            x = m._avg_pooling(m._swish(m._bn1(m._conv_head(x)))).flatten(1)
        return m._fc(x)

    def features(self, indices: list[int], pixels: Callable[[int], Any]) -> Any:
        import numpy as np
        import torch

        missing = [i for i in indices if i not in self.cache]
        if missing:
            for i, row in zip(missing, self.prefix(torch.from_numpy(np.stack([pixels(i) for i in missing])))):
                self.cache[i] = row
        return torch.stack([self.cache[i] for i in indices])


def train_image_classifier(job: Any, out_dir: Path, on_step: StepReport, on_epoch: StepReport, checkpoint_dir: Path | None,
                           log: Callable[[str], None] = print) -> dict[str, float]:
    """Fine-tune on ``job.dataset_file`` (an image-folder directory); write the model into ``out_dir``."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from kiln.settings import get_settings
    from kiln.training.image_folders import read_image_folder, stratified_split
    from kiln.vision.classifiers import lite_weights

    torch.manual_seed(0)
    folder = read_image_folder(Path(job.dataset_file))
    train_rows, held = stratified_split(folder.targets)
    max_pixels = get_settings().vision_max_pixels
    size = job.image_size

    def pixels(i: int) -> Any:  # once per image: the frozen prefix's output is what is kept
        return preprocess(load_image(folder.files[i], max_pixels), size)

    network = SplitNetwork(build_network(len(folder.classes), lite_weights(Path(job.base_path))), job.train_blocks)
    optimizer = torch.optim.Adam(network.trainable, lr=job.learning_rate)
    resumed = _resume(network.module, optimizer, checkpoint_dir)
    if resumed:
        log(f"resuming after step {resumed} from {checkpoint_dir}")
    labels = torch.tensor(folder.targets)
    per_epoch = -(-len(train_rows) // job.batch_size)
    total = per_epoch * job.epochs if not job.max_steps else min(job.max_steps, per_epoch * job.epochs)
    generator = torch.Generator().manual_seed(0)
    loss_fn = torch.nn.CrossEntropyLoss()
    started, step, history = time.perf_counter(), 0, []
    metrics: dict[str, float] = {}
    for epoch in range(job.epochs):
        order = torch.randperm(len(train_rows), generator=generator).tolist()  # drawn even when skipped: resume replays it
        for begin in range(0, len(order), job.batch_size):
            if step >= total:
                break
            step += 1
            if step <= resumed:
                continue
            batch = [train_rows[i] for i in order[begin: begin + job.batch_size]]
            loss = loss_fn(network.suffix(network.features(batch, pixels)), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history.append(loss.item())
            on_step(step, {"loss": loss.item(), "learning_rate": job.learning_rate, "epoch": float(epoch + 1)})
            if checkpoint_dir is not None and job.save_steps and step % job.save_steps == 0:
                _save_checkpoint(network.module, optimizer, step, checkpoint_dir)
        if held:
            metrics = _validate(network, held, folder.targets, pixels)
            on_epoch(epoch, metrics)
    train_seconds = time.perf_counter() - started
    save_file({k: v.contiguous() for k, v in network.module.state_dict().items()}, str(out_dir / "model.safetensors"))
    config = {"architecture": ARCHITECTURE, "labels": folder.classes, "image_size": size, "base_model": job.base_model,
              "train_blocks": network.train_blocks}
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    final = evaluate_stored(out_dir, [folder.files[i] for i in held], [folder.targets[i] for i in held], max_pixels)
    return {**metrics, **final, "train_seconds": train_seconds, "steps": float(total), "resumed_from_step": float(resumed),
            "first_train_loss": history[0] if history else 0.0, "final_train_loss": float(np.mean(history[-per_epoch:]))
            if history else 0.0, "classes": float(len(folder.classes)), "train_examples": float(len(train_rows))}


def _validate(network: SplitNetwork, held: list[int], targets: list[int], pixels: Callable[[int], Any]) -> dict[str, float]:
    import torch
    from sklearn.metrics import accuracy_score, f1_score

    with torch.no_grad():
        predicted = network.suffix(network.features(held, pixels)).argmax(1).numpy()
    gold = [targets[i] for i in held]
    return {"accuracy": float(accuracy_score(gold, predicted)), "f1_score": float(f1_score(gold, predicted, average="macro"))}


def evaluate_stored(model_dir: Path, files: list[Path], targets: list[int], max_pixels: int) -> dict[str, float]:
    """Accuracy and macro F1 of the saved model, loaded the way the serving classifier loads it."""
    from sklearn.metrics import accuracy_score, f1_score

    from kiln.vision.classifiers import load_classifier

    if not files:
        return {}
    classifier = load_classifier(model_dir)
    predicted = []
    for begin in range(0, len(files), 32):
        images = [load_image(path, max_pixels) for path in files[begin: begin + 32]]
        predicted.extend(classifier.labels.index(best[0]["label"]) for best in classifier.classify(images, top_k=1))
    return {"accuracy": float(accuracy_score(targets, predicted)),
            "f1_score": float(f1_score(targets, predicted, average="macro")), "validation_examples": float(len(files))}


def _save_checkpoint(module: Any, optimizer: Any, step: int, checkpoint_dir: Path) -> None:
    import torch

    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    temporary = checkpoint_dir / "checkpoint.pt.tmp"
    torch.save({"step": step, "model": module.state_dict(), "optimizer": optimizer.state_dict()}, temporary)
    temporary.replace(checkpoint_dir / "checkpoint.pt")  # atomic: a stop never leaves half a checkpoint


def _resume(module: Any, optimizer: Any, checkpoint_dir: Path | None) -> int:
    import torch

    path = checkpoint_dir / "checkpoint.pt" if checkpoint_dir else None
    if path is None or not path.is_file():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])
