"""kiln.generation without a trained model: prompt grounding, the judge's view of a sample, sampling
(determinism, progress, cancel between steps, SDEdit ends), batching, video encoding, model resolution."""

import threading

import numpy as np
import pytest

from kiln.errors import InvalidInput, ModelNotAvailable, NotFound
from kiln.generation import prompts

LABELS = [str(d) for d in range(10)]


def test_prompts_ground_the_digit_they_name():
    assert prompts.ground_digit("a handwritten 7", LABELS) == 7
    assert prompts.ground_digit("Seven, please", LABELS) == 7
    assert prompts.ground_digit("the number 0 in ink", LABELS) == 0
    assert prompts.ground_transition("a 3 turning into a seven", LABELS) == (3, 7)
    assert prompts.ground_transition("a wobbly 4", LABELS) == (4, None)
    assert prompts.ground_negative("blurry, low quality", LABELS) is None
    assert prompts.ground_negative("not a 1", LABELS) == 1


@pytest.mark.parametrize("prompt", ["a beautiful sunset over the ocean", "3 or 5", "the year 1984", ""])
def test_a_prompt_it_cannot_ground_is_refused_with_what_it_draws(prompt):
    with pytest.raises(InvalidInput) as error:
        prompts.ground_digit(prompt, LABELS)
    assert "draws the handwritten digits 0, 1, 2" in error.value.message and error.value.field == "prompt"


def test_the_judge_sees_the_digits_exactly_as_sklearn_ships_them():
    from sklearn.datasets import load_digits

    from kiln.recipes.digits_ddpm import digits_images, to_digit_features

    images, labels = digits_images()
    assert images.shape == (1797, 1, 16, 16) and images.min() == -1.0 and images.max() == 1.0
    np.testing.assert_allclose(to_digit_features(images), load_digits().data, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_unet():
    import torch

    from kiln.recipes.digits_ddpm import build_unet

    torch.manual_seed(0)
    return build_unet((8, 16), 1).eval()


def test_the_same_seed_gives_the_same_image_whatever_else_is_in_the_batch(tiny_unet):
    from kiln.generation.sampling import sample

    alone = sample(tiny_unet, [3], [42], 10, steps=4)
    again = sample(tiny_unet, [3], [42], 10, steps=4)
    batched = sample(tiny_unet, [5, 3, 1], [7, 42, 8], 10, steps=4)
    assert np.array_equal(alone.numpy(), again.numpy())
    np.testing.assert_allclose(batched[1].numpy(), alone[0].numpy(), atol=1e-4)
    assert not np.allclose(batched[0].numpy(), alone[0].numpy())


def test_progress_is_reported_each_step_and_a_raise_stops_between_steps(tiny_unet):
    from kiln.generation.sampling import sample

    seen = []
    sample(tiny_unet, [1], [0], 10, steps=6, on_step=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 6) for i in range(1, 7)]

    class Stop(Exception):
        pass

    calls = []

    def stop_at_two(done, total):
        calls.append(done)
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        sample(tiny_unet, [1], [0], 10, steps=6, on_step=stop_at_two)
    assert calls == [1, 2]


def test_sdedit_strength_zero_keeps_the_input_and_one_ignores_it(tiny_unet):
    import torch

    from kiln.generation.sampling import sample

    source = torch.rand(1, 1, 16, 16) * 2 - 1
    kept = sample(tiny_unet, [2], [5], 10, steps=5, init_images=source, strength=0.0)
    assert torch.equal(kept, source)
    ignored = sample(tiny_unet, [2], [5], 10, steps=5, init_images=source, strength=1.0)
    fresh = sample(tiny_unet, [2], [5], 10, steps=5)
    assert torch.allclose(ignored, fresh)
    half = sample(tiny_unet, [2], [5], 10, steps=6, init_images=source, strength=0.5,
                  on_step=lambda done, total: None)
    assert not torch.allclose(half, source) and not torch.allclose(half, fresh)


def test_concurrent_requests_share_a_batch_and_a_cancelled_one_leaves_the_others(tiny_unet):
    from kiln.generation.batching import DigitsBatcher
    from kiln.generation.digits import DigitsDiffusion

    model = DigitsDiffusion("tiny", tiny_unet, {"labels": LABELS, "null_class": 10, "image_size": 16})
    batcher = DigitsBatcher(model, window_seconds=0.2)
    results, errors = {}, {}

    def cancel_at_three(done, total):
        if done == 3:
            raise RuntimeError("cancelled")

    def request(index):
        try:
            results[index] = batcher.generate(f"a {index % 10}", index, None, 5, 3.0,
                                              cancel_at_three if index == 2 else None)
        except RuntimeError as exc:
            errors[index] = str(exc)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == {2: "cancelled"} and sorted(results) == [0, 1, 3, 4, 5]
    assert max(batcher.batches) > 1
    alone = batcher.generate("a 4", 4, None, 5, 3.0)
    np.testing.assert_allclose(alone.numpy(), results[4].numpy(), atol=1e-4)
    with pytest.raises(InvalidInput):
        batcher.generate("a sunset", 1, None, 5, 3.0)


def test_each_request_reports_its_progress_on_its_own_thread(tiny_unet):
    """Progress callbacks write task records: run in the sampling thread, 32 of them would stall every step."""
    from kiln.generation.batching import DigitsBatcher
    from kiln.generation.digits import DigitsDiffusion

    model = DigitsDiffusion("tiny", tiny_unet, {"labels": LABELS, "null_class": 10, "image_size": 16})
    batcher = DigitsBatcher(model, window_seconds=0.2)
    seen: dict[int, set] = {}

    def request(index):
        def on_step(done, total):
            seen.setdefault(index, set()).add((threading.current_thread().name, total))

        batcher.generate(f"a {index}", index, None, 4, 2.0, on_step)

    threads = [threading.Thread(target=request, args=(i,), name=f"request-{i}") for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert max(batcher.batches) > 1
    assert seen == {i: {(f"request-{i}", 4)} for i in range(3)}


@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_videos_are_written_with_every_frame(fmt, tmp_path):
    import av

    from kiln.generation.media import video_bytes

    frames = [np.full((1, 16, 16), -1 + 2 * i / 7, dtype=np.float32) for i in range(8)]
    path = tmp_path / f"v.{fmt}"
    path.write_bytes(video_bytes(frames, fps=8, fmt=fmt))
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == 8
    if fmt == "mp4":
        assert decoded[0].width == 64 and decoded[0].height == 64  # small frames scaled up for players


def test_models_resolve_from_the_store(tmp_path):
    from kiln.generation.models import GenerationModels
    from kiln.recipes.digits_ddpm import DiffusionHyperparameters, DigitsDDPMRecipe
    from kiln.store import ModelStore

    store = ModelStore(tmp_path / "models")
    models = GenerationModels(store)
    with pytest.raises(ModelNotAvailable, match="Run the pipeline"):
        models.resolve(None, "text-to-image")
    params = DiffusionHyperparameters(steps=2, batch_size=8, block_channels=(8, 16))
    with store.stage("digits-diffusion", "f" * 64, "text-to-image", {}) as staging:
        metrics = DigitsDDPMRecipe.train(params, staging)
    assert metrics["train_steps"] == 2
    model = models.resolve(None, "text-to-video")
    assert model.id == "digits-diffusion" and model.resolution == "16x16"
    assert model.check_size(64, 64) == (64, 64)
    with pytest.raises(InvalidInput, match="square images of 16x16, 32x32"):
        model.check_size(20, 20)
    with pytest.raises(InvalidInput, match="height"):
        model.check_size(32, 64)
    with pytest.raises(NotFound, match="Stored generation models: digits-diffusion"):
        models.resolve("no-such-model", "text-to-image")
    with pytest.raises(ModelNotAvailable, match="source: huggingface, id: stabilityai/stable-diffusion-xl-base-1.0"):
        models.resolve("stable-diffusion-xl", "text-to-image")
    assert models.listing()[0] | {"version": "x"} == {
        "id": "digits-diffusion", "name": "digits-diffusion", "version": "x", "task": "text-to-image",
        "kind": "digits-ddpm", "description": "", "resolution": "16x16", "loaded": False}
    loaded = models.load(model)
    assert models.load(model) is loaded and models.listing()[0]["loaded"] is True
