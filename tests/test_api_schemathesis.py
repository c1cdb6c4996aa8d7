"""Property test of the whole HTTP API from its OpenAPI: no generated request gets a 5xx.

schemathesis reads ``/openapi.json`` in process (ASGI, no network) and generates requests for
every operation — valid and invalid parameters, headers and bodies — with a regulator key, so
requests pass authentication and reach the handlers. A bounded number of examples per
operation keeps the run short.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from yaolian.api.app import create_app
from yaolian.store.access import create_key

MAX_EXAMPLES = 12


# A store of its own (schemathesis needs the schema at collection time, before fixtures).
_STORE = Path(tempfile.mkdtemp(prefix="yaolian-schemathesis-")) / "api.db"
atexit.register(shutil.rmtree, _STORE.parent, ignore_errors=True)
APP = create_app(f"sqlite:///{_STORE}")
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def api_key() -> Iterator[str]:
    """A regulator key on the app's store (removed when the test process ends)."""
    with TestClient(APP):
        yield create_key(APP.state.engine, None, "regulator", "schemathesis")


def _check(case: Any, api_key: str) -> None:
    response = case.call(headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:500]}"
    )
    if response.status_code >= 400:
        assert response.headers["content-type"][0] == "application/problem+json"


_settings = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@schema.include(tag="EPCIS 2.0").parametrize()
@_settings
def test_epcis_routes_never_answer_5xx(case: Any, api_key: str) -> None:
    """Capture and query routes: whatever the generated input, never a 5xx."""
    _check(case, api_key)


@schema.exclude(tag="EPCIS 2.0").parametrize()
@_settings
def test_other_routes_never_answer_5xx(case: Any, api_key: str) -> None:
    """The routers of the other layers (trace, verify, supply …): never a 5xx, errors as
    problem+json."""
    _check(case, api_key)
