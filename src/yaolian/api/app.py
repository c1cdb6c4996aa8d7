"""The FastAPI application: EPCIS 2.0 REST bindings plus the routers of the other layers.

``create_app`` opens the store once (``app.state.engine``), installs problem+json error
rendering for every failure, and adds the EPCIS 2.0 response headers (``GS1-EPCIS-Version``,
``GS1-CBV-Version``, ``GS1-EPCIS-Capture-Limit``, ``GS1-EPCIS-Capture-File-Size-Limit``,
``GS1-Extensions``) to every response.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yaolian import __version__
from yaolian.api import (
    audit,
    codes,
    epcis,
    keys,
    masterdata,
    queries,
    recalls,
    resources,
    supply,
    trace,
    verify,
)
from yaolian.api.params import refuse_nul_anywhere
from yaolian.api.problems import install_problem_handlers
from yaolian.api.webhooks import WebhookDispatcher
from yaolian.config import env_number
from yaolian.errors import BusyError
from yaolian.store.engine import open_engine
from yaolian.store.jobs import close_interrupted
from yaolian.web import pages

EPCIS_VERSION = "2.0.0"
CBV_VERSION = "2.0.0"
EXTENSION_NAMESPACES = ("yaolian=https://yaolian.org/ns/epcis/",)


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiSettings:
    """Limits the server announces and enforces, and whether it delivers subscriptions."""

    capture_limit: int = 500_000  # events per capture document
    capture_size_limit: int = 512 * 1024 * 1024  # bytes per capture request body
    max_per_page: int = 10_000
    webhooks: bool = True  # deliver subscriptions from this process

    @classmethod
    def from_env(cls) -> ApiSettings:
        """Defaults, overridden by ``YAOLIAN_CAPTURE_LIMIT`` / ``YAOLIAN_CAPTURE_SIZE_LIMIT``;
        ``YAOLIAN_WEBHOOKS=0`` leaves subscription delivery to other processes."""
        base = cls()
        return cls(
            capture_limit=env_number("YAOLIAN_CAPTURE_LIMIT", base.capture_limit, 1),
            capture_size_limit=env_number("YAOLIAN_CAPTURE_SIZE_LIMIT", base.capture_size_limit, 1),
            webhooks=os.environ.get("YAOLIAN_WEBHOOKS", "1").strip() not in ("0", "false", "no"),
        )


class EpcisHeaders:
    """ASGI middleware adding the EPCIS 2.0 REST binding headers to every HTTP response."""

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.headers = [
            (b"gs1-epcis-version", EPCIS_VERSION.encode()),
            (b"gs1-cbv-version", CBV_VERSION.encode()),
            (b"gs1-epcis-capture-limit", str(settings.capture_limit).encode()),
            (b"gs1-epcis-capture-file-size-limit", str(settings.capture_size_limit).encode()),
            (b"gs1-extensions", ", ".join(EXTENSION_NAMESPACES).encode()),
            (b"gs1-vendor-version", f"yaolian/{__version__}".encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(database_url: str | None = None, settings: ApiSettings | None = None) -> FastAPI:
    """The yaolian API on the store at ``database_url`` (default: ``$YAOLIAN_DATABASE_URL`` or
    the per-user SQLite file), migrated on open."""
    engine = open_engine(database_url)
    settings = settings or ApiSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:  # capture jobs left running by a server process that stopped
            close_interrupted(engine)
        except BusyError:  # another writer holds the store: reading a job closes it later
            log.info("the store is busy; interrupted capture jobs are closed when read")
        webhooks = WebhookDispatcher(engine) if settings.webhooks else None
        app.state.webhooks = webhooks
        if webhooks is not None:
            webhooks.start()
        yield
        if webhooks is not None:
            webhooks.stop()
        engine.dispose()

    app = FastAPIOffline(  # /docs and /redoc with bundled assets: no CDN
        title="yaolian 药链 API",
        version=__version__,
        description="GS1 EPCIS 2.0 capture and query for China's drug supply chain "
        "(NMPA trace codes 药品追溯码 and GS1 keys). Authenticate with `Authorization: Bearer "
        "<key>` or `X-API-Key: <key>` (create keys with `yaolian keys create`). Errors are "
        "RFC 9457 problem+json with the EPCIS exception type.",
        lifespan=lifespan,
        dependencies=[Depends(refuse_nul_anywhere)],
    )
    app.state.engine = engine
    app.state.settings = settings
    install_problem_handlers(app)
    app.add_middleware(EpcisHeaders, settings=settings)

    # ── routers: one include_router line per layer ──────────────────────────────────────────
    app.include_router(epcis.router)
    app.include_router(resources.router)  # after epcis: /epcs/{epc}/events matches first
    app.include_router(queries.router)
    app.include_router(supply.router)
    app.include_router(verify.router)
    app.include_router(trace.router)
    app.include_router(recalls.router)
    app.include_router(masterdata.router)
    app.include_router(audit.router)
    app.include_router(keys.router)
    app.include_router(codes.router)
    app.include_router(pages.router)  # web pages (no business logic: they read the API)
    pages.mount_static(app)
    return app
