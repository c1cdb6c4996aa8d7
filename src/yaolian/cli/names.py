"""Readable names for the codes a command-line table shows: product codes → 通用名, site URIs →
site names, from master data. A code with no master data shows as itself; ``--json`` output
keeps the codes."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from yaolian.trace.directory import Directory, product_rows


class Names:
    """The names of the given product codes and site URIs, looked up once."""

    def __init__(
        self,
        conn: Connection,
        products: Iterable[str | None] = (),
        sites: Iterable[str | None] = (),
    ) -> None:
        rows = product_rows(conn, {p for p in products if p})
        self._products = {code: row["generic_name"] for code, row in rows.items()}
        directory = Directory(conn)
        directory.load(sites)
        self._sites = {uri: place.name for uri, place in directory.sites.items() if place}

    def product(self, code: str | None) -> str:
        """The product's 通用名, or "" when the code is not in master data."""
        return self._products.get(code or "", "")

    def site(self, uri: str | None) -> str | None:
        """The site's name, or the URI itself when no site is registered under it."""
        return self._sites.get(uri or "", uri)
