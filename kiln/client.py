"""A Python client for Kiln's HTTP API, synchronous (``KilnClient``) and asynchronous (``AsyncKilnClient``).

    from kiln.client import KilnClient

    client = KilnClient(base_url="http://127.0.0.1:8000", api_key="...")
    token = client.auth.login("username", "password")       # later calls send the JWT
    task = client.tasks.create({"title": "Process data", "task_type": "data_processing",
                                "parameters": {"input_file": "data.csv"}})
    status = client.tasks.get(task.id)
    done = client.tasks.wait(task.id)                          # until completed, failed or cancelled
    client.files.download(done.result["output_file"], "out.json")

Each call is written once, as a generator that yields the requests it needs and receives their
responses; the two clients only differ in how they send them (and sleep). Errors raise ``KilnAPIError``
with the status, code and message, whichever API document's error format the server answered in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

FINISHED = ("completed", "failed", "cancelled")


class KilnAPIError(Exception):
    def __init__(self, status: int, code: str, message: str, body: Any = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.body = status, code, message, body


class Record(dict):
    """A JSON object whose keys read as attributes too (``task.id``, ``task["id"]``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


@dataclass
class Request:
    method: str
    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    raw: bool = False  # hand back the response itself (binary content), not its JSON


@dataclass
class Sleep:
    seconds: float


Call = Generator["Request | Sleep", Any, Any]


def error_of(response: httpx.Response) -> KilnAPIError:
    """The error, from any of Kiln's error formats (seed 000, 001, 002, TTSKit, OpenAI)."""
    try:
        body = response.json()
    except ValueError:
        return KilnAPIError(response.status_code, "ERROR", response.text[:500])
    inner = body.get("error") if isinstance(body, dict) else None
    if isinstance(inner, dict):
        return KilnAPIError(response.status_code, str(inner.get("code") or inner.get("type") or "ERROR").upper(),
                            str(inner.get("message")), body)
    if isinstance(inner, str):
        return KilnAPIError(response.status_code, "ERROR", inner, body)
    message = body.get("detail") if isinstance(body, dict) else None
    return KilnAPIError(response.status_code, str(body.get("error_type", "ERROR")).upper() if isinstance(body, dict) else "ERROR",
                        str(message), body)


def result_of(request: Request, response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise error_of(response)
    if request.raw:
        return response
    body = response.json()
    return Record(body) if isinstance(body, dict) else body


# --- the calls, written once ---

def _login(state: dict, username: str, password: str) -> Call:
    answer = yield Request("POST", "/auth/login", {"json": {"username": username, "password": password}})
    state["token"] = answer["access_token"]
    return answer["access_token"]


def _task_create(spec: dict[str, Any] | None, fields: dict[str, Any]) -> Call:
    body = {**(spec or {}), **fields}
    return Record((yield Request("POST", "/tasks", {"json": body})))


def _task_wait(task_id: str, timeout: float, interval: float) -> Call:
    deadline = time.monotonic() + timeout
    while True:
        task = yield Request("GET", f"/tasks/{task_id}")
        if task["status"] in FINISHED:
            return task
        if time.monotonic() >= deadline:
            raise TimeoutError(f"task {task_id} is still {task['status']} after {timeout} s")
        yield Sleep(interval)


def _upload(path: str | Path | None, data: bytes | None, filename: str | None, description: str | None,
            content_type: str | None) -> Call:
    if data is None:
        if path is None:
            raise ValueError("upload needs a path or data")
        data = Path(path).read_bytes()
        filename = filename or Path(path).name
    files = {"file": (filename or "upload", data, content_type or "application/octet-stream")}
    extra = {"data": {"description": description}} if description else {}
    return Record((yield Request("POST", "/files/upload", {"files": files, **extra})))


def _download(file_id: str, path: str | Path | None) -> Call:
    response = yield Request("GET", f"/files/{file_id}/download", raw=True)
    if path is None:
        return response.content
    Path(path).write_bytes(response.content)
    return Path(path)


def _synthesize(text: str, format: str, options: dict[str, Any]) -> Call:
    response = yield Request("POST", "/api/v1/synth", {"json": {"text": text, "format": format, **options}}, raw=True)
    return response.content


def _transcribe(audio: bytes | str | Path, filename: str, options: dict[str, Any]) -> Call:
    data = audio if isinstance(audio, bytes) else Path(audio).read_bytes()
    return Record((yield Request("POST", "/transcribe", {"files": {"file": (filename, data, "application/octet-stream")},
                                                         "data": {k: str(v) for k, v in options.items()}})))


class _Base:
    def __init__(self, base_url: str, api_key: str | None, token: str | None):
        self.base_url = base_url.rstrip("/")
        self.state: dict[str, Any] = {"token": token}
        self.api_key = api_key

    def headers(self) -> dict[str, str]:
        if self.state.get("token"):
            return {"Authorization": f"Bearer {self.state['token']}"}
        return {"X-API-Key": self.api_key} if self.api_key else {}


class _Section:
    def __init__(self, client: Any):
        self._client = client

    def _run(self, call: Call) -> Any:
        return self._client._run(call)


class Auth(_Section):
    def login(self, username: str, password: str) -> Any:
        """Log in; the client sends the JWT on every later call. Returns the access token."""
        return self._run(_login(self._client.state, username, password))

    def me(self) -> Any:
        return self._run(_one(Request("GET", "/users/me")))


class Tasks(_Section):
    def create(self, spec: dict[str, Any] | None = None, **fields: Any) -> Any:
        """``create({"title", "task_type", "parameters", "priority", "scheduled_at", "description"})``."""
        return self._run(_task_create(spec, fields))

    def get(self, task_id: str) -> Any:
        return self._run(_one(Request("GET", f"/tasks/{task_id}")))

    def list(self, status: str | None = None, limit: int = 50, offset: int = 0) -> Any:
        params = {"limit": limit, "offset": offset, **({"status": status} if status else {})}
        return self._run(_one(Request("GET", "/tasks", {"params": params})))

    def update(self, task_id: str, **changes: Any) -> Any:
        return self._run(_one(Request("PUT", f"/tasks/{task_id}", {"json": changes})))

    def cancel(self, task_id: str) -> Any:
        return self._run(_one(Request("DELETE", f"/tasks/{task_id}")))

    def retry(self, task_id: str) -> Any:
        return self._run(_one(Request("POST", f"/tasks/{task_id}/retry")))

    def wait(self, task_id: str, timeout: float = 600.0, interval: float = 0.5) -> Any:
        """Poll until the task is completed, failed or cancelled; returns the task."""
        return self._run(_task_wait(task_id, timeout, interval))


class Files(_Section):
    def upload(self, path: str | Path | None = None, description: str | None = None, data: bytes | None = None,
               filename: str | None = None, content_type: str | None = None) -> Any:
        return self._run(_upload(path, data, filename, description, content_type))

    def get(self, file_id: str) -> Any:
        return self._run(_one(Request("GET", f"/files/{file_id}")))

    def download(self, file_id: str, path: str | Path | None = None) -> Any:
        """The content as bytes, or written to ``path`` (returns the path)."""
        return self._run(_download(file_id, path))


def _one(request: Request) -> Call:
    return (yield request)


class _Calls:
    """What both clients offer: sections (auth, tasks, files) and model calls."""

    def _sections(self) -> None:
        self.auth, self.tasks, self.files = Auth(self), Tasks(self), Files(self)

    def predict(self, model: str, inputs: Any, **options: Any) -> Any:
        return self._run(_one(Request("POST", "/predict", {"json": {"model_name": model, "inputs": inputs, **options}})))

    def predict_batch(self, model: str, inputs: list[Any], **options: Any) -> Any:
        return self._run(_one(Request("POST", "/predict/batch", {"json": {"model_name": model, "inputs": inputs, **options}})))

    def synthesize(self, text: str, format: str = "wav", **options: Any) -> Any:
        """Audio bytes (TTSKit's /api/v1/synth: lang, engine, voice, rate, pitch)."""
        return self._run(_synthesize(text, format, options))

    def transcribe(self, audio: bytes | str | Path, filename: str = "audio.wav", **options: Any) -> Any:
        """Text and segments (seed 000's /transcribe: model_name, language, enable_timestamps)."""
        return self._run(_transcribe(audio, filename, options))

    def health(self) -> Any:
        return self._run(_one(Request("GET", "/health")))


class KilnClient(_Base, _Calls):
    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, token: str | None = None,
                 timeout: float = 60.0, transport: httpx.BaseTransport | None = None, http: Any = None):
        """``http``: an httpx-style client to send through instead (e.g. Starlette's TestClient)."""
        super().__init__(base_url, api_key, token)
        self.owns_http = http is None
        self.http = http if http is not None else httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)
        self._sections()

    def _run(self, call: Call) -> Any:
        reply = None
        while True:
            try:
                step = call.send(reply)
            except StopIteration as done:
                return done.value
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                reply = None
                continue
            response = self.http.request(step.method, step.path, headers=self.headers(), **step.kwargs)
            reply = result_of(step, response)

    def close(self) -> None:
        if self.owns_http:
            self.http.close()

    def __enter__(self) -> KilnClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncKilnClient(_Base, _Calls):
    """The same calls, awaited: ``await client.tasks.create(...)``."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, token: str | None = None,
                 timeout: float = 60.0, transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(base_url, api_key, token)
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)
        self._sections()

    async def _run(self, call: Call) -> Any:
        reply = None
        while True:
            try:
                step = call.send(reply)
            except StopIteration as done:
                return done.value
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                reply = None
                continue
            response = await self.http.request(step.method, step.path, headers=self.headers(), **step.kwargs)
            reply = result_of(step, response)

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncKilnClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
