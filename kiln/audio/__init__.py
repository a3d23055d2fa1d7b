"""Speech synthesis and recognition: engines behind one TTS and one STT interface, a registry that
routes by language and availability, audio I/O, text preparation and a synthesis cache."""

from kiln.audio.base import Capabilities, Segment, STTEngine, Transcription, TTSEngine, Unavailable, Voice
from kiln.audio.io import FORMATS, Audio

__all__ = ["FORMATS", "Audio", "Capabilities", "STTEngine", "Segment", "TTSEngine", "Transcription",
           "Unavailable", "Voice"]
