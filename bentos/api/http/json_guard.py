"""JSON bodies that would crash a route further in get a clean 4xx here, in the path's error format.

- A lone surrogate (``"\\ud800"``) is valid JSON but not text: Python decodes it into a ``str`` that no
  tokenizer, database, log line or UTF-8 encoder accepts. Such a body gets 422 naming the field.
- JSON nested deeper than ``MAX_JSON_DEPTH`` gets 400 (parsing it recursively exhausts the stack).

Bodies are scanned cheaply first (a regex over the bytes finds surrogate escapes, a count of opening
brackets bounds the depth); only a suspicious body is parsed here, so ordinary requests are not parsed twice.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bentos.api.http.errors import error_response

SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
MAX_JSON_DEPTH = 64
JSON_TYPES = ("application/json",)


class JsonTooDeep(ValueError):
    def __init__(self) -> None:
        super().__init__(f"JSON body nested deeper than {MAX_JSON_DEPTH} levels")


STRING_IN_SKELETON = re.compile(rb'"[^"]*"')
EMPTY_PAIR = re.compile(rb"\[\]|\{\}")  # one regex pass removes exactly one level (chained replaces could take two)
SKELETON_DROP = bytes(b for b in range(256) if b not in b'"[]{}')


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``body`` nests arrays/objects deeper than ``limit``, at C speed: escaped backslashes and
    quotes dropped, then all but quotes and brackets, then strings, then empty pairs once per level (a
    depth-d document empties in d passes)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # cannot be deeper than the number of opening brackets
    skeleton = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, SKELETON_DROP)
    brackets = STRING_IN_SKELETON.sub(b"", skeleton)
    for _ in range(limit):
        inner = EMPTY_PAIR.sub(b"", brackets)
        if inner == brackets:
            return False  # empty (shallow enough) or unbalanced: the parser reports malformed JSON
        brackets = inner
    return bool(brackets) and EMPTY_PAIR.sub(b"", brackets) != brackets


def loads(body: bytes) -> Any:
    """``json.loads`` for routes that parse their body themselves: too deep raises ``JsonTooDeep``."""
    if json_depth_exceeds(body):
        raise JsonTooDeep()
    return json.loads(body)


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def lone_surrogate_field(value: Any) -> str | None:
    """The dotted path ("inputs.0", "text") of the first string, or key, holding a lone surrogate."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not _is_text(item):
                return ".".join(path) or "body"
        elif isinstance(item, dict):
            for key, child in item.items():
                if not _is_text(key):
                    return ".".join(path + (key.encode("utf-8", "backslashreplace").decode(),))
                stack.append((path + (key,), child))
        elif isinstance(item, list):
            stack.extend((path + (str(index),), child) for index, child in enumerate(item))
    return None


class JsonGuardMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._is_json(scope):
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                await self.app(scope, _replay(body, message, receive), send)
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        problem = self._problem(body)
        if problem is not None:
            await error_response(Request(scope), *problem)(scope, receive, send)
            return
        await self.app(scope, _replay(body, None, receive), send)

    @staticmethod
    def _is_json(scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                media = value.split(b";", 1)[0].strip().lower().decode("latin-1")
                return media in JSON_TYPES or media.endswith("+json")
        return False

    @staticmethod
    def _problem(body: bytes) -> tuple[int, str, Any] | None:
        if json_depth_exceeds(body):
            return 400, f"JSON body nested deeper than {MAX_JSON_DEPTH} levels", {"max_depth": MAX_JSON_DEPTH}
        if not SURROGATE_ESCAPE.search(body):
            return None
        try:
            field = lone_surrogate_field(json.loads(body))
        except ValueError:
            return None  # not JSON: the route's own parsing says so
        if field is None:
            return None  # only well-formed surrogate pairs (emoji and other astral characters)
        message = "contains a lone UTF-16 surrogate (such as \\ud800), which is not text"
        return 422, f"Invalid request: {field}: {message}", [{"field": field, "message": message}]


def _replay(body: bytes, pending: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the buffered body, then whatever the client sends next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if pending is not None:
            return pending
        return await receive()

    return replayed
