"""Routes of the web pages: ``/web`` (an index), ``/web/scan`` (consumer query, public),
``/web/check`` (receiving check of a scanner's list, then 确认收货), ``/web/sell`` (扫码销售: the
same check at the counter, then the sale), ``/web/trace`` (trace graph),
``/web/dashboard`` (regulator dashboard), ``/web/supply`` (供需对接: demands, offers,
matches), ``/web/codes`` (赋码: a batch's codes and print lines) and ``/web/keys`` (密钥管理:
an enterprise's or admin's API keys); their files under
``/web/static``. Pages are served
with a Content-Security-Policy that allows this server only.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from yaolian.errors import NotFoundError

STATIC = Path(__file__).with_name("static")
PAGES = ("index", "scan", "check", "sell", "trace", "dashboard", "supply", "codes", "keys")
SCAN_PAGE = "/web/scan"  # where the Digital Link resolver sends a browser
_FILES = {"sell": "check"}  # 扫码销售 is the receiving check's page in its other mode
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(
        STATIC / f"{name}.html",
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"},
    )


@router.get("/web")
def index_page() -> FileResponse:
    """The list of pages."""
    return _page("index")


@router.get("/web/{page}")
def page(page: str) -> FileResponse:
    """One page by name (``scan``, ``check``, ``sell``, ``trace``, ``dashboard``, ``supply``,
    ``codes``, ``keys``)."""
    if page not in PAGES:
        raise NotFoundError(f"no page {page!r}; pages: {', '.join(PAGES[1:])}", place="page")
    return _page(_FILES.get(page, page))


def mount_static(app: FastAPI) -> None:
    """Serve the pages' scripts, styles and vendored libraries under ``/web/static``."""
    app.mount("/web/static", StaticFiles(directory=STATIC), name="web-static")
