"""Errors that carry *where* and *why*, rendered as RFC 9457 problem details on HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EPCIS_EXCEPTION_PREFIX = "epcisException:"


@dataclass
class Problem:
    """One fault: the place (line, JSON pointer, field, code) and the reason."""

    reason: str
    place: str | None = None

    def __str__(self) -> str:
        return f"{self.place}: {self.reason}" if self.place else self.reason


class YaolianError(Exception):
    """Base for every expected failure: bad input, unknown resource, refused access.

    ``exception_type`` is the EPCIS 2.0 exception name (``ValidationException`` …) used as the
    problem ``type``; ``status`` the HTTP status; ``problems`` the individual faults.
    """

    status: int = 400
    exception_type: str = "ValidationException"
    title: str = "Bad input"

    def __init__(
        self,
        reason: str,
        *,
        place: str | None = None,
        problems: list[Problem] | None = None,
        status: int | None = None,
        exception_type: str | None = None,
    ) -> None:
        self.reason = reason
        self.place = place
        self.problems: list[Problem] = problems or []
        if status is not None:
            self.status = status
        if exception_type is not None:
            self.exception_type = exception_type
        super().__init__(f"{place}: {reason}" if place else reason)

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """RFC 9457 problem details body."""
        body: dict[str, Any] = {
            "type": EPCIS_EXCEPTION_PREFIX + self.exception_type,
            "title": self.title,
            "status": self.status,
            "detail": str(self),
        }
        if instance:
            body["instance"] = instance
        if self.problems:
            body["errors"] = [{"place": p.place, "reason": p.reason} for p in self.problems]
        return body


class ValidationError(YaolianError):
    """Input that breaks a standard's rule (EPCIS ValidationException)."""

    title = "Validation failed"


class CodeError(ValidationError):
    """An identifier (trace code, GS1 key, EPC URI …) that is not valid; ``reason_zh`` words the
    commonest faults (wrong length, check digit, not a code at all) for a clerk or a patient."""

    title = "Invalid code"

    def __init__(self, reason: str, *, reason_zh: str | None = None, **kwargs: Any) -> None:
        super().__init__(reason, **kwargs)
        self.reason_zh = reason_zh


class QueryError(YaolianError):
    """A query parameter that is unknown or malformed (EPCIS QueryParameterException)."""

    exception_type = "QueryParameterException"
    title = "Invalid query parameter"


class SubscriptionControlsError(YaolianError):
    """A subscription's controls (schedule, stream, reportIfEmpty) that do not fit together or
    break the schedule grammar (EPCIS SubscriptionControlsException)."""

    exception_type = "SubscriptionControlsException"
    title = "Invalid subscription controls"


class NotFoundError(YaolianError):
    """A resource that does not exist or is not visible to the caller."""

    status = 404
    exception_type = "NoSuchResourceException"
    title = "Not found"


class AuthError(YaolianError):
    """Missing or wrong credentials."""

    status = 401
    exception_type = "SecurityException"
    title = "Unauthorized"


class ForbiddenError(YaolianError):
    """The caller is known but not allowed to do this."""

    status = 403
    exception_type = "SecurityException"
    title = "Forbidden"


class BusyError(YaolianError):
    """The store's one writer at a time kept this one waiting past the busy timeout."""

    status = 503
    exception_type = "ImplementationException"
    title = "Store busy"


class TooLargeError(YaolianError):
    """A request body larger than the server accepts."""

    status = 413
    title = "Too large"


class CaptureLimitError(TooLargeError):
    """A capture document larger than the server accepts."""

    exception_type = "CaptureLimitExceededException"
    title = "Capture limit exceeded"


NUL = "\x00"


def _pointer_step(key: object) -> str:
    return "/" + str(key).replace("~", "~0").replace("/", "~1")


def nul_pointer(value: Any) -> str | None:
    """JSON pointer of the first string or key in a parsed JSON value that holds U+0000."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        pointer, item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return pointer  # "" is the value itself (RFC 6901)
        elif isinstance(item, dict):
            for key in item:
                if NUL in str(key):
                    return pointer + _pointer_step(key)
            stack.extend((pointer + _pointer_step(k), v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((f"{pointer}/{i}", v) for i, v in reversed(list(enumerate(item))))
    return None


def refuse_nul(value: Any, place: str = "") -> None:
    """ValidationError at the first string of a parsed JSON value holding a NUL character:
    no code, URI or name has one, XML cannot carry it and PostgreSQL text cannot store it."""
    found = nul_pointer(value)
    if found is not None:
        where = f"{place}{found}" if found else place.rstrip(": ") or "the document"
        raise ValidationError("contains a NUL character (U+0000)", place=where)


@dataclass
class Report:
    """Outcome of bulk work that goes on past bad items (bulk validation, capture proceed)."""

    ok: int = 0
    problems: list[Problem] = field(default_factory=list)
