"""The speech surface's dependency: the audio service's engines (a fake in route tests)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from bentos.api.http.backends import backend
from bentos.clients import SpeechClient

speech_backend = backend("speech")
SpeechDep = Annotated[SpeechClient, Depends(speech_backend)]
