"""A small synchronous HTTP client for lmstream's native API (what the CLI stands on).

It works against any lmstream, local or remote: ``url`` and ``api_key`` are all it
needs. Every failure becomes one ``ClientError`` with a message meant for a person:

    cannot connect           → "cannot connect to lmstream at URL: is the server running? ..."
    401                      → "the server rejected the API key ..."
    any other 4xx/5xx        → the server's own error message (``{"error": {"message"}}``)

Streams are read with httpx-sse (the one SSE decoder); ``stream()`` yields
``StreamEvent``s as they arrive. The CLI is synchronous on purpose: Ctrl-C lands in
the main thread as ``KeyboardInterrupt`` wherever the read is, and ``cancel()`` then
stops the generation on the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

__all__ = ["DEFAULT_URL", "Client", "ClientError", "StreamEvent"]

DEFAULT_URL = "http://127.0.0.1:8000"


class ClientError(Exception):
    """A failure to report in one line; ``code`` is the server's error code when it sent one."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class StreamEvent:
    event: str
    id: int | None
    data: dict[str, Any]

    def as_json(self) -> str:
        return json.dumps({"event": self.event, "id": self.id, "data": self.data}, ensure_ascii=False)


class Client:
    def __init__(self, url: str = DEFAULT_URL, api_key: str | None = None, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout, connect=5.0)
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # Errors ---------------------------------------------------------------------------

    def _transport_error(self, exc: httpx.TransportError) -> ClientError:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return ClientError(
                f"cannot connect to lmstream at {self.url}: is the server running? "
                "(start it with `lmstream serve`, or give --url / LMSTREAM_URL)"
            )
        if isinstance(exc, httpx.TimeoutException):
            return ClientError(f"lmstream at {self.url} did not answer in time ({type(exc).__name__})")
        return ClientError(f"lost the connection to lmstream at {self.url}: {exc or type(exc).__name__}")

    def _http_error(self, response: httpx.Response) -> ClientError:
        message, code = None, None
        try:
            error = response.json().get("error")
            if isinstance(error, dict):
                message, code = error.get("message"), error.get("code")
        except (ValueError, AttributeError):
            pass
        if response.status_code == 401:
            hint = "give a valid one" if self.api_key else "the server requires one"
            message = f"the server rejected the API key ({hint}: --api-key or LMSTREAM_API_KEY)"
        return ClientError(
            message or f"HTTP {response.status_code} from {response.request.url}",
            code=code,
            status=response.status_code,
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from None
        if response.status_code >= 400:
            raise self._http_error(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # The native API -------------------------------------------------------------------

    @contextmanager
    def stream(self, body: dict[str, Any], path: str = "/v1/streams") -> Iterator[Iterator[StreamEvent]]:
        """``POST path`` as SSE (a native stream, a team, a tool run); refusals (4xx/5xx)
        raise before anything is yielded."""
        headers = {"Accept": "text/event-stream"}
        try:
            with connect_sse(self._http, "POST", path, json=body, headers=headers) as source:
                if source.response.status_code >= 400:
                    source.response.read()
                    raise self._http_error(source.response)
                yield self._events(source.iter_sse())
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from None
        except SSEError as exc:
            raise ClientError(f"{self.url} did not answer with an event stream: {exc}") from None

    @staticmethod
    def _events(sses: Iterator[Any]) -> Iterator[StreamEvent]:
        for sse in sses:
            if not sse.event or not sse.data:
                continue
            number = (sse.id or "").rpartition(":")[2]  # a tool run's ids are `<run>:<n>`
            event_id = int(number) if number.isdigit() else None
            yield StreamEvent(sse.event, event_id, sse.json())

    def cancel(self, stream_id: str) -> dict[str, Any]:
        """``DELETE /v1/streams/{id}``: stop the generation now (it is stored as stopped)."""
        result: dict[str, Any] = self.json("DELETE", f"/v1/streams/{stream_id}")
        return result

    def tools(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.json("GET", "/v1/tools")["data"]
        return data

    def cancel_run(self, run_id: str) -> dict[str, Any]:
        """``DELETE /v1/tools/runs/{id}``: stop a tool run now."""
        result: dict[str, Any] = self.json("DELETE", f"/v1/tools/runs/{run_id}")
        return result

    def models(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.json("GET", "/v1/models")["data"]
        return data

    def model(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.json("GET", f"/v1/models/{name}")
        return result

    def profiles(self) -> dict[str, Any]:
        result: dict[str, Any] = self.json("GET", "/v1/profiles")
        return result

    def conversations(self, *, limit: int = 20, cursor: str | None = None, query: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if query:
            params["q"] = query
        result: dict[str, Any] = self.json("GET", "/v1/conversations", params=params)
        return result

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.json("GET", f"/v1/conversations/{conversation_id}")
        return result

    def export(self, conversation_id: str, fmt: str = "markdown") -> str:
        response = self.request("GET", f"/v1/conversations/{conversation_id}/export", params={"format": fmt})
        return response.text

    def delete(self, conversation_id: str) -> None:
        self.request("DELETE", f"/v1/conversations/{conversation_id}")
