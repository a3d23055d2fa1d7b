"""Hub pipelines through kiln.generation.hub: tiny SDXL and text-to-video pipelines built from configs,
saved with save_pretrained, fetched into a model store as `source: path` and loaded like a download."""

import numpy as np
import pytest

from kiln.catalog import CatalogEntry
from kiln.sources import fetch
from kiln.store import ModelStore


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ModelStore(tmp_path_factory.mktemp("models"))


def stored(store, tmp_path_factory, name, build, task):
    folder = build(tmp_path_factory.mktemp(name))
    model, _ = fetch(CatalogEntry(name=name, source="path", id=str(folder), task=task), store)
    return model


def test_cpu_placement_is_fp32_with_attention_slicing():
    from kiln.generation.hub import placement

    where = placement()
    assert (where.device, where.dtype_name, where.attention_slicing, where.cpu_offload) == ("cpu", "float32", True, False)


def test_tiny_sdxl_generates_deterministically_with_progress(store, tmp_path_factory):
    from kiln.generation.hub import HubPipeline
    from kiln.generation.models import GenerationModels
    from tests.bentos.generation.tiny_pipelines import build_sdxl

    model = stored(store, tmp_path_factory, "tiny-sdxl", build_sdxl, "text-to-image")
    described = GenerationModels(store).stored()["tiny-sdxl"]
    assert described.kind == "diffusers" and described.resolution == "32x32" and described.scale == 2
    pipeline = HubPipeline.load(model.path, "tiny-sdxl")
    assert pipeline.class_name == "StableDiffusionXLPipeline" and pipeline.task == "text-to-image"
    steps = []
    first = pipeline.text_to_image("a red cat", "blurry", 32, 32, 3, 5.0, 7, lambda done, total: steps.append((done, total)))
    again = pipeline.text_to_image("a red cat", "blurry", 32, 32, 3, 5.0, 7)
    other = pipeline.text_to_image("a red cat", "blurry", 32, 32, 3, 5.0, 8)
    assert first.size == (32, 32) and steps == [(1, 3), (2, 3), (3, 3)]
    assert np.array_equal(np.asarray(first), np.asarray(again)) and not np.array_equal(np.asarray(first), np.asarray(other))
    assert pipeline.image_to_image(first, "a blue dog", None, 0.0, 4, 5.0, 1) is first  # strength 0: the input
    changed = pipeline.image_to_image(first, "a blue dog", None, 0.5, 4, 5.0, 1)
    assert changed.size == (32, 32) and not np.array_equal(np.asarray(changed), np.asarray(first))


def test_tiny_text_to_video_makes_frames(store, tmp_path_factory):
    from kiln.errors import InvalidInput
    from kiln.generation.hub import HubPipeline
    from tests.bentos.generation.tiny_pipelines import build_text_to_video

    model = stored(store, tmp_path_factory, "tiny-t2v", build_text_to_video, "text-to-video")
    pipeline = HubPipeline.load(model.path, "tiny-t2v")
    steps = []
    frames = pipeline.text_to_video("a cat in a garden", 3, 2, 7.5, 0, on_step=lambda done, total: steps.append(done))
    assert len(frames) == 3 and frames[0].size == (32, 32) and steps == [1, 2]
    with pytest.raises(InvalidInput, match="text-to-video pipeline, not text-to-image"):
        pipeline.text_to_image("a cat", None, 32, 32, 2, 7.5, 0)


def test_a_folder_that_is_no_pipeline_is_refused(tmp_path):
    from kiln.errors import KilnError
    from kiln.generation.hub import HubPipeline

    (tmp_path / "model_index.json").write_text('{"_class_name": "FluxPipeline"}')
    with pytest.raises(KilnError, match="'FluxPipeline' is not one Kiln serves"):
        HubPipeline.load(tmp_path, "flux")


def test_tiny_stable_video_diffusion_animates_an_image(store, tmp_path_factory):
    from PIL import Image

    from kiln.errors import InvalidInput
    from kiln.generation.hub import HubPipeline
    from tests.bentos.generation.tiny_pipelines import build_image_to_video

    model = stored(store, tmp_path_factory, "tiny-svd", build_image_to_video, "image-to-video")
    pipeline = HubPipeline.load(model.path, "tiny-svd")
    assert pipeline.class_name == "StableVideoDiffusionPipeline" and pipeline.task == "image-to-video"
    still = Image.fromarray((np.random.default_rng(0).random((48, 40, 3)) * 255).astype(np.uint8))
    steps = []
    frames = pipeline.image_to_video(still, num_frames=3, fps=6, steps=2, seed=0, on_step=lambda done, total: steps.append(done))
    again = pipeline.image_to_video(still, num_frames=3, fps=6, steps=2, seed=0)
    assert len(frames) == 3 and frames[0].size == (32, 32) and steps == [1, 2]
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(frames, again))  # same seed, same clip
    with pytest.raises(InvalidInput, match="image-to-video pipeline, not text-to-video"):
        pipeline.text_to_video("a cat", 3, 2, 7.5, 0)
