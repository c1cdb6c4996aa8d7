"""Parameter types shared by the API's routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

MAX_ROW_ID = 2**63 - 1  # larger ids cannot exist (and overflow the database's 64-bit integer)

RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="Row id (1 … 2⁶³−1)")]
"""A path parameter naming a stored row by id: out of range → 400, never a database error."""
