"""Conditional HTTP fetches of one feed URL, with a size cap; httpx errors become driver errors.

Each fetch sends the validators of the last body received (``If-None-Match`` with its ETag,
``If-Modified-Since`` with its Last-Modified, RFC 9110 13.1): a publisher that has nothing new
answers 304 and the body kept is used again. A body larger than ``max_bytes`` (counted after
content decoding, so a compressed bomb is cut too) is refused without being buffered whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from drivers.base import (
    CommunicationTimeoutError,
    DeviceRejectedError,
    DriverError,
    NotConnectedError,
)


class FeedFormatError(DeviceRejectedError):
    """The publisher answered with a body that is not a valid feed (truncated, wrong types,
    too large, a timestamp going backwards)."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A feed body and whether it is new since the last fetch (False: answered 304)."""

    body: bytes
    fresh: bool


class FeedFetcher:
    """Fetches one URL over a shared ``httpx.AsyncClient``, conditionally."""

    def __init__(self, url: str, max_bytes: int) -> None:
        self.url = url
        self._max_bytes = max_bytes
        self._etag: str | None = None
        self._last_modified: str | None = None
        self._body: bytes | None = None

    def forget(self) -> None:
        """Drop the kept body and validators (the next fetch is unconditional)."""
        self._etag = self._last_modified = None
        self._body = None

    async def fetch(self, client: httpx.AsyncClient) -> FetchResult:
        """GET the URL; raise a DriverError when it cannot be fetched."""
        headers: dict[str, str] = {}
        if self._body is not None:
            if self._etag is not None:
                headers["If-None-Match"] = self._etag
            if self._last_modified is not None:
                headers["If-Modified-Since"] = self._last_modified
        try:
            async with client.stream("GET", self.url, headers=headers) as response:
                if response.status_code == httpx.codes.NOT_MODIFIED:
                    if self._body is None or not headers:
                        raise DeviceRejectedError(f"GET {self.url}: 304 to an unconditional GET")
                    return FetchResult(self._body, False)
                if response.status_code != httpx.codes.OK:
                    raise DeviceRejectedError(
                        f"GET {self.url}: HTTP {response.status_code} {response.reason_phrase}"
                    )
                body = await self._read_capped(response)
                self._etag = response.headers.get("ETag")
                self._last_modified = response.headers.get("Last-Modified")
        except httpx.TimeoutException as err:
            raise CommunicationTimeoutError(f"GET {self.url}: no answer in time") from err
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as err:
            raise NotConnectedError(f"GET {self.url}: {type(err).__name__}: {err}") from err
        except httpx.HTTPError as err:
            raise DriverError(f"GET {self.url}: {type(err).__name__}: {err}") from err
        self._body = body
        return FetchResult(body, True)

    async def _read_capped(self, response: httpx.Response) -> bytes:
        limit = self._max_bytes
        declared = response.headers.get("Content-Length", "")
        if (
            declared.isdigit()
            and int(declared) > limit
            and "Content-Encoding" not in response.headers
        ):
            raise FeedFormatError(f"GET {self.url}: {declared} bytes exceed the {limit} byte cap")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise FeedFormatError(f"GET {self.url}: body exceeds the {limit} byte cap")
            chunks.append(chunk)
        return b"".join(chunks)
