"""Capture jobs: ``POST /capture`` answers 202 with a job; ``GET /capture/{id}`` reads it back.

A job records the server process that runs it (its runner: ``host/pid/start time``). A job still
running whose process on this host has stopped — a crash, a restart in the middle — is closed
as interrupted when it is next read or when a server starts: its events were stored in one
transaction with the job's result, so none of them is stored and the document may be sent again.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import psutil
from sqlalchemy import Connection, Engine, select, update

from yaolian.epcis.model import utc_text
from yaolian.errors import NotFoundError, ValidationError
from yaolian.store.access import Viewer
from yaolian.store.ingest import CaptureResult
from yaolian.store.schema import capture_job
from yaolian.store.tx import read_tx, write_tx

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CaptureJob:
    """A capture job as stored (times in store microseconds)."""

    id: int
    created_us: int
    finished_us: int | None
    running: bool
    success: bool | None
    error_behaviour: str
    enterprise_id: int | None
    accepted: int
    duplicates: int
    rejected: int
    errors: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view in the shape of the EPCIS 2.0 capture job resource."""
        return {
            "captureID": str(self.id),
            "createdAt": utc_text(self.created_us),
            "finishedAt": utc_text(self.finished_us) if self.finished_us is not None else None,
            "running": self.running,
            "success": self.success,
            "captureErrorBehaviour": self.error_behaviour,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": self.errors,
        }


def create_job(
    bind: Engine | Connection, *, behaviour: str = "rollback", enterprise_id: int | None = None
) -> int:
    """Record a new running capture job; returns its id."""
    if behaviour not in ("rollback", "proceed"):
        raise ValidationError(
            f"capture error behaviour must be rollback or proceed, not {behaviour!r}",
            place="GS1-Capture-Error-Behaviour",
        )
    with write_tx(bind) as conn:
        return int(
            conn.execute(
                capture_job.insert()
                .values(
                    created_us=time.time_ns() // 1000,
                    running=True,
                    error_behaviour=behaviour,
                    enterprise_id=enterprise_id,
                    accepted=0,
                    duplicates=0,
                    rejected=0,
                    errors=[],
                    runner=this_runner(),
                )
                .returning(capture_job.c.id)
            ).scalar_one()
        )


def finish_job(
    bind: Engine | Connection,
    job_id: int,
    result: CaptureResult | None = None,
    *,
    failure: str | None = None,
) -> None:
    """Mark a job finished with a capture result, or failed with a reason (e.g. unreadable
    document) when there is no result."""
    if result is not None:
        values: dict[str, Any] = {
            "success": result.success,
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "rejected": result.rejected,
            "errors": result.to_dict()["errors"],
        }
    else:
        values = {"success": False, "errors": [{"place": None, "reason": failure or "failed"}]}
    with write_tx(bind) as conn:
        done = conn.execute(
            update(capture_job)
            .where(capture_job.c.id == job_id)
            .values(running=False, finished_us=time.time_ns() // 1000, **values)
        ).rowcount
    if not done:
        raise NotFoundError(f"no capture job {job_id}", place="captureID")


def get_job(bind: Engine | Connection, job_id: int, viewer: Viewer | None = None) -> CaptureJob:
    """The job ``job_id``; with a viewer, only if it is theirs (regulators/admins see all)."""
    query = select(capture_job).where(capture_job.c.id == job_id)
    with read_tx(bind) as conn:
        row = conn.execute(query).first()
    if row is not None and row.running and runner_stopped(row.runner):
        close_interrupted(bind, [row])
        with read_tx(bind) as conn:
            row = conn.execute(query).first()
    visible = row is not None and (
        viewer is None
        or viewer.sees_all
        or (viewer.enterprise_id is not None and row.enterprise_id == viewer.enterprise_id)
    )
    if row is None or not visible:
        raise NotFoundError(f"no capture job {job_id}", place="captureID")
    return _from_row(row)


def list_jobs(
    bind: Engine | Connection, viewer: Viewer | None = None, *, limit: int = 100
) -> list[CaptureJob]:
    """Capture jobs, newest first; with a viewer only its enterprise's (regulators: all)."""
    stmt = select(capture_job).order_by(capture_job.c.id.desc()).limit(limit)
    if viewer is not None and not viewer.sees_all:
        if viewer.enterprise_id is None:
            return []
        stmt = stmt.where(capture_job.c.enterprise_id == viewer.enterprise_id)
    with read_tx(bind) as conn:
        rows = conn.execute(stmt).all()
    if close_interrupted(bind, rows):
        with read_tx(bind) as conn:
            rows = conn.execute(stmt).all()
    return [_from_row(row) for row in rows]


@functools.cache
def this_runner() -> str:
    """This process as a job's runner: ``host/pid/start time`` (the start time tells a process
    from a later one that got the same pid)."""
    return f"{socket.gethostname()}/{os.getpid()}/{psutil.Process().create_time():.2f}"


def runner_stopped(runner: str | None) -> bool:
    """Whether the process ``runner`` names is known to have stopped: it ran on this host and no
    process with its pid and start time is alive. A runner on another host (several servers on
    one PostgreSQL store) is that host's to judge; a job without a runner predates them."""
    host, _, rest = (runner or "").partition("/")
    pid, _, started = rest.partition("/")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        process = psutil.Process(int(pid))
        return (
            abs(process.create_time() - float(started)) > 1.0
            or process.status() == psutil.STATUS_ZOMBIE
        )
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, ValueError):  # not ours to read, or an unreadable start time
        return False


def close_interrupted(bind: Engine | Connection, rows: Any = None) -> int:
    """Close, as failed, the running jobs among ``rows`` (default: every job) whose runner has
    stopped; returns how many. None of such a job's events is stored: they would have been
    committed together with its result."""
    if rows is None:
        with read_tx(bind) as conn:
            rows = conn.execute(
                select(capture_job.c.running, capture_job.c.id, capture_job.c.runner).where(
                    capture_job.c.running
                )
            ).all()
    stopped = [(row.id, row.runner) for row in rows if row.running and runner_stopped(row.runner)]
    if not stopped:
        return 0
    with write_tx(bind) as conn:
        for job_id, runner in stopped:
            reason = (
                f"interrupted: the server process that ran this job ({runner}) stopped before "
                "it finished; none of its events was stored: send the document again (events "
                "stored since count as duplicates)"
            )
            conn.execute(
                update(capture_job)
                .where(capture_job.c.id == job_id, capture_job.c.running)
                .values(
                    running=False,
                    success=False,
                    finished_us=time.time_ns() // 1000,
                    errors=[{"place": None, "reason": reason}],
                )
            )
    log.warning("closed %s interrupted capture job(s): %s", len(stopped), stopped)
    return len(stopped)


def _from_row(row: Any) -> CaptureJob:
    values = {name: row._mapping[name] for name in CaptureJob.__dataclass_fields__}
    values["running"] = bool(values["running"])
    values["errors"] = list(values["errors"] or [])
    return CaptureJob(**values)
