"""The Results API over HTTP (httpx), with retries on 5xx and connection errors (tenacity) and errors a user reads.

The platform never mounts the producer's disks: everything comes through here, including artifact bytes, which
are streamed to the file store and hashed on the way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urljoin

import httpx
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

TOKEN_ENV = "RDBRIDGE_API_TOKEN"


class ApiError(RuntimeError):
    """The API answered, but not with what sync needs (the message says which URL and what)."""


class ApiUnreachable(ApiError):
    """No answer after the retries (connection refused, timeout, 5xx)."""


class ApiAuthError(ApiError):
    """401/403: the token is missing or wrong."""


class ApiForbidden(ApiError):
    """403: the API will not serve this resource (e.g. a listed file that resolves outside its root)."""


class ApiNotFound(ApiError):
    """404 on a resource sync can live without (e.g. no factor package published yet)."""


class _Retryable(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (_Retryable, httpx.TransportError))


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body["error"]["message"])
    except Exception:  # noqa: BLE001 - any non-standard body: show its start
        return response.text[:200]


class ApiClient:
    """A session on one Results API: base URL, optional bearer token, retry policy."""

    def __init__(self, base_url: str, token: str | None = None, *, attempts: int = 5, backoff: float = 0.2,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        headers = {"Accept": "application/json", "Accept-Encoding": "gzip"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)
        self._attempts = attempts
        self._backoff = backoff

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        return urljoin(self.base_url, path.lstrip("/"))

    def _retrying(self) -> Retrying:
        return Retrying(retry=retry_if_exception(_retryable), stop=stop_after_attempt(self._attempts),
                        wait=wait_exponential(multiplier=self._backoff, max=5.0), reraise=False)

    def _check(self, response: httpx.Response, url: str) -> None:
        if response.status_code >= 500:
            raise _Retryable(response)
        if response.status_code == 401:
            raise ApiAuthError(
                f"the Results API at {self.base_url} refused the token (401: {_error_message(response)}); "
                f"pass the right --token (or set ${TOKEN_ENV})")
        if response.status_code == 403:
            raise ApiForbidden(f"{url}: 403 {_error_message(response)}")
        if response.status_code == 404:
            raise ApiNotFound(f"{url}: 404 {_error_message(response)}")
        if response.status_code >= 400:
            raise ApiError(f"{url}: HTTP {response.status_code}: {_error_message(response)}")

    def _unreachable(self, url: str, exc: RetryError) -> ApiUnreachable:
        last = exc.last_attempt.exception()
        if isinstance(last, _Retryable):
            why = f"it answered HTTP {last.response.status_code} {_error_message(last.response)}"
        else:
            why = f"{type(last).__name__}: {last}"
        return ApiUnreachable(f"cannot reach the Results API at {self.base_url} after {self._attempts} attempts "
                              f"({url}: {why}); is `rdbridge serve` running there?")

    def get_json(self, path: str, params: dict[str, Any] | None = None,
                 etag: str | None = None) -> tuple[Any, str | None, bool]:
        """GET a JSON document: (body, ETag, not_modified). With `etag`, a 304 gives (None, etag, True)."""
        headers = {"If-None-Match": etag} if etag else {}
        try:
            for attempt in self._retrying():
                with attempt:
                    response = self._http.get(path, params=params, headers=headers)
                    self._check(response, path)
        except RetryError as exc:
            raise self._unreachable(path, exc) from None
        if response.status_code == 304:
            return None, etag, True
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiError(f"{path}: the API answered with a body that is not JSON ({exc})") from exc
        return body, response.headers.get("ETag"), False

    def get_text(self, path: str, params: dict[str, Any] | None = None) -> tuple[str, str]:
        """GET a text resource: (text, content type)."""
        try:
            for attempt in self._retrying():
                with attempt:
                    response = self._http.get(path, params=params, headers={"Accept": "*/*"})
                    self._check(response, path)
        except RetryError as exc:
            raise self._unreachable(path, exc) from None
        return response.text, response.headers.get("content-type", "")

    @contextmanager
    def _stream_once(self, path: str) -> Iterator[httpx.Response]:
        with self._http.stream("GET", path, headers={"Accept": "*/*"}) as response:
            if response.status_code >= 400:
                response.read()
            self._check(response, path)
            yield response

    def download(self, path: str, sink: Any, chunk: int = 1 << 16) -> None:
        """Stream `path` into `sink(bytes)` chunk by chunk (retried from the start on 5xx / connection errors).

        `sink` must accept a restart: it is called with None before each attempt so it can truncate what it has.
        """
        try:
            for attempt in self._retrying():
                with attempt:
                    sink(None)
                    with self._stream_once(path) as response:
                        for part in response.iter_bytes(chunk):
                            sink(part)
        except RetryError as exc:
            raise self._unreachable(path, exc) from None
