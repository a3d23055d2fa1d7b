"""Speech over files: ``synthesize`` (a text, or a file of texts one per line, to audio files) and
``transcribe`` (an audio file to text and timed segments, also stored as a JSON file). The engines run
in the server's audio service; the task calls it through the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from kiln.errors import InvalidInput
from kiln.tasks.context import TaskContext
from kiln.tasks.registry import Inputs, TaskType
from kiln.tasks.types.data import check_input_file

MIME = {"wav": "audio/wav", "ogg": "audio/ogg", "mp3": "audio/mpeg", "flac": "audio/flac"}


class SynthesizeParameters(BaseModel):
    text: str | None = Field(None, min_length=1, max_length=5000, description="The text to speak")
    input_file: str | None = Field(None, max_length=255, description="Or a text file: one utterance per line")
    lang: str = Field("en", max_length=16)
    engine: str | None = Field(None, max_length=64)
    voice: str | None = Field(None, max_length=128)
    format: str = Field("wav", pattern="^(wav|ogg|mp3|flac)$")
    rate: float = Field(1.0, ge=0.1, le=3.0)

    @model_validator(mode="after")
    def one_source(self) -> SynthesizeParameters:
        if (self.text is None) == (self.input_file is None):
            raise ValueError("give either text or input_file")
        return self


def check_synthesize(parameters: SynthesizeParameters, inputs: Inputs) -> None:
    if parameters.input_file is not None:
        check_input_file(parameters, inputs)


def synthesize(parameters: SynthesizeParameters, context: TaskContext) -> dict[str, Any]:
    if parameters.text is not None:
        texts, stem = [parameters.text], "speech"
    else:
        source = context.inputs.file(parameters.input_file)
        if not source.content_type.startswith("text/"):
            raise InvalidInput("input_file", f"needs a text file, got {source.content_type}")
        texts = [line.strip() for line in context.files.path(source).read_text().splitlines() if line.strip()]
        stem = Path(source.filename).stem
    options = {"lang": parameters.lang, "engine": parameters.engine, "voice": parameters.voice, "rate": parameters.rate}
    outputs = []
    for index, text in enumerate(texts):
        audio = context.client.synthesize(text, parameters.format, **{k: v for k, v in options.items() if v is not None})
        stored = context.files.save_bytes(audio, f"{stem}-{index + 1:04d}.{parameters.format}", MIME[parameters.format],
                                          context.owner_id, text[:200], context.task_id)
        outputs.append({"file_id": stored.id, "filename": stored.filename, "size": stored.size, "text": text[:200],
                        "download_url": f"/files/{stored.id}/download"})
        context.progress(100 * (index + 1) / len(texts), f"{index + 1}/{len(texts)} synthesized")
    return {"files": outputs, "records_processed": len(texts), "format": parameters.format}


class TranscribeParameters(BaseModel):
    input_file: str = Field(min_length=1, max_length=255, description="An uploaded audio file (wav, flac, ogg, mp3)")
    language: str | None = Field(None, max_length=16)
    model_name: str = Field("default", max_length=128, description="An STT engine or model, as /transcribe takes")


def transcribe(parameters: TranscribeParameters, context: TaskContext) -> dict[str, Any]:
    source = context.inputs.file(parameters.input_file)
    if not source.content_type.startswith("audio/"):
        raise InvalidInput("input_file", f"needs an audio file, got {source.content_type}")
    context.progress(10, f"transcribing {source.filename}")
    options = {"model_name": parameters.model_name, **({"language": parameters.language} if parameters.language else {})}
    answer = context.client.transcribe(context.files.path(source), source.filename, **options)
    transcript = {k: answer.get(k) for k in ("text", "language", "duration", "segments", "model_info")}
    stored = context.files.save_bytes(json.dumps(transcript, indent=1).encode(), f"{Path(source.filename).stem}.transcript.json",
                                      "application/json", context.owner_id, f"transcript of {source.filename}", context.task_id)
    return {"text": answer["text"], "language": answer.get("language"), "duration": answer.get("duration"),
            "output_file": stored.id, "download_url": f"/files/{stored.id}/download", "model_info": answer.get("model_info")}


TYPES = [
    TaskType("synthesize", "Speak a text, or each line of a text file, into audio files", SynthesizeParameters, synthesize,
             check_synthesize),
    TaskType("transcribe", "Transcribe an uploaded audio file; the transcript is also stored as JSON", TranscribeParameters,
             transcribe, check_input_file),
]
