"""Namespaces of user extensions: prefixes, their expansion, and the event-level ``@context``.

An extension key is a compact IRI ``prefix:name`` (``yaolian:saleLine``). Its prefix is
declared in a JSON-LD ``@context`` — the document's, or the event's own (JSON-LD lets any
object carry one and the EPCIS 2.0 JSON schema allows ``@context`` on events). The store keeps
each event on its own, so every reader attaches to each event the declarations of the prefixes
it actually uses (:func:`attach_namespaces`); the hash expands keys with them, and the writers
lift them back into the document header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from yaolian.epcis.model import Event

# Prefixes every reader and writer agrees on (JSON-LD users rarely declare them); for
# ``cbvmda`` the XML binding's namespace, so JSON and XML extension keys hash alike.
WELL_KNOWN_NAMESPACES = {
    "cbvmda": "urn:epcglobal:cbv:mda",
    "gs1": "https://gs1.org/voc/",
}
# Terms the EPCIS 2.0 JSON-LD context defines as protected: a document may not redefine them.
PROTECTED_PREFIXES = frozenset(("epcis", "cbv", "cbvmda", "gs1", "rdfs", "owl", "xsd", "dcterms"))
CONTEXT_KEY = "@context"


def expand_name(key: str, namespaces: Mapping[str, str]) -> tuple[str, str]:
    """Namespace and local name of an extension key, as JSON-LD reads it: ``prefix:local``
    with a declared prefix; a full IRI split after its last ``/`` or ``#``; otherwise the key
    is itself an IRI with scheme ``prefix``, i.e. namespace ``prefix:`` + ``local``."""
    prefix, _, local = key.partition(":")
    uri = namespaces.get(prefix)
    if uri is not None:
        return uri, local
    if local.startswith("//"):
        cut = max(key.rfind("/"), key.rfind("#"))
        if cut < len(key) - 1:
            return key[: cut + 1], key[cut + 1 :]
    return prefix + ":", local


def context_namespaces(context: Any) -> dict[str, str]:
    """prefix → namespace declared in a ``@context`` value (an object or a list of items;
    later declarations win, as in JSON-LD)."""
    items = context if isinstance(context, list) else (context,)
    out: dict[str, str] = {}
    for item in items:
        if isinstance(item, dict):
            out.update({k: v for k, v in item.items() if isinstance(v, str)})
    return out


def event_namespaces(event: Event) -> dict[str, str]:
    """The prefixes the event's own ``@context`` declares (empty without one)."""
    context = event.get(CONTEXT_KEY)
    return context_namespaces(context) if context is not None else {}


# Event members with no member names to look at: identifier lists, and @context itself.
_SKIPPED = frozenset(("epcList", "childEPCs", "inputEPCList", "outputEPCList", CONTEXT_KEY))


def _collect(value: Any, out: set[str]) -> None:
    """Add the prefix of every ``prefix:name`` member name (``@prefix:name``: an XML
    attribute) found in ``value`` at any depth."""
    if value.__class__ is dict:
        for key, item in value.items():
            if ":" in key:
                out.add(key.lstrip("@").partition(":")[0])
            if item.__class__ is dict or item.__class__ is list:
                _collect(item, out)
    elif value.__class__ is list:
        for item in value:
            if item.__class__ is dict or item.__class__ is list:
                _collect(item, out)


def used_prefixes(event: Event) -> set[str]:
    """The prefixes the event's member names use (standard fields have none)."""
    out: set[str] = set()
    for key, item in event.items():
        if key in _SKIPPED:
            continue
        if ":" in key:
            out.add(key.partition(":")[0])
        if item.__class__ is dict or item.__class__ is list:
            _collect(item, out)
    return out


def _maybe_used(event: Event, declared: Mapping[str, str]) -> bool:
    """False only if certainly no member name uses a declared prefix: a cheap test in C on
    the event's JSON text (a name ``p:x`` or ``@p:x`` appears there as ``"p:`` / ``"@p:``)."""
    try:
        text = orjson.dumps(event)
    except TypeError:  # not JSON (built in memory): look properly
        return True
    for prefix in declared:
        if not prefix.isprintable() or '"' in prefix or "\\" in prefix:
            return True  # orjson escapes such characters: the test cannot see the name
        needle = prefix.encode()
        if b'"' + needle + b":" in text or b'"@' + needle + b":" in text:
            return True
    return False


def attach_namespaces(event: Event, namespaces: Mapping[str, str]) -> Event:
    """The event with an ``@context`` declaring exactly the prefixes it uses that its own
    ``@context`` or ``namespaces`` (the document's) declare — the event's own first. Prefixes
    that mean their well-known namespace need no declaration. Changes ``event`` in place and
    returns it; an event using no declared prefix loses its (then empty) ``@context``."""
    own = event_namespaces(event)
    if not own and not namespaces:
        return event
    declared = {**namespaces, **own}
    found: dict[str, str] = {}
    if _maybe_used(event, declared):
        for prefix in sorted(used_prefixes(event)):
            uri = declared.get(prefix)
            if uri is not None and WELL_KNOWN_NAMESPACES.get(prefix) != uri:
                found[prefix] = uri
    if found:
        event[CONTEXT_KEY] = found
    else:
        event.pop(CONTEXT_KEY, None)
    return event


def with_namespaces(event: Event, namespaces: Mapping[str, str] | None) -> Event:
    """Like :func:`attach_namespaces` but leaves ``event`` alone: a copy when a declaration
    must be added (for events built in memory, whose prefixes only the document declares)."""
    if not namespaces or CONTEXT_KEY in event:
        return event
    found = attach_namespaces({**event}, namespaces)
    return found if CONTEXT_KEY in found else event


def header_namespaces(base: Mapping[str, str], events: list[Event]) -> dict[str, str]:
    """The document's prefixes plus those the events declare, for a writer's header: a prefix
    keeps its first meaning; an event that means another namespace by it keeps its own
    declaration (JSON-LD: the inner context wins)."""
    out = dict(base)
    for event in events:
        if CONTEXT_KEY in event:
            for prefix, uri in event_namespaces(event).items():
                out.setdefault(prefix, uri)
    return out
