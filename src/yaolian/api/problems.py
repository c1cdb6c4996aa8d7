"""RFC 9457 problem details (``application/problem+json``) for every error the API returns.

Expected failures are :class:`yaolian.errors.YaolianError` subclasses and render through their
``to_problem()``; FastAPI's request validation errors become an EPCIS ``ValidationException``
(``QueryParameterException`` for query parameters) naming the parameter or field; routing
errors (404, 405 …) keep their status with the matching EPCIS exception type; anything else is
an ``ImplementationException`` whose body never carries a traceback (that goes to the log).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from yaolian.errors import (
    EPCIS_EXCEPTION_PREFIX,
    Problem,
    QueryError,
    ValidationError,
    YaolianError,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("yaolian.api")

# EPCIS 2.0 REST binding exception names for plain HTTP errors raised by the framework.
_UNPARSED_BODY = "There was an error parsing the body"  # FastAPI's words for such a body
_HTTP_EXCEPTION_TYPES = {
    401: "SecurityException",
    403: "SecurityException",
    404: "NoSuchResourceException",
    405: "MethodNotAllowedException",
    406: "NotAcceptableException",
    413: "CaptureLimitExceededException",
    414: "URITooLongException",
    415: "UnsupportedMediaTypeException",
}


class ProblemResponse(Response):
    """A problem+json response (UTF-8, Chinese kept readable)."""

    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        """Serialise the problem body with orjson."""
        return orjson.dumps(content)


def problem_response(
    body: dict[str, Any], status: int, headers: dict[str, str] | None = None
) -> ProblemResponse:
    """Wrap a problem body in a response with the right status and media type."""
    return ProblemResponse(body, status_code=status, headers=headers)


RETRY_AFTER_S = 10  # a busy store: when to try again (503)


def _place_of(loc: Sequence[int | str]) -> str:
    """``("query", "perPage")`` → ``query parameter perPage``; body paths as JSON pointers."""
    if not loc:
        return "request"
    where, *rest = loc
    names = {"query": "query parameter", "path": "path parameter", "header": "header"}
    if where in names and rest:
        return f"{names[str(where)]} {rest[0]}"
    if where == "body":
        return "body" + (" /" + "/".join(str(p) for p in rest) if rest else "")
    return "/".join(str(p) for p in loc)


def _problem_of(err: Any) -> Problem:
    """One validation error; a body that is not JSON is placed at ``body`` with the parser's
    reason and the character (FastAPI puts its offset where a field name would be)."""
    loc = tuple(err.get("loc", ()))
    if err.get("type") == "json_invalid":
        why = (err.get("ctx") or {}).get("error", "")
        offset = loc[1] if len(loc) > 1 else None
        at = f" at character {offset + 1}" if isinstance(offset, int) else ""  # counted from 1
        return Problem(reason=f"not valid JSON{': ' + why if why else ''}{at}", place="body")
    return Problem(reason=str(err.get("msg", "invalid value")), place=_place_of(loc))


def validation_error_from(exc: RequestValidationError) -> YaolianError:
    """FastAPI's validation errors as one error listing every bad parameter or field:
    ``QueryParameterException`` when only query parameters are wrong, else
    ``ValidationException``."""
    errors = exc.errors()
    problems = [_problem_of(err) for err in errors]
    first = problems[0] if problems else Problem(reason="invalid request")
    only_query = bool(errors) and all(tuple(e.get("loc", ()))[:1] == ("query",) for e in errors)
    kind = QueryError if only_query else ValidationError
    return kind(first.reason, place=first.place, problems=problems)


async def _yaolian_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, YaolianError)
    headers = {
        401: {"WWW-Authenticate": 'Bearer realm="yaolian"'},
        503: {"Retry-After": str(RETRY_AFTER_S)},
    }.get(exc.status)
    return problem_response(exc.to_problem(request.url.path), exc.status, headers)


async def _request_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    error = validation_error_from(exc)
    return problem_response(error.to_problem(request.url.path), error.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    name = _HTTP_EXCEPTION_TYPES.get(status)
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    if status == 400 and detail == _UNPARSED_BODY:  # FastAPI: JSON nested past the limit …
        name, detail = "ValidationException", "body: cannot be parsed (JSON nested too deeply?)"
    elif status == 404 and detail == phrase:
        detail = f"no resource at {request.url.path}"
    elif status == 405 and detail == phrase:
        detail = f"method {request.method} is not allowed on {request.url.path}"
    body: dict[str, Any] = {
        "type": EPCIS_EXCEPTION_PREFIX + name if name else "about:blank",
        "title": phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    return problem_response(body, status, dict(exc.headers) if exc.headers else None)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    body = {
        "type": EPCIS_EXCEPTION_PREFIX + "ImplementationException",
        "title": "Internal server error",
        "status": 500,
        "detail": "the server failed to process the request; the error is logged",
        "instance": request.url.path,
    }
    return problem_response(body, 500)


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error of ``app`` as problem+json."""
    app.add_exception_handler(YaolianError, _yaolian_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
