"""Parameter types shared by the API's routers."""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated

import orjson
from fastapi import Path, Request
from starlette.requests import HTTPConnection

from yaolian.epcis.model import to_epoch_us
from yaolian.errors import (
    NUL,
    QueryError,
    TooLargeError,
    ValidationError,
    YaolianError,
    refuse_nul,
)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"  # Excel workbooks

MAX_ROW_ID = 2**63 - 1  # larger ids cannot exist (and overflow the database's 64-bit integer)

RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="Row id (1 … 2⁶³−1)")]
"""A path parameter naming a stored row by id: out of range → 400, never a database error."""


async def refuse_nul_anywhere(request: HTTPConnection) -> None:
    """Refuse a NUL character (U+0000) in the path, a query parameter or a JSON or text body,
    naming where: no code, URI or name holds one, and PostgreSQL text cannot store it (the
    same request on SQLite must get the same answer). Binary bodies (XLSX) are left to their
    readers; a WebSocket checks its own parameters (it answers by closing, not with a body)."""
    if not isinstance(request, Request):
        return
    if NUL in request.url.path:
        raise ValidationError("contains a NUL character (U+0000)", place="path")
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            raise QueryError("contains a NUL character (U+0000)", place=f"query parameter {name}")
    media = media_type(request)
    if media.endswith("json"):
        body = await request.body()
        if b"\\u0000" in body:
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                return  # the route reports the broken JSON
            refuse_nul(parsed, "body ")
    elif media.startswith("text/") and b"\x00" in await request.body():
        raise ValidationError("contains a NUL character (U+0000)", place="body")


def media_type(request: HTTPConnection) -> str:
    """The body's media type: ``Content-Type`` without parameters, lower case ("" if none)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def accepted_media(request: Request, accepted: Collection[str]) -> str:
    """The body's media type when it is one of ``accepted``, else 415
    (UnsupportedMediaTypeException) naming the ones that are."""
    media = media_type(request)
    if media not in accepted:
        raise YaolianError(
            f"Content-Type {media or '(none)'!r} is not supported; use "
            + ", ".join(sorted(accepted)),
            place="Content-Type",
            status=415,
            exception_type="UnsupportedMediaTypeException",
        )
    return media


async def read_body(
    request: Request, limit: int, error: type[TooLargeError] = TooLargeError
) -> bytes:
    """The request body, refused with ``error`` (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise error(
            f"body of {declared} bytes exceeds the limit of {limit} bytes", place="Content-Length"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise error(f"body exceeds the limit of {limit} bytes", place="body")
        chunks.append(chunk)
    return b"".join(chunks)


def wants_html(request: Request) -> bool:
    """Whether the caller is a browser asking for a page (``Accept`` names ``text/html``)."""
    return "text/html" in request.headers.get("accept", "")


def time_param(name: str, value: str | None) -> int | None:
    """An ISO 8601 query parameter with offset as epoch microseconds (None when absent)."""
    if value is None:
        return None
    try:
        return to_epoch_us(value.replace(" ", "+"))
    except ValueError as exc:
        raise QueryError(
            f"not an ISO 8601 time with offset: {value!r} ({exc})", place=name
        ) from None
