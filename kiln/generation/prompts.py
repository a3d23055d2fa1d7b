"""Grounding prompts in what a class-conditional model can draw: the digits model understands the digit a
prompt names ("a handwritten 7", "seven"). A prompt that names none (or two different ones) is refused
with the list of what the model draws, never answered with an unrelated image."""

from __future__ import annotations

import re

from kiln.errors import InvalidInput

WORDS = {"zero": 0, "nought": 0, "naught": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
         "seven": 7, "eight": 8, "nine": 9}
TOKEN = re.compile(r"[a-z]+|\d+")


def digits_named(text: str) -> list[int]:
    """The digits a text names, in order: numerals ("7", standalone) and words ("seven")."""
    found = []
    for token in TOKEN.findall(text.lower()):
        if token.isdigit():
            if len(token) == 1:
                found.append(int(token))
        elif token in WORDS:
            found.append(WORDS[token])
    return found


def what_it_draws(labels: list[str]) -> str:
    return f"this model draws the handwritten digits {', '.join(labels)}: name one, e.g. 'a handwritten 7' or 'seven'"


def ground_digit(prompt: str, labels: list[str], field: str = "prompt") -> int:
    """The one digit ``prompt`` asks for; InvalidInput (422) saying what the model can draw otherwise."""
    named = sorted(set(digits_named(prompt)))
    if len(named) != 1 or str(named[0]) not in labels:
        reason = "names no digit" if not named else f"names several digits ({', '.join(map(str, named))})"
        raise InvalidInput(field, f"the prompt {reason}; {what_it_draws(labels)}")
    return labels.index(str(named[0]))


def ground_transition(prompt: str, labels: list[str], field: str = "prompt") -> tuple[int, int | None]:
    """For video: one digit (moving through noise) or two, in order ("a 3 turning into a 7")."""
    named = list(dict.fromkeys(digits_named(prompt)))  # first mention order, no repeats
    if not named or len(named) > 2 or any(str(d) not in labels for d in named):
        raise InvalidInput(field, f"a video prompt names one digit, or two to morph between; {what_it_draws(labels)}")
    return named[0], named[1] if len(named) == 2 else None


def ground_negative(negative_prompt: str | None, labels: list[str]) -> int | None:
    """The digit a negative prompt steers away from, if it names exactly one; otherwise None (the null class
    is the unconditional branch): "blurry, low quality" means nothing to a digits model, and is not an error."""
    if not negative_prompt:
        return None
    named = sorted(set(digits_named(negative_prompt)))
    return named[0] if len(named) == 1 and str(named[0]) in labels else None
