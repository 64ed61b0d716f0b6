# The operator tools' view of the HTTP API: one authenticated httpx client, the
# envelope unwrapped, and the three ways a call can fail told apart (the server
# cannot be reached, the key is refused, the server answered with an error), so a
# tool can say which one in plain words and choose its exit status.
from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import httpx

from ..api.routes import API_PREFIX

__all__ = ["ApiAnswer", "ApiClient", "ApiError", "KeyRefused", "ServerUnreachable",
           "api_client"]

#: Seconds a tool waits for one answer before calling the server unreachable.
DEFAULT_TIMEOUT = 10.0


class ServerUnreachable(Exception):
    """No HTTP answer: refused connection, DNS failure, timeout."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the server at {url}: {reason}")


class ApiError(Exception):
    """The server answered with an error envelope (or something that is none)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(f"HTTP {status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message


class KeyRefused(ApiError):
    """401 or 403: the key is unknown, or lacks the role the route needs."""


@dataclass(frozen=True, slots=True)
class ApiAnswer:
    """A success envelope: its ``data`` (JSON) and the server's clock (``timestamp``)."""

    data: object
    timestamp: int


class ApiClient:
    """Calls ``/api/v1/third`` routes with ``X-Api-Key``."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self.base_url = base_url

    async def call(self, method: str, path: str, *, body: object = None,
                   params: Mapping[str, str | int] | None = None) -> ApiAnswer:
        """One call; the envelope's data, or an exception saying why not.

        Raises:
            ServerUnreachable: No HTTP answer.
            KeyRefused: 401 or 403.
            ApiError: Any other error status, or an answer that is no envelope.
        """
        try:
            response = await self._http.request(method, API_PREFIX + path, json=body,
                                                params=params)
        except httpx.TransportError as err:
            raise ServerUnreachable(self.base_url, str(err) or type(err).__name__) from err
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            raise ApiError(response.status_code, "not_json",
                           f"{response.text[:120]!r} is no API answer; is {self.base_url} "
                           "the server's HTTP address?")
        if response.status_code >= 400:
            error = str(envelope.get("error", "error"))
            message = str(envelope.get("message", ""))
            kind = KeyRefused if response.status_code in (401, 403) else ApiError
            raise kind(response.status_code, error, message)
        return ApiAnswer(envelope.get("data"), int(envelope.get("timestamp", 0)))

    async def get(self, path: str, **params: str | int) -> ApiAnswer:
        return await self.call("GET", path, params=params)

    async def all_pages(self, path: str, **params: str | int) -> list[object]:
        """Every item of a paged list (``items`` and ``next_cursor``)."""
        items: list[object] = []
        page_params: dict[str, str | int] = {**params, "limit": 500}
        while True:
            page = cast("dict[str, object]", (await self.get(path, **page_params)).data)
            items += cast("list[object]", page["items"])
            cursor = page.get("next_cursor")
            if not isinstance(cursor, str) or not cursor:
                return items
            page_params["cursor"] = cursor


@asynccontextmanager
async def api_client(url: str, api_key: str, *, timeout: float = DEFAULT_TIMEOUT,
                     max_connections: int = 20) -> AsyncIterator[ApiClient]:
    """A client for the server at *url* (``http://host:port``)."""
    base_url = url.rstrip("/")
    limits = httpx.Limits(max_connections=max_connections)
    async with httpx.AsyncClient(base_url=base_url, headers={"X-Api-Key": api_key},
                                 timeout=timeout, limits=limits) as http:
        yield ApiClient(http, base_url)
