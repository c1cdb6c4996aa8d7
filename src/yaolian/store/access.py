"""Who may see what: viewers, API keys (stored as salted scrypt hashes) and tenant filtering.

A key looks like ``yl_<prefix>_<secret>``; the prefix finds the row, the secret is checked
against its scrypt hash. Verified keys are cached in-process for :data:`KEY_CACHE_SECONDS` so a
per-request check costs a dictionary lookup; revoking a key clears the cache here and other
processes notice within that time.

Roles: ``regulator`` (监管) and ``admin`` see every event; ``enterprise`` sees the events in
``event_access`` for its enterprise (those it captured or whose locations / parties are its
own); ``public`` sees no events (consumer look-ups go through verify, not the event log).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from sqlalchemy import Connection, Engine, select, update

from yaolian.epcis.model import utc_text
from yaolian.errors import AuthError, ForbiddenError, NotFoundError, ValidationError
from yaolian.store.audit import append_audit
from yaolian.store.masterdata import (
    require_enterprise,
    upsert_enterprise,
    upsert_product,
    upsert_site,
)
from yaolian.store.schema import api_key, enterprise, site
from yaolian.store.tx import read_tx, write_tx

__all__ = [
    "KEY_CACHE_SECONDS",
    "Role",
    "Viewer",
    "authenticate",
    "clear_key_cache",
    "create_key",
    "describe_viewer",
    "list_keys",
    "own_sites",
    "require_authority",
    "require_own_site",
    "revoke_key",
    "upsert_enterprise",
    "upsert_product",
    "upsert_site",
]

Role = Literal["regulator", "enterprise", "admin", "public"]
KEY_ROLES: tuple[Role, ...] = ("regulator", "enterprise", "admin")
KEY_CACHE_SECONDS = 60.0
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_KEY_PREFIX = "yl"


@dataclass(frozen=True, slots=True)
class Viewer:
    """The party asking: its enterprise (``None`` for regulators/admins/public) and role."""

    enterprise_id: int | None
    role: Role
    api_key_id: int | None = None

    @property
    def sees_all(self) -> bool:
        """Regulators and admins see every event."""
        return self.role in ("regulator", "admin")

    @property
    def reporter(self) -> int | None:
        """The enterprise this key reports for — its captures are held to that enterprise's
        sites, its filings to its products; ``None`` for regulators and admins (anything)."""
        return None if self.sees_all else self.enterprise_id

    @classmethod
    def system(cls) -> Viewer:
        """The platform itself (CLI on the local store, projections): sees everything."""
        return cls(enterprise_id=None, role="admin")


def describe_viewer(bind: Engine | Connection, viewer: Viewer) -> dict[str, Any]:
    """What a key is (``GET /me``): its role, whether it sees every event, its enterprise
    (统一社会信用代码, name, role, region, party id) and that enterprise's sites — the sites
    it reports for and posts stock counts, demands and offers for."""
    out: dict[str, Any] = {"role": viewer.role, "sees_all": viewer.sees_all}
    out["enterprise"], out["sites"] = None, []
    if viewer.enterprise_id is None:
        return out
    e, st = enterprise.c, site.c
    with read_tx(bind) as conn:
        row = conn.execute(
            select(e.uscc, e.name, e.role, e.region, e.party_id).where(e.id == viewer.enterprise_id)
        ).first()
        sites = conn.execute(
            select(st.location_id, st.name, st.kind, st.region)
            .where(st.enterprise_id == viewer.enterprise_id)
            .order_by(st.location_id)
        ).all()
    if row is not None:
        out["enterprise"] = dict(row._mapping)
    out["sites"] = [dict(r._mapping) for r in sites]
    return out


def own_sites(conn: Connection, viewer: Viewer) -> frozenset[str] | None:
    """Location ids of the sites of ``viewer``'s enterprise (``None``: it sees every site)."""
    if viewer.sees_all:
        return None
    if viewer.enterprise_id is None:
        return frozenset()
    rows = conn.execute(
        select(site.c.location_id).where(site.c.enterprise_id == viewer.enterprise_id)
    )
    return frozenset(rows.scalars())


def require_own_site(conn: Connection, viewer: Viewer, location_id: str, place: str) -> None:
    """ForbiddenError unless ``viewer`` may speak for the site: regulators and admins for
    every one, an enterprise for its own (a stock count, a demand, an offer of its own)."""
    own = own_sites(conn, viewer)
    if own is not None and location_id not in own:
        raise ForbiddenError(
            f"{location_id[:120]!r} is not a site of this key's enterprise", place=place
        )


def require_authority(viewer: Viewer, what: str) -> None:
    """ForbiddenError unless ``viewer`` is a regulator or admin: ``what`` (e.g. "reserve
    plans") is theirs to set."""
    if not viewer.sees_all:
        raise ForbiddenError(
            f"{what} are set by regulators (a regulator key)", place="Authorization"
        )


def _hash_secret(secret: str, salt: bytes) -> str:
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.urlsafe_b64encode
    return f"scrypt${_SCRYPT['n']}${b64(salt).decode()}${b64(digest).decode()}"


def _check_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, salt_b64, digest_b64 = stored.split("$")
        salt = base64.urlsafe_b64decode(salt_b64)
        expected = base64.urlsafe_b64decode(digest_b64)
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(
        secret.encode(), salt=salt, dklen=len(expected), n=int(n), r=_SCRYPT["r"], p=_SCRYPT["p"]
    )
    return hmac.compare_digest(got, expected)


def create_key(
    bind: Engine | Connection,
    enterprise_uscc: str | None,
    role: str,
    label: str | None = None,
    *,
    by: int | None = None,
) -> str:
    """Create an API key and return it — the only time the secret is shown; the audit log
    records it (prefix, role, enterprise, label: never the secret) as done by the key with id
    ``by`` (None: a local operator).

    ``enterprise`` keys need the enterprise's 统一社会信用代码 (registered with
    :func:`upsert_enterprise`); ``regulator`` / ``admin`` keys may name one or not.
    """
    if role not in KEY_ROLES:
        raise ValidationError(
            f"role must be one of {', '.join(KEY_ROLES)}, not {role!r}", place="role"
        )
    with write_tx(bind) as conn:
        ent_id = None
        if enterprise_uscc:
            ent_id = require_enterprise(conn, enterprise_uscc, "enterprise")
        elif role == "enterprise":
            raise ValidationError(
                "an enterprise key needs the enterprise's USCC", place="enterprise"
            )
        prefix = secrets.token_hex(5)
        secret = secrets.token_urlsafe(24)
        conn.execute(
            api_key.insert().values(
                prefix=prefix,
                secret_hash=_hash_secret(secret, secrets.token_bytes(16)),
                enterprise_id=ent_id,
                role=role,
                label=label,
                created_us=time.time_ns() // 1000,
                revoked=False,
            )
        )
        uscc = enterprise_uscc.strip().upper() if enterprise_uscc else None
        detail = {"role": role, "enterprise": uscc, "label": label}
        append_audit(conn, by, "key.create", prefix, detail)
    return f"{_KEY_PREFIX}_{prefix}_{secret}"


_cache: dict[tuple[str, str], tuple[Viewer, float]] = {}
_cache_lock = threading.Lock()


def clear_key_cache() -> None:
    """Forget every verified key (after revocation or when a test empties the store)."""
    with _cache_lock:
        _cache.clear()


def _bind_key(bind: Engine | Connection) -> str:
    return str(bind.engine.url if isinstance(bind, Connection) else bind.url)


def authenticate(bind: Engine | Connection, key: str | None) -> Viewer:
    """The viewer an API key stands for; :class:`AuthError` when missing, unknown or revoked."""
    if not key:
        raise AuthError("an API key is required", place="Authorization")
    cache_key = (_bind_key(bind), key)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(cache_key)
    if hit is not None and now - hit[1] < KEY_CACHE_SECONDS:
        return hit[0]
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != _KEY_PREFIX or not parts[1] or not parts[2]:
        raise AuthError("malformed API key", place="Authorization")
    with read_tx(bind) as conn:
        row = conn.execute(
            select(
                api_key.c.id,
                api_key.c.secret_hash,
                api_key.c.enterprise_id,
                api_key.c.role,
                api_key.c.revoked,
            ).where(api_key.c.prefix == parts[1])
        ).first()
    if row is None or row.revoked or not _check_secret(parts[2], row.secret_hash):
        raise AuthError("unknown or revoked API key", place="Authorization")
    role = row.role if row.role in get_args(Role) else "public"
    viewer = Viewer(enterprise_id=row.enterprise_id, role=cast(Role, role), api_key_id=row.id)
    with _cache_lock:
        _cache[cache_key] = (viewer, now)
    return viewer


def revoke_key(
    bind: Engine | Connection,
    prefix: str,
    *,
    by: int | None = None,
    enterprise_id: int | None = None,
) -> None:
    """Revoke the key with ``prefix`` (the part after ``yl_``), in the audit log too, as done
    by the key with id ``by`` (None: a local operator); ``enterprise_id``: only a key of that
    enterprise. Unknown prefix (or another enterprise's key) → NotFoundError."""
    with write_tx(bind) as conn:
        stmt = update(api_key).where(api_key.c.prefix == prefix)
        if enterprise_id is not None:
            stmt = stmt.where(api_key.c.enterprise_id == enterprise_id)
        if not conn.execute(stmt.values(revoked=True)).rowcount:
            raise NotFoundError(f"no API key with prefix {prefix!r}", place="prefix")
        append_audit(conn, by, "key.revoke", prefix)
    clear_key_cache()


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown about a key: never its secret."""

    id: int
    prefix: str
    role: str
    enterprise: str | None  # 统一社会信用代码 of its enterprise
    enterprise_name: str | None
    label: str | None
    created_us: int
    revoked: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``GET /keys``, ``keys list --json``): the creation time as UTC text."""
        return {
            "prefix": self.prefix,
            "role": self.role,
            "enterprise": self.enterprise,
            "enterprise_name": self.enterprise_name,
            "label": self.label,
            "created": utc_text(self.created_us),
            "revoked": self.revoked,
        }


def list_keys(bind: Engine | Connection, enterprise_id: int | None = None) -> list[KeyInfo]:
    """Every API key (or those of ``enterprise_id``), newest first, without secrets."""
    stmt = select(
        api_key.c.id,
        api_key.c.prefix,
        api_key.c.role,
        enterprise.c.uscc,
        enterprise.c.name,
        api_key.c.label,
        api_key.c.created_us,
        api_key.c.revoked,
    ).select_from(api_key.outerjoin(enterprise, enterprise.c.id == api_key.c.enterprise_id))
    if enterprise_id is not None:
        stmt = stmt.where(api_key.c.enterprise_id == enterprise_id)
    with read_tx(bind) as conn:
        rows = conn.execute(stmt.order_by(api_key.c.id.desc())).all()
    return [KeyInfo(*row) for row in rows]
