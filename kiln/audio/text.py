"""Text preparation for synthesis: normalization (Unicode, whitespace, English numbers and symbols)
and sentence chunking so long texts are synthesized piece by piece."""

from __future__ import annotations

import re
import unicodedata

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
        "sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = [(10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")]
_SYMBOLS_EN = {"&": " and ", "%": " percent", "+": " plus ", "@": " at ", "=": " equals "}
_SENTENCE_END = re.compile(r"(?<=[.!?。؟!?…])\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def number_to_words(value: int) -> str:
    if value < 0:
        return "minus " + number_to_words(-value)
    if value < 20:
        return _ONES[value]
    if value < 100:
        tens, ones = divmod(value, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    for scale, name in _SCALES:
        if value >= scale:
            high, rest = divmod(value, scale)
            return f"{number_to_words(high)} {name}" + (f" {number_to_words(rest)}" if rest else "")
    return str(value)


def _spell_number(match: re.Match) -> str:
    whole, _, fraction = match.group(0).replace(",", "").partition(".")
    if len(whole) > 12:
        return " ".join(_ONES[int(d)] for d in whole)
    words = number_to_words(int(whole))
    if fraction:
        words += " point " + " ".join(_ONES[int(d)] for d in fraction)
    return words


def normalize(text: str, lang: str = "en") -> str:
    """Clean text for a TTS engine. Numbers and symbols are spelled out for English only (espeak-ng
    and piper phonemize other languages' digits themselves)."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    if lang.split("-")[0].split("_")[0].lower() == "en":
        text = re.sub(r"\$(\d[\d,]*(?:\.\d+)?)", r"\1 dollars", text)
        text = re.sub(r"\d[\d,]*(?:\.\d+)?", _spell_number, text)
        for symbol, words in _SYMBOLS_EN.items():
            text = text.replace(symbol, words)
    return re.sub(r"\s+", " ", text).strip()


def sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


def chunk(text: str, max_chars: int = 400) -> list[str]:
    """Sentences packed into chunks of at most ``max_chars``; an over-long sentence is cut at commas,
    then at spaces."""
    pieces: list[str] = []
    for sentence in sentences(text):
        if len(sentence) <= max_chars:
            pieces.append(sentence)
            continue
        buffer = ""
        for word in re.split(r"(?<=[,;:])\s+|\s+", sentence):
            while len(word) > max_chars:  # a "word" longer than a chunk (no spaces at all)
                if buffer:
                    pieces.append(buffer)
                    buffer = ""
                pieces.append(word[:max_chars])
                word = word[max_chars:]
            if buffer and len(buffer) + 1 + len(word) > max_chars:
                pieces.append(buffer)
                buffer = word
            else:
                buffer = f"{buffer} {word}".strip()
        if buffer:
            pieces.append(buffer)
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 1 + len(piece) <= max_chars:
            chunks[-1] = f"{chunks[-1]} {piece}"
        else:
            chunks.append(piece)
    return chunks
