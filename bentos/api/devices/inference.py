"""Seed 004's inference and postprocessing: run a session's model (generation models draw base64 PNGs with
the generation engine; other models take ``inputs`` as /predict does), and upscale an image with a stored
super-resolution model or a named classical method (kiln.upscaling), said which."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from bentos.api.devices.deps import CallerDep, LimiterDep, SessionsDep, SettingsDep
from bentos.api.devices.route import DevicesRoute, Envelope, ok
from bentos.api.devices.schemas import InferenceOut, InferenceRequest, UpscaleOut, UpscaleRequest
from bentos.api.http.errors import error_response
from kiln.device_inference import GenerationInputs, InferenceFailed
from kiln.device_models import InvalidParameters
from kiln.device_sessions import DeviceSessions, SessionNotFound
from kiln.errors import KilnError, NotFound

router = APIRouter(prefix="/api", tags=["devices (seed 004)"], route_class=DevicesRoute)
ERRORS = {400: {"description": "INVALID_PARAMETERS naming the field"}, 404: {"description": "DEVICE_NOT_FOUND, SESSION_NOT_FOUND"},
          409: {"description": "DEVICE_BUSY: the session's work did not start within KILN_DEVICE_QUEUE_SECONDS"},
          429: {"description": "RATE_LIMIT_EXCEEDED: 10 inferences per minute per device (KILN_RATE_LIMIT_DEVICE_INFERENCE)"},
          500: {"description": "INFERENCE_FAILED, with the Python error and a correlation id"}}


def _session_for(sessions: DeviceSessions, device_id: str, session_id: str | None, caller: Any):
    from kiln.device_registry import find_device

    find_device(device_id)
    if session_id is not None:
        session = sessions.get(session_id, caller.owner_id, caller.see_all)
        if session.device_id != device_id:
            raise InvalidParameters("sessionId", session_id, f"a session on {device_id}",
                                    f"Invalid sessionId: session {session_id} is on {session.device_id}, not {device_id}")
        return session
    live = [s for s in sessions.on_device(device_id)
            if not s.cancelled and (caller.see_all or s.owner == caller.owner_id)]
    if not live:
        raise SessionNotFound(f"No model is loaded on {device_id}: POST /api/model/load/{device_id} first",
                              {"deviceId": device_id, "sessions": []})
    return live[-1]


def _execute(sessions: DeviceSessions, device_id: str, body: InferenceRequest, max_items: int,
             correlation: str, caller: Any) -> dict[str, Any]:
    from kiln.device_inference import check_generation, generate, predict

    session = _session_for(sessions, device_id, body.session_id, caller)
    model = session.model
    if model.kind == "generation":
        request = GenerationInputs(body.prompt or "", body.negative_prompt, body.width, body.height, body.steps,
                                   body.guidance_scale, body.seed, body.num_images)
        check_generation(model, request)  # before queueing: a bad request never waits for the device

        def work(runner: Any) -> Any:
            return generate(runner, model, request)
    else:
        def work(runner: Any) -> Any:
            return predict(runner, body.inputs, max_items)
    try:
        results, seconds = sessions.run(session.id, work)
    except KilnError:
        raise
    except Exception as exc:  # the model failed (CUDA out of memory, ...): the session stays usable
        raise InferenceFailed(f"Inference execution failed: {type(exc).__name__}: {exc}",
                              {"pythonError": f"{type(exc).__name__}: {exc}"[:2000], "correlationId": correlation,
                               "sessionId": session.id}) from exc
    results.setdefault("metadata", {})["inferenceTime"] = round(seconds, 4)
    return {"inferenceId": f"inf-{uuid.uuid4()}", "sessionId": session.id, "deviceId": device_id,
            "status": "completed", "results": results}


@router.post("/inference/execute/{device_id}", response_model=Envelope[InferenceOut], response_model_exclude_unset=True,
             responses=ERRORS,
             summary="Run the session's model: images (base64 PNG) for generation models, outputs for the others")
async def execute(device_id: str, body: InferenceRequest, request: Request, sessions: SessionsDep,
                  settings: SettingsDep, limiter: LimiterDep, caller: CallerDep) -> Any:
    from kiln.access.ratelimit import DEVICE_INFERENCE

    if body.device_id and body.device_id != device_id:
        raise InvalidParameters("deviceId", body.device_id, f"the path's device ({device_id})",
                                f"Invalid deviceId: the body names {body.device_id}, the path {device_id}")
    if limiter is not None:  # seed 004: 10 inferences per minute per device, whoever asks
        from bentos.api.http.access import counted_also

        decision = await limiter.hit_in("device-inference", DEVICE_INFERENCE, device_id)
        counted_also(request, decision)  # the access layer's headers: this limit's when it refuses or is the tighter
        if decision is not None and not decision.allowed:
            return error_response(request, 429, f"Rate limit exceeded: {decision.limit} inferences per minute on "
                                  f"{device_id}", {"deviceId": device_id, "retryAfter": decision.retry_after},
                                  headers={**decision.headers(), "Retry-After": str(decision.retry_after)})
    from bentos.api.http.errors import request_id

    return ok(await run_in_threadpool(_execute, sessions, device_id, body, settings.max_inputs_per_request,
                                      request_id(request), caller))


def _upscale(body: UpscaleRequest, settings: Any) -> dict[str, Any]:
    from kiln.device_inference import decode_image, encode_png
    from kiln.device_registry import usable_device

    device = usable_device(body.device_id)
    image = decode_image(body.image_data, settings.vision_max_pixels)
    from kiln.upscaling import InvalidUpscale, UnknownUpscaler, upscale

    started = time.perf_counter()
    try:
        result = upscale(image, body.upscale_model, body.upscale_factor, device.torch_device,
                         settings.model_store_dir.parent)
    except UnknownUpscaler as exc:
        raise NotFound(f"Unknown upscaleModel '{body.upscale_model}'",
                       {"upscaleModel": body.upscale_model, "availableModels": list(exc.available)}) from None
    except InvalidUpscale as exc:  # its fields in the seed's words
        field = {"factor": "upscaleFactor", "image": "imageData", "device": "deviceId"}.get(exc.field, exc.field)
        raise InvalidParameters(field, exc.details.get("value"), exc.details.get("constraint") or "supported",
                                f"Invalid {field}: {exc}") from None
    seconds = time.perf_counter() - started
    out = result.image
    return {"upscaledImage": {"imageData": encode_png(out), "format": "png", "width": out.width, "height": out.height},
            "processingTime": round(seconds, 4), "upscaleModel": result.upscaler, "upscaleFactor": body.upscale_factor,
            "method": result.method, "tiles": result.tiles, "oomRetries": result.oom_retries,
            "architecture": result.architecture, "precision": result.precision, "note": result.note or None,
            "deviceId": device.id, "source": {"width": image.width, "height": image.height}}


@router.post("/postprocessing/upscale", response_model=Envelope[UpscaleOut], responses={
    **ERRORS, 404: {"description": "An unknown upscaleModel, with the available ones; DEVICE_NOT_FOUND"}},
    summary="Upscale an image 2-4x: a stored super-resolution model (tiled, retried smaller on OOM) or a classical method")
async def upscale_image(body: UpscaleRequest, settings: SettingsDep) -> dict:
    return ok(await run_in_threadpool(_upscale, body, settings))


@router.get("/postprocessing/upscale/models", response_model=Envelope[list[str]],
            summary="The upscalers: stored super-resolution models and the classical methods")
async def upscalers(settings: SettingsDep) -> dict:
    from kiln.upscaling import available_upscalers

    return ok(await run_in_threadpool(available_upscalers, settings.model_store_dir.parent))
