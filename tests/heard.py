"""Recognition asserted by word error rate over whole sentences, never by one word of a short clip (one
misheard word then fails a run now and then; a WER bound over enough words does not)."""

from __future__ import annotations

import re

import jiwer

SPOKEN = "Please call me tomorrow morning after the meeting. The weather is cold and windy in the north today."


def words(value: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", value.lower()).split())


def assert_heard(heard: str, max_wer: float, expected: str = SPOKEN) -> None:
    wer = jiwer.wer(words(expected), words(heard))
    assert wer <= max_wer, f"WER {wer:.2f} > {max_wer}: heard {heard!r} for {expected!r}"
